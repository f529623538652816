"""Read a config: TOML files, ``--set key=value`` assignments ("NA" is read as null), validation with errors
that name the key as the user wrote it. Building a run's config from all its sources, the dataset's training
defaults included, is :func:`netcarve.configure.build_config` (above ``data/``, whose defaults it reads)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from netcarve.config.pass_registry import transform_config_model
from netcarve.config.run import RunConfig
from netcarve.errors import ConfigError
from netcarve.paths import existing_file
from netcarve.registry import close_matches


def na_to_none(value: Any) -> Any:
    """Replace the string "NA" by None, recursively (MASE's null)."""
    if isinstance(value, str) and value == "NA":
        return None
    if isinstance(value, dict):
        return {k: na_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [na_to_none(v) for v in value]
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict (with "NA" → None); a clear ConfigError otherwise."""
    p = existing_file(path, "config file", ConfigError)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not a text (TOML) file") from exc
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror or exc}") from exc
    return na_to_none(data)


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as a TOML value, else as a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), na_to_none(value)


def set_dotted(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {'.'.join(path)!r}: {part!r} is not a table")
        node = child
    node[path[-1]] = value


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class _Table:
    """A TOML table with free keys (a dict field): each key holds ``value`` (a config model, or None)."""

    value: Any
    #: the pass table whose layer entries these are (written directly in it, e.g. ``passes.width.fc1``)
    entries_of: type[BaseModel] | None = None


#: the walker's state inside ``[passes]``: each key is a pass table
_PASSES = "passes"


def _child(annotation: Any) -> Any:
    """What a field holds: a config model, a :class:`_Table` of them, or None (a plain value)."""
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        if get_origin(arg) is dict:
            args = get_args(arg)
            return _Table(_child(args[1]) if len(args) == 2 else None)
        if get_origin(arg) is list:
            return _child(get_args(arg)[0]) if get_args(arg) else None
    return None


@dataclass(frozen=True)
class UserKey:
    """Where a validation error is, as the user wrote it in TOML."""

    dotted: str
    #: the config model of the table holding the last key (None when unknown): its fields are the valid keys
    table: type[BaseModel] | None
    #: the pass table (e.g. :class:`WidthPassConfig`) when the last key is one of its layer entries
    entry_of: type[BaseModel] | None = None


def user_key(model: type[BaseModel], loc: tuple[Any, ...], prefix: str = "") -> UserKey:
    """The dotted TOML key of a pydantic ``loc`` within ``model`` (whose own key is ``prefix``).

    A pass table's layer entries are written directly in it (``passes.quantize.linear``, never the model's
    internal ``entries``); list positions are written ``[i]``.
    """
    parts: list[str] = [prefix] if prefix else []
    current: Any = model
    table: type[BaseModel] | None = None
    entry_of: type[BaseModel] | None = None
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
            continue
        key, entry_of, table = str(part), None, None
        if isinstance(current, type) and issubclass(current, BaseModel):
            table = current
            field = current.model_fields.get(key)
            if field is not None and key == getattr(current, "flattened_field", None):
                child = _child(field.annotation)
                current = _Table(child.value if isinstance(child, _Table) else None, entries_of=current)
                continue
            if current is RunConfig and key == "passes":
                current = _PASSES
            else:
                current = _child(field.annotation) if field is not None else None
        elif current == _PASSES:
            current = transform_config_model(key)
        elif isinstance(current, _Table):
            entry_of, current = current.entries_of, current.value
        else:
            current = None
        parts.append(key)
    return UserKey(".".join(parts), table, entry_of)


def toml_keys(model: type[BaseModel]) -> list[str]:
    """The keys a config table takes, as written in TOML (a field's alias where it has one)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def _close(word: str, choices: Iterable[str]) -> str | None:
    close = close_matches(word, choices)
    return close[0] if close else None


def describe_validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    source: str,
    prefix: str = "",
    options: Mapping[str, str] | None = None,
) -> str:
    """One line naming the dotted key of each problem (up to three) as the user wrote it in TOML, with a
    suggestion for a mistyped key. ``prefix`` is the dotted key of the table ``model`` validates.

    ``options`` maps a dotted key to the command-line option that gave its value (``--n-trials``): a bad value
    there is blamed on the option, not on ``source``."""
    messages, from_source = [], False
    for err in exc.errors()[:3]:
        key = user_key(model, tuple(err["loc"]), prefix)
        dotted = key.dotted or "<top level>"
        last = dotted.rsplit(".", 1)[-1]
        got = err.get("input")
        option = (options or {}).get(dotted)
        if option is not None and err["type"] != "extra_forbidden":
            msg = str(err["msg"]).removeprefix("Value error, ")
            messages.append(f"invalid value for {option}: {msg} (got {got!r})")
            continue
        from_source = True
        if err["type"] == "extra_forbidden":
            close = _close(last, toml_keys(key.table) if key.table is not None else ())
            hint = f"; did you mean {close!r}?" if close else ""
            messages.append(f"unknown key {dotted!r}{hint}")
        elif key.entry_of is not None and err["type"] == "model_type" and not isinstance(got, dict):
            # a scalar where a layer entry was expected: most likely a mistyped fixed key (``inti = …``)
            fixed = [f for f in key.entry_of.model_fields if f != getattr(key.entry_of, "flattened_field", None)]
            close = _close(last, fixed)
            if close:
                messages.append(f"unknown key {dotted!r}; did you mean {close!r}?")
            else:
                messages.append(
                    f"{dotted!r} must be a layer entry (a table holding a config table) or one of "
                    f"{', '.join(fixed)} (got {got!r})"
                )
        else:
            msg = (
                "must be a table" if err["type"] in ("model_type", "model_attributes_type", "dict_type") else err["msg"]
            )
            msg = msg.removeprefix("Value error, ")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            messages.append(f"invalid value for {dotted!r}: {msg}{got_text}")
    return (f"{source}: " if source and from_source else "") + "; ".join(messages)


def dotted_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of the leaves of a nested mapping (``{"a": {"b": 1}}`` → ``["a.b"]``)."""
    out = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        out += dotted_keys(value, f"{dotted}.") if isinstance(value, Mapping) else [dotted]
    return out


#: the command-line option of a config key where it is not ``--`` + the last key with dashes
OPTION_NAMES = {"model": "MODEL", "dataset": "DATASET", "load_name": "--load"}


def option_name(dotted: str) -> str:
    """The command-line option that sets ``dotted`` (``search.strategy.setup.n_trials`` → ``--n-trials``)."""
    last = dotted.rsplit(".", 1)[-1]
    return OPTION_NAMES.get(last, "--" + last.replace("_", "-"))


def validate_config(
    data: Mapping[str, Any], source: str = "config", options: Mapping[str, str] | None = None
) -> RunConfig:
    """``data`` as a RunConfig; a ConfigError blaming ``source``, or the option of ``options`` (dotted key →
    command-line option) that gave the bad value."""
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, RunConfig, source, options=options)) from exc
