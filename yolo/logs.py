"""Lightning run logs -> tidy pandas frames for the dashboard's Training page.

A run lives in ``logs/<name>/version_<n>/`` and holds some of: ``metrics.csv`` (CSVLogger),
``events.out.tfevents.*`` (TensorBoardLogger), ``hparams.yaml``, ``config.yaml`` (the resolved run
config) and ``checkpoints/{last,best-*}.ckpt``.

The tidy metrics frame (``read_metrics``/``read_runs``) has one row per logged value:

    run     str      "<name>/<version>", e.g. "demo/version_0"
    step    int64    trainer.global_step at log time
    epoch   Int64    epoch at log time (nullable: <NA> when the source did not say)
    metric  str      normalised name, e.g. "train/loss" (Lightning's "_step"/"_epoch" suffix removed)
    kind    str      "step" or "epoch" when Lightning added that suffix, else "plain"
    value   float64
    source  str      "csv" or "tensorboard"

Reading never raises for a bad or half-written file: what is readable is returned, and each
problem is described by a warning string (``read_metrics(..., warnings=list)`` appends them, and
they are also in ``frame.attrs["warnings"]``).
"""

from __future__ import annotations

import csv
import io
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import pandas as pd
import yaml

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

COLUMNS: tuple[str, ...] = ("run", "step", "epoch", "metric", "kind", "value", "source")
GROUPS: tuple[str, ...] = ("loss", "accuracy", "map", "lr", "speed", "other")
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
EVENTS_PATTERN = "events.out.tfevents.*"
_SUFFIXES = {"_step": "step", "_epoch": "epoch"}
_KNOWN_KEYS = frozenset(
    (LOSS_TOTAL, *LOSS_TERMS, *ACCURACIES, MAP50, MAP50_VOC07, LEARNING_RATE, IMAGES_PER_SECOND,
     SKIPPED_STEPS)
)
_HP_METRIC = "hp_metric"
_MAX_CRC_BYTES = 16 * 2**20  # check payload CRCs of event files up to this size (pure Python CRC)

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------------- runs
@dataclass
class RunInfo:
    """What ``find_runs`` found in one run directory."""

    name: str  # experiment name: the folder(s) between the logs root and the version folder
    version: str  # version folder name, e.g. "version_3"
    path: Path
    has_metrics_csv: bool
    has_events: bool
    has_checkpoints: bool  # any *.ckpt under checkpoints/
    last_checkpoint: Path | None  # checkpoints/last.ckpt
    best_checkpoint: Path | None  # newest checkpoints/best-*.ckpt
    best_checkpoints: tuple[Path, ...]  # every best-*.ckpt, newest first
    modified: float  # latest mtime (seconds since the epoch) of the run's files
    config: dict | None  # config.yaml, parsed with yaml.safe_load; None when absent or unreadable
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        """The run's id in metric frames: ``"<name>/<version>"``."""
        return f"{self.name}/{self.version}" if self.name else self.version

    @property
    def version_number(self) -> int | None:
        """``3`` for ``"version_3"``; None for a custom version name."""
        match = re.fullmatch(r"version_(\d+)", self.version)
        return int(match.group(1)) if match else None


def _looks_like_run(path: Path) -> bool:
    names = {p.name for p in _safe_iterdir(path)}
    if names & {METRICS_FILE, CONFIG_FILE, "hparams.yaml", "checkpoints"}:
        return True
    return any("tfevents" in n for n in names)


