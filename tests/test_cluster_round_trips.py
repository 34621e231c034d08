"""A warm seed on a persisted cube, counted in round trips and tasks (real loopback cluster).

``seed()`` asks the scheduler once where the blocks are and scores them in
one task per worker, sent straight from the blocks' futures; the maps stay
lazy.  ``.compute()`` runs the other worker's counts, the home worker's
counts and statistics, and one task per map, whose result the client gathers
as the map: no finalize task per map.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import test_cluster_warm_seed as warm

from xcoact.mapchunk import OneChunk

distributed = pytest.importorskip("distributed")

WARM = warm.WARM
client, local_cube, cluster_cube = warm.client, warm.local_cube, warm.cluster_cube  # its fixtures, a cluster here


def test_seed_asks_where_the_blocks_are_once_and_scores_one_task_per_worker(client, cluster_cube, monkeypatch):
    asked = []
    who_has = client.who_has
    monkeypatch.setattr(client, "who_has", lambda *a, **k: asked.append(1) or who_has(*a, **k))
    with distributed.get_task_stream(client) as stream:
        lazy = cluster_cube.coact.seed(WARM, r=10, threshold=0.1)
    assert len(asked) == 1  # the selection and the counts share one answer
    ran = [str(t["key"]) for t in stream.data]
    holders = {ws[0] for ws in client.who_has(distributed.futures_of(cluster_cube.data)).values()}
    assert len(ran) == len(holders) == 2 and all("_all_scores" in k for k in ran), ran  # nothing of the maps yet
    assert all(isinstance(lazy[name].data, da.Array) for name in lazy.coact.maps)


def test_compute_runs_counts_statistics_and_one_task_per_map_without_finalize(client, cluster_cube, local_cube):
    want = local_cube.coact.seed(WARM, r=10, threshold=0.1).compute(scheduler="threads")
    lazy = cluster_cube.coact.seed(WARM, r=10, threshold=0.1)
    with distributed.get_task_stream(client) as stream:
        got = lazy.compute()
    ran = [str(t["key"]) for t in stream.data]
    assert not [k for k in ran if "finalize" in k], ran
    holders = {ws[0] for ws in client.who_has(distributed.futures_of(cluster_cube.data)).values()}
    others = len(holders) - 1  # each other worker holding blocks sends its counts to the home worker's task
    assert sum("worker-counts" in k for k in ran) == others and sum("in-mask-maps" in k for k in ran) == 1
    assert len(ran) == others + 1 + len(want.coact.maps), ran
    for name in want.coact.maps:
        assert type(got[name].data) is np.ndarray
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


def test_a_one_chunk_array_computes_to_its_chunk_and_its_derivatives_are_plain():
    x = np.arange(24.0).reshape(2, 3, 4)
    one = OneChunk(da.from_array(x, chunks=-1).dask, da.from_array(x, chunks=-1).name, ((2,), (3,), (4,)), meta=x[:0])
    for scheduler in ("sync", "threads"):
        np.testing.assert_array_equal(one.compute(scheduler=scheduler), x)
        np.testing.assert_array_equal(dask.compute(one, one + 1, scheduler=scheduler)[1], x + 1)
    assert type(one + 1) is da.Array and type(one[0]) is da.Array and type(one.rechunk(1)) is da.Array
    several = da.from_array(x, chunks=1)  # more than one chunk: Dask's own join of the chunks
    many = OneChunk(several.dask, several.name, several.chunks, meta=x[:0])
    np.testing.assert_array_equal(many.compute(scheduler="sync"), x)
