"""The training augmentation (yolo.data.augment) against Albumentations, the library whose
transforms it replaces: same warp and boxes for the same parameters, same colour definitions,
the same probabilities, and the letterbox folded into the warp equal to doing it in two steps."""

from __future__ import annotations

import math
import random

import albumentations as A
import cv2
import numpy as np
import pytest
from albumentations.augmentations.pixel import functional as F

from yolo.data.augment import (
    AugConfig,
    TrainAugment,
    affine_boxes,
    affine_matrix,
    brightness_contrast,
    random_affine,
    shift_hsv,
    warp,
)
from yolo.letterbox import FILL, boxes_to_letterbox, letterbox


def _scene(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A black image with three solid rectangles (one in the corner) and their boxes."""
    image = np.zeros((h, w, 3), np.uint8)
    boxes = np.array([[10, 12, 60, 40], [w - 40, 30, w - 4, 90], [0, 0, 20, 20]], np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        image[y0:y1, x0:x1] = ((200, 40, 10), (30, 220, 90), (250, 250, 0))[k]
    return image, boxes


@pytest.mark.parametrize(("scale", "t", "rotate", "shear", "flip"), [
    ((1.2, 0.8), (0.1, -0.05), 4.0, (2.0, -1.5), False),
    ((0.7, 1.3), (-0.1, 0.1), -5.0, (-2.0, 2.0), True),
    ((1.0, 1.0), (0.0, 0.0), 0.0, (0.0, 0.0), True),
])
def test_affine_is_albumentations_affine_then_flip(scale, t, rotate, shear, flip):
    """Same image (up to OpenCV's fixed-point interpolation) and same boxes as A.Affine with the
    same parameters (and A.HorizontalFlip), on a square canvas."""
    image, boxes = _scene(96, 96)
    aff = A.Affine(scale={"x": (scale[0],) * 2, "y": (scale[1],) * 2},
                   translate_percent={"x": (t[0],) * 2, "y": (t[1],) * 2}, rotate=(rotate, rotate),
                   shear={"x": (shear[0],) * 2, "y": (shear[1],) * 2}, border_mode=cv2.BORDER_CONSTANT,
                   fill=FILL, p=1)
    ref = A.Compose([aff] + ([A.HorizontalFlip(p=1)] if flip else []),
                    bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"], clip=True))
    r = ref(image=image, bboxes=boxes, ids=np.arange(3))
    # A.Affine: pixel shift int(t * side), shear angles negated
    m = affine_matrix(96, scale, (int(t[0] * 96), int(t[1] * 96)), rotate, (-shear[0], -shear[1]), flip)
    mine = warp(image, m, 96)
    diff = np.abs(mine.astype(int) - r["image"])
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 8
    got = np.clip(affine_boxes(boxes, m), 0, 96)
    keep = (got[:, 2] > got[:, 0]) & (got[:, 3] > got[:, 1])
    np.testing.assert_allclose(got[keep], r["bboxes"], atol=1e-3)


def test_random_affine_draws_the_configured_ranges():
    """Over many draws: the flip share is flip_p; zoom, rotation and shear stay in their ranges and
    reach near both ends (recovered from the matrix without shear, then with)."""
    cfg = AugConfig(shear=0.0)
    rng = np.random.default_rng(0)
    n = 4000
    flips, zooms, angles = 0, [], []
    for _ in range(n):
        m = random_affine(rng, 100, cfg)
        flip = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0] < 0  # a mirror reverses orientation
        flips += flip
        a = m[:2, :2] * ([[-1], [1]] if flip else 1)
        zooms += [math.hypot(a[0, 0], a[1, 0]), math.hypot(a[0, 1], a[1, 1])]
        angles.append(math.degrees(math.atan2(a[0, 1], a[1, 1])))
    assert abs(flips / n - cfg.flip_p) < 0.05
    assert cfg.scale[0] <= min(zooms) < cfg.scale[0] + 0.01 and cfg.scale[1] - 0.01 < max(zooms) <= cfg.scale[1]
    assert -cfg.degrees <= min(angles) < -cfg.degrees + 0.1 and cfg.degrees - 0.1 < max(angles) <= cfg.degrees
    sheared = AugConfig(degrees=0.0, scale=(1.0, 1.0))
    k = [random_affine(rng, 100, sheared)[:2, :2] for _ in range(2000)]
    tans = np.array([abs(a[0, 1]) for a in k] + [abs(a[1, 0]) for a in k])
    assert tans.max() <= math.tan(math.radians(sheared.shear)) + 1e-9 and tans.max() > 0.95 * math.tan(math.radians(2))


def test_hsv_shift_is_albumentations_shift_hsv():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    image[:8] = rng.integers(0, 256, (8, 64, 1)).astype(np.uint8)  # grey rows: saturation 0 stays 0
    for hue, sat, val in [(5.3, 20.7, -10.2), (-8.0, -40.0, 30.0), (7.9, 39.5, -29.5), (0.4, -0.6, 0.5)]:
        ref = F.shift_hsv(image, hue, sat, val)
        mine = shift_hsv(image, hue, sat, val)
        np.testing.assert_array_equal(mine, ref, err_msg=str((hue, sat, val)))


def test_brightness_contrast_is_albumentations():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    for contrast, brightness in [(0.2, -0.2), (-0.15, 0.1), (0.0, 0.05)]:
        t = A.RandomBrightnessContrast(p=1)
        ref = t.apply(image, alpha=1 + contrast, beta=brightness * 255)
        mine = brightness_contrast(image, contrast, brightness)
        assert np.abs(mine.astype(int) - ref).max() <= 1


def test_letterbox_folded_into_the_warp_equals_two_steps():
    """TrainAugment(letterbox=True) on the raw image = letterbox first, then the same augmentation
    of the canvas (same seed): the same boxes, images equal up to interpolation."""
    image, boxes = _scene(96, 128)
    cfg = AugConfig(colour=False)
    one = TrainAugment(64, cfg, letterbox=True)
    two = TrainAugment(64, cfg)
    for seed in range(10):
        one.set_random_state(np.random.default_rng(seed), random.Random(seed))
        a = one(image=image, bboxes=boxes, box_ids=np.arange(3))
        canvas, lb = letterbox(image, 64)
        two.set_random_state(np.random.default_rng(seed), random.Random(seed))
        b = two(image=canvas, bboxes=boxes_to_letterbox(boxes, lb), box_ids=np.arange(3))
        np.testing.assert_array_equal(a["box_ids"], b["box_ids"])
        np.testing.assert_allclose(a["bboxes"], b["bboxes"], atol=1e-4)
        assert np.abs(a["image"].astype(int) - b["image"]).mean() < 6


def test_colour_probabilities():
    """Each colour step runs with its configured probability (counted on a grey image, where
    only brightness/contrast and posterize can change pixels, and on a colourful one)."""
    rng = np.random.default_rng(3)
    cfg = AugConfig(hsv_p=0.7, brightness_contrast_p=0.0, light_p=0.0)
    image = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    from yolo.data.augment import colour_jitter

    changed = np.mean([not np.array_equal(colour_jitter(image, rng, cfg), image) for _ in range(2000)])
    assert abs(changed - 0.7) < 0.05
    cfg = AugConfig(hsv_p=0.0, brightness_contrast_p=0.3, light_p=0.0)
    changed = np.mean([not np.array_equal(colour_jitter(image, rng, cfg), image) for _ in range(2000)])
    assert abs(changed - 0.3) < 0.05
