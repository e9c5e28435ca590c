"""Dataset: browse by split and class with ground truth drawn; class and box statistics; the
anchor fit (course and fitted anchors over the boxes); the data-check report with the problem files."""

import frame
import loaders
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from wording import count

from yolo import viz
from yolo.data.problems import KINDS

PER_PAGE = 12

ctx = frame.page("Dataset", "Ground-truth boxes are dashed, labelled under the box. Statistics and "
                             "the check report come from yolo.data.check, the same as "
                             "`python -m yolo.data check PATH`.")
frame.require_dataset(ctx)
choices = ctx.split_choices()
left, right = st.columns([1, 3])
spec = left.selectbox("Split", choices, index=choices.index(ctx.default_split("train")), key="ds_split")
wanted = right.multiselect("Only images with these classes", ctx.classes, key="ds_classes",
                           placeholder="every class")
index = loaders.load_index(ctx, spec)
boxes = loaders.box_table(ctx, spec)
ids = list(index.ids)
if wanted:
    keep = set(boxes.loc[boxes["class"].isin(wanted), "image"])
    ids = [i for i in ids if i in keep]

browse, stats, anchors_tab, check = st.tabs(["Browse", "Statistics", "Anchors", "Data check"])

with browse:
    if not ids:
        st.info("No image of this split has the chosen classes; clear the class filter.")
    else:
        pages = (len(ids) - 1) // PER_PAGE + 1
        a, b = st.columns([1, 3])
        page_no = a.number_input(f"Page (of {pages})", 1, pages, 1, key="ds_page")
        shown = ids[(page_no - 1) * PER_PAGE: page_no * PER_PAGE]
        b.caption(f"{len(ids)} images; showing {len(shown)}.")
        position = {image_id: i for i, image_id in enumerate(index.ids)}
        thumbs = [loaders.load_view(ctx, spec, position[i], loaders.THUMB_SIDE) for i in shown]
        st.image(viz.tile_images([viz.draw_ground_truth(s["image"], s["boxes"], s["labels"], class_names=ctx.classes)
                                  for s in thumbs], cols=4, captions=shown), width="stretch")
        pick = st.selectbox("Look at one image", shown, key="ds_pick")
        sample = loaders.load_view(ctx, spec, position[pick], loaders.DISPLAY_SIDE)
        big, info = st.columns([3, 2])
        big.image(viz.draw_ground_truth(sample["image"], sample["boxes"], sample["labels"],
                                        class_names=ctx.classes), caption=sample["path"], width="stretch")
        height, width = sample["orig_size"]
        info.markdown(f"**{pick}** · {width} x {height} pixels · {count(len(sample['labels']), 'object')}")
        info.dataframe(boxes.loc[boxes["image"] == pick, ["class", "x1", "y1", "x2", "y2", "difficult"]]
                       .round(1), hide_index=True, width="stretch")

with stats:
    report = loaders.dataset_report(ctx, [spec])
    split = report.splits[0]
    m = st.columns(4)
    m[0].metric("Images", split.images)
    m[1].metric("Objects", split.objects)
    m[2].metric("Difficult", split.difficult)
    m[3].metric("Boxes per image (mean)", f"{split.boxes_per_image['mean']:.2f}")
    per_class = pd.DataFrame({"class": list(ctx.classes),
                              "objects": [split.objects_per_class[c] for c in ctx.classes],
                              "images": [split.images_per_class[c] for c in ctx.classes]})
    st.plotly_chart(px.bar(per_class.melt("class", var_name="count of", value_name="n"), x="class", y="n",
                           color="count of", barmode="group", title="Objects and images per class")
                    .update_xaxes(type="category"), width="stretch")  # class names such as "1", "2" too
    c1, c2 = st.columns(2)
    c1.plotly_chart(px.histogram(boxes, x="relative_size", color="class", nbins=40,
                                 title="Box size: sqrt(box area / image area)"), width="stretch")
    c2.plotly_chart(px.histogram(boxes, x="aspect", color="class", nbins=40, log_x=False,
                                 title="Box aspect ratio (width / height)"), width="stretch")
    c3, c4 = st.columns(2)
    c3.plotly_chart(px.scatter(boxes, x="width", y="height", color="class", opacity=0.5,
                               title="Box width and height (pixels)"), width="stretch")
    hist = pd.DataFrame({"boxes in the image": list(split.boxes_per_image_hist),
                         "images": list(split.boxes_per_image_hist.values())})
    # Bins such as "5-9" and "20+" are categories: on plotly's default (numeric) axis they vanish.
    per_image = px.bar(hist, x="boxes in the image", y="images", title=f"Boxes per image ({split.images} images)")
    c4.plotly_chart(per_image.update_xaxes(type="category"), width="stretch")
    st.caption("Box area buckets (COCO): " + ", ".join(f"{k} {v}" for k, v in split.box_area_buckets.items()))

