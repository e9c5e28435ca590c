"""Start a model from another file's weights (``train.py --init``): any checkpoint this project
reads (its own, a course checkpoint, a Darknet ``.weights`` file, backbone-only included), at the
model's width, for the model's classes.

Tensors of the same name and shape are copied. The prediction convolutions are rebuilt per anchor:
objectness and box rows come from the file, each class row from the file's class of the same name
(``yolo.weights.classes.match_classes``: COCO's airplane is VOC's aeroplane, ...), and a class the file
does not have keeps the model's fresh initialisation. Whatever the file lacks (the whole head of a
backbone-only file) stays fresh too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from yolo.model import COURSE_NAMES, YOLOv3
from yolo.weights import CheckpointError, ModelState, read_checkpoint
from yolo.weights.classes import match_classes
from yolo.weights.convs import is_prediction_conv
from yolo.weights.darknet import is_darknet_file, read_weights

# Darknet-53: the layers before the first head (stem .. stage5), the 52 convolutions of darknet53.conv.74.
BACKBONE: tuple[str, ...] = tuple(n.replace(".", "_") for n in COURSE_NAMES[: COURSE_NAMES.index("stage5") + 1])


@dataclass
class TransferReport:
    """What ``transfer`` took from the file and what it left at the model's initialisation."""

    loaded: list[str] = field(default_factory=list)  # state_dict keys copied (whole or per class)
    fresh: list[str] = field(default_factory=list)  # keys the file does not have
    classes: dict[str, str] = field(default_factory=dict)  # model class -> the file's class it took
    fresh_classes: list[str] = field(default_factory=list)  # model classes the file does not have
    nonfinite: list[str] = field(default_factory=list)  # keys copied from the file holding NaN or Inf

    def warning(self) -> str | None:
        """One line when weights copied from the file hold NaN or Inf, else None."""
        if not self.nonfinite:
            return None
        return (f"{len(self.nonfinite)} weight tensors taken from the file hold NaN or Inf (first: "
                f"{self.nonfinite[0]}): the model's outputs will be NaN and it will detect nothing")

    def summary(self) -> str:
        text = f"{len(self.loaded)} tensors from the file, {len(self.fresh)} fresh"
        if self.classes or self.fresh_classes:
            text += f"; classes from the file: {len(self.classes)}, fresh: {len(self.fresh_classes)}"
            if self.fresh_classes:
                text += f" ({', '.join(self.fresh_classes[:8])}{' ...' if len(self.fresh_classes) > 8 else ''})"
        return text


def read_initial(path: str | Path, width: float | None = None) -> ModelState:
    """The weights of any file ``--init`` accepts (EMA weights of a training checkpoint)."""
    path = Path(path).expanduser()
    if path.is_file() and is_darknet_file(path):
        return read_weights(path, width=width, backbone_ok=True)
    return read_checkpoint(path)


def _remap_head(source: Tensor, target: Tensor, matches: list[int | None]) -> Tensor:
    """Prediction conv rows (3 * (5 + C_file), ...) -> (3 * (5 + C_model), ...): per anchor the
    five objectness/box rows, then each model class's row from its matched file class."""
    src = source.reshape(3, -1, *source.shape[1:])
    out = target.detach().clone().reshape(3, -1, *target.shape[1:])
    out[:, :5] = src[:, :5]
    for j, i in enumerate(matches):
        if i is not None:
            out[:, 5 + j] = src[:, 5 + i]
    return out.reshape(target.shape)


