"""The command line: real processes on the bundled sample, files on disk."""

from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import xcoact
from xcoact.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "xcoact.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_coordinates_on_bundled_sample(tmp_path, sample_cube):
    out = tmp_path / "coactivation_from_coords"
    proc = run_cli(
        "coactivation",
        "--seed",
        "0,20,28",
        "--seed",
        "-40,20,28",
        "--r",
        "10",
        "--threshold",
        "0.1",
        "--outroot",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    expected = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1).compute()
    assert "studies in the database: 100" in proc.stdout
    assert f"ROI voxels (in the brain mask): {expected.attrs['n_roi']}" in proc.stdout
    assert f"studies selected: {expected.attrs['n_selected']} of 100" in proc.stdout
    assert "files written (9)" in proc.stdout
    for name in xcoact.map_names():
        path = f"{out}_{name}.nii.gz"
        assert path in proc.stdout
        img = nib.load(path)
        np.testing.assert_allclose(np.asarray(img.dataobj), expected[name].values.astype(np.float32))
    assert "unknown space label" in proc.stderr  # warnings are reported, not hidden


def test_image_seed_with_database_and_netcdf(tmp_path):
    db = xcoact.datasets.sample_database_path()
    out = tmp_path / "coactivation_from_image"
    nc = tmp_path / "maps.nc"
    code = main(
        [
            "coactivation",
            "--seed",
            xcoact.datasets.amygdala_roi_path(),
            "--threshold",
            "0.1",
            "--outroot",
            str(out),
            "--database",
            db,
            "--netcdf",
            str(nc),
        ]
    )
    assert code == 0
    assert len(list(tmp_path.glob("coactivation_from_image_*.nii.gz"))) == 9
    import xarray as xr

    with xr.open_dataset(nc) as ds:
        assert ds.attrs["n_selected"] == len(ds["selected_id"])


def test_errors_exit_2_with_message_and_no_partial_output(tmp_path):
    out = tmp_path / "none"
    proc = run_cli(
        "coactivation", "--seed", xcoact.datasets.amygdala_roi_path(), "--threshold", "1.0", "--outroot", str(out)
    )
    assert proc.returncode == 2
    assert "no study selected" in proc.stderr and "largest overlap" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_without_flag(tmp_path):
    out = tmp_path / "again"
    args = ["coactivation", "--seed", "0,20,28", "--r", "10", "--threshold", "0.1", "--outroot", str(out)]
    assert main(args) == 0
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(args) == 2
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize(
    "seed, message",
    [("0,20", "neither an image path nor x,y,z"), ("missing_roi.nii.gz", "no such ROI image")],
)
def test_bad_seed_arguments(tmp_path, capsys, seed, message):
    assert main(["coactivation", "--seed", seed, "--outroot", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_batch_of_coordinates_with_progress_and_zarr(tmp_path):
    import xarray as xr

    out = tmp_path / "batch"
    store = tmp_path / "batch.zarr"
    proc = run_cli(
        "coactivation",
        "--seed",
        "0,20,28",
        "--seed",
        "-40,20,28",
        "--separate",
        "--r",
        "10",
        "--threshold",
        "0.1",
        "--outroot",
        str(out),
        "--zarr",
        str(store),
        "--progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "seeds: 2 (2 with maps)" in proc.stdout
    assert "0_20_28: ROI voxels 515" in proc.stdout
    assert "[####" in proc.stderr  # Dask's progress bar
    assert len(list(tmp_path.glob("batch_0_20_28_*.nii.gz"))) == 9
    assert len(list(tmp_path.glob("batch_-40_20_28_*.nii.gz"))) == 9
    with xr.open_zarr(store) as ds:
        assert list(ds["seed"].values) == ["0_20_28", "-40_20_28"]
        assert ds["pFgA"].dims == ("seed", "x", "y", "z")


def test_existing_netcdf_is_refused_before_anything_is_written(tmp_path):
    nc = tmp_path / "maps.nc"
    nc.write_bytes(b"old")
    code = main(
        [
            "coactivation",
            "--seed",
            "0,20,28",
            "--r",
            "10",
            "--threshold",
            "0.1",
            "--outroot",
            str(tmp_path / "x"),
            "--netcdf",
            str(nc),
        ]
    )
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.nc"]
    assert nc.read_bytes() == b"old"


def test_no_nifti_needs_another_output(tmp_path, capsys):
    assert main(["coactivation", "--seed", "0,20,28", "--outroot", str(tmp_path / "x"), "--no-nifti"]) == 2
    assert "--no-nifti leaves nothing to write" in capsys.readouterr().err
