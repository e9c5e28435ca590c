"""Label review: where a model's cached predictions say an annotation is probably wrong.

    dets = preds.detections(conf=preds.conf_floor, iou=0.45)      # PredictionSet -> per image
    result = review(dets, truth, ReviewConfig(conf=thresholds))   # truth: per-image boxes/labels
    result.images      # one row per image, worst first (pandas)
    result.boxes       # one row per label and per suspect prediction, with a score per kind

Five kinds of likely mistake, each scored in [0, 1] (higher: more likely a mistake) for the box it
concerns, with the model's suggestion (a box and/or a class):

* ``missing``: a confident prediction that no label of any class overlaps (suggest: add it);
  ``score * (1 - best IoU with any label / miss_iou) * min(1, backing / full_backing)``, kept
  once per object (class-agnostic NMS). Its backing is the summed score of the pre-NMS candidates
  (any class, above ``low_conf``) overlapping it at least 0.5: a real object is found by a cluster
  of anchors and cells, a false detection on background by few (on the demo model the planted
  missing objects had 2.3-5, its false detections 1.1-2.2);
* ``wrong_class``: a label that a confident prediction of another class overlaps tightly
  (IoU >= ``tight_iou``, and better than it overlaps any label of its own class) while the label's
  own class is predicted weakly there: ``max(score * IoU) * (1 - own-class score)`` (suggest: that class);
* ``loose``: a label whose best confident same-class prediction (one that overlaps no other label
  of that class more) overlaps it only partly: ``1 - IoU`` (suggest: the predicted box);
* ``spurious``: a label where the model predicts nothing of any class:
  ``1 - max(score * min(1, IoU / tight_iou))`` over predictions above ``low_conf`` that overlap it
  at least ``tight_iou`` or overlap no other label more (suggest: delete it);
* ``duplicate``: a label that another label of its class overlaps at least ``dup_iou``: the IoU,
  on the one of the pair whose best same-class prediction fits worse (suggest: delete it).

A box's score is its worst kind; an image's is its worst box. "Confident" means above the
class's threshold: the checkpoint's saved operating points where present (``thresholds_for``),
else ``ReviewConfig.conf``. Everything is computed for a whole split at once over the
(label, prediction) pairs of each image (no Python loop per box or image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torchvision.ops import batched_nms

from yolo.boxes import elementwise_iou

KINDS: tuple[str, ...] = ("missing", "wrong_class", "loose", "spurious", "duplicate")
ACTIONS: dict[str, str] = {"missing": "add the box", "wrong_class": "change the class",
                           "loose": "replace the box", "spurious": "delete the label",
                           "duplicate": "delete the label"}


@dataclass(frozen=True)
class ReviewConfig:
    """The knobs of the scores (see the module docstring)."""

    conf: float | tuple[float, ...] = 0.5  # "confident": one threshold, or one per class (operating points)
    low_conf: float = 0.1  # the weakest prediction taken as "the model sees something here"
    tight_iou: float = 0.5  # wrong class: another class's prediction overlaps this much; spurious: full support
    miss_iou: float = 0.5  # missing: a label overlapping a prediction this much explains it fully
    dup_iou: float = 0.7  # duplicate: two same-class labels overlapping at least this much
    nms_iou: float = 0.45  # NMS IoU of the predictions (class-aware, as evaluation)
    min_score: float = 0.05  # rows below this in every kind are left out of ``boxes``
    full_backing: float = 3.0  # missing: summed pre-NMS candidate scores at which a prediction is fully backed


@dataclass
class Flat:
    """Boxes of N images as flat tensors sorted by image: boxes (Tensor[K, 4]) pixel xyxy,
    labels (Tensor[K]) int64, image (Tensor[K]) int64, scores (Tensor[K]) or None for labels."""

    boxes: Tensor
    labels: Tensor
    image: Tensor
    scores: Tensor | None = None

    @staticmethod
    def from_list(items: Sequence[dict], scored: bool) -> Flat:
        """Per-image dicts {"boxes", "labels"[, "scores"]} (tensors or arrays) -> one Flat."""
        counts = torch.tensor([len(d["labels"]) for d in items], dtype=torch.int64)

        def cat(key: str, dtype: torch.dtype, cols: int | None) -> Tensor:
            shape = (-1,) if cols is None else (-1, cols)
            parts = [torch.as_tensor(np.asarray(d[key]), dtype=dtype).reshape(shape) for d in items]
            return torch.cat(parts) if parts else torch.zeros((0,) if cols is None else (0, cols), dtype=dtype)

        return Flat(cat("boxes", torch.float32, 4), cat("labels", torch.int64, None),
                    torch.repeat_interleave(torch.arange(len(items)), counts),
                    cat("scores", torch.float32, None) if scored else None)


# ------------------------------------------------------------------------------ segment maths
def pairs(image_a: Tensor, image_b: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Every (i, j) with ``image_a[i] == image_b[j]``; both (Tensor[A], Tensor[B]) int64 sorted.
    Returns (Tensor[P], Tensor[P]) indices into a and b, P = sum over images of A_i * B_i."""
    counts_b = torch.bincount(image_b, minlength=n)
    start_b = torch.cumsum(counts_b, 0) - counts_b
    reps = counts_b[image_a]  # (A,) partners of each a
    ia = torch.repeat_interleave(torch.arange(len(image_a)), reps)
    first = torch.cumsum(reps, 0) - reps  # (A,) where each a's run of pairs starts
    ib = start_b[image_a][ia] + torch.arange(len(ia)) - first[ia]
    return ia, ib


