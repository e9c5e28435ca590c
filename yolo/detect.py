"""Inference: a ``Detector`` over a YOLOv3 checkpoint, and cached predictions for whole splits.

    detector = Detector.from_checkpoint("logs/voc/version_0/checkpoints/last.ckpt")
    found = detector.predict("dog.jpg")          # one forward pass, boxes in the photo's pixels
    found = detector.update(conf=0.5, iou=0.3)   # no forward pass: filter + NMS on kept candidates
    preds = predict_samples(detector, samples, "val.pt")   # a split, once; sweeps reuse the file
    preds.detections(conf=0.3, iou=0.5)          # per-image detections, no model involved

Coordinates: the model sees a letterboxed square (``image_size``, a multiple of 32); every box
this module returns is (x1, y1, x2, y2) in pixels of the ORIGINAL image (after EXIF rotation).
A candidate is one (scale, anchor, row, column) slot of the raw outputs, indexed in the order of
``yolo.targets.decode_outputs``: its ``cell`` says where GradCAM must look for it.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn
from tqdm.auto import tqdm

from yolo.checkpoint import load_into, read_checkpoint
from yolo.config import ANCHORS, VOC_CLASSES, PostprocessConfig, grid_sizes
from yolo.data.transforms import FILL, Letterbox, boxes_from_letterbox, letterbox
from yolo.model import YOLOv3
from yolo.postprocess import nms_indices, top_k_per_image
from yolo.targets import decode_outputs

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PRE_NMS_TOP_K = 1000  # the Detector's default: candidates per image entering NMS, best first
_UNSET: Any = object()


# --------------------------------------------------------------------------------------------
# Images in, RGB uint8 out


def load_image(image: Any, bgr: bool = False) -> np.ndarray:
    """Any common image form -> np.ndarray[H, W, 3] uint8 RGB.

    Accepts a path (str/Path), bytes or a binary file object (e.g. a Streamlit upload), a PIL
    image (EXIF orientation applied, any mode), a numpy array (H, W), (H, W, 1|3|4) or (1|3|4, H, W)
    as uint8, uint16, bool or float (floats with max <= 1 are read as [0, 1], else as [0, 255]),
    or a torch tensor in the same layouts. ``bgr=True`` says a 3/4-channel array is BGR(A), as
    OpenCV gives it. Transparent pixels are composited over gray 114.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            with Image.open(path) as pil:
                return _from_pil(pil)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise ValueError(f"cannot read image {path}: {err}") from err
    if isinstance(image, (bytes, bytearray)):
        image = io.BytesIO(image)
    if hasattr(image, "read"):
        try:
            with Image.open(image) as pil:
                return _from_pil(pil)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise ValueError(f"cannot read the uploaded image: {err}") from err
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return _from_array(image, bgr)
    raise TypeError(
        f"unsupported image type {type(image).__name__}: pass a path, bytes, a PIL image, "
        "a numpy array or a torch tensor"
    )


def _from_pil(pil: Image.Image) -> np.ndarray:
    """PIL image (any mode, EXIF orientation honoured) -> RGB uint8 array."""
    pil = ImageOps.exif_transpose(pil) or pil
    has_alpha = pil.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in pil.info
    if has_alpha:
        return _from_array(np.asarray(pil.convert("RGBA")), bgr=False)
    if pil.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return _from_array(np.asarray(pil), bgr=False)
    return np.ascontiguousarray(np.asarray(pil.convert("RGB")))


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Any numeric array -> uint8, reading floats as [0, 1] when their max is at most 1."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float32))
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        big = array.size and array.max() > 255
        return np.clip(array >> 8 if big else array, 0, 255).astype(np.uint8)
    raise TypeError(f"unsupported image dtype {array.dtype}")


def _from_array(array: np.ndarray, bgr: bool) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) array -> RGB uint8 (H, W, 3)."""
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channels first -> last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        gray = _to_uint8(array)
        return np.repeat(gray[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    pixels = _to_uint8(array)
    if bgr:
        pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[-1]]]
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:].astype(np.float32) / 255.0
        blended = pixels[..., :3].astype(np.float32) * alpha + FILL * (1.0 - alpha)
        pixels = np.rint(blended).astype(np.uint8)
    return np.ascontiguousarray(pixels)


def to_input(letterboxed: np.ndarray) -> Tensor:
    """Letterboxed RGB uint8 (S, S, 3) -> Tensor[3, S, S] float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(letterboxed)).permute(2, 0, 1).float().div_(255.0)


