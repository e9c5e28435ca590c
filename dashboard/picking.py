"""The image a page works on: a dataset sample or an upload (checked before it is decoded), and
its drawing with ground truth and detections.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from context import Context
from frame import require_dataset
from loaders import DISPLAY_SIDE, load_index, load_view

from yolo import viz

MAX_UPLOAD_MB = 20  # also server.maxUploadSize in dashboard/.streamlit/config.toml
MAX_PIXELS = 40_000_000  # larger uploads are refused with a message (decoding them costs seconds)
VIDEO_FRAME = "_video_frame"  # session_state: the Picked frame Detect's Video tab handed over
UPLOAD_TYPES = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"]


def _keep(widget: str, key: str) -> None:
    st.session_state[key] = st.session_state[widget]


def shared_widget(widget, label: str, key: str, default: Any, options: list | None = None, **kwargs) -> Any:
    """A widget drawn by several pages that shows one value on all of them (the image that Detect
    and GradCAM work on). Streamlit gives a widget inside a page an identity of that page, and
    forgets it on the others, so the value lives in ``st.session_state[key]`` and seeds the
    widget ``_w_<key>`` on every run. ``options``: for choice widgets; a stale value falls back
    to ``default``. (The sidebar needs none of this: Home.py draws it on every page.)"""
    state = st.session_state
    if key not in state or (options is not None and state[key] not in options):
        state[key] = default
    widget_key = f"_w_{key}"
    state[widget_key] = state[key]
    args = (label, options) if options is not None else (label,)
    value = widget(*args, key=widget_key, on_change=_keep, args=(widget_key, key), **kwargs)
    state[key] = value
    return value


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

    from yolo.imageio import load_image

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
    video_frame = st.session_state.get(VIDEO_FRAME)
    sources = ["Dataset sample", "Upload"] + (["Video frame"] if video_frame is not None else [])
    source = shared_widget(st.radio, "Image", "image_source", "Dataset sample", sources, horizontal=True)
    if source == "Video frame":
        return video_frame
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
        spec = shared_widget(st.selectbox, "Split", "image_split", default if default in choices else choices[0],
                          choices)
    index = load_index(ctx, spec)
    if not len(index):
        st.warning(f"Split {spec} has no usable images; see the Dataset page's report.")
        return None
    if st.session_state.get("image_number", 0) >= len(index):
        st.session_state["image_number"] = 0
    with right:
        i = shared_widget(st.number_input, f"Sample (0 to {len(index) - 1})", "image_number", 0,
                       min_value=0, max_value=len(index) - 1, step=1)
    sample = load_view(ctx, spec, int(i), DISPLAY_SIDE)  # the model letterboxes it to <= 608 anyway
    shown = sample["image"].shape[:2]
    size = "" if shown == sample["orig_size"] else " (shown at {1} x {0} of {3} x {2})".format(*shown, *sample["orig_size"])
    return Picked(f"{ctx.data_root}|{spec}|{sample['id']}|{DISPLAY_SIDE}", f"{spec} · {sample['id']}{size}",
                  sample["image"], sample["boxes"], sample["labels"])


def inline_image(image: np.ndarray, quality: int = 90) -> str:
    """RGB uint8 (H, W, 3) -> a ``data:image/jpeg;base64,...`` URL for ``st.image``. The picture
    travels inside the page's message instead of as a media file that the browser fetches later,
    so a picture replaced by a quick slider step can never be a broken-image icon (a media file is
    dropped as soon as a newer run replaces it, sometimes before the browser asked for it)."""
    import base64

    import cv2

    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image.shape} as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


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
