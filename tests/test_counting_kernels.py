"""The warm-seed kernels: counting rows by a narrow sparse product, the maps per distinct count pair."""

from __future__ import annotations

import numpy as np
import pytest

from xcoact.counts import row_counts
from xcoact.stats.neurosynth import coactivation_maps, fdr_threshold, one_way_p, p_to_z, pair_maps, two_way_p


def _csr(rng, n_rows: int, m: int, max_len: int):
    lens = rng.integers(0, max_len, n_rows)
    rows = [np.sort(rng.choice(m, size=k, replace=False)) for k in lens]
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    return indptr, indices


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_counts_equal_bincount_of_the_gathered_rows(seed):
    rng = np.random.default_rng(seed)
    m = 5_000
    indptr, indices = _csr(rng, 300, m, 400)
    rows = np.sort(rng.choice(300, size=120, replace=False))
    expected = np.bincount(np.concatenate([indices[indptr[r] : indptr[r + 1]] for r in rows]), minlength=m)
    got = row_counts(indptr, indices, rows, m)
    assert got.shape == (m,)
    assert np.array_equal(got, expected)


def test_row_counts_of_no_rows_or_empty_rows_are_zero():
    indptr = np.array([0, 0, 0, 3], dtype=np.int64)
    indices = np.array([1, 4, 7], dtype=np.int32)
    assert np.array_equal(row_counts(indptr, indices, np.zeros(0, np.int64), 10), np.zeros(10))
    assert np.array_equal(row_counts(indptr, indices, np.array([0, 1]), 10), np.zeros(10))
    assert np.array_equal(row_counts(indptr, indices, np.array([2]), 10), np.bincount([1, 4, 7], minlength=10))


def test_row_counts_past_65535_rows_do_not_wrap():
    # 70,000 rows all active at voxel 3: a 16-bit count would wrap to 4,464
    n = 70_000
    indptr = np.arange(n + 1, dtype=np.int64)
    indices = np.full(n, 3, dtype=np.int32)
    got = row_counts(indptr, indices, np.arange(n), 8)
    assert got[3] == n and got.sum() == n


@pytest.mark.parametrize("seed", [0, 3])
def test_pair_maps_gathered_are_the_per_voxel_formulas_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n_sel, n_uns = 60, 900
    a = rng.integers(0, 12, 20_000)
    b = rng.integers(0, 90, 20_000)
    a[:50] = 0
    b[:50] = 0  # voxels no study activates
    table, inverse = pair_maps(a, b, n_sel, n_uns, q=0.05, prior=0.3)
    maps = coactivation_maps(a, b, n_sel, n_uns, q=0.05, prior=0.3)
    for row, values in zip(table, maps.values()):
        assert np.array_equal(row[inverse], values)
    # the uniformity and association tests, and their FDR maps, evaluated voxel by voxel
    e = np.mean(a.astype(np.float64))
    p_uni = one_way_p(a, n_sel, e)
    z_uni = p_to_z(p_uni, np.sign(a - e))
    p_assoc = two_way_p(a, b, n_sel, n_uns)
    z_assoc = p_to_z(p_assoc, np.sign(a / n_sel - b / n_uns))
    dead = (a + b) == 0
    names = list(maps)
    assert np.array_equal(maps[names[5]], np.where(dead, 0.0, z_uni))
    assert np.array_equal(maps[names[6]], np.where(dead, 0.0, z_assoc))
    fdr_uni = np.where(p_uni <= fdr_threshold(p_uni, 0.05), z_uni, 0.0)
    fdr_assoc = np.where(p_assoc <= fdr_threshold(p_assoc, 0.05), z_assoc, 0.0)
    assert np.array_equal(maps[names[7]], np.where(dead, 0.0, fdr_uni))
    assert np.array_equal(maps[names[8]], np.where(dead, 0.0, fdr_assoc))
    assert np.count_nonzero(maps[names[8]]) > 0  # the FDR map is not trivially empty
