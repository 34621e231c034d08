"""A batch's memory: compact selections and scores, maps written without a block of all nine (issue 10).

A batch keeps each seed's selected studies and ROI overlaps as compact rows
(the studies with a non-zero value), shown as lazy ``(seed, study)`` arrays,
and makes each map's chunk from per-seed in-mask tables. These tests bound
what ``tracemalloc`` sees and check that the values, in memory and read back
from Zarr, are those of the dense route and of single seeds.
"""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import sparse

import xcoact
from xcoact.counts import MANY_ROIS, roi_overlaps
from xcoact.roi import grid_of, seed_set
from xcoact.space import mni152_2mm


def _centres(n: int, seed: int = 0) -> list:
    grid = mni152_2mm()
    flat = grid.mask_flat[np.random.default_rng(seed).choice(grid.mask_flat.size, n, replace=False)]
    ijk = np.column_stack(np.unravel_index(flat, grid.shape))
    return (ijk @ grid.affine[:3, :3].T + grid.affine[:3, 3]).tolist()


#: more seeds than MANY_ROIS (the sparse product route), one out of the brain mask (NaN maps)
SEEDS = [*_centres(MANY_ROIS + 3), [90, 90, 108]]


@pytest.fixture(scope="module")
def cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        return xcoact.activations(xcoact.datasets.synthetic(4000, seed=0), r=6)


def _batch(act, seeds, r=10, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        return act.coact.seed(seeds, r=r, threshold=0.1, separate=True, **kw)


def test_batch_equals_dense_overlaps_and_single_seeds(cube):
    ds = _batch(cube, SEEDS, dtype="float32", layout="voxel")
    assert isinstance(ds["overlap"].data, da.Array) and isinstance(ds["selected"].data, da.Array)
    got = ds.compute()
    grid = grid_of(cube)
    rois = seed_set(SEEDS, grid, 10, separate=True)
    dense = roi_overlaps(cube, rois, grid)
    assert sparse.issparse(roi_overlaps(cube, rois, grid, sparse=True))
    assert got["overlap"].dtype == np.int32 and got["selected"].dtype == bool
    np.testing.assert_array_equal(got["overlap"].values, dense)
    assert got["valid"].values.tolist() == [True] * (len(SEEDS) - 1) + [False]
    np.testing.assert_array_equal(got["n_selected"].values, got["selected"].values.sum(axis=1))
    assert np.isnan(got["pFgA"].values[-1]).all()
    for i in (0, 7, len(SEEDS) - 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
            one = cube.coact.seed([SEEDS[i]], r=10, threshold=0.1, dtype="float32").compute()
        assert set(got["study"].values[got["selected"].values[i]]) == set(one["selected_id"].values)
        for name in one.coact.maps:
            np.testing.assert_array_equal(got[name].values[i], one[name].values.ravel()[grid.mask_flat], err_msg=name)


def test_written_store_reads_back_the_batch(cube, tmp_path):
    ds = _batch(cube, SEEDS, dtype="float32", layout="voxel")
    want = ds.compute()
    store = ds.coact.to_zarr(tmp_path / "batch.zarr")
    with xr.open_zarr(store) as back:
        assert set(back.data_vars) == set(want.data_vars)
        for name in want.data_vars:
            assert back[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(back[name].values, want[name].values, err_msg=name)
        assert back.attrs["n_valid_seeds"] == len(SEEDS) - 1


def _held(act, seeds) -> tuple[int, xr.Dataset]:
    """Bytes ``tracemalloc`` sees held by a batch (4 mm ROIs: little held per seed for its ROI and graph)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ds = _batch(act, seeds, r=4, dtype="float32", layout="voxel")
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, ds
    finally:
        tracemalloc.stop()


def test_batch_holds_compact_selections(cube):
    seeds = _centres(220, seed=1)
    _batch(cube, seeds[:20], r=4)  # the chunks' rows built before tracing
    few, _ = _held(cube, seeds[:20])  # what a batch holds whatever its size (the voxel index, 1.8 MB)
    held, ds = _held(cube, seeds)
    per_seed = (held - few) / (len(seeds) - 20)
    # dense, the overlaps (int32), the selections and the counting weights (bool) would take 6 bytes a study
    assert per_seed < cube.sizes["study"] * 6 / 2, (per_seed, held, few)
    assert int(ds["n_selected"].sum()) == int(ds["selected"].sum())


def test_writing_holds_no_block_of_all_nine_maps(cube, tmp_path):
    ds = _batch(cube, SEEDS[:8], dtype="float32", layout="voxel")
    block = len(ds.coact.maps) * 4 * ds.sizes["voxel"] * 4  # nine float32 maps of a chunk of four seeds: 33 MB
    gc.collect()
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="sync"):
            before = tracemalloc.get_traced_memory()[0]
            ds.coact.to_zarr(tmp_path / "eight.zarr")
            peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < block, (peak, block)
    with xr.open_zarr(tmp_path / "eight.zarr") as back:
        np.testing.assert_array_equal(back["pFgA"].values, ds["pFgA"].values)
