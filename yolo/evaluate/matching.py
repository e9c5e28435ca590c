"""Flat detections and ground truth of many images, their same-image pairs, and COCO's greedy match.

Formats (as ``yolo.metrics``): detections are one dict per image with "boxes" (Tensor[K, 4]) in
(x1, y1, x2, y2) pixels, "scores" (Tensor[K]) and "labels" (Tensor[K] int64); ground truth one
dict per image with "boxes", "labels" and optional "difficult" (Tensor[G] bool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class Flat:
    """Rows of many images in one table, image by image; for detections, score order inside.

    boxes (Tensor[R, 4]) float64 xyxy; labels, image (Tensor[R] int64); scores (Tensor[R] float64,
    detections only); difficult (Tensor[R] bool, ground truth only); rank (Tensor[R] int64)
    position inside its image (detections: 0 = best score).
    """

    boxes: Tensor
    labels: Tensor
    image: Tensor
    scores: Tensor
    difficult: Tensor
    rank: Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())


def flatten(items: Sequence[dict], max_per_image: int | None = None) -> Flat:
    """Per-image dicts -> one ``Flat`` table. Detections (dicts with "scores") are sorted by score,
    highest first, inside each image (stable) and cut to ``max_per_image``."""
    n = len(items)
    counts = torch.tensor([int(d["labels"].numel()) for d in items], dtype=torch.int64)
    image = torch.repeat_interleave(torch.arange(n), counts)
    boxes = torch.cat([d["boxes"].reshape(-1, 4).double().cpu() for d in items]) if n else torch.zeros(0, 4, dtype=torch.float64)
    labels = torch.cat([d["labels"].reshape(-1).long().cpu() for d in items]) if n else torch.zeros(0, dtype=torch.int64)
    is_det = bool(n) and "scores" in items[0]
    scores = torch.cat([d["scores"].reshape(-1).double().cpu() for d in items]) if is_det else torch.zeros(len(labels), dtype=torch.float64)
    difficult = torch.cat([
        d["difficult"].reshape(-1).bool().cpu() if d.get("difficult") is not None
        else torch.zeros(int(d["labels"].numel()), dtype=torch.bool) for d in items
    ]) if n else torch.zeros(0, dtype=torch.bool)
    order = torch.arange(len(labels))
    if is_det:
        order = torch.sort(scores, descending=True, stable=True).indices
        order = order[torch.sort(image[order], stable=True).indices]  # by image, best first inside
    image = image[order]
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(labels)) - start[image]
    keep = rank < max_per_image if (is_det and max_per_image is not None) else torch.ones(len(labels), dtype=torch.bool)
    order, image, rank = order[keep], image[keep], rank[keep]
    return Flat(boxes[order], labels[order], image, scores[order], difficult[order], rank)


def pairs(det: Flat, gt: Flat) -> tuple[Tensor, Tensor]:
    """Every (detection, ground-truth box) pair of the same image -> (det index, gt index), each
    Tensor[P] int64, ordered by detection, then ground truth. Both tables must be image-sorted."""
    if len(det) == 0 or len(gt) == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    lo = torch.searchsorted(gt.image, det.image)
    count = torch.searchsorted(gt.image, det.image, right=True) - lo
    pair_det = torch.repeat_interleave(torch.arange(len(det)), count)
    offset = torch.arange(pair_det.numel()) - (torch.cumsum(count, 0) - count)[pair_det]
    return pair_det, lo[pair_det] + offset


def box_iof_pairs(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over the area of ``a`` (COCO's IoU with a crowd region): Tensor[P] float64."""
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    return torch.where(area_a > 0, wh[:, 0] * wh[:, 1] / area_a.clamp(min=1e-300), torch.zeros_like(area_a))


def greedy_match(pair_det: Tensor, pair_gt: Tensor, iou: Tensor, eligible: Tensor, order: Tensor,
                 n_det: int, n_gt: int, threshold: float) -> tuple[Tensor, Tensor]:
    """COCO's matching: detections in ``order`` each take the unmatched eligible box of highest IoU
    (first on ties) if that IoU >= ``threshold``. Unlike VOC, a detection whose best box is taken
    falls back to the next one.

    pair_det, pair_gt, iou (Tensor[P]): pairs; eligible (Tensor[P] bool) which pairs may match (same
    class, not a crowd/difficult box); order (Tensor[D]) the detections' processing order.
    Returns (matched gt index per detection, -1 if none; Tensor[D] int64) and (matched detection
    per gt, -1 if none; Tensor[G] int64). Only pairs at or above the threshold are looped over.
    """
    det_of_gt = torch.full((n_gt,), -1, dtype=torch.int64)
    gt_of_det = torch.full((n_det,), -1, dtype=torch.int64)
    keep = eligible & (iou >= threshold)
    if not bool(keep.any()):
        return gt_of_det, det_of_gt
    position = torch.empty(n_det, dtype=torch.int64)
    position[order] = torch.arange(n_det)
    d, g, v = pair_det[keep], pair_gt[keep], iou[keep]
    by = torch.sort(g, stable=True).indices  # ties: lower gt index first
    by = by[torch.sort(-v[by], stable=True).indices]
    by = by[torch.sort(position[d[by]], stable=True).indices]  # detection order, then IoU, then gt
    used_gt: set[int] = set()
    last = -1
    for det_i, gt_i in zip(d[by].tolist(), g[by].tolist()):
        if det_i == last or gt_i in used_gt:
            continue
        gt_of_det[det_i] = gt_i
        det_of_gt[gt_i] = det_i
        used_gt.add(gt_i)
        last = det_i
    return gt_of_det, det_of_gt


def group_argmax(values: Tensor, group: Tensor, n: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per group (0..n-1), the largest of ``values`` where ``mask`` and the position of its first
    occurrence -> (max Tensor[n] float64, 0 where the group is empty; position Tensor[n], -1)."""
    if mask is not None:
        values, group, positions = values[mask], group[mask], torch.nonzero(mask).squeeze(1)
    else:
        positions = torch.arange(values.numel())
    best = torch.zeros(n, dtype=torch.float64).scatter_reduce_(0, group, values.double(), "amax")
    at = values.double() == best[group]
    first = torch.full((n,), values.numel() + len(positions) + 1, dtype=torch.int64)
    first.scatter_reduce_(0, group[at], torch.arange(len(values))[at], "amin")
    found = first < len(values)
    where = torch.full((n,), -1, dtype=torch.int64)
    where[found] = positions[first[found]]
    return best, where
