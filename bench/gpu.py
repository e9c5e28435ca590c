"""Training and evaluation speed on one CUDA GPU, on the real training path.

The model, data module and Lightning Trainer come from ``yolo.trainer`` exactly as ``train.py``
builds them (``build_datamodule``, ``build_module``, the same gradient clipping), at width 1.0,
416 px with multi-scale off, batch 16, mosaic 0.75, 8 data workers, voc-mini train. For each of
``32-true``, ``16-mixed`` and ``bf16-mixed`` it trains ``--warmup`` + ``--steps`` steps and reports,
over the timed steps: training images/s, peak GPU memory (``torch.cuda.max_memory_allocated``),
and the share of step time spent waiting for data (from the end of one step, GPU synchronised, to
the start of the next). Then it evaluates the split ``--eval-split`` the way validation does
(``trainer.validate``: forward, loss, decode + NMS, VOC mAP@0.5) in ``16-mixed`` and reports
images/s. The weights are those of the short training, not a converged model: with weights this
young nearly every image keeps many candidates, so NMS does more work than it would for a trained
model (evaluation images/s is a lower bound).

Targets: ``16-mixed`` at least 2x ``32-true`` images/s; data wait at most 5% of step time. The whole
script takes a few minutes on an H200.

    python -m bench.gpu [--data ../shared/data/voc-mini]           # writes bench/results/gpu.json

Without CUDA it prints one line and exits 0. ``--device cpu`` is a dry run of the same code path
(for tests: tiny width, few steps, e.g. ``--device cpu --steps 2 --width 0.125 --size 128``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_CUDA = "bench/gpu.py: no CUDA device on this machine; nothing measured (run it on a GPU machine)."
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "voc-mini",
                   help="dataset root (VOCdevkit layout; default ../shared/data/voc-mini)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--eval-split", default="val")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cuda (the benchmark) or cpu (a dry run of the same code path)")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--size", type=int, default=416)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--mosaic", type=float, default=0.75)
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (cuDNN, allocator, workers)")
    p.add_argument("--steps", type=int, default=40, help="timed training steps per precision")
    p.add_argument("--eval-precision", default=None, help="default 16-mixed (bf16-mixed for --device cpu)")
    p.add_argument("--eval-batches", type=int, default=None, help="limit evaluation to this many batches")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/gpu.json)")
    args = p.parse_args(argv)
    if args.device == "cpu" and "16-mixed" in args.precisions:
        p.error("16-mixed needs CUDA; on the CPU use --precisions 32-true bf16-mixed")
    if args.eval_precision is None:
        args.eval_precision = "16-mixed" if args.device == "cuda" else "bf16-mixed"
    return args


def train_config(args: argparse.Namespace, precision: str):
    """The TrainConfig of the measured runs (what ``train.py`` would be given)."""
    from yolo.config import override
    from yolo.trainer import TrainConfig

    return override(
        TrainConfig(),
        data=[str(args.data)], train_sets=[args.train_split], val_sets=[args.eval_split],
        width=args.width, min_size=args.size, max_size=args.size, val_size=args.size,
        batch_size=args.batch, mosaic=args.mosaic, workers=args.workers, precision=precision,
        accelerator="gpu" if args.device == "cuda" else "cpu", devices="1", map_every=1,
    )


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def step_timer(warmup: int, device: str):
    """A Lightning callback timing training steps after ``warmup`` steps: total wall time from
    one step's end (GPU synchronised) to the next one's, the part of it before the step starts
    (waiting for the batch), and the images seen."""
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.total = self.wait = 0.0
            self.images = self.steps = 0
            self._end: float | None = None
            self._counting = False

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            now = time.perf_counter()
            self._counting = trainer.global_step >= warmup and self._end is not None
            if self._counting:
                self.wait += now - self._end

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            _sync(device)
            now = time.perf_counter()
            if self._counting:
                self.total += now - self._end
                self.images += int(batch["images"].shape[0])
                self.steps += 1
            self._end = now

    return StepTimer()


def _trainer(config, args: argparse.Namespace, precision: str, callbacks: list, **limits):
    import pytorch_lightning as pl

    return pl.Trainer(
        accelerator=config.accelerator, devices=1, precision=precision, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=callbacks,
        gradient_clip_val=config.grad_clip or None, **limits,
    )


def measure_training(args: argparse.Namespace, precision: str) -> tuple[dict, object, object]:
    """Train warmup + steps steps in ``precision``; (row, module, datamodule)."""
    import torch

    from yolo.trainer import build_datamodule, build_module

    config = train_config(args, precision)
    torch.manual_seed(0)
    datamodule = build_datamodule(config)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(config, datamodule.num_classes, list(datamodule.classes))
    timer = step_timer(args.warmup, args.device)
    trainer = _trainer(config, args, precision, [timer], max_steps=args.warmup + args.steps,
                       limit_val_batches=0)
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    if timer.steps == 0:
        raise SystemExit(f"bench/gpu.py: no step was timed ({args.train_split} too small for "
                         f"--warmup {args.warmup} + --steps {args.steps}?)")
    row = {
        "precision": precision, "steps": timer.steps, "images": timer.images,
        "images_per_s": timer.images / timer.total, "step_ms": 1000 * timer.total / timer.steps,
        "data_wait_share": timer.wait / timer.total,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None,
    }
    return row, module, datamodule


def measure_evaluation(args: argparse.Namespace, module, datamodule) -> dict:
    """``trainer.validate`` over the eval split (forward, loss, decode + NMS, mAP); images/s."""
    import torch

    config = train_config(args, args.eval_precision)
    trainer = _trainer(config, args, args.eval_precision, [], limit_val_batches=args.eval_batches)
    loader = datamodule.val_dataloader()
    images = len(loader.dataset) if args.eval_batches is None else min(
        len(loader.dataset), args.eval_batches * args.batch)
    trainer.validate(module, dataloaders=loader, verbose=False)  # warm-up: workers, cuDNN, kernels
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(args.device)
    start = time.perf_counter()
    metrics = trainer.validate(module, dataloaders=loader, verbose=False)[0]
    _sync(args.device)
    seconds = time.perf_counter() - start
    return {"precision": args.eval_precision, "split": args.eval_split, "images": images,
            "seconds": seconds, "images_per_s": images / seconds,
            "val_map50": float(metrics.get("val/map50", float("nan"))),
            "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None}


def summary(rows: list[dict]) -> dict:
    """Speed-up of 16-mixed and bf16-mixed over 32-true, and the worst data-wait share."""
    by = {r["precision"]: r for r in rows}
    base = by.get("32-true")
    out = {"max_data_wait_share": max(r["data_wait_share"] for r in rows)}
    for p in ("16-mixed", "bf16-mixed"):
        if base and p in by:
            out[f"speedup_{p}"] = by[p]["images_per_s"] / base["images_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    if not (args.data / "VOCdevkit").is_dir() and not (args.data / "images").is_dir():
        raise SystemExit(f"bench/gpu.py: no dataset at {args.data} (give --data: a folder holding VOCdevkit/)")
    import warnings

    from bench.common import print_table, write_results

    warnings.filterwarnings("ignore", module="pytorch_lightning")
    rows, evaluation = [], None
    for precision in args.precisions:
        row, module, datamodule = measure_training(args, precision)
        rows.append(row)
        print_table([row], f"training, {precision}")
        if precision == args.precisions[-1]:
            evaluation = measure_evaluation(args, module, datamodule)
            print_table([evaluation], f"evaluation of {args.eval_split}")
        del module, datamodule
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()
    facts = summary(rows)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (dry run)"
    print_table(rows, f"training on {name}: width {args.width}, {args.size} px, batch {args.batch}, "
                      f"mosaic {args.mosaic}, {args.workers} workers")
    print(f"16-mixed / 32-true: {facts.get('speedup_16-mixed', float('nan')):.2f}x (target >= 2); "
          f"worst data wait {100 * facts['max_data_wait_share']:.1f}% of step time (target <= 5%)")
    payload = {"device": name, "settings": {k: str(v) for k, v in vars(args).items()},
               "training": rows, "evaluation": evaluation, **facts,
               "targets": {"speedup_16-mixed": 2.0, "max_data_wait_share": 0.05}}
    if args.out is None:
        write_results("gpu", payload)
    else:
        import json

        from bench.common import machine

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": "gpu", "machine": machine(), **payload}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
