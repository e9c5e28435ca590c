"""Issue 21 items 4 and 5: every CLI checks its numbers where they are parsed (``yolo.argtypes``),
finds an unwritable output before the model runs, never replaces a user's file without ``--force``,
and turns a folder or a full disk at the output into one line."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest
import torch

from yolo.argtypes import OutputError, image_size, integer, names_file, output_file, output_folder, real
from yolo.config import VOC_CLASSES
from yolo.model import YOLOv3
from yolo.weights import save_weights

FULL = Path("/dev/full")  # every write fails with ENOSPC, as on a full disk
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")
UNWRITABLE = Path("/sys/yolo-out")  # sysfs: no new file, even for root


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1, err
    return err[-1]


def parse_fails(main, argv, capsys) -> str:
    """``main(argv)`` stops with argparse's status 2 and an ``error:`` line; returns the line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = error_line(capsys)
    assert "error:" in line, line
    return line


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_weights(YOLOv3(20, 0.125).eval(), tmp_path_factory.mktemp("w") / "w.pt", list(VOC_CLASSES))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ the shared type functions
@pytest.mark.parametrize("text", ["0", "-1", "1.5", "nan", "", "1e3"])
def test_integer_refuses_what_is_not_an_integer_in_range(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be an integer in \[1, 100\]"):
        integer(1, 100)(text)
    assert integer(1, 100)("7") == 7 and integer(0)("123456789") == 123456789


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "2", "-0.1", "1e400", "x", "1.0000001"])
def test_real_refuses_non_finite_and_out_of_range(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a number in \[0, 1\]"):
        real(0, 1)(text)
    assert real(0, 1)("0") == 0.0 and real(0, 1)("1") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"\(0, 1\]"):
        real(0, 1, low_open=True)("0")


@pytest.mark.parametrize("text", ["0", "-32", "100", "4096", "8192", "65536", "nan", "416.0"])
def test_image_size_is_a_multiple_of_32_up_to_2048(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"multiple of 32 in \[32, 2048\]"):
        image_size(text)
    assert image_size("2048") == 2048 and image_size("32") == 32


def test_names_file_refuses_empty_blank_huge_repeated_and_special_files(tmp_path):
    for text, message in (("", "no class names"), ("\n  \n\t\n", "no class names"),
                          ("a\nb\na\n", "repeated: a"), ("x" * (1 << 20) + "y", "too large")):
        (tmp_path / "c.txt").write_text(text)
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            names_file(str(tmp_path / "c.txt"))
    with pytest.raises(argparse.ArgumentTypeError, match="not a file"):
        names_file("/dev/zero")
    (tmp_path / "c.txt").write_text("cat\n\ndog\n")
    assert names_file(str(tmp_path / "c.txt")) == ["cat", "dog"]


