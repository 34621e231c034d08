"""Selection rules of xcoact/select.py against hand-worked cases (the mutation run of issue 17).

docs/mutation.md lists the mutants of ``xcoact/select.py`` the rest of the
suite let through; the tests here kill the ones that are not equivalent.  The
expected selections are worked out by hand from the rules' definitions in
docs/semantics.md ('Selecting studies'), through the public functions of
``xcoact.select``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import xcoact
from xcoact.errors import DegenerateSeedWarning, ParameterError, SelectionError
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


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0, [False, True, True, True, True]),  # a count: more than 0 voxels
        (3, [False, False, False, False, True]),  # more than 3 of the 8 voxels: 4 and 8, strictly
        (0.0, [False, True, True, True, True]),  # a proportion: more than 0 %
        (0.375, [False, False, False, False, True]),  # 3 / 8 = 0.375 exactly is not more than 0.375
        (0.374, [False, False, False, True, True]),
        (1.0, [False] * 5),  # nobody covers more than the whole ROI
    ],
)
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


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0, 0), (7, 7), (np.int64(2), 2), (0.5, 0.5), (1, 1), (np.float32(0.25), 0.25), (1.0, 1.0), (0.0, 0.0)],
)
def test_check_threshold_keeps_the_kind(threshold, expected):
    got = check_threshold(threshold)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("threshold", [-1, 1.5, -0.1, float("nan"), float("inf"), True, "0.1", None])
def test_check_threshold_refuses(threshold):
    with pytest.raises(ParameterError, match="threshold="):
        check_threshold(threshold)


@pytest.mark.parametrize(
    ("score", "rule", "expected"),
    [
        ([0, 2, 1, 0], check_rule("focus"), [False, True, True, False]),  # at least one peak inside
        ([3.0, 2.0, 2.5, 9.0], check_rule("distance", r=2.5), [False, True, True, False]),  # within r, inclusive
        (
            [3.0, 2.0, 2.0, 0.5],
            check_rule("nearest", k=2),
            [False, True, False, True],
        ),  # k nearest, ties in database order
        ([3.0, 2.0, 2.0, 0.5], check_rule("nearest", k=3), [False, True, True, True]),
        ([1.0, 1.0, 1.0, 1.0], check_rule("nearest", k=2), [True, True, False, False]),  # ties: database order
    ],
)
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
    with pytest.warns(xcoact.errors.OutOfBoxWarning):
        act = xcoact.activations(
            make_table(list(ids), list(x), list(y), list(z), ["MNI"] * len(ids), database="four studies", fmt="demo"),
            r=2,
            grid=_GRID,
        )
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
    expected = [
        [0.0, 0.0, np.sqrt(48), np.sqrt(48)],
        [np.sqrt(36), np.sqrt(16 + 4), 2.0, 2.0],
        [1.0, 1.0, np.sqrt(9 + 16 + 16), np.sqrt(25 + 16 + 16)],
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-15)


@pytest.fixture(scope="module")
def small_cube():
    ids, x, y, z = zip(*_PEAKS[:4], strict=True)
    return xcoact.activations(
        make_table(list(ids), list(x), list(y), list(z), ["MNI"] * 4, database="three studies", fmt="demo"),
        r=2,
        grid=_GRID,
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda act: xcoact.seed(act, [[0, 0, 0], [-4, 4, -4]], r=2, separate=True),
        lambda act: act.coact.seed([[0, 0, 0], [-4, 4, -4]], r=2, separate=True),
        lambda act: act.coact.matrix([[0, 0, 0], [-4, 4, -4]], 0.0, r=1, separate=True),
    ],
)
def test_the_degenerate_seed_warning_names_the_callers_line(small_cube, call):
    """A batch with a seed that selects nothing warns once, pointing at the line that asked for the batch."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call(small_cube)
    found = [w for w in caught if issubclass(w.category, DegenerateSeedWarning)]
    assert len(found) == 1 and "'-4_4_-4'" in str(found[0].message)
    # never a line of xcoact itself (the default stacklevel would name select.py)
    package = os.path.dirname(os.path.abspath(xcoact.__file__))
    assert not os.path.abspath(found[0].filename).startswith(package + os.sep), found[0].filename
    if "MUTANT_UNDER_TEST" not in os.environ:
        # but this file (under mutmut a trampoline of site-packages/mutmut sits between the caller and xcoact)
        assert found[0].filename == __file__


