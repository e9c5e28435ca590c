"""GradCAM for YOLOv3 over pytorch-grad-cam: detection targets, any named layer, one-pass sweeps.

    prediction = detector.predict("dog.jpg")
    found = prediction.select(conf=0.3)
    heat = explain(detector.model, prediction, detection_target(found, 0))   # (H, W) in [0, 1]
    maps = sweep(detector.model, prediction, found, SWEEP_LAYERS, "GradCAM++")  # all detections
    picture = overlay(prediction.image, heat, opacity=0.5)

Everything takes (model, prediction, target): the prediction (``yolo.detect.Prediction``) is
immutable and the hooks only see their own thread's forward pass, so sessions of a web app may
share one model and explain at the same time.

How it uses the library. pytorch-grad-cam wants ``model(x) -> Tensor`` and target callables
``target(output_of_one_image) -> scalar``; ``FlatOutputs`` makes YOLOv3 look like that (the three
scales concatenated, slot order of ``yolo.targets.decode_outputs``) and ``DetectionTarget``
selects slots. ``make_cam`` returns the library's own CAM object for anyone who wants its call
path. ``layer_maps`` (behind ``explain`` and ``sweep``) instead hooks every chosen layer at once,
runs one forward pass, and asks autograd for the gradients of those activations only (no weight
gradients, no backward below the earliest chosen layer); each method's own ``get_cam_image``
then turns activations and gradients into the map, so the maths is the library's (the Eigen
methods use ``first_component``: the library's projection with a reduced SVD, same numbers).

Maps come back in ORIGINAL image pixels: one affine resample from the layer's grid through the
letterbox to the photo, then min-max scaled to [0, 1] over the photo (padding excluded).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import cv2
import numpy as np
import torch
from pytorch_grad_cam import (
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    XGradCAM,
)
from pytorch_grad_cam.base_cam import BaseCAM
from threadpoolctl import threadpool_limits  # installed with scikit-learn, a grad-cam dependency
from torch import Tensor, nn

from yolo.config import STRIDES
from yolo.viz import overlay_heatmap

if TYPE_CHECKING:
    from yolo.detect import Prediction
    from yolo.selection import Detections

METHODS: dict[str, type[BaseCAM]] = {
    "GradCAM": GradCAM,
    "GradCAM++": GradCAMPlusPlus,
    "HiResCAM": HiResCAM,
    "XGradCAM": XGradCAM,
    "LayerCAM": LayerCAM,
    "EigenCAM": EigenCAM,  # gradient-free: ignores the target
    "EigenGradCAM": EigenGradCAM,
    "GradCAMElementWise": GradCAMElementWise,
}
GRADIENT_FREE: tuple[str, ...] = ("EigenCAM",)
# Ten layers from the backbone to the last 3x3 conv of every head, for ``sweep``.
SWEEP_LAYERS: tuple[str, ...] = (
    "stage2", "stage3", "stage4", "stage5",
    "head32.conv2", "head32.out.branch", "head16.conv2", "head16.out.branch",
    "head8.conv2", "head8.out.branch",
)


class FlatOutputs(nn.Module):
    """YOLOv3 as pytorch-grad-cam expects it: ``forward(x)`` -> Tensor[B, M, 5 + C].

    M = 3 * sum(S^2); row m is the slot m of ``decode_outputs`` (scale, anchor, row, column).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        outputs = self.model(images)  # 3 x (B, 3, S, S, 5+C)
        return torch.cat([o.reshape(o.shape[0], -1, o.shape[-1]) for o in outputs], dim=1)


class DetectionTarget:
    """The score explained, for one image: sum over chosen slots of objectness + class logit.

    slots (Tensor[K]) flat slot indices (``Detections.slots``); labels (Tensor[K]) the class of
    each. Called on one image's flat output (Tensor[M, 5 + C]) it returns a scalar.
    """

    def __init__(self, slots: Tensor, labels: Tensor) -> None:
        self.slots = torch.as_tensor(slots, dtype=torch.int64).reshape(-1)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)

    def __call__(self, output: Tensor) -> Tensor:
        slots, labels = self.slots.to(output.device), self.labels.to(output.device)
        return (output[slots, 0] + output[slots, 5 + labels]).sum()


Target = Union[DetectionTarget, "Detections", None]


def chosen(detections: Detections, which: Any = None) -> list[int]:
    """Detection rows picked by ``which``: None/"all" every one, an int one, a class name all of
    that class, a sequence of ints those. Raises a clear ValueError when nothing is picked."""
    n = len(detections)
    if which is None or (isinstance(which, str) and which == "all"):
        rows = list(range(n))
    elif isinstance(which, str):
        rows = [i for i, name in enumerate(detections.names) if name == which]
    elif isinstance(which, (int, np.integer)):
        if not -n <= int(which) < n:
            raise ValueError(f"detection {which} does not exist: there are {n} detections")
        rows = [int(which) % n]
    else:
        rows = [int(i) for i in which]
    if not rows:
        raise ValueError(
            f"no detection to explain (target {which!r}, {n} detections): lower the confidence "
            "threshold, pick another class, or use a gradient-free method such as EigenCAM"
        )
    return rows


