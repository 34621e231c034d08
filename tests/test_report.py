"""Cluster tables and the HTML report: hand-made volumes, a flood-fill oracle, real v7 data and metadata."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import itertools
import os
import re
import warnings
from collections import deque
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import data_file

import xcoact
from xcoact.errors import DatabaseError, DatabaseFileNotFoundError, OutputError, ParameterError
from xcoact.report import read_metadata, report, report_html
from xcoact.stats.clusters import cluster_table, clusters, pick_map

V7 = data_file("data-neurosynth_version-7_coordinates.tsv.gz")
V7_META = data_file("data-neurosynth_version-7_metadata.tsv.gz")
FDR_ASSOC = "association-test_z_FDR_0.01"

# a grid like MNI's: x descends, 2 mm voxels
X = 10.0 - 2.0 * np.arange(10)
Y = -20.0 + 2.0 * np.arange(8)
Z = 4.0 + 2.0 * np.arange(6)


def _metadata_titles() -> dict[str, str]:
    """The fixture's titles, read with the standard library (independently of xcoact)."""
    with gzip.open(V7_META, "rt", encoding="utf-8", newline="") as fh:
        return {row["id"]: row["title"] for row in csv.DictReader(fh, delimiter="\t")}


@pytest.fixture(scope="module")
def v7_cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(V7, r=6)


@pytest.fixture(scope="module")
def v7_maps(v7_cube):
    """A 10 mm sphere at (40, -60, 40) on the 20-study v7 excerpt: 5 studies selected."""
    return v7_cube.coact.seed([[40, -60, 40]], r=10, threshold=0.05).compute()


# --- clusters -------------------------------------------------------------------------------------


def _two_blobs() -> np.ndarray:
    vol = np.zeros((10, 8, 6))
    vol[2:4, 2:4, 2:4] = 2.0  # a positive 2 x 2 x 2 cube ...
    vol[3, 3, 2] = 5.0  # ... with its peak here
    vol[4, 4, 4] = 1.5  # touches the cube's corner (3, 3, 3) only diagonally
    vol[1, 1, 1] = -1.0  # negative, touches the cube's corner (2, 2, 2) diagonally
    vol[0, 1, 1] = -2.0
    vol[0, 1, 0] = -6.0  # the negative peak
    vol[8, 6, 4] = np.nan  # NaN belongs to no cluster
    return vol


def test_two_blobs_26_connectivity():
    table = cluster_table(_two_blobs(), [X, Y, Z])
    assert list(table.columns) == [
        "cluster",
        "sign",
        "size_voxels",
        "size_mm3",
        "peak_x",
        "peak_y",
        "peak_z",
        "peak_value",
    ]
    rows = table.to_dict("records")
    # positive: the 8-voxel cube plus the diagonal voxel; the negative neighbour stays apart (other sign)
    assert rows[0] == {
        "cluster": 1,
        "sign": 1,
        "size_voxels": 9,
        "size_mm3": 72.0,
        "peak_x": 10.0 - 2 * 3,
        "peak_y": -20.0 + 2 * 3,
        "peak_z": 4.0 + 2 * 2,
        "peak_value": 5.0,
    }
    assert rows[1] == {
        "cluster": 2,
        "sign": -1,
        "size_voxels": 3,
        "size_mm3": 24.0,
        "peak_x": 10.0,
        "peak_y": -18.0,
        "peak_z": 4.0,
        "peak_value": -6.0,
    }
    assert len(rows) == 2


def test_two_blobs_6_and_18_connectivity_split_the_corner_voxel():
    for connectivity in (6, 18):
        table = cluster_table(_two_blobs(), [X, Y, Z], connectivity=connectivity)
        assert table[["sign", "size_voxels"]].values.tolist() == [[1, 8], [-1, 3], [1, 1]]
        assert table["peak_value"].tolist() == [5.0, -6.0, 1.5]
    # threshold is strict and applies to both signs: |value| > 1.5 drops the corner voxel and -1
    table = cluster_table(_two_blobs(), [X, Y, Z], threshold=1.5)
    assert table[["sign", "size_voxels"]].values.tolist() == [[1, 8], [-1, 2]]
    assert cluster_table(_two_blobs(), [X, Y, Z], min_size=4)["size_voxels"].tolist() == [9]


