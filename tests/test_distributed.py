"""The same maps under dask.distributed (a real LocalCluster on loopback).

Each test records the scheduler's task stream (``client.get_task_stream``)
while it computes, and asserts that tasks really ran, on the cluster's own
worker processes, before comparing the numbers with the local threaded
scheduler bit for bit.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import xcoact

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=40
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def cube(sample_table):
    with pytest.warns(xcoact.errors.OutOfBoxWarning):
        return xcoact.activations(sample_table, r=6)


def xcoact_threaded():
    import dask

    return dask.config.set(scheduler="threads")


def _ran_on_workers(client, stream) -> dict[str, int]:
    """Tasks per worker in a recorded task stream, after checking every one ran in a worker process."""
    workers = client.scheduler_info()["workers"]
    pids = client.run(os.getpid)
    assert len(workers) == 2 and os.getpid() not in pids.values(), "the workers must be processes of their own"
    per_worker: dict[str, int] = {}
    for task in stream.data:
        assert task["worker"] in workers, f"task {task['key']} ran on {task['worker']}, not a cluster worker"
        per_worker[task["worker"]] = per_worker.get(task["worker"], 0) + 1
    return per_worker


def test_distributed_maps_identical_to_threaded(cube, client):
    seed = [[0, 20, 28]]
    with xcoact_threaded():
        expected = cube.coact.seed(seed, r=10, threshold=0.1).compute()
    with distributed.get_task_stream(client) as stream:
        got = cube.coact.seed(seed, r=10, threshold=0.1).compute()  # the client is the default scheduler
    ran = _ran_on_workers(client, stream)
    assert sum(ran.values()) > 0, "computing the maps sent no task to the workers"
    for name in expected.coact.maps:
        np.testing.assert_array_equal(got[name].values, expected[name].values)
    assert got["association-test_z"].values.max() > 3  # a real map, not zeros on both sides

    # the dense cube itself, block by block on the workers
    region = cube.isel(x=slice(30, 60), y=slice(40, 80), z=slice(30, 60))
    with distributed.get_task_stream(client) as stream:
        on_cluster = region.compute().values
    ran = _ran_on_workers(client, stream)
    assert sum(ran.values()) >= region.data.npartitions
    np.testing.assert_array_equal(on_cluster, region.compute(scheduler="threads").values)
    assert on_cluster.any()


def test_distributed_batch_written_by_the_workers(cube, client, tmp_path):
    import xarray as xr

    seeds = [xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path(), [[0, 20, 28]]]
    with xcoact_threaded():
        expected = cube.coact.seed(seeds, r=10, threshold=0.1).compute()
    batch = cube.coact.seed(seeds, r=10, threshold=0.1)
    with distributed.get_task_stream(client) as stream:
        store = batch.coact.to_zarr(tmp_path / "b.zarr")  # written by the workers, chunk by chunk
    ran = _ran_on_workers(client, stream)
    assert sum(ran.values()) >= len(seeds), f"writing the batch ran {sum(ran.values())} task(s) on the workers"
    with xr.open_zarr(store) as got:
        for name in expected.coact.maps:
            np.testing.assert_array_equal(got[name].values, expected[name].values)


def test_distributed_matrix(cube, client):
    """The matrix's ROI overlaps are per-study reductions over the cube's blocks: the workers run them.

    ``matrix`` counts ROI overlaps eagerly, one task per study block of the
    cube (a gather in each chunk's sparse rows), through whatever scheduler is
    active; a rechunked cube (still sparse blocks) does the same with its own
    blocks.  Both give the numbers of the threaded scheduler.
    """
    seeds = [xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path(), [[0, 20, 28]]]
    with xcoact_threaded():
        expected = cube.coact.seed(seeds, r=10, threshold=0.1).compute()
    selected = expected["selected"].values.astype(int)

    with distributed.get_task_stream(client) as stream:
        untouched = cube.coact.matrix(seeds, threshold=0.1, r=10)
    ran = _ran_on_workers(client, stream)
    assert sum(ran.values()) >= 1, "the cube's matrix sent no task to the workers"
    np.testing.assert_array_equal(untouched["n_both"].values, selected @ selected.T)

    rechunked = cube.chunk({"study": 25})
    with distributed.get_task_stream(client) as stream:
        on_cluster = rechunked.coact.matrix(seeds, threshold=0.1, r=10)
    ran = _ran_on_workers(client, stream)
    assert sum(ran.values()) >= len(seeds), "the rechunked cube's matrix sent no task to the workers"
    with xcoact_threaded():
        local = rechunked.coact.matrix(seeds, threshold=0.1, r=10)
    for name in ("n_both", "phi", "z", "n_active"):
        np.testing.assert_array_equal(on_cluster[name].values, local[name].values)
        np.testing.assert_array_equal(on_cluster[name].values, untouched[name].values)
    assert int(on_cluster["n_both"].values.sum()) > int(np.trace(on_cluster["n_both"].values))  # ROIs share studies
