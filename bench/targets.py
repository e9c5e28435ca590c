"""Encoding the targets of a batch of 16 images with 40 boxes each, on one CPU thread.

The baseline is the course's per-box loop (its YOLODataset.__getitem__ logic), written plainly.

    python -m bench.targets
"""

from __future__ import annotations

import time

import torch

from bench.common import print_table, time_call, write_results
from yolo.boxes import wh_iou
from yolo.config import ANCHORS, grid_sizes
from yolo.targets import encode

BATCH, PER_IMAGE, SIZE = 16, 40, 416


def course_loop(boxes, labels, batch_idx, batch, size, ignore_iou=0.5):
    anchors = torch.tensor(ANCHORS).reshape(9, 2)
    sizes = grid_sizes(size)
    targets = [torch.zeros(batch, 3, s, s, 6) for s in sizes]
    for (x, y, w, h), label, b in zip(boxes.tolist(), labels.tolist(), batch_idx.tolist()):
        ious = wh_iou(torch.tensor([[w, h]]), anchors)[0]
        has = [False] * 3
        for k in ious.argsort(descending=True).tolist():
            sc, a = divmod(k, 3)
            s = sizes[sc]
            i, j = min(int(s * x), s - 1), min(int(s * y), s - 1)
            taken = targets[sc][b, a, j, i, 0] != 0
            if not taken and not has[sc]:
                targets[sc][b, a, j, i] = torch.tensor([1, s * x - i, s * y - j, w * s, h * s, label])
                has[sc] = True
            elif not taken and ious[k] > ignore_iou:
                targets[sc][b, a, j, i, 0] = -1
    return targets


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n = BATCH * PER_IMAGE
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 0.9 + 0.05, torch.rand(n, 2, generator=g) * 0.4 + 0.01], 1)
    labels = torch.randint(0, 20, (n,), generator=g)
    batch_idx = torch.arange(n) // PER_IMAGE
    ours = time_call(lambda: encode(boxes, labels, batch_idx, BATCH, SIZE), repeats=100)
    start = time.perf_counter()
    ref = course_loop(boxes, labels, batch_idx, BATCH, SIZE)
    course_ms = (time.perf_counter() - start) * 1000
    same = all(torch.equal(a, b) for a, b in zip(encode(boxes, labels, batch_idx, BATCH, SIZE), ref))
    rows = [
        {"method": "yolo.targets.encode (vectorised)", "ms_per_batch": ours["median_ms"]},
        {"method": "course per-box loop", "ms_per_batch": course_ms},
    ]
    print_table(rows, f"{BATCH} images x {PER_IMAGE} boxes at {SIZE} (1 thread); identical output: {same}")
    print(f"target <= 5 ms: {'met' if ours['median_ms'] <= 5 else 'MISSED'}; "
          f"speed-up {course_ms / ours['median_ms']:.0f}x")
    write_results("targets", {
        "batch": BATCH, "boxes_per_image": PER_IMAGE, "image_size": SIZE, "ours_ms": ours,
        "course_loop_ms": course_ms, "identical_to_course": same, "target_ms": 5.0,
        "met": ours["median_ms"] <= 5.0,
    })


if __name__ == "__main__":
    main()
