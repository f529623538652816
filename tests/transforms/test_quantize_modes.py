"""Rounding and overflow modes of the fixed-point quantizer: ties, wrap-around, configs, NodeMeta, replay, search."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import netcarve
from netcarve.config.passes import OVERFLOW_MODES, ROUND_MODES
from netcarve.config.search import SearchSpaceConfig
from netcarve.errors import ConfigError
from netcarve.ir.fixedpoint import ROUNDING
from netcarve.ir.meta import Precision
from netcarve.ir.replay import apply_transforms
from netcarve.search.candidate import build_candidate
from netcarve.search.spaces import build_space
from netcarve.train.checkpoint import load_graph, save_checkpoint
from netcarve.transforms.quantize.quantizers import QUANTIZERS
from tests.transforms.helpers import INFO, entry, model_graph, outputs

INTEGER = QUANTIZERS.get("integer")
TIES = torch.tensor([0.125, 0.375, -0.125, -0.375, 2.625])


def test_every_round_mode_has_exactly_one_implementation() -> None:
    assert ROUND_MODES == ("nearest_even", "nearest_up", "truncate") and set(ROUNDING) == set(ROUND_MODES)
    assert OVERFLOW_MODES == ("saturate", "wrap")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("nearest_even", [0.0, 0.5, -0.0, -0.5, 2.5]),
        ("nearest_up", [0.25, 0.5, 0.0, -0.25, 2.75]),
        ("truncate", [0.0, 0.25, -0.25, -0.5, 2.5]),
    ],
)
def test_ties_at_half_an_lsb(mode: str, expected: list[float]) -> None:
    """f = 2 (LSB 0.25), w = 8: x · 4 = 0.5, 1.5, −0.5, −1.5, 10.5, all exactly half-way.

    - nearest_even: the even neighbour: 0, 2, −0, −2, 10 → 0.0, 0.5, −0.0, −0.5, 2.5.
    - nearest_up: floor(k + 0.5) = floor(1.0, 2.0, 0.0, −1.0, 11.0) = 1, 2, 0, −1, 11 → 0.25, 0.5, 0.0, −0.25, 2.75.
    - truncate: floor(0.5, 1.5, −0.5, −1.5, 10.5) = 0, 1, −1, −2, 10 → 0.0, 0.25, −0.25, −0.5, 2.5.
    All within the 8-bit range [−128, 127], so no overflow."""
    spec = INTEGER.make_spec(8, 2, round=mode)
    assert spec(TIES).tolist() == expected


@pytest.mark.parametrize(
    ("sign", "overflow", "x", "expected"),
    [
        (True, "saturate", [9.0, -9.0, 7.0, -8.0, 8.0], [7.0, -8.0, 7.0, -8.0, 7.0]),
        (True, "wrap", [9.0, -9.0, 7.0, -8.0, 8.0], [-7.0, 7.0, 7.0, -8.0, -8.0]),
        (False, "wrap", [16.0, 17.0, -1.0, 15.0], [0.0, 1.0, 15.0, 15.0]),
        (False, "saturate", [16.0, 17.0, -1.0, 15.0], [15.0, 15.0, 0.0, 15.0]),
    ],
)
def test_wrap_and_saturate_at_the_range_edge(sign: bool, overflow: str, x: list[float], expected: list[float]) -> None:
    """w = 4, f = 0. Signed: range [−8, 7], 2^w = 16; wrap k ↦ ((k + 8) mod 16) − 8:
    9 → (17 mod 16) − 8 = −7; −9 → (−1 mod 16) − 8 = 15 − 8 = 7; 8 → (16 mod 16) − 8 = −8; 7 and −8 stay.
    Unsigned: range [0, 15], k ↦ k mod 16: 16 → 0, 17 → 1, −1 → 15."""
    spec = INTEGER.make_spec(4, 0, signed=sign, overflow=overflow)
    assert spec(torch.tensor(x)).tolist() == expected


def test_wrap_keeps_the_clipped_ste_gradient() -> None:
    """Signed w = 4 f = 0, range [−8, 7]: gradient 1 at −8, 0, 7 (bounds included), 0 at 9 and −9 (wrapped)."""
    x = torch.tensor([-9.0, -8.0, 0.0, 7.0, 9.0], requires_grad=True)
    INTEGER.make_spec(4, 0, overflow="wrap")(x).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_describe_shows_only_non_default_modes() -> None:
    assert Precision("integer", 8, 4).describe() == "integer(8,4)"
    assert Precision("integer", 8, 4, round="truncate", overflow="wrap").describe() == "integer(8,4,trn,wrap)"
    assert Precision("integer", 8, 4, round="nearest_up").describe() == "integer(8,4,rnd)"
    assert INTEGER.make_spec(6, 3, signed=False, overflow="wrap").describe() == "uinteger(6,3,wrap)"


def test_unknown_or_unsupported_modes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"integer quantizer: unknown round mode 'up'"):
        INTEGER.make_spec(8, 4, round="up")
    with pytest.raises(ConfigError, match=r"minifloat_ieee quantizer: overflow = 'wrap' is not supported"):
        QUANTIZERS.get("minifloat_ieee").make_spec(8, exponent_width=4, overflow="wrap")
    with pytest.raises(ConfigError, match=r"^invalid value for 'passes\.quantize\.linear\.config\.weight_round'"):
        netcarve.quantize(model_graph("jsc-toy"), {"linear": entry("integer", weight_width=8, weight_round="up")})
    with pytest.raises(ConfigError) as err:
        netcarve.quantize(model_graph("jsc-toy"), {"default": entry("integer", data_out_overflow="clamp")})
    assert str(err.value) == (
        "invalid value for 'passes.quantize.default.config.data_out_overflow': "
        "Input should be 'saturate' or 'wrap' (got 'clamp')"
    )


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        (
            "minifloat_ieee",
            {"weight_width": 8, "weight_exponent_width": 4, "weight_overflow": "wrap"},
            "node 'seq_blocks_2', minifloat_ieee quantizer: weight_overflow = 'wrap' is not supported (only "
            "'saturate'); round/overflow modes apply to the integer (fixed-point) quantizer",
        ),
        (
            "binary",
            {"weight_width": 1, "weight_round": "truncate"},
            "node 'seq_blocks_2', binary quantizer: weight_round = 'truncate' is not supported (only "
            "'nearest_even'); round/overflow modes apply to the integer (fixed-point) quantizer",
        ),
    ],
)
def test_a_mode_on_a_quantizer_without_modes_names_the_key(name: str, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        netcarve.quantize(model_graph("jsc-toy"), {"linear": entry(name, **settings)})
    assert str(err.value) == message


def test_a_mode_on_an_operand_the_node_lacks_is_an_error() -> None:
    with pytest.raises(ConfigError, match="sets weight_round, but node 'seq_blocks_1' \\(relu\\) has no weight"):
        netcarve.quantize(model_graph("jsc-toy"), {"relu": entry("integer", data_in_width=8, weight_round="truncate")})


MODES = {
    "by": "type",
    "linear": entry(
        "integer", weight_width=8, weight_frac_width=4, weight_round="truncate",
        data_out_width=6, data_out_frac_width=3, data_out_overflow="wrap", data_out_round="nearest_up",
    ),
}  # fmt: skip


def test_pass_config_modes_reach_the_node_meta() -> None:
    """jsc-toy's first Linear is seq_blocks_2; unset modes are the defaults."""
    graph = netcarve.quantize(model_graph("jsc-toy"), MODES)
    precision = graph.meta("seq_blocks_2").precision
    assert precision["weight"] == Precision("integer", 8, 4, round="truncate", overflow="saturate")
    assert precision["data_out"] == Precision("integer", 6, 3, round="nearest_up", overflow="wrap")
    assert precision["data_out"].describe() == "integer(6,3,rnd,wrap)"
    linear = graph.submodule(graph.node("seq_blocks_2"))
    w = linear.quant["weight"](linear.weight)
    # truncation rounds down: every quantized weight is ≤ its float, by less than one LSB (1/16)
    assert bool(((linear.weight - w) >= 0).all() and ((linear.weight - w) < 1 / 16).all())


