"""ALE Monte Carlo inference against NiMARE 0.22.1 (issue 13, points 4-5): FWE, subtraction, SCALE.

Monte Carlo runs cannot agree draw for draw, so the nulls are compared as
distributions (two-sample Kolmogorov-Smirnov on the per-iteration maxima) and
thresholds within Monte Carlo error; the deterministic parts are compared
exactly: the cluster-forming threshold, the observed difference map, and the
corrected maps computed from NiMARE's own null arrays.  The data are NiMARE's
Sleuth test file of 21 experiments (tests/data), read by xcoact's reader.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from nimare.correct import FWECorrector
from nimare.io import convert_sleuth_to_dataset
from nimare.meta.cbma.ale import ALE, SCALE, ALESubtraction
from nimare_support import NIMARE_MARKS, grid_of, quiet_nimare  # noqa: F401 (an autouse fixture)
from scipy import stats

from xcoact.errors import ParameterError
from xcoact.readers import read_database
from xcoact.space import Grid
from xcoact.stats import ale, ale_null
from xcoact.table import study_index

DATA = os.path.join(os.path.dirname(__file__), "data")
SEMANTIC = os.path.join(DATA, "semantic_knowledge_children.txt")
N_ITER = 200

pytestmark = NIMARE_MARKS


class Semantic:
    """The Sleuth file as NiMARE reads it and as xcoact reads it, studies in NiMARE's (sorted-id) order."""

    def __init__(self):
        self.dset = convert_sleuth_to_dataset(SEMANTIC)
        img = self.dset.masker.mask_img
        self.grid = grid_of(img)
        table = read_database(SEMANTIC)
        studies, codes = study_index(table["study_id"].values)
        self.ids = [f"{s}-analysis_1" for s in studies]  # NiMARE's ids of this file's experiments
        order = np.argsort(self.ids)
        assert [self.ids[s] for s in order] == sorted(self.dset.ids)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        self.study = rank[codes]  # code = position in NiMARE's sorted order
        self.xyz = np.column_stack([table[c].values for c in "xyz"])
        self.ijk = self.grid.xyz_to_ijk(self.xyz)
        self.n = np.array([table["sample_size"].values[self.study == s][0] for s in range(order.size)])
        self.sorted_ids = sorted(self.dset.ids)

    def subset(self, codes):
        """Foci, study codes 0..k-1 and sizes of the given studies (codes in NiMARE's order)."""
        codes = np.asarray(sorted(codes))
        keep = np.isin(self.study, codes)
        return self.ijk[keep], np.searchsorted(codes, self.study[keep]), self.n[codes]

    def ma(self, codes):
        ijk, study, n = self.subset(codes)
        return [ale.study_ma(ijk[study == s], self.grid, sample_size=n[s]) for s in range(len(codes))]


@pytest.fixture(scope="module")
def data():
    return Semantic()


@pytest.fixture(scope="module")
def nimare_fwe(data):
    est = ALE(random_state=0)
    result = est.fit(data.dset)
    corrected = FWECorrector(method="montecarlo", n_iters=N_ITER, voxel_thresh=0.001).transform(result)
    return est, result, corrected


@pytest.fixture(scope="module")
def ours_fwe(data):
    return ale_null.ale_fwe(data.ijk, data.study, data.grid, sample_size=data.n, n_iter=N_ITER, seed=11, n_workers=2)


NULLS = ("values_level-voxel", "values_desc-size_level-cluster", "values_desc-mass_level-cluster")
MAPS = (
    "logp_level-voxel",
    "z_level-voxel",
    "logp_desc-size_level-cluster",
    "z_desc-size_level-cluster",
    "logp_desc-mass_level-cluster",
    "z_desc-mass_level-cluster",
)


# -- FWE ------------------------------------------------------------------------------------------


