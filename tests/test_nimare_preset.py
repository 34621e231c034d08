"""The NiMARE preset against NiMARE 0.22.1 itself (a test extra), on three databases.

NiMARE builds its own Dataset from the raw files, selects studies with
``get_studies_by_mask`` and runs ``MKDAChi2(kernel__r=10)`` and
``FDRCorrector(method="indep")``; xcoact builds the cube with
``preset="nimare"`` and selects and computes through ``act.coact.seed`` (or,
for the sample, also piece by piece: ``presets.focus_selected``, plain numpy
counts, ``stats_nimare.mkda_chi2_maps``).  :func:`assert_maps_match` compares
every map NiMARE's result holds (its duplicate names included): NaN at the
same voxels, within 1e-5 (relative past 1, where float32 itself keeps fewer
digits), and NiMARE's float32 value exactly once cast.

The databases: the bundled 100-study sample; a real NeuroStore collection of
320 studies (n-back and flanker tasks, MNI/TAL/OTHER/UNKNOWN, some p at the
float32 floor, many float32 ties; ``tests/data/nback_flanker_*``), read the
way NiMARE's Neurosynth conversion reads it; and a synthetic database from
``xcoact.datasets.synthetic`` with strong effects (thousands of voxels at the
float32 p floor).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import subprocess
import sys
import warnings

import nibabel as nib
import nimare
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr
from nimare.correct import FDRCorrector
from nimare.dataset import Dataset
from nimare.io import convert_neurosynth_to_dataset
from nimare.meta.cbma.mkda import MKDAChi2
from nimare.meta.kernel import MKDAKernel
from nimare.meta.utils import sphere_kernel_offsets
from nimare.utils import get_resource_path, tal2mni

import xcoact
from xcoact.counts import cube_peaks
from xcoact.errors import MixedSpaceWarning, ParameterError, XcoactWarning
from xcoact.kernels import sphere_offsets
from xcoact.presets import PRESETS, Preset, focus_selected, get_preset, mixed_space_studies, nimare_mni152_2mm
from xcoact.stats import neurosynth as stats
from xcoact.stats import nimare as stats_nimare

TOL = 1e-5
ROIS = {"amygdala": xcoact.datasets.amygdala_roi_path, "sgacc": xcoact.datasets.sgacc_roi_path}
DATA = os.path.join(os.path.dirname(__file__), "data")
NBACK = os.path.join(DATA, "nback_flanker_coordinates.tsv.gz")
NBACK_MIXED = ["2m7uahRa2EYT", "6HV5Zhu9zuv2", "Jucguw9StRoF", "PZre5RayWacD"]  # MNI and TAL rows in one study


def assert_maps_match(ours, theirs: dict, where: str = "") -> dict:
    """Every map of NiMARE's ``result.maps`` against xcoact's, voxel for voxel.

    ``ours`` maps a name to a float64 (n_voxels,) array over NiMARE's mask
    (NiMARE's duplicate names are looked up through ``stats_nimare.ALIASES``).
    A NaN in one and not the other fails; elsewhere the difference must be
    within ``TOL`` (times ``|NiMARE|`` past 1: float32 has 24 bits, so a chi2
    of 3,000 is stored to 1e-4) and the float32 cast must be NiMARE's value
    exactly.  Returns name -> max |difference|, for reports.
    """
    diffs = {}
    for name, theirs_map in theirs.items():
        got = np.asarray(ours(stats_nimare.ALIASES.get(name, name)) if callable(ours) else ours[name])
        assert got.dtype == np.float64 and got.shape == theirs_map.shape, f"{where}{name}: {got.dtype} {got.shape}"
        nan_ours, nan_theirs = np.isnan(got), np.isnan(theirs_map)
        if not np.array_equal(nan_ours, nan_theirs):
            only_ours, only_theirs = np.flatnonzero(nan_ours & ~nan_theirs), np.flatnonzero(nan_theirs & ~nan_ours)
            pytest.fail(
                f"{where}{name}: NaN at different voxels: {only_ours.size} only in xcoact (e.g. {only_ours[:5].tolist()}), "
                f"{only_theirs.size} only in NiMARE (e.g. {only_theirs[:5].tolist()})"
            )
        ok = ~nan_ours
        ref = theirs_map[ok].astype(np.float64)
        diff = np.abs(got[ok] - ref)
        worst = float(diff.max(initial=0.0))
        assert (diff <= TOL * np.maximum(1.0, np.abs(ref))).all(), f"{where}{name}: max |xcoact - NiMARE| = {worst:.3g}"
        n_off = int((got[ok].astype(np.float32) != theirs_map[ok]).sum())
        assert n_off == 0, f"{where}{name}: {n_off} voxels differ from NiMARE's float32 value"
        diffs[name] = worst
    return diffs


# NiMARE warns that its Dataset is deprecated (Studyset replaces it) and divides 0 / 0 for prob_desc-FgA
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning"),
]


@pytest.fixture(scope="module")
def quiet():
    # NiMARE logs a great deal (the 'UNKNOWN' space, the ROI affine differing from its mask's)
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def _nimare_dict(path) -> dict:
    """The raw sample file as NiMARE's dict: one contrast per study, the file's space label."""
    df = pd.read_table(path)
    data = {}
    for sid, rows in df.groupby("id", sort=False):
        assert rows["space"].nunique() == 1
        coords = {"space": rows["space"].iloc[0], **{c: rows[c].tolist() for c in "xyz"}}
        data[str(sid)] = {"contrasts": {"1": {"coords": coords}}}
    return data


@pytest.fixture(scope="module")
def dset(quiet):
    return Dataset(_nimare_dict(xcoact.datasets.sample_database_path()))


@pytest.fixture(scope="module")
def cube(quiet):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        db = xcoact.read_database(xcoact.datasets.sample_database_path())
    act = xcoact.activations(db, preset="nimare")
    return act, cube_peaks(act), act.values


def _ids(source, selected) -> set[str]:
    return {f"{s}-1" for s in source.studies[selected]}


def _roi_flat(path, grid) -> np.ndarray:
    """Every ROI voxel > 0 (not only in-mask ones), moved onto the grid by its mm."""
    img = nib.load(path)
    ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    xyz = nib.affines.apply_affine(img.affine, ijk)
    on_grid = grid.xyz_to_ijk(xyz)
    assert np.allclose(nib.affines.apply_affine(grid.affine, on_grid), xyz), "ROI on the grid's lattice"
    return np.ravel_multi_index(tuple(on_grid.T), grid.shape)


# -- the preset's pieces, against NiMARE's own ------------------------------------------------------


def test_mask_is_nimares_resource_file():
    ours = os.path.join(os.path.dirname(xcoact.__file__), "datasets", "data", "nimare_mni152_2mm_mask.nii.gz")
    theirs = os.path.join(get_resource_path(), "templates", "tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz")
    with open(ours, "rb") as f, open(theirs, "rb") as g:
        assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(g.read()).hexdigest()


def test_nimare_grid_vs_neurosynth_grid(dset):
    grid = nimare_mni152_2mm()
    assert grid.n_mask == 228_483 and grid.shape == (91, 109, 91)
    mask_img = dset.masker.mask_img
    assert np.array_equal(grid.affine, mask_img.affine)
    assert np.array_equal(grid.mask, np.asarray(mask_img.dataobj).astype(bool))
    # by mm: every Neurosynth voxel, plus 30 in the bottom slice
    ns = xcoact.space.mni152_2mm()

    def keys(g):  # one integer per in-mask voxel centre (mm on the 2 mm lattice)
        xyz = nib.affines.apply_affine(g.affine, np.argwhere(g.mask)).astype(np.int64)
        return (xyz[:, 0] + 200) * 1_000_000 + (xyz[:, 1] + 200) * 1_000 + (xyz[:, 2] + 200), xyz

    ns_keys, _ = keys(ns)
    ni_keys, ni_xyz = keys(grid)
    assert np.isin(ns_keys, ni_keys).all()
    extra = ~np.isin(ni_keys, ns_keys)
    assert extra.sum() == 30 and set(ni_xyz[extra, 2].tolist()) == {-72}


def test_sphere_offsets_are_mkdakernels():
    ours = {tuple(o) for o in sphere_offsets(10, (2.0, 2.0, 2.0)).tolist()}
    theirs = {tuple(o) for o in sphere_kernel_offsets(10.0, (2.0, 2.0, 2.0)).tolist()}
    assert ours == theirs and len(ours) == 515


def test_tal_peaks_move_as_in_nimare():
    df = pd.read_table(xcoact.datasets.sample_database_path())
    tal = df.loc[df["space"] == "TAL", ["x", "y", "z"]].to_numpy(float)
    assert len(tal) > 1000
    mni_ns = xcoact.table.tal_to_mni(tal)  # what xcoact's table holds
    got = stats_nimare._nimare_peak_xyz(mni_ns, np.full(len(tal), "TAL"))
    np.testing.assert_allclose(got, tal2mni(tal), rtol=0, atol=1e-12)
    assert np.abs(got - mni_ns).max() > 1.0, "NiMARE's affine is not Neurosynth's"
    # labels NiMARE does not know are its raw coordinates; MNI rows are untouched
    raw = stats_nimare._nimare_peak_xyz(mni_ns[:3], np.array(["T88", "talairach", "TAL"]))
    np.testing.assert_allclose(raw[:2], tal[:2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(raw[2], tal2mni(tal[2:3])[0], rtol=0, atol=1e-12)
    mni = np.array([[1.0, 2.0, 3.0]])
    assert np.array_equal(stats_nimare._nimare_peak_xyz(mni, np.array(["MNI"])), mni)


def test_cube_is_mkdakernels_modeled_activation(dset, cube):
    act, source, values = cube
    assert act.attrs["preset"] == "nimare" and act.attrs["r"] == 10.0
    assert act.attrs["grid"] == nimare_mni152_2mm().name
    ma = MKDAKernel(r=10).transform(dset, return_type="array")
    row = {sid: i for i, sid in enumerate(dset.ids)}
    order = [row[f"{s}-1"] for s in source.studies]
    assert np.array_equal(ma[order] > 0, values[:, source.grid.mask])
    assert (ma > 0).sum() > 500_000


def test_focus_selection_clips_far_peaks_like_nimare(quiet):
    grid = nimare_mni152_2mm()
    data = {
        "far": {"contrasts": {"1": {"coords": {"space": "MNI", "x": [500.0], "y": [0.0], "z": [0.0]}}}},
        "near": {"contrasts": {"1": {"coords": {"space": "MNI", "x": [0.0], "y": [0.0], "z": [0.0]}}}},
    }
    roi = np.zeros(grid.shape, dtype=np.uint8)
    roi[90, 63, 36] = 1  # x = 90 mm, the box's edge
    img = nib.Nifti1Image(roi, grid.affine)
    assert Dataset(data).get_studies_by_mask(img) == ["far-1"]
    table = xcoact.table.make_table(
        ["far", "near"], [500.0, 0.0], [0.0, 0.0], [0.0, 0.0], ["MNI", "MNI"], database="t", fmt="t"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        act = xcoact.activations(table, preset="nimare")
    source = cube_peaks(act)
    assert focus_selected(source, roi.astype(bool)).tolist() == [True, False]
    assert focus_selected(source, np.flatnonzero(roi)).tolist() == [True, False]


@pytest.mark.parametrize("roi_name", sorted(ROIS))
def test_maps_match_mkdachi2(roi_name, dset, cube):
    act, source, values = cube
    grid = source.grid
    roi_path = ROIS[roi_name]()
    theirs_ids = dset.get_studies_by_mask(nib.load(roi_path))
    selected = focus_selected(source, _roi_flat(roi_path, grid))
    assert _ids(source, selected) == set(theirs_ids)
    assert 0 < selected.sum() < source.n_studies

    rest = sorted(set(dset.ids) - set(theirs_ids))
    result = MKDAChi2(kernel__r=10).fit(dset.slice(theirs_ids), dset.slice(rest))
    result = FDRCorrector(method="indep").transform(result)

    in_mask = values[:, grid.mask]
    assert in_mask.shape[1] == 228_483
    a = in_mask[selected].sum(axis=0)
    b = in_mask[~selected].sum(axis=0)
    ours = stats_nimare.mkda_chi2_maps(a, b, int(selected.sum()), int((~selected).sum()), aliases=True)
    assert set(ours) == set(result.maps), "every NiMARE map, by NiMARE's name"

    assert_maps_match(ours, result.maps)
    # the counts really differ between voxels: the comparison is not of constants
    assert np.nanstd(ours["z_desc-association"]) > 0.1


def test_nimare_maps_via_preset_object(cube):
    _, source, values = cube
    preset = get_preset("nimare")
    in_mask = values[:, source.grid.mask]
    sel = np.zeros(source.n_studies, dtype=bool)
    sel[:10] = True
    a, total = in_mask[sel].sum(0), in_mask.sum(0)
    maps = preset.maps(a, total, 10, source.n_studies - 10, source.grid, q=0.05, prior=0.5)
    assert list(maps) == preset.map_names(0.05, 0.5)
    assert not np.isnan(maps["z_desc-association"]).any()
    assert np.isnan(maps["prob_desc-FgA"][total == 0]).all(), "no min_studies masking: 0 / 0 stays NaN"
    assert (maps["chi2_desc-association"][total == 0] == 2.0).all()


# -- log space far in the tail (issue point 5) ---------------------------------------------------------


def _log_erfc_asymptotic(y: float) -> float:
    # log erfc(y) = -y^2 - log(y sqrt(pi)) + log(1 - 1/(2y^2) + 3/(4y^4) - 15/(8y^6)), large y
    s = 1 - 1 / (2 * y**2) + 3 / (4 * y**4) - 15 / (8 * y**6)
    return -(y**2) - np.log(y * np.sqrt(np.pi)) + np.log(s)


@pytest.mark.parametrize("chi2", [900.0, 3000.0, 20_000.0])
def test_log_p_exact_where_p_underflows(chi2):
    logp = stats_nimare.chi2_logsf_1dof(np.array([chi2]))[0]
    assert np.isfinite(logp)
    assert logp == pytest.approx(_log_erfc_asymptotic(np.sqrt(chi2 / 2)), rel=1e-12)
    assert stats_nimare.logp_to_z(np.array([logp]))[0] == pytest.approx(np.sqrt(chi2), rel=1e-12)


def test_chi2_3000_keeps_exact_z_only_in_nimare_preset():
    # n_F = n_U = 1500; a voxel active in every selected study and no other: chi2 = 3000 exactly
    a = np.array([1500, 0, 10])
    b = np.array([0, 0, 10])
    maps = stats_nimare.mkda_chi2_maps(a, b, 1500, 1500)
    assert maps["chi2_desc-association"][0] == 3000.0
    assert maps["z_desc-association"][0] == np.sqrt(3000.0)
    assert maps["logp_desc-association"][0] == pytest.approx(
        -_log_erfc_asymptotic(np.sqrt(1500)) / np.log(10), rel=1e-12
    )
    assert (
        maps["p_desc-association"][0] == stats_nimare.P_FLOOR_F32 == float(np.nextafter(np.float32(0), np.float32(1)))
    ), "p underflows: floored at the smallest float32, as NiMARE floors its p maps"
    z_fdr = maps["z_desc-association_level-voxel_corr-FDR_method-indep"][0]
    assert np.isfinite(z_fdr) and 50 < z_fdr < np.sqrt(3000.0)
    # Neurosynth's preset keeps its documented floor: p >= 1e-240, z capped near 33
    ns = stats.coactivation_maps(a, b, 1500, 1500)
    assert stats.P_FLOOR == 1e-240
    assert ns["association-test_z"][0] == abs(scipy.stats.norm.ppf(1e-240)) < 34


def test_bh_adjustment_matches_per_test_definition():
    rng = np.random.default_rng(3)
    p = rng.choice([1e-8, 1e-4, 0.003, 0.02, 0.2, 0.7, 1.0], size=500)
    m = p.size
    order = np.argsort(p)
    brute = np.empty(m)
    brute[order] = np.minimum(np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1], 1.0)
    np.testing.assert_allclose(np.exp(stats_nimare.bh_adjust_logp(np.log(p))), brute, rtol=1e-12)
    values, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    by_value = stats_nimare.bh_adjust_logp(np.log(values), counts)[inverse]
    np.testing.assert_allclose(np.exp(by_value), brute, rtol=1e-12)


# -- presets as data -----------------------------------------------------------------------------------


def test_get_preset_errors_name_the_valid_presets():
    with pytest.raises(
        ParameterError, match=r"preset='spm' is not a known preset; expected one of \['neurosynth', 'nimare'\]"
    ):
        get_preset("spm")
    with pytest.raises(ValueError, match="known preset"):
        get_preset(None)
    with pytest.raises(ParameterError, match="'NiMARE'"):
        xcoact.activations(xcoact.datasets.sample_database_path(), preset="NiMARE")


def test_presets_are_frozen_data():
    ns, ni = get_preset("neurosynth"), get_preset("nimare")
    assert get_preset(ni) is ni
    assert (ns.kernel_r, ns.select, ns.min_studies) == (6.0, "overlap", 1)
    assert (ni.kernel_r, ni.select, ni.min_studies) == (10.0, "focus", 0)
    assert ns.map_names() == stats.map_names() and len(ni.map_names()) == 27
    with pytest.raises(dataclasses.FrozenInstanceError):
        ni.kernel_r = 6.0  # type: ignore[misc]
    assert isinstance(ni, Preset) and set(PRESETS) == {"neurosynth", "nimare"}


def test_default_preset_is_neurosynth():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        act = xcoact.activations(xcoact.datasets.sample_database_path())
        explicit = xcoact.activations(xcoact.datasets.sample_database_path(), r=6, preset="neurosynth")
    assert act.attrs["preset"] == "neurosynth" and act.attrs["r"] == 6.0
    assert act.data.name == explicit.data.name
    assert cube_peaks(act).grid.n_mask == 228_453
    assert act["x"].values[0] == 90.0, "Neurosynth's LAS grid"


def test_xcoact_never_imports_nimare():
    code = "import sys, xcoact, xcoact.presets, xcoact.stats.nimare; print('nimare' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert nimare.__version__ == "0.22.1"


@pytest.mark.parametrize("roi_name", sorted(ROIS))
def test_public_seed_call_matches_mkdachi2(roi_name, dset, cube):
    """The user's call, act.coact.seed(roi) on a preset="nimare" cube, against NiMARE end to end."""
    act, source, _ = cube
    grid = source.grid
    roi_path = ROIS[roi_name]()
    maps = act.coact.seed(roi_path)
    assert maps.attrs["preset"] == "nimare" and maps.attrs["select"] == "focus"
    assert maps.attrs["min_studies"] == 0 and "NiMARE 0.22.1" in maps.attrs["reference"]
    theirs_ids = dset.get_studies_by_mask(nib.load(roi_path))
    assert {f"{s}-1" for s in maps["selected_id"].values} == set(theirs_ids)
    rest = sorted(set(dset.ids) - set(theirs_ids))
    result = MKDAChi2(kernel__r=10).fit(dset.slice(theirs_ids), dset.slice(rest))
    result = FDRCorrector(method="indep").transform(result)
    computed = maps.compute()
    shared = [name for name in computed.coact.maps if name in result.maps]
    assert len(shared) == 27 and len(result.maps) == 36
    assert_maps_match(lambda name: computed[name].values[grid.mask], result.maps)


# -- issue 12: number for number on more databases --------------------------------------------------


def _nimare_macm(dset, roi_path):
    """NiMARE's MACM as its example runs it: focus-in-ROI selection, MKDAChi2(r=10), FDR (indep)."""
    ids = dset.get_studies_by_mask(nib.load(roi_path))
    rest = sorted(set(dset.ids) - set(ids))
    result = MKDAChi2(kernel__r=10).fit(dset.slice(ids), dset.slice(rest))
    return FDRCorrector(method="indep").transform(result), ids


def _sphere_roi(folder, center, r=10.0) -> str:
    """A binary r mm sphere on NiMARE's grid, as a NIfTI file (both tools read the same image)."""
    grid = nimare_mni152_2mm()
    xyz = nib.affines.apply_affine(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
    inside = (np.linalg.norm(xyz - np.asarray(center, dtype=float), axis=1) <= r).reshape(grid.shape)
    path = os.path.join(folder, "sphere_{}_{}_{}.nii.gz".format(*(int(c) for c in center)))
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), grid.affine), path)
    return path


