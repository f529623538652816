"""The hls4ml backend: a :class:`~netcarve.export.program.Program` as an hls4ml (Vitis, ``io_parallel``,
``Latency``) project, compiled to hls4ml's C simulation (g++) so the export can be checked bit for bit.

The program's Dense and Relu steps become an ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU`` with the on-grid
weights and biases copied in (float64 values exactly representable in the weight/bias formats, which is all
hls4ml reads). Every other number format is an hls4ml precision string ``ap_fixed<W,I,Q,O>`` (``ap_ufixed``
when unsigned), with ``I = width − frac`` and the modes named by ``netcarve.ir.fixedpoint.ROUND_NAMES`` and
``OVERFLOW_NAMES`` (``nearest_even`` → ``AP_RND_CONV``, ``nearest_up`` → ``AP_RND``, ``truncate`` →
``AP_TRN``; ``saturate`` → ``AP_SAT``, ``wrap`` → ``AP_WRAP``).

hls4ml has one ``result`` precision per layer (``input_1`` is the input layer). The quantization points of the
program between two hls4ml layers (the input port and the quantizers right after it; a Linear's ``data_out``
and the next ReLU's ``data_in``; a ReLU's ``data_out`` and the next Linear's ``data_in``) must therefore be one
cast. They are composed only when that is exact: one of their formats, applied alone, gives the same value as
the whole chain for *every* value that can reach it. Those values lie in a known set (a fixed-point grid and
an interval, from the port format, interval arithmetic over the constant weights, the ReLU and each
quantizer; a superset, so the check is conservative), and the check enumerates it (:func:`compose`).
Saturating quantizers right before a ReLU commute with it (``relu(q(y)) = q(relu(y))``), so when a Linear's
chain does not compose, its trailing saturating quantizers move to the ReLU's result. A chain no single
format reproduces (e.g. two nearest roundings to different grids: double rounding) is a one-line PassError
naming the node; alkaid exports every chain exactly. (hls4ml 1.3's PyTorch converter has no identity layer
with a precision of its own: ``nn.Identity`` is not supported and linear activations are removed.)

A layer without a quantizer after it gets the exact format of its values; each Linear's accumulator is exact
too (its grid and the interval of its sums, wrapping: partial sums may overflow, the final sum fits).

**Per-element formats**: weights and biases are constants already on their grids, so each layer's weight
(bias) type is the one format wide enough for every element (:meth:`ElementFormat.envelope`: the largest
integer bits and frac), which represents them exactly; so is the input port's, whose values arrive on their
grids. A quantizer *between* layers with per-element formats rounds each value to its own grid, which one
hls4ml result type cannot do: a one-line PassError naming the node (alkaid exports it exactly).

Float layers: ``build_program(graph, float_precision=parse_precision(options.default_precision))`` gives
their unquantized inputs, weights and biases that format (hls4ml's ``ap_fixed<16,6>`` is truncate/wrap); the
export then equals the program bit for bit and differs from netcarve's float forward by that rounding.

**MLPs only**: the backend maps Linear and ReLU. A program with a convolution, a pool or anything else
alkaid maps (:func:`check_mlp`) is a one-line PassError naming its first such node, before anything is
written; export it with alkaid.

hls4ml is imported only when a project is written; compiling needs g++ (a one-line error otherwise).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netcarve.errors import ExportError, PassError
from netcarve.export.backends import BACKENDS, Backend, BackendResult, ExportOptions, relative
from netcarve.export.program import Dense, ElementFormat, FixedFormat, Program, Quantize, Relu, envelope
from netcarve.ir.fixedpoint import backend_modes
from netcarve.ir.opspecs import spec_of_kind

log = logging.getLogger(__name__)

#: hls4ml's quantization mode for each netcarve rounding mode, and overflow mode for each overflow mode
ROUND_MODES, OVERFLOW_MODES = backend_modes("hls4ml")
#: the FPGA part when ``ExportOptions.part`` is not given (a Virtex UltraScale+, as in hls4ml's examples)
DEFAULT_PART = "xcvu13p-flga2577-2-e"
#: what ``--part`` may look like (``xcvu13p-flga2577-2-e``): hls4ml has no list of parts to check it against
#: and writes it into the project's Tcl scripts as given, so only its spelling is checked
PART_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
PART_NOTE = (
    "not checked against the parts that exist (hls4ml has no list of them): Vitis HLS checks it when it "
    "synthesizes the project"
)
HLS_BACKEND = "Vitis"
CLOCK_PERIOD_NS = 5
PROJECT_NAME = "netcarve_model"
#: the file names the backend writes, relative to the output directory
PROJECT_DIR = "hls4ml"
LOG_FILE = "hls4ml.log"
#: hls4ml layer name → netcarve node and precisions
PRECISIONS_FILE = "hls4ml_precisions.json"
#: the most values the composition check enumerates at one quantization point
MAX_ENUMERATED = 1 << 22


class CompilerMissingError(ExportError):
    """hls4ml's C simulation needs a C++ compiler (g++) on the PATH."""


