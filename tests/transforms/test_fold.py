"""The ``fold_batchnorm`` pass: BatchNorm after a Linear folded into it, function-preserving on float models,
quantizer specs kept (and re-applied to the folded weights) on quantized ones."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.ir.graph import Graph, ModelSpec
from netcarve.ir.passes import load_pass
from netcarve.ir.replay import apply_transforms
from netcarve.models import create_model
from netcarve.models.jsc import SeqBlocks
from netcarve.transforms.fold import FoldedBatchNorm, fold_batchnorms
from netcarve.transforms.quantize.api import quantize
from tests.transforms.helpers import INFO, X, model_graph, settled


def golden_module(bias: bool = True) -> SeqBlocks:
    """Linear(2, 2) with W = [[1, 2], [3, −1]], b = [0.5, −1], then BatchNorm1d(2, eps = 1) with γ = [2, 0.5],
    β = [1, 0], running mean [1, −2], running var [3, 15] (eval mode)."""
    linear, bn = nn.Linear(2, 2, bias=bias), nn.BatchNorm1d(2, eps=1.0)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
        if linear.bias is not None:
            linear.bias.copy_(torch.tensor([0.5, -1.0]))
        bn.weight.copy_(torch.tensor([2.0, 0.5]))
        bn.bias.copy_(torch.tensor([1.0, 0.0]))
        bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
        bn.running_var.copy_(torch.tensor([3.0, 15.0]))
    return SeqBlocks(linear, bn).eval()


def integer(**widths: int) -> dict[str, Any]:
    return {"config": {"name": "integer", **widths}}


@pytest.mark.parametrize("name", ["jsc-toy", "jsc-s"])
def test_float_folding_preserves_the_function(name: str) -> None:
    """jsc-toy and jsc-s with random BatchNorm affine parameters and running statistics: the folded graph
    (every BatchNorm after a Linear gone, the input BatchNorm kept) computes the same outputs up to float32
    rounding on 64 random rows, in eval mode."""
    graph = model_graph(name, seed=3)
    result = fold_batchnorms(graph)
    bns = [n.name for n in graph.compute_nodes() if isinstance(graph.submodule(n), nn.BatchNorm1d)]
    folded = [f.batch_norm for f in result.info.folded]
    assert folded == bns[1:] and [k.node for k in result.info.kept] == ["seq_blocks_0"]
    assert not set(folded) & set(result.graph.node_names())
    assert result.graph.spec is not None and result.graph.spec.transforms[-1] == ("fold_batchnorm", {})
    with torch.no_grad():
        torch.testing.assert_close(result.graph(X), graph(X))


def test_golden_fold_by_hand() -> None:
    """s = γ/√(var + eps) = [2/√4, 0.5/√16] = [1, 0.125]; W' = W·s[:, None] = [[1, 2], [0.375, −0.125]];
    b' = (b − mean)·s + β = [(0.5 − 1)·1 + 1, (−1 + 2)·0.125 + 0] = [0.5, 0.125]. Without a Linear bias
    (b = 0): b' = [(0 − 1)·1 + 1, (0 + 2)·0.125] = [0, 0.25], a new bias. On u = [1, 1] both give
    Linear [3.5, 1] → BatchNorm [(3.5 − 1)/2·2 + 1, (1 + 2)/4·0.5] = [3.5, 0.375]."""
    graph = Graph.from_module(golden_module(), (2,))
    result = fold_batchnorms(graph)
    assert result.info.folded == (FoldedBatchNorm("seq_blocks_1", "seq_blocks_0"),)
    linear = result.graph.module.get_submodule("seq_blocks.0")
    assert linear.weight.tolist() == [[1.0, 2.0], [0.375, -0.125]]
    assert linear.bias.tolist() == [0.5, 0.125]
    with torch.no_grad():
        assert result.graph(torch.ones(1, 2)).tolist() == [[3.5, 0.375]]
    no_bias = fold_batchnorms(Graph.from_module(golden_module(bias=False), (2,))).graph
    assert no_bias.module.get_submodule("seq_blocks.0").bias.tolist() == [0.0, 0.25]
    assert sorted(no_bias.module.state_dict()) == ["seq_blocks.0.bias", "seq_blocks.0.weight"]


def test_input_is_not_mutated() -> None:
    """The input graph keeps its nodes, its BatchNorm modules and every tensor of its state dict."""
    graph = model_graph("jsc-toy", seed=1)
    names, state = graph.node_names(), {k: v.clone() for k, v in graph.module.state_dict().items()}
    fold_batchnorms(graph)
    assert graph.node_names() == names
    after = graph.module.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())


def test_unfoldable_batchnorm_is_left_and_reported() -> None:
    """Linear, ReLU, BatchNorm, Linear: the BatchNorm follows a ReLU, so it stays (reported with the reason)
    and the graph computes exactly what it did."""
    torch.manual_seed(0)
    module = settled(SeqBlocks(nn.Linear(16, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 5)))
    graph = Graph.from_module(module, (16,))
    result = fold_batchnorms(graph)
    assert result.info.folded == ()
    kept = [(k.node, k.reason) for k in result.info.kept]
    assert kept == [("seq_blocks_2", "its input 'seq_blocks_1' is not a Linear or Conv")]
    assert "seq_blocks_2" in result.graph.node_names()
    with torch.no_grad():
        assert torch.equal(result.graph(X), graph(X))


def test_quantized_folding_keeps_the_specs() -> None:
    """The golden model quantized: Linear data_in <8,4>, weight <4,2> (step 1/4, range −2 … 1.75), bias <6,3>,
    data_out <10,4>; BatchNorm data_out <8,2>. Folded, the Linear keeps data_in, weight and bias and takes the
    BatchNorm's data_out. Its weight quantizer applied to W' = [[1, 2], [0.375, −0.125]] gives [[1, 1.75]
    (saturated), [0.5 (1.5 steps, to even), 0 (−0.5 steps, to even)]]; b' = [0.5, 0.125] is on its grid. On
    u = [1, 1]: [1 + 1.75 + 0.5, 0.5 + 0 + 0.125] = [3.25, 0.625] → data_out frac 2: [3.25, 0.5 (2.5 steps,
    to even)]."""
    config = {
        "by": "name",
        "seq_blocks_0": integer(data_in_width=8, data_in_frac_width=4, weight_width=4, weight_frac_width=2,
                                bias_width=6, bias_frac_width=3, data_out_width=10, data_out_frac_width=4),
        "seq_blocks_1": integer(data_out_width=8, data_out_frac_width=2),
    }  # fmt: skip
    graph = quantize(golden_module(), config, input_shape=(2,))
    result = fold_batchnorms(graph)
    linear: Any = result.graph.module.get_submodule("seq_blocks.0")
    assert sorted(linear.quant) == ["bias", "data_in", "data_out", "weight"]
    assert linear.quant["data_out"].describe() == "integer(8,2)"
    assert linear.quant["weight"] is not graph.module.get_submodule("seq_blocks.0").quant["weight"]  # a copy
    with torch.no_grad():
        assert linear.q("weight", linear.weight).tolist() == [[1.0, 1.75], [0.5, 0.0]]
        assert linear.q("bias", linear.bias).tolist() == [0.5, 0.125]
        assert result.graph(torch.ones(1, 2)).tolist() == [[3.25, 0.5]]
    precision = result.graph.meta("seq_blocks_0").precision
    assert precision["data_out"].width == 8 and precision["data_out"].frac_width == 2


def test_registered_pass_and_replay() -> None:
    """``fold_batchnorm`` is a registered transform (its config has no keys) that records itself in the spec,
    so a checkpoint's transform list rebuilds a graph with the same state dict keys."""
    entry = load_pass("fold_batchnorm")
    graph = model_graph("jsc-toy")
    folded = entry.run(graph, {}).graph
    base = Graph.from_module(create_model("jsc-toy", INFO), (16,), ModelSpec("jsc-toy", INFO.to_dict()))
    assert folded.spec is not None
    rebuilt = apply_transforms(base, folded.spec.transforms)
    assert rebuilt.module.state_dict().keys() == folded.module.state_dict().keys()
    rebuilt.module.load_state_dict(folded.module.state_dict())
    rebuilt.module.eval()  # as load_graph leaves it
    with torch.no_grad():
        assert torch.equal(rebuilt(X), folded(X))


