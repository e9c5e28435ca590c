"""From a resolved ``TrainConfig`` to a finished (or resumed) run: data, module, callbacks, Trainer.

``train.py`` parses flags into a TrainConfig and calls ``fit``; tests and benchmarks call the
same functions, so the shell and Python paths cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities.exceptions import SIGTERMException

from yolo.callbacks import ProgressFile
from yolo.config import (
    ACC_CLASS, ACC_NOOBJ, ACC_OBJ, IMAGES_PER_SECOND, LOSS_TOTAL, MAP50, ModuleConfig, metric_key,
)
from yolo.config_checks import ConfigError, check_anchors, check_config
from yolo.cpu import configure_threads
from yolo.runs import claim_version, own_version, resolve_resume, run_dir, truncate_metrics, write_config
from yolo.weights import CheckpointError, read_training_checkpoint

if TYPE_CHECKING:
    from yolo.lit import YoloLitModule


# The run version shared by all processes of one run (set it on every node for multi-node DDP).
VERSION_ENV = "YOLO_RUN_VERSION"
# Exit status of a run stopped by SIGTERM (a scheduler's pre-emption or time limit): 128 + 15, the
# shell's status for that signal, so no scheduler reads an unfinished run as a success.
SIGTERM_STATUS = 128 + 15


@dataclass
class TrainConfig:
    """Every setting of a training run; ``train.py``'s flags are generated from these fields (a
    flag per leaf, named after it, its help the field's comment). The LightningModule's settings
    are the nested ``module`` (``yolo.config.ModuleConfig``)."""

    # data
    data: list[str] = field(default_factory=list)  # dataset root(s): a folder holding VOCdevkit/
    #                (or VOCdevkit itself), a YOLO folder (data.yaml, or images/<split> + labels/<split>),
    #                a COCO folder (annotations/instances_<split>.json) or JSON file, or the Kaggle
    #                layout (images/, labels/, train.csv, test.csv); README "Your own data"
    format: Literal["auto", "voc", "yolo", "coco", "kaggle"] = "auto"  # dataset layout: auto detects
    #                it; any other value also checks that every --data folder has it
    train_sets: list[str] = field(default_factory=lambda: ["2007/trainval", "2012/trainval"])  # year/split
    #                pairs to train on; Kaggle: train; YOLO and COCO: their split names (default: their
    #                own train and val)
    val_sets: list[str] = field(default_factory=lambda: ["2007/test"])  # year/split pairs to validate on
    use_difficult: bool = False  # also train on objects marked difficult (evaluation always flags them)
    cache_ram: bool = False  # keep decoded, resized images in RAM
    workers: int = 4  # data-loading processes per device
    # schedule
    epochs: int = 40  # epochs
    batch_size: int = 16  # images per batch per device, >= 1
    min_size: int = 320  # smallest multi-scale size, a multiple of 32 up to 2048: one size per batch
    #                      from min..max in steps of 32
    max_size: int = 608  # largest multi-scale size; min = max turns multi-scale off
    val_size: int = 416  # validation size; saved in the checkpoint as the size to run the model at
    mosaic: float = 0.75  # probability that a training sample is a mosaic of four images, in [0, 1]
    lr_find: bool = False  # run Lightning's LR finder first and use its suggestion as the peak LR
    grad_clip: float = 10.0  # gradient-norm clip, 0 for none
    precision: str = "auto"  # auto (16-mixed on CUDA, bf16-mixed on CPU), 32-true, 16-mixed, bf16-mixed
    anchors: str = "course"  # course (the seed's nine), auto (fitted to the training boxes when the course
    #                          anchors' best possible recall there is below 0.8, yolo.anchors; says what it
    #                          did), init (those of the --init file, e.g. a model trained with fitted
    #                          anchors) or an anchors JSON file (python -m yolo.data anchors DATA --out FILE)
    # model, loss, optimisation, validation: the LightningModule's settings
    module: ModuleConfig = field(default_factory=ModuleConfig)
    # hardware and scale-out
    accelerator: str = "auto"  # auto, gpu or cpu
    devices: str = "auto"  # device count (at most the machine's GPUs, or its CPU cores on the CPU),
    #                        a GPU list like 0,1, -1 (all) or auto
    num_nodes: int = 1  # machines for multi-node DDP
    strategy: str = "auto"  # auto, ddp, ddp_spawn, ... ("ddp" for several GPUs or nodes)
    sync_bn: bool = False  # SyncBatchNorm across processes
    threads: int = 0  # CPU threads of the model's operators; 0: the cores the data workers leave (yolo.cpu)
    # run bookkeeping
    name: str = "yolov3"  # run name, a plain folder name: <log_dir>/<name>/version_<n>/ (demo preset: demo)
    log_dir: str = "logs"  # where runs land
    resume: str | None = None  # auto (newest last.ckpt of this run name) or a checkpoint path; a
    #                            checkpoint from outside --log-dir/--name continues in a new version
    #                            folder, never in another run's
    init: str | None = None  # start a new run from this file's weights: a checkpoint, the course's
    #                          checkpoint.pth.tar or a Darknet .weights file (darknet53.conv.74:
    #                          backbone only); classes matched by name (COCO -> VOC), the rest fresh
    freeze_backbone: int = 0  # with --init: keep Darknet-53 frozen (weights and BatchNorm
    #                           statistics) for the first N epochs
    seed: int = 0  # random seed of weights, data order and augmentation
    checkpoint_every: int = 500  # also save last.ckpt every N training steps
    limit_train_batches: float | int | None = None  # batches per epoch (count or fraction), for smoke tests
    limit_val_batches: float | int | None = None  # validation batches (count or fraction)
    trace_sizes: bool = False  # record each rank's batch sizes (a DDP check)
    preset: str | None = None  # the settings the run started from (PRESETS)
    recipe: Literal["project", "course"] = "project"  # training recipe, applied after the preset:
    #         project (the defaults below) or course (the course's exact loss, assignment, init and
    #         schedule, README "Training recipe"); flags given still override it


PRESETS: dict[str, dict] = {
    # The seed's recipe: VOC07+12 trainval, test on VOC07 test, 416 for validation, 40 epochs.
    "voc": {},
    # The synthetic demo dataset and a small model at 128 px (its shapes are 14-45% of the image),
    # decoded once into RAM, one data worker (a 2-core machine has no core to spare): 88 s of
    # single-thread CPU, val mAP@0.5 0.96 (python -m bench.demo; README "Results").
    "demo": dict(
        train_sets=["train"], val_sets=["val"], epochs=10, batch_size=16, min_size=128,
        max_size=128, val_size=128, mosaic=0.5, width=0.25, lr=3e-3, ema=True, ema_decay=0.998,
        workers=1, cache_ram=True, name="demo", checkpoint_every=100, precision="32-true",
        # the settings it was tuned with (today's defaults, pinned): on the demo data the prior, a
        # 3-epoch warm-up and class weight 5 reached mAP 0.904 in the same 10 epochs, not 0.96
        obj_prior=0.0, warmup_epochs=0.0, warmup_bias_lr=0.0, lambda_class=1.0,
    ),
}


def _own_data_splits(config: TrainConfig) -> None:
    """A YOLO or COCO dataset: each of --train-sets / --val-sets left at VOC's default (07+12
    trainval, 07 test, which it cannot have) becomes the dataset's own (``default_splits``)."""
    from yolo.data.layout import DataLayoutError, default_splits, detect_format

    try:
        if detect_format(config.data[0]) not in ("yolo", "coco"):
            return
        splits = default_splits(config.data[0])
    except DataLayoutError:
        return  # check_config reports the folder
    if config.train_sets == TrainConfig().train_sets:
        config.train_sets = list(splits["train"])
    if config.val_sets == TrainConfig().val_sets:
        config.val_sets = list(splits["val"])
    print(f"--data {config.data[0]}: training on {', '.join(config.train_sets)}, validating on "
          f"{', '.join(config.val_sets) or 'nothing'} (its own splits; --train-sets/--val-sets choose)", file=sys.stderr)


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill what depends on the machine: precision, dataset for the demo preset."""
    if config.precision == "auto":
        if torch.cuda.is_available():
            config.precision = "16-mixed"
        else:
            config.precision = "bf16-mixed"
            print("no CUDA device: training in bf16-mixed on the CPU (pass --precision 32-true "
                  "for full precision)", file=sys.stderr)
    if config.preset == "demo" and not config.data:
        from yolo.data.demo import ensure_demo

        config.data = [str(ensure_demo())]
    if not config.data:
        raise SystemExit("no dataset: pass --data PATH (a VOCdevkit folder or the Kaggle layout), "
                         "or --preset demo for the synthetic demo dataset")
    return config


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing metrics.csv is continued, not deleted.

    Lightning 2.x removes metrics.csv when a version folder is reused; a resumed run keeps its
    history instead (rows after the resumed step are cut first by ``truncate_metrics``).
    """

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                header = f.readline().strip()
            self.metrics_keys = sorted(k for k in header.split(",") if k)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose writer appends to the metrics.csv of the version it resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class ImagesPerSecond(Callback):
    """Training throughput (images/s over the epoch's batches, data wait included)."""

    def __init__(self) -> None:
        self._images, self._start = 0, time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # not called on a mid-epoch resume
        self._images, self._start = 0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += batch["images"].shape[0]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self._start
        world = trainer.world_size
        pl_module.log(metric_key("train", IMAGES_PER_SECOND), self._images * world / max(seconds, 1e-9))


