"""Target encoding: hand-worked assignments, the course's per-box loop as a reference, round trips."""

from __future__ import annotations

import math

import pytest
import torch

from yolo.boxes import cxcywh_to_xyxy, wh_iou
from yolo.config import ANCHORS, grid_sizes
from yolo.targets import decode_outputs, decode_targets, encode, targets_to_logits


def course_encode(boxes, labels, batch_idx, batch_size, image_size, ignore_iou=0.5):
    """The course's YOLODataset target loop, written plainly (one box at a time)."""
    anchors = torch.tensor(ANCHORS).reshape(9, 2)
    sizes = grid_sizes(image_size)
    targets = [torch.zeros(batch_size, 3, s, s, 6) for s in sizes]
    for (x, y, w, h), label, b in zip(boxes.tolist(), labels.tolist(), batch_idx.tolist()):
        ious = wh_iou(torch.tensor([[w, h]]), anchors)[0]
        has_anchor = [False, False, False]
        for anchor_idx in torch.argsort(ious, descending=True, stable=True).tolist():
            scale, a = divmod(anchor_idx, 3)
            s = sizes[scale]
            i, j = min(int(s * x), s - 1), min(int(s * y), s - 1)  # column, row
            taken = targets[scale][b, a, j, i, 0] != 0
            if not taken and not has_anchor[scale]:
                targets[scale][b, a, j, i] = torch.tensor([1, s * x - i, s * y - j, w * s, h * s, label])
                has_anchor[scale] = True
            elif not taken and ious[anchor_idx] > ignore_iou:
                targets[scale][b, a, j, i, 0] = -1
    return targets


def one(boxes, labels=None, size=416):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    labels = torch.tensor(labels if labels is not None else [0] * len(boxes))
    return encode(boxes, labels, torch.zeros(len(boxes), dtype=torch.long), 1, size)


def test_single_box_hand_worked():
    # box 0.3 x 0.2 centred; shape IoUs on scale 0: a0 (.28,.22) .056/.0656 = .854,
    # a1 (.38,.48) .06/.1824 = .329, a2 .06/.702 = .085 -> a0, nothing above 0.5 to ignore.
    t = one([[0.5, 0.5, 0.3, 0.2]], [7], size=416)
    assert [tuple(x.shape) for x in t] == [(1, 3, 13, 13, 6), (1, 3, 26, 26, 6), (1, 3, 52, 52, 6)]
    # scale 0, S = 13: cell column 6, row 6 (6.5 -> 6), offsets 0.5, size 0.3*13, 0.2*13 cells
    assert torch.allclose(t[0][0, 0, 6, 6], torch.tensor([1, 0.5, 0.5, 3.9, 2.6, 7.0]))
    # scale 1, S = 26: anchors (.07,.15) .175, (.15,.11) .275, (.14,.29) .028/.0726 = .386 -> a2
    assert torch.allclose(t[1][0, 2, 13, 13], torch.tensor([1, 0.0, 0.0, 7.8, 5.2, 7.0]))
    # scale 2, S = 52: largest anchor (.08,.06) has the best shape IoU (.08) -> a2
    assert torch.allclose(t[2][0, 2, 26, 26], torch.tensor([1, 0.0, 0.0, 15.6, 10.4, 7.0]))
    for x in t:  # exactly one owner per scale, no ignores
        assert (x[..., 0] == 1).sum() == 1 and (x[..., 0] == -1).sum() == 0


def test_ignore_marks_second_anchor_above_threshold():
    # 0.33 x 0.33 on scale 0: a1 .1089/.1824 = .597 (best), a0 .0616/.1089 = .566 > .5 -> ignore
    t = one([[0.1, 0.9, 0.33, 0.33]])
    col, row = int(0.1 * 13), int(0.9 * 13)
    assert t[0][0, 1, row, col, 0] == 1
    assert t[0][0, 0, row, col, 0] == -1
    assert t[0][0, 2, row, col, 0] == 0  # .155, below the threshold
    assert math.isclose(0.0616 / 0.1089, 0.5657, abs_tol=1e-4)