def _flood_fill(vol: np.ndarray, threshold: float, connectivity: int) -> list[tuple]:
    """Clusters by breadth-first search: (sign, size, peak index, peak value), unsorted."""
    offsets = [
        d
        for d in itertools.product((-1, 0, 1), repeat=3)
        if d != (0, 0, 0) and sum(map(abs, d)) <= {6: 1, 18: 2, 26: 3}[connectivity]
    ]
    out = []
    for sign in (1, -1):
        inside = np.nan_to_num(sign * vol) > threshold
        seen = np.zeros_like(inside)
        for start in zip(*np.nonzero(inside)):
            if seen[start]:
                continue
            seen[start] = True
            queue, members = deque([start]), []
            while queue:
                v = queue.popleft()
                members.append(v)
                for d in offsets:
                    n = tuple(a + b for a, b in zip(v, d))
                    if all(0 <= n[i] < vol.shape[i] for i in range(3)) and inside[n] and not seen[n]:
                        seen[n] = True
                        queue.append(n)
            peak = max(members, key=lambda m: (sign * vol[m], tuple(-c for c in m)))
            out.append((sign, len(members), peak, float(vol[peak])))
    return out


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_random_volume_matches_flood_fill(connectivity):
    rng = np.random.default_rng(7)
    vol = np.round(rng.normal(size=(10, 8, 6)) * 2, 1)
    vol[rng.random(vol.shape) < 0.05] = np.nan
    table = cluster_table(vol, [X, Y, Z], threshold=1.0, connectivity=connectivity)
    expected = _flood_fill(vol, 1.0, connectivity)
    got = sorted(
        zip(table["sign"], table["size_voxels"], table["peak_x"], table["peak_y"], table["peak_z"], table["peak_value"])
    )
    want = sorted((s, n, X[i], Y[j], Z[k], v) for s, n, (i, j, k), v in expected)
    assert got == want
    assert table["size_voxels"].tolist() == sorted(table["size_voxels"], reverse=True)
    assert table["cluster"].tolist() == list(range(1, len(table) + 1))


def test_cluster_errors():
    with pytest.raises(ParameterError, match="connectivity=8 is not valid; expected 26"):
        cluster_table(_two_blobs(), [X, Y, Z], connectivity=8)
    with pytest.raises(ParameterError, match="threshold=-1 is not valid"):
        cluster_table(_two_blobs(), [X, Y, Z], threshold=-1)
    with pytest.raises(ParameterError, match="coords must be three 1-D arrays"):
        cluster_table(_two_blobs(), [X, Y])


def test_clusters_of_real_maps_and_batches(v7_maps, v7_cube):
    name = "uniformity-test_z_FDR_0.01"
    table = v7_maps.coact.clusters(name)
    values = v7_maps[name].values
    assert table["size_voxels"].sum() == int((values != 0).sum())
    assert table["peak_value"].abs().max() == pytest.approx(np.abs(values).max())
    assert (table["size_mm3"] == table["size_voxels"] * 8.0).all()
    top = table.iloc[0]
    assert float(v7_maps[name].sel(x=top.peak_x, y=top.peak_y, z=top.peak_z)) == top.peak_value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = v7_cube.coact.seed(
            {"a": [[40, -60, 40]], "b": [[0, 20, 28]], "out": [[60, -100, 60]]}, r=10, threshold=0.05
        )
    both = clusters(batch, name)
    assert list(both.columns[:2]) == ["seed", "cluster"]
    assert set(both["seed"]) <= {"a", "b"}  # the degenerate seed's NaN map has no cluster
    only_a = clusters(batch, name, seed="a")
    pd.testing.assert_frame_equal(only_a, table, check_exact=False)
    assert pick_map(batch) == "association-test_z_FDR_0.01"


# --- metadata ---------------------------------------------------------------------------------------


def test_read_metadata_path_and_dataframe():
    expected = _metadata_titles()
    assert read_metadata(V7_META) == expected
    frame = pd.DataFrame({"id": [int(k) for k in expected], "title": list(expected.values()), "year": 1})
    assert read_metadata(frame) == expected


