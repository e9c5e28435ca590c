"""``python -m yolo.data apply-review``: the copy's index differs from the original's exactly by
the accepted decisions (VOC and Kaggle layouts, and across them); the original files' hashes
are unchanged; the copy reads as a training dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from yolo.data.__main__ import main as data_main
from yolo.data.decisions import Decision, ReviewLog, apply_decisions, review_file_path
from yolo.data.demo import write_demo
from yolo.data.layout import build_index, load_classes


def hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the index caches and review files (ours)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and ".yolo_cache" not in p.parts and not p.name.startswith("label_review-")}


@pytest.fixture
def demo(tmp_path) -> Path:
    return write_demo(tmp_path / "demo", n_train=6, n_val=6, n_test=2, seed=3)


def decide_some(root: Path, split: str, cache: Path) -> tuple[ReviewLog, list]:
    """One decision of each kind on the split's first images, saved beside the dataset."""
    classes = load_classes(root)
    index = build_index([root], [split], classes, cache, progress=False)
    log = ReviewLog.open(review_file_path(root, split), root, split, classes)
    ann = lambda i: index.annotation(i)
    ids = [str(x) for x in index.ids]
    b0, l0, _ = ann(0)
    b1, l1, _ = ann(1)
    b2, l2, _ = ann(2)
    decisions = [
        Decision(ids[0], "wrong_class", "accept", gt=0, label=int(l0[0]), box=tuple(map(float, b0[0])),
                 new_label=(int(l0[0]) + 1) % len(classes)),
        Decision(ids[1], "loose", "accept", gt=0, label=int(l1[0]), box=tuple(map(float, b1[0])),
                 new_box=(3.0, 4.0, 60.0, 70.0)),
        Decision(ids[2], "spurious", "accept", gt=0, label=int(l2[0]), box=tuple(map(float, b2[0]))),
        Decision(ids[3], "missing", "accept", new_label=2, new_box=(10.0, 12.0, 50.0, 40.0)),
        Decision(ids[4], "duplicate", "keep", gt=0, label=int(ann(4)[1][0]), box=tuple(map(float, ann(4)[0][0]))),
        Decision(ids[5], "missing", "accept", new_label=1, new_box=(5.0, 5.0, 30.0, 30.0)),
    ]
    for d in decisions:
        log = log.decide(d)
    log = log.undo()  # the last one taken back: never applied
    log.save()
    return log, decisions[:-1]


def expected_index(index, decisions) -> dict[str, tuple]:
    """The original index with the decisions applied by hand, per image id."""
    out = {}
    for i, image_id in enumerate(index.ids):
        b, l, d = (x.copy() for x in index.annotation(i))
        for dec in decisions:
            if dec.image_id != str(image_id) or dec.action != "accept":
                continue
            if dec.kind == "wrong_class":
                l[dec.gt] = dec.new_label
            elif dec.kind == "loose":
                b[dec.gt] = dec.new_box
            elif dec.kind in ("spurious", "duplicate"):
                keep = np.arange(len(l)) != dec.gt
                b, l, d = b[keep], l[keep], d[keep]
            elif dec.kind == "missing":
                b, l, d = np.vstack([b, [dec.new_box]]), np.append(l, dec.new_label), np.append(d, False)
        out[str(image_id)] = (b, l, d)
    return out


def assert_index_is(index, expected: dict) -> None:
    assert sorted(map(str, index.ids)) == sorted(expected)
    for i, image_id in enumerate(index.ids):
        b, l, _ = index.annotation(i)
        eb, el, _ = expected[str(image_id)]
        assert l.tolist() == list(el), image_id
        np.testing.assert_allclose(b, eb, atol=0.01, err_msg=str(image_id))  # XML keeps 2 decimals


def test_apply_review_voc_changes_exactly_the_accepted_decisions(demo, tmp_path, capsys):
    before = hashes(demo)
    log, decisions = decide_some(demo, "val", tmp_path / "cache")
    assert log.path.parent == demo  # beside the dataset (writable)
    original = build_index([demo], ["val"], load_classes(demo), tmp_path / "cache", progress=False)
    out = tmp_path / "fixed"
    assert data_main(["apply-review", str(demo), str(log.path), str(out), "--cache-dir", str(tmp_path / "c2")]) == 0
    text = capsys.readouterr().out
    assert "4 images changed: 2 labels added" not in text  # the undone decision is not applied
    assert "4 images changed: 1 labels added, 1 reclassified, 1 boxes replaced, 1 deleted; 1 kept" in text
    assert hashes(demo) == before  # the original files are untouched
    copy = build_index([out], ["val"], load_classes(out), tmp_path / "c3", progress=False)
    assert_index_is(copy, expected_index(original, decisions))
    # the other splits and the images are copied as they were
    for split in ("train", "test"):
        a = build_index([demo], [split], load_classes(demo), tmp_path / "cache", progress=False)
        b = build_index([out], [split], load_classes(out), tmp_path / "c3", progress=False)
        np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not (out / log.path.name).exists()


