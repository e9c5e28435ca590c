"""Images in, RGB uint8 out: the library's one image decoder (training data, inference, the app).

``probe_image`` reads only the header (PIL, lazy) and the file's tail, so indexing tens of
thousands of images takes seconds; it catches missing, empty, unidentifiable and truncated files,
odd pixel formats and EXIF orientation, and refuses images over ``MAX_PIXELS``.
``decode_image`` decodes with OpenCV straight to RGB uint8, using libjpeg's reduced-size decoding
(1/2, 1/4, 1/8) when the image is at least twice the size that is needed, and honouring or
ignoring EXIF orientation as the index decided. ``read_image`` is the two in a row for one file
or its bytes (transparent pixels blended over gray); ``load_image`` takes any common image form
(path, bytes, upload, PIL image, array, tensor), as the Detector does; ``model_input`` is
``load_image`` then the letterbox: the one rule from a file to the model's input pixels.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolo.letterbox import FILL, Letterbox, letterbox

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "WEBP", "TIFF")  # PIL format names OpenCV decodes
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND"
# EXIF orientations 5-8 swap width and height when applied.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_CONVERTED_MODES = {"L": "grayscale", "LA": "grayscale+alpha", "RGBA": "alpha", "P": "palette",
                    "PA": "palette+alpha", "CMYK": "CMYK", "I;16": "16-bit", "I;16B": "16-bit",
                    "I;16L": "16-bit", "I": "32-bit integer", "F": "float", "1": "1-bit",
                    "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}


# Images the pipeline refuses at index time (reported, never fatal):
MAX_PIXELS = 2 * 89_478_485  # PIL's decompression-bomb limit (~179 megapixels); larger headers are refused
MIN_SIDE = 8  # pixels: a side below this holds nothing to detect
MAX_ASPECT = 32.0  # long / short side: at the smallest input (32 px) the short side still gets >= 1 pixel,
#                    so letterbox, mosaic and the transforms never produce an empty image


class ImageError(ValueError):
    """An image that cannot be used. ``kind`` is a problem kind (see ``yolo.data.problems.KINDS``)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class ImageProbe:
    """What the header says. width/height are the stored pixels (before EXIF orientation)."""

    width: int
    height: int
    mode: str  # PIL mode, e.g. "RGB", "L", "CMYK", "I;16", "RGBA"
    orientation: int  # EXIF orientation tag, 1 when absent
    format: str  # "JPEG", "PNG", ...
    bits: int = 8  # bits per channel (PNG header; PIL reports 16-bit RGB PNGs as "RGB")
    alpha: bool = False  # has transparency (an alpha channel or a transparent palette entry)

    @property
    def conversion(self) -> str:
        """Why the pixels need converting to 8-bit RGB ("" when they are already RGB)."""
        note = _CONVERTED_MODES.get(self.mode, "" if self.mode == "RGB" else self.mode)
        return note or ("16-bit" if self.bits == 16 else "")

    def oriented_size(self, apply_exif: bool = True) -> tuple[int, int]:
        """(height, width) of the decoded image."""
        if apply_exif and self.orientation in _SWAPPING_ORIENTATIONS:
            return self.width, self.height
        return self.height, self.width


Source = str | os.PathLike | bytes  # an image file's path, or the file's bytes


def _ends(source: Source, n: int = 64) -> tuple[bytes, bytes]:
    """The first 26 bytes (a PNG's IHDR bit depth is byte 24) and the last ``n``."""
    if isinstance(source, bytes):
        return source[:26], source[-n:]
    with open(source, "rb") as f:
        head = f.read(26)
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - n))
        return head, f.read()


