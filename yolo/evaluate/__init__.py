"""Evaluation over cached predictions (``yolo.predictions.PredictionSet``): pure functions that
the Evaluate page and ``python -m yolo.evaluate`` only draw or print.

    tide.py       error breakdown by TIDE's definitions, each error listed with its image
    operating.py  precision / recall / F1 against confidence, per-class thresholds, JSON for Detector
    compare.py    checkpoint A/B: per-class dAP with a bootstrap interval, regressions ranked
    rules.py      mAP@0.5 by the VOC, VOC07, COCO and course rules side by side
    calibration.py  ECE, MCE and reliability bins (confidence vs precision), overall and per class
    export.py     COCO results / ground truth JSON, CSV
    tables.py     per-image errors, threshold sweeps, AP tables, box statistics
"""

from yolo.evaluate.calibration import Calibration, calibration
from yolo.evaluate.compare import Comparison, compare
from yolo.evaluate.export import coco_ground_truth, coco_results
from yolo.evaluate.operating import (
    OperatingPoints,
    curves,
    fit_operating_points,
    held_out_gain,
    operating_points_path,
    read_operating_points,
    save_operating_points,
    scores_at,
)
from yolo.evaluate.rules import coco_map50, course_map50, metric_table
from yolo.evaluate.tide import ERROR_TYPES, ErrorBreakdown, error_breakdown, worst_examples

__all__ = [
    "Calibration", "calibration", "Comparison", "compare", "coco_ground_truth", "coco_results", "OperatingPoints", "curves",
    "fit_operating_points", "held_out_gain", "operating_points_path", "read_operating_points",
    "save_operating_points", "scores_at", "coco_map50", "course_map50", "metric_table", "ERROR_TYPES",
    "ErrorBreakdown", "error_breakdown", "worst_examples",
]
