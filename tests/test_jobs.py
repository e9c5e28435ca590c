"""dashboard/jobs.py and yolo/progress.py: the background training's progress, read from the
progress.json that the trainer's ProgressFile callback writes, and its time-left estimate."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
import jobs  # noqa: E402

sys.path.pop(0)

from test_train import tiny_args, tiny_demo  # noqa: E402,F401  (a fixture used by name)
from yolo import progress  # noqa: E402


def record(epoch_seconds: list[float], epochs: int, now: float, batches: int = 5, startup: float = 8.0,
           pid: int = 0) -> dict:
    """The progress.json of a run whose epoch e takes ``epoch_seconds[e]`` seconds, as
    ``ProgressFile`` writes it ``now`` seconds after the start."""
    t, done = startup, []
    for seconds in epoch_seconds:
        if t + seconds > now:
            break
        t += seconds
        done.append(seconds)
    current = max(now - t, 0.0)
    within = min(current / epoch_seconds[len(done)], 1.0) if len(done) < len(epoch_seconds) else 1.0
    batch = int(batches * within)
    return {"pid": pid, "run_folder": "logs/demo/version_0", "state": "training", "epoch": len(done),
            "epochs": epochs, "batch": batch, "batches": batches, "step": len(done) * batches + batch,
            "total_steps": epochs * batches, "elapsed": now, "epoch_seconds": done,
            "eta": progress.time_left(done, epochs, current), "metrics": {}}


def test_no_estimate_before_the_first_epoch_ends():
    assert record([20.0] * 5, 5, now=8 + 15)["eta"] is None
    assert progress.time_left([], 5, 0.0) is None


def test_estimate_is_remaining_epochs_times_the_last_epoch():
    # epochs of 30 s, 40 s, then 40 s each; seen 10 s into the third epoch: 3 epochs left of 5
    assert record([30.0, 40.0, 40.0, 40.0, 40.0], 5, now=8 + 30 + 40 + 10)["eta"] == pytest.approx(3 * 40 - 10)
    assert record([30.0] * 3, 3, now=1000)["eta"] == 0.0


@pytest.mark.parametrize("first", [1.0, 1.25])
def test_estimate_after_the_first_epoch_within_30_percent(first):
    """A first epoch up to 25% slower than the rest (worker start-up, first batches): the
    estimate made when it ends is within 30% of the time really left."""
    durations = [12.0 * first] + [12.0] * 11
    end_of_first = 8 + durations[0]
    truth = sum(durations[1:]) - 0.01
    assert abs(record(durations, 12, now=end_of_first + 0.01)["eta"] - truth) <= 0.3 * truth


def test_status_message_says_the_time_left(tmp_path):
    run = tmp_path / "demo" / "version_0"
    script = ("import os, sys, time\n"
              "from yolo.progress import write_progress\n"
              f"record = {record([20.0] * 4, 4, now=8 + 20 + 5)!r}\n"
              "record['pid'] = os.getpid()\n"
              f"write_progress({str(run / 'progress.json')!r}, record)\n"
              "time.sleep(600)\n")
    jobs.start(tmp_path, [sys.executable, "-c", script], epochs=4)
    try:
        status = jobs.status(tmp_path)
        while status.seconds_left is None:  # until the child has written its record (or ended)
            assert status.running, status.log_tail
            time.sleep(0.05)
            status = jobs.status(tmp_path)
        assert status.running and status.seconds_left == pytest.approx(3 * 20 - 5)
        assert "about 55 s left" in status.message
    finally:
        jobs.stop(tmp_path)


def test_a_missing_partial_or_odd_progress_file_is_no_progress(tmp_path):
    """The reader never raises: nothing written yet, a file cut short, JSON of another shape."""
    path = tmp_path / "demo" / "version_0" / progress.FILE_NAME
    assert progress.read_progress(path) is None and jobs.find_progress(tmp_path, 7) is None
    path.parent.mkdir(parents=True)
    for text in ('{"pid": 7, "step": 3, "total_st', "", "[1, 2]", "null"):
        path.write_text(text)
        assert progress.read_progress(path) is None and jobs.find_progress(tmp_path, 7) is None
    path.write_text('{"pid": 7, "epoch": "two", "batch": null, "batches": -1, "step": "x", "total_steps": 0}')
    assert jobs.describe(jobs.find_progress(tmp_path, 7), 12) == (0.0, "epoch 1 of 12")
    assert jobs.find_progress(tmp_path, 8) is None, "another process's run"
    assert jobs.describe(None, 12)[0] == 0.0


def test_progress_file_of_a_tiny_fit_matches_the_trainer(tiny_demo, tmp_path, monkeypatch):
    """``ProgressFile`` in a real fit (5 epochs of 2 steps): every epoch-end record's step is the
    trainer's global step; the last says finished, 10 of 10 steps, five measured epochs; the file
    is replaced whole (no temporary file left). The same fit's metrics.csv has the learning rate
    from ``LearningRateMonitor`` (logged every 10 steps, as before) under the scheduler's name."""
    import os

    import pandas as pd

    import yolo.callbacks
    from train import main
    from yolo.config import LEARNING_RATE, metric_key
    from yolo.logs import group_metrics

    seen = []
    write = yolo.callbacks.write_progress

    def recording(path, rec):
        seen.append(dict(rec))
        write(path, rec)

    monkeypatch.setattr(yolo.callbacks, "write_progress", recording)
    logs = tmp_path / "logs"
    main(tiny_args(tiny_demo, logs, "--epochs", "5", "--name", "p"))
    run = logs / "p" / "version_0"
    last = progress.read_progress(run / progress.FILE_NAME)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last == seen[-1] and last["state"] == "finished" and last["pid"] == os.getpid()
    assert last["step"] == last["total_steps"] == ckpt["global_step"] == 10
    assert last["epochs"] == 5 and last["batches"] == 2 and len(last["epoch_seconds"]) == 5
    assert last["run_folder"] == str(run) and last["eta"] == 0.0
    ends = [r for r in seen if r["batch"] == 2 and r["state"] == "training"]
    assert [r["step"] for r in ends] == [2, 4, 6, 8, 10] and [r["epoch"] for r in ends] == [0, 1, 2, 3, 4]
    assert [len(r["epoch_seconds"]) for r in ends] == [1, 2, 3, 4, 5] and ends[0]["eta"] is not None
    assert any(k.startswith("train/") for k in last["metrics"])
    assert sorted(p.name for p in run.iterdir() if "progress" in p.name) == [progress.FILE_NAME]
    assert jobs.describe(last, 5) == (1.0, "epoch 5 of 5, 100% through it")
    lr = f"{metric_key('train', LEARNING_RATE)}/pg1"  # weights; pg2: norms and biases, same schedule
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics.dropna(subset=[lr])["step"].tolist() == [9] and (metrics[lr].dropna() > 0).all()
    groups = group_metrics(metrics.columns.drop(["epoch", "step"]))["lr"]  # one key per parameter group
    assert groups[:2] == [lr, lr[:-1] + "2"] and all(k.startswith(lr[:-1]) for k in groups)


def _voc_year(root: Path, year: str, splits: list[str]) -> None:
    folder = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for split in splits:
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("000001\n")


def test_train_command_for_a_chosen_dataset(tmp_path):
    full = tmp_path / "voc"
    _voc_year(full, "2007", ["trainval", "test"])
    _voc_year(full, "2012", ["trainval"])
    assert jobs.train_command(full) == f"python train.py --preset voc --data {full}"
    one_year = tmp_path / "my data"
    _voc_year(one_year, "2012", ["train", "val"])
    assert jobs.train_command(one_year) == (f"python train.py --preset voc --data '{one_year}' "
                                            "--train-sets train --val-sets val")
