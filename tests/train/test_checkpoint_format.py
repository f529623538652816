"""Checkpoints this netcarve cannot read correctly are refused: unknown format/version, malformed spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import netcarve
from netcarve.data.base import DatasetInfo
from netcarve.errors import CheckpointError, ConfigError, UnknownNameError
from netcarve.train import build_graph, load_checkpoint, load_graph, save_checkpoint

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))
QUANT = {"by": "type", "linear": {"config": {"name": "integer", "weight_width": 8}}}


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A transformed (quantized) checkpoint as saved, read back as plain data."""
    graph = netcarve.quantize(build_graph("jsc-toy", JSC), QUANT)
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "q.pt", graph)
    return torch.load(path, weights_only=True)


def _write(path: Path, payload: dict[str, Any], **changes: Any) -> Path:
    torch.save({**payload, **changes}, path)
    return path


def _with_transforms(payload: dict[str, Any], transforms: Any) -> dict[str, Any]:
    return {"spec": {**payload["spec"], "transforms": transforms}}


def test_the_unchanged_payload_loads(tmp_path: Path, payload: dict[str, Any]) -> None:
    graph = load_graph(_write(tmp_path / "ok.pt", payload), "jsc-toy", JSC)
    assert graph.spec is not None and [n for n, _ in graph.spec.transforms] == ["quantize"]


@pytest.mark.parametrize("version", [3, 0, "1", True])
def test_unknown_version_names_file_value_and_supported(tmp_path: Path, payload: dict[str, Any], version: Any) -> None:
    path = _write(tmp_path / "v.pt", payload, version=version)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(
        f"checkpoint {str(path)!r} has 'netcarve-checkpoint' version {version!r}, which this netcarve cannot read "
        "(supported: version 1, 2)"
    )


def test_unknown_format_names_file_value_and_supported(tmp_path: Path, payload: dict[str, Any]) -> None:
    path = _write(tmp_path / "f.pt", payload, format="netcarve-checkpoint-v9")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == (
        f"checkpoint {str(path)!r} has format 'netcarve-checkpoint-v9', which this netcarve cannot read "
        "(supported: 'netcarve-checkpoint' version 1, 2, bare state dicts and Lightning checkpoints)"
    )


@pytest.mark.parametrize(
    ("transforms", "message"),
    [
        ("quantize", "its spec.transforms is 'quantize', not a list of [pass name, config] pairs"),
        ([["quantize"]], "spec.transforms[0] = ['quantize'] is not a [pass name, config] pair"),
        ([[3, {}]], "spec.transforms[0] = [3, {}] is not a [pass name, config] pair"),
        (
            [["quantize", "by type"]],
            "spec.transforms[0] = ['quantize', 'by type']: the config of pass 'quantize' is not a table",
        ),
    ],
)
def test_malformed_transform_list(tmp_path: Path, payload: dict[str, Any], transforms: Any, message: str) -> None:
    path = _write(tmp_path / "t.pt", payload, **_with_transforms(payload, transforms))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"checkpoint {str(path)!r}: {message}"


def test_unknown_pass_names_the_entry(tmp_path: Path, payload: dict[str, Any]) -> None:
    stored = payload["spec"]["transforms"]
    path = _write(tmp_path / "u.pt", payload, **_with_transforms(payload, [*stored, ["quantise", {}]]))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(
        f"checkpoint {str(path)!r}: spec.transforms[1] (pass 'quantise') is invalid: unknown pass 'quantise'; "
        "did you mean 'quantize'?"
    )
    assert isinstance(err.value.__cause__, UnknownNameError)


def test_config_failing_validation_names_the_entry_and_the_key(tmp_path: Path, payload: dict[str, Any]) -> None:
    bad = {"by": "type", "linear": {"config": {"name": "integer", "weight_width": 8, "weight_frac_width": 9}}}
    path = _write(tmp_path / "c.pt", payload, **_with_transforms(payload, [["quantize", bad]]))
    with pytest.raises(CheckpointError) as err:
        load_graph(path, "jsc-toy", JSC)
    text = str(err.value)
    assert text.startswith(f"checkpoint {str(path)!r}: spec.transforms[0] (pass 'quantize') is invalid: ")
    assert "'passes.quantize.linear.config.weight_frac_width'" in text and "weight_frac_width = 9" in text
    assert isinstance(err.value.__cause__, ConfigError)


def test_malformed_spec_fields(tmp_path: Path, payload: dict[str, Any]) -> None:
    path = _write(tmp_path / "m.pt", payload, spec={**payload["spec"], "model": None})
    with pytest.raises(CheckpointError, match=r"m\.pt': its spec\.model is None, not a model name"):
        load_checkpoint(path)
    path = _write(tmp_path / "d.pt", payload, spec={**payload["spec"], "dataset": {"name": "jsc"}})
    with pytest.raises(CheckpointError, match=r"d\.pt': its spec\.dataset \{'name': 'jsc'\} is malformed"):
        load_checkpoint(path)
    path = _write(tmp_path / "s.pt", payload, state_dict=[1, 2])
    with pytest.raises(CheckpointError, match=r"s\.pt' has no state dict of tensors"):
        load_checkpoint(path)
