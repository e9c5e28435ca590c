"""Anchors fitted to a dataset's boxes, and how well a set of anchors fits them.

Boxes are measured as the network sees them: letterboxed to a square input of side ``size``, a
box of w x h pixels in an image of H x W becomes ``w / max(H, W)`` x ``h / max(H, W)`` of the input
side (``box_fractions``). Anchors carry their unit (``Anchors.unit``): ``"fraction"`` of the input
side (the course's: they grow with the input) or ``"pixels"`` (Darknet's ``yolov3.weights``:
10,13 ... 373,326 at any input size).

Fit measures (``fit``), over boxes b and the nine anchors a, with the shape IoU of two boxes
sharing a centre (``wh_iou``):
  * best possible recall (BPR): the share of boxes whose best anchor has shape IoU > ``threshold``,
    by default the course's assignment threshold 0.5 (``TargetConfig.ignore_iou``: the IoU above
    which the course treats an anchor as matching a box);
  * mean best IoU: the mean over boxes of the best anchor's shape IoU;
  * anchors above threshold: the mean number of anchors per box with shape IoU > threshold.

The fitted set (``fit_anchors``): k-means (k = 9) on box (w, h) with distance 1 - shape IoU
(k-means++ start, ``KMEANS_ITERS`` Lloyd steps, the median as each cluster's centre), then a
short evolutionary refinement (``EVOLVE_GENERATIONS`` multiplicative mutations, kept when the
fitness ``mean(best IoU * [best IoU > threshold])`` improves); deterministic for a seed. The
nine anchors are sorted by area into the three scales: the three largest for stride 32 (scale 0),
then stride 16, then the three smallest for stride 8, as ``yolo.config.ANCHORS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo.config import ANCHORS
from yolo.filelimits import read_json_file

UNITS = ("fraction", "pixels")
ASSIGN_IOU = 0.5  # the course's assignment/ignore threshold (TargetConfig.ignore_iou)
AUTO_MIN_BPR = 0.8  # --anchors auto fits new anchors when the course anchors' BPR is below this (voc-mini: 0.88)
KMEANS_ITERS = 60
EVOLVE_GENERATIONS = 1000
MAX_ANCHORS_BYTES = 64 << 10  # an anchors file is ~200 bytes; read_anchors refuses larger ones, FIFOs, devices
MAX_FIT_BOXES = 20000  # boxes used to fit (a seeded sample above this); measures use all


@dataclass(frozen=True)
class Anchors:
    """Nine anchors as (3 scales, 3 anchors, (w, h)), largest scale (stride 32) first, with their unit."""

    values: tuple[tuple[tuple[float, float], ...], ...]
    unit: str = "fraction"

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"anchor unit must be one of {UNITS}, got {self.unit!r}")
        a = np.asarray(self.values, dtype=np.float64)
        if a.shape != (3, 3, 2) or not np.isfinite(a).all() or (a <= 0).any():
            raise ValueError(f"anchors must be 3 scales x 3 positive (w, h) pairs, got shape {a.shape}")

    @staticmethod
    def from_array(a, unit: str = "fraction") -> Anchors:
        a = np.asarray(a, dtype=np.float64).reshape(3, 3, 2)
        return Anchors(tuple(tuple((float(w), float(h)) for w, h in s) for s in a), unit)

    def array(self) -> np.ndarray:
        """(3, 3, 2) float64 in this set's own unit."""
        return np.asarray(self.values, dtype=np.float64)

    def fractions(self, size: int) -> np.ndarray:
        """(3, 3, 2) fractions of an input of side ``size`` (pixel anchors divided by it)."""
        return self.array() / size if self.unit == "pixels" else self.array()

    def pixels(self, size: int) -> np.ndarray:
        """(3, 3, 2) pixels at an input of side ``size``."""
        return self.array() if self.unit == "pixels" else self.array() * size

    def as_list(self) -> list:
        return [[list(p) for p in s] for s in self.values]

    def to_json(self) -> str:
        return json.dumps({"anchors": self.as_list(), "unit": self.unit})


COURSE = Anchors.from_array(ANCHORS, "fraction")


