"""``contrast``: the studies seed A selects against those seed B selects.

The maps must equal the loop oracle (tests/reference.py) run on the studies
of the two groups only, with F = group A and U = group B (Neurosynth's
``MetaAnalysis(dataset, ids, ids2)``).  The groups are recomputed here with
plain loops over the coordinate table; studies selected by both seeds go
where ``both`` says and are never counted twice.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import reference
from conftest import _oracle_study_maps
from test_selection_rules import _peaks, oracle_min_distance, oracle_nearest

import xcoact
from xcoact.errors import ParameterError, SelectionError

PROB_TOL = 1e-9
Z_TOL = 1e-6

#: Two nearby coordinate seeds whose distance selections overlap (18 and 18 studies, 11 shared).
SEED_A = [[-40, 20, 28]]
SEED_B = [[-44, 28, 28]]
R = 12


def _groups(sample_table, both):
    peaks = _peaks(sample_table)
    a = {s for s, d in oracle_min_distance(peaks, SEED_A).items() if d <= R}
    b = {s for s, d in oracle_min_distance(peaks, SEED_B).items() if d <= R}
    shared = a & b
    f = a - shared if both in ("exclude", "b") else a
    u = b - shared if both in ("exclude", "a") else b
    return a, b, shared, f, u


def _assert_maps(ds, f, u, mni_mask):
    maps = _oracle_study_maps()
    sub = {s: maps[s] for s in maps if s in f or s in u}  # N = n_F + n_U: the other studies are left out
    expected = reference.coactivation_maps(sub, list(f), mni_mask)
    ds = ds.compute()
    for name, ref in expected.items():
        got = ds[name].transpose("x", "y", "z").values
        tol = Z_TOL if "_z" in name else PROB_TOL
        diff = float(np.abs(got - ref).max())
        assert diff <= tol, f"{name}: max abs diff {diff}"
    return ds


def _assert_probabilities_bounded(ds):
    for name in ds.coact.maps:
        if name.startswith("p"):
            values = ds[name].values
            assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-12, f"{name} leaves [0, 1]: {values.max()}"


@pytest.mark.parametrize("both", ["exclude", "a", "b"])
def test_contrast_maps_equal_oracle_for_each_both_rule(sample_table, sample_cube, mni_mask, both):
    a, b, shared, f, u = _groups(sample_table, both)
    assert shared and a - shared and b - shared  # the seeds overlap, and each has studies of its own
    ds = sample_cube.coact.contrast(SEED_A, SEED_B, r=R, select="distance", both=both)
    ids = ds["study"].values.tolist()
    assert set(ds["selected_id"].values.tolist()) == f
    assert set(ds["selected_b_id"].values.tolist()) == u
    assert set(ds["both_id"].values.tolist()) == shared
    assert ds["group"].values.tolist() == [1 if s in f else 2 if s in u else 0 for s in ids]
    at = ds.attrs
    assert (at["n_a"], at["n_b"], at["n_both"], at["both"]) == (len(f), len(u), len(shared), both)
    assert (at["n_selected"], at["n_unselected"]) == (len(f), len(u))
    assert at["select"] == "distance" and at["select_r"] == R and at["analysis"] == "contrast (seed A vs seed B)"
    assert at["seed_a"] != at["seed_b"]
    peaks = _peaks(sample_table)
    for side, seed in (("a", SEED_A), ("b", SEED_B)):
        dist = oracle_min_distance(peaks, seed)
        np.testing.assert_allclose(ds[f"distance_{side}"].values, [dist[s] for s in ids], rtol=1e-12)
    computed = _assert_maps(ds, f, u, mni_mask)
    _assert_probabilities_bounded(computed)


def test_shared_studies_are_never_counted_twice(sample_table, sample_cube):
    """With overlapping groups, counting shared studies in both (Neurosynth 0.3.8) would push n_F + n_U past the studies."""
    a, b, shared, _, _ = _groups(sample_table, "exclude")
    for both in ("exclude", "a", "b"):
        ds = sample_cube.coact.contrast(SEED_A, SEED_B, r=R, select="distance", both=both)
        f = set(ds["selected_id"].values.tolist())
        u = set(ds["selected_b_id"].values.tolist())
        assert not f & u
        assert len(f) + len(u) == len(a | b) - (len(shared) if both == "exclude" else 0)


def test_both_error_names_the_shared_studies(sample_table, sample_cube):
    _, _, shared, _, _ = _groups(sample_table, "exclude")
    with pytest.raises(SelectionError) as err:
        sample_cube.coact.contrast(SEED_A, SEED_B, r=R, select="distance", both="error")
    msg = str(err.value)
    assert msg.startswith(f"{len(shared)} studies are selected by both seeds (e.g. [")
    first = [s for s in sample_cube["study"].values.tolist() if s in shared][:5]
    assert str(first) in msg
    assert "choose both='exclude' (leave them out), 'a' or 'b' (count them in one group)" in msg


def test_disjoint_seeds_give_the_same_maps_for_every_both_rule(sample_table, sample_cube, mni_mask):
    peaks = _peaks(sample_table)
    a_seed, b_seed = [[0, 20, 28]], [[40, -60, 40]]
    a = {s for s, d in oracle_min_distance(peaks, a_seed).items() if d <= 10}
    b = {s for s, d in oracle_min_distance(peaks, b_seed).items() if d <= 10}
    assert a and b and not a & b
    results = [
        sample_cube.coact.contrast(a_seed, b_seed, r=10, select="distance", both=both).compute()
        for both in ("exclude", "a", "b", "error")
    ]
    assert results[0].attrs["n_both"] == 0 and results[0]["both_id"].size == 0
    for other in results[1:]:
        for name in results[0].coact.maps:
            np.testing.assert_array_equal(other[name].values, results[0][name].values)
    _assert_maps(results[0], a, b, mni_mask)


def test_overlap_rule_contrast_of_two_images(sample_cube, mni_mask):
    maps = _oracle_study_maps()
    rois = []
    for path in (xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path()):
        rois.append(reference.roi_from_image(np.asarray(nib.load(path).dataobj, dtype=float), mni_mask))
    a, b = (set(reference.select(maps, roi, 0.05)) for roi in rois)
    shared = a & b
    ds = sample_cube.coact.contrast(xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path(), 0.05)
    assert ds.attrs["select"] == "overlap" and ds.attrs["threshold"] == 0.05 and ds.attrs["both"] == "exclude"
    assert (ds.attrs["n_roi_a"], ds.attrs["n_roi_b"]) == (len(rois[0]), len(rois[1]))
    assert ds["overlap_a"].dims == ("study",) and "overlap_b" in ds
    _assert_probabilities_bounded(_assert_maps(ds, a - shared, b - shared, mni_mask))


def test_nearest_rule_contrast_groups(sample_table, sample_cube):
    peaks = _peaks(sample_table)
    a_seed, b_seed = [[0, 20, 28]], [[0, -60, 28]]
    a, b = oracle_nearest(peaks, a_seed, 15), oracle_nearest(peaks, b_seed, 15)
    ds = xcoact.analyses.contrast.contrast(sample_cube, a_seed, b_seed, select="nearest", k=15, both="a")
    assert set(ds["selected_id"].values.tolist()) == a
    assert set(ds["selected_b_id"].values.tolist()) == b - a
    assert ds.attrs["select_k"] == 15 and ds.attrs["n_both"] == len(a & b)


def test_empty_group_is_an_error(sample_table, sample_cube):
    a, _, _, _, _ = _groups(sample_table, "exclude")
    with pytest.raises(
        SelectionError,
        match=(
            rf"group A of the contrast is empty: every study seed A selects \({len(a)}\) is also selected by the other "
            r"seed and both='exclude' leaves it out\. Use both='a' or 'b', or other seeds\."
        ),
    ):
        sample_cube.coact.contrast(SEED_A, SEED_A, r=R, select="distance")
    with pytest.raises(SelectionError, match=r"group B of the contrast is empty: .*both='a' leaves it out"):
        sample_cube.coact.contrast(SEED_A, SEED_A, r=R, select="distance", both="a")
    with pytest.raises(SelectionError, match=r"group A of the contrast is empty: .*both='b' leaves it out"):
        sample_cube.coact.contrast(SEED_A, SEED_A, r=R, select="distance", both="b")


def test_a_seed_that_selects_nothing_says_so(sample_cube):
    with pytest.raises(SelectionError, match=r"no study selected for .*select='distance'.*farther than r=2 mm"):
        sample_cube.coact.contrast(SEED_A, [[0, -40, -60]], r=2, select="distance")


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (
            dict(both="neither"),
            ParameterError,
            r"both='neither' is not known; expected one of 'exclude', 'a', 'b', 'error'\.",
        ),
        (dict(both=None), ParameterError, r"both=None is not known"),
        (
            dict(seed_b=[xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path()]),
            ParameterError,
            r"seed_b is a list of seeds; a contrast takes one seed on each side\.",
        ),
        (
            dict(seed_b=xcoact.datasets.sgacc_roi_path(), select="distance"),
            ParameterError,
            r"select='distance' measures millimetres from seed coordinates, but this seed is an image",
        ),
        (dict(threshold=0.1, select="focus"), ParameterError, r"threshold=0\.1 applies to select='overlap' only"),
        (dict(select="nearest"), ParameterError, r"k=None is not valid for select='nearest'"),
        (dict(q=0), ParameterError, r"q=0 is not valid; expected a number strictly between 0 and 1"),
    ],
)
def test_contrast_parameter_errors(sample_cube, kwargs, error, message):
    args = dict(seed_a=SEED_A, seed_b=SEED_B, r=R)
    args.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            sample_cube.coact.contrast(args.pop("seed_a"), args.pop("seed_b"), **args)
