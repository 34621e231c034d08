"""A persisted cube on a real ``dask.distributed`` cluster (loopback): its rows stay on the workers.

The blocks of a persisted cube live on the workers; a seed's counts are
computed there, next to them, and the client receives the maps.  A second seed
reuses the rows the first one built: the workers build each chunk's rows once.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import xarray as xr

import xcoact

distributed = pytest.importorskip("distributed")

SEEDS = ([[0, 20, 28]], [[-40, 20, 28]])


def _built_rows(dask_worker) -> int:
    """Chunks whose rows are built among the blocks this worker holds."""
    from xcoact.blocks import ActivationBlock, pieces_of

    chunks = {id(p.chunk) for v in dask_worker.data.values() if isinstance(v, ActivationBlock) for p in pieces_of(v)
              if p.chunk.built}
    return len(chunks)


def _count_builds(dask_worker) -> int:
    return getattr(dask_worker, "_xcoact_builds", 0)


def _install_build_counter(dask_worker) -> None:
    from xcoact import blocks

    original = blocks.sparse_rows
    dask_worker._xcoact_builds = 0

    def counted(*args, **kwargs):
        dask_worker._xcoact_builds += 1
        return original(*args, **kwargs)

    blocks.sparse_rows = counted


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


def test_persisted_cube_keeps_rows_on_the_workers_and_gives_the_local_maps(client, sample_table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.warnings.XcoactWarning)
        local_cube = xcoact.activations(sample_table, r=6, chunks={"study": 25})
    want = [local_cube.coact.seed(s, r=10, threshold=0.1).compute(scheduler="threads") for s in SEEDS]

    client.run(_install_build_counter)
    cube = local_cube.persist()  # with a client active: the blocks go to the workers
    distributed.wait(cube.data)
    held = client.run(lambda dask_worker: sum(1 for k in dask_worker.data if "activations" in str(k)))
    assert sum(held.values()) == 4 and all(n > 0 for n in held.values()), held  # spread over both workers

    for seed, expected in zip(SEEDS, want):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", xcoact.warnings.XcoactWarning)
            got = cube.coact.seed(seed, r=10, threshold=0.1).compute()
        assert got["selected_id"].values.tolist() == expected["selected_id"].values.tolist()
        for name in expected.coact.maps:
            np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)

    # each of the 4 chunks was built once, on the worker holding it, and kept for the second seed
    builds = client.run(_count_builds)
    assert sum(builds.values()) == 4, builds
    assert sum(client.run(_built_rows).values()) == 4


def test_tasks_of_a_seed_run_on_the_workers(client, sample_table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.warnings.XcoactWarning)
        cube = xcoact.activations(sample_table, r=6, chunks={"study": 50}).persist()
        distributed.wait(cube.data)
        with distributed.get_task_stream(client) as stream:
            maps = cube.coact.seed(SEEDS[0], r=10, threshold=0.1).compute()
    workers = {t["worker"] for t in stream.data}
    names = {str(t["key"]) for t in stream.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])
    assert any("summed_counts" in n for n in names), sorted(names)[:10]  # the grouped counts ran there
    assert isinstance(maps, xr.Dataset) and maps.attrs["n_selected"] > 0