def hls_precision(fmt: FixedFormat) -> str:
    """``fmt`` as an hls4ml precision string, e.g. ``ap_ufixed<8,4,AP_RND_CONV,AP_SAT>`` (hls4ml names every
    mode, and a format's modes are valid)."""
    kind = "ap_fixed" if fmt.signed else "ap_ufixed"
    return f"{kind}<{fmt.width},{fmt.int_bits},{ROUND_MODES[fmt.round]},{OVERFLOW_MODES[fmt.overflow]}>"


_PRECISION = re.compile(
    r"^\s*ap_(u?)fixed\s*<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(AP_\w+)\s*)?(?:,\s*(AP_\w+)\s*)?(?:,\s*\d+\s*)?>\s*$"
)


def parse_precision(text: str) -> FixedFormat:
    """An hls4ml precision string as a format: ``ap_fixed<16,6>`` is signed, 16 bits, frac 10, with
    ap_fixed's default modes (AP_TRN: truncate, AP_WRAP: wrap). PassError for other types or modes."""
    match = _PRECISION.match(text)
    if match is None:
        raise PassError(f"precision {text!r} is not ap_fixed<W,I[,Q,O]> or ap_ufixed<W,I[,Q,O]>")
    unsigned, width, int_bits, round_mode, overflow = match.groups()
    rounds = {v: k for k, v in ROUND_MODES.items()}
    overflows = {v: k for k, v in OVERFLOW_MODES.items()}
    if (round_mode or "AP_TRN") not in rounds or (overflow or "AP_WRAP") not in overflows:
        raise PassError(
            f"precision {text!r}: netcarve maps only the modes {', '.join(rounds)} and {', '.join(overflows)}"
        )
    if int(width) < 1:
        raise PassError(f"precision {text!r}: the width must be at least 1")
    return FixedFormat(
        not unsigned,
        int(width),
        int(width) - int(int_bits),
        rounds[round_mode or "AP_TRN"],
        overflows[overflow or "AP_WRAP"],
    )


@dataclass(frozen=True)
class Domain:
    """The values that can reach a point of the program: multiples of 2^−frac in [lo, hi]."""

    frac: int
    lo: float
    hi: float

    @staticmethod
    def of_format(fmt: FixedFormat) -> Domain:
        lo, hi = fmt.int_range
        return Domain(fmt.frac, lo * 2.0**-fmt.frac, hi * 2.0**-fmt.frac)

    def values(self, where: str) -> np.ndarray:
        k_lo, k_hi = round(self.lo * 2.0**self.frac), round(self.hi * 2.0**self.frac)
        if k_hi - k_lo + 1 > MAX_ENUMERATED:
            raise PassError(
                f"{where}: too many values ({k_hi - k_lo + 1}) to check that its quantizers compose into one "
                "hls4ml precision; export it with alkaid"
            )
        return np.arange(k_lo, k_hi + 1, dtype=np.float64) * 2.0**-self.frac

    def exact_format(self) -> FixedFormat:
        """The narrowest format holding every value exactly (truncate/wrap: it never rounds nor overflows)."""
        k_lo, k_hi = round(self.lo * 2.0**self.frac), round(self.hi * 2.0**self.frac)
        signed = k_lo < 0
        width = 1 + max(_bits(-k_lo - 1), _bits(k_hi)) if signed else max(_bits(k_hi), 1)
        return FixedFormat(signed, width, self.frac, "truncate", "wrap")


def _bits(k: int) -> int:
    """Bits of a non-negative integer (0 → 0)."""
    return int(k).bit_length()


def _after_dense(domain: Domain, step: Dense) -> Domain:
    """The sums ``x @ W.T + b`` for x in ``domain``: their grid and interval (interval arithmetic, exact per
    output, then the widest over outputs)."""
    w = step.weight
    lo = np.minimum(w * domain.lo, w * domain.hi).sum(axis=1)
    hi = np.maximum(w * domain.lo, w * domain.hi).sum(axis=1)
    frac = domain.frac + envelope(step.weight_fmt).frac
    if step.bias is not None and step.bias_fmt is not None:
        lo, hi = lo + step.bias, hi + step.bias
        frac = max(frac, envelope(step.bias_fmt).frac)
    return Domain(frac, float(lo.min()), float(hi.max()))


