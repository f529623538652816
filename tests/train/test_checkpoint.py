from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from netcarve.data.base import DatasetInfo
from netcarve.errors import CheckpointError
from netcarve.train import build_graph, load_checkpoint, load_graph, save_checkpoint

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """The same keys, and every tensor equal (bit for bit)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_round_trip_same_outputs(tmp_path: Path) -> None:
    torch.manual_seed(1)
    graph = build_graph("jsc-toy", JSC)
    path = save_checkpoint(tmp_path / "a.pt", graph, {"epoch": 3})
    again = load_graph(path, "jsc-toy", JSC)
    assert_same_state(again.module, graph.module)
    x = torch.randn(8, 16)
    graph.module.eval()
    torch.testing.assert_close(again(x), graph(x))
    assert load_checkpoint(path).meta == {"epoch": 3}


def test_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    graph = build_graph("jsc-tiny", JSC)
    path = tmp_path / "a.pt"
    path.write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(path, graph)
    assert path.read_bytes() == b"precious"


def test_other_model_and_other_dataset_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pt", build_graph("jsc-toy", JSC))
    with pytest.raises(CheckpointError, match="made for model 'jsc-toy', not 'jsc-s'"):
        load_graph(path, "jsc-s", JSC)
    with pytest.raises(CheckpointError, match="16 features / 5 classes"):
        load_graph(path, "jsc-toy", DatasetInfo("digits", 64, 10, ()))


def test_bare_state_dict_of_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "s.pt"
    torch.manual_seed(2)
    graph = build_graph("jsc-toy", JSC)
    torch.save(graph.module.state_dict(), path)
    assert_same_state(load_graph(path, "jsc-toy", JSC).module, graph.module)  # a bare state dict loads
    with pytest.raises(CheckpointError, match="does not fit model 'jsc-tiny'"):
        load_graph(path, "jsc-tiny", JSC)


def test_lightning_prefix_is_stripped(tmp_path: Path) -> None:
    torch.manual_seed(3)
    graph = build_graph("jsc-tiny", JSC)
    state = {f"model.{k}": v for k, v in graph.module.state_dict().items()}
    path = tmp_path / "pl.ckpt"
    torch.save({"state_dict": state, "epoch": 1}, path)
    assert_same_state(load_graph(path, "jsc-tiny", JSC).module, graph.module)


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_code_executing_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="could execute code"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")
