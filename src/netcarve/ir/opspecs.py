"""The op-kind registry: one :class:`OpSpec` per op kind holds every kind-keyed fact of netcarve.

Kind names are MASE's type names, used by ``by = "type"`` configs (linear, conv2d, relu, …). Per kind:

- ``modules`` / ``functions`` / ``methods``: what an fx node must call to be of this kind (module classes
  are matched along the MRO, so a user subclass of ``nn.Linear`` is a ``linear``);
- ``width_attrs``: the module attributes holding its (in, out) width — a producer's, or a per-channel
  module's parameter count (BatchNorm: ``num_features`` twice), resized with its channels;
- ``channels``: how a width change crosses it (read by ``transforms/width/channels.py``):
  ``producer`` (Linear/Conv: a new channel group, resized by ``width_attrs``), ``per_channel`` (BatchNorm,
  pooling: stays in its input's group, BatchNorm's parameters follow), ``elementwise`` (ReLU, dropout…),
  ``join`` (add, mul: merges its operands' groups), ``flatten`` (channel ``c`` becomes the block of
  features ``c·S … c·S+S−1``, S the spatial size) and ``opaque`` (nothing passes);
- ``operands`` / ``quantized`` / ``default_quantized``: the quantizable operands, the quantized module
  class as an import string ``"package.module:Class"`` (resolved lazily by ``transforms/quantize/modules.py``
  so that ``ir`` never imports ``transforms``) or ``ELEMENTWISE`` for a generic elementwise quantized
  subclass built on demand, and whether the quantize pass's ``default`` entry applies to it;
- ``unsigned``: the quantize plan makes its ``data_in`` and ``data_out``, and the ``data_in`` of a node it
  feeds, unsigned (ReLU: its output is never negative, and a negative input becomes 0 either way);
- ``count`` / ``flops_per_element`` / ``aten``: the cost family (``mac``, ``elementwise``, ``pool``,
  ``free``; formulas in ``analysis/closed_form.py`` and ``analysis/aten_formulas.py``), the flops an
  elementwise kind spends per element and the ATen ops the dispatch counter charges to it;
- ``pool``: a ``pool`` kind's :class:`Pool` (how many trailing dims it pools, and whether its windows come
  from the input and output sizes — adaptive pooling — rather than a kernel); set exactly on ``pool`` kinds;
- ``input_shape``: how a first module of this kind gives a model's one-sample input shape (used when a
  pass is handed an ``nn.Module`` without ``input_shape``); ``None`` result = cannot tell;
- ``export``: its fixed-point firmware mapping (``netcarve.export.program``, which works on each sample
  flattened in channel-major order): ``dense`` (Linear: a constant matrix), ``conv`` (Conv1d/2d: the
  constant matrix of the convolution unrolled over the flattened input), ``relu``, ``max_pool`` (a max
  over index groups), ``avg_pool`` (a constant matrix; exact only for power-of-two divisors), ``affine``
  (BatchNorm: only as software preprocessing before the first quantizer; one after a Linear or Conv is
  folded into it by the ``fold_batchnorm`` pass first), ``reshape`` (Flatten, Unflatten: the identity on
  the flattened vector) or ``skip`` (elementwise identities); None: no mapping (exporting a graph with such
  a node is an error naming it).
- ``fold``: its part in BatchNorm folding (``transforms/fold.py``): a :class:`Fold` ``producer`` (Linear,
  Conv: a following batch norm of kind ``Fold.batch_norm`` folds into it when its output has rank
  ``Fold.rank``) or :data:`BATCH_NORM` (a batch norm that can be folded); None: neither;
- ``batched``: how population training (``netcarve.train.population``) stacks the kind's modules along a
  candidate dimension: an import string ``"package.module:NAME"`` naming a ``BatchedKind`` (its stacked
  parameters and buffers, template checks and batched forward; the built-in ones are in
  ``netcarve/train/population/layers.py``), resolved lazily there so that ``ir`` never imports ``train``.
  None: a model with such a node trains alone (logged);
- ``reshapes``: its functional or method call may change the batch dimension (``x.view(1, -1)``), so the
  closed-form analysis leaves such calls to the dispatch counter;
- ``start_dim``: it flattens from a ``start_dim`` (the module's attribute; a call's argument 1 or keyword,
  default 0 as ``torch.flatten``), so it keeps the batch dimension only when that is ≥ 1 (the closed-form
  analysis leaves the others to the dispatch counter).

A new kind is one :func:`register_op` call; nothing else needs editing (tests/ir/test_opspecs.py checks
the registry's contract and registers ``hardtanh`` to prove it).
"""

