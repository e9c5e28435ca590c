"""Benchmark: VOC mAP@0.5 on 5,000 images x 100 detections, ours vs torchmetrics, one CPU thread.

    python bench/map.py                       # prints a table, writes bench/results/map.json
    python bench/map.py --images 500 --repeats 3

Synthetic but realistic inputs (seeded): 1-10 ground-truth boxes per image of 20 classes, about 10%
difficult; detections are jittered copies of the ground truth (mostly the right class, higher
scores) topped up to exactly 100 per image with random boxes (random class, lower scores).
Our number is ``yolo.metrics.voc_evaluate`` from the per-image dicts (concatenation included).
torchmetrics ``MeanAveragePrecision(iou_thresholds=[0.5], backend="faster_coco_eval")`` gets the
same dicts (``iscrowd`` left out, so difficult boxes are ordinary boxes there: its mAP is COCO's
101-point one under COCO matching, shown for scale, not as a check; tests/test_metrics.py does the
like-for-like comparison).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from yolo.config import MAP50
from yolo.metrics import VOCMeanAP, voc_evaluate


def make_inputs(n_images: int, n_dets: int, num_classes: int, seed: int = 0) -> tuple[list, list]:
    """Per-image detection and ground-truth dicts (formats of yolo.metrics) for a seeded fake set."""
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor([500.0, 375.0, 500.0, 375.0])
    dets, gts = [], []
    for _ in range(n_images):
        n_gt = int(torch.randint(1, 11, (1,), generator=g))
        wh = torch.rand(n_gt, 2, generator=g) * torch.tensor([300.0, 250.0]) + 20
        xy = torch.rand(n_gt, 2, generator=g) * (size[:2] - wh)
        gt_boxes = torch.cat([xy, xy + wh], 1)
        gt_labels = torch.randint(0, num_classes, (n_gt,), generator=g)
        difficult = torch.rand(n_gt, generator=g) < 0.1
        gts.append({"boxes": gt_boxes, "labels": gt_labels, "difficult": difficult})

        copies = torch.randint(0, 4, (n_gt,), generator=g)  # 0-3 detections per object
        src = torch.repeat_interleave(torch.arange(n_gt), copies)[:n_dets]
        jitter = torch.randn(src.numel(), 4, generator=g) * 0.1 * wh[src].repeat(1, 2)
        jit_boxes = gt_boxes[src] + jitter
        jit_labels = gt_labels[src].clone()
        wrong = torch.rand(src.numel(), generator=g) < 0.1
        jit_labels[wrong] = torch.randint(0, num_classes, (int(wrong.sum()),), generator=g)
        jit_scores = 0.3 + 0.7 * torch.rand(src.numel(), generator=g)

        n_rand = n_dets - src.numel()
        rwh = torch.rand(n_rand, 2, generator=g) * 300 + 10
        rxy = torch.rand(n_rand, 2, generator=g) * (size[:2] - rwh).clamp(min=1)
        boxes = torch.cat([jit_boxes, torch.cat([rxy, rxy + rwh], 1)]).clamp(min=0)
        boxes = torch.minimum(boxes, size)
        scores = torch.cat([jit_scores, 0.6 * torch.rand(n_rand, generator=g)])
        labels = torch.cat([jit_labels, torch.randint(0, num_classes, (n_rand,), generator=g)])
        dets.append({"boxes": boxes, "scores": scores, "labels": labels})
    return dets, gts


def time_call(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def run_torchmetrics(dets: list, gts: list) -> float:
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_thresholds=[0.5], backend="faster_coco_eval")
    metric.update(dets, [{"boxes": t["boxes"], "labels": t["labels"]} for t in gts])
    return float(metric.compute()["map"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dets", type=int, default=100, help="detections per image")
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of ours (after one warm-up)")
    ap.add_argument("--tm-repeats", type=int, default=1, help="timed runs of torchmetrics")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "map.json")
    args = ap.parse_args()

    torch.set_num_threads(1)
    dets, gts = make_inputs(args.images, args.dets, args.classes)
    n_gt = sum(len(t["labels"]) for t in gts)

    voc_evaluate(dets[:100], gts[:100], args.classes)  # warm-up
    ours_t, res = time_call(lambda: voc_evaluate(dets, gts, args.classes), args.repeats)

    def metric_path():
        m = VOCMeanAP(args.classes)
        for i in range(0, len(dets), 32):  # batches of 32 images, as in validation
            m.update(dets[i:i + 32], gts[i:i + 32])
        return m.compute()

    metric_t, metric_out = time_call(metric_path, max(1, args.repeats // 2))
    tm_t, tm_map = time_call(lambda: run_torchmetrics(dets, gts), args.tm_repeats)

    ours, tm = statistics.median(ours_t), statistics.median(tm_t)
    rows = [
        ("ours voc_evaluate (median)", ours, res.map),
        ("ours voc_evaluate (best)", min(ours_t), res.map),
        ("ours VOCMeanAP, 32-image batches", statistics.median(metric_t), metric_out[MAP50]),
        ("torchmetrics faster_coco_eval", tm, tm_map),
    ]
    print(f"{args.images} images x {args.dets} detections, {n_gt} ground-truth boxes, "
          f"{args.classes} classes, torch threads = {torch.get_num_threads()}")
    print(f"{'method':36s} {'seconds':>9s} {'mAP@0.5':>9s}")
    for name, sec, val in rows:
        print(f"{name:36s} {sec:9.3f} {val:9.4f}")
    print(f"ours VOC07 11-point mAP: {res.map_voc07:.4f}; speed-up vs torchmetrics: {tm / ours:.1f}x "
          f"(target: ours <= 1 s)")

    result = {
        "images": args.images, "detections_per_image": args.dets, "classes": args.classes,
        "ground_truth_boxes": n_gt, "torch_threads": torch.get_num_threads(),
        "ours_voc_evaluate_s": ours_t, "ours_voc_evaluate_median_s": ours,
        "ours_metric_batched_s": metric_t, "torchmetrics_faster_coco_eval_s": tm_t,
        "speedup": tm / ours, "ours_map50": res.map, "ours_map50_voc07": res.map_voc07,
        "ours_metric_map50": metric_out[MAP50], "torchmetrics_map50_coco101": tm_map,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
