"""Checkpoints: the base model spec, the applied transforms (plain dicts) and the state dict.

Never pickled code: files are written with ``torch.save`` of tensors and plain containers and read with
``torch.load(weights_only=True)``, so a file that would execute code on load is refused. A ``format`` or
``version`` this netcarve does not read, and a stored spec whose transform list is not ``[pass name, config]``
pairs of known transform passes with valid configs, are CheckpointErrors naming the file and the entry.

**Per-element formats** (:mod:`netcarve.transforms.quantize.formats`) are not a transform with a config:
version 2 stores them under ``formats`` (node → operand → ``width``/``frac`` int64 tensors), and loading
sets them again after the transforms are replayed, so the model reloads bit for bit. A checkpoint without
them is written as version 1, exactly as before (older netcarves read it); a version 2 file is refused by
those, which would otherwise drop the formats silently.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from netcarve.data.base import DatasetInfo
from netcarve.errors import CheckpointError, NetcarveError
from netcarve.ir.graph import Graph, ModelSpec
from netcarve.ir.graph_state import ELEMENT_FORMATS, restored_state, saved_state
from netcarve.paths import existing_file, write_atomically
from netcarve.provenance import (
    FileRef,
    check_unchanged,
    describe_model,
    model_file,
    model_sha256,
    relocated_model,
    resolved_model,
    same_model,
)

log = logging.getLogger(__name__)
FORMAT = "netcarve-checkpoint"
VERSION = 1
#: the version written when the graph has per-element formats
FORMATS_VERSION = 2
#: the versions of FORMAT this netcarve reads
SUPPORTED_VERSIONS = (1, 2)
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Checkpoint:
    spec: ModelSpec | None
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: str
    #: what the file is in MASE's ``load_type`` terms: "pt" (a state dict, netcarve's format included) or
    #: "pl" (a Lightning checkpoint)
    load_type: str = "pt"
    #: per-element formats (node → operand → width/frac tensors; empty: none)
    formats: dict[str, Any] = field(default_factory=dict)


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    data = {
        "model": spec.model,
        "dataset": dict(spec.dataset),
        "transforms": [[n, c] for n, c in spec.transforms],
    }
    if spec.model_sha256 is not None:
        data["model_sha256"] = spec.model_sha256
    return data


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    transforms = tuple((str(n), dict(c)) for n, c in data.get("transforms", []))
    sha = data.get("model_sha256")
    return ModelSpec(str(data["model"]), dict(data["dataset"]), transforms, str(sha) if sha is not None else None)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_netcarve_format(data: dict[str, Any], path: str) -> bool:
    """True for a checkpoint in a format and version this netcarve reads, False for a bare or Lightning state
    dict (no ``format`` entry); any other ``format`` or ``version`` is a CheckpointError."""
    fmt = data.get("format")
    if fmt is None or isinstance(fmt, torch.Tensor):
        return False
    supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    if fmt != FORMAT:
        raise CheckpointError(
            f"checkpoint {path!r} has format {_short(fmt)}, which this netcarve cannot read (supported: "
            f"{FORMAT!r} version {supported}, bare state dicts and Lightning checkpoints)"
        )
    version = data.get("version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            f"checkpoint {path!r} has {FORMAT!r} version {_short(version)}, which this netcarve cannot read "
            f"(supported: version {supported}); was it written by a newer netcarve?"
        )
    return True


def _checked_spec(data: Any, path: str) -> ModelSpec:
    """The stored spec, checked: a model name, the dataset's info and a list of [pass name, config] pairs,
    each a known transform pass with a config its model accepts."""
    from netcarve.ir.replay import check_transform

    where = f"checkpoint {path!r}"
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: its spec is {_short(data)}, not a table")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise CheckpointError(f"{where}: its spec.model is {_short(model)}, not a model name")
    sha = data.get("model_sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and all(c in HEX for c in sha)):
        raise CheckpointError(f"{where}: its spec.model_sha256 is {_short(sha)}, not a sha256 in hex")
    dataset = data.get("dataset")
    try:
        DatasetInfo.from_dict(dataset)  # type: ignore[arg-type]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: its spec.dataset {_short(dataset)} is malformed ({exc!r})") from exc
    transforms = data.get("transforms", [])
    if not isinstance(transforms, list | tuple):
        raise CheckpointError(
            f"{where}: its spec.transforms is {_short(transforms)}, not a list of [pass name, config] pairs"
        )
    for i, item in enumerate(transforms):
        entry = f"spec.transforms[{i}] = {_short(item)}"
        if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise CheckpointError(f"{where}: {entry} is not a [pass name, config] pair")
        if not isinstance(item[1], dict):
            raise CheckpointError(f"{where}: {entry}: the config of pass {item[0]!r} is not a table")
        try:
            check_transform(item[0], item[1])
        except NetcarveError as exc:
            raise CheckpointError(f"{where}: spec.transforms[{i}] (pass {item[0]!r}) is invalid: {exc}") from exc
    return spec_from_dict(data)


def _checked_formats(data: Any, path: str) -> dict[str, Any]:
    """The stored per-element formats: node → operand → {"width", "frac"} tensors."""
    ok = isinstance(data, dict) and all(
        isinstance(ops, dict)
        and all(
            isinstance(entry, dict) and all(isinstance(entry.get(k), torch.Tensor) for k in ("width", "frac"))
            for entry in ops.values()
        )
        for ops in data.values()
    )
    if not ok:
        raise CheckpointError(
            f"checkpoint {path!r}: its formats {_short(data)} are not node → operand → width/frac tensors"
        )
    return dict(data)


def save_checkpoint(
    path: str | Path, graph: Graph, meta: dict[str, Any] | None = None, *, overwrite: bool = False
) -> Path:
    """Write ``graph``'s weights and spec to ``path`` atomically; an existing file is kept unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise CheckpointError(f"checkpoint {str(p)!r} already exists; choose another path (nothing was overwritten)")
    if graph.spec is None:
        raise CheckpointError("cannot save a graph without a model spec (build it with netcarve.train.build_graph)")
    formats = saved_state(graph, ELEMENT_FORMATS)
    payload = {
        "format": FORMAT,
        "version": FORMATS_VERSION if formats else VERSION,
        "spec": spec_to_dict(graph.spec),
        "state_dict": {k: v.detach().cpu() for k, v in graph.module.state_dict().items()},
        "meta": meta or {},
    }
    if formats:
        payload["formats"] = formats
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(p, lambda tmp: torch.save(payload, tmp))


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True``: netcarve's format, a bare state dict or a Lightning ckpt."""
    p = existing_file(path, "checkpoint", CheckpointError)
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        unsafe = [line.strip() for line in text.splitlines() if "Unsupported global" in line or "GLOBAL" in line]
        if unsafe:
            raise CheckpointError(
                f"refused to load {str(p)!r}: loading it could execute code, and netcarve loads weights only "
                f"({unsafe[0][:120]})"
            ) from exc
        raise CheckpointError(f"checkpoint {str(p)!r} is corrupt or not a torch file") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(p)!r} is corrupt or not a torch file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {str(p)!r} holds a {type(data).__name__}, not a state dict")
    if _is_netcarve_format(data, str(p)):
        state, meta = data.get("state_dict"), data.get("meta", {})
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"checkpoint {str(p)!r} has no state dict of tensors")
        if not isinstance(meta, dict):
            raise CheckpointError(f"checkpoint {str(p)!r}: its meta is {_short(meta)}, not a table")
        formats = _checked_formats(data.get("formats", {}), str(p))
        return Checkpoint(_checked_spec(data.get("spec"), str(p)), state, dict(meta), str(p), formats=formats)
    lightning = "state_dict" in data  # Lightning keeps it under "state_dict" with a "model." prefix
    state = data["state_dict"] if lightning else data
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {str(p)!r} has no state dict of tensors")
    return Checkpoint(None, _strip_prefix(state, "model."), {}, str(p), "pl" if lightning else "pt")


