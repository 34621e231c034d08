"""Family-wise error correction (xcoact.fwe) against a null recomputed in the test.

The oracle here redraws the same permutations as ``null_statistics`` (one
``default_rng`` per batch, from ``SeedSequence(seed).spawn(n_batches)``, and
``rng.choice(n_pool, smaller group, replace=False)``), but counts from the
dense cube (``act.values``), computes both chi-squares cell by cell (the
one-way test of SPEC section 6 and a four-cell Pearson 2 x 2), and forms
clusters with ``scipy.ndimage.label`` on the whole volume, positive and
negative effects apart.  Nothing of ``xcoact.fwe`` is reused except the
drawing scheme, which the test has to follow to get the same permutations.
"""

from __future__ import annotations

import math
import os
import warnings

import dask
import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage
from scipy import stats as sstats
from test_contrast import SEED_A, SEED_B, R

import xcoact
from xcoact.errors import ParameterError
from xcoact.stats.components import VoxelLabeller
from xcoact.stats.fwe import TESTS, cluster_labels

DACC = [[0, 20, 28]]
STATS = ("max_chi2", "max_cluster_size", "max_cluster_mass")


# --- the oracle ------------------------------------------------------------------------------------


class DenseOracle:
    """Counts, chi-squares and clusters of any labelling, from the dense cube."""

    def __init__(self, act, mask, cluster_p=0.001, connectivity=26):
        self.mask = mask
        self.studies = act["study"].values
        # (studies, in-mask voxels) as 0/1 float32: counts by a matrix product, exact far beyond 100 studies
        self.active = np.asarray(act.transpose("study", "x", "y", "z").values)[:, mask].astype(np.float32)
        self.chi2_thr = float(sstats.chi2.isf(cluster_p, 1))
        self.z_thr = math.sqrt(self.chi2_thr)
        self.structure = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])

    def statistics(self, selected, pool):
        """chi2 and sign of (uniformity, association) per in-mask voxel; tested voxels."""
        a = (selected.astype(np.float32) @ self.active).astype(np.float64)
        t = (pool.astype(np.float32) @ self.active).astype(np.float64)
        n_f = float(selected.sum())
        n = float(pool.sum())
        n_u = n - n_f
        tested = t >= 1
        chi2 = np.zeros((2, a.size))
        sign = np.zeros((2, a.size))
        # uniformity: observed (a, nF - a) against expected (e, nF - e), e the mean over every in-mask voxel
        e = a.mean()
        if 0 < e < n_f:
            chi2[0] = (a - e) ** 2 / e + ((n_f - a) - (n_f - e)) ** 2 / (n_f - e)
        sign[0] = np.sign(a - e)
        # association: Pearson over the four cells of [[a, b], [nF - a, nU - b]]; a table with an
        # empty margin (no study or every study active) carries no evidence: 0
        b = t - a
        cells = [(a, t, n_f), (b, t, n_u), (n_f - a, n - t, n_f), (n_u - b, n - t, n_u)]
        ok = (t > 0) & (t < n)
        for observed, row, col in cells:
            expected = row[ok] * col / n
            chi2[1, ok] += (observed[ok] - expected) ** 2 / expected
        sign[1] = np.sign(a / n_f - b / n_u)
        chi2[:, ~tested] = 0.0
        sign[:, ~tested] = 0.0
        return chi2, sign, tested

    def clusters(self, chi2, sign):
        """Per sign: (label of each in-mask voxel, 0 outside clusters; count; sizes; masses) of its clusters."""
        out = {}
        for s in (1, -1):
            vol = np.zeros(self.mask.shape, dtype=bool)
            vol[self.mask] = (chi2 > self.chi2_thr) & (sign == s)
            lab, n = ndimage.label(vol, structure=self.structure)
            lab = lab[self.mask]
            sizes = np.bincount(lab, minlength=n + 1)[1:].astype(np.float64)
            masses = np.bincount(lab, weights=np.sqrt(chi2) - self.z_thr, minlength=n + 1)[1:]
            out[s] = (lab, n, sizes, masses)
        return out

    def cluster_maxima(self, chi2, sign):
        """Largest cluster size and mass over both signs (0 without clusters)."""
        found = [c for c in self.clusters(chi2, sign).values() if c[1]]
        return (max((c[2].max() for c in found), default=0.0), max((c[3].max() for c in found), default=0.0))

    def null(self, pool, n_selected, n_iter, seed, batch_size):
        """The (test, iteration, statistic) null maxima of n_iter - 1 permutations."""
        n_perm = n_iter - 1
        sizes = [batch_size] * (n_perm // batch_size) + ([n_perm % batch_size] if n_perm % batch_size else [])
        pool_idx = np.flatnonzero(pool)
        small = min(n_selected, pool_idx.size - n_selected)
        rows = []
        for size, stream in zip(sizes, np.random.SeedSequence(seed).spawn(len(sizes))):
            rng = np.random.default_rng(stream)
            for _ in range(size):
                picked = np.zeros(pool.size, dtype=bool)
                picked[pool_idx[rng.choice(pool_idx.size, small, replace=False)]] = True
                selected = picked if small == n_selected else pool & ~picked
                chi2, sign, _ = self.statistics(selected, pool)
                row = []
                for t in range(2):
                    row.append([chi2[t].max(), *self.cluster_maxima(chi2[t], sign[t])])
                rows.append(row)
        return np.array(rows).transpose(1, 0, 2)


def _corrected(null_values, observed, n_done):
    # (1 + #{null >= observed}) / n_done; the relative slack absorbs the last-bit difference
    # between this test's chi-square formula and the package's on exactly tied (discrete) values
    null_values = np.asarray(null_values)[:, None]
    observed = np.atleast_1d(observed)[None, :]
    return (1 + (null_values >= observed - 1e-9 * np.maximum(1.0, observed)).sum(axis=0)) / n_done


def _observed_groups(ds, studies):
    if "group" in ds:
        group = ds["group"].values
        return group == 1, group > 0
    return np.isin(studies, ds["selected_id"].values), np.ones(studies.size, dtype=bool)


@pytest.fixture(scope="module")
def cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = xcoact.read_database(xcoact.datasets.sample_database_path())
        return xcoact.activations(table, r=6)


@pytest.fixture(scope="module")
def oracle(cube, mni_mask):
    return DenseOracle(cube, mni_mask)


def _cases(cube):
    return {
        "seed": cube.coact.seed(DACC, 0.1, r=10),  # 4 of 100 selected
        "complement": cube.coact.seed(DACC, select="nearest", k=60),  # 60 of 100: the 40 are drawn
        "contrast": cube.coact.contrast(SEED_A, SEED_B, r=R, select="distance", both="a"),  # 18 vs 7
    }


# --- (a) and (b): the null, the p maps, the clusters -----------------------------------------------


@pytest.mark.parametrize(
    "case,n_iter,batch",
    [
        ("seed", 21, 8),  # batches of 8, 8 and 4
        ("complement", 11, 4),  # 4, 4 and 2
        ("contrast", 11, 3),  # 3, 3, 3 and 1
    ],
)
def test_null_and_corrected_maps_equal_the_oracle(cube, oracle, mni_mask, case, n_iter, batch):
    ds = _cases(cube)[case]
    seed = 1234
    out = ds.coact.fwe(n_iter=n_iter, seed=seed, batch_size=batch)
    selected, pool = _observed_groups(ds, oracle.studies)
    n_sel = int(selected.sum())
    if case == "complement":
        assert n_sel > pool.sum() - n_sel
    expected_null = oracle.null(pool, n_sel, n_iter, seed, batch)
    got_null = out["fwe_null"].transpose("fwe_test", "iteration", "fwe_statistic").values
    assert got_null.shape == (2, n_iter - 1, 3)
    assert list(out["fwe_test"].values) == list(TESTS) and list(out["fwe_statistic"].values) == list(STATS)
    np.testing.assert_allclose(got_null, expected_null, rtol=1e-9, atol=1e-9)

    n_done = out.attrs["fwe_n_done"]
    assert n_done == n_iter and out.attrs["fwe_min_p"] == 1 / n_iter and out.attrs["fwe_stopped_early"] == 0
    chi2, sign, tested = oracle.statistics(selected, pool)
    assert out.attrs["fwe_n_tested_voxels"] == int(tested.sum())
    assert out.attrs["fwe_cluster_z"] == pytest.approx(oracle.z_thr, rel=1e-12)
    for t, test in enumerate(TESTS):
        base = f"{test}-test"
        # voxel level
        p_vox = np.ones(tested.size)
        p_vox[tested] = _corrected(expected_null[t, :, 0], chi2[t][tested], n_done)
        got = out[f"{base}_p_FWE-voxel"].transpose("x", "y", "z").values
        np.testing.assert_allclose(got[mni_mask], p_vox, rtol=1e-12)
        assert (got[~mni_mask] == 1).all()
        z = ds[f"{base}_z"].transpose("x", "y", "z").values[mni_mask]
        thr = out[f"{base}_z_FWE-voxel_0.05"].transpose("x", "y", "z").values[mni_mask]
        np.testing.assert_array_equal(thr, np.where(p_vox <= 0.05, z, 0.0))
        # cluster level: the package's cluster numbers partition the voxels as ndimage does, per sign
        labels = out[f"{base}_cluster"].transpose("x", "y", "z").values[mni_mask]
        p_size = np.ones(tested.size)
        p_mass = np.ones(tested.size)
        for s, (lab, n, sizes, masses) in oracle.clusters(chi2[t], sign[t]).items():
            inside = lab > 0
            assert ((labels * s > 0) == inside).all(), "a voxel changed sign or cluster membership"
            # the same partition: each of this test's clusters is exactly one of the package's
            pairs = np.unique(np.column_stack([lab[inside], labels[inside]]), axis=0)
            assert len(pairs) == n == np.unique(labels[inside]).size
            p_size[inside] = _corrected(expected_null[t, :, 1], sizes, n_done)[lab[inside] - 1]
            p_mass[inside] = _corrected(expected_null[t, :, 2], masses, n_done)[lab[inside] - 1]
        for level, p in (("cluster-size", p_size), ("cluster-mass", p_mass)):
            got = out[f"{base}_p_FWE-{level}"].transpose("x", "y", "z").values[mni_mask]
            np.testing.assert_allclose(got, p, rtol=1e-12, err_msg=f"{base} {level}")
            thr = out[f"{base}_z_FWE-{level}_0.05"].transpose("x", "y", "z").values[mni_mask]
            np.testing.assert_array_equal(thr, np.where(p <= 0.05, z, 0.0))
    # the observed maps themselves are passed through unchanged
    for name in ds.coact.maps:
        xr.testing.assert_identical(out[name], ds[name])


def test_the_cases_exercise_clusters_and_significance(cube):
    """Guards the oracle test above against passing vacuously: clusters exist and some voxels survive."""
    out = _cases(cube)["seed"].coact.fwe(n_iter=21, seed=1234, batch_size=8)
    assert (out["uniformity-test_cluster"] > 0).any() and (out["association-test_cluster"] != 0).any()
    assert (out["association-test_p_FWE-cluster-size"] <= 0.05).any()
    assert (out["association-test_z_FWE-cluster-size_0.05"] != 0).any()
    assert (out["fwe_null"].sel(fwe_statistic="max_cluster_size") > 0).all()


def test_meta_contrast_pool_is_its_two_lists(cube, oracle):
    """Regression: fwe on meta(ids, ids2=...) used every study of the cube as the pool."""
    c = cube.coact.contrast(SEED_A, SEED_B, r=R, select="distance")
    m = cube.coact.meta(c["selected_id"].values, ids2=c["selected_b_id"].values)
    kw = dict(n_iter=6, seed=1, batch_size=5)
    fc, fm = c.coact.fwe(**kw), m.coact.fwe(cube, **kw)
    selected, pool = _observed_groups(c, oracle.studies)
    assert fm.attrs["fwe_n_tested_voxels"] == int(oracle.statistics(selected, pool)[2].sum())
    for name in _fwe_vars(fc):
        np.testing.assert_array_equal(fm[name].values, fc[name].values, err_msg=name)


# --- (c) reproducibility across schedulers ---------------------------------------------------------


def _fwe_vars(ds):
    return [n for n in ds.data_vars if "FWE" in n or n.endswith("_cluster") or n == "fwe_null"]


def test_reproducible_and_identical_under_every_scheduler(cube):
    from distributed import Client, LocalCluster

    ds = cube.coact.seed(DACC, 0.1, r=10).compute()
    kw = dict(n_iter=21, seed=7, batch_size=5)
    with dask.config.set(scheduler="synchronous"):
        sync = ds.coact.fwe(**kw)
    with dask.config.set(scheduler="threads"):
        threads = ds.coact.fwe(**kw)
        again = ds.coact.fwe(**kw)
        other = ds.coact.fwe(**{**kw, "seed": 8})
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=40
        ) as cluster,
        Client(cluster) as client,
    ):
        on_cluster = ds.coact.fwe(cube, **kw)
        assert client.status == "running"
    for result in (threads, again, on_cluster):
        for name in _fwe_vars(sync):
            np.testing.assert_array_equal(result[name].values, sync[name].values, err_msg=name)
    assert not np.array_equal(other["fwe_null"].values, sync["fwe_null"].values)
    # no seed: fresh entropy, recorded so the run can be repeated
    fresh = ds.coact.fwe(n_iter=6, batch_size=5)
    repeat = ds.coact.fwe(n_iter=6, batch_size=5, seed=fresh.attrs["fwe_seed"])
    np.testing.assert_array_equal(repeat["fwe_null"].values, fresh["fwe_null"].values)


