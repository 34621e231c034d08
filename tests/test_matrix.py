"""ROI x ROI coactivation matrix: every entry against plain loops over the dense cube."""

from __future__ import annotations

import math
import warnings

import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from scipy import stats

import xcoact
from xcoact.analyses.pipeline import _grid
from xcoact.blocks import is_block_cube
from xcoact.errors import DegenerateSeedWarning, ParameterError

AMY = xcoact.datasets.amygdala_roi_path()
SGACC = xcoact.datasets.sgacc_roi_path()
DACC = [[0, 20, 28]]
DLPFC = [[-40, 20, 28]]
ROIS = [AMY, SGACC, DACC, DLPFC]
NAMES = ["amygdala_roi", "sgacc_mask", "0_20_28", "-40_20_28"]
R = 10


def _active_sets(act, seeds, threshold, r=R):
    """Studies active in each ROI, from the dense cube (the whole cube, summed by xarray)."""
    grid = _grid(act)
    out = []
    for s in seeds:
        roi = xcoact.roi_mask(s, grid, r)
        overlap = (act & roi).sum(("x", "y", "z")).values
        n_roi = int(roi.values.sum())
        ids = act["study"].values
        if isinstance(threshold, int):
            out.append({ids[k] for k in range(len(ids)) if overlap[k] > threshold})
        else:
            out.append({ids[k] for k in range(len(ids)) if overlap[k] / n_roi > threshold})
    return out


def _by_hand(sets, n):
    """n_both, phi and association z of every pair, with plain loops."""
    k = len(sets)
    n_both = np.zeros((k, k), dtype=np.int64)
    phi = np.zeros((k, k))
    z = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            n11 = len(sets[i] & sets[j])
            n10 = len(sets[i]) - n11
            n01 = len(sets[j]) - n11
            n00 = n - n11 - n10 - n01
            n_both[i, j] = n11
            phi[i, j] = (n11 * n00 - n10 * n01) / math.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
            # Pearson chi-square of [[a, b], [nF - a, nU - b]]: F = active in i, A = active in j
            a, b = n11, n01
            n_f, n_u = n11 + n10, n01 + n00
            table = [[a, b], [n_f - a, n_u - b]]
            rows = [a + b, n - a - b]
            cols = [n_f, n_u]
            chi2 = 0.0
            for r_ in range(2):
                for c in range(2):
                    expected = rows[r_] * cols[c] / n
                    chi2 += (table[r_][c] - expected) ** 2 / expected
            p = stats.chi2.sf(chi2, 1)
            sign = (a / n_f > b / n_u) - (a / n_f < b / n_u)
            z[i, j] = stats.norm.isf(p / 2) * sign
    return n_both, phi, z


@pytest.mark.parametrize("threshold", [0.1, 5, 0.0])
def test_every_entry_equals_loop_computation(sample_cube, threshold):
    n = sample_cube.sizes["study"]
    sets = _active_sets(sample_cube, ROIS, threshold)
    assert all(0 < len(s) < n for s in sets)  # every margin > 0: the hand chi-square needs no special case
    n_both, phi, z = _by_hand(sets, n)

    m = xcoact.matrix(sample_cube, ROIS, threshold, r=R)
    assert m["n_both"].dims == ("roi", "roi_other")
    assert list(m["roi"].values) == NAMES and list(m["roi_other"].values) == NAMES
    assert m["n_both"].dtype == np.int64 and m["phi"].dtype == np.float64 and m["z"].dtype == np.float64
    np.testing.assert_array_equal(m["n_both"].values, n_both)
    np.testing.assert_array_equal(m["n_active"].values, [len(s) for s in sets])
    np.testing.assert_allclose(m["phi"].values, phi, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m["z"].values, z, rtol=1e-9, atol=1e-12)
    grid = _grid(sample_cube)
    assert m["n_roi_voxels"].values.tolist() == [int(xcoact.roi_mask(s, grid, R).sum()) for s in ROIS]
    assert m["n_roi_voxels"].values.tolist() == [366, 1142, 515, 515]


def test_active_studies_are_the_seed_selections(sample_cube):
    """The matrix's diagonal and off-diagonal counts agree with the single-seed selections."""
    m = sample_cube.coact.matrix(ROIS, 0.1, r=R)
    selected = [set(sample_cube.coact.seed(s, 0.1, r=R)["selected_id"].values.tolist()) for s in ROIS]
    for i in range(len(ROIS)):
        assert int(m["n_active"][i]) == len(selected[i])
        for j in range(len(ROIS)):
            assert int(m["n_both"][i, j]) == len(selected[i] & selected[j])


