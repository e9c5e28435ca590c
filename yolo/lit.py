"""The LightningModule: one shared step for train/val/test, optimiser + one-cycle, EMA, logging.

A batch is the data module's dict (see ``yolo.data``): "images" uint8 (B, 3, S, S), "boxes"
(N, 4) xyxy pixels of that frame, "labels", "batch_idx", "difficult". Targets are encoded here,
on the batch's device, for the batch's own size, so multi-resolution batches need nothing else.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from yolo.boxes import normalize, xyxy_to_cxcywh
from yolo.config import (
    ACCURACIES, ANCHORS, LEARNING_RATE, LOSS_TOTAL, MAP50, MAP50_VOC07, SKIPPED_STEPS, VOC_CLASSES,
    ModuleConfig, from_dict, grid_sizes, leaves, metric_key, override,
)
from yolo.letterbox import Letterbox, boxes_from_letterbox
from yolo.loss import YoloLoss
from yolo.metrics import CellAccuracy, VOCMeanAP
from yolo.model import YOLOv3, set_objectness_prior
from yolo.selection import decode_candidates, select
from yolo.targets import encode


class ModelEMA(nn.Module):
    """Exponential moving average of a model's parameters and buffers, with a warm-up.

    decay_t = decay * (1 - exp(-t / tau)): early updates follow the model closely. Stored as a
    submodule so Lightning saves and restores it with the checkpoint ("ema.module.*").
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.tau = decay, tau
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-float(self.updates) / self.tau))
        ema_state = list(self.module.state_dict().values())
        model_state = list(model.state_dict().values())
        floats = [(e, m) for e, m in zip(ema_state, model_state) if e.dtype.is_floating_point]
        torch._foreach_lerp_([e for e, _ in floats], [m.detach() for _, m in floats], 1 - d)
        for e, m in zip(ema_state, model_state):
            if not e.dtype.is_floating_point:
                e.copy_(m)


def one_cycle(step: int, total: int, pct_start: float = 0.3, div: float = 25.0,
              final_div: float = 1e4) -> float:
    """LR multiplier of a cosine one-cycle schedule (1.0 at the peak), clamped past ``total``.

    Rises from 1/div to 1 over the first pct_start of the steps, then falls to 1/(div*final_div).
    Unlike torch's OneCycleLR it never raises when a resumed run takes a few extra steps.
    """
    total = max(total, 1)
    warm = max(int(total * pct_start), 1)
    lo_start, lo_end = 1.0 / div, 1.0 / (div * final_div)
    if step < warm:
        t = step / warm
        return lo_start + (1 - lo_start) * (1 - math.cos(math.pi * t)) / 2
    t = min((step - warm) / max(total - warm, 1), 1.0)
    return lo_end + (1 - lo_end) * (1 + math.cos(math.pi * t)) / 2


def warmup_cosine(step: int, total: int, warm: int, final_div: float = 1e4 * 25.0) -> float:
    """LR multiplier of a linear warm-up over ``warm`` steps, then a cosine fall to 1/final_div.

    Step 0 trains at 1/warm of the peak (never at 0); clamped past ``total`` like ``one_cycle``.
    """
    warm, total = max(warm, 1), max(total, 1)
    if step < warm:
        return (step + 1) / warm
    t = min((step - warm) / max(total - warm, 1), 1.0)
    lo_end = 1.0 / final_div
    return lo_end + (1 - lo_end) * (1 + math.cos(math.pi * t)) / 2


def bias_warmup(factor, warm: int, start: float):
    """A bias group's multiplier: from ``start`` (x the peak LR) at step 0 to ``factor(warm)``,
    linearly, then ``factor`` itself (YOLOv5's higher bias LR during warm-up)."""
    warm = max(warm, 1)

    def lam(step: int) -> float:
        if step >= warm:
            return factor(step)
        t = step / warm
        return start + (factor(step) - start) * t
    return lam


