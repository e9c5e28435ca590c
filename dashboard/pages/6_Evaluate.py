"""Evaluate: the model over a split once (cached predictions), then per-class AP, PR curves, the
confusion matrix, how mAP / precision / recall move with the confidence and NMS IoU thresholds,
and the worst images first. Threshold changes never re-run the model."""

import common
import evaluation
import plotly.express as px
import streamlit as st

from yolo import viz

ctx = common.page("Evaluate", "VOC mAP@0.5 (yolo.metrics) on predictions saved once per model and split "
                              "(yolo.detect.predict_samples); every view below re-reads those.")
model = common.load_model(ctx)
if not common.check_classes(model, ctx):
    st.stop()
choices = ctx.split_choices()
c1, c2 = st.columns([1, 2])
spec = c1.selectbox("Split", choices, index=choices.index(ctx.default_split("val") or choices[0]),
                    key="ev_split")
size = len(common.load_index(ctx, spec))
limit = int(c2.number_input(f"Images (the first N of the {size})", 1, max(size, 1), size, key="ev_limit"))
path = evaluation.predictions_file(ctx, model, spec, limit)
preds = evaluation.load_predictions(path)
if preds is None:
    st.info(f"No saved predictions of this model on **{spec}** ({limit} images) yet. The model runs once over "
            "them; thresholds and views below then work from the saved file.")
    if st.button(f"Run the model over {limit} images", type="primary", key="ev_run"):
        evaluation.compute_predictions(ctx, model, spec, limit, path)
        st.rerun()
    st.stop()
stamp = path.stat().st_mtime_ns
if preds.ground_truth() is None:
    st.error("This prediction file has no ground truth; delete it and run the model again.")
    st.stop()

t1, t2, t3 = st.columns([2, 2, 1])
conf = t1.slider("Confidence threshold (precision, recall, confusion, worst images)", 0.0, 0.95, 0.25, 0.05,
                 key="ev_conf")
iou = t2.select_slider("NMS IoU threshold", [0.3, 0.4, 0.45, 0.5, 0.6, 0.7], value=0.45, key="ev_iou")
if t3.button("Run the model again", key="ev_rerun", help="Replace the saved predictions"):
    path.unlink(missing_ok=True)
    st.rerun()
evaluation.nms_at(str(path), stamp, (iou, *evaluation.SWEEP_IOUS))  # every NMS the page needs, side by side
result = evaluation.evaluate(str(path), stamp, conf, iou)
m = st.columns(4)
m[0].metric("mAP@0.5", common.fmt(result["map"]))
m[1].metric("mAP@0.5 (VOC07 11-point)", common.fmt(result["map_voc07"]))
m[2].metric(f"Precision at {conf:.2f}", common.fmt(result["precision"]))
m[3].metric(f"Recall at {conf:.2f}", common.fmt(result["recall"]))
st.caption(f"{len(preds)} images of {spec} · {model.label} · candidates above {preds.conf_floor} kept, "
           f"at most {evaluation.MAX_DETECTIONS} detections per image after NMS.")

ap_tab, pr_tab, cm_tab, sweep_tab, worst_tab = st.tabs(
    ["Per-class AP", "PR curves", "Confusion matrix", "Thresholds", "Worst images"])
with ap_tab:
    ap = result["ap"].sort_values("AP", ascending=False)
    st.plotly_chart(px.bar(ap, x="class", y="AP", hover_data=["objects", "AP (VOC07 11-point)"],
                           title="Average precision per class (classes without objects have none)"),
                    width="stretch", key="ev_ap_chart")
    st.dataframe(ap.round(4), hide_index=True, width="stretch")
with pr_tab:
    curves = result["curves"]
    ranked = list(ap.dropna(subset=["AP"])["class"])
    shown = st.multiselect("Classes", result["names"], default=ranked[:5], key="ev_pr_classes")
    st.plotly_chart(px.line(curves[curves["class"].isin(shown)], x="recall", y="precision", color="class",
                            range_x=[0, 1], range_y=[0, 1.02], title="Precision against recall"),
                    width="stretch", key="ev_pr_chart")
with cm_tab:
    labels = [*result["names"], "background"]
    fig = px.imshow(result["confusion"], x=labels, y=labels, text_auto=True, color_continuous_scale="Blues",
                    labels={"x": "predicted", "y": "true", "color": "boxes"},
                    title=f"Confusion at IoU 0.5, confidence {conf:.2f}")
    st.plotly_chart(fig, width="stretch", key="ev_cm_chart")
    st.caption("Last row: detections that matched no object. Last column: objects no detection found.")
with sweep_tab:
    sweep = evaluation.threshold_sweep(str(path), stamp, evaluation.SWEEP_CONFS, evaluation.SWEEP_IOUS)
    best = sweep.loc[sweep["F1"].idxmax()]
    st.success(f"Best F1 {best['F1']:.3f} at confidence {best['confidence']:.2f} with NMS IoU "
               f"{best['NMS IoU']:.2f} (precision {best['precision']:.3f}, recall {best['recall']:.3f}).")
    s1, s2 = st.columns(2)
    long = sweep.melt(["NMS IoU", "confidence"], ["precision", "recall", "F1"], var_name="measure")
    s1.plotly_chart(px.line(long, x="confidence", y="value", color="measure", line_dash="NMS IoU",
                            title="Precision, recall and F1 against the confidence threshold"),
                    width="stretch", key="ev_sweep_chart")
    per_iou = sweep.drop_duplicates("NMS IoU")
    s2.plotly_chart(px.line(per_iou, x="NMS IoU", y="mAP@0.5", markers=True, title="mAP@0.5 against NMS IoU"),
                    width="stretch", key="ev_map_chart")
with worst_tab:
    worst = result["per_image"]
    st.dataframe(worst.drop(columns=["position"]).head(50), hide_index=True, width="stretch")
    top = worst.head(6)
    tiles = []
    for _, row in top.iterrows():
        sample = common.load_sample(ctx, spec, int(row["position"]))
        found = evaluation.image_detections(str(path), stamp, int(row["position"]), conf, iou)
        picture = viz.draw_ground_truth(sample["image"], sample["boxes"], sample["labels"], class_names=ctx.classes)
        tiles.append(viz.draw_detections(picture, found["boxes"], found["labels"], found["scores"],
                                         class_names=result["names"]))
    if tiles:
        captions = [f"{r['image']}: {r['missed']} missed, {r['false detections']} false"
                    for r in top.to_dict("records")]
        st.image(viz.tile_images(tiles, cols=3, captions=captions),
                 width="stretch", caption="Ground truth dashed, detections solid")
