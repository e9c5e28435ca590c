"""yolo.evaluate against independent implementations: the TIDE breakdown against the ``tidecv``
package, the COCO rule against pycocotools' COCOeval, the course rule against a
plain re-implementation of the course's ``mean_average_precision`` written here, the VOC numbers
against the hand-worked values of test_metrics; operating points on a constructed split and
through the Detector; checkpoint A/B on identical and degraded files; the COCO exports."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from yolo.detect import Detector
from yolo.evaluate import (
    ERROR_TYPES,
    coco_ground_truth,
    coco_map50,
    coco_results,
    compare,
    course_map50,
    error_breakdown,
    fit_operating_points,
    held_out_gain,
    metric_table,
    scores_at,
)
from yolo.model import YOLOv3
from yolo.thresholds import load_thresholds, thresholds_path, write_thresholds
from yolo.weights import save_weights

A, B, C = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 60, 60]


def det(boxes, scores, labels) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}


def gt(boxes, labels, difficult=None) -> dict:
    n = len(labels)
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(difficult if difficult is not None else [False] * n, dtype=torch.bool)}


# ----------------------------------------------------------------------------------- TIDE
def tidecv_breakdown(tmp_path, detections, truths, sizes, names) -> dict:
    """tidecv's numbers (0..100) on our COCO exports, read by tidecv's own COCO readers."""
    tidecv = pytest.importorskip("tidecv")
    from tidecv import datasets

    ids = [f"img{i}" for i in range(len(truths))]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(coco_ground_truth(truths, ids, torch.tensor(sizes), names)))
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(coco_results(detections)))
    tide = tidecv.TIDE()
    run = tide.evaluate(datasets.COCO(str(gt_path)), datasets.COCOResult(str(res_path)), mode=tidecv.TIDE.BOX)
    errors = tide.get_all_errors()
    name = next(iter(errors["main"]))
    counts = {error.short_name: n for error, n in run.count_errors().items()}
    return {"map": run.ap, **errors["main"][name], **errors["special"][name], "counts": counts}


def assert_matches_tidecv(ours, theirs) -> None:
    """Every error count equal; mAP, each dAP and both oracles within 1e-9 (0..1; tidecv is 0..100)."""
    assert ours.counts == {kind: theirs["counts"][kind] for kind in ERROR_TYPES}
    assert ours.map * 100 == pytest.approx(theirs["map"], abs=1e-7)
    for kind in ERROR_TYPES:
        assert ours.delta[kind] * 100 == pytest.approx(theirs[kind], abs=1e-7), kind
    for kind in ("FalsePos", "FalseNeg"):
        assert ours.oracle[kind] * 100 == pytest.approx(theirs[kind], abs=1e-7), kind


def base_scene():
    """Six images, two classes, every object found exactly (the scene each error is added to)."""
    truths, dets = [], []
    for i in range(6):
        boxes = [[10 + 5 * i, 10, 60 + 5 * i, 70], [100, 100 + 3 * i, 150, 170 + 3 * i]]
        labels = [i % 2, 1 - i % 2]
        truths.append(gt(boxes, labels))
        dets.append(det(boxes, [0.9 - 0.05 * i, 0.85 - 0.05 * i], labels))
    return dets, truths


def with_error(kind: str):
    dets, truths = base_scene()
    d = dets[2]
    box, label = truths[2]["boxes"][0].tolist(), int(truths[2]["labels"][0])
    if kind == "Cls":  # the right box, the wrong class (the object itself goes unfound)
        d = det([d["boxes"][1].tolist(), box], [d["scores"][1].item(), 0.95], [int(d["labels"][1]), 1 - label])
    elif kind == "Loc":  # the right class, shifted to IoU about 0.3
        d = det([d["boxes"][1].tolist(), [box[0] + 27, box[1], box[2] + 27, box[3]]],
                [d["scores"][1].item(), 0.95], [int(d["labels"][1]), label])
    elif kind == "Both":  # wrong class and shifted, beside the found object
        d = det(d["boxes"].tolist() + [[box[0] + 27, box[1], box[2] + 27, box[3]]], d["scores"].tolist() + [0.95],
                d["labels"].tolist() + [1 - label])
    elif kind == "Dupe":  # a second detection on a found object, scored above other true positives
        d = det(d["boxes"].tolist() + [[box[0] + 1, box[1], box[2] + 1, box[3]]], d["scores"].tolist() + [0.78],  # no score tie: tidecv re-orders ties when fixing
                d["labels"].tolist() + [label])
    elif kind == "Bkg":  # a detection on nothing
        d = det(d["boxes"].tolist() + [[300, 300, 340, 340]], d["scores"].tolist() + [0.95], d["labels"].tolist() + [0])
    elif kind == "Miss":  # an object nobody detects
        truths[2] = gt(truths[2]["boxes"].tolist() + [[200, 10, 260, 60]], truths[2]["labels"].tolist() + [0])
    dets[2] = d
    return dets, truths


@pytest.mark.parametrize("kind", ERROR_TYPES)
def test_each_error_alone_shows_only_its_own_cost_and_equals_tidecv(kind, tmp_path):
    dets, truths = with_error(kind)
    ours = error_breakdown(dets, truths, 2)
    assert ours.delta[kind] > 0.01, ours.delta
    assert all(v < 1e-9 for k, v in ours.delta.items() if k != kind), ours.delta
    assert ours.counts[kind] == 1 and sum(ours.counts.values()) == 1
    assert set(ours.errors["type"]) == {kind} and ours.errors["image"].tolist() == [2]
    assert_matches_tidecv(ours, tidecv_breakdown(tmp_path, dets, truths, [[400, 400]] * 6, ["a", "b"]))


def noisy_oracle(truths, num_classes, seed=0):
    """Detections made from the ground truth with every kind of mistake at random: kept, shifted,
    relabelled, duplicated, dropped, plus background boxes; scores random."""
    rng = np.random.default_rng(seed)
    out = []
    for t in truths:
        boxes, labels = [], []
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist()):
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            roll = rng.random()
            if roll < 0.15:
                continue  # missed
            shift = rng.uniform(0.05, 0.6) if roll < 0.45 else rng.uniform(0, 0.08)
            dx = shift * w * rng.choice([-1, 1])
            new = [x1 + dx, y1, x2 + dx, y2]
            boxes.append(new)
            labels.append(int(rng.integers(num_classes)) if rng.random() < 0.15 else label)
            if rng.random() < 0.15:  # duplicate
                boxes.append([v + rng.uniform(-2, 2) for v in new])
                labels.append(label)
        for _ in range(rng.poisson(1.0)):  # background
            x, y = rng.uniform(0, 300, 2)
            boxes.append([x, y, x + rng.uniform(10, 80), y + rng.uniform(10, 80)])
            labels.append(int(rng.integers(num_classes)))
        out.append(det(boxes, rng.random(len(labels)).tolist(), labels))
    return out


def voc_mini_val(voc_mini, tmp_path_factory):
    from yolo.config import VOC_CLASSES
    from yolo.data.layout import build_index

    index = build_index([voc_mini], ["val"], VOC_CLASSES, cache_dir=tmp_path_factory.mktemp("idx"), progress=False)
    truths = []
    for i in range(len(index)):
        boxes, labels, difficult = index.annotation(i)
        truths.append(gt(np.asarray(boxes).tolist(), np.asarray(labels).tolist(), np.asarray(difficult).tolist()))
    return index, truths


def test_breakdown_equals_tidecv_on_voc_mini_val(voc_mini, tmp_path, tmp_path_factory):
    index, truths = voc_mini_val(voc_mini, tmp_path_factory)
    dets = noisy_oracle(truths, 20)
    for t in truths[::5]:  # some difficult objects (voc-mini's val has none) exercise the crowd rule
        t["difficult"][::2] = True
    ours = error_breakdown(dets, truths, 20)
    assert all(ours.counts[k] > 0 for k in ERROR_TYPES), ours.counts
    theirs = tidecv_breakdown(tmp_path, dets, truths, index.sizes.tolist(), VOC_NAMES)
    assert_matches_tidecv(ours, theirs)


VOC_NAMES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
             "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def calibrated_random_model(width: float = 0.125) -> YOLOv3:
    """Random weights with BatchNorm statistics measured on noise, so scores spread (see
    test_dashboard.calibrated_random_model)."""
    torch.manual_seed(0)
    model = YOLOv3(20, width)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, 160, 160))
    return model.eval()


def test_breakdown_equals_tidecv_on_a_checkpoints_voc_mini_predictions(voc_mini, tmp_path, tmp_path_factory):
    from yolo.data.datasets import DetectionDataset
    from yolo.predictions import predict_samples

    index, _ = voc_mini_val(voc_mini, tmp_path_factory)
    path = save_weights(calibrated_random_model(), tmp_path / "tiny.ckpt", VOC_NAMES)
    detector = Detector.from_checkpoint(path, image_size=160)
    dataset = DetectionDataset(index)
    preds = predict_samples(detector, [dataset[i] for i in range(16)], conf_floor=0.01, progress=False)
    dets, truths = preds.detections(conf=0.01, iou=0.45), preds.ground_truth()
    ours = error_breakdown(dets, truths, 20)
    assert_matches_tidecv(ours, tidecv_breakdown(tmp_path, dets, truths, preds.sizes.tolist(), VOC_NAMES))


# ----------------------------------------------------------------------------- metric truth
def course_mean_average_precision(pred_boxes, true_boxes, iou_threshold=0.5, num_classes=20):
    """The course's rule written plainly (lists of [image, class, score, x1, y1, x2, y2] and
    [image, class, x1, y1, x2, y2]): per class, detections by score, a TP when the best-IoU box of
    the class in its image has IoU > threshold and is not yet used; cumulative precision and
    recall with epsilon, (0, 1) prepended, trapezoid; mean over classes with boxes."""
    def iou(a, b):
        x1, y1 = max(a[0], b[0]), max(a[1], b[1])
        x2, y2 = min(a[2], b[2]), min(a[3], b[3])
        inter = max(x2 - x1, 0) * max(y2 - y1, 0)
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / (union + 1e-6)

    average_precisions, epsilon = [], 1e-6
    for c in range(num_classes):
        detections = [d for d in pred_boxes if d[1] == c]
        ground_truths = [t for t in true_boxes if t[1] == c]
        used = {k: [0] * v for k, v in Counter(t[0] for t in ground_truths).items()}
        detections.sort(key=lambda x: x[2], reverse=True)
        tp, fp = torch.zeros(len(detections)), torch.zeros(len(detections))
        if not ground_truths:
            continue
        for i, d in enumerate(detections):
            same_image = [t for t in ground_truths if t[0] == d[0]]
            best, best_j = 0, None
            for j, t in enumerate(same_image):
                value = iou(d[3:], t[2:])
                if value > best:
                    best, best_j = value, j
            if best > iou_threshold and used[d[0]][best_j] == 0:
                tp[i], used[d[0]][best_j] = 1, 1
            else:
                fp[i] = 1
        tp_sum, fp_sum = torch.cumsum(tp, 0), torch.cumsum(fp, 0)
        recalls = torch.cat([torch.tensor([0.0]), tp_sum / (len(ground_truths) + epsilon)])
        precisions = torch.cat([torch.tensor([1.0]), tp_sum / (tp_sum + fp_sum + epsilon)])
        average_precisions.append(torch.trapz(precisions, recalls))
    return float(sum(average_precisions) / len(average_precisions))


def random_split(seed: int, images: int = 40, classes: int = 4):
    rng = np.random.default_rng(seed)
    truths = []
    for _ in range(images):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(15, 80, (n, 2))
        truths.append(gt(np.hstack([xy, xy + wh]).tolist(), rng.integers(0, classes, n).tolist(),
                         (rng.random(n) < 0.1).tolist()))
    return noisy_oracle(truths, classes, seed), truths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_course_rule_equals_the_courses_code(seed):
    dets, truths = random_split(seed)
    preds = [[i, int(l), float(s), *b] for i, d in enumerate(dets)
             for b, s, l in zip(d["boxes"].tolist(), d["scores"].tolist(), d["labels"].tolist())]
    boxes = [[i, int(l), *b] for i, t in enumerate(truths) for b, l in zip(t["boxes"].tolist(), t["labels"].tolist())]
    ours, _ = course_map50(dets, truths, 4)
    assert ours == pytest.approx(course_mean_average_precision(preds, boxes, 0.5, 4), abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_rule_equals_pycocotools(seed, tmp_path):
    """pycocotools' COCOeval at IoU 0.5 on our exports (difficult objects as crowd regions). The
    reference is the original implementation, not torchmetrics' faster-coco-eval backend, whose
    numbers differ from it on some inputs."""
    dets, truths = random_split(seed)
    theirs = pycocotools_ap50(tmp_path, dets, truths, "abcd")
    ours, per_class = coco_map50(dets, truths, 4)
    assert ours == pytest.approx(float(np.mean(theirs)), abs=1e-9)
    assert per_class[~per_class.isnan()].tolist() == pytest.approx(theirs, abs=1e-9)


def pycocotools_ap50(tmp_path, dets, truths, names, ids=None):
    """pycocotools' COCOeval at IoU 0.5 on our exports -> per-class AP (classes with positives)."""
    pytest.importorskip("pycocotools")
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = tmp_path / "gt.json"
    path.write_text(json.dumps(coco_ground_truth(truths, [str(i) for i in range(len(truths))],
                                                 torch.tensor([[400, 400]] * len(truths)), list(names))))
    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO(str(path))
        run = COCOeval(ground, ground.loadRes(coco_results(dets)), "bbox")
        run.params.iouThrs = np.array([0.5])
        run.evaluate()
        run.accumulate()
    precision = run.eval["precision"][0, :, :, 0, -1]  # (101 recalls, classes) at maxDets 100
    return [precision[:, k].mean() for k in range(precision.shape[1]) if (precision[:, k] > -1).any()]


