"""Detection on video: a clip read frame by frame -> every frame's candidates -> an annotated clip.

    detector = Detector.from_checkpoint("logs/voc/version_0/checkpoints/last.ckpt")
    clip = detect_clip(detector, "street.mp4", every=2)      # the model runs once per kept frame
    found = clip.select(10, conf=0.4, iou=0.5)                # frame 10's Detections: no forward pass
    counts = clip.counts(conf=0.4)                            # (frames, classes) detections per class
    write_annotated(clip, "street.webm", conf=0.4)            # decodes the clip again, draws, encodes

    python -m yolo.video CKPT CLIP [--out OUT] [--conf ..] [--iou ..] [--every N] [--max-frames N]

Memory: frames are decoded one at a time (OpenCV/FFmpeg); at most ``batch_size`` letterboxed
inputs and, while writing, ``batch_size`` frames shrunk to ``out_side`` are alive at once. What
stays per frame is its candidates only: at most ``keep_top`` (default 1000, the Detector's
pre-NMS top-k) above ``conf_floor``, 26 bytes each (float32 box and score, int16 class, int32
slot), so a clip costs at most ``frames x 26 kB`` whatever its resolution, and far less for a
trained model (a few dozen candidates per frame pass 0.005).
Selections equal ``Detector.predict(frame).select(conf, iou, classes)`` for any ``conf >=
conf_floor``: both take the best ``keep_top`` candidates above the threshold before NMS.

Sizes are (height, width); boxes (x1, y1, x2, y2) in pixels of the decoded (upright) frame.
Rotation metadata of phone clips is applied by OpenCV (``CAP_PROP_ORIENTATION_AUTO``).

The annotated clip is WebM with VP8 (OpenCV's FFmpeg ``VP80``): the pip wheels of
opencv-python-headless carry no H.264 encoder (``avc1`` fails to open), VP8 and VP9 both play in
Chrome, Firefox, Edge and Safari (14.1+), and VP8 encodes about 4x faster than VP9 here.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from yolo.argtypes import OutputError, image_size, integer, output_file, real
from yolo.config import PostprocessConfig
from yolo.detect import PRE_NMS_TOP_K, Detector, select_candidates
from yolo.imageio import ImageError, check_size
from yolo.selection import Candidates, Detections
from yolo.viz import draw_detections, fitted_size

CONF_FLOOR = 0.005  # candidates at or below this score are not kept (a slider's lowest useful value)
FOURCC, SUFFIX = "VP80", ".webm"  # what browsers play and the pip OpenCV wheels can encode
OUT_SIDE = 1280  # the annotated clip's long side at most (a browser preview; boxes drawn at this size)
DEFAULT_FPS = 25.0  # when the container gives no usable frame rate
MAX_FRAMES = 1_000_000  # a cap on frames read in one run (about 11 hours at 25 frames/s)


class VideoError(ValueError):
    """A clip that cannot be used: not a video, no frames, or a frame size the model cannot take."""


Progress = Callable[[int, int | None], None]  # (frames read, frames expected or None)
Cancel = threading.Event | Callable[[], bool] | None


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class ClipInfo:
    """What a clip says about itself. frame_count: the container's figure (may be 0 or wrong for
    some formats: a hint for progress bars only); size (height, width) of the first decoded,
    upright frame; fps: the container's frame rate (average for a variable-rate clip)."""

    path: str
    frame_count: int
    fps: float
    size: tuple[int, int]
    codec: str


def _open(path: str | Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)  # FFmpeg only: no image-sequence guessing
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{path.name} is not a video OpenCV can read (tried FFmpeg); use mp4, webm, mkv, avi or mov")
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # phone clips: apply the rotation metadata
    return cap


def _fps(cap: cv2.VideoCapture) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0.1 <= fps <= 1000 else DEFAULT_FPS


def _check_frame(frame: np.ndarray, name: str) -> None:
    height, width = frame.shape[:2]
    try:
        check_size(width, height)
    except ImageError as err:
        raise VideoError(f"{name}: frames of {width}x{height} cannot be used ({err})") from None


def probe_clip(path: str | Path) -> ClipInfo:
    """Open ``path`` and decode its first frame. Raises ``VideoError`` (one line) for a file that
    is not a video, a clip with no decodable frame, or a frame size the model cannot take
    (``yolo.imageio.check_size``: sides >= 8 px, aspect <= 32:1, <= 179 megapixels)."""
    cap = _open(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{Path(path).name} holds no frame that can be decoded")
        _check_frame(frame, Path(path).name)
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        codec = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ") if fourcc > 0 else "?"
        return ClipInfo(str(path), max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0), _fps(cap),
                        tuple(frame.shape[:2]), codec)
    finally:
        cap.release()


