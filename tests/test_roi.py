"""Seeds -> boolean ROI masks (SPEC section 4), through real NIfTI files.

Every image here is written and read back with nibabel, so the tests cover
what a user's file goes through: the header's affine (orientation, voxel
size, origin), its data type, and the alignment by x/y/z labels.
"""

from __future__ import annotations

import math
import pathlib
import warnings

import nibabel as nib
import numpy as np
import pytest
import reference
import xarray as xr

import xcoact
from xcoact.errors import DatabaseFileNotFoundError, ParameterError, ResampleWarning, RoiError
from xcoact.writers import map_variables

LAS = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
RAS = np.array([[2.0, 0, 0, -90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
SHAPE = (91, 109, 91)
RESAMPLED = r"ROI is on another grid \(voxel \(1\.0, 1\.0, 1\.0\) mm.*resampled to the cube's \(91, 109, 91\) grid by nearest neighbour"


# --------------------------------------------------------------------------- builders


def _data(path: str) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _amygdala() -> np.ndarray:
    return _data(xcoact.datasets.amygdala_roi_path())


def _sgacc() -> np.ndarray:
    return _data(xcoact.datasets.sgacc_roi_path())


def _save(tmp_path, name: str, data: np.ndarray, affine: np.ndarray) -> str:
    path = str(tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _flip(data: np.ndarray, affine: np.ndarray, axis: int):
    """The same image stored with one voxel axis reversed (same voxel centres in mm)."""
    flip = np.eye(4)
    flip[axis, axis] = -1
    flip[axis, 3] = data.shape[axis] - 1
    return np.flip(data, axis=axis).copy(), affine @ flip


def _grid_all_ones() -> xcoact.Grid:
    return xcoact.Grid(SHAPE, LAS, None)


def _to_1mm(data: np.ndarray, centres: str):
    """Each 2 mm voxel as a 2 x 2 x 2 block of 1 mm voxels, on the LAS MNI grid.

    ``"integer"``: 1 mm centres at whole mm, voxel ``2i`` of the 1 mm grid *on*
    the 2 mm centre (the 2 mm centres are 1 mm centres).  ``"half"``: the true
    subdivision, 1 mm centres at the 2 mm centre +- 0.5 mm (each 2 mm centre
    is equidistant from two 1 mm voxels of the same block).
    """
    fine = data.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [90, -126, -72] if centres == "integer" else [90.5, -126.5, -72.5]
    return fine, affine


def _as_path(data, affine, tmp_path):
    return _save(tmp_path, "roi", data, affine)


def _as_pathlib(data, affine, tmp_path):
    return pathlib.Path(_save(tmp_path, "roi", data, affine))


def _as_image(data, affine, tmp_path):
    return nib.Nifti1Image(data, affine)


def _as_loaded_image(data, affine, tmp_path):
    return nib.load(_save(tmp_path, "roi", data, affine))


def _as_dataarray(data, affine, tmp_path):
    x, y, z = (affine[a, a] * np.arange(data.shape[a]) + affine[a, 3] for a in range(3))
    return xr.DataArray(data.astype(np.float32), dims=("x", "y", "z"), coords={"x": x, "y": y, "z": z}, name="roi")


def _as_bool_dataarray(data, affine, tmp_path):
    return _as_dataarray(data, affine, tmp_path) > 0


def _as_transposed_dataarray(data, affine, tmp_path):
    return _as_dataarray(data, affine, tmp_path).transpose("z", "x", "y")


def _as_chunked_dataarray(data, affine, tmp_path):
    return _as_dataarray(data, affine, tmp_path).chunk({"x": 30})


FORMS = {
    "path": _as_path,
    "pathlib": _as_pathlib,
    "image": _as_image,
    "loaded_image": _as_loaded_image,
    "dataarray": _as_dataarray,
    "bool_dataarray": _as_bool_dataarray,
    "transposed_dataarray": _as_transposed_dataarray,
    "chunked_dataarray": _as_chunked_dataarray,
}


def _assert_mask(roi: xr.DataArray, expected: np.ndarray, grid: xcoact.Grid) -> None:
    assert roi.dims == ("x", "y", "z")
    assert roi.dtype == bool
    for d in "xyz":
        np.testing.assert_array_equal(roi[d].values, grid.coords()[d])
    np.testing.assert_array_equal(roi.values, expected)
    assert roi.attrs["n_roi"] == int(expected.sum())


def _maps(ds: xr.Dataset) -> dict[str, np.ndarray]:
    ds = ds.compute()
    return {n: ds[n].values for n in [*map_variables(ds), "roi", "overlap", "selected_id"]}


def _assert_same_maps(got: xr.Dataset, want: xr.Dataset) -> None:
    assert map_variables(got) == map_variables(want) == xcoact.map_names()
    g, w = _maps(got), _maps(want)
    assert g.keys() == w.keys()
    for name in w:
        np.testing.assert_array_equal(g[name], w[name], err_msg=name)
    for key in ("n_roi", "n_selected", "n_unselected", "max_overlap"):
        assert got.attrs[key] == want.attrs[key], key
    # the Datasets differ only in the seed's description (Dataset and roi attrs)
    assert got.attrs["seed"] != want.attrs["seed"]
    want = want.compute().assign_attrs(seed=got.attrs["seed"])
    want["roi"].attrs["seed"] = got["roi"].attrs["seed"]
    xr.testing.assert_identical(got.compute(), want)


@pytest.fixture(scope="module")
def grid():
    return xcoact.mni152_2mm()


# --------------------------------------------------------------------------- 1. forms of a seed


def test_bundled_rois_counts(grid, mni_mask):
    amy = xcoact.roi_mask(xcoact.datasets.amygdala_roi_path(), grid)
    sg = xcoact.roi_mask(xcoact.datasets.sgacc_roi_path(), grid)
    assert amy.attrs["n_roi"] == 366
    assert sg.attrs["n_roi"] == 1142
    np.testing.assert_array_equal(amy.values, (_amygdala() > 0) & mni_mask)
    np.testing.assert_array_equal(sg.values, (_sgacc() > 0) & mni_mask)
    assert amy.attrs["seed"] == xcoact.datasets.amygdala_roi_path()
    # the oracle's reading of the same file
    oracle_voxels = reference.roi_from_image(_amygdala().astype(float), mni_mask)
    assert set(zip(*np.nonzero(amy.values))) == set(oracle_voxels)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("roi_name", ["amygdala", "sgacc"])
def test_every_form_of_an_image_roi_gives_the_same_mask(form, roi_name, grid, mni_mask, tmp_path):
    data = _amygdala() if roi_name == "amygdala" else _sgacc()
    seed = FORMS[form](data, LAS, tmp_path)
    roi = xcoact.roi_mask(seed, grid)
    _assert_mask(roi, (data > 0) & mni_mask, grid)
    assert roi.attrs["n_roi"] == {"amygdala": 366, "sgacc": 1142}[roi_name]


@pytest.mark.parametrize("form", list(FORMS))
def test_coordinates_and_the_same_sphere_as_an_image_agree(form, grid, tmp_path):
    coords = [[0, 20, 28], [-40, 20, 28]]
    from_coords = xcoact.roi_mask(coords, grid, r=10)
    sphere = from_coords.values.astype(np.uint8)
    from_image = xcoact.roi_mask(FORMS[form](sphere, LAS, tmp_path), grid)
    _assert_mask(from_image, from_coords.values, grid)
    assert (
        from_image.attrs["n_roi"] == from_coords.attrs["n_roi"] == len(reference.roi_from_coords(coords, 10, grid.mask))
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_image_dtype_does_not_matter(dtype, grid, mni_mask, tmp_path):
    path = _save(tmp_path, "amy", _amygdala().astype(dtype), LAS)
    assert nib.load(path).get_data_dtype() == np.dtype(dtype)
    _assert_mask(xcoact.roi_mask(path, grid), (_amygdala() > 0) & mni_mask, grid)


@pytest.mark.parametrize("form", ["path", "image", "dataarray"])
def test_only_voxels_above_zero_and_labels_lumped(form, grid, mni_mask, tmp_path):
    amy, sg = _amygdala() > 0, _sgacc() > 0
    assert not (amy & sg).any()
    data = np.zeros(SHAPE, dtype=np.float32)
    data[amy] = 0.25  # a probability below 1 still counts
    data[sg] = 3.0  # a second label
    negative = np.zeros(SHAPE, dtype=bool)
    negative[40:50, 60:70, 40:50] = True  # in the brain
    nan = np.zeros(SHAPE, dtype=bool)
    nan[40:50, 40:50, 50:60] = True
    assert (negative & mni_mask).sum() > 500 and (nan & mni_mask).sum() > 500
    assert not ((negative | nan) & (amy | sg)).any()
    data[negative] = -1.0
    data[nan] = np.nan
    roi = xcoact.roi_mask(FORMS[form](data, LAS, tmp_path), grid)
    _assert_mask(roi, (amy | sg) & mni_mask, grid)
    assert roi.attrs["n_roi"] == 366 + 1142
    assert not roi.values[negative].any()
    assert not roi.values[nan].any()


def test_roi_is_restricted_to_the_brain_mask(grid, mni_mask, tmp_path):
    data = _amygdala().astype(np.uint8)
    data[:5, :5, :5] = 1  # a corner of the box, outside the brain
    assert not mni_mask[:5, :5, :5].any()
    roi = xcoact.roi_mask(_save(tmp_path, "amy_corner", data, LAS), grid)
    assert roi.attrs["n_roi"] == 366
    assert not roi.values[:5, :5, :5].any()


# --------------------------------------------------------------------------- 2. orientation


def test_flip_helper_gives_the_ras_affine():
    _, affine = _flip(_amygdala(), LAS, 0)
    np.testing.assert_array_equal(affine, RAS)


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1), (0, 1, 2)], ids=["ras", "y-flip", "x+y-flip", "all-flipped"])
def test_flipped_storage_gives_the_same_mask(axes, grid, mni_mask, tmp_path):
    data, affine = _amygdala(), LAS
    for axis in axes:
        data, affine = _flip(data, affine, axis)
    assert not np.array_equal(data, _amygdala())
    path = _save(tmp_path, "flipped", data, affine)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampleWarning)  # same voxel centres: no resampling
        roi = xcoact.roi_mask(path, grid)
    _assert_mask(roi, (_amygdala() > 0) & mni_mask, grid)


def test_ras_file_written_with_the_explicit_affine(grid, mni_mask, tmp_path):
    path = _save(tmp_path, "amy_ras", _amygdala()[::-1], RAS)
    np.testing.assert_array_equal(nib.load(path).affine, RAS)
    _assert_mask(xcoact.roi_mask(path, grid), (_amygdala() > 0) & mni_mask, grid)


@pytest.mark.parametrize("axis", [0, 1], ids=["ras", "y-flip"])
def test_flipped_roi_gives_identical_maps(axis, sample_cube, tmp_path):
    data, affine = _flip(_amygdala(), LAS, axis)
    path = _save(tmp_path, "flipped", data, affine)
    want = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    got = sample_cube.coact.seed(path, threshold=0.1)
    assert got.attrs["n_roi"] == 366
    _assert_same_maps(got, want)


# --------------------------------------------------------------------------- 3. another grid


@pytest.mark.parametrize(
    "centres,flip_x",
    [("integer", False), ("half", False), ("integer", True), ("half", True)],
    ids=["1mm-integer-LAS", "1mm-half-LAS", "1mm-integer-RAS", "1mm-half-RAS"],
)
def test_1mm_roi_is_resampled_exactly(centres, flip_x, grid, mni_mask, tmp_path):
    fine, affine = _to_1mm(_amygdala().astype(np.uint8), centres)
    if flip_x:
        fine, affine = _flip(fine, affine, 0)
    path = _save(tmp_path, "amy_1mm", fine, affine)
    img = nib.load(path)
    assert img.shape == (182, 218, 182)
    np.testing.assert_array_equal(np.abs(np.diag(img.affine)[:3]), 1.0)
    if centres == "integer":  # the 2 mm centres are 1 mm centres
        labels = xcoact.roi.image_to_dataarray(img)
        assert np.isin(grid.x, labels.x).all() and np.isin(grid.y, labels.y).all() and np.isin(grid.z, labels.z).all()
    with pytest.warns(ResampleWarning, match=RESAMPLED):
        roi = xcoact.roi_mask(path, grid)
    _assert_mask(roi, (_amygdala() > 0) & mni_mask, grid)
    assert roi.attrs["n_roi"] == 366


def test_1mm_roi_gives_identical_maps(sample_cube, tmp_path):
    fine, affine = _to_1mm(_amygdala().astype(np.uint8), "integer")
    path = _save(tmp_path, "amy_1mm", fine, affine)
    want = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    with pytest.warns(ResampleWarning, match=RESAMPLED):
        got = sample_cube.coact.seed(path, threshold=0.1)
    _assert_same_maps(got, want)


def test_1mm_small_box_leaves_the_rest_of_the_cube_false(grid, mni_mask, tmp_path):
    # a 1 mm image covering only x, y in [-10, 10], z in [0, 20] (integer centres), all ones
    ones = np.ones((21, 21, 21), dtype=np.uint8)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-10, -10, 0]
    path = _save(tmp_path, "box_1mm", ones, affine)
    with pytest.warns(ResampleWarning, match=RESAMPLED):
        roi = xcoact.roi_mask(path, grid)
    X, Y, Z = np.meshgrid(grid.x, grid.y, grid.z, indexing="ij")
    inside = (np.abs(X) <= 10) & (np.abs(Y) <= 10) & (Z >= 0) & (Z <= 20)
    assert inside.sum() == 11 * 11 * 11
    _assert_mask(roi, inside & mni_mask, grid)
    # the neighbours just beyond the box are brain voxels, and stay False
    brain = xr.DataArray(mni_mask, dims=("x", "y", "z"), coords=grid.coords())
    box = {"x": slice(10, -10), "y": slice(-10, 10), "z": slice(0, 20)}  # x labels descend
    for axis, label in (("x", 12), ("x", -12), ("y", 12), ("y", -12), ("z", -2), ("z", 22)):
        face = {**box, axis: label}  # the slab just beyond one face of the box
        assert brain.sel(face).values.sum() > 50, face
        assert not roi.sel(face).values.any(), face
    assert roi.values.sum() == roi.sel(box).values.sum()


