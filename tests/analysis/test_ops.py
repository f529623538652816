"""Golden counts of individual op families, hand-derived per sample in each docstring (B as stated)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netcarve import analyze
from netcarve.analysis import count
from netcarve.data.base import DatasetInfo
from netcarve.ir import Graph
from netcarve.models import create_model
from tests.analysis.nets import (
    Attention,
    ConvResidual,
    FunctionalMLP,
    GlobalPoolCNN,
    HalvedLinear,
    MixedOps,
    StridedGroupedConv,
    WithCumsum,
)

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


def test_conv1d_batchnorm_residual() -> None:
    """ConvResidual, per sample (C=4, L=10): conv out 40 elements, MACs 40·4·3 = 480, bias adds 40,
    params 4·4·3+4 = 52; BN 4·40 = 160; add 40; relu 40.
    flops 960+40+160+40+40 = 1240; bitops 480·1024 + (40+240)·32 = 500480.
    Backward: the conv's input is the model input → no dgrad; wgrad 480; bias grad 40; elementwise
    160+40+40 = 240 → 960+40+240 = 1240. At B = 2 everything doubles."""
    report = analyze(ConvResidual(), (2, 4, 10))
    t = report.total
    assert (t.params, t.macs, t.flops, t.bitops) == (52 + 8, 960, 2480, 1000960)
    assert (t.backward_dgrad_macs, t.backward_wgrad_macs, t.backward_flops) == (0, 960, 2480)
    assert [(r.name, r.flops) for r in report.layers] == [("conv", 2000), ("bn", 320), ("add", 80), ("relu", 80)]
    assert report.method == "closed_form"


def test_conv2d_stride_padding_groups() -> None:
    """StridedGroupedConv at B = 1. conv1: out (8, 5, 5) = 200 (⌊(9+2−3)/2⌋+1 = 5), MACs 200·(4/2)·3·3
    = 3600, bias adds 200, params 8·2·9+8 = 152; relu 200; conv2: out (4, 5, 5) = 100, MACs 100·(8/4)·3·1
    = 600, no bias, params 4·2·3 = 24. flops 2·4200 + 200 + 200 = 8800.
    Backward: conv1 has no dgrad (model input), wgrad 3600, bias grad 200; conv2 dgrad 600 and wgrad
    600; relu 200 → 2·4800 + 200 + 200 = 10000. FlopCounterMode's conv "flops" are 2·MACs = 8400."""
    model = StridedGroupedConv()
    report = analyze(model, (1, 4, 9, 9))
    t = report.total
    assert (t.params, t.macs, t.flops) == (176, 4200, 8800)
    assert (t.backward_dgrad_macs, t.backward_wgrad_macs, t.backward_flops) == (600, 4200, 10000)
    assert report.layer("conv1").output_shape == (1, 8, 5, 5)
    assert report.layer("conv2").macs == 600
    with FlopCounterMode(display=False) as fcm:
        model(torch.zeros(1, 4, 9, 9))
    assert fcm.get_total_flops() == 2 * t.macs


def test_functional_calls_and_matmul_operator() -> None:
    """FunctionalMLP at B = 1: x @ w1 (16×8) 128 MACs; + b1 8; relu 8; F.linear(h, w2 (5×8)) 40 MACs;
    × 2 5. flops 256+8+8+80+5 = 357; bitops (128+40)·1024 + (8+8+5)·32 = 172704.
    Backward: x @ w1 → x needs no grad, so only wgrad 128; F.linear → dgrad 40 + wgrad 40;
    elementwise 8+8+5 → 2·208 + 21 = 437. Params sit on the get_attr nodes: 128 + 8 + 40 = 176."""
    report = analyze(FunctionalMLP(), (1, 16))
    t = report.total
    assert (t.params, t.macs, t.flops, t.bitops) == (176, 168, 357, 172704)
    assert (t.backward_dgrad_macs, t.backward_wgrad_macs, t.backward_flops) == (40, 168, 437)
    assert report.layer("matmul").macs == 128
    assert report.layer("linear").macs == 40
    assert report.layer("w1").params == 128
    assert report.method == "dispatch"


