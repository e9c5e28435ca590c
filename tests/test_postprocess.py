"""Post-processing against a brute-force decode + NMS written plainly, on random and adversarial inputs."""

from __future__ import annotations

import math

import pytest
import torch

from yolo.config import ANCHORS, STRIDES, PostprocessConfig
from yolo.postprocess import postprocess


def plain_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def brute_force(outputs, conf, iou_thr, max_det, agnostic=False):
    """Decode every cell with the YOLOv3 formulas, clip to the image, then greedy NMS, one image at a time."""
    sig = lambda v: 1 / (1 + math.exp(-v))
    results = []
    for b in range(outputs[0].shape[0]):
        cands = []
        for out, stride, anchors in zip(outputs, STRIDES, ANCHORS):
            size = out.shape[2]
            for a in range(3):
                for row in range(size):
                    for col in range(size):
                        v = out[b, a, row, col].tolist()
                        logits = v[5:]
                        m = max(logits)
                        exps = [math.exp(x - m) for x in logits]
                        label = max(range(len(exps)), key=lambda k: exps[k])
                        score = sig(v[0]) * exps[label] / sum(exps)
                        if score <= conf:
                            continue
                        cx, cy = (col + sig(v[1])) * stride, (row + sig(v[2])) * stride
                        w = anchors[a][0] * math.exp(min(v[3], 10.0)) * stride * size
                        h = anchors[a][1] * math.exp(min(v[4], 10.0)) * stride * size
                        side = stride * size  # boxes are clipped to the input image
                        box = [min(max(v, 0.0), side) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)]
                        cands.append((score, label, tuple(box)))
        cands.sort(key=lambda c: -c[0])
        kept = []
        for c in cands:
            if all(
                plain_iou(c[2], k[2]) <= iou_thr for k in kept if agnostic or k[1] == c[1]
            ):
                kept.append(c)
        results.append(kept[:max_det])
    return results


def as_set(detections):
    """Detections as a sorted tensor [label, score, x1, y1, x2, y2] for a tolerant comparison."""
    rows = sorted((int(l), s, *box) for s, l, box in detections)
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 6)


def same(a, b):
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-3)


def ours_as_list(det):
    return list(zip(det["scores"].tolist(), det["labels"].tolist(), det["boxes"].tolist()))


