"""The geometry of Pareto fronts: the staircase a 2-D front bounds, hypervolumes and their reference point.

Dominance, the front itself and best-so-far values are :mod:`netcarve.outcomes` (shared with the search).

Hypervolume is computed in loss space (every objective minimised: maximised ones negated): the volume
dominated by the points and bounded by the reference point. Two objectives: an exact sweep here; more: the
WFG algorithm shipped with Optuna (:func:`netcarve.optuna_internals.hypervolume`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from netcarve import optuna_internals
from netcarve.outcomes import MAXIMIZE, Vector, check_directions


def worse(a: float, b: float, direction: str) -> float:
    return min(a, b) if direction == MAXIMIZE else max(a, b)


def staircase(front: Sequence[tuple[float, float]], directions: Sequence[str]) -> list[tuple[float, float]]:
    """The boundary of the region a 2-D front dominates, through its points (sorted by x).

    Between neighbours the line turns at the corner that is worse than both in x and in y, so the
    staircase never passes through a better point than the front holds.
    """
    pts = sorted(set(front))
    if not pts:
        return []
    out = [pts[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        out.append((worse(x0, x1, directions[0]), worse(y0, y1, directions[1])))
        out.append((x1, y1))
    return out


def to_losses(points: Sequence[Vector], directions: Sequence[str]) -> list[tuple[float, ...]]:
    """Every objective as a loss (to minimise): maximised objectives are negated."""
    return [tuple(-x if d == MAXIMIZE else x for x, d in zip(p, directions, strict=True)) for p in points]


def hypervolume_2d(losses: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Exact area dominated by 2-D loss points (minimise both) and bounded by ``ref``.

    Points not strictly better than ``ref`` in both coordinates add nothing. Sweep over x ascending: each
    point that lowers the best y so far adds the rectangle (ref_x − x) × (previous y − y).
    """
    inside = sorted((x, y) for x, y in losses if x < ref[0] and y < ref[1])
    area, level = 0.0, ref[1]
    for x, y in inside:
        if y < level:
            area += (ref[0] - x) * (level - y)
            level = y
    return area


def _hypervolume_nd(losses: Sequence[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    inside = [p for p in losses if all(x < r for x, r in zip(p, ref, strict=True))]
    return optuna_internals.hypervolume(inside, ref) if inside else 0.0


def hypervolume(points: Sequence[Vector], directions: Sequence[str], ref: Vector) -> float:
    """Hypervolume of ``points`` (in their own directions) w.r.t. ``ref`` (in the same units)."""
    check_directions(directions)
    losses = to_losses(points, directions)
    ref_loss = to_losses([ref], directions)[0]
    if len(directions) == 1:
        return max([ref_loss[0] - p[0] for p in losses if p[0] < ref_loss[0]], default=0.0)
    if len(directions) == 2:
        return hypervolume_2d([(p[0], p[1]) for p in losses], (ref_loss[0], ref_loss[1]))
    return _hypervolume_nd(losses, ref_loss)


def reference_point(points: Sequence[Vector], directions: Sequence[str], margin: float = 0.1) -> tuple[float, ...]:
    """The worst value of each objective over ``points``, pushed ``margin`` × its range further out.

    The margin lets the extreme points of a front contribute; an objective with no spread uses 10 % of
    its value (or 1 at 0) as the range.
    """
    check_directions(directions)
    if not points:
        raise ValueError("a reference point needs at least one point")
    out = []
    for i, d in enumerate(directions):
        column = [p[i] for p in points]
        lo, hi = min(column), max(column)
        spread = (hi - lo) or (abs(hi) * 0.1 or 1.0)
        out.append(lo - margin * spread if d == MAXIMIZE else hi + margin * spread)
    return tuple(out)