def probe_image(source: Source, min_side: int = MIN_SIDE, max_aspect: float = MAX_ASPECT) -> ImageProbe:
    """Header facts of an image file (or its bytes); raises ``ImageError`` for an unusable one.

    Checks, in order: the file exists, is not empty, PIL identifies it, its size (``check_size``),
    its format, and (JPEG/PNG) that its last bytes hold the end marker, which catches truncated
    files without decoding them.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    except FileNotFoundError:
        raise ImageError("image_missing", "no such file") from None
    except OSError as e:
        raise ImageError("image_unreadable", str(e)) from None
    if size == 0:
        raise ImageError("image_unreadable", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
                fmt, mode, (w, h) = im.format or "", im.mode, im.size
                orientation = int(im.getexif().get(0x0112, 1) or 1) if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else 1
                alpha = mode in _ALPHA_MODES or "transparency" in im.info
    except Image.DecompressionBombError as e:
        raise ImageError("image_too_large", str(e).split(" could be")[0]) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError("image_unreadable", f"not a readable image: {e}") from None
    check_size(w, h, min_side, max_aspect)
    if fmt not in DECODABLE_FORMATS:
        raise ImageError("image_unsupported", f"{fmt or 'unknown'} image, not {'/'.join(DECODABLE_FORMATS)}")
    head, tail = _ends(source)
    bits = head[24] if fmt == "PNG" and len(head) > 24 else 8  # IHDR bit depth
    if fmt == "JPEG" and _JPEG_EOI not in tail:
        raise ImageError("image_truncated", "JPEG end-of-image marker missing")
    if fmt == "PNG" and _PNG_IEND not in tail:
        raise ImageError("image_truncated", "PNG IEND chunk missing")
    return ImageProbe(w, h, mode, orientation if 1 <= orientation <= 8 else 1, fmt, bits, alpha)


def check_size(width: int, height: int, min_side: int = MIN_SIDE, max_aspect: float = MAX_ASPECT) -> None:
    """Raise ``ImageError`` for a size the pipeline cannot use: empty, over ``MAX_PIXELS``, a side
    under ``min_side`` or an aspect ratio over ``max_aspect``."""
    if width <= 0 or height <= 0:
        raise ImageError("image_unreadable", f"bad image size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageError("image_too_large", f"{width}x{height} = {width * height / 1e6:.0f} megapixels "
                                            f"(limit {MAX_PIXELS / 1e6:.0f})")
    if min(width, height) < min_side or max(width, height) / min(width, height) > max_aspect:
        raise ImageError("image_too_thin", f"{width}x{height}: needs sides >= {min_side} px and an "
                                           f"aspect ratio <= {max_aspect:g}:1")


def reduction_for(long_side: int, max_side: int | None) -> int:
    """Largest of 1, 2, 4, 8 such that ``long_side / factor >= max_side`` (1 if max_side is None)."""
    if not max_side:
        return 1
    for factor in (8, 4, 2):
        if long_side >= factor * max_side:
            return factor
    return 1


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def _read(source: Source, flags: int) -> np.ndarray:
    """OpenCV's decode of a file or its bytes; ``ImageError`` when it cannot."""
    try:
        data = np.frombuffer(source, np.uint8) if isinstance(source, bytes) else np.fromfile(source, np.uint8)
    except OSError as e:
        raise ImageError("image_unreadable", str(e)) from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        where = "the image bytes" if isinstance(source, bytes) else os.fspath(source)
        raise ImageError("image_unreadable", f"OpenCV could not decode {where}")
    return image


def decode_image(source: Source, reduction: int = 1, apply_exif: bool = True) -> np.ndarray:
    """Decode an image file (or its bytes) to RGB uint8 (H, W, 3), optionally 1/2, 1/4 or 1/8 size.

    Grayscale, CMYK, 16-bit, alpha and palette images all come out as 8-bit RGB (OpenCV's
    IMREAD_COLOR conversion). ``apply_exif`` rotates/flips by the EXIF orientation tag.
    Raises ``ImageError("image_unreadable", ...)`` when OpenCV cannot decode the file.
    """
    flags = _REDUCED[reduction] | (0 if apply_exif else cv2.IMREAD_IGNORE_ORIENTATION)
    return cv2.cvtColor(_read(source, flags), cv2.COLOR_BGR2RGB)


