"""GradCAM: on a tiny YOLOv3 trained here to find one bright square, the map points at the
detected object; targets select detections; the one-pass sweep equals the library's own path."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from yolo.cam import (
    GRADIENT_FREE,
    METHODS,
    DetectionTarget,
    detection_target,
    explain,
    layer_maps,
    make_cam,
    overlay,
    renormalise_in_boxes,
    sweep,
    to_original,
)
from yolo.config import LossConfig, PostprocessConfig
from yolo.detect import Detector
from yolo.letterbox import letterbox_params
from yolo.loss import YoloLoss
from yolo.model import YOLOv3
from yolo.targets import encode

SIZE = 128
CLASSES = ["red", "green"]
# Methods that weight activations by the target's gradients and keep their sign. EigenGradCAM is
# left out: the library's first-principal-component projection has an arbitrary sign.
GRADIENT_METHODS = ("GradCAM", "GradCAM++", "HiResCAM", "XGradCAM", "LayerCAM", "GradCAMElementWise")
ELEMENTWISE_METHODS = ("HiResCAM", "LayerCAM", "GradCAMElementWise")


def square_scene(rng: np.random.Generator, height: int, width: int, squares) -> np.ndarray:
    """Dim noise (0..76) with solid squares (x, y, side, class): class 0 red, class 1 green."""
    image = (rng.random((height, width, 3)) * 76).astype(np.uint8)
    for x, y, side, label in squares:
        image[y:y + side, x:x + side] = 25
        image[y:y + side, x:x + side, label] = 242
    return image


def training_batch(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list]:
    """n square (SIZE) scenes with one square each -> images (n, 3, SIZE, SIZE), encode() targets."""
    images, boxes, labels = [], [], []
    for _ in range(n):
        side = int(rng.integers(SIZE // 5, SIZE // 2))
        x, y = (int(v) for v in rng.integers(0, SIZE - side, 2))
        label = int(rng.integers(0, 2))
        images.append(square_scene(rng, SIZE, SIZE, [(x, y, side, label)]))
        boxes.append([(x + side / 2) / SIZE, (y + side / 2) / SIZE, side / SIZE, side / SIZE])
        labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    targets = encode(torch.tensor(boxes), torch.tensor(labels), torch.arange(n), n, SIZE)
    return x, targets


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny model gains nothing from a second thread, and OpenMP threads that spin while the
    machine is busy (other tests, a training run) cost ten times the time: use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector(one_thread) -> Detector:
    """A width-0.125 YOLOv3 trained for 200 steps of 16 scenes (about 20 s of one CPU core)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    # the loss this fixture was tuned with (class weight 1, before the recipe's default became 5)
    model, loss = YOLOv3(len(CLASSES), 0.125), YoloLoss(LossConfig(lambda_class=1.0))
    steps = 200
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=steps, pct_start=0.2)
    model.train()
    for _ in range(steps):
        images, targets = training_batch(16, rng)
        total = loss(model(images), targets)["loss"]
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        schedule.step()
    return Detector(model.eval(), CLASSES, image_size=SIZE, config=PostprocessConfig(0.3, 0.45))


# Held-out scenes of several shapes (letterboxed differently), one square each.
SCENES = [
    (100, 150, [(30, 20, 40, 1)]),
    (150, 100, [(40, 80, 45, 0)]),
    (128, 128, [(70, 10, 30, 1)]),
    (200, 260, [(20, 90, 80, 0)]),
]


def inside(shape: tuple[int, int], box) -> np.ndarray:
    """Boolean mask of a pixel xyxy box."""
    mask = np.zeros(shape, bool)
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    mask[y1:y2, x1:x2] = True
    return mask


def detect(detector: Detector, scene, seed: int = 0):
    """-> (prediction, its detections at the detector's thresholds)."""
    height, width, squares = scene
    prediction = detector.predict(square_scene(np.random.default_rng(seed), height, width, squares))
    found = prediction.select()
    x, y, side, label = squares[0]
    assert len(found) >= 1 and int(found.labels[0]) == label, "the tiny model failed to train"
    assert abs(float(found.boxes[0, 0]) - x) < side / 3 and abs(float(found.boxes[0, 1]) - y) < side / 3
    return prediction, found


