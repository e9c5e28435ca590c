"""Datasets over a ``DetectionIndex``: original samples, evaluation samples, the RAM image cache.

A *sample* (the data contract) is a dict:
    image      ndarray[H, W, 3] uint8 RGB
    boxes      ndarray[N, 4] float32 pixel (x1, y1, x2, y2) in that image
    labels     ndarray[N] int64
    difficult  ndarray[N] bool
    id, path   str
and, from the evaluation/training datasets, ``meta`` (a dict, see ``collate``).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from torch.utils.data import Dataset

from yolo.data.index import DetectionIndex
from yolo.imageio import ImageError, decode_rgb, read_image
from yolo.letterbox import boxes_to_letterbox, letterbox, letterbox_params, letterbox_resize

log = logging.getLogger(__name__)
MAX_SUBSTITUTES = 16  # consecutive undecodable images tolerated before giving up


def target_size(orig_size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(h, w) after shrinking so the long side is at most ``max_side`` (never enlarged)."""
    h, w = int(orig_size[0]), int(orig_size[1])
    if not max_side or max(h, w) <= max_side:
        return h, w
    r = max_side / max(h, w)
    return max(1, round(h * r)), max(1, round(w * r))


def load_resized(path: str, orig_size: tuple[int, int], exif: bool, max_side: int | None) -> np.ndarray:
    """Decode and shrink to long side <= max_side (reduced JPEG decode where it is enough)."""
    image = decode_rgb(path, max(orig_size), max_side, exif)
    th, tw = target_size(orig_size, max_side)
    if image.shape[:2] != (th, tw):
        shrink = tw < image.shape[1]
        image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image


def load_exact(path: str, orig_size: tuple[int, int], exif: bool, size: int) -> np.ndarray:
    """The evaluation rule's resize of an image (full decode, then ``letterbox_resize`` to ``size``):
    ``letterbox(load_exact(...), size, orig_size)`` equals ``yolo.imageio.model_input(path, size)``."""
    return letterbox_resize(read_image(path, None, exif), letterbox_params(orig_size, size))


class ImageCache:
    """Decoded images (long side <= ``max_side``) of an index in one contiguous uint8 buffer.

    ``exact=True`` (evaluation sets): each image is what the evaluation rule gives before padding
    (``load_exact``: full decode, letterbox resize to long side ``max_side``, small images enlarged
    too); else (training) a reduced JPEG decode where it is enough, shrunk to long side <= max_side.
    Filled once by ``fill`` with a thread pool (OpenCV releases the GIL), before DataLoader
    workers start: with the default 'fork' start method they share it copy-on-write. Memory is
    about ``sum(h * w * 3)`` bytes: ~0.4 MB per VOC image at 416.
    """

    def __init__(self, index: DetectionIndex, max_side: int, exact: bool = False):
        self.max_side, self.exact = int(max_side), bool(exact)
        shape = (lambda s: letterbox_params(s, max_side).new_size) if exact else (lambda s: target_size(s, max_side))
        shapes = np.array([shape(s) for s in index.sizes], dtype=np.int64).reshape(-1, 2)
        self.shapes = shapes
        self.offsets = np.concatenate(([0], np.cumsum(shapes[:, 0] * shapes[:, 1] * 3))).astype(np.int64)
        self.buffer = np.empty(int(self.offsets[-1]), dtype=np.uint8)
        self.filled = np.zeros(len(shapes), dtype=bool)
        self._index = index

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes)

    def _fill_one(self, i: int) -> None:
        idx = self._index
        try:
            load = load_exact if self.exact else load_resized
            image = load(str(idx.paths[i]), tuple(int(v) for v in idx.sizes[i]), bool(idx.exif[i]), self.max_side)
        except ImageError:
            return
        if image.shape[:2] != tuple(self.shapes[i]):
            return
        self.buffer[self.offsets[i]:self.offsets[i + 1]] = image.reshape(-1)
        self.filled[i] = True

    def fill(self, threads: int = 2, progress: bool = True) -> ImageCache:
        n = len(self.shapes)
        items = range(n)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            it = pool.map(self._fill_one, items)
            if progress and n >= 50:
                from tqdm.auto import tqdm

                it = tqdm(it, total=n, desc=f"caching images ({self.nbytes / 2**20:.0f} MiB)", unit="img", leave=False)
            for _ in it:
                pass
        return self

    def get(self, i: int) -> np.ndarray | None:
        """Image i (a view, do not modify) or None when it is not cached."""
        if not self.filled[i]:
            return None
        h, w = self.shapes[i]
        return self.buffer[self.offsets[i]:self.offsets[i + 1]].reshape(h, w, 3)


