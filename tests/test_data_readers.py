"""Readers on the genuine VOC subset: VOCdevkit and (converted) Kaggle layouts, the index cache."""

from __future__ import annotations

import os
import shutil
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from yolo.config import VOC_CLASSES
from yolo.data.index import DetectionIndex, cache_file, load_or_build
from yolo.data.layout import (
    DataLayoutError,
    available_splits,
    build_index,
    default_splits,
    detect_format,
    resolve_sources,
)
from yolo.data.voc import VOCSource, format_voc_xml, read_split_ids

# From voc-mini's SOURCE.md: (images, objects) per split.
EXPECTED = {"train": (960, 2735), "val": (255, 818), "test": (155, 498), "trainval": (1215, 3553)}
_OBJ = re.compile(r"<object>.*?<name>(.*?)</name>.*?<xmin>(.*?)</xmin>.*?<ymin>(.*?)</ymin>"
                  r".*?<xmax>(.*?)</xmax>.*?<ymax>(.*?)</ymax>", re.DOTALL)


def xml_objects(year_dir: Path, ids):
    """Independent reading of the XML (a regex, not the reader): {id: [(name, xmin, ymin, xmax, ymax)]}."""
    out = {}
    for i in ids:
        text = (year_dir / "Annotations" / f"{i}.xml").read_text()
        out[i] = [(m[0].strip(), *map(float, m[1:])) for m in _OBJ.findall(text)]
    return out


@pytest.fixture(scope="module")
def voc_indexes(voc_mini, tmp_path_factory):
    cache = tmp_path_factory.mktemp("index-cache")
    return {s: build_index([voc_mini], [s], VOC_CLASSES, cache, progress=False) for s in ("train", "val", "test")}


def test_layout_detection(voc_mini, tmp_path):
    assert detect_format(voc_mini) == "voc"
    assert detect_format(voc_mini / "VOCdevkit") == "voc"
    assert detect_format(voc_mini / "VOCdevkit" / "VOC2012") == "voc"
    assert set(available_splits(voc_mini)) == {"2012/train", "2012/val", "2012/test", "2012/trainval"}
    assert default_splits(voc_mini) == {"train": ("train",), "val": ("val",), "test": ("test",)}
    assert [s.split for s in resolve_sources(voc_mini, ["2012/val", "VOC2012/test"])] == ["val", "test"]
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataLayoutError, match="neither a VOCdevkit nor a Kaggle"):
        detect_format(tmp_path)
    with pytest.raises(DataLayoutError, match="available"):
        resolve_sources(voc_mini, ["2007/test"])


def test_voc_counts_match_xml(voc_mini, voc_indexes):
    year = voc_mini / "VOCdevkit" / "VOC2012"
    for split, index in voc_indexes.items():
        ids = read_split_ids(year / "ImageSets" / "Main" / f"{split}.txt")
        objects = xml_objects(year, ids)
        assert (len(index), len(index.labels)) == EXPECTED[split]
        assert list(index.ids) == ids
        assert np.diff(index.offsets).tolist() == [len(objects[i]) for i in ids]
        names = Counter(o[0] for i in ids for o in objects[i])
        got = Counter(VOC_CLASSES[k] for k in index.labels)
        assert got == names
        assert not index.problems, index.problems[:3]
        # every box, in order: VOC 1-based (xmin, ymin, xmax, ymax) -> (xmin - 1, ymin - 1, xmax, ymax)
        raw = np.array([o[1:] for i in ids for o in objects[i]], np.float32)
        np.testing.assert_array_equal(index.boxes, raw - np.array([1, 1, 0, 0], np.float32))


def test_known_boxes(voc_indexes):
    index = voc_indexes["train"]
    i = list(index.ids).index("2008_000008")
    boxes, labels, difficult = index.annotation(i)
    assert tuple(index.sizes[i]) == (442, 500)
    np.testing.assert_array_equal(boxes, [[52, 86, 471, 420], [157, 43, 289, 167]])
    assert [VOC_CLASSES[k] for k in labels] == ["horse", "person"]
    assert not difficult.any()


