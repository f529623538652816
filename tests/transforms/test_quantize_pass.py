"""The quantize pass: identity, no mutation, precision metadata, resolution, signedness, errors, analysis."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import netcarve
from netcarve.config.passes import QuantizePassConfig
from netcarve.errors import ConfigError, ModelError
from netcarve.ir.graph import Graph
from netcarve.ir.meta import Precision
from netcarve.ir.passes import load_pass
from netcarve.models import MODELS, create_model
from netcarve.transforms.quantize import (
    QuantizedModule,
    QuantizeInfo,
    plan_quantization,
    quantize_module,
    quantize_transform_pass,
)
from netcarve.transforms.quantize.modules import QuantizedBatchNorm1d, QuantizedLinear
from netcarve.transforms.quantize.plan import classify_entries
from netcarve.transforms.resolve import Resolved, resolve
from tests.transforms.helpers import INFO, X, entry, integer, model_graph, outputs

LINEAR_8_4 = {"by": "type", "default": entry(None), "linear": integer(8, 4)}
IDENTITY_CONFIGS = [
    None,
    {"by": "type", "default": entry("NA")},
    {"by": "type", "default": entry(None), "linear": entry("NA"), "relu": entry(None)},
    {"by": "name", "default": entry("integer")},  # a quantizer without any width quantizes nothing
]


def _quantized(graph: Graph) -> list[str]:
    return [n.name for n in graph.compute_nodes() if isinstance(graph.submodule(n), QuantizedModule)]


def test_quantize_is_a_registered_transform_pass() -> None:
    entry = load_pass("quantize")
    assert entry.fn is quantize_transform_pass and entry.kind == "transform"
    assert entry.config_model is QuantizePassConfig and entry.result_type is QuantizeInfo
    assert netcarve.quantize is __import__("netcarve.transforms.quantize.api", fromlist=["quantize"]).quantize


@pytest.mark.parametrize("model", MODELS.names())
@pytest.mark.parametrize("config", IDENTITY_CONFIGS)
def test_identity_configs_give_the_same_outputs(model: str, config: dict | None) -> None:
    graph = model_graph(model)
    new = quantize_transform_pass(graph, config).graph
    assert new is not graph and new.module is not graph.module
    assert _quantized(new) == []
    torch.testing.assert_close(outputs(new), outputs(graph), rtol=0, atol=0)


@pytest.mark.parametrize("model", MODELS.names())
def test_quantizing_mutates_neither_graph_nor_config(model: str) -> None:
    graph = model_graph(model)
    config = {
        "by": "type",
        "default": integer(6, 3),
        "batch_norm1d": integer(8, 4, ("weight", "bias")),
        "relu": entry("NA"),
    }
    config_copy = copy.deepcopy(config)
    cfg_model = QuantizePassConfig.model_validate(config)
    dump = cfg_model.model_dump()
    state = {k: v.clone() for k, v in graph.module.state_dict().items()}
    text, code, y = str(graph.module), graph.module.code, outputs(graph)
    metas = [graph.meta(n) for n in graph.nodes]
    spec = graph.spec

    for cfg in (config, cfg_model):
        new = netcarve.quantize(graph, cfg)
        assert _quantized(new)  # something was quantized
        assert not torch.equal(outputs(new), y)

    assert config == config_copy and cfg_model.model_dump() == dump
    assert str(graph.module) == text and graph.module.code == code and graph.spec == spec
    assert [graph.meta(n) for n in graph.nodes] == metas
    for key, value in graph.module.state_dict().items():
        assert torch.equal(value, state[key]), key
    torch.testing.assert_close(outputs(graph), y, rtol=0, atol=0)
    new_params = {p.data_ptr() for p in new.module.parameters()}
    assert new_params.isdisjoint(p.data_ptr() for p in graph.module.parameters())


def test_jsc_toy_linear_by_type_sets_precision_on_the_three_linears() -> None:
    graph = netcarve.quantize(model_graph("jsc-toy"), LINEAR_8_4)
    p84 = Precision("integer", 8, 4)
    for node in graph.compute_nodes():
        meta = graph.meta(node)
        if meta.kind == "linear":
            assert dict(meta.precision) == {"data_in": p84, "weight": p84, "bias": p84}, node.name
            module = graph.submodule(node)
            assert isinstance(module, QuantizedLinear) and isinstance(module, nn.Linear)
            assert meta.target == "QuantizedLinear"
        else:
            assert dict(meta.precision) == {}, node.name
            assert not isinstance(graph.submodule(node), QuantizedModule)
    assert _quantized(graph) == ["seq_blocks_2", "seq_blocks_5", "seq_blocks_8"]


def test_quantized_linear_computes_with_quantized_operands() -> None:
    """Hand example, integer(4, 1) everywhere (step ½, signed [−4, 3.5], unsigned [0, 7.5]).
    Input fed by a ReLU ⇒ unsigned: x = (0.3, 5.2) → (0.5, 5.0). W = ((0.8, −0.2)) → ((1.0, 0.0));
    b = 0.25 → 0 (tie to even). y = 0.5·1.0 + 5.0·0 + 0 = 0.5."""
    model = nn.Sequential(nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.8, -0.2]]))
        model[1].bias.fill_(0.25)
    graph = netcarve.quantize(model, {"by": "name", "_1": integer(4, 1)})  # fx names Sequential nodes _0, _1
    assert graph(torch.tensor([[0.3, 5.2]])).item() == 0.5
    assert model[1].weight[0, 0].item() == pytest.approx(0.8)  # the float model is untouched


def test_quantized_linear_matches_an_integer_matmul_bit_exactly() -> None:
    """integer(8, 4) on data_in, weight and bias: y·2^8 = Σ x_k·w_jk + b_j·2^4 over integers x_k, w_jk, b_j
    (x and w at scale 2^4 each, b at 2^4 aligned to the product scale 2^8). |Σ| < 16·2^14 < 2^24, so the
    float32 matmul of the fake-quantized operands is exact and must equal the integer result."""
    from fractions import Fraction

    from tests.transforms.test_quantizers import reference_integer

    torch.manual_seed(3)
    layer = nn.Linear(16, 8)
    nn.init.uniform_(layer.weight, -3, 3), nn.init.uniform_(layer.bias, -3, 3)
    x = torch.randn(20, 16) * 4
    graph = netcarve.quantize(nn.Sequential(layer), {"by": "type", "linear": integer(8, 4)})
    y = graph(x)

    def ints(t: torch.Tensor) -> list:
        return [int(reference_integer(v, 8, 4, True) * 16) for v in t.tolist()]

    w = [ints(row) for row in layer.weight.detach()]
    b = ints(layer.bias.detach())
    for i, row in enumerate(x):
        xi = ints(row)
        for j in range(8):
            acc = sum(a * c for a, c in zip(xi, w[j], strict=True)) + b[j] * 16
            assert Fraction(y[i, j].item()) == Fraction(acc, 256), (i, j)


def test_resolution_order_is_default_then_type_then_name() -> None:
    """jsc-toy, by name: default integer(4), type linear integer(6), name seq_blocks_5 weight-only integer(8).
    Linears 2 and 8 get the type entry (6 bits on all operands); seq_blocks_5 gets its own entry as a whole
    (weight 8 bits, data_in and bias stay float: entries are not merged); the ReLUs get the default's
    data_in; the batch norms stay float (the default does not apply to them)."""
    config = QuantizePassConfig.model_validate(
        {
            "by": "name",
            "default": integer(4, 2),
            "linear": integer(6, 3),
            "seq_blocks_5": entry("integer", weight_width=8, weight_frac_width=4),
        }
    )
    graph = model_graph("jsc-toy")
    entries = classify_entries(config, graph)
    assert set(entries.by_type) == {"linear"} and set(entries.by_name) == {"seq_blocks_5"}
    assert resolve(entries, "seq_blocks_5", "linear") == Resolved(config.entries["seq_blocks_5"].config, "name")
    assert resolve(entries, "seq_blocks_2", "linear") == Resolved(config.entries["linear"].config, "type")
    assert resolve(entries, "seq_blocks_1", "relu") == Resolved(config.default.config, "default")

    new = netcarve.quantize(graph, config)
    p = {n.name: dict(new.meta(n).precision) for n in new.compute_nodes()}
    six, four = Precision("integer", 6, 3), Precision("integer", 4, 2)
    assert p["seq_blocks_2"] == p["seq_blocks_8"] == {"data_in": six, "weight": six, "bias": six}
    assert p["seq_blocks_5"] == {"weight": Precision("integer", 8, 4)}
    for relu in ("seq_blocks_1", "seq_blocks_4", "seq_blocks_7", "seq_blocks_10"):
        assert p[relu] == {"data_in": four}
    for bn in ("seq_blocks_0", "seq_blocks_3", "seq_blocks_6", "seq_blocks_9"):
        assert p[bn] == {}


def test_unsigned_operands_are_relu_inputs_and_inputs_fed_by_a_relu() -> None:
    """integer(4, 0): signed [−8, 7], unsigned [0, 15]. A ReLU's data_in is unsigned, so 10 → 10 (not 7)."""
    graph = model_graph("hls4ml-jet")  # Linear, ReLU, Linear, … : the first Linear is fed by the input
    new = netcarve.quantize(graph, {"by": "type", "linear": integer(4, 0), "relu": integer(4, 0, ("data_in",))})
    signed = {n.name: new.submodule(n).quant["data_in"].signed for n in new.compute_nodes()}
    assert signed["seq_blocks_0"] is True  # input of the network
    assert signed["seq_blocks_1"] is False  # a ReLU
    assert signed["seq_blocks_2"] is False  # fed by a ReLU
    assert new.submodule(new.node("seq_blocks_0")).quant["weight"].signed is True
    relu = new.submodule(new.node("seq_blocks_1"))
    assert relu(torch.tensor([-3.0, 10.0, 20.0])).tolist() == [0.0, 10.0, 15.0]