def test_output_checks(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(OutputError, match="exists; pass --force"):
        output_file(tmp_path / "f", False, "--out")
    assert output_file(tmp_path / "f", True, "--out") == tmp_path / "f"
    with pytest.raises(OutputError, match="is a folder"):
        output_file(tmp_path, True, "--out")
    with pytest.raises(OutputError, match="is not a folder"):
        output_file(tmp_path / "f" / "x.onnx", False, "--out")
    with pytest.raises(OutputError, match="cannot write in /sys"):
        output_file(UNWRITABLE / "x.onnx", False, "--out")
    assert output_file(tmp_path / "new" / "deeper" / "x.pt", False, "--out").name == "x.pt"
    assert not (tmp_path / "new").exists()  # the check creates nothing
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "summary.json").write_text("{}")
    with pytest.raises(OutputError, match="earlier results"):
        output_folder(tmp_path / "d", False, "--out", "summary.json")
    with pytest.raises(OutputError, match="is a file"):
        output_folder(tmp_path / "f", True, "--out", "summary.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # no probe file left behind


# ------------------------------------------------------------------ python -m yolo.evaluate
EVALUATE_BAD = [
    (["--batch-size", "0"], "--batch-size"), (["--batch-size", "-4"], "--batch-size"),
    (["--batch-size", "100000"], "--batch-size"), (["--limit", "0"], "--limit"), (["--limit", "-1"], "--limit"),
    (["--iou", "nan"], "--iou"), (["--iou", "1.5"], "--iou"), (["--conf-floor", "2"], "--conf-floor"),
    (["--conf-floor", "-inf"], "--conf-floor"), (["--conf", "nan"], "--conf"),
    (["--target-precision", "0"], "--target-precision"), (["--image-size", "8192"], "--image-size"),
    (["--image-size", "65536"], "--image-size"), (["--image-size", "100"], "--image-size"),
]


@pytest.mark.parametrize("flags,name", EVALUATE_BAD, ids=[" ".join(f) for f, _ in EVALUATE_BAD])
def test_evaluate_numbers_are_checked_where_parsed(flags, name, weights, voc_mini, tmp_path, capsys, monkeypatch):
    from yolo.detect import Detector
    from yolo.evaluate.__main__ import main

    monkeypatch.setattr(Detector, "from_checkpoint", lambda *a, **k: pytest.fail("the model was loaded"))
    line = parse_fails(main, [str(weights), "--data", str(voc_mini), "--split", "val", "--out",
                              str(tmp_path / "out"), *flags], capsys)
    assert f"argument {name}" in line, line
    assert not (tmp_path / "out").exists()


def test_evaluate_output_is_checked_before_the_model_runs_and_not_replaced(weights, voc_mini, tmp_path, capsys,
                                                                            monkeypatch):
    from yolo.detect import Detector
    from yolo.evaluate.__main__ import main

    args = [str(weights), "--data", str(voc_mini), "--split", "val", "--limit", "2", "--image-size", "64"]
    loads = []
    real_load = Detector.from_checkpoint.__func__
    monkeypatch.setattr(Detector, "from_checkpoint",
                        classmethod(lambda cls, *a, **k: (loads.append(a), real_load(cls, *a, **k))[1]))
    (tmp_path / "a-file").write_text("x")
    for out, message in ((UNWRITABLE, "cannot write in /sys"), (tmp_path / "a-file", "is a file"),
                         (tmp_path / "a-file" / "sub", "is not a folder")):
        assert message in parse_fails(main, args + ["--out", str(out)], capsys)
    assert loads == []  # refused before any model was read
    out = tmp_path / "out"
    assert main(args + ["--out", str(out)]) == 0
    summary = sha(out / "summary.json")
    capsys.readouterr()
    line = parse_fails(main, args + ["--out", str(out)], capsys)
    assert "earlier results (summary.json); pass --force" in line
    assert sha(out / "summary.json") == summary and len(loads) == 1
    # a full disk while the results are written: one line, status 2
    if FULL.exists():
        (out / "summary.json").unlink()
        (out / "summary.json").symlink_to(FULL)
        assert main(args + ["--out", str(out), "--force"]) == 2
        line = error_line(capsys)
        assert line.startswith("error: cannot write") and "No space left on device" in line, line


# ------------------------------------------------------------------ python -m yolo.export
EXPORT_BAD = [(["--conf", "2"], "--conf"), (["--conf", "nan"], "--conf"), (["--iou", "-0.5"], "--iou"),
              (["--iou", "inf"], "--iou"), (["--max-det", "0"], "--max-det"), (["--top-k", "-1"], "--top-k"),
              (["--opset", "9"], "--opset"), (["--image-size", "8192"], "--image-size"),
              (["--image-size", "100"], "--image-size")]


@pytest.mark.parametrize("flags,name", EXPORT_BAD, ids=[" ".join(f) for f, _ in EXPORT_BAD])
def test_export_numbers_are_checked_where_parsed(flags, name, weights, tmp_path, capsys):
    from yolo.export import main

    line = parse_fails(main, [str(weights), "--onnx", str(tmp_path / "m.onnx"), "--nms", *flags], capsys)
    assert f"argument {name}" in line and not (tmp_path / "m.onnx").exists()


def test_export_never_replaces_a_file_without_force(weights, tmp_path, capsys):
    from yolo.export import main

    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"a user's file")
    assert "exists; pass --force" in parse_fails(main, [str(weights), "--onnx", str(mine)], capsys)
    assert mine.read_bytes() == b"a user's file"
    assert "is a folder" in parse_fails(main, [str(weights), "--onnx", str(tmp_path)], capsys)
    assert "cannot write in /sys" in parse_fails(main, [str(weights), "--onnx", str(UNWRITABLE / "m.onnx")], capsys)
    assert main([str(weights), "--onnx", str(mine), "--force", "--image-size", "64"]) == 0
    assert mine.read_bytes()[:2] != b"a " and mine.stat().st_size > 100_000
    assert [p.name for p in tmp_path.iterdir()] == ["mine.onnx"]  # no temporary file left


@needs_full
def test_export_to_a_full_disk_is_one_line(weights, tmp_path):
    from yolo.export import main

    with pytest.raises(SystemExit) as exc:
        main([str(weights), "--onnx", str(FULL), "--force", "--image-size", "64"])
    assert str(exc.value) == f"cannot write {FULL}: No space left on device"


