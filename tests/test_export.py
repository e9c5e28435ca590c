"""ONNX export: ONNX Runtime against PyTorch on voc-mini val images, raw and with NMS in the graph."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.ops import batched_nms, box_iou, nms

from yolo.config import ANCHORS, VOC_CLASSES, PostprocessConfig
from yolo.lit import ground_truth
from yolo.metrics import voc_evaluate
from yolo.model import YOLOv3
from yolo.postprocess import candidates, postprocess, top_k_per_image
from yolo.weights import save_weights

onnxruntime = pytest.importorskip("onnxruntime", reason="pip install onnxruntime (requirements.txt)")
from yolo.export import DetectionGraph, main, onnx_session, run_onnx, split_detections  # noqa: E402

SIZE, N_IMAGES = 256, 8
CONFIG = PostprocessConfig(conf_threshold=0.05, iou_threshold=0.45, max_detections=100, pre_nms_top_k=1000)


@pytest.fixture(scope="module")
def val_batch(voc_mini, tmp_path_factory) -> dict:
    from yolo.data.collate import collate
    from yolo.data.datasets import DetectionDataset, EvalDataset
    from yolo.data.layout import build_index

    index = build_index([voc_mini], ["2012/val"], VOC_CLASSES, tmp_path_factory.mktemp("cache"), progress=False)
    dataset = EvalDataset(DetectionDataset(index), SIZE)
    return collate([dataset[i] for i in range(N_IMAGES)])


@pytest.fixture(scope="module")
def checkpoint(val_batch, tmp_path_factory):
    """A width-0.25 model with BatchNorm statistics calibrated on the images and a head biased so
    that it makes a few hundred detections of varied classes and scores (no training needed)."""
    torch.manual_seed(0)
    model = YOLOv3(20, 0.25)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    with torch.no_grad():
        model.train()(val_batch["images"].float() / 255)
        for name, m in model.named_modules():
            if name.endswith("predict.pred"):
                bias = m.bias.view(3, 25)
                bias[:, 0] += 1.0  # objectness
                bias[:, 5:] += 3 * torch.randn(3, 20)  # a few classes win
    path = save_weights(model.eval(), tmp_path_factory.mktemp("ckpt") / "calibrated.pt")
    return path, model


def images(batch: dict, n: int | None = None) -> torch.Tensor:
    return (batch["images"][:n].float() / 255).contiguous()


def test_raw_outputs_match(checkpoint, val_batch, tmp_path):
    path, model = checkpoint
    onnx = tmp_path / "raw.onnx"
    assert main([str(path), "--onnx", str(onnx), "--image-size", str(SIZE)]) == 0
    x = images(val_batch, 1)
    with torch.no_grad():
        expected = model(x)
    session = onnx_session(onnx)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == list(VOC_CLASSES) and json.loads(meta["image_size"]) == SIZE
    got = run_onnx(session, x)
    assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected]
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-4)


def matched(ours: dict, theirs: dict) -> None:
    """Same count; each ONNX detection pairs one-to-one with a PyTorch one of its class at IoU >= 0.999
    and the same score to 1e-4."""
    assert len(ours["scores"]) == len(theirs["scores"])
    if not len(ours["scores"]):
        return
    iou = box_iou(ours["boxes"], theirs["boxes"])
    iou[ours["labels"][:, None] != theirs["labels"][None, :]] = -1
    best, j = iou.max(dim=1)
    assert len(set(j.tolist())) == len(j), "two detections matched the same one"
    assert float(best.min()) >= 0.999
    torch.testing.assert_close(ours["scores"], theirs["scores"][j], rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def trained(val_batch, tmp_path_factory):
    """Width 0.25 overfitted on the 8 images (60 Adam steps at 256): mAP@0.5 0.85 on them (measured
    every 10 steps: 0.006 after 40, 0.39 after 50, 0.85 after 60, 1.0 after 70; 0.7 s per step)."""
    from yolo.lit import YoloLitModule

    torch.manual_seed(0)
    lit = YoloLitModule(num_classes=20, width=0.25, ema=False, obj_prior=6.0, lambda_class=5.0)  # as measured
    optimizer = torch.optim.Adam(lit.model.parameters(), lr=3e-3)
    x, targets = images(val_batch), lit.encode_batch(val_batch)
    for _ in range(60):
        loss = lit.loss_fn(lit.model.train()(x), targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = save_weights(lit.model.eval(), tmp_path_factory.mktemp("trained") / "trained.pt")
    return path, lit.model


@pytest.mark.parametrize("batch_size", [1, 4])
def test_nms_graph_matches_postprocess_with_dynamic_batch(checkpoint, val_batch, tmp_path, batch_size):
    compare_nms(checkpoint, val_batch, tmp_path, batch_size)


@pytest.mark.slow
def test_nms_graph_on_a_trained_checkpoint_gives_the_same_map(trained, val_batch, tmp_path):
    map_torch = compare_nms(trained, val_batch, tmp_path, 4)
    assert map_torch > 0.5  # detections that find the objects, so the mAP comparison means something


def reference_nms(outputs) -> list[dict]:
    """The library's decoded candidates, clipped to the input, the best ``pre_nms_top_k`` of each
    image, then torchvision's ``batched_nms`` image by image (classes apart)."""
    boxes, scores, labels, image = candidates(outputs, CONFIG.conf_threshold, ANCHORS)
    boxes = boxes.clamp(0, SIZE)
    top = top_k_per_image(scores, image, CONFIG.pre_nms_top_k)
    boxes, scores, labels, image = boxes[top], scores[top], labels[top], image[top]
    found = []
    for i in range(outputs[0].shape[0]):
        rows = torch.nonzero(image == i).squeeze(1)
        keep = rows[batched_nms(boxes[rows], scores[rows], labels[rows], CONFIG.iou_threshold)][: CONFIG.max_detections]
        found.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return found


