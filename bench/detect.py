"""Detector and GradCAM latency on this machine's CPU: YOLOv3 width 1.0, 20 classes, 416 input.

Weights are random (timing does not depend on them, except that a random model has far more
candidates above a threshold than a trained one, so the threshold change is a worst case).
The image is a voc-mini JPEG when ../shared/data/voc-mini is present, else a 500 x 375 noise image.

    python -m bench.detect                # prints a table, writes bench/results/detect.json
    python -m bench.detect --quick        # fewer repeats

Targets (the issue's): full predict <= 1.15x the bare forward; a threshold change without the
model <= 30 ms; GradCAM of one detection <= 3x the bare forward. The 10-layer sweep is reported
beside the library's own call path (one forward + full backward per layer).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from bench.common import print_table, time_call, write_results
from yolo.cam import SWEEP_LAYERS, detection_target, explain, make_cam, sweep
from yolo.detect import Detector, load_image
from yolo.model import YOLOv3

SIZE, CLASSES, WIDTH = 416, 20, 1.0
VOC_MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "voc-mini" / "VOCdevkit" / "VOC2012" / "JPEGImages"


def bench_image() -> tuple[object, str]:
    """A real VOC JPEG path when available, else a noise image; with a description."""
    if VOC_MINI.is_dir():
        files = sorted(VOC_MINI.glob("*.jpg"))
        if files:
            return files[0], f"voc-mini {files[0].name}"
    rng = np.random.default_rng(0)
    return (rng.random((375, 500, 3)) * 255).astype(np.uint8), "noise 500x375"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats, slow_repeats = (3, 1) if args.quick else (7, 3)

    torch.manual_seed(0)
    model = YOLOv3(CLASSES, WIDTH).eval()
    detector = Detector(model, image_size=SIZE)
    image_path, described = bench_image()
    image = load_image(image_path)
    _, tensor, _ = detector.prepare(image)
    x = tensor[None]

    def bare() -> None:
        with torch.inference_mode():
            model(x)

    forward = time_call(bare, repeats=repeats, warmup=1)
    predict = time_call(lambda: detector.predict(image), repeats=repeats, warmup=1)
    predict_path = time_call(lambda: detector.predict(image_path), repeats=repeats, warmup=0)
    found = detector.predict(image)
    timings = detector.timings
    confs = iter([0.25, 0.3] * 200)
    change = time_call(lambda: detector.update(conf=next(confs)), repeats=50, warmup=3)
    detector.update(conf=0.25)
    layer = None  # default_layer: the head of the best detection
    gradcam = time_call(lambda: explain(detector, target=0, method="GradCAM"), repeats=repeats, warmup=1)
    eigencam = time_call(lambda: explain(detector, method="EigenCAM", layer="head8.out.branch"),
                         repeats=repeats, warmup=1)
    swept = time_call(lambda: sweep(detector, SWEEP_LAYERS, "GradCAM", target=0), repeats=slow_repeats, warmup=1)
    target = detection_target(detector.last.detections, 0)

    def library(layers) -> None:
        for name in layers:  # the library's path: one forward + full backward per layer
            with make_cam("GradCAM", model, [name]) as cam:
                cam(detector.last.input, targets=[target])

    library_one = time_call(lambda: library(["head8.out.branch"]), repeats=slow_repeats, warmup=1)
    library_ten = time_call(lambda: library(SWEEP_LAYERS), repeats=1, warmup=0)

    f = forward["median_ms"]
    rows = [
        {"step": "bare forward (inference_mode)", "median_ms": f, "min_ms": forward["min_ms"], "x_forward": 1.0},
        {"step": "predict(array): letterbox+forward+decode+NMS", "median_ms": predict["median_ms"],
         "min_ms": predict["min_ms"], "x_forward": predict["median_ms"] / f},
        {"step": "predict(path): + JPEG decode", "median_ms": predict_path["median_ms"],
         "min_ms": predict_path["min_ms"], "x_forward": predict_path["median_ms"] / f},
        {"step": "threshold change (update, no model)", "median_ms": change["median_ms"],
         "min_ms": change["min_ms"], "x_forward": change["median_ms"] / f},
        {"step": "GradCAM, one detection, default layer", "median_ms": gradcam["median_ms"],
         "min_ms": gradcam["min_ms"], "x_forward": gradcam["median_ms"] / f},
        {"step": "EigenCAM (no backward)", "median_ms": eigencam["median_ms"],
         "min_ms": eigencam["min_ms"], "x_forward": eigencam["median_ms"] / f},
        {"step": "sweep: GradCAM at 10 layers, one pass", "median_ms": swept["median_ms"],
         "min_ms": swept["min_ms"], "x_forward": swept["median_ms"] / f},
        {"step": "library call path, 1 layer", "median_ms": library_one["median_ms"],
         "min_ms": library_one["min_ms"], "x_forward": library_one["median_ms"] / f},
        {"step": "library call path, 10 layers (10 calls)", "median_ms": library_ten["median_ms"],
         "min_ms": library_ten["min_ms"], "x_forward": library_ten["median_ms"] / f},
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print_table(rows, f"YOLOv3 width {WIDTH}, {CLASSES} classes, {SIZE} input, random weights, {described}, "
                      f"{torch.get_num_threads()} threads, load average {load}")
    checks = {
        "predict_le_1.15x_forward": predict["median_ms"] <= 1.15 * f,
        "threshold_change_le_30ms": change["median_ms"] <= 30.0,
        "gradcam_le_3x_forward": gradcam["median_ms"] <= 3.0 * f,
    }
    print(f"\ndetections at conf {detector.config.conf_threshold}: {len(found)}; "
          f"candidates kept for updates: {len(detector.last.candidates.scores)}; "
          f"predict breakdown ms: preprocess {timings.preprocess_ms:.1f}, model {timings.model_ms:.1f}, "
          f"postprocess {timings.postprocess_ms:.1f}")
    for name, ok in checks.items():
        print(f"{name}: {'met' if ok else 'MISSED'}")
    write_results("detect", {
        "width": WIDTH, "classes": CLASSES, "image_size": SIZE, "weights": "random", "image": described,
        "load_average_1min": load, "rows": rows, "checks": checks, "detections": len(found),
        "predict_breakdown_ms": {"preprocess": timings.preprocess_ms, "model": timings.model_ms,
                                 "postprocess": timings.postprocess_ms},
    })


if __name__ == "__main__":
    main()
