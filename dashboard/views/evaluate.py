"""Evaluate: the model over a split once (cached predictions), then per-class AP, PR curves, the
confusion matrix, how mAP / precision / recall move with the confidence and NMS IoU thresholds,
the worst images first, the error breakdown (TIDE), operating points (saved for Detect and
GradCAM), confidence calibration (reliability diagram, ECE, each saved operating point on its
class's curve), a second checkpoint compared, and mAP by every rule. Nothing re-runs the model."""

import evaluation
import frame
import loaders
import models
import places
import evaluation
import pandas as pd
import plotly.express as px
import streamlit as st

from yolo import viz

ctx = frame.page("Evaluate", "VOC mAP@0.5 (yolo.metrics) and yolo.evaluate's views on predictions saved once "
                              "per model and split (yolo.predictions.predict_samples); every view re-reads those.")
model = models.load_model(ctx)
if not models.check_classes(model, ctx, "Evaluation compares detections with the dataset's labels by class, so "
                                        "nothing can be evaluated; no ground truth is shown."):
    st.stop()
choices = ctx.split_choices()
c1, c2 = st.columns([1, 2])
spec = c1.selectbox("Split", choices, index=choices.index(ctx.default_split("val") or choices[0]),
                    key="ev_split")
size = len(loaders.load_index(ctx, spec))
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
m[0].metric("mAP@0.5", evaluation.fmt(result["map"]))
m[1].metric("mAP@0.5 (VOC07 11-point)", evaluation.fmt(result["map_voc07"]))
m[2].metric(f"Precision at {conf:.2f}", evaluation.fmt(result["precision"]))
m[3].metric(f"Recall at {conf:.2f}", evaluation.fmt(result["recall"]))
st.caption(f"{len(preds)} images of {spec} · {model.label} · candidates above {preds.conf_floor} kept, "
           f"at most {evaluation.MAX_DETECTIONS} detections per image after NMS.")

ap_tab, pr_tab, cm_tab, sweep_tab, worst_tab, err_tab, op_tab, cal_tab, ab_tab, rule_tab = st.tabs(
    ["Per-class AP", "PR curves", "Confusion matrix", "Thresholds", "Worst images", "Errors", "Operating points",
     "Calibration", "Compare", "Metrics"])
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
    readable = {"font": {"size": 14}, "legend": {"font": {"size": 14}}}
    s1.plotly_chart(px.line(long, x="confidence", y="value", color="measure", line_dash="NMS IoU",
                            title="Precision, recall and F1 against the confidence threshold").update_layout(**readable),
                    width="stretch", key="ev_sweep_chart")
    per_iou = sweep.drop_duplicates("NMS IoU")
    s2.plotly_chart(px.line(per_iou, x="NMS IoU", y="mAP@0.5", markers=True, title="mAP@0.5 against NMS IoU")
                    .update_layout(**readable), width="stretch", key="ev_map_chart")
with worst_tab:
    worst = result["per_image"]
    st.dataframe(worst.drop(columns=["position"]).head(50), hide_index=True, width="stretch")
    top = worst.head(6)
    tiles = []
    for _, row in top.iterrows():
        found = evaluation.image_detections(str(path), stamp, int(row["position"]), conf, iou)
        at = evaluation.dataset_position(ctx, spec, preds.image_ids, int(row["position"]))
        tiles.append(evaluation.drawn_view(ctx, spec, at, found, result["names"]))
    if tiles:
        captions = [f"{r['image']}: {r['missed']} missed, {r['false detections']} false"
                    for r in top.to_dict("records")]
        st.image(viz.tile_images(tiles, cols=3, captions=captions),
                 width="stretch", caption="Ground truth dashed, detections solid")

with err_tab:
    breakdown = evaluation.errors(str(path), stamp, iou)
    table = breakdown.table()
    st.plotly_chart(px.bar(table, x="error", y="dAP", hover_data=["count"],
                           title=f"mAP@0.5 lost to each error type (TIDE; mAP {breakdown.map:.3f}, COCO 101-point)"),
                    width="stretch", key="ev_err_chart")
    st.caption("dAP: how much mAP would rise if only that kind of error were fixed (TIDE's definitions, "
               "yolo.evaluate.tide); the oracles remove every false positive or every missed object.")
    kinds = [t for t in table["type"] if t in breakdown.counts and breakdown.counts[t]]
    if kinds:
        kind = st.radio("Worst examples of", kinds, horizontal=True, key="ev_err_kind",
                        format_func=lambda t: f"{t} ({breakdown.counts[t]})")
        from yolo.evaluate import worst_examples

        examples = worst_examples(breakdown, kind, 6)
        tiles, captions = [], []
        for row in examples.to_dict("records"):
            erring = None if kind == "Miss" else {"boxes": [[row["x1"], row["y1"], row["x2"], row["y2"]]],
                                                  "labels": [int(row["class"])], "scores": [row["score"]]}
            at = evaluation.dataset_position(ctx, spec, preds.image_ids, int(row["image"]))
            tiles.append(evaluation.drawn_view(ctx, spec, at, erring, result["names"]))
            captions.append(f"{preds.image_ids[int(row['image'])]}: {kind} {result['names'][int(row['class'])]}")
        st.image(viz.tile_images(tiles, cols=3, captions=captions), width="stretch",
                 caption="Ground truth dashed; the erring detection solid (for Miss: the missed object is dashed)")
        st.dataframe(examples.assign(image=[preds.image_ids[int(i)] for i in examples["image"]],
                                     **{"class": [result["names"][int(c)] for c in examples["class"]]})
                     .drop(columns=["gt"]).round(3), hide_index=True, width="stretch")
