"""The YOLO/Ultralytics and COCO JSON readers: layout detection, boxes against hand-worked pixel
values, and every bad record reported with its file and line/entry while the good samples are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo.data.index import DataLayoutError
from yolo.data.layout import available_splits, build_index, default_splits, detect_format, load_classes

W, H = 64, 48
ROOT = Path(__file__).resolve().parents[1]


def _image(path: Path, w: int = W, h: int = H) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(w * h)
    Image.fromarray(rng.integers(0, 255, (h, w, 3)).astype(np.uint8)).save(path, quality=95)


def _problems(index, kind: str) -> list:
    return [p for p in index.problems if p.kind == kind]


def _has(index, kind: str, file_end: str, detail_part: str = "") -> bool:
    return any(p.file.endswith(file_end) and detail_part in p.detail for p in _problems(index, kind))


# ------------------------------------------------------------------------------------ YOLO
@pytest.fixture()
def yolo_root(tmp_path) -> Path:
    root = tmp_path / "ds"
    outside = tmp_path / "outside.jpg"
    _image(outside)
    for name in ("a", "b", "empty", "nolabel", "bad"):
        _image(root / "images" / "train" / f"{name}.jpg")
    _image(root / "images" / "train" / "thin.jpg", 400, 4)  # refused: aspect 100:1
    os.symlink(outside, root / "images" / "train" / "link.jpg")  # a link out of the dataset
    lab = root / "labels" / "train"
    lab.mkdir(parents=True)
    (lab / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n")  # x 24..40, y 12..36
    (lab / "b.txt").write_text("2 0.25 0.25 0.5 0.5\n1 0.5 0.75 1.0 0.5\n")
    (lab / "empty.txt").write_text("")
    (lab / "thin.txt").write_text("0 0.5 0.5 0.1 0.5\n")
    (lab / "link.txt").write_text("0 0.5 0.5 0.1 0.5\n")
    (lab / "bad.txt").write_text("\n".join([
        "0 0.5 0.5 0.5 0.5",  # 1 good
        "0 0.5 0.5 0.5",  # 2: 4 fields
        "0 0.5 0.5 0.5 0.5 0.9",  # 3: 6 fields
        "0 nan 0.5 0.5 0.5",  # 4: NaN
        "0 -0.2 0.5 0.5 0.5",  # 5: negative
        "0 0.5 1.5 0.5 0.5",  # 6: > 1
        "7 0.5 0.5 0.5 0.5",  # 7: class id out of range
        "1.5 0.5 0.5 0.5 0.5",  # 8: class id not an integer
        "1 0.5 0.5 0 0.5",  # 9: zero width
        "x 0.5 0.5 0.5 0.5",  # 10: not a number
        "1 0.1 0.5 0.4 0.2",  # 11 good, clipped on the left: x -0.1..0.3 -> 0..19.2
    ]) + "\n")
    _image(root / "images" / "val" / "v.jpg")
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "v.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    _image(root / "images" / "extra" / "e.jpg")
    (root / "labels" / "extra").mkdir(parents=True)
    (root / "labels" / "extra" / "e.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "extra.txt").write_text("./images/extra/e.jpg\n../outside.jpg\n" + f"{outside}\n" + "images/train/a.jpg\n")
    (root / "val.txt").write_text("images/val/v.jpg\n")
    (root / "data.yaml").write_text(
        "path: .\n"
        f"train: [images/train, extra.txt, ../elsewhere, {tmp_path}]\n"
        "val: val.txt\n"
        "names: {0: cat, 1: dog, 2: bird}\n")
    return root


def test_yolo_layout_classes_and_splits(yolo_root, tmp_path):
    assert detect_format(yolo_root) == "yolo"
    assert available_splits(yolo_root) == ["train", "val"]
    assert load_classes(yolo_root) == ("cat", "dog", "bird")
    assert default_splits(yolo_root) == {"train": ("train",), "val": ("val",), "test": ("val",)}
    # names as a list; a names map with a gap is refused with the file named
    (yolo_root / "data.yaml").write_text("train: images/train\nnames: [x, y]\n")
    assert load_classes(yolo_root) == ("x", "y")
    (yolo_root / "data.yaml").write_text("train: images/train\nnames: {0: x, 2: y}\n")
    with pytest.raises(DataLayoutError, match="without gaps"):
        load_classes(yolo_root)
    (yolo_root / "data.yaml").write_text(f"path: {tmp_path}\ntrain: images/train\nnames: [x]\n")
    with pytest.raises(DataLayoutError, match="leaves the dataset folder"):
        available_splits(yolo_root)


def test_yolo_reader_boxes_and_every_bad_record(yolo_root, tmp_path):
    index = build_index([yolo_root], ["train"], load_classes(yolo_root), tmp_path / "cache", progress=False)
    ids = list(index.ids)
    # folder images sorted, then the list's: e (./ relative to the list), a again is a duplicate
    assert ids == ["a", "b", "bad", "empty", "e"]
    boxes = {i: index.annotation(k) for k, i in enumerate(ids)}
    np.testing.assert_array_equal(boxes["a"][0], [[24, 12, 40, 36]])
    np.testing.assert_array_equal(boxes["a"][1], [0])
    np.testing.assert_array_equal(boxes["b"][0], [[0, 0, 32, 24], [0, 24, 64, 48]])
    np.testing.assert_array_equal(boxes["b"][1], [2, 1])
    np.testing.assert_allclose(boxes["bad"][0], [[16, 12, 48, 36], [0, 19.2, 19.2, 28.8]], atol=1 / 512)  # snapped to 1/256 px
    np.testing.assert_array_equal(boxes["bad"][1], [0, 1])
    assert len(boxes["empty"][0]) == 0 and _has(index, "no_objects", "empty.jpg")
    assert not index.difficult.any()
    bad = "labels/train/bad.txt"
    assert _has(index, "label_line_malformed", bad, "line 2: 4 fields")
    assert _has(index, "label_line_malformed", bad, "line 3: 6 fields")
    assert _has(index, "box_invalid", bad, "line 4")
    assert _has(index, "label_out_of_range", bad, "line 5")
    assert _has(index, "label_out_of_range", bad, "line 6")
    assert _has(index, "unknown_class", bad, "line 7: class '7' (3 names)")
    assert _has(index, "unknown_class", bad, "line 8: class '1.5'")
    assert _has(index, "box_zero_area", bad, "line 9")
    assert _has(index, "label_line_malformed", bad, "line 10: not numbers")
    assert _has(index, "box_clipped", bad)
    assert _has(index, "annotation_missing", "labels/train/nolabel.txt")
    assert _has(index, "image_too_thin", "images/train/thin.jpg")
    assert _has(index, "path_outside", "images/train/link.jpg", "outside the dataset folder")
    assert _has(index, "path_outside", "data.yaml", "train entry 3 '../elsewhere'")
    assert _has(index, "path_outside", "data.yaml", "train entry 4")
    assert _has(index, "path_outside", "extra.txt", "line 2")
    assert _has(index, "path_outside", "extra.txt", "line 3")
    assert _has(index, "duplicate_id", "images/train/a.jpg", "extra.txt line 4")
    # nothing outside the dataset was read into the index
    assert all(str(yolo_root.resolve()) in p for p in index.paths)


def test_roboflow_export_with_parent_relative_entries(tmp_path):
    """Roboflow's YOLO export: data.yaml beside train/ and valid/, entries written ``../train/images``.
    Read as Ultralytics does (the first ``../`` dropped when that path exists inside the folder);
    an entry whose stripped path is not inside (here it exists only outside) stays refused."""
    root = tmp_path / "export"
    for split, name, line in (("train", "t", "0 0.5 0.5 0.25 0.5"), ("valid", "v", "1 0.25 0.25 0.5 0.5")):
        _image(root / split / "images" / f"{name}.jpg")
        (root / split / "labels").mkdir(parents=True)
        (root / split / "labels" / f"{name}.txt").write_text(line + "\n")
    _image(tmp_path / "decoy" / "images" / "d.jpg")  # ../decoy/images exists only outside the export
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../decoy/images\n"
                                    "nc: 2\nnames: ['a', 'b']\n")
    assert detect_format(root) == "yolo" and available_splits(root) == ["train", "val", "test"]
    train = build_index([root], ["train"], load_classes(root), tmp_path / "c", progress=False)
    val = build_index([root], ["val"], load_classes(root), tmp_path / "c", progress=False)
    assert list(train.ids) == ["t"] and list(val.ids) == ["v"] and not train.problems and not val.problems
    np.testing.assert_array_equal(train.annotation(0)[0], [[24, 12, 40, 36]])
    np.testing.assert_array_equal(val.annotation(0)[1], [1])
    test = build_index([root], ["test"], load_classes(root), tmp_path / "c", progress=False)
    assert len(test) == 0 and _has(test, "path_outside", "data.yaml", "test entry 1 '../decoy/images'")


def test_yolo_folder_pair_without_yaml_and_cache(yolo_root, tmp_path):
    (yolo_root / "data.yaml").unlink()
    (yolo_root / "extra.txt").unlink()
    (yolo_root / "classes.txt").write_text("cat\ndog\nbird\n")
    assert detect_format(yolo_root) == "yolo"
    assert available_splits(yolo_root) == ["extra", "train", "val"]
    assert load_classes(yolo_root) == ("cat", "dog", "bird")
    cache = tmp_path / "cache"
    first = build_index([yolo_root], ["val"], load_classes(yolo_root), cache, progress=False)
    np.testing.assert_array_equal(first.boxes, [[16, 12, 48, 36]])
    # the cache is keyed on the files: editing a label file gives the new boxes
    label = yolo_root / "labels" / "val" / "v.txt"
    label.write_text("1 0.5 0.5 0.25 0.5\n")
    os.utime(label, ns=(label.stat().st_mtime_ns + 10**9,) * 2)
    again = build_index([yolo_root], ["val"], load_classes(yolo_root), cache, progress=False)
    np.testing.assert_array_equal(again.boxes, [[24, 12, 40, 36]])


# ------------------------------------------------------------------------------------ COCO
def _coco(root: Path, outside: Path) -> dict:
    for name in ("a", "b", "bg", "crowd", "dup", "unknown"):
        _image(root / "images" / "train" / f"{name}.jpg")
    images = [
        {"id": 10, "file_name": "a.jpg", "width": W, "height": H},
        {"id": 11, "file_name": "b.jpg", "width": W, "height": H},
        {"id": 12, "file_name": "bg.jpg", "width": W, "height": H},  # no annotations: background
        {"id": 13, "file_name": "crowd.jpg", "width": W, "height": H},
        {"id": 11, "file_name": "dup.jpg", "width": W, "height": H},  # images[4]: duplicate id 11
        {"id": 15, "file_name": "../outside.jpg", "width": W, "height": H},  # images[5]
        {"id": 16, "file_name": str(outside), "width": W, "height": H},  # images[6]: absolute
        {"id": 17, "file_name": "missing.jpg", "width": W, "height": H},  # images[7]
        {"file_name": "noid.jpg"},  # images[8]
        {"id": 19, "file_name": "unknown.jpg", "width": W, "height": H},
    ]
    anns = [
        {"id": 1, "image_id": 10, "category_id": 7, "bbox": [24, 12, 16, 24], "iscrowd": 0},
        {"id": 2, "image_id": 11, "category_id": 11, "bbox": [0.5, 1.25, 10, 20], "iscrowd": 0},
        {"id": 3, "image_id": 11, "category_id": 3, "bbox": [40, 30, 30, 30], "iscrowd": 0},  # clipped to 64x48
        {"id": 4, "image_id": 13, "category_id": 3, "bbox": [2, 2, 20, 20], "iscrowd": 1},  # difficult
        {"id": 5, "image_id": 19, "category_id": 5, "bbox": [2, 2, 20, 20]},  # annotations[4]: category 5
        {"id": 6, "image_id": 99, "category_id": 3, "bbox": [2, 2, 20, 20]},  # annotations[5]: no image 99
        {"id": 7, "image_id": 10, "category_id": 3, "bbox": [2, 2, 20]},  # annotations[6]: 3 numbers
        {"id": 8, "image_id": 10, "category_id": 3, "bbox": [2, 2, -5, 20]},  # annotations[7]: negative w
        {"id": 9, "image_id": 10, "category_id": 3},  # annotations[8]: no bbox
    ]
    # ids with gaps, listed out of order: classes follow the file's order
    cats = [{"id": 11, "name": "cow"}, {"id": 3, "name": "ant"}, {"id": 7, "name": "bee"}]
    return {"images": images, "annotations": anns, "categories": cats}


def test_coco_reader_boxes_classes_and_every_bad_record(tmp_path):
    root, outside = tmp_path / "coco", tmp_path / "outside.jpg"
    _image(outside)
    (root / "annotations").mkdir(parents=True)
    json_file = root / "annotations" / "instances_train.json"
    json_file.write_text(json.dumps(_coco(root, outside)))
    assert detect_format(root) == "coco" and detect_format(json_file) == "coco"
    assert available_splits(root) == ["train"]
    classes = load_classes(root)
    assert classes == ("cow", "ant", "bee")
    index = build_index([root], ["train"], classes, tmp_path / "cache", progress=False)
    assert list(index.ids) == ["a", "b", "bg", "crowd", "unknown"]
    ann = {i: index.annotation(k) for k, i in enumerate(index.ids)}
    np.testing.assert_array_equal(ann["a"][0], [[24, 12, 40, 36]])
    np.testing.assert_array_equal(ann["a"][1], [2])  # bee
    np.testing.assert_array_equal(ann["b"][0], [[0.5, 1.25, 10.5, 21.25], [40, 30, 64, 48]])
    np.testing.assert_array_equal(ann["b"][1], [0, 1])  # cow, ant
    assert len(ann["bg"][0]) == 0 and len(ann["unknown"][0]) == 0
    np.testing.assert_array_equal(ann["crowd"][2], [True])  # iscrowd -> difficult
    f = "annotations/instances_train.json"
    assert _has(index, "duplicate_id", f, "images[4]: image id 11 already at images[1]")
    assert _has(index, "path_outside", f, "images[5] (id 15): file_name '../outside.jpg'")
    assert _has(index, "path_outside", f, "images[6] (id 16)")
    assert _has(index, "image_missing", f, "images[7] (id 17)")
    assert _has(index, "entry_malformed", f, "images[8]")
    assert _has(index, "unknown_class", f, "annotations[4] (id 5): category_id 5")
    assert _has(index, "entry_malformed", f, "annotations[5] (id 6): image_id 99")
    assert _has(index, "entry_malformed", f, "annotations[6] (id 7)")
    assert _has(index, "box_zero_area", f, "annotations[7] (id 8)")
    assert _has(index, "entry_malformed", f, "annotations[8] (id 9)")
    assert _has(index, "box_clipped", f, "images[1] (id 11)")
    # the JSON given by path reads the same
    same = build_index([json_file], ["train"], classes, tmp_path / "cache2", progress=False)
    np.testing.assert_array_equal(same.boxes, index.boxes)
    # a file that is not JSON: one report, no images, no crash
    json_file.write_text('{"images": [{"id": 1, ')
    broken = build_index([root], ["train"], classes, tmp_path / "cache", progress=False)
    assert len(broken) == 0 and _has(broken, "annotation_malformed", f)


def test_coco_categories_order_union_across_splits(tmp_path):
    root = tmp_path / "c"
    (root / "annotations").mkdir(parents=True)
    doc = {"images": [], "annotations": [], "categories": [{"id": 5, "name": "b"}, {"id": 2, "name": "a"}]}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    doc["categories"].append({"id": 9, "name": "c"})
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(doc))
    assert load_classes(root) == ("b", "a", "c")
    assert default_splits(root) == {"train": ("train2017",), "val": ("val2017",), "test": ("val2017",)}


_MEASURE = """
import sys
from pathlib import Path
from yolo.data.coco import read_coco
t, problems = read_coco(Path(sys.argv[1]))
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(len(t.image_ids), len(t.ann_image), len(problems), hwm)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM needs Linux /proc")
def test_coco_200mb_json_streams_in_bounded_memory(tmp_path):
    """A 200 MB instances JSON (segmentation polygons make most of it, as in COCO's own files)
    is read in a child process whose peak resident memory (VmHWM) stays under 300 MB;
    ``json.load`` of the same file holds every object at once (several times the file size)."""
    path = tmp_path / "big.json"
    poly = "[" + ",".join(f"{i * 1.5:.2f}" for i in range(600)) + "]"
    n = 0
    with open(path, "w") as f:
        f.write('{"images": [' + ",".join(json.dumps({"id": i, "file_name": f"im{i}.jpg", "width": W, "height": H})
                                          for i in range(20)) + '], "annotations": [')
        while f.tell() < 200_000_000:
            f.write(("," if n else "") + f'{{"id": {n}, "image_id": {n % 20}, "category_id": 1, '
                    f'"bbox": [10, 8, 20, 20], "iscrowd": 0, "segmentation": [{poly}]}}')
            n += 1
        f.write('], "categories": [{"id": 1, "name": "dog"}]}')
    assert path.stat().st_size >= 200_000_000
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout.split()
    images, anns, problems, hwm_kb = map(int, out)
    print(f"200 MB JSON: {anns} annotations, peak RSS {hwm_kb / 1024:.0f} MB, load {os.getloadavg()}")
    assert (images, anns, problems) == (20, n, 0)
    assert hwm_kb < 300 * 1024


