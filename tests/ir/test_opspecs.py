"""The op-kind registry: a registry-wide contract, and a new kind (``hardtanh``) that works everywhere from
its one registry entry."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netcarve
from netcarve.analysis.aten_formulas import formulas
from netcarve.analysis.closed_form import kind_formula
from netcarve.ir.graph import Graph
from netcarve.ir.opspecs import (
    BATCH_NORM,
    ELEMENTWISE,
    OPS,
    UNARY_OPERANDS,
    OpSpec,
    exact_spec,
    infer_input_shape,
    register_op,
    spec_of_function,
    spec_of_method,
    spec_of_module,
    unregister_op,
)
from netcarve.train.population.layers import BatchedKind, batched_kind
from netcarve.transforms.quantize.modules import QuantizedModule, quantized_class
from netcarve.transforms.quantize.plan import DEFAULT_KINDS, QUANT_OPERANDS
from netcarve.transforms.width import change_width

SPECS = [OPS.get(k) for k in OPS]


@pytest.mark.parametrize("spec", SPECS, ids=[s.kind for s in SPECS])
def test_every_entry_is_consistent(spec: OpSpec) -> None:
    """Quantizable kinds have a module class, a quantized subclass of it and a count formula; producers have
    width attributes and a MAC count; every ATen name exists; elementwise counts have a flop count."""
    assert spec.modules or spec.functions or spec.methods, spec.kind
    if spec.quantizable:
        assert spec.modules and spec.count is not None
        for cls in spec.modules:
            q = quantized_class(cls)
            assert q is not None and issubclass(q, cls) and issubclass(q, QuantizedModule)
        assert set(spec.operands) <= {"data_in", "weight", "bias", "data_out"}
        assert QUANT_OPERANDS[spec.kind] == spec.operands
    else:
        assert spec.quantized is None and not spec.default_quantized and spec.kind not in QUANT_OPERANDS
    assert (spec.kind in DEFAULT_KINDS) == spec.default_quantized
    if spec.channels == "producer":
        assert spec.width_attrs is not None and spec.count == "mac"
    if spec.count == "elementwise":
        assert spec.flops_per_element > 0 and kind_formula(spec) is not None
    if spec.count in ("elementwise", "pool"):
        assert all(hasattr(torch.ops.aten, name) for name in spec.aten), spec.aten
    # a pool kind's geometry is on its entry (torch names its classes by their dims; adaptive ones take an
    # output size instead of a kernel)
    assert (spec.count == "pool") == (spec.pool is not None)
    if spec.pool is not None:
        for cls in spec.modules:
            assert cls.__name__.endswith(f"{spec.pool.dims}d")
            assert ("output_size" in inspect.signature(cls).parameters) == spec.pool.adaptive
    if spec.unsigned:  # never negative out, so unsigned data_in/data_out lose nothing
        assert {"data_in", "data_out"} <= set(spec.operands)
        x = torch.linspace(-4, 4, 33)
        for cls in spec.modules:
            assert cls()(x).min() >= 0
    if spec.start_dim:
        for cls in spec.modules:
            assert isinstance(cls().start_dim, int)  # type: ignore[attr-defined]
    for cls in spec.modules:
        assert spec_of_module(cls.__new__(cls)) is spec and exact_spec(cls) is spec
        q = quantized_class(cls)
        assert q is None or exact_spec(q) is spec
    if spec.batched is not None:
        assert spec.modules and isinstance(batched_kind(spec), BatchedKind)
    if spec.fold is not None and spec.fold.role == "producer":
        assert spec.modules and OPS.get(spec.fold.batch_norm).fold == BATCH_NORM and spec.fold.rank >= 2
    for fn in spec.functions:
        assert spec_of_function(fn) is spec
    for name in spec.methods:
        assert spec_of_method(name) is spec


def test_exact_spec_refuses_user_subclasses() -> None:
    """A user subclass of Linear may have its own forward: it is a ``linear`` by its MRO, but not exact (and
    so not batched by population training)."""

    class Scaled(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    assert spec_of_module(Scaled(2, 2)) is OPS.get("linear") and exact_spec(Scaled) is None


def test_a_module_class_belongs_to_one_kind() -> None:
    with pytest.raises(ValueError, match="Linear is already of kind 'linear'"):
        register_op(OpSpec("linear2", modules=(nn.Linear,)))
    assert "linear2" not in OPS


def test_input_shape_rules() -> None:
    """Linear → (in_features,); Unflatten(1, (1, 8, 8)) → (64,); a model that starts with a Conv: unknown."""
    assert infer_input_shape(nn.Sequential(nn.Linear(7, 3))) == (7,)
    assert infer_input_shape(nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 2, 3))) == (64,)
    assert infer_input_shape(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2))) is None


@pytest.fixture
def hardtanh() -> Iterator[OpSpec]:
    spec = register_op(
        OpSpec(
            "hardtanh",
            modules=(nn.Hardtanh,),
            functions=(F.hardtanh,),
            channels="elementwise",
            operands=UNARY_OPERANDS,
            quantized=ELEMENTWISE,
            count="elementwise",
            flops_per_element=1,
            aten=("hardtanh",),
        )
    )
    yield spec
    unregister_op("hardtanh")


class Clipped(nn.Module):
    """Linear(4, 6) → Hardtanh → Linear(6, 2)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.act, self.b = nn.Linear(4, 6), nn.Hardtanh(), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.act(self.a(x)))


