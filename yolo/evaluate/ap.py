"""Average precision of scored true/false positives, by the three interpolation rules in use.

Each function takes the counted detections of all images (``scores`` Tensor[D], ``labels``
Tensor[D] int64, ``tp`` Tensor[D] bool; ignored detections already removed) and the positives
per class (Tensor[C] int64), and returns one AP per class (Tensor[C] float64, 0..1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# COCO's 101 recall thresholds exactly as pycocotools builds them (``Params.recThrs``). The float
# values matter: np.linspace gives 0.5700000000000001 where torch.linspace gives 0.57 (ten of the
# 101 points differ), and a class whose recall lands exactly on such a point reads another precision.
RECALL_POINTS = torch.from_numpy(np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True))
# tidecv's own grid (``x / 100`` for x in 0..100; ten points differ from pycocotools'), used where
# the TIDE breakdown is compared with tidecv.
TIDE_RECALL_POINTS = torch.tensor([x / 100 for x in range(101)], dtype=torch.float64)


def _class_curve(scores: Tensor, tp: Tensor) -> tuple[Tensor, Tensor]:
    """One class: cumulative TP and FP counts in descending score order (stable on ties)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    t = tp[order].double()
    return torch.cumsum(t, 0), torch.cumsum(1 - t, 0)


def by_class_then_score(scores: Tensor, labels: Tensor) -> Tensor:
    """Order grouping the rows by class, highest score first inside a class (stable on ties)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[torch.sort(labels[order], stable=True).indices]


def ap_coco101(scores: Tensor, labels: Tensor, tp: Tensor, n_positives: Tensor, presorted: bool = False,
               recall_points: Tensor = RECALL_POINTS) -> Tensor:
    """COCO's rule: the precision envelope read at 101 recall points (the first detection
    reaching each), averaged; 0 for a class without positives (callers decide whether it counts).

    All classes at once: each class's curve is one row of a (C, L) matrix padded past its end
    (recall 2, precision 0), so the envelope and the recall look-ups compare exactly the numbers a
    per-class loop would. ``presorted``: the rows are already in ``by_class_then_score`` order.
    ``recall_points`` (Tensor[R] float64): pycocotools' grid by default, ``TIDE_RECALL_POINTS`` for TIDE."""
    num_classes = n_positives.numel()
    n = int(labels.numel())
    if n == 0:
        return torch.zeros(num_classes, dtype=torch.float64)
    order = torch.arange(n) if presorted else by_class_then_score(scores, labels)
    c, t = labels[order], tp[order].long()
    per_class = torch.bincount(c, minlength=num_classes)
    start = torch.cumsum(per_class, 0) - per_class
    rank = torch.arange(n) - start[c]
    tp_class = torch.zeros(num_classes, dtype=torch.long).index_add_(0, c, t)
    ctp = (torch.cumsum(t, 0) - (torch.cumsum(tp_class, 0) - tp_class)[c]).double()
    width = int(per_class.max())
    recall = torch.full((num_classes, width), 2.0, dtype=torch.float64)
    precision = torch.zeros(num_classes, width, dtype=torch.float64)
    npos = n_positives.double()
    recall[c, rank] = ctp / npos[c].clamp(min=1)
    precision[c, rank] = ctp / (rank + 1).double()
    envelope = torch.flip(torch.cummax(torch.flip(precision, (1,)), 1).values, (1,))
    at = torch.searchsorted(recall, recall_points.expand(num_classes, -1).contiguous(), side="left")
    read = torch.gather(envelope, 1, at.clamp(max=width - 1))
    read = torch.where(at < per_class[:, None], read, torch.zeros((), dtype=torch.float64))
    return torch.where(n_positives > 0, read.mean(1), torch.zeros((), dtype=torch.float64))


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
