"""Run folders, known in one place: ``logs/<name>/version_<n>/`` holding ``metrics.csv``
(CSVLogger), ``events.out.tfevents.*`` (TensorBoardLogger), ``hparams.yaml``, ``config.yaml`` (the
resolved run config) and ``checkpoints/`` with ``last.ckpt`` and ``best-*.ckpt`` (the best by
validation mAP). The layout's names, version numbering and claiming, resuming, and discovery of
the runs under a logs root (``find_runs`` / ``run_info``). Pure file-system helpers, no Lightning;
reading the metrics into frames is ``yolo.logs``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import yaml

from yolo.filelimits import FileLimitError, read_yaml_file

VERSION_RE = re.compile(r"^version_(\d+)$")
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
MAX_CONFIG_BYTES = 1 << 20  # a run's config.yaml is ~3 KB; larger ones are not read (yolo.filelimits)
HPARAMS_FILE = "hparams.yaml"
EVENTS_PATTERN = "events.out.tfevents.*"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_PREFIX = "best"  # best-<epoch>.ckpt

PathLike = Union[str, os.PathLike]


def versions(root: str | Path, name: str) -> list[int]:
    """Existing version numbers of run ``name`` under ``root``, ascending."""
    base = Path(root) / name
    if not base.is_dir():
        return []
    found = [VERSION_RE.match(p.name) for p in base.iterdir() if p.is_dir()]
    return sorted(int(m.group(1)) for m in found if m)


def next_version(root: str | Path, name: str) -> int:
    existing = versions(root, name)
    return existing[-1] + 1 if existing else 0


def run_dir(root: str | Path, name: str, version: int) -> Path:
    return Path(root) / name / f"version_{version}"


def resolve_resume(root: str | Path, name: str, resume: str | None) -> tuple[Path | None, int]:
    """Which checkpoint to resume from and which version folder to keep writing.

    ``resume`` is None (a new version), "auto" (the newest version of ``name`` that has a
    checkpoints/last.ckpt; a new version when there is none) or a checkpoint path. A path is
    continued in its own version folder only when it IS that folder's checkpoint, i.e. it lies
    in ``<root>/<name>/version_<n>/checkpoints/`` (``own_version``); a checkpoint from anywhere
    else (another --log-dir, a copied or backed-up run, another run name) starts a new version,
    so no other run's metrics.csv or last.ckpt is ever touched.
    """
    if not resume:
        return None, next_version(root, name)
    if resume == "auto":
        for version in reversed(versions(root, name)):
            last = run_dir(root, name, version) / CHECKPOINTS_DIR / LAST_CHECKPOINT
            if last.is_file():
                return last, version
        return None, next_version(root, name)
    path = Path(resume).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path} (use --resume auto to pick "
                                f"the newest last.ckpt of run {name!r})")
    version = own_version(path, root, name)
    return path, next_version(root, name) if version is None else version


def own_version(checkpoint: str | Path, root: str | Path, name: str) -> int | None:
    """n when ``checkpoint`` is a file of ``<root>/<name>/version_<n>/checkpoints/`` (compared as
    resolved paths, so links and ``..`` cannot fake it), else None."""
    folder = Path(checkpoint).expanduser().resolve().parent
    match = VERSION_RE.match(folder.parent.name) if folder.name == CHECKPOINTS_DIR else None
    if match is None:
        return None
    version = int(match.group(1))
    mine = (run_dir(root, name, version) / CHECKPOINTS_DIR).expanduser()
    return version if mine.is_dir() and mine.resolve() == folder else None


def claim_version(root: str | Path, name: str, version: int) -> int:
    """Create ``version_<version>`` of run ``name`` (or the next free one) and return its number.

    ``mkdir`` without ``exist_ok`` is atomic, so two runs started at once never share a folder.
    """
    while True:
        folder = run_dir(root, name, version)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
            return version
        except FileExistsError:
            version += 1


def write_config(directory: str | Path, config: dict) -> Path:
    """The run's full resolved configuration as ``config.yaml`` (plain YAML)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)
    return path


def truncate_metrics(csv_path: str | Path, after_step: int) -> int:
    """Drop the rows of a Lightning metrics.csv logged after ``after_step`` (and any torn last
    line), so a resumed run continues the file without repeating steps. Returns rows dropped."""
    path = Path(csv_path)
    if not path.is_file():
        return 0
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a line torn by the kill
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    if "step" not in header:
        return 0
    col = header.index("step")
    keep = [r for r in body if len(r) == len(header) and _as_int(r[col]) <= after_step]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(keep)
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_text(out.getvalue())
    os.replace(tmp, path)
    return len(body) - len(keep)


def _as_int(value: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        return -1


# ------------------------------------------------------------------------------ discovery
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


def _looks_like_run(path: Path) -> bool:
    names = {p.name for p in _safe_iterdir(path)}
    if names & {METRICS_FILE, CONFIG_FILE, HPARAMS_FILE, CHECKPOINTS_DIR}:
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
        data = read_yaml_file(path, MAX_CONFIG_BYTES, "run config")
    except FileLimitError as err:
        return None, [f"{path}: unreadable YAML ({err})"]
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
    ckpt_dir = path / CHECKPOINTS_DIR
    ckpts = sorted(ckpt_dir.glob("*.ckpt"), key=_mtime, reverse=True) if ckpt_dir.is_dir() else []
    best = tuple(p for p in ckpts if p.name.startswith(BEST_PREFIX))
    last = ckpt_dir / LAST_CHECKPOINT
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


def run_label(run_dir: PathLike) -> str:
    """``"logs/demo/version_0" -> "demo/version_0"`` (the run id used in metric frames)."""
    path = Path(run_dir)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (signal 0 probes without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def still_training(run_dir: PathLike) -> dict | None:
    """The progress record of a run that is still training, else None. Never raises.

    A run is training while its ``progress.json`` (written by ``yolo.callbacks.ProgressFile``,
    format in ``yolo.progress``) says ``"state": "training"`` and the process it names (``pid``)
    is alive on this machine; a run killed without a word (SIGKILL, a crash) leaves "training"
    behind, and its dead pid tells it apart. Its ``best-*.ckpt`` are then the best SO FAR.
    """
    from yolo.progress import FILE_NAME, read_progress

    record = read_progress(Path(run_dir) / FILE_NAME)
    if not record or record.get("state") != "training":
        return None
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not _alive(pid):
        return None
    return record


def checkpoint_run(checkpoint: PathLike) -> Path | None:
    """The run folder a checkpoint lies in (``<run>/checkpoints/<file>``), else None."""
    path = Path(checkpoint)
    return path.parent.parent if path.parent.name == CHECKPOINTS_DIR else None
