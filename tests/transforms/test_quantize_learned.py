"""The learned quantizer (issue 22): its forward is the integer quantizer at the learned per-element formats,
its frac gradient HGQ's −ln 2 · δ, EBOPs by hand, pruning, freezing, checkpoints and config errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import netcarve
from netcarve import analyze
from netcarve.data.base import DatasetInfo
from netcarve.errors import ConfigError
from netcarve.ir import Graph
from netcarve.train import build_graph, load_graph, save_checkpoint
from netcarve.transforms.quantize.formats import set_many
from netcarve.transforms.quantize.learned import (
    LearnedOperand,
    ebops,
    freeze_learned,
    learned_formats,
    learned_operands,
)
from netcarve.transforms.quantize.quantizers import QUANTIZERS

TOY = DatasetInfo("toy", 2, 1, ("a",))


def learned(**keys: Any) -> dict[str, Any]:
    return {"config": {"name": "learned", **keys}}


def integer_twin(graph: Graph, config: dict[str, Any], model: nn.Module, shape: tuple[int, ...]) -> Graph:
    """``model`` quantized by ``config`` with the integer quantizer instead, then given ``graph``'s learned
    per-element formats (and its parameters)."""
    plain = {
        k: ({"config": {**v["config"], "name": "integer"}} if isinstance(v, dict) else v) for k, v in config.items()
    }
    for entry in plain.values():
        if isinstance(entry, dict):
            entry["config"] = {k: v for k, v in entry["config"].items() if not k.endswith("_granularity")}
    twin = netcarve.quantize(model, plain, input_shape=shape)
    twin.module.load_state_dict({k: v for k, v in graph.module.state_dict().items() if ".learned." not in k})
    return set_many(twin, learned_formats(graph))


JET_CONFIG = {
    "by": "name",
    "default": learned(data_in_width=8, data_in_frac_width=4, weight_width=8, weight_frac_width=4,
                       bias_width=8, bias_frac_width=3, data_out_width=8, data_out_frac_width=4),
    "seq_blocks_2": learned(data_in_width=8, data_in_frac_width=3, weight_width=8, weight_frac_width=2,
                            weight_granularity="channel", bias_width=8, bias_frac_width=2,
                            bias_granularity="layer", data_in_granularity="layer",
                            weight_round="truncate", data_in_overflow="wrap"),
}  # fmt: skip


@pytest.mark.parametrize("training", [True, False])
def test_forward_is_the_integer_quantizer_at_the_learned_formats(training: bool) -> None:
    """hls4ml-jet, learned everywhere (per element, per channel, per layer; truncate and wrap in one layer),
    fracs jittered to 1..6 after a calibration batch: its output equals, bit for bit, the same network
    quantized with ``integer`` and the learned per-element formats set by ``set_many`` — in training mode
    (ranges already covering the batch) and in eval mode."""
    torch.manual_seed(0)
    model = netcarve.create_model("hls4ml-jet", DatasetInfo("jsc", 16, 5, tuple("gqwzt")))
    graph = netcarve.quantize(model, JET_CONFIG, input_shape=(16,))
    x = torch.randn(256, 16) * 2
    graph.module.train()
    graph.module(x)  # calibrates the activation ranges on x
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in graph.module.named_parameters():
            if name.endswith(".frac"):
                p.copy_(torch.randint(1, 7, p.shape, generator=g).float() + 0.3 * torch.rand(p.shape, generator=g))
    graph.module.train(training)
    got = graph.module(x)
    twin = integer_twin(graph, JET_CONFIG, model, (16,))
    twin.module.eval()
    assert any(f["width"].eq(0).any() for ops in learned_formats(graph).values() for f in ops.values())
    torch.testing.assert_close(got, twin.module(x), rtol=0, atol=0)
    frozen = freeze_learned(graph).graph
    torch.testing.assert_close(frozen.module(x), twin.module(x), rtol=0, atol=0)
    assert all(s.quantizer.name == "integer" for n in frozen.compute_nodes() if n.op == "call_module"
               for s in getattr(frozen.submodule(n), "quant", {}).values())  # fmt: skip


def test_widths_and_frac_gradient_by_hand() -> None:
    """One frac for x = [0.3, −0.7] (per layer), frac 2.2 → f = 2: k = round(1.2) = 1 and round(−2.8) = −3,
    width 1 + max(bits(1), bits(3 − 1)) = 1 + 2 = 3 (range [−1, 0.75]); q = [0.25, −0.75], δ = q − x =
    [−0.05, −0.05]. The loss Σ q · [1, 2]: ∂/∂x = [1, 2] (inside the range), ∂/∂frac = Σ c · (−ln 2 · δ) =
    −ln 2 · (−0.05 − 0.1) = 0.15 · ln 2. x = [0.1, −0.1] at f = 2: k = 0 both (0.4 and −0.4 round to 0), width
    0: pruned, exactly 0, no value gradient, and ∂/∂frac = −ln 2 · (0 − 0.1 + (0 + 0.1) · 2) = −0.1 · ln 2."""
    spec = QUANTIZERS.get("learned").make_spec(8, 2, granularity="layer")
    state = LearnedOperand((1,), 2, activation=False)
    with torch.no_grad():
        state.frac.fill_(2.2)
    x = torch.tensor([0.3, -0.7], requires_grad=True)
    width, frac = state.formats(spec, x)
    assert (width.tolist(), frac.tolist()) == ([3.0], [2.0])
    q = state(x, spec)
    assert q.tolist() == [0.25, -0.75]
    (q * torch.tensor([1.0, 2.0])).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 2.0]
    assert state.frac.grad is not None
    assert state.frac.grad.item() == pytest.approx(0.15 * math.log(2), rel=1e-6)
    state.frac.grad = None
    small = torch.tensor([0.1, -0.1], requires_grad=True)
    assert state.formats(spec, small)[0].tolist() == [0.0]
    q = state(small, spec)
    assert q.tolist() == [0.0, 0.0]
    (q * torch.tensor([1.0, 2.0])).sum().backward()
    assert small.grad is not None and small.grad.tolist() == [0.0, 0.0]
    assert state.frac.grad.item() == pytest.approx(-0.1 * math.log(2), rel=1e-6)


def two_layers() -> Graph:
    """Linear _0 (2 → 2, no bias) → Linear _1 (2 → 1, no bias), learned data_in and weight per element;
    weights, fracs and activation ranges set by hand (see :func:`test_ebops_of_a_two_layer_toy_by_hand`)."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    cfg = {"by": "type", "linear": learned(data_in_width=8, data_in_frac_width=2, weight_width=8, weight_frac_width=2)}
    graph = netcarve.quantize(model, cfg, input_shape=(2,))
    first, second = (graph.submodule(graph.node(n)) for n in ("_0", "_1"))
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[0.5, 0.0], [1.5, -0.25]]))
        second.weight.copy_(torch.tensor([[0.75, -2.0]]))
        states0, states1 = learned_operands(first), learned_operands(second)
        states0["data_in"].lo.copy_(torch.tensor([-1.0, 0.0]))
        states0["data_in"].hi.copy_(torch.tensor([1.0, 0.75]))
        states1["data_in"].lo.copy_(torch.tensor([-0.5, -3.0]))
        states1["data_in"].hi.copy_(torch.tensor([0.5, 3.0]))
        states1["data_in"].frac.fill_(1.0)
        states1["weight"].frac.fill_(1.0)
    graph.module.eval()
    return graph


