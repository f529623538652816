"""digits-cnn and convolutional networks end to end: parameters, counts, width through pooling and
flatten, grouped convolutions, per-layer Conv2d quantization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netcarve
from netcarve.data.base import DatasetInfo
from netcarve.errors import NetcarveError, PassError
from netcarve.ir.graph import Graph
from netcarve.models import create_model
from netcarve.transforms.quantize import QuantizedModule
from netcarve.transforms.width import change_width

DIGITS = DatasetInfo("digits", 64, 10, tuple(str(i) for i in range(10)))


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("digits-cnn", DIGITS)
    bn = model.get_submodule("seq_blocks.2")
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():  # non-trivial running statistics, so a net2net copy has something to copy
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _both(multiplier: int) -> dict[str, object]:
    return {"by": "type", "conv2d": {"config": {"name": "output_only", "channel_multiplier": multiplier}}}


def test_parameter_count() -> None:
    """Conv2d(1, 8, 3): 8·1·9 + 8 = 80; BatchNorm2d(8): 2·8 = 16; Conv2d(8, 16, 3): 16·8·9 + 16 = 1168;
    Linear(16·2·2 = 64, 10): 640 + 10 = 650. Total 80 + 16 + 1168 + 650 = 1914."""
    assert sum(p.numel() for p in _cnn().parameters()) == 1914


@pytest.mark.parametrize("method", ["auto", "dispatch"])
def test_counts_at_batch_1_and_8(method: str) -> None:
    """One 8×8 image (B = 1):
    conv1 out 8·8·8 = 512, 1·9 MACs each → 4608 MACs, 512 bias adds; BN 4·512 = 2048; ReLU 512;
    MaxPool2d(2) out 8·4·4 = 128 × window 4 = 512 comparisons; conv2 out 16·4·4 = 256, 8·9 = 72 MACs each →
    18432 MACs, 256 bias adds; ReLU 256; AdaptiveAvgPool2d(2) on 4×4: windows of 2×2, 16·2·2 outputs × 4 =
    256 adds; Flatten 0; Linear 64·10 = 640 MACs, 10 bias adds.
    MACs 4608 + 18432 + 640 = 23680; FLOPs 2·23680 + (512 + 256 + 10) + (2048 + 512 + 512 + 256 + 256)
    = 47360 + 778 + 3584 = 51722. At B = 8 everything is 8×: 189440 MACs, 413776 FLOPs."""
    model = _cnn()
    one = netcarve.analyze(model, (1, 64), method=method)  # type: ignore[arg-type]
    eight = netcarve.analyze(model, (8, 64), method=method)  # type: ignore[arg-type]
    assert (one.total.macs, one.total.flops, one.uncounted) == (23680, 51722, {})
    assert (eight.total.macs, eight.total.flops, eight.uncounted) == (189440, 413776, {})
    assert one.layer("seq_blocks_4").flops == 512 and one.layer("seq_blocks_7").flops == 256
    assert one.layer("seq_blocks_8").flops == 0 and one.layer("seq_blocks_0").flops == 0


@pytest.mark.parametrize("multiplier", [2, 0.5])
def test_width_through_pooling_and_flatten_keeps_the_function(multiplier: float) -> None:
    """×2: conv1 8 → 16 (BN follows), conv2 16 → 32, so the Linear reads 32·2·2 = 128 features (blocks of
    4). Net2net widening computes the same outputs; ×0.5 (8 → 4, 16 → 8, Linear 32) changes the shapes."""
    model = _cnn()
    graph = change_width(model, _both(multiplier))  # type: ignore[arg-type]
    conv1, bn, conv2, linear = (graph.module.get_submodule(f"seq_blocks.{i}") for i in (1, 2, 5, 9))
    c1, c2 = int(8 * multiplier), int(16 * multiplier)
    assert (conv1.out_channels, bn.num_features, conv2.in_channels, conv2.out_channels) == (c1, c1, c1, c2)
    assert (linear.in_features, linear.out_features) == (c2 * 4, 10)
    x = torch.randn(6, 64)
    if multiplier > 1:
        torch.testing.assert_close(graph(x), model(x))
    assert graph(x).shape == (6, 10)


class ConvFlatLinear(nn.Module):
    """Conv2d(1, 3, 3, pad 1) on 4×4 → ReLU → Flatten (3 blocks of 16) → Linear(48, 2)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv, self.fc = nn.Conv2d(1, 3, 3, padding=1), nn.Linear(48, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).view(x.shape[0], -1))