def read_image(source: Source, max_side: int | None = None, apply_exif: bool = True) -> np.ndarray:
    """An image file (or its bytes) -> RGB uint8 (H, W, 3), upright by its EXIF orientation
    (``apply_exif=False``: as stored, as the index decides for an annotated image).

    ``probe_image`` first (refuses images over ``MAX_PIXELS``, truncated or unsupported files;
    thin images are allowed), then one OpenCV decode: a JPEG at 1/2, 1/4 or 1/8 size when its
    long side stays >= ``max_side`` (None: full size). Transparent pixels are blended over gray
    ``FILL``, as ``load_image`` does for arrays. Raises ``ImageError`` (a ``ValueError``).
    """
    probe = probe_image(source, min_side=1, max_aspect=float("inf"))
    if not probe.alpha:
        return decode_image(source, reduction_for(max(probe.width, probe.height), max_side), apply_exif)
    raw = _read(source, cv2.IMREAD_UNCHANGED)  # keeps alpha, and ignores EXIF orientation
    return orient(_from_array(raw, bgr=raw.ndim == 3), probe.orientation if apply_exif else 1)


JPEG_MAGIC = b"\xff\xd8\xff"  # a JPEG file's first bytes (SOI and a marker)


def decode_rgb(source: str | os.PathLike, long_side: int, max_side: int | None = None,
               apply_exif: bool = True) -> np.ndarray:
    """Training's decode of an indexed image (long side ``long_side`` known from the index) ->
    RGB uint8 (H, W, 3), by the same pixel rule as ``read_image``: transparent pixels blended
    over gray ``FILL``. A JPEG by content (its first bytes ``FF D8 FF``, whatever the file is
    called; JPEG holds no transparency) skips the probe: ``decode_image`` at the reduction
    ``max_side`` allows; any other file goes through ``read_image``."""
    try:
        with open(source, "rb") as f:
            jpeg = f.read(len(JPEG_MAGIC)) == JPEG_MAGIC
    except OSError as e:
        raise ImageError("image_unreadable", str(e)) from None
    if jpeg:
        return decode_image(source, reduction_for(long_side, max_side), apply_exif)
    return read_image(source, max_side, apply_exif)


_ORIENT = {  # EXIF orientation -> the flip/rotation that makes the stored pixels upright
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1-8) to (H, W, C) pixels, as PIL's ``exif_transpose`` does."""
    turn = _ORIENT.get(int(orientation))
    return np.ascontiguousarray(turn(image)) if turn else image


def load_image(image: Any, bgr: bool = False, apply_exif: bool = True) -> np.ndarray:
    """Any common image form -> np.ndarray[H, W, 3] uint8 RGB.

    Accepts a path (str/Path), bytes or a binary file object (e.g. a Streamlit upload), all read
    by ``read_image`` (EXIF orientation applied), a PIL image (EXIF orientation applied, any mode), a numpy array (H, W), (H, W, 1|3|4) or (1|3|4, H, W)
    as uint8, uint16, bool or float (floats with max <= 1 are read as [0, 1], else as [0, 255]),
    or a torch tensor in the same layouts. ``bgr=True`` says a 3/4-channel array is BGR(A), as
    OpenCV gives it. Transparent pixels are composited over gray 114. ``apply_exif=False`` keeps a
    file's stored orientation (paths and bytes only).
    """
    from PIL import Image

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        return _read_or_say(path, f"image {path}", apply_exif)
    if isinstance(image, (bytes, bytearray)):
        return _read_or_say(bytes(image), "the uploaded image", apply_exif)
    if hasattr(image, "read"):
        return _read_or_say(image.read(), "the uploaded image", apply_exif)
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if hasattr(image, "detach"):  # a torch tensor
        image = _tensor_pixels(image)
    if isinstance(image, np.ndarray):
        return _from_array(image, bgr)
    raise TypeError(
        f"unsupported image type {type(image).__name__}: pass a path, bytes, a PIL image, "
        "a numpy array or a torch tensor"
    )


