"""Kaggle/course layout reader: ``images/``, ``labels/<id>.txt``, ``train.csv`` / ``test.csv``.

Each CSV row names an image file (in ``images/``) and its label file (in ``labels/``); a header
row, if any, is recognised and skipped. A label line is ``class cx cy w h`` with the centre and
size normalised by the image width/height and ``class`` an index into the class list.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo.imageio import IMAGE_EXTENSIONS
from yolo.data.index import (
    Entry,
    SourceIndex,
    dir_stats,
    file_signature,
    inside,
    is_link_problem,
    name_max,
    normalised_entry,
    progress_iter,
    read_text,
)
from yolo.data.problems import Problem


def read_csv_rows(path: Path) -> tuple[list[tuple[int, str, str]], list[int]]:
    """(line number, image file, label file) rows of a split CSV, header skipped when present,
    and the line numbers of rows with fewer than two non-empty columns (blank lines ignored)."""
    rows, short = [], []
    with io.StringIO(read_text(path), newline="") as f:
        for line, r in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in r]
            if not any(cells):
                continue
            if len(cells) < 2 or not cells[0] or not cells[1]:
                short.append(line)
                continue
            rows.append((line, cells[0], cells[1]))
    if rows and not (Path(rows[0][1]).suffix.lower() in IMAGE_EXTENSIONS or rows[0][2].endswith(".txt")):
        rows = rows[1:]  # a header such as "img,label"
    return rows, short


def parse_label_file(path: Path) -> tuple[list[str], np.ndarray, int]:
    """Lines ``class cx cy w h`` -> (class strings, (K, 4) float64 normalised cxcywh, bad lines)."""
    names, values, bad = [], [], 0
    for line in read_text(path).splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            nums = [float(v) for v in parts[1:5]]
        except ValueError:
            nums = []
        if len(parts) != 5 or len(nums) != 4:
            bad += 1
            continue
        names.append(parts[0])
        values.append(nums)
    return names, np.array(values, dtype=np.float64).reshape(-1, 4), bad


def yolo_to_corners(cxcywh: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised (cx, cy, w, h) (ndarray[K, 4]) -> pixel (x1, y1, x2, y2), unclipped."""
    cx, cy, w, h = (cxcywh[:, k] for k in range(4))
    return np.stack(((cx - w / 2) * width, (cy - h / 2) * height,
                     (cx + w / 2) * width, (cy + h / 2) * height), axis=1)


@dataclass(frozen=True)
class KaggleSource:
    """The images listed by one CSV of a Kaggle-layout folder."""

    directory: Path  # holds images/, labels/ and the CSV files
    csv: str  # e.g. "train.csv"

    @property
    def key(self) -> str:
        return f"kaggle-{Path(self.csv).stem}"

    @property
    def name(self) -> str:
        return f"{self.directory.name}/{Path(self.csv).stem}"

    def signature(self) -> str:
        csv_path = self.directory / self.csv
        st = csv_path.stat()
        img, lab = dir_stats(self.directory / "images"), dir_stats(self.directory / "labels")
        parts = [f"{csv_path} {st.st_size} {st.st_mtime_ns}"]
        parts += [f"{i} {img.get(i)} {t} {lab.get(t)}" for _, i, t in read_csv_rows(csv_path)[0]]
        return file_signature(parts)

    def build(self, progress: bool = True) -> SourceIndex:
        csv_path = self.directory / self.csv
        rows, short = read_csv_rows(csv_path)
        problems = [Problem.make("row_malformed", str(csv_path), f"row {line}") for line in short]
        entries, seen = [], set()
        root = self.directory.resolve()  # nothing outside it is opened (``inside``)
        limit = name_max(root)
        for line, image_name, label_name in progress_iter(rows, f"indexing {self.name}", progress):
            found = [inside(root, folder, name, limit) for folder, name in (("labels", label_name), ("images", image_name))]
            bad = [(kind, f"{folder}/{name[:80]}: {why}" if is_link_problem(kind, why) else why)
                   for (_, kind, why), (folder, name) in zip(found, (("labels", label_name), ("images", image_name)))
                   if kind]
            if bad:
                problems.append(Problem.make(bad[0][0], str(csv_path), f"row {line}: {bad[0][1]}"))
                continue
            id_ = Path(image_name).stem
            if id_ in seen:
                problems.append(Problem.make("duplicate_id", str(csv_path), f"row {line}: {id_}"))
                continue
            seen.add(id_)
            entry = self._read_row(id_, image_name, found[0][0], found[1][0], problems)
            if entry is not None:
                entries.append(entry)
        return SourceIndex.from_entries(self.name, str(self.directory), "index", entries, problems)

    def _read_row(self, id_: str, image_name: str, label_path: Path, image_path: Path,
                  problems: list[Problem]) -> Entry | None:
        if not label_path.is_file():
            problems.append(Problem.make("annotation_missing", str(label_path), f"for {image_name}"))
            return None
        try:
            names, cxcywh, bad = parse_label_file(label_path)
        except OSError as e:
            problems.append(Problem.make("annotation_malformed", str(label_path), str(e)))
            return None
        if bad:
            problems.append(Problem.make("label_line_malformed", str(label_path), f"{bad} lines", bad))
        return normalised_entry(id_, f"images/{image_name}", image_path, label_path, names, cxcywh,
                                yolo_to_corners, problems)