def read_anchors(path: str | Path) -> Anchors:
    """An anchors file: JSON ``{"anchors": [[[w, h] x 3] x 3], "unit": "fraction"|"pixels"}``
    (what ``python -m yolo.data anchors --out`` writes); raises ``ValueError`` with the file named."""
    path = Path(path)
    try:
        doc = read_json_file(path, MAX_ANCHORS_BYTES, "anchors file")
        return Anchors.from_array(doc["anchors"], doc.get("unit", "fraction"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not an anchors file ({e}); expected "
                         '{"anchors": [[[w, h], [w, h], [w, h]], ...3 scales], "unit": "fraction"}') from None


def box_fractions(boxes: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
    """Box (w, h) as fractions of the letterboxed input side.

    Args:
        boxes (ndarray[M, 4]): pixel xyxy; image_sizes (ndarray[M, 2]): (h, w) of each box's image.
    Returns: (ndarray[M, 2]) float64, zero-size boxes removed.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    side = np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2).max(axis=1, keepdims=True)
    wh = (boxes[:, 2:] - boxes[:, :2]) / np.maximum(side, 1)
    return wh[(wh > 0).all(axis=1)]


def index_fractions(index) -> np.ndarray:
    """(M, 2) box (w, h) fractions of a ``DetectionIndex`` (difficult boxes left out, as in training)."""
    keep = ~index.difficult
    return box_fractions(index.boxes[keep], index.sizes[index.box_image[keep]])


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Shape IoU (boxes sharing a centre) of (M, 2) sizes against (K, 2) sizes -> (M, K)."""
    wh, anchors = np.asarray(wh, np.float64).reshape(-1, 2), np.asarray(anchors, np.float64).reshape(-1, 2)
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh.prod(axis=1)[:, None] + anchors.prod(axis=1)[None, :] - inter
    return inter / union


SAME_ANCHORS_IOU = 0.7  # two sets are "the same" when every pair of corresponding anchors has shape IoU
#                         at or above this (Darknet's anchors against the course's at 416: 0.80 at worst)


def anchor_agreement(a, b) -> float:
    """The smallest shape IoU of corresponding anchors of two (3, 3, 2) sets in one unit."""
    a, b = np.asarray(a, np.float64).reshape(-1, 2), np.asarray(b, np.float64).reshape(-1, 2)
    return float(np.diag(wh_iou(a, b)).min())


@dataclass(frozen=True)
class Fit:
    """How well nine anchors fit a set of boxes (see the module docstring)."""

    bpr: float  # share of boxes with a best anchor IoU > threshold
    mean_best_iou: float
    anchors_above: float  # mean anchors per box with IoU > threshold
    threshold: float
    boxes: int
    unfit: np.ndarray  # (M,) bool: boxes no anchor fits (best IoU <= threshold)
    best_iou: np.ndarray  # (M,) float64

    def line(self) -> str:
        return (f"best possible recall {self.bpr:.4f} (IoU > {self.threshold}), mean best IoU "
                f"{self.mean_best_iou:.4f}, anchors above threshold per box {self.anchors_above:.2f}, "
                f"{int(self.unfit.sum())} of {self.boxes} boxes fit by no anchor")


def fit(wh: np.ndarray, anchors: Anchors | np.ndarray, size: int = 416, threshold: float = ASSIGN_IOU) -> Fit:
    """Fit measures of ``anchors`` (an ``Anchors``, or (.., 2) fractions) on box sizes ``wh``
    ((M, 2) fractions of the input side) at input side ``size`` (matters for pixel anchors only)."""
    a = anchors.fractions(size) if isinstance(anchors, Anchors) else np.asarray(anchors, np.float64)
    iou = wh_iou(wh, a.reshape(-1, 2))
    best = iou.max(axis=1) if len(iou) else np.zeros(0)
    n = max(len(best), 1)
    return Fit(float((best > threshold).sum() / n), float(best.sum() / n), float((iou > threshold).sum() / n),
               threshold, len(best), best <= threshold, best)


def sort_into_scales(a: np.ndarray) -> np.ndarray:
    """Nine (w, h) -> (3, 3, 2): by area, the three largest first (stride 32), each scale ascending."""
    a = np.asarray(a, np.float64).reshape(9, 2)
    a = a[np.argsort(a.prod(axis=1), kind="stable")]
    return a.reshape(3, 3, 2)[::-1].copy()


def _fitness(wh: np.ndarray, a: np.ndarray, threshold: float) -> float:
    best = wh_iou(wh, a).max(axis=1)
    return float((best * (best > threshold)).mean())


def kmeans_iou(wh: np.ndarray, k: int = 9, seed: int = 0, iters: int = KMEANS_ITERS) -> np.ndarray:
    """k-means on (w, h) with distance 1 - shape IoU; k-means++ start. Returns (k, 2)."""
    rng = np.random.default_rng(seed)
    wh = np.asarray(wh, np.float64)
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = 1 - wh_iou(wh, np.array(centres)).max(axis=1)
        p = d**2
        centres.append(wh[rng.choice(len(wh), p=p / p.sum())] if p.sum() > 0 else wh[rng.integers(len(wh))])
    centres = np.array(centres)
    for _ in range(iters):
        assign = wh_iou(wh, centres).argmax(axis=1)
        new = np.array([np.median(wh[assign == j], axis=0) if (assign == j).any() else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def fit_anchors(wh: np.ndarray, seed: int = 0, threshold: float = ASSIGN_IOU,
                generations: int = EVOLVE_GENERATIONS) -> Anchors:
    """Nine anchors (fractions) fitted to box sizes ``wh`` ((M, 2) fractions): k-means with an IoU
    distance, then evolution of the fitness; deterministic for ``seed``. Needs at least 9 boxes."""
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    if len(wh) < 9:
        raise ValueError(f"fitting 9 anchors needs at least 9 boxes, got {len(wh)}")
    rng = np.random.default_rng(seed)
    if len(wh) > MAX_FIT_BOXES:
        wh = wh[rng.choice(len(wh), MAX_FIT_BOXES, replace=False)]
    best = kmeans_iou(wh, 9, seed)
    score = _fitness(wh, best, threshold)
    for _ in range(generations):
        mask = rng.random(best.shape) < 0.9
        factor = np.clip(1 + rng.standard_normal(best.shape) * 0.1 * mask, 0.3, 3.0)
        cand = np.clip(best * factor, 1e-4, 1.0)
        s = _fitness(wh, cand, threshold)
        if s > score:
            best, score = cand, s
    return Anchors.from_array(sort_into_scales(best), "fraction")


@dataclass(frozen=True)
class AnchorChoice:
    """What ``choose_anchors`` decided, with the figures behind it."""

    anchors: Anchors
    how: str  # "course", "fitted", "file"
    course_fit: Fit | None
    chosen_fit: Fit | None

    def message(self) -> str:
        if self.how == "file" or self.course_fit is None:
            return f"anchors: {self.how}"
        text = f"anchors: course anchors on the training boxes: {self.course_fit.line()}"
        if self.how == "fitted":
            text += (f"; below {AUTO_MIN_BPR}, so fitted anchors are used: {self.chosen_fit.line()}; "
                     f"anchors {self.anchors.as_list()}")
        else:
            text += f"; at or above {AUTO_MIN_BPR}: the course anchors are kept"
        return text


def choose_anchors(mode: str, wh: np.ndarray | None = None, seed: int = 0,
                   min_bpr: float = AUTO_MIN_BPR) -> AnchorChoice:
    """``--anchors``: ``"course"``, ``"auto"`` (fit when the course anchors' BPR on the training
    boxes ``wh`` is below ``min_bpr``) or a path to an anchors file."""
    if mode == "course":
        return AnchorChoice(COURSE, "course", None, None)
    if mode != "auto":
        return AnchorChoice(read_anchors(mode), "file", None, None)
    course = fit(wh, COURSE)
    if course.bpr >= min_bpr or len(wh) < 9:
        return AnchorChoice(COURSE, "course", course, course)
    fitted = fit_anchors(wh, seed)
    return AnchorChoice(fitted, "fitted", course, fit(wh, fitted))


@dataclass(frozen=True)
class FitReport:
    """Anchor fit of one set of boxes for display (``anchor_report``): pixel sizes at ``size``."""

    size: int
    box_wh: np.ndarray  # (M, 2) box (w, h) in pixels of the letterboxed input
    box_image: np.ndarray  # (M,) image id of each box
    box_label: np.ndarray  # (M,) int64 class index
    sets: dict[str, tuple[Anchors, Fit]]  # "course" / "fitted" -> (anchors, fit)

    def anchor_wh(self, name: str) -> np.ndarray:
        """(9, 2) pixel anchors of set ``name`` at ``size``, stride 32 first."""
        return self.sets[name][0].pixels(self.size).reshape(-1, 2)

    def auto_verdict(self) -> str:
        """What ``train.py --anchors auto`` does with these boxes (``auto_verdict``)."""
        return auto_verdict(self.sets["course"][1].bpr)


def auto_verdict(course_bpr: float) -> str:
    """What ``train.py --anchors auto`` does, in one sentence, given the course anchors' best
    possible recall on the training boxes (``choose_anchors``' rule: fit below ``AUTO_MIN_BPR``)."""
    if course_bpr >= AUTO_MIN_BPR:
        return (f"train.py --anchors auto keeps the course anchors here: their best possible recall "
                f"{course_bpr:.3f} is at or above {AUTO_MIN_BPR}.")
    return (f"train.py --anchors auto fits new anchors here: the course anchors' best possible recall "
            f"{course_bpr:.3f} is below {AUTO_MIN_BPR}.")


def anchor_report(index, size: int = 416, seed: int = 0) -> FitReport:
    """Course anchors and a fitted set measured on a ``DetectionIndex``'s boxes (difficult left
    out, as in training), box sizes in pixels at input ``size``. With fewer than 9 boxes only the
    course set is measured."""
    keep = ~index.difficult
    owner = index.box_image[keep]
    side = index.sizes[owner].max(axis=1, keepdims=True).astype(np.float64) if len(owner) else np.ones((0, 1))
    b = index.boxes[keep].astype(np.float64)
    wh = (b[:, 2:] - b[:, :2]) / np.maximum(side, 1)
    ok = (wh > 0).all(axis=1)
    wh, owner, labels = wh[ok], owner[ok], index.labels[keep][ok]
    sets = {"course": (COURSE, fit(wh, COURSE, size))}
    if len(wh) >= 9:
        fitted = fit_anchors(wh, seed)
        sets["fitted"] = (fitted, fit(wh, fitted, size))
    return FitReport(size, wh * size, index.ids[owner] if len(owner) else np.zeros(0, str), labels, sets)
