"""Secrets never leave the process: the password of a URL (``scheme://user:password@host``) is replaced by
``***`` in every file netcarve writes and every message it shows.

One rule, applied wherever text from the user's command line or environment is written: run files
(``manifest.json``, ``config.toml``), the report, study attributes, and log records (a logging filter).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

MASK = "***"

# scheme://user:password@ — the password is anything up to the last '@' before the host part
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<secret>[^\s'\"]*)(?P<at>@)")
#: a password given as a URL query parameter (libpq's ``?password=…``, also ``passwd``/``pwd``)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<secret>[^&\s'\"]*)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it (``user:password@`` or ``?password=``) replaced by ``***``."""
    if "://" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], text)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + MASK, text)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value (str, list, tuple, dict) with every URL password masked."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return type(value)(redact(v) for v in value) if isinstance(value, tuple) else [redact(v) for v in value]
    return value


def has_secret(url: str) -> bool:
    """Does ``url`` carry a password (so that writing it would leak it)?"""
    return redact_text(url) != url


class RedactingFilter(logging.Filter):
    """A logging filter that masks URL passwords in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = redact(record.args)
        return True
