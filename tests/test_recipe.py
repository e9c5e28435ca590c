"""The training recipe: ``--recipe course`` is the course's loss, assignment, init and schedule;
each candidate of the recipe ablation (README "Training recipe") against hand-worked values or
an independent computation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from train import config_from_args
from yolo.config import ANCHORS, LOSS_IOU, LossConfig, grid_sizes
from yolo.config_checks import ConfigError, check_config
from yolo.lit import CourseOneCycleLR, YoloLitModule, bias_warmup, one_cycle, warmup_cosine
from yolo.loss import OBJ_BALANCE, YoloLoss, scale_terms
from yolo.model import YOLOv3, set_objectness_prior
from yolo.targets import encode
from yolo.config import RECIPES
from yolo.trainer import build_module

VOC_ARGS = ["--preset", "voc", "--data", "unused"]


# ------------------------------------------------------------------ --recipe course
def course_config(*extra: str):
    return config_from_args([*VOC_ARGS, "--recipe", "course", *extra])


def test_course_recipe_sets_the_course_settings_and_flags_still_win():
    config = course_config()
    m = config.module
    assert config.recipe == "course" and config.grad_clip == 0.0
    assert (m.loss.obj_loss, m.loss.lambda_noobj, m.loss.lambda_obj, m.loss.lambda_box,
            m.loss.lambda_class) == ("mse", 10.0, 1.0, 10.0, 1.0)
    assert m.loss.lambda_iou == 0 and m.loss.label_smoothing == 0 and not m.loss.obj_balance
    assert m.target.anchor_ratio == 0 and m.target.ignore_iou == 0.5 and m.model.obj_prior == 0
    assert (m.optim.optimizer, m.optim.lr, m.optim.weight_decay, m.optim.decay_all) == ("adam", 1e-3, 1e-4, True)
    assert m.optim.schedule == "course" and m.optim.ema is False and m.optim.warmup_epochs == 0
    # flags given on the command line override the recipe, which overrides the preset
    assert course_config("--lr", "5e-4").module.optim.lr == 5e-4
    assert config_from_args(VOC_ARGS).recipe == "project"
    # every key of every recipe is a real setting
    for name, values in RECIPES.items():
        config_from_args([*VOC_ARGS, "--recipe", name])  # override() raises on an unknown key


def course_loss_per_scale(pred, target, anchors_cells):
    """The course's YoloLoss for one scale, written plainly from its definition (not this project's
    code): noobj BCE-with-logits, obj MSE of sigmoid to the IoU x 1, box MSE on (sigmoid xy, raw wh)
    against (xy, log(1e-16 + wh / anchor)), class cross-entropy; weights 10 / 1 / 10 / 1."""
    obj, noobj = target[..., 0] == 1, target[..., 0] == 0
    no_object = F.binary_cross_entropy_with_logits(pred[..., 0:1][noobj], target[..., 0:1][noobj])
    anchors = anchors_cells.reshape(1, 3, 1, 1, 2)
    box_preds = torch.cat([pred[..., 1:3].sigmoid(), pred[..., 3:5].exp() * anchors], dim=-1)
    p, t = box_preds[obj], target[..., 1:5][obj]
    p1, p2 = p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2  # midpoint -> corners, as the course
    t1, t2 = t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    inter = (torch.min(p2, t2) - torch.max(p1, t1)).clamp(min=0).prod(1)
    union = (p2 - p1).prod(1).abs() + (t2 - t1).prod(1).abs() - inter
    ious = (inter / (union + 1e-6)).detach()
    object_loss = F.mse_loss(pred[..., 0:1][obj].sigmoid().squeeze(1), ious * target[..., 0][obj])
    xy = pred[..., 1:3].sigmoid()
    twh = torch.log(1e-16 + target[..., 3:5] / anchors)
    box_loss = F.mse_loss(torch.cat([xy, pred[..., 3:5]], -1)[obj], torch.cat([target[..., 1:3], twh], -1)[obj])
    class_loss = F.cross_entropy(pred[..., 5:][obj], target[..., 5][obj].long())
    return 10 * box_loss + object_loss + 10 * no_object + class_loss, (box_loss, object_loss, no_object, class_loss)


def test_course_recipe_loss_equals_the_course_definition_on_voc_images(voc_mini):
    """A real batch (the overfit test's 32 voc-mini train images at 256, course assignment) and the course recipe's
    module at init (width 0.25): every term and the total equal the course's loss written plainly above."""
    from yolo.data.datamodule import VOCDataModule

    dm = VOCDataModule(voc_mini, train_sets=["2012/train"], val_sets=["2012/train"], batch_size=32,
                       sizes=(256,), val_size=256, mosaic_p=0.0, workers=0, progress=False)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    config = course_config("--val-size", "256", "--width", "0.25")  # the width is not part of the
    torch.manual_seed(0)  # recipe; 0.25 is the overfit test's and 16x cheaper than the preset's 1.0
    module = build_module(config, 20, [str(i) for i in range(20)])
    targets = module.encode_batch(batch)
    with torch.no_grad():
        outputs = module.model(batch["images"].float() / 255)
        ours = module.loss_fn(outputs, targets)
    expected_total, names = 0.0, ("loss_box", "loss_obj", "loss_noobj", "loss_cls")
    sums = dict.fromkeys(names, 0.0)
    for s, (o, t) in enumerate(zip(outputs, targets)):
        total, terms = course_loss_per_scale(o, t, torch.tensor(ANCHORS[s]) * o.shape[2])
        expected_total += float(total)
        for name, value in zip(names, terms):
            sums[name] += float(value)
    assert batch["images"].shape[0] == 32 and int((targets[0][..., 0] == 1).sum()) > 32  # real objects
    first_32 = (voc_mini / "VOCdevkit/VOC2012/ImageSets/Main/train.txt").read_text().split()[:32]
    assert [m["id"] for m in batch["meta"]] == first_32  # the overfit test's images (subset_of_voc_mini)
    for name in names:
        assert float(ours[name]) == pytest.approx(sums[name], rel=1e-5), name
    assert float(ours["loss"]) == pytest.approx(expected_total, rel=1e-5)
    assert LOSS_IOU not in ours


def test_course_recipe_total_on_the_hand_computed_example():
    """tests/test_loss.py's hand-worked one-box example under the course recipe's loss settings:
    total = 10 box + 1 obj (MSE of sigmoid to the IoU) + 10 noobj + 1 class, summed over scales."""
    loss = YoloLoss(build_module(course_config(), 20, [str(i) for i in range(20)]).loss_fn.config)
    outputs, targets = one_box_outputs()
    got = loss(outputs, targets)
    iou = 0.1536 / 0.3328  # scale 0 (S = 2), worked out in test_loss.py
    box0 = (0.01 + 0.01 + math.log(0.6 / 0.56) ** 2 + math.log(0.4 / 0.44) ** 2) / 4
    assert float(got["loss_obj"]) > 0 and LOSS_IOU not in got
    per_scale = [scale_terms(o, t, torch.tensor(a), 10.0, "mse") for o, t, a in zip(outputs, targets, ANCHORS)]
    assert float(per_scale[0]["loss_obj"]) == pytest.approx((0.5 - iou) ** 2, rel=1e-5)
    assert float(per_scale[0]["loss_box"]) == pytest.approx(box0, rel=1e-5)
    expected = sum(10 * p["loss_box"] + p["loss_obj"] + 10 * p["loss_noobj"] + p["loss_cls"] for p in per_scale)
    assert float(got["loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert float(got["loss_noobj"]) == pytest.approx(3 * math.log(2), rel=1e-6)  # ln 2 on each scale
    assert float(got["loss_cls"]) == pytest.approx(3 * math.log(20), rel=1e-6)


def test_course_schedule_is_torch_one_cycle_as_the_course_calls_it():
    """LR and Adam's beta1 at every step equal torch's OneCycleLR with the course's arguments
    (max_lr, pct_start = 5 / epochs, div 100, final div 100, linear, two phases); past the end the
    last value is held instead of raising."""
    epochs, per_epoch = 12, 7
    config = course_config("--epochs", str(epochs))
    module = build_module(config, 20, [str(i) for i in range(20)])
    module.trainer = SimpleNamespace(estimated_stepping_batches=epochs * per_epoch, max_epochs=epochs)
    setup = module.configure_optimizers()
    opt, sched = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.Adam) and isinstance(sched, CourseOneCycleLR)
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)  # L2 on every parameter
    ref_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-5, weight_decay=1e-4)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=1e-3, steps_per_epoch=per_epoch, epochs=epochs,
                                              pct_start=5 / epochs, div_factor=100, three_phase=False,
                                              final_div_factor=100, anneal_strategy="linear")
    for _ in range(epochs * per_epoch - 1):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
        assert opt.param_groups[0]["betas"][0] == pytest.approx(ref_opt.param_groups[0]["betas"][0], rel=1e-12)
        opt.step(), sched.step(), ref_opt.step(), ref.step()
    last = opt.param_groups[0]["lr"]
    assert last == pytest.approx(1e-3 / 100 / 100, rel=1e-9)
    for _ in range(5):  # a resumed run's extra steps: held, no ValueError
        opt.step(), sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(last)