def _one_image_json(file_name: str, categories: list, category_id) -> dict:
    return {"images": [{"id": 1, "file_name": file_name, "width": W, "height": H}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": category_id, "bbox": [24, 12, 16, 24],
                             "area": 384, "iscrowd": 0, "segmentation": []}],
            "categories": categories}


def test_exports_of_other_tools_read_as_coco(tmp_path):
    """The COCO JSON layouts other tools write: Roboflow (``<split>/_annotations.coco.json``, images
    beside it, a project 'category' that is every class's supercategory, ``valid`` for val), CVAT
    (``annotations/instances_default.json`` + ``images/``) and FiftyOne (``labels.json`` beside ``data/``)."""
    rf = tmp_path / "roboflow"
    cats = [{"id": 0, "name": "workers", "supercategory": "none"},
            {"id": 1, "name": "head", "supercategory": "workers"}, {"id": 2, "name": "helmet", "supercategory": "workers"}]
    for split, cid in (("train", 2), ("valid", 1), ("test", 1)):
        _image(rf / split / f"{split}_0_jpg.rf.abc.jpg")
        (rf / split / "_annotations.coco.json").write_text(json.dumps(_one_image_json(f"{split}_0_jpg.rf.abc.jpg", cats, cid)))
    (rf / "README.roboflow.txt").write_text("exported\n")
    assert detect_format(rf) == "coco" and available_splits(rf) == ["test", "train", "valid"]
    assert load_classes(rf) == ("head", "helmet")  # the project group 'workers' is not a class
    assert default_splits(rf) == {"train": ("train",), "val": ("valid",), "test": ("test",)}
    for split, label in (("train", 1), ("valid", 0)):
        index = build_index([rf], [split], load_classes(rf), tmp_path / "c", progress=False)
        assert len(index) == 1 and [(p.kind, p.detail) for p in index.problems] == [
            ("category_group", "categories[0] (id 0) 'workers'")]
        np.testing.assert_array_equal(index.annotation(0)[0], [[24, 12, 40, 36]])
        np.testing.assert_array_equal(index.annotation(0)[1], [label])

    # the JSON given by path (as --data, or as a split spec of the folder) finds its images beside it
    for data, spec in ((rf / "valid" / "_annotations.coco.json", "valid"), (rf, "valid/_annotations.coco.json")):
        index = build_index([data], [spec], ("head", "helmet"), tmp_path / "c", progress=False)
        assert len(index) == 1 and [p.kind for p in index.problems] == ["category_group"], (spec, index.problems)

    # one class named like the project (another id), and a group that boxes do use: both stay classes
    same = tmp_path / "same"
    _image(same / "train" / "a.jpg")
    cats = [{"id": 0, "name": "lego-face", "supercategory": "none"},
            {"id": 1, "name": "lego-face", "supercategory": "lego-face"}]
    (same / "train" / "_annotations.coco.json").write_text(json.dumps(_one_image_json("a.jpg", cats, 1)))
    assert load_classes(same) == ("lego-face",)
    index = build_index([same], ["train"], ("lego-face",), tmp_path / "c", progress=False)
    np.testing.assert_array_equal(index.annotation(0)[1], [0])
    assert [p.kind for p in index.problems] == ["category_group"]
    used = tmp_path / "used"
    _image(used / "train" / "a.jpg")
    cats = [{"id": 1, "name": "vehicle", "supercategory": "none"}, {"id": 2, "name": "car", "supercategory": "vehicle"}]
    (used / "train" / "_annotations.coco.json").write_text(json.dumps(_one_image_json("a.jpg", cats, 1)))
    assert load_classes(used) == ("vehicle", "car")  # a box is a 'vehicle': the group is a class here

    cvat = tmp_path / "cvat"
    _image(cvat / "images" / "frame_000000.jpg")
    (cvat / "annotations").mkdir(parents=True)
    (cvat / "annotations" / "instances_default.json").write_text(
        json.dumps(_one_image_json("frame_000000.jpg", [{"id": 1, "name": "car", "supercategory": ""}], 1)))
    assert available_splits(cvat) == ["default"] and load_classes(cvat) == ("car",)
    index = build_index([cvat], ["default"], ("car",), tmp_path / "c", progress=False)
    assert list(index.ids) == ["frame_000000"] and not index.problems

    fo = tmp_path / "fiftyone"
    _image(fo / "data" / "000001.jpg")
    (fo / "labels.json").write_text(json.dumps(_one_image_json("000001.jpg", [{"id": 0, "name": "dog"}], 0)))
    index = build_index([fo / "labels.json"], ["labels"], load_classes(fo / "labels.json"), tmp_path / "c", progress=False)
    assert list(index.ids) == ["000001"] and not index.problems
    np.testing.assert_array_equal(index.annotation(0)[0], [[24, 12, 40, 36]])


