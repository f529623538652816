"""Training with learned quantizers: beta · EBOPs in the loss (constant, ramp, steered), EBOPs in every
epoch's record, a frozen trained model exporting bit for bit, population members with learned quantizers
trained as one batch exactly as alone."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pytest
import torch

import netcarve
from netcarve.data.base import TensorSplits
from netcarve.export.program import build_program, netcarve_forward
from netcarve.ir import Graph
from netcarve.train.loop import FitResult, TrainConfig, fit
from netcarve.train.population import fit_population
from netcarve.transforms.quantize.learned import ebops, freeze_learned

LEARNED = {"name": "learned", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 8,
           "weight_frac_width": 4, "bias_width": 8, "bias_frac_width": 4}  # fmt: skip
CFG = TrainConfig(max_epochs=6, batch_size=64, learning_rate=1e-2, seed=1)


def learned_jet(splits: TensorSplits, **beta: Any) -> Graph:
    """hls4ml-jet on ``splits`` (seeded), learned per element on every Linear's data_in, weight and bias."""
    torch.manual_seed(0)
    model = netcarve.create_model("hls4ml-jet", splits.info)
    config = {"by": "type", **beta, "default": {"config": LEARNED}}
    return netcarve.quantize(model, config, input_shape=(splits.info.in_features,))


def trained(splits: TensorSplits, cfg: TrainConfig = CFG, **beta: Any) -> tuple[Graph, FitResult]:
    graph = learned_jet(splits, **beta)
    return graph, fit(graph.module, splits, cfg)


def test_beta_reduces_ebops_and_the_frozen_graph_exports_bit_exact(digits: TensorSplits) -> None:
    """hls4ml-jet on digits, 6 epochs, same seed: with beta = 1e-4 the last epoch's EBOPs are below 80 % of
    beta = 0's (the fracs fall where bits cost more than they help), at a validation accuracy within 10
    points. Every record shows EBOPs and the beta it trained with, and the last record's EBOPs are the model's
    (:func:`ebops` in eval mode). The frozen graph (per-element integer formats) equals the trained one on the
    test split and exports bit for bit: alkaid's trace of its program predicts what netcarve computes."""
    _, plain = trained(digits)
    graph, tight = trained(digits, beta=1e-4)
    assert all(r.ebops is not None and r.beta == 1e-4 for r in tight.history)
    assert all(r.beta == 0.0 for r in plain.history)
    assert tight.final.ebops is not None and plain.final.ebops is not None
    assert tight.final.ebops < 0.8 * plain.final.ebops
    assert tight.final.val_accuracy > plain.final.val_accuracy - 0.1
    graph.module.eval()
    with torch.no_grad():
        assert ebops(graph).item() == tight.final.ebops
    frozen = freeze_learned(graph).graph
    x = digits.test.x
    torch.testing.assert_close(frozen.module(x), graph.module(x), rtol=0, atol=0)
    assert ebops(frozen).item() == tight.final.ebops
    pytest.importorskip("alkaid")
    from netcarve.export.alkaid import trace_program

    program = build_program(frozen)
    port = program.port_inputs(x)
    logic = trace_program(program).predict(port)
    np.testing.assert_array_equal(logic, netcarve_forward(program.graph, x))
    assert (logic.argmax(1) == frozen.module(x).argmax(1).numpy()).mean() == 1.0


def test_beta_ramp_and_target(digits: TensorSplits) -> None:
    """A ramp from 0 to 1e-4 over 2 epochs trains with beta 0, 5e-5, 1e-4, 1e-4 in epochs 0-3. Steering toward
    a target far above the EBOPs (1e9) halves beta after every epoch: 1e-4, 5e-5, 2.5e-5; toward a target
    below them (1) doubles it: 1e-4, 2e-4, 4e-4."""
    cfg = CFG.model_copy(update={"max_epochs": 4})
    _, ramp = trained(digits, cfg, beta=0.0, beta_end=1e-4, beta_epochs=2)
    assert [r.beta for r in ramp.history] == pytest.approx([0.0, 5e-5, 1e-4, 1e-4], rel=1e-12)
    cfg = CFG.model_copy(update={"max_epochs": 3})
    _, down = trained(digits, cfg, beta=1e-4, beta_target_ebops=1e9)
    _, up = trained(digits, cfg, beta=1e-4, beta_target_ebops=1.0)
    assert [r.beta for r in down.history] == pytest.approx([1e-4, 5e-5, 2.5e-5], rel=1e-12)
    assert [r.beta for r in up.history] == pytest.approx([1e-4, 2e-4, 4e-4], rel=1e-12)


def _width(**multipliers: float) -> dict[str, Any]:
    return {name: {"config": {"name": None, "out_multiplier": m}} for name, m in multipliers.items()}


