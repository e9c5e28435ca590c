"""The demo training's panel: the button that starts ``python train.py --preset demo`` in the
background (``jobs``), its live progress on the page and in the sidebar."""

from __future__ import annotations

import jobs
import streamlit as st
from context import Context
from places import ensure_demo_data


def sidebar_progress(root: str) -> None:
    """One line of progress under the sidebar's choosers, refreshed every few seconds."""
    status = jobs.status(root)
    if status.running:
        st.progress(status.progress, text=f"Demo training: {status.message}")
    else:
        st.caption(f"Demo training {status.state}; see Home.")


def training_panel(ctx: Context, show_button: bool = True) -> None:
    """Button that runs `python train.py --preset demo` in the background, and its live progress."""
    status = jobs.status(ctx.logs_root)
    if show_button and not status.running:
        label = "Train the demo model" if ctx.checkpoint is None else "Train the demo model again"
        if st.button(label, type="primary" if ctx.checkpoint is None else "secondary", key="train_demo",
                     help="Runs `python train.py --preset demo` in the background, on the CPU; a progress bar "
                          "shows how far it is, and the dashboard stays usable meanwhile."):
            try:
                jobs.start(ctx.logs_root, jobs.demo_command(ctx.logs_root, ensure_demo_data()))
            except (RuntimeError, OSError) as err:
                st.error(f"Could not start training: {err}")
            status = jobs.status(ctx.logs_root)
    if status.state != "none":
        run_every = 2.0 if status.running else None
        st.fragment(run_every=run_every)(_job_progress)(str(ctx.logs_root))


def _job_progress(root: str) -> None:
    status = jobs.status(root)
    was_running = st.session_state.get("_job_running", False)
    st.session_state["_job_running"] = status.running
    if status.running:
        st.progress(status.progress, text=f"Training the demo model: {status.message}")
        if st.button("Stop training", key="stop_demo"):
            jobs.stop(root)
            st.rerun(scope="app")
    elif status.state == "finished":
        where = f" in `{status.run_folder}`" if status.run_folder else ""
        st.success(f"The demo model is trained{where}; its checkpoint is now in the sidebar.")
        if was_running:  # refresh the whole page so the sidebar lists the new checkpoint
            st.rerun(scope="app")
    elif status.state == "stopped":
        st.warning("Training was stopped. Start it again with the button; `last.ckpt` (if any) is usable.")
    else:
        st.error(f"Training failed: {status.message}. The end of its output is below; the same "
                 "command in a shell (`python train.py --preset demo`) shows the full story.")
    if status.log_tail:
        with st.expander("Training output", expanded=status.state == "failed"):
            st.code(status.log_tail, language=None)
