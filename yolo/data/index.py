"""The annotation index: every image of a source with its boxes, built once and cached.

A *source* is one list of images with annotations: a VOCdevkit year folder and split
(``VOC2012`` + ``train``) or a Kaggle-layout CSV (``train.csv``). ``SourceIndex`` holds a source's
annotations as flat numpy arrays (boxes of image i are ``boxes[offsets[i]:offsets[i + 1]]``), plus
every problem met while reading it. Building it parses every annotation and probes every image
header, so it is cached (``.npz``, no pickle) beside the data in ``<source dir>/.yolo_cache/``,
or under a cache folder when the data folder is read-only. The cache is valid while the source's
files are unchanged: its key hashes the name, size and mtime of the split file, every
annotation and every image of the source.

``DetectionIndex`` joins several sources under one class list: it maps class names to label
indices, drops (and reports) objects of unknown classes, and optionally drops difficult objects.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo.data.problems import Problem, problems_from_json, problems_to_json

INDEX_VERSION = 2  # bump when the cached arrays change meaning (2: paths kept inside the dataset, odd images refused)
CACHE_DIRNAME = ".yolo_cache"
MAX_TEXT_BYTES = 64 << 20  # a label file, split list, CSV or XML: 64 MiB holds ~2M boxes; larger is refused
BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark Windows editors put first


class DataLayoutError(ValueError):
    """The folder is not a dataset in a known layout, or a split is not there (re-exported by
    ``yolo.data.layout``; defined here so that every reader can raise it)."""


def default_cache_root() -> Path:
    """Where indexes of read-only datasets go: $YOLO_CACHE_DIR, else ~/.cache/yolo-voc."""
    env = os.environ.get("YOLO_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "yolo-voc"


# ------------------------------------------------------------------------------------- boxes
def sanitize_boxes(raw: np.ndarray, width: float, height: float, one_based: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Repair or reject raw corner boxes of one image, vectorised.

    Args:
        raw (ndarray[N, 4]): (xmin, ymin, xmax, ymax) as annotated, NaN where unreadable.
        width, height: the image size the boxes refer to, pixels.
        one_based: VOC convention (pixel indices from 1, inclusive): xmin=x+1, xmax=x+w.
            Converted to continuous 0-based corners as (xmin - 1, ymin - 1, xmax, ymax).

    Returns:
        boxes (ndarray[K, 4] float32) pixel xyxy inside [0, width] x [0, height];
        keep (ndarray[N] bool) which raw boxes survive; counts of each problem kind
        (box_invalid, box_inverted, box_zero_area, box_clipped, box_outside) with nonzero counts.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(raw).all(axis=1)
    inverted = finite & ((raw[:, 0] > raw[:, 2]) | (raw[:, 1] > raw[:, 3]))
    x = np.sort(raw[:, 0::2], axis=1)
    y = np.sort(raw[:, 1::2], axis=1)
    # xmin == xmax counts as zero area even in VOC's inclusive 1-based convention (where it would
    # be a one-pixel sliver): such annotations are degenerate and are reported, not trained on
    zero = finite & ((x[:, 0] == x[:, 1]) | (y[:, 0] == y[:, 1]))
    if one_based:
        x[:, 0] -= 1
        y[:, 0] -= 1
    boxes = np.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), axis=1)
    clipped = np.stack((np.clip(x[:, 0], 0, width), np.clip(y[:, 0], 0, height),
                        np.clip(x[:, 1], 0, width), np.clip(y[:, 1], 0, height)), axis=1)
    ok = finite & ~zero
    outside = ok & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    # rounding of normalised labels moves edges by ~1e-4 px: report only real clipping
    was_clipped = ok & ~outside & (np.abs(clipped - np.nan_to_num(boxes)).max(axis=1) > 1e-2)
    keep = ok & ~outside
    counts = {"box_invalid": int((~finite).sum()), "box_inverted": int((inverted & keep).sum()),
              "box_zero_area": int(zero.sum()), "box_clipped": int(was_clipped.sum()),
              "box_outside": int(outside.sum())}
    return clipped[keep].astype(np.float32), keep, {k: v for k, v in counts.items() if v}


# ------------------------------------------------------------------------------ containment
def name_max(folder: Path) -> int:
    """Longest file name the file system of ``folder`` takes (255 when it cannot be asked)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def read_bytes(path: Path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """A dataset file's bytes, bounded: a regular file of at most ``limit`` bytes
    (``yolo.filelimits.read_small_file``: a FIFO never blocks, a device is never read), a leading
    UTF-8 BOM dropped. Raises ``OSError`` with the reason (the readers report it per file)."""
    from yolo.filelimits import FileLimitError, read_small_file

    try:
        data = read_small_file(path, limit, "dataset text file")
    except FileLimitError as err:
        raise OSError(str(err)) from None
    return data[len(BOM):] if data.startswith(BOM) else data


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """``read_bytes`` decoded as UTF-8, undecodable bytes replaced (labels, lists, CSVs, classes.txt)."""
    return read_bytes(path, limit).decode("utf-8", errors="replace")


def inside(root: Path, folder: str, name: str, limit: int = 255) -> tuple[Path | None, str, str]:
    """``root / folder / name`` when ``name`` (read from a split list or a CSV) is usable and the
    path stays inside ``root``; else (None, problem kind, why). Nothing is opened.

    Refused: an absolute ``name`` or one with a ``..`` part (kind ``path_outside``), a path that a
    link (anywhere along it) resolves outside ``root`` (``path_outside``), a NUL byte or a name
    part over ``limit`` bytes (``path_invalid``). ``root`` must already be resolved.
    """
    if "\0" in name or not name.strip():
        return None, "path_invalid", f"name {name!r}"
    given = Path(name)
    if given.is_absolute() or ".." in given.parts:
        return None, "path_outside", f"{name!r} leaves the dataset folder"
    if any(len(part.encode("utf-8", "surrogateescape")) > limit for part in given.parts):
        return None, "path_invalid", f"a name over {limit} bytes ({name[:32]}...)"
    full = root / folder / given
    try:
        real = full.resolve()
    except (OSError, RuntimeError) as e:  # a link loop, an unreadable folder
        return None, "path_invalid", f"cannot resolve {name!r}: {e}"
    if root not in real.parents:
        return None, "path_outside", f"a link to {real}, outside the dataset folder"
    return full, "", ""


def is_link_problem(kind: str, detail: str) -> bool:
    """True when ``inside`` refused a well-formed name because a link leads outside: the problem
    is then reported against the link (``root / folder / name``), else against the list naming it."""
    return kind == "path_outside" and detail.startswith("a link to ")


# --------------------------------------------------------------------------------- the index
@dataclass
class Entry:
    """One image's annotations, as a reader produces them (before class mapping)."""

    id: str
    file: str  # image path relative to the source root
    size: tuple[int, int]  # (h, w) of the decoded image, the frame of ``boxes``
    exif: bool  # apply EXIF orientation when decoding
    boxes: np.ndarray  # (K, 4) float32 pixel xyxy
    names: Sequence[str]  # (K,) class names (or class index strings for index labels)
    difficult: np.ndarray  # (K,) bool


def _probed(image_path: Path, problems: list[Problem]):
    """``yolo.imageio.probe_image`` of a dataset image; a refused image is reported (None), a
    converted one noted."""
    from yolo.imageio import ImageError, probe_image

    try:
        probe = probe_image(str(image_path))
    except ImageError as e:
        problems.append(Problem.make(e.kind, str(image_path), e.detail))
        return None
    if probe.conversion:
        problems.append(Problem.make("image_converted", str(image_path), probe.conversion))
    return probe


def _report_repairs(counts: dict, file: str, where: str, problems: list[Problem]) -> None:
    for kind, n in counts.items():
        problems.append(Problem.make(kind, file, f"{where}{n} box" + "es" * (n > 1), n))


def normalised_entry(id_: str, rel: str, image_path: Path, label_path: Path, names: Sequence[str],
                     cxcywh: np.ndarray, to_corners, problems: list[Problem]) -> Entry | None:
    """The Entry of an image whose labels are normalised ``class cx cy w h`` lines (YOLO txt, Kaggle).

    Probes the image (refused -> reported, None), reports conversions and EXIF orientation (the
    normalised labels refer to the image as viewers show it), maps ``cxcywh`` (K, 4) to pixel
    corners with ``to_corners(cxcywh, w, h)``, repairs/drops boxes (``sanitize_boxes``) and reports
    each kind of repair against ``label_path``. Nothing is difficult in these layouts.
    """
    probe = _probed(image_path, problems)
    if probe is None:
        return None
    if probe.orientation != 1:
        problems.append(Problem.make("exif_orientation", str(image_path), f"orientation {probe.orientation} applied"))
    h, w = probe.oriented_size(True)
    boxes, keep, counts = sanitize_boxes(to_corners(cxcywh, w, h), w, h)
    _report_repairs(counts, str(label_path), "", problems)
    return Entry(id_, rel, (h, w), True, boxes, [n for n, k in zip(names, keep) if k], np.zeros(int(keep.sum()), bool))


def image_frame(probe, ann_w: int, ann_h: int) -> tuple[bool, tuple[int, int], str]:
    """Decide whether to apply EXIF orientation so pixels match the annotation's frame.

    An orientation that swaps width and height is applied when the annotated size is the rotated
    one and ignored when it is the stored one (an annotation tool that ignored EXIF); other
    orientations (mirror, 180 degrees) cannot be told apart by size and are applied, as image
    viewers do. Returns (apply_exif, decoded (h, w), a note for the report, "" if none).
    """
    if probe.orientation == 1:
        return True, probe.oriented_size(True), ""
    rotated = probe.oriented_size(True)
    if ann_w and ann_h and (ann_h, ann_w) == (probe.height, probe.width) and rotated != (ann_h, ann_w):
        return False, (probe.height, probe.width), f"orientation {probe.orientation} ignored (annotated in stored frame)"
    return True, rotated, f"orientation {probe.orientation} applied"


def annotated_entry(id_: str, rel: str, image_path: Path, ann_wh: tuple[int, int], raw_xyxy: np.ndarray,
                    names: Sequence[str], difficult: np.ndarray, file: str, where: str,
                    problems: list[Problem], one_based: bool = False) -> Entry | None:
    """The Entry of an image whose boxes are pixel corners annotated on an image of ``ann_wh`` =
    (w, h) (0: not given) (VOC XML, COCO JSON).

    Probes the image (refused -> reported, None), decides its EXIF orientation from the annotated
    size (``image_frame``), repairs/drops the (K, 4) ``raw_xyxy`` in the annotated frame
    (``sanitize_boxes``; ``one_based``: VOC's 1-based corners) and rescales them to the decoded
    frame when the sizes differ (``size_mismatch``). Repairs are reported against ``file``, their
    detail prefixed with ``where`` (e.g. ``"annotations[3] (id 7)"``; "" for none).
    """
    probe = _probed(image_path, problems)
    if probe is None:
        return None
    apply_exif, (h, w), note = image_frame(probe, *ann_wh)
    if note:
        problems.append(Problem.make("exif_orientation", str(image_path), note))
    aw, ah = ann_wh if all(ann_wh) else (w, h)
    boxes, keep, counts = sanitize_boxes(raw_xyxy, aw, ah, one_based=one_based)
    prefix = f"{where}: " if where else ""
    if (aw, ah) != (w, h):  # boxes are in the annotated frame: bring them to the image's
        problems.append(Problem.make("size_mismatch", file, f"{prefix}annotated {aw}x{ah}, image {w}x{h}"))
        boxes = (boxes * np.array([w / aw, h / ah, w / aw, h / ah])).astype(np.float32)
    _report_repairs(counts, file, prefix, problems)
    return Entry(id_, rel, (h, w), apply_exif, boxes, [n for n, k in zip(names, keep) if k], difficult[keep])


@dataclass
class SourceIndex:
    """All usable images of one source, as flat arrays (see the module docstring)."""

    name: str  # e.g. "VOC2012/train" or "kaggle/train.csv"
    root: str  # image paths are relative to this folder
    label_kind: str  # "name": names are class names; "index": names are class indices
    ids: np.ndarray  # (N,) str
    files: np.ndarray  # (N,) str
    sizes: np.ndarray  # (N, 2) int32 (h, w)
    exif: np.ndarray  # (N,) bool
    offsets: np.ndarray  # (N + 1,) int64
    boxes: np.ndarray  # (M, 4) float32 pixel xyxy
    names: np.ndarray  # (M,) int32 into vocab
    difficult: np.ndarray  # (M,) bool
    vocab: np.ndarray  # (V,) str
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def from_entries(name: str, root: str, label_kind: str, entries: Sequence[Entry],
                     problems: list[Problem]) -> SourceIndex:
        vocab: dict[str, int] = {}
        names = [vocab.setdefault(n, len(vocab)) for e in entries for n in e.names]
        counts = [len(e.boxes) for e in entries]
        return SourceIndex(
            name=name, root=root, label_kind=label_kind,
            ids=np.array([e.id for e in entries], dtype=str),
            files=np.array([e.file for e in entries], dtype=str),
            sizes=np.array([e.size for e in entries], dtype=np.int32).reshape(-1, 2),
            exif=np.array([e.exif for e in entries], dtype=bool),
            offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
            boxes=(np.concatenate([e.boxes for e in entries]) if entries else np.zeros((0, 4)))
            .astype(np.float32).reshape(-1, 4),
            names=np.array(names, dtype=np.int32),
            difficult=(np.concatenate([e.difficult for e in entries]) if entries else np.zeros(0))
            .astype(bool),
            vocab=np.array(list(vocab), dtype=str),
            problems=problems,
        )

    # ----------------------------------------------------------------------------- cache
    _ARRAYS = ("ids", "files", "sizes", "exif", "offsets", "boxes", "names", "difficult", "vocab")

    def save(self, path: Path, signature: str) -> None:
        """Write atomically as .npz (strings as unicode arrays, loadable without pickle)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez(tmp, **{k: getattr(self, k) for k in self._ARRAYS},
                     meta=np.array([str(INDEX_VERSION), signature, self.name, self.root,
                                    self.label_kind, problems_to_json(self.problems)]))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @staticmethod
    def load(path: Path, signature: str) -> SourceIndex | None:
        """The cached index at ``path`` if it is current (same version and signature), else None."""
        try:
            with np.load(path, allow_pickle=False) as z:
                version, sig, name, root, label_kind, problems = (str(s) for s in z["meta"])
                if version != str(INDEX_VERSION) or sig != signature:
                    return None
                arrays = {k: z[k] for k in SourceIndex._ARRAYS}
        except (OSError, KeyError, ValueError):
            return None
        return SourceIndex(name=name, root=root, label_kind=label_kind,
                           problems=problems_from_json(problems), **arrays)


def dir_stats(folder: Path) -> dict[str, tuple[int, int]]:
    """{file name: (size, mtime_ns)} of a folder's files, one scandir (empty if no folder)."""
    try:
        with os.scandir(folder) as it:
            out = {}
            for e in it:
                try:
                    st = e.stat()
                except OSError:
                    continue
                out[e.name] = (st.st_size, st.st_mtime_ns)
            return out
    except (FileNotFoundError, NotADirectoryError):
        return {}


def file_signature(parts: Iterable[str]) -> str:
    """sha1 over text parts (e.g. 'name size mtime' lines): the cache key of a source."""
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()


def _mode_allows_write(path: Path) -> bool:
    """The permission bits grant write to us (checked even for root, who bypasses them: a
    folder marked read-only, like a shared dataset, is left alone)."""
    st = path.stat()
    if st.st_uid == os.geteuid():
        bit = stat.S_IWUSR
    elif st.st_gid in os.getgroups() or st.st_gid == os.getegid():
        bit = stat.S_IWGRP
    else:
        bit = stat.S_IWOTH
    return bool(st.st_mode & bit) and os.access(path, os.W_OK)


def _writable_dir(folder: Path) -> bool:
    existing = folder if folder.exists() else folder.parent
    try:
        if not _mode_allows_write(existing):
            return False
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder)
        os.close(fd)
        os.unlink(tmp)
        return True
    except OSError:
        return False


