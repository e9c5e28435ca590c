"""Confidence calibration of detections: does a score of 0.8 mean right 80% of the time?

Each detection is counted once, as COCO counts it at the caller's IoU: per (image, class) the
best-scored ``max_per_image``; greedy matching by score with fallback (``yolo.evalcore``);
detections on difficult boxes (COCO crowd regions) left out. "Correct" means matched (a true
positive). Scores are binned into ``n_bins`` equal-width bins of [0, 1]: bin i holds
i / n <= score < (i + 1) / n, the last one also score == 1. Per bin: mean confidence, precision
(the fraction of its detections that are correct) and count.

    ECE = sum over bins of count / N * |precision - mean confidence|   (N: counted detections)
    MCE = max over non-empty bins of |precision - mean confidence|

Overall and per class (each class's own bins and N). Pure numpy over the per-image dicts of
``yolo.metrics`` (detections: boxes, scores, labels; ground truth: boxes, labels, difficult).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from yolo import evalcore as core

BIN_COLUMNS = ("lower", "upper", "confidence", "precision", "count")


@dataclass
class Calibration:
    """ece, mce (float; nan without detections); bins: one row per bin (``BIN_COLUMNS``; confidence
    and precision nan for an empty bin); per_class: class, detections, ece, mce (one row per class,
    nan where it has no detection); class_bins: the bins of every class (a "class" column first);
    iou, n_bins, detections (counted)."""

    ece: float
    mce: float
    bins: pd.DataFrame
    per_class: pd.DataFrame
    class_bins: pd.DataFrame
    iou: float
    n_bins: int
    detections: int

    def summary(self, class_names: Sequence[str] | None = None) -> dict:
        """JSON-able: ece, mce, iou, n_bins, detections, bins (list of dicts), per-class ECE/MCE."""
        names = list(class_names) if class_names is not None else [str(c) for c in self.per_class["class"]]
        return {
            "ece": None if np.isnan(self.ece) else self.ece, "mce": None if np.isnan(self.mce) else self.mce, "iou": self.iou, "n_bins": self.n_bins, "detections": self.detections,
            "bins": [{k: (None if pd.isna(v) else float(v)) for k, v in row.items()} for row in self.bins.to_dict("records")],
            "per_class": {names[int(r["class"])]: {"ece": None if pd.isna(r["ece"]) else float(r["ece"]),
                                                   "mce": None if pd.isna(r["mce"]) else float(r["mce"]),
                                                   "detections": int(r["detections"])}
                          for r in self.per_class.to_dict("records")},
        }


def bin_index(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each score (in [0, 1]): the largest i with i / n_bins <= score, n_bins - 1 for 1."""
    edges = np.arange(n_bins + 1) / n_bins
    return np.minimum(np.searchsorted(edges, scores, side="right") - 1, n_bins - 1)


def _errors(count: np.ndarray, conf_sum: np.ndarray, tp_sum: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(..., n_bins) sums -> mean confidence, precision (nan where empty), ECE, MCE (nan without any)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, conf_sum / count, np.nan)
        prec = np.where(count > 0, tp_sum / count, np.nan)
        gap = np.abs(prec - conf)
        total = count.sum(-1)
        ece = np.where(total > 0, np.nansum(count * np.nan_to_num(gap), -1) / np.maximum(total, 1), np.nan)
        mce = np.where(total > 0, np.max(np.where(count > 0, gap, -1.0), -1), np.nan)
    return conf, prec, ece, mce


def reliability(scores: np.ndarray, correct: np.ndarray, labels: np.ndarray, num_classes: int,
                n_bins: int) -> tuple[dict, dict]:
    """Scores (N,) in [0, 1], correct (N,) bool, labels (N,) int64 -> (overall, per class), each a dict
    of arrays: count, confidence, precision ((n_bins,) or (C, n_bins)), ece, mce."""
    b = bin_index(scores, n_bins)
    key = labels * n_bins + b
    size = num_classes * n_bins
    count = np.bincount(key, minlength=size).reshape(num_classes, n_bins)
    conf_sum = np.bincount(key, weights=scores, minlength=size).reshape(num_classes, n_bins)
    tp_sum = np.bincount(key, weights=correct.astype(np.float64), minlength=size).reshape(num_classes, n_bins)
    per = dict(zip(("confidence", "precision", "ece", "mce"), _errors(count, conf_sum, tp_sum)), count=count)
    all_count = np.bincount(b, minlength=n_bins)
    all_conf = np.bincount(b, weights=scores, minlength=n_bins)
    all_tp = np.bincount(b, weights=correct.astype(np.float64), minlength=n_bins)
    overall = dict(zip(("confidence", "precision", "ece", "mce"), _errors(all_count, all_conf, all_tp)), count=all_count)
    return overall, per


def _bin_frame(n_bins: int, conf: np.ndarray, prec: np.ndarray, count: np.ndarray) -> pd.DataFrame:
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "confidence": conf, "precision": prec,
                         "count": count.astype(np.int64)})


def calibration(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                iou_threshold: float = 0.5, n_bins: int = 10, max_per_image: int = 100) -> Calibration:
    """Reliability bins, ECE and MCE of the detections (rule: module docstring), overall and per class."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection dicts but {len(ground_truths)} ground truths")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
    n_bins = int(n_bins)
    det, truth = core.flatten(detections, "det"), core.flatten(ground_truths, "gt")
    core.check_labels(det.labels, num_classes, "detection")
    core.check_labels(truth.labels, num_classes, "ground-truth")
    if len(det) and not (np.all(det.scores >= 0) and np.all(det.scores <= 1)):
        raise ValueError(f"calibration needs scores in [0, 1] (confidences), got [{det.scores.min():.4g}, "
                         f"{det.scores.max():.4g}]")
    order = core.score_order(det.scores)
    live = core.top_per_group(det.image * num_classes + det.labels, order, max_per_image)
    gt_of_det, on_crowd = core.coco_match(det, truth, num_classes, iou_threshold, core.rank_of(order), live)
    counted = live & ~on_crowd
    scores, correct, labels = det.scores[counted], (gt_of_det >= 0)[counted], det.labels[counted]
    overall, per = reliability(scores, correct, labels, num_classes, n_bins)
    bins = _bin_frame(n_bins, overall["confidence"], overall["precision"], overall["count"])
    class_bins = pd.concat([_bin_frame(n_bins, per["confidence"][c], per["precision"][c], per["count"][c])
                            .assign(**{"class": c}) for c in range(num_classes)], ignore_index=True)
    class_bins = class_bins[["class", *BIN_COLUMNS]]
    per_class = pd.DataFrame({"class": np.arange(num_classes), "detections": per["count"].sum(1),
                              "ece": per["ece"], "mce": per["mce"]})
    return Calibration(float(overall["ece"]), float(overall["mce"]), bins, per_class, class_bins,
                       float(iou_threshold), n_bins, int(counted.sum()))
