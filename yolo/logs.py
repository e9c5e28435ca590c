"""Lightning run logs -> tidy pandas frames for the dashboard's Training page.

A run folder's layout and the discovery of runs are ``yolo.runs``; this module reads a run's
``metrics.csv`` (CSVLogger) first and its ``events.out.tfevents.*`` (TensorBoardLogger) after.

The tidy metrics frame (``read_metrics``/``read_runs``) has one row per logged value:

    run     category "<name>/<version>", e.g. "demo/version_0"
    step    int64    trainer.global_step at log time
    epoch   Int64    epoch at log time (nullable: <NA> when the source did not say)
    metric  category normalised name, e.g. "train/loss" (Lightning's "_step"/"_epoch" suffix removed)
    kind    category "step" or "epoch" when Lightning added that suffix, else "plain"
    value   float64
    source  category "csv" or "tensorboard"

The text columns are categoricals of str with sorted categories (a run logging every step has
millions of rows; codes keep them small), so group them with ``observed=True``. Rows are sorted
by run, metric, kind, step. metrics.csv is parsed by pandas' C parser in pieces (a million-row
file in about a second and a few hundred MB; ``python -m bench.logs``); TensorBoard events are
read with TensorBoard's own record reader.

Reading never raises for a bad or half-written file: what is readable is returned, and each
problem is described by a warning string (``read_metrics(..., warnings=list)`` appends them, and
they are also in ``frame.attrs["warnings"]``).
"""

from __future__ import annotations

import csv
import io
import os
import struct
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from yolo.config import (
    ACCURACIES,
    IMAGES_PER_SECOND,
    LEARNING_RATE,
    LOSS_TERMS,
    LOSS_TOTAL,
    MAP50,
    MAP50_VOC07,
    SEED_TARGETS,
    SKIPPED_STEPS,
    metric_key,
)
from yolo.runs import EVENTS_PATTERN, METRICS_FILE, PathLike, RunInfo, run_label

COLUMNS: tuple[str, ...] = ("run", "step", "epoch", "metric", "kind", "value", "source")
GROUPS: tuple[str, ...] = ("loss", "accuracy", "map", "lr", "speed", "other")
_SUFFIXES = {"_step": "step", "_epoch": "epoch"}
_KNOWN_KEYS = frozenset(
    (LOSS_TOTAL, *LOSS_TERMS, *ACCURACIES, MAP50, MAP50_VOC07, LEARNING_RATE, IMAGES_PER_SECOND,
     SKIPPED_STEPS)
)
_HP_METRIC = "hp_metric"

# ----------------------------------------------------------------------------------- names
def split_metric(name: str) -> tuple[str, str]:
    """``"val/map50" -> ("val", "map50")``; a name without a stage gives ``("", name)``."""
    stage, sep, key = name.partition("/")
    return (stage, key) if sep else ("", name)


def normalise_metric(name: str, all_names: Iterable[str] = ()) -> tuple[str, str]:
    """Strip Lightning's ``_step``/``_epoch`` suffix: ``"train/loss_step" -> ("train/loss", "step")``.

    The suffix is stripped when the same base name also appears with the other suffix in
    ``all_names``, or when the base is one of the project's metric keys (yolo.config); otherwise
    the name is kept as is with kind ``"plain"`` (e.g. a user metric ``"time_per_step"``).
    """
    names = set(all_names)
    for suffix, kind in _SUFFIXES.items():
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            other = next(s for s in _SUFFIXES if s != suffix)
            if base + other in names or split_metric(base)[1] in _KNOWN_KEYS:
                return base, kind
    return name, "plain"


def metric_group(name: str) -> str:
    """One of GROUPS for a (normalised) metric name: loss, accuracy, map, lr, speed or other."""
    key = split_metric(name)[1].lower()
    if key == LOSS_TOTAL or key in LOSS_TERMS or "loss" in key:
        return "loss"
    if key in ACCURACIES or key.endswith("acc") or "accuracy" in key:
        return "accuracy"
    if key in (MAP50, MAP50_VOC07) or key.startswith("map"):
        return "map"
    if key == LEARNING_RATE or key.startswith((f"{LEARNING_RATE}/", "lr-", "lr_")):  # lr/pg1: LearningRateMonitor
        return "lr"
    if key == IMAGES_PER_SECOND or "per_s" in key or "throughput" in key:
        return "speed"
    return "other"


