"""Every kind of bad data, made in a temporary folder: skipped or repaired, counted, reported,
and a DataLoader over the folder still yields every good sample."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from yolo.data.__main__ import main as cli
from yolo.data.check import check_dataset
from yolo.data.collate import collate
from yolo.data.datasets import DetectionDataset, EvalDataset
from yolo.data.index import sanitize_boxes
from yolo.data.layout import build_index
from yolo.data.mosaic import TrainDataset
from yolo.data.multiscale import MultiScaleBatchSampler
from yolo.data.voc import format_voc_xml

CLASSES = ("dog", "cat")
W, H = 64, 48
RED = (255, 0, 0)
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<annotation><filename>&lol4;</filename><object><name>dog</name></object></annotation>
"""
GOOD = {"good_0", "good_1", "good_2", "good_3", "gray", "cmyk", "png16", "rgba", "exif_applied",
        "exif_ignored", "size_mismatch", "unknown_class", "boxes", "no_objects"}


def _marked(w: int = W, h: int = H, box=(10, 8, 30, 28)) -> np.ndarray:
    """RGB image: dark noise with a red rectangle filling ``box`` (x0, y0, x1, y1) edges."""
    rng = np.random.default_rng(w * h)
    image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = RED
    return image


def _save_pil(image: Image.Image, path: Path, **kw) -> None:
    image.save(path, **kw)


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    year = root / "VOCdevkit" / "VOCbad"
    ann, img = year / "Annotations", year / "JPEGImages"
    for d in (ann, img, year / "ImageSets" / "Main"):
        d.mkdir(parents=True)

    def xml(name, names=("dog",), boxes=((10, 8, 30, 28),), w=W, h=H, fname=None):
        (ann / f"{name}.xml").write_text(format_voc_xml(fname or f"{name}.jpg", w, h, names, boxes))

    for k in range(4):  # good images
        _save_pil(Image.fromarray(_marked()), img / f"good_{k}.jpg", quality=95)
        xml(f"good_{k}")
    rgb = Image.fromarray(_marked())
    _save_pil(rgb.convert("L"), img / "gray.jpg", quality=95)
    xml("gray")
    _save_pil(rgb.convert("CMYK"), img / "cmyk.jpg", quality=95)
    xml("cmyk")
    cv2.imwrite(str(img / "png16.png"), (_marked()[..., ::-1].astype(np.uint16) * 257))
    xml("png16", fname="png16.png")
    _save_pil(Image.fromarray(np.dstack([_marked(), np.full((H, W), 200, np.uint8)])), img / "rgba.png")
    xml("rgba", fname="rgba.png")
    # EXIF orientation 6 (display = stored rotated 90 degrees clockwise)
    stored = Image.fromarray(_marked(box=(40, 4, 60, 20)))
    exif = stored.getexif()
    exif[0x0112] = 6
    for name in ("exif_applied", "exif_ignored"):
        _save_pil(stored, img / f"{name}.jpg", quality=95, exif=exif.tobytes())
    # stored box x 40..60, y 4..20 in a 64x48 image; rotated 90 CW into 48x64: x' = H - y, y' = x
    xml("exif_applied", boxes=((H - 20, 40, H - 4, 60),), w=H, h=W)
    xml("exif_ignored", boxes=((40, 4, 60, 20),))
    _save_pil(rgb, img / "size_mismatch.jpg", quality=95)
    xml("size_mismatch", boxes=((20, 16, 60, 56),), w=2 * W, h=2 * H)
    _save_pil(rgb, img / "unknown_class.jpg", quality=95)
    xml("unknown_class", names=("dog", "dgo"), boxes=((10, 8, 30, 28), (1, 1, 5, 5)))
    _save_pil(rgb, img / "boxes.jpg", quality=95)
    raw = [("dog", 11, 9, 30, 28),  # fine: 0-based edges (10, 8, 30, 28)
           ("dog", 31, 9, 10, 28),  # inverted -> swapped to (10, 9, 31, 28) -> (9, 8, 31, 28)
           ("dog", 51, 31, 70, 60),  # partly outside -> clipped to (50, 30, 64, 48)
           ("dog", 81, 11, 90, 20),  # entirely outside -> dropped
           ("dog", 20, 21, 20, 30),  # zero width -> dropped
           ("cat", 2, 2, 9, "abc")]  # not a number -> dropped
    objects = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
                      f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>" for n, a, b, c, d in raw)
    (ann / "boxes.xml").write_text(f"<annotation><filename>boxes.jpg</filename><size><width>{W}</width>"
                                   f"<height>{H}</height></size>{objects}</annotation>")
    _save_pil(rgb, img / "no_objects.jpg", quality=95)
    xml("no_objects", names=(), boxes=())
    # skipped
    (img / "unreadable.jpg").write_bytes(b"this is not an image" * 10)
    xml("unreadable")
    (img / "zero_byte.jpg").write_bytes(b"")
    xml("zero_byte")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3)).astype(np.uint8)).save(buf, "JPEG")
    (img / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    xml("truncated")
    xml("missing_image")
    _save_pil(rgb, img / "missing_annotation.jpg")
    _save_pil(rgb, img / "malformed.jpg")
    (ann / "malformed.xml").write_text("<annotation><size><width>64</width></size><object>")
    _save_pil(rgb, img / "unsafe.jpg")
    (ann / "unsafe.xml").write_text(BILLION_LAUGHS)
    ids = sorted(GOOD) + ["unreadable", "zero_byte", "truncated", "missing_image", "missing_annotation",
                          "malformed", "unsafe", "good_0"]
    (year / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


EXPECTED = {  # kind -> file name it is reported against
    "image_unreadable": ["unreadable.jpg", "zero_byte.jpg"], "image_truncated": ["truncated.jpg"],
    "image_missing": ["missing_image.jpg"], "annotation_missing": ["missing_annotation.xml"],
    "annotation_malformed": ["malformed.xml"], "annotation_unsafe": ["unsafe.xml"],
    "duplicate_id": ["train.txt"], "unknown_class": ["unknown_class.jpg"], "box_inverted": ["boxes.xml"],
    "box_clipped": ["boxes.xml"], "box_outside": ["boxes.xml"], "box_zero_area": ["boxes.xml"],
    "box_invalid": ["boxes.xml"], "no_objects": ["no_objects.jpg"], "size_mismatch": ["size_mismatch.xml"],
    "image_converted": ["cmyk.jpg", "gray.jpg", "png16.png", "rgba.png"],
    "exif_orientation": ["exif_applied.jpg", "exif_ignored.jpg"],
}


@pytest.fixture(scope="module")
def bad_index(bad_root, tmp_path_factory):
    return build_index([bad_root], ["train"], CLASSES, tmp_path_factory.mktemp("cache"), progress=False)


def test_every_problem_is_reported_with_its_file(bad_index):
    found: dict[str, list[str]] = {}
    for p in bad_index.problems:
        found.setdefault(p.kind, []).append(Path(p.file).name)
    assert {k: sorted(v) for k, v in found.items()} == EXPECTED
    assert set(bad_index.ids) == GOOD


def test_repaired_boxes(bad_index):
    ids = list(bad_index.ids)
    boxes, labels, _ = bad_index.annotation(ids.index("boxes"))
    # written 1-based as (x0 + 1, y0 + 1, x1, y1); the inverted one is swapped before conversion
    np.testing.assert_array_equal(boxes, [[10, 8, 30, 28], [9, 8, 31, 28], [50, 30, 64, 48]])
    boxes, labels, _ = bad_index.annotation(ids.index("unknown_class"))
    assert labels.tolist() == [0] and boxes.tolist() == [[10, 8, 30, 28]]
    boxes, _, _ = bad_index.annotation(ids.index("size_mismatch"))  # annotated at 2x: halved
    np.testing.assert_allclose(boxes, [[10, 8, 30, 28]])
    assert len(bad_index.annotation(ids.index("no_objects"))[0]) == 0


def test_sanitize_boxes_is_vectorised_and_exact():
    raw = np.array([[1, 1, 10, 10], [10, 1, 1, 10], [5, 5, 5, 9], [np.nan, 1, 2, 3], [-5, -5, 4, 4], [30, 30, 40, 40]])
    boxes, keep, counts = sanitize_boxes(raw, 20, 20, one_based=True)
    assert keep.tolist() == [True, True, False, False, True, False]
    np.testing.assert_array_equal(boxes, [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4]])
    assert counts == {"box_invalid": 1, "box_inverted": 1, "box_zero_area": 1, "box_clipped": 1, "box_outside": 1}


def test_odd_images_decode_as_rgb_in_the_annotated_frame(bad_index):
    ds = DetectionDataset(bad_index)
    ids = list(bad_index.ids)
    for name in ("gray", "cmyk", "png16", "rgba", "good_0", "exif_applied", "exif_ignored"):
        sample = ds[ids.index(name)]
        image = sample["image"]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert image.shape[:2] == tuple(bad_index.sizes[ids.index(name)]), name
        x0, y0, x1, y1 = sample["boxes"][0].astype(int)
        inside = image[y0 + 2:y1 - 2, x0 + 2:x1 - 2].reshape(-1, 3).astype(int)
        if name == "gray":
            assert (np.ptp(inside, axis=1) <= 2).all() and inside.mean() > 60
        else:  # red where the box is
            assert (inside[:, 0] > 200).mean() > 0.95 and (inside[:, 1] < 60).mean() > 0.95, name
    assert ds[ids.index("exif_applied")]["image"].shape[:2] == (W, H)
    assert ds[ids.index("exif_ignored")]["image"].shape[:2] == (H, W)


def test_dataloaders_yield_every_good_sample(bad_index):
    base = DetectionDataset(bad_index)
    seen = []
    for batch in DataLoader(EvalDataset(base, 64), batch_size=4, collate_fn=collate):
        assert batch["images"].shape[1:] == (3, 64, 64)
        seen += [m["id"] for m in batch["meta"]]
    assert sorted(seen) == sorted(GOOD)
    train = TrainDataset(base, 64, mosaic_p=0.75)
    sampler = MultiScaleBatchSampler(len(train), 4, (64, 96), seed=1, drop_last=False)
    primaries = []
    for batch in DataLoader(train, batch_sampler=sampler, collate_fn=collate, num_workers=2):
        primaries += [m["id"] for m in batch["meta"]]
    assert sorted(primaries) == sorted(GOOD)


def test_image_broken_after_indexing_is_replaced_and_counted(bad_index, tmp_path):
    ds = DetectionDataset(bad_index)
    i = list(bad_index.ids).index("good_2")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8garbage\xff\xd9")
    ds.index.paths = ds.index.paths.copy()
    ds.index.paths[i] = str(broken)
    sample = EvalDataset(ds, 64)[i]
    assert sample["id"] == bad_index.ids[(i + 1) % len(bad_index)] and ds.decode_failures == 1


def test_check_report_and_cli(bad_root, tmp_path, capsys):
    report = check_dataset(bad_root, classes=CLASSES, cache_dir=tmp_path, progress=False)
    assert not report.ok
    assert report.splits[0].images == len(GOOD)
    counts = report.problem_counts
    assert counts["box_outside"] == 1 and counts["image_unreadable"] == 2 and counts["unknown_class"] == 1
    json.dumps(report.to_dict())
    out = tmp_path / "report.json"
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    code = cli(["check", str(bad_root), "--classes", str(tmp_path / "classes.txt"), "--strict", "--quiet",
                "--cache-dir", str(tmp_path), "--max-problems", "0", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    for kind, files in EXPECTED.items():
        assert kind in text
        for f in files:
            assert f in text
    assert json.loads(out.read_text())["problem_counts"] == counts


def test_kaggle_bad_cases(tmp_path):
    root = tmp_path / "kag"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in ("a", "b", "c", "d"):
        Image.fromarray(_marked()).save(root / "images" / f"{name}.jpg")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "labels" / "b.txt").write_text("0 0.5 0.5 0.25\nx 0.1 0.1 0.1 0.1\n1 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "e.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "train.csv").write_text("img,label\na.jpg,a.txt\nb.jpg,b.txt\nc.jpg,c.txt\ne.jpg,e.txt\n")
    index = build_index([root], ["train"], CLASSES, tmp_path / "cache", progress=False)
    kinds = sorted((p.kind, Path(p.file).name, p.count) for p in index.problems)
    assert kinds == [("annotation_missing", "c.txt", 1), ("image_missing", "e.jpg", 1),
                     ("label_line_malformed", "b.txt", 1), ("unknown_class", "b.jpg", 2)]  # class "x" and 7
    assert list(index.ids) == ["a", "b"]
    np.testing.assert_allclose(index.annotation(0)[0], [[24, 18, 40, 30]])
    assert index.annotation(1)[1].tolist() == [1]


# ------------------------------------------------------ one folder, every bad case of issue 9 (5-6)
def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 8-bit RGB pixels (no real pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


LONG = "x" * 300  # over every common file system's 255-byte name limit


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict:
    """``outside/`` (readable files that must never be opened) beside ``voc/`` and ``kaggle/``,
    each mixing good samples with every bad case: '..' and absolute names, links out of the
    folder, a decompression-bomb header, a 5000x3 image, a name over the length limit, a GIF in
    JPEGImages/, a text file as an image, a one-column CSV row."""
    base = tmp_path_factory.mktemp("mixed")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.xml").write_text(format_voc_xml("secret.jpg", W, H, ["dog"], [(10, 8, 30, 28)]))
    Image.fromarray(_marked()).save(outside / "secret.jpg")
    (outside / "secret.txt").write_text("0 0.5 0.5 0.25 0.25\n")

    year = base / "voc" / "VOCdevkit" / "VOCmix"
    ann, img = year / "Annotations", year / "JPEGImages"
    for d in (ann, img, year / "ImageSets" / "Main"):
        d.mkdir(parents=True)

    def sample(name: str, image: np.ndarray | None = None, ext: str = "jpg") -> None:
        image = _marked() if image is None else image
        h, w = image.shape[:2]
        (ann / f"{name}.xml").write_text(format_voc_xml(f"{name}.{ext}", w, h, ["dog"], [(1, 1, min(w, 30), h - 1)]))
        if ext:
            Image.fromarray(image).save(img / f"{name}.{ext}")

    for name in ("good_a", "good_b", "good_c"):
        sample(name)
    sample("wide_ok", _marked(320, 10, (0, 0, 200, 10)))  # aspect 32: the limit, still usable
    sample("link_ann")
    (ann / "link_ann.xml").unlink()
    os.symlink(outside / "secret.xml", ann / "link_ann.xml")
    sample("link_img")
    (img / "link_img.jpg").unlink()
    os.symlink(outside / "secret.jpg", img / "link_img.jpg")
    sample("bomb", ext="")
    (img / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    sample("thin", _marked(5000, 3, (0, 0, 100, 3)))
    sample("gif", ext="gif")
    sample("text", ext="")
    (img / "text.jpg").write_text("not an image at all\n" * 20)
    ids = ["good_a", "../../../../outside/secret", str(outside / "secret"), "link_ann", "link_img", "good_b",
           "bomb", "thin", LONG, "gif", "text", "wide_ok", "good_c"]
    (year / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")

    kag = base / "kaggle"
    (kag / "images").mkdir(parents=True)
    (kag / "labels").mkdir()
    for name in ("k_good", "k_good2", "k_lab"):
        Image.fromarray(_marked()).save(kag / "images" / f"{name}.jpg")
    for name in ("k_good", "k_good2", "k_link", "bomb", "thin"):
        (kag / "labels" / f"{name}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    os.symlink(outside / "secret.jpg", kag / "images" / "k_link.jpg")
    os.symlink(outside / "secret.txt", kag / "labels" / "k_lab.txt")
    (kag / "images" / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    Image.fromarray(_marked(5000, 3, (0, 0, 100, 3))).save(kag / "images" / "thin.jpg")
    rows = ["img,label", "k_good.jpg,k_good.txt", "../outside/secret.jpg,../outside/secret.txt",
            f"{outside / 'secret.jpg'},{outside / 'secret.txt'}", "only_one_column.jpg",
            "k_link.jpg,k_link.txt", "k_lab.jpg,k_lab.txt", "bomb.png,bomb.txt", "thin.jpg,thin.txt",
            f"{LONG}.jpg,{LONG}.txt", "k_good2.jpg,k_good2.txt"]
    (kag / "train.csv").write_text("\n".join(rows) + "\n")
    return {"base": base, "outside": outside, "voc": base / "voc", "kaggle": kag}


@pytest.fixture()
def opened(monkeypatch):
    """Every path opened while the test runs: Python-level opens (audit hook: open, io.open,
    os.open, PIL), plus numpy's and OpenCV's C-level readers."""
    import sys

    paths: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            paths.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)  # cannot be removed: switched off at teardown instead
    fromfile, imread = np.fromfile, cv2.imread
    monkeypatch.setattr(np, "fromfile", lambda f, *a, **k: (paths.append(str(f)), fromfile(f, *a, **k))[1])
    monkeypatch.setattr(cv2, "imread", lambda f, *a, **k: (paths.append(str(f)), imread(f, *a, **k))[1])
    yield paths
    active[0] = False


def _outside_reads(paths: list[str], outside: Path) -> list[str]:
    real = outside.resolve()
    return [p for p in paths if os.path.realpath(p).startswith(str(real))]


def test_mixed_voc_folder_keeps_every_good_sample_reports_every_bad_one(mixed, tmp_path, opened, capsys):
    code = cli(["check", str(mixed["voc"]), "--classes", "dog,cat", "--quiet", "--max-problems", "0",
                "--cache-dir", str(tmp_path), "--json", str(tmp_path / "report.json")])
    text = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["splits"][0]["images"] == 4  # good_a, good_b, good_c, wide_ok, and nothing else
    found = {(p["kind"], Path(p["file"]).name) for p in report["problems"]}
    expected = {("path_outside", "train.txt"),  # the '..' id and the absolute id, reported at their list
                ("path_outside", "link_ann.xml"), ("path_outside", "link_img.jpg"),
                ("image_too_large", "bomb.png"), ("image_too_thin", "thin.jpg"),
                ("path_invalid", "train.txt"), ("image_unsupported", "gif.gif"), ("image_unreadable", "text.jpg")}
    assert expected <= found, expected - found
    details = " ".join(p["detail"] for p in report["problems"])
    assert "'../../../../outside/secret'" in details and repr(str(mixed["outside"] / "secret")) in details
    assert sum(p["kind"] == "path_outside" for p in report["problems"]) == 4
    for name in ("link_ann.xml", "link_img.jpg", "bomb.png", "thin.jpg", "gif.gif", "text.jpg", "train.txt"):
        assert name in text
    assert "image_missing" not in found and "annotation_missing" not in {k for k, _ in found}
    assert _outside_reads(opened, mixed["outside"]) == []
    assert any("good_a.jpg" in p for p in opened)  # the recorder does see the reads that happen

    # training reads the same index: every good sample, nothing outside, the 32:1 image included
    index = build_index([mixed["voc"]], ["train"], ("dog", "cat"), tmp_path, progress=False)
    base = DetectionDataset(index)
    seen = [m["id"] for b in DataLoader(EvalDataset(base, 32), batch_size=2, collate_fn=collate) for m in b["meta"]]
    assert sorted(seen) == ["good_a", "good_b", "good_c", "wide_ok"]
    train = TrainDataset(base, 32, mosaic_p=0.5)
    sampler = MultiScaleBatchSampler(len(train), 2, (32, 64), seed=1, drop_last=False)
    got = [m["id"] for b in DataLoader(train, batch_sampler=sampler, collate_fn=collate) for m in b["meta"]]
    assert sorted(got) == sorted(seen) and base.decode_failures == 0
    assert _outside_reads(opened, mixed["outside"]) == []


def test_mixed_kaggle_folder_reports_rows_and_never_reads_outside(mixed, tmp_path, opened):
    report = check_dataset(mixed["kaggle"], classes=("dog", "cat"), cache_dir=tmp_path, progress=False)
    assert report.splits[0].images == 2  # k_good, k_good2
    found = sorted((p.kind, Path(p.file).name, p.detail.split(":")[0]) for p in report.problems)
    assert ("row_malformed", "train.csv", "row 5") in found
    for row in ("row 3", "row 4", "row 6", "row 7"):  # '..', absolute, image link, label link
        assert ("path_outside", "train.csv", row) in found, row
    assert ("path_invalid", "train.csv", "row 10") in found
    assert any(k == "image_too_large" and f == "bomb.png" for k, f, _ in found)
    assert any(k == "image_too_thin" and f == "thin.jpg" for k, f, _ in found)
    assert _outside_reads(opened, mixed["outside"]) == []


def test_split_list_linked_from_outside_is_refused_unread(mixed, tmp_path, opened):
    """A split list or CSV that is a link out of the dataset: a clear DataLayoutError, and the
    outside file (here a readable text file) is never opened."""
    from yolo.data.layout import DataLayoutError

    root = tmp_path / "voc"
    year = root / "VOCdevkit" / "VOC2012"
    (year / "ImageSets" / "Main").mkdir(parents=True)
    (year / "Annotations").mkdir()
    (year / "JPEGImages").mkdir()
    os.symlink(mixed["outside"] / "secret.txt", year / "ImageSets" / "Main" / "train.txt")
    with pytest.raises(DataLayoutError, match="outside the dataset folder"):
        check_dataset(root, classes=CLASSES, cache_dir=tmp_path / "cache", progress=False)
    assert cli(["check", str(root), "--quiet", "--cache-dir", str(tmp_path / "cache")]) == 2  # a message, no traceback
    kag = tmp_path / "kag"
    (kag / "images").mkdir(parents=True)
    (kag / "labels").mkdir()
    os.symlink(mixed["outside"] / "secret.txt", kag / "train.csv")
    with pytest.raises(DataLayoutError, match="outside the dataset folder"):
        build_index([kag], ["train"], CLASSES, tmp_path / "cache", progress=False)
    assert _outside_reads(opened, mixed["outside"]) == []


def test_training_decodes_every_odd_image_as_evaluation_does(bad_index):
    """One pixel rule: the training sample's pixels (full size, no augmentation) are the evaluation
    rule's (``yolo.imageio.read_image``): transparent pixels blended over gray 114 in both (training
    used to take the colour under the alpha as it was), 16-bit, CMYK, gray and EXIF alike."""
    from yolo.imageio import FILL, read_image

    ds = DetectionDataset(bad_index)
    ids = list(bad_index.ids)
    for name in ("gray", "cmyk", "png16", "rgba", "good_0", "exif_applied", "exif_ignored"):
        i = ids.index(name)
        want = read_image(str(bad_index.paths[i]), None, bool(bad_index.exif[i]))
        np.testing.assert_array_equal(ds[i]["image"], want, err_msg=name)
    rgba = ds[ids.index("rgba")]["image"].astype(int)
    plain = _marked().astype(int)  # stored under alpha 200: blended = (c * 200 + 114 * 55) / 255
    assert np.abs(rgba - (plain * 200 + FILL * 55) / 255).max() <= 1
