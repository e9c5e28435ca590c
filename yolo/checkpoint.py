"""Safe checkpoint reading: ``torch.load(weights_only=True)``, never arbitrary unpickling.

A training checkpoint (written by Lightning through ``yolo.lit``) is a dict with
    "state_dict"        parameters; the network under "model.", its EMA copy under "ema.module."
    "hyper_parameters"  plain values, among them "num_classes", "width", "class_names", "anchors"
A bare export (``save_weights``) is {"model": network state_dict, "hyper_parameters": {...}}.
"""

from __future__ import annotations

import math
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from yolo.config import ANCHORS, VOC_CLASSES
from yolo.model import YOLOv3

MODEL_PREFIX = "model."
EMA_PREFIX = "ema.module."


class CheckpointError(ValueError):
    """A file that is not a usable YOLOv3 checkpoint; the message says what was expected."""


@dataclass
class ModelState:
    """What a checkpoint holds for inference."""

    state_dict: dict[str, Tensor]  # YOLOv3 state_dict (no prefix)
    num_classes: int
    width: float
    class_names: list[str]
    anchors: list = field(default_factory=lambda: [list(map(list, s)) for s in ANCHORS])
    source: str = "model"  # "ema" when the EMA weights were taken
    epoch: int | None = None
    hparams: dict = field(default_factory=dict)
    nonfinite: list[str] = field(default_factory=list)  # names of weight tensors holding NaN/Inf
    image_size: int | None = None  # the input side it was validated at (hparams "image_size"), if saved


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}


# The widest model a checkpoint (or --width) may describe: width 2 is 4x the course model's
# channels, ~246M parameters (~1 GB of float32 weights); anything wider is a typo or a hostile file.
MAX_WIDTH = 2.0
DEEPEST_CONV = "layers.down5.conv.weight"  # 1024 x width output channels: the finest width reading
STEM_CONV = "layers.stem.conv.weight"
PRED_WEIGHTS = tuple(f"layers.head{s}_out.predict.pred.weight" for s in (32, 16, 8))


class CheckpointWarning(UserWarning):
    """A usable checkpoint with something worth knowing (e.g. NaN or Inf weights)."""


def _load_raw(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path) and _first_byte(path) != b"\x80":  # neither torch.save format
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a torch.save zip nor a pickle)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects beyond tensors and plain values, "
            f"and loading it could run code ({str(err).splitlines()[0]})"
        ) from err
    except Exception as err:  # truncated file, not a torch file at all, ...
        raise CheckpointError(f"{path} is not a PyTorch checkpoint: {err}") from err
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(raw).__name__}")
    return raw


def _first_byte(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1)
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}") from None


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


