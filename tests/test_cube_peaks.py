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
