"""Detect: a dataset sample or an upload through the detector; confidence / IoU sliders and a class
filter that only re-run decoding + NMS on the kept raw outputs; predictions against ground truth.

The controls and everything they change are one fragment (``st.fragment``): a slider step reruns
only that part, never the picker or the model, and the picture travels inline (a data URL), so a
burst of slider steps never leaves a broken-image icon or a table of an older value."""

import camera_tab as camera
import frame
import models
import picking
import pandas as pd
import streamlit as st
import video_tab as video
from wording import count

from yolo.evaluate.tables import match_table

ctx = frame.page("Detect", "The model runs once per image (yolo.detect.Detector.predict gives a Prediction); "
                            "moving a slider re-selects from its kept candidates (Prediction.select) without "
                            "running it again.")
model = models.load_model(ctx)
same_classes = models.check_classes(model, ctx, "Ground truth is drawn with the dataset's names but not matched "
                                                "against the detections.")
names = model.detector.class_names


@st.fragment
def detections_view(model: models.Model, picked: picking.Picked, same_classes: bool) -> None:
    """Threshold controls, the drawn detections, the timings and the table: all at the controls'
    current values, rerun alone when a control moves."""
    conf, iou = models.confidence_controls(model, "det")
    c1, c2 = st.columns([3, 1])
    only = c1.multiselect("Only these classes", names, key="det_classes", placeholder="every class")
    show_gt = c2.toggle("Ground truth", value=picked.boxes is not None, key="det_gt",
                        disabled=picked.boxes is None, help="dashed boxes, labels under the box")

    found, timings, post_ms = models.predict(model, picked, conf, iou, only)
    gt = picked if show_gt and picked.boxes is not None else None
    picture, numbers = st.columns([3, 1])
    picture.image(picking.inline_image(picking.draw(picked.image, found, names, gt, ctx.classes)),
                  caption=f"{picked.name} · {model.label}", width="stretch")
    numbers.metric("Detections", len(found))
    numbers.metric("Model forward", f"{timings.model_ms:.0f} ms", help="once per image")
    numbers.metric("Full predict", f"{timings.total_ms:.0f} ms",
                   help="read + letterbox + forward + decode (NMS is the threshold change)")
    numbers.metric("Threshold change", f"{post_ms:.1f} ms", help="confidence filter + NMS on the kept candidates")

    table = pd.DataFrame(found.to_records(), columns=["class", "label", "score", "x1", "y1", "x2", "y2"])
    if picked.boxes is not None and same_classes and len(found):
        ious, verdicts, counts = match_table(found.as_dict(), picked.boxes, picked.labels, len(names))
        table["IoU with GT"], table["match"] = ious, verdicts
        st.caption(f"At IoU 0.5 (the VOC rule): {counts['found']} of {count(counts['objects'], 'object')} found, "
                   f"{counts['missed']} missed, {count(counts['false'], 'false detection')}.")
    first = [c for c in ("class", "score", "match", "IoU with GT") if c in table.columns]
    st.dataframe(table[first + ["x1", "y1", "x2", "y2"]].round(3), hide_index=True, width="stretch")
    if not len(found):
        st.info("No detection at these thresholds: lower the confidence threshold"
                + ("" if model.trained else " (an untrained model's scores are tiny, around 0.02)") + ".")


image_tab, video_tab, camera_tab = st.tabs(["Image", "Video", "Camera"])
with image_tab:
    picked = picking.pick_image(ctx, "det")
    if picked is not None:
        detections_view(model, picked, same_classes)
with video_tab:
    video.video_tab(model, ctx)
with camera_tab:
    camera.camera_tab(model, ctx)
