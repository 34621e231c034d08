"""``to_zarr`` writes Dask chunks itself (``writers._ChunkFiles``): the files must be the ones zarr writes.

The direct route encodes each chunk with the array's own codec and names it
by the Zarr v2 chunk-key rule; zarr-python writing the same arrays (same
metadata, read back from the store) must give byte-identical chunk files,
edge chunks (padded with the fill value) included.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact import writers


def _chunk_files(store: str) -> dict[str, bytes]:
    """Every chunk file of every array below ``store``: relative path -> bytes (metadata files left out)."""
    out = {}
    for folder, _, files in os.walk(store):
        if ".zarray" not in files:
            continue
        for name in files:
            if not name.startswith("."):
                with open(os.path.join(folder, name), "rb") as fh:
                    out[os.path.relpath(os.path.join(folder, name), store)] = fh.read()
    return out


@pytest.fixture(scope="module")
def batch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
        # 7 seeds: the voxel layout's chunks of 4 seeds leave an edge chunk of 3
        seeds = [[0, 20, 28], [-40, -60, 40], [40, -60, 40], [0, -50, 30], [-30, 20, 0], [30, 20, 0], [0, 50, -10]]
        return act.coact.seed(seeds, r=10, threshold=0.05, separate=True, dtype="float32", layout="voxel")


@pytest.mark.parametrize("compressor", ["auto", "lz4", "zstd", "none"])
def test_direct_chunk_files_equal_zarrs_own(batch, tmp_path, compressor):
    direct = str(batch.coact.to_zarr(tmp_path / "direct.zarr", compressor=compressor))
    with xr.open_zarr(direct) as back:
        ds = back.load()
    # zarr-python writes the same arrays with the same metadata: each array's .zarray, taken from the direct store
    by_zarr = str(tmp_path / "by_zarr.zarr")
    ds.to_zarr(by_zarr, mode="w-", zarr_format=2, consolidated=True, write_empty_chunks=True)
    for name in ds.variables:
        with (
            open(os.path.join(direct, str(name), ".zarray")) as a,
            open(os.path.join(by_zarr, str(name), ".zarray")) as b,
        ):
            assert json.load(a) == json.load(b), name
    got, want = _chunk_files(direct), _chunk_files(by_zarr)
    maps = [k for k in want if k.split(os.sep)[0] in batch.coact.maps]
    assert maps and any(k.endswith(".1") or k.endswith("1.0") for k in maps)  # an edge chunk is among them
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key], key


def test_the_direct_route_is_taken_for_the_maps(batch, tmp_path, monkeypatch):
    """The comparison above means something only if the maps went through ``_ChunkFiles``."""
    written = []
    original = writers._ChunkFiles.__setitem__

    def spy(self, region, value):
        written.append(self.name)
        return original(self, region, value)

    monkeypatch.setattr(writers._ChunkFiles, "__setitem__", spy)
    batch.coact.to_zarr(tmp_path / "spied.zarr")
    assert set(batch.coact.maps) <= set(written)
    assert np.isfinite(np.asarray(xr.open_zarr(tmp_path / "spied.zarr")["pFgA"].values)).any()
