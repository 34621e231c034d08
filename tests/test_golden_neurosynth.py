"""xcoact against Neurosynth 0.3.8 itself: the golden files of tests/golden/.

``tests/golden/make.py`` ran Neurosynth's own ``Dataset``, ``get_studies`` and
``MetaAnalysis`` (``network.coactivation`` where it applies) on the bundled
sample for 14 seeds and stored its selected study ids and its nine float64 maps
(see tests/golden/README.md).  Here xcoact, through its public API only, must
select the same studies and give the same maps, value for value.
"""

from __future__ import annotations

import json
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
import scipy

import xcoact
from xcoact.errors import XcoactWarning

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
with open(os.path.join(GOLDEN, "cases.json")) as _fh:
    MANIFEST = json.load(_fh)
CASES = {case["name"]: case for case in MANIFEST["cases"]}
# z maps pass through scipy's chdtrc and ndtri: bit-identical under the scipy that made the files
Z_RTOL = 0.0 if scipy.__version__ == MANIFEST["made_with"]["scipy"] else 1e-12

pytestmark = pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")


def golden_maps(name: str) -> dict[str, np.ndarray]:
    """Neurosynth's nine maps of a case, float64 vectors over the in-mask voxels (C order)."""
    with np.load(os.path.join(GOLDEN, f"{name}.npz"), allow_pickle=False) as z:
        rows, index = z["rows"], z["index"]
    return {map_name: rows[index, j] for j, map_name in enumerate(CASES[name]["maps"])}


def seed_call(case: dict) -> tuple[object, dict]:
    """The xcoact seed and keyword arguments that ask what the case asked Neurosynth."""
    kwargs = {"q": case["q"], "prior": case["prior"]}
    if case["kind"] == "image":
        seed = os.path.join(os.path.dirname(xcoact.datasets.sample_database_path()), case["seed"])
    else:
        seed = case["seed"]
        kwargs["r"] = case["r"]
    if case["kind"] == "peaks":
        kwargs["select"] = "distance"  # network.coactivation's rule for coordinates in 0.3.8
    elif case["threshold"] is not None:
        kwargs["threshold"] = case["threshold"]
    return seed, kwargs


@pytest.fixture(scope="module")
def mask():
    """Neurosynth's brain mask: the template's non-zero voxels (its vector order is C order)."""
    return np.asarray(nib.load(xcoact.datasets.template_path()).dataobj) != 0


