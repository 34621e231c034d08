"""One set of test formulas and one labeller, shared by the maps, the cluster tables and the FWE permutations.

- the chi-square and sign of both tests come from ``xcoact.stats.neurosynth`` for the maps and for FWE: the observed
  chi-square of ``fwe`` turned into z is the seed's z map, bit for bit;
- a permutation's statistics (study runs, lookup tables, the compiled labeller) equal a plain evaluation of
  the same labelling (dense counts -> ``stats.chi2_and_sign`` -> ``cluster_labels``), bit for bit;
- ``xcoact.stats.components.label`` is ``scipy.ndimage.label``, array for array, and the cluster table's sizes are
  the FWE path's sizes on the same map;
- the cube's layout (reordered, dense) does not change the null.
"""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest
from scipy import ndimage, special
from scipy import stats as sstats
from test_contrast import SEED_A, SEED_B, R

import xcoact
from xcoact.roi import grid_of
from xcoact.stats import neurosynth as stats
from xcoact.stats.clusters import cluster_table
from xcoact.stats.components import Labeller, VoxelLabeller, label, structure

fwe_mod = importlib.import_module("xcoact.stats.fwe")  # the module (xcoact.fwe is also the function)

DACC = [[0, 20, 28]]
THR = float(sstats.chi2.isf(0.001, 1))


@pytest.fixture(scope="module")
def cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)


@pytest.fixture(scope="module")
def grid(cube):
    return grid_of(cube)


def _cases(cube):
    return {
        "seed": cube.coact.seed(DACC, 0.1, r=10),  # 4 of 100 selected
        "complement": cube.coact.seed(DACC, select="nearest", k=60),  # the 40 others are drawn
        "contrast": cube.coact.contrast(SEED_A, SEED_B, r=R, select="distance", both="a"),
    }


def _setup(cube, grid, ds):
    pool, n_sel = fwe_mod._groups(ds, np.asarray(cube["study"].values))
    a_obs, total = fwe_mod._observed_counts(cube, grid, ds, pool)
    return pool, n_sel, a_obs, total, total >= 1


# --- one set of formulas -----------------------------------------------------------------------------


def test_chi2_and_sign_are_the_p_functions_formulas():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 30, 5000)
    b = rng.integers(0, 200, 5000)
    a[:3], b[:3] = 0, 0  # empty tables: the expected-0 cells of Neurosynth
    chi2, sign = stats.chi2_and_sign(a, b, 30, 970)
    e = np.mean(a.astype(np.float64))
    np.testing.assert_array_equal(stats.chi2_sf_1dof(chi2[0]), stats.one_way_p(a, 30, e))
    np.testing.assert_array_equal(stats.chi2_sf_1dof(chi2[1]), stats.two_way_p(a, b, 30, 970))
    assert (chi2[1, :3] == 2.0).all()
    np.testing.assert_array_equal(sign[0], np.sign(a - e))
    np.testing.assert_array_equal(sign[1], np.sign(a * 970 - b * 30))  # a / n_F - b / n_U, in integers
    assert sign.dtype == np.int8 and set(np.unique(sign[1])) == {-1, 0, 1}


@pytest.mark.parametrize("case", ["seed", "contrast"])
def test_fwe_observed_chi2_is_the_maps_z(cube, grid, case):
    """FWE tests exactly the statistic the z maps show: its chi-square -> p -> z is the map, bit for bit."""
    ds = _cases(cube)[case].compute()
    pool, n_sel, a_obs, total, tested = _setup(cube, grid, ds)
    chi2, sign = fwe_mod.observed_statistics(a_obs, total, n_sel, pool.size, tested)
    for t, test in enumerate(fwe_mod.TESTS):
        z_map = ds[f"{test}-test_z"].transpose("x", "y", "z").values[grid.mask]
        z = stats.p_to_z(special.chdtrc(1, chi2[t]), sign[t])
        np.testing.assert_array_equal(z[tested], z_map[tested], err_msg=test)
        assert (chi2[t][~tested] == 0).all() and (np.abs(z_map[tested]) > 3).any()


# --- the permutations equal a plain evaluation ------------------------------------------------------


