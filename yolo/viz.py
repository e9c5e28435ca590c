"""Drawing on images: class colours, detection and ground-truth boxes, the YOLO grid, highlighted
cells, thumbnail tiles and heatmap overlays. Shared by the dashboard, scripts and tests.

Images are RGB uint8 numpy arrays (H, W, 3); a grey (H, W) or RGBA (H, W, 4) image is accepted and
converted. Boxes are (N, 4) pixel (x1, y1, x2, y2), numpy or torch. Colours are RGB tuples of ints.
Every function returns a new image and never modifies its input.
"""

from __future__ import annotations

import colorsys
import math
from typing import Sequence, Union

import cv2
import numpy as np

Color = tuple[int, int, int]
ColorLike = Union[Sequence[int], np.ndarray]

_GOLDEN = 0.618033988749895
_FONT = cv2.FONT_HERSHEY_SIMPLEX
COLORMAPS: tuple[str, ...] = ("jet", "turbo", "inferno", "viridis", "magma", "plasma", "hot", "bone")


# ----------------------------------------------------------------------------------- helpers
def _numpy(x) -> np.ndarray:
    """numpy view of an array-like or a torch tensor (detached, on the CPU); torch not imported."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _rgb_copy(image) -> np.ndarray:
    """A contiguous RGB uint8 (H, W, 3) copy of ``image`` (grey and RGBA converted)."""
    image = _numpy(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3]).copy()


def _color(c: ColorLike) -> Color:
    r, g, b = (int(v) for v in _numpy(c).reshape(-1)[:3])
    return (r, g, b)


def _text_color(background: Color) -> Color:
    """Black on light backgrounds, white on dark ones (ITU-R 601 luma)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def auto_thickness(height: int, width: int) -> int:
    """Line thickness that reads well at this image size: 1 px up to ~500 px, then ~1 px per 330."""
    return max(1, int(round(max(height, width) / 330)))


def _font_scale(height: int, width: int) -> float:
    return max(0.35, min(height, width) / 1000)


