"""yolo.video: clips written here (losslessly, FFV1) from demo-dataset images; per-frame detections
against Detector.predict on the same decoded frames; a known-answer model on moving rectangles;
threshold changes with no forward pass (counted); the annotated WebM; bad clips; the CLI."""

from __future__ import annotations

import struct
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from torch import nn

from yolo.data.demo import DEMO_CLASSES, render_image
from yolo.detect import Detector
from yolo.model import YOLOv3
from yolo.targets import encode, targets_to_logits
from yolo.viz import draw_detections
from yolo.video import (ClipWriter, VideoError, detect_clip, main, output_size, probe_clip, read_frame,
                        read_frames, write_annotated, LiveDetection)
from yolo.weights import save_weights

SIZE = 128  # model input side in these tests
HEIGHT, WIDTH = 243, 321  # odd sides on purpose


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """RGB frames -> an FFV1 clip in RGB (bgr0) through PyAV: lossless at any size, odd sides
    included (OpenCV's own writer rounds odd sides down), so decoded frames equal the written ones."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def demo_frames(n: int, seed: int = 7) -> list[np.ndarray]:
    """Demo-dataset images (``render_image``) on a (HEIGHT, WIDTH) canvas, top-left."""
    frames = []
    for k in range(n):
        image, _ = render_image(np.random.default_rng([seed, k]))
        canvas = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        h, w = min(HEIGHT, image.shape[0]), min(WIDTH, image.shape[1])
        canvas[:h, :w] = image[:h, :w]
        frames.append(canvas)
    return frames


def decoded(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def spread_model(classes: int = len(DEMO_CLASSES)) -> YOLOv3:
    """Random weights with BatchNorm statistics measured on noise, so scores spread (thresholds act)."""
    torch.manual_seed(0)
    model = YOLOv3(classes, 0.25)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, SIZE, SIZE))
    return model.eval()


class BrightBoxModel(nn.Module):
    """Known answer: the raw outputs a perfect model gives for the bright rectangle of each input
    (mean channel > 0.6), class 1 (as in tests/test_detect.py)."""

    num_classes = 2

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        b, _, s, _ = images.shape
        boxes = []
        for mask in images.mean(dim=1) > 0.6:
            rows = torch.nonzero(mask.any(dim=1)).squeeze(1)
            cols = torch.nonzero(mask.any(dim=0)).squeeze(1)
            x1, x2, y1, y2 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
            boxes.append([(x1 + x2) / 2 / s, (y1 + y2) / 2 / s, (x2 - x1) / s, (y2 - y1) / s])
        return targets_to_logits(encode(torch.tensor(boxes), torch.ones(b), torch.arange(b), b, s), self.num_classes)


def counting(model: nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(spread_model(), list(DEMO_CLASSES), SIZE)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    frames = demo_frames(10)
    return write_clip(tmp_path_factory.mktemp("clip") / "demo.mkv", frames), frames


# ------------------------------------------------------------------------ same as Detector.predict
def test_per_frame_detections_equal_detector_predict_on_the_decoded_frames(clip, detector):
    path, written = clip
    frames = decoded(path)
    assert len(frames) == len(written) and all(np.array_equal(a, b) for a, b in zip(frames, written))  # lossless
    result = detect_clip(detector, path, batch_size=1)  # the same forward shape as predict: bit for bit
    assert [f.index for f in result.frames] == list(range(10)) and not result.cancelled
    assert result.info.size == (HEIGHT, WIDTH) and len(result.timings) == 10
    compared = 0
    for i, frame in enumerate(frames):
        prediction = detector.predict(frame)
        for conf, iou, classes in ((0.05, 0.45, None), (0.08, 0.3, None), (0.05, 0.6, ["circle", "cross"])):
            want = prediction.select(conf=conf, iou=iou, classes=classes)
            got = result.select(i, conf=conf, iou=iou, classes=classes)
            assert got.names == want.names and got.orig_size == want.orig_size
            for a, b in ((got.boxes, want.boxes), (got.scores, want.scores), (got.labels, want.labels),
                         (got.slots, want.slots)):
                assert torch.equal(a, b)
            compared += len(want)
    assert compared > 50  # thresholds that keep something: the comparison is not of empty sets


def test_batched_frames_give_the_same_candidates_as_single_frames(clip, detector):
    """Batches of 4: the same maths, but oneDNN may sum in another order (float32 rounding)."""
    path, _ = clip
    one, four = detect_clip(detector, path, batch_size=1), detect_clip(detector, path, batch_size=4)
    for a, b in zip(one.frames, four.frames):
        sure = lambda f: f.scores > 0.01  # away from the kept floor, where rounding could flip one in or out
        ka, kb = sure(a), sure(b)
        order_a, order_b = np.argsort(a.slots[ka]), np.argsort(b.slots[kb])
        np.testing.assert_array_equal(a.slots[ka][order_a], b.slots[kb][order_b])
        np.testing.assert_array_equal(a.labels[ka][order_a], b.labels[kb][order_b])
        np.testing.assert_allclose(a.scores[ka][order_a], b.scores[kb][order_b], atol=1e-4)
        np.testing.assert_allclose(a.boxes[ka][order_a], b.boxes[kb][order_b], atol=0.05)  # pixels


def test_every_and_max_frames_pick_the_right_frames(clip, detector):
    path, written = clip
    result = detect_clip(detector, path, every=3, max_frames=3, batch_size=2)
    assert [f.index for f in result.frames] == [0, 3, 6]
    assert [round(f.time_s, 3) for f in result.frames] == [0.0, 0.3, 0.6]  # 10 frames/s
    want = detector.predict(written[6]).select(conf=0.05)
    torch.testing.assert_close(result.select(2, conf=0.05).boxes, want.boxes, atol=1e-3, rtol=0)


def test_a_known_answer_model_finds_the_moving_rectangle_in_frame_pixels(tmp_path):
    boxes = [(10 + 23 * k, 30 + 9 * k, 90 + 23 * k, 150 + 9 * k) for k in range(6)]
    frames = []
    for x1, y1, x2, y2 in boxes:
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        frame[y1:y2, x1:x2] = 255
        frames.append(frame)
    path = write_clip(tmp_path / "rect.mkv", frames)
    result = detect_clip(Detector(BrightBoxModel(), ["a", "b"], SIZE), path, batch_size=4)
    for i, box in enumerate(boxes):
        found = result.select(i, conf=0.5)
        assert found.names == ["b"]
        # the model sees a 128 px letterbox of a 321 px frame: 2.5 frame pixels per input pixel
        np.testing.assert_allclose(found.boxes[0].numpy(), box, atol=2.6)


# ------------------------------------------------------------------------ thresholds: no model
@pytest.mark.slow  # ~10 s idle, 35 s beside four busy sessions
def test_threshold_changes_over_300_frames_run_no_forward_pass(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), (5, 5), 2) for _ in range(300)]
    path = write_clip(tmp_path / "long.mkv", frames, fps=30)
    model = spread_model()
    calls = counting(model)
    result = detect_clip(Detector(model, list(DEMO_CLASSES), 32), path, batch_size=16)
    assert len(result) == 300 and calls[0] == 19  # ceil(300 / 16) forward passes
    low, mid, high = np.quantile(np.concatenate([f.scores for f in result.frames]), [0.1, 0.5, 0.9])
    totals = [result.counts(conf=c, iou=i).sum() for c, i in ((low, 0.45), (mid, 0.45), (mid, 0.2), (high, 0.45))]
    picked = [len(result.select(k, conf=low, classes=["square"])) for k in range(300)]
    assert calls[0] == 19  # moving thresholds and classes over every frame ran the model no more
    assert totals[0] > totals[1] > totals[3] > 0 and totals[1] > totals[2] and sum(picked) > 0


def test_cancel_stops_between_batches_and_keeps_what_was_done(clip, detector):
    path, _ = clip
    stop = threading.Event()
    seen = []

    def progress(done, expected):
        seen.append((done, expected))
        if done >= 4:
            stop.set()

    result = detect_clip(detector, path, batch_size=2, progress=progress, cancel=stop)
    assert result.cancelled and len(result) == 4 and seen == [(2, 10), (4, 10)]


# ------------------------------------------------------------------------ the annotated clip
def test_annotated_clip_is_vp8_webm_with_every_frame_at_the_right_size(clip, detector, tmp_path):
    path, _ = clip
    result = detect_clip(detector, path, every=2)
    out = write_annotated(result, tmp_path / "out.webm", conf=0.05)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"VP80"
    back = decoded(out)
    assert len(back) == 5 and back[0].shape[:2] == output_size((HEIGHT, WIDTH)) == (242, 320)
    # boxes are drawn: the annotated frame differs from the plain one far more than VP8's loss does
    plain = cv2.resize(decoded(path)[0], (320, 242), interpolation=cv2.INTER_AREA).astype(int)
    none = decoded(write_annotated(result, tmp_path / "none.webm", conf=1.0))[0].astype(int)
    assert np.abs(back[0] - plain).mean() > 3 * np.abs(none - plain).mean()
    with pytest.raises(VideoError, match="webm"):
        ClipWriter(tmp_path / "out.mp4", 10, (242, 320))


def test_output_size_is_even_and_bounded():
    assert output_size((243, 321)) == (242, 320)
    assert output_size((2160, 3840)) == (720, 1280)
    assert output_size((9, 8)) == (8, 8)


# ------------------------------------------------------------------------ bad clips
def test_a_file_that_is_not_a_video_is_one_clear_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(VideoError, match="not a video OpenCV can read"):
        probe_clip(text)
    with pytest.raises(VideoError, match="no such file"):
        probe_clip(tmp_path / "missing.mp4")


def test_a_clip_with_no_frames_is_one_clear_error(tmp_path, detector):
    empty = tmp_path / "empty.mkv"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"FFV1"), 10, (64, 48))
    writer.release()
    with pytest.raises(VideoError, match="no frame|not a video"):
        detect_clip(detector, empty)


@pytest.mark.parametrize("size", [(1, 1), (3, 5000), (5000, 3)])
def test_frames_the_model_cannot_take_are_refused_by_size(tmp_path, detector, size):
    h, w = size
    path = write_clip(tmp_path / "odd.mkv", [np.full((h, w, 3), 128, np.uint8)] * 2)
    with pytest.raises(VideoError, match=f"frames of {w}x{h} cannot be used"):
        detect_clip(detector, path)


def test_a_variable_frame_rate_clip_keeps_each_frame_time(tmp_path, detector):
    path = tmp_path / "vfr.mkv"
    times = [0.0, 0.1, 0.15, 0.6, 0.65, 1.4]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.time_base = 64, 48, Fraction(1, 1000)
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * k, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:  # the stored timestamps, read by PyAV (the encoder may round them)
        stored = [float(frame.time) for frame in container.decode(video=0)]
    assert len(set(np.round(np.diff(stored), 3))) > 2  # the gaps vary: a variable-frame-rate clip
    assert [t for _, t, _ in read_frames(path)] == pytest.approx(stored, abs=1e-3)
    assert [f.time_s for f in detect_clip(detector, path).frames] == pytest.approx(stored, abs=1e-3)


# ------------------------------------------------------------------------ the CLI
def test_cli_writes_the_annotated_clip_and_refuses_bad_flags(clip, tmp_path, capsys):
    path, _ = clip
    ckpt = save_weights(spread_model(), tmp_path / "tiny.ckpt", list(DEMO_CLASSES))
    out = tmp_path / "annotated.webm"
    assert main([str(ckpt), str(path), "--out", str(out), "--max-frames", "4", "--image-size", str(SIZE),
                 "--conf", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "4 frames of 321x243" in printed and f"wrote {out}" in printed
    assert len(decoded(out)) == 4
    with pytest.raises(SystemExit, match="exists; pass --force"):
        main([str(ckpt), str(path), "--out", str(out)])
    with pytest.raises(SystemExit, match="name it"):
        main([str(ckpt), str(path), "--out", str(tmp_path / "x.mp4")])
    for flags, message in ((["--every", "0"], "argument --every: must be an integer >= 1, got 0"),
                           (["--conf", "2"], "argument --conf: must be a number in"),
                           (["--iou", "nan"], "argument --iou: must be a number in"),
                           (["--max-frames", "0"], "argument --max-frames: must be an integer >= 1"),
                           (["--image-size", "100"], "argument --image-size")):
        with pytest.raises(SystemExit) as exit_info:
            main([str(ckpt), str(path), "--out", str(tmp_path / "y.webm"), *flags])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"\x00" * 4096)
    with pytest.raises(SystemExit, match="not a video"):
        main([str(ckpt), str(notes), "--out", str(tmp_path / "n.webm")])


def test_cli_thresholds_default_to_the_checkpoint_s_saved_operating_point(clip, tmp_path, capsys):
    from yolo.thresholds import OperatingPoints, thresholds_path, write_thresholds

    path, _ = clip
    ckpt = save_weights(spread_model(), tmp_path / "tiny.ckpt", list(DEMO_CLASSES))
    args = [str(ckpt), str(path), "--max-frames", "2", "--image-size", str(SIZE)]
    main([*args, "--out", str(tmp_path / "a.webm")])
    assert "at conf 0.05," in capsys.readouterr().out  # no file: the detector's default
    thresholds = [0.06, 0.07, 0.08, 0.09, 1.0]
    write_thresholds(OperatingPoints(list(DEMO_CLASSES), thresholds, 0.07), thresholds_path(ckpt))
    detector = Detector.from_checkpoint(ckpt, image_size=SIZE)
    counts = detect_clip(detector, path, max_frames=2).counts(conf=thresholds).sum(axis=0)
    assert counts[-1] == 0 and counts.sum() > 0
    main([*args, "--out", str(tmp_path / "b.webm")])
    found = ", ".join(f"{n} {c}" for n, c in zip(DEMO_CLASSES, counts) if c)
    assert f"at per-class operating point, iou 0.45: {found}\n" in capsys.readouterr().out
    main([*args, "--out", str(tmp_path / "c.webm"), "--conf", "0.05"])
    assert "at conf 0.05," in capsys.readouterr().out  # a flag wins over the file
    thresholds_path(ckpt).write_text("{" * 10)
    main([*args, "--out", str(tmp_path / "d.webm")])
    out, err = capsys.readouterr()
    assert "using the default thresholds" in err and "at conf 0.05," in out


def rotated_phone_clip(path: Path) -> Path:
    """A 64x32 MPEG-4 clip whose track header says "display rotated 90 degrees clockwise", as a
    phone held upright writes it: the tkhd matrix (9 x 32-bit fixed point) patched in place."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for _ in range(3):
            frame = np.zeros((32, 64, 3), np.uint8)
            frame[:, :16] = 255  # a white band on the left of the stored picture
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    rot90 = struct.pack(">9I", 0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)
    at = data.find(identity, data.find(b"tkhd"))
    assert at > 0
    data[at:at + 36] = rot90
    path.write_bytes(data)
    return path


