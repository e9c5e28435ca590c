"""Detector: safe loading, every image form, letterbox mapping back to original pixels, an
immutable Prediction whose threshold changes run no model (counted forward passes), per-class
thresholds, and cached split predictions (yolo.predictions)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from yolo.config import PostprocessConfig
from yolo.detect import Detector
from yolo.imageio import load_image
from yolo.letterbox import boxes_from_letterbox, boxes_to_letterbox, letterbox
from yolo.model import YOLOv3
from yolo.postprocess import postprocess
from yolo.predictions import PredictionSet, predict_folder, predict_samples
from yolo.selection import select, unravel_slot
from yolo.targets import encode, targets_to_logits
from yolo.weights import CheckpointError, read_checkpoint, save_weights

SIZE = 128  # model input side in these tests


class BrightBoxModel(nn.Module):
    """A stand-in detector with a known answer: it finds the bright rectangle of each input
    (mean channel value > 0.6; letterbox gray and black are below) and returns the raw outputs
    a perfect model would give for that box, class 1, through ``encode``/``targets_to_logits``."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        b, _, s, _ = images.shape
        boxes = []
        for mask in images.mean(dim=1) > 0.6:  # (S, S) per image
            rows = torch.nonzero(mask.any(dim=1)).squeeze(1)
            cols = torch.nonzero(mask.any(dim=0)).squeeze(1)
            x1, x2, y1, y2 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
            boxes.append([(x1 + x2) / 2 / s, (y1 + y2) / 2 / s, (x2 - x1) / s, (y2 - y1) / s])
        targets = encode(torch.tensor(boxes), torch.ones(b), torch.arange(b), b, s)
        return targets_to_logits(targets, self.num_classes)


def picture(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Black RGB image with a white rectangle at pixel xyxy ``box``."""
    image = np.zeros((height, width, 3), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return image


def rows(scores: torch.Tensor, boxes: torch.Tensor) -> np.ndarray:
    """(score, x1, y1, x2, y2) rows in a canonical order, so equal sets compare equal."""
    table = torch.cat([scores[:, None], boxes], dim=1).double().numpy()
    return table[np.lexsort(np.round(table, 3).T[::-1])]


def counting(model: nn.Module) -> list[int]:
    """Count forward passes of ``model`` with a hook; returns the (mutable) counter."""
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


# ------------------------------------------------------------------------------ safe loading
class RunsCode:
    """Unpickling this opens (creates) ``path``: what a malicious checkpoint would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker, proof = tmp_path / "pwned", tmp_path / "proof"
    torch.save({"hyper_parameters": {"num_classes": 20}, "state_dict": {"model.x": RunsCode(str(proof))}},
               tmp_path / "proof.ckpt")
    handle = torch.load(tmp_path / "proof.ckpt", weights_only=False)  # the payload is real:
    handle["state_dict"]["model.x"].close()  # an unsafe load runs it (here: opens a file)
    assert proof.exists()

    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"num_classes": 20}, "state_dict": {"model.x": RunsCode(str(marker))}}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        Detector.from_checkpoint(path)
    assert not marker.exists()


def test_not_a_checkpoint_says_so(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        Detector.from_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="expected a 'state_dict'"):
        Detector.from_checkpoint(other)
    with pytest.raises(CheckpointError, match="not found"):
        Detector.from_checkpoint(tmp_path / "missing.ckpt")


def test_mismatched_checkpoint_gives_clear_message(tmp_path):
    path = save_weights(YOLOv3(3, 0.125), tmp_path / "three.pt", ["a", "b", "c"])
    with pytest.raises(CheckpointError, match=r"3 classes at width 0.125.*20 classes at width 0.125"):
        Detector.from_checkpoint(path, num_classes=20)
    with pytest.raises(CheckpointError, match=r"3 classes at width 0.125.*3 classes at width 0.25"):
        Detector.from_checkpoint(path, width=0.25)
    lying = tmp_path / "lying.pt"  # hyper-parameters disagree with the weights
    torch.save({"model": YOLOv3(3, 0.125).state_dict(),
                "hyper_parameters": {"num_classes": 3, "width": 0.25}}, lying)
    with pytest.raises(CheckpointError, match="do not fit the model"):
        Detector.from_checkpoint(lying)


