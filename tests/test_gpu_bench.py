"""bench/gpu.py without a GPU: the one-line message, and a CPU dry run of the same code path
(the real TrainConfig -> build_datamodule/build_module -> Lightning Trainer, timed steps,
evaluation through trainer.validate) at a tiny width."""

from __future__ import annotations

import json

import pytest
import torch

from bench import gpu


def test_without_cuda_it_says_so_in_one_line_and_exits_0(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main(["--out", str(tmp_path / "gpu.json")]) == 0
    assert capsys.readouterr().out == gpu.NO_CUDA + "\n"
    assert not (tmp_path / "gpu.json").exists()


def test_16_mixed_is_refused_for_a_cpu_dry_run():
    with pytest.raises(SystemExit):
        gpu.parse_args(["--device", "cpu", "--precisions", "16-mixed"])


def test_summary_ratios():
    rows = [{"precision": "32-true", "images_per_s": 100.0, "data_wait_share": 0.01},
            {"precision": "16-mixed", "images_per_s": 250.0, "data_wait_share": 0.04},
            {"precision": "bf16-mixed", "images_per_s": 200.0, "data_wait_share": 0.02}]
    assert gpu.summary(rows) == {"max_data_wait_share": 0.04, "speedup_16-mixed": 2.5,
                                 "speedup_bf16-mixed": 2.0}


def test_cpu_dry_run_measures_every_figure(voc_mini, tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu.main(["--data", str(voc_mini), "--device", "cpu", "--precisions", "32-true", "bf16-mixed",
                     "--width", "0.125", "--size", "128", "--batch", "2", "--workers", "0",
                     "--warmup", "1", "--steps", "2", "--eval-batches", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["precision"] for r in result["training"]] == ["32-true", "bf16-mixed"]
    for row in result["training"]:
        assert row["steps"] == 2 and row["images"] == 4  # warm-up step not counted
        assert row["images_per_s"] > 0 and 0 <= row["data_wait_share"] < 1
    evaluation = result["evaluation"]
    assert evaluation["images"] == 4 and evaluation["images_per_s"] > 0
    assert 0.0 <= evaluation["val_map50"] <= 1.0
    assert result["speedup_bf16-mixed"] > 0 and result["device"] == "cpu (dry run)"
