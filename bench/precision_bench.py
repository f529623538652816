"""Design quality: per-layer bit widths searched vs precision learned per weight, with and without searched widths.

One run, hls4ml-jet (F→64→32→32→C), the same seed, trial budget, epochs and objectives (accuracy ↑, alkaid's
``fpga_luts`` ↓, NSGA-II) for each method:

(a) today's per-layer search: hidden widths (×0.25–1) × per-layer ``integer`` weight widths {2, 3, 4, 6, 8}
    with ``weight_frac_width = "auto"`` and data_in widths {4, 6, 8} (population training);
(b) learned precision (``learned`` weights, biases and inputs, per element) at the full widths, ``beta``
    searched;
(c) the widths of (a) searched × learned precision, ``beta`` searched with them.

A learned trial keeps its training's front (every member measured: a design each); a per-layer trial is one
design. Designs are selected on the validation split: the table gives, per method, the cheapest design
(fpga_luts) with validation accuracy ≥ 0.90, 0.93 and 0.95, its test accuracy (its checkpoint evaluated on the
test split), fpga_luts and critical-path latency (ns), and each method's wall time (the search, setup
excluded). It also counts the trials of (a) that ended at chance accuracy.

Goals (digits): (c) ≤ 0.6× the LUTs of (a) at each threshold; no trial of (a) at chance accuracy; (c)'s wall
time ≤ 1.5× (a)'s. ``--dataset synthetic-jsc:100000`` prints the same table (no goal) at 97, 98 and 99 % of the
best validation accuracy any design reached (its accuracies are far below digits'), or ``--thresholds``.

Run: ``.venv/bin/python bench/precision_bench.py [--dataset digits] [--trials 24] [--epochs 30]
[--batch-size 32]`` (needs alkaid: the ``fpga`` extra, which ``make setup`` installs).
Last line: ``precision goals: …``.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcarve.config.loader import validate_config
from netcarve.search.api import finish, prepare_search, start_search
from netcarve.search.record import TrialRecord
from netcarve.search.runner import run_study
from netcarve.train.checkpoint import load_graph
from netcarve.train.loop import evaluate

MODEL = "hls4ml-jet"
#: the validation accuracies the table asks for on digits; elsewhere (``--thresholds`` not given) 97, 98 and
#: 99 % of the best validation accuracy any design reached
THRESHOLDS = (0.90, 0.93, 0.95)
RELATIVE = (0.97, 0.98, 0.99)
#: the width pass's seeds of hls4ml-jet's hidden layers (fx names of the Sequential's Linear layers)
WIDTHS = {
    "seq_blocks_0": {"config": {"name": ["output_only"], "channel_multiplier": [0.25, 0.5, 0.75, 1.0]}},
    "seq_blocks_2": {"config": {"name": ["both"], "channel_multiplier": [0.25, 0.5, 0.75, 1.0]}},
    "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [0.25, 0.5, 0.75, 1.0]}},
}
LINEARS = ("seq_blocks_0", "seq_blocks_2", "seq_blocks_4", "seq_blocks_6")
PER_LAYER = {
    "name": ["integer"], "weight_width": [2, 3, 4, 6, 8], "weight_frac_width": ["auto"],
    "data_in_width": [4, 6, 8], "bias_width": [8], "bias_frac_width": [4],
}  # fmt: skip
LEARNED = {
    "name": ["learned"], "data_in_width": [8], "data_in_frac_width": [4], "weight_width": [8],
    "weight_frac_width": [4], "bias_width": [8], "bias_frac_width": [4],
}  # fmt: skip
BETAS = [3e-5, 1e-4, 3e-4, 1e-3]


def quantize_space(learned: bool) -> dict[str, Any]:
    if learned:
        seed = {"default": {"config": {"name": [None]}}, "linear": {"config": LEARNED}}
        return {"setup": {"by": "type"}, "seed": seed, "pass_config": {"beta": BETAS}}
    seed = {"default": {"config": {"name": [None]}}, **{n: {"config": PER_LAYER} for n in LINEARS}}
    return {"setup": {"by": "name"}, "seed": seed}


def config(method: str, dataset: str, trials: int, epochs: int, batch: int, seed: int, tmp: Path) -> dict[str, Any]:
    quant = quantize_space(learned=method != "a")
    if method == "b":
        space = {"name": "graph/quantize/mixed_precision_ptq", **quant}
    else:
        space = {"name": "graph/joint", "width": {"setup": {"by": "name"}, "seed": WIDTHS}, "quantize": quant}
    strategy = {
        "eval_mode": False,
        "sw_runner": {"basic_train": {"max_epochs": epochs, "learning_rate": 5e-3, "batch_size": batch}},
        "setup": {"sampler": "nsgaii", "n_trials": trials, "sum_scaled_metrics": False},
        "metrics": {"accuracy": {"direction": "maximize"}, "fpga_luts": {"direction": "minimize"}},
    }
    return {"model": MODEL, "dataset": dataset, "seed": seed, "project": f"precision-{method}",
            "project_dir": str(tmp), "search": {"search_space": space, "strategy": strategy}}  # fmt: skip


@dataclass(frozen=True)
class Design:
    trial: int
    epoch: int | None  # a learned front's member; None: the trial's one design
    val_accuracy: float
    fpga_luts: float
    fpga_latency: float
    checkpoint: Path


@dataclass(frozen=True)
class Run:
    seconds: float
    designs: list[Design]
    trials: int
    dead: int
    run_dir: Path


def run(method: str, args: argparse.Namespace, tmp: Path, chance: float) -> Run:
    data = config(method, args.dataset, args.trials, args.epochs, args.batch_size, args.seed, tmp)
    session = start_search(prepare_search(validate_config(data)), None, None)
    start = time.perf_counter()
    run_study(session, 1, None, lambda: None)
    seconds = time.perf_counter() - start
    finish(session)
    assert session.run_dir is not None
    designs: list[Design] = []
    complete = [t for t in session.study.get_trials() if t.state.name == "COMPLETE"]
    dead = 0
    for trial in complete:
        record = TrialRecord.of(trial)
        if record.reused_from is not None:
            continue
        dead += record.metrics["accuracy"] <= chance
        if record.front:
            for member in record.front:
                if "checkpoint" not in member:
                    continue
                m = member["metrics"]
                designs.append(Design(trial.number, member["epoch"], m["accuracy"], m["fpga_luts"],
                                      m["fpga_latency"], session.run_dir / member["checkpoint"]))  # fmt: skip
        else:
            m = record.metrics
            path = session.run_dir / "trials" / f"trial-{trial.number}.pt"
            designs.append(Design(trial.number, None, m["accuracy"], m["fpga_luts"], m["fpga_latency"], path))
    return Run(seconds, designs, len(complete), dead, session.run_dir)


def levels(args: argparse.Namespace, runs: dict[str, Run]) -> tuple[float, ...]:
    """The table's validation accuracies: ``--thresholds``, digits' fixed ones, or relative to the best design."""
    if args.thresholds:
        return tuple(float(t) for t in args.thresholds.split(","))
    if args.dataset == "digits":
        return THRESHOLDS
    top = max(d.val_accuracy for r in runs.values() for d in r.designs)
    return tuple(round(top * share, 4) for share in RELATIVE)


def cheapest(designs: list[Design], threshold: float) -> Design | None:
    eligible = [d for d in designs if d.val_accuracy >= threshold]
    return min(eligible, key=lambda d: (d.fpga_luts, -d.val_accuracy)) if eligible else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--methods", default="abc", help="which of a, b, c to run (default all)")
    parser.add_argument("--thresholds", help="comma-separated validation accuracies (default: digits 0.90,0.93,0.95)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    import optuna

    from netcarve.data import load_dataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = load_dataset(args.dataset)
    chance = 1.0 / splits.info.num_classes + 0.02
    print(f"{args.dataset}: train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}; {MODEL}, "
          f"{args.trials} trials × {args.epochs} epochs (batch {args.batch_size}) each, seed {args.seed}")  # fmt: skip
    runs: dict[str, Run] = {}
    names = {"a": "(a) per-layer widths × bits", "b": "(b) learned, full widths", "c": "(c) widths × learned"}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            runs[method] = run(method, args, Path(tmp), chance)
            r = runs[method]
            top = max((d.val_accuracy for d in r.designs), default=float("nan"))
            print(f"{names[method]}: {r.trials} trials, {len(r.designs)} designs (best val acc {top:.4f}), "
                  f"{r.seconds:.1f} s, {r.dead} at chance accuracy")  # fmt: skip
        thresholds = levels(args, runs)
        header = "| method | val acc ≥ | design | val acc | test acc | fpga_luts | latency (ns) |"
        print("\n" + header + "\n|---|---|---|---|---|---|---|")
        best: dict[tuple[str, float], Design | None] = {}
        for method, r in runs.items():
            for threshold in thresholds:
                design = best[method, threshold] = cheapest(r.designs, threshold)
                if design is None:
                    print(f"| {names[method]} | {threshold:.4g} | none | | | | |")
                    continue
                graph = load_graph(design.checkpoint, MODEL, splits.info)
                test = evaluate(graph.module, splits.test).accuracy
                where = f"trial {design.trial}" + (f", epoch {design.epoch}" if design.epoch is not None else "")
                print(f"| {names[method]} | {threshold:.4g} | {where} | {design.val_accuracy:.4f} | {test:.4f} | "
                      f"{design.fpga_luts:,.0f} | {design.fpga_latency:.1f} |")  # fmt: skip
        print("\n| method | wall time (s) | trials | designs | at chance |\n|---|---|---|---|---|")
        for method, r in runs.items():
            print(f"| {names[method]} | {r.seconds:.1f} | {r.trials} | {len(r.designs)} | {r.dead} |")
    if "a" in runs and "c" in runs:
        ratios = []
        for threshold in thresholds:
            a, c = best["a", threshold], best["c", threshold]
            ratios.append(c.fpga_luts / a.fpga_luts if a is not None and c is not None else math.nan)
        wall = runs["c"].seconds / runs["a"].seconds
        text = ", ".join(f"{t:.4g}: {r:.2f}x" for t, r in zip(thresholds, ratios, strict=True))
        print(f"precision goals: (c)/(a) LUTs {text} (goal ≤ 0.6x); (a) at chance {runs['a'].dead} (goal 0); "
              f"(c)/(a) wall {wall:.2f}x (goal ≤ 1.5x)")  # fmt: skip


if __name__ == "__main__":
    main()
