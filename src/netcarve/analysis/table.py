"""Rich rendering of a :class:`Report`: one row per layer plus a total, units in the headers."""

from __future__ import annotations

from rich.table import Table

from netcarve.analysis.records import Report

#: (header with unit, LayerRecord/TotalRecord attribute)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("params", "params"),
    ("size (bits)", "size_bits"),
    ("MACs", "macs"),
    ("FLOPs", "flops"),
    ("BitOPs", "bitops"),
    ("bwd dgrad MACs", "backward_dgrad_macs"),
    ("bwd wgrad MACs", "backward_wgrad_macs"),
    ("bwd FLOPs", "backward_flops"),
    ("output (bytes)", "output_bytes"),
)
#: alkaid's firmware estimates, shown when computed (``analyze --fpga``)
FPGA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("fpga (LUT)", "fpga_luts"),
    ("fpga latency (ns)", "fpga_latency"),
)


#: the per-element formats' summary, shown when some layer has them
ELEMENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("mean bits", "mean_bits"),
    ("max bits", "max_bits"),
    ("pruned", "pruned_share"),
)


def report_table(report: Report, title: str = "") -> Table:
    """The precision column appears only when some layer is not float32, the frozen-params column only
    when some parameter is frozen, the mean/max bits and pruned share only when some layer has per-element
    formats."""
    quantized = any(r.precision != "float32" for r in report.layers)
    columns = COLUMNS
    if report.total.frozen_params:
        columns = (COLUMNS[0], ("frozen params", "frozen_params"), *COLUMNS[1:])
    if report.has_fpga:
        columns = (*columns, *FPGA_COLUMNS)
    if report.has_elements:
        columns = (*columns, *ELEMENT_COLUMNS)
    table = Table(title=title or None)
    for header in ("layer", "kind", "output shape", *(["precision"] if quantized else [])):
        table.add_column(header)
    for header, _ in columns:
        table.add_column(header, justify="right")
    for r in report.layers:
        shape = "×".join(str(s) for s in r.output_shape)
        first = [r.name, r.kind, shape, *([r.precision] if quantized else [])]
        table.add_row(*first, *(_cell(getattr(r, attr), attr) for _, attr in columns))
    t = report.total
    totals = {**vars(t), "output_bytes": t.activation_bytes}
    table.add_section()
    blanks = [""] * (3 if quantized else 2)
    table.add_row("total", *blanks, *(_cell(totals.get(attr), attr) for _, attr in columns), style="bold")
    return table


def _cell(value: float | None, attr: str = "") -> str:
    """A count with thousands separators; alkaid's LUT estimates rounded to whole LUTs, its delays (below 1,000)
    to 0.01 ns; a pruned share as a percentage; None blank."""
    if value is None:
        return ""
    if attr == "pruned_share":
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 1000 and value != round(value) else f"{value:,.0f}"
    return f"{value:,}"


def summary_lines(report: Report) -> list[str]:
    """Whole-model metrics that have no per-layer column, one per line."""
    t = report.total
    lines = [
        f"batch size {report.batch_size}, convention {report.convention} (counted by {report.method})",
        f"params: {t.params:,} trainable, {t.frozen_params:,} frozen (elements)",
        f"model_size: {t.model_size:,} bytes ({t.size_bits:,} bits); buffers: {t.buffers:,} "
        f"elements ({t.buffer_bits:,} bits, not in model_size)",
        f"activations: {t.activation_bytes:,} bytes in total, peak live {t.peak_activation_bytes:,} bytes",
        f"average_bitwidth: {t.average_bitwidth:.4g} bits; memory_density: {t.memory_density:.4g}",
    ]
    if t.ebops or (t.ebops is not None and report.has_elements):  # a fully pruned learned design: 0
        lines.append(f"ebops: {t.ebops:,.0f} (Σ bits(input)·bits(weight) over the fixed-point layers' MACs)")
    if report.uncounted:
        ops = ", ".join(f"{op} ×{n}" for op, n in report.uncounted.items())
        lines.append(f"uncounted (no formula): {ops}")
    if report.has_fpga:
        lines.append(
            f"fpga (alkaid estimates, not synthesis): {t.fpga_luts:,.0f} LUTs, critical path {t.fpga_latency:,.2f} ns"
        )
    if report.latency is not None:
        lat = report.latency
        lines.append(
            f"latency at batch {lat.batch_size}: median {lat.median_s * 1e6:,.1f} µs, p90 {lat.p90_s * 1e6:,.1f} µs "
            f"over {lat.runs} runs ({lat.warmup} warm-up, {lat.threads} thread(s))"
        )
    return lines
