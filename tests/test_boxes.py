"""Box geometry on tiny hand-built tensors with known answers."""

from __future__ import annotations

import torch

from yolo.boxes import (
    box_iou, cxcywh_to_xyxy, denormalize, elementwise_iou, normalize, wh_iou, xyxy_to_cxcywh,
)


def test_conversions_round_trip_and_values():
    xyxy = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert torch.equal(xyxy_to_cxcywh(xyxy), torch.tensor([[20.0, 40.0, 20.0, 40.0]]))
    assert torch.equal(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy)
    n = normalize(xyxy, 100, 200)
    assert torch.allclose(n, torch.tensor([[0.1, 0.1, 0.3, 0.3]]))
    assert torch.allclose(denormalize(n, 100, 200), xyxy)


def test_ious_hand_worked():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]])
    # overlap 1x1 = 1, union 4 + 4 - 1 = 7
    assert torch.allclose(box_iou(a, b), torch.tensor([[1 / 7, 0.0, 1.0]]))
    assert torch.allclose(elementwise_iou(a.expand(3, 4), b), torch.tensor([1 / 7, 0.0, 1.0]))
    # shapes only: (2, 1) vs (1, 2) share a 1x1 core: 1 / (2 + 2 - 1)
    assert torch.allclose(wh_iou(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 2.0], [2.0, 1.0]])),
                          torch.tensor([[1 / 3, 1.0]]))
