"""yolo.imageio, the one image decoder: files and bytes alike, EXIF orientation (also for images
with transparency, which OpenCV decodes without turning), transparency over gray, the size limit,
reduced JPEG decoding, and the usability limits that only the dataset index applies."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

import yolo.imageio as imageio
from yolo.imageio import ImageError, load_image, probe_image, read_image
from yolo.letterbox import FILL


def noise(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, c)) * 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


def test_file_and_bytes_read_the_same_pixels(tmp_path):
    rgb = noise(30, 40)
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes(rgb))
    assert np.array_equal(read_image(path), rgb) and np.array_equal(read_image(path.read_bytes()), rgb)
    assert np.array_equal(read_image(str(path)), rgb)


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(orientation, alpha):
    """Every EXIF orientation gives PIL's ``exif_transpose`` result, with or without an alpha channel
    (OpenCV turns opaque images itself; with alpha ``read_image`` turns them)."""
    pixels = noise(12, 20, 4 if alpha else 3, seed=orientation)
    if alpha:
        pixels[..., 3] = 255
    data = png_bytes(pixels, orientation)
    with Image.open(io.BytesIO(data)) as pil:
        want = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
    assert np.array_equal(read_image(data), want)


def test_transparent_pixels_are_gray_like_arrays_and_pil_images():
    rgba = noise(16, 24, 4)
    rgba[:8, :, 3] = 0  # top half clear
    rgba[8:, :, 3] = 255
    got = read_image(png_bytes(rgba))
    assert (got[:8] == FILL).all() and np.array_equal(got[8:], rgba[8:, :, :3])
    assert np.array_equal(got, load_image(rgba)) and np.array_equal(got, load_image(Image.fromarray(rgba)))


def test_size_limit_and_thin_images(tmp_path, monkeypatch):
    thin = png_bytes(noise(4, 200))  # 4 px high, aspect 50
    assert read_image(thin).shape == (4, 200, 3)  # inference reads it
    with pytest.raises(ImageError) as err:
        probe_image(thin)  # the dataset index refuses it (training's smallest input is 32 px)
    assert err.value.kind == "image_too_thin"
    monkeypatch.setattr(imageio, "MAX_PIXELS", 30 * 40 - 1)
    with pytest.raises(ImageError) as err:
        read_image(png_bytes(noise(30, 40)))
    assert err.value.kind == "image_too_large"
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(noise(30, 40)))
    with pytest.raises(ValueError, match="cannot read image .*megapixels"):
        load_image(path)  # ImageError is a ValueError; load_image names the file


def test_reduced_jpeg_decode_keeps_at_least_max_side():
    buffer = io.BytesIO()
    Image.fromarray(noise(600, 800)).save(buffer, format="JPEG")
    assert read_image(buffer.getvalue()).shape == (600, 800, 3)
    assert read_image(buffer.getvalue(), max_side=200).shape == (150, 200, 3)  # 1/4 size
    assert read_image(buffer.getvalue(), max_side=300).shape == (300, 400, 3)  # 1/2 size


def test_unreadable_and_truncated_bytes():
    with pytest.raises(ValueError, match="cannot read the uploaded image"):
        load_image(b"not an image")
    buffer = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    with pytest.raises(ImageError) as err:
        read_image(data[: len(data) // 2])
    assert err.value.kind == "image_truncated"


# ------------------------------------------------------------------ odd inputs to the Detector (issue 21 item 9)
EMPTY = [np.zeros((0, 0, 3), np.uint8), np.zeros((10, 0, 3), np.uint8), np.zeros((0, 10), np.float32),
         np.zeros((3, 0, 0), np.uint8), np.zeros((0,), np.uint8)]


@pytest.mark.parametrize("array", EMPTY, ids=[str(a.shape) for a in EMPTY])
def test_empty_images_are_a_message(array):
    import torch

    from yolo.detect import Detector
    from yolo.model import YOLOv3

    detector = Detector(YOLOv3(2, 0.125), ["a", "b"], image_size=64)
    for image in (array, torch.from_numpy(array)):
        with pytest.raises(ValueError, match="an empty image"):
            detector.predict(image)
    with pytest.raises(ValueError, match=r"an empty image \(0 x 0 pixels\)"):
        detector.predict(Image.new("RGB", (0, 0)))


def test_bfloat16_and_other_tensor_dtypes_read_like_float32():
    import torch

    pixels = torch.rand(3, 20, 30)
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        t = pixels.to(dtype)
        want = np.clip(np.rint(t.float().permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
        assert np.array_equal(load_image(t), want), dtype
    if hasattr(torch, "float8_e4m3fn"):
        t = pixels.to(torch.float8_e4m3fn)
        assert np.array_equal(load_image(t), load_image(t.float()))
    with pytest.raises(ValueError, match="meta tensor"):
        load_image(torch.empty(3, 8, 8, device="meta"))
    with pytest.raises(ValueError, match="dense image tensor"):
        load_image(torch.eye(8).to_sparse())


def test_premultiplied_la_is_blended_over_gray():
    """PIL mode 'La' holds gray premultiplied by alpha: over the gray fill the pixel is
    Lp + FILL * (1 - a / 255) (hand-worked: 64 + 114 * 127 / 255 = 120.8)."""
    pil = Image.new("La", (6, 4), (64, 128))
    got = load_image(pil)
    assert got.shape == (4, 6, 3) and abs(int(got[0, 0, 0]) - (64 + FILL * (1 - 128 / 255))) <= 1
    opaque = Image.new("La", (6, 4), (90, 255))
    assert (load_image(opaque) == 90).all()


ODD_MODES = ["La", "LA", "L", "P", "PA", "I;16", "I;16B", "I;16L", "I", "F", "1", "CMYK", "YCbCr", "LAB",
             "HSV", "RGBa", "RGBX", "RGBA"]


@pytest.mark.parametrize("mode", ODD_MODES)
def test_every_pil_mode_reaches_the_detector(mode):
    from yolo.detect import Detector
    from yolo.model import YOLOv3

    pil = Image.new(mode, (40, 24))
    prediction = Detector(YOLOv3(2, 0.125), ["a", "b"], image_size=64).predict(pil)
    assert prediction.image.shape == (24, 40, 3) and prediction.image.dtype == np.uint8
    assert prediction.orig_size == (24, 40)
    if mode in ("L", "P", "CMYK", "YCbCr", "RGBX", "1"):  # no alpha, 8 bits: PIL's own conversion
        assert np.array_equal(prediction.image, np.asarray(pil.convert("RGB")))


def test_training_decode_blends_a_transparent_png_whatever_its_name(tmp_path):
    """decode_rgb tells a JPEG by its first bytes, not its name: a transparent PNG saved as .jpg (as
    scraped or exported data has) is blended over gray like read_image does; a real JPEG named
    .png decodes as the JPEG it is."""
    from PIL import Image

    from yolo.imageio import FILL, decode_rgb, read_image

    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half
    rgba[:, 25:, 3] = 255
    for name in ("t.png", "t.jpg", "T.JPEG"):
        Image.fromarray(rgba).save(tmp_path / name, format="PNG")
        got = decode_rgb(str(tmp_path / name), 50)
        np.testing.assert_array_equal(got, read_image(str(tmp_path / name)))
        assert got[0, 0].tolist() == [FILL] * 3 and got[0, 49].tolist() == [255, 0, 0], name
    Image.fromarray(rgba[..., :3]).save(tmp_path / "j.png", format="JPEG", quality=95)
    np.testing.assert_array_equal(decode_rgb(str(tmp_path / "j.png"), 50), read_image(str(tmp_path / "j.png")))