def sequence_split(seq: str):
    """10 images x 10 objects of class 0 (100 positives) and one detection per letter of ``seq``
    in descending score order: "T" an exact box on the next unfound object, "F" a box on nothing."""
    objects = [[[25 * k, 0, 25 * k + 20, 20] for k in range(10)] for _ in range(10)]
    boxes = [[] for _ in range(10)]
    scores = [[] for _ in range(10)]
    found = 0
    for k, s in enumerate(seq):
        if s == "T":
            image, box = found // 10, objects[found // 10][found % 10]
            found += 1
        else:
            image, box = k % 10, [30 * (k % 10), 200 + 12 * (k // 10), 30 * (k % 10) + 10, 210 + 12 * (k // 10)]
        boxes[image].append(box)
        scores[image].append(1.0 - 0.001 * k)
    dets = [det(b, s, [0] * len(s)) for b, s in zip(boxes, scores)]
    return dets, [gt(o, [0] * 10) for o in objects]


@pytest.mark.parametrize("seq", ["T" * 57 + "F" * 10 + "T" * 43, "T" * 70 + "F" * 5 + "T" * 12 + "F" * 3 + "T" * 13,
                                 "T" * 35 + "F" * 10 + "T" * 65])
def test_coco_rule_reads_pycocotools_own_recall_grid(seq, tmp_path):
    """Recall lands exactly on 0.57 / 0.70 / 0.35: pycocotools' np.linspace grid has 0.5700000000000001
    and 0.7000000000000001 there (torch.linspace: 0.57, 0.7), so it reads the precision after the
    false positives; the numbers must agree to 1e-9, not merely to the size of one grid point."""
    dets, truths = sequence_split(seq)
    theirs = pycocotools_ap50(tmp_path, dets, truths, ["a"])
    ours, per_class = coco_map50(dets, truths, 1)
    assert ours == pytest.approx(float(np.mean(theirs)), abs=1e-9)
    assert per_class.tolist() == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize("seq", ["T" * 35 + "F" * 10 + "T" * 65, "T" * 57 + "F" * 10 + "T" * 43])
def test_tide_map_reads_tidecvs_own_recall_grid(seq, tmp_path):
    """tidecv's grid is x / 100 (0.35, 0.57), not pycocotools' (0.35000000000000003,
    0.5700000000000001): the breakdown's mAP equals tidecv's to 1e-9 when recall lands there."""
    dets, truths = sequence_split(seq)
    ours = error_breakdown(dets, truths, 1)
    theirs = tidecv_breakdown(tmp_path, dets, truths, [[400, 400]] * 10, ["a"])
    assert ours.map * 100 == pytest.approx(theirs["map"], abs=1e-9)
    assert ours.oracle["FalsePos"] * 100 == pytest.approx(theirs["FalsePos"], abs=1e-9)


def test_voc_columns_equal_the_hand_worked_values_of_test_metrics():
    # test_metrics.test_eleven_point_differs_from_area: area 5/9, 11-point 6/11
    dets = [det([A, [100, 100, 110, 110], B, [200, 200, 210, 210]], [0.9, 0.8, 0.7, 0.6], [0] * 4)]
    summary, per_class = metric_table(dets, [gt([A, B, C], [0, 0, 0])], ["a"])
    got = dict(zip(summary["rule"], summary["mAP@0.5"]))
    assert got["VOC (all points)"] == pytest.approx(5 / 9, abs=1e-12)
    assert got["VOC07 (11 points)"] == pytest.approx(6 / 11, abs=1e-12)
    # test_metrics.test_duplicate_detection_is_a_false_positive: 5/6
    summary, _ = metric_table([det([A, A, B], [0.9, 0.8, 0.7], [0, 0, 0])], [gt([A, B], [0, 0])], ["a"])
    assert summary["mAP@0.5"][0] == pytest.approx(5 / 6, abs=1e-12)
    assert summary["why"].str.len().min() > 20 and list(summary["rule"]) == [
        "VOC (all points)", "VOC07 (11 points)", "COCO (101 points)", "course"]


# --------------------------------------------------------------------------- operating points
def constructed_split():
    """Two classes with known best-F1 cuts. Class 0 (4 objects), in score order TP TP TP FP FP TP
    FP: best F1 6/7 after the third (cut between 0.7 and 0.6 -> 0.65). Class 1 (2 objects),
    TP FP TP FP FP: best F1 after the third, 0.8 (cut between 0.3 and 0.2 -> 0.25)."""
    far = [[300 + 20 * k, 300, 310 + 20 * k, 310] for k in range(4)]
    objects0 = [[10 + 40 * k, 10, 40 + 40 * k, 40] for k in range(4)]
    objects1 = [[10 + 40 * k, 100, 40 + 40 * k, 130] for k in range(2)]
    dets = det(objects0[:3] + far[:2] + objects0[3:] + far[2:3] + [objects1[0], far[3], objects1[1], [0, 200, 5, 205], [9, 200, 15, 205]],
               [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3] + [0.5, 0.4, 0.3, 0.2, 0.1], [0] * 7 + [1] * 5)
    truth = gt(objects0 + objects1, [0] * 4 + [1] * 2)
    return [dets], [truth]


def test_optimiser_finds_each_classes_best_threshold():
    dets, truths = constructed_split()
    points = fit_operating_points(dets, truths, ["a", "b"])
    assert points.class_thresholds == pytest.approx([0.65, 0.25])
    assert points.f1["a"] == pytest.approx(6 / 7) and points.f1["b"] == pytest.approx(0.8)
    strict = fit_operating_points(dets, truths, ["a", "b"], target_precision=1.0)
    assert strict.class_thresholds == pytest.approx([0.65, 0.45])  # class b: only its first is certain


def test_saved_thresholds_round_trip_through_the_detector(tmp_path):
    dets, truths = constructed_split()
    points = fit_operating_points(dets, truths, ["a", "b"])
    path = write_thresholds(points, tmp_path / "best.thresholds.json")
    assert load_thresholds(path, ["a", "b"]).class_thresholds == pytest.approx(points.class_thresholds)
    with pytest.raises(ValueError, match="no threshold for c"):
        load_thresholds(path, ["a", "c"])
    good = json.loads(path.read_text())
    for field, value in [("thresholds", [0.5, 0.5]), ("thresholds", {"a": "high", "b": 0.5}),
                         ("thresholds", {"a": None, "b": 0.5}), ("global_threshold", [1]), ("f1", 3),
                         ("global_threshold", 2.0)]:
        path.with_name("bad.json").write_text(json.dumps({**good, field: value}))
        with pytest.raises(ValueError, match="bad.json"):  # one ValueError naming the file, never a TypeError
            load_thresholds(path.with_name("bad.json"), ["a", "b"])
    torch.manual_seed(0)
    ckpt = save_weights(calibrated_random_model_2(), tmp_path / "best.ckpt", ["a", "b"])
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    plain = Detector.from_checkpoint(ckpt, image_size=128, operating_points=False).predict(image)
    tuned = Detector.from_checkpoint(ckpt, image_size=128, operating_points=path).predict(image)
    # scale the saved thresholds into this random model's score range: write them again
    scores = plain.select(conf=0.0, max_detections=10_000)
    low = [float(scores.scores[scores.labels == c].quantile(0.9)) for c in range(2)]
    points.class_thresholds = low
    write_thresholds(points, path)
    tuned = Detector.from_checkpoint(ckpt, image_size=128, operating_points=path).predict(image)
    got = tuned.select(max_detections=10_000)
    assert len(got) > 0
    for c in range(2):
        assert (got.scores[got.labels == c] > low[c]).all()
        assert int((got.labels == c).sum()) == len(plain.select(conf=low[c], classes=[c], max_detections=10_000))
    assert len(plain.select(max_detections=10_000)) != len(got), "the operating point changes the output"


def calibrated_random_model_2() -> YOLOv3:
    torch.manual_seed(0)
    model = YOLOv3(2, 0.125)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 128, 128))
    return model.eval()