# ------------------------------------------------------------------ python -m yolo.transfer
def test_transfer_refuses_empty_classes_and_existing_outputs(weights, tmp_path, capsys):
    from yolo.transfer import main

    empty = tmp_path / "classes.txt"
    empty.write_text("\n\n")
    line = parse_fails(main, [str(weights), "--classes", str(empty), "--out", str(tmp_path / "o.pt")], capsys)
    assert "argument --classes" in line and "no class names" in line
    assert "argument --width" in parse_fails(main, [str(weights), "--out", str(tmp_path / "o.pt"),
                                                    "--width", "nan"], capsys)
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"precious")
    assert "exists; pass --force" in parse_fails(main, [str(weights), "--out", str(mine)], capsys)
    assert mine.read_bytes() == b"precious"
    assert "is a folder" in parse_fails(main, [str(weights), "--out", str(tmp_path)], capsys)
    empty.write_text("cat\ndog\n")
    assert main([str(weights), "--classes", str(empty), "--out", str(mine), "--force"]) == 0
    from yolo.weights import read_checkpoint

    assert read_checkpoint(mine).class_names == ["cat", "dog"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.txt", "mine.pt"]  # no temporary left
    if FULL.exists():
        with pytest.raises(SystemExit) as exc:
            main([str(weights), "--out", str(FULL), "--force"])
        assert str(exc.value) == f"cannot write {FULL}: No space left on device"


# ------------------------------------------------------------------ python -m yolo.data
def test_data_commands_check_their_numbers_and_outputs(voc_mini, tmp_path, capsys):
    from yolo.data.__main__ import main

    for argv, name in ((["demo", str(tmp_path / "d"), "--n-train", "0"], "--n-train"),
                       (["demo", str(tmp_path / "d"), "--seed", "-1"], "--seed"),
                       (["check", str(voc_mini), "--max-problems", "-1"], "--max-problems"),
                       (["download", str(tmp_path / "v"), "--timeout", "nan"], "--timeout"),
                       (["anchors", str(voc_mini), "--size", "0"], "--size"),
                       (["anchors", str(voc_mini), "--size", "100"], "--size"),
                       (["anchors", str(voc_mini), "--seed", "-1"], "--seed")):
        assert f"argument {name}" in parse_fails(main, argv, capsys)
    empty = tmp_path / "classes.txt"
    empty.write_text("")
    assert main(["check", str(voc_mini), "--classes", str(empty), "--quiet"]) == 2
    assert "no class names" in error_line(capsys)
    report = tmp_path / "report.json"
    report.write_text("mine")
    assert main(["check", str(voc_mini), "--json", str(report), "--quiet"]) == 2
    assert "exists; pass --force" in error_line(capsys) and report.read_text() == "mine"
    assert main(["check", str(voc_mini), "--json", str(report), "--quiet", "--force"]) in (0, 1)
    assert json.loads(report.read_text())["splits"]


@pytest.mark.parametrize("size", [2080, 8192, 65536])
def test_every_library_path_refuses_an_image_size_beyond_2048(size):
    """yolo.config.grid_sizes bounds the size for every path that takes one (issue 21 item 1)."""
    from yolo.config import grid_sizes
    from yolo.detect import Detector
    from yolo.lit import YoloLitModule

    with pytest.raises(ValueError, match=r"multiple of 32 in \[32, 2048\]"):
        grid_sizes(size)
    with pytest.raises(ValueError, match=r"multiple of 32 in \[32, 2048\]"):
        Detector(YOLOv3(2, 0.125), ["a", "b"], image_size=size)
    with pytest.raises(ValueError, match=r"multiple of 32 in \[32, 2048\]"):
        YoloLitModule(None, ["a", "b"], image_size=size, num_classes=2, width=0.125)
    assert grid_sizes(2048) == (64, 128, 256)


def test_the_dashboard_ignores_a_run_config_claiming_an_image_size_of_65536(tmp_path):
    pytest.importorskip("streamlit")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
    from places import run_image_size

    run = tmp_path / "r" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = save_weights(YOLOv3(2, 0.125), run / "checkpoints" / "last.ckpt", ["a", "b"])
    (run / "config.yaml").write_text("val_size: 65536\n")
    assert run_image_size(ckpt) == 416
    (run / "config.yaml").write_text("val_size: 320\n")
    assert run_image_size(ckpt) == 320