def detection_target(detections: Detections, which: Any = None) -> DetectionTarget:
    """``DetectionTarget`` for the rows ``chosen(detections, which)`` of a ``Detections``:
    None/"all" every one, an int one row, a class name every row of it, a list those rows."""
    rows = torch.as_tensor(chosen(detections, which), dtype=torch.int64)
    return DetectionTarget(detections.slots[rows], detections.labels[rows])


def as_target(target: Target) -> DetectionTarget | None:
    """A ``DetectionTarget`` as is; a ``Detections``: all of its rows; None stays None."""
    if target is None or isinstance(target, DetectionTarget):
        return target
    return detection_target(target, None)


def make_cam(method: str, model: nn.Module, layers: Sequence[str]) -> BaseCAM:
    """The library's CAM object over ``FlatOutputs(model)`` for named layers (its own call path:
    ``cam(input_tensor, targets=[DetectionTarget(...)])`` -> (B, S, S) maps on the input square)."""
    return _method(method)(FlatOutputs(model), target_layers=[model.get_layer(n) for n in layers])


def _method(name: str) -> type[BaseCAM]:
    if name not in METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def layer_maps(
    model: nn.Module,
    images: Tensor,
    layers: Sequence[str],
    method: str = "GradCAM",
    target: DetectionTarget | None = None,
    eigen_smooth: bool = False,
) -> dict[str, np.ndarray]:
    """Raw CAM of one image at every named layer from ONE forward and (at most) ONE backward.

    Args:
        model: a YOLOv3 (``get_layer`` by name); images (Tensor[1, 3, S, S]) the model input.
        target: the score to explain; ignored (may be None) for gradient-free methods.

    Returns:
        layer name -> np.ndarray[h, w] float32 >= 0 on that layer's grid (not yet normalised).
    """
    cls = _method(method)
    needs_grad = method not in GRADIENT_FREE
    if needs_grad and target is None:
        raise ValueError(f"{method} needs a target detection; pass target= or use EigenCAM")
    flat = FlatOutputs(model).eval()
    modules = {name: model.get_layer(name) for name in layers}
    activations: dict[str, Tensor] = {}

    owner = threading.get_ident()

    def keep(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor | None:
            if threading.get_ident() != owner:  # another thread's forward through a shared model
                return None
            if needs_grad and not output.requires_grad:  # frozen weights: start the graph here
                output = output.detach().requires_grad_(True)
            activations[name] = output
            return output
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in modules.items()]
    try:
        with torch.set_grad_enabled(needs_grad):
            output = flat(images)
        grads: list[Tensor | None] = [None] * len(layers)
        if needs_grad:
            score = target(output[0])
            tensors = [activations[n] for n in layers]
            grads = list(torch.autograd.grad(score, tensors, allow_unused=True))
    finally:
        for handle in handles:
            handle.remove()

    engine = cls(flat, target_layers=[])  # only its get_cam_image maths is used
    maps = {}
    for name, grad in zip(layers, grads):
        act = activations[name].detach().float().cpu().numpy()
        grad = np.zeros_like(act) if grad is None else grad.float().cpu().numpy()
        if method in _PROJECTED:
            cam = first_component(_PROJECTED[method](act, grad))
        else:
            cam = engine.get_cam_image(images, modules[name], [target], act, grad, eigen_smooth)
        maps[name] = np.maximum(cam[0], 0).astype(np.float32)
    return maps


# What the Eigen methods project: activations, or activations x gradients.
_PROJECTED = {"EigenCAM": lambda act, grad: act, "EigenGradCAM": lambda act, grad: act * grad}


def first_component(batch: np.ndarray) -> np.ndarray:
    """(B, C, h, w) -> (B, h, w): each position projected on the first principal component of
    the channel vectors, exactly as pytorch-grad-cam's ``get_2d_projection`` computes it, but with
    the reduced SVD: the library's full SVD also builds an (h*w) x (h*w) matrix it never uses
    (17 s instead of 0.07 s at a stride-4 layer of the full-width model; same numbers). One BLAS
    thread: these SVDs are small, and spinning BLAS threads cost seconds on a busy machine."""
    batch = np.nan_to_num(batch, nan=0.0, posinf=np.inf, neginf=-np.inf)
    projections = []
    with threadpool_limits(limits=1, user_api="blas"):
        for activations in batch:
            flat = activations.reshape(activations.shape[0], -1).T  # (h*w, C)
            flat = flat - flat.mean(axis=0)
            _, _, vt = np.linalg.svd(flat, full_matrices=False)
            projections.append((flat @ vt[0]).reshape(activations.shape[1:]))
    return np.float32(projections)


