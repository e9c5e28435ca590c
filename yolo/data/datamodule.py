"""``VOCDataModule``: datasets and loaders for training, validation, test and prediction.

Distributed training: the training loader's ``MultiScaleBatchSampler`` shards indices by rank
itself (rank and world size from ``self.trainer``) and keeps the batch size (image size)
identical across ranks, so the Trainer must be created with ``use_distributed_sampler=False``
(otherwise Lightning would replace the sampler). Lightning's per-epoch ``set_epoch`` reaches it
through ``loader.batch_sampler.sampler`` (new shuffle and sizes every epoch).
Validation/test/predict loaders shard with ``DistributedSampler(shuffle=False)`` when
world_size > 1 (a few samples may repeat to even out the ranks, as usual).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler

from yolo.data.augment import AugConfig
from yolo.data.collate import collate
from yolo.data.datasets import DetectionDataset, EvalDataset, ImageCache
from yolo.data.layout import DataLayoutError, build_index, default_splits, detect_format, load_classes
from yolo.data.mosaic import TrainDataset
from yolo.data.multiscale import MultiScaleBatchSampler, multiscale_sizes
from yolo.data.problems import summarize

log = logging.getLogger(__name__)


def available_memory() -> int | None:
    """Bytes of memory available (Linux /proc/meminfo MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def worker_init(_: int) -> None:
    """DataLoader worker set-up: one OpenCV thread per worker (workers are the parallelism)."""
    cv2.setNumThreads(0)


class VOCDataModule(pl.LightningDataModule):
    """Pascal VOC (or any VOC/Kaggle-layout dataset) for YOLOv3 training with Lightning.

    Args:
        roots: dataset folder(s): a VOCdevkit parent, VOCdevkit itself, a folder in VOC layout,
            or a Kaggle-layout folder (format detected; see ``yolo.data.layout``).
        format: "auto", "voc", "yolo", "coco" or "kaggle" (a check when not "auto").
        train_sets / val_sets / test_sets / predict_sets: split specs ("2007/trainval", "val",
            "train.csv"); None = ``default_splits`` (07+12 trainval / 07 test for full VOC).
            predict defaults to the test sets.
        classes: class names; None = the dataset's classes.txt, else VOC's 20.
        use_difficult: train on objects marked difficult (evaluation always keeps them, flagged).
        batch_size: images per batch (per process).
        sizes: training sizes, one drawn per batch (multiples of 32; default 320..608).
        val_size: the fixed evaluation size (val/test/predict).
        mosaic_p: probability that a training sample is a mosaic (never for evaluation).
        aug: training augmentation knobs (``AugConfig``).
        workers, pin_memory (None = when CUDA is available), persistent_workers: DataLoader.
        cache_ram: decode every image once, resized to long side max(sizes) (val: val_size),
            and keep them in RAM (~0.4 MB per VOC image at 416; shared with fork workers).
        cache_dir: where annotation indexes go (default: beside the data, or
            ``default_cache_root()`` when that is read-only).
        seed: drives shuffling, batch sizes and every augmentation.
        progress: progress bars while indexing/caching.

    Batches are dicts (see ``yolo.data.collate``). Trainer: ``use_distributed_sampler=False``.
    """

    def __init__(self, roots: str | Path | Sequence[str | Path], format: str = "auto",
                 train_sets: Sequence[str] | None = None, val_sets: Sequence[str] | None = None,
                 test_sets: Sequence[str] | None = None, predict_sets: Sequence[str] | None = None,
                 classes: Sequence[str] | None = None, use_difficult: bool = False, batch_size: int = 16,
                 sizes: Sequence[int] = multiscale_sizes(), val_size: int = 416, mosaic_p: float = 0.75,
                 aug: AugConfig | None = None, workers: int = 4, pin_memory: bool | None = None,
                 persistent_workers: bool = True, cache_ram: bool = False, cache_dir: str | Path | None = None,
                 seed: int = 0, progress: bool = True):
        super().__init__()
        self.roots = [Path(roots).expanduser()] if isinstance(roots, (str, Path)) else [Path(r).expanduser() for r in roots]
        if not self.roots:
            raise DataLayoutError("no dataset root given")
        formats = {detect_format(r) for r in self.roots}
        if format != "auto" and formats != {format}:
            raise DataLayoutError(f"format {format!r} requested but {self.roots} look like {sorted(formats)}")
        if any(s % 32 for s in sizes) or val_size % 32:
            raise ValueError(f"sizes and val_size must be multiples of 32, got {tuple(sizes)} and {val_size}")
        given = {"train": train_sets, "val": val_sets, "test": test_sets}
        defaults = default_splits(self.roots[0]) if not all(given.values()) else {}
        self.sets = {k: tuple(v or defaults[k]) for k, v in given.items()}
        self.sets["predict"] = tuple(predict_sets or self.sets["test"])
        self._classes = load_classes(self.roots[0], classes)
        self.use_difficult, self.batch_size = use_difficult, int(batch_size)
        self.sizes, self.val_size, self.mosaic_p = tuple(int(s) for s in sizes), int(val_size), float(mosaic_p)
        self.aug = aug or AugConfig()
        self.workers = int(workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.cache_ram, self.cache_dir, self.seed, self.progress = cache_ram, cache_dir, int(seed), progress
        self.indexes: dict[str, DetectionIndex] = {}
        self.datasets: dict[str, object] = {}

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    # ----------------------------------------------------------------------------- setup
    def _index(self, stage: str) -> DetectionIndex:
        if stage not in self.indexes:
            index = build_index(self.roots, self.sets[stage], self._classes, self.cache_dir, self.progress)
            if index.problems:
                log.warning("%s data %s: %s; details: python -m yolo.data check %s", stage,
                            ", ".join(self.sets[stage]), summarize(index.problems), self.roots[0])
            if not len(index):
                raise DataLayoutError(f"no usable images in {stage} sets {self.sets[stage]}")
            self.indexes[stage] = index
        return self.indexes[stage]

    def _base(self, stage: str, max_side: int, train: bool = False) -> DetectionDataset:
        index = self._index(stage)
        if train and not self.use_difficult:
            index = index.without_difficult()
        cache = None
        if self.cache_ram:
            cache = ImageCache(index, max_side, exact=not train)
            available = available_memory()
            if available is not None and cache.nbytes > 0.8 * available:
                log.warning("cache_ram: %s images need %.1f GiB, only %.1f GiB of memory is available; "
                            "not caching (lower the sizes or use fewer images)", stage,
                            cache.nbytes / 2**30, available / 2**30)
                cache = None
            else:
                cache.fill(max(1, self.workers), self.progress)
        return DetectionDataset(index, cache)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and "train" not in self.datasets:
            self.datasets["train"] = TrainDataset(self._base("train", max(self.sizes), train=True),
                                                  self.sizes[0], self.mosaic_p, self.aug, self.seed)
        if stage in (None, "fit", "validate") and "val" not in self.datasets and self.sets["val"]:
            self.datasets["val"] = EvalDataset(self._base("val", self.val_size), self.val_size)
        for name in ("test", "predict"):
            if stage in (None, name) and name not in self.datasets and self.sets[name]:
                self.datasets[name] = EvalDataset(self._base(name, self.val_size), self.val_size)

    # --------------------------------------------------------------------------- loaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _loader_kwargs(self) -> dict:
        return {"collate_fn": collate, "num_workers": self.workers, "pin_memory": self.pin_memory,
                "persistent_workers": self.persistent_workers and self.workers > 0,
                "worker_init_fn": worker_init if self.workers > 0 else None}

    def train_batch_sampler(self) -> MultiScaleBatchSampler:
        rank, world = self._rank_world()
        return MultiScaleBatchSampler(len(self.datasets["train"]), self.batch_size, self.sizes, self.seed,
                                      rank, world, shuffle=True, drop_last=True)

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return DataLoader(self.datasets["train"], batch_sampler=self.train_batch_sampler(), **self._loader_kwargs())

    def _eval_loader(self, name: str) -> DataLoader:
        self.setup(name if name in ("test", "predict") else "validate")
        if name not in self.datasets:
            raise DataLayoutError(f"no {name} sets configured")
        dataset = self.datasets[name]
        rank, world = self._rank_world()
        sampler = DistributedSampler(dataset, world, rank, shuffle=False) if world > 1 else None
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, sampler=sampler, **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")