def _check_anchors(anchors, path: Path) -> list:
    """3 scales x 3 anchors x (w, h), positive finite fractions of the image (at most 10)."""
    try:
        t = torch.as_tensor(anchors, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: hyper-parameter 'anchors' is not a table of numbers ({err})") from None
    if t.shape != (3, 3, 2) or not bool(torch.isfinite(t).all()) or not bool(((t > 0) & (t <= 10)).all()):
        raise CheckpointError(f"{path}: hyper-parameter 'anchors' must be 3 scales x 3 anchors x (w, h) "
                              f"positive fractions of the image, found shape {tuple(t.shape)}")
    return t.tolist()


def _architecture(state: dict, path: Path) -> tuple[int, float]:
    """(classes, width) read from the tensor shapes alone: prediction channels 3 * (5 + C), and
    the deepest conv's 1024 x width channels."""
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: the weights must map names to tensors")
    missing = [k for k in (STEM_CONV, DEEPEST_CONV, *PRED_WEIGHTS) if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not this project's YOLOv3 weights (missing {', '.join(missing)})")
    outs = {int(state[k].shape[0]) if state[k].dim() == 4 else -1 for k in PRED_WEIGHTS}
    out = outs.pop() if len(outs) == 1 else -1
    if out < 18 or out % 3:
        raise CheckpointError(f"{path}: prediction layers have {sorted(outs | {out})} output channels; "
                              "expected one count 3 * (5 + classes)")
    channels = int(state[DEEPEST_CONV].shape[0])
    return out // 3 - 5, channels / 1024


def _expected_shapes(num_classes: int, width: float) -> dict[str, tuple]:
    """Every tensor shape of YOLOv3(num_classes, width), built on the meta device (no memory)."""
    with torch.device("meta"):
        model = YOLOv3(num_classes, width)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _nonfinite(state: dict[str, Tensor]) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def read_checkpoint(path: str | Path, prefer_ema: bool = True) -> ModelState:
    """Read a checkpoint safely, check it, and pick the network weights (EMA when present and preferred).

    Checked before any model is built: the file is a dict of tensors and plain values; the class
    count and width come from the tensor shapes (prediction layers, deepest conv), every tensor
    has the shape YOLOv3 of that count and width has (compared on the meta device, which
    allocates nothing), and hyper-parameters that are malformed or disagree with the weights are
    refused, all with ``CheckpointError``. NaN or Inf weights give a ``CheckpointWarning`` and
    are listed in ``ModelState.nonfinite``.
    """
    path = Path(path)
    from yolo import course, darknet  # other formats (yolo.darknet, yolo.course); they import this module

    if path.is_file() and darknet.is_darknet_file(path):
        return _checked(darknet.read_weights(path, backbone_ok=False), path)
    raw = _load_raw(path)
    try:
        converted = course.from_course(raw, str(path))
    except CheckpointError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path}: a course-layout checkpoint that cannot be read ({type(err).__name__}: {err})") from None
    if converted is not None:
        return _checked(converted, path)
    return _model_state(raw, path, prefer_ema)


def _checked(state: ModelState, path: Path) -> ModelState:
    """A state converted from another format (Darknet, the course), held to the same checks as
    this project's checkpoints: tensor shapes of YOLOv3 at the class count and width they describe,
    and a ``CheckpointWarning`` for NaN or Inf weights."""
    classes, width = _architecture(state.state_dict, path)
    if not 0 < width <= MAX_WIDTH:
        raise CheckpointError(f"{path}: the weights are for width {width}, outside (0, {MAX_WIDTH}]")
    found = {k: tuple(v.shape) for k, v in state.state_dict.items()}
    if found != _expected_shapes(classes, width):
        raise CheckpointError(f"{path}: the converted weights do not have the shapes of YOLOv3 at width "
                              f"{width:g} with {classes} classes")
    bad = _nonfinite(state.state_dict)
    if bad:
        warnings.warn(f"{path}: {len(bad)} weight tensors hold NaN or Inf (first: {bad[0]}); "
                      "its detections will be meaningless", CheckpointWarning, stacklevel=3)
    state.nonfinite = bad
    return state


def _model_state(raw: dict, path: Path, prefer_ema: bool) -> ModelState:
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

    file_classes, file_width = _architecture(state, path)
    num_classes = _number(hparams, "num_classes", path, int)
    width = _number(hparams, "width", path, float)
    claimed = f"width {width if width is not None else '-'}, {num_classes if num_classes is not None else '-'} classes"
    if width is not None and not 0 < width <= MAX_WIDTH:
        raise CheckpointError(f"{path}: hyper-parameter width {width} is outside (0, {MAX_WIDTH}]")
    if not 0 < file_width <= MAX_WIDTH:
        raise CheckpointError(f"{path}: the weights are for width {file_width}, outside (0, {MAX_WIDTH}]")
    num_classes = file_classes if num_classes is None else num_classes
    width = file_width if width is None else width
    expected = _expected_shapes(file_classes, width) if num_classes == file_classes else {}
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
    anchors = hparams.get("anchors")
    anchors = _check_anchors(anchors, path) if anchors is not None else [list(map(list, s)) for s in ANCHORS]
    epoch = raw.get("epoch")
    bad = _nonfinite(state)
    if bad:
        warnings.warn(f"{path}: {len(bad)} weight tensors hold NaN or Inf (first: {bad[0]}); "
                      "its detections will be meaningless", CheckpointWarning, stacklevel=3)
    return ModelState(state, num_classes, width, list(names), anchors, source,
                      epoch if isinstance(epoch, int) else None, hparams, bad, _image_size(hparams, path))


def _image_size(hparams: dict, path: Path) -> int | None:
    """hparams["image_size"] (a positive multiple of 32), None when absent (older checkpoints)."""
    size = _number(hparams, "image_size", path, int)
    if size is not None and (size <= 0 or size % 32):
        raise CheckpointError(f"{path}: hyper-parameter image_size must be a positive multiple of 32, got {size}")
    return size


def saved_image_size(path: str | Path) -> int | None:
    """The input size a checkpoint was validated at, read from its hyper-parameters without
    loading its weights (memory-mapped); None for a file that does not say (or cannot be read)."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        hparams = raw.get("hyper_parameters") if isinstance(raw, dict) else None
        return _image_size(hparams, Path(path)) if isinstance(hparams, dict) else None
    except Exception:  # not a zip checkpoint, unreadable, a bad value: the caller's fallback
        return None


TRAINING_KEYS = ("epoch", "global_step", "state_dict", "optimizer_states")  # what Lightning resumes from


def read_training_checkpoint(path: str | Path) -> tuple[ModelState, int]:
    """A checkpoint ``--resume`` can continue: everything ``read_checkpoint`` checks, plus
    Lightning's training state. Returns (the model state, its global step); ``CheckpointError``
    (e.g. for exported weights, which hold no optimiser) otherwise."""
    path = Path(path)
    raw = _load_raw(path)
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
        state = _model_state(raw, path, prefer_ema=False)
    return state, step


def optimiser_group_sizes(path: str | Path) -> list[int]:
    """How many parameters each of the saved optimiser's parameter groups holds (first optimiser
    of a Lightning training checkpoint), e.g. ``[75, 147]``; ``[]`` when none was saved.
    ``CheckpointError`` when the entry is not Lightning's layout."""
    path = Path(path)
    raw = _load_raw(path)
    states = raw.get("optimizer_states") or []
    try:
        groups = states[0]["param_groups"] if states else []
        return [len(g["params"]) for g in groups]
    except (KeyError, TypeError, IndexError) as err:
        raise CheckpointError(f"{path}: unreadable optimiser state ({type(err).__name__}: {err})") from None


