"""Tests written to kill the surviving mutants of xcoact/stats/neurosynth.py and xcoact/select.py.

``tox -e mutation`` (docs/mutation.md) lists the mutants the rest of the
suite let through; each test here names what it pins.  The expected values
are worked out by hand or by scipy on small count tables, independently of
xcoact's own vectorised code.  (The FDR threshold, ``q``, ``prior`` and the
pair-table fallback of ``count_pairs`` are pinned by
tests/test_golden_neurosynth.py.)
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from scipy import stats as sstats

import xcoact
from xcoact.errors import DegenerateSeedWarning, SelectionError
from xcoact.stats import neurosynth as stats
from xcoact.table import make_table

# --------------------------------------------------------------------------------------
# stats: the two chi-square tests, p -> z, the nine maps
# --------------------------------------------------------------------------------------


def _pearson_p(a: int, b: int, n_f: int, n_u: int) -> float:
    """scipy's Pearson chi-square (no continuity correction) of the table [[a, b], [n_f - a, n_u - b]]."""
    chi2, p, _, _ = sstats.chi2_contingency([[a, b], [n_f - a, n_u - b]], correction=False)
    return p


def test_one_way_p_by_hand():
    # e = mean(a) = 1 with n = 2 selected: each voxel's chi2 = 1 + 1 = 2
    a = np.array([0, 2])
    expected = sstats.chi2.sf(2.0, 1)
    np.testing.assert_allclose(stats.one_way_p(a, 2), [expected, expected], rtol=1e-13)
    # an explicit expected count replaces the mean: e = 0.5 -> chi2(a=0) = 0.5 + 0.25 / 1.5
    np.testing.assert_allclose(stats.one_way_p(np.array([0]), 2, 0.5), sstats.chi2.sf(0.5 + 0.25 / 1.5, 1), rtol=1e-13)
    # integers in, float64 p out, one per voxel
    p = stats.one_way_p(np.array([0, 1, 2, 3], dtype=np.int32), 3)
    assert p.dtype == np.float64 and p.shape == (4,)
    np.testing.assert_allclose(
        p, sstats.chi2.sf([(a - 1.5) ** 2 / 1.5 + (a - 1.5) ** 2 / 1.5 for a in range(4)], 1), rtol=1e-13
    )


@pytest.mark.parametrize("count", [0, 3])
def test_one_way_p_without_any_deviation_is_1(count):
    """Every voxel at e = 0 or e = n: chi2 is 0/0, taken as no deviation (p = 1), not NaN, and no RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = stats.one_way_p(np.full(5, count), 3)
    assert p.tolist() == [1.0] * 5


@pytest.mark.parametrize(("a", "b", "n_f", "n_u"), [(2, 0, 2, 1), (1, 3, 4, 10), (5, 5, 7, 93), (0, 9, 3, 20)])
def test_two_way_p_equals_scipy(a, b, n_f, n_u):
    expected = _pearson_p(a, b, n_f, n_u)
    for distinct in (False, True):
        got = stats.two_way_p(np.array([a]), np.array([b]), n_f, n_u, distinct=distinct)
        np.testing.assert_allclose(got, [expected], rtol=1e-12)


def test_two_way_p_zero_expected_cells_count_one_each():
    """A voxel active in every study: the second row's expected counts are 0; each such cell adds 1.0 (Neurosynth)."""
    # table [[2, 1], [0, 0]]: first row terms 0, two empty cells -> chi2 = 2 (0/0 there: no RuntimeWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = stats.two_way_p(np.array([2]), np.array([1]), 2, 1)
    assert got[0] == sstats.chi2.sf(2.0, 1)
    # and a voxel no study activates: chi2 = 2 as well
    assert stats.two_way_p(np.array([0]), np.array([0]), 2, 1)[0] == sstats.chi2.sf(2.0, 1)


def test_two_way_p_repeated_pairs_same_bits_as_distinct():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, 500)
    b = rng.integers(1, 30, 500)  # no empty row: scipy refuses zero expected counts
    per_voxel = stats.two_way_p(a, b, 6, 60)
    assert per_voxel.shape == (500,)
    expected = np.array([_pearson_p(i, j, 6, 60) for i, j in zip(a, b)])
    np.testing.assert_allclose(per_voxel, expected, rtol=1e-10)
    np.testing.assert_array_equal(per_voxel, stats.two_way_p(a, b, 6, 60, distinct=True))


