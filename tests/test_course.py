"""Course checkpoints (checkpoint.pth.tar and Lightning ports) load into this project's model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yolo.config import VOC_CLASSES
from yolo.detect import Detector
from yolo.model import YOLOv3
from yolo.weights import CheckpointError, build_model, read_checkpoint

from test_darknet import outputs, randomised  # random weights and BN statistics; outputs at 64 px

# ------------------------------------------------------------------ the course's model, as written there
# Its config, every channel count divided by DIV (the course model is width 1.0; 4 keeps the test small).
DIV = 4
CONFIG = [
    (32, 3, 1), (64, 3, 2), ["B", 1], (128, 3, 2), ["B", 2], (256, 3, 2), ["B", 8],
    (512, 3, 2), ["B", 8], (1024, 3, 2), ["B", 4],
    (512, 1, 1), (1024, 3, 1), "S",
    (256, 1, 1), "U", (256, 1, 1), (512, 3, 1), "S",
    (128, 1, 1), "U", (128, 1, 1), (256, 3, 1), "S",
]


class CNNBlock(nn.Module):
    def __init__(self, in_channels, out_channels, bn_act=True, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=not bn_act, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels)  # built even when unused (the prediction conv)
        self.leaky = nn.LeakyReLU(0.1)
        self.use_bn_act = bn_act

    def forward(self, x):
        return self.leaky(self.bn(self.conv(x))) if self.use_bn_act else self.conv(x)


class ResidualBlock(nn.Module):
    def __init__(self, channels, use_residual=True, num_repeats=1):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(num_repeats):
            self.layers += [nn.Sequential(CNNBlock(channels, channels // 2, kernel_size=1),
                                          CNNBlock(channels // 2, channels, kernel_size=3, padding=1))]
        self.use_residual = use_residual
        self.num_repeats = num_repeats

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(x) if self.use_residual else layer(x)
        return x


class ScalePrediction(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.pred = nn.Sequential(
            CNNBlock(in_channels, 2 * in_channels, kernel_size=3, padding=1),
            CNNBlock(2 * in_channels, (num_classes + 5) * 3, bn_act=False, kernel_size=1),
        )
        self.num_classes = num_classes

    def forward(self, x):
        return (self.pred(x).reshape(x.shape[0], 3, self.num_classes + 5, x.shape[2], x.shape[3])
                .permute(0, 1, 3, 4, 2))


class CourseYOLOv3(nn.Module):
    def __init__(self, in_channels=3, num_classes=20):
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.layers = self._create_conv_layers()

    def forward(self, x):
        outputs, route_connections = [], []
        for layer in self.layers:
            if isinstance(layer, ScalePrediction):
                outputs.append(layer(x))
                continue
            x = layer(x)
            if isinstance(layer, ResidualBlock) and layer.num_repeats == 8:
                route_connections.append(x)
            elif isinstance(layer, nn.Upsample):
                x = torch.cat([x, route_connections[-1]], dim=1)
                route_connections.pop()
        return outputs

    def _create_conv_layers(self):
        layers = nn.ModuleList()
        in_channels = self.in_channels
        for module in CONFIG:
            if isinstance(module, tuple):
                out_channels, kernel_size, stride = module
                out_channels //= DIV
                layers.append(CNNBlock(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                                       padding=1 if kernel_size == 3 else 0))
                in_channels = out_channels
            elif isinstance(module, list):
                layers.append(ResidualBlock(in_channels, num_repeats=module[1]))
            elif module == "S":
                layers += [ResidualBlock(in_channels, use_residual=False, num_repeats=1),
                           CNNBlock(in_channels, in_channels // 2, kernel_size=1),
                           ScalePrediction(in_channels // 2, num_classes=self.num_classes)]
                in_channels = in_channels // 2
            elif module == "U":
                layers.append(nn.Upsample(scale_factor=2))
                in_channels = in_channels * 3
        return layers


@pytest.fixture(scope="module")
def course() -> CourseYOLOv3:
    return randomised(CourseYOLOv3(num_classes=20))


def test_course_checkpoint_loads_with_identical_outputs(course, tmp_path):
    optimizer = torch.optim.Adam(course.parameters(), lr=1e-5)
    course.train()(torch.rand(1, 3, 64, 64))[0].sum().backward()
    optimizer.step()  # an optimiser state with tensors, as a real checkpoint has
    course.eval()
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": course.state_dict(), "optimizer": optimizer.state_dict()}, path)  # the course's save
    assert "layers.15.pred.1.bn.running_var" in course.state_dict()  # the unused BatchNorm is there

    state = read_checkpoint(path)
    assert (state.num_classes, state.width, state.source) == (20, 1 / DIV, "course")
    assert state.class_names == list(VOC_CLASSES)
    model = build_model(state)
    for ours, theirs in zip(outputs(model), outputs(course)):
        assert torch.equal(ours, theirs)
    detector = Detector.from_checkpoint(path, image_size=64)
    assert isinstance(detector.model, YOLOv3)


def test_lightning_port_with_a_prefix(course, tmp_path):
    wrapped = {f"model.{k}": v for k, v in course.state_dict().items()}
    wrapped["loss_fn.mse.dummy"] = torch.zeros(1)  # other modules of the LightningModule
    path = tmp_path / "epoch=9.ckpt"
    torch.save({"state_dict": wrapped, "epoch": 9, "global_step": 90, "pytorch-lightning_version": "2.4"}, path)
    state = read_checkpoint(path)
    assert state.epoch == 9 and state.hparams["course_prefix"] == "model."
    for ours, theirs in zip(outputs(build_model(state)), outputs(course)):
        assert torch.equal(ours, theirs)


def test_full_size_course_layout_maps_onto_the_model():
    """At the course's real width (1.0, 80 classes) every tensor lands with its shape (meta tensors)."""
    global DIV
    saved, DIV = DIV, 1
    try:
        with torch.device("meta"):
            course = CourseYOLOv3(num_classes=80)
    finally:
        DIV = saved
    from yolo.weights.course import from_course

    state = from_course({"state_dict": course.state_dict()})
    with torch.device("meta"):
        target = YOLOv3(80, 1.0).state_dict()
    assert set(state.state_dict) == set(target)
    assert all(state.state_dict[k].shape == target[k].shape for k in target)
    course_tensors = sum(v.numel() for k, v in course.state_dict().items() if ".pred.1.bn." not in k)
    assert course_tensors == sum(v.numel() for v in target.values())  # only the unused BN is dropped


class RunsCode:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_course_checkpoint_with_code_in_its_pickle_is_refused(course, tmp_path):
    marker = tmp_path / "pwned"
    state = dict(course.state_dict())
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": state, "optimizer": {"state": {}, "hook": RunsCode(str(marker))}}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        Detector.from_checkpoint(path)
    assert not marker.exists()


def test_course_layout_that_does_not_fit_says_why(course, tmp_path):
    state = {k: v for k, v in course.state_dict().items() if not k.startswith("layers.29.")}  # one head gone
    path = tmp_path / "cut.pth.tar"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match="course-layout checkpoint with 73 convolutions"):
        read_checkpoint(path)