@pytest.mark.parametrize("kind", ["crop", "pad"])
def test_same_lattice_other_field_of_view_is_not_resampled(kind, grid, mni_mask, tmp_path):
    amy = _amygdala().astype(np.uint8)
    if kind == "crop":
        data = amy[20:70, 30:90, 10:50]
        origin = LAS[:3, :3] @ [20, 30, 10] + LAS[:3, 3]
    else:
        data = np.pad(amy, 7)
        origin = LAS[:3, :3] @ [-7, -7, -7] + LAS[:3, 3]
    assert data.sum() == amy.sum()
    affine = LAS.copy()
    affine[:3, 3] = origin
    path = _save(tmp_path, kind, data, affine)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampleWarning)
        roi = xcoact.roi_mask(path, grid)
    _assert_mask(roi, (amy > 0) & mni_mask, grid)


def test_coarser_grid_on_the_same_centres_is_resampled(grid, mni_mask, tmp_path):
    # 4 mm voxels whose centres are 2 mm centres: a real resampling, each 2 mm voxel takes its nearest 4 mm one
    coarse = np.zeros((10, 10, 10), dtype=np.uint8)
    coarse[4:6, 4:6, 4:6] = 1
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-20, -20, -10]  # centres -20..16, -20..16, -10..26
    path = _save(tmp_path, "coarse", coarse, affine)
    with pytest.warns(ResampleWarning, match=r"voxel \(4\.0, 4\.0, 4\.0\) mm"):
        roi = xcoact.roi_mask(path, grid)
    # 4 mm voxels at x in {-4, 0} cover x in [-6, 2]: 2 mm centres -6 (tie), -4, -2, 0, 2 (tie)
    assert roi.attrs["n_roi"] > 8
    assert roi.sel(x=-2, y=-2, z=8).item() and roi.sel(x=-4, y=0, z=6).item()
    assert not roi.sel(x=-10, y=-2, z=8).item() and not roi.sel(x=-2, y=6, z=8).item()


