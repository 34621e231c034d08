"""Selection rules of xcoact/select.py against hand-worked cases (the mutation run of issue 17).

docs/mutation.md lists the mutants of ``xcoact/select.py`` the rest of the
suite let through; the tests here kill the ones that are not equivalent.  The
expected selections are worked out by hand from the rules' definitions in
docs/semantics.md ('Selecting studies'), through the public functions of
``xcoact.select``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xcoact
from xcoact.errors import ParameterError
from xcoact.select import (
    check_rule,
    check_threshold,
    focus_counts,
    min_distances,
    overlap_rule,
    select_studies,
    threshold_kind,
)
from xcoact.table import make_table
from xcoact.warnings import DegenerateSeedWarning


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


# --------------------------------------------------------------------------------------
# the per-study scores of "focus" and "distance", from a cube's peaks
# --------------------------------------------------------------------------------------

#: 2 mm voxels on a 5 x 5 x 5 box from -4 to 4 mm
_GRID = xcoact.Grid((5, 5, 5), [[2, 0, 0, -4], [0, 2, 0, -4], [0, 0, 2, -4], [0, 0, 0, 1]])
#: study 1: the origin; study 2: the origin and (4, 0, 0); study 3: (4, 4, 4); study 4: a peak outside the box
_PEAKS = [(1, 0, 0, 0), (2, 0, 0, 0), (2, 4, 0, 0), (3, 4, 4, 4), (4, 100, 0, 0), (4, -4, -4, -4)]


@pytest.fixture(scope="module")
def source():
    """The peaks of a cube's (only) study chunk, the object the engine hands the rules' score functions."""
    ids, x, y, z = zip(*_PEAKS, strict=True)
    with pytest.warns(xcoact.warnings.OutOfBoxWarning):
        act = xcoact.activations(make_table(list(ids), list(x), list(y), list(z), ["MNI"] * len(ids),
                                            database="four studies", fmt="demo"), r=2, grid=_GRID)
    return act.data.blocks[0, 0, 0, 0].compute().chunk


def _flat(*ijk) -> np.ndarray:
    return np.array([np.ravel_multi_index(v, _GRID.shape) for v in ijk], dtype=np.int64)


def test_focus_counts_by_hand(source):
    """Peaks per study inside each ROI: the origin is voxel (2, 2, 2), (4, 0, 0) is (4, 2, 2), (-4,-4,-4) is 0."""
    rois = [_flat((2, 2, 2)), _flat((2, 2, 2), (4, 2, 2), (4, 4, 4)), _flat((0, 0, 0)), _flat((1, 1, 1))]
    got = focus_counts(source, rois)
    assert got.dtype == np.int32
    assert got.tolist() == [[1, 1, 0, 0], [1, 2, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]


def test_focus_counts_and_distances_of_no_roi(source):
    """No ROI: an empty (0, n_studies) score table, not an error."""
    got = focus_counts(source, [])
    assert got.shape == (0, 4) and got.dtype == np.int32
    got = min_distances(source, [])
    assert got.shape == (0, 4) and got.dtype == np.float64


def test_min_distances_by_hand(source):
    seeds = [np.array([[0.0, 0.0, 0.0]]), np.array([[4.0, 4.0, 2.0], [-4.0, -4.0, -2.0]]), [1.0, 0.0, 0.0]]
    got = min_distances(source, seeds)
    assert got.dtype == np.float64 and got.shape == (3, 4)
    # study 4's peak at x = 100 mm is outside the box but still a peak for distances
    expected = [[0.0, 0.0, np.sqrt(48), np.sqrt(48)],
                [np.sqrt(36), np.sqrt(16 + 4), 2.0, 2.0],
                [1.0, 1.0, np.sqrt(9 + 16 + 16), np.sqrt(25 + 16 + 16)]]
    np.testing.assert_allclose(got, expected, rtol=1e-15)


@pytest.fixture(scope="module")
def small_cube():
    ids, x, y, z = zip(*_PEAKS[:4], strict=True)
    return xcoact.activations(make_table(list(ids), list(x), list(y), list(z), ["MNI"] * 4, database="three studies",
                                         fmt="demo"), r=2, grid=_GRID)


@pytest.mark.parametrize("call", [
    lambda act: xcoact.seed(act, [[0, 0, 0], [-4, 4, -4]], r=2, separate=True),
    lambda act: act.coact.seed([[0, 0, 0], [-4, 4, -4]], r=2, separate=True),
    lambda act: act.coact.matrix([[0, 0, 0], [-4, 4, -4]], 0.0, r=1, separate=True),
])
def test_the_degenerate_seed_warning_names_the_callers_line(small_cube, call):
    """A batch with a seed that selects nothing warns once, pointing at the line that asked for the batch."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call(small_cube)
    found = [w for w in caught if issubclass(w.category, DegenerateSeedWarning)]
    assert len(found) == 1 and "'-4_4_-4'" in str(found[0].message)
    assert found[0].filename == __file__
