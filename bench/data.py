"""Training-data throughput side by side with Ultralytics, per CPU-second, on one core.

One process pinned to one core (``os.sched_setaffinity``) runs both training pipelines on the same
images (voc-mini's train split, 960 VOC images) at 416 with mosaic 0.75, JPEG decode included,
batch 16, no worker processes: this project's (``MultiScaleBatchSampler`` -> ``TrainDataset``
-> ``collate``) and, when ``ultralytics`` is importable, Ultralytics' ``YOLODataset`` with its
own collate (its default training augmentation; labels converted to a YOLO-format scratch folder
with image symlinks, see ``bench.ultralytics_data``). Passes are interleaved A B A B, without and
then with each side's RAM image cache; the figure is samples per CPU-second of this process
(``time.process_time``), so other load on the machine mostly cancels out (wall figures are printed
too). Target: the project >= 1.2x Ultralytics in both cases. Without ultralytics the project's
figures are printed alone.

Equal work: neither loader converts to float nor encodes targets (both trainers do that on the
device). Ultralytics' ``Format`` copies every image into contiguous (3, H, W); this project's
batch is a channels-last view of the stacked (H, W, 3) images (the model takes it as is), so the
project is also reported with that copy added (``to_nchw``, timed inside the same passes).
Augmentations are each side's own defaults (same kinds: mosaic, one affine warp, flip, HSV,
rare blur/CLAHE/grey); Ultralytics applies its HSV jitter to every sample, the project to 70%
(``--hsv-p 1`` times the project jittering every sample too). Ultralytics draws mosaic partners
from a buffer of recent images, the project from the batch (each image decoded once per batch)
or, cached, from the whole dataset; both decode about one image per sample.

    python -m bench.data                            # the issue's measurement (pins itself to one core)
    python -m bench.data --repeats 5 --core 1 --profile
    pip install --no-deps ultralytics ultralytics-thop psutil py-cpuinfo   # for the comparison
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

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from bench import ultralytics_data
from bench.common import print_table, write_results
from yolo.config import VOC_CLASSES
from yolo.data.augment import AugConfig
from yolo.data.collate import collate
from yolo.data.datasets import DetectionDataset, EvalDataset, ImageCache
from yolo.data.layout import build_index
from yolo.data.mosaic import TrainDataset
from yolo.data.multiscale import MultiScaleBatchSampler

TARGET_RATIO = 1.2  # project / Ultralytics, samples per CPU-second, with and without the RAM cache
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "voc-mini"
SCRATCH = Path(__file__).resolve().parent / "scratch"


def to_nchw(images: torch.Tensor) -> torch.Tensor:
    """A channels-last (B, 3, H, W) uint8 batch copied to contiguous (B, 3, H, W), Ultralytics'
    layout (``cv2.split`` per image: about 2.5x faster than ``images.contiguous()`` on one core)."""
    hwc = images.permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(np.stack([np.stack(cv2.split(im)) for im in hwc]))


def run_epoch(loader: DataLoader, limit: int, key: str = "images", nchw: bool = False) -> dict[str, float]:
    """Iterate ``loader`` to ``limit`` samples: samples, wall seconds, CPU seconds of this process,
    and (``nchw``) the CPU seconds of copying each batch's images to contiguous (B, 3, H, W)."""
    n, copy_cpu, t0, c0 = 0, 0.0, time.perf_counter(), time.process_time()
    for batch in loader:
        images = batch[key]
        if nchw:
            c1 = time.process_time()
            to_nchw(images)
            copy_cpu += time.process_time() - c1
        n += images.shape[0]
        if n >= limit:
            break
    return {"samples": n, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "nchw_cpu": copy_cpu}


def summarise(passes: list[dict[str, float]], copy: str = "exclude") -> dict[str, object]:
    """Samples/s per CPU-second and by wall clock over passes (median, min, max, all runs).
    ``copy``: "exclude" leaves the timed NCHW copy out of the CPU time, "include" keeps it."""
    cpu = [p["samples"] / (p["cpu"] - (p["nchw_cpu"] if copy == "exclude" else 0.0)) for p in passes]
    wall = [p["samples"] / p["wall"] for p in passes]
    return {"cpu_median": statistics.median(cpu), "cpu_min": min(cpu), "cpu_max": max(cpu), "cpu_runs": cpu,
            "median": statistics.median(wall), "runs": wall}