# --------------------------------------------------------------------------- 4. unusable images


@pytest.mark.parametrize("kind", ["zeros", "outside_brain", "negative_only", "nan_only"])
def test_roi_without_in_mask_voxel_is_an_error(kind, grid, mni_mask, tmp_path):
    data = np.zeros(SHAPE, dtype=np.float32)
    if kind == "outside_brain":
        data[:5, :5, :5] = 1
    elif kind == "negative_only":
        data[_amygdala() > 0] = -1
    elif kind == "nan_only":
        data[_amygdala() > 0] = np.nan
    path = _save(tmp_path, kind, data, LAS)
    with pytest.raises(RoiError, match="no voxel inside the brain mask") as info:
        xcoact.roi_mask(path, grid)
    assert "228453-voxel mask" in str(info.value) and path in str(info.value)
    assert isinstance(info.value, ValueError)


def test_4d_singleton_works(grid, mni_mask, tmp_path):
    path = _save(tmp_path, "amy4d", _amygdala()[..., None], LAS)
    assert nib.load(path).shape == (*SHAPE, 1)
    _assert_mask(xcoact.roi_mask(path, grid), (_amygdala() > 0) & mni_mask, grid)


def test_4d_two_volumes_is_an_error(grid, tmp_path):
    data = np.stack([_amygdala(), _sgacc().astype(_amygdala().dtype)], axis=-1)
    path = _save(tmp_path, "two_volumes", data, LAS)
    with pytest.raises(RoiError, match=r"shape \(91, 109, 91, 2\); expected a 3-D ROI"):
        xcoact.roi_mask(path, grid)


