"""Everything one process needs to run trials of a study: config, plan, base graph, space, evaluator.

The search command, ``--resume`` and ``netcarve worker`` all build a :class:`Session`; workers read the
effective config from the study (stored there when the study was created).

:func:`prepare` runs once per process (the search command, each worker, ``--resume``, ``export --trial``
of a candidate without a checkpoint) and builds the plan once. Its validity sweep (up to
:data:`~netcarve.search.validity.MAX_TRIES` builds per choice) runs when the study is created; the study
stores the :func:`validity_key` of the space and base graph it checked (:data:`VALIDITY_ATTR`), and a
process that prepares the same space on the same base graph takes that result instead of building again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netcarve.config.run import RunConfig, effective_dict
from netcarve.data.base import TensorSplits
from netcarve.errors import ConfigError, SearchError
from netcarve.ir.graph import Graph
from netcarve.search.candidate import CandidateEvaluator
from netcarve.search.objective import TrialRunner
from netcarve.search.plan import SearchPlan, make_plan, target_trials
from netcarve.search.samplers import SAMPLERS, make_sampler
from netcarve.search.spaces import SearchSpace, build_space
from netcarve.search.storage import (
    CONFIG_ATTR,
    RESUMES_ATTR,
    RUN_DIR_ATTR,
    TARGET_ATTR,
    load_study,
    with_heartbeat,
)
from netcarve.search.validity import check_choices
from netcarve.train.driver import has_batch_norm

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A validated search before any study exists: what --dry-run prints."""

    config: RunConfig
    plan: SearchPlan
    splits: TensorSplits | None  # None only in a dry run on the real JSC set (not loaded)
    base: Graph
    space: SearchSpace
    target: int | None
    retrain: bool
    #: :func:`validity_key` of the space and base checked (stored in the study as :data:`VALIDITY_ATTR`)
    validity: str = ""


#: study user attribute: the :func:`validity_key` whose every choice was checked when the study was created
VALIDITY_ATTR = "netcarve.validity"
#: the package and version that compute the study's fpga_luts / fpga_latency (``analysis.fpga.estimator``)
ESTIMATOR_ATTR = "netcarve.firmware_metrics"


@dataclass
class Session:
    prepared: Prepared
    study: optuna.Study
    storage: BaseStorage
    url: str
    run_dir: Path | None

    @property
    def target(self) -> int | None:
        value = self.study.user_attrs.get(TARGET_ATTR)
        return None if value is None else int(value)

    def runner(self) -> TrialRunner:
        p = self.prepared
        if p.splits is None:
            raise SearchError("no data loaded: this search was prepared for a dry run")
        evaluator = CandidateEvaluator(p.base, p.splits, p.plan, p.retrain)
        checkpoints = self.run_dir / "trials" if self.run_dir is not None and self.run_dir.is_dir() else None
        return TrialRunner(self.study, p.plan, p.space, evaluator, checkpoints)


def validity_key(space: SearchSpace, base: Graph) -> str:
    """A digest of what decides which configurations can be built: the space (every pass, fixed value and
    choice) and the base graph's structure (its nodes and every parameter's and buffer's shape)."""
    module = base.module
    shapes = [(n, list(t.shape), str(t.dtype)) for n, t in (*module.named_parameters(), *module.named_buffers())]
    text = json.dumps([space.name, space.describe(), str(module.graph), shapes, list(base.input_shape)], default=repr)
    return hashlib.sha1(text.encode()).hexdigest()


def prepare(
    config: RunConfig,
    splits: TensorSplits | None,
    base: Graph,
    plan: SearchPlan | None = None,
    checked: str | None = None,
) -> Prepared:
    """Validate the whole search against the base graph; every choice must be valid in some configuration
    (:func:`~netcarve.search.validity.check_choices`; a configuration invalid only jointly is pruned).

    ``plan``: ``make_plan(config)`` when the caller made it already; ``checked``: the validity key a study
    stores (:data:`VALIDITY_ATTR`): when the space and base are the same, their choices are not built again."""
    plan = plan or make_plan(config)
    space = build_space(plan.space, base)
    target = target_trials(plan, space)
    validity = validity_key(space, base)
    if validity != checked:
        check_choices(space, base)
    how = "choices as the study checked them" if validity == checked else "every choice checked"
    # a process joining a study says so in its log (a worker's worker-<i>.log); a new search stays quiet
    log.log(logging.INFO if checked is not None else logging.DEBUG, "search prepared (pid %d): %s", os.getpid(), how)
    retrain = plan.retrains(space)
    if plan.constraints and not SAMPLERS.get(plan.sampler).takes_constraints:
        log.info("sampler %s does not steer by constraints; infeasible trials are still never best", plan.sampler)
    if plan.eval_mode and retrain:
        log.warning("eval_mode = true, but the space changes widths: every candidate is retrained (basic_train)")
    learned = space.can_choose("name", "learned")
    if learned and not retrain:
        raise ConfigError(
            "search.strategy.eval_mode: the space offers the 'learned' quantizer, whose precision (and its inputs' "
            "ranges) is learned while training; set eval_mode = false so every candidate is retrained"
        )
    _unused_beta(config, learned)
    if learned and has_batch_norm(base.module):
        log.warning("the base model has BatchNorm layers: a learned candidate's firmware folds each into the layer "
                    "before it and requantizes the weights to their learned formats, which may change its accuracy "
                    "(netcarve export prints the agreement with the unfolded model); to search the folded model, "
                    "fold first (netcarve transform with [passes.fold_batchnorm]) and search with --load")  # fmt: skip
    return Prepared(config, plan, splits, base, space, target, retrain, validity)