def compare_nms(checkpoint, val_batch, tmp_path, batch_size: int) -> float:
    path, model = checkpoint
    onnx = tmp_path / "nms.onnx"
    assert main([str(path), "--onnx", str(onnx), "--nms", "--dynamic-batch", "--image-size", str(SIZE),
                 "--conf", str(CONFIG.conf_threshold), "--iou", str(CONFIG.iou_threshold),
                 "--max-det", str(CONFIG.max_detections), "--top-k", str(CONFIG.pre_nms_top_k)]) == 0
    session = onnx_session(onnx)
    ours, theirs = [], []
    for start in range(0, N_IMAGES, batch_size):
        x = images(val_batch)[start: start + batch_size]
        with torch.no_grad():
            theirs += reference_nms(model(x))
        ours += split_detections(*run_onnx(session, x), len(x))
    assert sum(len(d["scores"]) for d in theirs) > 100  # many detections to compare
    for a, b in zip(ours, theirs):
        matched(a, b)
    truth = ground_truth(val_batch)
    map_onnx = voc_evaluate(ours, truth, 20).map
    map_torch = voc_evaluate(theirs, truth, 20).map
    assert abs(map_onnx - map_torch) <= 0.001
    return map_torch


def test_max_detections_per_image_in_the_graph(checkpoint, val_batch, tmp_path):
    path, model = checkpoint
    onnx = tmp_path / "few.onnx"
    main([str(path), "--onnx", str(onnx), "--nms", "--dynamic-batch", "--image-size", str(SIZE),
          "--max-det", "3"])
    x = images(val_batch, 4)
    image, boxes, scores, labels = run_onnx(onnx_session(onnx), x)
    counts = torch.bincount(image, minlength=4).tolist()
    with torch.no_grad():
        expected = postprocess(model(x), PostprocessConfig(max_detections=3, pre_nms_top_k=1000))
    assert counts == [len(d["scores"]) for d in expected] and max(counts) == 3


class _Decoded(DetectionGraph):
    """The graph's selection and NMS over chosen decoded boxes (decode replaced)."""

    def __init__(self, boxes, scores, labels, num_classes: int) -> None:
        model = torch.nn.Identity()
        model.num_classes = num_classes
        super().__init__(model, 64, ANCHORS, PostprocessConfig(conf_threshold=0.1, iou_threshold=0.5), top_k=10)
        self.fixed = boxes, scores, labels

    def decode(self, outputs):
        return self.fixed


