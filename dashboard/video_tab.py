"""Detect's Video tab: a clip (upload or a path on the server) through ``yolo.video`` once, then
frames scrubbed and thresholds moved with no new forward pass, a count-by-class chart over the
clip, the annotated clip to download, and the chosen frame handed to GradCAM.

The run happens in the script thread with a progress bar; pressing Cancel (or any other widget)
makes Streamlit interrupt the script at the next progress update, and ``yolo.video`` releases the
clip on the way out (its reader closes in a ``finally``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import models
import numpy as np
import pandas as pd
import picking
import plotly.graph_objects as go
import streamlit as st
from context import Context
from loaders import DISPLAY_SIDE
from wording import count

from yolo import viz

VIDEO_TYPES = ["mp4", "webm", "mkv", "avi", "mov", "m4v", "mpg", "mpeg", "ogv"]
RESULT = "_video_result"  # session_state: {"key": ..., "clip": ClipDetections, "name": str}
FRAMES = "_video_frames"  # session_state: a few decoded frames (display size) by (clip, index)
DEFAULT_MAX_FRAMES = 300


def _video_dir(ctx: Context) -> Path:
    return ctx.logs_root / ".dashboard" / "videos"


def pick_clip(ctx: Context) -> tuple[Path, str] | None:
    """An uploaded clip (saved under ``<logs>/.dashboard/videos/`` by content hash) or a path
    on the server's disk; None with a message when there is none yet."""
    source = st.radio("Clip", ["Upload", "Path on the server"], horizontal=True, key="vid_source",
                      help=f"Uploads are limited to {picking.MAX_UPLOAD_MB} MB; give a path for larger files.")
    if source == "Upload":
        upload = st.file_uploader("Video file", type=VIDEO_TYPES, key="vid_upload",
                                  help=f"Up to {picking.MAX_UPLOAD_MB} MB.")
        if upload is None:
            st.info("Upload a clip, or give a path to one on this machine.")
            return None
        data = upload.getvalue()
        if len(data) > picking.MAX_UPLOAD_MB * 2**20:
            st.error(f"**{upload.name}** is {len(data) / 2**20:.1f} MB; the limit is {picking.MAX_UPLOAD_MB} MB. "
                     "Give its path on the server instead.")
            return None
        digest = hashlib.sha1(data).hexdigest()
        path = _video_dir(ctx) / f"{digest}{Path(upload.name).suffix.lower()}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return path, upload.name
    typed = st.text_input("Path to a clip on the server", key="vid_path", placeholder="/data/videos/street.mp4")
    if not typed.strip():
        st.info("Type the path of a clip on this machine (any size).")
        return None
    path = Path(typed.strip()).expanduser()
    if "\x00" in typed or len(typed) > 4096 or not path.is_file():
        st.error(f"No file at {typed.strip()[:200]}.")
        return None
    return path, path.name


def run_key(model: models.Model, path: Path, every: int, max_frames: int) -> tuple:
    stat = path.stat()
    return (model.key, str(path), stat.st_size, stat.st_mtime_ns, every, max_frames)


def run_clip(model: models.Model, path: Path, name: str, every: int, max_frames: int) -> None:
    """One run of the model over the clip, with a progress bar; the result in session_state."""
    from yolo.video import VideoError, detect_clip

    key = run_key(model, path, every, max_frames)
    if st.session_state.get(RESULT, {}).get("key") == key:
        return
    bar = st.progress(0.0, text=f"Reading {name}…")
    st.button("Cancel", key="vid_cancel", help="Stops the run between two batches of frames")

    def progress(done: int, expected: int | None) -> None:
        total = min(expected or max_frames, max_frames)
        bar.progress(min(done / max(total, 1), 1.0), text=f"{name}: {done} of about {total} frames")

    try:
        clip = detect_clip(model.detector, path, every=every, max_frames=max_frames, progress=progress)
    except VideoError as err:
        bar.empty()
        st.error(str(err))
        return
    bar.empty()
    st.session_state.pop(FRAMES, None)
    st.session_state[RESULT] = {"key": key, "clip": clip, "name": name}


def frame_image(clip, i: int) -> np.ndarray:
    """The i-th kept frame, decoded again (display size), with a small per-session cache."""
    from yolo.video import read_frame

    cache = st.session_state.setdefault(FRAMES, {})
    key = (clip.info.path, clip.frames[i].index)
    if key not in cache:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        cache[key] = viz.fit(read_frame(clip.info.path, clip.frames[i].index), None, DISPLAY_SIDE)[0]
    return cache[key]


def count_chart(clip, counts: np.ndarray, names, current: int) -> go.Figure:
    """Detections per class over the clip (frames with their time), the chosen frame marked."""
    seen = [c for c in range(counts.shape[1]) if counts[:, c].any()]
    times = [f.time_s for f in clip.frames]
    figure = go.Figure()
    for c in seen:
        figure.add_trace(go.Scatter(x=times, y=counts[:, c], mode="lines", name=names[c], line_shape="hv"))
    figure.add_vline(x=times[current], line_dash="dot")
    figure.update_layout(title="Detections per class over the clip", xaxis_title="time (s)",
                         yaxis_title="detections", height=300, margin=dict(t=40, b=30))
    return figure


