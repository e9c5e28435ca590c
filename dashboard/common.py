"""Shared pieces of the dashboard pages: where things are, the sidebar, cached loaders, pickers.

Pages are thin views over ``yolo.*``; so is this module. Parsed data goes through
``st.cache_data`` (annotation indexes, samples, tables), models and prediction files through
``st.cache_resource``. The few places that reshape library output for display are marked.

Where things are (environment variables first, then the sidebar):
    YOLO_DATA        dataset folder (a VOCdevkit parent, VOCdevkit, or the Kaggle layout);
                     unset or empty: the built-in demo dataset
    YOLO_DEMO        where the demo dataset is written (default: <repo>/data/demo, git-ignored)
    YOLO_LOGS        the runs folder (default: <repo>/logs)
    YOLO_CHECKPOINT  checkpoint to open first (default: the newest best/last under the runs folder)
    YOLO_CACHE_DIR   where annotation indexes of read-only datasets go (yolo.data.index)

The Evaluate page's prediction files and their views live in evaluation.py; the background
demo training in jobs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `streamlit run dashboard/Home.py` puts only dashboard/ on the path
    sys.path.insert(0, str(REPO))

import hashlib
import io
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import jobs
import numpy as np
import pandas as pd
import streamlit as st

from yolo import viz
from yolo.data.datamodule import build_index
from yolo.data.demo import demo_path, ensure_demo, is_demo_complete
from yolo.data.layout import DataLayoutError, available_splits, default_splits, detect_format, load_classes
from yolo.logs import find_runs, run_info

ENV_DATA, ENV_DEMO, ENV_LOGS, ENV_CKPT = "YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT"
MAX_UPLOAD_MB = 20  # also server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = 40_000_000  # larger uploads are refused with a message (decoding them costs seconds)
UPLOAD_TYPES = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"]
DEFAULT_IMAGE_SIZE = 416
NO_CHECKPOINT, OTHER_CHECKPOINT = "(none)", "Another file…"
TRAIN_HINT = ("No trained checkpoint yet. Train the demo model from the **Home** page (a button; it runs "
              "on the CPU in the background) or in a shell: `python train.py --preset demo`.")


# ------------------------------------------------------------------------------ where things are
def logs_root() -> Path:
    return Path(os.environ.get(ENV_LOGS) or REPO / "logs").expanduser()


def demo_root() -> Path:
    return Path(os.environ.get(ENV_DEMO) or demo_path()).expanduser()


def ensure_demo_data() -> Path:
    """The demo dataset, written on first use (a few seconds, with a spinner)."""
    root = demo_root()
    if not is_demo_complete(root):
        with st.spinner(f"Writing the demo dataset to {root} (first use only, a few seconds)…"):
            ensure_demo(root)
    return root


@dataclass
class Context:
    """What the sidebar settled: the dataset, the runs folder and the checkpoint."""

    data_root: Path | None  # None when the chosen folder is not a readable dataset
    data_error: str | None
    data_format: str | None
    is_demo: bool
    classes: tuple[str, ...]
    splits: list[str]
    logs_root: Path
    checkpoint: Path | None
    image_size: int  # the checkpoint run's validation size, else 416

    def default_split(self, stage: str = "val") -> str | None:
        if self.data_root is None or not self.splits:
            return None
        try:
            wanted = default_splits(self.data_root).get(stage) or ()
        except DataLayoutError:
            wanted = ()
        return wanted[0] if wanted else self.splits[0]

    def split_choices(self) -> list[str]:
        """Split specs: short names ("val") when one year folder has them, else "2007/test"."""
        short = sorted({s.split("/")[-1] for s in self.splits})
        return short if len(short) == len(self.splits) else self.splits


def _keep(widget: str, key: str) -> None:
    st.session_state[key] = st.session_state[widget]


def persistent(widget, label: str, key: str, default: Any, options: list | None = None, **kwargs) -> Any:
    """A widget whose value survives page switches (Streamlit drops the state of widgets that a
    page does not draw): the value lives in ``st.session_state[key]`` and seeds the widget
    ``_w_<key>`` on every run. ``options``: for choice widgets; a stale value falls back to
    ``default``."""
    state = st.session_state
    if key not in state or (options is not None and state[key] not in options):
        state[key] = default
    widget_key = f"_w_{key}"
    state[widget_key] = state[key]
    args = (label, options) if options is not None else (label,)
    value = widget(*args, key=widget_key, on_change=_keep, args=(widget_key, key), **kwargs)
    state[key] = value
    return value


def checkpoint_options(root: Path) -> dict[str, Path]:
    """Label -> checkpoint for every run under ``root``, newest run first, best before last."""
    options: dict[str, Path] = {}
    for run in sorted(find_runs(root), key=lambda r: r.modified, reverse=True):
        for path in run.best_checkpoints:
            options[f"{run.label} · {path.name}"] = path
        if run.last_checkpoint is not None:
            options[f"{run.label} · last.ckpt"] = run.last_checkpoint
    return options


def run_image_size(checkpoint: Path | None) -> int:
    """Validation size from the config.yaml of the run a checkpoint belongs to (else 416)."""
    if checkpoint is None or checkpoint.parent.name != "checkpoints":
        return DEFAULT_IMAGE_SIZE
    config = run_info(checkpoint.parent.parent).config or {}
    size = config.get("val_size")
    return int(size) if isinstance(size, int) and size > 0 and size % 32 == 0 else DEFAULT_IMAGE_SIZE


def _dataset_sidebar() -> tuple[Path | None, str | None, str | None, bool]:
    folder = persistent(st.text_input, "Dataset folder", "data_folder", os.environ.get(ENV_DATA, "").strip(),
                        placeholder="empty: the built-in demo dataset",
                        help="A folder holding VOCdevkit/ (or VOCdevkit itself, or the Kaggle layout "
                             f"images/ + labels/ + train.csv). Also settable with ${ENV_DATA}.").strip()
    is_demo = not folder
    try:
        root = ensure_demo_data() if is_demo else Path(folder).expanduser().resolve()
        fmt = detect_format(root)
    except (DataLayoutError, OSError) as err:
        st.error(f"{err}\n\nClear the field to use the demo dataset.")
        return None, str(err), None, False
    st.caption(f"{'Demo dataset' if is_demo else 'Dataset'} · {fmt} layout · `{root}`")
    return root, None, fmt, is_demo


def _checkpoint_sidebar(root: Path) -> Path | None:
    found = checkpoint_options(root)
    env = os.environ.get(ENV_CKPT, "").strip()
    by_path = {str(p): label for label, p in found.items()}
    if env:
        default = by_path.get(str(Path(env).expanduser()), OTHER_CHECKPOINT)
    else:
        default = next(iter(found), NO_CHECKPOINT)
    options = [*found, OTHER_CHECKPOINT, NO_CHECKPOINT]
    choice = persistent(st.selectbox, "Checkpoint", "checkpoint_choice", default, options,
                        help=f"Checkpoints found under {root}; or any file written by train.py "
                             f"(${ENV_CKPT} sets the first choice). Loaded with weights_only=True.")
    if choice == NO_CHECKPOINT:
        return None
    if choice == OTHER_CHECKPOINT:
        text = persistent(st.text_input, "Checkpoint file", "checkpoint_path", env,
                          placeholder="path/to/best.ckpt").strip()
        if not text:
            return None
        path = Path(text).expanduser()
        if not path.is_file():
            st.error(f"No file at {path}.")
            return None
        return path
    return found[choice]


def sidebar() -> Context:
    """The dataset and checkpoint choosers shared by every page."""
    logs = logs_root()
    with st.sidebar:
        st.subheader("Data and model")
        root, error, fmt, is_demo = _dataset_sidebar()
        checkpoint = _checkpoint_sidebar(logs)
        if jobs.status(logs).running:
            st.fragment(run_every=5.0)(_sidebar_progress)(str(logs))
    classes: tuple[str, ...] = ()
    splits: list[str] = []
    if root is not None:
        try:
            classes, splits = load_classes(root), available_splits(root)
        except (DataLayoutError, OSError) as err:
            root, error = None, str(err)
    return Context(root, error, fmt, is_demo, classes, splits, logs, checkpoint, run_image_size(checkpoint))


def _sidebar_progress(root: str) -> None:
    status = jobs.status(root)
    if status.running:
        st.progress(status.progress, text=f"Demo training: {status.message}")
    else:
        st.caption(f"Demo training {status.state}; see Home.")


def page(title: str, intro: str = "") -> Context:
    """Page config, the sidebar and the title; every page starts with this."""
    st.set_page_config(page_title=f"{title} · YOLOv3 explorer", page_icon=":mag:", layout="wide")
    ctx = sidebar()
    st.title(title)
    if intro:
        st.caption(intro)
    return ctx


def require_dataset(ctx: Context) -> Path:
    """The dataset root, or a message and the end of the page."""
    if ctx.data_root is None:
        st.error(f"No dataset to show: {ctx.data_error}\n\nFix the folder in the sidebar, or clear it "
                 "to use the built-in demo dataset.")
        st.stop()
    return ctx.data_root


# ------------------------------------------------------------------------------ parsed data
@st.cache_data(ttl=10, max_entries=64, show_spinner=False)
def _stamp(root: Path, spec: str) -> str:
    """Changes when the split's files change (the index's own cache key); re-checked at most every
    10 s, since it lists the annotation and image folders."""
    from yolo.data.layout import resolve_sources

    return "|".join(s.signature() for s in resolve_sources(root, [spec]))


@st.cache_data(max_entries=16, show_spinner="Reading the annotations (cached after the first time)…")
def _index(root: str, spec: str, classes: tuple[str, ...], stamp: str):
    return build_index([root], [spec], classes, progress=False)


def load_index(ctx: Context, spec: str):
    """The labelled ``DetectionIndex`` of one split spec (cached; rebuilt when files change)."""
    root = require_dataset(ctx)
    try:
        return _index(str(root), spec, ctx.classes, _stamp(root, spec))
    except DataLayoutError as err:
        st.error(str(err))
        st.stop()


@st.cache_data(max_entries=128, show_spinner=False)
def _sample(root: str, spec: str, classes: tuple[str, ...], stamp: str, i: int) -> dict:
    from yolo.data.datasets import DetectionDataset

    return DetectionDataset(_index(root, spec, classes, stamp))[i]


def load_sample(ctx: Context, spec: str, i: int) -> dict:
    """Sample i of a split at full resolution (the data contract: image, boxes, labels, ...)."""
    root = require_dataset(ctx)
    return _sample(str(root), spec, ctx.classes, _stamp(root, spec), int(i))


@st.cache_data(max_entries=8, show_spinner=False)
def _box_table(root: str, spec: str, classes: tuple[str, ...], stamp: str) -> pd.DataFrame:
    index = _index(root, spec, classes, stamp)
    owner = index.box_image
    frame = pd.DataFrame(index.boxes, columns=["x1", "y1", "x2", "y2"])
    frame.insert(0, "image", index.ids[owner] if len(owner) else [])
    frame.insert(1, "class", [classes[i] for i in index.labels])
    frame["difficult"] = index.difficult
    frame["image_h"], frame["image_w"] = index.sizes[owner, 0], index.sizes[owner, 1]
    # Display statistics of the boxes (plain column arithmetic for the histograms).
    frame["width"], frame["height"] = frame.x2 - frame.x1, frame.y2 - frame.y1
    frame["relative_size"] = np.sqrt(frame.width * frame.height / (frame.image_w * frame.image_h))
    frame["aspect"] = frame.width / frame.height.clip(lower=1e-6)
    return frame


def box_table(ctx: Context, spec: str) -> pd.DataFrame:
    """One row per object of a split: image, class, box, image size, relative size, aspect."""
    root = require_dataset(ctx)
    return _box_table(str(root), spec, ctx.classes, _stamp(root, spec))


@st.cache_data(max_entries=4, show_spinner="Checking the dataset…")
def _report(root: str, specs: tuple[str, ...], stamp: str):
    from yolo.data.check import check_dataset

    return check_dataset(root, list(specs), progress=False)


def dataset_report(ctx: Context, specs: list[str]):
    """``yolo.data.check.check_dataset`` of the given splits (cached)."""
    root = require_dataset(ctx)
    return _report(str(root), tuple(specs), "|".join(_stamp(root, s) for s in specs))


# ------------------------------------------------------------------------------ models
@dataclass
class Model:
    detector: Any  # yolo.detect.Detector
    label: str
    trained: bool
    key: str  # identity for caches: file, its mtime and the input size
    lock: threading.Lock


@st.cache_resource(max_entries=3, show_spinner="Loading the checkpoint…")
def _checkpoint_detector(path: str, mtime_ns: int, image_size: int):
    from yolo.detect import Detector

    return Detector.from_checkpoint(path, image_size=image_size)


@st.cache_resource(max_entries=2, show_spinner="Building an untrained model…")
def _untrained_detector(classes: tuple[str, ...], width: float, image_size: int):
    import torch

    from yolo.detect import Detector
    from yolo.model import YOLOv3

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = YOLOv3(len(classes), width)
    return Detector(model, list(classes), image_size)


@st.cache_resource
def _lock(key: str) -> threading.Lock:
    return threading.Lock()


def load_model(ctx: Context, allow_untrained: bool = True) -> Model:
    """The chosen checkpoint as a cached Detector; without one, explain how to get one and offer
    an untrained model (random weights) so the page still shows its mechanics."""
    from yolo.checkpoint import CheckpointError

    if ctx.checkpoint is not None:
        path = ctx.checkpoint
        try:
            detector = _checkpoint_detector(str(path), path.stat().st_mtime_ns, ctx.image_size)
        except (CheckpointError, OSError) as err:
            st.error(f"Cannot use {path}: {err}\n\nPick another checkpoint in the sidebar.")
            st.stop()
        key = f"{path}|{path.stat().st_mtime_ns}|{ctx.image_size}"
        return Model(detector, str(path), True, key, _lock(key))
    st.info(TRAIN_HINT)
    st.page_link("Home.py", label="Go to Home to train the demo model", icon=":material/model_training:")
    if not allow_untrained or not ctx.classes:
        st.stop()
    if not st.toggle("Meanwhile, use an untrained model (random weights)", value=True, key="untrained",
                     help="Shows how the page works; its detections and maps are noise."):
        st.stop()
    detector = _untrained_detector(ctx.classes, 0.25, ctx.image_size)
    key = f"untrained|{'/'.join(ctx.classes)}|0.25|{ctx.image_size}"
    return Model(detector, "untrained YOLOv3 (width 0.25, random weights)", False, key, _lock(key))


def check_classes(model: Model, ctx: Context) -> bool:
    """Warn when the model's classes differ from the dataset's (ground truth then cannot match)."""
    names = tuple(model.detector.class_names)
    if names == tuple(ctx.classes):
        return True
    st.warning(f"The model knows {len(names)} classes ({', '.join(names[:6])}{'…' * (len(names) > 6)}) "
               f"but the dataset has {len(ctx.classes)} ({', '.join(ctx.classes[:6])}"
               f"{'…' * (len(ctx.classes) > 6)}). Ground truth is shown but cannot be compared. "
               "Choose a matching dataset or checkpoint in the sidebar.")
    return False


# ------------------------------------------------------------------------------ images
@dataclass
class Picked:
    """The image a page works on, with its ground truth when it comes from the dataset."""

    key: str
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: np.ndarray | None = None  # (N, 4) pixel xyxy
    labels: np.ndarray | None = None  # (N,) int64 into Context.classes


def read_upload(name: str, data: bytes) -> tuple[np.ndarray | None, str | None]:
    """Uploaded bytes -> (RGB image, None) or (None, a message saying what to do)."""
    from PIL import Image, UnidentifiedImageError

    from yolo.detect import load_image

    size_mb = len(data) / 2**20
    if size_mb > MAX_UPLOAD_MB:
        return None, f"**{name}** is {size_mb:.1f} MB; the limit is {MAX_UPLOAD_MB} MB. Resize or recompress it."
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None, (f"**{name}** is not an image that can be read. Upload a JPEG, PNG, BMP, WebP or "
                      "TIFF photo.")
    if width * height > MAX_PIXELS:
        return None, (f"**{name}** is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit is "
                      f"{MAX_PIXELS / 1e6:.0f}. Downscale it first (the model sees it at about 416 pixels anyway).")
    try:
        return load_image(data), None
    except (ValueError, OSError, TypeError, Image.DecompressionBombError) as err:
        return None, f"**{name}** could not be decoded ({err}). Try re-saving it as JPEG or PNG."


def pick_image(ctx: Context, prefix: str) -> Picked | None:
    """Dataset sample (split + index) or an upload; the choice is shared by the pages."""
    source = persistent(st.radio, "Image", "image_source", "Dataset sample", ["Dataset sample", "Upload"],
                        horizontal=True)
    if source == "Upload":
        upload = st.file_uploader("Image file", type=UPLOAD_TYPES, key=f"{prefix}_upload",
                                  help=f"Up to {MAX_UPLOAD_MB} MB and {MAX_PIXELS / 1e6:.0f} megapixels.")
        if upload is None:
            st.info("Upload a photo, or switch to a dataset sample.")
            return None
        data = upload.getvalue()
        image, message = read_upload(upload.name, data)
        if message:
            st.error(message)
            return None
        return Picked("upload:" + hashlib.sha1(data).hexdigest(), upload.name, image)
    require_dataset(ctx)
    choices = ctx.split_choices()
    default = ctx.default_split("val")
    left, right = st.columns([1, 2])
    with left:
        spec = persistent(st.selectbox, "Split", "image_split", default if default in choices else choices[0],
                          choices)
    index = load_index(ctx, spec)
    if not len(index):
        st.warning(f"Split {spec} has no usable images; see the Dataset page's report.")
        return None
    if st.session_state.get("image_number", 0) >= len(index):
        st.session_state["image_number"] = 0
    with right:
        i = persistent(st.number_input, f"Sample (0 to {len(index) - 1})", "image_number", 0,
                       min_value=0, max_value=len(index) - 1, step=1)
    sample = load_sample(ctx, spec, int(i))
    return Picked(f"{ctx.data_root}|{spec}|{sample['id']}", f"{spec} · {sample['id']}", sample["image"],
                  sample["boxes"], sample["labels"])


def draw(image: np.ndarray, detections=None, class_names=None, gt: Picked | None = None,
         gt_names=None) -> np.ndarray:
    """Ground truth dashed (labels below), detections solid (labels above), via ``yolo.viz``."""
    out = image
    if gt is not None and gt.boxes is not None and len(gt.boxes):
        out = viz.draw_ground_truth(out, gt.boxes, gt.labels, class_names=gt_names)
    if detections is not None and len(detections):
        out = viz.draw_detections(out, detections.boxes, detections.labels, detections.scores,
                                  class_names=class_names)
    return out


def _restore(model: Model, picked: Picked) -> Any:
    """Under ``model.lock``: make the picked image the detector's last one (running the model only
    when this session has not already done so) and return the forward's timings."""
    state = st.session_state
    key = (model.key, picked.key)
    saved = state.get("_prediction")
    if saved is not None and saved[0] == key:
        model.detector.last = saved[1]
        return saved[2]
    model.detector.predict(picked.image)
    state["_prediction"] = (key, model.detector.last, model.detector.timings)
    return model.detector.timings


