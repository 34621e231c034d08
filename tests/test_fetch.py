"""Downloading the releases: a real HTTP server on 127.0.0.1 serves tiny excerpts in the release formats.

The fixtures in ``tests/data/releases`` (see its README) are laid out like a
mirror (``<dataset>-v<version>/<file>``), with their own checksums in
``tests/data/releases/MANIFEST.tsv``, passed as ``manifest=``.  The server is
an ``http.server.ThreadingHTTPServer`` in a thread whose handler can answer
each request normally, with a corrupted body, a body cut half-way (the socket
is closed), a 404, a 503, a redirect, a stall or an oversized body, with or
without ``Range`` support; it logs every request.  Nothing leaves loopback,
and everything is written under ``tmp_path``.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse
import xarray as xr

import xcoact
import xcoact.datasets.fetch as fetch
from xcoact.datasets.fetch import (
    Release,
    default_data_dir,
    fetch_neuroquery,
    fetch_neurosynth,
    git_blob_sha1,
    read_manifest,
)
from xcoact.errors import (
    ChecksumError,
    DownloadError,
    OutputError,
    ParameterError,
    SpaceWarning,
    XcoactError,
    XcoactWarning,
)
from xcoact.readers import read_database, sniff_format, write_database
from xcoact.table import make_table

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASES = os.path.join(HERE, "data", "releases")
MANIFEST = os.path.join(RELEASES, "MANIFEST.tsv")

NS = "neurosynth-v7"
NS_COORDS = "data-neurosynth_version-7_coordinates.tsv.gz"
NS_META = "data-neurosynth_version-7_metadata.tsv.gz"
NS_FEATURES = "data-neurosynth_version-7_vocab-terms_source-abstract_type-tfidf_features.npz"
NS_VOCAB = "data-neurosynth_version-7_vocab-terms_vocabulary.txt"
NQ = "neuroquery-v1"
NQ_COORDS = "data-neuroquery_version-1_coordinates.tsv.gz"


def fixture_bytes(folder: str, name: str) -> bytes:
    with open(os.path.join(RELEASES, folder, name), "rb") as fh:
        return fh.read()


# ----------------------------------------------------------------------------- the server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv = self.server.release_server
        path = self.path.split("?", 1)[0]
        action = srv.next_action(path)
        rng = self.headers.get("Range")
        record = {"path": path, "range": rng, "action": action, "status": None, "sent": 0}
        srv.log.append(record)
        if action in ("404", "503"):
            record["status"] = int(action)
            self.send_error(int(action))
            return
        if action.startswith("redirect:"):
            record["status"] = 302
            self.send_response(302)
            self.send_header("Location", action.split(":", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = srv.files.get(path)
        if data is None:
            record["status"] = 404
            self.send_error(404)
            return
        if action == "corrupt":
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        elif action == "bigger":
            data = data + b"\0" * 4096
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and srv.range_support:
            start = int(m.group(1))
            if start >= len(data):
                record["status"] = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            record["status"] = 206
        else:
            self.send_response(200)
            record["status"] = 200
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if srv.range_support:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if action == "stall":
            time.sleep(srv.stall_s)
        if action == "drop":  # half the body, then the connection goes away
            half = body[: len(body) // 2]
            self.wfile.write(half)
            self.wfile.flush()
            record["sent"] = len(half)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)
        record["sent"] = len(body)


class ReleaseServer:
    """Serves ``tests/data/releases`` as ``/<dataset>-v<version>/<file>`` with scripted misbehaviour."""

    def __init__(self):
        self.files = {}
        for folder in (NS, NQ):
            for name in os.listdir(os.path.join(RELEASES, folder)):
                self.files[f"/{folder}/{name}"] = fixture_bytes(folder, name)
        self.actions: dict[str, list[str]] = {}
        self.log: list[dict] = []
        self.range_support = True
        self.stall_s = 0.6
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.release_server = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def script(self, folder: str, name: str, *actions: str) -> str:
        """Answer the next requests for this file with ``actions`` in turn ("ok" afterwards)."""
        path = f"/{folder}/{name}"
        self.actions[path] = list(actions)
        return path

    def next_action(self, path: str) -> str:
        with self._lock:
            queue = self.actions.get(path)
            return queue.pop(0) if queue else "ok"

    def requests(self, name: str) -> list[dict]:
        return [r for r in self.log if r["path"].endswith("/" + name)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    srv = ReleaseServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No mirror or cache from the environment; retries without the real backoff."""
    monkeypatch.delenv(fetch.ENV_MIRROR, raising=False)
    monkeypatch.setenv(fetch.ENV_DATA, str(tmp_path / "default-cache"))
    monkeypatch.setattr(fetch, "_BACKOFF_S", 0.01)