def read_frames(path: str | Path, every: int = 1, max_frames: int | None = None,
                ) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (frame index, time in seconds, RGB uint8 (H, W, 3)) for frames 0, every, 2*every, ...
    of the clip, at most ``max_frames`` of them. One frame is decoded at a time; frames between
    kept ones are skipped without conversion (``grab``). Time is the container's timestamp
    (right for variable-frame-rate clips), else index / fps. A frame whose size differs from the
    first's (a stream that changes resolution) is resized to the first's size."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    limit = MAX_FRAMES if max_frames is None else max_frames
    if limit < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    cap = _open(path)
    try:
        fps, size, index, kept = _fps(cap), None, 0, 0
        while kept < limit:
            if index % every and not cap.grab():
                break
            if index % every:
                index += 1
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if size is None:
                _check_frame(frame, Path(path).name)
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = msec / 1000 if msec and math.isfinite(msec) and msec > 0 else index / fps
            yield index, float(t), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            kept += 1
            index += 1
        if size is None and kept == 0 and limit > 0:
            raise VideoError(f"{Path(path).name} holds no frame that can be decoded")
    finally:
        cap.release()


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` of the clip as RGB uint8 (H, W, 3), upright: OpenCV seeks to the keyframe
    before it and decodes forward (for scrubbing; ``read_frames`` for whole clips)."""
    cap = _open(path)
    try:
        if index > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{Path(path).name}: frame {index} cannot be decoded")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


# --------------------------------------------------------------------------------------------
# Candidates per frame


@dataclass(frozen=True, eq=False)
class FrameCandidates:
    """One frame's kept candidates (no image): boxes float32 (K, 4) xyxy pixels of the frame;
    scores float32 (K,); labels int16 (K,); slots int32 (K,) (``yolo.selection.unravel_slot``)."""

    index: int  # frame number in the clip
    time_s: float
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    slots: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.boxes.nbytes + self.scores.nbytes + self.labels.nbytes + self.slots.nbytes

    def candidates(self) -> Candidates:
        k = len(self.scores)
        return Candidates(torch.from_numpy(self.boxes), torch.from_numpy(self.scores),
                          torch.from_numpy(self.labels.astype(np.int64)), torch.from_numpy(self.slots.astype(np.int64)),
                          torch.zeros(k, dtype=torch.int64))


@dataclass(frozen=True)
class FrameTiming:
    """Milliseconds per frame: decoding the video (skipped frames included), letterbox, and the
    batch's forward pass with the decoding of its outputs, shared equally among its frames."""

    read_ms: float
    prepare_ms: float
    model_ms: float

    @property
    def total_ms(self) -> float:
        return self.read_ms + self.prepare_ms + self.model_ms


@dataclass(eq=False)
class ClipDetections:
    """A clip after one run of the model: every kept frame's candidates, re-selectable at any
    thresholds (``select``, ``counts``) without the model."""

    info: ClipInfo
    frames: list[FrameCandidates]
    timings: list[FrameTiming]
    class_names: tuple[str, ...]
    config: PostprocessConfig
    class_conf: tuple[float, ...] | None
    every: int
    conf_floor: float
    cancelled: bool = False
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept candidates."""
        return sum(f.nbytes for f in self.frames)

    def select(self, i: int, conf=None, iou: float | None = None, classes=None) -> Detections:
        """Detections of the i-th kept frame (``frames[i]``) at these thresholds; as
        ``yolo.detect.Prediction.select`` (None: the detector's defaults or operating point).
        A ``conf`` below ``conf_floor`` acts as ``conf_floor`` (lower candidates were not kept)."""
        frame = self.frames[i]
        return select_candidates(frame.candidates(), self.class_names, self.info.size, self.config,
                                 self.class_conf, conf, iou, classes)

    def counts(self, conf=None, iou: float | None = None, classes=None) -> np.ndarray:
        """(frames, classes) int64: detections of each class on each kept frame."""
        out = np.zeros((len(self.frames), len(self.class_names)), np.int64)
        for i in range(len(self.frames)):
            labels = self.select(i, conf, iou, classes).labels.numpy()
            np.add.at(out[i], labels, 1)
        return out


def _cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def _split(candidates: Candidates, batch: list[tuple[int, float]]) -> list[FrameCandidates]:
    out = []
    for j, (index, t) in enumerate(batch):
        mine = candidates.images == j
        out.append(FrameCandidates(index, t, candidates.boxes[mine].numpy().astype(np.float32),
                                   candidates.scores[mine].numpy().astype(np.float32),
                                   candidates.labels[mine].numpy().astype(np.int16),
                                   candidates.slots[mine].numpy().astype(np.int32)))
    return out


def detect_clip(
    detector: Detector,
    path: str | Path,
    every: int = 1,
    max_frames: int | None = None,
    batch_size: int = 4,
    conf_floor: float = CONF_FLOOR,
    keep_top: int = PRE_NMS_TOP_K,
    progress: Progress | None = None,
    cancel: Cancel = None,
    on_frames: Callable[[list[FrameCandidates], list[np.ndarray]], None] | None = None,
) -> ClipDetections:
    """Run ``detector`` over every ``every``-th frame of the clip (at most ``max_frames``), in
    batches of ``batch_size``; keep each frame's best ``keep_top`` candidates above ``conf_floor``.

    progress(frames read, frames expected or None) after each batch; cancel (a threading.Event,
    or a function returning True) is checked between batches: the result then holds the frames
    done so far with ``cancelled`` True. on_frames(frame candidates, RGB frames) sees each batch
    with its decoded frames (what ``main`` uses to write the annotated clip in the same pass).
    Raises ``VideoError`` for an unusable clip (see ``probe_clip``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    info = probe_clip(path)
    expected = -(-info.frame_count // every) if info.frame_count > 0 else None
    if expected is not None and max_frames is not None:
        expected = min(expected, max_frames)
    frames: list[FrameCandidates] = []
    timings: list[FrameTiming] = []
    start = time.perf_counter()
    cancelled = False
    reader = read_frames(path, every, max_frames)
    while True:
        if _cancelled(cancel):
            cancelled = True
            break
        batch, images, inputs, boxes, read_ms, prep_ms = [], [], [], [], [], []
        t0 = time.perf_counter()
        for index, t, rgb in reader:
            t1 = time.perf_counter()
            _, tensor, record = detector.prepare(rgb)
            t2 = time.perf_counter()
            batch.append((index, t))
            inputs.append(tensor)
            boxes.append(record)
            if on_frames is not None:
                images.append(rgb)
            read_ms.append((t1 - t0) * 1e3)
            prep_ms.append((t2 - t1) * 1e3)
            if len(batch) == batch_size:
                break
            t0 = time.perf_counter()
        if not batch:
            break
        t3 = time.perf_counter()
        done = _split(detector.run_prepared(inputs, boxes, conf_floor, keep_top), batch)
        share = (time.perf_counter() - t3) * 1e3 / len(batch)
        timings += [FrameTiming(r, p, share) for r, p in zip(read_ms, prep_ms)]
        frames += done
        if on_frames is not None:
            on_frames(done, images)
        if progress is not None:
            progress(len(frames), expected)
        if len(batch) < batch_size:
            break
    return ClipDetections(info, frames, timings, tuple(detector.class_names), detector.config,
                          detector.class_conf, every, conf_floor, cancelled, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# The annotated clip


def annotate(rgb: np.ndarray, detections: Detections, class_names: Sequence[str],
             out_size: tuple[int, int] | None = None) -> np.ndarray:
    """The frame resized to ``out_size`` (h, w; None: as it is) with the detections drawn; RGB."""
    image = rgb
    boxes = detections.boxes.numpy()
    if out_size is not None and out_size != rgb.shape[:2]:
        sy, sx = out_size[0] / rgb.shape[0], out_size[1] / rgb.shape[1]
        image = cv2.resize(rgb, (out_size[1], out_size[0]), interpolation=cv2.INTER_AREA)
        boxes = boxes * np.array([sx, sy, sx, sy], np.float32)
    return draw_detections(image, boxes, detections.labels, detections.scores, class_names=class_names)


def output_size(size: tuple[int, int], max_side: int = OUT_SIDE) -> tuple[int, int]:
    """(h, w) of the annotated clip for frames of ``size``: long side at most ``max_side``, both
    sides even (VP8's 4:2:0 chroma needs it) and at least 2."""
    h, w = fitted_size(size, max_side)
    return max(2, h - h % 2), max(2, w - w % 2)


class ClipWriter:
    """An annotated clip on disk: ``write(rgb)`` per frame (resized to ``size``), then ``close``.
    VP8 in WebM (see the module's docstring); raises ``VideoError`` when the encoder cannot open."""

    def __init__(self, out: str | Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(out)
        if self.path.suffix.lower() != SUFFIX:
            raise VideoError(f"{self.path}: the annotated clip is WebM (VP8); name it *{SUFFIX}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.frames = 0
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*FOURCC), float(fps),
                                       (size[1], size[0]))
        if not self._writer.isOpened():
            raise VideoError(f"cannot write {self.path}: OpenCV's FFmpeg has no {FOURCC} encoder here, "
                             "or the folder is not writable")

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape[:2] != self.size:
            rgb = cv2.resize(rgb, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_annotated(clip: ClipDetections, out: str | Path, conf=None, iou: float | None = None, classes=None,
                    max_side: int = OUT_SIDE, progress: Progress | None = None, cancel: Cancel = None) -> Path:
    """Decode the clip again (no model), draw each kept frame's detections at these thresholds
    and encode them at fps / every. Returns the path; a cancelled write leaves a shorter clip."""
    size = output_size(clip.info.size, max_side)
    wanted = {f.index: i for i, f in enumerate(clip.frames)}
    last = max(wanted) if wanted else -1
    with ClipWriter(out, clip.info.fps / clip.every, size) as writer:
        for index, _, rgb in read_frames(clip.info.path, clip.every, len(clip.frames)):
            if index > last or _cancelled(cancel):
                break
            if index in wanted:
                found = clip.select(wanted[index], conf, iou, classes)
                writer.write(annotate(rgb, found, clip.class_names, size))
                if progress is not None:
                    progress(writer.frames, len(wanted))
    return Path(out)


# --------------------------------------------------------------------------------------------
# Live frames (a camera)


class LiveDetection:
    """Detection on live frames (a camera): ``__call__(rgb) -> rgb`` with the detections at the
    current thresholds drawn, plus frames/s and model milliseconds drawn in the corner.

    Thread-safe: a UI thread calls ``set_thresholds`` while a media thread calls the object. It
    never queues: whoever feeds it (streamlit-webrtc) hands it the newest frame each time it is
    free, so on a slow CPU frames are skipped, not delayed. ``stats()`` gives frames/s over the
    last ``window_s`` seconds, the last model milliseconds and the frames done.
    """

    def __init__(self, detector: Detector, conf=None, iou: float | None = None, classes=None,
                 window_s: float = 2.0, clock: Callable[[], float] = time.perf_counter) -> None:
        self.detector = detector
        self._lock = threading.Lock()
        self._thresholds = (conf, iou, classes)
        self._clock = clock
        self._window = window_s
        self._ends: list[float] = []
        self._model_ms = 0.0
        self._frames = 0
        self._found = 0

    def set_thresholds(self, conf=None, iou: float | None = None, classes=None) -> None:
        with self._lock:
            self._thresholds = (conf, iou, list(classes) if classes else None)

    def stats(self) -> dict:
        with self._lock:
            ends = self._ends  # the frames of the last ``window_s`` before the newest
            fps = (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 and ends[-1] > ends[0] else 0.0
            return {"fps": fps, "model_ms": self._model_ms, "frames": self._frames, "detections": self._found}

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        with self._lock:
            conf, iou, classes = self._thresholds
        prediction = self.detector.predict(rgb)
        found = prediction.select(conf=conf, iou=iou, classes=classes)
        drawn = draw_detections(prediction.image, found.boxes, found.labels, found.scores,
                                class_names=self.detector.class_names)
        now = self._clock()
        with self._lock:
            self._ends = [t for t in self._ends if t >= now - self._window] + [now]
            self._model_ms = prediction.timings.model_ms
            self._frames += 1
            self._found = len(found)
        stats = self.stats()
        text = f"{stats['fps']:.1f} frames/s  model {stats['model_ms']:.0f} ms  {len(found)} found"
        cv2.putText(drawn, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(drawn, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        return drawn


# --------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m yolo.video", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint (its saved operating points, if any, are the default thresholds)")
    p.add_argument("clip", help="the video to read (anything OpenCV's FFmpeg decodes: mp4, webm, mkv, avi, mov)")
    p.add_argument("--out", default=None, help=f"the annotated clip, WebM/VP8 (default: CLIP's name + "
                   f".detections{SUFFIX} beside it); refuses to overwrite without --force")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--conf", type=real(0, 1), default=None, help="confidence threshold, in [0, 1] (default: the "
                   "checkpoint's saved per-class operating point, else the detector's 0.05)")
    p.add_argument("--iou", type=real(0, 1, low_open=True), default=None, help="NMS IoU threshold, in (0, 1] (default 0.45)")
    p.add_argument("--every", type=integer(1), default=1, help="run the model on every N-th frame; the clip written "
                   "has those frames at fps / N (default 1)")
    p.add_argument("--max-frames", type=integer(1), default=None, help="stop after this many processed frames (default: all)")
    p.add_argument("--batch-size", type=integer(1, 1024), default=4, help="frames per forward pass (default 4)")
    p.add_argument("--image-size", type=image_size, default=None, help="model input side, a multiple of 32 (default: "
                   "the checkpoint's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--max-side", type=integer(2, 8192), default=OUT_SIDE, help=f"long side of the written clip (default {OUT_SIDE})")
    return p




def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from yolo.weights import CheckpointError

    args = build_parser().parse_args(argv)
    clip_path = Path(args.clip)
    out = Path(args.out) if args.out else clip_path.with_name(clip_path.stem + ".detections" + SUFFIX)
    if out.suffix.lower() != SUFFIX:
        raise SystemExit(f"--out {out}: the annotated clip is WebM (VP8); name it *{SUFFIX}")
    if out.resolve() == clip_path.resolve():
        raise SystemExit(f"--out {out} is the input clip")
    try:
        output_file(out, args.force, "--out")  # before the model runs
    except OutputError as err:
        raise SystemExit(str(err)) from None
    try:
        info = probe_clip(clip_path)
        # without --conf, the operating points saved beside the checkpoint (yolo.thresholds) if any;
        # the Detector keeps what went wrong in .warnings, printed below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = Detector.from_checkpoint(args.checkpoint, device=args.device, image_size=args.image_size,
                                                operating_points=False if args.conf is not None else None)
    except (VideoError, CheckpointError, ValueError) as err:
        raise SystemExit(str(err)) from None
    for note in detector.warnings:  # a saved thresholds file it could not use, NaN weights: one line each
        print(f"warning: {note}", file=sys.stderr)
    size = output_size(info.size, args.max_side)
    conf, iou = args.conf, args.iou
    bar = tqdm(total=None, unit="frame", desc=clip_path.name)

    def on_progress(done: int, expected: int | None) -> None:
        bar.total = expected
        bar.update(done - bar.n)

    try:
        with ClipWriter(out, info.fps / args.every, size) as writer:
            def draw(done: list[FrameCandidates], images: list[np.ndarray]) -> None:
                for frame, rgb in zip(done, images):
                    found = select_candidates(frame.candidates(), detector.class_names, info.size, detector.config,
                                              detector.class_conf, conf, iou)
                    writer.write(annotate(rgb, found, detector.class_names, size))

            clip = detect_clip(detector, clip_path, args.every, args.max_frames, args.batch_size,
                               progress=on_progress, on_frames=draw)
    except VideoError as err:
        raise SystemExit(str(err)) from None
    finally:
        bar.close()
    counts = clip.counts(conf, iou).sum(axis=0)
    model_ms = np.median([t.model_ms for t in clip.timings]) if clip.timings else float("nan")
    total_ms = np.median([t.total_ms for t in clip.timings]) if clip.timings else float("nan")
    found = ", ".join(f"{n} {c}" for n, c in zip(detector.class_names, counts) if c) or "nothing"
    thresholds = ("per-class operating point" if conf is None and detector.class_conf is not None
                  else f"conf {conf if conf is not None else detector.config.conf_threshold:g}")
    print(f"{len(clip)} frames of {info.size[1]}x{info.size[0]} ({info.codec}, {info.fps:.3g} frames/s) at "
          f"{thresholds}, iou {iou if iou is not None else detector.config.iou_threshold:g}: {found}")
    print(f"median per frame: {total_ms:.1f} ms ({model_ms:.1f} ms model); {clip.wall_s:.1f} s in all; "
          f"candidates kept {clip.nbytes / 1e6:.1f} MB")
    print(f"wrote {out} ({writer.frames} frames, {size[1]}x{size[0]}, VP8 WebM, {info.fps / args.every:.3g} frames/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