def predict(model: Model, picked: Picked, conf: float, iou: float, classes: list[str] | None):
    """Detections of the picked image at the given thresholds; the model runs only when the image
    (or model) changed, otherwise ``Detector.update`` re-filters the kept candidates.

    Returns (detections, forward timings of the image, post-processing ms of this call).
    """
    with model.lock:
        timings = _restore(model, picked)
        found = model.detector.update(conf=conf, iou=iou, classes=classes or None)
        return found, timings, model.detector.timings.postprocess_ms


def cam_maps(model: Model, picked: Picked, conf: float, iou: float, layers: list[str], method: str,
             target: Any) -> dict[str, np.ndarray]:
    """``yolo.cam.sweep`` of the picked image (maps in [0, 1], original pixels), remembered per
    setting so that opacity changes and reruns do not recompute it."""
    from yolo import cam

    key = (model.key, picked.key, conf, iou, tuple(layers), method, repr(target))
    cams = st.session_state.setdefault("_cams", {})
    if key not in cams:
        with model.lock:
            _restore(model, picked)
            model.detector.update(conf=conf, iou=iou, classes=None)
            maps = cam.sweep(model.detector, layers, method, target)
        if len(cams) >= 6:  # a sweep is 10 maps of the photo's size
            cams.pop(next(iter(cams)))
        cams[key] = maps
    return cams[key]


