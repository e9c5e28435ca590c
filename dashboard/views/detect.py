"""Detect: a dataset sample or an upload through the detector; confidence / IoU sliders and a class
filter that only re-run decoding + NMS on the kept raw outputs; predictions against ground truth."""

import frame
import models
import picking
import pandas as pd
import streamlit as st

from yolo.evaluate.tables import match_table

ctx = frame.page("Detect", "The model runs once per image (yolo.detect.Detector.predict gives a Prediction); "
                            "moving a slider re-selects from its kept candidates (Prediction.select) without "
                            "running it again.")
model = models.load_model(ctx)
same_classes = models.check_classes(model, ctx, "Ground truth is drawn with the dataset's names but not matched "
                                                "against the detections.")
names = model.detector.class_names
picked = picking.pick_image(ctx, "det")
if picked is None:
    st.stop()

start, why = models.starting_threshold(model, 0.25)
conf, iou = models.threshold_sliders("det", conf=start, why=why)
if model.thresholds is not None and st.toggle(
        "Per-class thresholds (the saved operating point)", value=True, key="det_per_class",
        help="On: each class at its own threshold saved on the Evaluate page, the slider is ignored; "
             "off: the slider's one threshold for every class"):
    conf = model.thresholds.class_thresholds
    st.caption(f"Each class at its own saved threshold ({model.thresholds.rule}, from "
               f"{model.thresholds.meta.get('split', 'the Evaluate page')}): "
               + ", ".join(f"{n} {t:.2f}" for n, t in zip(model.thresholds.class_names, model.thresholds.class_thresholds)))
c1, c2 = st.columns([3, 1])
only = c1.multiselect("Only these classes", names, key="det_classes", placeholder="every class")
show_gt = c2.toggle("Ground truth", value=picked.boxes is not None, key="det_gt",
                    disabled=picked.boxes is None, help="dashed boxes, labels under the box")

found, timings, post_ms = models.predict(model, picked, conf, iou, only)
gt = picked if show_gt and picked.boxes is not None else None
picture, numbers = st.columns([3, 2])
picture.image(picking.draw(picked.image, found, names, gt, ctx.classes),
              caption=f"{picked.name} · {model.label}", width="stretch")
m = numbers.columns(2)
m[0].metric("Detections", len(found))
m[1].metric("Model forward", f"{timings.model_ms:.0f} ms", help="once per image")
m[0].metric("Full predict", f"{timings.total_ms:.0f} ms", help="read + letterbox + forward + decode (NMS is the threshold change)")
m[1].metric("Threshold change", f"{post_ms:.1f} ms", help="confidence filter + NMS on the kept candidates")

table = pd.DataFrame(found.to_records(), columns=["class", "label", "score", "x1", "y1", "x2", "y2"])
if picked.boxes is not None and same_classes and len(found):
    ious, verdicts, counts = match_table(found.as_dict(), picked.boxes, picked.labels, len(names))
    table["IoU with GT"], table["match"] = ious, verdicts
    numbers.caption(f"At IoU 0.5 (the VOC rule): {counts['found']} of {counts['objects']} objects found, "
                    f"{counts['missed']} missed, {counts['false']} false detections.")
first = [c for c in ("class", "score", "match", "IoU with GT") if c in table.columns]
numbers.dataframe(table[first + ["x1", "y1", "x2", "y2"]].round(3), hide_index=True, width="stretch")
if not len(found):
    numbers.info("No detection at these thresholds: lower the confidence threshold"
            + ("" if model.trained else " (an untrained model's scores are tiny, around 0.02)") + ".")
