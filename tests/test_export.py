"""Result Datasets -> NIfTI and netCDF files: content, naming, atomicity, provenance.

Files are written into ``tmp_path`` and read back with nibabel / xarray; the
atomicity tests inject failures (``nibabel.save``, ``os.replace``,
``Dataset.to_netcdf``) and check the directory byte for byte afterwards.
"""

from __future__ import annotations

import json
import os
import threading

import dask
import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from dask.delayed import Delayed

import xcoact
from xcoact.errors import OutputError
from xcoact.result import with_cf_attributes
from xcoact.writers import map_variables

SEED = [[0, 20, 28]]


@pytest.fixture
def maps(sample_cube):
    """Coactivation maps of the dACC sphere (r = 10 mm, threshold 0.1), lazy."""
    return sample_cube.coact.seed(SEED, r=10, threshold=0.1)


@pytest.fixture
def amygdala_maps(sample_cube):
    """Maps of another seed, to tell files of one run from those of another."""
    return sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)


@pytest.fixture(scope="module")
def template():
    return nib.load(xcoact.datasets.template_path())


def _expected_files(outroot) -> list[str]:
    return [f"{os.fspath(outroot)}_{name}.nii.gz" for name in xcoact.map_names()]


def _with_sidecars(files) -> list[str]:
    """The base names of NIfTI files and of their JSON sidecars, sorted."""
    names = [os.path.basename(f) for f in files]
    return sorted(names + [n[: -len(".nii.gz")] + ".json" for n in names])


