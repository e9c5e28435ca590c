"""VOCdevkit reader: ``<year dir>/Annotations/<id>.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

XML is parsed with defusedxml, which refuses entity declarations (billion-laughs style expansion)
and external references. Box corners follow VOC's 1-based inclusive convention and become
continuous 0-based pixel xyxy: ``(xmin - 1, ymin - 1, xmax, ymax)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from yolo.imageio import IMAGE_EXTENSIONS
from yolo.data.index import (
    Entry,
    SourceIndex,
    annotated_entry,
    dir_stats,
    file_signature,
    inside,
    is_link_problem,
    name_max,
    progress_iter,
    read_bytes,
    read_text,
)
from yolo.data.problems import Problem

_COORDS = ("xmin", "ymin", "xmax", "ymax")


class AnnotationError(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


@dataclass
class VOCAnnotation:
    """The parsed content of one VOC XML file (raw, before any repair)."""

    filename: str
    width: int  # 0 when absent
    height: int
    names: list[str]
    raw_boxes: np.ndarray  # (K, 4) float64 (xmin, ymin, xmax, ymax) 1-based; NaN if unreadable
    difficult: np.ndarray  # (K,) bool


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else float("nan")
    except ValueError:
        return float("nan")


def parse_voc_xml(path: str | Path) -> VOCAnnotation:
    """Parse one annotation file; raises ``AnnotationError`` (malformed or unsafe)."""
    try:
        root = SafeET.fromstring(read_bytes(Path(path)))
    except DefusedXmlException as e:
        raise AnnotationError("annotation_unsafe", f"{type(e).__name__}: {e}") from None
    except (SafeET.ParseError, OSError, ValueError) as e:
        raise AnnotationError("annotation_malformed", f"{type(e).__name__}: {e}") from None
    if root.tag != "annotation":
        raise AnnotationError("annotation_malformed", f"root element <{root.tag}>, not <annotation>")
    size = root.find("size")
    width = _number(size.findtext("width")) if size is not None else float("nan")
    height = _number(size.findtext("height")) if size is not None else float("nan")
    names, boxes, difficult = [], [], []
    for obj in root.iter("object"):
        names.append((obj.findtext("name") or "").strip())
        bb = obj.find("bndbox")
        boxes.append([_number(bb.findtext(c)) if bb is not None else float("nan") for c in _COORDS])
        difficult.append(_number(obj.findtext("difficult")) == 1)
    ok_size = np.isfinite([width, height]).all() and width > 0 and height > 0
    return VOCAnnotation(
        filename=(root.findtext("filename") or "").strip(),
        width=int(width) if ok_size else 0,
        height=int(height) if ok_size else 0,
        names=names,
        raw_boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
        difficult=np.array(difficult, dtype=bool),
    )


def read_entry(ann_path: Path, image_path: Path, image_rel: str, id_: str,
               problems: list[Problem], one_based: bool = True) -> Entry | None:
    """Annotation + image of one VOC id -> ``Entry`` (None when skipped); problems appended."""
    try:
        ann = parse_voc_xml(ann_path)
    except AnnotationError as e:
        problems.append(Problem.make(e.kind, str(ann_path), e.detail))
        return None
    return annotated_entry(id_, image_rel, image_path, (ann.width, ann.height), ann.raw_boxes, ann.names,
                           ann.difficult, str(ann_path), "", problems, one_based=one_based)


def format_voc_xml(filename: str, width: int, height: int, names, boxes, difficult=None, folder: str = "") -> str:
    """A VOC annotation as text. boxes (ndarray[K, 4]) are continuous 0-based pixel xyxy; they
    are written the VOC way, 1-based inclusive: (x1 + 1, y1 + 1, x2, y2), so ``parse_voc_xml``
    followed by the reader returns them exactly (for integer corners)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    difficult = np.zeros(len(boxes), bool) if difficult is None else np.asarray(difficult, bool)
    num = lambda v: str(int(v)) if float(v).is_integer() else f"{v:.2f}"
    rows = []
    for name, (x1, y1, x2, y2), d in zip(names, boxes, difficult):
        rows.append(
            f"\t<object>\n\t\t<name>{escape(str(name))}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>0</truncated>\n\t\t<difficult>{int(d)}</difficult>\n\t\t<bndbox>\n"
            f"\t\t\t<xmin>{num(x1 + 1)}</xmin>\n\t\t\t<ymin>{num(y1 + 1)}</ymin>\n"
            f"\t\t\t<xmax>{num(x2)}</xmax>\n\t\t\t<ymax>{num(y2)}</ymax>\n\t\t</bndbox>\n\t</object>\n")
    return (f"<annotation>\n\t<folder>{escape(folder)}</folder>\n\t<filename>{escape(filename)}</filename>\n"
            f"\t<size>\n\t\t<width>{int(width)}</width>\n\t\t<height>{int(height)}</height>\n"
            f"\t\t<depth>3</depth>\n\t</size>\n" + "".join(rows) + "</annotation>\n")


