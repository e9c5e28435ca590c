"""Evaluation metrics: the seed's cell accuracies and Pascal VOC mAP@0.5, vectorised.

Formats:
    raw outputs   list of 3 Tensor[B, 3, S, S, 5 + C] (strides 32, 16, 8); channel 0 objectness
                  logit, 1:3 tx, ty, 3:5 tw, th, 5: class logits
    targets       list of 3 Tensor[B, 3, S, S, 6]; channel 0 is 1 (assigned), 0 (background) or
                  -1 (ignore), channel 5 the class index
    detections    one dict per image: "boxes" (Tensor[K, 4]) in (x1, y1, x2, y2) pixels,
                  "scores" (Tensor[K]), "labels" (Tensor[K] int64)
    ground truth  one dict per image: "boxes" (Tensor[G, 4]) in (x1, y1, x2, y2), "labels"
                  (Tensor[G] int64), optional "difficult" (Tensor[G] bool, default all False)

VOC matching rule (the devkit's, used by every function below): per class, detections are taken
in order of score, highest first, across all images (ties keep input order: image by image, then
detection order). A detection's candidate is the ground-truth box of its class in its image with
the highest IoU (the first such box on ties). If that IoU >= ``iou_threshold`` (the devkit writes
``>``; DESIGN.md and COCO say ``>=``, and so do we) and the candidate is difficult, the detection
is ignored (neither TP nor FP); if the candidate is not yet matched, the detection is a TP and the
candidate becomes matched; otherwise it is a duplicate and an FP. Below the threshold: FP. A
detection never falls back to a second-best box (COCO does; VOC does not). IoU is the continuous
one of torchvision (no "+1 pixel" of the 2007 devkit).

Because the candidate does not depend on the order, "the first detection in score order to claim
a box wins" is a per-box argmax, so the whole evaluation is a handful of sorts, searchsorted and
scatter_reduce calls, with no Python loop over detections or classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from yolo import evalcore as core
from yolo.config import ACC_CLASS, ACC_NOOBJ, ACC_OBJ, MAP50, MAP50_VOC07


# ---------------------------------------------------------------------------------------------
# Cell accuracies (the course code's check_class_accuracy, as a synchronised Metric)


class CellAccuracy(Metric):
    """Class, object and no-object accuracy over the grid cells, in percent (0..100).

    Over cells with target 1: class accuracy = argmax(class logits) == label, object accuracy =
    sigmoid(objectness) > threshold. Over cells with target 0: no-object accuracy =
    sigmoid(objectness) <= threshold. Ignored cells (-1) count nowhere. The counts are summed
    states, so under DDP the result covers every process. A kind of cell that never occurred
    (zero denominator) gives nan, not 0: "no evidence" must not read as "always wrong".
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, threshold: float = 0.05, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("class_correct", "obj_correct", "n_obj", "noobj_correct", "n_noobj"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, outputs: Sequence[Tensor] | Tensor, targets: Sequence[Tensor] | Tensor) -> None:
        """outputs: raw outputs (one Tensor[B, 3, S, S, 5 + C] per scale); targets: the matching
        encoded targets (Tensor[B, 3, S, S, 6] per scale). A single scale may be passed bare."""
        if isinstance(outputs, Tensor):
            outputs, targets = [outputs], [targets]
        if len(outputs) != len(targets):
            raise ValueError(f"{len(outputs)} output scales but {len(targets)} target scales")
        for out, tgt in zip(outputs, targets):
            if out.shape[:-1] != tgt.shape[:-1]:
                raise ValueError(f"output {tuple(out.shape)} does not match target {tuple(tgt.shape)}")
            # out-of-place sums: states may be inference tensors after a validate() run
            obj = tgt[..., 0] == 1  # (B, 3, S, S)
            noobj = tgt[..., 0] == 0
            pred_obj = torch.sigmoid(out[..., 0].float()) > self.threshold
            pred_cls = out[..., 5:][obj].argmax(-1)  # (n_obj,)
            self.class_correct = self.class_correct + (pred_cls == tgt[..., 5][obj].long()).sum()
            self.obj_correct = self.obj_correct + pred_obj[obj].sum()
            self.n_obj = self.n_obj + obj.sum()
            self.noobj_correct = self.noobj_correct + (~pred_obj[noobj]).sum()
            self.n_noobj = self.n_noobj + noobj.sum()

    def compute(self) -> dict[str, Tensor]:
        """{ACC_CLASS, ACC_NOOBJ, ACC_OBJ} -> 0-dim float tensors in percent (nan: no such cells)."""

        def pct(num: Tensor, den: Tensor) -> Tensor:
            return torch.where(den > 0, 100.0 * num / den.clamp(min=1), float("nan"))

        return {
            ACC_CLASS: pct(self.class_correct, self.n_obj),
            ACC_NOOBJ: pct(self.noobj_correct, self.n_noobj),
            ACC_OBJ: pct(self.obj_correct, self.n_obj),
        }


