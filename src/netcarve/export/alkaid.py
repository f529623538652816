"""The alkaid backend: a :class:`~netcarve.export.program.Program` traced into alkaid's combinational logic
(ALIR, ``CombLogic``), saved as ``logic.json`` and written as pipelined Verilog, VHDL 2008 or a Vitis HLS
project (``--flavor``).

alkaid (da4ml's maintained successor, same author) turns every constant matrix-vector product (Linear, a
convolution unrolled over its flattened input, an average pool) into an adder graph (distributed
arithmetic), every max pool into comparators over its windows, and keeps every intermediate value exact;
the only rounding happens at the program's ``Quantize`` steps, each mapped to alkaid's modes (the table
``netcarve.ir.fixedpoint.ROUND_NAMES``/``OVERFLOW_NAMES``; alkaid kept da4ml's names):
``truncate`` → TRN, ``nearest_up`` → RND (half up), ``nearest_even`` → TRN after one extra adder (alkaid
has no round-half-even; see :func:`_quantize_rne`); ``saturate`` → SAT, ``wrap`` → WRAP. Values that are
constants (the same for every input, e.g. a neuron whose weights all round to zero) are quantized by
netcarve's own definition instead (:func:`quantize_traced`).

The input port is declared at the port format with TRN/WRAP (:func:`port_input`), which is the identity on
values already on its grid: the firmware's inputs are quantized by netcarve's first input quantizer
(:meth:`Program.port_inputs`).

Per-element formats (:class:`~netcarve.export.program.ElementFormat`): the port is declared with alkaid's
per-element (k, i, f), a pruned feature with no bits (alkaid's constant 0: the input drops out); a
``Quantize`` step quantizes each group of values sharing a format as one scalar format, and its pruned values
become the constant 0. Weights are constants whatever their formats: a pruned weight is 0 and costs nothing.

The same two functions trace netcarve's quantized modules in alkaid's own torch converter
(:mod:`netcarve.export.alkaid_plugin`), so that both traces round alike by construction.

The trace is written once against :class:`TraceKit`, the handful of tracing calls; :func:`alkaid_kit` is
the one every export and firmware metric uses, :func:`da4ml_kit` (da4ml 0.6, whose names differ) exists
only so that ``bench/backend_compare.py`` can cost the same program on both. Each package is imported only
when a program is traced.

``--simulate`` builds the written project with alkaid's own emulator of its flavor and runs it on the
check's rows (:mod:`netcarve.export.simulate`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netcarve.errors import ExportError
from netcarve.export.backends import BACKENDS, Backend, BackendResult, ExportOptions, relative
from netcarve.export.program import Dense, ElementFormat, FixedFormat, Format, MaxPool, Program, Quantize, Relu
from netcarve.export.simulate import simulate
from netcarve.ir.fixedpoint import backend_modes

if TYPE_CHECKING:
    from alkaid.types import CombLogic

log = logging.getLogger(__name__)

#: alkaid's rounding mode for each netcarve rounding mode it has natively (nearest_even is emulated), and
#: overflow mode for each overflow mode (alkaid kept da4ml's names)
_ROUND, _OVERFLOW = backend_modes("alkaid")
#: the RTL's clock period in ns; the pipeline puts a register stage wherever alkaid's delay estimate of the
#: logic since the last one would exceed it
CLOCK_PERIOD_NS = 5.0
#: the file names the backend writes, relative to the output directory
LOGIC_FILE = "logic.json"
#: the project directory of each flavor (``--flavor``)
FLAVORS = {"verilog": "verilog", "vhdl": "vhdl", "vitis": "vitis"}
DEFAULT_FLAVOR = "verilog"
#: the top module's (or HLS function's) name
TOP = "netcarve_model"


@dataclass(frozen=True)
class TraceKit:
    """The tracing calls :func:`trace_program` makes, from alkaid or from da4ml 0.6."""

    package: str
    #: (n, solver_options) -> an input array of n variables
    input_array: Callable[..., Any]
    #: (inputs, outputs) -> CombLogic
    trace: Callable[..., Any]
    #: (x, k, i, f, overflow, round) -> x quantized
    quantize: Callable[..., Any]
    relu: Callable[..., Any]
    #: the scalar variable type (``from_const``) and the array type
    variable: Any
    array: Any


def alkaid_kit() -> TraceKit:
    """alkaid's tracing calls (every export and firmware metric)."""
    from alkaid.trace import FVariable, FVArray, FVArrayInput, trace
    from alkaid.trace.ops import quantize, relu

    def input_array(n: int, solver_options: dict[str, Any]) -> Any:
        return FVArrayInput(n, solver_options=solver_options)

    return TraceKit("alkaid", input_array, trace, quantize, relu, FVariable, FVArray)


