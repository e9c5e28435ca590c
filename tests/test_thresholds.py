"""The operating-points file (``yolo.thresholds``): one format, one home beside the checkpoint,
read by ``Detector.from_checkpoint`` with no argument; bad files give the defaults and a message."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from yolo.detect import Detector
from yolo.model import YOLOv3
from yolo.thresholds import (
    OperatingPoints, ThresholdsWarning, load_thresholds, read_thresholds, thresholds_for, thresholds_path,
    write_thresholds,
)
from yolo.weights import save_weights

NAMES = ["a", "b", "c"]


def points(values=(0.2, 0.6, 0.9), global_threshold: float = 0.4) -> OperatingPoints:
    return OperatingPoints(list(NAMES), list(values), global_threshold, "max F1", 0.45, {"a": 0.5}, {"split": "val"})


def test_the_home_is_beside_the_checkpoint_under_the_dashboards_name(tmp_path):
    assert thresholds_path(tmp_path / "run" / "best-epoch=003.ckpt") == tmp_path / "run" / "best-epoch=003.thresholds.json"
    assert thresholds_path("yolov3.weights") == Path("yolov3.thresholds.json")


def test_round_trip_and_the_file_as_written(tmp_path):
    path = write_thresholds(points(), tmp_path / "deep" / "best.thresholds.json")
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and raw["thresholds"] == {"a": 0.2, "b": 0.6, "c": 0.9}
    assert "class_thresholds" not in raw and raw["global_threshold"] == 0.4 and raw["meta"] == {"split": "val"}
    found = read_thresholds(path, NAMES)
    assert found.message is None and found.path == path and found.points == points()
    # a model whose classes are in another order gets each class's own threshold
    assert read_thresholds(path, ["c", "a"]).points.class_thresholds == [0.9, 0.2]
    assert [p.name for p in path.parent.iterdir()] == ["best.thresholds.json"], "no temporary file left"


def test_no_file_means_the_defaults_without_a_message(tmp_path):
    found = thresholds_for(tmp_path / "best.ckpt", NAMES)
    assert found.points is None and found.message is None and found.path is None


@pytest.mark.parametrize("text, says", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "is not an operating-points file"),
    (json.dumps({"version": 2, "thresholds": {}}), "is not an operating-points file"),
    (json.dumps({"version": 1, "thresholds": [0.5, 0.5, 0.5]}), "must map class names to numbers"),
    (json.dumps({"version": 1, "thresholds": {"a": 0.5, "b": 0.5}}), "no threshold for c"),
    (json.dumps({"version": 1, "thresholds": {"a": "high", "b": 0.5, "c": 0.5}}), "must be a number"),
    (json.dumps({"version": 1, "thresholds": {"a": None, "b": 0.5, "c": 0.5}}), "must be a number"),
    (json.dumps({"version": 1, "thresholds": {"a": 0.5, "b": 0.5, "c": 0.5}, "f1": 3}), "malformed operating points"),
    (json.dumps({"version": 1, "thresholds": {"a": 0.5, "b": 0.5, "c": 0.5}, "global_threshold": 2.0}), "must lie in [0, 1]"),
    (json.dumps({"version": 1, "thresholds": {"a": -0.1, "b": 0.5, "c": 0.5}}), "must lie in [0, 1]"),
])
def test_a_bad_file_gives_the_defaults_and_one_line_naming_it(tmp_path, text, says):
    path = tmp_path / "best.thresholds.json"
    path.write_text(text)
    found = read_thresholds(path, NAMES)
    assert found.points is None and found.path == path
    assert says in found.message and str(path) in found.message and "\n" not in found.message
    with pytest.raises(ValueError, match="best.thresholds.json"):  # a file named explicitly: an error
        load_thresholds(path, NAMES)


def small_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_weights(YOLOv3(3, 0.125).eval(), tmp_path / "best.ckpt", NAMES)


def test_the_detector_starts_from_the_file_beside_its_checkpoint(tmp_path):
    ckpt = small_checkpoint(tmp_path)
    plain = Detector.from_checkpoint(ckpt, image_size=64)
    assert plain.class_conf is None and plain.thresholds_file is None
    write_thresholds(points(), thresholds_path(ckpt))
    found = Detector.from_checkpoint(ckpt, image_size=64)
    assert found.class_conf == (0.2, 0.6, 0.9) and found.thresholds_file == str(thresholds_path(ckpt))
    # an explicit file wins; False ignores the file beside the checkpoint
    other = write_thresholds(points((0.1, 0.1, 0.1)), tmp_path / "elsewhere.json")
    assert Detector.from_checkpoint(ckpt, image_size=64, operating_points=other).class_conf == (0.1, 0.1, 0.1)
    assert Detector.from_checkpoint(ckpt, image_size=64, operating_points=False).class_conf is None
    # select() with no threshold uses them: the same as passing them by hand
    image = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    got, by_hand = found.predict(image).select(), plain.predict(image).select(conf=[0.2, 0.6, 0.9])
    assert torch.equal(got.boxes, by_hand.boxes) and torch.equal(got.labels, by_hand.labels)


def test_a_bad_file_warns_and_the_detector_runs_at_its_defaults(tmp_path):
    ckpt = small_checkpoint(tmp_path)
    thresholds_path(ckpt).write_text(json.dumps({"version": 1, "thresholds": {"a": 0.5}}))
    with pytest.warns(ThresholdsWarning, match="no threshold for b"):
        detector = Detector.from_checkpoint(ckpt, image_size=64)
    assert detector.class_conf is None and detector.thresholds_file is None
    assert len(detector.warnings) == 1 and "using the default thresholds" in detector.warnings[0]
    with pytest.warns(ThresholdsWarning, match="no threshold for b"):  # the same file named explicitly
        named = Detector.from_checkpoint(ckpt, image_size=64, operating_points=thresholds_path(ckpt))
    assert named.class_conf is None
    with pytest.warns(ThresholdsWarning, match="no operating-points file at"):  # a named file that is not there
        Detector.from_checkpoint(ckpt, image_size=64, operating_points=tmp_path / "missing.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Detector.from_checkpoint(ckpt, image_size=64, operating_points=False)  # not even looked at
