"""The HTML report of a coactivation-based parcellation (issue 14, point 4): one self-contained page with the
parameters, the figure (labels per K, criteria against K), the criteria per K with the suggested K, the rule
and the methods with the CBP references; written all or nothing, from Python and from ``xcoact report``."""

from __future__ import annotations

import base64
import html
import re
import warnings

import numpy as np
import pytest

import xcoact
from xcoact import cli
from xcoact import report as report_module
from xcoact.errors import OutputError, ParameterError


@pytest.fixture(scope="module")
def res():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    return act.coact.parcellate(
        xcoact.datasets.amygdala_roi_path(), k=[2, 3, 4], filters=[10, 20], n_init=2, compute=True
    )


def _criteria_rows(page: str) -> dict[str, list[str]]:
    table = page.split("<h2>Criteria per K</h2>", 1)[1].split("<h2>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])
    return {re.findall(r"<td[^>]*>(.*?)</td>", r)[0]: re.findall(r"<td[^>]*>(.*?)</td>", r)[1:] for r in rows}


def test_report_holds_criteria_suggested_k_rule_image_and_references(res, tmp_path):
    path = res.coact.report(tmp_path / "cbp.html")
    page = open(path, encoding="utf-8").read()
    k = res.attrs["k_suggested"]
    assert f"suggested K = <strong>{k}</strong>" in page
    rows = _criteria_rows(page)
    assert list(rows) == [f"{v} (suggested)" if v == k else str(v) for v in (2, 3, 4)]
    # every criterion value of every K, as the table formats it
    for i, kk in enumerate(res["k"].values):
        label = f"{kk} (suggested)" if kk == k else str(kk)
        shown = [
            report_module._num(v) if np.isfinite(v) else "n/a (not defined at this K)"
            for v in res["criteria"].values[i]
        ]
        assert rows[label] == shown
    assert "silhouette" in page and "vi_next_bits" in page and ">nan<" not in page
    assert html.escape(res.attrs["k_rule"]) in page
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    for doi in ("10.1002/hbm.22138", "10.1016/j.neuroimage.2013.06.041", "10.1002/hbm.22933"):
        assert f"https://doi.org/{doi}" in page
    assert "Bzdok et al., 2013 [1]" in page and "Clos et al., 2013 [2]" in page
    assert "n_init" in page and "filter_range" in page  # provenance from attrs
    assert "<script" not in page and "Clusters</h2>" not in page


def test_lazy_result_reports_the_same_tables(res, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    lazy = act.coact.parcellate(xcoact.datasets.amygdala_roi_path(), k=[2, 3, 4], filters=[10, 20], n_init=2)
    page = report_module.report_html(lazy)
    assert _criteria_rows(page) == _criteria_rows(report_module.report_html(res))


def test_write_is_all_or_nothing(res, tmp_path, monkeypatch):
    target = tmp_path / "cbp.html"
    target.write_text("earlier")
    with pytest.raises(OutputError, match="already exists"):
        res.coact.report(target)
    assert target.read_text() == "earlier"

    def broken(path, text):
        with open(path, "w") as fh:
            fh.write(text[:100])
        raise OSError("disk full")

    monkeypatch.setattr(report_module, "_write_html", broken)
    with pytest.raises(OutputError):
        res.coact.report(target, overwrite=True)
    assert target.read_text() == "earlier"
    with pytest.raises(OutputError):
        res.coact.report(tmp_path / "new.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cbp.html"]


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"threshold": 2.0}, "threshold"),
        ({"name": "labels"}, "name"),
        ({"seed": "a"}, "seed"),
        ({"max_clusters": 5}, "max_clusters"),
        ({"cluster_options": {"subpeaks": 2}}, "cluster_options"),
        ({"plot_kwargs": {"cmap": "hot"}}, "plot_kwargs['cmap']"),
    ],
)
def test_options_a_parcellation_report_cannot_show_are_refused(res, tmp_path, kwargs, named):
    with pytest.raises(ParameterError) as err:
        res.coact.report(tmp_path / "cbp.html", **kwargs)
    assert str(err.value).startswith(f"{named}: not options of a parcellation report")
    assert not list(tmp_path.iterdir())


def test_a_selection_without_the_voxel_coordinates_is_refused(res, tmp_path):
    with pytest.raises(ParameterError, match="lacks \\['voxel_x', 'voxel_y', 'voxel_z'\\]"):
        res.drop_vars(["voxel_x", "voxel_y", "voxel_z"]).coact.report(tmp_path / "cbp.html")


def test_cli_reports_a_parcellation_netcdf(res, tmp_path, capsys):
    nc = xcoact.to_netcdf(res, tmp_path / "res.nc")
    out = tmp_path / "cbp.html"
    assert cli.main(["report", str(nc), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert _criteria_rows(page) == _criteria_rows(report_module.report_html(res))
    assert "data:image/png;base64," in page
    # a flag of the coactivation report is refused, and nothing is written
    code = cli.main(["report", str(nc), "-o", str(tmp_path / "other.html"), "--subpeaks", "2"])
    assert code != 0
    assert "cluster_options: not options of a parcellation report" in capsys.readouterr().err
    assert not (tmp_path / "other.html").exists()
