"""Population training: a retraining search's trials per minute with candidates trained together, against
the same search trained one by one and against a MASE-style loop, measured side by side in one run.

(a) Lab 4's width search: jsc-three-linear-layers, seq_blocks_2 × seq_blocks_4 channel multipliers 1–6 (36
    configurations, brute force), each candidate retrained one epoch (batch 256) on synthetic-jsc with 630k
    rows (441k train) and evaluated on the validation split. netcarve runs ``netcarve search``'s code path
    with ``setup.population = "auto"`` and with ``1``; the MASE-style baseline (``search_bench.py``: one
    shared graph deep-copied per trial, Lightning ``Trainer.fit`` over per-sample ``DataLoader``s) runs the
    ``--baseline-trials`` configurations spread over the grid (its rate in trials per minute is what is compared; a full
    36-trial baseline takes about an hour). Goals: population ≥ 30× the baseline, ≥ 4× one by one.
(b) A joint search, width × quantization-aware training: the same widths (1–3 for both layers) × the two
    hidden Linears' weights at 4, 6 or 8 bits (every Linear integer with 8-bit inputs and biases, the output
    layer's weights 8 bits), 81 configurations, one epoch each: population vs one by one. Goal ≥ 3×.
(c) Peak memory of a population of 32 jsc-s candidates (widths ×1–×4 of its first hidden layer) training on
    the same data, in a fresh process: peak RSS minus the RSS before training. Goal < 2 GB.
(d) The case population training was designed for, where each candidate's step is per-op overhead: 32
    candidates of jsc-three-linear-layers at its own widths 16-16 trained together, against one by one and
    a MASE-style trial per candidate (no goal; Lab 4's widest candidates are 36 times the arithmetic).

Each part prints the largest accuracy difference between the population and the one-by-one run. They train
the same candidates; a batched member's matrix products sum in another order than its solo run's, and one
epoch of Adam amplifies that in some candidates as much as running the solo training on 2 threads instead of
1 does: Lab 4's (5, 1) reaches 0.519 solo on 1 thread and 0.642 solo on 2 threads (630k rows; every other
configuration within 0.1 points), the joint search's (1,1, weights 4/8/8) 0.418 and 0.340 (60k rows).

Run: ``.venv/bin/python bench/population_bench.py`` (needs the ``bench`` extra for the baseline;
``--no-baseline`` skips it). Last line: ``population speedup: lab4 N.Nx vs MASE-style, N.Nx vs one by one;
joint N.Nx; peak memory N MiB``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from netcarve.data import load_dataset
from netcarve.train.checkpoint import build_graph
from search_bench import run_netcarve

ROWS = 630_000
BATCH = 256
MULTIPLIERS = [1, 2, 3, 4, 5, 6]


def width_seed(multipliers: list[int]) -> dict[str, Any]:
    return {
        "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": multipliers}},
        "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": multipliers}},
    }


def lab4_config(tmp: Path, rows: int, population: int | str) -> dict[str, Any]:
    strategy = {
        "eval_mode": False,
        "sw_runner": {"basic_train": {"max_epochs": 1, "batch_size": BATCH}},
        "setup": {"sampler": "brute_force", "population": population},
        "metrics": {"accuracy": {"direction": "maximize"}},
    }
    return {
        "model": "jsc-three-linear-layers", "dataset": f"synthetic-jsc:{rows}", "project": f"lab4-{population}",
        "project_dir": str(tmp), "search": {"search_space": {"name": "graph/width/channel_multiplier",
                                                             "seed": width_seed(MULTIPLIERS)}, "strategy": strategy},
    }  # fmt: skip


def joint_config(tmp: Path, rows: int, population: int | str) -> dict[str, Any]:
    leaves = {"name": ["integer"], "data_in_width": [8], "data_in_frac_width": [4], "weight_width": [4, 6, 8],
              "bias_width": [8], "bias_frac_width": [4]}  # fmt: skip
    data = lab4_config(tmp, rows, population)
    data["project"] = f"joint-{population}"
    data["search"]["search_space"] = {
        "name": "graph/joint",
        "width": {"setup": {"by": "name"}, "seed": width_seed([1, 2, 3])},
        "quantize": {"setup": {"by": "name"}, "seed": {
            "default": {"config": {"name": [None]}},
            **{f"seq_blocks_{i}": {"config": copy.deepcopy(leaves)} for i in (2, 4)},
            "seq_blocks_6": {"config": {**copy.deepcopy(leaves), "weight_width": [8]}},
        }},
    }  # fmt: skip
    return data


def complete(run: tuple[float, list[Any]]) -> tuple[float, list[Any]]:
    """(seconds, the COMPLETE trials) of a run."""
    return run[0], [t for t in run[1] if t.state.name == "COMPLETE"]


def accuracy_gap(a: list[Any], b: list[Any]) -> float:
    by_key = {t.user_attrs["config_key"]: t.user_attrs["metric.accuracy"] for t in b}
    return max(abs(t.user_attrs["metric.accuracy"] - by_key[t.user_attrs["config_key"]]) for t in a)


def side_by_side(name: str, make: Any, tmp: Path, rows: int) -> tuple[float, float, list[Any]]:
    """(population trials/min, one-by-one trials/min, the one-by-one trials) of the search ``make`` builds."""
    pop_s, pop = complete(run_netcarve(make(tmp, rows, "auto")))
    one_s, one = complete(run_netcarve(make(tmp, rows, 1)))
    sizes = sorted({t.user_attrs.get("population", 1) for t in pop})
    per_min_pop, per_min_one = 60 * len(pop) / pop_s, 60 * len(one) / one_s
    print(f"({name}) {len(pop)} trials: population (sizes {sizes}) {pop_s:7.2f} s = {per_min_pop:7.1f} trials/min; "
          f"one by one {one_s:7.2f} s = {per_min_one:6.1f} trials/min; ratio {per_min_pop / per_min_one:.1f}x; "
          f"max accuracy difference {accuracy_gap(pop, one):.4f}")  # fmt: skip
    return per_min_pop, per_min_one, one


def baseline_rate(splits: Any, trials: list[Any], n: int) -> float:
    """Trials per minute of the MASE-style loop over the first ``n`` of ``trials``' configurations."""
    from search_bench import run_baseline, warm_up

    warm_up(splits)
    torch.manual_seed(42)
    shared = build_graph("jsc-three-linear-layers", splits.info)
    ordered = sorted(trials, key=lambda t: t.number)
    # spread over the grid, from the narrowest to the widest (3 of Lab 4's: multipliers (1,1), (4,1), (6,6))
    chosen = [ordered[round(i * (len(ordered) - 1) / max(1, n - 1))] for i in range(min(n, len(ordered)))]
    seconds, _ = run_baseline(shared, splits, [t.user_attrs["transforms"] for t in chosen], train=True)
    rate = 60 * len(chosen) / seconds
    print(f"(lab4) MASE-style baseline: {len(chosen)} trials in {seconds:.1f} s = {rate:.2f} trials/min")
    return rate


