"""Augmentations: what training sees. For a chosen sample and seed: the source images, the
letterboxed and the mosaic sample with the training transforms, and the grid with the anchor
cells each box is assigned to at a chosen resolution."""

import frame
import loaders
import numpy as np
import streamlit as st
from wording import count

from yolo import viz
from yolo.config import STRIDES

SIZES = list(range(224, 609, 32))

ctx = frame.page("Augmentations", "The same TrainDataset and train_transforms as training (yolo.data): "
                                   "a seed fixes every random choice, so a picture here is exactly what "
                                   "that sample would look like in a batch.")
frame.require_dataset(ctx)
choices = ctx.split_choices()
c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
spec = c1.selectbox("Split", choices, index=choices.index(ctx.default_split("train")), key="aug_split")
colour = st.session_state.get("aug_colour", True)
dataset = loaders.train_dataset(ctx, spec, colour=colour)
if not len(dataset):
    st.warning(f"Split {spec} has no usable images.")
    st.stop()
index = c2.number_input(f"Sample (0 to {len(dataset) - 1})", 0, len(dataset) - 1, 0, key="aug_index")
if "aug_seed" not in st.session_state:
    st.session_state["aug_seed"] = 0
if c3.button("New seed", key="aug_new_seed", help="Draw another set of random choices"):
    st.session_state["aug_seed"] += 1
seed = c3.number_input("Seed", 0, 2**31 - 1, key="aug_seed")
size = c4.select_slider("Image size (training draws one per batch)", SIZES, value=416, key="aug_size")
st.toggle("Colour jitter", value=True, key="aug_colour",
          help="Off: geometry only, easier to check boxes against objects")

plain = dataset.sample(int(index), size, int(seed), mosaic=False, augment=True)
raw_mosaic = dataset.sample(int(index), size, int(seed), mosaic=True, augment=False)
mosaic = dataset.sample(int(index), size, int(seed), mosaic=True, augment=True)
drawn = dataset.uses_mosaic(int(seed))


def with_boxes(sample: dict) -> np.ndarray:
    return viz.draw_ground_truth(sample["image"], sample["boxes"], sample["labels"], class_names=ctx.classes)


st.subheader("Source images")
parts = raw_mosaic["meta"]["parts"]
sources = [loaders.load_view(ctx, spec, p, loaders.THUMB_SIDE) for p in parts]
st.image(viz.tile_images([with_boxes(s) for s in sources], cols=4,
                         captions=[f"{'main' if k == 0 else 'partner'}: {s['id']}" for k, s in enumerate(sources)]),
         width="stretch")

st.subheader(f"Training samples at {size} x {size}")
st.caption(f"With p = {dataset.mosaic_p:.2f} this seed {'draws a mosaic' if drawn else 'draws the plain sample'}; "
           "both are shown.")
a, b, c = st.columns(3)
a.image(with_boxes(plain), caption=f"letterbox + transforms ({count(len(plain['labels']), 'box')})", width="stretch")
b.image(with_boxes(raw_mosaic), caption=f"mosaic before transforms ({count(len(raw_mosaic['labels']), 'box')})",
        width="stretch")
c.image(with_boxes(mosaic), caption=f"mosaic + transforms ({count(len(mosaic['labels']), 'box')})", width="stretch")

st.subheader("Grid and assigned anchor cells")
g1, g2 = st.columns([1, 2])
which = g1.radio("Sample", ["mosaic + transforms", "letterbox + transforms"], key="aug_grid_sample")
stride = g1.radio("Scale (stride)", list(STRIDES), format_func=lambda s: f"{s} ({size // s} x {size // s} grid)",
                  key="aug_stride")
show_ignored = g1.checkbox("Show ignored slots", value=True, key="aug_ignored",
                           help="Other anchors with shape IoU > 0.5 at a free slot: neither object nor background")
chosen = mosaic if which.startswith("mosaic") else plain
cells = loaders.assigned_cells(chosen["boxes"], chosen["labels"], size, ctx.classes)
here = cells[cells["stride"] == stride]
picture = viz.draw_grid(chosen["image"], size // stride, color=(255, 255, 255), alpha=0.5)
palette = viz.class_colors(len(ctx.classes))
ignored = here[here["state"] == "ignored"]
if show_ignored and len(ignored):
    picture = viz.highlight_cells(picture, ignored[["row", "col"]].to_numpy(), size // stride,
                                  color=(128, 128, 128), alpha=0.45)
owned = here[here["state"] == "assigned"]
if len(owned):
    colours = [palette[ctx.classes.index(name)] for name in owned["class"]]
    picture = viz.highlight_cells(picture, owned[["row", "col"]].to_numpy(), size // stride,
                                  color=colours, alpha=0.55)
picture = with_boxes({**chosen, "image": picture})
g2.image(picture, caption=f"stride {stride}: {len(owned)} slots own a box, {len(ignored)} ignored",
         width="stretch")
st.dataframe(cells, hide_index=True, width="stretch")
st.caption("Each box is assigned, on every scale, to the best-matching free anchor slot of the cell "
           "holding its centre (yolo.targets.encode); large boxes match stride 32's anchors, small ones "
           "stride 8's.")
