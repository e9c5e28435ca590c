"""PyTorch against ONNX Runtime, per image on this machine's CPU: YOLOv3 width 1.0, 20 classes, 416.

Four steps timed round-robin in one run (so a busy machine slows them alike): the PyTorch
forward, PyTorch forward + the library's postprocess, ONNX Runtime on the raw graph, and ONNX
Runtime on the graph with decode + score + NMS inside (``python -m yolo.export --nms``). One image
(batch 1), a voc-mini JPEG letterboxed to 416 when present, else noise. Weights are random with
BatchNorm statistics measured on the image, so outputs are of a realistic scale; timing does not
depend on the weights except through the number of NMS candidates.

    python -m bench.export                 # one torch / ORT thread (CPU time is the work done)
    python -m bench.export --threads 2     # both runtimes on 2 threads
    python -m bench.export --quick         # fewer repeats

Prints a table; writes bench/results/export.json (one entry per thread count).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from bench.common import RESULTS, print_table, write_results
from bench.detect import bench_image, interleaved
from yolo.config import ANCHORS, PostprocessConfig
from yolo.export import export_onnx, onnx_session, run_onnx
from yolo.imageio import load_image
from yolo.letterbox import letterbox
from yolo.model import YOLOv3
from yolo.postprocess import postprocess

SIZE, CLASSES, WIDTH = 416, 20, 1.0


def calibrated_model(x: torch.Tensor) -> YOLOv3:
    torch.manual_seed(0)
    model = YOLOv3(CLASSES, WIDTH)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 10

    source, described = bench_image()
    boxed, _ = letterbox(load_image(source), SIZE)
    x = torch.from_numpy(boxed).permute(2, 0, 1)[None].float().div(255).contiguous()
    model = calibrated_model(x)
    config = PostprocessConfig(pre_nms_top_k=1000)
    with tempfile.TemporaryDirectory() as folder:
        raw_path = export_onnx(model, Path(folder) / "raw.onnx", SIZE)
        nms_path = export_onnx(model, Path(folder) / "nms.onnx", SIZE, ANCHORS, nms_in_graph=True, config=config)
        raw, nms = onnx_session(raw_path, args.threads), onnx_session(nms_path, args.threads)

        def torch_forward() -> None:
            with torch.inference_mode():
                model(x)

        def torch_detect() -> None:
            with torch.inference_mode():
                postprocess(model(x), config, ANCHORS)

        with torch.inference_mode():
            expected = model(x)
        difference = max(float((a - b).abs().max()) for a, b in zip(expected, run_onnx(raw, x)))
        timings = interleaved({
            "PyTorch forward": torch_forward,
            "PyTorch forward + postprocess": torch_detect,
            "ONNX Runtime raw": lambda: run_onnx(raw, x),
            "ONNX Runtime with NMS": lambda: run_onnx(nms, x),
        }, repeats)
    base = timings["PyTorch forward"]["cpu_ms"]
    rows = [{"step": name, "median ms": t["median_ms"], "min ms": t["min_ms"], "CPU ms": t["cpu_ms"],
             "x PyTorch forward (CPU)": t["cpu_ms"] / base} for name, t in timings.items()]
    print_table(rows, f"width {WIDTH}, {SIZE} px, batch 1, {args.threads} thread(s), {described}; "
                      f"ORT raw vs PyTorch max |difference| {difference:.1e}")
    path = RESULTS / "export.json"
    previous = json.loads(path.read_text()).get("runs", {}) if path.is_file() else {}
    previous[str(args.threads)] = {"image": described, "repeats": repeats, "timings": timings,
                                   "max_abs_difference_raw": difference}
    write_results("export", {"size": SIZE, "width": WIDTH, "classes": CLASSES, "runs": previous})


if __name__ == "__main__":
    main()
