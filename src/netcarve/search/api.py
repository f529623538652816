"""Start, resume or join a search, and finish it (results and best.pt). No printing: the CLI renders.

``eval_mode = true`` without a checkpoint (no ``--load``/``load_name``): the base model is first trained
with the top-level settings (max_epochs, …), saved as ``base.pt`` in the run dir, and every trial
quantizes that trained model. This makes an eval-mode search run on a fresh dataset without a separate
``netcarve train``; the effective config stored in the study points at ``base.pt``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.config.loader import option_name, validate_config
from netcarve.config.run import RunConfig, effective_dict
from netcarve.errors import SearchError
from netcarve.ir.graph import Graph
from netcarve.redact import MASK, redact
from netcarve.search import storage as st
from netcarve.search.brute_force import enqueue_missing
from netcarve.search.candidate import build_candidate
from netcarve.search.objective import name_objectives, trial_checkpoint
from netcarve.search.plan import make_plan
from netcarve.search.recovery import recover_stale
from netcarve.search.results import write_results
from netcarve.search.runner import remove_lock
from netcarve.search.session import Prepared, Session, join, prepare, pruner_for, sampler_for, stored_attrs

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

BASE_NAME = "base.pt"
#: study user attribute: the base checkpoint this search trains first (absent when it was given)
BASE_ATTR = "netcarve.base"


@dataclass(frozen=True)
class StudyRef:
    storage: str
    name: str


def trains_base_first(prepared: Prepared) -> bool:
    return prepared.plan.eval_mode and not prepared.retrain and not prepared.config.load_name


def prepare_search(config: RunConfig, load: str | None = None) -> Prepared:
    """Validate the config, load the data and the base model, build the space (nothing is trained)."""
    from netcarve.workflow import initial_graph, load_splits

    make_plan(config)  # fail on a bad strategy before loading any data
    if load:
        config = config.model_copy(update={"load_name": load})
    splits = load_splits(config)
    return prepare(config, splits, initial_graph(config, splits))


def dry_run_prepare(config: RunConfig, load: str | None = None) -> Prepared:
    """As :func:`prepare_search`, but the real JSC set is not loaded (its schema gives the model's shapes)."""
    from netcarve.data import load_dataset, parse_dataset_spec
    from netcarve.data.jsc_schema import jsc_info
    from netcarve.train.checkpoint import build_graph, load_graph
    from netcarve.workflow import require_model_and_dataset

    make_plan(config)
    model, dataset = require_model_and_dataset(config)
    if load:
        config = config.model_copy(update={"load_name": load})
    splits = None if parse_dataset_spec(dataset)[0] == "jsc" else load_dataset(dataset)
    info = splits.info if splits is not None else jsc_info()
    base = load_graph(config.load_name, model, info) if config.load_name else build_graph(model, info)
    return prepare(config, splits, base)


def _train_base(prepared: Prepared, path: Path) -> Prepared:
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
    from netcarve.runs import create_run_dir, write_run_files
    from netcarve.workflow import project_name

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
    url = storage_url or st.default_storage_url(run_dir)
    name = study_name or f"{run_dir.parent.name}/{run_dir.name}"
    source = prepared.splits.source if prepared.splits is not None else None
    extra = {"dataset_source": source, "study": {"storage": st.redacted(url), "name": name}}
    write_run_files(run_dir, effective_dict(stored.config), "search", cfg.seed, extra)
    storage = storage or st.open_storage(url)
    if url.startswith("sqlite") and prepared.plan.n_jobs > 1:
        log.warning("SQLite is for one process; with n_jobs > 1 use the default journal file or PostgreSQL")
    study = st.create_study(
        storage, url, name, prepared.plan.directions, sampler_for(prepared.plan), pruner_for(prepared.plan)
    )
    name_objectives(study, prepared.plan)  # study.metric_names, for plain Optuna clients (optuna-dashboard)
    for key, value in stored_attrs(stored, run_dir).items():
        study.set_user_attr(key, redact(value))
    if base_path is not None:
        study.set_user_attr(BASE_ATTR, str(base_path.resolve()))
    if prepared.plan.enumerates and prepared.target is not None:
        enqueue_missing(study, prepared.space, prepared.target)
    if base_path is not None:
        prepared = _train_base(prepared, base_path)
    return Session(prepared, study, storage, url, run_dir)


def read_study_ref(run_dir: Path, storage_url: str | None) -> StudyRef:
    """The study of a run dir, from its manifest.json. A run dir moved or copied since it was created keeps
    its own study.journal (the manifest names the journal where the run dir was created)."""
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise SearchError(f"{str(run_dir)!r} is not a run dir (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SearchError(f"cannot read {str(path)!r}: {exc}") from exc
    ref = manifest.get("study") if isinstance(manifest, dict) else None
    if not isinstance(ref, dict) or not isinstance(ref.get("storage"), str) or not isinstance(ref.get("name"), str):
        raise SearchError(f"{str(run_dir)!r} is not a search run dir (its manifest names no study)")
    url = storage_url or _own_journal(run_dir, str(ref["storage"]))
    if MASK in url:
        raise SearchError(
            f"the run's storage URL was stored without its password ({url}): pass it again with --storage, "
            "or set NETCARVE_STORAGE"
        )
    return StudyRef(url, str(ref["name"]))


def _own_journal(run_dir: Path, stored: str) -> str:
    """``stored``, or the run dir's own journal when ``stored`` is a run dir's journal elsewhere (moved or
    copied: a copy must not write into the original's study)."""
    journal, own = st.journal_path(stored), run_dir / st.JOURNAL_NAME
    if journal is None or journal.name != st.JOURNAL_NAME or not own.is_file():
        return stored
    if journal.resolve() != own.resolve():
        log.info("%s was moved or copied: using its own %s, not %s", run_dir, st.JOURNAL_NAME, journal)
    return str(own.resolve())


def _writable_journal(run_dir: Path, url: str, explicit: bool) -> None:
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


def _moved(path: str | None, study: optuna.Study, run_dir: Path | None) -> str | None:
    """``path`` in the run dir the study was created in, taken to the same place in ``run_dir`` (moved or
    copied since)."""
    created = study.user_attrs.get(st.RUN_DIR_ATTR)
    if not path or not created or run_dir is None or not Path(path).is_relative_to(created):
        return path
    return str(run_dir.resolve() / Path(path).relative_to(created))


def load_stored(
    ref: StudyRef, overrides: dict[str, object] | None = None, run_dir: Path | None = None
) -> tuple[RunConfig, BaseStorage, optuna.Study]:
    """The effective config stored in the study (with ``overrides`` of strategy.setup keys); a checkpoint it
    loads from the run dir it was created in is taken from ``run_dir`` (moved or copied since)."""
    storage = st.open_storage(ref.storage, existing=True)
    study = st.load_study(storage, ref.storage, ref.name)
    data = st.stored_config(study)
    setup = data.setdefault("search", {}).setdefault("strategy", {}).setdefault("setup", {})
    setup.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if isinstance(data.get("load_name"), str):
        data["load_name"] = _moved(data["load_name"], study, run_dir)
    options = {f"search.strategy.setup.{k}": option_name(k) for k, v in (overrides or {}).items() if v is not None}
    return validate_config(data, f"study {ref.name!r}", options), storage, study


def _pending_base(study: optuna.Study, run_dir: Path | None = None) -> Path | None:
    """The base checkpoint the study trains first, when it does not exist yet (interrupted while training)."""
    stored = _moved(study.user_attrs.get(BASE_ATTR), study, run_dir)
    return Path(stored) if stored and not Path(stored).is_file() else None


def _adopt(study: optuna.Study, run_dir: Path) -> None:
    """After a move or copy of the run dir: the study's paths into the run dir it was created in (the base
    checkpoint, the config's ``load_name``, the run dir workers write to) now point into ``run_dir``."""
    if study.user_attrs.get(st.RUN_DIR_ATTR) in (None, str(run_dir.resolve())):
        return
    if BASE_ATTR in study.user_attrs:
        study.set_user_attr(BASE_ATTR, _moved(study.user_attrs[BASE_ATTR], study, run_dir))
    data = st.stored_config(study)
    if isinstance(data.get("load_name"), str):
        study.set_user_attr(st.CONFIG_ATTR, {**data, "load_name": _moved(data["load_name"], study, run_dir)})
    study.set_user_attr(st.RUN_DIR_ATTR, str(run_dir.resolve()))


def resume_search(run_dir: Path, storage_url: str | None, n_trials: int | None, n_jobs: int | None) -> Session:
    """Continue an interrupted study in its run dir: stale trials are redone, then up to n_trials done; a
    base model whose training was interrupted is trained again first."""
    from netcarve.workflow import initial_graph, load_splits

    ref = read_study_ref(run_dir, storage_url)
    _writable_journal(run_dir, ref.storage, explicit=storage_url is not None)
    config, storage, study = load_stored(ref, {"n_trials": n_trials, "n_jobs": n_jobs}, run_dir)
    base_path = _pending_base(study, run_dir)
    _adopt(study, run_dir)
    study.set_user_attr(st.RESUMES_ATTR, int(study.user_attrs.get(st.RESUMES_ATTR, 0)) + 1)
    if base_path is not None:
        log.info("resume: the base model was not finished (%s is missing); training it again", base_path)
        config = config.model_copy(update={"load_name": None})
    splits = load_splits(config)
    prepared = prepare(config, splits, initial_graph(config, splits))
    if base_path is not None:
        prepared = _train_base(prepared, base_path)
    session = join(prepared, storage, ref.storage, ref.name, run_dir, 0)
    recover_stale(session.study, session.storage)
    name_objectives(session.study, prepared.plan)  # also for studies created before objectives were named
    session.study.set_user_attr(st.TARGET_ATTR, prepared.target)
    if prepared.plan.enumerates and prepared.target is not None:
        enqueue_missing(session.study, prepared.space, prepared.target)
    return session


def join_worker(storage_url: str, study_name: str, config_path: str | None, index: int) -> Session:
    """A worker on a running study: its config comes from the study (or ``config_path``, same space)."""
    from netcarve.config.loader import build_config
    from netcarve.workflow import initial_graph, load_splits

    config, storage, study = load_stored(StudyRef(storage_url, study_name))
    pending = _pending_base(study)
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
    prepared = prepare(config, splits, initial_graph(config, splits))
    session = join(prepared, storage, storage_url, study_name, None, index)
    stored_dir = session.study.user_attrs.get(st.RUN_DIR_ATTR)
    if stored_dir and Path(stored_dir).is_dir():
        session.run_dir = Path(stored_dir)
    return session


def _best_graph(session: Session, trial: FrozenTrial) -> tuple[Graph | None, Path | None]:
    """The best candidate: its saved checkpoint when it was retrained, else rebuilt from the base."""
    if session.run_dir is not None:
        saved = trial_checkpoint(session.run_dir / "trials", trial.number)
        if saved.is_file():
            return None, saved
    transforms = tuple((str(n), dict(c)) for n, c in trial.user_attrs.get("transforms", []))
    if session.prepared.retrain:
        return session.runner().evaluator.evaluate(transforms).graph, None
    return build_candidate(session.prepared.base, transforms), None


def _why_no_best(run_dir: Path, study: optuna.Study) -> str:
    """Why a run dir has no best.pt, and what to do about it (best.json says whether the search finished)."""
    from optuna.trial import TrialState

    from netcarve.search.results import candidates

    try:
        finished = json.loads((run_dir / "best.json").read_text()).get("finished") is True
    except (OSError, ValueError, AttributeError):
        finished = False
    complete = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "reused_from" not in t.user_attrs
    ]
    if candidates(study):
        if finished:
            return "it was removed or never written: --resume writes it again, or export a trial with --trial N"
        return "the search has not finished; finish it with --resume, or export a complete trial with --trial N"
    if complete and finished:
        return (f"none of its {len(complete)} complete trial(s) (repeats not counted) satisfies the constraints; "
                "export one of them with --trial N (trials.csv lists them)")  # fmt: skip
    if complete:
        return (f"the search has not finished, and none of its {len(complete)} complete trial(s) so far (repeats "
                "not counted) satisfies the constraints; finish it with --resume, or export one of them with "
                "--trial N")  # fmt: skip
    if finished:
        return "the search finished with no complete trial (trials.csv gives each trial's reason): nothing to export"
    return "no trial completed yet; finish the search with --resume"


def trial_graph(run_dir: Path, number: int | None, storage_url: str | None = None) -> tuple[Graph, RunConfig]:
    """A search run's candidate and the run's config: its best trial (``best.pt``) when ``number`` is None,
    else trial ``number`` (complete): its saved checkpoint, or rebuilt from its transforms as
    :func:`finish` does for the best trial (retrained when the search retrains)."""
    from optuna.trial import TrialState

    from netcarve.train.checkpoint import load_saved_graph
    from netcarve.workflow import initial_graph, load_splits

    ref = read_study_ref(run_dir, storage_url)
    config_log = logging.getLogger("netcarve.config")
    previous = config_log.level
    config_log.setLevel(logging.ERROR)  # the stored config's warnings were shown when the search started
    try:
        config, storage, study = load_stored(ref, run_dir=run_dir)
    finally:
        config_log.setLevel(previous)
    if number is None:
        best = run_dir / "best.pt"
        if not best.is_file():
            raise SearchError(f"{str(run_dir)!r} has no best.pt: {_why_no_best(run_dir, study)}")
        return load_saved_graph(best), config
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    trial = trials.get(number)
    if trial is None:
        known = f"trials 0–{max(trials)}" if trials else "no trials"
        raise SearchError(f"trial {number} does not exist in {str(run_dir)!r} ({known})")
    if trial.state != TrialState.COMPLETE:
        state = "failed" if trial.state == TrialState.FAIL else trial.state.name.lower()
        raise SearchError(f"trial {number} is {state}, not complete: only complete trials can be exported")
    saved = trial_checkpoint(run_dir / "trials", number)
    if saved.is_file():
        return load_saved_graph(saved), config
    splits = load_splits(config)
    prepared = prepare(config, splits, initial_graph(config, splits))
    graph, saved_path = _best_graph(Session(prepared, study, storage, ref.storage, run_dir), trial)
    if graph is None:
        assert saved_path is not None
        graph = load_saved_graph(saved_path)
    return graph, config


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
        graph, saved = _best_graph(session, best[0])
        target = session.run_dir / "best.pt"
        if saved is not None:
            shutil.copyfile(saved, target)
        elif graph is not None:
            meta = {"trial": best[0].number, "metrics": best[0].user_attrs.get("metrics", {})}
            save_checkpoint(target, graph, meta, overwrite=True)
    write_report_safely(session.run_dir)
    return best
