"""Raw outputs -> detections: confidence filter, decode of the survivors, class-aware batched NMS.

A candidate's score is sigmoid(objectness) * max softmax(class logits) (YOLOv3's class-specific
confidence); since the score never exceeds the objectness, candidates are first filtered on the
objectness logit alone, so the softmax and the box formula only run on the few that can pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import nms

from yolo.config import ANCHORS, STRIDES, PostprocessConfig
from yolo.targets import decode_cells, unravel_cells

def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def candidates(
    outputs: Sequence[Tensor],
    conf_threshold: float,
    anchors: Sequence = ANCHORS,
    max_log_wh: float = 10.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every candidate of the batch whose score exceeds ``conf_threshold``, decoded.

    Args:
        outputs: 3 raw tensors (B, 3, S, S, 5 + C), strides 32, 16, 8.

    Returns:
        boxes (Tensor[K, 4]) xyxy input pixels, scores (Tensor[K]), labels (Tensor[K]) int64,
        image (Tensor[K]) int64 index of the image in the batch.
    """
    boxes, scores, labels, images = [], [], [], []
    min_logit = _logit(conf_threshold)
    for out, stride, scale_anchors in zip(outputs, STRIDES, anchors):
        _, a, size, _, channels = out.shape
        flat = out.reshape(-1, channels)  # (B*3*S*S, 5+C)
        keep = torch.nonzero(flat[:, 0] > min_logit).squeeze(1)
        rows = flat[keep].float()
        prob, label = rows[:, 5:].softmax(dim=1).max(dim=1)
        score = rows[:, 0].sigmoid() * prob
        passed = score > conf_threshold
        keep, rows, score, label = keep[passed], rows[passed], score[passed], label[passed]
        image, anchor, row, col = unravel_cells(keep, a, size)
        anchor_t = torch.as_tensor(scale_anchors, dtype=rows.dtype, device=rows.device)
        boxes.append(decode_cells(rows, col, row, anchor_t[anchor], stride, size, max_log_wh))
        scores.append(score)
        labels.append(label)
        images.append(image)
    return torch.cat(boxes), torch.cat(scores), torch.cat(labels), torch.cat(images)


