"""Issue 21 items 1 and 8: sizes read from a file are bounded before anything is allocated
(class counts from tensor shapes, zip expansion, Darknet file sizes, image sizes), and a Darknet
file is read only under the one (header, width, classes) layout its size fits, with contents that
make sense. Peak memory of each refused file: ``python -m bench.hostile_files``. The
operating-points file (item 3): tests/test_thresholds_file.py."""

from __future__ import annotations

import struct
import zipfile
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from test_darknet import randomised  # weights spread around 0, variances in [0.5, 1.5]
from yolo.config import MAX_IMAGE_SIZE
from yolo.filelimits import MAX_CLASSES, FileLimitError, check_zip_expansion
from yolo.model import YOLOv3
from yolo.weights import CheckpointError, read_checkpoint, save_weights, saved_image_size
from yolo.weights import darknet
from yolo.weights.darknet import Header, write_weights


def small_state(classes: int = 2, width: float = 0.125) -> dict:
    torch.manual_seed(0)
    return YOLOv3(classes, width).state_dict()


def no_model_built(monkeypatch):
    """Fail the test if a YOLOv3 is built on a real device (what a bound must prevent)."""
    real = YOLOv3.__init__

    def guarded(self, num_classes=20, width=1.0, *a, **k):
        if num_classes > MAX_CLASSES:
            pytest.fail(f"a model with {num_classes} classes was built")
        real(self, num_classes, width, *a, **k)

    monkeypatch.setattr(YOLOv3, "__init__", guarded)


# ------------------------------------------------------------------ item 1: class counts, zips, views
@pytest.mark.parametrize("classes", [10_000_000, MAX_CLASSES + 1])
def test_prediction_layers_claiming_too_many_classes_are_refused(classes, tmp_path, monkeypatch):
    state = small_state()
    for key in [k for k in state if k.endswith(("pred.weight", "pred.bias"))]:
        state[key] = state[key][:1].expand(3 * (5 + classes), *state[key].shape[1:])
    path = tmp_path / "heads.pt"
    torch.save({"model": state}, path)
    assert path.stat().st_size < 5_000_000
    no_model_built(monkeypatch)
    with pytest.raises(CheckpointError, match=f"claim {classes:,} classes; this project reads at most 10,000"):
        read_checkpoint(path)
    from yolo.detect import Detector

    with pytest.raises(CheckpointError, match="at most 10,000"):
        Detector.from_checkpoint(path)


def test_expanded_views_are_refused_even_within_the_class_bound(tmp_path):
    state = small_state(classes=30)
    key = "layers.head32_out.predict.pred.weight"
    state[key] = state[key][:1].clone().expand_as(state[key])  # 3 * 35 rows over one row's storage
    path = tmp_path / "views.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="an expanded view"):
        read_checkpoint(path)


def recompress(src: Path, dst: Path) -> Path:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            b.writestr(info.filename, a.read(info))
    return dst


def test_a_recompressed_zip_is_refused_before_torch_load(tmp_path, monkeypatch):
    state = small_state()
    state["extra"] = torch.zeros(16 << 20)  # 64 MiB of zeros: deflated to ~64 KB
    torch.save({"model": state}, tmp_path / "raw.pt")
    bomb = recompress(tmp_path / "raw.pt", tmp_path / "bomb.pt")
    assert bomb.stat().st_size < 4_000_000
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on a zip bomb"))
    with pytest.raises(FileLimitError, match=r"unpack to [\d,]+ bytes, \d+x the file's"):
        check_zip_expansion(bomb)
    with pytest.raises(CheckpointError, match="a recompressed file is refused"):
        read_checkpoint(bomb)
    monkeypatch.undo()
    # an honest torch.save file (entries stored) passes, and so does the same file recompressed
    # when it is not a bomb (weights do not compress)
    honest = save_weights(YOLOv3(2, 0.125), tmp_path / "honest.pt", ["a", "b"])
    check_zip_expansion(honest)
    assert read_checkpoint(recompress(honest, tmp_path / "small.pt")).num_classes == 2


