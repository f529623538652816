"""Per-element formats export bit-exactly: the program's reference, alkaid's trace and hls4ml's C simulation
equal netcarve's forward; pruned weights cost no logic; the digest sees the formats."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from netcarve.analysis.fpga import program_digest, trace_cost
from netcarve.errors import PassError
from netcarve.export import hls4ml as hls
from netcarve.export.backends import ExportOptions
from netcarve.export.program import ElementFormat, FixedFormat, Quantize, build_program, netcarve_forward
from netcarve.ir import Graph
from netcarve.transforms.quantize.formats import operand_shape, set_formats
from tests.export.test_alkaid import JET_MIXES, JSC_MIXES
from tests.export.test_program import quantized, quantized_cnn

pytest.importorskip("alkaid")

from netcarve.export.alkaid import trace_program

MIXES = {"hls4ml-jet": JET_MIXES["wide"], "jsc-three-linear-layers": JSC_MIXES["wide"]}


def with_random_formats(graph: Graph, seed: int, *, activations: bool = True) -> tuple[Graph, np.ndarray]:
    """Every weight and bias element gets a width in 0..8 (0 = pruned, about 1 in 9) and a frac 1 or 2 below
    it (so ±1 weights survive); with ``activations``, every data_in and data_out a width in 5..10 per feature
    and a frac 3 or 4 below it, and a quarter of the first data_in's features (the port) width 0. Returns
    the graph and the mask of pruned port features (empty without ``activations``)."""
    g = torch.Generator().manual_seed(seed)
    pruned_port = np.zeros(0, dtype=bool)
    for node in graph.compute_nodes():
        if node.op != "call_module":
            continue
        for operand in ("data_in", "weight", "bias", "data_out"):
            if operand not in getattr(graph.submodule(node), "quant", {}):
                continue
            shape = operand_shape(graph, node.name, operand)
            if operand in ("weight", "bias"):
                width = torch.randint(0, 9, shape, generator=g)
                frac = width - torch.randint(1, 3, shape, generator=g)
            elif activations:
                width = torch.randint(5, 11, shape, generator=g)
                frac = width - torch.randint(3, 5, shape, generator=g)
                if not pruned_port.size:
                    mask = torch.rand(shape, generator=g) < 0.25
                    width[mask] = 0
                    pruned_port = mask.numpy().ravel()
            else:
                continue
            graph = set_formats(graph, node.name, operand, width, frac)
    return graph, pruned_port


@pytest.mark.parametrize("model", list(MIXES))
def test_random_per_element_formats_trace_bit_exact(model: str) -> None:
    """On 1,000 rows (σ = 3), with random per-element formats everywhere (pruned weights, biases and port
    features among them): alkaid's trace, the program's reference and netcarve's forward agree exactly
    (max |diff| = 0, argmax 100 %). A pruned port feature drops out: its port value is 0 and changing the
    input there changes no output."""
    graph, pruned = with_random_formats(quantized(model, MIXES[model], seed=1), seed=3)
    program = build_program(graph)
    assert isinstance(program.port, ElementFormat) and pruned.any() and not pruned.all()
    torch.manual_seed(2)
    x = torch.randn(1000, 16) * 3
    port = program.port_inputs(x)
    reference = program.reference(port)
    assert len(np.unique(reference)) >= 5  # not a dead network
    np.testing.assert_array_equal(port[:, pruned], 0.0)
    logic = trace_program(program).predict(port)
    np.testing.assert_array_equal(logic, reference)
    np.testing.assert_array_equal(logic, netcarve_forward(program.graph, x))
    assert (logic.argmax(1) == reference.argmax(1)).all()
    if program.preprocess:  # the port follows preprocessing: perturb after it, at the port itself
        return
    shaken = x.clone()
    shaken[:, torch.from_numpy(pruned)] += 5.0
    np.testing.assert_array_equal(netcarve_forward(program.graph, shaken), reference)


def test_pruned_layer_costs_no_logic_and_digest_sees_formats() -> None:
    """hls4ml-jet with seq_blocks_2's weights and bias all width 0: that layer's trace costs 0 LUTs (its
    outputs are constant 0) and the whole network costs less than with 8-bit per-element formats there. The
    digest changes with one element's format and is the same for the same formats."""
    base = quantized("hls4ml-jet", MIXES["hls4ml-jet"], seed=1)
    shape = operand_shape(base, "seq_blocks_2", "weight")
    pruned = set_formats(base, "seq_blocks_2", "weight", torch.zeros(shape, dtype=torch.int64), 0)
    pruned = set_formats(pruned, "seq_blocks_2", "bias", 0, 0)
    full = set_formats(base, "seq_blocks_2", "weight", torch.full(shape, 8), 6)
    layer = build_program(pruned).layer_programs()["seq_blocks_2"]
    assert trace_cost(layer).luts == 0.0
    assert trace_cost(build_program(pruned)).luts < trace_cost(build_program(full)).luts
    width = torch.full(shape, 8)
    width[0, 0] = 7
    nudged = set_formats(base, "seq_blocks_2", "weight", width, 6)
    digests = {program_digest(build_program(g)) for g in (full, nudged)}
    assert len(digests) == 2
    assert program_digest(build_program(full)) == program_digest(build_program(full))


