"""yolo.review: each kind of label mistake on hand-built images with known answers; the segment
maths against brute force; the review file (decide / undo / save / load) and how decisions edit an
annotation. The trained-model checks (planted mistakes, cleanlab) are in test_review_demo.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from yolo.data.decisions import Decision, ReviewLog, apply_decisions, review_file_path
from yolo.review import KINDS, ReviewConfig, pairs, review, segment_max


def one(gt_boxes, gt_labels, boxes, labels, scores, **config):
    """review() of one image; returns its boxes frame."""
    truth = [{"boxes": torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
              "labels": torch.tensor(gt_labels, dtype=torch.int64)}]
    dets = [{"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
             "labels": torch.tensor(labels, dtype=torch.int64), "scores": torch.tensor(scores, dtype=torch.float32)}]
    return review(dets, truth, ReviewConfig(min_score=0.0, **config), class_names=["a", "b", "c"]).boxes


def iou(a, b) -> float:
    return float(box_iou(torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32))[0, 0])


A, B = [10, 10, 50, 50], [100, 100, 160, 140]


def test_a_right_label_scores_low_in_every_kind():
    rows = one([A], [0], [A], [0], [0.9])
    assert len(rows) == 1
    r = rows.iloc[0]
    assert r.s_wrong_class == 0 and r.s_loose == pytest.approx(0) and r.s_duplicate == 0
    assert r.s_spurious == pytest.approx(1 - 0.9)  # supported by a 0.9 prediction at IoU >= 0.5


def test_missing_label_is_the_confident_unexplained_prediction():
    rows = one([A], [0], [A, B], [0, 1], [0.9, 0.8])
    miss = rows[rows.kind == "missing"]
    assert len(miss) == 1
    r = miss.iloc[0]
    assert r.score == pytest.approx(0.8) and r.suggested_class == "b" and r.gt_in_image == -1
    assert [r.sx1, r.sy1, r.sx2, r.sy2] == B
    # a prediction half-overlapping the label (IoU 1/3) is explained by a third: 0.8 * (1 - (1/3) / 0.5)
    shifted = [30, 10, 70, 50]
    rows = one([A], [0], [shifted], [1], [0.8])
    assert rows[rows.kind == "missing"].score.item() == pytest.approx(0.8 * (1 - iou(A, shifted) / 0.5), abs=1e-6)
    # below the confidence threshold: not a missing label
    assert (one([A], [0], [B], [1], [0.4]).s_missing == 0).all()
    # per-class thresholds (operating points): class b needs 0.85 here
    assert (one([A], [0], [B], [1], [0.8], conf=(0.5, 0.85, 0.5)).s_missing == 0).all()


def test_two_confident_predictions_on_one_unlabelled_object_are_one_missing_label():
    rows = one([A], [0], [B, [101, 100, 160, 141]], [1, 2], [0.8, 0.7])
    assert (rows.kind == "missing").sum() == 1 and rows[rows.kind == "missing"].score.item() == pytest.approx(0.8)


def test_wrong_class_with_the_suggested_class():
    rows = one([A], [0], [A], [2], [0.9])
    r = rows.iloc[0]
    assert r.kind == "wrong_class" and r.suggested_class == "c"
    assert r.s_wrong_class == pytest.approx(0.9 * 1.0 * (1 - 0))
    # its own class also predicted there at 0.6: the score drops by (1 - 0.6)
    r = one([A], [0], [A, A], [2, 0], [0.9, 0.6]).iloc[0]
    assert r.s_wrong_class == pytest.approx(0.9 * (1 - 0.6))
    # another class overlapping loosely (IoU < tight_iou) is no evidence
    assert one([A], [0], [[30, 10, 70, 50]], [2], [0.9]).s_wrong_class.max() == 0


def test_wrong_class_ignores_a_prediction_that_belongs_to_another_label():
    """A horse prediction on a labelled horse overlapping a rider's box is not a wrong class."""
    rider, horse = [10, 10, 50, 60], [10, 20, 50, 70]
    assert iou(rider, horse) >= 0.5
    rows = one([rider, horse], [0, 1], [horse], [1], [0.9])
    assert rows.s_wrong_class.max() == 0


