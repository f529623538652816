"""Population training's step against its matrix-product floor, measured side by side in one run.

Lab 4's population: the 36 width candidates of jsc-three-linear-layers (hidden widths 16·m1-16·m2, m1, m2 in
1…6) trained together at batch 256 on one thread, cut into batches as ``fit_population`` cuts them. Printed:

- **step**: one optimizer step of every batch (forward, loss, backward, masks, Adam, tally), from the time of
  ``fit_population`` at ``--steps`` and at 2 × ``--steps`` steps, each the fastest of ``--repeats`` runs (setup,
  the epoch's row permutation and the write-back cancel in the difference);
- **padded products**: the batches' matrix products alone (``bmm`` at the padded widths: per Linear the
  forward, the input gradient and the weight gradient; the first Linear's input gradient too, since the
  BatchNorm before it has parameters);
- **floor**: the same products without padding, at the rate the padded ones run (padded time × unpadded
  MACs ÷ padded MACs: the arithmetic a step cannot avoid); beside it, for reference, each candidate's products
  computed alone (``mm`` at its own widths), which pay a call per product (about 290 calls of a few µs of
  arithmetic each, so they are slower than the padded batches);
- step ÷ floor (issue 23's goal: ≤ 1.5×), and the step's split into padding (padded − floor) and everything
  that is not a matrix product (step − padded).

Run: ``.venv/bin/python bench/step_floor.py [--rows 60000] [--steps 40]``. Last line: ``step vs floor: N.NNx``.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from analysis_bench import median_time
from netcarve.config.training import TrainingSettings
from netcarve.data import load_dataset
from netcarve.data.base import TensorSplits
from netcarve.ir.graph import Graph
from netcarve.models import create_model
from netcarve.train.population import fit_population
from netcarve.train.population.partition import partition_by_width
from netcarve.train.population.template import chain
from netcarve.transforms.width import change_width

BATCH = 256


def lab4_members(splits: TensorSplits) -> list[nn.Module]:
    torch.manual_seed(0)
    base = Graph.from_module(create_model("jsc-three-linear-layers", splits.info), (splits.info.in_features,))

    def width(a: int, b: int) -> dict[str, dict[str, dict[str, int | None]]]:
        layers = (("seq_blocks_2", a), ("seq_blocks_4", b))
        return {n: {"config": {"name": None, "out_multiplier": m}} for n, m in layers}

    return [change_width(base, width(a, b)).module for a in range(1, 7) for b in range(1, 7)]


def linear_shapes(module: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of each Linear, in forward order."""
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def step_time(members: list[nn.Module], splits: TensorSplits, steps: int, repeats: int) -> float:
    """Seconds of one step of every batch: (time at 2·steps − time at steps) / steps, each the fastest run."""

    def run(n: int) -> float:
        cfg = TrainingSettings(max_epochs=1, batch_size=BATCH, max_steps=n)
        trained = [copy.deepcopy(m) for m in members]
        start = time.perf_counter()
        fit_population(trained, splits, cfg, num_threads=1)
        return time.perf_counter() - start

    run(2)  # warm-up
    short, long = min(run(steps) for _ in range(repeats)), min(run(2 * steps) for _ in range(repeats))
    return (long - short) / steps


def macs(shapes: list[list[tuple[int, int]]], padded: bool) -> int:
    """The multiply-accumulates of one step's products (see :func:`products`) of one batch."""
    layers = range(len(shapes[0]))
    per_layer = [
        (len(shapes) * max(s[i][0] for s in shapes) * max(s[i][1] for s in shapes)) if padded
        else sum(s[i][0] * s[i][1] for s in shapes)
        for i in layers
    ]  # fmt: skip
    return BATCH * 3 * sum(per_layer)


def products(shapes: list[list[tuple[int, int]]], batched: bool, repeats: int) -> float:
    """Seconds of one step's matrix products: per Linear (in, out) the forward, the input gradient (the first
    layer's too: the BatchNorm before it needs it) and the weight gradient; ``batched``: one ``bmm`` over the
    members at their largest widths
    (features-major, as population training computes), else ``mm`` per member at its own widths."""
    calls: list[Callable[[], torch.Tensor]] = []
    groups = [shapes] if batched else [[s] for s in shapes]
    for group in groups:
        k = len(group)
        for layer in range(len(group[0])):
            fin, fout = max(s[layer][0] for s in group), max(s[layer][1] for s in group)
            w, x = torch.randn(k, fout, fin), torch.randn(k, fin, BATCH)
            dy = torch.randn(k, fout, BATCH)
            if k == 1 and not batched:
                w2, x2, dy2 = w[0], x[0], dy[0]
                calls.append(lambda w2=w2, x2=x2: torch.mm(w2, x2))
                calls.append(lambda w2=w2, dy2=dy2: torch.mm(w2.t(), dy2))
                calls.append(lambda dy2=dy2, x2=x2: torch.mm(dy2, x2.t()))
            else:
                calls.append(lambda w=w, x=x: torch.bmm(w, x))
                calls.append(lambda w=w, dy=dy: torch.bmm(w.transpose(1, 2), dy))
                calls.append(lambda dy=dy, x=x: torch.bmm(dy, x.transpose(1, 2)))

    def run() -> None:
        for call in calls:
            call()

    return median_time(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000, help="synthetic-jsc rows (70 %% train)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    splits = load_dataset(f"synthetic-jsc:{args.rows}")
    members = lab4_members(splits)
    batches = partition_by_width([(i, chain(m)) for i, m in enumerate(members)], BATCH)
    shapes = [linear_shapes(m) for m in members]
    step = step_time(members, splits, args.steps, args.repeats)
    groups = [[shapes[i] for i, _ in batch] for batch in batches]
    padded = sum(products(group, True, 20) for group in groups)
    padded_macs, unpadded_macs = sum(macs(g, True) for g in groups), sum(macs(g, False) for g in groups)
    floor = padded * unpadded_macs / padded_macs
    alone = products(shapes, False, 20)
    print(f"Lab 4 population: {len(members)} candidates in {len(batches)} batches "
          f"({', '.join(str(len(b)) for b in batches)}), batch {BATCH}, 1 thread")  # fmt: skip
    print(f"step of every batch {step * 1e3:.2f} ms; its matrix products padded {padded * 1e3:.2f} ms "
          f"({padded_macs / padded / 1e9:.1f} GMAC/s), unpadded (the floor: {unpadded_macs / padded_macs:.0%} of "
          f"the MACs) {floor * 1e3:.2f} ms, each candidate's alone {alone * 1e3:.2f} ms; padding costs "
          f"{(padded - floor) * 1e3:.2f} ms, everything else {(step - padded) * 1e3:.2f} ms")  # fmt: skip
    print(f"step vs floor: {step / floor:.2f}x (goal ≤ 1.5x)")


if __name__ == "__main__":
    main()
