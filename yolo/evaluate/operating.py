"""Operating points: precision, recall and F1 against the confidence threshold, per class and
overall; the threshold that maximises F1 (or reaches a target precision) per class. The result,
``OperatingPoints``, and its file (format, home beside the checkpoint, reading and writing) live
in ``yolo.thresholds``, below ``yolo.detect``, which reads it as per-class thresholds.

Thresholds follow the Detector's rule: a detection is kept when its score is ABOVE the
threshold. A chosen threshold is the midpoint between the last score kept and the next one, so
it is robust to tiny score changes. Matching is VOC's (``yolo.metrics.match_detections``);
detections on difficult boxes count neither way. Because matching is greedy by score, the flags
of the detections above any threshold are those of matching everything once, so every curve
here comes from one matching pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from yolo.thresholds import OperatingPoints


def f1_score(tp: Tensor | float, fp: Tensor | float, positives: Tensor | float) -> Tensor:
    """F1 from counts: 2 TP / (TP + FP + positives), the harmonic mean of precision and recall;
    0 where nothing was kept and nothing was to be found. Numbers or Tensors of one shape in,
    Tensor float64 of that shape out."""
    tp, fp, positives = (torch.as_tensor(x, dtype=torch.float64) for x in (tp, fp, positives))
    total = tp + fp + positives
    return torch.where(total > 0, 2 * tp / total.clamp(min=1e-12), 0.0)


def _matched(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int):
    from yolo.metrics import match_detections

    m = match_detections(detections, ground_truths, num_classes)
    keep = ~m.ignored
    # float32: thresholds compare as the Detector compares them (yolo.metrics.confident)
    return m.scores[keep].float(), m.labels[keep], m.tp[keep], m.n_positives


def _best(scores: Tensor, tp: Tensor, positives: int, target_precision: float | None) -> tuple[float, float, float, float]:
    """One pool of detections -> (threshold, F1, precision, recall) of the best cut."""
    if scores.numel() == 0 or positives == 0:
        return float("nan"), 0.0, float("nan"), 0.0
    order = torch.sort(scores, descending=True, stable=True).indices
    s, t = scores[order].double(), tp[order].double()
    ctp = torch.cumsum(t, 0)
    kept = torch.arange(1, len(s) + 1, dtype=torch.float64)
    cut = torch.ones(len(s), dtype=torch.bool)
    cut[:-1] = s[1:] < s[:-1]  # only cuts between different scores can be made with a threshold
    precision, recall = ctp / kept, ctp / positives
    f1 = f1_score(ctp, kept - ctp, positives)
    if target_precision is None:
        goal = torch.where(cut, f1, -1.0)
    else:
        goal = torch.where(cut & (precision >= target_precision), recall, -1.0)
    k = int(torch.argmax(goal))  # first (highest threshold) on ties
    if goal[k] < 0:
        return 1.0, 0.0, float("nan"), 0.0
    below = float(s[k + 1]) if k + 1 < len(s) else 0.0
    return (float(s[k]) + below) / 2, float(f1[k]), float(precision[k]), float(recall[k])


def fit_operating_points(detections: Sequence[dict], ground_truths: Sequence[dict], class_names: Sequence[str],
                         target_precision: float | None = None, iou: float = 0.45) -> OperatingPoints:
    """The threshold per class (and one global) maximising F1, or with ``target_precision`` the
    lowest threshold whose precision reaches it (the most recall at that precision)."""
    n = len(class_names)
    scores, labels, tp, n_pos = _matched(detections, ground_truths, n)
    global_t, *_ = _best(scores, tp, int(n_pos.sum()), target_precision)
    global_t = 0.5 if global_t != global_t else global_t  # no evidence at all
    thresholds, f1 = [], {}
    for c, name in enumerate(class_names):
        mine = labels == c
        t, score, _, _ = _best(scores[mine], tp[mine], int(n_pos[c]), target_precision)
        thresholds.append(global_t if t != t else t)
        if t == t:
            f1[name] = score
    rule = "max F1" if target_precision is None else f"precision >= {target_precision:g}"
    return OperatingPoints(list(class_names), thresholds, global_t, rule, iou, f1)


def scores_at(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
              thresholds: float | Sequence[float]) -> dict[str, Any]:
    """Micro precision, recall and F1 of the detections above ``thresholds`` (one, or one per
    class), plus per-class TP, FP and positives (Tensor[C] int64)."""
    scores, labels, tp, n_pos = _matched(detections, ground_truths, num_classes)
    cut = torch.full((num_classes,), float(thresholds)) if isinstance(thresholds, (int, float)) \
        else torch.as_tensor(list(thresholds), dtype=torch.float64)
    kept = scores > cut.to(scores.dtype)[labels]
    tps = torch.bincount(labels[kept & tp], minlength=num_classes)
    fps = torch.bincount(labels[kept & ~tp], minlength=num_classes)
    t, f, p = int(tps.sum()), int(fps.sum()), int(n_pos.sum())
    precision = t / (t + f) if t + f else float("nan")
    recall = t / p if p else float("nan")
    f1 = float(f1_score(t, f, p))
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tps, "fp": fps, "positives": n_pos}


def curves(detections: Sequence[dict], ground_truths: Sequence[dict], class_names: Sequence[str],
           confs: Sequence[float]) -> pd.DataFrame:
    """Precision, recall and F1 at each confidence (kept: score > conf), per class and "all"
    (micro). One row per (class, confidence)."""
    n = len(class_names)
    scores, labels, tp, n_pos = _matched(detections, ground_truths, n)
    cut = torch.as_tensor(list(confs), dtype=scores.dtype)
    above = scores[None, :] > cut[:, None]  # (T, D)
    onehot = torch.nn.functional.one_hot(labels, n).to(torch.float64) if len(labels) else torch.zeros(0, n, dtype=torch.float64)
    tps = (above & tp[None, :]).double() @ onehot  # (T, C)
    fps = (above & ~tp[None, :]).double() @ onehot
    rows = []
    for name, t, f, p in [(c, tps[:, i], fps[:, i], float(n_pos[i])) for i, c in enumerate(class_names)] + \
            [("all", tps.sum(1), fps.sum(1), float(n_pos.sum()))]:
        precision = torch.where(t + f > 0, t / (t + f).clamp(min=1), float("nan"))
        recall = t / p if p else torch.full_like(t, float("nan"))
        f1 = f1_score(t, f, p)
        rows.append(pd.DataFrame({"class": name, "confidence": list(confs), "precision": precision.tolist(),
                                  "recall": recall.tolist(), "F1": f1.tolist()}))
    return pd.concat(rows, ignore_index=True)


def held_out_gain(fit: tuple[Sequence[dict], Sequence[dict]], test: tuple[Sequence[dict], Sequence[dict]],
                  class_names: Sequence[str], target_precision: float | None = None) -> dict[str, Any]:
    """Fit per-class and global thresholds on one split, measure F1 on another: the F1 gained by
    per-class thresholds over one global threshold where it counts, on images not used to fit."""
    points = fit_operating_points(*fit, class_names, target_precision)
    n = len(class_names)
    per_class = scores_at(*test, n, points.class_thresholds)
    single = scores_at(*test, n, points.global_threshold)
    return {"points": points, "f1_per_class_thresholds": per_class["f1"], "f1_global_threshold": single["f1"],
            "f1_gain": per_class["f1"] - single["f1"], "global_threshold": points.global_threshold}