def _learned_members(digits: TensorSplits, granularity: str) -> list[torch.nn.Module]:
    """hls4ml-jet at hidden widths 64-32-32, 32-32-32 and 64-8-16 (one batch padded to 64-32-32), learned at
    ``granularity``, with a ramped, a steered and a zero beta."""
    from netcarve.transforms.width import change_width

    torch.manual_seed(0)
    float_graph = Graph.from_module(netcarve.create_model("hls4ml-jet", digits.info), (digits.info.in_features,))
    graphs = [
        float_graph,
        change_width(float_graph, _width(seq_blocks_0=0.5)),
        change_width(float_graph, _width(seq_blocks_2=0.25, seq_blocks_4=0.5)),
    ]
    betas = [{"beta": 1e-4, "beta_end": 1e-3, "beta_epochs": 2}, {"beta": 3e-4, "beta_target_ebops": 20000.0},
             {"beta": 0.0}]  # fmt: skip
    config = {**LEARNED, **{f"{op}_granularity": granularity for op in ("data_in", "weight", "bias")}}
    return [
        netcarve.quantize(g.module, {"by": "type", **beta, "default": {"config": config}},
                          input_shape=(digits.info.in_features,)).module
        for g, beta in zip(graphs, betas, strict=True)
    ]  # fmt: skip


def _one_batch(members: list[torch.nn.Module], digits: TensorSplits, cfg: TrainConfig, **kw: Any) -> list[Any]:
    from netcarve.train.population import partition

    old = partition.STEP_WEIGHT_COST
    partition.STEP_WEIGHT_COST = 0.0  # padding costs nothing: one batch
    try:
        return fit_population(members, digits, cfg, validate=True, num_threads=1, **kw)
    finally:
        partition.STEP_WEIGHT_COST = old


@pytest.mark.parametrize("granularity", ["element", "channel", "layer"])
def test_population_members_with_learned_quantizers_train_batched_as_alone(
    digits: TensorSplits, caplog: pytest.LogCaptureFixture, granularity: str
) -> None:
    """Three learned hls4ml-jets of different hidden widths (64-32-32, 32-32-32, 64-8-16: one batch padded to
    64-32-32) with a ramped, a steered and a zero beta train as one batch, and each equals its solo fit: the
    weights, fracs and calibrated ranges to rtol 1e-4 (the batched products sum in another order, as in
    test_population_contract.py), every epoch's EBOPs exactly (integer sums, exact in float32: padding counts 0
    bits even where a channel's or the layer's group spans it) and beta exactly (each member's own schedule)."""
    members = _learned_members(digits, granularity)
    cfg = CFG.model_copy(update={"max_epochs": 3})
    solos = []
    for member in members:
        solo = copy.deepcopy(member)
        torch.manual_seed(cfg.seed)
        solos.append((solo, fit(solo, digits, cfg)))
    trained = [copy.deepcopy(m) for m in members]
    with caplog.at_level(logging.INFO, logger="netcarve.train.population"):
        outcomes = _one_batch(trained, digits, cfg)
    assert "trained alone" not in caplog.text
    for module, outcome, (solo, result) in zip(trained, outcomes, solos, strict=True):
        assert outcome.error is None and outcome.batch == 3
        assert any("learned" in key for key in module.state_dict())
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, solo.state_dict()[key], rtol=1e-4, atol=1e-6, msg=key)
        assert [(r.ebops, r.beta) for r in outcome.result.history] == [(r.ebops, r.beta) for r in result.history]
        assert all(r.ebops is not None and r.ebops > 0 for r in result.history)
    assert [r.beta for r in outcomes[0].result.history] == pytest.approx([1e-4, 5.5e-4, 1e-3], rel=1e-12)


def test_a_learned_member_leaving_the_batch_leaves_the_others_as_alone(digits: TensorSplits) -> None:
    """keep_going stops member 0 after its first epoch: it holds its solo one-epoch fit (weights, fracs, ranges)
    and the two members re-stacked without it (fracs, ranges, optimizer state and beta schedules selected)
    still equal their solo two-epoch fits, EBOPs exactly."""
    members = _learned_members(digits, "element")
    cfg = CFG.model_copy(update={"max_epochs": 2})
    trained = [copy.deepcopy(m) for m in members]
    outcomes = _one_batch(trained, digits, cfg, keep_going=lambda i, record: i != 0)
    assert outcomes[0].stopped and len(outcomes[0].result.history) == 1
    for i, (module, outcome) in enumerate(zip(trained, outcomes, strict=True)):
        solo = copy.deepcopy(members[i])
        torch.manual_seed(cfg.seed)
        result = fit(solo, digits, cfg.model_copy(update={"max_epochs": 1}) if i == 0 else cfg)
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, solo.state_dict()[key], rtol=1e-4, atol=1e-6, msg=key)
        assert [r.ebops for r in outcome.result.history] == [r.ebops for r in result.history]
