"""Safe checkpoint reading: ``torch.load(weights_only=True)``, never arbitrary unpickling.

A training checkpoint (written by Lightning through ``yolo.lit``) is a dict with
    "state_dict"        parameters; the network under "model.", its EMA copy under "ema.module."
    "hyper_parameters"  plain values, among them "num_classes", "width", "class_names", "anchors"
A bare export (``save_weights``) is {"model": network state_dict, "hyper_parameters": {...}}.
"""

from __future__ import annotations

import pickle
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


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def read_checkpoint(path: str | Path, prefer_ema: bool = True) -> ModelState:
    """Read a checkpoint safely and pick the network weights (EMA when present and preferred)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    from yolo import course, darknet  # other formats (yolo.darknet, yolo.course); they import this module

    if darknet.is_darknet_file(path):
        return darknet.read_weights(path, backbone_ok=False)
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
    if (converted := course.from_course(raw, str(path))) is not None:
        return converted

    hparams = dict(raw.get("hyper_parameters") or {})
    if "state_dict" in raw:
        full = raw["state_dict"]
        ema = _strip(full, EMA_PREFIX)
        state, source = (ema, "ema") if (ema and prefer_ema) else (_strip(full, MODEL_PREFIX), "model")
    elif "model" in raw:
        state, source = raw["model"], "model"
    else:
        raise CheckpointError(
            f"{path}: expected a 'state_dict' (Lightning checkpoint) or 'model' (exported weights) "
            f"entry, found keys {sorted(raw)[:8]}"
        )
    if not state or not any(k.endswith("pred.weight") for k in state):
        raise CheckpointError(f"{path}: no YOLOv3 weights found (no prediction layers in the state)")

    pred_weights = [v for k, v in state.items() if k.endswith("pred.weight")]
    inferred_classes = pred_weights[0].shape[0] // 3 - 5
    num_classes = int(hparams.get("num_classes", inferred_classes))
    stem = state.get("layers.stem.conv.weight")
    inferred_width = stem.shape[0] / 32 if stem is not None else 1.0
    width = float(hparams.get("width", inferred_width))
    names = list(hparams.get("class_names") or (VOC_CLASSES if num_classes == 20 else
                                                [f"class{i}" for i in range(num_classes)]))
    anchors = hparams.get("anchors") or [list(map(list, s)) for s in ANCHORS]
    return ModelState(state, num_classes, width, names, anchors, source, raw.get("epoch"), hparams)


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


def save_weights(model: YOLOv3, path: str | Path, class_names: list[str] | None = None) -> Path:
    """Export the network's weights and the plain values needed to rebuild it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hparams = {
        "num_classes": model.num_classes,
        "width": model.width,
        "class_names": list(class_names or VOC_CLASSES[: model.num_classes]),
        "anchors": [list(map(list, s)) for s in ANCHORS],
    }
    torch.save({"model": model.state_dict(), "hyper_parameters": hparams}, path)
    return path
