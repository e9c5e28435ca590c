"""Benchmark: dashboard interactions through ``streamlit.testing.v1.AppTest`` (the whole page rerun).

    python -m bench.dashboard                  # prints a table, writes bench/results/dashboard.json
    python -m bench.dashboard --repeats 5 --limit 64

Detect, width-1.0 YOLOv3 (random weights, VOC's 20 classes, 416 input), a voc-mini val image, the
model cached (st.cache_resource): the time of a page rerun after moving the confidence slider
(target < 0.3 s), and for scale the rerun after choosing another image (a forward pass).

Evaluate, voc-mini val with predictions cached on disk (written once by the page's own button,
timed too): the rerun that sweeps the thresholds from scratch (NMS at 3 IoUs, precision / recall
at 19 confidences each, mAP per IoU; the sweep and NMS caches cleared first; target < 2 s), and
the reruns after moving the confidence slider or the NMS IoU.

Random weights are the hard case for the sweep: nearly every image keeps the 1000-candidate cap
above the 0.01 floor, where a trained model keeps far fewer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
from bench.common import print_table, write_results

VOC_MINI = Path(os.environ.get("VOC_MINI") or REPO.parent / "shared" / "data" / "voc-mini")
DETECT, EVALUATE = "views/detect.py", "views/evaluate.py"


def timed_runs(at, change, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median/min seconds of ``at.run()`` after ``change(at, k)`` sets widget values."""
    times = []
    for k in range(warmup + repeats):
        change(at, k)
        start = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - start
        if at.exception:
            raise RuntimeError("\n".join(e.message for e in at.exception))
        if k >= warmup:
            times.append(elapsed)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def open_page(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()
    at.switch_page(page).run()
    if at.exception:
        raise RuntimeError("\n".join(e.message for e in at.exception))
    return at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--limit", type=int, default=0, help="evaluate the first N val images (0: all)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--scratch", type=Path, help="keep the checkpoint and saved predictions here between "
                        "runs (e.g. bench/scratch/dashboard); default: a temporary folder")
    args = parser.parse_args()
    if not (VOC_MINI / "VOCdevkit").is_dir():
        raise SystemExit(f"voc-mini not found at {VOC_MINI}; set VOC_MINI")

    import torch

    from yolo.model import YOLOv3
    from yolo.weights import save_weights

    rows, figures = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        if args.scratch is not None:
            tmp = str(args.scratch.resolve() / f"width-{args.width}")
        logs = Path(tmp) / "logs"
        checkpoint = logs / "bench" / "version_0" / "checkpoints" / "best-epoch=000.ckpt"
        if not checkpoint.is_file():
            torch.manual_seed(0)
            save_weights(YOLOv3(20, args.width), checkpoint)
        os.environ.update(YOLO_DATA=str(VOC_MINI), YOLO_LOGS=str(logs), YOLO_CACHE_DIR=str(Path(tmp) / "cache"))
        for name in ("YOLO_CHECKPOINT", "YOLO_DEMO"):
            os.environ.pop(name, None)

        # ---------------------------------------------------------------- Detect
        start = time.perf_counter()
        at = open_page(DETECT)
        first = time.perf_counter() - start
        values = (0.02, 0.03)  # random weights score ~0.03: both thresholds keep and drop boxes

        def move_conf(at, k):
            at.slider(key="det_conf").set_value(values[k % 2])

        def next_image(at, k):
            at.number_input(key="_w_image_number").set_value((k + 1) % 50)

        slider = timed_runs(at, move_conf, args.repeats)
        image = timed_runs(at, next_image, max(3, args.repeats // 3), warmup=1)
        rows += [
            {"page": "Detect", "action": "first open (model load + forward)", "median_s": first, "min_s": first,
             "repeats": 1, "target_s": ""},
            {"page": "Detect", "action": "confidence slider moved", **slider, "target_s": 0.3},
            {"page": "Detect", "action": "another image (forward pass)", **image, "target_s": ""},
        ]

        # ---------------------------------------------------------------- Evaluate
        at = open_page(EVALUATE)
        size = at.number_input(key="ev_limit").value
        limit = args.limit or size
        at.number_input(key="ev_limit").set_value(limit).run()
        start = time.perf_counter()
        if [b for b in at.button if b.key == "ev_run"]:  # predicts, saves, reruns: evaluation + sweep
            at.button(key="ev_run").click().run()
        predict = time.perf_counter() - start  # ~0 when --scratch already holds the predictions
        evaluation = sys.modules["evaluation"]  # the Evaluate page's helpers, as the page imported them

        def sweep_from_scratch(at, k):
            evaluation.threshold_sweep.clear()
            evaluation._nms_store.clear()
            evaluation.evaluate.clear()
            at.slider(key="ev_conf").set_value(0.25)

        def move_eval_conf(at, k):
            at.slider(key="ev_conf").set_value((0.2, 0.3)[k % 2])

        saved = next((logs / ".dashboard" / "predictions").glob("*.pt"))

        def move_nms(at, k):  # to an IoU whose NMS is not cached yet (the sweep's stay cached)
            store = evaluation._nms_store(str(saved), saved.stat().st_mtime_ns)  # the page's own dict
            store.pop(0.5, None)
            store.pop(0.4, None)
            evaluation.evaluate.clear()
            at.select_slider(key="ev_iou").set_value((0.5, 0.4)[k % 2])

        sweep = timed_runs(at, sweep_from_scratch, max(3, args.repeats // 2), warmup=1)
        conf = timed_runs(at, move_eval_conf, args.repeats)
        nms = timed_runs(at, move_nms, max(3, args.repeats // 2), warmup=1)
        preds = evaluation.load_predictions(saved)
        if predict > 1.0:  # not when --scratch already held the predictions
            rows.append({"page": "Evaluate", "action": f"predict {limit} val images once (button)",
                         "median_s": predict, "min_s": predict, "repeats": 1, "target_s": ""})
        rows += [
            {"page": "Evaluate", "action": "threshold sweep from scratch (3 NMS IoU x 19 conf)", **sweep,
             "target_s": 2.0},
            {"page": "Evaluate", "action": "confidence slider moved", **conf, "target_s": ""},
            {"page": "Evaluate", "action": "NMS IoU changed (one NMS + evaluation)", **nms, "target_s": ""},
        ]
        figures = {"images": limit, "candidates_kept": int(preds.scores.numel()), "width": args.width,
                   "input_size": 416, "torch_threads": torch.get_num_threads(),
                   "load_average_1min": os.getloadavg()[0]}  # other work on the machine inflates figures

    print_table(rows, f"Dashboard reruns through AppTest (width {args.width}, voc-mini val, {limit} images)")
    write_results("dashboard", {"rows": rows, **figures,
                                "command": "python -m bench.dashboard " + " ".join(sys.argv[1:])})


if __name__ == "__main__":
    main()