# ------------------------------------------------------------------ bias prior
def test_objectness_prior_hand_computed():
    model = YOLOv3(20, 0.125)
    before = [m.pred.bias.clone() for m in model.modules() if hasattr(m, "pred")]
    biases = set_objectness_prior(model, 6.0, 416)
    for value, size in zip(biases, (13, 26, 52)):
        p = 6.0 / (3 * size * size)
        assert value == pytest.approx(math.log(p / (1 - p)))
    heads = [m for m in model.modules() if hasattr(m, "pred")]
    for head, value, old in zip(heads, biases, before):
        bias = head.pred.bias.view(3, 25)
        assert torch.allclose(bias[:, 0], torch.full((3,), value))
        assert torch.equal(bias[:, 1:], old.view(3, 25)[:, 1:])  # box and class biases untouched
    # at init the mean objectness of a batch is near the prior, not near 0.5
    with torch.no_grad():
        out = model(torch.rand(2, 3, 416, 416))
    for o, size in zip(out, grid_sizes(416)):
        assert float(o[..., 0].sigmoid().mean()) < 0.05


def test_module_applies_the_prior_only_when_asked():
    plain = YoloLitModule(num_classes=20, width=0.125)
    primed = YoloLitModule(num_classes=20, width=0.125, obj_prior=4.0, image_size=256)
    def head(net):
        return [x for x in net.modules() if hasattr(x, "pred")][0].pred.bias.view(3, 25)[:, 0]
    p = 4.0 / (3 * 8 * 8)
    assert torch.allclose(head(primed.model), torch.full((3,), math.log(p / (1 - p))))
    assert not torch.allclose(head(plain.model), head(primed.model))
    assert torch.allclose(head(primed.ema.module), head(primed.model))  # the EMA starts primed too


