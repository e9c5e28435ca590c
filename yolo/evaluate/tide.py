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

import pandas as pd
import torch
from torch import Tensor

from yolo.evaluate.ap import TIDE_RECALL_POINTS, ap_coco101, by_class_then_score
from yolo.evaluate.matching import box_iof_pairs, flatten, greedy_match, group_argmax, pairs
from yolo.metrics import pair_iou

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
    instance: type, image (index), class, score, box, the box it points at (gt index, -1 none).
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


def _mean_ap(scores: Tensor, labels: Tensor, tp: Tensor, n_pos: Tensor, presorted: bool = False) -> tuple[float, Tensor]:
    """tidecv's mean: over classes with positives or any counted detection (the latter AP 0)."""
    num_classes = n_pos.numel()
    ap = ap_coco101(scores, labels, tp, n_pos.clamp(min=0), presorted, TIDE_RECALL_POINTS)
    present = (n_pos > 0) | (torch.bincount(labels, minlength=num_classes) > 0)
    return (float(ap[present].mean()) if bool(present.any()) else float("nan")), ap


def error_breakdown(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                    fg: float = 0.5, bg: float = 0.1, max_per_image: int = 100) -> ErrorBreakdown:
    """TIDE's breakdown (module docstring) of per-image detections against their ground truth."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection dicts but {len(ground_truths)} ground truths")
    det, truth = flatten(detections, max_per_image), flatten(ground_truths)
    crowd = truth.difficult
    n_det, n_gt = len(det), len(truth)
    pd_, pg = pairs(det, truth)
    iou = pair_iou(det.boxes[pd_], truth.boxes[pg])
    same = det.labels[pd_] == truth.labels[pg]
    real = ~crowd[pg]
    # COCO matching (image by image, detections in score order: ``det`` is already in that order)
    gt_of_det, det_of_gt = greedy_match(pd_, pg, iou, same & real, torch.arange(n_det), n_det, n_gt, fg)
    tp = gt_of_det >= 0
    used = det_of_gt >= 0
    # crowd (difficult) regions: unmatched detections mostly inside one of their class are ignored
    iof = box_iof_pairs(det.boxes[pd_], truth.boxes[pg])
    over_crowd = same & crowd[pg] & (iof > fg)
    ignored = ~tp & (torch.zeros(n_det, dtype=torch.bool).index_put_((pd_[over_crowd],), torch.tensor(True)))

    # the IoU maxima TIDE tests, over non-crowd boxes of the same image
    cls_iou, cls_at = group_argmax(torch.where(same & real, iou, 0.0), pd_, n_det, real)
    other_iou, other_at = group_argmax(torch.where(~same & real, iou, 0.0), pd_, n_det, real)
    used_iou, _ = group_argmax(torch.where(same & real & used[pg], iou, 0.0), pd_, n_det, real)
    any_iou, _ = group_argmax(iou, pd_, n_det, real)
    has_gt = torch.zeros(n_det, dtype=torch.bool)
    has_gt[pd_[real]] = True

    kind = torch.full((n_det,), -1, dtype=torch.int64)  # index into ERROR_TYPES, -1: true positive
    target = torch.full((n_det,), -1, dtype=torch.int64)  # the box a Loc/Cls error points at
    todo = ~tp
    bkg_no_gt = todo & ~has_gt
    kind[bkg_no_gt] = ERROR_TYPES.index("Bkg")
    todo &= has_gt
    for name, test, at in (("Loc", (cls_iou >= bg) & (cls_iou <= fg), cls_at), ("Cls", other_iou >= fg, other_at),
                           ("Dupe", used_iou >= fg, None), ("Bkg", any_iou <= bg, None)):
        hit = todo & test
        kind[hit] = ERROR_TYPES.index(name)
        if at is not None:
            target[hit] = pg[at[hit]]
        todo &= ~hit
    kind[todo] = ERROR_TYPES.index("Both")

    # Loc/Cls errors pointing at a box nobody matched: the best-scored one per box may be fixed
    points = (target >= 0) & ~used[target.clamp(min=0)]
    usable = torch.zeros(n_gt, dtype=torch.bool)
    usable[target[points]] = True
    best_score = torch.full((n_gt,), -1.0, dtype=torch.float64)
    best_score.scatter_reduce_(0, target[points], det.scores[points], "amax")
    winner_rank = torch.full((n_gt,), n_det, dtype=torch.int64)
    idx = torch.nonzero(points).squeeze(1)
    top = det.scores[idx] == best_score[target[idx]]
    winner_rank.scatter_reduce_(0, target[idx[top]], idx[top], "amin")
    fixable = torch.zeros(n_det, dtype=torch.bool)
    fixable[idx] = winner_rank[target[idx]] == idx

    missed_box = ~crowd & ~used & ~usable  # Miss errors
    n_pos = torch.bincount(truth.labels[~crowd], minlength=num_classes)
    counted = ~ignored

    def run(fix: str | None = None, oracle: str | None = None) -> tuple[float, Tensor]:
        scores, labels, is_tp, positives = det.scores.clone(), det.labels.clone(), tp.clone(), n_pos.clone()
        keep = counted.clone()
        if fix in ("Loc", "Cls"):
            mine = kind == ERROR_TYPES.index(fix)
            good = mine & fixable
            keep = keep & ~(mine & ~fixable) | good  # fixed errors count even when ignored before
            is_tp = is_tp | good
            if fix == "Cls":
                labels[good] = truth.labels[target[good]]
        elif fix in ("Both", "Dupe", "Bkg"):
            keep = keep & (kind != ERROR_TYPES.index(fix))
        elif fix == "Miss":
            positives = positives - torch.bincount(truth.labels[missed_box], minlength=num_classes)
        if oracle == "FalsePos":
            scores = torch.where(is_tp, 1.0, 0.0).double()
        elif oracle == "FalseNeg":
            positives = torch.bincount(truth.labels[~crowd & used], minlength=num_classes)
        if fix == "Cls" or oracle == "FalsePos":  # labels or scores changed: sort again
            return _mean_ap(scores[keep], labels[keep], is_tp[keep], positives)
        rows = base_order[keep[base_order]]  # a subset keeps the class-then-score order
        return _mean_ap(scores[rows], labels[rows], is_tp[rows], positives, presorted=True)

    base_order = by_class_then_score(det.scores, det.labels)
    base, base_ap = run()
    delta, per_class = {}, {"class": list(range(num_classes)), "AP": base_ap.tolist(), "positives": n_pos.tolist()}
    for name in ERROR_TYPES:
        fixed, fixed_ap = run(fix=name)
        delta[name] = max(fixed - base, 0.0)
        per_class[f"dAP {name}"] = (fixed_ap - base_ap).tolist()
    oracle = {name: run(oracle=name)[0] - base for name in ORACLES}
    counts = {name: int((kind == i).sum()) for i, name in enumerate(ERROR_TYPES) if name != "Miss"}
    counts["Miss"] = int(missed_box.sum())

    err = kind >= 0
    def frame(kinds, image, labels, scores, boxes, gt) -> pd.DataFrame:
        xyxy = boxes.numpy()
        return pd.DataFrame({"type": pd.Categorical.from_codes(kinds.numpy(), list(ERROR_TYPES)), "image": image.numpy(),
                             "class": labels.numpy(), "score": scores.numpy(), "x1": xyxy[:, 0], "y1": xyxy[:, 1],
                             "x2": xyxy[:, 2], "y2": xyxy[:, 3], "gt": gt.numpy()})

    rows = frame(kind[err], det.image[err], det.labels[err], det.scores[err], det.boxes[err], target[err])
    miss = torch.nonzero(missed_box).squeeze(1)
    misses = frame(torch.full((len(miss),), ERROR_TYPES.index("Miss")), truth.image[miss], truth.labels[miss],
                   torch.full((len(miss),), float("nan"), dtype=torch.float64), truth.boxes[miss], miss)
    errors = pd.concat([rows, misses], ignore_index=True)
    errors["type"] = errors["type"].astype(str)
    return ErrorBreakdown(base, delta, oracle, counts, pd.DataFrame(per_class), errors)


def worst_examples(breakdown: ErrorBreakdown, error_type: str, k: int = 6) -> pd.DataFrame:
    """The ``k`` most costly instances of one error type: highest-scored false positives first
    (they hurt precision most), for Miss the boxes in the images with the most misses."""
    rows = breakdown.errors[breakdown.errors["type"] == error_type]
    if error_type == "Miss":
        per_image = rows.groupby("image")["type"].transform("size")
        return rows.assign(_n=per_image).sort_values(["_n", "image"], ascending=[False, True], kind="stable").drop(columns="_n").head(k)
    return rows.sort_values("score", ascending=False, kind="stable").head(k)