# --- (d) early stopping --------------------------------------------------------------------------


def test_early_stop_on_a_clearly_null_seed(cube, oracle):
    """One selected study: the exact permutation null is the 100 studies themselves, and this
    study is nowhere near the top 5 % of any statistic, so the first round settles every decision."""
    ds = cube.coact.seed(DACC, select="nearest", k=1)
    n_iter, alpha, batch = 101, 0.05, 5
    full = ds.coact.fwe(n_iter=n_iter, seed=11, batch_size=batch, alpha=alpha)
    early = ds.coact.fwe(n_iter=n_iter, seed=11, batch_size=batch, alpha=alpha, early_stop=True)
    n_done = early.attrs["fwe_n_done"]
    assert early.attrs["fwe_stopped_early"] == 1 and n_done < n_iter and (n_done - 1) % batch == 0
    assert early.attrs["fwe_min_p"] == 1 / n_done and early.attrs["fwe_n_iter"] == n_iter
    # the iterations done are the full run's first ones (one random stream per batch)
    np.testing.assert_array_equal(early["fwe_null"].values, full["fwe_null"].values[:, : n_done - 1])
    # why it could stop: within those iterations, more than alpha * n_iter null maxima already reach
    # the largest observed chi-square and every observed cluster's size and mass
    null = full["fwe_null"].transpose("fwe_test", "iteration", "fwe_statistic").values[:, : n_done - 1]
    selected, pool = _observed_groups(ds, oracle.studies)
    chi2, sign, tested = oracle.statistics(selected, pool)
    for t in range(2):
        assert _corrected(null[t, :, 0], chi2[t][tested].max(), 1)[0] > alpha * n_iter
        clusters = [c for c in oracle.clusters(chi2[t], sign[t]).values() if c[1]]
        assert clusters, "the observed study forms clusters"
        for _, _, sizes, masses in clusters:
            assert (_corrected(null[t, :, 1], sizes, 1) > alpha * n_iter).all()
            assert (_corrected(null[t, :, 2], masses, 1) > alpha * n_iter).all()
    for name in early.data_vars:
        if "_z_FWE-" in name:
            np.testing.assert_array_equal(early[name].values, full[name].values, err_msg=name)
            assert not early[name].values.any()