# --------------------------------------------------------------------------------------
# check_rule: every message in full, the validated rule, its sentence and attrs
# --------------------------------------------------------------------------------------

_TAIL_R = "is not a valid distance for select='distance'; expected a number of mm > 0 (e.g. r=10)."
_TAIL_K = "is not valid for select='nearest'; expected the number of studies to select, an int >= 1 (e.g. k=100)."
_IMAGE = (
    "measures millimetres from seed coordinates, but this seed is an image; pass coordinates "
    "[[x, y, z], ...], or use select='focus' (a peak inside the ROI) or 'overlap'."
)


@pytest.mark.parametrize(
    ("select", "threshold", "kwargs", "message"),
    [
        (
            "peaks",
            None,
            {},
            "select='peaks' is not a known rule; expected one of 'overlap', 'focus', 'distance', 'nearest'.",
        ),
        (3, None, {}, "select=3 is not a known rule; expected one of 'overlap', 'focus', 'distance', 'nearest'."),
        (
            "focus",
            0.1,
            {},
            "threshold=0.1 applies to select='overlap' only; select='focus' selects every study with a peak "
            "inside the ROI.",
        ),
        (
            "distance",
            0.1,
            {"r": 5},
            "threshold=0.1 applies to select='overlap' only; select='distance' uses r (mm) instead.",
        ),
        (
            "nearest",
            2,
            {"k": 3},
            "threshold=2 applies to select='overlap' only; select='nearest' uses k (studies) instead.",
        ),
        ("overlap", None, {"k": 3}, "k=3 applies to select='nearest' only (the number of studies to select)."),
        ("distance", None, {"r": 5, "k": 3}, "k=3 applies to select='nearest' only (the number of studies to select)."),
        ("distance", None, {"r": 5, "coords": False}, f"select='distance' {_IMAGE}"),
        ("nearest", None, {"k": 5, "coords": False}, f"select='nearest' {_IMAGE}"),
        ("distance", None, {}, f"r=None {_TAIL_R}"),
        ("distance", None, {"r": 0}, f"r=0 {_TAIL_R}"),
        ("distance", None, {"r": -2.0}, f"r=-2.0 {_TAIL_R}"),
        ("distance", None, {"r": True}, f"r=True {_TAIL_R}"),
        ("distance", None, {"r": float("inf")}, f"r=inf {_TAIL_R}"),
        ("distance", None, {"r": float("nan")}, f"r=nan {_TAIL_R}"),
        ("distance", None, {"r": "5"}, f"r='5' {_TAIL_R}"),
        ("nearest", None, {}, f"k=None {_TAIL_K}"),
        ("nearest", None, {"k": 0}, f"k=0 {_TAIL_K}"),
        ("nearest", None, {"k": 2.5}, f"k=2.5 {_TAIL_K}"),
        ("nearest", None, {"k": True}, f"k=True {_TAIL_K}"),
        (
            "overlap",
            -1,
            {},
            "threshold=-1 is a negative voxel count; expected an int >= 0 (or a float proportion in [0, 1]).",
        ),
    ],
)
def test_check_rule_messages_in_full(select, threshold, kwargs, message):
    with pytest.raises(ParameterError) as err:
        check_rule(select, threshold, **kwargs)
    assert str(err.value) == message


def test_check_rule_defaults_and_types():
    assert check_rule() == ("overlap", 0.0, None, None) and type(check_rule().threshold) is float
    assert check_rule("overlap", 3) == ("overlap", 3, None, None)
    assert check_rule("focus") == ("focus", None, None, None)
    assert check_rule("focus", coords=False) == ("focus", None, None, None)  # an image seed can use focus
    assert check_rule("overlap", 0.2, coords=False) == ("overlap", 0.2, None, None)
    rule = check_rule("distance", r=np.int64(4))
    assert rule == ("distance", None, 4.0, None) and type(rule.r) is float
    rule = check_rule("nearest", k=np.int64(2))
    assert rule == ("nearest", None, None, 2) and type(rule.k) is int
    assert check_rule("distance", r=0.5).r == 0.5