def test_batch_norm_is_quantized_when_named() -> None:
    graph = netcarve.quantize(model_graph("jsc-toy"), {"by": "name", "seq_blocks_3": integer(8, 4)})
    assert _quantized(graph) == ["seq_blocks_3"]
    assert isinstance(graph.submodule(graph.node("seq_blocks_3")), QuantizedBatchNorm1d)
    assert set(graph.meta("seq_blocks_3").precision) == {"data_in", "weight", "bias"}


@pytest.mark.parametrize("momentum", [0.1, None])
def test_quantized_batch_norm_without_specs_equals_batch_norm(momentum: float | None) -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(6, momentum=momentum)
    nn.init.uniform_(bn.weight, 0.5, 1.5)
    qbn = quantize_module(copy.deepcopy(bn), {})
    for _ in range(3):
        x = torch.randn(32, 6) * 3 + 1
        torch.testing.assert_close(qbn(x), bn(x))
    for key, value in bn.state_dict().items():
        torch.testing.assert_close(qbn.state_dict()[key], value)
    bn.eval(), qbn.eval()
    torch.testing.assert_close(qbn(x), bn(x))


@pytest.mark.parametrize("model", MODELS.names())
def test_state_dict_keys_are_those_of_the_float_graph(model: str) -> None:
    graph = model_graph(model)
    config = {"by": "type", "default": integer(8, 4), "batch_norm1d": integer(8, 4)}
    new = netcarve.quantize(graph, config)
    assert list(new.module.state_dict()) == list(graph.module.state_dict())
    fresh = netcarve.quantize(Graph.from_module(create_model(model, INFO), (16,)), config)
    fresh.module.load_state_dict(graph.module.state_dict(), strict=True)
    torch.testing.assert_close(outputs(fresh), outputs(new), rtol=0, atol=0)


