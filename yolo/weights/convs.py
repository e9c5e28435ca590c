"""YOLOv3's convolutions in Darknet's cfg order: the structure the Darknet and course formats
share (both hold the same 75 convolutions in the same order as ``yolo.model.YOLOv3``).

Cfg order is this model's module order: 52 convolutions of Darknet-53, then per scale the 5 trunk
convolutions, the 3x3 branch convolution and the 1x1 prediction convolution; the 1x1 convolution
before each upsample comes after the previous scale's prediction.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from yolo.model import YOLOv3

BACKBONE_CONVS = 52  # Darknet-53's convolutions: what darknet53.conv.74 holds


@dataclass(frozen=True)
class ConvSpec:
    """One convolution as Darknet stores it: state_dict prefixes and the weight shape."""

    conv: str  # prefix of the Conv2d, e.g. "layers.stem.conv"
    bn: str | None  # prefix of its BatchNorm2d; None when the conv has a bias instead
    shape: tuple[int, int, int, int]  # (out, in, kh, kw)

    @property
    def floats(self) -> int:
        out = self.shape[0]
        return (4 * out if self.bn else out) + math.prod(self.shape)


def conv_specs(model: nn.Module) -> list[ConvSpec]:
    """Every Conv2d of ``model`` in module order, paired with the BatchNorm2d "bn" beside it.

    A convolution without bias whose parent has a ``bn`` BatchNorm2d is stored with BatchNorm;
    any other is stored with its bias. Works on models built on the meta device.
    """
    specs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        parent = name.rpartition(".")[0]
        bn = getattr(model.get_submodule(parent), "bn", None)
        with_bn = isinstance(bn, nn.BatchNorm2d) and module.bias is None
        if not with_bn and module.bias is None:
            raise ValueError(f"{name}: a convolution with neither BatchNorm nor bias has no Darknet form")
        specs.append(ConvSpec(name, (f"{parent}.bn" if parent else "bn") if with_bn else None,
                              tuple(module.weight.shape)))
    return specs


def yolo_specs(num_classes: int, width: float = 1.0) -> list[ConvSpec]:
    """The 75 convolutions of YOLOv3 at this class count and width, in cfg order (no memory used)."""
    return list(_yolo_specs(num_classes, width))


@functools.lru_cache(maxsize=256)
def _yolo_specs(num_classes: int, width: float) -> tuple[ConvSpec, ...]:
    with torch.device("meta"):
        return tuple(conv_specs(YOLOv3(num_classes, width)))


def is_prediction_conv(name: str) -> bool:
    """True for the module name of a prediction convolution (``...predict.pred``): the layers whose
    rows are per anchor and per class."""
    return name.endswith("predict.pred")
