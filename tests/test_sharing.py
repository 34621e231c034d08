"""Outputs ready to share and a citable, installable package (issue 15, points 4 and 6).

JSON sidecars beside every NIfTI file (written in the maps' all-or-nothing
step), BIDS-style names, netCDF with CF attributes and compression,
``show_versions``, LICENSE / CITATION.cff / CHANGELOG.md, the package
metadata and the CI build step.  Real files throughout: NIfTI read back with
nibabel, netCDF read back with netCDF4 itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tomllib

import netCDF4
import nibabel as nib
import numpy as np
import pytest
import xarray as xr

import xcoact
import xcoact.result as provenance
from xcoact.errors import OutputError

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)


def _dist_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)


@pytest.fixture
def maps(sample_cube):
    return sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)


@pytest.fixture
def batch(sample_cube):
    return sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1, separate=True)


# --------------------------------------------------------------------------- 6. citable and installable


def test_show_versions_names_python_platform_xcoact_and_every_dependency():
    out = io.StringIO()
    xcoact.show_versions(file=out)
    text = out.getvalue()
    lines = dict(re.findall(r"^(\S+):\s+(.*)$", text, flags=re.M))
    assert lines["xcoact"] == xcoact.__version__
    assert lines["python"] == ".".join(map(str, __import__("sys").version_info[:3]))
    assert lines["platform"]
    for req in _pyproject()["project"]["dependencies"]:
        name = _dist_name(req)
        assert name in lines, name
        assert lines[name] != "not installed", name
    assert lines["numpy"] == np.__version__ and lines["xarray"] == xr.__version__
    assert lines["nibabel"] == nib.__version__


def test_versions_dict_lists_missing_optional_packages_as_none(monkeypatch):
    from importlib import metadata

    import xcoact.versions as versions

    real = metadata.version

    def fake(name):
        if name == "tqdm":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(versions.metadata, "version", fake)
    v = versions.versions()
    assert v["tqdm"] is None and v["numpy"] == np.__version__
    out = io.StringIO()
    versions.show_versions(file=out)
    assert re.search(r"^tqdm:\s+not installed$", out.getvalue(), flags=re.M)
    assert "tqdm" not in versions.versions(optional=False)


def test_license_citation_and_changelog():
    with open(os.path.join(ROOT, "LICENSE")) as fh:
        text = fh.read()
    assert text.startswith("MIT License") and "Copyright (c) 2026 xcoact developers" in text
    assert "WITHOUT WARRANTY OF ANY KIND" in text
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    with open(os.path.join(ROOT, "CITATION.cff"), encoding="utf-8") as fh:
        cff = fh.read()
    assert re.search(r"^cff-version: 1\.2\.0$", cff, flags=re.M)
    assert re.search(rf"^version: {re.escape(xcoact.__version__)}$", cff, flags=re.M)
    assert re.search(r"^license: MIT$", cff, flags=re.M)
    assert re.search(r'^date-released: "\d{4}-\d{2}-\d{2}"$', cff, flags=re.M)
    assert "10.1038/nmeth.1635" in cff  # Neurosynth, the method reproduced
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as fh:
        changelog = fh.read()
    assert "## [Unreleased]" in changelog and "show_versions" in changelog


def test_classifiers_python_versions_and_zarr_cap():
    project = _pyproject()["project"]
    minimum = re.match(r">=(\d+)\.(\d+)", project["requires-python"]).groups()
    versions = [
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions and versions[0] == ".".join(minimum)
    assert "License :: OSI Approved :: MIT License" not in project["classifiers"]  # the SPDX `license` says it
    zarr_req = next(r for r in project["dependencies"] if _dist_name(r) == "zarr")
    assert "<4" in zarr_req  # the fenced store wraps zarr 3's store API: pinned below the next major
    import zarr

    assert int(zarr.__version__.split(".")[0]) < 4


def test_ci_builds_and_checks_the_distributions_after_the_tests():
    with open(os.path.join(ROOT, ".ci", "run")) as fh:
        script = fh.read()
    pytest_line = 'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/python -m pytest\n'
    assert pytest_line in script
    assert 'if [ "$status" -eq 5 ]; then\n    echo "pytest collected no tests: failing" >&2\n    exit 1\nfi' in script
    order = [
        script.index(pytest_line),
        script.index("-m build --sdist --wheel"),
        script.index("-m twine check --strict"),
    ]
    assert order == sorted(order)
    assert script.count("exit 1") >= 3  # no tests, a failed build and a failed check each fail CI
    extra = [_dist_name(r) for r in _pyproject()["project"]["optional-dependencies"]["test"]]
    assert "build" in extra and "twine" in extra


# --------------------------------------------------------------------------- 4. JSON sidecars


def test_every_nifti_gets_a_sidecar_with_its_provenance(maps, tmp_path):
    files = maps.coact.to_nifti(tmp_path / "dacc")
    assert len(files) == 9
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(f) for f in files] + [os.path.basename(f)[: -len(".nii.gz")] + ".json" for f in files]
    )
    with open(xcoact.datasets.sample_database_path(), "rb") as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    for name, path in zip(xcoact.map_names(), files):
        with open(path[: -len(".nii.gz")] + ".json", encoding="utf-8") as fh:
            side = json.load(fh)
        assert side["map"] == name
        assert side["map_type"] == ("Z" if "_z" in name else "Other")
        assert side["database"] == xcoact.datasets.sample_database_path()
        assert side["database_sha256"] == sha
        assert side["parameters"]["threshold"] == 0.1 and side["parameters"]["seed_r"] == 10.0
        assert side["parameters"]["q"] == 0.01 and side["parameters"]["select"] == "overlap"
        assert side["counts"] == {
            "n_studies": 100,
            "n_selected": 4,
            "n_unselected": 96,
            "n_roi": 515,
            "max_overlap": 90,
        }
        assert side["selected_ids"] == maps["selected_id"].values.tolist()
        assert side["seed"] == {"coordinates": [[0.0, 20.0, 28.0]], "r": 10}
        assert side["software"]["xcoact"] == xcoact.__version__
        assert side["software"]["numpy"] == np.__version__ and side["software"]["python"]
        assert side["analysis_level"] == "meta-analysis"
        assert "command" not in side  # only a command-line run has one
        assert nib.load(path).shape == (91, 109, 91)
    with open(files[6][: -len(".nii.gz")] + ".json") as fh:
        assert "association test z" in json.load(fh)["description"]


def test_batch_sidecars_carry_each_seeds_counts_and_bids_names(batch, tmp_path):
    files = batch.coact.to_nifti(tmp_path / "b", naming="bids")
    assert len(files) == 18
    z = tmp_path / "b_seed-m40x20x28_stat-z_desc-associationFDR001_statmap.nii.gz"
    assert str(z) in files
    for f in files:
        assert re.fullmatch(
            r"b_seed-[A-Za-z0-9]+_stat-[a-z]+_desc-[A-Za-z0-9]+_statmap\.nii\.gz", os.path.basename(f)
        ), f
    np.testing.assert_array_equal(
        np.asarray(nib.load(z).dataobj),
        batch["association-test_z_FDR_0.01"].sel(seed="-40_20_28").values.astype(np.float32),
    )
    sides = {}
    for label, entity in (("0_20_28", "0x20x28"), ("-40_20_28", "m40x20x28")):
        with open(tmp_path / f"b_seed-{entity}_stat-z_desc-association_statmap.json") as fh:
            sides[label] = json.load(fh)
    for label, side in sides.items():
        selected = batch["selected"].sel(seed=label).values
        assert side["selected_ids"] == batch["study"].values[selected].tolist()
        assert side["counts"]["n_selected"] == int(selected.sum())
        assert side["counts"]["n_unselected"] == 100 - int(selected.sum())
        assert side["seed"]["label"] == label
    assert sides["0_20_28"]["counts"]["n_selected"] == 4 and sides["-40_20_28"]["counts"]["n_selected"] == 12


def test_sidecars_land_with_the_maps_or_not_at_all(maps, tmp_path, monkeypatch):
    real = provenance.write_json
    calls = {"n": 0}

    def failing(tmp, content):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device (injected)")
        return real(tmp, content)

    monkeypatch.setattr(provenance, "write_json", failing)
    with pytest.raises(OutputError, match="injected") as info:
        maps.coact.to_nifti(tmp_path / "c")
    assert ".json" in str(info.value) and "nothing was written" in str(info.value)
    assert os.listdir(tmp_path) == []  # no map, no sidecar, no temporary file
    monkeypatch.undo()
    maps.coact.to_nifti(tmp_path / "c")
    assert len(os.listdir(tmp_path)) == 18


def test_sidecar_false_and_an_orphan_sidecar(maps, tmp_path):
    files = maps.coact.to_nifti(tmp_path / "c", names=["pA"], sidecar=False)
    assert os.listdir(tmp_path) == ["c_pA.nii.gz"] and files == [str(tmp_path / "c_pA.nii.gz")]
    (tmp_path / "d_pFgA.json").write_text("{}")
    with pytest.raises(OutputError, match=r"1 output file\(s\) already exist \(e\.g\. .*d_pFgA\.json\)"):
        maps.coact.to_nifti(tmp_path / "d")
    assert (tmp_path / "d_pFgA.json").read_text() == "{}"


def test_naming_is_validated(maps, tmp_path):
    with pytest.raises(OutputError, match=r"naming='nv' is not known; expected 'neurosynth' .* or 'bids'"):
        maps.coact.to_nifti(tmp_path / "c", naming="nv")
    assert os.listdir(tmp_path) == []


def test_bids_names_are_distinct_and_alphanumeric_for_every_preset():
    from xcoact.stats import nimare as stats_nimare

    for names in (xcoact.map_names(), xcoact.map_names(q=0.05, prior=0.3), list(stats_nimare.MAP_NAMES)):
        stems = [provenance.bids_name(n) for n in names]
        assert len(set(stems)) == len(stems)
        for stem in stems:
            for entity in stem.split("_")[:-1]:
                key, value = entity.split("-")
                assert key.isalnum() and value.isalnum(), stem


def test_command_line_runs_record_the_command(tmp_path):
    from xcoact.cli import main

    out = tmp_path / "cli"
    args = [
        "coactivation",
        "--seed",
        "0,20,28",
        "--r",
        "10",
        "--threshold",
        "0.1",
        "--outroot",
        str(out),
        "--netcdf",
        str(tmp_path / "cli.nc"),
    ]
    assert main(args) == 0
    with open(f"{out}_pFgA.json") as fh:
        side = json.load(fh)
    assert side["command"] == "xcoact " + " ".join(args)
    with xr.open_dataset(tmp_path / "cli.nc") as ds:
        assert ds.attrs["command"] == side["command"]


# --------------------------------------------------------------------------- 4. netCDF for sharing


def test_netcdf_has_cf_attributes_and_is_compressed_by_default(maps, tmp_path):
    computed = maps.compute()
    small = computed.coact.to_netcdf(tmp_path / "small.nc")
    big = computed.coact.to_netcdf(tmp_path / "big.nc", zlib_level=0)
    assert os.path.getsize(small) * 5 < os.path.getsize(big)
    with netCDF4.Dataset(small) as nc:
        assert nc.getncattr("Conventions") == "CF-1.8"
        for name in xcoact.map_names():
            var = nc.variables[name]
            assert var.filters()["zlib"] is True, name
            assert var.getncattr("units") == "1"
            assert var.getncattr("long_name") != name, name  # a description, not the name again
        assert "FDR q = 0.01" in nc.variables["association-test_z_FDR_0.01"].getncattr("long_name")
        for c in "xyz":
            assert nc.variables[c].getncattr("units") == "mm"
            assert nc.variables[c].getncattr("long_name").startswith(f"MNI {c}")
    with netCDF4.Dataset(big) as nc:
        assert nc.variables["pA"].filters()["zlib"] is False
    with xr.open_dataset(small) as back:
        for name in xcoact.map_names():
            np.testing.assert_array_equal(back[name].values, computed[name].values)
    # the result itself is not changed
    assert computed["pA"].attrs == {"long_name": "pA"} and "Conventions" not in computed.attrs


def test_cf_attributes_keep_informative_long_names():
    ds = xr.Dataset(
        {
            "association-test_p_FWE-voxel": (("x", "y", "z"), np.zeros((1, 1, 1)), {"long_name": "FWE p (voxel)"}),
            "pA": (("x", "y", "z"), np.zeros((1, 1, 1)), {"long_name": "pA"}),
        },
        coords={"x": [0.0], "y": [0.0], "z": [0.0]},
        attrs={"Conventions": "CF-1.10"},
    )
    out = provenance.with_cf_attributes(ds)
    assert out["association-test_p_FWE-voxel"].attrs["long_name"] == "FWE p (voxel)"
    assert out["pA"].attrs["long_name"] == "probability of activation at the voxel, P(A)"
    assert out.attrs["Conventions"] == "CF-1.10"  # an existing convention is not overwritten
    assert provenance.describe_map("association-test_p_FWE-voxel")["map_type"] == "P"
    assert provenance.describe_map("z_desc-association")["map_type"] == "Z"


# --------------------------------------------------------------------------- 5. feedback: progress and logging


def test_progress_defaults_to_notebooks_and_terminals(monkeypatch):
    import sys
    import types

    from xcoact import progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert progress.show_progress(None) is False
    assert progress.show_progress(True) is True and progress.show_progress(False) is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.show_progress(None) is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    kernel = types.SimpleNamespace(config={"IPKernelApp": {"connection_file": "kernel.json"}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    assert progress.show_progress(None) is True
    with pytest.raises(xcoact.ParameterError, match=r"progress='yes' is not valid; expected True, False or None"):
        progress.show_progress("yes")


def test_writers_show_a_tqdm_bar_when_asked(maps, tmp_path, capsys):
    maps.coact.to_netcdf(tmp_path / "quiet.nc")
    assert "writing netCDF" not in capsys.readouterr().err  # not a terminal: silent by default
    maps.coact.to_netcdf(tmp_path / "loud.nc", progress=True)
    err = capsys.readouterr().err
    assert "writing netCDF" in err and "100%" in err
    maps.coact.to_nifti(tmp_path / "n", names=["pA"], progress=True)
    assert "writing NIfTI" in capsys.readouterr().err


def test_without_tqdm_dasks_own_bar_is_used(monkeypatch, capsys):
    import dask.array as da

    from xcoact import progress

    monkeypatch.setattr(progress, "_tqdm", lambda: None)
    with progress.progress_bar(True, minimum=0):
        assert int(da.ones(100, chunks=10).sum().compute()) == 100
    assert "[####" in capsys.readouterr().err


def test_an_outer_bar_is_not_doubled(maps, tmp_path, capsys):
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=0):  # Dask's bar writes to stdout
        maps.coact.to_netcdf(tmp_path / "m.nc", progress=True)
    captured = capsys.readouterr()
    assert "[####" in captured.out and "writing netCDF" not in captured.out + captured.err


def test_fwe_shows_its_permutations(maps, sample_cube, capsys):
    maps.coact.fwe(sample_cube, n_iter=20, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "FWE permutations" in err and "100%" in err


def test_fetchers_log_and_show_each_download(tmp_path, caplog, capsys, monkeypatch):
    import logging

    releases = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "releases")
    monkeypatch.delenv("XCOACT_MIRROR", raising=False)
    with caplog.at_level(logging.INFO, logger="xcoact.datasets.fetch"):
        release = xcoact.datasets.fetch_neurosynth(
            7,
            tmp_path,
            base_url=releases,
            manifest=os.path.join(releases, "MANIFEST.tsv"),
            convert=False,
            progress=True,
        )
    messages = [r.getMessage() for r in caplog.records if r.name == "xcoact.datasets.fetch"]
    for _role, path in release.files.items():
        name = os.path.basename(path)
        assert any(m.startswith("xcoact: fetching ") and m.endswith(name) for m in messages), name
        size = os.path.getsize(path)
        assert f"xcoact: {name} verified ({size:,} bytes) -> {path}" in messages
    err = capsys.readouterr().err
    assert os.path.basename(release.coordinates) in err  # the per-file bar