def test_complex_image_is_an_error(grid, tmp_path):
    data = _amygdala().astype(np.complex64) * (1 + 1j)
    path = _save(tmp_path, "complex", data, LAS)
    assert nib.load(path).get_data_dtype() == np.complex64
    with pytest.raises(RoiError, match="complex"):
        xcoact.roi_mask(path, grid)
    with pytest.raises(RoiError, match="complex"):
        xcoact.roi_mask(_as_dataarray(_amygdala(), LAS, tmp_path).astype(np.complex128), grid)


@pytest.mark.parametrize("kind", ["rotation", "shear"])
def test_oblique_affine_is_an_error(kind, grid, tmp_path):
    affine = LAS.copy()
    if kind == "rotation":
        t = math.radians(15)
        rot = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
        affine[:3, :3] = rot @ LAS[:3, :3]
    else:
        affine[0, 1] = 0.5
    path = _save(tmp_path, "oblique", _amygdala(), affine)
    with pytest.raises(RoiError, match="oblique") as info:
        xcoact.roi_mask(path, grid)
    assert path in str(info.value)


def test_missing_file_is_file_not_found(grid, tmp_path):
    path = str(tmp_path / "no_such_roi.nii.gz")
    with pytest.raises(DatabaseFileNotFoundError, match="no such ROI image") as info:
        xcoact.roi_mask(path, grid)
    assert isinstance(info.value, FileNotFoundError)