def test_uniform_per_element_formats_are_one_format() -> None:
    """Per-element formats that are all alike (8, 6), none pruned, build the same program as the scalar
    format: a FixedFormat and the same digest."""
    base = quantized("hls4ml-jet", MIXES["hls4ml-jet"], seed=1)
    spec = base.submodule(base.node("seq_blocks_2")).quant["weight"]
    shape = operand_shape(base, "seq_blocks_2", "weight")
    same = set_formats(base, "seq_blocks_2", "weight", torch.full(shape, spec.width), spec.frac_width)
    step = next(d for d in build_program(same).layers() if d.node == "seq_blocks_2")
    assert isinstance(step.weight_fmt, FixedFormat)
    assert program_digest(build_program(same)) == program_digest(build_program(base))


def test_hls4ml_types_are_the_envelope_or_a_refusal() -> None:
    """seq_blocks_0's weight with formats (w, f) per element among (4, 3), (6, 2), (0, 9): its hls4ml weight
    type holds every element, integer bits max(1, 4) = 4 and frac max(3, 2) = 3 (the pruned one ignored):
    ap_fixed<7,4>, truncate/wrap (constants never round). A per-element data_out between layers is refused."""
    base = quantized("hls4ml-jet", MIXES["hls4ml-jet"], seed=1)
    shape = operand_shape(base, "seq_blocks_0", "weight")
    width, frac = torch.full(shape, 4), torch.full(shape, 3)
    width[1, :], frac[1, :] = 6, 2
    width[2, 0], frac[2, 0] = 0, 9
    graph = set_formats(base, "seq_blocks_0", "weight", width, frac)
    _, layers = hls.plan(build_program(graph))
    first = next(layer for layer in layers if layer.node == "seq_blocks_0")
    assert first.precision["weight"] == "ap_fixed<7,4,AP_TRN,AP_WRAP>"
    out_shape = operand_shape(graph, "seq_blocks_0", "data_out")
    refused = set_formats(graph, "seq_blocks_0", "data_out", torch.full(out_shape, 10), torch.arange(out_shape[0]) % 3)
    assert any(isinstance(s, Quantize) and isinstance(s.fmt, ElementFormat) for s in build_program(refused).steps)
    with pytest.raises(PassError, match=r"^node 'seq_blocks_0', data_out: per-element formats round each value"):
        hls.plan(build_program(refused))


@pytest.mark.skipif(shutil.which("g++") is None, reason="hls4ml's C simulation needs g++")
def test_hls4ml_compiled_per_element_weights_and_port_bit_exact(tmp_path: Path) -> None:
    """hls4ml-jet with random per-element weights and biases (pruned among them) and a per-feature port with
    pruned features (only the first data_in per element: quantizers between layers stay one format): hls4ml's
    compiled C simulation equals the reference and netcarve's forward on 1,000 rows."""
    base = quantized("hls4ml-jet", MIXES["hls4ml-jet"], seed=1)
    graph, _ = with_random_formats(base, seed=5, activations=False)
    shape = operand_shape(graph, "seq_blocks_0", "data_in")
    width = torch.randint(6, 11, shape, generator=torch.Generator().manual_seed(6))
    width[::4] = 0
    graph = set_formats(graph, "seq_blocks_0", "data_in", width, width - 4)
    program = build_program(graph)
    assert isinstance(program.port, ElementFormat)
    result = hls.write(program, tmp_path, ExportOptions())
    torch.manual_seed(2)
    x = torch.randn(1000, 16) * 3
    port = program.port_inputs(x)
    got, reference = result.predict(port), program.reference(port)
    assert len(np.unique(reference)) >= 5
    np.testing.assert_array_equal(got, reference)
    np.testing.assert_array_equal(got, netcarve_forward(program.graph, x))


