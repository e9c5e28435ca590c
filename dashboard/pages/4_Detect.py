"""Detect: a dataset sample or an upload through the detector; confidence / IoU sliders and a class
filter that only re-run decoding + NMS on the kept raw outputs; predictions against ground truth."""

import common
import pandas as pd
import streamlit as st
import torch

from yolo.metrics import match_detections

ctx = common.page("Detect", "The model runs once per image (yolo.detect.Detector.predict); moving a "
                            "slider re-filters its kept candidates (Detector.update) without running it again.")
model = common.load_model(ctx)
same_classes = common.check_classes(model, ctx)
names = model.detector.class_names
picked = common.pick_image(ctx, "det")
if picked is None:
    st.stop()

conf, iou = common.threshold_sliders("det")
c1, c2 = st.columns([3, 1])
only = c1.multiselect("Only these classes", names, key="det_classes", placeholder="every class")
show_gt = c2.toggle("Ground truth", value=picked.boxes is not None, key="det_gt",
                    disabled=picked.boxes is None, help="dashed boxes, labels under the box")

found, timings, post_ms = common.predict(model, picked, conf, iou, only)
gt = picked if show_gt and picked.boxes is not None else None
picture, numbers = st.columns([3, 2])
picture.image(common.draw(picked.image, found, names, gt, ctx.classes),
              caption=f"{picked.name} · {model.label}", width="stretch")
m = numbers.columns(2)
m[0].metric("Detections", len(found))
m[1].metric("Model forward", f"{timings.model_ms:.0f} ms", help="once per image")
m[0].metric("Full predict", f"{timings.total_ms:.0f} ms", help="read + letterbox + forward + decode + NMS")
m[1].metric("Threshold change", f"{post_ms:.1f} ms", help="decode filter + NMS on the kept candidates")

table = pd.DataFrame(found.to_records(), columns=["class", "label", "score", "x1", "y1", "x2", "y2"])
if picked.boxes is not None and same_classes and len(found):
    matched = match_detections(
        [{"boxes": found.boxes, "scores": found.scores, "labels": found.labels}],
        [{"boxes": torch.as_tensor(picked.boxes), "labels": torch.as_tensor(picked.labels)}],
        len(names), 0.5)
    table["IoU with GT"] = matched.iou.tolist()
    table["match"] = ["true positive" if t else "false positive" for t in matched.tp.tolist()]
    missed = int(matched.n_positives.sum()) - int(matched.tp.sum())
    numbers.caption(f"At IoU 0.5 (the VOC rule): {int(matched.tp.sum())} of {len(picked.labels)} objects found, "
               f"{missed} missed, {int(matched.fp.sum())} false detections.")
first = [c for c in ("class", "score", "match", "IoU with GT") if c in table.columns]
numbers.dataframe(table[first + ["x1", "y1", "x2", "y2"]].round(3), hide_index=True, width="stretch")
if not len(found):
    numbers.info("No detection at these thresholds: lower the confidence threshold"
            + ("" if model.trained else " (an untrained model's scores are tiny, around 0.02)") + ".")