def _snapshot(folder) -> dict[str, bytes]:
    """Every file of a directory (hidden ones included) with its bytes."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fail_on_call(monkeypatch, module, attr: str, n: int, exc: BaseException):
    """Make ``module.attr`` raise ``exc`` on its n-th call (1-based) only; returns the call counter."""
    real = getattr(module, attr)
    calls = {"n": 0}
    lock = threading.Lock()  # the patched call may come from several writer threads at once

    def wrapper(*args, **kwargs):
        with lock:
            calls["n"] += 1
            k = calls["n"]
        if k == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(module, attr, wrapper)
    return calls


# --------------------------------------------------------------------------- 1. NIfTI content


def test_to_nifti_writes_the_nine_maps(maps, template, mni_mask, affine_mni, tmp_path):
    outroot = tmp_path / "coactivation_from_coords"
    files = maps.coact.to_nifti(outroot)
    assert files == _expected_files(outroot)
    assert sorted(os.listdir(tmp_path)) == _with_sidecars(files)  # no temporary left
    assert len(files) == 9
    computed = maps.compute()
    for name, path in zip(xcoact.map_names(), files):
        img = nib.load(path)
        assert img.shape == (91, 109, 91)
        assert img.get_data_dtype() == np.float32
        assert int(img.header["datatype"]) == 16  # NIFTI_TYPE_FLOAT32
        np.testing.assert_array_equal(img.affine, template.affine)
        np.testing.assert_array_equal(img.affine, affine_mni)
        assert img.header.get_xyzt_units()[0] == "mm"
        data = np.asarray(img.dataobj)
        assert data.dtype == np.float32
        want = computed[name].transpose("x", "y", "z").values.astype(np.float32)
        np.testing.assert_array_equal(data, want, err_msg=name)
        assert not data[~mni_mask].any(), name
        assert os.stat(path).st_mode & 0o777 == _default_mode(), "output must not keep a temporary file's 0o600"
    # the maps are not trivially zero, so the comparison above means something
    pa = np.asarray(nib.load(files[0]).dataobj)
    assert (pa > 0).sum() > 10_000
    z = np.asarray(nib.load(files[6]).dataobj)
    assert z.min() < 0 < z.max()


def test_nifti_voxels_sit_at_their_mm_labels(maps, tmp_path):
    # a Dataset stored RAS (x ascending) is written with an x-ascending affine; labels survive
    ras = maps[["pA", "pAgF"]].isel(x=slice(None, None, -1)).compute()
    assert ras.x.values[0] == -90
    files = ras.coact.to_nifti(tmp_path / "ras")
    img = nib.load(files[0])
    np.testing.assert_array_equal(img.affine[:3, 3], [-90, -126, -72])
    np.testing.assert_array_equal(np.diag(img.affine)[:3], [2, 2, 2])
    back = xcoact.roi.image_to_dataarray(img)
    np.testing.assert_array_equal(back.x.values, ras.x.values)
    np.testing.assert_array_equal(back.values, ras["pA"].values.astype(np.float32))
    # and aligns by label with the LAS original
    np.testing.assert_array_equal(back.sel(x=maps.x).values, maps["pA"].values.astype(np.float32))


def test_to_nifti_names_subset(maps, tmp_path):
    files = maps.coact.to_nifti(tmp_path / "c", names=["pA", "association-test_z"])
    assert files == [str(tmp_path / "c_pA.nii.gz"), str(tmp_path / "c_association-test_z.nii.gz")]
    assert sorted(os.listdir(tmp_path)) == [
        "c_association-test_z.json",
        "c_association-test_z.nii.gz",
        "c_pA.json",
        "c_pA.nii.gz",
    ]


def test_to_nifti_unknown_name_lists_the_maps(maps, tmp_path):
    with pytest.raises(OutputError, match=r"no map\(s\) \['pB'\].*available: \['pA', 'pAgF'"):
        maps.coact.to_nifti(tmp_path / "c", names=["pB"])
    assert os.listdir(tmp_path) == []


def test_accessor_and_function_agree(maps, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files_a = maps.coact.to_nifti(tmp_path / "a" / "c")
    files_b = xcoact.to_nifti(maps, tmp_path / "b" / "c")
    for fa, fb in zip(files_a, files_b):
        np.testing.assert_array_equal(np.asarray(nib.load(fa).dataobj), np.asarray(nib.load(fb).dataobj))


# --------------------------------------------------------------------------- 2. compute=False


def test_compute_false_returns_a_delayed_that_writes_later(maps, tmp_path):
    outroot = tmp_path / "lazy"
    task = maps.coact.to_nifti(outroot, compute=False)
    assert isinstance(task, Delayed)
    assert os.listdir(tmp_path) == []  # nothing written yet
    files = task.compute()
    assert files == _expected_files(outroot)
    assert sorted(os.listdir(tmp_path)) == _with_sidecars(files)
    np.testing.assert_array_equal(np.asarray(nib.load(files[1]).dataobj), maps["pAgF"].values.astype(np.float32))


def test_compute_false_does_not_compute(maps, tmp_path):
    calls = {"n": 0}

    def counting_scheduler(dsk, keys, **kwargs):
        calls["n"] += 1
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_scheduler):
        task = maps.coact.to_nifti(tmp_path / "lazy", compute=False)
        assert calls["n"] == 0
        task.compute()
        assert calls["n"] == 1
    assert len(os.listdir(tmp_path)) == 18  # nine maps and their sidecars


def test_compute_false_checks_outputs_at_call_time(maps, tmp_path):
    maps.coact.to_nifti(tmp_path / "c", names=["pA"])
    with pytest.raises(OutputError, match="overwrite=True"):
        maps.coact.to_nifti(tmp_path / "c", compute=False)
    with pytest.raises(OutputError, match="does not exist"):
        maps.coact.to_nifti(tmp_path / "missing" / "c", compute=False)


# --------------------------------------------------------------------------- 3. atomicity


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device (injected)"), RuntimeError("injected")])
def test_failed_save_leaves_nothing(exc, maps, tmp_path, monkeypatch):
    calls = _fail_on_call(monkeypatch, nib, "save", 5, exc)
    expected = OutputError if isinstance(exc, OSError) else RuntimeError
    with pytest.raises(expected, match="injected") as info:
        maps.coact.to_nifti(tmp_path / "c")
    assert calls["n"] == 5
    if expected is OutputError:
        assert "nothing was written" in str(info.value)
    assert os.listdir(tmp_path) == []  # no output, no temporary file


def test_failed_save_keeps_earlier_files_byte_for_byte(maps, amygdala_maps, tmp_path, monkeypatch):
    amygdala_maps.coact.to_nifti(tmp_path / "c", overwrite=True)
    before = _snapshot(tmp_path)
    assert len(before) == 18  # nine maps and their sidecars
    _fail_on_call(monkeypatch, nib, "save", 5, OSError(5, "I/O error (injected)"))
    with pytest.raises(OutputError, match="injected"):
        maps.coact.to_nifti(tmp_path / "c", overwrite=True)
    assert _snapshot(tmp_path) == before
    # without the failure the same call does replace them, so the check above is not vacuous
    monkeypatch.undo()
    maps.coact.to_nifti(tmp_path / "c", overwrite=True)
    after = _snapshot(tmp_path)
    assert after.keys() == before.keys() and after != before


@pytest.mark.parametrize("n", [1, 5, 9])
def test_failed_rename_leaves_nothing(n, maps, tmp_path, monkeypatch):
    # without overwrite each file is placed by a hard link, which refuses to replace (tests/test_no_clobber.py)
    _fail_on_call(monkeypatch, os, "link", n, PermissionError(13, "Permission denied (injected)"))
    with pytest.raises(OutputError, match="injected"):
        maps.coact.to_nifti(tmp_path / "c")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("n", [1, 5, 9])
def test_failed_rename_keeps_earlier_files_byte_for_byte(n, maps, amygdala_maps, tmp_path, monkeypatch):
    amygdala_maps.coact.to_nifti(tmp_path / "c", overwrite=True)
    (tmp_path / "unrelated.txt").write_text("keep me")
    before = _snapshot(tmp_path)
    _fail_on_call(monkeypatch, os, "replace", n, PermissionError(13, "Permission denied (injected)"))
    with pytest.raises(OutputError, match="injected"):
        maps.coact.to_nifti(tmp_path / "c", overwrite=True)
    assert _snapshot(tmp_path) == before


def test_partial_earlier_outputs_kept_when_a_new_write_fails(maps, amygdala_maps, tmp_path, monkeypatch):
    # 3 of the 9 files exist; the 5th rename fails: the 3 are restored, the others never appear
    amygdala_maps.coact.to_nifti(tmp_path / "c", names=["pA", "pFgA", "association-test_z"])
    before = _snapshot(tmp_path)
    _fail_on_call(monkeypatch, os, "replace", 5, OSError(5, "I/O error (injected)"))
    with pytest.raises(OutputError):
        maps.coact.to_nifti(tmp_path / "c", overwrite=True)
    assert _snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 4. refusing to overwrite, bad directories


def test_existing_outputs_are_refused(maps, amygdala_maps, tmp_path):
    outroot = tmp_path / "c"
    files = amygdala_maps.coact.to_nifti(outroot)
    before = _snapshot(tmp_path)
    with pytest.raises(OutputError, match="overwrite=True") as info:
        maps.coact.to_nifti(outroot)
    msg = str(info.value)
    assert "9 output file(s) already exist" in msg
    assert any(f in msg for f in files)
    assert isinstance(info.value, OSError)
    assert _snapshot(tmp_path) == before
    maps.coact.to_nifti(outroot, overwrite=True)
    np.testing.assert_array_equal(np.asarray(nib.load(files[0]).dataobj), maps["pA"].values.astype(np.float32))


def test_one_existing_output_is_enough_to_refuse(maps, tmp_path):
    outroot = tmp_path / "c"
    maps.coact.to_nifti(outroot, names=["pFgA"])
    with pytest.raises(OutputError, match=r"1 output file\(s\) already exist \(e\.g\. .*c_pFgA\.nii\.gz\)"):
        maps.coact.to_nifti(outroot)
    assert sorted(os.listdir(tmp_path)) == ["c_pFgA.json", "c_pFgA.nii.gz"]


def test_missing_output_directory(maps, tmp_path):
    folder = tmp_path / "does" / "not" / "exist"
    with pytest.raises(OutputError, match="output directory does not exist") as info:
        maps.coact.to_nifti(folder / "c")
    assert str(folder) in str(info.value)
    with pytest.raises(OutputError, match="output directory does not exist") as info:
        maps.coact.to_netcdf(folder / "c.nc")
    assert str(folder) in str(info.value)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- 5. netCDF


def test_netcdf_round_trip(maps, tmp_path):
    path = tmp_path / "maps.nc"
    assert maps.coact.to_netcdf(path) == str(path)
    assert os.listdir(tmp_path) == ["maps.nc"]
    assert os.stat(path).st_mode & 0o777 == _default_mode()
    computed = with_cf_attributes(maps.compute())  # the file adds long_name, units and Conventions
    with xr.open_dataset(path) as back:
        back = back.load()
    xr.testing.assert_identical(back, computed)
    assert map_variables(back) == xcoact.map_names()
    for name in [*xcoact.map_names(), "roi", "overlap", "selected_id", "brain_mask"]:
        assert back[name].dtype == computed[name].dtype, name
        np.testing.assert_array_equal(back[name].values, computed[name].values)
        assert back[name].attrs == computed[name].attrs, name
    assert back["roi"].dtype == bool and back["brain_mask"].dtype == bool
    assert "brain_mask" in back.coords
    # every attr comes back equal; numbers come back as numpy scalars of the same kind
    assert back.attrs.keys() == computed.attrs.keys()
    for key, value in computed.attrs.items():
        got = back.attrs[key]
        assert got == value, key
        if isinstance(value, str):
            assert isinstance(got, str), key
        elif isinstance(value, int):
            assert isinstance(got, (int, np.integer)), key
        else:
            assert isinstance(got, (float, np.floating)), key
    assert json.loads(back.attrs["seed"]) == json.loads(maps.attrs["seed"])


def test_netcdf_round_trip_of_a_coactivation_result(sample_cube, tmp_path):
    # an int (count) threshold and the list-valued ``files`` attr
    ds = xcoact.coactivation(sample_cube, xcoact.datasets.amygdala_roi_path(), threshold=5, outroot=tmp_path / "amy")
    assert ds.attrs["threshold"] == 5 and ds.attrs["threshold_kind"] == "count"
    path = ds.coact.to_netcdf(tmp_path / "amy.nc")
    with xr.open_dataset(path) as back:
        back = back.load()
    xr.testing.assert_identical(back, with_cf_attributes(ds))
    assert list(back.attrs["files"]) == ds.attrs["files"]
    assert isinstance(back.attrs["threshold"], (int, np.integer))


def test_netcdf_refuses_existing_file(maps, amygdala_maps, tmp_path):
    path = tmp_path / "maps.nc"
    amygdala_maps.coact.to_netcdf(path)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists; pass overwrite=True") as info:
        maps.coact.to_netcdf(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    maps.coact.to_netcdf(path, overwrite=True)
    with xr.open_dataset(path) as back:
        assert back.attrs["seed"] == maps.attrs["seed"]


def _broken_to_netcdf(self, path, *args, **kwargs):
    """Write half a file, then fail, as a full disk would."""
    with open(path, "wb") as fh:
        fh.write(b"CDF\x01 partial")
    raise OSError(28, "No space left on device (injected)")


def test_netcdf_failure_leaves_nothing(maps, tmp_path, monkeypatch):
    monkeypatch.setattr(xr.Dataset, "to_netcdf", _broken_to_netcdf)
    with pytest.raises(OSError, match="injected"):
        maps.coact.to_netcdf(tmp_path / "maps.nc")
    assert os.listdir(tmp_path) == []


def test_netcdf_failure_keeps_earlier_file(maps, amygdala_maps, tmp_path, monkeypatch):
    path = tmp_path / "maps.nc"
    amygdala_maps.coact.to_netcdf(path, overwrite=True)
    before = _snapshot(tmp_path)
    monkeypatch.setattr(xr.Dataset, "to_netcdf", _broken_to_netcdf)
    with pytest.raises(OSError, match="injected"):
        maps.coact.to_netcdf(path, overwrite=True)
    assert _snapshot(tmp_path) == before


def test_netcdf_failed_rename_keeps_earlier_file(maps, amygdala_maps, tmp_path, monkeypatch):
    path = tmp_path / "maps.nc"
    amygdala_maps.coact.to_netcdf(path)
    before = _snapshot(tmp_path)
    _fail_on_call(monkeypatch, os, "replace", 1, PermissionError(13, "Permission denied (injected)"))
    with pytest.raises(OSError, match="injected"):
        maps.coact.to_netcdf(path, overwrite=True)
    assert _snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 6. provenance and coactivation()


def test_provenance_attrs(maps, sample_cube, oracle):
    _, selected, n_roi = oracle("dacc", 0.1)
    a = maps.attrs
    assert a["database"] == xcoact.datasets.sample_database_path() == sample_cube.attrs["database"]
    assert a["r"] == 6.0 == sample_cube.attrs["r"]
    assert json.loads(a["seed"]) == {"coordinates": [[0.0, 20.0, 28.0]], "r": 10}
    assert a["seed_r"] == 10.0
    assert a["threshold"] == 0.1 and a["threshold_kind"] == "proportion"
    assert a["q"] == 0.01 and a["prior"] == 0.5
    assert a["n_studies"] == 100 == sample_cube.sizes["study"] == maps.sizes["study"]
    assert a["n_selected"] == len(maps["selected_id"]) == len(selected)
    assert maps["selected_id"].values.tolist() == list(selected)
    assert a["n_unselected"] == a["n_studies"] - a["n_selected"]
    assert a["n_roi"] == n_roi == int(maps["roi"].sum())
    assert a["max_overlap"] == int(maps["overlap"].max())
    assert a["maps"] == ", ".join(xcoact.map_names())
    assert a["xcoact_version"] == xcoact.__version__
    # selected exactly when coverage > threshold
    np.testing.assert_array_equal(
        np.isin(maps["study"].values, maps["selected_id"].values), maps["overlap"].values / a["n_roi"] > 0.1
    )


def test_provenance_follows_the_arguments(sample_cube):
    ds = sample_cube.coact.seed(xcoact.datasets.sgacc_roi_path(), threshold=0.05, q=0.05, prior=0.3)
    a = ds.attrs
    assert a["seed"] == xcoact.datasets.sgacc_roi_path()
    assert (a["threshold"], a["q"], a["prior"], a["n_roi"]) == (0.05, 0.05, 0.3, 1142)
    assert map_variables(ds) == xcoact.map_names(q=0.05, prior=0.3)
    assert "pFgA_given_pF=0.30" in ds and "association-test_z_FDR_0.05" in ds


def test_coactivation_writes_and_returns_computed(sample_cube, oracle, mni_mask, tmp_path):
    outroot = tmp_path / "coactivation_from_image"
    ds = xcoact.coactivation(sample_cube, xcoact.datasets.amygdala_roi_path(), threshold=0.1, outroot=outroot)
    files = _expected_files(outroot)
    assert ds.attrs["files"] == files
    assert sorted(os.listdir(tmp_path)) == _with_sidecars(files)
    for name in ds.data_vars:
        assert isinstance(ds[name].data, np.ndarray), f"{name} is not computed"
    want, selected, n_roi = oracle("amygdala", 0.1)
    assert ds.attrs["n_roi"] == n_roi == 366
    assert ds["selected_id"].values.tolist() == list(selected)
    for name, path in zip(xcoact.map_names(), files):
        data = np.asarray(nib.load(path).dataobj)
        np.testing.assert_array_equal(data, ds[name].values.astype(np.float32), err_msg=name)
        np.testing.assert_allclose(data, want[name].astype(np.float32), rtol=1e-6, atol=1e-6, err_msg=name)
        assert not data[~mni_mask].any()
    # written again only with overwrite=True
    with pytest.raises(OutputError, match="overwrite=True"):
        sample_cube.coact.coactivation(xcoact.datasets.amygdala_roi_path(), threshold=0.1, outroot=outroot)
    again = sample_cube.coact.coactivation(
        xcoact.datasets.amygdala_roi_path(), threshold=0.1, outroot=outroot, overwrite=True
    )
    xr.testing.assert_identical(again, ds)


def test_nifti_header_declares_mni_space(sample_cube, tmp_path):
    """sform and qform code 4 (MNI), like the template the maps are defined on."""
    import nibabel as nib

    maps = sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    (path,) = maps.coact.to_nifti(tmp_path / "hdr", names=["pA"])
    img = nib.load(path)
    assert int(img.header["sform_code"]) == 4 and int(img.header["qform_code"]) == 4
    np.testing.assert_allclose(img.get_qform(), nib.load(xcoact.datasets.template_path()).affine)
