"""Quantization settings that cannot mean anything are errors: operands a node lacks, degenerate minifloats."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import netcarve
from netcarve.errors import ConfigError
from netcarve.transforms.quantize.quantizers import QUANTIZERS
from tests.transforms.helpers import entry, integer, model_graph

MINIFLOAT = QUANTIZERS.get("minifloat_ieee")


def _quantized_operands(graph: netcarve.Graph) -> dict[str, set[str]]:
    return {n.name: set(graph.meta(n).precision) for n in graph.compute_nodes() if graph.meta(n).precision}


def test_weight_width_on_relu_by_type_names_the_node_and_its_operands() -> None:
    """jsc-toy: seq_blocks_1 is its first ReLU."""
    config = {"by": "type", "relu": entry("integer", data_in_width=8, weight_width=8)}
    with pytest.raises(ConfigError) as err:
        netcarve.quantize(model_graph("jsc-toy"), config)
    assert str(err.value) == (
        "quantize entry 'relu' sets weight_width, but node 'seq_blocks_1' (relu) has no weight operand; "
        "its operands: data_in, data_out"
    )


def test_operands_on_relu_by_name_lists_every_key_it_should_not_set() -> None:
    config = {"by": "name", "seq_blocks_4": entry("integer", data_in_width=8, weight_width=8, bias_frac_width=2)}
    with pytest.raises(ConfigError) as err:
        netcarve.quantize(model_graph("jsc-toy"), config)
    assert str(err.value) == (
        "quantize entry 'seq_blocks_4' sets weight_width, bias_frac_width, but node 'seq_blocks_4' (relu) has no "
        "weight or bias operand; its operands: data_in, data_out"
    )


def test_bias_width_on_a_linear_without_bias() -> None:
    module = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 3))
    with pytest.raises(ConfigError, match=r"node '_0' \(linear\) has no bias operand; its operands: data_in, weight, "):
        netcarve.quantize(module, {"by": "name", "_0": integer(8, 4)})
    # the same settings by type are an error too: the entry names every linear, '_0' included
    with pytest.raises(ConfigError, match=r"quantize entry 'linear' sets bias_width, bias_frac_width, but node '_0'"):
        netcarve.quantize(module, {"by": "type", "linear": integer(8, 4)})


def test_default_entry_skips_operands_a_node_lacks() -> None:
    """``default`` is a template for every linear and relu: a relu gets only its data_in, '_0' no bias."""
    module = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 3))
    graph = netcarve.quantize(module, {"default": integer(8, 4)})
    assert _quantized_operands(graph) == {
        "_0": {"data_in", "weight"},
        "_1": {"data_in"},
        "_2": {"data_in", "weight", "bias"},
    }


@pytest.mark.parametrize(("bias", "largest"), [(39, 1.875 * 2.0**-24), (-26, 1.875 * 2.0**41)])
def test_minifloat_bias_at_the_edges_is_accepted(bias: int, largest: float) -> None:
    """width 8, exponent_width e = 4, m = 3 mantissa bits: the rule −23 − m ≤ b ≤ 2^e + 23 gives −26..39.

    b = 39: largest normal (2 − 2^−3) · 2^(2^4 − 1 − 39) = 1.875 · 2^−24 ≥ 2^−24 (just in range).
    b = −26: smallest subnormal 2^(1 + 26 − 3) = 2^24 ≤ 2^24 (just in range); largest 1.875 · 2^(15 + 26);
    2^24 is representable and 2^22 (below half the smallest step) rounds to 0.
    """
    spec = MINIFLOAT.make_spec(8, exponent_width=4, exponent_bias=bias)
    assert spec.bounds() == (-largest, largest)
    if bias == -26:
        assert spec(torch.tensor([2.0**24, 2.0**22])).tolist() == [2.0**24, 0.0]


def test_minifloat_bias_rounding_everything_to_zero_is_an_error_with_the_range() -> None:
    """b = 40: smallest subnormal 2^(1 − 40 − 3) = 2^−42, largest normal 1.875 · 2^−25 = 5.588e−08 < 2^−24."""
    with pytest.raises(ConfigError) as err:
        MINIFLOAT.make_spec(8, exponent_width=4, exponent_bias=40)
    assert str(err.value) == (
        "minifloat_ieee: exponent_bias 40 (exponent_width 4, 3 mantissa bits) represents magnitudes from 2^-42 to "
        "5.588e-08, none of them in [2^-24, 2^24], so every value would round to zero or saturate; use an "
        "exponent_bias in -26..39"
    )


def test_minifloat_bias_with_huge_smallest_step_is_an_error_with_the_range() -> None:
    """b = −27: smallest subnormal 2^(1 + 27 − 3) = 2^25 > 2^24; largest 1.875 · 2^42 = 8.246e+12."""
    with pytest.raises(ConfigError, match=r"exponent_bias -27 .* from 2\^25 to 8\.246e\+12, none of them in"):
        MINIFLOAT.make_spec(8, exponent_width=4, exponent_bias=-27)


def test_minifloat_default_bias_is_always_valid_and_11_exponent_bits_work() -> None:
    """The default bias 2^(e−1) − 1 is inside −23 − m..2^e + 23 for every layout. e = 11, width 16 (m = 4):
    largest normal 1.9375 · 2^(2047 − 1023) = 1.9375 · 2^1024 exceeds float64, so nothing saturates (bounds
    ±inf), and 1.1 rounds to the nearest multiple of 2^−4: 1.125."""
    for e in range(1, 12):
        for width in range(e + 1, e + 10):
            MINIFLOAT.make_spec(width, exponent_width=e)
    spec = MINIFLOAT.make_spec(16, exponent_width=11)
    assert spec.bounds() == (-math.inf, math.inf)
    assert spec(torch.tensor([1.1, -3.0])).tolist() == [1.125, -3.0]


def test_minifloat_bias_error_through_the_pass_names_node_and_operand() -> None:
    config = {"linear": entry("minifloat_ieee", weight_width=8, weight_exponent_width=4, weight_exponent_bias=40)}
    message = r"^node 'seq_blocks_2', weight: minifloat_ieee: exponent_bias 40 .* -26\.\.39$"
    with pytest.raises(ConfigError, match=message):
        netcarve.quantize(model_graph("jsc-toy"), config)
