"""A dask.distributed worker killed in the middle of a batch (docs/reliability.md, "Faults under Dask").

A real LocalCluster on 127.0.0.1: two worker processes of one thread each,
each under a nanny.  While a batch of twelve seeds is computed (or written to
Zarr), the test waits until one worker holds finished results of the batch
and is running another task, kills that worker's process with SIGKILL, and
lets dask.distributed recover on its own (no ``retries=``).  The maps must be
identical to those of the threaded scheduler, and the scheduler's own event
log must show that the worker died unexpectedly while running tasks and that
finished results were lost with it, so the test cannot pass without a real
fault in the middle of the work.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from conftest import loopback_cluster

import xcoact

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

#: twelve coordinate seeds, each its own seed (separate=True): one Dask chunk per seed
CENTRES = [
    [0, 20, 28],
    [-40, 20, 28],
    [40, -60, 0],
    [0, -50, 20],
    [-30, -90, 0],
    [20, 10, -10],
    [44, 20, 10],
    [-44, 20, 10],
    [0, 40, -10],
    [30, -30, 60],
    [-30, -30, 60],
    [0, -80, 10],
]


@pytest.fixture(scope="module")
def batch():
    """Twelve seeds on a 3,000-study synthetic database: seconds of work per worker, lazy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(xcoact.datasets.synthetic(3000, seed=1), r=6)
        return act.coact.seed(CENTRES, r=10, threshold=0.1, separate=True, dtype="float32")


@pytest.fixture(scope="module")
def expected(batch):
    """The undisturbed maps, from the threaded scheduler."""
    return batch.compute(scheduler="threads")


@pytest.fixture
def client():
    # the killed worker's connections fail noisily; the test reads the scheduler's event log instead
    with loopback_cluster(logging.CRITICAL) as c:
        yield c


def _output_keys(collection) -> list:
    """The graph keys of a collection's results (its map chunks)."""
    keys = []

    def flatten(x):
        if isinstance(x, list):
            for y in x:
                flatten(y)
        else:
            keys.append(x)

    flatten(collection.__dask_keys__())
    return keys


def _progress(dask_scheduler, keys):
    """On the scheduler: how many of ``keys`` are finished, and what each worker holds and runs."""
    done = [k for k in keys if k in dask_scheduler.tasks and dask_scheduler.tasks[k].state == "memory"]
    workers = {
        addr: {
            "processing": len(ws.processing),
            "holds": len(ws.has_what),
            "holds_outputs": sum(1 for k in done if ws in dask_scheduler.tasks[k].who_has),
        }
        for addr, ws in dask_scheduler.workers.items()
    }
    return {"done": len(done), "workers": workers}


def _kill_mid_way(client, keys, pids: dict, started: float, finished, ready, timeout: float = 120.0):
    """SIGKILL a worker that holds finished results and is running a task, once ``ready(progress)``."""
    while time.monotonic() - started < timeout:
        assert not finished(), "the batch finished before a worker could be killed mid-way; make it longer"
        p = client.run_on_scheduler(_progress, keys=keys)
        if ready(p):
            for addr, w in p["workers"].items():
                if w["processing"] and w["holds"] and (w["holds_outputs"] or not keys) and addr in pids:
                    os.kill(pids[addr], signal.SIGKILL)
                    return addr, p
        time.sleep(0.02)
    raise AssertionError(f"no moment to kill a worker mid-way within {timeout} s")


def _assert_died_mid_way(client, victim: str, pid: int, keys=()) -> dict:
    """The process is gone, and the scheduler saw the worker leave unexpectedly, losing work in progress."""
    proc_deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < proc_deadline, f"worker process {pid} is still alive"
        time.sleep(0.05)
    removed = [
        m
        for _, m in client.get_events("all")
        if isinstance(m, dict) and m.get("action") == "remove-worker" and m.get("worker") == victim
    ]
    assert len(removed) == 1, f"the scheduler did not see {victim} leave: {removed}"
    event = removed[0]
    assert event["expected"] is False  # not a clean shutdown
    assert event["processing-tasks"], "the worker was running nothing when it died"
    lost = set(event["lost-computed-tasks"])
    assert lost, "the worker held no finished result that was still needed when it died"
    if keys:
        assert lost & set(keys), "the worker held no finished map when it died"
    return event