def test_per_class_thresholds_gain_f1_on_a_held_out_split():
    from yolo.metrics import match_detections

    def informative(seed):
        """Scores that separate right from wrong at a different level per class: class 0 right
        ~ U(0.6, 1), wrong ~ U(0.3, 0.7); class 1 right ~ U(0.2, 0.4), wrong ~ U(0, 0.25)."""
        dets, truths = random_split(seed, 80)
        rng = np.random.default_rng(seed)
        out = []
        for d, t in zip(dets, truths):
            right = match_detections([d], [t], 4).tp
            low = torch.tensor([[0.3, 0.6], [0.0, 0.2], [0.3, 0.6], [0.0, 0.2]])[d["labels"], right.long()]
            span = torch.tensor([[0.4, 0.4], [0.25, 0.2], [0.4, 0.4], [0.25, 0.2]])[d["labels"], right.long()]
            out.append({**d, "scores": (low + span * torch.tensor(rng.random(len(low)), dtype=torch.float32)).float()})
        return out, truths

    result = held_out_gain(informative(3), informative(4), ["a", "b", "c", "d"])
    assert result["f1_gain"] == pytest.approx(result["f1_per_class_thresholds"] - result["f1_global_threshold"])
    assert result["f1_gain"] > 0.02, result


# ------------------------------------------------------------------------------------- A/B
def test_identical_files_give_zero_differences_and_no_regressions():
    dets, truths = random_split(5, 60)
    result = compare(dets, dets, truths, ["a", "b", "c", "d"], draws=100)
    assert result.per_class["dAP"].abs().max() == 0 and result.regressions.empty
    assert result.per_class["low"].abs().max() == 0 and result.per_class["high"].abs().max() == 0
    assert result.map_a == result.map_b


