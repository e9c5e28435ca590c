"""yolo.evalcore's shortcuts against the plain thing they replace: the keyed score sort against a
stable argsort, COCO's greedy matching against the loop over detections, the other-class IoU
loop against every pair, the recall-threshold counts against a scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo import evalcore as core


@pytest.mark.parametrize("seed", range(6))
def test_score_order_is_a_stable_descending_argsort(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    pools = [rng.random(n).astype(np.float32).astype(np.float64),  # float32 scores: the keyed sort
             rng.choice(np.array([0.0, -0.0, 0.5, 1.0, -1.5, 3.0, float(np.float32(0.1))]), n),  # ties, -0.0
             rng.random(n)]  # float64 scores: the fallback
    for s in pools:
        assert np.array_equal(core.score_order(s), np.argsort(-s, kind="stable"))


def plain_greedy(pair_det, pair_gt, iou, rank, n_det):
    """COCO's loop: detections in rank order, each takes the free box of highest IoU (first on ties)."""
    gt_of_det = np.full(n_det, -1)
    used = set()
    for d in np.argsort(rank, kind="stable"):
        options = [(-iou[p], pair_gt[p]) for p in range(len(pair_det)) if pair_det[p] == d and pair_gt[p] not in used]
        if options:
            gt_of_det[d] = min(options)[1]
            used.add(gt_of_det[d])
    return gt_of_det


@pytest.mark.parametrize("seed", range(8))
def test_greedy_match_equals_the_loop_also_with_fallbacks(seed):
    """Random candidate pairs in a few groups, many detections with two or more candidates
    (where a later detection falls back to its second box) and many with one."""
    rng = np.random.default_rng(seed)
    n_det, n_gt = 40, 25
    group_of_gt = rng.integers(0, 6, n_gt)
    group = rng.integers(0, 6, n_det)
    pairs = [(d, g) for d in range(n_det) for g in range(n_gt) if group[d] == group_of_gt[g] and rng.random() < 0.35]
    pair_det = np.array([p[0] for p in pairs], dtype=np.int64)
    pair_gt = np.array([p[1] for p in pairs], dtype=np.int64)
    iou = rng.choice([0.5, 0.6, 0.7, 0.8, 0.9], len(pairs))  # ties on purpose
    rank = rng.permutation(n_det)
    got = core.greedy_match(pair_det, pair_gt, iou, rank, group, n_det, n_gt)
    assert got.tolist() == plain_greedy(pair_det, pair_gt, iou, rank, n_det).tolist()
    assert (np.bincount(pair_det, minlength=n_det) > 1).any()


@pytest.mark.parametrize("seed,chunk", [(0, 1 << 15), (1, 1 << 15), (2, 7), (3, 1)])
def test_best_other_class_equals_every_pair(seed, chunk, monkeypatch):
    monkeypatch.setattr(core, "CHUNK", chunk)  # several chunks, each starting at its own box count
    rng = np.random.default_rng(seed)
    dets, truths = [], []
    for _ in range(30):
        g, d = int(rng.integers(0, 7)), int(rng.integers(0, 12))
        xy = rng.uniform(0, 100, (g, 2))
        truths.append({"boxes": torch.tensor(np.hstack([xy, xy + rng.uniform(5, 60, (g, 2))])).reshape(-1, 4),
                       "labels": torch.tensor(rng.integers(0, 3, g)), "difficult": torch.tensor(rng.random(g) < 0.2)})
        xy = rng.uniform(0, 100, (d, 2))
        dets.append({"boxes": torch.tensor(np.hstack([xy, xy + rng.uniform(0, 60, (d, 2))])).reshape(-1, 4),
                     "scores": torch.tensor(rng.random(d)), "labels": torch.tensor(rng.integers(0, 3, d))})
    det, gt = core.flatten(dets, "det"), core.flatten(truths, "gt")
    best, at = core.best_other_class(det, gt, ~gt.difficult)
    for i in range(len(det)):
        mine = [j for j in range(len(gt)) if gt.image[j] == det.image[i] and gt.labels[j] != det.labels[i] and not gt.difficult[j]]
        ious = [float(core.pair_iou(det.boxes[i:i + 1], gt.boxes[j:j + 1])[0]) for j in mine]
        top = max(ious, default=0.0)
        assert best[i] == top
        assert at[i] == (mine[ious.index(top)] if top > 0 else -1)


def test_first_count_reaching_equals_a_scan_in_float64():
    points = np.concatenate([core.COCO_RECALL_POINTS, core.VOC07_RECALL_POINTS, core.TIDE_RECALL_POINTS])
    npos = np.arange(0, 230)
    got = core.first_count_reaching(points, npos)
    for p in range(1, 230):
        for t, k in zip(points, got[p]):
            assert k / p >= t and (k == 0 or (k - 1) / p < t)
    assert (got[0] == 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_ap_from_the_true_positives_alone_equals_the_full_curve_read(seed):
    """Bit-equal to reading the envelope of the whole class-sorted curve, with rows skipped too."""
    rng = np.random.default_rng(seed)
    n, classes = 400, 6
    labels = np.sort(rng.integers(0, classes, n))
    tp = rng.random(n) < rng.uniform(0.05, 0.6)
    keep = rng.random(n) < 0.8
    n_pos = np.bincount(labels[tp & keep], minlength=classes) + rng.integers(0, 4, classes)
    n_pos[0] = 0  # a class without positives
    for points in (core.COCO_RECALL_POINTS, core.TIDE_RECALL_POINTS, core.VOC07_RECALL_POINTS):
        full = core.ap_points(core.curves(labels[keep], tp[keep], n_pos), points)
        fast = core.ap_from_tp_ranks(*core.tp_ranks(labels, tp, keep), n_pos, points)
        assert np.array_equal(full, fast)


@pytest.mark.parametrize("groups", [3, 40000])
def test_by_group_is_a_stable_regrouping(groups):
    rng = np.random.default_rng(groups)
    order = rng.permutation(5000)
    group = rng.integers(0, groups, 5000)
    assert np.array_equal(core.by_group(order, group), order[np.argsort(group[order], kind="stable")])
