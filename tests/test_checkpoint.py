"""Checkpoints are checked before a model is built: shapes give width and classes, hyper-parameters
that disagree or are malformed raise CheckpointError, NaN/Inf weights warn, memory stays small."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from yolo.detect import Detector
from yolo.model import YOLOv3
from yolo.weights import (
    CheckpointError, CheckpointWarning, optimiser_group_sizes, read_checkpoint, read_training_checkpoint, save_weights,
)

REPO = Path(__file__).resolve().parents[1]


def small(tmp_path: Path, hparams, name: str = "small.pt", classes: int = 3, width: float = 0.125) -> Path:
    """An exported checkpoint of YOLOv3(classes, width) with the given hyper-parameters."""
    path = tmp_path / name
    torch.save({"model": YOLOv3(classes, width).state_dict(), "hyper_parameters": hparams}, path)
    return path


def test_width_and_classes_come_from_the_tensor_shapes(tmp_path):
    state = read_checkpoint(small(tmp_path, {}, classes=3, width=0.25))
    assert (state.num_classes, state.width) == (3, 0.25)
    assert state.class_names == ["class0", "class1", "class2"] and state.nonfinite == []
    # 0.125 and 0.25 share the 8-channel stem; the deepest conv (1024 x width) tells them apart
    assert read_checkpoint(small(tmp_path, {}, "w.pt", classes=20, width=0.125)).width == 0.125


@pytest.mark.parametrize("hparams,message", [
    ({"width": 0.25}, "do not fit the model"),  # in range, but not these weights
    ({"width": 40}, r"width 40.0 is outside \(0, 2.0\]"),
    ({"width": 4}, "outside"),
    ({"num_classes": 20}, "do not fit the model"),
    ({"width": "0.125"}, "'width' must be a finite float"),
    ({"width": float("nan")}, "'width' must be a finite float"),
    ({"num_classes": "3"}, "'num_classes' must be a finite int"),
    ({"num_classes": 3.5}, "'num_classes' must be a finite int"),
    ({"num_classes": True}, "'num_classes'"),
    ({"class_names": ["a", "b"]}, "'class_names' must be 3 strings"),
    ({"class_names": "abc"}, "'class_names' must be 3 strings"),
    ({"class_names": [1, 2, 3]}, "'class_names' must be 3 strings"),
    ({"anchors": [[0.1, 0.2]]}, "'anchors' must be 3 scales x 3 anchors"),
    ({"anchors": [[["a", "b"]] * 3] * 3}, "'anchors' is not a table of numbers"),
    ({"anchors": [[[-0.1, 0.2]] * 3] * 3}, "'anchors' must be"),
    ({"anchors": [[[float("inf"), 0.2]] * 3] * 3}, "'anchors' must be"),
    ({"image_size": 100}, r"image_size must be a multiple of 32 in \[32, 2048\], got 100"),
    ({"image_size": -32}, "image_size must be a multiple of 32 in"),
    ({"image_size": "416"}, "'image_size' must be a finite int"),
])
def test_malformed_or_disagreeing_hyper_parameters_raise_checkpoint_error(tmp_path, hparams, message):
    path = small(tmp_path, {"num_classes": 3, "width": 0.125, **hparams})
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=message):
        Detector.from_checkpoint(path)


@pytest.mark.parametrize("raw,message", [
    ({"model": YOLOv3(3, 0.125).state_dict(), "hyper_parameters": [3, 0.125]}, "'hyper_parameters' must be a dict"),
    ({"model": YOLOv3(3, 0.125).state_dict(), "hyper_parameters": "width=4"}, "'hyper_parameters' must be a dict"),
    ({"model": [1, 2]}, "'model' must be a dict"),
    ({"state_dict": "x"}, "'state_dict' must be a dict"),
    ({"state_dict": {1: torch.zeros(1), "model.layers.head8_out.predict.pred.weight": torch.zeros(24, 8, 1, 1)}}, "missing"),
    ({"model": {1: torch.zeros(1), "layers.head8_out.predict.pred.weight": torch.zeros(24, 8, 1, 1)}}, "map names"),
    ({"model": {"layers.head8_out.predict.pred.weight": torch.zeros(24, 8, 1, 1)}}, "missing"),
    ({"model": {**YOLOv3(3, 0.125).state_dict(), "layers.head8_out.predict.pred.weight": torch.zeros(25, 32, 1, 1)}},
     "prediction layers have"),
    ({"model": {**YOLOv3(3, 0.125).state_dict(), "layers.stage3.blocks.0.reduce.conv.weight": torch.zeros(3, 3)}},
     "do not fit the model"),
    ({"model": {**YOLOv3(3, 0.125).state_dict(), "extra": torch.zeros(1)}}, "tensor names differ"),
])
def test_malformed_structure_raises_checkpoint_error(tmp_path, raw, message):
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_nan_or_inf_weights_give_a_warning(tmp_path):
    weights = YOLOv3(3, 0.125).state_dict()
    weights["layers.head8_out.predict.pred.bias"][0] = float("nan")
    weights["layers.stem.conv.weight"][0, 0, 0, 0] = float("inf")
    path = tmp_path / "nan.pt"
    torch.save({"model": weights}, path)
    with pytest.warns(CheckpointWarning, match="2 weight tensors hold NaN or Inf"):
        state = read_checkpoint(path)
    assert set(state.nonfinite) == {"layers.head8_out.predict.pred.bias", "layers.stem.conv.weight"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file: no warning
        read_checkpoint(save_weights(YOLOv3(3, 0.125), tmp_path / "clean.pt", ["a", "b", "c"]))


def test_a_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_checkpoint(path)


def test_training_checkpoint_needs_lightnings_training_state(tmp_path):
    weights = save_weights(YOLOv3(3, 0.125), tmp_path / "w.pt", ["a", "b", "c"])
    with pytest.raises(CheckpointError, match="cannot be resumed: exported weights"):
        read_training_checkpoint(weights)
    state = {f"model.{k}": v for k, v in YOLOv3(3, 0.125).state_dict().items()}
    path = tmp_path / "t.ckpt"
    torch.save({"state_dict": state, "epoch": 1, "global_step": 7, "optimizer_states": [],
                "hyper_parameters": {"num_classes": 3, "width": 0.125}}, path)
    model_state, step = read_training_checkpoint(path)
    assert step == 7 and model_state.num_classes == 3
    torch.save({"state_dict": state, "epoch": 1, "global_step": "7", "optimizer_states": []}, path)
    with pytest.raises(CheckpointError, match="'global_step' must be a non-negative integer"):
        read_training_checkpoint(path)


def test_optimiser_group_sizes_of_a_saved_optimiser(tmp_path):
    """The parameters per group of the first saved optimiser; [] without one; a clear error for
    an entry that is not Lightning's layout."""
    path = tmp_path / "t.ckpt"
    torch.save({"optimizer_states": [{"param_groups": [{"params": [0, 1, 2]}, {"params": [3]}], "state": {}}]}, path)
    assert optimiser_group_sizes(path) == [3, 1]
    torch.save({"optimizer_states": []}, path)
    assert optimiser_group_sizes(path) == []
    torch.save({"optimizer_states": [{"param_groups": "nonsense"}]}, path)
    with pytest.raises(CheckpointError, match="unreadable optimiser state"):
        optimiser_group_sizes(path)