def test_early_stop_that_cannot_settle_runs_everything(cube):
    """A strong seed at alpha * n_iter = 2: a significant voxel is only settled by the last iteration."""
    ds = cube.coact.seed(DACC, 0.1, r=10)
    kw = dict(n_iter=41, seed=3, batch_size=5)
    full = ds.coact.fwe(**kw)
    early = ds.coact.fwe(**kw, early_stop=True)
    assert (full["association-test_p_FWE-cluster-size"] <= 0.05).any()
    assert early.attrs["fwe_n_done"] == 41 and early.attrs["fwe_stopped_early"] == 0
    for name in _fwe_vars(full):
        np.testing.assert_array_equal(early[name].values, full[name].values, err_msg=name)


# --- (e) clusters: signs apart, connectivity --------------------------------------------------------


@pytest.fixture(scope="module")
def grid():
    return xcoact.space.mni152_2mm()


def _cluster(grid, voxels, connectivity=26, values=None):
    """cluster_labels on a hand-made map: {(i, j, k): +1 or -1} -> {(i, j, k): label}."""
    index = np.full(grid.mask.shape, -1, dtype=np.int64)
    index[grid.mask] = np.arange(grid.n_mask)
    chi2 = np.zeros(grid.n_mask)
    sign = np.zeros(grid.n_mask, dtype=np.int8)
    for v, s in voxels.items():
        assert grid.mask[v], v
        chi2[index[v]] = 20.0 if values is None else values[v]
        sign[index[v]] = s
    labels = cluster_labels(chi2, sign, 10.827566170662733, VoxelLabeller(grid.shape, grid.mask_flat, connectivity))
    assert labels.shape == (grid.n_mask,)
    return {v: int(labels[index[v]]) for v in voxels}


