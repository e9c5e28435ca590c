"""Detect and GradCAM as a new user met them (issue 21 items 15 and 19): a burst of slider steps
always shows the picture and the table of the slider's current value; the threshold controls
start, read and act alike on both pages; counts are pluralised; the Detect table is full width."""

from __future__ import annotations

import base64
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("streamlit")
from test_dashboard import (assert_clean, demo_root, fresh, index_cache, metric, open_page,  # noqa: F401
                            texts, tiny_runs, voc)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
from wording import count  # noqa: E402

from yolo.config import VOC_CLASSES  # noqa: E402
from yolo.thresholds import OperatingPoints, thresholds_path, write_thresholds  # noqa: E402


def decoded_picture(at) -> np.ndarray:
    """The first st.image of the page, decoded: it must be an inline JPEG (a data URL)."""
    url = at.image[0].value[0]
    assert url.startswith("data:image/jpeg;base64,"), url[:40]
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.ndim == 3
    return picture


def captions(at) -> list[str]:
    return texts(at, "caption")


# ---------------------------------------------------------------------------- item 15
def test_a_burst_of_slider_steps_always_shows_the_current_value_s_picture_and_table(voc):
    at = open_page("Detect")
    assert len(at._fragment_storage._fragments) >= 1  # the controls and what they change: a fragment
    size = None
    previous = None
    for conf in np.round(np.linspace(0.02, 0.16, 15), 2):  # 15 quick steps, upwards
        at.slider(key="det_conf").set_value(float(conf)).run()
        assert_clean(at)
        picture = decoded_picture(at)  # inline: nothing for the browser to fetch later, never a broken icon
        size = size or picture.shape
        assert picture.shape == size
        table = at.dataframe[0].value
        assert len(table) == int(metric(at, "Detections"))
        assert (table["score"] > conf - 5e-4).all()  # scores shown rounded to 3 decimals
        rows = set(map(tuple, table[["class", "x1", "y1", "x2", "y2"]].to_numpy().tolist()))
        if previous is not None:
            assert rows <= previous, "a higher threshold keeps a subset: this table is of this value"
        previous = rows
    assert len(previous) < 300


# ---------------------------------------------------------------------------- item 19
def test_an_untrained_model_starts_both_pages_at_the_same_low_threshold(fresh):
    detect = open_page("Detect")
    gradcam = open_page("GradCAM")
    assert detect.slider(key="det_conf").value == gradcam.slider(key="gc_conf").value == 0.02
    for at in (detect, gradcam):
        assert any("starts at 0.02: an untrained model's scores are tiny" in c for c in captions(at))


@pytest.fixture
def saved_point(voc, tmp_path, monkeypatch) -> Path:
    """The tiny checkpoint with an operating point saved beside it (as the Evaluate page does)."""
    logs = tmp_path / "logs"
    shutil.copytree(voc, logs)
    checkpoint = logs / "tiny" / "version_0" / "checkpoints" / "best-epoch=000.ckpt"
    thresholds = [0.05 + 0.005 * i for i in range(len(VOC_CLASSES))]
    write_thresholds(OperatingPoints(list(VOC_CLASSES), thresholds, 0.07), thresholds_path(checkpoint))
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    return checkpoint


@pytest.mark.parametrize("page, prefix", [("Detect", "det"), ("GradCAM", "gc")])
def test_a_saved_operating_point_is_one_toggle_away_on_both_pages_and_the_slider_says_so(saved_point, page, prefix):
    at = open_page(page)
    toggle = at.toggle(key=f"{prefix}_per_class")  # the toggle the caption promises exists on this page
    assert toggle.value
    assert at.slider(key=f"{prefix}_conf").disabled, "while per-class thresholds rule, the slider does nothing"
    assert any("Each class at its own saved threshold" in c for c in captions(at))
    assert not any("one toggle away" in c for c in captions(at))
    toggle.set_value(False).run()
    assert_clean(at)
    slider = at.slider(key=f"{prefix}_conf")
    assert not slider.disabled and slider.value == 0.07  # the saved single threshold
    assert any("per-class thresholds are one toggle away" in c for c in captions(at))


def test_a_disabled_slider_is_not_what_detect_uses(saved_point):
    at = open_page("Detect")
    at.toggle(key="det_per_class").set_value(False).run()
    at.slider(key="det_conf").set_value(0.9).run()
    at_slider = int(metric(at, "Detections"))
    at.toggle(key="det_per_class").set_value(True).run()  # the slider keeps 0.9, disabled
    assert at.slider(key="det_conf").value == 0.9 and at.slider(key="det_conf").disabled
    assert int(metric(at, "Detections")) > at_slider, "the per-class thresholds (0.05 to 0.145) are used"


def test_counts_are_pluralised():
    assert [count(n, "box") for n in (0, 1, 2)] == ["0 boxes", "1 box", "2 boxes"]
    assert count(1, "object") == "1 object" and count(3, "false detection") == "3 false detections"
    assert count(1, "class") == "1 class" and count(2, "class") == "2 classes"


def test_the_detect_table_is_as_wide_as_the_page(voc):
    at = open_page("Detect")
    assert len(at.dataframe) == 1
    for column in at.columns:
        assert not len(column.dataframe), "the table is not squeezed into a side column"
    assert "score" in at.dataframe[0].value.columns