def _plain_null(cube, grid, pool, n_sel, total, tested, n_perm, seed_seq, thr=THR, connectivity=26):
    """The null of one batch, evaluated the plain way: dense counts, the stats formulas, cluster_labels."""
    active = np.asarray(cube.transpose("study", "x", "y", "z").values)[:, grid.mask].astype(np.int64)
    rng = np.random.default_rng(seed_seq)
    small = min(n_sel, pool.size - n_sel)
    labeller = VoxelLabeller(grid.shape, grid.mask_flat, connectivity)
    z_thr = math.sqrt(thr)
    rows, empty_assoc = [], 0
    for _ in range(n_perm):
        picked = pool[rng.choice(pool.size, small, replace=False)]
        drawn = active[picked].sum(axis=0)
        a = drawn if small == n_sel else total - drawn
        chi2, sign = fwe_mod.observed_statistics(a, total, n_sel, pool.size, tested)
        row = []
        for t in range(2):
            lab = fwe_mod.cluster_labels(chi2[t], sign[t], thr, labeller)
            size = mass = 0.0
            for s in (1, -1):
                vox = np.flatnonzero(lab * s > 0)
                if vox.size:
                    k = lab[vox] * s - 1
                    size = max(size, float(np.bincount(k).max()))
                    mass = max(mass, float(np.bincount(k, weights=np.sqrt(chi2[t][vox]) - z_thr).max()))
            empty_assoc += t == 1 and not (lab != 0).any()
            row.append([chi2[t].max(), size, mass])
        rows.append(row)
    return np.array(rows), empty_assoc


@pytest.mark.parametrize(
    "case,thr",
    [
        ("seed", THR),
        ("complement", THR),
        ("contrast", THR),
        ("seed", 1e4),  # no cluster at all: the largest chi-square is then taken over every tested voxel
    ],
)
def test_null_statistics_equal_a_plain_evaluation(cube, grid, case, thr):
    ds = _cases(cube)[case]
    pool, n_sel, _, total, tested = _setup(cube, grid, ds)
    runs = fwe_mod._runs_node(cube, grid).compute()
    plan = fwe_mod.NullPlan(total, tested, n_sel, pool.size, thr, VoxelLabeller(grid.shape, grid.mask_flat))
    stream = np.random.SeedSequence(99).spawn(1)[0]
    got = fwe_mod.null_statistics(runs, plan, pool, 12, stream)
    want, empty_assoc = _plain_null(cube, grid, pool, n_sel, total, tested, 12, stream, thr)
    np.testing.assert_array_equal(got, want)
    if thr == THR:
        assert (want[:, :, 1] > 0).any() and empty_assoc < 12
    else:
        assert empty_assoc == 12 and (want[:, :, 0] > 0).all()


def test_study_runs_count_like_the_dense_cube(cube, grid):
    runs = fwe_mod._runs_node(cube, grid).compute()
    active = np.asarray(cube.transpose("study", "x", "y", "z").values)[:, grid.mask]
    assert runs.ptr.size == active.shape[0] + 1 and runs.start.size < int(active.sum())  # runs, not voxels
    rng = np.random.default_rng(3)
    for size, dtype in ((1, np.int16), (37, np.int16), (100, np.int32)):
        picks = np.sort(rng.choice(active.shape[0], size, replace=False))
        out = runs.counts(picks, np.zeros(grid.n_mask + 1, dtype), np.zeros(grid.n_mask, dtype))
        np.testing.assert_array_equal(out, active[picks].sum(axis=0))


def test_study_runs_from_rows_edge_cases():
    empty = fwe_mod.StudyRuns.from_rows(np.zeros(3, dtype=np.int64), np.zeros(0, dtype=np.int64), 10)
    assert empty.ptr.tolist() == [0, 0, 0, 0] and empty.start.size == 0
    # studies without voxels between others; runs break at gaps and at study boundaries
    runs = fwe_mod.StudyRuns.from_rows(np.array([0, 4, 0, 2, 1]), np.array([2, 3, 5, 6, 6, 7, 9]), 10)
    assert runs.ptr.tolist() == [0, 0, 2, 2, 3, 4]
    assert runs.start.tolist() == [2, 5, 6, 9] and runs.stop.tolist() == [4, 7, 8, 10]
    out = runs.counts(np.array([1, 3, 4]), np.zeros(11, np.int16), np.zeros(10, np.int16))
    assert out.tolist() == [0, 0, 1, 1, 0, 1, 2, 1, 0, 1]