def group_metrics(metrics: Iterable[str]) -> dict[str, list[str]]:
    """Metric names grouped for the Training page: ``{group: sorted names}``, non-empty groups only,
    in GROUPS order."""
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name in sorted(set(metrics)):
        groups[metric_group(name)].append(name)
    return {g: names for g, names in groups.items() if names}


def available_metrics(df: pd.DataFrame) -> list[str]:
    """Sorted distinct metric names in a tidy frame."""
    return sorted(df["metric"].unique()) if len(df) else []


def seed_target(metric: str) -> float | None:
    """The seed's acceptance target (percent) for a cell-accuracy metric, else None."""
    return SEED_TARGETS.get(split_metric(metric)[1])


# ----------------------------------------------------------------------------------- csv
_CATEGORICAL = ("run", "metric", "kind", "source")
_CHUNK_BYTES = 8 * 2**20  # metrics.csv is parsed in pieces of about this size (bounds peak memory)
_NEWLINE, _COMMA, _QUOTE = 10, 44, 34


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Tidy frames stacked, categorical columns kept categorical (categories united, sorted)."""
    if len(frames) == 1:
        return frames[0].copy()
    out = pd.concat([f.drop(columns=list(_CATEGORICAL)) for f in frames], ignore_index=True)
    for col in _CATEGORICAL:
        out[col] = union_categoricals([f[col] for f in frames], sort_categories=True)
    return out[list(COLUMNS)]


def _empty() -> pd.DataFrame:
    """A tidy frame without rows (the columns and dtypes of the module docstring)."""
    return pd.DataFrame({c: pd.Series(dtype="category" if c in _CATEGORICAL else t) for c, t in zip(
        COLUMNS, ("", "int64", "Int64", "", "", "float64", ""))})


def _last_line_end(f, size: int) -> int:
    """Offset just after the last newline of the open binary file ``f`` of ``size`` bytes (0: none)."""
    end, block = size, 1 << 16
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        cut = f.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _whole_lines(path: Path, warns: list[str]) -> tuple[int, bytes] | None:
    """(bytes up to the end of the last whole line, the header line) of a metrics.csv that may
    still be growing: a last line without its newline is being written and is left out."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                warns.append(f"{path}: empty file")
                return None
            f.seek(size - 1)
            if f.read(1) != b"\n":
                warns.append(f"{path}: last line incomplete (run still writing?); ignored")
                size = _last_line_end(f, size)
            f.seek(0)
            header = f.readline()
    except OSError as err:
        warns.append(f"{path}: cannot read ({err})")
        return None
    if not header.strip() or len(header) > size:
        warns.append(f"{path}: no complete header line yet")
        return None
    return size, header


def _chunks(path: Path, start: int, stop: int):
    """Byte pieces of ``path[start:stop]``, each ending at a line end (``stop`` is one)."""
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        while pos < stop:
            data = f.read(min(_CHUNK_BYTES, stop - pos))
            if not data:
                return
            if not data.endswith(b"\n") and pos + len(data) < stop:
                data += f.readline()
            data = data[: stop - pos]
            pos += len(data)
            yield data


def _field_counts(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line starts, line ends, field counts) of a piece of unquoted CSV that ends with a newline;
    a blank line has 0 fields."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == _NEWLINE)
    starts = np.concatenate(([0], ends[:-1] + 1))
    commas = np.flatnonzero(buf == _COMMA)
    fields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    length = ends - starts - (buf[np.maximum(ends - 1, 0)] == 13)  # without "\r"
    fields[length <= 0] = 0
    return starts, ends, fields