def _block(i0, j0, k0, n, s):
    return {(i, j, k): s for i in range(i0, i0 + n) for j in range(j0, j0 + n) for k in range(k0, k0 + n)}


def test_positive_and_negative_blobs_that_touch_stay_apart(grid):
    pos = _block(40, 60, 35, 2, 1)
    neg = _block(42, 60, 35, 2, -1)  # shares a face with the positive blob
    labels = _cluster(grid, {**pos, **neg})
    assert {labels[v] for v in pos} == {1}
    assert {labels[v] for v in neg} == {-1}
    # the same two blobs with one sign are one cluster
    same = _cluster(grid, {**pos, **dict.fromkeys(neg, 1)})
    assert len(set(same.values())) == 1


@pytest.mark.parametrize(
    "pair,joined",
    [
        (((40, 60, 35), (41, 60, 35)), {6: True, 18: True, 26: True}),  # a face
        (((40, 60, 35), (41, 61, 35)), {6: False, 18: True, 26: True}),  # an edge
        (((40, 60, 35), (41, 61, 36)), {6: False, 18: False, 26: True}),  # a corner
        (((40, 60, 35), (42, 60, 35)), {6: False, 18: False, 26: False}),  # a voxel apart
    ],
)
def test_connectivity(grid, pair, joined):
    for connectivity, together in joined.items():
        labels = _cluster(grid, {pair[0]: 1, pair[1]: 1}, connectivity)
        assert (labels[pair[0]] == labels[pair[1]]) is together, connectivity


