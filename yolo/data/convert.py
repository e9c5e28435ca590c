"""Write any readable dataset in another layout: ``python -m yolo.data convert SRC DST --to voc|yolo|coco``.

SRC is read exactly as training reads it (``build_index``: every problem reported, bad images and
objects left out) and is never modified: its annotation index is cached under
``default_cache_root()``, not beside it. DST must not exist or be empty, and must not overlap SRC.

Images: hard-linked by default, copied with ``copy=True`` (or when a hard link is impossible, e.g.
across file systems; the report counts both). Hard links, not symlinks: every reader refuses a
symlink that resolves outside its dataset folder, and a hard link is a plain file of DST. A hard
link shares its bytes with SRC: edit DST's images by replacing them (as image tools do), not in
place, or convert with ``--copy``.

Layouts written (sizes are those of the decoded, EXIF-oriented image, as the reader gives them):
  voc   DST/VOCdevkit/VOCdata/{Annotations/<id>.xml, JPEGImages/, ImageSets/Main/<split>.txt}, DST/classes.txt
  coco  DST/annotations/instances_<split>.json, DST/images/<file>; categories with ids 1..C
  yolo  DST/data.yaml, DST/images/<split>/<file>, DST/labels/<split>/<id>.txt, DST/<split>.txt
        (the list keeps the source's image order)

Box rules (boxes are continuous 0-based pixel xyxy in the index):
  coco  ``bbox = [x1, y1, x2 - x1, y2 - y1]`` written with Python's shortest exact float text.
  yolo  ``cx cy w h`` normalised, 8 decimals; the YOLO reader snaps corners to 1/256 px, so boxes
        with integer corners read back as exactly those integers (for images under 260,000 px).
  voc   corners are rounded to the nearest integer (``floor(v + 0.5)``) and written 1-based
        inclusive: ``xmin = round(x1) + 1, ymin = round(y1) + 1, xmax = round(x2), ymax = round(y2)``,
        which ``voc.py`` reads back as ``(xmin - 1, ymin - 1, xmax, ymax)``; boxes that moved are
        counted in the report, boxes that rounding would make empty are widened to 1 px.
So VOC -> COCO -> YOLO -> VOC gives the original integer VOC boxes back.

What cannot be carried is reported: ``difficult`` (COCO ``iscrowd``) objects into YOLO txt (left
out: YOLO has no such flag, and training leaves them out anyway), images the source reader
skipped, objects of unknown classes, an EXIF orientation that VOC's reader ignored (the YOLO and
COCO readers apply it to images whose annotated size is the rotated one).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo.data.index import DataLayoutError, DetectionIndex, default_cache_root
from yolo.data.problems import summarize

TARGETS = ("voc", "yolo", "coco")
VOC_YEAR = "VOCdata"


@dataclass
class ConvertReport:
    """What ``convert`` did: counts per split, links/copies, and everything not carried."""

    src: str
    dst: str
    to: str
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (images, objects written)
    linked: int = 0
    copied: int = 0
    not_carried: list[str] = field(default_factory=list)  # one line each

    def format_text(self) -> str:
        lines = [f"converted {self.src} -> {self.dst} ({self.to})"]
        lines += [f"  {s}: {n} images, {m} objects" for s, (n, m) in self.splits.items()]
        lines.append(f"  images: {self.linked} hard-linked, {self.copied} copied")
        lines.append("not carried:" if self.not_carried else "not carried: nothing")
        lines += [f"  {x}" for x in self.not_carried]
        return "\n".join(lines)


def voc_round(v: np.ndarray) -> np.ndarray:
    """Round half up (``floor(v + 0.5)``), the rule the VOC writer uses for pixel corners."""
    return np.floor(np.asarray(v, dtype=np.float64) + 0.5)


def _place(src: Path, dst: Path, copy: bool, report: ConvertReport) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dst)
            report.linked += 1
            return
        except OSError:
            pass
    shutil.copy2(src, dst)
    report.copied += 1


def _output_names(specs: Sequence[str]) -> list[str]:
    """Split names in DST: the last part of each spec (``2012/train`` -> ``train``), the whole
    spec with ``/`` as ``_`` where two specs would share a name."""
    last = [Path(s).stem if s.lower().endswith(".json") else s.rsplit("/", 1)[-1] for s in specs]
    return [s.replace("/", "_") if last.count(n) > 1 else n for s, n in zip(specs, last)]


def _check_paths(src: Path, dst: Path) -> None:
    s, d = src.resolve(), dst.resolve()
    if s == d or s in d.parents or d in s.parents:
        raise DataLayoutError(f"DST {dst} and SRC {src} overlap; write the converted dataset elsewhere")
    if d.exists() and (not d.is_dir() or any(d.iterdir())):
        raise DataLayoutError(f"DST {dst} exists and is not an empty folder")


def _image_names(indexes: dict[str, DetectionIndex]) -> dict[str, tuple[str, str]]:
    """{source image path: (id, file name)} unique over every split; ids that clash get _2, _3..."""
    out, taken = {}, set()
    for index in indexes.values():
        for id_, path in zip(index.ids, index.paths):
            if path in out:
                continue
            base = str(id_).replace("/", "_")
            id_new, k = base, 1
            while id_new in taken:
                k += 1
                id_new = f"{base}_{k}"
            taken.add(id_new)
            out[path] = (id_new, id_new + Path(path).suffix.lower())
    return out


def convert(src: str | Path, dst: str | Path, to: str, splits: Sequence[str] | None = None,
            copy: bool = False, classes: Sequence[str] | None = None, cache_dir: str | Path | None = None,
            progress: bool = False) -> ConvertReport:
    """Read SRC (``splits``: split specs, default every split) and write it to DST in layout ``to``.

    Raises ``DataLayoutError`` for an unknown SRC layout, a missing split, overlapping or non-empty
    DST; bad data in SRC is reported in ``ConvertReport.not_carried``, never raised.
    """
    from yolo.data.layout import available_splits, build_index, load_classes

    if to not in TARGETS:
        raise DataLayoutError(f"--to must be one of {TARGETS}, got {to!r}")
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    specs = list(splits) if splits else available_splits(src)
    _check_paths(src, dst)
    class_list = load_classes(src, classes)
    cache = Path(cache_dir) if cache_dir else default_cache_root()
    indexes = {name: build_index([src], [spec], class_list, cache, progress)
               for name, spec in zip(_output_names(specs), specs)}
    report = ConvertReport(str(src), str(dst), to)
    seen = set()
    for name, index in indexes.items():
        problems = [p for p in index.problems if p.action in ("skipped", "dropped") and (p.kind, p.file, p.detail) not in seen]
        seen.update((p.kind, p.file, p.detail) for p in problems)
        if problems:
            report.not_carried.append(f"{name}: left out by the reader of SRC: {summarize(problems)} "
                                      f"(python -m yolo.data check {src} lists them)")
    dst.mkdir(parents=True, exist_ok=True)
    names = _image_names(indexes)
    {"voc": _write_voc, "coco": _write_coco, "yolo": _write_yolo}[to](indexes, names, class_list, dst, copy, report)
    return report


# ----------------------------------------------------------------------------------- writers
def _write_voc(indexes, names, classes, dst: Path, copy: bool, report: ConvertReport) -> None:
    from yolo.data.voc import format_voc_xml

    year = dst / "VOCdevkit" / VOC_YEAR
    (year / "Annotations").mkdir(parents=True)
    (year / "ImageSets" / "Main").mkdir(parents=True)
    (dst / "classes.txt").write_text("\n".join(classes) + "\n")
    moved, written, ignored_exif = 0, set(), 0
    for split, index in indexes.items():
        ids = []
        for i in range(len(index)):
            id_, file = names[index.paths[i]]
            ids.append(id_)
            if id_ in written:
                continue
            written.add(id_)
            boxes, labels, difficult = index.annotation(i)
            r = voc_round(boxes)
            moved += int((np.abs(r - boxes) > 1e-3).any(axis=1).sum())
            r[:, 2:] = np.maximum(r[:, 2:], r[:, :2] + 1)  # never empty after rounding
            h, w = (int(v) for v in index.sizes[i])
            (year / "Annotations" / f"{id_}.xml").write_text(
                format_voc_xml(file, w, h, [classes[k] for k in labels], r, difficult, folder=VOC_YEAR))
            _place(Path(index.paths[i]), year / "JPEGImages" / file, copy, report)
        (year / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + ("\n" if ids else ""))
        report.splits[split] = (len(index), len(index.labels))
    if moved:
        report.not_carried.append(f"{moved} boxes with non-integer corners rounded to whole pixels (VOC stores integers)")


def _write_coco(indexes, names, classes, dst: Path, copy: bool, report: ConvertReport) -> None:
    (dst / "annotations").mkdir(parents=True)
    categories = [{"id": k + 1, "name": c, "supercategory": ""} for k, c in enumerate(classes)]
    image_ids: dict[str, int] = {}
    ann_id = 0
    for split, index in indexes.items():
        images, anns = [], []
        for i in range(len(index)):
            id_, file = names[index.paths[i]]
            iid = image_ids.setdefault(id_, len(image_ids) + 1)
            h, w = (int(v) for v in index.sizes[i])
            images.append({"id": iid, "file_name": file, "width": w, "height": h})
            boxes, labels, difficult = index.annotation(i)
            for b, lab, d in zip(boxes.astype(np.float64), labels, difficult):
                ann_id += 1
                x1, y1, x2, y2 = (float(v) for v in b)
                anns.append({"id": ann_id, "image_id": iid, "category_id": int(lab) + 1,
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                             "iscrowd": int(d), "segmentation": []})
            _place(Path(index.paths[i]), dst / "images" / file, copy, report)
        doc = {"info": {"description": f"converted by python -m yolo.data convert from {report.src}"},
               "images": images, "annotations": anns, "categories": categories}
        (dst / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
        report.splits[split] = (len(images), len(anns))
    _note_exif(indexes, report)


def _write_yolo(indexes, names, classes, dst: Path, copy: bool, report: ConvertReport) -> None:
    lines = ["path: .", *(f"{s}: {s}.txt" for s in indexes), "names:", *(f"  {k}: {json.dumps(c)}" for k, c in enumerate(classes))]
    (dst / "data.yaml").write_text("\n".join(lines) + "\n")
    left_out = 0
    for split, index in indexes.items():
        listed, objects = [], 0
        for i in range(len(index)):
            id_, file = names[index.paths[i]]
            rel = f"images/{split}/{file}"
            listed.append(f"./{rel}")
            boxes, labels, difficult = index.annotation(i)
            keep = ~difficult
            left_out += int(difficult.sum())
            h, w = (float(v) for v in index.sizes[i])
            b = boxes[keep].astype(np.float64)
            cxcywh = np.stack(((b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                               (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h), axis=1)
            text = "".join(f"{int(c)} " + " ".join(f"{v:.8f}" for v in row) + "\n" for c, row in zip(labels[keep], cxcywh))
            label = dst / "labels" / split / f"{id_}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
            objects += int(keep.sum())
            _place(Path(index.paths[i]), dst / rel, copy, report)
        (dst / f"{split}.txt").write_text("\n".join(listed) + ("\n" if listed else ""))
        report.splits[split] = (len(index), objects)
    if left_out:
        report.not_carried.append(f"{left_out} difficult (COCO iscrowd) objects left out: YOLO txt has no such flag")
    _note_exif(indexes, report)


def _note_exif(indexes, report: ConvertReport) -> None:
    n = sum(int((~index.exif).sum()) for index in indexes.values())
    if n:
        report.not_carried.append(f"{n} images whose EXIF orientation the source reader ignored: "
                                  "YOLO/COCO readers may apply it")
