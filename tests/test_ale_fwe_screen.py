"""The FWE null's screened iteration (xcoact.stats.ale_null._Engine.above) against the whole-map ALE, bit for bit.

The screened path computes the exact ALE only at voxels a cut-kernel bound
leaves; these tests check that it loses no supra-threshold voxel and never
the maximum, on kernels of several widths, thresholds that many, few or no
iterations reach, and that its scratch arrays are left clean for the next
iteration.
"""

from __future__ import annotations

import numpy as np
import pytest

from xcoact.space import Grid
from xcoact.stats import ale, ale_null

pytest.importorskip("numba")

NULLS = ("values_level-voxel", "values_desc-size_level-cluster", "values_desc-mass_level-cluster")


@pytest.fixture(scope="module")
def case():
    """A 2 mm ellipsoid brain, 40 studies of 4 sample sizes (4 kernel widths), 6-30 foci each."""
    shape = (36, 42, 34)
    centre = (np.array(shape) - 1) / 2
    ijk = np.indices(shape).reshape(3, -1).T
    mask = (((ijk - centre) / (np.array(shape) / 2.2)) ** 2).sum(axis=1).reshape(shape) <= 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -2.0 * centre
    grid = Grid(shape, affine, mask)
    rng = np.random.default_rng(20261206)
    counts = rng.integers(6, 31, size=40)
    study = np.repeat(np.arange(40), counts)
    inside = np.column_stack(np.unravel_index(grid.mask_flat, shape))
    foci = inside[rng.integers(0, grid.n_mask, size=study.size)]
    sizes = rng.choice([8.0, 15.0, 30.0, 60.0], size=40)
    ma = [ale.study_ma(foci[study == s], grid, sample_size=sizes[s]) for s in range(40)]
    bins, weights = ale.ale_null(ma, grid.n_mask)
    return grid, foci, study, sizes, ale_null.cluster_threshold(bins, weights, 0.001)


def test_the_kernels_have_several_widths(case):
    grid, foci, study, sizes, _ = case
    f = ale_null._Foci(foci, study, grid, sizes, None)
    assert len(f.kptr) - 1 == 4 and len(set(np.diff(f.kptr))) >= 3


@pytest.mark.parametrize("scale", [1.0, 0.5, 1.4, 3.0])
def test_screened_null_is_the_whole_map_null_bit_for_bit(case, scale):
    """The cluster-forming threshold, a lower one (large clusters), a higher one (few) and one beyond reach."""
    grid, foci, study, sizes, threshold = case
    kw = dict(sample_size=sizes, threshold=threshold * scale, seed=3, n_iter=6)
    fast = ale_null.fwe_null(foci, study, grid, engine="numba", **kw)
    whole = ale_null.fwe_null(foci, study, grid, engine="numpy", **kw)
    for name in NULLS:
        assert np.array_equal(fast[name], whole[name]), name
    assert (fast["values_level-voxel"] > 0).all()
    clusters = (fast["values_desc-size_level-cluster"] > 0).sum()
    assert clusters == 6 if scale <= 1 else clusters < 6  # the thresholds do what their names say


def test_screened_iteration_keeps_every_supra_threshold_voxel(case):
    grid, foci, study, sizes, threshold = case
    f = ale_null._Foci(foci, study, grid, sizes, None)
    run = ale_null._Engine(f, "numba")
    run.screen(threshold)
    buf = run.buffers()
    for i in range(4):
        draw = ale_null._iteration_rng(9, i).integers(0, grid.n_mask, size=len(f.ijk))
        idx, stat = run.above(draw, buf, threshold)
        assert (np.diff(idx) > 0).all()  # ascending in-mask numbers, as the labeller needs them
        dense = np.zeros(grid.n_mask)
        ijk = np.column_stack(np.unravel_index(grid.mask_flat[draw], grid.shape))
        dense_idx, dense_stat = run.stat(ijk, buf)
        dense[dense_idx] = dense_stat
        want = np.flatnonzero(dense > threshold)
        assert want.size > 0 and np.isin(want, idx).all()
        assert np.array_equal(stat, dense[idx].astype(np.float32))
        assert stat.max() == dense.max()
        # the scratch arrays are clean for the next iteration
        assert not buf[6].any() and (buf[8] == -1).all()


def test_screening_bound_is_below_the_exact_log_sum(case):
    """The cut kernels summed over foci: at most the exact log-sum plus the slack, never above it by more."""
    grid, foci, study, sizes, threshold = case
    f = ale_null._Foci(foci, study, grid, sizes, None)
    run = ale_null._Engine(f, "numba")
    run.screen(threshold)
    buf = run.buffers()
    draw = ale_null._iteration_rng(1, 0).integers(0, grid.n_mask, size=len(f.ijk))
    screen_sums = run.kernels[0]
    pos = run.mask_pos[draw]
    order = np.argsort(pos)
    screen_sums(pos[order], run.focus_kernel[order], *run.rows, buf[6])
    bound = buf[6][run.mask_pos].astype(np.float64)
    exact = np.log1p(
        -ale.ale_stat(
            [
                ale.study_ma(grid_ijk, grid, sample_size=sizes[s])
                for s, grid_ijk in enumerate(
                    np.split(np.column_stack(np.unravel_index(grid.mask_flat[draw], grid.shape)), f.ptr[1:-1])
                )
            ],
            grid.n_mask,
        )
    )
    assert (bound <= exact + run.slack + 1e-5).all()
    assert (bound <= 0).all() and bound.min() < np.log1p(-threshold)


def test_default_workers_use_the_cores_and_give_the_same_null(case):
    grid, foci, study, sizes, threshold = case
    kw = dict(sample_size=sizes, threshold=threshold, seed=8, n_iter=5)
    assert ale_null._check_workers(None) >= 1
    default = ale_null.fwe_null(foci, study, grid, **kw)
    one = ale_null.fwe_null(foci, study, grid, n_workers=1, **kw)
    for name in NULLS:
        assert np.array_equal(default[name], one[name]), name
