"""Error breakdown by TIDE's definitions (Bolya et al., ECCV 2020; the ``tidecv`` package).

Every detection that is not a true positive gets exactly one error type, tested in this order
(IoU with ground truth of its own image; fg = 0.5, bg = 0.1):

    Loc    its own class's best IoU lies in [bg, fg]: right class, box not good enough
    Cls    a box of another class has IoU >= fg: right place, wrong class
    Dupe   a box of its class that another detection already matched has IoU >= fg
    Bkg    every IoU <= bg: it fired on background
    Both   anything else (wrong class AND poorly placed)

and every unmatched box that no Loc/Cls error points at is Miss. The dAP of an error type is the
mAP after fixing only those errors minus the mAP before: Loc/Cls errors become true positives
(only the best-scored one per box; the others are removed), Dupe/Bkg/Both are removed, and a
Miss is removed from the positives. Two oracles: FP (every false positive scored below every
true positive) and FN (every unmatched box removed from the positives). Matching is COCO's
(greedy by score, falling back to the next free box), AP is COCO's 101-point rule read on tidecv's
recall grid (x / 100, which differs from pycocotools' in ten points), and a class
counts in the mean when it has ground truth or detections, as in tidecv. Difficult boxes act as
COCO crowd regions: an unmatched detection covering more than fg of its own area with one of
its class is ignored. APs here are in 0..1 (tidecv prints 0..100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from yolo import evalcore as core

ERROR_TYPES: tuple[str, ...] = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
ERROR_NAMES: dict[str, str] = {
    "Cls": "classification", "Loc": "localisation", "Both": "both (class and box)",
    "Dupe": "duplicate", "Bkg": "background", "Miss": "missed",
}
ORACLES: tuple[str, ...] = ("FalsePos", "FalseNeg")


@dataclass
class ErrorBreakdown:
    """mAP (0..1) and what each error type costs.

    map: mAP@fg before fixing anything; delta: error type -> dAP (mAP gained by fixing only it,
    floored at 0 as tidecv does); oracle: "FalsePos"/"FalseNeg" -> dAP; counts: type -> errors;
    per_class: one row per class: AP and the dAP of each type; errors: one row per error
    instance: type (categorical), image (index), class, score, box, the box it points at (gt index, -1 none).
    """

    map: float
    delta: dict[str, float]
    oracle: dict[str, float]
    counts: dict[str, int]
    per_class: pd.DataFrame
    errors: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """One row per error type and oracle: type, name, count, dAP."""
        rows = [{"type": t, "error": ERROR_NAMES[t], "count": self.counts[t], "dAP": self.delta[t]} for t in ERROR_TYPES]
        rows += [{"type": t, "error": "oracle: " + ("no false positives" if t == "FalsePos" else "no false negatives"),
                  "count": None, "dAP": self.oracle[t]} for t in ORACLES]
        return pd.DataFrame(rows).astype({"count": "Int64"})


def _mean_ap(tp_labels: np.ndarray, tp_rank: np.ndarray, positives: np.ndarray,
             counted_labels: np.ndarray) -> tuple[float, np.ndarray]:
    """tidecv's mean of COCO-rule APs on tidecv's grid, from the true positives' places
    (``core.ap_from_tp_ranks``): over classes with positives or any counted detection (the latter AP 0)."""
    ap = core.ap_from_tp_ranks(tp_labels, tp_rank, np.maximum(positives, 0), core.TIDE_RECALL_POINTS)
    present = (positives > 0) | (np.bincount(counted_labels, minlength=len(ap)) > 0)
    return (float(ap[present].mean()) if bool(present.any()) else float("nan")), ap


def error_breakdown(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                    fg: float = 0.5, bg: float = 0.1, max_per_image: int = 100) -> ErrorBreakdown:
    """TIDE's breakdown (module docstring) of per-image detections against their ground truth."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection dicts but {len(ground_truths)} ground truths")
    if not 0 < bg <= fg:
        raise ValueError(f"need 0 < bg <= fg, got bg={bg}, fg={fg}")
    det, truth = core.flatten(detections, "det"), core.flatten(ground_truths, "gt")
    core.check_labels(det.labels, num_classes, "detection")
    core.check_labels(truth.labels, num_classes, "ground-truth")
    # image by image, best score first (stable), at most max_per_image per image (tidecv's max_dets)
    by_score = core.score_order(det.scores)  # ties: image order, then input order inside
    perm = core.by_group(by_score, det.image)  # image by image, best score first inside
    within = np.arange(len(perm)) - np.repeat(np.cumsum(det.counts) - det.counts, det.counts)
    kept = perm[within < max_per_image]
    if len(kept) != len(det) or not np.array_equal(kept, np.arange(len(det))):
        new_index = np.full(len(det), -1, dtype=np.int64)
        new_index[kept] = np.arange(len(kept))
        by_score = new_index[by_score]
        by_score = by_score[by_score >= 0]  # the same score order over the new rows
        det = det.take(kept)
    crowd = truth.difficult
    n_det, n_gt = len(det), len(truth)
    rank = np.arange(n_det)  # processing order of COCO's matching: score order inside an image

    # same-class pairs (image and class) carry the matching and every same-class test
    pd_, pg = core.group_pairs(det.image * num_classes + det.labels, truth.image * num_classes + truth.labels)
    iou = core.pair_iou(det.boxes[pd_], truth.boxes[pg])
    real = ~crowd[pg]
    # COCO matching (greedy by score with fallback) against non-crowd boxes of the same class
    cand = real & (iou >= fg)
    gt_of_det = core.greedy_match(pd_[cand], pg[cand], iou[cand], rank, det.image * num_classes + det.labels,
                                  n_det, n_gt)
    tp = gt_of_det >= 0
    used = np.zeros(n_gt, dtype=bool)
    used[gt_of_det[tp]] = True
    # crowd (difficult) regions: unmatched detections mostly inside one of their class are ignored
    cp = crowd[pg]
    on_crowd = np.zeros(n_det, dtype=bool)
    if cp.any():
        on_crowd[pd_[cp][core.pair_iof(det.boxes[pd_[cp]], truth.boxes[pg[cp]]) > fg]] = True
    ignored = ~tp & on_crowd

    # the IoU maxima TIDE tests, over non-crowd boxes of the same image (first box on ties)
    cls_iou, cls_at = core.segment_argmax(iou[real], pd_[real], n_det)
    cls_target = np.where(cls_at >= 0, pg[real][np.maximum(cls_at, 0)] if real.any() else -1, -1)
    su = real & used[pg]
    used_iou, _ = core.segment_argmax(iou[su], pd_[su], n_det)
    has_gt = (np.bincount(truth.image[~crowd], minlength=len(det.counts)) > 0)[det.image]
    is_loc = (cls_iou >= bg) & (cls_iou <= fg)
    asks = np.flatnonzero(~tp & has_gt & ~is_loc)  # only these reach the Cls and Bkg tests
    other_iou = np.zeros(n_det)
    other_target = np.full(n_det, -1, dtype=np.int64)
    other_iou[asks], other_target[asks] = core.best_other_class(det.take(asks), truth, ~crowd)
    any_iou = np.maximum(cls_iou, other_iou)

    kind = np.full(n_det, -1, dtype=np.int64)  # index into ERROR_TYPES, -1: true positive
    target = np.full(n_det, -1, dtype=np.int64)  # the box a Loc/Cls error points at
    todo = ~tp
    kind[todo & ~has_gt] = ERROR_TYPES.index("Bkg")
    todo &= has_gt
    for name, test, points_at in (("Loc", is_loc, cls_target),
                                  ("Cls", other_iou >= fg, other_target),
                                  ("Dupe", used_iou >= fg, None), ("Bkg", any_iou <= bg, None)):
        hit = todo & test
        kind[hit] = ERROR_TYPES.index(name)
        if points_at is not None:
            target[hit] = points_at[hit]
        todo &= ~hit
    kind[todo] = ERROR_TYPES.index("Both")

    # Loc/Cls errors pointing at a box nobody matched: the best-scored one per box may be fixed
    points = (target >= 0) & ~used[np.maximum(target, 0)]
    usable = np.zeros(n_gt, dtype=bool)
    usable[target[points]] = True
    fixable = core.first_claims(target, points, rank)

    missed_box = ~crowd & ~used & ~usable  # Miss errors
    n_pos = np.bincount(truth.labels[~crowd], minlength=num_classes)
    counted = ~ignored

    def run(fix: str | None = None, oracle: str | None = None) -> tuple[float, np.ndarray]:
        labels, is_tp, positives, keep = det.labels, tp, n_pos, counted
        if fix in ("Loc", "Cls"):
            mine = kind == ERROR_TYPES.index(fix)
            good = mine & fixable
            keep = keep & ~(mine & ~fixable) | good  # fixed errors count even when ignored before
            is_tp = is_tp | good
            if fix == "Cls":
                labels = labels.copy()
                labels[good] = truth.labels[target[good]]
        elif fix in ("Both", "Dupe", "Bkg"):
            keep = keep & (kind != ERROR_TYPES.index(fix))
        elif fix == "Miss":
            positives = positives - np.bincount(truth.labels[missed_box], minlength=num_classes)
        if oracle == "FalseNeg":
            positives = np.bincount(truth.labels[~crowd & used], minlength=num_classes)
        if oracle == "FalsePos":  # every TP first in its class: the k-th TP at rank k - 1 (order moves no AP)
            lab = np.sort(labels[keep & is_tp])
            count = np.bincount(lab, minlength=num_classes)
            return _mean_ap(lab, np.arange(len(lab)) - np.repeat(np.cumsum(count) - count, count), positives,
                            labels[keep])
        if fix != "Cls" and not (keep & ~counted).any():  # the base rows or fewer, same labels: order kept
            return _mean_ap(*core.tp_ranks(base_labels, is_tp[base_rows], keep[base_rows]), positives, labels[keep])
        rows = core.by_class(by_score[keep[by_score]], labels)
        return _mean_ap(*core.tp_ranks(labels[rows], is_tp[rows]), positives, labels[keep])

    base_rows = core.by_class(by_score[counted[by_score]], det.labels)
    base_labels = det.labels[base_rows]
    base, base_ap = run()
    delta, per_class = {}, {"class": list(range(num_classes)), "AP": base_ap.tolist(), "positives": n_pos.tolist()}
    for name in ERROR_TYPES:
        fixed, fixed_ap = run(fix=name)
        delta[name] = max(fixed - base, 0.0)
        per_class[f"dAP {name}"] = (fixed_ap - base_ap).tolist()
    oracle = {name: run(oracle=name)[0] - base for name in ORACLES}
    counts = {name: int((kind == i).sum()) for i, name in enumerate(ERROR_TYPES) if name != "Miss"}
    counts["Miss"] = int(missed_box.sum())

    err = np.flatnonzero(kind >= 0)
    miss = np.flatnonzero(missed_box)
    boxes = np.concatenate([det.boxes[err], truth.boxes[miss]])
    errors = pd.DataFrame({
        "type": pd.Categorical.from_codes(np.concatenate([kind[err], np.full(len(miss), ERROR_TYPES.index("Miss"))]),
                                          list(ERROR_TYPES)),
        "image": np.concatenate([det.image[err], truth.image[miss]]),
        "class": np.concatenate([det.labels[err], truth.labels[miss]]),
        "score": np.concatenate([det.scores[err], np.full(len(miss), np.nan)]),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "gt": np.concatenate([target[err], miss]),
    }, copy=False)  # the fresh arrays become the columns (no second copy)
    return ErrorBreakdown(base, delta, oracle, counts, pd.DataFrame(per_class), errors)


def worst_examples(breakdown: ErrorBreakdown, error_type: str, k: int = 6) -> pd.DataFrame:
    """The ``k`` most costly instances of one error type: highest-scored false positives first
    (they hurt precision most), for Miss the boxes in the images with the most misses."""
    rows = breakdown.errors[breakdown.errors["type"] == error_type]
    if error_type == "Miss":
        per_image = rows.groupby("image")["type"].transform("size")
        return rows.assign(_n=per_image).sort_values(["_n", "image"], ascending=[False, True], kind="stable").drop(columns="_n").head(k)
    return rows.sort_values("score", ascending=False, kind="stable").head(k)
