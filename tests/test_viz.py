"""yolo.viz: drawn pixels land where they should, in the class colour, and inputs stay untouched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from yolo import viz


@pytest.fixture
def image() -> np.ndarray:
    """A 416 x 416 grey RGB image with a gradient, so an unchanged pixel is recognisable."""
    ramp = np.linspace(40, 90, 416, dtype=np.float64)
    grey = np.rint(ramp[None, :] * np.ones((416, 1))).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


# ----------------------------------------------------------------------------------- colours
def test_class_colors_distinct_deterministic_and_prefix_stable():
    colors = viz.class_colors(200)
    assert len(set(colors)) == 200
    assert viz.class_colors(200) == colors
    assert viz.class_colors(20) == colors[:20]
    assert all(isinstance(v, int) and 0 <= v <= 255 for c in colors for v in c)
    first = np.array(colors[:20], dtype=float)
    gaps = np.linalg.norm(first[:, None] - first[None], axis=2) + np.eye(20) * 1e9
    assert gaps.min() > 25  # the 20 VOC classes are visibly different


# ----------------------------------------------------------------------------------- detections
def test_draw_detections_edges_in_class_colour_and_input_unchanged(image):
    before = image.copy()
    boxes = np.array([[50, 60, 200, 300], [220, 100, 400, 150]], dtype=np.float32)
    labels = np.array([3, 11])
    out = viz.draw_detections(image, boxes, labels, scores=[0.9, 0.4],
                              class_names=[f"c{i}" for i in range(20)], thickness=2)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    colors = viz.class_colors(20)
    for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
        c = colors[label]
        ym, xm = (y1 + y2) // 2, (x1 + x2) // 2
        for y, x in ((ym, x1), (ym, x2), (y1, xm), (y2, xm), (y1, x1), (y2, x2)):
            assert tuple(out[y, x]) == c, (label, y, x)
        assert tuple(out[ym, xm]) == tuple(image[ym, xm])  # the inside is not filled
    # the label background sits above the box in its colour
    assert tuple(out[60 - 3, 52]) == colors[3]


def test_draw_detections_accepts_torch_and_colour_override(image):
    boxes = torch.tensor([[10.0, 10.0, 100.0, 100.0]])
    out = viz.draw_detections(image, boxes, torch.tensor([0]), color=(1, 2, 3), show_labels=False)
    assert tuple(out[55, 10]) == (1, 2, 3)
    assert tuple(out[5, 10]) == tuple(image[5, 10])  # no label drawn


def test_boxes_partly_or_fully_outside_are_clipped_or_skipped(image):
    boxes = np.array([[-50, -40, 100, 120],  # top-left corner outside
                      [350, 380, 900, 700],  # bottom-right outside
                      [500, 500, 600, 600],  # entirely outside
                      [np.nan, 0, 10, 10]])  # invalid
    out = viz.draw_detections(image, boxes, [1, 2, 3, 4], scores=[0.5, 0.6, 0.7, 0.8])
    colors = viz.class_colors(5)
    assert tuple(out[60, 0]) == colors[1] and tuple(out[0, 50]) == colors[1]
    assert tuple(out[415, 380]) == colors[2] and tuple(out[400, 415]) == colors[2]
    assert out.shape == image.shape
    only_outside = viz.draw_detections(image, boxes[2:], [3, 4])
    np.testing.assert_array_equal(only_outside, image)
    np.testing.assert_array_equal(viz.draw_detections(image, np.zeros((0, 4)), []), image)


@pytest.mark.parametrize("box", [(0, 0, 30, 30), (400, 0, 415, 20), (0, 400, 20, 415),
                                 (380, 390, 415, 415), (10, 10, 405, 405)])
@pytest.mark.parametrize("below", [False, True])
def test_label_position_stays_inside_image(box, below):
    x, y = viz.label_position(box, (60, 18), (416, 416), below=below)
    assert 0 <= x and x + 60 <= 416 and 0 <= y and y + 18 <= 416


def test_label_text_never_overflows_image(image):
    out = viz.draw_detections(image, [[400, 0, 415, 10]], [0], [0.99],
                              class_names=["a-long-class-name"])
    assert out.shape == image.shape  # drawing clipped text would otherwise fail silently
    assert (out[:30, 300:] != image[:30, 300:]).any()  # the label was moved left, inside


# ----------------------------------------------------------------------------------- ground truth
def test_draw_ground_truth_is_dashed_in_class_colour(image):
    before = image.copy()
    out = viz.draw_ground_truth(image, np.array([[40, 40, 240, 200]]), [5], thickness=1, dash=8,
                                show_labels=False)
    np.testing.assert_array_equal(image, before)
    c = viz.class_colors(6)[5]
    top = out[40, 40:241]
    on = np.all(top == c, axis=1)
    assert on[0] and on[:8].all() and not on[8:16].any() and on[16:24].all()  # dash, gap, dash
    for y, x in ((40, 40), (40, 240), (200, 240), (200, 40)):  # every corner starts a dash
        assert tuple(out[y, x]) == c
    assert 0.35 < on.mean() < 0.65


def test_ground_truth_labels_go_below_the_box(image):
    out = viz.draw_ground_truth(image, [[40, 40, 240, 200]], [5], class_names=["x"] * 6)
    c = viz.class_colors(6)[5]
    assert tuple(out[204, 42]) == c  # filled label background under the bottom edge
    assert tuple(out[36, 42]) == tuple(image[36, 42])  # nothing above the top edge


# ----------------------------------------------------------------------------------- grid
def test_grid_lines_at_multiples_of_size_over_s(image):
    out = viz.draw_grid(image, 13, color=(255, 0, 0))
    line = np.all(out == (255, 0, 0), axis=2)
    expected = set(range(0, 416, 32)) | {415}
    assert set(np.flatnonzero(line[5])) >= expected  # row 5 is not a line: only columns drawn
    assert set(np.flatnonzero(line[5])) == expected
    assert set(np.flatnonzero(line[:, 5])) == expected
    assert viz.grid_lines(416, 13).tolist() == list(range(0, 416, 32)) + [415]
    np.testing.assert_array_equal(out[~line], image[~line])


def test_grid_non_square_and_alpha(image):
    out = viz.draw_grid(image[:, :320], (4, 10), color=(0, 0, 0), alpha=0.5)
    assert out.shape == (416, 320, 3)
    assert tuple(out[5, 32]) == tuple(np.rint(image[5, 32] * 0.5).astype(np.uint8))
    assert tuple(out[104, 7]) == tuple(np.rint(image[104, 7] * 0.5).astype(np.uint8))
    assert tuple(out[5, 33]) == tuple(image[5, 33])


def test_highlight_cells(image):
    before = image.copy()
    out = viz.highlight_cells(image, [(2, 3), (12, 12), (20, 0)], 13, color=(255, 0, 0), alpha=1.0)
    np.testing.assert_array_equal(image, before)
    tinted = np.all(out == (255, 0, 0), axis=2)
    expected = np.zeros((416, 416), dtype=bool)
    expected[64:96, 96:128] = True
    expected[384:416, 384:416] = True  # (20, 0) is off the grid: ignored
    np.testing.assert_array_equal(tinted, expected)
    half = viz.highlight_cells(image, torch.tensor([[0, 0]]), 13, color=(200, 100, 0), alpha=0.5)
    expect = np.rint(0.5 * image[10, 10] + 0.5 * np.array([200, 100, 0])).astype(np.uint8)
    assert tuple(half[10, 10]) == tuple(expect)
    assert tuple(half[40, 40]) == tuple(image[40, 40])
    per_cell = viz.highlight_cells(image, [(0, 0), (0, 1)], 13, color=[(1, 1, 1), (2, 2, 2)], alpha=1)
    assert tuple(per_cell[0, 0]) == (1, 1, 1) and tuple(per_cell[0, 40]) == (2, 2, 2)


# ----------------------------------------------------------------------------------- tiles
def test_tile_images_layout():
    images = [np.full((10, 20, 3), i * 50, np.uint8) for i in range(5)]
    out = viz.tile_images(images, cols=3, pad=2, pad_value=(255, 255, 255))
    assert out.shape == (2 * 10 + 3 * 2, 3 * 20 + 4 * 2, 3)
    assert (out[2:12, 2:22] == 0).all() and (out[14:24, 24:44] == 200).all()
    assert (out[14:24, 46:66] == 255).all()  # the empty sixth cell
    captioned = viz.tile_images(images, cols=3, pad=2, captions=["a"] * 5)
    assert captioned.shape[0] > out.shape[0]
    grey = viz.tile_images([np.zeros((4, 4), np.uint8), np.zeros((6, 2, 4), np.uint8)], pad=0)
    assert grey.shape == (6, 8, 3)
    with pytest.raises(ValueError):
        viz.tile_images([])


# ----------------------------------------------------------------------------------- heatmaps
def test_overlay_heatmap_opacity_ends(image):
    heat = np.random.default_rng(0).random((416, 416))
    before = image.copy()
    np.testing.assert_array_equal(viz.overlay_heatmap(image, heat, opacity=0.0), image)
    full = viz.overlay_heatmap(image, heat, opacity=1.0)
    levels = np.rint(heat * 255).astype(np.uint8)
    expected = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(full, expected)
    np.testing.assert_array_equal(image, before)
    half = viz.overlay_heatmap(image, heat, opacity=0.5).astype(int)
    assert np.abs(half - (image.astype(int) + expected.astype(int)) / 2).max() <= 0.5


def test_colormap_is_rgb_and_heatmap_is_resized(image):
    cold, hot = viz.apply_colormap(np.array([[0.0, 1.0]]))[0]
    assert cold[2] > cold[0] and hot[0] > hot[2]  # jet: blue at 0, red at 1, in RGB order
    small = np.array([[0.0, 1.0], [np.nan, 0.5]])
    out = viz.overlay_heatmap(image, small, opacity=1.0, colormap="inferno")
    assert out.shape == image.shape
    with pytest.raises(ValueError):
        viz.overlay_heatmap(image, small, opacity=2.0)
    with pytest.raises(ValueError):
        viz.apply_colormap(small, "nope")


def test_rejects_non_uint8_images():
    with pytest.raises(ValueError):
        viz.draw_grid(np.zeros((8, 8, 3), np.float32), 2)


# ----------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("size, max_side, expected", [
    ((4000, 6000), 1024, (683, 1024)),  # 4000 * 1024 / 6000 = 682.67
    ((6000, 4000), 384, (384, 256)),
    ((375, 500), 1024, (375, 500)),  # never enlarged
    ((3, 5000), 384, (1, 384)),  # 0.23 rounds to 0: kept at one pixel
    ((5000, 3), 384, (384, 1)),
    ((4000, 6000), None, (4000, 6000)),
])
def test_fitted_size_hand_worked(size, max_side, expected):
    assert viz.fitted_size(size, max_side) == expected


def test_fit_shrinks_and_maps_boxes_from_the_original_frame():
    image = np.zeros((1000, 1500, 3), np.uint8)  # e.g. a 6000 x 4000 photo decoded at 1/4
    boxes = np.array([[600, 400, 3000, 2000], [0, 0, 6000, 4000]], np.float32)  # in the 6000 x 4000 frame
    out, mapped = viz.fit(image, boxes, 300, frame=(4000, 6000))
    assert out.shape == (200, 300, 3)
    np.testing.assert_allclose(mapped, [[30, 20, 150, 100], [0, 0, 300, 200]])  # x 300/6000, y 200/4000
    same, kept = viz.fit(image, boxes[:1] / 4, 2000)  # fits already: the image itself, boxes as they are
    assert same is image and np.allclose(kept, boxes[:1] / 4)
    assert viz.fit(image, None, 300)[1] is None


def test_tile_images_max_side_bounds_the_canvas():
    big = [np.zeros((4000, 6000, 3), np.uint8), np.zeros((6000, 4000), np.uint8)]
    canvas = viz.tile_images(big, cols=2, pad=4, max_side=100)
    assert canvas.shape == (100 + 2 * 4, 2 * 100 + 3 * 4, 3)  # cells of the largest thumbnail (100 x 100)


@pytest.mark.parametrize("shape", [(3, 5000, 3), (5000, 3, 3), (1, 1, 3)])
def test_thin_images_draw_everywhere(shape):
    """A 5000 x 3 strip (and a single pixel) through every drawing function and a thumbnail."""
    image = np.full(shape, 90, np.uint8)
    h, w = shape[:2]
    boxes = np.array([[0, 0, w - 1, h - 1], [w / 4, 0, w / 2, h]], np.float32)
    outputs = [
        viz.draw_detections(image, boxes, [0, 1], [0.9, 0.5], class_names=["cat", "dog"]),
        viz.draw_ground_truth(image, boxes, [0, 1], class_names=["cat", "dog"]),
        viz.draw_grid(image, 13), viz.highlight_cells(image, [[0, 0], [12, 12]], 13),
        viz.overlay_heatmap(image, np.random.default_rng(0).random((13, 13))),
    ]
    assert all(o.shape == shape and o.dtype == np.uint8 for o in outputs)
    thumb, mapped = viz.fit(image, boxes, 384)
    assert max(thumb.shape[:2]) <= 384 and min(thumb.shape[:2]) >= 1
    assert viz.tile_images([thumb, outputs[0]], captions=["a", "b"], max_side=384).ndim == 3