def threshold_sliders(prefix: str, conf: float = 0.25, iou: float = 0.45) -> tuple[float, float]:
    c1, c2 = st.columns(2)
    conf = c1.slider("Confidence threshold", 0.0, 1.0, conf, 0.01, key=f"{prefix}_conf",
                     help="score = objectness x class probability; boxes at or below it are dropped")
    iou = c2.slider("NMS IoU threshold", 0.05, 0.95, iou, 0.05, key=f"{prefix}_iou",
                    help="a box overlapping a higher-scoring box of its class by more is suppressed")
    return conf, iou


# ------------------------------------------------------------------------------ the demo job
def training_panel(ctx: Context, show_button: bool = True) -> None:
    """Button that runs `python train.py --preset demo` in the background, and its live progress."""
    status = jobs.status(ctx.logs_root)
    if show_button and not status.running:
        label = "Train the demo model" if ctx.checkpoint is None else "Train the demo model again"
        if st.button(label, type="primary" if ctx.checkpoint is None else "secondary", key="train_demo",
                     help="Runs `python train.py --preset demo` in the background, on the CPU; a progress bar "
                          "shows how far it is, and the dashboard stays usable meanwhile."):
            try:
                jobs.start(ctx.logs_root, jobs.demo_command(ctx.logs_root, ensure_demo_data()))
            except (RuntimeError, OSError) as err:
                st.error(f"Could not start training: {err}")
            status = jobs.status(ctx.logs_root)
    if status.state != "none":
        run_every = 2.0 if status.running else None
        st.fragment(run_every=run_every)(_job_progress)(str(ctx.logs_root))


