"""xcoact and nilearn: in-memory images with intent codes, images back onto the cube, atlases, plots.

Results go straight to the real ``nilearn.plotting`` and ``NiftiMasker``; the
atlases are nilearn's own ``Atlas`` class and a plain scikit-learn ``Bunch``
(what nilearn's fetchers return) over a label image on the MNI grid.
"""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

import xcoact
from xcoact.errors import ParameterError, ResampleWarning, RoiError, XcoactWarning

SEED = [[0, 20, 28]]
Z = "association-test_z_FDR_0.01"


def quiet(func, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return func(*args, **kw)


@pytest.fixture(scope="module")
def cube(sample_table):
    return quiet(xcoact.activations, sample_table, r=6)


@pytest.fixture(scope="module")
def maps(cube):
    return quiet(cube.coact.seed, SEED, 0.1, r=10).compute()


@pytest.fixture(scope="module")
def batch(cube):
    return quiet(cube.coact.seed, {"dacc": SEED, "ipl": [[40, -60, 40]]}, 0.1, r=10)


def label_image(values=(1, 2, 3)):
    """Three 7x7x7-voxel labelled cubes (dACC, right and left IPL) on the MNI 2 mm grid."""
    grid = xcoact.mni152_2mm()
    data = np.zeros(grid.shape, dtype=np.int16)
    for v, (i, j, k) in zip(values, grid.xyz_to_ijk(np.array([[0, 20, 28], [40, -60, 40], [-40, -60, 40]]))):
        data[i - 3 : i + 4, j - 3 : j + 4, k - 3 : k + 4] = v
    return nib.Nifti1Image(data, grid.affine)


NAMES = ["Background", "dACC", "R_IPL", "L_IPL"]


# ----------------------------------------------------------------------------- to_nibabel / to_nifti headers


def test_to_nibabel_is_the_map_with_intent_and_description(maps, affine_mni):
    img = maps.coact.to_nibabel()  # the default map: the FDR association z map
    assert isinstance(img, nib.Nifti1Image) and img.shape == (91, 109, 91)
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(img.affine, affine_mni)
    assert img.header.get_intent() == ("z score", (), Z[:15])
    assert img.header["descrip"].item().decode() == f"xcoact {xcoact.__version__} {Z}"
    assert img.header["sform_code"] == 4 and img.header["qform_code"] == 4
    np.testing.assert_array_equal(img.get_fdata(), maps[Z].values.astype(np.float32))
    pa = xcoact.to_nibabel(maps, "pA")
    assert pa.header.get_intent()[0] == "none" and pa.header["intent_code"] == 0
    np.testing.assert_array_equal(pa.get_fdata(), maps["pA"].values.astype(np.float32))


def test_p_maps_get_the_p_value_intent(sample_table):
    nimare_cube = quiet(xcoact.activations, sample_table, preset="nimare")
    nimare = quiet(nimare_cube.coact.seed, SEED, r=10)
    assert nimare.coact.to_nibabel("p_desc-association").header["intent_code"] == 22  # NIFTI_INTENT_PVAL
    assert nimare.coact.to_nibabel("z_desc-association").header["intent_code"] == 5  # NIFTI_INTENT_ZSCORE
    assert nimare.coact.to_nibabel("prob_desc-A").header["intent_code"] == 0


def test_to_nifti_files_carry_the_same_header(maps, tmp_path):
    paths = maps.coact.to_nifti(tmp_path / "out", names=[Z, "pA"])
    for path, name in zip(paths, [Z, "pA"]):
        on_disk = nib.load(path)
        in_memory = maps.coact.to_nibabel(name)
        for key in ("intent_code", "intent_name", "descrip", "sform_code", "qform_code", "xyzt_units", "datatype"):
            assert on_disk.header[key] == in_memory.header[key], (name, key)
        np.testing.assert_array_equal(on_disk.get_fdata(), in_memory.get_fdata())


def test_a_batch_is_a_4d_image_or_one_seed(batch):
    img = batch.coact.to_nibabel("association-test_z")
    assert img.shape == (91, 109, 91, 2)
    assert img.header["descrip"].item().decode().endswith("association-test_z (2 seeds)")
    ipl = batch.coact.to_nibabel("association-test_z", seed="ipl")
    assert ipl.shape == (91, 109, 91)
    np.testing.assert_array_equal(ipl.get_fdata(), img.get_fdata()[..., 1])
    np.testing.assert_array_equal(
        ipl.get_fdata(), batch["association-test_z"].sel(seed="ipl").values.astype(np.float32)
    )
    with pytest.raises(ParameterError, match=r"seed='nope' is not a seed of this batch; its seeds: \['dacc', 'ipl'\]"):
        batch.coact.to_nibabel(seed="nope")


def test_a_single_result_refuses_a_seed_and_unknown_maps(maps):
    with pytest.raises(ParameterError, match=r"seed='dacc' applies to a batch; this result has one seed"):
        maps.coact.to_nibabel(seed="dacc")
    with pytest.raises(ParameterError, match=r"name='nope' is not a map of the Dataset; available maps: \['pA'"):
        maps.coact.to_nibabel("nope")


# ----------------------------------------------------------------------------- nilearn consumes the images


def test_nilearn_masker_and_plotting_take_the_images(maps):
    from nilearn import plotting
    from nilearn.maskers import NiftiMasker

    img = maps.coact.to_nibabel()
    mask = nib.Nifti1Image(maps["brain_mask"].transpose("x", "y", "z").values.astype(np.uint8), img.affine)
    masker = NiftiMasker(mask_img=mask).fit()
    values = masker.transform(img).ravel()
    brain = maps["brain_mask"].transpose("x", "y", "z").values
    assert values.shape == (int(brain.sum()),) == (228453,)
    np.testing.assert_array_equal(values, maps[Z].transpose("x", "y", "z").values[brain].astype(np.float32))
    back = masker.inverse_transform(values)
    np.testing.assert_array_equal(xcoact.from_nibabel(back, maps).values, img.get_fdata())
    display = plotting.plot_glass_brain(img, threshold=3.0, plot_abs=False)
    assert display.frame_axes is not None
    display.close()


def test_plot_with_nilearn(maps, batch):
    import matplotlib.pyplot as plt

    fig = maps.coact.plot(engine="nilearn", threshold=2.0)
    assert isinstance(fig, Figure) and len(fig.axes) >= 2
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]
    assert any(Z in t for t in texts)  # the stat map's title names the map
    plt.close(fig)
    with pytest.raises(ParameterError, match=r"a batch holds 2 seeds; pass seed= \(one of \['dacc', 'ipl'\]\)"):
        batch.coact.plot("association-test_z", engine="nilearn")
    with pytest.raises(
        ParameterError, match=r"engine='bokeh' is not known; expected one of \['matplotlib', 'nilearn'\]"
    ):
        maps.coact.plot(engine="bokeh")


