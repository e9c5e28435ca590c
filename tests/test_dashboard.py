"""The Streamlit dashboard through ``streamlit.testing.v1.AppTest``: every page on a fresh clone (the
demo dataset, no checkpoint) and on voc-mini with a tiny checkpoint, and the widgets that must act.

Every test points the app at temporary folders through environment variables (YOLO_DATA,
YOLO_DEMO, YOLO_LOGS, YOLO_CHECKPOINT, YOLO_CACHE_DIR), so nothing is written into the repository.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from yolo.model import YOLOv3
from yolo.runs import write_config
from yolo.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 1800  # AppTest and child waits give up on a hang only; no test here asserts speed
DASHBOARD = REPO / "dashboard"
PAGES = {
    "Dataset": "views/dataset.py",
    "Augmentations": "views/augmentations.py",
    "Training": "views/training.py",
    "Detect": "views/detect.py",
    "GradCAM": "views/gradcam.py",
    "Evaluate": "views/evaluate.py",
}
ENV = ("YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT", "YOLO_CACHE_DIR")


# ------------------------------------------------------------------------------------ helpers
def open_page(page: str = "Home", timeout: float = HANG_GUARD_S) -> AppTest:
    """Run Home, then switch to ``page`` (the way a user gets there)."""
    at = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=timeout).run()
    assert_clean(at)
    if page != "Home":
        at.switch_page(PAGES[page]).run()
        assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, "\n".join(e.message + "\n" + "\n".join(e.stack_trace) for e in at.exception)


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def charts(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as dicts."""
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def plotly_array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly 6's typed array {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return flat.reshape([int(v) for v in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def image_urls(at: AppTest) -> list[str]:
    """Media URLs of every st.image; they are content hashes, so a changed picture changes them."""
    return [url for element in at.image for url in element.value]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Where the app writes the demo dataset (not written yet: the first page does it)."""
    return tmp_path_factory.mktemp("demo") / "demo"


@pytest.fixture(scope="session")
def index_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("index-cache")


@pytest.fixture
def fresh(monkeypatch, tmp_path, demo_root, index_cache) -> Path:
    """A fresh clone: no dataset (the demo default), no runs, no checkpoint. Returns the logs dir."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DEMO", str(demo_root))
    monkeypatch.setenv("YOLO_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(index_cache))
    return tmp_path / "logs"


def _metrics_csv(path: Path, epochs: int, offset: float, torn: bool = False) -> None:
    rows = []
    for e in range(epochs):
        for s in range(4):
            rows.append({"epoch": e, "step": e * 4 + s, "train/loss_step": 30 - e - s * 0.1 + offset})
        rows.append({"epoch": e, "step": e * 4 + 3, "train/loss_epoch": 29 - e + offset,
                     "val/loss": 31 - e + offset, "val/class_acc": 40 + 5 * e, "val/obj_acc": 50 + 4 * e,
                     "val/noobj_acc": 90 + e, "val/map50": 0.1 * e + offset / 100})
    text = pd.DataFrame(rows).to_csv(index=False)
    if torn:  # a run still writing: a malformed row, then a last line without its newline
        text += "1,2\n" + "5,21,28.5"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def calibrated_random_model(width: float = 0.25) -> YOLOv3:
    """Random weights whose BatchNorm statistics are measured on noise (two train-mode passes):
    unlike a fresh model, whose features fade through 75 layers into constant outputs, its scores
    spread (about 0.04 to 0.12) over many classes and places, so thresholds visibly act."""
    torch.manual_seed(0)
    model = YOLOv3(20, width)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = the plain average over the passes
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, 256, 256))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> Path:
    """A logs folder: run tiny/version_0 with a random width-0.25 VOC checkpoint (input 256) and
    metrics, tiny/version_1 with metrics only, and broken/version_0 with a half-written CSV."""
    logs = tmp_path_factory.mktemp("logs")
    run = logs / "tiny" / "version_0"
    save_weights(calibrated_random_model(), run / "checkpoints" / "best-epoch=000.ckpt")
    write_config(run, {"val_size": 256, "width": 0.25, "preset": None})
    _metrics_csv(run / "metrics.csv", 3, 0.0)
    _metrics_csv(logs / "tiny" / "version_1" / "metrics.csv", 2, 2.0)
    _metrics_csv(logs / "broken" / "version_0" / "metrics.csv", 2, 1.0, torn=True)
    return logs