# ------------------------------------------------------------------ more positives
def test_shape_positives_add_owners_and_leave_the_course_rule_intact():
    # a 0.1 x 0.1 box at (0.5, 0.5) on a 256 px input; stride 16 (S = 16): the anchors are
    # (.07,.15) (.15,.11) (.14,.29); worst side ratios .1/.07=1.43 & .15/.1=1.5 -> 1.5;
    # .15/.1=1.5 & .11/.1=1.1 -> 1.5; .14/.1=1.4 & .29/.1=2.9 -> 2.9
    boxes = torch.tensor([[0.5, 0.5, 0.1, 0.1], [0.2, 0.3, 0.3, 0.2]])
    labels, bi = torch.tensor([3, 7]), torch.tensor([0, 0])
    course = encode(boxes, labels, bi, 1, 256)
    more = encode(boxes, labels, bi, 1, 256, anchor_ratio=2.0)
    for c, m in zip(course, more):
        owned = c[..., 0] == 1
        assert torch.equal(c[owned], m[owned])  # every course owner kept, values and all
    s16 = more[1][0, :, 8, 8]  # cell (8, 8) of image 0, three anchors
    assert torch.equal(s16[:, 0], torch.tensor([1.0, 1.0, course[1][0, 2, 8, 8, 0].item()]))
    assert course[1][0, 2, 8, 8, 0] != 1
    for a in (0, 1):
        assert torch.allclose(s16[a], torch.tensor([1.0, 0.0, 0.0, 1.6, 1.6, 3.0]))
    assert torch.equal(encode(boxes, labels, bi, 1, 256, anchor_ratio=0.0)[1], course[1])


