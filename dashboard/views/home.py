"""Home: what was found (dataset, runs, checkpoints) and what to do next.

    streamlit run dashboard/Home.py
"""

import frame
import job_panel
import jobs
import loaders
import places
import pandas as pd
import streamlit as st
import torch

from yolo.cpu import usable_cores
from yolo.runs import find_runs

# Measured with `python -m bench.demo` (README, "Results"); keep in step with the README.
DEMO_TIME = ("about a minute on an idle 2-core machine (58 s measured; 105 s of CPU work), "
             "longer when other programs share the machine")

CPU_MINUTES = 60.0  # the time budget of the CPU training command
cpu_cores = usable_cores()

ctx = frame.page("YOLOv3 on Pascal VOC: explorer",
                  "Browse the data and its augmentations, follow training, run the detector, "
                  "explain it with GradCAM and evaluate it. Choose the dataset and checkpoint in the sidebar.")

data_col, runs_col, model_col = st.columns(3)
with data_col:
    st.subheader("Dataset")
    if ctx.data_root is None:
        st.error(f"Not a dataset: {ctx.data_error}")
    else:
        kind = "the built-in demo dataset (synthetic shapes)" if ctx.is_demo else "your dataset"
        st.success(f"Using {kind}: **{ctx.data_format}** layout, {len(ctx.classes)} classes.")
        st.caption(f"`{ctx.data_root}`")
        if ctx.splits:
            st.write("Splits: " + ", ".join(f"`{s}`" for s in ctx.splits))
        else:
            st.warning("No split list found (VOC: `ImageSets/Main/<split>.txt`; Kaggle: `<split>.csv`).")

runs = find_runs(ctx.logs_root)
with runs_col:
    st.subheader("Runs")
    if runs:
        st.metric("Runs found", len(runs))
    else:
        st.info(f"No runs yet in `{ctx.logs_root}`.")
with model_col:
    st.subheader("Checkpoint")
    options = places.checkpoint_options(ctx.logs_root)
    if ctx.checkpoint is not None:
        st.success(f"Using `{ctx.checkpoint.name}` at input size {ctx.image_size}.")
        st.caption(f"`{ctx.checkpoint}`")
    elif options:
        st.warning(f"{len(options)} checkpoint(s) found but none chosen: pick one in the sidebar.")
    else:
        st.warning("No checkpoint yet.")

if runs:
    table = pd.DataFrame([{
        "run": r.label,
        "metrics.csv": r.has_metrics_csv,
        "TensorBoard": r.has_events,
        "checkpoints": len(r.best_checkpoints) + (r.last_checkpoint is not None),
        "last change": pd.Timestamp(r.modified, unit="s", tz="UTC").tz_convert(None).floor("s"),
        "folder": str(r.path),
    } for r in runs])
    st.dataframe(table, hide_index=True, width="stretch")
    for r in runs:
        for warning in r.warnings:
            st.warning(f"{r.label}: {warning}")

if ctx.data_root is not None and not ctx.is_demo:
    st.subheader("Train on this dataset")
    try:
        command = jobs.train_command(ctx.data_root)
        sizes = [loaders.split_size(ctx, spec) for spec in jobs.train_specs(ctx.data_root)]
        images = sum(n for n in sizes if n) if all(n is not None for n in sizes) else None
        gpu_here = torch.cuda.is_available()
        cpu_col, gpu_col = st.columns(2)
        with cpu_col:
            st.markdown("**On this machine's CPU**" + (" (no GPU found)" if not gpu_here else ""))
            if images:
                cpu_command, plan = jobs.cpu_train_command(ctx.data_root, images, minutes=CPU_MINUTES)
                st.code(cpu_command, language="bash")
                st.caption(
                    f"Chosen for {cpu_cores} cores and {images:,} training images to finish in about "
                    f"**{plan.minutes:.0f} min** on an idle machine (budget {CPU_MINUTES:.0f} min): width "
                    f"{plan.width:g}, {plan.size} px, {plan.epochs} epochs, {plan.workers} data worker(s) and "
                    f"{plan.threads} model thread(s), full precision (fp32 is faster than bf16 on most CPUs). "
                    "An estimate from the demo preset's measured CPU time per image, scaled by pixels; "
                    "longer while other programs share the machine.")
            else:
                st.caption("The training split could not be counted, so no CPU plan; the Dataset page's "
                           "data check says why.")
        with gpu_col:
            st.markdown("**On a GPU machine**" + (" (a GPU is found here)" if gpu_here else ""))
            st.code(command, language="bash")
            st.caption("The seed's recipe (40 epochs, width 1.0, multi-scale 320-608, validation at 416); "
                       "add `--devices 4 --strategy ddp` for several GPUs.")
        st.caption("Runs land in `logs/<name>/version_<n>/` and appear here; `--resume auto` continues after a "
                   "crash; `python train.py --help` lists every flag.")
    except Exception as err:  # noqa: BLE001  (a folder the command cannot be built for)
        st.warning(f"No training command for this folder: {err}")
st.subheader("Train the demo model")
st.write(f"The demo preset trains a small YOLOv3 (width 0.25, {jobs.demo_epochs()} epochs at "
         f"{jobs.demo_size()} px) on the synthetic demo dataset, on the CPU: {DEMO_TIME}. It is the same as "
         "`python train.py --preset demo` in a shell; runs land in "
         f"`{ctx.logs_root}/demo/version_<n>/`, and you can use every page meanwhile.")
job_panel.training_panel(ctx)

st.subheader("What next")
steps = []
if ctx.data_root is None:
    steps.append("Fix the dataset folder in the sidebar (or clear it for the demo dataset).")
elif ctx.is_demo:
    steps.append("For real data, put Pascal VOC somewhere (`python -m yolo.data download ROOT`, or a copy "
                 "holding `VOCdevkit/VOC2007`, `VOC2012`) and enter that folder in the sidebar, or start "
                 "with `YOLO_DATA=ROOT streamlit run dashboard/Home.py`.")
if ctx.checkpoint is None:
    steps.append("Train a model: the button above (demo), or `python train.py --preset voc --data ROOT` "
                 "on a GPU machine; its checkpoints appear in the sidebar.")
steps += [
    "**Dataset**: browse images by split and class, class and box statistics, the data-check report.",
    "**Augmentations**: what training sees: mosaic, transforms, the grid and the anchor cells.",
    "**Training**: loss, accuracy and mAP curves of one or several runs.",
    "**Detect** and **GradCAM**: run the model on a sample or an upload, and see where it looks.",
    "**Evaluate**: per-class AP, PR curves, confusion matrix, and how thresholds move mAP.",
]
st.markdown("\n".join(f"1. {s}" for s in steps))
