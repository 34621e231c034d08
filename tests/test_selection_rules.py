"""The study-selection rules of ``seed`` against plain-loop oracles.

``overlap`` is SPEC section 5 (tested in test_maps_reference.py); here the
other three rules are recomputed from the coordinate table with Python loops
(``reference.peak_to_voxel`` for a peak's voxel, ``math.dist`` for
millimetres), independently of ``xcoact.select``:

* ``focus``: a study is selected when one of its peaks' voxels is in the ROI;
* ``distance``: when one of its peaks lies within r mm (inclusive) of a seed
  coordinate;
* ``nearest``: the k studies whose nearest peak is closest, ties broken by
  database order.

The maps of each rule's selection must equal the loop oracle's
(tests/reference.py) for that selection.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest
import reference
from conftest import _oracle_study_maps

import xcoact
from xcoact.errors import DegenerateSeedWarning, ParameterError, SelectionError, XcoactError

PROB_TOL = 1e-9
Z_TOL = 1e-6


# --- oracles: plain loops over the coordinate table --------------------------------------------------


def _peaks(table):
    """(study_id, x, y, z) rows in database order."""
    return list(
        zip(table.study_id.values.tolist(), table.x.values.tolist(), table.y.values.tolist(), table.z.values.tolist())
    )


def _study_order(peaks):
    order = []
    seen = set()
    for s, *_ in peaks:
        if s not in seen:
            seen.add(s)
            order.append(s)
    return order


def oracle_min_distance(peaks, coords):
    """Distance (mm) from each study's nearest peak to the nearest seed coordinate."""
    best = {}
    for s, x, y, z in peaks:
        for c in coords:
            d = math.dist((x, y, z), tuple(float(v) for v in c))
            if s not in best or d < best[s]:
                best[s] = d
    return best


def oracle_focus_counts(peaks, roi):
    """Peaks of each study whose voxel (SPEC 2 rounding) is an ROI voxel."""
    counts = {}
    for s, x, y, z in peaks:
        counts.setdefault(s, 0)
        if reference.peak_to_voxel(x, y, z) in roi:
            counts[s] += 1
    return counts


def oracle_nearest(peaks, coords, k):
    dist = oracle_min_distance(peaks, coords)
    order = _study_order(peaks)
    ranked = sorted(order, key=lambda s: (dist[s], order.index(s)))
    return set(ranked[:k])


def _assert_maps_equal_oracle(ds, selected_ids, mni_mask, study_maps=None):
    expected = reference.coactivation_maps(study_maps or _oracle_study_maps(), list(selected_ids), mni_mask)
    ds = ds.compute()
    for name, ref in expected.items():
        got = ds[name].transpose("x", "y", "z").values
        tol = Z_TOL if "_z" in name else PROB_TOL
        diff = float(np.abs(got - ref).max())
        assert diff <= tol, f"{name}: max abs diff {diff}"


def _ids(ds) -> set:
    return set(ds["selected_id"].values.tolist())