@pytest.mark.parametrize(
    ("rule", "n_roi", "attrs"),
    [
        (
            ("overlap", 0.0),
            12,
            {
                "select": "overlap",
                "threshold": 0.0,
                "threshold_kind": "proportion",
                "selection": "overlap: a study's activation covers more than a proportion 0 of the 12 ROI voxels (Neurosynth; see "
                "docs/semantics.md, 'Selecting studies')",
            },
        ),
        (
            ("overlap", 0.125),
            None,
            {
                "select": "overlap",
                "threshold": 0.125,
                "threshold_kind": "proportion",
                "selection": "overlap: a study's activation covers more than a proportion 0.125 of the ROI voxels (Neurosynth; see "
                "docs/semantics.md, 'Selecting studies')",
            },
        ),
        (
            ("overlap", 3),
            12,
            {
                "select": "overlap",
                "threshold": 3,
                "threshold_kind": "count",
                "selection": "overlap: a study's activation covers more than 3 voxels of the 12 ROI voxels (Neurosynth; see "
                "docs/semantics.md, 'Selecting studies')",
            },
        ),
        (
            ("overlap", 3),
            None,
            {
                "select": "overlap",
                "threshold": 3,
                "threshold_kind": "count",
                "selection": "overlap: a study's activation covers more than 3 voxels of the ROI voxels (Neurosynth; see "
                "docs/semantics.md, 'Selecting studies')",
            },
        ),
        (
            ("focus",),
            12,
            {
                "select": "focus",
                "selection": "focus: at least one reported peak inside the 12-voxel ROI (NiMARE get_studies_by_mask)",
            },
        ),
        (
            ("distance", None, 2.5),
            12,
            {
                "select": "distance",
                "select_r": 2.5,
                "selection": "distance: at least one reported peak within 2.5 mm (inclusive) of a seed coordinate (Neurosynth 0.3.8 "
                "get_studies(peaks=...), NiMARE get_studies_by_coordinate)",
            },
        ),
        (
            ("nearest", None, None, 7),
            None,
            {
                "select": "nearest",
                "select_k": 7,
                "selection": "nearest: the 7 studies whose nearest reported peak is closest to a seed coordinate (ties broken by database "
                "order)",
            },
        ),
    ],
)
def test_rule_attrs_and_sentences(rule, n_roi, attrs):
    from xcoact.select import SelectionRule

    got = SelectionRule(*rule).attrs(n_roi)
    assert got == attrs
    assert all(type(got[key]) is type(value) for key, value in attrs.items())
    assert SelectionRule(*rule).describe(n_roi) == attrs["selection"]


@pytest.mark.parametrize(
    ("rule", "score", "message", "reason"),
    [
        (
            check_rule("distance", r=5),
            [1.0, 2.25, 4.5],
            "every one of the 3 studies has a peak within r=5 mm of S (select='distance'), so there are no unselected "
            "studies to compare with. Lower r below 4.5 mm.",
            "every study selected; nearest peak 1 mm, farthest study 4.5 mm",
        ),
        (
            check_rule("distance", r=0.5),
            [1.0001, 2.25, 4.0],
            "no study selected for S with select='distance': the nearest reported peak of the 3 studies is 1 mm from the "
            "seed, farther than r=0.5 mm. Raise r to at least 1.001.",
            "no study selected; nearest peak 1 mm, farthest study 4 mm",
        ),
        (
            check_rule("nearest", k=5),
            [1.0, 2.0, 3.0],
            "select='nearest' with k=5 selects every one of the 3 studies of S, so there are no unselected studies to "
            "compare with. Use k < 3.",
            "every study selected; k=5 of 3 studies",
        ),
        (
            check_rule("focus"),
            [0, 0, 0],
            "no study selected for S with select='focus': none of the 3 studies reports a peak inside the 9 ROI voxels. Use "
            "a larger ROI, or select='overlap' (sphere coverage).",
            "no study selected; 0 of 3 studies have a peak in the ROI",
        ),
        (
            check_rule("focus"),
            [1, 3, 1],
            "every one of the 3 studies reports a peak inside the ROI of S (select='focus'), so there are no unselected "
            "studies to compare with. Use a smaller ROI.",
            "every study selected; 3 of 3 studies have a peak in the ROI",
        ),
        (
            check_rule("overlap", 2),
            [3, 3, 3],
            "every one of the 3 studies was selected for S: each covers the same 3 of 9 ROI voxels, so no threshold can "
            "separate selected from unselected studies. Use a different ROI, or a database whose studies differ there.",
            "every study selected; largest overlap 3 of 9 voxels",
        ),
    ],
)
def test_degenerate_selections_say_why_and_how_to_fix_them(rule, score, message, reason):
    with pytest.raises(SelectionError) as err:
        rule.select(np.array(score), 9, seed_name="S")
    assert str(err.value) == message
    assert rule.degenerate(np.array(score), 9) == reason


