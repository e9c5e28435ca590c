"""Darknet .weights files: layout, sizes, headers, head channel order; COCO -> VOC; course checkpoints."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch
from torch import nn

from yolo.config import VOC_CLASSES
from yolo.detect import Detector
from yolo.model import ConvBlock, YOLOv3
from yolo.transfer import init_from
from yolo.weights import CheckpointError, build_model, read_checkpoint
from yolo.weights.classes import COCO_CLASSES
from yolo.weights.convs import conv_specs
from yolo.weights.darknet import DarknetError, Header, expected_floats, read_darknet, read_weights, write_weights

SIZE = 64


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics (so a swapped mean/var or beta/gamma shows)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                values = torch.rand(t.shape, generator=g)
                t.copy_(values + 0.5 if "running_var" in name else (values - 0.5) * 0.2)
    return model.eval()


def outputs(model: nn.Module, seed: int = 1) -> list[torch.Tensor]:
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


# ------------------------------------------------------------------------------ 1. the layout
def yolov3_cfg_convs(classes: int, div: int = 1) -> list[tuple[int, int, int, bool]]:
    """yolov3.cfg's [convolutional] sections in file order as (filters, input channels, size,
    batch_normalize), read off the cfg by hand; channel counts divided by ``div``."""
    c = lambda n: n // div  # noqa: E731
    out = 3 * (classes + 5)
    convs = [(c(32), 3, 3, True), (c(64), c(32), 3, True)]

    def residual(ch: int, n: int) -> list:
        return [(c(ch // 2), c(ch), 1, True), (c(ch), c(ch // 2), 3, True)] * n

    convs += residual(64, 1) + [(c(128), c(64), 3, True)] + residual(128, 2)
    convs += [(c(256), c(128), 3, True)] + residual(256, 8)  # [shortcut] 36 ends here
    convs += [(c(512), c(256), 3, True)] + residual(512, 8)  # layer 61 ends here
    convs += [(c(1024), c(512), 3, True)] + residual(1024, 4)  # layer 74: darknet53.conv.74
    for ch, route_in in ((512, 1024), (256, 768), (128, 384)):  # 768 = 256 up + 512 (61); 384 = 128 + 256 (36)
        convs += [(c(ch), c(route_in), 1, True), (c(2 * ch), c(ch), 3, True)]
        convs += [(c(ch), c(2 * ch), 1, True), (c(2 * ch), c(ch), 3, True)]
        convs += [(c(ch), c(2 * ch), 1, True), (c(2 * ch), c(ch), 3, True)]  # the 3x3 before [yolo]
        convs += [(out, c(2 * ch), 1, False)]  # linear, bias, then [yolo]
        if ch > 128:
            convs += [(c(ch // 2), c(ch), 1, True)]  # [route] -4, then this 1x1, then [upsample]
    return convs


def test_model_convolutions_are_yolov3_cfg_in_order():
    cfg = yolov3_cfg_convs(80)
    with torch.device("meta"):
        specs = conv_specs(YOLOv3(80, 1.0))
    assert len(cfg) == len(specs) == 75
    for i, ((filters, c_in, k, bn), spec) in enumerate(zip(cfg, specs)):
        assert spec.shape == (filters, c_in, k, k), (i, spec)
        assert (spec.bn is not None) == bn, (i, spec)
    # the ones a naive reading gets wrong: the 1x1 conv before each upsample follows the head
    assert specs[58].conv == "layers.head32_out.predict.pred" and specs[59].conv == "layers.up16_conv.conv"
    assert specs[56].conv == "layers.head32_out.reduce.conv"  # [route] -4 lands on this one's output


def test_upsampled_map_is_concatenated_first():
    """[route] layers = -1, 61: the upsampled map, then layer 61's (the second B8 stage)."""
    model = randomised(YOLOv3(20, 0.25))
    seen = {}
    hooks = [model.layers[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o))
             for n in ("up16_conv", "stage4")]
    hooks.append(model.layers["head16_conv1"].register_forward_pre_hook(lambda m, i: seen.__setitem__("in", i[0])))
    outputs(model)
    for h in hooks:
        h.remove()
    up = nn.functional.interpolate(seen["up16_conv"], scale_factor=2, mode="nearest")
    assert torch.equal(seen["in"], torch.cat([up, seen["stage4"]], 1))