def _parse_piece(data: bytes, n_fields: int, keep: list[int], counts: dict) -> pd.DataFrame:
    """One piece of metrics.csv -> float64 frame with columns ``keep`` (field positions); rows
    with another field count are dropped and counted in ``counts["malformed"]``, non-numeric
    cells become NaN and are counted in ``counts["bad_cells"]``."""
    if _QUOTE in data:  # quoted fields (never written by CSVLogger): the careful path
        rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
                if r]
        good = [r for r in rows if len(r) == n_fields]
        counts["malformed"] += len(rows) - len(good)
        strings = pd.DataFrame([[r[k] for k in keep] for r in good], columns=keep, dtype=object)
        return _to_float(strings, counts)
    starts, ends, fields = _field_counts(data)
    bad = (fields != n_fields) & (fields != 0)
    if bad.any():
        counts["malformed"] += int(bad.sum())
        good = np.flatnonzero(~bad)
        data = b"".join(data[s:e + 1] for s, e in zip(starts[good], ends[good]))
    if not data.strip():
        return pd.DataFrame(columns=keep, dtype="float64")
    options = dict(header=None, names=list(range(n_fields)), usecols=keep, engine="c",
                   encoding_errors="replace")
    try:
        return pd.read_csv(io.BytesIO(data), dtype=np.float64, **options)
    except (ValueError, TypeError):  # a non-numeric cell somewhere in this piece
        strings = pd.read_csv(io.BytesIO(data), dtype=object, keep_default_na=False, **options)
        return _to_float(strings, counts)


def _to_float(strings: pd.DataFrame, counts: dict) -> pd.DataFrame:
    """Object cells -> float64; a non-empty cell that is not a number is NaN and counted."""
    out = {}
    for col in strings.columns:
        text = strings[col].astype(str).str.strip()
        values = pd.to_numeric(text.where(text != "", None), errors="coerce").astype("float64")
        counts["bad_cells"] += int((values.isna() & (text != "")).sum())
        out[col] = values.to_numpy()
    return pd.DataFrame(out, columns=strings.columns)


def _read_csv_tidy(path: Path, run: str, warns: list[str]) -> pd.DataFrame:
    """metrics.csv -> tidy frame (source "csv"), read in pieces with pandas' C parser.

    Only whole lines are read (a line still being written is left for the next read); rows with
    the wrong number of fields, cells that are not numbers and rows without a step are skipped
    and counted in ``warns``. Per column, the last value logged at a step wins (a resumed run).
    """
    snap = _whole_lines(path, warns)
    if snap is None:
        return _empty()
    size, header_line = snap
    header = next(csv.reader([header_line.decode("utf-8", errors="replace").rstrip("\r\n")]), [])
    header = [h.strip() for h in header]
    first: dict[str, int] = {}
    for k, name in enumerate(header):
        first.setdefault(name, k)  # a repeated column name: the first one counts
    step_at, epoch_at = first.get("step"), first.get("epoch")
    value_cols = [(name, k) for name, k in first.items() if name not in ("step", "epoch")]
    keep = sorted(first.values())
    counts = {"malformed": 0, "bad_cells": 0, "no_step": 0, "rows": 0}
    row_steps, row_epochs = [], []  # per piece: step and epoch of every row
    pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n, _ in value_cols}
    for data in _chunks(path, len(header_line), size):
        wide = _parse_piece(data, len(header), keep, counts)
        n, first_row = len(wide), counts["rows"]
        if step_at is None:
            step = np.arange(first_row, first_row + n, dtype="float64")
        else:
            step = wide[step_at].to_numpy(dtype="float64", copy=True)  # not a view: the piece goes
        counts["rows"] += n
        epoch = (wide[epoch_at].to_numpy(dtype="float64", copy=True) if epoch_at is not None
                 else np.full(n, np.nan))
        has_step = ~np.isnan(step)
        counts["no_step"] += int(n - has_step.sum())
        row_steps.append(step)
        row_epochs.append(epoch)
        for name, k in value_cols:
            values = wide[k].to_numpy(dtype="float64")
            (rows,) = np.nonzero(has_step & ~np.isnan(values))
            if len(rows):
                pieces[name].append((rows + first_row, values[rows]))
        del wide
    if counts["malformed"]:
        warns.append(f"{path}: skipped {counts['malformed']} malformed row(s) "
                     f"(expected {len(header)} fields)")
    if counts["bad_cells"]:
        warns.append(f"{path}: {counts['bad_cells']} non-numeric value(s) ignored")
    if step_at is None:
        warns.append(f"{path}: no 'step' column; using the row number as step")
    if counts["no_step"]:
        warns.append(f"{path}: dropped {counts['no_step']} row(s) without a step")
    if not counts["rows"]:
        return _empty()
    return _tidy({n: p for n, p in pieces.items() if p}, np.concatenate(row_steps),
                 np.concatenate(row_epochs), run, "csv")