def test_cluster_forming_threshold_is_nimares(data, nimare_fwe, ours_fwe):
    est, _, _ = nimare_fwe
    assert ours_fwe["threshold"] == float(est._p_to_summarystat(0.001))
    assert 0 < ours_fwe["threshold"] < ours_fwe["stat"].max()
    bins, weights = ale.ale_null(data.ma(range(len(data.n))), data.grid.n_mask)
    for p in (0.01, 0.001, 0.0001):
        assert ale_null.cluster_threshold(bins, weights, p) == float(est._p_to_summarystat(p))


def test_fwe_nulls_agree_with_nimares_in_distribution(nimare_fwe, ours_fwe):
    """Two-sample KS on each null (200 iterations each), and the 95th percentiles within Monte Carlo error."""
    est = nimare_fwe[2].estimator
    for name in NULLS:
        theirs = est.null_distributions_[f"{name}_corr-fwe_method-montecarlo"]
        ours = ours_fwe[name]
        assert ours.dtype == np.float32 and ours.shape == (N_ITER,)
        assert stats.ks_2samp(ours, theirs).pvalue > 0.001, name
        # the 95th percentile (the FWE threshold at 0.05): within a distribution-free band of order statistics
        # of theirs (3.3 binomial SEs, widened by sqrt(2) since both are estimates)
        half = 3.3 * np.sqrt(2 * N_ITER * 0.95 * 0.05)
        lo, hi = np.sort(theirs)[[int(N_ITER * 0.95 - half), min(N_ITER - 1, int(N_ITER * 0.95 + half))]]
        assert lo <= np.quantile(ours, 0.95) <= hi, name
    assert (ours_fwe["values_desc-size_level-cluster"] > 0).mean() > 0.9  # clusters form in most iterations


def test_corrected_maps_from_nimares_null_are_nimares_maps(data, nimare_fwe, ours_fwe):
    """The deterministic half: NiMARE's null arrays through fwe_maps give NiMARE's corrected maps."""
    est, result, corrected = nimare_fwe
    null = {name: corrected.estimator.null_distributions_[f"{name}_corr-fwe_method-montecarlo"] for name in NULLS}
    stat = result.get_map("stat", return_type="array")
    assert np.array_equal(ours_fwe["stat"], stat.astype(np.float64))
    maps = ale_null.fwe_maps(stat, data.grid, null, ours_fwe["threshold"])
    assert set(maps) == set(MAPS)
    for name in MAPS:
        theirs = corrected.get_map(f"{name}_corr-FWE_method-montecarlo", return_type="array")
        np.testing.assert_allclose(maps[name], theirs, rtol=1e-6, atol=1e-6, err_msg=name)
    assert (maps["logp_desc-mass_level-cluster"] > -np.log10(0.05)).sum() > 100  # significant clusters exist


def test_corrected_maps_agree_with_nimares_within_monte_carlo_error(ours_fwe, nimare_fwe):
    corrected = nimare_fwe[2]
    for name in ("logp_level-voxel", "logp_desc-mass_level-cluster"):
        theirs = corrected.get_map(f"{name}_corr-FWE_method-montecarlo", return_type="array") > -np.log10(0.05)
        ours = ours_fwe[name] > -np.log10(0.05)
        assert theirs.sum() > 20 and (ours & theirs).sum() / (ours | theirs).sum() > 0.7, name


def test_fwe_null_is_the_same_however_the_iterations_are_split(data):
    kw = dict(sample_size=data.n, threshold=0.01146, seed=5)
    whole = ale_null.fwe_null(data.ijk, data.study, data.grid, n_iter=24, **kw)
    parts = [ale_null.fwe_null(data.ijk, data.study, data.grid, n_iter=range(a, b), **kw) for a, b in ((0, 7), (7, 24))]
    threaded = ale_null.fwe_null(data.ijk, data.study, data.grid, n_iter=24, n_workers=2, **kw)
    for name in NULLS:
        assert np.array_equal(whole[name], np.concatenate([p[name] for p in parts])), name
        assert np.array_equal(whole[name], threaded[name]), name
    other = ale_null.fwe_null(data.ijk, data.study, data.grid, n_iter=24, **{**kw, "seed": 6})
    assert not np.array_equal(whole["values_level-voxel"], other["values_level-voxel"])