@pytest.mark.usefixtures("hardtanh")
@pytest.mark.parametrize("method", ["closed_form", "dispatch"])
def test_new_kind_is_counted(method: str) -> None:
    """B = 1: MACs 4·6 + 6·2 = 36; FLOPs 2·36 + bias adds 6 + 2 + hardtanh 6 = 86; nothing uncounted."""
    report = netcarve.analyze(Clipped(), (1, 4), method=method)  # type: ignore[arg-type]
    assert report.layer("act").kind == "hardtanh"
    assert (report.total.macs, report.total.flops, report.uncounted) == (36, 86, {})


@pytest.mark.usefixtures("hardtanh")
def test_new_kind_is_quantizable() -> None:
    """By type ``hardtanh``, 4 bits with 2 fractional: the output is a multiple of 1/4 in [-1, 1]."""
    config = {"name": "integer", "data_in_width": 4, "data_in_frac_width": 2}
    graph = netcarve.quantize(Clipped(), {"by": "type", "hardtanh": {"config": config}}, input_shape=(4,))
    act = graph.submodule(graph.node("act"))
    assert isinstance(act, nn.Hardtanh) and isinstance(act, QuantizedModule)
    x = torch.randn(32, 4) * 3
    h = act(graph.module.a(x))
    torch.testing.assert_close(h, torch.round(h * 4) / 4)
    assert graph.meta("act").operand_precision("data_in").width == 4


@pytest.mark.usefixtures("hardtanh")
def test_new_kind_is_width_transparent() -> None:
    """Widening ``a`` 6 → 12 passes through the hardtanh into ``b``; net2net keeps the function."""
    model = Clipped().eval()
    graph = change_width(model, {"by": "name", "a": {"config": {"name": "output_only", "channel_multiplier": 2}}})
    assert (graph.module.a.out_features, graph.module.b.in_features) == (12, 12)
    x = torch.randn(16, 4)
    torch.testing.assert_close(graph(x), model(x))


def test_unregistered_kind_is_opaque_again() -> None:
    """Without its entry, a Hardtanh is an unknown module: uncounted by formula and a width barrier."""
    assert "hardtanh" not in OPS and torch.ops.aten.hardtanh.default.overloadpacket not in formulas()
    graph = Graph.from_module(Clipped(), (4,))
    assert graph.meta("act").kind == "module"


class Gated(nn.Module):
    """Linear(4, 6) → Hardsigmoid (output in [0, 1]) → Linear(6, 2)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.act, self.b = nn.Linear(4, 6), nn.Hardsigmoid(), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.act(self.a(x)))


@pytest.mark.parametrize("unsigned", [True, False])
def test_unsigned_operands_come_from_the_entry(unsigned: bool) -> None:
    """A kind registered ``unsigned`` has unsigned data_in/data_out, and so has the data_in of the Linear it
    feeds (4 bits, 2 fractional: [0, 3.75] rather than [-2, 1.75]); without the flag all three are signed.
    The Linear fed by a plain input stays signed either way."""
    register_op(
        OpSpec(
            "hardsigmoid",
            modules=(nn.Hardsigmoid,),
            channels="elementwise",
            operands=UNARY_OPERANDS,
            quantized=ELEMENTWISE,
            unsigned=unsigned,
        )
    )
    try:
        q = {"name": "integer", "data_in_width": 4, "data_in_frac_width": 2}
        config = {"by": "type", "hardsigmoid": {"config": {**q, "data_out_width": 4, "data_out_frac_width": 2}},
                  "linear": {"config": q}}  # fmt: skip
        graph = netcarve.quantize(Gated(), config, input_shape=(4,))
        signed = {
            (node, op): graph.submodule(graph.node(node)).quant[op].signed
            for node, op in (("a", "data_in"), ("act", "data_in"), ("act", "data_out"), ("b", "data_in"))
        }
    finally:
        unregister_op("hardsigmoid")
    assert signed == {("a", "data_in"): True, **dict.fromkeys([("act", "data_in"), ("act", "data_out"),
                      ("b", "data_in")], not unsigned)}  # fmt: skip
