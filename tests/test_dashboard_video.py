"""Detect's Video tab end to end through AppTest: upload a clip, one run of the model (counted),
scrub frames and move thresholds with no forward pass, the table against Detector.predict on the
same decoded frame, the count chart, the annotated clip to download, GradCAM on the frame, and a
file that is not a video."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("streamlit")
from test_dashboard import assert_clean, index_cache, open_page, texts, tiny_runs, voc  # noqa: F401
from test_video import decoded, demo_frames, write_clip

from yolo.detect import Detector


def last_metric(at, label: str) -> str:
    """The Video tab's metric (the Image tab above it has one of the same name)."""
    return [m.value for m in at.metric if m.label == label][-1]


@pytest.fixture
def model_calls(monkeypatch) -> list[int]:
    """Forward passes the Video tab asks for (``Detector.run_prepared``: one per batch of frames)."""
    calls = [0]
    original = Detector.run_prepared

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Detector, "run_prepared", counted)
    return calls


def test_video_tab_runs_once_then_scrubs_and_filters_without_the_model(voc, tmp_path, model_calls):
    clip = write_clip(tmp_path / "street.mkv", demo_frames(9))
    at = open_page("Detect")
    at.file_uploader(key="vid_upload").upload("street.mkv", clip.read_bytes(), "video/x-matroska").run()
    assert_clean(at)
    at.button(key="vid_run").click().run()
    assert_clean(at)
    assert model_calls[0] == 3  # 9 frames in batches of 4
    assert last_metric(at, "Frames") == "9" and at.slider(key="vid_frame").max == 8
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["title"]["text"] == "Detections per class over the clip"

    checkpoint = next(voc.rglob("*.ckpt"))
    detector = Detector.from_checkpoint(checkpoint, image_size=256)
    frames = decoded(clip)
    for frame_index, conf, iou in ((0, 0.1, 0.45), (4, 0.12, 0.45), (8, 0.1, 0.2)):
        at.slider(key="vid_frame").set_value(frame_index)
        at.slider(key="vid_conf").set_value(conf)
        at.slider(key="vid_iou").set_value(iou).run()
        assert_clean(at)
        table = at.dataframe[-1].value
        want = detector.predict(frames[frame_index]).select(conf=conf, iou=iou)
        assert len(table) == len(want) == int(last_metric(at, "Detections")) > 0
        assert table["class"].tolist() == want.names
        np.testing.assert_allclose(table["score"], want.scores.numpy(), atol=2e-3)
        assert f"frame {frame_index} at" in at.image[-1].captions[0]
    at.multiselect(key="vid_classes").set_value([want.names[0]]).run()
    assert set(at.dataframe[-1].value["class"]) == {want.names[0]}
    assert model_calls[0] == 3, "frames, thresholds and classes moved with no forward pass"

    at.button(key="vid_write").click().run()
    assert_clean(at)
    assert at.get("download_button") and "webm" in at.get("download_button")[0].proto.label
    assert at.get("video"), "the annotated clip plays on the page"
    assert model_calls[0] == 3

    at.button(key="vid_gradcam").click().run()
    assert_clean(at)
    assert at.radio(key="_w_image_source").value == "Video frame"
    assert "street.mkv · frame 8" in at.image[0].captions[0] and "GradCAM" in at.image[0].captions[0]


def test_video_tab_says_what_is_wrong_with_a_file_that_is_not_a_video(voc, tmp_path):
    at = open_page("Detect")
    at.file_uploader(key="vid_upload").upload("notes.mp4", b"not a video at all\n" * 50, "video/mp4").run()
    at.button(key="vid_run").click().run()
    assert_clean(at)
    assert any("is not a video OpenCV can read" in t for t in texts(at, "error"))
    at.radio(key="vid_source").set_value("Path on the server").run()
    at.text_input(key="vid_path").input(str(tmp_path / "missing.mp4")).run()
    assert any("No file at" in t for t in texts(at, "error"))
    assert_clean(at)


def test_camera_tab_has_its_own_sliders_read_by_the_media_thread(voc):
    """AppTest has no server session, so streamlit-webrtc cannot start: the tab says so; the
    sliders and what the media thread reads are checked here, the frames in yolo.video's tests."""
    at = open_page("Detect")
    assert_clean(at)
    assert at.slider(key="cam_conf").value == 0.25 and at.slider(key="cam_iou").value == 0.45
    assert any("The camera cannot start here" in t for t in texts(at, "warning"))
    at.slider(key="cam_conf").set_value(0.5)
    at.multiselect(key="cam_classes").set_value(["dog"]).run()
    assert_clean(at)
    live = at.session_state["_camera_live"]
    assert live._thresholds == (0.5, 0.45, ["dog"]), "the media thread reads the sliders' values"