def compose(chain: Sequence[FixedFormat], domain: Domain, where: str) -> tuple[FixedFormat, Domain]:
    """One format that gives the same values as the quantizers ``chain`` applied in turn, for every value of
    ``domain``, and the domain of its results. An empty chain gives the domain's exact format. PassError
    (naming ``where``) when no format of the chain does."""
    if not chain:
        return domain.exact_format(), domain
    if len(chain) == 1:  # one quantizer is its own precision (no need to enumerate)
        fmt = chain[0]
        if fmt.overflow == "saturate":  # monotone: the ends map to the ends
            lo, hi = fmt.quantize(np.array([domain.lo, domain.hi]))
            return fmt, Domain(fmt.frac, float(lo), float(hi))
        return fmt, Domain.of_format(fmt)
    values = domain.values(where)
    target = values
    for fmt in chain:
        target = fmt.quantize(target)
    for fmt in (*reversed(chain),):
        if np.array_equal(fmt.quantize(values), target):
            return fmt, Domain(fmt.frac, float(target.min()), float(target.max()))
    raise PassError(
        f"{where}: its quantizers {' then '.join(f.describe() for f in chain)} cannot be one hls4ml "
        "precision (hls4ml has one result precision per layer and no identity layer); export it with alkaid"
    )


def _composes(chain: Sequence[FixedFormat], domain: Domain) -> bool:
    try:
        compose(chain, domain, "")
    except PassError:
        return False
    return True


def _movable_past_relu(chain: list[FixedFormat], domain: Domain) -> list[FixedFormat]:
    """The fewest trailing quantizers of ``chain`` (right before a ReLU) to move after the ReLU so that the
    rest composes into the previous layer's result. A saturating quantizer commutes with ReLU (it is
    monotone, keeps 0 and the sign: ``relu(q(y)) = q(relu(y))``), so only those move; a wrapping one stops."""
    for moved in range(len(chain) + 1):
        if moved and chain[len(chain) - moved].overflow != "saturate":
            break
        if _composes(chain[: len(chain) - moved], domain):
            return chain[len(chain) - moved :]
    return []  # nothing helps: compose() then names the node


@dataclass(frozen=True)
class LayerPrecisions:
    """hls4ml precisions of one layer of the Sequential (its hls4ml name and precision keys)."""

    name: str
    node: str
    precision: dict[str, str]


def check_mlp(program: Program) -> None:
    """PassError naming the first step of ``program`` that is not a Linear, a ReLU or a quantizer (a
    convolution, a pool): this backend maps MLPs only."""
    for step in program.steps:
        kind = program.graph.meta(step.node).kind
        spec = spec_of_kind(kind)
        if isinstance(step, Quantize | Relu) or (
            isinstance(step, Dense) and spec is not None and spec.export == "dense"
        ):
            continue
        raise PassError(
            f"node {step.node!r} ({kind}): the hls4ml export maps MLPs only (Linear, ReLU); "
            "export this model with --to alkaid, which supports it"
        )


def plan(program: Program) -> tuple[nn.Sequential, list[LayerPrecisions]]:
    """The ``nn.Sequential`` (float64, weights on their grids) and the hls4ml precision of every layer,
    ``input_1`` first. PassError when quantizers cannot be composed exactly (see :func:`compose`) or the
    program is not an MLP (:func:`check_mlp`)."""
    check_mlp(program)
    modules: list[nn.Module] = []
    layers: list[LayerPrecisions] = []
    # the input layer: the port, then any quantizers before the first layer
    port = envelope(program.port)  # port values arrive on their grids: the envelope holds each exactly
    domain = Domain.of_format(port)
    chain: list[FixedFormat] = [port]
    pending: tuple[str, str, dict[str, str]] = ("input_1", "input", {})
    index = 0

    def close(chain: list[FixedFormat], domain: Domain) -> Domain:
        name, node, precision = pending
        fmt, out = compose(chain, domain, f"node {node!r}")
        precision["result"] = hls_precision(fmt)
        layers.append(LayerPrecisions(name, node, precision))
        return out

    for step in program.steps:
        if isinstance(step, Quantize):
            if isinstance(step.fmt, ElementFormat):
                raise PassError(
                    f"node {step.node!r}, {step.operand}: per-element formats round each value to its own grid, "
                    "which one hls4ml precision cannot; export it with --to alkaid"
                )
            chain.append(step.fmt)
            continue
        moved = _movable_past_relu(chain, domain) if isinstance(step, Relu) else []
        domain = close(chain[: len(chain) - len(moved)], domain)
        chain = moved
        if isinstance(step, Dense):
            out_features, in_features = step.weight.shape
            linear = nn.Linear(in_features, out_features, bias=step.bias is not None, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(step.weight)))
                if step.bias is not None:
                    assert linear.bias is not None
                    linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(step.bias)))
            modules.append(linear)
            domain = _after_dense(domain, step)
            weight_fmt = envelope(step.weight_fmt)
            precision = {"weight": hls_precision(weight_fmt), "accum": hls_precision(domain.exact_format())}
            if step.bias_fmt is not None:
                precision["bias"] = hls_precision(envelope(step.bias_fmt))
            pending = (f"_{index}", step.node, precision)
        elif isinstance(step, Relu):
            modules.append(nn.ReLU())
            domain = Domain(domain.frac, max(domain.lo, 0.0), max(domain.hi, 0.0))
            pending = (f"_{index}", step.node, {})
        index += 1
    close(chain, domain)
    return nn.Sequential(*modules).eval(), layers


