"""Firmware cost, measured: alkaid (the backend of every export and ``fpga_luts``/``fpga_latency``) beside da4ml
0.6, its predecessor, on the same fixed-point programs.

Four programs, each a registered model trained briefly (Adam, a few epochs: trained weights, not random ones)
and quantized through netcarve's public API at the precisions of the export tests:

- jsc-three-linear-layers on synthetic-jsc, every node integer: fixed<8,4> inputs, fixed<6,2> weights,
  fixed<8,4> biases, fixed<10,6> outputs (fixed<width, integer bits>; UNIFORM);
- hls4ml-jet on synthetic-jsc, the first two Linears with their own formats (JET_PER_LAYER);
- jsc-toy on synthetic-jsc, its three BatchNorms after a Linear folded into it, mixed rounding and overflow
  modes (TOY_MIXES "modes");
- digits-cnn on digits, its BatchNorm2d folded into the first conv (CNN_MIXES "wide").

For each: alkaid's ``cost`` (its LUT estimate) and critical-path latency (``max(latency)``, ns: its adder delay
model), da4ml's ``cost`` and latency (da4ml 0.6's default ``HWConfig(1, -1, -1)``, no carry-chain limit: its
``cost_add`` gives every adder or comparator a delay of 1, constant additions and ReLUs 0, so its latency is the
adder depth of the critical path, not a time), the cost ratio alkaid/da4ml, and each trace's time (median of
``--repeats`` calls of ``trace_program``; it keeps no cache, and netcarve's trace LRU lives in
``netcarve.analysis.fpga``, not on this path). The check column compares both interpreters' ``predict`` with
``Program.reference`` bit for bit on 2,000 rows of N(0, 9) inputs (overflows and ties included); a mismatch prints
the difference and the script exits 1.

Run: ``.venv/bin/python bench/backend_compare.py`` (alkaid from the ``fpga`` extra, da4ml 0.6 from ``bench``;
without da4ml only alkaid's columns are printed; ``--only MODEL`` measures one program). 2.7–2.9 min on 2 cores
shared with other jobs (1.8–2.3 min of CPU time), nearly all of it digits-cnn's traces (the packages' own solvers).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netcarve import create_model, load_dataset, quantize
from netcarve.data import TensorSplits
from netcarve.export.alkaid import TraceKit, alkaid_kit, da4ml_kit, package_version, trace_program
from netcarve.export.program import Program, build_program

ROWS = 2000
SEED = 0


def integer(**widths: Any) -> dict[str, Any]:
    return {"config": {"name": "integer", **widths}}


#: 8-bit inputs (frac 4), 6-bit weights (frac 4), 8-bit biases (frac 4), 10-bit outputs (frac 4): every node
UNIFORM: dict[str, Any] = {
    "by": "type",
    "default": integer(
        data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
        bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=4,
    ),
}  # fmt: skip

#: hls4ml-jet (Linear seq_blocks_0/2/4/6, ReLU 1/3/5): its first two Linears with formats of their own
JET_PER_LAYER: dict[str, Any] = {
    "by": "name",
    "default": UNIFORM["default"],
    "seq_blocks_0": integer(data_in_width=10, data_in_frac_width=6, weight_width=4, weight_frac_width=3,
                            bias_width=6, bias_frac_width=3, data_out_width=12, data_out_frac_width=5),
    "seq_blocks_2": integer(data_in_width=7, data_in_frac_width=3, weight_width=8, weight_frac_width=6,
                            bias_width=5, bias_frac_width=2, data_out_width=8, data_out_frac_width=2),
}  # fmt: skip

#: jsc-toy (BatchNorm 0 as preprocessing; Linear 2/5/8 each followed by a BatchNorm 3/6/9, folded into it):
#: truncated weights, nearest_up biases and BatchNorm outputs, a wrapping BatchNorm output, a quantized γ/β
TOY_MODES: dict[str, Any] = {
    "by": "name",
    "default": UNIFORM["default"],
    "seq_blocks_2": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                            bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=4,
                            weight_round="truncate", bias_round="nearest_up"),
    "seq_blocks_3": integer(data_out_width=8, data_out_frac_width=3, data_out_round="nearest_up",
                            data_out_overflow="wrap"),
    "seq_blocks_5": integer(data_in_width=7, data_in_frac_width=3, weight_width=5, weight_frac_width=3,
                            bias_width=6, bias_frac_width=3, data_out_width=9, data_out_frac_width=3,
                            data_in_round="truncate"),
    "seq_blocks_6": integer(weight_width=6, weight_frac_width=4, bias_width=6, bias_frac_width=3,
                            data_out_width=8, data_out_frac_width=2, data_out_round="truncate"),
    "seq_blocks_10": integer(data_in_width=8, data_in_frac_width=3, data_out_width=6, data_out_frac_width=2,
                             data_out_round="truncate"),
}  # fmt: skip

#: digits-cnn by type: every conv and linear integer (input, weight, bias, output), every ReLU (input,
#: output, narrower: ties and saturation); the BatchNorm2d stays float and is folded into the first conv
CNN_WIDE: dict[str, Any] = {
    "by": "type",
    "conv2d": integer(data_in_width=8, data_in_frac_width=3, weight_width=6, weight_frac_width=4,
                      bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=3),
    "relu": integer(data_in_width=8, data_in_frac_width=3, data_out_width=6, data_out_frac_width=2),
    "linear": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                      bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=4),
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    model: str
    dataset: str
    config: dict[str, Any]
    epochs: int
    batch_size: int


CASES = (
    Case("jsc-three-linear-layers", "synthetic-jsc:20000", UNIFORM, 3, 256),
    Case("hls4ml-jet", "synthetic-jsc:20000", JET_PER_LAYER, 3, 256),
    Case("jsc-toy", "synthetic-jsc:20000", TOY_MODES, 3, 256),
    Case("digits-cnn", "digits", CNN_WIDE, 10, 32),
)


@dataclass(frozen=True)
class Measured:
    """One backend's figures for one program: cost, latency (max over outputs), median trace seconds, the
    bit-exactness check, and a note when repeated traces gave different costs."""

    cost: float
    latency: float
    seconds: float
    check: str
    note: str = ""


def trained(case: Case, splits: TensorSplits) -> tuple[nn.Module, float]:
    """``case.model`` trained for ``case.epochs`` (Adam, lr 1e-3), in eval mode, and its float test accuracy:
    trained weights and BatchNorm statistics are what a search exports, and cost little here."""
    torch.manual_seed(SEED)
    model = create_model(case.model, splits.info)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = splits.train.x, splits.train.y
    model.train()
    for _ in range(case.epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), case.batch_size):
            batch = order[start : start + case.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(splits.test.x).argmax(1) == splits.test.y).float().mean().item()
    return model, accuracy


def compare(predicted: np.ndarray, reference: np.ndarray) -> str:
    """``exact`` when equal bit for bit, else how many values differ and by how much at most."""
    predicted = np.asarray(predicted, dtype=np.float64).reshape(reference.shape)
    if np.array_equal(predicted, reference):
        return "exact"
    differ = predicted != reference
    worst = float(np.max(np.abs(predicted - reference)[differ]))
    return f"{int(differ.sum())}/{reference.size} differ (max {worst:g})"


def measure(program: Program, kit: TraceKit, port: np.ndarray, reference: np.ndarray, repeats: int) -> Measured:
    """Trace ``program`` ``repeats`` times with ``kit``: the median time; the figures and the check of the first
    trace (a later trace with another cost is noted)."""
    times, costs = [], []
    first: Any = None
    for _ in range(repeats):
        start = time.perf_counter()
        comb = trace_program(program, kit)
        times.append(time.perf_counter() - start)
        costs.append(float(comb.cost))
        first = first if first is not None else comb
    note = f"{kit.package} cost varies over traces: {min(costs):.0f}-{max(costs):.0f}" if len(set(costs)) > 1 else ""
    check = compare(first.predict(port), reference)
    return Measured(float(first.cost), float(max(first.latency)), statistics.median(times), check, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="traces per program and backend (median time)")
    parser.add_argument("--only", action="append", choices=[c.model for c in CASES], metavar="MODEL",
                        help="measure only this program (repeatable; default: all four)")  # fmt: skip
    args = parser.parse_args()
    if importlib.util.find_spec("alkaid") is None:
        sys.exit("alkaid is not installed (pip install 'netcarve[fpga]'): nothing to compare")
    kits: list[TraceKit] = [alkaid_kit()]
    versions = f"alkaid {package_version('alkaid')}"
    if importlib.util.find_spec("da4ml") is None:
        print("da4ml is not installed (pip install 'netcarve[bench]'): alkaid's columns only")
    else:
        kits.append(da4ml_kit())
        versions += f", da4ml {package_version('da4ml')}"
    print(f"{versions}; torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} traces")
    units = "cost: LUT estimate; alkaid latency: critical path in ns"
    print(units + ("; da4ml latency: adder depth (its unit)" if len(kits) > 1 else ""))

    loaded: dict[str, TensorSplits] = {}
    rows: list[tuple[str, list[Measured]]] = []
    for case in CASES:
        if args.only and case.model not in args.only:
            continue
        splits = loaded.setdefault(case.dataset, load_dataset(case.dataset))
        model, accuracy = trained(case, splits)
        program = build_program(quantize(model, case.config, input_shape=(splits.info.in_features,)))
        generator = torch.Generator().manual_seed(SEED)
        port = program.port_inputs(torch.randn(ROWS, program.in_features, generator=generator) * 3)
        reference = program.reference(port)
        folded = ", ".join(f"{f.batch_norm}→{f.into}" for f in program.folded) or "none"
        print(f"{case.model}: {case.dataset}, {case.epochs} epochs, float test accuracy {accuracy:.3f}; "
              f"{len(program.steps)} steps, BatchNorm folded: {folded}")  # fmt: skip
        rows.append((case.model, [measure(program, kit, port, reference, args.repeats) for kit in kits]))

    header = f"{'program':<24} {'alkaid LUT':>11} {'alkaid ns':>10}"
    if len(kits) > 1:
        header += f" {'da4ml LUT':>10} {'da4ml depth':>11} {'LUT ratio':>9}"
    header += f" {'trace alkaid':>12}" + (f" {'trace da4ml':>11}" if len(kits) > 1 else "") + "  check"
    print()
    print(header)
    failed = False
    for name, measured in rows:
        ours = measured[0]
        line = f"{name:<24} {ours.cost:>11.0f} {ours.latency:>10.1f}"
        if len(measured) > 1:
            theirs = measured[1]
            line += f" {theirs.cost:>10.0f} {theirs.latency:>11.0f} {ours.cost / theirs.cost:>9.3f}"
        line += "".join(f" {m.seconds:>11.2f}s" if i == 0 else f" {m.seconds:>10.2f}s" for i, m in enumerate(measured))
        checks = [m.check for m in measured]
        if all(c == "exact" for c in checks):
            line += "  exact"
        else:
            failed = True
            line += "  " + "; ".join(f"{kit.package}: {c}" for kit, c in zip(kits, checks, strict=True))
        print(line)
        for m in measured:
            if m.note:
                print(f"  note: {m.note}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
