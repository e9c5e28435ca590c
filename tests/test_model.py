"""YOLOv3 structure: output shapes at several sizes and widths, parameter count, named layers."""

from __future__ import annotations

import pytest
import torch

from yolo.config import STRIDES
from yolo.model import YOLOv3, count_parameters, scaled_channels


@pytest.mark.parametrize("width", [1.0, 0.5, 0.35, 0.25])
@pytest.mark.parametrize("size", [320, 416, 608])
def test_output_shapes(width, size):
    model = YOLOv3(num_classes=20, width=width).eval()
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, size, size))
    assert [tuple(o.shape) for o in outputs] == [(1, 3, size // s, size // s, 25) for s in STRIDES]


def test_parameter_count_width_one():
    n = count_parameters(YOLOv3(num_classes=20, width=1.0))
    print(f"\nYOLOv3 width 1.0, 20 classes: {n:,} parameters")
    # DESIGN.md: about 61.6M. The exact figure for the course's layer list:
    assert n == 61_626_049


def test_width_scales_channels_and_class_count():
    model = YOLOv3(num_classes=5, width=0.25)
    assert model.layers["stem"].conv.out_channels == 8
    assert model.layers["stage5"].blocks[0].expand.conv.out_channels == 256
    assert model.layers["head8_out"].predict.pred.out_channels == 3 * (5 + 5)
    assert scaled_channels(1024, 0.5) == 512 and scaled_channels(32, 0.1) == 8


def test_course_structure_counts():
    model = YOLOv3(width=0.25)
    layers = model.named_layers()
    # Darknet-53 residual pairs: 1 + 2 + 8 + 8 + 4
    assert sum(1 for n in layers if n.startswith("stage") and "." in n) == 23
    # 52 backbone convs + 1 fully connected layer in the paper = 53; here the FC is absent.
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    backbone = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)
                and n.split(".")[1].startswith(("stem", "down", "stage"))]
    assert len(backbone) == 52
    # per head: conv1, conv2, the pair (2), reduce, branch 3x3, prediction 1x1 = 7; plus 2 "U"
    # convs: 75 convolutions, as in the original YOLOv3 cfg
    assert len(convs) == 52 + 3 * 7 + 2 == 75


def test_named_layers_are_forward_ordered_and_addressable():
    model = YOLOv3(width=0.25).eval()
    names = list(model.named_layers())
    assert names[0] == "stem" and names[-1] == "head8.out.branch"
    assert "stage4.7" in names and "head16.conv2" in names and "head32.out.reduce" in names
    with pytest.raises(KeyError, match="unknown layer"):
        model.get_layer("no.such.layer")
    seen = []
    hooks = [model.get_layer(n).register_forward_hook(lambda m, i, o, n=n: seen.append(n)) for n in names]
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    # every named layer returns a tensor and runs exactly once per forward
    assert sorted(seen) == sorted(names)


def test_gradients_reach_every_parameter():
    model = YOLOv3(num_classes=3, width=0.25)
    outputs = model(torch.rand(2, 3, 64, 64))
    sum(o.square().mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