def test_attention_block_on_3d_tensors() -> None:
    """Attention, per sample (T=4, d=8): q, k, v Linear on (4, 8): 256 MACs and 32 bias adds each;
    q @ kᵀ (4×8)@(8×4) 128 MACs; × scale 16; softmax 5·16 = 80; @ v (4×4)@(4×8) 128 MACs.
    MACs 1024, flops 2048 + 96 + 96 = 2240. Backward: q, k, v inputs need no grad (wgrad 768, bias 96);
    both matmuls take two data operands that need grad → dgrad 2·128 + 2·128 = 512;
    elementwise 96 → 2·1280 + 96 + 96 = 2752. At B = 2 everything doubles."""
    report = analyze(Attention(), (2, 4, 8))
    t = report.total
    assert (t.macs, t.flops) == (2048, 4480)
    assert (t.backward_dgrad_macs, t.backward_wgrad_macs, t.backward_flops) == (1024, 1536, 5504)
    scores = report.layer("matmul")
    assert (scores.macs, scores.backward_dgrad_macs, scores.backward_wgrad_macs) == (256, 512, 0)
    assert report.layer("softmax").flops == 160
    assert report.uncounted == {}


def test_subclass_of_linear_is_counted_with_its_own_ops() -> None:
    """jsc-tiny with seq_blocks_2 replaced by HalvedLinear (Linear then × 0.5), B = 1: the Linear node
    counts 80 MACs, 5 bias adds and 5 mul → 170 flops (jsc-tiny's 250 + 5 = 255 in total), backward
    410 + 5 = 415, bitops 84800 + 5·32 = 84960."""
    graph = Graph.from_module(create_model("jsc-tiny", JSC), (16,))
    old = graph.submodule(graph.node("seq_blocks_2"))
    new = HalvedLinear(16, 5)
    new.load_state_dict(old.state_dict())
    setattr(graph.module.get_submodule("seq_blocks"), "2", new)
    report = analyze(graph, (1, 16))
    layer = report.layer("seq_blocks_2")
    assert (layer.params, layer.macs, layer.flops) == (85, 80, 170)
    assert (report.total.flops, report.total.backward_flops, report.total.bitops) == (255, 415, 84960)
    assert report.method == "dispatch"  # a user subclass may compute more than its base: counted by ops


def test_subclass_inside_a_traced_model() -> None:
    """fx inlines a user subclass's forward: F.linear (80 MACs, 5 bias adds) and × 0.5 (5) → 170 flops."""
    model = torch.nn.Sequential(HalvedLinear(16, 5))
    assert analyze(model, (1, 16)).total.flops == 170


def test_quantized_subclass_counts_its_layer_not_its_fake_quantization() -> None:
    """jsc-toy quantized to integer(8, 4) for data_in/weight/bias of Linear and ReLU (netcarve.quantize):
    fake quantization is simulation, so MACs/flops stay those of jsc-toy (232, 670); bitops per sample
    232·8·8 + 21·8 (bias) + BN (64+32+32+20)·32 + ReLU (16+8+8+5)·8 = 14848 + 168 + 4736 + 296 = 20048."""
    from netcarve import quantize

    config = {"name": "integer", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 8}
    config |= {"weight_frac_width": 4, "bias_width": 8, "bias_frac_width": 4}
    graph = quantize(create_model("jsc-toy", JSC), {"by": "type", "default": {"config": config}})
    for method in ("closed_form", "dispatch"):
        t = analyze(graph, (1, 16), method=method).total  # type: ignore[arg-type]
        assert (t.macs, t.flops, t.bitops, t.size_bits) == (232, 670, 20048, 253 * 8 + 74 * 32)


