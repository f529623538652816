from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from netcarve.data.base import DatasetInfo
from netcarve.errors import CheckpointError, ConfigError
from netcarve.ir.graph import Graph
from netcarve.train import build_graph, load_checkpoint, load_graph, save_checkpoint
from netcarve.train.checkpoint import load_saved_graph

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


USER_MODEL = """
from torch import nn

def mlp(in_features, num_classes):
    return nn.Sequential(nn.Linear(in_features, 4), nn.ReLU(), nn.Linear(4, num_classes))
"""


def _user_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In tmp_path: m/odd.py and a checkpoint of m/odd.py:mlp made with the relative spelling."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "odd.py").write_text(USER_MODEL)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "a.pt", build_graph("m/odd.py:mlp", JSC))


def _checkpoint_without_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Graph]:
    """In tmp_path: m/odd.py and old.pt, a checkpoint of m/odd.py:mlp as written before the sha256 was recorded
    (spec.model as typed, no model_sha256); also the graph it holds."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "odd.py").write_text(USER_MODEL)
    graph = build_graph("m/odd.py:mlp", JSC)
    path = save_checkpoint(tmp_path / "old.pt", graph)
    payload = torch.load(path, weights_only=True)
    del payload["spec"]["model_sha256"]
    payload["spec"]["model"] = "m/odd.py:mlp"
    torch.save(payload, path)
    return path, graph


def test_a_model_file_is_recorded_resolved_with_its_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _user_checkpoint(tmp_path, monkeypatch)
    spec = load_checkpoint(path).spec
    assert spec is not None
    assert spec.model == f"{tmp_path.resolve() / 'm' / 'odd.py'}:mlp"
    assert spec.model_sha256 == hashlib.sha256(USER_MODEL.encode()).hexdigest()


@pytest.mark.parametrize("spelling", ["./m/odd.py:mlp", "m/../m/odd.py:mlp", "ABS", "MOVED"])
def test_a_model_file_is_the_same_model_however_its_path_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """Compared by callable name and file content: another spelling of the path, the absolute path, or the
    same file moved elsewhere (here with the checkpoint's directory not the current one) load the weights."""
    path = _user_checkpoint(tmp_path, monkeypatch)
    if spelling == "ABS":
        spelling = f"{tmp_path / 'm' / 'odd.py'}:mlp"
    elif spelling == "MOVED":
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "m" / "odd.py").rename(tmp_path / "elsewhere" / "odd.py")
        monkeypatch.chdir(tmp_path / "elsewhere")
        spelling = "odd.py:mlp"
    graph = load_graph(path, spelling, JSC)
    assert_same_state(graph.module, _fresh_from(path))


def _fresh_from(path: Path) -> torch.nn.Module:
    """The module with the checkpoint's weights, read without netcarve (a Sequential's keys)."""
    state = torch.load(path, weights_only=True)["state_dict"]
    module = torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.ReLU(), torch.nn.Linear(4, 5))
    module.load_state_dict(state)
    return module


def test_another_file_with_the_same_callable_is_refused_naming_both_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _user_checkpoint(tmp_path, monkeypatch)
    other = USER_MODEL + "# edited\n"
    (tmp_path / "m" / "other.py").write_text(other)
    mine, theirs = hashlib.sha256(USER_MODEL.encode()).hexdigest(), hashlib.sha256(other.encode()).hexdigest()
    with pytest.raises(CheckpointError) as info:
        load_graph(path, "m/other.py:mlp", JSC)
    assert str(info.value) == (
        f"checkpoint {str(path)!r} was made for model '{tmp_path.resolve() / 'm' / 'odd.py'}:mlp' "
        f"(sha256 {mine[:12]}…), not 'm/other.py:mlp' (sha256 {theirs[:12]}…)"
    )
    with pytest.raises(CheckpointError, match="was made for model"):
        load_graph(path, "m/odd.py:other", JSC)  # same file, another callable