def read_split_ids(split_file: Path) -> list[str]:
    """Ids of a split file (first token of each non-empty line, like VOC's per-class lists)."""
    ids = []
    for line in read_text(split_file).splitlines():
        parts = line.split()
        if parts:
            ids.append(parts[0])
    return ids


def image_lookup(names) -> dict[str, str]:
    """{stem: file name} of the files among ``names``: .jpg preferred for a shared stem, then the
    other image extensions, then any other file (probed, so a GIF or a text file saved in
    JPEGImages/ is reported as what it is, not as a missing .jpg)."""
    def rank(name: str) -> tuple[int, str]:
        suffix = Path(name).suffix.lower()
        return (0 if suffix == ".jpg" else 1 if suffix in IMAGE_EXTENSIONS else 2), name

    out: dict[str, str] = {}
    for name in sorted(names, key=rank):
        if not name.startswith("."):
            out.setdefault(Path(name).stem, name)
    return out


@dataclass(frozen=True)
class VOCSource:
    """One split of one VOCdevkit year folder (or of any folder in VOC layout)."""

    directory: Path  # the year folder, e.g. .../VOCdevkit/VOC2012
    split: str  # e.g. "train"; reads ImageSets/Main/<split>.txt

    @property
    def key(self) -> str:
        return f"voc-{self.split}"

    @property
    def name(self) -> str:
        return f"{self.directory.name}/{self.split}"

    @property
    def split_file(self) -> Path:
        return self.directory / "ImageSets" / "Main" / f"{self.split}.txt"

    def signature(self) -> str:
        """Cache key: split file, plus name/size/mtime of every listed annotation and image."""
        ann = dir_stats(self.directory / "Annotations")
        img = dir_stats(self.directory / "JPEGImages")
        lookup = image_lookup(img)
        st = self.split_file.stat()
        parts = [f"{self.split_file} {st.st_size} {st.st_mtime_ns}"]
        for id_ in read_split_ids(self.split_file):
            a = ann.get(f"{id_}.xml")
            name = lookup.get(id_, "")
            parts.append(f"{id_} {a} {name} {img.get(name)}")
        return file_signature(parts)

    def build(self, progress: bool = True) -> SourceIndex:
        """Parse every annotation of the split (with a progress bar) into a ``SourceIndex``."""
        ids = read_split_ids(self.split_file)
        lookup = image_lookup(dir_stats(self.directory / "JPEGImages"))
        root = self.directory.resolve()  # nothing outside it is opened (``inside``)
        limit = name_max(root)
        entries, problems, seen = [], [], set()
        for id_ in progress_iter(ids, f"indexing {self.name}", progress):
            if id_ in seen:
                problems.append(Problem.make("duplicate_id", str(self.split_file), id_))
                continue
            seen.add(id_)
            ann_path, kind, why = inside(root, "Annotations", f"{id_}.xml", limit)
            if ann_path is None:
                link = is_link_problem(kind, why)
                where = self.directory / "Annotations" / f"{id_}.xml" if link else self.split_file
                problems.append(Problem.make(kind, str(where), why if link else f"id {id_[:80]!r}: {why}"))
                continue
            if not ann_path.is_file():
                problems.append(Problem.make("annotation_missing", str(ann_path), f"id {id_} in {self.split_file.name}"))
                continue
            image_name = lookup.get(id_, f"{id_}.jpg")
            image_path, kind, why = inside(root, "JPEGImages", image_name, limit)
            if image_path is None:
                problems.append(Problem.make(kind, str(self.directory / "JPEGImages" / image_name), why))
                continue
            entry = read_entry(ann_path, image_path, f"JPEGImages/{image_name}", id_, problems)
            if entry is not None:
                entries.append(entry)
        return SourceIndex.from_entries(self.name, str(self.directory), "name", entries, problems)