def test_lightning_shaped_checkpoint_round_trips(tmp_path):
    """The layout train.py writes: network under "model.", EMA under "ema.module."."""
    net, ema = YOLOv3(2, 0.125).eval(), YOLOv3(2, 0.125).eval()
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state.update({f"ema.module.{k}": v for k, v in ema.state_dict().items()})
    hparams = {"num_classes": 2, "width": 0.125, "class_names": ["cat", "dog"], "anchors": None}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams, "epoch": 4}, path)

    image = (np.random.default_rng(0).random((90, 140, 3)) * 255).astype(np.uint8)
    for prefer_ema, reference in ((True, ema), (False, net)):
        loaded = Detector.from_checkpoint(path, image_size=SIZE, prefer_ema=prefer_ema)
        assert loaded.class_names == ["cat", "dog"] and loaded.checkpoint == str(path)
        for key, value in reference.state_dict().items():
            assert torch.equal(loaded.model.state_dict()[key], value), key
        got = loaded.predict(image).select()
        want = Detector(reference, ["cat", "dog"], image_size=SIZE).predict(image).select()
        assert torch.allclose(got.boxes, want.boxes) and torch.equal(got.labels, want.labels)


# ------------------------------------------------------------------------------ image forms
def test_load_image_accepts_every_common_form(tmp_path):
    rgb = (np.random.default_rng(1).random((30, 40, 3)) * 255).astype(np.uint8)
    png = tmp_path / "x.png"
    Image.fromarray(rgb).save(png)
    forms = {
        "rgb": load_image(rgb),
        "bgr": load_image(rgb[..., ::-1].copy(), bgr=True),
        "float01": load_image(rgb.astype(np.float32) / 255),
        "float255": load_image(rgb.astype(np.float64)),
        "uint16": load_image(rgb.astype(np.uint16) * 257),
        "chw tensor": load_image(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255),
        "path": load_image(png),
        "str path": load_image(str(png)),
        "bytes": load_image(png.read_bytes()),
        "file": load_image(io.BytesIO(png.read_bytes())),
        "pil": load_image(Image.fromarray(rgb)),
        "rgba opaque": load_image(np.dstack([rgb, np.full((30, 40), 255, np.uint8)])),
    }
    for name, got in forms.items():
        assert got.shape == (30, 40, 3) and got.dtype == np.uint8, name
        assert np.abs(got.astype(int) - rgb).max() <= 1, name

    gray = rgb[..., 0]
    for form in (gray, gray[..., None], Image.fromarray(gray), gray.astype(np.float32) / 255):
        assert np.array_equal(load_image(form), np.repeat(gray[..., None], 3, 2))
    clear = np.dstack([rgb, np.zeros((30, 40), np.uint8)])  # fully transparent -> letterbox gray
    assert (load_image(clear) == 114).all() and (load_image(Image.fromarray(clear)) == 114).all()
    with pytest.raises(ValueError, match="shape"):
        load_image(np.zeros((5, 6, 7)))
    with pytest.raises(TypeError, match="unsupported image type"):
        load_image(42)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.jpg")


def test_exif_rotated_file_is_read_upright(tmp_path):
    upright = picture(60, 100, (10, 20, 40, 50))  # what the viewer should see: 100 wide, 60 high
    stored = np.rot90(upright, k=1).copy()  # the camera stored it turned; orientation 6 undoes it
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    assert np.abs(load_image(path).astype(int) - upright).mean() < 3
    detector = Detector(BrightBoxModel(), ["a", "b"], image_size=SIZE)
    found = detector.predict(path).select()
    assert found.orig_size == (60, 100)  # (height, width)
    assert torch.allclose(found.boxes[0], torch.tensor([10.0, 20, 40, 50]), atol=1.5)


