"""The Evaluate page's data: a model's predictions over a split, saved once, and every view of them
(VOC mAP, PR curves, confusion matrix, threshold sweeps), cached and computed without the model.

Predictions are written by ``yolo.detect.predict_samples`` under ``<logs>/.dashboard/predictions/``,
one file per (checkpoint, dataset split, image count); NMS results per IoU are kept in memory for
all views and sessions; tables go through ``st.cache_data``.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common
import jobs
import pandas as pd
import streamlit as st

CONF_FLOOR = 0.01  # candidates kept in prediction files; the lowest confidence the sweeps can use
MAX_CANDIDATES = 1000  # per image, before NMS
MAX_DETECTIONS = 100  # per image, after NMS (as in the VOC/COCO evaluations)


def predictions_file(ctx: common.Context, model: common.Model, spec: str, limit: int) -> Path:
    """Where the cached predictions of (model, dataset split, first ``limit`` images) live."""
    root = common.require_dataset(ctx)
    tag = hashlib.sha1(f"{model.key}|{root}|{spec}|{limit}|{common._stamp(root, spec)}".encode()).hexdigest()[:16]
    return ctx.logs_root / jobs.JOB_DIR / "predictions" / f"{spec.replace('/', '-')}-{tag}.pt"


@st.cache_resource(max_entries=4, show_spinner="Loading the predictions…")
def _predictions(path: str, mtime_ns: int):
    from yolo.detect import PredictionSet

    return PredictionSet.load(path)


def load_predictions(path: Path):
    """A saved ``PredictionSet`` (cached in memory), or None when the file does not exist."""
    if not path.is_file():
        return None
    return _predictions(str(path), path.stat().st_mtime_ns)


def compute_predictions(ctx: common.Context, model: common.Model, spec: str, limit: int, path: Path) -> None:
    """Run the model once over the split (``yolo.detect.predict_samples``) with a progress bar."""
    from yolo.data.datasets import DetectionDataset
    from yolo.detect import predict_samples

    dataset = DetectionDataset(common.load_index(ctx, spec))
    n = min(int(limit), len(dataset))
    bar = st.progress(0.0, text=f"Predicting {n} images of {spec}…")

    def samples():
        for i in range(n):
            yield dataset[i]
            bar.progress((i + 1) / n, text=f"Predicting {spec}: {i + 1} of {n} images")

    with model.lock:
        predict_samples(model.detector, samples(), path, batch_size=8, conf_floor=CONF_FLOOR,
                        max_candidates=MAX_CANDIDATES, total=n, progress=False)
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


def _slice(preds, a: int, b: int):
    """Images a..b-1 of a PredictionSet (its CSR rows), without ground truth."""
    from yolo.detect import PredictionSet

    lo, hi = int(preds.offsets[a]), int(preds.offsets[b])
    return PredictionSet(preds.image_ids[a:b], preds.sizes[a:b], preds.offsets[a:b + 1] - lo,
                         preds.boxes[lo:hi], preds.scores[lo:hi], preds.labels[lo:hi],
                         preds.class_names, preds.conf_floor)


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


def _frames_of_result(result, names) -> tuple[pd.DataFrame, pd.DataFrame]:
    ap = pd.DataFrame({"class": names, "AP": result.per_class_ap.tolist(),
                       "AP (VOC07 11-point)": result.per_class_ap_voc07.tolist(),
                       "objects": result.n_positives.tolist()})
    parts = []
    for name, recall, precision in zip(names, result.recall, result.precision):
        curve = pd.DataFrame({"class": name, "recall": recall.tolist(), "precision": precision.tolist()})
        step = max(1, len(curve) // 400)  # enough points to draw; the AP uses them all
        parts.append(curve.iloc[::step])
    return ap, pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["class", "recall", "precision"])


def _evaluate(detections: list[dict], truth: list[dict], names: list[str], image_ids: list[str],
              conf: float) -> dict:
    from yolo.metrics import confusion_matrix, precision_recall_at, voc_evaluate

    result = voc_evaluate(detections, truth, len(names))
    at = precision_recall_at(detections, truth, len(names), conf)
    matrix = confusion_matrix(detections, truth, len(names), 0.5, conf)
    per_image = []
    for i, (found, gt) in enumerate(zip(detections, truth)):
        one = precision_recall_at([found], [gt], len(names), conf)
        tp, fp, objects = int(one.tp.sum()), int(one.fp.sum()), int(one.n_positives.sum())
        per_image.append({"image": image_ids[i], "position": i, "objects": objects, "found": tp,
                          "missed": objects - tp, "false detections": fp, "errors": objects - tp + fp})
    ap, curves = _frames_of_result(result, names)
    return {"map": result.map, "map_voc07": result.map_voc07, "precision": at.precision, "recall": at.recall,
            "ap": ap, "curves": curves, "confusion": matrix.tolist(), "names": names,
            "per_image": pd.DataFrame(per_image).sort_values("errors", ascending=False, kind="stable")}


@st.cache_data(max_entries=32, show_spinner="Evaluating…")
def evaluate(path: str, mtime_ns: int, conf: float, iou: float) -> dict:
    """VOC mAP@0.5 with per-class AP and PR curves (every kept candidate, NMS at ``iou``), and at
    confidence ``conf``: precision, recall, the confusion matrix and the errors of each image."""
    preds = _predictions(path, mtime_ns)
    detections = nms_at(path, mtime_ns, (iou,))[iou]
    return _workers().submit(_evaluate, detections, preds.ground_truth(), list(preds.class_names),
                             list(preds.image_ids), conf).result()


def image_detections(path: str, mtime_ns: int, i: int, conf: float, iou: float) -> dict:
    """Detections {"boxes", "scores", "labels"} of image ``i`` of a prediction file."""
    return _slice(_predictions(path, mtime_ns), i, i + 1).detections(conf, iou, MAX_DETECTIONS)[0]


def _sweep_one(detections: list[dict], truth: list[dict], num_classes: int, iou: float,
               confs: tuple[float, ...]) -> list[dict]:
    from yolo.metrics import precision_recall_at, voc_evaluate

    map50 = voc_evaluate(detections, truth, num_classes).map
    rows = []
    for conf in confs:
        at = precision_recall_at(detections, truth, num_classes, conf)
        f1 = 2 * at.precision * at.recall / (at.precision + at.recall) if at.precision + at.recall > 0 else 0.0
        rows.append({"NMS IoU": iou, "confidence": conf, "mAP@0.5": map50,
                     "precision": at.precision, "recall": at.recall, "F1": f1})
    return rows


@st.cache_data(max_entries=16, show_spinner="Sweeping the thresholds…")
def threshold_sweep(path: str, mtime_ns: int, confs: tuple[float, ...], ious: tuple[float, ...]) -> pd.DataFrame:
    """From the saved predictions (no model): for every NMS IoU the mAP@0.5, and for every
    (NMS IoU, confidence) pair the precision, recall and F1 of the detections kept. One row per pair.

    A confidence threshold and NMS commute (a box is only suppressed by a higher-scoring one), so
    NMS runs once per IoU and each confidence is a ``precision_recall_at`` threshold."""
    preds = _predictions(path, mtime_ns)
    truth, num_classes = preds.ground_truth(), len(preds.class_names)
    detections = nms_at(path, mtime_ns, ious)
    jobs_ = [_workers().submit(_sweep_one, detections[iou], truth, num_classes, iou, confs) for iou in ious]
    return pd.DataFrame([row for job in jobs_ for row in job.result()])
