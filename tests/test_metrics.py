"""yolo.metrics: hand-worked cases, a plain-Python devkit loop, and torchmetrics on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from yolo.config import ACC_CLASS, ACC_NOOBJ, ACC_OBJ, MAP50, MAP50_VOC07
from yolo.metrics import (
    CellAccuracy,
    VOCMeanAP,
    average_precision,
    confusion_matrix,
    match_detections,
    precision_recall_at,
    voc_evaluate,
)


def det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.long)}


def gt(boxes, labels, difficult=None):
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
           "labels": torch.tensor(labels, dtype=torch.long)}
    if difficult is not None:
        out["difficult"] = torch.tensor(difficult, dtype=torch.bool)
    return out


NO_DETS = det([], [], [])
A, B, C = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]  # three disjoint boxes


# ------------------------------------------------------------------------------- cell accuracies


def _cell_case():
    """Two scales, C = 2. Worked out: class 2/3, object 2/3, no-object 9/11 (see comments)."""
    out1 = torch.zeros(1, 3, 2, 2, 7)
    out1[..., 0] = -10.0  # sigmoid ~ 4.5e-5 <= 0.05: "no object" everywhere by default
    tgt1 = torch.zeros(1, 3, 2, 2, 6)
    tgt1[0, 0, 0, 0, [0, 5]] = torch.tensor([1.0, 1.0])  # object, class 1
    out1[0, 0, 0, 0, 0] = 0.0  # sigmoid 0.5 > 0.05: object right
    out1[0, 0, 0, 0, 5:] = torch.tensor([0.1, 0.9])  # argmax 1: class right
    tgt1[0, 1, 0, 1, [0, 5]] = torch.tensor([1.0, 0.0])  # object, class 0
    out1[0, 1, 0, 1, 0] = -5.0  # sigmoid 0.0067: object wrong
    out1[0, 1, 0, 1, 5:] = torch.tensor([0.0, 1.0])  # argmax 1: class wrong
    tgt1[0, 2, 1, 1, 0] = -1.0  # ignored: would be wrong on all three counts
    out1[0, 2, 1, 1, 0] = 5.0
    out1[0, 0, 1, 0, 0] = -2.0  # background cell, sigmoid 0.119 > 0.05: no-object wrong
    # scale 1: 12 cells - 2 objects - 1 ignored = 9 background cells, 8 right
    out2 = torch.zeros(1, 3, 1, 1, 7)
    tgt2 = torch.zeros(1, 3, 1, 1, 6)
    tgt2[0, 0, 0, 0, [0, 5]] = torch.tensor([1.0, 0.0])
    out2[0, 0, 0, 0, :] = torch.tensor([2.0, 0, 0, 0, 0, 3.0, 1.0])  # object right, class right
    out2[0, 1, 0, 0, 0] = -10.0  # background, right
    out2[0, 2, 0, 0, 0] = 1.0  # background, wrong
    # totals: objects 3 (class right 2, object right 2); background 9 + 2 = 11 (right 8 + 1 = 9)
    return [out1, out2], [tgt1, tgt2]


def test_cell_accuracy_hand_case():
    outputs, targets = _cell_case()
    metric = CellAccuracy()
    metric.update(outputs, targets)
    got = metric.compute()
    assert got[ACC_CLASS].item() == pytest.approx(200 / 3)
    assert got[ACC_OBJ].item() == pytest.approx(200 / 3)
    assert got[ACC_NOOBJ].item() == pytest.approx(900 / 11)
    # the ignored cell really is excluded: flipping its prediction changes nothing
    outputs[0][0, 2, 1, 1, 0] = -5.0
    metric2 = CellAccuracy()
    metric2.update([o.to(torch.bfloat16) for o in outputs], targets)  # low precision logits work
    assert {k: v.item() for k, v in metric2.compute().items()} == {k: v.item() for k, v in got.items()}


def test_cell_accuracy_accumulates_and_is_nan_without_cells():
    outputs, targets = _cell_case()
    metric = CellAccuracy(threshold=0.05)
    for scale in range(2):  # two updates, one scale each (a bare tensor is accepted)
        metric.update(outputs[scale], targets[scale])
    assert metric.compute()[ACC_NOOBJ].item() == pytest.approx(900 / 11)
    # background only, every objectness logit 0 (sigmoid 0.5): no objects -> nan, not 0
    for threshold, noobj in ((0.05, 0.0), (0.6, 100.0)):  # 0.5 > 0.05 is wrong; 0.5 <= 0.6 right
        empty = CellAccuracy(threshold=threshold)
        empty.update(torch.zeros(1, 3, 2, 2, 7), torch.zeros(1, 3, 2, 2, 6))
        got = empty.compute()
        assert math.isnan(got[ACC_CLASS].item()) and math.isnan(got[ACC_OBJ].item())
        assert got[ACC_NOOBJ].item() == noobj


# ------------------------------------------------------------------------------- VOC hand cases


def test_no_detections_gives_zero_ap():
    res = voc_evaluate([NO_DETS], [gt([A, B], [0, 1])], num_classes=3)
    assert res.per_class_ap[:2].tolist() == [0.0, 0.0]
    assert res.per_class_ap_voc07[:2].tolist() == [0.0, 0.0]
    assert math.isnan(res.per_class_ap[2])
    assert res.map == 0.0 and res.map_voc07 == 0.0


def test_class_without_ground_truth_is_nan_and_left_out_of_the_mean():
    # class 0 perfect; class 1 has only a detection (no GT); class 2 only a difficult GT; class 3 nothing
    dets = [det([A, B, C], [0.9, 0.8, 0.7], [0, 1, 2])]
    gts = [gt([A, C], [0, 2], difficult=[False, True])]
    res = voc_evaluate(dets, gts, num_classes=4)
    assert res.per_class_ap[0] == 1.0
    assert all(math.isnan(v) for v in res.per_class_ap[1:].tolist())
    assert res.n_positives.tolist() == [1, 0, 0, 0]
    assert res.map == 1.0 and res.map_voc07 == 1.0  # mean over class 0 only
    assert math.isnan(voc_evaluate([dets[0]], [gt([], [])], 4).map)  # no ground truth at all


def test_duplicate_detection_is_a_false_positive():
    dets = [det([A, A, B], [0.9, 0.8, 0.7], [0, 0, 0])]  # second box duplicates the first
    gts = [gt([A, B], [0, 0])]
    m = match_detections(dets, gts, num_classes=1)
    assert m.tp.tolist() == [True, False, True] and m.fp.tolist() == [False, True, False]
    res = voc_evaluate(dets, gts, num_classes=1)
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; envelope at the TPs: 1, 2/3
    # area = 1/2 * 1 + 1/2 * 2/3 = 5/6 (without the duplicate it would be 1)
    assert res.map == pytest.approx(5 / 6, abs=1e-12)
    assert res.precision[0].tolist() == pytest.approx([1, 0.5, 2 / 3])
    assert res.recall[0].tolist() == pytest.approx([0.5, 0.5, 1.0])


def test_detections_on_difficult_objects_are_ignored():
    # B is difficult: two detections on it (the second a duplicate) are neither TP nor FP
    dets = [det([B, A, B], [0.9, 0.8, 0.7], [0, 0, 0])]
    gts = [gt([A, B], [0, 0], difficult=[False, True])]
    m = match_detections(dets, gts, num_classes=1)
    assert m.ignored.tolist() == [True, False, True] and m.tp.tolist() == [False, True, False]
    res = voc_evaluate(dets, gts, num_classes=1)
    assert res.n_positives.tolist() == [1]
    assert res.map == 1.0 and res.map_voc07 == 1.0  # counting the first as FP would give 0.5
    assert res.precision[0].tolist() == [1.0]  # ignored detections leave the curve


def test_iou_ties_go_to_the_first_box():
    # two identical boxes (a doubled annotation), the first difficult: the devkit's max() picks the
    # first, so the detection is ignored rather than a TP on the second
    gts = [gt([A, A], [0, 0], difficult=[True, False])]
    m = match_detections([det([A], [0.9], [0])], gts, 1)
    assert m.ignored.tolist() == [True] and m.tp.tolist() == [False]


def test_eleven_point_differs_from_area():
    # 3 objects; in score order: TP, FP, TP, FP (third object missed)
    dets = [det([A, [100, 100, 110, 110], B, [200, 200, 210, 210]], [0.9, 0.8, 0.7, 0.6], [0] * 4)]
    gts = [gt([A, B, C], [0, 0, 0])]
    res = voc_evaluate(dets, gts, num_classes=1)
    # precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3
    # area: envelope 1 on (0, 1/3], 2/3 on (1/3, 2/3], 0 above: 1/3 + 2/9 = 5/9 = 0.5556
    # 11-point: t = 0, .1, .2, .3 -> 1; t = .4, .5, .6 -> 2/3; t = .7 .. 1 -> 0:
    #   (4 * 1 + 3 * 2/3) / 11 = 6/11 = 0.5455
    assert res.map == pytest.approx(5 / 9, abs=1e-12)
    assert res.map_voc07 == pytest.approx(6 / 11, abs=1e-12)
    assert average_precision(res.recall[0], res.precision[0]) == pytest.approx(5 / 9, abs=1e-12)
    assert average_precision(res.recall[0], res.precision[0], voc07=True) == pytest.approx(6 / 11, abs=1e-12)


def voc_eval_07_ap(tp_flags, npos):
    """The Python devkit's ``voc_eval`` tail with ``use_07_metric=True``, written out plainly: tp/fp
    cumulative sums, ``rec = tp / float(npos)``, ``prec = tp / np.maximum(tp + fp, eps)`` and
    ``voc_ap``'s 11-point loop over ``np.arange(0., 1.1, 0.1)``."""
    tp = np.cumsum(np.array(tp_flags, dtype=float))
    fp = np.cumsum(1.0 - np.array(tp_flags, dtype=float))
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = 0.0
    for t in np.arange(0., 1.1, 0.1):
        p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
        ap = ap + p / 11.0
    return ap


