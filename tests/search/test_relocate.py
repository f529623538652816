"""A study's recorded model and dataset files: checked on resume, moved ones taken with --model/--dataset and
written back into the study; a study from before files were recorded keeps working."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import optuna
import pytest

from netcarve.config.loader import validate_config
from netcarve.config.run import RunConfig, effective_dict
from netcarve.errors import ConfigError
from netcarve.provenance import file_refs
from netcarve.search import storage as st
from netcarve.search.relocate import record_files, relocate, stored_files
from netcarve.workflow import recorded_config
from tests.search.helpers import search_dict

MODEL = "def mlp(): ...\n"


def _study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record: bool) -> tuple[optuna.Study, RunConfig]:
    """A study of m/odd.py:mlp on data/ok.csv: recorded as netcarve does now (resolved paths, the files'
    sha256), or as an older netcarve did (as typed, no sha256); and its stored config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "odd.py").write_text(MODEL)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.csv").write_text("a\n1\n")
    config = validate_config(search_dict(tmp_path, model="m/odd.py:mlp", dataset="data/ok.csv"), "test")
    if record:
        config = recorded_config(config)
    study = optuna.create_study()
    study.set_user_attr(st.CONFIG_ATTR, effective_dict(config))
    if record:
        record_files(study, file_refs(config.model, config.dataset))
    return study, config


def test_an_old_study_resumes_as_before_and_takes_moved_files_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    study, config = _study(tmp_path, monkeypatch, record=False)
    assert relocate(study, config, None, None, write=True) is config  # nothing recorded, nothing to check
    (tmp_path / "new").mkdir()
    (tmp_path / "data" / "ok.csv").rename(tmp_path / "new" / "ok.csv")
    with caplog.at_level(logging.WARNING, logger="netcarve.provenance"):
        moved = relocate(study, config, None, "new/ok.csv", write=True)
    assert "records no hash of its dataset" in caplog.text
    new = str((tmp_path / "new" / "ok.csv").resolve())
    assert moved.dataset == new and moved.model == "m/odd.py:mlp"
    assert st.stored_config(study)["dataset"] == new  # workers and later resumes read it from the study
    assert stored_files(study)["dataset"].sha256 == hashlib.sha256(b"a\n1\n").hexdigest()  # recorded from now


def test_recorded_files_must_be_there_unchanged_or_pointed_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study, config = _study(tmp_path, monkeypatch, record=True)
    sha = hashlib.sha256(MODEL.encode()).hexdigest()
    recorded = str((tmp_path / "m" / "odd.py").resolve())
    assert relocate(study, config, None, None, write=True) is config
    (tmp_path / "m" / "odd.py").write_text(MODEL + "# edited\n")
    edited = hashlib.sha256((MODEL + "# edited\n").encode()).hexdigest()
    with pytest.raises(ConfigError) as info:
        relocate(study, config, None, None, write=True)
    assert str(info.value) == (
        f"the model file {recorded!r} changed since the run was made (sha256 {edited[:12]}… now, {sha[:12]}… "
        "then): restore it, or point --model at the original"
    )
    (tmp_path / "m" / "odd.py").rename(tmp_path / "edited.py")
    with pytest.raises(ConfigError, match="does not exist: if it was moved, point --model at it"):
        relocate(study, config, None, None, write=True)
    with pytest.raises(ConfigError, match=f"its sha256 is {edited[:12]}…, the run's '{recorded}' had {sha[:12]}…"):
        relocate(study, config, "edited.py", None, write=True)
    assert st.stored_config(study)["model"] == f"{recorded}:mlp"  # nothing written
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "odd.py").write_text(MODEL)
    moved = relocate(study, config, "elsewhere/odd.py", None, write=False)
    assert moved.model == f"{(tmp_path / 'elsewhere' / 'odd.py').resolve()}:mlp"
    assert st.stored_config(study)["model"] == f"{recorded}:mlp"  # write=False: the study is unchanged
    assert stored_files(study)["model"].sha256 == sha
