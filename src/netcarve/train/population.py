"""Train a population of candidates as one batched model: :func:`fit_population`.

A search trains many small MLPs from one base model; alone, each step of a 16-16-16-5 MLP is dominated by
per-op overhead. Here the members whose modules share a *template* are stacked along a leading candidate
dimension and trained together, each as ``torch.manual_seed(cfg.seed); fit(module, splits, cfg)`` would
train it alone (same batches, BatchNorm one-row-batch rule, optimizer, schedule, step limits and records):

- **Template**: the module's fx graph is a chain ``x → m1 → … → mn → out`` of call_module nodes whose
  modules are ``Linear``/``QuantizedLinear``, ``ReLU``/``QuantizedReLU``, ``BatchNorm1d``/
  ``QuantizedBatchNorm1d`` (affine, tracking running statistics, a float momentum) or ``Identity``; the
  template is the sequence of kinds, bias presence, BatchNorm momentum/eps and, per node, the quantized
  operands with their quantizer (``integer`` only) and round/overflow modes. Per-member quantizer widths,
  frac widths and signedness become a :class:`~netcarve.ir.fixedpoint.FixedGrid` of ``[K]`` tensors
  broadcast over the candidate dimension, quantized by the one integer quantizer,
  :func:`~netcarve.ir.fixedpoint.fixed_quantize` (forward and clipped straight-through gradient). Hidden
  widths may differ: each is padded to the batch's largest width; the input and the output (class count)
  widths are the template's own.
- **Partition**: padding a narrow member to a wide one costs the wide one's compute (at widths 64 a step
  is bound by the matrix products), so a template group is cut into batches of similar widths by a fitted
  step-time model (:data:`STEP_MEMBER_COST`, :data:`STEP_WEIGHT_COST`), merging batches while that lowers
  the modelled total.
- **Compute**: weights ``[K, out, in]``, activations features-major ``[K, F, B]`` (B rows of the batch);
  Linear is ``torch.baddbmm(b, w, x)`` (measured against ``torch.func.vmap`` + a functional forward: slower),
  ReLU runs in place when its input is a tensor nobody saved for backward, BatchNorm runs torch's own
  ``F.batch_norm`` on the ``[1, K·F, B]`` view, with per-member running statistics stored as ``[K, F]``: the
  batch statistics, the running-mean/unbiased-running-var updates and ``num_batches_tracked`` are exactly
  torch's. Features-major keeps the narrow output layer (5 classes) a wide matrix product and gives the loss
  its ``[K, C, B]`` layout without a copy; with in-place ReLU, a step of 28 members at width 96 (batch 256,
  2 threads) went from 13.5 to 7.4 ms. The loss is the sum over members of each member's mean
  cross-entropy, so each member's gradient is its solo gradient; the optimizer is
  :func:`~netcarve.train.optim.make_optimizer` on the stacked parameters (Adam/AdamW/SGD are elementwise,
  so stacking is exact).
- **Exactness**: forward passes and gradients agree with the solo ones to the last bits (a batched,
  features-major matrix product sums in another order than ``addmm``: at most 4e-7 measured on Lab 4
  logits), so trained weights agree to about 1e-7 (tested to rtol 1e-4). Where a candidate's training is
  chaotic, such last-bit differences can grow as much as a change of thread count grows them in solo
  training (Lab 4, 630k rows: one configuration reaches 0.519 solo on 1 thread, 0.642 solo on 2 threads).
  One exception, inherent to the model, not the batching: the bias of a
  Linear followed by a BatchNorm has a true gradient of 0 (the BatchNorm subtracts it again), so its
  computed gradient is rounding noise, which Adam normalises into full-size steps; such a bias (and the
  BatchNorm's running mean, which follows it) random-walks differently in any run that does not round
  bit for bit, batched or solo on another thread count or CPU, and eval accuracy moves by about a percent.
- **Padding** is inert: padded weights, biases and BatchNorm affine parameters start at 0 and their gradients
  are multiplied by a 0/1 mask before every step, so they, their gradients and the optimizer state stay
  exactly 0 (a quantizer maps 0 to 0 in every mode, and a padded unit's activation is always 0).
- **Leaving the batch**: at an epoch boundary a member whose train loss is not finite (its
  :class:`MemberOutcome` gets fit's ``TrainingError``), or for which ``keep_going`` returned False, is
  written back to its module and removed: parameters, BatchNorm statistics and optimizer state of the
  others are re-stacked with ``index_select``.
- **Fallback**: a member whose module the batched path cannot express (another module type, dropout,
  another quantizer, a non-chain graph, a frozen parameter, …) — or that no other member shares a template
  with — is trained
  by :func:`~netcarve.train.loop.fit` itself (seeded as a search candidate is), with an INFO log of why.

Threads: ``num_threads`` (default: every thread torch has, :data:`DEFAULT_THREADS`). One batch uses them
all as intra-op threads; several batches run side by side in up to ``num_threads`` lanes that share the
threads (2 threads: two lanes of one intra-op thread each; ``keep_going`` is called by one lane at a time):
a batch's elementwise ops and op launches gain little from a second thread, two batches on two cores gain
more. Measured on 2 cores, Lab 4's 36 candidates, 200k rows, three runs each: batches one after the other
at 2 threads 4.8–6.6 s, side by side 3.3–3.9 s.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from netcarve.data.base import Split, TensorSplits
from netcarve.errors import TrainingError
from netcarve.ir.fixedpoint import FixedGrid, fixed_quantize
from netcarve.train.loop import (
    EpochRecord,
    FitResult,
    TrainConfig,
    epoch_plan,
    fit,
    optimizer_for,
    steps_only,
    training_threads,
)
from netcarve.train.optim import FusedAdam, Stepper, TorchStepper
from netcarve.transforms.quantize.modules import (
    QuantizedBatchNorm1d,
    QuantizedLinear,
    QuantizedModule,
    QuantizedReLU,
)
from netcarve.transforms.quantize.quantizers import IntegerQuantizer, QuantSpec

log = logging.getLogger(__name__)

#: (member index, that member's epoch record) -> keep training?
KeepGoing = Callable[[int, EpochRecord], bool]

#: evaluation chunk (rows), as :func:`netcarve.train.loop.evaluate`
EVAL_BATCH = 8192
#: intra-op threads of a batched group unless ``num_threads`` is given: None = every thread torch has (a
#: search's worker processes each get their share, ``OMP_NUM_THREADS``, from the parent). A population's
#: matrix products are large enough to split: measured on 2 cores, one epoch of 200k rows for the 36 Lab 4
#: width candidates of jsc-three-linear-layers (hidden widths 16–96), 2 threads take 4.2–4.3 s, 1 thread
#: 6.2–6.7 s. (With a foreign process busy on the other core, 2 threads are slower: set ``num_threads``.)
DEFAULT_THREADS: int | None = None

_KINDS: dict[type[nn.Module], str] = {
    nn.Linear: "linear",
    QuantizedLinear: "linear",
    nn.ReLU: "relu",
    QuantizedReLU: "relu",
    nn.BatchNorm1d: "bn",
    QuantizedBatchNorm1d: "bn",
    nn.Identity: "identity",
}
_OPERANDS = {
    "linear": ("data_in", "weight", "bias", "data_out"),
    "bn": ("data_in", "weight", "bias", "data_out"),
    "relu": ("data_in", "data_out"),
    "identity": (),
}


@dataclass
class MemberOutcome:
    """One member's training: its history and steps; ``error`` when it diverged (the others are unaffected);
    ``stopped`` when ``keep_going`` returned False after ``result.history[-1]`` (it left the batch)."""

    result: FitResult
    error: TrainingError | None = None
    stopped: bool = False
    #: how many members trained in its batched model (1: trained alone with ``fit``)
    batch: int = 1


class _Unsupported(Exception):
    """Why a member cannot be batched (the INFO log of its fallback)."""


# --- templates ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Chain:
    """A member's module, its chain of submodules, its template key and its widths (input, each node's
    output)."""

    root: nn.Module
    modules: tuple[nn.Module, ...]
    key: tuple[Any, ...]
    widths: tuple[int, ...]


def _graph_of(module: nn.Module) -> fx.GraphModule:
    if isinstance(module, fx.GraphModule):
        return module
    try:
        return fx.symbolic_trace(module)
    except Exception as exc:  # any tracing failure means "not batchable"
        raise _Unsupported(f"cannot trace {type(module).__name__}: {exc}") from exc


def _quant_key(module: nn.Module, kind: str) -> tuple[tuple[str, str, str], ...]:
    if not isinstance(module, QuantizedModule):
        return ()
    keys = []
    for operand, spec in sorted(module.quant.items()):
        if operand not in _OPERANDS[kind]:
            raise _Unsupported(f"{type(module).__name__} quantizes an unknown operand {operand!r}")
        if not isinstance(spec.quantizer, IntegerQuantizer):
            raise _Unsupported(f"quantizer {spec.quantizer.name!r} (only 'integer' is batched)")
        if operand == "bias" and getattr(module, "bias", None) is None:
            continue
        keys.append((operand, spec.round, spec.overflow))
    return tuple(keys)


def _chain(module: nn.Module) -> _Chain:
    """The member's chain, or :class:`_Unsupported` with the reason."""
    gm = _graph_of(module)
    nodes = list(gm.graph.nodes)
    if len(nodes) < 3 or nodes[0].op != "placeholder" or nodes[-1].op != "output":
        raise _Unsupported("the graph is not a chain x → modules → output")
    if sum(n.op == "placeholder" for n in nodes) != 1:
        raise _Unsupported("the graph has more than one input")
    modules: list[nn.Module] = []
    key: list[Any] = []
    prev = nodes[0]
    for node in nodes[1:-1]:
        if node.op != "call_module":
            raise _Unsupported(f"node {node.name} is a {node.op} ({node.target}), not a module call")
        if node.args != (prev,) or node.kwargs or len(prev.users) != 1:
            raise _Unsupported(f"node {node.name} is not part of a chain")
        sub = gm.get_submodule(str(node.target))
        kind = _KINDS.get(type(sub))
        if kind is None:
            raise _Unsupported(f"node {node.name} is a {type(sub).__name__}")
        node_key: tuple[Any, ...] = (kind, _quant_key(sub, kind))
        if kind == "linear":
            assert isinstance(sub, nn.Linear)
            node_key += (sub.bias is not None,)
        elif kind == "bn":
            assert isinstance(sub, nn.BatchNorm1d)
            if not (sub.affine and sub.track_running_stats) or sub.momentum is None:
                raise _Unsupported(f"BatchNorm {node.name} without affine/running statistics/float momentum")
            node_key += (float(sub.momentum), float(sub.eps))
        modules.append(sub)
        key.append(node_key)
        prev = node
    out = nodes[-1]
    if out.args != (prev,) or len(prev.users) != 1:
        raise _Unsupported("the output is not the last module's")
    params = [p for m in modules for p in m.parameters()]
    if any(not p.requires_grad for p in params):
        raise _Unsupported("a parameter is frozen")
    if any(p.dtype != torch.float32 for p in params):
        raise _Unsupported("a parameter is not float32")
    if len({id(p) for p in params}) != len(params):
        raise _Unsupported("parameters are shared between layers")
    widths = _widths(modules)
    has_bn = any(isinstance(m, _BatchNorm) for m in module.modules())  # fit's one-row-batch rule
    return _Chain(module, tuple(modules), (has_bn, widths[0], widths[-1], tuple(key)), widths)


