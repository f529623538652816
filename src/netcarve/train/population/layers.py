"""The batched layers: how each op kind's modules are stacked along a leading candidate dimension.

An op kind takes part in population training through its registry entry: ``OpSpec.batched`` names a
:class:`BatchedKind` (its stacked parameters and running statistics, its template key and its batched
forward). The built-in ones are below; a kind registered elsewhere may name one of its own module. A node
whose kind has none makes its member train alone.

Compute is features-major: activations ``[K, F, B]`` (B rows of the batch), weights ``[K, out, in]``. Linear
is ``torch.baddbmm(b, w, x)`` (measured against ``torch.func.vmap`` + a functional forward: slower), ReLU runs
in place when its input is a tensor nobody saved for backward, BatchNorm runs torch's own ``F.batch_norm``
on the ``[1, K·F, B]`` view with per-member running statistics stored as ``[K, F]``: the batch statistics,
the running-mean/unbiased-running-var updates and ``num_batches_tracked`` are exactly torch's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netcarve.ir.opspecs import OpSpec, resolve
from netcarve.train.population.quant import _BLearned, _BQuant, stack_padded
from netcarve.train.resources import learned_state

#: the operands a quantizer applies to around the layer (the others are its parameters)
DATA_OPERANDS = ("data_in", "data_out")


class Unsupported(Exception):
    """Why a member cannot be batched (the INFO log of its fallback)."""


#: a stacked layer's forward: (layer, x ``[K, F, B]``, training, whether x may be changed in place) →
#: (output, whether the output may be changed in place: made here and not saved for backward)
Forward = Callable[["Layer", torch.Tensor, bool, bool], tuple[torch.Tensor, bool]]


def _no_key(module: nn.Module, node: str) -> tuple[Any, ...]:
    return ()


@dataclass(frozen=True)
class BatchedKind:
    """How population training stacks the modules of one op kind (named by its ``OpSpec.batched``)."""

    name: str
    forward: Forward
    #: the stacked parameters: (input width, output width) → parameter name → its padded shape per member
    params: Callable[[int, int], dict[str, tuple[int, ...]]] = lambda w_in, w_out: {}
    #: (module, node name) → what members must share beyond the kind and quantizers to be stacked (the
    #: layer's ``attrs``); raises :class:`Unsupported` for a module the forward cannot express
    key: Callable[[nn.Module, str], tuple[Any, ...]] = _no_key
    #: running statistics (buffer name, padding fill), shaped like the output; the kind then counts
    #: ``num_batches_tracked`` (its forward increments ``Layer.forwards`` in training)
    buffers: tuple[tuple[str, float], ...] = ()
    #: the layer's EBOPs per member from the bits of its weight ``[K, out, in]`` and input ``[K, in, 1]`` (as
    #: ``netcarve.transforms.quantize.learned.ebops`` counts the solo layer); None: the kind has no MACs
    ebops: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None


def batched_kind(spec: OpSpec) -> BatchedKind | None:
    """The :class:`BatchedKind` that ``spec.batched`` names; None when the kind has none."""
    if spec.batched is None:
        return None
    found = _RESOLVED.get(spec.batched)
    if found is None:
        found = resolve(spec.batched)
        if not isinstance(found, BatchedKind):
            raise TypeError(f"op kind {spec.kind!r}: batched = {spec.batched!r} is not a BatchedKind")
        _RESOLVED[spec.batched] = found
    return found


_RESOLVED: dict[str, BatchedKind] = {}


@dataclass
class Layer:
    """One node of the stacked model: its kind, stacked parameters with their padding masks, quantizers,
    running statistics and template attributes."""

    kind: BatchedKind
    attrs: tuple[Any, ...] = ()
    quant: dict[str, _BQuant | _BLearned] = field(default_factory=dict)
    params: dict[str, nn.Parameter] = field(default_factory=dict)
    masks: dict[str, torch.Tensor | None] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    forwards: int = 0  # training forwards so far (num_batches_tracked increments)
    training: bool = False  # the forward in progress trains (a learned activation calibrates its range)

    def q(self, operand: str, x: torch.Tensor) -> torch.Tensor:
        quant = self.quant.get(operand)
        return x if quant is None else quant(x, self.training)

    def learned(self) -> list[nn.Parameter]:
        """The stacked fracs of the learned operands (trained with the parameters)."""
        return [q.frac for q in self.quant.values() if isinstance(q, _BLearned)]

    def macs_ebops(self, fresh: bool) -> torch.Tensor | None:
        """Each member's EBOPs of this layer ``[K]`` (differentiable through learned fracs; ``fresh``: the bits
        of the training forward just run), None when the kind has no MACs or data_in or the weight is not
        quantized. Padded weights count 0 bits (masked: a group per channel or layer spans padded elements too)."""
        weight, data_in = self.quant.get("weight"), self.quant.get("data_in")
        if self.kind.ebops is None or weight is None or data_in is None:
            return None
        w = self.params["weight"]
        k, _, w_in = w.shape
        w_bits = weight.bits(tuple(w.shape), fresh, w)
        mask = self.masks.get("weight")
        w_bits = w_bits if mask is None else w_bits * mask
        return self.kind.ebops(w_bits, data_in.bits((k, w_in, 1), fresh))

    def forward(self, x: torch.Tensor, training: bool, owned: bool) -> tuple[torch.Tensor, bool]:
        """``x`` ``[K, F, B]`` → (output, whether the output may be changed in place: made here and not saved
        for backward, so the next ReLU runs in place and writes no new tensor)."""
        self.training = training
        if "data_in" in self.quant:
            x, owned = self.q("data_in", x), True
        y, owned = self.kind.forward(self, x, training, owned)
        if "data_out" in self.quant:
            return self.q("data_out", y), True
        return y, owned

    def select(self, idx: torch.Tensor) -> None:
        """Keep the members ``idx`` (in place)."""
        self.quant = {op: q.select(idx) for op, q in self.quant.items()}
        self.params = {n: nn.Parameter(p.detach().index_select(0, idx)) for n, p in self.params.items()}
        self.masks = {n: None if m is None else m.index_select(0, idx) for n, m in self.masks.items()}
        self.buffers = {n: b.index_select(0, idx) for n, b in self.buffers.items()}


# --- the built-in kinds ---------------------------------------------------------------------------------------
def _identity(layer: Layer, x: torch.Tensor, training: bool, owned: bool) -> tuple[torch.Tensor, bool]:
    return x, owned


def _relu(layer: Layer, x: torch.Tensor, training: bool, owned: bool) -> tuple[torch.Tensor, bool]:
    return (x.relu_() if owned else torch.relu(x)), False  # ReLU's backward keeps its output


def _linear(layer: Layer, x: torch.Tensor, training: bool, owned: bool) -> tuple[torch.Tensor, bool]:
    w = layer.q("weight", layer.params["weight"])
    bias = layer.params.get("bias")
    return (torch.bmm(w, x) if bias is None else torch.baddbmm(layer.q("bias", bias).unsqueeze(2), w, x)), True


def _linear_key(module: nn.Module, node: str) -> tuple[Any, ...]:
    return (getattr(module, "bias", None) is not None,)


def _batch_norm(layer: Layer, x: torch.Tensor, training: bool, owned: bool) -> tuple[torch.Tensor, bool]:
    k, f, b = x.shape
    momentum, eps = layer.attrs
    gamma = layer.q("weight", layer.params["weight"]).reshape(k * f)
    beta = layer.q("bias", layer.params["bias"]).reshape(k * f)
    if training:
        layer.forwards += 1
    y = F.batch_norm(
        x.reshape(1, k * f, b),  # statistics per (member, feature) over the batch
        layer.buffers["running_mean"].view(k * f),
        layer.buffers["running_var"].view(k * f),
        gamma,
        beta,
        training,
        momentum,
        eps,
    ).view(k, f, b)
    return y, False  # a view: a ReLU changing it in place would make autograd copy it back (CopySlices)


def _batch_norm_key(module: nn.Module, node: str) -> tuple[Any, ...]:
    bn = module
    assert isinstance(bn, nn.modules.batchnorm._BatchNorm)
    if not (bn.affine and bn.track_running_stats) or bn.momentum is None:
        raise Unsupported(f"BatchNorm {node} without affine/running statistics/float momentum")
    return (float(bn.momentum), float(bn.eps))


IDENTITY = BatchedKind("identity", _identity)
RELU = BatchedKind("relu", _relu)


def _linear_ebops(w_bits: torch.Tensor, x_bits: torch.Tensor) -> torch.Tensor:
    return torch.bmm(w_bits, x_bits).sum((1, 2))  # Σ_{o,i} bits(w_oi) · bits(x_i), per member


LINEAR = BatchedKind(
    "linear",
    _linear,
    params=lambda w_in, w_out: {"weight": (w_out, w_in), "bias": (w_out,)},
    key=_linear_key,
    ebops=_linear_ebops,
)
BATCH_NORM = BatchedKind(
    "batch_norm",
    _batch_norm,
    params=lambda w_in, w_out: {"weight": (w_out,), "bias": (w_out,)},
    key=_batch_norm_key,
    buffers=(("running_mean", 0.0), ("running_var", 1.0)),
)


# --- stacking -------------------------------------------------------------------------------------------------
def _mask(tensors: Sequence[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor | None:
    if all(tuple(t.shape) == shape for t in tensors):
        return None
    return stack_padded([torch.ones_like(t) for t in tensors], shape)


def build_layer(
    mods: Sequence[nn.Module], kind: BatchedKind, attrs: tuple[Any, ...], in_w: int, out_w: int, device: torch.device
) -> Layer:
    """The members' modules ``mods`` of one node stacked, padded to widths ``in_w`` → ``out_w``."""
    layer = Layer(kind, attrs)
    shapes = kind.params(in_w, out_w)
    first = mods[0]
    quant = getattr(first, "quant", {})
    for operand in quant:
        if operand == "bias" and getattr(first, "bias", None) is None:
            continue
        specs: list[Any] = [m.quant[operand] for m in mods]  # type: ignore[index]
        states = [learned_state(m, operand) for m in mods]
        if all(s is not None for s in states):
            layer.quant[operand] = _BLearned.of(specs, states)  # type: ignore[arg-type]
            continue
        dims = 3 if operand in DATA_OPERANDS else 1 + len(shapes[operand])
        layer.quant[operand] = _BQuant.of(specs, dims, device)
    for name, shape in shapes.items():
        tensors = [getattr(m, name) for m in mods]
        if tensors[0] is None:
            continue
        layer.params[name] = nn.Parameter(stack_padded(tensors, shape))
        layer.masks[name] = _mask(tensors, shape)
    for name, fill in kind.buffers:
        layer.buffers[name] = stack_padded([getattr(m, name) for m in mods], (out_w,), fill=fill)
    return layer
