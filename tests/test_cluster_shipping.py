"""A warm seed on a persisted cube under dask.distributed ships kilobytes-to-megabytes, not volumes.

The workers return each map as its values per count pair and the voxels' pair
numbers (:class:`xcoact.mapchunk.InMaskMap`); the client makes the volumes.
These tests measure what moved (every worker's ``transfer_outgoing_log``: to
the other worker and to the client) and check the maps bit for bit against
the local threaded route, through ``compute``, ``.values``, lazy xarray
operations and the writers.
"""

from __future__ import annotations

import logging
import pickle
import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import loopback_cluster, sample_cube_chunked, sample_cube_persisted_warm

import xcoact
from xcoact.mapchunk import InMaskMap, pair_numbers

distributed = pytest.importorskip("distributed")

SEED = [[0, 20, 28]]
WARM = [[-40, 20, 28]]


@pytest.fixture(scope="module")
def client():
    with loopback_cluster(logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def local_cube(sample_table):
    return sample_cube_chunked(sample_table, 50)


@pytest.fixture(scope="module")
def cluster_cube(client, local_cube):
    return sample_cube_persisted_warm(local_cube, SEED)


def _expected(cube, seed, **kw):
    return cube.coact.seed(seed, r=10, threshold=0.1, **kw).compute(scheduler="threads")


def _clear_logs(client):
    client.run(lambda dask_worker: dask_worker.transfer_outgoing_log.clear())


def _sent(client) -> list[int]:
    """Bytes of every transfer out of a worker (to the other worker or to the client) since the logs were cleared."""
    logs = client.run(lambda dask_worker: [int(d["total"]) for d in dask_worker.transfer_outgoing_log])
    return [n for sizes in logs.values() for n in sizes]


def test_warm_seed_ships_no_volume_and_gives_the_local_maps(client, local_cube, cluster_cube):
    want = _expected(local_cube, WARM)
    volume = int(np.prod(want["pFgA"].shape)) * 8  # one float64 map volume: 7.2 MB on MNI152 2 mm
    _clear_logs(client)
    got = cluster_cube.coact.seed(WARM, r=10, threshold=0.1).compute()
    sent = _sent(client)
    # before: the nine volumes went worker -> worker -> client (65 MB each way); now the per-pair maps
    assert sent and max(sent) < volume, sent
    assert sum(sent) < 9 * volume / 5, f"{sum(sent):,} bytes moved for one warm seed (the volumes are {9 * volume:,})"
    assert got.attrs["n_selected"] == want.attrs["n_selected"] > 0
    for name in want.coact.maps:
        assert type(got[name].data) is np.ndarray and got[name].dtype == np.float64, name
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    assert got["association-test_z"].values.max() > 3  # real maps, not zeros on both sides


def test_float32_and_lazy_operations_match_the_local_route(cluster_cube, local_cube):
    want32 = _expected(local_cube, WARM, dtype="float32")
    got32 = cluster_cube.coact.seed(WARM, r=10, threshold=0.1, dtype="float32").compute()
    for name in want32.coact.maps:
        assert got32[name].dtype == np.float32
        np.testing.assert_array_equal(got32[name].values, want32[name].values, err_msg=name)

    want = _expected(local_cube, WARM)
    lazy = cluster_cube.coact.seed(WARM, r=10, threshold=0.1)
    z = "association-test_z"
    assert isinstance(lazy["pFgA"].values, np.ndarray)
    np.testing.assert_array_equal(lazy["pFgA"].values, want["pFgA"].values)
    assert float(lazy[z].max()) == float(want[z].max())
    assert float(lazy["pA"].sum()) == float(want["pA"].sum())
    np.testing.assert_array_equal((lazy[z] > 3).values, (want[z] > 3).values)
    np.testing.assert_array_equal((2 * lazy["pFgA"] - lazy["pAgF"]).values, (2 * want["pFgA"] - want["pAgF"]).values)
    np.testing.assert_array_equal(
        lazy["pFgA"].isel(x=45, z=slice(30, 50)).values, want["pFgA"].isel(x=45, z=slice(30, 50)).values
    )
    np.testing.assert_array_equal(lazy[z].where(lazy[z] > 2).values, want[z].where(want[z] > 2).values)
    one = lazy["pFgA"].load()
    assert type(one.data) is np.ndarray
    np.testing.assert_array_equal(one.values, want["pFgA"].values)


def test_contrast_and_nimare_preset_on_the_cluster(client, cluster_cube, local_cube, sample_table):
    a, b = xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path()
    want = local_cube.coact.contrast(a, b, 0.05).compute(scheduler="threads")
    got = cluster_cube.coact.contrast(a, b, 0.05).compute()
    for name in want.coact.maps:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        nimare = xcoact.activations(sample_table, preset="nimare")
    want = nimare.coact.seed(SEED, r=10).compute(scheduler="threads")
    got = nimare.coact.seed(SEED, r=10).compute()
    for name in want.coact.maps:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


def test_writers_take_a_cluster_seed(cluster_cube, local_cube, tmp_path):
    import nibabel as nib

    want = _expected(local_cube, WARM)
    lazy = cluster_cube.coact.seed(WARM, r=10, threshold=0.1)
    store = lazy.coact.to_zarr(tmp_path / "seed.zarr")  # the chunks are written by the workers
    with xr.open_zarr(store) as back:
        for name in want.coact.maps:
            np.testing.assert_array_equal(back[name].values, want[name].values, err_msg=name)
    files = lazy.coact.to_nifti(tmp_path / "seed", names=["pFgA"])
    np.testing.assert_array_equal(np.asarray(nib.load(files[0]).dataobj), want["pFgA"].values.astype(np.float32))
    path = lazy.coact.to_netcdf(tmp_path / "seed.nc")
    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(back["pFgA"].values, want["pFgA"].values)


def test_in_mask_map_is_the_volume_it_stands_for():
    rng = np.random.default_rng(3)
    mask = rng.random((7, 6, 5)) < 0.4
    n_mask = int(mask.sum())
    values = rng.random(11)
    inverse = rng.integers(0, 11, n_mask)
    pairs = pair_numbers(inverse, 11)
    assert pairs.dtype == np.uint8 and pair_numbers(inverse, 300).dtype == np.uint16
    m = InMaskMap(values, pairs, np.packbits(mask.ravel()), mask.shape)
    want = np.zeros(mask.shape)
    want[mask] = values[inverse]
    np.testing.assert_array_equal(np.asarray(m), want)
    assert m.shape == (7, 6, 5) and m.dtype == np.float64 and m.ndim == 3 and m.nbytes == want.nbytes
    np.testing.assert_array_equal(m[2, 1:4], want[2, 1:4])
    np.testing.assert_array_equal(m + 1, want + 1)
    np.testing.assert_array_equal(np.exp(m), np.exp(want))
    assert np.sum(m) == np.sum(want) and float(np.max(m, axis=0).sum()) == float(want.max(axis=0).sum())
    np.testing.assert_array_equal(m.astype(np.float32), want.astype(np.float32))
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(np.asarray(back), want)
    # held: the values, pairs and mask bits; not the volume
    import sys

    assert sys.getsizeof(m) < want.nbytes
    per_voxel = InMaskMap(values[inverse], None, np.packbits(mask.ravel()), mask.shape)
    np.testing.assert_array_equal(np.asarray(per_voxel), want)
    assert xr.DataArray(m, dims=("x", "y", "z")).data.__class__ is np.ndarray  # xarray stores the volume
