"""Average precision of scored true/false positives, by the three interpolation rules in use.

Each function takes the counted detections of all images (``scores`` Tensor[D], ``labels``
Tensor[D] int64, ``tp`` Tensor[D] bool; ignored detections already removed) and the positives
per class (Tensor[C] int64), and returns one AP per class (Tensor[C] float64, 0..1).
"""

from __future__ import annotations

import torch
from torch import Tensor

RECALL_POINTS = torch.linspace(0, 1, 101, dtype=torch.float64)  # COCO's recall thresholds


def _class_curve(scores: Tensor, tp: Tensor) -> tuple[Tensor, Tensor]:
    """One class: cumulative TP and FP counts in descending score order (stable on ties)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    t = tp[order].double()
    return torch.cumsum(t, 0), torch.cumsum(1 - t, 0)


def ap_coco101(scores: Tensor, labels: Tensor, tp: Tensor, n_positives: Tensor) -> Tensor:
    """COCO's rule: the precision envelope read at 101 recall points (the first detection
    reaching each), averaged; 0 for a class without positives (callers decide whether it counts)."""
    num_classes = n_positives.numel()
    out = torch.zeros(num_classes, dtype=torch.float64)
    for c in range(num_classes):
        npos = int(n_positives[c])
        mine = labels == c
        if npos == 0 or not bool(mine.any()):
            continue
        ctp, cfp = _class_curve(scores[mine], tp[mine])
        recall = ctp / npos
        precision = ctp / (ctp + cfp)
        envelope = torch.flip(torch.cummax(torch.flip(precision, (0,)), 0).values, (0,))
        at = torch.searchsorted(recall, RECALL_POINTS, side="left")
        read = torch.where(at < len(envelope), envelope[at.clamp(max=len(envelope) - 1)], torch.zeros(()).double())
        out[c] = read.mean()
    return out


def ap_course(scores: Tensor, labels: Tensor, tp: Tensor, n_positives: Tensor, eps: float = 1e-6) -> Tensor:
    """The course's rule (``mean_average_precision`` of the YOLOv3 course code): the raw
    precision/recall points (with its epsilon), (recall 0, precision 1) prepended, integrated by
    the trapezoid rule; no envelope. nan for a class without positives (the course skips it)."""
    num_classes = n_positives.numel()
    out = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for c in range(num_classes):
        npos = int(n_positives[c])
        if npos == 0:
            continue
        mine = labels == c
        ctp, cfp = _class_curve(scores[mine], tp[mine])
        recall = torch.cat([torch.zeros(1, dtype=torch.float64), ctp / (npos + eps)])
        precision = torch.cat([torch.ones(1, dtype=torch.float64), ctp / (ctp + cfp + eps)])
        out[c] = torch.trapezoid(precision, recall)
    return out