def da4ml_kit() -> TraceKit:
    """da4ml 0.6's tracing calls: only for costing a program on alkaid's predecessor (bench/backend_compare.py)."""
    from da4ml.trace import FixedVariable, FixedVariableArray, FixedVariableArrayInput, comb_trace
    from da4ml.trace.ops import quantize, relu

    def input_array(n: int, solver_options: dict[str, Any]) -> Any:
        return FixedVariableArrayInput(n, solver_options=solver_options)

    return TraceKit("da4ml", input_array, comb_trace, quantize, relu, FixedVariable, FixedVariableArray)


def package_version(package: str = "alkaid") -> str:
    """The installed version of ``package`` (recorded beside every firmware figure it produced)."""
    from importlib.metadata import version

    return version(package)


def _quantize_rne(kit: TraceKit, x: Any, k: int, i: int, f: int, overflow: str) -> Any:
    """Round half to even at ``f`` fractional bits: ``trn(x + s/2 − u + u·bit)`` with ``s = 2^−f`` the
    target step, ``u`` the finest step of ``x`` and ``bit`` its bit of weight ``s``: an odd floor gets
    ``+s/2`` (a tie rounds up to even), an even one ``+s/2 − u`` (a tie stays); other values round to
    nearest either way. One extra adder per element."""
    f_in = int(np.max(x.kif[2]))
    if f_in <= f:  # already on the grid: nothing to round
        return kit.quantize(x, k, i, f, overflow, "TRN")
    u, s = 2.0**-f_in, 2.0**-f
    bit = kit.quantize(x, 0, 1 - f, f, "WRAP", "TRN")  # the bit of weight s: value 0 or s
    return kit.quantize(x + bit * (u / s) + (s / 2 - u), k, i, f, overflow, "TRN")


def _quantize_variables(kit: TraceKit, x: Any, fmt: FixedFormat) -> Any:
    """``x`` (values that vary with the input) quantized to ``fmt`` by the tracer's own ops (a format's modes
    are valid; the tracer names all but round half to even, built by :func:`_quantize_rne`)."""
    k, i, f = fmt.kif
    overflow = _OVERFLOW[fmt.overflow]
    if fmt.round == "nearest_even":
        return _quantize_rne(kit, x, k, i, f, overflow)
    return kit.quantize(x, k, i, f, overflow, _ROUND[fmt.round])


def quantize_traced(x: Any, fmt: Format, kit: TraceKit | None = None) -> Any:
    """``x`` quantized to ``fmt``: its variables by the tracer's ops (:func:`_quantize_variables`), its
    constants by netcarve's one definition (:meth:`FixedFormat.quantize`; a constant is a value every input
    gives alike, e.g. the output of a neuron whose weights all round to zero, which costs no logic).

    da4ml 0.6 and alkaid 0.8 fold the unsigned WRAP of a constant modulo 2^(i+1) instead of 2^i: the one bit
    that :func:`_quantize_rne` extracts with it was the whole constant (0.1875 instead of 0.0625), and the
    export of a collapsed candidate was off by a rounding step. Constants therefore never reach the tracer's
    quantize."""
    kit = kit or alkaid_kit()
    if isinstance(fmt, ElementFormat):
        return _quantize_elements(x, fmt, kit)
    flat = x.ravel()
    elements = [flat[j] for j in range(len(flat))]
    constant = np.array([v.low == v.high for v in elements], dtype=bool)
    out = np.empty(len(elements), dtype=object)
    if not constant.all():
        variables = np.flatnonzero(~constant)
        traced = _quantize_variables(kit, flat[variables], fmt)
        for j, index in enumerate(variables):
            out[index] = traced[j]
    if constant.any():
        constants = np.flatnonzero(constant)
        values = fmt.quantize(np.array([float(elements[j].low) for j in constants], dtype=np.float64))
        for index, value in zip(constants, values, strict=True):
            out[index] = kit.variable.from_const(float(value), hwconf=x.hwconf)
    return kit.array(out.reshape(x.shape), x.solver_options, hwconf=x.hwconf)


