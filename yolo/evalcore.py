"""The numpy core under every detection metric: flat tables, same-image pairs, VOC's and COCO's
matching, and the precision/recall reads of each AP rule; shared by ``yolo.metrics`` and
``yolo.evaluate`` (which keep their torch interfaces).

Everything here works on whole flat arrays: one concatenation of the per-image dicts, one stable
score sort shared by matching and AP, pairs formed only inside a group (same image, or same image
and class), and a loop over classes (never over images or detections) where a running maximum
must stop at a class boundary. COCO's greedy matching with fallback is solved without a loop
wherever no detection has two candidate boxes; the few (image, class) groups where one does are
matched by the plain greedy loop.

Formats (numpy, input order unless said): boxes (R, 4) float64 (x1, y1, x2, y2); labels, image
(R,) int64; scores (R,) float64 (detections); difficult (R,) bool (ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# COCO's 101 recall thresholds exactly as pycocotools builds them (``Params.recThrs``).
COCO_RECALL_POINTS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
# tidecv's grid (``x / 100``): ten points differ from pycocotools' in the last bit.
TIDE_RECALL_POINTS = np.array([x / 100 for x in range(101)], dtype=np.float64)
# The Python VOC devkit's 11 thresholds (``voc_eval``, ``use_07_metric``): 0.3, 0.6, 0.7 a hair above.
VOC07_RECALL_POINTS = np.arange(0., 1.1, 0.1)


@dataclass(frozen=True, eq=False)
class Table:
    """Rows of many images, image by image, in input order. ``scores`` is all zero and
    ``difficult`` all False where the dicts have none."""

    boxes: np.ndarray
    labels: np.ndarray
    image: np.ndarray
    scores: np.ndarray
    difficult: np.ndarray
    counts: np.ndarray  # (images,) rows per image

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, rows: np.ndarray) -> "Table":
        """The table restricted to ``rows`` (indices or a bool mask), counts recomputed."""
        image = self.image[rows]
        return Table(self.boxes[rows], self.labels[rows], image, self.scores[rows], self.difficult[rows],
                     np.bincount(image, minlength=len(self.counts)))


def _cat(tensors: list, shape_tail: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
    """Concatenate per-image tensors to one numpy array; each may also arrive flat or empty."""
    try:
        out = torch.cat(tensors) if tensors else torch.zeros((0, *shape_tail))
        if tuple(out.shape[1:]) != shape_tail:
            raise RuntimeError
    except RuntimeError:
        out = torch.cat([t.reshape(-1, *shape_tail) for t in tensors])
    return out.to("cpu", dtype).numpy()


def flatten(items: Sequence[dict], kind: str) -> Table:
    """Per-image dicts (``yolo.metrics`` formats) -> one ``Table``. kind: "det" or "gt"."""
    n = len(items)
    counts = np.fromiter((d["labels"].numel() for d in items), dtype=np.int64, count=n)
    labels = _cat([d["labels"] for d in items], (), torch.int64)
    boxes = _cat([d["boxes"] for d in items], (4,), torch.float64)
    if boxes.shape[0] != labels.shape[0]:
        raise ValueError(f"{kind}: boxes and labels differ in length")
    if kind == "det":
        scores = _cat([d["scores"] for d in items], (), torch.float64)
        if scores.shape[0] != labels.shape[0]:
            raise ValueError(f"{kind}: scores and labels differ in length")
    else:
        scores = np.zeros(labels.shape[0])
    if all(d.get("difficult") is not None for d in items) and n:
        difficult = _cat([d["difficult"] for d in items], (), torch.bool)
    else:
        difficult = np.concatenate([
            d["difficult"].reshape(-1).bool().cpu().numpy() if d.get("difficult") is not None
            else np.zeros(int(d["labels"].numel()), dtype=bool) for d in items] or [np.zeros(0, dtype=bool)])
    image = np.repeat(np.arange(n, dtype=np.int64), counts)
    return Table(boxes, labels, image, scores, difficult, counts)


def check_labels(labels: np.ndarray, num_classes: int, kind: str) -> None:
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{kind} labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")


def score_order(scores: np.ndarray) -> np.ndarray:
    """Rows by score, highest first; ties keep input order (image by image).

    The same permutation as ``np.argsort(-scores, kind="stable")``. When every score is a float32
    value (a model's scores are), it is found by sorting one uint64 key per row, the score's
    order-preserving bits above the row index, which numpy's vectorised sort does about twice as
    fast as a stable argsort."""
    n = len(scores)
    if n == 0 or n >= 2 ** 32:
        return np.argsort(-scores, kind="stable")
    f = scores.astype(np.float32) + np.float32(0)  # + 0: -0.0 becomes 0.0, as the comparison sees it
    if not np.array_equal(f, scores):  # not float32 values (or nan): the plain stable sort
        return np.argsort(-scores, kind="stable")
    bits = f.view(np.uint32)
    ascending = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000))
    key = ((~ascending).astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    return (np.sort(key) & np.uint64(0xFFFFFFFF)).astype(np.int64)


def rank_of(order: np.ndarray) -> np.ndarray:
    """Inverse permutation: position of each row in ``order``."""
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def small_ints(values: np.ndarray) -> np.ndarray:
    """Non-negative ints as the narrowest type numpy radix-sorts (stable sort in linear time)."""
    top = int(values.max()) if values.size else 0
    return values.astype(np.int16 if top < 2 ** 15 else np.int32)


def by_class(order: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows of ``order`` (score order) regrouped by class, score order kept inside a class."""
    return order[np.argsort(small_ints(labels[order]), kind="stable")]


def by_group(order: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Rows of ``order`` regrouped by ``group`` (non-negative ints), the order kept inside a group:
    one sort of uint64 keys (group above the row's place in ``order``), exact and stable for any
    number of groups (a stable argsort of int32 group ids is a much slower merge sort)."""
    n = len(order)
    if n == 0 or n >= 2 ** 32 or int(group.max()) >= 2 ** 31:
        return order[np.argsort(group[order], kind="stable")]
    key = (group[order].astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    return order[(np.sort(key) & np.uint64(0xFFFFFFFF)).astype(np.int64)]


def group_pairs(det_group: np.ndarray, gt_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (detection, box) pair with the same group key -> (det index, gt index), (P,) int64
    each, ordered by detection, then box index. Only same-group pairs are formed."""
    n_det = len(det_group)
    if n_det == 0 or len(gt_group) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    gorder = np.argsort(gt_group, kind="stable")
    sg = gt_group[gorder]
    lo = np.searchsorted(sg, det_group, "left")
    count = np.searchsorted(sg, det_group, "right") - lo
    pair_det = np.repeat(np.arange(n_det, dtype=np.int64), count)
    start = np.cumsum(count) - count
    offset = np.arange(len(pair_det), dtype=np.int64) - np.repeat(start, count)
    return pair_det, gorder[np.repeat(lo, count) + offset]


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of a, b (P, 4) -> (P,) float64; 0 where the union is 0. No epsilon:
    an IoU of exactly 0.5 stays 0.5."""
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def pair_iof(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the area of ``a`` (COCO's IoU with a crowd region), (P,) float64."""
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area_a > 0, inter / area_a, 0.0)


CHUNK = 1 << 15  # detections per step of best_other_class: its work buffers fit a core's cache


def best_other_class(det: Table, gt: Table, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per detection, the highest IoU with an ``eligible`` box of another class in its image
    (the first such box on ties) -> (IoU (D,) float64, 0 when none; gt index (D,) int64, -1 when
    no IoU is above 0). Both tables hold the same images, image by image.

    No pair table: a loop over k (up to the most boxes in one image) compares every detection of
    an image with more than k boxes against that image's k-th box; detections are ordered by
    their image's box count, so each step works on a prefix (array views, no copies)."""
    n_det = len(det)
    best = np.zeros(n_det, dtype=np.float64)
    at = np.full(n_det, -1, dtype=np.int64)
    if n_det == 0 or len(gt) == 0:
        return best, at
    start = np.cumsum(gt.counts) - gt.counts
    per_det = gt.counts[det.image]
    most = int(per_det.max())
    order = np.argsort(small_ints(most - per_det), kind="stable")  # most boxes first
    longer = -per_det[order]  # ascending
    b = det.boxes[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, i]) for i in range(4))
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    lab, base = det.labels[order], start[det.image[order]]
    # an ineligible box becomes an empty one far away: its IoU is 0 (or nan), never the best
    g = np.where(eligible[:, None], gt.boxes, np.array([np.inf, np.inf, -np.inf, -np.inf]))
    gx1, gy1, gx2, gy2 = (np.ascontiguousarray(g[:, i]) for i in range(4))
    garea = np.maximum(gx2 - gx1, 0) * np.maximum(gy2 - gy1, 0)
    sbest, sat = np.zeros(n_det), np.full(n_det, -1, dtype=np.int64)
    size = min(n_det, CHUNK)
    t1, t2, t3 = (np.empty(size) for _ in range(3))  # work buffers, reused (no allocation per step)
    jb, lb = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
    m1, m2 = np.empty(size, dtype=bool), np.empty(size, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for lo in range(0, n_det, CHUNK):  # a chunk's temporaries stay in the cache across its steps
            hi = min(lo + CHUNK, n_det)
            for k in range(int(-longer[lo])):
                n = int(np.searchsorted(longer[lo:hi], -k, "left"))  # detections whose image has > k boxes
                sl = slice(lo, lo + n)
                j = np.add(base[sl], k, out=jb[:n])
                a, c, d = t1[:n], t2[:n], t3[:n]
                np.minimum(x2[sl], np.take(gx2, j, out=a), out=a)
                np.maximum(x1[sl], np.take(gx1, j, out=c), out=c)
                np.maximum(np.subtract(a, c, out=a), 0, out=a)  # intersection width
                np.minimum(y2[sl], np.take(gy2, j, out=c), out=c)
                np.maximum(y1[sl], np.take(gy1, j, out=d), out=d)
                np.maximum(np.subtract(c, d, out=c), 0, out=c)  # height
                np.multiply(a, c, out=a)  # intersection
                np.subtract(np.add(np.take(garea, j, out=c), area[sl], out=c), a, out=c)  # union
                np.divide(a, c, out=a)  # as pair_iou's; nan where the union is 0 (never better)
                better = np.greater(a, sbest[sl], out=m1[:n])
                np.logical_and(better, np.not_equal(np.take(gt.labels, j, out=lb[:n]), lab[sl], out=m2[:n]),
                               out=better)
                np.copyto(sbest[sl], a, where=better)
                np.copyto(sat[sl], j, where=better)
    best[order], at[order] = sbest, sat
    return best, at


def segment_argmax(values: np.ndarray, seg: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per segment id 0..n-1 (``seg`` non-decreasing), the largest value and the position of its
    first occurrence -> (max (n,) float64, 0 for an empty segment; position (n,) int64, -1)."""
    best = np.zeros(n, dtype=np.float64)
    where = np.full(n, -1, dtype=np.int64)
    if len(values) == 0:
        return best, where
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    best[seg[starts]] = np.maximum.reduceat(values, starts)
    at = np.flatnonzero(values == best[seg])
    first = at[np.r_[True, seg[at][1:] != seg[at][:-1]]]
    where[seg[first]] = first
    return best, where


def first_claims(target: np.ndarray, claims: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Which claims win: per target, the claiming row with the lowest ``rank`` (score order).
    target (R,) int64, claims (R,) bool, rank (R,) int64 -> (R,) bool."""
    won = np.zeros(len(claims), dtype=bool)
    idx = np.flatnonzero(claims)
    if len(idx) == 0:
        return won
    o = np.lexsort((rank[idx], target[idx]))
    t = target[idx][o]
    won[idx[o[np.r_[True, t[1:] != t[:-1]]]]] = True
    return won


def voc_candidates(det: Table, gt: Table, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """VOC's candidate of each detection: the box of its class in its image with the highest IoU
    (the first on ties) -> (gt index (D,) int64, -1 when there is none; IoU (D,) float64)."""
    pd, pg = group_pairs(det.image * num_classes + det.labels, gt.image * num_classes + gt.labels)
    iou = pair_iou(det.boxes[pd], gt.boxes[pg])
    best, at = segment_argmax(iou, pd, len(det))
    return np.where(at >= 0, pg[np.maximum(at, 0)] if len(pg) else -1, -1), best


def greedy_match(pair_det: np.ndarray, pair_gt: np.ndarray, iou: np.ndarray, rank: np.ndarray,
                 group: np.ndarray, n_det: int, n_gt: int) -> np.ndarray:
    """COCO's matching over candidate pairs (same group, eligible, IoU >= threshold; ordered by
    detection): detections in ``rank`` order each take the free box of highest IoU (first on
    ties), falling back to the next one. Returns the matched gt per detection ((D,) int64, -1).

    Where no detection has two candidates the answer is "per box, the first claimer wins"; the
    (image, class) groups (``group`` per detection) where one does are run through the loop."""
    gt_of_det = np.full(n_det, -1, dtype=np.int64)
    if len(pair_det) == 0:
        return gt_of_det
    n_cand = np.bincount(pair_det, minlength=n_det)
    multi = n_cand[pair_det] > 1
    hard = np.zeros(n_det, dtype=bool)
    if multi.any():
        hard = np.isin(group, np.unique(group[pair_det[multi]]))
    easy = ~hard[pair_det]
    d, g = pair_det[easy], pair_gt[easy]
    won = first_claims(g, np.ones(len(d), dtype=bool), rank[d])
    gt_of_det[d[won]] = g[won]
    if hard.any():
        sel = ~easy
        d, g, v = pair_det[sel], pair_gt[sel], iou[sel]
        o = np.lexsort((g, -v, rank[d]))  # detection order, then IoU, then gt index
        used: set[int] = set()
        last = -1
        for det_i, gt_i in zip(d[o].tolist(), g[o].tolist()):
            if det_i == last or gt_i in used:
                continue
            gt_of_det[det_i] = gt_i
            used.add(gt_i)
            last = det_i
    return gt_of_det


def coco_match(det: Table, gt: Table, num_classes: int, threshold: float, rank: np.ndarray,
               live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """COCO's matching at one IoU: difficult boxes are crowd regions. ``live`` (D,) bool: the
    detections taking part (e.g. maxDets). Returns (matched gt (D,) int64, -1; on_crowd (D,) bool:
    unmatched and covering >= threshold of its own area with a crowd box of its class)."""
    live = np.ones(len(det), dtype=bool) if live is None else live
    group = det.image * num_classes + det.labels
    pd, pg = group_pairs(group, gt.image * num_classes + gt.labels)
    crowd = gt.difficult[pg]
    real = ~crowd & live[pd]
    iou = pair_iou(det.boxes[pd[real]], gt.boxes[pg[real]])
    ok = iou >= threshold
    gt_of_det = greedy_match(pd[real][ok], pg[real][ok], iou[ok], rank, group, len(det), len(gt))
    on_crowd = np.zeros(len(det), dtype=bool)
    cp = crowd & live[pd]
    if cp.any():
        hit = pair_iof(det.boxes[pd[cp]], gt.boxes[pg[cp]]) >= threshold
        on_crowd[pd[cp][hit]] = True
    return gt_of_det, on_crowd & (gt_of_det < 0)


def top_per_group(group: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """(R,) bool: the first ``k`` rows of each group in ``order`` (score order)."""
    keep = np.ones(len(group), dtype=bool)
    if len(group) == 0 or np.bincount(group).max() <= k:
        return keep
    o = order[np.argsort(group[order], kind="stable")]
    g = group[o]
    start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    size = np.diff(np.r_[start, len(g)])
    pos = np.arange(len(g)) - np.repeat(start, size)
    keep[o[pos >= k]] = False
    return keep


@dataclass(frozen=True, eq=False)
class Curves:
    """Per-class precision/recall curves of rows sorted by class, then score (one point per
    counted detection). labels, ctp (N,) int64; precision, envelope (N,) float64 (envelope:
    max precision from this point on, within the class); start, size (C,) int64 the class
    segments; n_positives (C,) int64."""

    labels: np.ndarray
    ctp: np.ndarray
    precision: np.ndarray
    envelope: np.ndarray
    start: np.ndarray
    size: np.ndarray
    n_positives: np.ndarray

    @property
    def recall(self) -> np.ndarray:
        npos = self.n_positives[self.labels]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(npos > 0, self.ctp / npos, np.nan)


def curves(labels: np.ndarray, tp: np.ndarray, n_positives: np.ndarray) -> Curves:
    """labels (N,) int64 and tp (N,) bool already in class-then-score order -> ``Curves``."""
    num_classes = len(n_positives)
    n = len(labels)
    size = np.bincount(labels, minlength=num_classes)
    start = np.cumsum(size) - size
    t = tp.astype(np.int64)
    tp_class = np.bincount(labels, weights=None if n == 0 else t, minlength=num_classes).astype(np.int64)
    ctp = np.cumsum(t) - np.repeat(np.cumsum(tp_class) - tp_class, size)
    rank = np.arange(n) - np.repeat(start, size)
    precision = ctp / (rank + 1.0)
    envelope = np.empty_like(precision)
    for c in np.flatnonzero(size):  # a running maximum must stop at each class boundary
        s, e = start[c], start[c] + size[c]
        envelope[s:e] = np.maximum.accumulate(precision[s:e][::-1])[::-1]
    return Curves(labels, ctp, precision, envelope, start, size, n_positives)


def first_count_reaching(points: np.ndarray, n_positives: np.ndarray) -> np.ndarray:
    """Per class and threshold t, the smallest TP count k with ``k / npos >= t`` in float64 (the
    references' ``rec >= t``) -> (C, T) int64 (0 where npos is 0)."""
    npos = np.maximum(n_positives, 1).astype(np.float64)[:, None]
    t = np.asarray(points, dtype=np.float64)[None, :]
    k = np.ceil(t * npos)  # within one of the answer; settled with the references' own division
    k = np.where((k >= 1) & ((k - 1) / npos >= t), k - 1, k)
    k = np.where(k / npos < t, k + 1, k)
    return np.where(n_positives[:, None] > 0, k, 0).astype(np.int64)


def read_points(cv: Curves, points: np.ndarray) -> np.ndarray:
    """The envelope at the first point of each class whose recall reaches each threshold, 0 when
    none does -> (C, T) float64 (COCO's and VOC07's reads)."""
    num_classes, n = len(cv.n_positives), len(cv.labels)
    need = first_count_reaching(points, cv.n_positives)
    out = np.zeros(need.shape, dtype=np.float64)
    if n == 0:
        return out
    key = cv.labels * (n + 1) + cv.ctp  # non-decreasing
    query = np.arange(num_classes)[:, None] * (n + 1) + need
    j = np.searchsorted(key, query.ravel()).reshape(need.shape)
    ok = j < (cv.start + cv.size)[:, None]
    out[ok] = cv.envelope[j[ok]]
    return out


def ap_all_points(cv: Curves, tp: np.ndarray) -> np.ndarray:
    """VOC2010+ area under the envelope: recall steps by 1/npos at each TP, where the envelope is
    the height -> (C,) float64, nan without positives."""
    num_classes = len(cv.n_positives)
    area = np.bincount(cv.labels[tp], weights=cv.envelope[tp], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cv.n_positives > 0, area / np.maximum(cv.n_positives, 1), np.nan)


def ap_points(cv: Curves, points: np.ndarray) -> np.ndarray:
    """Mean of the envelope reads at ``points`` -> (C,) float64; 0 without positives (callers
    decide whether such a class counts)."""
    read = read_points(cv, points)
    return np.where(cv.n_positives > 0, read.sum(1) / len(points), 0.0)


def tp_ranks(labels: np.ndarray, tp: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows in class-then-score order (labels (N,), tp (N,) bool; ``keep`` (N,) bool: the rows
    counted, the others skipped) -> (class, 0-based position inside its class among the kept rows)
    of every kept true positive, in that order."""
    if keep is None:
        keep = np.ones(len(labels), dtype=bool)
    position = np.cumsum(keep) - 1  # among the kept rows
    first = np.searchsorted(labels, np.arange(int(labels.max()) + 1 if len(labels) else 0), "left")
    before = np.concatenate([[0], np.cumsum(keep)])[first]  # kept rows before each class's segment
    sel = np.flatnonzero(tp & keep)
    lab = labels[sel]
    return lab, position[sel] - before[lab]


def ap_from_tp_ranks(tp_labels: np.ndarray, tp_rank: np.ndarray, n_positives: np.ndarray,
                     points: np.ndarray) -> np.ndarray:
    """The envelope-at-points AP (COCO's rule, as ``ap_points(curves(...))``) from the true positives
    alone: tp_labels (T,) non-decreasing and tp_rank (T,) their 0-based position inside their
    class's score order. -> (C,) float64, 0 without positives.

    Exact, not an approximation: the k-th TP of a class sits at rank r with precision k / (r + 1),
    and a false positive's precision is below that of the row before it, so the maximum precision
    from any row on is reached at a TP row; the first row reaching a recall threshold is a TP row
    (or the class's first row, where the maximum is over all its TPs). Only the TPs are touched."""
    num_classes = len(n_positives)
    count = np.bincount(tp_labels, minlength=num_classes)
    start = np.cumsum(count) - count
    k = np.arange(1, len(tp_labels) + 1) - np.repeat(start, count)
    precision = k / (tp_rank + 1.0)
    envelope = np.empty_like(precision)
    for c in np.flatnonzero(count):
        s, e = start[c], start[c] + count[c]
        envelope[s:e] = np.maximum.accumulate(precision[s:e][::-1])[::-1]
    need = np.maximum(first_count_reaching(points, n_positives), 1) - 1  # (C, P) 0-based TP index
    ok = (need < count[:, None]) & (n_positives[:, None] > 0)
    read = np.zeros(need.shape)
    read[ok] = envelope[(start[:, None] + need)[ok]]
    return np.where(n_positives > 0, read.sum(1) / len(points), 0.0)