def _quiet_cube(table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(table, r=6)


# --- a tiny database whose peaks sit on rounding edges --------------------------------------------

#: (study, x, y, z): x = 1 and 3 both round to voxel i = 44 (x = 2 mm) under half to even
#: (44.5 -> 44, 43.5 -> 44), x = -1 to i = 46 (45.5 -> 46); study 4 is at the voxel centre x = 0.
TINY = [
    (1, 1.0, 20.0, 28.0),
    (2, 3.0, 20.0, 28.0),
    (3, -1.0, 20.0, 28.0),
    (4, 0.0, 20.0, 28.0),
    (5, -40.0, 20.0, 28.0),
    (6, 40.0, -60.0, 40.0),
]


@pytest.fixture
def tiny_cube(tmp_path):
    path = tmp_path / "tiny_database.txt"
    path.write_text("id\tx\ty\tz\tspace\n" + "".join(f"{s}\t{x}\t{y}\t{z}\tMNI\n" for s, x, y, z in TINY))
    return _quiet_cube(xcoact.read_database(str(path)))


def test_focus_uses_the_cubes_half_to_even_rounding(tiny_cube, mni_mask):
    # one-voxel ROIs (r = 1 mm < the 2 mm spacing) at x = 2, -2 and 0 mm
    for centre, expected in (([2, 20, 28], {1, 2}), ([-2, 20, 28], {3}), ([0, 20, 28], {4})):
        roi = reference.roi_from_coords([centre], 1, mni_mask)
        assert len(roi) == 1
        want = {s for s, n in oracle_focus_counts(TINY, roi).items() if n > 0}
        assert want == expected  # the oracle's reading of SPEC 2
        ds = tiny_cube.coact.seed([centre], r=1, select="focus")
        assert _ids(ds) == expected
        assert ds.attrs["n_roi"] == 1
        np.testing.assert_array_equal(ds["peaks_in_roi"].values, [1 if s in expected else 0 for s in range(1, 7)])


def test_focus_every_study_is_a_clear_error(tiny_cube):
    everywhere = [[x, y, z] for _, x, y, z in TINY]
    with pytest.raises(
        SelectionError, match=r"every one of the 6 studies reports a peak inside the ROI .*Use a smaller ROI"
    ):
        tiny_cube.coact.seed(everywhere, r=1, select="focus")


def test_distance_is_inclusive_at_exactly_r(tiny_cube):
    # study 4's only peak is exactly 10 mm below the seed; studies 1-3 are sqrt(101) mm away
    seed = [[0, 20, 38]]
    dist = oracle_min_distance(TINY, seed)
    assert dist[4] == 10.0 and min(dist[s] for s in (1, 2, 3)) > 10.0
    ds = tiny_cube.coact.seed(seed, r=10, select="distance")
    assert _ids(ds) == {4}
    assert ds["distance"].values[3] == 10.0
    with pytest.raises(SelectionError) as err:
        tiny_cube.coact.seed(seed, r=float(np.nextafter(10.0, 0.0)), select="distance")
    msg = str(err.value)
    assert "no study selected" in msg and "the nearest reported peak of the 6 studies is 10 mm from the seed" in msg
    assert "Raise r to at least 10" in msg


def test_cubes_whose_peaks_share_voxels_keep_their_own_millimetres(tmp_path):
    """Regression: two databases whose peaks round to the same voxels gave cubes of one Dask name,
    and the first cube's distance rule then measured from the second database's coordinates."""
    cubes = []
    for x in (1.0, 1.4):  # both round to voxel i = 44
        path = tmp_path / f"db_{x}.txt"
        path.write_text(
            "id\tx\ty\tz\tspace\n" + "".join(f"{s}\t{x if s == 1 else px}\t{py}\t{pz}\tMNI\n" for s, px, py, pz in TINY)
        )
        cubes.append(_quiet_cube(xcoact.read_database(str(path))))
    seed = [[0, 20, 38]]
    for cube, x in zip(cubes, (1.0, 1.4)):
        ds = cube.coact.seed(seed, r=10.05, select="distance")
        assert ds["distance"].values[0] == math.dist((x, 20, 28), (0, 20, 38))
    assert 1 in _ids(cubes[0].coact.seed(seed, r=10.05, select="distance"))  # sqrt(101) = 10.0499 <= 10.05


# --- the rules on the bundled sample ---------------------------------------------------------------


def test_focus_on_an_image_seed_matches_loop_oracle(sample_table, sample_cube, mni_mask):
    path = xcoact.datasets.amygdala_roi_path()
    roi = reference.roi_from_image(np.asarray(nib.load(path).dataobj, dtype=float), mni_mask)
    peaks = _peaks(sample_table)
    counts = oracle_focus_counts(peaks, roi)
    expected = {s for s, n in counts.items() if n > 0}
    assert 0 < len(expected) < 100
    ds = sample_cube.coact.seed(path, select="focus")
    assert _ids(ds) == expected
    np.testing.assert_array_equal(ds["peaks_in_roi"].values, [counts[s] for s in ds["study"].values.tolist()])
    a = ds.attrs
    assert a["select"] == "focus" and a["n_selected"] == len(expected) and a["n_roi"] == len(roi)
    assert (
        a["selection"]
        == f"focus: at least one reported peak inside the {len(roi)}-voxel ROI (NiMARE get_studies_by_mask)"
    )
    assert "threshold" not in a and "select_r" not in a and "select_k" not in a and "max_overlap" not in a
    assert "overlap" not in ds and ds["peaks_in_roi"].dims == ("study",)
    _assert_maps_equal_oracle(ds, expected, mni_mask)


@pytest.mark.parametrize("coords,r", [([[0, 20, 28]], 10), ([[0, 20, 28], [-40, 20, 28]], 6)])
def test_focus_on_coordinate_seeds_matches_loop_oracle(sample_table, sample_cube, mni_mask, coords, r):
    roi = reference.roi_from_coords(coords, r, mni_mask)
    counts = oracle_focus_counts(_peaks(sample_table), roi)
    ds = sample_cube.coact.seed(coords, r=r, select="focus")
    assert _ids(ds) == {s for s, n in counts.items() if n > 0}
    np.testing.assert_array_equal(ds["peaks_in_roi"].values, [counts[s] for s in ds["study"].values.tolist()])


@pytest.mark.parametrize("coords,r", [([[0, 20, 28]], 10), ([[0, 20, 28], [-40, 20, 28]], 8), ([[40, -60, 40]], 12.5)])
def test_distance_matches_loop_oracle(sample_table, sample_cube, coords, r):
    peaks = _peaks(sample_table)
    dist = oracle_min_distance(peaks, coords)
    expected = {s for s, d in dist.items() if d <= r}
    assert 0 < len(expected) < 100
    ds = sample_cube.coact.seed(coords, r=r, select="distance")
    assert _ids(ds) == expected
    np.testing.assert_allclose(ds["distance"].values, [dist[s] for s in ds["study"].values.tolist()], rtol=1e-12)
    a = ds.attrs
    assert a["select"] == "distance" and a["select_r"] == float(r) and "threshold" not in a
    assert a["selection"].startswith(f"distance: at least one reported peak within {r:g} mm (inclusive)")


def test_distance_inclusive_edge_on_the_sample(sample_table, sample_cube):
    """A seed placed exactly r mm from a study's nearest peak selects it; a hair less does not."""
    peaks = _peaks(sample_table)
    r = 8.0
    for s, x, y, z in peaks:
        if not all(float(v).is_integer() for v in (x, y, z)) or z > 90:
            continue
        seed = [[x, y, z + r]]
        dist = oracle_min_distance(peaks, seed)
        closer = [t for t, d in dist.items() if d < r]
        if dist[s] == r and closer:  # exactly r, and the selection stays non-empty just below r
            break
    else:
        pytest.fail("no integer peak of the sample gives an exact-distance seed")
    at_r = sample_cube.coact.seed(seed, r=r, select="distance")
    assert s in _ids(at_r) and _ids(at_r) == {t for t, d in dist.items() if d <= r}
    below = sample_cube.coact.seed(seed, r=float(np.nextafter(r, 0.0)), select="distance")
    assert s not in _ids(below) and _ids(below) == set(closer)


@pytest.mark.parametrize("k", [1, 7, 50, 99])
def test_nearest_matches_loop_oracle(sample_table, sample_cube, k):
    coords = [[0, 20, 28]]
    ds = sample_cube.coact.seed(coords, select="nearest", k=k)
    assert _ids(ds) == oracle_nearest(_peaks(sample_table), coords, k)
    a = ds.attrs
    assert a["select"] == "nearest" and a["select_k"] == k and a["n_selected"] == k and a["n_unselected"] == 100 - k
    assert a["selection"] == (
        f"nearest: the {k} studies whose nearest reported peak is closest to a seed coordinate "
        "(ties broken by database order)"
    )
    assert "threshold" not in a and "select_r" not in a


def _tie_seed(peaks):
    """A seed midway between two integer peaks of different studies, equally near to both studies."""
    integer = [p for p in peaks if all(float(v).is_integer() for v in p[1:])]
    for i, p in enumerate(integer[:400]):
        for q in integer[i + 1 : i + 400]:
            if p[0] == q[0] or any((a - b) % 2 for a, b in zip(p[1:], q[1:])) or p[1:] == q[1:]:
                continue
            seed = [[(a + b) / 2 for a, b in zip(p[1:], q[1:])]]
            dist = oracle_min_distance(peaks, seed)
            d = math.dist(p[1:], seed[0])
            if dist[p[0]] == d and dist[q[0]] == d:
                return seed, dist, d
    raise AssertionError("no tie found")


def test_nearest_ties_follow_database_order(sample_table, sample_cube):
    peaks = _peaks(sample_table)
    seed, dist, d = _tie_seed(peaks)
    order = _study_order(peaks)
    tied = [s for s in order if dist[s] == d]
    assert len(tied) >= 2
    k = sum(1 for v in dist.values() if v < d) + 1  # the cut falls inside the tie
    ds = sample_cube.coact.seed(seed, select="nearest", k=k)
    chosen = _ids(ds)
    assert tied[0] in chosen and not any(s in chosen for s in tied[1:])
    assert chosen == oracle_nearest(peaks, seed, k)
    # one more: the next tied study in database order joins
    assert _ids(sample_cube.coact.seed(seed, select="nearest", k=k + 1)) == chosen | {tied[1]}


def test_maps_of_distance_and_nearest_selections_equal_the_oracle(sample_table, sample_cube, mni_mask):
    coords = [[0, 20, 28], [-40, 20, 28]]
    peaks = _peaks(sample_table)
    dist = oracle_min_distance(peaks, coords)
    ds = sample_cube.coact.seed(coords, r=8, select="distance")
    _assert_maps_equal_oracle(ds, {s for s, v in dist.items() if v <= 8}, mni_mask)
    ds = sample_cube.coact.seed(coords, r=8, select="nearest", k=12)
    _assert_maps_equal_oracle(ds, oracle_nearest(peaks, coords, 12), mni_mask)


def test_overlap_is_the_default_rule(sample_cube):
    ds = sample_cube.coact.seed([[0, 20, 28]], 0.1, r=10)
    explicit = sample_cube.coact.seed([[0, 20, 28]], 0.1, r=10, select="overlap")
    assert _ids(ds) == _ids(explicit)
    assert (
        ds.attrs["select"] == "overlap" and ds.attrs["threshold"] == 0.1 and ds.attrs["threshold_kind"] == "proportion"
    )
    assert ds.attrs["selection"].startswith("overlap: a study's activation covers more than a proportion 0.1 of the")
    assert "overlap" in ds and "select_r" not in ds.attrs
    # no threshold: Neurosynth's 0.0
    assert sample_cube.coact.seed([[0, 20, 28]], r=10).attrs["threshold"] == 0.0


# --- errors ----------------------------------------------------------------------------------------

AMYGDALA = xcoact.datasets.amygdala_roi_path()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            dict(seed=[[0, 20, 28]], threshold=0.1, select="focus"),
            r"threshold=0\.1 applies to select='overlap' only; select='focus' selects every study with a peak inside the ROI",
        ),
        (
            dict(seed=[[0, 20, 28]], threshold=5, select="distance"),
            r"threshold=5 applies to select='overlap' only; select='distance' uses r \(mm\) instead",
        ),
        (
            dict(seed=[[0, 20, 28]], threshold=0.0, select="nearest", k=3),
            r"threshold=0\.0 applies to select='overlap' only; select='nearest' uses k \(studies\) instead",
        ),
        (
            dict(seed=[[0, 20, 28]], select="nearest"),
            r"k=None is not valid for select='nearest'; expected the number of studies to select, an int >= 1",
        ),
        (dict(seed=[[0, 20, 28]], select="nearest", k=0), r"k=0 is not valid for select='nearest'"),
        (dict(seed=[[0, 20, 28]], select="nearest", k=2.5), r"k=2\.5 is not valid for select='nearest'"),
        (dict(seed=[[0, 20, 28]], select="nearest", k=True), r"k=True is not valid for select='nearest'"),
        (dict(seed=[[0, 20, 28]], select="distance", k=3), r"k=3 applies to select='nearest' only"),
        (dict(seed=[[0, 20, 28]], k=3), r"k=3 applies to select='nearest' only"),
        (
            dict(seed=AMYGDALA, select="distance"),
            r"select='distance' measures millimetres from seed coordinates, but this seed is an image; pass coordinates",
        ),
        (
            dict(seed=AMYGDALA, select="nearest", k=5),
            r"select='nearest' measures millimetres from seed coordinates, but this seed is an image",
        ),
        (
            dict(seed=[[0, 20, 28]], select="peaks"),
            r"select='peaks' is not a known rule; expected one of 'overlap', 'focus', 'distance', 'nearest'\.",
        ),
        (dict(seed=[[0, 20, 28]], select=3), r"select=3 is not a known rule"),
        (
            dict(seed=[[0, 20, 28]], select="distance", r=0),
            r"r=0 is not a valid distance for select='distance'; expected a number of mm > 0",
        ),
    ],
)
def test_rule_parameter_errors(sample_cube, kwargs, message):
    kwargs = dict(kwargs)  # the parameters are shared: a second pytest run in one process (mutmut) sees them again
    seed = kwargs.pop("seed")
    with pytest.raises(ParameterError, match=message) as err:
        sample_cube.coact.seed(seed, **kwargs)
    assert isinstance(err.value, XcoactError) and isinstance(err.value, ValueError)


