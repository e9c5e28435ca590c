"""``python -m yolo.data {demo,check,download,convert,anchors,apply-review} ...`` (see ``--help`` of each command)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from yolo.argtypes import image_size, integer, real

MAX_DEMO = 100_000  # demo images per split: 320 is the default; each is a small JPEG written to disk


def _demo(args: argparse.Namespace) -> int:
    from yolo.data.demo import write_demo

    out = write_demo(args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                     seed=args.seed, overwrite=args.force)
    print(f"wrote the demo dataset to {out} ({args.n_train} train, {args.n_val} val, {args.n_test} test images)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from yolo.data.check import check_dataset

    from yolo.argtypes import OutputError, output_file, read_names, write_message
    from yolo.data.layout import DataLayoutError

    classes = None
    try:
        if args.classes:
            p = Path(args.classes).expanduser()
            classes = read_names(p) if p.exists() else [c.strip() for c in args.classes.split(",") if c.strip()]
            if not classes:
                raise ValueError(f"--classes {args.classes!r}: no class names")
        if args.json:  # before the dataset is read
            output_file(args.json, args.force, "--json")
    except (ValueError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        report = check_dataset(args.path, args.split or None, classes, args.cache_dir, progress=not args.quiet)
    except DataLayoutError as e:  # not a dataset, a missing split, a split list linked from outside
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format_text(None if args.max_problems == 0 else args.max_problems))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report.to_dict(), indent=1))
        except OSError as e:
            print(f"error: {write_message(e, args.json)}", file=sys.stderr)
            return 2
        print(f"report written to {args.json}")
    return 1 if (args.strict and not report.ok) else 0


def _download(args: argparse.Namespace) -> int:
    from yolo.data.download import VOC_SETS, DownloadError, download_voc

    sets = [s for s in VOC_SETS if s[0] in args.years]
    try:
        done = download_voc(args.root, sets, timeout=args.timeout)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("already present: nothing to download" if not done else f"downloaded {done} into {args.root}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from yolo.data.convert import convert
    from yolo.data.layout import DataLayoutError

    try:
        report = convert(args.src, args.dst, args.to, args.splits, copy=args.copy, cache_dir=args.cache_dir,
                         progress=not args.quiet)
    except DataLayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format_text())
    return 0


def _anchors(args: argparse.Namespace) -> int:
    from yolo.anchors import COURSE, auto_verdict, fit, fit_anchors, index_fractions
    from yolo.data.layout import DataLayoutError, build_index, default_splits, load_classes

    try:
        specs = args.splits or list(default_splits(args.data)["train"])
        index = build_index([args.data], specs, load_classes(args.data), args.cache_dir, progress=not args.quiet)
    except DataLayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wh = index_fractions(index)
    if len(wh) < 9:
        print(f"error: {len(wh)} boxes in {', '.join(specs)}: at least 9 are needed to fit anchors", file=sys.stderr)
        return 2
    fitted = fit_anchors(wh, args.seed)
    print(f"{len(wh)} boxes of {', '.join(specs)}; sizes in pixels at input {args.size} (fractions x {args.size})")
    for name, a in (("course", COURSE), ("fitted", fitted)):
        f = fit(wh, a, args.size)
        print(f"\n{name}: {f.line()}")
        for stride, scale in zip((32, 16, 8), a.pixels(args.size)):
            print(f"  stride {stride:2d}: " + "  ".join(f"{w:6.1f} x {h:6.1f}" for w, h in scale))
    print(f"\n{auto_verdict(fit(wh, COURSE, args.size).bpr)}")
    if args.out:
        Path(args.out).write_text(fitted.to_json() + "\n")
        print(f"\nfitted anchors written to {args.out} (train.py --anchors {args.out})")
    return 0


def _apply_review(args: argparse.Namespace) -> int:
    from yolo.data.apply_review import apply_review
    from yolo.data.layout import DataLayoutError

    try:
        summary = apply_review(args.data, args.review, args.out, args.to, args.cache_dir)
    except (DataLayoutError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolo.data", description="Dataset tools for YOLOv3 on Pascal VOC.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="write the synthetic demo dataset (VOCdevkit layout)",
                       description="Write the synthetic demo dataset: OUT/classes.txt and OUT/VOCdevkit/VOCdemo.")
    p.add_argument("out", help="output folder (created; must be empty unless --force)")
    p.add_argument("--n-train", type=integer(1, MAX_DEMO), default=320, help=f"training images, 1..{MAX_DEMO} (default 320)")
    p.add_argument("--n-val", type=integer(1, MAX_DEMO), default=80, help=f"validation images, 1..{MAX_DEMO} (default 80)")
    p.add_argument("--n-test", type=integer(1, MAX_DEMO), default=80, help=f"test images, 1..{MAX_DEMO} (default 80)")
    p.add_argument("--seed", type=integer(0, 2**32 - 1), default=0, help="random seed; same seed, same dataset (default 0)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists and is not empty")
    p.set_defaults(func=_demo)

    p = sub.add_parser("check", help="report on a dataset: counts, box statistics, every problem",
                       description="Read a dataset as training would and report images/objects per split and "
                                   "class, boxes per image, box sizes and every problem with its file.")
    p.add_argument("path", help="dataset folder (VOCdevkit parent, VOCdevkit, VOC-layout folder or Kaggle layout)")
    p.add_argument("--split", action="append", metavar="SPEC",
                   help="split spec to check, e.g. 2007/test or train (repeatable; default: every split)")
    p.add_argument("--classes", help="class list: a file with one name per line, or comma-separated names "
                                     "(default: the dataset's classes.txt, else VOC's 20)")
    p.add_argument("--cache-dir", help="where to keep annotation indexes (default: beside the data, or "
                                       "~/.cache/yolo-voc / $YOLO_CACHE_DIR when it is read-only)")
    p.add_argument("--max-problems", type=integer(0), default=50, help="problems listed one by one (0 = all; default 50)")
    p.add_argument("--json", metavar="FILE", help="also write the full report as JSON to FILE (an existing file "
                   "only with --force)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any image was skipped or object dropped")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_check)

    p = sub.add_parser("download", help="download Pascal VOC 2007 trainval+test and 2012 trainval",
                       description="Download VOC with torchvision into ROOT/VOCdevkit (sets already there are "
                                   "skipped). Offline, it fails at once and says where to put a copy by hand.")
    p.add_argument("root", help="folder that will hold VOCdevkit/")
    p.add_argument("--years", nargs="+", default=["2007", "2012"], choices=["2007", "2012"],
                   help="which years (default: 2007 2012)")
    p.add_argument("--timeout", type=real(0, 3600, low_open=True), default=5.0,
                   help="seconds to wait for the server before giving up, in (0, 3600] (default 5)")
    p.set_defaults(func=_download)

    p = sub.add_parser("convert", help="write a dataset in another layout (voc, yolo, coco); SRC is never modified",
                       description="Read SRC (any layout python -m yolo.data check reads) as training would and write "
                                   "it to DST as VOC, YOLO (data.yaml) or COCO JSON. Images are hard-linked (copied "
                                   "with --copy, or when linking is impossible). Prints what could not be carried.")
    p.add_argument("src", help="dataset folder (or COCO JSON file) to read")
    p.add_argument("dst", help="output folder (must not exist or be empty; not inside SRC)")
    p.add_argument("--to", required=True, choices=["voc", "yolo", "coco"], help="layout to write")
    p.add_argument("--splits", nargs="+", metavar="SPEC", help="split specs to convert (default: every split)")
    p.add_argument("--copy", action="store_true", help="copy images instead of hard-linking them")
    p.add_argument("--cache-dir", help="where SRC's annotation index is cached (default ~/.cache/yolo-voc or "
                                       "$YOLO_CACHE_DIR; never beside SRC)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_convert)

    p = sub.add_parser("anchors", help="how well the course anchors fit a dataset's training boxes, and a fitted set",
                       description="Measure the course anchors on the training boxes (best possible recall: boxes "
                                   "whose best anchor has shape IoU > 0.5, the course's assignment threshold; mean "
                                   "best IoU; anchors above threshold per box) and fit nine anchors (k-means with an "
                                   "IoU distance, then evolution), sorted into the three scales.")
    p.add_argument("data", help="dataset folder (any layout python -m yolo.data check reads)")
    p.add_argument("--splits", nargs="+", metavar="SPEC", help="split specs whose boxes are used (default: the training split)")
    p.add_argument("--size", type=image_size, default=416,
                   help="input side in pixels the anchors are printed at: a multiple of 32 (default 416)")
    p.add_argument("--seed", type=integer(0, 2**32 - 1), default=0,
                   help="seed of the fit; same seed, same anchors (default 0)")
    p.add_argument("--out", metavar="FILE", help="write the fitted anchors as JSON (for train.py --anchors FILE)")
    p.add_argument("--cache-dir", help="where annotation indexes are kept (as for check)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_anchors)

    p = sub.add_parser("apply-review", help="write a corrected copy of a dataset from a label-review file",
                       description="Apply the accepted decisions of a label-review file (the dashboard's Label "
                                   "review, next to the dataset) to a copy of DATA written to OUT; DATA is never "
                                   "modified. Prints what changed.")
    p.add_argument("data", help="dataset folder the review was made on")
    p.add_argument("review", help="the review file (label_review-<split>.json)")
    p.add_argument("out", help="new (or empty) folder for the corrected copy, outside DATA")
    p.add_argument("--to", choices=["voc", "kaggle", "yolo", "coco"],
                   help="layout of the copy (default: DATA's own; VOC and Kaggle sources are copied whole, otherwise "
                        "the reviewed split only is written)")
    p.add_argument("--cache-dir", help="where annotation indexes are kept (as for check)")
    p.set_defaults(func=_apply_review)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
