"""Label review: the images whose labels the model most doubts, worst first; per suspect box the
kind of likely mistake and its score, ground truth dashed and the suspect box solid; accept the
model's suggestion, delete the label or keep it. Decisions go to a review file beside the dataset
(``yolo.data.decisions``; in the cache folder when the dataset is read-only), so they survive a
restart and can be undone; ``python -m yolo.data apply-review`` writes the corrected copy. Scores:
``yolo.review`` over the Evaluate page's cached predictions (nothing re-runs the model)."""

import math
from pathlib import Path

import evaluation
import frame
import loaders
import models
import numpy as np
import streamlit as st

from yolo import viz
from yolo.data.decisions import Decision, ReviewLog, review_file_path
from yolo.review import ACTIONS, ReviewConfig, review_predictions, thresholds_for, truth_for

SUSPECT = (255, 0, 255)  # the suspect box: one colour, solid, apart from the labels' class colours


@st.cache_data(max_entries=8, show_spinner="Scoring the labels…")
def scores(path: str, mtime_ns: int, conf, _index, index_key: str):
    preds = evaluation.load_predictions(Path(path))
    return review_predictions(preds, truth_for(_index, preds.image_ids), ReviewConfig(conf=conf))


def decision(row: dict, action: str) -> Decision:
    box = None if row["gt_in_image"] < 0 else tuple(float(row[c]) for c in ("x1", "y1", "x2", "y2"))
    new_box = None if math.isnan(row["sx1"]) else tuple(float(row[c]) for c in ("sx1", "sy1", "sx2", "sy2"))
    return Decision(str(row["image_id"]), row["kind"], action, gt=int(row["gt_in_image"]), label=int(row["label"]),
                    box=box, new_label=int(row["suggested_label"]), new_box=new_box)


ctx = frame.page("Label review", "Where the model's cached predictions say a label is probably wrong: missing, "
                                 "wrong class, loose box, spurious or duplicate (yolo.review).")
model = models.load_model(ctx)
if not models.check_classes(model, ctx, "Labels are judged by class, so nothing can be reviewed."):
    st.stop()
root = frame.require_dataset(ctx)
choices = ctx.split_choices()
spec = st.selectbox("Split", choices, index=choices.index(ctx.default_split("val") or choices[0]), key="lr_split")
index = loaders.load_index(ctx, spec)
path = evaluation.predictions_file(ctx, model, spec, len(index))
preds = evaluation.load_predictions(path)
if preds is None:
    st.info(f"No saved predictions of this model on all {len(index)} images of **{spec}** yet (the Evaluate page "
            "shares them). The model runs once; the review then works from the saved file.")
    if st.button(f"Run the model over {len(index)} images", type="primary", key="lr_run"):
        evaluation.compute_predictions(ctx, model, spec, len(index), path)
        st.rerun()
    st.stop()

try:
    conf, source = thresholds_for(ctx.checkpoint, ctx.classes) if ctx.checkpoint else (0.5, "one threshold 0.5")
except ValueError as err:  # a thresholds file beside the checkpoint that cannot be used
    st.warning(f"{err}. Using one threshold, 0.5.")
    conf, source = 0.5, "one threshold 0.5"
result = scores(str(path), path.stat().st_mtime_ns, conf, index, f"{root}|{spec}|{loaders.stamp(root, spec)}")
log_path = review_file_path(root, spec)
log = ReviewLog.open(log_path, root, spec, ctx.classes)
current = log.current()

c1, c2, c3 = st.columns([2, 1, 1])
floor = c1.slider("Show boxes scoring at least", 0.05, 1.0, 0.3, 0.05, key="lr_floor")
c2.metric("Images to review", int((result.images["score"] >= floor).sum()))
c3.metric("Decisions", len(current))
st.caption(f"Confident means above {source}. Decisions are saved to `{log_path}`.")
if st.button("Undo the last decision", key="lr_undo", disabled=not log.history):
    log.undo().save()
    st.rerun()

shown = result.images[result.images["score"] >= floor].reset_index(drop=True)
if shown.empty:
    st.success("No box scores that high: nothing to review at this level.")
    st.stop()
by_label = {f"#{n + 1} {r.image_id} · {r.kind} {r.score:.2f}": r.image for n, r in enumerate(shown.itertuples())}
image = by_label[st.selectbox("Image (worst first)", list(by_label), key="lr_image")]
rows = result.boxes[(result.boxes["image"] == image) & (result.boxes["score"] >= floor)]
rows = rows.sort_values("score", ascending=False).to_dict("records")

at = evaluation.dataset_position(ctx, spec, preds.image_ids, int(image))
sample = loaders.load_view(ctx, spec, at, loaders.DISPLAY_SIDE)
suspects = [(r["x1"], r["y1"], r["x2"], r["y2"]) if r["kind"] in ("spurious", "duplicate") or math.isnan(r["sx1"])
            else (r["sx1"], r["sy1"], r["sx2"], r["sy2"]) for r in rows]
texts = [f"{n + 1} {r['kind']}" + (f"->{r['suggested_class']}" if r["kind"] in ("wrong_class", "missing") else "")
         for n, r in enumerate(rows)]
picture = viz.draw_ground_truth(sample["image"], sample["boxes"], sample["labels"], class_names=ctx.classes)
picture = viz.draw_detections(picture, viz.scale_boxes(np.array(suspects, np.float32).reshape(-1, 4),
                                                       sample["orig_size"], picture.shape[:2]),
                              np.arange(len(rows)), [r["score"] for r in rows], texts, color=SUSPECT)
st.image(picture, caption="Labels dashed in their class colour; each suspect box solid magenta with its number, "
                          "kind and score", width="stretch")

for n, r in enumerate(rows):
    d = decision(r, "keep")
    made = current.get(d.key)
    what = (f"a {r['suggested_class']} here ({r['pred_score']:.2f}) has no label" if r["kind"] == "missing" else
            f"label {r['class']} (#{r['gt_in_image']}): {r['kind'].replace('_', ' ')}")
    left, *buttons = st.columns([4, 1.3, 1, 1])
    left.markdown(f"**{n + 1}.** {what}, score {r['score']:.2f}" + (f" · decided: **{made.action}**" if made else ""))
    options = [("accept", f"Accept: {ACTIONS[r['kind']]}")] + \
              ([] if r["kind"] == "missing" else [("delete", "Delete the label")]) + [("keep", "Keep")]
    for col, (action, text) in zip(buttons, options):
        if col.button(text, key=f"lr_{action}_{image}_{r['gt_in_image']}_{n}",
                      type="primary" if made is not None and made.action == action else "secondary"):
            log.decide(decision(r, action)).save()
            st.rerun()

with st.expander("Write the corrected copy"):
    st.code(f"python -m yolo.data apply-review {root} {log_path} OUT", language="bash")
    st.caption("OUT: a new folder; the dataset itself is never modified. Add --to voc, kaggle, yolo or coco "
               "for another layout.")