def test_compiled_and_numpy_iterations_give_the_same_bits(data):
    pytest.importorskip("numba")
    kw = dict(sample_size=data.n, threshold=0.01146, seed=2, n_iter=12)
    a = ale_null.fwe_null(data.ijk, data.study, data.grid, engine="numba", **kw)
    b = ale_null.fwe_null(data.ijk, data.study, data.grid, engine="numpy", **kw)
    for name in NULLS:
        assert np.array_equal(a[name], b[name]), name
    # a threshold no iteration reaches: the screened path falls back to the whole map for the maximum
    high = {**kw, "threshold": 0.5, "n_iter": 3}
    a = ale_null.fwe_null(data.ijk, data.study, data.grid, engine="numba", **high)
    b = ale_null.fwe_null(data.ijk, data.study, data.grid, engine="numpy", **high)
    assert np.array_equal(a["values_level-voxel"], b["values_level-voxel"]) and a["values_level-voxel"].min() > 0
    assert (a["values_desc-size_level-cluster"] == 0).all() and (a["values_desc-mass_level-cluster"] == 0).all()
    # and one iteration's whole ALE map, voxel for voxel
    foci = ale_null._Foci(data.ijk, data.study, data.grid, data.n, None)
    for engine in ("numba", "numpy"):
        run = ale_null._Engine(foci, engine)
        idx, stat = run.stat(foci.ijk, run.buffers())
        order = np.argsort(idx)
        dense = np.zeros(data.grid.n_mask)
        dense[idx[order]] = stat[order]
        assert np.array_equal(dense, ale.ale_stat(data.ma(range(len(data.n))), data.grid.n_mask)), engine


def test_cluster_measures_of_a_known_volume():
    """Two face-touching voxels and a diagonal neighbour: sizes by faces only, mass = sum of ALE - threshold."""
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[1:5, 1:5, 1:5] = True
    grid = Grid(mask.shape, np.diag([2.0, 2.0, 2.0, 1.0]), mask)
    stat = np.zeros(grid.n_mask, dtype=np.float32)
    where = {(1, 1, 1): 0.5, (1, 1, 2): 0.4, (2, 2, 3): 0.9, (4, 4, 4): 0.05}
    for ijk, v in where.items():
        stat[grid.mask_index[np.ravel_multi_index(ijk, mask.shape)]] = v
    idx = np.flatnonzero(stat)
    size, mass = ale_null._cluster_measures(idx, stat[idx], 0.1, grid)
    # the largest cluster by size is the pair; by mass the lone 0.9 voxel (0.8 > 0.4 + 0.3)
    assert size == 2 and mass == pytest.approx(0.8, abs=1e-6)
    null = {
        "values_level-voxel": np.float32([0.3, 0.6, 0.95, 0.2]),
        "values_desc-size_level-cluster": np.float32([1, 1, 3, 1]),
        "values_desc-mass_level-cluster": np.float32([0.1, 0.85, 0.65, 0.75]),
    }
    maps = ale_null.fwe_maps(stat, grid, null, 0.1)
    at = {ijk: grid.mask_index[np.ravel_multi_index(ijk, mask.shape)] for ijk in where}
    p = lambda name, ijk: 10 ** -float(maps[name][at[ijk]])  # noqa: E731
    assert p("logp_level-voxel", (2, 2, 3)) == pytest.approx(0.25)  # one of four maxima (0.95) >= 0.9
    assert p("logp_desc-size_level-cluster", (1, 1, 1)) == pytest.approx(0.25)  # size 2 < 3 once
    assert p("logp_desc-mass_level-cluster", (1, 1, 2)) == pytest.approx(0.5)  # mass 0.7 < 0.75, 0.85
    assert p("logp_desc-mass_level-cluster", (2, 2, 3)) == pytest.approx(0.25)  # mass 0.8 < 0.85 only
    assert p("logp_desc-size_level-cluster", (4, 4, 4)) == pytest.approx(0.75)  # below threshold: 1 - 1/n


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_iter": 0}, "n_iter=0; expected an int >= 1 (the number of Monte Carlo iterations)."),
        ({"seed": -1}, "seed=-1; expected an int >= 0 (the same seed gives the same Monte Carlo null)."),
        ({"n_workers": 0}, "n_workers=0; expected an int >= 1 (threads running iterations)."),
        (
            {"sample_size": None},
            (
                "sample_size=None, fwhm=None: give exactly one; the ALE kernel is sized either by a "
                "study's number of subjects (e.g. sample_size=20) or by a fixed width in mm "
                "(e.g. fwhm=10)."
            ),
        ),
        (
            {"sample_size": [10.0, 20.0]},
            "sample_size must be a number > 0 or one per study (3), all finite and > 0; got [10.0, 20.0].",
        ),
        ({"n_iter": range(5, 2)}, "n_iter=range(5, 2); expected a non-empty range(start, stop) with start >= 0."),
    ],
)
def test_fwe_null_inputs_are_checked(kwargs, message):
    grid = Grid((10, 10, 10), np.eye(4))
    ijk, study = np.array([[5, 5, 5], [4, 4, 4], [3, 3, 3]]), np.array([0, 1, 2])
    with pytest.raises(ParameterError) as err:
        ale_null.fwe_null(ijk, study, grid, **{"sample_size": 20, **kwargs})
    assert str(err.value) == message


