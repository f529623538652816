"""The contract between the training settings and population training: every ``TrainingSettings`` field
either acts on a stacked member exactly as it acts on the member trained alone by ``fit``, or makes the
members train alone with a logged reason. A new field without a decision in :data:`DECISIONS` fails
:func:`test_every_field_has_a_decision`; each decision is then checked by training."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from netcarve.config.training import TrainingSettings
from netcarve.data.base import TensorSplits
from netcarve.ir.graph import Graph
from netcarve.models import create_model
from netcarve.train.loop import TrainConfig, fit
from netcarve.train.optim import OPTIMIZERS, Stepper, TorchStepper
from netcarve.train.population import fit_population, partition
from netcarve.transforms.width import change_width


@dataclass(frozen=True)
class Batched:
    """``value`` changes what a stacked member trains exactly as it changes ``fit`` (with the other settings
    ``also``, in both runs and in the default one it is compared with)."""

    value: Any
    also: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Alone:
    """``value`` makes every member train alone with ``fit``, logged with ``reason``."""

    value: Any
    reason: str
    also: tuple[tuple[str, Any], ...] = ()


#: an optimizer registered by this test whose Stepper does not declare ``stacks``
LONE_OPTIMIZER = "contract-plain-sgd"

BASE = TrainConfig(max_epochs=1, batch_size=128, learning_rate=3e-3)
DECISIONS: dict[str, tuple[Batched | Alone, ...]] = {
    "max_epochs": (Batched(2),),
    "max_steps": (Batched(7),),
    "batch_size": (Batched(64),),
    "learning_rate": (Batched(1e-2),),
    "weight_decay": (Batched(0.05),),
    "optimizer": (
        Batched("sgd"),
        Batched("adamw", (("weight_decay", 0.05),)),
        Alone(LONE_OPTIMIZER, "cannot train stacked members"),
    ),
    "lr_scheduler": (Batched("cosine"), Batched("linear")),
    "num_warmup_steps": (Batched(10),),
    "seed": (Batched(7),),
    "num_samples": (Batched(500),),
    "log_every_n_steps": (Batched(5),),
}
CASES = [(name, case) for name, cases in DECISIONS.items() for case in cases]


def test_every_field_has_a_decision() -> None:
    """Exactly the fields of TrainingSettings, each with at least one value other than its default."""
    assert set(DECISIONS) == set(TrainingSettings.model_fields)
    for name, cases in DECISIONS.items():
        default = TrainingSettings.model_fields[name].default
        assert cases and all(case.value != default for case in cases), name


@pytest.fixture(autouse=True)
def _one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Padded weights cost nothing: the three members are one batch."""
    monkeypatch.setattr(partition, "STEP_WEIGHT_COST", 0.0)


@pytest.fixture(scope="module", autouse=True)
def _lone_optimizer() -> Iterator[None]:
    def plain_sgd(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> Stepper:
        return TorchStepper(torch.optim.SGD(params, lr=lr, weight_decay=weight_decay))

    OPTIMIZERS.add(LONE_OPTIMIZER, plain_sgd)
    yield
    OPTIMIZERS._entries.pop(LONE_OPTIMIZER)
    OPTIMIZERS._lookup.pop(LONE_OPTIMIZER)


def _members(splits: TensorSplits) -> list[nn.Module]:
    """jsc-three-linear-layers at hidden widths 16-16, 32-16 and 32-48 (one template, padded to 32-48)."""
    torch.manual_seed(0)
    base = Graph.from_module(create_model("jsc-three-linear-layers", splits.info), (splits.info.in_features,))

    def width(**multipliers: int) -> dict[str, Any]:
        return {name: {"config": {"name": None, "out_multiplier": m}} for name, m in multipliers.items()}

    graphs = [
        base,
        change_width(base, width(seq_blocks_2=2)),
        change_width(base, width(seq_blocks_2=2, seq_blocks_4=3)),
    ]
    return [g.module for g in graphs]


def _solo(module: nn.Module, splits: TensorSplits, cfg: TrainConfig) -> tuple[nn.Module, Any, list[tuple[int, int]]]:
    """A copy of ``module`` trained alone as a search candidate is: (module, result, progress calls)."""
    module = copy.deepcopy(module)
    calls: list[tuple[int, int]] = []
    torch.manual_seed(cfg.seed)
    result = fit(module, splits, cfg, validate=True, on_step=lambda done, total, *_: calls.append((done, total)))
    return module, result, calls


def _max_difference(a: nn.Module, b: nn.Module) -> float:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(float((x.float() - y.float()).abs().max()) for x, y in pairs)


@pytest.mark.parametrize(("name", "case"), CASES, ids=[f"{n}={c.value}" for n, c in CASES])
def test_each_setting_acts_on_a_population_as_on_fit(
    synthetic_small: TensorSplits, caplog: pytest.LogCaptureFixture, name: str, case: Batched | Alone
) -> None:
    """Batched: the three members train as one batch (nothing logged as alone, batch 3) and each equals its
    solo ``fit`` with the same settings (weights to rtol 1e-4 as in test_population.py, records, progress
    calls). Alone: each member's log names the reason and its weights equal the solo fit's bit for bit.
    Either way the value matters: the first member alone trains differently with the default (weights
    apart by more than 1e-3, or other progress calls). (adamw is compared with adam at the same weight
    decay: without one they are the same optimizer.)"""
    base = TrainConfig.model_validate({**BASE.model_dump(), **dict(case.also)})
    cfg = TrainConfig.model_validate({**base.model_dump(), name: case.value})
    members = _members(synthetic_small)
    trained = [copy.deepcopy(m) for m in members]
    calls: list[tuple[int, int]] = []
    with caplog.at_level(logging.INFO, logger="netcarve.train.population"):
        outcomes = fit_population(trained, synthetic_small, cfg, validate=True, num_threads=1,
                                  on_step=lambda *call: calls.append(call))  # fmt: skip
    solos = [_solo(m, synthetic_small, cfg) for m in members]
    for i, (module, outcome, (solo, result, _)) in enumerate(zip(trained, outcomes, solos, strict=True)):
        assert outcome.error is None and outcome.result.steps == result.steps
        assert [(r.epoch, r.steps, r.lr) for r in outcome.result.history] == [
            (r.epoch, r.steps, r.lr) for r in result.history
        ]
        if isinstance(case, Alone):
            assert f"population member {i} is trained alone: optimizer {case.value!r} {case.reason}" in caplog.text
            assert outcome.batch == 1
            for key, value in module.state_dict().items():
                assert torch.equal(value, solo.state_dict()[key]), key
        else:
            assert outcome.batch == 3
            for key, value in module.state_dict().items():
                torch.testing.assert_close(value, solo.state_dict()[key], rtol=1e-4, atol=1e-6, msg=key)
            for mine, theirs in zip(outcome.result.history, result.history, strict=True):
                assert mine.train_loss == pytest.approx(theirs.train_loss, rel=1e-4)
    if isinstance(case, Batched):
        assert "trained alone" not in caplog.text
        assert calls == solos[0][2]  # one batch reports as one member alone does
    default, _, default_calls = _solo(members[0], synthetic_small, base)
    assert _max_difference(solos[0][0], default) > 1e-3 or solos[0][2] != default_calls
