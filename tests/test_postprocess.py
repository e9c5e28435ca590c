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
    """Decode every cell with the YOLOv3 formulas, then greedy NMS, one image at a time."""
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
                        cands.append((score, label, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
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