class EpochSummary(Callback):
    """One readable line per epoch, like the course's training log.

    Lightning runs callbacks' epoch-end hooks before the module logs its epoch metrics, so the
    line for an epoch is printed when the next one starts (or when training ends).
    """

    def __init__(self) -> None:
        self._ended: int | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._ended = trainer.current_epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._flush(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush(trainer, pl_module)

    def _flush(self, trainer, pl_module) -> None:
        if self._ended is None or not trainer.is_global_zero:
            return
        pl_module.print(summary_line(self._ended + 1, trainer.max_epochs, trainer.callback_metrics))
        self._ended = None


def summary_line(epoch: int, epochs: int | None, metrics: dict) -> str:
    """``epoch 3/40 | train loss .. class ..% noobj ..% obj ..% | val loss .. ... mAP@0.5 ..``."""
    m = {k: float(v) for k, v in metrics.items()}

    def get(stage: str, key: str, fmt: str = "{:.1f}") -> str:
        for name in (metric_key(stage, key) + "_epoch", metric_key(stage, key)):
            if name in m and not math.isnan(m[name]):
                return fmt.format(m[name])
        return "-"

    return (
        f"epoch {epoch}/{epochs} | "
        f"train loss {get('train', LOSS_TOTAL, '{:.3f}')} class {get('train', ACC_CLASS)}% "
        f"noobj {get('train', ACC_NOOBJ)}% obj {get('train', ACC_OBJ)}% | "
        f"val loss {get('val', LOSS_TOTAL, '{:.3f}')} class {get('val', ACC_CLASS)}% "
        f"noobj {get('val', ACC_NOOBJ)}% obj {get('val', ACC_OBJ)}% "
        f"mAP@0.5 {get('val', MAP50, '{:.3f}')}"
    )


class ResumeSampler(Callback):
    """On a mid-epoch resume, make the training batch sampler skip the batches already trained.

    Lightning resumes the step count mid-epoch but restarts a plain DataLoader from its first
    batch; ``MultiScaleBatchSampler.skip_next`` keeps the data (and each step's image size)
    exactly where the killed run was.
    """

    def on_train_start(self, trainer, pl_module) -> None:
        per_epoch = trainer.num_training_batches  # one optimiser step per batch
        done = trainer.global_step - trainer.current_epoch * per_epoch if per_epoch else 0
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if done and hasattr(sampler, "skip_next"):
            sampler.skip_next(done)


class SizeTrace(Callback):
    """Writes every training step's image size of this rank to sizes_rank<r>.txt (DDP checks)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        path = self.directory / f"sizes_rank{trainer.global_rank}.txt"
        with path.open("a") as f:
            f.write(f"{trainer.global_step} {batch['images'].shape[-1]}\n")


def build_datamodule(config: TrainConfig):
    from yolo.data.datamodule import VOCDataModule

    return VOCDataModule(
        roots=config.data, format=config.format, train_sets=config.train_sets,
        val_sets=config.val_sets, use_difficult=config.use_difficult,
        batch_size=config.batch_size, sizes=tuple(range(config.min_size, config.max_size + 1, 32)),
        val_size=config.val_size, mosaic_p=config.mosaic, workers=config.workers,
        cache_ram=config.cache_ram, seed=config.seed,
    )


def build_module(config: TrainConfig, num_classes: int, class_names: list[str], anchors=None):
    """The LightningModule of ``config.module`` for the dataset's classes, validated at
    ``config.val_size`` (saved in its checkpoints); ``anchors`` (3, 3, 2) fractions, default the course's."""
    from yolo.config import ANCHORS
    from yolo.lit import YoloLitModule

    return YoloLitModule(config.module, class_names, image_size=config.val_size, num_classes=num_classes,
                         anchors=ANCHORS if anchors is None else anchors)


def read_init(path: str, width: float, error: type[Exception] = SystemExit):
    """The ``--init`` file's ``ModelState`` (read once: its anchors and its weights come from it);
    a file that cannot be read raises ``error("--init: ...")``, one line."""
    from yolo.transfer import read_initial
    from yolo.weights import CheckpointError

    try:
        return read_initial(path, width)
    except CheckpointError as err:
        raise error(f"--init: {err}") from None


def pick_anchors(config: TrainConfig, datamodule, quiet: bool = False, init_state=None):
    """``--anchors`` -> (3, 3, 2) fraction anchors for the run; ``auto`` measures the course
    anchors on the training boxes and fits new ones below ``AUTO_MIN_BPR`` (deterministic for the
    seed, so every DDP process picks the same); ``init``: those of ``init_state`` (``read_init``)."""
    from yolo.anchors import choose_anchors, index_fractions

    check_anchors(config.anchors, config.init)  # check_config did too; a file may have changed since
    if config.anchors == "init":
        state = init_state if init_state is not None else read_init(config.init, config.module.model.width, ConfigError)
        anchors = state.anchors_at(config.val_size)
        if not quiet:
            print(f"--anchors init: the anchors of {config.init} (fractions of the input side, at "
                  f"--val-size {config.val_size} for pixel anchors)", file=sys.stderr)
        return anchors
    wh = index_fractions(datamodule.indexes["train"]) if config.anchors == "auto" else None
    try:
        choice = choose_anchors(config.anchors, wh, seed=config.seed)
    except ValueError as err:
        raise ConfigError(f"--anchors: {err}") from None
    if not quiet and config.anchors != "course":
        print(choice.message(), file=sys.stderr)
    return choice.anchors.as_list()


def init_weights(module, path: str, class_names: list[str], state=None) -> None:
    """Start ``module``'s network (and its EMA) from the weights of the file at ``path`` (``state``:
    already read by ``read_init``); warn when its prediction heads were trained for other anchors
    than the run's (``--anchors init`` keeps them)."""
    from yolo.anchors import SAME_ANCHORS_IOU, anchor_agreement
    from yolo.transfer import transfer
    from yolo.weights import CheckpointError

    if state is None:
        state = read_init(path, module.model.width)
    try:
        report = transfer(state, module.model, class_names)
    except CheckpointError as err:
        raise SystemExit(f"--init: {err}") from None
    heads = any(".predict." in key for key in report.loaded)
    agreement = anchor_agreement(state.anchors_at(module.hparams.image_size), module.hparams.anchors)
    if heads and agreement < SAME_ANCHORS_IOU:
        print(f"warning: --init {path} was trained with other anchors than this run's (corresponding "
              f"anchors' shape IoU down to {agreement:.2f}); its box outputs fit those: pass --anchors init "
              "to keep them", file=sys.stderr)
    if module.ema is not None:
        module.ema.module.load_state_dict(module.model.state_dict())
    print(f"--init {path}: {report.summary()}", file=sys.stderr)
    if report.warning():
        print(f"warning: --init {path}: {report.warning()}", file=sys.stderr)


class FreezeBackbone(Callback):
    """Darknet-53 frozen for the first ``epochs`` epochs: no gradients, BatchNorm in eval mode (its
    running statistics kept), so those layers stay exactly the file's; trained normally after."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def _frozen(self, trainer) -> bool:
        return trainer.current_epoch < self.epochs

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        from yolo.transfer import backbone_modules

        frozen = self._frozen(trainer)
        for layer in backbone_modules(pl_module.model):
            layer.requires_grad_(not frozen)
            layer.train(not frozen)
        if trainer.current_epoch == self.epochs and self.epochs:
            pl_module.print(f"epoch {self.epochs + 1}: backbone unfrozen")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._frozen(trainer):  # Lightning puts the module back in train mode after validation
            from yolo.transfer import backbone_modules

            for layer in backbone_modules(pl_module.model):
                layer.eval()


def checkpoint_callbacks(directory: Path, config: TrainConfig) -> list[Callback]:
    """last.ckpt every N steps and at every epoch end (one file, no "-v1" copies), and the best
    checkpoint by validation mAP@0.5 on the epochs that compute it.

    The epoch-end copy is a top-1 checkpoint named "last" with no monitor: Lightning writes
    ``save_last`` files only in a step where a top-k checkpoint was saved (and at the end of
    training), so a ``save_top_k=0, save_last=True`` callback would write nothing at epoch ends.
    """
    folder = directory / "checkpoints"
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=folder, save_last=True, save_top_k=0,
                        every_n_train_steps=config.checkpoint_every, enable_version_counter=False),
        ModelCheckpoint(dirpath=folder, filename=ModelCheckpoint.CHECKPOINT_NAME_LAST, monitor=None,
                        save_top_k=1, every_n_epochs=1, enable_version_counter=False),
    ]
    if config.module.val.map_every > 0:
        callbacks.append(ModelCheckpoint(
            dirpath=folder, filename="best-{epoch:03d}", monitor=metric_key("val", MAP50), mode="max",
            save_top_k=1, every_n_epochs=config.module.val.map_every, enable_version_counter=False))
    return callbacks


def _is_child_rank() -> bool:
    """True in the processes Lightning starts for DDP ranks > 0 (and on nodes > 0)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def find_lr(trainer: pl.Trainer, module, datamodule, config: TrainConfig) -> None:
    """Lightning's LR finder; its suggestion becomes the peak LR only when it is plausible."""
    from pytorch_lightning.tuner import Tuner

    # no early stop: the multi-scale, mosaic loss is noisy enough to look "diverging" early
    finder = Tuner(trainer).lr_find(module, datamodule=datamodule, min_lr=1e-6, max_lr=0.1,
                                    num_training=100, early_stop_threshold=None, update_attr=False)
    suggestion = finder.suggestion() if finder is not None else None
    if suggestion and 1e-5 <= suggestion <= 0.1:
        lr = float(suggestion)
        config.module.optim.lr = module.config.optim.lr = module.hparams.lr = lr
        print(f"LR finder suggests {suggestion:.2e}; using it as the peak LR", file=sys.stderr)
    else:
        print(f"LR finder gave no usable suggestion ({suggestion}); keeping --lr {config.module.optim.lr:g}",
              file=sys.stderr)


def fit(config: TrainConfig) -> Path:
    """Train (or resume) as configured; returns the run folder."""
    if config.data and (config.train_sets == TrainConfig().train_sets or config.val_sets == TrainConfig().val_sets):
        _own_data_splits(config)
    check_config(config)  # every setting, before any folder, index or process is made
    config = resolve(config)
    pl.seed_everything(config.seed, workers=True)
    ckpt_path, version = resolve_resume(config.log_dir, config.name, config.resume)
    own = ckpt_path is not None and own_version(ckpt_path, config.log_dir, config.name) is not None
    # DDP: Lightning re-runs this script for ranks > 0 with the parent's environment, so the
    # version chosen by the first process travels in an environment variable (set it by hand on
    # every node for multi-node runs); it is restored afterwards so a later fit() starts afresh.
    child = _is_child_rank()
    previous = os.environ.get(VERSION_ENV)
    if previous and (child or config.num_nodes > 1):
        version = int(previous)
    elif not own and not child:  # a new folder, made atomically: a run started at once gets the next
        version = claim_version(config.log_dir, config.name, version)
    if ckpt_path is not None and not own and not child:
        print(f"{ckpt_path} is not a checkpoint of {run_dir(config.log_dir, config.name, version).parent}: "
              f"continuing it in a new run folder, {run_dir(config.log_dir, config.name, version)} "
              "(the run it came from is not modified)", file=sys.stderr)
    os.environ[VERSION_ENV] = str(version)
    try:
        return _fit(config, ckpt_path, version, child)
    finally:
        if previous is None:
            os.environ.pop(VERSION_ENV, None)
        else:
            os.environ[VERSION_ENV] = previous


def check_resume_groups(ckpt_path: Path, saved: list[int], module: YoloLitModule) -> None:
    """Refuse a resume whose settings build other optimiser groups than the checkpoint holds
    (``saved``: group sizes from ``optimiser_group_sizes``), before Lightning fails on it mid-set-up.

    The groups depend on ``--warmup-epochs``/``--warmup-bias-lr`` (biases get their own group
    during a bias warm-up); a run started under other defaults than today's is the usual cause."""
    now = [len(g["params"]) for g in module.optimiser_groups()]
    if saved and saved != now:
        hp = module.config.optim
        raise ConfigError(
            f"--resume {ckpt_path}: its optimiser has {len(saved)} parameter groups (sizes {saved}), these "
            f"settings build {len(now)} (sizes {now}; --warmup-epochs {hp.warmup_epochs:g}, --warmup-bias-lr "
            f"{hp.warmup_bias_lr:g}). Resume with the settings the run was started with (its config.yaml); "
            f"a bias warm-up (both > 0) gives the biases a group of their own")


def _shape(t) -> list[int]:
    return list(t.shape) if isinstance(t, torch.Tensor) else []


def _settings_differ(saved: dict, now: dict, limit: int = 4) -> str:
    """'width 0.125 -> 0.25, class_names [...] -> [...]': the saved hyper-parameters these
    settings change (at most ``limit``), for a refusal's message."""
    diffs = [f"{k} {saved[k]!r} -> {now[k]!r}" for k in now if k in saved and saved[k] != now[k]]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def _restore_problem(raw: dict, module: YoloLitModule, epochs: int) -> str | None:
    """Why the training state in ``raw`` cannot be restored into ``module`` (and the optimiser and
    schedule its settings build), or None: the restore Lightning does at the start of ``fit``, run
    on a freshly built module, optimiser and schedule (nothing of the run is touched)."""
    saved, mine = raw.get("state_dict"), module.state_dict()
    if not isinstance(saved, dict):
        return "its 'state_dict' is not a dict"
    missing, unexpected = sorted(mine.keys() - saved.keys()), sorted(saved.keys() - mine.keys())
    if missing or unexpected:
        names = (missing or unexpected)[:2]
        return (f"{len(missing)} tensors of these settings' model are missing from the checkpoint and "
                f"{len(unexpected)} of the checkpoint's are not in it (e.g. {', '.join(map(str, names))})")
    other = [k for k in mine if _shape(saved[k]) != _shape(mine[k])]
    if other:
        k = other[0]
        return (f"{len(other)} tensors have other shapes (e.g. {k}: {_shape(saved[k])} in the checkpoint, "
                f"{_shape(mine[k])} with these settings)")
    try:
        module.load_state_dict(saved, strict=True)
        module.on_load_checkpoint(raw)
    except (RuntimeError, TypeError, ValueError) as err:
        return f"its weights do not load ({str(err).splitlines()[0]})"
    built = module.build_optimisation(total=1, epochs=epochs)
    opt = built["optimizer"] if isinstance(built, dict) else built
    schedules = [built["lr_scheduler"]["scheduler"]] if isinstance(built, dict) else []
    states, saved_schedules = raw.get("optimizer_states") or [], raw.get("lr_schedulers") or []
    if len(states) != 1:
        return f"it holds {len(states)} optimiser states, these settings build 1 optimiser"
    if len(saved_schedules) != len(schedules):
        return (f"it holds {len(saved_schedules)} LR schedules, these settings build {len(schedules)} "
                "(--one-cycle)")
    probe_keys = _fresh_state_keys(opt)
    try:
        opt.load_state_dict(states[0])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as err:
        return f"its optimiser state does not fit a {type(opt).__name__} of this model ({str(err).splitlines()[0]})"
    lacking = sorted({k for g in opt.param_groups for k in opt.defaults if k not in g})
    found_keys = {frozenset(s) for s in opt.state.values()}
    if lacking or (found_keys and found_keys != {probe_keys}):
        kind = type(opt).__name__
        return (f"its optimiser is not {kind} (--optimizer): its saved groups lack {lacking[:3]} or its "
                f"per-parameter state holds {sorted(map(sorted, found_keys))[:1]}, where {kind} keeps "
                f"{sorted(probe_keys)}")
    for group in opt.param_groups:
        for p in group["params"]:
            bad = [k for k, v in opt.state.get(p, {}).items() if isinstance(v, torch.Tensor) and v.dim()
                   and v.shape != p.shape]
            if bad:
                return f"its optimiser state {bad[0]!r} has shape {_shape(opt.state[p][bad[0]])}, the parameter {_shape(p)}"
    for schedule, state in zip(schedules, saved_schedules):
        fresh = set(schedule.state_dict())
        if not isinstance(state, dict) or set(state) != fresh:
            return (f"its LR schedule is not a {type(schedule).__name__} (--schedule, --one-cycle): it saves "
                    f"{sorted(state)[:4] if isinstance(state, dict) else type(state).__name__}")
        try:
            schedule.load_state_dict(dict(state))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            return f"its LR schedule does not load ({type(err).__name__}: {err})"
    return None


def _fresh_state_keys(opt: torch.optim.Optimizer) -> frozenset:
    """The per-parameter state keys one step of an optimiser of ``opt``'s kind and settings keeps
    (stepped on a one-element parameter, so nothing of the model is touched)."""
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    settings = {k: v for k, v in opt.param_groups[0].items() if k not in ("params", "initial_lr")}
    probe = type(opt)([{"params": [p], **settings}])
    probe.step()
    return frozenset(probe.state[p])


def _group_sizes(raw: dict, path: Path) -> list[int]:
    """``optimiser_group_sizes`` of an already loaded checkpoint."""
    states = raw.get("optimizer_states") or []
    try:
        return [len(g["params"]) for g in (states[0]["param_groups"] if states else [])]
    except (KeyError, TypeError, IndexError) as err:
        raise CheckpointError(f"{path}: unreadable optimiser state ({type(err).__name__}: {err})") from None


def check_resume_restores(ckpt_path: Path, module: YoloLitModule, epochs: int) -> None:
    """Refuse a resume whose training state cannot be restored under these settings (another
    width, classes, EMA, optimiser or schedule...) before any file of the run is written: a dry
    run of Lightning's restore on the freshly built module (``_restore_problem``); one line
    naming the hyper-parameters these settings change."""
    try:  # read_training_checkpoint has checked the file; mapped, its tensors are not copied
        raw = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) torch.save file cannot be mapped
        raw = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    try:
        check_resume_groups(ckpt_path, _group_sizes(raw, ckpt_path), module)
    except CheckpointError as err:
        raise ConfigError(f"--resume: {err}") from None
    problem = _restore_problem(raw, module, epochs)
    if problem is None:
        return
    hparams = raw.get("hyper_parameters")
    changed = _settings_differ(hparams, dict(module.hparams)) if isinstance(hparams, dict) else ""
    raise ConfigError(
        f"--resume {ckpt_path} cannot continue with these settings: {problem}"
        + (f"; these settings change {changed}" if changed else "")
        + ". Resume with the settings and dataset the run was started with (its config.yaml), "
          "or start a new run from its weights with --init")


