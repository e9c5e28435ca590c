"""Loss terms against hand-computed values; safety: autocast, extreme logits, no in-place edits."""

from __future__ import annotations

import math

import pytest
import torch

from yolo.config import ANCHORS, LossConfig
from yolo.loss import YoloLoss, scale_terms
from yolo.model import YOLOv3
from yolo.targets import encode


def tiny_targets(size=64):
    # one box (cx .3, cy .3, w .3, h .2) in a 64 px image: scale 0 has S = 2
    boxes = torch.tensor([[0.3, 0.3, 0.3, 0.2]])
    return encode(boxes, torch.tensor([4]), torch.tensor([0]), 1, size)


def test_scale_terms_hand_computed():
    targets = tiny_targets()
    # scale 0, S = 2: owner is anchor 0 (.28, .22) in cell (0, 0), x = y = .6, w = .6, h = .4 cells
    assert torch.allclose(targets[0][0, 0, 0, 0], torch.tensor([1, 0.6, 0.6, 0.6, 0.4, 4.0]))
    output = torch.zeros(1, 3, 2, 2, 25)  # all logits 0: sigmoid .5, exp 1, uniform classes
    terms = scale_terms(output, targets[0], torch.tensor(ANCHORS[0]), max_log_wh=10.0, obj_loss="mse")
    bce = scale_terms(output, targets[0], torch.tensor(ANCHORS[0]), max_log_wh=10.0, obj_loss="bce")
    # BCE(logit 0, target t) = -(t ln .5 + (1 - t) ln .5) = ln 2 whatever the IoU target
    assert bce["loss_obj"].item() == pytest.approx(math.log(2), rel=1e-6)
    assert bce["loss_box"] == terms["loss_box"] and bce["loss_noobj"] == terms["loss_noobj"]
    # noobj: 11 background cells, BCE(logit 0, 0) = ln 2 each
    assert terms["loss_noobj"].item() == pytest.approx(math.log(2), rel=1e-6)
    # obj: predicted box centre (.5, .5), size = anchor in cells (.56, .44) -> corners
    # (.22, .28, .78, .72); target (.3, .4, .9, .8); intersection .48 * .32 = .1536;
    # union .2464 + .24 - .1536 = .3328; IoU = .461538; loss (.5 - .461538)^2
    iou = 0.1536 / 0.3328
    assert terms["loss_obj"].item() == pytest.approx((0.5 - iou) ** 2, rel=1e-5)
    # box: (.5, .5, 0, 0) against (.6, .6, ln(.6/.56), ln(.4/.44)), mean of four squares
    box = (0.01 + 0.01 + math.log(0.6 / 0.56) ** 2 + math.log(0.4 / 0.44) ** 2) / 4
    assert terms["loss_box"].item() == pytest.approx(box, rel=1e-5)
    # class: uniform logits over 20 classes -> ln 20
    assert terms["loss_cls"].item() == pytest.approx(math.log(20), rel=1e-6)


def test_class_term_and_objectness_with_set_logits():
    targets = tiny_targets()
    output = torch.zeros(1, 3, 2, 2, 25)
    output[0, 0, 0, 0, 5 + 4] = 2.0  # the true class logit
    output[0, 0, 0, 0, 0] = 1.0  # owner objectness logit
    output[0, 1, 1, 1, 0] = -3.0  # one background cell
    terms = scale_terms(output, targets[0], torch.tensor(ANCHORS[0]), 10.0, obj_loss="mse")
    bce = scale_terms(output, targets[0], torch.tensor(ANCHORS[0]), 10.0, obj_loss="bce")
    ce = -(2.0 - math.log(math.exp(2.0) + 19))
    assert terms["loss_cls"].item() == pytest.approx(ce, rel=1e-6)
    noobj = (10 * math.log(2) + math.log1p(math.exp(-3.0))) / 11
    assert terms["loss_noobj"].item() == pytest.approx(noobj, rel=1e-6)
    sig = 1 / (1 + math.exp(-1.0))
    assert terms["loss_obj"].item() == pytest.approx((sig - 0.1536 / 0.3328) ** 2, rel=1e-5)
    t = 0.1536 / 0.3328
    assert bce["loss_obj"].item() == pytest.approx(-(t * math.log(sig) + (1 - t) * math.log(1 - sig)), rel=1e-5)


