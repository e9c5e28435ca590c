"""``python -m yolo.evaluate CKPT --data ROOT --split 2007/test [--compare CKPT2] [--out DIR]``

Runs the model once per split (predictions cached under DIR, with a progress bar; a second run
reuses them), then prints and writes, per split:

    rules.csv, per_class.csv      mAP@0.5 by the VOC, VOC07, COCO and course rules (and per class)
    errors.csv, errors_per_class.csv, error_instances.csv   the TIDE breakdown and every error
    calibration.csv, calibration_per_class.csv   reliability bins (confidence vs precision), ECE, MCE
    operating_points.csv          per-class thresholds fitted on that split
    coco_results.json, coco_ground_truth.json     what other tools read
    compare.csv, regressions.csv  with --compare: per-class dAP with its interval, worst images
    summary.json                  the headline numbers of all of it

The thresholds fitted on the first split are saved beside the checkpoint (``<name>.thresholds.json``,
``yolo.thresholds``), where ``Detector.from_checkpoint`` and the dashboard's Detect and GradCAM pages
start from them (``--thresholds FILE`` elsewhere, ``--no-thresholds`` not at all).

The held-out F1 gain of per-class thresholds: fitted on the first split and measured on the
second when two are given, else fitted on the first half of the images and measured on the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from yolo.argtypes import OutputError, image_size, integer, output_file, output_folder, real, write_message
from yolo.config import EVAL_NMS, MAX_IMAGE_SIZE
from yolo.evaluate import (
    calibration,
    compare,
    error_breakdown,
    fit_operating_points,
    held_out_gain,
    metric_table,
    scores_at,
)
from yolo.evaluate.export import coco_ground_truth, coco_results, write_csv, write_json
from yolo.thresholds import read_thresholds, thresholds_path, write_thresholds


# Images per forward pass: 1024 images at 608 px are ~4.5 GB of float input alone; more is a typo.
MAX_BATCH = 1024


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m yolo.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="checkpoint written by train.py (loaded with weights_only)")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (VOCdevkit parent, VOCdevkit or Kaggle)")
    p.add_argument("--split", action="append", required=True,
                   help="split spec, e.g. 2007/test or val; give it twice to fit thresholds on one and test on the other")
    p.add_argument("--compare", type=Path, help="a second checkpoint (B) evaluated on the same images")
    p.add_argument("--out", type=Path, help="output folder (default: evaluate/ beside the checkpoint); one holding "
                   "earlier results (summary.json) is replaced only with --force")
    p.add_argument("--force", action="store_true", help="replace the earlier results in --out (its cached "
                   "predictions are still reused when they match)")
    p.add_argument("--image-size", type=image_size, default=None, help=f"input size, a multiple of 32 up to "
                   f"{MAX_IMAGE_SIZE} (default: the size the checkpoint was validated at, else 416)")
    p.add_argument("--iou", type=real(0, 1), default=0.45, help="NMS IoU threshold, in [0, 1] (default 0.45)")
    p.add_argument("--conf-floor", type=real(0, 1), default=EVAL_NMS.conf_threshold,
                   help=f"lowest confidence kept in the cached predictions, in [0, 1] (default {EVAL_NMS.conf_threshold})")
    p.add_argument("--conf", type=real(0, 1), default=0.25,
                   help="confidence for the per-image A/B regressions, in [0, 1] (default 0.25)")
    p.add_argument("--target-precision", type=real(0, 1, low_open=True),
                   help="choose thresholds reaching this precision, in (0, 1], instead of max F1")
    p.add_argument("--operating-points", type=Path,
                   help="a saved operating-points JSON: also report precision, recall and F1 at its per-class thresholds")
    p.add_argument("--thresholds", type=Path, default=None,
                   help="where to save the per-class thresholds fitted on the first split (default: beside the "
                        "checkpoint, <name>.thresholds.json, where Detector.from_checkpoint and the dashboard look); "
                        "an existing file is replaced only with --force")
    p.add_argument("--no-thresholds", action="store_true", help="do not save the fitted thresholds anywhere")
    p.add_argument("--limit", type=integer(1), help="only the first N images of each split, N >= 1")
    p.add_argument("--batch-size", type=integer(1, MAX_BATCH), default=8,
                   help=f"images per forward pass, 1..{MAX_BATCH} (default 8)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    p.add_argument("--calibration-iou", type=real(0, 1, low_open=True), default=0.5,
                   help="IoU at which a detection counts as correct for calibration (COCO matching), in (0, 1] "
                   "(default 0.5)")
    p.add_argument("--calibration-bins", type=integer(1, 1000), default=10,
                   help="equal-width confidence bins of the reliability diagram, 1..1000 (default 10)")
    args = p.parse_args(argv)
    if args.operating_points is not None and not args.operating_points.is_file():
        p.error(f"no operating-points file at {args.operating_points}")
    for name in ("checkpoint", "compare"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            p.error(f"no checkpoint at {path}")
    if not args.data.exists():
        p.error(f"no dataset folder at {args.data}")
    try:  # before the model runs: a folder that cannot be written, or earlier results without --force
        args.out = output_folder(args.out or args.checkpoint.parent / "evaluate", args.force, "--out", "summary.json")
    except OutputError as err:
        p.error(str(err))
    if args.no_thresholds:
        args.thresholds = None
    else:  # the same for the thresholds file, beside the checkpoint unless --thresholds says
        flag = "--thresholds" if args.thresholds is not None else "thresholds beside the checkpoint:"
        try:
            args.thresholds = output_file(args.thresholds or thresholds_path(args.checkpoint), args.force, flag)
        except OutputError as err:
            p.error(f"{err} (--no-thresholds: do not save them)")
    return args


def split_predictions(detector, root: Path, spec: str, classes, out: Path, args, tag: str):
    """The cached ``PredictionSet`` of one split (computed once, with a progress bar)."""
    from yolo.data.datasets import DetectionDataset
    from yolo.data.layout import build_index
    from yolo.predictions import PredictionSet, predict_samples

    path = out / f"predictions-{tag}.pt"
    checkpoint = Path(detector.checkpoint)
    dataset = DetectionDataset(build_index([root], [spec], classes, progress=False))
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    # Everything the predictions depend on: a file made with another --limit, --data or
    # --conf-floor is not these predictions.
    made_with = {"checkpoint": str(checkpoint), "image_size": detector.image_size, "data": str(Path(root).resolve()),
                 "split": spec, "requested": n, "conf_floor": float(args.conf_floor)}
    if path.is_file() and path.stat().st_mtime >= checkpoint.stat().st_mtime:
        cached = PredictionSet.load(path)
        if {k: cached.meta.get(k, cached.conf_floor if k == "conf_floor" else None) for k in made_with} == made_with:
            print(f"{spec}: reusing {path} ({len(cached)} images)")
            return cached
    samples = (dataset[i] for i in range(n))
    preds = predict_samples(detector, samples, None, args.batch_size, args.conf_floor, total=n, desc=f"{spec} ({tag})")
    preds.meta.update(made_with)
    preds.save(path)
    return preds


def show(title: str, frame: pd.DataFrame) -> None:
    print(f"\n{title}\n{frame.to_string(index=False, float_format=lambda v: f'{v:.4f}')}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from yolo.cpu import configure_threads

    configure_threads(workers=0)  # the cores not already busy (yolo.cpu): 2 spinning threads on a busy 2-core machine ran 3-6x slower than 1
    from yolo.data.layout import DataLayoutError, load_classes
    from yolo.detect import Detector
    from yolo.weights import CheckpointError

    out = args.out
    try:
        classes = load_classes(args.data)
        # the evaluation never depends on thresholds saved earlier: predictions keep every candidate
        detector = Detector.from_checkpoint(args.checkpoint, args.device, args.image_size, operating_points=False)
        other = (Detector.from_checkpoint(args.compare, args.device, args.image_size or detector.image_size,
                                          operating_points=False)
                 if args.compare else None)  # B at A's size: one input for both
        given = None
        if args.operating_points:
            found = read_thresholds(args.operating_points, detector.class_names)
            given = found.points
            if given is None:  # a broken file: said, and the report goes on without it
                print(f"warning: {found.message or f'no operating-points file at {args.operating_points}'}; "
                      "not reporting at given operating points", file=sys.stderr)
        if tuple(detector.class_names) != tuple(classes):
            raise ValueError(f"the checkpoint knows {len(detector.class_names)} classes, the dataset has {len(classes)}")
        if other is not None and tuple(other.class_names) != tuple(detector.class_names):
            raise ValueError(f"--compare {args.compare} knows {len(other.class_names)} classes "
                             f"({', '.join(other.class_names[:4])}, ...), not the checkpoint's: AP per class "
                             "cannot be compared")
        sets = {spec: split_predictions(detector, args.data, spec, classes, out, args, f"A-{spec.replace('/', '-')}")
                for spec in args.split}
    except (CheckpointError, DataLayoutError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return report(args, detector, other, given, sets, classes, out)
    except OSError as err:  # a full disk, a file where a folder goes, ...: one line
        print(f"error: {write_message(err)}", file=sys.stderr)
        return 2


def report(args, detector, other, given, sets, classes, out: Path) -> int:
    """Every table of every split: printed and written under ``out``."""
    names = list(detector.class_names)
    summary: dict = {"checkpoint": str(args.checkpoint), "image_size": detector.image_size, "nms_iou": args.iou, "splits": {}}
    results = {}
    for spec, preds in sets.items():
        folder = out / spec.replace("/", "-")
        dets, truth = preds.detections(conf=preds.conf_floor, iou=args.iou, max_detections=EVAL_NMS.max_detections), preds.ground_truth()
        results[spec] = (dets, truth)
        rules, per_class = metric_table(dets, truth, names)
        show(f"== {spec}: {len(preds)} images, mAP@0.5 by rule", rules[["rule", "mAP@0.5"]])
        for row in rules.itertuples():
            print(f"  {row.rule}: {row.why}")
        breakdown = error_breakdown(dets, truth, len(names))
        show(f"-- {spec}: TIDE error breakdown (dAP, 0..1; mAP {breakdown.map:.4f} by COCO's 101 points)",
             breakdown.table())
        cal = calibration(dets, truth, len(names), args.calibration_iou, args.calibration_bins)
        show(f"-- {spec}: calibration at IoU {cal.iou:g} ({cal.detections} detections): ECE {cal.ece:.4f}, "
             f"MCE {cal.mce:.4f}", cal.bins)
        write_csv(cal.bins, folder / "calibration.csv")
        write_csv(cal.per_class.assign(**{"class": names}), folder / "calibration_per_class.csv")
        points = fit_operating_points(dets, truth, names, args.target_precision, args.iou)
        points.meta = {"split": spec, "images": len(preds), "checkpoint": str(args.checkpoint)}
        thresholds = pd.DataFrame({"class": names, "threshold": points.class_thresholds,
                                   "F1": [points.f1.get(n) for n in names]})
        show(f"-- {spec}: operating points ({points.rule}; one global threshold {points.global_threshold:.3f})", thresholds)
        instances = breakdown.errors.assign(image=[preds.image_ids[i] for i in breakdown.errors["image"]],
                                            **{"class": [names[c] for c in breakdown.errors["class"]]})
        write_csv(rules, folder / "rules.csv")
        write_csv(per_class, folder / "per_class.csv")
        write_csv(breakdown.table(), folder / "errors.csv")
        write_csv(breakdown.per_class.assign(**{"class": names}), folder / "errors_per_class.csv")
        write_csv(instances, folder / "error_instances.csv")
        write_csv(thresholds, folder / "operating_points.csv")
        if spec == args.split[0] and args.thresholds is not None:
            summary["thresholds_file"] = str(write_thresholds(points, args.thresholds))
        write_json(coco_results(dets), folder / "coco_results.json")
        write_json(coco_ground_truth(truth, preds.image_ids, preds.sizes, names), folder / "coco_ground_truth.json")
        if given is not None:
            at = scores_at(dets, truth, len(names), given.class_thresholds)
            print(f"-- {spec}: at the given operating points ({args.operating_points.name}): precision "
                  f"{at['precision']:.4f}, recall {at['recall']:.4f}, F1 {at['f1']:.4f}")
        entry = {"images": len(preds), "map50": dict(zip(rules["rule"], rules["mAP@0.5"])),
                 "tide": {"map": breakdown.map, **breakdown.delta, **breakdown.oracle},
                 "calibration": cal.summary(names),
                 "global_threshold": points.global_threshold, "class_thresholds": dict(zip(names, points.class_thresholds))}
        if other is not None:
            preds_b = split_predictions(other, args.data, spec, classes, out, args, f"B-{spec.replace('/', '-')}")
            dets_b = preds_b.detections(conf=preds_b.conf_floor, iou=args.iou, max_detections=EVAL_NMS.max_detections)
            ab = compare(dets, dets_b, truth, names, preds.image_ids, args.conf)
            show(f"-- {spec}: B ({args.compare.name}) - A per class, worst first (95% bootstrap interval)",
                 ab.per_class[["class", "AP A", "AP B", "dAP", "low", "high"]])
            show(f"-- {spec}: images where B is worse (top 10 of {len(ab.regressions)})", ab.regressions.head(10))
            write_csv(ab.per_class, folder / "compare.csv")
            write_csv(ab.regressions, folder / "regressions.csv")
            entry["compare"] = {"checkpoint_b": str(args.compare), "map_a": ab.map_a, "map_b": ab.map_b,
                                "regressions": len(ab.regressions),
                                "significant_classes": ab.per_class.loc[ab.per_class["significant"], "class"].tolist()}
        if given is not None:
            entry["given_operating_points"] = {"file": str(args.operating_points),
                                               **{k: at[k] for k in ("precision", "recall", "f1")}}
        summary["splits"][spec] = entry
    first = args.split[0]
    dets, truth = results[first]
    if len(args.split) > 1:
        gain = held_out_gain(results[first], results[args.split[1]], names, args.target_precision)
        how = f"fitted on {first}, measured on {args.split[1]}"
    else:
        half = len(truth) // 2
        gain = held_out_gain((dets[:half], truth[:half]), (dets[half:], truth[half:]), names, args.target_precision)
        how = f"fitted on the first {half} images of {first}, measured on the other {len(truth) - half}"
    summary["held_out_f1"] = {"how": how, **{k: v for k, v in gain.items() if k != "points"}}
    print(f"\nHeld-out F1 ({how}): per-class thresholds {gain['f1_per_class_thresholds']:.4f}, "
          f"one global threshold {gain['f1_global_threshold']:.4f}, gain {gain['f1_gain']:+.4f}")
    write_json(summary, out / "summary.json")
    if args.thresholds is not None:
        print(f"\nsaved the thresholds fitted on {first} to {args.thresholds}: Detector.from_checkpoint and the "
              "dashboard's Detect and GradCAM pages start from them")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
