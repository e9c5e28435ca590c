"""The Evaluate page's data: a model's predictions over a split, saved once, and every view of them
(VOC mAP, PR curves, confusion matrix, threshold sweeps, error breakdown, operating points, A/B,
metric rules, calibration), cached and computed without the model. The maths is ``yolo.evaluate``'s; this
module only caches it.

Predictions are written by ``yolo.predictions.predict_samples`` under ``<logs>/.dashboard/predictions/``,
one file per (checkpoint, dataset split, image count); NMS results per IoU are kept in memory for
all views and sessions; tables go through ``st.cache_data``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import frame
import jobs
import loaders
import models
import pandas as pd
import streamlit as st
from yolo.config import EVAL_NMS

# Candidates kept in the page's prediction files, the lowest confidence its sweeps can use: 10x
# EVAL_NMS's floor (0.001) so a sweep over a split stays interactive; mAP from the tail between
# the two is left out here (python -m yolo.evaluate keeps it).
CONF_FLOOR = 0.01
MAX_CANDIDATES = EVAL_NMS.pre_nms_top_k  # per image, before NMS
MAX_DETECTIONS = EVAL_NMS.max_detections  # per image, after NMS: the one evaluation setting (yolo.config)


def predictions_file(ctx: frame.Context, model: models.Model, spec: str, limit: int) -> Path:
    """Where the cached predictions of (model, dataset split, first ``limit`` images) live."""
    root = frame.require_dataset(ctx)
    tag = hashlib.sha1(f"{model.key}|{root}|{spec}|{limit}|{loaders.stamp(root, spec)}".encode()).hexdigest()[:16]
    return ctx.logs_root / jobs.JOB_DIR / "predictions" / f"{spec.replace('/', '-')}-{tag}.pt"


@st.cache_resource(max_entries=4, show_spinner="Loading the predictions…")
def _predictions(path: str, mtime_ns: int):
    from yolo.predictions import PredictionSet

    return PredictionSet.load(path)


def load_predictions(path: Path):
    """A saved ``PredictionSet`` (cached in memory), or None when the file does not exist."""
    if not path.is_file():
        return None
    return _predictions(str(path), path.stat().st_mtime_ns)


def compute_predictions(ctx: frame.Context, model: models.Model, spec: str, limit: int, path: Path) -> None:
    """Run the model once over the split (``yolo.predictions.predict_samples``) with a progress bar."""
    from yolo.data.datasets import DetectionDataset
    from yolo.predictions import predict_samples

    dataset = DetectionDataset(loaders.load_index(ctx, spec))
    n = min(int(limit), len(dataset))
    bar = st.progress(0.0, text=f"Predicting {n} images of {spec}…")

    def samples():
        for i in range(n):
            yield dataset[i]
            bar.progress((i + 1) / n, text=f"Predicting {spec}: {i + 1} of {n} images")

    try:
        predict_samples(model.detector, samples(), path, batch_size=8, conf_floor=CONF_FLOOR,
                        max_candidates=MAX_CANDIDATES, total=n, progress=False)
    except (OSError, ValueError, RuntimeError) as err:  # a sample or the model failed: say so, keep the page
        logging.getLogger(__name__).exception("predicting %s", spec)
        bar.empty()
        st.error(f"Running the model over {spec} stopped: {type(err).__name__}: {err}. Nothing was saved; "
                 "the Dataset page's data check lists unreadable files.")
        st.stop()
    bar.empty()


SWEEP_CONFS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95
SWEEP_IOUS = (0.3, 0.45, 0.6)  # the useful range for VOC; each costs one NMS pass over the split


@st.cache_resource
def _workers() -> ThreadPoolExecutor:
    """Threads for the evaluation's many small tensor operations. Off the main thread they run
    several times faster (PyTorch's intra-op pool no longer synchronises on each of them), and
    independent pieces (NMS at several IoUs) share the cores. Tasks never submit tasks."""
    return ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="dashboard-eval")


def _nms(preds, iou: float) -> list[dict]:
    """Per-image detections of every cached candidate above the floor, NMS at ``iou``
    (``yolo.postprocess.nms_indices`` runs NMS image by image for large sets)."""
    return preds.detections(conf=preds.conf_floor, iou=iou, max_detections=MAX_DETECTIONS)


@st.cache_resource(max_entries=4)
def _nms_store(path: str, mtime_ns: int) -> dict[float, list[dict]]:
    """NMS results of one prediction file by IoU, shared by every view and session."""
    return {}


def nms_at(path: str, mtime_ns: int, ious: tuple[float, ...]) -> dict[float, list[dict]]:
    """Per-image detections (every candidate above the floor, NMS at each IoU), computed once per
    file and IoU; missing IoUs are computed side by side."""
    store, preds = _nms_store(path, mtime_ns), _predictions(path, mtime_ns)
    missing = [iou for iou in dict.fromkeys(ious) if iou not in store]
    for iou, found in zip(missing, _workers().map(lambda v: _nms(preds, v), missing)):
        store[iou] = found
    return {iou: store[iou] for iou in ious}


@st.cache_data(max_entries=32, show_spinner="Evaluating…")
def evaluate(path: str, mtime_ns: int, conf: float, iou: float) -> dict:
    """VOC mAP@0.5 with per-class AP and PR curves (every kept candidate, NMS at ``iou``), and at
    confidence ``conf``: precision, recall, the confusion matrix and the errors of each image."""
    from yolo.evaluate.tables import evaluation_summary

    preds = _predictions(path, mtime_ns)
    detections = nms_at(path, mtime_ns, (iou,))[iou]
    return _workers().submit(evaluation_summary, detections, preds.ground_truth(), list(preds.class_names),
                             list(preds.image_ids), conf).result()


def image_detections(path: str, mtime_ns: int, i: int, conf: float, iou: float) -> dict:
    """Detections {"boxes", "scores", "labels"} of image ``i`` of a prediction file."""
    return _predictions(path, mtime_ns).subset(i, i + 1).detections(conf, iou, MAX_DETECTIONS)[0]


@st.cache_data(max_entries=16, show_spinner="Sweeping the thresholds…")
def threshold_sweep(path: str, mtime_ns: int, confs: tuple[float, ...], ious: tuple[float, ...]) -> pd.DataFrame:
    """From the saved predictions (no model): for every NMS IoU the mAP@0.5, and for every
    (NMS IoU, confidence) pair the precision, recall and F1 (``yolo.evaluate.tables.threshold_sweep``)."""
    from yolo.evaluate.tables import threshold_sweep as sweep

    preds = _predictions(path, mtime_ns)
    truth, num_classes = preds.ground_truth(), len(preds.class_names)
    detections = nms_at(path, mtime_ns, ious)
    jobs_ = [_workers().submit(sweep, detections[iou], truth, num_classes, iou, confs) for iou in ious]
    return pd.concat([job.result() for job in jobs_], ignore_index=True)


@st.cache_data(max_entries=8, show_spinner="Breaking the errors down…")
def errors(path: str, mtime_ns: int, iou: float):
    """``yolo.evaluate.error_breakdown`` (TIDE's definitions) at NMS ``iou``."""
    from yolo.evaluate import error_breakdown

    preds = _predictions(path, mtime_ns)
    detections = nms_at(path, mtime_ns, (iou,))[iou]
    return _workers().submit(error_breakdown, detections, preds.ground_truth(), len(preds.class_names)).result()


@st.cache_data(max_entries=8, show_spinner="Fitting the operating points…")
def operating(path: str, mtime_ns: int, iou: float, target_precision: float | None):
    """(``OperatingPoints`` fitted on the file, per-class and overall P/R/F1 curves, the F1 of
    per-class thresholds against one global threshold fitted on the first half of the images and
    measured on the second)."""
    from yolo.evaluate import curves, fit_operating_points, held_out_gain

    preds = _predictions(path, mtime_ns)
    names, truth = list(preds.class_names), preds.ground_truth()
    detections = nms_at(path, mtime_ns, (iou,))[iou]
    points = fit_operating_points(detections, truth, names, target_precision, iou)
    half = len(truth) // 2
    gain = held_out_gain((detections[:half], truth[:half]), (detections[half:], truth[half:]), names,
                         target_precision) if half else None
    gain = None if gain is None else {k: v for k, v in gain.items() if k != "points"}
    return points, curves(detections, truth, names, SWEEP_CONFS), gain


@st.cache_data(max_entries=8, show_spinner="Comparing the two checkpoints…")
def comparison(path_a: str, mtime_a: int, path_b: str, mtime_b: int, iou: float, conf: float):
    """``yolo.evaluate.compare`` of two prediction files of the same images."""
    from yolo.evaluate import compare

    a, b = _predictions(path_a, mtime_a), _predictions(path_b, mtime_b)
    da, db = nms_at(path_a, mtime_a, (iou,))[iou], nms_at(path_b, mtime_b, (iou,))[iou]
    return _workers().submit(compare, da, db, a.ground_truth(), list(a.class_names), list(a.image_ids), conf).result()


@st.cache_data(max_entries=8, show_spinner="Computing every rule…")
def metric_rules(path: str, mtime_ns: int, iou: float):
    """``yolo.evaluate.metric_table``: mAP@0.5 by the VOC, VOC07, COCO and course rules."""
    from yolo.evaluate import metric_table

    preds = _predictions(path, mtime_ns)
    detections = nms_at(path, mtime_ns, (iou,))[iou]
    return metric_table(detections, preds.ground_truth(), list(preds.class_names))


@st.cache_data(max_entries=8, show_spinner="Measuring the calibration…")
def calibration(path: str, mtime_ns: int, iou: float, correct_iou: float, n_bins: int):
    """``yolo.evaluate.calibration`` (ECE, MCE, reliability bins overall and per class) at NMS
    ``iou``; a detection is correct when COCO-matched at ``correct_iou``."""
    from yolo.evaluate import calibration as measure

    preds = _predictions(path, mtime_ns)
    detections = nms_at(path, mtime_ns, (iou,))[iou]
    return _workers().submit(measure, detections, preds.ground_truth(), len(preds.class_names), correct_iou,
                             n_bins).result()


def operating_marks(class_bins: pd.DataFrame, thresholds: dict[str, float], names: list[str]) -> pd.DataFrame:
    """Where each class's saved threshold sits on its reliability curve: class, threshold, and the
    precision of the bin holding it (the nearest bin with detections when that one is empty; none
    when the class has no detection). Table lookups only."""
    rows = []
    for c, name in enumerate(names):
        if name not in thresholds:
            continue
        t = float(thresholds[name])
        bins = class_bins[(class_bins["class"] == c) & (class_bins["count"] > 0)]
        if bins.empty:
            continue
        holding = bins[(bins["lower"] <= t) & (t < bins["upper"])]
        row = holding.iloc[0] if len(holding) else bins.iloc[(bins["confidence"] - t).abs().argmin()]
        rows.append({"class": name, "threshold": t, "precision": float(row["precision"]),
                     "bin": f"{row['lower']:.2f}-{row['upper']:.2f}", "detections in bin": int(row["count"])})
    return pd.DataFrame(rows, columns=["class", "threshold", "precision", "bin", "detections in bin"])


@st.cache_resource
def _same_weights_seen() -> dict:
    return {}


def same_weights(a: models.Model, b: models.Model) -> bool:
    """``yolo.evaluate.compare.same_weights`` of the two models' networks, once per pair of files
    (model keys carry the file's path and modification time)."""
    from yolo.evaluate.compare import same_weights as same

    seen = _same_weights_seen()
    if (a.key, b.key) not in seen:
        seen[(a.key, b.key)] = same(a.detector.model, b.detector.model)
    return seen[(a.key, b.key)]


def other_model(ctx: frame.Context, path: Path) -> models.Model | None:
    """A second checkpoint (for Compare) as a ``models.Model``; None (and the sidebar's message)
    for a file that cannot be used, so the other tabs still draw."""
    return models.checkpoint_model(path, ctx.image_size, "Pick another checkpoint to compare with.", stop=False)


def dataset_position(ctx: frame.Context, spec: str, image_ids, row: int) -> int:
    """The split's index of the image at ``row`` of a prediction file (``image_ids``): the same
    number unless images were skipped while predicting, which shifts every later row."""
    ids = loaders.load_index(ctx, spec).ids
    wanted = str(image_ids[row])
    if row < len(ids) and str(ids[row]) == wanted:
        return row
    hits = [i for i, image_id in enumerate(ids) if str(image_id) == wanted]
    return hits[0] if hits else row


def drawn_view(ctx: frame.Context, spec: str, position: int, detections: dict | None = None,
               class_names=None):
    """Image ``position`` of the split as a grid tile (``loaders.load_view``: long side at most
    ``loaders.THUMB_SIDE``, never the full photo in memory), its ground truth dashed and
    ``detections`` ({"boxes" (N, 4) xyxy pixels of the ORIGINAL image, "labels", "scores"})
    solid, mapped onto the tile."""
    from yolo import viz

    sample = loaders.load_view(ctx, spec, position, loaders.THUMB_SIDE)
    picture = viz.draw_ground_truth(sample["image"], sample["boxes"], sample["labels"], class_names=ctx.classes)
    if detections is not None and len(detections["scores"]):
        boxes = viz.scale_boxes(detections["boxes"], sample["orig_size"], sample["image"].shape[:2])
        picture = viz.draw_detections(picture, boxes, detections["labels"], detections["scores"],
                                      class_names=class_names)
    return picture


def fmt(value: float, digits: int = 3) -> str:
    """A number for st.metric; "n/a" when undefined (e.g. precision with no detection)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
