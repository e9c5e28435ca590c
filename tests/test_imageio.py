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
