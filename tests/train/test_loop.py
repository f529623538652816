from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netcarve.data.base import Split, TensorSplits
from netcarve.errors import TrainingError
from netcarve.models import create_model
from netcarve.train import TrainConfig, evaluate, fit
from netcarve.train.loop import EpochRecord, fit_outcome
from netcarve.train.optim import lr_multiplier


def train_once(splits: TensorSplits, seed: int) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = create_model("jsc-toy", splits.info)
    result = fit(model, splits, TrainConfig(max_epochs=2, batch_size=64, seed=seed, learning_rate=3e-3))
    return result.final.train_loss, model.state_dict()


def test_same_seed_same_loss_to_the_last_digit(synthetic_small: TensorSplits) -> None:
    loss_a, state_a = train_once(synthetic_small, 7)
    loss_b, state_b = train_once(synthetic_small, 7)
    assert loss_a == loss_b  # exact, not approximate
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key])
    loss_c, _ = train_once(synthetic_small, 8)
    assert loss_c != loss_a


def test_training_learns(synthetic_small: TensorSplits) -> None:
    torch.manual_seed(0)
    model = create_model("jsc-toy", synthetic_small.info)
    before = evaluate(model, synthetic_small.val).loss
    result = fit(model, synthetic_small, TrainConfig(max_epochs=3, batch_size=64, learning_rate=5e-3))
    assert result.final.val_loss < before
    assert [r.epoch for r in result.history] == [0, 1, 2]
    assert result.history[0].steps == math.ceil(len(synthetic_small.train) / 64)


def test_max_steps_and_num_samples(synthetic_small: TensorSplits) -> None:
    model = create_model("jsc-tiny", synthetic_small.info)
    result = fit(model, synthetic_small, TrainConfig(max_epochs=50, max_steps=5, batch_size=32))
    assert result.steps == 5
    result = fit(model, synthetic_small, TrainConfig(max_epochs=1, batch_size=10, num_samples=95))
    assert result.steps == 10  # ceil(95 / 10)