def test_study_codes_are_checked():
    grid = Grid((10, 10, 10), np.eye(4))
    with pytest.raises(ParameterError) as err:
        ale_null.fwe_null(np.array([[5, 5, 5], [4, 4, 4]]), np.array([0, 2]), grid, sample_size=20, n_iter=1)
    assert str(err.value) == "study codes must run over 0..2 without gaps; code 1 has no focus."
    with pytest.raises(ParameterError, match=r"voxel_thresh=1.5; expected a p-value strictly between 0 and 1"):
        ale_null.ale_fwe(np.array([[5, 5, 5]]), np.array([0]), grid, sample_size=20, voxel_thresh=1.5)


# -- subtraction ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def subtraction(data):
    group1 = list(range(0, len(data.n), 2))
    group2 = list(range(1, len(data.n), 2))
    ids = data.sorted_ids
    sub = ALESubtraction(n_iters=N_ITER, random_state=0)
    theirs = sub.fit(data.dset.slice([ids[s] for s in group1]), data.dset.slice([ids[s] for s in group2]))
    ours = ale_null.ale_subtraction(data.ma(group1), data.ma(group2), data.grid.n_mask, n_iter=N_ITER, seed=3)
    return sub, theirs, ours


def test_subtraction_difference_map_is_nimares_exactly(subtraction):
    _, theirs, ours = subtraction
    diff = theirs.get_map("stat_desc-group1MinusGroup2", return_type="array")
    assert ours["stat_desc-group1MinusGroup2"].dtype == np.float32
    assert np.array_equal(ours["stat_desc-group1MinusGroup2"], diff)
    assert (diff > 0).any() and (diff < 0).any()