def test_metadata_errors(tmp_path):
    with pytest.raises(DatabaseFileNotFoundError, match=r"nope.tsv: metadata file not found"):
        read_metadata(tmp_path / "nope.tsv")
    bad = tmp_path / "meta.tsv"
    bad.write_text("id\tname\n1\tx\n")
    with pytest.raises(DatabaseError, match=r"meta.tsv: no column\(s\) \['title'\]; found columns \['id', 'name'\]"):
        read_metadata(bad)
    with pytest.raises(ParameterError, match="metadata must be a pandas DataFrame or the path"):
        read_metadata(42)


# --- the report ---------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def test_report_single_seed_with_metadata(v7_maps, tmp_path):
    path = v7_maps.coact.report(tmp_path / "report.html", metadata=V7_META)
    assert path == str(tmp_path / "report.html")
    assert os.listdir(tmp_path) == ["report.html"]
    text = open(path, encoding="utf-8").read()
    a = v7_maps.attrs
    # counts
    for label, value in [
        ("studies in the database", 20),
        ("studies selected", a["n_selected"]),
        ("studies not selected", a["n_unselected"]),
        ("seed voxels in the brain mask", a["n_roi"]),
    ]:
        assert f"<th>{label}</th><td>{value}</td>" in text
    # every selected study with its title from the metadata
    titles = _metadata_titles()
    for sid in v7_maps["selected_id"].values:
        row = f"<tr><td>{sid}</td><td>{titles[str(sid)]}</td></tr>".replace("'", "&#x27;")
        assert row in text
    assert f"Titles from the metadata for {a['n_selected']} of {a['n_selected']} studies" in text
    # the figure: one embedded PNG that decodes and reads back
    tags = _tags(text)
    images = [attrs for tag, attrs in tags if tag == "img"]
    assert len(images) == 1 and images[0]["src"].startswith("data:image/png;base64,")
    png = base64.b64decode(images[0]["src"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(io.BytesIO(png)).shape[0] > 300
    # self-contained: no script, no external stylesheet or image
    assert not any(tag in ("script", "link", "iframe") for tag, _ in tags)
    assert all(attrs.get("src", "data:").startswith("data:") for _, attrs in tags)
    # provenance, methods and references
    assert "association-test_z_FDR_0.01" in text and f"xcoact {xcoact.__version__}" in text
    assert "radius 6 mm" in text and "q = 0.01" in text and "more than a proportion 0.05" in text
    assert "Nature Methods 8(8):665-670" in text and "10.1038/nmeth.1635" in text
    assert "<th>max_overlap</th>" in text and "<th>database</th>" in text


def test_empty_map_is_drawn_and_reported(v7_maps):
    assert not v7_maps[FDR_ASSOC].values.any()  # nothing survives FDR for this seed
    fig = v7_maps.coact.plot(dpi=40)
    assert fig._suptitle.get_text().endswith("; no voxel passes the threshold")
    text = report_html(v7_maps)
    assert "passes the threshold: no cluster" in text and "<th>clusters (positive / negative)</th><td>0 (0 / 0)" in text


def test_report_cluster_table_matches_clusters(v7_maps, tmp_path):
    name = "uniformity-test_z_FDR_0.01"
    text = report_html(v7_maps, name=name, threshold=5.0)
    table = v7_maps.coact.clusters(name, threshold=5.0)
    section = text.split("<h2>Clusters</h2>", 1)[1].split("<h2>", 1)[0]
    assert section.count("<tr>") == len(table) + 1 > 2  # header + one row per cluster
    first = next(table.itertuples())
    assert (
        f'<td class="num">{first.size_voxels}</td><td class="num">{first.size_voxels * 8:,}</td>'
        f'<td class="num">{first.peak_x:g}</td><td class="num">{first.peak_y:g}</td>'
        f'<td class="num">{first.peak_z:g}</td><td class="num">{first.peak_value:.4g}</td>'
    ) in section
    assert "<th>peak z</th>" in section and "|value| &gt; 5" in section


def test_report_escapes_user_strings(v7_cube, tmp_path):
    evil = "<script>alert('x')</script>"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = v7_cube.coact.seed({evil: [[40, -60, 40]], "b": [[0, 20, 28]]}, r=10, threshold=0.05)
    batch.attrs["database"] = '<img src=x onerror="alert(1)">'
    meta = pd.DataFrame({"id": batch["study"].values, "title": ["<b>bold</b> & co"] * batch.sizes["study"]})
    path = report(batch, tmp_path / "batch.html", metadata=meta)
    text = open(path, encoding="utf-8").read()
    tags = _tags(text)
    assert "<script" not in text.lower() and not any(tag in ("script", "b") for tag, _ in tags)
    assert not any(key.startswith("on") for _, attrs in tags for key in attrs)  # no event handler
    assert [attrs["src"][:22] for tag, attrs in tags if tag == "img"] == ["data:image/png;base64,"]
    # the seed's name as the batch holds it ('/' made safe for file names), escaped
    assert batch["seed"].values[0].startswith("<script>alert('x')<")
    assert xcoact.report._e(batch["seed"].values[0]) in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;" in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text and "<b>" not in text
    # a batch: one row of counts per seed, and each seed's selected studies
    for seed, n in zip(batch["seed"].values, batch["n_selected"].values):
        assert f"{xcoact.report._e(seed)}: {n} studies</summary>" in text


def test_report_of_one_seed_of_a_batch(v7_cube, v7_maps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = v7_cube.coact.seed({"a": [[40, -60, 40]], "b": [[0, 20, 28]]}, r=10, threshold=0.05)
    text = report_html(batch, seed="a", max_studies=2)
    for sid in v7_maps["selected_id"].values[:2]:
        assert f"<tr><td>{sid}</td></tr>" in text
    assert f"<tr><td>{v7_maps['selected_id'].values[2]}</td></tr>" not in text
    assert f"The first 2 of {v7_maps.attrs['n_selected']} studies" in text
    with pytest.raises(ParameterError, match="seed='zz' is not a seed of the batch"):
        report_html(batch, seed="zz")


def test_report_refuses_existing_and_missing_directory(v7_maps, tmp_path):
    target = tmp_path / "r.html"
    target.write_text("earlier")
    with pytest.raises(OutputError, match="already exists; pass overwrite=True"):
        report(v7_maps, target)
    assert target.read_text() == "earlier"
    with pytest.raises(OutputError, match="output directory does not exist"):
        report(v7_maps, tmp_path / "missing" / "r.html")


@pytest.mark.parametrize("error", [OSError("disk full"), RuntimeError("interrupted")])
def test_failed_html_write_leaves_no_partial_file(v7_maps, tmp_path, monkeypatch, error):
    target = tmp_path / "r.html"
    target.write_text("the earlier report")

    def half_written(tmp, text):
        with open(tmp, "w", encoding="utf-8") as fh:  # half the report reaches the disk, then it fails
            fh.write(text[: len(text) // 2])
        raise error

    monkeypatch.setattr(xcoact.report, "_write_html", half_written)
    with pytest.raises(OutputError if isinstance(error, OSError) else RuntimeError, match=str(error)):
        report(v7_maps, target, overwrite=True, plot_kwargs={"kind": "glass"}, dpi=30)
    assert target.read_text() == "the earlier report"
    assert os.listdir(tmp_path) == ["r.html"]
    with pytest.raises((OutputError, RuntimeError)):
        report(v7_maps, tmp_path / "new.html", plot_kwargs={"kind": "glass"}, dpi=30)
    assert os.listdir(tmp_path) == ["r.html"]


def test_methods_follow_the_attrs(v7_maps):
    ds = v7_maps.copy()
    ds.attrs.update(threshold=12, threshold_kind="count", q=0.05, r=8.0)
    text = xcoact.report.methods_text(ds)[0]
    assert "more than 12 of the seed's voxels" in text and "q = 0.05" in text and "radius 8 mm" in text
    assert re.search(r"Benjamini-Hochberg \[\d\]", text)
    batch_like = xr.Dataset(attrs={**v7_maps.attrs, "n_seeds": 4, "n_valid_seeds": 3})
    batch_like = batch_like.assign({"m": (("seed", "x", "y", "z"), np.zeros((1, 1, 1, 1)))})
    assert "Each of 4 seed regions (3 with maps)" in xcoact.report.methods_text(batch_like, "m")[0]
