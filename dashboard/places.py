"""Where things are: the runs folder, the demo dataset and the checkpoints found under the runs
folder (environment variables first; the sidebar can change the dataset and the checkpoint).

    YOLO_DATA        dataset folder (a VOCdevkit parent, VOCdevkit, or the Kaggle layout);
                     unset or empty: the built-in demo dataset
    YOLO_DEMO        where the demo dataset is written (default: <repo>/data/demo, git-ignored)
    YOLO_LOGS        the runs folder (default: <repo>/logs)
    YOLO_CHECKPOINT  checkpoint to open first (default: the newest best/last under the runs folder)
    YOLO_CACHE_DIR   where annotation indexes of read-only datasets go (yolo.data.index)
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from yolo.config import DEFAULT_IMAGE_SIZE, MAX_IMAGE_SIZE
from yolo.data.demo import demo_path, ensure_demo, is_demo_complete
from yolo.runs import checkpoint_run, find_runs, run_info, still_training

REPO = Path(__file__).resolve().parents[1]
ENV_DATA, ENV_DEMO, ENV_LOGS, ENV_CKPT = "YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT"


def logs_root() -> Path:
    return Path(os.environ.get(ENV_LOGS) or REPO / "logs").expanduser()


def demo_root() -> Path:
    return Path(os.environ.get(ENV_DEMO) or demo_path()).expanduser()


def ensure_demo_data() -> Path:
    """The demo dataset, written on first use (a few seconds, with a spinner)."""
    root = demo_root()
    if not is_demo_complete(root):
        with st.spinner(f"Writing the demo dataset to {root} (first use only, a few seconds)…"):
            ensure_demo(root)
    return root


WEIGHT_FILES = ("*.weights", "*.pth.tar", "*.pth", "*.pt", "*.ckpt")


def checkpoint_options(root: Path) -> dict[str, Path]:
    """Label -> checkpoint for every run under ``root``, newest run first, best before last; then
    the weight files lying in ``root`` itself (``WEIGHT_FILES``)."""
    options: dict[str, Path] = {}
    for run in sorted(find_runs(root), key=lambda r: r.modified, reverse=True):
        for path in run.best_checkpoints:
            options[f"{run.label} · {path.name}"] = path
        if run.last_checkpoint is not None:
            options[f"{run.label} · last.ckpt"] = run.last_checkpoint
    for path in sorted({p for pattern in WEIGHT_FILES for p in root.glob(pattern) if p.is_file()}):
        options.setdefault(path.name, path)
    return options


def training_record(checkpoint: Path | None) -> dict | None:
    """The progress record of the run a checkpoint belongs to while that run is still training
    (``yolo.runs.still_training``), else None."""
    run = checkpoint_run(checkpoint) if checkpoint is not None else None
    return still_training(run) if run is not None else None


def default_checkpoint(options: dict[str, Path]) -> str | None:
    """The label to open first: the first of ``options`` (newest run first, best before last)
    whose run is not still training, so a run's partial best-so-far is never picked silently;
    when every run is training, the first (the page then says so: ``checkpoint_note``)."""
    for label, path in options.items():
        if training_record(path) is None:
            return label
    return next(iter(options), None)


def checkpoint_note(checkpoint: Path | None) -> str | None:
    """One sentence naming the checkpoint in use when its run is still training, else None."""
    record = training_record(checkpoint)
    if record is None:
        return None
    epoch, epochs = record.get("epoch"), record.get("epochs")
    where = (f" (epoch {epoch + 1} of {epochs})" if isinstance(epoch, int) and isinstance(epochs, int)
             and not isinstance(epoch, bool) else "")
    return (f"In use: `{checkpoint.name}` of `{checkpoint.parent.parent}`, whose run is still training{where}: "
            "it holds the weights saved so far, not the run's final ones, and its file is replaced as the "
            "run goes on.")


def run_image_size(checkpoint: Path | None) -> int:
    """The input size a checkpoint was validated at: saved in its hyper-parameters ("image_size");
    for older checkpoints the "val_size" of its run folder's config.yaml; else 416."""
    if checkpoint is None:
        return DEFAULT_IMAGE_SIZE
    try:
        size = _saved_image_size(str(checkpoint), checkpoint.stat().st_mtime_ns)
    except OSError:
        size = None
    if size is not None:
        return size
    if checkpoint.parent.name != "checkpoints":
        return DEFAULT_IMAGE_SIZE
    config = run_info(checkpoint.parent.parent).config or {}
    size = config.get("val_size")
    fits = isinstance(size, int) and 32 <= size <= MAX_IMAGE_SIZE and size % 32 == 0  # 65536 crashed Detect
    return int(size) if fits else DEFAULT_IMAGE_SIZE


@st.cache_data(max_entries=16, show_spinner=False)
def _saved_image_size(path: str, mtime_ns: int) -> int | None:
    from yolo.weights import saved_image_size

    return saved_image_size(path)
