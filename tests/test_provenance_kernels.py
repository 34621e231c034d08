"""The JSON sidecars name the kernel the maps were made with and its sizes (MKDA's r, ALE's sample size or FWHM).

Real NIfTI files and sidecars written by ``to_nifti`` and by the command line;
the kernel is read from the result's attrs.
"""

from __future__ import annotations

import json
import logging
import os
import warnings

import pytest

import xcoact
from xcoact.cli import main
from xcoact.errors import XcoactWarning
from xcoact.result import kernel_parameters

DATA = os.path.join(os.path.dirname(__file__), "data")
SEMANTIC = os.path.join(DATA, "semantic_knowledge_children.txt")

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _cube(path=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.activations(path or xcoact.datasets.sample_database_path(), **kw)


def _sidecar(nifti: str) -> dict:
    with open(nifti[: -len(".nii.gz")] + ".json", encoding="utf-8") as fh:
        return json.load(fh)


def test_ale_seed_sidecar_names_the_kernel_and_its_fixed_sample_size(tmp_path):
    ds = _cube(kernel="ale", preset="nimare", sample_size=20).coact.seed(xcoact.datasets.amygdala_roi_path())
    files = ds.coact.to_nifti(tmp_path / "amy")
    assert len(files) == 3
    for path in files:
        params = _sidecar(path)["parameters"]
        assert params["kernel"] == "ale"
        assert params["sample_size"] == 20.0
        assert params["fwhm"] == pytest.approx(9.2412, abs=1e-4)  # NiMARE's FWHM for 20 subjects
        assert "r" not in params  # the ALE kernel has no radius


def test_ale_seed_sidecar_with_a_fixed_fwhm(tmp_path):
    ds = _cube(kernel="ale", preset="nimare", fwhm=10).coact.seed(xcoact.datasets.amygdala_roi_path())
    params = _sidecar(ds.coact.to_nifti(tmp_path / "f")[0])["parameters"]
    assert params["kernel"] == "ale" and params["fwhm"] == 10.0
    assert "sample_size" not in params and "r" not in params


def test_ale_seed_sidecar_with_sample_sizes_per_study(tmp_path):
    act = _cube(SEMANTIC, kernel="ale", preset="nimare")  # a Sleuth file: each experiment's subjects
    ds = act.coact.seed([[-40, 20, 30]], r=20)
    side = _sidecar(ds.coact.to_nifti(tmp_path / "s")[0])
    params = side["parameters"]
    assert params["kernel"] == "ale" and params["sample_size"] == "per study (the table's sample_size)"
    assert len(params["sample_sizes"]) == len(side["selected_ids"]) == ds.attrs["n_selected"] > 2
    assert params["sample_sizes"] == ds["sample_size"].values.tolist()
    assert "fwhm" not in params


def test_binary_seed_sidecar_records_mkda_and_r(tmp_path):
    ds = _cube().coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    params = _sidecar(ds.coact.to_nifti(tmp_path / "b")[0])["parameters"]
    assert params["kernel"] == "mkda" and params["r"] == 6.0  # the cube's sphere radius
    assert params["seed_r"] == 10.0 and params["threshold"] == 0.1
    assert "sample_size" not in params and "fwhm" not in params


def test_kda_cube_analysed_as_binary_records_mkda_with_its_r(tmp_path):
    act = _cube(kernel="kda", r=8)
    ds = act.astype(bool).coact.seed([[0, 20, 28]], r=10)
    params = _sidecar(ds.coact.to_nifti(tmp_path / "k")[0])["parameters"]
    assert params["kernel"] == "mkda" and params["r"] == 8.0  # a KDA cube's non-zero voxels are MKDA's spheres


def test_kernel_parameters_from_attrs_only():
    assert kernel_parameters({"r": 6.0}) == {"kernel": "mkda", "r": 6.0}
    assert kernel_parameters({"kernel": "binary sphere", "r": 4}) == {"kernel": "mkda", "r": 4}
    assert kernel_parameters({"kernel": "kda", "r": 8.0, "preset": "x"}) == {"kernel": "kda", "r": 8.0}
    assert kernel_parameters({"kernel": "ale", "fwhm": 10.0}) == {"kernel": "ale", "fwhm": 10.0}
    assert kernel_parameters({"analysis": "decode"}) == {}


def test_cli_ale_sidecar_names_the_kernel_and_sample_size(tmp_path, capsys):
    logging.disable(logging.WARNING)
    try:
        code = main(
            [
                "coactivation",
                "--kernel",
                "ale",
                "--preset",
                "nimare",
                "--sample-size",
                "20",
                "--seed",
                xcoact.datasets.amygdala_roi_path(),
                "--outroot",
                str(tmp_path / "amy"),
            ]
        )
    finally:
        logging.disable(logging.NOTSET)
    capsys.readouterr()
    assert code == 0
    side = json.loads((tmp_path / "amy_z.json").read_text())
    assert side["parameters"]["kernel"] == "ale" and side["parameters"]["sample_size"] == 20.0
    assert "--sample-size 20" in json.dumps(side["command"])
