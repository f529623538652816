"""A search run's candidates after the search: its best trial (``best.pt``) or trial N, as ``netcarve
export`` and :func:`netcarve.search.finish.finish` need them (a saved checkpoint, or rebuilt from the trial's
transforms — retrained when the search retrains)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.config.run import RunConfig
from netcarve.errors import SearchError
from netcarve.ir.graph import Graph
from netcarve.search.candidate import build_candidate
from netcarve.search.objective import trial_checkpoint
from netcarve.search.record import TrialRecord, is_reused
from netcarve.search.rundir import load_stored, read_study_ref
from netcarve.search.session import VALIDITY_ATTR, Session, prepare

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


log = logging.getLogger(__name__)


def candidate_graph(session: Session, trial: FrozenTrial) -> tuple[Graph | None, Path | None]:
    """The best candidate: its saved checkpoint when it was retrained, else rebuilt from the base."""
    saved = None if session.run_dir is None else trial_checkpoint(session.run_dir / "trials", trial.number)
    if saved is not None and saved.is_file():
        return None, saved
    transforms = TrialRecord.of(trial).transforms or ()
    if session.prepared.retrain:
        if saved is not None:  # a retrained trial saves its checkpoint: this one is gone
            log.warning("trial %d has no checkpoint (%s): retraining it from its transforms as the search did",
                        trial.number, saved)  # fmt: skip
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
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if not is_reused(t)]
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


def trial_graph(
    run_dir: Path,
    number: int | None,
    storage_url: str | None = None,
    model: str | None = None,
    dataset: str | None = None,
) -> tuple[Graph, RunConfig]:
    """A search run's candidate and the run's config: its best trial (``best.pt``) when ``number`` is None,
    else trial ``number`` (complete): its saved checkpoint, or rebuilt from its transforms as
    :func:`~netcarve.search.finish.finish` does for the best trial (retrained when the search retrains).
    ``model``: the run's model file, moved since (checked against its sha256); ``dataset``, when it is the
    run's dataset file (same sha256), stands in for it where a trial is rebuilt."""
    from optuna.trial import TrialState

    from netcarve.provenance import dataset_file
    from netcarve.search.relocate import relocate, same_dataset_file, stored_files, vouched_model
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
        graph = load_saved_graph(best, model)
        _dataset_unchanged(study, dataset)
        return graph, config
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
        graph = load_saved_graph(saved, model)
        _dataset_unchanged(study, dataset)
        return graph, config
    moved_dataset = dataset if dataset is not None and same_dataset_file(study, dataset) else None
    recorded = dataset_file(config.dataset) if config.dataset else None
    if dataset is not None and recorded is not None and not Path(recorded).exists() and not stored_files(study):
        moved_dataset = dataset  # a run from before the files were recorded: taken with a warning (relocate)
    config = relocate(study, config, model, moved_dataset, write=False)
    splits = load_splits(config)
    base = initial_graph(config, splits, relocated=model is not None or vouched_model(study, config))
    prepared = prepare(config, splits, base, checked=study.user_attrs.get(VALIDITY_ATTR))
    candidate, saved_path = candidate_graph(Session(prepared, study, storage, ref.storage, run_dir), trial)
    if candidate is None:
        assert saved_path is not None
        candidate = load_saved_graph(saved_path, model)
    return candidate, config


def _dataset_unchanged(study: optuna.Study, dataset: str | None) -> None:
    """Without ``--dataset``, the dataset file the run recorded (export's check reads it) must be unchanged."""
    from netcarve.provenance import check_unchanged
    from netcarve.search.relocate import stored_files

    ref = stored_files(study).get("dataset")
    if dataset is None and ref is not None and Path(ref.path).is_file():
        check_unchanged(ref, "dataset", "--dataset")


def run_model(
    run_dir: Path,
    number: int | None,
    storage_url: str | None = None,
    model: str | None = None,
    dataset: str | None = None,
) -> tuple[Graph, str | None]:
    """:func:`trial_graph` as ``netcarve export`` reads a run dir: the candidate and the dataset the run used
    (a :data:`netcarve.export.api.RunReader`, with ``storage_url``, ``model`` and ``dataset`` bound)."""
    graph, config = trial_graph(run_dir, number, storage_url, model, dataset)
    return graph, config.dataset
