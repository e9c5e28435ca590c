"""The training augmentation: one affine warp (zoom, shift, rotation, shear, flip) and colour jitter.

What ``train_transforms(size)`` returns and ``TrainDataset`` applies to every training sample:

* geometry (``random_affine``): the distributions of Albumentations' ``A.Affine`` as the pipeline
  used it (zoom x and y drawn independently in ``scale``, shift up to ``translate`` of the side,
  rotation up to ``degrees``, shear up to ``shear`` degrees on both axes, about the centre), then a
  horizontal flip with probability ``flip_p``, all in one 3 x 3 matrix. The image goes through a
  single ``cv2.warpAffine``; a letterboxed sample's resize and padding are folded into that same
  warp (``pre``), so a plain sample is warped once from the decoded image. Boxes: the four corners
  are mapped and their bounding box taken (Albumentations' "largest_box"), clipped to the image and
  filtered by ``box_candidates`` (the same rules as ``A.BboxParams`` min_visibility / min_width /
  min_height / max_accept_ratio).
* colour (``colour_jitter``): hue/saturation/value shifts (probability ``hsv_p``, the definitions
  of ``A.HueSaturationValue``: hue modulo 180, saturation and value saturated, grey pixels stay
  grey), brightness/contrast (``brightness_contrast_p``, ``A.RandomBrightnessContrast``:
  x * (1 + c) + b * 255) as lookup tables, and rarely (``light_p``) one of Albumentations' blur /
  CLAHE / posterize / greyscale / channel shuffle.

Coordinates are continuous pixels (pixel (i, j) covers [j, j + 1) x [i, i + 1)); boxes are pixel
(x1, y1, x2, y2). All random draws come from one ``numpy.random.Generator`` in a fixed order
(geometry first, then colour), so a sample is reproducible from its seed and the geometry does not
depend on whether colour is on.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from yolo.letterbox import FILL, letterbox_params


# ------------------------------------------------------------------------------- knobs
@dataclass
class AugConfig:
    """Training augmentation knobs (the Albumentations transform each follows, in brackets)."""

    scale: tuple[float, float] = (0.6, 1.4)  # zoom range [Affine.scale]: >1 crops, <1 shrinks
    translate: float = 0.1  # max shift as a fraction of the side [Affine.translate_percent]
    degrees: float = 5.0  # max rotation, degrees [Affine.rotate]
    shear: float = 2.0  # max shear, degrees [Affine.shear]
    flip_p: float = 0.5  # horizontal flip probability [HorizontalFlip]
    hsv_p: float = 0.7  # probability of hue/saturation/value jitter [HueSaturationValue]
    hue: int = 8  # max hue shift (OpenCV hue units of 2 degrees)
    saturation: int = 40  # max saturation shift (of 255)
    value: int = 30  # max value shift (of 255)
    brightness_contrast_p: float = 0.3  # [RandomBrightnessContrast], +-0.2 each
    light_p: float = 0.1  # probability of one of blur/CLAHE/posterize/greyscale/channel shuffle
    colour: bool = True  # False: geometry only (for tests and for looking at boxes)
    min_visibility: float = 0.25  # drop a box keeping less than this share of its area
    min_side: float = 2.0  # drop a box thinner than this, pixels
    max_aspect: float = 20.0  # drop a box more elongated than this (long side / short side)


def box_candidates(before: np.ndarray, after: np.ndarray, min_side: float = 2.0,
                   min_area_ratio: float = 0.25, max_aspect: float = 20.0) -> np.ndarray:
    """Which boxes survive a crop (ndarray[N] bool), vectorised.

    before/after (ndarray[N, 4]) pixel xyxy of the same boxes before and after clipping, in the
    same frame. Kept: both sides >= min_side, area after >= min_area_ratio * area before, and
    long side / short side <= max_aspect.
    """
    w, h = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    area0 = (before[:, 2] - before[:, 0]) * (before[:, 3] - before[:, 1])
    aspect = np.maximum(w / np.maximum(h, 1e-6), h / np.maximum(w, 1e-6))
    return (w >= min_side) & (h >= min_side) & (w * h >= min_area_ratio * area0) & (aspect <= max_aspect)


# ------------------------------------------------------------------------------- geometry
def affine_matrix(size: int, scale: tuple[float, float], translate: tuple[float, float], rotate: float,
                  shear: tuple[float, float], flip: bool = False) -> np.ndarray:
    """The 3 x 3 matrix of a zoom/shift/rotation/shear about the centre of a size x size image.

    Args:
        scale: (sx, sy) zoom factors; translate: (tx, ty) in pixels; rotate: degrees
            (counter-clockwise on screen); shear: (x, y) in degrees; flip: mirror left-right after.
    Returns:
        ndarray[3, 3] float64 mapping continuous pixel (x, y, 1) of the input to the output:
        ``back @ shear @ rotate @ zoom @ to_origin`` (Albumentations' order), then the flip.
    """
    c = size / 2.0
    r = math.radians(rotate)
    cos, sin = math.cos(r), math.sin(r)
    kx, ky = math.tan(math.radians(shear[0])), math.tan(math.radians(shear[1]))
    # shear @ rotate, then the zoom on the columns
    a = np.array([[cos - kx * sin, sin + kx * cos], [ky * cos - sin, ky * sin + cos]]) * (scale[0], scale[1])
    m = np.empty((3, 3))
    m[:2, :2] = a
    m[:2, 2] = c - a @ (c, c) + translate
    m[2] = (0.0, 0.0, 1.0)
    if flip:
        m[0] = -m[0]
        m[0, 2] += size
    return m


def random_affine(rng: np.random.Generator, size: int, cfg: AugConfig) -> np.ndarray:
    """A random ``affine_matrix`` with ``cfg``'s ranges: independent uniform draws of the shift
    (x, y), shear (x, y), zoom (x, y) and rotation, and the flip with probability ``flip_p``."""
    u = rng.random(8)
    t = (2 * u[0:2] - 1) * (cfg.translate * size)
    shear = (2 * u[2:4] - 1) * cfg.shear
    scale = cfg.scale[0] + u[4:6] * (cfg.scale[1] - cfg.scale[0])
    rotate = (2 * u[6] - 1) * cfg.degrees
    flip = bool(u[7] < cfg.flip_p)
    return affine_matrix(size, (scale[0], scale[1]), (t[0], t[1]), rotate, (shear[0], shear[1]), flip)


def placement_matrix(image_shape: tuple[int, ...], placed) -> np.ndarray:
    """3 x 3 matrix taking continuous pixels of an image of ``image_shape`` (h, w, ...) onto the
    rectangle ``placed`` (x0, y0, x1, y1) of the canvas (the whole image fills the rectangle, so a
    reduced decode or a cached copy maps like the original)."""
    h, w = image_shape[:2]
    sx, sy = (placed[2] - placed[0]) / w, (placed[3] - placed[1]) / h
    return np.array([[sx, 0.0, placed[0]], [0, sy, placed[1]], [0, 0, 1]])


def warp(image: np.ndarray, matrix: np.ndarray, size: int, fill: int = FILL) -> np.ndarray:
    """``image`` (ndarray[H, W, C] uint8) through ``matrix`` (3 x 3, continuous pixels) into a new
    size x size image: one bilinear ``cv2.warpAffine``, ``fill`` outside the source."""
    a, t = matrix[:2, :2], matrix[:2, 2]
    m = np.empty((2, 3), np.float64)
    m[:, :2] = a
    m[:, 2] = a @ (0.5, 0.5) + t - 0.5  # pixel centres sit at index + 0.5
    channels = image.shape[2] if image.ndim == 3 else 1
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(fill,) * channels)


def affine_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Bounding boxes (ndarray[N, 4] float64, xyxy) of the mapped corners of ``boxes`` (xyxy)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    corners = b[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2) @ matrix[:2, :2].T + matrix[:2, 2]
    return np.concatenate((corners.min(axis=1), corners.max(axis=1)), axis=1)


# --------------------------------------------------------------------------------- colour
_LEVELS = np.arange(256, dtype=np.float64)[:, None]


def hsv_lut(hue: float, sat: float, val: float) -> np.ndarray:
    """(1, 256, 3) uint8 lookup table of an HSV shift on OpenCV's 8-bit HSV (hue 0..179):
    hue modulo 180, saturation and value saturated to 0..255, saturation 0 kept at 0; rounded as
    Albumentations' ``shift_hsv`` rounds (hue down, saturation and value shifts toward zero)."""
    lut = np.floor(_LEVELS + (hue, math.trunc(sat), math.trunc(val)))
    lut[:, 0] %= 180
    lut[0, 1] = 0
    return np.minimum(np.maximum(lut, 0), 255).astype(np.uint8).reshape(1, 256, 3)


def shift_hsv(image: np.ndarray, hue: float, sat: float, val: float) -> np.ndarray:
    """RGB uint8 image with hue/saturation/value shifted (OpenCV 8-bit HSV units)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    cv2.LUT(hsv, hsv_lut(hue, sat, val), dst=hsv)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def brightness_contrast(image: np.ndarray, contrast: float, brightness: float) -> np.ndarray:
    """uint8 image * (1 + contrast) + brightness * 255, saturated (one lookup table)."""
    lut = _LEVELS[:, 0] * (1.0 + contrast) + brightness * 255.0
    return cv2.LUT(image, np.minimum(np.maximum(lut, 0), 255).astype(np.uint8))


def light_transforms() -> A.Compose:
    """The rare extra colour step: one of blur / CLAHE / posterize / greyscale / channel shuffle."""
    return A.Compose([A.OneOf([A.Blur(blur_limit=(3, 3)), A.CLAHE(), A.Posterize(num_bits=(4, 6)),
                               A.ToGray(), A.ChannelShuffle()], p=1.0)])


def colour_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugConfig,
                  light: A.Compose | None = None) -> np.ndarray:
    """The colour augmentation of an RGB uint8 image (each step with its probability in ``cfg``)."""
    if rng.random() < cfg.hsv_p:
        h, s, v = rng.uniform(-1, 1, 3) * (cfg.hue, cfg.saturation, cfg.value)
        image = shift_hsv(image, h, s, v)
    if rng.random() < cfg.brightness_contrast_p:
        b, c = rng.uniform(-0.2, 0.2, 2)
        image = brightness_contrast(image, c, b)
    if rng.random() < cfg.light_p:
        light = light or light_transforms()
        light.set_random_state(rng, random.Random(int(rng.integers(2**63))))
        image = light(image=image)["image"]
    return image


# ------------------------------------------------------------------------------- pipeline
class TrainAugment:
    """The training augmentation for size x size samples (what ``train_transforms`` returns).

    ``t(image=img, bboxes=boxes_xyxy, box_ids=ids)`` -> {"image", "bboxes", "box_ids"} like an
    Albumentations pipeline (``box_ids`` says which input boxes survived); ``set_random_state``
    seeds it. ``image`` is a size x size canvas (boxes in its pixels), or any image with ``pre``,
    the 3 x 3 matrix into the size x size frame (see ``placement_matrix``). With ``letterbox=True``
    any image is letterboxed first (boxes in the image's own pixels), folded into the same warp.
    """

    def __init__(self, size: int, cfg: AugConfig | None = None, letterbox: bool = False):
        self.size, self.cfg, self.letterbox = int(size), cfg or AugConfig(), letterbox
        self.light = light_transforms()
        self.rng = np.random.default_rng()

    def set_random_state(self, rng: np.random.Generator, py_random: random.Random | None = None) -> None:
        self.rng = rng

    def __call__(self, *, image: np.ndarray, bboxes, box_ids=None, pre: np.ndarray | None = None) -> dict:
        size, cfg = self.size, self.cfg
        boxes = np.asarray(bboxes, np.float64).reshape(-1, 4)
        ids = np.arange(len(boxes)) if box_ids is None else np.asarray(box_ids).reshape(-1)
        if self.letterbox and pre is None:
            lb = letterbox_params(image.shape[:2], size)
            nh, nw = lb.new_size
            pre = placement_matrix(image.shape, (lb.pad_x, lb.pad_y, lb.pad_x + nw, lb.pad_y + nh))
            boxes = affine_boxes(boxes, pre)
        m = random_affine(self.rng, size, cfg)
        out = warp(image, m if pre is None else m @ pre, size)
        moved = affine_boxes(boxes, m)
        clipped = np.minimum(np.maximum(moved, 0), size)
        keep = box_candidates(moved, clipped, cfg.min_side, cfg.min_visibility, cfg.max_aspect)
        if cfg.colour:
            out = colour_jitter(out, self.rng, cfg, self.light)
        return {"image": out, "bboxes": clipped[keep].astype(np.float32), "box_ids": ids[keep]}