def _fit(config: TrainConfig, ckpt_path: Path | None, version: int, child: bool) -> Path:
    directory = run_dir(config.log_dir, config.name, version)
    try:  # --resume auto's newest last.ckpt is read here first (an explicit path by check_config)
        resumed = read_training_checkpoint(ckpt_path) if ckpt_path is not None else None
    except CheckpointError as err:
        raise ConfigError(f"--resume {ckpt_path}: {err}") from None
    datamodule = build_datamodule(config)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if resumed is not None and resumed[0].num_classes != datamodule.num_classes:
        raise ConfigError(f"--resume {ckpt_path}: the checkpoint has {resumed[0].num_classes} classes, "
                          f"the dataset {datamodule.num_classes}; resume with the dataset it was trained on")
    if resumed is not None and list(resumed[0].class_names) != list(datamodule.classes):
        raise ConfigError(f"--resume {ckpt_path}: the checkpoint's classes are {resumed[0].class_names}, "
                          f"the dataset's {list(datamodule.classes)}; resume with the dataset it was trained on")
    init_state = None  # the --init file, read once for its anchors and its weights (a resumed run uses neither)
    if config.init and ckpt_path is None:
        error = ConfigError if config.anchors == "init" else SystemExit  # as when each read on its own
        init_state = read_init(config.init, config.module.model.width, error)
    anchors = resumed[0].anchors if resumed is not None else pick_anchors(config, datamodule, child, init_state)
    module = build_module(config, datamodule.num_classes, list(datamodule.classes), anchors)
    if ckpt_path is not None:
        check_resume_restores(ckpt_path, module, config.epochs)
    # the run's logged history is cut back to the checkpoint only once every check has passed
    if resumed is not None and not child:
        step = resumed[1]
        dropped = truncate_metrics(directory / "metrics.csv", step)
        print(f"resuming from {ckpt_path} at step {step} ({dropped} logged rows after it dropped)",
              file=sys.stderr)
    if config.init and ckpt_path is None:  # a resumed run continues its own weights instead
        init_weights(module, config.init, list(datamodule.classes), init_state)
    loggers = [
        ResumableCSVLogger(config.log_dir, name=config.name, version=version),
        TensorBoardLogger(config.log_dir, name=config.name, version=version, default_hp_metric=False),
    ]
    callbacks = [*checkpoint_callbacks(directory, config), ImagesPerSecond(), EpochSummary(),
                 ResumeSampler(), TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else 5),
                 ProgressFile(directory),  # <run folder>/progress.json, read by the dashboard's job panel
                 LearningRateMonitor(logging_interval="step")]  # train/lr/pg<k>: the scheduler's name (lit.py)
    if config.trace_sizes:
        callbacks.append(SizeTrace(directory))
    strategy = config.strategy
    if config.freeze_backbone > 0:
        callbacks.append(FreezeBackbone(config.freeze_backbone))
        if strategy == "ddp":  # frozen parameters get no gradient for a while
            strategy = "ddp_find_unused_parameters_true"
    threads, why = configure_threads(config.workers, config.threads)
    print(f"model threads: {threads} ({why})", file=sys.stderr)
    trainer = pl.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=config.devices,
        num_nodes=config.num_nodes, strategy=strategy, precision=config.precision,
        logger=loggers, callbacks=callbacks, gradient_clip_val=config.grad_clip or None,
        sync_batchnorm=config.sync_bn,
        use_distributed_sampler=False,  # the data module's multi-scale sampler shards by rank
        log_every_n_steps=10, limit_train_batches=config.limit_train_batches,
        limit_val_batches=config.limit_val_batches, deterministic=False,
    )
    if config.lr_find and ckpt_path is None:
        find_lr(trainer, module, datamodule, config)
    if not child:
        write_config(directory, dataclasses.asdict(config))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except SIGTERMException:  # a SystemExit with no code: the process would exit 0, "success"
        if not child:
            print(f"stopped by SIGTERM at step {trainer.global_step}: {directory} is incomplete; continue it "
                  f"with --resume auto (from its last checkpoint)", file=sys.stderr)
        raise SystemExit(SIGTERM_STATUS) from None
    return directory
