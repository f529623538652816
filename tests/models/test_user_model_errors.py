"""User models (``module:callable``, ``file.py:callable``): nothing that cannot work is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.errors import ModelError
from netcarve.models import create_model

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))

SOURCE = """
from torch import nn

def make(in_features, num_classes):
    raise ValueError("hidden width must be even")

def text(in_features, num_classes):
    return "not a model"

def three_args(a, b, c):
    return nn.Linear(a, b)

def needs_hidden(in_features, num_classes, hidden):
    return nn.Linear(in_features, num_classes)

def three_outputs(in_features, num_classes):
    return nn.Linear(in_features, 3)

def wrong_input(in_features, num_classes):
    return nn.Linear(in_features + 1, num_classes)

def with_bn(in_features, num_classes):
    return nn.Sequential(nn.BatchNorm1d(in_features), nn.Linear(in_features, num_classes))

class Pair(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.fc(x), x

def pair(in_features, num_classes):
    return Pair(in_features, num_classes)

NOT_CALLABLE = 3
"""


@pytest.fixture
def mine(tmp_path: Path) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(SOURCE)
    return path


def test_callable_raising_names_the_spec_and_the_exception(mine: Path) -> None:
    spec = f"{mine}:make"
    with pytest.raises(ModelError) as err:
        create_model(spec, JSC)
    assert str(err.value) == f"user model {spec!r} raised ValueError: hidden width must be even"
    assert isinstance(err.value.__cause__, ValueError)  # chained, not hidden


def test_wrong_return_type_names_the_type(mine: Path) -> None:
    spec = f"{mine}:text"
    with pytest.raises(ModelError, match=r"returned str, expected a torch\.nn\.Module") as err:
        create_model(spec, JSC)
    assert repr(spec) in str(err.value)


def test_library_callable_of_another_kind_is_a_model_error() -> None:
    """``os.path:join`` takes one positional argument, so it is called with the DatasetInfo and raises."""
    with pytest.raises(ModelError, match=r"user model 'os\.path:join' raised TypeError: .*DatasetInfo") as err:
        create_model("os.path:join", JSC)
    assert isinstance(err.value.__cause__, TypeError)


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("three_args", r"cannot be called with a DatasetInfo: missing a required argument: 'b'"),
        ("needs_hidden", r"cannot be called with in_features, num_classes: missing a required argument: 'hidden'"),
    ],
)
def test_callable_needing_arguments_it_is_not_given(mine: Path, attr: str, message: str) -> None:
    spec = f"{mine}:{attr}"
    with pytest.raises(ModelError, match=message) as err:
        create_model(spec, JSC)
    assert repr(spec) in str(err.value)
    assert isinstance(err.value.__cause__, TypeError)


def test_not_callable_says_what_it_is(mine: Path) -> None:
    with pytest.raises(ModelError, match=r"neither an nn\.Module nor a callable \(its type is int\)"):
        create_model(f"{mine}:NOT_CALLABLE", JSC)


def test_output_size_other_than_the_number_of_classes(mine: Path) -> None:
    spec = f"{mine}:three_outputs"
    with pytest.raises(ModelError) as err:
        create_model(spec, JSC)
    assert str(err.value) == (
        f"user model {spec!r} has output size 3, but dataset 'jsc' has 5 classes "
        "(a batch of shape (2, 16) gave an output of shape (2, 3))"
    )


def test_forward_failing_on_the_dataset_shape_and_non_tensor_output(mine: Path) -> None:
    with pytest.raises(ModelError, match=r"wrong_input' fails on a zero batch of shape \(2, 16\).*RuntimeError"):
        create_model(f"{mine}:wrong_input", JSC)
    with pytest.raises(ModelError, match=r"pair' returns a tuple from its forward pass.*\(batch, 5\)"):
        create_model(f"{mine}:pair", JSC)


def test_output_check_leaves_the_model_as_built(mine: Path) -> None:
    """The check runs in eval mode without gradients: BN statistics unchanged, train mode restored."""
    model = create_model(f"{mine}:with_bn", JSC)
    bn = model[0]
    assert model.training and bn.training
    assert bn.num_batches_tracked.item() == 0
    torch.testing.assert_close(bn.running_mean, torch.zeros(16))
    assert all(p.grad is None for p in model.parameters())
    assert isinstance(model, nn.Sequential)
