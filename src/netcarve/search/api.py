"""The search as a library: start, resume or join a search, and finish it; no printing (the CLI renders).

Each concern has its own module; this facade names the entry points:

- :mod:`~netcarve.search.start`: prepare a search, create its run dir and study (``netcarve search``);
- :mod:`~netcarve.search.resume`: continue an interrupted study (``--resume``), after
  :mod:`~netcarve.search.journal_check` (its journal writable, its own and whole);
- :mod:`~netcarve.search.worker`: join a running study (``netcarve worker``);
- :mod:`~netcarve.search.rundir`: a run dir's study, its stored config, a moved run dir adopted;
- :mod:`~netcarve.search.lookup`: a run's best trial or trial N as a model (``netcarve export``);
- :mod:`~netcarve.search.finish`: the results files and best.pt.
"""

from __future__ import annotations

from netcarve.search.finish import finish, finish_interrupted, write_report_safely
from netcarve.search.lookup import trial_graph
from netcarve.search.resume import resume_search
from netcarve.search.rundir import StudyRef, read_study_ref
from netcarve.search.start import dry_run_prepare, prepare_search, start_search, trains_base_first
from netcarve.search.worker import join_worker

__all__ = [
    "StudyRef",
    "dry_run_prepare",
    "finish",
    "finish_interrupted",
    "join_worker",
    "prepare_search",
    "read_study_ref",
    "resume_search",
    "start_search",
    "trains_base_first",
    "trial_graph",
    "write_report_safely",
]