def test_view_with_nilearn(maps, batch, tmp_path):
    view = maps.coact.view(threshold=2.0)
    out = tmp_path / "view.html"
    view.save_as_html(str(out))
    assert out.stat().st_size > 10_000 and Z in out.read_text()
    with pytest.raises(ParameterError, match=r"a batch holds several seeds; pass seed= to view one"):
        batch.coact.view("association-test_z")


# ----------------------------------------------------------------------------- from_nibabel


def test_from_nibabel_puts_an_image_on_the_cube_labels(maps, cube, tmp_path):
    img = maps.coact.to_nibabel("pA")
    back = xcoact.from_nibabel(img, cube)
    assert back.dims == ("x", "y", "z") and back.attrs["intent"] == "none"
    for d in "xyz":
        np.testing.assert_array_equal(back[d].values, cube[d].values)
    np.testing.assert_array_equal(back.values, maps["pA"].values.astype(np.float32))
    # the same image stored RAS (x ascending) comes back identical: alignment is by label
    ras = nib.Nifti1Image(
        np.flip(img.get_fdata(), 0), img.affine @ np.array([[-1, 0, 0, 90], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    )
    assert ras.affine[0, 0] == 2.0
    xr.testing.assert_identical(xcoact.from_nibabel(ras, cube).drop_attrs(), back.drop_attrs())
    # a file, named after it; the default grid is MNI152 2 mm
    path = tmp_path / "pA_map.nii.gz"
    nib.save(img, path)
    from_file = xcoact.from_nibabel(path)
    assert from_file.name == "pA_map"
    np.testing.assert_array_equal(from_file.values, back.values)


def test_from_nibabel_takes_nilearn_outputs_4d_images_and_other_grids(maps, batch, cube):
    from nilearn import image

    smoothed = image.smooth_img(maps.coact.to_nibabel(), fwhm=6)
    da = xcoact.from_nibabel(smoothed, cube, name="smoothed")
    assert da.name == "smoothed" and da.attrs["intent"] == "z score"
    np.testing.assert_allclose(da.values, smoothed.get_fdata())
    four = xcoact.from_nibabel(batch.coact.to_nibabel("association-test_z"), cube)
    assert four.dims == ("volume", "x", "y", "z") and four.sizes["volume"] == 2
    np.testing.assert_array_equal(
        four.isel(volume=1).values, batch["association-test_z"].sel(seed="ipl").values.astype(np.float32)
    )
    coarse = image.resample_img(
        maps.coact.to_nibabel("pA"),
        target_affine=np.diag([4.0, 4.0, 4.0]),
        interpolation="nearest",
        force_resample=True,
        copy_header=True,
    )
    with pytest.warns(ResampleWarning, match=r"on another grid .* resampled to the cube's \(91, 109, 91\) grid"):
        on_cube = xcoact.from_nibabel(coarse, cube)
    assert on_cube.shape == (91, 109, 91)
    with pytest.raises(RoiError, match=r"image has shape \(4, 4\); expected a 3-D map or a 4-D stack of maps"):
        xcoact.from_nibabel(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)))


