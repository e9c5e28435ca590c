"""``python -m yolo.review CKPT --data DIR --split S [--out review.csv|json]``

Runs the model once over the split (predictions cached with ``python -m yolo.evaluate``'s, so
either command reuses the other's, with a progress bar), scores every label and suspect
prediction for five kinds of likely label mistake (missing, wrong_class, loose, spurious,
duplicate; see ``yolo.review``) and writes the ranked list: worst image first, worst box first
within it, one row per box with its kind, score, label and the model's suggestion. Thresholds:
the checkpoint's saved operating points (``<ckpt stem>.thresholds.json``) where present, else
--conf. Review the list in the dashboard (Evaluate page, Label review) and write a corrected
copy with ``python -m yolo.data apply-review``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolo.argtypes import OutputError, image_size, integer, output_file, real
from yolo.config import EVAL_NMS


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m yolo.review", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="checkpoint written by train.py (loaded with weights_only)")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset folder, any layout the project reads (VOCdevkit parent, VOCdevkit, Kaggle)")
    p.add_argument("--split", required=True, help="split spec, e.g. 2007/test or val")
    p.add_argument("--out", type=Path, help="the ranked list: .csv or .json (default: review/<split>.csv "
                                            "beside the checkpoint)")
    p.add_argument("--cache", type=Path, help="where predictions are cached (default: evaluate/ beside the "
                                              "checkpoint, shared with python -m yolo.evaluate)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--conf", type=real(0, 1), default=0.5,
                   help="confidence a prediction needs to count as the model's opinion, when the checkpoint "
                        "has no saved operating points (default 0.5)")
    p.add_argument("--operating-points", type=Path,
                   help="an operating-points JSON to use instead of the one beside the checkpoint")
    p.add_argument("--iou", type=real(0, 1), default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--min-score", type=real(0, 1), default=0.05, help="rows scoring below this in every kind are "
                                                                 "left out of the list (default 0.05)")
    p.add_argument("--top", type=integer(0), default=20, help="images printed (default 20; the file has them all)")
    p.add_argument("--image-size", type=image_size, default=None, help="input size, a multiple of 32 (default: the size "
                   "the checkpoint was validated at, else 416)")
    p.add_argument("--conf-floor", type=real(0, 1), default=EVAL_NMS.conf_threshold,
                   help=f"lowest confidence kept in the cached predictions (default {EVAL_NMS.conf_threshold})")
    p.add_argument("--limit", type=integer(1), help="only the first N images of the split")
    p.add_argument("--batch-size", type=integer(1, 1024), default=8, help="images per forward pass (default 8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    args = p.parse_args(argv)
    if not args.checkpoint.is_file():
        p.error(f"no checkpoint at {args.checkpoint}")
    if not args.data.exists():
        p.error(f"no dataset folder at {args.data}")
    if args.out is not None and args.out.suffix.lower() not in (".csv", ".json"):
        p.error(f"--out must end in .csv or .json, got {args.out.name}")
    if args.operating_points is not None and not args.operating_points.is_file():
        p.error(f"no operating-points file at {args.operating_points}")
    try:  # before the model runs: a file that cannot be written, or an earlier list without --force
        default = args.checkpoint.parent / "review" / f"{args.split.replace('/', '-')}.csv"
        args.out = output_file(args.out or default, args.force, "--out")
    except OutputError as err:
        p.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from yolo.weights import CheckpointError
    from yolo.data.layout import DataLayoutError, build_index, load_classes
    from yolo.detect import Detector
    from yolo.evaluate.__main__ import split_predictions
    from yolo.review import ReviewConfig, review_predictions, thresholds_for, truth_for

    try:
        classes = load_classes(args.data)
        detector = Detector.from_checkpoint(args.checkpoint, args.device, args.image_size)
        if tuple(detector.class_names) != tuple(classes):
            raise ValueError(f"the checkpoint knows {len(detector.class_names)} classes "
                             f"({', '.join(detector.class_names[:4])}, ...), the dataset has {len(classes)}")
        if args.operating_points is not None:
            from yolo.thresholds import load_thresholds

            conf = tuple(load_thresholds(args.operating_points, classes).class_thresholds)
            source = str(args.operating_points)
        else:
            conf, source = thresholds_for(args.checkpoint, classes, args.conf)
        index = build_index([args.data], [args.split], classes, progress=False)
        cache = args.cache or args.checkpoint.parent / "evaluate"
        preds = split_predictions(detector, args.data, args.split, classes, cache, args,
                                  f"A-{args.split.replace('/', '-')}")
    except (CheckpointError, DataLayoutError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"thresholds: {source}")
    config = ReviewConfig(conf=conf, nms_iou=args.iou, min_score=args.min_score)
    result = review_predictions(preds, truth_for(index, preds.image_ids), config, classes)
    ranked = result.ranked()
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        ranked.to_json(out, orient="records", indent=1)
    else:
        ranked.to_csv(out, index=False)
    top = result.images.head(args.top)
    print(f"\n{args.split}: {len(preds)} images, {int((result.images['issues'] > 0).sum())} with a likely label "
          f"mistake (score >= 0.5); the worst {len(top)}:")
    print(top[["image_id", "score", "kind", "issues"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    counts = ranked.loc[ranked["score"] >= 0.5, "kind"].value_counts()
    print("\nboxes scoring >= 0.5 by kind: " + (", ".join(f"{k} {n}" for k, n in counts.items()) or "none"))
    print(f"\nwrote {len(ranked)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
