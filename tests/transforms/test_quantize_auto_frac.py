"""``<operand>_frac_width = "auto"`` (weights and biases): the integer quantizer takes the frac from each tensor's
range at every call, narrow weight grids keep their weights, precisions show the resolved frac, and the settings
that cannot mean anything are errors naming the key."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

import netcarve
from netcarve.config.passes import QuantLayerConfig
from netcarve.config.search import SeedEntry
from netcarve.data.jsc_schema import jsc_info
from netcarve.errors import ConfigError
from netcarve.ir.fixedpoint import FixedGrid, fixed_quantize
from netcarve.ir.graph import Graph
from netcarve.models import create_model
from netcarve.search.spaces.seeds import check_leaves
from netcarve.train import build_graph
from netcarve.transforms.quantize.quantizers import QUANTIZERS

INTEGER = QUANTIZERS.get("integer")


def _auto(width: int, **extra: Any) -> dict[str, Any]:
    """Every Linear: 8-bit data_in (frac 4), ``width``-bit weights and 8-bit biases with automatic fracs."""
    return {
        "by": "type",
        "linear": {"config": {"name": "integer", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": width,
                              "weight_frac_width": "auto", "bias_width": 8, "bias_frac_width": "auto", **extra}},
    }  # fmt: skip


def _jet(seed: int = 3) -> Graph:
    """hls4ml-jet on JSC's 16 features (Linear seq_blocks_0/2/4/6 of 16→64→32→32→5, ReLU 1/3/5)."""
    torch.manual_seed(seed)
    return Graph.from_module(create_model("hls4ml-jet", jsc_info()), (16,))


def _first_linear(seed: int = 0) -> nn.Linear:
    """hls4ml-jet's first layer on digits: Linear(64, 64), torch's init U(−1/8, 1/8) (1/√64)."""
    torch.manual_seed(seed)
    return nn.Linear(64, 64)


@pytest.mark.parametrize(("width", "frac", "threshold"), [(2, 3, 1 / 16), (3, 4, 1 / 32)])
def test_narrow_weight_grids_keep_their_weights_with_auto(width: int, frac: int, threshold: float) -> None:
    """Linear(64, 64)'s 4,096 initial weights lie in (−1/8, 1/8), m just below 1/8 (0.12496 with seed 0).

    width // 2 = 1 (both widths): step 1/2; |w| · 2 < 1/4 rounds to 0: all 4,096 weights are zero (the dead
    candidate of issue 22). auto: width 2 (k_top 1): m · 8 ≤ 1 < m · 16 → frac 3, step 1/8, grid {−1/4, −1/8, 0,
    1/8}; a weight stays nonzero iff |w| · 8 > 1/2, i.e. |w| > 1/16 (a tie rounds to the even 0): about half of
    U(−1/8, 1/8). Width 3 (k_top 3): m · 16 ≈ 2 ≤ 3 < m · 32 ≈ 4 → frac 4, step 1/16, nonzero iff |w| > 1/32:
    about three quarters."""
    w = _first_linear().weight.detach()
    assert 0.124 < float(w.abs().max()) < 0.125
    half = INTEGER.make_spec(width)
    assert half.frac_width == 1 and int((half(w) != 0).sum()) == 0
    auto = INTEGER.make_spec(width, "auto")
    assert auto.resolve(w).frac_width == frac
    kept = int((auto(w) != 0).sum())
    assert kept == int((w.abs() > threshold).sum())
    expected = 4096 * (1 - 8 * threshold)  # the share of U(−1/8, 1/8) above the threshold
    assert abs(kept - expected) < 0.05 * 4096
    step = 2.0**-frac
    assert torch.equal(auto(w), fixed_quantize(w, FixedGrid.of(width, frac)))
    assert set((auto(w) / step).unique().tolist()) <= set(range(-(2 ** (width - 1)), 2 ** (width - 1)))


def test_auto_frac_follows_the_tensor_at_every_call() -> None:
    """One spec, two tensors: max |x| = 0.3 at width 3 → frac 3 (0.3 → 0.25); max |x| = 3 → frac 0 (3·1 = 3 ≤ 3 <
    6), 0.3 → 0 and 3 → 3. The forward equals the fixed grid of the resolved frac bit for bit, and the clipped
    STE passes the gradient to every value (none lies outside [lo, hi])."""
    spec = INTEGER.make_spec(3, "auto")
    small = torch.tensor([0.3, -0.1, 0.05], requires_grad=True)
    large = torch.tensor([3.0, 0.3, -2.2])
    assert spec(small).tolist() == [0.25, -0.125, 0.0]
    assert spec.resolve(small).frac_width == 3 and spec.resolve(large).frac_width == 0
    assert spec(large).tolist() == [3.0, 0.0, -2.0]
    spec(small).sum().backward()
    assert small.grad is not None and small.grad.tolist() == [1.0, 1.0, 1.0]
    fixed = INTEGER.make_spec(3, 3)
    assert spec.resolve(small) == fixed  # resolved: an ordinary spec
    with pytest.raises(ValueError, match="resolve the spec first"):
        spec.bounds()


