"""Inference: a ``Detector`` over a YOLOv3 checkpoint -> an immutable ``Prediction`` per image.

    detector = Detector.from_checkpoint("logs/voc/version_0/checkpoints/last.ckpt")
    prediction = detector.predict("dog.jpg")      # one forward pass; the Detector keeps nothing
    found = prediction.select()                   # Detections at the detector's thresholds
    found = prediction.select(conf=0.5, iou=0.3)  # no forward pass: filter + NMS on kept candidates

Whole splits (cached candidates of many images) live in ``yolo.predictions``.

Coordinates: the model sees a letterboxed square (``image_size``, a multiple of 32); every box
this module returns is (x1, y1, x2, y2) in pixels of the ORIGINAL image (after EXIF rotation);
sizes are (height, width). A candidate is one (scale, anchor, row, column) slot of the raw
outputs; its flat ``slot`` index follows ``yolo.targets.decode_outputs`` (``unravel_slot``
turns it back into the four), which is where GradCAM looks for it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from yolo.config import ANCHORS, DEFAULT_IMAGE_SIZE, EVAL_NMS, VOC_CLASSES, PostprocessConfig, grid_sizes
from yolo.imageio import load_image
from yolo.letterbox import Letterbox, letterbox
from yolo.model import YOLOv3
from yolo.selection import Candidates, Detections, class_ids, decode_candidates, select, unravel_slot
from yolo.thresholds import ThresholdsWarning, read_thresholds, thresholds_for
from yolo.weights import load_into, read_checkpoint

PRE_NMS_TOP_K = EVAL_NMS.pre_nms_top_k  # the Detector's default: candidates per image entering NMS


# --------------------------------------------------------------------------------------------
# Model input (images are read by ``yolo.imageio.load_image``)


def to_input(letterboxed: np.ndarray) -> Tensor:
    """Letterboxed RGB uint8 (S, S, 3) -> Tensor[3, S, S] float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(letterboxed)).permute(2, 0, 1).float().div_(255.0)


@dataclass(frozen=True)
class Timings:
    """Latency of one ``predict`` in milliseconds."""

    preprocess_ms: float = 0.0  # reading, letterbox, tensor conversion
    model_ms: float = 0.0  # the forward pass
    decode_ms: float = 0.0  # decoding every slot and mapping it back to original pixels

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.model_ms + self.decode_ms


@dataclass(frozen=True, eq=False)
class Prediction:
    """What one forward pass over one image gives; immutable, so any number of users may share it.

    image (np.ndarray[H, W, 3] uint8 RGB) the original; input (Tensor[1, 3, S, S]) the
    letterboxed model input; letterbox the record mapping input <-> original pixels; outputs the
    3 raw tensors (1, 3, S, S, 5 + C) on the CPU; candidates every slot decoded (original
    pixels); config / class_conf the thresholds ``select`` uses when given none.
    """

    image: np.ndarray
    input: Tensor
    letterbox: Letterbox
    outputs: tuple[Tensor, ...]
    candidates: Candidates
    class_names: tuple[str, ...]
    config: PostprocessConfig
    class_conf: tuple[float, ...] | None = None
    timings: Timings = Timings()

    @property
    def orig_size(self) -> tuple[int, int]:
        """(height, width) of the original image."""
        return tuple(self.letterbox.orig_size)  # type: ignore[return-value]

    @property
    def image_size(self) -> int:
        """Side of the square model input."""
        return int(self.letterbox.size)

    def slot_position(self, slot: int) -> tuple[int, int, int, int]:
        """Flat slot -> (scale, anchor, row, column) at this prediction's input size."""
        return unravel_slot(int(slot), self.image_size)

    def select(
        self,
        conf: float | Sequence[float] | None = None,
        iou: float | None = None,
        classes: Iterable[int | str] | None = None,
        max_detections: int | None = None,
        class_agnostic: bool | None = None,
    ) -> Detections:
        """Detections at these thresholds from the kept candidates; no forward pass.

        conf: one threshold, or one per class; None: the per-class operating point the detector
        was given, else its ``config.conf_threshold``. Other arguments left out take the
        detector's ``config``; ``classes`` (ids or names) keeps only those classes.
        """
        return select_candidates(self.candidates, self.class_names, self.orig_size, self.config,
                                 self.class_conf, conf, iou, classes, max_detections, class_agnostic)