def test_bce_objectness_keeps_a_gradient_where_mse_starves():
    # an owner cell with objectness logit -6 (sigmoid .0025) and IoU target .46:
    # MSE gradient 2 (s - t) s (1 - s) ~ -.0023; BCE gradient s - t ~ -.46, 200x stronger
    targets = tiny_targets()
    grads = {}
    for kind in ("mse", "bce"):
        output = torch.zeros(1, 3, 2, 2, 25)
        output[0, 0, 0, 0, 0] = -6.0
        output.requires_grad_()
        scale_terms(output, targets[0], torch.tensor(ANCHORS[0]), 10.0, obj_loss=kind)["loss_obj"].backward()
        grads[kind] = output.grad[0, 0, 0, 0, 0].item()
    s, t = 1 / (1 + math.exp(6.0)), 0.1536 / 0.3328
    assert grads["mse"] == pytest.approx(2 * (s - t) * s * (1 - s), rel=1e-4)
    assert grads["bce"] == pytest.approx(s - t, rel=1e-4)
    assert abs(grads["bce"]) > 100 * abs(grads["mse"])


def test_total_is_weighted_sum_over_scales():
    targets = tiny_targets()
    outputs = [torch.randn(1, 3, s, s, 25) for s in (2, 4, 8)]
    config = LossConfig(lambda_noobj=3.0, lambda_obj=2.0, lambda_box=5.0, lambda_class=0.5)
    result = YoloLoss(config)(outputs, targets)
    per_scale = [scale_terms(o, t, torch.tensor(a), 10.0, "bce") for o, t, a in zip(outputs, targets, ANCHORS)]
    for name in ("loss_box", "loss_obj", "loss_noobj", "loss_cls"):
        assert result[name].item() == pytest.approx(sum(p[name].item() for p in per_scale), rel=1e-6)
    expected = (5 * result["loss_box"] + 2 * result["loss_obj"] + 3 * result["loss_noobj"]
                + 0.5 * result["loss_cls"])
    assert result["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_ignored_cells_enter_no_term():
    boxes = torch.tensor([[0.1, 0.9, 0.33, 0.33]])  # marks one ignore on scale 0 (see test_targets)
    targets = encode(boxes, torch.tensor([0]), torch.tensor([0]), 1, 64)
    ignored = (targets[0][..., 0] == -1).nonzero()
    assert len(ignored) == 1
    outputs = [torch.zeros(1, 3, s, s, 25) for s in (2, 4, 8)]
    base = YoloLoss()(outputs, targets)["loss"]
    outputs[0][tuple(ignored[0])][0] = 50.0  # a confident prediction on the ignored slot
    assert YoloLoss()(outputs, targets)["loss"].item() == pytest.approx(base.item(), rel=1e-7)


def test_inputs_not_modified_and_no_objects_gives_finite_zero_terms():
    targets = encode(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 2, 64)
    outputs = [torch.randn(2, 3, s, s, 25, requires_grad=True) for s in (2, 4, 8)]
    copies = [o.detach().clone() for o in outputs]
    result = YoloLoss()(outputs, targets)
    assert result["loss_box"] == 0 and result["loss_cls"] == 0 and result["loss_obj"] == 0
    result["loss"].backward()
    assert all(torch.equal(o.detach(), c) for o, c in zip(outputs, copies))
    assert all(o.grad is not None for o in outputs)


def test_gradients_reach_all_three_heads():
    model = YOLOv3(num_classes=20, width=0.25)
    boxes = torch.tensor([[0.3, 0.3, 0.5, 0.4], [0.7, 0.6, 0.1, 0.1]])
    targets = encode(boxes, torch.tensor([1, 2]), torch.tensor([0, 1]), 2, 64)
    YoloLoss()(model(torch.rand(2, 3, 64, 64)), targets)["loss"].backward()
    for head in ("head32_out", "head16_out", "head8_out"):
        grad = model.layers[head].predict.pred.weight.grad
        assert grad is not None and grad.abs().sum() > 0


def _extreme_outputs(dtype, device, batch=2):
    g = torch.Generator().manual_seed(0)
    outs = []
    for s in (2, 4, 8):
        sign = torch.randint(0, 2, (batch, 3, s, s, 25), generator=g).float() * 2 - 1
        outs.append((sign * 60).to(device=device, dtype=dtype).requires_grad_())
    return outs


@pytest.mark.parametrize(
    "device,dtype",
    [
        ("cpu", torch.bfloat16),
        pytest.param("cuda", torch.float16, marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="fp16 autocast check needs CUDA")),
    ],
)
def test_finite_under_autocast_with_extreme_logits(device, dtype):
    boxes = torch.tensor([[0.3, 0.3, 0.5, 0.4], [0.7, 0.6, 0.02, 0.03]], device=device)
    targets = encode(boxes, torch.tensor([1, 2]), torch.tensor([0, 1]), 2, 64)
    outputs = _extreme_outputs(dtype, device)
    with torch.autocast(device_type=device, dtype=dtype):
        result = YoloLoss()(outputs, targets)
    assert all(v.dtype == torch.float32 for v in result.values())
    assert all(torch.isfinite(v) for v in result.values())
    result["loss"].backward()
    assert all(torch.isfinite(o.grad).all() for o in outputs)