def test_shape_positives_earliest_box_wins_a_shared_slot():
    # two boxes of the same shape in the same cell: the course gives them two anchors; with a loose
    # ratio both want the third slot, which goes to the first box
    boxes = torch.tensor([[0.51, 0.51, 0.1, 0.1], [0.52, 0.52, 0.1, 0.1]])
    more = encode(boxes, torch.tensor([1, 2]), torch.tensor([0, 0]), 1, 256, anchor_ratio=4.0)
    cell = more[1][0, :, 8, 8]
    assert (cell[:, 0] == 1).all()
    course = encode(boxes, torch.tensor([1, 2]), torch.tensor([0, 0]), 1, 256)[1][0, :, 8, 8]
    free = int(torch.nonzero(course[:, 0] != 1)[0])
    assert cell[free, 5] == 1.0  # the first box's class


# ------------------------------------------------------------------ loss options
def one_box_outputs():
    boxes = torch.tensor([[0.3, 0.3, 0.3, 0.2]])  # tests/test_loss.py's box: scale 0 of 64 px, S = 2
    targets = encode(boxes, torch.tensor([4]), torch.tensor([0]), 1, 64)
    return [torch.zeros(1, 3, s, s, 25) for s in (2, 4, 8)], targets


def test_giou_term_hand_computed():
    outputs, targets = one_box_outputs()
    terms = scale_terms(outputs[0], targets[0], torch.tensor(ANCHORS[0]), 10.0, "bce", iou_loss="giou")
    # predicted (.22, .28, .78, .72), target (.3, .4, .9, .8) in cells (see test_loss): IoU .1536/.3328;
    # the enclosing box (.22, .28, .9, .8) has area .68 * .52 = .3536
    iou, union, hull = 0.1536 / 0.3328, 0.3328, 0.68 * 0.52
    giou = iou - (hull - union) / hull
    assert terms[LOSS_IOU].item() == pytest.approx(1 - giou, rel=1e-5)
    total = YoloLoss(LossConfig(lambda_iou=2.0))(outputs, targets)
    plain = YoloLoss(LossConfig())(outputs, targets)
    assert total[LOSS_IOU] > 0 and LOSS_IOU not in plain
    assert total["loss"].item() == pytest.approx(plain["loss"].item() + 2.0 * total[LOSS_IOU].item(), rel=1e-6)


def test_label_smoothing_hand_computed():
    outputs, targets = one_box_outputs()
    outputs[0][0, 0, 0, 0, 5 + 4] = 2.0  # the owner's true class logit
    eps = 0.1
    terms = scale_terms(outputs[0], targets[0], torch.tensor(ANCHORS[0]), 10.0, "bce", label_smoothing=eps)
    log_z = math.log(math.exp(2.0) + 19)
    nll_true, nll_other = log_z - 2.0, log_z  # -log softmax of the true class and of any other
    expected = (1 - eps) * nll_true + eps * (nll_true + 19 * nll_other) / 20
    assert terms["loss_cls"].item() == pytest.approx(expected, rel=1e-6)


