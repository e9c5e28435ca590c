"""Training samples: Mosaic (probability p) or letterbox, then the training augmentation.

Mosaic (as in YOLOv4/v5): four images, each scaled so its long side is ``s``, meet at a random
centre (xc, yc) in [s/2, 3s/2]^2 of a 2s x 2s canvas (image 0 top-left of the centre, 1 top-right,
2 bottom-left, 3 bottom-right); the central s x s window [s/2, 3s/2]^2 is the sample. Only that
window is ever rendered: ``mosaic_layout`` (pure) gives each image's rectangle in window pixels,
and ``render`` copies each image's visible part there (images are resized once to their placed
size and reused across the batch; one that is not is warped into its visible part by
``place_image``). Boxes are scaled, shifted and clipped to their image's visible part, and
slivers are dropped (``box_candidates``). Then ``train_transforms`` (``yolo.data.augment``: one
warp for zoom/shift/rotation/shear/flip, then colour) runs on the s x s result. A letterboxed
(non-mosaic) sample is never rendered on its own: its resize and padding are folded into that
one warp, straight from the decoded image.

Keys: ``ds[(index, size, seed)]``; the multi-scale batch sampler yields such keys so the batch
size and every random choice are reproducible from the run's seed. ``ds[(index, size)]`` and
``ds[index]`` draw a seed from (seed, index).

Mosaic partners (the three extra images) are drawn from the whole dataset when the images are in
the RAM cache, and otherwise from the other images of the same batch (``__getitems__``, which the
DataLoader calls with a whole batch of keys): each image is then decoded once per batch instead of
up to four times, the trick that makes Ultralytics' loader fast (it draws partners from a buffer
of recently loaded images). Unlike a buffer, the choice depends only on the batch's keys, so it is
reproducible whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from torch.utils.data import Dataset

from yolo.data.augment import AugConfig, box_candidates, placement_matrix
from yolo.data.datasets import DetectionDataset
from yolo.data.multiscale import mix_seed
from yolo.data.transforms import place_image, train_transforms
from yolo.letterbox import FILL, letterbox_params


def mosaic_layout(shapes: np.ndarray, size: int, centre: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Where the four images of a mosaic go in the s x s output window.

    Args:
        shapes (ndarray[4, 2]): (h, w) of the four images (any scale: only the aspect matters).
        size: s, the output side; the canvas is 2s x 2s and the window is [s/2, 3s/2]^2.
        centre: (xc, yc) integer canvas pixels in [s/2, 3s/2], where the four images meet.

    Returns:
        placed (ndarray[4, 4] int64): (x0, y0, x1, y1) of each whole image, scaled to long side s,
            in window pixels (may extend past the window);
        visible (ndarray[4, 4] int64): ``placed`` clipped to the window [0, s]^2 (empty if x1 <= x0).
    """
    hw = [(max(1, round(h * (size / max(h, w)))), max(1, round(w * (size / max(h, w)))))
          for h, w in np.asarray(shapes, dtype=np.float64).reshape(4, 2).tolist()]
    xc, yc = int(centre[0]) - size // 2, int(centre[1]) - size // 2  # the centre in window pixels
    corners = ((xc - hw[0][1], yc - hw[0][0]), (xc, yc - hw[1][0]), (xc - hw[2][1], yc), (xc, yc))
    placed = np.array([(x, y, x + w, y + h) for (x, y), (h, w) in zip(corners, hw)], dtype=np.int64)
    return placed, np.minimum(np.maximum(placed, 0), size)


def place_boxes(boxes: np.ndarray, owner: np.ndarray, shapes: np.ndarray, placed: np.ndarray,
                visible: np.ndarray, cfg: AugConfig) -> tuple[np.ndarray, np.ndarray]:
    """Map boxes into their placed images and clip them to the visible parts, vectorised.

    Args:
        boxes (ndarray[N, 4]): pixel xyxy in each image's original frame.
        owner (ndarray[N] int): which placed image (row of ``placed``) each box belongs to.
        shapes (ndarray[P, 2]): (h, w) original frame of each placed image.
        placed, visible (ndarray[P, 4]): as from ``mosaic_layout``.

    Returns:
        boxes (ndarray[K, 4] float32) in window pixels and keep (ndarray[N] bool).
    """
    if not len(boxes):
        return np.zeros((0, 4), np.float32), np.zeros(0, bool)
    p, v = placed[owner].astype(np.float64), visible[owner]
    scale = (p[:, 2:] - p[:, :2]) / shapes[owner, ::-1]  # (sx, sy) per box
    moved = (np.asarray(boxes, np.float64).reshape(-1, 2, 2) * scale[:, None] + p[:, None, :2]).reshape(-1, 4)
    clipped = np.minimum(np.maximum(moved, v[:, [0, 1, 0, 1]]), v[:, [2, 3, 2, 3]])
    keep = box_candidates(moved, clipped, cfg.min_side, cfg.min_visibility, cfg.max_aspect)
    return clipped[keep].astype(np.float32), keep


