"""Everything between files on disk and a training batch.

Modules (imported lazily, so ``import yolo.data.transforms`` stays light):
    layout      detect_format, resolve_sources, build_index, default_splits, load_classes
    voc, kaggle, yolo_txt, coco   readers of the four layouts; index: cached annotation index (DetectionIndex)
    convert     any readable layout -> voc | yolo | coco
    problems    Problem, KINDS (images are read by the core ``yolo.imageio``)
    transforms  train_transforms, eval_transforms (the letterbox is core: ``yolo.letterbox``)
    augment     TrainAugment (what train_transforms returns: one affine warp, colour jitter), AugConfig
    datasets    DetectionDataset, EvalDataset, ImageCache; mosaic: TrainDataset, mosaic_layout
    multiscale  MultiScaleBatchSampler, size_for_step; collate: collate
    datamodule  VOCDataModule (the only module here that imports Lightning)
    demo        write_demo, ensure_demo, demo_path; check: check_dataset; download: download_voc
CLI: ``python -m yolo.data {demo,check,download,convert,anchors} --help``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VOCDataModule": "datamodule", "build_index": "layout",
    "TrainDataset": "mosaic", "mosaic_layout": "mosaic",
    "DetectionDataset": "datasets", "EvalDataset": "datasets", "ImageCache": "datasets",
    "MultiScaleBatchSampler": "multiscale", "size_for_step": "multiscale", "multiscale_sizes": "multiscale",
    "collate": "collate",
    "AugConfig": "augment", "Letterbox": "yolo.letterbox", "letterbox": "yolo.letterbox",
    "letterbox_params": "yolo.letterbox", "boxes_to_letterbox": "yolo.letterbox", "boxes_from_letterbox": "yolo.letterbox",
    "train_transforms": "transforms", "eval_transforms": "transforms",
    "DetectionIndex": "index", "Problem": "problems",
    "detect_format": "layout", "default_splits": "layout", "load_classes": "layout", "DataLayoutError": "layout",
    "write_demo": "demo", "ensure_demo": "demo", "demo_path": "demo", "DEMO_CLASSES": "demo",
    "check_dataset": "check", "DatasetReport": "check", "download_voc": "download",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = _EXPORTS[name]
        return getattr(importlib.import_module(module if "." in module else f"yolo.data.{module}"), name)
    raise AttributeError(f"module 'yolo.data' has no attribute {name!r}")
