"""One registered entry per pass: a user's pass with its config model runs through replay and checkpoints."""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import Field
from torch import nn

import netcarve
from netcarve.config.base import Strict
from netcarve.config.pass_registry import PASSES, load_pass, transform_config_model, transform_pass_names
from netcarve.config.run import RunConfig
from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.ir.passes import PassResult, register_pass
from netcarve.ir.replay import apply_transforms, run_transforms
from netcarve.train.checkpoint import load_checkpoint, load_graph, save_checkpoint
from netcarve.transforms.quantize import QuantizedModule, QuantizeInfo, quantize_transform_pass
from netcarve.transforms.quantize.quantizers import QUANTIZERS
from netcarve.transforms.width.pass_ import width_transform_pass
from tests.transforms.helpers import INFO, entry, integer, model_graph, outputs

TOY = "test-leaky"


class LeakyConfig(Strict):
    """``[passes.test-leaky]``: every ReLU module becomes a LeakyReLU with this slope."""

    slope: float = Field(default=0.1, gt=0, lt=1)


@dataclass(frozen=True)
class LeakyInfo:
    replaced: tuple[str, ...]


def leaky_pass(graph: Graph, config: LeakyConfig) -> PassResult[LeakyInfo]:
    """Replace every ReLU module by a LeakyReLU (a test pass)."""
    gm = copy.deepcopy(graph.module)
    replaced = []
    for node in graph.compute_nodes():
        if node.op == "call_module" and isinstance(graph.submodule(node), nn.ReLU):
            gm.set_submodule(str(node.target), nn.LeakyReLU(config.slope))
            replaced.append(node.name)
    spec = graph.spec.with_transform(TOY, config.model_dump()) if graph.spec is not None else None
    return PassResult(graph.derive(gm, spec), LeakyInfo(tuple(replaced)))