from __future__ import annotations

import importlib
import operator
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from netcarve.errors import ModelError
from netcarve.registry import Registry

Channels = Literal["producer", "per_channel", "elementwise", "join", "flatten", "opaque"]
Count = Literal["mac", "elementwise", "pool", "free"]
#: how a kind maps to fixed-point firmware (``netcarve.export.program``): a constant matrix-vector product
#: (Linear; a convolution unrolled; an average pool), a ReLU, a max over index groups, a per-feature affine
#: (only as software preprocessing before the input port), a reshape of the flattened vector, or nothing
Export = Literal["dense", "conv", "relu", "max_pool", "avg_pool", "affine", "reshape", "skip"]
ShapeRule = Callable[[nn.Module], "tuple[int, ...] | None"]


@dataclass(frozen=True)
class Fold:
    """A kind's part in BatchNorm folding: a ``batch_norm`` (``BATCH_NORM``), or a ``producer`` into which
    a following batch norm of kind ``batch_norm`` folds when the producer's output has rank ``rank``
    (``output`` names that shape in the reason a batch norm is kept)."""

    role: Literal["producer", "batch_norm"]
    batch_norm: str = ""
    rank: int = 0
    output: str = ""


#: ``OpSpec.fold`` of a batch norm
BATCH_NORM = Fold("batch_norm")


@dataclass(frozen=True)
class Pool:
    """A pooling kind's geometry: it pools the last ``dims`` dims, over windows from its kernel or, when
    ``adaptive``, from the input and output sizes."""

    dims: int
    adaptive: bool = False


#: every operand a quantized module may quantize
ALL_OPERANDS = ("data_in", "weight", "bias", "data_out")
UNARY_OPERANDS = ("data_in", "data_out")
#: ``OpSpec.quantized`` value: quantize with a generic subclass that wraps the float module's forward
ELEMENTWISE = "elementwise"
_QMODULES = "netcarve.transforms.quantize.modules"
_BATCHED = "netcarve.train.population.layers"
#: every ATen variant of batch norm (both batch_norm kinds charge 4 flops per element to them)
_BATCH_NORM_ATEN = (
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional",
    "_batch_norm_with_update",
    "_batch_norm_no_update",
)


@dataclass(frozen=True)
class OpSpec:
    kind: str
    modules: tuple[type[nn.Module], ...] = ()
    functions: tuple[Callable[..., Any], ...] = ()
    methods: tuple[str, ...] = ()
    channels: Channels = "opaque"
    width_attrs: tuple[str, str] | None = None
    operands: tuple[str, ...] = ()
    quantized: str | None = None
    default_quantized: bool = False
    unsigned: bool = False
    count: Count | None = None
    flops_per_element: int = 0
    aten: tuple[str, ...] = ()
    pool: Pool | None = None
    input_shape: ShapeRule | None = None
    export: Export | None = None
    fold: Fold | None = None
    batched: str | None = None
    reshapes: bool = False
    start_dim: bool = False
    description: str = ""

    @property
    def quantizable(self) -> bool:
        return bool(self.operands)

    @property
    def changes_width(self) -> bool:
        return self.channels == "producer"


OPS: Registry[OpSpec] = Registry("op kind")
_BY_MODULE: dict[type[nn.Module], OpSpec] = {}
_BY_FUNCTION: dict[Any, OpSpec] = {}
_BY_METHOD: dict[str, OpSpec] = {}


