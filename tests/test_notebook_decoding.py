"""Execute examples/decoding.ipynb and check what it printed against independent numbers.

The notebook runs in a temporary directory with nbclient (kernel
``python3``), as tests/test_notebook.py runs every notebook. Its printed
selections, Pearson r values and profile counts are recomputed here by
another route: pandas reads the features file, the maps come from a
rechunked cube (xarray reductions, not the sparse index the notebook's cube
uses) and r from ``np.corrcoef``.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from conftest import _mni_mask, data_file

import xcoact
from xcoact.errors import XcoactWarning

NOTEBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "decoding.ipynb")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """The stdout of the executed notebook."""
    root = tmp_path_factory.mktemp("decoding")
    work, scratch = root / "run", root / "tmp"
    work.mkdir()
    scratch.mkdir()
    copy = work / "decoding.ipynb"
    shutil.copyfile(NOTEBOOK, copy)
    nb = nbformat.read(str(copy), as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(work)}}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(scratch))
        client.execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(cells):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"code cell {i}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert os.listdir(scratch) == [], "the notebook left temporary files behind"
    return "".join(
        o.get("text", "") for c in cells for o in c.outputs if o.output_type == "stream" and o.name == "stdout"
    )


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(data_file("neurosynth_sample_features.txt"), sep="\t", index_col=0)


@pytest.fixture(scope="module")
def dense_cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        act = xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)
    return act.chunk({"study": 25})  # not the untouched cube: the general (dense) route


def test_term_selections(out, frame):
    printed = dict(re.findall(r"^term '([^']+)': weight >= 0\.001 in \d+ of 100 studies: (\[.*\])$", out, re.MULTILINE))
    assert set(printed) == set(frame.columns)
    for name in frame.columns:
        assert printed[name] == str(frame.index[frame[name] >= 0.001].tolist()), name
    assert "term maps == meta maps of the same ids: True" in out
    assert "term meta-analysis | 7 selected vs 93" in out


def test_seed_decode_and_profile_numbers(out, frame, dense_cube):
    seed = dense_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    chosen = seed["selected_id"].values.tolist()
    assert f"dACC seed: n_roi={seed.attrs['n_roi']} n_selected={len(chosen)} of 100" in out
    assert f"selected ids: {chosen}" in out

    mask = _mni_mask()
    y = seed["association-test_z"].transpose("x", "y", "z").values[mask]
    printed = {m[0]: float(m[1]) for m in re.findall(r"^decode r: (.+) = (-?[\d.]+)$", out, re.MULTILINE)}
    assert set(printed) == set(frame.columns)
    for name in frame.columns:
        ids = frame.index[frame[name] >= 0.001].tolist()
        m = dense_cube.coact.meta(ids)["association-test_z"].transpose("x", "y", "z").values[mask]
        assert printed[name] == pytest.approx(np.corrcoef(y, m)[0, 1], abs=1e-11), name
    assert list(printed.values()) == sorted(printed.values(), reverse=True), "ranked by r"
    assert "term maps computed: 3" in out
    assert "second decode: maps computed 3, cache hits 3, same table: True" in out
    assert "top term of the 'pain' map: pain (r = 1.000000)" in out

    prof = re.findall(r"^profile: (.+) selected_with=(\d+) all_with=(\d+) expected=([\d.]+) p=", out, re.MULTILINE)
    assert {p[0] for p in prof} == set(frame.columns)
    for name, k, big_k, expected in prof:
        carriers = set(frame.index[frame[name] >= 0.001])
        assert (int(k), int(big_k)) == (len(carriers & set(chosen)), len(carriers)), name
        assert float(expected) == pytest.approx(len(chosen) * len(carriers) / 100, abs=1e-4)