# ------------------------------------------------------------------ item 1: image sizes
@pytest.mark.parametrize("size", [8192, 65536, MAX_IMAGE_SIZE + 32])
def test_an_image_size_beyond_the_bound_is_refused_everywhere(size, tmp_path):
    from yolo.detect import Detector

    path = tmp_path / "sized.pt"
    torch.save({"model": small_state(), "hyper_parameters": {"image_size": size}}, path)
    with pytest.raises(CheckpointError, match=f"image_size must be a multiple of 32 in \\[32, {MAX_IMAGE_SIZE}\\]"):
        read_checkpoint(path)
    assert saved_image_size(path) is None
    with pytest.raises(ValueError, match="multiple of 32 in"):
        Detector(YOLOv3(2, 0.125), ["a", "b"], image_size=size)


# ------------------------------------------------------------------ item 1: Darknet sizes
def test_a_sparse_6_gib_darknet_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.weights"
    with open(path, "wb") as f:
        f.write(Header(0, 2, 0).to_bytes())
        f.truncate(6 << 30)  # sparse: no disk used
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("the file was read"))
    with pytest.raises(CheckpointError, match="more than the largest YOLOv3 this project reads"):
        read_checkpoint(path)
    from yolo.transfer import read_initial

    with pytest.raises(CheckpointError, match="more than the largest"):
        read_initial(path, 1.0)


# ------------------------------------------------------------------ item 8: Darknet layouts
def pytorch_yolov3_header(seen: int = 0) -> bytes:
    """What PyTorch-YOLOv3 writes: np.array([0, 0, 0, seen, 0], dtype=np.int32), 20 bytes at version
    0.0.0 (Darknet's rule gives 16 for that version)."""
    return np.array([0, 0, 0, seen, 0], dtype=np.int32).tobytes()


def test_a_pytorch_yolov3_file_of_a_fresh_model_loads(tmp_path):
    model = randomised(YOLOv3(3, 0.125))
    ours = write_weights(model, tmp_path / "ours.weights")  # version 0.2: 20-byte header
    theirs = tmp_path / "theirs.weights"
    theirs.write_bytes(pytorch_yolov3_header(seen=7) + ours.read_bytes()[20:])
    state = read_checkpoint(theirs)
    assert state.num_classes == 3 and state.width == 0.125
    assert state.hparams["darknet"]["seen"] == 7 and state.hparams["darknet"]["header_bytes"] == 20
    for key, value in model.state_dict().items():
        assert torch.equal(state.state_dict[key], value), key
    # Darknet's own 0.0.0 file (16-byte header, int32 seen) still loads
    old = tmp_path / "old.weights"
    old.write_bytes(struct.pack("<4i", 0, 0, 0, 5) + ours.read_bytes()[20:])
    assert read_checkpoint(old).hparams["darknet"]["header_bytes"] == 16


def test_a_file_padded_by_one_class_is_not_read_as_one_more_class(tmp_path):
    model = YOLOv3(3, 0.125).eval()  # a fresh model: variances 1, weights around 0
    path = write_weights(model, tmp_path / "three.weights")
    per_class = darknet.expected_floats(4, 0.125) - darknet.expected_floats(3, 0.125)
    padded = tmp_path / "padded.weights"
    for filler in (b"\0", b"\x01"):  # zeros, or bytes that read as tiny positive floats
        padded.write_bytes(path.read_bytes() + filler * (4 * per_class))
        with pytest.raises(CheckpointError, match="BatchNorm variances"):
            read_checkpoint(padded)
    assert read_checkpoint(path).num_classes == 3


def test_a_size_with_two_plausible_readings_is_ambiguous(tmp_path):
    """Width 0.125 with 20 classes and width 0.0625 with 2,148 classes hold the same number of
    floats. A real file of either is told apart by its contents (read the other way, its BatchNorm
    variances are negative); a file whose every float is 1.0 fits both and is refused, unless
    --width says which."""
    from yolo.transfer import read_initial

    floats = darknet.expected_floats(20, 0.125)
    assert floats == darknet.expected_floats(2148, 0.0625)
    real = write_weights(randomised(YOLOv3(20, 0.125)), tmp_path / "real.weights")
    assert read_checkpoint(real).num_classes == 20
    ones = tmp_path / "ones.weights"
    ones.write_bytes(Header(0, 2, 0).to_bytes() + np.ones(floats, "<f4").tobytes())
    with pytest.raises(CheckpointError, match="ambiguous.*width 0.125 with 20 classes.*width 0.0625 with 2148"):
        read_checkpoint(ones)
    assert read_initial(ones, 0.125).num_classes == 20
    assert read_initial(ones, 0.0625).num_classes == 2148


