"""The Python API: both counting paths agree, the analysis pass, exports, inputs, latency."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from netcarve import analyze
from netcarve.analysis import AnalyzeConfig, count
from netcarve.data.base import DatasetInfo
from netcarve.errors import ModelError
from netcarve.ir import PASSES, Graph
from netcarve.models import MODELS, create_model
from tests.analysis.nets import Attention, ConvResidual, Diamond, MixedOps, StridedGroupedConv

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))

EXTRA: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "conv-residual": (ConvResidual, (4, 10)),
    "conv2d": (StridedGroupedConv, (4, 9, 9)),
    "diamond": (Diamond, (16,)),
    "mixed": (MixedOps, (2, 3)),
}


def _graph(name: str) -> Graph:
    if name in EXTRA:
        cls, shape = EXTRA[name]
        return Graph.from_module(cls(), shape)
    return Graph.from_module(create_model(name, JSC), (16,))


@pytest.mark.parametrize("name", [*MODELS.names(), *EXTRA])
def test_closed_form_and_dispatch_agree(name: str) -> None:
    """Equivalence: the fast path (NodeMeta formulas) and the dispatch counter give identical per-node
    counts and output shapes, at a batch size (3) other than the annotated one (1)."""
    graph = _graph(name)
    shape = (3, *graph.input_shape)
    fast, slow = count(graph, shape, "closed_form"), count(graph, shape, "dispatch")
    assert fast.counts == slow.counts
    assert {k: v for k, v in slow.outputs.items() if k in fast.outputs} == fast.outputs
    fast_report = analyze(graph, shape, method="closed_form")
    assert replace(fast_report, method="dispatch") == analyze(graph, shape, method="dispatch")


def test_closed_form_refuses_graphs_it_cannot_count_exactly() -> None:
    with pytest.raises(ModelError, match="method='dispatch'"):
        analyze(Attention(), (1, 4, 8), method="closed_form")


def test_analysis_pass_leaves_the_graph_unchanged() -> None:
    """The registered pass returns the same graph and a report at the configured batch size:
    jsc-tiny at B = 4 has 4·80 = 320 MACs."""
    graph = _graph("jsc-tiny")
    before = [(n.name, graph.meta(n)) for n in graph.nodes]
    result = PASSES.get("analyze").fn(graph, AnalyzeConfig(batch_size=4))
    assert result.graph is graph
    assert result.info.total.macs == 320
    assert [(n.name, graph.meta(n)) for n in graph.nodes] == before
    assert graph.module.training


def test_tensor_and_shape_inputs_give_the_same_report() -> None:
    model = create_model("jsc-toy", JSC)
    assert analyze(model, torch.randn(8, 16)) == analyze(model, (8, 16))


def test_bad_inputs_are_errors() -> None:
    model = create_model("jsc-toy", JSC)
    with pytest.raises(ModelError, match="input shape"):
        analyze(Graph.from_module(model, (16,)), (1, 15))
    with pytest.raises(ModelError, match="convention"):
        analyze(model, (1, 16), convention="fvcore")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="batch first"):
        analyze(model, ())


def test_exports() -> None:
    """to_dict is JSON-serialisable; to_csv has a header, one row per layer (jsc-tiny: 4) and a total."""
    report = analyze(create_model("jsc-tiny", JSC), (1, 16))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["total"]["model_size"] == 468
    assert [layer["name"] for layer in data["layers"]] == [f"seq_blocks_{i}" for i in range(4)]
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["name"] for r in rows] == [*(f"seq_blocks_{i}" for i in range(4)), "total"]
    assert rows[-1]["flops"] == "250" and rows[-1]["model_size"] == "468"


def test_latency_is_measured_on_request() -> None:
    report = analyze(create_model("jsc-tiny", JSC), (4, 16), latency=True, latency_runs=5)
    assert report.latency is not None
    lat = report.latency
    assert (lat.batch_size, lat.runs) == (4, 5)
    assert 0 < lat.median_s <= lat.p90_s
    assert analyze(create_model("jsc-tiny", JSC), (4, 16)).latency is None


def test_ebops_of_an_integer_mlp_by_hand_and_as_a_metric() -> None:
    """Linear(3 → 2) with 4-bit weights and 6-bit inputs, then ReLU and Linear(2 → 2) with 3-bit weights and
    5-bit inputs: EBOPs = 3·2 MACs · 4·6 + 2·2 MACs · 3·5 = 144 + 60 = 204 (biases and the ReLU count none).
    The float model has no fixed-point layer: 0. The search metric ``ebops`` is the total's."""
    import netcarve
    from netcarve.metrics import architecture_metrics

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    assert analyze(model, (1, 3)).total.ebops == 0.0
    cfg = {
        "by": "name",
        "_0": {"config": {"name": "integer", "weight_width": 4, "data_in_width": 6, "bias_width": 8}},
        "_2": {"config": {"name": "integer", "weight_width": 3, "data_in_width": 5, "bias_width": 8}},
    }
    report = analyze(netcarve.quantize(model, cfg, input_shape=(3,)), (1, 3))
    assert report.total.ebops == 204.0
    assert architecture_metrics(report.total, 32.0)["ebops"] == 204.0
    assert report.to_dict()["total"]["ebops"] == 204.0
