"""The analysis report: typed per-layer and total records, with dict and CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

#: per-layer and total firmware estimates (alkaid), present only when computed
FPGA_METRICS = ("fpga_luts", "fpga_latency")

#: per-layer summary of per-element formats (weight and bias elements), present only when some layer has them
ELEMENT_METRICS = ("mean_bits", "max_bits", "pruned_share")

#: per-layer integer metrics, in table order (README: Analyze)
LAYER_METRICS = (
    "params",
    "frozen_params",
    "buffers",
    "size_bits",
    "buffer_bits",
    "macs",
    "flops",
    "bitops",
    "backward_dgrad_macs",
    "backward_wgrad_macs",
    "backward_flops",
    "output_bytes",
)


@dataclass(frozen=True)
class LayerRecord:
    """One fx node: what it holds, what it computes at the report's batch size, and its output bytes.

    ``params`` are trainable elements (``requires_grad``), ``frozen_params`` the rest; ``size_bits`` covers
    both. A submodule that ``forward`` never calls has a record of kind ``unused``: its parameters and
    buffers, and no compute.
    """

    name: str
    kind: str
    target: str
    output_shape: tuple[int, ...]
    precision: str
    params: int
    frozen_params: int
    buffers: int
    size_bits: int
    buffer_bits: int
    macs: int
    flops: int
    bitops: int
    backward_dgrad_macs: int
    backward_wgrad_macs: int
    backward_flops: int
    output_bytes: int
    uncounted: Mapping[str, int] = field(default_factory=dict)
    #: alkaid's estimates of this layer's firmware (``analyze(..., fpga=True)``; None otherwise or for a
    #: layer without its own logic): LUTs and critical-path delay in ns
    fpga_luts: float | None = None
    fpga_latency: float | None = None
    #: per-element formats only (None otherwise): the mean and largest width of the layer's weight and bias
    #: elements (a pruned one counts 0 bits) and the share of them pruned (width 0)
    mean_bits: float | None = None
    max_bits: int | None = None
    pruned_share: float | None = None


@dataclass(frozen=True)
class TotalRecord:
    """Whole-model totals. ``model_size`` = ceil(size_bits / 8) bytes; the two ratios are floats."""

    params: int
    frozen_params: int
    buffers: int
    size_bits: int
    buffer_bits: int
    model_size: int
    macs: int
    flops: int
    bitops: int
    backward_dgrad_macs: int
    backward_wgrad_macs: int
    backward_flops: int
    activation_bytes: int
    peak_activation_bytes: int
    average_bitwidth: float
    memory_density: float
    #: effective bit operations per sample (HGQ's EBOPs): Σ over the MACs of every Linear or convolution whose
    #: data_in and weight are fixed point of bits(input) · bits(weight), a pruned weight counting 0; other layers
    #: count 0 (``netcarve.transforms.quantize.learned.ebops``). Set by ``analyze``; None on a bare record
    ebops: float | None = None
    #: alkaid's estimates of the whole firmware (``analyze(..., fpga=True)``), None when not computed
    fpga_luts: float | None = None
    fpga_latency: float | None = None


@dataclass(frozen=True)
class Latency:
    """Measured forward wall time (seconds) at ``batch_size`` after ``warmup`` runs, over ``runs`` runs."""

    batch_size: int
    median_s: float
    p90_s: float
    runs: int
    warmup: int
    threads: int


@dataclass(frozen=True)
class Report:
    """What ``netcarve.analyze`` returns: ``layers`` in graph order, ``total``, and ``uncounted`` ops."""

    batch_size: int
    convention: str
    method: str
    layers: tuple[LayerRecord, ...]
    total: TotalRecord
    uncounted: Mapping[str, int]
    latency: Latency | None = None

    def layer(self, name: str) -> LayerRecord:
        for record in self.layers:
            if record.name == name:
                return record
        raise KeyError(f"no layer {name!r} in the report (layers: {', '.join(r.name for r in self.layers)})")

    def with_latency(self, latency: Latency) -> Report:
        return replace(self, latency=latency)

    @property
    def has_fpga(self) -> bool:
        """Whether the firmware estimates were computed (:meth:`with_fpga`)."""
        return self.total.fpga_luts is not None

    def with_fpga(
        self, total_luts: float, total_latency: float, per_layer: Mapping[str, tuple[float, float]]
    ) -> Report:
        """The report with alkaid's estimates: the total, and each layer in ``per_layer`` (node → (luts,
        latency)); other layers keep None."""
        layers = tuple(
            replace(r, fpga_luts=per_layer[r.name][0], fpga_latency=per_layer[r.name][1]) if r.name in per_layer else r
            for r in self.layers
        )
        total = replace(self.total, fpga_luts=total_luts, fpga_latency=total_latency)
        return replace(self, layers=layers, total=total)

    @property
    def has_elements(self) -> bool:
        """Whether some layer has per-element formats (its ``mean_bits``, ``max_bits``, ``pruned_share``)."""
        return any(r.mean_bits is not None for r in self.layers)

    def _plain(self, record: LayerRecord | TotalRecord) -> dict[str, Any]:
        item = asdict(record)
        if not self.has_fpga:
            for key in FPGA_METRICS:
                del item[key]
        if isinstance(record, TotalRecord) and record.ebops is None:
            del item["ebops"]
        if isinstance(record, LayerRecord) and not self.has_elements:
            for key in ELEMENT_METRICS:
                del item[key]
        return item

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain dicts, lists and numbers (the fpga keys only when computed)."""
        layers = []
        for record in self.layers:
            item = self._plain(record)
            item["output_shape"] = list(record.output_shape)
            item["uncounted"] = dict(record.uncounted)
            layers.append(item)
        return {
            "batch_size": self.batch_size,
            "convention": self.convention,
            "method": self.method,
            "total": self._plain(self.total),
            "layers": layers,
            "uncounted": dict(self.uncounted),
            "latency": asdict(self.latency) if self.latency is not None else None,
        }

    def to_csv(self) -> str:
        """One row per layer and a last row ``total`` (layer-only columns empty there)."""
        fpga = list(FPGA_METRICS) if self.has_fpga else []
        elements = list(ELEMENT_METRICS) if self.has_elements else []
        columns = ["name", "kind", "target", "output_shape", "precision", *LAYER_METRICS, *fpga, *elements, "uncounted"]
        total_only = [f.name for f in fields(TotalRecord) if f.name not in (*LAYER_METRICS, *FPGA_METRICS)]
        if self.latency is not None:
            total_only += ["latency_median_s", "latency_p90_s", "latency_runs"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*columns, *total_only], lineterminator="\n")
        writer.writeheader()
        for record in self.layers:
            row: dict[str, Any] = {c: getattr(record, c) for c in columns}
            row["output_shape"] = "x".join(str(s) for s in record.output_shape)
            row["uncounted"] = ";".join(f"{op}={n}" for op, n in record.uncounted.items())
            writer.writerow(row)
        total: dict[str, Any] = self._plain(self.total)
        if self.latency is not None:
            total.update(
                latency_median_s=self.latency.median_s, latency_p90_s=self.latency.p90_s, latency_runs=self.latency.runs
            )
        total["uncounted"] = ";".join(f"{op}={n}" for op, n in self.uncounted.items())
        writer.writerow({"name": "total", **total})
        return buffer.getvalue()