def test_p_to_z_by_hand():
    p = np.array([0.05, 1.0, 0.0, 1e-300, 3e-240, 1.5e-240])
    sign = np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0])
    z = stats.p_to_z(p, sign)
    floor = abs(sstats.norm.ppf(1e-240))
    np.testing.assert_allclose(z[0], sstats.norm.isf(0.025), rtol=1e-14)  # two-tailed
    assert z[1] == 0.0
    assert z[2] == floor and z[3] == -floor  # p floored at 1e-240, sign kept
    np.testing.assert_allclose(z[4], abs(sstats.norm.ppf(1.5e-240)), rtol=1e-14)  # p / 2 above the floor
    assert z[5] == floor  # p above the floor, p / 2 below it: floored again
    assert stats.P_FLOOR == 1e-240
    assert stats.p_to_z(np.array([0.2]), np.array([0.0]))[0] == 0.0


def test_map_names_follow_q_and_prior_formatting():
    names = stats.map_names(0.05, 0.25)
    assert names == [
        "pA",
        "pAgF",
        "pFgA",
        "pA_given_pF=0.25",
        "pFgA_given_pF=0.25",
        "uniformity-test_z",
        "association-test_z",
        "uniformity-test_z_FDR_0.05",
        "association-test_z_FDR_0.05",
    ]
    assert stats.map_names() == stats.map_names(0.01, 0.5)


def _by_hand(a: int, b: int, n_f: int, n_u: int, e: float) -> dict[str, float]:
    """One voxel's seven unthresholded maps from SPEC section 6, written out (q = 0.01, prior = 0.5)."""
    n = n_f + n_u
    if a + b == 0:
        return dict.fromkeys(stats.map_names()[:7], 0.0)
    p_a, p_agf, p_agu = (a + b) / n, a / n_f, b / n_u
    out = {"pA": p_a, "pAgF": p_agf, "pFgA": p_agf * (n_f / n) / p_a}
    out["pA_given_pF=0.50"] = 0.5 * p_agf + 0.5 * p_agu
    out["pFgA_given_pF=0.50"] = p_agf * 0.5 / out["pA_given_pF=0.50"]
    chi_uni = (a - e) ** 2 / e + ((n_f - a) - (n_f - e)) ** 2 / (n_f - e)
    out["uniformity-test_z"] = math.copysign(sstats.norm.isf(sstats.chi2.sf(chi_uni, 1) / 2), a - e) if a != e else 0.0
    p_assoc = _pearson_p(a, b, n_f, n_u) if a + b < n else sstats.chi2.sf(2.0, 1)
    sign = np.sign(p_agf - p_agu)
    out["association-test_z"] = sign * sstats.norm.isf(p_assoc / 2)
    return out


def test_coactivation_maps_by_hand():
    """Eight voxels with hand-checkable counts, a dead voxel and a repeated pair among them."""
    a = np.array([0, 3, 1, 0, 3, 2, 3, 1])
    b = np.array([0, 1, 0, 7, 9, 2, 1, 4])
    n_f, n_u = 3, 9
    e = a.mean()
    maps = stats.coactivation_maps(a, b, n_f, n_u)
    assert list(maps) == stats.map_names()
    for i in range(a.size):
        expected = _by_hand(int(a[i]), int(b[i]), n_f, n_u, e)
        for name, value in expected.items():
            assert maps[name][i] == pytest.approx(value, rel=1e-12, abs=1e-300), (name, i)
    for name, values in maps.items():
        assert values.dtype == np.float64 and values.shape == a.shape
        assert values[0] == 0.0, f"{name} is not 0 at the voxel no study activates"
    # voxels 1 and 6 have the same counts: the same numbers, bit for bit
    assert all(maps[name][1] == maps[name][6] for name in maps)
    # with 8 voxels nothing survives BH at q = 0.01 but the strongest: the FDR maps are the z maps there or 0
    for test in ("uniformity", "association"):
        z, fdr = maps[f"{test}-test_z"], maps[f"{test}-test_z_FDR_0.01"]
        assert np.all((fdr == 0) | (fdr == z))