def test_spec_records_the_config_as_a_plain_mase_dict() -> None:
    graph = model_graph("jsc-toy")
    config = {"default": {"config": {"name": "NA"}}, "linear": entry("integer", weight_width=8, weight_frac_width="NA")}
    new = netcarve.quantize(graph, config)
    assert new.spec is not None and graph.spec is not None
    assert new.spec.transforms[:-1] == graph.spec.transforms
    name, recorded = new.spec.transforms[-1]
    assert name == "quantize"
    assert recorded == {
        "by": "type",
        "default": {"config": {"name": None}},
        "linear": {"config": {"name": "integer", "weight_width": 8}},
    }
    assert QuantizePassConfig.model_validate(recorded) == QuantizePassConfig.model_validate(
        {"default": entry(None), "linear": entry("integer", weight_width=8)}
    )
    assert new.meta("seq_blocks_2").precision["weight"] == Precision("integer", 8, 4)  # frac "NA" → 8 // 2


def test_quantize_a_module_infers_the_input_shape() -> None:
    model = create_model("jsc-tiny", INFO).eval()
    before = model(X)
    graph = netcarve.quantize(model, LINEAR_8_4)
    assert graph.input_shape == (16,) and graph.spec is None
    assert _quantized(graph) == ["seq_blocks_2"]
    assert type(model.seq_blocks[2]) is nn.Linear
    torch.testing.assert_close(model(X), before, rtol=0, atol=0)
    with pytest.raises(ModelError, match="input_shape"):
        netcarve.quantize(nn.Sequential(nn.ReLU()), LINEAR_8_4)
    assert netcarve.quantize(nn.Sequential(nn.ReLU()), LINEAR_8_4 | {"linear": entry(None)}, input_shape=(3,))


