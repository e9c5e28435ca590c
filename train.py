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
import types
import typing

from yolo.cpu import quiet_openmp

quiet_openmp()  # before torch loads OpenMP: waiting threads sleep instead of spinning (yolo.cpu)

from yolo.argtypes import boolean
from yolo.config import RECIPES, field_comments, override
from yolo.config_checks import ConfigError, flag
from yolo.trainer import PRESETS, TrainConfig, fit


def _limit(text: str) -> float | int:
    value = float(text)
    return int(value) if value >= 1 and value.is_integer() else value


# Flag groups in --help order: each holds the TrainConfig fields (and nested configs) it shows.
GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("data", "format", "train_sets", "val_sets", "use_difficult", "cache_ram", "workers"),
    "schedule": ("epochs", "batch_size", "min_size", "max_size", "val_size", "mosaic"),
    "model and optimisation": ("model", "anchors", "optim", "lr_find", "grad_clip", "precision"),
    "loss and targets": ("loss", "target"),
    "validation": ("val",),
    "hardware and scale-out": ("accelerator", "devices", "num_nodes", "strategy", "sync_bn", "threads"),
    "run": ("name", "log_dir", "resume", "init", "freeze_backbone", "seed", "checkpoint_every",
            "limit_train_batches", "limit_val_batches", "trace_sizes"),
}
GROUP_TEXT = {"validation": "mAP@0.5 during training, from the detections these keep (yolo.config.ValConfig)"}
NOT_FLAGS = {"num_classes", "preset", "recipe"}  # set from the dataset / by --preset, --recipe
HIDDEN = {"trace_sizes"}  # test machinery, left out of --help


def _settings(config, names: tuple[str, ...]):
    """(dataclass, field, default) for each leaf under ``names`` of ``config`` (nested ones opened)."""
    nested = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    nested.update({f.name: getattr(config.module, f.name) for f in dataclasses.fields(config.module)})
    for name in names:
        value = nested[name]
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                inner = getattr(value, f.name)
                if dataclasses.is_dataclass(inner):
                    yield from ((inner, g, getattr(inner, g.name)) for g in dataclasses.fields(inner))
                else:
                    yield value, f, inner
        else:
            yield config, next(f for f in dataclasses.fields(config) if f.name == name), value


def _argument(owner, f: dataclasses.Field, default) -> tuple[str, dict]:
    """The argparse flag and keyword arguments of one config field: its type and choices from
    the annotation, its help from the field's comment and its default."""
    kind = typing.get_type_hints(type(owner))[f.name]
    options = set(typing.get_args(kind)) - {type(None)} if typing.get_origin(kind) in (typing.Union, types.UnionType) else set()
    comment = field_comments(type(owner)).get(f.name, "")
    shown = " ".join(map(str, default)) if isinstance(default, list) else default
    kw: dict = {"help": f"{comment} (default {shown})" if shown not in (None, "") else comment}
    if f.name in HIDDEN:
        kw["help"] = argparse.SUPPRESS
    if kind is bool:
        kw.update(type=boolean, nargs="?", const=True, metavar="{true,false}")
    elif typing.get_origin(kind) is typing.Literal:
        kw["choices"] = list(typing.get_args(kind))
    elif typing.get_origin(kind) is list:
        kw["nargs"] = "+"
    elif options == {int, float}:
        kw["type"] = _limit
    elif kind in (int, float) or options in ({int}, {float}):
        kw["type"] = kind if kind in (int, float) else options.pop()
    return flag(f.name), kw


def build_parser() -> argparse.ArgumentParser:
    """train.py's flags, one per setting of ``TrainConfig`` (nested configs included); every flag
    defaults to None (not given), so a preset's values stand unless a flag overrides them."""
    p = argparse.ArgumentParser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a recipe: voc (the seed's, 40 epochs "
                   "at multi-scale 320-608, val 416) or demo (synthetic data, width 0.25, CPU minutes)")
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help=f"{field_comments(TrainConfig)['recipe']} (default project)")
    config = TrainConfig()
    for title, names in GROUPS.items():
        group = p.add_argument_group(title, GROUP_TEXT.get(title))
        for owner, f, default in _settings(config, names):
            if f.name not in NOT_FLAGS:
                name, kw = _argument(owner, f, default)
                group.add_argument(name, dest=f.name, **kw)
    return p


def config_from_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> TrainConfig:
    """Defaults, then the preset, then every flag given on the command line."""
    args = (parser or build_parser()).parse_args(argv)
    config = TrainConfig()
    if args.preset:
        config = override(config, **PRESETS[args.preset], preset=args.preset)
    if args.recipe:
        config = override(config, **RECIPES[args.recipe], recipe=args.recipe)
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("preset", "recipe")}
    return override(config, **given)


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