# ---------------------------------------------------------------------------------------------
# Matching


@dataclass
class Matches:
    """Every detection of a set of images after VOC matching, in input order (image by image).

    scores (Tensor[D] float64), labels (Tensor[D] int64), image (Tensor[D] int64): the detections.
    iou (Tensor[D] float64): IoU with the candidate box (0 when none of that class/group exists).
    tp, ignored (Tensor[D] bool): true positive / matched a difficult box; FP is ~tp & ~ignored.
    n_positives (Tensor[C] int64): non-difficult ground-truth boxes per class.
    """

    scores: Tensor
    labels: Tensor
    image: Tensor
    iou: Tensor
    tp: Tensor
    ignored: Tensor
    n_positives: Tensor

    @property
    def fp(self) -> Tensor:
        return ~self.tp & ~self.ignored

    def per_image(self, images: int, conf: float) -> tuple[Tensor, Tensor]:
        """(true positives, false positives) per image (Tensor[images] int64 each) among the
        detections with score > ``conf`` (the Detector's rule). Matching is greedy by score, so the
        kept detections have the flags they have when everything is matched."""
        above = confident(self.scores, conf)
        return (torch.bincount(self.image[self.tp & above], minlength=images),
                torch.bincount(self.image[self.fp & above], minlength=images))


def _flatten(items: Sequence[dict], kind: str) -> dict[str, Tensor]:
    """Concatenate per-image dicts into flat tensors plus the image index of every row."""
    if not items:
        empty = torch.zeros(0, dtype=torch.long)
        return {"boxes": torch.zeros(0, 4, dtype=torch.float64), "labels": empty, "image": empty,
                "scores": torch.zeros(0, dtype=torch.float64), "difficult": empty.bool()}
    device = items[0]["boxes"].device
    counts = torch.tensor([d["labels"].numel() for d in items], device=device)
    out = {
        "boxes": torch.cat([d["boxes"].reshape(-1, 4) for d in items]).to(torch.float64),
        "labels": torch.cat([d["labels"].reshape(-1) for d in items]).long(),
        "image": torch.repeat_interleave(torch.arange(len(items), device=device), counts),
    }
    if kind == "det":
        out["scores"] = torch.cat([d["scores"].reshape(-1) for d in items]).to(torch.float64)
    else:
        out["difficult"] = torch.cat([
            d["difficult"].reshape(-1).bool() if d.get("difficult") is not None
            else torch.zeros(d["labels"].numel(), dtype=torch.bool, device=device)
            for d in items
        ])
    if out["boxes"].shape[0] != out["labels"].shape[0]:
        raise ValueError(f"{kind}: boxes and labels differ in length")
    return out