def _tidy(pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]], row_step: np.ndarray,
          row_epoch: np.ndarray, run: str, source: str) -> pd.DataFrame:
    """Logged values -> tidy frame sorted by metric, kind, step; the last value logged at a step
    wins (a resumed run logs some steps again).

    Args:
        pieces: ``{raw metric name: [(rows (int64[K]), values (float64[K])), ...]}`` in logging
            order, ``rows`` indexing ``row_step``/``row_epoch``. Each list is consumed (emptied)
            as its metric is written, so the input and output are not both held in full.
        row_step (float64[R]), row_epoch (float64[R], NaN when unknown): step and epoch of each row.
    """
    if not pieces:
        return _empty()
    mapping = {raw: normalise_metric(raw, pieces) for raw in pieces}
    metrics = sorted({m for m, _ in mapping.values()})
    kinds = sorted({k for _, k in mapping.values()})
    total = sum(len(r) for parts in pieces.values() for r, _ in parts)
    step_out = np.empty(total, np.int64)
    epoch_out = np.empty(total, np.int64)
    epoch_missing = np.empty(total, bool)
    value_out = np.empty(total, np.float64)
    metric_out = np.empty(total, np.int16)
    kind_out = np.empty(total, np.int8)
    pos = 0
    for raw in sorted(pieces, key=lambda r: mapping[r]):
        parts = pieces[raw]
        rows = np.concatenate([r for r, _ in parts])
        values = np.concatenate([v for _, v in parts])
        parts.clear()
        step = row_step[rows]
        order = np.argsort(step, kind="stable")  # by step; equal steps stay in logging order
        step, rows, values = step[order], rows[order], values[order]
        last = np.append(step[1:] != step[:-1], True)  # the last one logged at each step
        k = int(last.sum())
        step_out[pos:pos + k] = step[last]
        epoch = row_epoch[rows[last]]
        epoch_missing[pos:pos + k] = missing = np.isnan(epoch)
        epoch_out[pos:pos + k] = np.rint(np.where(missing, 0.0, epoch))
        value_out[pos:pos + k] = values[last]
        metric_out[pos:pos + k] = metrics.index(mapping[raw][0])
        kind_out[pos:pos + k] = kinds.index(mapping[raw][1])
        pos += k
    return pd.DataFrame({
        "run": pd.Categorical.from_codes(np.zeros(pos, np.int8), [run]),
        "step": step_out[:pos],
        "epoch": pd.arrays.IntegerArray(epoch_out[:pos], epoch_missing[:pos]),
        "metric": pd.Categorical.from_codes(metric_out[:pos], metrics),
        "kind": pd.Categorical.from_codes(kind_out[:pos], kinds),
        "value": value_out[:pos],
        "source": pd.Categorical.from_codes(np.zeros(pos, np.int8), [source]),
    }, copy=False)


# ----------------------------------------------------------------------------------- events
def _record_problem(path: Path, at: int, size: int) -> str:
    """Why TensorBoard's reader stopped at byte ``at`` of an events file of ``size`` bytes: the
    TFRecord framing there (u64 length, u32 masked CRC of it) says truncated or corrupt."""
    try:
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    except ImportError:  # internal helper moved: judge by the length alone
        masked_crc32c = None
    try:
        with open(path, "rb") as f:
            f.seek(at)
            head = f.read(12)
    except OSError as err:
        return f"{path}: cannot read ({err})"
    if len(head) < 12:
        return f"{path}: ends inside a record header at byte {at} (still writing?)"
    (length,) = struct.unpack("<Q", head[:8])
    (crc,) = struct.unpack("<I", head[8:])
    if masked_crc32c is not None and masked_crc32c(head[:8]) != crc:
        return f"{path}: corrupt record header at byte {at}; the rest of the file is unreadable"
    if at + 12 + length + 4 > size:
        return f"{path}: ends inside a record at byte {at} (still writing?)"
    return f"{path}: corrupt record at byte {at}; the rest of the file is unreadable"


