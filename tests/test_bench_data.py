"""bench.data's side-by-side set-up: both pipelines see the same images and boxes, and the
equal-layout copy is the plain NCHW layout."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import to_nchw
from bench.ultralytics_data import yolo_folder
from yolo.config import VOC_CLASSES
from yolo.data.layout import build_index

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def val_index(voc_mini, tmp_path_factory):
    return build_index([voc_mini], ["val"], VOC_CLASSES, tmp_path_factory.mktemp("idx"), progress=False)


def _read_yolo(path) -> np.ndarray:
    text = path.read_text().split()
    return np.array(text, dtype=np.float64).reshape(-1, 5)


def test_yolo_folder_holds_the_index_images_and_boxes(val_index, tmp_path):
    images = yolo_folder(val_index, tmp_path / "y")
    files = sorted(images.iterdir())
    assert len(files) == len(val_index)
    for i in range(0, len(val_index), 17):
        f = files[i]
        assert os.path.realpath(f) == os.path.realpath(val_index.paths[i])
        rows = _read_yolo(tmp_path / "y" / "labels" / "train" / (f.stem + ".txt"))
        boxes, labels, _ = val_index.annotation(i)
        h, w = val_index.sizes[i]
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        back = np.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), 1)
        np.testing.assert_array_equal(rows[:, 0].astype(int), labels)
        np.testing.assert_allclose(back, boxes, atol=1e-5 * max(h, w) * 2)
    yolo_folder(val_index, tmp_path / "y")  # rewritten in place, no leftovers
    assert len(list(images.iterdir())) == len(val_index)


_ULTRALYTICS_CHECK = """
import os, sys
import numpy as np
from bench.ultralytics_data import available, yolo_dataset, yolo_folder
from yolo.config import VOC_CLASSES
from yolo.data.layout import build_index
from pathlib import Path

voc_mini, work = Path(sys.argv[1]), Path(sys.argv[2])
index = build_index([voc_mini], ["val"], VOC_CLASSES, work / "idx", progress=False)
assert available()
images = yolo_folder(index, work / "y")
ds = yolo_dataset(images, VOC_CLASSES, 416, 0.75, 16, cache=False)
assert len(ds) == len(index), (len(ds), len(index))
names = sorted(p.name for p in images.iterdir())
checked = 0
for label in ds.labels[::25]:
    i = names.index(os.path.basename(label["im_file"]))
    boxes, labels, _ = index.annotation(i)
    h, w = index.sizes[i]
    xywh = label["bboxes"] * (w, h, w, h)
    back = np.concatenate((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
    np.testing.assert_array_equal(label["cls"].reshape(-1).astype(int), labels)
    np.testing.assert_allclose(back, boxes, atol=1e-3 * max(h, w))
    checked += 1
assert checked >= 5, checked
print("checked", checked)
"""


def test_ultralytics_reads_the_same_boxes(voc_mini, tmp_path):
    """Ultralytics' own label reader on the converted folder gives back the index's boxes. It runs
    in a child process: importing ultralytics patches PIL's ``Image.open`` (and more) for the whole
    process, which would change what every later test sees."""
    if importlib.util.find_spec("ultralytics") is None:  # not imported here: see the docstring
        pytest.skip("ultralytics not installed (pip install --no-deps ultralytics ultralytics-thop psutil py-cpuinfo)")
    done = subprocess.run([sys.executable, "-c", _ULTRALYTICS_CHECK, str(voc_mini), str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked" in done.stdout


def test_to_nchw_is_the_contiguous_layout():
    hwc = torch.randint(0, 256, (3, 8, 10, 3), dtype=torch.uint8)
    batch = hwc.permute(0, 3, 1, 2)  # what collate returns: a channels-last view
    out = to_nchw(batch)
    assert out.is_contiguous() and torch.equal(out, batch.contiguous())
