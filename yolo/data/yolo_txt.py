"""YOLO / Ultralytics layout reader: ``data.yaml`` + ``images/`` + ``labels/`` mirroring it.

``data.yaml`` (``yolo.filelimits.read_yaml_file``: at most ``MAX_YAML_BYTES``, aliases expanding to at most 100,000 values)::

    path: .                 # dataset root, relative to this file; must stay inside its folder
    train: images/train     # a folder of images, a .txt list of images, or a list of either
                            # (``../train/images``, Roboflow's, reads as ``train/images`` when that exists)
    val: [images/val, extra.txt]
    test: test.txt          # optional
    names: [cat, dog]       # or {0: cat, 1: dog} (ids 0..n-1, no gaps); without names, a
                            # classes.txt, else nc: 2 names them class_0, class_1 (Ultralytics' rule)

Without a ``data.yaml``, every ``images/<split>/`` that has a ``labels/<split>/`` is a split, with
classes from ``classes.txt``. Folders are searched recursively for image files (by extension); a
``.txt`` list names one image per line, relative to the dataset root (``./x`` relative to the
list's folder). The label of ``.../images/.../x.jpg`` is ``.../labels/.../x.txt`` (the last
``images`` part replaced, as Ultralytics does): one ``class cx cy w h`` line per object, normalised
by the image's (EXIF-oriented) width and height, or a segment line ``class x1 y1 ... xn yn`` read
as its points' bounding box (each line on its own; Ultralytics reads the whole file as segments
once one line has more than 6 fields). An empty label file is an image without objects;
a missing one is reported (``annotation_missing``) and the image skipped, since an unlabelled
image cannot be told from a background one.

Every bad record is reported with its file and line: list entries or lines that leave the dataset
folder (``..``, absolute paths, links out), label lines that are neither ``class cx cy w h`` nor
a segment of 3 or more points, or hold non-numbers, class ids outside the names, non-finite
coordinates, coordinates below 0 or above 1, zero width/height. Pixel corners are snapped to 1/256 px (exact in float32 up to 65536 px) so
that labels written from integer pixel boxes with >= 8 decimals read back as exactly those
integers (``yolo.data.convert`` relies on it); the change is at most 0.002 px.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from yolo.data.index import (
    DataLayoutError,
    Entry,
    SourceIndex,
    file_signature,
    inside,
    is_link_problem,
    name_max,
    normalised_entry,
    progress_iter,
    read_text,
)
from yolo.data.problems import Problem
from yolo.filelimits import MAX_CLASSES, FileLimitError, read_yaml_file
from yolo.imageio import IMAGE_EXTENSIONS

YAML_NAMES = ("data.yaml", "data.yml")
MAX_YAML_BYTES = 1 << 20  # a data.yaml is a few lines; larger files are refused (YAML alias bombs)
SPLIT_KEYS = ("train", "val", "test")
SNAP = 256.0  # pixel corners are rounded to 1/SNAP px
RANGE_TOLERANCE = 1e-6  # normalised values this far outside [0, 1] are float noise, not errors


@dataclass(frozen=True)
class YoloConfig:
    """What a ``data.yaml`` (or the folder pair) says."""

    root: Path  # the dataset root (``path``), resolved
    config: Path | None  # the data.yaml file, None for the folder-pair layout
    splits: dict[str, tuple[str, ...]]  # split name -> entries (folders / .txt lists), relative to root
    names: tuple[str, ...] | None  # class names by id; None when the layout gives none
    numbered: tuple[str, ...] | None = None  # ``nc: K`` without names: class_0..class_K-1 (used after classes.txt)


def find_data_yaml(folder: Path) -> Path | None:
    return next((folder / n for n in YAML_NAMES if (folder / n).is_file()), None)


def folder_pairs(root: Path) -> list[str]:
    """Names of the ``images/<split>`` folders that have a ``labels/<split>`` folder."""
    images, labels = root / "images", root / "labels"
    if not images.is_dir() or not labels.is_dir():
        return []
    return sorted(d.name for d in images.iterdir() if d.is_dir() and (labels / d.name).is_dir()
                  and not d.name.startswith("."))


def parse_names(value, where: Path) -> tuple[str, ...]:
    """``names`` as a list or an {id: name} map with ids 0..n-1 -> tuple of names (plain strings or
    numbers, at most ``MAX_CLASSES``)."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in items):
        raise DataLayoutError(f"{where}: every name must be a plain string, got {str(value)[:100]}")
    if len(items) > MAX_CLASSES:
        raise DataLayoutError(f"{where}: {len(items):,} names, over the {MAX_CLASSES:,} classes this project reads")
    if isinstance(value, (list, tuple)):
        out = tuple(str(v) for v in value)
    elif isinstance(value, dict):
        try:
            by_id = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise DataLayoutError(f"{where}: names map keys must be integer class ids, got {list(value)[:5]}") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise DataLayoutError(f"{where}: names ids must be 0..{len(by_id) - 1} without gaps, got {sorted(by_id)[:10]}")
        out = tuple(by_id[i] for i in range(len(by_id)))
    else:
        raise DataLayoutError(f"{where}: names must be a list or an {{id: name}} map, got {type(value).__name__}")
    if not out or len(set(out)) != len(out):
        raise DataLayoutError(f"{where}: names must be non-empty and without repeats, got {out[:10]}")
    return out


