"""Everything between files on disk and a training batch.

Modules (imported lazily, so ``import yolo.data.transforms`` stays light):
    layout      detect_format, resolve_sources, default_splits, load_classes
    voc, kaggle readers of the two layouts; index: cached annotation index (DetectionIndex)
    imageio     probe_image, decode_image; problems: Problem, KINDS
    transforms  letterbox, boxes_from_letterbox, train_transforms, eval_transforms, AugConfig
    augment     TrainAugment (what train_transforms returns: one affine warp, colour jitter)
    datasets    DetectionDataset, EvalDataset, ImageCache; mosaic: TrainDataset, mosaic_layout
    multiscale  MultiScaleBatchSampler, size_for_step; collate: collate
    datamodule  VOCDataModule, build_index
    demo        write_demo, ensure_demo, demo_path; check: check_dataset; download: download_voc
CLI: ``python -m yolo.data {demo,check,download} --help``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VOCDataModule": "datamodule", "build_index": "datamodule",
    "TrainDataset": "mosaic", "mosaic_layout": "mosaic",
    "DetectionDataset": "datasets", "EvalDataset": "datasets", "ImageCache": "datasets",
    "MultiScaleBatchSampler": "multiscale", "size_for_step": "multiscale", "multiscale_sizes": "multiscale",
    "collate": "collate",
    "AugConfig": "transforms", "Letterbox": "transforms", "letterbox": "transforms",
    "letterbox_params": "transforms", "boxes_to_letterbox": "transforms", "boxes_from_letterbox": "transforms",
    "train_transforms": "transforms", "eval_transforms": "transforms",
    "DetectionIndex": "index", "Problem": "problems",
    "detect_format": "layout", "default_splits": "layout", "load_classes": "layout", "DataLayoutError": "layout",
    "write_demo": "demo", "ensure_demo": "demo", "demo_path": "demo", "DEMO_CLASSES": "demo",
    "check_dataset": "check", "DatasetReport": "check", "download_voc": "download",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"yolo.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'yolo.data' has no attribute {name!r}")
