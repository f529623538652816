"""Which configurations of a space are valid, checked without training, so that acceptance never depends on
the order of the choices in the config.

A configuration is *valid* when its candidate can be built: every transform pass accepts its config on the
base graph (no training, no evaluation; a few milliseconds for a small model). Some choices are invalid only
jointly, e.g. a minifloat ``weight_width = 4`` with ``weight_exponent_width = 5`` (no room for a sign and five
exponent bits) while 4 with 3 and 8 with 5 are fine.

- :func:`check_choices` (run by ``prepare``, before any study exists) rejects a choice only when it is
  invalid in *every* configuration of the space, naming the parameter and the value: for each choice of each
  searched parameter it looks for one valid configuration holding it, trying first the configurations
  nearest to those found valid (fewest other parameters changed), at most :data:`MAX_TRIES` per choice. A
  space in which no valid configuration is found at all is rejected too.
- a trial whose configuration is invalid only jointly is PRUNED with the reason (its ``pruned`` attribute,
  a column of trials.csv) before any training: :meth:`~netcarve.search.candidate.CandidateEvaluator.evaluate`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from netcarve.errors import ConfigError, NetcarveError
from netcarve.ir.graph import Graph
from netcarve.search.candidate import build_candidate, try_build
from netcarve.search.spaces import SearchSpace

log = logging.getLogger(__name__)

TABLE = "search.search_space"
#: configurations built at most per choice while looking for a valid one holding it
MAX_TRIES = 64

#: a configuration as one choice index per searched parameter (canonical order)
Index = tuple[int, ...]


def nearest_first(sizes: Sequence[int], start: Index, param: int, choice: int) -> Iterator[Index]:
    """Every configuration with ``choice`` for parameter ``param``, those differing from ``start`` in the
    fewest other parameters first (``start`` itself, with ``choice``, first of all)."""
    others = [i for i in range(len(sizes)) if i != param]
    origin = list(start)
    origin[param] = choice
    for count in range(len(others) + 1):
        for subset in itertools.combinations(others, count):
            alternatives = [[c for c in range(sizes[i]) if c != start[i]] for i in subset]
            for values in itertools.product(*alternatives):
                index = origin.copy()
                for i, c in zip(subset, values, strict=True):
                    index[i] = c
                yield tuple(index)


@dataclass
class _Finding:
    """The search for a valid configuration holding one choice."""

    param: int
    choice: int
    tried: int
    exhaustive: bool
    error: NetcarveError  # of the first configuration tried


@dataclass
class ValidityChecker:
    """Builds configurations of ``space`` on ``base`` (each at most once) and remembers the valid ones."""

    space: SearchSpace
    base: Graph
    max_tries: int = MAX_TRIES
    errors: dict[Index, NetcarveError | None] = field(default_factory=dict)
    valid: list[Index] = field(default_factory=list)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(p.choices) for p in self.space.params)

    def point(self, index: Index) -> dict[str, object]:
        return {p.name: p.choices[i] for p, i in zip(self.space.params, index, strict=True)}

    def error(self, index: Index) -> NetcarveError | None:
        """Why configuration ``index`` is invalid, or None when it is valid."""
        if index not in self.errors:
            result = try_build(self.base, self.space.transforms(self.point(index)))
            self.errors[index] = result if isinstance(result, NetcarveError) else None
            if self.errors[index] is None:
                self.valid.append(index)
        return self.errors[index]

    def _candidates(self, param: int, choice: int) -> Iterator[Index]:
        for index in list(self.valid):  # a valid configuration with just this choice changed
            yield (*index[:param], choice, *index[param + 1 :])
        start = self.valid[0] if self.valid else (0,) * len(self.sizes)
        yield from nearest_first(self.sizes, start, param, choice)

    def find(self, param: int, choice: int) -> _Finding | None:
        """None when a valid configuration holds ``choice`` of ``param``; else what was tried."""
        seen: set[Index] = set()
        first: NetcarveError | None = None
        for index in self._candidates(param, choice):
            if index in seen:
                continue
            seen.add(index)
            error = self.error(index)
            if error is None:
                return None
            if first is None:
                first = error
            if len(seen) >= self.max_tries:
                break
        assert first is not None
        subspace = self.space.size // self.sizes[param]
        return _Finding(param, choice, len(seen), len(seen) >= subspace, first)


def _describe(space: SearchSpace, finding: _Finding) -> str:
    param = space.params[finding.param]
    return f"{param.name} = {param.choices[finding.choice]!r}"


def check_choices(space: SearchSpace, base: Graph, max_tries: int = MAX_TRIES) -> None:
    """ConfigError when a choice of a searched parameter is invalid in every configuration of ``space`` (or
    no valid configuration is found at all); a space without searched parameters is built once."""
    if not space.params:
        build_candidate(base, space.transforms(space.point(0)))  # one configuration: its own error
        return
    checker = ValidityChecker(space, base, max_tries)
    findings: list[_Finding] = []
    for p, param in enumerate(space.params):
        for c in range(len(param.choices)):
            if any(index[p] == c for index in checker.valid):
                continue
            finding = checker.find(p, c)
            if finding is not None:
                findings.append(finding)
    built = len(checker.errors)
    log.debug("search space: %d configuration(s) built to check every choice, %d valid", built, len(checker.valid))
    if not checker.valid:
        first = checker.errors[(0,) * len(space.params)]
        assert first is not None
        extent = "of the space" if built == space.size else f"among the {built} tried (of {space.size})"
        raise ConfigError(f"{TABLE}: no configuration {extent} is valid; the first: {first}") from first
    everywhere = [f for f in findings if f.exhaustive]
    if everywhere:
        listed = "; ".join(f"{_describe(space, f)} ({f.error})" for f in everywhere)
        raise ConfigError(
            f"{TABLE}: a choice is invalid in every configuration of the space (remove it): {listed}"
        ) from everywhere[0].error
    for f in findings:
        log.warning(
            "%s: no valid configuration with %s among the %d tried (%s); trials that draw an invalid "
            "configuration are pruned", TABLE, _describe(space, f), f.tried, f.error,
        )  # fmt: skip