def premise(splits: Any, baseline: bool) -> float:
    """The overhead-bound case population training was designed for: 32 candidates of jsc-three-linear-layers
    at its own widths (16-16, initial weights seeded 0–31), one epoch each: ``fit_population`` against
    ``fit`` one by one (4 of them timed) and, with ``baseline``, one MASE-style trial. Returns the ratio to
    the MASE-style trial (NaN without it)."""
    from netcarve.config.training import TrainingSettings
    from netcarve.train.loop import fit
    from netcarve.train.population import fit_population

    cfg = TrainingSettings(max_epochs=1, batch_size=BATCH)
    modules = []
    for seed in range(32):
        torch.manual_seed(seed)
        modules.append(build_graph("jsc-three-linear-layers", splits.info).module)
    start = time.perf_counter()
    fit_population([copy.deepcopy(m) for m in modules], splits, cfg, validate=True)
    together = time.perf_counter() - start
    start = time.perf_counter()
    for module in modules[:4]:
        torch.manual_seed(cfg.seed)
        fit(copy.deepcopy(module), splits, cfg, validate=True)
    alone = (time.perf_counter() - start) / 4
    line = (f"(premise) 32 candidates at widths 16-16: together {together:.2f} s ({together / 32:.3f} s each), "
            f"one by one {alone:.2f} s each: {32 * alone / together:.1f}x")  # fmt: skip
    vs_mase = float("nan")
    if baseline:
        from search_bench import run_baseline, warm_up

        warm_up(splits)
        torch.manual_seed(42)
        mase, _ = run_baseline(build_graph("jsc-three-linear-layers", splits.info), splits, [[]], train=True)
        vs_mase = 32 * mase / together
        line += f"; MASE-style {mase:.2f} s each: {vs_mase:.1f}x"
    print(line)
    return vs_mase