def _scalar(value) -> float | None:
    """A summary value's scalar: ``simple_value`` (what Lightning's TensorBoardLogger writes) or
    a one-element tensor of the scalars plugin; None for anything else (images, histograms)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
        from tensorboard.util.tensor_util import make_ndarray

        array = make_ndarray(value.tensor)
        return float(array.reshape(-1)[0]) if array.size == 1 else None
    return None


def _read_event_file(path: Path, found: dict[str, tuple[list, list]], warns: list[str]) -> None:
    """Scalars of one events file, through TensorBoard's own record reader (it checks every
    record's CRC and stops at a torn or damaged one), appended to ``found[tag] = (steps, values)``;
    where and why it stopped early goes to ``warns``."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    consumed = 0
    for record in RawEventFileLoader(str(path)).Load():
        consumed += len(record) + 16  # u64 length, u32 CRC, payload, u32 CRC
        event = Event.FromString(record)
        for value in event.summary.value:
            scalar = _scalar(value)
            if scalar is not None:
                steps, values = found.setdefault(value.tag, ([], []))
                steps.append(event.step)
                values.append(scalar)
    size = path.stat().st_size
    if consumed < size:
        warns.append(_record_problem(path, consumed, size))


def _read_events(run_dir: Path, run: str, warns: list[str]) -> pd.DataFrame:
    """Scalars of every events file in ``run_dir`` (in file-name order, i.e. the order they were
    started) -> tidy frame (source "tensorboard"); the epoch of a value is the last "epoch"
    scalar logged at or before its step."""
    files = sorted(run_dir.glob(EVENTS_PATTERN))
    if not files:
        return _empty()
    found: dict[str, tuple[list, list]] = {}
    for path in files:
        try:
            _read_event_file(path, found, warns)
        except Exception as err:  # the reader's errors are not a stable API; report, don't raise
            warns.append(f"{path}: TensorBoard events unreadable ({type(err).__name__}: {err})")
    epoch_steps, epoch_values = (np.asarray(a, dtype="float64") for a in found.pop("epoch", ([], [])))
    if len(epoch_steps):
        last = ~pd.Series(epoch_steps).duplicated(keep="last").to_numpy()
        order = np.argsort(epoch_steps[last], kind="stable")
        epoch_steps, epoch_values = epoch_steps[last][order], epoch_values[last][order]
    pieces, row_steps, row_epochs, offset = {}, [], [], 0
    for tag, (steps, values) in found.items():
        step, value = np.asarray(steps, dtype="float64"), np.asarray(values, dtype="float64")
        if tag == _HP_METRIC:  # TensorBoardLogger's placeholder hp_metric of -1 is not a metric
            step, value = step[value != -1], value[value != -1]
        if not len(step):
            continue
        at = np.searchsorted(epoch_steps, step, side="right") - 1
        epoch = epoch_values[np.maximum(at, 0)] if len(epoch_values) else np.full(len(step), np.nan)
        row_steps.append(step)
        row_epochs.append(np.where(at >= 0, epoch, np.nan))
        pieces[tag] = [(np.arange(offset, offset + len(step)), value)]
        offset += len(step)
    if not pieces:
        return _empty()
    return _tidy(pieces, np.concatenate(row_steps), np.concatenate(row_epochs), run, "tensorboard")


