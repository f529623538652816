"""Configuration: pydantic models for every TOML table and the loader (a run's whole config, dataset defaults
included, is built by :func:`netcarve.configure.build_config`)."""

from netcarve.config.loader import read_toml, validate_config
from netcarve.config.passes import QuantizePassConfig, WidthPassConfig
from netcarve.config.run import RunConfig
from netcarve.config.search import SearchConfig
from netcarve.config.writer import dumps_toml

__all__ = [
    "QuantizePassConfig",
    "RunConfig",
    "SearchConfig",
    "WidthPassConfig",
    "dumps_toml",
    "read_toml",
    "validate_config",
]
