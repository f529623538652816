"""``netcarve worker``: a process that joins a running study and runs its trials."""

from __future__ import annotations

from pathlib import Path

from netcarve.errors import SearchError
from netcarve.search import storage as st
from netcarve.search.rundir import StudyRef, load_stored, pending_base
from netcarve.search.session import VALIDITY_ATTR, Session, join, prepare


def join_worker(storage_url: str, study_name: str, config_path: str | None, index: int) -> Session:
    """A worker on a running study: its config comes from the study (or ``config_path``, same space)."""
    from netcarve.configure import build_config
    from netcarve.search.relocate import vouched_model
    from netcarve.workflow import initial_graph, load_splits

    config, storage, study = load_stored(StudyRef(storage_url, study_name))
    pending = pending_base(study)
    if pending is not None:
        raise SearchError(
            f"study {study_name!r} is still training its base model ({pending} does not exist yet): "
            "start the worker when it does"
        )
    if config_path is not None:
        own = build_config(config_path)
        if own.search is None or config.search is None or own.search.search_space != config.search.search_space:
            raise SearchError(f"{config_path}: its [search.search_space] differs from the study's")
        config = own
    splits = load_splits(config)
    base = initial_graph(config, splits, relocated=vouched_model(study, config))
    prepared = prepare(config, splits, base, checked=study.user_attrs.get(VALIDITY_ATTR))
    session = join(prepared, storage, storage_url, study_name, None, index)
    stored_dir = session.study.user_attrs.get(st.RUN_DIR_ATTR)
    if stored_dir and Path(stored_dir).is_dir():
        session.run_dir = Path(stored_dir)
    return session