def test_voc07_recall_exactly_point_three_six_seven_reads_as_the_python_devkit():
    """10 objects; in score order 3 TP, 2 FP, 3 TP, 2 FP, 1 TP, 2 FP, 1 TP: recall is exactly 0.3,
    0.6 and 0.7 at some detections. The devkit's thresholds there are 0.30000000000000004,
    0.6000000000000001 and 0.7000000000000001, so it reads the next TP's (lower) precision; reading
    t = i / 10 would give 1, 6/8 and 7/11 instead."""
    objects = [[20 * k, 0, 20 * k + 15, 15] for k in range(10)]
    seq = "TTTFFTTTFFTFFT"
    boxes, flags, used = [], [], 0
    for k, s in enumerate(seq):
        if s == "T":
            boxes.append(objects[used]); used += 1
        else:
            boxes.append([300 + 20 * k, 300, 310 + 20 * k, 310])
        flags.append(s == "T")
    scores = [1.0 - 0.01 * k for k in range(len(seq))]
    res = voc_evaluate([det(boxes, scores, [0] * len(seq))], [gt(objects, [0] * 10)], num_classes=1)
    expected = voc_eval_07_ap(flags, 10)
    assert res.map_voc07 == pytest.approx(expected, abs=1e-12)
    assert average_precision(res.recall[0], res.precision[0], voc07=True) == pytest.approx(expected, abs=1e-12)
    # t = 0, .1, .2 -> 1; t = .3 (a hair above) -> 6/8 (not 1); .4, .5 -> 6/8; t = .6 -> 7/11 (not
    # 6/8); t = .7 -> 8/14 (not 7/11); .8 -> 8/14 (recall 0.8 reaches 0.8 exactly); .9, 1 -> 0
    by_hand = (3 * 1 + 3 * 6 / 8 + 7 / 11 + 2 * 8 / 14) / 11
    assert expected == pytest.approx(by_hand, abs=1e-12)


