"""Channel maps and in-place resizing of Linear/Conv/BatchNorm modules (on a copy of the graph's module).

A :class:`ChannelMap` says, for every channel of the new layout, which old channel it comes from:

- widening (net2net): the old channels keep their place and new channel ``j`` (``j ≥ n_old``) copies old
  channel ``j mod n_old`` — deterministic, so every producer of a residual group copies the same units;
- shrinking: the kept channels are the ``n_new`` ones whose producer weight rows have the largest L1 norm
  (Σ|W[i, …]| over the layer's inputs and kernel, bias not counted; summed over the producers of a residual
  group), kept in their original order; ties go to the lower index.

Resizing a producer selects weight rows and bias entries by the map; a consumer selects weight columns and,
with net2net init, divides the column of every copied unit by its replication count, so a widened network
computes the same function; a BatchNorm copies its affine parameters and running stats along. With
``init = "random"`` every resized module is re-initialised by its own ``reset_parameters()`` under a
seeded, forked RNG (what MASE's lab did: fresh layers).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netcarve.errors import PassError
from netcarve.ir.opspecs import spec_of_kind


def attr(module: nn.Module, name: str) -> Any:
    """A module attribute, untyped (``nn.Module.__getattr__`` is typed ``Tensor | Module``)."""
    return getattr(module, name)


def width_attrs(kind: str) -> tuple[str, str]:
    """The module attributes holding a layer's (in, out) width (its op spec's ``width_attrs``)."""
    spec = spec_of_kind(kind)
    if spec is None or spec.width_attrs is None:
        raise PassError(f"op kind {kind!r} has no width attributes")
    return spec.width_attrs


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelMap:
    """``index[j]`` = the old channel that new channel ``j`` comes from."""

    index: torch.Tensor  # int64, shape (n_new,)
    old: int

    @property
    def new(self) -> int:
        return int(self.index.numel())

    def copies(self) -> torch.Tensor:
        """For every new channel, how many new channels share its old channel (net2net's split factor)."""
        return torch.bincount(self.index, minlength=self.old)[self.index]


def widen_map(old: int, new: int) -> ChannelMap:
    """Old units first, then new unit ``j`` copies old unit ``j mod old``."""
    return ChannelMap(torch.arange(new) % old, old)


def shrink_map(scores: torch.Tensor, new: int) -> ChannelMap:
    """Keep the ``new`` units with the largest scores, in their original order (ties: lower index)."""
    order = torch.sort(-scores, stable=True).indices[:new]
    return ChannelMap(torch.sort(order).values, int(scores.numel()))


def row_l1(module: nn.Module) -> torch.Tensor:
    """L1 norm of each output unit's weights (all inputs and kernel positions; bias not counted)."""
    weight = attr(module, "weight").detach()
    return weight.abs().reshape(weight.shape[0], -1).sum(dim=1)


def choose_map(old: int, new: int, producers: Sequence[nn.Module]) -> ChannelMap | None:
    """The map of a group going from ``old`` to ``new`` channels (None when unchanged)."""
    if new == old:
        return None
    if new > old:
        return widen_map(old, new)
    scores = torch.stack([row_l1(m).float().cpu() for m in producers]).sum(dim=0)
    return shrink_map(scores, new)


def _select(tensor: torch.Tensor, dim: int, cmap: ChannelMap) -> torch.Tensor:
    return tensor.index_select(dim, cmap.index.to(tensor.device))


def _param(old: nn.Parameter, data: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(data.contiguous(), requires_grad=old.requires_grad)


def resize_layer(
    module: nn.Module, kind: str, name: str, in_map: ChannelMap | None, out_map: ChannelMap | None, split: bool
) -> None:
    """Resize a Linear/Conv in place: rows by ``out_map``, columns by ``in_map`` (÷ copies when ``split``)."""
    groups = int(getattr(module, "groups", 1))
    if groups != 1:
        _resize_grouped(module, kind, name, groups, in_map, out_map)
        return
    with torch.no_grad():
        weight = attr(module, "weight").detach()
        if in_map is not None:
            weight = _select(weight, 1, in_map)
            if split:
                shape = (1, -1) + (1,) * (weight.dim() - 2)
                weight = weight / in_map.copies().to(weight.device, weight.dtype).reshape(shape)
        _set_rows(module, weight, out_map)
    weight = attr(module, "weight")
    in_attr, out_attr = width_attrs(kind)
    setattr(module, in_attr, int(weight.shape[1]))
    setattr(module, out_attr, int(weight.shape[0]))


def _set_rows(module: nn.Module, weight: torch.Tensor, out_map: ChannelMap | None) -> None:
    if out_map is not None:
        weight = _select(weight, 0, out_map)
        bias = attr(module, "bias")
        if bias is not None:
            module.bias = _param(bias, _select(bias.detach(), 0, out_map))
    module.weight = _param(attr(module, "weight"), weight)


def _resize_grouped(
    module: nn.Module, kind: str, name: str, groups: int, in_map: ChannelMap | None, out_map: ChannelMap | None
) -> None:
    """A grouped convolution scales when ``groups`` divides its new inputs and outputs: output channels are
    selected by ``out_map``; each group's input columns keep the old ones first, then repeat them."""
    weight = attr(module, "weight").detach()
    n_in = in_map.new if in_map is not None else int(weight.shape[1]) * groups
    n_out = out_map.new if out_map is not None else int(weight.shape[0])
    if n_in % groups or n_out % groups:
        raise PassError(
            f"{name!r}: a grouped convolution (groups = {groups}) cannot have {n_in} input and {n_out} output "
            f"channels: groups must divide both"
        )
    if (in_map is not None and in_map.new > in_map.old) or (out_map is not None and out_map.new > out_map.old):
        log.warning(
            "%r is a grouped convolution (groups = %d): widening it or its input keeps the shapes but not the "
            "network's function (net2net preserves it only for groups = 1); retrain the result",
            name,
            groups,
        )
    with torch.no_grad():
        columns = torch.arange(n_in // groups) % int(weight.shape[1])
        _set_rows(module, weight.index_select(1, columns.to(weight.device)), out_map)
    in_attr, out_attr = width_attrs(kind)
    setattr(module, in_attr, n_in)
    setattr(module, out_attr, n_out)


def block_map(cmap: ChannelMap, block: int) -> ChannelMap:
    """The map of the flattened features when every channel is ``block`` consecutive features."""
    if block == 1:
        return cmap
    offsets = torch.arange(block)
    return ChannelMap((cmap.index[:, None] * block + offsets).reshape(-1), cmap.old * block)


def resize_norm(module: nn.Module, kind: str, cmap: ChannelMap) -> None:
    """Resize a BatchNorm in place: copied units get their source's affine parameters and running stats."""
    with torch.no_grad():
        for pname in ("weight", "bias"):
            p = getattr(module, pname, None)
            if p is not None:
                setattr(module, pname, _param(p, _select(p.detach(), 0, cmap)))
        for bname in ("running_mean", "running_var"):
            b = getattr(module, bname, None)
            if b is not None:
                setattr(module, bname, _select(b, 0, cmap).clone())
    for name in dict.fromkeys(width_attrs(kind)):
        setattr(module, name, cmap.new)


def reinitialise(module: nn.Module, seed: int) -> None:
    """Fresh parameters from the module's own ``reset_parameters()``, seeded; the global RNG is untouched."""
    reset = getattr(module, "reset_parameters", None)
    if reset is None:
        raise PassError(f"{type(module).__name__} has no reset_parameters(): use init = 'net2net'")
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        reset()
