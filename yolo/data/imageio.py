"""Image files: a cheap header probe (for the index) and a fast decode (for every sample).

``probe_image`` reads only the header (PIL, lazy) and the file's tail, so indexing tens of
thousands of images takes seconds; it catches missing, empty, unidentifiable and truncated files,
odd pixel formats and EXIF orientation. ``decode_image`` decodes with OpenCV straight to RGB uint8,
using libjpeg's reduced-size decoding (1/2, 1/4, 1/8) when the image is at least twice the size
that is needed, and honouring or ignoring EXIF orientation as the index decided.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "WEBP", "TIFF")  # PIL format names OpenCV decodes
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND"
# EXIF orientations 5-8 swap width and height when applied.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_CONVERTED_MODES = {"L": "grayscale", "LA": "grayscale+alpha", "RGBA": "alpha", "P": "palette",
                    "PA": "palette+alpha", "CMYK": "CMYK", "I;16": "16-bit", "I;16B": "16-bit",
                    "I;16L": "16-bit", "I": "32-bit integer", "F": "float", "1": "1-bit",
                    "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}


# Images the pipeline refuses at index time (reported, never fatal):
MAX_PIXELS = 2 * 89_478_485  # PIL's decompression-bomb limit (~179 megapixels); larger headers are refused
MIN_SIDE = 8  # pixels: a side below this holds nothing to detect
MAX_ASPECT = 32.0  # long / short side: at the smallest input (32 px) the short side still gets >= 1 pixel,
#                    so letterbox, mosaic and the transforms never produce an empty image


class ImageError(Exception):
    """An image that cannot be used. ``kind`` is a problem kind (see ``problems.KINDS``)."""

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


def _tail(path: str, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - n))
        return f.read()


def probe_image(path: str) -> ImageProbe:
    """Header facts of an image file; raises ``ImageError`` for an unusable one.

    Checks, in order: the file exists, is not empty, PIL identifies it, and (JPEG/PNG) its last
    bytes hold the end marker, which catches truncated files without decoding them.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ImageError("image_missing", "no such file") from None
    except OSError as e:
        raise ImageError("image_unreadable", str(e)) from None
    if size == 0:
        raise ImageError("image_unreadable", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, mode, (w, h) = im.format or "", im.mode, im.size
                orientation = int(im.getexif().get(0x0112, 1) or 1) if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else 1
    except Image.DecompressionBombError as e:
        raise ImageError("image_too_large", str(e).split(" could be")[0]) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError("image_unreadable", f"not a readable image: {e}") from None
    check_size(w, h)
    if fmt not in DECODABLE_FORMATS:
        raise ImageError("image_unsupported", f"{fmt or 'unknown'} image, not {'/'.join(DECODABLE_FORMATS)}")
    bits = 8
    if fmt == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        bits = head[24] if len(head) > 24 else 8  # IHDR bit depth
    tail = _tail(path)
    if fmt == "JPEG" and _JPEG_EOI not in tail:
        raise ImageError("image_truncated", "JPEG end-of-image marker missing")
    if fmt == "PNG" and _PNG_IEND not in tail:
        raise ImageError("image_truncated", "PNG IEND chunk missing")
    return ImageProbe(w, h, mode, orientation if 1 <= orientation <= 8 else 1, fmt, bits)


def check_size(width: int, height: int) -> None:
    """Raise ``ImageError`` for a size the pipeline cannot use: empty, over ``MAX_PIXELS``, a side
    under ``MIN_SIDE`` or an aspect ratio over ``MAX_ASPECT``."""
    if width <= 0 or height <= 0:
        raise ImageError("image_unreadable", f"bad image size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageError("image_too_large", f"{width}x{height} = {width * height / 1e6:.0f} megapixels "
                                            f"(limit {MAX_PIXELS / 1e6:.0f})")
    if min(width, height) < MIN_SIDE or max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageError("image_too_thin", f"{width}x{height}: needs sides >= {MIN_SIDE} px and an "
                                           f"aspect ratio <= {MAX_ASPECT:g}:1")


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


def decode_image(path: str, reduction: int = 1, apply_exif: bool = True) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3), optionally 1/2, 1/4 or 1/8 size.

    Grayscale, CMYK, 16-bit, alpha and palette images all come out as 8-bit RGB (OpenCV's
    IMREAD_COLOR conversion). ``apply_exif`` rotates/flips by the EXIF orientation tag.
    Raises ``ImageError("image_unreadable", ...)`` when OpenCV cannot decode the file.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageError("image_unreadable", str(e)) from None
    flags = _REDUCED[reduction] | (0 if apply_exif else cv2.IMREAD_IGNORE_ORIENTATION)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ImageError("image_unreadable", f"OpenCV could not decode {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Resize (H, W, C) so that max(H, W) == long_side, keeping the aspect ratio (area filter
    when shrinking, bilinear when enlarging)."""
    h, w = image.shape[:2]
    r = long_side / max(h, w)
    if r == 1:
        return image
    size = (max(1, round(w * r)), max(1, round(h * r)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
