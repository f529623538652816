"""The one resolution of the transform passes' entries: default < type < name, the most specific wins whole."""

from __future__ import annotations

import pytest

from netcarve.transforms.resolve import LayerEntries, Resolved, resolve

ENTRIES = LayerEntries("D", by_type={"linear": "T"}, by_name={"fc1": "N", "relu": "R"})


@pytest.mark.parametrize(
    ("node", "kind", "expected"),
    [
        ("fc1", "linear", Resolved("N", "name")),  # a name entry beats the type entry
        ("fc2", "linear", Resolved("T", "type")),
        ("bn", "batch_norm1d", Resolved("D", "default")),
        ("relu", "relu", Resolved("R", "name")),
        ("fc1", "conv2d", Resolved("N", "name")),
    ],
)
def test_default_type_name(node: str, kind: str, expected: Resolved[str]) -> None:
    assert resolve(ENTRIES, node, kind) == expected
    assert expected.explicit == (expected.source != "default")


def test_keyed_by_puts_every_key_on_one_side() -> None:
    by_name = LayerEntries.keyed_by("name", "D", {"linear": "X"})
    assert resolve(by_name, "linear", "relu") == Resolved("X", "name")
    assert resolve(by_name, "fc1", "linear") == Resolved("D", "default")
    by_type = LayerEntries.keyed_by("type", "D", {"linear": "X"})
    assert resolve(by_type, "fc1", "linear") == Resolved("X", "type")
    assert resolve(by_type, "linear", "relu") == Resolved("D", "default")