def model_input(image: Any, size: int, bgr: bool = False, apply_exif: bool = True) -> tuple[np.ndarray, Letterbox]:
    """Any image form (as ``load_image``) -> the model's input pixels: the one rule.

    Full-size decode (``load_image``; files via ``read_image``, never a reduced JPEG decode),
    then ``letterbox`` to ``size`` (INTER_AREA shrink / INTER_LINEAR enlarge, gray ``FILL``
    padding, centred). Training-time validation, the Detector (``python -m yolo.evaluate``, the
    Evaluate and Detect pages), GradCAM and export all come through here, so one checkpoint gives
    one set of detections on one image whichever path reads it.

    Returns:
        (ndarray[size, size, 3] uint8 RGB, ``Letterbox`` record of the original (h, w)).
    """
    return letterbox(load_image(image, bgr, apply_exif), size)


def _read_or_say(source: Source, what: str, apply_exif: bool = True) -> np.ndarray:
    """``read_image``, its ``ImageError`` re-raised as a ``ValueError`` naming ``what``."""
    try:
        return read_image(source, None, apply_exif)
    except ImageError as err:
        raise ValueError(f"cannot read {what}: {err}") from err


def _tensor_pixels(tensor: Any) -> np.ndarray:
    """A torch tensor -> a numpy array of its pixels (bfloat16 and other dtypes numpy lacks are read
    as float32); ``ValueError`` for one that holds no pixels (meta, sparse, quantised)."""
    if getattr(tensor, "is_meta", False):
        raise ValueError("a meta tensor holds no pixels")
    if str(getattr(tensor, "layout", "torch.strided")) != "torch.strided":
        raise ValueError(f"a {tensor.layout} tensor: pass a dense image tensor")
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and str(tensor.dtype) not in ("torch.float16", "torch.float32", "torch.float64"):
        tensor = tensor.float()  # bfloat16, float8: exact in float32
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"cannot read a torch tensor of dtype {tensor.dtype} as an image ({err})") from None


def _from_pil(pil: Any) -> np.ndarray:
    """PIL image (any mode, EXIF orientation honoured) -> RGB uint8 array; ``ValueError`` for an
    empty image or a mode PIL cannot convert."""
    from PIL import ImageOps

    if pil.width < 1 or pil.height < 1:
        raise ValueError(f"an empty image ({pil.width} x {pil.height} pixels): nothing to detect in")
    mode = pil.mode
    try:
        pil = ImageOps.exif_transpose(pil) or pil
        has_alpha = pil.mode in _ALPHA_MODES or "transparency" in pil.info
        if has_alpha:
            if pil.mode == "La":  # premultiplied: PIL converts it to LA (straight alpha) only
                pil = pil.convert("LA")
            return _from_array(np.asarray(pil.convert("RGBA")), bgr=False)
        if pil.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            return _from_array(np.asarray(pil), bgr=False)
        return np.ascontiguousarray(np.asarray(pil.convert("RGB")))
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(f"cannot read a PIL image in mode {mode!r} ({err})") from None


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Any numeric array -> uint8, reading floats as [0, 1] when their max is at most 1."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32: inf, then 255
            values = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        big = array.size and array.max() > 255
        return np.clip(array >> 8 if big else array, 0, 255).astype(np.uint8)
    raise TypeError(f"unsupported image dtype {array.dtype}")


def _from_array(array: np.ndarray, bgr: bool) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) array -> RGB uint8 (H, W, 3); ``ValueError`` for an empty one."""
    if array.size == 0:
        raise ValueError(f"an empty image (array of shape {array.shape}): nothing to detect in")
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channels first -> last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        gray = _to_uint8(array)
        return np.repeat(gray[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    pixels = _to_uint8(array)
    if bgr:
        pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[-1]]]
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:].astype(np.float32) / 255.0
        blended = pixels[..., :3].astype(np.float32) * alpha + FILL * (1.0 - alpha)
        pixels = np.rint(blended).astype(np.uint8)
    return np.ascontiguousarray(pixels)