def test_checkpoint_round_trip_keeps_the_modes(tmp_path: Path) -> None:
    """The checkpoint stores the transform list as plain dicts; loading replays it with the same modes."""
    quantized = netcarve.quantize(model_graph("jsc-toy"), MODES)
    assert quantized.spec is not None
    ((_, stored),) = quantized.spec.transforms
    assert stored["linear"]["config"]["weight_round"] == "truncate"
    loaded = load_graph(save_checkpoint(tmp_path / "q.pt", quantized), "jsc-toy", INFO)
    assert loaded.meta("seq_blocks_2").precision == quantized.meta("seq_blocks_2").precision
    torch.testing.assert_close(outputs(loaded), outputs(quantized), rtol=0, atol=0)
    rebuilt = apply_transforms(model_graph("jsc-toy", seed=1), quantized.spec.transforms)
    assert rebuilt.meta("seq_blocks_2").precision["data_out"].overflow == "wrap"


def test_a_search_space_enumerates_a_list_of_modes() -> None:
    """Seeds list modes like widths: 2 round modes × 2 overflow modes = 4 configurations, each built."""
    graph = model_graph("jsc-toy")
    seed = {
        "default": {"config": {"name": [None]}},
        "linear": {
            "config": {
                "name": ["integer"], "weight_width": [8], "weight_frac_width": [4],
                "weight_round": ["nearest_even", "truncate"], "weight_overflow": ["saturate", "wrap"],
            }
        },
    }  # fmt: skip
    config = SearchSpaceConfig.model_validate(
        {"name": "graph/quantize/mixed_precision_ptq", "setup": {"by": "type"}, "seed": seed}
    )
    space = build_space(config, graph)
    assert [p.name for p in space.params] == ["linear/weight_round", "linear/weight_overflow"]
    assert space.size == 4
    seen = set()
    for i in range(space.size):
        candidate = build_candidate(graph, space.transforms(space.point(i)))
        p = candidate.meta("seq_blocks_5").operand_precision("weight")
        seen.add((p.round, p.overflow))
    assert seen == {(r, o) for r in ("nearest_even", "truncate") for o in ("saturate", "wrap")}


def test_a_mode_outside_the_allowed_values_in_a_seed_is_an_error() -> None:
    seed = {"linear": {"config": {"name": ["integer"], "weight_width": [8], "weight_round": ["nearest_odd"]}}}
    config = SearchSpaceConfig.model_validate(
        {"name": "graph/quantize/mixed_precision_ptq", "setup": {"by": "type"}, "seed": seed}
    )
    with pytest.raises(ConfigError, match=r"invalid choice 'nearest_odd' in '.*seed\.linear\.config\.weight_round'"):
        build_space(config, model_graph("jsc-toy"))
