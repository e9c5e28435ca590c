"""Benchmark: the project's AP rules, TIDE breakdown and calibration beside hotcoco's, side by side.

    python -m bench.eval_vs_hotcoco                      # 5,000 x 100, then 50,000 x 100 in child processes
    python -m bench.eval_vs_hotcoco --large 0 --repeats 5

Inputs: ``bench.map``'s seeded synthetic set (1-10 boxes per image, 20 classes, ~10% difficult,
exactly ``--dets`` detections per image), as per-image tensor dicts. One thread on both sides
(``torch.set_num_threads(1)``, ``RAYON_NUM_THREADS=1``). Times are process CPU seconds, each the
median of ``--repeats`` runs, ours and hotcoco's interleaved in one process, with the load average.

hotcoco gets its cheapest path from those tensors, and its timing includes it: concatenate, one
(N, 7) array ``[image, x, y, w, h, score, class]``, ``COCO.from_arrays`` for the ground truth
(difficult as ``iscrowd``), ``loadRes``, ``COCOeval`` with one IoU (0.5), one area range and
maxDets 100, ``evaluate`` + ``accumulate``. Its TIDE and calibration rows add ``tide_errors()`` /
``calibration()`` to that path (they need the evaluation). Ours: ``voc_evaluate`` (VOC all-point
and VOC07 come out of one call), ``coco_map50``, ``error_breakdown``, ``calibration``, each from
the per-image dicts.

Large size (``--large`` images): each side runs once in its own child process, which builds the
inputs, resets its peak-RSS mark (``/proc/self/clear_refs``) and reports CPU seconds and the
peak resident memory added by the call (VmHWM after minus VmRSS before).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # hotcoco: one thread, as ours

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import print_table, write_results  # noqa: E402
from bench.map import make_inputs  # noqa: E402


def hotcoco_eval(dets: list, gts: list, num_classes: int):
    """hotcoco's COCOeval after evaluate + accumulate, built from the per-image tensors."""
    import hotcoco

    n = len(gts)
    gb = torch.cat([g["boxes"] for g in gts]).double().numpy()
    g_img = np.repeat(np.arange(1, n + 1), [len(g["labels"]) for g in gts])
    xywh = np.concatenate([gb[:, :2], gb[:, 2:] - gb[:, :2]], 1)
    images = [{"id": i + 1, "width": 500, "height": 375} for i in range(n)]
    cats = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    truth = hotcoco.COCO.from_arrays(images, cats, g_img, torch.cat([g["labels"] for g in gts]).numpy() + 1, xywh,
                                     iscrowd=torch.cat([g["difficult"] for g in gts]).numpy().astype(np.int64),
                                     area=xywh[:, 2] * xywh[:, 3])
    db = torch.cat([d["boxes"] for d in dets]).double().numpy()
    arr = np.empty((len(db), 7))
    arr[:, 0] = np.repeat(np.arange(1, n + 1), [len(d["labels"]) for d in dets])
    arr[:, 1:3] = db[:, :2]
    arr[:, 3:5] = db[:, 2:] - db[:, :2]
    arr[:, 5] = torch.cat([d["scores"] for d in dets]).double().numpy()
    arr[:, 6] = torch.cat([d["labels"] for d in dets]).numpy() + 1
    ev = hotcoco.COCOeval(truth, truth.loadRes(arr), "bbox")
    params = ev.params
    params.iou_thrs, params.area_rng, params.area_rng_lbl, params.max_dets = [0.5], [[0, 1e10]], ["all"], [100]
    ev.params = params
    ev.evaluate()
    ev.accumulate()
    return ev


def hotcoco_map(ev) -> float:
    precision = np.asarray(ev.eval["precision"])[0, :, :, 0, -1]  # (101, classes)
    return float(np.mean([precision[:, k].mean() for k in range(precision.shape[1]) if (precision[:, k] > -1).any()]))


def operations(dets: list, gts: list, num_classes: int) -> dict[str, tuple]:
    """name -> (side, callable, what it is compared with)."""
    from yolo.evaluate import calibration, coco_map50, error_breakdown
    from yolo.metrics import voc_evaluate

    return {
        "ours: VOC all-point + VOC07 (voc_evaluate)": ("ours", lambda: voc_evaluate(dets, gts, num_classes)),
        "ours: COCO 101-point (coco_map50)": ("ours", lambda: coco_map50(dets, gts, num_classes)),
        "ours: TIDE (error_breakdown)": ("ours", lambda: error_breakdown(dets, gts, num_classes)),
        "ours: calibration (10 bins, IoU 0.5)": ("ours", lambda: calibration(dets, gts, num_classes)),
        "hotcoco: AP (from tensors, evaluate + accumulate)": ("hotcoco", lambda: hotcoco_eval(dets, gts, num_classes)),
        "hotcoco: TIDE (tide_errors, its evaluate included)":
            ("hotcoco", lambda: hotcoco_eval(dets, gts, num_classes).tide_errors()),
        "hotcoco: calibration (its evaluate included)":
            ("hotcoco", lambda: hotcoco_eval(dets, gts, num_classes).calibration(n_bins=10, iou_threshold=0.5)),
    }