def _quantize_elements(x: Any, fmt: ElementFormat, kit: TraceKit) -> Any:
    """``x`` quantized per element: each group of values with one format by :func:`quantize_traced` of that
    format, pruned values (width 0) the constant 0."""
    flat = x.ravel()
    if len(flat) != fmt.width.size:
        raise ExportError(f"per-element formats of {fmt.width.size} values applied to {len(flat)} values")
    out = np.empty(len(flat), dtype=object)
    widths, fracs = fmt.width.ravel(), fmt.frac.ravel()
    for width, frac in sorted({(int(w), int(f)) for w, f in zip(widths, fracs, strict=True)}):
        index = np.flatnonzero((widths == width) & (fracs == frac))
        if width == 0:
            for j in index:
                out[j] = kit.variable.from_const(0.0, hwconf=x.hwconf)
            continue
        scalar = FixedFormat(fmt.signed, width, frac, fmt.round, fmt.overflow)
        part = quantize_traced(kit.array(np.array([flat[j] for j in index], dtype=object), x.solver_options,
                                         hwconf=x.hwconf), scalar, kit)  # fmt: skip
        for j, value in zip(index, np.asarray(part).ravel(), strict=True):
            out[j] = value
    return kit.array(out.reshape(x.shape), x.solver_options, hwconf=x.hwconf)


def port_input(port: Format, shape: int | tuple[int, ...], kit: TraceKit | None = None) -> tuple[Any, Any]:
    """The firmware's input array of ``shape`` (what ``trace`` takes as inputs) and its values declared at the
    ``port`` format with TRN/WRAP: the identity on values already on the port's grid, which
    :meth:`Program.port_inputs` gives (the traced logic's input width is the port's). Per-element port
    formats declare each input with its own (k, i, f), broadcast over ``shape`` in C order; a pruned one
    has no bits (the constant 0)."""
    kit = kit or alkaid_kit()
    inp = kit.input_array(shape, {"search_all_decompose_dc": False})
    if isinstance(port, ElementFormat):
        dims = (shape,) if isinstance(shape, int) else shape
        k, i, f = (np.asarray(a).reshape(dims) for a in port.kif)
        return inp, kit.quantize(inp, k, i, f)
    return inp, kit.quantize(inp, *port.kif)


def dense_traced(x: Any, weight: np.ndarray, kit: TraceKit) -> Any:
    """``x @ weight.T`` traced, with the inputs that are constants (``low == high``: e.g. a ReLU that interval
    analysis proves always 0, after a layer whose weights all quantized to 0) and the inputs with no nonzero
    weight folded out first: their products are exact float64 constants added to the traced product of the
    rest. alkaid 0.8's constant-matrix solver fails (``StopIteration`` in ``FVArray``) on a product whose
    inputs hold no variable, and a layer whose every input is constant is a constant vector."""
    flat = np.asarray(x).ravel()
    constant = np.array([float(v.low) == float(v.high) for v in flat], dtype=bool)
    used = np.any(weight != 0, axis=0)
    live = ~constant & used
    folded = np.zeros(weight.shape[0], dtype=np.float64)
    if constant.any():
        values = np.array([float(v.low) if c else 0.0 for v, c in zip(flat, constant, strict=True)])
        folded = weight[:, constant] @ values[constant]
    if not live.any():
        out = np.array([kit.variable.from_const(float(v), hwconf=x.hwconf) for v in folded], dtype=object)
        return kit.array(out, x.solver_options, hwconf=x.hwconf)
    if live.all():
        return x @ weight.T
    part = kit.array(flat[live], x.solver_options, hwconf=x.hwconf) @ weight[:, live].T
    return part + folded if constant.any() else part


