"""URL passwords are masked wherever netcarve writes or prints text."""

from __future__ import annotations

import logging

import pytest

from netcarve.redact import RedactingFilter, has_secret, redact, redact_text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://bob:s3cr3t@db:5432/x", "postgresql://bob:***@db:5432/x"),
        ("postgresql://bob:p@ss@db/x", "postgresql://bob:***@db/x"),  # an '@' inside the password
        ("mysql+pymysql://u:pw@h/d?charset=utf8", "mysql+pymysql://u:***@h/d?charset=utf8"),
        ("postgresql://bob@db/x?password=s3cr3t&sslmode=off", "postgresql://bob@db/x?password=***&sslmode=off"),
        ("postgresql://bob:a@db/x?PWD=b", "postgresql://bob:***@db/x?PWD=***"),
        ("--storage postgresql://u:pw@h/d --n-jobs 2", "--storage postgresql://u:***@h/d --n-jobs 2"),
        ("runs/t/study.journal", "runs/t/study.journal"),  # no URL: unchanged
        ("sqlite:///tmp/a.db", "sqlite:///tmp/a.db"),
    ],
)
def test_passwords_are_masked(text: str, shown: str) -> None:
    assert redact_text(text) == shown
    assert has_secret(text) == (text != shown)


def test_nested_values_and_log_records() -> None:
    """Lists, tuples and dicts are masked element by element; a log record's message and arguments too."""
    value = {"argv": ["netcarve", "--storage", "postgresql://u:pw@h/d"], "n": 3, "pair": ("x://a:b@c", 1)}
    assert redact(value) == {"argv": ["netcarve", "--storage", "postgresql://u:***@h/d"], "n": 3,
                             "pair": ("x://a:***@c", 1)}  # fmt: skip
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "open %s", ("postgresql://u:pw@h/d",), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "open postgresql://u:***@h/d"
