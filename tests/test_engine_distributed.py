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
from conftest import loopback_cluster

import xcoact

distributed = pytest.importorskip("distributed")

SEEDS = ([[0, 20, 28]], [[-40, 20, 28]])


def _built_rows(dask_worker) -> list[str]:
    """Keys of the cube blocks this worker holds whose chunk's rows are built (a moved block brings its rows)."""
    from xcoact.blocks import ActivationBlock, pieces_of

    return [
        str(k)
        for k, v in dask_worker.data.items()
        if isinstance(v, ActivationBlock) and all(p.chunk.built for p in pieces_of(v))
    ]


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
    with loopback_cluster(logging.ERROR) as c:
        yield c


def test_persisted_cube_keeps_rows_on_the_workers_and_gives_the_local_maps(client, sample_table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        local_cube = xcoact.activations(sample_table, r=6, chunks={"study": 25})
    want = [local_cube.coact.seed(s, r=10, threshold=0.1).compute(scheduler="threads") for s in SEEDS]

    client.run(_install_build_counter)
    cube = local_cube.persist()  # with a client active: the blocks go to the workers
    distributed.wait(cube.data)
    # the cube's block keys are (name, i, j, k, l) tuples; the chunks' peaks are other (string) keys
    held = client.run(
        lambda dask_worker: sum(
            1 for k in dask_worker.data if isinstance(k, tuple) and str(k[0]).startswith("activations")
        )
    )
    assert sum(held.values()) == 4 and all(n > 0 for n in held.values()), held  # spread over both workers

    builds = []
    for seed, expected in zip(SEEDS, want):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
            got = cube.coact.seed(seed, r=10, threshold=0.1).compute()
        assert got["selected_id"].values.tolist() == expected["selected_id"].values.tolist()
        for name in expected.coact.maps:
            np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)
        builds.append(sum(client.run(_count_builds).values()))

    # the rows were built when the persisted blocks were made (once per chunk; the scheduler may, rarely,
    # run a block's task twice), and the seeds built none: they used the rows the workers hold
    assert 4 <= builds[0] <= 8, builds
    assert builds[1] == builds[0], f"the second seed rebuilt rows: {builds}"
    # every block of the cube is held with its rows (a block may also be replicated on the other worker)
    assert len(set().union(*client.run(_built_rows).values())) == 4


def test_tasks_of_a_seed_run_on_the_workers(client, sample_table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        cube = xcoact.activations(sample_table, r=6, chunks={"study": 50}).persist()
        distributed.wait(cube.data)
        with distributed.get_task_stream(client) as stream:
            maps = cube.coact.seed(SEEDS[0], r=10, threshold=0.1).compute()
    workers = {t["worker"] for t in stream.data}
    names = {str(t["key"]) for t in stream.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])
    # each worker counted the blocks it keeps (the one holding most, in the task of the maps' statistics)
    assert any("in-mask-maps" in n for n in names), sorted(names)[:10]
    assert isinstance(maps, xr.Dataset) and maps.attrs["n_selected"] > 0