def trace_program(program: Program, kit: TraceKit | None = None) -> CombLogic:
    """``program`` as combinational logic (alkaid's unless ``kit`` says otherwise); its ``predict`` on
    :meth:`Program.port_inputs` equals :meth:`Program.reference` bit for bit."""
    kit = kit or alkaid_kit()
    inp, x = port_input(program.port, program.in_features, kit)
    for step in program.steps:
        if isinstance(step, Quantize):
            x = quantize_traced(x, step.fmt, kit)
        elif isinstance(step, Dense):
            x = dense_traced(x, step.weight, kit)
            if step.bias is not None:
                x = x + step.bias
        elif isinstance(step, MaxPool):
            x = np.max(x[step.groups], axis=-1)  # reduced with the tracer's max_of comparators
        elif isinstance(step, Relu):
            x = kit.relu(x)
        else:
            raise TypeError(f"unknown program step {step!r}")
    return kit.trace(inp, x)


def _flavor(options: ExportOptions) -> str:
    return options.flavor or DEFAULT_FLAVOR


def write(program: Program, directory: Path, options: ExportOptions) -> BackendResult:
    """Trace ``program``, save ``logic.json`` (ALIR) and write the ``--flavor`` project under its directory:
    ``verilog/`` or ``vhdl/`` (alkaid's RTLModel, pipelined at :data:`CLOCK_PERIOD_NS`), ``vitis/`` (its
    HLSModel)."""
    from alkaid.codegen import HLSModel, RTLModel

    flavor = _flavor(options)
    comb = trace_program(program)
    logic = directory / LOGIC_FILE
    comb.save(logic)
    project = directory / FLAVORS[flavor]
    figures: dict[str, Any] = {
        "cost": float(comb.cost),
        "latency_ns": [float(v) for v in comb.latency],
        "alkaid": package_version(),
        "flavor": flavor,
    }
    model: Any
    if flavor == "vitis":
        model = HLSModel(comb, project, TOP, flavor="vitis", clock_period=CLOCK_PERIOD_NS)
        model.write()
    else:
        model = RTLModel(comb, project, TOP, flavor=flavor, latency_cutoff=CLOCK_PERIOD_NS,
                         clock_period=CLOCK_PERIOD_NS)  # fmt: skip
        model.write()
        figures["pipeline_cycles"] = model.latency
    log.debug("alkaid: cost %.0f LUTs, latency %s ns", comb.cost, comb.latency)
    return BackendResult(
        predict=comb.predict,
        files={"logic": relative(logic, directory), flavor: relative(project, directory)},
        figures=figures,
        design=model,
        directory=directory,
    )


def check_flavor(options: ExportOptions) -> None:
    if options.flavor is not None and options.flavor not in FLAVORS:
        raise ExportError(f"--flavor {options.flavor!r} is not one of {', '.join(FLAVORS)}")


#: what `--to da4ml` prints and records: it runs alkaid now
DA4ML_ALIAS_NOTE = (
    "--to da4ml now runs alkaid, da4ml's maintained successor (same author): the files are alkaid's; "
    "write --to alkaid (the alias goes in the next release)"
)

_DESCRIPTION = "alkaid: distributed-arithmetic logic, bit-exact, written as Verilog, VHDL or Vitis HLS (--flavor)"
BACKENDS.add(
    "alkaid",
    Backend(
        "alkaid",
        package="alkaid",
        write=write,
        check_options=check_flavor,
        description=_DESCRIPTION,
        extra={"simulate": simulate},  # --simulate: build and run the generated design (export/simulate.py)
    ),
    description=_DESCRIPTION,
)
BACKENDS.add(
    "da4ml",
    Backend(
        "da4ml",
        package="alkaid",
        write=write,
        check_options=check_flavor,
        alias_of="alkaid",
        notes=(DA4ML_ALIAS_NOTE,),
        description="alias of alkaid (deprecated)",
        extra={"simulate": simulate},
    ),
    description="alias of alkaid, da4ml's successor (deprecated: write --to alkaid)",
)