def test_ebops_of_a_two_layer_toy_by_hand() -> None:
    """_0: weight f = 2: 0.5 → k 2 → 1 + bits(2) = 3 bits; 0.0 → k 0 → pruned, 0; 1.5 → k 6 → 4; −0.25 → k −1
    → 1 + bits(0) = 1. data_in f = 2 over [−1, 1] → k −4..4 → 1 + max(bits(4), bits(3)) = 4; over [0, 0.75] →
    k 0..3 → 1 + bits(3) = 3. EBOPs Σ_o Σ_i w·x = (3·4 + 0·3) + (4·4 + 1·3) = 31.
    _1: weight f = 1: 0.75 → k round(1.5) = 2 → 3; −2.0 → k −4 → 1 + bits(3) = 3. data_in f = 1 over ±0.5 → k
    ±1 → 1 + max(bits(1), bits(0)) = 2; over ±3 → k ±6 → 1 + max(bits(6), bits(5)) = 4. EBOPs 3·2 + 3·4 =
    18. Total 49. Gradient (1 per group, 0 where pruned): ∂/∂f of _0's weight = its inputs' bits [[4, 0],
    [4, 3]]; of _0's data_in = Σ_o bits(w_oi) = [3 + 4, 0 + 1] = [7, 1]. The frozen graph's per-element
    BitOPs (the analysis, one sample: no bias, no other op) are the same 49."""
    graph = two_layers()
    total = ebops(graph)
    assert total.item() == 49.0
    total.backward()
    first = learned_operands(graph.submodule(graph.node("_0")))
    assert first["weight"].frac.grad is not None and first["data_in"].frac.grad is not None
    assert first["weight"].frac.grad.tolist() == [[4.0, 0.0], [4.0, 3.0]]
    assert first["data_in"].frac.grad.tolist() == [7.0, 1.0]
    frozen = freeze_learned(graph).graph
    assert ebops(frozen).item() == 49.0
    assert analyze(frozen, (1, 2)).total.bitops == 49
    assert analyze(graph, (1, 2)).total.ebops == 49.0  # the search metric ``ebops``: the same definition


