"""mAP@0.5 of the same detections by four rules, side by side, and why they differ.

    VOC (all points)   greedy by score; a detection is judged only against its best-IoU box of
                       its class (no fallback); difficult boxes neither count nor penalise;
                       area under the precision envelope at every recall step (VOC2010+).
    VOC07 (11 points)  the same matches; envelope read at the Python devkit's 11 recall thresholds
                       ``np.arange(0., 1.1, 0.1)`` (VOC2007; 0.3, 0.6 and 0.7 are a hair above).
    COCO (101 points)  greedy by score, falling back to the next free box; difficult boxes act as
                       crowd regions; envelope read at pycocotools' 101 recall thresholds (its own
                       np.linspace values); at most 100 per image and class (pycocotools applies
                       maxDets per category).
    course             the YOLOv3 course's ``mean_average_precision``: strict IoU > 0.5, no
                       difficult flag (every box counts), no envelope: the raw precision/recall
                       points with (0, 1) prepended, integrated by the trapezoid rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from yolo import evalcore as core
from yolo.evaluate.ap import ap_course
from yolo.evaluate.matching import flatten
from yolo.metrics import candidate_boxes, first_claims, voc_evaluate

WHY: dict[str, str] = {
    "VOC (all points)": "Pascal VOC 2010+: the area under the precision envelope; difficult objects ignored.",
    "VOC07 (11 points)": "Pascal VOC 2007 (the Python devkit's voc_eval with use_07_metric): the envelope read at 11 "
                         "recall points np.arange(0, 1.1, 0.1), so coarser; it can read above or below the all-point area.",
    "COCO (101 points)": "COCO at IoU 0.5: a detection may fall back to a second free box, the envelope is read "
                         "at 101 recall points and at most 100 detections per image and class count.",
    "course": "The course's code: strict IoU > 0.5, difficult objects count as misses, and the raw zig-zag curve "
              "is integrated without an envelope, so it reads lowest.",
}


def coco_map50(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
               iou_threshold: float = 0.5, max_per_image: int = 100) -> tuple[float, torch.Tensor]:
    """COCO's AP at one IoU (pycocotools' rule, area range "all"): per (image, class) the
    best-scored ``max_per_image`` detections, greedy matching with fallback, difficult boxes
    as crowd regions (a detection on one is ignored), the envelope read at pycocotools' own 101
    recall thresholds. Returns (mAP over classes with positives, per-class AP Tensor[C], nan
    without positives)."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection dicts but {len(ground_truths)} ground truths")
    det, truth = core.flatten(detections, "det"), core.flatten(ground_truths, "gt")
    core.check_labels(det.labels, num_classes, "detection")
    core.check_labels(truth.labels, num_classes, "ground-truth")
    order = core.score_order(det.scores)
    live = core.top_per_group(det.image * num_classes + det.labels, order, max_per_image)
    gt_of_det, on_crowd = core.coco_match(det, truth, num_classes, iou_threshold, core.rank_of(order), live)
    counted = live & ~on_crowd
    n_pos = np.bincount(truth.labels[~truth.difficult], minlength=num_classes)
    rows = core.by_class(order[counted[order]], det.labels)
    cv = core.curves(det.labels[rows], gt_of_det[rows] >= 0, n_pos)
    ap = np.where(n_pos > 0, core.ap_points(cv, core.COCO_RECALL_POINTS), np.nan)
    has = n_pos > 0
    return (float(ap[has].mean()) if bool(has.any()) else float("nan")), torch.from_numpy(ap)


def course_map50(detections: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                 iou_threshold: float = 0.5) -> tuple[float, torch.Tensor]:
    """The course's ``mean_average_precision`` (module docstring), vectorised. Returns (mean over
    classes with boxes, per-class AP Tensor[C], nan without boxes)."""
    det, truth = flatten(detections), flatten(ground_truths)
    cand, iou = candidate_boxes(det.boxes, det.image * num_classes + det.labels,
                                truth.boxes, truth.image * num_classes + truth.labels)
    claims = (cand >= 0) & (iou > iou_threshold)
    tp = first_claims(cand, claims, det.scores, len(truth))
    n_pos = torch.bincount(truth.labels, minlength=num_classes)
    ap = ap_course(det.scores, det.labels, tp, n_pos)
    has = n_pos > 0
    return (float(ap[has].mean()) if bool(has.any()) else float("nan")), ap


def metric_table(detections: Sequence[dict], ground_truths: Sequence[dict],
                 class_names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The four rules on the same detections -> (summary: rule, mAP@0.5, why; per class: one AP
    column per rule)."""
    n = len(class_names)
    voc = voc_evaluate(detections, ground_truths, n)
    coco, coco_ap = coco_map50(detections, ground_truths, n)
    course, course_ap = course_map50(detections, ground_truths, n)
    values = {"VOC (all points)": (voc.map, voc.per_class_ap), "VOC07 (11 points)": (voc.map_voc07, voc.per_class_ap_voc07),
              "COCO (101 points)": (coco, coco_ap), "course": (course, course_ap)}
    summary = pd.DataFrame([{"rule": k, "mAP@0.5": v[0], "why": WHY[k]} for k, v in values.items()])
    per_class = pd.DataFrame({"class": list(class_names), **{k: v[1].tolist() for k, v in values.items()}})
    return summary, per_class