def _compare_seed(act, dset, roi_path) -> tuple[xr.Dataset, object]:
    """``act.coact.seed(roi)`` against NiMARE's MACM on the same ROI: same studies, every map."""
    result, theirs_ids = _nimare_macm(dset, roi_path)
    maps = act.coact.seed(roi_path).compute()
    assert maps.attrs["preset"] == "nimare"
    assert {f"{s}-1" for s in maps["selected_id"].values} == set(theirs_ids)
    assert 0 < len(theirs_ids) < len(dset.ids)
    mask = nimare_mni152_2mm().mask
    assert set(result.maps) == set(maps.coact.maps) | set(stats_nimare.ALIASES) and len(result.maps) == 36
    assert_maps_match(lambda name: maps[name].values[mask], result.maps, where=f"{os.path.basename(roi_path)}: ")
    return maps, result


def _float64_fdr_error(maps) -> float:
    """How far the FDR logp maps would be off had BH adjusted the float64 p (xcoact before issue 12).

    From xcoact's own chi2 maps: Benjamini-Hochberg on the exact log p, against the
    maps computed from NiMARE's stored (float32) inputs.  Above TOL means the database
    really exercises the float32 ties and floors.
    """
    mask = nimare_mni152_2mm().mask
    worst = 0.0
    for label in ("uniformity", "group2", "association"):
        logp = stats_nimare.chi2_logsf_1dof(maps[f"chi2_desc-{label}"].values[mask])
        values, inverse, counts = np.unique(logp, return_inverse=True, return_counts=True)
        exact = stats_nimare.bh_adjust_logp(values, counts)[inverse.ravel()] / -np.log(10.0)
        got = maps[f"logp_desc-{label}_level-voxel_corr-FDR_method-indep"].values[mask]
        worst = max(worst, float(np.abs(exact - got).max()))
    return worst