# --------------------------------------------------------------------------------------------
# Candidates and their selection (pure tensor functions)


@dataclass
class Candidates:
    """Decoded candidates of a batch, flat. All tensors have K rows.

    boxes (K, 4) xyxy pixels of each original image; scores (K,) = sigmoid(obj) * max softmax;
    labels (K,) int64; cells (K,) int64 slot index in ``decode_outputs`` order; images (K,) int64.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    cells: Tensor
    images: Tensor


def decode_candidates(
    outputs: Sequence[Tensor],
    letterboxes: Sequence[Letterbox],
    conf_floor: float = 0.0,
    max_per_image: int | None = None,
    anchors: Sequence = ANCHORS,
) -> Candidates:
    """Raw outputs of a batch -> every candidate above ``conf_floor``, in original pixels.

    Args:
        outputs: 3 raw tensors (B, 3, S, S, 5 + C).
        letterboxes: B letterbox records (from ``yolo.data.transforms.letterbox``), one per image.
        conf_floor: keep candidates whose score exceeds it (0 keeps all 3 * sum(S^2) per image).
        max_per_image: keep at most this many per image, highest scores first (None: all).
    """
    boxes, objectness, class_logits = decode_outputs(outputs, anchors)  # (B, M, 4), (B, M), (B, M, C)
    prob, labels = class_logits.softmax(dim=-1).max(dim=-1)
    scores = objectness * prob  # (B, M)
    batch, m = scores.shape
    if max_per_image is not None and max_per_image < m:
        top = torch.topk(scores, max_per_image, dim=1).indices  # (B, k)
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top, True) & (scores > conf_floor)
    else:
        keep = scores > conf_floor
    images, cells = torch.nonzero(keep, as_tuple=True)
    counts = torch.bincount(images, minlength=batch).tolist()  # nonzero lists image by image
    per_image = torch.split(boxes[images, cells], counts)  # letterboxed input pixels
    original = torch.cat([boxes_from_letterbox(b, lb) for b, lb in zip(per_image, letterboxes)])
    return Candidates(original, scores[images, cells], labels[images, cells], cells, images)


def class_ids(classes: Iterable[int | str] | None, class_names: Sequence[str]) -> list[int] | None:
    """Class filter given as ids and/or names -> sorted ids; None means every class."""
    if classes is None:
        return None
    ids = set()
    for c in classes:
        if isinstance(c, str):
            if c not in class_names:
                raise ValueError(f"unknown class {c!r}; choose from {', '.join(class_names)}")
            ids.add(class_names.index(c))
        else:
            if not 0 <= int(c) < len(class_names):
                raise ValueError(f"class id {c} outside 0..{len(class_names) - 1}")
            ids.add(int(c))
    return sorted(ids)


def select(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    images: Tensor,
    num_images: int,
    config: PostprocessConfig,
    classes: Sequence[int] | None = None,
) -> list[Tensor]:
    """Confidence filter, class filter, pre-NMS top-k and (class-aware) NMS of flat candidates.

    Args:
        boxes (Tensor[K, 4]) xyxy; scores, labels, images (Tensor[K]).
        config: conf_threshold, iou_threshold, max_detections, class_agnostic, pre_nms_top_k
            (at most this many candidates per image enter NMS, best first; None: all. NMS
            time grows with the square of the candidates, and only a model unsure everywhere,
            untrained or at a very low threshold, has more than 1000).
        classes: keep only these class ids (None: all), applied before NMS.

    Returns:
        ``num_images`` Tensors of row indices into the inputs, highest score first.
    """
    keep = scores > config.conf_threshold
    if classes is not None:
        keep &= torch.isin(labels, torch.as_tensor(classes, dtype=labels.dtype, device=labels.device))
    idx = torch.nonzero(keep).squeeze(1)
    k = config.pre_nms_top_k
    if k is not None and idx.numel() > k:
        # one image: a plain top-k (no sorts, which are slow on a busy machine's threads)
        top = torch.topk(scores[idx], k).indices if num_images == 1 else top_k_per_image(scores[idx], images[idx], k)
        idx = idx[top]
    kept = nms_indices(boxes[idx], scores[idx], labels[idx], images[idx], num_images,
                       config.iou_threshold, config.max_detections, config.class_agnostic)
    return [idx[k] for k in kept]


# --------------------------------------------------------------------------------------------
# The Detector


@dataclass
class Detections:
    """Detections of one image, highest score first. K rows.

    boxes (K, 4) float32 xyxy pixels of the original image; scores (K,); labels (K,) int64;
    names: class name per row; cells (K,) int64 slot in ``decode_outputs`` order (see
    ``Detector.cell_of``); image_size (width, height) of the original image.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    names: list[str]
    cells: Tensor
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.scores.numel())

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per detection (for tables): class, score, x1, y1, x2, y2."""
        return [
            {"class": n, "label": int(l), "score": float(s), **dict(zip(("x1", "y1", "x2", "y2"), b.tolist()))}
            for n, l, s, b in zip(self.names, self.labels, self.scores, self.boxes)
        ]


@dataclass
class Timings:
    """Latency of the last call in milliseconds; ``update`` only sets ``postprocess_ms``."""

    preprocess_ms: float = 0.0  # reading, letterbox, tensor conversion
    model_ms: float = 0.0  # the forward pass
    postprocess_ms: float = 0.0  # decoding, confidence/class filter, NMS, mapping back

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.model_ms + self.postprocess_ms


@dataclass
class LastPrediction:
    """What the Detector keeps of its last image so thresholds and GradCAM need no new read."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, the original
    input: Tensor  # (1, 3, S, S) float32 letterboxed model input, on the model's device
    letterbox: Letterbox  # the letterbox record mapping input pixels <-> original pixels
    outputs: list[Tensor]  # 3 raw tensors (1, 3, S, S, 5 + C), on the CPU
    candidates: Candidates  # every slot decoded (conf floor 0), original pixels
    detections: Detections | None = None


