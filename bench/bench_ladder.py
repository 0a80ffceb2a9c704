"""Benchmark: the seeds' ladder on a real dataset, one table.

    python bench/bench_ladder.py [--dataset hymenoptera] [--seeds 0,1,2] [--steps ...]

Prints, per rung: val accuracy mean ± std over the seeds, wall seconds and CPU seconds
per run, and the budgets side by side as ratios (measured / budget, < 1 is within):
the whole ladder in 10 minutes, fine-tuning the last block for 10 epochs in 2 minutes
on 2 cores. For fine-tune it also prints how much caching the frozen blocks' activations
saves per epoch (running the frozen part every epoch vs once per view).
CPU seconds are the process's (all threads); on a shared machine wall time is noisy, and
on an oversubscribed one use OMP_NUM_THREADS=1: with 2 OpenMP threads fighting for cores,
every small op waits at a barrier (measured: pixels-mlp 250 s wall / 27 s CPU with 2
threads vs 10 s / 0.7 s with 1 thread at load average 16).
Uses a private ledger under a temporary TLVIZ_HOME unless TLVIZ_HOME is set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TLVIZ_HOME", tempfile.mkdtemp(prefix="tlviz-bench-ladder-"))
if not os.environ.get("TLVIZ_DATA_DIR") and (ROOT.parent / "shared" / "datasets").is_dir():
    os.environ["TLVIZ_DATA_DIR"] = str(ROOT.parent / "shared" / "datasets")

LADDER_BUDGET_S = 600.0
FINE_TUNE_BUDGET_S = 120.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="hymenoptera")
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--head", default="logistic")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", help="comma-separated subset of the ladder's steps")
    p.add_argument("--from-ledger", action="store_true",
                   help="only summarise the completed ladder runs already in the ledger "
                        "(e.g. steps run by several invocations)")
    args = p.parse_args()
    if args.from_ledger:
        return from_ledger(args.dataset)

    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from tlviz.ladder import run_ladder
    from tlviz.runs import Ledger

    cpu: dict[str, float] = {}
    current = {"step": None, "t": time.process_time()}

    def progress(done: int, total: int, msg: str) -> None:
        step = msg.split(":")[0]
        now = time.process_time()
        if current["step"] is not None and current["step"] in cpu:
            cpu[current["step"]] += now - current["t"]
        cpu.setdefault(step, 0.0)
        current.update(step=step, t=now)

    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    res = run_ladder(args.dataset, backbone=args.backbone, head=args.head, seeds=seeds,
                     modes=args.steps.split(",") if args.steps else None, progress=progress)
    wall = time.perf_counter() - t0
    led = Ledger()
    print(f"ladder on {args.dataset}: {args.backbone} + {args.head}, seeds {args.seeds}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"{'step':<20} {'val accuracy':>15} {'wall s/run':>10} {'cpu s/run':>9}  notes")
    for r in res.table.itertuples():
        note = ""
        if r.step == "fine-tune":
            runs = [led.get_run(i) for i in r.run_ids]
            t = [x["timings"] for x in runs]
            epochs = [max(len(x["history"]) - 1, 1) for x in runs]
            views = 1 + int(runs[0]["config"]["extra"].get("augment_views", 3))
            body_pass = sum(x["body"] for x in t) / len(t) / (views + 1)  # + val/plain pass
            epoch = sum(x["train"] / e for x, e in zip(t, epochs)) / len(t)
            note = (f"budget 10 epochs/{FINE_TUNE_BUDGET_S:.0f} s: "
                    f"{r.seconds_mean / FINE_TUNE_BUDGET_S:.2f}; caching saves "
                    f"{(body_pass + epoch) / epoch:.1f}x per epoch")
        print(f"{r.step:<20} {r.val_mean:>7.3f} ± {r.val_std:.3f} {r.seconds_mean:>10.1f} "
              f"{cpu.get(r.step, float('nan')) / r.n_seeds:>9.1f}  {note}")
    print(f"{'whole ladder':<20} {'':>15} {wall:>10.1f} {sum(cpu.values()):>9.1f}  "
          f"budget {LADDER_BUDGET_S:.0f} s: {wall / LADDER_BUDGET_S:.2f}")
    return 0


def from_ledger(dataset: str) -> int:
    """The table from completed ``ladder: <step>`` runs in the ledger (latest 3 per step)."""
    from tlviz.ladder import STEP_NAMES, format_table, summarize
    from tlviz.runs import Ledger

    df = Ledger().list_runs(status="completed")
    df = df[(df["dataset"] == dataset) & df["name"].fillna("").str.startswith("ladder: ")]
    rows = []
    for step in STEP_NAMES:
        sub = df[df["name"] == f"ladder: {step}"].drop_duplicates("seed").head(3)
        if len(sub):
            sub = sub.rename(columns={"id": "run_id"})
            rows.append({"step": step, **summarize(sub)})
    import pandas as pd

    table = pd.DataFrame(rows).rename(columns={"n": "n_seeds"})
    print(f"ladder on {dataset} from the ledger (wall seconds per run as recorded)")
    print(format_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
