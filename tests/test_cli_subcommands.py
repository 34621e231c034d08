"""The ``fetch``, ``report`` and ``matrix`` subcommands and the exit codes (issue 15, point 7).

Exit 0 on success, 2 for a usage error (argparse's own, bad values, missing
input files, outputs in the way), 1 for a data error (a database or release
that cannot be read, downloaded or verified).  Downloads come from the test
releases in ``tests/data/releases``, as a local mirror and over HTTP on
127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.cli import main
from xcoact.errors import (
    ChecksumError,
    DatabaseError,
    DatabaseFileNotFoundError,
    DownloadError,
    OutputError,
    ParameterError,
    SelectionError,
    UnsafeArchiveError,
)

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASES = os.path.join(HERE, "data", "releases")
MANIFEST = os.path.join(RELEASES, "MANIFEST.tsv")


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch, tmp_path):
    monkeypatch.delenv("XCOACT_MIRROR", raising=False)
    monkeypatch.setenv("XCOACT_DATA", str(tmp_path / "default-cache"))


@pytest.fixture
def loopback():
    """The test releases served over HTTP on 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=RELEASES)
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    "err, code",
    [
        (DatabaseError("bad row"), 1),
        (DownloadError("404"), 1),
        (ChecksumError("mismatch"), 1),
        (UnsafeArchiveError("member"), 1),
        (ParameterError("bad"), 2),
        (SelectionError("none"), 2),
        (OutputError("exists"), 2),
        (DatabaseFileNotFoundError("no such file"), 2),
    ],
)
def test_exit_code_data_1_usage_2(err, code):
    from xcoact.cli import _exit_code

    assert _exit_code(err) == code


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fetch", "openneuro"])
    assert info.value.code == 2
    assert "invalid choice: 'openneuro'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "maps.nc")])  # -o is required
    assert info.value.code == 2
    assert main(["fetch", "neurosynth", "--base-url", "ftp://example.org/x", "--data-dir", str(tmp_path)]) == 2
    assert "the scheme 'ftp' is not supported" in capsys.readouterr().err


def test_a_database_that_cannot_be_read_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not\ta coordinate table\n1\t2\n")
    code = main(
        ["matrix", "--seed", "0,20,28", "--seed", "-40,20,28", "--database", str(bad), "-o", str(tmp_path / "m.nc")]
    )
    assert code == 1
    assert str(bad) in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]


# --------------------------------------------------------------------------- fetch


