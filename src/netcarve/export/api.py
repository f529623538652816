"""``netcarve export`` as a library call: a quantized model to firmware files, checked bit for bit.

The source is a transformed checkpoint or a search run dir (its best trial, or ``trial``). The model's
fixed-point :class:`~netcarve.export.program.Program` is handed to the backend, which writes the firmware
into ``output``; then the check runs, always: the dataset's ``split`` goes through the exported design (on
the port values) and through netcarve's own fake-quantized forward pass, and the largest absolute
difference and the share of equal argmaxes are reported and written to ``output/export.json``. For a fully
fixed-point model they must be 0 and 100 %: any difference raises :class:`NotBitExactError` (the files are
kept for inspection).

A model with BatchNorms inside the network is exported folded (see :mod:`netcarve.export.program`): the
check compares the firmware with the folded, requantized model (bit-exact), and the agreement of the
firmware with the model as given (unfolded) is measured on the same rows and reported next to it
(:meth:`ExportOutcome.fold_line`, ``export.json``'s ``folded``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from netcarve.errors import ExportError, NetcarveError
from netcarve.export.backends import BACKENDS, Backend, ExportOptions, require_package
from netcarve.export.program import Program, build_program, float_layers, netcarve_forward
from netcarve.ir.graph import Graph
from netcarve.paths import make_dirs, output_dir
from netcarve.provenance import FileRef, check_unchanged, dataset_file

log = logging.getLogger(__name__)

#: the modules that register the built-in backends (imported on first use; one missing from this build is
#: skipped)
BACKEND_MODULES = ("netcarve.export.alkaid", "netcarve.export.hls4ml")
SUMMARY_FILE = "export.json"
PORT_NOTE = "inputs are quantized by netcarve's first input quantizer"
FOLD_NOTE = (
    "BatchNorms folded into their Linears or Convs, weights and biases requantized to those layers' formats: the "
    "firmware equals the folded model; vs_unfolded compares it with the model as given"
)


@dataclass(frozen=True)
class ExportOutcome:
    backend: str
    source: str
    trial: int | None
    directory: Path
    program: Program
    split: str
    rows: int
    #: max |exported − netcarve| over the split's outputs
    max_abs_diff: float
    #: share of rows whose argmax agrees (0 … 1)
    argmax_agreement: float
    figures: dict[str, Any]
    files: dict[str, str]
    summary: dict[str, Any]
    #: with BatchNorms folded: max |exported − unfolded netcarve| and the argmax agreement with it
    unfolded_max_abs_diff: float | None = None
    unfolded_argmax_agreement: float | None = None

    @property
    def exact(self) -> bool:
        return self.max_abs_diff == 0.0

    def check_line(self) -> str:
        return (
            f"check on {self.split} ({self.rows} rows): max |{self.backend} − netcarve| = {self.max_abs_diff:g}, "
            f"argmax agreement {100 * self.argmax_agreement:.2f} %"
        )

    def fold_line(self) -> str | None:
        """What folding did, and how the firmware compares with the unfolded model; None if nothing folded."""
        folded = self.program.folded
        if not folded or self.unfolded_argmax_agreement is None:
            return None
        return (
            f"folded BatchNorm {', '.join(f.describe() for f in folded)} (weights requantized to their formats); "
            f"{self.backend} vs unfolded model: max |diff| = {self.unfolded_max_abs_diff:g}, "
            f"argmax agreement {100 * self.unfolded_argmax_agreement:.2f} %"
        )


class NotBitExactError(ExportError):
    """The firmware of a fully fixed-point model differs from netcarve's forward pass (exit code 1: the
    export ran, its check failed). ``outcome`` holds the check; the written files are kept."""

    exit_code = 1

    def __init__(self, message: str, outcome: ExportOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


def _compare(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """max |got − ref| and the share of rows whose argmax agrees."""
    diff = float(np.abs(got - ref).max()) if ref.size else 0.0
    agreement = float(np.mean(got.argmax(axis=1) == ref.argmax(axis=1))) if len(ref) else 1.0
    return diff, agreement


def load_backends() -> None:
    for name in BACKEND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a backend that is not part of this build
            if exc.name != name:
                raise


def backend_named(name: str) -> Backend:
    load_backends()
    return BACKENDS.get(name)


#: reads a search run dir's model: (run dir, trial number or None for its best) → (the graph, the dataset the
#: run used); ``netcarve export`` passes :func:`netcarve.search.lookup.run_model` (export does not import the
#: search, which sits above it)
RunReader = Callable[[Path, int | None], tuple[Graph, str | None]]


def load_source(
    source: Path, trial: int | None = None, run_reader: RunReader | None = None, model: str | None = None
) -> tuple[Graph, str | None]:
    """The model to export and the dataset spec it was made with (None: take it from the checkpoint).
    ``model``: a checkpoint's model file, moved since (``--model``, checked against its sha256; a run dir's
    ``run_reader`` takes it bound)."""
    if source.is_dir():
        if not (source / "manifest.json").is_file():
            raise ExportError(f"{str(source)!r} is neither a checkpoint nor a search run dir (no manifest.json)")
        if run_reader is None:
            raise ExportError(
                f"{str(source)!r} is a search run dir: pass run_reader=netcarve.search.lookup.run_model to read it"
            )
        return run_reader(source, trial)
    if trial is not None:
        raise ExportError(f"--trial picks a trial of a search run dir; {str(source)!r} is a checkpoint")
    from netcarve.train.checkpoint import load_saved_graph

    return load_saved_graph(source, model), None


#: the key of export.json that lists every file the export wrote (what ``--force`` may remove)
WRITTEN_KEY = "written"


def _entries(directory: Path) -> list[str]:
    """Every file under ``directory`` (and every symbolic link, never followed), as sorted relative paths."""
    out = []

    def unreadable(exc: OSError) -> None:
        raise exc

    for root, dirs, files in os.walk(directory, onerror=unreadable):
        base = Path(root)
        out += [(base / name).relative_to(directory).as_posix() for name in files]
        out += [(base / name).relative_to(directory).as_posix() for name in dirs if (base / name).is_symlink()]
    return sorted(out)


def _check_replaceable(output: Path, source: Path) -> None:
    """What ``--force`` may remove: a directory (not a link to one) holding a previous export and nothing
    else, i.e. every file in it listed in its export.json; never the source's folders nor this directory's."""
    shown = repr(str(output))
    if output.is_symlink():
        raise ExportError(
            f"--output {shown} is a symbolic link (to {os.readlink(output)!r}): --force replaces only a directory "
            "netcarve exported into, never through a link; give that directory itself (nothing was removed)"
        )
    if not output.is_dir():
        raise ExportError(f"output {shown} is a file, not a directory: nothing was removed")
    out, src, cwd = output.resolve(), source.resolve(), Path.cwd().resolve()
    if out in (src, cwd) or out in src.parents or out in cwd.parents:
        raise ExportError(f"--force would remove {shown}, which holds the source or this directory")
    try:
        entries = _entries(output)
    except OSError as exc:
        raise ExportError(f"--force cannot list {shown}: {exc.strerror or exc}; nothing was removed") from exc
    if not entries:
        return
    summary = output / SUMMARY_FILE
    try:
        data = json.loads(summary.read_text()) if summary.is_file() and not summary.is_symlink() else None
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or "backend" not in data:
        raise ExportError(
            f"--force replaces only a previous export (a directory holding netcarve's {SUMMARY_FILE}); {shown} is "
            "not one: nothing was removed (choose another --output)"
        )
    written = data.get(WRITTEN_KEY)
    if not isinstance(written, list):
        raise ExportError(
            f"{shown} is an export whose {SUMMARY_FILE} does not list the files it wrote (made by an older "
            "netcarve): --force cannot tell them from yours, nothing was removed; remove it yourself or choose "
            "another --output"
        )
    foreign = [e for e in entries if e not in {*map(str, written), SUMMARY_FILE}]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise ExportError(
            f"--force replaces only what netcarve wrote: {shown} also holds {foreign[0]!r}{more}, which it did not "
            "write; nothing was removed (move it out or choose another --output)"
        )


def _prepare_output(output: Path, source: Path, force: bool) -> None:
    """Refuse an existing output dir; with ``force`` remove it if it holds a previous export and nothing else."""
    if not output.exists() and not output.is_symlink():
        return
    if not force:
        raise ExportError(f"output {str(output)!r} already exists: choose another --output or pass --force")
    _check_replaceable(output, source)
    try:
        shutil.rmtree(output)
    except OSError as exc:
        raise ExportError(f"--force could not remove all of {str(output)!r}: {exc.strerror or exc}") from exc


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    """``out/export.json`` with the list of every file the export wrote (what a later ``--force`` may remove)."""
    written = [e for e in _entries(out) if e != SUMMARY_FILE]
    (out / SUMMARY_FILE).write_text(json.dumps({**summary, WRITTEN_KEY: written}, indent=2) + "\n")


def _write_failed_summary(out: Path, summary: dict[str, Any]) -> None:
    """The export.json of a failed export (what it wrote, so that --force may replace it); a failure to write
    it is logged, never raised over the export's own error."""
    try:
        _write_summary(out, summary)
    except OSError as exc:
        log.warning("could not write %s: %s", out / SUMMARY_FILE, exc)


