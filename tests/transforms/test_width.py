"""The width transform: shapes, parameter counts, consistency propagation and function-preserving init."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import netcarve
from netcarve.config.passes import WidthPassConfig
from netcarve.data.base import DatasetInfo
from netcarve.ir.graph import Graph, ModelSpec
from netcarve.ir.passes import load_pass
from netcarve.models import MODELS, create_model
from netcarve.transforms.width import WidthInfo, change_width, config_to_dict, parse_config
from netcarve.transforms.width.pass_ import width_transform_pass
from tests.transforms.helpers import Residual, entry, settled

INFO = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


def _graph(name: str, spec: bool = True) -> Graph:
    model = settled(create_model(name, INFO), in_shape=(16,), passes=5)
    return Graph.from_module(model, (16,), ModelSpec(name, INFO.to_dict()) if spec else None)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _out(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    graph.module.eval()
    with torch.no_grad():
        return graph(x)


X = torch.randn(32, 16, generator=torch.Generator().manual_seed(1)) * 2


# --- identity ---------------------------------------------------------------------------------------------
IDENTITY_CONFIGS = [
    None,
    {},
    {"by": "name", "default": entry(None, channel_multiplier=1)},
    {"by": "type", "linear": entry("both", channel_multiplier=1)},
    {"by": "name", "default": entry("output_only", out_multiplier=1.0, in_multiplier=1.0)},
]


@pytest.mark.parametrize("model", MODELS.names())
@pytest.mark.parametrize("config", IDENTITY_CONFIGS, ids=range(len(IDENTITY_CONFIGS)))
def test_identity_config_keeps_outputs_and_input_graph(model: str, config: dict | None) -> None:
    graph = _graph(model)
    state = copy.deepcopy(graph.module.state_dict())
    code, metas = graph.module.code, [graph.meta(n) for n in graph.nodes]
    config_copy = copy.deepcopy(config)
    new = width_transform_pass(graph, config).graph
    assert new is not graph and new.module is not graph.module
    torch.testing.assert_close(_out(new, X), _out(graph, X))
    # the input graph and the config are untouched
    assert graph.module.code == code and [graph.meta(n) for n in graph.nodes] == metas
    for key, value in graph.module.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert config == config_copy


# --- the Lab 4 target ---------------------------------------------------------------------------------------
LAB4_BOTH = {
    "by": "name",
    "default": entry(None, channel_multiplier=1),
    "seq_blocks_2": entry("output_only", channel_multiplier=2, parent_block_name="seq_blocks_1"),
    "seq_blocks_4": entry("both", channel_multiplier=4, parent_block_name="seq_blocks_2"),
    "seq_blocks_6": entry("input_only", channel_multiplier=4, parent_block_name="seq_blocks_4"),
}
LAB4_EXPLICIT = {
    "seq_blocks_2": entry(out_multiplier=2),
    "seq_blocks_4": entry(in_multiplier=2, out_multiplier=4),
}


@pytest.mark.parametrize("config", [LAB4_BOTH, LAB4_EXPLICIT], ids=["both", "explicit"])
def test_lab4_target_shapes_and_params(config: dict) -> None:
    """16→32→64→5. Params: BN16 2·16 = 32; L(16,32) 16·32+32 = 544; L(32,64) 32·64+64 = 2112;
    L(64,5) 64·5+5 = 325; total 32 + 544 + 2112 + 325 = 3013 (the base model has 661)."""
    graph = _graph("jsc-three-linear-layers")
    result = width_transform_pass(graph, config)
    linears = [m for m in result.graph.module.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32), (32, 64), (64, 5)]
    assert _params(result.graph.module) == 3013
    assert _params(graph.module) == 661
    assert result.info.changed == ("seq_blocks_2", "seq_blocks_4", "seq_blocks_6")
    assert result.graph.meta("seq_blocks_5").output.shape == (1, 64)
    # net2net: the widened trained model computes the same function
    torch.testing.assert_close(_out(result.graph, X), _out(graph, X))
    name, recorded = result.graph.spec.transforms[-1]
    assert name == "width" and parse_config(recorded) == parse_config(config)


def test_lab_layout_without_relu_between_linears() -> None:
    """MASE's lab model BN, ReLU, L(16,16), L(16,16), L(16,5), ReLU with the lab's first config
    (seq_blocks_2 output ×2, seq_blocks_3 both ×2, seq_blocks_4 input ×2) gives 16→32→32→5."""
    from netcarve.models.jsc import SeqBlocks

    model = SeqBlocks(nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 5), nn.ReLU())
    graph = Graph.from_module(settled(model, in_shape=(16,), passes=5), (16,))
    config = {
        "by": "name",
        "default": entry(None),
        "seq_blocks_2": entry("output_only", channel_multiplier=2),
        "seq_blocks_3": entry("both", channel_multiplier=2),
        "seq_blocks_4": entry("input_only", channel_multiplier=2),
    }
    new = width_transform_pass(graph, config).graph
    shapes = [(m.in_features, m.out_features) for m in new.module.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(16, 32), (32, 32), (32, 5)]
    torch.testing.assert_close(_out(new, X), _out(graph, X))


# --- propagation through BatchNorm, net2net -------------------------------------------------------------------
def test_jsc_toy_widening_follows_batchnorm_and_consumer() -> None:
    graph = _graph("jsc-toy")
    new = width_transform_pass(graph, {"seq_blocks_2": entry("output_only", channel_multiplier=2)}).graph
    mods = dict(new.module.named_modules())
    assert (mods["seq_blocks.2"].in_features, mods["seq_blocks.2"].out_features) == (16, 16)
    bn = mods["seq_blocks.3"]
    assert bn.num_features == 16 and bn.weight.shape == bn.running_mean.shape == bn.running_var.shape == (16,)
    assert (mods["seq_blocks.5"].in_features, mods["seq_blocks.5"].out_features) == (16, 8)
    # copied units carry their source's BN statistics: unit 8 + j copies unit j
    old_bn = dict(graph.module.named_modules())["seq_blocks.3"]
    torch.testing.assert_close(bn.running_mean, old_bn.running_mean.repeat(2))
    torch.testing.assert_close(_out(new, X), _out(graph, X))
    # the forward pass also works in training mode (batch statistics)
    new.module.train()
    assert new(X).shape == (32, 5)


def test_net2net_after_training_keeps_outputs() -> None:
    """A few SGD steps (train mode), then eval: widening by 3 keeps the function."""
    graph = _graph("jsc-toy")
    torch.manual_seed(3)
    opt = torch.optim.SGD(graph.module.parameters(), lr=0.05)
    graph.module.train()
    for _ in range(10):
        x, y = torch.randn(64, 16), torch.randint(0, 5, (64,))
        opt.zero_grad()
        nn.functional.cross_entropy(graph(x), y).backward()
        opt.step()
    config = {
        "seq_blocks_2": entry("output_only", channel_multiplier=3),
        "seq_blocks_5": entry("both", channel_multiplier=1.5),
    }
    new = width_transform_pass(graph, config).graph
    mods = dict(new.module.named_modules())
    assert (mods["seq_blocks.5"].in_features, mods["seq_blocks.5"].out_features) == (24, 12)
    assert mods["seq_blocks.6"].num_features == 12 and mods["seq_blocks.8"].in_features == 12
    torch.testing.assert_close(_out(new, X), _out(graph, X))


def test_by_type_protects_the_output_layer() -> None:
    """by = "type", linear both ×2 on jsc-s: hidden widths double, the classifier keeps its 5 outputs."""
    graph = _graph("jsc-s")
    result = width_transform_pass(graph, {"by": "type", "linear": entry("both", channel_multiplier=2)})
    widths = [(m.in_features, m.out_features) for m in result.graph.module.modules() if isinstance(m, nn.Linear)]
    assert widths == [(16, 128), (128, 64), (64, 64), (64, 64), (64, 5)]
    assert result.info.protected == ("seq_blocks_11",)  # L(32,5): nodes BN,ReLU,L,BN,ReLU,(L,ReLU)×3,L
    torch.testing.assert_close(_out(result.graph, X), _out(graph, X))


def test_default_entry_applies_to_unnamed_layers() -> None:
    """default both ×2 on jsc-three-linear-layers: 16→32→32→5, the output layer protected; a named entry
    overrides the default (seq_blocks_4 keeps 16 outputs with name None)."""
    graph = _graph("jsc-three-linear-layers")
    config = {"default": entry("both", channel_multiplier=2), "seq_blocks_4": entry(None)}
    result = width_transform_pass(graph, config)
    widths = [(m.in_features, m.out_features) for m in result.graph.module.modules() if isinstance(m, nn.Linear)]
    assert widths == [(16, 32), (32, 16), (16, 5)]
    assert result.info.protected == ("seq_blocks_6",)
    torch.testing.assert_close(_out(result.graph, X), _out(graph, X))


def test_net2net_split_golden() -> None:
    """Linear(2,2) → ReLU → Linear(2,1), outputs ×1.5 → 3 units: unit 2 copies unit 0 (2 mod 2), so the
    consumer's columns become [w0/2, w1, w0/2]: with w = [4, 6] that is [2, 6, 2]."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model[0].bias.copy_(torch.tensor([0.5, -0.5]))
        model[2].weight.copy_(torch.tensor([[4.0, 6.0]]))
    graph = Graph.from_module(model, (2,))
    new = width_transform_pass(graph, {"_0": entry(out_multiplier=1.5)}).graph
    first, last = new.module.get_submodule("0"), new.module.get_submodule("2")
    assert torch.equal(first.weight, torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]))
    assert torch.equal(first.bias, torch.tensor([0.5, -0.5, 0.5]))
    assert torch.equal(last.weight, torch.tensor([[2.0, 6.0, 2.0]]))
    torch.testing.assert_close(_out(new, X[:, :2]), _out(graph, X[:, :2]))


