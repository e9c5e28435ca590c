"""Predictions of a whole split, run once and cached, so every later view needs no model.

    preds = predict_samples(detector, samples, "val.pt")   # the model once over the split
    preds = PredictionSet.load("val.pt")                   # later, anywhere (weights_only)
    preds.detections(conf=0.3, iou=0.5)                    # per-image detections, no model

A ``PredictionSet`` keeps every candidate above a low ``conf_floor`` BEFORE NMS, so a new
confidence threshold, NMS IoU or class filter is a re-selection, not a new forward pass. This is
what the Evaluate page and ``python -m yolo.evaluate`` read.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from yolo.config import EVAL_NMS, PostprocessConfig
from yolo.detect import PRE_NMS_TOP_K, Detector, to_input
from yolo.selection import Candidates, class_ids, select
from yolo.imageio import IMAGE_EXTENSIONS, load_image
from yolo.letterbox import Letterbox, boxes_from_letterbox

PREDICTIONS_VERSION = 2  # 2: sizes are (height, width)


@dataclass
class PredictionSet:
    """Candidates of N images above a low ``conf_floor``, before NMS, plus optional ground truth.

    Rows of image i are ``offsets[i]:offsets[i + 1]`` (CSR layout); boxes (Tensor[K, 4]) are
    (x1, y1, x2, y2) pixels of the original image; scores (Tensor[K]); labels (Tensor[K]) int64;
    ``sizes`` (Tensor[N, 2]) is (height, width) of each original image. Ground truth, when the
    samples carried it, uses the same layout: ``gt_boxes`` (G, 4), ``gt_labels`` (G,),
    ``gt_difficult`` (G,) and ``gt_offsets`` (N + 1,).
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
        conf: float | Sequence[float] = 0.05,
        iou: float = 0.45,
        max_detections: int = EVAL_NMS.max_detections,
        classes: Iterable[int | str] | None = None,
        class_agnostic: bool = False,
        pre_nms_top_k: int | None = PRE_NMS_TOP_K,
    ) -> list[dict[str, Tensor]]:
        """Per-image {"boxes", "scores", "labels"} after the given thresholds; no model needed.

        ``conf``: one threshold, or one per class (an operating point). A threshold below
        ``conf_floor`` cannot recover candidates that were never stored.
        """
        class_conf = None if isinstance(conf, (int, float)) else torch.as_tensor(list(conf), dtype=torch.float32)
        config = PostprocessConfig(float(conf) if class_conf is None else 0.0, iou, max_detections,
                                   class_agnostic, pre_nms_top_k)
        ids = class_ids(classes, self.class_names)
        kept = select(self.boxes, self.scores, self.labels, self.images, len(self), config, ids, class_conf)
        return [{"boxes": self.boxes[k], "scores": self.scores[k], "labels": self.labels[k]} for k in kept]

    def ground_truth(self) -> list[dict[str, Tensor]] | None:
        """Per-image {"boxes", "labels", "difficult"}, or None when none was stored."""
        if self.gt_offsets is None:
            return None
        counts = self.gt_offsets.diff().tolist()
        parts = zip(*(torch.split(t, counts) for t in (self.gt_boxes, self.gt_labels, self.gt_difficult)))
        return [{"boxes": b, "labels": l, "difficult": d} for b, l, d in parts]

    def subset(self, start: int, stop: int) -> PredictionSet:
        """Images ``start .. stop - 1`` (their CSR rows and ground truth) as a new set."""
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        out = PredictionSet(self.image_ids[start:stop], self.sizes[start:stop],
                            self.offsets[start:stop + 1] - lo, self.boxes[lo:hi], self.scores[lo:hi],
                            self.labels[lo:hi], self.class_names, self.conf_floor, meta=dict(self.meta))
        if self.gt_offsets is not None:
            g0, g1 = int(self.gt_offsets[start]), int(self.gt_offsets[stop])
            out.gt_boxes, out.gt_labels = self.gt_boxes[g0:g1], self.gt_labels[g0:g1]
            out.gt_difficult, out.gt_offsets = self.gt_difficult[g0:g1], self.gt_offsets[start:stop + 1] - g0
        return out

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
            raise ValueError(f"{path} is not a predictions file written by yolo.predictions: {err}") from err
        if not isinstance(raw, dict) or raw.get("version") != PREDICTIONS_VERSION:
            found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(
                f"{path}: expected predictions version {PREDICTIONS_VERSION}, found {found}; "
                "re-run predict_samples to rebuild it"
            )
        raw.pop("version")
        problem = _problem(raw)
        if problem:
            raise ValueError(f"{path} is not a valid predictions file: {problem}; re-run predict_samples to rebuild it")
        return cls(**raw)


