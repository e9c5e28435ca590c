"""Candidates (every decoded slot of a forward pass) and their selection into ``Detections``.

Pure tensor functions beside ``yolo.postprocess`` (whose NMS they use): the Detector's
``Prediction.select`` and the whole-split ``PredictionSet.detections`` both go through ``select``.
Boxes are (x1, y1, x2, y2) pixels of the original image; sizes (height, width). A candidate's flat
``slot`` index follows ``yolo.targets.decode_outputs`` (``unravel_slot`` turns it back into
(scale, anchor, row, column)), which is where GradCAM looks for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from yolo.config import ANCHORS, PostprocessConfig, grid_sizes
from yolo.letterbox import Letterbox, boxes_from_letterbox
from yolo.postprocess import nms_indices, top_k_per_image
from yolo.targets import decode_outputs


# --------------------------------------------------------------------------------------------
# Candidates and their selection (pure tensor functions)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Decoded candidates of a batch, flat. All tensors have K rows.

    boxes (K, 4) xyxy pixels of each original image; scores (K,) = sigmoid(obj) * max softmax;
    labels (K,) int64; slots (K,) int64 flat slot index in ``decode_outputs`` order (see
    ``unravel_slot``); images (K,) int64 index of the image in the batch.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    slots: Tensor
    images: Tensor


def decode_candidates(
    outputs: Sequence[Tensor],
    letterboxes: Sequence[Letterbox],
    conf_floor: float = 0.0,
    max_per_image: int | None = None,
    anchors: Sequence = ANCHORS,
) -> Candidates:
    """Raw outputs of a batch -> every candidate above ``conf_floor``, in original pixels.

    Args:
        outputs: 3 raw tensors (B, 3, S, S, 5 + C).
        letterboxes: B letterbox records (from ``yolo.letterbox.letterbox``), one per image.
        conf_floor: keep candidates whose score exceeds it (0 keeps all 3 * sum(S^2) per image).
        max_per_image: keep at most this many per image, highest scores first (None: all).
    """
    boxes, objectness, class_logits = decode_outputs(outputs, anchors)  # (B, M, 4), (B, M), (B, M, C)
    prob, labels = class_logits.softmax(dim=-1).max(dim=-1)
    scores = objectness * prob  # (B, M)
    batch, m = scores.shape
    if max_per_image is not None and max_per_image < m:
        top = torch.topk(scores, max_per_image, dim=1).indices  # (B, k)
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top, True) & (scores > conf_floor)
    else:
        keep = scores > conf_floor
    images, slots = torch.nonzero(keep, as_tuple=True)
    counts = torch.bincount(images, minlength=batch).tolist()  # nonzero lists image by image
    per_image = torch.split(boxes[images, slots], counts)  # letterboxed input pixels
    original = torch.cat([boxes_from_letterbox(b, lb) for b, lb in zip(per_image, letterboxes)])
    return Candidates(original, scores[images, slots], labels[images, slots], slots, images)


def unravel_slot(slot: int, image_size: int) -> tuple[int, int, int, int]:
    """Flat slot index -> (scale, anchor, row, column) for a square input of ``image_size``;
    scale 0/1/2 = stride 32/16/8 (the order of ``yolo.targets.decode_outputs``)."""
    offset = 0
    for scale, size in enumerate(grid_sizes(image_size)):
        count = 3 * size * size
        if slot < offset + count:
            local = slot - offset
            return scale, local // (size * size), (local // size) % size, local % size
        offset += count
    raise IndexError(f"slot {slot} outside the {offset} slots of a {image_size} input")


def class_ids(classes: Iterable[int | str] | None, class_names: Sequence[str]) -> list[int] | None:
    """Class filter given as ids and/or names -> sorted ids; None means every class."""
    if classes is None:
        return None
    ids = set()
    for c in classes:
        if isinstance(c, str):
            if c not in class_names:
                raise ValueError(f"unknown class {c!r}; choose from {', '.join(class_names)}")
            ids.add(class_names.index(c))
        else:
            if not 0 <= int(c) < len(class_names):
                raise ValueError(f"class id {c} outside 0..{len(class_names) - 1}")
            ids.add(int(c))
    return sorted(ids)


def select(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    images: Tensor,
    num_images: int,
    config: PostprocessConfig,
    classes: Sequence[int] | None = None,
    class_conf: Tensor | None = None,
) -> list[Tensor]:
    """Confidence filter, class filter, pre-NMS top-k and (class-aware) NMS of flat candidates.

    Args:
        boxes (Tensor[K, 4]) xyxy; scores, labels, images (Tensor[K]).
        config: conf_threshold, iou_threshold, max_detections, class_agnostic, pre_nms_top_k
            (at most this many candidates per image enter NMS, best first; None: all. NMS
            time grows with the square of the candidates, and only a model unsure everywhere,
            untrained or at a very low threshold, has more than 1000).
        classes: keep only these class ids (None: all), applied before NMS.
        class_conf (Tensor[C]): a confidence threshold per class (an operating point), used
            instead of ``config.conf_threshold`` when given.

    Returns:
        ``num_images`` Tensors of row indices into the inputs, highest score first.
    """
    if class_conf is not None:
        keep = scores > torch.as_tensor(class_conf, dtype=scores.dtype, device=scores.device)[labels]
    else:
        keep = scores > config.conf_threshold
    if classes is not None:
        keep &= torch.isin(labels, torch.as_tensor(classes, dtype=labels.dtype, device=labels.device))
    idx = torch.nonzero(keep).squeeze(1)
    k = config.pre_nms_top_k
    if k is not None and idx.numel() > k:
        # one image: a plain top-k (no sorts, which are slow on a busy machine's threads)
        top = torch.topk(scores[idx], k).indices if num_images == 1 else top_k_per_image(scores[idx], images[idx], k)
        idx = idx[top]
    kept = nms_indices(boxes[idx], scores[idx], labels[idx], images[idx], num_images,
                       config.iou_threshold, config.max_detections, config.class_agnostic)
    return [idx[k] for k in kept]


# --------------------------------------------------------------------------------------------
# Detections and the immutable Prediction


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one image, highest score first. K rows; the one detections type.

    boxes (Tensor[K, 4]) float32 (x1, y1, x2, y2) pixels of the original image; scores (Tensor[K]);
    labels (Tensor[K]) int64; names: class name per row; slots (Tensor[K]) int64 flat slot index
    in ``decode_outputs`` order (``unravel_slot``); orig_size: (height, width) of the original.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    names: list[str]
    slots: Tensor
    orig_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.scores.numel())

    def rows(self, index: Sequence[int] | Tensor) -> Detections:
        """The detections at these row positions, in the order given."""
        index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        return Detections(self.boxes[index], self.scores[index], self.labels[index],
                          [self.names[i] for i in index.tolist()], self.slots[index], self.orig_size)

    def as_dict(self) -> dict[str, Tensor]:
        """{"boxes", "scores", "labels"}: the per-image form ``yolo.metrics`` (and torchmetrics) read."""
        return {"boxes": self.boxes, "scores": self.scores, "labels": self.labels}

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per detection (for tables): class, score, x1, y1, x2, y2."""
        return [
            {"class": n, "label": int(l), "score": float(s), **dict(zip(("x1", "y1", "x2", "y2"), b.tolist()))}
            for n, l, s, b in zip(self.names, self.labels, self.scores, self.boxes)
        ]