def test_a_pruned_weight_is_zero_in_training_and_after_freeze() -> None:
    """_0's weight [0][1] = 0.0 rounds to k 0 at any frac: width 0, so the layer's effective weight there is
    exactly 0 in training mode, and the frozen graph holds it at width 0 (the analysis counts 0 bits for it:
    _0's stored bits are 3 + 0 + 4 + 1 = 8; 1 of 4 weights pruned)."""
    graph = two_layers()
    first = graph.submodule(graph.node("_0"))
    graph.module.train()
    w = first.q("weight", first.weight)
    assert w[0, 1].item() == 0.0 and w.tolist() == [[0.5, 0.0], [1.5, -0.25]]
    frozen = freeze_learned(graph).graph
    spec = frozen.submodule(frozen.node("_0")).quant["weight"]
    assert spec.formats is not None and spec.formats.width.tolist() == [[3, 0], [4, 1]]
    layer = analyze(frozen, (1, 2)).layer("_0")
    assert (layer.size_bits, layer.pruned_share) == (8, 0.25)


def test_checkpoint_round_trip_is_bit_exact(tmp_path: Path) -> None:
    """A learned graph after a training step (fracs, ranges and weights moved) saves its fracs and ranges in
    the state dict and reloads (the quantize pass replayed) with the same state and the same outputs; its
    frozen graph (a ``freeze_learned`` transform and per-element formats) reloads bit for bit too."""
    info = DatasetInfo("jsc", 16, 5, tuple("gqwzt"))
    torch.manual_seed(0)
    graph = build_graph("hls4ml-jet", info, (("quantize", JET_CONFIG),))
    x = torch.randn(64, 16)
    graph.module.train()
    optimizer = torch.optim.Adam(graph.module.parameters(), lr=0.3)
    (graph.module(x).square().sum() + 1e-3 * ebops(graph)).backward()
    optimizer.step()
    graph.module.eval()
    fresh = build_graph("hls4ml-jet", info, (("quantize", JET_CONFIG),))
    assert any(not torch.equal(v, fresh.module.state_dict()[k]) for k, v in graph.module.state_dict().items()
               if k.endswith(".frac"))  # fmt: skip
    save_checkpoint(tmp_path / "learned.pt", graph)
    back = load_graph(tmp_path / "learned.pt", "hls4ml-jet", info)
    for key, value in graph.module.state_dict().items():
        assert torch.equal(back.module.state_dict()[key], value), key
    assert any(".learned." in k for k in back.module.state_dict())
    back.module.eval()
    torch.testing.assert_close(back.module(x), graph.module(x), rtol=0, atol=0)
    frozen = freeze_learned(graph).graph
    save_checkpoint(tmp_path / "frozen.pt", frozen)
    again = load_graph(tmp_path / "frozen.pt", "hls4ml-jet", info)
    torch.testing.assert_close(again.module(x), frozen.module(x), rtol=0, atol=0)
    torch.testing.assert_close(again.module(x), graph.module(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"linear": {"config": {"name": "integer", "weight_width": 8, "weight_granularity": "layer"}}},
         "weight_granularity applies to the learned quantizer"),
        ({"linear": learned(weight_width=8, weight_granularity="row")}, "linear.config.weight_granularity"),
        ({"linear": learned(weight_width=8, weight_frac_width="auto")}, "node '_0', weight: .*frac_width = \"auto\""),
        ({"beta": -1.0}, "passes.quantize.beta"),
        ({"beta": 1e-6, "beta_end": 1e-5}, "beta_end and beta_epochs"),
        ({"beta_target_ebops": 1000.0}, "set beta > 0"),
        ({"beta": 1e-6, "beta_end": 1e-5, "beta_epochs": 3, "beta_target_ebops": 10.0}, "exclude each other"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(config: dict[str, Any], message: str) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with pytest.raises(ConfigError, match=message):
        netcarve.quantize(model, {"by": "type", **config}, input_shape=(2,))


@pytest.mark.parametrize(("padding", "expected"), [(0, 128.0), (1, 288.0)])
def test_ebops_of_a_convolution_by_hand(padding: int, expected: float) -> None:
    """Conv2d(1 → 1, kernel 2) on a 1×3×3 image, weights [[0.5, 0], [1.5, −0.25]] at f = 2: bits [[3, 0],
    [4, 1]] (Σ 8, as in the Linear toy); data_in per layer over [−1, 1] at f = 2: 4 bits per pixel. Each MAC
    pairs a tap with a pixel: without padding 4 output positions × 4 taps, Σ = 4 · 4 · 8 = 128; with padding 1
    every tap meets each of the 9 pixels once (the zero padding is no MAC): 9 · 4 · 8 = 288."""
    model = nn.Sequential(nn.Conv2d(1, 1, 2, padding=padding, bias=False))
    cfg = {"by": "type", "conv2d": learned(data_in_width=8, data_in_frac_width=2, data_in_granularity="layer",
                                           weight_width=8, weight_frac_width=2)}  # fmt: skip
    graph = netcarve.quantize(model, cfg, input_shape=(1, 3, 3))
    conv = graph.submodule(graph.node("_0"))
    states = learned_operands(conv)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.5, 0.0], [1.5, -0.25]]]]))
        states["data_in"].lo.fill_(-1.0)
        states["data_in"].hi.fill_(1.0)
    graph.module.eval()
    assert ebops(graph).item() == expected


