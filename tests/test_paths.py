"""paths: the checks of output paths every command shares (a path through a file, a directory for a file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netcarve.errors import ConfigError
from netcarve.paths import make_dirs, output_dir, output_file


def test_output_file_and_dir_refuse_a_path_through_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error names the path as typed (relative stays relative) and the file in the way; nothing is made."""
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("mine")
    for check in (output_file, output_dir, make_dirs):
        with pytest.raises(ConfigError) as err:
            check("afile/sub/x", "--output", ConfigError)
        assert str(err.value) == "--output 'afile/sub/x' cannot be written: 'afile' is a file, not a directory"
    with pytest.raises(ConfigError, match=r"^--output 'afile' is a file, not a directory$"):
        output_dir("afile", "--output", ConfigError)
    Path("d").mkdir()
    with pytest.raises(ConfigError, match=r"^--output 'd' is a directory; give the path of a file to write$"):
        output_file("d", "--output", ConfigError)
    Path("link").symlink_to("afile")
    with pytest.raises(ConfigError, match=r"'link' is a file, not a directory"):
        output_dir("link/x", "--output", ConfigError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "d", "link"]
    assert Path("afile").read_text() == "mine"


def test_what_can_be_written_is_returned_and_made(tmp_path: Path) -> None:
    assert output_file(tmp_path / "d" / "x.pt", "checkpoint", ConfigError) == tmp_path / "d" / "x.pt"
    assert not (tmp_path / "d").exists()  # only checked
    assert make_dirs(tmp_path / "d" / "e", "folder", ConfigError).is_dir()
    assert make_dirs(tmp_path / "d" / "e", "folder", ConfigError).is_dir()  # an existing directory is fine
