"""The fixed-point program of a quantized graph: what the firmware computes, step by step, and its exact
reference.

A quantized graph (``netcarve transform`` / a search's best trial) is read node by node, in graph order,
through each op kind's ``export`` mapping (:mod:`netcarve.ir.opspecs`). The program works on each sample
flattened in channel-major (C-order) order: a ``(C, H, W)`` tensor is the vector of its C·H·W values.

- ``dense`` (Linear): ``Quantize`` its ``data_in``; ``Dense`` with the fake-quantized weight and bias
  (values on their fixed-point grids); ``Quantize`` its ``data_out``;
- ``conv`` (Conv1d, Conv2d): the same, with the convolution unrolled into the constant matrix it is over
  the flattened input (:func:`unrolled`: the convolution of each one-hot input with the fake-quantized
  weight, in float64, which is exact) and its bias repeated at every output position;
- ``relu``: ``Quantize`` ``data_in``, ``Relu``, ``Quantize`` ``data_out``;
- ``max_pool`` (MaxPool1d/2d): ``MaxPool``, the max over each window's group of input indices;
- ``avg_pool`` (AvgPool1d/2d, AdaptiveAvgPool1d/2d): a ``Dense`` with the pool's constant matrix and no
  bias. Exact only when every divisor is a power of two (weights 1/2^k); another is a PassError;
- ``reshape`` (Flatten, Unflatten of the per-sample dims) and ``skip`` (Identity, Dropout): nothing;
- ``affine`` (BatchNorm): only *before* the first quantizer, where it is software preprocessing of the
  input (like the dataset's scaler) and runs in netcarve, not in the firmware.

**BatchNorm inside the network**: :func:`build_program` first runs the ``fold_batchnorm`` pass
(:mod:`netcarve.transforms.fold`), which folds every BatchNorm that follows a Linear or Conv into it
(``W' = W·s`` per output channel, ``b' = (b − mean)·s + β``, requantized by the layer's own weight and bias
quantizers; the BatchNorm's ``data_out`` quantizer becomes the layer's). The program is that of the
*folded* graph (:attr:`Program.graph`; the original is :attr:`Program.unfolded`), and the firmware equals
the folded model bit for bit; it differs from the unfolded quantized model by the requantization (the
export measures it). A BatchNorm inside the network that cannot be folded (after a ReLU, say) is a
one-line PassError naming it.

**The input port** is the first quantizer: the firmware takes values already on its grid, and
:meth:`Program.port_inputs` gives them exactly as netcarve's forward pass rounds and saturates them (any
preprocessing before that quantizer included). A quantizer applied between layers keeps its rounding and
overflow modes; the matrix products and bias additions in between are exact (as wide as they need to be).

**Per-element formats** (:mod:`netcarve.transforms.quantize.formats`): an operand whose elements have
formats of their own gets :class:`ElementFormat` instead of :class:`FixedFormat` (the same interface, with
``width``, ``frac`` and ``kif`` arrays): an activation's arrays are flat, one per value of the program's
vector (the input port: a format per feature); a weight's or bias's have the parameter's shape, and its
values are constants on their own grids. A pruned element (width 0) is exactly 0: a pruned weight is a zero
constant (no logic), a pruned port feature the constant 0 (the input drops out). Formats that are one format
after all (every element alike, none pruned) are a plain :class:`FixedFormat`, so they export as before.

:meth:`Program.reference` evaluates the program in float64 numpy, which is exact while every partial sum
fits 53 bits (any practical trigger network: widths up to about 20 bits); the export's check compares the
firmware with both it and netcarve's own fake-quantized forward pass run in float64.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from netcarve.config.passes import DEFAULT_OVERFLOW, DEFAULT_ROUND
from netcarve.errors import ConfigError, PassError
from netcarve.ir.fixedpoint import FixedGrid, check_modes, fixed_values, int_range, scalar_grid
from netcarve.ir.graph import Graph
from netcarve.ir.opspecs import spec_of_module
from netcarve.transforms.fold import FoldedBatchNorm, fold_batchnorms

log = logging.getLogger(__name__)


def _check_format_modes(round: str, overflow: str) -> None:
    """A format's modes are the quantizer's: a PassError for any other (the one mode check)."""
    try:
        check_modes(round, overflow, who="fixed-point format")
    except ConfigError as exc:
        raise PassError(str(exc)) from exc


@dataclass(frozen=True)
class FixedFormat:
    """A fixed-point number format: ``width`` bits, ``frac`` of them fractional, signed or not, with the
    rounding and overflow modes of the quantizer that produces it (value = k · 2^−frac, k an integer)."""

    signed: bool
    width: int
    frac: int
    round: str = DEFAULT_ROUND
    overflow: str = DEFAULT_OVERFLOW

    @property
    def int_bits(self) -> int:
        """ap_fixed's I: integer bits including the sign bit (``width − frac``)."""
        return self.width - self.frac

    @property
    def kif(self) -> tuple[int, int, int]:
        """alkaid's (k, i, f): sign bit, integer bits without the sign, fractional bits."""
        k = int(self.signed)
        return k, self.width - self.frac - k, self.frac

    def __post_init__(self) -> None:
        _check_format_modes(self.round, self.overflow)

    @property
    def int_range(self) -> tuple[int, int]:
        return int_range(self.width, self.signed)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """``x`` on this format's grid, rounded and overflowed by the one integer quantizer (float64, exact)."""
        values = torch.from_numpy(np.array(x, dtype=np.float64))
        grid = scalar_grid(self.width, self.frac, self.signed)
        with torch.no_grad():
            return fixed_values(values, grid, self.round, self.overflow).numpy()

    def describe(self) -> str:
        modes = (
            "" if (self.round, self.overflow) == (DEFAULT_ROUND, DEFAULT_OVERFLOW) else f",{self.round},{self.overflow}"
        )
        return f"{'' if self.signed else 'u'}fixed<{self.width},{self.int_bits}{modes}>"


