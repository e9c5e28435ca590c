"""Data problems: every bad file or box is recorded as a ``Problem`` and counted, never raised.

A problem says what was wrong (``kind``), where (``file``), and what the reader did about it
(``action``): the whole image was skipped, one or more objects were dropped, the data was repaired
(converted, clipped, swapped, rotated), or the item was kept as it is (information only).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

# Actions, from most to least severe.
SKIPPED = "skipped"  # the image is not used
DROPPED = "dropped"  # some objects of the image are not used
REPAIRED = "repaired"  # the data was fixed and is used
KEPT = "kept"  # used as it is; reported for information

# Kinds of problem, each with its usual action and a one-line explanation (shown by the checker).
KINDS: dict[str, tuple[str, str]] = {
    "image_missing": (SKIPPED, "the annotation's image file does not exist"),
    "image_unreadable": (SKIPPED, "the image file is empty or not a decodable image"),
    "image_truncated": (SKIPPED, "the image file ends early (truncated download or copy)"),
    "image_too_large": (SKIPPED, "the image header claims more pixels than the decoder allows (decompression bomb)"),
    "image_too_thin": (SKIPPED, "a side under 8 px or an aspect ratio over 32:1: nothing usable after resizing"),
    "image_unsupported": (SKIPPED, "the file in the image folder is not a JPEG/PNG/BMP/WebP/TIFF image"),
    "path_outside": (SKIPPED, "a listed file lies outside the dataset folder ('..', absolute path or a link): not read"),
    "path_invalid": (SKIPPED, "a listed name is too long for the file system or holds a NUL byte: not read"),
    "row_malformed": (SKIPPED, "a split CSV row has fewer than two columns (image, label file)"),
    "annotation_missing": (SKIPPED, "an id in the split list has no annotation file"),
    "annotation_malformed": (SKIPPED, "the annotation file cannot be parsed"),
    "annotation_unsafe": (SKIPPED, "the XML uses entities/DTDs, refused by defusedxml"),
    "label_line_malformed": (DROPPED, "a label line is not 'class cx cy w h' with numbers"),
    "label_out_of_range": (DROPPED, "a normalised label coordinate is negative or over 1"),
    "entry_malformed": (DROPPED, "a COCO images/annotations/categories entry lacks a usable field: not used"),
    "unknown_class": (DROPPED, "the object's class is not in the class list"),
    "box_invalid": (DROPPED, "a box coordinate is missing or not a finite number"),
    "box_zero_area": (DROPPED, "the box has zero width or height"),
    "box_outside": (DROPPED, "the box lies entirely outside the image"),
    "box_inverted": (REPAIRED, "min > max in a box: the coordinates were swapped"),
    "box_clipped": (REPAIRED, "the box extends past the image border: clipped to it"),
    "label_polygon": (REPAIRED, "segmentation label lines (class x1 y1 x2 y2 ...): each polygon's bounding box is used"),
    "size_mismatch": (REPAIRED, "the annotated size differs from the image: boxes rescaled"),
    "image_converted": (REPAIRED, "grayscale/CMYK/16-bit/alpha/palette image read as 8-bit RGB"),
    "exif_orientation": (REPAIRED, "EXIF orientation tag: pixels decoded in the annotated frame"),
    "category_group": (KEPT, "a COCO category that only groups others (Roboflow's project) and no box uses: not a class"),
    "no_objects": (KEPT, "the image has no (usable) objects: kept as a background image"),
    "duplicate_id": (SKIPPED, "the same id is listed twice in a split: later copies skipped"),
    "decode_failed": (SKIPPED, "the image failed to decode while training: another was used"),
}


@dataclass(frozen=True)
class Problem:
    """One problem with one file.

    kind: a key of ``KINDS``; file: the offending file (annotation, label or image path);
    detail: a human-readable specific (e.g. ``"2 boxes"``, ``"class 'dgo'"``); action: what was
    done (``SKIPPED``/``DROPPED``/``REPAIRED``/``KEPT``); count: how many items it covers.
    """

    kind: str
    file: str
    detail: str = ""
    action: str = ""
    count: int = 1

    @staticmethod
    def make(kind: str, file: str, detail: str = "", count: int = 1) -> Problem:
        """A problem whose action is the kind's usual one."""
        if kind not in KINDS:
            raise KeyError(f"unknown problem kind {kind!r}; known: {sorted(KINDS)}")
        return Problem(kind, str(file), detail, KINDS[kind][0], int(count))

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.action:8s} {self.kind}{detail}: {self.file}"


def count_problems(problems: Iterable[Problem]) -> dict[str, int]:
    """Occurrences per kind (an occurrence is one box/line/image, i.e. ``Problem.count``)."""
    counts: Counter[str] = Counter()
    for p in problems:
        counts[p.kind] += p.count
    return dict(sorted(counts.items()))


def problems_to_json(problems: Iterable[Problem]) -> str:
    return json.dumps([asdict(p) for p in problems])


def problems_from_json(text: str) -> list[Problem]:
    return [Problem(**d) for d in json.loads(text)] if text else []


def summarize(problems: Iterable[Problem]) -> str:
    """One line such as ``"3 image_missing, 1 annotation_unsafe"`` (``"no problems"`` if none)."""
    counts = count_problems(problems)
    if not counts:
        return "no problems"
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())
