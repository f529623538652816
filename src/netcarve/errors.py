"""The exception hierarchy of netcarve.

Every error a user can cause derives from :class:`NetcarveError`; the CLI turns it into one line on stderr
and its ``exit_code`` (2; 1 for an export whose bit-exactness check failed), without a traceback. Library
callers can catch the standard base classes too (``ConfigError`` is a ``ValueError``, ``UnknownNameError`` a
``KeyError``).
"""

from __future__ import annotations


class NetcarveError(Exception):
    """Base class of every error netcarve raises on bad input or a failed step."""

    exit_code: int = 2


class ConfigError(NetcarveError, ValueError):
    """A config file, table, key or value is invalid."""


class UnknownNameError(NetcarveError, KeyError):
    """A name (model, dataset, pass, sampler, …) is not in its registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(NetcarveError):
    """A dataset file is missing, unreadable or has the wrong schema."""


class ModelError(NetcarveError):
    """A model cannot be built, imported or traced."""


class CheckpointError(NetcarveError):
    """A checkpoint is missing, corrupt, unsafe or made for another model."""


class PassError(NetcarveError):
    """A graph pass cannot run (missing prerequisite, invalid config for this graph)."""


class TrainingError(NetcarveError):
    """Training diverged (NaN/inf loss) or cannot proceed."""


class SearchError(NetcarveError):
    """A search is misconfigured or cannot continue."""


class StorageError(SearchError):
    """A study storage cannot be reached or opened."""


class ExportError(NetcarveError):
    """A model cannot be exported to firmware (source, output directory or backend)."""
