"""Analysis speed and correctness: netcarve against FlopCounterMode (and fvcore/ptflops/thop if importable).

Two models at batch 256: jsc-s (MLP) and a small CNN. Each tool's total MACs is printed next to the
analytic value; each tool's median wall time over RUNS runs. netcarve is timed twice: counting an
already-built Graph (what a search does per trial) and the whole path from nn.Module (tracing included).
FlopCounterMode reports 2 flops per MAC, so its MACs are its flops / 2; fvcore/ptflops/thop report MACs.

Run: ``.venv/bin/python bench/analysis_bench.py``. The last line is the time ratio netcarve/FlopCounterMode
(sum of the two models' medians), for the graph path and the module path.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netcarve import analyze
from netcarve.data.base import DatasetInfo
from netcarve.ir import Graph
from netcarve.models import create_model

BATCH = 256
RUNS = 60
JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


class SmallCNN(nn.Module):
    """(3, 16, 16) → Conv(3→8, k3, s2, p1) (8, 8, 8) → BN2d → ReLU → Conv(8→16, k3, s2, p1) (16, 4, 4) → ReLU
    → Flatten 256 → Linear(256, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.act2(self.conv2(self.act1(self.bn(self.conv1(x)))))))


# Analytic MACs per sample:
#   jsc-s: 16·64 + 64·32 + 32·32 + 32·32 + 32·5 = 1024 + 2048 + 1024 + 1024 + 160 = 5280
#   CNN:   conv1 8·8·8 outputs × 3·3·3 = 13824; conv2 16·4·4 × 8·3·3 = 18432; fc 256·10 = 2560 → 34816
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "jsc-s": (lambda: create_model("jsc-s", JSC), (16,), 5280 * BATCH),
    "small-cnn": (SmallCNN, (3, 16, 16), 34816 * BATCH),
}


def median_time(fn: Callable[[], Any], runs: int = RUNS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops()) // 2


def optional_tools(model: nn.Module, x: torch.Tensor) -> dict[str, Callable[[], int]]:
    """Counters from the ``bench`` extra, when importable: name → callable returning total MACs."""
    tools: dict[str, Callable[[], int]] = {}
    try:
        from fvcore.nn import FlopCountAnalysis

        def fvcore_macs() -> int:
            analysis = FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            return int(analysis.total())

        tools["fvcore"] = fvcore_macs
    except ImportError:
        pass
    try:
        from thop import profile

        tools["thop"] = lambda: int(profile(model, inputs=(x,), verbose=False)[0])
    except ImportError:
        pass
    try:
        from ptflops import get_model_complexity_info

        def ptflops_macs() -> int:
            macs, _ = get_model_complexity_info(
                model,
                tuple(x.shape[1:]),
                input_constructor=lambda _: {"x": x},
                as_strings=False,
                print_per_layer_stat=False,
            )
            return int(macs)

        tools["ptflops"] = ptflops_macs
    except ImportError:
        pass
    return tools


def bench_case(name: str) -> tuple[float, float, float]:
    build, shape, analytic = CASES[name]
    model = build().eval()
    x = torch.randn(BATCH, *shape)
    graph = Graph.from_module(model, shape)
    example = (BATCH, *shape)
    print(f"\n{name} at batch {BATCH}: analytic MACs {analytic:,}")
    rows: list[tuple[str, int | str, float | None]] = []

    graph_macs = analyze(graph, example).total.macs
    t_graph = median_time(lambda: analyze(graph, example))
    rows.append(("netcarve (built graph)", graph_macs, t_graph))
    module_macs = analyze(model, example).total.macs
    t_module = median_time(lambda: analyze(model, example))
    rows.append(("netcarve (nn.Module, traced)", module_macs, t_module))
    dispatch_macs = analyze(graph, example, method="dispatch").total.macs
    rows.append(
        ("netcarve (dispatch path)", dispatch_macs, median_time(lambda: analyze(graph, example, method="dispatch"), 10))
    )
    for value in (graph_macs, module_macs, dispatch_macs):
        if value != analytic:
            print(f"  MISMATCH: netcarve counted {value:,} MACs, analytic {analytic:,}")

    fcm_macs = flop_counter_macs(model, x)
    t_fcm = median_time(lambda: flop_counter_macs(model, x))
    rows.append(("FlopCounterMode (flops/2)", fcm_macs, t_fcm))
    for tool, fn in optional_tools(model, x).items():
        try:
            rows.append((tool, fn(), median_time(fn)))
        except Exception as exc:  # a third-party counter that fails on this model
            rows.append((tool, f"failed: {type(exc).__name__}", None))

    for tool, macs, seconds in rows:
        macs_text = f"{macs:>14,}" if isinstance(macs, int) else f"{macs:>14}"
        ok = "ok" if macs == analytic else "≠ analytic"
        time_text = f"{seconds * 1e3:9.3f} ms" if seconds is not None else "        -"
        print(f"  {tool:<30} MACs {macs_text}  {ok:<10}  median {time_text}")
    return t_graph, t_module, t_fcm


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median over {RUNS} runs")
    totals = [0.0, 0.0, 0.0]
    for name in CASES:
        for i, t in enumerate(bench_case(name)):
            totals[i] += t
    graph_ratio, module_ratio = totals[0] / totals[2], totals[1] / totals[2]
    print()
    print(f"analysis/FlopCounterMode time ratio: {graph_ratio:.2f} (graph) {module_ratio:.2f} (module)")


if __name__ == "__main__":
    main()
