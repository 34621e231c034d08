"""``xr.open_dataset(path, engine="xcoact")``: the coordinate table and the lazy cube in one Dataset.

Each database format is opened through xarray (by name and by
auto-detection) and compared with ``read_database`` + ``activations``.
"""

from __future__ import annotations

import json
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from conftest import data_file
from dask.callbacks import Callback

import xcoact
from xcoact.backend import OPTIONAL_TABLE_VARIABLES, TABLE_VARIABLES, XcoactBackendEntrypoint, open_database, to_table
from xcoact.blocks import is_block_cube
from xcoact.errors import XcoactWarning

DATABASES = {
    "neurosynth": xcoact.datasets.sample_database_path(),
    "neurosynth-v7": data_file("data-neurosynth_version-7_coordinates.tsv.gz"),
    "sleuth": data_file("sleuth_example.txt"),
    "nimare-json": data_file("nimare_pain_dataset.json"),
}


class _CountTasks(Callback):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _pretask(self, key, dsk, state):
        self.n += 1


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return fn(*args, **kwargs)


def _expected(path, r=6.0):
    db = _quiet(xcoact.read_database, path)
    return db, _quiet(xcoact.activations, db, r=r)


def test_engine_is_registered():
    assert "xcoact" in xr.backends.list_engines()
    assert isinstance(xr.backends.list_engines()["xcoact"], XcoactBackendEntrypoint)


@pytest.mark.parametrize("fmt", sorted(DATABASES))
@pytest.mark.parametrize("engine", ["xcoact", None])
def test_open_dataset_equals_read_database_and_activations(fmt, engine):
    path = DATABASES[fmt]
    db, act = _expected(path)
    ds = _quiet(xr.open_dataset, path, engine=engine)
    assert ds.attrs["format"] == fmt
    assert set(ds.data_vars) == {
        *TABLE_VARIABLES.values(),
        "activations",
        *(v for v in OPTIONAL_TABLE_VARIABLES if v in db),
    }
    xr.testing.assert_identical(to_table(ds), db)
    for old, new in TABLE_VARIABLES.items():
        np.testing.assert_array_equal(ds[new].values, db[old].values)
    cube = ds["activations"]
    assert cube.dims == ("study", "x", "y", "z") and cube.dtype == bool
    assert cube["study"].values.tolist() == act["study"].values.tolist()
    assert bool(ds["brain_mask"].equals(act["brain_mask"]))
    assert cube.data.name == act.data.name, "the very Dask array of xcoact.activations"
    if act.sizes["study"] <= 21:
        np.testing.assert_array_equal(cube.values, act.values)
    else:  # the 100-study sample: compare per-study voxel counts and one region
        np.testing.assert_array_equal(cube.sum(("x", "y", "z")).values, act.sum(("x", "y", "z")).values)
        box = dict(x=slice(20, 0), y=slice(0, 30), z=slice(10, 40))
        np.testing.assert_array_equal(cube.sel(box).values, act.sel(box).values)
    assert {k: ds.attrs[k] for k in ("r", "kernel", "grid", "preset")} == {
        k: act.attrs[k] for k in ("r", "kernel", "grid", "preset")
    }
    assert ds.encoding["source"].endswith(path.rsplit("/", 1)[-1])


def test_opening_builds_no_block_and_analyses_take_the_fast_route():
    path = DATABASES["neurosynth"]
    counter = _CountTasks()
    with counter:
        ds = _quiet(xr.open_dataset, path, engine="xcoact")
    assert counter.n == 0, f"opening ran {counter.n} Dask task(s)"
    cube = ds["activations"]
    assert is_block_cube(cube.data)  # the sparse blocks, not a dense array
    _, act = _expected(path)
    got = cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    want = act.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    assert got["selected_id"].values.tolist() == want["selected_id"].values.tolist()
    for name in want.coact.maps:
        np.testing.assert_array_equal(got[name].values, want[name].values)


