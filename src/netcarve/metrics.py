"""The metrics a search can optimise or constrain, computed fresh from each candidate (README: Analyze, Search).

Architecture metrics (params, model_size, macs, flops, bitops, ebops, average_bitwidth, memory_density, and the
firmware estimates fpga_luts and fpga_latency) depend only on the candidate's structure, precision and
weights: they are known before any training, so constraints on them prune a trial early. The firmware
estimates come from alkaid's trace of the candidate's fixed-point program (``netcarve.analysis.fpga``), which
costs 0.1–2 s, so a search computes them only when its objectives or constraints use one.
``accuracy``/``loss`` come from evaluating the candidate; ``latency`` is measured
(median forward time at batch size 1, in milliseconds) and is the one metric that varies between runs.
Counts are per sample (batch size 1), as hardware designers quote them.

This module imports neither torch, Optuna nor the search: the search records the metrics, the report reads
their names, units and directions back from the run's files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from netcarve.registry import Registry

if TYPE_CHECKING:
    from netcarve.analysis.fpga import FpgaCosts
    from netcarve.analysis.records import TotalRecord

Group = Literal["software", "hardware"]
Stage = Literal["architecture", "evaluation", "latency"]


@dataclass(frozen=True)
class MetricDef:
    """A metric: its table group (MASE's software/hardware columns), when it is known, and its unit."""

    name: str
    group: Group
    stage: Stage
    better: str  # "maximize" | "minimize": the natural direction, for documentation and defaults
    unit: str
    from_total: Callable[[TotalRecord, float], float] | None = None
    #: a firmware metric: computed from alkaid's trace (only when asked for), not from the analysis total
    from_fpga: Callable[[FpgaCosts], float] | None = None

    @property
    def architecture_only(self) -> bool:
        return self.stage == "architecture"


METRICS: Registry[MetricDef] = Registry("metric")


def _arch(name: str, unit: str, fn: Callable[[TotalRecord, float], float], description: str) -> None:
    METRICS.add(name, MetricDef(name, "hardware", "architecture", "minimize", unit, fn), description=description)


def _density(total: TotalRecord, compare_to: float) -> float:
    return compare_to / total.average_bitwidth if total.average_bitwidth > 0 else float("inf")


METRICS.add("accuracy", MetricDef("accuracy", "software", "evaluation", "maximize", "fraction"),
            description="top-1 accuracy on the evaluation split")  # fmt: skip
METRICS.add("loss", MetricDef("loss", "software", "evaluation", "minimize", "nats"),
            description="cross-entropy on the evaluation split")  # fmt: skip
METRICS.add("latency", MetricDef("latency", "hardware", "latency", "minimize", "ms"),
            description="median forward time at batch size 1 (measured)")  # fmt: skip
_arch("params", "elements", lambda t, _: float(t.params), "trainable parameter elements")
_arch("model_size", "bytes", lambda t, _: float(t.model_size), "ceil(size_bits / 8) bytes of parameters")
_arch("macs", "per sample", lambda t, _: float(t.macs), "multiply-accumulates per sample")
_arch("flops", "per sample", lambda t, _: float(t.flops), "2·macs + bias adds + elementwise ops per sample")
_arch("bitops", "per sample", lambda t, _: float(t.bitops), "bit operations per sample")
_arch(
    "ebops",
    "per sample",
    lambda t, _: float(t.ebops or 0.0),
    "effective bit operations (HGQ's EBOPs): Σ bits(input)·bits(weight) over the fixed-point layers' MACs",
)
_arch("average_bitwidth", "bits", lambda t, _: float(t.average_bitwidth), "mean stored bits of weights and biases")
_arch("memory_density", "ratio", _density, "compare_to / average_bitwidth (MASE's)")
METRICS.add("fpga_luts", MetricDef("fpga_luts", "hardware", "architecture", "minimize", "LUT",
            from_fpga=lambda c: c.total_luts),
            description="alkaid's LUT estimate of the firmware's adder graphs (not a synthesis result)")  # fmt: skip
METRICS.add("fpga_latency", MetricDef("fpga_latency", "hardware", "architecture", "minimize", "ns",
            from_fpga=lambda c: c.total_latency),
            description="alkaid's estimate of the firmware's critical-path delay (ns, before pipelining)")  # fmt: skip

#: hardware metrics shown in the "Best trial(s)" table even when not optimised (as MASE showed them)
ALWAYS_SHOWN = ("average_bitwidth", "memory_density")


def architecture_metrics(total: TotalRecord, compare_to: float) -> dict[str, float]:
    """Every architecture metric of a candidate from its analysis total."""
    out: dict[str, float] = {}
    for entry in METRICS.entries():
        fn = entry.obj.from_total
        if fn is not None:
            out[entry.name] = fn(total, compare_to)
    return out


def firmware_metric_names() -> tuple[str, ...]:
    """The metrics computed from alkaid's trace of the firmware."""
    return tuple(e.name for e in METRICS.entries() if e.obj.from_fpga is not None)


def firmware_metrics(costs: FpgaCosts) -> dict[str, float]:
    """Every firmware metric of a candidate from its alkaid estimates."""
    out: dict[str, float] = {}
    for entry in METRICS.entries():
        fn = entry.obj.from_fpga
        if fn is not None:
            out[entry.name] = fn(costs)
    return out


def split_groups(values: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(software, hardware) metrics of a trial."""
    software = {k: v for k, v in values.items() if k in METRICS and METRICS.get(k).group == "software"}
    hardware = {k: v for k, v in values.items() if k not in software}
    return software, hardware


def canonical_metric(name: str) -> str:
    """The registered name of a metric given by name or alias; ``name`` itself when no metric has it."""
    return METRICS.canonical(name) if name in METRICS else name


def unit_of(name: str) -> str:
    """A metric's unit; empty for a name no metric has."""
    return METRICS.get(name).unit if name in METRICS else ""


def table_order(names: Iterable[str]) -> list[str]:
    """``names`` as table columns: the registered metrics in registry order, then any others sorted."""
    given = set(names)
    return [m for m in METRICS.names() if m in given] + sorted(given - set(METRICS.names()))
