"""Write a corrected copy of a dataset from a label-review file; the original is never modified.

    summary = apply_review("~/data/VOCdevkit", "~/data/VOCdevkit/label_review-2007_test.json", "~/data/fixed")
    print(summary.text())

Same layout as the source by default: the whole dataset folder is copied (its index caches and
review files left out) and the annotation of every image with an applied decision is rewritten
(VOC: ``Annotations/<id>.xml`` written from the index, so the copy's index is the original's
plus the decisions; Kaggle: ``labels/<file>.txt`` as ``class cx cy w h``). ``to`` = "voc" or
"kaggle" from another layout writes the reviewed split only, in that layout (VOC:
``OUT/VOCdevkit/VOCreview/``, split list named after the split; Kaggle: ``OUT/images``,
``OUT/labels``, ``OUT/<split>.csv``), with ``classes.txt``; "yolo" or "coco" (and a YOLO or
COCO source in its own layout) goes through a VOC copy of the reviewed split in a temporary
folder beside OUT, written out by ``yolo.data.convert`` (files copied, the temporary folder removed). VOC attributes the reader does not
keep (pose, truncated, extra fields) are not carried into rewritten annotations.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo.data.decisions import ReviewLog, apply_decisions
from yolo.data.index import CACHE_DIRNAME, DetectionIndex
from yolo.data.layout import CLASSES_FILE, DataLayoutError, build_index, detect_format, voc_year_dirs
from yolo.data.voc import format_voc_xml

LAYOUTS = ("voc", "kaggle", "yolo", "coco")


@dataclass
class ApplySummary:
    """What changed: counts of added / reclassified / moved / deleted labels, decisions kept or
    stale (the label changed since the review), images rewritten, and where the copy is."""

    out: Path
    layout: str
    images_changed: list[str] = field(default_factory=list)
    changes: Counter = field(default_factory=Counter)
    unknown_images: list[str] = field(default_factory=list)

    def text(self) -> str:
        c = self.changes
        lines = [f"wrote a corrected copy ({self.layout} layout) to {self.out}",
                 f"  {len(self.images_changed)} images changed: {c['added']} labels added, {c['reclassified']} "
                 f"reclassified, {c['moved']} boxes replaced, {c['deleted']} deleted; {c['kept']} kept as they were"]
        if c["stale"]:
            lines.append(f"  {c['stale']} decisions not applied: their label changed since the review")
        if self.unknown_images:
            lines.append(f"  {len(self.unknown_images)} decisions name images not in the split, e.g. "
                         f"{self.unknown_images[0]}")
        return "\n".join(lines)


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n == CACHE_DIRNAME or (n.startswith("label_review-") and n.endswith(".json"))}


def _check_out(data: Path, out: Path) -> None:
    d, o = data.resolve(), out.resolve()
    if o == d or d in o.parents or o in d.parents:
        raise DataLayoutError(f"{out} must be outside the dataset folder {data} (and not hold it): "
                              "the original is never written to")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataLayoutError(f"{out} exists and is not an empty folder; give a new folder")


def corrected(index: DetectionIndex, log: ReviewLog) -> tuple[dict[int, tuple], Counter, list[str]]:
    """{image position: (boxes, labels, difficult)} for every image with a decision, the summed
    changes and the decided image ids not in the index."""
    where = {str(i): n for n, i in enumerate(index.ids)}
    by_image: dict[str, list] = {}
    for d in log.current().values():
        by_image.setdefault(d.image_id, []).append(d)
    out, total, unknown = {}, Counter(), []
    for image_id, decisions in by_image.items():
        if image_id not in where:
            unknown.append(image_id)
            continue
        i = where[image_id]
        b, l, d, changes = apply_decisions(*index.annotation(i), decisions)
        total.update(changes)
        if any(changes[k] for k in ("added", "reclassified", "moved", "deleted")):
            out[i] = (b, l, d)
    return out, total, unknown


def _voc_xml(index: DetectionIndex, i: int, ann: tuple, folder: str) -> str:
    boxes, labels, difficult = ann
    h, w = (int(v) for v in index.sizes[i])
    names = [index.classes[c] for c in labels]
    return format_voc_xml(Path(index.paths[i]).name, w, h, names, boxes, difficult, folder)


def _kaggle_lines(index: DetectionIndex, i: int, ann: tuple) -> str:
    boxes, labels, _ = ann
    h, w = (float(v) for v in index.sizes[i])
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h
    bw, bh = (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h
    return "".join(f"{int(c)} {x:.6f} {y:.6f} {ww:.6f} {hh:.6f}\n" for c, x, y, ww, hh in zip(labels, cx, cy, bw, bh))


def _kaggle_label_files(data: Path, split: str) -> dict[str, str]:
    """{image id: label file name} from a Kaggle split CSV (as the reader pairs them)."""
    from yolo.data.kaggle import read_csv_rows

    name = split if split.endswith(".csv") else f"{split.split('/')[-1]}.csv"
    return {Path(image).stem: label for _, image, label in read_csv_rows(data / name)[0]}


def apply_review(data: str | Path, review: str | Path, out: str | Path, to: str | None = None,
                 cache_dir: str | Path | None = None) -> ApplySummary:
    """Apply the accepted decisions of ``review`` (a ``ReviewLog`` file) to a copy of ``data``
    written to ``out`` (a new or empty folder outside ``data``); see the module docstring."""
    data, out = Path(data).expanduser(), Path(out).expanduser()
    log = ReviewLog.load(review)
    layout = detect_format(data)
    target = to or layout
    if target not in LAYOUTS:
        raise DataLayoutError(f"--to {target}: this project writes {' or '.join(LAYOUTS)}")
    _check_out(data, out)
    index = build_index([data], [log.split], log.classes, cache_dir, progress=False)
    changed, changes, unknown = corrected(index, log)
    summary = ApplySummary(out, target, [str(index.ids[i]) for i in sorted(changed)], changes, unknown)
    if target in ("yolo", "coco"):
        import tempfile

        from yolo.data.convert import convert

        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".apply-review-", dir=out.parent))
        try:
            _write_split(index, changed, log.split, staging / "voc", "voc")
            convert(staging / "voc", out, target, [log.split.split("/")[-1].removesuffix(".csv")], copy=True,
                    cache_dir=cache_dir or staging / "cache")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return summary
    if target == layout:
        shutil.copytree(data, out, ignore=_ignore, dirs_exist_ok=True)
        if layout == "voc":
            years = {d.resolve(): d for d in voc_year_dirs(data).values()}
            for i, ann in changed.items():
                year = Path(index.paths[i]).resolve().parent.parent
                rel = years[year].relative_to(data) if years.get(year) is not None and years[year] != data else Path()
                dest = out / rel / "Annotations" / f"{index.ids[i]}.xml"
                dest.write_text(_voc_xml(index, i, ann, year.name))
        else:
            files = _kaggle_label_files(data, log.split)
            for i, ann in changed.items():
                (out / "labels" / files[str(index.ids[i])]).write_text(_kaggle_lines(index, i, ann))
        return summary
    _write_split(index, changed, log.split, out, target)
    return summary


def _write_split(index: DetectionIndex, changed: dict[int, tuple], spec: str, out: Path, target: str) -> None:
    """The reviewed split alone, corrected, in the VOC or Kaggle layout (see the module docstring)."""
    split = spec.split("/")[-1].removesuffix(".csv")
    out.mkdir(parents=True, exist_ok=True)
    (out / CLASSES_FILE).write_text("\n".join(index.classes) + "\n")
    if target == "voc":
        base = out / "VOCdevkit" / "VOCreview"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for i in range(len(index)):
            src = Path(index.paths[i])
            shutil.copy2(src, base / "JPEGImages" / f"{index.ids[i]}{src.suffix}")
            ann = changed.get(i) or index.annotation(i)
            (base / "Annotations" / f"{index.ids[i]}.xml").write_text(_voc_xml(index, i, ann, "VOCreview"))
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{x}\n" for x in index.ids))
    else:
        (out / "images").mkdir()
        (out / "labels").mkdir()
        rows = []
        for i in range(len(index)):
            src = Path(index.paths[i])
            name = f"{index.ids[i]}{src.suffix}"
            shutil.copy2(src, out / "images" / name)
            ann = changed.get(i) or index.annotation(i)
            (out / "labels" / f"{index.ids[i]}.txt").write_text(_kaggle_lines(index, i, ann))
            rows.append((name, f"{index.ids[i]}.txt"))
        with open(out / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([("image", "label"), *rows])