def _widths(modules: Sequence[nn.Module]) -> tuple[int, ...]:
    first = next((m for m in modules if isinstance(m, nn.Linear | nn.BatchNorm1d)), None)
    if first is None:
        raise _Unsupported("no Linear or BatchNorm1d fixes the input width")
    width = first.in_features if isinstance(first, nn.Linear) else first.num_features
    widths = [width]
    for m in modules:
        if isinstance(m, nn.Linear):
            if m.in_features != width:
                raise _Unsupported("a Linear's input width does not match its producer")
            width = m.out_features
        elif isinstance(m, nn.BatchNorm1d) and m.num_features != width:
            raise _Unsupported("a BatchNorm's width does not match its producer")
        widths.append(width)
    return tuple(widths)


# --- the batched integer quantizer ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _BQuant:
    """One operand's per-member integer quantization: :func:`~netcarve.ir.fixedpoint.fixed_quantize` with a
    grid whose tensors are shaped to broadcast against the operand (one row per member)."""

    round: str
    overflow: str
    grid: FixedGrid

    @staticmethod
    def of(specs: Sequence[QuantSpec], dims: int, device: torch.device) -> _BQuant:
        shape = (len(specs),) + (1,) * (dims - 1)

        def t(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device).view(shape)

        grid = FixedGrid.of(
            t([s.width for s in specs]), t([s.frac_width or 0 for s in specs]), t([s.signed for s in specs]),
            device=device,
        )  # fmt: skip
        return _BQuant(specs[0].round, specs[0].overflow, grid)

    def select(self, idx: torch.Tensor) -> _BQuant:
        return _BQuant(self.round, self.overflow, self.grid.select(idx))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return fixed_quantize(x, self.grid, self.round, self.overflow)