def read_config(folder: str | Path) -> YoloConfig:
    """The dataset's ``data.yaml`` (or its ``images/<split>`` + ``labels/<split>`` pairs).

    Raises ``DataLayoutError`` for an unreadable/oversized yaml, a ``path`` that leaves the folder,
    or bad ``names``. Split entries are checked later, per entry, by the reader (reported, not raised).
    """
    folder = Path(folder).expanduser().resolve()
    cfg_file = find_data_yaml(folder)
    if cfg_file is None:
        splits = {s: (f"images/{s}",) for s in folder_pairs(folder)}
        return YoloConfig(folder, None, splits, None)
    try:
        cfg = read_yaml_file(cfg_file, MAX_YAML_BYTES, "data.yaml")
    except FileLimitError as e:
        raise DataLayoutError(str(e)) from None
    if not isinstance(cfg, dict):
        raise DataLayoutError(f"{cfg_file}: expected a mapping with train/val/names, got {type(cfg).__name__}")
    root = folder
    p = cfg.get("path")
    if p not in (None, "", "."):
        cand = Path(str(p)).expanduser()
        real = (cand if cand.is_absolute() else folder / cand).resolve()
        if real != folder and folder not in real.parents:
            raise DataLayoutError(f"{cfg_file}: path {p!r} leaves the dataset folder {folder}; "
                                  "set 'path: .' (entries are read relative to it)")
        root = real
    splits = {}
    for key in SPLIT_KEYS:
        v = cfg.get(key)
        if v in (None, "", []):
            continue
        entries = v if isinstance(v, (list, tuple)) else [v]
        if not all(isinstance(e, (str, int)) and not isinstance(e, bool) for e in entries):
            raise DataLayoutError(f"{cfg_file}: {key} must be a path or a list of paths, got {str(v)[:100]}")
        splits[key] = tuple(str(e) for e in entries)
    names = parse_names(cfg["names"], cfg_file) if "names" in cfg else None
    return YoloConfig(root, cfg_file, splits, names, names_from_count(cfg.get("nc"), cfg_file))


def names_from_count(nc, where: Path) -> tuple[str, ...] | None:
    """``nc: K`` without ``names`` -> ("class_0", ..., "class_K-1"), as Ultralytics names them; None without ``nc``."""
    if nc is None:
        return None
    if isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= MAX_CLASSES:
        raise DataLayoutError(f"{where}: nc must be a class count in 1..{MAX_CLASSES}, got {nc!r}")
    return tuple(f"class_{i}" for i in range(nc))