def _run_dataset_of_checkpoint(src: Path) -> str | None:
    """The dataset file recorded by the run dir a checkpoint sits in (``RUN/best.pt``, ``RUN/trials/trial-N.pt``),
    which must be unchanged: a checkpoint records its dataset's shape and name (``jsc`` for a file read as JSC),
    not the file. None for a checkpoint outside a run dir or a run of a named dataset."""
    if not src.is_file():
        return None
    for run_dir in (src.parent, src.parent.parent):
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        files = manifest.get("files") if isinstance(manifest, dict) else None
        ref = FileRef.from_dict(files.get("dataset")) if isinstance(files, dict) else None
        if ref is not None and Path(ref.path).is_file():
            check_unchanged(ref, "dataset", "--dataset", f"the run {str(run_dir)!r}")
        return ref.spec if ref is not None else None
    return None


def _dataset_split(spec: str, split: str) -> np.ndarray:
    from netcarve.data import load_dataset

    splits = load_dataset(spec)
    return splits.split(split).x.detach().cpu().double().numpy()


def export(
    source: str | Path,
    to: str,
    output: str | Path,
    *,
    trial: int | None = None,
    force: bool = False,
    options: ExportOptions | None = None,
    split: str = "test",
    dataset: str | None = None,
    run_reader: RunReader | None = None,
    model: str | None = None,
) -> ExportOutcome:
    """Export ``source`` with backend ``to`` into the directory ``output``, then check it on ``split`` of
    the dataset (``dataset`` overrides the one the source was made with). A search run dir is read by
    ``run_reader`` (e.g. ``functools.partial(netcarve.search.lookup.run_model, storage_url=…, model=…,
    dataset=…)``); ``model``: a checkpoint's model file, moved since (checked against the sha256 it records)."""
    options = options or ExportOptions()
    backend = backend_named(to)
    require_package(backend)
    if backend.alias_of is not None:  # a deprecated name: say so, then run and record the backend it names
        for note in backend.notes:
            log.warning("%s", note)
        backend = replace(backend_named(backend.alias_of), notes=backend.notes)
    src, out = Path(source), Path(output)
    if not src.exists():
        raise ExportError(f"source {str(src)!r} does not exist (a checkpoint or a search run dir)")
    exists = out.exists() or out.is_symlink()
    if not exists:
        output_dir(out, "--output", ExportError)  # not through a file (afile/sub)
    if exists and not force:
        raise ExportError(f"output {str(out)!r} already exists: choose another --output or pass --force")
    if exists:
        _check_replaceable(out, src)  # before the model is loaded; checked again just before it is removed
    if backend.check_options is not None:
        backend.check_options(options)
    elif options.flavor is not None:
        raise ExportError(f"--flavor chooses the code alkaid generates (verilog, vhdl, vitis); {backend.name} has none")
    if options.simulate and "simulate" not in backend.extra:
        raise ExportError(
            f"--simulate runs the design alkaid generated; {backend.name}'s check already runs its own C simulation"
        )
    if options.part is not None:
        check_part = backend.extra.get("check_part")
        if check_part is None:
            raise ExportError(
                f"--part is for backends that target an FPGA part (hls4ml); {backend.name}'s firmware does not "
                "depend on one"
            )
        check_part(options.part)
    source_text = str(src.resolve())  # the run dir or checkpoint itself, not a `latest` link to it
    graph, run_dataset = load_source(src, trial, run_reader, model)
    graph.module.cpu()
    # a backend that allows float layers (hls4ml) gives them --default-precision (see export/hls4ml.py)
    parse = backend.extra.get("parse_precision") if backend.allows_float and options.default_precision else None
    if options.default_precision is not None and parse is None:
        raise ExportError(
            f"--default-precision is for backends that allow float layers (hls4ml); {backend.name} exports "
            "fixed-point quantized models only"
        )
    float_precision = parse(options.default_precision) if parse else None
    program = build_program(graph, float_precision=float_precision)
    if backend.check is not None:
        backend.check(program)
    floats = float_layers(program.graph) if float_precision is not None else []
    spec = dataset or run_dataset or _run_dataset_of_checkpoint(src)
    recorded_name = graph.spec.dataset["name"] if graph.spec is not None else None
    spec = spec or recorded_name
    if spec is None:
        raise ExportError("the source records no dataset: pass --dataset")
    missing = dataset_file(str(spec)) if dataset is None else None
    if missing is not None and not Path(missing).exists():
        raise ExportError(f"the source's dataset file {missing!r} does not exist: if it was moved, pass --dataset")
    try:
        x = _dataset_split(str(spec), split)
    except NetcarveError as exc:
        if dataset is not None or run_dataset is not None or spec != recorded_name:
            raise
        raise ExportError(
            f"{exc} For the export's check, pass --dataset: {str(src)!r} records its dataset only as {spec!r} "
            "(a checkpoint does not record the file it was read from)"
        ) from exc
    if x.shape[1] != program.in_features:
        raise ExportError(f"dataset {spec!r} has {x.shape[1]} features, the model takes {program.in_features}")
    _prepare_output(out, src, force)
    make_dirs(out, "--output", ExportError)
    simulated: np.ndarray | None = None
    try:
        result = backend.write(program, out, options)
        port = program.port_inputs(x)
        got = np.asarray(result.predict(port), dtype=np.float64)
        if options.simulate:  # the generated code itself, built and run on the same rows
            simulated = np.asarray(backend.extra["simulate"](result, port), dtype=np.float64)
    except NetcarveError as exc:
        _write_failed_summary(out, {"backend": backend.name, "source": source_text, "failed": str(exc)})
        raise
    except Exception as exc:
        error = ExportError(f"{backend.name} failed: {type(exc).__name__}: {exc}")
        _write_failed_summary(out, {"backend": backend.name, "source": source_text, "failed": str(error)})
        raise error from exc
    except KeyboardInterrupt:  # e.g. during a long --simulate build: what was written stays replaceable
        _write_failed_summary(out, {"backend": backend.name, "source": source_text, "failed": "interrupted"})
        raise
    reference = netcarve_forward(program.graph, x)
    diff, agreement = _compare(got, reference)
    simulation: dict[str, Any] | None = None
    if simulated is not None:
        sim_diff, sim_agreement = _compare(simulated, reference)
        simulation = {
            "flavor": result.figures.get("flavor"),
            "simulator": result.figures.get("simulator"),
            "rows": len(x),
            "max_abs_diff": sim_diff,
            "argmax_agreement": sim_agreement,
            "bit_exact": sim_diff == 0.0,
        }
    folded: dict[str, Any] | None = None
    unfolded_diff = unfolded_agreement = None
    if program.unfolded is not None:
        unfolded_diff, unfolded_agreement = _compare(got, netcarve_forward(program.unfolded, x))
        folded = {
            "batch_norms": [{"batch_norm": f.batch_norm, "into": f.into} for f in program.folded],
            "note": FOLD_NOTE,
            "vs_unfolded": {"max_abs_diff": unfolded_diff, "argmax_agreement": unfolded_agreement},
        }
    summary = {
        "backend": backend.name,
        "source": source_text,
        "source_given": str(src),
        **({"backend_given": to} if to != backend.name else {}),
        "trial": trial,
        "check": {
            "split": split,
            "dataset": str(spec),
            "rows": len(x),
            "max_abs_diff": diff,
            "argmax_agreement": agreement,
            "bit_exact": diff == 0.0,
            "compared_with": "netcarve's fake-quantized forward pass in float64"
            + (" (of the model with its BatchNorms folded)" if folded else ""),
        },
        "simulation": simulation,
        "folded": folded,
        "figures": result.figures,
        "notes": [*backend.notes, *result.notes],
        "port": {
            "format": program.port.describe(),
            "kif": [np.asarray(a).tolist() for a in program.port.kif],  # per-element formats: one per feature
            "in_features": program.in_features,
            "out_features": program.out_features,
            "note": PORT_NOTE,
            "preprocess": program.preprocess,
        },
        "precisions": program.precisions,
        # layers given --default-precision: the check then differs from netcarve's float forward by its rounding
        "float_layers": floats,
        "files": result.files,
    }
    _write_summary(out, summary)
    outcome = ExportOutcome(
        backend.name, str(src), trial, out, program, split, len(x), diff, agreement, result.figures,
        {**result.files, "summary": SUMMARY_FILE}, summary, unfolded_diff, unfolded_agreement,
    )  # fmt: skip
    log.debug("%s", outcome.check_line())
    if not floats and not outcome.exact:
        raise NotBitExactError(
            f"the {backend.name} firmware is not bit-exact: max |{backend.name} − netcarve| = {diff:g} on {split} "
            f"({len(x)} rows, argmax agreement {100 * agreement:.2f} %), for a fully fixed-point model that must "
            f"match exactly; its files are kept in {str(out)!r} for inspection ({SUMMARY_FILE} has the check)",
            outcome,
        )
    if simulation is not None and not simulation["bit_exact"]:
        raise NotBitExactError(
            f"the simulated {simulation['flavor']} design differs from netcarve: max |simulation − "
            f"netcarve| = {simulation['max_abs_diff']:g} on {split} ({len(x)} rows), though alkaid's interpreter "
            f"agrees; its files are kept in {str(out)!r} ({SUMMARY_FILE} "
            "has both checks)",
            outcome,
        )
    return outcome