def select_candidates(
    candidates: Candidates,
    class_names: Sequence[str],
    orig_size: tuple[int, int],
    config: PostprocessConfig,
    class_conf: Sequence[float] | None = None,
    conf: float | Sequence[float] | None = None,
    iou: float | None = None,
    classes: Iterable[int | str] | None = None,
    max_detections: int | None = None,
    class_agnostic: bool | None = None,
) -> Detections:
    """``Prediction.select`` for the candidates of one image, without the image (what
    ``yolo.video`` keeps per frame): ``config``/``class_conf`` are the defaults, the other
    arguments override them exactly as ``Prediction.select`` documents."""
    config = replace(config)
    chosen_conf = None
    if conf is None and class_conf is not None:
        chosen_conf = torch.tensor(class_conf)
    elif conf is not None and not isinstance(conf, (int, float)):
        chosen_conf = torch.as_tensor(list(conf), dtype=torch.float32)
        if chosen_conf.numel() != len(class_names):
            raise ValueError(f"{chosen_conf.numel()} thresholds for {len(class_names)} classes")
    elif conf is not None:
        config.conf_threshold = float(conf)
    if iou is not None:
        config.iou_threshold = float(iou)
    if max_detections is not None:
        config.max_detections = int(max_detections)
    if class_agnostic is not None:
        config.class_agnostic = bool(class_agnostic)
    c = candidates
    ids = class_ids(classes, class_names)
    (idx,) = select(c.boxes, c.scores, c.labels, c.images, 1, config, ids, chosen_conf)
    labels = c.labels[idx]
    return Detections(c.boxes[idx], c.scores[idx], labels, [class_names[i] for i in labels.tolist()],
                      c.slots[idx], tuple(orig_size))


# --------------------------------------------------------------------------------------------
# The Detector


