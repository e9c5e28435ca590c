"""yolo.cpu (issue 21, items 14 and 17): the model's thread count from the cores the data workers leave,
and the CPU training plan that fits a machine, against hand-worked values."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from yolo.cpu import (CPU_SECONDS_PER_IMAGE, TrainPlan, cpu_train_plan, estimate_minutes, intra_op_threads,
                      quiet_openmp)


@pytest.mark.parametrize("cores, workers, load, want", [
    (2, 1, None, 1),     # the shared 2-core machine: one core for the worker, one for the model
    (2, 0, None, 2),
    (16, 4, None, 12),
    (16, 4, 0.3, 12),    # an idle machine's load takes nothing away
    (16, 4, 10.5, 6),    # others keep 10 cores busy: 16 - 10 = 6 < 12
    (2, 0, 12.0, 1),     # a machine busier than its cores: still one thread
    (2, 4, None, 1),     # more workers than cores
    (8, 2, float("nan"), 6),
    (0, 0, None, 1),
])
def test_intra_op_threads(cores, workers, load, want):
    assert intra_op_threads(cores, workers, load) == want


def test_quiet_openmp_sets_passive_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    quiet_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    quiet_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_train_py_sets_the_wait_policy_before_torch_loads():
    """train.py imports yolo.cpu and calls quiet_openmp before anything imports torch."""
    code = ("import os, sys, runpy; sys.argv = ['train.py', '--help']\n"
            "import builtins; real = builtins.__import__\n"
            "def watch(name, *a, **k):\n"
            "    if name == 'torch' and 'torch' not in sys.modules:\n"
            "        print('POLICY', os.environ.get('OMP_WAIT_POLICY'))\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = watch\n"
            "try:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit:\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert "POLICY PASSIVE" in out.stdout.splitlines()[0], out.stdout[:500] + out.stderr[-2000:]
    assert "--threads" in out.stdout  # the flag is documented in --help


def test_estimate_is_the_measured_cost_scaled():
    # 960 images x 10 epochs at the reference (width 0.25, 128 px), one thread: 9600 x 88/3200 s = 264 s
    assert estimate_minutes(960, 10, 0.25, 128, 1) == pytest.approx(960 * 10 * 88 / 3200 / 60)
    assert estimate_minutes(960, 10, 0.25, 256, 1) == pytest.approx(4 * 264 / 60)  # 4x the pixels
    assert estimate_minutes(960, 10, 0.5, 128, 1) == pytest.approx(4 * 264 / 60)   # 4x the channel pairs
    assert estimate_minutes(960, 10, 0.25, 128, 3) == pytest.approx(264 / 60 / 2.2)  # 1 + 0.6 x 2
    assert CPU_SECONDS_PER_IMAGE == pytest.approx(0.0275)


def test_cpu_plan_for_voc_mini_on_two_cores():
    """960 images, 2 cores, 60 min: 1 worker, 1 thread; 320 px is the largest size where 10 epochs fit
    (10 x 960 x 0.0275 x 6.25 = 1650 s = 27.5 min); then floor(60 / 2.75) = 21 epochs = 57.75 min."""
    plan = cpu_train_plan(2, 960, 60)
    assert plan == TrainPlan(width=0.25, size=320, epochs=21, batch_size=16, workers=1, threads=1,
                             precision="32-true", cache_ram=True, minutes=57.8)
    assert plan.minutes <= 60
    command = plan.command("/data/voc mini", ["--train-sets", "2012/train"])
    assert command.startswith("OMP_NUM_THREADS=1 python train.py --data '/data/voc mini' --accelerator cpu ")
    for flag in ("--width 0.25", "--min-size 320", "--max-size 320", "--val-size 320", "--epochs 21",
                 "--workers 1", "--precision 32-true", "--cache-ram true", "--train-sets 2012/train"):
        assert flag in command


def test_cpu_plan_for_full_voc_and_many_cores():
    # VOC07+12 trainval, 16,551 images, on 2 cores: even 128 px needs 75.9 min for 10 epochs, so
    # 128 px and floor(60 / 7.59) = 7 epochs (53.1 min); its 128 px images fit the RAM cache (0.6 GB)
    plan = cpu_train_plan(2, 16551, 60)
    assert (plan.size, plan.epochs, plan.threads, plan.workers, plan.cache_ram) == (128, 7, 1, 1, True)
    assert plan.minutes == pytest.approx(53.1, abs=0.05)
    # 32 cores: 8 workers, 24 threads (speed-up 1 + 0.6 x 23 = 14.8): 320 px, 10 epochs in 32.0 min,
    # floor(60 / 3.20) = 18 epochs (57.7 min); 3.8 GB of 320 px images: no RAM cache
    big = cpu_train_plan(32, 16551, 60)
    assert (big.workers, big.threads, big.size, big.epochs, big.cache_ram) == (8, 24, 320, 18, False)
    assert big.minutes == pytest.approx(57.7, abs=0.05)
    # a tiny dataset saturates at 40 epochs and the largest size
    small = cpu_train_plan(8, 50, 60)
    assert (small.size, small.epochs) == (320, 40)
    assert not cpu_train_plan(2, 100_000, 60).cache_ram