def test_precisions_show_auto_and_the_resolved_frac(caplog: pytest.LogCaptureFixture) -> None:
    """The node's precision (kept in the graph, independent of the weights) says ``auto``; the pass's report and
    the module's repr resolve it on the weights. hls4ml-jet's Linear(16, 64) (init U(−1/4, 1/4)), seed 3: weights
    m = 0.249863 at width 3 (k_top 3): m · 8 ≈ 2.0 ≤ 3 < m · 16 ≈ 4.0 → frac 3; biases m = 0.249870 at 8 bits
    (k_top 127): m · 256 ≈ 63.97 ≤ 127 < m · 512 ≈ 127.93 → frac 8 (just: m > 127/512 = 0.248047)."""
    with caplog.at_level("INFO"):
        graph = netcarve.quantize(_jet(), {**_auto(3), "report": True})
    meta = graph.meta(graph.node("seq_blocks_0"))
    assert meta.operand_precision("weight").describe() == "integer(3,auto)"
    assert meta.operand_precision("bias").describe() == "integer(8,auto)"
    layer = graph.submodule(graph.node("seq_blocks_0"))
    m_w, m_b = float(layer.weight.detach().abs().max()), float(layer.bias.detach().abs().max())
    assert 3 / 16 < m_w < 1 / 4 and 127 / 512 < m_b < 127 / 256
    assert "weight=integer(3,auto→3)" in repr(layer) and "bias=integer(8,auto→8)" in repr(layer)
    assert re.search(r"seq_blocks_0\s+linear\s+integer\(8,4\)\s+integer\(3,auto→3\)\s+integer\(8,auto→8\)", caplog.text)


def test_the_graph_spec_keeps_auto() -> None:
    """The transform list stores "auto" as written (a checkpoint replays it; the weights decide the frac), and
    the specs of weight and bias are automatic, data_in's fixed."""
    graph = netcarve.quantize(build_graph("hls4ml-jet", jsc_info()), _auto(2))
    assert graph.spec is not None and graph.spec.transforms[-1][1]["linear"]["config"]["weight_frac_width"] == "auto"
    module = graph.submodule(graph.node("seq_blocks_6"))
    assert module.quant["weight"].auto_frac and module.quant["bias"].auto_frac
    assert module.quant["weight"].frac_width is None and not module.quant["data_in"].auto_frac


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("weight_frac_width", "autoo", 'weight_frac_width must be an integer or "auto"'),
        ("bias_frac_width", "Auto", 'bias_frac_width must be an integer or "auto"'),
        ("weight_frac_width", -1, "weight_frac_width = -1 is negative"),
        ("data_in_frac_width", "auto", 'data_in_frac_width = "auto" is not supported'),
        ("data_out_frac_width", "auto", 'data_out_frac_width = "auto" is not supported'),
    ],
)
def test_bad_frac_widths_are_errors_naming_the_key(key: str, value: Any, message: str) -> None:
    """In a pass config the error names the dotted key; in a search seed the choice and the key."""
    config = {"by": "type", "linear": {"config": {"name": "integer", key.replace("frac_", ""): 4, key: value}}}
    with pytest.raises(ConfigError) as err:
        netcarve.quantize(_jet(), config)
    assert f"'passes.quantize.linear.config.{key}'" in str(err.value) and message in str(err.value)
    with pytest.raises(ConfigError) as err:
        check_leaves(SeedEntry(config={key: [4, value]}), QuantLayerConfig, "search.search_space", "linear")
    assert f"'search.search_space.seed.linear.config.{key}'" in str(err.value) and message in str(err.value)


def test_auto_is_a_search_choice_for_weights() -> None:
    """``weight_frac_width = ["auto", 2]`` validates as a seed's choices (no error)."""
    check_leaves(SeedEntry(config={"weight_frac_width": ["auto", 2]}), QuantLayerConfig, "s", "linear")
    assert QuantLayerConfig(weight_width=3, weight_frac_width="auto").weight_frac_width == "auto"