def cam_of(detector: Detector, prediction, found, which, layer=None, method="GradCAM") -> np.ndarray:
    """``explain`` of the rows ``which`` of ``found`` (an index, a class name, a list, None/"all")."""
    return explain(detector.model, prediction, detection_target(found, which), layer, method)


CASES = [(m, "out.branch") for m in GRADIENT_METHODS] + [(m, "conv2") for m in ELEMENTWISE_METHODS]


@pytest.mark.parametrize("method, layer", CASES)
def test_cam_is_higher_inside_the_detected_box(detector, method, layer):
    """At the last 3x3 conv of the detection's head (the default layer) for every gradient method;
    one layer earlier for the methods that weight each position by its own gradient."""
    for scene in SCENES:
        prediction, found = detect(detector, scene)
        stride = (32, 16, 8)[prediction.slot_position(int(found.slots[0]))[0]]
        cam = cam_of(detector, prediction, found, 0, f"head{stride}.{layer}", method)
        assert cam.shape == scene[:2] and cam.dtype == np.float32
        assert 0.0 <= cam.min() and cam.max() <= 1.0 + 1e-6
        box = inside(cam.shape, found.boxes[0])
        assert cam[box].mean() > cam[~box].mean(), (method, layer, scene)


def test_targeting_another_detection_moves_the_map(detector):
    scene = (120, 200, [(20, 30, 40, 0), (130, 60, 40, 1)])
    prediction = detector.predict(square_scene(np.random.default_rng(5), *scene))
    found = prediction.select()
    assert sorted(found.names[:2]) == ["green", "red"]
    first, second = (inside(scene[:2], found.boxes[i]) for i in (0, 1))
    layer = f"head{(32, 16, 8)[prediction.slot_position(int(found.slots[0]))[0]]}.conv2"
    for method in GRADIENT_METHODS:
        one, two = (cam_of(detector, prediction, found, i, layer, method) for i in (0, 1))
        assert np.abs(one - two).mean() > 0.03, method
    # Element-wise methods keep the evidence where it is: each map sits on its own square.
    for method in ELEMENTWISE_METHODS:
        one, two = (cam_of(detector, prediction, found, i, layer, method) for i in (0, 1))
        assert one[first].mean() > one[second].mean() and two[second].mean() > two[first].mean(), method
    name = found.names[1]
    same_class = [i for i, n in enumerate(found.names) if n == name]
    assert np.allclose(cam_of(detector, prediction, found, name, layer),
                       cam_of(detector, prediction, found, same_class, layer))
    everything = list(range(len(found)))
    assert np.allclose(cam_of(detector, prediction, found, "all", layer),
                       cam_of(detector, prediction, found, everything, layer))
    assert np.allclose(cam_of(detector, prediction, found, None, layer),
                       cam_of(detector, prediction, found, everything, layer))
    assert np.allclose(explain(detector.model, prediction, found, layer),  # a Detections: all rows
                       cam_of(detector, prediction, found, everything, layer))


def test_gradient_free_methods_ignore_the_target(detector):
    prediction, found = detect(detector, SCENES[0])
    targets = (detection_target(found, 0), None, found)
    maps = [explain(detector.model, prediction, t, "head16.conv2", "EigenCAM") for t in targets]
    assert all(np.array_equal(maps[0], m) for m in maps[1:]) and "EigenCAM" in GRADIENT_FREE


@pytest.mark.parametrize("method", list(METHODS))
def test_one_pass_maps_equal_the_library_call_path(detector, method):
    """Same numbers as pytorch-grad-cam's own ``cam(input, targets)`` on a square input."""
    prediction, found = detect(detector, SCENES[2])
    target = DetectionTarget(found.slots[:1], found.labels[:1])
    for layer in ("head16.conv2", "stage4"):
        with make_cam(method, detector.model, [layer]) as cam:
            library = cam(prediction.input, targets=[target])[0]
        ours = explain(detector.model, prediction, target, layer, method)
        assert np.allclose(library, ours, atol=1e-5), (method, layer)