def test_the_detect_page_says_a_refused_file_in_one_message(tmp_path, voc_mini, monkeypatch):
    """A checkpoint claiming 10 million classes, one claiming image_size 65536 and a sparse 6 GiB
    Darknet file: the Detect page shows one error each and no exception."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    heads = tmp_path / "heads.pt"
    state = small_state()
    for key in [k for k in state if k.endswith(("pred.weight", "pred.bias"))]:
        state[key] = state[key][:1].expand(3 * (5 + 10_000_000), *state[key].shape[1:])
    torch.save({"model": state}, heads)
    sized = tmp_path / "sized.pt"
    torch.save({"model": small_state(), "hyper_parameters": {"image_size": 65536}}, sized)
    big = tmp_path / "big.weights"
    with open(big, "wb") as f:
        f.write(Header(0, 2, 0).to_bytes())
        f.truncate(6 << 30)
    dashboard = Path(__file__).resolve().parents[1] / "dashboard"
    for name in ("YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT", "YOLO_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DATA", str(voc_mini))
    monkeypatch.setenv("YOLO_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    for path, words in ((heads, "at most 10,000"), (sized, "in [32, 2048]"), (big, "more than the largest")):
        monkeypatch.setenv("YOLO_CHECKPOINT", str(path))
        at = AppTest.from_file(str(dashboard / "Home.py"), default_timeout=1800).run()
        at.switch_page("views/detect.py").run()
        assert not at.exception, [e.message for e in at.exception]
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and words in errors[0], errors


def test_the_clis_say_a_refused_file_in_one_line(tmp_path, voc_mini, capsys):
    from yolo.evaluate.__main__ import main as evaluate
    from yolo.export import main as export
    from yolo.transfer import main as transfer

    heads = tmp_path / "heads.pt"
    state = small_state()
    for key in [k for k in state if k.endswith(("pred.weight", "pred.bias"))]:
        state[key] = state[key][:1].expand(3 * (5 + 10_000_000), *state[key].shape[1:])
    torch.save({"model": state}, heads)
    for main, argv in ((export, ["--onnx", str(tmp_path / "m.onnx")]), (transfer, ["--out", str(tmp_path / "t.pt")])):
        with pytest.raises(SystemExit) as exc:
            main([str(heads), *argv])
        assert "claim 10,000,000 classes" in str(exc.value) and len(str(exc.value).splitlines()) == 1
    assert evaluate([str(heads), "--data", str(voc_mini), "--split", "val", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "claim 10,000,000 classes" in err[0]


# ------------------------------------------------------------------------------ YAML files
def _laughs(depth: int = 9) -> list[str]:
    """A billion-laughs YAML: nine aliases nine deep, 9^9 strings from about 400 bytes."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghijk"[: depth - 1]:
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    return lines + [f"bomb: *{prev}"]


