"""The Darknet ``.weights`` format for this architecture: read (a converter to ``ModelState``) and write.

The course's YOLOv3 is Darknet's ``yolov3.cfg`` layer for layer: the same 75 convolutions in the
same order. A ``.weights`` file (darknet's ``src/parser.c``) is, all little-endian:

    int32 major, minor, revision
    seen: int64 when major * 10 + minor >= 2 and major, minor < 1000, else int32
          (so the header is 20 bytes, or 16 for old files)
    per convolution, in cfg order:
        with BatchNorm:  beta (bias) [out], gamma (weight) [out], running mean [out], running var [out]
        without:         bias [out]
        then the weights [out * in * kh * kw], PyTorch's (out, in, kh, kw) order flattened
    nothing after the last layer.

Cfg order (``yolo.weights.convs``) is this model's module order: 52 convolutions of Darknet-53, then per scale the 5 trunk
convolutions, the 3x3 branch convolution and the 1x1 prediction convolution; the 1x1 convolution
before each upsample comes after the previous scale's prediction (``[route] layers = -4``) and the
upsampled map is concatenated first (``[route] layers = -1, 61``), as the course does.

A ``[yolo]`` layer's channels per anchor are (tx, ty, tw, th, obj, classes); this model's are
(obj, tx, ty, tw, th, classes), so the prediction convolutions' rows are permuted on read and write.
Darknet scores classes with independent sigmoids where this project uses a softmax: the ranking of
a cell's classes is the same, the scores are not. Darknet files record no class names
(``yolo.weights.classes.default_class_names``: COCO's 80, VOC's 20).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from yolo.filelimits import MAX_CLASSES
from yolo.model import YOLOv3
from yolo.weights.classes import default_class_names
from yolo.weights.convs import BACKBONE_CONVS, ConvSpec, conv_specs, is_prediction_conv, yolo_specs
from yolo.weights.state import MAX_WIDTH, CheckpointError, ModelState, WeightsFile, checked

# yolov3.cfg's anchors (pixels at 416) as fractions of the image, in this project's order
# (stride 32 first, as [yolo] mask = 6,7,8 / 3,4,5 / 0,1,2).
DARKNET_ANCHORS: list[list[list[float]]] = [
    [[w / 416, h / 416] for w, h in scale]
    for scale in (((116, 90), (156, 198), (373, 326)), ((30, 61), (62, 45), (59, 119)),
                  ((10, 13), (16, 30), (33, 23)))
]
# The same anchors in Darknet's own unit: pixels, at any input size (a Darknet model run at 608
# draws a 116x90 anchor box 116x90 pixels, not 116 * 608 / 416). Files read here carry these.
DARKNET_PIXEL_ANCHORS: list[list[list[float]]] = [
    [[float(w), float(h)] for w, h in scale]
    for scale in (((116, 90), (156, 198), (373, 326)), ((30, 61), (62, 45), (59, 119)),
                  ((10, 13), (16, 30), (33, 23)))
]
# Widths tried when a file's width is not given (a .weights file does not record it): sixteenths
# up to 2, the round ones first (widths that round to the same channels build the same model).
WIDTHS: tuple[float, ...] = tuple(sorted((k / 16 for k in range(1, 33)),
                                         key=lambda w: (Fraction(w).denominator, abs(w - 1))))
FLOAT = np.dtype("<f4")


class DarknetError(CheckpointError):
    """A file that is not a Darknet .weights file for the model asked for; says what was expected."""


# ------------------------------------------------------------------------------- the layout
@dataclass(frozen=True)
class Header:
    major: int
    minor: int
    revision: int
    seen: int = 0

    @property
    def seen_int64(self) -> bool:
        """Darknet's rule: ``seen`` is a size_t from version 0.2 on (and major, minor < 1000)."""
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def size(self) -> int:
        return 20 if self.seen_int64 else 16

    def to_bytes(self) -> bytes:
        return struct.pack("<3i", self.major, self.minor, self.revision) + struct.pack(
            "<q" if self.seen_int64 else "<i", self.seen)

    @classmethod
    def from_bytes(cls, data: bytes) -> Header:
        if len(data) < 16:
            raise DarknetError(f"a Darknet file starts with a 16- or 20-byte header; this one has "
                               f"{len(data)} bytes")
        major, minor, revision = struct.unpack_from("<3i", data)
        probe = cls(major, minor, revision)
        if probe.seen_int64 and len(data) < 20:
            raise DarknetError(f"version {major}.{minor} has a 20-byte header; the file has {len(data)} bytes")
        (seen,) = struct.unpack_from("<q" if probe.seen_int64 else "<i", data, 12)
        return cls(major, minor, revision, seen)


