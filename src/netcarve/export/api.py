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
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netcarve.errors import ExportError, NetcarveError
from netcarve.export.backends import BACKENDS, Backend, ExportOptions, require_package
from netcarve.export.program import Program, build_program, float_layers, netcarve_forward
from netcarve.ir.graph import Graph
from netcarve.provenance import dataset_file

log = logging.getLogger(__name__)

#: the modules that register the built-in backends (imported on first use; one missing from this build is
#: skipped)
BACKEND_MODULES = ("netcarve.export.da4ml", "netcarve.export.hls4ml")
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


def _prepare_output(output: Path, source: Path, force: bool) -> None:
    """Refuse an existing output dir; with ``force`` remove it (only it), never one holding the source."""
    if not output.exists():
        return
    if not force:
        raise ExportError(f"output {str(output)!r} already exists: choose another --output or pass --force")
    if not output.is_dir():
        raise ExportError(f"output {str(output)!r} is a file, not a directory: nothing was removed")
    out, src = output.resolve(), source.resolve()
    if out == src or out in src.parents or out == Path.cwd().resolve() or out in Path.cwd().resolve().parents:
        raise ExportError(f"--force would remove {str(output)!r}, which holds the source or this directory")
    shutil.rmtree(output)


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
    src, out = Path(source), Path(output)
    if not src.exists():
        raise ExportError(f"source {str(src)!r} does not exist (a checkpoint or a search run dir)")
    if out.exists() and not force:
        raise ExportError(f"output {str(out)!r} already exists: choose another --output or pass --force")
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
    spec = dataset or run_dataset or (graph.spec.dataset["name"] if graph.spec is not None else None)
    if spec is None:
        raise ExportError("the source records no dataset: pass --dataset")
    missing = dataset_file(str(spec)) if dataset is None else None
    if missing is not None and not Path(missing).exists():
        raise ExportError(f"the source's dataset file {missing!r} does not exist: if it was moved, pass --dataset")
    x = _dataset_split(str(spec), split)
    if x.shape[1] != program.in_features:
        raise ExportError(f"dataset {spec!r} has {x.shape[1]} features, the model takes {program.in_features}")
    _prepare_output(out, src, force)
    out.mkdir(parents=True)
    try:
        result = backend.write(program, out, options)
        got = np.asarray(result.predict(program.port_inputs(x)), dtype=np.float64)
    except NetcarveError:
        raise
    except Exception as exc:
        raise ExportError(f"{backend.name} failed: {type(exc).__name__}: {exc}") from exc
    diff, agreement = _compare(got, netcarve_forward(program.graph, x))
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
        "source": str(src),
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
        "folded": folded,
        "figures": result.figures,
        "port": {
            "format": program.port.describe(),
            "kif": list(program.port.kif),
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
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
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
    return outcome