def test_killed_worker_mid_batch_gives_identical_maps(batch, expected, client):
    keys = _output_keys(batch)
    pids = client.run(os.getpid)
    assert len(pids) == 2
    started = time.monotonic()
    future = client.compute(batch)
    # a quarter of the output chunks (maps and ROIs) are finished, some of them on the worker that is killed
    victim, progress = _kill_mid_way(
        client, keys, pids, started, future.done, lambda p: len(keys) // 4 <= p["done"] < len(keys)
    )
    got = future.result(timeout=300)
    event = _assert_died_mid_way(client, victim, pids[victim], keys)
    xr.testing.assert_identical(got, expected)
    for name in xcoact.map_names():
        assert np.array_equal(got[name].values, expected[name].values, equal_nan=True), name
    # the nanny started a new worker process in its place; the other one ran throughout
    survivor = next(a for a in pids if a != victim)
    assert client.run(os.getpid)[survivor] == pids[survivor]
    print(
        f"\nkilled {victim} (pid {pids[victim]}) after {progress['done']} of {len(keys)} output chunks; "
        f"{len(event['processing-tasks'])} task(s) running and {len(event['lost-computed-tasks'])} result(s) "
        f"lost with it; total {time.monotonic() - started:.1f} s"
    )


def _chunk_files(folder) -> list[str]:
    """The chunk files of (seed, x, y, z) variables below ``folder`` (Zarr format 2 names them like ``pA/0.0.0.0``)."""
    return [
        os.path.join(r, f)
        for r, _, fs in os.walk(folder)
        for f in fs
        if f.count(".") == 3 and f.replace(".", "").isdigit()
    ]


def test_killed_worker_during_zarr_write_gives_the_same_store(batch, expected, client, tmp_path):
    """The workers compute and write the chunks; one dies part-way.  The store is whole and holds the same maps."""
    target = tmp_path / "batch.zarr"
    n_chunks = sum(v.ndim == 4 for v in batch.data_vars.values()) * len(CENTRES)  # the maps and the ROIs
    pids = client.run(os.getpid)
    result: dict = {}

    def write():
        try:
            result["path"] = batch.coact.to_zarr(target, dtype="float32")
        except BaseException as err:
            result["error"] = err

    def ready(_progress):
        # a quarter of the chunks are in the temporary store beside the target
        temps = [os.path.join(tmp_path, n) for n in os.listdir(tmp_path) if n.startswith(".batch.zarr.")]
        written = sum(len(_chunk_files(t)) for t in temps)
        result["written_at_kill"] = written
        return n_chunks // 4 <= written < n_chunks

    writer = threading.Thread(target=write)
    started = time.monotonic()
    writer.start()
    try:
        victim, _ = _kill_mid_way(client, [], pids, started, lambda: not writer.is_alive(), ready)
    finally:
        writer.join(300)
    assert not writer.is_alive()
    assert "error" not in result, result.get("error")
    event = _assert_died_mid_way(client, victim, pids[victim])
    assert sorted(os.listdir(tmp_path)) == ["batch.zarr"]  # no temporary store left beside it
    with xr.open_zarr(target) as back:
        for name in xcoact.map_names():
            assert np.array_equal(back[name].values, expected[name].values, equal_nan=True), name
    # file for file the store an undisturbed write makes: no chunk missing, no stray temporary file
    with dask.config.set(scheduler="threads"):
        undisturbed = batch.coact.to_zarr(tmp_path / "undisturbed.zarr", dtype="float32")

    def files(root):
        return sorted(os.path.relpath(os.path.join(r, f), root) for r, _, fs in os.walk(root) for f in fs)

    assert files(target) == files(undisturbed)
    assert len(_chunk_files(target)) == n_chunks
    print(
        f"\nkilled {victim} with {result['written_at_kill']} of {n_chunks} map chunks in the store; "
        f"{len(event['processing-tasks'])} task(s) running, {len(event['lost-computed-tasks'])} result(s) lost; "
        f"total {time.monotonic() - started:.1f} s"
    )