# ----------------------------------------------------------------------------------- public
def read_metrics(run_dir: PathLike | RunInfo, warnings: list[str] | None = None,
                 use_events: bool = True) -> pd.DataFrame:
    """One run's logged scalars as a tidy frame (module docstring has the columns).

    metrics.csv is the primary source; TensorBoard events fill in every (metric, kind, step) the
    CSV lacks (a CSV cut short, or the events of a run whose CSV was restarted), so a value is
    never counted twice. Problems become warning strings, appended to ``warnings`` when given and
    stored in ``frame.attrs["warnings"]``. Never raises.
    """
    warns: list[str] = []
    try:
        frame = _read_metrics(run_dir, warns, use_events)
    except Exception as err:  # last resort: the dashboard must get a frame, not a traceback
        warns.append(f"{run_dir}: could not read metrics ({type(err).__name__}: {err})")
        frame = _empty()
    frame.attrs["warnings"] = list(warns)
    if warnings is not None:
        warnings.extend(warns)
    return frame


def _read_metrics(run_dir: PathLike | RunInfo, warns: list[str], use_events: bool) -> pd.DataFrame:
    path = run_dir.path if isinstance(run_dir, RunInfo) else Path(run_dir)
    run = run_dir.label if isinstance(run_dir, RunInfo) else run_label(path)
    if not path.is_dir():
        warns.append(f"{path}: run directory not found")
        return _empty()
    csv_frame = _empty()
    csv_path = path / METRICS_FILE
    if csv_path.is_file():
        try:
            csv_frame = _read_csv_tidy(csv_path, run, warns)
        except (csv.Error, pd.errors.ParserError, UnicodeError) as err:
            warns.append(f"{csv_path}: not parseable as CSV ({err})")
    has_events = any(path.glob(EVENTS_PATTERN))
    tb_frame = _read_events(path, run, warns) if use_events else _empty()
    if not csv_path.is_file() and not has_events:
        warns.append(f"{path}: no metrics.csv and no TensorBoard events")
    if tb_frame.empty:
        return csv_frame
    if csv_frame.empty:
        return tb_frame
    pairs: dict[tuple[str, str], int] = {}
    extra = tb_frame[~np.isin(_keys(tb_frame, pairs), _keys(csv_frame, pairs))]
    if not len(extra):
        return csv_frame
    frame = _concat([csv_frame, extra])
    return frame.sort_values(["metric", "kind", "step"], kind="stable").reset_index(drop=True)