def random_outputs(batch, size, classes, seed, obj_shift=-4.0):
    g = torch.Generator().manual_seed(seed)
    outs = []
    for s in (size // 32, size // 16, size // 8):
        o = torch.randn(batch, 3, s, s, 5 + classes, generator=g)
        o[..., 0] += obj_shift
        o[..., 3:5] *= 0.5
        outs.append(o)
    return outs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("agnostic", [False, True])
def test_random_matches_brute_force(seed, agnostic):
    outputs = random_outputs(2, 64, 4, seed)
    cfg = PostprocessConfig(conf_threshold=0.05, iou_threshold=0.45, max_detections=25,
                            class_agnostic=agnostic)
    ours = postprocess(outputs, cfg)
    ref = brute_force(outputs, 0.05, 0.45, 25, agnostic)
    assert len(ours) == 2
    for o, r in zip(ours, ref):
        assert len(r) > 0
        assert same(as_set(ours_as_list(o)), as_set(r))
        assert torch.all(o["scores"][:-1] >= o["scores"][1:])  # highest first


def test_identical_boxes_and_tied_scores():
    outputs = [torch.full((1, 3, s, s, 7), -30.0) for s in (2, 4, 8)]
    # three slots on scale 0 with identical raw rows -> identical boxes and scores (ties)
    row = torch.tensor([3.0, 0.0, 0.0, 0.0, 0.0, 5.0, -5.0])
    outputs[0][0, 0, 0, 0] = row
    outputs[0][0, 0, 1, 1] = row  # another cell: shifted box, overlapping
    outputs[1][0, 0, 0, 0] = row  # another scale, same class
    alt = row.clone()
    alt[5], alt[6] = -5.0, 5.0  # same box, other class: survives class-aware NMS
    outputs[0][0, 1, 0, 0] = alt
    outputs[0][0, 1, 0, 0, 3:5] = torch.log(torch.tensor(ANCHORS[0][0]) / torch.tensor(ANCHORS[0][1]))
    for agnostic in (False, True):
        cfg = PostprocessConfig(0.05, 0.5, 100, agnostic)
        ours = postprocess(outputs, cfg)[0]
        ref = brute_force(outputs, 0.05, 0.5, 100, agnostic)[0]
        assert same(as_set(ours_as_list(ours)), as_set(ref))


def test_empty_images_and_all_below_threshold():
    outputs = random_outputs(3, 64, 3, seed=5, obj_shift=-40.0)
    ours = postprocess(outputs, PostprocessConfig(conf_threshold=0.05))
    assert [len(d["boxes"]) for d in ours] == [0, 0, 0]
    assert ours[0]["boxes"].shape == (0, 4)
    outputs[0][1, 0, 0, 0, 0] = 10.0  # only image 1 gets a candidate
    outputs[0][1, 0, 0, 0, 5] = 10.0
    counts = [len(d["boxes"]) for d in postprocess(outputs, PostprocessConfig(conf_threshold=0.05))]
    assert counts == [0, 1, 0]


def test_max_detections_keeps_the_best():
    outputs = random_outputs(1, 64, 2, seed=9, obj_shift=2.0)
    full = postprocess(outputs, PostprocessConfig(conf_threshold=0.05, iou_threshold=0.9, max_detections=10_000))[0]
    top = postprocess(outputs, PostprocessConfig(conf_threshold=0.05, iou_threshold=0.9, max_detections=7))[0]
    assert len(full["scores"]) > 7 and len(top["scores"]) == 7
    assert torch.equal(top["scores"], full["scores"][:7])


def test_threshold_is_strict_and_score_uses_class_probability():
    outputs = [torch.full((1, 3, s, s, 7), -30.0) for s in (2, 4, 8)]
    # objectness .9, two classes with equal logits -> class prob .5, score .45
    outputs[0][0, 0, 0, 0] = torch.tensor([math.log(9), 0, 0, 0, 0, 0.0, 0.0])
    assert len(postprocess(outputs, PostprocessConfig(conf_threshold=0.44))[0]["scores"]) == 1
    assert len(postprocess(outputs, PostprocessConfig(conf_threshold=0.46))[0]["scores"]) == 0
    det = postprocess(outputs, PostprocessConfig(conf_threshold=0.44))[0]
    assert det["scores"].item() == pytest.approx(0.45, rel=1e-5)


def test_pre_nms_top_k_keeps_the_best_candidates_per_image():
    from yolo.postprocess import candidates, top_k_per_image

    outputs = random_outputs(3, 64, 2, seed=4, obj_shift=1.0)
    _, scores, _, images = candidates(outputs, 0.05)
    keep = top_k_per_image(scores, images, 5)
    for b in range(3):
        mine = scores[images == b]
        assert torch.equal(torch.sort(scores[keep][images[keep] == b], descending=True).values,
                           torch.sort(mine, descending=True).values[:5])
    capped = postprocess(outputs, PostprocessConfig(0.05, 0.45, 100, pre_nms_top_k=5))
    assert all(len(d["scores"]) <= 5 for d in capped)


# ------------------------------------------------------------------ one huge box, other images
def per_image_nms(boxes, scores, labels, images, batch, iou):
    """The reference: torchvision's plain ``nms`` for each image and class alone, in float64 (no offsets)."""
    from torchvision.ops import nms

    out = []
    for b in range(batch):
        rows = []
        for c in labels[images == b].unique().tolist():
            idx = torch.nonzero((images == b) & (labels == c)).squeeze(1)
            rows.append(idx[nms(boxes[idx].double(), scores[idx].double(), iou)])
        kept = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
        out.append(kept[torch.sort(scores[kept], descending=True, stable=True).indices])
    return out


def huge_box_case():
    """Image 0: one box of ~8.2 million px (anchor 0.9 x e^10 x 416), image 3: two class-19 boxes
    with IoU 0.84; images 1 and 2: a few ordinary boxes. torchvision's float32 group offset
    rounds image 3's coordinates to 64 px and keeps both duplicates."""
    big = 416 * 0.9 * math.exp(10)
    a = [125.82249450683594, 165.8721160888672, 149.87725830078125, 171.5954132080078]
    b = [126.26806640625, 166.08583068847656, 150.61117553710938, 172.1288299560547]
    boxes = torch.tensor([[208 - big / 2, 208 - big / 2, 208 + big / 2, 208 + big / 2], a, b,
                          [10, 10, 50, 60], [12, 11, 52, 58], [200, 200, 300, 310], [30, 40, 90, 99]])
    boxes[0] = boxes[0].clamp(min=0)  # non-negative, but still ~4 million px wide
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4])
    labels = torch.tensor([5, 19, 19, 2, 2, 3, 19])
    images = torch.tensor([0, 3, 3, 1, 1, 2, 3])
    return boxes, scores, labels, images


def test_one_huge_box_does_not_change_nms_in_other_images():
    from torchvision.ops import batched_nms, box_iou

    boxes, scores, labels, images = huge_box_case()
    assert 0.83 < float(box_iou(boxes[1:2], boxes[2:3])) < 0.85
    assert len(batched_nms(boxes, scores, images * 20 + labels, 0.45)) == 6  # the float32 offset bug
    from yolo.postprocess import nms_indices

    got = nms_indices(boxes, scores, labels, images, 4, 0.45, 100)
    want = per_image_nms(boxes, scores, labels, images, 4, 0.45)
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert got[3].tolist() == [1, 6]  # the lower-scored duplicate is suppressed
    # negative coordinates (no exact shift possible): NMS runs group by group, same result
    shifted = boxes - 1000.0
    got = nms_indices(shifted, scores, labels, images, 4, 0.45, 100)
    assert [g.tolist() for g in got] == [w.tolist() for w in per_image_nms(shifted, scores, labels, images, 4, 0.45)]