def test_conflicts_resolved_in_box_order():
    # Two same-shape boxes in one cell: the first takes a1 and ignores a0; the second finds a1
    # taken and a0 ignored (not free), so it gets a2 despite its low IoU, exactly as the course.
    t = one([[0.51, 0.51, 0.33, 0.33], [0.52, 0.52, 0.33, 0.33]], [1, 2])
    cell = t[0][0, :, 6, 6]
    assert cell[:, 0].tolist() == [-1, 1, 1]
    assert cell[1, 5] == 1 and cell[2, 5] == 2
    # swapping the order swaps the owners: deterministic and order-defined
    t2 = one([[0.52, 0.52, 0.33, 0.33], [0.51, 0.51, 0.33, 0.33]], [2, 1])
    assert t2[0][0, 1, 6, 6, 5] == 2 and t2[0][0, 2, 6, 6, 5] == 1


def test_fourth_box_in_a_full_cell_gets_no_slot():
    # four boxes in one cell on every scale (0.003 * 52 < 1): three slots, first three boxes win
    boxes = [[0.5 + 0.001 * k, 0.5, 0.3, 0.25] for k in range(4)]
    t = one(boxes, [0, 1, 2, 3])
    assert t[0][0, :, 6, 6, 5].tolist() == [0, 1, 2]  # a0 .821 first, then a1, a2 by rank
    for scale in range(3):
        _, labels, _ = decode_targets(t, scale=scale)
        assert sorted(labels.tolist()) == [0, 1, 2]


def test_box_on_the_far_edge_is_clamped_into_the_grid():
    t = one([[1.0, 1.0, 0.1, 0.1]])
    assert t[0][0, :, 12, 12, 0].sum() == 1


@pytest.mark.parametrize("size", [64, 320])
def test_matches_course_loop_with_many_collisions(size):
    g = torch.Generator().manual_seed(size)
    n, batch = 300, 3
    boxes = torch.cat([torch.rand(n, 2, generator=g), torch.rand(n, 2, generator=g) * 0.6 + 0.01], 1)
    labels = torch.randint(0, 20, (n,), generator=g)
    batch_idx = torch.randint(0, batch, (n,), generator=g)
    ours = encode(boxes, labels, batch_idx, batch, size)
    ref = course_encode(boxes, labels, batch_idx, batch, size)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)  # bit for bit: cell, offsets and sizes (float64 maths, float32 store)
    assert (ours[0][..., 0] == -1).any()  # the case exercises ignores


def course_cell(x: float, s: int) -> tuple[int, float, float]:
    """The course's rule in plain Python floats (float64): cell index, offset, then stored float32.

    ``i = int(S * x)``; ``x_cell = S * x - i``; ``torch.tensor([x_cell, ...])`` keeps float32. The
    course has no clamp: a centre at x = 1.0 gives i = S and an IndexError there."""
    i = int(s * x)
    return i, float(torch.tensor(s * x - i, dtype=torch.float32)), float(torch.tensor(0.05 * s, dtype=torch.float32))


@pytest.mark.parametrize("size", [416, 320])
def test_grid_line_centres_match_the_course_bit_for_bit(size):
    # centres exactly on grid lines k/S of every scale (15/26 at S = 26 is one that float32 maths
    # puts in the neighbouring cell), given as the course has them: Python floats (float64)
    grids = grid_sizes(size)
    xs = sorted({k / s for s in grids for k in range(1, s)} | {0.3, 0.7, 0.123456789})
    boxes = torch.tensor([[x, 1 - x, 0.05, 0.05] for x in xs], dtype=torch.float64)
    n = len(xs)
    for scale, s in enumerate(grids):  # one image per box: no shared cells, one owner per scale
        t = encode(boxes, torch.zeros(n, dtype=torch.long), torch.arange(n), n, size)[scale]
        b, a, j, i = torch.nonzero(t[..., 0] == 1, as_tuple=True)
        assert torch.equal(b, torch.arange(n))
        for k, x in enumerate(xs):
            ci, off_x, wc = course_cell(x, s)
            cj, off_y, _ = course_cell(1 - x, s)
            assert (int(i[k]), int(j[k])) == (ci, cj), (x, s)
            got = t[k, a[k], j[k], i[k]]
            assert (float(got[1]), float(got[2]), float(got[3])) == (off_x, off_y, wc), (x, s)


def test_centre_at_one_stays_in_the_last_cell():
    # the course would index cell S (out of range) and crash; the project clamps to S - 1
    t = one([[1.0, 1.0, 0.1, 0.1]])
    for x in t:
        s = x.shape[2]
        owner = torch.nonzero(x[0, ..., 0] == 1)
        assert owner[:, 1:].tolist() == [[s - 1, s - 1]]
        assert float(x[0, owner[0, 0], s - 1, s - 1, 1]) == 1.0  # offset S * 1.0 - (S - 1)


