"""The general counting path: a ``__torch_dispatch__`` mode that attributes every ATen op to its fx node.

The graph runs under an :class:`fx.Interpreter` that sets the current node before each node runs, so
functional calls, ``x @ w``, ``x + y``, in-place ops and subclassed modules are all attributed to the node
that caused them. It runs on fake tensors (no real compute, no real memory), in eval mode, with autograd
enabled so that ``requires_grad`` tells which operands would receive a gradient (README: Analyze, backward).

An operand gets a *data* gradient (dgrad) when it depends on the model input, otherwise a *weight*
gradient (wgrad); an operand that needs no gradient gets none (e.g. the input of the first layer).
Ops run inside a quantizer (fake quantization) simulate a stored precision and are not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from netcarve.analysis.aten_formulas import formula_of, is_free
from netcarve.analysis.counts import OpCounts
from netcarve.errors import ModelError
from netcarve.ir.graph import Graph
from netcarve.ir.meta import TensorMeta

log = logging.getLogger(__name__)

#: attribution key of ops that run outside any node (none should)
OUTSIDE = "<outside>"


@dataclass(frozen=True)
class GraphCounts:
    """Per-node counts at one batch size, and the tensors each node produced (placeholders included)."""

    batch_size: int
    counts: dict[str, OpCounts]
    outputs: dict[str, tuple[TensorMeta, ...]]
    method: str


class OpCounter(TorchDispatchMode):
    """Counts ATen ops by formula into ``counts[current]``; ops without a formula go to ``uncounted``."""

    def __init__(self, skip: Callable[[], bool] = lambda: False) -> None:
        super().__init__()
        self.current = OUTSIDE
        self.counts: dict[str, OpCounts] = {}
        self._data: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._skip = skip

    def mark_data(self, tensor: torch.Tensor) -> None:
        """Declare ``tensor`` a model input: everything computed from it is data, not weight."""
        self._data[tensor] = True

    def grad_of(self, tensor: Any) -> str | None:
        if not isinstance(tensor, torch.Tensor) or not tensor.requires_grad:
            return None
        return "dgrad" if tensor in self._data else "wgrad"

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if any(isinstance(t, torch.Tensor) and t in self._data for t in tree_leaves((args, kwargs))):
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self._data[t] = True
        packet = func.overloadpacket
        if is_free(packet) or self._skip():
            return out
        counts = self.counts.setdefault(self.current, OpCounts())
        formula = formula_of(packet)
        if formula is None:
            counts.add_uncounted(str(packet))
        else:
            formula(counts, args, out, self.grad_of)
        return out


class _Attributing(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, counter: OpCounter, outputs: dict[str, tuple[TensorMeta, ...]]) -> None:
        super().__init__(gm)
        self.counter = counter
        self.outputs = outputs

    def run_node(self, n: fx.Node) -> Any:
        self.counter.current = n.name
        result = super().run_node(n)
        self.outputs[n.name] = tuple(TensorMeta.of(t) for t in tree_leaves(result) if isinstance(t, torch.Tensor))
        self.counter.current = OUTSIDE
        return result


def _fake_quant_flag() -> Callable[[], bool]:
    from netcarve.ir.fakequant import in_fake_quant

    return in_fake_quant


def count_by_dispatch(graph: Graph, example: torch.Tensor | tuple[int, ...]) -> GraphCounts:
    """Count every node of ``graph`` for one forward pass on ``example`` (a tensor, or a shape with the batch
    first, run in the graph's dtype)."""
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    x: torch.Tensor
    if isinstance(example, torch.Tensor):
        x = fake_mode.from_tensor(example)
    else:
        with fake_mode:
            x = torch.zeros(example, dtype=graph.input_dtype)
    counter = OpCounter(_fake_quant_flag())
    counter.mark_data(x)
    outputs: dict[str, tuple[TensorMeta, ...]] = {}
    gm = graph.module
    was_training = gm.training
    gm.eval()
    try:
        with fake_mode, counter, torch.enable_grad():
            _Attributing(gm, counter, outputs).run(x)
    except Exception as exc:
        shape = tuple(x.shape)
        first = str(exc).strip().split("\n", 1)[0]  # without torch.fx's "While executing …" lines
        raise ModelError(f"counting a forward pass on input {shape} failed: {type(exc).__name__}: {first}") from exc
    finally:
        gm.train(was_training)
    if OUTSIDE in counter.counts:
        log.warning("ops outside any graph node: %s", counter.counts[OUTSIDE])
    counts = {
        n.name: counter.counts.get(n.name, OpCounts()) for n in gm.graph.nodes if n.op not in ("placeholder", "output")
    }
    return GraphCounts(int(x.shape[0]), counts, outputs, "dispatch")