def test_unreadable_file_is_an_roi_error(grid, tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"this is not a NIfTI file")
    with pytest.raises(RoiError, match="could not be read as a NIfTI image"):
        xcoact.roi_mask(str(path), grid)


def test_dataarray_with_other_dims_is_an_error(grid):
    da = xr.DataArray(np.ones((2, 2)), dims=("i", "j"))
    with pytest.raises(RoiError, match=r"expected exactly \('x', 'y', 'z'\)"):
        xcoact.roi_mask(da, grid)


def test_unknown_seed_type_is_a_parameter_error(grid):
    with pytest.raises(ParameterError, match="not understood"):
        xcoact.roi_mask({"x": 0}, grid)


# --------------------------------------------------------------------------- 5. coordinates


@pytest.mark.parametrize("r,n", [(6, 123), (10, 515), (2, 7)])
def test_sphere_size_before_masking(r, n):
    roi = xcoact.roi_mask([[0, 20, 28]], _grid_all_ones(), r=r)
    assert roi.attrs["n_roi"] == n
    # centred on the peak's voxel, within r mm of it
    X, Y, Z = np.meshgrid(*_grid_all_ones().coords().values(), indexing="ij")
    np.testing.assert_array_equal(roi.values, (X**2 + (Y - 20) ** 2 + (Z - 28) ** 2) <= r**2)