def test_official_file_sizes_from_the_models_own_shapes():
    """Floats a file stores = parameters + BatchNorm running mean and variance (2 per channel)."""
    with torch.device("meta"):
        model = YOLOv3(80, 1.0)
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    full = sum(p.numel() for p in model.parameters()) + 2 * sum(m.num_features for m in bn)
    backbone_layers = list(model.layers.values())[:11]  # stem .. stage5
    backbone = sum(p.numel() for layer in backbone_layers for p in layer.parameters()) + 2 * sum(
        m.num_features for layer in backbone_layers for m in layer.modules() if isinstance(m, nn.BatchNorm2d))
    assert full == expected_floats(80, 1.0) == 62_001_757
    assert 20 + 4 * full == 248_007_048  # yolov3.weights
    assert backbone == expected_floats(80, 1.0, 52) == 40_620_640
    assert 20 + 4 * backbone == 162_482_580  # darknet53.conv.74


def test_round_trip_gives_identical_outputs(tmp_path):
    model = randomised(YOLOv3(20, 0.25))
    path = write_weights(model, tmp_path / "yolov3-voc.weights")
    assert path.stat().st_size == 20 + 4 * expected_floats(20, 0.25)
    state = read_checkpoint(path)  # the path every consumer uses
    assert (state.num_classes, state.width, state.class_names) == (20, 0.25, list(VOC_CLASSES))
    loaded = build_model(state)
    for a, b in zip(outputs(model), outputs(loaded)):
        assert torch.equal(a, b)
    detector = Detector.from_checkpoint(path, image_size=SIZE)
    assert detector.model.num_classes == 20


def test_backbone_only_file(tmp_path):
    model = randomised(YOLOv3(80, 0.25))
    path = write_weights(model, tmp_path / "darknet53.conv.74", convs=52)
    assert path.stat().st_size == 20 + 4 * expected_floats(80, 0.25, 52)
    state = read_weights(path, width=0.25)
    assert state.num_classes == 0 and len(state.state_dict) == 52 * 6  # conv, 4 BN tensors, BN count
    from yolo.transfer import BACKBONE

    assert {k.split(".")[1] for k in state.state_dict} == set(BACKBONE)  # stem .. stage5
    for key, value in state.state_dict.items():
        if value.dtype.is_floating_point:
            assert torch.equal(value, model.state_dict()[key]), key
    with pytest.raises(CheckpointError, match="backbone-only.*train.py --init"):
        Detector.from_checkpoint(path)


@pytest.mark.parametrize("change", [-4, -1, 4, 1000])
def test_truncated_or_padded_file_is_refused(tmp_path, change):
    good = write_weights(randomised(YOLOv3(20, 0.25)), tmp_path / "good.weights")
    data = good.read_bytes()
    bad = tmp_path / "bad.weights"
    bad.write_bytes(data[:change] if change < 0 else data + b"\0" * change)
    with pytest.raises(DarknetError, match="fit no YOLOv3 layout at width 0.25.*expected"):
        read_weights(bad, width=0.25)
    with pytest.raises(CheckpointError, match="fit no YOLOv3 layout"):
        Detector.from_checkpoint(bad)


