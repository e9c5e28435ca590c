"""Benchmark: label-review scores (yolo.review) for a 5,000-image split from cached predictions,
on one core.

    python -m bench.review                 # prints a table, writes bench/results/review.json
    python -m bench.review --images 500    # a quick look

The cache is ``bench.evaluate``'s synthetic one (VOC07-test shaped: 1-6 objects per image, a
cluster of ~20 candidates around each, ~150 low background candidates, about 1M candidates
before NMS), with its ground truth as the labels. Target (issue 22): the scores of the whole
split <= 2 s on one core. Timed: NMS re-selection at the conf floor (what the Evaluate page also
does) and the scoring itself (``review``: the five kinds with the missing kind's backing from the
pre-NMS candidates, per box and per image, the tables),
each once after a warm-up, CPU seconds (``time.process_time``) beside wall seconds, with the
load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from bench.common import print_table, write_results
from bench.evaluate import synthetic_cache
from yolo.config import VOC_CLASSES
from yolo.review import ReviewConfig, candidates_of, review


def timed(fn):
    fn()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.review", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=5000, help="images in the synthetic split (default 5000)")
    p.add_argument("--no-save", action="store_true", help="print only; do not write bench/results/review.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    preds = synthetic_cache(args.images)
    truth = preds.ground_truth()
    dets, t_sel_wall, t_sel_cpu = timed(lambda: preds.detections(conf=0.05, iou=0.45))
    result, t_rev_wall, t_rev_cpu = timed(lambda: review(dets, truth, ReviewConfig(), preds.image_ids, list(VOC_CLASSES),
                                                         candidates=candidates_of(preds)))
    load = os.getloadavg()
    rows = [
        {"step": "NMS re-selection (conf 0.05)", "cpu_s": t_sel_cpu, "wall_s": t_sel_wall},
        {"step": "review scores (with the backing) + tables", "cpu_s": t_rev_cpu, "wall_s": t_rev_wall},
        {"step": "total", "cpu_s": t_sel_cpu + t_rev_cpu, "wall_s": t_sel_wall + t_rev_wall},
    ]
    facts = {"images": len(preds), "candidates": int(len(preds.scores)), "detections": sum(len(d["scores"]) for d in dets),
             "labels": int(len(preds.gt_labels)), "rows": len(result.boxes), "torch_threads": torch.get_num_threads(),
             "load_average": [round(v, 2) for v in load]}
    print_table(rows, f"label review, {facts['images']} images, {facts['detections']} detections, "
                      f"{facts['labels']} labels, 1 thread (load average {load[0]:.2f})")
    print(f"target: scores of the split <= 2 s CPU on one core -> review {t_rev_cpu:.2f} s, "
          f"with the NMS re-selection {t_sel_cpu + t_rev_cpu:.2f} s")
    if not args.no_save:
        write_results("review", {**facts, "rows_timed": rows, "target_s": 2.0})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