def label_rel(image_rel: str) -> str:
    """``a/images/b/x.jpg`` -> ``a/labels/b/x.txt`` (the last ``images`` part; none: beside it)."""
    parts = list(PurePosixPath(image_rel).parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return str(PurePosixPath(*parts).with_suffix(".txt"))


def _walk_images(folder: Path) -> list[Path]:
    """Image files (by extension) under ``folder``, recursively, sorted; links to folders not followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in filenames
                if Path(f).suffix.lower() in IMAGE_EXTENSIONS and not f.startswith(".")]
    return sorted(out)


def parent_relative(root: Path, entry: str, limit: int = 255) -> str:
    """Ultralytics' rule for a split entry written as ``../x`` (Roboflow's exports put ``data.yaml``
    beside ``train/`` and write ``train: ../train/images``): ``x`` when ``root/x`` exists inside
    ``root``, else ``entry`` unchanged (then refused as leaving the folder). Only the first
    ``../`` is dropped, as Ultralytics does; nothing outside ``root`` is looked at."""
    if not entry.startswith("../"):
        return entry
    path, _, _ = inside(root, "", entry[3:], limit)
    return entry[3:] if path is not None and path.exists() else entry


def list_images(root: Path, config: Path | None, split: str, entries: tuple[str, ...]
                ) -> tuple[list[tuple[str, str]], list[Path], list[Problem]]:
    """Images of a split: ([(image path relative to root, where it was named)], list files read,
    problems). Entries and list lines leaving ``root`` are reported, never opened."""
    where_cfg = str(config) if config else str(root)
    limit = name_max(root)
    items, lists, problems = [], [], []
    for k, entry in enumerate(entries, start=1):
        path, kind, why = inside(root, "", parent_relative(root, entry, limit), limit)
        if path is None:
            if entry.startswith("../"):
                why += f" (and {entry[3:80]!r} is not inside it either)"
            problems.append(Problem.make(kind, where_cfg, f"{split} entry {k} {entry[:80]!r}: {why}"))
            continue
        if path.is_dir():
            for f in _walk_images(path):
                rel = f.relative_to(root).as_posix()
                full, kind, why = inside(root, "", rel, limit)  # a file that is a link out
                if full is None:
                    problems.append(Problem.make(kind, str(f), why))
                    continue
                items.append((rel, f"{split} entry {k}"))
        elif path.is_file() and path.suffix.lower() == ".txt":
            base = path.parent.relative_to(root).as_posix()
            try:
                text = read_text(path)
            except OSError as e:
                problems.append(Problem.make("annotation_malformed", str(path), f"{split} entry {k}: {e}"))
                continue
            lists.append(path)
            for n, line in enumerate(text.splitlines(), start=1):
                name = line.strip()
                if not name:
                    continue
                folder = base if name.startswith("./") else ""
                rel = name[2:] if name.startswith("./") else name
                full, kind, why = inside(root, folder, rel, limit)
                if full is None:
                    problems.append(Problem.make(kind, str(path), f"line {n}: {why}"))
                    continue
                items.append((full.relative_to(root).as_posix(), f"{path.name} line {n}"))
        else:
            problems.append(Problem.make("image_missing", where_cfg,
                                         f"{split} entry {k} {entry!r} is neither a folder nor a .txt list"))
    return items, lists, problems


def parse_label_lines(path: Path, num_classes: int | None) -> tuple[list[str], np.ndarray, list[Problem]]:
    """A label file -> (class id strings, (K, 4) float64 normalised cxcywh, problems per bad line)."""
    names, values, problems, polygons = [], [], [], 0
    f = str(path)
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        polygon = len(parts) >= 7 and len(parts) % 2 == 1  # class + 3 or more (x, y) points
        if len(parts) != 5 and not polygon:
            problems.append(Problem.make("label_line_malformed", f, f"line {n}: {len(parts)} fields, expected 5 "
                                         "(class cx cy w h) or a polygon (class x1 y1 x2 y2 x3 y3 ...)"))
            continue
        try:
            cls, nums = float(parts[0]), np.array([float(v) for v in parts[1:]])
        except ValueError:
            problems.append(Problem.make("label_line_malformed", f, f"line {n}: not numbers"))
            continue
        if not (np.isfinite(cls) and cls.is_integer() and cls >= 0 and (num_classes is None or cls < num_classes)):
            have = f" ({num_classes} names)" if num_classes is not None else ""
            problems.append(Problem.make("unknown_class", f, f"line {n}: class {parts[0]!r}{have}"))
            continue
        if not np.isfinite(nums).all():
            problems.append(Problem.make("box_invalid", f, f"line {n}: {' '.join(parts[1:])[:200]}"))
            continue
        if (nums < -RANGE_TOLERANCE).any() or (nums > 1 + RANGE_TOLERANCE).any():
            problems.append(Problem.make("label_out_of_range", f, f"line {n}: {' '.join(parts[1:])[:200]}"))
            continue
        if polygon:  # Ultralytics' rule for segment labels: the points' bounding box
            (x0, y0), (x1, y1) = nums.reshape(-1, 2).min(0), nums.reshape(-1, 2).max(0)
            nums = np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
        if nums[2] <= 0 or nums[3] <= 0:
            problems.append(Problem.make("box_zero_area", f, f"line {n}"))
            continue
        names.append(str(int(cls)))
        values.append(nums)
        polygons += polygon
    if polygons:
        problems.append(Problem.make("label_polygon", f, f"{polygons} line" + "s" * (polygons > 1), polygons))
    return names, np.array(values, dtype=np.float64).reshape(-1, 4), problems


def normalised_to_corners(cxcywh: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised (cx, cy, w, h) (ndarray[K, 4]) -> pixel (x1, y1, x2, y2), snapped to 1/SNAP px."""
    cx, cy, w, h = (cxcywh[:, k] for k in range(4))
    xyxy = np.stack(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height), axis=1)
    return np.round(xyxy * SNAP) / SNAP