def segment_max(values: Tensor, segment: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Per segment (Tensor[P] int64 in 0..n-1) the max of ``values`` (Tensor[P] >= 0; 0 where
    empty) and the first pair attaining it (Tensor[n] int64, -1 where the max is 0)."""
    best = torch.zeros(n, dtype=values.dtype).scatter_reduce(0, segment, values, "amax", include_self=True)
    hit = (values == best[segment]) & (values > 0)
    none = len(values)
    arg = torch.full((n,), none, dtype=torch.int64).scatter_reduce(
        0, segment[hit], torch.arange(len(values))[hit], "amin", include_self=True)
    return best, torch.where(arg == none, -1, arg)


def _take(table: Tensor, index: Tensor, fill: float = float("nan")) -> Tensor:
    """``table[index]`` with ``fill`` rows where index is -1."""
    if len(table) == 0:
        shape = (len(index),) + tuple(table.shape[1:])
        return torch.full(shape, fill, dtype=table.dtype if table.is_floating_point() else torch.float32)
    out = table[index.clamp(min=0)].clone()
    out[index < 0] = fill
    return out


# ------------------------------------------------------------------------------------ scores
@dataclass
class BoxScores:
    """Per label (G) and per prediction (P): the five kinds' scores and the boxes they concern.

    label_scores (Tensor[G, 5]) columns in ``KINDS`` order (``missing`` is 0 for labels);
    wrong_pred, loose_pred (Tensor[G]) int64 the prediction behind wrong_class / loose (-1: none);
    label_partner (Tensor[G]) int64 the other label of a duplicate (-1: none);
    missing (Tensor[P]) the missing score of every prediction (0 where not confident / kept)."""

    label_scores: Tensor
    wrong_pred: Tensor
    loose_pred: Tensor
    label_partner: Tensor
    missing: Tensor


def backing(pred: Flat, which: Tensor, candidates: Flat, n: int, low_conf: float, iou: float = 0.5) -> Tensor:
    """For the predictions ``which`` (Tensor[W] int64 into pred): the summed score of the
    candidates (pre-NMS, scored) of their image above ``low_conf`` that overlap them at least
    ``iou``. Returns Tensor[W]."""
    keep = candidates.scores >= low_conf
    c_img, c_box, c_score = candidates.image[keep], candidates.boxes[keep], candidates.scores[keep]
    order = torch.argsort(c_img, stable=True)
    c_img, c_box, c_score = c_img[order], c_box[order], c_score[order]
    w_img = pred.image[which]
    wi, ci = pairs(w_img, c_img, n)
    if not len(wi):
        return torch.zeros(len(which))
    overlap = elementwise_iou(pred.boxes[which][wi], c_box[ci]) >= iou
    return torch.zeros(len(which)).scatter_add(0, wi[overlap], c_score[ci][overlap])


def box_scores(pred: Flat, gt: Flat, n: int, config: ReviewConfig = ReviewConfig(),
               candidates: Flat | None = None) -> BoxScores:
    """The five scores for every label of ``gt`` and prediction of ``pred`` (N = ``n`` images);
    ``candidates``: the pre-NMS candidates behind ``pred`` (the missing kind's backing), or None."""
    G, P = len(gt.labels), len(pred.labels)
    num_classes = int(max([int(pred.labels.max()) + 1 if P else 0, int(gt.labels.max()) + 1 if G else 0, 1]))
    thr = torch.as_tensor(config.conf, dtype=torch.float32)
    thr = thr.expand(num_classes) if thr.ndim == 0 else thr
    if len(thr) < num_classes:
        raise ValueError(f"{len(thr)} class thresholds for labels up to class {num_classes - 1}")
    s = pred.scores
    confident = s >= thr[pred.labels]

    gi, pk = pairs(gt.image, pred.image, n)
    iou = elementwise_iou(gt.boxes[gi], pred.boxes[pk]) if len(gi) else torch.zeros(0)
    same = gt.labels[gi] == pred.labels[pk]
    ps = s[pk]
    zero = torch.zeros_like(iou)
    pred_any, _ = segment_max(iou, pk, P)  # best overlap of each prediction with any label
    pred_own, _ = segment_max(torch.where(same, iou, zero), pk, P)  # ... with a label of its class

    # missing: confident predictions no label explains, once per object
    missing = torch.where(confident, s * (1 - pred_any / config.miss_iou).clamp(0, 1), torch.zeros_like(s))
    cand = torch.nonzero(missing > 0).flatten()
    if candidates is not None and len(cand):
        missing[cand] *= (backing(pred, cand, candidates, n, config.low_conf) / config.full_backing).clamp(max=1)
    keep = cand[batched_nms(pred.boxes[cand], missing[cand], pred.image[cand], 0.5)] if len(cand) else cand
    kept = torch.zeros_like(missing, dtype=torch.bool)
    kept[keep] = True
    missing = torch.where(kept, missing, torch.zeros_like(missing))

    # own-class support, wrong class
    tight = iou >= config.tight_iou
    own, _ = segment_max(torch.where(same & tight & (ps >= config.low_conf), ps, zero), gi, G)
    other = ~same & confident[pk] & tight & (iou > pred_own[pk])
    wrong_raw, wrong_arg = segment_max(torch.where(other, ps * iou, zero), gi, G)
    wrong = wrong_raw * (1 - own)

    # loose: the best confident same-class prediction that overlaps no other same-class label more
    mine = same & confident[pk] & (iou > 0) & (iou >= pred_own[pk] - 1e-6)
    best_iou, loose_arg = segment_max(torch.where(mine, iou, zero), gi, G)
    loose = torch.where(loose_arg >= 0, 1 - best_iou, torch.zeros_like(best_iou))

    # spurious: nothing of any class supports the label
    supports = (ps >= config.low_conf) & (tight | (iou >= pred_any[pk] - 1e-6)) & (iou > 0)
    support, _ = segment_max(torch.where(supports, ps * (iou / config.tight_iou).clamp(max=1), zero), gi, G)
    spurious = 1 - support

    # duplicate: same-class labels overlapping almost entirely; the worse-fitting one is flagged
    ga, gb = pairs(gt.image, gt.image, n)
    pair_iou = elementwise_iou(gt.boxes[ga], gt.boxes[gb]) if len(ga) else torch.zeros(0)
    worse = (best_iou[ga] < best_iou[gb]) | ((best_iou[ga] == best_iou[gb]) & (ga > gb))
    dup_pair = (ga != gb) & (gt.labels[ga] == gt.labels[gb]) & (pair_iou >= config.dup_iou) & worse
    duplicate, dup_arg = segment_max(torch.where(dup_pair, pair_iou, torch.zeros_like(pair_iou)), ga, G)

    scores = torch.stack([torch.zeros(G), wrong, loose, spurious, duplicate], dim=1)
    return BoxScores(scores, _take(pk, wrong_arg, -1).long(), _take(pk, loose_arg, -1).long(),
                     _take(gb, dup_arg, -1).long(), missing)


# ------------------------------------------------------------------------------------ tables
@dataclass
class Review:
    """The result: ``boxes`` (one row per label with any score >= min_score and per missing
    prediction; columns in the module docstring's terms) and ``images`` (one row per image,
    worst first: image, image_id, score, kind, issues)."""

    boxes: pd.DataFrame
    images: pd.DataFrame
    class_names: list[str]

    def ranked(self) -> pd.DataFrame:
        """``boxes`` ordered worst image first, then worst box first within the image."""
        rank = pd.Series(np.arange(len(self.images)), index=self.images["image"].to_numpy())
        out = self.boxes.assign(_rank=rank.reindex(self.boxes["image"]).to_numpy())
        return out.sort_values(["_rank", "score"], ascending=[True, False], kind="stable").drop(columns="_rank") \
            .reset_index(drop=True)


def _xyxy(prefix: str, boxes: Tensor) -> dict[str, np.ndarray]:
    b = boxes.numpy().reshape(-1, 4)
    return {f"{prefix}{c}": b[:, i] for i, c in enumerate(("x1", "y1", "x2", "y2"))}


def review(detections: Sequence[dict], truth: Sequence[dict], config: ReviewConfig = ReviewConfig(),
           image_ids: Sequence[str] | None = None, class_names: Sequence[str] | None = None,
           flag: float = 0.5, candidates: Flat | None = None) -> Review:
    """Score every label and suspect prediction of a split.

    Args:
        detections: per image {"boxes" (K, 4) pixel xyxy, "scores" (K,), "labels" (K,)} after
            NMS (``PredictionSet.detections``).
        truth: per image {"boxes" (G, 4), "labels" (G,)} in the same pixels (the annotation index).
        flag: a row counts as an issue of its image when its score is at least this.
        candidates: the pre-NMS candidates (``candidates_of(prediction_set)``) for the missing
            kind's backing; None: every confident prediction fully backed.
    Returns: a ``Review``; ``boxes["gt_in_image"]`` is the label's position in its image's
    annotation (-1 for a missing-label row), the key the review file uses.
    """
    if len(detections) != len(truth):
        raise ValueError(f"{len(detections)} images of predictions, {len(truth)} of labels")
    n = len(truth)
    pred, gt = Flat.from_list(detections, True), Flat.from_list(truth, False)
    sc = box_scores(pred, gt, n, config, candidates)
    ids = np.asarray(list(image_ids) if image_ids is not None else [str(i) for i in range(n)], dtype=object)
    names = list(class_names) if class_names is not None else [str(c) for c in range(int(max(
        [int(pred.labels.max()) + 1 if len(pred.labels) else 0, int(gt.labels.max()) + 1 if len(gt.labels) else 0, 1])))]

    # label rows
    G = len(gt.labels)
    kind_idx = sc.label_scores.argmax(1)
    best = sc.label_scores.max(1).values if G else torch.zeros(0)
    suggest = torch.full((G,), -1, dtype=torch.int64)
    suggest = torch.where(kind_idx == 1, sc.wrong_pred, suggest)
    suggest = torch.where(kind_idx == 2, sc.loose_pred, suggest)
    partner = torch.where(kind_idx == 4, sc.label_partner, torch.full_like(suggest, -1))
    sugg_box = torch.where((partner >= 0)[:, None], _take(gt.boxes, partner), _take(pred.boxes, suggest))
    sugg_label = torch.where(partner >= 0, _take(gt.labels, partner, -1), _take(pred.labels, suggest, -1)).long()
    start = torch.cumsum(torch.bincount(gt.image, minlength=n), 0) - torch.bincount(gt.image, minlength=n)
    labels_part = {
        "image": gt.image.numpy(), "gt_row": np.arange(G), "gt_in_image": (torch.arange(G) - start[gt.image]).numpy(),
        "kind": np.asarray(KINDS, dtype=object)[kind_idx.numpy()], "score": best.numpy(),
        **{f"s_{k}": sc.label_scores[:, i].numpy() for i, k in enumerate(KINDS)},
        "label": gt.labels.numpy(), **_xyxy("", gt.boxes),
        "suggested_label": sugg_label.numpy(), **_xyxy("s", sugg_box),
        "pred_score": _take(pred.scores, suggest).numpy(),
    }
    # missing-label rows (predictions)
    m = torch.nonzero((sc.missing >= config.min_score) & (sc.missing > 0)).flatten()
    nan4 = torch.full((len(m), 4), float("nan"))
    miss_part = {
        "image": pred.image[m].numpy(), "gt_row": np.full(len(m), -1), "gt_in_image": np.full(len(m), -1),
        "kind": np.full(len(m), "missing", dtype=object), "score": sc.missing[m].numpy(),
        **{f"s_{k}": (sc.missing[m] if k == "missing" else torch.zeros(len(m))).numpy() for k in KINDS},
        "label": np.full(len(m), -1), **_xyxy("", nan4),
        "suggested_label": pred.labels[m].numpy(), **_xyxy("s", pred.boxes[m]), "pred_score": pred.scores[m].numpy(),
    }
    frame = pd.concat([pd.DataFrame(labels_part), pd.DataFrame(miss_part)], ignore_index=True)
    frame = frame[frame["score"] >= config.min_score].reset_index(drop=True)
    frame.insert(1, "image_id", ids[frame["image"].to_numpy()] if len(frame) else np.zeros(0, dtype=object))
    names_arr = np.asarray(names + ["-"], dtype=object)
    frame.insert(frame.columns.get_loc("label") + 1, "class", names_arr[frame["label"].to_numpy()])
    frame.insert(frame.columns.get_loc("suggested_label") + 1, "suggested_class",
                 names_arr[frame["suggested_label"].to_numpy()])
    return Review(frame, image_table(frame, n, ids, flag), names)


def image_table(boxes: pd.DataFrame, n: int, image_ids: np.ndarray, flag: float = 0.5) -> pd.DataFrame:
    """One row per image: its worst box's score and kind, the number of rows >= ``flag`` and the
    sum of its scores; worst first (ties: the larger sum, then the image order)."""
    img = boxes["image"].to_numpy(np.int64)
    score = boxes["score"].to_numpy(np.float64)
    worst = np.zeros(n)
    np.maximum.at(worst, img, score)
    total = np.bincount(img, weights=score, minlength=n)
    issues = np.bincount(img[score >= flag], minlength=n)
    kind = np.full(n, "", dtype=object)
    if len(boxes):
        order = np.lexsort((-score, img))  # per image, its worst row first
        first = order[np.r_[True, img[order][1:] != img[order][:-1]]]
        kind[img[first]] = boxes["kind"].to_numpy()[first]
    rank = np.lexsort((np.arange(n), -total, -worst))
    return pd.DataFrame({"image": rank, "image_id": np.asarray(image_ids, dtype=object)[rank], "score": worst[rank],
                         "kind": kind[rank], "issues": issues[rank], "total": total[rank]}).reset_index(drop=True)


def candidates_of(preds) -> Flat:
    """The pre-NMS candidates of a ``yolo.predictions.PredictionSet`` as a scored ``Flat``."""
    return Flat(preds.boxes, preds.labels, preds.images, preds.scores)


def review_predictions(preds, truth: Sequence[dict], config: ReviewConfig = ReviewConfig(),
                       class_names: Sequence[str] | None = None) -> Review:
    """``review`` of a cached ``PredictionSet``: its detections after NMS at ``config.nms_iou``
    (every candidate above its floor), with its candidates as the missing kind's backing."""
    from yolo.config import EVAL_NMS

    dets = preds.detections(conf=preds.conf_floor, iou=config.nms_iou, max_detections=EVAL_NMS.max_detections)
    return review(dets, truth, config, preds.image_ids, class_names or preds.class_names,
                  candidates=candidates_of(preds))


def truth_for(index, image_ids: Sequence[str]) -> list[dict]:
    """The labels of ``image_ids`` from an annotation index (``yolo.data.DetectionIndex``): per
    image {"boxes" (G, 4) float32 pixel xyxy, "labels" (G,), "difficult" (G,)} in the index's
    order, so a row's ``gt_in_image`` is the label's position in its annotation."""
    where = {str(i): n for n, i in enumerate(index.ids)}
    missing = [i for i in image_ids if str(i) not in where]
    if missing:
        raise ValueError(f"{len(missing)} predicted images are not in the annotation index, e.g. {missing[0]}")
    out = []
    for image_id in image_ids:
        boxes, labels, difficult = index.annotation(where[str(image_id)])
        out.append({"boxes": boxes, "labels": labels, "difficult": difficult})
    return out


# ------------------------------------------------------------------------------- thresholds
def thresholds_for(checkpoint: str | Path | None, class_names: Sequence[str], default: float = 0.5
                   ) -> tuple[float | tuple[float, ...], str]:
    """The per-class thresholds saved beside ``checkpoint`` (``<stem>.thresholds.json``), else
    ``default``; and where they came from (for the report)."""
    if checkpoint is not None:
        from yolo.thresholds import load_thresholds, thresholds_path

        path = thresholds_path(checkpoint)
        if path.is_file():
            points = load_thresholds(path, class_names)
            return tuple(float(t) for t in points.class_thresholds), str(path)
    return float(default), f"one threshold {default:g} (no operating points beside the checkpoint)"