# ----------------------------------------------------------------------------- nilearn atlases as seeds


def test_nilearn_atlases_name_their_labels(cube):
    from nilearn.datasets.atlas import Atlas
    from sklearn.utils import Bunch

    img = label_image()
    lut = pd.DataFrame({"index": [0, 1, 2, 3], "name": NAMES})
    atlases = {
        "Atlas with lut": Atlas(maps=img, description="test atlas", atlas_type="deterministic", lut=lut),
        "Bunch with labels": Bunch(maps=img, labels=NAMES),
    }
    reference = quiet(cube.coact.seed, img, 0.1, by_label=True, labels={1: "dACC", 2: "R_IPL", 3: "L_IPL"})
    for kind, atlas in atlases.items():
        got = quiet(cube.coact.seed, atlas, 0.1, by_label=True)
        assert got["seed"].values.tolist() == ["dACC", "R_IPL", "L_IPL"], kind
        np.testing.assert_array_equal(got["association-test_z"].values, reference["association-test_z"].values)
    assert quiet(cube.coact.seed, img, 0.1, by_label=True, labels=lut)["seed"].values.tolist() == NAMES[1:]
    assert quiet(cube.coact.seed, img, 0.1, by_label=True, labels=NAMES)["seed"].values.tolist() == NAMES[1:]
    # names without "Background" go to the label values in ascending order
    odd = label_image((5, 7, 9))
    assert quiet(cube.coact.seed, odd, 0.1, by_label=True, labels=["a", "b", "c"])["seed"].values.tolist() == [
        "a",
        "b",
        "c",
    ]
    matrix = cube.coact.matrix(atlases["Atlas with lut"], 0.1, by_label=True)
    assert matrix["roi"].values.tolist() == NAMES[1:]
    # without by_label, an atlas is one ROI: all its labelled voxels
    one = quiet(cube.coact.seed, atlases["Bunch with labels"], 0.1)
    assert one.attrs["n_roi"] == quiet(xcoact.seed, cube, img, 0.1).attrs["n_roi"] > 0
    assert "seed" not in one.dims and one.attrs["seed"] == "nilearn atlas (Nifti1Image)"


def test_atlas_label_errors(cube):
    from sklearn.utils import Bunch

    img = label_image()
    with pytest.raises(
        ParameterError,
        match=r"labels: a list of 2 name\(s\) whose first entry is not 'Background'; "
        r"the image has 3 positive label value\(s\)",
    ):
        quiet(cube.coact.seed, img, 0.1, by_label=True, labels=["a", "b"])
    with pytest.raises(
        ParameterError,
        match=r"labels: a DataFrame with columns \['value', 'label'\]; expected a look-up "
        r"table with 'index' \(label value\) and 'name' columns",
    ):
        quiet(cube.coact.seed, img, 0.1, by_label=True, labels=pd.DataFrame({"value": [1], "label": ["a"]}))
    with pytest.raises(
        RoiError,
        match=r"'maps' is a list of 2 images \(a probabilistic or surface atlas\); expected one "
        r"3-D label image",
    ):
        quiet(cube.coact.seed, Bunch(maps=[img, img], labels=NAMES), 0.1, by_label=True)
    with pytest.raises(ParameterError, match=r"labels of type int is not understood"):
        quiet(cube.coact.seed, img, 0.1, by_label=True, labels=3)
