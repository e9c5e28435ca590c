"""Constants and typed configuration for the whole project.

Anchors are fractions of the image side, so one set serves every input size: on a grid of S
cells an anchor of width ``w`` spans ``w * S`` cells.

Each setting is written once, as a field of a config dataclass with a comment saying what it does:
``ModuleConfig`` groups the LightningModule's (model, loss, target, optim, val); ``TrainConfig``
(``yolo.trainer``) holds it beside the run's data, schedule and hardware settings. ``train.py``
makes one flag per leaf field (``leaves``), named after it, its help the field's comment
(``field_comments``); presets and flags set leaves by name (``override``).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal, get_args, get_origin, get_type_hints

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

# Output strides, in the order the model returns its three scales (coarse to fine).
STRIDES: tuple[int, int, int] = (32, 16, 8)

# Input side for a checkpoint that does not say which size it was validated at (older files).
DEFAULT_IMAGE_SIZE = 416
# The largest input side any path accepts (flags, a checkpoint's image_size, the dashboard): the grid
# and anchors are made for 320..608; 2048 is 24x the pixels of 416 and already several GB of
# activations at width 1; 8192 would be 16x that again (a checkpoint claiming it crashed the Detect page).
MAX_IMAGE_SIZE = 2048

# The nine standard YOLOv3 anchors as (width, height) fractions of the image, three per scale,
# largest for stride 32. ANCHORS[s][a] belongs to scale s (STRIDES[s]) and anchor slot a.
ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0.28, 0.22), (0.38, 0.48), (0.90, 0.78)),
    ((0.07, 0.15), (0.15, 0.11), (0.14, 0.29)),
    ((0.02, 0.03), (0.04, 0.07), (0.08, 0.06)),
)


def grid_sizes(image_size: int) -> tuple[int, int, int]:
    """Grid side S of each scale for a square input of ``image_size`` pixels (a multiple of 32, at
    most ``MAX_IMAGE_SIZE``: every path that takes a size, from a flag or a file, checks it here)."""
    if image_size <= 0 or image_size % 32 or image_size > MAX_IMAGE_SIZE:
        raise ValueError(f"image size must be a multiple of 32 in [32, {MAX_IMAGE_SIZE}], got {image_size}")
    return tuple(image_size // s for s in STRIDES)  # type: ignore[return-value]


@dataclass
class ModelConfig:
    num_classes: int = 20  # C: channels per anchor are 5 + C (set from the dataset, not a flag)
    width: float = 1.0  # channel multiplier in (0, 2], e.g. 0.5 or 0.25; 1.0 is the course model
    #                     (61.6M parameters), 2 is 4x its channels (~246M), wider does not fit a GPU
    obj_prior: float = 0.0  # objects per training image the objectness biases start calibrated to
    #                         (sigmoid = objects / (3 S^2) per scale; VOC with mosaic 0.75: ~6);
    #                         0: PyTorch's init, sigmoid ~0.5 everywhere (the course)


@dataclass
class LossConfig:
    lambda_noobj: float = 10.0  # BCE on the objectness logit of cells with target 0
    lambda_obj: float = 1.0  # MSE of sigmoid(objectness) to the detached IoU, cells with target 1
    lambda_box: float = 10.0  # MSE of (sig(tx), sig(ty), tw, th) to (x, y, log w/a, log h/a)
    lambda_class: float = 1.0  # cross-entropy of the class logits, cells with target 1 (the course;
    #                            5 was tried as a default: README "Training recipe")
    max_log_wh: float = 10.0  # clamp of the raw width/height logit before exp(): e^10 ~ 22026
    obj_loss: Literal["bce", "mse"] = "bce"  # objectness term against the IoU target: "bce"
    #                        (BCE-with-logits) or "mse" (the course's exact term, whose gradient
    #                        vanishes once sigmoid(obj) is small; README "Objectness loss")
    obj_balance: bool = False  # weight the objectness terms 0.4 / 1 / 4 on strides 32 / 16 / 8
    #                            (YOLOv5's balance); off: equal, the course
    lambda_iou: float = 0.0  # weight of a box-IoU loss (iou_loss) beside the MSE box term; 0: off
    iou_loss: Literal["giou", "ciou"] = "giou"  # 1 - GIoU or 1 - CIoU (torchvision.ops) of the
    #                                            decoded box with its target, cells with target 1
    label_smoothing: float = 0.0  # of the class cross-entropy, in [0, 1); 0: the course


@dataclass
class PostprocessConfig:
    conf_threshold: float = 0.05  # score = sigmoid(obj) * max softmax(class); keep score > this
    iou_threshold: float = 0.45  # class-aware NMS IoU threshold
    max_detections: int = 300  # per image, after NMS, highest scores first (Ultralytics' 300; VOC's
    #                           devkit has no cap, COCO counts 100)
    class_agnostic: bool = False  # True: one NMS over all classes
    pre_nms_top_k: int | None = None  # per image, keep only this many best candidates before NMS


@dataclass
class TargetConfig:
    ignore_iou: float = 0.5  # shape IoU above which a non-assigned free anchor slot is ignored (-1)
    anchor_ratio: float = 0.0  # more positives: after the course's rule, a box also owns every free
    #                            or ignored slot of its cell whose anchor's sides are within this
    #                            factor of the box's (YOLOv5 uses 4); 0: the course's rule alone


@dataclass
class OptimConfig:
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"  # the optimiser
    lr: float = 1e-3  # peak learning rate of the one-cycle schedule (or the constant LR), in (0, 10]
    weight_decay: float = 5e-4  # on convolution weights only (none on BatchNorm and biases)
    momentum: float = 0.9  # SGD's (Nesterov) momentum, in [0, 1)
    decay_all: bool = False  # weight decay on every parameter, BatchNorm and biases too (the course)
    one_cycle: bool = True  # one-cycle schedule over all steps (schedule's shape); off: constant LR
    schedule: Literal["cosine", "course"] = "cosine"  # cosine: from lr/25 up (pct_start), down to
    #                  lr/2.5e5; course: torch's OneCycleLR as the course calls it (linear, up over
    #                  5 epochs from lr/100, down to lr/1e4, Adam's beta1 cycled 0.95-0.85)
    pct_start: float = 0.3  # fraction of the steps the cosine one-cycle rises, in (0, 1)
    warmup_epochs: float = 0.0  # linear warm-up from 0 to the peak LR over these epochs, then the
    #                             cosine fall (replaces the one-cycle's rise); 0: the cosine one-cycle
    warmup_bias_lr: float = 0.0  # during warm-up the biases start at this LR and fall linearly to
    #                             the schedule's (e.g. 0.01); 0: as every other parameter
    ema: bool = True  # validate and save an exponential moving average of the weights
    ema_decay: float = 0.9999  # EMA decay, in (0, 1)
    ema_tau: float = 2000.0  # EMA warm-up in steps: decay_t = decay * (1 - exp(-t / tau))
    max_nonfinite: int = 50  # stop the run after this many non-finite steps in a row


# The detections every mAP of this project is computed from (validation during training,
# ``python -m yolo.evaluate``, the Evaluate page): a low candidate floor (Ultralytics' validation
# uses the same 0.001), the 1000 best candidates entering NMS, at most 300 kept per image (VOC's
# devkit counts every detection; Ultralytics keeps 300).
EVAL_NMS = PostprocessConfig(conf_threshold=0.001, iou_threshold=0.45, max_detections=300,
                             pre_nms_top_k=1000)


@dataclass
class ValConfig:
    map_every: int = 1  # validation mAP@0.5 every k epochs (0: never; the last epoch always)
    acc_threshold: float = 0.05  # objectness threshold of the cell accuracies, in [0, 1]
    # The detections validation mAP is computed from (EVAL_NMS, as every other evaluation).
    nms: PostprocessConfig = field(default_factory=lambda: replace(EVAL_NMS))


@dataclass
class ModuleConfig:
    """Every setting of the LightningModule (``yolo.lit.YoloLitModule``), one group per concern."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    val: ValConfig = field(default_factory=ValConfig)


