"""Ground truth <-> per-scale tensors: ``encode`` and its mirrors ``decode_targets``/``decode_outputs``.

Target layout, one tensor per scale (strides 32, 16, 8):
    (B, 3, S, S, 6) float: [objectness, x, y, w, h, class]
    objectness  1 = the slot owns a box, 0 = background, -1 = ignore (neither)
    x, y        the box centre's offset inside its cell, in [0, 1)
    w, h        the box size in grid cells (fraction of the image * S)
    class       class index (float-stored)
Cell (i, j) is column i (x) and row j (y): a slot is ``targets[b, anchor, j, i]``.

Assignment (the course's rule, vectorised): for each box, on each scale independently, the
three anchors are ranked by shape IoU with the box; the best-ranked anchor whose slot is free
(objectness 0) gets the box, and every lower-ranked anchor of that scale whose slot is free and
whose shape IoU exceeds ``ignore_iou`` is marked -1. Boxes that share a cell are settled in
their input order (earlier boxes first), exactly as the course's per-box loop does; this is done
in rounds, one round per depth of sharing, each round vectorised over all boxes of the batch.
An option (``anchor_ratio``, the recipe ablation's "more positives") then gives a box further free
or ignored slots of anchors close to its shape; the course's owners are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from yolo.boxes import cxcywh_to_xyxy, wh_iou
from yolo.config import ANCHORS, STRIDES, grid_sizes

TARGET_CHANNELS = 6


def _anchor_tensor(anchors: Sequence, device: torch.device) -> Tensor:
    """anchors (3 scales x 3 anchors x (w, h)) -> Tensor[3, 3, 2] float32 on ``device``."""
    return torch.as_tensor(anchors, dtype=torch.float32, device=device)


def _rank_in_group(keys: Tensor) -> Tensor:
    """For integer keys (Tensor[N]), the number of earlier entries with the same key."""
    n = keys.numel()
    order = torch.sort(keys, stable=True).indices
    sorted_keys = keys[order]
    position = torch.arange(n, device=keys.device)
    is_start = torch.ones(n, dtype=torch.bool, device=keys.device)
    is_start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    group_start = torch.cummax(torch.where(is_start, position, 0), dim=0).values
    rank = torch.empty_like(keys)
    rank[order] = position - group_start
    return rank


def _cell_values(boxes: Tensor, labels: Tensor, size: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Each box's cell on a grid of ``size`` and the 6 target values it writes there.

    Returns:
        gi, gj (Tensor[N]) column and row; values (Tensor[N, 6]) [1, x, y, w, h, class] in ``dtype``.
    """
    # The course computes S * x in float64 (Python floats) and stores float32: the same here, so a
    # centre on a grid line (x = 15/26 at S = 26) lands in the course's cell, bit for bit.
    scaled = boxes.double() * size  # (N, 4) float64: S*x, S*y, S*w, S*h
    gi = scaled[:, 0].floor().long().clamp_(0, size - 1)  # column (x = 1.0 stays in the last cell)
    gj = scaled[:, 1].floor().long().clamp_(0, size - 1)  # row
    values = torch.stack(
        (
            torch.ones_like(scaled[:, 0]),
            scaled[:, 0] - gi,
            scaled[:, 1] - gj,
            scaled[:, 2],
            scaled[:, 3],
            labels.to(scaled.dtype),
        ),
        dim=1,
    ).to(dtype)  # (N, 6), rounded to float32 once, as the course's torch.tensor(...) does
    return gi, gj, values