def test_backend_kwargs():
    path = DATABASES["neurosynth-v7"]
    ds = _quiet(xr.open_dataset, path, engine="xcoact", r=10, cube_chunks={"study": 8})
    _, act = _expected(path, r=10)
    assert ds.attrs["r"] == 10.0 and ds["activations"].attrs["r"] == 10.0
    assert ds["activations"].data.chunks[0] == (8, 8, 4)
    np.testing.assert_array_equal(ds["activations"].sum(("x", "y", "z")).values, act.sum(("x", "y", "z")).values)
    # format skips the guess: the Sleuth file read as Sleuth explicitly
    sl = _quiet(xr.open_dataset, DATABASES["sleuth"], engine="xcoact", format="sleuth")
    assert sl.attrs["format"] == "sleuth" and sl.sizes["peak"] == 7
    with pytest.raises(xcoact.ParameterError, match="format='bogus' is not a known database format"):
        xr.open_dataset(DATABASES["sleuth"], engine="xcoact", format="bogus")
    with pytest.raises(xcoact.ParameterError):
        xr.open_dataset(DATABASES["sleuth"], engine="xcoact", r=-1)
    # preset: the cube is the one xcoact.activations builds with that preset
    nim = _quiet(xr.open_dataset, path, engine="xcoact", preset="nimare")
    want = _quiet(xcoact.activations, _quiet(xcoact.read_database, path), preset="nimare")
    assert nim.attrs["preset"] == "nimare" and nim.attrs["r"] == want.attrs["r"]
    assert nim["activations"].data.name == want.data.name


def test_drop_variables():
    path = DATABASES["neurosynth"]
    table_only = _quiet(xr.open_dataset, path, engine="xcoact", drop_variables=["activations"])
    assert set(table_only.data_vars) == set(TABLE_VARIABLES.values())
    assert set(table_only.dims) == {"peak"}, "no cube, so no study/x/y/z dimensions"
    assert "r" not in table_only.attrs
    xr.testing.assert_identical(to_table(table_only), _quiet(xcoact.read_database, path))
    some = _quiet(xr.open_dataset, path, engine="xcoact", drop_variables=["peak_x", "line", "not_a_variable"])
    assert "peak_x" not in some and "line" not in some and "activations" in some and "peak_y" in some
    with pytest.raises(xcoact.ParameterError, match=r"lacks the table variable\(s\) \['peak_x', 'line'\]"):
        to_table(some)
    # the function behind the engine, without xarray's wrapping
    direct = _quiet(open_database, path, drop_variables="brain_mask")
    assert "brain_mask" not in direct.coords and isinstance(direct["activations"].data, dask.array.Array)


def test_guess_can_open(tmp_path):
    backend = XcoactBackendEntrypoint()
    for path in DATABASES.values():
        assert backend.guess_can_open(path), path
    assert not backend.guess_can_open(data_file("neurosynth_sample_features.txt"))
    assert not backend.guess_can_open(data_file("data-neurosynth_version-7_metadata.tsv.gz"))
    nc = tmp_path / "maps.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(nc)
    assert not backend.guess_can_open(str(nc))
    other_json = tmp_path / "other.json"
    other_json.write_text(json.dumps({"refs": {"a": 1}}))
    assert not backend.guess_can_open(str(other_json))
    text = tmp_path / "notes.txt"
    text.write_text("id,x,y,z,space\n1,2,3,4,MNI\n")  # commas: not a database.txt
    assert not backend.guess_can_open(str(text))
    assert not backend.guess_can_open(str(tmp_path))
    assert not backend.guess_can_open(str(tmp_path / "missing.txt"))
    with open(DATABASES["sleuth"], "rb") as fh:
        assert not backend.guess_can_open(fh)
    # xarray then has no engine for the file
    with pytest.raises(ValueError, match="did not find a match"):
        xr.open_dataset(str(text))


def test_errors_are_xcoact_errors(tmp_path):
    bad = tmp_path / "database.txt"
    bad.write_text("id\tx\ty\tz\tspace\n1\t2\tabc\t4\tMNI\n")
    with pytest.raises(xcoact.DatabaseError, match="line 2"):
        xr.open_dataset(str(bad), engine="xcoact")
    with pytest.raises(xcoact.DatabaseFileNotFoundError):
        xr.open_dataset(str(tmp_path / "missing.txt"), engine="xcoact")
