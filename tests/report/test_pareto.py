"""Staircases and hypervolumes on hand-made points (golden values derived here)."""

from __future__ import annotations

import pytest

from netcarve.report.pareto import hypervolume, hypervolume_2d, reference_point, staircase

MAX, MIN = "maximize", "minimize"


def test_staircase_turns_at_the_corner_worse_in_both() -> None:
    """min-min (1,3),(2,2),(3,1): corners (2,3) and (3,2). x min, y max (size vs accuracy) with (100, 0.8),
    (300, 0.9): the corner is (300, 0.8) — larger size, lower accuracy."""
    assert staircase([(3, 1), (1, 3), (2, 2)], (MIN, MIN)) == [(1, 3), (2, 3), (2, 2), (3, 2), (3, 1)]
    assert staircase([(300, 0.9), (100, 0.8)], (MIN, MAX)) == [(100, 0.8), (300, 0.8), (300, 0.9)]
    assert staircase([], (MIN, MIN)) == []


def test_hypervolume_2d_staircase_golden() -> None:
    """(1,3), (2,2), (3,1) minimise-minimise, ref (4,4): 3·1 + 2·1 + 1·1 = 6 (the three rectangles of the
    staircase: x ∈ [1,4]×y ∈ [3,4], [2,4]×[2,3], [3,4]×[1,2])."""
    assert hypervolume_2d([(1, 3), (2, 2), (3, 1)], (4, 4)) == 6.0
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (MIN, MIN), (4, 4)) == 6.0


def test_hypervolume_ignores_dominated_duplicate_and_outside_points() -> None:
    """Adding (2, 3) (dominated), a duplicate (2, 2) and (5, 0) (outside the reference box in x) changes nothing."""
    points = [(1, 3), (2, 2), (3, 1), (2, 3), (2, 2), (5, 0)]
    assert hypervolume_2d(points, (4, 4)) == 6.0
    assert hypervolume_2d([], (4, 4)) == 0.0


def test_hypervolume_with_a_maximised_objective() -> None:
    """accuracy ↑, size ↓ with ref (0.5, 400): (0.9, 300) spans 0.4 × 100 = 40, (0.7, 100) spans 0.2 × 300 = 60,
    overlap 0.2 × 100 = 20 → 80."""
    assert hypervolume([(0.9, 300), (0.7, 100)], (MAX, MIN), (0.5, 400)) == pytest.approx(80.0)


def test_hypervolume_one_and_three_objectives() -> None:
    """1-D: the distance from the best point to the reference (max 0.9 vs ref 0.2 → 0.7).
    3-D (Optuna's WFG): boxes (0,1,1)→(2,2,2) and (1,0,1)→(2,2,2), each 2·1·1 = 2, overlapping in the unit
    cube [1,2]³: 2 + 2 − 1 = 3."""
    assert hypervolume([(0.4,), (0.9,)], (MAX,), (0.2,)) == pytest.approx(0.7)
    assert hypervolume([(0, 1, 1), (1, 0, 1)], (MIN, MIN, MIN), (2, 2, 2)) == pytest.approx(3.0)


def test_reference_point_is_the_worst_value_plus_ten_percent_of_the_range() -> None:
    """accuracy ∈ [0.5, 0.9] (max): 0.5 − 0.04 = 0.46; size ∈ [100, 400] (min): 400 + 30 = 430; an objective
    without spread (all 8) uses 10 % of its value as the range: 8 + 0.08."""
    ref = reference_point([(0.5, 100), (0.9, 400), (0.7, 200)], (MAX, MIN))
    assert ref == pytest.approx((0.46, 430.0))
    assert reference_point([(8.0,), (8.0,)], (MIN,)) == pytest.approx((8.08,))
