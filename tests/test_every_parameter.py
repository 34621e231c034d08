"""Every parameter of a seed analysis checked by its numbers.

``q`` and ``prior`` against the loop oracle (tests/reference.py) on synthetic
counts chosen so that an FDR rate off by half changes the surviving voxels, and
on the real sample with a count threshold and the true r = 5 mm sphere;
Benjamini-Hochberg worked by hand (ties, counted values, the ``<=``);
``stats.count_pairs`` on both of its routes; the oracle's own hand-derived
self-check; ``prior`` and ``q`` in the NiMARE preset against NiMARE itself.
Neurosynth's own numbers for thresholds, ``r``, ``select``, ``dtype``,
``layout`` and the Neurosynth preset are in tests/test_golden_neurosynth.py.
"""

from __future__ import annotations

import functools
import warnings

import nibabel as nib
import numpy as np
import pytest
import reference
from conftest import _mni_mask, _oracle_study_maps

import xcoact
from xcoact.stats import neurosynth as stats

pytestmark = pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")

PROB_TOL = 1e-9
Z_TOL = 1e-6
N_SELECTED = N_UNSELECTED = 50


# -- q and prior against the loop oracle, on synthetic counts ---------------------------------------


@functools.cache
def _synthetic():
    """2,000 voxels (a box of the grid) whose counts (a, b) spread the p-values over BH's range.

    The study maps are built from the counts: study ``F{i}`` is active where
    ``a > i``, ``U{i}`` where ``b > i``, so the oracle sees real voxel sets.
    """
    rng = np.random.default_rng(0)
    mask = np.zeros(reference.GRID_SHAPE, dtype=bool)
    mask[30:50, 40:60, 30:35] = True
    voxels = [tuple(int(c) for c in v) for v in np.argwhere(mask)]  # C order, as mask[...] flattens
    heat = rng.beta(0.3, 2.0, size=len(voxels))
    a = rng.binomial(N_SELECTED, heat)
    b = rng.binomial(N_UNSELECTED, heat * 0.5)
    maps = {f"F{i}": {v for v, n in zip(voxels, a) if n > i} for i in range(N_SELECTED)}
    maps.update({f"U{i}": {v for v, n in zip(voxels, b) if n > i} for i in range(N_UNSELECTED)})
    return mask, maps, tuple(f"F{i}" for i in range(N_SELECTED)), a, b


@functools.cache
def _synthetic_oracle(q: float, prior: float) -> dict[str, np.ndarray]:
    mask, maps, selected, _, _ = _synthetic()
    return {k: v[mask] for k, v in reference.coactivation_maps(maps, list(selected), mask, q=q, prior=prior).items()}


def _assert_close_to_oracle(got: dict, want: dict) -> None:
    assert list(got) == list(want), "names (with q and prior) and order"
    for name, ref in want.items():
        values = got[name]
        np.testing.assert_array_equal(values != 0, ref != 0, err_msg=f"{name}: non-zero voxels differ")
        tol = Z_TOL if "_z" in name else PROB_TOL
        assert np.abs(values - ref).max() <= tol, name