class CourseOneCycleLR(torch.optim.lr_scheduler.OneCycleLR):
    """torch's OneCycleLR as the course calls it (``pct_start = 5 / epochs``, at most 0.99 for runs
    of 5 epochs or fewer), holding its last value past ``total_steps`` instead of raising (a
    resumed run may take a few steps more than estimated)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, epochs: int) -> None:
        max_lr = [g["lr"] for g in optimizer.param_groups]
        super().__init__(optimizer, max_lr=max_lr, total_steps=max(total_steps, 2),
                         pct_start=min(5 / max(epochs, 1), 0.99), div_factor=100,
                         final_div_factor=100, three_phase=False, anneal_strategy="linear")

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        self.last_epoch = min(step, self.total_steps - 1)
        try:
            return super().get_lr()
        finally:
            self.last_epoch = step


def parameter_groups(model: nn.Module, weight_decay: float, decay_all: bool,
                     split_biases: bool) -> list[dict]:
    """Optimiser groups: convolution weights (decayed); BatchNorm weights and biases (decayed
    only with ``decay_all``); the biases in a group of their own with ``split_biases``."""
    weights, norms, biases = [], [], []
    for name, p in model.named_parameters():
        if p.ndim > 1:
            weights.append(p)
        elif split_biases and name.endswith("bias"):
            biases.append(p)
        else:
            norms.append(p)
    rest = weight_decay if decay_all else 0.0
    groups = [{"params": weights, "weight_decay": weight_decay},
              {"params": norms, "weight_decay": rest}]
    if split_biases:
        groups.append({"params": biases, "weight_decay": rest})
    return groups


class YoloLitModule(pl.LightningModule):
    """YOLOv3 training and evaluation, configured by one ``ModuleConfig`` (``yolo.config``).

    Args:
        config: the settings; None for the defaults.
        class_names: one name per class (default: the first ``num_classes`` VOC names).
        image_size: the square input side (pixels, a multiple of 32) the model is validated at;
            saved so a checkpoint says which size to run it at.
        anchors: (3 scales, 3 anchors, (w, h)) fractions of the image side.
        **settings: leaf settings by name (``width=0.25, lr=3e-3``) overriding ``config``'s.

    The hyper-parameters saved in the checkpoint are plain values (``weights_only`` loads them):
    every leaf of the config by name (``num_classes``, ``width``, ``lr``, ...), ``class_names``,
    ``anchors`` and ``image_size``.
    """

    def __init__(
        self,
        config: ModuleConfig | dict | None = None,
        class_names: Sequence[str] | None = None,
        image_size: int = 416,
        anchors: Sequence = ANCHORS,
        **settings,
    ) -> None:
        super().__init__()
        if isinstance(config, dict):  # dataclasses.asdict(config)
            config = from_dict(ModuleConfig, config)
        config = override(config or ModuleConfig(), **settings)
        grid_sizes(image_size)  # validates: a positive multiple of 32
        num_classes = config.model.num_classes
        class_names = list(class_names or VOC_CLASSES[:num_classes])
        anchors = [[list(a) for a in scale] for scale in anchors]
        self.config = config
        self.save_hyperparameters({**leaves(config), "class_names": class_names, "anchors": anchors,
                                   "image_size": int(image_size)})
        self.model = YOLOv3(num_classes, config.model.width)
        if config.model.obj_prior > 0:
            set_objectness_prior(self.model, config.model.obj_prior, image_size)
        optim = config.optim
        self.ema = ModelEMA(self.model, optim.ema_decay, optim.ema_tau) if optim.ema else None
        self.loss_fn = YoloLoss(config.loss, anchors=anchors)
        self.train_acc = CellAccuracy(threshold=config.val.acc_threshold)
        self.val_acc = CellAccuracy(threshold=config.val.acc_threshold)
        self.val_map = VOCMeanAP(num_classes=num_classes)
        self.nms = config.val.nms
        self.nonfinite_total = 0
        self.nonfinite_streak = 0
        self._loss_finite = True

    # ------------------------------------------------------------------ the shared step
    def forward(self, images: Tensor) -> list[Tensor]:
        """images (B, 3, H, W) float in [0, 1] -> 3 raw outputs (B, 3, S, S, 5 + C)."""
        return self.model(images)

    def eval_model(self) -> nn.Module:
        """The weights used for validation and export: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def encode_batch(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        size = batch["images"].shape[-1]
        boxes = normalize(xyxy_to_cxcywh(batch["boxes"].float()), size, size)
        target = self.config.target
        return encode(boxes, batch["labels"], batch["batch_idx"], batch["images"].shape[0], size,
                      self.hparams.anchors, target.ignore_iou, target.anchor_ratio)

    def _shared_step(self, batch: dict, stage: str) -> Tensor:
        images = batch["images"].float() / 255.0
        targets = self.encode_batch(batch)
        model = self.model if stage == "train" else self.eval_model()  # val/test: the EMA
        outputs = model(images)
        losses = self.loss_fn(outputs, targets)
        finite = bool(torch.isfinite(losses[LOSS_TOTAL]))
        acc = self.train_acc if stage == "train" else self.val_acc
        if finite:
            acc.update([o.detach() for o in outputs], targets)
            for name, value in losses.items():
                self.log(metric_key(stage, name), value.detach(), on_step=stage == "train",
                         on_epoch=True, prog_bar=name == LOSS_TOTAL, batch_size=images.shape[0],
                         sync_dist=stage != "train")
        if stage != "train" and self._map_due():
            self.val_map.update(*original_frame(outputs, batch, self.nms, self.hparams.anchors))
        self._loss_finite = finite
        return losses[LOSS_TOTAL]

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        if not self._loss_finite:
            self.nonfinite_total += 1
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    # ------------------------------------------------------------------ fault handling, EMA
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the update when the gradients (all-reduced under DDP, so every rank agrees) are not
        finite: dropping every gradient makes the optimiser leave the weights alone."""
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            # fp16: the GradScaler skips overflowing steps itself (and they are part of its scale
            # search), so only a non-finite loss counts here
            self._count_nonfinite(self._loss_finite, drop_grads=False)
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        finite = bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()) if grads else True
        self._count_nonfinite(finite and self._loss_finite, drop_grads=True)

    def _count_nonfinite(self, finite: bool, drop_grads: bool) -> None:
        if finite:
            self.nonfinite_streak = 0
            return
        if drop_grads:
            for p in self.model.parameters():
                p.grad = None
        self.nonfinite_streak += 1
        if self._loss_finite:  # the loss was fine but the gradients were not
            self.nonfinite_total += 1
        if self.nonfinite_streak >= self.config.optim.max_nonfinite:
            self.print(f"stopping: {self.nonfinite_streak} non-finite steps in a row; lower the "
                       "learning rate or check the data (python -m yolo.data check PATH)")
            self.trainer.should_stop = True

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser step, then the EMA update (before any callback can checkpoint the step)."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None and self.nonfinite_streak == 0:
            self.ema.update(self.model)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["nonfinite_total"] = self.nonfinite_total

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.nonfinite_total = int(checkpoint.get("nonfinite_total", 0))

    # ------------------------------------------------------------------ epoch ends
    def _map_due(self) -> bool:
        k = self.config.val.map_every
        if self.trainer is not None and self.trainer.testing:
            return True  # a test run always reports mAP
        if not k or self.trainer is None or self.trainer.sanity_checking:
            return False
        epoch = self.current_epoch + 1
        return epoch % k == 0 or epoch >= (self.trainer.max_epochs or epoch)

    def on_train_epoch_end(self) -> None:
        self._log_accuracies("train", self.train_acc)
        self.log(metric_key("train", SKIPPED_STEPS), float(self.nonfinite_total), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_accuracies("val", self.val_acc)
        if self._map_due():
            result = self.val_map.compute()
            self.log(metric_key("val", MAP50), float(result[MAP50]))
            self.log(metric_key("val", MAP50_VOC07), float(result[MAP50_VOC07]))
            self.val_map.reset()

    def on_test_epoch_end(self) -> None:
        self._log_accuracies("test", self.val_acc)
        result = self.val_map.compute()
        self.log(metric_key("test", MAP50), float(result[MAP50]))
        self.log(metric_key("test", MAP50_VOC07), float(result[MAP50_VOC07]))
        self.val_map.reset()

    def _log_accuracies(self, stage: str, metric: CellAccuracy) -> None:
        values = metric.compute()
        for name in ACCURACIES:
            self.log(metric_key(stage, name), float(values[name]))  # nan: no such cells
        metric.reset()

    # ------------------------------------------------------------------ optimiser
    def _bias_warmup(self) -> bool:
        """Whether warm-up gives the biases their own LR (and so their own parameter group)."""
        hp = self.config.optim
        return hp.warmup_bias_lr > 0 and hp.warmup_epochs > 0 and hp.one_cycle

    def optimiser_groups(self) -> list[dict]:
        """The optimiser's parameter groups for these settings: weights, norms[, biases]."""
        hp = self.config.optim
        return parameter_groups(self.model, hp.weight_decay, hp.decay_all, split_biases=self._bias_warmup())

    def configure_optimizers(self):
        total = int(self.trainer.estimated_stepping_batches)
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        return self.build_optimisation(total, epochs)

    def build_optimisation(self, total: int, epochs: int):
        """The optimiser (and, with one-cycle, its per-step LR schedule over ``total`` steps of
        ``epochs`` epochs) in ``configure_optimizers``' return format; also what a resume's dry
        run restores the checkpoint's state into (``yolo.trainer.check_resume_restores``)."""
        hp = self.config.optim
        warm_bias = self._bias_warmup()
        groups = self.optimiser_groups()
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=True)
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=hp.lr)
        elif hp.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        else:
            raise ValueError(f"unknown optimizer {hp.optimizer!r}: use adamw, adam or sgd")
        if not hp.one_cycle:
            return opt
        if hp.schedule == "course":
            schedule = CourseOneCycleLR(opt, total, epochs)
        else:
            if hp.warmup_epochs > 0:
                warm = min(max(round(hp.warmup_epochs * total / epochs), 1), total)

                def factor(step: int) -> float:
                    return warmup_cosine(step, total, warm)
            else:
                def factor(step: int) -> float:
                    return one_cycle(step, total, hp.pct_start)
            lambdas = [factor] * len(groups)
            if warm_bias:
                lambdas[-1] = bias_warmup(factor, warm, hp.warmup_bias_lr / hp.lr)
            schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambdas)
        # name: LearningRateMonitor logs train/lr/pg1 (weights), train/lr/pg2 (norms[, biases]),
        # train/lr/pg3 (biases, when warm-up gives them their own LR)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step",
                                                   "name": metric_key("train", LEARNING_RATE)}}


