"""Search spaces: readable parameter names, fixed single choices, seed checks, canonical enumeration."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from netcarve.config.search import SearchSpaceConfig
from netcarve.data.jsc_schema import jsc_info
from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.search.candidate import build_candidate
from netcarve.search.spaces import build_space
from netcarve.train.checkpoint import build_graph
from tests.conftest import FIXTURES
from tests.search.helpers import QUANT_SEED, WIDTH_SEED


@pytest.fixture(scope="module")
def toy() -> Graph:
    return build_graph("jsc-toy", jsc_info())


@pytest.fixture(scope="module")
def three() -> Graph:
    return build_graph("jsc-three-linear-layers", jsc_info())


def layer(module: torch.nn.Module, index: int) -> Any:
    return module.get_submodule(f"seq_blocks.{index}")


def space_config(name: str, seed: dict, by: str = "name", **extra: object) -> SearchSpaceConfig:
    return SearchSpaceConfig.model_validate({"name": name, "setup": {"by": by}, "seed": seed, **extra})


def test_mase_example_by_name_uses_node_seeds_and_warns_on_the_type_seed(toy: Graph, caplog) -> None:  # type: ignore[no-untyped-def]
    from netcarve.configure import build_config

    cfg = build_config(FIXTURES / "mase_jsc_by_type.toml")
    with caplog.at_level(logging.WARNING):
        space = build_space(cfg.search.search_space, toy)  # type: ignore[union-attr]
    assert [p.name for p in space.params] == [
        "seq_blocks_2/data_in_width",
        "seq_blocks_2/weight_width",
        "seq_blocks_2/bias_width",
    ]
    assert space.size == 2 * 3 * 3
    assert "'linear' is an op type, unused with by = 'name'" in caplog.text
    ((name, cfg_dict),) = space.transforms(space.point(0))
    assert name == "quantize" and cfg_dict["default"] == {"config": {"name": None}}
    assert cfg_dict["seq_blocks_2"]["config"]["weight_width"] == 2
    assert "linear" not in cfg_dict  # an unused seed never reaches the pass


def test_by_type_names_parameters_by_op_type_and_builds(toy: Graph) -> None:
    seed = {
        "default": {"config": {"name": [None]}},
        "linear": {"config": {"name": ["integer"], "weight_width": [4, 8]}},
    }
    space = build_space(space_config("graph/quantize/mixed_precision_ptq", seed, by="type"), toy)
    assert [p.name for p in space.params] == ["linear/weight_width"]
    graph = build_candidate(toy, space.transforms({"linear/weight_width": 4}))
    assert graph.meta("seq_blocks_5").operand_precision("weight").width == 4


def test_default_seed_with_choices_gives_every_default_layer_its_own_parameters(toy: Graph) -> None:
    seed = {"default": {"config": {"name": ["integer"], "weight_width": [4, 8], "data_in_width": [8]}}}
    space = build_space(space_config("graph/quantize/mixed_precision_ptq", seed), toy)
    names = [p.name for p in space.params]
    # each linear gets its own; a relu has no weight, so no weight_width parameter (only the fixed data_in)
    assert names == [f"seq_blocks_{i}/weight_width" for i in (2, 5, 8)]
    build_candidate(toy, space.transforms(space.point(0)))  # the relus' entries set only their own operands


def test_seed_naming_neither_node_nor_type_is_an_error_listing_both(toy: Graph) -> None:
    seed = {**QUANT_SEED, "seq_block_2": {"config": {"name": ["integer"]}}}
    with pytest.raises(ConfigError) as err:
        build_space(space_config("graph/quantize/mixed_precision_ptq", seed), toy)
    text = str(err.value)
    assert "search.search_space.seed.seq_block_2" in text and "did you mean 'seq_blocks_2'" in text
    assert "nodes: seq_blocks_0" in text and "types: " in text


def test_unknown_leaf_and_quantizer_are_errors_with_suggestions(toy: Graph) -> None:
    bad_leaf = {"seq_blocks_2": {"config": {"name": ["integer"], "weight_widht": [4, 8]}}}
    with pytest.raises(ConfigError, match=r"seed\.seq_blocks_2\.config\.weight_widht.*did you mean 'weight_width'"):
        build_space(space_config("graph/quantize/mixed_precision_ptq", bad_leaf), toy)
    bad_quantizer = {"seq_blocks_2": {"config": {"name": ["integr"], "weight_width": [4]}}}
    with pytest.raises(ConfigError, match=r"config\.name: unknown quantizer 'integr'; did you mean 'integer'"):
        build_space(space_config("graph/quantize/mixed_precision_ptq", bad_quantizer), toy)


def test_unknown_space_name_suggests_the_close_one(toy: Graph) -> None:
    with pytest.raises(ConfigError, match=r"search\.search_space\.name: unknown search space .*did you mean"):
        build_space(space_config("graph/quantize/mixed_precision_ptqq", QUANT_SEED), toy)


def test_empty_choice_list_names_the_key(tmp_path: Path) -> None:
    from netcarve.config.loader import validate_config

    data = {"search": {"search_space": {"name": "graph/joint", "seed": {"x": {"config": {"weight_width": []}}}}}}
    with pytest.raises(ConfigError, match=r"search\.search_space\.seed\.x\.config.*weight_width.*empty"):
        validate_config(data)


def test_lab4_width_space_inputs_follow_their_producer(three: Graph, caplog) -> None:  # type: ignore[no-untyped-def]
    seed = {
        **WIDTH_SEED,
        "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3]}},
        "seq_blocks_6": {
            "config": {"name": ["input_only"], "channel_multiplier": [1, 5], "parent_block_name": ["seq_blocks_0"]}
        },
    }
    with caplog.at_level(logging.WARNING):
        space = build_space(space_config("graph/quantize/channel_size_modifier", seed), three)
    assert space.name == "graph/width/channel_multiplier"  # the alias resolves
    assert [p.name for p in space.params] == ["seq_blocks_2/channel_multiplier", "seq_blocks_4/channel_multiplier"]
    assert "parent_block_name 'seq_blocks_0' is not upstream" not in caplog.text  # seq_blocks_0 is upstream
    for m2, m4 in itertools.product([1, 2, 3], [1, 2]):
        transforms = space.transforms({"seq_blocks_2/channel_multiplier": m2, "seq_blocks_4/channel_multiplier": m4})
        assert "channel_multiplier" not in transforms[0][1]["seq_blocks_6"]["config"]
        module = build_candidate(three, transforms).module
        assert layer(module, 2).out_features == 16 * m2
        assert (layer(module, 4).in_features, layer(module, 4).out_features) == (16 * m2, 16 * m4)
        assert (layer(module, 6).in_features, layer(module, 6).out_features) == (16 * m4, 5)


def test_parent_block_name_not_upstream_warns(three: Graph, caplog) -> None:  # type: ignore[no-untyped-def]
    seed = {**WIDTH_SEED, "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [2],
                                                      "parent_block_name": ["seq_blocks_6"]}}}  # fmt: skip
    with caplog.at_level(logging.WARNING):
        build_space(space_config("graph/width/channel_multiplier", seed), three)
    assert "parent_block_name 'seq_blocks_6' is not upstream of 'seq_blocks_2'" in caplog.text


def test_width_seed_on_a_relu_is_an_error_listing_width_capable_layers(three: Graph) -> None:
    seed = {"seq_blocks_3": {"config": {"name": ["both"], "channel_multiplier": [1, 2]}}}
    with pytest.raises(
        ConfigError, match=r"seq_blocks_3.*relu.*width-capable layers: seq_blocks_2, seq_blocks_4, seq_blocks_6"
    ):
        build_space(space_config("graph/width/channel_multiplier", seed), three)


def test_joint_space_prefixes_parameter_names_and_applies_width_first(three: Graph) -> None:
    quant = {
        "default": {"config": {"name": [None]}},
        "linear": {"config": {"name": ["integer"], "weight_width": [4, 8]}},
    }
    config = SearchSpaceConfig.model_validate({
        "name": "graph/joint",
        "width": {"setup": {"by": "name"}, "seed": WIDTH_SEED},
        "quantize": {"setup": {"by": "type"}, "seed": quant},
    })  # fmt: skip
    space = build_space(config, three)
    assert [p.name for p in space.params] == [
        "width/seq_blocks_2/channel_multiplier",
        "width/seq_blocks_4/channel_multiplier",
        "quantize/linear/weight_width",
    ]
    assert [name for name, _ in space.transforms(space.point(0))] == ["width", "quantize"]
    graph = build_candidate(three, space.transforms(space.point(space.size - 1)))
    assert (
        layer(graph.module, 4).out_features == 32 and graph.meta("seq_blocks_4").operand_precision("weight").width == 8
    )


def test_canonical_order_enumerates_every_configuration_once(toy: Graph) -> None:
    space = build_space(space_config("graph/quantize/mixed_precision_ptq", QUANT_SEED), toy)
    points = [space.point(i) for i in range(space.size)]
    assert space.size == 2 * 3 * 2
    assert points[0] == {p.name: p.choices[0] for p in space.params}
    assert points[1]["seq_blocks_5/weight_width"] == 8  # the last parameter varies fastest
    assert len({tuple(sorted(p.items())) for p in points}) == space.size
    with pytest.raises(IndexError):
        space.point(space.size)


LEARNED_LINEAR = {
    "default": {"config": {"name": [None]}},
    "linear": {"config": {"name": ["learned"], "weight_width": [8], "data_in_width": [8]}},
}


def test_the_quantize_pass_own_keys_are_searched_beside_the_layers(three: Graph) -> None:
    """``[search.search_space.quantize.pass_config] beta = [...]`` is one parameter ``quantize/pass/beta``
    (first in canonical order), its value a key of the pass config itself (not of an entry); a single choice is
    a fixed key. The candidate's learned modules train with that beta."""
    from netcarve.transforms.quantize.learned import beta_schedule

    config = SearchSpaceConfig.model_validate({
        "name": "graph/joint",
        "width": {"setup": {"by": "name"}, "seed": WIDTH_SEED},
        "quantize": {"setup": {"by": "type"}, "seed": LEARNED_LINEAR,
                     "pass_config": {"beta": [1e-5, 1e-4], "beta_factor": [3.0]}},
    })  # fmt: skip
    space = build_space(config, three)
    assert [p.name for p in space.params] == [
        "width/seq_blocks_2/channel_multiplier",
        "width/seq_blocks_4/channel_multiplier",
        "quantize/pass/beta",
    ]
    assert space.size == 2 * 2 * 2
    point = {**space.point(0), "quantize/pass/beta": 1e-4}
    (_, width), (_, quantize) = space.transforms(point)
    assert (quantize["beta"], quantize["beta_factor"]) == (1e-4, 3.0) and "beta" not in width
    assert "pass" not in quantize
    schedule = beta_schedule(build_candidate(three, space.transforms(point)).module)
    assert schedule is not None and (schedule.beta, schedule.factor) == (1e-4, 3.0)
    rows = dict(space.describe())
    assert rows["quantize: pass/beta"] == "{1e-05, 0.0001}" and rows["quantize: pass/beta_factor"] == "= 3.0"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"pass_config": {"betta": [1e-5]}}, "key 'search.search_space.pass_config.betta'; did you mean 'beta'"),
        ({"pass_config": {"beta": [-1.0]}}, "invalid choice -1.0 in 'search.search_space.pass_config.beta'"),
        ({"pass_config": {"beta_epochs": [2.5]}}, "invalid choice 2.5 in 'search.search_space.pass_config.beta_ep"),
        ({"pass_config": {"beta": [True]}}, "invalid choice True in 'search.search_space.pass_config.beta'"),
        ({"pass_config": {"beta": [1e-5, 1e-5]}}, "'search.search_space.pass_config.beta' lists a choice twice"),
        ({"pass_config": {"beta": [0, 0.0]}}, "'search.search_space.pass_config.beta' lists a choice twice"),
        ({"pass_config": {"by": ["name"]}}, "unknown key 'search.search_space.pass_config.by'"),
    ],
)
def test_pass_config_errors_name_the_key(three: Graph, extra: dict[str, Any], message: str) -> None:
    config = space_config("graph/quantize/mixed_precision_ptq", LEARNED_LINEAR, by="type", **extra)
    with pytest.raises(ConfigError, match=None) as info:
        build_space(config, three)
    assert message in str(info.value)


