"""train.py end to end: flags, a 2-process DDP run, kill -9 and resume. Subprocesses, CPU only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from train import build_parser, config_from_args
from yolo.config import (
    LossConfig, ModelConfig, OptimConfig, PostprocessConfig, TargetConfig, ValConfig, field_comments, leaves,
)
from yolo.config_checks import ConfigError, check_config
from yolo.trainer import TrainConfig, build_module
from yolo.data.demo import write_demo
from yolo.runs import resolve_resume, truncate_metrics

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    return write_demo(tmp_path_factory.mktemp("data") / "demo", n_train=24, n_val=8, n_test=4, seed=3)


def train_cmd(data: Path, logs: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), "--preset", "demo", "--data", str(data),
            "--log-dir", str(logs), "--workers", "0", "--batch-size", "4", "--min-size", "128",
            "--max-size", "192", "--val-size", "128", "--precision", "32-true", *extra]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_help_documents_every_flag():
    text = build_parser().format_help()
    for action in build_parser()._actions:
        if action.help == "==SUPPRESS==" or not action.option_strings:
            continue
        assert action.help, f"{action.option_strings} has no help"
    assert "--resume" in text and "--strategy" in text and "--width" in text


def test_preset_then_flags_override():
    config = config_from_args(["--preset", "demo", "--epochs", "3", "--width", "0.5", "--ema", "false"])
    assert config.epochs == 3 and config.module.model.width == 0.5 and config.module.optim.ema is False
    assert config.name == "demo" and config.preset == "demo" and config.max_size == 128
    assert config.module.optim.lr == 3e-3 and config.module.optim.ema_decay == 0.998  # from the preset
    voc = config_from_args(["--preset", "voc", "--data", "/x"])
    assert voc.epochs == 40 and voc.val_size == 416 and voc.mosaic == 0.75 and voc.data == ["/x"]


def test_every_setting_is_one_flag_documented_by_its_field():
    """Each leaf of TrainConfig (the module's nested settings included) is exactly one flag, named
    after the field, whose help is the field's comment and default; nothing else is a flag."""
    parser = build_parser()
    by_dest = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    settings = leaves(TrainConfig())
    assert set(by_dest) == set(settings) - {"num_classes"}
    comments = {**field_comments(TrainConfig), **field_comments(ModelConfig), **field_comments(OptimConfig),
                **field_comments(LossConfig), **field_comments(TargetConfig), **field_comments(ValConfig),
                **field_comments(PostprocessConfig)}
    for dest, action in by_dest.items():
        assert action.option_strings == ["--" + dest.replace("_", "-")]
        assert action.default is None, dest  # not given: the preset's value stands
        if dest not in ("preset", "trace_sizes"):
            assert comments[dest] and action.help.startswith(comments[dest]), dest


def test_flags_reach_the_module_and_its_hyper_parameters():
    config = config_from_args(["--preset", "demo", "--lambda-box", "3", "--max-detections", "50",
                               "--conf-threshold", "0.02", "--ignore-iou", "0.6", "--optimizer", "sgd",
                               "--momentum", "0.8", "--val-size", "224", "--lr-find"])
    assert config.lr_find is True and config.module.val.nms.conf_threshold == 0.02
    module = build_module(config, 3, ["a", "b", "c"])
    assert module.loss_fn.config.lambda_box == 3.0 and module.nms.max_detections == 50
    assert module.nms.conf_threshold == 0.02 and module.config.target.ignore_iou == 0.6
    assert module.config.optim.optimizer == "sgd" and module.hparams.optimizer == "sgd"
    hp = dict(module.hparams)
    assert hp["num_classes"] == 3 and hp["width"] == 0.25 and hp["image_size"] == 224
    assert hp["momentum"] == 0.8 and hp["class_names"] == ["a", "b", "c"]
    assert hp == {**leaves(module.config), "class_names": ["a", "b", "c"], "anchors": hp["anchors"],
                  "image_size": 224}


@pytest.mark.parametrize("flags,message", [
    (["--momentum", "1.5"], "--momentum must be a number in [0, 1)"),
    (["--max-detections", "0"], "--max-detections must be an integer >= 1"),
    (["--conf-threshold", "2"], "--conf-threshold must be a number in [0, 1]"),
    (["--lambda-box", "-1"], "--lambda-box must be a number in [0, inf)"),
    (["--pre-nms-top-k", "0"], "--pre-nms-top-k must be an integer >= 1"),
])
def test_new_module_flags_are_checked(flags, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config_from_args(["--preset", "demo", *flags]))


def test_resolve_resume_and_truncate(tmp_path):
    assert resolve_resume(tmp_path, "r", None) == (None, 0)
    ckpt = tmp_path / "r" / "version_3" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert resolve_resume(tmp_path, "r", "auto") == (ckpt, 3)
    assert resolve_resume(tmp_path, "r", str(ckpt)) == (ckpt, 3)
    with pytest.raises(FileNotFoundError, match="--resume auto"):
        resolve_resume(tmp_path, "r", str(tmp_path / "missing.ckpt"))
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/loss\n0,4,1.0\n0,9,0.9\n1,14,0.8\n1,19,0.")  # torn last line
    assert truncate_metrics(csv, 9) == 1
    assert pd.read_csv(csv)["step"].tolist() == [4, 9]


@pytest.mark.slow
def test_ddp_two_processes_same_sizes(tiny_demo, tmp_path):
    logs = tmp_path / "logs"
    run(train_cmd(tiny_demo, logs, "--epochs", "1", "--devices", "2", "--strategy", "ddp",
                  "--accelerator", "cpu", "--limit-val-batches", "2", "--trace-sizes", "--name", "ddp"))
    version = logs / "ddp" / "version_0"
    sizes = [(version / f"sizes_rank{r}.txt").read_text().split("\n") for r in (0, 1)]
    assert sizes[0] == sizes[1] and len([s for s in sizes[0] if s]) == 3  # 24 images / 2 ranks / 4
    used = {int(line.split()[1]) for line in sizes[0] if line}
    assert used <= {128, 160, 192}
    df = pd.read_csv(version / "metrics.csv")
    val_rows = df.dropna(subset=["val/loss"])
    assert len(val_rows) == 1  # logged once, by rank zero, for the one epoch
    assert "val/map50" in df.columns


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tiny_demo, tmp_path):
    logs = tmp_path / "logs"
    cmd = train_cmd(tiny_demo, logs, "--epochs", "3", "--checkpoint-every", "2", "--name", "kill",
                    "--trace-sizes")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ckpt_dir = logs / "kill" / "version_0" / "checkpoints"
    # wait until last.ckpt is from inside the second epoch (6 steps per epoch), then kill -9;
    # bounded by the run's own work: it ends (and the assert below fails) after 3 epochs
    while True:
        last = ckpt_dir / "last.ckpt"
        if last.exists():
            try:
                step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
            except Exception:
                step = -1
            if step >= 8:  # inside epoch 2 (steps 6..11)
                break
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert 8 <= killed_at < 18

    result = run(train_cmd(tiny_demo, logs, "--epochs", "3", "--checkpoint-every", "2", "--name", "kill",
                           "--resume", "auto", "--trace-sizes"))
    assert "resuming from" in result.stderr
    assert not (logs / "kill" / "version_1").exists()  # the same version folder continued
    final = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == 18  # 3 epochs x 6 steps, none repeated or lost
    # optimiser, scheduler and EMA continued from the checkpoint, not from scratch
    adam_steps = {int(s["step"]) for s in final["optimizer_states"][0]["state"].values()}
    assert adam_steps == {18}
    assert final["lr_schedulers"][0]["last_epoch"] == 18
    assert int(final["state_dict"]["ema.updates"]) == 18
    # the resumed steps used the sampler positions (and so the sizes) of an uninterrupted run:
    # step k of epoch e has size size_for_step(seed 0, e, k) whichever process ran it
    from yolo.data.multiscale import size_for_step

    trace = [tuple(map(int, line.split())) for line in
             (logs / "kill" / "version_0" / "sizes_rank0.txt").read_text().splitlines()]
    resumed = [(step, size) for step, size in trace if step >= killed_at]
    assert resumed and resumed[0][0] == killed_at  # continues at the checkpointed step
    assert all(size == size_for_step(0, step // 6, step % 6, (128, 160, 192)) for step, size in trace)
    df = pd.read_csv(logs / "kill" / "version_0" / "metrics.csv")
    steps = df["step"].tolist()
    assert steps == sorted(steps)  # continuous: nothing logged twice out of order
    epochs_with_val = sorted(df.dropna(subset=["val/loss"])["epoch"].astype(int).tolist())
    assert epochs_with_val == [0, 1, 2]
    # the checkpoint train.py wrote loads through the safe path and detects on a demo image
    from yolo.detect import Detector
    from yolo.weights import read_checkpoint

    state = read_checkpoint(ckpt_dir / "last.ckpt")
    assert state.source == "ema" and state.width == 0.25
    assert state.class_names == (tiny_demo / "classes.txt").read_text().split()
    detector = Detector.from_checkpoint(ckpt_dir / "last.ckpt", image_size=128)
    image = next((tiny_demo / "VOCdevkit").rglob("*.jpg"))
    detections = detector.predict(str(image)).select()
    assert len(detections.boxes) == len(detections.names)


def test_summary_line_reads_epoch_aggregates():
    from yolo.trainer import summary_line

    metrics = {"train/loss_epoch": torch.tensor(4.5123), "train/loss_step": torch.tensor(9.0),
               "train/class_acc": 81.24, "train/noobj_acc": 98.1, "train/obj_acc": 74.0,
               "val/loss": 5.0, "val/class_acc": 78.9, "val/noobj_acc": 98.0, "val/obj_acc": float("nan"),
               "val/map50": 0.5124}
    assert summary_line(12, 40, metrics) == (
        "epoch 12/40 | train loss 4.512 class 81.2% noobj 98.1% obj 74.0% | "
        "val loss 5.000 class 78.9% noobj 98.0% obj -% mAP@0.5 0.512")


# ------------------------------------------------------------------ flags checked before any work
def tiny_args(data: Path, logs: Path, *extra: str) -> list[str]:
    """In-process main(): width 0.125, 64 px, 2 training batches of 4 per epoch, 1 val batch."""
    return ["--preset", "demo", "--data", str(data), "--log-dir", str(logs), "--workers", "0",
            "--batch-size", "4", "--min-size", "64", "--max-size", "64", "--val-size", "64",
            "--precision", "32-true", "--width", "0.125", "--limit-train-batches", "2",
            "--limit-val-batches", "1", "--accelerator", "cpu", "--devices", "1", *extra]


def refused(argv: list[str], capsys) -> str:
    """main(argv) must exit with status 2 and one 'error:' line naming the problem; returns it."""
    from train import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: --"), err
    return err[0]


BAD_FLAGS = [
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--batch-size", "-3"], "--batch-size"),
    (["--min-size", "320", "--max-size", "256"], "--min-size 320 is larger than --max-size 256"),
    (["--min-size", "0"], "--min-size must be a multiple of 32"),
    (["--max-size", "-64"], "--max-size must be a multiple of 32"),
    (["--val-size", "100"], "--val-size must be a multiple of 32"),
    (["--width", "0"], r"--width must be a number in (0, 2]"),
    (["--width", "-0.5"], "--width"),
    (["--width", "nan"], "got nan"),
    (["--width", "40"], r"--width must be a number in (0, 2], got 40.0"),
    (["--ema-decay", "1"], r"--ema-decay must be a number in (0, 1)"),
    (["--ema-decay", "0"], "--ema-decay"),
    (["--lr", "0"], "--lr must be a number in (0, 10]"),
    (["--lr", "nan"], "--lr"),
    (["--mosaic", "1.5"], "--mosaic must be a number in [0, 1]"),
    (["--mosaic", "-0.1"], "--mosaic"),
    (["--epochs", "0"], "--epochs"),
    (["--name", "../escape"], "--name must be a plain folder name"),
    (["--name", "a/b"], "--name"),
    (["--name", ".."], "--name"),
    (["--precision", "17"], "--precision must be one of"),
]


@pytest.mark.parametrize("flags,message", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag_is_refused_before_any_work(flags, message, tiny_demo, tmp_path, capsys):
    logs = tmp_path / "logs"
    line = refused(tiny_args(tiny_demo, logs) + flags, capsys)
    assert message in line
    assert not logs.exists() and not (tmp_path / "escape").exists()


def test_devices_beyond_the_machine_are_refused(tiny_demo, tmp_path, capsys):
    logs = tmp_path / "logs"
    line = refused(tiny_args(tiny_demo, logs) + ["--devices", str((os.cpu_count() or 1) + 1)], capsys)
    assert f"this machine has {os.cpu_count()} CPU cores" in line
    line = refused(tiny_args(tiny_demo, logs) + ["--devices", "99"], capsys)
    assert "--devices 99" in line
    if not torch.cuda.is_available():
        assert "--accelerator gpu: no CUDA device" in refused(tiny_args(tiny_demo, logs) + ["--accelerator", "gpu"], capsys)
    assert not logs.exists()


def test_data_that_is_a_file_or_missing_is_refused(tiny_demo, tmp_path, capsys):
    logs = tmp_path / "logs"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert "is a file" in refused(tiny_args(a_file, logs), capsys)
    assert "no such folder" in refused(tiny_args(tmp_path / "missing", logs), capsys)
    assert "neither a VOCdevkit nor a Kaggle" in refused(tiny_args(tmp_path, logs), capsys)
    line = refused(tiny_args(tiny_demo, logs, "--train-sets", "2012/trainval"), capsys)
    assert line.startswith("train.py: error: --train-sets 2012/trainval: split '2012/trainval' not found")
    assert "--val-sets nope" in refused(tiny_args(tiny_demo, logs, "--val-sets", "nope"), capsys)
    assert not logs.exists()


def test_resume_of_a_file_that_is_not_a_training_checkpoint(tiny_demo, tmp_path, capsys):
    from yolo.model import YOLOv3
    from yolo.weights import save_weights

    logs = tmp_path / "logs"
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    assert "not a PyTorch checkpoint" in refused(tiny_args(tiny_demo, logs, "--resume", str(text)), capsys)
    weights = save_weights(YOLOv3(3, 0.125), tmp_path / "export.pt", ["a", "b", "c"])
    line = refused(tiny_args(tiny_demo, logs, "--resume", str(weights)), capsys)
    assert "cannot be resumed: exported weights" in line
    no_step = tmp_path / "no_step.ckpt"  # once KeyError: 'global_step'
    torch.save({"state_dict": {f"model.{k}": v for k, v in YOLOv3(3, 0.125).state_dict().items()},
                "epoch": 1, "optimizer_states": []}, no_step)
    assert "missing global_step" in refused(tiny_args(tiny_demo, logs, "--resume", str(no_step)), capsys)
    empty = tmp_path / "list.ckpt"  # once IndexError
    torch.save([], empty)
    assert "expected a dict checkpoint" in refused(tiny_args(tiny_demo, logs, "--resume", str(empty)), capsys)
    assert "no such file" in refused(tiny_args(tiny_demo, logs, "--resume", str(tmp_path / "gone.ckpt")), capsys)
    assert not logs.exists()


def test_bad_flag_from_the_shell_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--preset", "demo", "--batch-size", "0",
                             "--log-dir", str(tmp_path / "logs")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=1800, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert result.stderr.strip() == "train.py: error: --batch-size must be an integer >= 1, got 0"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "data").exists()


# ------------------------------------------------------------------ last.ckpt, resume from elsewhere
def test_last_ckpt_is_written_at_every_epoch_end_with_the_default_checkpoint_every(tiny_demo, tmp_path, monkeypatch):
    """A run that dies in its third epoch (2 steps per epoch, --checkpoint-every 500 by default)
    still has last.ckpt from the end of the second: at most the current epoch is lost."""
    from train import main
    from yolo.lit import YoloLitModule

    step = YoloLitModule.training_step

    def dies_in_epoch_3(self, batch, batch_idx):
        if self.global_step >= 5:  # the second step of the third epoch: the process "is killed"
            raise KeyboardInterrupt
        return step(self, batch, batch_idx)

    monkeypatch.setattr(YoloLitModule, "training_step", dies_in_epoch_3)
    logs = tmp_path / "logs"
    try:
        main(tiny_args(tiny_demo, logs, "--epochs", "5", "--name", "e"))
    except (KeyboardInterrupt, SystemExit):
        pass
    last = logs / "e" / "version_0" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 4  # the end of the second epoch, not a step-count save


def digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_from_another_folder_never_modifies_another_run(tiny_demo, tmp_path, capsys):
    import shutil

    from train import main

    logs, backup = tmp_path / "logs", tmp_path / "backup"
    assert main(tiny_args(tiny_demo, logs, "--epochs", "1", "--name", "r")) == 0
    shutil.copytree(logs / "r", backup / "r")  # a backed-up copy of the same run name and version
    local, saved = digest(logs / "r" / "version_0"), digest(backup / "r")
    capsys.readouterr()

    foreign = backup / "r" / "version_0" / "checkpoints" / "last.ckpt"
    assert main(tiny_args(tiny_demo, logs, "--epochs", "2", "--name", "r", "--resume", str(foreign))) == 0
    assert "new run folder" in capsys.readouterr().err
    assert digest(logs / "r" / "version_0") == local  # the local run: not one byte changed
    assert digest(backup / "r") == saved  # nor the run it came from
    resumed = torch.load(logs / "r" / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 4  # continued from step 2, in version_1

    # a run's own checkpoint (even through '..') continues that run
    own = logs / "r" / "version_0" / "checkpoints" / ".." / "checkpoints" / "last.ckpt"
    assert main(tiny_args(tiny_demo, logs, "--epochs", "2", "--name", "r", "--resume", str(own))) == 0
    assert sorted(p.name for p in (logs / "r").iterdir()) == ["version_0", "version_1"]
    assert torch.load(logs / "r" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    # and a checkpoint of another run name under the same --log-dir starts a new version too
    other = logs / "r" / "version_1" / "checkpoints" / "last.ckpt"
    assert resolve_resume(logs, "s", str(other)) == (other, 0)


def test_new_versions_are_claimed_atomically(tmp_path):
    from yolo.runs import claim_version

    assert claim_version(tmp_path, "r", 0) == 0
    assert claim_version(tmp_path, "r", 0) == 1  # version_0 exists (another run just made it)
    assert resolve_resume(tmp_path, "r", None) == (None, 2)


def test_resume_under_other_warm_up_settings_is_refused_before_anything_is_cut(tiny_demo, tmp_path, capsys):
    """A run started with a bias warm-up (its optimiser holds a third group, the biases) resumed
    under settings without one: one line naming the flags, before its metrics.csv is cut back and
    before Lightning would fail on the optimiser's state."""
    from train import main
    from yolo.model import YOLOv3
    from yolo.weights import optimiser_group_sizes

    logs = tmp_path / "logs"
    main(tiny_args(tiny_demo, logs, "--epochs", "1", "--name", "warm", "--warmup-epochs", "1",
                   "--warmup-bias-lr", "0.01"))
    run = logs / "warm" / "version_0"
    sizes = optimiser_group_sizes(run / "checkpoints" / "last.ckpt")
    assert len(sizes) == 3 and sum(sizes) == len(list(YOLOv3(3, 0.125).parameters()))
    before = (run / "metrics.csv").read_bytes()
    capsys.readouterr()
    line = refused(tiny_args(tiny_demo, logs, "--epochs", "2", "--name", "warm", "--resume", "auto"), capsys)
    assert "3 parameter groups" in line and "build 2" in line and "--warmup-bias-lr" in line, line
    assert (run / "metrics.csv").read_bytes() == before  # nothing cut
    assert not (logs / "warm" / "version_1").exists()
    # the same flags as the run was started with resume it
    main(tiny_args(tiny_demo, logs, "--epochs", "2", "--name", "warm", "--resume", "auto",
                   "--warmup-epochs", "1", "--warmup-bias-lr", "0.01"))
    final = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == 4 and len(final["optimizer_states"][0]["param_groups"]) == 3  # 2 epochs x 2


def listing(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (folders too) -> the sha256 of its bytes ('' for a folder)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            for p in sorted(folder.rglob("*"))}


@pytest.mark.slow
def test_a_resume_that_cannot_restore_is_refused_before_the_run_is_touched(tiny_demo, tmp_path, capsys):
    """Issue 21 item 2: a resume whose state cannot be restored under the settings given (another
    width, other classes, another optimiser, no EMA, no LR schedule, another schedule kind) is one
    line, and every file of the run (listing and bytes) is as it was; the run then resumes with
    its own settings."""
    import shutil

    from train import main

    logs = tmp_path / "logs"
    assert main(tiny_args(tiny_demo, logs, "--epochs", "1", "--name", "r")) == 0
    before = listing(logs)
    capsys.readouterr()
    names = (tiny_demo / "classes.txt").read_text().split()
    renamed, more = tmp_path / "renamed", tmp_path / "more"
    for folder, classes in ((renamed, [*names[:-1], "star"]), (more, [*names, "star"])):
        shutil.copytree(tiny_demo, folder)
        (folder / "classes.txt").write_text("\n".join(classes) + "\n")
    cases = [
        (tiny_args(tiny_demo, logs, "--width", "0.25"), "width 0.125"),  # "-> 0.25" or "but --width is 0.25"
        (tiny_args(more, logs), f"the checkpoint has {len(names)} classes, the dataset {len(names) + 1}"),
        (tiny_args(renamed, logs), f"classes are {names}, the dataset's {[*names[:-1], 'star']}"),
        (tiny_args(tiny_demo, logs, "--optimizer", "sgd"), "its optimiser is not SGD"),
        (tiny_args(tiny_demo, logs, "--ema", "false"), "ema True -> False"),
        (tiny_args(tiny_demo, logs, "--one-cycle", "false"), "these settings build 0"),
        (tiny_args(tiny_demo, logs, "--schedule", "course"), "its LR schedule is not a CourseOneCycleLR"),
    ]
    last = str(logs / "r" / "version_0" / "checkpoints" / "last.ckpt")
    for argv, message in cases:
        for resume in ("auto", last) if "sgd" in argv else ("auto",):  # the run's own path: its version
            line = refused(argv + ["--epochs", "2", "--name", "r", "--resume", resume], capsys)
            assert message in line, line
            assert listing(logs) == before, argv  # not one file added, removed or changed
    main(tiny_args(tiny_demo, logs, "--epochs", "2", "--name", "r", "--resume", "auto"))
    final = torch.load(logs / "r" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 4 and not (logs / "r" / "version_1").exists()


@pytest.mark.slow
def test_sigterm_exits_non_zero_and_the_run_resumes(tiny_demo, tmp_path):
    """Issue 21 item 7: a run stopped by SIGTERM (a scheduler's pre-emption) exits with 143 (128 + 15)
    and says so, never 0; resumed, it continues at its last checkpoint: no step repeated or lost, the
    optimiser, schedule and EMA counts continuing (the exactness of a resume: the SIGKILL test)."""
    logs = tmp_path / "logs"
    cmd = [sys.executable, str(REPO / "train.py"), *tiny_args(tiny_demo, logs, "--checkpoint-every", "1",
                                                             "--name", "term", "--trace-sizes")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd + ["--epochs", "40"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    last = logs / "term" / "version_0" / "checkpoints" / "last.ckpt"
    while True:  # 80 steps in all: SIGTERM once a checkpoint of step >= 2 exists
        try:
            if torch.load(last, map_location="cpu", weights_only=True)["global_step"] >= 2:
                break
        except Exception:
            pass
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM at step" in err and "--resume auto" in err
    progress = __import__("json").loads((logs / "term" / "version_0" / "progress.json").read_text())
    assert progress["state"] == "stopped"
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 2 <= killed_at < 78, killed_at
    epochs = killed_at // 2 + 2  # at least one more epoch than the run had begun (2 steps each)

    result = run(cmd + ["--epochs", str(epochs), "--resume", "auto"])
    assert "resuming from" in result.stderr
    final = torch.load(last, map_location="cpu", weights_only=True)
    total = 2 * epochs
    assert final["global_step"] == total  # none repeated or lost
    assert {int(s["step"]) for s in final["optimizer_states"][0]["state"].values()} == {total}
    assert final["lr_schedulers"][0]["last_epoch"] == total and int(final["state_dict"]["ema.updates"]) == total
    trace = [tuple(map(int, line.split())) for line in
             (logs / "term" / "version_0" / "sizes_rank0.txt").read_text().splitlines()]
    resumed = [step for step, _ in trace][-(total - killed_at):]
    assert resumed == list(range(killed_at, total))  # continues at the checkpointed step


def test_resume_auto_of_a_broken_last_ckpt_is_one_line_and_touches_nothing(tiny_demo, tmp_path, capsys):
    """--resume auto picks the newest last.ckpt; a truncated one is refused in one line, not a traceback."""
    logs = tmp_path / "logs"
    ckpts = logs / "r" / "version_0" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    (logs / "r" / "version_0" / "metrics.csv").write_text("epoch,step\n0,1\n")
    before = listing(logs)
    line = refused(tiny_args(tiny_demo, logs, "--name", "r", "--resume", "auto"), capsys)
    assert "last.ckpt" in line and "not a PyTorch checkpoint" in line, line
    assert listing(logs) == before
