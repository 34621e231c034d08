"""The same maps under dask.distributed (a real LocalCluster on loopback)."""

from __future__ import annotations

import numpy as np
import pytest

import xcoact

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as c:
        yield c


def test_distributed_maps_identical_to_threaded(sample_table, client):
    with pytest.warns(xcoact.warnings.OutOfBoxWarning):
        act = xcoact.activations(sample_table, r=6)
    threaded_seed = [[0, 20, 28]]
    with xcoact_threaded():
        expected = act.coact.seed(threaded_seed, r=10, threshold=0.1).compute()
    got = act.coact.seed(threaded_seed, r=10, threshold=0.1).compute()  # the client is the default scheduler
    assert client.status == "running"
    for name in expected.coact.maps:
        np.testing.assert_array_equal(got[name].values, expected[name].values)
    # the dense cube itself, block by block on the workers
    region = act.isel(x=slice(30, 60), y=slice(40, 80), z=slice(30, 60))
    np.testing.assert_array_equal(region.compute().values, region.compute(scheduler="threads").values)


def xcoact_threaded():
    import dask

    return dask.config.set(scheduler="threads")


def test_distributed_batch_and_matrix_identical_to_threaded(sample_table, client, tmp_path):
    import xarray as xr

    with pytest.warns(xcoact.warnings.OutOfBoxWarning):
        act = xcoact.activations(sample_table, r=6)
    seeds = [xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path(), [[0, 20, 28]]]
    with xcoact_threaded():
        expected = act.coact.seed(seeds, r=10, threshold=0.1).compute()
    batch = act.coact.seed(seeds, r=10, threshold=0.1)
    store = batch.coact.to_zarr(tmp_path / "b.zarr")  # written by the workers, chunk by chunk
    with xr.open_zarr(store) as got:
        for name in expected.coact.maps:
            np.testing.assert_array_equal(got[name].values, expected[name].values)
    np.testing.assert_array_equal(
        act.coact.matrix(seeds, threshold=0.1, r=10)["n_both"].values,
        expected["selected"].values.astype(int) @ expected["selected"].values.T.astype(int),
    )