def build_graph(model: str, info: DatasetInfo, transforms: tuple[tuple[str, dict[str, Any]], ...] = ()) -> Graph:
    """The base model as a Graph with its spec, with ``transforms`` re-applied in order."""
    from netcarve.models import create_model

    module = create_model(model, info)
    spec = ModelSpec(resolved_model(model), info.to_dict(), model_sha256=model_sha256(model))
    graph = Graph.from_module(module, (info.in_features,), spec)
    if transforms:
        from netcarve.ir.replay import apply_transforms

        graph = apply_transforms(graph, transforms)
    return graph


def load_graph(
    path: str | Path, model: str | None, info: DatasetInfo, load_type: str | None = None, *, relocated: bool = False
) -> Graph:
    """Rebuild the checkpoint's graph (base model + transforms) and load its weights.

    ``model`` must match the checkpoint's model when the checkpoint records one (``relocated``: ``model`` is
    the checkpoint's model file moved, already checked by :func:`netcarve.provenance.relocated_model`).
    ``load_type`` (MASE's "pt", "pl" or "mz") is what the user said the file is: a mismatch is warned about,
    and the file is read as what it is.
    """
    ckpt = load_checkpoint(path)
    if load_type is not None and load_type != ckpt.load_type:
        log.warning(
            "load_type = %r, but checkpoint %r is a %s: read as such",
            load_type,
            ckpt.path,
            "Lightning checkpoint ('pl')" if ckpt.load_type == "pl" else "PyTorch state dict ('pt')",
        )
    if ckpt.spec is not None:
        if model is not None and not relocated and not same_model(ckpt.spec.model, ckpt.spec.model_sha256, model):
            raise CheckpointError(
                f"checkpoint {ckpt.path!r} was made for model {describe_model(ckpt.spec.model, ckpt.spec.model_sha256)}"
                f", not {describe_model(model, model_sha256(model))}"
            )
        saved_info = DatasetInfo.from_dict(ckpt.spec.dataset)
        if (saved_info.in_features, saved_info.num_classes) != (info.in_features, info.num_classes):
            raise CheckpointError(
                f"checkpoint {ckpt.path!r} was made for {saved_info.in_features} features / "
                f"{saved_info.num_classes} classes ({saved_info.name}), the dataset has "
                f"{info.in_features} / {info.num_classes} ({info.name})"
            )
        name, transforms = model if model is not None else ckpt.spec.model, ckpt.spec.transforms
    else:
        if model is None:
            raise CheckpointError(f"checkpoint {ckpt.path!r} records no model: name the model")
        name, transforms = model, ()
    try:
        graph = build_graph(name, info, transforms)
    except NetcarveError as exc:
        raise CheckpointError(f"cannot rebuild the model of {ckpt.path!r}: {exc}") from exc
    try:
        graph.module.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"checkpoint {ckpt.path!r} does not fit model {name!r}: {detail[:300]}") from exc
    if ckpt.formats:
        try:
            graph = restored_state(graph, ELEMENT_FORMATS, ckpt.formats)
        except KeyError as exc:  # no module registered them: never drop them silently
            raise CheckpointError(f"checkpoint {ckpt.path!r} stores per-element formats no module can set") from exc
        except NetcarveError as exc:
            raise CheckpointError(f"checkpoint {ckpt.path!r}: its per-element formats do not fit: {exc}") from exc
    graph.module.eval()
    return graph