with op_tab:
    target = st.radio("Rule", ["max F1", "precision >= 0.5", "precision >= 0.7", "precision >= 0.9"],
                      horizontal=True, key="ev_op_rule")
    wanted = None if target == "max F1" else float(target.split(">=")[1])
    points, op_curves, gain = evaluation.operating(str(path), stamp, iou, wanted)
    chosen = {"class": points.class_names, "threshold": points.class_thresholds,
              "F1 (this split)": [points.f1.get(n) for n in points.class_names]}
    st.metric("One global threshold", f"{points.global_threshold:.3f}")
    if gain is not None:
        st.caption(f"Fitted on the first half of the images, measured on the second: F1 {gain['f1_per_class_thresholds']:.3f} "
                   f"with per-class thresholds against {gain['f1_global_threshold']:.3f} with one global threshold "
                   f"(gain {gain['f1_gain']:+.3f}).")
    shown_classes = st.multiselect("Curves of", ["all", *points.class_names], default=["all"], key="ev_op_classes")
    long = op_curves[op_curves["class"].isin(shown_classes)].melt(["class", "confidence"], ["precision", "recall", "F1"],
                                                                  var_name="measure")
    st.plotly_chart(px.line(long, x="confidence", y="value", color="class", line_dash="measure",
                            title="Precision, recall and F1 against the confidence threshold"),
                    width="stretch", key="ev_op_chart")
    st.dataframe(pd.DataFrame(chosen).round(3), hide_index=True, width="stretch")
    if ctx.checkpoint is None:
        st.info("Save needs a checkpoint file: thresholds are stored beside it.")
    elif st.button("Save these thresholds for Detect and GradCAM", key="ev_op_save", type="primary"):
        from yolo.thresholds import ThresholdsWriteError, thresholds_path, write_thresholds

        points.meta = {"split": spec, "images": len(preds), "checkpoint": str(ctx.checkpoint)}
        try:
            written = write_thresholds(points, thresholds_path(ctx.checkpoint))
            st.success(f"Saved to `{written}`; Detect and GradCAM now start there, and so does "
                       "Detector.from_checkpoint for this checkpoint.")
        except ThresholdsWriteError as err:  # e.g. a checkpoint in a read-only folder
            st.error(str(err))