def _check_labels(labels: Tensor, num_classes: int, kind: str) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{kind} labels must lie in [0, {num_classes}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def pair_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of matching pairs. a, b (Tensor[P, 4]) in (x1, y1, x2, y2) -> Tensor[P]; 0 if union is 0.

    No epsilon in the denominator (unlike yolo.boxes.elementwise_iou): an IoU of exactly 0.5 must
    stay 0.5 to pass the inclusive threshold.
    """
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(union))


def candidate_boxes(det_boxes: Tensor, det_group: Tensor, gt_boxes: Tensor,
                    gt_group: Tensor) -> tuple[Tensor, Tensor]:
    """For each detection, the ground-truth box of the same group with the highest IoU.

    det_boxes (Tensor[D, 4]) and gt_boxes (Tensor[G, 4]) in (x1, y1, x2, y2); det_group
    (Tensor[D] int64) and gt_group (Tensor[G] int64) say which boxes may be compared (e.g.
    image * C + class). Only same-group pairs are formed (no padding), so the cost is the number of
    such pairs. Returns (index Tensor[D] int64 into gt_boxes, -1 where the group is empty; the first
    index on ties) and (iou Tensor[D] float64, 0 where the group is empty).
    """
    n_det, n_gt = det_group.numel(), gt_group.numel()
    device = det_group.device
    best = torch.full((n_det,), -1, dtype=torch.long, device=device)
    best_iou = torch.zeros(n_det, dtype=torch.float64, device=device)
    if n_det == 0 or n_gt == 0:
        return best, best_iou
    sorted_group, gt_order = torch.sort(gt_group, stable=True)  # stable: input order within a group
    lo = torch.searchsorted(sorted_group, det_group)
    n_pairs = torch.searchsorted(sorted_group, det_group, right=True) - lo  # (D,)
    pair_det = torch.repeat_interleave(torch.arange(n_det, device=device), n_pairs)  # (P,)
    pair_pos = torch.arange(pair_det.numel(), device=device) - (torch.cumsum(n_pairs, 0) - n_pairs)[pair_det]
    pair_pos += lo[pair_det]  # position in sorted_group
    iou = pair_iou(det_boxes[pair_det].double(), gt_boxes[gt_order[pair_pos]].double())
    best_iou.scatter_reduce_(0, pair_det, iou, "amax")  # include_self: IoU >= 0 == initial value
    at_best = iou == best_iou[pair_det]
    first_pos = torch.full((n_det,), n_gt, dtype=torch.long, device=device)
    first_pos.scatter_reduce_(0, pair_det[at_best], pair_pos[at_best], "amin")
    found = first_pos < n_gt
    best[found] = gt_order[first_pos[found]]
    return best, best_iou


def first_claims(candidate: Tensor, claims: Tensor, scores: Tensor, n_gt: int) -> Tensor:
    """Which claims win: per box, the claiming detection with the highest score (lowest index on ties).

    candidate (Tensor[D] int64): the box each detection points at; claims (Tensor[D] bool): which
    detections claim it; scores (Tensor[D]). Returns Tensor[D] bool. This is the outcome of the
    devkit's sequential "first come, first matched" loop, computed without the loop.
    """
    idx = torch.nonzero(claims).squeeze(1)
    won = torch.zeros_like(claims)
    if idx.numel() == 0:
        return won
    box, score = candidate[idx], scores[idx].double()
    top = torch.full((n_gt,), float("-inf"), dtype=torch.float64, device=scores.device)
    top.scatter_reduce_(0, box, score, "amax")
    at_top = score == top[box]
    first = torch.full((n_gt,), scores.numel(), dtype=torch.long, device=scores.device)
    first.scatter_reduce_(0, box[at_top], idx[at_top], "amin")
    won[idx] = first[box] == idx
    return won


def _match_np(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
              iou_threshold: float) -> tuple[core.Table, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """VOC matching on the numpy core -> (detections table, iou, tp, ignored, n_positives, score order)."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection dicts but {len(ground_truths)} ground truths")
    det, gt = core.flatten(detections, "det"), core.flatten(ground_truths, "gt")
    core.check_labels(det.labels, num_classes, "detection")
    core.check_labels(gt.labels, num_classes, "ground-truth")
    cand, iou = core.voc_candidates(det, gt, num_classes)
    hit = (cand >= 0) & (iou >= iou_threshold)
    ignored = hit & gt.difficult[np.maximum(cand, 0)] if len(gt) else np.zeros(len(det), dtype=bool)
    order = core.score_order(det.scores)
    tp = core.first_claims(cand, hit & ~ignored, core.rank_of(order))
    n_pos = np.bincount(gt.labels[~gt.difficult], minlength=num_classes)
    return det, iou, tp, ignored, n_pos, order


def match_detections(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                     iou_threshold: float = 0.5) -> Matches:
    """VOC-match the detections of a list of images to their ground truth (rule: module docstring).

    detections, ground_truths: one dict per image (formats in the module docstring), same length.
    Matching is per image, so matching batches one at a time gives the same flags as all at once.
    Computed on the CPU (``yolo.evalcore``); the tensors returned are CPU tensors.
    """
    det, iou, tp, ignored, n_pos, _ = _match_np(detections, ground_truths, num_classes, iou_threshold)
    t = torch.from_numpy
    return Matches(t(det.scores), t(det.labels), t(det.image), t(iou), t(tp), t(ignored), t(n_pos))


