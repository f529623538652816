"""Firmware metrics in a search: traced only when a plan uses them, pruning before training like any
architecture constraint, and a candidate that cannot be exported pruned with the reason."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from netcarve.metrics import METRICS, firmware_metric_names
from netcarve.search.candidate import NOT_EXPORTABLE
from netcarve.search.plan import make_plan
from netcarve.search.record import TrialRecord
from tests.search.helpers import config, run_search, search_dict, trials

pytest.importorskip("alkaid")

#: every Linear and ReLU fixed point with integer inputs, so every candidate is exportable
WEIGHT_WIDTHS = [4, 6, 8]
EXPORTABLE: dict[str, Any] = {
    "default": {"config": {"name": ["integer"], "data_in_width": [8], "weight_width": WEIGHT_WIDTHS, "bias_width": [8]}}
}
FPGA_OBJECTIVE = {
    "accuracy": {"scale": 1.0, "direction": "maximize"},
    "fpga_luts": {"scale": 1e-4, "direction": "minimize"},
}


def fpga_search(tmp_path: Path, seed: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data = search_dict(tmp_path, space="graph/quantize/mixed_precision_ptq", seed=seed, eval_mode=True, **extra)
    data["search"]["search_space"]["setup"]["by"] = "type"
    return data


def test_firmware_metrics_are_architecture_metrics_with_units() -> None:
    assert firmware_metric_names() == ("fpga_luts", "fpga_latency")
    assert all(METRICS.get(name).architecture_only for name in firmware_metric_names())
    assert (METRICS.get("fpga_luts").unit, METRICS.get("fpga_latency").unit) == ("LUT", "ns")


def test_plan_traces_only_when_a_metric_or_constraint_needs_it(tmp_path: Path) -> None:
    plain = make_plan(config(fpga_search(tmp_path, EXPORTABLE)))
    assert not plain.needs_fpga
    objective = make_plan(config(fpga_search(tmp_path, EXPORTABLE, metrics=FPGA_OBJECTIVE)))
    assert objective.needs_fpga
    data = fpga_search(tmp_path, EXPORTABLE)
    data["search"]["constraints"] = {"fpga_latency": {"max": 30}}
    constrained = make_plan(config(data))
    assert constrained.needs_fpga and constrained.constraints[0].architecture


def test_plain_search_does_not_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import netcarve.analysis.fpga as fpga

    def fail(graph: Any) -> Any:
        raise AssertionError("traced without an fpga metric")

    monkeypatch.setattr(fpga, "fpga_costs", fail)
    session = run_search(config(fpga_search(tmp_path, EXPORTABLE, model="jsc-three-linear-layers")))
    assert [t.state.name for t in trials(session)] == ["COMPLETE"] * len(WEIGHT_WIDTHS)


def test_constraint_prunes_exactly_the_candidates_above_it(tmp_path: Path) -> None:
    """hls4ml-jet, brute force over weight widths 4, 6, 8 (eval mode): a first search measures each width's
    fpga_luts (strictly increasing with the width); a second with ``fpga_luts.max`` halfway between the
    cheapest and the most expensive prunes exactly the widths above it, with the constraint's reason and the
    metric recorded, and completes the others. Both runs' manifests name the package and version that
    produced the metric values (alkaid's, latency in ns)."""
    first = run_search(config(fpga_search(tmp_path / "a", EXPORTABLE, model="hls4ml-jet", metrics=FPGA_OBJECTIVE)))
    assert first.run_dir is not None
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    assert manifest["firmware_metrics"] == {"package": "alkaid", "version": version("alkaid"), "latency_unit": "ns"}
    luts = {t.params["linear/weight_width"]: TrialRecord.of(t).metrics["fpga_luts"] for t in trials(first)}
    assert sorted(luts) == WEIGHT_WIDTHS
    assert luts[4] < luts[6] < luts[8]
    limit = (luts[4] + luts[8]) / 2
    data = fpga_search(tmp_path / "b", EXPORTABLE, model="hls4ml-jet")
    data["search"]["constraints"] = {"fpga_luts": {"max": limit}}
    second = run_search(config(data))
    for trial in trials(second):
        width = trial.params["linear/weight_width"]
        if luts[width] > limit:
            assert trial.state.name == "PRUNED"
            assert "fpga_luts" in trial.user_attrs["pruned"] and f"{limit:g}" in trial.user_attrs["pruned"]
            assert TrialRecord.of(trial).metrics["fpga_luts"] == luts[width]
        else:
            assert trial.state.name == "COMPLETE"
    assert {t.state.name for t in trials(second)} == {"PRUNED", "COMPLETE"}


def test_a_float_candidate_is_pruned_as_not_exportable(tmp_path: Path) -> None:
    """The first Linear kept float in one configuration: with fpga_luts asked for, that candidate is pruned
    with the reason naming the layer; the integer one completes."""
    seed = {
        "default": {"config": {"name": ["integer"], "data_in_width": [8], "weight_width": [6], "bias_width": [8]}},
        "seq_blocks_2": {
            "config": {"name": [None, "integer"], "data_in_width": [8], "weight_width": [6], "bias_width": [8]}
        },
    }
    data = fpga_search(tmp_path, seed, model="jsc-three-linear-layers", metrics=FPGA_OBJECTIVE)
    data["search"]["search_space"]["setup"]["by"] = "name"
    session = run_search(config(data))
    states = {t.state.name: t for t in trials(session)}
    assert set(states) == {"PRUNED", "COMPLETE"}
    reason = states["PRUNED"].user_attrs["pruned"]
    assert reason.startswith(NOT_EXPORTABLE) and "seq_blocks_2" in reason


def test_retrained_candidates_record_the_firmware_of_their_trained_weights(tmp_path: Path) -> None:
    """With retraining (1 epoch), the recorded fpga_luts is alkaid's estimate of the retrained weights: the
    best trial's equals a fresh estimate of the run's best.pt."""
    from netcarve.analysis.fpga import fpga_costs
    from netcarve.data.jsc_schema import jsc_info
    from netcarve.train.checkpoint import load_graph

    seed = {"default": {"config": {"name": ["integer"], "data_in_width": [8], "weight_width": [6], "bias_width": [8]}}}
    data = search_dict(tmp_path, space="graph/quantize/mixed_precision_ptq", seed=seed, metrics=FPGA_OBJECTIVE)
    data["search"]["search_space"]["setup"]["by"] = "type"
    session = run_search(config(data))
    (trial,) = trials(session, "COMPLETE")
    assert session.run_dir is not None
    best = load_graph(session.run_dir / "best.pt", "jsc-three-linear-layers", jsc_info("synthetic-jsc"))
    assert TrialRecord.of(trial).metrics["fpga_luts"] == fpga_costs(best, per_layer=False).total_luts


@pytest.mark.parametrize(
    ("recorded", "named"),
    [({"package": "alkaid", "version": "0.7.9", "latency_unit": "ns"}, "alkaid 0.7.9"), (None, "da4ml")],
)
def test_a_study_costed_by_another_estimator_is_not_resumed(
    tmp_path: Path, recorded: dict[str, str] | None, named: str
) -> None:
    """A study records the package that computes its fpga metrics (alkaid and its version); resuming it
    where another version computes them, or a study from before the record (its metrics were da4ml's, in
    adder delays), is refused with a message naming both, and no trial is added."""
    from netcarve.errors import SearchError
    from netcarve.search.resume import resume_search
    from netcarve.search.session import ESTIMATOR_ATTR

    data = fpga_search(tmp_path, EXPORTABLE, model="jsc-three-linear-layers", metrics=FPGA_OBJECTIVE)
    session = run_search(config(data))
    assert session.run_dir is not None
    assert session.study.user_attrs[ESTIMATOR_ATTR]["version"] == version("alkaid")
    done = len(session.study.get_trials())
    session.study.set_user_attr(ESTIMATOR_ATTR, recorded)  # as an older netcarve left it (None: no record)
    with pytest.raises(SearchError, match=rf"computed by {named}.*alkaid {version('alkaid')}.*start a new search"):
        resume_search(session.run_dir, None, done + 2, None)
    assert len(session.study.get_trials()) == done


def test_a_cached_search_records_the_uncached_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hls4ml-jet over weight widths 4, 6, 8 (eval mode, fpga_luts an objective), twice in one process: the
    first with an empty cache traces each candidate's program once (3 traces), the second finds every
    program in the cache (no trace) and records exactly the same fpga_luts and fpga_latency per width."""
    import netcarve.analysis.fpga as fpga
    import netcarve.export.alkaid as alkaid_backend

    traced: list[Any] = []
    real = alkaid_backend.trace_program

    def counted(program: Any, *args: Any, **kwargs: Any) -> Any:
        traced.append(program)
        return real(program, *args, **kwargs)

    monkeypatch.setattr(alkaid_backend, "trace_program", counted)
    fpga.clear_cache()
    recorded = []
    for run in ("uncached", "cached"):
        data = fpga_search(tmp_path / run, EXPORTABLE, model="hls4ml-jet", metrics=FPGA_OBJECTIVE)
        session = run_search(config(data))
        recorded.append({
            t.params["linear/weight_width"]: {k: TrialRecord.of(t).metrics[k] for k in ("fpga_luts", "fpga_latency")}
            for t in trials(session)
        })  # fmt: skip
        assert len(traced) == len(WEIGHT_WIDTHS)  # all in the first run, none in the second
    assert sorted(recorded[0]) == WEIGHT_WIDTHS
    assert recorded[0] == recorded[1]
