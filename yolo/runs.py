"""Run folders: ``logs/<name>/version_<n>/`` with metrics.csv, TensorBoard events, config.yaml,
checkpoints/last.ckpt and the best by validation mAP. Pure file-system helpers, no Lightning."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import yaml

VERSION_RE = re.compile(r"^version_(\d+)$")


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
            last = run_dir(root, name, version) / "checkpoints" / "last.ckpt"
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
    match = VERSION_RE.match(folder.parent.name) if folder.name == "checkpoints" else None
    if match is None:
        return None
    version = int(match.group(1))
    mine = (run_dir(root, name, version) / "checkpoints").expanduser()
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
    path = directory / "config.yaml"
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