@pytest.fixture(scope="module")
def nback(quiet):
    """The NeuroStore n-back/flanker collection, read by NiMARE's Neurosynth conversion and by xcoact's v7 reader.

    Both take each study's space from the metadata file (one per study), so the
    peaks are the same; the per-row labels are for the mixed-space tests below.
    """
    metadata = NBACK.replace("_coordinates", "_metadata")
    dset = convert_neurosynth_to_dataset(NBACK, metadata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)  # OTHER/UNKNOWN labels, 12 far peaks of one study
        db = xcoact.read_database(NBACK, format="neurosynth-v7")
    act = xcoact.activations(db, preset="nimare")
    assert db.attrs["n_studies"] == len(dset.ids) == 320 and db.attrs["n_peaks"] == 9492
    return dset, act


@pytest.fixture(scope="module")
def spheres(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("rois"))
    # pre-SMA / dorsal ACC, active in both tasks; and the synthetic database's coactivated site
    return {"presma": _sphere_roi(folder, (0, 16, 46)), "dlpfc": _sphere_roi(folder, (-40, 24, 30))}


@pytest.mark.parametrize("roi_name", ["amygdala", "sgacc", "presma"])
def test_every_map_matches_on_a_real_neurostore_collection(roi_name, nback, spheres):
    dset, act = nback
    roi_path = spheres[roi_name] if roi_name in spheres else ROIS[roi_name]()
    maps, result = _compare_seed(act, dset, roi_path)
    # what issue 12 is about is really in these maps: p at the float32 floor, 0/0 voxels, float32 ties
    floor = np.float32(stats_nimare.P_FLOOR_F32)
    assert any((result.maps[f"p_desc-{k}"] == floor).any() for k in ("uniformity", "group2", "association"))
    assert np.isnan(result.maps["prob_desc-FgA"]).sum() == np.isnan(result.maps["prob_desc-FgA_prior"]).sum() > 1000
    assert _float64_fdr_error(maps) > TOL, "float64 BH would pass: the database does not test the float32 inputs"
    if roi_name == "presma":
        # a 10 mm coordinate seed is the same sphere: the same studies and maps as NiMARE's on the image
        by_coordinate = act.coact.seed((0, 16, 46), r=10).compute()
        assert list(by_coordinate["selected_id"].values) == list(maps["selected_id"].values)
        for name in maps.coact.maps:
            np.testing.assert_array_equal(by_coordinate[name].values, maps[name].values, err_msg=name)


