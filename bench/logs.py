"""Reading long training logs: ``yolo.logs.read_metrics`` and the Training page on big metrics.csv.

For 10k, 100k and 1M rows of a metrics.csv shaped like the trainer's (28 columns: six per-step
values and the learning rate every step, the epoch aggregates and validation once per 500 steps)
it reports, each in a fresh subprocess: the read's wall and CPU time, the peak resident memory
of the process (``ru_maxrss``) and how much it grew during the read; then the Training page
through ``streamlit.testing.v1.AppTest`` (first render: read + tables + charts; and a rerun).
With ``--baseline REV`` it also reads with ``yolo/logs.py`` as it was at git revision REV (sizes
up to ``--baseline-max`` rows), interleaved with the current reader, and checks that both give
the same tidy rows.

    python -m bench.logs [--rows 10000 100000 1000000] [--baseline main --baseline-max 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
from bench.common import print_table, write_results

STEP_TERMS = ("loss_box", "loss_cls", "loss_noobj", "loss_obj", "loss")
EPOCH_ONLY = ("train/class_acc", "train/images_per_s", "train/noobj_acc", "train/obj_acc",
              "train/skipped_nonfinite")
VAL = ("val/class_acc", "val/loss", "val/loss_box", "val/loss_cls", "val/loss_noobj", "val/loss_obj",
       "val/map50", "val/map50_voc07", "val/noobj_acc", "val/obj_acc")
STEPS_PER_EPOCH = 500


def write_metrics_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """A metrics.csv like the trainer's CSVLogger writes (sorted header, empty cells, "\\r\\n"):
    ``rows`` rows in all; every step one row of per-step values and the learning rate, after every
    ``STEPS_PER_EPOCH`` steps one row of epoch aggregates and one of validation values."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = sorted(["epoch", "step", "train/lr", *EPOCH_ONLY, *VAL,
                      *(f"train/{t}_{k}" for t in STEP_TERMS for k in ("step", "epoch"))])
    per_cycle = STEPS_PER_EPOCH + 2
    kind = np.arange(rows) % per_cycle  # < STEPS_PER_EPOCH: a step row; then epoch row, val row
    step = (np.arange(rows) // per_cycle) * STEPS_PER_EPOCH + np.minimum(kind, STEPS_PER_EPOCH - 1)
    data = {c: np.full(rows, np.nan) for c in columns}
    data["step"], data["epoch"] = step, step // STEPS_PER_EPOCH
    is_step, is_epoch, is_val = kind < STEPS_PER_EPOCH, kind == STEPS_PER_EPOCH, kind > STEPS_PER_EPOCH
    for term in STEP_TERMS:
        data[f"train/{term}_step"][is_step] = rng.gamma(2.0, 1.0, int(is_step.sum()))
        data[f"train/{term}_epoch"][is_epoch] = rng.gamma(2.0, 1.0, int(is_epoch.sum()))
    data["train/lr"][is_step] = rng.uniform(1e-5, 1e-3, int(is_step.sum()))
    for name in EPOCH_ONLY:
        data[name][is_epoch] = rng.uniform(0, 100, int(is_epoch.sum()))
    for name in VAL:
        data[name][is_val] = rng.uniform(0, 1, int(is_val.sum()))
    frame = pd.DataFrame(data)
    frame["step"] = frame["step"].astype("int64")
    frame["epoch"] = frame["epoch"].astype("int64")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, na_rep="", lineterminator="\r\n")
    return path


# --------------------------------------------------------------------------- child processes
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _digest(frame) -> str:
    """Order-independent fingerprint of a tidy frame's rows (run, metric, kind, step, epoch, value)."""
    cols = ["run", "metric", "kind", "step", "epoch", "value"]
    text = frame[cols].astype(str).sort_values(cols[:4]).to_csv(index=False)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def child_read(run_dir: str, module_path: str | None) -> dict:
    """In a fresh process: read one run, report time, memory and a fingerprint of the result."""
    import importlib.util

    import pandas  # noqa: F401  (imported before the baseline RSS is taken)

    if module_path:
        spec = importlib.util.spec_from_file_location("logs_baseline", module_path)
        logs = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = logs  # dataclasses look their module up
        spec.loader.exec_module(logs)
    else:
        from yolo import logs
    before = _rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    frame = logs.read_metrics(run_dir, use_events=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"read_s": wall, "read_cpu_s": cpu, "peak_rss_mb": peak, "read_growth_mb": peak - before,
            "tidy_rows": len(frame), "digest": _digest(frame)}


def child_page(logs_root: str, demo: str) -> dict:
    """In a fresh process: the Training page through AppTest on ``logs_root``."""
    from streamlit.testing.v1 import AppTest

    os.environ.update(YOLO_LOGS=logs_root, YOLO_DEMO=demo, YOLO_DATA="")
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()
    before = _rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    at.switch_page("views/training.py").run()
    first, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
    if at.exception:
        raise RuntimeError("\n".join(e.message for e in at.exception))
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    wall = time.perf_counter()
    at.slider(key="tr_smooth").set_value(0.3).run()
    rerun = time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    points = max((len(t["x"]["bdata"]) if isinstance(t["x"], dict) else len(t["x"])) for c in charts
                 for t in c["data"]) if charts else 0
    return {"page_s": first, "page_cpu_s": first_cpu, "rerun_s": rerun, "page_peak_rss_mb": peak,
            "page_growth_mb": peak - before, "charts": len(charts), "max_trace_payload": points}


def _child(kind: str, *args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "bench.logs", "--child", kind, *args], cwd=REPO,
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _baseline_module(rev: str, folder: Path) -> Path:
    text = subprocess.run(["git", "show", f"{rev}:yolo/logs.py"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout
    path = folder / "logs_baseline.py"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--baseline", help="git revision whose yolo/logs.py to compare with (e.g. main)")
    parser.add_argument("--baseline-max", type=int, default=100_000, help="largest size read by the baseline")
    parser.add_argument("--no-page", action="store_true", help="skip the Training page")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        print(json.dumps(child_read(rest[0], rest[1] if len(rest) > 1 else None) if kind == "read"
                         else child_page(*rest)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        baseline = _baseline_module(args.baseline, tmp) if args.baseline else None
        for n in args.rows:
            run_dir = tmp / f"rows{n}" / "bench" / "version_0"
            csv_path = write_metrics_csv(run_dir / "metrics.csv", n)
            row = {"rows": n, "file_mb": csv_path.stat().st_size / 2**20,
                   "load_avg": os.getloadavg()[0], **_child("read", str(run_dir))}
            if baseline is not None and n <= args.baseline_max:
                old = _child("read", str(run_dir), str(baseline))
                again = _child("read", str(run_dir))  # interleaved: new, old, new
                row["read_s"] = min(row["read_s"], again["read_s"])
                row["read_cpu_s"] = min(row["read_cpu_s"], again["read_cpu_s"])
                row.update(baseline_read_cpu_s=old["read_cpu_s"], baseline_peak_rss_mb=old["peak_rss_mb"],
                           same_rows=old["digest"] == row["digest"])
            if not args.no_page:
                row.update(_child("page", str(tmp / f"rows{n}"), str(tmp / "demo")))
            rows.append(row)
            print_table([{k: v for k, v in row.items() if k != "digest"}], f"{n:,} rows")
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "digest"))
    print_table([{k: r.get(k) for k in keys} for r in rows], "reading metrics.csv")
    write_results("logs", {"rows": rows, "steps_per_epoch": STEPS_PER_EPOCH,
                           "baseline": args.baseline})


if __name__ == "__main__":
    main()
