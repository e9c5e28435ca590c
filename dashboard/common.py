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

import errno
import hashlib
import io
import logging
import math
import os
import stat
import time
from dataclasses import dataclass
from typing import Any

import jobs
import numpy as np
import pandas as pd
import streamlit as st

from yolo import viz
from yolo.config import DEFAULT_IMAGE_SIZE
from yolo.data.datamodule import build_index
from yolo.data.demo import demo_path, ensure_demo, is_demo_complete
from yolo.data.layout import DataLayoutError, available_splits, default_splits, detect_format, load_classes
from yolo.logs import find_runs, run_info

ENV_DATA, ENV_DEMO, ENV_LOGS, ENV_CKPT = "YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT"
MAX_UPLOAD_MB = 20  # also server.maxUploadSize in dashboard/.streamlit/config.toml
MAX_PIXELS = 40_000_000  # larger uploads are refused with a message (decoding them costs seconds)
UPLOAD_TYPES = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"]
NO_CHECKPOINT, OTHER_CHECKPOINT = "(none)", "Another file…"
STAGE_SPLITS = {"train": ("train", "trainval"), "val": ("val", "test"), "test": ("test", "val")}
DISPLAY_SIDE = 1024  # long side of a dataset sample or upload as shown and given to the model (input <= 608)
THUMB_SIDE = 384  # long side of a thumbnail in the Dataset and Augmentations grids
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
    image_size: int  # the checkpoint's validation size (run_image_size), else 416

    def default_split(self, stage: str = "val") -> str | None:
        """The split a page opens on for ``stage`` ("train", "val" or "test"): always one of
        ``split_choices()`` (None when there is none), whichever splits the folder has; e.g. a
        folder with only a val split opens every page on val."""
        choices = self.split_choices()
        if self.data_root is None or not choices:
            return None
        try:
            wanted = list(default_splits(self.data_root).get(stage) or ())
        except DataLayoutError:  # no train/trainval split: fall back on the names below
            wanted = []
        names = [*wanted, *STAGE_SPLITS.get(stage, ())]
        by_name = {c.split("/")[-1]: c for c in reversed(choices)}  # short name -> first choice
        return next((n if n in choices else by_name[n] for n in names if n in choices or n in by_name),
                    choices[0])

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


# Weight files placed in the runs folder itself: Darknet .weights, the course's checkpoint.pth.tar, exports.
WEIGHT_FILES = ("*.weights", "*.pth.tar", "*.pth", "*.pt", "*.ckpt")


def checkpoint_options(root: Path) -> dict[str, Path]:
    """Label -> checkpoint for every run under ``root``, newest run first, best before last; then
    the weight files lying in ``root`` itself (``WEIGHT_FILES``)."""
    options: dict[str, Path] = {}
    for run in sorted(find_runs(root), key=lambda r: r.modified, reverse=True):
        for path in run.best_checkpoints:
            options[f"{run.label} · {path.name}"] = path
        if run.last_checkpoint is not None:
            options[f"{run.label} · last.ckpt"] = run.last_checkpoint
    for path in sorted({p for pattern in WEIGHT_FILES for p in root.glob(pattern) if p.is_file()}):
        options.setdefault(path.name, path)
    return options


def run_image_size(checkpoint: Path | None) -> int:
    """The input size a checkpoint was validated at: saved in its hyper-parameters ("image_size");
    for older checkpoints the "val_size" of its run folder's config.yaml; else 416."""
    if checkpoint is None:
        return DEFAULT_IMAGE_SIZE
    try:
        size = _saved_image_size(str(checkpoint), checkpoint.stat().st_mtime_ns)
    except OSError:
        size = None
    if size is not None:
        return size
    if checkpoint.parent.name != "checkpoints":
        return DEFAULT_IMAGE_SIZE
    config = run_info(checkpoint.parent.parent).config or {}
    size = config.get("val_size")
    return int(size) if isinstance(size, int) and size > 0 and size % 32 == 0 else DEFAULT_IMAGE_SIZE


@st.cache_data(max_entries=16, show_spinner=False)
def _saved_image_size(path: str, mtime_ns: int) -> int | None:
    from yolo.checkpoint import saved_image_size

    return saved_image_size(path)


