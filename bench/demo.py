"""The demo preset end to end, as a new user runs it: ``python train.py --preset demo``.

Runs the command in a child process (demo data written first, outside the timing) and reports
its wall time, its CPU time (user + sys of the child and its data workers, from
``getrusage(RUSAGE_CHILDREN)``), the machine's load average before and after, the time of each
epoch (from the ``epoch k/N |`` lines the trainer prints), the best and final val mAP@0.5, and how
far the Home page's time-left estimate (the ``eta`` of the run's progress.json, written by
``yolo.callbacks.ProgressFile`` with ``yolo.progress.time_left``) was from the time really left,
at each epoch end. On a shared
machine wall time depends on the other load, and with two torch threads so does CPU time (threads
wait for each other when the cores are oversubscribed). Run it single-threaded
(``OMP_NUM_THREADS=1``): CPU time is then all the work of the run, start-up and data worker
included, and bounds the wall time on an idle 2-core machine from both sides
(``idle_2core_bounds_s``: CPU / 2 with perfect use of both cores, CPU when one core does it all;
the run always keeps a core busy). Those bounds are derived, not measured on an idle machine.

    python -m bench.demo [--repeats 1] [-- extra train.py flags]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import print_table, write_results
from yolo.progress import FILE_NAME, read_progress

REPO = Path(__file__).resolve().parents[1]
_EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) \|")


def _eta(logs: Path) -> float | None:
    """The time left that the run's progress.json gives now (what the Home page shows)."""
    found = next(logs.glob(f"demo/version_*/{FILE_NAME}"), None)
    record = read_progress(found) if found is not None else None
    return record.get("eta") if record else None


def run_demo(data: Path, logs: Path, extra: list[str]) -> dict[str, object]:
    """One ``train.py --preset demo`` run; wall, CPU, per-epoch end times and best mAP."""
    command = [sys.executable, str(REPO / "train.py"), "--preset", "demo", "--data", str(data),
               "--log-dir", str(logs), *extra]
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    epoch_ends: list[float] = []
    estimates: list[float | None] = []  # the Home page's time-left estimate at each epoch end
    text = ""
    for line in proc.stdout:  # universal newlines: the bar's \r-updates arrive as lines too
        text += line
        if _EPOCH_LINE.search(line):
            epoch_ends.append(time.perf_counter() - start)
            estimates.append(_eta(logs))
    tail = text.splitlines()[-20:]
    code = proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"train.py failed (exit {code}):\n" + "\n".join(tail))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    metrics = pd.read_csv(next(logs.glob("demo/version_*/metrics.csv")))
    best = float(metrics["val/map50"].max()) if "val/map50" in metrics else float("nan")
    truth = [wall - t for t in epoch_ends]
    errors = [None if e is None or not t else (e - t) / t for e, t in zip(estimates, truth)]
    return {"wall_s": wall, "cpu_s": cpu, "idle_2core_bounds_s": [cpu / 2, cpu],
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "epochs": len(epoch_ends), "first_epoch_end_s": epoch_ends[0] if epoch_ends else None,
            "epoch_ends_s": [round(t, 2) for t in epoch_ends], "best_val_map50": best,
            "final_val_map50": float(metrics["val/map50"].dropna().iloc[-1]) if "val/map50" in metrics else None,
            "eta_error_after_epoch1": errors[0] if errors else None,
            "eta_errors": [None if e is None else round(e, 3) for e in errors]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", type=Path, help="demo dataset (default: written to a temporary folder)")
    parser.add_argument("extra", nargs="*", help="extra train.py flags (after --)")
    args = parser.parse_args(argv)
    from yolo.data.demo import ensure_demo

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = ensure_demo(args.data or Path(tmp) / "demo")
        for k in range(args.repeats):
            row = run_demo(data, Path(tmp) / f"logs{k}", args.extra)
            print_table([{k: v for k, v in row.items() if k not in ("epoch_ends_s", "eta_errors")}],
                        f"demo preset, run {k + 1}")
            rows.append(row)
    write_results("demo", {"command": "python train.py --preset demo " + " ".join(args.extra),
                           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                           "note": "idle_2core_bounds_s = [cpu_s / 2, cpu_s]: derived bounds, valid "
                                   "for a single-threaded run (OMP_NUM_THREADS=1), not a measurement",
                           "rows": rows})


if __name__ == "__main__":
    main()
