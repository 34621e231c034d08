"""What the cube holds per peak, and what building a chunk's rows allocates besides the rows (issue 10, 10x memory)."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import xcoact
from xcoact import blocks
from xcoact.cube import DatabasePeaks
from xcoact.errors import XcoactWarning

SEED = [[0, 20, 28]]


@pytest.fixture(scope="module")
def db():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.read_database(xcoact.datasets.sample_database_path())


def _chunks(act) -> list:
    """The cube's StudyChunks as its graph holds them (no rows built)."""
    return [v for v in dict(act.data.dask).values() if isinstance(v, blocks.StudyChunk)]


def _held_per_peak(chunk, table) -> float:
    """Bytes a peak of the arrays a chunk holds per peak, not counting memory it shares with ``table``."""
    n = int(chunk.peak_ptr[-1])
    held = [
        a
        for a in vars(chunk).values()
        if isinstance(a, np.ndarray)
        and len(a) == n
        and not any(np.shares_memory(a, table[c].values) for c in ("x", "y", "z"))
    ]
    return sum(a.nbytes for a in held) / n


def test_a_peak_costs_the_cube_six_bytes(db):
    """int16 voxels; the mm are the table's own array; no per-peak study codes (they come from peak_ptr)."""
    act = xcoact.activations(db, r=6, chunks={"study": 30})
    peaks = DatabasePeaks(db, xcoact.mni152_2mm(), 6.0)
    assert peaks.ijk.dtype == np.int16 and np.shares_memory(peaks.xyz, db["x"].values)
    chunks = _chunks(act)
    assert len(chunks) == 4 and sum(c.peak_ptr[-1] for c in chunks) == db.sizes["peak"]
    for chunk in chunks:
        assert _held_per_peak(chunk, db) == 6.0
        assert chunk.nbytes() == chunk.xyz.nbytes + 6 * chunk.peak_ptr[-1] + chunk.peak_ptr.nbytes
        # the readers still get int64 voxels and study codes, and float64 mm
        assert chunk.ijk.dtype == chunk.codes.dtype == np.int64 and chunk.xyz.dtype == np.float64
        assert np.array_equal(chunk.ijk, xcoact.mni152_2mm().xyz_to_ijk(chunk.xyz))
        assert np.array_equal(np.bincount(chunk.codes, minlength=chunk.n_studies), np.diff(chunk.peak_ptr))
    with pytest.raises(ValueError, match="read-only"):
        chunks[0].xyz[0, 0] = 1.0  # the table's mm are shared, never written through the cube


def test_a_table_of_its_own_columns_or_out_of_order_gives_the_same_maps(db):
    """Separate x/y/z arrays are copied, rows not grouped by study are sorted: the maps do not change."""
    want = xcoact.activations(db, r=6).coact.seed(SEED, r=10, threshold=0.1).compute()
    own = db.copy(deep=True)  # each variable its own array: nothing to share
    order = np.random.default_rng(0).permutation(db.sizes["peak"])
    for table in (own, db.isel(peak=order)):
        act = xcoact.activations(table, r=6)
        assert not any(np.shares_memory(c.xyz, table["x"].values) for c in _chunks(act))
        got = act.coact.seed(SEED, r=10, threshold=0.1).compute()
        assert got.attrs["n_selected"] == want.attrs["n_selected"]
        for name in want.coact.maps:
            assert np.array_equal(got[name].values, want[name].values, equal_nan=True), name


def test_a_far_peak_keeps_int32_voxels(db):
    """A peak 100 m out does not fit int16: that cube's voxels are int32, its maps as without the peak."""
    far = db.copy(deep=True)
    far["x"].values[0] = 1e5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        act = xcoact.activations(far, r=6)
        (chunk,) = _chunks(act)
        assert chunk._ijk.dtype == np.int32 and chunk.ijk[0, 0] == xcoact.mni152_2mm().xyz_to_ijk([[1e5, 0, 0]])[0, 0]
        assert act.coact.seed(SEED, r=10, threshold=0.1).compute().attrs["n_selected"] >= 1


@pytest.fixture(scope="module")
def big_chunk():
    """1,024 synthetic studies (35 peaks each on average): a default chunk of a 10x database."""
    table = xcoact.datasets.synthetic(1024, seed=0)
    return DatabasePeaks(table, xcoact.mni152_2mm(), 6.0).chunk(0, 1024)


def test_row_building_allocates_little_besides_the_rows(big_chunk):
    """sparse_rows: a 16-study bitmap, the padded lookup and one buffer shrunk in place (46 MB before, 16 MB now)."""
    chunk, grid = big_chunk, big_chunk.grid
    codes, _ = chunk.codes, grid.mask_index  # the grid's lookup is made once per grid and kept: not a temporary
    tracemalloc.start()
    try:
        ptr, low = blocks.sparse_rows(chunk._ijk, codes, chunk.n_studies, chunk.offsets, grid, packed=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rows = ptr.nbytes + low.nbytes
    assert rows > 8e6 and low.dtype == np.uint16 and low.base is None  # the buffer itself, not a copy or a view
    # a 3.7 MB bitmap, the 5.1 MB padded lookup, the voxels of 16 studies' spheres at a time; 46 MB before (a 64-study
    # bitmap, the rows as pieces and again concatenated): either of those back would break this
    assert peak - rows < 18e6, (peak - rows) / 1e6
    # the same rows as a plain per-study union of the sphere voxels
    ijk, offsets = chunk.ijk, chunk.offsets
    indptr, indices = blocks.unpack_rows(ptr, low, blocks.n_pages(grid.n_mask))
    for s in (0, 1, 511, 1023):
        vox = (ijk[chunk.peak_ptr[s] : chunk.peak_ptr[s + 1], None, :] + offsets[None]).reshape(-1, 3)
        vox = vox[grid.in_box(vox)]
        flat = grid.mask_index[np.ravel_multi_index(tuple(vox.T), grid.shape)]
        assert np.array_equal(indices[indptr[s] : indptr[s + 1]], np.unique(flat[flat >= 0]))


def test_a_chunk_with_no_peak_near_the_grid_has_empty_rows():
    grid = xcoact.mni152_2mm()
    ptr, low = blocks.sparse_rows(np.array([[5000, 0, 0]]), np.array([0]), 2, np.zeros((1, 3), int), grid, packed=True)
    assert low.size == 0 and low.dtype == np.uint16 and ptr.tolist() == [0] * (2 * blocks.n_pages(grid.n_mask) + 1)


def test_release_freed_is_safe_to_call():
    blocks.release_freed()
    blocks.release_freed()