@pytest.fixture
def voc(monkeypatch, voc_mini, tiny_runs, index_cache) -> Path:
    """voc-mini as the dataset, the tiny checkpoint found under the logs folder."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DATA", str(voc_mini))
    monkeypatch.setenv("YOLO_LOGS", str(tiny_runs))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(index_cache))
    return tiny_runs


# ------------------------------------------------------------------------------------ fresh clone
def test_home_on_a_fresh_clone_writes_the_demo_and_offers_training(fresh, demo_root):
    at = open_page("Home")
    assert (demo_root / "classes.txt").is_file(), "the demo dataset is written on first use"
    assert any("built-in demo dataset" in t for t in texts(at, "success"))
    assert any("No runs yet" in t for t in texts(at, "info"))
    assert any("No checkpoint yet" in t for t in texts(at, "warning"))
    assert at.button(key="train_demo").label == "Train the demo model"
    assert at.selectbox[0].label == "Checkpoint" and at.selectbox[0].value == "(none)"
    assert not (fresh / "demo").exists(), "nothing is trained until the button is pressed"


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_does_something_on_a_fresh_clone(fresh, page):
    at = open_page(page)
    if page in ("Detect", "GradCAM", "Evaluate"):
        assert any("No trained checkpoint yet" in t for t in texts(at, "info")), "says how to get a model"
        assert at.toggle(key="untrained").value, "an untrained model shows the mechanics meanwhile"
    if page == "Dataset":
        assert image_urls(at) and len(charts(at)) >= 4
        assert any("No problems" in t for t in texts(at, "success"))
    elif page == "Augmentations":
        assert len(image_urls(at)) == 5  # sources, letterbox, mosaic, mosaic + transforms, grid
        cells = at.dataframe[0].value
        assert (cells["state"] == "assigned").any() and set(cells["stride"]) <= {8, 16, 32}
    elif page == "Training":
        assert any("No run with logs" in t for t in texts(at, "info"))
        assert at.button(key="train_demo")
    elif page == "Detect":
        assert image_urls(at) and metric(at, "Model forward").endswith("ms")
    elif page == "GradCAM":
        assert len(image_urls(at)) == 1 and "GradCAM at" in at.image[0].captions[0]
    elif page == "Evaluate":
        at.number_input(key="ev_limit").set_value(8).run()
        at.button(key="ev_run").click().run()
        assert_clean(at)
        assert metric(at, "mAP@0.5") not in ("",) and len(charts(at)) >= 4
        assert list((fresh / ".dashboard" / "predictions").glob("*.pt")), "predictions saved once"


# ------------------------------------------------------------------------------------ voc-mini
@pytest.mark.parametrize("page", ["Home", *PAGES])
def test_every_page_renders_on_voc_mini_with_a_tiny_checkpoint(voc, page):
    at = open_page(page)
    assert at.selectbox(key="checkpoint_choice").value == "tiny/version_0 · best-epoch=000.ckpt"
    if page == "Home":
        assert any("voc" in t and "20 classes" in t for t in texts(at, "success"))
        assert at.dataframe[0].value["run"].tolist() == ["broken/version_0", "tiny/version_0", "tiny/version_1"]
    elif page == "Dataset":
        assert metric(at, "Images") == "960"  # train split of voc-mini
    elif page == "Detect":
        assert image_urls(at) and "best-epoch=000.ckpt" in at.image[0].captions[0]
    elif page == "GradCAM":
        assert "GradCAM at head" in at.image[0].captions[0], "the default layer is a head's last 3x3 conv"
    elif page == "Evaluate":
        assert at.button(key="ev_run")


def test_sidebar_and_picked_image_hold_across_page_switches(voc):
    """The sidebar is drawn by Home.py on every page, so its choices hold without copies; the image
    picked on Detect is the one GradCAM opens on."""
    at = open_page("Detect")
    at.selectbox(key="checkpoint_choice").set_value("Another file…").run()
    at.text_input(key="checkpoint_path").input("/nowhere/model.ckpt").run()
    at.number_input(key="_w_image_number").set_value(5).run()
    for page in ("Dataset", "GradCAM"):
        at.switch_page(PAGES[page]).run()
        assert_clean(at)
        assert at.selectbox(key="checkpoint_choice").value == "Another file…"
        assert at.text_input(key="checkpoint_path").value == "/nowhere/model.ckpt"
    at.selectbox(key="checkpoint_choice").set_value("tiny/version_0 · best-epoch=000.ckpt").run()
    assert at.number_input(key="_w_image_number").value == 5
    at.switch_page(PAGES["Detect"]).run()
    assert at.number_input(key="_w_image_number").value == 5
    at.selectbox(key="checkpoint_choice").set_value("Another file…").run()
    assert at.text_input(key="checkpoint_path").value == "/nowhere/model.ckpt", "kept while hidden"


def test_detect_sliders_and_class_filter_change_the_drawn_detections(voc):
    at = open_page("Detect")
    at.slider(key="det_conf").set_value(0.01).run()
    low, low_urls = int(metric(at, "Detections")), image_urls(at)
    assert low > 0
    top_class = at.dataframe[0].value["class"].value_counts().index[-1]  # a rarer one
    at.slider(key="det_conf").set_value(0.6).run()
    assert int(metric(at, "Detections")) < low and image_urls(at) != low_urls
    at.slider(key="det_conf").set_value(0.01).run()
    assert image_urls(at) == low_urls, "back to the same detections without re-running the model"
    for conf in (0.06, 0.07, 0.08, 0.09):  # below the 300-detection cap, above none
        mid = int(metric(at.slider(key="det_conf").set_value(conf).run(), "Detections"))
        if 1 < mid < 300:
            break
    at.slider(key="det_iou").set_value(0.1).run()
    assert int(metric(at, "Detections")) < mid, "a lower NMS IoU suppresses more"
    at.slider(key="det_conf").set_value(0.01).run()
    at.slider(key="det_iou").set_value(0.45)
    at.multiselect(key="det_classes").set_value([top_class]).run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert 0 < len(table) < low and set(table["class"]) == {top_class}
    assert "match" in table.columns  # compared with voc-mini's ground truth


def test_detect_uploads_bad_huge_and_good_images(fresh):
    at = open_page("Detect")
    at.radio(key="_w_image_source").set_value("Upload").run()
    at.file_uploader(key="det_upload").upload("notes.jpg", b"this is not a picture", "image/jpeg").run()
    assert_clean(at)
    assert any("is not an image that can be read" in t for t in texts(at, "error"))
    at.file_uploader(key="det_upload").set_value(("huge.jpg", b"\xff" * (21 * 2**20), "image/jpeg")).run()
    assert any("the limit is 20 MB" in t for t in texts(at, "error"))
    _, png = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    at.file_uploader(key="det_upload").set_value(("photo.png", png.tobytes(), "image/png")).run()
    assert_clean(at)
    assert not texts(at, "error") and "photo.png" in at.image[0].captions[0]


def test_gradcam_layer_method_and_sweep_change_the_map(voc):
    at = open_page("GradCAM")
    at.slider(key="gc_conf").set_value(0.01).run()
    assert_clean(at)
    before = image_urls(at)
    at.selectbox(key="gc_layer").set_value("stage4").run()
    assert image_urls(at) != before and "at stage4" in at.image[0].captions[0]
    at.slider(key="gc_opacity").set_value(0.9).run()
    after_opacity = image_urls(at)
    assert after_opacity[0] != before[0]
    at.toggle(key="gc_sweep").set_value(True).run()
    assert_clean(at)
    assert len(at.image) == 2 and "backbone" in at.image[1].captions[0]
    at.slider(key="gc_conf").set_value(0.99)
    at.selectbox(key="gc_method").set_value("EigenCAM").run()
    assert_clean(at)  # gradient-free: needs no detection
    assert "EigenCAM" in at.image[0].captions[0]


def _traces(at: AppTest, title: str) -> set[str]:
    figure = next(c for c in charts(at) if c["layout"]["title"]["text"] == title)
    return {t["name"] for t in figure["data"] if t.get("showlegend", True) is not False}


def test_training_runs_selection_smoothing_and_half_written_logs(voc):
    at = open_page("Training")
    assert_clean(at)
    assert any("last line incomplete" in t for t in texts(at, "warning")), "a torn CSV is a warning"
    at.multiselect(key="tr_runs").set_value(["tiny/version_0"]).run()
    assert _traces(at, "val/loss") == {"tiny/version_0"}
    at.multiselect(key="tr_runs").set_value(["tiny/version_0", "tiny/version_1"]).run()
    assert _traces(at, "val/loss") == {"tiny/version_0", "tiny/version_1"}
    figure = next(c for c in charts(at) if c["layout"]["title"]["text"] == "val/class_acc")
    assert any(s.get("y0") == 75.0 for s in figure["layout"]["shapes"]), "the seed target is drawn"
    at.slider(key="tr_smooth").set_value(0.6).run()  # 3-point curves start unsmoothed (default_smoothing)
    figure = next(c for c in charts(at) if c["layout"]["title"]["text"] == "val/class_acc")
    smooth = [plotly_array(t["y"]).tolist() for t in figure["data"]]
    at.slider(key="tr_smooth").set_value(0.0)
    at.toggle(key="tr_log").set_value(True).run()
    figure = next(c for c in charts(at) if c["layout"]["title"]["text"] == "val/class_acc")
    assert figure["layout"]["yaxis"]["type"] == "log"
    assert [plotly_array(t["y"]).tolist() for t in figure["data"]] != smooth
    at.radio(key="tr_x").set_value("epoch")
    at.radio(key="tr_kind").set_value("per step").run()
    assert_clean(at)
    figure = next(c for c in charts(at) if c["layout"]["title"]["text"] == "train/loss")
    assert figure["layout"]["xaxis"]["title"]["text"] == "epoch"


def test_evaluate_predicts_once_then_thresholds_move_the_numbers(voc):
    at = open_page("Evaluate")
    at.number_input(key="ev_limit").set_value(12).run()
    at.button(key="ev_run").click().run()
    assert_clean(at)
    at.slider(key="ev_conf").set_value(0.0).run()
    cm_low = plotly_array(next(c for c in charts(at) if "Confusion" in c["layout"]["title"]["text"])["data"][0]["z"])
    at.slider(key="ev_conf").set_value(0.9).run()
    cm_high = plotly_array(next(c for c in charts(at) if "Confusion" in c["layout"]["title"]["text"])["data"][0]["z"])
    assert cm_low[-1].sum() > cm_high[-1].sum(), "fewer false detections at 0.9"
    assert cm_low[:-1, -1].sum() <= cm_high[:-1, -1].sum(), "as many or more objects missed"
    assert any("Best F1" in t for t in texts(at, "success"))
    worst = next(d.value for d in at.dataframe if "errors" in d.value.columns)
    assert len(worst) <= 12  # errors per image, worst first
    again = open_page("Evaluate")  # a new session: the saved predictions are reused
    again.number_input(key="ev_limit").set_value(12).run()
    assert "ev_run" not in [b.key for b in again.button] and "mAP@0.5" in [m.label for m in again.metric]


def test_evaluate_errors_operating_points_compare_and_metrics(voc, tmp_path, monkeypatch):
    """The new tabs: the TIDE chart, the save button writing the thresholds beside the checkpoint
    (which Detect then starts from), a second checkpoint changing the comparison, the rules table."""
    import shutil

    logs = tmp_path / "logs"
    shutil.copytree(voc, logs)
    other = logs / "other" / "version_0" / "checkpoints" / "last.ckpt"
    torch.manual_seed(1)
    save_weights(YOLOv3(20, 0.25).eval(), other)
    write_config(other.parent.parent, {"val_size": 256, "width": 0.25, "preset": None})
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    at = open_page("Evaluate")
    checkpoint = Path(at.selectbox(key="checkpoint_choice").value.split(" · ")[0])
    at.number_input(key="ev_limit").set_value(8).run()
    at.button(key="ev_run").click().run()
    assert_clean(at)
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert any("lost to each error type" in t for t in titles)
    assert any(set(d.value.columns) >= {"rule", "mAP@0.5", "why"} for d in at.dataframe)
    at.button(key="ev_op_save").click().run()
    assert_clean(at)
    saved = list(logs.rglob("*.thresholds.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["thresholds"]
    before = [d.value for d in at.dataframe if "dAP" in d.value.columns and "AP B" in d.value.columns]
    at.button(key="ev_ab_run").click().run()
    assert_clean(at)
    after = [d.value for d in at.dataframe if "AP B" in d.value.columns]
    assert not before and after and not after[0]["dAP"].dropna().eq(0).all(), "B differs from A"
    detect = open_page("Detect")
    assert detect.toggle(key="det_per_class").value, "Detect starts at the saved per-class thresholds"
    assert any("Each class at its own saved threshold" in c.value for c in detect.caption)
    detect.toggle(key="det_per_class").set_value(False).run()  # the slider then starts at the single best
    assert any("best F1 saved for this checkpoint" in t for t in [c.value for c in detect.caption])


def test_detect_starts_from_the_thresholds_that_python_m_yolo_evaluate_saved(voc, voc_mini, tmp_path, monkeypatch, capsys):
    """``python -m yolo.evaluate CKPT`` with no thresholds flag saves the operating points where the
    Detect page looks: it opens with the per-class toggle on, those thresholds listed, and the
    slider at their single best threshold."""
    import shutil

    from yolo.config import VOC_CLASSES
    from yolo.evaluate.__main__ import main
    from yolo.thresholds import load_thresholds, thresholds_path

    logs = tmp_path / "logs"
    shutil.copytree(voc, logs)
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    ckpt = logs / "tiny" / "version_0" / "checkpoints" / "best-epoch=000.ckpt"
    assert main([str(ckpt), "--data", str(voc_mini), "--split", "val", "--limit", "4", "--image-size", "256",
                 "--out", str(tmp_path / "eval")]) == 0
    capsys.readouterr()
    points = load_thresholds(thresholds_path(ckpt), VOC_CLASSES)
    detect = open_page("Detect")
    assert detect.toggle(key="det_per_class").value, "Detect starts at the saved per-class thresholds"
    assert detect.slider(key="det_conf").value == pytest.approx(round(points.global_threshold, 2))
    listed = next(c.value for c in detect.caption if "Each class at its own saved threshold" in c.value)
    assert all(f"{n} {t:.2f}" in listed for n, t in zip(points.class_names, points.class_thresholds))


def test_compare_refuses_a_b_of_other_classes_or_unreadable_and_still_draws_the_other_tabs(voc, tmp_path, monkeypatch):
    """B with 5 classes gets a warning (not a comparison of unrelated class indices), a B that is
    not a checkpoint a message (old code: an exception element that also ended the page)."""
    import shutil

    logs = tmp_path / "logs"
    shutil.copytree(voc, logs)
    save_weights(YOLOv3(5, 0.125).eval(), logs / "five.pt", [f"thing{i}" for i in range(5)])
    (logs / "junk.pth").write_bytes(b"not a checkpoint at all")
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    at = open_page("Evaluate")
    at.number_input(key="ev_limit").set_value(4).run()
    at.button(key="ev_run").click().run()
    assert_clean(at)
    at.selectbox(key="ev_ab_other").set_value("five.pt").run()
    assert_clean(at)
    assert any("knows 5 classes" in t and "cannot be compared" in t for t in texts(at, "warning"))
    assert "ev_ab_run" not in [b.key for b in at.button]
    at.selectbox(key="ev_ab_other").set_value("junk.pth").run()
    assert_clean(at)
    assert any("Cannot use" in t and "junk.pth" in t for t in texts(at, "error"))
    assert any(set(d.value.columns) >= {"rule", "mAP@0.5", "why"} for d in at.dataframe), "Metrics still drawn"


def test_evaluate_says_when_running_the_model_over_the_split_fails(voc, monkeypatch):
    """A sample that cannot be read mid-split (or a model error) is a message, not an exception."""
    from yolo.data.datasets import DetectionDataset

    def unreadable(self, i):
        raise OSError(f"image {i}: truncated file")

    at = open_page("Evaluate")
    at.number_input(key="ev_limit").set_value(3).run()
    monkeypatch.setattr(DetectionDataset, "__getitem__", unreadable)
    at.button(key="ev_run").click().run()
    assert_clean(at)
    assert any("stopped" in t and "truncated file" in t for t in texts(at, "error")), texts(at, "error")


def test_class_mismatch_warnings_say_what_each_page_shows(fresh, tiny_runs, monkeypatch):
    """The demo dataset (its own classes) with a VOC checkpoint: each page's warning matches what
    it then displays."""
    ckpt = next(tiny_runs.rglob("best-epoch=000.ckpt"))
    monkeypatch.setenv("YOLO_CHECKPOINT", str(ckpt))
    at = open_page("Evaluate")
    warning = next(t for t in texts(at, "warning") if "The model knows 20 classes" in t)
    assert "nothing can be evaluated" in warning and "no ground truth is shown" in warning
    assert not image_urls(at) and not charts(at) and not at.metric, "and indeed nothing is shown"
    at = open_page("Detect")
    warning = next(t for t in texts(at, "warning") if "The model knows 20 classes" in t)
    assert "Ground truth is drawn" in warning and "not matched" in warning
    assert image_urls(at) and "match" not in at.dataframe[0].value.columns
    at = open_page("GradCAM")
    warning = next(t for t in texts(at, "warning") if "The model knows 20 classes" in t)
    assert "the dataset's labels are not used" in warning
    assert image_urls(at), "the map is still drawn"


# ------------------------------------------------------------------------------------ robustness
def test_a_bad_checkpoint_gives_a_message_not_a_traceback(fresh, tmp_path, monkeypatch):
    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    bad = tmp_path / "evil.ckpt"
    torch.save({"model": Payload()}, bad)
    monkeypatch.setenv("YOLO_CHECKPOINT", str(bad))
    at = open_page("Detect")
    assert any("Cannot use" in t and "refused" in t for t in texts(at, "error"))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("YOLO_CHECKPOINT", str(tmp_path / "junk.ckpt"))
    at = open_page("GradCAM")
    assert any("Cannot use" in t for t in texts(at, "error"))


def test_a_folder_that_is_not_a_dataset_is_explained(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_DATA", str(tmp_path))
    at = open_page("Dataset")
    assert any("is neither a VOCdevkit nor a Kaggle-layout, YOLO or COCO dataset" in t for t in texts(at, "error"))


def test_streamlit_config_serves_localhost_with_an_upload_limit():
    import tomllib

    config = tomllib.loads((DASHBOARD / ".streamlit" / "config.toml").read_text())  # beside Home.py: read from any folder
    assert config["server"]["address"] == "localhost"
    assert config["server"]["maxUploadSize"] == 20
    assert config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False


# ------------------------------------------------------------------------------------ the demo job
@pytest.fixture
def jobs_module():
    sys.path.insert(0, str(DASHBOARD))
    try:
        import jobs
    finally:
        sys.path.remove(str(DASHBOARD))
    return jobs


# A training process as the dashboard sees it: progress.json records (yolo.progress) in its run
# folder under the logs folder given as its argument, three epochs of two steps at once.
FAKE_TRAINING = ("import os, sys, time\n"
                 "from pathlib import Path\n"
                 "from yolo.progress import FILE_NAME, write_progress\n"
                 "run = Path(sys.argv[1]) / 'demo' / 'version_0'\n"
                 "for e in range(3):\n"
                 "    write_progress(run / FILE_NAME, {'pid': os.getpid(), 'run_folder': 'logs/demo/version_0',\n"
                 "                   'state': 'training', 'epoch': e, 'epochs': 3, 'batch': 2, 'batches': 2,\n"
                 "                   'step': 2 * e + 2, 'total_steps': 6, 'eta': None})\n"
                 "if len(sys.argv) > 2:\n"
                 "    write_progress(run / FILE_NAME, {'pid': os.getpid(), 'run_folder': 'logs/demo/version_0',\n"
                 "                   'state': 'finished', 'epoch': 3, 'epochs': 3, 'step': 6, 'total_steps': 6})\n"
                 "else:\n"
                 "    time.sleep(60)\n")


def test_progress_is_read_from_the_progress_file(jobs_module):
    assert jobs_module.describe(None, 12)[0] == 0.0
    fraction, message = jobs_module.describe({"epoch": 3, "epochs": 12, "batch": 5, "batches": 10, "step": 35,
                                              "total_steps": 120}, 12)
    assert fraction == pytest.approx(3.5 / 12) and "epoch 4 of 12" in message
    assert jobs_module.describe({"epoch": 11, "epochs": 12, "step": 120, "total_steps": 120}, 12)[0] == 1.0


def test_job_lifecycle_finished_failed_stopped(jobs_module, tmp_path):
    ok = [sys.executable, "-c", FAKE_TRAINING, str(tmp_path), "finish"]
    jobs_module.start(tmp_path, ok, epochs=1)
    jobs_module._CHILDREN[jobs_module.status(tmp_path).pid].wait(timeout=HANG_GUARD_S)
    done = jobs_module.status(tmp_path)
    assert done.state == "finished" and done.returncode == 0 and done.run_folder == "logs/demo/version_0"
    jobs_module.start(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"])
    jobs_module._CHILDREN[jobs_module.status(tmp_path).pid].wait(timeout=HANG_GUARD_S)
    assert jobs_module.status(tmp_path).state == "failed" and jobs_module.status(tmp_path).returncode == 3
    jobs_module.start(tmp_path, [sys.executable, "-c", FAKE_TRAINING, str(tmp_path)], epochs=3)
    with pytest.raises(RuntimeError, match="already running"):
        jobs_module.start(tmp_path, [sys.executable, "-c", FAKE_TRAINING, str(tmp_path)])
    assert jobs_module.stop(tmp_path)
    assert jobs_module.status(tmp_path).state == "stopped"


def test_home_button_starts_background_training_with_live_progress(fresh, jobs_module, monkeypatch):
    monkeypatch.setattr(jobs_module, "demo_command",
                        lambda logs, data=None: [sys.executable, "-c", FAKE_TRAINING, str(logs)])
    at = open_page("Home")
    at.button(key="train_demo").click().run()
    assert_clean(at)
    status = jobs_module.status(fresh)
    assert status.running and (fresh / ".dashboard" / "train.json").is_file()
    for _ in range(100):  # the fake writes its three epochs at once
        if jobs_module.status(fresh).progress == 1.0:
            break
        time.sleep(0.1)
    at = open_page("Home")  # a new session (browser reload) still sees the job
    assert any("Training the demo model" in p.proto.text for p in at.get("progress"))
    assert "train_demo" not in [b.key for b in at.button], "no second job while one runs"
    at.button(key="stop_demo").click().run()
    assert_clean(at)
    assert jobs_module.status(fresh).state == "stopped"
    assert any("stopped" in t for t in texts(at, "warning"))


def test_evaluate_calibration_tab_diagram_per_class_table_and_saved_operating_points(voc, tmp_path, monkeypatch):
    """The Calibration tab: the reliability diagram (bars as wide as their share of detections, the
    diagonal), its ECE equal to the bars it draws, the per-class table, and once operating points
    are saved each shown class's threshold marked on its curve."""
    import shutil

    from yolo.config import VOC_CLASSES
    from yolo.evaluate import read_operating_points

    logs = tmp_path / "logs"
    shutil.copytree(voc, logs)
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    at = open_page("Evaluate")
    at.number_input(key="ev_limit").set_value(8).run()
    at.button(key="ev_run").click().run()
    assert_clean(at)
    at.slider(key="ev_cal_bins").set_value(8).run()
    diagram = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Reliability: precision"))
    bars = next(t for t in diagram["data"] if t["type"] == "bar")
    counts = plotly_array(bars["customdata"])[:, 0].astype(float)
    conf = plotly_array(bars["customdata"])[:, 1].astype(float)
    precision = plotly_array(bars["y"]).astype(float)
    assert len(precision) <= 8 and counts.sum() > 0
    width = plotly_array(bars["width"]).astype(float)
    assert np.allclose(width, 0.125 * counts / counts.max()), "bar widths by count"
    assert any(t.get("name") == "calibrated" and list(t["x"]) == [0, 1] for t in diagram["data"])
    ece = float((counts / counts.sum() * np.abs(precision - conf)).sum())
    assert metric(at, "ECE (expected calibration error)") == f"{ece:.3f}"
    table = next(d.value for d in at.dataframe if {"ECE", "MCE", "saved threshold"} <= set(d.value.columns))
    assert len(table) == 20 and table["detections"].sum() == counts.sum()
    per_class = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Reliability per class"))
    assert not any(t.get("name") == "saved operating point" for t in per_class["data"])
    assert any("No operating points saved" in t for t in texts(at, "info"))

    at.button(key="ev_op_save").click().run()
    assert_clean(at)
    saved = read_operating_points(next(logs.rglob("*.thresholds.json")), list(VOC_CLASSES))
    thresholds = dict(zip(saved.class_names, saved.class_thresholds))
    per_class = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Reliability per class"))
    marks = next(t for t in per_class["data"] if t.get("name") == "saved operating point")
    shown = at.multiselect(key="ev_cal_classes").value
    assert list(marks["text"]) and set(marks["text"]) <= set(shown)
    assert [float(x) for x in plotly_array(marks["x"])] == pytest.approx([thresholds[n] for n in marks["text"]])
    table = next(d.value for d in at.dataframe if {"ECE", "saved threshold"} <= set(d.value.columns))
    assert table.set_index("class")["saved threshold"].to_dict() == pytest.approx(thresholds, abs=1e-4)  # shown to 4 places