# ------------------------------------------------------------------- original coordinates
@pytest.mark.parametrize(
    "height, width, box",
    [
        (480, 640, (100, 50, 300, 400)),  # landscape
        (640, 480, (30, 200, 410, 600)),  # portrait
        (500, 500, (0, 0, 250, 120)),  # square, box on the corner
        (12, 20, (5, 3, 15, 9)),  # tiny: enlarged 6.4x
        (3000, 4000, (1000, 700, 3100, 2900)),  # huge: shrunk 31x
        (2000, 150, (20, 300, 140, 1500)),  # extreme aspect
    ],
)
def test_known_box_maps_back_to_original_pixels(height, width, box):
    detector = Detector(BrightBoxModel(), ["a", "b"], image_size=SIZE)
    found = detector.predict(picture(height, width, box)).select()
    assert len(found) == 1 and found.names == ["b"] and found.orig_size == (height, width)
    tolerance = 1.0 / (SIZE / max(height, width)) + 1.0  # one input pixel, in original pixels
    assert torch.allclose(found.boxes[0], torch.tensor(box, dtype=torch.float32), atol=tolerance)


def test_threshold_changes_do_not_run_the_model():
    torch.manual_seed(0)
    model = YOLOv3(3, 0.125).eval()
    calls = counting(model)
    detector = Detector(model, ["a", "b", "c"], image_size=SIZE,
                        config=PostprocessConfig(pre_nms_top_k=None))  # every candidate enters NMS
    image = (np.random.default_rng(2).random((100, 160, 3)) * 255).astype(np.uint8)
    prediction = detector.predict(image)
    first = prediction.select()
    assert calls[0] == 1 and len(first) > 0
    raw = prediction.outputs
    assert [tuple(o.shape) for o in raw] == [(1, 3, s, s, 8) for s in (4, 8, 16)]

    for conf, iou in ((0.02, 0.3), (0.06, 0.7), (0.04, 0.45)):
        got = prediction.select(conf=conf, iou=iou)
        (want,) = postprocess(raw, PostprocessConfig(conf, iou, 300))  # a fresh decode + NMS
        want_boxes = boxes_from_letterbox(want["boxes"], prediction.letterbox)
        assert np.allclose(rows(got.scores, got.boxes), rows(want["scores"], want_boxes), atol=1e-3)
    only = prediction.select(classes=["c", 0])
    assert set(only.labels.tolist()) <= {0, 2} and len(only) > 0
    assert len(prediction.select(conf=0.999)) == 0
    assert len(prediction.select(conf=0.02, max_detections=5)) == 5
    assert calls[0] == 1  # not one more forward pass
    # selections never change the prediction: the default thresholds give the first answer again
    again = prediction.select()
    assert torch.equal(again.boxes, first.boxes) and torch.equal(again.scores, first.scores)