# --- batched layers -------------------------------------------------------------------------------------------
@dataclass
class _Layer:
    """One node of the stacked model: its kind, stacked parameters with their padding masks, quantizers and
    (BatchNorm) running statistics."""

    kind: str
    quant: dict[str, _BQuant] = field(default_factory=dict)
    params: dict[str, nn.Parameter] = field(default_factory=dict)
    masks: dict[str, torch.Tensor | None] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    momentum: float = 0.0
    eps: float = 0.0
    forwards: int = 0  # training forwards so far (num_batches_tracked increments)

    def q(self, operand: str, x: torch.Tensor) -> torch.Tensor:
        quant = self.quant.get(operand)
        return x if quant is None else quant(x)

    def forward(self, x: torch.Tensor, training: bool, owned: bool) -> tuple[torch.Tensor, bool]:
        """``x`` ``[K, F, B]`` → (output, whether the output may be changed in place: made here and not saved
        for backward, so the next ReLU runs in place and writes no new tensor)."""
        if self.kind == "identity":
            return x, owned
        if "data_in" in self.quant:
            x, owned = self.q("data_in", x), True
        if self.kind == "relu":
            y = x.relu_() if owned else torch.relu(x)  # ReLU's backward keeps its output
        elif self.kind == "linear":
            w = self.q("weight", self.params["weight"])
            bias = self.params.get("bias")
            y = torch.bmm(w, x) if bias is None else torch.baddbmm(self.q("bias", bias).unsqueeze(2), w, x)
        else:
            k, f, b = x.shape
            gamma = self.q("weight", self.params["weight"]).reshape(k * f)
            beta = self.q("bias", self.params["bias"]).reshape(k * f)
            if training:
                self.forwards += 1
            y = F.batch_norm(
                x.reshape(1, k * f, b),  # statistics per (member, feature) over the batch
                self.buffers["running_mean"].view(k * f),
                self.buffers["running_var"].view(k * f),
                gamma,
                beta,
                training,
                self.momentum,
                self.eps,
            ).view(k, f, b)
        if "data_out" in self.quant:
            return self.q("data_out", y), True
        return y, self.kind != "relu"

    def select(self, idx: torch.Tensor) -> None:
        """Keep the members ``idx`` (in place)."""
        self.quant = {op: q.select(idx) for op, q in self.quant.items()}
        self.params = {n: nn.Parameter(p.detach().index_select(0, idx)) for n, p in self.params.items()}
        self.masks = {n: None if m is None else m.index_select(0, idx) for n, m in self.masks.items()}
        self.buffers = {n: b.index_select(0, idx) for n, b in self.buffers.items()}


