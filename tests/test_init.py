"""train.py --init (a new run from a file's weights) and --freeze-backbone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.callbacks import Callback

import yolo.trainer as trainer_module
from train import config_from_args
from yolo.data.demo import DEMO_CLASSES, write_demo
from yolo.model import YOLOv3
from yolo.trainer import fit
from yolo.transfer import BACKBONE, init_from
from yolo.weights.darknet import write_weights


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return write_demo(tmp_path_factory.mktemp("data") / "demo", n_train=8, n_val=4, n_test=2, seed=5)


def file_model(num_classes: int = 80) -> YOLOv3:
    torch.manual_seed(7)
    model = YOLOv3(num_classes, 0.25)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "running" in name:
                t.copy_(torch.rand(t.shape) + 0.5)  # distinct from a fresh model's 0 / 1
    return model.eval()


class Snapshots(Callback):
    """The network's state when training starts and at the end of each training epoch."""

    def __init__(self) -> None:
        self.start: dict | None = None
        self.epochs: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = {k: v.clone() for k, v in pl_module.model.state_dict().items()}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append({k: v.clone() for k, v in pl_module.model.state_dict().items()})


def run(demo: Path, tmp_path: Path, monkeypatch, *flags: str) -> Snapshots:
    snapshots = Snapshots()
    original = trainer_module.checkpoint_callbacks
    monkeypatch.setattr(trainer_module, "checkpoint_callbacks", lambda d, c: [*original(d, c), snapshots])
    config = config_from_args([
        "--data", str(demo), "--train-sets", "train", "--val-sets", "val", "--width", "0.25",
        "--batch-size", "4", "--min-size", "64", "--max-size", "64", "--val-size", "64", "--mosaic", "0",
        "--workers", "0", "--precision", "32-true", "--accelerator", "cpu", "--devices", "1",
        "--log-dir", str(tmp_path / "logs"), "--name", "init", "--limit-val-batches", "1",
        "--lr", "0.01", *flags])
    fit(config)
    return snapshots


def backbone(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.split(".")[1] in BACKBONE}


def test_init_from_a_backbone_only_file_then_unfreeze(demo, tmp_path, monkeypatch):
    source = file_model()
    path = write_weights(source, tmp_path / "darknet53.conv.74", convs=52)
    expected = backbone(source.state_dict())
    snaps = run(demo, tmp_path, monkeypatch, "--init", str(path), "--freeze-backbone", "1", "--epochs", "2")
    for key, value in expected.items():  # loaded: the file's tensors, BatchNorm statistics included
        if value.dtype.is_floating_point:
            assert torch.equal(snaps.start[key], value), key
    head = "layers.head32_out.predict.pred.weight"
    assert not torch.equal(snaps.start[head], source.state_dict()[head][: snaps.start[head].shape[0]])
    frozen, trained = snaps.epochs
    for key, value in expected.items():  # epoch 1 frozen: nothing in the backbone moved
        assert torch.equal(frozen[key], snaps.start[key]), key
    assert not torch.equal(frozen[head], snaps.start[head])  # while the head trained
    moved = [k for k in expected if expected[k].dtype.is_floating_point
             and not torch.equal(trained[k], snaps.start[k])]
    assert len(moved) > len(expected) // 2  # epoch 2: unfrozen, the backbone trains


def test_init_from_a_full_file_keeps_what_matches(demo, tmp_path, monkeypatch):
    source = file_model(80)
    path = write_weights(source, tmp_path / "yolov3.weights")
    snaps = run(demo, tmp_path, monkeypatch, "--init", str(path), "--epochs", "1")
    start = snaps.start
    key = "layers.stage4.blocks.3.expand.conv.weight"
    assert torch.equal(start[key], source.state_dict()[key])
    # the head: objectness and box rows from the file, class rows fresh (no demo class is in COCO)
    bias = "layers.head16_out.predict.pred.bias"
    ours, theirs = start[bias].view(3, 5 + len(DEMO_CLASSES)), source.state_dict()[bias].view(3, 85)
    assert torch.equal(ours[:, :5], theirs[:, :5])
    assert not any(torch.equal(ours[:, 5 + j], theirs[:, 5 + k]) for j in range(5) for k in range(80))
    assert len(snaps.epochs) == 1  # and it trained
    assert not torch.equal(snaps.epochs[0][key], start[key])


def test_init_needs_the_files_width(tmp_path):
    path = write_weights(file_model(20), tmp_path / "w.weights")
    with pytest.raises(ValueError, match=r"fits width 0.25 with 20 classes: pass --width 0.25"):
        init_from(path, YOLOv3(20, 0.5), [f"c{i}" for i in range(20)])
    with pytest.raises(SystemExit, match="--init: .*not found"):
        module = SimpleNamespace(model=YOLOv3(1, 0.25), ema=None)
        trainer_module.init_weights(module, str(tmp_path / "missing.weights"), ["a"])