def test_prediction_is_immutable_and_the_detector_keeps_nothing():
    detector = Detector(BrightBoxModel(), ["a", "b"], image_size=SIZE)
    one = detector.predict(picture(100, 100, (10, 10, 60, 60)))
    two = detector.predict(picture(80, 120, (50, 20, 110, 70)))
    assert torch.allclose(one.select().boxes[0], torch.tensor([10.0, 10, 60, 60]), atol=1.5)
    assert torch.allclose(two.select().boxes[0], torch.tensor([50.0, 20, 110, 70]), atol=1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.candidates = two.candidates
    mine = picture(100, 100, (10, 10, 60, 60))  # RGB uint8: load_image passes it through as is
    three = detector.predict(mine)
    mine[:] = 0  # the caller reuses its array
    assert three.image.any(), "the Prediction keeps its own image"
    with pytest.raises(ValueError, match="read-only"):
        three.image[0, 0, 0] = 1
    assert not hasattr(detector, "last") and not hasattr(detector, "update")


def test_per_class_thresholds_select_each_class_at_its_own_confidence(tmp_path):
    torch.manual_seed(0)
    model = YOLOv3(3, 0.125).eval()
    image = (np.random.default_rng(2).random((100, 160, 3)) * 255).astype(np.uint8)
    plain = Detector(model, ["a", "b", "c"], image_size=SIZE).predict(image)
    every = plain.select(conf=0.0, max_detections=10_000)
    scores = every.scores
    per_class = [float(scores[every.labels == c].median()) if (every.labels == c).any() else 1.0 for c in range(3)]
    got = plain.select(conf=per_class, max_detections=10_000)
    assert len(got) > 0
    for c in range(3):
        mine = got.labels == c
        assert (got.scores[mine] > per_class[c]).all()
    want = sum(len(plain.select(conf=t, classes=[c], max_detections=10_000)) for c, t in enumerate(per_class))
    assert len(got) == want  # class-aware NMS: classes are independent
    thresholded = Detector(model, ["a", "b", "c"], image_size=SIZE, class_conf=per_class).predict(image)
    assert torch.equal(thresholded.select(max_detections=10_000).boxes, got.boxes)
    with pytest.raises(ValueError, match="2 thresholds for 3 classes"):
        plain.select(conf=[0.1, 0.2])


def test_timings_and_slots():
    detector = Detector(BrightBoxModel(), ["a", "b"], image_size=SIZE)
    prediction = detector.predict(picture(100, 100, (10, 10, 60, 60)), bgr=True)
    found = prediction.select()
    t = prediction.timings
    assert t.model_ms > 0 and t.preprocess_ms > 0 and t.decode_ms > 0
    scale, anchor, row, col = prediction.slot_position(int(found.slots[0]))
    centre = 35 * SIZE / 100  # the box centre in input pixels (no padding for a square image)
    assert 0 <= anchor < 3 and row == col == int(centre // (32, 16, 8)[scale])
    assert found.to_records()[0]["class"] == "b"
    # slot order: scale 0 (4x4), then 1 (8x8), then 2 (16x16), anchor-major inside a scale
    assert unravel_slot(0, SIZE) == (0, 0, 0, 0) and unravel_slot(3 * 16, SIZE) == (1, 0, 0, 0)
    assert unravel_slot(3 * 16 + 64 + 8 + 3, SIZE) == (1, 1, 1, 3)
    with pytest.raises(IndexError, match="outside"):
        unravel_slot(3 * (16 + 64 + 256), SIZE)


# ------------------------------------------------------------------- split predictions
def test_split_predictions_are_cached_and_reapplied_without_the_model(tmp_path):
    shapes = [(90, 120, (10, 10, 50, 70)), (200, 100, (20, 30, 90, 150)), (64, 64, (0, 0, 64, 20)),
              (50, 300, (100, 5, 250, 45)), (120, 120, (60, 60, 100, 110))]
    samples = [{"image": picture(h, w, b), "id": f"img{i}", "boxes": np.array([b], np.float32),
                "labels": np.array([1]), "difficult": np.array([False])} for i, (h, w, b) in enumerate(shapes)]
    model = BrightBoxModel()
    detector = Detector(model, ["a", "b"], image_size=SIZE)
    written = predict_samples(detector, samples, tmp_path / "split.pt", batch_size=2, progress=False)
    assert model.calls == 3  # 5 images in batches of 2

    raw = torch.load(tmp_path / "split.pt", weights_only=True)  # plain tensors and values only
    assert raw["image_ids"] == [f"img{i}" for i in range(5)]
    loaded = PredictionSet.load(tmp_path / "split.pt")
    assert loaded.sizes.tolist() == [[h, w] for h, w, _ in shapes] and loaded.conf_floor == 0.001
    for conf, iou in ((0.5, 0.45), (0.01, 0.9), (0.3, 0.1)):
        per_image = loaded.detections(conf=conf, iou=iou)
        for (h, w, box), found in zip(shapes, per_image):
            assert len(found["boxes"]) == 1 and found["labels"].tolist() == [1]
            tolerance = max(h, w) / SIZE + 1.0
            assert torch.allclose(found["boxes"][0], torch.tensor(box, dtype=torch.float32), atol=tolerance)
    truth = loaded.ground_truth()
    assert [t["boxes"].tolist() for t in truth] == [[list(map(float, b))] for _, _, b in shapes]
    assert model.calls == 3  # sweeps never ran the model again
    assert len(written) == len(loaded) == 5


def tiny_prediction_set() -> PredictionSet:
    """Two images, three candidates (two in the first image), one ground-truth box each."""
    return PredictionSet(
        image_ids=["a", "b"], sizes=torch.tensor([[100, 200], [50, 60]]), offsets=torch.tensor([0, 2, 3]),
        boxes=torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 30, 30]]), scores=torch.tensor([0.9, 0.2, 0.5]),
        labels=torch.tensor([0, 1, 1]), class_names=["cat", "dog"], conf_floor=0.001,
        gt_boxes=torch.tensor([[0.0, 0, 10, 10], [1, 1, 30, 30]]), gt_labels=torch.tensor([0, 1]),
        gt_difficult=torch.tensor([False, False]), gt_offsets=torch.tensor([0, 1, 2]))


