"""Evaluation over cached predictions (``yolo.predictions.PredictionSet``): pure functions that
the Evaluate page and ``python -m yolo.evaluate`` only draw or print.

    tide.py       error breakdown by TIDE's definitions, each error listed with its image
    operating.py  precision / recall / F1 against confidence, per-class thresholds (their file:
                  ``yolo.thresholds``, re-exported here under its older names)
    compare.py    checkpoint A/B: per-class dAP with a bootstrap interval, regressions ranked
    rules.py      mAP@0.5 by the VOC, VOC07, COCO and course rules side by side
    calibration.py  ECE, MCE and reliability bins (confidence vs precision), overall and per class
    export.py     COCO results / ground truth JSON, CSV
    tables.py     per-image errors, threshold sweeps, AP tables, box statistics
"""

from yolo.evaluate.calibration import Calibration, calibration
from yolo.evaluate.compare import Comparison, compare
from yolo.evaluate.export import coco_ground_truth, coco_results
from yolo.evaluate.operating import curves, fit_operating_points, held_out_gain, scores_at
from yolo.evaluate.rules import coco_map50, course_map50, metric_table
from yolo.evaluate.tide import ERROR_TYPES, ErrorBreakdown, error_breakdown, worst_examples
# the operating-points file lives in yolo.thresholds; its older names here
from yolo.thresholds import OperatingPoints
from yolo.thresholds import load_thresholds as read_operating_points
from yolo.thresholds import thresholds_path as operating_points_path
from yolo.thresholds import write_thresholds as save_operating_points

__all__ = [
    "Calibration", "calibration", "Comparison", "compare", "coco_ground_truth", "coco_results", "OperatingPoints", "curves",
    "fit_operating_points", "held_out_gain", "operating_points_path", "read_operating_points",
    "save_operating_points", "scores_at", "coco_map50", "course_map50", "metric_table", "ERROR_TYPES",
    "ErrorBreakdown", "error_breakdown", "worst_examples",
]
