"""Every training setting checked before any work: one clear line naming the flag and its range.

``check_config(config)`` raises ``ConfigError`` at the first bad value; ``train.py`` turns it into
argparse's usual ``error:`` line and exit status 2, before a folder, a dataset index or a process
is created. Python callers of ``yolo.trainer.fit`` get the same checks.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from types import SimpleNamespace

from yolo.config import MAX_IMAGE_SIZE, leaves, literal_choices
from yolo.weights.state import MAX_WIDTH

MAX_SIZE = MAX_IMAGE_SIZE  # pixels: the stride-32 grid and the anchors are made for 320..608; 2048 is 24x 416's pixels
MAX_LR = 10.0  # any larger peak learning rate diverges at once
PRECISIONS = ("auto", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64")


class ConfigError(ValueError):
    """A training setting outside its allowed range; the message names the flag."""


def flag(field: str) -> str:
    """``"batch_size"`` -> ``"--batch-size"``."""
    return "--" + field.replace("_", "-")


def _integer(config, field: str, low: int, high: int | None = None) -> None:
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ConfigError(f"{flag(field)} must be {allowed}, got {value!r}")


def _real(config, field: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    value = getattr(config, field)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{flag(field)} must be a number in {span}, got {value!r}")


def _size(config, field: str) -> None:
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or not 32 <= value <= MAX_SIZE or value % 32:
        raise ConfigError(f"{flag(field)} must be a multiple of 32 in [32, {MAX_SIZE}], got {value!r}")


def _limit(config, field: str, low: float) -> None:
    value = getattr(config, field)
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (isinstance(value, float) and value > 1):
        raise ConfigError(f"{flag(field)} must be a batch count >= {max(low, 1):g} or a fraction in "
                          f"({low:g}, 1], got {value!r}")


def _choice(config, field: str, root) -> None:
    """A ``Literal[...]`` setting: one of its values."""
    allowed = literal_choices(root, field)
    value = getattr(config, field)
    if value not in allowed:
        raise ConfigError(f"{flag(field)} must be one of {', '.join(allowed)}, got {value!r}")


def check_name(name) -> None:
    if not isinstance(name, str) or not name.strip() or any(c in name for c in ("/", "\\", "\0", os.sep)) or ".." in name:
        raise ConfigError(f"--name must be a plain folder name (no '/', '\\' or '..'), got {name!r}")


def available_devices(accelerator: str) -> tuple[str, int]:
    """("cpu", os.cpu_count()) or ("cuda", torch.cuda.device_count()) for ``accelerator``."""
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda", torch.cuda.device_count()
    return "cpu", os.cpu_count() or 1


def check_devices(devices, accelerator: str) -> None:
    """``--devices``: auto, -1 (all), a count, or (CUDA) a list of indices like 0,1, within what
    the machine has."""
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        raise ConfigError(f"--accelerator must be auto, cpu, gpu or cuda, got {accelerator!r}")
    kind, have = available_devices(accelerator)
    text = str(devices).strip().strip("[]")
    if text in ("auto", "-1"):
        return
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--devices must be auto, -1, a count or a list of indices like 0,1; got {devices!r}")
    if kind == "cuda" and have == 0:
        raise ConfigError("--accelerator gpu: no CUDA device is visible on this machine")
    what = "CPU cores (one process each)" if kind == "cpu" else "CUDA devices"
    if len(parts) == 1 and "," not in text:
        count = int(parts[0])
        if not 1 <= count <= have:
            raise ConfigError(f"--devices {count}: this machine has {have} {what}; choose 1..{have} (or auto)")
        return
    if kind == "cpu":
        raise ConfigError(f"--devices on the CPU is a process count (1..{have}), not a list; got {devices!r}")
    bad = [int(p) for p in parts if int(p) >= have]
    if bad:
        raise ConfigError(f"--devices {devices}: no CUDA device {bad[0]}; this machine has {have} (0..{have - 1})")


def check_data(paths) -> None:
    """``--data``: each an existing folder in a known layout (or a COCO JSON file) whose class
    names can be read."""
    from yolo.data.layout import DataLayoutError, detect_format, load_classes

    for path in paths:
        p = Path(str(path)).expanduser()
        if p.is_file() and p.suffix.lower() != ".json":  # a COCO JSON may be given by path
            raise ConfigError(f"--data {path}: is a file; give the dataset folder (the one holding VOCdevkit/)")
        if not p.exists():
            raise ConfigError(f"--data {path}: no such folder")
        try:
            detect_format(p)
            load_classes(p)
        except DataLayoutError as err:
            raise ConfigError(f"--data {path}: {str(err).splitlines()[0]}") from None


def check_sets(paths, specs, option: str) -> None:
    """``--train-sets`` / ``--val-sets``: every split spec exists in at least one ``--data`` folder
    (and its split list is not a link out of the dataset)."""
    from yolo.data.layout import DataLayoutError, resolve_sources

    for spec in specs or ():
        errors = []
        for path in paths:
            try:
                resolve_sources(Path(str(path)).expanduser(), [spec])
                break
            except DataLayoutError as err:
                errors.append(str(err).splitlines()[0])
        else:
            raise ConfigError(f"{option} {spec}: {'; '.join(errors)}")


def check_resume(resume, width: float) -> None:
    """``--resume PATH``: a training checkpoint of this project at the configured width."""
    if resume in (None, "", "auto"):
        return
    from yolo.weights import CheckpointError, read_training_checkpoint

    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise ConfigError(f"--resume {resume}: no such file (use --resume auto for the newest last.ckpt of --name)")
    try:
        state, _ = read_training_checkpoint(path)
    except CheckpointError as err:
        raise ConfigError(f"--resume: {err}") from None
    from yolo.model import scaled_channels

    if scaled_channels(1024, width) != scaled_channels(1024, state.width):
        raise ConfigError(f"--resume {resume}: the checkpoint was trained at width {state.width:g}, "
                          f"but --width is {width:g}; pass --width {state.width:g}")


def check_anchors(value, init=None) -> None:
    """``--anchors``: ``course``, ``auto``, ``init`` (needs ``--init``) or an anchors file in fractions
    of the input side, read here (``yolo.anchors.read_anchors``: small regular JSON), before any
    dataset is indexed."""
    if value in ("course", "auto"):
        return
    if value == "init":
        if not init:
            raise ConfigError("--anchors init takes the anchors of the --init file: give --init FILE")
        return
    from yolo.anchors import read_anchors

    try:
        anchors = read_anchors(str(value))
    except ValueError as err:
        raise ConfigError(f"--anchors: {err} (or use course / auto)") from None
    if anchors.unit != "fraction":
        raise ConfigError(f"--anchors {value}: {anchors.unit} anchors; training uses fractions of the input "
                          "side (write the file with python -m yolo.data anchors DATA --out FILE)")


def check_config(train_config) -> None:
    """Check every setting of a ``TrainConfig`` (its nested ``module`` included, each by its leaf
    name as ``leaves`` gives it); raises ``ConfigError`` naming the first bad flag."""
    config = SimpleNamespace(**leaves(train_config))
    _integer(config, "epochs", 1)
    _integer(config, "batch_size", 1)
    for field in ("min_size", "max_size", "val_size"):
        _size(config, field)
    if config.min_size > config.max_size:
        raise ConfigError(f"--min-size {config.min_size} is larger than --max-size {config.max_size}")
    _real(config, "mosaic", 0.0, 1.0)
    # width: above MAX_WIDTH (2.0, 4x the course's channels, ~246M parameters) nothing fits a GPU
    _real(config, "width", 0.0, MAX_WIDTH, low_open=True)
    _real(config, "lr", 0.0, MAX_LR, low_open=True)
    _real(config, "weight_decay", 0.0, 1.0)
    _real(config, "ema_decay", 0.0, 1.0, low_open=True, high_open=True)
    _real(config, "ema_tau", 0.0, math.inf, low_open=True, high_open=True)
    _real(config, "momentum", 0.0, 1.0, high_open=True)
    _real(config, "pct_start", 0.0, 1.0, low_open=True, high_open=True)
    _integer(config, "max_nonfinite", 1)
    for field in ("lambda_noobj", "lambda_obj", "lambda_box", "lambda_class"):
        _real(config, field, 0.0, math.inf, high_open=True)
    _real(config, "max_log_wh", 0.0, 100.0, low_open=True)
    # the recipe's options (README "Training recipe")
    _real(config, "obj_prior", 0.0, 1000.0)
    _real(config, "lambda_iou", 0.0, math.inf, high_open=True)
    _real(config, "label_smoothing", 0.0, 1.0, high_open=True)
    _real(config, "warmup_epochs", 0.0, 1000.0)  # a run shorter than it warms up all along
    _real(config, "warmup_bias_lr", 0.0, MAX_LR)
    if config.anchor_ratio != 0:
        _real(config, "anchor_ratio", 1.0, 100.0, low_open=True)
    for field in ("ignore_iou", "acc_threshold", "conf_threshold", "iou_threshold"):
        _real(config, field, 0.0, 1.0)
    _integer(config, "max_detections", 1)
    if config.pre_nms_top_k is not None:
        _integer(config, "pre_nms_top_k", 1)
    for field in ("optimizer", "obj_loss", "format", "iou_loss", "schedule", "recipe"):
        _choice(config, field, train_config)
    _real(config, "grad_clip", 0.0, math.inf, high_open=True)
    _integer(config, "map_every", 0)
    _integer(config, "workers", 0, 256)
    _integer(config, "num_nodes", 1)
    _integer(config, "checkpoint_every", 1)
    _integer(config, "seed", 0, 2**32 - 1)
    _limit(config, "limit_train_batches", 0)
    _limit(config, "limit_val_batches", 0)
    if config.limit_train_batches is not None and config.limit_train_batches <= 0:
        raise ConfigError(f"--limit-train-batches must be > 0, got {config.limit_train_batches!r}")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}; got {config.precision!r}")
    check_name(config.name)
    log_dir = Path(str(config.log_dir)).expanduser()
    if log_dir.exists() and not log_dir.is_dir():
        raise ConfigError(f"--log-dir {config.log_dir}: is a file, not a folder")
    check_devices(config.devices, str(config.accelerator))
    if config.data:
        check_data(config.data)
        check_sets(config.data, config.train_sets, "--train-sets")
        check_sets(config.data, config.val_sets, "--val-sets")
        if not config.val_sets:
            raise ConfigError(f"--data {config.data[0]}: no validation split found (no val, valid or test); "
                              "name one with --val-sets (a split of --data, or for COCO a JSON path relative "
                              "to the dataset folder, e.g. annotations/instances_val.json)")
        if not config.train_sets:
            raise ConfigError("--train-sets: none given")
    elif config.preset != "demo":
        raise ConfigError("--data is required: a VOCdevkit folder (or its parent) or the Kaggle layout; "
                          "--preset demo trains on the synthetic demo dataset")
    check_anchors(config.anchors, config.init)
    check_resume(config.resume, config.width)
    _integer(config, "freeze_backbone", 0)
    if config.init and not Path(str(config.init)).expanduser().is_file():
        raise ConfigError(f"--init {config.init}: no such file")
