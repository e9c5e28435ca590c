"""The label-review file: what a reviewer decided about each suspect box, saved beside the dataset.

    log = ReviewLog.open(review_file_path(root, "val"), root, "val", classes)   # or a new one
    log = log.decide(Decision("img_1", "wrong_class", "accept", gt=0, label=3, box=(..), new_label=5))
    log = log.undo()                       # the last decision taken back (the one before returns)
    log.save()                             # atomic JSON; survives a restart
    boxes, labels, difficult, changes = apply_decisions(boxes, labels, difficult, log.for_image("img_1"))

A decision is about one box: a label (``gt``: its position in the image's annotation as the
index reads it, with its class and box, so a file edited since is noticed) or, for a missing
label, a predicted box (``gt`` = -1). Actions: ``accept`` the model's suggestion (add the box,
change the class, replace the box, or delete a spurious / duplicate label), ``delete`` the label,
or ``keep`` it as it is. The file keeps every decision in the order made; the last one per box
counts, and ``undo`` removes the last one made. Nothing here touches the dataset's annotation
files: ``yolo.data.apply_review`` writes a corrected copy.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from yolo.filelimits import read_json_file

MAX_REVIEW_BYTES = 64 << 20  # ~300,000 decisions; a larger file is refused, not read

DECISIONS_VERSION = 1
REVIEW_KINDS = ("missing", "wrong_class", "loose", "spurious", "duplicate")
REVIEW_ACTIONS = ("accept", "delete", "keep")


@dataclass(frozen=True)
class Decision:
    """One reviewer decision (see the module docstring). Boxes are pixel (x1, y1, x2, y2)."""

    image_id: str
    kind: str
    action: str
    gt: int = -1
    label: int = -1
    box: tuple[float, float, float, float] | None = None
    new_label: int = -1
    new_box: tuple[float, float, float, float] | None = None
    time: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in REVIEW_KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {', '.join(REVIEW_KINDS)}")
        if self.action not in REVIEW_ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; expected one of {', '.join(REVIEW_ACTIONS)}")
        if self.kind == "missing" and (self.new_box is None or self.new_label < 0):
            raise ValueError("a missing-label decision needs the predicted box and class")
        if self.kind != "missing" and self.gt < 0:
            raise ValueError(f"a {self.kind} decision needs the label's position (gt >= 0)")
        if self.action == "accept" and self.kind == "wrong_class" and self.new_label < 0:
            raise ValueError("accepting a wrong class needs the suggested class")
        if self.action == "accept" and self.kind == "loose" and self.new_box is None:
            raise ValueError("accepting a loose box needs the suggested box")

    @property
    def key(self) -> str:
        """Which box it is about: ``image|gt`` for a label, ``image|+x1,y1,x2,y2`` for a missing one."""
        if self.gt >= 0:
            return f"{self.image_id}|{self.gt}"
        return f"{self.image_id}|+" + ",".join(f"{v:.1f}" for v in self.new_box)

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @staticmethod
    def from_json(raw: dict) -> Decision:
        box = lambda v: None if v is None else tuple(float(x) for x in v)
        return Decision(str(raw["image_id"]), str(raw["kind"]), str(raw["action"]), int(raw.get("gt", -1)),
                        int(raw.get("label", -1)), box(raw.get("box")), int(raw.get("new_label", -1)),
                        box(raw.get("new_box")), float(raw.get("time", 0.0)))


@dataclass(frozen=True)
class ReviewLog:
    """Every decision about one split of one dataset, in the order made (immutable: each change
    returns a new log; ``save`` writes it)."""

    path: Path
    dataset: str
    split: str
    classes: tuple[str, ...]
    history: tuple[Decision, ...] = ()
    meta: dict = field(default_factory=dict)

    def decide(self, decision: Decision) -> ReviewLog:
        return replace(self, history=self.history + (replace(decision, time=decision.time or time.time()),))

    def undo(self) -> ReviewLog:
        """The log without its last decision (unchanged when empty)."""
        return replace(self, history=self.history[:-1])

    def current(self) -> dict[str, Decision]:
        """{box key: its latest decision}, in the order the boxes were first decided."""
        out: dict[str, Decision] = {}
        for d in self.history:
            out[d.key] = d
        return out

    def for_image(self, image_id: str) -> list[Decision]:
        return [d for d in self.current().values() if d.image_id == image_id]

    def to_json(self) -> dict:
        return {"version": DECISIONS_VERSION, "dataset": self.dataset, "split": self.split,
                "classes": list(self.classes), "meta": self.meta, "history": [d.to_json() for d in self.history]}

    def save(self) -> Path:
        """Write atomically (a temporary file renamed over the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f, indent=1)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self.path

    @staticmethod
    def load(path: str | Path) -> ReviewLog:
        """Read a saved log; a clear ValueError when it is not one."""
        path = Path(path)
        try:
            raw = read_json_file(path, MAX_REVIEW_BYTES, "label-review file")
            if not isinstance(raw, dict) or raw.get("version") != DECISIONS_VERSION:
                raise ValueError(f"not a label-review file (version {DECISIONS_VERSION})")
            history = tuple(Decision.from_json(d) for d in raw["history"])
            return ReviewLog(path, str(raw["dataset"]), str(raw["split"]), tuple(raw["classes"]), history,
                             dict(raw.get("meta", {})))
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: cannot read the label-review file: {err}") from err

    @staticmethod
    def open(path: str | Path, dataset: str | Path, split: str, classes: Sequence[str]) -> ReviewLog:
        """The saved log at ``path`` when there is one, else a new empty one (not yet written)."""
        path = Path(path)
        if path.is_file():
            return ReviewLog.load(path)
        return ReviewLog(path, str(dataset), split, tuple(classes))


