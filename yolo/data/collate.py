"""Samples -> a batch dict (the contract the LightningModule consumes).

Batch:
    images     Tensor[B, 3, S, S] uint8 RGB (S = the batch's size, a multiple of 32), in
               channels_last memory layout (a free view of the stacked HWC images; NCHW-strided
               copies cost ~5 ms per batch of 16 at 416 on one core: call .contiguous() if needed)
    boxes      Tensor[N, 4] float32 pixel (x1, y1, x2, y2) in the batch image frame
    labels     Tensor[N] int64
    batch_idx  Tensor[N] int64: which image each box belongs to
    difficult  Tensor[N] bool
    meta       list of B dicts: id, path, orig_size (h, w), size, mosaic, and for evaluation
               batches the letterbox parameters scale, pad_x, pad_y (see
               ``transforms.boxes_from_letterbox``); training batches add ``parts``.
The module normalises boxes (divide by S) and encodes targets itself, on its device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def collate(samples: Sequence[dict]) -> dict:
    """Stack samples of one size into a batch (see the module docstring)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    shapes = {s["image"].shape for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"all images of a batch must have one shape, got {sorted(shapes)}")
    images = torch.from_numpy(np.stack([s["image"] for s in samples])).permute(0, 3, 1, 2)
    counts = [len(s["boxes"]) for s in samples]
    boxes = np.concatenate([np.asarray(s["boxes"], np.float32).reshape(-1, 4) for s in samples])
    labels = np.concatenate([np.asarray(s["labels"], np.int64).reshape(-1) for s in samples])
    difficult = np.concatenate([np.asarray(s["difficult"], bool).reshape(-1) for s in samples])
    meta = [s.get("meta") or {"id": s.get("id"), "path": s.get("path"),
                              "orig_size": tuple(s["image"].shape[:2])} for s in samples]
    return {
        "images": images,
        "boxes": torch.from_numpy(boxes),
        "labels": torch.from_numpy(labels),
        "batch_idx": torch.repeat_interleave(torch.arange(len(samples)), torch.tensor(counts)),
        "difficult": torch.from_numpy(difficult),
        "meta": meta,
    }