def _job_progress(root: str) -> None:
    status = jobs.status(root)
    was_running = st.session_state.get("_job_running", False)
    st.session_state["_job_running"] = status.running
    if status.running:
        st.progress(status.progress, text=f"Training the demo model: {status.message}")
        if st.button("Stop training", key="stop_demo"):
            jobs.stop(root)
            st.rerun(scope="app")
    elif status.state == "finished":
        where = f" in `{status.run_folder}`" if status.run_folder else ""
        st.success(f"The demo model is trained{where}; its checkpoint is now in the sidebar.")
        if was_running:  # refresh the whole page so the sidebar lists the new checkpoint
            st.rerun(scope="app")
    elif status.state == "stopped":
        st.warning("Training was stopped. Start it again with the button; `last.ckpt` (if any) is usable.")
    else:
        st.error(f"Training failed: {status.message}. The end of its output is below; the same "
                 "command in a shell (`python train.py --preset demo`) shows the full story.")
    if status.log_tail:
        with st.expander("Training output", expanded=status.state == "failed"):
            st.code(status.log_tail, language=None)


# ------------------------------------------------------------------------------ augmentations
@st.cache_resource(max_entries=4)
def _train_dataset(root: str, spec: str, classes: tuple[str, ...], stamp: str, mosaic_p: float, colour: bool):
    from yolo.data.datasets import DetectionDataset
    from yolo.data.mosaic import TrainDataset
    from yolo.data.transforms import AugConfig

    return TrainDataset(DetectionDataset(_index(root, spec, classes, stamp)), mosaic_p=mosaic_p,
                        aug=AugConfig(colour=colour), partners="dataset")


