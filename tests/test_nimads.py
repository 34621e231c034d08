"""NIMADS studysets (NeuroStore): the reader, checked against NiMARE's own Studyset, and fetch_neurostore.

The studysets are the NIMADS files NiMARE 0.22.1 ships in its test data
(copied into ``tests/data``; see its README).  The fetcher is exercised
against the loopback HTTP server of ``tests/test_fetch.py`` serving them as
``/api/studysets/<id>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings

import numpy as np
import pytest
from test_fetch import ReleaseServer

import xcoact
import xcoact.datasets.fetch as fetch
from xcoact.datasets.neurostore import fetch_neurostore
from xcoact.errors import (
    ChecksumError,
    DatabaseError,
    DownloadError,
    EmptyStudyWarning,
    ParameterError,
    SpaceWarning,
    XcoactWarning,
)
from xcoact.readers import read_database, sniff_format
from xcoact.table import tal_to_mni

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
FINGER = os.path.join(DATA, "nimads_studyset.json")
SIZES = os.path.join(DATA, "nimads_sample_size_studyset.json")
PAIN = os.path.join(DATA, "nimads_pain_studyset.json")
FILES = [FINGER, SIZES, PAIN]


def load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return read_database(path, **kw)


def first_by_study(table, var):
    ids = table["study_id"].values
    _, first = np.unique(ids, return_index=True)
    return dict(zip(ids[first], table[var].values[first]))


# ----------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_reader_matches_nimare_ids_points_and_sample_sizes(path):
    from nimare.studyset import Studyset

    raw = load(path)
    table = read_quiet(path)
    assert sniff_format(path) == "nimads" and table.attrs["format"] == "nimads"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ss = Studyset.from_nimads(path)
    # ids: NiMARE's "{study}-{analysis}", one table study per analysis with points
    assert set(np.unique(table["study_id"].values)) == set(ss.ids)
    assert table.attrs["n_studies"] == len(ss.ids)
    n_points = sum(len(a.get("points") or []) for s in raw["studies"] for a in s["analyses"])
    assert table.sizes["peak"] == n_points
    # sample sizes: NiMARE's rule and reduction (the mean of a list), NaN where there is none
    sizes = first_by_study(table, "sample_size")
    np.testing.assert_allclose([sizes[i] for i in ss.ids], ss.sample_sizes(), equal_nan=True)
    # analysis names and the studyset's own id/name
    names = {f"{s['id']}-{a['id']}": (a.get("name") or a["id"]) for s in raw["studies"] for a in s["analyses"]}
    got = first_by_study(table, "analysis_name")
    assert all(got[i] == str(names[i]) for i in got)
    assert table.attrs["studyset_id"] == raw["id"] and table.attrs["studyset_name"] == raw["name"]


def test_each_point_keeps_its_space_and_talairach_points_move_to_mni():
    raw = load(SIZES)
    table = read_quiet(SIZES)
    points = [(f"{s['id']}-{a['id']}", p) for s in raw["studies"] for a in s["analyses"] for p in a["points"]]
    assert table["space"].values.tolist() == [p["space"] for _, p in points]
    xyz = np.array([p["coordinates"] for _, p in points], dtype=float)
    tal = table["space"].values == "TAL"
    assert 0 < tal.sum() < len(tal)
    got = np.column_stack([table[c].values for c in "xyz"])
    np.testing.assert_array_equal(got[~tal], xyz[~tal])
    np.testing.assert_allclose(got[tal], tal_to_mni(xyz[tal]), atol=1e-12)
    # sample sizes from study metadata ("sample_size": 54) reach every peak of the study's analyses
    sizes = first_by_study(table, "sample_size")
    assert sizes["MoCtKmNnWpgW-E45Xu8dmww2x"] == 54.0 and sizes["2pzVXAREyHEt-qsWEsAqVbE5w"] == 20.0


def test_points_without_a_space_are_unknown_with_a_warning():
    with pytest.warns(SpaceWarning) as caught:
        table = read_database(FINGER)
    messages = [str(w.message) for w in caught]
    assert any("unknown space label(s) 'UNKNOWN': 210 row(s)" in m for m in messages)
    assert any("study '359AbepuGmEy-3pbFDWdMbe23': 'UNKNOWN' (5 row(s)" in m for m in messages)  # MixedSpaceWarning
    assert (table["space"].values == "UNKNOWN").sum() == 210
    assert (table["space"].values == "MNI").sum() == 2


def test_analyses_without_points_are_left_out_with_a_warning(tmp_path):
    raw = load(PAIN)
    raw["studies"][0]["analyses"][0]["points"] = []
    path = tmp_path / "studyset.json"
    path.write_text(json.dumps(raw))
    with pytest.warns(EmptyStudyWarning, match=r"1 analys\(is/es\) without points were left out: \['pain_01.nidm-1'\]"):
        table = read_database(path)
    assert "pain_01.nidm-1" not in set(table["study_id"].values) and table.attrs["n_studies"] == 20


def test_a_nimare_dataset_json_is_still_sniffed_as_nimare():
    assert sniff_format(os.path.join(DATA, "nimare_pain_dataset.json")) == "nimare-json"


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d["studies"][1]["analyses"][0]["points"][2].update(coordinates=[1, 2]),
            r"at studies\[1\] \(id 'pain_02.nidm'\) -> analyses\[0\] \(id '1'\) -> points\[2\] -> coordinates: "
            r"found \[1, 2\]; expected a list of three numbers \[x, y, z\] in mm \(NIMADS studyset JSON\)",
        ),
        (
            lambda d: d["studies"][0]["analyses"][0]["points"][0].update(coordinates=[1, "a", 2]),
            r"points\[0\] -> coordinates: found \[1, 'a', 2\]; expected a list of three numbers",
        ),
        (
            lambda d: d["studies"].__setitem__(0, {"name": "no id"}),
            r"at studies\[0\]: found \{'name': 'no id'\}; expected a study object with an \"id\"",
        ),
        (
            lambda d: d.pop("studies"),
            r"at top level: found keys \['id', 'name'\]; expected an object with a \"studies\" list",
        ),
    ],
)
def test_malformed_studysets_name_the_place(tmp_path, edit, message):
    raw = load(PAIN)
    edit(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(DatabaseError, match=message):
        read_quiet(path, format="nimads")


def test_invalid_json_and_empty_studysets_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x",\n "studies": [}')
    with pytest.raises(DatabaseError, match=r"bad.json, line 2, column 14: not valid JSON"):
        read_database(bad)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"id": "x", "studies": [{"id": "s", "analyses": []}]}))
    with pytest.raises(DatabaseError, match=r"no analysis has points"):
        read_database(empty)
    with pytest.raises(DatabaseError, match=r"found keys \['pain_01.nidm'"):
        read_quiet(os.path.join(DATA, "nimare_pain_dataset.json"), format="nimads")


def test_a_macm_on_a_nimads_studyset():
    act = xcoact.activations(PAIN, preset="nimare")
    assert act.sizes["study"] == 21 and act.attrs["database"] == PAIN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        maps = act.coact.seed([[0, -4, 60]], r=10)
    assert 0 < maps.attrs["n_selected"] < 21
    assert np.isfinite(maps["z_desc-association"].values).any()


# ----------------------------------------------------------------------------- fetch_neurostore

SID = "zvE8LEQHAJxV"  # the id inside nimads_sample_size_studyset.json


def raw_bytes(path=SIZES) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


@pytest.fixture
def server():
    srv = ReleaseServer()
    srv.files = {f"/api/studysets/{SID}": raw_bytes()}
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.delenv(fetch.ENV_MIRROR, raising=False)
    monkeypatch.setenv(fetch.ENV_DATA, str(tmp_path / "default-cache"))
    monkeypatch.setattr(fetch, "_BACKOFF_S", 0.01)


def ns(server, data_dir, sid=SID, **kw):
    return fetch_neurostore(sid, data_dir, base_url=server.url + "/api", **kw)


def cached(data_dir) -> list[str]:
    """What the cache holds, besides the lock file the fetchers share (whose lifetime is theirs)."""
    return sorted(n for n in os.listdir(data_dir / "neurostore") if n != ".lock")


def studyset_requests(server):
    return [r for r in server.log if r["path"] == f"/api/studysets/{SID}"]


def test_download_is_recorded_and_reused_without_a_request(server, tmp_path):
    got = ns(server, tmp_path)
    assert got.file == str(tmp_path / "neurostore" / f"studyset-{SID}.json")
    assert open(got.file, "rb").read() == raw_bytes()
    record = json.loads(open(got.record).read())
    assert record["sha256"] == got.sha256 == hashlib.sha256(raw_bytes()).hexdigest()
    assert record["size"] == len(raw_bytes()) and record["url"] == f"{server.url}/api/studysets/{SID}?nested=true"
    assert len(studyset_requests(server)) == 1
    again = ns(server, tmp_path)
    assert again == got and len(studyset_requests(server)) == 1  # the cache, checked against its record
    table = again.table()
    assert table.attrs["studyset_id"] == SID and table.attrs["n_studies"] == 15
    assert cached(tmp_path) == [f"studyset-{SID}.json", f"studyset-{SID}.record.json"]


def test_a_cached_file_that_fails_its_record_is_fetched_again(server, tmp_path):
    got = ns(server, tmp_path)
    with open(got.file, "r+b") as fh:
        fh.seek(50)
        fh.write(b"X")
    ns(server, tmp_path)
    assert len(studyset_requests(server)) == 2
    assert open(got.file, "rb").read() == raw_bytes()
    # a missing or unreadable record: fetched again too
    os.remove(got.record)
    ns(server, tmp_path)
    open(got.record, "w").write("{not json")
    ns(server, tmp_path)
    assert len(studyset_requests(server)) == 4


def test_a_pinned_checksum_is_enforced_and_nothing_is_cached_on_a_mismatch(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(
        ChecksumError,
        match=rf"checksum mismatch for {re.escape(server.url)}/api/studysets/{SID}\?nested=true: "
        rf"expected sha256:{wrong}",
    ):
        ns(server, tmp_path, sha256=wrong)
    assert cached(tmp_path) == []
    good = hashlib.sha256(raw_bytes()).hexdigest()
    assert ns(server, tmp_path, sha256="sha256:" + good).sha256 == good
    # a cached copy recorded with another checksum than the pin is fetched again (and must match)
    with pytest.raises(ChecksumError):
        ns(server, tmp_path, sha256=wrong)
    assert open(tmp_path / "neurostore" / f"studyset-{SID}.json", "rb").read() == raw_bytes()
    with pytest.raises(ParameterError, match=r"sha256='abc' is not valid; expected 64 hex digits"):
        ns(server, tmp_path, sha256="abc")


def test_refresh_replaces_the_copy_only_with_a_good_download(server, tmp_path):
    first = ns(server, tmp_path)
    edited = load(SIZES)
    edited["name"] = "edited on NeuroStore"
    server.files[f"/api/studysets/{SID}"] = json.dumps(edited).encode()
    assert ns(server, tmp_path) == first  # without refresh: the recorded copy
    second = ns(server, tmp_path, refresh=True)
    assert second.sha256 != first.sha256 and second.table().attrs["studyset_name"] == "edited on NeuroStore"
    server.script("api/studysets", SID, "404")
    with pytest.raises(DownloadError, match=rf"{re.escape(server.url)}/api/studysets/{SID}\?nested=true: HTTP 404"):
        ns(server, tmp_path, refresh=True)
    assert cached(tmp_path) == [f"studyset-{SID}.json", f"studyset-{SID}.record.json"]  # no .new or .part left
    kept = ns(server, tmp_path)
    assert kept == second and len(studyset_requests(server)) == 3


def test_dropped_connections_are_resumed_and_busy_servers_retried(server, tmp_path):
    server.script("api/studysets", SID, "drop", "503")
    got = ns(server, tmp_path)
    log = studyset_requests(server)
    assert [r["action"] for r in log] == ["drop", "503", "ok"]
    assert log[-1]["range"] is not None and log[-1]["status"] == 206
    assert open(got.file, "rb").read() == raw_bytes()


def test_an_answer_that_is_not_a_studyset_is_refused_and_not_cached(server, tmp_path):
    server.files[f"/api/studysets/{SID}"] = b"<html>Service unavailable</html>"
    with pytest.raises(
        DownloadError, match=r"the answer is not JSON .*expected a NIMADS studyset. Nothing was cached."
    ):
        ns(server, tmp_path)
    server.files[f"/api/studysets/{SID}"] = json.dumps({"message": "not found"}).encode()
    with pytest.raises(DownloadError, match=r"JSON with keys \['message'\], not a NIMADS studyset"):
        ns(server, tmp_path)
    assert cached(tmp_path) == []


def test_local_mirror_and_argument_errors(tmp_path):
    mirror = tmp_path / "mirror" / "studysets"
    mirror.mkdir(parents=True)
    (mirror / f"{SID}.json").write_bytes(raw_bytes())
    got = fetch_neurostore(SID, tmp_path / "cache", base_url=tmp_path / "mirror")
    assert open(got.file, "rb").read() == raw_bytes()
    with pytest.raises(ParameterError, match=r"studyset_id='../x' is not valid; expected a NeuroStore id"):
        fetch_neurostore("../x", tmp_path)
    with pytest.raises(ParameterError, match=r"plain http to 'example.org' is refused"):
        fetch_neurostore(SID, tmp_path, base_url="http://example.org/api")
    with pytest.raises(ParameterError, match=r"refresh='yes' is not valid"):
        fetch_neurostore(SID, tmp_path, refresh="yes")
    assert xcoact.datasets.fetch_neurostore is fetch_neurostore