def test_the_cube_layout_does_not_change_the_null(cube):
    """Reordered views (runs re-sorted within studies) and a dense cube (the general route) give the same null."""
    ds = _cases(cube)["seed"].compute()
    kw = {"n_iter": 9, "seed": 4, "batch_size": 4}
    want = ds.coact.fwe(cube, **kw)
    for other in (
        cube.sortby("x", ascending=False).transpose("z", "study", "y", "x"),
        cube.chunk({"study": 30}),
        cube.copy(data=np.asarray(cube.values)),
    ):
        got = ds.coact.fwe(other, **kw)
        np.testing.assert_array_equal(got["fwe_null"].values, want["fwe_null"].values)
        np.testing.assert_array_equal(
            got["association-test_p_FWE-cluster-mass"].values, want["association-test_p_FWE-cluster-mass"].values
        )


# --- one labeller -----------------------------------------------------------------------------------


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_label_is_ndimage_label(connectivity):
    rng = np.random.default_rng(connectivity)
    shapes = [(1, 1, 1), (1, 7, 1), (5, 1, 9), (13, 11, 17), (30, 3, 40)]
    for shape in shapes:
        for density in (0.0, 0.1, 0.35, 0.7, 1.0):
            vol = rng.random(shape) < density
            got, n = label(vol, connectivity)
            want, m = ndimage.label(vol, structure(connectivity))
            assert n == m
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {density}")


def test_labeller_argument_and_order():
    with pytest.raises(ValueError, match="connectivity=8"):
        Labeller((3, 3, 3), 8)
    lab = Labeller((4, 4, 4))
    n, labels = lab.label(lab.positions(np.array([0, 21, 63])))  # (0,0,0)-(1,1,1) touch at a corner; (3,3,3) apart
    assert n == 2 and labels.tolist() == [0, 0, 1]
    n, labels = lab.label(np.zeros(0, dtype=np.int64))
    assert n == 0 and labels.size == 0


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_cluster_table_sizes_equal_the_fwe_sizes(cube, grid, connectivity):
    """The same map through the cluster table and through cluster-level FWE: the same clusters, sizes and signs."""
    ds = _cases(cube)["seed"].compute()
    pool, n_sel, a_obs, total, tested = _setup(cube, grid, ds)
    chi2, sign = fwe_mod.observed_statistics(a_obs, total, n_sel, pool.size, tested)
    labeller = VoxelLabeller(grid.shape, grid.mask_flat, connectivity)
    coords = [ds[d].values for d in "xyz"]
    checked = 0
    for t in range(2):
        signed = np.zeros(grid.shape)
        signed[grid.mask] = sign[t] * chi2[t]
        table = cluster_table(signed, coords, THR, connectivity=connectivity)
        lab = fwe_mod.cluster_labels(chi2[t], sign[t], THR, labeller)
        for s in (1, -1):
            fwe_sizes = np.bincount(lab[lab * s > 0] * s)[1:]
            table_sizes = table.loc[table["sign"] == s, "size_voxels"].to_numpy()
            np.testing.assert_array_equal(np.sort(table_sizes), np.sort(fwe_sizes))
            checked += fwe_sizes.size
    assert checked > 2
    # and the cluster map fwe returns holds those clusters
    out = ds.coact.fwe(n_iter=3, seed=0, connectivity=connectivity)
    got = out["association-test_cluster"].transpose("x", "y", "z").values[grid.mask]
    want = fwe_mod.cluster_labels(chi2[1], sign[1], THR, labeller)
    np.testing.assert_array_equal(got, want)


def test_cluster_table_on_random_maps_matches_the_fwe_labeller(grid):
    rng = np.random.default_rng(5)
    chi2 = np.where(rng.random(grid.n_mask) < 0.3, rng.uniform(11, 40, grid.n_mask), 0.0)
    sign = rng.choice(np.array([-1, 1], dtype=np.int8), grid.n_mask)
    signed = np.zeros(grid.shape)
    signed[grid.mask] = sign * chi2
    axes = [np.arange(n) * 2.0 for n in grid.shape]
    for connectivity in (6, 26):
        table = cluster_table(signed, axes, THR, connectivity=connectivity)
        lab = fwe_mod.cluster_labels(chi2, sign, THR, VoxelLabeller(grid.shape, grid.mask_flat, connectivity))
        for s in (1, -1):
            want = np.sort(np.bincount(lab[lab * s > 0] * s)[1:])
            np.testing.assert_array_equal(np.sort(table.loc[table["sign"] == s, "size_voxels"].to_numpy()), want)
            assert want.size > 100
