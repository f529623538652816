"""Before ``--resume`` writes to a run dir: the run dir and its journal are writable, the journal is its own
(not another run dir's, not a hard link shared with another file), and its last record is whole (a journal
cut short by a crash is repaired, :func:`netcarve.search.storage.repair_journal`)."""

from __future__ import annotations

import os
from pathlib import Path

from netcarve.errors import SearchError
from netcarve.search import storage as st


def writable_journal(run_dir: Path, url: str, explicit: bool) -> None:
    """Before ``--resume`` writes to a run dir and its journal: the run dir and the journal must be writable;
    unless the storage was given (``explicit``), the journal must not be another run dir's (a copy without
    its own, or a symlink to another's) nor a hard link shared with another file; and its last record must
    be whole."""
    if not os.access(run_dir, os.W_OK):
        raise SearchError(f"{str(run_dir)!r} is not writable: --resume writes its journal, trials and results there")
    journal = st.journal_path(url)
    if journal is None:
        return
    real = journal.resolve()
    if journal.is_file() and not (os.access(real, os.W_OK) and os.access(real.parent, os.W_OK)):
        raise SearchError(f"the journal {str(journal)!r} is not writable (nor its lock file): --resume writes to it")
    if not explicit and real.parent != run_dir.resolve() and (real.parent / "manifest.json").is_file():
        raise SearchError(
            f"{str(run_dir)!r} has no {st.JOURNAL_NAME} of its own: the journal it would use, {str(real)!r}, is "
            "another run dir's; resume that run dir instead (or copy its journal here)"
        )
    if not explicit and journal.is_file() and journal.stat().st_nlink > 1:
        raise SearchError(
            f"{str(journal)!r} is a hard link shared with another file (a copy made with cp -al?): resuming "
            f"would write into both; give it its own copy first (cp {journal.name} x && mv x {journal.name})"
        )
    if journal.is_file():
        st.repair_journal(journal)
