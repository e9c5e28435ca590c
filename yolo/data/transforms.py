"""Training and evaluation transforms (the data pipeline, the dashboard and the tests use them).

The letterbox itself (resize + pad, and its box mappings) is core: ``yolo.letterbox``.

* ``train_transforms(size)``: the training augmentation applied to a ``size`` x ``size``
  canvas (a letterboxed image or a mosaic), see ``yolo.data.augment``: one affine warp (zoom =
  scale jitter and crop, translation, rotation, shear, horizontal flip), colour jitter (HSV,
  brightness/contrast) and, rarely, one of blur / CLAHE / posterize / greyscale / channel
  shuffle. Boxes follow the warp; boxes that lose most of their area, get thinner than
  ``min_side`` pixels or more elongated than ``max_aspect`` are dropped.
* ``eval_transforms(size)``: the same letterbox as an Albumentations pipeline.
* ``place_image``: warp an image into a rectangle of a canvas (one ``cv2.warpAffine`` that both
  resizes and crops), used by the letterbox of training samples and by the mosaic.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from yolo.letterbox import FILL


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


# --------------------------------------------------------------------------- placement warp
def place_image(canvas: np.ndarray, image: np.ndarray, placed: np.ndarray, visible: np.ndarray) -> None:
    """Warp ``image`` so it fills rectangle ``placed`` of ``canvas``; write only ``visible``.

    Args:
        canvas (ndarray[S, S, 3] uint8): written in place.
        image (ndarray[h, w, 3] uint8): any resolution (it is resized by the warp).
        placed (ndarray[4]): integer (x0, y0, x1, y1) where the whole image would go, canvas
            pixels; may extend past the canvas.
        visible (ndarray[4]): integer part of ``placed`` inside the canvas to write.
    One ``cv2.warpAffine`` resizes and crops at once; pixel centres follow ``cv2.resize``.
    """
    vx0, vy0, vx1, vy1 = (int(v) for v in visible)
    if vx1 <= vx0 or vy1 <= vy0:
        return
    h, w = image.shape[:2]
    ax, ay = (placed[2] - placed[0]) / w, (placed[3] - placed[1]) / h
    m = np.array([[ax, 0, 0.5 * ax - 0.5 + placed[0] - vx0],
                  [0, ay, 0.5 * ay - 0.5 + placed[1] - vy0]], dtype=np.float64)
    roi = canvas[vy0:vy1, vx0:vx1]
    cv2.warpAffine(image, m, (vx1 - vx0, vy1 - vy0), dst=roi, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE)


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


# ---------------------------------------------------------------------------- pipelines
def train_transforms(size: int, cfg: AugConfig | None = None, letterbox: bool = False):
    """The training augmentation for ``size`` x ``size`` canvases (``augment.TrainAugment``).

    Call as ``t(image=img, bboxes=boxes_xyxy, box_ids=np.arange(N))``; ``box_ids`` tells which
    input boxes survived (use it to pick labels and difficult flags). One affine warp (zoom,
    shift, rotation, shear, flip), then colour jitter. With ``letterbox=True`` the pipeline first
    letterboxes an image of any size (for the dashboard), inside the same warp.
    """
    from yolo.data.augment import TrainAugment

    return TrainAugment(size, cfg, letterbox)


def eval_transforms(size: int) -> A.Compose:
    """The evaluation letterbox as an Albumentations pipeline (same geometry as ``yolo.letterbox.letterbox``,
    built from Albumentations' own transforms; the tests hold the two to each other).

    Call as ``t(image=img, bboxes=boxes_xyxy, box_ids=np.arange(N))``.
    """
    return A.Compose([A.LongestMaxSize(max_size=size),
                      A.PadIfNeeded(size, size, position="center", border_mode=cv2.BORDER_CONSTANT, fill=FILL)],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_ids"], clip=True))