def ns(server_or_url, data_dir, **kw) -> Release:
    base = server_or_url.url if isinstance(server_or_url, ReleaseServer) else server_or_url
    return fetch_neurosynth(7, data_dir, base_url=base, manifest=MANIFEST, **kw)


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def make_quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return make_table(*args, **kw)


def read_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return read_database(path, **kw)


# ----------------------------------------------------------------------------- a good download


def test_good_download_is_verified_cached_converted_and_reused(server, tmp_path, monkeypatch):
    release = ns(server, tmp_path)

    directory = tmp_path / NS
    assert release.directory == str(directory)
    assert dict(release.files) == {
        "coordinates": str(directory / NS_COORDS),
        "metadata": str(directory / NS_META),
        "features": str(directory / NS_FEATURES),
        "vocabulary": str(directory / NS_VOCAB),
    }
    assert (release.coordinates, release.metadata, release.features, release.vocabulary) == (
        release.files["coordinates"],
        release.files["metadata"],
        release.files["features"],
        release.files["vocabulary"],
    )
    for role, path in release.files.items():
        with open(path, "rb") as fh:
            assert fh.read() == fixture_bytes(NS, os.path.basename(path)), role
    assert not [n for n in listing(directory) if n.endswith(".part")]
    assert sorted(r["path"] for r in server.log) == sorted(
        f"/{NS}/{n}" for n in (NS_COORDS, NS_META, NS_FEATURES, NS_VOCAB)
    )
    assert all(r["range"] is None and r["status"] == 200 for r in server.log)

    # the release as a user reads it: the features are studies x terms, rows in metadata order
    features = scipy.sparse.load_npz(release.features)
    with open(release.vocabulary) as fh:
        vocabulary = fh.read().splitlines()
    with gzip.open(release.metadata, "rt") as fh:
        study_ids = [row["id"] for row in csv.DictReader(fh, delimiter="\t")]
    assert features.shape == (len(study_ids), len(vocabulary)) == (20, 100)

    # the converted table is the parsed table, warnings included
    assert release.table_path == str(directory / "data-neurosynth_version-7_coordinates.xcoact.nc")
    assert os.path.isfile(release.table_path)
    with warnings.catch_warnings(record=True) as parsed_w:
        warnings.simplefilter("always")
        parsed = read_database(release.coordinates)
    with warnings.catch_warnings(record=True) as cached_w:
        warnings.simplefilter("always")
        table = release.table()
    xr.testing.assert_identical(table, parsed)
    assert table["space"].dtype == parsed["space"].dtype and table["study_id"].dtype == np.int64
    assert [(w.category, str(w.message)) for w in cached_w] == [(w.category, str(w.message)) for w in parsed_w]
    assert any(issubclass(w.category, SpaceWarning) and "'UNKNOWN'" in str(w.message) for w in cached_w)
    assert cached_w[0].filename == __file__  # pointed at the caller of table()

    # the next call downloads nothing and parses nothing
    def no_parse(*args, **kwargs):
        raise AssertionError("the release was parsed again")

    monkeypatch.setattr(xcoact.readers, "read_database", no_parse)
    n_requests = len(server.log)
    again = ns(server, tmp_path)
    assert again == release
    assert len(server.log) == n_requests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        xr.testing.assert_identical(again.table(), parsed)


