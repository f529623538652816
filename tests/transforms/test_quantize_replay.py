"""Transformed checkpoints: replaying a spec's transforms rebuilds the graph; QAT lowers the loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import netcarve
from netcarve.config.passes import QuantizePassConfig
from netcarve.errors import ConfigError, PassError, UnknownNameError
from netcarve.ir.graph import Graph, ModelSpec
from netcarve.ir.replay import apply_transforms
from netcarve.models import create_model
from netcarve.transforms.quantize import QuantizedModule
from tests.transforms.helpers import INFO, entry, integer, model_graph, outputs

CONFIG = {"by": "type", "default": entry(None), "linear": integer(6, 3), "relu": integer(5, 2, ("data_in",))}


def _fresh(model: str, seed: int = 123) -> Graph:
    """The bare float base model with other weights than the trained one."""
    torch.manual_seed(seed)
    return Graph.from_module(create_model(model, INFO), (16,), ModelSpec(model, INFO.to_dict()))


def _types(graph: Graph) -> list[str]:
    return [type(graph.submodule(n)).__name__ for n in graph.compute_nodes()]


@pytest.mark.parametrize("model", ["jsc-toy", "hls4ml-jet"])
def test_replaying_the_spec_on_a_fresh_float_graph_reproduces_the_quantized_graph(model: str) -> None:
    quantized = netcarve.quantize(netcarve.quantize(model_graph(model), CONFIG), {"seq_blocks_2": integer(4, 2)})
    assert quantized.spec is not None and len(quantized.spec.transforms) == 2
    rebuilt = apply_transforms(_fresh(model), quantized.spec.transforms)
    assert rebuilt.spec == quantized.spec
    assert _types(rebuilt) == _types(quantized)
    assert [dict(rebuilt.meta(n).precision) for n in rebuilt.nodes] == [
        dict(quantized.meta(n).precision) for n in quantized.nodes
    ]
    rebuilt.module.load_state_dict(quantized.module.state_dict(), strict=True)
    torch.testing.assert_close(outputs(rebuilt), outputs(quantized), rtol=0, atol=0)


def test_apply_transforms_accepts_config_models_and_aliases_nothing_else() -> None:
    graph = model_graph("jsc-toy")
    by_model = apply_transforms(graph, [("quantize", QuantizePassConfig.model_validate(CONFIG))])
    by_dict = apply_transforms(graph, [("quantize", CONFIG)])
    torch.testing.assert_close(outputs(by_model), outputs(by_dict), rtol=0, atol=0)
    assert apply_transforms(graph, []) is graph
    with pytest.raises(UnknownNameError, match="unknown pass 'quantise'; did you mean 'quantize'"):
        apply_transforms(graph, [("quantise", CONFIG)])
    with pytest.raises(ConfigError, match=r"^unknown key 'passes\.quantize\.linear\.config\.widht'"):
        apply_transforms(graph, [("quantize", {"linear": {"config": {"widht": 8}}})])


def test_an_analysis_pass_cannot_be_replayed() -> None:
    from netcarve.ir.passes import PASSES, PassResult, register_pass

    name = "test-only-analysis"
    if name not in PASSES:
        register_pass(name, kind="analysis")(lambda g, c=None: PassResult(g, None))
    with pytest.raises(PassError, match="analysis pass, not a transform"):
        apply_transforms(model_graph("jsc-tiny"), [(name, {})])


def test_transformed_checkpoint_round_trip(tmp_path: Path) -> None:
    """The lead's checkpoint stores the spec (plain dicts) and the state dict; loading replays the transforms."""
    checkpoint = pytest.importorskip("netcarve.train.checkpoint")
    quantized = netcarve.quantize(model_graph("jsc-toy"), CONFIG)
    path = checkpoint.save_checkpoint(tmp_path / "q.pt", quantized, {"note": "test"})
    loaded = checkpoint.load_graph(path, "jsc-toy", INFO)
    assert _types(loaded) == _types(quantized) and loaded.spec == quantized.spec
    torch.testing.assert_close(outputs(loaded), outputs(quantized), rtol=0, atol=0)


def test_qat_for_one_epoch_lowers_the_loss_of_a_4_bit_model(synthetic_small) -> None:  # type: ignore[no-untyped-def]
    """jsc-three-linear-layers with every Linear and ReLU at integer(4, 2): one epoch of Adam (lr 1e-2,
    batch 64) through the straight-through estimator lowers the training loss."""
    config = {"by": "type", "linear": integer(4, 2), "relu": integer(4, 2, ("data_in",))}
    graph = netcarve.quantize(_fresh("jsc-three-linear-layers", seed=0), config)
    module, train = graph.module, synthetic_small.train

    def loss() -> float:
        module.eval()
        with torch.no_grad():
            return float(F.cross_entropy(module(train.x), train.y))

    before = loss()
    module.train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    for start in range(0, len(train), 64):
        idx = order[start : start + 64]
        optimizer.zero_grad()
        F.cross_entropy(module(train.x[idx]), train.y[idx]).backward()
        optimizer.step()
    after = loss()
    assert after < before - 0.05, (before, after)
    assert all(isinstance(graph.submodule(n), QuantizedModule) for n in graph.compute_nodes()
               if graph.meta(n).kind in ("linear", "relu"))  # fmt: skip
    linear = graph.submodule(graph.node("seq_blocks_2"))
    w = linear.quant["weight"](linear.weight)
    assert set((w * 4).round().tolist()[0]) <= set(range(-8, 8))  # the effective weights are on the 4-bit grid