def test_alkaid_plugin_traces_per_element_formats_alike() -> None:
    """alkaid's own torch converter with netcarve's plugin, on hls4ml-jet with random per-element formats
    everywhere (pruned port features, weights and biases among them), builds logic whose predictions equal
    the export's trace and the reference bit for bit on 300 rows."""
    from netcarve.export.alkaid_plugin import trace_graph

    graph, _ = with_random_formats(quantized("hls4ml-jet", MIXES["hls4ml-jet"], seed=1), seed=3)
    program = build_program(graph)
    torch.manual_seed(4)
    port = program.port_inputs(torch.randn(300, 16) * 3)
    reference = program.reference(port)
    assert len(np.unique(reference)) >= 5
    np.testing.assert_array_equal(trace_graph(program).predict(port), reference)


def test_export_of_a_per_element_checkpoint_is_bit_exact(tmp_path: Path) -> None:
    """hls4ml-jet quantized by the "wide" mix, random per-element formats everywhere (pruned port features
    among them), saved as a checkpoint and exported to alkaid by ``netcarve.export.api.export`` (the
    checkpoint reloaded with its formats): on synthetic-jsc:2000's test split (400 rows) 0 difference and 100 %
    argmax agreement; export.json's port lists one (k, i, f) per feature, (0, −f, f) where pruned."""
    from netcarve.data import load_dataset
    from netcarve.export.api import export
    from netcarve.train.checkpoint import build_graph, save_checkpoint

    info = load_dataset("synthetic-jsc:2000").info
    graph = build_graph("hls4ml-jet", info, (("quantize", MIXES["hls4ml-jet"]),))
    graph, pruned = with_random_formats(graph, seed=3)
    path = save_checkpoint(tmp_path / "pe.pt", graph)
    outcome = export(path, "alkaid", tmp_path / "fw", dataset="synthetic-jsc:2000")
    assert outcome.rows == 400 and outcome.exact and outcome.argmax_agreement == 1.0
    k, i, f = (np.array(a) for a in outcome.summary["port"]["kif"])
    assert k.shape == (16,) and (k[pruned] == 0).all() and (k[~pruned] == 1).all()
    np.testing.assert_array_equal(i[pruned] + f[pruned], 0)


def test_per_channel_conv_formats_trace_bit_exact() -> None:
    """digits-cnn ("wide" mix; its BatchNorm2d folded into the first conv, whose weights are requantized to
    their per-channel formats): each conv's weight per output channel (width 0..7, frac 2 below; channel 0
    and others pruned whole) and its data_in per input channel (C, 1, 1) at 6..9 bits. On 200 images the trace,
    the reference (the convolution unrolled over per-element weight grids) and netcarve's forward agree."""
    graph = quantized_cnn("wide", seed=0)
    g = torch.Generator().manual_seed(1)
    for node in graph.compute_nodes():
        if graph.meta(node).kind != "conv2d":
            continue
        out_channels = operand_shape(graph, node.name, "weight")[0]
        width = torch.randint(0, 8, (out_channels, 1, 1, 1), generator=g)
        width[0] = 0  # at least one whole channel pruned
        graph = set_formats(graph, node.name, "weight", width, width - 2)
        in_channels = operand_shape(graph, node.name, "data_in")[0]
        width = torch.randint(6, 10, (in_channels, 1, 1), generator=g)
        graph = set_formats(graph, node.name, "data_in", width, width - 5)
    program = build_program(graph)
    assert program.folded
    torch.manual_seed(2)
    x = torch.rand(200, 64) * 4
    port = program.port_inputs(x)
    reference = program.reference(port)
    assert len(np.unique(reference)) >= 5
    np.testing.assert_array_equal(reference, netcarve_forward(program.graph, x))
    np.testing.assert_array_equal(trace_program(program).predict(port), reference)