MEMORY_SCRIPT = r"""
import gc, json, sys, threading, time, torch
from netcarve.config.training import TrainingSettings
from netcarve.data import load_dataset
from netcarve.search.candidate import build_candidate
from netcarve.train.checkpoint import build_graph
from netcarve.train.population import fit_population

def rss():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

rows, members = int(sys.argv[1]), int(sys.argv[2])
splits = load_dataset(f"synthetic-jsc:{rows}")
torch.manual_seed(0)
base = build_graph("jsc-s", splits.info)
graphs = [build_candidate(base, [("width", {"by": "name", "seq_blocks_2": {"config": {"name": "output_only",
          "channel_multiplier": 1 + i % 4}}})]) for i in range(members)]
gc.collect()
before, peak, done = rss(), [0], threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.005)
thread = threading.Thread(target=watch)
thread.start()
fit_population([g.module for g in graphs], splits, TrainingSettings(max_epochs=1, batch_size=256), validate=True)
done.set(); thread.join()
print(json.dumps({"before_kib": before, "peak_kib": max(peak[0], rss())}))
"""


def peak_memory(rows: int, members: int = 32) -> float:
    """MiB a population adds to its process's resident memory while it trains (sampled every 5 ms, in a
    fresh process; the data and the built candidates are in the RSS before training)."""
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(rows), str(members)], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    measured = json.loads(out.strip().splitlines()[-1])
    added = (measured["peak_kib"] - measured["before_kib"]) / 1024
    print(f"(memory) {members} jsc-s candidates (widths ×1–×4), one epoch on {rows} rows: RSS "
          f"{measured['before_kib'] / 1024:.0f} MiB before training (data included), peak "
          f"{measured['peak_kib'] / 1024:.0f} MiB while training: the population adds {added:.0f} MiB")  # fmt: skip
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS, help="synthetic-jsc rows (70 %% train, 10 %% val)")
    parser.add_argument("--baseline-trials", type=int, default=3, help="configurations the MASE-style loop runs")
    parser.add_argument("--no-baseline", action="store_true", help="skip the MASE-style loop (no Lightning)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)
    splits = load_dataset(f"synthetic-jsc:{args.rows}")
    print(f"synthetic-jsc:{args.rows}: train {len(splits.train)}, val {len(splits.val)}; "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        lab4_pop, lab4_one, lab4_trials = side_by_side("lab4", lab4_config, Path(tmp), args.rows)
        joint_pop, joint_one, _ = side_by_side("joint", joint_config, Path(tmp), args.rows)
    vs_mase = float("nan")
    if not args.no_baseline:
        vs_mase = lab4_pop / baseline_rate(splits, lab4_trials, args.baseline_trials)
        print(f"(lab4) population vs MASE-style: {vs_mase:.1f}x")
    memory = peak_memory(args.rows)
    premise(splits, not args.no_baseline)
    print(f"population speedup: lab4 {vs_mase:.1f}x vs MASE-style, {lab4_pop / lab4_one:.1f}x vs one by one; "
          f"joint {joint_pop / joint_one:.1f}x; peak memory {memory:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
