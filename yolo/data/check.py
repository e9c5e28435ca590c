"""Dataset report: ``check_dataset(PATH)`` (a ``DatasetReport``) and ``python -m yolo.data check PATH``.

Per split: images, objects (and difficult ones), images and objects per class, boxes per image,
box sizes (COCO-style pixel-area buckets and relative-size quantiles); and every problem found
while reading (kind, file, detail, action), once per file even when splits overlap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from yolo.data.index import DetectionIndex
from yolo.data.layout import available_splits, build_index, detect_format, load_classes
from yolo.data.problems import KINDS, Problem, count_problems

SIZE_BUCKETS = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, float("inf")))
BOXES_PER_IMAGE_BINS = (0, 1, 2, 3, 4, 5, 10, 20)  # histogram bins: "0", "1", ..., "5-9", "10-19", "20+"


@dataclass
class SplitStats:
    """Statistics of one split spec."""

    name: str
    images: int
    objects: int
    difficult: int
    images_per_class: dict[str, int]
    objects_per_class: dict[str, int]
    boxes_per_image: dict[str, float]  # min, mean, median, max
    boxes_per_image_hist: dict[str, int]  # "0", "1", ..., "5-9", "10-19", "20+" -> images
    box_area_buckets: dict[str, int]  # small (< 32^2 px), medium, large (>= 96^2 px) -> objects
    relative_size_quantiles: dict[str, float]  # sqrt(box area / image area) at 5/25/50/75/95%


@dataclass
class DatasetReport:
    """What ``check_dataset`` found. ``to_dict()`` for JSON, ``format_text()`` for the terminal."""

    root: str
    format: str
    classes: list[str]
    splits: list[SplitStats]
    problems: list[Problem] = field(default_factory=list)

    @property
    def problem_counts(self) -> dict[str, int]:
        return count_problems(self.problems)

    @property
    def ok(self) -> bool:
        """True when nothing was skipped or dropped (repairs and notes are fine)."""
        return not any(p.action in ("skipped", "dropped") for p in self.problems)

    def to_dict(self) -> dict:
        return {"root": self.root, "format": self.format, "classes": self.classes,
                "splits": [asdict(s) for s in self.splits], "problem_counts": self.problem_counts,
                "problems": [asdict(p) for p in self.problems]}

    def format_text(self, max_problems: int | None = 50) -> str:
        lines = [f"dataset {self.root} ({self.format}), {len(self.classes)} classes"]
        for s in self.splits:
            lines.append(f"\n[{s.name}] {s.images} images, {s.objects} objects ({s.difficult} difficult), "
                         f"boxes/image min {s.boxes_per_image['min']:.0f} mean {s.boxes_per_image['mean']:.2f} "
                         f"max {s.boxes_per_image['max']:.0f}")
            lines.append("  boxes/image histogram: " + ", ".join(f"{k}: {v}" for k, v in s.boxes_per_image_hist.items()))
            lines.append("  box area: " + ", ".join(f"{k} {v}" for k, v in s.box_area_buckets.items())
                         + " | sqrt(rel. area) quantiles: "
                         + ", ".join(f"{k} {v:.3f}" for k, v in s.relative_size_quantiles.items()))
            width = max(len(c) for c in self.classes)
            lines.append(f"  {'class':{width}s} {'images':>7s} {'objects':>8s}")
            for c in self.classes:
                lines.append(f"  {c:{width}s} {s.images_per_class[c]:7d} {s.objects_per_class[c]:8d}")
        counts = self.problem_counts
        lines.append(f"\nproblems: {sum(counts.values()) if counts else 'none'}")
        for kind, n in counts.items():
            lines.append(f"  {kind:22s} {n:6d}  {KINDS[kind][0]:8s} {KINDS[kind][1]}")
        shown = self.problems if max_problems is None else self.problems[:max_problems]
        for p in shown:
            lines.append(f"  {p}")
        if len(shown) < len(self.problems):
            lines.append(f"  ... {len(self.problems) - len(shown)} more (--max-problems 0 shows all, --json saves all)")
        return "\n".join(lines)


def split_stats(name: str, index: DetectionIndex) -> SplitStats:
    """Statistics of one labelled index (vectorised over boxes)."""
    classes = index.classes
    counts = np.diff(index.offsets)
    owner = index.box_image
    k = len(classes)
    objects = np.bincount(index.labels, minlength=k)
    pairs = np.unique(owner * k + index.labels) if len(owner) else np.zeros(0, np.int64)
    images_per = np.bincount(pairs % k, minlength=k)
    wh = index.boxes[:, 2:] - index.boxes[:, :2]
    area = wh.prod(axis=1)
    img_area = index.sizes[owner].prod(axis=1).astype(np.float64) if len(owner) else np.zeros(0)
    rel = np.sqrt(area / np.maximum(img_area, 1))
    edges = list(BOXES_PER_IMAGE_BINS) + [np.inf]
    hist = {}
    for lo, hi in itertools.pairwise(edges):
        label = str(lo) if hi == lo + 1 else (f"{lo}+" if hi == np.inf else f"{lo}-{int(hi) - 1}")
        hist[label] = int(((counts >= lo) & (counts < hi)).sum())
    q = (5, 25, 50, 75, 95)
    return SplitStats(
        name=name, images=len(index), objects=len(index.labels), difficult=int(index.difficult.sum()),
        images_per_class={c: int(images_per[i]) for i, c in enumerate(classes)},
        objects_per_class={c: int(objects[i]) for i, c in enumerate(classes)},
        boxes_per_image={"min": float(counts.min()) if len(counts) else 0.0,
                         "mean": float(counts.mean()) if len(counts) else 0.0,
                         "median": float(np.median(counts)) if len(counts) else 0.0,
                         "max": float(counts.max()) if len(counts) else 0.0},
        boxes_per_image_hist=hist,
        box_area_buckets={n: int(((area >= lo) & (area < hi)).sum()) for n, lo, hi in SIZE_BUCKETS},
        relative_size_quantiles={f"p{p}": float(np.percentile(rel, p)) if len(rel) else 0.0 for p in q},
    )


def check_dataset(root: str | Path, splits: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                  cache_dir: str | Path | None = None, progress: bool = True) -> DatasetReport:
    """Read every split of a dataset (or the given split specs) and report on it.

    Never raises for bad data (that is what it reports); raises ``DataLayoutError`` when the
    folder is not a dataset or a split does not exist.
    """
    root = Path(root).expanduser()
    fmt = detect_format(root)
    names = list(splits) if splits else available_splits(root)
    class_list = load_classes(root, classes)
    stats, problems, seen = [], [], set()
    for name in names:
        index = build_index([root], [name], class_list, cache_dir, progress)
        stats.append(split_stats(name, index))
        for p in index.problems:
            key = (p.kind, p.file, p.detail)
            if key not in seen:
                seen.add(key)
                problems.append(p)
    return DatasetReport(str(root), fmt, list(class_list), stats, problems)
