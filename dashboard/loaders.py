"""Cached loaders: a split's annotation index, samples for display, box tables, the data-check
report, the training dataset as training builds it, and the runs' metrics. Parsed data goes
through ``st.cache_data``, shared read-only objects through ``st.cache_resource``; each is keyed
by a stamp that changes when the files do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from context import Context
from frame import require_dataset

from yolo import viz
from yolo.data.layout import build_index
from yolo.data.layout import DataLayoutError

DISPLAY_SIDE = 1024  # long side of a dataset sample or upload as shown and given to the model (input <= 608)
THUMB_SIDE = 384  # long side of a thumbnail in the Dataset and Augmentations grids


@st.cache_data(ttl=10, max_entries=64, show_spinner=False)
def stamp(root: Path, spec: str) -> str:
    """Changes when the split's files change (the index's own cache key); re-checked at most every
    10 s, since it lists the annotation and image folders."""
    from yolo.data.layout import resolve_sources

    return "|".join(s.signature() for s in resolve_sources(root, [spec]))


@st.cache_data(max_entries=16, show_spinner="Reading the annotations (cached after the first time)…")
def _index(root: str, spec: str, classes: tuple[str, ...], stamp: str):
    return build_index([root], [spec], classes, progress=False)


def split_size(ctx: Context, spec: str) -> int | None:
    """Images of one split (the cached index), None when it cannot be read (no error drawn)."""
    root = ctx.data_root
    if root is None:
        return None
    try:
        return len(_index(str(root), spec, ctx.classes, stamp(root, spec)))
    except (DataLayoutError, OSError, ValueError):
        return None


def load_index(ctx: Context, spec: str):
    """The labelled ``DetectionIndex`` of one split spec (cached; rebuilt when files change)."""
    root = require_dataset(ctx)
    try:
        return _index(str(root), spec, ctx.classes, stamp(root, spec))
    except DataLayoutError as err:
        st.error(str(err))
        st.stop()


@st.cache_data(max_entries=64, show_spinner=False)
def _view(root: str, spec: str, classes: tuple[str, ...], stamp: str, i: int, max_side: int) -> dict:
    from yolo.data.datasets import DetectionDataset

    dataset = DetectionDataset(_index(root, spec, classes, stamp))
    j, image = dataset.load_image(i, max_side)  # JPEG: decoded at 1/2, 1/4 or 1/8 where that is enough
    sample = dataset.sample(j, None)
    orig_size = tuple(int(v) for v in dataset.index.sizes[j])
    sample["image"], sample["boxes"] = viz.fit(image, sample["boxes"], max_side, frame=orig_size)
    sample["orig_size"] = orig_size
    return sample


def load_view(ctx: Context, spec: str, i: int, max_side: int = DISPLAY_SIDE) -> dict:
    """Sample i of a split for display: long side at most ``max_side`` (decoded reduced where the
    format allows, never the full photo in memory), boxes mapped onto it, and ``orig_size`` (h, w)
    of the file. Memory per view is at most max_side^2 x 3 bytes (3 MB at 1024)."""
    root = require_dataset(ctx)
    return _view(str(root), spec, ctx.classes, stamp(root, spec), int(i), int(max_side))


@st.cache_data(max_entries=8, show_spinner="Fitting anchors to the boxes…")
def _anchor_report(root: str, spec: str, classes: tuple[str, ...], stamp: str, size: int):
    from yolo.anchors import anchor_report

    return anchor_report(_index(root, spec, classes, stamp), size)


def anchor_report(ctx: Context, spec: str, size: int):
    """``yolo.anchors.anchor_report`` of a split at input ``size`` (cached per split files and size)."""
    root = require_dataset(ctx)
    return _anchor_report(str(root), spec, ctx.classes, stamp(root, spec), int(size))


@st.cache_data(max_entries=8, show_spinner=False)
def _box_table(root: str, spec: str, classes: tuple[str, ...], stamp: str) -> pd.DataFrame:
    index = _index(root, spec, classes, stamp)
    owner = index.box_image
    frame = pd.DataFrame(index.boxes, columns=["x1", "y1", "x2", "y2"])
    frame.insert(0, "image", index.ids[owner] if len(owner) else [])
    frame.insert(1, "class", [classes[i] for i in index.labels])
    frame["difficult"] = index.difficult
    frame["image_h"], frame["image_w"] = index.sizes[owner, 0], index.sizes[owner, 1]
    from yolo.evaluate.tables import box_statistics

    stats = box_statistics(index.boxes, index.sizes[owner])  # width, height, relative size, aspect
    return pd.concat([frame, stats.set_index(frame.index)], axis=1)


def box_table(ctx: Context, spec: str) -> pd.DataFrame:
    """One row per object of a split: image, class, box, image size, relative size, aspect."""
    root = require_dataset(ctx)
    return _box_table(str(root), spec, ctx.classes, stamp(root, spec))


@st.cache_data(max_entries=4, show_spinner="Checking the dataset…")
def _report(root: str, specs: tuple[str, ...], stamp: str):
    from yolo.data.check import check_dataset

    return check_dataset(root, list(specs), progress=False)


def dataset_report(ctx: Context, specs: list[str]):
    """``yolo.data.check.check_dataset`` of the given splits (cached)."""
    root = require_dataset(ctx)
    return _report(str(root), tuple(specs), "|".join(stamp(root, s) for s in specs))


@st.cache_resource(max_entries=4)
def _train_dataset(root: str, spec: str, classes: tuple[str, ...], stamp: str, mosaic_p: float, colour: bool):
    from yolo.data.augment import AugConfig
    from yolo.data.datasets import DetectionDataset
    from yolo.data.mosaic import TrainDataset

    return TrainDataset(DetectionDataset(_index(root, spec, classes, stamp)), mosaic_p=mosaic_p,
                        aug=AugConfig(colour=colour), partners="dataset")


def train_dataset(ctx: Context, spec: str, mosaic_p: float = 0.75, colour: bool = True):
    """The training dataset (mosaic wrapper + ``train_transforms``) as training builds it;
    ``colour=False`` leaves out the colour jitter (geometry only)."""
    root = require_dataset(ctx)
    return _train_dataset(str(root), spec, ctx.classes, stamp(root, spec), mosaic_p, colour)


def assigned_cells(boxes: np.ndarray, labels: np.ndarray, size: int, classes) -> pd.DataFrame:
    """The anchor slots ``yolo.targets.encode`` gives the boxes of one image at ``size``: one row
    per slot that owns a box ("assigned") or is ignored, with stride, grid, anchor, row, column."""
    import torch

    from yolo.targets import assignments

    rows = assignments(torch.as_tensor(np.asarray(boxes, dtype=np.float32)),
                       torch.as_tensor(np.asarray(labels, dtype=np.int64)), size)
    table = [{"stride": r["stride"], "grid": r["grid"], "anchor": r["anchor"],
              "anchor w x h": "{:.2f} x {:.2f}".format(*r["anchor_wh"]), "row": r["row"],
              "col": r["col"], "state": r["state"],
              "class": classes[r["label"]] if r["label"] >= 0 else ""} for r in rows]
    return pd.DataFrame(table, columns=["stride", "grid", "anchor", "anchor w x h", "row", "col", "state", "class"])


# ------------------------------------------------------------------------------ training logs
@st.cache_resource(max_entries=8, show_spinner="Reading the run logs…")  # shared, not copied: read-only
def _metrics(runs: tuple[tuple[str, str, float], ...]) -> tuple[pd.DataFrame, list[str]]:
    from yolo.logs import read_runs
    from yolo.runs import run_info

    warnings: list[str] = []
    frame = read_runs([run_info(path, root) for path, root, _ in runs], warnings)
    return frame, warnings


def read_run_metrics(runs, root: Path) -> tuple[pd.DataFrame, list[str]]:
    """Tidy metrics of the given ``RunInfo``s and the reader's warnings; re-read when a run's
    files change (a run that is still writing is read again on the next rerun)."""
    return _metrics(tuple((str(r.path), str(root), r.modified) for r in runs))
