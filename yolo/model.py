"""YOLOv3 as the course defines it: Darknet-53 backbone and three prediction scales.

The layer list below is the course's config, read top to bottom:

    (c, k, s)  Conv(k x k, stride s, c channels) - BatchNorm - LeakyReLU(0.1)
    ("B", n)   n residual pairs: 1x1 conv to c/2, 3x3 conv back to c, added to the input
    "S"        one non-residual pair, a 1x1 conv c -> c/2, then a prediction branch
               (3x3 conv to 2c, 1x1 conv to 3 * (5 + C) with bias, no BN); the branch's output
               is a side result and the trunk continues from the 1x1 conv
    "U"        x2 nearest upsample, concatenated with the route kept after the matching B8

The model returns three raw tensors (B, 3, S, S, 5 + C) for strides 32, 16 and 8. Channel 0 is
the objectness logit, 1:3 the centre logits (tx, ty), 3:5 the size logits (tw, th), 5: class logits.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from yolo.config import grid_sizes


# fmt: off
COURSE_CONFIG: tuple = (
    (32, 3, 1), (64, 3, 2), ("B", 1), (128, 3, 2), ("B", 2), (256, 3, 2), ("B", 8),
    (512, 3, 2), ("B", 8), (1024, 3, 2), ("B", 4),  # Darknet-53 ends here
    (512, 1, 1), (1024, 3, 1), "S",
    (256, 1, 1), "U", (256, 1, 1), (512, 3, 1), "S",
    (128, 1, 1), "U", (128, 1, 1), (256, 3, 1), "S",
)
# Readable names of the entries above, in the same order (GradCAM picks layers by these).
COURSE_NAMES: tuple[str, ...] = (
    "stem", "down1", "stage1", "down2", "stage2", "down3", "stage3",
    "down4", "stage4", "down5", "stage5",
    "head32.conv1", "head32.conv2", "head32.out",
    "up16.conv", "up16.upsample", "head16.conv1", "head16.conv2", "head16.out",
    "up8.conv", "up8.upsample", "head8.conv1", "head8.conv2", "head8.out",
)
# fmt: on


def scaled_channels(channels: int, width: float) -> int:
    """Channel count after the width multiplier, a multiple of 8 and at least 8."""
    return max(8, int(round(channels * width / 8)) * 8)


class ConvBlock(nn.Sequential):
    """Conv(k, stride) - BatchNorm - LeakyReLU(0.1); padding keeps the size at stride 1."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
                bn=nn.BatchNorm2d(c_out),
                act=nn.LeakyReLU(0.1),
            )
        )