def test_sweep_runs_one_forward_for_every_named_layer(detector):
    prediction, found = detect(detector, SCENES[0])
    layers = list(detector.model.named_layers())
    calls = [0]
    handle = detector.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        maps = sweep(detector.model, prediction, detection_target(found, 0), layers, "GradCAM++")
    finally:
        handle.remove()
    assert calls[0] == 1 and list(maps) == layers
    assert all(m.shape == SCENES[0][:2] and np.isfinite(m).all() for m in maps.values())
    for layer in ("stage3", "head32.out.branch", "head8.conv1"):
        assert np.allclose(maps[layer], cam_of(detector, prediction, found, 0, layer, "GradCAM++"))


def test_threads_sharing_one_model_get_their_own_maps(detector):
    """No lock: sessions of a web app explain different images through the same model at once."""
    cases = [detect(detector, scene) for scene in SCENES[:2]]
    alone = [cam_of(detector, p, f, 0, "head16.conv2") for p, f in cases]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(3):
            together = list(pool.map(lambda case: cam_of(detector, *case, 0, "head16.conv2"), cases * 2))
            for got, want in zip(together, alone * 2):
                assert got.shape == want.shape and np.allclose(got, want, atol=1e-5)


def test_layer_maps_need_a_target_and_a_known_method(detector):
    prediction, found = detect(detector, SCENES[0])
    with pytest.raises(ValueError, match="needs a target"):
        layer_maps(detector.model, prediction.input, ["stage5"], "GradCAM", None)
    with pytest.raises(ValueError, match="needs a target"):
        explain(detector.model, prediction, None, "stage5")
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam_of(detector, prediction, found, 0, method="MagicCAM")
    with pytest.raises(KeyError, match="unknown layer"):
        cam_of(detector, prediction, found, 0, layer="stage9")
    with pytest.raises(ValueError, match="does not exist"):
        cam_of(detector, prediction, found, 99)
    with pytest.raises(ValueError, match="no detection to explain"):
        cam_of(detector, prediction, prediction.select(conf=0.999), None, "stage5")
    with pytest.raises(ValueError, match="no detection to explain"):
        explain(detector.model, prediction, prediction.select(conf=0.999), "stage5")


def test_map_of_one_grid_cell_lands_on_the_original_pixel():
    """A 4x4 grid over a 128 input, hot cell (row 1, column 2); image 100 high, 200 wide."""
    lb = letterbox_params((100, 200), SIZE)  # scale 0.64, padded 32 px above and below
    cam = np.zeros((4, 4), np.float32)
    cam[1, 2] = 1.0
    out = to_original(cam, SIZE, lb.scale, (lb.pad_x, lb.pad_y), (100, 200))  # (height, width)
    assert out.shape == (100, 200) and out.max() == pytest.approx(1.0)
    row, col = np.unravel_index(np.argmax(out), out.shape)
    centre_x = (2.5 * 32 - lb.pad_x) / lb.scale  # 125
    centre_y = (1.5 * 32 - lb.pad_y) / lb.scale  # 25
    assert abs(col - centre_x) <= 1 and abs(row - centre_y) <= 1
    assert not to_original(np.zeros((4, 4), np.float32), SIZE, lb.scale, (lb.pad_x, lb.pad_y), (100, 200)).any()


def test_overlay_opacity_and_renormalised_boxes():
    image = np.full((40, 60, 3), 200, np.uint8)
    cam = np.tile(np.linspace(0, 1, 60, dtype=np.float32), (40, 1))
    assert np.array_equal(overlay(image, cam, opacity=0.0), image)
    half, full = overlay(image, cam, opacity=0.5), overlay(image, cam, opacity=1.0)
    assert np.abs(half.astype(int) - (image.astype(int) + full) / 2).max() <= 1
    boxes = [[0, 0, 10, 20], [30, 10, 50, 30]]
    local = renormalise_in_boxes(cam, boxes)
    assert local[:, 10:30].max() == 0 and local[25:, 55:].max() == 0
    for x1, y1, x2, y2 in boxes:
        region = local[y1:y2, x1:x2]
        assert region.min() == pytest.approx(0) and region.max() == pytest.approx(1)
    assert overlay(image, cam, 0.5, boxes=boxes, renormalise=True).shape == (40, 60, 3)
    with pytest.raises(ValueError, match="opacity"):
        overlay(image, cam, opacity=1.5)
    with pytest.raises(ValueError, match="needs the boxes"):
        overlay(image, cam, renormalise=True)
