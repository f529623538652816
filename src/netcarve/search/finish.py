"""The end of a search session: trials.csv, log.json, best.json, best.pt and report.html in the run dir."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.search.lookup import candidate_graph
from netcarve.search.record import TrialRecord
from netcarve.search.results import write_results
from netcarve.search.runner import remove_lock
from netcarve.search.session import Session

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)


def write_report_safely(run_dir: Path) -> Path | None:
    """report.html of the run dir, regenerated with the results; a failing report never fails the search."""
    try:
        from netcarve.report import write_report

        return write_report(run_dir, force=True)
    except Exception as exc:
        log.warning("could not write report.html: %s: %s", type(exc).__name__, exc)
        return None


def finish_interrupted(session: Session) -> None:
    """After Ctrl-C or SIGTERM: trials.csv, log.json and report.html for what is done (no best.pt, which
    could mean training a candidate); ``--resume`` finishes the rest."""
    if session.run_dir is None:
        return
    remove_lock(session.run_dir)
    write_results(session.run_dir, session.study, session.prepared.plan, finished=False)
    write_report_safely(session.run_dir)


def finish(session: Session) -> list[FrozenTrial]:
    """Write trials.csv, log.json, best.json, best.pt (the first best trial) and report.html into the run dir."""
    from netcarve.train.checkpoint import save_checkpoint

    if session.run_dir is None:
        return []
    remove_lock(session.run_dir)
    best = write_results(session.run_dir, session.study, session.prepared.plan, finished=True)
    if best:
        graph, saved = candidate_graph(session, best[0])
        target = session.run_dir / "best.pt"
        if saved is not None:
            shutil.copyfile(saved, target)
        elif graph is not None:
            meta = {"trial": best[0].number, "metrics": dict(TrialRecord.of(best[0]).metrics)}
            save_checkpoint(target, graph, meta, overwrite=True)
    write_report_safely(session.run_dir)
    return best