def test_coactivation_maps_every_voxel_active_in_every_study():
    """a = n_F and b = n_U everywhere: the mean is n_F, no deviation, no association, pFgA = n_F / N."""
    maps = stats.coactivation_maps(np.full(4, 2), np.full(4, 6), 2, 6)
    assert maps["pA"].tolist() == [1.0] * 4 and maps["pFgA"].tolist() == [0.25] * 4
    assert maps["uniformity-test_z"].tolist() == [0.0] * 4
    assert maps["association-test_z"].tolist() == [0.0] * 4


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64])
def test_coactivation_maps_counts_of_any_dtype(dtype):
    """Counts arrive as small unsigned ints or as floats (a Dask sum): the maps are those of the int64 counts.

    uint8 counts of 200 + 100 studies would wrap around in ``a + b``; float counts cannot index a lookup table.
    """
    a = np.array([0, 200, 10, 120, 200, 3])
    b = np.array([0, 100, 250, 0, 100, 30])
    expected = stats.coactivation_maps(a, b, 220, 300)
    got = stats.coactivation_maps(a.astype(dtype), b.astype(dtype), 220, 300)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert expected["pA"][1] == 300 / 520


def test_coactivation_maps_warn_nothing_at_voxels_no_study_activates():
    """0/0 at a dead voxel is expected (the maps are set to 0 there): no RuntimeWarning reaches the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps = stats.coactivation_maps(np.array([0, 1, 2]), np.array([0, 3, 1]), 2, 5)
    assert all(v[0] == 0.0 for v in maps.values())


def test_coactivation_maps_names_carry_q_and_prior():
    maps = stats.coactivation_maps(np.array([0, 1, 2]), np.array([0, 3, 1]), 2, 5, q=0.05, prior=0.3)
    assert list(maps) == stats.map_names(0.05, 0.3)


# --------------------------------------------------------------------------------------
# select: the rules' sentences, scores and degenerate-seed reports, on a 5 x 5 x 5 grid
# --------------------------------------------------------------------------------------

#: The three studies of docs/semantics.md: study 1 peaks at the origin, study 2 at the origin and at
#: x = 4, study 3 at (4, 4, 4); 2 mm voxels, kernel r = 2 mm.
_SMALL = xcoact.Grid((5, 5, 5), [[2, 0, 0, -4], [0, 2, 0, -4], [0, 0, 2, -4], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def small_cube():
    peaks = make_table(
        [1, 2, 2, 3], [0, 0, 4, 4], [0, 0, 0, 4], [0, 0, 0, 4], ["MNI"] * 4, database="three studies", fmt="demo"
    )
    return xcoact.activations(peaks, r=2, grid=_SMALL)


_LONG_NAMES = {
    "overlap": "ROI voxels active in each study",
    "peaks_in_roi": "reported peaks of each study inside the ROI",
    "distance": "distance (mm) from each study's nearest peak to the nearest seed coordinate",
}


@pytest.mark.parametrize(
    ("rule", "selection", "score", "values", "extra"),
    [
        (
            dict(threshold=0),
            "overlap: a study's activation covers more than 0 voxels of the 7 ROI voxels (Neurosynth; see docs/semantics.md, 'Selecting studies')",
            "overlap",
            [7, 7, 0],
            {"threshold": 0, "threshold_kind": "count"},
        ),
        (
            dict(threshold=0.5),
            "overlap: a study's activation covers more than a proportion 0.5 of the 7 ROI voxels "
            "(Neurosynth; see docs/semantics.md, 'Selecting studies')",
            "overlap",
            [7, 7, 0],
            {"threshold": 0.5, "threshold_kind": "proportion"},
        ),
        (
            dict(select="focus"),
            "focus: at least one reported peak inside the 7-voxel ROI (NiMARE get_studies_by_mask)",
            "peaks_in_roi",
            [1, 1, 0],
            {},
        ),
        (
            dict(select="distance"),
            "distance: at least one reported peak within 2 mm (inclusive) of a seed coordinate "
            "(Neurosynth 0.3.8 get_studies(peaks=...), NiMARE get_studies_by_coordinate)",
            "distance",
            [0.0, 0.0, math.sqrt(48)],
            {"select_r": 2.0},
        ),
        (
            dict(select="nearest", k=1),
            "nearest: the 1 studies whose nearest reported peak is closest to a seed coordinate "
            "(ties broken by database order)",
            "distance",
            [0.0, 0.0, math.sqrt(48)],
            {"select_k": 1},
        ),
    ],
)
def test_each_rule_states_itself_and_its_score(small_cube, rule, selection, score, values, extra):
    ds = small_cube.coact.seed([[0, 0, 0]], r=2, **rule)
    assert ds.attrs["select"] == rule.get("select", "overlap")
    assert ds.attrs["selection"] == selection
    assert {key: ds.attrs[key] for key in extra} == extra
    assert all(type(ds.attrs[key]) is type(value) for key, value in extra.items())
    for key in {"threshold", "threshold_kind", "select_r", "select_k"} - set(extra):
        assert key not in ds.attrs, key
    assert ds[score].attrs["long_name"] == _LONG_NAMES[score]
    np.testing.assert_allclose(ds[score].values, values, rtol=1e-15)
    # nearest k = 1: the tie at distance 0 goes to the first study in database order
    expected_ids = {"nearest": [1]}.get(rule.get("select"), [1, 2])
    assert ds["selected_id"].values.tolist() == expected_ids


def test_batch_and_contrast_name_their_scores(small_cube):
    batch = small_cube.coact.seed([[0, 0, 0], [4, 4, 4]], r=2, threshold=0.0, separate=True)
    assert batch.attrs["selection"] == (
        "overlap: a study's activation covers more than a proportion 0 of the ROI "
        "voxels (Neurosynth; see docs/semantics.md, 'Selecting studies')"
    )
    assert batch["overlap"].attrs["long_name"] == _LONG_NAMES["overlap"]
    c = small_cube.coact.contrast([[0, 0, 0]], [[4, 4, 4]], r=2, select="distance")
    assert c["distance_a"].attrs["long_name"] == _LONG_NAMES["distance"] + " (seed A)"
    assert c["distance_b"].attrs["long_name"] == _LONG_NAMES["distance"] + " (seed B)"


@pytest.mark.parametrize(
    ("rule", "reason", "advice"),
    [
        (
            dict(threshold=0.9),
            "no study selected; largest overlap 0 of 4 voxels",
            "Check their ROI or lower the threshold.",
        ),
        (
            dict(select="focus"),
            "no study selected; 0 of 3 studies have a peak in the ROI",
            "Check their ROI or the rule's parameters.",
        ),
        (
            dict(select="distance"),
            f"no study selected; nearest peak {math.sqrt(48):.4g} mm, farthest study {math.sqrt(128):.4g} mm",
            "Check their ROI or the rule's parameters.",
        ),
    ],
)
def test_degenerate_seed_of_a_batch_says_why(small_cube, rule, reason, advice):
    with pytest.warns(DegenerateSeedWarning) as record:
        batch = xcoact.seed(small_cube, [[0, 0, 0], [-4, 4, -4]], r=2, separate=True, **rule)
    (w,) = [w for w in record if w.category is DegenerateSeedWarning]
    assert str(w.message) == f"1 of 2 seeds give NaN maps: '-4_4_-4' ({reason}). {advice}"
    assert batch["valid"].values.tolist() == [True, False]


def test_every_study_selected_by_nearest_in_a_batch(small_cube):
    with pytest.warns(DegenerateSeedWarning) as record:
        xcoact.seed(small_cube, [[0, 0, 0], [-4, 4, -4]], r=2, separate=True, select="nearest", k=3)
    (w,) = [w for w in record if w.category is DegenerateSeedWarning]
    assert str(w.message) == (
        "2 of 2 seeds give NaN maps: '0_0_0' (every study selected; k=3 of 3 studies); "
        "'-4_4_-4' (every study selected; k=3 of 3 studies). Check their ROI or the rule's parameters."
    )


def test_degenerate_warning_names_the_first_twenty(small_cube):
    far = [[-4, y, z] for y in range(-4, 5, 2) for z in range(-4, 5, 2)][:21]  # 21 voxels no study reaches
    with pytest.warns(DegenerateSeedWarning) as record:
        xcoact.seed(small_cube, [[0, 0, 0]] + far, r=1, separate=True, threshold=0.0)
    (w,) = [w for w in record if w.category is DegenerateSeedWarning]
    message = str(w.message)
    named = re.findall(r"'(-4_-?\d_-?\d)' \(no study selected; largest overlap 0 of 1 voxels\)", message)
    assert named == ["_".join(str(v) for v in xyz) for xyz in far[:20]]
    assert message.startswith("21 of 22 seeds give NaN maps: '-4_-4_-4' (")
    assert message.endswith("; .... Check their ROI or lower the threshold.")


def test_degenerate_warning_with_exactly_twenty_lists_them_all(small_cube):
    far = [[-4, y, z] for y in range(-4, 5, 2) for z in range(-4, 5, 2)][:20]
    with pytest.warns(DegenerateSeedWarning) as record:
        xcoact.seed(small_cube, [[0, 0, 0]] + far, r=1, separate=True, threshold=0.0)
    (w,) = [w for w in record if w.category is DegenerateSeedWarning]
    assert str(w.message).startswith("20 of 21 seeds give NaN maps: ")
    assert str(w.message).endswith(
        "'-4_2_4' (no study selected; largest overlap 0 of 1 voxels). Check their ROI or lower the threshold."
    )


def test_a_seed_selecting_one_study_is_usable(small_cube):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateSeedWarning)
        batch = xcoact.seed(small_cube, [[0, 0, 0], [4, 4, 4]], r=2, separate=True, select="nearest", k=1)
    assert batch["valid"].values.tolist() == [True, True]
    assert batch["n_selected"].values.tolist() == [1, 1]


def test_focus_every_study_counts_studies_not_peaks(small_cube):
    """Study 2 has two peaks in the ROI, studies 1 and 3 one each: 3 of 3 studies, not 1."""
    with pytest.warns(DegenerateSeedWarning) as record:
        batch = xcoact.seed(small_cube, [[2, 2, 2], [0, 0, 0]], r=6, separate=True, select="focus")
    (w,) = [w for w in record if w.category is DegenerateSeedWarning]
    assert str(w.message) == (
        "1 of 2 seeds give NaN maps: '2_2_2' (every study selected; 3 of 3 studies have a peak "
        "in the ROI). Check their ROI or the rule's parameters."
    )
    assert batch["peaks_in_roi"].values[0].tolist() == [1, 2, 1]
    assert np.issubdtype(batch["peaks_in_roi"].dtype, np.integer)


def test_focus_at_the_first_voxel_and_peaks_outside_the_box():
    """A peak in voxel 0 of the grid counts; a peak outside the grid's box is in no ROI, not in voxel 1."""
    peaks = make_table(
        [1, 2, 3, 3], [0, -4, 100, 4], [0, -4, 0, 4], [0, -4, 0, 4], ["MNI"] * 4, database="corner", fmt="demo"
    )
    with pytest.warns(xcoact.errors.OutOfBoxWarning):
        cube = xcoact.activations(peaks, r=2, grid=_SMALL)
    corner = cube.coact.seed([[-4, -4, -4]], r=1, select="focus")  # the ROI is voxel 0 alone
    assert corner.attrs["n_roi"] == 1
    assert corner["peaks_in_roi"].values.tolist() == [0, 1, 0]
    assert np.issubdtype(corner["peaks_in_roi"].dtype, np.integer)
    with pytest.raises(SelectionError, match=r"none of the 3 studies reports a peak inside the 1 ROI voxels"):
        cube.coact.seed([[-4, -4, -2]], r=1, select="focus")  # voxel 1


