"""Bounds on what a file may make the library allocate, checked before anything is allocated.

No file may cost more memory than its size justifies. Each reader checks the sizes it takes from
a file against these bounds first (``yolo.weights`` for checkpoints and Darknet files,
``yolo.thresholds`` for the operating-points file), so a hostile or broken file is a one-line
``FileLimitError`` (a ``ValueError``) and never an allocation of gigabytes:

    MAX_CLASSES        10,000 classes. The largest public detection label sets are LVIS (1,203),
                       Open Images (601) and Objects365 (365); YOLO9000's WordTree has 9,418. At
                       width 1, 10,000 classes are ~54M prediction weights (215 MB), the size of
                       the network itself; a file claiming 10 million asked for 30.7 GB.
    zip expansion      a torch.save zip stores its entries uncompressed, so what it unpacks to is
                       its own size; entries that unpack to more than 2x the file's size (+ 1 MiB
                       for the pickle and records) are a recompressed file: 4.7 MB -> 1 GiB was seen.
    dense tensors      a tensor whose storage holds fewer bytes than its elements (an expanded,
                       stride-0 view) is refused: loaded into a model it becomes its full size.
    small files        ``read_small_file``: a regular file (not a FIFO, a device such as /dev/zero,
                       a folder), at most ``limit`` bytes, opened without blocking; ``read_json_file``
                       parses one strictly (nesting, integer digits, NaN) and caches it by
                       (path, inode, mtime, size), so an unchanged file is not read again;
                       ``read_yaml_file`` refuses YAML that expands through aliases to over
                       100,000 values (billion laughs).

The image-size bound is ``yolo.config.MAX_IMAGE_SIZE`` (2048), checked by ``yolo.config.grid_sizes``.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import zipfile
from collections import OrderedDict
from pathlib import Path

MAX_CLASSES = 10_000
MAX_INT_DIGITS = 30  # an integer in a small JSON file (a count, a version): 30 digits is beyond any
#                      real one; a 400-digit integer made float() overflow on the Detect page
MAX_YAML_NODES = 100_000  # values a YAML file may expand to (a data.yaml or run config.yaml has < 1,000)
ZIP_EXPANSION = 2.0  # what a zip's entries may unpack to, as a multiple of its size ...
ZIP_SLACK = 1 << 20  # ... plus this (the pickle, version and byte-order records of a small file)


class FileLimitError(ValueError):
    """A file whose sizes exceed what this project reads; the message names the bound."""


def check_class_count(count: int, path, where: str = "the prediction layers") -> int:
    """``count`` classes read from a file, within [1, MAX_CLASSES]; FileLimitError otherwise."""
    if count > MAX_CLASSES:
        raise FileLimitError(f"{path}: {where} claim {count:,} classes; this project reads at most "
                             f"{MAX_CLASSES:,} (the largest public label sets have ~1,200; YOLO9000 9,418)")
    return count


def check_zip_expansion(path: str | Path) -> None:
    """Refuse a zip whose entries unpack to more than ZIP_EXPANSION x its size + ZIP_SLACK (read
    from the zip's central directory: nothing is decompressed). Not a zip: nothing to check."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load says what is wrong with it
    unpacked = sum(max(int(e.file_size), 0) for e in entries)
    if unpacked > ZIP_EXPANSION * size + ZIP_SLACK:
        raise FileLimitError(
            f"{path}: its {len(entries)} zip entries unpack to {unpacked:,} bytes, {unpacked / max(size, 1):,.0f}x "
            f"the file's {size:,}; a torch.save file stores them uncompressed (a recompressed file is refused, "
            f"at most {ZIP_EXPANSION:g}x + {ZIP_SLACK >> 20} MiB)")


def check_dense(tensors: dict, path) -> None:
    """Every tensor's storage holds at least its elements' bytes (no expanded, stride-0 views that
    become their full size when copied into a model); FileLimitError naming the first that does not."""
    for name, t in tensors.items():
        try:
            need = t.numel() * t.element_size()
            have = t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
        except (AttributeError, RuntimeError, TypeError):
            continue  # not a tensor: the shape checks say so
        if need > have:
            raise FileLimitError(f"{path}: tensor {name!r} of shape {tuple(t.shape)} claims {need:,} bytes "
                                 f"over a storage of {have:,} (an expanded view); a checkpoint's tensors are dense")


def read_small_file(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Opened with O_NONBLOCK and checked
    with fstat before reading, so a FIFO never blocks and /dev/zero is never read; FileLimitError
    for anything else (OSError for a file that cannot be opened)."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode)
                    or stat.S_ISBLK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file")
            raise FileLimitError(f"{path}: {kind}, not a regular {what}")
        if info.st_size > limit:
            raise FileLimitError(f"{path}: {info.st_size:,} bytes, over the {what} limit of {limit:,} bytes")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise FileLimitError(f"{path}: over the {what} limit of {limit:,} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a {len(text.lstrip('-'))}-digit integer (at most {MAX_INT_DIGITS} digits)")
    return int(text)


def parse_json(data: bytes, path) -> object:
    """Strict JSON of a small file: UTF-8, no NaN/Infinity, integers of at most MAX_INT_DIGITS
    digits, nesting CPython's parser can follow; one-line ``FileLimitError`` otherwise."""
    try:
        text = data.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int)
    except RecursionError:
        raise FileLimitError(f"{path}: nested too deeply to be read as JSON") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise FileLimitError(f"{path}: not valid JSON ({str(err).splitlines()[0][:200]})") from None


JSON_CACHE_MAX_BYTES = 4 << 20  # files above this are parsed on each read, never kept
_JSON_CACHE: OrderedDict = OrderedDict()  # (path, device, inode, mtime_ns, size) -> parsed content


def read_json_file(path: str | Path, limit: int, what: str = "JSON file") -> object:
    """``parse_json`` of ``read_small_file(path, limit)``, cached by (path, inode, mtime, size) so a
    file that has not changed is not read again (a page rerun, a second Detector); each call gets
    its own copy. FileLimitError (a ValueError) for a file that is not small, regular, valid JSON."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        raise FileLimitError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    key = (str(path.resolve()), info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
    if stat.S_ISREG(info.st_mode) and key in _JSON_CACHE:
        _JSON_CACHE.move_to_end(key)
        return copy.deepcopy(_JSON_CACHE[key])
    try:
        data = read_small_file(path, limit, what)
    except OSError as err:
        raise FileLimitError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    content = parse_json(data, path)
    for old in [k for k in _JSON_CACHE if k[0] == key[0]]:  # an older version of this file
        del _JSON_CACHE[old]
    if len(data) > JSON_CACHE_MAX_BYTES:  # a large file (a long label review) is not kept
        return content
    _JSON_CACHE[key] = content
    while len(_JSON_CACHE) > 32:
        _JSON_CACHE.popitem(last=False)
    return copy.deepcopy(content)


def expanded_nodes(doc, limit: int) -> int:
    """Nodes of a parsed YAML/JSON document counted as a reader walking it sees them: a list or
    mapping reached twice through YAML aliases counts twice. Stops (and returns ``limit + 1``) as
    soon as there are more than ``limit``, so a billion-laughs document costs ``limit`` steps."""
    count, stack = 0, [doc]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return count


def parse_yaml(text: str, path, max_nodes: int = MAX_YAML_NODES) -> object:
    """``yaml.safe_load`` of a small file's text, refused (``FileLimitError``) when it is not YAML,
    nests deeper than the parser can follow, or expands through aliases to over ``max_nodes``
    nodes (a "billion laughs" of nine aliases nine deep is 9^9 nodes from 400 bytes, which
    hung any reader that printed or iterated it)."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except RecursionError:
        raise FileLimitError(f"{path}: nested too deeply to be read as YAML") from None
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError) as err:
        # the constructors raise plain Python errors on values such as "2001-13-01" or 5,000 digits
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise FileLimitError(f"{path}: not readable YAML ({first})") from None
    if expanded_nodes(doc, max_nodes) > max_nodes:
        raise FileLimitError(f"{path}: expands (through YAML aliases) to over {max_nodes:,} values; not read")
    return doc


def read_yaml_file(path: str | Path, limit: int, what: str = "YAML file") -> object:
    """``parse_yaml`` of ``read_small_file(path, limit)`` (a leading UTF-8 BOM dropped);
    ``FileLimitError`` for a file that is not small, regular, bounded YAML."""
    try:
        data = read_small_file(path, limit, what)
    except OSError as err:
        raise FileLimitError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    return parse_yaml(data.decode("utf-8-sig", errors="replace"), path)


__all__ = ["MAX_CLASSES", "parse_json", "read_json_file", "parse_yaml", "read_yaml_file", "expanded_nodes", "FileLimitError", "check_class_count", "check_zip_expansion", "check_dense",
           "read_small_file"]