def test_a_coco_file_without_categories_is_refused_with_its_own_message(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [], "categories": [')
    with pytest.raises(DataLayoutError, match="no usable COCO categories"):
        load_classes(path)


def test_coco_categories_beyond_the_class_limit_are_reported_not_kept(tmp_path, monkeypatch):
    import yolo.data.coco as coco

    monkeypatch.setattr(coco, "MAX_CLASSES", 5)
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"images": [], "annotations": [],
                                "categories": [{"id": k, "name": f"c{k}"} for k in range(8)]}))
    cats, problems = coco.read_categories(path)
    assert [n for _, n in cats] == ["c0", "c1", "c2", "c3", "c4"]
    assert len(problems) == 1 and "categories[5] and after: over 5 categories" in problems[0].detail


def test_a_yolo_folder_that_names_no_classes_is_refused_not_read_as_voc(yolo_root, tmp_path):
    """Class ids without names would silently become VOC's first names: refused with what to add.
    ``nc`` without ``names`` names them class_0.. (Ultralytics' rule)."""
    (yolo_root / "data.yaml").write_text("train: images/train\nval: images/val\nnc: 3\n")
    assert load_classes(yolo_root) == ("class_0", "class_1", "class_2")
    (yolo_root / "classes.txt").write_text("cat\ndog\nbird\n")
    assert load_classes(yolo_root) == ("cat", "dog", "bird")  # a classes.txt names them before nc does
    (yolo_root / "classes.txt").unlink()
    (yolo_root / "data.yaml").write_text("train: images/train\nnames: [a]\ndate: 2001-13-01\n")
    with pytest.raises(DataLayoutError, match="not readable YAML"):  # a constructor error, not a traceback
        load_classes(yolo_root)
    (yolo_root / "data.yaml").write_text("train: images/train\nnc: many\n")
    with pytest.raises(DataLayoutError, match="nc must be a class count"):
        load_classes(yolo_root)
    (yolo_root / "data.yaml").unlink()
    assert detect_format(yolo_root) == "yolo"
    with pytest.raises(DataLayoutError, match="names no classes.*classes.txt"):
        load_classes(yolo_root)
    (yolo_root / "classes.txt").write_text("cat\ndog\nbird\n")
    assert load_classes(yolo_root) == ("cat", "dog", "bird")


