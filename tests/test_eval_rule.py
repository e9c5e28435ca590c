"""One rule from an image file to the model's input (issue 21, item 12).

Training-time validation (``EvalDataset`` + the LightningModule's validation step), the Detector and
``python -m yolo.evaluate`` (which the Evaluate page shares: ``predict_samples`` over
``DetectionDataset`` samples) must read the same pixels and score the same detections, so one
checkpoint has one mAP. At 128 px, voc-mini's 500 px JPEGs are over twice the input: a reduced
(1/2) JPEG decode, which validation used to take, gives other pixels than the full decode the
Detector takes; and non-square images put boxes in the padding, which validation used to clip to
the square instead of the image.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from yolo.weights import save_weights
from yolo.config import MAP50, VOC_CLASSES, metric_key

SIZE, N = 128, 8
SPLIT = "2012/val"


@pytest.fixture(scope="module")
def index(voc_mini, tmp_path_factory):
    from yolo.data.layout import build_index

    return build_index([voc_mini], [SPLIT], VOC_CLASSES, tmp_path_factory.mktemp("cache"), progress=False)


def test_eval_samples_are_the_detectors_input(index):
    """EvalDataset pixels (no cache, and with the RAM cache) == ``model_input`` == Detector.prepare."""
    from yolo.data.datasets import DetectionDataset, EvalDataset, ImageCache
    from yolo.detect import Detector, to_input
    from yolo.imageio import model_input
    from yolo.model import YOLOv3

    detector = Detector(YOLOv3(20, 0.25), image_size=SIZE)
    plain = EvalDataset(DetectionDataset(index), SIZE)
    cached = EvalDataset(DetectionDataset(index, ImageCache(index, SIZE, exact=True).fill(1, False)), SIZE)
    for i in range(N):
        path = str(index.paths[i])
        want, record = model_input(path, SIZE)
        assert max(index.sizes[i]) >= 2 * SIZE  # the case a reduced decode would take
        for dataset in (plain, cached):
            sample = dataset[i]
            assert np.array_equal(sample["image"], want), f"image {i}: evaluation pixels differ from model_input"
            assert sample["meta"]["scale"] == record.scale and sample["meta"]["pad_y"] == record.pad_y
        _, tensor, lb = detector.prepare(path)
        assert torch.equal(tensor, to_input(want)) and lb == record


@pytest.fixture(scope="module")
def trained(index, tmp_path_factory):
    """Width 0.25 overfitted on the first N val images at 128 (Adam, 80 steps) so that mAP is far
    from 0 and a changed detection moves it."""
    from yolo.data.collate import collate
    from yolo.data.datasets import DetectionDataset, EvalDataset
    from yolo.lit import YoloLitModule

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine: 0.2 CPU-s per step, where 2 spinning threads took 14x the wall time
    batch = collate([EvalDataset(DetectionDataset(index), SIZE)[i] for i in range(N)])
    lit = YoloLitModule(num_classes=20, width=0.25, ema=False, obj_prior=6.0, lambda_class=5.0, image_size=SIZE)
    optimizer = torch.optim.Adam(lit.model.parameters(), lr=3e-3)
    x, targets = batch["images"].float() / 255, lit.encode_batch(batch)
    for _ in range(80):
        loss = lit.loss_fn(lit.model.train()(x), targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    lit.eval()
    return lit, save_weights(lit.model, tmp_path_factory.mktemp("trained") / "trained.pt")


@pytest.mark.slow
def test_validation_map_equals_the_evaluate_cli(voc_mini, trained, tmp_path):
    """Same checkpoint, same 8 images: the validation step's mAP@0.5 and ``python -m yolo.evaluate``'s
    "VOC (all points)" agree to 1e-6 (the stated tolerance: ground truth travels through the
    letterbox and back in float32 in validation, ~1e-5 px)."""
    from yolo.data.datamodule import VOCDataModule
    from yolo.evaluate.__main__ import main

    lit, path = trained
    data = VOCDataModule(voc_mini, val_sets=[SPLIT], train_sets=[SPLIT], batch_size=N, val_size=SIZE, workers=0,
                         cache_dir=tmp_path / "cache", progress=False)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    validated = trainer.validate(lit, datamodule=data, verbose=False)[0][metric_key("val", MAP50)]

    out = tmp_path / "evaluate"
    assert main([str(path), "--data", str(voc_mini), "--split", SPLIT, "--limit", str(N),
                 "--image-size", str(SIZE), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    evaluated = summary["splits"][SPLIT]["map50"]["VOC (all points)"]
    assert evaluated > 0.3, "the overfitted model finds the objects, so the comparison means something"
    assert validated == pytest.approx(evaluated, abs=1e-6)
