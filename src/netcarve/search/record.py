"""A trial's result as one typed record, and its one layout as Optuna user attributes.

Every module that writes or reads a trial's user attributes goes through :class:`TrialRecord`:
:meth:`TrialRecord.attrs` gives the attributes of the fields that are set (a record may hold only the
fields a step writes, e.g. the configuration key when the trial is suggested), :meth:`TrialRecord.of` reads
a trial back. Each metric is stored once, flat, as ``metric.<name>`` (plain Optuna clients such as
optuna-dashboard sort and plot them); the software and hardware groups shown in best.json and the CLI's
best table are derived from the metric registry (:func:`netcarve.metrics.split_groups`).

Studies written before this layout stored each metric three times (``metrics``, ``metric.<name>`` and the
``software_metrics``/``hardware_metrics`` groups); :meth:`TrialRecord.from_attrs` reads them too, so an
older run dir still resumes, exports and reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from netcarve.search.spaces import Transforms

#: prefix of the per-metric user attributes (``metric.accuracy``)
METRIC_PREFIX = "metric."
#: the attribute of the objective terms (sign·scale·metric in sum mode, scale·metric in a Pareto study)
SCALED = "scaled_metrics"
#: the attribute listing a learned candidate's front (its members' metrics)
FRONT = "front"
#: attributes of the previous layout that held every metric again (read, never written)
LEGACY_METRICS = "metrics"
LEGACY_GROUPS = ("software_metrics", "hardware_metrics")
#: keys read in hot loops (every trial of a study, on every claim)
GRID_ID, STALE, ERROR, REUSED_FROM, WORKER, CONFIG_KEY = (
    "grid_id",
    "stale",
    "error",
    "reused_from",
    "worker",
    "config_key",
)


@dataclass(frozen=True)
class TrialRecord:
    """What netcarve records on a trial (each field one user attribute of the same name, ``metrics`` aside).

    Outcome: ``config_key`` (digest of the candidate's transforms: equal keys, equal candidates),
    ``transforms``, ``metrics``, ``scaled_metrics`` (each objective's term: they add up to a sum study's
    value), ``train_steps``, ``duration_s``, ``population`` (the candidates trained with it); ``reused_from``
    on a trial that reused an earlier identical configuration's result; ``pruned`` (the reason) and
    ``pruned_epoch`` on a pruned trial; ``error``, ``traceback``, ``internal_error`` (a bug in netcarve) and
    ``log`` (``trials/trial-<n>.log``) on a failed one. A learned candidate (issue 22) also records ``front``
    (each member of its training's front: ``epoch``, ``metrics``, ``checkpoint`` relative to the run dir,
    ``pruned`` when it has no firmware) and ``design_epoch``, the member that is the trial's design.

    Bookkeeping: ``worker`` (``host:pid`` of its owner), ``grid_id`` (brute force: its index in canonical
    order), ``stale`` (failed because its process died or was interrupted: run again), ``redo_of`` and
    ``retries`` (a configuration queued again after its worker died).
    """

    worker: str | None = None
    grid_id: int | None = None
    stale: bool = False  # before ``error``: a trial marked stale is never taken for one that failed on its own
    redo_of: int | None = None
    retries: int = 0
    config_key: str | None = None
    transforms: Transforms | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    scaled_metrics: Mapping[str, float] = field(default_factory=dict)
    train_steps: int | None = None
    duration_s: float | None = None
    population: int | None = None
    reused_from: int | None = None
    pruned: str | None = None
    pruned_epoch: int | None = None
    front: tuple[Mapping[str, Any], ...] = ()
    design_epoch: int | None = None
    error: str | None = None
    traceback: str | None = None
    internal_error: bool = False
    log: str | None = None

    def attrs(self) -> dict[str, Any]:
        """The user attributes of the fields that are set (not at their default), JSON-serialisable, in field
        order (the order :func:`write` records them)."""
        out: dict[str, Any] = {}
        for name, default in _DEFAULTS.items():
            value = getattr(self, name)
            if value == default:
                continue
            if name == "metrics":
                out.update({f"{METRIC_PREFIX}{k}": float(v) for k, v in value.items()})
            elif name == "transforms":
                out[name] = [[n, dict(cfg)] for n, cfg in value]
            elif name == SCALED:
                out[name] = {k: float(v) for k, v in value.items()}
            elif name == FRONT:
                out[name] = [dict(member) for member in value]
            else:
                out[name] = value
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        """The record of a trial's user attributes, in this layout or the previous one (``metrics`` and the
        software/hardware groups; the flat ``metric.<name>`` win where both are present); unknown
        attributes are ignored."""
        values: dict[str, Any] = {k: attrs[k] for k in _SCALARS if k in attrs}
        metrics: dict[str, float] = {}
        for group in LEGACY_GROUPS:
            metrics.update(_floats(attrs.get(group)))
        metrics.update(_floats(attrs.get(LEGACY_METRICS)))
        metrics.update({k[len(METRIC_PREFIX) :]: float(v) for k, v in attrs.items() if k.startswith(METRIC_PREFIX)})
        transforms = attrs.get("transforms")
        front = attrs.get(FRONT)
        return cls(
            front=tuple(dict(m) for m in front if isinstance(m, Mapping)) if isinstance(front, list) else (),
            metrics=metrics,
            scaled_metrics=_floats(attrs.get(SCALED)),
            transforms=None if transforms is None else tuple((str(n), dict(c)) for n, c in transforms),
            **values,
        )

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        return cls.from_attrs(trial.user_attrs)


def _floats(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float))}


_DEFAULTS: dict[str, Any] = {f.name: getattr(TrialRecord(), f.name) for f in dataclasses.fields(TrialRecord)}
#: fields stored as one attribute of the same name and type
_SCALARS = tuple(name for name in _DEFAULTS if name not in ("metrics", "transforms", SCALED, FRONT))


def write(trial: optuna.Trial, record: TrialRecord) -> None:
    """Record the set fields of ``record`` on a live ``optuna.Trial`` (one user attribute each)."""
    for key, value in record.attrs().items():
        trial.set_user_attr(key, value)


# --- hot-path readers: one attribute of a trial, without building its whole record ----------------------


def is_reused(trial: FrozenTrial) -> bool:
    return REUSED_FROM in trial.user_attrs


def config_key(trial: FrozenTrial) -> str | None:
    value = trial.user_attrs.get(CONFIG_KEY)
    return value if isinstance(value, str) else None


def grid_id(trial: FrozenTrial) -> int | None:
    value = trial.user_attrs.get(GRID_ID)
    return None if value is None else int(value)


def worker(trial: FrozenTrial) -> str | None:
    value = trial.user_attrs.get(WORKER)
    return value if isinstance(value, str) else None


def marked_stale(trial: FrozenTrial) -> bool:
    """Marked ``stale`` (interrupted or its worker died), or failed with no ``error`` recorded (Optuna's
    heartbeat check failed it)."""
    attrs = trial.user_attrs
    return bool(attrs.get(STALE)) or ERROR not in attrs