def _encode_scale(
    target: Tensor,
    boxes: Tensor,
    labels: Tensor,
    batch_idx: Tensor,
    anchors: Tensor,
    ignore_iou: float,
) -> None:
    """Fill one scale's target (Tensor[B, 3, S, S, 6], zeros) in place from normalised cxcywh boxes."""
    size = target.shape[2]
    ious = wh_iou(boxes[:, 2:].float(), anchors)  # (N, 3)
    ranked = torch.argsort(ious, dim=1, descending=True, stable=True)  # (N, 3) anchor ids, best first
    gi, gj, values = _cell_values(boxes, labels, size, target.dtype)
    rank = _rank_in_group((batch_idx * size + gj) * size + gi)
    rounds = int(rank.max()) + 1 if rank.numel() else 0
    for r in range(rounds):  # one pass per depth of cell sharing, usually a single pass
        sel = torch.nonzero(rank == r).squeeze(1)
        b, j, i, order = batch_idx[sel], gj[sel], gi[sel], ranked[sel]
        state = target[b, :, j, i, 0]  # (n, 3) objectness of the three slots of each box's cell
        free_ranked = (state == 0).gather(1, order)  # (n, 3) free flags, best anchor first
        has_free = free_ranked.any(dim=1)
        first = free_ranked.int().argmax(dim=1)  # position (in rank order) of the first free slot
        chosen = order.gather(1, first[:, None]).squeeze(1)  # anchor id
        later = torch.arange(3, device=order.device)[None, :] > first[:, None]
        iou_ranked = ious[sel].gather(1, order)
        ignore = free_ranked & later & (iou_ranked > ignore_iou) & has_free[:, None]
        k = torch.nonzero(ignore)
        target[b[k[:, 0]], order[k[:, 0], k[:, 1]], j[k[:, 0]], i[k[:, 0]], 0] = -1.0
        take = torch.nonzero(has_free).squeeze(1)
        target[b[take], chosen[take], j[take], i[take]] = values[sel[take]]


def _add_shape_positives(
    target: Tensor, boxes: Tensor, labels: Tensor, batch_idx: Tensor, anchors: Tensor, ratio: float
) -> None:
    """More positives per object, after the course's rule (whose owners it never changes).

    Every anchor of this scale whose width and height are both within a factor ``ratio`` of the
    box's (``max(w / a_w, a_w / w, h / a_h, a_h / h) < ratio``, YOLOv5's shape test) also owns the
    box in the box's cell when that slot is not owned yet (free or ignored); a slot several boxes
    want goes to the earliest box. Fills ``target`` (Tensor[B, 3, S, S, 6]) in place.
    """
    size = target.shape[2]
    gi, gj, values = _cell_values(boxes, labels, size, target.dtype)
    r = boxes[:, None, 2:].float() / anchors[None]  # (N, 3, 2)
    worst = torch.maximum(r, 1 / r).amax(dim=2)  # (N, 3)
    n, a = torch.nonzero(worst < ratio, as_tuple=True)  # ordered by box, then anchor
    b, j, i = batch_idx[n], gj[n], gi[n]
    open_ = target[b, a, j, i, 0] != 1
    n, a, b, j, i = n[open_], a[open_], b[open_], j[open_], i[open_]
    first = _rank_in_group(((b * 3 + a) * size + j) * size + i) == 0
    target[b[first], a[first], j[first], i[first]] = values[n[first]]