def layer_floats(specs: list[ConvSpec]) -> int:
    return sum(s.floats for s in specs)


def unpack(flat: Tensor, specs: list[ConvSpec]) -> dict[str, Tensor]:
    """A flat float tensor in Darknet order -> state_dict entries of ``specs`` (exactly consumed)."""
    if flat.numel() != layer_floats(specs):
        raise DarknetError(f"{flat.numel():,} floats for layers that hold {layer_floats(specs):,}")
    state, at = {}, 0

    def take(n: int) -> Tensor:
        nonlocal at
        at += n
        return flat[at - n: at]

    for spec in specs:
        out = spec.shape[0]
        if spec.bn:
            for key in ("bias", "weight", "running_mean", "running_var"):
                state[f"{spec.bn}.{key}"] = take(out).clone()
            state[f"{spec.bn}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        else:
            state[f"{spec.conv}.bias"] = take(out).clone()
        state[f"{spec.conv}.weight"] = take(math.prod(spec.shape)).view(spec.shape).clone()
    return state


def pack(state: dict[str, Tensor], specs: list[ConvSpec]) -> Tensor:
    """The inverse of ``unpack``: state_dict entries -> one flat float32 tensor in Darknet order."""
    parts = []
    for spec in specs:
        if spec.bn:
            parts += [state[f"{spec.bn}.{k}"] for k in ("bias", "weight", "running_mean", "running_var")]
        else:
            parts.append(state[f"{spec.conv}.bias"])
        parts.append(state[f"{spec.conv}.weight"])
    return torch.cat([p.detach().float().reshape(-1).cpu() for p in parts])


def read_darknet(path: str | Path, specs: list[ConvSpec],
                 layouts: dict[str, int] | None = None) -> tuple[Header, dict[str, Tensor], int]:
    """Read a .weights file for the convolutions ``specs`` (in cfg order).

    Args:
        layouts: description -> number of leading convolutions a file may hold (default: all).
            The file must hold exactly one of them; anything else is refused, saying what fits.

    Returns:
        the header, the state_dict entries of the convolutions read, how many convolutions that is.
    """
    path = Path(path)
    layouts = layouts or {f"all {len(specs)} convolutions": len(specs)}
    with path.open("rb") as f:
        header = Header.from_bytes(f.read(20))
    body = path.stat().st_size - header.size
    for description, count in layouts.items():
        if body == 4 * layer_floats(specs[:count]):
            flat = torch.from_numpy(np.fromfile(path, dtype=FLOAT, offset=header.size))
            return header, unpack(flat, specs[:count]), count
    expected = "; ".join(f"{4 * layer_floats(specs[:n]) + header.size:,} bytes ({d})" for d, n in layouts.items())
    raise DarknetError(f"{path}: {path.stat().st_size:,} bytes ({header.size}-byte header of version "
                       f"{header.major}.{header.minor}, then {body / 4:,.2f} floats) fits no known layout "
                       f"of this model; expected {expected}")


def write_darknet(path: str | Path, state: dict[str, Tensor], specs: list[ConvSpec],
                  header: Header = Header(0, 2, 0)) -> Path:
    """Write the convolutions ``specs`` of ``state`` as a .weights file (version 0.2: 20-byte header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(header.to_bytes())
        f.write(pack(state, specs).numpy().astype(FLOAT).tobytes())
    return path


def is_darknet_file(path: str | Path) -> bool:
    """True for a file that is no PyTorch/pickle file and starts like a Darknet header."""
    with Path(path).open("rb") as f:
        head = f.read(16)
    if len(head) < 16 or head.startswith((b"PK\x03\x04", b"\x80")):  # torch zip / pickle
        return False
    major, minor, revision = struct.unpack_from("<3i", head)
    return all(0 <= v < 100_000 for v in (major, minor, revision))


# ------------------------------------------------------------------------------- YOLOv3 files
def _head_order(num_classes: int, to_project: bool) -> Tensor:
    """Row permutation of a prediction conv between Darknet's (x, y, w, h, obj, cls) per anchor and
    this model's (obj, x, y, w, h, cls)."""
    per_anchor = [4, 0, 1, 2, 3] if to_project else [1, 2, 3, 4, 0]
    per_anchor += list(range(5, 5 + num_classes))
    return torch.tensor([a * (5 + num_classes) + c for a in range(3) for c in per_anchor])


def _permute_heads(state: dict[str, Tensor], specs: list[ConvSpec], to_project: bool) -> dict[str, Tensor]:
    state = dict(state)
    for spec in (s for s in specs if is_prediction_conv(s.conv)):
        order = _head_order(spec.shape[0] // 3 - 5, to_project)
        for key in (f"{spec.conv}.weight", f"{spec.conv}.bias"):
            if key in state:
                state[key] = state[key][order]
    return state


def read(file: WeightsFile, prefer_ema: bool = True) -> ModelState | None:
    """The format's entry for ``yolo.weights.read_checkpoint``: a full Darknet file -> its checked
    ``ModelState``; None when the file is not a Darknet file (a backbone-only file is refused:
    it has no head to detect with)."""
    if not file.path.is_file() or not is_darknet_file(file.path):
        return None
    return checked(read_weights(file.path, backbone_ok=False), file.path)


def header_sizes(header: Header) -> tuple[int, ...]:
    """The header lengths a file of this version may have: Darknet's rule (16 bytes before version
    0.2, 20 from it), and after a 16-byte rule also 20: PyTorch-YOLOv3 writes
    ``np.int32([major, minor, revision, seen, 0])``, 20 bytes, whatever the version (0.0.0 for a
    fresh model)."""
    return (16, 20) if header.size == 16 else (header.size,)


def max_file_bytes() -> int:
    """The largest file this reader takes: YOLOv3 at MAX_WIDTH with MAX_CLASSES classes (~1.5 GB),
    after a 20-byte header; anything larger is refused before a byte of it is read."""
    return 20 + 4 * expected_floats(MAX_CLASSES, MAX_WIDTH)


def layouts(header: Header, size: int, width: float | None = None) -> list[tuple[int, float, int]]:
    """Every (header bytes, width, classes) reading a file of ``size`` bytes fits exactly (classes 0
    for a backbone-only file, at most MAX_CLASSES); ``width`` restricts it to that width."""
    found = []
    for header_bytes in header_sizes(header):
        floats, rest = divmod(size - header_bytes, 4)
        if not rest and floats > 0:
            found += [(header_bytes, w, c) for w, c in fitting_layouts(floats, width)]
    return found


def fitting_layouts(floats: int, width: float | None = None) -> list[tuple[float, int]]:
    """Every (width, class count <= MAX_CLASSES) whose file holds exactly ``floats`` floats; class
    count 0 for a backbone-only file. ``width`` restricts the search to that width."""
    found = []
    for w in ([width] if width else WIDTHS):
        if floats == expected_floats(1, w, BACKBONE_CONVS):
            found.append((w, 0))
        one, two = expected_floats(1, w), expected_floats(2, w)  # linear in the class count
        classes, rest = divmod(floats - one, two - one)
        if not rest and 0 <= classes < MAX_CLASSES:
            found.append((w, classes + 1))
    return found


def infer_layout(floats: int, width: float | None = None) -> tuple[float, int] | None:
    """The first (width, class count) of ``fitting_layouts`` (the roundest width), None when none fits."""
    found = fitting_layouts(floats, width)
    return found[0] if found else None


def _variances_ok(path: Path, header_bytes: int, specs: list[ConvSpec]) -> bool:
    """Whether the file read this way has no negative BatchNorm variance (a variance never is: a
    negative one means the floats are read from the wrong places: a padded or cut file, or another
    layout). Only the variances are read (memory-mapped)."""
    data = np.memmap(path, dtype=FLOAT, mode="r", offset=header_bytes, shape=(layer_floats(specs),))
    at = 0
    try:
        for spec in specs:
            out = spec.shape[0]
            if spec.bn:
                if bool((data[at + 3 * out: at + 4 * out] < 0).any()):
                    return False
                at += 4 * out
            else:
                at += out
            at += math.prod(spec.shape)
    finally:
        del data
    return True


def _describe(reading: tuple[int, float, int]) -> str:
    header_bytes, w, c = reading
    what = "a backbone-only file" if c == 0 else f"{c} classes"
    return f"width {w:g} with {what} after a {header_bytes}-byte header"


def read_weights(path: str | Path, width: float | None = None, backbone_ok: bool = True) -> ModelState:
    """A Darknet .weights file for YOLOv3 -> ModelState (this project's keys and channel order).

    The class count comes from the file's size, and so does the width when not given. The size
    must fit exactly one reading (header length, width, classes: ``layouts``) whose BatchNorm
    variances are all non-negative; a file larger than ``max_file_bytes`` is refused before it is
    read, two plausible readings are refused as ambiguous (``--width`` tells them apart), and a
    reading with negative variances (a file padded by one class's worth of bytes reads as one
    more class) is refused. A backbone-only file (the first 52 convolutions, like
    ``darknet53.conv.74``) gives a state with ``num_classes == 0`` and only the backbone's keys
    (refused unless ``backbone_ok``).
    """
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(20)
    header = Header.from_bytes(head)
    size = path.stat().st_size
    if size > max_file_bytes():
        raise DarknetError(f"{path}: {size:,} bytes, more than the largest YOLOv3 this project reads "
                           f"(width {MAX_WIDTH:g} with {MAX_CLASSES:,} classes: {max_file_bytes():,} bytes)")
    readings = layouts(header, size, width)
    if not readings:
        other = layouts(header, size) if width else []
        hint = (f" (it fits width {other[0][1]:g} with {other[0][2]} classes: pass --width {other[0][1]:g})"
                if other else "")
        at = f"width {width:g}{hint}" if width else "any width"
        example = expected_floats(80, width or 1.0)
        raise DarknetError(
            f"{path}: {size:,} bytes after a {header.size}-byte header fit no YOLOv3 "
            f"layout at {at}: expected 4 bytes per float for a full file (all 75 convolutions; "
            f"80 classes at width {width or 1.0}: {example:,} floats, {4 * example + header.size:,} bytes) "
            f"or a backbone-only file (the first {BACKBONE_CONVS}: "
            f"{expected_floats(80, width or 1.0, BACKBONE_CONVS):,} floats)")
    specs_of = {r: yolo_specs(max(r[2], 1), r[1])[: None if r[2] else BACKBONE_CONVS] for r in readings}
    plausible = [r for r in readings if _variances_ok(path, r[0], specs_of[r])]
    if not plausible:
        raise DarknetError(
            f"{path}: its size fits {' or '.join(map(_describe, readings))}, but read that way its BatchNorm "
            "variances are negative: the file is padded or cut (e.g. by one class's worth of bytes) or not "
            "this architecture")
    if len(plausible) > 1:
        raise DarknetError(f"{path}: ambiguous: its size and contents fit {' and '.join(map(_describe, plausible))}; "
                           "pass --width (yolo.transfer, train.py --init) to say which")
    header_bytes, found_width, num_classes = plausible[0]
    if num_classes == 0 and not backbone_ok:
        raise DarknetError(f"{path} is a backbone-only Darknet file (the first {BACKBONE_CONVS} "
                           "convolutions, like darknet53.conv.74): it has no detection head; start "
                           "a training run from it with train.py --init PATH")
    specs = specs_of[plausible[0]]
    flat = torch.from_numpy(np.fromfile(path, dtype=FLOAT, count=layer_floats(specs), offset=header_bytes))
    state = _permute_heads(unpack(flat, specs), specs, to_project=True)
    seen = struct.unpack_from("<q", head, 12)[0] if header_bytes == 20 else header.seen
    hparams = {"darknet": {"major": header.major, "minor": header.minor, "revision": header.revision,
                           "seen": seen, "convolutions": len(specs), "header_bytes": header_bytes}}
    return ModelState(state, num_classes, found_width, default_class_names(num_classes),
                      DARKNET_PIXEL_ANCHORS, "darknet", None, hparams, anchor_unit="pixels")


def expected_floats(num_classes: int, width: float = 1.0, convs: int | None = None) -> int:
    """Floats a file holds for YOLOv3 at this class count and width (the first ``convs`` convolutions)."""
    return layer_floats(yolo_specs(num_classes, width)[:convs])


def write_weights(model: YOLOv3, path: str | Path, convs: int | None = None,
                  header: Header = Header(0, 2, 0)) -> Path:
    """Write ``model`` as a Darknet .weights file; ``convs=52`` writes the backbone only."""
    specs = conv_specs(model)[:convs]
    return write_darknet(path, _permute_heads(model.state_dict(), specs, to_project=False), specs, header)
