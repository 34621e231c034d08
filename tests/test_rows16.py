"""Issue 10, memory: a binary chunk keeps its rows as 16-bit voxel numbers in pages of 65,536 voxels."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import xcoact
from xcoact import blocks
from xcoact.blocks import n_pages, pieces_of, sparse_rows, unpack_rows
from xcoact.counts import canonical, count_rows, row_counts


def _blocks(act) -> list:
    return [b.compute() for b in canonical(act).to_delayed(optimize_graph=False).ravel()]


@pytest.fixture(scope="module")
def cubes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        sample = xcoact.read_database(xcoact.datasets.sample_database_path())
        return {
            "sample": xcoact.activations(sample, r=6, chunks={"study": 40}),
            "synthetic": xcoact.activations(xcoact.datasets.synthetic(300, seed=3), r=6, chunks={"study": 128}),
        }


def _gathered_bincount(indptr, indices, rows, m):
    picked = [indices[indptr[r] : indptr[r + 1]] for r in rows]
    return np.bincount(np.concatenate(picked) if picked else np.zeros(0, np.int64), minlength=m)


@pytest.mark.parametrize("name", ["sample", "synthetic"])
def test_kept_rows_are_16_bit_and_count_as_their_decoded_int32_rows(cubes, name):
    rng = np.random.default_rng(5)
    for block in _blocks(cubes[name]):
        chunk = pieces_of(block)[0].chunk
        ptr, low, pages = chunk.paged()
        m = chunk.grid.n_mask
        assert m > 65_536 and pages == n_pages(m) == 4  # voxel numbers past 16 bits: the page holds the rest
        held = chunk.nbytes()
        indptr, indices = chunk.rows()
        assert chunk.nbytes() == held  # the int32 rows are decoded for the caller, not kept
        # decoding gives exactly the rows built from the peaks
        want_ptr, want_idx = sparse_rows(chunk.ijk, chunk.codes, chunk.n_studies, chunk.offsets, chunk.grid)
        np.testing.assert_array_equal(indptr, want_ptr)
        np.testing.assert_array_equal(indices, want_idx)
        assert indices.dtype == np.int32 and indices.max() > 65_535
        # 2 bytes an entry plus one pointer per study and page: about half the int32 CSR
        assert low.dtype == np.uint16 and low.nbytes == 2 * indices.size
        assert ptr.nbytes == 8 * (chunk.n_studies * pages + 1)
        assert low.nbytes + ptr.nbytes < 0.6 * (indices.nbytes + indptr.nbytes)
        for n in (1, chunk.n_studies // 3, chunk.n_studies):
            rows = np.sort(rng.choice(chunk.n_studies, n, replace=False))
            got = row_counts(ptr, low, rows, m, pages)
            assert got.dtype == np.uint16
            np.testing.assert_array_equal(got, _gathered_bincount(indptr, indices, rows, m))
        assert chunk.totals().dtype == np.uint16  # a chunk's count of studies fits 16 bits too
        np.testing.assert_array_equal(chunk.totals(), np.bincount(indices, minlength=m))


def test_pages_split_voxel_numbers_at_every_edge_and_count_back():
    grid = xcoact.mni152_2mm()
    m = grid.n_mask
    lists = [[], [0, 65_535, 65_536, 131_071, 131_072, m - 1], [65_536], [], [5, 196_608]]
    # one peak at each listed in-mask voxel, a kernel of that voxel alone
    codes = np.repeat(np.arange(len(lists)), [len(v) for v in lists])
    ijk = np.column_stack(np.unravel_index(grid.mask_flat[np.concatenate(lists).astype(np.int64)], grid.shape))
    ptr, low = sparse_rows(ijk, codes, len(lists), np.zeros((1, 3), np.int64), grid, packed=True)
    assert m > 3 * 65_536 and n_pages(m) == 4 and ptr.size == len(lists) * 4 + 1 and low.dtype == np.uint16
    # study 1: two voxels on pages 0 and 1, one on pages 2 and 3
    assert np.diff(ptr)[4:8].tolist() == [2, 2, 1, 1] and low[:6].tolist() == [0, 65_535, 0, 65_535, 0, m - 1 - 196_608]
    indptr, indices = unpack_rows(ptr, low, 4)
    assert indices.dtype == np.int32 and [indices[indptr[s] : indptr[s + 1]].tolist() for s in range(5)] == lists
    for rows in ([1], [1, 2, 4], [0, 3], [4, 4, 1], range(5)):
        rows = np.asarray(rows)
        np.testing.assert_array_equal(row_counts(ptr, low, rows, m, 4), _gathered_bincount(indptr, indices, rows, m))
    out = np.full(m, 7, dtype=np.int32)  # adds to what is there
    count_rows(ptr, low, np.array([1]), out, 4)
    assert out[[0, 65_535, 65_536, m - 1]].tolist() == [8, 8, 8, 8] and out.sum() == 7 * m + 6
    assert [n_pages(n) for n in (0, 1, 65_536, 65_537, 228_453)] == [1, 1, 1, 2, 4]


def test_a_moved_block_carries_its_16_bit_rows_and_does_not_rebuild(cubes, monkeypatch):
    block = _blocks(cubes["synthetic"])[0]
    chunk = block.chunk
    ptr, low, _ = chunk.paged()
    wire = pickle.dumps(block)  # how Dask moves a persisted block between workers
    assert len(wire) < low.nbytes + ptr.nbytes + chunk.ijk.nbytes * 4  # 2 bytes an entry, not 4
    monkeypatch.setattr(blocks, "sparse_rows", lambda *a, **k: pytest.fail("the rows were rebuilt"))
    moved = pickle.loads(wire)
    assert moved.chunk.paged()[1].dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(moved), np.asarray(block))
