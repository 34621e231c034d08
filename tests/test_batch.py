"""Many seeds at once: a ``seed`` dimension whose every slice equals the single-seed result."""

from __future__ import annotations

import warnings

import dask.array as da
import nibabel as nib
import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.errors import DegenerateSeedWarning

AMY = xcoact.datasets.amygdala_roi_path()
SGACC = xcoact.datasets.sgacc_roi_path()


def _single(act, seed, **kw):
    return act.coact.seed(seed, **kw).compute()


@pytest.mark.parametrize("route", ["sparse", "dense"])
def test_list_of_seeds_equals_one_by_one(sample_cube, route):
    act = sample_cube if route == "sparse" else sample_cube.chunk({"study": 25})
    seeds = [AMY, SGACC, [[0, 20, 28]]]
    ds = act.coact.seed(seeds, r=10, threshold=0.1)
    assert list(ds["seed"].values) == ["amygdala_roi", "sgacc_mask", "0_20_28"]
    assert ds["pA"].dims == ("seed", "x", "y", "z")
    assert isinstance(ds["pA"].data, da.Array) and ds["pA"].data.chunks[0] == (1, 1, 1)
    got = ds.compute()
    for name, one in zip(ds["seed"].values, seeds):
        single = _single(act, one, r=10, threshold=0.1)
        for m in single.coact.maps:
            np.testing.assert_array_equal(got[m].sel(seed=name).values, single[m].values, err_msg=f"{name} {m}")
        assert int(got["n_selected"].sel(seed=name)) == single.attrs["n_selected"]
        assert set(got["study"].values[got["selected"].sel(seed=name).values]) == set(single["selected_id"].values)
        np.testing.assert_array_equal(got["roi"].sel(seed=name).values, single["roi"].values)


def test_separate_coordinates_and_dict_names(sample_cube):
    sep = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1, separate=True)
    assert list(sep["seed"].values) == ["0_20_28", "-40_20_28"]
    lumped = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1)
    assert "seed" not in lumped.dims  # Neurosynth's behaviour stays the default
    assert sep["n_roi"].values.tolist() == [515, 515] and lumped.attrs["n_roi"] == 1030
    named = sample_cube.coact.seed({"dacc": [[0, 20, 28]], "dlpfc": [[-40, 20, 28]]}, r=10, threshold=0.1).compute()
    np.testing.assert_array_equal(named["pFgA"].values, sep["pFgA"].values)
    assert list(named["seed"].values) == ["dacc", "dlpfc"]


def test_atlas_by_label_with_lookup_table(sample_cube, tmp_path, affine_mni):
    amy = np.asarray(nib.load(AMY).dataobj) > 0
    sg = np.asarray(nib.load(SGACC).dataobj) > 0
    atlas = np.zeros(amy.shape, dtype=np.int16)
    atlas[amy] = 3
    atlas[sg & ~amy] = 7
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(atlas, affine_mni), path)
    lut = tmp_path / "atlas.txt"
    lut.write_text("index\tname\n3\tamygdala\n7\tsgACC\n")
    ds = sample_cube.coact.seed(str(path), threshold=0.1, by_label=True, labels=str(lut)).compute()
    assert list(ds["seed"].values) == ["amygdala", "sgACC"]
    single = _single(sample_cube, AMY, threshold=0.1)
    np.testing.assert_array_equal(
        ds["association-test_z"].sel(seed="amygdala").values, single["association-test_z"].values
    )
    # without by_label the same atlas is one lumped ROI, as in Neurosynth
    lumped = sample_cube.coact.seed(str(path), threshold=0.05)
    assert lumped.attrs["n_roi"] == int((atlas > 0).sum())
    # names default to label_<value>
    plain = sample_cube.coact.seed(str(path), threshold=0.1, by_label=True)
    assert list(plain["seed"].values) == ["label_3", "label_7"]


def test_degenerate_seed_gives_nan_maps_and_a_warning(sample_cube):
    with pytest.warns(
        DegenerateSeedWarning,
        match=r"1 of 2 seeds give NaN maps: 'amygdala_roi' \(no study selected; largest overlap 94 of 366 voxels\)",
    ):
        ds = sample_cube.coact.seed([AMY, SGACC], threshold=94)
    got = ds.compute()
    assert bool(np.isnan(got["pA"].sel(seed="amygdala_roi")).all())
    assert not bool(np.isnan(got["pA"].sel(seed="sgacc_mask")).any())
    assert got["valid"].values.tolist() == [False, True]
    assert ds.attrs["n_valid_seeds"] == 1


