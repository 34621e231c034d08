"""Counting of xcoact/counts.py against brute-force NumPy sums (the mutation run of issue 17).

tests/test_mutants_engine.py checks the boolean cubes; here the value cubes
(``grouped_counts(..., op=...)``, what ALE and the weighted kernels count) are
checked: each result is a plain loop over the studies of a small dense cube,
through the public functions only, so the tests hold whatever the engine's
routes, chunks or compiled kernels are.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.counts import OPS, grouped_counts
from xcoact.errors import ParameterError

_AFFINE = [[2, 0, 0, -4], [0, 2, 0, -4], [0, 0, 2, -2], [0, 0, 0, 1]]


def _grid() -> xcoact.Grid:
    mask = np.ones((5, 4, 3), dtype=bool)
    mask[0, 0, :] = False
    mask[4, 3, 2] = False
    return xcoact.Grid((5, 4, 3), _AFFINE, mask, name="tiny")


def _values(n_studies: int = 7, seed: int = 0) -> np.ndarray:
    """Values in [0, 1) with many exact zeros, one value 1 (log1p(-1) = -inf is part of the contract)."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0, 0.9, (n_studies, 5, 4, 3))
    v[rng.uniform(size=v.shape) < 0.5] = 0.0
    return v


def _cube(values: np.ndarray, study_chunk: int, order=("study", "x", "y", "z")) -> xr.DataArray:
    act = xr.DataArray(
        da.from_array(values, chunks=(study_chunk, -1, -1, -1)),
        dims=("study", "x", "y", "z"),
        coords={"study": np.arange(100, 100 + values.shape[0])},
    )
    return act.transpose(*order)


def _brute(values: np.ndarray, weights: np.ndarray, mask: np.ndarray, op: str) -> np.ndarray:
    """Per group and in-mask voxel (C order), the loop over studies the docstring of grouped_counts states."""
    flat = values.reshape(values.shape[0], -1)[:, mask.reshape(-1)]
    out = np.zeros((weights.shape[0], flat.shape[1]))
    for g in range(weights.shape[0]):
        for s in range(values.shape[0]):
            if weights[g, s] == 0:
                continue  # a study out of the group adds nothing, even where log1p(-1) = -inf
            for v in range(flat.shape[1]):
                x = flat[s, v]
                if op == "sum":
                    out[g, v] += weights[g, s] * x
                elif op == "count":
                    out[g, v] += weights[g, s] * (x != 0)
                else:
                    out[g, v] += weights[g, s] * (np.log1p(-x) if x < 1 else -np.inf)
    return out


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(("study_chunk", "order"), [(7, ("study", "x", "y", "z")), (3, ("z", "study", "y", "x"))])
def test_grouped_values_equal_a_loop_over_studies(op, study_chunk, order):
    grid = _grid()
    values = _values()
    values[2, 3, 2, 1] = 1.0  # certain activation: -inf in log1m_sum
    weights = np.array([[1, 0, 1, 1, 0, 0, 1], [0, 1, 1, 0, 0, 1, 0], [2, 1, 0, 0, 3, 0, 1]])
    got = grouped_counts(_cube(values, study_chunk, order), weights, grid, op=op).compute()
    expected = _brute(values, weights, grid.mask, op)
    assert got.shape == (3, int(grid.mask.sum()))
    # integer weights: "count" counts in int32 (the docstring's contract), the value ops sum in float64
    assert got.dtype == (np.int32 if op == "count" else np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_grouped_counts_of_a_boolean_cube_are_int32_counts():
    grid = _grid()
    values = _values() > 0
    weights = np.array([[True, False, True, True, False, False, True], [True] * 7])
    got = grouped_counts(_cube(values, 3), weights, grid).compute()
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, _brute(values.astype(float), weights.astype(int), grid.mask, "sum"))
    # float weights on a boolean cube: weighted sums in float64
    fw = np.array([[0.5, 0.0, 0.25, 1.0, 0.0, 2.0, 0.125]])
    got = grouped_counts(_cube(values, 3), fw, grid).compute()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _brute(values.astype(float), fw, grid.mask, "sum"), rtol=1e-15)


def test_grouped_counts_refuses_an_unknown_op():
    with pytest.raises(ParameterError, match=r"op='max' is not known; expected one of \['sum', 'count', 'log1m_sum'\]"):
        grouped_counts(_cube(_values(), 7), np.ones((1, 7)), _grid(), op="max")