# ---------------------------------------------------------------------------------------------
# Average precision


# The 11 recall thresholds of the Python VOC devkit's ``voc_eval(..., use_07_metric=True)``
# (``for t in np.arange(0., 1.1, 0.1)``), the code behind most published VOC07 numbers. They are
# not i / 10: three are a hair above (0.30000000000000004, 0.6000000000000001, 0.7000000000000001),
# so a class whose recall is exactly 0.3, 0.6 or 0.7 at some detection reads the next point there.
VOC07_RECALL_POINTS = torch.from_numpy(core.VOC07_RECALL_POINTS)


@dataclass
class VOCResult:
    """VOC evaluation. APs are in 0..1; a class without non-difficult ground truth has AP nan and is
    left out of the means (map is nan when no class has ground truth).

    per_class_ap, per_class_ap_voc07 (Tensor[C] float64): all-point area and 11-point AP.
    precision, recall, scores (list of C Tensor[K_c] float64): the curve of each class, one point
    per non-ignored detection of that class in descending score order (recall nan without GT).
    n_positives (Tensor[C] int64): non-difficult ground-truth boxes per class.
    """

    map: float
    map_voc07: float
    per_class_ap: Tensor
    per_class_ap_voc07: Tensor
    precision: list[Tensor]
    recall: list[Tensor]
    scores: list[Tensor]
    n_positives: Tensor

    def summary(self) -> dict[str, float]:
        """{MAP50: all-point mAP, MAP50_VOC07: 11-point mAP}, the logged names."""
        return {MAP50: self.map, MAP50_VOC07: self.map_voc07}


def average_precision(recall: Tensor, precision: Tensor, voc07: bool = False) -> float:
    """AP of one precision/recall curve, as the devkit's VOCap / VOC2007 code.

    recall, precision (Tensor[K]): one point per detection in descending score order.
    voc07=False: area under the monotone envelope of precision (VOC2010+, "all points").
    voc07=True: mean over the devkit's t in ``np.arange(0., 1.1, 0.1)`` (``VOC07_RECALL_POINTS``) of
    max precision at recall >= t.
    """
    recall, precision = recall.double(), precision.double()
    if voc07:
        t = VOC07_RECALL_POINTS.to(recall.device)
        p = torch.where(recall[None, :] >= t[:, None], precision[None, :], torch.zeros_like(precision))
        return float(p.amax(1).sum() / 11) if recall.numel() else 0.0
    zero, one = recall.new_zeros(1), recall.new_ones(1)
    mrec = torch.cat([zero, recall, one])
    mpre = torch.cat([zero, precision, zero])
    mpre = torch.flip(torch.cummax(torch.flip(mpre, (0,)), 0).values, (0,))  # envelope
    step = torch.nonzero(mrec[1:] != mrec[:-1]).squeeze(1) + 1
    return float(((mrec[step] - mrec[step - 1]) * mpre[step]).sum())


def _voc_result(scores: np.ndarray, labels: np.ndarray, tp: np.ndarray, n_positives: np.ndarray,
                by_score: np.ndarray | None = None) -> VOCResult:
    """APs and curves of counted detections (numpy, input order) on the core; ``by_score``: their
    score order when already known."""
    num_classes = len(n_positives)
    order = core.by_class(core.score_order(scores) if by_score is None else by_score, labels)
    t = tp[order]
    cv = core.curves(labels[order], t, n_positives)
    has_gt = n_positives > 0
    ap = core.ap_all_points(cv, t)
    ap07 = np.where(has_gt, core.ap_points(cv, core.VOC07_RECALL_POINTS), np.nan)
    cuts = cv.start[1:] if num_classes else []
    split = lambda a: [torch.from_numpy(np.ascontiguousarray(x)) for x in np.split(a, cuts)]
    valid = bool(has_gt.any())
    return VOCResult(
        map=float(ap[has_gt].mean()) if valid else float("nan"),
        map_voc07=float(ap07[has_gt].mean()) if valid else float("nan"),
        per_class_ap=torch.from_numpy(ap),
        per_class_ap_voc07=torch.from_numpy(ap07),
        precision=split(cv.precision),
        recall=split(cv.recall),
        scores=split(scores[order]),
        n_positives=torch.from_numpy(n_positives.astype(np.int64)),
    )


