from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.errors import ModelError
from netcarve.ir import Graph, Precision
from netcarve.models import create_model

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(x @ self.w.t())
        return y + y


class MyLinear(nn.Linear):
    pass


def test_shapes_and_kinds_of_jsc_toy() -> None:
    graph = Graph.from_module(create_model("jsc-toy", JSC), (16,))
    kinds = [graph.meta(n).kind for n in graph.compute_nodes()]
    assert kinds[:5] == ["batch_norm1d", "relu", "linear", "batch_norm1d", "relu"]
    lin = graph.meta("seq_blocks_2")
    assert lin.inputs[0].shape == (1, 16) and lin.output is not None and lin.output.shape == (1, 8)
    graph.annotate(batch_size=7)
    assert graph.meta("seq_blocks_2").output.shape == (7, 8)  # type: ignore[union-attr]


def test_kinds_resolve_along_mro_and_functions() -> None:
    graph = Graph.from_module(Functional(), (3,))
    kinds = {graph.meta(n).kind for n in graph.compute_nodes()}
    assert {"matmul", "relu", "add"} <= kinds
    sub = Graph.from_module(nn.Sequential(MyLinear(3, 2)), (3,))
    assert [sub.meta(n).kind for n in sub.compute_nodes()] == ["linear"]


def test_copy_shares_nothing_and_keeps_precision() -> None:
    graph = Graph.from_module(create_model("jsc-tiny", JSC), (16,))
    graph.set_precision("seq_blocks_2", {"weight": Precision("integer", 8, 4)})
    twin = graph.copy()
    assert twin.meta("seq_blocks_2").operand_precision("weight").width == 8
    with torch.no_grad():
        twin.module.get_submodule("seq_blocks.2").weight.zero_()
    assert graph.module.get_submodule("seq_blocks.2").weight.abs().sum() > 0
    assert graph.meta("seq_blocks_0").operand_precision("weight").width == 32  # float default


def test_untraceable_model_is_a_model_error() -> None:
    class Dynamic(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(ModelError, match="cannot be traced"):
        Graph.from_module(Dynamic(), (3,))


def test_wrong_input_shape_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="forward pass on input shape"):
        Graph.from_module(create_model("jsc-tiny", JSC), (15,))
