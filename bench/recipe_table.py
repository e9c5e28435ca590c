"""The recipe ablation's table from its runs' metrics.csv files (README "Training recipe").

Each row of the ablation is a ``train.py`` run (the commands are in the README); this script only
reads their logs, so every figure in the table comes from a run's own metrics.csv:

    python -m bench.recipe_table --runs /work/runs/proxy --names base prior warmup ...

Prints a Markdown table (last epoch's val mAP@0.5, the best epoch's, the seed's three cell
accuracies at the last epoch, and the no-object accuracy after the first epoch) and writes
``bench/results/recipe.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from yolo.config import ACC_CLASS, ACC_NOOBJ, ACC_OBJ, MAP50, metric_key
from yolo.logs import epoch_table, read_metrics
from yolo.runs import find_runs

RESULTS = Path(__file__).resolve().parent / "results"


def summary(run_dir: Path) -> dict:
    """Per-run figures from the newest version folder under ``run_dir``."""
    runs = find_runs(run_dir.parent)
    info = [r for r in runs if r.path.parent == run_dir]
    if not info:
        raise SystemExit(f"no run folder with metrics under {run_dir}")
    table = epoch_table(read_metrics(max(info, key=lambda r: r.modified)))
    val = {k: metric_key("val", k) for k in (MAP50, ACC_CLASS, ACC_NOOBJ, ACC_OBJ)}
    rows = table.dropna(subset=[val[MAP50]])
    last, first = rows.iloc[-1], rows.iloc[0]
    best = rows.loc[rows[val[MAP50]].idxmax()]
    return {
        "epochs": int(last["epoch"]) + 1,
        "map50_last": float(last[val[MAP50]]),
        "map50_best": float(best[val[MAP50]]),
        "best_epoch": int(best["epoch"]) + 1,
        "class_acc": float(last[val[ACC_CLASS]]),
        "noobj_acc": float(last[val[ACC_NOOBJ]]),
        "obj_acc": float(last[val[ACC_OBJ]]),
        "noobj_acc_epoch1": float(first[val[ACC_NOOBJ]]),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="the --log-dir the ablation's runs used")
    p.add_argument("--names", nargs="+", required=True, help="run names (--name), in table order")
    p.add_argument("--out", type=Path, default=RESULTS / "recipe.json")
    args = p.parse_args(argv)
    results = {name: summary(args.runs / name) for name in args.names}
    print("| run | val mAP@0.5, last epoch | best epoch (mAP) | class / no-obj / obj accuracy, last | no-obj accuracy after epoch 1 |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['map50_last']:.4f} | {r['best_epoch']} ({r['map50_best']:.4f}) | "
              f"{r['class_acc']:.1f} / {r['noobj_acc']:.1f} / {r['obj_acc']:.1f} | {r['noobj_acc_epoch1']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
