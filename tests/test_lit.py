"""The LightningModule: schedule, EMA, shared step, non-finite skipping, a short fit on toy data."""

from __future__ import annotations

import dataclasses
import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from yolo.config import ModuleConfig, OptimConfig, leaves, metric_key
from yolo.lit import ModelEMA, YoloLitModule, ground_truth, one_cycle
from yolo.weights import read_checkpoint


class Squares(Dataset):
    """Images with one or two solid squares (class = colour) on noise; batch dicts like yolo.data."""

    def __init__(self, n: int, size: int = 96, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            img = (torch.rand(3, size, size, generator=g) * 60).to(torch.uint8)
            boxes, labels = [], []
            for k in range(int(torch.randint(1, 3, (1,), generator=g))):
                side = int(torch.randint(size // 5, size // 2, (1,), generator=g))
                x, y = (int(v) for v in torch.randint(0, size - side, (2,), generator=g))
                label = int(torch.randint(0, 2, (1,), generator=g))
                img[:, y:y + side, x:x + side] = torch.tensor([[230], [40], [40]] if label == 0
                                                              else [[40], [230], [40]], dtype=torch.uint8)[:, :, None]
                boxes.append([x, y, x + side, y + side])
                labels.append(label)
            self.items.append((img, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    images = torch.stack([i[0] for i in items])
    boxes = torch.cat([i[1] for i in items])
    labels = torch.cat([i[2] for i in items])
    batch_idx = torch.cat([torch.full((len(i[2]),), k) for k, i in enumerate(items)])
    return {"images": images, "boxes": boxes, "labels": labels, "batch_idx": batch_idx,
            "difficult": torch.zeros_like(labels, dtype=torch.bool)}


def loader(n=8, batch=4, seed=0):
    return DataLoader(Squares(n, seed=seed), batch_size=batch, collate_fn=collate)


def test_one_cycle_shape():
    total = 100
    assert one_cycle(0, total) == pytest.approx(1 / 25)
    assert one_cycle(30, total) == pytest.approx(1.0)
    assert one_cycle(15, total) == pytest.approx(1 / 25 + (1 - 1 / 25) * 0.5)
    assert one_cycle(100, total) == pytest.approx(1 / 25e4)
    assert one_cycle(150, total) == one_cycle(100, total)  # clamped, never raises
    values = [one_cycle(s, total) for s in range(101)]
    assert all(a <= b for a, b in zip(values[:30], values[1:31]))
    assert all(a >= b for a, b in zip(values[30:], values[31:]))


def test_ema_update_matches_formula():
    model = torch.nn.Linear(2, 1)
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1.0))
    assert torch.allclose(ema.module.weight, d * before + (1 - d) * model.weight)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert int(ema.updates) == 1


def test_ground_truth_split_per_image():
    batch = {"images": torch.zeros(3, 3, 32, 32), "boxes": torch.arange(12.0).view(3, 4),
             "labels": torch.tensor([1, 2, 3]), "batch_idx": torch.tensor([2, 0, 2])}
    gts = ground_truth(batch)
    assert [len(g["labels"]) for g in gts] == [1, 0, 2]
    assert gts[2]["labels"].tolist() == [1, 3] and not gts[2]["difficult"].any()


def make_trainer(tmp_path, epochs, **kw):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, **kw)


def test_short_fit_learns_and_logs_every_metric(tmp_path):
    torch.manual_seed(0)
    # the settings this test was written for (the default: PyTorch's init, the cosine one-cycle,
    # class weight 1), given explicitly so that a change of default does not change this test
    module = YoloLitModule(num_classes=2, class_names=["red", "green"], width=0.25, lr=3e-3,
                           ema=True, ema_decay=0.9, ema_tau=5.0, obj_prior=0.0, warmup_epochs=0.0,
                           warmup_bias_lr=0.0, lambda_class=1.0)
    train, val = loader(16, 4, seed=1), loader(8, 8, seed=1)  # val: the first 8 training images
    start = make_trainer(tmp_path, 0)
    initial = start.validate(module, val, verbose=False)[0]
    # the objectness prior (--obj-prior 6, objects per image): at 96 px the coarse grid has only
    # 3 x 3 cells, whose prior 6 / 27 is above the 0.05 threshold; the two finer grids are below it
    primed = start.validate(YoloLitModule(num_classes=2, width=0.25, image_size=96, obj_prior=6.0), val, verbose=False)[0]
    assert primed[metric_key("val", "noobj_acc")] > 70.0
    trainer = make_trainer(tmp_path, 35, num_sanity_val_steps=0)
    trainer.fit(module, train, val)
    m = trainer.callback_metrics
    for name in ("loss", "loss_box", "loss_obj", "loss_noobj", "loss_cls", "class_acc",
                 "noobj_acc", "obj_acc", "map50", "map50_voc07"):
        assert metric_key("val", name) in m, name
    for name in ("loss", "class_acc", "noobj_acc", "obj_acc"):
        assert metric_key("train", name) in m or metric_key("train", name) + "_epoch" in m, name
    # untrained: loss ~35 (10 x BCE(0.5) on every background cell dominates), mAP 0
    assert initial[metric_key("val", "loss")] > 20.0
    assert float(m[metric_key("val", "loss")]) < 6.0
    assert initial[metric_key("val", "noobj_acc")] < 5.0  # every cell starts near sigmoid(0) = .5
    assert float(m[metric_key("val", "noobj_acc")]) > 60.0
    assert float(m[metric_key("val", "map50")]) > 0.3
    assert int(module.ema.updates) == trainer.global_step == 35 * 4


def test_nonfinite_loss_skips_the_update(tmp_path):
    module = YoloLitModule(num_classes=2, width=0.25, ema=True, map_every=0)
    real_loss = module.loss_fn.forward
    calls = {"n": 0}

    def poisoned(outputs, targets):
        calls["n"] += 1
        out = real_loss(outputs, targets)
        if calls["n"] == 2:  # the second training step
            out = {k: v * float("nan") for k, v in out.items()}
        return out

    module.loss_fn.forward = poisoned
    snapshots = []

    class Snap(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots.append(pl_module.model.layers["stem"].conv.weight.detach().clone())

    trainer = make_trainer(tmp_path, 1, callbacks=[Snap()], limit_val_batches=0)
    trainer.fit(module, loader(12, 4))
    assert len(snapshots) == 3
    assert torch.equal(snapshots[0], snapshots[1])  # step 2 changed nothing
    assert not torch.equal(snapshots[1], snapshots[2])  # step 3 trained again
    assert module.nonfinite_total == 1 and module.nonfinite_streak == 0
    assert int(module.ema.updates) == 2  # the skipped step did not touch the EMA
    assert all(torch.isfinite(p).all() for p in module.model.parameters())


def test_repeated_nonfinite_steps_stop_the_run(tmp_path, capsys):
    module = YoloLitModule(num_classes=2, width=0.25, ema=False, map_every=0, max_nonfinite=2)
    real_loss = module.loss_fn.forward
    module.loss_fn.forward = lambda o, t: {k: v * float("nan") for k, v in real_loss(o, t).items()}
    trainer = make_trainer(tmp_path, 3, limit_val_batches=0)
    trainer.fit(module, loader(16, 4))
    assert trainer.global_step <= 2 and module.nonfinite_total == 2
    assert "non-finite steps in a row" in capsys.readouterr().out


def test_checkpoint_hyper_parameters_are_the_configs_plain_values(tmp_path):
    """The module takes one ModuleConfig (or its asdict); a Lightning checkpoint holds its leaves,
    the class names, anchors and validation size as plain values that weights_only loads."""
    config = ModuleConfig(optim=OptimConfig(lr=2e-3, ema=False))
    config.model.num_classes, config.model.width, config.val.map_every = 2, 0.125, 0
    module = YoloLitModule(dataclasses.asdict(config), ["red", "green"], image_size=96)
    assert module.config == config
    trainer = make_trainer(tmp_path, 1, limit_train_batches=1)
    trainer.fit(module, loader(4, 4))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    hp = torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hp == {**leaves(config), "class_names": ["red", "green"], "image_size": 96,
                  "anchors": [[list(a) for a in scale] for scale in module.hparams.anchors]}
    assert hp["lr"] == 2e-3 and hp["num_classes"] == 2 and hp["width"] == 0.125
    state = read_checkpoint(path)
    assert (state.num_classes, state.width, state.class_names, state.image_size) == (2, 0.125, ["red", "green"], 96)
    # the saved leaves rebuild the same module settings (what load_from_checkpoint does)
    rebuilt = YoloLitModule(**{k: v for k, v in hp.items()})
    assert rebuilt.config == config and rebuilt.hparams.image_size == 96


def test_settings_by_name_override_the_config_and_unknown_names_fail():
    module = YoloLitModule(ModuleConfig(), num_classes=2, width=0.125, lambda_box=2.0, max_detections=7)
    assert module.config.loss.lambda_box == 2.0 and module.nms.max_detections == 7
    assert module.model.num_classes == 2 and ModuleConfig().val.nms.max_detections == 300
    with pytest.raises(TypeError, match="no setting"):
        YoloLitModule(num_classes=2, width=0.125, map_conf=0.1)  # the old name of conf_threshold
