"""Dataset text files as other tools write them, in all four layouts: a UTF-8 byte-order mark and
CRLF line ends (Windows editors and exporters) read exactly as plain files; a label file that is
not a small regular file (oversized, a FIFO) is one reported problem, never a hang or a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.thin import write_thin_dataset
from yolo.data.convert import convert
from yolo.data.index import BOM, MAX_TEXT_BYTES
from yolo.data.layout import available_splits, build_index, detect_format, load_classes

TEXT = (".txt", ".csv", ".xml", ".json", ".yaml")


def _kaggle(yolo: Path, out: Path) -> Path:
    """The course's Kaggle layout from a YOLO folder: images/, labels/<id>.txt, train.csv, test.csv."""
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    for split, csv_name in (("train", "train.csv"), ("val", "test.csv")):
        rows = ["img,label"]
        for image in sorted((yolo / "images" / split).glob("*.png")):
            name = f"{split}_{image.name}"
            shutil.copyfile(image, out / "images" / name)
            shutil.copyfile(yolo / "labels" / split / f"{image.stem}.txt", out / "labels" / f"{split}_{image.stem}.txt")
            rows.append(f"{name},{split}_{image.stem}.txt")
        (out / csv_name).write_text("\n".join(rows) + "\n")
    (out / "classes.txt").write_text("horizontal\nvertical\n")
    return out


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts")
    yolo = write_thin_dataset(base / "yolo", n_train=6, n_val=3, size=64)
    out = {"yolo": yolo, "kaggle": _kaggle(yolo, base / "kaggle")}
    for to in ("voc", "coco"):
        convert(yolo, base / to, to, copy=True)
        out[to] = base / to
    return out


def _windows_copy(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose every text file starts with a BOM and ends its lines with CRLF."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".yolo_cache"))
    for path in dst.rglob("*"):
        if path.is_file() and path.suffix.lower() in TEXT:
            text = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            path.write_bytes(BOM + text)
    return dst




@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco", "kaggle"])
def test_bom_and_crlf_read_as_plain_files(layouts, fmt, tmp_path):
    plain = layouts[fmt]
    windows = _windows_copy(plain, tmp_path / fmt)
    assert detect_format(windows) == detect_format(plain) == fmt
    assert load_classes(windows) == load_classes(plain) == ("horizontal", "vertical")
    assert available_splits(windows) == available_splits(plain)
    for split in available_splits(plain):
        a = build_index([plain], [split], load_classes(plain), tmp_path / "c1", progress=False)
        b = build_index([windows], [split], load_classes(windows), tmp_path / "c2", progress=False)
        assert len(a) > 0 and list(a.ids) == list(b.ids), (fmt, split)
        for name in ("boxes", "labels", "offsets", "difficult", "sizes"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{fmt} {split} {name}")
        assert [p.kind for p in a.problems] == [p.kind for p in b.problems]


def test_a_label_file_that_is_not_small_and_regular_is_reported(layouts, tmp_path):
    root = shutil.copytree(layouts["yolo"], tmp_path / "y", ignore=shutil.ignore_patterns(".yolo_cache"))
    labels = root / "labels" / "train"
    with open(labels / "000.txt", "r+b") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: nothing is written, nothing must be read
    (labels / "001.txt").unlink()
    os.mkfifo(labels / "001.txt")  # a reader that opened it would block for ever
    index = build_index([root], ["train"], load_classes(root), tmp_path / "c", progress=False)
    assert list(index.ids) == ["002", "003", "004", "005"]
    by_file = {Path(p.file).name: p for p in index.problems}
    assert by_file["000.txt"].kind == "annotation_malformed" and "over the dataset text file limit" in by_file["000.txt"].detail
    assert by_file["001.txt"].kind == "annotation_missing"  # not a regular file: as good as absent


@pytest.mark.parametrize("fmt", ["voc", "kaggle"])
def test_an_oversized_split_list_is_one_layout_error(layouts, fmt, tmp_path):
    """A VOC split list or a Kaggle CSV over the bound: one DataLayoutError naming it (not a traceback)."""
    from yolo.data.index import DataLayoutError

    root = shutil.copytree(layouts[fmt], tmp_path / fmt, ignore=shutil.ignore_patterns(".yolo_cache"))
    split = available_splits(root)[0]
    listing = next(p for p in root.rglob("*") if p.suffix in (".txt", ".csv") and p.stem == split.split("/")[-1]
                   and p.parent.name in ("Main", root.name))
    with open(listing, "r+b") as f:
        f.truncate(MAX_TEXT_BYTES + 1)
    with pytest.raises(DataLayoutError, match="over the dataset text file limit"):
        build_index([root], [split], load_classes(root), tmp_path / "c", progress=False)
