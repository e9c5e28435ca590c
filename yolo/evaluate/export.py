"""Exports other tools read: COCO-format results and ground truth JSON, CSV tables.

COCO boxes are [x, y, width, height] in pixels; category ids are class index + 1 (COCO's ids start
at 1); image ids are positions in the split (the file names are in the ground truth's "images").
Difficult VOC objects are written as ``iscrowd: 1`` so COCO tools ignore them, as VOC does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    b = boxes.reshape(-1, 4).double()
    return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist()


def coco_results(detections: Sequence[dict]) -> list[dict[str, Any]]:
    """Per-image detections -> COCO results: [{"image_id", "category_id", "bbox", "score"}]."""
    out = []
    for i, d in enumerate(detections):
        for box, label, score in zip(_xywh(d["boxes"]), d["labels"].tolist(), d["scores"].tolist()):
            out.append({"image_id": i, "category_id": int(label) + 1, "bbox": [round(v, 3) for v in box],
                        "score": round(float(score), 6)})
    return out


def coco_ground_truth(ground_truths: Sequence[dict], image_ids: Sequence[str], sizes: torch.Tensor,
                      class_names: Sequence[str]) -> dict[str, Any]:
    """Per-image ground truth -> a COCO annotation file; ``sizes`` (Tensor[N, 2]) is (height, width)."""
    images = [{"id": i, "file_name": str(name), "height": int(h), "width": int(w)}
              for i, (name, (h, w)) in enumerate(zip(image_ids, sizes.tolist()))]
    annotations = []
    for i, g in enumerate(ground_truths):
        difficult = g.get("difficult")
        flags = difficult.tolist() if difficult is not None else [False] * int(g["labels"].numel())
        for box, label, hard in zip(_xywh(g["boxes"]), g["labels"].tolist(), flags):
            x, y, w, h = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": i, "category_id": int(label) + 1, "bbox": box,
                "area": w * h, "iscrowd": int(bool(hard)),
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            })
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_json(data: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=float))
    return path


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