def stored_model_ref(spec: ModelSpec) -> FileRef | None:
    """The model file a checkpoint's spec records with its sha256 (None: no file, or no sha256 recorded)."""
    parts = model_file(spec.model)
    if parts is None or spec.model_sha256 is None:
        return None
    return FileRef(spec.model, parts[0], spec.model_sha256)


def load_saved_graph(path: str | Path, moved_model: str | None = None) -> Graph:
    """A netcarve checkpoint's graph on its own: model and dataset info come from its spec (a bare state dict
    or a Lightning checkpoint, which record neither, is a CheckpointError). ``moved_model`` (``--model``):
    the checkpoint's model file, moved since; it must have the sha256 the checkpoint records. Without it, the
    recorded file must still exist with that sha256."""
    ckpt = load_checkpoint(path)
    if ckpt.spec is None:
        raise CheckpointError(
            f"checkpoint {ckpt.path!r} records no model and dataset (not a netcarve checkpoint): "
            "save it with netcarve train or netcarve transform"
        )
    model = ckpt.spec.model
    if moved_model is not None:
        model = relocated_model(model, ckpt.spec.model_sha256, moved_model)
    elif (ref := stored_model_ref(ckpt.spec)) is not None:
        check_unchanged(ref, "model", "--model", f"checkpoint {ckpt.path!r}")
    return load_graph(path, model, DatasetInfo.from_dict(ckpt.spec.dataset), relocated=moved_model is not None)
