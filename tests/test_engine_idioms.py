"""The sparse cube under the xarray and Dask idioms users apply to it: same numbers, sparse route kept.

``chunk``, ``transpose``, ``isel``/``sel`` (studies or space), ``sortby`` and
``persist`` all return a cube still made of sparse blocks, and every map
computed on it equals the map of the dense general route (a plain boolean
array with the same labels) - and, for a study subset, the map of a database
of just those studies.
"""

from __future__ import annotations

import re
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xcoact
from xcoact.blocks import ActivationBlock, is_block_cube

SEED = [[0, 20, 28]]
MAPS = ["pA", "pAgF", "pFgA", "uniformity-test_z", "association-test_z", "association-test_z_FDR_0.01"]


@pytest.fixture(scope="module")
def cube(sample_table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        return xcoact.activations(sample_table, r=6)


@pytest.fixture(scope="module")
def dense(cube):
    """The same cube as a plain numpy-backed DataArray (the general route)."""
    return xr.DataArray(cube.values, dims=cube.dims, coords=cube.coords, attrs=cube.attrs)


@pytest.fixture(scope="module")
def reference(cube):
    return cube.coact.seed(SEED, r=10, threshold=0.1).compute()


def _maps(act, seed=SEED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        return act.coact.seed(seed, r=10, threshold=0.1).compute()


def _same_maps(got: xr.Dataset, want: xr.Dataset, names=MAPS) -> None:
    assert got["selected_id"].values.tolist() == want["selected_id"].values.tolist()
    for name in names:
        a = got[name].transpose("x", "y", "z")
        b = want[name].sel(x=a["x"], y=a["y"], z=a["z"]).transpose("x", "y", "z")
        np.testing.assert_array_equal(a.values, b.values, err_msg=name)


@pytest.mark.parametrize(
    "idiom",
    [
        lambda a: a.chunk({"study": 7}),
        lambda a: a.chunk({"study": 64, "x": 20, "y": 30}),
        lambda a: a.transpose("study", "z", "y", "x"),
        lambda a: a.transpose("x", "study", "z", "y"),
        lambda a: a.sortby("x"),
        lambda a: a.persist(),
        lambda a: a.chunk({"study": 13}).transpose("z", "x", "study", "y").persist(),
    ],
    ids=["chunk-study", "chunk-space", "transpose-space", "transpose-study", "sortby-x", "persist", "all"],
)
def test_idioms_keep_sparse_blocks_and_the_numbers(cube, reference, idiom):
    other = idiom(cube)
    assert is_block_cube(other.data), "the idiom fell off the sparse route"
    _same_maps(_maps(other), reference)


def test_dense_general_route_gives_the_same_maps(dense, reference):
    assert not is_block_cube(dense.chunk().data)
    _same_maps(_maps(dense), reference, names=list(reference.coact.maps))


def test_study_subset_equals_a_database_of_those_studies(cube, sample_table):
    keep = cube["study"].values[::3]
    sub = cube.sel(study=keep)
    assert is_block_cube(sub.data)
    table = sample_table.isel(peak=np.flatnonzero(np.isin(sample_table["study_id"].values, keep)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        own = xcoact.activations(table, r=6)
    got, want = _maps(sub), _maps(own)
    assert got.attrs["n_studies"] == len(keep)
    _same_maps(got, want, names=list(want.coact.maps))


def test_cropped_cube_gives_the_maps_over_its_box(cube, dense, reference):
    box = dict(x=slice(40, -40), y=slice(-20, 60), z=slice(0, 60))
    crop = cube.sel(box)
    assert is_block_cube(crop.data)
    got = _maps(crop)
    # the same box of the dense general route: every map, FDR ones included (one family: the box)
    _same_maps(got, _maps(dense.sel(box)), names=list(got.coact.maps))
    # the counts do not depend on the box: the per-voxel maps are the full maps' voxels (the uniformity
    # test's expected rate is the mean over the map's voxels, so it and the FDR maps are the box's own)
    _same_maps(got, reference, names=["pA", "pAgF", "pFgA", "association-test_z"])


def test_persist_holds_blocks_whose_rows_are_kept(cube):
    held = cube.chunk({"study": 50}).persist()
    blocks = dask.compute(*held.data.to_delayed().ravel())
    assert all(isinstance(b, ActivationBlock) for b in blocks)
    _maps(held)
    assert all(b.chunk.built for b in blocks), "the persisted blocks' rows were not kept"
    # compact: rows, their by-voxel copy and per-voxel totals are a small share of the dense cube (v7: 2 %)
    assert sum(b.chunk.nbytes() for b in blocks) < 0.15 * cube.nbytes


def test_values_of_a_region_equal_the_dense_cube(cube, dense):
    region = dict(study=slice(10, 40), x=slice(30, -10), z=slice(-20, 10))
    np.testing.assert_array_equal(cube.sel(region).values, dense.sel(region).values)
    np.testing.assert_array_equal(
        cube.sel(region).transpose("z", "study", "y", "x").values,
        dense.sel(region).transpose("z", "study", "y", "x").values,
    )
    assert int(cube.sum()) == int(dense.sum())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    study_chunk=st.integers(1, 100),
    x_chunk=st.sampled_from([-1, 17, 45]),
    order=st.permutations(["study", "x", "y", "z"]),
    subset=st.one_of(st.none(), st.lists(st.integers(0, 99), min_size=30, max_size=60, unique=True)),
)
def test_chunking_transposing_and_subsetting_never_change_a_map(cube, dense, study_chunk, x_chunk, order, subset):
    """Hypothesis: any chunking along study or space, any dimension order and any study subset."""
    act, ref = cube, dense
    if subset is not None:
        act, ref = act.isel(study=sorted(subset)), ref.isel(study=sorted(subset))
    act = act.chunk({"study": study_chunk, "x": x_chunk}).transpose(*order)
    assert is_block_cube(act.data)
    try:
        want = _maps(ref)
    except xcoact.SelectionError as err:  # a subset with no (or only) selected studies fails the same way
        with pytest.raises(xcoact.SelectionError, match=re.escape(str(err)[:40])):
            _maps(act)
        return
    _same_maps(_maps(act), want, names=list(want.coact.maps))


def test_repeated_study_labels_are_refused_not_counted_twice(cube):
    doubled = xr.concat([cube.isel(study=slice(0, 60)), cube.isel(study=slice(50, 100))], dim="study")
    with pytest.raises(xcoact.ParameterError, match=r"act has 10 repeated study label\(s\) .*counted twice"):
        doubled.coact.seed(SEED, r=10, threshold=0.1)
    with pytest.raises(xcoact.ParameterError, match=r"repeated study label"):
        cube.isel(study=[0, 1, 1]).coact.seed(SEED, r=10, threshold=0.1)


def test_layout_is_checked_for_one_seed_too(cube):
    with pytest.raises(xcoact.ParameterError, match=r"layout='cube' is not known; expected 'volume'"):
        cube.coact.seed(SEED, r=10, threshold=0.1, layout="cube")
    with pytest.raises(xcoact.ParameterError, match=r"layout='voxel' applies to batches of seeds"):
        cube.coact.seed(SEED, r=10, threshold=0.1, layout="voxel")