def _unused_beta(config: RunConfig, learned: bool) -> None:
    """A search builds its candidates from its space: ``[passes.quantize]`` beta keys (MASE configs carry a
    ``[passes]`` table for ``transform``) do not reach them; say where they go."""
    from netcarve.config.passes import BETA_KEYS

    quantize = config.passes.get("quantize")
    given = [k for k in BETA_KEYS if k in getattr(quantize, "model_fields_set", set())]
    if given and learned:
        log.warning("passes.quantize.%s is not used by the search (its candidates come from the space): search it "
                    "with [search.search_space.pass_config] (graph/joint: [search.search_space.quantize.pass_config]) "
                    "%s = [...]", given[0], given[0])  # fmt: skip


#: seed distance between the samplers of successive resumes of a study
RESUME_SEED_STRIDE = 1_000_003


def sampler_for(plan: SearchPlan, worker_index: int = 0, resumes: int = 0) -> BaseSampler:
    """Worker i's sampler is seeded with seed + i (one process: exactly the config's seed); after r resumes
    with seed + i + r·RESUME_SEED_STRIDE (mod 2^32): a resumed random or TPE sampler seeded as before would
    suggest its first configurations again, each a repeat whose earlier result is reused."""
    return make_sampler(plan.sampler, (plan.seed + worker_index + resumes * RESUME_SEED_STRIDE) % 2**32)


def stored_attrs(prepared: Prepared, run_dir: Path | None) -> dict[str, Any]:
    """Study user attributes: the effective config (n_trials resolved, checkpoint path absolute)."""
    data = copy.deepcopy(effective_dict(prepared.config))
    setup = data.setdefault("search", {}).setdefault("strategy", {}).setdefault("setup", {})
    if prepared.target is not None:
        setup["n_trials"] = prepared.target
    if prepared.config.load_name:
        data["load_name"] = str(Path(prepared.config.load_name).resolve())
    run_dir_text = str(run_dir.resolve()) if run_dir else None
    return {
        CONFIG_ATTR: data,
        RUN_DIR_ATTR: run_dir_text,
        TARGET_ATTR: prepared.target,
        VALIDITY_ATTR: prepared.validity,
    }


def pruner_for(plan: SearchPlan) -> BasePruner:
    """The study's pruner (every process builds its own; Optuna pruners keep no state of their own)."""
    from netcarve.search.pruners import make_pruner

    return make_pruner(plan.pruner, plan.train.max_epochs)


def record_estimator(study: optuna.Study, plan: SearchPlan) -> None:
    """Record which package computes the study's firmware metrics, or refuse to add trials whose fpga_luts
    and fpga_latency another package (or version) would compute: one front of two estimators compares
    numbers in different units (da4ml's adder delays, alkaid's ns) and costs. A study whose firmware metrics
    predate the record (made with da4ml, before netcarve exported with alkaid) counts as da4ml's once it
    has finished trials."""
    if not plan.needs_fpga:
        return
    from netcarve.analysis.fpga import estimator

    now = estimator()
    recorded = study.user_attrs.get(ESTIMATOR_ATTR)
    finished = any(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    if recorded is None and not finished:
        study.set_user_attr(ESTIMATOR_ATTR, now)
        return
    if recorded == now:
        return
    then = (
        f"{recorded.get('package')} {recorded.get('version')}"
        if isinstance(recorded, dict)
        else "da4ml (before netcarve computed them with alkaid)"
    )
    raise SearchError(
        f"this study's fpga_luts/fpga_latency were computed by {then}, and this netcarve computes them with "
        f"{now['package']} {now['version']} (latency in {now['latency_unit']}): its trials and new ones would not "
        "compare; start a new search (netcarve search --config …), or continue it where that package is installed"
    )


def join(prepared: Prepared, storage: BaseStorage, url: str, name: str, run_dir: Path | None, index: int) -> Session:
    """This process's session on the study (worker ``index``, seeded for the study's resumes so far); a
    database storage is opened anew with the study's heartbeat. A study whose firmware metrics another
    estimator computed is refused (:func:`record_estimator`)."""
    storage = with_heartbeat(storage, url, prepared.plan.heartbeat_interval)
    study = load_study(storage, url, name, None, pruner_for(prepared.plan))
    record_estimator(study, prepared.plan)
    study.sampler = sampler_for(prepared.plan, index, int(study.user_attrs.get(RESUMES_ATTR, 0)))
    return Session(prepared, study, storage, url, run_dir)