PEAK_SCRIPT = """
import json, resource, sys, tracemalloc
import torch
from yolo.detect import Detector
from yolo.weights import CheckpointError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
try:
    Detector.from_checkpoint(sys.argv[1])
    outcome = "loaded"
except CheckpointError as err:
    outcome = "CheckpointError: " + str(err)
except (MemoryError, RuntimeError) as err:
    outcome = type(err).__name__ + ": " + str(err)[:200]
peak = tracemalloc.get_traced_memory()[1]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "tracemalloc_peak": peak, "rss_growth_kib": after - before}))
"""


@pytest.mark.parametrize("claimed", [40.0, 2.0])
def test_a_small_checkpoint_claiming_a_huge_width_is_refused_without_allocating(tmp_path, claimed):
    """width 40 (once: killed for memory) and width 2 (in range: caught by the shape comparison on
    the meta device). Measured in a child process capped at 3 GiB of address space above its
    start, so the old behaviour fails the test instead of the machine."""
    path = small(tmp_path, {"num_classes": 3, "width": claimed}, "claims.pt")
    assert path.stat().st_size < 20e6
    script = ("import resource; soft = resource.getrlimit(resource.RLIMIT_AS)[0]\n"
              "import os; vm = int(open('/proc/self/statm').read().split()[0]) * os.sysconf('SC_PAGE_SIZE')\n"
              "resource.setrlimit(resource.RLIMIT_AS, (vm + 3 * 2**30 + 2**31, resource.RLIM_INFINITY))\n"
              + PEAK_SCRIPT)
    result = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True,
                            text=True, timeout=1800, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"claimed width {claimed}: {report}")
    assert report["outcome"].startswith("CheckpointError"), report
    assert report["tracemalloc_peak"] < 50 * 2**20  # Python-side allocations
    assert report["rss_growth_kib"] < 200 * 2**10  # resident memory (torch's allocator included)


def test_the_validation_size_is_read_from_the_checkpoint_else_the_run_folder_else_416(tmp_path, monkeypatch):
    """A checkpoint that saved "image_size" runs at it (Detector, dashboard), whatever its run
    folder says; an older one falls back to its run's config.yaml val_size, then to 416."""
    monkeypatch.syspath_prepend(str(REPO / "dashboard"))  # the dashboard imports its siblings so
    from dashboard.places import run_image_size
    from yolo.weights import saved_image_size

    run = tmp_path / "logs" / "r" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("val_size: 256\n")
    new = small(run / "checkpoints", {"num_classes": 3, "width": 0.125, "image_size": 320}, "new.ckpt")
    old = small(run / "checkpoints", {"num_classes": 3, "width": 0.125}, "old.ckpt")
    loose = small(tmp_path, {"num_classes": 3, "width": 0.125}, "loose.pt")
    assert read_checkpoint(new).image_size == 320 and saved_image_size(new) == 320
    assert read_checkpoint(old).image_size is None and saved_image_size(old) is None
    assert saved_image_size(tmp_path / "missing.pt") is None
    assert [run_image_size(p) for p in (new, old, loose, None)] == [320, 256, 416, 416]
    assert Detector.from_checkpoint(new).image_size == 320
    assert Detector.from_checkpoint(old).image_size == 416
    assert Detector.from_checkpoint(new, image_size=224).image_size == 224  # the caller's choice wins
