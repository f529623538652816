"""The ``fold_batchnorm`` transform pass: every BatchNorm that directly follows a Linear or Conv is folded into it.

A BatchNorm in eval mode computes ``y = (x − mean) · s + β`` per channel with ``s = γ / √(var + eps)`` (its
running statistics); on the output ``x = W·u + b`` of a Linear that is the Linear ``W' = W · s[:, None]``,
``b' = (b − mean) · s + β`` (``b = 0`` when the Linear has no bias: the folded Linear gets one). A
BatchNorm1d after a Conv1d or a BatchNorm2d after a Conv2d folds the same way per output channel (``W'`` is
``W`` with each output channel's kernel scaled by its ``s``). The pass returns a new graph (its input is
never mutated) in which each such BatchNorm is gone and its Linear or Conv holds ``W'`` and ``b'``.

Quantized models: the Linear keeps its quantizer specs, which now apply to ``W'`` and ``b'`` (the folded
weights are *requantized* to the Linear's formats). A quantized BatchNorm contributes its quantized ``γ`` and
``β`` (its weight and bias specs applied), and its ``data_out`` quantizer becomes the Linear's ``data_out``
(the Linear's own ``data_out``, which quantized the values before the BatchNorm, no longer has a meaning and
is dropped, as is the BatchNorm's ``data_in``). A Linear without a bias takes the BatchNorm's bias spec for
its new bias (``b'`` replaces ``β``); when there is none, the new bias is float. On a float model the pass
preserves the function up to float rounding; on a quantized one the folded model rounds ``W'`` where the
unfolded one rounded ``W``, so the two differ slightly (``netcarve export`` measures by how much). (The same
holds for a Conv.)

A BatchNorm is folded only when its one input is the output of a Linear (2-D), a Conv1d (with a
BatchNorm1d, 3-D) or a Conv2d (with a BatchNorm2d, 4-D) that nothing else uses, and it has running
statistics; any other (the input BatchNorm before the first layer, one after a ReLU) is left in place and
reported with the reason in :class:`FoldInfo`. Which kinds are producers (with the batch-norm kind that
may follow each and the rank of its output) and which are batch norms is each op kind's ``fold``
(:mod:`netcarve.ir.opspecs`). Train the folded model (run the pass before
quantization-aware training) to make the trained model and the exported firmware the same.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from netcarve.config.passes import FoldBatchNormPassConfig, coerce_pass_config
from netcarve.ir.graph import Graph
from netcarve.ir.meta import META_KEY
from netcarve.ir.opspecs import BATCH_NORM, Fold, spec_of_kind, spec_of_module
from netcarve.ir.passes import PassResult, register_pass
from netcarve.transforms.quantize.modules import QuantizedModule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldedBatchNorm:
    """BatchNorm node ``batch_norm`` folded into Linear or Conv node ``into``."""

    batch_norm: str
    into: str

    def describe(self) -> str:
        return f"{self.batch_norm} into {self.into}"


@dataclass(frozen=True)
class KeptBatchNorm:
    """A BatchNorm node left in place, and why."""

    node: str
    reason: str


@dataclass(frozen=True)
class FoldInfo:
    """What the pass did: the BatchNorms folded (graph order) and those left in place."""

    folded: tuple[FoldedBatchNorm, ...]
    kept: tuple[KeptBatchNorm, ...]


def _fold_of(module: nn.Module | None) -> Fold | None:
    """The module's part in folding (its op kind's ``fold``), None for a non-module node or another kind."""
    spec = spec_of_module(module) if module is not None else None
    return spec.fold if spec is not None else None


def _is_batch_norm(gm: fx.GraphModule, node: fx.Node) -> bool:
    return node.op == "call_module" and _fold_of(gm.get_submodule(str(node.target))) == BATCH_NORM


def _why_not(gm: fx.GraphModule, node: fx.Node) -> str | None:
    """None when the BatchNorm ``node`` can be folded into its producer, else the reason it cannot."""
    bn = gm.get_submodule(str(node.target))
    if bn.running_mean is None or bn.running_var is None:
        return "it has no running statistics"
    if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], fx.Node):
        return "it does not take exactly one input"
    producer = node.args[0]
    module = gm.get_submodule(str(producer.target)) if producer.op == "call_module" else None
    fold = _fold_of(module)
    if fold is None or fold.role != "producer":
        return f"its input {producer.name!r} is not a Linear or Conv"
    if spec_of_module(bn) != spec_of_kind(fold.batch_norm):
        return f"a {type(bn).__name__} cannot follow the {type(module).__name__} {producer.name!r}"
    if len(producer.users) != 1:
        return f"the output of {producer.name!r} has other users"
    meta = producer.meta.get(META_KEY)
    shape = meta.output if meta is not None else None
    if shape is None or len(shape.shape) != fold.rank:
        return f"the output of {producer.name!r} is not {fold.output}"
    return None


def _quantized(module: nn.Module, operand: str, value: torch.Tensor) -> torch.Tensor:
    spec = getattr(module, "quant", {}).get(operand)
    return value if spec is None else spec(value)


def _fold(linear: nn.Linear | nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> None:
    """Fold ``bn`` into ``linear`` (a Linear or Conv) in place (both already copies), in float64, then back to
    the weight dtype: each output channel's weights are scaled by its ``s``."""
    had_bias = linear.bias is not None
    with torch.no_grad():
        dtype = linear.weight.dtype
        assert bn.running_mean is not None and bn.running_var is not None
        mean, var = bn.running_mean.double(), bn.running_var.double()
        gamma = _quantized(bn, "weight", bn.weight.double()) if bn.weight is not None else torch.ones_like(mean)
        beta = _quantized(bn, "bias", bn.bias.double()) if bn.bias is not None else torch.zeros_like(mean)
        scale = gamma / torch.sqrt(var + bn.eps)
        bias = linear.bias.double() if linear.bias is not None else torch.zeros_like(mean)
        per_channel = scale.reshape(-1, *([1] * (linear.weight.dim() - 1)))
        linear.weight.copy_((linear.weight.double() * per_channel).to(dtype))
        new_bias = ((bias - mean) * scale + beta).to(dtype)
        if linear.bias is not None:
            linear.bias.copy_(new_bias)
        else:
            linear.bias = nn.Parameter(new_bias, requires_grad=linear.weight.requires_grad)
    if isinstance(linear, QuantizedModule):
        quant = {op: spec for op, spec in linear.quant.items() if op != "data_out"}
        bn_quant: Mapping[str, Any] = getattr(bn, "quant", {})
        if not had_bias and "bias" in bn_quant:
            quant["bias"] = bn_quant["bias"]
        if "data_out" in bn_quant:
            quant["data_out"] = bn_quant["data_out"]
        linear.quant = quant