def encode(
    boxes: Tensor,
    labels: Tensor,
    batch_idx: Tensor,
    batch_size: int,
    image_size: int,
    anchors: Sequence = ANCHORS,
    ignore_iou: float = 0.5,
    anchor_ratio: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Ground truth of a whole batch -> the three per-scale target tensors.

    Args:
        boxes (Tensor[N, 4]): normalised (cx, cy, w, h), fractions of the image side; float64
            boxes are used as they are (the course's Python floats), float32 ones exactly widened.
        labels (Tensor[N]): class indices.
        batch_idx (Tensor[N]): image index of each box, in [0, batch_size).
        batch_size: B.
        image_size: input side in pixels, a multiple of 32 (grids are image_size / stride).
        anchors: (3 scales, 3 anchors, (w, h)) fractions of the image, largest scale first.
        ignore_iou: shape IoU above which a free, non-assigned anchor slot is marked -1.
        anchor_ratio: 0 for the course's rule alone; > 1 also gives each box every other anchor
            of a scale whose sides are within this factor of the box's (``_add_shape_positives``).

    Returns:
        (Tensor[B, 3, S, S, 6] for S = image_size/32, /16, /8), on ``boxes.device``, float32.
    """
    device = boxes.device
    if not boxes.is_floating_point():
        boxes = boxes.to(torch.float32)
    anchor_t = _anchor_tensor(anchors, device)
    labels, batch_idx = labels.to(device).long(), batch_idx.to(device).long()
    targets = []
    for s, size in enumerate(grid_sizes(image_size)):
        target = torch.zeros(batch_size, 3, size, size, TARGET_CHANNELS, device=device)
        if boxes.numel():
            _encode_scale(target, boxes, labels, batch_idx, anchor_t[s], ignore_iou)
            if anchor_ratio > 0:
                _add_shape_positives(target, boxes, labels, batch_idx, anchor_t[s], anchor_ratio)
        targets.append(target)
    return tuple(targets)  # type: ignore[return-value]


def decode_targets(targets: Sequence[Tensor], scale: int = -1) -> tuple[Tensor, Tensor, Tensor]:
    """The mirror of ``encode`` for one scale: every box owned by a slot of that scale.

    Each box is encoded once per scale (when a slot is free), so decoding one scale gives each
    box once; the default is the finest scale, where slots are rarely shared.

    Returns:
        boxes (Tensor[M, 4]) normalised (cx, cy, w, h); labels (Tensor[M]); batch_idx (Tensor[M]),
        ordered by (image, anchor, row, column).
    """
    target = targets[scale]
    size = target.shape[2]
    b, _, j, i = torch.nonzero(target[..., 0] == 1, as_tuple=True)
    cell = target[b, _, j, i]  # (M, 6)
    cx = (i.to(cell.dtype) + cell[:, 1]) / size
    cy = (j.to(cell.dtype) + cell[:, 2]) / size
    boxes = torch.stack((cx, cy, cell[:, 3] / size, cell[:, 4] / size), dim=1)
    return boxes, cell[:, 5].long(), b


def unravel_cells(flat_index: Tensor, anchors_per_scale: int, size: int) -> tuple[Tensor, ...]:
    """Flat index into a (B, A, S, S) grid -> (image, anchor, row, column), each Tensor[K]."""
    col = flat_index % size
    row = (flat_index // size) % size
    anchor = (flat_index // (size * size)) % anchors_per_scale
    image = flat_index // (size * size * anchors_per_scale)
    return image, anchor, row, col


def decode_cells(
    raw: Tensor,
    col: Tensor,
    row: Tensor,
    anchor_wh: Tensor,
    stride: int,
    size: int,
    max_log_wh: float = 10.0,
) -> Tensor:
    """Box of each raw prediction row, the single home of the YOLOv3 box formula.

    Args:
        raw (Tensor[K, 5 + C]): raw rows (tx, ty at 1:3, tw, th at 3:5).
        col, row (Tensor[K]): the cell of each row.
        anchor_wh (Tensor[K, 2]): the row's anchor as fractions of the image.
        stride, size: the scale's stride and grid side (the input side is stride * size).

    Returns:
        Tensor[K, 4] in (x1, y1, x2, y2) pixels of the input:
        cx = (col + sigmoid(tx)) * stride, w = anchor_w * exp(min(tw, max_log_wh)) * input side.
    """
    cx = (col.to(raw.dtype) + raw[:, 1].sigmoid()) * stride
    cy = (row.to(raw.dtype) + raw[:, 2].sigmoid()) * stride
    wh = raw[:, 3:5].clamp(max=max_log_wh).exp() * anchor_wh * (stride * size)
    return cxcywh_to_xyxy(torch.cat((cx[:, None], cy[:, None], wh), dim=1))


def decode_outputs(
    outputs: Sequence[Tensor],
    anchors: Sequence = ANCHORS,
    max_log_wh: float = 10.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Raw model outputs -> every candidate box of every image, in input-image pixels.

    Args:
        outputs: 3 raw tensors (B, 3, S, S, 5 + C), strides 32, 16, 8.
        anchors: the anchors the model was trained with (fractions of the image).
        max_log_wh: clamp of tw, th before exp() so no precision can overflow.

    Returns:
        boxes (Tensor[B, M, 4]) in (x1, y1, x2, y2) pixels of the square input (side S * stride);
        objectness (Tensor[B, M]) probabilities; class_logits (Tensor[B, M, C]).
        M = 3 * sum(S^2); candidates are ordered by scale, anchor, row, column.
    """
    boxes, objectness, class_logits = [], [], []
    for out, stride, scale_anchors in zip(outputs, STRIDES, anchors):
        out = out.float()
        b, a, size, _, channels = out.shape
        anchor_t = torch.as_tensor(scale_anchors, dtype=out.dtype, device=out.device)  # (3, 2)
        flat = out.reshape(-1, channels)  # (B*3*S*S, 5+C), index = ((b*3 + a)*S + row)*S + col
        _, anchor, row, col = unravel_cells(torch.arange(flat.shape[0], device=out.device), a, size)
        boxes.append(decode_cells(flat, col, row, anchor_t[anchor], stride, size, max_log_wh).view(b, -1, 4))
        objectness.append(out[..., 0].sigmoid().reshape(b, -1))
        class_logits.append(out[..., 5:].reshape(b, -1, channels - 5))
    return torch.cat(boxes, 1), torch.cat(objectness, 1), torch.cat(class_logits, 1)


def targets_to_logits(
    targets: Sequence[Tensor],
    num_classes: int,
    anchors: Sequence = ANCHORS,
    confidence: float = 20.0,
) -> list[Tensor]:
    """Raw outputs a perfect model would give for ``targets``: the inverse of the box encoding.

    Assigned slots get objectness logit +confidence, tx = logit(x), tw = log(w / anchor) and a
    class logit of +confidence on the true class; every other slot gets -confidence objectness.
    Used to test ``decode_outputs`` against ``encode`` and to build known detections in tests.

    Returns:
        list of 3 Tensors (B, 3, S, S, 5 + num_classes).
    """
    outputs = []
    for target, scale_anchors in zip(targets, anchors):
        b, a, s, _, _ = target.shape
        anchor_t = torch.as_tensor(scale_anchors, dtype=target.dtype, device=target.device)
        out = torch.full((b, a, s, s, 5 + num_classes), -confidence, device=target.device)
        obj = target[..., 0] == 1
        out[..., 0] = torch.where(obj, confidence, -confidence)
        xy = target[..., 1:3].clamp(1e-6, 1 - 1e-6)
        out[..., 1:3] = torch.log(xy / (1 - xy))
        wh = (target[..., 3:5] / s).clamp(min=1e-9) / anchor_t[None, :, None, None, :]
        out[..., 3:5] = torch.where(obj[..., None], wh.log(), torch.zeros_like(wh))
        cls = torch.nn.functional.one_hot(target[..., 5].long().clamp(0, num_classes - 1), num_classes)
        out[..., 5:] = torch.where(obj[..., None] & cls.bool(), confidence, -confidence)
        outputs.append(out)
    return outputs


def assignments(
    boxes_xyxy: Tensor,
    labels: Tensor,
    image_size: int,
    anchors: Sequence = ANCHORS,
    ignore_iou: float = 0.5,
) -> list[dict]:
    """The anchor slots ``encode`` gives the boxes of ONE image, for display and inspection.

    Args:
        boxes_xyxy (Tensor[N, 4]): pixel (x1, y1, x2, y2) in the square input of ``image_size``.
        labels (Tensor[N]): class indices.

    Returns:
        One dict per slot that owns a box ("assigned") or is ignored: scale, stride, grid,
        anchor, anchor_wh (fractions), row, col, state, label (-1 for ignored slots).
    """
    from yolo.boxes import normalize, xyxy_to_cxcywh

    boxes = normalize(xyxy_to_cxcywh(boxes_xyxy.float().reshape(-1, 4)), image_size, image_size)
    labels = labels.long().reshape(-1)
    targets = encode(boxes, labels, torch.zeros_like(labels), 1, image_size, anchors, ignore_iou)
    rows = []
    for scale, target in enumerate(targets):
        for code, state in ((1.0, "assigned"), (-1.0, "ignored")):
            for a, j, i in torch.nonzero(target[0, ..., 0] == code).tolist():
                rows.append({
                    "scale": scale, "stride": STRIDES[scale], "grid": target.shape[2], "anchor": a,
                    "anchor_wh": tuple(anchors[scale][a]), "row": j, "col": i, "state": state,
                    "label": int(target[0, a, j, i, 5]) if code == 1.0 else -1,
                })
    return rows
