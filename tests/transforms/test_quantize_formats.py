"""Per-element formats of the integer quantizer: set_formats, the fake-quantized forward, pruning, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import netcarve
from netcarve.data.base import DatasetInfo
from netcarve.errors import ConfigError
from netcarve.ir import Graph
from netcarve.ir.fixedpoint import FixedGrid, fixed_values
from netcarve.train import build_graph, load_checkpoint, load_graph, save_checkpoint
from netcarve.transforms.quantize.formats import set_formats, stored_formats

LINEAR = {"by": "type", "linear": {"config": {"name": "integer", "weight_width": 8, "weight_frac_width": 4,
                                              "bias_width": 8, "bias_frac_width": 4, "data_in_width": 8,
                                              "data_in_frac_width": 4}}}  # fmt: skip
JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


def toy() -> Graph:
    """Linear(3, 2) → ReLU → Linear(2, 1), all Linears integer(8,4) on data_in, weight and bias."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    return netcarve.quantize(model, LINEAR, input_shape=(3,))


def test_per_element_weight_is_the_one_quantizer_per_element() -> None:
    """Weight (2, 3) with widths [[0, 2, 4], [8, 1, 3]] and fracs [[0, 1, 2], [4, 0, 2]]: every element is
    the integer quantizer at its own format (checked against fixed_values of each scalar format), the pruned
    element is exactly 0, and the module's state_dict keys are the float Linear's."""
    graph = toy()
    width = torch.tensor([[0, 2, 4], [8, 1, 3]])
    frac = torch.tensor([[0, 1, 2], [4, 0, 2]])
    new = set_formats(graph, "_0", "weight", width, frac)
    module = new.submodule(new.node("_0"))
    weight = module.weight.detach()
    got = module.quant["weight"](weight)
    for o in range(2):
        for i in range(3):
            grid = FixedGrid.of(int(width[o, i]), int(frac[o, i])) if width[o, i] else None
            want = fixed_values(weight[o, i : i + 1], grid) if grid else torch.zeros(1)
            assert float(got[o, i]) == float(want[0])
    assert float(got[0, 0]) == 0.0
    assert set(module.state_dict()) == {"weight", "bias"}
    spec = module.quant["weight"]
    assert (spec.width, spec.frac_width) == (8, 4)  # the largest element's
    assert new.meta("_0").precision["weight"].describe() == "integer(≤8,≤4,mean 3)"
    assert graph.submodule(graph.node("_0")).quant["weight"].formats is None  # the input graph is unchanged


def test_pruned_weights_get_no_gradient() -> None:
    """A per-output-channel width (2, 1) of [[0], [6]]: row 0 pruned (its outputs equal the bias alone, its
    gradient 0), row 1 trained as usual."""
    graph = set_formats(toy(), "_0", "weight", torch.tensor([[0], [6]]), 3)
    module = graph.submodule(graph.node("_0"))
    x = torch.randn(4, 3)
    module(x).sum().backward()
    assert module.weight.grad is not None
    np.testing.assert_array_equal(module.weight.grad[0].numpy(), np.zeros(3))
    assert bool((module.weight.grad[1] != 0).any())


def test_bad_formats_are_one_line_config_errors() -> None:
    graph = toy()
    with pytest.raises(ConfigError, match=r"^set_formats: node '_0', weight: widths must be ≥ 0"):
        set_formats(graph, "_0", "weight", torch.tensor([[-1, 2, 2]]), 1)
    with pytest.raises(ConfigError, match=r"do not broadcast against \(2, 3\)"):
        set_formats(graph, "_0", "weight", torch.ones(4, dtype=torch.int64), 1)
    with pytest.raises(ConfigError, match=r"has no integer-quantized data_out"):
        set_formats(graph, "_0", "data_out", 4, 2)
    with pytest.raises(ConfigError, match=r"no node 'nope'"):
        set_formats(graph, "nope", "weight", 4, 2)


def test_checkpoint_keeps_per_element_formats_bit_exact(tmp_path: Path) -> None:
    """jsc-toy quantized, with random per-element weight widths 0..8 (fracs 0..6) on every Linear and a
    per-feature data_in on the first: saved (version 2, formats stored), reloaded, its forward is identical bit
    for bit and so are the formats; a graph without them still writes version 1."""
    graph = netcarve.quantize(build_graph("jsc-toy", JSC), LINEAR)
    generator = torch.Generator().manual_seed(0)
    linears = [n.name for n in graph.compute_nodes() if graph.meta(n).kind == "linear"]
    for name in linears:
        shape = tuple(graph.submodule(graph.node(name)).weight.shape)
        graph = set_formats(
            graph, name, "weight", torch.randint(0, 9, shape, generator=generator),
            torch.randint(0, 7, shape, generator=generator),
        )  # fmt: skip
    graph = set_formats(graph, linears[0], "data_in", torch.randint(0, 9, (16,), generator=generator), 3)
    path = save_checkpoint(tmp_path / "pe.pt", graph)
    assert torch.load(path, weights_only=True)["version"] == 2
    loaded = load_graph(path, "jsc-toy", JSC)
    before, after = stored_formats(graph), stored_formats(loaded)
    assert before.keys() == after.keys() and len(before) == len(linears)
    for node, operands in before.items():
        for operand, entry in operands.items():
            for key in ("width", "frac"):
                assert torch.equal(entry[key], after[node][operand][key])
    graph.module.eval()
    x = torch.randn(64, 16) * 2
    with torch.no_grad():
        np.testing.assert_array_equal(graph(x).numpy(), loaded(x).numpy())
    plain = save_checkpoint(tmp_path / "plain.pt", netcarve.quantize(build_graph("jsc-toy", JSC), LINEAR))
    assert torch.load(plain, weights_only=True)["version"] == 1 and load_checkpoint(plain).formats == {}


def test_population_training_leaves_per_element_formats_alone() -> None:
    """A stacked population has one format per operand and member: a model with per-element formats is not
    batched (Unsupported naming the operand), so it trains alone with ``fit`` instead of at its largest width."""
    from netcarve.train.population.layers import Unsupported
    from netcarve.train.population.template import chain

    chain(toy().module)  # one format per operand: batched
    with pytest.raises(Unsupported, match="weight has per-element formats"):
        chain(set_formats(toy(), "_0", "weight", torch.tensor([[0], [6]]), 3).module)