def test_matrix_names_degenerate_rois(small_cube):
    with pytest.warns(DegenerateSeedWarning) as record:
        m = small_cube.coact.matrix([[0, 0, 0], [-4, 4, -4], [2, 2, 2]], 0.0, r=1, separate=True)
    (w,) = [w for w in record if w.category is DegenerateSeedWarning]
    assert str(w.message) == (
        "2 of 3 ROIs give NaN phi and z: '-4_4_-4' (active in no study; largest overlap 0 of 1 "
        "voxels); '2_2_2' (active in no study; largest overlap 0 of 1 voxels). Check their ROI or "
        "change the threshold."
    )
    assert m["n_active"].values.tolist() == [2, 0, 0]
    with pytest.warns(DegenerateSeedWarning) as record:
        small_cube.coact.matrix([[0, 0, 0], [0, 0, 2]], 0.0, r=6, separate=True)
    (w,) = [w for w in record if w.category is DegenerateSeedWarning]
    assert "'0_0_0' (active in every study; largest overlap 12 of 117 voxels)" in str(w.message)


# select_studies is public (docs/api.md, "Lower-level modules"); its default seed name is "seed".
@pytest.mark.parametrize(
    ("overlap", "threshold", "message"),
    [
        (
            [0, 0],
            0.1,
            "no study selected for seed: none of the 2 studies has an active voxel in its 10 ROI voxels (largest "
            "overlap 0), so no threshold can select one. Use a larger or different ROI.",
        ),
        (
            [],
            0.1,
            "no study selected for seed: none of the 0 studies has an active voxel in its 10 ROI voxels (largest "
            "overlap 0), so no threshold can select one. Use a larger or different ROI.",
        ),
        (
            [3, 3, 3],
            0,
            "every one of the 3 studies was selected for seed: each covers the same 3 of 10 ROI voxels, so no "
            "threshold can separate selected from unselected studies. Use a different ROI, or a database whose studies differ "
            "there.",
        ),
        (
            [3, 5],
            2,
            "every one of the 2 studies was selected for seed (the smallest overlap is 3 of 10 ROI voxels), so there "
            "are no unselected studies to compare with. Raise the threshold above 3.",
        ),
        (
            [3, 5],
            0.2,
            "every one of the 2 studies was selected for seed (the smallest overlap is 3 of 10 ROI voxels), so "
            "there are no unselected studies to compare with. Raise the threshold above 0.3.",
        ),
    ],
)
def test_select_studies_degenerate_messages(overlap, threshold, message):
    from xcoact.select import select_studies

    with pytest.raises(SelectionError) as err:
        select_studies(np.array(overlap, dtype=np.int64), 10, threshold)
    assert str(err.value) == message


