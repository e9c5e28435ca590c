"""This project's own weight files: Lightning training checkpoints (written by ``train.py``
through ``yolo.lit``) and their bare export (``save_weights``). No Lightning import: a file is
read with ``torch.load(weights_only=True)`` (``yolo.weights.state``), never unpickled freely.

A training checkpoint is a dict with
    "state_dict"        parameters; the network under "model.", its EMA copy under "ema.module."
    "hyper_parameters"  plain values, among them "num_classes", "width", "class_names", "anchors"
A bare export (``save_weights``) is {"model": network state_dict, "hyper_parameters": {...}}.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch import Tensor

from yolo.config import ANCHORS, MAX_IMAGE_SIZE, VOC_CLASSES
from yolo.filelimits import check_zip_expansion
from yolo.model import YOLOv3
from yolo.weights.state import (
    MAX_WIDTH, PRED_WEIGHTS, STEM_CONV, CheckpointError, CheckpointWarning, ModelState, WeightsFile, architecture,
    expected_shapes, load_torch_file, nonfinite, warn_nonfinite,
)

MODEL_PREFIX = "model."
EMA_PREFIX = "ema.module."
TRAINING_KEYS = ("epoch", "global_step", "state_dict", "optimizer_states")  # what Lightning resumes from


def read(file: WeightsFile, prefer_ema: bool = True) -> ModelState | None:
    """The format's entry for ``yolo.weights.read_checkpoint``: a dict with "state_dict" (a
    Lightning checkpoint) or "model" (an export) -> its checked ``ModelState``; None otherwise."""
    raw = file.raw()
    if "state_dict" not in raw and "model" not in raw:
        return None
    return from_lightning(raw, file.path, prefer_ema)


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}


def _number(hparams: dict, key: str, path: Path, kind: type = float) -> float | int | None:
    """hparams[key] as a finite number of ``kind`` (None when absent); CheckpointError otherwise."""
    value = hparams.get(key)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (kind is int and float(value) != int(value)):
        raise CheckpointError(f"{path}: hyper-parameter {key!r} must be a finite {kind.__name__}, "
                              f"found {value!r} ({type(value).__name__})")
    return kind(value)


def _check_anchors(anchors, path: Path, unit: str = "fraction") -> list:
    """3 scales x 3 anchors x (w, h), positive finite fractions of the image (at most 10), or
    pixels (at most ``MAX_IMAGE_SIZE`` * 10) when ``unit`` is "pixels"."""
    top = 10 * (MAX_IMAGE_SIZE if unit == "pixels" else 1)
    try:
        t = torch.as_tensor(anchors, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: hyper-parameter 'anchors' is not a table of numbers ({err})") from None
    if t.shape != (3, 3, 2) or not bool(torch.isfinite(t).all()) or not bool(((t > 0) & (t <= top)).all()):
        raise CheckpointError(f"{path}: hyper-parameter 'anchors' must be 3 scales x 3 anchors x (w, h) "
                              f"positive {'pixels' if unit == 'pixels' else 'fractions of the image'}, "
                              f"found shape {tuple(t.shape)}")
    return t.tolist()


def from_lightning(raw: dict, path: Path, prefer_ema: bool = True) -> ModelState:
    """A loaded checkpoint dict (training checkpoint or export) -> ModelState, checked before any
    model is built: the class count and width come from the tensor shapes, every tensor has the
    shape YOLOv3 of that count and width has (on the meta device), and hyper-parameters that are
    malformed or disagree with the weights raise ``CheckpointError``. NaN or Inf weights give a
    ``CheckpointWarning`` and are listed in ``ModelState.nonfinite``."""
    hparams = raw.get("hyper_parameters")
    if hparams is None:
        hparams = {}
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{path}: 'hyper_parameters' must be a dict, found {type(hparams).__name__}")
    hparams = dict(hparams)
    if "state_dict" in raw:
        full = raw["state_dict"]
        if not isinstance(full, dict):
            raise CheckpointError(f"{path}: 'state_dict' must be a dict, found {type(full).__name__}")
        ema = _strip(full, EMA_PREFIX)
        state, source = (ema, "ema") if (ema and prefer_ema) else (_strip(full, MODEL_PREFIX), "model")
    elif "model" in raw:
        state, source = raw["model"], "model"
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: 'model' must be a dict of tensors, found {type(state).__name__}")
    else:
        raise CheckpointError(
            f"{path}: expected a 'state_dict' (Lightning checkpoint) or 'model' (exported weights) "
            f"entry, found keys {sorted(map(str, raw))[:8]}"
        )
    if not state or not any(str(k).endswith("pred.weight") for k in state):
        raise CheckpointError(f"{path}: no YOLOv3 weights found (no prediction layers in the state)")

    file_classes, file_width = architecture(state, path)
    num_classes = _number(hparams, "num_classes", path, int)
    width = _number(hparams, "width", path, float)
    claimed = f"width {width if width is not None else '-'}, {num_classes if num_classes is not None else '-'} classes"
    if width is not None and not 0 < width <= MAX_WIDTH:
        raise CheckpointError(f"{path}: hyper-parameter width {width} is outside (0, {MAX_WIDTH}]")
    if not 0 < file_width <= MAX_WIDTH:
        raise CheckpointError(f"{path}: the weights are for width {file_width}, outside (0, {MAX_WIDTH}]")
    num_classes = file_classes if num_classes is None else num_classes
    width = file_width if width is None else width
    expected = expected_shapes(file_classes, width) if num_classes == file_classes else {}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise CheckpointError(
            f"{path}: the hyper-parameters ({claimed}) do not fit the model the weights describe "
            f"(width {file_width:g}, {file_classes} classes: {int(state[STEM_CONV].shape[0])} stem "
            f"channels, {int(state[PRED_WEIGHTS[0]].shape[0])} prediction channels)"
            + (f"; {len(set(found) ^ set(expected))} tensor names differ" if set(found) != set(expected) else "")
        )
    names = hparams.get("class_names")
    if names is None:
        names = VOC_CLASSES if num_classes == 20 else [f"class{i}" for i in range(num_classes)]
    if not isinstance(names, (list, tuple)) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: hyper-parameter 'class_names' must be {num_classes} strings, "
                              f"found {type(names).__name__} of length {len(names) if hasattr(names, '__len__') else '-'}")
    unit = hparams.get("anchor_unit", "fraction")
    if unit not in ("fraction", "pixels"):
        raise CheckpointError(f"{path}: hyper-parameter 'anchor_unit' must be 'fraction' or 'pixels', found {unit!r}")
    anchors = hparams.get("anchors")
    anchors = _check_anchors(anchors, path, unit) if anchors is not None else [list(map(list, s)) for s in ANCHORS]
    epoch = raw.get("epoch")
    bad = nonfinite(state)
    warn_nonfinite(bad, path)
    return ModelState(state, num_classes, width, list(names), anchors, source,
                      epoch if isinstance(epoch, int) else None, hparams, bad, _image_size(hparams, path),
                      anchor_unit=unit)


def _image_size(hparams: dict, path: Path) -> int | None:
    """hparams["image_size"] (a multiple of 32 up to MAX_IMAGE_SIZE), None when absent (older checkpoints)."""
    size = _number(hparams, "image_size", path, int)
    if size is not None and (size <= 0 or size % 32 or size > MAX_IMAGE_SIZE):
        raise CheckpointError(f"{path}: hyper-parameter image_size must be a multiple of 32 in "
                              f"[32, {MAX_IMAGE_SIZE}], got {size}")
    return size


def saved_image_size(path: str | Path) -> int | None:
    """The input size a checkpoint was validated at, read from its hyper-parameters without
    loading its weights (memory-mapped); None for a file that does not say (or cannot be read)."""
    try:
        check_zip_expansion(path)
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        hparams = raw.get("hyper_parameters") if isinstance(raw, dict) else None
        return _image_size(hparams, Path(path)) if isinstance(hparams, dict) else None
    except Exception:  # not a zip checkpoint, unreadable, a bad value: the caller's fallback
        return None


def read_training_checkpoint(path: str | Path) -> tuple[ModelState, int]:
    """A checkpoint ``--resume`` can continue: everything ``read_checkpoint`` checks, plus
    Lightning's training state. Returns (the model state, its global step); ``CheckpointError``
    (e.g. for exported weights, which hold no optimiser) otherwise."""
    path = Path(path)
    raw = load_torch_file(path)
    missing = [k for k in TRAINING_KEYS if k not in raw]
    if missing:
        what = "exported weights" if "model" in raw else "not a training checkpoint"
        raise CheckpointError(f"{path} cannot be resumed: {what} (missing {', '.join(missing)}); "
                              "--resume takes a last.ckpt or best-*.ckpt written by train.py")
    step = raw["global_step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: 'global_step' must be a non-negative integer, found {step!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)  # the trainer reports NaN weights itself
        state = from_lightning(raw, path, prefer_ema=False)
    return state, step


def optimiser_group_sizes(path: str | Path) -> list[int]:
    """How many parameters each of the saved optimiser's parameter groups holds (first optimiser
    of a Lightning training checkpoint), e.g. ``[75, 147]``; ``[]`` when none was saved.
    ``CheckpointError`` when the entry is not Lightning's layout."""
    path = Path(path)
    raw = load_torch_file(path)
    states = raw.get("optimizer_states") or []
    try:
        groups = states[0]["param_groups"] if states else []
        return [len(g["params"]) for g in groups]
    except (KeyError, TypeError, IndexError) as err:
        raise CheckpointError(f"{path}: unreadable optimiser state ({type(err).__name__}: {err})") from None


def save_weights(model: YOLOv3, path: str | Path, class_names: list[str] | None = None,
                 anchors: list | None = None, anchor_unit: str = "fraction") -> Path:
    """Export the network's weights and the plain values needed to rebuild it. ``anchors``: 3
    scales x 3 anchors x (w, h) in ``anchor_unit``: fractions of the image (default:
    ``yolo.config.ANCHORS``) or pixels (Darknet's, the same at every input size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hparams = {
        "num_classes": model.num_classes,
        "width": model.width,
        "class_names": list(class_names or VOC_CLASSES[: model.num_classes]),
        "anchors": torch.as_tensor(ANCHORS if anchors is None else anchors, dtype=torch.float64).tolist(),
        "anchor_unit": anchor_unit,
    }
    torch.save({"model": model.state_dict(), "hyper_parameters": hparams}, path)
    return path