@pytest.fixture(scope="module")
def cubes():
    """The sample's activation cubes for the kernel radii of the golden cases."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        db = xcoact.read_database(xcoact.datasets.sample_database_path())
        return {r: xcoact.activations(db, r=r) for r in sorted({c["kernel_r"] for c in CASES.values()})}


def assert_maps_equal(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """Exactly equal (z maps: within Z_RTOL under another scipy), with the same non-zero voxels."""
    assert got.shape == want.shape, name
    np.testing.assert_array_equal(got != 0, want != 0, err_msg=f"{name}: non-zero voxels differ")
    if "_z" in name and Z_RTOL:
        np.testing.assert_allclose(got, want, rtol=Z_RTOL, atol=0, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"{name}: max |diff| {np.abs(got - want).max():.3g}")


def test_golden_files_cover_what_they_claim():
    assert MANIFEST["made_with"]["neurosynth"] == "0.3.8"
    cases = list(CASES.values())
    assert len(cases) >= 8
    assert {c["kind"] for c in cases} == {"image", "sphere", "peaks"}
    assert {c["threshold_kind"] for c in cases} >= {"proportion", "count"}
    assert {c["seed"] for c in cases if c["kind"] == "image"} == {"amygdala_roi.nii.gz", "sgacc_mask.nii.gz"}
    assert len({c["q"] for c in cases} - {0.01}) >= 3 and len({c["prior"] for c in cases} - {0.5}) >= 3
    assert {c["kernel_r"] for c in cases} == {6, 10} and {c["r"] for c in cases} >= {6, 10}
    assert sum(c["route"] == "network.coactivation" for c in cases) >= 4
    for c in cases:
        with np.load(os.path.join(GOLDEN, f"{c['name']}.npz"), allow_pickle=False) as z:
            assert sorted(z.files) == ["index", "rows"]
            assert z["rows"].dtype == np.float64 and z["rows"].shape[1] == 9
            assert z["index"].shape == (228_453,)
        assert c["n_selected"] == len(c["selected_ids"]) and 0 < c["n_selected"] < c["n_studies"] == 100
        maps = golden_maps(c["name"])
        # the maps are not constants: the comparison has something to catch
        assert np.unique(maps["association-test_z"]).size > 10
        assert np.count_nonzero(maps[f"uniformity-test_z_FDR_{c['q']}"]) > 0


@pytest.mark.parametrize("name", list(CASES))
def test_seed_matches_neurosynth(name, cubes, mask):
    case = CASES[name]
    seed, kwargs = seed_call(case)
    ds = cubes[case["kernel_r"]].coact.seed(seed, **kwargs).compute()
    assert sorted(int(i) for i in ds["selected_id"].values) == case["selected_ids"]
    assert ds.attrs["n_studies"] == case["n_studies"]
    if case["n_roi"] is not None:
        assert ds.attrs["n_roi"] == case["n_roi"]
    assert ds.attrs["select"] == ("distance" if case["kind"] == "peaks" else "overlap")
    if case["kind"] != "peaks" and case["threshold_kind"] is not None:
        assert ds.attrs["threshold_kind"] == case["threshold_kind"]
    assert ds.coact.maps == case["maps"], "Neurosynth's names, in its order"
    for map_name, want in golden_maps(name).items():
        volume = ds[map_name].transpose("x", "y", "z").values
        assert volume.dtype == np.float64
        assert not volume[~mask].any(), f"{map_name}: non-zero outside the brain mask"
        assert_maps_equal(volume[mask], want, map_name)


def test_distance_rule_is_inclusive_as_in_neurosynth(cubes):
    """The study whose nearest peak is exactly r from the seed is one Neurosynth selects."""
    case = CASES["peaks_at_10mm_r10_q0.0025"]
    assert 9106283 in case["selected_ids"]
    ds = cubes[6].coact.seed(case["seed"], r=10, select="distance")
    assert float(ds["distance"].sel(study=9106283)) == 10.0
    below = cubes[6].coact.seed(case["seed"], r=float(np.nextafter(10.0, 0.0)), select="distance")
    assert sorted(int(i) for i in below["selected_id"].values) == [i for i in case["selected_ids"] if i != 9106283]


def test_explicit_neurosynth_preset_and_float32_match(cubes, mask):
    case = CASES["sphere_dacc_dlpfc_r6_p0.1_q0.015_prior0.6"]
    seed, kwargs = seed_call(case)
    ds = cubes[6].coact.seed(seed, preset="neurosynth", dtype="float32", **kwargs).compute()
    assert ds.attrs["preset"] == "neurosynth"
    for map_name, want in golden_maps(case["name"]).items():
        got = ds[map_name].transpose("x", "y", "z").values
        assert got.dtype == np.float32
        # float32 storage of float64 maps: Neurosynth's numbers rounded once
        np.testing.assert_array_equal(got[mask], want.astype(np.float32), err_msg=map_name)


@pytest.mark.parametrize(
    "names",
    [
        ("amygdala_p0.1", "sphere_dacc_r10_p0.1"),  # an image and coordinate spheres: threshold 0.1, r 10
        ("peaks_dacc_r10", "peaks_dacc_dlpfc_r10"),  # network.coactivation's coordinate route
    ],
)
def test_batch_voxel_layout_float32_matches_neurosynth(names, cubes, mask):
    calls = [seed_call(CASES[n]) for n in names]
    kwargs = {**calls[0][1], **calls[1][1]}  # one image, or equal keyword arguments
    ds = (
        cubes[6]
        .coact.seed({n: seed for n, (seed, _) in zip(names, calls)}, layout="voxel", dtype="float32", **kwargs)
        .compute()
    )
    assert ds["voxel"].values.tolist() == np.flatnonzero(mask).tolist(), "in-mask voxels in C order"
    for n in names:
        one = ds.sel(seed=n)
        assert sorted(int(i) for i in ds["study"].values[one["selected"].values]) == CASES[n]["selected_ids"]
        for map_name, want in golden_maps(n).items():
            got = one[map_name].values
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=f"{n}: {map_name}")


@pytest.mark.parametrize("name", ["amygdala_default", "peaks_dacc_dlpfc_r10"])
def test_coactivation_writes_neurosynths_files(name, cubes, mask, tmp_path):
    """xcoact.coactivation, like network.coactivation, writes {outroot}_{name}.nii.gz with Neurosynth's maps."""
    case = CASES[name]
    seed, kwargs = seed_call(case)
    ds = xcoact.coactivation(cubes[6], seed, outroot=str(tmp_path / "golden"), **kwargs)
    # each map with its JSON sidecar
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"golden_{m}{ext}" for m in case["maps"] for ext in (".nii.gz", ".json")
    )
    assert sorted(int(i) for i in ds["selected_id"].values) == case["selected_ids"]
    template = nib.load(xcoact.datasets.template_path())
    for map_name, want in golden_maps(name).items():
        img = nib.load(tmp_path / f"golden_{map_name}.nii.gz")
        assert np.array_equal(img.affine, template.affine)
        data = np.asarray(img.dataobj)
        assert not data[~mask].any()
        np.testing.assert_array_equal(data[mask], want.astype(np.float32), err_msg=map_name)


def test_pair_table_fallback_gives_neurosynths_maps(cubes, mask, monkeypatch):
    """The sort-based route of stats.count_pairs (databases past 2**23 count pairs), forced on a golden case."""
    monkeypatch.setattr(xcoact.stats.neurosynth, "_PAIR_TABLE_MAX", 0)
    case = CASES["sgacc_n5_q0.02"]
    seed, kwargs = seed_call(case)
    ds = cubes[6].coact.seed(seed, **kwargs).compute()
    for map_name, want in golden_maps(case["name"]).items():
        assert_maps_equal(ds[map_name].transpose("x", "y", "z").values[mask], want, map_name)


@pytest.mark.parametrize("name, factor", [("sgacc_n5_q0.02", 0.5), ("amygdala_p0.1_q0.04_prior0.25", 1.5)])
def test_golden_fdr_maps_depend_on_q(name, factor, cubes, mask):
    """These cases would catch an FDR rate off by half: at q * factor the uniformity FDR map differs."""
    case = CASES[name]
    seed, kwargs = seed_call(case)
    kwargs["q"] = case["q"] * factor
    ds = cubes[6].coact.seed(seed, **kwargs).compute()
    other = np.count_nonzero(ds[ds.coact.maps[7]].values)  # uniformity-test_z_FDR_{q}
    ours = np.count_nonzero(golden_maps(name)[f"uniformity-test_z_FDR_{case['q']}"])
    assert {"sgacc_n5_q0.02": (936, 17_563), "amygdala_p0.1_q0.04_prior0.25": (21_517, 1_775)}[name] == (other, ours)