class Detector:
    """A YOLOv3 model ready for single images: letterbox, one forward, decode, NMS, map back.

    ``config`` holds the thresholds (``PostprocessConfig``); ``classes`` an optional class filter;
    ``last`` what the last ``predict`` kept. That state makes a Detector one user's: a web app
    should share the model (e.g. ``st.cache_resource``) and give each session its own Detector.
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str] | None = None,
        image_size: int = 416,
        device: str | torch.device | None = None,
        anchors: Sequence = ANCHORS,
        config: PostprocessConfig | None = None,
    ) -> None:
        grid_sizes(image_size)  # validates: a positive multiple of 32
        num_classes = getattr(model, "num_classes", None)
        if class_names is None:
            n = num_classes or len(VOC_CLASSES)
            class_names = VOC_CLASSES[:n] if n <= len(VOC_CLASSES) else [f"class{i}" for i in range(n)]
        if num_classes is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for a model with {num_classes} classes")
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.class_names = list(class_names)
        self.image_size = image_size
        self.anchors = [list(map(list, s)) for s in anchors]
        self.config = config or PostprocessConfig(pre_nms_top_k=PRE_NMS_TOP_K)
        self.classes: list[int] | None = None
        self.timings = Timings()
        self.last: LastPrediction | None = None
        self.checkpoint: str | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        image_size: int = 416,
        num_classes: int | None = None,
        width: float | None = None,
        prefer_ema: bool = True,
        config: PostprocessConfig | None = None,
    ) -> Detector:
        """Load safely (``torch.load(weights_only=True)``); EMA weights when present.

        ``num_classes``/``width``, when given, are what the caller expects: a checkpoint for
        another class count or width raises ``CheckpointError`` saying both.
        """
        state = read_checkpoint(path, prefer_ema=prefer_ema)
        model = YOLOv3(num_classes or state.num_classes, width or state.width)
        load_into(model, state)
        detector = cls(model, state.class_names, image_size, device, state.anchors, config)
        detector.checkpoint = str(path)
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

    def predict(self, image: Any, bgr: bool = False) -> Detections:
        """Detections of one image in its original pixels; keeps what ``update`` and CAM need."""
        start = time.perf_counter()
        rgb, tensor, record = self.prepare(image, bgr=bgr)
        x = tensor[None].to(self.device)
        mid = time.perf_counter()
        outputs = self._forward(x)
        after = time.perf_counter()
        candidates = decode_candidates(outputs, [record], 0.0, None, self.anchors)
        self.last = LastPrediction(rgb, x, record, outputs, candidates)
        detections = self._detections()
        end = time.perf_counter()
        self.timings = Timings((mid - start) * 1e3, (after - mid) * 1e3, (end - after) * 1e3)
        return detections

    def update(
        self,
        conf: float | None = None,
        iou: float | None = None,
        classes: Iterable[int | str] | None = _UNSET,
        max_detections: int | None = None,
        class_agnostic: bool | None = None,
    ) -> Detections:
        """New thresholds / class filter applied to the last image's candidates; no forward pass.

        Arguments left out keep their current value; ``classes=None`` removes the filter.
        """
        if conf is not None:
            self.config.conf_threshold = float(conf)
        if iou is not None:
            self.config.iou_threshold = float(iou)
        if max_detections is not None:
            self.config.max_detections = int(max_detections)
        if class_agnostic is not None:
            self.config.class_agnostic = bool(class_agnostic)
        if classes is not _UNSET:
            self.classes = class_ids(classes, self.class_names)
        if self.last is None:
            raise RuntimeError("no image yet: call detector.predict(image) before update()")
        start = time.perf_counter()
        detections = self._detections()
        self.timings = Timings(postprocess_ms=(time.perf_counter() - start) * 1e3)
        return detections

    def _detections(self) -> Detections:
        last = self.last
        c = last.candidates
        (idx,) = select(c.boxes, c.scores, c.labels, c.images, 1, self.config, self.classes)
        height, width = last.image.shape[:2]
        labels = c.labels[idx]
        last.detections = Detections(
            c.boxes[idx], c.scores[idx], labels, [self.class_names[i] for i in labels.tolist()],
            c.cells[idx], (width, height),
        )
        return last.detections

    def predict_batch(
        self,
        images: Sequence[Any],
        bgr: bool = False,
        conf_floor: float = 0.0,
        max_per_image: int | None = None,
    ) -> Candidates:
        """One forward pass over several images -> their flat candidates (original pixels).

        Keeps nothing (``last`` is untouched); apply ``select`` to the result, or use
        ``predict_samples`` for a whole split.
        """
        prepared = [self.prepare(image, bgr=bgr) for image in images]
        return self.run_prepared([p[1] for p in prepared], [p[2] for p in prepared], conf_floor, max_per_image)

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

    def cell_of(self, cell: int) -> tuple[int, int, int, int]:
        """Flat slot index -> (scale, anchor, row, column), scale 0/1/2 = stride 32/16/8."""
        offset = 0
        for scale, size in enumerate(grid_sizes(self.image_size)):
            count = 3 * size * size
            if cell < offset + count:
                local = cell - offset
                return scale, local // (size * size), (local // size) % size, local % size
            offset += count
        raise IndexError(f"cell {cell} outside the {offset} slots of a {self.image_size} input")


# --------------------------------------------------------------------------------------------
# Predictions of a whole split, cached so threshold sweeps never re-run the model

PREDICTIONS_VERSION = 1


@dataclass
class PredictionSet:
    """Candidates of N images above a low ``conf_floor``, before NMS, plus optional ground truth.

    Rows of image i are ``offsets[i]:offsets[i + 1]`` (CSR layout); boxes are xyxy pixels of the
    original image; ``sizes`` (N, 2) is (width, height). Ground truth, when the samples carried
    it, uses the same layout: ``gt_boxes`` (G, 4), ``gt_labels`` (G,), ``gt_difficult`` (G,) and
    ``gt_offsets`` (N + 1,).
    """

    image_ids: list[str]
    sizes: Tensor
    offsets: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_names: list[str]
    conf_floor: float
    gt_boxes: Tensor | None = None
    gt_labels: Tensor | None = None
    gt_difficult: Tensor | None = None
    gt_offsets: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def images(self) -> Tensor:
        """(K,) int64 image index of every candidate row."""
        return torch.repeat_interleave(torch.arange(len(self)), self.offsets.diff())

    def detections(
        self,
        conf: float = 0.05,
        iou: float = 0.45,
        max_detections: int = 100,
        classes: Iterable[int | str] | None = None,
        class_agnostic: bool = False,
        pre_nms_top_k: int | None = PRE_NMS_TOP_K,
    ) -> list[dict[str, Tensor]]:
        """Per-image {"boxes", "scores", "labels"} after the given thresholds; no model needed.

        ``conf`` below ``conf_floor`` cannot recover candidates that were never stored.
        """
        config = PostprocessConfig(conf, iou, max_detections, class_agnostic, pre_nms_top_k)
        ids = class_ids(classes, self.class_names)
        kept = select(self.boxes, self.scores, self.labels, self.images, len(self), config, ids)
        return [{"boxes": self.boxes[k], "scores": self.scores[k], "labels": self.labels[k]} for k in kept]

    def ground_truth(self) -> list[dict[str, Tensor]] | None:
        """Per-image {"boxes", "labels", "difficult"}, or None when none was stored."""
        if self.gt_offsets is None:
            return None
        counts = self.gt_offsets.diff().tolist()
        parts = zip(*(torch.split(t, counts) for t in (self.gt_boxes, self.gt_labels, self.gt_difficult)))
        return [{"boxes": b, "labels": l, "difficult": d} for b, l, d in parts]

    def save(self, path: str | Path) -> Path:
        """Write plain tensors, strings and numbers only (loadable with weights_only=True)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {k: v for k, v in self.__dict__.items() if v is not None}
        torch.save({"version": PREDICTIONS_VERSION, **payload}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PredictionSet:
        """Read a file written by ``save``; safe (weights_only) and checked."""
        try:
            raw = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is not a predictions file written by yolo.detect: {err}") from err
        if not isinstance(raw, dict) or raw.get("version") != PREDICTIONS_VERSION:
            found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(
                f"{path}: expected predictions version {PREDICTIONS_VERSION}, found {found}; "
                "re-run predict_samples to rebuild it"
            )
        raw.pop("version")
        return cls(**raw)


@dataclass
class _Prepared:
    """One sample ready for the model: id, original (width, height), input, letterbox, truth."""

    image_id: str
    size: tuple[int, int]
    input: Tensor
    letterbox: Letterbox
    truth: dict[str, Tensor] | None


def _as_tensors(target: dict, boxes: Any) -> dict[str, Tensor]:
    labels = torch.as_tensor(np.asarray(target.get("labels", []), dtype=np.int64)).reshape(-1)
    difficult = target.get("difficult")
    return {
        "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4),
        "labels": labels,
        "difficult": torch.zeros(len(labels), dtype=torch.bool) if difficult is None
        else torch.as_tensor(np.asarray(difficult, dtype=bool)).reshape(-1),
    }


def _split(sample: Any) -> tuple[Any, dict | None]:
    """A sample -> (image, target dict or None)."""
    if isinstance(sample, dict):
        return sample["image"], sample
    if isinstance(sample, (tuple, list)) and len(sample) == 2 and isinstance(sample[1], dict):
        return sample[0], sample[1]
    return sample, None


def sample_id(sample: Any, index: int) -> str:
    """The id of a sample: its "image_id", "id", "path" or "file", a path's name, else its index."""
    image, target = _split(sample)
    for key in ("image_id", "id", "path", "file"):
        if target is not None and target.get(key) is not None:
            return str(target[key])
    return Path(image).name if isinstance(image, (str, Path)) else str(index)


def prepare_sample(detector: Detector, sample: Any, index: int) -> _Prepared:
    """A split's sample -> model input, letterbox and ground truth in original pixels.

    Accepts: a dict with "image" (optionally "id"/"image_id"/"path", "boxes", "labels",
    "difficult"), as ``yolo.data`` datasets give; an evaluation sample already letterboxed to
    the detector's size with its "meta" (``EvalDataset``: reduced decodes, so faster), whose
    boxes are mapped back to the original; a pair (image, target dict); or a bare image.
    """
    image, target = _split(sample)
    image_id = sample_id(sample, index)
    meta = target.get("meta") if target else None
    if meta and meta.get("size") == detector.image_size and np.shape(image)[:2] == (detector.image_size,) * 2:
        record = Letterbox(meta["size"], tuple(meta["orig_size"]), meta["scale"], meta["pad_x"], meta["pad_y"])
        tensor = to_input(load_image(image))
        height, width = record.orig_size
        truth = _as_tensors(target, boxes_from_letterbox(np.asarray(target["boxes"], np.float32), record)) \
            if "boxes" in target else None
    else:
        rgb, tensor, record = detector.prepare(image)
        height, width = rgb.shape[:2]
        truth = _as_tensors(target, target["boxes"]) if target and "boxes" in target else None
    return _Prepared(image_id, (width, height), tensor, record, truth)


def predict_samples(
    detector: Detector,
    samples: Iterable[Any],
    out_path: str | Path | None = None,
    batch_size: int = 8,
    conf_floor: float = 0.001,
    max_candidates: int | None = 3000,
    total: int | None = None,
    progress: bool = True,
    desc: str = "predict",
) -> PredictionSet:
    """Run the model once over a split and keep every candidate above ``conf_floor``, pre-NMS.

    Args:
        samples: an iterable of samples (see ``prepare_sample``): a ``yolo.data`` dataset
            split (original or evaluation samples), a list of paths or images, or a DataLoader
            with ``batch_size=None`` to decode in worker processes.
        out_path: where to save the ``PredictionSet`` (``PredictionSet.load`` reads it back).
        max_candidates: per image, the highest-scoring candidates kept (bounds the file size).
        total: number of samples for the progress bar when ``samples`` has no ``len``.

    Unreadable images are skipped, counted and listed in ``meta["skipped"]`` (id: reason).
    """
    total = total if total is not None else (len(samples) if hasattr(samples, "__len__") else None)
    done: list[_Prepared] = []
    parts: list[Candidates] = []
    counts: list[int] = []
    skipped: dict[str, str] = {}
    pending: list[_Prepared] = []

    def flush() -> None:
        cands = detector.run_prepared([p.input for p in pending], [p.letterbox for p in pending],
                                      conf_floor, max_candidates)
        parts.append(cands)
        counts.extend(torch.bincount(cands.images, minlength=len(pending)).tolist())
        done.extend(pending)
        pending.clear()

    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for index, sample in enumerate(samples):
            try:
                pending.append(prepare_sample(detector, sample, index))
            except (OSError, ValueError) as err:
                skipped[sample_id(sample, index)] = str(err)
            if len(pending) == batch_size:
                flush()
            bar.update(1)
        if pending:
            flush()
        bar.set_postfix(images=len(done), skipped=len(skipped))
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable images skipped, e.g. {next(iter(skipped.items()))}")
    ids = [p.image_id for p in done]
    sizes = [p.size for p in done]
    truths = [p.truth for p in done]
    result = PredictionSet(
        image_ids=ids,
        sizes=torch.tensor(sizes, dtype=torch.int64).reshape(-1, 2),
        offsets=torch.tensor([0] + counts, dtype=torch.int64).cumsum(0),
        boxes=torch.cat([p.boxes for p in parts]) if parts else torch.zeros(0, 4),
        scores=torch.cat([p.scores for p in parts]) if parts else torch.zeros(0),
        labels=torch.cat([p.labels for p in parts]) if parts else torch.zeros(0, dtype=torch.int64),
        class_names=list(detector.class_names),
        conf_floor=float(conf_floor),
        meta={"checkpoint": detector.checkpoint or "", "image_size": detector.image_size,
              "max_candidates": max_candidates, "skipped": skipped},
    )
    if truths and all(t is not None for t in truths):
        result.gt_boxes = torch.cat([t["boxes"] for t in truths])
        result.gt_labels = torch.cat([t["labels"] for t in truths])
        result.gt_difficult = torch.cat([t["difficult"] for t in truths])
        result.gt_offsets = torch.tensor([0] + [len(t["labels"]) for t in truths], dtype=torch.int64).cumsum(0)
    if out_path is not None:
        result.save(out_path)
    return result


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files of a folder (by extension), sorted; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def predict_folder(detector: Detector, folder: str | Path, out_path: str | Path | None = None,
                   recursive: bool = False, **kwargs: Any) -> PredictionSet:
    """``predict_samples`` over the image files of a folder; image ids are the relative paths."""
    folder = Path(folder)
    files = image_files(folder, recursive)
    samples = ({"image": p, "image_id": str(p.relative_to(folder))} for p in files)
    return predict_samples(detector, samples, out_path, total=len(files), **kwargs)
