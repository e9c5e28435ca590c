"""One dataset, three layouts: a few dozen voc-mini images as VOC, as COCO and YOLO written by
``convert``, and as a COCO JSON written here by a plain loop over the XML files (independent of
convert) give identical index arrays, cell accuracies and VOC mAP for one model; VOC -> COCO ->
YOLO -> VOC gives the original XML boxes back; SRC is never modified."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from yolo.config import VOC_CLASSES
from yolo.data.__main__ import main as data_cli
from yolo.data.collate import collate
from yolo.data.convert import convert
from yolo.data.datasets import DetectionDataset, EvalDataset
from yolo.data.index import DataLayoutError
from yolo.data.layout import build_index, detect_format, load_classes
from yolo.metrics import CellAccuracy, voc_evaluate
from yolo.config import LOSS_TOTAL
from yolo.loss import YoloLoss
from yolo.model import YOLOv3
from yolo.targets import encode
from yolo.boxes import normalize, xyxy_to_cxcywh
from yolo.detect import Detector
from yolo.predictions import predict_samples

SPLITS = {"train": 16, "val": 8}  # images taken from voc-mini's own split lists
_OBJ = re.compile(r"<object>.*?<name>(.*?)</name>.*?<difficult>(.*?)</difficult>.*?<xmin>(.*?)</xmin>.*?"
                  r"<ymin>(.*?)</ymin>.*?<xmax>(.*?)</xmax>.*?<ymax>(.*?)</ymax>", re.DOTALL)
_SIZE = re.compile(r"<width>(\d+)</width>\s*<height>(\d+)</height>")


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def three(voc_mini, tmp_path_factory):
    base = tmp_path_factory.mktemp("convert")
    year_src = voc_mini / "VOCdevkit" / "VOC2012"
    src = base / "voc"
    year = src / "VOCdevkit" / "VOC2012"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / d).mkdir(parents=True)
    ids = {}
    for split, n in SPLITS.items():
        ids[split] = (year_src / "ImageSets" / "Main" / f"{split}.txt").read_text().split()[:n]
        (year / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids[split]) + "\n")
        for i in ids[split]:
            shutil.copy(year_src / "Annotations" / f"{i}.xml", year / "Annotations")
            shutil.copy(year_src / "JPEGImages" / f"{i}.jpg", year / "JPEGImages")
    before = _snapshot(src)
    cache = base / "cache"
    reports = {to: convert(src, base / to, to, ["train", "val"], cache_dir=cache) for to in ("coco", "yolo")}
    assert _snapshot(src) == before  # SRC untouched (its index went to the cache folder)
    # the independent COCO JSON: a plain loop over the XML files, category ids with gaps
    plain = base / "plain"
    (plain / "annotations").mkdir(parents=True)
    for split in SPLITS:
        (plain / "images" / split).mkdir(parents=True)
        images, anns = [], []
        for k, i in enumerate(ids[split]):
            text = (year / "Annotations" / f"{i}.xml").read_text()
            w, h = map(int, _SIZE.search(text).groups())
            images.append({"id": 1000 + k, "file_name": f"{i}.jpg", "width": w, "height": h})
            for name, diff, *c in _OBJ.findall(text):
                x0, y0, x1, y1 = map(float, c)
                anns.append({"id": len(anns) + 1, "image_id": 1000 + k, "category_id": 10 * (VOC_CLASSES.index(name.strip()) + 1),
                             "bbox": [x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1], "iscrowd": int(diff)})
            shutil.copy(year / "JPEGImages" / f"{i}.jpg", plain / "images" / split)
        cats = [{"id": 10 * (k + 1), "name": n} for k, n in enumerate(VOC_CLASSES)]
        (plain / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    roots = {"voc": src, "coco": base / "coco", "yolo": base / "yolo", "plain": plain}
    indexes = {name: {s: build_index([r], [s], load_classes(r), cache, progress=False) for s in SPLITS}
               for name, r in roots.items()}
    return {"roots": roots, "indexes": indexes, "ids": ids, "reports": reports, "base": base}


def test_layouts_detected_and_classes_from_the_dataset(three):
    roots = three["roots"]
    assert {n: detect_format(r) for n, r in roots.items()} == {"voc": "voc", "coco": "coco", "yolo": "yolo", "plain": "coco"}
    for r in roots.values():
        assert load_classes(r) == VOC_CLASSES
    for report in three["reports"].values():
        assert report.splits["train"][0] == SPLITS["train"] and report.linked + report.copied == sum(SPLITS.values())


def test_three_layouts_give_identical_index_arrays(three):
    idx = three["indexes"]
    for split in SPLITS:
        ref = idx["voc"][split]
        assert list(ref.ids) == three["ids"][split]
        for name in ("coco", "yolo", "plain"):
            other = idx[name][split]
            assert [Path(p).stem for p in other.paths] == list(ref.ids), name
            for key in ("sizes", "offsets", "boxes", "labels", "difficult", "exif"):
                a, b = getattr(ref, key), getattr(other, key)
                assert a.dtype == b.dtype and np.array_equal(a, b), (name, split, key)
            assert not [p for p in other.problems if p.kind != "no_objects"], name


def _batch(index) -> tuple[torch.Tensor, list[torch.Tensor]]:
    ds = EvalDataset(DetectionDataset(index), 128)
    batch = collate([ds[i] for i in range(len(ds))])
    boxes = normalize(xyxy_to_cxcywh(batch["boxes"].float()), 128, 128)
    return batch["images"].float() / 255, encode(boxes, batch["labels"], batch["batch_idx"], len(ds), 128)


def _cells_and_map(index, model) -> tuple[list[float], float]:
    images, targets = _batch(index)
    acc = CellAccuracy()
    with torch.no_grad():
        acc.update(model(images), targets)
    detector = Detector(model, index.classes, 128)
    base = DetectionDataset(index)  # a list: iterating the dataset itself never ends (it substitutes)
    preds = predict_samples(detector, [base[i] for i in range(len(base))], progress=False, conf_floor=0.001)
    result = voc_evaluate(preds.detections(conf=0.001, iou=0.45), preds.ground_truth(), len(index.classes))
    return [float(v) for v in acc.compute().values()], float(result.map)


@pytest.mark.slow
def test_identical_cell_accuracies_and_voc_map(three):
    torch.manual_seed(0)
    model = YOLOv3(len(VOC_CLASSES), 0.25)
    images, targets = _batch(three["indexes"]["voc"]["val"])  # a few steps on these images: mAP > 0
    optimiser, loss = torch.optim.Adam(model.parameters(), 3e-3), YoloLoss()
    for _ in range(20):
        optimiser.zero_grad()
        loss(model(images), targets)[LOSS_TOTAL].backward()
        optimiser.step()
    model.eval()
    found = {name: _cells_and_map(three["indexes"][name]["val"], model) for name in ("voc", "coco", "yolo", "plain")}
    print({k: (np.round(v[0], 3).tolist(), round(v[1], 5)) for k, v in found.items()})
    accuracies, mean_ap = found["voc"]  # class, no-object, object accuracy (percent)
    assert mean_ap > 0 and any(0 < a < 100 for a in accuracies)  # figures worth comparing
    for name in ("coco", "yolo", "plain"):
        assert found[name] == found["voc"], name


def test_round_trip_voc_coco_yolo_voc_gives_the_xml_boxes(three):
    base, cache = three["base"], three["base"] / "cache"
    convert(three["roots"]["coco"], base / "rt_yolo", "yolo", cache_dir=cache)
    assert data_cli(["convert", str(base / "rt_yolo"), str(base / "rt_voc"), "--to", "voc", "--quiet",
                     "--cache-dir", str(cache)]) == 0
    year = base / "rt_voc" / "VOCdevkit" / "VOCdata"
    orig = three["roots"]["voc"] / "VOCdevkit" / "VOC2012"
    for split, ids in three["ids"].items():
        assert (year / "ImageSets" / "Main" / f"{split}.txt").read_text().split() == ids
        for i in ids:
            got = [(n.strip(), *c) for n, _, *c in _OBJ.findall((year / "Annotations" / f"{i}.xml").read_text())]
            want = [(n.strip(), *c) for n, _, *c in _OBJ.findall((orig / "Annotations" / f"{i}.xml").read_text())]
            assert got == want, i  # the same text: integers, 1-based, same order
        assert _SIZE.search((year / "Annotations" / f"{ids[0]}.xml").read_text()).groups() == \
            _SIZE.search((orig / "Annotations" / f"{ids[0]}.xml").read_text()).groups()
    # images are hard links of the source files (same inode), not symlinks
    img = year / "JPEGImages" / f"{three['ids']['train'][0]}.jpg"
    assert not img.is_symlink() and img.stat().st_ino == (orig / "JPEGImages" / img.name).stat().st_ino


def test_what_cannot_be_carried_is_reported(tmp_path, three):
    # a COCO source with a crowd object: into YOLO the difficult object is left out and said so
    coco = tmp_path / "c"
    (coco / "annotations").mkdir(parents=True)
    (coco / "images").mkdir()
    first = three["ids"]["train"][0]
    shutil.copy(three["roots"]["voc"] / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{first}.jpg", coco / "images")
    doc = {"images": [{"id": 1, "file_name": f"{first}.jpg"}, {"id": 2, "file_name": "gone.jpg"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10.4, 10, 50, 40], "iscrowd": 1},
                           {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 30, 30]}],
           "categories": [{"id": 1, "name": "dog"}]}
    (coco / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    report = convert(coco, tmp_path / "y", "yolo", cache_dir=tmp_path / "cache", copy=True)
    text = report.format_text()
    assert "1 difficult (COCO iscrowd) objects left out" in text
    assert "1 image_missing" in text and report.copied == 1 and report.linked == 0
    assert report.splits == {"train": (1, 1)}
    voc = convert(coco, tmp_path / "v", "voc", cache_dir=tmp_path / "cache")
    assert "1 boxes with non-integer corners rounded" in voc.format_text()
    # DST inside SRC, or not empty, is refused before anything is written
    with pytest.raises(DataLayoutError, match="overlap"):
        convert(coco, coco / "out", "voc", cache_dir=tmp_path / "cache")
    with pytest.raises(DataLayoutError, match="not an empty folder"):
        convert(coco, tmp_path / "y", "coco", cache_dir=tmp_path / "cache")
    assert not (coco / "out").exists() and not (coco / ".yolo_cache").exists()


def test_convert_coco_output_is_what_pycocotools_reads(three):
    """convert's COCO JSON through pycocotools (an independent reader): every image and box of the
    VOC index, by category name, area and iscrowd as COCOeval uses them; the ground truth scored
    as detections by COCOeval gives AP 1.0."""
    pytest.importorskip("pycocotools")
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for split in SPLITS:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(three["roots"]["coco"] / "annotations" / f"instances_{split}.json"))
        voc = three["indexes"]["voc"][split]
        names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
        by_file = {Path(img["file_name"]).stem: img["id"] for img in gt.loadImgs(gt.getImgIds())}
        assert sorted(by_file) == sorted(voc.ids)
        for k, image_id in enumerate(voc.ids):
            boxes, labels, difficult = voc.annotation(k)[:3]
            anns = gt.loadAnns(gt.getAnnIds(imgIds=[by_file[image_id]]))
            got = sorted((names[a["category_id"]], *a["bbox"], a["iscrowd"], a["area"]) for a in anns)
            want = sorted((VOC_CLASSES[c], float(x0), float(y0), float(x1 - x0), float(y1 - y0), int(d),
                           float((x1 - x0) * (y1 - y0))) for (x0, y0, x1, y1), c, d in zip(boxes, labels, difficult))
            np.testing.assert_allclose([g[1:] for g in got], [w[1:] for w in want], atol=1e-4)
            assert [g[0] for g in got] == [w[0] for w in want]
        dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
                for a in gt.loadAnns(gt.getAnnIds(iscrowd=False))]
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, gt.loadRes(dets), "bbox")
            ev.evaluate(), ev.accumulate(), ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
