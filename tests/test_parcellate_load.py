"""Where a parcellation's suggested K lives (issue 14, point 1): the ``k_suggested`` variable, lazy or computed,
and ``attrs["k_suggested"]`` once xcoact computed the result (``compute=True``, ``res.coact.load()``, the writer
and the command line), never on a lazy result."""

from __future__ import annotations

import os
import re
import warnings

import dask.array as da
import pandas as pd
import pytest

import xcoact
from xcoact.analyses import parcellate as parc

KW = dict(k=[2, 3, 4], filters=[10, 20], n_init=2)


@pytest.fixture(scope="module")
def cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(xcoact.datasets.sample_database_path(), r=6)


def _voted(res):
    return [int(f) for f in res["filter"].values[res["in_range"].values]]


def test_a_lazy_result_holds_the_variable_and_load_adds_the_attrs(cube):
    res = cube.coact.parcellate(xcoact.datasets.amygdala_roi_path(), **KW)
    assert isinstance(res["k_suggested"].data, da.Array)
    assert "k_suggested" not in res.attrs and "filters_voted" not in res.attrs
    plain = res.compute()  # xarray's own compute knows nothing of xcoact's attrs
    assert "k_suggested" not in plain.attrs
    assert res.coact.load() is res  # in place, as Dataset.load
    assert not isinstance(res["k_suggested"].data, da.Array)
    assert res.attrs["k_suggested"] == int(res["k_suggested"]) == int(plain["k_suggested"])
    assert [int(f) for f in res.attrs["filters_voted"]] == _voted(res) and _voted(res)
    eager = cube.coact.parcellate(xcoact.datasets.amygdala_roi_path(), **KW, compute=True)
    assert eager.attrs["k_suggested"] == res.attrs["k_suggested"]
    assert [int(f) for f in eager.attrs["filters_voted"]] == _voted(res)


def test_load_of_another_result_only_loads(cube):
    maps = cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    assert isinstance(maps["pFgA"].data, da.Array)
    assert maps.coact.load() is maps and not isinstance(maps["pFgA"].data, da.Array)
    assert "k_suggested" not in maps.attrs


def test_write_computes_in_place_and_the_table_marks_the_same_k(cube, tmp_path):
    res = cube.coact.parcellate(xcoact.datasets.amygdala_roi_path(), **KW)
    parc.write(res, tmp_path / "amy")
    k = res.attrs["k_suggested"]
    table = pd.read_csv(tmp_path / "amy_criteria.tsv", sep="\t", index_col="k")
    assert table.index[table["suggested"]].tolist() == [k] == [int(res["k_suggested"])]


def test_the_issues_command_on_the_bundled_sample_prints_the_k_its_table_marks(tmp_path, capsys):
    """``xcoact parcellate --seed ROI --k 2-9 --outroot OUT`` as the issue writes it: on the 100-study sample the
    default filter sizes are those below 100."""
    from xcoact.cli import main

    assert (
        main(
            [
                "parcellate",
                "--seed",
                xcoact.datasets.amygdala_roi_path(),
                "--k",
                "2-9",
                "--outroot",
                str(tmp_path / "amy"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(
        [f"amy_k{k}_labels.nii.gz" for k in range(2, 10)] + ["amy_criteria.tsv", "amy_parcellation.png"]
    )
    table = pd.read_csv(tmp_path / "amy_criteria.tsv", sep="\t", index_col="k")
    k = int(table.index[table["suggested"]][0])
    assert f"filter sizes: {list(range(20, 100, 5))} (the defaults below the database size)" in text
    assert re.search(rf"^suggested K: {k} \(filter sizes voted: \[\d+(, \d+)*\]\)$", text, re.MULTILINE)


def test_cli_parcellates_with_ale_profiles(tmp_path, capsys):
    from test_parcellate import _box_roi

    from xcoact.cli import main

    roi = _box_roi(tmp_path / "box.nii.gz", (20, 26), (-6, -2), (-20, -16))
    args = ["parcellate", "--seed", roi, "--k", "2-3", "--filters", "10,20", "--n-init", "2", "--profile", "ale"]
    assert main([*args, "--sample-size", "20", "--outroot", str(tmp_path / "ale")]) == 0
    assert "suggested K: " in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "ale_criteria.tsv", sep="\t", index_col="k")
    assert list(table.index) == [2, 3] and table["suggested"].sum() == 1
    assert main([*args, "--outroot", str(tmp_path / "none")]) == 2
    assert "profile='ale' on a binary cube needs the ALE kernel's size" in capsys.readouterr().err