def test_cluster_forming_threshold_is_strict(grid):
    thr = 10.827566170662733
    v, w = (40, 60, 35), (41, 60, 35)
    labels = _cluster(grid, {v: 1, w: 1}, values={v: thr, w: np.nextafter(thr, np.inf)})
    assert labels[v] == 0 and labels[w] == 1


@pytest.mark.parametrize("n_voxels", [400, 12000])  # the neighbour-pair route and the full-volume scan
@pytest.mark.parametrize("connectivity", [6, 26])
def test_random_maps_cluster_like_ndimage(grid, n_voxels, connectivity):
    rng = np.random.default_rng(n_voxels + connectivity)
    # a compact box of the brain so that clusters of many shapes form
    inside = np.argwhere(grid.mask[30:60, 40:80, 25:55]) + [30, 40, 25]
    chosen = inside[rng.choice(len(inside), n_voxels, replace=False)]
    voxels = {tuple(int(c) for c in v): int(rng.choice([-1, 1])) for v in chosen}
    labels = _cluster(grid, voxels, connectivity)
    structure = ndimage.generate_binary_structure(3, {6: 1, 26: 3}[connectivity])
    for s in (1, -1):
        vol = np.zeros(grid.shape, dtype=bool)
        for v, sv in voxels.items():
            vol[v] = sv == s
        lab, n = ndimage.label(vol, structure=structure)
        pairs = {(int(lab[v]), labels[v]) for v, sv in voxels.items() if sv == s}
        assert len(pairs) == n == len({p[1] for p in pairs}), "not the same partition as ndimage.label"
        assert all(p[1] * s > 0 for p in pairs)