with anchors_tab:
    size = st.select_slider("Training input size (pixels)", list(range(320, 609, 32)), value=416, key="ds_anchor_size",
                            help="Boxes are letterboxed to this side, as training sees them; the course anchors "
                                 "are fractions of it (yolo.anchors)")
    fit_report = loaders.anchor_report(ctx, spec, size)
    names = list(fit_report.sets)
    st.caption("Best possible recall: the share of boxes whose best anchor has shape IoU > 0.5 (the course's "
               "assignment threshold). Fitted: k-means on width/height with an IoU distance, then evolution "
               "(`python -m yolo.data anchors`, `train.py --anchors auto`).")
    st.info(fit_report.auto_verdict())
    cols = st.columns(len(names))
    for col, name in zip(cols, names):
        anchors_set, measures = fit_report.sets[name]
        col.metric(f"{name} anchors: best possible recall", f"{measures.bpr:.3f}")
        col.caption(f"mean best IoU {measures.mean_best_iou:.3f} · {measures.anchors_above:.2f} anchors above "
                    f"0.5 per box · {int(measures.unfit.sum())} of {measures.boxes} boxes fit by no anchor")
        fig = go.Figure()
        wh = fit_report.box_wh
        for fits, label, colour in ((~measures.unfit, "fit by an anchor", "#1f77b4"),
                                    (measures.unfit, "fit by none", "#d62728")):
            fig.add_trace(go.Scattergl(x=wh[fits, 0], y=wh[fits, 1], mode="markers", name=label,
                                       marker={"size": 4, "opacity": 0.5, "color": colour}))
        a = fit_report.anchor_wh(name)
        fig.add_trace(go.Scatter(x=a[:, 0], y=a[:, 1], mode="markers+text", name="anchors",
                                 text=[f"s{s}" for s in (32, 32, 32, 16, 16, 16, 8, 8, 8)], textposition="top center",
                                 marker={"size": 12, "symbol": "x", "color": "black"}))
        fig.update_layout(title=f"{name} anchors over the boxes at {size} px", xaxis_title="box width (px)",
                          yaxis_title="box height (px)", height=420)
        col.plotly_chart(fig, width="stretch", key=f"ds_anchor_plot_{name}")
        unfit = measures.unfit
        col.dataframe(pd.DataFrame({"image": fit_report.box_image[unfit],
                                    "class": [ctx.classes[k] for k in fit_report.box_label[unfit]],
                                    "width": wh[unfit, 0].round(1), "height": wh[unfit, 1].round(1),
                                    "best IoU": measures.best_iou[unfit].round(3)}).head(200),
                      hide_index=True, width="stretch")

with check:
    every = st.toggle("Check every split", key="ds_check_all",
                      help=f"Off: the {spec} split only. On: {', '.join(ctx.split_choices())} "
                           "(each split's index is built once, then cached)")
    report = loaders.dataset_report(ctx, ctx.split_choices() if every else [spec])
    counts = report.problem_counts
    if not counts:
        checked = [s.name for s in report.splits]
        which = (f"the {checked[0]} split" if len(checked) == 1 else
                 f"each of the {len(checked)} splits ({', '.join(checked)})")
        st.success(f"No problems: every image and annotation of {which} was read as it is."
                   + ("" if every or len(ctx.split_choices()) <= 1 else " Turn on “Check every split” for the others."))
    else:
        (st.success if report.ok else st.warning)(
            f"{sum(counts.values())} problems in {len(report.problems)} files. Nothing stops training: "
            "each is skipped, dropped or repaired as shown.")
        st.dataframe(pd.DataFrame([{"problem": k, "count": n, "action": KINDS[k][0], "meaning": KINDS[k][1]}
                                   for k, n in counts.items()]), hide_index=True, width="stretch")
        kinds = st.multiselect("Show files with", list(counts), key="ds_kinds", placeholder="every problem")
        rows = pd.DataFrame([{"problem": p.kind, "action": p.action, "file": p.file, "detail": p.detail,
                              "count": p.count} for p in report.problems if not kinds or p.kind in kinds])
        st.dataframe(rows, hide_index=True, width="stretch")
    st.caption("Splits: " + ", ".join(f"{s.name} ({count(s.images, 'image')}, {count(s.objects, 'object')})" for s in report.splits))