def test_single_coordinate_forms(grid):
    a = xcoact.roi_mask([[0, 20, 28]], grid, r=10)
    for seed in ([0, 20, 28], (0, 20, 28), np.array([0.0, 20.0, 28.0]), np.array([[0, 20, 28]])):
        np.testing.assert_array_equal(xcoact.roi_mask(seed, grid, r=10).values, a.values)


def test_sphere_is_restricted_to_the_brain_mask(grid, mni_mask):
    roi = xcoact.roi_mask([[0, 20, 28]], grid, r=10)
    assert roi.attrs["n_roi"] == len(reference.roi_from_coords([[0, 20, 28]], 10, mni_mask))
    near_edge = xcoact.roi_mask([[0, 70, 40]], grid, r=10)
    unmasked = xcoact.roi_mask([[0, 70, 40]], _grid_all_ones(), r=10)
    assert 0 < near_edge.attrs["n_roi"] < unmasked.attrs["n_roi"] == 515
    np.testing.assert_array_equal(near_edge.values, unmasked.values & mni_mask)


def test_rounding_half_to_even():
    # x = 1 mm -> i = round(44.5) = 44, the voxel centred at x = 2 (SPEC 2)
    roi = xcoact.roi_mask([[1, 20, 28]], _grid_all_ones(), r=2)
    assert roi.attrs["n_roi"] == 7
    assert roi.sel(x=2, y=20, z=28).item()
    assert sorted(roi.x.values[roi.any(("y", "z")).values].tolist()) == [0.0, 2.0, 4.0]


def test_sphere_is_cut_at_the_box_edge():
    # x = 90 is voxel i = 0: only the half-sphere di >= 0 remains, (515 + 81) / 2 voxels
    roi = xcoact.roi_mask([[90, 0, 0]], _grid_all_ones(), r=10)
    assert roi.attrs["n_roi"] == (515 + 81) // 2


def test_two_coordinates_union(grid):
    ones = _grid_all_ones()
    for other, overlapping in (([-40, 20, 28], False), ([6, 20, 28], True)):
        a = xcoact.roi_mask([[0, 20, 28]], ones, r=10).values
        b = xcoact.roi_mask([other], ones, r=10).values
        both = xcoact.roi_mask([[0, 20, 28], other], ones, r=10)
        np.testing.assert_array_equal(both.values, a | b)
        assert (both.attrs["n_roi"] < 1030) == overlapping
        assert both.attrs["n_roi"] == (a | b).sum()
    in_brain = xcoact.roi_mask([[0, 20, 28], [-40, 20, 28]], grid, r=10)
    assert in_brain.attrs["n_roi"] == len(reference.roi_from_coords([[0, 20, 28], [-40, 20, 28]], 10, grid.mask))


@pytest.mark.parametrize("coords", [[[0, 20, 200]], [[0, 20, 28], [-100, 0, 0]], [[0, -140, 0]]])
def test_coordinate_outside_the_grid_is_an_error(coords, grid):
    with pytest.raises(ParameterError, match="outside the grid") as info:
        xcoact.roi_mask(coords, grid, r=10)
    msg = str(info.value)
    assert "x in [-90.0, 90.0]" in msg and "y in [-126.0, 90.0]" in msg and "z in [-72.0, 108.0]" in msg


def test_coordinates_without_radius_is_an_error(grid):
    with pytest.raises(ParameterError, match=r"need a radius: pass r=<mm>"):
        xcoact.roi_mask([[0, 20, 28]], grid)


@pytest.mark.parametrize("r", [0, -5, float("nan"), float("inf"), "10", True])
def test_bad_radius_is_an_error(r, grid):
    with pytest.raises(ParameterError, match="r="):
        xcoact.roi_mask([[0, 20, 28]], grid, r=r)


def test_non_finite_coordinates_are_an_error(grid):
    with pytest.raises(ParameterError, match="NaN or infinity"):
        xcoact.roi_mask([[0, np.nan, 28]], grid, r=10)


def test_coordinate_seed_through_the_cube_matches_the_oracle(sample_cube, oracle):
    _, selected, n_roi = oracle("dacc", 0.1)
    ds = sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    assert ds.attrs["n_roi"] == n_roi == int(ds["roi"].sum())
    assert ds["selected_id"].values.tolist() == list(selected)