def test_neuroquery_release_and_its_reader(server, tmp_path):
    release = fetch_neuroquery(data_dir=tmp_path, base_url=server.url, manifest=MANIFEST)
    assert release.directory == str(tmp_path / NQ)
    assert sorted(release.files) == ["coordinates", "features", "metadata", "vocabulary"]
    assert release.format == "neuroquery" and sniff_format(release.coordinates) == "neuroquery"
    features = scipy.sparse.load_npz(release.features)
    with open(release.vocabulary) as fh:
        assert features.shape == (6, len(fh.read().splitlines())) == (6, 40)

    with warnings.catch_warnings():
        warnings.simplefilter("error", XcoactWarning)  # all MNI, nothing far outside: no warning
        table = release.table()
        parsed = read_database(release.coordinates)
    xr.testing.assert_identical(table, parsed)
    assert table.attrs["format"] == "neuroquery"
    assert (table.attrs["n_studies"], table.attrs["n_peaks"]) == (6, 439)
    assert set(table["space"].values.tolist()) == {"MNI"}

    # each row's line is the line it starts on; four rows of study 22711879 span two lines ("Table\n1")
    with gzip.open(release.coordinates, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader)
        starts, rows, last = [], [], reader.line_num
        for row in reader:
            starts.append(last + 1)
            rows.append(row)
            last = reader.line_num
    np.testing.assert_array_equal(table["line"].values, starts)
    assert sum("\n" in r[2] for r in rows) == 4
    np.testing.assert_array_equal(table["study_id"].values, [int(r[0]) for r in rows])
    for axis, col in zip("xyz", (3, 4, 5)):
        np.testing.assert_array_equal(table[axis].values, [float(r[col]) for r in rows])


# ----------------------------------------------------------------------------- failures


def test_corrupted_download_is_a_clear_error_and_nothing_is_cached(server, tmp_path):
    server.script(NS, NS_COORDS, "corrupt")
    good = fixture_bytes(NS, NS_COORDS)
    bad = good[:100] + bytes([good[100] ^ 0xFF]) + good[101:]
    with pytest.raises(ChecksumError) as info:
        ns(server, tmp_path)
    err = info.value
    assert isinstance(err, DownloadError) and isinstance(err, OSError) and isinstance(err, XcoactError)
    msg = str(err)
    assert NS_COORDS in msg and f"{server.url}/{NS}/{NS_COORDS}" in msg
    assert f"expected sha256:{hashlib.sha256(good).hexdigest()}" in msg
    assert f"got sha256:{hashlib.sha256(bad).hexdigest()}" in msg
    assert "nothing was cached" in msg
    assert [n for n in listing(tmp_path / NS) if not n.startswith(".")] == []  # no file, no .part, no table
    assert len(server.requests(NS_COORDS)) == 1  # a mismatch is not retried

    # the same server, now honest: the next call succeeds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        assert ns(server, tmp_path).table().attrs["n_peaks"] == 1420


def test_corrupted_file_pinned_by_git_blob_sha1(server, tmp_path):
    server.script(NS, NS_FEATURES, "corrupt")
    good = fixture_bytes(NS, NS_FEATURES)
    blob_sha1 = hashlib.sha1(b"blob %d\0" % len(good) + good).hexdigest()
    with pytest.raises(ChecksumError, match=f"expected git-blob-sha1:{blob_sha1}"):
        ns(server, tmp_path)
    assert NS_FEATURES not in listing(tmp_path / NS) and NS_FEATURES + ".part" not in listing(tmp_path / NS)