def transfer(state: ModelState, model: YOLOv3, class_names: Sequence[str]) -> TransferReport:
    """Copy ``state`` into ``model`` (in place) for the classes ``class_names``; see the module doc."""
    if abs(state.width - model.width) > 1e-6:
        raise CheckpointError(f"the file's weights are for width {state.width:g} and the model is "
                              f"width {model.width:g}: pass --width {state.width:g}")
    if len(class_names) != model.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {model.num_classes} classes")
    target = model.state_dict()
    matches = match_classes(state.class_names, class_names) if state.num_classes else []
    report = TransferReport()
    new: dict[str, Tensor] = {}
    for key, value in state.state_dict.items():
        if key not in target:
            raise CheckpointError(f"the file has {key!r}, which this model does not")
        if is_prediction_conv(key.rpartition(".")[0]):
            new[key] = _remap_head(value, target[key], matches)
        elif value.shape != target[key].shape:
            raise CheckpointError(f"{key} is {tuple(value.shape)} in the file and "
                                  f"{tuple(target[key].shape)} in the model")
        else:
            new[key] = value
        report.loaded.append(key)
        if new[key].is_floating_point() and not bool(torch.isfinite(new[key]).all()):
            report.nonfinite.append(key)
    report.fresh = [k for k in target if k not in new]
    if matches:
        report.classes = {n: state.class_names[i] for n, i in zip(class_names, matches) if i is not None}
        report.fresh_classes = [n for n, i in zip(class_names, matches) if i is None]
    with torch.no_grad():
        for key, value in new.items():
            target[key].copy_(value)
    return report


def init_from(path: str | Path, model: YOLOv3, class_names: Sequence[str]) -> TransferReport:
    """``read_initial`` then ``transfer``: the model starts from the file's weights."""
    return transfer(read_initial(path, model.width), model, class_names)


def backbone_modules(model: YOLOv3) -> list[torch.nn.Module]:
    """The Darknet-53 layers of ``model`` (what ``--freeze-backbone`` freezes)."""
    return [model.layers[name] for name in BACKBONE]


def _class_list(text: str) -> list[str]:
    """``--classes``: voc, coco, or a file of names (``yolo.argtypes.read_names``: not empty)."""
    import argparse

    from yolo.argtypes import read_names
    from yolo.config import VOC_CLASSES
    from yolo.weights.classes import COCO_CLASSES

    named = {"voc": list(VOC_CLASSES), "coco": list(COCO_CLASSES)}
    if text in named:
        return named[text]
    if not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"expected voc, coco or a file of names, got {text!r}")
    try:
        return read_names(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    """``python -m yolo.transfer SRC --classes voc --out OUT.pt``: a file's weights for another class
    list, saved as this project's weights (e.g. yolov3.weights -> a VOC detector, no training)."""
    import argparse
    import sys
    import tempfile

    from yolo.argtypes import OutputError, output_file, publish, real, write_message
    from yolo.weights import save_weights
    from yolo.weights.state import MAX_WIDTH

    p = argparse.ArgumentParser(prog="python -m yolo.transfer", description=main.__doc__)
    p.add_argument("source", help="a checkpoint, a course checkpoint.pth.tar or a Darknet .weights file")
    p.add_argument("--classes", type=_class_list, default="voc",
                   help="voc, coco, or a text file with one class name a line (default voc)")
    p.add_argument("--out", required=True, help="where to write the weights (.pt); an existing file only with --force")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--width", type=real(0, MAX_WIDTH, low_open=True),
                   help=f"the source's width when it cannot say (Darknet files), in (0, {MAX_WIDTH:g}]")
    args = p.parse_args(argv)
    names = args.classes
    try:  # before the file is read: an existing --out without --force, a folder, an unwritable place
        target = output_file(args.out, args.force, "--out")
    except OutputError as err:
        p.error(str(err))
    try:
        state = read_initial(args.source, args.width)
        if not state.num_classes:
            raise CheckpointError(f"{args.source} holds a backbone only: train from it with train.py --init")
        model = YOLOv3(len(names), state.width)
        report = transfer(state, model, names)
    except CheckpointError as err:
        raise SystemExit(str(err)) from None
    print(f"{args.source}: {report.summary()}")
    if report.warning():
        print(f"warning: {args.source}: {report.warning()}", file=sys.stderr)
    scratch = target.parent if not target.exists() or target.is_file() else None
    try:  # written beside --out, then renamed over it: a full disk never leaves half a file
        with tempfile.TemporaryDirectory(dir=scratch, prefix=".transfer-") as tmp:
            made = save_weights(model.eval(), Path(tmp) / "weights.pt", names, anchors=state.anchors,
                                anchor_unit=state.anchor_unit)
            publish(made, target)  # Darknet's exact anchors for its files
    except OSError as err:
        raise SystemExit(write_message(err, target)) from None
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