def load_into(model: YOLOv3, state: ModelState) -> YOLOv3:
    """Load ``state`` into ``model``; a clear error when class count or width differ."""
    if state.num_classes != model.num_classes or abs(state.width - model.width) > 1e-6:
        raise CheckpointError(
            f"checkpoint is for {state.num_classes} classes at width {state.width}, "
            f"but the model has {model.num_classes} classes at width {model.width}"
        )
    try:
        model.load_state_dict(state.state_dict)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit the model: {err}") from err
    return model


def build_model(state: ModelState) -> YOLOv3:
    """A YOLOv3 with the checkpoint's class count and width, its weights loaded, in eval mode."""
    return load_into(YOLOv3(state.num_classes, state.width), state).eval()


def save_weights(model: YOLOv3, path: str | Path, class_names: list[str] | None = None,
                 anchors: list | None = None) -> Path:
    """Export the network's weights and the plain values needed to rebuild it. ``anchors``: 3
    scales x 3 anchors x (w, h) fractions of the image (default: ``yolo.config.ANCHORS``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hparams = {
        "num_classes": model.num_classes,
        "width": model.width,
        "class_names": list(class_names or VOC_CLASSES[: model.num_classes]),
        "anchors": torch.as_tensor(ANCHORS if anchors is None else anchors, dtype=torch.float64).tolist(),
    }
    torch.save({"model": model.state_dict(), "hyper_parameters": hparams}, path)
    return path