@dataclass(frozen=True, eq=False)
class ElementFormat:
    """Fixed-point formats per element (int64 arrays ``width``, ``frac``; width 0: pruned, exactly 0), one
    sign and one pair of modes: :class:`FixedFormat`'s interface with arrays. Compared by identity."""

    signed: bool
    width: np.ndarray
    frac: np.ndarray
    round: str = DEFAULT_ROUND
    overflow: str = DEFAULT_OVERFLOW

    def __post_init__(self) -> None:
        _check_format_modes(self.round, self.overflow)

    @property
    def pruned(self) -> np.ndarray:
        return self.width == 0

    @property
    def int_bits(self) -> np.ndarray:
        return self.width - self.frac

    @property
    def kif(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """alkaid's (k, i, f) per element; a pruned element is (0, −f, f): no bits, the constant 0."""
        k = np.where(self.pruned, 0, int(self.signed))
        return k, self.width - self.frac - k, self.frac

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """``x`` (its last dims matching the arrays) on these grids by the one integer quantizer (float64)."""
        values = torch.from_numpy(np.array(x, dtype=np.float64))
        grid = FixedGrid.of(torch.from_numpy(self.width), torch.from_numpy(self.frac), self.signed, dtype=torch.float64)
        with torch.no_grad():
            return fixed_values(values, grid, self.round, self.overflow).numpy()

    def envelope(self) -> FixedFormat:
        """The narrowest single format holding every element's grid (the largest integer bits and frac over
        the elements not pruned; 1 bit when all are), truncate/wrap: it represents each element's values
        exactly, so a constant (or a port value) keeps its value in it."""
        alive = ~self.pruned
        if not alive.any():
            return FixedFormat(self.signed, 1, 0, "truncate", "wrap")
        frac = int(self.frac[alive].max())
        return FixedFormat(self.signed, int(self.int_bits[alive].max()) + frac, frac, "truncate", "wrap")

    def describe(self) -> str:
        """E.g. ``ufixed<per-element 16: widths 0..8, fracs 1..5, 25.0% pruned>`` (non-default modes last)."""
        pruned = float(self.pruned.mean()) if self.width.size else 0.0
        default = (self.round, self.overflow) == (DEFAULT_ROUND, DEFAULT_OVERFLOW)
        modes = "" if default else f", {self.round},{self.overflow}"
        shape = "×".join(str(d) for d in self.width.shape)
        return (
            f"{'' if self.signed else 'u'}fixed<per-element {shape}: widths {int(self.width.min())}.."
            f"{int(self.width.max())}, fracs {int(self.frac.min())}..{int(self.frac.max())}, "
            f"{pruned:.1%} pruned{modes}>"
        )


#: the format of one point of the program: one for all its values, or one per value
Format = FixedFormat | ElementFormat


def flat(fmt: Format) -> Format:
    """``fmt`` with per-element arrays flattened in C order (an activation's: one per value of the vector)."""
    if isinstance(fmt, ElementFormat):
        return ElementFormat(fmt.signed, fmt.width.ravel(), fmt.frac.ravel(), fmt.round, fmt.overflow)
    return fmt


def envelope(fmt: Format) -> FixedFormat:
    """``fmt`` itself, or the one format that holds every element of per-element formats."""
    return fmt.envelope() if isinstance(fmt, ElementFormat) else fmt


@dataclass(frozen=True)
class Quantize:
    node: str
    operand: str
    fmt: Format


@dataclass(frozen=True)
class Dense:
    """``y = x @ weight.T + bias`` with constant weight (out, in) and bias (out,) on their grids."""

    node: str
    weight: np.ndarray
    bias: np.ndarray | None
    weight_fmt: Format
    bias_fmt: Format | None


@dataclass(frozen=True)
class Relu:
    node: str


@dataclass(frozen=True)
class MaxPool:
    """``y[o] = max(x[groups[o, 0]], x[groups[o, 1]], …)`` over the ``in_features`` values of ``x``: one
    row of input indices per output (a window cut by padding repeats one of its indices)."""

    node: str
    groups: np.ndarray
    in_features: int


Step = Quantize | Dense | Relu | MaxPool


def out_width(step: Step, width: int) -> int:
    """The number of values after ``step`` applied to ``width`` values."""
    if isinstance(step, Dense):
        return int(step.weight.shape[0])
    if isinstance(step, MaxPool):
        return int(step.groups.shape[0])
    return width


@dataclass
class Program:
    """The firmware's computation: an input port of ``in_features`` values in ``port`` format, then
    ``steps``. ``preprocess`` names the nodes run in software before the port (e.g. an input BatchNorm).

    ``graph`` is the graph the program computes exactly: the exported graph, or, when BatchNorms were folded
    into their Linears or Convs (``folded``), the folded graph; ``unfolded`` is then the graph as given."""

    graph: Graph
    in_features: int
    out_features: int
    port: Format
    steps: list[Step]
    preprocess: list[str] = field(default_factory=list)
    #: node → operand → format, as written to export.json
    precisions: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the BatchNorms folded into their Linears or Convs before the program was built (graph order)
    folded: tuple[FoldedBatchNorm, ...] = ()
    #: the graph before folding (None when nothing was folded)
    unfolded: Graph | None = None

    def layers(self) -> Iterator[Dense]:
        return (s for s in self.steps if isinstance(s, Dense))

    def layer_programs(self) -> dict[str, Program]:
        """Each Dense as a program of its own, keyed by node: its input port is the last format its values
        were quantized to (the nearest preceding ``Quantize``, or this program's port), its steps whatever
        runs between that quantizer and the Dense (a ReLU or MaxPool without quantizers), the Dense and the
        Dense's own output quantizers."""
        out: dict[str, Program] = {}
        port, start = self.port, 0
        width = port_width = self.in_features
        for index, step in enumerate(self.steps):
            if isinstance(step, Quantize):
                port, start, port_width = step.fmt, index + 1, width
                continue
            width = out_width(step, width)
            if not isinstance(step, Dense):
                continue
            end = index + 1
            while end < len(self.steps) and isinstance(q := self.steps[end], Quantize) and q.node == step.node:
                end += 1
            out[step.node] = Program(
                self.graph,
                in_features=port_width,
                out_features=int(step.weight.shape[0]),
                port=port,
                steps=self.steps[start:end],
                precisions={step.node: dict(self.precisions.get(step.node, {}))},
            )
        return out

    def port_inputs(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """The values to feed the firmware's input port, one row per sample (flattened): ``x`` through
        netcarve's preprocessing (if any) and first input quantizer, exactly as netcarve's forward pass does
        (float64)."""
        xt = torch.as_tensor(x, dtype=torch.float64)
        if self.preprocess:
            module = _float64_eval(self.graph)
            xt = _run_prefix(module, self.preprocess, xt)
        return self.port.quantize(xt.detach().reshape(len(xt), -1).numpy())

    def reference(self, port_values: np.ndarray) -> np.ndarray:
        """The program evaluated exactly (float64) from port values."""
        x = np.asarray(port_values, dtype=np.float64)
        for step in self.steps:
            if isinstance(step, Quantize):
                x = step.fmt.quantize(x)
            elif isinstance(step, Dense):
                x = x @ step.weight.T + (step.bias if step.bias is not None else 0.0)
            elif isinstance(step, MaxPool):
                x = x[..., step.groups].max(axis=-1)
            elif isinstance(step, Relu):
                x = np.maximum(x, 0.0)
            else:
                raise TypeError(f"unknown program step {step!r}")
        return x


def netcarve_forward(graph: Graph, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """netcarve's own fake-quantized forward pass of ``x``, in float64 (eval mode, a copy of the model), one
    row per sample (flattened in channel-major order, as the program's values)."""
    module = _float64_eval(graph)
    with torch.no_grad():
        out = module(torch.as_tensor(x, dtype=torch.float64))
    return out.detach().reshape(len(out), -1).numpy()


def _float64_eval(graph: Graph) -> fx.GraphModule:
    module = copy.deepcopy(graph.module).double()
    module.eval()
    return module


def _run_prefix(module: fx.GraphModule, names: list[str], x: torch.Tensor) -> torch.Tensor:
    """Run the leading call_module nodes ``names`` (a chain from the input) on ``x``."""
    with torch.no_grad():
        for name in names:
            node = next(n for n in module.graph.nodes if n.name == name)
            x = module.get_submodule(str(node.target))(x)
    return x


def fixed_format(spec: Any, where: str, shape: tuple[int, ...] | None = None) -> Format:
    """The fixed-point format of a quantizer spec; PassError when it is not a fixed-point quantizer.
    Per-element formats are broadcast to ``shape`` (a parameter's, or one sample's: then flattened) and give
    an :class:`ElementFormat`, unless every element has the same format and none is pruned."""
    name = getattr(getattr(spec, "quantizer", None), "name", None)
    if name != "integer" or spec.frac_width is None:
        raise PassError(f"{where} is quantized with {spec.describe()}, which has no fixed-point mapping")
    formats = getattr(spec, "formats", None)
    if formats is not None:
        if shape is None:
            raise PassError(f"{where} has per-element formats, which this export does not map")
        width, frac = (t.numpy().copy() for t in formats.broadcast(shape))
        uniform = width.size and (width == width.flat[0]).all() and (frac == frac.flat[0]).all()
        if not (uniform and width.flat[0] > 0):
            modes = (str(spec.round), str(spec.overflow))
            return ElementFormat(bool(spec.signed), width.astype(np.int64), frac.astype(np.int64), *modes)
        return FixedFormat(
            bool(spec.signed), int(width.flat[0]), int(frac.flat[0]), str(spec.round), str(spec.overflow)
        )
    return FixedFormat(
        bool(spec.signed),
        int(spec.width),
        int(spec.frac_width),
        str(getattr(spec, "round", DEFAULT_ROUND)),
        str(getattr(spec, "overflow", DEFAULT_OVERFLOW)),
    )


def quantized_constant(spec: Any, value: torch.Tensor, where: str) -> tuple[Format, np.ndarray]:
    """A weight or bias on its grid (its quantizer applied in float64, which is exact) and its format
    (per-element formats with the parameter's shape); PassError (naming ``where``) when the quantizer is not
    fixed-point. An automatic frac is resolved on ``value`` (``QuantSpec.resolve``): the frac the forward pass
    takes for the same weights, in any dtype."""
    resolve = getattr(spec, "resolve", None)
    if resolve is not None:
        spec = resolve(value)
    fmt = fixed_format(spec, where, tuple(value.shape))
    with torch.no_grad():
        return fmt, spec(value.detach().double()).numpy()


def unrolled(
    fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The matrix ``(out, in)`` of the linear map ``fn`` on one sample of shape ``in_shape``, both flattened in
    C order (channel-major), and the shape of its output: column ``j`` is ``fn`` of the ``j``-th one-hot input,
    in float64 (exact for a convolution or a pool: each output is one weight, or a sum of zeros and one
    weight). A max pool gives its 0/1 window-membership matrix (padding is −∞, never the max)."""
    n = math.prod(in_shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    with torch.no_grad():
        out = fn(basis)
    return out.reshape(n, -1).T.numpy().copy(), tuple(int(s) for s in out.shape[1:])


def float_layers(graph: Graph) -> list[str]:
    """The Linear/Conv nodes whose input, weight or bias is not fixed-point quantized."""
    out = []
    for node in graph.compute_nodes():
        if node.op != "call_module":
            continue
        module = graph.submodule(node)
        spec = spec_of_module(module)
        if spec is None or spec.export not in ("dense", "conv"):
            continue
        quant: Mapping[str, Any] = getattr(module, "quant", {})
        has_bias = getattr(module, "bias", None) is not None
        needed = ("data_in", "weight", *(("bias",) if has_bias else ()))
        if any(getattr(getattr(quant.get(op), "quantizer", None), "name", None) != "integer" for op in needed):
            out.append(node.name)
    return out


class _Builder:
    def __init__(
        self, graph: Graph, float_precision: FixedFormat | None = None, kept: Mapping[str, str] | None = None
    ) -> None:
        self.graph = graph
        #: BatchNorm node → why the fold pass left it in place
        self.kept = dict(kept or {})
        #: the format of float operands (hls4ml's default precision), or None: float operands are errors
        self.float_precision = float_precision
        self.steps: list[Step] = []
        self.preprocess: list[str] = []
        #: reshapes and identities before the port not yet in ``preprocess`` (they join it before a BatchNorm)
        self.pending: list[str] = []
        self.port: Format | None = None
        #: the number of values at the port (one sample flattened)
        self.in_features = 0
        self.precisions: dict[str, dict[str, str]] = {}

    def quantize(self, node: fx.Node, quant: Mapping[str, Any], operand: str, *, dense: bool = False) -> None:
        spec = quant.get(operand)
        if spec is None:
            # a float input (of a layer, or the port) takes the float precision; other float operands stay exact
            if self.float_precision is None or operand != "data_in" or not (dense or self.port is None):
                return
            fmt: Format = self.float_precision
        else:
            fmt = flat(fixed_format(spec, f"node {node.name!r}, {operand}", self.sample_shape(node, operand)))
        self.precisions.setdefault(node.name, {})[operand] = fmt.describe()
        if self.port is None:
            self.port = fmt  # the input port: values arrive on this grid (see Program.port_inputs)
            self.in_features = math.prod(self.in_shape(node))
        else:
            self.steps.append(Quantize(node.name, operand, fmt))

    def sample_shape(self, node: fx.Node, operand: str) -> tuple[int, ...]:
        """One sample's shape of ``operand`` (data_in or data_out): what its formats broadcast to."""
        meta = self.graph.meta(node)
        tensor = meta.inputs[0] if operand == "data_in" and meta.inputs else meta.output
        if tensor is None:
            raise PassError(f"node {node.name!r}: the shape of its {operand} is unknown; it cannot be exported")
        return tuple(tensor.shape[1:])

    def in_shape(self, node: fx.Node) -> tuple[int, ...]:
        """One sample's input shape of ``node`` (its input without the batch dimension)."""
        inputs = self.graph.meta(node).inputs
        if not inputs:
            raise PassError(f"node {node.name!r}: its input shape is unknown; it cannot be exported")
        return tuple(inputs[0].shape[1:])

    def require_port(self, node: fx.Node) -> None:
        if self.port is None:
            raise PassError(f"node {node.name!r}: its input is float; quantize its data_in to export it")

    def dense(self, node: fx.Node, module: torch.nn.Module, quant: Mapping[str, Any], *, conv: bool) -> None:
        self.quantize(node, quant, "data_in", dense=True)
        self.require_port(node)
        with torch.no_grad():
            weight_fmt, weight = self.constant(node, quant, "weight", torch.as_tensor(module.weight))
            bias_param = getattr(module, "bias", None)
            bias_fmt = bias = None
            if bias_param is not None:
                bias_fmt, bias = self.constant(node, quant, "bias", bias_param)
        self.precisions.setdefault(node.name, {})["weight"] = weight_fmt.describe()
        if bias_fmt is not None:
            self.precisions[node.name]["bias"] = bias_fmt.describe()
        if conv:  # the convolution over the flattened input: a constant matrix, its bias at every position
            assert isinstance(module, torch.nn.Conv1d | torch.nn.Conv2d), type(module)
            conv_forward, kernel = module._conv_forward, torch.from_numpy(weight)
            weight, out_shape = unrolled(lambda x: conv_forward(x, kernel, None), self.in_shape(node))
            if bias is not None:
                bias = np.repeat(bias, math.prod(out_shape[1:]))
        self.steps.append(Dense(node.name, weight, bias, weight_fmt, bias_fmt))
        self.quantize(node, quant, "data_out")

    def constant(
        self, node: fx.Node, quant: Mapping[str, Any], operand: str, value: torch.Tensor
    ) -> tuple[Format, np.ndarray]:
        """A weight or bias on its grid and its format (the float precision when it is float and one is set)."""
        spec = quant.get(operand)
        if spec is None:
            if self.float_precision is None:
                raise PassError(f"node {node.name!r}: its {operand} is float; quantize its {operand} to export it")
            return self.float_precision, self.float_precision.quantize(value.detach().double().numpy())
        return quantized_constant(spec, value, f"node {node.name!r}, {operand}")

    def max_pool(self, node: fx.Node, module: torch.nn.Module, kind: str) -> None:
        self.require_port(node)
        if getattr(module, "return_indices", False):
            raise PassError(f"node {node.name!r} ({kind}) returns indices; only its values can be exported")
        in_shape = self.in_shape(node)
        member, _ = unrolled(module, in_shape)
        rows = [np.flatnonzero(row) for row in member]
        width = max(len(r) for r in rows)
        # a window cut by padding repeats its first index (max(a, a) = a): every group has the same size
        groups = np.array([np.concatenate([r, np.full(width - len(r), r[0])]) for r in rows], dtype=np.int64)
        self.steps.append(MaxPool(node.name, groups, math.prod(in_shape)))

    def avg_pool(self, node: fx.Node, module: torch.nn.Module, kind: str) -> None:
        self.require_port(node)
        weight, _ = unrolled(module, self.in_shape(node))
        weights = np.unique(weight[weight != 0])
        mantissa, exponent = np.frexp(weights)
        if (mantissa != 0.5).any():
            divisor = 1 / weights[mantissa != 0.5][0]
            raise PassError(
                f"node {node.name!r} ({kind}) divides by {divisor:.4g}, not a power of two: its average has no "
                "exact fixed-point mapping (use a pool whose windows hold 2^k values)"
            )
        frac = max(0, int(1 - exponent.min()))  # weights 2^(exponent − 1)
        self.steps.append(Dense(node.name, weight, None, FixedFormat(False, frac + 1, frac), None))

    def reshape(self, node: fx.Node, module: torch.nn.Module, kind: str) -> None:
        """Flatten/Unflatten of the per-sample dims: the identity on the flattened vector."""
        ndim = len(self.in_shape(node)) + 1
        dim = int(getattr(module, "start_dim", getattr(module, "dim", 1)))
        if dim % ndim == 0:
            raise PassError(f"node {node.name!r} ({kind}) reshapes the batch dimension; it cannot be exported")
        if self.port is None:
            self.pending.append(node.name)

    def visit(self, node: fx.Node) -> None:
        meta = self.graph.meta(node)
        module = self.graph.submodule(node) if node.op == "call_module" else None
        spec = spec_of_module(module) if module is not None else None
        mapping = spec.export if spec is not None else None
        if module is None or mapping is None:
            raise PassError(f"node {node.name!r} ({meta.kind}) has no fixed-point mapping; it cannot be exported")
        quant: Mapping[str, Any] = getattr(module, "quant", {})
        if mapping == "reshape":
            self.reshape(node, module, meta.kind)
        elif mapping == "skip":
            if self.port is None:
                self.pending.append(node.name)
        elif mapping == "affine":
            if self.port is not None or self.steps:
                why = self.kept.get(node.name, "it does not follow a Linear or Conv")
                raise PassError(
                    f"node {node.name!r} ({meta.kind}) is inside the network and cannot be folded into a Linear "
                    f"or Conv ({why}); BatchNorm exports only folded or before the first quantizer (input "
                    "preprocessing)"
                )
            self.preprocess += [*self.pending, node.name]
            self.pending.clear()
        elif mapping in ("dense", "conv"):
            self.dense(node, module, quant, conv=mapping == "conv")
        elif mapping == "max_pool":
            self.max_pool(node, module, meta.kind)
        elif mapping == "avg_pool":
            self.avg_pool(node, module, meta.kind)
        elif mapping == "relu":
            self.quantize(node, quant, "data_in")
            self.require_port(node)
            self.steps.append(Relu(node.name))
            self.quantize(node, quant, "data_out")
        else:
            raise PassError(f"node {node.name!r} ({meta.kind}): unknown fixed-point mapping {mapping!r}")


def build_program(graph: Graph, float_precision: FixedFormat | None = None) -> Program:
    """The fixed-point program of ``graph`` (a chain of nodes from one input to one output).

    BatchNorms that follow a Linear or Conv are folded into it first (``fold_batchnorm``; the program is then
    the folded graph's, see :attr:`Program.unfolded`). PassError (one line, naming the node) for a node
    without a fixed-point mapping, a float layer, a branch, an average pool whose divisor is not a power of
    two, or a BatchNorm inside the network that cannot be folded. With ``float_precision`` (hls4ml's default
    precision), float layers are allowed: their unquantized input, weight and bias take that format (their
    outputs stay exact, up to the next layer's input), and the program then differs from netcarve's float
    forward by that rounding. A graph with ``learned`` quantizers is frozen first (``freeze_learned``: the
    integer quantizer at the learned per-element formats, the same forward in eval mode).
    """
    from netcarve.transforms.quantize.learned import freeze_learned, has_learned

    if has_learned(graph.module):
        log.debug("export: the learned quantizers are frozen into per-element integer formats (freeze_learned)")
        graph = freeze_learned(graph).graph
    unfolded: Graph | None = None
    fold = fold_batchnorms(graph)
    if fold.info.folded:
        unfolded, graph = graph, fold.graph
    floats = float_layers(graph)
    if floats and float_precision is None:
        raise PassError(
            f"layer(s) {', '.join(floats)} are not fixed-point quantized (input, weight and bias): "
            "quantize them with the integer quantizer to export them bit-exactly"
        )
    builder = _Builder(graph, float_precision, {k.node: k.reason for k in fold.info.kept})
    previous: fx.Node | None = None
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            previous = node if node.op == "placeholder" else previous
            continue
        if previous is None or node.all_input_nodes != [previous]:
            raise PassError(f"node {node.name!r} does not follow a single chain of layers; only chains export")
        builder.visit(node)
        previous = node
    if builder.port is None or not any(isinstance(s, Dense) for s in builder.steps):
        raise PassError("the graph has no fixed-point quantized layer to export")
    width = builder.in_features
    for step in builder.steps:
        width = out_width(step, width)
    return Program(
        graph,
        in_features=builder.in_features,
        out_features=width,
        port=builder.port,
        steps=builder.steps,
        preprocess=builder.preprocess,
        precisions=builder.precisions,
        folded=fold.info.folded,
        unfolded=unfolded,
    )
