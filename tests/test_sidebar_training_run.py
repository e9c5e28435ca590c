"""Issue 21, item 18: while a run is training, the sidebar does not silently pick its partial
``best-epoch=...`` checkpoint; it says which checkpoint is in use and that its run is still training.

A run is "still training" when its progress.json (written by the trainer's ProgressFile callback)
says "training" and names a live process: here this test's own pid; a dead pid (a run killed
without a word) or "finished" is not training.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from yolo.weights import save_weights
from yolo.model import YOLOv3
from yolo.progress import write_progress
from yolo.runs import checkpoint_run, still_training

REPO = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_still_training_reads_the_progress_file_and_the_process(tmp_path):
    import os

    run = tmp_path / "run" / "version_0"
    assert still_training(run) is None  # no progress.json
    write_progress(run / "progress.json", {"pid": os.getpid(), "state": "training", "epoch": 2, "epochs": 9})
    assert still_training(run)["epoch"] == 2
    write_progress(run / "progress.json", {"pid": dead_pid(), "state": "training"})
    assert still_training(run) is None  # killed without a word: its pid is gone
    write_progress(run / "progress.json", {"pid": os.getpid(), "state": "finished"})
    assert still_training(run) is None
    for pid in ("12", True, -1, 2**80, None):
        write_progress(run / "progress.json", {"pid": pid, "state": "training"})
        assert still_training(run) is None
    (run / "progress.json").write_text("{not json")
    assert still_training(run) is None
    assert checkpoint_run(run / "checkpoints" / "best-epoch=001.ckpt") == run
    assert checkpoint_run(tmp_path / "model.pt") is None


@pytest.fixture
def logs(tmp_path, monkeypatch) -> Path:
    """Two runs: old/version_0 finished with its best checkpoint; new/version_0, newer, still
    training (progress.json names this live process) with a best-so-far checkpoint."""
    import os
    import time

    logs = tmp_path / "logs"
    model = YOLOv3(20, 0.25).eval()
    finished = logs / "old" / "version_0"
    save_weights(model, finished / "checkpoints" / "best-epoch=004.ckpt")
    write_progress(finished / "progress.json", {"pid": os.getpid(), "state": "finished", "epoch": 4, "epochs": 5})
    time.sleep(0.05)
    training = logs / "new" / "version_0"
    save_weights(model, training / "checkpoints" / "best-epoch=001.ckpt")
    write_progress(training / "progress.json", {"pid": os.getpid(), "state": "training", "epoch": 2, "epochs": 10})
    os.utime(training / "checkpoints" / "best-epoch=001.ckpt", (time.time() + 60, time.time() + 60))  # newest
    for name in ("YOLO_DATA", "YOLO_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    monkeypatch.setenv("YOLO_DEMO", str(tmp_path / "demo"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    return logs


def test_sidebar_prefers_a_finished_run_and_names_a_training_one(logs):
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()  # a hang guard only
    assert not at.exception, [e.message for e in at.exception]
    box = at.selectbox(key="checkpoint_choice")
    assert list(box.options)[:2] == ["new/version_0 · best-epoch=001.ckpt · still training",
                                     "old/version_0 · best-epoch=004.ckpt"]  # newest run first, marked
    assert box.value == "old/version_0 · best-epoch=004.ckpt"  # not the partial best of the training run
    assert not [w for w in at.sidebar.warning if "still training" in w.value]

    box.set_value("new/version_0 · best-epoch=001.ckpt").run()
    assert not at.exception, [e.message for e in at.exception]
    notes = [w.value for w in at.sidebar.warning if "still training" in w.value]
    assert len(notes) == 1 and "best-epoch=001.ckpt" in notes[0] and "epoch 3 of 10" in notes[0]


def test_only_a_training_run_is_picked_and_said(logs):
    import shutil

    shutil.rmtree(logs / "old")
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="checkpoint_choice").value == "new/version_0 · best-epoch=001.ckpt"
    assert any("still training" in w.value and "best-epoch=001.ckpt" in w.value for w in at.sidebar.warning)