class Detector:
    """A YOLOv3 model ready for images: letterbox, one forward, decode -> ``Prediction``.

    Holds only what does not change: the model, class names, input size, default thresholds
    (``config``) and optional per-class thresholds (``class_conf``, an operating point). It keeps
    nothing of the images it sees, so one Detector can serve many users (e.g. a web app's
    sessions through ``st.cache_resource``) at once.
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str] | None = None,
        image_size: int = 416,
        device: str | torch.device | None = None,
        anchors: Sequence = ANCHORS,
        config: PostprocessConfig | None = None,
        class_conf: Sequence[float] | None = None,
    ) -> None:
        grid_sizes(image_size)  # validates: a positive multiple of 32
        num_classes = getattr(model, "num_classes", None)
        if class_names is None:
            n = num_classes or len(VOC_CLASSES)
            class_names = VOC_CLASSES[:n] if n <= len(VOC_CLASSES) else [f"class{i}" for i in range(n)]
        if num_classes is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for a model with {num_classes} classes")
        if class_conf is not None and len(class_conf) != len(class_names):
            raise ValueError(f"{len(class_conf)} class thresholds for {len(class_names)} classes")
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.class_names = list(class_names)
        self.image_size = image_size
        self.anchors = [list(map(list, s)) for s in anchors]
        self.config = config or PostprocessConfig(pre_nms_top_k=PRE_NMS_TOP_K)
        self.class_conf = tuple(float(c) for c in class_conf) if class_conf is not None else None
        self.checkpoint: str | None = None
        self.thresholds_file: str | None = None  # the operating-points file class_conf came from
        # what a user should know about this model, one line each (NaN/Inf weights, a thresholds
        # file that could not be used): the dashboard shows them beside the detections
        self.warnings: list[str] = []

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        image_size: int | None = None,
        num_classes: int | None = None,
        width: float | None = None,
        prefer_ema: bool = True,
        config: PostprocessConfig | None = None,
        operating_points: str | Path | bool | None = None,
    ) -> Detector:
        """Load safely (``torch.load(weights_only=True)``); EMA weights when present.

        ``image_size``: None runs the model at the size saved in the checkpoint (its validation
        size), else at ``DEFAULT_IMAGE_SIZE`` (older checkpoints).
        ``num_classes``/``width``, when given, are what the caller expects: a checkpoint for
        another class count or width raises ``CheckpointError`` saying both.
        ``operating_points``: per-class thresholds (``yolo.thresholds``) that become ``class_conf``
        (``select``'s default). None (or True): the file beside the checkpoint (``<stem>.thresholds.json``,
        written by ``python -m yolo.evaluate`` and the Evaluate page) when there is one. A path:
        that file. False: none. A file that cannot be used gives a ``ThresholdsWarning`` (also in
        ``detector.warnings``) and the default thresholds.
        """
        state = read_checkpoint(path, prefer_ema=prefer_ema)
        model = YOLOv3(num_classes or state.num_classes, width or state.width)
        load_into(model, state)
        notes = []
        if state.nonfinite:
            notes.append(f"{len(state.nonfinite)} weight tensors of {Path(path).name} hold NaN or Inf (first: "
                         f"{state.nonfinite[0]}): its scores are NaN, so it finds nothing")
        points = None
        if operating_points is not False:
            named = operating_points is not None and operating_points is not True
            found = (read_thresholds(operating_points, state.class_names) if named
                     else thresholds_for(path, state.class_names))
            points = found.points
            problem = found.message or (f"no operating-points file at {operating_points}" if named and points is None
                                        else None)
            if problem:  # a broken file: a message, and the default thresholds
                notes.append(f"{problem}; using the default thresholds")
                warnings.warn(notes[-1], ThresholdsWarning, stacklevel=2)
        size = image_size or state.image_size or DEFAULT_IMAGE_SIZE  # the size it was validated at
        class_conf = points.class_thresholds if points is not None else None
        detector = cls(model, state.class_names, size, device, state.anchors_at(size), config, class_conf)
        detector.checkpoint = str(path)
        detector.warnings = notes
        detector.thresholds_file = str(found.path) if points is not None else None
        return detector

    # ---------------------------------------------------------------------------------------
    def prepare(self, image: Any, bgr: bool = False) -> tuple[np.ndarray, Tensor, Letterbox]:
        """Image in any form -> (original RGB uint8, input Tensor[3, S, S], letterbox record)."""
        rgb = load_image(image, bgr=bgr)
        boxed, record = letterbox(rgb, self.image_size)
        return rgb, to_input(boxed), record

    def _forward(self, batch: Tensor) -> list[Tensor]:
        with torch.inference_mode():
            outputs = self.model(batch.to(self.device))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        return [o.float().cpu() for o in outputs]

    def predict(self, image: Any, bgr: bool = False) -> Prediction:
        """One image -> its ``Prediction`` (one forward pass); ``.select()`` gives detections."""
        start = time.perf_counter()
        rgb, tensor, record = self.prepare(image, bgr=bgr)
        if rgb is image:  # load_image passes an RGB uint8 array through: the Prediction keeps its own
            rgb = rgb.copy()
        rgb.setflags(write=False)  # shared by every user of the Prediction: nobody draws on it
        x = tensor[None].to(self.device)
        mid = time.perf_counter()
        outputs = self._forward(x)
        after = time.perf_counter()
        candidates = decode_candidates(outputs, [record], 0.0, None, self.anchors)
        end = time.perf_counter()
        timings = Timings((mid - start) * 1e3, (after - mid) * 1e3, (end - after) * 1e3)
        return Prediction(rgb, x, record, tuple(outputs), candidates, tuple(self.class_names),
                          replace(self.config), self.class_conf, timings)

    def run_prepared(
        self,
        inputs: Sequence[Tensor],
        letterboxes: Sequence[Letterbox],
        conf_floor: float = 0.0,
        max_per_image: int | None = None,
    ) -> Candidates:
        """Inputs (Tensor[3, S, S] each, from ``prepare``) -> one forward -> flat candidates."""
        outputs = self._forward(torch.stack(list(inputs)))
        return decode_candidates(outputs, letterboxes, conf_floor, max_per_image, self.anchors)