@pytest.mark.parametrize("prior", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("q", [0.005, 0.01, 0.02, 0.04, 0.1])
def test_q_and_prior_match_the_oracle(q, prior):
    _, _, _, a, b = _synthetic()
    got = stats.coactivation_maps(a, b, N_SELECTED, N_UNSELECTED, q=q, prior=prior)
    _assert_close_to_oracle(got, _synthetic_oracle(q, prior))


@pytest.mark.parametrize("test", ["uniformity", "association"])
@pytest.mark.parametrize("q", [0.01, 0.02, 0.04])
def test_synthetic_counts_tell_q_from_half_and_one_and_a_half_q(q, test):
    """The oracle comparison above would catch an FDR rate halved or raised by half."""

    def survivors(rate):
        return np.count_nonzero(_synthetic_oracle(rate, 0.5)[f"{test}-test_z_FDR_{rate}"])

    assert survivors(q / 2) < survivors(q) < survivors(q * 1.5)


def test_prior_maps_by_hand():
    # a voxel with a = 3 of 4 selected, b = 1 of 8 unselected: pAgF = 0.75, pAgU = 0.125
    maps = stats.coactivation_maps(np.array([3, 0]), np.array([1, 2]), 4, 8, prior=0.2)
    assert maps["pA_given_pF=0.20"][0] == pytest.approx(0.2 * 0.75 + 0.8 * 0.125)
    assert maps["pFgA_given_pF=0.20"][0] == pytest.approx(0.75 * 0.2 / 0.25)
    assert maps["pFgA"][0] == pytest.approx(0.75 * (4 / 12) / (4 / 12))  # the empirical prior, pF = 1/3
    assert maps["pFgA_given_pF=0.20"][1] == 0.0 and maps["pA_given_pF=0.20"][1] == pytest.approx(0.8 * 0.25)


# -- q, prior, thresholds and r against the oracle, on the real sample --------------------------------


def _seed_vs_oracle(sample_cube, seed, roi, threshold, **kwargs):
    mask = _mni_mask()
    study_maps = _oracle_study_maps()
    selected = reference.select(study_maps, roi, threshold)
    want = reference.coactivation_maps(study_maps, selected, mask, q=kwargs["q"], prior=kwargs["prior"])
    ds = sample_cube.coact.seed(seed, threshold=threshold, **kwargs).compute()
    assert ds.attrs["n_roi"] == len(roi)
    assert sorted(ds["selected_id"].values.tolist()) == sorted(selected)
    _assert_close_to_oracle(
        {n: ds[n].transpose("x", "y", "z").values[mask] for n in ds.coact.maps}, {n: v[mask] for n, v in want.items()}
    )
    return ds


def test_count_threshold_q_and_prior_match_the_oracle_on_the_sample(sample_cube):
    path = xcoact.datasets.sgacc_roi_path()
    roi = reference.roi_from_image(np.asarray(nib.load(path).dataobj, dtype=float), _mni_mask())
    ds = _seed_vs_oracle(sample_cube, path, roi, 5, q=0.02, prior=0.25)
    assert ds.attrs["threshold_kind"] == "count" and ds.attrs["q"] == 0.02 and ds.attrs["prior"] == 0.25


def test_true_sphere_radius_q_and_prior_match_the_oracle_on_the_sample(sample_cube):
    """r = 5 mm: the true sphere of 81 voxels (Neurosynth's would be smaller; docs/neurosynth.md)."""
    roi = reference.roi_from_coords([[0, 20, 28]], 5, _mni_mask())
    assert len(roi) == 81
    ds = _seed_vs_oracle(sample_cube, [[0, 20, 28]], roi, 0.05, r=5, q=0.04, prior=0.7)
    assert ds.attrs["seed_r"] == 5.0


# -- Benjamini-Hochberg by hand ----------------------------------------------------------------------

# q = 0.25 and m = 4 make every k q / m exact in binary: 0.0625, 0.125, 0.1875, 0.25
BH_CASES = [
    # p_(1) equals its bound 1 q / m exactly: kept by <=, lost by <
    ([0.0625, 0.5, 0.75, 1.0], 0.25, None, 0.0625),
    # step-up: p_(1) and p_(2) miss their bounds, p_(3) meets its own, so all three survive
    ([0.07, 0.13, 0.18, 0.9], 0.25, None, 0.18),
    # a tie: the first 0.12 misses rank 1's bound (0.0625), the second meets rank 2's; both survive
    ([0.9, 0.12, 0.12, 0.9], 0.25, None, 0.12),
    # ... and a tie exactly at its bound (rank 2: 0.125)
    ([0.9, 0.125, 0.125, 0.9], 0.25, None, 0.125),
    # the same maps given as distinct values and voxel counts: the last rank of a run decides
    ([0.12, 0.9], 0.25, [2, 2], 0.12),
    ([0.125, 0.9], 0.25, [2, 2], 0.125),
    # three voxels at 0.2: rank 1 (0.0625) and 2 (0.125) fail, rank 3 (0.1875 < 0.2) fails too
    ([0.2, 0.9], 0.25, [3, 1], -1.0),
    # ... at 0.18 rank 3 (0.1875) holds, so all three survive (the first rank alone would say none)
    ([0.18, 0.9], 0.25, [3, 1], 0.18),
    # counted values in any order
    ([0.9, 0.18], 0.25, [1, 3], 0.18),
    # nothing survives: -1, below every p
    ([0.5, 0.6], 0.01, None, -1.0),
    ([], 0.05, None, -1.0),
]


@pytest.mark.parametrize("p, q, counts, expected", BH_CASES)
def test_fdr_threshold_by_hand(p, q, counts, expected):
    got = stats.fdr_threshold(np.array(p, dtype=float), q, None if counts is None else np.array(counts))
    assert got == expected
    if counts is not None:  # the same family voxel by voxel
        assert stats.fdr_threshold(np.repeat(np.array(p, dtype=float), counts), q) == expected


def test_fdr_threshold_agrees_with_the_oracles_bh():
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = np.round(rng.uniform(0, 0.05, size=int(rng.integers(1, 60))) ** 2, 5)  # rounding makes ties
        q = float(rng.choice([0.01, 0.05, 0.2]))
        want = reference._bh_threshold(p.tolist(), q)
        assert stats.fdr_threshold(p, q) == (-1.0 if want is None else want)
        values, counts = np.unique(p, return_counts=True)
        assert stats.fdr_threshold(values, q, counts) == (-1.0 if want is None else want)


# -- count_pairs: the lookup table and, past 2**23 entries, the sort -------------------------------


def _pairs_by_definition(a, b):
    pairs = sorted(set(zip(a.tolist(), b.tolist())), key=lambda ab: (ab[0] + ab[1], ab[0]))
    where = {ab: i for i, ab in enumerate(pairs)}
    inverse = np.array([where[ab] for ab in zip(a.tolist(), b.tolist())])
    counts = np.bincount(inverse, minlength=len(pairs))
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), inverse, counts