def train_dataset(ctx: Context, spec: str, mosaic_p: float = 0.75, colour: bool = True):
    """The training dataset (mosaic wrapper + ``train_transforms``) as training builds it;
    ``colour=False`` leaves out the colour jitter (geometry only)."""
    root = require_dataset(ctx)
    return _train_dataset(str(root), spec, ctx.classes, _stamp(root, spec), mosaic_p, colour)


def assigned_cells(boxes: np.ndarray, labels: np.ndarray, size: int, classes) -> pd.DataFrame:
    """The anchor slots ``yolo.targets.encode`` gives the boxes of one image at ``size``: one row
    per slot that owns a box ("assigned") or is ignored, with stride, grid, anchor, row, column."""
    import torch

    from yolo.targets import assignments

    rows = assignments(torch.as_tensor(np.asarray(boxes, dtype=np.float32)),
                       torch.as_tensor(np.asarray(labels, dtype=np.int64)), size)
    table = [{"stride": r["stride"], "grid": r["grid"], "anchor": r["anchor"],
              "anchor w x h": "{:.2f} x {:.2f}".format(*r["anchor_wh"]), "row": r["row"],
              "col": r["col"], "state": r["state"],
              "class": classes[r["label"]] if r["label"] >= 0 else ""} for r in rows]
    return pd.DataFrame(table, columns=["stride", "grid", "anchor", "anchor w x h", "row", "col", "state", "class"])


# ------------------------------------------------------------------------------ training logs
@st.cache_resource(max_entries=8, show_spinner="Reading the run logs…")  # shared, not copied: read-only
def _metrics(runs: tuple[tuple[str, str, float], ...]) -> tuple[pd.DataFrame, list[str]]:
    from yolo.logs import read_runs, run_info

    warnings: list[str] = []
    frame = read_runs([run_info(path, root) for path, root, _ in runs], warnings)
    return frame, warnings


def read_run_metrics(runs, root: Path) -> tuple[pd.DataFrame, list[str]]:
    """Tidy metrics of the given ``RunInfo``s and the reader's warnings; re-read when a run's
    files change (a run that is still writing is read again on the next rerun)."""
    return _metrics(tuple((str(r.path), str(root), r.modified) for r in runs))


def fmt(value: float, digits: int = 3) -> str:
    """A number for st.metric; "n/a" when undefined (e.g. precision with no detection)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
