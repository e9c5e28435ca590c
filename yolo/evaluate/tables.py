"""Tables the dashboard draws: per-image errors, threshold sweeps, per-class AP and PR curves,
one image's detections against its ground truth, and box statistics of a split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from yolo.evaluate.operating import f1_score
from yolo.metrics import VOCResult, confusion_matrix, match_detections, precision_recall_at, precision_recall_sweep, voc_evaluate


def per_image_errors(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                     conf: float, image_ids: Sequence[str]) -> pd.DataFrame:
    """One row per image at confidence > ``conf`` (the Detector's rule): objects, found, missed, false detections and
    errors (missed + false), worst first. One matching pass over all images."""
    n = len(ground_truths)
    found, false = match_detections(detections, ground_truths, num_classes).per_image(n, conf)
    objects = torch.tensor([int((~g["difficult"].bool()).sum()) if g.get("difficult") is not None
                            else int(g["labels"].numel()) for g in ground_truths], dtype=torch.int64)
    table = pd.DataFrame({"image": list(image_ids), "position": range(n), "objects": objects.tolist(),
                          "found": found.tolist(), "missed": (objects - found).tolist(),
                          "false detections": false.tolist()})
    table["errors"] = table["missed"] + table["false detections"]
    return table.sort_values("errors", ascending=False, kind="stable")


def ap_tables(result: VOCResult, names: Sequence[str], max_points: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-class AP table, PR curve points thinned to about ``max_points`` per class)."""
    ap = pd.DataFrame({"class": list(names), "AP": result.per_class_ap.tolist(),
                       "AP (VOC07 11-point)": result.per_class_ap_voc07.tolist(),
                       "objects": result.n_positives.tolist()})
    parts = []
    for name, recall, precision in zip(names, result.recall, result.precision):
        curve = pd.DataFrame({"class": name, "recall": recall.tolist(), "precision": precision.tolist()})
        parts.append(curve.iloc[::max(1, len(curve) // max_points)])
    curves = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["class", "recall", "precision"])
    return ap, curves


def evaluation_summary(detections: Sequence[dict], ground_truths: Sequence[dict], names: Sequence[str],
                       image_ids: Sequence[str], conf: float) -> dict:
    """Everything the Evaluate page's first tabs show for one NMS result: VOC mAP (both rules),
    per-class AP and curves, precision and recall at ``conf``, the confusion matrix and the
    per-image errors."""
    n = len(names)
    result = voc_evaluate(detections, ground_truths, n)
    at = precision_recall_at(detections, ground_truths, n, conf)
    ap, pr = ap_tables(result, names)
    return {"map": result.map, "map_voc07": result.map_voc07, "precision": at.precision, "recall": at.recall,
            "ap": ap, "curves": pr, "confusion": confusion_matrix(detections, ground_truths, n, 0.5, conf).tolist(),
            "names": list(names), "per_image": per_image_errors(detections, ground_truths, n, conf, image_ids)}


def threshold_sweep(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int, iou: float,
                    confs: Sequence[float]) -> pd.DataFrame:
    """For detections after NMS at ``iou``: mAP@0.5 and, per confidence, micro precision, recall
    and F1 (score > conf). A threshold and NMS commute, so one NMS pass serves every confidence."""
    map50 = voc_evaluate(detections, ground_truths, num_classes).map
    rows = []
    for conf, at in zip(confs, precision_recall_sweep(detections, ground_truths, num_classes, confs)):
        rows.append({"NMS IoU": iou, "confidence": conf, "mAP@0.5": map50, "precision": at.precision,
                     "recall": at.recall, "F1": float(f1_score(at.tp.sum(), at.fp.sum(), at.n_positives.sum()))})
    return pd.DataFrame(rows)


def match_table(detections: dict, boxes: np.ndarray, labels: np.ndarray, num_classes: int,
                iou_threshold: float = 0.5) -> tuple[list[float], list[str], dict[str, int]]:
    """One image's detections against its ground truth by the VOC rule -> (IoU with the best box
    of the class per detection, "true positive"/"false positive" per detection, counts: objects,
    found, missed, false)."""
    m = match_detections([detections], [{"boxes": torch.as_tensor(np.asarray(boxes, np.float32)).reshape(-1, 4),
                                         "labels": torch.as_tensor(np.asarray(labels, np.int64)).reshape(-1)}],
                         num_classes, iou_threshold)
    objects, found = int(m.n_positives.sum()), int(m.tp.sum())
    counts = {"objects": objects, "found": found, "missed": objects - found, "false": int(m.fp.sum())}
    return m.iou.tolist(), ["true positive" if t else "false positive" for t in m.tp.tolist()], counts


def box_statistics(boxes: np.ndarray, sizes: np.ndarray) -> pd.DataFrame:
    """Per box: width, height, relative size sqrt(box area / image area) and aspect (w / h).
    boxes (N, 4) xyxy pixels; sizes (N, 2) (height, width) of each box's image."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.sqrt(width * height / (sizes[:, 0] * sizes[:, 1]))
    return pd.DataFrame({"width": width, "height": height, "relative_size": relative,
                         "aspect": width / np.clip(height, 1e-6, None)})