_REQUIRED = ("image_ids", "sizes", "offsets", "boxes", "scores", "labels", "class_names", "conf_floor")
_GROUND_TRUTH = ("gt_boxes", "gt_labels", "gt_difficult", "gt_offsets")


def _tensor_problem(raw: dict, key: str, rows: int, cols: int | None, kind: str) -> str | None:
    """What is wrong with ``raw[key]`` as a Tensor[rows] or Tensor[rows, cols] of ``kind``
    ("float", "int" or "bool"), or None."""
    value = raw[key]
    if not isinstance(value, Tensor):
        return f"{key} is a {type(value).__name__}, expected a tensor"
    shape = (rows,) if cols is None else (rows, cols)
    if tuple(value.shape) != shape:
        return f"{key} has shape {tuple(value.shape)}, expected {shape}"
    ok = {"float": value.is_floating_point(), "bool": value.dtype == torch.bool,
          "int": not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool}[kind]
    return None if ok else f"{key} is {value.dtype}, expected {kind}"


def _csr_problem(raw: dict, offsets_key: str, images: int, rows: tuple) -> str | None:
    """What is wrong with a CSR table, or None: ``offsets_key`` (int, N + 1 entries from 0, never
    decreasing) and the tensors ``rows`` ((key, columns, kind), ...) with as many rows as it ends at."""
    problem = _tensor_problem(raw, offsets_key, images + 1, None, "int")
    if problem:
        return problem
    offsets = raw[offsets_key]
    if int(offsets[0]) != 0 or bool((offsets.diff() < 0).any()):
        return f"{offsets_key} must start at 0 and never decrease"
    end = int(offsets[-1])
    return next((p for key, cols, kind in rows if (p := _tensor_problem(raw, key, end, cols, kind))), None)


def _problem(raw: dict) -> str | None:
    """What is wrong with the fields of a predictions file (without "version"), or None. Checks
    names, types, shapes and the CSR offsets, so a malformed file fails here, not in a later view."""
    missing = [k for k in _REQUIRED if k not in raw]
    unknown = sorted(map(str, set(raw) - set(_REQUIRED) - set(_GROUND_TRUTH) - {"meta"}))
    if missing or unknown:
        return "; ".join(part for part in (missing and f"missing {', '.join(missing)}",
                                           unknown and f"unknown {', '.join(unknown)}") if part)
    for key in ("image_ids", "class_names"):
        if not isinstance(raw[key], list) or not all(isinstance(v, str) for v in raw[key]):
            return f"{key} must be a list of strings"
    if isinstance(raw["conf_floor"], bool) or not isinstance(raw["conf_floor"], (int, float)):
        return f"conf_floor is a {type(raw['conf_floor']).__name__}, expected a number"
    if not isinstance(raw.get("meta", {}), dict):
        return "meta must be a dict"
    n = len(raw["image_ids"])
    problem = _tensor_problem(raw, "sizes", n, 2, "int") or _csr_problem(
        raw, "offsets", n, (("boxes", 4, "float"), ("scores", None, "float"), ("labels", None, "int")))
    if problem:
        return problem
    if not bool(((raw["labels"] >= 0) & (raw["labels"] < len(raw["class_names"]))).all()):
        return f"labels outside 0..{len(raw['class_names']) - 1} ({len(raw['class_names'])} class names)"
    present = [key for key in _GROUND_TRUTH if raw.get(key) is not None]
    if present and len(present) < len(_GROUND_TRUTH):
        return f"ground truth has {', '.join(present)} but not {', '.join(k for k in _GROUND_TRUTH if k not in present)}"
    return _csr_problem(raw, "gt_offsets", n, (("gt_boxes", 4, "float"), ("gt_labels", None, "int"),
                                                ("gt_difficult", None, "bool"))) if present else None


@dataclass
class _Prepared:
    """One sample ready for the model: id, original (height, width), input, letterbox, truth."""

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
        truth = _as_tensors(target, boxes_from_letterbox(np.asarray(target["boxes"], np.float32), record)) \
            if "boxes" in target else None
    else:
        _, tensor, record = detector.prepare(image)
        truth = _as_tensors(target, target["boxes"]) if target and "boxes" in target else None
    return _Prepared(image_id, tuple(record.orig_size), tensor, record, truth)


def predict_samples(
    detector: Detector,
    samples: Iterable[Any],
    out_path: str | Path | None = None,
    batch_size: int = 8,
    conf_floor: float = EVAL_NMS.conf_threshold,
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
    truths = [p.truth for p in done]
    result = PredictionSet(
        image_ids=[p.image_id for p in done],
        sizes=torch.tensor([p.size for p in done], dtype=torch.int64).reshape(-1, 2),
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
