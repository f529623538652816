"""Training with learned quantizers: beta · EBOPs in the loss (constant, ramp, steered), EBOPs in every
epoch's record, a frozen trained model exporting bit for bit, population members with learned quantizers
trained alone."""

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


def test_population_members_with_learned_quantizers_train_alone(
    digits: TensorSplits, caplog: pytest.LogCaptureFixture
) -> None:
    """Two learned members in one population: each is trained alone (the log names the learned quantizer) and
    equals its solo fit bit for bit, beta · EBOPs included."""
    members = [learned_jet(digits, beta=1e-4).module for _ in range(2)]
    cfg = CFG.model_copy(update={"max_epochs": 1})
    solo = copy.deepcopy(members[0])
    torch.manual_seed(cfg.seed)
    fit(solo, digits, cfg)
    with caplog.at_level(logging.INFO, logger="netcarve.train.population"):
        outcomes = fit_population(members, digits, cfg, validate=True, num_threads=1)
    assert "population member 0 is trained alone" in caplog.text and "'learned'" in caplog.text
    assert all(o.batch == 1 and o.error is None for o in outcomes)
    for key, value in members[0].state_dict().items():
        assert torch.equal(value, solo.state_dict()[key]), key
    assert outcomes[0].result.final.ebops is not None