def letterboxes(batch: dict) -> list[Letterbox]:
    """The batch's letterbox records (evaluation batches carry them in ``meta``); an image
    without one is taken as its own original (scale 1, no padding)."""
    size = int(batch["images"].shape[-1])
    metas = batch.get("meta") or [{}] * batch["images"].shape[0]
    return [Letterbox(int(m["size"]), tuple(int(v) for v in m["orig_size"]), float(m["scale"]), int(m["pad_x"]),
                      int(m["pad_y"])) if m and "scale" in m else Letterbox(size, (size, size), 1.0, 0, 0)
            for m in metas]


def original_frame(outputs: Sequence[Tensor], batch: dict, config, anchors) -> tuple[list[dict], list[dict]]:
    """Raw outputs of an evaluation batch -> (detections, ground truth) per image, in pixels of
    each ORIGINAL image, by the Detector's own functions (``decode_candidates``: boxes mapped back
    and clipped to the image; ``select``: confidence, pre-NMS top-k, class-aware NMS), so that
    validation mAP is the mAP ``python -m yolo.evaluate`` reports for the same checkpoint and images.
    """
    records = letterboxes(batch)
    with torch.no_grad():
        c = decode_candidates([o.detach().float() for o in outputs], records, config.conf_threshold, None, anchors)
        kept = select(c.boxes, c.scores, c.labels, c.images, len(records), config)
    dets = [{"boxes": c.boxes[k], "scores": c.scores[k], "labels": c.labels[k]} for k in kept]
    truth = ground_truth(batch)
    for t, lb in zip(truth, records):
        t["boxes"] = boxes_from_letterbox(t["boxes"].float(), lb, clip=False)
    return dets, truth


def ground_truth(batch: dict) -> list[dict[str, Tensor]]:
    """The batch's boxes split per image: [{"boxes", "labels", "difficult"}] in the batch frame."""
    n = batch["images"].shape[0]
    counts = torch.bincount(batch["batch_idx"], minlength=n).tolist()
    order = torch.argsort(batch["batch_idx"], stable=True)
    difficult = batch.get("difficult")
    if difficult is None:
        difficult = torch.zeros_like(batch["labels"], dtype=torch.bool)
    return [
        {"boxes": b, "labels": l, "difficult": d}
        for b, l, d in zip(
            torch.split(batch["boxes"][order], counts),
            torch.split(batch["labels"][order], counts),
            torch.split(difficult[order], counts),
        )
    ]


__all__ = ["YoloLitModule", "ModelEMA", "one_cycle", "warmup_cosine", "ground_truth"]