def test_lr_schedules_by_hand() -> None:
    """Warm-up 10 steps (step s → (s+1)/10), then over 90 steps: linear 1 - p, cosine (1 + cos(pi p)) / 2."""
    assert lr_multiplier(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_multiplier(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_multiplier(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_multiplier(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_multiplier(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_multiplier(100, 100, 10, "linear") == pytest.approx(0.0)
    assert lr_multiplier(42, 100, 0, "constant") == 1.0


def test_nan_loss_raises(synthetic_small: TensorSplits) -> None:
    bad_x = synthetic_small.train.x.clone()
    bad_x[0, 0] = float("nan")
    splits = TensorSplits(
        synthetic_small.info, Split(bad_x, synthetic_small.train.y), synthetic_small.val, synthetic_small.test
    )
    model = create_model("jsc-three-linear-layers", splits.info)
    with pytest.raises(TrainingError, match="diverged"):
        fit(model, splits, TrainConfig(max_epochs=1, batch_size=len(splits.train)))


def test_a_divergence_is_an_outcome_of_fit_outcome(synthetic_small: TensorSplits) -> None:
    """The first Linear's weights are 1e38: the loss is nan in the first epoch of 2 (2100 rows, batch 128 = 17
    steps). fit_outcome returns fit's error with no records and the 17 steps it ran; the module ends in eval
    mode; fit raises the same error."""
    cfg = TrainConfig(max_epochs=2, batch_size=128)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model("jsc-three-linear-layers", synthetic_small.info)
        with torch.no_grad():
            next(m for m in model.modules() if isinstance(m, nn.Linear)).weight.fill_(1e38)
        models.append(model)
    outcome = fit_outcome(models[0], synthetic_small, cfg)
    assert str(outcome.error) == "training diverged: loss is nan in epoch 0"
    assert outcome.result.history == [] and outcome.result.steps == 17 and not models[0].training
    with pytest.raises(TrainingError, match=r"^training diverged: loss is nan in epoch 0$"):
        fit(models[1], synthetic_small, cfg)


class Fixed(nn.Module):
    """Predicts class 0 for inputs with x[0] < 0, else class 1 (logits +-10)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = (x[:, 0] >= 0).float()
        return torch.stack([10 * (1 - pos) - 10 * pos, 10 * pos - 10 * (1 - pos), -10 * torch.ones_like(pos)], 1)


def test_evaluate_accuracy_and_per_class_by_hand() -> None:
    """Labels 0,0,1,1,2 and predictions 0,1,1,1,1 → accuracy 3/5; per class 1/2, 2/2, 0/1."""
    x = torch.tensor([[-1.0], [1.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([0, 0, 1, 1, 2])
    result = evaluate(Fixed(), Split(x, y), batch_size=2)
    assert result.accuracy == pytest.approx(0.6)
    assert result.per_class_accuracy == pytest.approx((0.5, 1.0, 0.0))
    logp = torch.log_softmax(Fixed()(x), 1)
    assert result.loss == pytest.approx(float(-logp[range(5), y].mean()), rel=1e-6)


@pytest.mark.parametrize(("name", "reference"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_fused_adam_is_bit_identical_to_torch_optim(name: str, reference: type[torch.optim.Optimizer]) -> None:
    """netcarve's direct call of the fused kernel = torch.optim's fused Adam(W), step for step, with weight
    decay, a changing learning rate and a parameter that gets no gradient for its first 10 steps (skipped by
    both: from step 10 on it counts its own steps, 15 to the others' 25, so its bias correction differs)."""
    from netcarve.train.optim import OPTIMIZERS

    torch.manual_seed(0)
    ours_model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    ref_model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    ref_model.load_state_dict(ours_model.state_dict())
    unused = [nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))]
    ours = OPTIMIZERS.get(name)([*ours_model.parameters(), unused[0]], 0.01, 0.1)
    ref = reference([*ref_model.parameters(), unused[1]], lr=0.01, weight_decay=0.1, fused=True)
    for step in range(25):
        x = torch.randn(8, 6)
        for model, extra in ((ours_model, unused[0]), (ref_model, unused[1])):
            loss = model(x).square().mean()
            (loss + extra.square().sum() if step >= 10 else loss).backward()
        ours.lr = 0.01 / (1 + step)
        for group in ref.param_groups:
            group["lr"] = 0.01 / (1 + step)
        ours.step()
        ref.step()
        ours.zero_grad()
        ref.zero_grad()
    for a, b in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(unused[0], unused[1])
    assert not torch.equal(unused[0], torch.ones(2))  # it did train


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_a_step_without_gradients_changes_nothing(name: str) -> None:
    """As torch.optim: no parameters, or none with a gradient, and a step is a no-op (no error); a parameter
    that gets its first gradient afterwards takes torch's first Adam step (|Δ| = lr, the bias-corrected
    update of a first step)."""
    from netcarve.train.optim import OPTIMIZERS

    OPTIMIZERS.get(name)([], 0.01, 0.0).step()
    p = nn.Parameter(torch.ones(2))
    optimizer = OPTIMIZERS.get(name)([p], 0.01, 0.0)
    optimizer.step()
    assert torch.equal(p.detach(), torch.ones(2))
    p.square().sum().backward()
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.full((2,), 0.99))


def test_schedule_sets_each_steps_rate(synthetic_small: TensorSplits) -> None:
    """Warm-up 4 steps then cosine over 10: the last epoch record holds the rate of the last step (9):
    1e-2 · (1 + cos(pi · 5/6)) / 2."""
    model = create_model("jsc-tiny", synthetic_small.info)
    cfg = TrainConfig(max_epochs=1, max_steps=10, batch_size=16, learning_rate=1e-2, lr_scheduler="cosine",
                      num_warmup_steps=4)  # fmt: skip
    result = fit(model, synthetic_small, cfg)
    assert result.final.lr == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))


def test_a_one_row_last_batch_is_skipped_for_batch_norm(synthetic_small: TensorSplits) -> None:
    """17 train rows in batches of 8: 8 + 8 + 1. BatchNorm cannot train on one row, so jsc-toy (which has
    BatchNorm) runs floor(17 / 8) = 2 steps an epoch; a model without BatchNorm runs all ceil(17 / 8) = 3."""
    splits = TensorSplits(
        synthetic_small.info, synthetic_small.train.head(17), synthetic_small.val, synthetic_small.test
    )
    cfg = TrainConfig(max_epochs=2, batch_size=8, learning_rate=1e-3)
    torch.manual_seed(0)
    with_bn = create_model("jsc-toy", splits.info)
    assert any(isinstance(m, nn.BatchNorm1d) for m in with_bn.modules())
    assert fit(with_bn, splits, cfg).steps == 2 * 2
    plain = nn.Sequential(nn.Linear(splits.info.in_features, 8), nn.ReLU(), nn.Linear(8, splits.info.num_classes))
    assert fit(plain, splits, cfg).steps == 2 * 3


def test_keep_going_stops_training_and_forces_validation(synthetic_small: TensorSplits) -> None:
    """keep_going sees each epoch's record after on_epoch, with a validation accuracy although validate=False;
    returning False after epoch 1 of 5 ends training there: 2 records, stopped, the steps of 2 epochs, and the
    weights of a 2-epoch fit (constant learning rate)."""
    cfg = TrainConfig(max_epochs=5, batch_size=256, learning_rate=3e-3)
    order: list[str] = []

    def keep_going(record: EpochRecord) -> bool:
        order.append(f"keep_going {record.epoch}")
        assert 0 <= record.val_accuracy <= 1
        return record.epoch < 1

    torch.manual_seed(0)
    model = create_model("jsc-toy", synthetic_small.info)
    result = fit(
        model,
        synthetic_small,
        cfg,
        validate=False,
        keep_going=keep_going,
        on_epoch=lambda record, best: order.append(f"on_epoch {record.epoch}"),
    )
    assert order == ["on_epoch 0", "keep_going 0", "on_epoch 1", "keep_going 1"]
    assert result.stopped and len(result.history) == 2 and not model.training
    assert result.steps == 2 * math.ceil(len(synthetic_small.train) / 256)
    torch.manual_seed(0)
    two_epochs = create_model("jsc-toy", synthetic_small.info)
    full = fit(two_epochs, synthetic_small, cfg.model_copy(update={"max_epochs": 2}), validate=False)
    assert not full.stopped
    for key, value in two_epochs.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