def test_flatten_resizes_the_linear_by_blocks() -> None:
    """Widening conv 3 → 5 copies channels 0, 1 (net2net): fc's columns 48..63 copy columns 0..31 and the
    copied blocks are halved — same function. Shrinking to 2 keeps the 2 channels of largest L1 norm, i.e.
    fc keeps exactly their two 16-column blocks."""
    model = ConvFlatLinear().eval()
    wide = change_width(model, {"by": "name", "conv": {"config": {"out_channels": 5}}}, input_shape=(1, 4, 4))
    assert wide.module.fc.in_features == 80
    x = torch.randn(5, 1, 4, 4)
    torch.testing.assert_close(wide(x), model(x))
    narrow = change_width(model, {"by": "name", "conv": {"config": {"out_channels": 2}}}, input_shape=(1, 4, 4))
    kept = torch.sort(torch.sort(-model.conv.weight.abs().sum((1, 2, 3)), stable=True).indices[:2]).values
    columns = torch.cat([torch.arange(16) + 16 * int(c) for c in kept])
    torch.testing.assert_close(narrow.module.fc.weight, model.fc.weight[:, columns])


def test_grouped_convolution_scales_when_groups_divide(caplog: pytest.LogCaptureFixture) -> None:
    """Conv(1→4) → Conv(4→4, groups 2) → Conv(4→2): widening the first ×2 gives the grouped conv 8 inputs
    (8/2 = 4 per group); ×1.5 (6 outputs) still divides by 2; a target of 5 channels does not: error. The
    widened grouped conv keeps the shapes, not the function, and a warning says so."""

    class Grouped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.g, self.c = nn.Conv1d(1, 4, 1), nn.Conv1d(4, 4, 1, groups=2), nn.Conv1d(4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.g(self.a(x)))

    graph = Graph.from_module(Grouped(), (1, 3))
    both = {"by": "name", "a": {"config": {"out_channels": 8}}, "g": {"config": {"out_channels": 6}}}
    new = netcarve.change_width(graph, both)
    g = new.module.g
    assert (g.in_channels, g.out_channels, tuple(g.weight.shape)) == (8, 6, (6, 4, 1))
    assert new(torch.randn(2, 1, 3)).shape == (2, 2, 3)
    assert any("'g' is a grouped convolution (groups = 2)" in r.getMessage() for r in caplog.records)
    with pytest.raises(PassError, match=r"^'g': a grouped convolution \(groups = 2\) cannot have 5 input"):
        netcarve.change_width(graph, {"by": "name", "a": {"config": {"out_channels": 5}}})


def test_conv2d_quantization_per_layer() -> None:
    """By name: the first conv's weights at 8 bits, the second's at 4 (frac 2: a grid of 1/4 in [−2, 1.75]);
    size_bits = 72·8 + 1152·4 + (8 + 16 + 16 + 650)·32 = 576 + 4608 + 22080 = 27264 (biases, BN, Linear
    float)."""
    model = _cnn()

    def q(bits: int) -> dict[str, object]:
        return {"config": {"name": "integer", "weight_width": bits, "weight_frac_width": bits // 2}}

    graph = netcarve.quantize(model, {"by": "name", "seq_blocks_1": q(8), "seq_blocks_5": q(4)})
    first, second = graph.submodule(graph.node("seq_blocks_1")), graph.submodule(graph.node("seq_blocks_5"))
    assert isinstance(first, QuantizedModule) and isinstance(second, QuantizedModule)
    assert graph.meta("seq_blocks_1").operand_precision("weight").width == 8
    assert graph.meta("seq_blocks_5").operand_precision("weight").width == 4
    w = second.q("weight", second.weight)
    torch.testing.assert_close(w, torch.clamp(torch.round(second.weight * 4), -8, 7) / 4)
    assert netcarve.analyze(graph, (1, 64)).total.size_bits == 27264


def test_input_group_stays_fixed() -> None:
    """The Unflatten at the input carries no width change: the first conv keeps its one input channel."""
    graph = change_width(_cnn(), _both(2))  # type: ignore[arg-type]
    assert graph.module.get_submodule("seq_blocks.1").in_channels == 1


def test_a_literal_view_is_a_barrier() -> None:
    class Literal(ConvFlatLinear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).view(-1, 48))

    with pytest.raises(NetcarveError, match=r"'conv'.*cannot carry a width change"):
        change_width(Literal(), {"by": "name", "conv": {"config": {"out_channels": 5}}}, input_shape=(1, 4, 4))
