"""Letterbox (yolo.letterbox): parameters, box round trip, the image, ``eval_transforms`` being the
letterbox itself, and Albumentations' own LongestMaxSize + PadIfNeeded giving the same geometry."""

from __future__ import annotations

import numpy as np
import torch

from yolo.data.transforms import eval_transforms
from yolo.letterbox import FILL, boxes_from_letterbox, boxes_to_letterbox, letterbox, letterbox_params


def test_letterbox_params_and_round_trip():
    lb = letterbox_params((375, 500), 416)
    assert (lb.scale, lb.pad_x, lb.pad_y, lb.new_size) == (416 / 500, 0, 52, (312, 416))
    boxes = np.array([[0, 0, 500, 375], [10.5, 20, 30, 40]], np.float32)
    there = boxes_to_letterbox(boxes, lb)
    np.testing.assert_allclose(there[0], [0, 52, 416, 364])
    np.testing.assert_allclose(boxes_from_letterbox(there, lb), boxes, atol=1e-4)
    t = torch.as_tensor(there)
    back = boxes_from_letterbox(t, lb.as_dict())
    assert isinstance(back, torch.Tensor) and torch.allclose(back, torch.as_tensor(boxes), atol=1e-4)
    clipped = boxes_from_letterbox(np.array([[-10, 0, 430, 420]], np.float32), lb)
    np.testing.assert_allclose(clipped, [[0, 0, 500, 375]])


def test_letterbox_image_and_eval_transforms_agree():
    import albumentations as A
    import cv2

    image = np.random.default_rng(0).integers(0, 255, (300, 200, 3)).astype(np.uint8)
    out, lb = letterbox(image, 256)
    nh, nw = lb.new_size
    assert out.shape == (256, 256, 3) and (nh, nw) == (256, 171)
    assert (out[:, :lb.pad_x] == FILL).all() and (out[:, lb.pad_x + nw:] == FILL).all()
    boxes = np.array([[20, 30, 150, 290]], np.float32)
    res = eval_transforms(256)(image=image, bboxes=boxes, box_ids=np.arange(1))
    assert np.array_equal(res["image"], out)  # one rule: the evaluation pipeline IS the letterbox
    np.testing.assert_allclose(res["bboxes"], boxes_to_letterbox(boxes, lb), atol=1e-4)
    # Albumentations' own letterbox (an independent implementation) lands pixels and boxes in the same place
    theirs = A.Compose([A.LongestMaxSize(max_size=256),
                        A.PadIfNeeded(256, 256, position="center", border_mode=cv2.BORDER_CONSTANT, fill=FILL)],
                       bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_ids"], clip=True))
    ref = theirs(image=image, bboxes=boxes, box_ids=np.arange(1))
    assert ((ref["image"] == FILL).all(axis=2).all(axis=0) == (out == FILL).all(axis=2).all(axis=0)).all()
    np.testing.assert_allclose(ref["bboxes"], res["bboxes"], atol=0.5)
