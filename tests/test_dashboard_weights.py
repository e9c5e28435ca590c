"""The dashboard opens a Darknet .weights file and a course checkpoint (picker and path field), and
the Detect page draws their detections."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from test_course import CourseYOLOv3  # noqa: E402  (the course's module list, written plainly)
from yolo.model import YOLOv3  # noqa: E402
from yolo.weights.darknet import write_weights  # noqa: E402

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
ENV = ("YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT", "YOLO_CACHE_DIR")


def calibrated(model: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm statistics measured on noise, so a random model's scores spread over classes."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        model.train()(torch.rand(4, 3, 256, 256))
    return model.eval()


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> Path:
    """A runs folder holding yolov3-voc.weights (Darknet, width 0.25) and checkpoint.pth.tar (the
    course's layout and save, channels / 4)."""
    logs = tmp_path_factory.mktemp("logs")
    write_weights(calibrated(YOLOv3(20, 0.25)), logs / "yolov3-voc.weights")
    course = calibrated(CourseYOLOv3(num_classes=20))
    optimizer = torch.optim.Adam(course.parameters())
    torch.save({"state_dict": course.state_dict(), "optimizer": optimizer.state_dict()},
               logs / "checkpoint.pth.tar")
    return logs


@pytest.fixture
def env(monkeypatch, voc_mini, weight_files, tmp_path_factory):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DATA", str(voc_mini))
    monkeypatch.setenv("YOLO_LOGS", str(weight_files))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    return monkeypatch


def detect_page() -> AppTest:
    at = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=1800).run()
    at.switch_page("views/detect.py").run()
    return at


def assert_draws_detections(at: AppTest, name: str) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    at.slider(key="det_conf").set_value(0.01).run()
    assert not at.exception
    detections = next(m.value for m in at.metric if m.label == "Detections")
    assert int(detections) > 0
    assert at.image and name in at.image[0].captions[0]


def test_picker_lists_and_opens_a_darknet_file(env):
    at = detect_page()
    options = at.selectbox(key="checkpoint_choice").options
    assert "yolov3-voc.weights" in options and "checkpoint.pth.tar" in options
    at.selectbox(key="checkpoint_choice").set_value("yolov3-voc.weights").run()
    assert_draws_detections(at, "yolov3-voc.weights")


def test_path_field_opens_a_course_checkpoint(env, weight_files, tmp_path):
    elsewhere = tmp_path / "course" / "checkpoint.pth.tar"  # not in the runs folder: typed as a path
    elsewhere.parent.mkdir()
    elsewhere.write_bytes((weight_files / "checkpoint.pth.tar").read_bytes())
    env.setenv("YOLO_CHECKPOINT", str(elsewhere))
    at = detect_page()
    assert at.selectbox(key="checkpoint_choice").value == "Another file…"
    assert at.text_input(key="checkpoint_path").value == str(elsewhere)
    assert_draws_detections(at, "checkpoint.pth.tar")