def test_connectivity_changes_the_null(cube):
    ds = cube.coact.seed(DACC, 0.1, r=10)
    kw = dict(n_iter=6, seed=2, batch_size=5)
    c26 = ds.coact.fwe(**kw)
    c6 = ds.coact.fwe(**kw, connectivity=6)
    assert c6.attrs["fwe_connectivity"] == 6
    # the same voxel maxima, and never larger clusters with fewer neighbours
    np.testing.assert_array_equal(c6["fwe_null"].values[:, :, 0], c26["fwe_null"].values[:, :, 0])
    assert (c6["fwe_null"].values[:, :, 1] <= c26["fwe_null"].values[:, :, 1]).all()
    assert (c6["fwe_null"].values[:, :, 1] < c26["fwe_null"].values[:, :, 1]).any()


# --- (f) Bonferroni -------------------------------------------------------------------------------


def test_bonferroni(cube, oracle, mni_mask):
    ds = cube.coact.seed(DACC, 0.1, r=10)
    out = ds.coact.fwe(n_iter="bonferroni", alpha=0.01)
    selected, pool = _observed_groups(ds, oracle.studies)
    chi2, _, tested = oracle.statistics(selected, pool)
    m = int(tested.sum())
    assert out.attrs["fwe_method"] == "bonferroni" and out.attrs["fwe_n_tested_voxels"] == m
    for t, test in enumerate(TESTS):
        expected = np.ones(tested.size)
        expected[tested] = np.minimum(1.0, sstats.chi2.sf(chi2[t][tested], 1) * m)
        got = out[f"{test}-test_p_bonferroni"].transpose("x", "y", "z").values
        np.testing.assert_allclose(got[mni_mask], expected, rtol=1e-9, atol=1e-300)
        assert (got[~mni_mask] == 1).all()
        z = ds[f"{test}-test_z"].transpose("x", "y", "z").values[mni_mask]
        thr = out[f"{test}-test_z_bonferroni_0.01"].transpose("x", "y", "z").values[mni_mask]
        np.testing.assert_array_equal(thr, np.where(got[mni_mask] <= 0.01, z, 0.0))
        assert (thr != 0).any() and (expected < 1).any() and (expected == 1).any()


