"""Issue 21 items 3 and 6: the operating-points file read only when it is a small regular file of
strict JSON, with a message and the default thresholds everywhere otherwise (library, CLI, pages),
read once while unchanged; non-finite weights said by ``yolo.transfer``, ``train.py --init`` and the
Detector; a thresholds file that cannot be written is a clear error."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch

from yolo.filelimits import FileLimitError, read_small_file
from yolo.model import YOLOv3
from yolo.thresholds import ThresholdsWriteError, load_thresholds
from yolo.weights import save_weights


def thresholds_text(**override) -> str:
    return json.dumps({"version": 1, "thresholds": {"a": 0.3, "b": 0.6}, "global_threshold": 0.5, **override})


def hostile_thresholds(tmp_path: Path) -> dict[str, Path]:
    files = {
        "deep": "[" * 10_000 + "]" * 10_000,
        "deep object": '{"a":' * 10_000 + "1" + "}" * 10_000,
        "digits": thresholds_text().replace("0.3", "1" + "0" * 399),
        "huge": thresholds_text(meta={"pad": "x" * (100 << 20)}),
        "nan": thresholds_text().replace("0.3", "NaN"),
        "list": "[1, 2, 3]",
        "strings": thresholds_text().replace("0.3", '"0.3"'),
        "bool": thresholds_text().replace("0.3", "true"),
        "range": thresholds_text().replace("0.3", "1.5"),
        "global": thresholds_text(global_threshold=7),
        "meta": thresholds_text(meta=[1]),
        "empty": "",
    }
    out = {}
    for name, text in files.items():
        out[name] = tmp_path / f"{name.replace(' ', '_')}.json"
        out[name].write_text(text)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00{")
    out["binary"] = tmp_path / "binary.json"
    os.mkfifo(tmp_path / "fifo.json")
    out["fifo"], out["zero"], out["folder"] = tmp_path / "fifo.json", Path("/dev/zero"), tmp_path
    return out


def within(call, seconds: float = 30.0) -> dict:
    """``call()`` in a thread: a FIFO must not block it. {"value": ...} or {"error": ...}."""
    result: dict = {}

    def run():
        try:
            result["value"] = call()
        except BaseException as err:  # noqa: BLE001 (the test looks at it)
            result["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the call blocked"
    return result


def test_hostile_operating_points_are_one_line_value_errors(tmp_path):
    for name, path in hostile_thresholds(tmp_path).items():
        result = within(lambda: load_thresholds(path, ["a", "b"]))
        err = result.get("error")
        assert type(err) is not RecursionError and isinstance(err, ValueError), (name, result)
        assert len(str(err).splitlines()) == 1 and str(path) in str(err), (name, str(err)[:300])
    good = tmp_path / "good.json"
    good.write_text(thresholds_text())
    points = load_thresholds(good, ["a", "b"])
    assert points.class_thresholds == [0.3, 0.6] and points.global_threshold == 0.5


def test_the_detector_and_the_cli_fall_back_to_default_thresholds(tmp_path, voc_mini, capsys):
    from yolo.detect import Detector
    from yolo.thresholds import ThresholdsWarning
    from yolo.evaluate.__main__ import main

    ckpt = save_weights(YOLOv3(2, 0.125), tmp_path / "w.pt", ["a", "b"])
    for name, path in hostile_thresholds(tmp_path).items():
        with pytest.warns(ThresholdsWarning, match="using the default thresholds"):
            result = within(lambda: Detector.from_checkpoint(ckpt, operating_points=path))
        detector = result["value"]
        assert detector.class_conf is None and any("default thresholds" in w for w in detector.warnings), name
    from yolo.config import VOC_CLASSES

    voc = save_weights(YOLOv3(20, 0.125), tmp_path / "voc.pt", list(VOC_CLASSES))
    deep = tmp_path / "deep.json"
    assert main([str(voc), "--data", str(voc_mini), "--split", "val", "--limit", "2", "--image-size", "64",
                 "--out", str(tmp_path / "out"), "--operating-points", str(deep)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "nested too deeply" in err


def test_an_unchanged_thresholds_file_is_read_once(tmp_path, monkeypatch):
    import yolo.filelimits as filelimits

    path = tmp_path / "t.json"
    path.write_text(thresholds_text(meta={"pad": "x" * 200_000}))
    reads = []
    real = filelimits.read_small_file
    monkeypatch.setattr(filelimits, "read_small_file", lambda *a, **k: (reads.append(a[0]), real(*a, **k))[1])
    first = load_thresholds(path, ["a", "b"])
    second = load_thresholds(path, ["a", "b"])
    assert len(reads) == 1 and first.class_thresholds == second.class_thresholds == [0.3, 0.6]
    second.meta["pad"] = "changed by a caller"  # does not reach the cache
    assert load_thresholds(path, ["a", "b"]).meta["pad"] == "x" * 200_000
    path.write_text(thresholds_text().replace("0.3", "0.4"))  # changed (size, mtime): read again
    assert load_thresholds(path, ["a", "b"]).class_thresholds[0] == 0.4 and len(reads) == 2


def test_read_small_file_bounds(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert read_small_file(f, 100) == b"x" * 100
    with pytest.raises(FileLimitError, match="100 bytes, over the file limit of 99 bytes"):
        read_small_file(f, 99)
    with pytest.raises(FileLimitError, match="a device"):
        read_small_file("/dev/zero", 10)
    with pytest.raises(FileLimitError, match="a folder"):
        read_small_file(tmp_path, 10)


# ------------------------------------------------------------------ item 6
def test_saving_thresholds_where_nothing_can_be_written_is_a_clear_error(tmp_path, monkeypatch):
    from yolo.thresholds import OperatingPoints, thresholds_path, write_thresholds

    points = OperatingPoints(["a", "b"], [0.3, 0.6], 0.5)
    with pytest.raises(ThresholdsWriteError, match="cannot save the thresholds to /sys/.*read-only folder"):
        write_thresholds(points, thresholds_path("/sys/yolo/last.ckpt"))
    real = Path.write_text

    def read_only(self, *a, **k):
        if self.parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", read_only)
    with pytest.raises(ThresholdsWriteError, match="Permission denied") as exc:
        write_thresholds(points, tmp_path / "last.thresholds.json")
    assert isinstance(exc.value, OSError) and len(str(exc.value).splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def nan_weights(path: Path, classes: list[str]) -> Path:
    model = YOLOv3(len(classes), 0.125)
    with torch.no_grad():
        model.layers.stem.conv.weight[0, 0, 0, 0] = float("nan")  # spreads to every output
    return save_weights(model, path, classes)


def test_nan_weights_are_said_by_transfer_init_and_the_detector(tmp_path, capsys):
    import warnings

    from yolo.detect import Detector
    from types import SimpleNamespace

    from yolo.config import ANCHORS
    from yolo.trainer import init_weights
    from yolo.transfer import main

    path = nan_weights(tmp_path / "nan.pt", ["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's CheckpointWarning aside: the CLIs say it themselves
        assert main([str(path), "--classes", "voc", "--out", str(tmp_path / "voc.pt")]) == 0
        err = capsys.readouterr().err
        assert "warning:" in err and "hold NaN or Inf" in err and "layers.stem.conv.weight" in err
        hparams = SimpleNamespace(image_size=416, anchors=ANCHORS)  # what init_weights reads of a module
        module = type("M", (), {"model": YOLOv3(2, 0.125), "ema": None, "hparams": hparams})()
        init_weights(module, str(path), ["a", "b"])
        err = capsys.readouterr().err
        assert "warning: --init" in err and "hold NaN or Inf" in err
        detector = Detector.from_checkpoint(path)
    assert detector.warnings and "hold NaN or Inf" in detector.warnings[0]
    assert len(detector.predict(torch.rand(3, 64, 64)).select(conf=0.0).boxes) == 0  # why it is said


@pytest.mark.parametrize("page", ["views/detect.py", "views/gradcam.py"])
def test_pages_say_nan_weights_and_a_broken_thresholds_file(page, tmp_path, voc_mini, monkeypatch):
    """Detect and GradCAM with a NaN checkpoint and a 10,000-deep thresholds file beside it: no
    exception; the library's two lines are shown (0 detections, default thresholds)."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from yolo.config import VOC_CLASSES
    from yolo.thresholds import thresholds_path

    ckpt = nan_weights(tmp_path / "nan.pt", list(VOC_CLASSES))
    thresholds_path(ckpt).write_text("[" * 10_000 + "]" * 10_000)
    for name in ("YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT", "YOLO_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DATA", str(voc_mini))
    monkeypatch.setenv("YOLO_LOGS", str(tmp_path))
    monkeypatch.setenv("YOLO_CHECKPOINT", str(ckpt))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    dashboard = Path(__file__).resolve().parents[1] / "dashboard"
    at = AppTest.from_file(str(dashboard / "Home.py"), default_timeout=1800).run()
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    shown = " ".join(w.value for w in at.warning)
    assert "hold NaN or Inf" in shown and "finds nothing" in shown, shown
    assert "nested too deeply" in shown, shown
