"""The NiMARE preset against NiMARE 0.22.1 itself (a test extra), on the bundled sample.

NiMARE builds its own Dataset from the raw sample file, selects studies with
``get_studies_by_mask`` and runs ``MKDAChi2(kernel__r=10)`` and
``FDRCorrector(method="indep")``; xcoact builds the cube with
``preset="nimare"``, selects with ``presets.focus_selected``, counts with plain
numpy and computes the maps with ``stats_nimare.mkda_chi2_maps``.  NiMARE
stores float32 maps, so every one is compared in float64 within 1e-5, and the
uncorrected ones must also be NiMARE's float32 values exactly.
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
import numpy as np
import pandas as pd
import pytest
import scipy.stats

import xcoact
from xcoact import stats, stats_nimare
from xcoact.errors import ParameterError
from xcoact.counts import cube_peaks
from xcoact.kernels import sphere_offsets
from xcoact.presets import PRESETS, Preset, focus_selected, get_preset, nimare_mni152_2mm
from xcoact.warnings import XcoactWarning

import nimare  # noqa: E402  (the test extra; xcoact itself never imports it)
from nimare.correct import FDRCorrector
from nimare.dataset import Dataset
from nimare.meta.cbma.mkda import MKDAChi2
from nimare.meta.kernel import MKDAKernel
from nimare.meta.utils import sphere_kernel_offsets
from nimare.utils import get_resource_path, tal2mni

TOL = 1e-5
ROIS = {"amygdala": xcoact.datasets.amygdala_roi_path, "sgacc": xcoact.datasets.sgacc_roi_path}


# NiMARE warns that its Dataset is deprecated (Studyset replaces it) and divides 0 / 0 for prob_desc-FgA
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::xcoact.warnings.XcoactWarning"),
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
    ours = os.path.join(os.path.dirname(xcoact.__file__), "data", "nimare_mni152_2mm_mask.nii.gz")
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
    table = xcoact.table.make_table(["far", "near"], [500.0, 0.0], [0.0, 0.0], [0.0, 0.0], ["MNI", "MNI"], database="t", fmt="t")
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

    exact32 = set(stats_nimare.MAP_NAMES) - {"p_desc-uniformity", "p_desc-group2"}
    for name, theirs in result.maps.items():
        got = ours[name]
        assert got.dtype == np.float64 and got.shape == theirs.shape
        assert np.array_equal(np.isnan(got), np.isnan(theirs)), name
        diff = np.nanmax(np.abs(got - theirs.astype(np.float64)))
        assert diff <= TOL, f"{name}: max |xcoact - NiMARE| = {diff:.3g}"
        if name in exact32:
            np.testing.assert_array_equal(got.astype(np.float32), theirs, err_msg=name)
    # the counts really differ between voxels: the comparison is not of constants
    assert np.nanstd(ours["z_desc-association"]) > 0.1
    stack = stats_nimare.seed_maps(a, a + b, int(selected.sum()), int((~selected).sum()), grid)
    assert stack.shape == (27, grid.n_mask)
    np.testing.assert_array_equal(stack[1], ours["z_desc-association"])


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
    assert maps["logp_desc-association"][0] == pytest.approx(-_log_erfc_asymptotic(np.sqrt(1500)) / np.log(10), rel=1e-12)
    assert maps["p_desc-association"][0] == np.nextafter(0.0, 1.0), "p underflows: floored at the smallest float"
    z_fdr = maps["z_desc-association_level-voxel_corr-FDR_method-indep"][0]
    assert np.isfinite(z_fdr) and 50 < z_fdr < np.sqrt(3000.0)
    # Neurosynth's preset keeps its documented floor: p >= 1e-240, z capped near 33
    ns = stats.coactivation_maps(a, b, 1500, 1500)
    assert PRESETS["neurosynth"].p_floor == 1e-240 and PRESETS["nimare"].p_floor is None
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
    with pytest.raises(ParameterError, match=r"preset='spm' is not a known preset; expected one of \['neurosynth', 'nimare'\]"):
        get_preset("spm")
    with pytest.raises(ValueError, match="known preset"):
        get_preset(None)
    with pytest.raises(ParameterError, match="'NiMARE'"):
        xcoact.activations(xcoact.datasets.sample_database_path(), preset="NiMARE")


def test_presets_are_frozen_data():
    ns, ni = get_preset("neurosynth"), get_preset("nimare")
    assert get_preset(ni) is ni
    assert (ns.kernel_r, ns.select, ns.min_studies, ns.voxel_rounding) == (6.0, "overlap", 1, "half-even")
    assert (ni.kernel_r, ni.select, ni.min_studies, ni.voxel_rounding) == (10.0, "focus", 0, "half-even")
    np.testing.assert_allclose(ni.tal_to_mni @ stats_nimare.ICBM_OTHER2TAL, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(ns.tal_to_mni, xcoact.table.TAL_TO_MNI)
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
    code = "import sys, xcoact, xcoact.presets, xcoact.stats_nimare; print('nimare' in sys.modules)"
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
    assert len(shared) == 27
    for name in shared:
        got = computed[name].values[grid.mask]
        theirs = result.maps[name].astype(np.float64)
        assert np.array_equal(np.isnan(got), np.isnan(theirs)), name
        diff = np.nanmax(np.abs(got - theirs))
        assert diff <= TOL, f"{name}: max |xcoact - NiMARE| = {diff:.3g}"