def cache_file(source_dir: Path, key: str, cache_dir: Path | None = None) -> Path:
    """Where the index of ``source_dir``/``key`` is cached.

    ``cache_dir`` given: there (under a folder named after the source's absolute path). Otherwise
    beside the data (``<source_dir>/.yolo_cache/<key>.index.npz``) when that folder is writable,
    else under ``default_cache_root()``.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    if cache_dir is None:
        beside = source_dir / CACHE_DIRNAME
        if _writable_dir(beside):
            return beside / f"{safe}.index.npz"
        cache_dir = default_cache_root()
    tag = hashlib.sha1(str(source_dir.resolve()).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{source_dir.name}-{tag}" / f"{safe}.index.npz"


def load_or_build(source, cache_dir: Path | None = None, progress: bool = True,
                  use_cache: bool = True) -> SourceIndex:
    """The source's index from the cache when current, else built (and cached).

    ``source`` is a ``VOCSource`` or ``KaggleSource`` (anything with ``directory``, ``key``,
    ``signature()`` and ``build(progress)``).
    """
    try:  # a split list or CSV that cannot be read (oversized, vanished) is one DataLayoutError
        signature = source.signature()
    except OSError as err:
        raise DataLayoutError(f"{getattr(source, 'name', source)}: {err}") from None
    path = cache_file(source.directory, source.key, cache_dir)
    if use_cache:
        cached = SourceIndex.load(path, signature)
        if cached is not None:
            return cached
    try:
        index = source.build(progress=progress)
    except OSError as err:
        raise DataLayoutError(f"{getattr(source, 'name', source)}: {err}") from None
    if use_cache:
        try:
            index.save(path, signature)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return index


# ------------------------------------------------------------------ labelled, combined index
@dataclass
class DetectionIndex:
    """Images of one or more sources with labels from a class list (what datasets read).

    Per image i: ``ids[i]``, ``paths[i]`` (absolute), ``sizes[i]`` (h, w), ``exif[i]``;
    its boxes (ndarray[K, 4] float32 pixel xyxy), labels (int64) and difficult flags (bool) are
    rows ``offsets[i]:offsets[i + 1]`` of ``boxes``/``labels``/``difficult``.
    """

    classes: tuple[str, ...]
    ids: np.ndarray
    paths: np.ndarray
    sizes: np.ndarray
    exif: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    sources: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)

    def annotation(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes (K, 4) float32, labels (K,) int64, difficult (K,) bool) of image i (views)."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.boxes[a:b], self.labels[a:b], self.difficult[a:b]

    @property
    def box_image(self) -> np.ndarray:
        """(M,) int64: the image index of every box."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def select_boxes(self, keep: np.ndarray) -> DetectionIndex:
        """A copy keeping only boxes where ``keep`` (ndarray[M] bool); images are all kept."""
        counts = np.bincount(self.box_image[keep], minlength=len(self))
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return DetectionIndex(self.classes, self.ids, self.paths, self.sizes, self.exif, offsets,
                              self.boxes[keep], self.labels[keep], self.difficult[keep],
                              list(self.problems), self.sources)

    def without_difficult(self) -> DetectionIndex:
        """A copy without difficult objects (for training with use_difficult=False)."""
        return self.select_boxes(~self.difficult)

    @staticmethod
    def from_sources(sources: Sequence[SourceIndex], classes: Sequence[str]) -> DetectionIndex:
        """Join sources, map names to labels, drop and report objects of unknown classes."""
        classes = tuple(classes)
        lookup = {c: i for i, c in enumerate(classes)}
        parts, problems = [], []
        for s in sources:
            if s.label_kind == "index":
                vocab_ids = np.array([_index_label(v, len(classes)) for v in s.vocab], dtype=np.int64)
            else:
                vocab_ids = np.array([lookup.get(v, -1) for v in s.vocab], dtype=np.int64)
            labels = vocab_ids[s.names] if len(s.names) else np.zeros(0, np.int64)
            problems += list(s.problems) + _unknown_class_problems(s, labels)
            root = Path(s.root)
            parts.append((s, labels, np.array([str(root / f) for f in s.files], dtype=str)))
        joined = DetectionIndex(
            classes=classes,
            ids=_cat([s.ids for s, _, _ in parts], str),
            paths=_cat([p for _, _, p in parts], str),
            sizes=_cat([s.sizes for s, _, _ in parts], np.int32).reshape(-1, 2),
            exif=_cat([s.exif for s, _, _ in parts], bool),
            offsets=_join_offsets([s.offsets for s, _, _ in parts]),
            boxes=_cat([s.boxes for s, _, _ in parts], np.float32).reshape(-1, 4),
            labels=_cat([lab for _, lab, _ in parts], np.int64),
            difficult=_cat([s.difficult for s, _, _ in parts], bool),
            problems=problems,
            sources=tuple(s.name for s in sources),
        )
        kept = joined.select_boxes(joined.labels >= 0)
        empty = np.flatnonzero(np.diff(kept.offsets) == 0)
        kept.problems += [Problem.make("no_objects", kept.paths[i]) for i in empty]
        return kept