def register_op(spec: OpSpec) -> OpSpec:
    """Add ``spec`` to :data:`OPS` and index its modules, functions and methods (each matched once)."""
    for cls in spec.modules:
        if cls in _BY_MODULE:
            raise ValueError(f"module class {cls.__name__} is already of kind {_BY_MODULE[cls].kind!r}")
    OPS.add(spec.kind, spec, description=spec.description)
    _BY_MODULE.update(dict.fromkeys(spec.modules, spec))
    _BY_FUNCTION.update(dict.fromkeys(spec.functions, spec))
    _BY_METHOD.update(dict.fromkeys(spec.methods, spec))
    return spec


def unregister_op(kind: str) -> None:
    """Remove a kind (for tests that register a temporary one)."""
    spec = OPS.get(kind)
    for cls in spec.modules:
        _BY_MODULE.pop(cls, None)
    for fn in spec.functions:
        _BY_FUNCTION.pop(fn, None)
    for name in spec.methods:
        _BY_METHOD.pop(name, None)
    OPS._entries.pop(kind)
    OPS._lookup.pop(kind)


def spec_of_class(cls: type) -> OpSpec | None:
    """The spec of a module class, resolved along its MRO (a quantized subclass finds its float class's)."""
    for base in cls.__mro__:
        spec = _BY_MODULE.get(base)
        if spec is not None:
            return spec
    return None


def spec_of_module(module: nn.Module) -> OpSpec | None:
    return spec_of_class(type(module))


def spec_of_function(fn: object) -> OpSpec | None:
    try:
        return _BY_FUNCTION.get(fn)
    except TypeError:  # unhashable target
        return None


def spec_of_method(name: str) -> OpSpec | None:
    return _BY_METHOD.get(name)


def spec_of_kind(kind: str) -> OpSpec | None:
    return OPS.get(kind) if kind in OPS else None


def is_exact_class(cls: type) -> bool:
    """True for a registered class itself (not a user subclass, whose forward may differ)."""
    return cls in _BY_MODULE


def exact_spec(cls: type) -> OpSpec | None:
    """The spec of a registered class itself or of its kind's named quantized class (``OpSpec.quantized``,
    compared by name: nothing is imported); None for anything else, a user subclass included (its forward
    may differ)."""
    spec = _BY_MODULE.get(cls)
    if spec is not None:
        return spec
    spec = spec_of_class(cls)
    if spec is not None and spec.quantized == f"{cls.__module__}:{cls.__qualname__}":
        return spec
    return None