def test_oversized_body_is_cut_off_and_discarded(server, tmp_path):
    server.script(NS, NS_META, "bigger")
    with pytest.raises(ChecksumError, match=r"sent more than the expected 2,111 bytes"):
        ns(server, tmp_path, vocab=None)
    assert NS_META not in listing(tmp_path / NS) and NS_META + ".part" not in listing(tmp_path / NS)


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    server.script(NS, NS_COORDS, "drop")
    release = ns(server, tmp_path, vocab=None)
    first, second = server.requests(NS_COORDS)
    assert (
        first["range"] is None and first["action"] == "drop" and 0 < first["sent"] < len(fixture_bytes(NS, NS_COORDS))
    )
    assert second["range"] == f"bytes={first['sent']}-" and second["status"] == 206
    with open(release.coordinates, "rb") as fh:
        assert fh.read() == fixture_bytes(NS, NS_COORDS)


def test_dropped_connection_restarts_when_the_server_ignores_range(server, tmp_path):
    server.range_support = False
    server.script(NS, NS_COORDS, "drop")
    release = ns(server, tmp_path, vocab=None)
    first, second = server.requests(NS_COORDS)
    assert second["range"] == f"bytes={first['sent']}-" and second["status"] == 200  # answered with the whole file
    with open(release.coordinates, "rb") as fh:
        assert fh.read() == fixture_bytes(NS, NS_COORDS)


def test_a_connection_that_keeps_dropping_gives_up_and_the_next_call_resumes(server, tmp_path):
    size = len(fixture_bytes(NS, NS_COORDS))
    server.script(NS, NS_COORDS, "drop", "drop", "drop")
    with pytest.raises(DownloadError) as info:
        ns(server, tmp_path, vocab=None, retries=2)
    assert not isinstance(info.value, ChecksumError)
    url = f"{server.url}/{NS}/{NS_COORDS}"
    assert str(info.value).startswith(f"{url}: the download failed 3 time(s)")
    sent = [r["sent"] for r in server.requests(NS_COORDS)]
    assert len(sent) == 3 and all(s > 0 for s in sent)
    part = tmp_path / NS / (NS_COORDS + ".part")
    assert part.stat().st_size == sum(sent) < size  # every attempt continued the last one
    assert NS_COORDS not in listing(tmp_path / NS)
    assert f"{sum(sent):,} byte(s) are kept in {part}" in str(info.value)

    release = ns(server, tmp_path, vocab=None)
    last = server.requests(NS_COORDS)[-1]
    assert last["range"] == f"bytes={sum(sent)}-" and last["status"] == 206
    with open(release.coordinates, "rb") as fh:
        assert fh.read() == fixture_bytes(NS, NS_COORDS)
    assert not part.exists()


def test_404_names_the_url(server, tmp_path):
    server.script(NS, NS_COORDS, "404")
    with pytest.raises(DownloadError) as info:
        ns(server, tmp_path)
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, XcoactError) and not isinstance(err, ChecksumError)
    assert str(err).startswith(f"{server.url}/{NS}/{NS_COORDS}: HTTP 404")
    assert len(server.requests(NS_COORDS)) == 1  # not retried
    assert [n for n in listing(tmp_path / NS) if not n.startswith(".")] == []


def test_a_missing_file_in_a_mirror_is_a_404(server, tmp_path):
    del server.files[f"/{NS}/{NS_META}"]
    with pytest.raises(DownloadError, match=rf"{re.escape(NS_META)}: HTTP 404"):
        ns(server, tmp_path, vocab=None)


def test_busy_server_is_retried(server, tmp_path):
    server.script(NS, NS_META, "503", "503")
    ns(server, tmp_path, vocab=None)
    assert [r["status"] for r in server.requests(NS_META)] == [503, 503, 200]
    server.script(NS, NS_VOCAB, "503", "503")
    with pytest.raises(DownloadError, match=r"failed 2 time\(s\), the last with: HTTP 503"):
        ns(server, tmp_path, retries=1)


def test_a_stalled_connection_times_out(server, tmp_path):
    server.stall_s = 0.8
    server.script(NS, NS_META, "stall")
    with pytest.raises(DownloadError, match=r"failed 1 time\(s\).*timed out"):
        ns(server, tmp_path, vocab=None, retries=0, timeout=0.2)