def review_file_path(dataset: str | Path, split: str, cache_dir: str | Path | None = None) -> Path:
    """Where the review file of ``split`` goes: ``<dataset>/label_review-<split>.json`` when the
    dataset folder is writable, else under the cache folder (``cache_dir``, $YOLO_CACHE_DIR or
    ~/.cache/yolo-voc) in a folder named after the dataset's path."""
    import hashlib

    from yolo.data.index import _writable_dir, default_cache_root

    dataset = Path(dataset).expanduser()
    name = "label_review-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in split) + ".json"
    if cache_dir is None and _writable_dir(dataset):
        return dataset / name
    tag = hashlib.sha1(str(dataset.resolve()).encode()).hexdigest()[:12]
    return Path(cache_dir or default_cache_root()) / "review" / f"{dataset.name}-{tag}" / name


# ------------------------------------------------------------------------------- applying
def _same_box(a: Sequence[float], b: Sequence[float], tol: float = 0.51) -> bool:
    return bool(np.all(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) <= tol))


def apply_decisions(boxes: np.ndarray, labels: np.ndarray, difficult: np.ndarray, decisions: Sequence[Decision]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """One image's annotation after its decisions: (boxes (K, 4) float32, labels (K,) int64,
    difficult (K,) bool, changes) with changes counting added, reclassified, moved, deleted,
    kept and stale (a decision whose label no longer matches the annotation: not applied).
    Labels keep their order; added boxes come last, in decision order."""
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    labels = np.array(labels, np.int64).reshape(-1)
    difficult = np.array(difficult, bool).reshape(-1)
    keep = np.ones(len(labels), bool)
    changes = dict.fromkeys(("added", "reclassified", "moved", "deleted", "kept", "stale"), 0)
    added_b, added_l = [], []
    for d in decisions:
        if d.action == "keep" or (d.kind == "missing" and d.action == "delete"):
            changes["kept"] += 1
            continue
        if d.kind == "missing":
            added_b.append(d.new_box)
            added_l.append(d.new_label)
            changes["added"] += 1
            continue
        if d.gt >= len(labels) or (d.label >= 0 and labels[d.gt] != d.label) or \
                (d.box is not None and not _same_box(boxes[d.gt], d.box)):
            changes["stale"] += 1
            continue
        if d.action == "delete" or d.kind in ("spurious", "duplicate"):
            keep[d.gt] = False
            changes["deleted"] += 1
        elif d.kind == "wrong_class":
            labels[d.gt] = d.new_label
            changes["reclassified"] += 1
        elif d.kind == "loose":
            boxes[d.gt] = d.new_box
            changes["moved"] += 1
    out_b = np.concatenate([boxes[keep], np.asarray(added_b, np.float32).reshape(-1, 4)])
    out_l = np.concatenate([labels[keep], np.asarray(added_l, np.int64)])
    out_d = np.concatenate([difficult[keep], np.zeros(len(added_l), bool)])
    return out_b, out_l, out_d, changes
