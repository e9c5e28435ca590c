"""The bottom of ``yolo.weights``: what every weight format is converted to (``ModelState``), the
checks every converted state passes, the errors, and the safe reading of a PyTorch file.

Nothing here knows a file format's layout: the formats (``lightning``, ``course``, ``darknet``)
import this module, never the other way round.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from yolo.config import ANCHORS
from yolo.filelimits import FileLimitError, check_class_count, check_dense, check_zip_expansion
from yolo.model import YOLOv3

# The widest model a checkpoint (or --width) may describe: width 2 is 4x the course model's
# channels, ~246M parameters (~1 GB of float32 weights); anything wider is a typo or a hostile file.
MAX_WIDTH = 2.0
DEEPEST_CONV = "layers.down5.conv.weight"  # 1024 x width output channels: the finest width reading
STEM_CONV = "layers.stem.conv.weight"
PRED_WEIGHTS = tuple(f"layers.head{s}_out.predict.pred.weight" for s in (32, 16, 8))


class CheckpointError(ValueError):
    """A file that is not a usable YOLOv3 checkpoint; the message says what was expected."""


class CheckpointWarning(UserWarning):
    """A usable checkpoint with something worth knowing (e.g. NaN or Inf weights)."""


@dataclass
class ModelState:
    """What a checkpoint holds for inference."""

    state_dict: dict[str, Tensor]  # YOLOv3 state_dict (no prefix)
    num_classes: int
    width: float
    class_names: list[str]
    anchors: list = field(default_factory=lambda: [list(map(list, s)) for s in ANCHORS])
    source: str = "model"  # "ema" when the EMA weights were taken; "course", "darknet" for those files
    epoch: int | None = None
    hparams: dict = field(default_factory=dict)
    nonfinite: list[str] = field(default_factory=list)  # names of weight tensors holding NaN/Inf
    image_size: int | None = None  # the input side it was validated at (hparams "image_size"), if saved
    anchor_unit: str = "fraction"  # "fraction" of the input side (grow with it) or "pixels" (Darknet files)

    def anchors_at(self, size: int) -> list:
        """The anchors as fractions of an input of side ``size``: pixel anchors (Darknet's) keep
        their pixel size at every input, fraction anchors scale with it (yolo.anchors)."""
        if self.anchor_unit == "pixels":
            return [[[w / size, h / size] for w, h in scale] for scale in self.anchors]
        return [[list(a) for a in scale] for scale in self.anchors]


# ------------------------------------------------------------------------------- reading a file
class WeightsFile:
    """One file on disk as the formats see it while ``yolo.weights.read_checkpoint`` tries them in
    turn: its path, and its PyTorch content (``torch.load(weights_only=True)``), loaded at most once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._raw: dict | None = None

    def raw(self) -> dict:
        """The file's content as a dict of tensors and plain values; ``CheckpointError`` otherwise."""
        if self._raw is None:
            self._raw = load_torch_file(self.path)
        return self._raw


def load_torch_file(path: Path) -> dict:
    """``torch.load(path, weights_only=True)`` on the CPU, as a dict; ``CheckpointError`` for a
    missing file, a file that is no ``torch.save`` output, one holding Python objects beyond
    tensors and plain values (never unpickled), or a non-dict content."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path) and _first_byte(path) != b"\x80":  # neither torch.save format
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a torch.save zip nor a pickle)")
    within_limits(check_zip_expansion, path)  # a recompressed zip, before anything is unpacked
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects beyond tensors and plain values, "
            f"and loading it could run code ({str(err).splitlines()[0]})"
        ) from err
    except Exception as err:  # truncated file, not a torch file at all, ...
        raise CheckpointError(f"{path} is not a PyTorch checkpoint: {err}") from err
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(raw).__name__}")
    return raw


def within_limits(check, *args):
    """``check(*args)`` (a ``yolo.filelimits`` check), its FileLimitError as a CheckpointError."""
    try:
        return check(*args)
    except FileLimitError as err:
        raise CheckpointError(str(err)) from None


def _first_byte(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1)
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}") from None


# ------------------------------------------------------------------------------- checks
def architecture(state: dict, path: Path) -> tuple[int, float]:
    """(classes, width) read from the tensor shapes alone: prediction channels 3 * (5 + C), and
    the deepest conv's 1024 x width channels."""
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: the weights must map names to tensors")
    missing = [k for k in (STEM_CONV, DEEPEST_CONV, *PRED_WEIGHTS) if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not this project's YOLOv3 weights (missing {', '.join(missing)})")
    outs = {int(state[k].shape[0]) if state[k].dim() == 4 else -1 for k in PRED_WEIGHTS}
    out = outs.pop() if len(outs) == 1 else -1
    if out < 18 or out % 3:
        raise CheckpointError(f"{path}: prediction layers have {sorted(outs | {out})} output channels; "
                              "expected one count 3 * (5 + classes)")
    within_limits(check_class_count, out // 3 - 5, path)  # before any model of that count is built
    within_limits(check_dense, state, path)  # no expanded views: each becomes its full size in a model
    channels = int(state[DEEPEST_CONV].shape[0])
    return out // 3 - 5, channels / 1024


def expected_shapes(num_classes: int, width: float) -> dict[str, tuple]:
    """Every tensor shape of YOLOv3(num_classes, width), built on the meta device (no memory)."""
    with torch.device("meta"):
        model = YOLOv3(num_classes, width)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def nonfinite(state: dict[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or Inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def warn_nonfinite(bad: list[str], path: Path, stacklevel: int = 5) -> None:
    if bad:
        warnings.warn(f"{path}: {len(bad)} weight tensors hold NaN or Inf (first: {bad[0]}); "
                      "its detections will be meaningless", CheckpointWarning, stacklevel=stacklevel)


def checked(state: ModelState, path: Path) -> ModelState:
    """A state converted from another format (Darknet, the course), held to the same checks as
    this project's checkpoints: tensor shapes of YOLOv3 at the class count and width they describe,
    and a ``CheckpointWarning`` for NaN or Inf weights (listed in ``state.nonfinite``)."""
    classes, width = architecture(state.state_dict, path)
    if not 0 < width <= MAX_WIDTH:
        raise CheckpointError(f"{path}: the weights are for width {width}, outside (0, {MAX_WIDTH}]")
    found = {k: tuple(v.shape) for k, v in state.state_dict.items()}
    if found != expected_shapes(classes, width):
        raise CheckpointError(f"{path}: the converted weights do not have the shapes of YOLOv3 at width "
                              f"{width:g} with {classes} classes")
    state.nonfinite = nonfinite(state.state_dict)
    warn_nonfinite(state.nonfinite, path)
    return state


# ------------------------------------------------------------------------------- state -> model
def load_into(model: YOLOv3, state: ModelState) -> YOLOv3:
    """Load ``state`` into ``model``; a clear error when class count or width differ."""
    if state.num_classes != model.num_classes or abs(state.width - model.width) > 1e-6:
        raise CheckpointError(
            f"checkpoint is for {state.num_classes} classes at width {state.width}, "
            f"but the model has {model.num_classes} classes at width {model.width}"
        )
    try:
        model.load_state_dict(state.state_dict)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit the model: {err}") from err
    return model


def build_model(state: ModelState) -> YOLOv3:
    """A YOLOv3 with the checkpoint's class count and width, its weights loaded, in eval mode."""
    return load_into(YOLOv3(state.num_classes, state.width), state).eval()