@pytest.fixture(scope="module")
def strong(quiet):
    """A synthetic database with strong effects: 150 studies drawn from three sites, 250 from the sample's peaks.

    The first group's peaks jitter (3 mm) around both amygdalae and a left
    prefrontal site, so an amygdala seed selects mostly that group and the
    prefrontal site's association p is far below the float32 floor.
    """
    sites = np.array([[24.0, -4.0, -18.0], [-24.0, -4.0, -18.0], [-40.0, 24.0, 30.0]])
    pool = xcoact.table.make_table([1, 2, 3], *sites.T, ["MNI"] * 3, database="sites", fmt="test")
    a = xcoact.datasets.synthetic(150, pool=pool, seed=1, mean_peaks=3, jitter=3)
    b = xcoact.datasets.synthetic(250, seed=2, mean_peaks=8)
    ids = np.concatenate([a["study_id"].values, b["study_id"].values + 150])
    xyz = {c: np.concatenate([a[c].values, b[c].values]) for c in "xyz"}
    db = xcoact.table.make_table(
        ids, xyz["x"], xyz["y"], xyz["z"], ["MNI"] * ids.size, database="strong", fmt="synthetic"
    )
    data = {}
    for sid in np.unique(ids):
        rows = ids == sid
        data[str(sid)] = {"contrasts": {"1": {"coords": {"space": "MNI", **{c: xyz[c][rows].tolist() for c in "xyz"}}}}}
    return Dataset(data), xcoact.activations(db, preset="nimare")