def test_shrink_keeps_largest_l1_units() -> None:
    """Rows of the first Linear: L1 = |1|+|0|+|0| = 1, |0|+|-3|+|0| = 3, |1|+|1|+|0| = 2, 0.5 → keeping 2
    units keeps units 1 and 2 (in order), their biases and the consumer's columns 1 and 2, unscaled."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    w1 = torch.tensor([[1.0, 0, 0], [0, -3, 0], [1, 1, 0], [0, 0, 0.5]])
    w2 = torch.arange(8.0).reshape(2, 4)
    with torch.no_grad():
        model[0].weight.copy_(w1)
        model[0].bias.copy_(torch.tensor([10.0, 11, 12, 13]))
        model[2].weight.copy_(w2)
    graph = Graph.from_module(model, (3,))
    for config in ({"_0": entry(out_features=2)}, {"_0": entry("output_only", channel_multiplier=0.5)}):
        new = width_transform_pass(graph, config).graph
        first, last = new.module.get_submodule("0"), new.module.get_submodule("2")
        assert torch.equal(first.weight, w1[[1, 2]]) and torch.equal(first.bias, torch.tensor([11.0, 12]))
        assert torch.equal(last.weight, w2[:, [1, 2]]) and torch.equal(last.bias, model[2].bias)


# --- residual adds ---------------------------------------------------------------------------------------------
def test_residual_widening_both_producers() -> None:
    graph = Graph.from_module(Residual(), (4,))
    new = width_transform_pass(graph, {"a": entry(out_multiplier=2), "b": entry(out_features=12)}).graph
    assert new.module.a.out_features == new.module.b.out_features == new.module.c.in_features == 12
    torch.testing.assert_close(_out(new, X[:, :4]), _out(graph, X[:, :4]))


def test_residual_shrink_uses_one_choice_for_both_producers() -> None:
    """Row L1 norms: a = [20, 4, 0, 0, 0, 0], b = [0, 4, 0, 0, 0, 28]. Alone, a would keep units {0, 1} and
    b {1, 5}; the group's score a + b = [20, 8, 0, 0, 0, 28] keeps units 0 and 5 in both producers."""
    model = Residual()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([[5.0] * 4, [1] * 4, [0] * 4, [0] * 4, [0] * 4, [0] * 4]))
        model.b.weight.copy_(torch.tensor([[0.0] * 4, [1] * 4, [0] * 4, [0] * 4, [0] * 4, [7] * 4]))
    graph = Graph.from_module(model, (4,))
    new = width_transform_pass(graph, {"a": entry(out_features=2), "b": entry(out_features=2)}).graph
    assert torch.equal(new.module.a.weight, model.a.weight[[0, 5]])
    assert torch.equal(new.module.b.weight, model.b.weight[[0, 5]])
    assert torch.equal(new.module.c.weight, model.c.weight[:, [0, 5]])


