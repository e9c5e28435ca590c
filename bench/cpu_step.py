"""Benchmark: CPU seconds per training step with the old and the new thread defaults, on the machine as
it is and beside one competing busy process (issue 21, item 14).

    python -m bench.cpu_step                  # prints a table, writes bench/results/cpu_step.json
    python -m bench.cpu_step --steps 4 --size 128    # a quick look

Each configuration runs in its own child process (OpenMP reads OMP_WAIT_POLICY when torch loads):

    old   torch's default threads (one per core), OMP_WAIT_POLICY unset (libgomp spins before sleeping)
    new   ``yolo.cpu.configure_threads(workers=1)`` (the cores one data worker leaves, fewer when the
          machine is already busy) and OMP_WAIT_POLICY=PASSIVE (``yolo.cpu.quiet_openmp``): what
          train.py now does by default

A step is the trainer's work on one batch without data loading: forward, the YOLO loss, backward,
an Adam step (width 0.25, batch 8, 256 px by default, synthetic targets). The child times
``--steps`` steps after 2 warm-up steps and reports CPU seconds of the whole process (every thread:
``time.process_time``) and wall seconds per step. "busy" starts one extra process spinning in pure
Python for the child's lifetime (a neighbour, or a data worker decoding). The machine's 1-minute
load average is recorded beside every figure: on a shared machine "idle" is only "no extra process
of ours", so read the load column with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import print_table, write_results

BUSY = "import time\nend = time.time() + 900\nwhile time.time() < end:\n    pass\n"


def child(args: argparse.Namespace) -> None:
    """Run in the child: set threads as asked, time the steps, print one JSON line."""
    from yolo.cpu import configure_threads

    if args.mode == "new":
        threads, why = configure_threads(workers=1)
    else:
        import torch

        threads, why = torch.get_num_threads(), "torch default"
    import torch

    from yolo.lit import YoloLitModule

    torch.manual_seed(0)
    lit = YoloLitModule(num_classes=20, width=args.width, ema=False, image_size=args.size)
    optimizer = torch.optim.Adam(lit.model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 3, args.size, args.size)
    n = 2 * args.batch
    boxes = torch.rand(n, 4) * args.size / 2
    boxes[:, 2:] += boxes[:, :2] + 8
    batch = {"images": x, "boxes": boxes, "labels": torch.randint(0, 20, (n,)),
             "batch_idx": torch.arange(n) % args.batch}
    targets = lit.encode_batch(batch)

    def step() -> None:
        loss = lit.loss_fn(lit.model.train()(x), targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.steps):
        step()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"threads": threads, "why": why, "cpu_s_per_step": cpu / args.steps,
                      "wall_s_per_step": wall / args.steps,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}))


def run(mode: str, busy: bool, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if mode == "new":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        time.sleep(1.0 if busy else 0.0)
        load_before = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-m", "bench.cpu_step", "--child", "--mode", mode,
                              "--steps", str(args.steps), "--size", str(args.size), "--batch", str(args.batch),
                              "--width", str(args.width)], env=env, capture_output=True, text=True, check=True)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    record = json.loads(out.stdout.strip().splitlines()[-1])
    return {"defaults": mode, "neighbour": "one busy process" if busy else "none", **record,
            "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps per configuration (after 2 warm-up)")
    p.add_argument("--size", type=int, default=256, help="input size")
    p.add_argument("--batch", type=int, default=8, help="images per step")
    p.add_argument("--width", type=float, default=0.25, help="model width")
    p.add_argument("--repeats", type=int, default=2, help="rounds of the four configurations, interleaved")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["old", "new"], default="new", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    rows = []
    for round_ in range(args.repeats):
        for busy in (False, True):
            for mode in ("old", "new"):
                row = run(mode, busy, args)
                row["round"] = round_
                rows.append(row)
                print(json.dumps(row), flush=True)
    table = [{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items() if k not in ("why",)}
             for r in rows]
    print_table(table, f"CPU per training step (width {args.width}, batch {args.batch}, {args.size} px)")
    write_results("cpu_step", {"settings": vars(args) | {"child": None}, "rows": rows})


if __name__ == "__main__":
    main()