def _assert_pairs(a, b):
    ua, ub, inverse, counts = stats.count_pairs(a, b)
    want = _pairs_by_definition(a, b)
    for got, exp, what in zip((ua, ub, inverse, counts), want, ("ua", "ub", "inverse", "counts")):
        np.testing.assert_array_equal(got, exp, err_msg=what)
    np.testing.assert_array_equal(ua[inverse], a)
    np.testing.assert_array_equal(ub[inverse], b)


def test_count_pairs_past_two_to_the_23_entries():
    """Counts as in a 30,000-study database: a table of (max a + b + 1) x (max a + 1) > 2**23 entries."""
    a = np.array([0, 2900, 5, 2900, 7, 0, 5, 1200], dtype=np.int64)
    b = np.array([0, 100, 7, 100, 5, 3000, 7, 26000], dtype=np.int64)
    assert (int((a + b).max()) + 1) * (int(a.max()) + 1) > 2**23
    _assert_pairs(a, b)


def test_count_pairs_sort_route_forced(monkeypatch):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 40, size=5000)
    b = rng.integers(0, 90, size=5000)
    table = stats.count_pairs(a, b)
    _assert_pairs(a, b)
    monkeypatch.setattr(stats, "_PAIR_TABLE_MAX", 0)
    forced = stats.count_pairs(a, b)
    for x, y in zip(table, forced):
        np.testing.assert_array_equal(x, y)
    _assert_pairs(a, b)
    # and the maps from the sort route are the maps
    maps = stats.coactivation_maps(a, b, 40, 90, q=0.05, prior=0.3)
    monkeypatch.undo()
    for name, values in stats.coactivation_maps(a, b, 40, 90, q=0.05, prior=0.3).items():
        np.testing.assert_array_equal(maps[name], values, err_msg=name)


# -- the oracle's own check ----------------------------------------------------------------------


def test_oracle_self_check(capsys):
    """tests/reference.py's hand-derived values (offset counts, a three-study example, BH by hand)."""
    reference._self_check_small()
    assert capsys.readouterr().out.rstrip().endswith("small self-check OK")


# -- the NiMARE preset: prior reaches NiMARE's maps, q has no role --------------------------------


@pytest.fixture(scope="module")
def nimare_run():
    import logging

    from nimare.dataset import Dataset
    from nimare.meta.cbma.mkda import MKDAChi2
    from test_nimare_preset import _nimare_dict

    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dset = Dataset(_nimare_dict(xcoact.datasets.sample_database_path()))
            roi = xcoact.datasets.amygdala_roi_path()
            ids = dset.get_studies_by_mask(nib.load(roi))
            rest = sorted(set(dset.ids) - set(ids))
            result = MKDAChi2(kernel__r=10, prior=0.3).fit(dset.slice(ids), dset.slice(rest))
    finally:
        logging.disable(logging.NOTSET)
    return roi, ids, result


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nimare_preset_prior_and_q(nimare_run):
    roi, ids, result = nimare_run
    db = xcoact.read_database(xcoact.datasets.sample_database_path())
    act = xcoact.activations(db, preset="nimare")
    maps = act.coact.seed(roi, prior=0.3).compute()
    assert {f"{s}-1" for s in maps["selected_id"].values} == set(ids)
    grid_mask = maps["brain_mask"].values
    for name in ("prob_desc-AgF_prior", "prob_desc-FgA_prior", "z_desc-association"):
        got = maps[name].values[grid_mask]
        theirs = result.maps[name].astype(np.float64)
        assert np.array_equal(np.isnan(got), np.isnan(theirs)), name
        assert np.nanmax(np.abs(got - theirs)) <= 1e-5, name
    default = act.coact.seed(roi).compute()
    assert not np.allclose(
        default["prob_desc-FgA_prior"].values[grid_mask], maps["prob_desc-FgA_prior"].values[grid_mask], equal_nan=True
    ), "prior changes the prior maps"
    other_q = act.coact.seed(roi, prior=0.3, q=0.2).compute()
    for name in maps.coact.maps:  # NiMARE's FDR maps are adjusted p-values: q has no role
        np.testing.assert_array_equal(other_q[name].values, maps[name].values, err_msg=name)
