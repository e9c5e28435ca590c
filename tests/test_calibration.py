"""yolo.evaluate.calibration: hand-worked bins, ECE and MCE; every number against hotcoco's
``COCOeval.calibration()`` on the same detections; the one place they differ (a score a hair
below a bin edge) worked by hand from the definition."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from yolo.evaluate import calibration


def det(boxes, scores, labels) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float64), "labels": torch.tensor(labels, dtype=torch.int64)}


def gt(boxes, labels, difficult=None) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(difficult if difficult is not None else [False] * len(labels), dtype=torch.bool)}


A, B, C, D = [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]
FAR = [[200, 200, 210, 210], [220, 200, 230, 210], [240, 200, 250, 210]]


def test_bins_ece_and_mce_by_hand():
    """Class 0: 0.95 TP, 0.92 FP (duplicate of A), 0.55 TP, 0.15 FP; class 1: 0.5 TP, 1.0 FP.
    A detection on a difficult box (class 1, 0.8) is left out.
    5 bins of 0.2. Overall: [0, .2) 0.15 -> prec 0; [.4, .6) 0.55, 0.5 -> conf 0.525, prec 1;
    [.8, 1] 0.95, 0.92, 1.0 -> conf 0.9567, prec 1/3. ECE = (1*0.15 + 2*0.475 + 3*|1/3 - 2.87/3|) / 6,
    MCE = 0.62333."""
    dets = [det([A, A, B, FAR[0]], [0.95, 0.92, 0.55, 0.15], [0, 0, 0, 0]),
            det([C, FAR[1], D], [0.5, 1.0, 0.8], [1, 1, 1])]
    truths = [gt([A, B], [0, 0]), gt([C, D], [1, 1], [False, True])]
    cal = calibration(dets, truths, 2, iou_threshold=0.5, n_bins=5)
    assert cal.detections == 6
    assert cal.bins["count"].tolist() == [1, 0, 2, 0, 3]
    assert cal.bins["lower"].tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert cal.bins["confidence"].tolist()[0] == pytest.approx(0.15)
    assert cal.bins["confidence"][2] == pytest.approx(0.525) and cal.bins["precision"][2] == 1.0
    assert cal.bins["confidence"][4] == pytest.approx(2.87 / 3) and cal.bins["precision"][4] == pytest.approx(1 / 3)
    assert math.isnan(cal.bins["confidence"][1]) and math.isnan(cal.bins["precision"][3])
    assert cal.ece == pytest.approx((0.15 + 2 * 0.475 + 3 * abs(1 / 3 - 2.87 / 3)) / 6, abs=1e-12)
    assert cal.mce == pytest.approx(2.87 / 3 - 1 / 3, abs=1e-12)
    # class 1: 0.5 TP ([.4, .6): gap 0.5), 1.0 FP (last bin holds 1.0: gap 1) -> ECE 0.75, MCE 1
    row = cal.per_class.set_index("class").loc[1]
    assert row["detections"] == 2 and row["ece"] == pytest.approx(0.75) and row["mce"] == pytest.approx(1.0)
    last = cal.class_bins[(cal.class_bins["class"] == 1)].iloc[-1]
    assert last["count"] == 1 and last["precision"] == 0.0
    summary = cal.summary(["a", "b"])
    assert summary["per_class"]["b"]["ece"] == pytest.approx(0.75) and summary["bins"][1]["confidence"] is None


def test_a_score_a_hair_below_an_edge_stays_in_the_lower_bin():
    """0.8999999999999999 < 0.9, so by the definition (bin i holds i/n <= score < (i+1)/n) it
    shares [0.8, 0.9) with 0.85: mean confidence 0.875, precision 1/2, ECE = MCE = 0.375.
    (hotcoco 1.3 bins by floor(score * n), and 0.8999999999999999 * 10 rounds to 9.0: it puts the
    score in [0.9, 1.0) and reads ECE 0.475, MCE 0.85.)"""
    s = 0.8999999999999999
    assert s < 0.9 and math.floor(s * 10) == 9
    dets = [det([A, FAR[0]], [s, 0.85], [0, 0])]
    cal = calibration(dets, [gt([A], [0])], 1, n_bins=10)
    assert cal.bins["count"].tolist() == [0] * 8 + [2, 0]
    assert cal.bins["confidence"][8] == pytest.approx(0.875) and cal.bins["precision"][8] == 0.5
    assert cal.ece == pytest.approx(0.375, abs=1e-15) and cal.mce == pytest.approx(0.375, abs=1e-15)


def test_bad_inputs_are_refused_with_a_message():
    with pytest.raises(ValueError, match=r"scores in \[0, 1\]"):
        calibration([det([A], [1.5], [0])], [gt([A], [0])], 1)
    with pytest.raises(ValueError, match="n_bins"):
        calibration([det([A], [0.5], [0])], [gt([A], [0])], 1, n_bins=0)
    empty = calibration([det([], [], [])], [gt([A], [0])], 1)
    assert empty.detections == 0 and math.isnan(empty.ece) and math.isnan(empty.mce)


def random_split(seed: int, images: int = 120, classes: int = 5):
    """Objects with jittered, relabelled, duplicated and background detections; ~10% difficult."""
    rng = np.random.default_rng(seed)
    dets, truths = [], []
    for _ in range(images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (n, 2))
        wh = rng.uniform(15, 90, (n, 2))
        boxes = np.hstack([xy, xy + wh])
        labels = rng.integers(0, classes, n)
        truths.append(gt(boxes.tolist(), labels.tolist(), (rng.random(n) < 0.1).tolist()))
        k = int(rng.integers(0, 3 * n + 1)) if n else 0
        src = rng.integers(0, max(n, 1), k)
        jit = boxes[src] + rng.normal(0, 8, (k, 4)) if n else np.zeros((0, 4))
        jit[:, 2:] = np.maximum(jit[:, 2:], jit[:, :2] + 1)  # valid boxes (pycocotools-style evaluators
        # ignore an unmatched box of negative area: outside the area range "all")
        lab = np.where(rng.random(k) < 0.15, rng.integers(0, classes, k), labels[src] if n else 0)
        m = int(rng.integers(0, 5))
        bxy = rng.uniform(0, 300, (m, 2))
        bg = np.hstack([bxy, bxy + rng.uniform(10, 60, (m, 2))])
        scores = np.concatenate([rng.beta(4, 2, k), rng.beta(2, 4, m)])
        dets.append(det(np.vstack([jit, bg]).tolist(), scores.tolist(), np.concatenate([lab, rng.integers(0, classes, m)]).tolist()))
    return dets, truths


def hotcoco_calibration(dets, truths, classes, iou, n_bins):
    """hotcoco's COCOeval (one IoU, area "all", maxDets 100) on the same detections -> calibration()."""
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    hotcoco = pytest.importorskip("hotcoco", reason="hotcoco (a test dependency, installed by .ci/run) is absent")
    images = [{"id": i + 1, "width": 400, "height": 400} for i in range(len(truths))]
    cats = [{"id": c + 1, "name": str(c)} for c in range(classes)]
    gb = torch.cat([t["boxes"] for t in truths]).numpy()
    xywh = np.concatenate([gb[:, :2], gb[:, 2:] - gb[:, :2]], 1)
    ground = hotcoco.COCO.from_arrays(images, cats, np.repeat(np.arange(1, len(truths) + 1), [len(t["labels"]) for t in truths]),
                                      torch.cat([t["labels"] for t in truths]).numpy() + 1, xywh,
                                      iscrowd=torch.cat([t["difficult"] for t in truths]).numpy().astype(np.int64),
                                      area=xywh[:, 2] * xywh[:, 3])
    db = torch.cat([d["boxes"] for d in dets]).numpy()
    arr = np.column_stack([np.repeat(np.arange(1, len(dets) + 1), [len(d["labels"]) for d in dets]), db[:, :2],
                           db[:, 2:] - db[:, :2], torch.cat([d["scores"] for d in dets]).numpy(),
                           torch.cat([d["labels"] for d in dets]).numpy() + 1])
    ev = hotcoco.COCOeval(ground, ground.loadRes(arr), "bbox")
    params = ev.params
    params.iou_thrs, params.area_rng, params.area_rng_lbl, params.max_dets = [iou], [[0, 1e10]], ["all"], [100]
    ev.params = params
    ev.evaluate()
    return ev.calibration(n_bins=n_bins, iou_threshold=iou)