def test_one_degraded_class_is_ranked_first_with_an_interval_below_zero():
    dets, truths = random_split(6, 80)
    worse = []
    for d in dets:  # class 2 loses three quarters of its detections
        keep = (d["labels"] != 2) | (torch.arange(len(d["labels"])) % 4 == 0)
        worse.append({k: v[keep] for k, v in d.items()})
    result = compare(dets, worse, truths, ["a", "b", "c", "d"], conf=0.05, draws=200)
    first = result.per_class.iloc[0]
    assert first["class"] == "c" and first["dAP"] < 0 and first["high"] < 0 and first["significant"]
    others = result.per_class[result.per_class["class"] != "c"]
    assert (others["dAP"].abs() < 1e-12).all()
    assert len(result.regressions) > 0 and (result.regressions["lost TP"] > 0).any()
    assert result.regressions["worse"].is_monotonic_decreasing


def test_ab_aps_equal_voc_evaluate_on_the_split_and_on_a_resampled_split():
    """The A/B's weighted AP (every bootstrap draw at once) against ``voc_evaluate`` run plainly:
    on the split (weights 1) and on one resample built by repeating the drawn images."""
    from yolo.evaluate.compare import _weighted_ap
    from yolo.metrics import match_detections, voc_evaluate

    names = ["a", "b", "c", "d"]
    dets, truths = random_split(7, 30)
    for d, t in (random_split(seed, 30) for seed in (7, 8, 9)):  # voc_evaluate's APs exactly (same float64 arithmetic)
        per_class = compare(d, d, t, names, draws=3).per_class.set_index("class")
        plain = voc_evaluate(d, t, 4).per_class_ap
        torch.testing.assert_close(torch.tensor(per_class.loc[names, "AP A"].tolist(), dtype=torch.float64), plain,
                                   rtol=0, atol=0, equal_nan=True)
    drawn = torch.randint(0, 30, (30,), generator=torch.Generator().manual_seed(3))
    m = match_detections(dets, truths, 4)
    keep = ~m.ignored
    positives = torch.stack([torch.bincount(t["labels"][~t["difficult"]], minlength=4) for t in truths]).double()
    weights = torch.bincount(drawn, minlength=30).double()[None]
    ours = _weighted_ap(m.scores[keep], m.labels[keep], m.tp[keep], m.image[keep], positives, weights, 4)[0]
    resampled = voc_evaluate([dets[i] for i in drawn], [truths[i] for i in drawn], 4).per_class_ap
    # a repeated image is one weight here and repeated rows there: the same sums in another order
    assert ours.tolist() == pytest.approx(resampled.tolist(), abs=1e-12, nan_ok=True)