def test_apply_review_refuses_to_write_into_the_dataset(demo, tmp_path, capsys):
    log, _ = decide_some(demo, "val", tmp_path / "cache")
    assert data_main(["apply-review", str(demo), str(log.path), str(demo / "inside")]) == 2
    assert "outside the dataset folder" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert data_main(["apply-review", str(demo), str(log.path), str(tmp_path / "full")]) == 2
    assert "not an empty folder" in capsys.readouterr().err


def test_apply_review_kaggle_layout_and_across_layouts(demo, tmp_path):
    empty = ReviewLog.open(tmp_path / "none.json", demo, "val", load_classes(demo))
    empty.save()
    kaggle = tmp_path / "kaggle"
    summary = __import__("yolo.data.apply_review", fromlist=["apply_review"]).apply_review(
        demo, empty.path, kaggle, to="kaggle", cache_dir=tmp_path / "cache")
    assert summary.images_changed == [] and (kaggle / "val.csv").is_file()
    original = build_index([demo], ["val"], load_classes(demo), tmp_path / "cache", progress=False)
    as_kaggle = build_index([kaggle], ["val"], load_classes(kaggle), tmp_path / "cache", progress=False)
    assert_index_is(as_kaggle, expected_index(original, []))
    # a review of the Kaggle copy, applied in its own layout, then written back as VOC
    before = hashes(kaggle)
    log, decisions = decide_some(kaggle, "val", tmp_path / "cache")
    fixed = tmp_path / "fixed-kaggle"
    assert data_main(["apply-review", str(kaggle), str(log.path), str(fixed), "--cache-dir", str(tmp_path / "c")]) == 0
    assert hashes(kaggle) == before
    expected = expected_index(as_kaggle, decisions)
    assert_index_is(build_index([fixed], ["val"], load_classes(fixed), tmp_path / "c", progress=False), expected)
    voc = tmp_path / "voc"
    assert data_main(["apply-review", str(kaggle), str(log.path), str(voc), "--to", "voc",
                      "--cache-dir", str(tmp_path / "c")]) == 0
    assert_index_is(build_index([voc], ["val"], load_classes(voc), tmp_path / "c", progress=False), expected)


def test_training_data_reads_the_corrected_copy(demo, tmp_path):
    """The copy is a dataset like the original: every sample of it loads for training."""
    from yolo.data.datasets import DetectionDataset

    log, _ = decide_some(demo, "train", tmp_path / "cache")
    out = tmp_path / "fixed"
    assert data_main(["apply-review", str(demo), str(log.path), str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    index = build_index([out], ["train"], load_classes(out), tmp_path / "c", progress=False)
    assert not index.problems
    dataset = DetectionDataset(index)
    samples = [dataset[i] for i in range(len(dataset))]
    assert sum(len(s["boxes"]) for s in samples) == len(index.boxes)


def test_apply_decisions_agrees_with_the_hand_edit(demo, tmp_path):
    log, decisions = decide_some(demo, "val", tmp_path / "cache")
    index = build_index([demo], ["val"], load_classes(demo), tmp_path / "cache", progress=False)
    expected = expected_index(index, decisions)
    for i, image_id in enumerate(index.ids):
        b, l, _, _ = apply_decisions(*index.annotation(i), log.for_image(str(image_id)))
        assert l.tolist() == list(expected[str(image_id)][1])
        np.testing.assert_allclose(b, expected[str(image_id)][0])


@pytest.mark.parametrize("layout", ["yolo", "coco"])
def test_apply_review_to_yolo_and_coco_through_convert(demo, tmp_path, layout):
    from yolo.data.layout import available_splits, detect_format

    before = hashes(demo)
    log, decisions = decide_some(demo, "val", tmp_path / "cache")
    original = build_index([demo], ["val"], load_classes(demo), tmp_path / "cache", progress=False)
    out = tmp_path / layout
    assert data_main(["apply-review", str(demo), str(log.path), str(out), "--to", layout,
                      "--cache-dir", str(tmp_path / "c")]) == 0
    assert hashes(demo) == before and detect_format(out) == layout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".apply-review-")]  # staging removed
    (spec,) = available_splits(out)
    copy = build_index([out], [spec], load_classes(out), tmp_path / "c2", progress=False)
    assert_index_is(copy, expected_index(original, decisions))