@pytest.mark.parametrize("roi_name", ["amygdala", "dlpfc"])
def test_every_map_matches_on_synthetic_strong_effects(roi_name, strong, spheres):
    dset, act = strong
    roi_path = spheres[roi_name] if roi_name in spheres else ROIS[roi_name]()
    maps, result = _compare_seed(act, dset, roi_path)
    floor = np.float32(stats_nimare.P_FLOOR_F32)
    assert (result.maps["p_desc-association"] == floor).sum() > 100, "association p at the float32 floor"
    assert (result.maps["p_desc-uniformity"] == floor).sum() > 1000
    # p between the floor and float32's smallest normal: a few bits of precision, as NiMARE reads them back
    assert (
        (result.maps["p_desc-uniformity"] > floor) & (result.maps["p_desc-uniformity"] < np.finfo(np.float32).tiny)
    ).any()
    assert maps["z_desc-association"].max() > 14, "past z = 14.1, where float32 p runs out"
    assert _float64_fdr_error(maps) > TOL


def test_fga_is_nan_where_no_study_is_active_only_in_the_nimare_preset(nback):
    """0/0 voxels: NaN under preset='nimare' (as in NiMARE's maps), 0 under the Neurosynth preset."""
    _, act = nback
    roi = xcoact.datasets.amygdala_roi_path()
    ni = act.coact.seed(roi).compute()
    mask = nimare_mni152_2mm().mask
    dead = ni["prob_desc-A"].values[mask] == 0
    assert dead.sum() > 1000
    for name in ("prob_desc-FgA", "prob_desc-FgA_prior"):
        values = ni[name].values[mask]
        assert np.array_equal(np.isnan(values), dead), name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        ns_act = xcoact.activations(xcoact.read_database(NBACK, format="neurosynth-v7"), r=10)
    ns = ns_act.coact.seed(roi, threshold=0.0).compute()
    ns_mask = ns["brain_mask"].values
    ns_dead = ns["pA"].values[ns_mask] == 0
    assert ns_dead.sum() > 1000
    for name in ("pFgA", "pFgA_given_pF=0.50"):
        values = ns[name].values[ns_mask]
        assert not np.isnan(values).any() and (values[ns_dead] == 0).all(), name