def _keys(frame: pd.DataFrame, pairs: dict[tuple[str, str], int]) -> np.ndarray:
    """One int64 key per row for (metric, kind, step), (metric, kind) numbered through ``pairs``
    (shared between the frames compared)."""
    metrics, kinds = frame["metric"].cat, frame["kind"].cat
    local = metrics.codes.to_numpy(np.int64) * len(kinds.categories) + kinds.codes.to_numpy(np.int64)
    present = np.unique(local)
    table = np.zeros(int(present.max()) + 1 if len(present) else 1, dtype=np.int64)
    for code in present:
        name = (metrics.categories[code // len(kinds.categories)], kinds.categories[code % len(kinds.categories)])
        table[code] = pairs.setdefault(name, len(pairs))
    return (table[local] << 42) + frame["step"].to_numpy(np.int64)


def read_runs(run_dirs: Sequence[PathLike | RunInfo], warnings: list[str] | None = None,
              use_events: bool = True) -> pd.DataFrame:
    """``read_metrics`` of several runs, concatenated (tidy columns). Never raises."""
    warns: list[str] = []
    frames = [read_metrics(r, warns, use_events) for r in run_dirs]
    frames = [f for f in frames if len(f)]
    frame = _concat(frames) if frames else _empty()
    frame.attrs = {"warnings": list(warns)}
    if warnings is not None:
        warnings.extend(warns)
    return frame


def epoch_table(df: pd.DataFrame) -> pd.DataFrame:
    """Tidy frame -> one row per (run, epoch): columns run, epoch, step (last step seen in the
    epoch) and one column per metric. A metric's cell is its epoch aggregate when Lightning logged
    one ("epoch"/"plain" kinds), else its last per-step value of the epoch. Rows without an epoch
    are left out."""
    rows = np.flatnonzero(df["epoch"].notna().to_numpy())
    if not len(rows):
        return pd.DataFrame(columns=["run", "epoch", "step"])
    # the last row (largest step) of each (run, epoch, metric, kind), then the best kind per metric
    codes = [pd.Categorical(df[c]).codes.astype(np.int64)[rows] for c in ("run", "metric", "kind")]
    epoch = df["epoch"].to_numpy(dtype=np.float64, na_value=np.nan)[rows].astype(np.int64)
    key = codes[0]
    for part, radix in ((epoch - epoch.min(), int(epoch.max() - epoch.min()) + 1),
                        (codes[1], int(codes[1].max()) + 1), (codes[2], int(codes[2].max()) + 1)):
        key = key * radix + part
    step = pd.Series(df["step"].to_numpy()[rows])
    last = df.iloc[rows[step.groupby(key, sort=False).idxmax().to_numpy()]]
    last = last.assign(run=last["run"].astype(str), metric=last["metric"].astype(str),
                       prio=(last["kind"].astype(str) != "step").astype(int))
    best = (last.sort_values(["prio", "step"], kind="stable")
                .groupby(["run", "epoch", "metric"], sort=False).tail(1))
    table = best.pivot(index=["run", "epoch"], columns="metric", values="value")
    steps = last.groupby(["run", "epoch"])["step"].max().rename("step")
    table = table.join(steps).reset_index()
    order = [m for names in group_metrics(table.columns.drop(["run", "epoch", "step"])).values()
             for m in names]
    table = table[["run", "epoch", "step", *order]]
    table.columns.name = None
    table["epoch"] = table["epoch"].astype("int64")
    return table.sort_values(["run", "epoch"]).reset_index(drop=True)


def run_summary(df: pd.DataFrame, monitor: str = metric_key("val", MAP50), mode: str = "max",
                table: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: epochs seen, last epoch and step, and the best value of ``monitor``
    (``mode`` "max" or "min") with its epoch, plus its last value; NaN when never logged.
    ``table``: ``epoch_table(df)`` when the caller has it already."""
    table = epoch_table(df) if table is None else table
    rows = []
    for run, group in table.groupby("run", sort=True):
        row = {"run": run, "epochs": len(group), "last_epoch": int(group["epoch"].max()),
               "last_step": int(group["step"].max()), "monitor": monitor,
               "best": np.nan, "best_epoch": pd.NA, "last": np.nan}
        if monitor in group and group[monitor].notna().any():
            values = group.set_index("epoch")[monitor].dropna()
            best_epoch = values.idxmax() if mode == "max" else values.idxmin()
            row.update(best=float(values[best_epoch]), best_epoch=int(best_epoch),
                       last=float(values.iloc[-1]))
        rows.append(row)
    return pd.DataFrame(rows, columns=["run", "epochs", "last_epoch", "last_step", "monitor",
                                       "best", "best_epoch", "last"])


# ----------------------------------------------------------------------------------- plotting
def thin(df: pd.DataFrame, max_points: int, y: str = "value",
         by: Sequence[str] = ("run", "metric", "kind")) -> pd.DataFrame:
    """At most ``max_points`` rows of each series (rows of equal ``by``), for drawing.

    The rule: a series of n > ``max_points`` points, in the frame's order, is cut into
    b = (max_points - 2) // 2 runs of consecutive points of (nearly) equal length (point i is in
    run i * b // n); from each run the point with the lowest and the one with the highest ``y``
    are kept (the first of equal ones), and so are the series' first and last points. So every
    spike and the envelope of a noisy curve survive. Shorter series are kept whole. NaN ``y``
    counts as neither lowest nor highest. Returns the kept rows in their original order.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    if len(df) <= max_points:
        return df
    groups = df.groupby(list(by), observed=True, sort=False)
    size = groups[y].transform("size").to_numpy()
    if (size <= max_points).all():
        return df
    rank = groups.cumcount().to_numpy()
    buckets = (max_points - 2) // 2
    long = size > max_points
    key = groups.ngroup().to_numpy().astype(np.int64) * buckets + rank * buckets // size
    values = df[y].to_numpy(dtype="float64")
    position = np.arange(len(df))
    frame = pd.DataFrame({"key": key[long], "low": np.where(np.isnan(values), np.inf, values)[long],
                          "high": np.where(np.isnan(values), -np.inf, values)[long],
                          "position": position[long]})
    by_bucket = frame.groupby("key", sort=False)
    keep = ~long | (rank == 0) | (rank == size - 1)
    keep[frame["position"].to_numpy()[by_bucket["low"].idxmin().to_numpy()]] = True
    keep[frame["position"].to_numpy()[by_bucket["high"].idxmax().to_numpy()]] = True
    return df[keep]


# ----------------------------------------------------------------------------------- smoothing
def smooth(series: Sequence[float] | pd.Series | np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average of a 1-D series.

    ``s_k = (1 - w) * sum_{j<=k} w^(k-j) x_j / (1 - w^(k+1))`` over the finite points; non-finite
    points are passed through unchanged and skipped by the average. ``weight`` in [0, 1]: 0 returns
    the values, 1 is the running mean (the limit of the formula). Returns float64 (N,).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1], got {weight}")
    values = np.asarray(series, dtype="float64").copy()
    finite = np.isfinite(values)
    if weight == 0.0 or not finite.any():
        return values
    points = pd.Series(values[finite])
    if weight == 1.0:
        averaged = points.expanding().mean()
    else:
        averaged = points.ewm(alpha=1.0 - weight, adjust=True).mean()
    values[finite] = averaged.to_numpy()
    return values


def smooth_frame(df: pd.DataFrame, weight: float) -> pd.DataFrame:
    """A copy of a tidy frame sorted by run, metric, kind, step with a ``smoothed`` column: ``smooth``
    applied to each (run, metric, kind) series in step order."""
    out = df.sort_values(["run", "metric", "kind", "step"], kind="stable").reset_index(drop=True)
    out["smoothed"] = out["value"].astype("float64")
    if len(out) and weight > 0:
        for _, index in out.groupby(["run", "metric", "kind"], observed=True, sort=False).indices.items():
            out.iloc[index, out.columns.get_loc("smoothed")] = smooth(out["value"].to_numpy()[index], weight)
    return out


# Colours of runs on the Training page: plotly's default qualitative sequence, one per run.
RUN_COLOURS = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
               "#FF97FF", "#FECB52")


def run_colours(runs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each run (in the given order) -> (line colour, faint colour) of one colour family.

    The faint colour (the unsmoothed values) is the line colour mixed 60 % toward white, so each
    run's raw line reads as a lighter shade of its own bold line, never as another run's colour.
    Colours repeat after ``len(RUN_COLOURS)`` runs.
    """
    out = {}
    for i, run in enumerate(runs):
        bold = RUN_COLOURS[i % len(RUN_COLOURS)]
        rgb = [int(bold[k:k + 2], 16) for k in (1, 3, 5)]
        faint = "#" + "".join(f"{round(c + 0.6 * (255 - c)):02X}" for c in rgb)
        out[str(run)] = (bold, faint)
    return out


def default_smoothing(points: int) -> float:
    """The Training page's default EMA weight for curves of ``points`` values (the longest shown).

    An EMA of weight w lags a trend by about w / (1 - w) points; this keeps that lag near 1/40 of
    the curve: w = 1 - 2 / (points / 20 + 1), so 0 (no smoothing: the line ends AT the last value)
    up to 20 points, 0.6 at 80, 0.9 at 380, at most 0.99. Rounded to the slider's 0.01 steps.
    """
    if points <= 20:
        return 0.0
    return round(min(0.99, 1.0 - 2.0 / (points / 20.0 + 1.0)), 2)


def last_values(df: pd.DataFrame, x: str = "step") -> pd.DataFrame:
    """The last logged point of each (run, metric, kind) series: its ``x`` and ``value`` (the raw
    value, never the smoothed one), so a page can mark where each curve really ends."""
    if df.empty:
        return df.iloc[0:0]
    ordered = df.sort_values(["run", "metric", "kind", x], kind="stable")
    return ordered.groupby(["run", "metric", "kind"], observed=True, sort=False).tail(1).reset_index(drop=True)