def _checked_index(i, n: int) -> int:
    """``i`` as an index into ``n`` samples (negative counts from the end), else ``IndexError``.

    The bound is what ends a plain ``for sample in dataset`` loop (the sequence protocol stops at
    the first ``IndexError``); without it the decode fallback's wrap-around never stops.
    """
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"sample {i} out of range for {n} samples")
    return i % n


class DetectionDataset(Dataset):
    """Original samples of a ``DetectionIndex`` and image loading for the other datasets.

    ``ds[i]`` is the full-resolution sample i. ``load_image(i, max_side)`` is what the training
    and evaluation datasets use: the RAM cache when present, else a (reduced) decode; an image
    that fails to decode is replaced by the next one, counted in ``decode_failures``.
    """

    def __init__(self, index: DetectionIndex, cache: ImageCache | None = None):
        self.index = index
        self.cache = cache
        self.decode_failures = 0

    def __len__(self) -> int:
        return len(self.index)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.index.classes

    def _decode(self, i: int, max_side: int | None) -> np.ndarray:
        if self.cache is not None and self.cache.exact:  # the evaluation rule's resize, at one size
            if max_side == self.cache.max_side and (image := self.cache.get(i)) is not None:
                return image
        elif self.cache is not None and max_side is not None and max_side <= self.cache.max_side:
            image = self.cache.get(i)
            if image is not None:
                return image
        idx = self.index
        return decode_rgb(str(idx.paths[i]), int(max(idx.sizes[i])), max_side, bool(idx.exif[i]))

    def _input(self, i: int, size: int) -> np.ndarray:
        """Image i by the evaluation rule (``yolo.imageio.model_input``), before padding."""
        if self.cache is not None and self.cache.exact and self.cache.max_side == size:
            image = self.cache.get(i)
            if image is not None:
                return image
        idx = self.index
        return read_image(str(idx.paths[i]), None, bool(idx.exif[i]))

    def load_image(self, i: int, max_side: int | None = None, exact: bool = False) -> tuple[int, np.ndarray]:
        """(index actually used, RGB image) of image i at long side >= max_side where possible.

        The image may be smaller than the original (reduced decode or cache); box coordinates
        stay in the original frame ``index.sizes[i]``: scale them by the ratio of the shapes.
        ``exact=True``: the evaluation rule (full decode, or the exact cache at ``max_side``),
        so that ``letterbox(image, max_side, index.sizes[j])`` is ``model_input(path, max_side)``.
        """
        n = len(self)
        for attempt in range(MAX_SUBSTITUTES):
            j = (i + attempt) % n
            try:
                return j, (self._input(j, max_side) if exact else self._decode(j, max_side))
            except ImageError as e:
                self.decode_failures += 1
                log.warning("decode_failed: %s (%s); using the next image instead", self.index.paths[j], e.detail)
        raise RuntimeError(f"{MAX_SUBSTITUTES} consecutive images failed to decode near index {i}; "
                           "run `python -m yolo.data check` on the dataset")

    def sample(self, i: int, image: np.ndarray | None = None) -> dict:
        boxes, labels, difficult = self.index.annotation(i)
        return {"image": image, "boxes": boxes.copy(), "labels": labels.copy(),
                "difficult": difficult.copy(), "id": str(self.index.ids[i]), "path": str(self.index.paths[i])}

    def __getitem__(self, i: int) -> dict:
        j, image = self.load_image(_checked_index(i, len(self)), None)
        return self.sample(j, image)


class EvalDataset(Dataset):
    """Letterboxed samples at a fixed size (validation / test / predict); never augmented.

    Pixels follow the one evaluation rule (``yolo.imageio.model_input``: full decode, then the
    letterbox), as the Detector and ``python -m yolo.evaluate`` do, so validation mAP is theirs.

    ``ds[i]`` (or ``ds[(i, size)]``) -> sample with image (size, size, 3), boxes in that frame,
    difficult flags kept, and ``meta`` = {id, path, orig_size (h, w), size, scale, pad_x, pad_y}
    (the letterbox parameters; map predictions back with ``boxes_from_letterbox(boxes, meta)``).
    """

    def __init__(self, base: DetectionDataset, size: int = 416):
        if size % 32:
            raise ValueError(f"size must be a multiple of 32, got {size}")
        self.base, self.size = base, int(size)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key) -> dict:
        i, size = (key[0], key[1]) if isinstance(key, (tuple, list)) else (key, self.size)
        j, image = self.base.load_image(_checked_index(i, len(self)), size, exact=True)
        orig = tuple(int(v) for v in self.base.index.sizes[j])
        out, lb = letterbox(image, size, orig)
        s = self.base.sample(j, out)
        s["boxes"] = boxes_to_letterbox(s["boxes"], lb).astype(np.float32)
        s["meta"] = {"id": s["id"], "path": s["path"], "mosaic": False, **lb.as_dict()}
        return s