def test_both_header_versions(tmp_path):
    model = randomised(YOLOv3(3, 0.25))
    new = write_weights(model, tmp_path / "new.weights", header=Header(0, 2, 0, seen=2**40 + 7))
    old = write_weights(model, tmp_path / "old.weights", header=Header(0, 1, 0, seen=12345))
    big = write_weights(model, tmp_path / "major.weights", header=Header(1000, 2, 0, seen=99))
    assert new.stat().st_size - old.stat().st_size == 4 == new.stat().st_size - big.stat().st_size
    assert struct.unpack("<3iq", new.read_bytes()[:20]) == (0, 2, 0, 2**40 + 7)
    assert struct.unpack("<4i", old.read_bytes()[:16]) == (0, 1, 0, 12345)
    for path, seen in ((new, 2**40 + 7), (old, 12345), (big, 99)):
        state = read_weights(path)
        assert state.hparams["darknet"]["seen"] == seen and state.width == 0.25 and state.num_classes == 3
        for a, b in zip(outputs(model), outputs(build_model(state))):
            assert torch.equal(a, b)


def test_hand_built_two_convolution_file(tmp_path):
    """The layout written out by hand: conv1 1->2 (1x1, BatchNorm), conv2 2->3 (1x1, bias)."""
    beta, gamma, mean, var, w1 = [0.5, -1.0], [2.0, 3.0], [0.25, 1.0], [4.0, 0.5], [1.5, -2.0]
    bias2, w2 = [0.1, 0.2, 0.3], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # (out 3, in 2) row-major
    floats = beta + gamma + mean + var + w1 + bias2 + w2
    path = tmp_path / "toy.weights"
    path.write_bytes(struct.pack("<3iq", 0, 2, 5, 64) + struct.pack(f"<{len(floats)}f", *floats))

    toy = nn.Sequential(ConvBlock(1, 2, 1), nn.Conv2d(2, 3, 1))
    header, state, count = read_darknet(path, conv_specs(toy))
    assert (header.revision, header.seen, count) == (5, 64, 2)
    toy.load_state_dict(state)
    with torch.no_grad():
        y = toy.eval()(torch.full((1, 1, 1, 1), 2.0)).flatten().tolist()
    eps = toy[0].bn.eps
    hidden = []
    for c in range(2):  # conv, BatchNorm, LeakyReLU(0.1), by hand
        z = gamma[c] * (2.0 * w1[c] - mean[c]) / math.sqrt(var[c] + eps) + beta[c]
        hidden.append(z if z > 0 else 0.1 * z)
    expected = [bias2[o] + w2[2 * o] * hidden[0] + w2[2 * o + 1] * hidden[1] for o in range(3)]
    assert y == pytest.approx(expected, rel=1e-5)  # float32 arithmetic
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(DarknetError, match=r"expected 96 bytes \(all 2 convolutions\)"):
        read_darknet(path, conv_specs(toy))


def test_hand_built_yolov3_file_channel_order(tmp_path):
    """A file laid out from the cfg list above alone: BatchNorm passes its beta through (gamma 0),
    every weight is 0, and the first [yolo] conv's bias is Darknet's (x, y, w, h, obj, classes)."""
    classes, div = 4, 4  # width 0.25
    cfg = yolov3_cfg_convs(classes, div)
    parts = []
    for i, (filters, c_in, k, bn) in enumerate(cfg):
        if bn:
            parts += [np.zeros(filters), np.zeros(filters), np.zeros(filters), np.ones(filters)]
        elif i == 58:  # the stride-32 head
            darknet_rows = [[10 * a + 1, 10 * a + 2, 10 * a + 3, 10 * a + 4, 10 * a + 5]
                            + [100 * (a + 1) + k for k in range(classes)] for a in range(3)]
            parts.append(np.array(darknet_rows, dtype=float).ravel())
        else:
            parts.append(np.zeros(filters))
        parts.append(np.zeros(filters * c_in * k * k))
    path = tmp_path / "hand.weights"
    path.write_bytes(struct.pack("<3iq", 0, 2, 0, 0) + np.concatenate(parts).astype("<f4").tobytes())
    out = outputs(build_model(read_checkpoint(path)))[0]  # (B, 3, S, S, 5 + C), stride 32
    for a in range(3):
        # this model's order: obj, x, y, w, h, classes
        expected = torch.tensor([10 * a + 5, 10 * a + 1, 10 * a + 2, 10 * a + 3, 10 * a + 4]
                                + [100 * (a + 1) + k for k in range(classes)], dtype=torch.float32)
        assert torch.equal(out[:, a], expected.expand_as(out[:, a]))