@pytest.mark.parametrize("seed,iou,n_bins", [(0, 0.5, 10), (1, 0.5, 7), (2, 0.75, 15)])
def test_equals_hotcoco_calibration(seed, iou, n_bins):
    dets, truths = random_split(seed)
    theirs = hotcoco_calibration(dets, truths, 5, iou, n_bins)
    ours = calibration(dets, truths, 5, iou_threshold=iou, n_bins=n_bins)
    assert ours.detections == theirs["num_detections"] > 100
    assert ours.ece == pytest.approx(theirs["ece"], abs=1e-6) and ours.mce == pytest.approx(theirs["mce"], abs=1e-6)
    assert len(theirs["bins"]) == n_bins
    for mine, b in zip(ours.bins.to_dict("records"), theirs["bins"]):
        assert mine["count"] == b["count"]
        assert mine["lower"] == pytest.approx(b["bin_lower"], abs=1e-12) and mine["upper"] == pytest.approx(b["bin_upper"], abs=1e-12)
        if b["count"]:  # hotcoco writes 0 for an empty bin's means, we write nan
            assert mine["confidence"] == pytest.approx(b["avg_confidence"], abs=1e-6)
            assert mine["precision"] == pytest.approx(b["avg_accuracy"], abs=1e-6)
    per_class = {int(k): v for k, v in theirs["per_category"].items()}  # keyed by class index
    has = ours.per_class[ours.per_class["detections"] > 0]
    assert sorted(per_class) == has["class"].tolist()
    for c, e in zip(has["class"], has["ece"]):
        assert e == pytest.approx(per_class[int(c)], abs=1e-6)
