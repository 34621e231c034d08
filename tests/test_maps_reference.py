"""Acceptance: xcoact's nine maps equal the loop-based transcription of SPEC 3-6.

The oracle (tests/reference.py) is written independently of the package; it is
compared on the bundled 100-study sample for the amygdala and sgACC ROIs and
for coordinate seeds, through both counting routes (the sparse index of an
untouched cube, and the dense route of any re-chunked DataArray).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference
from conftest import COORD_SEEDS

import xcoact

PROB_TOL = 1e-9
Z_TOL = 1e-6

SEEDS = ["amygdala", "sgacc", "dacc", "dacc+dlpfc"]


def _seed_arg(key):
    if key in COORD_SEEDS:
        coords, r = COORD_SEEDS[key]
        return coords, {"r": r}
    path = {"amygdala": xcoact.datasets.amygdala_roi_path(), "sgacc": xcoact.datasets.sgacc_roi_path()}[key]
    return path, {}


def _assert_maps_match(ds, expected):
    assert ds.coact.maps == list(expected), "map names and order as in Neurosynth"
    for name, ref in expected.items():
        got = ds[name].transpose("x", "y", "z").values
        assert got.dtype == np.float64
        assert not np.isnan(got).any(), name
        tol = Z_TOL if "_z" in name else PROB_TOL
        diff = np.abs(got - ref).max()
        assert diff <= tol, f"{name}: max abs diff {diff}"


@pytest.mark.parametrize("route", ["sparse", "dense"])
@pytest.mark.parametrize("seed_key", SEEDS)
def test_maps_equal_loop_oracle(sample_cube, oracle, seed_key, route):
    expected, selected, n_roi = oracle(seed_key, 0.1)
    act = sample_cube if route == "sparse" else sample_cube.chunk({"study": 32})
    seed, kw = _seed_arg(seed_key)
    ds = act.coact.seed(seed, threshold=0.1, **kw).compute()
    assert ds.attrs["n_roi"] == n_roi
    assert sorted(ds["selected_id"].values.tolist()) == sorted(selected)
    assert ds.attrs["n_selected"] == len(selected)
    _assert_maps_match(ds, expected)


@pytest.mark.parametrize("threshold", [0, 5, 0.0, 0.05])
def test_integer_and_float_thresholds_match_oracle(sample_cube, oracle, threshold):
    expected, selected, _ = oracle("sgacc", threshold)
    ds = sample_cube.coact.seed(xcoact.datasets.sgacc_roi_path(), threshold=threshold).compute()
    assert ds.attrs["threshold_kind"] == ("count" if isinstance(threshold, int) else "proportion")
    assert sorted(ds["selected_id"].values.tolist()) == sorted(selected)
    _assert_maps_match(ds, expected)


def test_selection_is_strictly_greater(sample_cube):
    """A study whose overlap equals the threshold exactly is not selected (SPEC 5)."""
    roi = xcoact.datasets.sgacc_roi_path()
    ds = sample_cube.coact.seed(roi, threshold=0)
    overlap = ds["overlap"].values
    k = int(np.unique(overlap[overlap > 0])[0])  # smallest non-zero overlap
    at_k = sample_cube.coact.seed(roi, threshold=k)
    chosen = set(at_k["selected_id"].values.tolist())
    ids = sample_cube.study.values
    assert all(i not in chosen for i in ids[overlap == k])
    assert chosen == set(ids[overlap > k].tolist())
    # the same rule as a proportion: overlap / n_roi > t
    t = k / ds.attrs["n_roi"]
    as_prop = sample_cube.coact.seed(roi, threshold=t)
    assert set(as_prop["selected_id"].values.tolist()) == set(ids[overlap / ds.attrs["n_roi"] > t].tolist())


def test_tiny_hand_checkable_case(mni_mask):
    """SPEC section 7: three studies, r = 2 mm spheres (7 voxels)."""
    table = xcoact.table.make_table(
        ["s1", "s1", "s2", "s3"],
        [0.0, 10.0, 2.0, -30.0],
        [20.0, 20.0, 20.0, -40.0],
        [28.0, 28.0, 28.0, 10.0],
        ["MNI"] * 4,
        database="tiny",
        fmt="test",
    )
    act = xcoact.activations(table, r=2)
    assert int(act.sum()) == 7 * 4  # four spheres, the two of s1 do not touch
    ds = act.coact.seed([[0, 20, 28]], r=2, threshold=0.5).compute()
    assert ds["selected_id"].values.tolist() == ["s1"]
    peaks = [("s1", 0, 20, 28), ("s1", 10, 20, 28), ("s2", 2, 20, 28), ("s3", -30, -40, 10)]
    maps = reference.study_maps(peaks, mni_mask, 2)
    expected = reference.coactivation_maps(maps, ["s1"], mni_mask)
    _assert_maps_match(ds, expected)
    # by hand at the seed voxel (45, 73, 50): a = 1 (s1), b = 1 (s2): pA = 2/3, pAgF = 1, pAgU = 1/2
    at = {"x": 0.0, "y": 20.0, "z": 28.0}
    assert ds["pA"].sel(at).item() == pytest.approx(2 / 3)
    assert ds["pAgF"].sel(at).item() == 1.0
    assert ds["pFgA"].sel(at).item() == pytest.approx(0.5)
    assert ds["pA_given_pF=0.50"].sel(at).item() == pytest.approx(0.75)


def test_maps_are_zero_outside_mask_and_where_no_study_is_active(sample_cube):
    ds = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1).compute()
    mask = ds["brain_mask"].values
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pa = ds["pA"].values
    for name in ds.coact.maps:
        values = ds[name].values
        assert (values[~mask] == 0).all(), name
        assert (values[mask & (pa == 0)] == 0).all(), name
