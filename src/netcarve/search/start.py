"""``netcarve search``: validate and prepare a search, create its run dir and study, train its base model first
when it needs one.

``eval_mode = true`` without a checkpoint (no ``--load``/``load_name``): the base model is first trained
with the top-level settings (max_epochs, …), saved as ``base.pt`` in the run dir, and every trial
quantizes that trained model. This makes an eval-mode search run on a fresh dataset without a separate
``netcarve train``; the effective config stored in the study points at ``base.pt``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.config.run import RunConfig, effective_dict
from netcarve.redact import redact
from netcarve.search import storage as st
from netcarve.search.brute_force import enqueue_missing
from netcarve.search.objective import name_objectives
from netcarve.search.plan import make_plan
from netcarve.search.rundir import BASE_ATTR
from netcarve.search.session import Prepared, Session, prepare, pruner_for, record_estimator, sampler_for, stored_attrs

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)

BASE_NAME = "base.pt"


def trains_base_first(prepared: Prepared) -> bool:
    return prepared.plan.eval_mode and not prepared.retrain and not prepared.config.load_name


def prepare_search(config: RunConfig, load: str | None = None) -> Prepared:
    """Validate the config, load the data and the base model, build the space (nothing is trained)."""
    from netcarve.workflow import initial_graph, load_splits

    plan = make_plan(config)  # fail on a bad strategy before loading any data
    if load:
        config = config.model_copy(update={"load_name": load})
    splits = load_splits(config)
    return prepare(config, splits, initial_graph(config, splits), plan)


def dry_run_prepare(config: RunConfig, load: str | None = None) -> Prepared:
    """As :func:`prepare_search`, but the real JSC set is not loaded (its schema gives the model's shapes)."""
    from netcarve.data import load_dataset, parse_dataset_spec
    from netcarve.data.jsc_schema import jsc_info
    from netcarve.train.checkpoint import build_graph, load_graph
    from netcarve.workflow import require_model_and_dataset

    plan = make_plan(config)
    model, dataset = require_model_and_dataset(config)
    if load:
        config = config.model_copy(update={"load_name": load})
    splits = None if parse_dataset_spec(dataset)[0] == "jsc" else load_dataset(dataset)
    info = splits.info if splits is not None else jsc_info()
    base = load_graph(config.load_name, model, info) if config.load_name else build_graph(model, info)
    return prepare(config, splits, base, plan)


def train_base(prepared: Prepared, path: Path) -> Prepared:
    """Train the base model with the top-level settings and save it (atomically) as ``path``."""
    from netcarve.train.checkpoint import save_checkpoint
    from netcarve.train.loop import fit
    from netcarve.workflow import train_config

    cfg = prepared.config
    assert prepared.splits is not None
    log.info("eval_mode without a checkpoint: training the base %s for %d epoch(s) first", cfg.model, cfg.max_epochs)
    result = fit(prepared.base.module, prepared.splits, train_config(cfg))
    prepared.base.module.eval()
    save_checkpoint(path, prepared.base, {"steps": result.steps, "purpose": "search base"})
    return replace(prepared, config=cfg.model_copy(update={"load_name": str(path.resolve())}))


def start_search(
    prepared: Prepared,
    storage_url: str | None,
    study_name: str | None,
    storage: BaseStorage | None = None,
    run_dir: Path | None = None,
) -> Session:
    """Create the run dir and the study (storing the effective config); brute force enqueues its grid; then,
    in eval mode without a checkpoint, train the base. The study exists from the first second, so a search
    killed at any point can be continued with ``--resume`` (a missing ``base.pt`` is trained again).

    ``run_dir``: use this new directory instead of runs/<project>/<time> (``netcarve compare`` nests runs).
    """
    from netcarve.provenance import file_refs
    from netcarve.runs import create_run_dir, write_run_files
    from netcarve.search.relocate import record_files
    from netcarve.workflow import project_name, recorded_config

    storage_url = st.absolute(storage_url) if storage_url else storage_url
    if storage is None and storage_url:
        storage = st.open_storage(storage_url)  # unreachable → StorageError, and no run dir is made
    if storage is not None and study_name and st.study_exists(storage, study_name):
        raise st.duplicated(str(storage_url), study_name)
    cfg = prepared.config
    if run_dir is None:
        run_dir = create_run_dir(cfg.project_dir, project_name(cfg))
    else:
        run_dir.mkdir(parents=True)
    base_path = run_dir / BASE_NAME if trains_base_first(prepared) else None
    stored = prepared
    if base_path is not None:  # the config every process reads points at the base that is trained next
        stored = replace(prepared, config=cfg.model_copy(update={"load_name": str(base_path.resolve())}))
    stored = replace(stored, config=recorded_config(stored.config))  # model and dataset files: resolved paths
    files = file_refs(cfg.model, cfg.dataset)
    url = storage_url or st.default_storage_url(run_dir)
    name = study_name or f"{run_dir.parent.name}/{run_dir.name}"
    source = prepared.splits.source if prepared.splits is not None else None
    extra = {"dataset_source": source, "study": {"storage": st.redacted(url), "name": name}, "files": files}
    if prepared.plan.needs_fpga:  # fpga_luts and fpga_latency change with the package that estimates them
        from netcarve.analysis.fpga import estimator

        extra["firmware_metrics"] = estimator()
    write_run_files(run_dir, effective_dict(stored.config), "search", cfg.seed, extra)
    interval = prepared.plan.heartbeat_interval
    storage = st.open_storage(url, interval) if storage is None else st.with_heartbeat(storage, url, interval)
    if url.startswith("sqlite") and prepared.plan.n_jobs > 1:
        log.warning("SQLite is for one process; with n_jobs > 1 use the default journal file or PostgreSQL")
    study = st.create_study(
        storage, url, name, prepared.plan.directions, sampler_for(prepared.plan), pruner_for(prepared.plan)
    )
    name_objectives(study, prepared.plan)  # study.metric_names, for plain Optuna clients (optuna-dashboard)
    for key, value in stored_attrs(stored, run_dir).items():
        study.set_user_attr(key, redact(value))
    record_estimator(study, prepared.plan)
    record_files(study, files)
    if base_path is not None:
        study.set_user_attr(BASE_ATTR, str(base_path.resolve()))
    if prepared.plan.enumerates and prepared.target is not None:
        enqueue_missing(study, prepared.space, prepared.target)
    if base_path is not None:
        prepared = train_base(prepared, base_path)
    return Session(prepared, study, storage, url, run_dir)