def _malformed(raw: dict, change: str) -> dict | object:
    raw = dict(raw)
    if change == "missing key":
        del raw["scores"]
    elif change == "unknown key":
        raw["extra"] = 1
    elif change == "boxes a list":
        raw["boxes"] = raw["boxes"].tolist()
    elif change == "boxes of 3 columns":
        raw["boxes"] = raw["boxes"][:, :3]
    elif change == "float labels":
        raw["labels"] = raw["labels"].float()
    elif change == "label outside the classes":
        raw["labels"] = torch.tensor([0, 1, 7])
    elif change == "offsets past the rows":
        raw["offsets"] = torch.tensor([0, 2, 5])
    elif change == "image ids not strings":
        raw["image_ids"] = [1, 2]
    elif change == "class names a string":
        raw["class_names"] = "cat,dog"
    elif change == "conf_floor a tensor":
        raw["conf_floor"] = torch.tensor(0.001)
    elif change == "half the ground truth":
        del raw["gt_offsets"]
    elif change == "gt rows differ":
        raw["gt_labels"] = torch.tensor([0])
    elif change == "not a dict":
        return [raw]
    return raw


@pytest.mark.parametrize("change", ["missing key", "unknown key", "boxes a list", "boxes of 3 columns", "float labels",
                                    "label outside the classes", "offsets past the rows", "image ids not strings",
                                    "class names a string", "conf_floor a tensor", "half the ground truth",
                                    "gt rows differ", "not a dict"])
def test_a_malformed_predictions_file_is_one_value_error_naming_the_file(tmp_path, change):
    good = tiny_prediction_set().save(tmp_path / "good.pt")
    assert PredictionSet.load(good).detections(conf=0.1)[0]["scores"].tolist() == pytest.approx([0.9, 0.2])
    path = tmp_path / "bad.pt"
    torch.save(_malformed(torch.load(good, weights_only=True), change), path)
    with pytest.raises(ValueError, match="bad.pt"):
        PredictionSet.load(path)


