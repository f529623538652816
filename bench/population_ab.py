"""Population training, this checkout against another source tree, alternating in one run on one machine.

The workload is fixed: Lab 4's population (36 width candidates of jsc-three-linear-layers, hidden widths
16·m1-16·m2 for m1, m2 in 1…6), ``synthetic-jsc:ROWS``, one epoch at batch 256 with validation, 1 thread.
Each round runs one process per tree (alternating which goes first); a process trains the population three
times and prints its fastest wall and CPU time. With ``--ops`` it instead counts the ATen ops of 20 and of
40 steps of every batch (the per-step op count is their difference over 20).

Run: ``.venv/bin/python bench/population_ab.py --other /path/to/main/src`` (``--rows``, ``--rounds``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import copy, sys, time
import torch
from netcarve.config.training import TrainingSettings
from netcarve.data import load_dataset
from netcarve.ir.graph import Graph
from netcarve.models import create_model
from netcarve.train.population import fit_population
from netcarve.transforms.width import change_width

rows, ops = int(sys.argv[1]), sys.argv[2] == "ops"
torch.set_num_threads(1)
splits = load_dataset(f"synthetic-jsc:{rows}")
torch.manual_seed(0)
base = Graph.from_module(create_model("jsc-three-linear-layers", splits.info), (splits.info.in_features,))
def width(a, b):
    return {n: {"config": {"name": None, "out_multiplier": m}} for n, m in (("seq_blocks_2", a), ("seq_blocks_4", b))}
modules = [change_width(base, width(a, b)).module for a in range(1, 7) for b in range(1, 7)]
cfg = TrainingSettings(max_epochs=1, batch_size=256)
fit_population([copy.deepcopy(m) for m in modules[:2]], splits, cfg.model_copy(update={"max_steps": 3}), num_threads=1)
if ops:
    from torch.utils._python_dispatch import TorchDispatchMode
    class Count(TorchDispatchMode):
        n = 0
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))
    counts = []
    for steps in (20, 40):
        Count.n = 0
        with Count():
            fit_population([copy.deepcopy(m) for m in modules], splits, cfg.model_copy(update={"max_steps": steps}),
                           num_threads=1)
        counts.append(Count.n)
    per_step = (counts[1] - counts[0]) / 20
    print(f"ATen ops: 20 steps {counts[0]}, 40 steps {counts[1]}, per step of all batches {per_step}")
    sys.exit()
walls, cpus = [], []
for _ in range(3):
    trained = [copy.deepcopy(m) for m in modules]
    start, cpu = time.perf_counter(), time.process_time()
    fit_population(trained, splits, cfg, validate=True, num_threads=1)
    walls.append(time.perf_counter() - start)
    cpus.append(time.process_time() - cpu)
print(f"fastest of 3: wall {min(walls):.3f} s, cpu {min(cpus):.3f} s")
"""


def run(src: Path, rows: int, ops: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", WORKER, str(rows), "ops" if ops else "time"], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", type=Path, required=True, help="the other tree's src directory")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", action="store_true", help="count ATen ops instead of timing")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent / "src"
    trees = {"this": here, "other": args.other.resolve()}
    for round_ in range(1 if args.ops else args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            print(f"round {round_ + 1}, {name} ({trees[name]}): {run(trees[name], args.rows, args.ops)}", flush=True)


if __name__ == "__main__":
    main()