# --- convolutions ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [1, 2])
def test_conv_widening_through_batchnorm(dims: int) -> None:
    conv, bn = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
    shape = (3, 7) if dims == 1 else (3, 5, 5)
    model = nn.Sequential(conv(3, 4, 3, padding=1), bn(4), nn.ReLU(), conv(4, 2, 1))
    graph = Graph.from_module(settled(model, in_shape=shape, passes=5), shape)
    new = width_transform_pass(graph, {"_0": entry("output_only", channel_multiplier=2)}).graph
    mods = dict(new.module.named_modules())
    assert mods["0"].out_channels == 8 and mods["1"].num_features == 8 and mods["3"].in_channels == 8
    assert mods["3"].weight.shape[1] == 8
    x = torch.randn(8, *shape)
    torch.testing.assert_close(_out(new, x), _out(graph, x))


# --- init = random, subclasses, API ------------------------------------------------------------------------------
def test_random_init_reinitialises_changed_layers_only() -> None:
    graph = _graph("jsc-toy")
    config = {"init": "random", "seed": 7, "seq_blocks_2": entry("output_only", channel_multiplier=2)}
    rng_state = torch.get_rng_state()
    one, two = width_transform_pass(graph, config).graph, width_transform_pass(graph, config).graph
    assert torch.equal(torch.get_rng_state(), rng_state)
    old, new, again = (dict(g.module.named_modules()) for g in (graph, one, two))
    assert torch.equal(new["seq_blocks.2"].weight, again["seq_blocks.2"].weight)  # seeded
    assert not torch.equal(new["seq_blocks.2"].weight[:8], old["seq_blocks.2"].weight)
    assert torch.equal(new["seq_blocks.3"].running_mean, torch.zeros(16))  # fresh BatchNorm
    assert torch.equal(new["seq_blocks.8"].weight, old["seq_blocks.8"].weight)  # unchanged layer kept
    assert new["seq_blocks.5"].in_features == 16


