"""Training-data throughput: samples/s of the training pipeline in one process on one core.

At 416 with mosaic 0.75 on voc-mini's train split (960 genuine VOC images), decode included,
through the real DataLoader path (batch sampler -> TrainDataset.__getitems__ -> collate) with no
worker processes, without and with the RAM image cache. Also the evaluation (letterbox) path.
Targets (the pace of Ultralytics' own training dataset on these images on the project machine):
>= 180 samples/s without the cache, >= 300 with it.

    taskset -c 0 python -m bench.data            # the issue's measurement (one core)
    python -m bench.data --root PATH --size 416 --mosaic 0.75 --batch 16 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import torch
from torch.utils.data import DataLoader

from bench.common import print_table, write_results
from yolo.config import VOC_CLASSES
from yolo.data.collate import collate
from yolo.data.datamodule import build_index
from yolo.data.datasets import DetectionDataset, EvalDataset, ImageCache
from yolo.data.mosaic import TrainDataset
from yolo.data.multiscale import MultiScaleBatchSampler

TARGETS = {"train, no cache": 180.0, "train, RAM cache": 300.0}
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "voc-mini"


def run_epoch(loader: DataLoader, limit: int) -> tuple[int, float, float]:
    """(samples, wall seconds, CPU seconds of this process) iterating ``loader`` to ``limit`` samples."""
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    for batch in loader:
        n += batch["images"].shape[0]
        if n >= limit:
            break
    return n, time.perf_counter() - t0, time.process_time() - c0


def measure(make_loader, limit: int, repeats: int) -> dict[str, float]:
    """Samples/s by wall clock and by this process's CPU time (the same on an idle core; the CPU
    figure is what the pipeline costs when other processes share the core)."""
    run_epoch(make_loader(99), 64)  # warm-up: imports, first pipeline calls
    wall, cpu = [], []
    for r in range(repeats):
        n, seconds, cpu_seconds = run_epoch(make_loader(r), limit)
        wall.append(n / seconds)
        cpu.append(n / cpu_seconds)
    return {"median": statistics.median(wall), "min": min(wall), "max": max(wall), "runs": wall,
            "cpu_median": statistics.median(cpu), "cpu_runs": cpu}


def profile(make_loader, limit: int, top: int = 18) -> None:
    """Where the CPU time goes (cProfile on process time; profiling itself adds overhead)."""
    import cProfile
    import pstats

    run_epoch(make_loader(99), 64)
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    run_epoch(make_loader(0), limit)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=os.environ.get("VOC_MINI", str(DEFAULT_ROOT)), help="voc-mini folder")
    p.add_argument("--split", default="train", help="split spec to read (default train)")
    p.add_argument("--size", type=int, default=416, help="training image size (default 416)")
    p.add_argument("--mosaic", type=float, default=0.75, help="mosaic probability (default 0.75)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--samples", type=int, default=960, help="samples per timed run (default 960, one epoch)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration; the median is reported")
    p.add_argument("--no-write", action="store_true", help="do not write bench/results/data.json")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. how the run was prioritised)")
    p.add_argument("--profile", action="store_true", help="also print the top functions by CPU time (cProfile), no cache")
    args = p.parse_args(argv)

    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores != 1:
        print(f"warning: {cores} cores visible; the issue's figure is for one core: taskset -c 0 python -m bench.data",
              file=sys.stderr)
    root = Path(args.root)
    if not (root / "VOCdevkit").is_dir():
        print(f"voc-mini not found at {root} (set --root or VOC_MINI)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as cache_dir:  # index cache: not part of the timing
        t0 = time.perf_counter()
        index = build_index([root], [args.split], VOC_CLASSES, cache_dir, progress=False)
        index_s = time.perf_counter() - t0
        eval_index = build_index([root], ["val"], VOC_CLASSES, cache_dir, progress=False)
    limit = min(args.samples, len(index) // args.batch * args.batch)

    def train_loader(base: DetectionDataset):
        ds = TrainDataset(base, args.size, args.mosaic, seed=0)

        def make(epoch: int) -> DataLoader:
            sampler = MultiScaleBatchSampler(len(ds), args.batch, (args.size,), seed=0)
            sampler.set_epoch(epoch)
            return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=0)
        return make

    if args.profile:
        profile(train_loader(DetectionDataset(index)), limit)
    rows, results = [], {}
    plain = measure(train_loader(DetectionDataset(index)), limit, args.repeats)
    results["train, no cache"] = plain
    t0 = time.perf_counter()
    cache = ImageCache(index, args.size).fill(threads=1, progress=False)
    fill_s = time.perf_counter() - t0
    cached = measure(train_loader(DetectionDataset(index, cache)), limit, args.repeats)
    results["train, RAM cache"] = cached
    ev = EvalDataset(DetectionDataset(eval_index), args.size)
    results["eval letterbox, no cache"] = measure(
        lambda _: DataLoader(ev, batch_size=args.batch, collate_fn=collate, num_workers=0),
        len(ev) // args.batch * args.batch, args.repeats)
    for name, r in results.items():
        target = TARGETS.get(name)
        rows.append({"pipeline": name, "samples/s wall (median)": r["median"], "min": r["min"], "max": r["max"],
                     "per CPU-second": r["cpu_median"], "target": target if target else "-",
                     "met (wall)": ("yes" if r["median"] >= target else "NO") if target else "-"})
    print_table(rows, f"data pipeline on {cores} core(s): {args.split} of {root.name} ({len(index)} images), "
                      f"size {args.size}, mosaic {args.mosaic}, batch {args.batch}, {args.repeats} runs of {limit} samples")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.1f} (other processes on the core lower the wall figure, not the CPU one)")
    print(f"index build {index_s:.2f} s; RAM cache fill {fill_s:.2f} s for {cache.nbytes / 2**20:.0f} MiB "
          f"({len(index) / fill_s:.0f} images/s, one thread)")
    if not args.no_write:
        write_results("data", {
            "command": "taskset -c 0 python -m bench.data " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "config": {"root": str(root), "split": args.split, "images": len(index), "size": args.size,
                       "mosaic_p": args.mosaic, "batch": args.batch, "samples_per_run": limit,
                       "repeats": args.repeats, "cores": cores},
            "results": results, "targets": TARGETS, "cache_fill_s": fill_s, "cache_mib": cache.nbytes / 2**20,
            "index_build_s": index_s, "load_average_1min": load, "nice": os.nice(0), "note": args.note})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
