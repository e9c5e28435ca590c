"""COCO JSON reader: ``annotations/instances_<split>.json`` (or any JSON given by path).

Layouts: ``annotations/instances_<split>.json`` (COCO's, CVAT's), ``<split>/_annotations.coco.json``
(Roboflow's), or any JSON given by path (Label Studio's ``result.json``, FiftyOne's ``labels.json``
beside ``data/``). Images are looked up, for a JSON of split ``S``, in ``images/S/``, ``S/``,
``images/``, ``data/`` and the dataset root, in that order (``file_name`` may hold sub-folders; never ``..`` or an absolute path).
``bbox`` is ``[x, y, w, h]`` in pixels of the image as annotated (continuous, 0-based), so the
pixel xyxy box is ``(x, y, x + w, y + h)``. Classes are the file's ``categories`` by name, in the
order they are listed there; their ids need not be contiguous. ``iscrowd`` objects are kept as
"difficult" (ignored by evaluation, not trained on, as VOC's difficult). Images without
annotations are kept (background images).

Memory: the file is streamed with ijson (its C backend), one top-level array at a time
(``categories``, ``images``, ``annotations``): what is kept is compact arrays, about 60 bytes per
annotation and a file name per image, plus one entry being parsed. Peak memory grows with the
number of records, not with the bytes of the file (segmentation polygons, which make most of a
COCO file, are parsed one annotation at a time and dropped); a single JSON value is held whole,
so one 1 GB string would need 1 GB. ``json.load`` instead holds every object of the file at
once, several times the file size. Each bad record is reported with the JSON file and its entry
(images/annotations/categories index and id); a file that is not valid JSON is reported once and
gives no images.
"""

from __future__ import annotations

import array
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from yolo.data.index import (
    BOM,
    SourceIndex,
    annotated_entry,
    dir_stats,
    file_signature,
    inside,
    name_max,
    progress_iter,
)
from yolo.data.problems import Problem
from yolo.filelimits import MAX_CLASSES

INSTANCES_PREFIX = "instances_"
ROBOFLOW_JSON = "_annotations.coco.json"  # Roboflow's COCO export: <split>/_annotations.coco.json


def split_name(json_file: Path) -> str:
    """``instances_val2017.json`` -> ``val2017``; Roboflow's ``valid/_annotations.coco.json`` ->
    ``valid`` (its folder, where the images are); any other JSON -> its stem."""
    if json_file.name == ROBOFLOW_JSON and json_file.parent.name:
        return json_file.parent.name
    return json_file.stem.removeprefix(INSTANCES_PREFIX)


def coco_root(json_file: Path) -> Path:
    """The dataset folder of a JSON: the folder above ``annotations/``, else the JSON's folder."""
    parent = json_file.parent
    return parent.parent if parent.name == "annotations" else parent