# Training recipes: the settings of the loss, assignment, initialisation and schedule. "project" is
# the defaults (each departure from the course a flag, README "Training recipe"); "course" is the
# course's own: MSE objectness, one anchor per box and scale, PyTorch's init, Adam with L2 weight
# decay 1e-4 on every parameter, torch's OneCycleLR (max LR 1e-3, 5 epochs up from 1/100, linear,
# down to 1/1e4), no EMA, no gradient clipping. Applied after the preset, before explicit flags;
# grad_clip is a TrainConfig setting (yolo.trainer), the rest are ModuleConfig leaves.
RECIPES: dict[str, dict] = {
    "project": {},
    "course": dict(
        obj_prior=0.0, obj_loss="mse", obj_balance=False, lambda_noobj=10.0, lambda_obj=1.0,
        lambda_box=10.0, lambda_class=1.0, lambda_iou=0.0, label_smoothing=0.0, ignore_iou=0.5,
        anchor_ratio=0.0, optimizer="adam", lr=1e-3, weight_decay=1e-4, decay_all=True,
        one_cycle=True, schedule="course", warmup_epochs=0.0, warmup_bias_lr=0.0, ema=False,
        grad_clip=0.0,
    ),
}


# ---------------------------------------------------------------------------------------------
# Nested configs addressed by their leaf names: a flag, a preset entry and a saved hyper-parameter
# all name a setting by its field name (``lr``, ``ema_decay``), which is unique across the tree.
def leaves(config) -> dict[str, Any]:
    """Every leaf setting of a nested config dataclass by field name, e.g. ``{"width": 1.0, ...}``.

    Raises ValueError when two leaves share a name (they could not be told apart)."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        found = leaves(value) if is_dataclass(value) else {f.name: value}
        clash = out.keys() & found.keys()
        if clash:
            raise ValueError(f"{type(config).__name__}: setting name(s) {sorted(clash)} used twice")
        out.update(found)
    return out


def override(config, **values):
    """A copy of the nested ``config`` with the leaves named in ``values`` replaced.

    Raises TypeError for a name that is no leaf of ``config``."""
    unknown = set(values) - leaves(config).keys()
    if unknown:
        raise TypeError(f"{type(config).__name__} has no setting {sorted(unknown)}")
    changes = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            inner = {k: v for k, v in values.items() if k in leaves(value)}
            if inner:
                changes[f.name] = override(value, **inner)
        elif f.name in values:
            changes[f.name] = values[f.name]
    return replace(config, **changes)


def literal_choices(config, name: str) -> tuple:
    """The values allowed for the ``Literal[...]`` leaf ``name`` of the nested ``config``."""
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            found = literal_choices(value, name)
            if found:
                return found
        elif f.name == name:
            kind = get_type_hints(type(config))[name]
            return get_args(kind) if get_origin(kind) is Literal else ()
    return ()


def from_dict(cls, data: dict):
    """The nested dataclass ``cls`` from ``dataclasses.asdict`` output (missing keys: defaults)."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - known.keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)}")
    types = get_type_hints(cls)
    return cls(**{k: from_dict(types[k], v) if is_dataclass(types[k]) and isinstance(v, dict) else v
                  for k, v in data.items()})


def field_comments(cls) -> dict[str, str]:
    """The ``# comment`` of each field of dataclass ``cls`` (continuation lines joined), read from
    its source: the one place a setting is described. Missing source gives {}."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in fields(cls)}
    out: dict[str, str] = {}
    current = None
    for line in lines:
        head = re.match(r"\s+(\w+)\s*:", line)
        if head and head.group(1) in names:
            current = head.group(1)
            _, _, comment = line.partition("  # ")
            out[current] = comment.strip()
        elif current and re.match(r"\s+#\s\s", line) and out.get(current):
            out[current] += " " + line.strip().lstrip("#").strip()  # a continuation: "#", 2+ spaces
        else:
            current = None
    return out


# ---------------------------------------------------------------------------------------------
# Logged metric names: the trainer writes these and the dashboard reads them. A metric is logged
# as f"{stage}/{key}" with stage in STAGES.
STAGES: tuple[str, ...] = ("train", "val", "test")
LOSS_TOTAL = "loss"
LOSS_TERMS: tuple[str, ...] = ("loss_box", "loss_obj", "loss_noobj", "loss_cls")
LOSS_IOU = "loss_iou"  # logged only when LossConfig.lambda_iou > 0
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