def _shown(text: str, limit: int = 80) -> str:
    """A typed path for a message: control characters escaped, the middle of a long one elided."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-limit // 2:]} ({len(text)} characters)"


def typed_path(text: str, kind: str) -> tuple[Path | None, str | None]:
    """A path the user typed -> (the resolved path, None), or (None, a one-line message saying
    what is wrong): a NUL byte, a name or path too long for the file system, an unknown ``~user``,
    nothing there, or a file where a folder is expected (``kind="folder"``) or the reverse
    (``kind="file"``). Never raises."""
    if "\x00" in text:
        return None, f"`{_shown(text)}` holds a NUL character, which no file name can contain."
    try:
        path = Path(text).expanduser()
        st_mode = os.stat(path).st_mode  # raises for too long, missing, not permitted, loops
        path = path.resolve()
    except RuntimeError as err:  # expanduser of an unknown ~user
        return None, f"`{_shown(text)}`: {err}"
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            return None, f"`{_shown(text)}` is too long for the file system (a name or the whole path)."
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return None, f"No {kind} at `{_shown(text)}`."
        return None, f"`{_shown(text)}` cannot be opened: {err.strerror or err}."
    if kind == "folder" and not stat.S_ISDIR(st_mode):
        return None, f"`{_shown(text)}` is a file; give the folder that holds it."
    if kind == "file" and not stat.S_ISREG(st_mode):
        return None, f"`{_shown(text)}` is {'a folder' if stat.S_ISDIR(st_mode) else 'not a regular file'}; give a file."
    return path, None


def _dataset_sidebar() -> tuple[Path | None, str | None, str | None, bool]:
    folder = persistent(st.text_input, "Dataset folder", "data_folder", os.environ.get(ENV_DATA, "").strip(),
                        placeholder="empty: the built-in demo dataset",
                        help="A folder holding VOCdevkit/ (or VOCdevkit itself, or the Kaggle layout "
                             f"images/ + labels/ + train.csv). Also settable with ${ENV_DATA}.").strip()
    is_demo = not folder
    try:
        root, message = (ensure_demo_data(), None) if is_demo else typed_path(folder, "folder")
        if message:
            raise DataLayoutError(message)
        fmt = detect_format(root)
    except (DataLayoutError, OSError) as err:
        st.error(f"{err}\n\nClear the field to use the demo dataset.")
        return None, str(err), None, False
    st.caption(f"{'Demo dataset' if is_demo else 'Dataset'} · {fmt} layout · `{root}`")
    return root, None, fmt, is_demo


def _checkpoint_sidebar(root: Path) -> Path | None:
    found = checkpoint_options(root)
    env = os.environ.get(ENV_CKPT, "").strip()
    by_path = {str(p.resolve()): label for label, p in found.items()}
    if env:
        env_path, _ = typed_path(env, "file")  # resolved; None when it is not a file
        default = by_path.get(str(env_path), OTHER_CHECKPOINT)
    else:
        default = next(iter(found), NO_CHECKPOINT)
    options = [*found, OTHER_CHECKPOINT, NO_CHECKPOINT]
    choice = persistent(st.selectbox, "Checkpoint", "checkpoint_choice", default, options,
                        help=f"Checkpoints found under {root} (and weight files in it); or any file written by "
                             "train.py, the course's checkpoint.pth.tar or a Darknet .weights file "
                             f"(${ENV_CKPT} sets the first choice). Loaded with weights_only=True.")
    if choice == NO_CHECKPOINT:
        return None
    if choice == OTHER_CHECKPOINT:
        text = persistent(st.text_input, "Checkpoint file", "checkpoint_path", env,
                          placeholder="path/to/best.ckpt").strip()
        if not text:
            return None
        path, message = typed_path(text, "file")
        if message:
            st.error(message)
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
    """The dataset root (with at least one split), or a message and the end of the page."""
    if ctx.data_root is None:
        st.error(f"No dataset to show: {ctx.data_error}\n\nFix the folder in the sidebar, or clear it "
                 "to use the built-in demo dataset.")
        st.stop()
    if not ctx.splits:
        st.error(f"`{ctx.data_root}` has no split list (VOC: ImageSets/Main/<split>.txt; Kaggle: <split>.csv), "
                 "so there is nothing to show.")
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


@st.cache_data(max_entries=64, show_spinner=False)
def _view(root: str, spec: str, classes: tuple[str, ...], stamp: str, i: int, max_side: int) -> dict:
    from yolo.data.datasets import DetectionDataset

    dataset = DetectionDataset(_index(root, spec, classes, stamp))
    j, image = dataset.load_image(i, max_side)  # JPEG: decoded at 1/2, 1/4 or 1/8 where that is enough
    sample = dataset.sample(j, None)
    orig_size = tuple(int(v) for v in dataset.index.sizes[j])
    sample["image"], sample["boxes"] = viz.fit(image, sample["boxes"], max_side, frame=orig_size)
    sample["orig_size"] = orig_size
    return sample


def load_view(ctx: Context, spec: str, i: int, max_side: int = DISPLAY_SIDE) -> dict:
    """Sample i of a split for display: long side at most ``max_side`` (decoded reduced where the
    format allows, never the full photo in memory), boxes mapped onto it, and ``orig_size`` (h, w)
    of the file. Memory per view is at most max_side^2 x 3 bytes (3 MB at 1024)."""
    root = require_dataset(ctx)
    return _view(str(root), spec, ctx.classes, _stamp(root, spec), int(i), int(max_side))


@st.cache_data(max_entries=8, show_spinner=False)
def _box_table(root: str, spec: str, classes: tuple[str, ...], stamp: str) -> pd.DataFrame:
    index = _index(root, spec, classes, stamp)
    owner = index.box_image
    frame = pd.DataFrame(index.boxes, columns=["x1", "y1", "x2", "y2"])
    frame.insert(0, "image", index.ids[owner] if len(owner) else [])
    frame.insert(1, "class", [classes[i] for i in index.labels])
    frame["difficult"] = index.difficult
    frame["image_h"], frame["image_w"] = index.sizes[owner, 0], index.sizes[owner, 1]
    from yolo.evaluate.tables import box_statistics

    stats = box_statistics(index.boxes, index.sizes[owner])  # width, height, relative size, aspect
    return pd.concat([frame, stats.set_index(frame.index)], axis=1)


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
    detector: Any  # yolo.detect.Detector (stateless: shared by every session)
    label: str
    trained: bool
    key: str  # identity for caches: file, its mtime and the input size
    thresholds: Any = None  # yolo.evaluate.OperatingPoints saved beside the checkpoint, if any


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


def checkpoint_model(path: Path, image_size: int, what_next: str = "Pick another checkpoint in the sidebar.",
                     stop: bool = True) -> Model | None:
    """A checkpoint file as a cached Detector (with its saved operating points); a file that
    cannot be used shows one message (``what_next`` after it) and ends the page (``stop``) or
    gives None."""
    from yolo.checkpoint import CheckpointError

    try:
        mtime = path.stat().st_mtime_ns
        detector = _checkpoint_detector(str(path), mtime, image_size)
    except (CheckpointError, OSError) as err:
        st.error(f"Cannot use {path}: {err}\n\n{what_next}")
        return st.stop() if stop else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError, EOFError) as err:
        # A file the loader did not foresee: a message here, the traceback in the console.
        logging.getLogger(__name__).exception("loading checkpoint %s", path)
        st.error(f"Cannot use {path}: not a checkpoint this project can read "
                 f"({type(err).__name__}: {err}).\n\n{what_next}")
        return st.stop() if stop else None
    key = f"{path}|{mtime}|{image_size}"
    return Model(detector, str(path), True, key, operating_points(path, detector.class_names))


def load_model(ctx: Context, allow_untrained: bool = True) -> Model:
    """The chosen checkpoint as a cached Detector; without one, explain how to get one and offer
    an untrained model (random weights) so the page still shows its mechanics."""
    if ctx.checkpoint is not None:
        return checkpoint_model(ctx.checkpoint, ctx.image_size)
    st.info(TRAIN_HINT)
    st.page_link("Home.py", label="Go to Home to train the demo model", icon=":material/model_training:")
    if not allow_untrained or not ctx.classes:
        st.stop()
    if not st.toggle("Meanwhile, use an untrained model (random weights)", value=True, key="untrained",
                     help="Shows how the page works; its detections and maps are noise."):
        st.stop()
    detector = _untrained_detector(ctx.classes, 0.25, ctx.image_size)
    key = f"untrained|{'/'.join(ctx.classes)}|0.25|{ctx.image_size}"
    return Model(detector, "untrained YOLOv3 (width 0.25, random weights)", False, key)


def operating_points(checkpoint: Path, class_names):
    """The operating points saved beside a checkpoint (Evaluate's button writes them), or None;
    a broken file is reported and ignored."""
    from yolo.evaluate.operating import operating_points_path, read_operating_points

    path = operating_points_path(checkpoint)
    if not path.is_file():
        return None
    try:
        return read_operating_points(path, class_names)
    except ValueError as err:
        st.warning(f"Ignoring the saved thresholds: {err}")
        return None


def check_classes(model: Model, ctx: Context, consequence: str) -> bool:
    """Warn when the model's classes differ from the dataset's; ``consequence`` says what the
    page does about it (each page its own truth: e.g. "Ground truth is drawn but not compared.")."""
    names = tuple(model.detector.class_names)
    if names == tuple(ctx.classes):
        return True
    st.warning(f"The model knows {len(names)} classes ({', '.join(names[:6])}{'…' * (len(names) > 6)}) "
               f"but the dataset has {len(ctx.classes)} ({', '.join(ctx.classes[:6])}"
               f"{'…' * (len(ctx.classes) > 6)}). {consequence} "
               "Choose a matching dataset or checkpoint in the sidebar.")
    return False


# ------------------------------------------------------------------------------ images
@dataclass
class Picked:
    """The image a page works on, with its ground truth when it comes from the dataset."""

    key: str
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB, long side at most DISPLAY_SIDE
    boxes: np.ndarray | None = None  # (N, 4) pixel xyxy in ``image``
    labels: np.ndarray | None = None  # (N,) int64 into Context.classes


def read_upload(name: str, data: bytes) -> tuple[np.ndarray | None, str | None]:
    """Uploaded bytes -> (RGB image, long side at most DISPLAY_SIDE, None) or (None, a message
    saying what to do)."""
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
        with Image.open(io.BytesIO(data)) as pil:
            if pil.format == "JPEG":  # libjpeg decodes at 1/2, 1/4 or 1/8 straight away
                height, width = viz.fitted_size((height, width), DISPLAY_SIDE)
                pil.draft(None, (width, height))
            image = load_image(pil)
        return viz.fit(image, None, DISPLAY_SIDE)[0], None
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
    sample = load_view(ctx, spec, int(i), DISPLAY_SIDE)  # the model letterboxes it to <= 608 anyway
    shown = sample["image"].shape[:2]
    size = "" if shown == sample["orig_size"] else " (shown at {1} x {0} of {3} x {2})".format(*shown, *sample["orig_size"])
    return Picked(f"{ctx.data_root}|{spec}|{sample['id']}|{DISPLAY_SIDE}", f"{spec} · {sample['id']}{size}",
                  sample["image"], sample["boxes"], sample["labels"])


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


@st.cache_resource(max_entries=16, show_spinner=False)
def _prediction(model_key: str, image_key: str, _detector, _image):
    return _detector.predict(_image)


def prediction(model: Model, picked: Picked):
    """The picked image's ``yolo.detect.Prediction``, cached once per (model, image) for every
    session: the model runs only when either changes. Predictions are immutable and the Detector
    keeps nothing, so sessions share both without a lock."""
    return _prediction(model.key, picked.key, model.detector, picked.image)


def predict(model: Model, picked: Picked, conf, iou: float, classes: list[str] | None):
    """Detections of the picked image at the given thresholds (``conf``: one, or one per class);
    moving a slider only re-selects from the kept candidates.

    Returns (detections, the forward's timings, milliseconds of this selection)."""
    found = prediction(model, picked)
    start = time.perf_counter()
    detections = found.select(conf=conf, iou=iou, classes=classes or None)
    return detections, found.timings, (time.perf_counter() - start) * 1e3


def cam_maps(model: Model, picked: Picked, conf, iou: float, layers: list[str], method: str,
             target: Any) -> dict[str, np.ndarray]:
    """``yolo.cam.sweep`` of the picked image (maps in [0, 1], original pixels) for the detections
    ``target`` picks (``yolo.cam.detection_target``) at these thresholds; remembered per setting
    so that opacity changes and reruns do not recompute it."""
    from yolo import cam

    key = (model.key, picked.key, repr(conf), iou, tuple(layers), method, repr(target))
    cams = st.session_state.setdefault("_cams", {})
    if key not in cams:
        found = prediction(model, picked)
        goal = None if method in cam.GRADIENT_FREE else cam.detection_target(found.select(conf=conf, iou=iou), target)
        maps = cam.sweep(model.detector.model, found, goal, layers, method)
        if len(cams) >= 6:  # a sweep is 10 maps of the photo's size
            cams.pop(next(iter(cams)))
        cams[key] = maps
    return cams[key]


def starting_threshold(model: Model, default: float) -> tuple[float, str]:
    """Where the confidence slider starts and why: the global threshold of the model's saved
    operating point when it has one, else ``default``."""
    if model.thresholds is not None:
        return round(float(model.thresholds.global_threshold), 2), (
            f"starts at {model.thresholds.global_threshold:.2f}, the single threshold of best F1 saved for this "
            f"checkpoint on the Evaluate page ({model.thresholds.rule}); per-class thresholds are one toggle away")
    if not model.trained:
        return default, (f"starts at {default:.2f}: an untrained model's scores are tiny, so a low threshold shows "
                         "its mechanics")
    return default, (f"starts at {default:.2f}, a fixed default: no operating point is saved for this checkpoint yet "
                     "(the Evaluate page's Operating points tab finds and saves the best one)")


def threshold_sliders(prefix: str, conf: float = 0.25, iou: float = 0.45, why: str | None = None) -> tuple[float, float]:
    c1, c2 = st.columns(2)
    conf = c1.slider("Confidence threshold", 0.0, 1.0, conf, 0.01, key=f"{prefix}_conf",
                     help="score = objectness x class probability; boxes at or below it are dropped")
    iou = c2.slider("NMS IoU threshold", 0.05, 0.95, iou, 0.05, key=f"{prefix}_iou",
                    help="a box overlapping a higher-scoring box of its class by more is suppressed")
    if why:
        st.caption(f"Confidence threshold: {why}.")
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
