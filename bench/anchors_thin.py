"""Does ``--anchors auto`` train better than the course's anchors where they fit badly? Equal
steps on the long-thin dataset of ``bench.thin`` (bars of aspect 6:1 and 1:6, where the course
anchors' best possible recall is 0), several seeds, one ``train.py`` per (seed, anchors).

    python -m bench.anchors_thin                          # 3 seeds, 96 px, 10 epochs of 32 steps
    python -m bench.anchors_thin --seeds 0 1 2 3 4 --size 128 --epochs 12 --jobs 2

Every run: width 0.25, batch 8, one input size (no multi-scale), the default recipe (mosaic 0.75,
EMA, cosine one-cycle), ``--threads 1`` (deterministic for a seed on one machine), fp32. Prints
val mAP@0.5 (the training's own, ``metrics.csv``) per epoch and at the end for both anchor sets,
and writes ``bench/results/anchors_thin.json``. ``--jobs 2`` runs two trainings at once (one
thread each); CPU seconds are per run (``os.wait4``). Writes nothing else into the repository.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import print_table, write_results
from bench.thin import write_thin_dataset

REPO = Path(__file__).resolve().parents[1]
MODES = ("course", "auto")


def train_command(data: Path, logs: Path, mode: str, seed: int, size: int, epochs: int) -> list[str]:
    """The ``train.py`` command of one run (its folder: ``logs/<mode>_s<seed>/version_0``)."""
    return [sys.executable, str(REPO / "train.py"), "--data", str(data), "--log-dir", str(logs),
            "--name", f"{mode}_s{seed}", "--anchors", mode, "--seed", str(seed), "--epochs", str(epochs),
            "--batch-size", "8", "--min-size", str(size), "--max-size", str(size), "--val-size", str(size),
            "--width", "0.25", "--precision", "32-true", "--workers", "0", "--threads", "1",
            "--accelerator", "cpu", "--devices", "1"]


def map_curve(run: Path) -> list[float]:
    """val/map50 per validated epoch from a run folder's ``metrics.csv``."""
    with (run / "metrics.csv").open() as f:
        return [float(r["val/map50"]) for r in csv.DictReader(f) if r.get("val/map50")]


def run_all(data: Path, logs: Path, seeds: list[int], size: int, epochs: int, jobs: int) -> list[dict]:
    """Train every (seed, mode), ``jobs`` at a time; rows with the curve and CPU seconds."""
    queue = [(s, m) for s in seeds for m in MODES]
    running, rows = {}, []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    while queue or running:
        while queue and len(running) < jobs:
            seed, mode = queue.pop(0)
            err = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty child never blocks
            p = subprocess.Popen(train_command(data, logs, mode, seed, size, epochs), env=env,
                                 stdout=subprocess.DEVNULL, stderr=err, text=True)
            running[p.pid] = (p, seed, mode, err)
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        p, seed, mode, err = running.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        text = err.read()
        err.close()
        if p.returncode != 0:
            raise SystemExit(f"run {mode} seed {seed} failed:\n{text[-2000:]}")
        curve = map_curve(logs / f"{mode}_s{seed}" / "version_0")
        rows.append({"seed": seed, "anchors": mode, "final_map50": curve[-1], "best_map50": max(curve),
                     "cpu_s": usage.ru_utime + usage.ru_stime, "curve": curve})
        print(f"seed {seed} {mode:6s}: final mAP@0.5 {curve[-1]:.3f} (cpu {rows[-1]['cpu_s']:.0f} s)", flush=True)
    return sorted(rows, key=lambda r: (r["seed"], MODES.index(r["anchors"])))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--size", type=int, default=96, help="image and input side in pixels (default 96)")
    p.add_argument("--epochs", type=int, default=10, help="epochs of 32 steps (default 10)")
    p.add_argument("--train-images", type=int, default=256, help="training images (default 256)")
    p.add_argument("--val-images", type=int, default=64, help="validation images (default 64)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once, one thread each (default 1)")
    args = p.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_thin_dataset(Path(tmp) / "thin", args.train_images, args.val_images, args.size, seed=0)
        rows = run_all(data, Path(tmp) / "logs", args.seeds, args.size, args.epochs, args.jobs)
    by = {m: [r["final_map50"] for r in rows if r["anchors"] == m] for m in MODES}
    wins = sum(a > c for c, a in zip(by["course"], by["auto"]))
    print_table([{k: v for k, v in r.items() if k != "curve"} for r in rows],
                f"val mAP@0.5 after {args.epochs} epochs ({args.epochs * args.train_images // 8} steps) at "
                f"{args.size} px; load average {load[0]:.2f} at the start")
    summary = {m: {"mean": statistics.mean(v), "min": min(v), "max": max(v)} for m, v in by.items()}
    for m in MODES:
        print(f"{m:6s}: mean {summary[m]['mean']:.3f} (min {summary[m]['min']:.3f}, max {summary[m]['max']:.3f})")
    print(f"auto above course on {wins} of {len(args.seeds)} seeds")
    write_results("anchors_thin", {"settings": vars(args), "load_average_start": load, "runs": rows,
                                   "summary": summary, "auto_wins": wins,
                                   "load_average_end": os.getloadavg()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