def evaluate_matches(scores: Tensor, labels: Tensor, tp: Tensor, n_positives: Tensor) -> VOCResult:
    """APs and curves from matched, non-ignored detections of any number of images.

    scores (Tensor[D]), labels (Tensor[D] int64), tp (Tensor[D] bool) in image order;
    n_positives (Tensor[C] int64). All classes at once (``yolo.evalcore``): one stable score sort,
    regrouped by class, each class a contiguous segment; results are CPU tensors.
    """
    as_np = lambda x, dtype: x.detach().to("cpu", dtype).numpy()
    return _voc_result(as_np(scores, torch.float64), as_np(labels, torch.int64), as_np(tp, torch.bool),
                       as_np(n_positives, torch.int64))


def voc_evaluate(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                 iou_threshold: float = 0.5) -> VOCResult:
    """Pascal VOC mAP at ``iou_threshold`` (all-point and 11-point) with per-class APs and curves.

    detections, ground_truths: one dict per image (formats and matching rule: module docstring).
    Ignored detections (on difficult boxes) are dropped from the curves; this changes neither AP.
    """
    det, _, tp, ignored, n_pos, order = _match_np(detections, ground_truths, num_classes, iou_threshold)
    if ignored.any():  # the score order of the kept rows, renumbered
        new_index = np.cumsum(~ignored) - 1
        order = new_index[order[~ignored[order]]]
        keep = ~ignored
        return _voc_result(det.scores[keep], det.labels[keep], tp[keep], n_pos, order)
    return _voc_result(det.scores, det.labels, tp, n_pos, order)



