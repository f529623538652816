"""The metrics a search can optimise or constrain, computed fresh from each candidate (README: Analyze, Search).

Architecture metrics (params, model_size, macs, flops, bitops, average_bitwidth, memory_density) depend
only on the candidate's structure and precision: they are known before any training, so constraints on
them prune a trial early. ``accuracy``/``loss`` come from evaluating the candidate; ``latency`` is measured
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
_arch("average_bitwidth", "bits", lambda t, _: float(t.average_bitwidth), "mean stored bits of weights and biases")
_arch("memory_density", "ratio", _density, "compare_to / average_bitwidth (MASE's)")

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
