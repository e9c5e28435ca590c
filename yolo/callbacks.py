"""Lightning callbacks with side effects outside the module (files a watcher reads)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytorch_lightning.callbacks import Callback

from yolo.progress import FILE_NAME, scalars, time_left, write_progress


class ProgressFile(Callback):
    """Writes the run's progress to ``<directory>/progress.json`` (format: ``yolo.progress``), on
    rank zero only: after a training batch at most every ``min_interval`` seconds, at every epoch
    end, and when fitting ends (``state`` "finished") or fails ("stopped").

    Args:
        directory (Path): the run folder (``<log_dir>/<name>/version_<n>``).
        min_interval (float): least seconds between two writes inside an epoch.
    """

    def __init__(self, directory: str | Path, min_interval: float = 1.0) -> None:
        self.path = Path(directory) / FILE_NAME
        self.min_interval = float(min_interval)
        self._started = self._epoch_start = self._last_write = 0.0
        self._epoch_seconds: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:  # also on a mid-epoch resume
        self._started = self._epoch_start = time.time()
        self._epoch_seconds = []
        self._write(trainer, "training")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self._last_write >= self.min_interval:
            self._write(trainer, "training", batch=batch_idx + 1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # after the epoch's validation
        self._epoch_seconds.append(time.time() - self._epoch_start)
        self._epoch_start = time.time()
        self._write(trainer, "training", batch=trainer.num_training_batches)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer, "finished", batch=trainer.num_training_batches)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._write(trainer, "stopped")

    def _write(self, trainer, state: str, batch: int | None = None) -> None:
        if not trainer.is_global_zero:
            return
        now = time.time()
        epochs = int(trainer.max_epochs or 0)
        batches = _finite(trainer.num_training_batches)
        total = _finite(trainer.estimated_stepping_batches)
        record = {
            "pid": os.getpid(), "run_folder": str(self.path.parent), "state": state,
            "started": self._started, "updated": now,
            "epoch": int(trainer.current_epoch), "epochs": epochs,
            "batch": _finite(batch) or 0, "batches": batches,
            "step": int(trainer.global_step),
            "total_steps": total,
            "elapsed": now - self._started,
            "epoch_seconds": [round(s, 3) for s in self._epoch_seconds],
            "eta": 0.0 if state == "finished" else time_left(self._epoch_seconds, epochs, now - self._epoch_start),
            "metrics": scalars(trainer.callback_metrics),
        }
        write_progress(self.path, record)
        self._last_write = time.monotonic()


def _finite(count) -> int | None:
    """A batch or step count as an int; None for Lightning's ``inf`` (a loader without a length)."""
    return None if count is None or count == float("inf") else int(count)