def _safe_iterdir(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


def _read_config(path: Path) -> tuple[dict | None, list[str]]:
    if not path.is_file():
        return None, []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError) as err:
        return None, [f"{path}: unreadable YAML ({type(err).__name__}: {err})"]
    if data is None:
        return None, [f"{path}: empty"]
    if not isinstance(data, dict):
        return None, [f"{path}: expected a mapping, got {type(data).__name__}"]
    return data, []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def run_info(run_dir: PathLike, root: PathLike | None = None) -> RunInfo:
    """Describe one run directory (which files it has, checkpoints, config). Never raises."""
    path = Path(run_dir)
    name = path.parent.name
    if root is not None:
        try:
            name = path.parent.relative_to(Path(root)).as_posix()
        except ValueError:
            pass
        name = "" if name == "." else name
    files = _safe_iterdir(path)
    ckpt_dir = path / "checkpoints"
    ckpts = sorted(ckpt_dir.glob("*.ckpt"), key=_mtime, reverse=True) if ckpt_dir.is_dir() else []
    best = tuple(p for p in ckpts if p.name.startswith("best"))
    last = ckpt_dir / "last.ckpt"
    config, warns = _read_config(path / CONFIG_FILE)
    return RunInfo(
        name=name,
        version=path.name,
        path=path,
        has_metrics_csv=(path / METRICS_FILE).is_file(),
        has_events=any("tfevents" in p.name for p in files),
        has_checkpoints=bool(ckpts),
        last_checkpoint=last if last.is_file() else None,
        best_checkpoint=best[0] if best else None,
        best_checkpoints=best,
        modified=max([_mtime(p) for p in files + ckpts] or [_mtime(path)]),
        config=config,
        warnings=tuple(warns),
    )


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def find_runs(root: PathLike = "logs", max_depth: int = 3) -> list[RunInfo]:
    """Every run directory under ``root`` (``<root>/<name>/<version>/``, or shallower), sorted by
    name then version number. A directory is a run if it holds metrics.csv, an events file,
    hparams.yaml, config.yaml or checkpoints/. A missing root gives []. Never raises."""
    root = Path(root)
    found: list[Path] = []
    frontier = [(root, 0)]
    while frontier:
        path, depth = frontier.pop()
        if depth > 0 and _looks_like_run(path):
            found.append(path)
            continue
        if depth < max_depth:
            frontier += [(p, depth + 1) for p in _safe_iterdir(path)
                         if p.is_dir() and not p.name.startswith(".")]
    runs = [run_info(p, root) for p in found]
    return sorted(runs, key=lambda r: (_natural_key(r.name), _natural_key(r.version)))


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
    if key == LEARNING_RATE or key.startswith("lr-") or key.startswith("lr_"):
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
def _empty() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        COLUMNS, ("object", "int64", "Int64", "object", "object", "float64", "object"))})
    return df


def _complete_text(text: str, path: Path, warns: list[str]) -> str:
    """Drop a last line that is still being written (no newline yet)."""
    if not text or text.endswith("\n"):
        return text
    if text.endswith("\r"):
        return text
    cut = text.rfind("\n")
    warns.append(f"{path}: last line incomplete (run still writing?); ignored")
    return text[: cut + 1] if cut >= 0 else ""


