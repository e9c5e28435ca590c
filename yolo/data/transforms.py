"""Training and evaluation transforms (the data pipeline, the dashboard and the tests use them).

The letterbox itself (resize + pad, and its box mappings) is core: ``yolo.letterbox``.

* ``train_transforms(size)``: the training augmentation applied to a ``size`` x ``size``
  canvas (a letterboxed image or a mosaic), see ``yolo.data.augment``: one affine warp (zoom =
  scale jitter and crop, translation, rotation, shear, horizontal flip), colour jitter (HSV,
  brightness/contrast) and, rarely, one of blur / CLAHE / posterize / greyscale / channel
  shuffle. Boxes follow the warp; boxes that lose most of their area, get thinner than
  ``min_side`` pixels or more elongated than ``max_aspect`` are dropped.
* ``eval_transforms(size)``: the evaluation letterbox (``yolo.letterbox.letterbox``, the one rule
  every evaluation path follows) called as an Albumentations pipeline is.
* ``place_image``: warp an image into a rectangle of a canvas (one ``cv2.warpAffine`` that both
  resizes and crops), used by the letterbox of training samples and by the mosaic.

``AugConfig`` (the knobs) and ``box_candidates`` (which boxes survive a warp) belong to the
augmentation itself and live in ``yolo.data.augment``, below this module.
"""

from __future__ import annotations

import cv2
import numpy as np

from yolo.data.augment import AugConfig, TrainAugment
from yolo.letterbox import boxes_to_letterbox, letterbox


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


# ---------------------------------------------------------------------------- pipelines
def train_transforms(size: int, cfg: AugConfig | None = None, letterbox: bool = False):
    """The training augmentation for ``size`` x ``size`` canvases (``augment.TrainAugment``).

    Call as ``t(image=img, bboxes=boxes_xyxy, box_ids=np.arange(N))``; ``box_ids`` tells which
    input boxes survived (use it to pick labels and difficult flags). One affine warp (zoom,
    shift, rotation, shear, flip), then colour jitter. With ``letterbox=True`` the pipeline first
    letterboxes an image of any size (for the dashboard), inside the same warp.
    """
    return TrainAugment(size, cfg, letterbox)


class EvalLetterbox:
    """``yolo.letterbox.letterbox`` behind Albumentations' call: ``t(image=img, bboxes=boxes_xyxy,
    box_ids=ids)`` -> {"image", "bboxes" (clipped to the square), "box_ids"}; boxes of zero area after
    clipping are dropped with their ids, as Albumentations drops them."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, image: np.ndarray, bboxes=(), box_ids=(), **_) -> dict:
        out, lb = letterbox(image, self.size)
        boxes = np.clip(boxes_to_letterbox(np.asarray(bboxes, np.float32).reshape(-1, 4), lb), 0, self.size)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return {"image": out, "bboxes": boxes[keep], "box_ids": np.asarray(box_ids).reshape(-1)[keep]}


def eval_transforms(size: int) -> EvalLetterbox:
    """The evaluation letterbox with Albumentations' calling convention. It IS ``yolo.letterbox.letterbox``
    (INTER_AREA shrink, gray ``FILL`` padding), not Albumentations' LongestMaxSize + PadIfNeeded, whose
    bilinear shrink gives other pixels (the tests hold the geometry of the two to each other).

    Call as ``t(image=img, bboxes=boxes_xyxy, box_ids=np.arange(N))``.
    """
    return EvalLetterbox(size)