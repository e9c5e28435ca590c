"""The YOLOv3 loss of the course, made safe: float32 inside autocast, no in-place edits, no overflow.

Per scale, over the cells the targets mark (see ``yolo.targets``):
    noobj  BCE-with-logits of the objectness logit against 0, cells with target 0
    obj    the objectness against the IoU of the decoded box with its target box (IoU detached),
           cells with target 1: BCE-with-logits by default, or the course's MSE of sigmoid(obj)
           (LossConfig.obj_loss="mse"), whose gradient 2(s - iou) s (1 - s) vanishes once s is
           small, so the 10x no-object term can pin owner cells near 0 for good
    box    MSE of (sigmoid(tx), sigmoid(ty), tw, th) against (x, y, log(w / anchor), log(h / anchor)),
           cells with target 1
    cls    cross-entropy of the class logits, cells with target 1 (optionally label-smoothed)
    iou    (``--lambda-iou``, off by default; not the course's) 1 - GIoU or CIoU of the decoded box with its target
           box (torchvision.ops), cells with target 1, beside the MSE box term
Each term is a mean over its cells (MSE also over the box's four numbers, as nn.MSELoss does),
summed over the three scales (the objectness terms optionally weighted per scale,
``LossConfig.obj_balance``). Ignored cells (-1) enter no term. A term with no cells is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import complete_box_iou_loss, generalized_box_iou_loss

from yolo.boxes import cxcywh_to_xyxy, elementwise_iou
from yolo.config import ANCHORS, LOSS_IOU, LOSS_TERMS, LOSS_TOTAL, LossConfig

# Per-scale weights of the objectness terms with LossConfig.obj_balance, strides 32, 16, 8
# (YOLOv5's 4.0 / 1.0 / 0.4 for P3 / P4 / P5, i.e. the finest grid weighted most).
OBJ_BALANCE: tuple[float, float, float] = (0.4, 1.0, 4.0)
IOU_LOSSES = {"giou": generalized_box_iou_loss, "ciou": complete_box_iou_loss}


def _masked_mean(values: Tensor, like: Tensor) -> Tensor:
    """Mean of ``values``; an exact zero still attached to ``like``'s graph when there are none."""
    return values.mean() if values.numel() else like.sum() * 0.0


def _objectness(logits: Tensor, iou: Tensor, kind: str) -> Tensor:
    """Per-cell objectness loss of the owner cells against their (detached) IoU."""
    if kind == "mse":
        return F.mse_loss(logits.sigmoid(), iou, reduction="none")
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, iou, reduction="none")
    raise ValueError(f"unknown objectness loss {kind!r}: use 'mse' or 'bce'")


