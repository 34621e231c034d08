"""A local seed's maps are made once, where they are read (issue 10, the warm seed).

The statistics task returns each map in-mask (values per count pair, each
voxel's pair); ``.compute()`` makes the nine volumes once.  Before, the task
made the volumes and Dask's ``finalize`` copied each single-chunk result, so
a seed allocated its maps twice.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.stats.neurosynth import coactivation_maps


@pytest.fixture(scope="module")
def act():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        cube = xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)
        cube.coact.seed([[0, 20, 28]], r=10).compute()  # builds the rows: later seeds are warm
    return cube


def test_a_warm_seed_allocates_its_nine_volumes_once(act):
    ds = act.coact.seed([[-40, 20, 28]], r=10)
    volume_bytes = act["brain_mask"].size * 8
    tracemalloc.start()
    try:
        out = ds.compute()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(type(out[name].data) is np.ndarray for name in ds.coact.maps)
    # the nine float64 volumes and some scratch; a second copy of them (the old finalize copy) would be 18 volumes
    assert 9 * volume_bytes <= peak < 12 * volume_bytes, peak / volume_bytes


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_local_maps_equal_the_per_voxel_formulas(act, dtype):
    ds = act.coact.seed([[0, -50, 20]], r=10, dtype=dtype).compute()
    mask = act["brain_mask"].values
    selected = np.isin(act["study"].values, ds["selected_id"].values)
    dense = act.values[:, mask]
    a = dense[selected].sum(axis=0)
    b = dense[~selected].sum(axis=0)
    expected = coactivation_maps(a, b, int(selected.sum()), int((~selected).sum()))
    for name, values in expected.items():
        got = ds[name]
        assert isinstance(got, xr.DataArray) and got.dtype == np.dtype(dtype)
        assert np.array_equal(got.values[mask], values.astype(dtype)), name
        assert not got.values[~mask].any(), name
