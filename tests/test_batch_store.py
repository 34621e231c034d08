"""A batch written to Zarr: the default codec per map, every chunk stored, ROI masks per chunk of seeds.

``to_zarr``'s default ``compressor="auto"`` stores the Neurosynth maps of few
distinct values with Blosc-LZ4 without byte shuffle and the others without
compression; these tests read the store with plain ``zarr`` and ``xarray`` and
compare every value with the computed batch and with ``compressor="lz4"``.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.roi import _coords_seed, seed_set
from xcoact.space import mni152_2mm

SEEDS = [[0, 20, 28], [-40, 20, 28], [40, -60, 0], [0, -50, 20], [30, -20, 60], [-20, -4, -18]]


@pytest.fixture(scope="module")
def cube(sample_table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        return xcoact.activations(sample_table, r=6)


@pytest.fixture(scope="module")
def batch(cube):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        # six seeds: two chunks of four seeds (4 + 2)
        return cube.coact.seed(SEEDS, r=10, threshold=0.1, separate=True, dtype="float32", layout="voxel")


def _zarray(store, name) -> dict:
    with open(os.path.join(store, name, ".zarray")) as fh:
        return json.load(fh)


def test_auto_codec_per_map_and_values_equal(batch, tmp_path):
    import zarr

    want = batch.compute()
    auto = batch.coact.to_zarr(tmp_path / "auto.zarr")  # the default
    lz4 = batch.coact.to_zarr(tmp_path / "lz4.zarr", compressor="lz4")
    few = {"pAgF", "uniformity-test_z", "uniformity-test_z_FDR_0.01", "association-test_z_FDR_0.01"}
    for name in want.coact.maps:
        meta = _zarray(auto, name)
        if name in few:
            assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "lz4"
            assert meta["compressor"]["shuffle"] == 0, name
        else:
            assert meta["compressor"] is None, name
        assert _zarray(lz4, name)["compressor"]["shuffle"] == 1
    group = zarr.open_group(str(auto), mode="r")  # plain zarr reads it
    with xr.open_zarr(auto) as a, xr.open_zarr(lz4) as b:
        for name in want.coact.maps:
            np.testing.assert_array_equal(a[name].values, want[name].values, err_msg=name)
            np.testing.assert_array_equal(b[name].values, want[name].values, err_msg=name)
            np.testing.assert_array_equal(np.asarray(group[name][:]), want[name].values, err_msg=name)
        np.testing.assert_array_equal(a["roi"].values, want["roi"].values)
    # the few-valued maps are stored smaller than with the shuffle; the others as they are
    size = {
        s: {
            n: sum(os.path.getsize(os.path.join(s, n, f)) for f in os.listdir(os.path.join(s, n)))
            for n in ("pAgF", "pFgA")
        }
        for s in (auto, lz4)
    }
    assert size[auto]["pAgF"] < size[lz4]["pAgF"]
    assert size[auto]["pFgA"] >= want["pFgA"].nbytes


def test_every_chunk_is_stored_even_all_nan(cube, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        # a threshold nothing reaches: every seed degenerate, every map chunk NaN
        ds = cube.coact.seed(SEEDS[:5], r=10, threshold=10**9, separate=True, dtype="float32", layout="voxel")
    assert not ds["valid"].values.any()
    store = ds.coact.to_zarr(tmp_path / "nan.zarr")
    chunk_files = sorted(f for f in os.listdir(os.path.join(store, "pFgA")) if not f.startswith("."))
    assert chunk_files == ["0.0", "1.0"]  # 5 seeds, 4 per chunk: both written, although all NaN
    with xr.open_zarr(store) as back:
        assert np.isnan(back["pFgA"].values).all() and back["pFgA"].shape == (5, ds.sizes["voxel"])


def test_roi_masks_one_chunk_per_four_seeds(batch, cube):
    roi = batch["roi"]
    assert roi.data.chunks[0] == (4, 2) and roi.data.npartitions == 2
    grid = mni152_2mm()
    for i, xyz in enumerate(SEEDS):
        one = (_coords_seed([xyz], 10, grid) & grid.mask).ravel()[grid.mask_flat]
        np.testing.assert_array_equal(roi.values[i], one)
        assert int(batch["n_roi"].values[i]) == int(one.sum())
    volume = cube.coact.seed(SEEDS[:3], r=10, threshold=0.1, separate=True)
    assert volume["roi"].data.chunks[0] == (1, 1, 1)  # volumes: one seed per chunk, as the maps


def test_separate_seed_voxels_equal_the_dense_masks():
    grid = mni152_2mm()
    rng = np.random.default_rng(5)
    corners = [[-90, -126, -72], [90, 90, 108], [0, 0, 0], [88.5, -125.9, 107.1]]
    pts = [list(p) for p in rng.uniform([-90, -126, -72], [90, 90, 108], (40, 3))] + corners
    for r in (4.0, 10.0):
        for roi, xyz in zip(seed_set(pts, grid, r, separate=True), pts):
            want = np.flatnonzero(_coords_seed([xyz], r, grid) & grid.mask)
            np.testing.assert_array_equal(roi.voxels, want)
