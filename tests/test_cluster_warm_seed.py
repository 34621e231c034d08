"""A warm seed on a cube persisted on a real loopback cluster: each worker counts its own blocks, little moves.

Per warm seed one task per worker counts the blocks that worker keeps (the
scores likewise), the counts are added and the maps made on the worker that
holds most blocks, and the client receives the nine maps in-mask (arriving as
ndarrays).  Measured through the workers' ``transfer_outgoing_log`` and the
task stream; the maps are checked bit for bit against the threaded route.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import loopback_cluster, sample_cube_chunked, sample_cube_persisted_warm

distributed = pytest.importorskip("distributed")

SEED = [[0, 20, 28]]
WARM = [[-40, 20, 28]]


@pytest.fixture(scope="module")
def client():
    with loopback_cluster(logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def local_cube(sample_table):
    return sample_cube_chunked(sample_table, 40)


@pytest.fixture(scope="module")
def cluster_cube(client, local_cube):
    return sample_cube_persisted_warm(local_cube, SEED)


def _transfers(client) -> list[dict]:
    """Every transfer out of a worker since the logs were cleared: its keys, bytes and receiver (None: the client)."""
    logs = client.run(
        lambda dask_worker: [
            {"keys": [str(k) for k in d["keys"]], "bytes": int(d["total"]), "to": d.get("who")}
            for d in dask_worker.transfer_outgoing_log
        ]
    )
    return [t for sent in logs.values() for t in sent]


def test_warm_seed_sends_counts_and_in_mask_maps_only(client, local_cube, cluster_cube):
    want = local_cube.coact.seed(WARM, r=10, threshold=0.1).compute(scheduler="threads")
    holders = client.who_has(distributed.futures_of(cluster_cube.data))
    assert len({w for ws in holders.values() for w in ws}) == 2  # the blocks are spread over both workers
    client.run(lambda dask_worker: dask_worker.transfer_outgoing_log.clear())
    got = cluster_cube.coact.seed(WARM, r=10, threshold=0.1).compute()
    moved = _transfers(client)
    n_mask = int(want["brain_mask"].sum())
    between = [t for t in moved if t["to"] is not None]
    # worker -> worker: the other worker's counts of the two groups (selected, all), 16-bit; no block, no map
    assert sum(t["bytes"] for t in between) <= 2 * 2 * n_mask + 4096, between
    assert not {k for t in moved for k in t["keys"]} & {str(k) for k in holders}
    # to the client: the per-study scores and the nine in-mask maps (a float64 volume is 7.2 MB; all nine 65 MB)
    assert sum(t["bytes"] for t in moved) < 10_000_000, [(t["keys"][:2], t["bytes"]) for t in moved]
    for name in want.coact.maps:
        assert type(got[name].data) is np.ndarray, name
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


def test_each_worker_counts_the_blocks_it_keeps_and_the_one_with_most_makes_the_maps(client, cluster_cube):
    holders = client.who_has(distributed.futures_of(cluster_cube.data))
    per_worker = {w: sum(ws[0] == w for ws in holders.values()) for w in client.scheduler_info()["workers"]}
    with distributed.get_task_stream(client) as stream:
        cluster_cube.coact.seed(WARM, r=10, threshold=0.1).compute()
    tasks = [(str(t["key"]), t["worker"]) for t in stream.data]
    home = max(per_worker, key=per_worker.get)
    # the worker holding most blocks counts them in the task of the statistics; each other one in a task of its own
    (maps_on,) = [w for k, w in tasks if "in-mask-maps" in k]
    assert maps_on == home
    assert sorted(w for k, w in tasks if "worker-counts" in k) == sorted(
        w for w, n in per_worker.items() if n and w != home
    )
    assert sorted(w for k, w in tasks if "_all_scores" in k) == sorted(w for w, n in per_worker.items() if n)
    assert all(w == home for k, w in tasks if "finalize" in k)  # each map's task too (no hop to the other worker)


def test_a_map_chunk_computed_alone_is_an_ndarray(cluster_cube, local_cube):
    want = local_cube.coact.seed(WARM, r=10, threshold=0.1).compute(scheduler="threads")
    lazy = cluster_cube.coact.seed(WARM, r=10, threshold=0.1)
    chunk = lazy["association-test_z"].data.compute()
    assert type(chunk) is np.ndarray and chunk.dtype == np.float64
    np.testing.assert_array_equal(chunk, want["association-test_z"].values)


def test_a_cube_derived_from_the_persisted_one_gives_the_same_maps(client, cluster_cube, local_cube):
    want = local_cube.coact.seed(WARM, r=10, threshold=0.1).compute(scheduler="threads")
    derived = cluster_cube.chunk({"study": 70})  # new blocks, held nowhere yet: counted per block
    got = derived.coact.seed(WARM, r=10, threshold=0.1).compute()
    assert got.attrs["n_selected"] == want.attrs["n_selected"] > 0
    for name in want.coact.maps:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