def test_empty_batch():
    t = encode(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 2, 320)
    assert all(x.shape[0] == 2 and not x.any() for x in t)


def spread_boxes(batch, per_image, generator):
    """Boxes whose centres lie in distinct stride-32 cells, so no two share a slot on any scale."""
    boxes, batch_idx = [], []
    for b in range(batch):
        cells = torch.randperm(100, generator=generator)[:per_image]  # 10x10 coarse cells
        cx = ((cells % 10).float() + 0.1 + 0.8 * torch.rand(per_image, generator=generator)) / 10
        cy = ((cells // 10).float() + 0.1 + 0.8 * torch.rand(per_image, generator=generator)) / 10
        wh = torch.rand(per_image, 2, generator=generator) * 0.5 + 0.02
        boxes.append(torch.cat([cx[:, None], cy[:, None], wh], 1))
        batch_idx.append(torch.full((per_image,), b))
    return torch.cat(boxes), torch.cat(batch_idx)


@pytest.mark.parametrize("size", list(range(320, 609, 32)))
def test_decode_targets_round_trip(size):
    g = torch.Generator().manual_seed(size)
    boxes, batch_idx = spread_boxes(4, 12, g)
    labels = torch.randint(0, 20, (len(boxes),), generator=g)
    targets = encode(boxes, labels, batch_idx, 4, size)
    key = lambda bx, lb, bi: sorted(zip(bi.tolist(), lb.tolist(), bx.tolist()))
    expected = key(boxes, labels, batch_idx)
    for scale in range(3):
        got = key(*decode_targets(targets, scale=scale))
        assert len(got) == len(expected)
        for (b1, l1, x1), (b2, l2, x2) in zip(got, expected):
            assert b1 == b2 and l1 == l2
            assert torch.allclose(torch.tensor(x1), torch.tensor(x2), atol=1e-4)


@pytest.mark.parametrize("size", [320, 416, 608])
def test_decode_outputs_inverts_encode(size):
    g = torch.Generator().manual_seed(1)
    boxes, batch_idx = spread_boxes(2, 8, g)
    labels = torch.randint(0, 20, (len(boxes),), generator=g)
    targets = encode(boxes, labels, batch_idx, 2, size)
    pred_boxes, objectness, class_logits = decode_outputs(targets_to_logits(targets, 20))
    assert pred_boxes.shape == (2, 3 * sum(s * s for s in grid_sizes(size)), 4)
    for b in range(2):
        keep = objectness[b] > 0.5
        assert keep.sum() == 3 * (batch_idx == b).sum()  # once per scale
        want = cxcywh_to_xyxy(boxes[batch_idx == b]) * size
        got = pred_boxes[b][keep]
        # every decoded box equals one input box (to 1e-4 of the image side), with its class
        dist = torch.cdist(got, want)
        nearest = dist.argmin(1)
        assert (dist.min(1).values < 1e-4 * size).all()
        assert torch.equal(class_logits[b][keep].argmax(1), labels[batch_idx == b][nearest])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_encode_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(3)
    boxes, batch_idx = spread_boxes(4, 30, g)
    labels = torch.randint(0, 20, (len(boxes),), generator=g)
    cpu = encode(boxes, labels, batch_idx, 4, 416)
    gpu = encode(boxes.cuda(), labels.cuda(), batch_idx.cuda(), 4, 416)
    for a, b in zip(cpu, gpu):
        assert b.is_cuda and torch.allclose(a, b.cpu())


def test_assignments_lists_owned_and_ignored_slots():
    from yolo.targets import assignments

    # the ignore case of test_ignore_marks_second_anchor_above_threshold, in pixels at 416
    box = torch.tensor([[0.1, 0.9, 0.33, 0.33]])
    rows = assignments(cxcywh_to_xyxy(box) * 416, torch.tensor([5]), 416)
    owned = [r for r in rows if r["state"] == "assigned"]
    assert [(r["scale"], r["anchor"], r["row"], r["col"], r["label"]) for r in owned if r["scale"] == 0] == \
        [(0, 1, int(0.9 * 13), int(0.1 * 13), 5)]
    assert len(owned) == 3
    ignored = [r for r in rows if r["state"] == "ignored"]
    assert [(r["scale"], r["anchor"]) for r in ignored] == [(0, 0)]
