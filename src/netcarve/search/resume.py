"""``netcarve search --resume``: continue an interrupted study in its run dir."""

from __future__ import annotations

import logging
from pathlib import Path

from netcarve.search import storage as st
from netcarve.search.brute_force import enqueue_missing
from netcarve.search.journal_check import writable_journal
from netcarve.search.objective import name_objectives
from netcarve.search.recovery import recover_stale
from netcarve.search.rundir import adopt, load_stored, pending_base, read_study_ref
from netcarve.search.session import VALIDITY_ATTR, Session, join, prepare
from netcarve.search.start import train_base

log = logging.getLogger(__name__)


def resume_search(
    run_dir: Path,
    storage_url: str | None,
    n_trials: int | None,
    n_jobs: int | None,
    model: str | None = None,
    dataset: str | None = None,
) -> Session:
    """Continue an interrupted study in its run dir: stale trials are redone, then up to n_trials done; a
    base model whose training was interrupted is trained again first. ``model`` / ``dataset``: the run's
    model file and dataset file, moved since (checked against their recorded sha256)."""
    from netcarve.search.relocate import relocate, vouched_model
    from netcarve.workflow import initial_graph, load_splits

    ref = read_study_ref(run_dir, storage_url)
    writable_journal(run_dir, ref.storage, explicit=storage_url is not None)
    config, storage, study = load_stored(ref, {"n_trials": n_trials, "n_jobs": n_jobs}, run_dir)
    config = relocate(study, config, model, dataset, write=True)
    base_path = pending_base(study, run_dir)
    adopt(study, run_dir)
    study.set_user_attr(st.RESUMES_ATTR, int(study.user_attrs.get(st.RESUMES_ATTR, 0)) + 1)
    if base_path is not None:
        log.info("resume: the base model was not finished (%s is missing); training it again", base_path)
        config = config.model_copy(update={"load_name": None})
    splits = load_splits(config)
    base = initial_graph(config, splits, relocated=vouched_model(study, config))
    prepared = prepare(config, splits, base, checked=study.user_attrs.get(VALIDITY_ATTR))
    if base_path is not None:
        prepared = train_base(prepared, base_path)
    session = join(prepared, storage, ref.storage, ref.name, run_dir, 0)
    recover_stale(session.study, session.storage)
    name_objectives(session.study, prepared.plan)  # also for studies created before objectives were named
    session.study.set_user_attr(st.TARGET_ATTR, prepared.target)
    session.study.set_user_attr(VALIDITY_ATTR, prepared.validity)
    if prepared.plan.enumerates and prepared.target is not None:
        enqueue_missing(session.study, prepared.space, prepared.target)
    return session
