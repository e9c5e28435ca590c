"""The Label review page through AppTest: decisions made in the view are saved beside the dataset,
are still there after a restart (a new AppTest session), the last one can be undone, and
``apply-review`` then writes a copy whose index is the original's plus exactly the accepted
decisions, with the original files unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from test_apply_review import assert_index_is, expected_index, hashes
from test_dashboard import ENV, calibrated_random_model
from yolo.weights import save_weights
from yolo.data.decisions import ReviewLog, review_file_path
from yolo.data.demo import write_demo
from yolo.data.layout import build_index, load_classes
from yolo.thresholds import OperatingPoints, thresholds_path, write_thresholds
from yolo.model import YOLOv3
from yolo.runs import write_config

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"


@pytest.fixture
def review_app(tmp_path, monkeypatch):
    """A 6-image demo val split, a width-0.25 model with random (calibrated) weights for its 5
    classes and operating points of 0.05 beside it (so its weak detections count as confident
    and every kind of suspect shows up)."""
    import torch

    data = write_demo(tmp_path / "demo", n_train=4, n_val=6, n_test=2, seed=5)
    classes = list(load_classes(data))
    run = tmp_path / "logs" / "tiny" / "version_0"
    torch.manual_seed(0)
    model = calibrated_random_model()
    small = YOLOv3(len(classes), 0.25)
    state = {k: v for k, v in model.state_dict().items() if "predict.pred" not in k}
    small.load_state_dict(state, strict=False)
    checkpoint = save_weights(small.eval(), run / "checkpoints" / "best-epoch=000.ckpt", classes)
    write_config(run, {"val_size": 128, "width": 0.25, "preset": None})
    write_thresholds(OperatingPoints(classes, [0.05] * len(classes), 0.05), thresholds_path(checkpoint))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DATA", str(data))
    monkeypatch.setenv("YOLO_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    return data


def open_review() -> AppTest:
    at = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=600).run()
    at.switch_page("views/review.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def click(at: AppTest, prefix: str, nth: int = 0) -> AppTest:
    buttons = [b for b in at.button if b.key and b.key.startswith(prefix)]
    assert len(buttons) > nth, (prefix, [b.key for b in at.button])
    buttons[nth].click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_review_round_trip(review_app, tmp_path):
    data = review_app
    before = hashes(data)
    at = open_review()
    at.button(key="lr_run").click().run()  # the model once over the split (shared with Evaluate)
    assert not at.exception, [e.message for e in at.exception]
    assert any("thresholds.json" in c.value for c in at.caption), "the checkpoint's operating points are used"
    at.slider(key="lr_floor").set_value(0.05).run()
    images = at.selectbox(key="lr_image").options
    assert len(images) >= 2
    click(at, "lr_accept_")  # the worst image's worst box: its suggestion accepted
    click(at, "lr_keep_", 1)
    at.selectbox(key="lr_image").select_index(1).run()
    kinds = [m.value for m in at.markdown if m.value.startswith("**")]
    click(at, "lr_delete_" if any("label " in k for k in kinds) else "lr_accept_")
    missing = [b for b in at.button if b.key and b.key.startswith("lr_accept_") and "Accept: add the box" in b.label]
    if missing:
        missing[0].click().run()
    made = len(ReviewLog.load(review_file_path(data, "val")).current())
    assert made >= 3
    click(at, "lr_keep_")  # one more decision ...
    at.button(key="lr_undo").click().run()  # ... taken back
    log = ReviewLog.load(review_file_path(data, "val"))
    assert len(log.current()) == made
    assert review_file_path(data, "val").parent == data  # beside the (writable) dataset

    again = open_review()  # a restart: a new session reads the file
    assert next(m.value for m in again.metric if m.label == "Decisions") == str(made)
    assert ReviewLog.load(review_file_path(data, "val")).current() == log.current()

    from yolo.data.__main__ import main

    out = tmp_path / "fixed"
    assert main(["apply-review", str(data), str(log.path), str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    assert hashes(data) == before
    original = build_index([data], ["val"], load_classes(data), tmp_path / "c", progress=False)
    copy = build_index([out], ["val"], load_classes(out), tmp_path / "c2", progress=False)
    accepted = [d for d in log.current().values()]
    assert_index_is(copy, expected_index(original, [d for d in accepted if d.action == "accept"]
                                         + [d.__class__(**{**d.__dict__, "action": "accept", "kind": "spurious"})
                                            for d in accepted if d.action == "delete"]))
    assert any(d.action == "accept" for d in accepted)
