"""Pure box geometry on tensors. torchvision.ops does the work where it has the op.

Formats:
    xyxy   (Tensor[N, 4]) as (x1, y1, x2, y2), corners, pixels unless said otherwise
    cxcywh (Tensor[N, 4]) as (cx, cy, w, h), centre and size
    wh     (Tensor[N, 2]) as (w, h), a shape without a position
"Normalised" means divided by the image width (x) and height (y), so values lie in [0, 1].
Leading batch dimensions are allowed wherever the docstring says ``[..., 4]``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert
from torchvision.ops import box_iou as _tv_box_iou


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """boxes (Tensor[..., 4]) in (x1, y1, x2, y2) -> (cx, cy, w, h)."""
    return box_convert(boxes, in_fmt="xyxy", out_fmt="cxcywh")


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """boxes (Tensor[..., 4]) in (cx, cy, w, h) -> (x1, y1, x2, y2)."""
    return box_convert(boxes, in_fmt="cxcywh", out_fmt="xyxy")


def normalize(boxes: Tensor, width: float, height: float) -> Tensor:
    """Pixel boxes (Tensor[..., 4], xyxy or cxcywh) -> fractions of the image size."""
    scale = boxes.new_tensor([width, height, width, height])
    return boxes / scale


def denormalize(boxes: Tensor, width: float, height: float) -> Tensor:
    """Normalised boxes (Tensor[..., 4], xyxy or cxcywh) -> pixels."""
    scale = boxes.new_tensor([width, height, width, height])
    return boxes * scale


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU. boxes1 (Tensor[N, 4]), boxes2 (Tensor[M, 4]) in xyxy -> Tensor[N, M]."""
    return _tv_box_iou(boxes1, boxes2)


def elementwise_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-9) -> Tensor:
    """IoU of matching pairs. boxes1, boxes2 (Tensor[..., 4]) in xyxy -> Tensor[...]."""
    lt = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    rb = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    return inter / (area1 + area2 - inter + eps)


def wh_iou(wh1: Tensor, wh2: Tensor) -> Tensor:
    """Shape IoU of boxes sharing a centre. wh1 (Tensor[N, 2]), wh2 (Tensor[M, 2]) -> Tensor[N, M].

    This is how YOLOv3 compares a ground-truth box with an anchor: only sizes matter.
    """
    inter = torch.minimum(wh1[:, None, 0], wh2[None, :, 0]) * torch.minimum(
        wh1[:, None, 1], wh2[None, :, 1]
    )
    union = wh1[:, None].prod(-1) + wh2[None, :].prod(-1) - inter
    return inter / union.clamp(min=1e-12)