def hls_config(seq: nn.Sequential, in_features: int, layers: Sequence[LayerPrecisions]) -> dict[str, Any]:
    """hls4ml's configuration of ``seq`` (by layer name) with ``layers``' precisions and the Latency strategy."""
    import hls4ml

    config: dict[str, Any] = hls4ml.utils.config_from_pytorch_model(
        seq, (in_features,), granularity="name", backend=HLS_BACKEND
    )
    by_name = config["LayerName"]
    for layer in layers:
        if layer.name not in by_name:
            raise PassError(f"node {layer.node!r}: hls4ml named its layers {sorted(by_name)}, not {layer.name!r}")
        entry = by_name[layer.name].setdefault("Precision", {})
        if not isinstance(entry, dict):
            entry = by_name[layer.name]["Precision"] = {}
        entry.update(layer.precision)
    config["Model"]["Strategy"] = "Latency"
    return config


def check_part(part: str) -> None:
    """An ExportError unless ``part`` is spelt like an FPGA part (letters, digits, ``-``, ``_``, ``.``)."""
    if not PART_PATTERN.fullmatch(part):
        raise ExportError(
            f"--part {part!r} is not an FPGA part name: letters, digits, '-', '_' and '.' only (e.g. {DEFAULT_PART})"
        )


def write(program: Program, directory: Path, options: ExportOptions) -> BackendResult:
    """Write the hls4ml project under ``hls4ml/`` and compile its C simulation; ``predict`` runs it."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise CompilerMissingError("exporting to hls4ml compiles its C simulation with g++, which is not on the PATH")
    import hls4ml

    seq, layers = plan(program)
    part = options.part or DEFAULT_PART
    project = directory / PROJECT_DIR
    log_file = directory / LOG_FILE
    start = time.perf_counter()
    with log_file.open("w") as stream, contextlib.redirect_stdout(stream):
        config = hls_config(seq, program.in_features, layers)
        model = hls4ml.converters.convert_from_pytorch_model(
            seq,
            output_dir=str(project.resolve()),
            project_name=PROJECT_NAME,
            backend=HLS_BACKEND,
            io_type="io_parallel",
            part=part,
            clock_period=CLOCK_PERIOD_NS,
            hls_config=config,
        )
        try:
            model.compile()
        except Exception as exc:  # hls4ml raises bare exceptions for compiler failures
            raise PassError(f"hls4ml's C simulation did not compile (see {log_file}): {exc}") from exc
    seconds = time.perf_counter() - start
    log.info("hls4ml: project written and compiled in %.1f s (part %s)", seconds, part)
    out_features = program.out_features
    predict: Callable[[np.ndarray], np.ndarray] = lambda v: np.asarray(  # noqa: E731
        model.predict(np.ascontiguousarray(v, dtype=np.float64)), dtype=np.float64
    ).reshape(-1, out_features)
    precisions = directory / PRECISIONS_FILE
    table = {layer.name: {"node": layer.node, **layer.precision} for layer in layers}
    precisions.write_text(json.dumps(table, indent=2) + "\n")
    return BackendResult(
        predict=predict,
        files={
            "project": relative(project, directory),
            "config": relative(project / "hls4ml_config.yml", directory),
            "precisions": relative(precisions, directory),
            "log": relative(log_file, directory),
        },
        figures={"part": part, "compile_seconds": round(seconds, 1)},
        notes=[f"part {part}: {PART_NOTE}"] if options.part else [],
    )


BACKENDS.add(
    "hls4ml",
    Backend(
        "hls4ml",
        package="hls4ml",
        write=write,
        allows_float=True,
        check=check_mlp,
        # the runner's build_program(graph, float_precision=parse_precision(options.default_precision))
        extra={"parse_precision": parse_precision, "check_part": check_part},
        description=f"hls4ml: a Vitis HLS project (io_parallel, Latency; part {DEFAULT_PART} by default), "
        "checked with its compiled C simulation",
    ),
    description="hls4ml: a Vitis HLS project (io_parallel, Latency), checked with its compiled C simulation",
)