def _to_kaggle(voc_mini: Path, out: Path, splits: dict[str, str]) -> None:
    """Convert voc-mini splits into the Kaggle layout (images hard-linked, else copied, into the
    temporary folder: a symbolic link pointing outside the dataset is refused by the readers)."""
    year = voc_mini / "VOCdevkit" / "VOC2012"
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    from PIL import Image

    for csv_name, split in splits.items():
        ids = read_split_ids(year / "ImageSets" / "Main" / f"{split}.txt")
        rows = ["img,label"]
        for i, objs in xml_objects(year, ids).items():
            src = year / "JPEGImages" / f"{i}.jpg"
            if not (out / "images" / src.name).exists():
                try:
                    os.link(src, out / "images" / src.name)
                except OSError:
                    shutil.copyfile(src, out / "images" / src.name)
            w, h = Image.open(src).size
            lines = []
            for name, x0, y0, x1, y1 in objs:
                x0, y0 = x0 - 1, y0 - 1
                lines.append(f"{VOC_CLASSES.index(name)} {(x0 + x1) / 2 / w:.8f} {(y0 + y1) / 2 / h:.8f} "
                             f"{(x1 - x0) / w:.8f} {(y1 - y0) / h:.8f}")
            (out / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")
            rows.append(f"{i}.jpg,{i}.txt")
        (out / csv_name).write_text("\n".join(rows) + "\n")


def test_kaggle_layout_reads_the_same(voc_mini, voc_indexes, tmp_path):
    root = tmp_path / "kaggle"
    _to_kaggle(voc_mini, root, {"train.csv": "val", "test.csv": "test"})
    assert detect_format(root) == "kaggle"
    assert default_splits(root) == {"train": ("train",), "val": ("test",), "test": ("test",)}
    for csv_split, voc_split in (("train", "val"), ("test", "test")):
        kag = build_index([root], [csv_split], VOC_CLASSES, tmp_path / "cache", progress=False)
        voc = voc_indexes[voc_split]
        assert list(kag.ids) == list(voc.ids)
        np.testing.assert_array_equal(kag.labels, voc.labels)
        np.testing.assert_array_equal(kag.offsets, voc.offsets)
        np.testing.assert_allclose(kag.boxes, voc.boxes, atol=1e-3)
        np.testing.assert_array_equal(kag.sizes, voc.sizes)
        assert not kag.problems


def test_index_cache_reopens_without_parsing(voc_mini, tmp_path, monkeypatch):
    """Reopening a current cache reads it back and parses no annotation (work, not seconds: the
    speed itself is a benchmark's business)."""
    source = resolve_sources(voc_mini, ["trainval"])[0]
    built = load_or_build(source, tmp_path, progress=False)

    def parse_again(self, progress=True):
        raise AssertionError("the cached index was rebuilt from the XML files")

    monkeypatch.setattr(type(source), "build", parse_again)
    reopened = load_or_build(source, tmp_path, progress=False)
    for name in ("ids", "files", "sizes", "offsets", "boxes", "names", "difficult", "vocab"):
        np.testing.assert_array_equal(getattr(built, name), getattr(reopened, name))


def test_read_only_data_caches_elsewhere(voc_mini, tmp_path, monkeypatch):
    if (voc_mini / "VOCdevkit" / "VOC2012").stat().st_mode & 0o222:
        pytest.skip("voc-mini is writable here")
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path))
    source = resolve_sources(voc_mini, ["val"])[0]
    path = cache_file(source.directory, source.key)
    assert tmp_path in path.parents
    load_or_build(source, None, progress=False)
    assert path.is_file()
    assert not (source.directory / ".yolo_cache").exists()


def _write_tiny_voc(folder: Path, n: int = 3) -> None:
    import cv2

    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / "JPEGImages" / f"im{i}.jpg"), np.full((40, 60, 3), 50 * i, np.uint8))
        (folder / "Annotations" / f"im{i}.xml").write_text(format_voc_xml(f"im{i}.jpg", 60, 40, ["dog"], [[5, 5, 20, 30]]))
    (folder / "ImageSets" / "Main" / "train.txt").write_text("".join(f"im{i}\n" for i in range(n)))