# --- (g) parameter errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(n_iter=1), r"n_iter=1 is not valid; expected an int >= 2 \(e\.g\. n_iter=1000\)\."),
        (dict(n_iter=2.5), r"n_iter=2\.5 is not valid; expected an int >= 2"),
        (dict(n_iter=True), r"n_iter=True is not valid"),
        (
            dict(n_iter="holm"),
            r"n_iter='holm' is not known; expected a number of iterations \(e\.g\. 1000\) or 'bonferroni'\.",
        ),
        (
            dict(alpha=0),
            r"alpha=0 is not valid; expected a probability strictly between 0 and 1 \(e\.g\. alpha=0\.05\)\.",
        ),
        (dict(alpha=1.5), r"alpha=1\.5 is not valid; expected a probability strictly between 0 and 1"),
        (dict(alpha=True), r"alpha=True is not valid"),
        (dict(cluster_p=1.0), r"cluster_p=1\.0 is not valid; expected a probability strictly between 0 and 1"),
        (dict(connectivity=8), r"connectivity=8 is not valid; expected 6 \(faces\), 18 \(edges\) or 26 \(corners\)\."),
        (dict(batch_size=0), r"batch_size=0 is not valid; expected an int >= 1"),
        (dict(seed=-1), r"seed=-1 is not valid; expected an int >= 0"),
    ],
)
def test_parameter_errors(cube, kwargs, message):
    ds = cube.coact.seed(DACC, 0.1, r=10)
    with pytest.raises(ParameterError, match=message):
        ds.coact.fwe(**{"n_iter": 5, **kwargs})


def test_batches_are_refused(cube):
    batch = cube.coact.seed([[0, 20, 28], [-40, 20, 28]], 0.1, r=10, separate=True)
    with pytest.raises(
        ParameterError, match=r"fwe needs the result of one seed .*for a batch, run it per seed: maps\.isel\(seed=i\)"
    ):
        batch.coact.fwe(n_iter=5)
    with pytest.raises(ParameterError, match=r"fwe= applies to one seed at a time"):
        cube.coact.seed([[0, 20, 28], [-40, 20, 28]], 0.1, r=10, separate=True, fwe=5)


def test_missing_z_map_is_named(cube):
    ds = cube.coact.seed(DACC, 0.1, r=10).drop_vars("association-test_z")
    with pytest.raises(
        ParameterError, match=r"the maps have no z map of the association test \('association-test_z'\)"
    ):
        ds.coact.fwe(n_iter=5)


def _cube_r8():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(xcoact.datasets.sample_database_path(), r=8)


def test_maps_read_from_a_file_ask_for_act(tmp_path):
    act = _cube_r8()
    maps = act.coact.seed(DACC, 0.1, r=10).compute()
    expected = maps.coact.fwe(n_iter=6, seed=5, batch_size=5)  # the maps carry their cube in memory
    path = maps.coact.to_netcdf(tmp_path / "maps.nc")
    with xr.open_dataset(path) as from_file:
        loaded = from_file.load()
    with pytest.raises(
        ParameterError,
        match=(
            r"these maps no longer carry it .*pass it: "
            r"maps\.coact\.fwe\(act=xcoact\.activations\(db, \.\.\.\), n_iter=1000\)"
        ),
    ):
        loaded.coact.fwe(n_iter=6, seed=5)
    got = loaded.coact.fwe(_cube_r8(), n_iter=6, seed=5, batch_size=5)
    np.testing.assert_array_equal(got["fwe_null"].values, expected["fwe_null"].values)