def test_one_enormous_box_does_not_keep_duplicates_in_another_image():
    """Image 0 holds a box 1e8 pixels wide (a size logit near the clamp); image 3 two boxes of class 1 with IoU 0.92. The
    graph must keep what torchvision's NMS keeps for each image and class alone: one of the two."""
    boxes = torch.zeros(4, 3, 4)
    scores, labels = torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.int64)
    boxes[0, 0], scores[0, 0] = torch.tensor([0.0, 0.0, 1e8, 1e8]), 0.9
    boxes[3, 0], scores[3, 0], labels[3, 0] = torch.tensor([10.0, 10.0, 15.0, 15.0]), 0.8, 1
    boxes[3, 1], scores[3, 1], labels[3, 1] = torch.tensor([10.2, 10.0, 15.2, 15.0]), 0.7, 1
    image, kept_boxes, kept_scores, kept_labels = _Decoded(boxes, scores, labels, 2)(torch.zeros(4, 3, 64, 64))
    expected = []  # per image and class, alone: torchvision's NMS on the clipped boxes
    for i in range(4):
        for c in range(2):
            mine = (scores[i] > 0.1) & (labels[i] == c)
            b, s = boxes[i][mine].clamp(0, 64), scores[i][mine]
            expected += [(i, c, float(s[k])) for k in nms(b, s, 0.5).tolist()]
    got = sorted(zip(image.tolist(), kept_labels.tolist(), kept_scores.tolist()))
    assert got == sorted(expected) == [(0, 0, pytest.approx(0.9)), (3, 1, pytest.approx(0.8))]
    assert float(kept_boxes.max()) == 64.0  # the enormous box comes back clipped to the input


def test_bad_arguments_say_so(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    with pytest.raises(SystemExit):
        main([str(path), "--onnx", str(tmp_path / "x.onnx"), "--image-size", "100"])
    assert "--image-size: must be a multiple of 32" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="not found"):
        main([str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "x.onnx")])


# ------------------------------------------------------------------ one huge box, other images
class FixedOutputs(torch.nn.Module):
    """A stand-in network: the first B images of fixed raw outputs, whatever the input images."""

    num_classes = 20

    def __init__(self, outputs: list[torch.Tensor]) -> None:
        super().__init__()
        for i, out in enumerate(outputs):
            self.register_buffer(f"out{i}", out)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        zero = images.mean() * 0  # keeps the input in the graph
        return [getattr(self, f"out{i}")[: images.shape[0]] + zero for i in range(3)]


def huge_box_outputs() -> list[torch.Tensor]:
    """Raw outputs (4 images, 416 px, 20 classes) of the library's huge-box case
    (tests/test_postprocess.py): image 0 holds one box e^10 x its anchor (millions of px, clipped
    to the image), image 3 two class-19 boxes with IoU 0.83 (a duplicate that float32 offsets of
    (image, class) groups let survive); image 2 the same pair as classes 19 and 7 (kept apart
    by class-aware NMS, merged by class-agnostic NMS)."""
    outputs = [torch.full((4, 3, s, s, 25), -30.0) for s in (13, 26, 52)]
    outputs[0][0, 2, 6, 6, :5] = torch.tensor([5.0, 0, 0, 10.0, 10.0])
    outputs[0][0, 2, 6, 6, 5 + 5] = 5.0
    pair = ((1, [4.0, 0.02, 1.63, 0.184, -0.376]), (2, [3.0, 1.02, 1.63, -0.509, -0.2216]))
    for image, classes in ((3, (19, 19)), (2, (19, 7))):
        for (anchor, row), label in zip(pair, classes):
            outputs[2][image, anchor, 18, 8, :5] = torch.tensor(row)
            outputs[2][image, anchor, 18, 8, 5 + label] = 5.0
    return outputs


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_nms_graph_keeps_what_postprocess_keeps_next_to_a_huge_box(tmp_path, class_agnostic):
    from yolo.export import DetectionGraph, export_onnx
    from yolo.postprocess import candidates

    outputs = huge_box_outputs()
    boxes, _, _, images = candidates(outputs, 0.05)
    pair = boxes[images == 3]
    assert 0.82 < float(box_iou(pair[:1], pair[1:])) < 0.84 and float(boxes.max()) > 1e6
    config = PostprocessConfig(conf_threshold=0.05, iou_threshold=0.45, pre_nms_top_k=1000,
                               class_agnostic=class_agnostic)
    want = postprocess(outputs, config)
    assert [len(d["scores"]) for d in want] == [1, 0, 1 if class_agnostic else 2, 1]
    model = FixedOutputs(outputs)
    x = torch.zeros(4, 3, 416, 416)
    onnx = export_onnx(model, tmp_path / "huge.onnx", 416, ANCHORS, nms_in_graph=True, dynamic_batch=True,
                       config=config, top_k=1000)
    with torch.no_grad():
        eager = split_detections(*DetectionGraph(model, 416, ANCHORS, config).eval()(x), 4)
    graph = split_detections(*run_onnx(onnx_session(onnx), x), 4)
    for got in (graph, eager):
        assert [len(g["scores"]) for g in got] == [len(w["scores"]) for w in want]  # the duplicate goes
        for g, w in zip(got, want):
            assert torch.equal(g["labels"], w["labels"])
            torch.testing.assert_close(g["boxes"], w["boxes"], rtol=0, atol=1e-3)
            torch.testing.assert_close(g["scores"], w["scores"], rtol=0, atol=1e-5)
    assert float(graph[0]["boxes"].max()) == 416  # clipped to the image