def test_evaluate_slips_ids_names_same_weights_rule_choices_and_readable_sweeps(voc, tmp_path, monkeypatch):
    """Issue 21 item 19 on the Evaluate page: the Errors examples show image ids and class names (not
    indices); Compare says when B holds the same weights as A (a copy of the checkpoint); every
    operating-point rule is visible (a radio, not a select-slider showing one value); the sweep
    charts' text is at least 14 px."""
    import shutil

    from yolo.config import VOC_CLASSES

    logs = tmp_path / "logs"
    shutil.copytree(voc, logs)
    original = next(logs.rglob("best-epoch=000.ckpt"))
    shutil.copy(original, logs / "copy-of-best.ckpt")
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    at = open_page("Evaluate")
    at.number_input(key="ev_limit").set_value(6).run()
    at.button(key="ev_run").click().run()
    assert_clean(at)
    examples = next(d.value for d in at.dataframe if {"type", "image", "class", "score"} <= set(d.value.columns))
    assert len(examples) and all(isinstance(i, str) and not i.isdigit() for i in examples["image"])
    assert set(examples["class"]) <= set(VOC_CLASSES)
    assert at.radio(key="ev_op_rule").options == ["max F1", "precision >= 0.5", "precision >= 0.7", "precision >= 0.9"]
    for title in ("Precision, recall and F1 against the confidence threshold", "mAP@0.5 against NMS IoU"):
        chart = next(c for c in charts(at) if c["layout"]["title"]["text"] == title)
        assert chart["layout"]["font"]["size"] >= 14
    at.selectbox(key="ev_ab_other").set_value(next(o for o in at.selectbox(key="ev_ab_other").options
                                                  if "copy-of-best" in o)).run()
    assert_clean(at)
    assert any("same weights" in t for t in texts(at, "info")) and "ev_ab_run" not in [b.key for b in at.button]