def test_batch_of_images_refuses_millimetre_rules(sample_cube):
    with pytest.raises(
        ParameterError, match=r"select='distance' measures millimetres from seed coordinates, but this seed is an image"
    ):
        sample_cube.coact.seed([AMYGDALA, xcoact.datasets.sgacc_roi_path()], select="distance")
    # a mixed batch names its image seeds
    with pytest.raises(
        ParameterError, match=r"select='nearest' measures millimetres .*but seeds \['amygdala_roi'\] are images"
    ):
        sample_cube.coact.seed([AMYGDALA, [[0, 20, 28]]], select="nearest", k=5)


def test_degenerate_selections_say_why(sample_table, sample_cube):
    peaks = _peaks(sample_table)
    # distance: r below the nearest peak; the message gives that distance
    seed = [[0, -40, -60]]
    nearest = min(oracle_min_distance(peaks, seed).values())
    assert nearest > 2
    with pytest.raises(SelectionError) as err:
        sample_cube.coact.seed(seed, r=2, select="distance")
    msg = str(err.value)
    assert f"the nearest reported peak of the 100 studies is {nearest:.4g} mm from the seed, farther than r=2 mm" in msg
    assert "Raise r to at least" in msg
    # distance: every study within r; the message gives the farthest study's distance
    seed = [[0, -20, 20]]
    farthest = max(oracle_min_distance(peaks, seed).values())
    with pytest.raises(SelectionError) as err:
        sample_cube.coact.seed(seed, r=math.ceil(farthest), select="distance")
    assert "every one of the 100 studies has a peak within" in str(err.value)
    assert f"Lower r below {farthest:.4g} mm" in str(err.value)
    # nearest: k = every study
    with pytest.raises(
        SelectionError, match=r"select='nearest' with k=100 selects every one of the 100 studies .*Use k < 100"
    ):
        sample_cube.coact.seed([[0, 20, 28]], select="nearest", k=100)
    with pytest.raises(SelectionError, match=r"k=250 selects every one of the 100 studies"):
        sample_cube.coact.seed([[0, 20, 28]], select="nearest", k=250)