class VOCMeanAP(Metric):
    """VOC mAP@0.5 as a Metric: ``update(preds, target)`` per batch, synchronised under DDP.

    preds / target: lists of per-image dicts as ``voc_evaluate`` takes. Matching happens in
    ``update`` (it is per image); only the score, label and TP flag of each non-ignored detection
    are kept (``cat`` states) plus positive counts per class (``sum``), so ``compute`` gives
    exactly ``voc_evaluate`` on all images seen. ``compute`` returns {MAP50, MAP50_VOC07} as Python
    floats in 0..1; the full ``VOCResult`` (per-class AP, curves) is left in ``self.result``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, iou_threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.result: VOCResult | None = None
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("tp", default=[], dist_reduce_fx="cat")  # uint8: safe for every backend
        self.add_state("n_positives", default=torch.zeros(num_classes, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, preds: Sequence[dict], target: Sequence[dict]) -> None:
        m = match_detections(preds, target, self.num_classes, self.iou_threshold)
        keep = ~m.ignored
        self.scores.append(m.scores[keep].to(self.n_positives.device))
        self.labels.append(m.labels[keep].to(self.n_positives.device))
        self.tp.append(m.tp[keep].to(self.n_positives.device, torch.uint8))
        self.n_positives = self.n_positives + m.n_positives.to(self.n_positives.device)

    def compute(self) -> dict[str, float]:
        def cat(state, dtype):
            if isinstance(state, list) and not state:
                return torch.zeros(0, dtype=dtype, device=self.n_positives.device)
            return dim_zero_cat(state)

        self.result = evaluate_matches(cat(self.scores, torch.float64), cat(self.labels, torch.long),
                                       cat(self.tp, torch.uint8).bool(), self.n_positives)
        return self.result.summary()


# ---------------------------------------------------------------------------------------------
# Thresholded views for the dashboard's Evaluate page


@dataclass
class PRAt:
    """Precision and recall at one confidence threshold.

    precision, recall (float): micro-averaged over classes (all TPs / all counted detections,
    all TPs / all positives); nan when the denominator is 0. per_class_precision,
    per_class_recall (Tensor[C] float64, nan where undefined); tp, fp, n_positives (Tensor[C] int64).
    """

    precision: float
    recall: float
    per_class_precision: Tensor
    per_class_recall: Tensor
    tp: Tensor
    fp: Tensor
    n_positives: Tensor


def confident(scores: Tensor, conf_threshold: float) -> Tensor:
    """The Detector's rule, score > threshold, compared in float32 (the Detector's precision)
    whatever dtype the scores come in (a predictions file may hold float16 or float64), so every
    metric keeps the same detections at one threshold."""
    return scores.float() > conf_threshold


def _keep_confident(detections: Sequence[dict], conf_threshold: float) -> list[dict]:
    out = []
    for d in detections:
        k = confident(d["scores"].reshape(-1), conf_threshold)
        out.append({"boxes": d["boxes"].reshape(-1, 4)[k], "scores": d["scores"].reshape(-1)[k],
                    "labels": d["labels"].reshape(-1)[k]})
    return out


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num.double() / den.clamp(min=1).double(), float("nan"))


def precision_recall_at(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                        conf_threshold: float, iou_threshold: float = 0.5) -> PRAt:
    """Precision and recall of the detections with score > conf_threshold (the Detector's and
    postprocess's rule), VOC-matched.

    Detections on difficult boxes are ignored, as in the mAP. Because matching is greedy by score,
    the flags of the kept detections are the same as when matching everything and then thresholding.
    """
    m = match_detections(_keep_confident(detections, conf_threshold), ground_truths, num_classes,
                         iou_threshold)
    return _pr_at(m, torch.ones_like(m.tp), num_classes)


def precision_recall_sweep(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                           conf_thresholds: Sequence[float], iou_threshold: float = 0.5) -> list[PRAt]:
    """``precision_recall_at`` at each of ``conf_thresholds`` from one VOC matching of every
    detection: matching is greedy by score, so the detections above a threshold carry the flags
    they get when everything is matched (``confident``: compared in float32, as everywhere).
    One matching instead of one per threshold; the same numbers (``tests/test_metrics.py``)."""
    m = match_detections(detections, ground_truths, num_classes, iou_threshold)
    return [_pr_at(m, confident(m.scores, conf), num_classes) for conf in conf_thresholds]


def _pr_at(m: Matches, keep: Tensor, num_classes: int) -> PRAt:
    tp = torch.bincount(m.labels[m.tp & keep], minlength=num_classes)
    fp = torch.bincount(m.labels[m.fp & keep], minlength=num_classes)
    return PRAt(
        precision=float(_ratio(tp.sum(), (tp + fp).sum())),
        recall=float(_ratio(tp.sum(), m.n_positives.sum())),
        per_class_precision=_ratio(tp, tp + fp),
        per_class_recall=_ratio(tp, m.n_positives),
        tp=tp, fp=fp, n_positives=m.n_positives,
    )


def confusion_matrix(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                     iou_threshold: float = 0.5, conf_threshold: float = 0.25) -> Tensor:
    """Detection confusion matrix, Tensor[C + 1, C + 1] int64: rows = true class, columns = predicted.

    Row/column C is background: [g, C] counts boxes of class g that no detection matched (missed),
    [C, p] counts detections of class p that matched no box (false detections); [C, C] is 0.
    Matching: the VOC rule with classes ignored. Detections with score > conf_threshold, highest
    score first, each point at the box of any class in their image with the highest IoU; if that
    IoU >= iou_threshold and the box is unclaimed the pair (box class, detection class) is counted,
    else the detection is a false detection. Detections on difficult boxes and the difficult boxes
    themselves are left out.
    """
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection dicts but {len(ground_truths)} ground truths")
    det = _flatten(_keep_confident(detections, conf_threshold), "det")
    gt = _flatten(ground_truths, "gt")
    _check_labels(det["labels"], num_classes, "detection")
    _check_labels(gt["labels"], num_classes, "ground-truth")
    cand, iou = candidate_boxes(det["boxes"], det["image"], gt["boxes"], gt["image"])
    hit = (cand >= 0) & (iou >= iou_threshold)
    ignored = hit.clone()
    ignored[hit] = gt["difficult"][cand[hit]]
    won = first_claims(cand, hit & ~ignored, det["scores"], gt["labels"].numel())
    bg = num_classes
    true_cls = torch.full_like(cand, bg)
    true_cls[won] = gt["labels"][cand[won]]
    det_rows = true_cls[~ignored] * (bg + 1) + det["labels"][~ignored]  # matched or false detection
    claimed = torch.zeros(gt["labels"].numel(), dtype=torch.bool, device=won.device)
    claimed[cand[won]] = True
    missed = ~claimed & ~gt["difficult"]
    gt_rows = gt["labels"][missed] * (bg + 1) + bg
    flat = torch.bincount(torch.cat([det_rows, gt_rows]), minlength=(bg + 1) ** 2)
    return flat.reshape(bg + 1, bg + 1)