def test_not_a_darknet_file_is_left_to_torch(tmp_path):
    path = tmp_path / "notes.weights"
    path.write_text("hello, these are notes")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_checkpoint(path)


# ------------------------------------------------------------------------------ 2. COCO -> VOC
# VOC class -> its COCO index in coco.names order, worked out by hand.
VOC_TO_COCO_INDEX = {
    "aeroplane": 4, "bicycle": 1, "bird": 14, "boat": 8, "bottle": 39, "bus": 5, "car": 2, "cat": 15,
    "chair": 56, "cow": 19, "diningtable": 60, "dog": 16, "horse": 17, "motorbike": 3, "person": 0,
    "pottedplant": 58, "sheep": 18, "sofa": 57, "train": 6, "tvmonitor": 62,
}


def test_coco_to_voc_keeps_the_mapped_class_logits(tmp_path):
    coco = YOLOv3(80, 0.25).eval()
    with torch.no_grad():
        for name, module in coco.named_modules():
            if name.endswith("predict.pred"):
                module.weight.zero_()
                rows = torch.tensor([[1000.0 + 10 * a + c for c in range(5)] + list(range(80))
                                     for a in range(3)])
                module.bias.copy_(rows.flatten())  # class k's logit is k
    assert COCO_CLASSES[4] == "airplane" and len(COCO_CLASSES) == 80
    path = write_weights(coco, tmp_path / "yolov3.weights")
    voc = YOLOv3(20, 0.25)
    report = init_from(path, voc, VOC_CLASSES)
    assert report.fresh_classes == [] and report.classes["tvmonitor"] == "tv"
    expected = torch.tensor([VOC_TO_COCO_INDEX[n] for n in VOC_CLASSES], dtype=torch.float32)
    for out in outputs(voc):  # every scale
        for a in range(3):
            assert torch.equal(out[:, a, ..., 5:], expected.expand_as(out[:, a, ..., 5:]))
            box = torch.tensor([1000.0 + 10 * a + c for c in range(5)])
            assert torch.equal(out[:, a, ..., :5], box.expand_as(out[:, a, ..., :5]))

    fresh = YOLOv3(2, 0.25)
    before = fresh.layers["head8_out"].predict.pred.bias.detach().clone().view(3, 7)
    report = init_from(path, fresh, ["dog", "unicorn"])
    assert report.classes == {"dog": "dog"} and report.fresh_classes == ["unicorn"]
    after = fresh.layers["head8_out"].predict.pred.bias.detach().view(3, 7)
    assert torch.equal(after[:, 5], torch.full((3,), 16.0))  # dog is COCO's 16
    assert torch.equal(after[:, 6], before[:, 6])  # unicorn keeps its fresh initialisation


def test_convert_coco_weights_to_a_voc_detector(tmp_path):
    from yolo.transfer import main

    coco = randomised(YOLOv3(80, 0.25))
    path = write_weights(coco, tmp_path / "yolov3.weights")
    assert main([str(path), "--classes", "voc", "--out", str(tmp_path / "voc.pt")]) == 0
    state = read_checkpoint(tmp_path / "voc.pt")
    assert state.class_names == list(VOC_CLASSES) and state.num_classes == 20
    assert state.anchors[0][2] == [373, 326] and state.anchor_unit == "pixels"  # yolov3.cfg's, in its unit
    assert state.anchors_at(416)[0][2] == [373 / 416, 326 / 416]
    index = torch.tensor([VOC_TO_COCO_INDEX[n] for n in VOC_CLASSES])
    for voc, full in zip(outputs(build_model(state)), outputs(coco)):
        assert torch.equal(voc[..., :5], full[..., :5])
        assert torch.equal(voc[..., 5:], full[..., 5:][..., index])
    backbone = write_weights(coco, tmp_path / "darknet53.conv.74", convs=52)
    with pytest.raises(SystemExit, match="backbone only"):
        main([str(backbone), "--out", str(tmp_path / "x.pt"), "--width", "0.25"])