def _region(pos: int, shape: Sequence[int]) -> tuple[int | slice, ...]:
    """The index of member ``pos``'s unpadded ``shape`` in a stacked tensor."""
    return (pos, *(slice(0, s) for s in shape))


def _stack(tensors: Sequence[torch.Tensor], shape: tuple[int, ...], fill: float = 0.0) -> torch.Tensor:
    out = torch.full((len(tensors), *shape), fill, dtype=tensors[0].dtype, device=tensors[0].device)
    for i, t in enumerate(tensors):
        out[_region(i, t.shape)] = t.detach()
    return out


def _mask(tensors: Sequence[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor | None:
    if all(tuple(t.shape) == shape for t in tensors):
        return None
    return _stack([torch.ones_like(t) for t in tensors], shape)


def _build_layer(mods: Sequence[nn.Module], kind: str, in_w: int, out_w: int, device: torch.device) -> _Layer:
    layer = _Layer(kind)
    first = mods[0]
    if isinstance(first, QuantizedModule):
        for operand in first.quant:
            if operand == "bias" and getattr(first, "bias", None) is None:
                continue
            specs = [m.quant[operand] for m in mods if isinstance(m, QuantizedModule)]
            dims = 3 if operand in ("data_in", "data_out") or (kind == "linear" and operand == "weight") else 2
            layer.quant[operand] = _BQuant.of(specs, dims, device)
    shapes: dict[str, tuple[int, ...]] = {}
    if kind == "linear":
        shapes = {"weight": (out_w, in_w), "bias": (out_w,)}
    elif kind == "bn":
        shapes = {"weight": (out_w,), "bias": (out_w,)}
    for name, shape in shapes.items():
        tensors = [getattr(m, name) for m in mods]
        if tensors[0] is None:
            continue
        layer.params[name] = nn.Parameter(_stack(tensors, shape))
        layer.masks[name] = _mask(tensors, shape)
    if kind == "bn":
        bn = first
        assert isinstance(bn, nn.BatchNorm1d)
        layer.momentum, layer.eps = float(bn.momentum or 0.0), bn.eps
        layer.buffers["running_mean"] = _stack([m.running_mean for m in mods], (out_w,))  # type: ignore[misc]
        layer.buffers["running_var"] = _stack([m.running_var for m in mods], (out_w,), fill=1.0)  # type: ignore[misc]
    return layer


# --- one group ------------------------------------------------------------------------------------------------
class _Group:
    """Members sharing a template, trained as one stacked model."""

    def __init__(self, members: list[int], chains: list[_Chain]) -> None:
        self.members = members  # indices into the caller's list, in stack order
        self.chains = chains
        self.padded = tuple(max(c.widths[i] for c in chains) for i in range(len(chains[0].widths)))
        self.device = next((p.device for m in chains[0].modules for p in m.parameters()), torch.device("cpu"))
        kinds = [k[0] for k in chains[0].key[3]]
        self.layers = [
            _build_layer([c.modules[i] for c in chains], kind, self.padded[i], self.padded[i + 1], self.device)
            for i, kind in enumerate(kinds)
        ]
        self.start_batches = [
            [int(c.modules[i].num_batches_tracked) if kind == "bn" else 0 for i, kind in enumerate(kinds)]  # type: ignore[arg-type]
            for c in chains
        ]
        self.has_bn = bool(chains[0].key[0])
        #: the optimizer of the last members trained (kept for inspection)
        self.optimizer: Stepper | None = None

    def __len__(self) -> int:
        return len(self.members)

    def container(self) -> nn.Module:
        holder = nn.Module()
        holder.params = nn.ParameterList([p for layer in self.layers for p in layer.params.values()])
        return holder

    def param_masks(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        return [
            (p, mask)
            for layer in self.layers
            for name, p in layer.params.items()
            if (mask := layer.masks[name]) is not None
        ]

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """Rows ``x`` ``[B, F]`` → every member's logits, features-major ``[K, C, B]``."""
        h, owned = x.t().unsqueeze(0).expand(len(self), x.shape[1], x.shape[0]), False
        for layer in self.layers:
            h, owned = layer.forward(h, training, owned)
        return h

    def write_back(self, pos: int) -> None:
        """Copy member ``pos`` (stack position) into its module, unpadded; eval mode."""
        chain = self.chains[pos]
        with torch.no_grad():
            for i, (layer, module) in enumerate(zip(self.layers, chain.modules, strict=True)):
                for name, p in layer.params.items():
                    target = getattr(module, name)
                    target.copy_(p[_region(pos, target.shape)])
                for name, b in layer.buffers.items():
                    target = getattr(module, name)
                    target.copy_(b[pos, : target.shape[0]])
                if layer.kind == "bn":
                    module.num_batches_tracked.fill_(self.start_batches[pos][i] + layer.forwards)  # type: ignore[operator]
        chain.root.eval()

    def select(self, keep: list[int]) -> None:
        idx = torch.tensor(keep, dtype=torch.int64, device=self.device)
        for layer in self.layers:
            layer.select(idx)
        self.members = [self.members[i] for i in keep]
        self.chains = [self.chains[i] for i in keep]
        self.start_batches = [self.start_batches[i] for i in keep]


def _transfer_state(old: Stepper, new: Stepper, old_params: list[nn.Parameter], idx: torch.Tensor) -> None:
    """Move the optimizer state of the kept members ``idx`` from ``old`` into ``new`` (same parameter order)."""
    new.lr = old.lr
    if isinstance(old, FusedAdam) and isinstance(new, FusedAdam):
        new._exp_avg = [s.index_select(0, idx) for s in old._exp_avg]
        new._exp_avg_sq = [s.index_select(0, idx) for s in old._exp_avg_sq]
        new._steps = [s.clone() for s in old._steps]
    elif isinstance(old, TorchStepper) and isinstance(new, TorchStepper):
        new_params = [p for group in new.optimizer.param_groups for p in group["params"]]
        for p_old, p_new in zip(old_params, new_params, strict=True):
            state = old.optimizer.state.get(p_old)
            if not state:
                continue
            new.optimizer.state[p_new] = {
                k: (v.index_select(0, idx) if v.shape == p_old.shape else v.clone())
                if isinstance(v, torch.Tensor)
                else v
                for k, v in state.items()
            }
    else:
        raise TrainingError(f"cannot remove members from a population trained by {type(old).__name__}")


# --- partition by width ---------------------------------------------------------------------------------------
#: cost model of one step of a batched group, in units of its fixed cost (the op launches of one step), per
#: member and per padded Linear weight at batch 256. Fitted (least squares) to one step on 1 thread of
#: jsc-three-linear-layers groups, K = 1, 4, 12, 32 members at hidden widths 16, 32, 64, 96: float ≈ 0.31 ms
#: + K · (0.026 ms + 0.033 µs per padded weight); integer-quantized: about the same ratios.
STEP_MEMBER_COST, STEP_WEIGHT_COST = 0.08, 1e-4
#: the fixed cost of a batch grows by this per quantized operand of the template (its quantizer's ops): with
#: 1 + 0.25 · 9 for integer-quantized jsc-three-linear-layers (1.6 ms vs 0.5 ms), 32 members of widths 16…64
#: train faster in fewer batches (measured: one batch 7.0 s an epoch of 100k rows, 4 batches 8.0 s)
STEP_QUANT_COST = 0.25


def _padded_weights(widths: Sequence[Sequence[int]], kinds: Sequence[str]) -> int:
    """Linear weights of the model padded to the largest of ``widths`` (member node widths) at each node."""
    top = [max(w[i] for w in widths) for i in range(len(widths[0]))]
    return sum(top[i] * top[i + 1] for i, kind in enumerate(kinds) if kind == "linear")


def _batch_cost(key: tuple[Any, ...], top: Sequence[int], k: int, batch_size: int) -> float:
    """Modelled step time (on one thread) of a batch of ``k`` members of template ``key`` padded to widths
    ``top``, in units of an unquantized batch's fixed cost: fixed cost (more per quantized operand), and per
    member a member cost and the padded weights' cost (the matrix products)."""
    kinds = [node[0] for node in key[3]]
    fixed = 1 + STEP_QUANT_COST * sum(len(node[1]) for node in key[3])
    per_weight = STEP_WEIGHT_COST * _padded_weights([top], kinds)
    return fixed + k * batch_size / 256 * (STEP_MEMBER_COST + per_weight)


def _partition(members: list[tuple[int, _Chain]], batch_size: int) -> list[list[tuple[int, _Chain]]]:
    """Split a template group into batches of similar widths: padding a narrow member to a wide one costs
    the wide one's compute. The modelled step time of a batch is :func:`_batch_cost` (one thread: with
    several, the batches train side by side, each on a share of them). Starting from one batch
    per member, the two batches whose merge lowers the total most are merged until no merge lowers it. (A
    width search's grid has one width per layer: Lab 4's 36 candidates cut into runs of one size order cost
    7.5 ms a step by the model, merged this way 6.4 ms.)"""
    key = members[0][1].key
    kinds = [node[0] for node in key[3]]

    def cost(top: tuple[int, ...], k: int) -> float:
        return _batch_cost(key, top, k, batch_size)

    batches: dict[int, tuple[tuple[int, ...], list[tuple[int, _Chain]]]] = {
        n: (m[1].widths, [m]) for n, m in enumerate(members)
    }

    def delta(a: int, b: int) -> float:
        (top_a, ms_a), (top_b, ms_b) = batches[a], batches[b]
        top = tuple(map(max, top_a, top_b))
        return cost(top, len(ms_a) + len(ms_b)) - cost(top_a, len(ms_a)) - cost(top_b, len(ms_b))

    heap = [(delta(a, b), a, b) for a in batches for b in batches if a < b]
    heapq.heapify(heap)
    fresh = len(members)
    while heap:
        gain, a, b = heapq.heappop(heap)
        if gain >= 0:
            break
        if a not in batches or b not in batches:
            continue  # one of them was merged already
        (top_a, ms_a), (top_b, ms_b) = batches.pop(a), batches.pop(b)
        batches[fresh] = (tuple(map(max, top_a, top_b)), ms_a + ms_b)
        for other in batches:
            if other != fresh:
                heapq.heappush(heap, (delta(other, fresh), other, fresh))
        fresh += 1
    chunks = [sorted(ms, key=lambda m: m[0]) for _, ms in batches.values()]
    return sorted(chunks, key=lambda ms: (_padded_weights([m[1].widths for m in ms], kinds), ms[0][0]))


# --- training -------------------------------------------------------------------------------------------------
def _member_losses(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy ``[K, B]`` of logits ``[K, C, B]`` (classes as dim 1: the same arithmetic as on
    ``[K·B, C]`` rows but about 4x faster, measured with K = 32, B = 256, C = 5)."""
    return F.cross_entropy(out, y.expand(out.shape[0], -1), reduction="none")


def _threads(requested: int | None) -> int:
    if requested is not None:
        return requested
    return DEFAULT_THREADS if DEFAULT_THREADS is not None else torch.get_num_threads()


def _evaluate(group: _Group, split: Split) -> tuple[list[float], list[float]]:
    """Per-member validation loss and accuracy (eval mode, no grad), as :func:`evaluate` computes them."""
    n = len(split)
    if n == 0:
        raise TrainingError("cannot evaluate on an empty split")
    k = len(group)
    loss_sum = torch.zeros(k, dtype=torch.float64, device=group.device)
    correct = torch.zeros(k, dtype=torch.int64, device=group.device)
    with torch.no_grad():
        for start in range(0, n, EVAL_BATCH):
            xb, yb = split.x[start : start + EVAL_BATCH], split.y[start : start + EVAL_BATCH]
            out = group.forward(xb, training=False)
            loss_sum += _member_losses(out, yb).sum(1).double()
            correct += (out.max(dim=1).indices == yb).sum(1)  # as argmax (first maximum), ~15x faster here
    return (loss_sum / n).tolist(), (correct.float() / n).tolist()  # float32 accuracy, as evaluate's


def _train_group(
    group: _Group,
    splits: TensorSplits,
    cfg: TrainConfig,
    validate: bool,
    keep_going: KeepGoing | None,
    outcomes: dict[int, MemberOutcome],
    stop: threading.Event | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> None:
    """Train ``group``'s members together, each outcome into ``outcomes``; ``stop`` set ends it at the next
    step with :class:`_Stopped` (another batch trained beside it failed or was interrupted). ``on_step(done,
    total)`` is called every ``cfg.log_every_n_steps`` steps and after the last one, as :func:`fit` does."""
    plan = epoch_plan(splits, cfg, group.has_bn)
    started = list(group.members)
    train, n = plan.train, len(plan.train)
    steps_per_epoch, total_steps = plan.steps_per_epoch, plan.total_steps

    def optimizer_of(holder: nn.Module) -> tuple[Stepper, Any]:
        return optimizer_for(holder, cfg, total_steps)

    holder = group.container()
    optimizer, schedule = optimizer_of(holder)
    masks = group.param_masks()
    generator = torch.Generator().manual_seed(cfg.seed)
    results = {m: FitResult() for m in group.members}
    best = dict.fromkeys(group.members, -1.0)
    step = 0
    bs = cfg.batch_size
    for epoch in range(cfg.max_epochs):
        if step >= total_steps or len(group) == 0:
            break
        perm = torch.randperm(n, generator=generator)
        xs, ys = train.x[perm], train.y[perm]
        steps = min(steps_per_epoch, total_steps - step)
        seen = min(n, steps * bs)
        k = len(group)
        loss_sum = torch.zeros(k, dtype=torch.float64, device=group.device)
        correct = torch.zeros(k, dtype=torch.int64, device=group.device)
        for i in range(steps):
            if stop is not None and stop.is_set():
                raise _Stopped
            lo, hi = i * bs, min((i + 1) * bs, seen)
            yb = ys[lo:hi]
            out = group.forward(xs[lo:hi], training=True)
            member_loss = _member_losses(out, yb).mean(1)
            optimizer.zero_grad()
            member_loss.sum().backward()
            for p, mask in masks:
                if p.grad is not None:
                    p.grad.mul_(mask)
            if schedule is not None:
                optimizer.lr = schedule.lr(step + i)
            optimizer.step()
            loss_sum.add_(member_loss.detach().double(), alpha=hi - lo)
            correct += (out.detach().max(dim=1).indices == yb).sum(1)
            done = step + i + 1
            if on_step is not None and (done % cfg.log_every_n_steps == 0 or done == total_steps):
                on_step(done, total_steps)
        step += steps
        train_loss = (loss_sum / max(seen, 1)).tolist()
        train_acc = (correct.double() / max(seen, 1)).tolist()
        if validate:
            val_loss, val_acc = _evaluate(group, splits.val)
        else:
            val_loss, val_acc = [math.nan] * k, [math.nan] * k
        leaving: list[int] = []
        for pos, member in enumerate(group.members):
            result = results[member]
            result.steps = step
            if not math.isfinite(train_loss[pos]):
                error = TrainingError(f"training diverged: loss is {train_loss[pos]} in epoch {epoch}")
                outcomes[member] = MemberOutcome(result, error)
                leaving.append(pos)
                continue
            record = EpochRecord(
                epoch, step, train_loss[pos], train_acc[pos], val_loss[pos], val_acc[pos], optimizer.lr
            )
            result.history.append(record)
            if validate and val_acc[pos] > best[member]:
                best[member], result.best_epoch = val_acc[pos], epoch
            log.debug("member %d, epoch %d: %s", member, epoch, record)
            if keep_going is not None and not keep_going(member, record):
                outcomes[member] = MemberOutcome(result, stopped=True)
                leaving.append(pos)
        if leaving:
            for pos in leaving:
                group.write_back(pos)
            keep = [pos for pos in range(k) if pos not in leaving]
            if not keep:
                group.select(keep)
                break
            old_params = list(holder.parameters())
            group.select(keep)
            holder = group.container()
            new_optimizer, schedule = optimizer_of(holder)
            _transfer_state(
                optimizer, new_optimizer, old_params, torch.tensor(keep, dtype=torch.int64, device=group.device)
            )
            optimizer = new_optimizer
            masks = group.param_masks()
    group.optimizer = optimizer
    for pos, member in enumerate(group.members):
        results[member].steps = step
        group.write_back(pos)
        outcomes[member] = MemberOutcome(results[member])
    for member in started:
        outcomes[member].batch = len(started)


class _Progress:
    """A population's steps summed over its batches and lone members for ``on_step(done, total)``; a unit
    (a batch or a member trained alone) that has not reported yet counts the largest total reported."""

    def __init__(self, units: int, on_step: Callable[[int, int], None]) -> None:
        self.units, self.on_step = units, on_step
        self.done: dict[int, int] = {}
        self.total: dict[int, int] = {}
        self.lock = threading.Lock()

    def unit(self, index: int) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            with self.lock:
                self.done[index], self.total[index] = done, total
                waiting = (self.units - len(self.total)) * max(self.total.values())
                self.on_step(sum(self.done.values()), sum(self.total.values()) + waiting)

        return report


def _unit_step(progress: _Progress | None, index: int) -> Callable[[int, int], None] | None:
    return None if progress is None else progress.unit(index)


class _Stopped(Exception):
    """A batch trained side by side with another that failed or was interrupted stops."""


def _lanes(batched: list[_Group], n: int, batch_size: int) -> list[list[_Group]]:
    """``batched`` shared among ``n`` lanes, longest modelled step first to the least loaded lane."""

    def work(group: _Group) -> float:
        return _batch_cost(group.chains[0].key, group.padded, len(group), batch_size)

    lanes: list[list[_Group]] = [[] for _ in range(min(n, len(batched)))]
    loads = [0.0] * len(lanes)
    for group in sorted(batched, key=work, reverse=True):
        lane = loads.index(min(loads))
        lanes[lane].append(group)
        loads[lane] += work(group)
    return lanes


def _train_side_by_side(
    batched: list[_Group],
    threads: int,
    splits: TensorSplits,
    cfg: TrainConfig,
    validate: bool,
    keep_going: KeepGoing | None,
    outcomes: dict[int, MemberOutcome],
    stop: threading.Event | None = None,
    progress: _Progress | None = None,
) -> None:
    """Train the batches in up to ``threads`` lanes at once, the threads shared among them (2 threads: two
    lanes of one): a batch's elementwise ops and launches gain little from a second thread, two batches
    side by side gain from two cores. ``keep_going`` is called by one lane at a time. An error in one lane
    stops the others at their next step and is raised here; so is an interrupt of the waiting caller.
    ``stop`` set stops every lane."""
    lock, stop = threading.Lock(), stop if stop is not None else threading.Event()
    guarded: KeepGoing | None = None
    if keep_going is not None:
        inner = keep_going

        def guarded(member: int, record: EpochRecord) -> bool:
            with lock:
                return inner(member, record)

    lanes = _lanes(batched, threads, cfg.batch_size)

    def run(lane: list[_Group], own: int) -> None:
        torch.set_num_threads(own)  # this thread's own setting
        for group in lane:
            log.debug("training %d members as one batched model (widths %s, %d of %d threads in %d lanes)",
                      len(group), group.padded, own, threads, len(lanes))  # fmt: skip
            on_step = _unit_step(progress, batched.index(group))
            _train_group(group, splits, cfg, validate, guarded, outcomes, stop, on_step)

    before = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(len(lanes), thread_name_prefix="netcarve-population") as pool:
            # the threads shared among the lanes (2 threads, 3 batches: 2 lanes of 1 thread)
            share = [threads // len(lanes) + (i < threads % len(lanes)) for i in range(len(lanes))]
            futures = [pool.submit(run, lane, own) for lane, own in zip(lanes, share, strict=True)]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)  # an error in any lane ends the wait
                for future in sorted(done, key=lambda f: f.exception() is None):
                    future.result()  # the failed lane's error first
            except BaseException:
                stop.set()
                raise
    finally:
        torch.set_num_threads(before)  # threads started later take the last value set


def _fit_alone(
    index: int,
    module: nn.Module,
    splits: TensorSplits,
    cfg: TrainConfig,
    validate: bool,
    keep_going: KeepGoing | None,
    num_threads: int | None,
    on_step: Callable[[int, int], None] | None = None,
) -> MemberOutcome:
    """``torch.manual_seed(cfg.seed); fit(module, …)``, its error caught into the outcome."""
    history: list[EpochRecord] = []
    stopped = False

    def on_epoch(record: EpochRecord, is_best: bool) -> None:
        history.append(record)

    def member_keep_going(record: EpochRecord) -> bool:
        nonlocal stopped
        assert keep_going is not None
        stopped = not keep_going(index, record)
        return not stopped

    torch.manual_seed(cfg.seed)
    try:
        result = fit(
            module,
            splits,
            cfg,
            on_epoch=on_epoch,
            validate=validate,
            num_threads=num_threads,
            keep_going=member_keep_going if keep_going is not None else None,
            on_step=steps_only(on_step),
        )
    except TrainingError as exc:
        module.eval()
        steps = history[-1].steps if history else 0
        return MemberOutcome(FitResult(history, steps=steps), exc)
    return MemberOutcome(result, stopped=result.stopped)


def fit_population(
    modules: Sequence[nn.Module],
    splits: TensorSplits,
    cfg: TrainConfig,
    *,
    validate: bool = False,
    keep_going: KeepGoing | None = None,
    num_threads: int | None = None,
    labels: Sequence[str] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> list[MemberOutcome]:
    """Train each of ``modules`` in place (ending in eval mode) as ``torch.manual_seed(cfg.seed); fit(module,
    splits, cfg, validate=validate)`` would, batching the members that share a template (module docstring).

    ``validate`` or ``keep_going`` given: every epoch's record holds the member's validation loss and
    accuracy. ``keep_going(i, record)`` returning False removes member ``i`` after that epoch. A member that
    diverges gets its ``TrainingError`` in its outcome; the others are unaffected. The outcome of a diverged
    member has the records of the epochs before and the steps it ran (the diverged epoch's included).
    ``labels`` name the members in log messages (e.g. their trial numbers). ``on_step(done, total)``: the
    steps of every batch and lone member summed (each reports as :func:`fit`'s ``on_step`` does), for a
    progress bar; called from the training threads, one at a time.
    """
    validate = validate or keep_going is not None

    def name(i: int) -> str:
        return labels[i] if labels is not None else f"population member {i}"

    outcomes: dict[int, MemberOutcome] = {}
    groups: dict[tuple[Any, ...], list[tuple[int, _Chain]]] = {}
    alone: list[int] = []
    for i, module in enumerate(modules):
        try:
            chain = _chain(module)
        except _Unsupported as why:
            log.info("%s is trained alone: %s", name(i), why)
            alone.append(i)
            continue
        groups.setdefault(chain.key, []).append((i, chain))
    batched: list[_Group] = []
    threads = _threads(num_threads)
    for members in groups.values():
        if len(members) == 1:
            log.info("%s is trained alone: no other candidate has its layer template", name(members[0][0]))
            alone.append(members[0][0])
        else:
            for chunk in _partition(members, cfg.batch_size):
                batched.append(_Group([i for i, _ in chunk], [c for _, c in chunk]))
    progress = _Progress(len(batched) + len(alone), on_step) if on_step is not None else None
    if len(batched) > 1 and threads > 1:
        _train_side_by_side(batched, threads, splits, cfg, validate, keep_going, outcomes, progress=progress)
    else:
        for n, group in enumerate(batched):
            log.debug("training %d members as one batched model (widths %s, %d threads)", len(group), group.padded,
                      threads)  # fmt: skip
            with training_threads(group.container(), threads):
                _train_group(group, splits, cfg, validate, keep_going, outcomes, on_step=_unit_step(progress, n))
    for n, i in enumerate(sorted(alone)):
        report = _unit_step(progress, len(batched) + n)
        outcomes[i] = _fit_alone(i, modules[i], splits, cfg, validate, keep_going, num_threads, report)
    return [outcomes[i] for i in range(len(modules))]


def member_bytes(module: nn.Module, batch_size: int) -> int:
    """Estimated training memory of one member in a population (float32 bytes): parameters, gradients and
    two Adam states (4 × params), plus one batch's activations: per node, its output, the output's gradient
    and what autograd saves (quantizer masks, ReLU/BatchNorm inputs), about 4 tensors of batch × width."""
    params = sum(p.numel() for p in module.parameters())
    try:
        widths: Sequence[int] = _chain(module).widths
    except _Unsupported:  # not batchable: every Linear/BatchNorm's output and input
        widths = [
            w
            for m in module.modules()
            for w in (
                (m.in_features, m.out_features)
                if isinstance(m, nn.Linear)
                else (m.num_features,)
                if isinstance(m, nn.BatchNorm1d)
                else ()
            )
        ]
    return 4 * (4 * params + 4 * batch_size * sum(widths))