def test_cache_beside_writable_data_and_invalidated_on_change(tmp_path):
    year = tmp_path / "VOCdevkit" / "VOC2099"
    _write_tiny_voc(year)
    source = VOCSource(year, "train")
    first = load_or_build(source, progress=False)
    assert (year / ".yolo_cache" / "voc-train.index.npz").is_file()
    assert len(first.boxes) == 3
    # an annotation changes (one more object): the cache must not be used
    ann = year / "Annotations" / "im1.xml"
    ann.write_text(format_voc_xml("im1.jpg", 60, 40, ["dog", "cat"], [[5, 5, 20, 30], [30, 1, 59, 39]]))
    os.utime(ann, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert len(load_or_build(source, progress=False).boxes) == 4
    # an image disappears
    (year / "JPEGImages" / "im2.jpg").unlink()
    again = load_or_build(source, progress=False)
    assert len(again) == 2 and [p.kind for p in again.problems] == ["image_missing"]
    # unchanged files: the cached copy is returned (same problems, same arrays)
    cached = load_or_build(source, progress=False)
    assert [p.kind for p in cached.problems] == ["image_missing"] and list(cached.ids) == list(again.ids)


def test_class_list_from_classes_txt(tmp_path):
    root = tmp_path / "mine"
    _write_tiny_voc(root / "VOCdevkit" / "VOCx")
    (root / "classes.txt").write_text("cat\ndog\n")
    index = build_index([root], ["train"], ("cat", "dog"), tmp_path / "c", progress=False)
    assert index.labels.tolist() == [1, 1, 1]
    from yolo.data.layout import load_classes

    assert load_classes(root) == ("cat", "dog")
    assert load_classes(tmp_path) == VOC_CLASSES
    index = DetectionIndex.from_sources([load_or_build(VOCSource(root / "VOCdevkit" / "VOCx", "train"), tmp_path / "c", False)], ("cat",))
    assert len(index.labels) == 0 and {p.kind for p in index.problems} == {"unknown_class", "no_objects"}


def test_difficult_objects_train_option_and_eval_flags(tmp_path):
    from yolo.data.datamodule import VOCDataModule

    year = tmp_path / "d" / "VOCdevkit" / "VOC2099"
    _write_tiny_voc(year, n=4)
    (year / "Annotations" / "im0.xml").write_text(
        format_voc_xml("im0.jpg", 60, 40, ["dog", "dog"], [[5, 5, 20, 30], [30, 1, 59, 39]], difficult=[False, True]))
    (year / "ImageSets" / "Main" / "val.txt").write_text("im0\n")
    kw = {"train_sets": ["train"], "val_sets": ["val"], "classes": ["dog"], "batch_size": 4, "sizes": (64,),
          "val_size": 64, "workers": 0, "cache_dir": tmp_path / "c", "progress": False, "mosaic_p": 0.0}
    for use_difficult, expected in ((False, 4), (True, 5)):
        dm = VOCDataModule(tmp_path / "d", use_difficult=use_difficult, **kw)
        dm.setup("fit")
        assert len(dm.datasets["train"].base.index.labels) == expected
        val = next(iter(dm.val_dataloader()))
        assert val["difficult"].tolist() == [False, True]  # evaluation always keeps them, flagged



def test_iterating_a_dataset_stops_at_its_length(voc_indexes):
    """``for s in dataset`` ends after len(dataset) samples (the decode fallback wraps indices,
    which once made plain iteration endless); -1 is the last sample; len() is out of range."""
    from itertools import islice

    from yolo.data.datasets import DetectionDataset, EvalDataset

    index = voc_indexes["test"]
    base = DetectionDataset(index)
    n = len(base)
    ids = [str(i) for i in index.ids]
    # islice guards the test itself against an endless iterator: at most n + 3 samples are read
    assert [s["id"] for s in islice(iter(EvalDataset(base, 32)), n + 3)] == ids
    assert base[-1]["id"] == ids[-1]
    with pytest.raises(IndexError):
        base[n]
    with pytest.raises(IndexError):
        EvalDataset(base, 32)[(n, 32)]