def test_fetch_from_a_local_mirror(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert (
        main(
            [
                "fetch",
                "neurosynth",
                "--base-url",
                RELEASES,
                "--manifest",
                MANIFEST,
                "--data-dir",
                str(cache),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    directory = cache / "neurosynth-v7"
    assert f"neurosynth v7: {directory}" in out
    names = sorted(os.listdir(directory))
    assert names == sorted(
        os.listdir(os.path.join(RELEASES, "neurosynth-v7")) + ["data-neurosynth_version-7_coordinates.xcoact.nc"]
    )
    for name in names:
        assert os.path.join(directory, name) in out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = xcoact.read_database(str(directory / "data-neurosynth_version-7_coordinates.tsv.gz"))
    assert table.attrs["n_studies"] > 0


def test_fetch_over_loopback_http_logs_each_download(loopback, tmp_path):
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xcoact.cli",
            "fetch",
            "neuroquery",
            "--base-url",
            loopback,
            "--manifest",
            MANIFEST,
            "--data-dir",
            str(cache),
            "--vocab",
            "none",
            "--progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.path.dirname(HERE)},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"fetching {loopback}/neuroquery-v1/data-neuroquery_version-1_coordinates.tsv.gz" in proc.stderr
    assert f"fetching {loopback}/neuroquery-v1/data-neuroquery_version-1_metadata.tsv.gz" in proc.stderr
    assert "features" not in proc.stdout  # --vocab none: coordinates and metadata only
    assert sorted(os.listdir(cache / "neuroquery-v1")) == [
        "data-neuroquery_version-1_coordinates.tsv.gz",
        "data-neuroquery_version-1_coordinates.xcoact.nc",
        "data-neuroquery_version-1_metadata.tsv.gz",
    ]
    # a second run downloads nothing
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "xcoact.cli",
            "fetch",
            "neuroquery",
            "--base-url",
            loopback,
            "--manifest",
            MANIFEST,
            "--data-dir",
            str(cache),
            "--vocab",
            "none",
            "--progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.path.dirname(HERE)},
    )
    assert again.returncode == 0 and "fetching" not in again.stderr


def test_a_failed_download_exits_1_and_leaves_no_lock_file(tmp_path, capsys):
    mirror = tmp_path / "mirror"
    (mirror / "neurosynth-v7").mkdir(parents=True)  # an empty mirror: the first file is missing
    cache = tmp_path / "cache"
    code = main(["fetch", "neurosynth", "--base-url", str(mirror), "--manifest", MANIFEST, "--data-dir", str(cache)])
    assert code == 1
    err = capsys.readouterr().err
    assert "no such file in the mirror" in err and "data-neurosynth_version-7_coordinates.tsv.gz" in err
    assert os.listdir(cache / "neurosynth-v7") == []  # no .lock, no .part


def test_a_good_fetch_leaves_no_lock_file_either(tmp_path):
    release = xcoact.datasets.fetch_neurosynth(7, tmp_path, base_url=RELEASES, manifest=MANIFEST, convert=False)
    assert ".lock" not in os.listdir(release.directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        release.table()  # converts under the lock
    assert ".lock" not in os.listdir(release.directory)


def test_the_lock_is_exclusive_and_a_waiter_relocks_a_removed_file(tmp_path):
    from xcoact.datasets.fetch import _locked

    order = []
    inside = threading.Event()
    release_first = threading.Event()

    def first():
        with _locked(str(tmp_path)):
            order.append("first in")
            inside.set()
            release_first.wait(5)
            order.append("first out")

    def second():
        inside.wait(5)
        with _locked(str(tmp_path)):
            order.append("second in")
            assert os.path.exists(tmp_path / ".lock")  # its own, fresh lock file
        order.append("second out")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    inside.wait(5)
    release_first.set()
    for t in threads:
        t.join(10)
    assert order == ["first in", "first out", "second in", "second out"]
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- report


def test_report_from_a_netcdf_result(tmp_path, capsys):
    nc = tmp_path / "maps.nc"
    assert (
        main(
            [
                "coactivation",
                "--seed",
                "0,20,28",
                "--r",
                "10",
                "--threshold",
                "0.1",
                "--outroot",
                str(tmp_path / "m"),
                "--no-nifti",
                "--netcdf",
                str(nc),
            ]
        )
        == 0
    )
    html = tmp_path / "report.html"
    assert main(["report", str(nc), "-o", str(html)]) == 0
    assert f"report written: {html}" in capsys.readouterr().out
    text = html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "data:image/png;base64," in text
    assert "Coactivation report" in text
    before = html.read_bytes()
    assert main(["report", str(nc), "-o", str(html)]) == 2  # no --overwrite
    assert "already exist" in capsys.readouterr().err
    assert html.read_bytes() == before
    assert main(["report", str(nc), "-o", str(html), "--overwrite", "--title", "dACC"]) == 0
    assert "dACC" in html.read_text(encoding="utf-8")


def test_report_input_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.nc"), "-o", str(tmp_path / "r.html")]) == 2
    assert "missing.nc: no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not netcdf at all")
    assert main(["report", str(junk), "-o", str(tmp_path / "r.html")]) == 1
    assert "junk.nc: cannot be read as a result netCDF file" in capsys.readouterr().err
    plain = tmp_path / "plain.nc"
    xr.Dataset({"a": ("n", np.arange(3))}).to_netcdf(plain)
    assert main(["report", str(plain), "-o", str(tmp_path / "r.html")]) == 2
    assert "holds no maps" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["junk.nc", "plain.nc"]


# --------------------------------------------------------------------------- matrix


def test_matrix_of_coordinates_matches_the_api(tmp_path, sample_cube, capsys):
    out = tmp_path / "matrix.nc"
    args = ["matrix", "--seed", "0,20,28", "--seed", "-40,20,28", "--seed", "40,20,28", "--r", "10", "-o", str(out)]
    assert main(args) == 0
    assert "ROIs: 3" in capsys.readouterr().out
    want = sample_cube.coact.matrix([[0, 20, 28], [-40, 20, 28], [40, 20, 28]], 0.1, r=10, separate=True)
    with xr.open_dataset(out) as got:
        got = got.load()
    assert got.sizes["roi"] == 3
    for name in ("n_both", "phi", "z", "n_active"):
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    assert got.attrs["command"] == "xcoact " + " ".join(args[:1] + args[1:])
    assert got.attrs["Conventions"] == "CF-1.8"
    assert main(args) == 2  # exists, no --overwrite
    assert main(args + ["--overwrite"]) == 0


def test_matrix_of_images(tmp_path):
    out = tmp_path / "m.nc"
    assert (
        main(
            [
                "matrix",
                "--seed",
                xcoact.datasets.amygdala_roi_path(),
                "--seed",
                xcoact.datasets.sgacc_roi_path(),
                "--threshold",
                "0.05",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    with xr.open_dataset(out) as got:
        assert got.sizes["roi"] == 2
        assert got["n_roi_voxels"].values.tolist()[0] == 366  # the amygdala ROI's in-mask voxels


def test_report_with_subpeaks_and_atlas_labels(tmp_path, capsys):
    import nibabel as nib

    amy = nib.load(xcoact.datasets.amygdala_roi_path())
    atlas = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image((np.asarray(amy.dataobj) > 0).astype(np.int16), amy.affine), atlas)
    lut = tmp_path / "atlas.txt"
    lut.write_text("1\tamygdala\n")
    nc = tmp_path / "amy.nc"
    assert (
        main(
            [
                "coactivation",
                "--seed",
                xcoact.datasets.amygdala_roi_path(),
                "--threshold",
                "0.1",
                "--outroot",
                str(tmp_path / "amy"),
                "--no-nifti",
                "--netcdf",
                str(nc),
            ]
        )
        == 0
    )
    html = tmp_path / "amy.html"
    assert (
        main(
            [
                "report",
                str(nc),
                "-o",
                str(html),
                "--map",
                "association-test_z",
                "--threshold",
                "3",
                "--subpeaks",
                "2",
                "--atlas",
                str(atlas),
                "--atlas-labels",
                str(lut),
            ]
        )
        == 0
    )
    text = html.read_text(encoding="utf-8")
    assert "<th>atlas label</th>" in text and "<th>peak</th>" in text
    assert "<td>amygdala</td>" in text
    with xr.open_dataset(nc) as ds:
        table = ds.load().coact.clusters(
            "association-test_z", threshold=3.0, subpeaks=2, atlas=str(atlas), atlas_labels=str(lut)
        )
    assert (table["atlas_label"] == "amygdala").sum() == text.count("<td>amygdala</td>")