@pytest.mark.parametrize("method", ["closed_form", "dispatch"])
def test_backward_linear_first_layer_has_no_dgrad(method: str) -> None:
    """hls4ml-jet (L(16,64) ReLU L(64,32) ReLU L(32,32) ReLU L(32,5)), B = 1: MACs 1024+2048+1024+160 =
    4256. The first Linear reads the model input: no dgrad → dgrad 4256−1024 = 3232, wgrad 4256;
    bias grads 64+32+32+5 = 133; ReLUs 64+32+32 = 128 → 2·7488 + 133 + 128 = 15237.
    Freezing the first Linear: its ReLU and the second Linear's input need no grad either →
    dgrad 1024+160 = 1184, wgrad 2048+1024+160 = 3232, bias 69, ReLUs 32+32 → 2·4416 + 69 + 64 = 8965."""
    model = create_model("hls4ml-jet", JSC)
    report = analyze(model, (1, 16), method=method)  # type: ignore[arg-type]
    first = report.layer("seq_blocks_0")
    assert (first.backward_dgrad_macs, first.backward_wgrad_macs) == (0, 1024)
    t = report.total
    assert (t.backward_dgrad_macs, t.backward_wgrad_macs, t.backward_flops) == (3232, 4256, 15237)
    for p in model.get_submodule("seq_blocks.0").parameters():
        p.requires_grad_(False)
    t = analyze(model, (1, 16), method=method).total  # type: ignore[arg-type]
    assert (t.backward_dgrad_macs, t.backward_wgrad_macs, t.backward_flops) == (1184, 3232, 8965)


def test_ops_without_formula_are_listed_as_uncounted() -> None:
    """WithCumsum: Linear(16, 4) is counted (64 MACs at B = 1); cumsum twice and exp once have no
    formula and are listed with their call counts, per layer and in total."""
    report = analyze(WithCumsum(), (1, 16))
    assert report.uncounted == {"aten.cumsum": 2, "aten.exp": 1}
    assert report.layer("cumsum").uncounted == {"aten.cumsum": 1}
    assert report.layer("exp").uncounted == {"aten.exp": 1}
    assert report.total.macs == 64


def test_free_ops_cost_nothing() -> None:
    """MixedOps at B = 1: flatten, Dropout (eval), Identity cost 0; Linear(6, 4) 24 MACs + 4 bias adds
    = 52 flops; Softmax 5·4 = 20; relu 4; × buffer 4; + parameter 4 → 84 flops, nothing uncounted."""
    report = analyze(MixedOps(), (1, 2, 3))
    assert [(r.name, r.flops) for r in report.layers if r.name in ("flatten", "drop", "id_1")] == [
        ("flatten", 0),
        ("drop", 0),
        ("id_1", 0),
    ]
    assert (report.total.macs, report.total.flops) == (24, 84)
    assert report.uncounted == {}


@pytest.mark.parametrize("method", ["closed_form", "dispatch"])
def test_adaptive_average_pooling_to_one_is_counted(method: str) -> None:
    """GlobalPoolCNN at B = 2, per sample: conv out (4, 6, 6) = 144 elements, MACs 144·1·3·3 = 1296, bias
    adds 144 → 2736 flops; relu 144; global average pooling: one add per window element, 4 windows of
    6·6 → 144; Linear(4, 3): 12 MACs + 3 bias adds → 27. flops 2736 + 144 + 144 + 27 = 3051, MACs 1308.
    Backward: the conv's input is the model input (no dgrad), wgrad 1296 + bias grad 144 → 2736; relu 144;
    pool 144; linear dgrad 12 + wgrad 12 + bias 3 → 51; 3075. At B = 2: MACs 2616, flops 6102, backward
    6150, the pool 288 (the dispatch path sees it as aten.mean, which it reported uncounted)."""
    x = torch.zeros(2, 1, 8, 8)
    report = analyze(GlobalPoolCNN(), (x,), method=method)  # type: ignore[arg-type]
    t = report.total
    assert report.uncounted == {}
    assert report.layer("pool").flops == 288 and report.layer("pool").backward_flops == 288
    assert (t.macs, t.flops, t.backward_flops) == (2616, 6102, 6150)


def test_global_average_pooling_agrees_between_paths_and_spellings() -> None:
    """The dispatch counter gives per-node counts identical to the closed form's for AdaptiveAvgPool2d(1),
    and ``x.mean((2, 3))`` (only the dispatch path counts it) costs the same 288 adds at B = 2, so the same
    totals as in the test above."""
    shape = (2, 1, 8, 8)
    graph = Graph.from_module(GlobalPoolCNN(), shape[1:])
    assert count(graph, shape, "closed_form").counts == count(graph, shape, "dispatch").counts
    functional = analyze(GlobalPoolCNN(functional=True), shape)
    assert functional.method == "dispatch" and functional.uncounted == {}
    assert functional.layer("mean").flops == 288
    t = functional.total
    assert (t.macs, t.flops, t.backward_flops) == (2616, 6102, 6150)
