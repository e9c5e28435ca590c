"""A training run's progress as a small JSON file in its run folder, for whoever watches the run
(the dashboard's background job, ``cat`` in a shell). ``yolo.callbacks.ProgressFile`` writes it on
rank zero; this module holds the format, the atomic write, the reader and the time-left rule, and
imports neither Lightning nor torch, so readers stay light.

``<log_dir>/<name>/version_<n>/progress.json``::

    {"pid": 4242,                  # the training process (rank zero)
     "run_folder": "logs/demo/version_0",
     "state": "training",          # "training", then "finished" (or "stopped" on an exception)
     "started": 1700000000.0,      # time.time() when fitting started
     "updated": 1700000095.2,      # time.time() of this write
     "epoch": 3, "epochs": 12,     # the epoch in progress (0-based) and max_epochs
     "batch": 10, "batches": 40,   # training batches done in this epoch, and per epoch
     "step": 130, "total_steps": 480,  # optimiser steps done (trainer.global_step) and planned
     "elapsed": 95.2,              # seconds since fitting started (this process)
     "epoch_seconds": [30.1, 29.8],  # wall time of each finished epoch, validation included
     "eta": 329.1,                 # seconds left (``time_left``); null until an epoch has ended
     "metrics": {"train/loss_step": 3.1}}  # the last logged scalars (NaN as null)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from yolo.filelimits import read_json_file

MAX_PROGRESS_BYTES = 1 << 20  # progress.json is ~300 bytes

FILE_NAME = "progress.json"


def write_progress(path: str | Path, record: dict) -> None:
    """Write ``record`` as JSON atomically: a temporary file in the same folder, then
    ``os.replace``, so a reader sees the previous record or this one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_progress(path: str | Path) -> dict | None:
    """The record in ``path``, or None when it is missing, unreadable, not JSON (e.g. a file cut
    short by hand or by a full disk) or not an object. Never raises."""
    try:  # bounded and strict (yolo.filelimits): a FIFO, /dev/zero or 100,000 nested brackets is "unreadable"
        record = read_json_file(path, MAX_PROGRESS_BYTES, "progress file")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def fraction_done(record: dict | None) -> float:
    """Steps done / steps planned, in [0, 1]; 0 without a (usable) record."""
    if not record:
        return 0.0
    try:
        step, total = float(record.get("step") or 0), float(record.get("total_steps") or 0)
    except (TypeError, ValueError):
        return 0.0
    return min(max(step / total, 0.0), 1.0) if total > 0 and math.isfinite(total) else 0.0


def time_left(epoch_seconds: Sequence[float], epochs: int, current: float) -> float | None:
    """Seconds left, from measured epoch times; None until an epoch has ended.

    The rule: the last finished epoch took T seconds (validation included); the current epoch has
    run t seconds (``current``); with k epochs finished of N, the estimate is (N - k) x T - t,
    never below 0. The first epoch's T holds the start-up costs of the data workers and the first
    batches, so the first estimate is the most cautious.
    """
    if not epoch_seconds or not epoch_seconds[-1]:
        return None
    finished = len(epoch_seconds)
    return float(max((epochs - finished) * epoch_seconds[-1] - current, 0.0))


def scalars(metrics: dict) -> dict[str, float | None]:
    """Logged values as JSON numbers: one-element tensors and numbers as floats, NaN/inf as None;
    anything else left out."""
    out: dict[str, float | None] = {}
    for name, value in metrics.items():
        try:
            number = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError, RuntimeError):
            continue
        out[str(name)] = number if math.isfinite(number) else None
    return out