def test_analyze_counts_a_learned_graph_at_its_learned_formats() -> None:
    """analyze of the unfrozen toy equals analyze of its frozen graph (49 BitOPs, _0 stores 8 bits with 1 of 4
    weights pruned: see the two tests above), not the starting widths (8-bit weights: _0 would store 32 bits),
    and leaves the given graph learned."""
    graph = two_layers()
    learned_report, frozen_report = analyze(graph, (1, 2)), analyze(freeze_learned(graph).graph, (1, 2))
    assert learned_report.total.bitops == frozen_report.total.bitops == 49
    layer = learned_report.layer("_0")
    assert (layer.size_bits, layer.pruned_share) == (8, 0.25)
    assert learned_operands(graph.submodule(graph.node("_0")))


def test_a_drifted_frac_is_clamped_to_the_automatic_range() -> None:
    """fracs of 1000 and −1000 quantize as f = 64 and f = −64 (AUTO_FRAC_LIMIT): 0.5 at f = 64 is k = 2^63,
    width 1 + bits(2^63) = 65, exact; at f = −64 every value rounds to 0 (pruned). The forward stays finite and
    the frozen formats hold the clamped fracs."""
    graph = two_layers()
    first = graph.submodule(graph.node("_0"))
    state = learned_operands(first)["weight"]
    with torch.no_grad():
        state.frac.copy_(torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]]))
    width, frac = state.formats(first.quant["weight"], first.weight)
    assert frac.tolist() == [[64.0, 64.0], [-64.0, -64.0]]
    assert width.tolist() == [[65.0, 0.0], [0.0, 0.0]]
    graph.module.eval()
    out = graph.module(torch.ones(3, 2))
    assert torch.isfinite(out).all()
    spec = freeze_learned(graph).graph.submodule(graph.node("_0")).quant["weight"]
    assert spec.formats is not None and spec.formats.frac.tolist() == [[64, 64], [-64, -64]]