def test_subtraction_p_and_z_agree_with_nimares_within_monte_carlo_error(subtraction):
    sub, theirs, ours = subtraction
    p_t = theirs.get_map("p_desc-group1MinusGroup2", return_type="array")
    z_t = theirs.get_map("z_desc-group1MinusGroup2", return_type="array")
    p_o, z_o = ours["p_desc-group1MinusGroup2"], ours["z_desc-group1MinusGroup2"]
    assert p_o.dtype == np.float32 and p_o.min() >= 1 / N_ITER and p_o.max() <= 1 - 1 / N_ITER
    # signs: the side of the null the difference lies on, the same wherever both call it significant
    both = (p_o < 0.05) & (p_t < 0.05)
    assert both.sum() > 50 and (np.sign(z_o[both]) == np.sign(z_t[both])).all()
    # p per voxel: two estimates from 200 draws each (p = 2 q, q a binomial share); they differ by more than
    # 4 standard errors of the difference almost nowhere, and not systematically
    q = np.clip(p_t.astype(np.float64), 1 / N_ITER, 1) / 2
    se = np.sqrt(2) * 2 * np.sqrt(q * (1 - q) / N_ITER)
    assert (np.abs(p_o - p_t) > 4 * se + 2 / N_ITER).mean() < 0.005
    assert abs(float(np.mean(p_o.astype(np.float64) - p_t))) < 0.01
    # voxels significant at 0.05 in both runs among those in either: NiMARE against itself with another seed
    # gives about 0.5 at 200 iterations (the same check for SCALE: 0.49)
    sig_o, sig_t = p_o < 0.05, p_t < 0.05
    assert (sig_o & sig_t).sum() / (sig_o | sig_t).sum() > 0.35
    # the null of the largest |difference| (NiMARE's voxel-level FWE null for the subtraction)
    null_t = sub.null_distributions_["values_level-voxel_corr-fwe_method-montecarlo"]
    assert stats.ks_2samp(ours["values_level-voxel"], null_t).pvalue > 0.001
    np.testing.assert_allclose(ours["logp_desc-group1MinusGroup2"], -np.log10(p_o), rtol=1e-6)


def test_subtraction_is_the_same_with_two_threads(data):
    a = ale_null.ale_subtraction(data.ma([0, 1, 2]), data.ma([3, 4]), data.grid.n_mask, n_iter=10, seed=1)
    b = ale_null.ale_subtraction(data.ma([0, 1, 2]), data.ma([3, 4]), data.grid.n_mask, n_iter=10, seed=1, n_workers=2)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


# -- SCALE ----------------------------------------------------------------------------------------


def test_scale_agrees_with_nimares(data):
    """SCALE on 6 studies against the file's 262 foci as the base rate: stat exact, p within Monte Carlo error."""
    chosen = [0, 3, 5, 8, 12, 17]
    ids = [data.sorted_ids[s] for s in chosen]
    theirs = SCALE(data.xyz, n_iters=N_ITER, random_state=0).fit(data.dset.slice(ids))
    ijk, study, n = data.subset(chosen)
    ours = ale_null.ale_scale(ijk, study, data.grid, data.ijk, sample_size=n, n_iter=N_ITER, seed=4)
    assert np.array_equal(ours["stat"], theirs.get_map("stat", return_type="array").astype(np.float64))
    p_t = 10 ** -theirs.get_map("logp", return_type="array").astype(np.float64)
    p_o = ours["p"]
    assert p_o.min() >= 1 / N_ITER and p_o.max() <= 1 - 1 / N_ITER
    q = np.clip(p_t, 1 / N_ITER, 1 - 1 / N_ITER)
    se = np.sqrt(2 * q * (1 - q) / N_ITER)
    assert (np.abs(p_o - p_t) > 4 * se + 2 / N_ITER).mean() < 0.005
    assert abs(float(np.mean(p_o[ours["stat"] > 0] - p_t[ours["stat"] > 0]))) < 0.02
    # significant at 0.05 in both among those in either: 0.47 here, NiMARE against itself with another seed 0.49
    sig_o, sig_t = p_o < 0.05, p_t < 0.05
    assert sig_t.sum() > 100 and (sig_o & sig_t).sum() / (sig_o | sig_t).sum() > 0.35
    np.testing.assert_allclose(ours["z"], ale.p_to_z(p_o))
    # voxels no study reaches: ALE 0, which every iteration equals or exceeds
    assert (p_o[ours["stat"] == 0] == np.float32(1 - 1 / N_ITER)).all()


def test_scale_base_rate_input_is_checked(data):
    with pytest.raises(ParameterError) as err:
        ale_null.ale_scale(data.ijk, data.study, data.grid, data.xyz, sample_size=data.n, n_iter=2)
    assert str(err.value) == (
        "base_ijk must be a non-empty (m, 3) integer array of the database's foci as voxels; "
        "got float64 of shape (262, 3)."
    )