def test_quantize_passes_compose_and_requantize() -> None:
    first = netcarve.quantize(model_graph("jsc-toy"), LINEAR_8_4)
    second = netcarve.quantize(first, {"relu": integer(4, 2, ("data_in",)), "seq_blocks_8": integer(4, 2)})
    p = {n.name: dict(second.meta(n).precision) for n in second.compute_nodes()}
    assert p["seq_blocks_2"]["weight"] == Precision("integer", 8, 4)  # kept from the first pass
    assert p["seq_blocks_8"]["weight"] == Precision("integer", 4, 2)  # re-quantized
    assert p["seq_blocks_1"] == {"data_in": Precision("integer", 4, 2)}
    assert [n for n, _ in second.spec.transforms] == ["quantize", "quantize"]
    assert isinstance(second.submodule(second.node("seq_blocks_8")), QuantizedLinear)


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.flat = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.flat(self.lin(x)))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"seq_blocks_99": integer(8)}, r"'seq_blocks_99' is neither a node nor an op type.*seq_blocks_2.*linear"),
        ({"lienar": integer(8)}, "did you mean 'linear'"),
        ({"conv3": integer(8)}, "'conv3' is neither a node nor an op type"),
        ({"linear": entry("intger", weight_width=8)}, "unknown quantizer 'intger'; did you mean 'integer'"),
        ({"linear": entry("minifloat_ieee", weight_width=8)}, "'seq_blocks_2', weight: .*exponent_width"),
        ({"linear": entry("integer")}, "quantizer 'integer' is set but none of"),
        ({"by": "type", "linear": {"config": {"name": "integer", "weigth_width": 8}}}, "weigth_width"),
    ],
)
def test_config_errors_name_the_problem(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        netcarve.quantize(model_graph("jsc-toy"), config)


def test_a_known_kind_absent_from_the_graph_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    graph = model_graph("jsc-toy")
    new = netcarve.quantize(graph, {"by": "type", "conv2d": integer(8)})
    assert _quantized(new) == []
    assert "'conv2d' matches no node" in caplog.text


def test_unquantizable_nodes_named_explicitly_are_errors() -> None:
    graph = Graph.from_module(_Functional(), (4,))
    with pytest.raises(ConfigError, match=r"'flat' is a 'flatten' op, which cannot be quantized"):
        netcarve.quantize(graph, {"by": "type", "flatten": integer(8)})
    with pytest.raises(ConfigError, match="functional relu call"):
        netcarve.quantize(graph, {"by": "name", "relu": integer(8)})
    # the default entry skips what it cannot quantize
    plans = plan_quantization(graph, QuantizePassConfig.model_validate({"default": integer(8)}))
    assert [p.node for p in plans] == ["lin"]


@pytest.fixture
def analyze():  # type: ignore[no-untyped-def]
    module = pytest.importorskip("netcarve.analysis.api", reason="netcarve.analyze is not there yet")
    return module.analyze


def test_analysis_totals_of_jsc_toy_with_8_bit_linears(analyze) -> None:  # type: ignore[no-untyped-def]
    """jsc-toy, batch 1. Linears 16→8, 8→8, 8→5: 232 weights + 21 biases = 253 params at 8 bits = 2024 bits;
    batch norms 16, 8, 8, 5: 2·37 = 74 affine params at 32 bits = 2368 bits. size_bits = 4392,
    model_size = ceil(4392 / 8) = 549 bytes (float: 327·32 = 10464 bits, 1308 bytes).
    bitops: MACs 128 + 64 + 40 = 232 at 8×8 → 14848; bias adds 21 at 8 → 168; BN 4 flops/elem over
    16+8+8+5 = 37 elems → 148 flops at 32 bits (float inputs) → 4736; ReLU 37 flops at 32 → 1184.
    Total 14848 + 168 + 4736 + 1184 = 20936 (float: 232·32·32 + 21·32 + 185·32 = 244160).
    average_bitwidth = 4392 / 327 (float batch-norm parameters count 32). Both counting paths agree (the
    dispatch counter does not count the fake-quantization ops)."""
    float_graph = model_graph("jsc-toy")
    graph = netcarve.quantize(float_graph, LINEAR_8_4)
    for method in ("closed_form", "dispatch"):
        total = analyze(graph, (1, 16), method=method).total
        assert (total.size_bits, total.model_size, total.bitops) == (4392, 549, 20936), method
        assert total.average_bitwidth == pytest.approx(4392 / 327)
    ftotal = analyze(float_graph, (1, 16)).total
    assert (ftotal.size_bits, ftotal.model_size, ftotal.bitops) == (10464, 1308, 244160)