def _in_child(code: str, timeout: float = 60) -> str:
    """Run ``code`` in a fresh interpreter (a regression would hang or eat memory there, not here)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("where", ["names", "train", "nested"])
def test_a_data_yaml_bomb_is_one_error_not_a_hang(where, tmp_path):
    """data.yaml: a billion laughs as the names or the split entries, or 100,000 nested brackets,
    is one DataLayoutError (before: str() of the expanded names never returned)."""
    root = tmp_path / "ds"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    lines = _laughs()
    if where == "names":
        text = "\n".join(lines[:-1] + ["train: images/train", f"names: *{lines[-1].split('*')[1]}"])
    elif where == "train":
        text = "\n".join(lines[:-1] + [f"train: *{lines[-1].split('*')[1]}", "names: [a]"])
    else:
        text = "train: images/train\nnames: " + "[" * 100_000 + "]" * 100_000
    (root / "data.yaml").write_text(text + "\n")
    out = _in_child(f"from yolo.data.layout import load_classes, available_splits\n"
                    f"from yolo.data.index import DataLayoutError\n"
                    f"try:\n    load_classes({str(root)!r}); available_splits({str(root)!r}); print('read')\n"
                    f"except DataLayoutError as e:\n    print('refused', e)\n")
    assert out.startswith("refused") and "data.yaml" in out, out
    assert ("expands (through YAML aliases) to over 100,000 values" in out or "nested too deeply" in out), out


def test_a_run_config_bomb_is_a_warning_not_a_hang(tmp_path):
    run = tmp_path / "logs" / "r" / "version_0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("\n".join(_laughs()) + "\n")
    out = _in_child(f"from yolo.runs import run_info\ninfo = run_info({str(run)!r})\n"
                    f"print(info.config, info.warnings)\n")
    assert out.startswith("None") and "over 100,000 values" in out, out


def test_names_must_be_plain_and_at_most_the_class_limit(tmp_path):
    from yolo.data.index import DataLayoutError
    from yolo.data.yolo_txt import parse_names
    from yolo.filelimits import MAX_CLASSES, expanded_nodes

    with pytest.raises(DataLayoutError, match="every name must be a plain string"):
        parse_names(["cat", ["dog", "cow"]], tmp_path / "data.yaml")
    with pytest.raises(DataLayoutError, match="over the 10,000 classes"):
        parse_names([f"c{k}" for k in range(MAX_CLASSES + 1)], tmp_path / "data.yaml")
    assert parse_names({0: "cat", 1: 7}, tmp_path / "data.yaml") == ("cat", "7")
    shared = [1, 2, 3]
    # by hand: the mapping, its 2 keys, 'a' (a list of 3), 'b' (a list holding that list twice)
    assert expanded_nodes({"a": shared, "b": [shared, shared]}, 100) == 1 + 2 + (1 + 3) + (1 + 2 * (1 + 3))
    assert expanded_nodes([[0] * 50] * 50, 100) == 101  # stops one past the limit


@pytest.mark.parametrize("kind", ["fifo", "nested", "zero", "huge_int"])
def test_json_files_read_back_are_bounded(kind, tmp_path):
    """The JSON files the project reads back from folders others may share (a run's progress.json,
    a label-review file, the dashboard's job state): a FIFO, 100,000 nested brackets, a link to
    /dev/zero or a 400-digit integer is "unreadable" (None or one ValueError), never a hang, a
    RecursionError or an endless read. Run in a child so a regression cannot hang the suite."""
    path = tmp_path / "file.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "nested":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "zero":
        os.symlink("/dev/zero", path)
    else:
        path.write_text('{"version": 1' + "0" * 400 + "}")
    jobs = Path(__file__).resolve().parents[1] / "dashboard"
    out = _in_child(
        f"import sys; sys.path.insert(0, {str(jobs)!r})\n"
        f"from pathlib import Path\n"
        f"from yolo.progress import read_progress\n"
        f"from yolo.data.decisions import ReviewLog\n"
        f"import jobs\n"
        f"print('progress', read_progress({str(path)!r}))\n"
        f"try:\n    ReviewLog.load({str(path)!r}); print('review read')\n"
        f"except ValueError as e:\n    print('review refused')\n"
        f"jobs.job_dir = lambda root: Path({str(tmp_path)!r}); jobs.STATE_FILE = 'file.json'\n"
        f"print('state', jobs._read_state('x'))\n", timeout=120)
    assert out.split("\n")[:3] == ["progress None", "review refused", "state None"], out


def test_yaml_values_the_constructors_refuse_are_one_line(tmp_path):
    """Values PyYAML's constructors raise plain errors on (an impossible date, 5,000 digits, a bad
    explicit tag) make a run's config.yaml unreadable, listed with a warning; run_info never raises."""
    from yolo.filelimits import FileLimitError, parse_yaml
    from yolo.runs import run_info

    for text in ("a: 2001-13-01", "a: " + "9" * 5000, "a: !!timestamp x"):
        with pytest.raises(FileLimitError, match="not readable YAML"):
            parse_yaml(text, "x.yaml")
        run = tmp_path / f"r{len(text)}" / "version_0"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(text + "\n")
        info = run_info(run)
        assert info.config is None and "not readable YAML" in " ".join(info.warnings)


def test_the_json_cache_keeps_one_version_per_file_and_no_large_file(tmp_path):
    import yolo.filelimits as fl

    path = tmp_path / "a.json"
    for k in range(5):
        path.write_text(json.dumps({"k": k, "pad": "x" * k}))
        assert fl.read_json_file(path, 1 << 20) == {"k": k, "pad": "x" * k}
    assert [key for key in fl._JSON_CACHE if key[0] == str(path.resolve())] != []
    assert len([key for key in fl._JSON_CACHE if key[0] == str(path.resolve())]) == 1
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"pad": "x" * (fl.JSON_CACHE_MAX_BYTES + 1)}))
    assert len(fl.read_json_file(big, 64 << 20)["pad"]) == fl.JSON_CACHE_MAX_BYTES + 1
    assert not [key for key in fl._JSON_CACHE if key[0] == str(big.resolve())]
