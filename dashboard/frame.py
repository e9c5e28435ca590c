"""The frame of every page: the sidebar (drawn once per run by Home.py, before the page), what it
settles (``context.Context``), and the page's title.
"""

from __future__ import annotations

import os
from pathlib import Path

import job_panel
import jobs
import streamlit as st
from context import Context
from places import (ENV_CKPT, ENV_DATA, checkpoint_note, checkpoint_options, default_checkpoint, ensure_demo_data,
                    logs_root, run_image_size, training_record)
from typed_paths import typed_path

from yolo.data.layout import DataLayoutError, available_splits, detect_format, load_classes

NO_CHECKPOINT, OTHER_CHECKPOINT = "(none)", "Another file…"


def _dataset_sidebar() -> tuple[Path | None, str | None, str | None, bool]:
    st.session_state.setdefault("data_folder", os.environ.get(ENV_DATA, "").strip())
    folder = st.text_input("Dataset folder", key="data_folder", placeholder="empty: the built-in demo dataset",
                           help="A folder holding VOCdevkit/ (or VOCdevkit itself, or the Kaggle layout "
                                f"images/ + labels/ + train.csv). Also settable with ${ENV_DATA}.").strip()
    is_demo = not folder
    try:
        root, message = (ensure_demo_data(), None) if is_demo else typed_path(folder, "folder")
        if message:
            raise DataLayoutError(message)
        fmt = detect_format(root)
    except (DataLayoutError, OSError) as err:
        st.error(f"{err}\n\nClear the field to use the demo dataset.")
        return None, str(err), None, False
    st.caption(f"{'Demo dataset' if is_demo else 'Dataset'} · {fmt} layout · `{root}`")
    return root, None, fmt, is_demo


def _checkpoint_sidebar(root: Path) -> Path | None:
    found = checkpoint_options(root)
    env = os.environ.get(ENV_CKPT, "").strip()
    by_path = {str(p.resolve()): label for label, p in found.items()}
    if env:
        env_path, _ = typed_path(env, "file")  # resolved; None when it is not a file
        default = by_path.get(str(env_path), OTHER_CHECKPOINT)
    else:
        default = default_checkpoint(found) or NO_CHECKPOINT
    options = [*found, OTHER_CHECKPOINT, NO_CHECKPOINT]
    state = st.session_state
    if state.get("checkpoint_choice") not in options:  # first run, or a checkpoint gone
        state["checkpoint_choice"] = default
    # The file field is drawn only for "Another file…"; re-setting its value keeps what was typed
    # while another choice hides it (Streamlit forgets widgets a run does not draw).
    state["checkpoint_path"] = state.get("checkpoint_path", env)
    training = {label for label, path in found.items() if training_record(path) is not None}
    choice = st.selectbox("Checkpoint", options, key="checkpoint_choice",
                          format_func=lambda label: f"{label} · still training" if label in training else label,
                          help=f"Checkpoints found under {root} (and weight files in it); or any file written by "
                               "train.py, the course's checkpoint.pth.tar or a Darknet .weights file "
                               f"(${ENV_CKPT} sets the first choice). Loaded with weights_only=True.")
    if choice == NO_CHECKPOINT:
        return None
    if choice == OTHER_CHECKPOINT:
        text = st.text_input("Checkpoint file", key="checkpoint_path", placeholder="path/to/best.ckpt").strip()
        if not text:
            return None
        path, message = typed_path(text, "file")
        if message:
            st.error(message)
    else:
        path = found[choice]
    if (note := checkpoint_note(path)) is not None:
        st.warning(note)
    return path


def sidebar() -> Context:
    """The dataset and checkpoint choosers shared by every page."""
    logs = logs_root()
    with st.sidebar:
        st.subheader("Data and model")
        root, error, fmt, is_demo = _dataset_sidebar()
        checkpoint = _checkpoint_sidebar(logs)
        if jobs.status(logs).running:
            st.fragment(run_every=5.0)(job_panel.sidebar_progress)(str(logs))
    classes: tuple[str, ...] = ()
    splits: list[str] = []
    if root is not None:
        try:
            classes, splits = load_classes(root), available_splits(root)
        except (DataLayoutError, OSError) as err:
            root, error = None, str(err)
    return Context(root, error, fmt, is_demo, classes, splits, logs, checkpoint, run_image_size(checkpoint))


CONTEXT = "_context"  # Session State key of what the sidebar settled in this run


def draw_sidebar() -> Context:
    """The sidebar, drawn once per run by the entry point (Home.py) before the page runs; what
    it settled is kept for ``page``."""
    st.session_state[CONTEXT] = ctx = sidebar()
    return ctx


def page(title: str, intro: str = "") -> Context:
    """The title and what the sidebar settled; every page starts with this."""
    ctx = st.session_state.get(CONTEXT) or draw_sidebar()
    st.title(title)
    if intro:
        st.caption(intro)
    return ctx


def require_dataset(ctx: Context) -> Path:
    """The dataset root (with at least one split), or a message and the end of the page."""
    if ctx.data_root is None:
        st.error(f"No dataset to show: {ctx.data_error}\n\nFix the folder in the sidebar, or clear it "
                 "to use the built-in demo dataset.")
        st.stop()
    if not ctx.splits:
        st.error(f"`{ctx.data_root}` has no split list (VOC: ImageSets/Main/<split>.txt; Kaggle: <split>.csv), "
                 "so there is nothing to show.")
        st.stop()
    return ctx.data_root
