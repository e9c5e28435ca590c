"""dashboard/jobs.py: the time-left estimate of the background training, driven by logs written
the way Lightning's progress bar and the trainer's epoch line write them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
import jobs  # noqa: E402

sys.path.pop(0)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def lightning_log(durations: list[float], epochs: int, now: float, updates: int = 4,
                  startup: float = 8.0) -> str:
    """The output of a run whose epoch e takes ``durations[e]`` seconds, as seen ``now`` seconds
    after the start: bar updates (``\\r``-separated, elapsed time of the epoch) ``updates`` times
    per epoch, and the trainer's ``epoch k/N |`` line when the next epoch starts."""
    text, t = "Sanity Checking DataLoader 0: 100%|##| 2/2 [00:01<00:00]\n", startup
    for epoch, seconds in enumerate(durations):
        for k in range(1, updates + 1):
            at = t + seconds * k / updates
            if at > now:
                return text
            text += (f"\rEpoch {epoch}: {100 * k // updates:3d}%|###| {5 * k}/{5 * updates} "
                     f"[{_clock(seconds * k / updates)}<00:10, 0.5it/s, train/loss_step=3.0]")
        t += seconds
        if t > now:
            return text
        text += f"\nepoch {epoch + 1}/{epochs} | train loss 3.0 class 50.0% | val loss 3.1 mAP@0.5 0.5\n"
    return text


def test_no_estimate_before_the_first_epoch_ends():
    text = lightning_log([20.0] * 5, 5, now=8 + 15)
    assert jobs.time_left(text, 5) is None
    assert jobs.time_left("", 5) is None


def test_estimate_is_remaining_epochs_times_the_last_epoch():
    # epochs of 30 s, 40 s, then 40 s each; seen 10 s into the third epoch: 3 epochs left of 5
    text = lightning_log([30.0, 40.0, 40.0, 40.0, 40.0], 5, now=8 + 30 + 40 + 10)
    assert jobs.time_left(text, 5) == pytest.approx(3 * 40 - 10)
    assert jobs.time_left(lightning_log([30.0] * 3, 3, now=1000), 3) == 0.0


@pytest.mark.parametrize("first", [1.0, 1.25])
def test_estimate_after_the_first_epoch_within_30_percent(first):
    """A first epoch up to 25% slower than the rest (worker start-up, first batches): the
    estimate made when it ends is within 30% of the time really left."""
    durations = [12.0 * first] + [12.0] * 11
    end_of_first = 8 + durations[0]
    text = lightning_log(durations, 12, now=end_of_first + 0.01)
    truth = sum(durations[1:]) - 0.01
    assert abs(jobs.time_left(text, 12) - truth) <= 0.3 * truth


def test_status_message_says_the_time_left(tmp_path):
    log = lightning_log([20.0] * 4, 4, now=8 + 20 + 5)
    script = f"import sys, time\nsys.stdout.write({log!r})\nsys.stdout.flush()\ntime.sleep(600)\n"
    jobs.start(tmp_path, [sys.executable, "-c", script], epochs=4)
    try:
        status = jobs.status(tmp_path)
        while status.seconds_left is None:  # until the child has written its output (or ended)
            assert status.running, status.log_tail
            time.sleep(0.05)
            status = jobs.status(tmp_path)
        assert status.running and status.seconds_left == pytest.approx(3 * 20 - 5)
        assert "about 55 s left" in status.message
    finally:
        jobs.stop(tmp_path)


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