def test_a_rotated_phone_clip_is_read_upright(tmp_path, detector):
    path = rotated_phone_clip(tmp_path / "phone.mp4")
    stored = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    stored.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    assert stored.read()[1].shape[:2] == (32, 64)  # as stored: landscape
    frames = list(read_frames(path))
    assert len(frames) == 3 and probe_clip(path).size == (64, 32)  # shown: portrait
    rows = frames[0][2][..., 0].mean(axis=1)
    assert rows[:14].min() > 200 and rows[18:].max() < 50  # the left band turned clockwise is on top
    assert detect_clip(detector, path).info.size == (64, 32)


def test_read_frame_seeks_to_the_same_frame_as_decoding_in_order(tmp_path):
    frames = [np.full((48, 64, 3), 5 * k, np.uint8) for k in range(30)]
    for k, frame in enumerate(frames):
        frame[:, 2 * k] = 255  # a moving bar: inter-frame coding has something to predict
    mp4v = cv2.VideoWriter(str(tmp_path / "gop.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for frame in frames:
        mp4v.write(frame)
    mp4v.release()  # MPEG-4 part 2 with keyframes 12 frames apart: a seek lands between them
    for name, clip in (("ffv1.mkv", write_clip(tmp_path / "ffv1.mkv", frames)), ("gop.mp4", tmp_path / "gop.mp4")):
        in_order = decoded(clip)
        for index in (0, 1, 17, 29):
            assert np.array_equal(read_frame(clip, index), in_order[index]), (name, index)
    with pytest.raises(VideoError, match="frame 30 cannot be decoded"):
        read_frame(tmp_path / "ffv1.mkv", 30)


def test_live_detection_draws_the_boxes_at_the_current_thresholds_and_counts_frames_per_second():
    ticks = iter(np.arange(0, 10, 0.25))  # a frame every 0.25 s: 4 frames/s
    live = LiveDetection(Detector(BrightBoxModel(), ["a", "b"], SIZE), conf=0.5, clock=lambda: float(next(ticks)))
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[40:140, 60:200] = 255
    for _ in range(6):
        drawn = live(frame)
    assert drawn.shape == frame.shape and live.stats()["detections"] == 1
    assert live.stats()["fps"] == pytest.approx(4.0) and live.stats()["frames"] == 6
    want = draw_detections(frame, torch.tensor([[60.0, 40, 200, 140]]), [1], [1.0], class_names=["a", "b"])
    box_rows = slice(30, HEIGHT)  # below the frames/s text in the top-left corner
    assert np.abs(drawn[box_rows].astype(int) - want[box_rows]).mean() < 1.0  # the box where the rectangle is
    assert (drawn[:30] != frame[:30]).any()  # the frames/s text
    live.set_thresholds(conf=0.5, classes=["a"])
    live(frame)
    assert live.stats()["detections"] == 0  # class filter at once, on the next frame
