"""report.html in a real browser: headless Chromium lays it out, and its DOM holds every plotted point.

Marked `browser`; skipped when Chromium is missing (`.ci/run` installs Debian's chromium).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH")]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def test_rendered_dom_has_a_point_per_complete_trial(search_run: Path, tmp_path: Path) -> None:
    """After the browser parsed the page, the Pareto plot has one circle.trial per COMPLETE trial."""
    page = (search_run / "report.html").resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", page).stdout
    with (search_run / "trials.csv").open() as fh:
        complete = sum(row["state"] == "COMPLETE" for row in csv.DictReader(fh))
    assert complete > 0
    assert dom.count('class="trial') == complete
    assert "<svg" in dom and "Best trial(s)" in dom


def test_screenshot_is_a_real_picture(search_run: Path, tmp_path: Path) -> None:
    """A PNG of the laid-out page: valid signature, 1200 px wide, and more than a blank page's bytes."""
    shot = tmp_path / "report.png"
    page = (search_run / "report.html").resolve().as_uri()
    chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", page)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1200
    assert len(data) > 20_000