def scale_terms(
    output: Tensor, target: Tensor, anchors: Tensor, max_log_wh: float, obj_loss: str = "bce",
    label_smoothing: float = 0.0, iou_loss: str | None = None,
) -> dict[str, Tensor]:
    """Unweighted loss terms of one scale.

    Args:
        output (Tensor[B, 3, S, S, 5 + C]): raw predictions (any float dtype; computed in float32).
        target (Tensor[B, 3, S, S, 6]): encoded targets.
        anchors (Tensor[3, 2]): this scale's anchors as fractions of the image.
        max_log_wh: clamp of tw, th before exp() in the IoU of the objectness term.
        obj_loss: "mse" (the course: MSE of sigmoid(obj) to the IoU) or "bce" (BCE-with-logits to it).
        label_smoothing: of the class cross-entropy, in [0, 1) (0: the course).
        iou_loss: None, "giou" or "ciou": also return "loss_iou", the mean box-IoU loss of the
            owner cells (decoded boxes in cell units, gradients through sigmoid(tx, ty) and exp(tw, th)).

    Returns:
        {"loss_box", "loss_obj", "loss_noobj", "loss_cls"} (+ "loss_iou"): scalar float32 tensors.
    """
    output, target = output.float(), target.float()
    size = output.shape[2]
    obj = target[..., 0] == 1
    noobj = target[..., 0] == 0

    pred = output[obj]  # (K, 5+C)
    true = target[obj]  # (K, 6)
    anchor_cells = (anchors * size)[None, :, None, None].expand(*obj.shape, 2)[obj]  # (K, 2) cells

    pred_xy = pred[:, 1:3].sigmoid()
    pred_wh_cells = pred[:, 3:5].clamp(max=max_log_wh).exp() * anchor_cells
    with torch.no_grad():
        iou = elementwise_iou(
            cxcywh_to_xyxy(torch.cat((pred_xy, pred_wh_cells), 1)),
            cxcywh_to_xyxy(true[:, 1:5]),
        )
    box_pred = torch.cat((pred_xy, pred[:, 3:5]), dim=1)
    box_true = torch.cat((true[:, 1:3], torch.log(1e-16 + true[:, 3:5] / anchor_cells)), dim=1)

    terms = {
        "loss_box": _masked_mean(F.mse_loss(box_pred, box_true, reduction="none"), output),
        "loss_obj": _masked_mean(_objectness(pred[:, 0], iou, obj_loss), output),
        "loss_noobj": _masked_mean(
            F.binary_cross_entropy_with_logits(
                output[..., 0][noobj], torch.zeros_like(output[..., 0][noobj]), reduction="none"
            ),
            output,
        ),
        "loss_cls": _masked_mean(
            F.cross_entropy(pred[:, 5:], true[:, 5].long(), reduction="none",
                            label_smoothing=label_smoothing),
            output,
        ),
    }
    if iou_loss is not None:
        boxes = cxcywh_to_xyxy(torch.cat((pred_xy, pred_wh_cells), 1))
        terms[LOSS_IOU] = _masked_mean(
            IOU_LOSSES[iou_loss](boxes, cxcywh_to_xyxy(true[:, 1:5]), reduction="none"), output
        )
    return terms


class YoloLoss(nn.Module):
    """``loss(outputs, targets)`` -> {"loss": weighted total, "loss_box", "loss_obj", ...}.

    The named terms are sums over scales (objectness terms weighted per scale with ``obj_balance``);
    "loss" is lambda_box * box + lambda_obj * obj + lambda_noobj * noobj + lambda_class * cls
    (+ lambda_iou * iou when lambda_iou > 0).
    Inputs are never modified; everything runs in float32 with autocast disabled.
    """

    def __init__(self, config: LossConfig | None = None, anchors: Sequence = ANCHORS) -> None:
        super().__init__()
        self.config = config or LossConfig()
        self.register_buffer("anchors", torch.as_tensor(anchors, dtype=torch.float32), persistent=False)

    def forward(self, outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> dict[str, Tensor]:
        c = self.config
        iou_loss = c.iou_loss if c.lambda_iou > 0 else None
        device_type = outputs[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            per_scale = [
                scale_terms(o, t, self.anchors[s], c.max_log_wh, c.obj_loss, c.label_smoothing,
                            iou_loss)
                for s, (o, t) in enumerate(zip(outputs, targets))
            ]
        if c.obj_balance:
            for weight, scale in zip(OBJ_BALANCE, per_scale):
                scale["loss_obj"] = weight * scale["loss_obj"]
                scale["loss_noobj"] = weight * scale["loss_noobj"]
        names = (*LOSS_TERMS, LOSS_IOU) if iou_loss else LOSS_TERMS
        terms = {name: sum(scale[name] for scale in per_scale) for name in names}
        terms[LOSS_TOTAL] = (
            c.lambda_box * terms["loss_box"]
            + c.lambda_obj * terms["loss_obj"]
            + c.lambda_noobj * terms["loss_noobj"]
            + c.lambda_class * terms["loss_cls"]
        )
        if iou_loss:
            terms[LOSS_TOTAL] = terms[LOSS_TOTAL] + c.lambda_iou * terms[LOSS_IOU]
        return terms