class TaggedLinear(nn.Linear):
    """Stands in for a quantized Linear subclass."""

    tag = "q"


def test_subclass_of_linear_keeps_its_class() -> None:
    """A quantize pass swaps modules inside the traced GraphModule (fx would trace into a non-torch.nn
    subclass); the width pass resizes the subclass in place, keeping its class."""
    graph = Graph.from_module(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), (4,))
    for target in ("0", "2"):
        old = graph.module.get_submodule(target)
        tagged = TaggedLinear(old.in_features, old.out_features)
        tagged.load_state_dict(old.state_dict())
        setattr(graph.module, target, tagged)
    new = width_transform_pass(graph, {"_0": entry("output_only", channel_multiplier=2)}).graph
    assert type(new.module.get_submodule("0")) is TaggedLinear
    assert new.module.get_submodule("2").in_features == 6
    torch.testing.assert_close(_out(new, X[:, :4]), _out(graph, X[:, :4]))


def test_change_width_api_and_registry() -> None:
    model = create_model("jsc-three-linear-layers", INFO)
    graph = netcarve.change_width(model, LAB4_BOTH)
    assert isinstance(graph, Graph) and graph.input_shape == (16,)
    assert _params(graph.module) == 3013 and _params(model) == 661
    assert load_pass("channel_multiplier") == load_pass("redefine") == load_pass("width")
    assert load_pass("width").fn is width_transform_pass and load_pass("width").kind == "transform"
    assert load_pass("width").config_model is WidthPassConfig and load_pass("width").result_type is WidthInfo
    cfg = WidthPassConfig.model_validate(LAB4_BOTH)
    assert _params(change_width(Graph.from_module(model, (16,)), cfg).module) == 3013
    assert parse_config(config_to_dict(cfg)) == cfg
