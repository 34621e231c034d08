"""Selection rules of xcoact/select.py against hand-worked cases (the mutation run of issue 17).

docs/mutation.md lists the mutants of ``xcoact/select.py`` the rest of the
suite let through; the tests here kill the ones that are not equivalent.  The
expected selections are worked out by hand from the rules' definitions in
docs/semantics.md ('Selecting studies'), through the public functions of
``xcoact.select``.
"""

from __future__ import annotations

import numpy as np
import pytest

from xcoact.errors import ParameterError
from xcoact.select import check_rule, check_threshold, overlap_rule, select_studies, threshold_kind


@pytest.mark.parametrize(("threshold", "expected"), [
    (0, [False, True, True, True, True]),  # a count: more than 0 voxels
    (3, [False, False, False, False, True]),  # more than 3 of the 8 voxels: 4 and 8, strictly
    (0.0, [False, True, True, True, True]),  # a proportion: more than 0 %
    (0.375, [False, False, False, False, True]),  # 3 / 8 = 0.375 exactly is not more than 0.375
    (0.374, [False, False, False, True, True]),
    (1.0, [False] * 5),  # nobody covers more than the whole ROI
])
def test_overlap_rule_is_strict_for_counts_and_proportions(threshold, expected):
    overlap = np.array([0, 1, 2, 3, 8])
    n_roi = 8
    if isinstance(threshold, int):
        expected = [bool(o > threshold) for o in overlap]
    assert overlap_rule(overlap, n_roi, threshold).tolist() == expected
    rule = check_rule("overlap", threshold)
    assert rule.apply(overlap, n_roi).tolist() == expected
    assert threshold_kind(threshold) == ("count" if isinstance(threshold, int) else "proportion")


def test_overlap_proportions_are_true_divisions():
    """Integer overlaps over an integer ROI size: 1 / 3 > 0.3 (an integer division would give 0)."""
    assert overlap_rule(np.array([1, 0], dtype=np.int32), 3, 0.3).tolist() == [True, False]
    assert select_studies(np.array([1, 0, 2]), 3, 0.3).tolist() == [True, False, True]


@pytest.mark.parametrize(("threshold", "expected"), [(0, 0), (7, 7), (np.int64(2), 2), (0.5, 0.5), (1, 1),
                                                     (np.float32(0.25), 0.25), (1.0, 1.0), (0.0, 0.0)])
def test_check_threshold_keeps_the_kind(threshold, expected):
    got = check_threshold(threshold)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("threshold", [-1, 1.5, -0.1, float("nan"), float("inf"), True, "0.1", None])
def test_check_threshold_refuses(threshold):
    with pytest.raises(ParameterError, match="threshold="):
        check_threshold(threshold)


@pytest.mark.parametrize(("score", "rule", "expected"), [
    ([0, 2, 1, 0], check_rule("focus"), [False, True, True, False]),  # at least one peak inside
    ([3.0, 2.0, 2.5, 9.0], check_rule("distance", r=2.5), [False, True, True, False]),  # within r, inclusive
    ([3.0, 2.0, 2.0, 0.5], check_rule("nearest", k=2), [False, True, False, True]),  # k nearest, ties in database order
    ([3.0, 2.0, 2.0, 0.5], check_rule("nearest", k=3), [False, True, True, True]),
    ([1.0, 1.0, 1.0, 1.0], check_rule("nearest", k=2), [True, True, False, False]),  # ties: database order
])
def test_rules_apply_by_hand(score, rule, expected):
    assert rule.apply(np.array(score)).tolist() == expected
    assert rule.select(np.array(score)).tolist() == expected
    assert rule.degenerate(np.array(score)) is None