def coco_files(root: Path) -> dict[str, Path]:
    """{split: JSON} of a COCO-layout folder, or of a JSON file: ``annotations/instances_<split>.json``
    (COCO's own, CVAT's ``instances_default``), else ``<split>/_annotations.coco.json`` (Roboflow's
    export, images beside the JSON)."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".json":
        return {split_name(root): root}
    folder = root / "annotations"
    if folder.is_dir():
        found = {split_name(p): p for p in sorted(folder.glob(f"{INSTANCES_PREFIX}*.json")) if p.is_file()}
        if found:
            return found
    if not root.is_dir():
        return {}
    with os.scandir(root) as entries:  # d_type: no stat per entry in a folder of many images
        folders = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    return {name: root / name / ROBOFLOW_JSON for name in folders if (root / name / ROBOFLOW_JSON).is_file()}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _stream(path: Path, prefix: str):
    import ijson

    with open(path, "rb") as f:
        if f.read(len(BOM)) != BOM:  # a UTF-8 BOM (Windows tools) is skipped, not a JSON error
            f.seek(0)
        yield from ijson.items(f, prefix, use_float=True)


@dataclass
class CocoTables:
    """The useful content of a COCO JSON, as compact columns (entries in file order)."""

    categories: list[tuple[object, str]] = field(default_factory=list)  # (id, name), duplicates dropped
    image_ids: list = field(default_factory=list)  # per kept image: its id
    file_names: list[str] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)  # (w, h); 0 when absent
    image_entries: list[int] = field(default_factory=list)  # index in the file's images array
    ann_image: array.array = field(default_factory=lambda: array.array("q"))  # row in image_ids
    ann_class: array.array = field(default_factory=lambda: array.array("q"))  # row in categories
    ann_box: array.array = field(default_factory=lambda: array.array("d"))  # x, y, w, h per annotation
    ann_crowd: array.array = field(default_factory=lambda: array.array("b"))


def _key(v):
    """Ids as dict keys: 3 and 3.0 are the same id; strings stay strings."""
    return int(v) if _is_number(v) and float(v).is_integer() else v


def read_categories(path: Path) -> tuple[list[tuple[object, str]], list[Problem]]:
    """The file's categories [(id, name)] in file order; bad or repeated entries reported.

    Roboflow's exports list the project itself first, as a category of supercategory ``"none"``
    that the real categories name as their supercategory (often one class named like the project,
    under another id). Such a group is not a class when no annotation uses its id (checked by
    streaming the annotations' ``category_id``, only when a file has such a group): it is left out
    and reported (``category_group``); a group that boxes do use stays a class."""
    f, raw, problems = str(path), [], []
    for k, c in enumerate(_stream(path, "categories.item")):
        if k == MAX_CLASSES:
            problems.append(Problem.make("entry_malformed", f, f"categories[{k}] and after: over {MAX_CLASSES:,} "
                                         "categories (yolo.filelimits.MAX_CLASSES); the rest are ignored"))
            break
        raw.append((c.get("id"), c.get("name"), c.get("supercategory")) if isinstance(c, dict) else (None, None, None))
    groups = _unused_groups(path, raw)
    out, ids, names = [], set(), set()
    for k, (cid, name, parent) in enumerate(raw):
        if k in groups:
            problems.append(Problem.make("category_group", f, f"categories[{k}] (id {cid!r}) {name!r}"))
            continue
        if cid is None or isinstance(cid, (dict, list)) or not isinstance(name, str) or not name.strip():
            problems.append(Problem.make("entry_malformed", f, f"categories[{k}]: needs an id and a name"))
            continue
        if _key(cid) in ids or name in names:
            problems.append(Problem.make("entry_malformed", f, f"categories[{k}]: id {cid!r} / name {name!r} repeated"))
            continue
        ids.add(_key(cid))
        names.add(name)
        out.append((_key(cid), name))
    return out, problems


def _unused_groups(path: Path, raw: list[tuple]) -> set[int]:
    """Positions in ``raw`` [(id, name, supercategory)] of Roboflow-style groups: supercategory
    ``"none"``, named as the supercategory of another category (another id), used by no annotation."""
    candidates = {k for k, (cid, name, parent) in enumerate(raw)
                  if parent == "none" and isinstance(name, str) and cid is not None and not isinstance(cid, (dict, list))
                  and any(p == name and _key(c) != _key(cid) for c, _, p in raw)}
    if not candidates:
        return set()
    ids = {_key(raw[k][0]) for k in candidates}
    used = set()  # at most the candidates' ids, whatever the file holds
    for c in _stream(path, "annotations.item.category_id"):
        if not isinstance(c, (dict, list)) and _key(c) in ids:
            used.add(_key(c))
    return {k for k in candidates if _key(raw[k][0]) not in used}


@functools.lru_cache(maxsize=32)
def _cached_class_names(path: str, size: int, mtime: int) -> tuple[str, ...]:
    return tuple(n for _, n in read_categories(Path(path))[0])


def class_names(path: Path) -> tuple[str, ...]:
    """Category names of a COCO JSON in file order (cached per file size and mtime); () if unreadable."""
    import ijson

    st = path.stat()
    try:
        return _cached_class_names(str(path), st.st_size, st.st_mtime_ns)
    except (ijson.JSONError, OSError, UnicodeDecodeError):
        return ()


def read_coco(path: Path) -> tuple[CocoTables, list[Problem]]:
    """Stream a COCO JSON into ``CocoTables``; every bad entry reported (file, array index, id).

    Raises ``ijson.JSONError`` / ``OSError`` for a file that is not valid JSON (the caller reports it).
    """
    t, f = CocoTables(), str(path)
    t.categories, problems = read_categories(path)
    cat_row = {cid: r for r, (cid, _) in enumerate(t.categories)}
    image_row: dict = {}
    for k, im in enumerate(_stream(path, "images.item")):
        iid = im.get("id") if isinstance(im, dict) else None
        name = im.get("file_name") if isinstance(im, dict) else None
        if iid is None or isinstance(iid, (dict, list)) or not isinstance(name, str):
            problems.append(Problem.make("entry_malformed", f, f"images[{k}]: needs an id and a file_name"))
            continue
        if _key(iid) in image_row:
            first = t.image_entries[image_row[_key(iid)]]
            problems.append(Problem.make("duplicate_id", f, f"images[{k}]: image id {iid!r} already at images[{first}]"))
            continue
        w, h = im.get("width"), im.get("height")
        ok = _is_number(w) and _is_number(h) and w > 0 and h > 0
        image_row[_key(iid)] = len(t.image_ids)
        t.image_ids.append(iid)
        t.file_names.append(name)
        t.image_sizes.append((int(w), int(h)) if ok else (0, 0))
        t.image_entries.append(k)
    for k, a in enumerate(_stream(path, "annotations.item")):
        if not isinstance(a, dict):
            problems.append(Problem.make("entry_malformed", f, f"annotations[{k}]: not an object"))
            continue
        label = f"annotations[{k}] (id {a.get('id')!r})"
        row = image_row.get(_key(a.get("image_id"))) if not isinstance(a.get("image_id"), (dict, list)) else None
        if row is None:
            problems.append(Problem.make("entry_malformed", f, f"{label}: image_id {a.get('image_id')!r} is not in images"))
            continue
        cid = a.get("category_id")
        cls = cat_row.get(_key(cid)) if not isinstance(cid, (dict, list)) else None
        if cls is None:
            problems.append(Problem.make("unknown_class", f, f"{label}: category_id {cid!r} is not in categories"))
            continue
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            problems.append(Problem.make("entry_malformed", f, f"{label}: bbox {str(bbox)[:60]} is not [x, y, w, h]"))
            continue
        if not np.isfinite(bbox).all():
            problems.append(Problem.make("box_invalid", f, f"{label}: bbox {bbox}"))
            continue
        if bbox[2] <= 0 or bbox[3] <= 0:
            problems.append(Problem.make("box_zero_area", f, f"{label}: bbox {bbox}"))
            continue
        t.ann_image.append(row)
        t.ann_class.append(cls)
        t.ann_box.extend(float(v) for v in bbox)
        t.ann_crowd.append(1 if a.get("iscrowd") in (1, True, 1.0) else 0)
    if not t.image_ids:
        problems.append(Problem.make("annotation_malformed", f, "no usable 'images' entries"))
    return t, problems


@dataclass(frozen=True)
class CocoSource:
    """The images of one COCO JSON."""

    directory: Path  # the dataset root (images are looked up under it)
    json_file: Path  # inside ``directory``
    split: str

    @property
    def key(self) -> str:
        return f"coco-{self.split}"

    @property
    def name(self) -> str:
        return f"{self.directory.name}/{self.split}"

    @property
    def image_folders(self) -> tuple[str, ...]:
        return (f"images/{self.split}", self.split, "images", "data", "")

    def signature(self) -> str:
        """Cache key: the JSON's size/mtime and name/size/mtime of the files in the image folders."""
        st = self.json_file.stat()
        parts = [f"{self.json_file} {st.st_size} {st.st_mtime_ns}"]
        for folder in self.image_folders:
            stats = dir_stats(self.directory / folder)
            parts += [f"{folder}/{n} {s}" for n, s in sorted(stats.items())]
        return file_signature(parts)

    def _find_image(self, root: Path, name: str, limit: int) -> tuple[Path | None, str, str]:
        """The first image folder holding ``name``; (None, kind, why) when it leaves the root or is missing."""
        first = None
        for folder in self.image_folders:
            if not (root / folder).is_dir():
                continue
            path, kind, why = inside(root, folder, name, limit)
            if path is None:
                return None, kind, why
            if path.is_file():
                return path, "", ""
            first = first or path
        return None, "image_missing", f"not found in {', '.join(f or '.' for f in self.image_folders)}" if first is None \
            else f"no such file ({first})"

    def build(self, progress: bool = True) -> SourceIndex:
        import ijson

        root = self.directory.resolve()
        f = str(self.json_file)
        try:
            t, problems = read_coco(self.json_file)
        except (ijson.JSONError, OSError, UnicodeDecodeError) as e:
            problems = [Problem.make("annotation_malformed", f, f"{type(e).__name__}: {str(e)[:200]}")]
            return SourceIndex.from_entries(self.name, str(root), "name", [], problems)
        names = [n for _, n in t.categories]
        image = np.frombuffer(t.ann_image, dtype=np.int64) if len(t.ann_image) else np.zeros(0, np.int64)
        order = np.argsort(image, kind="stable")
        starts = np.searchsorted(image[order], np.arange(len(t.image_ids) + 1))
        box = np.frombuffer(t.ann_box, dtype=np.float64).reshape(-1, 4) if len(t.ann_box) else np.zeros((0, 4))
        cls = np.frombuffer(t.ann_class, dtype=np.int64) if len(t.ann_class) else np.zeros(0, np.int64)
        crowd = np.frombuffer(t.ann_crowd, dtype=np.int8).astype(bool) if len(t.ann_crowd) else np.zeros(0, bool)
        limit = name_max(root)
        entries, seen = [], {}
        for r in progress_iter(range(len(t.image_ids)), f"indexing {self.name}", progress):
            name, where = t.file_names[r], f"images[{t.image_entries[r]}] (id {t.image_ids[r]!r})"
            path, kind, why = self._find_image(root, name, limit)
            if path is None:
                problems.append(Problem.make(kind, f, f"{where}: file_name {name[:80]!r}: {why}"))
                continue
            rel = path.relative_to(root).as_posix()
            if rel in seen:
                problems.append(Problem.make("duplicate_id", f, f"{where}: {rel} already listed at {seen[rel]}"))
                continue
            seen[rel] = where
            rows = order[starts[r]:starts[r + 1]]
            xywh = box[rows]
            xyxy = np.concatenate((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), axis=1)
            entry = annotated_entry(str(PurePosixPath(name).with_suffix("")), rel, path, t.image_sizes[r], xyxy,
                                      [names[c] for c in cls[rows]], crowd[rows], f, where, problems)
            if entry is not None:
                entries.append(entry)
        return SourceIndex.from_entries(self.name, str(root), "name", entries, problems)