def fold_batchnorms(graph: Graph) -> PassResult[FoldInfo]:
    """:func:`fold_batchnorm_pass` without a config: a new graph, the input untouched."""
    gm = copy.deepcopy(graph.module)
    folded: list[FoldedBatchNorm] = []
    kept: list[KeptBatchNorm] = []
    for node in list(gm.graph.nodes):
        if not _is_batch_norm(gm, node):
            continue
        reason = _why_not(gm, node)
        if reason is not None:
            kept.append(KeptBatchNorm(node.name, reason))
            continue
        producer = node.args[0]
        linear, bn = gm.get_submodule(str(producer.target)), gm.get_submodule(str(node.target))
        _fold(linear, bn)  # type: ignore[arg-type]  # _why_not: a producer and its batch norm
        node.replace_all_uses_with(producer)
        gm.graph.erase_node(node)
        gm.delete_submodule(str(node.target))
        folded.append(FoldedBatchNorm(node.name, producer.name))
    if folded:
        gm.graph.lint()
        gm.recompile()
    spec = graph.spec.with_transform("fold_batchnorm", {}) if graph.spec is not None else None
    new = graph.derive(gm, spec)
    for item in folded:
        module = new.module.get_submodule(str(new.node(item.into).target))
        if isinstance(module, QuantizedModule):
            new.set_precision(item.into, {op: s.precision() for op, s in module.quant.items()})
    for item in folded:
        log.debug("fold_batchnorm: folded BatchNorm %s", item.describe())
    for k in kept:
        log.debug("fold_batchnorm: kept BatchNorm %s (%s)", k.node, k.reason)
    return PassResult(new, FoldInfo(tuple(folded), tuple(kept)))


@register_pass("fold_batchnorm")
def fold_batchnorm_pass(
    graph: Graph, config: FoldBatchNormPassConfig | Mapping[str, Any] | None = None
) -> PassResult[FoldInfo]:
    """Fold each BatchNorm that follows a Linear or Conv into it (W' = W·s, b' = (b − mean)·s + β); a new
    graph."""
    coerce_pass_config(FoldBatchNormPassConfig, config, "passes.fold_batchnorm")
    return fold_batchnorms(graph)
