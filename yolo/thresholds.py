"""A checkpoint's operating points (per-class confidence thresholds): the file's format, where it
lives, reading and writing, in one place. ``python -m yolo.evaluate`` and the Evaluate page write
it; ``Detector.from_checkpoint``, the Detect and GradCAM pages read it; a file given explicitly
(``operating_points=PATH``, ``--operating-points PATH``) wins over the one beside the checkpoint.

Where: beside the checkpoint, ``<checkpoint stem>.thresholds.json`` (``best.ckpt`` ->
``best.thresholds.json``), the name the dashboard has always used.

Format (JSON, version 1):
    {"version": 1,
     "class_names": [str, ...],          the model's classes, in order
     "thresholds": {class name: float},  one per class, in [0, 1]; a detection is kept when its
                                         score is ABOVE its class's threshold
     "global_threshold": float,          the best single threshold for all classes, in [0, 1]
     "rule": "max F1" | "precision >= p", "iou": float (the NMS IoU it was fitted at),
     "f1": {class name: float}, "meta": {...} (split, images, checkpoint)}

Reading is strict and bounded (``yolo.filelimits``: a regular file of at most 4 MiB, strict JSON,
an unchanged file parsed once); a file that cannot be used is one line, never a crash. Fitting
the thresholds is ``yolo.evaluate.operating``'s job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolo.filelimits import read_json_file

VERSION = 1
SUFFIX = ".thresholds.json"
# A file for 10,000 classes (yolo.filelimits.MAX_CLASSES) is ~1 MB; 4 MiB is the most read.
MAX_BYTES = 4 << 20


class ThresholdsWarning(UserWarning):
    """An operating-points file that cannot be used: the Detector runs at its default thresholds."""


class ThresholdsWriteError(OSError):
    """The operating-points file cannot be written (a read-only folder, a full disk, ...); the
    message says where and why in one line."""


@dataclass
class OperatingPoints:
    """Per-class confidence thresholds and what they were chosen for.

    class_thresholds: one per class (classes without evidence get ``global_threshold``);
    global_threshold: the best single threshold for all classes; rule: "max F1" or
    "precision >= p"; f1: class -> F1 at its threshold on the split it was fitted on.
    """

    class_names: list[str]
    class_thresholds: list[float]
    global_threshold: float
    rule: str = "max F1"
    iou: float = 0.45
    f1: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ThresholdsRead:
    """What ``read_thresholds`` found. ``points`` None means: use the defaults (one global
    confidence, no per-class thresholds); ``message`` then says why, when a file was there but
    could not be used (None when there simply was no file)."""

    points: OperatingPoints | None
    message: str | None = None
    path: Path | None = None


def thresholds_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's operating points live: beside it, ``<checkpoint stem>.thresholds.json``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + SUFFIX)


def write_thresholds(points: OperatingPoints, path: str | Path) -> Path:
    """Write ``points`` as the JSON above: written beside it and renamed into place (a reader never
    sees half a file). ``ThresholdsWriteError`` (an OSError) when it cannot be."""
    path = Path(path)
    payload = {"version": VERSION, **asdict(points),
               "thresholds": dict(zip(points.class_names, points.class_thresholds))}
    payload.pop("class_thresholds")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ThresholdsWriteError(err.errno, f"cannot save the thresholds to {path}: {err.strerror or err} "
                                   f"(a read-only folder? copy the checkpoint somewhere writable)") from None
    return path


def read_thresholds(path: str | Path, class_names: Sequence[str] | None = None) -> ThresholdsRead:
    """Read an operating-points file; never raises for a bad file. ``class_names``: the model's,
    which the file must name. A missing file gives the defaults and no message; a file that
    cannot be used gives the defaults and a one-line message naming the file and the problem."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return ThresholdsRead(None, None, None)
    try:
        return ThresholdsRead(_parse(path, class_names), None, path)
    except ValueError as err:
        return ThresholdsRead(None, str(err), path)


def thresholds_for(checkpoint: str | Path, class_names: Sequence[str] | None = None) -> ThresholdsRead:
    """The operating points saved beside ``checkpoint`` (``read_thresholds`` of ``thresholds_path``)."""
    return read_thresholds(thresholds_path(checkpoint), class_names)


def load_thresholds(path: str | Path, class_names: Sequence[str] | None = None) -> OperatingPoints:
    """A file the caller named explicitly: its operating points, or ``ValueError`` with the message."""
    found = read_thresholds(path, class_names)
    if found.points is None:
        raise ValueError(found.message or f"no operating-points file at {path}")
    return found.points


def _number(value, path: Path, what: str) -> float:
    """A JSON number (not a bool or a string) as a float in [0, 1]; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: {what} must be a number, found {type(value).__name__}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{path}: thresholds must lie in [0, 1] ({what} is {number:g})")
    return number


def _parse(path: Path, class_names: Sequence[str] | None) -> OperatingPoints:
    """The file's operating points; any problem is a one-line ValueError: a file that is not a
    regular file of at most 4 MiB (a FIFO, /dev/zero, a folder), not strict JSON (nested too deep, a
    400-digit integer, NaN), or with values of the wrong type or range."""
    raw = read_json_file(path, MAX_BYTES, "operating-points file")
    if not isinstance(raw, dict) or raw.get("version") != VERSION or "thresholds" not in raw:
        raise ValueError(f"{path} is not an operating-points file (version {VERSION})")
    thresholds = raw["thresholds"]
    if not isinstance(thresholds, dict):
        raise ValueError(f"{path}: \"thresholds\" must map class names to numbers, got {type(thresholds).__name__}")
    names = list(class_names) if class_names is not None else list(thresholds)
    missing = [n for n in names if n not in thresholds]
    if missing:
        raise ValueError(f"{path} has no threshold for {', '.join(map(str, missing[:5]))}: it was fitted for other classes")
    values = [_number(thresholds[n], path, f"the threshold of {n!r}") for n in names]
    glob = _number(raw.get("global_threshold", 0.5), path, "global_threshold")
    iou = _number(raw.get("iou", 0.45), path, "iou")
    f1, meta = raw.get("f1", {}), raw.get("meta", {})
    if not isinstance(f1, dict) or not isinstance(meta, dict) or not isinstance(raw.get("rule", ""), str):
        raise ValueError(f"{path}: malformed operating points (\"f1\" and \"meta\" must be objects, \"rule\" text)")
    return OperatingPoints(names, values, glob, str(raw.get("rule", "max F1")), iou, dict(f1), dict(meta))
