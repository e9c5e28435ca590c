"""Multi-resolution batches: allowed sizes, the same size on every rank, targets that decode back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from yolo.boxes import normalize, xyxy_to_cxcywh
from yolo.data.datamodule import VOCDataModule
from yolo.data.demo import write_demo
from yolo.data.multiscale import MultiScaleBatchSampler, multiscale_sizes, size_for_step
from yolo.targets import decode_targets, encode

SIZES = multiscale_sizes(320, 608)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo") / "demo", n_train=24, n_val=8, n_test=8, seed=0)


def test_multiscale_sizes():
    assert SIZES == (320, 352, 384, 416, 448, 480, 512, 544, 576, 608)
    with pytest.raises(ValueError):
        multiscale_sizes(300, 608)


def test_sizes_come_from_the_allowed_set_and_are_pure():
    sizes = [size_for_step(7, e, s, SIZES) for e in range(5) for s in range(400)]
    assert set(sizes) == set(SIZES)  # only allowed sizes, and all of them occur
    counts = np.bincount([SIZES.index(s) for s in sizes])
    assert counts.min() > 120  # roughly uniform over 2000 draws (expected 200 each)
    assert sizes == [size_for_step(7, e, s, SIZES) for e in range(5) for s in range(400)]
    assert sizes != [size_for_step(8, e, s, SIZES) for e in range(5) for s in range(400)]


def test_two_ranks_agree_on_sizes_and_split_the_data():
    ranks = [MultiScaleBatchSampler(103, 8, SIZES, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for epoch in (0, 1):
        for r in ranks:
            r.set_epoch(epoch)
        b0, b1 = list(ranks[0]), list(ranks[1])
        assert len(b0) == len(b1) == len(ranks[0]) == 51 // 8
        for x, y in zip(b0, b1):
            assert {k[1] for k in x} == {k[1] for k in y} and len({k[1] for k in x}) == 1
        i0 = {k[0] for b in b0 for k in b}
        i1 = {k[0] for b in b1 for k in b}
        assert not i0 & i1 and len(i0) == len(i1) == 48
    ranks[0].set_epoch(0)
    first = list(ranks[0])
    ranks[0].set_epoch(1)
    assert list(ranks[0]) != first  # a new order and new sizes each epoch
    ranks[0].set_epoch(0)
    assert list(ranks[0]) == first  # reproducible from (seed, epoch)


def test_every_sample_once_per_epoch_without_drop_last():
    s = MultiScaleBatchSampler(10, 4, (64,), seed=0, drop_last=False)
    batches = list(s)
    assert [len(b) for b in batches] == [4, 4, 2] and sorted(k[0] for b in batches for k in b) == list(range(10))


def _datamodule(root, tmp_path, **kw):
    args = {"batch_size": 4, "sizes": (320, 384), "val_size": 416, "workers": 0, "cache_dir": tmp_path,
            "progress": False, "seed": 3}
    args.update(kw)
    return VOCDataModule(root, train_sets=["demo/train"], val_sets=["demo/val"], **args)


def test_encoded_targets_of_resized_batches_decode_back(demo_root, tmp_path):
    dm = _datamodule(demo_root, tmp_path, sizes=(320, 608), mosaic_p=0.75)
    dm.setup("fit")
    seen_sizes = set()
    for batch in list(dm.train_dataloader())[:4]:
        size = batch["images"].shape[-1]
        seen_sizes.add(size)
        b = batch["images"].shape[0]
        boxes = normalize(xyxy_to_cxcywh(batch["boxes"]), size, size)
        targets = encode(boxes, batch["labels"], batch["batch_idx"], b, size)
        assert [t.shape[2] for t in targets] == [size // 32, size // 16, size // 8]
        found = torch.zeros(len(boxes), dtype=torch.bool)
        for scale in range(3):
            dec, labels, img = decode_targets(targets, scale)
            # every decoded box is one of the batch's boxes (same image, label, coordinates)
            d = (dec[:, None] - boxes[None]).abs().amax(-1)  # (M, N)
            match = (d < 1e-5) & (labels[:, None] == batch["labels"][None]) & (img[:, None] == batch["batch_idx"][None])
            assert match.any(1).all()
            found |= match.any(0)
        # a box whose finest-scale cell holds no other box of its image has a slot of its own
        s = size // 8
        cell = batch["batch_idx"] * s * s + (boxes[:, 1] * s).long().clamp(max=s - 1) * s + (boxes[:, 0] * s).long().clamp(max=s - 1)
        unique = torch.bincount(cell)[cell] == 1
        assert found[unique].all() and unique.sum() > 0
    assert seen_sizes <= {320, 608}


def test_datamodule_batches_follow_the_contract(demo_root, tmp_path):
    dm = _datamodule(demo_root, tmp_path)
    assert dm.classes == ("circle", "square", "triangle", "cross", "diamond") and dm.num_classes == 5
    dm.setup("fit")
    for batch in dm.train_dataloader():
        imgs = batch["images"]
        size = imgs.shape[-1]
        assert imgs.dtype == torch.uint8 and imgs.shape == (4, 3, size, size) and size in (320, 384)
        assert batch["boxes"].dtype == torch.float32 and batch["labels"].dtype == torch.int64
        assert batch["batch_idx"].dtype == torch.int64 and batch["difficult"].dtype == torch.bool
        assert len(batch["boxes"]) == len(batch["labels"]) == len(batch["batch_idx"]) == len(batch["difficult"])
        assert (batch["boxes"] >= 0).all() and (batch["boxes"] <= size).all()
        assert (batch["batch_idx"] < 4).all() and len(batch["meta"]) == 4
        assert {"id", "path", "orig_size", "size", "mosaic"} <= set(batch["meta"][0])
    val = list(dm.val_dataloader())
    assert sum(len(b["meta"]) for b in val) == 8
    for batch in val:
        assert batch["images"].shape[-2:] == (416, 416)
        for meta in batch["meta"]:
            assert not meta["mosaic"] and {"scale", "pad_x", "pad_y", "orig_size"} <= set(meta)


def test_datamodule_ranks_from_the_trainer(demo_root, tmp_path):
    loaders = []
    for rank in (0, 1):
        dm = _datamodule(demo_root, tmp_path, batch_size=3)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        dm.setup("fit")
        loaders.append(dm.train_dataloader())
    s0, s1 = (ld.batch_sampler for ld in loaders)
    assert (s0.rank, s0.world_size, s1.rank) == (0, 2, 1)
    b0, b1 = list(s0), list(s1)
    assert len(b0) == len(b1) == 4 and [b[0][1] for b in b0] == [b[0][1] for b in b1]
    assert not {k[0] for b in b0 for k in b} & {k[0] for b in b1 for k in b}
    val = [len(list(ld.sampler)) for ld in (dm.val_dataloader(),)]
    assert val == [4]  # 8 val images, half per rank


def test_workers_and_ram_cache_give_the_same_batches(demo_root, tmp_path):
    plain = _datamodule(demo_root, tmp_path)
    cached = _datamodule(demo_root, tmp_path, workers=2, cache_ram=True, persistent_workers=True)
    for dm in (plain, cached):
        dm.setup("fit")
    a, b = list(plain.train_dataloader()), list(cached.train_dataloader())
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):
        assert x["images"].shape == y["images"].shape
        assert [m["id"] for m in x["meta"]] == [m["id"] for m in y["meta"]]
    assert cached.datasets["train"].base.cache.filled.all()


def test_lightning_fit_uses_the_sampler(demo_root, tmp_path):
    import pytorch_lightning as pl

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.sizes, self.epochs = [], []

        def training_step(self, batch, batch_idx):
            self.sizes.append(batch["images"].shape[-1])
            return (self.w * batch["images"].float().mean()).sum()

        def on_train_epoch_start(self):
            self.epochs.append(self.trainer.train_dataloader.batch_sampler.epoch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    dm = _datamodule(demo_root, tmp_path)
    probe = Probe()
    trainer = pl.Trainer(max_epochs=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                         accelerator="cpu", devices=1)
    trainer.fit(probe, datamodule=dm)
    assert probe.epochs == [0, 1]  # Lightning called set_epoch on the batch sampler
    expected = [size_for_step(3, e, s, (320, 384)) for e in (0, 1) for s in range(6)]
    assert probe.sizes == expected


def test_explicit_splits_need_no_default_split_names(voc_mini, tmp_path):
    """A folder whose only split is custom works when every split is named explicitly."""
    import shutil

    from yolo.data.datamodule import VOCDataModule

    src = voc_mini / "VOCdevkit" / "VOC2012"
    dst = tmp_path / "VOCdevkit" / "VOC2012"
    (dst / "ImageSets" / "Main").mkdir(parents=True)
    ids = (src / "ImageSets" / "Main" / "train.txt").read_text().split()[:5]
    for folder, ext in (("JPEGImages", "jpg"), ("Annotations", "xml")):  # copies: the readers refuse
        (dst / folder).mkdir()  # links that lead out of the dataset folder
        for i in ids:
            shutil.copyfile(src / folder / f"{i}.{ext}", dst / folder / f"{i}.{ext}")
    (dst / "ImageSets" / "Main" / "mine.txt").write_text("\n".join(ids) + "\n")
    dm = VOCDataModule(tmp_path, train_sets=["mine"], val_sets=["mine"], test_sets=["mine"],
                       workers=0, progress=False, cache_dir=tmp_path / "cache")
    dm.setup("validate")
    assert len(dm.datasets["val"]) == 5
