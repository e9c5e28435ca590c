"""Training throughput on this machine, and where a step's time goes.

For widths 0.25 / 0.5 / 1.0 at 416 (mosaic 0.75, voc-mini train split, full training step:
data, target encoding, forward, loss, backward, optimiser, EMA, metrics, logging to CSV) it
reports images per second. At width 0.5 it splits the step: data wait, model forward, backward,
optimiser + EMA, and the rest (target encoding, loss, metrics, logging).

    python -m bench.train [--steps 12] [--widths 0.25 0.5 1.0] [--workers 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from bench.common import print_table, write_results
from yolo.data.datamodule import VOCDataModule
from yolo.lit import YoloLitModule

VOC_MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "voc-mini"


class StepClock(pl.Callback):
    """Wall-clock split of every training step after ``warmup`` steps."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.parts = {"data_wait": 0.0, "forward": 0.0, "backward": 0.0, "optimizer_ema": 0.0, "total": 0.0}
        self.images = 0
        self._t = {}

    def setup(self, trainer, pl_module, stage) -> None:
        model = pl_module.model
        model.register_forward_pre_hook(lambda *a: self._t.__setitem__("fwd", time.perf_counter()))
        model.register_forward_hook(lambda *a: self._add("forward", "fwd"))
        self._t["prev_end"] = time.perf_counter()

    def _counting(self, trainer) -> bool:
        return trainer.global_step >= self.warmup

    def _add(self, part: str, since: str) -> None:
        if self._t.get("count"):
            self.parts[part] += time.perf_counter() - self._t[since]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        self._t["count"] = self._counting(trainer)
        if self._t["count"]:
            self.parts["data_wait"] += now - self._t["prev_end"]
        self._t["start"] = self._t["prev_end"]

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._t["bwd"] = time.perf_counter()

    def on_after_backward(self, trainer, pl_module) -> None:
        self._add("backward", "bwd")
        self._t["opt"] = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._t["count"]:
            self.parts["optimizer_ema"] += now - self._t["opt"]
            self.parts["total"] += now - self._t["start"]
            self.images += batch["images"].shape[0]
        self._t["prev_end"] = time.perf_counter()


def run(width: float, steps: int, warmup: int, batch: int, workers: int, size: int) -> dict:
    torch.manual_seed(0)
    dm = VOCDataModule(VOC_MINI, train_sets=["train"], val_sets=["val"], batch_size=batch, sizes=(size,),
                       val_size=size, mosaic_p=0.75, workers=workers, progress=False)
    module = YoloLitModule(num_classes=20, width=width, ema=True, map_every=0)
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(
            max_steps=warmup + steps, limit_val_batches=0, accelerator="cpu", precision="32-true",
            logger=pl.loggers.CSVLogger(tmp), enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[clock], log_every_n_steps=1,
            use_distributed_sampler=False,
        )
        trainer.fit(module, dm)
    p = clock.parts
    model_time = p["forward"] + p["backward"]
    return {
        "width": width, "size": size, "batch": batch, "steps": steps,
        "images_per_s": clock.images / p["total"],
        "step_s": p["total"] / steps,
        "data_wait_share": p["data_wait"] / p["total"],
        "forward_share": p["forward"] / p["total"],
        "backward_share": p["backward"] / p["total"],
        "optimizer_ema_share": p["optimizer_ema"] / p["total"],
        "rest_share": (p["total"] - model_time - p["data_wait"] - p["optimizer_ema"]) / p["total"],
        "outside_fwd_bwd_share": 1 - model_time / p["total"],
        "outside_fwd_bwd_opt_share": 1 - (model_time + p["optimizer_ema"]) / p["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per width (after 3 warm-up steps)")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--workers", type=int, default=1, help="data-loading processes")
    args = parser.parse_args()
    if not VOC_MINI.is_dir():
        raise SystemExit(f"voc-mini not found at {VOC_MINI}")
    rows = [run(w, args.steps, 3, args.batch, args.workers, args.size) for w in args.widths]
    table = [{"width": r["width"], "img/s": r["images_per_s"], "step s": r["step_s"],
              "data wait": r["data_wait_share"], "forward": r["forward_share"],
              "backward": r["backward_share"], "optim+EMA": r["optimizer_ema_share"],
              "rest": r["rest_share"], "outside fwd+bwd": r["outside_fwd_bwd_share"]} for r in rows]
    print_table(table, f"training on this CPU ({torch.get_num_threads()} torch threads, {args.workers} "
                       f"data worker(s)), {args.size} px, batch {args.batch}, mosaic 0.75, fp32")
    half = next((r for r in rows if r["width"] == 0.5), None)
    if half:
        print(f"width 0.5: {100 * half['outside_fwd_bwd_opt_share']:.1f}% of step time outside forward, "
              f"backward and the optimiser (target <= 15%); {100 * half['outside_fwd_bwd_share']:.1f}% "
              f"counting the optimiser + EMA as outside")
    write_results("train", {"rows": rows, "target_outside_share": 0.15})


if __name__ == "__main__":
    main()