@dataclass(frozen=True)
class YoloSource:
    """One split of a YOLO-layout dataset."""

    directory: Path  # the dataset root (data.yaml's ``path``)
    split: str  # "train", "val", "test" or an images/<split> folder name
    entries: tuple[str, ...]  # folders / .txt lists relative to ``directory``
    config: Path | None = None  # data.yaml (None: folder pair)
    num_classes: int | None = None  # len(names) when known: larger class ids are reported

    @property
    def key(self) -> str:
        return f"yolo-{self.split}"

    @property
    def name(self) -> str:
        return f"{self.directory.name}/{self.split}"

    def _items(self):
        return list_images(self.directory.resolve(), self.config, self.split, self.entries)

    def signature(self) -> str:
        """Cache key: data.yaml, list files, and name/size/mtime of every listed image and label."""
        items, lists, _ = self._items()
        root = self.directory.resolve()

        def st(p: Path) -> str:
            try:
                s = p.stat()
                return f"{s.st_size} {s.st_mtime_ns}"
            except OSError:
                return "-"

        parts = [f"{self.entries} {self.num_classes}"]
        parts += [f"{p} {st(p)}" for p in ([self.config] if self.config else []) + lists]
        parts += [f"{rel} {st(root / rel)} {st(root / label_rel(rel))}" for rel, _ in items]
        return file_signature(parts)

    def build(self, progress: bool = True) -> SourceIndex:
        root = self.directory.resolve()
        items, _, problems = self._items()
        limit = name_max(root)
        entries, seen = [], {}
        for rel, where in progress_iter(items, f"indexing {self.name}", progress):
            if rel in seen:
                problems.append(Problem.make("duplicate_id", str(root / rel), f"{where}, also {seen[rel]}"))
                continue
            seen[rel] = where
            lab, kind, why = inside(root, "", label_rel(rel), limit)
            if lab is None:
                problems.append(Problem.make(kind, str(root / label_rel(rel)) if is_link_problem(kind, why) else str(root / rel), why))
                continue
            entry = self._read(root, rel, lab, problems)
            if entry is not None:
                entries.append(entry)
        return SourceIndex.from_entries(self.name, str(root), "index", entries, problems)

    def _read(self, root: Path, rel: str, label: Path, problems: list[Problem]) -> Entry | None:
        if not label.is_file():
            problems.append(Problem.make("annotation_missing", str(label), f"for {rel}"))
            return None
        try:
            names, cxcywh, bad = parse_label_lines(label, self.num_classes)
        except OSError as e:
            problems.append(Problem.make("annotation_malformed", str(label), str(e)))
            return None
        problems += bad
        return normalised_entry(PurePosixPath(rel).stem, rel, root / rel, label, names, cxcywh,
                                normalised_to_corners, problems)