def top_k_per_image(scores: Tensor, images: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` best-scored candidates of each image (Tensor[K] in, index Tensor out)."""
    by_score = torch.argsort(scores, descending=True, stable=True)
    order = by_score[torch.sort(images[by_score], stable=True).indices]  # by image, best first
    sorted_images = images[order]
    position = torch.arange(len(order), device=scores.device)
    first = torch.searchsorted(sorted_images, sorted_images, side="left")  # start of each image's run
    return order[position - first < k]


def _exact_rows(boxes: Tensor, groups: Tensor) -> tuple[Tensor, Tensor]:
    """(``boxes`` (Tensor[K, 4]) moved to one band per group in float64, Tensor[K] bool: the rows
    whose shift is exact).

    The band of group g starts at g * (ceil(max) + 1), max over the non-negative boxes, so boxes of
    different groups never overlap. A row is exact when its coordinates are >= 0 and the sums
    check both ways (``(s - offset) == x`` and ``(s - x) == offset``: for non-negative terms, one
    of the two differences is exact by Sterbenz's lemma, so any rounding shows): an exact shift
    leaves every difference of coordinates, hence every IoU, as it was. A huge box only widens
    the bands.
    """
    x = boxes.double()
    nonneg = (x >= 0).all(1)
    top = x[nonneg].max() if bool(nonneg.any()) else x.new_zeros(())
    offsets = groups.double()[:, None] * (torch.ceil(top) + 1)
    shifted = x + offsets
    exact = nonneg & ((shifted - offsets == x) & (shifted - x == offsets)).all(1)
    return shifted, exact


def grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS inside each group (image x class), exactly as if each group were run alone (in float64).

    torchvision's ``batched_nms`` shifts groups apart in the boxes' own precision (float32): one
    huge box (a size logit near the clamp) makes the shift so large that every other box's
    coordinates are rounded, and true duplicates survive. Here the shift is exact (float64,
    checked per row); only the groups holding a row that cannot be shifted exactly (a negative
    coordinate: boxes not clipped to the image) run NMS on their own.

    Args:
        boxes (Tensor[K, 4]) in (x1, y1, x2, y2); scores (Tensor[K]); groups (Tensor[K]) int64.

    Returns:
        Tensor[k] int64 indices of the kept boxes, by decreasing score.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    shifted, exact = _exact_rows(boxes, groups)
    if bool(exact.all()):
        return nms(shifted, scores.double(), iou_threshold)
    alone = torch.unique(groups[~exact])  # groups run on their own
    banded = torch.nonzero(~torch.isin(groups, alone)).squeeze(1)
    kept = [banded[nms(shifted[banded], scores[banded].double(), iou_threshold)]]
    for g in alone:  # in float64 as the banded call, so a group's result never depends on the route
        rows = torch.nonzero(groups == g).squeeze(1)
        kept.append(rows[nms(boxes[rows].double(), scores[rows].double(), iou_threshold)])
    kept = torch.sort(torch.cat(kept)).values  # index order, then by score: ties keep index order
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def clip_boxes(boxes: Tensor, images: Tensor, image_sizes: Tensor | Sequence) -> Tensor:
    """Clip boxes (Tensor[K, 4] xyxy) to their image; ``image_sizes`` is (h, w) for all images or
    Tensor[B, 2] (h, w) per image, indexed by ``images`` (Tensor[K])."""
    sizes = torch.as_tensor(image_sizes, dtype=boxes.dtype, device=boxes.device).reshape(-1, 2)
    hw = sizes[images] if len(sizes) > 1 else sizes.expand(len(boxes), 2)
    upper = hw.flip(1).repeat(1, 2)  # (K, 4): w, h, w, h
    return torch.minimum(boxes.clamp(min=0), upper)


def nms_indices(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    images: Tensor,
    batch_size: int,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
) -> list[Tensor]:
    """Class-aware (or agnostic) NMS of flat candidates -> per image, the kept row indices.

    Args:
        boxes (Tensor[K, 4]) xyxy (clip them to their image first: see ``clip_boxes``);
        scores, labels, images (Tensor[K]).

    Returns:
        ``batch_size`` index Tensors into the inputs, highest score first, at most
        ``max_detections`` each: what NMS of each image (each class) alone keeps, whatever the
        other images hold (``grouped_nms``). Above a few thousand candidates NMS runs image by
        image, which stays fast where one call over all images would not.
    """
    num_classes = int(labels.max()) + 1 if labels.numel() else 1
    groups = images if class_agnostic else images * num_classes + labels
    if len(boxes) <= 4000:
        kept = grouped_nms(boxes, scores, groups, iou_threshold)  # sorted by decreasing score
    else:
        by_image = torch.sort(images, stable=True).indices
        counts = torch.bincount(images, minlength=batch_size).tolist()
        kept = torch.cat([
            rows[grouped_nms(boxes[rows], scores[rows], groups[rows], iou_threshold)]
            for rows in torch.split(by_image, counts)
        ])
    kept = kept[torch.sort(images[kept], stable=True).indices]  # by image, score order inside
    counts = torch.bincount(images[kept], minlength=batch_size).tolist()
    return [chunk[:max_detections] for chunk in torch.split(kept, counts)]


def postprocess(
    outputs: Sequence[Tensor],
    config: PostprocessConfig | None = None,
    anchors: Sequence = ANCHORS,
) -> list[dict[str, Tensor]]:
    """Raw outputs of a batch -> detections per image, in input-image pixels.

    Args:
        outputs: 3 raw tensors (B, 3, S, S, 5 + C).
        config: confidence threshold, NMS IoU threshold, max detections, class-agnostic flag.

    Returns:
        B dicts: "boxes" (Tensor[K, 4]) xyxy clipped to the input image, "scores" (Tensor[K]), "labels" (Tensor[K]) int64.
    """
    config = config or PostprocessConfig()
    with torch.no_grad():
        boxes, scores, labels, images = candidates(outputs, config.conf_threshold, anchors)
        boxes = clip_boxes(boxes, images, (outputs[0].shape[2] * STRIDES[0], outputs[0].shape[3] * STRIDES[0]))
        if config.pre_nms_top_k is not None:
            keep = top_k_per_image(scores, images, config.pre_nms_top_k)
            boxes, scores, labels, images = boxes[keep], scores[keep], labels[keep], images[keep]
        kept = nms_indices(boxes, scores, labels, images, outputs[0].shape[0], config.iou_threshold,
                           config.max_detections, config.class_agnostic)
        return [{"boxes": boxes[k], "scores": scores[k], "labels": labels[k]} for k in kept]