def test_focus_with_no_peak_in_the_roi(sample_table, sample_cube, mni_mask):
    # a one-voxel ROI that no peak rounds into
    seed = [[0, -40, -60]]
    roi = reference.roi_from_coords(seed, 1, mni_mask)
    assert not any(oracle_focus_counts(_peaks(sample_table), roi).values())
    with pytest.raises(SelectionError, match=r"none of the 100 studies reports a peak inside the 1 ROI voxels"):
        sample_cube.coact.seed(seed, r=1, select="focus")


# --- batches use the same rule ---------------------------------------------------------------------

BATCH = [[0, 20, 28], [-40, 20, 28], [40, -60, 40]]


@pytest.mark.parametrize("rule", [dict(select="focus"), dict(select="distance"), dict(select="nearest", k=9)])
def test_separate_batch_equals_single_runs(sample_cube, rule):
    batch = sample_cube.coact.seed(BATCH, r=10, separate=True, **rule)
    assert batch.attrs["select"] == rule["select"] and batch.attrs["selection"]
    score = {"focus": "peaks_in_roi"}.get(rule["select"], "distance")
    assert batch[score].dims == ("seed", "study")
    computed = batch.isel(seed=[0, 2]).compute()
    for i, coords in enumerate(BATCH):
        one = sample_cube.coact.seed([coords], r=10, **rule)
        got = set(batch["study"].values[batch["selected"].values[i]].tolist())
        assert got == _ids(one)
        assert int(batch["n_selected"].values[i]) == one.attrs["n_selected"]
        np.testing.assert_array_equal(batch[score].values[i], one[score].values)
        if i != 1:  # two seeds' maps in full: the batch route vs the single-seed route
            one = one.compute()
            for name in one.coact.maps:
                np.testing.assert_allclose(computed[name].values[[0, 2].index(i)], one[name].values, rtol=0, atol=1e-12)


