"""The class list comes from the dataset: a checkpoint trained by train.py on a 3-class COCO-format
dataset (category ids with gaps) carries its names; every dashboard page opens with it and shows
them; a dataset with other classes is told so; python -m yolo.evaluate and python -m yolo.export
use the names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from PIL import Image

from test_dashboard import ENV, PAGES, assert_clean, open_page, texts

REPO = Path(__file__).resolve().parents[1]
NAMES = ["zebra", "apple", "kite"]  # not VOC's, not alphabetical: the file's categories order


def write_coco3(root: Path, n: dict[str, int] = {"train": 12, "val": 6}, size: int = 96) -> Path:
    rng = np.random.default_rng(3)
    (root / "annotations").mkdir(parents=True)
    cats = [{"id": 7, "name": "zebra"}, {"id": 2, "name": "apple"}, {"id": 40, "name": "kite"}]
    for split, count in n.items():
        images, anns = [], []
        (root / "images" / split).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
            for k in range(2):
                c = int(rng.integers(3))
                x, y, w, h = (int(v) for v in rng.integers(4, 40, 4))
                image[y:y + h, x:x + w] = [(250, 30, 30), (30, 250, 30), (30, 30, 250)][c]
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cats[c]["id"], "bbox": [x, y, w, h]})
            Image.fromarray(image).save(root / "images" / split / f"{split}{i}.png")
            images.append({"id": i, "file_name": f"{split}{i}.png", "width": size, "height": size})
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


@pytest.fixture(scope="module")
def coco3(tmp_path_factory):
    from train import main

    base = tmp_path_factory.mktemp("coco3")
    data = write_coco3(base / "data")
    logs = base / "logs"
    main(["--data", str(data), "--log-dir", str(logs), "--name", "coco3", "--workers", "0", "--batch-size", "4",
          "--min-size", "64", "--max-size", "64", "--val-size", "64", "--precision", "32-true", "--width", "0.125",
          "--epochs", "1", "--limit-train-batches", "2", "--limit-val-batches", "1", "--accelerator", "cpu",
          "--devices", "1", "--mosaic", "0"])
    return data, logs, next(logs.rglob("last.ckpt"))


@pytest.fixture
def env(monkeypatch, coco3, tmp_path):
    data, logs, _ = coco3
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DATA", str(data))
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    return coco3


def test_checkpoint_carries_the_dataset_classes(coco3):
    from yolo.weights import read_checkpoint

    assert read_checkpoint(coco3[2]).class_names == NAMES


@pytest.mark.slow
@pytest.mark.parametrize("page", ["Home", *PAGES, "Label review"])
def test_every_page_opens_with_its_class_names(env, page):
    at = _open(page)
    assert "coco3/version_0" in at.selectbox(key="checkpoint_choice").value
    assert not [w for w in texts(at, "warning") if "classes" in w and "model knows" in w]
    shown = " ".join(str(v) for kind in ("markdown", "caption", "success", "info") for v in texts(at, kind))
    shown += " ".join(str(o) for s in at.multiselect for o in s.options)
    shown += " ".join(str(df.value.to_csv()) for df in at.dataframe)
    if page in ("Dataset", "Detect"):
        assert any(n in shown for n in NAMES), page


# every page that puts a model beside a dataset, and what it says it then does
COMBINING = {"Detect": "Ground truth is drawn", "GradCAM": "the dataset's labels are not used",
             "Evaluate": "nothing can be evaluated", "Label review": "nothing can be reviewed"}


def _open(page: str):
    if page in PAGES or page == "Home":
        return open_page(page)
    at = open_page("Home")
    at.switch_page("views/review.py").run()
    assert_clean(at)
    return at


@pytest.mark.slow
@pytest.mark.parametrize("page", list(COMBINING))
def test_a_dataset_with_other_classes_is_told_so(env, monkeypatch, voc_mini, page):
    monkeypatch.setenv("YOLO_DATA", str(voc_mini))
    at = _open(page)
    warning = [w for w in texts(at, "warning") if "The model knows 3 classes (zebra, apple, kite)" in w]
    assert len(warning) == 1 and "the dataset has 20 (aeroplane, bicycle" in warning[0], texts(at, "warning")
    assert COMBINING[page] in warning[0]
    if page == "Label review":
        assert not [s for s in at.selectbox if s.key == "lr_split"], "and indeed nothing is reviewed"


def test_evaluate_and_export_clis_use_the_names(coco3, tmp_path):
    data, _, ckpt = coco3
    env = {**os.environ, "PYTHONPATH": str(REPO), "YOLO_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "ev"
    subprocess.run([sys.executable, "-m", "yolo.evaluate", str(ckpt), "--data", str(data), "--split", "val",
                    "--out", str(out), "--limit", "4"], check=True, env=env, capture_output=True, text=True)
    per_class = pd.read_csv(next(out.rglob("per_class.csv")))
    assert set(NAMES) <= set(per_class.astype(str).to_numpy().ravel())
    onnx_path = tmp_path / "m.onnx"
    subprocess.run([sys.executable, "-m", "yolo.export", str(ckpt), "--onnx", str(onnx_path)], check=True, env=env,
                   capture_output=True, text=True)
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    assert meta["class_names"] == NAMES
