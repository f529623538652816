"""The da4ml backend: a :class:`~netcarve.export.program.Program` traced into da4ml's combinational logic
(``CombLogic``), saved as ``logic.json`` and written as pipelined Verilog.

da4ml turns every constant matrix-vector product (Linear, a convolution unrolled over its flattened input,
an average pool) into an adder graph (distributed arithmetic), every max pool into comparators over its
windows, and keeps every intermediate value exact; the only rounding happens at the program's ``Quantize``
steps, each mapped to da4ml's modes (the table ``netcarve.ir.fixedpoint.ROUND_NAMES``/``OVERFLOW_NAMES``):
``truncate`` → TRN, ``nearest_up`` → RND (half up), ``nearest_even`` → TRN after one extra adder (da4ml has
no round-half-even; see :func:`_quantize_rne`); ``saturate`` → SAT, ``wrap`` → WRAP. Values that are
constants (the same for every input, e.g. a neuron whose weights all round to zero) are quantized by
netcarve's own definition instead (:func:`_quantize`).

The input port is declared at the port format with TRN/WRAP, which is the identity on values already on its
grid: the firmware's inputs are quantized by netcarve's first input quantizer
(:meth:`Program.port_inputs`). da4ml is imported only when a program is traced.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netcarve.export.backends import BACKENDS, Backend, BackendResult, ExportOptions, relative
from netcarve.export.program import Dense, FixedFormat, MaxPool, Program, Quantize, Relu
from netcarve.ir.fixedpoint import backend_modes

if TYPE_CHECKING:
    from da4ml.types import CombLogic

log = logging.getLogger(__name__)

#: da4ml's rounding mode for each netcarve rounding mode it has natively (nearest_even is emulated), and
#: overflow mode for each overflow mode
_ROUND, _OVERFLOW = backend_modes("da4ml")
#: the pipeline's latency cutoff for the Verilog (in adder delays per register stage)
LATENCY_CUTOFF = 5
#: the file names the backend writes, relative to the output directory
LOGIC_FILE = "logic.json"
VERILOG_DIR = "verilog"


def _quantize_rne(x: Any, k: int, i: int, f: int, overflow: str) -> Any:
    """Round half to even at ``f`` fractional bits: ``trn(x + s/2 − u + u·bit)`` with ``s = 2^−f`` the
    target step, ``u`` the finest step of ``x`` and ``bit`` its bit of weight ``s``: an odd floor gets
    ``+s/2`` (a tie rounds up to even), an even one ``+s/2 − u`` (a tie stays); other values round to
    nearest either way. One extra adder per element."""
    from da4ml.trace.ops import quantize

    f_in = int(np.max(x.kif[2]))
    if f_in <= f:  # already on the grid: nothing to round
        return quantize(x, k, i, f, overflow, "TRN")
    u, s = 2.0**-f_in, 2.0**-f
    bit = quantize(x, 0, 1 - f, f, "WRAP", "TRN")  # the bit of weight s: value 0 or s
    return quantize(x + bit * (u / s) + (s / 2 - u), k, i, f, overflow, "TRN")


def _quantize_variables(x: Any, fmt: FixedFormat) -> Any:
    """``x`` (values that vary with the input) quantized to ``fmt`` by da4ml's own ops (a format's modes are
    valid; da4ml names all but round half to even, built by :func:`_quantize_rne`)."""
    from da4ml.trace.ops import quantize

    k, i, f = fmt.kif
    overflow = _OVERFLOW[fmt.overflow]
    if fmt.round == "nearest_even":
        return _quantize_rne(x, k, i, f, overflow)
    return quantize(x, k, i, f, overflow, _ROUND[fmt.round])


def _quantize(x: Any, fmt: FixedFormat) -> Any:
    """``x`` quantized to ``fmt``: its variables by da4ml's ops (:func:`_quantize_variables`), its constants
    by netcarve's one definition (:meth:`FixedFormat.quantize`; a constant is a value every input gives alike,
    e.g. the output of a neuron whose weights all round to zero, which costs no logic).

    da4ml 0.6 folds the unsigned WRAP of a constant modulo 2^(i+1) instead of 2^i: the one bit that
    :func:`_quantize_rne` extracts with it was the whole constant (0.1875 instead of 0.0625), and the export
    of a collapsed candidate was off by a rounding step. Constants therefore never reach da4ml's quantize."""
    from da4ml.trace import FixedVariable, FixedVariableArray

    flat = x.ravel()
    elements = [flat[j] for j in range(len(flat))]
    constant = np.array([v.low == v.high for v in elements], dtype=bool)
    out = np.empty(len(elements), dtype=object)
    if not constant.all():
        variables = np.flatnonzero(~constant)
        traced = _quantize_variables(flat[variables], fmt)
        for j, index in enumerate(variables):
            out[index] = traced[j]
    if constant.any():
        constants = np.flatnonzero(constant)
        values = fmt.quantize(np.array([float(elements[j].low) for j in constants], dtype=np.float64))
        for index, value in zip(constants, values, strict=True):
            out[index] = FixedVariable.from_const(float(value), hwconf=x.hwconf)
    return FixedVariableArray(out.reshape(x.shape), x.solver_options, hwconf=x.hwconf)


def trace_program(program: Program) -> CombLogic:
    """``program`` as da4ml combinational logic; its ``predict`` on :meth:`Program.port_inputs` equals
    :meth:`Program.reference` bit for bit."""
    from da4ml.trace import FixedVariableArrayInput, comb_trace
    from da4ml.trace.ops import quantize, relu

    inp = FixedVariableArrayInput(program.in_features, solver_options={"search_all_decompose_dc": False})
    x = quantize(inp, *program.port.kif)  # TRN/WRAP at the port format: the identity on port values
    for step in program.steps:
        if isinstance(step, Quantize):
            x = _quantize(x, step.fmt)
        elif isinstance(step, Dense):
            x = x @ step.weight.T
            if step.bias is not None:
                x = x + step.bias
        elif isinstance(step, MaxPool):
            x = np.max(x[step.groups], axis=-1)  # da4ml reduces each group with its max_of comparators
        elif isinstance(step, Relu):
            x = relu(x)
        else:
            raise TypeError(f"unknown program step {step!r}")
    return comb_trace(inp, x)


def write(program: Program, directory: Path, options: ExportOptions) -> BackendResult:
    """Trace ``program``, save ``logic.json`` and write the pipelined Verilog under ``verilog/``."""
    from da4ml.codegen import VerilogModel

    comb = trace_program(program)
    logic = directory / LOGIC_FILE
    comb.save(logic)
    verilog = directory / VERILOG_DIR
    VerilogModel(comb, "netcarve_model", verilog, latency_cutoff=LATENCY_CUTOFF).write()
    log.debug("da4ml: cost %.0f LUTs, latency %s adder delays", comb.cost, comb.latency)
    return BackendResult(
        predict=comb.predict,
        files={"logic": relative(logic, directory), "verilog": relative(verilog, directory)},
        figures={"cost": float(comb.cost), "latency": [float(v) for v in comb.latency]},
    )


BACKENDS.add(
    "da4ml",
    Backend(
        "da4ml",
        package="da4ml",
        write=write,
        description="da4ml: distributed-arithmetic combinational logic, bit-exact, written as Verilog",
    ),
    description="da4ml: distributed-arithmetic combinational logic, bit-exact, written as Verilog",
)