def test_train_takes_a_coco_json_by_path_and_asks_for_a_val_split(tmp_path):
    """``train.py --data instances_train.json``: the JSON's own split trains; with no validation
    split the settings check says how to name one (before: a crash deep in the run), and
    ``--val-sets`` naming a JSON beside it completes the run's splits."""
    from train import config_from_args
    from yolo.config_checks import ConfigError, check_config
    from yolo.trainer import _own_data_splits

    root = tmp_path / "c"
    _image(root / "images" / "a.jpg")
    (root / "annotations").mkdir(parents=True)
    doc = _one_image_json("a.jpg", [{"id": 1, "name": "car"}], 1)
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    json_file = root / "annotations" / "instances_train.json"
    config = config_from_args(["--data", str(json_file), "--width", "0.25"])
    _own_data_splits(config)
    assert config.train_sets == ["train"] and config.val_sets == []
    with pytest.raises(ConfigError, match="no validation split found.*--val-sets"):
        check_config(config)
    config = config_from_args(["--data", str(json_file), "--width", "0.25", "--val-sets", "annotations/instances_val.json"])
    _own_data_splits(config)
    assert config.train_sets == ["train"] and config.val_sets == ["annotations/instances_val.json"]
    check_config(config)
    assert [len(build_index([json_file], [s], ("car",), tmp_path / "k", progress=False)) for s in
            (*config.train_sets, *config.val_sets)] == [1, 1]


