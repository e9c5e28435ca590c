"""Peak memory of loading hostile files (issue 21 items 1 and 3): each file is loaded by the library
in a fresh child process, which reports its peak resident memory (VmHWM from /proc/self/status)
and what happened; the same child with no file gives the baseline (imports and a tiny model).

    python -m bench.hostile_files            # prints a table, writes bench/results/hostile_files.json

Children run under an address-space limit (RLIMIT_AS, 8 GiB by default) and a 60 s timeout, so
code that tries to allocate a file's claimed size ends in a MemoryError, not in an exhausted machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "hostile_files.json"

CHILD = r"""
import json, os, resource, sys, time, warnings
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
warnings.simplefilter("ignore")
kind, path = sys.argv[1], sys.argv[2]
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
import torch
from yolo.detect import Detector
try:
    from yolo.thresholds import load_thresholds as read_operating_points  # raises ValueError on a bad file
except ImportError:  # before yolo.thresholds
    from yolo.evaluate.operating import read_operating_points
base = hwm()
start = time.perf_counter()
try:
    if kind == "none":
        outcome = "baseline"
    elif kind == "weights":
        Detector.from_checkpoint(path)
        outcome = "loaded"
    else:
        read_operating_points(path, ["a", "b"])
        outcome = "read"
except BaseException as err:
    outcome = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
print(json.dumps({"before": base, "peak": hwm(), "outcome": outcome, "seconds": time.perf_counter() - start}))
"""


def _state(num_classes: int = 2, width: float = 0.125) -> dict:
    import torch

    from yolo.model import YOLOv3

    torch.manual_seed(0)
    return YOLOv3(num_classes, width).state_dict()


def expanded_heads(path: Path, classes: int = 10_000_000) -> Path:
    """A 4 MB export whose prediction layers are stride-0 views claiming ``classes`` classes."""
    import torch

    state = _state()
    for key in [k for k in state if k.endswith("pred.weight") or k.endswith("pred.bias")]:
        t = state[key]
        rows = 3 * (5 + classes)
        state[key] = t[:1].expand(rows, *t.shape[1:])
    torch.save({"model": state, "hyper_parameters": {"num_classes": classes, "width": 0.125}}, path)
    return path


def recompressed_zip(path: Path, gib: float = 1.0) -> Path:
    """A torch.save zip holding ``gib`` GiB of zeros, its entries re-written deflated (a few MB)."""
    import torch

    raw = path.with_suffix(".raw")
    state = _state()
    state["layers.stem.conv.padding"] = torch.zeros(int(gib * (1 << 30)) // 4)  # an extra, huge tensor
    torch.save({"model": state}, raw)
    del state
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            with src.open(info) as fin, dst.open(info.filename, "w", force_zip64=True) as fout:
                while chunk := fin.read(1 << 24):
                    fout.write(chunk)
    raw.unlink()
    return path


def sparse_darknet(path: Path, size: int = 6 << 30) -> Path:
    """A sparse file of about ``size`` bytes with a Darknet 0.2 header, nothing but holes after it,
    its size exactly that of a width-1 YOLOv3 with as many classes as fill it (~1.7 million)."""
    import struct

    try:
        from yolo.weights.darknet import expected_floats
    except ImportError:
        from yolo.darknet import expected_floats
    one, per_class = expected_floats(1, 1.0), expected_floats(2, 1.0) - expected_floats(1, 1.0)
    classes = 1 + (size // 4 - one) // per_class
    with open(path, "wb") as f:
        f.write(struct.pack("<3iq", 0, 2, 0, 0))
        f.truncate(20 + 4 * (one + (classes - 1) * per_class))
    return path


def image_size_checkpoint(path: Path, size: int) -> Path:
    import torch

    torch.save({"model": _state(), "hyper_parameters": {"num_classes": 2, "width": 0.125, "image_size": size}}, path)
    return path


def thresholds(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def make_files(folder: Path) -> list[tuple[str, str, Path]]:
    """(label, loader kind, path) of every hostile file, written into ``folder``."""
    files = [
        ("checkpoint: heads claim 10M classes (expanded views)", "weights", expanded_heads(folder / "heads.pt")),
        ("checkpoint: zip recompressed, 1 GiB unpacked", "weights", recompressed_zip(folder / "zip.pt")),
        ("Darknet .weights: sparse 6 GiB", "weights", sparse_darknet(folder / "big.weights")),
        ("checkpoint: image_size 8192", "weights", image_size_checkpoint(folder / "s8192.pt", 8192)),
        ("checkpoint: image_size 65536", "weights", image_size_checkpoint(folder / "s65536.pt", 65536)),
        ("thresholds: nested 10,000 deep", "thresholds", thresholds(folder / "deep.json", "[" * 10_000 + "]" * 10_000)),
        ("thresholds: a 400-digit integer", "thresholds", thresholds(
            folder / "digits.json", json.dumps({"version": 1, "thresholds": {"a": 0.5, "b": 0.5}})
            .replace("0.5}", "1" + "0" * 399 + "}"))),
        ("thresholds: 100 MB", "thresholds", thresholds(folder / "big.json", json.dumps(
            {"version": 1, "thresholds": {"a": 0.5, "b": 0.5}, "meta": {"pad": "x" * 100_000_000}}))),
    ]
    fifo = folder / "fifo.json"
    os.mkfifo(fifo)
    files += [("thresholds: a FIFO", "thresholds", fifo), ("thresholds: /dev/zero", "thresholds", Path("/dev/zero"))]
    return files


def measure(kind: str, path: Path | str, limit: int, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path), str(limit)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"peak": None, "outcome": f"still running after {timeout:g} s (killed)"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"peak": None, "outcome": f"child died (status {out.returncode}): {out.stderr.strip()[-200:]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit-gib", type=float, default=8.0, help="address-space limit of each child (default 8)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per child (default 60)")
    args = p.parse_args(argv)
    limit = int(args.limit_gib * (1 << 30))
    rows = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        base = measure("none", "-", limit, args.timeout)
        for label, kind, path in make_files(Path(tmp)):
            r = measure(kind, path, limit, args.timeout)
            size = path.stat().st_size if path.is_file() else None
            extra = None if r.get("peak") is None else (r["peak"] - base["peak"]) / 2**20
            rows.append({"file": label, "bytes": size, "peak_mib": None if r.get("peak") is None else r["peak"] / 2**20,
                         "over_baseline_mib": extra, "outcome": r["outcome"]})
    load = os.getloadavg()
    print(f"baseline peak (imports, no file): {base['peak'] / 2**20:.0f} MiB; load average {load[0]:.2f}")
    print(f"{'file':<52} {'size':>14} {'peak MiB':>9} {'+MiB':>7}  outcome")
    for r in rows:
        size = f"{r['bytes']:,}" if r["bytes"] is not None else "-"
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        extra = f"{r['over_baseline_mib']:.0f}" if r["over_baseline_mib"] is not None else "-"
        print(f"{r['file']:<52} {size:>14} {peak:>9} {extra:>7}  {r['outcome']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"baseline_peak_mib": base["peak"] / 2**20, "load_average": load,
                                   "limit_gib": args.limit_gib, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