def test_save_weights_writes_the_given_anchors_and_transfer_writes_once(tmp_path, monkeypatch):
    from yolo.transfer import main
    from yolo.weights import save_weights

    anchors = [[[0.5, 0.25], [0.125, 0.75], [1.0, 2.0]]] * 3
    state = read_checkpoint(save_weights(YOLOv3(2, 0.125), tmp_path / "w.pt", ["a", "b"], anchors=anchors))
    assert state.anchors == anchors
    path = write_weights(randomised(YOLOv3(80, 0.125)), tmp_path / "yolov3.weights")
    writes = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (writes.append(str(f)), real_save(obj, f, *a, **k)))
    assert main([str(path), "--classes", "voc", "--out", str(tmp_path / "voc.pt"), "--width", "0.125"]) == 0
    assert len(writes) == 1 and (tmp_path / "voc.pt").is_file()  # one write (beside it, then renamed), anchors included
    converted = read_checkpoint(tmp_path / "voc.pt")
    assert converted.anchors[0][2] == [373, 326] and converted.anchor_unit == "pixels"


def test_darknet_anchors_stay_pixels_at_every_input_size(tmp_path):
    """A Darknet-format model at 320, 416 and 608 gives the boxes of Darknet's own rule, written
    plainly here: centre (sigmoid(t) + cell) * stride, size anchor pixels * exp(t) (no input scaling)."""
    path = write_weights(randomised(YOLOv3(80, 0.25)), tmp_path / "yolov3.weights")
    pixels = [[(116, 90), (156, 198), (373, 326)], [(30, 61), (62, 45), (59, 119)], [(10, 13), (16, 30), (33, 23)]]
    rng = np.random.default_rng(0)
    for size in (320, 416, 608):
        detector = Detector.from_checkpoint(path, image_size=size)
        pred = detector.predict(rng.integers(0, 255, (size, size, 3)).astype(np.uint8))  # no letterbox change
        plain = []
        for out, stride, anchors in zip(pred.outputs, (32, 16, 8), pixels):
            t = out[0].double()  # (3, S, S, 5 + C); channel 0 objectness, 1..4 tx ty tw th
            s = t.shape[1]
            rows, cols = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
            for a, (aw, ah) in enumerate(anchors):
                cx = (torch.sigmoid(t[a, ..., 1]) + cols) * stride
                cy = (torch.sigmoid(t[a, ..., 2]) + rows) * stride
                w, h = aw * torch.exp(t[a, ..., 3]), ah * torch.exp(t[a, ..., 4])
                plain.append(torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1).reshape(-1, 4))
        plain = torch.cat(plain).clamp(0, size)  # candidates are clipped to the image
        got = pred.candidates
        assert len(got.boxes) == len(plain)  # every slot
        torch.testing.assert_close(got.boxes.double(), plain[got.slots], rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_a_full_size_file_is_exactly_the_official_size_and_loads(tmp_path):
    """Width 1.0, 80 classes, written and read for real (248 MB on disk)."""
    model = YOLOv3(80, 1.0).eval()
    path = write_weights(model, tmp_path / "yolov3.weights")
    assert path.stat().st_size == 248_007_048
    state = read_checkpoint(path)
    assert (state.num_classes, state.width, state.class_names[:3]) == (80, 1.0, ["person", "bicycle", "car"])
    key = "layers.head8_out.predict.pred.weight"
    assert torch.equal(state.state_dict[key], model.state_dict()[key])
    del state
    backbone = write_weights(model, tmp_path / "darknet53.conv.74", convs=52)
    assert backbone.stat().st_size == 162_482_580
    assert read_weights(backbone).num_classes == 0