def test_the_graph_takes_the_size_the_checkpoint_was_validated_at(checkpoint, tmp_path):
    """No --image-size: the checkpoint's saved ``image_size`` (here 256, not the 416 default) is the
    graph's input side and is written into its metadata; a checkpoint that does not say gets 416."""
    path, _ = checkpoint
    raw = torch.load(path, weights_only=True)
    raw["hyper_parameters"]["image_size"] = 256
    sized = tmp_path / "sized.pt"
    torch.save(raw, sized)
    for file, expected in ((sized, 256), (path, 416)):
        onnx = tmp_path / f"{file.stem}.onnx"
        assert main([str(file), "--onnx", str(onnx)]) == 0
        session = onnx_session(onnx)
        assert json.loads(session.get_modelmeta().custom_metadata_map["image_size"]) == expected
        assert session.get_inputs()[0].shape[2:] == [expected, expected]


def same_detections(ours: dict, theirs: dict, px: float = 1e-2) -> None:
    """Same count; each detection pairs one-to-one with one of the other side's of its class whose
    corners are within ``px`` pixels, at the same score to 1e-4. (Corners, not IoU: a box lying in the
    padding comes back clipped to a zero-area line at the image's edge, where IoU is 0 / 0.)"""
    assert len(ours["scores"]) == len(theirs["scores"])
    if not len(ours["scores"]):
        return
    distance = torch.cdist(ours["boxes"].double(), theirs["boxes"].double(), p=float("inf"))
    distance[ours["labels"][:, None] != theirs["labels"][None, :]] = float("inf")
    best, j = distance.min(dim=1)
    assert len(set(j.tolist())) == len(j), "two detections matched the same one"
    assert float(best.max()) <= px
    torch.testing.assert_close(ours["scores"], theirs["scores"][j], rtol=0, atol=1e-4)


def test_nms_graph_equals_the_detector_on_letterboxed_images(checkpoint, voc_mini, tmp_path):
    """Issue 21, item 13: one clipping rule. The ``--nms`` graph, given each original's (h, w), returns
    the Detector's detections (``predict(path).select()``) on 32 letterboxed voc-mini images, most of
    them non-square, four per batch of different sizes: boxes in original pixels clipped to the image,
    never to the padded square (which let a box reaching into the padding survive or suppress another)."""
    from yolo.detect import Detector

    from dataclasses import replace

    path, _ = checkpoint
    onnx = tmp_path / "nms.onnx"
    config = replace(CONFIG, max_detections=1000)  # no cut at a max: near-equal scores (ORT vs PyTorch
    #                                                to ~1e-6) would pick different last detections
    assert main([str(path), "--onnx", str(onnx), "--nms", "--dynamic-batch", "--image-size", str(SIZE),
                 "--conf", str(config.conf_threshold), "--iou", str(config.iou_threshold),
                 "--max-det", str(config.max_detections), "--top-k", str(config.pre_nms_top_k)]) == 0
    detector = Detector.from_checkpoint(path, image_size=SIZE, config=config)
    session = onnx_session(onnx)
    folder = voc_mini / "VOCdevkit" / "VOC2012"
    ids = (folder / "ImageSets" / "Main" / "val.txt").read_text().split()[:32]
    predictions = [detector.predict(folder / "JPEGImages" / f"{i}.jpg") for i in ids]
    assert sum(p.orig_size[0] != p.orig_size[1] for p in predictions) >= 28
    at_edge = 0
    for start in range(0, len(predictions), 4):
        batch = predictions[start: start + 4]
        x = torch.cat([p.input for p in batch])
        sizes = torch.tensor([p.orig_size for p in batch])
        ours = split_detections(*run_onnx(session, x, sizes), len(batch))
        for got, prediction in zip(ours, batch):
            want = prediction.select().as_dict()
            same_detections(got, want)
            h, w = prediction.orig_size
            at_edge += int(((want["boxes"][:, 2] >= w - 1e-3) | (want["boxes"][:, 3] >= h - 1e-3)
                            | (want["boxes"][:, :2] <= 1e-3).any(1)).sum())
    assert at_edge > 50  # many boxes were clipped to the image, so the rule is exercised