@st.fragment
def clip_view(model: models.Model, ctx: Context) -> None:
    """Scrub, thresholds, chart, download and GradCAM hand-off: no forward pass in here."""
    result = st.session_state.get(RESULT)
    if not result:
        return
    clip, name, names = result["clip"], result["name"], model.detector.class_names
    if not len(clip):
        st.warning(f"{name}: no frame was processed.")
        return
    i = st.slider("Frame", 0, len(clip) - 1, 0, key="vid_frame",
                  help="the processed frames (every N-th of the clip)") if len(clip) > 1 else 0
    conf, iou = models.confidence_controls(model, "vid")
    only = st.multiselect("Only these classes", names, key="vid_classes", placeholder="every class") or None
    found = clip.select(i, conf, iou, only)
    image = frame_image(clip, i)
    shown = viz.scale_boxes(found.boxes, clip.info.size, image.shape[:2])
    picture = viz.draw_detections(image, shown, found.labels, found.scores, class_names=names)
    left, right = st.columns([3, 1])
    f = clip.frames[i]
    left.image(picking.inline_image(picture), width="stretch",
               caption=f"{name} · frame {f.index} at {f.time_s:.2f} s · {model.label}")
    right.metric("Detections", len(found))
    timing = clip.timings[i]
    right.metric("Model", f"{timing.model_ms:.0f} ms", help="this frame's share of its batch's forward pass")
    right.metric("Frames", f"{len(clip)}", help=f"every {clip.every} of the clip"
                 + (" (cancelled: the frames done so far)" if clip.cancelled else ""))
    median = float(np.median([t.total_ms for t in clip.timings]))
    right.caption(f"Median per frame: {median:.0f} ms (decode + letterbox + model); "
                  f"{count(len(clip), 'frame')} of {clip.info.size[1]}x{clip.info.size[0]} in {clip.wall_s:.1f} s; "
                  f"candidates kept: {clip.nbytes / 1e6:.1f} MB.")
    st.plotly_chart(count_chart(clip, clip.counts(conf, iou, only), names, i), key="vid_chart")
    table = pd.DataFrame(found.to_records(), columns=["class", "score", "x1", "y1", "x2", "y2"])
    st.dataframe(table.round(3), hide_index=True, width="stretch")

    d1, d2 = st.columns(2)
    if d1.button("Write the annotated clip (these thresholds)", key="vid_write"):
        write_clip(clip, name, conf, iou, only, ctx)
    written = st.session_state.get("_video_written")
    if written and Path(written["path"]).is_file() and written["clip"] == clip.info.path:
        data = Path(written["path"]).read_bytes()
        d1.download_button(f"Download {Path(written['path']).name} ({len(data) / 1e6:.1f} MB)", data,
                           file_name=Path(written["path"]).name, mime="video/webm", key="vid_download")
        st.video(data, format="video/webm")
    if d2.button("Explain this frame in GradCAM", key="vid_gradcam",
                 help="The frame becomes GradCAM's image (source 'Video frame')"):
        st.session_state[picking.VIDEO_FRAME] = picking.Picked(
            f"video:{clip.info.path}:{f.index}:{DISPLAY_SIDE}", f"{name} · frame {f.index}", image)
        st.session_state["image_source"] = "Video frame"
        st.switch_page("views/gradcam.py")


def write_clip(clip, name: str, conf, iou: float, only, ctx: Context) -> None:
    from yolo.video import VideoError, write_annotated

    tag = hashlib.sha1(repr((clip.info.path, conf, iou, only)).encode()).hexdigest()[:10]
    out = _video_dir(ctx) / f"{Path(name).stem}-detections-{tag}.webm"
    bar = st.progress(0.0, text="Writing the annotated clip…")
    try:
        write_annotated(clip, out, conf, iou, only,
                        progress=lambda done, total: bar.progress(done / max(total, 1), text=f"{done} of {total} frames"))
    except VideoError as err:
        st.error(str(err))
        return
    finally:
        bar.empty()
    st.session_state["_video_written"] = {"path": str(out), "clip": clip.info.path}


def video_tab(model: models.Model, ctx: Context) -> None:
    picked = pick_clip(ctx)
    if picked is None:
        return
    path, name = picked
    c1, c2 = st.columns(2)
    every = int(c1.number_input("Every N-th frame", 1, 1000, 1, key="vid_every",
                                help="the model runs on frames 0, N, 2N, ..."))
    max_frames = int(c2.number_input("At most this many frames", 1, 100_000, DEFAULT_MAX_FRAMES, key="vid_max",
                                     help="each kept frame holds at most 26 kB of candidates"))
    key = run_key(model, path, every, max_frames)
    done = lambda: st.session_state.get(RESULT, {}).get("key") == key  # noqa: E731
    if st.button("Run the model over the clip", key="vid_run", type="primary", disabled=done(),
                 help="Done for this clip and these settings" if done() else None):
        run_clip(model, path, name, every, max_frames)
    if not done():
        st.caption("The model runs once over the clip; then frames, thresholds and classes move without it.")
        return
    clip_view(model, ctx)