def test_the_training_step_takes_the_forward_passes_bits_as_they_are_recomputed() -> None:
    """A training step's EBOPs term (``fresh``) takes the bits its forward pass computed (no second formats
    pass): the same value and the same fracs' gradient, bit for bit, as EBOPs recomputed from the module after
    that forward pass (hls4ml-jet, all operands learned, the channel and layer granularities of JET_CONFIG).
    Taken once: a second fresh call recomputes. A deep copy of the module after a forward pass works (the bits
    are not an attribute)."""
    import copy

    from netcarve.transforms.quantize.learned import module_ebops

    info = DatasetInfo("jsc", 16, 5, tuple("gqwzt"))
    torch.manual_seed(0)
    graph = build_graph("hls4ml-jet", info, (("quantize", JET_CONFIG),))
    gm = graph.module
    gm.train()
    x = torch.randn(64, 16)

    def fracs_grad(fresh: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gm.zero_grad(set_to_none=True)
        gm(x)
        value = module_ebops(gm, fresh=fresh)
        value.backward()
        grads = {n: p.grad.clone() for n, p in gm.named_parameters() if n.endswith(".frac") and p.grad is not None}
        return value.detach(), grads

    fresh_value, fresh_grads = fracs_grad(True)
    recomputed_value, recomputed_grads = fracs_grad(False)
    assert fresh_value.item() == recomputed_value.item() > 0
    assert fresh_grads.keys() == recomputed_grads.keys() and len(fresh_grads) >= 8  # data_in and weight × 4
    for name, grad in fresh_grads.items():
        torch.testing.assert_close(grad, recomputed_grads[name], rtol=0, atol=0)
    gm(x)
    copy.deepcopy(gm)
    assert module_ebops(gm, fresh=True).item() == module_ebops(gm, fresh=True).item() == recomputed_value.item()


def test_a_changed_format_rebuilds_the_grid() -> None:
    """The learned operand reuses its last grid only while its formats stay. Weights [[0.4, 0], [1.5, −0.25]]:
    at f = 2, 0.4 → k round(1.6) = 2 → 0.5; the fracs move by +1, and at f = 3, 0.4 → k round(3.2) = 3 → 0.375
    (widths [[3, 0], [5, 2]]: 1 + bits(3), pruned, 1 + bits(12), 1 + bits(1)) — exactly ``fixed_quantize`` at
    the new formats through the checked constructor ``FixedGrid.of``; a stale grid would give 0.5 again."""
    from netcarve.ir.fixedpoint import FixedGrid, fixed_quantize

    graph = two_layers()
    first = graph.submodule(graph.node("_0"))
    spec, state = first.quant["weight"], learned_operands(first)["weight"]
    with torch.no_grad():
        first.weight[0, 0] = 0.4
    before = first.q("weight", first.weight)
    assert before.tolist() == [[0.5, 0.0], [1.5, -0.25]]
    with torch.no_grad():
        state.frac.add_(1.0)
    width, frac = state.formats(spec, first.weight)
    assert width.tolist() == [[3.0, 0.0], [5.0, 2.0]]
    after = first.q("weight", first.weight)
    expected = fixed_quantize(first.weight, FixedGrid.of(width, frac, True), spec.round, spec.overflow)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    assert after.tolist() == [[0.375, 0.0], [1.5, -0.25]]