def test_written_files_keep_nan_where_nimare_save_maps_writes_0(nback, tmp_path):
    """NIfTI files: xcoact's to_nifti keeps NaN; NiMARE's save_maps writes 0 there (get_map's nan_to_num)."""
    dset, act = nback
    roi = xcoact.datasets.amygdala_roi_path()
    result, _ = _nimare_macm(dset, roi)
    names = [
        "prob_desc-FgA",
        "prob_desc-FgA_prior",
        "z_desc-association",
        "p_desc-association_level-voxel_corr-FDR_method-indep",
        "logp_desc-association_level-voxel_corr-FDR_method-indep",
    ]
    result.save_maps(str(tmp_path / "nimare"), names=names)
    act.coact.seed(roi).coact.to_nifti(str(tmp_path / "amy"), names=names)
    mask = nimare_mni152_2mm().mask
    for name in names:
        theirs_img = nib.load(str(tmp_path / "nimare" / f"{name}.nii.gz"))
        ours_img = nib.load(str(tmp_path / f"amy_{name}.nii.gz"))
        assert np.array_equal(ours_img.affine, theirs_img.affine)
        theirs = np.asarray(theirs_img.dataobj, dtype=np.float32)
        ours = np.asarray(ours_img.dataobj, dtype=np.float32)
        nan = np.isnan(ours)
        assert np.array_equal(nan[mask], np.isnan(result.maps[name])), name
        assert (theirs[nan] == 0).all() and not np.isnan(theirs).any()
        assert np.array_equal(ours[~nan], theirs[~nan]), name
        assert (ours[~mask] == 0).all()