def test_postprocess_with_a_huge_predicted_box_keeps_what_per_image_nms_keeps():
    from torchvision.ops import box_iou

    from yolo.postprocess import candidates

    size, classes = 416, 20
    outputs = [torch.full((4, 3, s, s, 5 + classes), -30.0) for s in (13, 26, 52)]
    outputs[0][0, 2, 6, 6, :5] = torch.tensor([5.0, 0, 0, 10.0, 10.0])  # image 0: e^10 x its anchor
    outputs[0][0, 2, 6, 6, 5 + 5] = 5.0
    # image 3, stride 8, one cell, anchors (0.04, 0.07) and (0.08, 0.06) sized to ~20 px, shifted:
    # two class-19 boxes with IoU 0.83 (found by search to trip the float32 offset)
    for a, row in ((1, [4.0, 0.02, 1.63, 0.184, -0.376]), (2, [3.0, 1.02, 1.63, -0.509, -0.2216])):
        outputs[2][3, a, 18, 8, :5] = torch.tensor(row)
        outputs[2][3, a, 18, 8, 5 + 19] = 5.0
    dets = postprocess(outputs, PostprocessConfig(conf_threshold=0.05, iou_threshold=0.45))
    assert len(dets[0]["boxes"]) == 1 and len(dets[3]["boxes"]) == 1  # the duplicate is suppressed
    boxes, scores, labels, images = candidates(outputs, 0.05)
    assert 0.82 < float(box_iou(boxes[1:2], boxes[2:3])) < 0.84
    boxes = boxes.clamp(0, size)  # clipped to the image
    want = per_image_nms(boxes, scores, labels, images, 4, 0.45)
    for det, w in zip(dets, want):
        assert torch.equal(det["boxes"], boxes[w]) and torch.equal(det["scores"], scores[w])
    assert float(dets[0]["boxes"].max()) == size  # clipped to the image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unclipped_boxes_in_some_groups_keep_what_per_group_nms_keeps(seed):
    """Boxes reaching below 0 in a few (image, class) groups: only those groups run NMS alone, the
    others share the exact banded call; the result is torchvision's nms of each group alone."""
    from yolo.postprocess import nms_indices

    g = torch.Generator().manual_seed(seed)
    k, batch = 3000, 12
    xy = torch.rand(k, 2, generator=g) * 300
    boxes = torch.cat([xy, xy + 10 + torch.rand(k, 2, generator=g) * 80], 1)
    images, labels = torch.randint(0, batch, (k,), generator=g), torch.randint(0, 5, (k,), generator=g)
    scores = torch.rand(k, generator=g)
    out = torch.rand(k, generator=g) < 0.01  # 1% of the boxes shifted left past the border
    boxes[out, 0::2] -= 40
    assert bool((boxes < 0).any()) and bool((boxes[~out] >= 0).all())
    got = nms_indices(boxes, scores, labels, images, batch, 0.45, 10_000)
    want = per_image_nms(boxes, scores, labels, images, batch, 0.45)
    assert [x.tolist() for x in got] == [w.tolist() for w in want]


def test_a_group_keeps_the_same_boxes_whichever_route_it_takes():
    """Two boxes whose IoU is above 0.5 in float64 and not in float32 (found by a search): the pair
    is suppressed the same way when its group shares the banded call and when an unrelated box
    below 0 in the same group makes it run alone (that route used float32 before)."""
    from yolo.postprocess import nms_indices

    pair = torch.tensor([[30.232534408569336, 0.0, 31.232534408569336, 1.0],
                         [30.232534408569336, 0.0, 31.0823974609375, 0.588330090045929]])
    from torchvision.ops import nms

    assert nms(pair, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]  # float32 keeps both
    assert nms(pair.double(), torch.tensor([0.9, 0.8]).double(), 0.5).tolist() == [0]
    far = torch.tensor([[-5.0, 50.0, 0.0, 60.0]])  # below 0, overlapping nothing
    for extra, label in ((torch.zeros(0, 4), []), (far, [0]), (far.clamp(min=0) + 100, [1])):
        boxes = torch.cat([pair, extra])
        scores = torch.tensor([0.9, 0.8, 0.7][: len(boxes)])
        labels = torch.tensor([0, 0, *label])
        got = nms_indices(boxes, scores, labels, torch.zeros(len(boxes), dtype=torch.long), 1, 0.5, 100)[0]
        assert 1 not in got.tolist() and got.tolist()[0] == 0, (extra, got)
