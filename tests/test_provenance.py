"""Model and dataset files: resolved paths, sha256, identity by content, moved files checked."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from netcarve.errors import ConfigError, ModelError
from netcarve.provenance import (
    dataset_file,
    file_refs,
    relocated_dataset,
    relocated_model,
    resolved_dataset,
    resolved_model,
    same_model,
)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "odd.py").write_text("def mlp(): ...\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.csv").write_text("a,b\n1,2\n")
    return tmp_path.resolve()


def test_specs_name_their_files(files: Path) -> None:
    """Only a file.py:callable model and a dataset file have a file; a jsc: prefix is kept when resolved."""
    assert resolved_model("m/odd.py:mlp") == f"{files / 'm' / 'odd.py'}:mlp"
    for spec in ("jsc-toy", "os.path:join", "missing.py:mlp"):
        assert resolved_model(spec) == spec
    assert dataset_file("data/ok.csv") == "data/ok.csv"
    assert dataset_file("jsc:data/ok.csv") == "data/ok.csv"
    assert dataset_file("digits") is None and dataset_file("synthetic-jsc:500") is None
    assert resolved_dataset("jsc:data/ok.csv") == f"jsc:{files / 'data' / 'ok.csv'}"
    assert resolved_dataset("./data/ok.csv") == str(files / "data" / "ok.csv")
    assert resolved_dataset("digits") == "digits"


def test_file_refs_hold_path_and_sha256(files: Path) -> None:
    refs = file_refs("./m/odd.py:mlp", "data/ok.csv")
    assert refs["model"] == {
        "spec": f"{files / 'm' / 'odd.py'}:mlp",
        "path": str(files / "m" / "odd.py"),
        "sha256": hashlib.sha256(b"def mlp(): ...\n").hexdigest(),
    }
    assert refs["dataset"]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert file_refs("jsc-toy", "digits") == {}


def test_same_model_by_content_or_by_resolved_path(files: Path) -> None:
    sha = hashlib.sha256(b"def mlp(): ...\n").hexdigest()
    (files / "copy.py").write_text("def mlp(): ...\n")
    assert same_model("/elsewhere/odd.py:mlp", sha, "copy.py:mlp")  # the same content, moved
    assert not same_model("/elsewhere/odd.py:mlp", sha, "copy.py:other")
    assert same_model("m/odd.py:mlp", None, f"{files}/m/../m/odd.py:mlp")  # no sha256: the resolved path
    assert not same_model("m/odd.py:mlp", None, "copy.py:mlp")
    assert same_model("jsc-toy", None, "jsc-toy") and not same_model("jsc-toy", None, "jsc-tiny")
    with pytest.raises(ModelError, match=r"user model file 'gone\.py' does not exist"):
        same_model("m/odd.py:mlp", sha, "gone.py:mlp")


def test_moved_files_are_checked_against_the_sha256(files: Path, caplog: pytest.LogCaptureFixture) -> None:
    model_sha = hashlib.sha256(b"def mlp(): ...\n").hexdigest()
    data_sha = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert relocated_model("/old/odd.py:mlp", model_sha, "m/odd.py") == f"{files / 'm' / 'odd.py'}:mlp"
    assert relocated_dataset("jsc:/old/ok.csv", data_sha, "data/ok.csv") == f"jsc:{files / 'data' / 'ok.csv'}"
    with pytest.raises(ConfigError) as info:
        relocated_dataset("/old/ok.csv", data_sha, "m/odd.py")
    assert str(info.value) == (
        f"--dataset 'm/odd.py' is not the dataset file the run was made with: its sha256 is {model_sha[:12]}…, "
        f"the run's '/old/ok.csv' had {data_sha[:12]}…"
    )
    with pytest.raises(ConfigError, match=r"the model is 'jsc-toy', not a file\.py:callable"):
        relocated_model("jsc-toy", None, "m/odd.py")
    with pytest.raises(ConfigError, match="the run's dataset is 'digits', not a file"):
        relocated_dataset("digits", None, "data/ok.csv")
    with pytest.raises(ConfigError, match="--dataset 'data' is a directory"):
        relocated_dataset("/old/ok.csv", data_sha, "data")
    with caplog.at_level(logging.WARNING, logger="netcarve.provenance"):  # an old run: nothing to check against
        assert relocated_model("m/odd.py:mlp", None, "m/odd.py") == f"{files / 'm' / 'odd.py'}:mlp"
    assert "records no hash of its model file" in caplog.text