def measure(make_loader, limit: int, repeats: int) -> dict[str, object]:
    """The project's figures alone (used for the evaluation loader)."""
    run_epoch(make_loader(99), 64)  # warm-up: imports, first pipeline calls
    return summarise([run_epoch(make_loader(r), limit) for r in range(repeats)])


def side_by_side(makers: dict[str, tuple], limit: int, repeats: int) -> dict[str, list[dict[str, float]]]:
    """Interleaved passes A B A B ...: {name: [pass, ...]}; ``makers`` = {name: (make_loader, key)}."""
    for make, key in makers.values():
        run_epoch(make(99), 64, key)  # warm-up
    passes: dict[str, list] = {name: [] for name in makers}
    for r in range(repeats):
        for name, (make, key) in makers.items():
            passes[name].append(run_epoch(make(r), limit, key, nchw=name.startswith("project")))
    return passes


def profile(make_loader, limit: int, key: str = "images", top: int = 18) -> None:
    """Where the CPU time goes (cProfile on process time; profiling itself adds overhead)."""
    import cProfile
    import pstats

    run_epoch(make_loader(99), 64, key)
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    run_epoch(make_loader(0), limit, key)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def pin(core: int | None) -> int:
    """Pin this process to one core (default: the lowest it may use); returns the core."""
    if not hasattr(os, "sched_setaffinity"):
        return -1
    core = min(os.sched_getaffinity(0)) if core is None else core
    os.sched_setaffinity(0, {core})
    return core


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=os.environ.get("VOC_MINI", str(DEFAULT_ROOT)), help="voc-mini folder")
    p.add_argument("--split", default="train", help="split spec to read (default train)")
    p.add_argument("--size", type=int, default=416, help="training image size (default 416)")
    p.add_argument("--mosaic", type=float, default=0.75, help="mosaic probability (default 0.75)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--samples", type=int, default=960, help="samples per timed pass (default 960, one epoch)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per pipeline; the median is reported")
    p.add_argument("--hsv-p", type=float, default=None,
                   help="the project's HSV jitter probability (default: AugConfig's 0.7; Ultralytics: every sample)")
    p.add_argument("--core", type=int, default=None, help="the core to pin to (default: the lowest allowed)")
    p.add_argument("--ultralytics", choices=("auto", "off"), default="auto",
                   help="compare with Ultralytics' YOLODataset when it is importable (default auto)")
    p.add_argument("--no-write", action="store_true", help="do not write bench/results/data.json")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. how the run was prioritised)")
    p.add_argument("--profile", action="store_true",
                   help="also print the top functions by CPU time (cProfile), no cache")
    args = p.parse_args(argv)

    core = pin(args.core)
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    root = Path(args.root)
    if not (root / "VOCdevkit").is_dir():
        print(f"voc-mini not found at {root} (set --root or VOC_MINI)", file=sys.stderr)
        return 2
    version = ultralytics_data.available() if args.ultralytics == "auto" else None
    if version is None and args.ultralytics == "auto":
        print("ultralytics is not importable: the project's figures alone "
              "(pip install --no-deps ultralytics ultralytics-thop psutil py-cpuinfo for the comparison)")
    with tempfile.TemporaryDirectory() as cache_dir:  # index cache: not part of the timing
        t0 = time.perf_counter()
        index = build_index([root], [args.split], VOC_CLASSES, cache_dir, progress=False)
        index_s = time.perf_counter() - t0
        eval_index = build_index([root], ["val"], VOC_CLASSES, cache_dir, progress=False)
    limit = min(args.samples, len(index) // args.batch * args.batch)
    aug = AugConfig() if args.hsv_p is None else AugConfig(hsv_p=args.hsv_p)

    def project(base: DetectionDataset):
        ds = TrainDataset(base, args.size, args.mosaic, aug=aug, seed=0)

        def make(epoch: int) -> DataLoader:
            sampler = MultiScaleBatchSampler(len(ds), args.batch, (args.size,), seed=0)
            sampler.set_epoch(epoch)
            return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=0)
        return make, "images"

    def ultralytics(cache: bool):
        ds = ultralytics_data.yolo_dataset(images, VOC_CLASSES, args.size, args.mosaic, args.batch, cache)

        def make(epoch: int) -> DataLoader:
            return DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=0, collate_fn=ds.collate_fn,
                              generator=torch.Generator().manual_seed(epoch), drop_last=True)
        return make, "img"

    if version:
        folder = SCRATCH / f"ultralytics-{root.name}-{args.split.replace('/', '-')}"
        images = ultralytics_data.yolo_folder(index, folder)
    if args.profile:
        print("\nproject, no cache:")
        profile(project(DetectionDataset(index))[0], limit)
        if version:
            print("\nUltralytics, no cache:")
            make, key = ultralytics(False)
            profile(make, limit, key)

    passes: dict[str, dict[str, list]] = {}
    makers = {"project": project(DetectionDataset(index))}
    if version:
        makers["ultralytics"] = ultralytics(False)
    passes["no cache"] = side_by_side(makers, limit, args.repeats)
    t0 = time.perf_counter()
    cache = ImageCache(index, args.size).fill(threads=1, progress=False)
    fill_s = time.perf_counter() - t0
    makers = {"project": project(DetectionDataset(index, cache))}
    if version:
        makers["ultralytics"] = ultralytics(True)
    passes["RAM cache"] = side_by_side(makers, limit, args.repeats)
    del makers

    rows, results = [], {}
    for setting, by_name in passes.items():
        figures = {"project": summarise(by_name["project"]),
                   "project + NCHW copy": summarise(by_name["project"], copy="include")}
        if "ultralytics" in by_name:
            figures["ultralytics"] = summarise(by_name["ultralytics"])
        ultra = figures.get("ultralytics")
        for name, f in figures.items():
            ratio = f["cpu_median"] / ultra["cpu_median"] if ultra and name != "ultralytics" else None
            paired = ([a / b for a, b in zip(f["cpu_runs"], ultra["cpu_runs"])] if ratio else None)
            f.update(ratio=ratio, paired_ratios=paired)
            rows.append({"pipeline": f"train, {setting}: {name}", "per CPU-second": f["cpu_median"],
                         "min": f["cpu_min"], "max": f["cpu_max"], "wall samples/s": f["median"],
                         "x Ultralytics": ratio if ratio else "-",
                         "paired (min..max)": f"{min(paired):.2f}..{max(paired):.2f}" if paired else "-",
                         "target": f">= {TARGET_RATIO}x" if ratio else "-",
                         "met": ("yes" if ratio >= TARGET_RATIO else "NO") if ratio else "-"})
        results[f"train, {setting}"] = figures
    ev = EvalDataset(DetectionDataset(eval_index), args.size)
    evf = measure(lambda _: DataLoader(ev, batch_size=args.batch, collate_fn=collate, num_workers=0),
                  len(ev) // args.batch * args.batch, args.repeats)
    results["eval letterbox, no cache"] = {"project": evf}
    rows.append({"pipeline": "eval letterbox, no cache: project", "per CPU-second": evf["cpu_median"],
                 "min": evf["cpu_min"], "max": evf["cpu_max"], "wall samples/s": evf["median"],
                 "x Ultralytics": "-", "paired (min..max)": "-", "target": "-", "met": "-"})
    print_table(rows, f"training data pipelines on core {core}: {args.split} of {root.name} ({len(index)} images), "
                      f"size {args.size}, mosaic {args.mosaic}, project HSV p {aug.hsv_p}, batch {args.batch}, "
                      f"decode included, {args.repeats} interleaved passes of {limit} samples each"
                      + (f"; Ultralytics {version}" if version else ""))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nper CPU-second: samples / CPU time of this process (other load on the machine cancels out); "
          f"load average {load:.1f}")
    print("'project + NCHW copy' adds a copy of each batch to contiguous (B, 3, H, W), Ultralytics' layout; "
          "neither side converts to float or encodes targets")
    print(f"index build {index_s:.2f} s; project RAM cache fill {fill_s:.2f} s for {cache.nbytes / 2**20:.0f} MiB "
          f"({len(index) / fill_s:.0f} images/s, one thread)")
    if not args.no_write:
        write_results("data", {
            "command": "python -m bench.data " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "config": {"root": str(root), "split": args.split, "images": len(index), "size": args.size,
                       "mosaic_p": args.mosaic, "hsv_p": aug.hsv_p, "batch": args.batch, "samples_per_pass": limit,
                       "repeats": args.repeats, "core": core, "ultralytics": version},
            "results": results, "target_ratio": TARGET_RATIO, "cache_fill_s": fill_s,
            "cache_mib": cache.nbytes / 2**20, "index_build_s": index_s, "load_average_1min": load,
            "nice": os.nice(0), "note": args.note})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