_PROPORTION = (
    "a float threshold is the proportion of ROI voxels a study must cover (e.g. 0.1). For an absolute voxel "
    "count pass an int (e.g. threshold=5)."
)
_NOT_A_NUMBER = (
    "expected a proportion of ROI voxels in [0, 1] (a float, e.g. 0.1) or a voxel count >= 0 (an int, e.g. 5)."
)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (-1, "threshold=-1 is a negative voxel count; expected an int >= 0 (or a float proportion in [0, 1])."),
        (
            np.int64(-3),
            "threshold=np.int64(-3) is a negative voxel count; expected an int >= 0 (or a float proportion in [0, 1]).",
        ),
        (1.5, f"threshold=1.5 is outside [0, 1]; {_PROPORTION}"),
        (-0.1, f"threshold=-0.1 is outside [0, 1]; {_PROPORTION}"),
        (float("nan"), f"threshold=nan is NaN or infinite, not a number in [0, 1]; {_PROPORTION}"),
        (float("inf"), f"threshold=inf is NaN or infinite, not a number in [0, 1]; {_PROPORTION}"),
        (True, f"threshold=True is not a number (a bool, which would silently count as 0 or 1 voxel); {_NOT_A_NUMBER}"),
        (
            np.bool_(False),
            "threshold=np.False_ is not a number (a bool, which would silently count as 0 or 1 voxel); "
            f"{_NOT_A_NUMBER}",
        ),
        ("0.1", f"threshold='0.1' is not a number; {_NOT_A_NUMBER}"),
        (None, f"threshold=None is not a number; {_NOT_A_NUMBER}"),
    ],
)
def test_check_threshold_messages_in_full(threshold, message):
    with pytest.raises(ParameterError) as err:
        check_threshold(threshold)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("overlap", "threshold", "message"),
    [
        (
            [1, 2],
            0.1,
            "every one of the 2 studies was selected for S (the smallest overlap is 1 of 3 ROI voxels), so there "
            "are no unselected studies to compare with. Raise the threshold above 0.333333.",
        ),
        (
            [1, 2],
            0,
            "every one of the 2 studies was selected for S (the smallest overlap is 1 of 3 ROI voxels), so there "
            "are no unselected studies to compare with. Raise the threshold above 1.",
        ),
        (
            [1, 0],
            0.5,
            "no study selected for S: the largest overlap any of the 2 studies reached is 1 of 3 ROI voxels "
            "(0.3333), and threshold=0.5 needs more than that proportion. Lower the threshold below 0.333333 or "
            "use a larger ROI.",
        ),
        (
            [2, 0],
            3,
            "no study selected for S: the largest overlap any of the 2 studies reached is 2 of 3 ROI voxels "
            "(0.6667), and threshold=3 needs more than that many voxels. Lower the threshold below 2 or use a "
            "larger ROI.",
        ),
    ],
)
def test_select_studies_advice_rounds_to_six_decimals(overlap, threshold, message):
    """The advised threshold is the overlap (a count) or its proportion rounded to 6 decimals (1/3 -> 0.333333)."""
    with pytest.raises(SelectionError) as err:
        select_studies(np.array(overlap), 3, threshold, seed_name="S")
    assert str(err.value) == message