# -- issue 12: studies that mix spaces ---------------------------------------------------------------


def _read_quietly(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.read_database(path, **kwargs)


def test_mixed_space_studies_warn_once_under_the_preset(quiet):
    db = _read_quietly(NBACK, format="neurosynth")  # each row's own label
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xcoact.activations(db, preset="nimare")
    mixed = [w for w in caught if issubclass(w.category, MixedSpaceWarning)]
    assert len(mixed) == 1, [str(w.message) for w in caught]
    msg = str(mixed[0].message)
    assert msg.startswith(
        f"{NBACK}: 4 stud(y/ies) list peaks in more than one space under preset='nimare': "
        "'2m7uahRa2EYT' ('MNI': 45 peaks, 'TAL': 62 peaks); '6HV5Zhu9zuv2' ('MNI': 41 peaks, 'TAL': 53 peaks); "
        "'Jucguw9StRoF' ('MNI': 14 peaks, 'TAL': 14 peaks); 'PZre5RayWacD' ('MNI': 9 peaks, 'TAL': 10 peaks). "
        "xcoact moves each peak by its own label (TAL/Talairach to MNI, other labels as they are); NiMARE's "
        "Neurosynth conversion takes one space per study from the metadata file"
    ), msg
    assert mixed[0].filename == __file__, "the warning names the caller's line"
    # Neurosynth's preset has no such warning (the reader's MixedSpaceWarning covers it); nor has a v7 read
    for table, preset in ((db, "neurosynth"), (_read_quietly(NBACK, format="neurosynth-v7"), "nimare")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            xcoact.activations(table, preset=preset)
        assert not [w for w in caught if issubclass(w.category, MixedSpaceWarning)], preset


def test_mixed_space_rule_is_nimares_labels_and_counts_past_five():
    # TAL beside T88 mixes under NiMARE's rule (it moves TAL only); MNI beside UNKNOWN does not (neither moves)
    ids = ["a", "a", "b", "b", "c", "c", "d"]
    space = ["MNI", "TAL", "TAL", "T88", "MNI", "UNKNOWN", "Talairach"]
    assert mixed_space_studies(ids, space, get_preset("nimare").tal_labels).tolist() == ["a", "b"]
    assert mixed_space_studies([], [], {"TAL"}).size == 0
    n = 7
    ids = np.repeat(np.arange(1, n + 1), 2)
    labels = np.tile(["MNI", "Talairach"], n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        table = xcoact.table.make_table(
            ids, np.zeros(2 * n), np.zeros(2 * n), np.zeros(2 * n), labels, database="t", fmt="t"
        )
    with pytest.warns(
        MixedSpaceWarning, match=r"^t: 7 stud\(y/ies\) .*; 5 \('MNI': 1 peak, 'Talairach': 1 peak\); and 2 more\. "
    ):
        xcoact.activations(table, preset="nimare")


def test_mixed_space_study_each_behaviour_as_documented(nback):
    """xcoact places a mixed study's peaks row by row; NiMARE's Neurosynth conversion by the metadata's one space.

    xcoact's per-row cube equals NiMARE's MKDAKernel given each row moved by its
    own label (TAL rows through ``tal2mni``); NiMARE's conversion of the same
    files (one space per study) equals xcoact's v7 read, and differs from both.
    """
    dset, act_v7 = nback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        act_rows = xcoact.activations(_read_quietly(NBACK, format="neurosynth"), preset="nimare")
    rows = pd.read_table(NBACK)
    rows = rows[rows["id"].isin(NBACK_MIXED)]
    by_row = {}
    for sid, study in rows.groupby("id", sort=False):
        xyz = study[["x", "y", "z"]].to_numpy(float)
        tal = (study["space"] == "TAL").to_numpy()
        xyz[tal] = tal2mni(xyz[tal])
        by_row[sid] = {
            "contrasts": {"1": {"coords": {"space": "MNI", **{c: xyz[:, i].tolist() for i, c in enumerate("xyz")}}}}
        }
    mask = nimare_mni152_2mm().mask
    per_row = MKDAKernel(r=10).transform(Dataset(by_row), return_type="array") > 0
    per_study = MKDAKernel(r=10).transform(dset.slice([f"{s}-1" for s in by_row]), return_type="array") > 0
    ours_rows = act_rows.sel(study=list(by_row)).values[:, mask]
    ours_v7 = act_v7.sel(study=list(by_row)).values[:, mask]
    assert np.array_equal(ours_rows, per_row)
    assert np.array_equal(ours_v7, per_study)
    differ = dict(zip(by_row, (per_row != per_study).sum(axis=1).tolist()))
    # the last study's 'MNI' rows (x = 38-47, y = 55-76, z = 38-57) have no brain voxel within 10 mm either way
    assert min(differ[s] for s in NBACK_MIXED[:3]) > 1000 and differ["PZre5RayWacD"] == 0, differ