def test_partial_file_from_an_earlier_call_is_resumed(server, tmp_path):
    data = fixture_bytes(NS, NS_COORDS)
    (tmp_path / NS).mkdir()
    (tmp_path / NS / (NS_COORDS + ".part")).write_bytes(data[:1000])
    release = ns(server, tmp_path, vocab=None)
    (request,) = server.requests(NS_COORDS)
    assert request["range"] == "bytes=1000-" and request["status"] == 206 and request["sent"] == len(data) - 1000
    with open(release.coordinates, "rb") as fh:
        assert fh.read() == data


def test_a_bad_partial_file_is_discarded_and_downloaded_again(server, tmp_path):
    data = fixture_bytes(NS, NS_COORDS)
    (tmp_path / NS).mkdir()
    (tmp_path / NS / (NS_COORDS + ".part")).write_bytes(b"\0" * 1000)
    release = ns(server, tmp_path, vocab=None)
    assert [(r["range"], r["status"]) for r in server.requests(NS_COORDS)] == [("bytes=1000-", 206), (None, 200)]
    with open(release.coordinates, "rb") as fh:
        assert fh.read() == data


def test_a_partial_file_longer_than_the_release_is_restarted(server, tmp_path):
    (tmp_path / NS).mkdir()
    (tmp_path / NS / (NS_META + ".part")).write_bytes(b"x" * 5000)  # more than the 2,111 bytes pinned
    ns(server, tmp_path, vocab=None)
    assert [(r["range"], r["status"]) for r in server.requests(NS_META)] == [(None, 200)]


def test_a_file_damaged_in_the_cache_is_fetched_again(server, tmp_path):
    release = ns(server, tmp_path)
    with open(release.metadata, "r+b") as fh:
        fh.write(b"XX")
    n = len(server.log)
    again = ns(server, tmp_path)
    assert [r["path"] for r in server.log[n:]] == [f"/{NS}/{NS_META}"]
    with open(again.metadata, "rb") as fh:
        assert fh.read() == fixture_bytes(NS, NS_META)


def test_concurrent_fetches_share_one_download(server, tmp_path):
    results, errors = [], []

    def run():
        try:
            results.append(ns(server, tmp_path))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 3
    assert sorted(r["path"] for r in server.log) == sorted(
        f"/{NS}/{n}" for n in (NS_COORDS, NS_META, NS_FEATURES, NS_VOCAB)
    )


# ----------------------------------------------------------------------------- what is refused


@pytest.mark.parametrize("url", ["http://example.org/mirror", "http://10.0.0.7/releases", "ftp://127.0.0.1/releases"])
def test_plain_http_to_a_remote_host_and_other_schemes_are_refused(tmp_path, url):
    with pytest.raises(ParameterError, match=re.escape(f"base_url={url!r}")):
        ns(url, tmp_path)
    assert not (tmp_path / NS).exists()  # refused before anything is created or sent


def test_the_mirror_variable_is_used_and_checked(server, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.ENV_MIRROR, "http://192.0.2.1/releases")
    with pytest.raises(ParameterError, match=r"\$XCOACT_MIRROR='http://192.0.2.1/releases': plain http"):
        fetch_neurosynth(7, tmp_path, manifest=MANIFEST)
    monkeypatch.setenv(fetch.ENV_MIRROR, server.url.replace("127.0.0.1", "localhost"))
    release = fetch_neurosynth(7, tmp_path, manifest=MANIFEST, vocab=None)
    assert len(server.log) == 2 and os.path.isfile(release.coordinates)