def test_the_width_pass_has_no_searchable_keys_of_its_own(three: Graph) -> None:
    config = space_config("graph/width/channel_multiplier", WIDTH_SEED, pass_config={"seed": [0, 1]})
    with pytest.raises(ConfigError, match=r"search_space\.pass_config\.seed: the width pass has no searchable keys"):
        build_space(config, three)
    joint = SearchSpaceConfig.model_validate({
        "name": "graph/joint", "pass_config": {"beta": [1e-5]},
        "width": {"setup": {"by": "name"}, "seed": WIDTH_SEED}, "quantize": {"seed": LEARNED_LINEAR},
    })  # fmt: skip
    with pytest.raises(ConfigError, match=r"graph/joint takes a pass's own keys under \[search.search_space.quantize"):
        build_space(joint, three)


def test_an_invalid_combination_of_pass_keys_is_an_invalid_configuration(three: Graph) -> None:
    """Each choice is valid alone; ``beta_target_ebops`` with ``beta = 0`` is not (steering multiplies beta): that
    configuration is invalid (the pass refuses it, as the validity sweep finds), the other builds."""
    from netcarve.search.candidate import try_build

    config = space_config("graph/quantize/mixed_precision_ptq", LEARNED_LINEAR, by="type",
                          pass_config={"beta": [0.0, 1e-5], "beta_target_ebops": [1000.0]})  # fmt: skip
    space = build_space(config, three)
    zero, positive = (space.transforms({"pass/beta": b}) for b in (0.0, 1e-5))
    assert "beta_target_ebops steers beta" in str(try_build(three, zero))
    assert isinstance(try_build(three, positive), Graph)


def test_beta_reaches_only_candidates_with_learned_quantizers(three: Graph) -> None:
    """{integer, learned} × beta {1e-5, 1e-4}: the two integer candidates get no beta key, so they are one
    configuration (one transforms key: trained once, the other trial reuses it); the learned ones keep theirs."""
    from netcarve.search.spaces import transforms_key

    seed = {
        "default": {"config": {"name": [None]}},
        "linear": {"config": {"name": ["integer", "learned"], "weight_width": [8], "data_in_width": [8]}},
    }
    config = space_config("graph/quantize/mixed_precision_ptq", seed, by="type", pass_config={"beta": [1e-5, 1e-4]})
    space = build_space(config, three)
    keys = {
        (name, beta): transforms_key(space.transforms({"pass/beta": beta, "linear/name": name}))
        for name in ("integer", "learned")
        for beta in (1e-5, 1e-4)
    }
    assert keys["integer", 1e-5] == keys["integer", 1e-4] and "beta" not in keys["integer", 1e-5]
    assert keys["learned", 1e-5] != keys["learned", 1e-4] and '"beta": 0.0001' in keys["learned", 1e-4]