def test_batch_writes_netcdf_and_nifti_per_seed(sample_cube, tmp_path):
    ds = sample_cube.coact.seed([AMY, [[0, 20, 28]]], r=10, threshold=0.1)
    path = ds.coact.to_netcdf(tmp_path / "batch.nc")
    with xr.open_dataset(path) as back:
        xr.testing.assert_allclose(back["pFgA"].load(), ds["pFgA"].compute())
        assert list(back["seed"].values) == ["amygdala_roi", "0_20_28"]
        assert back.attrs["n_seeds"] == 2
    files = ds.coact.to_nifti(tmp_path / "b", seeds_per_pass=1)
    assert len(files) == 18
    img = nib.load(tmp_path / "b_0_20_28_pFgA.nii.gz")
    np.testing.assert_allclose(np.asarray(img.dataobj), ds["pFgA"].sel(seed="0_20_28").values.astype(np.float32))


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_batch_selection_is_computed_but_maps_stay_lazy(sample_table, monkeypatch):
    """The selection is computed at the call (building the chunk's rows once); the maps wait for compute."""
    import dask.array as dsa

    from xcoact import blocks

    calls = []
    original = blocks.sparse_rows
    monkeypatch.setattr(blocks, "sparse_rows", lambda *a, **k: calls.append(1) or original(*a, **k))
    fresh = xcoact.activations(sample_table, r=6)  # rows not built yet
    assert calls == []
    ds = fresh.coact.seed([AMY, SGACC], threshold=0.1)
    assert ds["n_selected"].values.tolist() == [9, 1]
    assert isinstance(ds["pA"].data, dsa.Array)
    assert calls == [1]  # the one chunk, for the selection
    ds["pA"].sel(seed="sgacc_mask").compute()
    assert calls == [1]  # the maps reuse the rows the selection built


def test_empty_list_and_bad_options(sample_cube):
    with pytest.raises(xcoact.ParameterError, match="the list of seeds is empty"):
        sample_cube.coact.seed([], threshold=0.1)
    with pytest.raises(xcoact.ParameterError, match="separate=True applies to coordinates"):
        sample_cube.coact.seed(AMY, separate=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(xcoact.RoiError, match="no positive label"):
            sample_cube.coact.seed(
                xr.DataArray(
                    np.zeros((2, 2, 2)),
                    dims=("x", "y", "z"),
                    coords={"x": [0.0, 2.0], "y": [0.0, 2.0], "z": [0.0, 2.0]},
                ),
                by_label=True,
            )


def test_seed_names_never_collide():
    from xcoact.roi import _unique_names

    assert _unique_names(["a", "a_1", "a", "a"]) == ["a", "a_1", "a_2", "a_3"]


def test_batch_nifti_computes_seed_by_seed(sample_cube, tmp_path, monkeypatch):
    """seeds_per_pass bounds what is computed at once: never the whole batch."""
    import dask

    seeds = {f"s{i}": [[0, 20 - 4 * i, 28]] for i in range(4)}
    ds = sample_cube.coact.seed(seeds, r=10, threshold=0.05)
    passes = []
    original = dask.compute
    monkeypatch.setattr(dask, "compute", lambda *a, **k: passes.append(len(a)) or original(*a, **k))
    files = ds.coact.to_nifti(tmp_path / "p", seeds_per_pass=1)
    assert len(files) == 36
    assert len(passes) == 4  # one compute per seed
    lazy = ds.coact.to_nifti(tmp_path / "q", seeds_per_pass=2, compute=False)
    assert not list(tmp_path.glob("q_*"))
    assert len(lazy.compute()) == 36


def test_voxel_layout_holds_the_same_maps(sample_cube, tmp_path):
    seeds = [AMY, [[0, 20, 28]]]
    vol = sample_cube.coact.seed(seeds, r=10, threshold=0.1).compute()
    vox = sample_cube.coact.seed(seeds, r=10, threshold=0.1, layout="voxel")
    assert vox["pFgA"].dims == ("seed", "voxel") and vox.sizes["voxel"] == 228_453
    assert vox.attrs["layout"] == "voxel"
    back = vox.coact.volumes()
    assert back["pFgA"].dims == ("seed", "x", "y", "z")
    for name in vol.coact.maps:
        np.testing.assert_array_equal(back[name].values, vol[name].values)
    np.testing.assert_array_equal(back["roi"].values, vol["roi"].values)
    # in-mask values in grid order
    np.testing.assert_array_equal(vox["pA"].values[1], vol["pA"].values[1].ravel()[vox["voxel"].values])
    store = vox.coact.to_zarr(tmp_path / "v.zarr", dtype="float32")
    with xr.open_zarr(store) as reread:
        np.testing.assert_array_equal(reread.coact.volumes()["pA"].values, vol["pA"].values.astype(np.float32))
    files = vox.coact.to_nifti(tmp_path / "v")
    assert len(files) == 18
    with pytest.raises(xcoact.ParameterError, match="layout='cube' is not known"):
        sample_cube.coact.seed(seeds, r=10, layout="cube")