def test_redirects_are_held_to_the_same_rule(server, tmp_path):
    server.script(NS, NS_META, "redirect:http://example.invalid/evil.tsv.gz")
    with pytest.raises(
        DownloadError, match=r"redirected to http://example.invalid/evil.tsv.gz, which is refused: plain http"
    ):
        ns(server, tmp_path, vocab=None)
    assert NS_META not in listing(tmp_path / NS)
    server.script(NS, NS_META, f"redirect:{server.url}/{NS}/{NS_META}?moved=1")  # loopback: followed
    release = ns(server, tmp_path, vocab=None)
    assert [r["status"] for r in server.requests(NS_META)] == [302, 302, 200]
    with open(release.metadata, "rb") as fh:
        assert fh.read() == fixture_bytes(NS, NS_META)


def test_local_and_file_url_mirrors_are_verified_too(tmp_path):
    by_dir = ns(RELEASES, tmp_path / "a")
    by_url = ns("file://" + RELEASES, tmp_path / "b")
    for role in by_dir.files:
        with open(by_dir.files[role], "rb") as one, open(by_url.files[role], "rb") as two:
            assert one.read() == two.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        t1, t2 = by_dir.table(), by_url.table()
    assert t1.attrs["database"] == by_dir.coordinates and t2.attrs["database"] == by_url.coordinates
    xr.testing.assert_identical(t1, t2.assign_attrs(database=t1.attrs["database"]))

    mirror = tmp_path / "mirror"
    shutil.copytree(RELEASES, mirror)
    path = mirror / NS / NS_VOCAB
    path.write_bytes(path.read_bytes().replace(b"a", b"A", 1))
    with pytest.raises(ChecksumError, match=re.escape(f"{NS_VOCAB}: checksum mismatch for {path}")):
        ns(mirror, tmp_path / "c")
    assert NS_VOCAB not in listing(tmp_path / "c" / NS) and NS_VOCAB + ".part" not in listing(tmp_path / "c" / NS)
    (mirror / NS / NS_FEATURES).unlink()
    with pytest.raises(DownloadError, match=r"no such file in the mirror"):
        ns(mirror, tmp_path / "d")


# ----------------------------------------------------------------------------- arguments, manifest, cache


def test_cache_directory_defaults_and_overrides(server, tmp_path, monkeypatch):
    assert default_data_dir() == str(tmp_path / "default-cache")
    release = ns(server, None, vocab=None)
    assert release.directory == str(tmp_path / "default-cache" / NS)
    monkeypatch.delenv(fetch.ENV_DATA)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == str(tmp_path / "xdg" / "xcoact")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == os.path.join(os.path.expanduser("~"), ".cache", "xcoact")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match=r"cannot create the cache directory"):
        ns(server, blocker)


def test_argument_errors_list_what_is_valid(tmp_path):
    with pytest.raises(
        ParameterError,
        match=r"version=8 is not a neurosynth release the manifest knows; available versions: \[3, 4, 5, 6, 7\]",
    ):
        fetch_neurosynth(8, tmp_path)
    with pytest.raises(ParameterError, match=r"available versions: \[1\]"):
        fetch_neuroquery(2, tmp_path)
    with pytest.raises(
        ParameterError,
        match=r"vocab='topics'.*available: vocab='LDA100' source='abstract', .*vocab='terms' source='abstract'",
    ):
        fetch_neurosynth(7, tmp_path, vocab="topics")
    with pytest.raises(ParameterError, match=r"source='methods'.*vocab='neuroquery156521' source='body'"):
        fetch_neuroquery(1, tmp_path, source="methods")
    for bad in (
        dict(retries=-1),
        dict(timeout=0),
        dict(version=True),
        dict(vocab=3),
        dict(convert="yes"),
        dict(data_dir=3),
    ):
        with pytest.raises(ParameterError):
            fetch_neurosynth(**{"data_dir": tmp_path, **bad})
    assert not (tmp_path / NS).exists()


