"""The CPU budget: how many threads the model gets, and a CPU training command that fits the machine.

Threads. PyTorch's default runs one OpenMP thread per core, beside the data-loading worker
processes and whatever else the machine runs; on a shared 2-core machine a training step then
burned ~10x its bare forward+backward in threads waiting for a core (issue 21). The rule here:
the model gets the cores the data workers leave, and, when the machine is already busy at start
(1-minute load average), no more than the cores that are not (``intra_op_threads``).
``configure_threads`` applies it (``torch.set_num_threads``, one inter-op thread) unless the user
chose (``OMP_NUM_THREADS`` or an explicit count). Waiting threads sleep instead of spinning when
``OMP_WAIT_POLICY=PASSIVE`` is set before torch loads OpenMP: ``quiet_openmp()`` sets it (if unset);
``train.py`` and ``python -m yolo.evaluate`` call it before importing torch.

A CPU plan. ``cpu_train_plan(cores, images)`` picks width, input size, epochs, data workers,
threads and precision for a CPU-only machine so that a run finishes in about ``minutes``, from a
measured cost (``CPU_SECONDS_PER_IMAGE``); ``TrainPlan.command`` is the train.py line.
Nothing here imports torch at module level.
"""

from __future__ import annotations

import math
import os
import shlex
from dataclasses import dataclass

# ------------------------------------------------------------------------------------------ threads


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def intra_op_threads(cores: int, workers: int, load: float | None = None) -> int:
    """Threads for the model's operators: the cores the data workers leave, at least 1.

    Args:
        cores: usable cores (``usable_cores()``).
        workers: data-loading worker processes running beside the model (each keeps a core busy).
        load: the machine's 1-minute load average before this program started (None: not known).
            Cores that others already keep busy are not counted: at most ``cores - floor(load)``.

    A 2-core machine with 1 worker: 1 thread; 16 cores, 4 workers, idle: 12; 16 cores, 4
    workers, load 10.5 (others busy): 6; more workers than cores: 1.
    """
    cores, workers = max(1, int(cores)), max(0, int(workers))
    free = cores - workers
    if load is not None and math.isfinite(load) and load > 0:
        free = min(free, cores - math.floor(load))
    return max(1, free)


def quiet_openmp() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set: OpenMP threads waiting for work sleep at once
    instead of spinning (libgomp spins up to ~300,000 iterations first, burning a core that
    another process or a data worker needs). Takes effect only before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_threads(workers: int, threads: int | None = None, load: float | None = None) -> tuple[int, str]:
    """Set torch's intra-op threads (``intra_op_threads`` unless ``threads`` > 0 or the user set
    ``OMP_NUM_THREADS``) and one inter-op thread. Returns (threads, why) for the run's log line."""
    import torch

    if threads and threads > 0:
        chosen, why = int(threads), "as asked"
    elif os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads(), "from OMP_NUM_THREADS"
    else:
        if load is None:
            try:
                load = os.getloadavg()[0]
            except OSError:
                load = None
        cores = usable_cores()
        chosen = intra_op_threads(cores, workers, load)
        why = f"{cores} cores, {workers} data workers" + (f", load {load:.1f}" if load is not None else "")
    torch.set_num_threads(chosen)
    try:
        torch.set_num_interop_threads(1)  # only before any inter-op work; later calls raise
    except RuntimeError:
        pass
    return chosen, why


# ------------------------------------------------------------------------------------ a CPU plan

# Single-thread CPU seconds per training image at width 0.25 and 128 px, validation and data
# loading included: the demo preset's 88 s CPU for 10 epochs of 320 training + 80 validation
# images (``OMP_NUM_THREADS=1 python -m bench.demo``, README "Results") = 88 / 3200.
CPU_SECONDS_PER_IMAGE = 88.0 / 3200
REFERENCE = (0.25, 128)  # (width, size) of that measurement
PARALLEL_EFFICIENCY = 0.6  # speed-up per extra thread assumed for a conv net this small (estimate)
SIZES = (128, 160, 192, 224, 256, 320)
MIN_EPOCHS, MAX_EPOCHS = 10, 40


@dataclass(frozen=True)
class TrainPlan:
    """A CPU training run: settings and its estimated wall time on an idle machine."""

    width: float
    size: int
    epochs: int
    batch_size: int
    workers: int
    threads: int
    precision: str
    cache_ram: bool
    minutes: float  # estimated wall minutes on an idle machine (``estimate_minutes``)

    def command(self, data_root: str, extra: list[str] | None = None) -> str:
        """The train.py line (``extra``: e.g. split flags); OMP_NUM_THREADS pins the threads."""
        parts = [f"OMP_NUM_THREADS={self.threads}", "python", "train.py", "--data", shlex.quote(str(data_root)),
                 "--accelerator", "cpu", "--width", f"{self.width:g}", "--min-size", str(self.size),
                 "--max-size", str(self.size), "--val-size", str(self.size), "--epochs", str(self.epochs),
                 "--batch-size", str(self.batch_size), "--workers", str(self.workers),
                 "--precision", self.precision]
        if self.cache_ram:
            parts += ["--cache-ram", "true"]
        return " ".join(parts + list(extra or []))


def estimate_minutes(images: int, epochs: int, width: float, size: int, threads: int) -> float:
    """Wall minutes for ``epochs`` over ``images`` training images (validation included as in the
    measurement): CPU_SECONDS_PER_IMAGE scaled by pixels (size^2) and width^2 (channels in x out),
    divided by the threads' speed-up 1 + PARALLEL_EFFICIENCY * (threads - 1)."""
    w0, s0 = REFERENCE
    cpu = images * epochs * CPU_SECONDS_PER_IMAGE * (size / s0) ** 2 * (width / w0) ** 2
    return cpu / (1.0 + PARALLEL_EFFICIENCY * (max(1, threads) - 1)) / 60.0


def cpu_train_plan(cores: int, images: int, minutes: float = 60.0) -> TrainPlan:
    """The CPU-only command for ``images`` training images that finishes in about ``minutes``.

    Width 0.25 (the smallest model the project measures; the demo reaches mAP 0.96 with it),
    fp32 (``32-true``: CPU bf16 autocast is slower than fp32 for these convolutions on CPUs
    without AMX, and the demo preset is measured in fp32), one data worker per 4 cores (at least 1,
    images cached in RAM when they fit in ~2 GB at that size), the other cores as model threads
    (``intra_op_threads``). Then the largest input size in ``SIZES`` at which ``MIN_EPOCHS``
    epochs fit the budget, and as many epochs as fit (at most ``MAX_EPOCHS``); at 128 px, if even
    ``MIN_EPOCHS`` do not fit, fewer epochs (at least 1), and ``minutes`` says the real estimate.
    """
    cores, images = max(1, int(cores)), max(1, int(images))
    workers = max(1, cores // 4)
    threads = intra_op_threads(cores, workers)
    width = REFERENCE[0]
    size = SIZES[0]
    for s in SIZES:
        if estimate_minutes(images, MIN_EPOCHS, width, s, threads) <= minutes:
            size = s
    per_epoch = estimate_minutes(images, 1, width, size, threads)
    epochs = int(min(MAX_EPOCHS, max(1, math.floor(minutes / per_epoch))))
    cache = images * size * size * 3 * 0.75 <= 2 * 2**30  # 4:3 images, long side = size
    return TrainPlan(width, size, epochs, 16, workers, threads, "32-true", cache,
                     round(estimate_minutes(images, epochs, width, size, threads), 1))
