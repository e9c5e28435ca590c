"""Raw outputs of a batch of 16 at 416 -> detections, on one CPU thread.

Inputs imitate a partly trained model: every objectness logit is low except about 60 candidates
per image, clustered around a few objects so NMS has real work. The baseline is the course
code's approach written plainly: a Python list of all 10,647 decoded cells per image, a filter,
and a greedy NMS loop computing one IoU at a time.

    python -m bench.postprocess
"""

from __future__ import annotations

import time

import torch

from bench.common import print_table, time_call, write_results
from yolo.config import ANCHORS, STRIDES, PostprocessConfig
from yolo.postprocess import postprocess

BATCH, SIZE, CLASSES, PER_IMAGE, CONF, IOU = 16, 416, 20, 60, 0.05, 0.45


def make_outputs(seed: int = 0) -> list[torch.Tensor]:
    """Raw outputs (B, 3, S, S, 25) with ~PER_IMAGE candidates per image above CONF."""
    g = torch.Generator().manual_seed(seed)
    outputs = []
    for s in (SIZE // 32, SIZE // 16, SIZE // 8):
        o = torch.randn(BATCH, 3, s, s, 5 + CLASSES, generator=g)
        o[..., 0] = -9.0 + torch.randn(BATCH, 3, s, s, generator=g)
        o[..., 3:5] *= 0.3
        outputs.append(o)
    for b in range(BATCH):
        for _ in range(PER_IMAGE // 6):  # ~10 objects, ~6 candidates each on neighbouring cells
            scale = int(torch.randint(0, 3, (1,), generator=g))
            s = outputs[scale].shape[2]
            row, col = (int(v) for v in torch.randint(1, s - 1, (2,), generator=g))
            cls = int(torch.randint(0, CLASSES, (1,), generator=g))
            for k in range(6):
                a, dr, dc = k % 3, k // 3, (k % 2)
                cell = outputs[scale][b, a, row + dr, col + dc]
                cell[0] = float(torch.empty(1).uniform_(-1.0, 4.0, generator=g))
                cell[5 + cls] = 6.0
    return outputs


def course_style(outputs: list[torch.Tensor], conf: float, iou_thr: float) -> list[list]:
    """The course's cells_to_bboxes + non_max_suppression idea: Python lists and loops."""
    results = []
    for b in range(outputs[0].shape[0]):
        boxes = []
        for out, stride, anchors in zip(outputs, STRIDES, ANCHORS):
            s = out.shape[2]
            o = out[b]
            anchor_t = torch.tensor(anchors).reshape(3, 1, 1, 2)
            obj = torch.sigmoid(o[..., 0])
            cls = o[..., 5:].argmax(-1)
            xs = (torch.sigmoid(o[..., 1]) + torch.arange(s)) / s
            ys = (torch.sigmoid(o[..., 2]) + torch.arange(s)[:, None]) / s
            wh = torch.exp(o[..., 3:5]) * anchor_t
            cells = torch.stack([cls.float(), obj, xs, ys, wh[..., 0], wh[..., 1]], -1)
            boxes += cells.reshape(-1, 6).tolist()
        boxes = sorted((bx for bx in boxes if bx[1] > conf), key=lambda x: x[1], reverse=True)
        kept = []
        while boxes:
            chosen = boxes.pop(0)
            boxes = [bx for bx in boxes if bx[0] != chosen[0] or _iou_mid(chosen[2:], bx[2:]) < iou_thr]
            kept.append(chosen)
        results.append(kept)
    return results


def _iou_mid(a, b) -> float:
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / (union + 1e-6)


def main() -> None:
    torch.set_num_threads(1)
    outputs = make_outputs()
    config = PostprocessConfig(conf_threshold=CONF, iou_threshold=IOU, max_detections=300)
    above = sum(
        (o[..., 0].sigmoid() * o[..., 5:].softmax(-1).amax(-1) > CONF).sum().item() for o in outputs
    ) / BATCH
    ours = time_call(lambda: postprocess(outputs, config), repeats=50)
    start = time.perf_counter()
    course = course_style(outputs, CONF, IOU)
    course_ms = (time.perf_counter() - start) * 1000
    dets = postprocess(outputs, config)
    rows = [
        {"method": "yolo.postprocess (vectorised, batched NMS)", "ms_per_batch": ours["median_ms"]},
        {"method": "course-style Python decode + NMS", "ms_per_batch": course_ms},
    ]
    print_table(rows, f"batch {BATCH} at {SIZE}: {3 * sum(s * s for s in (13, 26, 52))} candidates "
                      f"per image, {above:.1f} above {CONF} (1 thread)")
    speedup = course_ms / ours["median_ms"]
    print(f"speed-up {speedup:.0f}x; target <= 5 ms: {'met' if ours['median_ms'] <= 5 else 'MISSED'}")
    print(f"detections per image: ours {sum(len(d['scores']) for d in dets) / BATCH:.1f}, "
          f"course {sum(map(len, course)) / BATCH:.1f}")
    write_results("postprocess", {
        "batch": BATCH, "image_size": SIZE, "candidates_above_threshold_per_image": above,
        "ours_ms": ours, "course_style_ms": course_ms, "speedup": speedup, "target_ms": 5.0,
        "met": ours["median_ms"] <= 5.0,
    })


if __name__ == "__main__":
    main()