def test_malformed_manifests_name_the_line(tmp_path):
    head = "repository\tpath\tsize\tgit_blob_sha1\tsha256\n"
    cases = {
        "a\tb\tc\n": r"line 1: columns \['a', 'b', 'c'\]",
        head + "r\tp\t12\t\t\n": r"line 2: no checksum",
        head + "r\tp\tbig\t" + "0" * 40 + "\t\n": r"line 2: size 'big' is not a whole number",
        head + "# comment\nr\tp\t1\t" + "0" * 39 + "\t\n": r"line 3: git_blob_sha1 '0{39}' is not 40 hex digits",
        head + "r\tp\t1\t\t" + "g" * 64 + "\n": r"line 2: sha256 'g{64}' is not 64 hex digits",
        head + "r\tp\n": r"line 2: 2 cell\(s\); expected 5",
    }
    for text, pattern in cases.items():
        path = tmp_path / "m.tsv"
        path.write_text(text)
        with pytest.raises(ParameterError, match=pattern):
            read_manifest(path)
    with pytest.raises(ParameterError, match=r"cannot be read"):
        read_manifest(tmp_path / "missing.tsv")


def test_bundled_manifest_pins_every_release_file():
    entries = read_manifest()
    assert len(entries) == 67
    assert {e.repository for e in entries} == {"neurosynth/neurosynth-data", "neuroquery/neuroquery_data"}
    assert all(e.sha256 or e.git_blob_sha1 for e in entries)
    by_name = {e.name: e for e in entries}
    coords = by_name[NS_COORDS]
    assert (coords.size, coords.sha256[:12], coords.git_blob_sha1[:12]) == (3587167, "17135be3e08a", "2ac083d3a499")
    features = fetch._release_entries("neurosynth", 7, "terms", "abstract", None)["features"]
    assert features.sha256 is None and features.checksum == "git-blob-sha1:fd742ebf2faa44124efb9c553a134ad1bfd419ae"
    lda = fetch._release_entries("neurosynth", 7, "LDA50", "abstract", None)
    assert sorted(lda) == ["coordinates", "features", "keys", "metadata", "vocabulary"]
    nq = fetch._release_entries("neuroquery", 1, "neuroquery7547", "abstract", None)
    assert nq["coordinates"].path == "data/" + NQ_COORDS
    # upstream addresses: the repository at the pinned commit
    upstream = ("upstream", None)
    assert fetch._source(upstream, "neurosynth", 7, coords) == (
        "url",
        "https://raw.githubusercontent.com/neurosynth/neurosynth-data/209c33cd009d0b069398a802198b41b9c488b9b7/"
        + NS_COORDS,
    )
    assert fetch._source(upstream, "neuroquery", 1, nq["coordinates"]) == (
        "url",
        "https://raw.githubusercontent.com/neuroquery/neuroquery_data/4580f86267fb7c14ac1f601e298cbed898d79f2d/data/"
        + NQ_COORDS,
    )