# ------------------------------------------------------------------------------------ exports
def test_coco_exports_are_xywh_with_one_based_categories_and_crowd_difficult():
    dets = [det([[10, 20, 40, 60]], [0.5], [3])]
    truths = [gt([[10, 20, 40, 60], [0, 0, 5, 5]], [3, 1], [False, True])]
    results = coco_results(dets)
    assert results == [{"image_id": 0, "category_id": 4, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.5}]
    coco = coco_ground_truth(truths, ["x.jpg"], torch.tensor([[100, 200]]), ["a", "b", "c", "d"])
    assert coco["images"] == [{"id": 0, "file_name": "x.jpg", "height": 100, "width": 200}]
    assert [a["iscrowd"] for a in coco["annotations"]] == [0, 1] and coco["annotations"][0]["area"] == 1200
    assert math.isclose(coco_map50(dets, truths, 4)[0], 1.0)


# ------------------------------------------------------------------------------------ the CLI
def test_cli_evaluates_compares_and_writes_every_file(voc_mini, tmp_path, capsys):
    from yolo.evaluate.__main__ import main
    from yolo.predictions import PredictionSet

    a = save_weights(calibrated_random_model(), tmp_path / "a.ckpt", VOC_NAMES)
    torch.manual_seed(3)
    b = save_weights(YOLOv3(20, 0.125).eval(), tmp_path / "b.ckpt", VOC_NAMES)
    out = tmp_path / "out"
    args = [str(a), "--data", str(voc_mini), "--split", "val", "--limit", "6", "--image-size", "128",
            "--compare", str(b), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mAP@0.5 by rule" in printed and "TIDE error breakdown" in printed and "Held-out F1" in printed
    folder = out / "val"
    for name in ("rules.csv", "per_class.csv", "errors.csv", "error_instances.csv", "operating_points.csv",
                 "coco_results.json", "coco_ground_truth.json", "compare.csv", "regressions.csv"):
        assert (folder / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["splits"]["val"]["map50"]) == {"VOC (all points)", "VOC07 (11 points)", "COCO (101 points)", "course"}
    assert "compare" in summary["splits"]["val"] and "f1_gain" in summary["held_out_f1"]
    # calibration: printed, written, and the same numbers as yolo.evaluate.calibration on the cached predictions
    from yolo.evaluate import calibration

    assert "calibration at IoU 0.5" in printed and (folder / "calibration.csv").is_file()
    preds = PredictionSet.load(next(out.glob("predictions-A-*.pt")))
    from yolo.config import EVAL_NMS

    direct = calibration(preds.detections(conf=preds.conf_floor, iou=0.45, max_detections=EVAL_NMS.max_detections),
                         preds.ground_truth(), 20)
    written = summary["splits"]["val"]["calibration"]
    assert written["detections"] == direct.detections and written["n_bins"] == 10
    assert (math.isnan(direct.ece) and written["ece"] is None) or written["ece"] == pytest.approx(direct.ece, abs=1e-12)
    assert [b["count"] for b in written["bins"]] == direct.bins["count"].tolist()
    # the thresholds are saved in one place: beside the checkpoint, not in the output folder
    saved = thresholds_path(a)
    assert summary["thresholds_file"] == str(saved) and not (folder / "operating_points.json").exists()
    points = load_thresholds(saved, VOC_NAMES)
    fitted = fit_operating_points(preds.detections(conf=preds.conf_floor, iou=0.45, max_detections=300),
                                  preds.ground_truth(), VOC_NAMES)  # on what they were fitted on
    assert points.class_thresholds == pytest.approx(fitted.class_thresholds) and points.meta["split"] == "val"
    again = main(args + ["--operating-points", str(saved), "--force"])
    printed = capsys.readouterr().out
    assert again == 0 and "reusing" in printed, "the model ran once per split"
    assert "at the given operating points" in printed
    assert "given_operating_points" in json.loads((out / "summary.json").read_text())["splits"]["val"]
    # an existing thresholds file is replaced only with --force; --no-thresholds leaves it alone
    before = saved.read_bytes()
    with pytest.raises(SystemExit):
        main(args[:-1] + [str(tmp_path / "out2")])
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(args[:-1] + [str(tmp_path / "out2"), "--no-thresholds"]) == 0
    assert saved.read_bytes() == before and "thresholds_file" not in json.loads((tmp_path / "out2" / "summary.json").read_text())
    capsys.readouterr()
    more = main([str(a), "--data", str(voc_mini), "--split", "val", "--limit", "7", "--image-size", "128",
                 "--out", str(out), "--force"])
    printed = capsys.readouterr().out
    assert more == 0 and "reusing" not in printed, "another --limit is other predictions"
    assert json.loads((out / "summary.json").read_text())["splits"]["val"]["images"] == 7
    # bad input: one line, no traceback
    assert main([str(a), "--data", str(tmp_path), "--split", "val", "--no-thresholds"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    five = save_weights(YOLOv3(5, 0.125).eval(), tmp_path / "five.ckpt", ["a", "b", "c", "d", "e"])
    assert main(args[:-4] + ["--compare", str(five), "--out", str(out), "--force"]) == 2
    assert "cannot be compared" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.ckpt"), "--data", str(voc_mini), "--split", "val"])


def test_cli_thresholds_are_what_the_next_detector_starts_from(voc_mini, tmp_path, capsys):
    """``python -m yolo.evaluate CKPT`` with no thresholds flag, then ``Detector.from_checkpoint(CKPT)``
    with no extra argument: its per-class thresholds are the ones the evaluation fitted, and
    ``select()`` with no threshold keeps exactly what those thresholds keep."""
    from yolo.evaluate.__main__ import main

    ckpt = save_weights(calibrated_random_model(), tmp_path / "run" / "best.ckpt", VOC_NAMES)
    assert Detector.from_checkpoint(ckpt, image_size=128).class_conf is None  # nothing saved yet
    assert main([str(ckpt), "--data", str(voc_mini), "--split", "val", "--limit", "4", "--image-size", "128"]) == 0
    assert "Detector.from_checkpoint and the dashboard" in capsys.readouterr().out
    fitted = json.loads((tmp_path / "run" / "evaluate" / "summary.json").read_text())["splits"]["val"]["class_thresholds"]
    detector = Detector.from_checkpoint(ckpt, image_size=128)
    assert detector.thresholds_file == str(tmp_path / "run" / "best.thresholds.json")
    assert list(detector.class_conf) == pytest.approx([fitted[n] for n in VOC_NAMES])
    image = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    found = detector.predict(image)
    by_hand = found.select(conf=[fitted[n] for n in VOC_NAMES])
    got = found.select()
    assert torch.equal(got.boxes, by_hand.boxes) and torch.equal(got.labels, by_hand.labels)


def test_box_statistics_by_hand():
    from yolo.evaluate.tables import box_statistics

    stats = box_statistics(np.array([[0, 0, 50, 20], [10, 10, 30, 50]]), np.array([[100, 200], [40, 40]]))
    assert stats["width"].tolist() == [50, 20] and stats["height"].tolist() == [20, 40]
    assert stats["relative_size"].tolist() == pytest.approx([math.sqrt(1000 / 20000), math.sqrt(800 / 1600)])
    assert stats["aspect"].tolist() == pytest.approx([2.5, 0.5])


def test_f1_from_counts_by_hand():
    from yolo.evaluate.operating import f1_score

    assert float(f1_score(3, 1, 6)) == pytest.approx(0.6)  # precision 3/4, recall 3/6: 2 PR / (P + R) = 0.6
    assert float(f1_score(0, 0, 5)) == 0.0 and float(f1_score(0, 2, 0)) == 0.0 and float(f1_score(0, 0, 0)) == 0.0
    assert f1_score(torch.tensor([3.0, 0.0]), torch.tensor([1.0, 0.0]), 6).tolist() == pytest.approx([0.6, 0.0])


def test_per_image_counts_equal_matching_only_the_kept_detections():
    """Counting the TP/FP above a threshold after matching everything equals matching only the
    detections above it (the rule written plainly), image by image."""
    from yolo.metrics import match_detections

    dets, truths = random_split(5, 20)
    for conf in (0.0, 0.3, 0.7):
        tp, fp = match_detections(dets, truths, 4).per_image(20, conf)
        for i, (d, t) in enumerate(zip(dets, truths)):
            kept = d["scores"] > conf
            m = match_detections([{k: v[kept] for k, v in d.items()}], [t], 4)
            assert (int(tp[i]), int(fp[i])) == (int(m.tp.sum()), int(m.fp.sum()))


# --------------------------------------------------------------------------- one threshold rule
def test_a_detection_scored_exactly_at_the_threshold_is_dropped_by_every_view():
    """The Detector (``select``) keeps a detection when its score is ABOVE the threshold; every
    table at a confidence threshold must count the same detections (the old metrics and per-image
    tables kept score == threshold, the operating points and A/B did not)."""
    from yolo.config import PostprocessConfig
    from yolo.evaluate.tables import per_image_errors
    from yolo.metrics import confusion_matrix, precision_recall_at
    from yolo.selection import select

    dets = [det([A, B], [0.5, 0.75], [0, 0])]  # both true positives; 0.5 is the threshold itself
    truths = [gt([A, B], [0, 0])]
    d = dets[0]
    (kept,) = select(d["boxes"], d["scores"], d["labels"], torch.zeros(2, dtype=torch.int64), 1,
                     PostprocessConfig(conf_threshold=0.5))
    assert d["scores"][kept].tolist() == [0.75]  # the rule, as the Detector applies it
    assert precision_recall_at(dets, truths, 1, 0.5).tp.tolist() == [1]
    assert confusion_matrix(dets, truths, 1, conf_threshold=0.5).tolist() == [[1, 1], [0, 0]]
    assert per_image_errors(dets, truths, 1, 0.5, ["i"])["found"].tolist() == [1]
    assert scores_at(dets, truths, 1, 0.5)["tp"].tolist() == [1]
    assert compare(dets, dets, truths, ["a"], conf=0.5, draws=2).images["TP A"].tolist() == [1]
