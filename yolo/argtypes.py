"""Command-line values checked where they are parsed: argparse ``type=`` functions and output checks
shared by every CLI (``train.py``, ``python -m yolo.evaluate``, ``yolo.export``, ``yolo.transfer``,
``yolo.data``, ...), so a bad number is argparse's one ``error:`` line (status 2) before any work.

    p.add_argument("--batch-size", type=integer(1, 1024), default=8)
    p.add_argument("--iou", type=real(0, 1), default=0.45)              # nan, inf, 2 refused
    p.add_argument("--image-size", type=image_size)                      # 32..2048, multiple of 32
    p.add_argument("--classes", type=names_file)                         # a non-empty list of names
    out = output_file(args.onnx, args.force, "--onnx")                   # before the model runs

Only the standard library here (a low layer: anything may import it).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import shutil
import tempfile
from pathlib import Path

from yolo.config import MAX_IMAGE_SIZE

MAX_NAMES_BYTES = 1 << 20  # a class-names file: 1 MiB is ~50,000 names, far beyond any dataset
MAX_NAMES = 10_000  # classes: the prediction layer has 3 * (5 + C) channels; COCO has 80


class OutputError(ValueError):
    """An output path that cannot (or must not) be written; the message names the flag."""


def integer(low: int, high: int | None = None):
    """``type=`` for an integer in [low, high] (no upper bound when ``high`` is None)."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in "invalid <name> value" when a message is absent
    return parse


def real(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """``type=`` for a finite number in [low, high] (``low_open``/``high_open``: the end excluded)."""
    span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in {span}, got {text!r}") from None
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be a number in {span}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def image_size(text: str) -> int:
    """``type=`` for an input side: a multiple of 32 in [32, MAX_IMAGE_SIZE] (``yolo.config``)."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = None
    if value is None or not 32 <= value <= MAX_IMAGE_SIZE or value % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32 in [32, {MAX_IMAGE_SIZE}], got {text!r}")
    return value


def boolean(text: str) -> bool:
    """``type=`` for true/false, yes/no, on/off, 1/0."""
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def count_or_fraction(text: str) -> float | int:
    """``type=`` for a batch limit: a whole count >= 1 or a fraction in (0, 1]."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or a fraction in (0, 1], got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or (value > 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or a fraction in (0, 1], got {text!r}")
    return int(value) if value >= 1 and value.is_integer() else value


def read_names(path: str | Path) -> list[str]:
    """One class name a line (blank lines skipped) from a regular file of at most MAX_NAMES_BYTES;
    ValueError when it is not such a file, empty, too long or repeats a name."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"{path}: not a file")
    size = p.stat().st_size
    if size > MAX_NAMES_BYTES:
        raise ValueError(f"{path}: {size} bytes is too large for a class list (at most {MAX_NAMES_BYTES})")
    try:
        names = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read a class list ({err})") from None
    if not names:
        raise ValueError(f"{path}: no class names (one name a line)")
    if len(names) > MAX_NAMES:
        raise ValueError(f"{path}: {len(names)} class names, more than {MAX_NAMES}")
    repeated = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) < len(names) else []
    if repeated:
        raise ValueError(f"{path}: class names repeated: {', '.join(repeated[:5])}")
    return names


def names_file(text: str) -> list[str]:
    """``type=`` for a class-list file (``read_names``)."""
    try:
        return read_names(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _probe_folder(folder: Path, flag: str) -> None:
    """The nearest existing folder at or above ``folder`` can hold a new file (a file is created and
    removed there: permissions, a read-only file system and a folder that is a file all show)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{flag} {folder}: {existing} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OutputError(f"{flag} {folder}: cannot write in {existing} ({err.strerror or err})") from None


def output_file(path: str | Path, force: bool, flag: str) -> Path:
    """Check, before any work, that ``path`` may be written as a file: not a folder; an existing
    file only with ``force`` (``--force``); its folder writable. Returns the path; OutputError."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; give a file name")
    if p.exists() or p.is_symlink():
        if not force:
            raise OutputError(f"{flag} {path}: exists; pass --force to replace it, or choose another name")
        if not os.access(p, os.W_OK):
            raise OutputError(f"{flag} {path}: exists and is not writable")
        if p.is_file():
            _probe_folder(p.parent, flag)  # a regular file is replaced: written beside it, then renamed
        return p
    _probe_folder(p.parent, flag)
    return p


def output_folder(path: str | Path, force: bool, flag: str, marker: str) -> Path:
    """Check, before any work, that ``path`` may be written as a folder of results: not a file; one
    holding ``marker`` (e.g. summary.json, a previous run's results) only with ``force``; writable."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputError(f"{flag} {path}: is a file, not a folder")
    if (p / marker).exists() and not force:
        raise OutputError(f"{flag} {path}: holds earlier results ({marker}); pass --force to replace them, "
                          "or choose another folder")
    _probe_folder(p, flag)
    return p


def publish(made: str | Path, target: str | Path) -> Path:
    """Put the finished file ``made`` at ``target``: renamed over it (atomic, same folder), or, when
    ``target`` is an existing non-regular file such as /dev/null, its bytes copied into it."""
    made, target = Path(made), Path(target)
    if target.exists() and not target.is_file():
        with open(made, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
        return target
    try:
        os.replace(made, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        shutil.copyfile(made, target)  # another file system (the temp folder)
    return target


def write_message(err: OSError, path: str | Path | None = None) -> str:
    """One line for a failed write: ``cannot write PATH: No space left on device``."""
    where = path if path is not None else (err.filename or "the output")
    return f"cannot write {where}: {err.strerror or err}"


__all__ = ["integer", "real", "image_size", "boolean", "count_or_fraction", "read_names", "names_file",
           "output_file", "output_folder", "publish", "write_message", "OutputError", "MAX_NAMES_BYTES", "MAX_NAMES"]
