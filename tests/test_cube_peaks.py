"""counts.cube_peaks gathers a cube's peaks from its blocks, whatever the study chunking."""

from __future__ import annotations

import numpy as np

import xcoact
from xcoact.counts import cube_peaks


def test_peaks_of_a_many_chunk_cube_equal_the_one_chunk_cube():
    table = xcoact.read_database(xcoact.datasets.sample_database_path())
    one = xcoact.activations(table, r=6)
    many = one.chunk({"study": 37})
    assert len(many.chunks[0]) > 1
    a, b = cube_peaks(one), cube_peaks(many)
    assert a.n_studies == b.n_studies
    # same peaks with the same study codes, in the same order
    np.testing.assert_array_equal(a.ijk, b.ijk)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(np.asarray(a.studies), np.asarray(b.studies))


def test_overlap_ignores_roi_voxels_outside_the_mask_on_every_call():
    # the first call counts from the peaks, later calls from the rows: both leave out-of-mask voxels out
    table = xcoact.read_database(xcoact.datasets.sample_database_path())
    chunk = cube_peaks(xcoact.activations(table, r=6))
    grid = chunk.grid
    inside = np.flatnonzero(grid.mask_flat)
    outside = np.flatnonzero(~np.asarray(grid.mask_flat, dtype=bool))
    # an ROI: study 0's active voxels plus every out-of-mask voxel of the grid
    indptr, indices = chunk.rows()[:2]
    near = np.sort(inside[indices[indptr[0] : indptr[1]]])
    roi = np.union1d(near, outside)
    first = chunk.overlap(roi)  # the peaks route: the first call
    second = chunk.overlap(roi)
    only_inside = chunk.overlap(near)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(second, only_inside)
    assert first.sum() > 0
