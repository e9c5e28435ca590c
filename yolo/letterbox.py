"""Letterbox: the evaluation and inference resize, and its box mapping (numpy and OpenCV only).

Scale the longer side to ``size`` and pad to a ``size`` x ``size`` square with gray ``FILL``,
centred. ``letterbox_params`` gives the mapping for an image size (h, w); ``letterbox`` applies it
to an image; ``boxes_to_letterbox`` / ``boxes_from_letterbox`` map pixel xyxy boxes there and back
and work on numpy arrays and torch tensors alike.

The one rule from an image file to the model's input (``yolo.imageio.model_input``): decode at
full size (``read_image``: EXIF orientation, transparency over gray), then ``letterbox``. Every
evaluation path follows it: training-time validation (``EvalDataset``), the Detector, split
predictions (``python -m yolo.evaluate``, the Evaluate page), GradCAM and ONNX export; only
training samples take shortcuts (reduced JPEG decodes, the augmentation warp). Used by the data pipeline (evaluation samples,
the training warp), the Detector, split predictions, GradCAM and ONNX export; it imports neither
albumentations nor Lightning, so inference stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FILL = 114  # gray of letterbox/mosaic padding and affine borders


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``orig_size`` (h, w) maps into a ``size`` x ``size`` letterbox.

    A point (x, y) of the original image lands at (x * scale + pad_x, y * scale + pad_y).
    The resized image is ``new_size`` (h, w) = round(orig * scale); it is at most half a pixel
    off the exact ``orig * scale``, so mapped boxes are exact to that much.
    """

    size: int
    orig_size: tuple[int, int]
    scale: float
    pad_x: int
    pad_y: int

    @property
    def new_size(self) -> tuple[int, int]:
        h, w = self.orig_size
        return max(1, round(h * self.scale)), max(1, round(w * self.scale))

    def as_dict(self) -> dict:
        return {"size": self.size, "orig_size": self.orig_size, "scale": self.scale,
                "pad_x": self.pad_x, "pad_y": self.pad_y}


def letterbox_params(orig_size: tuple[int, int], size: int) -> Letterbox:
    """Letterbox of an image of ``orig_size`` (h, w) into ``size`` x ``size``, centred."""
    h, w = int(orig_size[0]), int(orig_size[1])
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return Letterbox(int(size), (h, w), scale, (size - nw) // 2, (size - nh) // 2)


def letterbox(image: np.ndarray, size: int, orig_size: tuple[int, int] | None = None,
              fill: int = FILL) -> tuple[np.ndarray, Letterbox]:
    """Resize the longer side to ``size`` and pad to ``size`` x ``size`` (gray ``fill``), centred.

    Args:
        image (ndarray[H, W, C] uint8): the image, possibly a reduced decode of the original.
        size: output side, pixels.
        orig_size: (h, w) of the original image the parameters refer to (default: image's own).

    Returns:
        the letterboxed image (ndarray[size, size, C]) and its ``Letterbox`` parameters; map boxes
        with ``boxes_to_letterbox`` and back with ``boxes_from_letterbox``.
    """
    lb = letterbox_params(orig_size or image.shape[:2], size)
    nh, nw = lb.new_size
    resized = letterbox_resize(image, lb)
    out = np.full((size, size) + image.shape[2:], fill, dtype=image.dtype)
    out[lb.pad_y:lb.pad_y + nh, lb.pad_x:lb.pad_x + nw] = resized.reshape(nh, nw, *image.shape[2:])
    return out, lb


def letterbox_resize(image: np.ndarray, lb: Letterbox) -> np.ndarray:
    """The resize step of ``letterbox`` alone: ``image`` (H, W, C) -> ``lb.new_size``.

    INTER_AREA when shrinking (it averages, as a reduced decode would, without aliasing),
    INTER_LINEAR when enlarging; an image already at ``new_size`` comes back unchanged (a copy),
    so a cache may hold this step's result (``yolo.data.datasets.ImageCache(exact=True)``).
    """
    nh, nw = lb.new_size
    shrink = nw < image.shape[1]
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _clip(x, lo: float, hi: float):
    return x.clamp(lo, hi) if hasattr(x, "clamp") else np.clip(x, lo, hi)


def _copy(x):
    return x.clone() if hasattr(x, "clone") else np.array(x, dtype=np.float32, copy=True)


def boxes_to_letterbox(boxes, lb: Letterbox):
    """Original-image pixel xyxy (ndarray or Tensor [..., 4]) -> letterboxed pixel xyxy."""
    out = _copy(boxes)
    out[..., 0::2] = boxes[..., 0::2] * lb.scale + lb.pad_x
    out[..., 1::2] = boxes[..., 1::2] * lb.scale + lb.pad_y
    return out


def boxes_from_letterbox(boxes, lb: Letterbox | dict, clip: bool = True):
    """Letterboxed pixel xyxy (ndarray or Tensor [..., 4]) -> original-image pixel xyxy.

    ``lb`` is a ``Letterbox`` or its ``as_dict()`` (what eval batches carry in ``meta``).
    With ``clip`` the result is clipped to the original image.
    """
    if isinstance(lb, dict):
        lb = Letterbox(lb["size"], tuple(lb["orig_size"]), lb["scale"], lb["pad_x"], lb["pad_y"])
    out = _copy(boxes)
    out[..., 0::2] = (boxes[..., 0::2] - lb.pad_x) / lb.scale
    out[..., 1::2] = (boxes[..., 1::2] - lb.pad_y) / lb.scale
    if clip:
        h, w = lb.orig_size
        out[..., 0::2] = _clip(out[..., 0::2], 0, w)
        out[..., 1::2] = _clip(out[..., 1::2], 0, h)
    return out
