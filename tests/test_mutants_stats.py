"""The formulas of xcoact/stats/neurosynth.py against independent computations (the mutation run of issue 17).

docs/mutation.md lists the mutants of ``xcoact/stats/neurosynth.py`` that the rest of the
suite let through; the tests here kill them.  Every expected value comes from
scipy (``chi2_contingency``, ``chi2.sf``, ``norm.isf``), from a plain loop over
the voxels (the Benjamini-Hochberg step over every voxel of the map), or from a
table worked out by hand - never from xcoact's own vectorised code - and only
the documented, semantic functions of ``xcoact.stats.neurosynth`` are called, so the
tests hold for any implementation with the same results.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sstats

from xcoact.stats import neurosynth as stats

# --------------------------------------------------------------------------------------
# an independent transcription: the nine maps voxel by voxel, with scipy
# --------------------------------------------------------------------------------------


def _uniformity_chi2(a: float, n_f: int, e: float) -> float:
    """One-way chi-square of the observed (a, n_F - a) against (e, n_F - e); 0 where undefined."""
    if e == 0 or e == n_f:
        return 0.0
    return (a - e) ** 2 / e + (a - e) ** 2 / (n_f - e)


@functools.cache
def _association_chi2(a: int, b: int, n_f: int, n_u: int) -> float:
    """Pearson chi-square of [[a, b], [n_F - a, n_U - b]]; a row no study (or every study) fills adds 1 a cell."""
    if a + b == 0 or a + b == n_f + n_u:
        # one row's expected counts are 0 (1.0 each, Neurosynth); the other row is observed as expected
        return 2.0
    return float(sstats.chi2_contingency([[a, b], [n_f - a, n_u - b]], correction=False)[0])


def _z(p: float, sign: float) -> float:
    return math.copysign(sstats.norm.isf(max(p, 1e-240) / 2), sign) if sign else 0.0


def _bh_keep(p: np.ndarray, q: float) -> np.ndarray:
    """Benjamini-Hochberg over every voxel: keep p <= the largest p_(k) with p_(k) <= k q / m."""
    m = p.size
    s = np.sort(p)
    threshold = -1.0
    for k in range(1, m + 1):
        if s[k - 1] <= k * q / m:
            threshold = s[k - 1]
    return p <= threshold


def _maps_by_scipy(a, b, n_f: int, n_u: int, q: float, prior: float) -> dict[str, np.ndarray]:
    key = (a.tobytes(), b.tobytes(), n_f, n_u, q, prior)
    if key not in _TRANSCRIBED:  # independent of xcoact: once per process (a mutation run calls it per mutant)
        _TRANSCRIBED[key] = _transcribe(a, b, n_f, n_u, q, prior)
    return {name: values.copy() for name, values in _TRANSCRIBED[key].items()}


_TRANSCRIBED: dict[tuple, dict[str, np.ndarray]] = {}


def _transcribe(a, b, n_f: int, n_u: int, q: float, prior: float) -> dict[str, np.ndarray]:
    n = n_f + n_u
    e = float(np.mean(a))
    names = stats.map_names(q, prior)
    out = {name: np.zeros(a.size) for name in names}
    p_uni = np.empty(a.size)
    p_assoc = np.empty(a.size)
    sf = functools.cache(lambda chi2: float(sstats.chi2.sf(chi2, 1)))
    for i, (ai, bi) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        p_uni[i] = sf(_uniformity_chi2(ai, n_f, e))
        p_assoc[i] = sf(_association_chi2(ai, bi, n_f, n_u))
        out[names[5]][i] = _z(p_uni[i], ai - e)
        out[names[6]][i] = _z(p_assoc[i], ai / n_f - bi / n_u)
        if ai + bi == 0:
            continue
        out["pA"][i] = (ai + bi) / n
        out["pAgF"][i] = ai / n_f
        out["pFgA"][i] = (ai / n_f) * (n_f / n) / ((ai + bi) / n)
        out[names[3]][i] = prior * ai / n_f + (1 - prior) * bi / n_u
        out[names[4]][i] = ai / n_f * prior / out[names[3]][i]
    out[names[7]] = np.where(_bh_keep(p_uni, q), out[names[5]], 0.0)
    out[names[8]] = np.where(_bh_keep(p_assoc, q), out[names[6]], 0.0)
    dead = (a + b) == 0
    for name in names:
        out[name][dead] = 0.0  # Neurosynth's min_studies = 1
    return out


def _random_counts(seed: int, n_vox: int, n_f: int, n_u: int):
    """Counts with many repeated pairs, dead voxels, strong and weak coactivation."""
    rng = np.random.default_rng(seed)
    a = rng.binomial(n_f, rng.choice([0.02, 0.1, 0.4], n_vox))
    b = rng.binomial(n_u, rng.choice([0.02, 0.05, 0.1], n_vox))
    a[:3], b[:3] = 0, 0  # voxels no study activates
    a[3], b[3] = n_f, n_u  # a voxel every study activates
    return a, b


CASES = [  # (seed, voxels, n_F, n_U, q, prior)
    (0, 400, 12, 80, 0.01, 0.5),
    (1, 400, 30, 50, 0.05, 0.3),
    (2, 600, 8, 200, 0.2, 0.8),
    (3, 300, 40, 40, 0.1, 0.5),
]


# (the fast by-hand tests first: a mutant fails at its first failing test, and these take milliseconds)

# --------------------------------------------------------------------------------------
# the shared formulas: chi-squares and signs
# --------------------------------------------------------------------------------------


def test_one_way_chi2_by_hand():
    a = np.array([0.0, 1.0, 2.0, 5.0])
    # e = 2, n_F = 5: (a - 2)^2 / 2 + (a - 2)^2 / 3
    np.testing.assert_allclose(
        stats.one_way_chi2(a, 5, 2.0), [4 / 2 + 4 / 3, 1 / 2 + 1 / 3, 0.0, 9 / 2 + 9 / 3], rtol=1e-15
    )
    # a non-integer expected count
    got = stats.one_way_chi2(np.array([3.0]), 4, 0.5)
    assert got[0] == pytest.approx(2.5**2 / 0.5 + 2.5**2 / 3.5, rel=1e-15)


@pytest.mark.parametrize(
    ("a", "n_f", "e"), [([0.0, 0.0], 3, 0.0), ([3.0, 3.0], 3, 3.0), ([1.0, 0.0], 3, 0.0), ([2.0, 3.0], 3, 3.0)]
)
def test_one_way_chi2_not_finite_is_0_without_a_warning(a, n_f, e):
    """e = 0 or e = n_F: 0/0 or x/0, taken as 0 (no deviation can be tested) and not reported as a RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = stats.one_way_chi2(np.array(a), n_f, e)
    assert got.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("a", "b", "n_f", "n_u"), [(3, 1, 5, 9), (0, 7, 4, 20), (4, 0, 4, 20), (2, 3, 10, 15), (1, 9, 2, 9)]
)
def test_two_way_chi2_equals_scipy(a, b, n_f, n_u):
    expected = sstats.chi2_contingency([[a, b], [n_f - a, n_u - b]], correction=False)[0]
    got = stats.two_way_chi2(np.array([a]), np.array([b]), n_f, n_u)
    assert got.dtype == np.float64
    assert got[0] == pytest.approx(expected, rel=1e-13)