def test_bias_free_quantized_linear_takes_the_batchnorm_bias_spec() -> None:
    """The golden model without a Linear bias, quantized: Linear data_in and weight, BatchNorm bias <6,3>.
    The folded Linear gets the bias b' = [0, 0.25] (see the by-hand golden) quantized by the BatchNorm's bias
    spec (b' replaces β), on its grid; no data_out quantizer is left (neither had one after the fold)."""
    config = {
        "by": "name",
        "seq_blocks_0": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=3),
        "seq_blocks_1": integer(bias_width=6, bias_frac_width=3),
    }
    graph = quantize(golden_module(bias=False), config, input_shape=(2,))
    linear: Any = fold_batchnorms(graph).graph.module.get_submodule("seq_blocks.0")
    assert sorted(linear.quant) == ["bias", "data_in", "weight"]
    assert linear.quant["bias"].describe() == "integer(6,3)"
    with torch.no_grad():
        assert linear.q("bias", linear.bias).tolist() == [0.0, 0.25]


def test_conv_folding_per_output_channel() -> None:
    """digits-cnn (Conv2d 1, BatchNorm2d 2) and a Conv1d, BatchNorm1d chain, each BatchNorm with random γ, β
    and running statistics: the BatchNorm is folded into its conv, whose kernel of output channel c is the
    original kernel times s[c] = γ[c]/√(var[c] + eps), with b' = (b − mean)·s + β; the folded graph computes
    the same outputs up to float32 rounding (eval mode)."""
    digits = DatasetInfo("digits", 64, 10, tuple(str(i) for i in range(10)))
    torch.manual_seed(0)
    cnn = settled(create_model("digits-cnn", digits), 0, in_shape=(64,), passes=5)
    conv1d = settled(SeqBlocks(nn.Unflatten(1, (2, 8)), nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.Flatten()), 1)
    for module, features in ((cnn, 64), (conv1d, 16)):
        graph = Graph.from_module(module, (features,))
        result = fold_batchnorms(graph)
        assert [(f.batch_norm, f.into) for f in result.info.folded] == [("seq_blocks_2", "seq_blocks_1")]
        bn, conv = module.get_submodule("seq_blocks.2"), module.get_submodule("seq_blocks.1")
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        new = result.graph.module.get_submodule("seq_blocks.1")
        with torch.no_grad():
            torch.testing.assert_close(new.weight, conv.weight * scale.reshape(-1, *[1] * (conv.weight.dim() - 1)))
            torch.testing.assert_close(new.bias, (conv.bias - bn.running_mean) * scale + bn.bias)
            x = torch.randn(64, features) * 2
            torch.testing.assert_close(result.graph(x), graph(x))


def test_batchnorm2d_after_a_relu_is_kept() -> None:
    """Conv2d, ReLU, BatchNorm2d: the BatchNorm follows a ReLU, so it stays, with the reason."""
    module = settled(SeqBlocks(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2)))
    result = fold_batchnorms(Graph.from_module(module, (16,)))
    assert result.info.folded == ()
    assert [(k.node, k.reason) for k in result.info.kept] == [
        ("seq_blocks_3", "its input 'seq_blocks_2' is not a Linear or Conv")
    ]