def test_loose_box_is_one_minus_the_iou_of_the_best_same_class_prediction():
    drawn = [20, 15, 65, 60]
    rows = one([drawn], [0], [A, [300, 300, 320, 320]], [0, 0], [0.9, 0.95])
    r = rows[rows.gt_row == 0].iloc[0]
    assert r.s_loose == pytest.approx(1 - iou(drawn, A), abs=1e-6)
    assert r.kind == "loose" and [r.sx1, r.sy1, r.sx2, r.sy2] == A


def test_spurious_label_where_nothing_is_predicted():
    rows = one([A, B], [0, 1], [A], [0], [0.9])
    assert rows[rows.gt_row == 1].s_spurious.item() == pytest.approx(1.0)
    assert rows[rows.gt_row == 1].kind.item() == "spurious"
    # a weak prediction of any class (above low_conf) half-supports it: IoU 1/3 -> 0.7 * (1/3) / 0.5
    half = [130, 100, 190, 140]
    rows = one([B], [1], [half], [2], [0.7])
    assert rows[rows.gt_row == 0].s_spurious.item() == pytest.approx(1 - 0.7 * iou(B, half) / 0.5, abs=1e-6)


def test_duplicate_flags_the_worse_fitting_copy():
    copy = [12, 11, 52, 50]
    rows = one([A, copy], [0, 0], [A], [0], [0.9])
    dup = rows[rows.s_duplicate > 0]
    assert len(dup) == 1 and dup.gt_row.item() == 1  # A fits the prediction exactly; the copy does not
    assert dup.s_duplicate.item() == pytest.approx(iou(A, copy), abs=1e-6)
    assert [dup.sx1.item(), dup.sy1.item()] == [10, 10]  # the partner: the label to keep
    # different classes are not duplicates
    assert one([A, copy], [0, 1], [A], [0], [0.9]).s_duplicate.max() == 0


def test_images_are_ranked_worst_first():
    truth = [{"boxes": torch.tensor([A]), "labels": torch.tensor([0])} for _ in range(3)]
    dets = [{"boxes": torch.tensor([A]), "labels": torch.tensor([0]), "scores": torch.tensor([0.9])},
            {"boxes": torch.tensor([A]), "labels": torch.tensor([1]), "scores": torch.tensor([0.9])},   # wrong class
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}]  # spurious
    result = review(dets, truth, image_ids=["ok", "swap", "empty"])
    assert result.images.image_id.tolist() == ["empty", "swap", "ok"]
    assert result.images.kind.tolist()[:2] == ["spurious", "wrong_class"]
    assert result.ranked().image_id.tolist()[0] == "empty"


def test_pairs_and_segment_max_match_brute_force():
    g = torch.Generator().manual_seed(0)
    img_a = torch.sort(torch.randint(0, 6, (17,), generator=g)).values
    img_b = torch.sort(torch.randint(0, 6, (11,), generator=g)).values
    ia, ib = pairs(img_a, img_b, 6)
    brute = [(i, j) for i, j in itertools.product(range(17), range(11)) if img_a[i] == img_b[j]]
    assert sorted(zip(ia.tolist(), ib.tolist())) == brute
    values = torch.rand(len(ia), generator=g)
    best, arg = segment_max(values, ia, 17)
    for i in range(17):
        mine = [k for k in range(len(ia)) if ia[k] == i]
        assert best[i] == (max(values[mine]) if mine else 0)
        assert arg[i] == (mine[int(torch.argmax(values[mine]))] if mine else -1)


def test_review_is_vectorised_over_images_the_same_as_one_by_one():
    """A split scored at once equals each image scored alone (the pair layout mixes nothing)."""
    g = torch.Generator().manual_seed(1)
    truth, dets = [], []
    for n_gt, n_det in [(3, 5), (0, 2), (2, 0), (4, 4), (1, 1)]:
        xy = torch.rand(n_gt, 2, generator=g) * 200
        truth.append({"boxes": torch.cat([xy, xy + 20 + torch.rand(n_gt, 2, generator=g) * 60], 1),
                      "labels": torch.randint(0, 3, (n_gt,), generator=g)})
        xy = torch.rand(n_det, 2, generator=g) * 200
        dets.append({"boxes": torch.cat([xy, xy + 20 + torch.rand(n_det, 2, generator=g) * 60], 1),
                     "labels": torch.randint(0, 3, (n_det,), generator=g), "scores": torch.rand(n_det, generator=g)})
    whole = review(dets, truth, ReviewConfig(min_score=0.0)).boxes
    for i in range(len(truth)):
        alone = review([dets[i]], [truth[i]], ReviewConfig(min_score=0.0)).boxes
        mine = whole[whole.image == i].drop(columns=["image", "image_id", "gt_row"]).reset_index(drop=True)
        alone = alone.drop(columns=["image", "image_id", "gt_row"]).reset_index(drop=True)
        assert mine.round(5).equals(alone.round(5))