def cpu_time(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def side_by_side(images: int, dets_per_image: int, classes: int, repeats: int) -> dict:
    dets, gts = make_inputs(images, dets_per_image, classes)
    ops = operations(dets, gts, classes)
    for _, fn in ops.values():  # warm-up (imports, allocator)
        cpu_time(fn)
    cpu: dict[str, list[float]] = {k: [] for k in ops}
    wall: dict[str, list[float]] = {k: [] for k in ops}
    outs: dict[str, object] = {}
    for _ in range(repeats):  # interleaved: every operation once per round
        for name, (_, fn) in ops.items():
            c, w, outs[name] = cpu_time(fn)
            cpu[name].append(c)
            wall[name].append(w)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    ev = outs["hotcoco: AP (from tensors, evaluate + accumulate)"]
    voc, (coco, _), tide, cal = (outs[k] for k in list(ops)[:4])
    hc_tide = outs["hotcoco: TIDE (tide_errors, its evaluate included)"]
    hc_cal = outs["hotcoco: calibration (its evaluate included)"]
    hc_ap = med["hotcoco: AP (from tensors, evaluate + accumulate)"]
    hc_tide_s = med["hotcoco: TIDE (tide_errors, its evaluate included)"]
    hc_cal_s = med["hotcoco: calibration (its evaluate included)"]
    rows = [
        {"rule": "VOC all-point", "ours_s": med[list(ops)[0]], "hotcoco_s": hc_ap, "value_ours": voc.map},
        {"rule": "VOC07 11-point", "ours_s": med[list(ops)[0]], "hotcoco_s": hc_ap, "value_ours": voc.map_voc07},
        {"rule": "COCO 101-point @0.5", "ours_s": med[list(ops)[1]], "hotcoco_s": hc_ap, "value_ours": coco,
         "value_hotcoco": hotcoco_map(ev)},
        {"rule": "TIDE breakdown", "ours_s": med[list(ops)[2]], "hotcoco_s": hc_tide_s, "value_ours": tide.map,
         "value_hotcoco": hc_tide["ap_base"]},
        {"rule": "calibration ECE", "ours_s": med[list(ops)[3]], "hotcoco_s": hc_cal_s, "value_ours": cal.ece,
         "value_hotcoco": hc_cal["ece"]},
    ]
    for r in rows:
        r["speedup"] = r["hotcoco_s"] / r["ours_s"]
    return {"images": images, "detections_per_image": dets_per_image, "classes": classes, "repeats": repeats,
            "rows": rows, "cpu_s": cpu, "wall_s": wall, "tide_counts_ours": tide.counts,
            "tide_counts_hotcoco": hc_tide["counts"], "load_average": os.getloadavg()}


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def child(side: str, images: int, dets_per_image: int, classes: int) -> None:
    """One side, once, at a large size: CPU seconds and the peak memory the call added."""
    torch.set_num_threads(1)
    dets, gts = make_inputs(images, dets_per_image, classes)
    name = {"ours-ap": 1, "ours-voc": 0, "ours-tide": 2, "ours-cal": 3, "hotcoco-ap": 4, "hotcoco-tide": 5,
            "hotcoco-cal": 6}[side]
    fn = list(operations(dets, gts, classes).values())[name][1]
    before = _status_kb("VmRSS:")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark
    except OSError:
        pass
    cpu, wall, _ = cpu_time(fn)
    print(json.dumps({"side": side, "cpu_s": cpu, "wall_s": wall,
                      "peak_added_mb": (_status_kb("VmHWM:") - before) / 1024, "inputs_rss_mb": before / 1024}))


def large(images: int, dets_per_image: int, classes: int) -> list[dict]:
    out = []
    for side in ("ours-voc", "ours-ap", "ours-tide", "ours-cal", "hotcoco-ap", "hotcoco-tide", "hotcoco-cal"):
        res = subprocess.run([sys.executable, "-m", "bench.eval_vs_hotcoco", "--child", side, "--images", str(images),
                              "--dets", str(dets_per_image), "--classes", str(classes)],
                             capture_output=True, text=True, check=True)
        out.append({**json.loads(res.stdout.strip().splitlines()[-1]), "load_average": os.getloadavg()[0]})
        print(out[-1], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000, help="images in the side-by-side set")
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--large", type=int, default=50000, help="images of the large run (0: skip it)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.images, args.dets, args.classes)
        return
    torch.set_num_threads(1)
    result = side_by_side(args.images, args.dets, args.classes, args.repeats)
    print(f"{args.images} images x {args.dets} detections, {args.classes} classes, one thread, CPU s (median of "
          f"{args.repeats}), load average {', '.join(f'{x:.1f}' for x in result['load_average'])}")
    print_table([{k: r.get(k, "") for k in ("rule", "ours_s", "hotcoco_s", "speedup", "value_ours", "value_hotcoco")}
                 for r in result["rows"]], "side by side")
    print(f"TIDE counts ours {result['tide_counts_ours']}\n      hotcoco   {result['tide_counts_hotcoco']}")
    payload = {"small": result}
    if args.large:
        payload["large"] = {"images": args.large, "detections_per_image": args.dets, "runs": large(args.large, args.dets, args.classes)}
        print_table([{k: r[k] for k in ("side", "cpu_s", "peak_added_mb", "inputs_rss_mb", "load_average")}
                     for r in payload["large"]["runs"]], f"{args.large} images x {args.dets}, one run each, own process")
    write_results("eval_vs_hotcoco", payload)


if __name__ == "__main__":
    main()