class TrainDataset(Dataset):
    """Training samples (the Mosaic wrapper around a ``DetectionDataset``).

    ``ds[(index, size, seed)]`` -> sample at ``size`` x ``size``: with probability ``mosaic_p``
    (decided by ``uses_mosaic(seed)``) a mosaic of image ``index`` and three random others,
    else image ``index`` letterboxed; then ``train_transforms(size, aug)``.
    ``meta`` = {id, path, orig_size, size, mosaic, parts (indices used)}.
    ``partners``: where mosaic partners come from: "dataset" (uniform), "batch" (the batch's other
    images, when called through ``__getitems__`` with at least 4 distinct images), or "auto"
    ("dataset" when the RAM cache holds the images at this size, else "batch").
    """

    def __init__(self, base: DetectionDataset, size: int = 416, mosaic_p: float = 0.75,
                 aug: AugConfig | None = None, seed: int = 0, partners: str = "auto"):
        if not 0.0 <= mosaic_p <= 1.0:
            raise ValueError(f"mosaic_p must be in [0, 1], got {mosaic_p}")
        self.base, self.size, self.mosaic_p, self.seed = base, int(size), float(mosaic_p), int(seed)
        self.aug = aug or AugConfig()
        if partners not in ("auto", "dataset", "batch"):
            raise ValueError(f"partners must be 'auto', 'dataset' or 'batch', got {partners!r}")
        self.partners = partners
        self._pipelines: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.base)

    def pipeline(self, size: int):
        if size not in self._pipelines:
            self._pipelines[size] = train_transforms(size, self.aug)
        return self._pipelines[size]

    def uses_mosaic(self, seed: int) -> bool:
        """The mosaic decision of the sample drawn with ``seed`` (its generator's first draw)."""
        return bool(np.random.default_rng(seed).random() < self.mosaic_p)

    def __getitem__(self, key) -> dict:
        if isinstance(key, (tuple, list)):
            index, size = int(key[0]), int(key[1])
            seed = int(key[2]) if len(key) > 2 else mix_seed(self.seed, index, size)
        else:
            index, size, seed = int(key), self.size, mix_seed(self.seed, int(key))
        return self.sample(index, size, seed)

    def __getitems__(self, keys: Sequence) -> list[dict]:
        """A whole batch of keys (the DataLoader's batched fetch): images decoded once per batch."""
        keys = [tuple(k) if isinstance(k, (tuple, list)) else (int(k), self.size) for k in keys]
        keys = [(int(k[0]), int(k[1]), int(k[2]) if len(k) > 2 else mix_seed(self.seed, k[0], k[1])) for k in keys]
        pool: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
        mates = sorted({k[0] for k in keys})
        use_batch = self._partner_mode(keys[0][1]) == "batch" and len(mates) >= 4
        return [self.sample(i, size, seed, pool=pool, mates=mates if use_batch else None)
                for i, size, seed in keys]

    def _partner_mode(self, size: int) -> str:
        if self.partners != "auto":
            return self.partners
        cache = self.base.cache
        return "dataset" if cache is not None and size <= cache.max_side and cache.filled.all() else "batch"

    def sample(self, index: int, size: int, seed: int, mosaic: bool | None = None,
               augment: bool = True, pool: dict | None = None, mates: Sequence[int] | None = None) -> dict:
        """The training sample for (index, size, seed).

        ``mosaic`` forces the choice and ``augment=False`` stops before ``train_transforms`` (the
        dashboard shows both). ``pool`` caches decoded images across calls ({(index, size):
        (index used, image)}); ``mates`` (at least 4
        distinct indices, including ``index``) restricts mosaic partners to them.
        """
        if size % 32:
            raise ValueError(f"size must be a multiple of 32, got {size}")
        rng = np.random.default_rng(seed)
        use_mosaic = bool(rng.random() < self.mosaic_p)  # always the first draw (see uses_mosaic)
        if mosaic is not None:
            use_mosaic = mosaic
        if use_mosaic:
            if mates is not None:
                others = [m for m in mates if m != index]
                picks = rng.choice(len(others), 3, replace=len(others) < 3)
                parts = [index, *(others[int(j)] for j in picks)]
            else:
                parts = [index, *(int(j) for j in rng.integers(0, len(self), 3))]
            centre = rng.integers(size // 2, size + size // 2 + 1, 2)
        else:
            parts, centre = [index], None
        images, used, placed, visible = self._gather(parts, size, centre, pool, reuse=mates is not None)
        boxes, labels, difficult = self._boxes(used, placed, visible)
        if augment:
            pipe = self.pipeline(size)
            pipe.set_random_state(rng)
            if use_mosaic:
                out = pipe(image=render(images, placed, visible, size), bboxes=boxes)
            else:  # the letterbox is folded into the augmentation's warp
                out = pipe(image=images[0], bboxes=boxes, pre=placement_matrix(images[0].shape, placed[0]))
            canvas, boxes, kept = out["image"], out["bboxes"], out["box_ids"]
            labels, difficult = labels[kept], difficult[kept]
        else:
            canvas = render(images, placed, visible, size)
        main = used[0]
        idx = self.base.index
        return {"image": canvas, "boxes": boxes, "labels": labels, "difficult": difficult,
                "id": str(idx.ids[main]), "path": str(idx.paths[main]),
                "meta": {"id": str(idx.ids[main]), "path": str(idx.paths[main]),
                         "orig_size": tuple(int(v) for v in idx.sizes[main]), "size": size,
                         "mosaic": use_mosaic, "parts": used}}

    def _gather(self, parts: list[int], size: int, centre, pool: dict | None = None, reuse: bool = False):
        """The images of a sample and where they go: (images, indices used, placed, visible).

        ``pool`` ({(index, size): (index used, image)}) keeps decoded images across the samples
        of a batch. A mosaic image that is not already at its placed size is resized once and
        kept so in the pool when ``reuse`` (batch partners: each image serves about 3 samples),
        so that placing it is a plain copy; otherwise ``render`` warps its visible part.
        """
        pool = {} if pool is None else pool
        entries = []
        for i in parts:
            if (i, size) not in pool:
                pool[i, size] = self.base.load_image(i, size)
            entries.append(pool[i, size])
        used = [j for j, _ in entries]
        shapes = self.base.index.sizes[used].astype(np.float64)
        if centre is None:
            lb = letterbox_params(tuple(shapes[0]), size)
            nh, nw = lb.new_size
            placed = np.array([[lb.pad_x, lb.pad_y, lb.pad_x + nw, lb.pad_y + nh]], dtype=np.int64)
            return [entries[0][1]], used, placed, placed
        placed, visible = mosaic_layout(shapes, size, centre)
        images = []
        for i, (j, image), p in zip(parts, entries, placed):
            ph, pw = int(p[3] - p[1]), int(p[2] - p[0])
            if reuse and image.shape[:2] != (ph, pw):
                image = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_LINEAR)
                pool[i, size] = (j, image)
            images.append(image)
        return images, used, placed, visible

    def _boxes(self, used: list[int], placed: np.ndarray, visible: np.ndarray):
        """Boxes (in the s x s frame), labels and difficult flags of the placed images."""
        idx = self.base.index
        shapes = idx.sizes[used].astype(np.float64)
        starts, ends = idx.offsets[used], idx.offsets[np.asarray(used) + 1]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]).astype(np.int64)
        owner = np.repeat(np.arange(len(used)), ends - starts)
        boxes, keep = place_boxes(idx.boxes[rows], owner, shapes, placed, visible, self.aug)
        rows = rows[keep]
        return boxes, idx.labels[rows], idx.difficult[rows]


def render(images: Sequence[np.ndarray], placed: np.ndarray, visible: np.ndarray, size: int) -> np.ndarray:
    """The s x s canvas (gray ``FILL``) with each image filling its ``placed`` rectangle, only
    its ``visible`` part written: a plain copy when the image is already at the placed size,
    else one warp of the visible part (``place_image``)."""
    canvas = np.full((size, size, 3), FILL, dtype=np.uint8)
    for image, p, v in zip(images, placed.tolist(), visible.tolist()):
        x0, y0, x1, y1 = v
        if x1 <= x0 or y1 <= y0:
            continue
        if image.shape[:2] == (p[3] - p[1], p[2] - p[0]):
            canvas[y0:y1, x0:x1] = image[y0 - p[1]:y1 - p[1], x0 - p[0]:x1 - p[0]]
        else:
            place_image(canvas, image, np.asarray(p), v)
    return canvas