def test_two_way_chi2_zero_expected_cells():
    """A row of expected 0 (no study, or every study, active) adds 1.0 per cell, and no RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = stats.two_way_chi2(np.array([0, 3, 0]), np.array([0, 8, 1]), 3, 8)
    assert got[0] == 2.0 and got[1] == 2.0
    assert got[2] == pytest.approx(sstats.chi2_contingency([[0, 1], [3, 7]], correction=False)[0], rel=1e-13)


def test_two_way_chi2_of_integer_counts_is_true_division():
    """Integer (even unsigned 8-bit) counts: no integer division, no wrap-around in n - a."""
    a = np.array([1, 200], dtype=np.uint8)
    b = np.array([2, 10], dtype=np.uint8)
    got = stats.two_way_chi2(a, b, 250, 300)
    for i in range(2):
        expected = sstats.chi2_contingency(
            [[int(a[i]), int(b[i])], [250 - int(a[i]), 300 - int(b[i])]], correction=False
        )[0]
        assert got[i] == pytest.approx(expected, rel=1e-13)


def test_signs_by_hand():
    e = 1.5
    assert stats.uniformity_sign(np.array([0, 1, 2, 3]), e).tolist() == [-1.0, -1.0, 1.0, 1.0]
    assert stats.uniformity_sign(np.array([1, 2]), 2.0).tolist() == [-1.0, 0.0]
    # association: a / n_F against b / n_U, with an exact tie (1/4 = 5/20) -> 0
    assert stats.association_sign(np.array([1, 2, 0]), np.array([5, 5, 1]), 4, 20).tolist() == [0.0, 1.0, -1.0]
    # integer counts are divided exactly (1/3 > 3/10 though 1 // 3 == 3 // 10 == 0)
    assert stats.association_sign(np.array([1]), np.array([3]), 3, 10).tolist() == [1.0]


def test_chi2_and_sign_equal_scipy():
    a = np.array([0, 1, 4, 2, 0, 6])
    b = np.array([0, 3, 2, 9, 5, 40])
    n_f, n_u = 6, 40
    chi2, sign = stats.chi2_and_sign(a, b, n_f, n_u)
    assert chi2.shape == sign.shape == (2, 6)
    assert chi2.dtype == np.float64 and sign.dtype == np.int8
    e = a.mean()
    for i in range(a.size):
        assert chi2[0, i] == pytest.approx(_uniformity_chi2(a[i], n_f, e), rel=1e-13)
        assert chi2[1, i] == pytest.approx(_association_chi2(int(a[i]), int(b[i]), n_f, n_u), rel=1e-13)
    assert sign[0].tolist() == np.sign(a - e).astype(int).tolist()
    assert sign[1].tolist() == np.sign(a / n_f - b / n_u).astype(int).tolist()
    # the p-values of the two tests, bit for bit
    np.testing.assert_array_equal(stats.chi2_sf_1dof(chi2[0]), stats.one_way_p(a, n_f))
    np.testing.assert_array_equal(stats.chi2_sf_1dof(chi2[1]), stats.two_way_p(a, b, n_f, n_u))


def test_chi2_and_sign_with_an_expected_count():
    a = np.array([0, 1, 3])
    chi2, sign = stats.chi2_and_sign(a, np.array([1, 1, 1]), 3, 5, e=2.0)
    np.testing.assert_allclose(chi2[0], [4 / 2 + 4 / 1, 1 / 2 + 1 / 1, 1 / 2 + 1 / 1], rtol=1e-15)
    assert sign[0].tolist() == [-1, -1, 1]


# --------------------------------------------------------------------------------------
# one_way_p, two_way_p, chi2_sf_1dof, fdr_threshold, count_pairs: direct calls
# --------------------------------------------------------------------------------------


def test_chi2_sf_1dof_equals_scipy_in_any_shape():
    chi2 = np.array([[0.0, 1.0, 3.84], [1.0, 10.0, 0.0]])
    got = stats.chi2_sf_1dof(chi2)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, sstats.chi2.sf(chi2, 1), rtol=1e-13)
    np.testing.assert_allclose(stats.chi2_sf_1dof([4, 0]), sstats.chi2.sf([4, 0], 1), rtol=1e-13)


def test_one_way_p_of_an_expected_count_and_the_mean():
    a = np.array([0, 1, 5], dtype=np.int16)
    np.testing.assert_allclose(
        stats.one_way_p(a, 5, 1.0), sstats.chi2.sf([_uniformity_chi2(x, 5, 1.0) for x in (0, 1, 5)], 1), rtol=1e-13
    )
    by_mean = sstats.chi2.sf([_uniformity_chi2(x, 5, 2.0) for x in (0, 1, 5)], 1)  # e = mean(a) = 2
    np.testing.assert_allclose(stats.one_way_p(a, 5), by_mean, rtol=1e-13)


@pytest.mark.parametrize(
    ("p", "q", "counts", "expected"),
    [
        ([0.01, 0.02], 0.02, None, 0.02),  # both at their bound exactly (<=): the larger is the threshold
        ([0.02, 0.01], 0.02, None, 0.02),  # input order does not matter
        ([0.011, 0.5], 0.02, None, -1.0),  # 0.011 > 1 * 0.02 / 2: nothing
        ([0.01, 0.5], 0.02, [1, 1], 0.01),
        ([0.01, 0.5], 0.02, [3, 1], 0.01),  # 0.01 <= 3 * 0.02 / 4
        ([0.012, 0.5], 0.02, [1, 1], -1.0),
        ([0.012, 0.5], 0.02, [3, 1], 0.012),  # the counts raise the rank of the last 0.012 to 3 of m = 4
        ([0.3, 0.03, 0.04], 0.1, [1, 2, 1], 0.04),  # ranks 2 (0.03), 3 (0.04 <= 0.075), 4 (0.3 > 0.1)
    ],
)
def test_fdr_threshold_by_hand_cases(p, q, counts, expected):
    got = stats.fdr_threshold(np.array(p), q, None if counts is None else np.array(counts))
    assert got == expected and isinstance(got, float)


def test_fdr_threshold_of_nothing():
    assert stats.fdr_threshold(np.array([]), 0.05) == -1.0


def test_fdr_threshold_equals_a_loop_over_voxels():
    rng = np.random.default_rng(11)
    p = np.concatenate([rng.uniform(0, 1, 300), rng.uniform(0, 1e-3, 40)])
    p_voxels = np.repeat(p, rng.integers(1, 5, p.size))
    for q in (0.01, 0.05, 0.2):
        keep = _bh_keep(p_voxels, q)
        assert 0 < keep.sum() < p_voxels.size
        assert stats.fdr_threshold(p_voxels, q) == p_voxels[keep].max()
        values, counts = np.unique(p_voxels, return_counts=True)
        assert stats.fdr_threshold(values[::-1], q, counts[::-1]) == p_voxels[keep].max()


def test_count_pairs_recovers_every_voxel():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 20, 1000)
    b = rng.integers(0, 300, 1000)
    ua, ub, inverse, counts = stats.count_pairs(a, b)
    np.testing.assert_array_equal(ua[inverse], a)
    np.testing.assert_array_equal(ub[inverse], b)
    pairs = list(zip(ua.tolist(), ub.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    for (x, y), c in zip(pairs, counts.tolist(), strict=True):
        assert c == int(np.sum((a == x) & (b == y)))


# --------------------------------------------------------------------------------------
# the nine maps of random count tables against the transcription (slower: scipy voxel by voxel)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n_vox", "n_f", "n_u", "q", "prior"), CASES)
def test_coactivation_maps_equal_an_independent_transcription(seed, n_vox, n_f, n_u, q, prior):
    a, b = _random_counts(seed, n_vox, n_f, n_u)
    expected = _maps_by_scipy(a, b, n_f, n_u, q, prior)
    got = stats.coactivation_maps(a, b, n_f, n_u, q=q, prior=prior)
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert got[name].dtype == np.float64 and got[name].shape == (n_vox,)
        np.testing.assert_allclose(got[name], values, rtol=1e-9, atol=0, err_msg=name)
    # the FDR maps keep exactly the voxels BH over every voxel keeps (and some, but not all, of them)
    for test in ("uniformity", "association"):
        fdr = got[f"{test}-test_z_FDR_{q}"]
        kept = fdr != 0
        np.testing.assert_array_equal(kept, expected[f"{test}-test_z_FDR_{q}"] != 0, err_msg=test)


@pytest.mark.parametrize(("seed", "n_vox", "n_f", "n_u", "q", "prior"), CASES)
def test_the_fdr_cases_are_not_trivial(seed, n_vox, n_f, n_u, q, prior):
    """The cases above keep some voxels and drop others with a nonzero z, in both tests (so they test BH)."""
    a, b = _random_counts(seed, n_vox, n_f, n_u)
    expected = _maps_by_scipy(a, b, n_f, n_u, q, prior)
    for test in ("uniformity", "association"):
        z, fdr = expected[f"{test}-test_z"], expected[f"{test}-test_z_FDR_{q}"]
        assert np.any(fdr != 0) and np.any((fdr == 0) & (z != 0)), test


def test_uniformity_fdr_counts_every_voxel_of_a_count():
    """BH's m is the number of voxels, not of distinct counts: many voxels sharing a count lower every bound.

    Eleven voxels: ten at a = 0 (p_0) and one at a = 10 (p_10 < p_0), n_F = 20, e = 10 / 11.  With m = 11
    the lone voxel's bound is q / 11; counted once per distinct value it would be q / 2.
    """
    a = np.array([0] * 10 + [10])
    b = np.full(11, 5)
    n_f, n_u = 20, 20
    e = 10 / 11
    p10 = sstats.chi2.sf(_uniformity_chi2(10, n_f, e), 1)
    p0 = sstats.chi2.sf(_uniformity_chi2(0, n_f, e), 1)
    assert p10 < p0
    q = 1.5 * p10 * 11 / 2  # p10 <= q / 2, p10 > q / 11; and p0 > 11 q / 11 = q
    assert p0 > q
    maps = stats.coactivation_maps(a, b, n_f, n_u, q=q)
    assert maps[f"uniformity-test_z_FDR_{q}"].tolist() == [0.0] * 11
    # with q large enough that p10 <= q / 11, it is kept, and the voxels at a = 0 still are not (p0 > q)
    q2 = 12 * p10
    assert p0 > q2
    maps = stats.coactivation_maps(a, b, n_f, n_u, q=q2)
    fdr = maps[f"uniformity-test_z_FDR_{q2}"]
    assert fdr[-1] == maps["uniformity-test_z"][-1] > 0 and fdr[:-1].tolist() == [0.0] * 10


def test_association_fdr_counts_every_voxel_of_a_pair():
    """The association family is every voxel too: repeated pairs raise the ranks of the pairs above them."""
    a = np.array([6] + [1] * 9)
    b = np.array([2] + [1] * 9)
    n_f, n_u = 8, 40
    p6 = sstats.chi2.sf(_association_chi2(6, 2, n_f, n_u), 1)
    p1 = sstats.chi2.sf(_association_chi2(1, 1, n_f, n_u), 1)
    assert p6 < p1
    q = 1.5 * p6 * 10 / 2  # kept if m were 2 pairs, not with m = 10 voxels
    assert p1 > q
    maps = stats.coactivation_maps(a, b, n_f, n_u, q=q)
    assert maps[f"association-test_z_FDR_{q}"].tolist() == [0.0] * 10
    q2 = 11 * p6
    maps = stats.coactivation_maps(a, b, n_f, n_u, q=q2)
    fdr = maps[f"association-test_z_FDR_{q2}"]
    assert fdr[0] == maps["association-test_z"][0] > 0 and fdr[1:].tolist() == [0.0] * 9


def test_uniformity_fdr_threshold_with_the_largest_p_kept():
    """Every voxel kept: the threshold is the largest p of the map (the last rank), not the first that qualifies."""
    a = np.array([0, 0, 5, 5, 5, 9])
    b = np.array([1, 2, 3, 4, 5, 6])
    maps = stats.coactivation_maps(a, b, 10, 10, q=0.999999)
    z = maps["uniformity-test_z"]
    assert np.all(z != 0)
    np.testing.assert_array_equal(maps["uniformity-test_z_FDR_0.999999"], z)


# --------------------------------------------------------------------------------------
# pair_maps: the maps per distinct pair, and which pair each voxel has
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n_vox", "n_f", "n_u", "q", "prior"), CASES[:2])
def test_pair_maps_are_the_maps_per_distinct_pair(seed, n_vox, n_f, n_u, q, prior):
    a, b = _random_counts(seed, n_vox, n_f, n_u)
    table, inverse = stats.pair_maps(a, b, n_f, n_u, q=q, prior=prior)
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    assert table.shape == (9, len(pairs)) and table.dtype == np.float64
    assert inverse.shape == (n_vox,) and inverse.min() == 0 and inverse.max() == len(pairs) - 1
    # two voxels share a column exactly when they share a pair
    by_pair = {}
    for pair, column in zip(zip(a.tolist(), b.tolist(), strict=True), inverse.tolist(), strict=True):
        assert by_pair.setdefault(pair, column) == column
    assert len(set(by_pair.values())) == len(pairs)
    maps = stats.coactivation_maps(a, b, n_f, n_u, q=q, prior=prior)
    for row, name in enumerate(stats.map_names(q, prior)):
        np.testing.assert_array_equal(table[row, inverse], maps[name], err_msg=name)


def test_pair_maps_by_hand():
    """Three voxels, two pairs: (0, 0) dead, (2, 1) twice; n_F = 2, n_U = 4, prior 0.25."""
    table, inverse = stats.pair_maps(np.array([2, 0, 2]), np.array([1, 0, 1]), 2, 4, q=0.5, prior=0.25)
    assert inverse[0] == inverse[2] != inverse[1]
    dead, pair = table[:, inverse[1]], table[:, inverse[0]]
    assert dead.tolist() == [0.0] * 9
    # pA = 3/6, pAgF = 1, pFgA = 1 * (2/6) / (3/6) = 2/3, pA_given_pF = 0.25 + 0.75 / 4, pFgA_given_pF = 0.25 / that
    np.testing.assert_allclose(pair[:5], [0.5, 1.0, 2 / 3, 0.4375, 0.25 / 0.4375], rtol=1e-15)
    e = 4 / 3
    z_uni = sstats.norm.isf(sstats.chi2.sf(_uniformity_chi2(2, 2, e), 1) / 2)
    z_assoc = sstats.norm.isf(sstats.chi2.sf(_association_chi2(2, 1, 2, 4), 1) / 2)
    np.testing.assert_allclose(pair[5:7], [z_uni, z_assoc], rtol=1e-12)


def test_pair_maps_and_coactivation_maps_default_to_q_001_and_prior_05():
    """The documented defaults: q = 0.01, prior = 0.5 (Neurosynth's), numerically and in the names."""
    a, b = _random_counts(0, 400, 12, 80)
    expected = _maps_by_scipy(a, b, 12, 80, 0.01, 0.5)
    table, inverse = stats.pair_maps(a, b, 12, 80)
    maps = stats.coactivation_maps(a, b, 12, 80)
    assert list(maps) == list(expected) == stats.map_names(0.01, 0.5)
    for row, (name, values) in enumerate(expected.items()):
        np.testing.assert_allclose(table[row, inverse], values, rtol=1e-9, atol=0, err_msg=name)
        np.testing.assert_allclose(maps[name], values, rtol=1e-9, atol=0, err_msg=name)


def test_count_pairs_past_the_table_size():
    """Counts whose (a + b, a) table would pass 2**23 entries (about 10x Neurosynth): same pairs, by sorting."""
    rng = np.random.default_rng(8)
    a = np.concatenate([[0, 3000], rng.integers(0, 3000, 500)])
    b = np.concatenate([[0, 1], rng.integers(0, 200, 500)])
    assert (int((a + b).max()) + 1) * (int(a.max()) + 1) > 2**23
    ua, ub, inverse, counts = stats.count_pairs(a, b)
    assert inverse.shape == a.shape
    np.testing.assert_array_equal(ua[inverse], a)
    np.testing.assert_array_equal(ub[inverse], b)
    pairs = list(zip(ua.tolist(), ub.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    assert counts.tolist() == [int(np.sum((a == x) & (b == y))) for x, y in pairs]


def test_count_pairs_of_no_voxel():
    empty = np.array([], dtype=np.int64)
    assert all(x.size == 0 for x in stats.count_pairs(empty, empty))


@pytest.mark.parametrize("prior", [0.0, 0.5, 1.0])
def test_pair_maps_warn_nothing_at_dead_voxels_and_extreme_priors(prior):
    """0/0 where no study is active (and where prior 0 or 1 empties P(A)) is expected: no RuntimeWarning."""
    a, b = np.array([0, 2, 0, 3]), np.array([0, 0, 4, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table, inverse = stats.pair_maps(a, b, 3, 6, prior=prior)
    assert table[:, inverse[0]].tolist() == [0.0] * 9


def test_pair_maps_of_no_voxel():
    """A map of no voxel has no pair: an empty (9, 0) table (NumPy warns that the mean of nothing is NaN)."""
    empty = np.array([], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table, inverse = stats.pair_maps(empty, empty, 3, 5)
    assert table.shape == (9, 0) and inverse.shape == (0,)


def test_p_to_z_of_float32_p_works_in_float64():
    """Single-precision p (p-values stored as float32) give the z of their exact float64 values, floor included."""
    p32 = np.array([0.0, 1e-30, 3e-7, 0.012345, 0.5, 1.0], dtype=np.float32)
    sign = np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0])
    z = stats.p_to_z(p32, sign)
    assert z.dtype == np.float64
    # Neurosynth floors p, then p / 2, at 1e-240
    p64 = np.maximum(np.maximum(p32.astype(np.float64), 1e-240) / 2, 1e-240)
    expected = [math.copysign(sstats.norm.isf(p), s) for p, s in zip(p64.tolist(), sign.tolist(), strict=True)]
    np.testing.assert_array_equal(z, expected)