class ResidualStage(nn.Module):
    """``repeats`` pairs (1x1 to c/2, 3x3 back to c); each pair adds its input when residual."""

    def __init__(self, channels: int, repeats: int, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.blocks = nn.ModuleList(
            nn.Sequential(
                OrderedDict(
                    reduce=ConvBlock(channels, channels // 2, 1),
                    expand=ConvBlock(channels // 2, channels, 3),
                )
            )
            for _ in range(repeats)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x) if self.residual else block(x)
        return x


class ScalePrediction(nn.Module):
    """3x3 conv to 2c, then 1x1 conv (bias, no BN) to 3 * (5 + C); output (B, 3, S, S, 5 + C)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv = ConvBlock(channels, 2 * channels, 3)
        # PyTorch's default init (objectness near 0.5 at start), as the course; ``set_objectness_prior``
        # starts it calibrated instead (``--obj-prior``; the course's MSE objectness term would
        # starve from a low prior, its gradient vanishing once sigmoid(obj) is small).
        self.pred = nn.Conv2d(2 * channels, 3 * (5 + num_classes), 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, s_h, s_w = x.shape
        out = self.pred(self.conv(x))  # (B, 3*(5+C), S, S)
        return out.view(b, 3, 5 + self.num_classes, s_h, s_w).permute(0, 1, 3, 4, 2)  # (B, 3, S, S, 5+C)


class ScaleOutput(nn.Module):
    """The course's "S": a non-residual pair, a 1x1 reduction the trunk continues from, a branch."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.pair = ResidualStage(channels, 1, residual=False)
        self.reduce = ConvBlock(channels, channels // 2, 1)
        self.predict = ScalePrediction(channels // 2, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        trunk = self.reduce(self.pair(x))
        return trunk, self.predict(trunk)


class YOLOv3(nn.Module):
    """The course's YOLOv3. ``forward(images (B, 3, H, W) float in [0, 1])`` -> 3 raw outputs.

    H and W must be multiples of 32. ``layers`` is a ModuleDict keyed by readable names
    (dots replaced by "_" since ModuleDict keys cannot hold dots); ``named_layers()`` gives the
    readable names, including every residual pair (e.g. "stage4.3").
    """

    def __init__(self, num_classes: int = 20, width: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width = width
        self.layers = nn.ModuleDict()
        self._kinds: list[str] = []
        c_in = 3
        route_channels: list[int] = []  # channels of the routes kept after each B8
        for name, entry in zip(COURSE_NAMES, COURSE_CONFIG):
            key = name.replace(".", "_")
            if isinstance(entry, tuple) and entry[0] == "B":
                self.layers[key] = ResidualStage(c_in, entry[1])
                self._kinds.append("route" if entry[1] == 8 else "stage")
                if entry[1] == 8:
                    route_channels.append(c_in)
            elif isinstance(entry, tuple):
                c_out = scaled_channels(entry[0], width)
                self.layers[key] = ConvBlock(c_in, c_out, entry[1], entry[2])
                self._kinds.append("conv")
                c_in = c_out
            elif entry == "S":
                self.layers[key] = ScaleOutput(c_in, num_classes)
                self._kinds.append("output")
                c_in //= 2
            elif entry == "U":
                self.layers[key] = nn.Upsample(scale_factor=2, mode="nearest")
                self._kinds.append("upsample")
                c_in += route_channels.pop()  # concatenated with the later route first
        self._names = COURSE_NAMES

    def forward(self, images: Tensor) -> list[Tensor]:
        outputs: list[Tensor] = []
        routes: list[Tensor] = []
        x = images
        for layer, kind in zip(self.layers.values(), self._kinds):
            if kind == "output":
                x, out = layer(x)
                outputs.append(out)
                continue
            x = layer(x)
            if kind == "route":
                routes.append(x)
            elif kind == "upsample":
                x = torch.cat([x, routes.pop()], dim=1)  # the later route first
        return outputs

    def named_layers(self) -> "OrderedDict[str, nn.Module]":
        """Readable layer name -> module, in forward order; every one can be a GradCAM target.

        Names: the course entries ("stem", "down3", "stage4", "head16.conv2", "head8.out", ...),
        every residual pair inside a stage ("stage4.0" .. "stage4.7"), and inside each output
        block its non-residual pair ("head32.out.pair"), the 1x1 conv the trunk continues from
        ("head32.out.reduce") and the prediction branch's 3x3 conv ("head32.out.branch").
        """
        result: "OrderedDict[str, nn.Module]" = OrderedDict()
        for name, layer in zip(self._names, self.layers.values()):
            if isinstance(layer, nn.Upsample):
                continue
            if isinstance(layer, ScaleOutput):  # returns a pair, so expose its tensor-valued parts
                result[f"{name}.pair"] = layer.pair
                result[f"{name}.reduce"] = layer.reduce
                result[f"{name}.branch"] = layer.predict.conv
                continue
            result[name] = layer
            if isinstance(layer, ResidualStage):
                for i, block in enumerate(layer.blocks):
                    result[f"{name}.{i}"] = block
        return result

    def get_layer(self, name: str) -> nn.Module:
        """The module called ``name`` in ``named_layers()``; a clear KeyError otherwise."""
        layers = self.named_layers()
        if name not in layers:
            raise KeyError(f"unknown layer {name!r}; choose one of: {', '.join(layers)}")
        return layers[name]


@torch.no_grad()
def set_objectness_prior(model: YOLOv3, objects_per_image: float, image_size: int) -> list[float]:
    """Start every objectness logit at the share of slots that own a box (a bias prior).

    Under the assignment rule every object owns one slot on each scale, so on a grid of S cells
    with 3 anchors the prior is ``p = objects_per_image / (3 * S * S)`` and the bias of each
    anchor's objectness output becomes ``log(p / (1 - p))``: sigmoid(obj) starts at p instead of
    0.5, so the first steps are not spent unlearning "object everywhere". (A class-bias prior of
    1/C would change nothing: the classes go through a softmax, which ignores a shared offset.)

    Args:
        model: the YOLOv3 whose three prediction convolutions are changed in place.
        objects_per_image: expected objects per training image (> 0).
        image_size: the training input side (a multiple of 32), which sets S per scale.

    Returns:
        The three biases set, coarse to fine (strides 32, 16, 8).
    """
    if objects_per_image <= 0:
        raise ValueError(f"objects_per_image must be > 0, got {objects_per_image}")
    heads = [m for m in model.modules() if isinstance(m, ScalePrediction)]
    biases = []
    for head, size in zip(heads, grid_sizes(image_size)):
        p = min(objects_per_image / (3 * size * size), 0.5)
        value = math.log(p / (1 - p))
        head.pred.bias.view(3, 5 + head.num_classes)[:, 0] = value
        biases.append(value)
    return biases


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