def test_fwe_refuses_a_cube_the_maps_did_not_come_from(cube):
    maps = _cube_r8().coact.seed(DACC, 0.1, r=10)
    for other in (cube, _cube_r8().isel(study=slice(0, 50))):  # another radius; a subset of the studies
        with pytest.raises(ParameterError, match=r"act is not the cube these maps were computed from"):
            maps.coact.fwe(other, n_iter=6)
    # the same cube rechunked or transposed is the same cube
    same = _cube_r8().chunk({"study": 30}).transpose("z", "study", "y", "x")
    assert maps.coact.fwe(same, n_iter="bonferroni").attrs["fwe_method"] == "bonferroni"


def test_fwe_aligns_reordered_maps_by_label(cube):
    """Sorted, transposed maps are corrected voxel by voxel where they are, never mirrored."""
    maps = cube.coact.seed(DACC, 0.1, r=10).compute()
    want = maps.coact.fwe(n_iter="bonferroni")
    moved = maps.sortby("x").transpose("z", "y", "x", ...)
    got = moved.coact.fwe(n_iter="bonferroni")
    for name in ("association-test_p_bonferroni", "uniformity-test_p_bonferroni"):
        np.testing.assert_array_equal(got[name].transpose("x", "y", "z").sel(x=want["x"]).values, want[name].values)
    assert not np.array_equal(
        got["association-test_p_bonferroni"].transpose("x", "y", "z").values,
        want["association-test_p_bonferroni"].values,
    )  # really another order
    with pytest.raises(ParameterError, match=r"the maps' x labels are not the cube's"):
        maps.isel(x=slice(10, 60)).coact.fwe(n_iter="bonferroni")


# --- (h) seed(..., fwe=) and (i) writing --------------------------------------------------------------


def test_seed_with_fwe_equals_fwe_afterwards(cube):
    direct = cube.coact.seed(DACC, 0.1, r=10, fwe=11, fwe_seed=9)
    after = cube.coact.seed(DACC, 0.1, r=10).coact.fwe(n_iter=11, seed=9)
    assert direct.attrs.pop("fwe_seconds") >= 0 and after.attrs.pop("fwe_seconds") >= 0
    xr.testing.assert_identical(direct, after)
    bonf = cube.coact.seed(DACC, 0.1, r=10, fwe="bonferroni")
    xr.testing.assert_identical(bonf, cube.coact.seed(DACC, 0.1, r=10).coact.fwe(n_iter="bonferroni"))


def test_fwe_maps_are_written_to_nifti(cube, tmp_path):
    out = cube.coact.seed(DACC, 0.1, r=10).coact.fwe(n_iter=11, seed=9)
    files = [os.fspath(f) for f in out.coact.to_nifti(tmp_path / "dacc")]
    for name in ("uniformity-test_p_FWE-voxel", "association-test_z_FWE-cluster-mass_0.05", "association-test_cluster"):
        path = os.fspath(tmp_path / f"dacc_{name}.nii.gz")
        assert path in files
        img = nib.load(path)
        np.testing.assert_allclose(img.affine, xcoact.space.mni152_2mm().affine)
        np.testing.assert_allclose(
            np.asarray(img.dataobj), out[name].transpose("x", "y", "z").values.astype(np.float32)
        )
    assert not any("fwe_null" in f for f in files)
    assert len(files) == 9 + 2 * 7


def test_cli_fwe(tmp_path, capsys):
    from xcoact.cli import main

    out = tmp_path / "dacc"
    assert (
        main(
            [
                "coactivation",
                "--seed",
                "0,20,28",
                "--r",
                "10",
                "--threshold",
                "0.1",
                "--fwe",
                "11",
                "--fwe-seed",
                "3",
                "--outroot",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "FWE: 11 permutations (seed 3), smallest p 0.091" in printed
    assert os.path.exists(f"{out}_association-test_p_FWE-voxel.nii.gz")
    assert main(["coactivation", "--seed", "0,20,28", "--fwe", "ten", "--outroot", str(tmp_path / "x")]) == 2
    assert (
        "--fwe 'ten' is not valid; expected a number of permutations (e.g. 1000) or 'bonferroni'."
        in capsys.readouterr().err
    )