def class_colors(n: int) -> list[Color]:
    """``n`` distinct, deterministic RGB colours; colour i does not depend on n, so
    ``class_colors(k) == class_colors(n)[:k]``. Hues step by the golden ratio; saturation and
    value cycle so that far-apart indices with close hues still differ."""
    colors = []
    for i in range(n):
        hue = (i * _GOLDEN) % 1.0
        sat = (0.85, 0.6, 1.0)[(i // 7) % 3]
        val = (0.95, 0.75, 0.55)[(i // 21) % 3]
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colors.append((int(round(r * 255)), int(round(g * 255)), int(round(b * 255))))
    return colors


def _clip_boxes(boxes, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) xyxy -> (boxes ordered and clipped to the image as int32 (M, 4), kept indices (M,)).
    Boxes with non-finite coordinates or entirely outside the image are dropped."""
    b = _numpy(boxes).astype("float64").reshape(-1, 4)
    x1, x2 = np.minimum(b[:, 0], b[:, 2]), np.maximum(b[:, 0], b[:, 2])
    y1, y2 = np.minimum(b[:, 1], b[:, 3]), np.maximum(b[:, 1], b[:, 3])
    keep = (np.isfinite(b).all(axis=1) & (x2 >= 0) & (y2 >= 0)
            & (x1 <= width - 1) & (y1 <= height - 1))
    out = np.stack([np.clip(x1, 0, width - 1), np.clip(y1, 0, height - 1),
                    np.clip(x2, 0, width - 1), np.clip(y2, 0, height - 1)], axis=1)
    return np.rint(out[keep]).astype(np.int32), np.flatnonzero(keep)


def label_position(box: Sequence[int], text_size: tuple[int, int], image_size: tuple[int, int],
                   below: bool = False) -> tuple[int, int]:
    """Top-left (x, y) of a label of ``text_size`` (w, h) for ``box`` xyxy in an image of
    ``image_size`` (H, W): outside the box above its top edge (``below``: under its bottom edge)
    when there is room, else just inside; always entirely inside the image."""
    x1, y1, x2, y2 = (int(v) for v in box)
    tw, th = text_size
    height, width = image_size
    if below:
        y = y2 + 1 if y2 + 1 + th <= height else y2 - th
    else:
        y = y1 - th if y1 - th >= 0 else y1
    x = min(max(x1, 0), max(width - tw, 0))
    y = min(max(y, 0), max(height - th, 0))
    return x, y


def _draw_label(image: np.ndarray, text: str, box: Sequence[int], color: Color,
                scale: float, below: bool) -> None:
    """In place: ``text`` on a filled ``color`` rectangle next to ``box``."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    w, h = tw + 4, th + base + 4
    x, y = label_position(box, (w, h), image.shape[:2], below)
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), color, thickness=cv2.FILLED)
    cv2.putText(image, text, (x + 2, y + 2 + th), _FONT, scale, _text_color(color), 1, cv2.LINE_AA)


def _label_text(label: int | None, score: float | None, class_names: Sequence[str] | None) -> str:
    if label is None:
        name = ""
    elif class_names is not None and 0 <= label < len(class_names):
        name = str(class_names[label])
    else:
        name = str(label)
    if score is None:
        return name
    return f"{name} {score:.2f}".strip()


def _box_colors(labels: np.ndarray | None, n: int, color: ColorLike | None) -> list[Color]:
    if color is not None:
        return [_color(color)] * n
    if labels is None or n == 0:
        return [class_colors(1)[0]] * n
    palette = class_colors(int(max(labels.max(), 0)) + 1)
    return [palette[max(int(i), 0)] for i in labels]


# ----------------------------------------------------------------------------------- boxes
def draw_detections(image, boxes, labels=None, scores=None, class_names: Sequence[str] | None = None,
                    color: ColorLike | None = None, thickness: int | None = None,
                    show_labels: bool = True) -> np.ndarray:
    """Predicted boxes as solid rectangles with "name score" labels on a filled background.

    image (H, W, 3) uint8 RGB; boxes (N, 4) pixel xyxy (numpy or torch), clipped to the image (boxes
    entirely outside are skipped); labels (N,) int class indices or None; scores (N,) or None;
    class_names indexed by label; color: one RGB colour for all boxes instead of class colours;
    thickness: None for ``auto_thickness``. Higher scores are drawn last (on top). Returns a new
    (H, W, 3) uint8 image.
    """
    out = _rgb_copy(image)
    height, width = out.shape[:2]
    clipped, keep = _clip_boxes(boxes, height, width)
    labels_np = None if labels is None else _numpy(labels).reshape(-1).astype(np.int64)[keep]
    scores_np = None if scores is None else _numpy(scores).reshape(-1).astype(np.float64)[keep]
    colors = _box_colors(labels_np, len(clipped), color)
    t = thickness or auto_thickness(height, width)
    order = np.argsort(scores_np, kind="stable") if scores_np is not None else range(len(clipped))
    for i in order:
        x1, y1, x2, y2 = clipped[i].tolist()
        cv2.rectangle(out, (x1, y1), (x2, y2), colors[i], t, cv2.LINE_8)
        if show_labels:
            text = _label_text(None if labels_np is None else int(labels_np[i]),
                               None if scores_np is None else float(scores_np[i]), class_names)
            if text:
                _draw_label(out, text, clipped[i], colors[i], _font_scale(height, width), False)
    return out


def dashed_segments(boxes: np.ndarray, dash: int) -> np.ndarray:
    """Dash segments along the four edges of every box: boxes (N, 4) int xyxy -> (K, 2, 2) int32
    segment end points (x, y). Each edge starts with a dash at a corner; dash and gap are ``dash``
    pixels long."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = b.T
    starts = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1),
                       np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1).reshape(-1, 2)
    ends = np.stack([np.stack([x2, y1], 1), np.stack([x2, y2], 1),
                     np.stack([x1, y2], 1), np.stack([x1, y1], 1)], 1).reshape(-1, 2)
    lengths = np.linalg.norm(ends - starts, axis=1)  # (4N,)
    counts = np.maximum(1, np.ceil(lengths / (2 * dash))).astype(np.int64)
    edge = np.repeat(np.arange(len(lengths)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    t0 = np.minimum(k * 2.0 * dash, lengths[edge])
    t1 = np.minimum(t0 + dash - 1, lengths[edge])
    unit = (ends - starts) / np.maximum(lengths, 1e-9)[:, None]
    p0 = starts[edge] + unit[edge] * t0[:, None]
    p1 = starts[edge] + unit[edge] * t1[:, None]
    return np.rint(np.stack([p0, p1], axis=1)).astype(np.int32)


def draw_ground_truth(image, boxes, labels=None, class_names: Sequence[str] | None = None,
                      color: ColorLike | None = None, thickness: int | None = None,
                      show_labels: bool = True, dash: int | None = None) -> np.ndarray:
    """Ground-truth boxes as dashed rectangles in the class colour, labels under the box's bottom
    edge (predictions put theirs above the top edge), so both can be drawn on one image.

    Same arguments as ``draw_detections`` (no scores); dash: dash and gap length in pixels (None:
    4 x thickness). Returns a new (H, W, 3) uint8 image.
    """
    out = _rgb_copy(image)
    height, width = out.shape[:2]
    clipped, keep = _clip_boxes(boxes, height, width)
    labels_np = None if labels is None else _numpy(labels).reshape(-1).astype(np.int64)[keep]
    colors = _box_colors(labels_np, len(clipped), color)
    t = thickness or auto_thickness(height, width)
    dash = dash or 4 * t
    for c in sorted(set(colors)):
        idx = [i for i, ci in enumerate(colors) if ci == c]
        cv2.polylines(out, dashed_segments(clipped[idx], dash), False, c, t, cv2.LINE_8)
    if show_labels and labels_np is not None:
        for i in range(len(clipped)):
            text = _label_text(int(labels_np[i]), None, class_names)
            _draw_label(out, text, clipped[i], colors[i], _font_scale(height, width), True)
    return out


# ----------------------------------------------------------------------------------- grid
def _grid_shape(grid_size) -> tuple[int, int]:
    rows, cols = (grid_size, grid_size) if np.isscalar(grid_size) else tuple(grid_size)
    if int(rows) <= 0 or int(cols) <= 0:
        raise ValueError(f"grid size must be positive, got {grid_size}")
    return int(rows), int(cols)


def grid_lines(size: int, cells: int) -> np.ndarray:
    """Pixel positions of the lines that split ``size`` pixels into ``cells`` cells: the first pixel
    of each cell, ceil(k * size / cells) for k = 0..cells-1, then the last pixel size-1. (cells+1,)"""
    k = np.arange(cells)
    return np.append((k * size + cells - 1) // cells, size - 1)


def draw_grid(image, grid_size, color: ColorLike = (255, 255, 255), thickness: int = 1,
              alpha: float = 1.0) -> np.ndarray:
    """Overlay the S x S grid of a YOLO scale: lines at ``grid_lines`` (multiples of size/S) and
    the border. grid_size: S, or (rows, cols); alpha: line opacity. Returns a new image."""
    out = _rgb_copy(image)
    height, width = out.shape[:2]
    rows, cols = _grid_shape(grid_size)
    mask = np.zeros((height, width), dtype=bool)
    for pos, size, axis in ((grid_lines(height, rows), height, 0), (grid_lines(width, cols), width, 1)):
        starts = np.minimum(pos, size - thickness)  # the last line stays inside
        idx = np.clip((starts[:, None] + np.arange(thickness)).ravel(), 0, size - 1)
        if axis == 0:
            mask[idx, :] = True
        else:
            mask[:, idx] = True
    return _blend_mask(out, mask, np.asarray(_color(color), np.float64), alpha)


def _blend_mask(image: np.ndarray, mask: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """image where ~mask, (1 - alpha) * image + alpha * color where mask; color (3,) or (H, W, 3)."""
    if alpha >= 1.0:
        image[mask] = (color[mask] if color.ndim == 3 else color).astype(np.uint8)
        return image
    src = image[mask].astype(np.float64)
    col = color[mask] if color.ndim == 3 else color
    image[mask] = np.rint((1.0 - alpha) * src + alpha * col).astype(np.uint8)
    return image


def highlight_cells(image, cells, grid_size, color: ColorLike | Sequence[ColorLike] = (255, 0, 0),
                    alpha: float = 0.4) -> np.ndarray:
    """Tint grid cells: cells (K, 2) int (row, col) (list, numpy or torch) on an S x S grid
    (grid_size S or (rows, cols)); color: one RGB colour or (K, 3) one per cell (a later cell wins
    where cells repeat); alpha: tint opacity. Out-of-range cells are ignored. Returns a new image.
    Pixel (y, x) belongs to cell (y * rows // H, x * cols // W), matching ``grid_lines``."""
    out = _rgb_copy(image)
    height, width = out.shape[:2]
    rows, cols = _grid_shape(grid_size)
    rc = _numpy(cells).astype(np.int64).reshape(-1, 2)
    colors = _numpy(color).astype(np.float64)
    colors = np.broadcast_to(colors.reshape(-1, 3) if colors.ndim > 1 else colors, (len(rc), 3))
    ok = (rc[:, 0] >= 0) & (rc[:, 0] < rows) & (rc[:, 1] >= 0) & (rc[:, 1] < cols)
    rc, colors = rc[ok], colors[ok]
    cell_mask = np.zeros((rows, cols), dtype=bool)
    cell_color = np.zeros((rows, cols, 3), dtype=np.float64)
    cell_mask[rc[:, 0], rc[:, 1]] = True
    cell_color[rc[:, 0], rc[:, 1]] = colors
    row_of = np.arange(height) * rows // height  # (H,)
    col_of = np.arange(width) * cols // width  # (W,)
    mask = cell_mask[row_of][:, col_of]  # (H, W)
    pixel_color = cell_color[row_of][:, col_of]  # (H, W, 3)
    return _blend_mask(out, mask, pixel_color, alpha)


# ----------------------------------------------------------------------------------- sizes
def fitted_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(h, w) shrunk so that the long side is at most ``max_side`` (aspect kept, never enlarged,
    each side at least 1 pixel, so a 5000 x 3 strip stays drawable)."""
    h, w = int(size[0]), int(size[1])
    if not max_side or max(h, w) <= max_side:
        return h, w
    r = max_side / max(h, w)
    return max(1, round(h * r)), max(1, round(w * r))


def scale_boxes(boxes, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Boxes (N, 4) pixel xyxy in an image of ``from_size`` (h, w) -> float32 (N, 4) in the same
    image resized to ``to_size`` (h, w)."""
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return (_numpy(boxes).astype(np.float64).reshape(-1, 4) * [sx, sy, sx, sy]).astype(np.float32)


def fit(image, boxes=None, max_side: int | None = 1024, frame: tuple[int, int] | None = None
        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Shrink an image for display and map its boxes onto it.

    image (H, W, 3) uint8, possibly already reduced (e.g. a JPEG decoded at 1/4); boxes (N, 4)
    pixel xyxy in ``frame`` (h, w), the original image's size (None: the image's own size);
    max_side: the largest long side (None: no limit). Returns (image with long side <= max_side,
    area-filtered; boxes as float32 (N, 4) in its pixels, or None when boxes is None). The image
    is returned as it is when it already fits.
    """
    image = _numpy(image)
    size = image.shape[:2]
    target = fitted_size(size, max_side)
    if target != size:
        image = cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_AREA)
    if boxes is None:
        return image, None
    return image, scale_boxes(boxes, frame or size, target)


# ----------------------------------------------------------------------------------- tiles
def tile_images(images: Sequence, cols: int | None = None, pad: int = 4,
                pad_value: ColorLike = (255, 255, 255), captions: Sequence[str] | None = None,
                max_side: int | None = None) -> np.ndarray:
    """Thumbnails on one canvas, row by row: each image centred in a cell of the largest image's
    size, ``pad`` pixels between cells and around the edge. cols: None for ceil(sqrt(n));
    captions: optional text per image, written in a band above it (on ``pad_value``);
    max_side: shrink each image first so its long side is at most this (None: as they are), which
    bounds the canvas whatever the images. Returns (H, W, 3) uint8."""
    if len(images) == 0:
        raise ValueError("tile_images needs at least one image")
    tiles = [_rgb_copy(fit(im, None, max_side)[0]) for im in images]
    n = len(tiles)
    cols = max(1, min(cols or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / cols)
    cell_h = max(t.shape[0] for t in tiles)
    cell_w = max(t.shape[1] for t in tiles)
    scale = _font_scale(cell_h, cell_w)
    band = cv2.getTextSize("Ag", _FONT, scale, 1)[0][1] + 10 if captions is not None else 0
    background = _color(pad_value)
    canvas = np.empty((rows * (cell_h + band) + (rows + 1) * pad, cols * cell_w + (cols + 1) * pad, 3),
                      dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        top = pad + r * (cell_h + band + pad)
        left = pad + c * (cell_w + pad)
        if band and i < len(captions) and captions[i]:
            cv2.putText(canvas, str(captions[i]), (left + 2, top + band - 6), _FONT, scale,
                        _text_color(background), 1, cv2.LINE_AA)
        y = top + band + (cell_h - tile.shape[0]) // 2
        x = left + (cell_w - tile.shape[1]) // 2
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return canvas


# ----------------------------------------------------------------------------------- heatmaps
def _colormap_id(colormap: str | int) -> int:
    if isinstance(colormap, str):
        name = colormap.lower()
        if name not in COLORMAPS:
            raise ValueError(f"unknown colormap {colormap!r}; choose from {COLORMAPS}")
        return int(getattr(cv2, f"COLORMAP_{name.upper()}"))
    return int(colormap)


def apply_colormap(heatmap, colormap: str | int = "jet") -> np.ndarray:
    """heatmap (H, W) float in [0, 1] (clipped; NaN -> 0) -> (H, W, 3) uint8 RGB through an OpenCV
    colormap (a name in COLORMAPS or a cv2.COLORMAP_* id)."""
    h = np.nan_to_num(_numpy(heatmap).astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    if h.ndim != 2:
        raise ValueError(f"expected an (H, W) heatmap, got shape {h.shape}")
    levels = np.rint(np.clip(h, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, _colormap_id(colormap)), cv2.COLOR_BGR2RGB)


def overlay_heatmap(image, heatmap, opacity: float = 0.5, colormap: str | int = "jet") -> np.ndarray:
    """Blend a colour-mapped heatmap over an image: (1 - opacity) * image + opacity * colormap.

    image (H, W, 3) uint8 RGB; heatmap (h, w) float in [0, 1], resized (bilinear) to (H, W) when
    its size differs; opacity in [0, 1]: 0 returns the image, 1 the colour-mapped heatmap.
    Returns a new (H, W, 3) uint8 image.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    out = _rgb_copy(image)
    height, width = out.shape[:2]
    h = np.nan_to_num(_numpy(heatmap).astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    if h.shape != (height, width):
        if h.ndim != 2:
            raise ValueError(f"expected an (H, W) heatmap, got shape {h.shape}")
        h = cv2.resize(h, (width, height), interpolation=cv2.INTER_LINEAR)
    colored = apply_colormap(h, colormap).astype(np.float64)
    blended = (1.0 - opacity) * out.astype(np.float64) + opacity * colored
    return np.rint(blended).astype(np.uint8)
