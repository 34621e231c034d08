"""What xcoact keeps in memory: the imports, the table after the cube is built, the ROI overlaps' state.

Each test pins one cut of issue 10's memory budget (docs/performance.md, "Memory"): ``import xcoact``
leaves the heavy optional modules unimported, the cube does not keep the coordinate table alive, a
binary cube's chunks never build the by-voxel copy of their rows (the compiled overlap reads the
peaks), and the narrower scratch arrays of the row build change no row.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import warnings
import weakref

import numpy as np
import pytest

import xcoact
from xcoact import blocks, kernels
from xcoact.counts import cube_peaks
from xcoact.errors import XcoactWarning

#: Modules `import xcoact` must not import: each costs tens of MB of RSS (scipy.stats about 40) or
#: seconds, and only some analyses use them (imported there, on first use).
HEAVY = (
    "scipy.stats",
    "matplotlib",
    "nibabel",
    "nilearn",
    "zarr",
    "netCDF4",
    "distributed",
    "sklearn",
    "scipy.optimize",
    "scipy.interpolate",
    "scipy.integrate",
)


def test_import_leaves_heavy_optional_modules_unimported():
    code = f"import json, sys, xcoact; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


@pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")
def test_built_cube_does_not_keep_the_table_alive():
    """Once the cube is built (and a seed computed) the table and every array it held can be freed.

    Except the mm of the peaks (x, y and z are one array's columns): the cube shares them instead of copying them.
    """
    db = xcoact.read_database(xcoact.datasets.sample_database_path())
    refs = {"table": weakref.ref(db), **{v: weakref.ref(_root(db[v].values)) for v in db.variables}}
    act = xcoact.activations(db, r=6)
    del db
    gc.collect()
    shared = dict.fromkeys(("x", "y", "z"), False)
    assert {k: r() is None for k, r in refs.items()} == {**dict.fromkeys(refs, True), **shared}
    maps = act.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    assert maps.attrs["n_selected"] == 4  # the cube still works without the table


def _sample_cube(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.activations(xcoact.datasets.sample_database_path(), r=6, **kw)


def _roi_sets(grid) -> list[np.ndarray]:
    """ROIs (flat grid indices) near the middle, at the box's edges, partly outside the mask, tiny and large."""
    seeds = [
        ([[0, 20, 28]], 10),
        ([[-40, 20, 28], [40, -60, 0]], 12),
        ([[20, -60, -40]], 12),
        ([[0, -100, 0]], 20),
        ([[66, -20, 0]], 6),
        ([[0, 0, 0]], 2),
        ([[0, -20, 10]], 40),
    ]
    rois = [np.flatnonzero(xcoact.roi_mask(s, grid, r).values) for s, r in seeds]
    rng = np.random.default_rng(7)
    rois.append(rng.choice(grid.mask_flat, 300, replace=False))  # scattered voxels
    rois.append(np.arange(0, 400))  # a corner of the box: outside the brain mask
    rois.append(np.zeros(0, dtype=np.int64))
    return rois


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_compiled_overlap_equals_peaks_route_and_dense_counts():
    act = _sample_cube()
    grid = xcoact.mni152_2mm()
    src = cube_peaks(act)
    dense = act.values.reshape(act.sizes["study"], -1)
    for roi in _roi_sets(grid):
        inside = roi[grid.mask_index[roi] >= 0]
        expected = dense[:, inside].sum(axis=1)
        ijk_roi = np.column_stack(np.unravel_index(inside, grid.shape)) if inside.size else np.zeros((0, 3), int)
        if inside.size:
            lo = ijk_roi.min(axis=0)
            box = np.zeros(ijk_roi.max(axis=0) + 1 - lo, dtype=bool)
            box[tuple((ijk_roi - lo).T)] = True
            np.testing.assert_array_equal(
                kernels.roi_overlap(src.ijk - lo, src.codes, src.n_studies, src.offsets, box), expected
            )
        got = kernels.roi_overlap_compiled(src.ijk, src.codes, src.n_studies, src.offsets, inside, grid)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected)
    assert expected.sum() == 0  # the last ROI is empty


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_compiled_overlap_hands_large_rois_to_the_sort_route(monkeypatch):
    grid = xcoact.mni152_2mm()
    src = cube_peaks(_sample_cube())
    roi = np.flatnonzero(xcoact.roi_mask([[0, -20, 10]], grid, 40).values)
    small = kernels.roi_overlap_compiled(src.ijk, src.codes, src.n_studies, src.offsets, roi, grid)
    monkeypatch.setattr(kernels, "COMPILED_OVERLAP_PAIRS", 10)
    np.testing.assert_array_equal(
        kernels.roi_overlap_compiled(src.ijk, src.codes, src.n_studies, src.offsets, roi, grid), small
    )
    assert small.sum() > 0


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_binary_cube_never_builds_the_by_voxel_copy():
    """Seeds after the first read the peaks (compiled): the chunks keep their rows and totals only."""
    act = _sample_cube(chunks={"study": 30})
    seeds = [[[0, 20, 28]], [[-40, 20, 28]], [[40, -60, 0]], [[0, -50, 20]]]
    first = [act.coact.seed(s, r=10, threshold=0.1).compute() for s in seeds]
    chunks = [v for k, v in act.data.dask.items() if isinstance(v, blocks.StudyChunk)]
    assert len(chunks) == 4 and all(c.built and c._cols is None and c._overlaps == len(seeds) for c in chunks)
    fresh = _sample_cube(chunks={"study": 30})
    for s, maps in zip(seeds, first, strict=True):
        again = fresh.coact.seed(s, r=10, threshold=0.1).compute()  # each seed the first on its own cube
        fresh = _sample_cube(chunks={"study": 30})
        assert again.attrs["n_selected"] == maps.attrs["n_selected"]
        for name in maps.coact.maps:
            np.testing.assert_array_equal(again[name].values, maps[name].values)


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
@pytest.mark.parametrize("studies_per_bitmap", [1, 7, 64, 4096])
def test_rows_do_not_depend_on_the_scratch_bitmap_size(monkeypatch, studies_per_bitmap):
    src = cube_peaks(_sample_cube())
    indptr, indices = blocks.sparse_rows(src.ijk, src.codes, src.n_studies, src.offsets, src.grid)
    monkeypatch.setattr(blocks, "_BITMAP_STUDIES", studies_per_bitmap)
    indptr2, indices2 = blocks.sparse_rows(src.ijk, src.codes, src.n_studies, src.offsets, src.grid)
    np.testing.assert_array_equal(indptr2, indptr)
    np.testing.assert_array_equal(indices2, indices)
    assert indices.dtype == indices2.dtype


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_by_voxel_copy_is_the_transpose_with_32_bit_pointers():
    """Kernels without exact support still read overlaps by voxel: the copy is the rows' transpose."""
    src = cube_peaks(_sample_cube())
    indptr, indices = src.rows()
    colptr, study = src.cols()
    assert colptr.dtype == np.int32 and study.dtype == np.uint16
    rows_of = np.repeat(np.arange(src.n_studies), np.diff(indptr))
    order = np.lexsort((rows_of, indices))
    np.testing.assert_array_equal(study, rows_of[order])
    np.testing.assert_array_equal(colptr, np.searchsorted(indices[order], np.arange(src.grid.n_mask + 1)))


@pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")
def test_seed_on_a_cluster_leaves_each_persisted_block_where_it_is():
    """The grouped counts run per block on a cluster: no task pulls every block (rows and all) to one worker."""
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as client:
        cube = _sample_cube(chunks={"study": 20}).persist()
        distributed.wait(cube.data)
        keys = distributed.futures_of(cube.data)
        before = client.who_has(keys)
        assert len({w for ws in before.values() for w in ws}) == 2  # spread over both workers
        maps = cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
        again = cube.coact.seed([[-40, 20, 28]], r=10, threshold=0.1).compute()
        after = client.who_has(keys)
        # each block stays on its worker (Dask may copy one for a stolen task), and no worker holds them all
        assert all(set(before[k]) <= set(after[k]) for k in before)
        assert not any(all(w in ws for ws in after.values()) for w in client.scheduler_info()["workers"])
    local = _sample_cube(chunks={"study": 20})
    for got, seed in ((maps, [[0, 20, 28]]), (again, [[-40, 20, 28]])):
        ref = local.coact.seed(seed, r=10, threshold=0.1).compute()
        for name in ref.coact.maps:
            np.testing.assert_array_equal(got[name].values, ref[name].values)
