from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.errors import ModelError, UnknownNameError
from netcarve.ir import Graph
from netcarve.models import MODELS, create_model

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("jsc-tiny", 117),
        ("jsc-toy", 327),
        ("jsc-three-linear-layers", 661),
        ("jsc-s", 5615),
        ("hls4ml-jet", 4389),
        ("digits-cnn", 1589),
    ],
)
def test_parameter_counts_on_jsc(name: str, expected: int) -> None:
    """Golden counts on 16 features / 5 classes (BN has 2 params per feature: weight and bias).

    jsc-tiny: BN16 32 + L(16,5) 85 = 117.  jsc-toy: 32 + 136 + 16 + 72 + 16 + 45 + 10 = 327.
    jsc-three-linear-layers: 32 + 272 + 272 + 85 = 661.
    jsc-s: BN16 32 + L(16,64) 1088 + BN64 128 + L(64,32) 2080 + L(32,32) 1056 + L(32,32) 1056 + L(32,5) 165
           + BN5 10 = 5615.
    hls4ml-jet: L(16,64) 1088 + L(64,32) 2080 + L(32,32) 1056 + L(32,5) 165 = 4389.
    digits-cnn (16 features as one 4×4 image): Conv(1,8,3) 80 + BN2d(8) 16 + Conv(8,16,3) 1168
    + L(16·2·2 = 64, 5) 325 = 1589.
    """
    assert n_params(create_model(name, JSC)) == expected


def test_models_follow_dataset_shape() -> None:
    info = DatasetInfo("digits", 64, 10, tuple(str(i) for i in range(10)))
    for name in MODELS.names():
        out = create_model(name, info).eval()(torch.randn(3, 64))
        assert out.shape == (3, 10), name


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_traces_with_seq_block_names(name: str) -> None:
    """Registry-wide: every model traces, node names are seq_blocks_N, the graph computes the same output."""
    torch.manual_seed(0)
    module = create_model(name, JSC).eval()
    graph = Graph.from_module(module, (16,))
    names = [n for n in graph.node_names() if n not in ("x", "output")]
    assert names == [f"seq_blocks_{i}" for i in range(len(names))]
    x = torch.randn(4, 16)
    torch.testing.assert_close(graph(x), module(x))
    assert graph.meta("output").inputs[0].shape == (1, 5)


def test_relu_is_not_inplace() -> None:
    relus = [m for m in create_model("jsc-toy", JSC).modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(r.inplace for r in relus)


def test_user_model_from_file(tmp_path: Path) -> None:
    src = tmp_path / "mine.py"
    src.write_text(
        "from torch import nn\n"
        "def build(in_features, num_classes):\n"
        "    return nn.Sequential(nn.Linear(in_features, 7), nn.ReLU(), nn.Linear(7, num_classes))\n"
    )
    model = create_model(f"{src}:build", JSC)
    assert n_params(model) == 16 * 7 + 7 + 7 * 5 + 5


def test_user_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        create_model(f"{tmp_path}/none.py:f", JSC)
    with pytest.raises(ModelError, match="has no attribute 'nope'"):
        create_model("torch.nn:nope", JSC)
    with pytest.raises(UnknownNameError, match="did you mean 'jsc-toy'"):
        create_model("jsc-toi", JSC)