def test_segment_label_lines_read_as_their_bounding_box(tmp_path):
    """Ultralytics' segmentation labels (``class x1 y1 x2 y2 ...``, e.g. a Roboflow 'YOLOv8 segmentation'
    export) in a detection dataset: each polygon's bounding box, as Ultralytics' detection loader
    does, counted as repaired; a polygon point outside [0, 1] and an even field count are reported."""
    root = tmp_path / "seg"
    _image(root / "images" / "train" / "p.jpg")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "p.txt").write_text("\n".join([
        "1 0.25 0.25 0.75 0.25 0.5 0.75",  # triangle: x 0.25..0.75, y 0.25..0.75 -> 16..48 x 12..36
        "0 0.5 0.5 0.25 0.5",  # a plain box line beside it: x 24..40, y 12..36
        "0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2",  # square: 6.4..12.8 x 4.8..9.6
        "1 0.1 0.1 0.2 0.1 0.2 1.2",  # line 4: a point below the image
        "1 0.1 0.1 0.2 0.1 0.2 0.2 0.3",  # line 5: 8 fields
    ]) + "\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [a, b]\n")
    index = build_index([root], ["train"], load_classes(root), tmp_path / "c", progress=False)
    boxes, labels = index.annotation(0)[:2]
    np.testing.assert_allclose(boxes, [[16, 12, 48, 36], [24, 12, 40, 36], [6.4, 4.8, 12.8, 9.6]], atol=1 / 256)
    np.testing.assert_array_equal(labels, [1, 0, 0])
    assert _has(index, "label_polygon", "p.txt", "2 lines")
    assert _has(index, "label_out_of_range", "p.txt", "line 4")
    assert _has(index, "label_line_malformed", "p.txt", "line 5: 8 fields")
