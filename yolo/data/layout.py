"""Find what is in a dataset folder: its format, its sources (year/split or CSV) and its classes;
``build_index`` turns split specs into the labelled ``DetectionIndex`` (no Lightning needed).

Four layouts are recognised (``detect_format``), checked in this order:

* VOCdevkit (``"voc"``): ``ROOT/VOCdevkit/VOC2007``, ``ROOT/VOCdevkit/VOC2012`` (or ``ROOT`` being
  the VOCdevkit folder, or a single folder in VOC layout) each holding ``Annotations/``,
  ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``.
* YOLO / Ultralytics (``"yolo"``) with a ``ROOT/data.yaml`` (see ``yolo.data.yolo_txt``).
* Kaggle (the course's copy, ``"kaggle"``): ``ROOT/images/``, ``ROOT/labels/`` and ``ROOT/<split>.csv``.
* YOLO without data.yaml: ``ROOT/images/<split>/`` + ``ROOT/labels/<split>/`` (+ ``classes.txt``).
* COCO JSON (``"coco"``): ``ROOT/annotations/instances_<split>.json``, or ``ROOT`` being one JSON
  file (see ``yolo.data.coco``).

A split spec names what to read: ``"2007/trainval"`` (year folder ``VOC2007`` or ``2007``,
split ``trainval``), ``"trainval"`` (that split of every year folder that has it), for the
Kaggle layout the CSV name (``"train"`` or ``"train.csv"``), for YOLO a data.yaml key or an
``images/<split>`` folder name, for COCO the JSON's split (``"val2017"`` for
``instances_val2017.json``) or a JSON path relative to the root.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from yolo.config import VOC_CLASSES
from yolo.data import coco, yolo_txt
from yolo.data.coco import CocoSource
from yolo.data.index import DataLayoutError, DetectionIndex, load_or_build, read_text
from yolo.data.kaggle import KaggleSource
from yolo.data.voc import VOCSource
from yolo.data.yolo_txt import YoloSource

FORMATS = ("voc", "yolo", "kaggle", "coco")
MAX_CLASSES_TXT_BYTES = 1 << 20  # a classes.txt of 10,000 names is ~100 KB

CLASSES_FILE = "classes.txt"


def _is_voc_dir(p: Path) -> bool:
    return (p / "Annotations").is_dir() and (p / "ImageSets" / "Main").is_dir()


def voc_year_dirs(root: Path) -> dict[str, Path]:
    """{year name: folder} of the VOC-layout folders under ``root`` ("2012" for ``VOC2012``)."""
    root = Path(root)
    if _is_voc_dir(root):
        return {root.name.removeprefix("VOC"): root}
    for base in (root / "VOCdevkit", root):
        if base.is_dir():
            found = {d.name.removeprefix("VOC"): d for d in sorted(base.iterdir())
                     if d.is_dir() and _is_voc_dir(d)}
            if found:
                return found
    return {}


def _is_kaggle_dir(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "labels").is_dir() and any(root.glob("*.csv"))


def detect_format(root: str | Path) -> str:
    """``"voc"``, ``"yolo"``, ``"kaggle"`` or ``"coco"``; raises ``DataLayoutError`` saying what was expected."""
    root = Path(root).expanduser()
    if root.is_file() and root.suffix.lower() == ".json":
        return "coco"
    if not root.is_dir():
        raise DataLayoutError(f"dataset folder {root} does not exist. Give the folder that holds "
                              "VOCdevkit/ (or write the demo: python -m yolo.data demo OUT).")
    if voc_year_dirs(root):
        return "voc"
    if yolo_txt.find_data_yaml(root):
        return "yolo"
    if _is_kaggle_dir(root):
        return "kaggle"
    if yolo_txt.folder_pairs(root):
        return "yolo"
    if coco.coco_files(root):
        return "coco"
    seen = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:12]) or "nothing"
    raise DataLayoutError(
        f"{root} is neither a VOCdevkit nor a Kaggle-layout, YOLO or COCO dataset (it holds: {seen}).\n"
        "Expected one of\n"
        "  VOCdevkit: ROOT/VOCdevkit/VOC2007|VOC2012/{Annotations/*.xml, JPEGImages/, ImageSets/Main/<split>.txt}\n"
        "             (ROOT may also be VOCdevkit itself or one folder in that layout),\n"
        "  YOLO:      ROOT/{data.yaml, images/..., labels/...} or ROOT/{images/<split>/, labels/<split>/, classes.txt},\n"
        "  COCO:      ROOT/{annotations/instances_<split>.json, images/<split>/ or <split>/},\n"
        "             ROOT/<split>/_annotations.coco.json (Roboflow), or a .json file,\n"
        "  Kaggle:    ROOT/{images/, labels/<id>.txt with 'class cx cy w h', train.csv, test.csv}.\n"
        "Fetch VOC with: python -m yolo.data download ROOT")


def dataset_folder(root: str | Path) -> Path:
    """The folder of a dataset given as a folder or (COCO) as a JSON file."""
    root = Path(root).expanduser()
    return coco.coco_root(root) if root.is_file() else root


def available_splits(root: str | Path) -> list[str]:
    """Every split spec that exists, e.g. ["2007/test", "2007/trainval", "2012/train", ...]."""
    root = Path(root).expanduser()
    fmt = detect_format(root)
    if fmt == "kaggle":
        return sorted(p.stem for p in root.glob("*.csv"))
    if fmt == "yolo":
        return list(yolo_txt.read_config(root).splits)
    if fmt == "coco":
        return list(coco.coco_files(root))
    out = []
    for year, d in voc_year_dirs(root).items():
        out += [f"{year}/{p.stem}" for p in sorted((d / "ImageSets" / "Main").glob("*.txt")) if "_" not in p.stem]
    return out


def _check_list_inside(listing: Path, folder: Path) -> None:
    """A split list (VOC split .txt, Kaggle .csv) must not be a link out of its dataset folder:
    its lines would be read (and echoed in reports) from a file outside the dataset."""
    real, base = listing.resolve(), folder.resolve()
    if base not in real.parents:
        raise DataLayoutError(f"{listing} is a link to {real}, outside the dataset folder {base}; "
                              "copy the split list into the dataset instead")


def _yolo_source(root: Path, spec: str) -> YoloSource:
    cfg = yolo_txt.read_config(root)
    if spec not in cfg.splits:
        raise DataLayoutError(f"split {spec!r} not found in {cfg.config or root}; available: {list(cfg.splits)}")
    names = cfg.names or _classes_txt(root) or cfg.numbered
    return YoloSource(cfg.root, spec, cfg.splits[spec], cfg.config, len(names) if names else None)


def _coco_source(root: Path, spec: str) -> CocoSource:
    files = coco.coco_files(root)
    folder = dataset_folder(root)
    if spec in files:
        json_file, split = files[spec], spec
    elif spec.lower().endswith(".json") and (folder / spec).is_file():
        json_file = folder / spec
        split = coco.split_name(json_file)
    else:
        raise DataLayoutError(f"split {spec!r} not found in {root}; available: {list(files)} (or a .json path)")
    _check_list_inside(json_file, folder)
    return CocoSource(folder, json_file, split)


def resolve_sources(root: str | Path, specs: Sequence[str]) -> list[VOCSource | KaggleSource | YoloSource | CocoSource]:
    """Split specs -> readable sources; raises ``DataLayoutError`` for a missing one or for a
    split list that is a link out of the dataset folder."""
    root = Path(root).expanduser()
    fmt = detect_format(root)
    sources: list[VOCSource | KaggleSource | YoloSource | CocoSource] = []
    for spec in specs:
        if fmt == "yolo":
            sources.append(_yolo_source(root, spec))
            continue
        if fmt == "coco":
            sources.append(_coco_source(root, spec))
            continue
        if fmt == "kaggle":
            name = spec if spec.endswith(".csv") else f"{spec.split('/')[-1]}.csv"
            if not (root / name).is_file():
                raise DataLayoutError(f"no {name} in {root}; available: {available_splits(root)}")
            _check_list_inside(root / name, root)
            sources.append(KaggleSource(root, name))
            continue
        years = voc_year_dirs(root)
        year, _, split = spec.rpartition("/")
        if year:
            folder = years.get(year.removeprefix("VOC"))
            candidates = [folder] if folder is not None else []
        else:
            candidates = list(years.values())
        found = [VOCSource(d, split) for d in candidates if (d / "ImageSets" / "Main" / f"{split}.txt").is_file()]
        if not found:
            raise DataLayoutError(f"split {spec!r} not found under {root}; available: {available_splits(root)}")
        for source in found:
            _check_list_inside(source.split_file, source.directory)
        sources += found
    return sources


def build_index(roots: Sequence[str | Path], specs: Sequence[str], classes: Sequence[str],
                cache_dir: str | Path | None = None, progress: bool = True) -> DetectionIndex:
    """The labelled index of split specs (e.g. ``("2007/trainval", "2012/trainval")``) found
    across ``roots``; raises ``DataLayoutError`` when a spec matches in no root."""
    sources = []
    for spec in specs:
        found, errors = [], []
        for root in roots:
            try:
                found += resolve_sources(root, [spec])
            except DataLayoutError as e:
                errors.append(str(e))
        if not found:
            raise DataLayoutError(f"split {spec!r} not found in {list(map(str, roots))}:\n" + "\n".join(errors))
        sources += found
    cache = Path(cache_dir) if cache_dir else None
    return DetectionIndex.from_sources([load_or_build(s, cache, progress) for s in sources], classes)


def default_splits(root: str | Path) -> dict[str, tuple[str, ...]]:
    """Sensible train/val/test specs for a folder.

    VOC with both 2007 and 2012: train 07+12 trainval, val and test 07 test (the usual recipe).
    Otherwise: train = "train" (else "trainval"), val = "val" (else "valid", Roboflow's, else "test"),
    test = "test" (else val).
    """
    root = Path(root).expanduser()
    have = available_splits(root)
    if detect_format(root) == "voc":
        if {"2007/trainval", "2012/trainval", "2007/test"} <= set(have):
            return {"train": ("2007/trainval", "2012/trainval"), "val": ("2007/test",), "test": ("2007/test",)}
        have = sorted({s.split("/")[-1] for s in have})

    def first(*names: str) -> tuple[str, ...]:
        for n in names:
            if n in have:
                return (n,)
        for n in names:  # COCO-style names: train2017, val2017
            starting = [h for h in have if h.startswith(n) and h[len(n):].isdigit()]
            if len(starting) == 1:
                return (starting[0],)
        return ()

    train, val = first("train", "trainval"), first("val", "valid", "test")
    if not train:
        raise DataLayoutError(f"no train/trainval split in {root}; available: {have}")
    return {"train": train, "val": val, "test": first("test") or val}


def find_classes_file(root: str | Path) -> Path | None:
    """``classes.txt`` at the root, in VOCdevkit/, or in the (single) year folder; None if absent."""
    root = Path(root).expanduser()
    candidates = [root / CLASSES_FILE, root / "VOCdevkit" / CLASSES_FILE]
    years = voc_year_dirs(root) if root.is_dir() else {}
    if len(years) == 1:
        candidates.append(next(iter(years.values())) / CLASSES_FILE)
    return next((c for c in candidates if c.is_file() and root.resolve() in c.resolve().parents), None)


def _classes_txt(root: Path) -> tuple[str, ...] | None:
    f = find_classes_file(root)
    if f is None:
        return None
    try:
        text = read_text(f, MAX_CLASSES_TXT_BYTES)
    except OSError as e:
        raise DataLayoutError(f"{f}: cannot be read as a class list ({e})") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def dataset_classes(root: str | Path) -> tuple[str, ...] | None:
    """The class list the dataset itself states, None when it states none: YOLO data.yaml
    ``names``; COCO ``categories`` (in file order; the first JSON of train, val, test, then the
    others, adding classes of later files that the first lacks); else ``classes.txt``."""
    root = Path(root).expanduser()
    fmt = _format_or_none(root)
    if fmt == "yolo":
        cfg = yolo_txt.read_config(root)
        return cfg.names or _classes_txt(root) or cfg.numbered
    if fmt == "coco":
        files = coco.coco_files(root)
        order = sorted(files, key=lambda s: next((k for k, p in enumerate(("train", "val", "test")) if s.startswith(p)), 3))
        out: list[str] = []
        for split in order:
            out += [n for n in coco.class_names(files[split]) if n not in out]
        if out:
            return tuple(out)
    return _classes_txt(dataset_folder(root)) if root.exists() else None


def _format_or_none(root: str | Path) -> str | None:
    try:
        return detect_format(root)
    except DataLayoutError:
        return None


def load_classes(root: str | Path, classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """The class list: ``classes`` if given, else the dataset's own (``dataset_classes``: YOLO
    names, COCO categories, classes.txt), else VOC's 20 for VOC and Kaggle folders; a YOLO or
    COCO folder that names no classes raises ``DataLayoutError`` (its ids would be read as VOC's)."""
    if classes is not None:
        out = tuple(str(c) for c in classes)
    else:
        out = dataset_classes(root)
        fmt = _format_or_none(root) if out is None else None
        if fmt == "yolo":
            raise DataLayoutError(
                f"{root} names no classes: its label files hold class ids only. Add a classes.txt (one name "
                "per line, line k = class id k) or a data.yaml with names: [...] (README \"Your own data\")")
        if fmt == "coco":
            raise DataLayoutError(f"{root}: no usable COCO categories (an empty 'categories' list, or a file that "
                                  "is not valid JSON: python -m yolo.data check says which)")
        out = out or VOC_CLASSES
    if not out or len(set(out)) != len(out):
        raise DataLayoutError(f"class list must be non-empty and without repeats, got {out}")
    return out