def test_objectness_balance_weights_each_scale():
    torch.manual_seed(1)
    _, targets = one_box_outputs()
    outputs = [torch.randn(1, 3, s, s, 25) for s in (2, 4, 8)]
    balanced = YoloLoss(LossConfig(obj_balance=True))(outputs, targets)
    per_scale = [scale_terms(o, t, torch.tensor(a), 10.0, "bce") for o, t, a in zip(outputs, targets, ANCHORS)]
    for name in ("loss_obj", "loss_noobj"):
        expected = sum(w * p[name].item() for w, p in zip(OBJ_BALANCE, per_scale))
        assert balanced[name].item() == pytest.approx(expected, rel=1e-6)
    assert balanced["loss_box"].item() == pytest.approx(sum(p["loss_box"].item() for p in per_scale), rel=1e-6)


# ------------------------------------------------------------------ warm-up
def test_warmup_cosine_and_bias_warmup_values():
    total, warm = 100, 10
    assert warmup_cosine(0, total, warm) == pytest.approx(0.1)
    assert warmup_cosine(4, total, warm) == pytest.approx(0.5)
    assert warmup_cosine(10, total, warm) == pytest.approx(1.0)
    mid = warmup_cosine(55, total, warm)  # halfway down the cosine
    assert mid == pytest.approx(0.5 + 0.5 / (1e4 * 25), rel=1e-6)
    assert warmup_cosine(10_000, total, warm) == pytest.approx(1 / (1e4 * 25))
    lam = bias_warmup(lambda s: warmup_cosine(s, total, warm), warm, start=10.0)
    assert lam(0) == pytest.approx(10.0)
    assert lam(5) == pytest.approx(10.0 + (warmup_cosine(5, total, warm) - 10.0) * 0.5)
    assert lam(10) == pytest.approx(1.0) and lam(50) == warmup_cosine(50, total, warm)
    assert one_cycle(0, total) == pytest.approx(1 / 25)  # the default without warm-up is unchanged


def test_configure_optimizers_bias_group_and_decay():
    module = YoloLitModule(num_classes=20, width=0.125, warmup_epochs=2.0, warmup_bias_lr=0.05, lr=1e-3)
    module.trainer = SimpleNamespace(estimated_stepping_batches=100, max_epochs=10)
    setup = module.configure_optimizers()
    opt, sched = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    weights, norms, biases = opt.param_groups
    assert all(p.ndim > 1 for p in weights["params"]) and weights["weight_decay"] == 5e-4
    assert norms["weight_decay"] == 0 and biases["weight_decay"] == 0
    n_bias = sum(1 for name, p in module.model.named_parameters() if p.ndim == 1 and name.endswith("bias"))
    assert len(biases["params"]) == n_bias
    assert biases["lr"] == pytest.approx(0.05) and weights["lr"] == pytest.approx(1e-3 / 20)  # 20 warm steps
    for _ in range(20):
        opt.step(), sched.step()
    assert biases["lr"] == pytest.approx(weights["lr"]) == pytest.approx(1e-3)
    plain = YoloLitModule(num_classes=20, width=0.125, decay_all=True, warmup_bias_lr=0.0)
    plain.trainer = SimpleNamespace(estimated_stepping_batches=100, max_epochs=10)
    groups = plain.configure_optimizers()["optimizer"].param_groups
    assert len(groups) == 2 and all(g["weight_decay"] == 5e-4 for g in groups)


# ------------------------------------------------------------------ flags
@pytest.mark.parametrize("flags", [
    ["--obj-prior", "-1"], ["--lambda-iou", "-0.5"], ["--label-smoothing", "1"],
    ["--warmup-epochs", "-1"], ["--warmup-epochs", "nan"], ["--anchor-ratio", "0.5"], ["--warmup-bias-lr", "-1"],
])
def test_bad_recipe_values_are_refused(flags):
    with pytest.raises(ConfigError):
        check_config(config_from_args(["--preset", "demo", *flags]))
