"""Models and predictions: a checkpoint (or an untrained model) as a cached, stateless Detector;
one cached ``yolo.detect.Prediction`` per (model, image), from which thresholds only re-select;
GradCAM maps; the threshold sliders and where they start.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from context import Context
from picking import Picked

TRAIN_HINT = ("No trained checkpoint yet. Train the demo model from the **Home** page (a button; it runs "
              "on the CPU in the background) or in a shell: `python train.py --preset demo`.")


@dataclass
class Model:
    detector: Any  # yolo.detect.Detector (stateless: shared by every session)
    label: str
    trained: bool
    key: str  # identity for caches: file, its mtime and the input size
    thresholds: Any = None  # yolo.thresholds.OperatingPoints saved beside the checkpoint, if any


@st.cache_resource(max_entries=3, show_spinner="Loading the checkpoint…")
def _checkpoint_detector(path: str, mtime_ns: int, image_size: int):
    from yolo.detect import Detector

    # no thresholds in the cached Detector: the page reads the file beside the checkpoint on every
    # run (``operating_points``), so a file saved meanwhile is used at once
    return Detector.from_checkpoint(path, image_size=image_size, operating_points=False)


@st.cache_resource(max_entries=2, show_spinner="Building an untrained model…")
def _untrained_detector(classes: tuple[str, ...], width: float, image_size: int):
    import torch

    from yolo.detect import Detector
    from yolo.model import YOLOv3

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = YOLOv3(len(classes), width)
    return Detector(model, list(classes), image_size)


def checkpoint_model(path: Path, image_size: int, what_next: str = "Pick another checkpoint in the sidebar.",
                     stop: bool = True) -> Model | None:
    """A checkpoint file as a cached Detector (with its saved operating points); a file that
    cannot be used shows one message (``what_next`` after it) and ends the page (``stop``) or
    gives None."""
    from yolo.weights import CheckpointError

    try:
        mtime = path.stat().st_mtime_ns
        detector = _checkpoint_detector(str(path), mtime, image_size)
    except (CheckpointError, OSError) as err:
        st.error(f"Cannot use {path}: {err}\n\n{what_next}")
        return st.stop() if stop else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError, EOFError) as err:
        # A file the loader did not foresee: a message here, the traceback in the console.
        logging.getLogger(__name__).exception("loading checkpoint %s", path)
        st.error(f"Cannot use {path}: not a checkpoint this project can read "
                 f"({type(err).__name__}: {err}).\n\n{what_next}")
        return st.stop() if stop else None
    key = f"{path}|{mtime}|{image_size}"
    for note in getattr(detector, "warnings", ()):  # the library's: NaN/Inf weights, a broken thresholds file
        st.warning(note)
    return Model(detector, str(path), True, key, operating_points(path, detector.class_names))


def load_model(ctx: Context, allow_untrained: bool = True) -> Model:
    """The chosen checkpoint as a cached Detector; without one, explain how to get one and offer
    an untrained model (random weights) so the page still shows its mechanics."""
    if ctx.checkpoint is not None:
        return checkpoint_model(ctx.checkpoint, ctx.image_size)
    st.info(TRAIN_HINT)
    st.page_link("views/home.py", label="Go to Home to train the demo model", icon=":material/model_training:")
    if not allow_untrained or not ctx.classes:
        st.stop()
    if not st.toggle("Meanwhile, use an untrained model (random weights)", value=True, key="untrained",
                     help="Shows how the page works; its detections and maps are noise."):
        st.stop()
    detector = _untrained_detector(ctx.classes, 0.25, ctx.image_size)
    key = f"untrained|{'/'.join(ctx.classes)}|0.25|{ctx.image_size}"
    return Model(detector, "untrained YOLOv3 (width 0.25, random weights)", False, key)


def operating_points(checkpoint: Path, class_names):
    """The operating points saved beside a checkpoint (``yolo.thresholds``: written by the
    Evaluate page's button and by ``python -m yolo.evaluate``), or None; a broken file is
    reported and ignored."""
    from yolo.thresholds import thresholds_for

    found = thresholds_for(checkpoint, class_names)
    if found.message:
        st.warning(f"Ignoring the saved thresholds: {found.message}")
    return found.points


def check_classes(model: Model, ctx: Context, consequence: str) -> bool:
    """Warn when the model's classes differ from the dataset's; ``consequence`` says what the
    page does about it (each page its own truth: e.g. "Ground truth is drawn but not compared.")."""
    names = tuple(model.detector.class_names)
    if names == tuple(ctx.classes):
        return True
    st.warning(f"The model knows {len(names)} classes ({', '.join(names[:6])}{'…' * (len(names) > 6)}) "
               f"but the dataset has {len(ctx.classes)} ({', '.join(ctx.classes[:6])}"
               f"{'…' * (len(ctx.classes) > 6)}). {consequence} "
               "Choose a matching dataset or checkpoint in the sidebar.")
    return False


@st.cache_resource(max_entries=16, show_spinner=False)
def _prediction(model_key: str, image_key: str, _detector, _image):
    return _detector.predict(_image)


def prediction(model: Model, picked: Picked):
    """The picked image's ``yolo.detect.Prediction``, cached once per (model, image) for every
    session: the model runs only when either changes. Predictions are immutable and the Detector
    keeps nothing, so sessions share both without a lock."""
    return _prediction(model.key, picked.key, model.detector, picked.image)


def predict(model: Model, picked: Picked, conf, iou: float, classes: list[str] | None):
    """Detections of the picked image at the given thresholds (``conf``: one, or one per class);
    moving a slider only re-selects from the kept candidates.

    Returns (detections, the forward's timings, milliseconds of this selection)."""
    found = prediction(model, picked)
    start = time.perf_counter()
    detections = found.select(conf=conf, iou=iou, classes=classes or None)
    return detections, found.timings, (time.perf_counter() - start) * 1e3


def cam_maps(model: Model, picked: Picked, conf, iou: float, layers: list[str], method: str,
             target: Any) -> dict[str, np.ndarray]:
    """``yolo.cam.sweep`` of the picked image (maps in [0, 1], original pixels) for the detections
    ``target`` picks (``yolo.cam.detection_target``) at these thresholds; remembered per setting
    so that opacity changes and reruns do not recompute it."""
    from yolo import cam

    key = (model.key, picked.key, repr(conf), iou, tuple(layers), method, repr(target))
    cams = st.session_state.setdefault("_cams", {})
    if key not in cams:
        found = prediction(model, picked)
        goal = None if method in cam.GRADIENT_FREE else cam.detection_target(found.select(conf=conf, iou=iou), target)
        maps = cam.sweep(model.detector.model, found, goal, layers, method)
        if len(cams) >= 6:  # a sweep is 10 maps of the photo's size
            cams.pop(next(iter(cams)))
        cams[key] = maps
    return cams[key]


def starting_threshold(model: Model, default: float) -> tuple[float, str]:
    """Where the confidence slider starts and why: the global threshold of the model's saved
    operating point when it has one, else ``default``."""
    if model.thresholds is not None:
        return round(float(model.thresholds.global_threshold), 2), (
            f"starts at {model.thresholds.global_threshold:.2f}, the single threshold of best F1 saved for this "
            f"checkpoint (Evaluate page or python -m yolo.evaluate; {model.thresholds.rule}); per-class thresholds "
            "are one toggle away")
    if not model.trained:
        return default, (f"starts at {default:.2f}: an untrained model's scores are tiny, so a low threshold shows "
                         "its mechanics")
    return default, (f"starts at {default:.2f}, a fixed default: no operating point is saved for this checkpoint yet "
                     "(the Evaluate page's Operating points tab finds and saves the best one)")


def threshold_sliders(prefix: str, conf: float = 0.25, iou: float = 0.45, why: str | None = None,
                      conf_disabled: bool = False) -> tuple[float, float]:
    c1, c2 = st.columns(2)
    conf = c1.slider("Confidence threshold", 0.0, 1.0, conf, 0.01, key=f"{prefix}_conf", disabled=conf_disabled,
                     help="off while the saved per-class thresholds are on" if conf_disabled else
                     "score = objectness x class probability; boxes at or below it are dropped")
    iou = c2.slider("NMS IoU threshold", 0.05, 0.95, iou, 0.05, key=f"{prefix}_iou",
                    help="a box overlapping a higher-scoring box of its class by more is suppressed")
    if why:
        st.caption(f"Confidence threshold: {why}.")
    return conf, iou


def confidence_controls(model: Model, prefix: str, trained_start: float = 0.25,
                        untrained_start: float = 0.02) -> tuple[float | list[float], float]:
    """The threshold controls of Detect and GradCAM, alike on both: with an operating point saved
    for the checkpoint, first a toggle "Per-class thresholds" (on by default); while it is on the
    confidence slider is disabled (it would change nothing) and a caption lists the thresholds.
    The slider starts at the saved single threshold, else ``trained_start`` (``untrained_start``
    for an untrained model, whose scores are tiny).

    Returns (conf: one threshold, or one per class; NMS IoU)."""
    per_class = model.thresholds is not None and st.toggle(
        "Per-class thresholds (the saved operating point)", value=True, key=f"{prefix}_per_class",
        help="On: each class at its own threshold saved for this checkpoint (the Evaluate page or python -m "
             "yolo.evaluate; the confidence slider is off); "
             "off: the slider's one threshold for every class")
    start, why = starting_threshold(model, trained_start if model.trained else untrained_start)
    conf, iou = threshold_sliders(prefix, conf=start, why=None if per_class else why, conf_disabled=per_class)
    if not per_class:
        return conf, iou
    points = model.thresholds
    st.caption(f"Each class at its own saved threshold ({points.rule}, from "
               f"{points.meta.get('split', 'the Evaluate page')}): "
               + ", ".join(f"{n} {t:.2f}" for n, t in zip(points.class_names, points.class_thresholds)))
    return list(points.class_thresholds), iou
