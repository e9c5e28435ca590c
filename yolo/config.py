"""Constants and typed configuration for the whole project.

Anchors are fractions of the image side, so one set serves every input size: on a grid of S
cells an anchor of width ``w`` spans ``w * S`` cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

# Output strides, in the order the model returns its three scales (coarse to fine).
STRIDES: tuple[int, int, int] = (32, 16, 8)

# The nine standard YOLOv3 anchors as (width, height) fractions of the image, three per scale,
# largest for stride 32. ANCHORS[s][a] belongs to scale s (STRIDES[s]) and anchor slot a.
ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0.28, 0.22), (0.38, 0.48), (0.90, 0.78)),
    ((0.07, 0.15), (0.15, 0.11), (0.14, 0.29)),
    ((0.02, 0.03), (0.04, 0.07), (0.08, 0.06)),
)


def grid_sizes(image_size: int) -> tuple[int, int, int]:
    """Grid side S of each scale for a square input of ``image_size`` pixels (a multiple of 32)."""
    if image_size <= 0 or image_size % 32:
        raise ValueError(f"image size must be a positive multiple of 32, got {image_size}")
    return tuple(image_size // s for s in STRIDES)  # type: ignore[return-value]


@dataclass
class ModelConfig:
    num_classes: int = 20  # C: channels per anchor are 5 + C
    width: float = 1.0  # channel multiplier; 1.0 is the course model (about 61.6M parameters)


@dataclass
class LossConfig:
    lambda_noobj: float = 10.0  # BCE on the objectness logit of cells with target 0
    lambda_obj: float = 1.0  # MSE of sigmoid(objectness) to the detached IoU, cells with target 1
    lambda_box: float = 10.0  # MSE of (sig(tx), sig(ty), tw, th) to (x, y, log w/a, log h/a)
    lambda_class: float = 1.0  # cross-entropy of the class logits, cells with target 1
    max_log_wh: float = 10.0  # clamp of the raw width/height logit before exp(): e^10 ~ 22026
    obj_loss: str = "bce"  # "bce": BCE-with-logits to the detached IoU; "mse": the course's MSE of
    #                        sigmoid(obj) to it, whose gradient vanishes once sigmoid(obj) is small
    #                        (README "Objectness loss" has the measurements behind the default)


@dataclass
class PostprocessConfig:
    conf_threshold: float = 0.05  # score = sigmoid(obj) * max softmax(class); keep score > this
    iou_threshold: float = 0.45  # class-aware NMS IoU threshold
    max_detections: int = 300  # per image, after NMS, highest scores first
    class_agnostic: bool = False  # True: one NMS over all classes
    pre_nms_top_k: int | None = None  # per image, keep only this many best candidates before NMS


@dataclass
class TargetConfig:
    ignore_iou: float = 0.5  # shape IoU above which a non-assigned free anchor slot is ignored (-1)
    anchors: tuple = field(default_factory=lambda: ANCHORS)  # (3 scales, 3 anchors, (w, h)) fractions


# ---------------------------------------------------------------------------------------------
# Logged metric names: the trainer writes these and the dashboard reads them. A metric is logged
# as f"{stage}/{key}" with stage in STAGES.
STAGES: tuple[str, ...] = ("train", "val", "test")
LOSS_TOTAL = "loss"
LOSS_TERMS: tuple[str, ...] = ("loss_box", "loss_obj", "loss_noobj", "loss_cls")
ACC_CLASS = "class_acc"
ACC_OBJ = "obj_acc"
ACC_NOOBJ = "noobj_acc"
ACCURACIES: tuple[str, ...] = (ACC_CLASS, ACC_NOOBJ, ACC_OBJ)
MAP50 = "map50"  # VOC all-point area (VOC2010+)
MAP50_VOC07 = "map50_voc07"  # VOC2007 11-point
LEARNING_RATE = "lr"
IMAGES_PER_SECOND = "images_per_s"
SKIPPED_STEPS = "skipped_nonfinite"
# The seed's acceptance targets for the cell accuracies, in percent.
SEED_TARGETS: dict[str, float] = {ACC_CLASS: 75.0, ACC_NOOBJ: 95.0, ACC_OBJ: 70.0}


def metric_key(stage: str, key: str) -> str:
    """The logged name of ``key`` at ``stage``, e.g. ``metric_key("val", MAP50) == "val/map50"``."""
    return f"{stage}/{key}"