def to_original(cam: np.ndarray, input_size: int, scale: float, pad: tuple[float, float],
                size: tuple[int, int]) -> np.ndarray:
    """A map on a layer's grid (h, w) -> (H, W) of the original image of ``size`` (H, W),
    min-max scaled to [0, 1].

    The grid covers the letterboxed square of ``input_size``; an original pixel (x, y) sits at
    input pixel (x * scale + pad_x, y * scale + pad_y) (pixel centres). One bilinear resample.
    """
    height, width = size
    h, w = cam.shape
    sx, sy = w / input_size, h / input_size  # grid cells per input pixel
    # grid coordinate of the centre of original pixel (x, y): ((x + .5) * scale + pad) * s - .5
    matrix = np.array(
        [[scale * sx, 0.0, ((0.5 * scale) + pad[0]) * sx - 0.5],
         [0.0, scale * sy, ((0.5 * scale) + pad[1]) * sy - 0.5]],
        dtype=np.float64,
    )
    out = cv2.warpAffine(
        cam.astype(np.float32), matrix, (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )
    low, high = float(out.min()), float(out.max())
    return (out - low) / (high - low) if high > low else np.zeros_like(out)


def default_layer(prediction: Prediction, target: Target = None) -> str:
    """The last 3x3 conv of the head that predicted the target's first (best) detection;
    ``head8.out.branch`` without a target or detection."""
    goal = as_target(target)
    if goal is None or goal.slots.numel() == 0:
        return "head8.out.branch"
    return f"head{STRIDES[prediction.slot_position(int(goal.slots[0]))[0]]}.out.branch"


def sweep(
    model: nn.Module,
    prediction: Prediction,
    target: Target = None,
    layers: Sequence[str] = SWEEP_LAYERS,
    method: str = "GradCAM",
    eigen_smooth: bool = False,
) -> dict[str, np.ndarray]:
    """CAM of one predicted image at many layers: one forward + one backward for all of them.

    Args:
        model: the YOLOv3 that made ``prediction`` (``detector.model``).
        prediction: ``Detector.predict``'s result (its letterboxed input is explained).
        target: a ``DetectionTarget`` (see ``detection_target``), or a ``Detections`` (all of
            its rows); None only for gradient-free methods (EigenCAM).

    Returns:
        layer name -> np.ndarray[H, W] float32 in [0, 1], original image pixels.
    """
    goal = None if method in GRADIENT_FREE else as_target(target)
    if goal is not None and goal.slots.numel() == 0:
        raise ValueError("no detection to explain: lower the confidence threshold, pick another class, "
                         "or use a gradient-free method such as EigenCAM")
    maps = layer_maps(model, prediction.input, list(layers), method, goal, eigen_smooth)
    lb = prediction.letterbox
    return {
        name: to_original(cam, prediction.image_size, lb.scale, (lb.pad_x, lb.pad_y), prediction.orig_size)
        for name, cam in maps.items()
    }


def explain(
    model: nn.Module,
    prediction: Prediction,
    target: Target = None,
    layer: str | None = None,
    method: str = "GradCAM",
    eigen_smooth: bool = False,
) -> np.ndarray:
    """CAM of one layer (default: ``default_layer``) -> np.ndarray[H, W] in [0, 1], original pixels."""
    if layer is None:
        layer = default_layer(prediction, target)
    return sweep(model, prediction, target, [layer], method, eigen_smooth)[layer]


def renormalise_in_boxes(cam: np.ndarray, boxes: Any) -> np.ndarray:
    """Zero outside every box; inside each box (xyxy pixels) the map min-max scaled to [0, 1]
    on its own, so each detection's evidence is visible whatever the others' strength."""
    out = np.zeros_like(cam, dtype=np.float32)
    height, width = cam.shape
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        c1, r1 = int(np.clip(np.floor(x1), 0, width)), int(np.clip(np.floor(y1), 0, height))
        c2, r2 = int(np.clip(np.ceil(x2), 0, width)), int(np.clip(np.ceil(y2), 0, height))
        if c2 <= c1 or r2 <= r1:
            continue
        region = cam[r1:r2, c1:c2]
        low, high = float(region.min()), float(region.max())
        scaled = (region - low) / (high - low) if high > low else np.zeros_like(region)
        out[r1:r2, c1:c2] = np.maximum(out[r1:r2, c1:c2], scaled)
    return out


def overlay(
    image: np.ndarray,
    cam: np.ndarray,
    opacity: float = 0.5,
    boxes: Any = None,
    renormalise: bool = False,
    colormap: int = cv2.COLORMAP_JET,
) -> np.ndarray:
    """Heat map over the image: (1 - opacity) * image + opacity * colormap(cam).

    Args:
        image (np.ndarray[H, W, 3] uint8 RGB); cam (np.ndarray[H, W]) in [0, 1].
        boxes: xyxy pixels; with ``renormalise`` the map is rescaled inside each box, 0 outside.

    Returns:
        np.ndarray[H, W, 3] uint8 RGB.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    if cam.shape != image.shape[:2]:
        raise ValueError(f"cam {cam.shape} and image {image.shape[:2]} differ in size")
    if renormalise:
        if boxes is None:
            raise ValueError("renormalise=True needs the boxes to renormalise in")
        cam = renormalise_in_boxes(cam, boxes)
    return overlay_heatmap(image, cam, opacity, colormap)