def test_atlas_batch_with_focus_equals_single_runs(sample_cube, tmp_path):
    amy = nib.load(AMYGDALA)
    sg = nib.load(xcoact.datasets.sgacc_roi_path())
    atlas = np.zeros(amy.shape, dtype=np.int16)
    atlas[np.asarray(amy.dataobj) > 0] = 1
    atlas[np.asarray(sg.dataobj) > 0] = 2
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(atlas, amy.affine), path)
    batch = sample_cube.coact.seed(str(path), by_label=True, select="focus")
    assert batch.sizes["seed"] == 2
    for i, label in enumerate((1, 2)):
        one = sample_cube.coact.seed(nib.Nifti1Image((atlas == label).astype(np.uint8), amy.affine), select="focus")
        assert set(batch["study"].values[batch["selected"].values[i]].tolist()) == _ids(one)
        np.testing.assert_array_equal(batch["peaks_in_roi"].values[i], one["peaks_in_roi"].values)


def test_degenerate_seed_of_a_batch_is_nan_with_a_warning(sample_table, sample_cube):
    seeds = [[0, 20, 28], [0, -40, -60]]
    nearest = min(oracle_min_distance(_peaks(sample_table), [seeds[1]]).values())
    assert nearest > 10 >= min(oracle_min_distance(_peaks(sample_table), [seeds[0]]).values())
    with pytest.warns(DegenerateSeedWarning) as record:
        batch = sample_cube.coact.seed(seeds, r=10, separate=True, select="distance")
    msg = " ".join(str(w.message) for w in record if issubclass(w.category, DegenerateSeedWarning))
    assert "1 of 2 seeds give NaN maps" in msg
    assert f"'0_-40_-60' (no study selected; nearest peak {nearest:.4g} mm" in msg
    np.testing.assert_array_equal(batch["valid"].values, [True, False])
    assert int(batch["n_selected"].values[1]) == 0
    assert np.isnan(batch["pFgA"].isel(seed=1).values).all()
    assert not np.isnan(batch["pFgA"].isel(seed=0).values).any()