@pytest.fixture
def toy_pass(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``leaky_pass`` registered for one test: the registry is restored afterwards."""
    monkeypatch.setattr(PASSES, "_entries", dict(PASSES._entries))
    monkeypatch.setattr(PASSES, "_lookup", dict(PASSES._lookup))
    register_pass(TOY, config=LeakyConfig, aliases=("test-leaky-relu",))(leaky_pass)
    yield


def _leaky_slopes(graph: Graph) -> list[float]:
    return [m.negative_slope for m in graph.module.modules() if isinstance(m, nn.LeakyReLU)]


@pytest.mark.usefixtures("toy_pass")
def test_one_entry_holds_name_config_aliases_function_result_and_doc() -> None:
    entry_ = load_pass("test-leaky-relu")
    assert entry_ is PASSES.get(TOY)
    assert (entry_.name, entry_.config_model, entry_.aliases, entry_.fn) == (
        TOY,
        LeakyConfig,
        ("test-leaky-relu",),
        leaky_pass,
    )
    assert entry_.result_type is LeakyInfo and entry_.kind == "transform"
    assert entry_.doc == "Replace every ReLU module by a LeakyReLU (a test pass)."
    assert transform_config_model("test-leaky-relu") is LeakyConfig
    quantize = load_pass("quantize")
    assert quantize.fn is quantize_transform_pass and quantize.result_type is QuantizeInfo


@pytest.mark.usefixtures("toy_pass")
def test_a_registered_pass_is_validated_and_replayed_from_a_checkpoint(tmp_path: Path) -> None:
    graph = model_graph("jsc-toy")
    leaky = apply_transforms(graph, [("test-leaky-relu", {"slope": 0.25})])
    assert leaky.spec is not None and leaky.spec.transforms == ((TOY, {"slope": 0.25}),)
    assert _leaky_slopes(leaky) == [0.25] * len(_leaky_slopes(leaky)) and _leaky_slopes(leaky)
    assert _leaky_slopes(graph) == []
    with pytest.raises(ConfigError, match=r"passes\.test-leaky\.slope"):
        apply_transforms(graph, [(TOY, {"slope": 2})])
    # the transform list stored in a checkpoint is checked against the config model and replayed on load
    path = save_checkpoint(tmp_path / "leaky.pt", leaky)
    assert load_checkpoint(path).spec == leaky.spec
    loaded = load_graph(path, "jsc-toy", INFO)
    assert _leaky_slopes(loaded) == _leaky_slopes(leaky)
    torch.testing.assert_close(outputs(loaded), outputs(leaky), rtol=0, atol=0)
    # each pass's typed result comes back under its canonical name
    _, infos = run_transforms(graph, [("test-leaky-relu", {}), ("quantize", {"by": "type", "linear": integer(8, 4)})])
    assert [name for name, _ in infos] == [TOY, "quantize"]
    assert isinstance(infos[0][1], LeakyInfo) and isinstance(infos[1][1], QuantizeInfo)
    assert infos[0][1].replaced and all(p.kind == "linear" for p in infos[1][1].layers)
    # and a config file may name it in [passes]
    config = RunConfig.model_validate({"passes": {"test-leaky-relu": {"slope": 0.5}}})
    assert config.passes["test-leaky-relu"] == LeakyConfig(slope=0.5)


@pytest.mark.usefixtures("toy_pass")
def test_registering_a_second_function_or_another_config_for_a_pass_is_refused() -> None:
    def other(graph: Graph, config: LeakyConfig) -> PassResult[LeakyInfo]:
        raise AssertionError

    with pytest.raises(ValueError, match="already registered"):
        register_pass(TOY, config=LeakyConfig)(other)
    with pytest.raises(ValueError, match="declared with config"):
        register_pass("quantize", config=LeakyConfig)(quantize_transform_pass)
    with pytest.raises(ValueError, match="aliases and kind are declared"):
        register_pass("width", aliases=("wide",))(width_transform_pass)
    assert load_pass("quantize").fn is quantize_transform_pass


def test_the_toy_pass_is_gone_after_its_test() -> None:
    assert TOY not in PASSES and "test-leaky" not in transform_pass_names()


# --- quantizer specs hold the quantizer ---------------------------------------------------------------------
def test_a_spec_holds_its_quantizer_and_needs_no_registry_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.linspace(-9, 9, 301)
    settings: list[tuple[str, dict[str, Any]]] = [
        ("integer", {"width": 6, "frac_width": 3}),
        ("fixed", {"width": 4, "frac_width": 1}),
        ("minifloat_ieee", {"width": 8, "exponent_width": 4}),
        ("binary", {"width": 1}),
    ]
    for name, kwargs in settings:
        quantizer = QUANTIZERS.get(name)
        spec = quantizer.make_spec(**kwargs)
        assert spec.quantizer is quantizer and spec.precision().kind == QUANTIZERS.canonical(name)
        expected = quantizer.quantize(x, spec)
        with monkeypatch.context() as m:
            m.setattr(QUANTIZERS, "get", lambda *a: pytest.fail("registry looked up"))
            torch.testing.assert_close(spec(x), expected, rtol=0, atol=0)
            assert spec.bounds() == quantizer.bounds(spec)
        # a copy (the pass deep-copies modules) and a pickle keep the one quantizer instance
        assert copy.deepcopy(spec) == spec and copy.deepcopy(spec).quantizer is quantizer
        assert pickle.loads(pickle.dumps(spec)) == spec


def test_quantized_graph_outputs_are_those_of_the_integer_grid() -> None:
    """jsc-tiny at integer(6,3) everywhere: each quantized Linear's weight lies on the 1/8 grid in [-4, 3.875]."""
    graph = netcarve.quantize(model_graph("jsc-tiny"), {"by": "type", "linear": integer(6, 3)})
    linears = [m for m in graph.module.modules() if isinstance(m, nn.Linear)]
    assert linears and all(isinstance(m, QuantizedModule) for m in linears)
    for module in linears:
        if isinstance(module, QuantizedModule):
            w = module.quant["weight"](module.weight.detach())
            assert torch.equal(w * 8, torch.round(w * 8)) and float(w.min()) >= -4 and float(w.max()) <= 3.875


# --- report = true --------------------------------------------------------------------------------------------
def test_report_logs_the_per_layer_precisions_and_the_result_carries_them(caplog: pytest.LogCaptureFixture) -> None:
    config = {"by": "type", "default": entry(None), "linear": integer(8, 4), "relu": integer(5, 2, ("data_in",))}
    with caplog.at_level(logging.INFO, logger="netcarve.transforms.quantize.pass_"):
        quiet = quantize_transform_pass(model_graph("jsc-toy"), config).info
    assert "precisions applied" not in caplog.text
    with caplog.at_level(logging.INFO, logger="netcarve.transforms.quantize.pass_"):
        info = quantize_transform_pass(model_graph("jsc-toy"), {**config, "report": True}).info
    assert info == quiet
    rows = {row[0]: row for row in info.rows()}
    assert [p.node for p in info.layers] == list(rows)
    linear = next(p for p in info.layers if p.kind == "linear")
    assert rows[linear.node][1:] == ("linear", *(s.describe() for s in linear.operands.values()), "-")
    relu = next(p for p in info.layers if p.kind == "relu")
    assert rows[relu.node][1:] == ("relu", "uinteger(5,2)", "-", "-", "-")
    table = info.table()
    assert table.splitlines()[0].split() == ["node", "kind", "data_in", "weight", "bias", "data_out"]
    assert len(table.splitlines()) == 1 + len(info.layers)
    assert "precisions applied" in caplog.text and table in caplog.text
    assert QuantizeInfo(()).table() == "(no layer quantized)"