def test_a_checkpoint_without_a_hash_compares_resolved_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written before the sha256 was recorded: spec.model as typed ('m/odd.py:mlp'). Another spelling of the
    same path loads; a copy of the file elsewhere (same content) is another model, as before."""
    path, graph = _checkpoint_without_hash(tmp_path, monkeypatch)
    assert_same_state(load_graph(path, "./m/odd.py:mlp", JSC).module, graph.module)
    (tmp_path / "copy.py").write_text(USER_MODEL)
    with pytest.raises(
        CheckpointError, match=r"was made for model 'm/odd\.py:mlp' \(sha256 not recorded\), not 'copy\.py:mlp'"
    ):
        load_graph(path, "copy.py:mlp", JSC)


def test_load_saved_graph_takes_a_moved_model_file_checked_by_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _user_checkpoint(tmp_path, monkeypatch)
    original = load_saved_graph(path)
    (tmp_path / "moved").mkdir()
    (tmp_path / "m" / "odd.py").rename(tmp_path / "moved" / "odd.py")
    recorded = tmp_path.resolve() / "m" / "odd.py"
    with pytest.raises(ConfigError, match=f"the model file checkpoint .* was made with, '{recorded}', does not exist: "
                                          "if it was moved, point --model at it"):  # fmt: skip
        load_saved_graph(path)
    for given in ("moved/odd.py", "moved/odd.py:mlp"):
        graph = load_saved_graph(path, given)
        assert_same_state(graph.module, original.module)
        assert graph.spec is not None and graph.spec.model == f"{tmp_path.resolve() / 'moved' / 'odd.py'}:mlp"
    (tmp_path / "moved" / "edited.py").write_text(USER_MODEL + "\n")
    with pytest.raises(ConfigError, match=r"--model 'moved/edited.py' is not the model file the run was made with: "
                                          r"its sha256 is [0-9a-f]{12}…, the run's .* had [0-9a-f]{12}…"):  # fmt: skip
        load_saved_graph(path, "moved/edited.py")
    with pytest.raises(ConfigError, match="names callable 'other'"):
        load_saved_graph(path, "moved/odd.py:other")


def test_an_edited_model_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _user_checkpoint(tmp_path, monkeypatch)
    (tmp_path / "m" / "odd.py").write_text(USER_MODEL + "# edited\n")
    with pytest.raises(ConfigError, match=r"changed since checkpoint .* was made"):
        load_saved_graph(path)


def test_load_saved_graph_takes_a_moved_model_file_of_a_checkpoint_without_a_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint written before the sha256 was recorded, its model file moved since: ``--model`` pointing at
    the moved file is taken with a warning (README: nothing to check it against), not refused because the
    resolved path differs from the recorded one; the weights are the checkpoint's."""
    path, graph = _checkpoint_without_hash(tmp_path, monkeypatch)
    (tmp_path / "moved").mkdir()
    (tmp_path / "m" / "odd.py").rename(tmp_path / "moved" / "odd.py")
    with caplog.at_level("WARNING"):
        loaded = load_saved_graph(path, "moved/odd.py")
    assert "records no hash of its model file: --model 'moved/odd.py' is taken as it is" in caplog.text
    assert_same_state(loaded.module, graph.module)
    assert loaded.spec is not None and loaded.spec.model == f"{tmp_path.resolve() / 'moved' / 'odd.py'}:mlp"


def test_auto_frac_checkpoint_reloads_to_the_same_forward(tmp_path: Path) -> None:
    """A model with automatic weight/bias fracs, whose weights moved after quantization (scaled ×8: every
    layer's weight frac drops by 3, so the frac at quantization time would be wrong), saved and reloaded: the
    transform list replays "auto", the state_dict (the float model's keys, nothing added) brings the weights,
    and so the resolved fracs and the forward pass are bit for bit the same."""
    import netcarve

    config = {"by": "type", "linear": {"config": {
        "name": "integer", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 3,
        "weight_frac_width": "auto", "bias_width": 6, "bias_frac_width": "auto"}}}  # fmt: skip
    torch.manual_seed(4)
    float_graph = build_graph("hls4ml-jet", JSC)
    graph = netcarve.quantize(float_graph, config)
    layers = [graph.submodule(graph.node(f"seq_blocks_{i}")) for i in (0, 2, 4, 6)]
    before = [layer.quant["weight"].resolve(layer.weight).frac_width for layer in layers]
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(8)
    after = [layer.quant["weight"].resolve(layer.weight).frac_width for layer in layers]
    assert after == [f - 3 for f in before]
    assert list(graph.module.state_dict()) == list(float_graph.module.state_dict())
    path = save_checkpoint(tmp_path / "auto.pt", graph)
    again = load_graph(path, "hls4ml-jet", JSC)
    assert_same_state(again.module, graph.module)
    reloaded = [again.submodule(again.node(f"seq_blocks_{i}")) for i in (0, 2, 4, 6)]
    assert [layer.quant["weight"].resolve(layer.weight).frac_width for layer in reloaded] == after
    assert all(layer.quant["bias"].auto_frac for layer in reloaded)
    x = torch.randn(256, 16) * 2
    graph.module.eval()
    again.module.eval()
    torch.testing.assert_close(again(x), graph(x), rtol=0, atol=0)