# --- the command line ------------------------------------------------------------------------------


def test_cli_prints_the_rule_and_the_count(sample_table, tmp_path):
    coords = [[0, 20, 28]]
    expected = {s for s, d in oracle_min_distance(_peaks(sample_table), coords).items() if d <= 10}
    out = tmp_path / "by_distance"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xcoact.cli",
            "coactivation",
            "--seed",
            "0,20,28",
            "--r",
            "10",
            "--select",
            "distance",
            "--outroot",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        "selection rule: distance: at least one reported peak within 10 mm (inclusive) of a seed coordinate "
        "(Neurosynth 0.3.8 get_studies(peaks=...), NiMARE get_studies_by_coordinate)"
    ) in lines
    assert f"studies selected: {len(expected)} of 100" in lines
    assert os.path.exists(f"{out}_pFgA.nii.gz")


def test_cli_rule_errors_exit_2(capsys, tmp_path):
    from xcoact.cli import main

    assert main(["coactivation", "--seed", "0,20,28", "--select", "nearest", "--outroot", str(tmp_path / "x")]) == 2
    assert "xcoact: error: k=None is not valid for select='nearest'" in capsys.readouterr().err
    assert (
        main(
            [
                "coactivation",
                "--seed",
                "0,20,28",
                "--select",
                "focus",
                "--threshold",
                "0.1",
                "--outroot",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "threshold=0.1 applies to select='overlap' only" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
