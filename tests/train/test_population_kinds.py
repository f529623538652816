"""A layer kind joins population training with its one registry entry: ``OpSpec.batched`` naming a
``BatchedKind`` (here ``hardtanh``, defined in this module)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netcarve.data.base import TensorSplits
from netcarve.ir.opspecs import OpSpec, register_op, unregister_op
from netcarve.models.jsc import SeqBlocks
from netcarve.train.loop import TrainConfig, fit
from netcarve.train.population import fit_population
from netcarve.train.population.layers import BatchedKind, Layer


def _hardtanh(layer: Layer, x: torch.Tensor, training: bool, owned: bool) -> tuple[torch.Tensor, bool]:
    low, high = layer.attrs
    return F.hardtanh(x, low, high), True


#: members stack only with the same clamp bounds
HARDTANH = BatchedKind("hardtanh", _hardtanh, key=lambda module, node: (module.min_val, module.max_val))


@pytest.fixture
def hardtanh() -> Iterator[None]:
    register_op(OpSpec("hardtanh", modules=(nn.Hardtanh,), channels="elementwise", batched=f"{__name__}:HARDTANH"))
    yield
    unregister_op("hardtanh")


def _members(splits: TensorSplits) -> list[nn.Module]:
    """Linear → Hardtanh(−0.5, 0.5) → Linear at hidden widths 8 and 12."""
    torch.manual_seed(1)
    f, c = splits.info.in_features, splits.info.num_classes
    return [SeqBlocks(nn.Linear(f, w), nn.Hardtanh(-0.5, 0.5), nn.Linear(w, c)) for w in (8, 12)]


def _train(modules: list[nn.Module], splits: TensorSplits, caplog: pytest.LogCaptureFixture) -> list[Any]:
    trained = [copy.deepcopy(m) for m in modules]
    with caplog.at_level(logging.INFO, logger="netcarve.train.population"):
        outcomes = fit_population(trained, splits, TrainConfig(max_epochs=1, batch_size=128), num_threads=1)
    for module, original in zip(trained, modules, strict=True):
        solo = copy.deepcopy(original)
        torch.manual_seed(42)
        fit(solo, splits, TrainConfig(max_epochs=1, batch_size=128), validate=False)
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, solo.state_dict()[key], rtol=1e-4, atol=1e-6, msg=key)
    return outcomes


def test_a_registered_batched_kind_is_stacked(
    synthetic_small: TensorSplits, caplog: pytest.LogCaptureFixture, hardtanh: None
) -> None:
    """With the entry, both members train as one batch and equal their solo fits."""
    outcomes = _train(_members(synthetic_small), synthetic_small, caplog)
    assert "trained alone" not in caplog.text and [o.batch for o in outcomes] == [2, 2]


def test_without_the_entry_the_members_train_alone(
    synthetic_small: TensorSplits, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = _train(_members(synthetic_small), synthetic_small, caplog)
    assert "population member 0 is trained alone: node seq_blocks_1 is a Hardtanh" in caplog.text
    assert [o.batch for o in outcomes] == [1, 1]