with cal_tab:
    k1, k2 = st.columns(2)
    correct_iou = k1.select_slider("A detection is correct at IoU", [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9],
                                   value=0.5, key="ev_cal_iou")
    n_bins = k2.slider("Confidence bins", 4, 20, 10, key="ev_cal_bins")
    cal = evaluation.calibration(str(path), stamp, iou, correct_iou, n_bins)
    c = st.columns(3)
    c[0].metric("ECE (expected calibration error)", evaluation.fmt(cal.ece))
    c[1].metric("MCE (worst bin)", evaluation.fmt(cal.mce))
    c[2].metric("Detections counted", f"{cal.detections}")
    st.caption("Does a confidence of 0.8 mean right 80% of the time? Each bar is one confidence bin: its height the "
               "precision of the detections in it (COCO-matched at the IoU above; difficult objects left out), its "
               "width the bin's share of the detections. On the dashed diagonal the model is calibrated; below it, "
               "overconfident. ECE: the detection-weighted mean gap; MCE: the largest gap (yolo.evaluate.calibration).")
    bins = cal.bins[cal.bins["count"] > 0]
    if bins.empty:
        st.info("No detection above the saved confidence floor: nothing to calibrate.")
    else:
        import plotly.graph_objects as go

        width = (bins["upper"] - bins["lower"]) * bins["count"] / bins["count"].max()
        fig = go.Figure()
        fig.add_bar(x=(bins["lower"] + bins["upper"]) / 2, y=bins["precision"], width=width, name="precision",
                    customdata=bins[["count", "confidence"]], hovertemplate="precision %{y:.3f}<br>detections "
                    "%{customdata[0]}<br>mean confidence %{customdata[1]:.3f}<extra></extra>")
        fig.add_scatter(x=bins["confidence"], y=bins["precision"], mode="markers", name="mean confidence")
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "gray"}, name="calibrated")
        fig.update_layout(title=f"Reliability: precision against confidence (ECE {evaluation.fmt(cal.ece)})",
                          xaxis={"title": "confidence", "range": [0, 1]},
                          yaxis={"title": "precision", "range": [0, 1.02]}, font={"size": 14})
        st.plotly_chart(fig, width="stretch", key="ev_cal_chart")
    saved = models.operating_points(ctx.checkpoint, result["names"]) if ctx.checkpoint is not None else None
    thresholds = dict(zip(saved.class_names, saved.class_thresholds)) if saved is not None else {}
    per_class = cal.per_class.assign(**{"class": result["names"]})
    per_class["saved threshold"] = per_class["class"].map(thresholds)
    marks = evaluation.operating_marks(cal.class_bins, thresholds, result["names"])
    per_class = per_class.merge(marks[["class", "precision"]].rename(columns={"precision": "precision at saved"}),
                                on="class", how="left")
    ranked = per_class.sort_values("detections", ascending=False)
    shown_cal = st.multiselect("Curves of", result["names"], default=list(ranked["class"][ranked["detections"] > 0][:4]),
                               key="ev_cal_classes")
    curve = cal.class_bins[cal.class_bins["count"] > 0].assign(
        **{"class": lambda f: [result["names"][i] for i in f["class"]]})
    curve = curve[curve["class"].isin(shown_cal)]
    fig = px.line(curve, x="confidence", y="precision", color="class", markers=True, hover_data=["count"],
                  range_x=[0, 1], range_y=[0, 1.02], title="Reliability per class, with each saved operating point")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "gray"}, name="calibrated")
    shown_marks = marks[marks["class"].isin(shown_cal)]
    if len(shown_marks):
        fig.add_scatter(x=shown_marks["threshold"], y=shown_marks["precision"], mode="markers+text",
                        text=shown_marks["class"], textposition="top center", name="saved operating point",
                        marker={"symbol": "x", "size": 14, "color": "black"})
    fig.update_layout(font={"size": 14})
    st.plotly_chart(fig, width="stretch", key="ev_cal_class_chart")
    if not thresholds:
        st.info("No operating points saved for this checkpoint yet: save them on the Operating points tab to see "
                "where each class's threshold sits on its curve.")
    else:
        st.caption("A cross marks each class's saved threshold, at the precision of the bin holding it (the nearest "
                   "bin with detections when that one is empty): what a detection scored right at the threshold "
                   "turns out to be.")
    st.dataframe(per_class[["class", "detections", "ece", "mce", "saved threshold", "precision at saved"]]
                 .rename(columns={"ece": "ECE", "mce": "MCE"}).round(4), hide_index=True, width="stretch")
with ab_tab:
    others = {label: p for label, p in places.checkpoint_options(ctx.logs_root).items() if p != ctx.checkpoint}
    if not others:
        st.info("Only one checkpoint: train another (or point the sidebar at another runs folder) to compare.")
    else:
        label_b = st.selectbox("Compare with (B)", list(others), key="ev_ab_other")
        model_b = evaluation.other_model(ctx, others[label_b])  # None: it says why
        path_b = None if model_b is None else evaluation.predictions_file(ctx, model_b, spec, limit)
        if model_b is None:
            st.info("Nothing to compare with until B is a checkpoint this project can read.")
        elif model_b.detector.class_names != model.detector.class_names:
            st.warning(f"{label_b} knows {len(model_b.detector.class_names)} classes "
                       f"({', '.join(model_b.detector.class_names[:6])}…), not this model's: its AP per class "
                       "cannot be compared. Pick a checkpoint trained on the same classes.")
        elif evaluation.same_weights(model, model_b):
            st.info(f"{label_b} holds exactly the same weights as this checkpoint (A): comparing them would show no "
                    "difference. Pick a checkpoint of another epoch or run.")
        elif evaluation.load_predictions(path_b) is None:
            if st.button(f"Run B over the same {limit} images", key="ev_ab_run"):
                evaluation.compute_predictions(ctx, model_b, spec, limit, path_b)
                st.rerun()
        else:
            ab = evaluation.comparison(str(path), stamp, str(path_b), path_b.stat().st_mtime_ns, iou, conf)
            st.metric("mAP@0.5, B - A", f"{ab.map_b - ab.map_a:+.4f}", help=f"A {ab.map_a:.4f}, B {ab.map_b:.4f}")
            st.plotly_chart(px.bar(ab.per_class, x="class", y="dAP", error_y=ab.per_class["high"] - ab.per_class["dAP"],
                                   error_y_minus=ab.per_class["dAP"] - ab.per_class["low"],
                                   title="AP difference per class (B - A) with a bootstrap 95% interval"),
                            width="stretch", key="ev_ab_chart")
            st.dataframe(ab.per_class.round(4), hide_index=True, width="stretch")
            st.caption(f"Images where B does worse than A at confidence {conf:.2f}: lost true positives and new "
                       "false positives, worst first.")
            st.dataframe(ab.regressions.drop(columns=["position"]).head(50), hide_index=True, width="stretch")
with rule_tab:
    summary, per_class_rules = evaluation.metric_rules(str(path), stamp, iou)
    st.dataframe(summary.round(4), hide_index=True, width="stretch")
    st.dataframe(per_class_rules.round(4), hide_index=True, width="stretch")
