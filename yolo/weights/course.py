"""The course's checkpoints -> this project's model, matched by structure.

The course saves ``{"state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}``
(``checkpoint.pth.tar``), its model a ``ModuleList`` ``layers`` of CNNBlock (``conv``, ``bn``),
ResidualBlock (``layers.<j>.<0|1>`` CNNBlocks) and ScalePrediction (``pred.0``, ``pred.1``); the
last conv of each ScalePrediction has a bias and a BatchNorm it never uses. The course's
Lightning ports keep the same module under a prefix (``model.layers.0.conv.weight``). Both hold
the same 75 convolutions in the same order as ``yolo.model.YOLOv3``: they are copied one by one in
that order (``yolo.weights.convs``), shapes checked, the unused BatchNorm dropped. The file itself
is read by ``yolo.weights.state.WeightsFile`` (``weights_only=True``), never unpickled freely.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from yolo.filelimits import check_class_count
from yolo.weights.classes import default_class_names
from yolo.weights.convs import yolo_specs
from yolo.weights.state import CheckpointError, ModelState, WeightsFile, checked, within_limits

_STEM = re.compile(r"^(?P<prefix>(?:.*\.)?)layers\.0\.conv\.weight$")
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _natural(key: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in key.split("."))


def course_prefix(state: dict) -> str | None:
    """The prefix under which a course model's ``layers.0.conv.weight`` sits ("" or "model." ...);
    None when ``state`` is not a course layout (this project's keys are ``layers.stem...``)."""
    found = sorted((m.group("prefix") for k in state if isinstance(k, str) and (m := _STEM.match(k))),
                   key=lambda p: (p.startswith("ema") is False, len(p)))
    return found[0] if found else None


def read(file: WeightsFile, prefer_ema: bool = True) -> ModelState | None:
    """The format's entry for ``yolo.weights.read_checkpoint``: a PyTorch file in the course's
    layout -> its checked ``ModelState``; None for any other layout. A course layout that cannot be
    converted raises ``CheckpointError``."""
    raw = file.raw()
    try:
        converted = from_course(raw, str(file.path))
    except CheckpointError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{file.path}: a course-layout checkpoint that cannot be read "
                              f"({type(err).__name__}: {err})") from None
    return None if converted is None else checked(converted, file.path)


def from_course(raw: dict, path: str = "checkpoint") -> ModelState | None:
    """A loaded checkpoint dict in the course's layout -> ModelState; None for any other layout.

    ``raw`` is ``{"state_dict": ..., ...}`` (the course, Lightning ports) or a bare state_dict.
    """
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        return None
    prefix = course_prefix(state)
    if prefix is None:
        return None
    convs = sorted((k[: -len("weight")] for k in state
                    if k.startswith(prefix + "layers.") and k.endswith("conv.weight")), key=_natural)
    last = state[convs[-1] + "weight"]
    num_classes = last.shape[0] // 3 - 5
    within_limits(check_class_count, num_classes, path, "its last convolution's channels")
    width = state[convs[0] + "weight"].shape[0] / 32
    specs = yolo_specs(max(num_classes, 1), width)
    if len(convs) != len(specs) or num_classes < 1:
        raise CheckpointError(f"{path}: a course-layout checkpoint with {len(convs)} convolutions "
                              f"and {last.shape[0]} output channels; YOLOv3 has {len(specs)} and "
                              "3 * (5 + classes)")
    result: dict[str, Tensor] = {}
    for conv, spec in zip(convs, specs):
        weight = state[conv + "weight"]
        if tuple(weight.shape) != spec.shape:
            raise CheckpointError(f"{path}: {conv}weight is {tuple(weight.shape)} where YOLOv3 at width "
                                  f"{width:g} has {spec.shape} ({spec.conv})")
        result[f"{spec.conv}.weight"] = weight
        block = conv[: -len("conv.")]  # the CNNBlock holding the conv
        if spec.bn is None:  # the prediction conv: its bias; its BatchNorm is never used
            result[f"{spec.conv}.bias"] = state[conv + "bias"]
            continue
        for key in BN_KEYS:
            result[f"{spec.bn}.{key}"] = state.get(block + "bn." + key, torch.zeros((), dtype=torch.long))
    return ModelState(result, num_classes, width, default_class_names(num_classes), source="course", epoch=raw.get("epoch"),
                      hparams={"course_prefix": prefix})
