"""The 32-image overfit of ``tests/test_convergence.py`` with any recipe settings, printing the
seed's three cell accuracies and mAP@0.5 every k epochs (the test itself validates once, at the
end; validating more often draws more random numbers, so the augmentations differ slightly).

    OMP_NUM_THREADS=1 python -m bench.overfit --epochs 200 --every 10 obj_prior=6    # the test's settings
    OMP_NUM_THREADS=1 python -m bench.overfit --epochs 120 --every 10 --size 256 obj_prior=6 \
        warmup_epochs=3 warmup_bias_lr=0.01 lambda_class=5     # the default recipe tried last round
    OMP_NUM_THREADS=1 python -m bench.overfit --batch 4 width=0.125 lr=0.006 ...     # any module setting

Settings not given are YoloLitModule's defaults, except width 0.25 and lr 3e-3 (the test's).
Needs voc-mini (``$VOC_MINI`` or ../shared/data/voc-mini); writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch

from yolo.config import ACC_CLASS, ACC_NOOBJ, ACC_OBJ, MAP50, metric_key
from yolo.data.augment import AugConfig
from yolo.data.datamodule import VOCDataModule
from yolo.lit import YoloLitModule

REPO = Path(__file__).resolve().parents[1]


class Report(pl.Callback):
    """Prints the validation figures after each validation (the module has logged them by then)."""

    def on_validation_end(self, trainer, pl_module) -> None:
        m = trainer.callback_metrics
        acc = {k: round(float(m[metric_key("val", k)]), 1) for k in (ACC_CLASS, ACC_NOOBJ, ACC_OBJ)}
        mean_ap = m.get(metric_key("val", MAP50))
        shown = f" mAP@0.5 {float(mean_ap):.3f}" if mean_ap is not None else ""
        print(f"epoch {trainer.current_epoch + 1}: {acc}{shown}", flush=True)


def main(argv: list[str] | None = None) -> None:
    import sys

    sys.path.insert(0, str(REPO / "tests"))  # the test's own 32-image subset builder
    from test_convergence import subset_of_voc_mini

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--every", type=int, default=20, help="validate every k epochs")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("settings", nargs="*", help="module settings as name=value (floats)")
    args = p.parse_args(argv)
    settings = {k: float(v) for k, v in (s.split("=", 1) for s in args.settings)}
    voc = Path(os.environ.get("VOC_MINI") or REPO.parent / "shared" / "data" / "voc-mini")
    with tempfile.TemporaryDirectory() as tmp:
        root = subset_of_voc_mini(voc, Path(tmp) / "voc32", 32)
        torch.manual_seed(0)
        dm = VOCDataModule(root, train_sets=["train"], val_sets=["train"], batch_size=args.batch, sizes=(args.size,),
                           val_size=args.size, mosaic_p=0.0, workers=1, progress=False,
                           cache_dir=Path(tmp) / "cache",
                           aug=AugConfig(scale=(0.9, 1.1), translate=0.05, degrees=0, shear=0, colour=False))
        kwargs = {"width": 0.25, "lr": 3e-3, **settings}  # the test's width and LR unless given
        module = YoloLitModule(num_classes=20, ema=False, map_every=args.every, image_size=args.size, **kwargs)
        trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", precision="32-true", logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, check_val_every_n_epoch=args.every, callbacks=[Report()])
        trainer.fit(module, dm)


if __name__ == "__main__":
    main()