def test_perfect_detections_give_one():
    gts = [gt([A, B, C], [0, 1, 2]), gt([B], [1]), gt([A, C], [2, 2])]
    dets = [det(t["boxes"].tolist(), [0.9] * len(t["labels"]), t["labels"].tolist()) for t in gts]
    res = voc_evaluate(dets, gts, num_classes=3)
    assert res.per_class_ap.tolist() == [1.0, 1.0, 1.0] and res.map == 1.0 and res.map_voc07 == 1.0


def test_iou_threshold_is_inclusive():
    gts = [gt([A], [0])]
    half = voc_evaluate([det([[0, 0, 10, 5]], [0.9], [0])], gts, 1)  # IoU = 50/100 exactly
    below = voc_evaluate([det([[0, 0, 10, 4.99]], [0.9], [0])], gts, 1)
    assert half.map == 1.0 and below.map == 0.0


def test_candidate_is_the_best_box_not_the_next_free_one():
    # VOC, not COCO: the second detection's best box (A) is taken, so it is an FP even though its
    # IoU with the free box [0, 0, 10, 12] is 105/120 = 0.875
    gts = [gt([A, [0, 0, 10, 12]], [0, 0])]
    dets = [det([A, [0, 0, 10, 10.5]], [0.9, 0.8], [0, 0])]
    assert match_detections(dets, gts, 1).tp.tolist() == [True, False]
    assert voc_evaluate(dets, gts, 1).map == pytest.approx(0.5)  # precision 1 up to recall 1/2


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        voc_evaluate([NO_DETS, NO_DETS], [gt([A], [0])], 1)
    with pytest.raises(ValueError):
        voc_evaluate([det([A], [0.5], [3])], [gt([A], [0])], 2)