@pytest.mark.parametrize("content", [b"", b"image_id,score\n1,0.5\n", b"\x89PNG\r\n\x1a\n0000"])
def test_a_file_that_is_not_a_torch_file_is_a_value_error(tmp_path, content):
    path = tmp_path / "other.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="other.pt"):
        PredictionSet.load(path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_predictions_file_with_code_is_refused_without_running_it(tmp_path):
    marker, path = tmp_path / "ran.txt", tmp_path / "evil.pt"
    torch.save({"version": 2, **tiny_prediction_set().__dict__, "meta": {"x": _RunsCode(marker)}}, path)
    with pytest.raises(ValueError, match="evil.pt"):
        PredictionSet.load(path)
    assert not marker.exists()  # loaded with weights_only=True: the code never ran
    torch.load(path, weights_only=False)  # the payload is real: a plain load runs it
    assert marker.read_text() == "ran"


def test_split_predictions_match_single_image_predictions():
    model = YOLOv3(3, 0.125).eval()
    detector = Detector(model, ["a", "b", "c"], image_size=SIZE)
    rng = np.random.default_rng(3)
    # square noise: no uniform padding, whose identical scores would make tie order matter
    images = [(rng.random((s, s, 3)) * 255).astype(np.uint8) for s in (128, 200, 64)]
    cached = predict_samples(detector, images, batch_size=2, max_candidates=None, progress=False)
    assert cached.image_ids == ["0", "1", "2"]
    for conf, iou in ((0.05, 0.45), (0.2, 0.3)):
        batch = cached.detections(conf=conf, iou=iou, max_detections=10_000, pre_nms_top_k=None)
        detector.config = PostprocessConfig(conf, iou, 10_000, pre_nms_top_k=None)
        for image, got in zip(images, batch):
            want = detector.predict(image).select()
            assert np.allclose(rows(got["scores"], got["boxes"]), rows(want.scores, want.boxes), atol=1e-3)


def test_predict_folder_skips_unreadable_files(tmp_path):
    for i, box in enumerate(((5, 5, 30, 30), (10, 20, 60, 40))):
        Image.fromarray(picture(64, 80, box)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    detector = Detector(BrightBoxModel(), ["a", "b"], image_size=SIZE)
    with pytest.warns(UserWarning, match="1 unreadable"):
        cached = predict_folder(detector, tmp_path, progress=False)
    assert cached.image_ids == ["0.png", "1.png"] and list(cached.meta["skipped"]) == ["broken.jpg"]
    assert [len(d["boxes"]) for d in cached.detections(conf=0.5)] == [1, 1]


def test_letterboxed_evaluation_samples_give_the_same_predictions():
    """An EvalDataset-style sample (image already letterboxed, "meta" holding the parameters)
    skips the letterbox and maps its boxes back: same predictions, truth and size as the original."""
    original = {"image": picture(100, 150, (20, 30, 90, 80)), "id": "x", "boxes": np.array([[20, 30, 90, 80.0]]),
                "labels": np.array([1]), "difficult": np.array([False])}
    boxed, lb = letterbox(original["image"], SIZE)
    evaluation = {**original, "image": boxed, "boxes": boxes_to_letterbox(original["boxes"], lb), "meta": lb.as_dict()}
    detector = Detector(BrightBoxModel(), ["a", "b"], image_size=SIZE)
    one, two = (predict_samples(detector, [s], progress=False) for s in (original, evaluation))
    assert one.sizes.tolist() == two.sizes.tolist() == [[100, 150]]
    assert torch.allclose(one.detections(conf=0.5)[0]["boxes"], two.detections(conf=0.5)[0]["boxes"])
    assert torch.allclose(one.ground_truth()[0]["boxes"], two.ground_truth()[0]["boxes"], atol=1e-4)


def test_voc_mini_images_round_trip(voc_mini, tmp_path):
    paths = sorted((voc_mini / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))[:3]
    detector = Detector(YOLOv3(20, 0.125).eval(), image_size=SIZE)
    cached = predict_samples(detector, paths, tmp_path / "voc.pt", batch_size=2, progress=False)
    loaded = PredictionSet.load(tmp_path / "voc.pt")
    assert loaded.image_ids == [p.name for p in paths] and loaded.class_names[0] == "aeroplane"
    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append([image.height, image.width])
    assert loaded.sizes.tolist() == sizes
    for got, want in zip(loaded.detections(conf=0.01), cached.detections(conf=0.01)):
        assert torch.equal(got["boxes"], want["boxes"])
        assert (got["boxes"][:, 2:] >= got["boxes"][:, :2]).all()


def test_select_is_vectorised_over_images():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 0, 1, 0])
    images = torch.tensor([0, 0, 0, 2])
    kept = select(boxes, scores, labels, images, 3, PostprocessConfig(0.1, 0.5, 10))
    assert [k.tolist() for k in kept] == [[0, 2], [], [3]]
    kept = select(boxes, scores, labels, images, 3, PostprocessConfig(0.1, 0.5, 10, class_agnostic=True))
    assert [k.tolist() for k in kept] == [[0], [], [3]]
    kept = select(boxes, scores, labels, images, 3, PostprocessConfig(0.1, 0.5, 10), classes=[1])
    assert [k.tolist() for k in kept] == [[2], [], []]
    # pre-NMS top-k is per image: image 0 keeps its best 1 candidate, image 2 its only one
    kept = select(boxes, scores, labels, images, 3, PostprocessConfig(0.1, 0.5, 10, pre_nms_top_k=1))
    assert [k.tolist() for k in kept] == [[0], [], [3]]
    one = torch.zeros(4, dtype=torch.int64)  # a single image takes the plain top-k path
    kept = select(boxes, scores, labels, one, 1, PostprocessConfig(0.1, 0.5, 10, pre_nms_top_k=2))
    assert [k.tolist() for k in kept] == [[0]]  # 0 and 1 entered NMS; 1 overlaps 0