def test_git_blob_sha1_matches_git(tmp_path):
    empty, hello = tmp_path / "empty", tmp_path / "hello"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello\n")
    # what `git hash-object` prints for these two files
    assert git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha1(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_stale_or_damaged_table_is_rebuilt(server, tmp_path, monkeypatch):
    release = ns(server, tmp_path, vocab=None, convert=False)
    assert not os.path.exists(release.table_path)
    calls = []
    real = xcoact.readers.read_database
    monkeypatch.setattr(xcoact.readers, "read_database", lambda *a, **k: calls.append(a) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        first = release.table()  # converted on first use
        assert len(calls) == 1 and os.path.isfile(release.table_path)
        release.table()
        assert len(calls) == 1
        other = dataclasses.replace(release, _stamp=release._stamp.replace('"cache_format": 1', '"cache_format": 0'))
        xr.testing.assert_identical(other.table(), first)  # made by another xcoact: rebuilt
        assert len(calls) == 2
        with open(release.table_path, "r+b") as fh:
            fh.write(b"garbage!")
        xr.testing.assert_identical(release.table(), first)  # not a netCDF file any more: rebuilt
        assert len(calls) == 3


def test_table_with_text_ids_and_many_labels_round_trips_through_the_cache(tmp_path):
    ids = ["Smith 2001: faces", "Smith 2001: faces", "Doe (2003)", "007", "Müller 2010"]
    table = make_quiet(
        ids,
        [1.5, 2.0, -3.25, 4.0, 0.125],
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [10.0, 20.0, 30.0, 40.0, 50.0],
        ["MNI", "MNI", "TAL", "UNKNOWN", "T88"],
        database="s",
        fmt="t",
    )
    path = write_database(table, tmp_path / "db_coordinates.tsv.gz", "neurosynth-v7")
    nc = str(tmp_path / "table.nc")
    fetch._convert(path, "neurosynth-v7", nc, "stamp")
    assert fetch._table_is_current(nc, "stamp") and not fetch._table_is_current(nc, "other")
    with warnings.catch_warnings(record=True) as cached_w:
        warnings.simplefilter("always")
        cached = fetch._load_table(nc)
    with warnings.catch_warnings(record=True) as parsed_w:
        warnings.simplefilter("always")
        parsed = read_database(path)
    xr.testing.assert_identical(cached, parsed)
    assert cached["study_id"].dtype.kind == "U" and cached["space"].dtype == parsed["space"].dtype
    assert [str(w.message) for w in cached_w] == [str(w.message) for w in parsed_w] != []


def test_neuroquery_writer_round_trip_and_refusals(tmp_path):
    nq = read_quiet(os.path.join(RELEASES, NQ, NQ_COORDS))
    path = write_database(nq, tmp_path / "nq_coordinates.tsv.gz", "neuroquery")
    back = read_quiet(path)
    assert sniff_format(path) == "neuroquery" and back.attrs["format"] == "neuroquery"
    for v in ("study_id", "x", "y", "z", "space"):
        np.testing.assert_array_equal(back[v].values, nq[v].values)
    tal = make_table([1, 2], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], ["TAL", "MNI"], database="t", fmt="t")
    back = read_quiet(write_database(tal, tmp_path / "tal.tsv", "neuroquery"))
    np.testing.assert_array_equal(back["x"].values, tal["x"].values)  # Talairach rows are written as their MNI values
    assert back["space"].values.tolist() == ["MNI", "MNI"]
    unknown = make_quiet([1], [1.0], [2.0], [3.0], ["UNKNOWN"], database="u", fmt="t")
    with pytest.raises(ParameterError, match=r"space label\(s\) 'UNKNOWN': 1 row\(s\) cannot be written as NeuroQuery"):
        write_database(unknown, tmp_path / "u.tsv", "neuroquery")
    quoted = make_table(['a "b"'], [1.0], [2.0], [3.0], ["MNI"], database="q", fmt="t")
    with pytest.raises(ParameterError, match=r"study id"):
        write_database(quoted, tmp_path / "q.tsv", "neuroquery")


def test_neuroquery_reader_names_bad_rows(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text('id\ttable_id\ttable_name\tx\ty\tz\n1\tt\t"Table\n2"\t1\t2\t3\n1\tt\tT\tfoo\t2\t3\n')
    with pytest.raises(xcoact.DatabaseError, match=r"line 4 column x: 'foo'"):
        read_database(path)
    path.write_text("id\ttable_id\ttable_name\tx\ty\n1\tt\tT\t1\t2\n")
    with pytest.raises(xcoact.DatabaseError, match=r"line 1: missing column\(s\) 'z' for the NeuroQuery format"):
        read_database(path)


def test_fetchers_are_in_datasets_and_imported_lazily():
    assert xcoact.datasets.fetch_neurosynth is fetch_neurosynth
    assert xcoact.datasets.fetch_neuroquery is fetch_neuroquery
    assert {"fetch_neurosynth", "fetch_neuroquery"} <= set(xcoact.datasets.__all__)
    with pytest.raises(AttributeError, match="fetch_nothing"):
        xcoact.datasets.fetch_nothing  # noqa: B018
    code = "import sys, xcoact; print('xcoact.datasets.fetch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