def test_selection_rule_default_seed_name():
    from xcoact.select import check_rule

    with pytest.raises(SelectionError) as err:
        check_rule("focus").select(np.array([0, 0]), 5)
    assert str(err.value) == (
        "no study selected for seed with select='focus': none of the 2 studies reports a peak inside "
        "the 5 ROI voxels. Use a larger ROI, or select='overlap' (sphere coverage)."
    )


def test_degenerate_single_seeds_say_how_to_fix_them(small_cube):
    with pytest.raises(SelectionError) as err:
        small_cube.coact.seed([[2, 2, 2]], r=6, select="focus")
    assert str(err.value) == (
        "every one of the 3 studies reports a peak inside the ROI of seed [[2.0, 2.0, 2.0]] (r=6 mm) "
        "(select='focus'), so there are no unselected studies to compare with. Use a smaller ROI."
    )
    with pytest.raises(SelectionError) as err:
        small_cube.coact.seed([[-4, 4, -4]], r=2, select="distance")
    # nearest peak sqrt(48) = 6.9282 mm: the advice rounds it up to the next 1/1000 mm
    assert str(err.value) == (
        "no study selected for seed [[-4.0, 4.0, -4.0]] (r=2 mm) with select='distance': the nearest "
        "reported peak of the 3 studies is 6.928 mm from the seed, farther than r=2 mm. Raise r to "
        "at least 6.929."
    )


