"""Video: frames/s of ``yolo.video.detect_clip`` at width 0.25 and 1.0 (input 416) on this CPU; the
cost of one frame shown after a threshold change on a 300-frame clip (select + decode the frame +
draw + the inline JPEG the page sends); and the peak memory of a 10,000-frame clip.

    python -m bench.video                 # all three (about 15 minutes on a busy 2-core machine)
    python -m bench.video --parts change,memory
    python -m bench.video --quick         # fewer frames

CPU time (``time.process_time``) is measured beside wall time, and the load average is printed,
since the machine may be shared. Random weights: speed does not depend on what the model learned,
and an untrained model keeps the most candidates per frame (the worst case for memory and select).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import RESULTS, machine, print_table, write_results

MEMORY_PROBE = r"""
import sys, time
import torch
from yolo.detect import Detector
from yolo.model import YOLOv3
from yolo.video import detect_clip

def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

torch.manual_seed(0)
detector = Detector(YOLOv3(20, 0.25).eval(), None, int(sys.argv[2]))
detector.predict(torch.rand(3, 64, 96))  # warm-up: allocator, kernels
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the resident size now
before = status_mb("VmRSS")
start = time.process_time()
clip = detect_clip(detector, sys.argv[1], batch_size=8)
print(len(clip), before, status_mb("VmHWM"), status_mb("VmRSS"), clip.nbytes / 2**20, time.process_time() - start,
      sum(len(f.scores) for f in clip.frames) / len(clip))
"""


def demo_like_clip(path: Path, frames: int, size: tuple[int, int] = (360, 480), fps: int = 25) -> Path:
    """A smooth moving synthetic clip (MPEG-4 part 2, small on disk) of ``frames`` frames."""
    from yolo.data.demo import render_image

    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    base, _ = render_image(np.random.default_rng([3, 0]))
    base = cv2.resize(base, (w + 200, h))
    for k in range(frames):
        x = (4 * k) % 200
        writer.write(cv2.cvtColor(np.ascontiguousarray(base[:, x:x + w]), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def processing(clip: Path, widths: list[float], size: int, frames: int) -> list[dict]:
    import torch

    from yolo.detect import Detector
    from yolo.model import YOLOv3
    from yolo.video import detect_clip

    rows = []
    for width in widths:
        torch.manual_seed(0)
        detector = Detector(YOLOv3(20, width).eval(), None, size)
        detect_clip(detector, clip, max_frames=4)  # warm-up
        load = os.getloadavg()[0]
        cpu, wall = time.process_time(), time.perf_counter()
        result = detect_clip(detector, clip, max_frames=frames, batch_size=4)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rows.append({"width": width, "input": size, "frames": len(result), "frames/s (wall)": len(result) / wall,
                     "CPU s per frame": cpu / len(result),
                     "median model ms": statistics.median(t.model_ms for t in result.timings),
                     "load avg": load})
    return rows


def threshold_change(clip: Path, size: int) -> dict:
    """Per frame shown after a slider move on a 300-frame clip: what Detect's Video tab does."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
    from yolo import viz
    from yolo.detect import Detector
    from yolo.model import YOLOv3
    from yolo.video import detect_clip, read_frame

    torch.manual_seed(0)
    detector = Detector(YOLOv3(20, 0.25).eval(), None, size)
    calls = [0]
    detector.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    result = detect_clip(detector, clip, max_frames=300, batch_size=8)
    forward = calls[0]
    select_ms, shown_ms, cpu_ms = [], [], []
    load = os.getloadavg()[0]
    for k, i in enumerate(range(0, len(result), 10)):
        conf = (0.01, 0.02, 0.05)[k % 3]
        t0, c0 = time.perf_counter(), time.process_time()
        found = result.select(i, conf=conf, iou=0.45)
        t1 = time.perf_counter()
        image = viz.fit(read_frame(clip, result.frames[i].index), None, 1024)[0]
        boxes = viz.scale_boxes(found.boxes, result.info.size, image.shape[:2])
        drawn = viz.draw_detections(image, boxes, found.labels, found.scores)
        ok, _ = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
        t2 = time.perf_counter()
        select_ms.append((t1 - t0) * 1e3)
        shown_ms.append((t2 - t0) * 1e3)
        cpu_ms.append((time.process_time() - c0) * 1e3)
    t0 = time.perf_counter()
    result.counts(conf=0.05, iou=0.45)
    counts_ms = (time.perf_counter() - t0) * 1e3
    assert calls[0] == forward, "no forward pass after the run"
    return {"frames": len(result), "frames shown": len(shown_ms), "median select ms": statistics.median(select_ms),
            "median frame shown ms": statistics.median(shown_ms), "median CPU ms": statistics.median(cpu_ms),
            "count chart, all frames ms": counts_ms, "forward passes after the run": calls[0] - forward,
            "load avg": load}


def memory(clip: Path, size: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(clip), str(size)], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    n, before, peak, after, kept, cpu, per_frame = out.stdout.split()
    return {"frames": int(n), "input": size, "RSS before MB": float(before), "peak RSS MB": float(peak),
            "extra peak MB": float(peak) - float(before), "candidates kept MB": float(kept),
            "candidates per frame": float(per_frame), "CPU s": float(cpu), "load avg": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames (a smoke run; nothing written)")
    parser.add_argument("--parts", default="processing,change,memory",
                        help="comma-separated parts to run; the others keep their figures in bench/results/video.json")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    previous = RESULTS / "video.json"
    results: dict = json.loads(previous.read_text()) if previous.is_file() and not args.quick else {}
    results.update(machine=machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = demo_like_clip(tmp / "clip.mp4", 300)
        if "processing" in parts:
            load = os.getloadavg()
            rows = processing(clip, [0.25, 1.0], 416, 4 if args.quick else 8)
            print_table(rows, "detect_clip, 480x360 frames, input 416, batch 4")
            results["processing"] = {"rows": rows, "load_before": load, "load_after": os.getloadavg()}
        if "change" in parts:
            change = threshold_change(clip, 128)
            print_table([change], "After a threshold change: one frame shown (select + decode + draw + JPEG), "
                                  "300-frame clip, input 128 (~1000 candidates kept per frame: the most)")
            results["threshold_change"] = change
        if "memory" in parts:
            long = demo_like_clip(tmp / "long.mp4", 1000 if args.quick else 10_000, size=(64, 96))
            mem = memory(long, 32)
            print_table([mem], "10,000-frame clip (96x64), width 0.25, input 32: peak memory of a fresh process")
            results["memory"] = mem
    print(f"\nload average now {os.getloadavg()}")
    if not args.quick:
        print("wrote", write_results("video", results))


if __name__ == "__main__":
    main()
