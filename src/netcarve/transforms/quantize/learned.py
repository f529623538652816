"""The learned quantizer (``learned``, issue 22; HGQ's high-granularity quantization): a trainable fractional
bit width per element, per output channel or per layer, an integer quantizer in every forward pass.

**State.** The specs stay plain attributes (``QuantizedModule.quant``); the trainable part of a learned operand
is a :class:`LearnedOperand` in the quantized module's ``learned`` submodule (an ``nn.ModuleDict`` keyed by
operand), so the optimizer sees its ``frac`` parameter and a checkpoint's state dict carries it (and an
activation's calibrated range, the buffers ``lo``/``hi``): replaying the quantize pass rebuilds the same keys,
and the state dict loads into them bit for bit.

**Forward** (:meth:`LearnedOperand.forward`). f = round(frac) (an integer; the frac is a float parameter),
clamped to ±64 as an automatic frac is (so 2^f stays a normal float32 however far a frac drifts).
The integer part comes from the range of the values, per granularity group: weights and biases their current
min and max, activations a range calibrated over training batches (running min/max, updated in training mode
before quantizing, frozen in eval mode). With k_hi = round(max · 2^f) and k_lo = round(min · 2^f) (the operand's
round mode), the width is the fewest bits that hold both: signed 1 + max(bits(k_hi), bits(−k_lo − 1)), unsigned
bits(k_hi), where bits(n) = ⌈log2(n + 1)⌉ for n ≥ 0 (0 for n ≤ 0); a group whose every value rounds to 0 gets
width 0: pruned, exactly 0. So the grid covers the values and the forward *is*
:func:`netcarve.ir.fixedpoint.fixed_quantize` with these per-element formats (bit for bit the integer quantizer
with :class:`~netcarve.transforms.quantize.quantizers.ElementFormats`, which :func:`freeze` installs).

**Gradients.** Values: the integer quantizer's clipped straight-through estimator (zero on pruned elements).
Fracs: HGQ's surrogate ∂q/∂f ≈ −ln 2 · δ with δ = q(x) − x (the error of a uniform quantizer scales as 2^−f),
summed over the group; the forward adds ``(frac − frac.detach()) · (−ln 2 · δ)``, exactly 0.

**EBOPs** (:func:`ebops`): per multiply-accumulate, the bits of its input times the bits of its weight, the sum
over every weighted layer whose data_in and weight are quantized (a Linear: Σ_{o,i} bits(w_oi) · bits(x_i); a
convolution: the convolution of the input's bits with the weight's bits, summed). A learned operand's bits are
its integer width plus ``frac − frac.detach()`` (HGQ's continuous f inside the bit count: value the integer
width, gradient 1 per group), 0 where pruned; an integer operand's are its (per-element) widths.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netcarve.config.passes import (
    DEFAULT_OVERFLOW,
    DEFAULT_ROUND,
    GRANULARITIES,
    FreezeLearnedPassConfig,
    QuantizePassConfig,
)
from netcarve.errors import ConfigError
from netcarve.ir.fixedpoint import FixedGrid, learned_bits, learned_quantize, range_format
from netcarve.ir.graph import Graph
from netcarve.ir.meta import META_KEY
from netcarve.ir.passes import PassResult, register_pass
from netcarve.train.resources import FINDERS, LEARNED, EbopsFn
from netcarve.transforms.quantize.formats import operand_shape, set_many
from netcarve.transforms.quantize.quantizers import QUANTIZERS, IntegerQuantizer, QuantSpec

log = logging.getLogger(__name__)


class LearnedQuantizer(IntegerQuantizer):
    """Fixed point with a trainable frac per element, channel or layer (HGQ); integer bits from the range.
    A spec alone (no module state: not through the quantize pass) is the integer quantizer at its initial
    format (``bounds`` and ``quantize`` are the integer quantizer's); a quantized module's learned operands go
    through their :class:`LearnedOperand` instead."""

    name = "learned"
    modes = True

    def make_spec(
        self,
        width: int,
        frac_width: int | str | None = None,
        exponent_width: int | None = None,
        exponent_bias: int | None = None,
        signed: bool = True,
        round: str = DEFAULT_ROUND,
        overflow: str = DEFAULT_OVERFLOW,
        granularity: str | None = None,
    ) -> QuantSpec:
        """``width`` turns the operand on (≥ 1); ``frac_width`` is the initial frac (None ⇒ ``width // 2``;
        ``"auto"`` is the integer quantizer's: this one learns its frac); ``granularity`` (element, channel,
        layer; None ⇒ element) is kept as the spec's ``granularity``."""
        self.check_modes(round, overflow)
        if isinstance(frac_width, str):
            raise ConfigError(
                f'learned quantizer: frac_width = "{frac_width}" is the integer quantizer\'s; the learned one '
                "learns its frac from the initial frac_width (an integer, or unset for width // 2)"
            )
        # the integer quantizer's spec (its default frac and width check), made by and for this quantizer
        spec = super().make_spec(width, frac_width, exponent_width, exponent_bias, signed, round, overflow)
        gran = granularity or "element"
        if gran not in GRANULARITIES:
            raise ConfigError(f"learned quantizer: unknown granularity {gran!r} (valid: {', '.join(GRANULARITIES)})")
        return replace(spec, granularity=gran)


QUANTIZERS.add("learned", LearnedQuantizer(), description=LearnedQuantizer.__doc__ or "")


@dataclass(frozen=True)
class BetaSchedule:
    """The weight of EBOPs in the training loss (``[passes.quantize]`` ``beta*`` keys): a constant ``beta``; a
    ramp from ``beta`` to ``end`` over ``epochs`` epochs; or ``beta`` steered toward ``target`` EBOPs (×/÷
    ``factor`` after each epoch above/below it). The quantize pass keeps it on each learned module's state."""

    beta: float = 0.0
    end: float | None = None
    epochs: int | None = None
    target: float | None = None
    factor: float = 2.0

    @staticmethod
    def of(config: QuantizePassConfig) -> BetaSchedule:
        return BetaSchedule(
            config.beta, config.beta_end, config.beta_epochs, config.beta_target_ebops, config.beta_factor
        )

    def at(self, epoch: int) -> float:
        """The ramp's (or the constant's) beta in ``epoch`` (steering starts from ``beta`` too)."""
        if self.end is None or self.epochs is None:
            return self.beta
        return self.beta + (self.end - self.beta) * min(epoch, self.epochs) / self.epochs

    def steer(self, beta: float, ebops: float) -> float:
        """The next epoch's beta when steering (unchanged otherwise)."""
        if self.target is None or ebops == self.target:
            return beta
        return beta * self.factor if ebops > self.target else beta / self.factor


def group_shape(operand: str, shape: tuple[int, ...], granularity: str) -> tuple[int, ...]:
    """The shape of one operand's fracs: ``shape`` (a parameter's, or one sample's), per element; its first
    dimension and 1 elsewhere, per channel (a weight's output channel, a bias element, an activation's feature
    or image channel); all 1, per layer."""
    if granularity == "element" or not shape:
        return shape
    if granularity == "channel":
        return (shape[0], *(1 for _ in shape[1:]))
    return tuple(1 for _ in shape)


class LearnedOperand(nn.Module):
    """One learned operand: its fracs (a parameter of the group shape) and, for an activation, the calibrated
    range (buffers ``lo``/``hi`` of the group shape)."""

    lo: torch.Tensor
    hi: torch.Tensor

    def __init__(self, shape: tuple[int, ...], init_frac: int, activation: bool) -> None:
        super().__init__()
        self.activation = activation
        self.frac = nn.Parameter(torch.full(shape, float(init_frac)))
        if activation:
            self.register_buffer("lo", torch.zeros(shape))
            self.register_buffer("hi", torch.zeros(shape))

    def _group_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The min and max of ``x`` per group (an activation's batch dimension reduced too)."""
        shape = tuple(self.frac.shape)
        lead = x.dim() - len(shape)
        dims = [d for d in range(x.dim()) if d < lead or shape[d - lead] == 1]
        if not dims:
            return x.detach(), x.detach()
        lo, hi = torch.amin(x.detach(), dim=dims, keepdim=True), torch.amax(x.detach(), dim=dims, keepdim=True)
        return lo.reshape(shape), hi.reshape(shape)

    def range(self, x: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The range the integer bits cover: an activation's calibrated one (updated by ``x`` in training
        mode), a parameter's own (``x`` is the parameter)."""
        if self.activation:
            if x is not None and self.training:
                lo, hi = self._group_range(x)
                with torch.no_grad():
                    self.lo.copy_(torch.minimum(self.lo, lo.to(self.lo)))
                    self.hi.copy_(torch.maximum(self.hi, hi.to(self.hi)))
            return self.lo, self.hi
        assert x is not None
        return self._group_range(x)

    def formats(self, spec: QuantSpec, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(width, frac) per group as integer-valued floats of the range's dtype: the format :meth:`forward`
        quantizes with (:func:`~netcarve.ir.fixedpoint.range_format` of the range)."""
        lo, hi = self.range(x)
        return range_format(lo, hi, self.frac, spec.round, spec.signed)

    def forward(self, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
        width, f = self.formats(spec, x)
        grid = self._grid(width.to(x.dtype), f.to(x.dtype), spec.signed)
        q = learned_quantize(x, grid, self.frac, spec.round, spec.overflow)
        if self.training and torch.is_grad_enabled() and self.frac.requires_grad:
            _STEP_BITS[self] = learned_bits(width, self.frac)  # the step's EBOPs term reads them next
        return q

    def _grid(self, width: torch.Tensor, f: torch.Tensor, signed: bool) -> FixedGrid:
        """The grid of these formats: the last one again while the formats stay (they are integers, which
        change far more rarely than the values), else built anew (:meth:`FixedGrid.of_integers`)."""
        last = _GRIDS.get(self)
        if last is not None:
            w0, f0, s0, grid = last
            same = s0 == signed and (w0.shape, w0.dtype, w0.device) == (width.shape, width.dtype, width.device)
            if same and torch.equal(w0, width) and torch.equal(f0, f):
                return grid
        grid = FixedGrid.of_integers(width, f, signed)
        _GRIDS[self] = (width, f, signed, grid)
        return grid

    def bits(self, spec: QuantSpec, x: torch.Tensor | None = None, *, fresh: bool = False) -> torch.Tensor:
        """The bits per group, differentiable through the frac: the integer width (its value), gradient 1 per
        group; 0 (no gradient) where pruned. ``fresh``: the training step's EBOPs term, right after the
        forward pass, which left these bits (same weights, same ranges) for it to take once."""
        if fresh:
            stashed = _STEP_BITS.pop(self, None)
            if stashed is not None:
                return stashed
        width, _ = self.formats(spec, x)
        return learned_bits(width, self.frac)


#: the bits of each learned operand's last training forward pass, taken once by the step's EBOPs term (not an
#: attribute: a deep copy of a trained module must not copy a tensor of the autograd graph)
_STEP_BITS: weakref.WeakKeyDictionary[LearnedOperand, torch.Tensor] = weakref.WeakKeyDictionary()
#: each learned operand's last grid and the formats it was built from
_GRIDS: weakref.WeakKeyDictionary[LearnedOperand, tuple[torch.Tensor, torch.Tensor, bool, FixedGrid]] = (
    weakref.WeakKeyDictionary()
)


def learned_operands(module: nn.Module) -> Mapping[str, LearnedOperand]:
    """The learned operands of a quantized module (empty: none)."""
    found = module._modules.get(LEARNED)
    return found._modules if isinstance(found, nn.ModuleDict) else {}  # type: ignore[return-value]


def attach(graph: Graph, module: nn.Module, node: str, specs: Mapping[str, QuantSpec], beta: BetaSchedule) -> None:
    """Give ``module`` (``node``'s quantized module, about to join a new graph) the state of its learned
    operands, shaped by ``graph`` (the graph being quantized: same shapes), and the ``beta`` schedule. A module
    re-quantized without a learned operand loses the old state."""
    states = nn.ModuleDict()
    states.__dict__["beta"] = beta  # a plain attribute: settings, not state (the quantize config holds them)
    for operand, spec in specs.items():
        if spec.quantizer.name != "learned":
            continue
        shape = operand_shape(graph, node, operand)
        group = group_shape(operand, shape, spec.granularity or "element")
        states[operand] = LearnedOperand(group, spec.frac_width or 0, operand not in ("weight", "bias"))
    if len(states):
        param = next(iter(module.parameters()), None)
        if param is not None:
            states.to(param.device)
        module.add_module(LEARNED, states)
    elif LEARNED in module._modules:
        del module._modules[LEARNED]


def has_learned(module: nn.Module) -> bool:
    """Whether any submodule of ``module`` has a learned operand."""
    return any(learned_operands(m) for m in module.modules())


# -- EBOPs ----------------------------------------------------------------------------------------------------


def operand_bits(
    module: nn.Module, operand: str, shape: tuple[int, ...], *, fresh: bool = False
) -> torch.Tensor | None:
    """The bits of ``module``'s ``operand`` broadcast to ``shape`` (differentiable for a learned operand;
    ``fresh``: :meth:`LearnedOperand.bits`'s); None when the operand is not quantized or not fixed point."""
    spec = getattr(module, "quant", {}).get(operand)
    if spec is None:
        return None
    state = learned_operands(module).get(operand)
    if state is not None:
        x = getattr(module, operand) if operand in ("weight", "bias") else None
        return state.bits(spec, x, fresh=fresh).expand(shape)
    if spec.quantizer.name != "integer":
        return None
    if spec.formats is not None:
        return spec.formats.broadcast(shape)[0].to(torch.float32)
    return torch.full(shape, float(spec.width))


def ebops(graph: Graph) -> torch.Tensor:
    """The effective bit operations of ``graph`` (a scalar, differentiable through its learned fracs): per
    Linear or convolution whose data_in and weight are quantized, Σ over its MACs of bits(input) · bits(weight)
    for one sample. Other layers count 0."""
    return module_ebops(graph.module)


def module_ebops(gm: fx.GraphModule, *, fresh: bool = False) -> torch.Tensor:
    """:func:`ebops` of a netcarve graph's module (its nodes annotated with their shapes). ``fresh``: the EBOPs
    term of a training step, right after its forward pass (the learned operands' bits of that pass)."""
    total = torch.zeros(())
    for n in gm.graph.nodes:
        if n.op != "call_module" or META_KEY not in n.meta:
            continue
        module = gm.get_submodule(str(n.target))
        weight = getattr(module, "weight", None)
        inputs = n.meta[META_KEY].inputs
        if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d) or weight is None or not inputs:
            continue
        w_bits = operand_bits(module, "weight", tuple(weight.shape), fresh=fresh)
        x_bits = operand_bits(module, "data_in", tuple(inputs[0].shape[1:]), fresh=fresh)
        if w_bits is None or x_bits is None:
            continue
        w_bits, x_bits = w_bits.to(weight.device), x_bits.to(weight.device)
        if isinstance(module, nn.Linear):
            out = F.linear(x_bits, w_bits)
        else:  # the convolution of the input's bits with the weight's bits: each MAC's product, summed
            conv = F.conv1d if isinstance(module, nn.Conv1d) else F.conv2d
            if module.padding_mode != "zeros":
                raise ConfigError(f"ebops: node {n.name!r} pads by {module.padding_mode!r}; only zeros is counted")
            out = conv(x_bits[None], w_bits, None, module.stride, module.padding, module.dilation, module.groups)
        total = total.to(out.device) + out.sum()
    return total


def _resources(module: nn.Module) -> tuple[EbopsFn, BetaSchedule] | None:
    """The training loop's view of a model with learned quantizers (:data:`netcarve.train.resources.FINDERS`):
    its EBOPs and its beta schedule."""
    schedule = beta_schedule(module)
    if schedule is None or not isinstance(module, fx.GraphModule):
        return None
    gm = module

    def ebops_of(fresh: bool = False) -> torch.Tensor:
        return module_ebops(gm, fresh=fresh)

    return ebops_of, schedule


def beta_schedule(module: nn.Module) -> BetaSchedule | None:
    """The beta schedule of a model with learned quantizers (None: it has none)."""
    for m in module.modules():
        found = m._modules.get(LEARNED)
        if isinstance(found, nn.ModuleDict) and len(found):
            schedule: BetaSchedule = getattr(found, "beta", BetaSchedule())
            return schedule
    return None


FINDERS.append(_resources)


# -- freeze ---------------------------------------------------------------------------------------------------


def learned_formats(graph: Graph) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """node → operand → the integer ``width``/``frac`` of every learned operand now (eval-mode ranges)."""
    out: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for n in graph.compute_nodes():
        if n.op != "call_module":
            continue
        module = graph.submodule(n)
        quant: Mapping[str, QuantSpec] = getattr(module, "quant", {})
        for operand, state in learned_operands(module).items():
            spec = quant[operand]
            x = getattr(module, operand) if operand in ("weight", "bias") else None
            with torch.no_grad():
                width, frac = state.formats(spec, x)
            out.setdefault(n.name, {})[operand] = {
                "width": width.to(torch.int64).cpu(),
                "frac": frac.to(torch.int64).cpu(),
            }
    return out


@register_pass("freeze_learned")
def freeze_learned(graph: Graph, config: FreezeLearnedPassConfig | None = None) -> PassResult[None]:
    """A new graph where every learned operand is the integer quantizer with its learned per-element formats
    (:func:`~netcarve.transforms.quantize.formats.set_formats`): bit for bit the same forward in eval mode,
    and what analysis and export read. The learned state (fracs, ranges) is dropped."""
    was_training = graph.module.training
    graph.module.eval()
    try:
        formats = learned_formats(graph)
    finally:
        graph.module.train(was_training)
    integer = QUANTIZERS.get("integer")
    gm = copy.deepcopy(graph.module)
    for n in graph.compute_nodes():
        if n.op != "call_module" or n.name not in formats:
            continue
        module = gm.get_submodule(str(n.target))
        old: Mapping[str, QuantSpec] = getattr(module, "quant", {})
        module.quant = {  # type: ignore[assignment]
            op: replace(s, quantizer=integer, granularity=None) if s.quantizer.name == "learned" else s
            for op, s in old.items()
        }
        del module._modules[LEARNED]
    spec = graph.spec.with_transform("freeze_learned", {}) if graph.spec is not None else None
    return PassResult(set_many(graph.derive(gm, spec), formats), None)