def _read_csv_wide(path: Path, warns: list[str]) -> pd.DataFrame | None:
    """metrics.csv -> wide float frame with the file's columns, bad rows skipped and counted."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        warns.append(f"{path}: cannot read ({err})")
        return None
    if not raw.strip():
        warns.append(f"{path}: empty file")
        return None
    text = _complete_text(raw.decode("utf-8", errors="replace"), path, warns)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        warns.append(f"{path}: not parseable as CSV ({err})")
        return None
    rows = [r for r in rows if r]
    if not rows:
        warns.append(f"{path}: no complete header line yet")
        return None
    header, body = [h.strip() for h in rows[0]], rows[1:]
    good = [r for r in body if len(r) == len(header)]
    if len(good) < len(body):
        warns.append(f"{path}: skipped {len(body) - len(good)} malformed row(s) "
                     f"(expected {len(header)} fields)")
    strings = pd.DataFrame(good, columns=header, dtype=object)
    strings = strings.loc[:, ~strings.columns.duplicated()]
    wide = strings.apply(pd.to_numeric, errors="coerce").astype("float64")
    bad_cells = int((wide.isna() & strings.apply(lambda c: c.str.strip() != "")).to_numpy().sum())
    if bad_cells:
        warns.append(f"{path}: {bad_cells} non-numeric value(s) ignored")
    return wide


def _wide_to_tidy(wide: pd.DataFrame, run: str, source: str, path: Path,
                  warns: list[str]) -> pd.DataFrame:
    wide = wide.copy()
    if "step" not in wide.columns:
        warns.append(f"{path}: no 'step' column; using the row number as step")
        wide["step"] = np.arange(len(wide), dtype="float64")
    if "epoch" not in wide.columns:
        wide["epoch"] = np.nan
    missing_step = wide["step"].isna()
    if missing_step.any():
        warns.append(f"{path}: dropped {int(missing_step.sum())} row(s) without a step")
        wide = wide[~missing_step]
    value_cols = [c for c in wide.columns if c not in ("step", "epoch")]
    if not value_cols or wide.empty:
        return _empty()
    long = wide.melt(id_vars=["step", "epoch"], value_vars=value_cols,
                     var_name="raw", value_name="value").dropna(subset=["value"])
    return _finish(long, run, source)


def _finish(long: pd.DataFrame, run: str, source: str) -> pd.DataFrame:
    """raw-name long frame (step, epoch, raw, value) -> tidy COLUMNS, last value per (raw, step)."""
    if long.empty:
        return _empty()
    long = long.drop_duplicates(subset=["raw", "step"], keep="last")
    names = set(long["raw"].unique())
    mapping = {n: normalise_metric(n, names) for n in names}
    out = pd.DataFrame({
        "run": run,
        "step": long["step"].astype("int64").to_numpy(),
        "epoch": pd.array(np.rint(long["epoch"].to_numpy(dtype="float64")), dtype="Int64"),
        "metric": long["raw"].map(lambda n: mapping[n][0]).to_numpy(),
        "kind": long["raw"].map(lambda n: mapping[n][1]).to_numpy(),
        "value": long["value"].astype("float64").to_numpy(),
        "source": source,
    })
    return out[list(COLUMNS)]


# ----------------------------------------------------------------------------------- events
def _event_file_problem(path: Path) -> str | None:
    """Walk the TFRecord framing (u64 length, u32 masked CRC, payload, u32 masked CRC) of an
    events file; describe the first problem, or None when every record is whole and intact."""
    try:
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    except ImportError:  # internal helper moved: check the framing only
        masked_crc32c = None
    try:
        data = path.read_bytes()
    except OSError as err:
        return f"{path}: cannot read ({err})"
    check_payload = len(data) <= _MAX_CRC_BYTES
    pos = 0
    while pos < len(data):
        if len(data) - pos < 12:
            return f"{path}: ends inside a record header at byte {pos} (still writing?)"
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked_crc32c is not None and masked_crc32c(header) != header_crc:
            return f"{path}: corrupt record header at byte {pos}; the rest of the file is unreadable"
        end = pos + 12 + length + 4
        if end > len(data):
            return f"{path}: ends inside a record at byte {pos} (still writing?)"
        if masked_crc32c is not None and check_payload:
            (payload_crc,) = struct.unpack("<I", data[end - 4:end])
            if masked_crc32c(data[pos + 12:end - 4]) != payload_crc:
                return f"{path}: corrupt record at byte {pos}; the rest of the file is unreadable"
        pos = end
    return None


def _read_events(run_dir: Path, run: str, warns: list[str]) -> pd.DataFrame:
    """Scalars of every events file in ``run_dir`` -> tidy frame (source "tensorboard")."""
    files = sorted(run_dir.glob(EVENTS_PATTERN))
    if not files:
        return _empty()
    for f in files:
        problem = _event_file_problem(f)
        if problem:
            warns.append(problem)
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        tags = list(acc.Tags().get("scalars", []))
        scalars = {t: acc.Scalars(t) for t in tags}
    except Exception as err:  # the reader's errors are not a stable API; report, don't raise
        warns.append(f"{run_dir}: TensorBoard events unreadable ({type(err).__name__}: {err})")
        return _empty()
    frames = [pd.DataFrame({"step": [e.step for e in events], "raw": tag,
                            "value": [e.value for e in events]})
              for tag, events in scalars.items() if tag != "epoch" and events]
    if not frames:
        return _empty()
    long = pd.concat(frames, ignore_index=True)
    # TensorBoardLogger(default_hp_metric=True) writes a placeholder hp_metric of -1: not a metric
    long = long[~((long["raw"] == _HP_METRIC) & (long["value"] == -1))]
    long["epoch"] = np.nan
    epochs = scalars.get("epoch", [])
    if epochs:
        per_step = (pd.DataFrame({"step": [e.step for e in epochs],
                                  "epoch_at": [e.value for e in epochs]})
                    .drop_duplicates("step", keep="last").sort_values("step"))
        long = long.sort_values("step", kind="stable")
        long = pd.merge_asof(long, per_step, on="step", direction="backward")
        long["epoch"] = long.pop("epoch_at")
    return _finish(long, run, "tensorboard")


# ----------------------------------------------------------------------------------- public
def run_label(run_dir: PathLike) -> str:
    """``"logs/demo/version_0" -> "demo/version_0"`` (the run id used in metric frames)."""
    path = Path(run_dir)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


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
        wide = _read_csv_wide(csv_path, warns)
        if wide is not None:
            csv_frame = _wide_to_tidy(wide, run, "csv", csv_path, warns)
    has_events = any(path.glob(EVENTS_PATTERN))
    tb_frame = _read_events(path, run, warns) if use_events else _empty()
    if not csv_path.is_file() and not has_events:
        warns.append(f"{path}: no metrics.csv and no TensorBoard events")
    if tb_frame.empty:
        frame = csv_frame
    elif csv_frame.empty:
        frame = tb_frame
    else:
        key = ["metric", "kind", "step"]
        seen = pd.MultiIndex.from_frame(csv_frame[key])
        extra = tb_frame[~pd.MultiIndex.from_frame(tb_frame[key]).isin(seen)]
        frame = pd.concat([csv_frame, extra], ignore_index=True) if len(extra) else csv_frame
    frame = frame.sort_values(["metric", "kind", "step"], kind="stable").reset_index(drop=True)
    return frame


def read_runs(run_dirs: Sequence[PathLike | RunInfo], warnings: list[str] | None = None,
              use_events: bool = True) -> pd.DataFrame:
    """``read_metrics`` of several runs, concatenated (tidy columns). Never raises."""
    warns: list[str] = []
    frames = [read_metrics(r, warns, use_events) for r in run_dirs]
    frames = [f for f in frames if len(f)]
    frame = pd.concat(frames, ignore_index=True) if frames else _empty()
    frame.attrs = {"warnings": list(warns)}
    if warnings is not None:
        warnings.extend(warns)
    return frame


def epoch_table(df: pd.DataFrame) -> pd.DataFrame:
    """Tidy frame -> one row per (run, epoch): columns run, epoch, step (last step seen in the
    epoch) and one column per metric. A metric's cell is its epoch aggregate when Lightning logged
    one ("epoch"/"plain" kinds), else its last per-step value of the epoch. Rows without an epoch
    are left out."""
    df = df[df["epoch"].notna()]
    if df.empty:
        return pd.DataFrame(columns=["run", "epoch", "step"])
    df = df.assign(prio=(df["kind"] != "step").astype(int))
    best = (df.sort_values(["prio", "step"], kind="stable")
              .groupby(["run", "epoch", "metric"], sort=False).tail(1))
    table = best.pivot(index=["run", "epoch"], columns="metric", values="value")
    steps = df.groupby(["run", "epoch"])["step"].max().rename("step")
    table = table.join(steps).reset_index()
    order = [m for names in group_metrics(table.columns.drop(["run", "epoch", "step"])).values()
             for m in names]
    table = table[["run", "epoch", "step", *order]]
    table.columns.name = None
    table["epoch"] = table["epoch"].astype("int64")
    return table.sort_values(["run", "epoch"]).reset_index(drop=True)


def run_summary(df: pd.DataFrame, monitor: str = metric_key("val", MAP50), mode: str = "max") -> pd.DataFrame:
    """One row per run: epochs seen, last epoch and step, and the best value of ``monitor``
    (``mode`` "max" or "min") with its epoch, plus its last value; NaN when never logged."""
    table = epoch_table(df)
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
        for _, index in out.groupby(["run", "metric", "kind"], sort=False).groups.items():
            out.loc[index, "smoothed"] = smooth(out.loc[index, "value"].to_numpy(), weight)
    return out
