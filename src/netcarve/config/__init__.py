"""Configuration: pydantic models for every TOML table and the loader."""

from netcarve.config.loader import build_config, read_toml, validate_config
from netcarve.config.passes import QuantizePassConfig, WidthPassConfig
from netcarve.config.run import RunConfig
from netcarve.config.search import SearchConfig
from netcarve.config.writer import dumps_toml

__all__ = [
    "QuantizePassConfig",
    "RunConfig",
    "SearchConfig",
    "WidthPassConfig",
    "build_config",
    "dumps_toml",
    "read_toml",
    "validate_config",
]
