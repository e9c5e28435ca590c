"""The demo training as a background process that outlives page reruns and browser reloads.

The dashboard starts exactly what a user would type (``python train.py --preset demo``) as a
child process in its own process group, with its output going to a log file. The job's state
lives on disk under ``<logs>/.dashboard/`` (``find_runs`` skips dot folders):

    train.json   {"pid", "command", "started", "epochs", "log"}   written when the job starts
    train.log    the process's stdout and stderr (shown as the job's output)
    train.rc     the exit code, once this server has seen the process end

Progress comes from the run's ``progress.json`` (``yolo.progress``), which the trainer's
``ProgressFile`` callback writes atomically: the file under ``<logs>/*/version_*/`` whose ``pid``
is the job's. It holds the steps done and planned, the epoch, and the time left estimated from
measured epoch times (``yolo.progress.time_left``). Nothing here imports streamlit, so the
functions are tested directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from yolo.progress import FILE_NAME, fraction_done, read_progress

from yolo.filelimits import read_json_file

REPO = Path(__file__).resolve().parents[1]
JOB_DIR = ".dashboard"
STATE_FILE, LOG_FILE, RC_FILE = "train.json", "train.log", "train.rc"
DEMO_EPOCHS_FALLBACK = 10

# Our own children, so poll() can reap them (a finished child stays a zombie until waited for).
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass
class JobStatus:
    """What the page shows about the background training."""

    state: str  # "none" (never started here), "running", "finished", "failed" or "stopped"
    progress: float = 0.0  # 0..1
    message: str = ""  # e.g. "epoch 4 of 12, 35% through it"
    pid: int | None = None
    returncode: int | None = None
    started: float | None = None
    log_tail: str = ""
    run_folder: str | None = None
    seconds_left: float | None = None  # estimated from measured epoch times; None before one ends

    @property
    def running(self) -> bool:
        return self.state == "running"


def job_dir(logs_root: str | Path) -> Path:
    return Path(logs_root) / JOB_DIR


def demo_epochs() -> int:
    """Epochs of the demo preset (read from the trainer so the bar's total cannot drift)."""
    try:
        from yolo.trainer import PRESETS

        return int(PRESETS["demo"].get("epochs", DEMO_EPOCHS_FALLBACK))
    except Exception:  # noqa: BLE001  (a trainer that fails to import must not break the Home page)
        return DEMO_EPOCHS_FALLBACK


def demo_size() -> int:
    """Training image size of the demo preset (its largest multi-scale size)."""
    try:
        from yolo.trainer import PRESETS

        return int(PRESETS["demo"].get("max_size", 128))
    except Exception:  # noqa: BLE001
        return 128


def demo_command(logs_root: str | Path, data_root: str | Path | None = None) -> list[str]:
    """``python train.py --preset demo --log-dir LOGS [--data DEMO]``, with this interpreter."""
    command = [sys.executable, str(REPO / "train.py"), "--preset", "demo", "--log-dir", str(logs_root)]
    if data_root is not None:
        command += ["--data", str(data_root)]
    return command


def train_command(data_root: str | Path) -> str:
    """The shell command that trains on a real dataset with the GPU preset (``--preset voc``),
    naming the folder's own train/val splits when they are not VOC07+12's (e.g. one VOC year, or
    the Kaggle layout). Raises ``DataLayoutError`` for a folder without a train split."""
    import shlex

    parts = ["python", "train.py", "--preset", "voc", "--data", shlex.quote(str(data_root))]
    return " ".join(parts + split_flags(data_root))


def split_flags(data_root: str | Path) -> list[str]:
    """``--train-sets`` / ``--val-sets`` for a folder whose splits are not VOC07+12's defaults."""
    from yolo.data.layout import default_splits
    from yolo.trainer import TrainConfig

    splits, config, parts = default_splits(data_root), TrainConfig(), []
    if list(splits["train"]) != config.train_sets:
        parts += ["--train-sets", *splits["train"]]
    if splits["val"] and list(splits["val"]) != config.val_sets:
        parts += ["--val-sets", *splits["val"]]
    return parts


def train_specs(data_root: str | Path) -> list[str]:
    """The split specs the training commands train on (``default_splits``)."""
    from yolo.data.layout import default_splits

    return list(default_splits(data_root)["train"])


def cpu_train_command(data_root: str | Path, images: int, cores: int | None = None, minutes: float = 60.0):
    """(command, ``yolo.cpu.TrainPlan``) for training on this machine's CPU in about ``minutes``."""
    from yolo.cpu import cpu_train_plan, usable_cores

    plan = cpu_train_plan(cores or usable_cores(), images, minutes)
    return plan.command(str(data_root), split_flags(data_root)), plan


def start(logs_root: str | Path, command: list[str], epochs: int | None = None) -> JobStatus:
    """Start ``command`` in the background (cwd = the repository); refuses if one is running."""
    current = status(logs_root)
    if current.running:
        raise RuntimeError(f"a training job is already running (pid {current.pid})")
    folder = job_dir(logs_root)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (RC_FILE, "stopped"):
        (folder / stale).unlink(missing_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(folder / LOG_FILE, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    _CHILDREN[proc.pid] = proc
    state = {"pid": proc.pid, "command": command, "started": time.time(),
             "epochs": int(epochs or demo_epochs()), "log": str(folder / LOG_FILE)}
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / STATE_FILE)
    return status(logs_root)


def _read_state(logs_root: str | Path) -> dict | None:
    try:
        state = read_json_file(job_dir(logs_root) / STATE_FILE, 1 << 20, "job state")  # bounded, strict
        return state if isinstance(state, dict) and isinstance(state.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _returncode(pid: int, folder: Path) -> tuple[bool, int | None]:
    """(alive, exit code if known) of the job's process."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        code = proc.poll()
        if code is None:
            return True, None
        (folder / RC_FILE).write_text(str(code))
        return False, code
    try:
        code = int((folder / RC_FILE).read_text().strip())
        return False, code
    except (OSError, ValueError):
        pass
    # Started by an earlier server process: look the pid up, and make sure it is still ours
    # (a recycled pid belongs to some other program, whose command line lacks train.py).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False, None
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return (not zombie and b"train.py" in cmdline), None


def _tail(path: Path, limit: int = 64_000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def find_progress(logs_root: str | Path, pid: int, since: float = 0.0) -> dict | None:
    """The progress record of process ``pid`` among the runs under ``logs_root`` (only files
    changed since ``since``, a ``time.time()``), or None while it has written none. Never raises."""
    for path in Path(logs_root).glob(f"*/version_*/{FILE_NAME}"):
        try:
            if path.stat().st_mtime < since:
                continue
        except OSError:
            continue
        record = read_progress(path)
        if record is not None and record.get("pid") == pid:
            return record
    return None


def describe(record: dict | None, epochs: int) -> tuple[float, str]:
    """(fraction done, a short message) from a progress record (None: not started yet); fields
    of the wrong type are ignored, never raised on."""
    if record is None:
        return 0.0, "starting: indexing the data and building the model"
    total = _count(record.get("epochs")) or epochs
    epoch = min(_count(record.get("epoch")), max(total - 1, 0))
    batch, batches = _count(record.get("batch")), _count(record.get("batches"))
    message = f"epoch {epoch + 1} of {total}"
    if batches:
        message += f", {100 * min(batch, batches) // batches}% through it"
    return fraction_done(record), message


def _count(value) -> int:
    """A non-negative int from a JSON value; 0 for anything else."""
    return max(int(value), 0) if isinstance(value, (int, float)) and value == value and abs(value) < 1e15 else 0


def _duration(seconds: float) -> str:
    """``75 -> "about 1 min 15 s"``, short and rounded (an estimate)."""
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    minutes, rest = divmod(round(seconds / 15) * 15, 60)
    return f"about {minutes:.0f} min" + (f" {rest:.0f} s" if rest else "")


def status(logs_root: str | Path) -> JobStatus:
    """The job's state, progress and the last lines of its output. Never raises."""
    state = _read_state(logs_root)
    if state is None:
        return JobStatus("none")
    folder = job_dir(logs_root)
    alive, code = _returncode(state["pid"], folder)
    text = _tail(Path(state.get("log") or folder / LOG_FILE))
    record = find_progress(logs_root, state["pid"], float(state.get("started") or 0) - 1)
    fraction, message = describe(record, int(state.get("epochs") or DEMO_EPOCHS_FALLBACK))
    lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines() if line.strip()]
    tail = "\n".join(lines[-15:])
    run_folder = record.get("run_folder") if record else None
    finished = bool(record) and record.get("state") == "finished"
    common = {"pid": state["pid"], "started": state.get("started"), "log_tail": tail, "run_folder": run_folder}
    if alive:
        left = record.get("eta") if record else None
        left = float(left) if isinstance(left, (int, float)) else None
        if left is not None:
            message += f"; {_duration(left)} left"
        return JobStatus("running", fraction, message, returncode=None, seconds_left=left, **common)
    stopped = (folder / "stopped").exists()
    if code == 0 or (code is None and finished):
        return JobStatus("finished", 1.0, "training finished", returncode=code, **common)
    if stopped:
        return JobStatus("stopped", fraction, "stopped before the end", returncode=code, **common)
    why = (f"it stopped with exit code {code}" if code is not None else
           "it ended before finishing; an earlier dashboard process started it, so its exit code is unknown")
    return JobStatus("failed", fraction, why, returncode=code, **common)


def stop(logs_root: str | Path) -> bool:
    """Stop the running job (SIGTERM to its process group, which this module created)."""
    current = status(logs_root)
    if not current.running or current.pid is None:
        return False
    (job_dir(logs_root) / "stopped").write_text(str(time.time()))
    try:
        os.killpg(current.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    proc = _CHILDREN.get(current.pid)
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(current.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return True


def forget(logs_root: str | Path) -> None:
    """Clear a finished/failed job's record (the log stays until the next start)."""
    if not status(logs_root).running:
        for name in (STATE_FILE, RC_FILE, "stopped"):
            (job_dir(logs_root) / name).unlink(missing_ok=True)