def test_batch_focus_sentence_without_an_roi_size(small_cube):
    batch = small_cube.coact.seed([[0, 0, 0], [4, 4, 4]], r=2, separate=True, select="focus")
    assert batch.attrs["selection"] == "focus: at least one reported peak inside the ROI (NiMARE get_studies_by_mask)"


def test_degenerate_reason_says_which_way():
    from xcoact.select import degenerate_reason

    assert degenerate_reason(np.array([0, 0, 0]), 10, 0.1) == "no study selected; largest overlap 0 of 10 voxels"
    assert degenerate_reason(np.array([5, 7, 9]), 10, 2) == "every study selected; largest overlap 9 of 10 voxels"
    assert degenerate_reason(np.array([1, 7, 9]), 10, 2) is None
    assert degenerate_reason(np.array([0, 3, 0]), 10, 2) is None  # one study selected is usable


def test_count_pairs_of_an_empty_map():
    """No voxel: no pair (the table is sized from ``max(initial=0)``, which an empty map also has)."""
    empty = np.array([], dtype=np.int64)
    ua, ub, inverse, counts = stats.count_pairs(empty, empty)
    assert ua.size == ub.size == inverse.size == counts.size == 0


def test_count_pairs_by_hand():
    a = np.array([1, 0, 1, 2, 0])
    b = np.array([3, 0, 3, 0, 0])
    ua, ub, inverse, counts = stats.count_pairs(a, b)
    assert sorted(zip(ua.tolist(), ub.tolist(), counts.tolist())) == [(0, 0, 2), (1, 3, 2), (2, 0, 1)]
    np.testing.assert_array_equal(ua[inverse], a)
    np.testing.assert_array_equal(ub[inverse], b)