def _index_label(v: str, num_classes: int) -> int:
    try:
        f = float(v)
    except ValueError:
        return -1
    return int(f) if f.is_integer() and 0 <= f < num_classes else -1


def _unknown_class_problems(s: SourceIndex, labels: np.ndarray) -> list[Problem]:
    bad = np.flatnonzero(labels < 0)
    if not len(bad):
        return []
    img = np.searchsorted(s.offsets, bad, side="right") - 1
    out = []
    for i in np.unique(img):
        names = sorted({str(s.vocab[s.names[b]]) for b in bad[img == i]})
        n = int((img == i).sum())
        out.append(Problem.make("unknown_class", str(Path(s.root) / s.files[i]),
                                "class " + ", ".join(repr(x) for x in names), n))
    return out


def _cat(arrays: Sequence[np.ndarray], dtype) -> np.ndarray:
    arrays = [np.asarray(a) for a in arrays if len(a)]
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)


def _join_offsets(offsets: Sequence[np.ndarray]) -> np.ndarray:
    counts = [np.diff(o) for o in offsets]
    return np.concatenate(([0], np.cumsum(_cat(counts, np.int64)))).astype(np.int64)


def progress_iter(items: Sequence, desc: str, enabled: bool) -> Iterable:
    """tqdm over items when enabled and there are enough to be worth a bar."""
    if not enabled or len(items) < 50:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False)