def test_symmetry_and_diagonal(sample_cube):
    m = xcoact.matrix(sample_cube, ROIS, 5, r=R)
    n = m.attrs["n_studies"]
    nb, phi, z = m["n_both"].values, m["phi"].values, m["z"].values
    assert (nb != 0).sum() > len(ROIS)  # some off-diagonal pairs share studies: symmetry is not trivial
    np.testing.assert_array_equal(nb, nb.T)
    np.testing.assert_array_equal(phi, phi.T)
    np.testing.assert_allclose(z, z.T, rtol=1e-12)
    np.testing.assert_array_equal(np.diag(nb), m["n_active"].values)
    np.testing.assert_array_equal(np.diag(phi), np.ones(len(ROIS)))
    # a study set against itself: the table [[n_i, 0], [0, N - n_i]], chi-square = N
    np.testing.assert_allclose(np.diag(z), stats.norm.isf(stats.chi2.sf(n, 1) / 2), rtol=1e-9)
    assert np.all(np.abs(phi) <= 1)


def test_association_z_is_sqrt_n_phi(sample_cube):
    """For a 2 x 2 table chi-square = N phi^2, so the signed z is sqrt(N) phi."""
    m = xcoact.matrix(sample_cube, ROIS, 0.1, r=R)
    assert np.isfinite(m["phi"].values).all()
    assert (m["phi"].values < 0).any() and (m["phi"].values[~np.eye(len(ROIS), dtype=bool)] > 0).any()
    np.testing.assert_allclose(m["z"].values, math.sqrt(m.attrs["n_studies"]) * m["phi"].values, rtol=1e-8)


def _atlas(affine):
    amy = np.asarray(nib.load(AMY).dataobj) > 0
    sg = np.asarray(nib.load(SGACC).dataobj) > 0
    atlas = np.zeros(amy.shape, dtype=np.int16)
    atlas[amy] = 3
    atlas[sg & ~amy] = 7
    # a 10 mm sphere at (0, 20, 28) mm, on the LAS grid of the affine
    ijk = np.round(np.linalg.solve(affine, [0, 20, 28, 1])[:3]).astype(int)
    grid = np.indices(atlas.shape).reshape(3, -1).T
    near = (((grid - ijk) * 2.0) ** 2).sum(axis=1) <= R**2
    sphere = near.reshape(atlas.shape) & (atlas == 0)
    atlas[sphere] = 5
    return atlas


def test_atlas_by_label_equals_list_of_its_parts(sample_cube, tmp_path, affine_mni):
    atlas = _atlas(affine_mni)
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(atlas, affine_mni), path)
    names = {3: "amygdala", 5: "dacc", 7: "sgACC"}
    parts = {}
    for value, name in names.items():
        part = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image((atlas == value).astype(np.uint8), affine_mni), part)
        parts[name] = str(part)
    whole = sample_cube.coact.matrix(str(path), 0.0, by_label=True, labels=names)
    split = sample_cube.coact.matrix(parts, 0.0)
    assert list(whole["roi"].values) == ["amygdala", "dacc", "sgACC"]
    assert whole.attrs["by_label"] == 1 and split.attrs["by_label"] == 0
    assert (whole["n_both"].values[~np.eye(3, dtype=bool)] > 0).any()
    xr.testing.assert_identical(
        whole.drop_vars("description").drop_attrs(), split.drop_vars("description").drop_attrs()
    )
    # label values without a table are named label_<value>
    assert list(sample_cube.coact.matrix(str(path), 0.0, by_label=True)["roi"].values) == [
        "label_3",
        "label_5",
        "label_7",
    ]


def test_rechunked_and_dense_cubes_give_identical_results(sample_cube):
    rechunked = sample_cube.chunk({"study": 30})
    dense = xr.DataArray(
        sample_cube.values, dims=sample_cube.dims, coords=sample_cube.coords, attrs=sample_cube.attrs
    ).chunk({"study": 40})
    assert is_block_cube(rechunked.data)  # rechunking keeps the sparse blocks
    assert not is_block_cube(dense.data)  # really the dense route
    for threshold in (0.1, 5):
        sparse = xcoact.matrix(sample_cube, ROIS, threshold, r=R)
        assert sparse["n_both"].values.sum() > 0
        xr.testing.assert_identical(xcoact.matrix(rechunked, ROIS, threshold, r=R), sparse)
        xr.testing.assert_identical(xcoact.matrix(dense, ROIS, threshold, r=R), sparse)