# ------------------------------------------------------------------------------- random data


def random_set(n_images, num_classes, seed, difficult_p=0.2, disjoint=False, max_dets=30, ties=False):
    """Images of 100 x 100 px. disjoint=True puts ground truth in separate cells of a 4 x 4 grid,
    so a detection can reach IoU >= 0.5 with at most one box (VOC and COCO matching then agree)."""
    g = torch.Generator().manual_seed(seed)
    dets, gts = [], []
    for _ in range(n_images):
        n = int(torch.randint(0, 7, (1,), generator=g))
        if disjoint:
            cell = torch.randperm(16, generator=g)[:n]
            lo = torch.stack([cell % 4, cell // 4], 1) * 25.0
            x1y1 = lo + torch.rand(n, 2, generator=g) * 8
            x2y2 = lo + 25 - torch.rand(n, 2, generator=g) * 8
        else:
            x1y1 = torch.rand(n, 2, generator=g) * 60
            x2y2 = x1y1 + 10 + torch.rand(n, 2, generator=g) * 40
        boxes = torch.cat([x1y1, x2y2], 1)
        labels = torch.randint(0, num_classes, (n,), generator=g)
        difficult = torch.rand(n, generator=g) < difficult_p
        gts.append({"boxes": boxes, "labels": labels, "difficult": difficult})
        src = torch.randint(0, max(n, 1), (int(torch.randint(0, 2 * n + 1, (1,), generator=g)),), generator=g)
        jit = boxes[src] + torch.randn(src.numel(), 4, generator=g) * 3 if n else torch.zeros(0, 4)
        jl = labels[src] if n else torch.zeros(0, dtype=torch.long)
        k = int(torch.randint(0, max_dets - src.numel() + 1, (1,), generator=g)) // 3
        rxy = torch.rand(k, 2, generator=g) * 70
        rand_boxes = torch.cat([rxy, rxy + 5 + torch.rand(k, 2, generator=g) * 30], 1)
        scores = torch.rand(src.numel() + k, generator=g)
        if ties:
            scores = (scores * 10).round() / 10  # many exact ties
        dets.append({"boxes": torch.cat([jit, rand_boxes]), "scores": scores,
                     "labels": torch.cat([jl, torch.randint(0, num_classes, (k,), generator=g)])})
    return dets, gts


def devkit_reference(dets, gts, num_classes, thr=0.5):
    """The VOC devkit's per-class loop (VOCevaldet + VOCap; the 11 points of the Python devkit's
    voc_eval), in plain Python. Returns (ap, ap07)."""
    def iou(a, b):
        iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
        ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
        inter = iw * ih
        area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
        area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
        union = area_a + area_b - inter
        return inter / union if union > 0 else 0.0

    aps, aps07 = [], []
    for c in range(num_classes):
        gt_c = []
        for t in gts:
            keep = [j for j, lab in enumerate(t["labels"].tolist()) if lab == c]
            diff = t.get("difficult", torch.zeros(len(t["labels"]), dtype=torch.bool)).tolist()
            gt_c.append({"bb": [t["boxes"][j].double().tolist() for j in keep],
                         "diff": [diff[j] for j in keep], "det": [False] * len(keep)})
        npos = sum(not d for r in gt_c for d in r["diff"])
        ds = [(s, i, d["boxes"][k].double().tolist()) for i, d in enumerate(dets)
              for k, (s, lab) in enumerate(zip(d["scores"].double().tolist(), d["labels"].tolist()))
              if lab == c]
        ds.sort(key=lambda x: -x[0])  # stable, like MATLAB's sort
        tp, fp = [], []
        for _, i, bb in ds:
            r = gt_c[i]
            ovmax, jmax = -math.inf, -1
            for j, g in enumerate(r["bb"]):
                o = iou(bb, g)
                if o > ovmax:
                    ovmax, jmax = o, j
            t_, f_ = 0, 0
            if ovmax >= thr:
                if not r["diff"][jmax]:
                    if not r["det"][jmax]:
                        t_, r["det"][jmax] = 1, True
                    else:
                        f_ = 1
            else:
                f_ = 1
            tp.append(t_)
            fp.append(f_)
        if npos == 0:
            aps.append(math.nan)
            aps07.append(math.nan)
            continue
        ctp, cfp, rec, prec = 0, 0, [], []
        for t_, f_ in zip(tp, fp):
            ctp, cfp = ctp + t_, cfp + f_
            rec.append(ctp / npos)
            prec.append(ctp / max(ctp + cfp, 1e-300))
        ap07 = sum(max([p for r_, p in zip(rec, prec) if r_ >= t], default=0.0)
                   for t in np.arange(0., 1.1, 0.1).tolist()) / 11  # the Python devkit's thresholds
        mrec, mpre = [0.0] + rec + [1.0], [0.0] + prec + [0.0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        ap = sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
        aps.append(ap)
        aps07.append(ap07)
    return aps, aps07


def _same(a, b, tol):
    return all((math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol for x, y in zip(a, b))


@pytest.mark.parametrize("seed,ties", [(0, False), (1, False), (2, True), (3, True)])
def test_equals_plain_python_devkit_loop(seed, ties):
    dets, gts = random_set(60, 4, seed, ties=ties)
    ref_ap, ref_ap07 = devkit_reference(dets, gts, 4)
    res = voc_evaluate(dets, gts, 4)
    assert _same(res.per_class_ap.tolist(), ref_ap, 1e-6)
    assert _same(res.per_class_ap_voc07.tolist(), ref_ap07, 1e-6)
    assert res.map == pytest.approx(sum(a for a in ref_ap if not math.isnan(a))
                                    / sum(not math.isnan(a) for a in ref_ap), abs=1e-6)
    for c in range(4):  # the helper on each curve agrees with the vectorised per-class numbers
        if not math.isnan(ref_ap[c]):
            assert average_precision(res.recall[c], res.precision[c]) == pytest.approx(ref_ap[c], abs=1e-9)
            ap07 = average_precision(res.recall[c], res.precision[c], voc07=True)
            assert ap07 == pytest.approx(ref_ap07[c], abs=1e-9)


def test_metric_equals_function_over_split_batches():
    dets, gts = random_set(50, 5, seed=7, ties=True)
    ref = voc_evaluate(dets, gts, 5)
    for bounds in ([0, 50], [0, 1, 17, 18, 40, 50], list(range(0, 51, 5))):
        metric = VOCMeanAP(num_classes=5)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            metric.update(dets[lo:hi], gts[lo:hi])
        out = metric.compute()
        assert out == {MAP50: ref.map, MAP50_VOC07: ref.map_voc07}  # identical, not approximately
        assert torch.equal(metric.result.per_class_ap.nan_to_num(-1), ref.per_class_ap.nan_to_num(-1))
        assert all(torch.equal(a, b) for a, b in zip(metric.result.precision, ref.precision))
    fresh = VOCMeanAP(num_classes=5)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(fresh.compute()[MAP50])  # nothing seen: no class has ground truth


def test_agrees_with_torchmetrics_coco_map():
    """torchmetrics (COCO) differs from VOC in two ways; the test removes one and bounds the other.

    Matching: COCO lets a detection fall back to the next free box; with disjoint ground truth a
    detection reaches IoU >= 0.5 with at most one box, so both rules match identically (and there
    are no difficult boxes and no score ties). Interpolation: COCO averages the interpolated
    precision p(r) at the 101 recalls r = 0, 0.01, .., 1; the VOC area is the integral of the same
    non-increasing p on [0, 1]. For a non-increasing p in [0, 1] the 101-point mean lies within
    1/101 of the integral (it is sandwiched between the left and right Riemann sums, 0.01 apart
    and weighted by 100/101), so per class and for the mean, |ours - torchmetrics| <= 1/101.
    Then, from our own curves, the 101-point sampling must give torchmetrics' numbers exactly.
    """
    from torchmetrics.detection import MeanAveragePrecision

    backend = pytest.importorskip("faster_coco_eval") and "faster_coco_eval"
    dets, gts = random_set(80, 6, seed=11, difficult_p=0.0, disjoint=True, max_dets=40)
    tm = MeanAveragePrecision(iou_thresholds=[0.5], class_metrics=True, backend=backend)
    tm.update(dets, [{"boxes": t["boxes"], "labels": t["labels"]} for t in gts])
    tm_out = tm.compute()
    tm_ap = dict(zip(tm_out["classes"].tolist(), tm_out["map_per_class"].tolist()))
    res = voc_evaluate(dets, gts, 6)
    assert abs(res.map - float(tm_out["map"])) <= 1 / 101
    rec_thrs = torch.linspace(0.0, 1.0, 101).tolist()  # exactly torchmetrics' default thresholds
    coco101 = []
    for c in range(6):
        assert res.n_positives[c] > 0
        assert abs(res.per_class_ap[c].item() - tm_ap[c]) <= 1 / 101
        rec, prec = res.recall[c], res.precision[c]
        env = torch.flip(torch.cummax(torch.flip(prec, (0,)), 0).values, (0,))
        idx = torch.searchsorted(rec, torch.tensor(rec_thrs, dtype=torch.float64))
        p = torch.where(idx < rec.numel(), env[idx.clamp(max=max(rec.numel() - 1, 0))], 0.0)
        coco101.append(p.mean().item())
        assert coco101[-1] == pytest.approx(tm_ap[c], abs=1e-6)
    assert sum(coco101) / 6 == pytest.approx(float(tm_out["map"]), abs=1e-6)


# ------------------------------------------------------------------------------- thresholded views


def test_confusion_matrix_hand_case():
    # image 0: A is class 0, B is class 1 (difficult is C, class 2)
    gts = [gt([A, B, C], [0, 1, 2], difficult=[False, False, True]), gt([A], [1])]
    dets = [
        det([A, A, B, C, [60, 60, 70, 70], B], [0.9, 0.8, 0.7, 0.6, 0.5, 0.1], [0, 1, 0, 0, 2, 1]),
        det([], [], []),
    ]
    # A/0.9 class 0 on A (class 0): [0, 0]; A/0.8 duplicate: false detection [bg, 1];
    # B/0.7 class 0 on B (class 1): [1, 0]; C on difficult: ignored; stray box: [bg, 2];
    # B/0.1 below conf 0.25: dropped. Image 1's A (class 1) missed: [1, bg]
    cm = confusion_matrix(dets, gts, num_classes=3, conf_threshold=0.25)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[0, 0] = expected[3, 1] = expected[1, 0] = expected[3, 2] = expected[1, 3] = 1
    assert torch.equal(cm, expected)


def test_precision_recall_at_threshold():
    gts = [gt([A, B, C], [0, 0, 1])]
    dets = [det([A, [60, 60, 70, 70], B, C], [0.9, 0.8, 0.4, 0.3], [0, 0, 0, 1])]
    pr = precision_recall_at(dets, gts, 2, conf_threshold=0.35)
    # kept: 0.9 TP, 0.8 FP, 0.4 TP (class 0); the class-1 detection (0.3) is below the threshold
    assert pr.tp.tolist() == [2, 0] and pr.fp.tolist() == [1, 0]
    assert pr.precision == pytest.approx(2 / 3) and pr.recall == pytest.approx(2 / 3)
    assert pr.per_class_recall.tolist() == pytest.approx([1.0, 0.0])
    assert math.isnan(pr.per_class_precision[1])
    # thresholding after matching everything gives the same flags (matching is greedy by score)
    dets_r, gts_r = random_set(40, 3, seed=5)
    full = match_detections(dets_r, gts_r, 3)
    keep = full.scores > 0.5
    pr = precision_recall_at(dets_r, gts_r, 3, conf_threshold=0.5)
    assert pr.tp.tolist() == torch.bincount(full.labels[keep & full.tp], minlength=3).tolist()
    assert pr.fp.tolist() == torch.bincount(full.labels[keep & full.fp], minlength=3).tolist()


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_precision_recall_sweep_equals_one_call_per_threshold(seed, ties):
    """One matching for every threshold gives exactly what matching the kept detections anew gives
    (greedy by score), with exact score ties and thresholds equal to scores (0.3, 0.5 and 0.7 are
    scores here when ``ties``: the kept rule is score > threshold in float32)."""
    from yolo.metrics import precision_recall_sweep

    dets, gts = random_set(60, 4, seed, ties=ties)
    confs = [0.0, 0.05, 0.3, 0.5, 0.55, 0.7, 0.9, 1.0]
    swept = precision_recall_sweep(dets, gts, 4, confs)
    assert len(swept) == len(confs)
    for conf, at in zip(confs, swept):
        one = precision_recall_at(dets, gts, 4, conf)
        torch.testing.assert_close(at.tp, one.tp, rtol=0, atol=0)
        torch.testing.assert_close(at.fp, one.fp, rtol=0, atol=0)
        torch.testing.assert_close(at.n_positives, one.n_positives, rtol=0, atol=0)
        assert (at.precision == one.precision or math.isnan(at.precision) and math.isnan(one.precision))
        assert (at.recall == one.recall or math.isnan(at.recall) and math.isnan(one.recall))
    assert swept[0].tp.sum() > swept[-2].tp.sum() and swept[0].fp.sum() > swept[-2].fp.sum()  # they do cut


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_every_threshold_rule_keeps_the_same_detections_whatever_the_score_dtype(dtype):
    """Scores at (or a hair from) the threshold, stored in any float dtype (a predictions file may
    hold float16 or float64): precision_recall_at, the sweep, the operating-point curves and
    scores_at, and per-image counts all keep score > threshold compared in float32."""
    from yolo.evaluate.operating import curves, scores_at
    from yolo.metrics import confident, precision_recall_sweep

    boxes = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]]
    raw = torch.tensor([0.30000000001, 0.3, 0.300048828125, 0.5], dtype=torch.float64)
    dets = [det(boxes, [0] * 4, [0] * 4)]
    dets[0]["scores"] = raw.to(dtype)
    gts = [gt(boxes, [0] * 4)]
    want = int(confident(raw.to(dtype), 0.3).sum())  # every detection here is a true positive
    assert int(precision_recall_at(dets, gts, 1, 0.3).tp.sum()) == want
    assert int(precision_recall_sweep(dets, gts, 1, [0.3])[0].tp.sum()) == want
    assert int(scores_at(dets, gts, 1, 0.3)["tp"].sum()) == want
    table = curves(dets, gts, ["a"], [0.3])
    assert float(table[table["class"] == "all"]["recall"].iloc[0]) == want / 4
    tp, _ = match_detections(dets, gts, 1).per_image(1, 0.3)
    assert int(tp.sum()) == want
