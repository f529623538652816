from __future__ import annotations

import pytest

from netcarve.errors import UnknownNameError
from netcarve.registry import Registry, loose_key


def test_get_alias_and_suggestion() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("brute_force", 1, aliases=("bruteforce",))
    reg.add("tpe", 2)
    assert reg.get("bruteforce") == 1
    assert reg.canonical("brute_force") == "brute_force"
    with pytest.raises(UnknownNameError) as info:
        reg.get("tpee")
    assert "did you mean 'tpe'" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_loose_normalisation_matches_mase_spellings() -> None:
    reg: Registry[int] = Registry("sampler", normalize=loose_key)
    reg.add("brute_force", 1)
    assert [reg.get(n) for n in ("Brute-Force", "bruteforce", "BRUTE_FORCE")] == [1, 1, 1]


def test_duplicate_registration_is_refused() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)