def resolve(ref: str) -> Any:
    """The object an import string ``"package.module:NAME"`` names (``OpSpec.quantized``, ``OpSpec.batched``),
    imported on first use."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def infer_input_shape(module: nn.Module) -> tuple[int, ...] | None:
    """One sample's input shape from the first submodule whose spec has an input-shape rule (Linear →
    ``(in_features,)``, BatchNorm1d, Unflatten …); None when a rule cannot tell (a Conv) or none applies."""
    for sub in module.modules():
        spec = spec_of_module(sub)
        if spec is not None and spec.input_shape is not None:
            return spec.input_shape(sub)
    return None


def require_input_shape(module: nn.Module) -> tuple[int, ...]:
    """:func:`infer_input_shape`, or a ModelError asking for the shape: the one rule of both passes."""
    shape = infer_input_shape(module)
    if shape is None:
        raise ModelError(f"cannot infer the input shape of {type(module).__name__}: pass input_shape=(…)")
    return shape


def kinds(where: Callable[[OpSpec], bool] = lambda s: True) -> frozenset[str]:
    return frozenset(s.kind for s in (OPS.get(k) for k in OPS) if where(s))


class KindSet(Set[str]):
    """The live set of registered kinds whose spec satisfies ``where`` (sees kinds registered later)."""

    def __init__(self, where: Callable[[OpSpec], bool]) -> None:
        self._where = where

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, str) and kind in OPS and self._where(OPS.get(kind))

    def __iter__(self) -> Iterator[str]:
        return (k for k in OPS if self._where(OPS.get(k)))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"KindSet({sorted(self)})"


class OperandsView(Mapping[str, tuple[str, ...]]):
    """The live mapping quantizable kind → its quantizable operands, in registry order."""

    def __getitem__(self, kind: str) -> tuple[str, ...]:
        spec = spec_of_kind(kind)
        if spec is None or not spec.quantizable:
            raise KeyError(kind)
        return spec.operands

    def __iter__(self) -> Iterator[str]:
        return (k for k in OPS if OPS.get(k).quantizable)

    def __len__(self) -> int:
        return sum(1 for _ in self)


# --- input-shape rules ---------------------------------------------------------------------------------------
def _features(attr: str) -> ShapeRule:
    return lambda m: (int(getattr(m, attr)),)


def _unflatten_shape(module: nn.Module) -> tuple[int, ...] | None:
    dim, size = getattr(module, "dim", None), getattr(module, "unflattened_size", ())
    if dim != 1:
        return None
    n = 1
    for s in size:
        n *= int(s)
    return (n,)


def _mac(kind: str, module: type[nn.Module], fn: Callable[..., Any], attrs: tuple[str, str], **kw: Any) -> OpSpec:
    return OpSpec(
        kind,
        modules=(module,),
        functions=(fn,),
        channels="producer",
        width_attrs=attrs,
        operands=ALL_OPERANDS,
        default_quantized=True,
        count="mac",
        **kw,
    )


def _pool(
    kind: str,
    *modules: type[nn.Module],
    functions: tuple[Callable[..., Any], ...],
    aten: str,
    export: Export,
    pool: Pool,
) -> OpSpec:
    return OpSpec(
        kind,
        modules=modules,
        functions=functions,
        channels="per_channel",
        count="pool",
        aten=(aten,),
        export=export,
        pool=pool,
    )


_CONV = ("in_channels", "out_channels")
_BUILTIN = (
    _mac(
        "linear",
        nn.Linear,
        F.linear,
        ("in_features", "out_features"),
        quantized=f"{_QMODULES}:QuantizedLinear",
        input_shape=_features("in_features"),
        export="dense",
        fold=Fold("producer", "batch_norm1d", 2, "a (batch, features) vector"),
        batched=f"{_BATCHED}:LINEAR",
    ),
    *(
        _mac(
            kind,
            cls,
            fn,
            _CONV,
            quantized=f"{_QMODULES}:{q}",
            input_shape=lambda m: None,
            export="conv",
            fold=Fold("producer", bn, rank, output),
        )
        for kind, cls, fn, q, bn, rank, output in (
            ("conv1d", nn.Conv1d, F.conv1d, "QuantizedConv1d", "batch_norm1d", 3, "(batch, C, L)"),
            ("conv2d", nn.Conv2d, F.conv2d, "QuantizedConv2d", "batch_norm2d", 4, "(batch, C, H, W)"),
        )
    ),
    OpSpec(
        "batch_norm1d",
        modules=(nn.BatchNorm1d,),
        functions=(F.batch_norm,),
        channels="per_channel",
        width_attrs=("num_features", "num_features"),
        operands=ALL_OPERANDS,
        quantized=f"{_QMODULES}:QuantizedBatchNorm1d",
        count="elementwise",
        flops_per_element=4,
        aten=_BATCH_NORM_ATEN,
        input_shape=_features("num_features"),
        export="affine",
        fold=BATCH_NORM,
        batched=f"{_BATCHED}:BATCH_NORM",
    ),
    OpSpec(
        "batch_norm2d",
        modules=(nn.BatchNorm2d,),
        channels="per_channel",
        width_attrs=("num_features", "num_features"),
        operands=ALL_OPERANDS,
        quantized=f"{_QMODULES}:QuantizedBatchNorm2d",
        count="elementwise",
        flops_per_element=4,
        aten=_BATCH_NORM_ATEN,
        input_shape=lambda m: None,
        export="affine",
        fold=BATCH_NORM,
    ),
    OpSpec(
        "relu",
        modules=(nn.ReLU,),
        functions=(F.relu, torch.relu),
        methods=("relu",),
        channels="elementwise",
        operands=UNARY_OPERANDS,
        quantized=f"{_QMODULES}:QuantizedReLU",
        default_quantized=True,
        unsigned=True,
        count="elementwise",
        flops_per_element=1,
        aten=("relu", "relu_"),
        export="relu",
        batched=f"{_BATCHED}:RELU",
    ),
    OpSpec(
        "softmax",
        modules=(nn.Softmax,),
        functions=(F.softmax, torch.softmax),
        methods=("softmax",),
        count="elementwise",
        flops_per_element=5,
        aten=("_softmax", "_safe_softmax"),
    ),
    *(
        OpSpec(
            kind,
            functions=fns,
            methods=(kind,),
            channels="join",
            count="elementwise",
            flops_per_element=1,
            aten=(kind, f"{kind}_"),
        )
        for kind, fns in (
            ("add", (operator.add, torch.add, operator.iadd)),
            ("mul", (operator.mul, torch.mul)),
            ("sub", (operator.sub, torch.sub)),
            ("div", (operator.truediv, torch.div)),
        )
    ),
    OpSpec("matmul", functions=(operator.matmul, torch.matmul, torch.bmm), methods=("matmul",)),
    OpSpec(
        "flatten",
        modules=(nn.Flatten,),
        functions=(torch.flatten,),
        methods=("flatten",),
        channels="flatten",
        count="free",
        export="reshape",
        start_dim=True,
    ),
    OpSpec("reshape", methods=("view", "reshape"), channels="flatten", count="free", reshapes=True),
    OpSpec("transpose", methods=("transpose",), count="free", reshapes=True),
    OpSpec(
        "unflatten",
        modules=(nn.Unflatten,),
        methods=("unflatten",),
        count="free",
        input_shape=_unflatten_shape,
        export="reshape",
        reshapes=True,
    ),
    OpSpec(
        "identity",
        modules=(nn.Identity,),
        channels="elementwise",
        count="free",
        export="skip",
        batched=f"{_BATCHED}:IDENTITY",
    ),
    OpSpec("dropout", modules=(nn.Dropout,), channels="elementwise", count="free", export="skip"),
    _pool(
        "max_pool1d",
        nn.MaxPool1d,
        functions=(F.max_pool1d,),
        aten="max_pool1d_with_indices",
        export="max_pool",
        pool=Pool(1),
    ),
    _pool(
        "max_pool2d",
        nn.MaxPool2d,
        functions=(F.max_pool2d,),
        aten="max_pool2d_with_indices",
        export="max_pool",
        pool=Pool(2),
    ),
    _pool("avg_pool1d", nn.AvgPool1d, functions=(F.avg_pool1d,), aten="avg_pool1d", export="avg_pool", pool=Pool(1)),
    _pool("avg_pool2d", nn.AvgPool2d, functions=(F.avg_pool2d,), aten="avg_pool2d", export="avg_pool", pool=Pool(2)),
    _pool(
        "adaptive_avg_pool1d",
        nn.AdaptiveAvgPool1d,
        functions=(F.adaptive_avg_pool1d,),
        aten="adaptive_avg_pool1d",
        export="avg_pool",
        pool=Pool(1, adaptive=True),
    ),
    _pool(
        "adaptive_avg_pool2d",
        nn.AdaptiveAvgPool2d,
        functions=(F.adaptive_avg_pool2d,),
        aten="_adaptive_avg_pool2d",
        export="avg_pool",
        pool=Pool(2, adaptive=True),
    ),
    OpSpec("tanh", modules=(nn.Tanh,), functions=(torch.tanh,), methods=("tanh",), channels="elementwise"),
    OpSpec("sigmoid", modules=(nn.Sigmoid,), functions=(torch.sigmoid,), methods=("sigmoid",), channels="elementwise"),
    OpSpec("gelu", modules=(nn.GELU,), functions=(F.gelu,), channels="elementwise"),
    OpSpec("silu", modules=(nn.SiLU,), functions=(F.silu,), channels="elementwise"),
    OpSpec("leaky_relu", modules=(nn.LeakyReLU,), functions=(F.leaky_relu,), channels="elementwise"),
    OpSpec("elu", modules=(nn.ELU,), functions=(F.elu,), channels="elementwise"),
    OpSpec("relu6", modules=(nn.ReLU6,), functions=(F.relu6,), channels="elementwise"),
)
for _spec in _BUILTIN:
    register_op(_spec)
