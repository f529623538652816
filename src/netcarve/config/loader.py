"""Load a config: defaults < TOML file < CLI flags / ``--set key=value``; "NA" is read as null."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from netcarve.config.run import RunConfig
from netcarve.errors import ConfigError


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
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not a text (TOML) file") from None
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


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    for arg in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def describe_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line naming the dotted key of the first problem, with a suggestion for a mistyped key."""
    messages = []
    for err in exc.errors()[:3]:
        loc = tuple(p for p in err["loc"] if not isinstance(p, int) or True)
        dotted = ".".join(str(p) for p in loc) or "<top level>"
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            messages.append(f"unknown key {dotted!r}{hint}")
        else:
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            messages.append(f"invalid value for {dotted!r}: {err['msg']}{got_text}")
    return f"{source}: " + "; ".join(messages)


def build_config(
    toml_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    assignments: Iterable[str] = (),
) -> RunConfig:
    """Defaults < TOML < CLI flags (``overrides``, None values ignored) < ``--set`` assignments."""
    data: dict[str, Any] = read_toml(toml_path) if toml_path is not None else {}
    source = str(toml_path) if toml_path is not None else "config"
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = merge(data, flags)
    for text in assignments:
        path, value = parse_assignment(text)
        set_dotted(data, path, value)
    return validate_config(data, source)


def validate_config(data: Mapping[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, RunConfig, source)) from None
