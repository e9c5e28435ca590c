"""``python -m yolo.data {demo,check,download} ...`` (see ``--help`` of each command)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from yolo.argtypes import integer, real

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

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
