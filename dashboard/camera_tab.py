"""Detect's Camera tab: the browser's camera through streamlit-webrtc (WebRTC to this server),
detection drawn on each frame at the current sliders, frames/s and model milliseconds shown.

Frames are skipped, never queued: streamlit-webrtc hands the frame callback the newest frame each
time it is free and drops the ones that arrived meanwhile (its ``recv_queued`` keeps the last), so
on a CPU the picture stays live at a lower frame rate instead of falling behind. No STUN/TURN
server is contacted (``iceServers: []``): the browser and this server reach each other directly,
as on localhost or a LAN.
"""

from __future__ import annotations

import logging

import models
import streamlit as st
from context import Context

LIVE = "_camera_live"  # session_state: this session's yolo.video.LiveDetection (shared with the media thread)


def camera_tab(model: models.Model, ctx: Context) -> None:
    try:
        from streamlit_webrtc import WebRtcMode, webrtc_streamer
    except ImportError:
        st.warning("The Camera tab needs streamlit-webrtc: `pip install -r requirements.txt`.")
        return
    from yolo.video import LiveDetection

    conf, iou = models.confidence_controls(model, "cam")
    only = st.multiselect("Only these classes", model.detector.class_names, key="cam_classes",
                          placeholder="every class")
    live = st.session_state.get(LIVE)
    if live is None or live.detector is not model.detector:
        live = st.session_state[LIVE] = LiveDetection(model.detector)
    live.set_thresholds(conf, iou, only)  # read by the media thread on its next frame

    def on_frame(frame):
        import av

        return av.VideoFrame.from_ndarray(live(frame.to_ndarray(format="rgb24")), format="rgb24")

    try:
        streamer = webrtc_streamer(key="det_camera", mode=WebRtcMode.SENDRECV, video_frame_callback=on_frame,
                                   media_stream_constraints={"video": True, "audio": False},
                                   rtc_configuration={"iceServers": []}, async_processing=True)
    except Exception as err:  # e.g. no Streamlit server session (streamlit.testing's AppTest has none)
        logging.getLogger(__name__).exception("streamlit-webrtc")
        st.warning(f"The camera cannot start here ({type(err).__name__}: {err}). It needs `streamlit run` "
                   "and a browser with a camera.")
        return
    st.caption("Press START and allow the camera. Each frame runs the model once (no batching); "
               "frames that arrive while it runs are skipped, so the picture stays current. "
               "Frames/s and model time are drawn on the picture and below.")
    # refreshed every second while the camera plays (a fragment: nothing else reruns)
    st.fragment(run_every=1.0 if streamer.state.playing else None)(camera_stats)(live)


def camera_stats(live) -> None:
    stats = live.stats()
    c = st.columns(4)
    c[0].metric("Frames/s", f"{stats['fps']:.1f}" if stats["frames"] else "–")
    c[1].metric("Model", f"{stats['model_ms']:.0f} ms" if stats["frames"] else "–", help="the last frame's forward pass")
    c[2].metric("Frames processed", stats["frames"])
    c[3].metric("Detections", stats["detections"], help="on the last frame processed")