def test_matrix_builds_each_chunk_once(sample_table, monkeypatch):
    """The matrix's overlaps come from the cube's blocks: each chunk's rows are built once and kept."""
    from xcoact import blocks

    built = []
    original = blocks.sparse_rows
    monkeypatch.setattr(blocks, "sparse_rows", lambda *a, **k: built.append(1) or original(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = xcoact.activations(sample_table, r=6, chunks={"study": 37})
    m = cube.coact.matrix(ROIS, 0.1, r=R)
    assert int(m["n_active"].sum()) == 26
    assert built == [1, 1, 1]
    cube.coact.matrix(ROIS, 5, r=R)
    assert built == [1, 1, 1]


@pytest.mark.parametrize(
    "threshold, match",
    [
        (-1, "negative voxel count"),
        (1.5, "outside"),
        (float("nan"), "NaN or infinite"),
        (True, "not a number"),
        ("0.1", "not a number"),
        (None, "not a number"),
    ],
)
def test_bad_threshold_errors(sample_cube, threshold, match):
    with pytest.raises(ParameterError, match=match):
        xcoact.matrix(sample_cube, ROIS, threshold, r=R)
    with pytest.raises(ParameterError, match=match):
        sample_cube.coact.matrix(ROIS, threshold, r=R)


def test_bad_radius_and_cube_errors(sample_cube):
    with pytest.raises(ParameterError, match="radius"):
        xcoact.matrix(sample_cube, [DACC, DLPFC], 0.1, r=0)
    with pytest.raises(ParameterError, match="dtype"):
        xcoact.matrix(sample_cube.astype(np.int8), [DACC, DLPFC], 0.1, r=R)


def test_degenerate_rois_warn_and_give_nan(sample_cube):
    seeds = {"amygdala": AMY, "sgacc": SGACC, "dlpfc": DLPFC, "outside": [[-88, -120, -70]]}
    with pytest.warns(
        DegenerateSeedWarning,
        match=r"2 of 4 ROIs give NaN phi and z: 'amygdala' \(active in no study; "
        r"largest overlap 94 of 366 voxels\); 'outside' \(no voxel in the brain mask\)",
    ):
        m = xcoact.matrix(sample_cube, seeds, 94, r=R)
    n = m.attrs["n_studies"]
    assert m["n_active"].values.tolist()[0] == 0 and m["n_active"].values.tolist()[3] == 0
    assert m["n_roi_voxels"].values.tolist()[3] == 0
    ok = [1, 2]
    assert all(0 < m["n_active"].values[i] < n for i in ok)
    phi, z = m["phi"].values, m["z"].values
    bad = [0, 3]
    assert np.isnan(phi[bad, :]).all() and np.isnan(phi[:, bad]).all()
    assert np.isnan(z[bad, :]).all()
    # a usable ROI against one active in no study: sign(0 - 0) = 0
    np.testing.assert_array_equal(z[np.ix_(ok, bad)], 0.0)
    assert np.isfinite(phi[np.ix_(ok, ok)]).all() and np.isfinite(z[np.ix_(ok, ok)]).all()
    np.testing.assert_array_equal(m["n_both"].values[bad, :], 0)


def test_accessor_delegates_and_provenance(sample_cube):
    via_function = xcoact.matrix(sample_cube, [DACC, DLPFC], 3, r=R, separate=False)
    via_accessor = sample_cube.coact.matrix([DACC, DLPFC], 3, r=R)
    xr.testing.assert_identical(via_function, via_accessor)
    sep = sample_cube.coact.matrix(DACC + DLPFC, 3, r=R, separate=True)
    xr.testing.assert_identical(sep.drop_attrs(), via_accessor.drop_attrs())
    assert sep.attrs["separate"] == 1
    attrs = via_accessor.attrs
    assert attrs["database"] == sample_cube.attrs["database"]
    assert attrs["r"] == 6.0 and attrs["seed_r"] == 10.0
    assert attrs["threshold"] == 3 and attrs["threshold_kind"] == "count"
    assert attrs["n_studies"] == 100 and attrs["n_rois"] == 2
    assert attrs["xcoact_version"] == xcoact.__version__
    assert "phi" in attrs["reference"] and "chi-square" in attrs["reference"]
    proportion = sample_cube.coact.matrix([AMY, SGACC], r=R)
    assert proportion.attrs["threshold"] == 0.1 and proportion.attrs["threshold_kind"] == "proportion"
    assert "seed_r" not in proportion.attrs
    # one seed: a 1 x 1 matrix (a lumped pair of spheres, as Neurosynth lumps coordinates)
    one = sample_cube.coact.matrix(DACC + DLPFC, 0.1, r=R)
    assert one.sizes == {"roi": 1, "roi_other": 1}
    assert int(one["n_both"][0, 0]) == int(one["n_active"][0]) and one["n_roi_voxels"].values.tolist() == [1030]