# ------------------------------------------------------------------------------ review file
def test_decisions_latest_wins_undo_and_survive_a_reload(tmp_path):
    log = ReviewLog.open(tmp_path / "r.json", tmp_path, "val", ["a", "b", "c"])
    assert log.history == () and not (tmp_path / "r.json").exists()
    keep = Decision("img1", "wrong_class", "keep", gt=0, label=0, box=(10, 10, 50, 50), new_label=2)
    accept = Decision("img1", "wrong_class", "accept", gt=0, label=0, box=(10, 10, 50, 50), new_label=2)
    add = Decision("img2", "missing", "accept", new_label=1, new_box=(1, 2, 30, 40))
    log = log.decide(keep).decide(add).decide(accept)
    assert [d.action for d in log.current().values()] == ["accept", "accept"]
    log.save()
    again = ReviewLog.load(tmp_path / "r.json")
    assert again.current() == log.current() and again.split == "val" and again.classes == ("a", "b", "c")
    undone = again.undo()
    assert undone.current()["img1|0"].action == "keep"  # the earlier decision is back
    assert undone.undo().undo().undo().history == ()


def test_bad_decisions_and_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown action"):
        Decision("x", "loose", "maybe", gt=0)
    with pytest.raises(ValueError, match="predicted box"):
        Decision("x", "missing", "accept")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="label-review file"):
        ReviewLog.load(tmp_path / "bad.json")


def test_apply_decisions_edits_exactly_what_was_accepted():
    boxes = np.array([A, B, [0, 0, 5, 5], [200, 200, 220, 220]], np.float32)
    labels = np.array([0, 1, 2, 0])
    diff = np.array([False, True, False, False])
    decisions = [
        Decision("i", "wrong_class", "accept", gt=0, label=0, box=tuple(A), new_label=2),
        Decision("i", "loose", "accept", gt=1, label=1, box=tuple(B), new_box=(90, 95, 150, 150)),
        Decision("i", "spurious", "accept", gt=2, label=2, box=(0, 0, 5, 5)),
        Decision("i", "loose", "keep", gt=3, label=0, box=(200, 200, 220, 220), new_box=(0, 0, 1, 1)),
        Decision("i", "missing", "accept", new_label=1, new_box=(300, 300, 340, 350)),
        Decision("i", "missing", "delete", new_label=1, new_box=(400, 400, 410, 410)),
    ]
    b, l, d, changes = apply_decisions(boxes, labels, diff, decisions)
    np.testing.assert_array_equal(b, [A, [90, 95, 150, 150], [200, 200, 220, 220], [300, 300, 340, 350]])
    assert l.tolist() == [2, 1, 0, 1] and d.tolist() == [False, True, False, False]
    assert changes == {"added": 1, "reclassified": 1, "moved": 1, "deleted": 1, "kept": 2, "stale": 0}
    # a decision about a label that has changed since is not applied
    stale = [Decision("i", "spurious", "accept", gt=0, label=1, box=tuple(A))]
    assert apply_decisions(boxes, labels, diff, stale)[3]["stale"] == 1


def test_review_file_goes_beside_the_dataset_or_to_the_cache_when_read_only(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert review_file_path(data, "2007/test") == data / "label_review-2007_test.json"
    data.chmod(0o555)
    try:
        path = review_file_path(data, "val", cache_dir=None)
        assert data not in path.parents and path.name == "label_review-val.json"
    finally:
        data.chmod(0o755)
    assert KINDS == ("missing", "wrong_class", "loose", "spurious", "duplicate")
