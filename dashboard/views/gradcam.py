"""GradCAM: where the model looks for a detection. Layer (any named layer), method, target (one
detection, a class, all), opacity; and a per-layer sweep shown as a grid."""

import frame
import models
import picking
import streamlit as st
from wording import count

from yolo import cam, viz

MAX_DRAWN = 20

ctx = frame.page("GradCAM", "Class activation maps from pytorch-grad-cam through yolo.cam: the score "
                             "explained is the objectness plus class logit of the chosen detections at "
                             "their own scale, anchor and cell.")
model = models.load_model(ctx)
detector = model.detector
models.check_classes(model, ctx, "The maps explain the model's own detections, labelled with the model's class "
                                 "names; the dataset's labels are not used on this page.")
picked = picking.pick_image(ctx, "gc")
if picked is None:
    st.stop()
conf, iou = models.confidence_controls(model, "gc")
found, _, _ = models.predict(model, picked, conf, iou, None)

c1, c2, c3 = st.columns(3)
method = c1.selectbox("Method", list(cam.METHODS), key="gc_method")
gradient_free = method in cam.GRADIENT_FREE
modes = ["one detection", "a class", "all detections"]
mode = c2.radio("Target", modes, key="gc_mode", disabled=gradient_free or not len(found),
                help="EigenCAM needs no target" if gradient_free else None)
target = None
if not len(found) and not gradient_free:
    st.warning("No detection to explain at this confidence threshold: lower it, or pick EigenCAM "
               "(it needs no target).")
    st.stop()
if not gradient_free:
    if mode == "one detection":
        target = c3.selectbox("Detection", range(len(found)), key="gc_detection",
                              format_func=lambda i: f"#{i}: {found.names[i]} {float(found.scores[i]):.2f}")
    elif mode == "a class":
        target = c3.selectbox("Class", sorted(set(found.names)), key="gc_class")

layers = list(detector.model.named_layers())
default_layer = cam.default_layer(models.prediction(model, picked),
                                  cam.detection_target(found, target) if len(found) else None)
layer = st.selectbox("Layer", layers, index=layers.index(default_layer), key="gc_layer",
                     help=f"Default: {default_layer}, the last 3x3 conv of the head that predicted the target")
o1, o2 = st.columns(2)
opacity = o1.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="gc_opacity")
inside = o2.toggle("Renormalise inside each box", key="gc_inside",
                   help="Scale the map within every target box on its own, zero outside")

rows = list(range(len(found))) if gradient_free or target is None else cam.chosen(found, target)
boxes = found.boxes[rows] if len(found) else None
heat = models.cam_maps(model, picked, conf, iou, [layer], method, target)[layer]
picture = cam.overlay(picked.image, heat, opacity, boxes=boxes, renormalise=inside and boxes is not None)
shown = rows[:MAX_DRAWN]  # the explained detections (highest scores first), not every box
picture = viz.draw_detections(picture, found.boxes[shown], found.labels[shown], found.scores[shown],
                              class_names=detector.class_names)
what = "every detection" if target is None else (f"detection #{target}" if isinstance(target, int) else f"class {target}")
left, right = st.columns([3, 2])
left.image(picking.inline_image(picture), caption=f"{method} at {layer}, explaining {what} · {picked.name} · {model.label}", width="stretch")
right.markdown(f"**{count(len(rows), 'detection')}** explained: "
               + ", ".join(f"#{i} {found.names[i]} {float(found.scores[i]):.2f}" for i in rows[:8])
               + (" …" if len(rows) > 8 else ""))
right.caption("Red = strong evidence for the explained score; the map is min-max scaled over the photo"
              + (" and within each box" if inside else "") + ".")
if not model.trained:
    right.caption("Untrained weights: the map shows the mechanics, not learned evidence.")

st.subheader("Per-layer sweep")
if st.toggle(f"Compute the {len(cam.SWEEP_LAYERS)}-layer sweep (one forward and one backward pass)",
             key="gc_sweep"):
    maps = models.cam_maps(model, picked, conf, iou, list(cam.SWEEP_LAYERS), method, target)
    tiles = [cam.overlay(picked.image, maps[name], opacity) for name in cam.SWEEP_LAYERS]
    st.image(viz.tile_images(tiles, cols=5, captions=list(cam.SWEEP_LAYERS)), width="stretch",
             caption="From the backbone (stage2) to the last 3x3 conv of each head")
