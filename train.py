#!/usr/bin/env python
"""Train YOLOv3 on Pascal VOC (or the synthetic demo) from the shell. Flags override the preset.

    python train.py --preset demo                                   # a few CPU minutes
    python train.py --preset voc --data ~/data                      # one GPU, the seed's recipe
    python train.py --preset voc --data ~/data --devices 4 --strategy ddp
    python train.py --preset voc --data ~/data --resume auto        # continue the newest run
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from yolo.config_checks import ConfigError
from yolo.trainer import PRESETS, TrainConfig, fit


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _limit(text: str) -> float | int:
    value = float(text)
    return int(value) if value >= 1 and value.is_integer() else value


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--preset", choices=sorted(PRESETS), help="start from a recipe: voc (the seed's, 40 epochs at "
      "multi-scale 320-608, val 416) or demo (synthetic data, width 0.25, CPU minutes)")
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="+", help="dataset root(s): a folder holding VOCdevkit/ (or VOCdevkit "
                   "itself), or the Kaggle layout (images/, labels/, train.csv, test.csv)")
    g.add_argument("--format", choices=["auto", "voc", "kaggle"], help=f"dataset layout (default {d.format})")
    g.add_argument("--train-sets", nargs="+", help="year/split pairs to train on (default "
                   f"{' '.join(d.train_sets)}); Kaggle: train")
    g.add_argument("--val-sets", nargs="+", help=f"year/split pairs to validate on (default {' '.join(d.val_sets)})")
    g.add_argument("--use-difficult", type=_bool, help="also train on objects marked difficult (default no)")
    g.add_argument("--cache-ram", type=_bool, help="keep decoded, resized images in RAM (default no)")
    g.add_argument("--workers", type=int, help=f"data-loading processes per device (default {d.workers})")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, help=f"epochs (default {d.epochs})")
    g.add_argument("--batch-size", type=int, help=f"images per batch per device, >= 1 (default {d.batch_size})")
    g.add_argument("--min-size", type=int, help=f"smallest multi-scale size, a multiple of 32 up to 2048 (default {d.min_size})")
    g.add_argument("--max-size", type=int, help=f"largest multi-scale size (default {d.max_size}); "
                   "min = max turns multi-scale off")
    g.add_argument("--val-size", type=int, help=f"validation size (default {d.val_size})")
    g.add_argument("--mosaic", type=float, help=f"probability of a mosaic training sample, in [0, 1] (default {d.mosaic})")
    g = p.add_argument_group("model and optimisation")
    g.add_argument("--width", type=float, help=f"channel multiplier in (0, 2], e.g. 0.5 or 0.25 (default {d.width}); "
                   "2 is already 4x the course's channels (~246M parameters), wider does not fit a GPU")
    g.add_argument("--optimizer", choices=["adamw", "adam", "sgd"], help=f"(default {d.optimizer})")
    g.add_argument("--lr", type=float, help=f"peak learning rate, in (0, 10] (default {d.lr})")
    g.add_argument("--lr-find", action="store_true", default=None, help="run Lightning's LR finder first and use its suggestion")
    g.add_argument("--one-cycle", type=_bool, help="cosine one-cycle schedule (default on); off: constant LR")
    g.add_argument("--weight-decay", type=float, help=f"(default {d.weight_decay})")
    g.add_argument("--obj-loss", choices=["bce", "mse"], help="objectness term against the IoU target: "
                   "bce (default) or mse (the course's exact term; its gradient vanishes for low objectness)")
    g.add_argument("--ema", type=_bool, help="validate and save an EMA of the weights (default on)")
    g.add_argument("--ema-decay", type=float, help=f"in (0, 1) (default {d.ema_decay})")
    g.add_argument("--grad-clip", type=float, help=f"gradient-norm clip, 0 for none (default {d.grad_clip})")
    g.add_argument("--map-every", type=int, help=f"validation mAP@0.5 every k epochs (default {d.map_every})")
    g.add_argument("--precision", help="auto (16-mixed on CUDA, bf16-mixed on CPU), 32-true, 16-mixed, bf16-mixed")
    g = p.add_argument_group("hardware and scale-out")
    g.add_argument("--accelerator", help="auto, gpu, cpu (default auto)")
    g.add_argument("--devices", help="device count (at most the machine's GPUs, or its CPU cores on the CPU), "
                   "a GPU list like 0,1, -1 (all) or auto (default auto)")
    g.add_argument("--num-nodes", type=int, help="machines for multi-node DDP (default 1)")
    g.add_argument("--strategy", help="auto, ddp, ddp_spawn, ... (default auto)")
    g.add_argument("--sync-bn", type=_bool, help="SyncBatchNorm across processes (default off)")
    g = p.add_argument_group("run")
    g.add_argument("--name", help="run name, a plain folder name: logs/<name>/version_<n>/ (default yolov3; demo preset: demo)")
    g.add_argument("--log-dir", help=f"where runs land (default {d.log_dir})")
    g.add_argument("--resume", help="auto (newest last.ckpt of this run name) or a checkpoint path; a checkpoint "
                   "from outside --log-dir/--name continues in a new version folder, never in another run's")
    g.add_argument("--init", help="start a new run from this file's weights: a checkpoint, the course's "
                   "checkpoint.pth.tar or a Darknet .weights file (darknet53.conv.74: backbone only); "
                   "classes matched by name (COCO -> VOC), the rest initialised fresh")
    g.add_argument("--freeze-backbone", type=int, help="with --init: keep Darknet-53 frozen for the first "
                   "N epochs (default 0)")
    g.add_argument("--seed", type=int, help=f"(default {d.seed})")
    g.add_argument("--checkpoint-every", type=int, help=f"also save last.ckpt every N steps (default {d.checkpoint_every})")
    g.add_argument("--limit-train-batches", type=_limit, help="batches per epoch (count or fraction), for smoke tests")
    g.add_argument("--limit-val-batches", type=_limit, help="validation batches (count or fraction)")
    g.add_argument("--trace-sizes", action="store_true", default=None, help=argparse.SUPPRESS)
    return p


def config_from_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> TrainConfig:
    """Defaults, then the preset, then every flag given on the command line."""
    args = (parser or build_parser()).parse_args(argv)
    config = TrainConfig()
    if args.preset:
        config = dataclasses.replace(config, **PRESETS[args.preset], preset=args.preset)
    given = {k: v for k, v in vars(args).items() if v is not None and k != "preset"}
    return dataclasses.replace(config, **given)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    config = config_from_args(argv, parser)
    try:
        directory = fit(config)  # checks every flag first (yolo.config_checks)
    except ConfigError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")  # one line, argparse's status 2, nothing created
    print(f"run folder: {directory}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
