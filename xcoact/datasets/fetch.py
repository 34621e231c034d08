"""Download the Neurosynth and NeuroQuery releases, verify them against pinned checksums, cache and convert them.

The files of the upstream repositories (at pinned commits) or of a mirror are streamed to ``<file>.part``
(resumed, retried with backoff), renamed into place only once size and checksum match
(``datasets/data/releases.tsv``), and the coordinates converted once to netCDF.  How the transport and the
checks work, and why nothing is extracted: docs/reliability.md, "Downloads".
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

import numpy as np

from .. import validate
from .._version import __version__
from ..choices import NeuroquerySource, NeuroqueryVocab, NeurosynthSource, NeurosynthVocab

if TYPE_CHECKING:
    from ..readers import Format
from ..errors import (
    ChecksumError,
    DownloadError,
    OutputError,
    ParameterError,
)

__all__ = [
    "fetch_neurosynth",
    "fetch_neuroquery",
    "Release",
    "default_data_dir",
    "read_manifest",
    "ManifestEntry",
    "ENV_DATA",
    "ENV_MIRROR",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the cache directory (overrides the default).
ENV_DATA = "XCOACT_DATA"
#: Environment variable naming a mirror (URL or local directory) used when ``base_url`` is not given.
ENV_MIRROR = "XCOACT_MIRROR"

#: Each dataset's repository and the commit the pinned checksums belong to
#: (the commits the MANIFEST of the real releases was made from).
_DATASETS = {
    "neurosynth": {
        "repository": "neurosynth/neurosynth-data",
        "commit": "209c33cd009d0b069398a802198b41b9c488b9b7",
        "format": "neurosynth-v7",
    },
    "neuroquery": {
        "repository": "neuroquery/neuroquery_data",
        "commit": "4580f86267fb7c14ac1f601e298cbed898d79f2d",
        "format": "neuroquery",
    },
}
_UPSTREAM = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"

#: Bumped whenever the netCDF layout of the converted table changes (old caches are then rebuilt).
CACHE_FORMAT = 1

_CHUNK = 1 << 20
#: First retry waits this long (seconds), doubling each time up to _BACKOFF_MAX_S.
_BACKOFF_S = 1.0
_BACKOFF_MAX_S = 30.0
#: HTTP statuses worth retrying: the server or a proxy is busy or failing, not the request.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


# ----------------------------------------------------------------------------- manifest


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """One release file and its pinned checksums (a row of ``releases.tsv``)."""

    repository: str
    path: str
    size: int | None
    git_blob_sha1: str | None
    sha256: str | None

    @property
    def name(self) -> str:
        """The file name (the last part of ``path``)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def checksum(self) -> str:
        """``"sha256:<hex>"``, or ``"git-blob-sha1:<hex>"`` when no sha256 is pinned."""
        return f"sha256:{self.sha256}" if self.sha256 else f"git-blob-sha1:{self.git_blob_sha1}"


_MANIFEST_COLUMNS = ("repository", "path", "size", "git_blob_sha1", "sha256")


def read_manifest(path: str | os.PathLike | None = None) -> list[ManifestEntry]:
    """Read a checksum manifest: the bundled ``xcoact/datasets/data/releases.tsv`` by default.

    The format is a tab-separated table with the header
    ``repository path size git_blob_sha1 sha256`` (lines starting with ``#``
    are comments).  Each row needs a 64-hex-digit ``sha256`` or a
    40-hex-digit ``git_blob_sha1``; ``size`` (bytes) may be empty.

    Parameters
    ----------
    path : str or path-like, optional
        Another manifest in the same format, e.g. for a mirror of other files.

    Returns
    -------
    list of ManifestEntry

    Raises
    ------
    ParameterError
        The file is missing or a row is malformed (the message names the line).

    Examples
    --------
    >>> from xcoact.datasets.fetch import read_manifest
    >>> coords = [e for e in read_manifest() if e.name == "data-neurosynth_version-7_coordinates.tsv.gz"][0]
    >>> coords.repository, coords.size, coords.checksum[:15]
    ('neurosynth/neurosynth-data', 3587167, 'sha256:17135be3')
    """
    if path is None:
        source = resources.files("xcoact.datasets") / "data" / "releases.tsv"
        name, text = "xcoact/datasets/data/releases.tsv", source.read_text(encoding="utf-8")
    else:
        name = os.fspath(path)
        try:
            with open(name, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as err:
            raise ParameterError(
                f"manifest={name!r} cannot be read ({type(err).__name__}: {err}); expected a TSV with the header "
                f"{' '.join(_MANIFEST_COLUMNS)!r}, like xcoact/datasets/data/releases.tsv."
            ) from err
    numbered = [
        (i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.startswith("#")
    ]
    if not numbered:
        raise ParameterError(
            f"{name}: no header; expected the columns {' '.join(_MANIFEST_COLUMNS)!r} (tab-separated)."
        )
    header_line, header = numbered[0]
    cols = [c.strip() for c in header.split("\t")]
    if sorted(cols) != sorted(_MANIFEST_COLUMNS):
        raise ParameterError(
            f"{name}, line {header_line}: columns {cols}; expected exactly {list(_MANIFEST_COLUMNS)} "
            "(any order, tab-separated)."
        )
    out = []
    for lineno, line in numbered[1:]:
        cells = line.split("\t")
        if len(cells) != len(cols):
            raise ParameterError(
                f"{name}, line {lineno}: {len(cells)} cell(s); expected {len(cols)} ({' '.join(cols)})."
            )
        row = dict(zip(cols, (c.strip() for c in cells)))
        problems = []
        if not row["repository"] or not row["path"]:
            problems.append("empty repository or path")
        size = None
        if row["size"]:
            if not row["size"].isdigit():
                problems.append(f"size {row['size']!r} is not a whole number of bytes")
            else:
                size = int(row["size"])
        sha256 = row["sha256"].lower() or None
        sha1 = row["git_blob_sha1"].lower() or None
        if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
            problems.append(f"sha256 {row['sha256']!r} is not 64 hex digits")
        if sha1 is not None and not re.fullmatch(r"[0-9a-f]{40}", sha1):
            problems.append(f"git_blob_sha1 {row['git_blob_sha1']!r} is not 40 hex digits")
        if sha256 is None and sha1 is None:
            problems.append(
                "no checksum (a sha256 or a git_blob_sha1 is required: xcoact never keeps an unverified file)"
            )
        if problems:
            raise ParameterError(f"{name}, line {lineno}: {'; '.join(problems)}.")
        out.append(ManifestEntry(row["repository"], row["path"], size, sha1, sha256))
    return out


def _release_entries(dataset: str, version: int, vocab: str | None, source: str, manifest) -> dict[str, ManifestEntry]:
    """The files of one release, by role: coordinates, metadata and (with ``vocab``) features, vocabulary, ..."""
    repository = _DATASETS[dataset]["repository"]
    by_name = {e.name: e for e in read_manifest(manifest) if e.repository == repository}
    versions = sorted(
        {
            int(m.group(1))
            for n in by_name
            if (m := re.fullmatch(rf"data-{dataset}_version-(\d+)_coordinates\.tsv\.gz", n))
        }
    )
    prefix = f"data-{dataset}_version-{version}_"
    if prefix + "coordinates.tsv.gz" not in by_name or prefix + "metadata.tsv.gz" not in by_name:
        raise ParameterError(
            f"version={version!r} is not a {dataset} release the manifest knows; available versions: {versions}."
        )
    files = {"coordinates": by_name[prefix + "coordinates.tsv.gz"], "metadata": by_name[prefix + "metadata.tsv.gz"]}
    if vocab is None:
        return files
    pattern = re.compile(rf"{re.escape(prefix)}vocab-(.+?)_source-(.+?)_type-(.+?)_features\.npz")
    offered = sorted({m.groups()[:2] for n in by_name if (m := pattern.fullmatch(n))})
    features = [n for n in by_name if (m := pattern.fullmatch(n)) and m.groups()[:2] == (vocab, source)]
    if len(features) != 1:
        choices = ", ".join(f"vocab={v!r} source={s!r}" for v, s in offered) or "none"
        raise ParameterError(
            f"vocab={vocab!r}, source={source!r}: no such features file in {dataset} version {version}; "
            f"available: {choices} (or vocab=None for coordinates and metadata only)."
        )
    files["features"] = by_name[features[0]]
    extras = {"vocabulary": "vocabulary.txt", "keys": "keys.tsv"}  # keys: a topic model's top words per topic
    for role, suffix in extras.items():
        name = f"{prefix}vocab-{vocab}_{suffix}"
        if name in by_name:
            files[role] = by_name[name]
    if "vocabulary" not in files:
        raise ParameterError(
            f"vocab={vocab!r}: the manifest lists features but no {prefix}vocab-{vocab}_vocabulary.txt."
        )
    return files


# ----------------------------------------------------------------------------- places


def default_data_dir() -> str:
    """The cache directory: ``$XCOACT_DATA``, else ``$XDG_CACHE_HOME/xcoact``, else ``~/.cache/xcoact``.

    Examples
    --------
    >>> import os
    >>> from xcoact.datasets.fetch import default_data_dir
    >>> os.path.basename(default_data_dir()) in ("xcoact", os.path.basename(os.environ.get("XCOACT_DATA", "")))
    True
    """
    env = os.environ.get(ENV_DATA, "").strip()
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "xcoact")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_problem(url: str) -> str | None:
    """Why ``url`` may not be fetched, or None when it may (https, loopback http, file)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("https", "file"):
        return None
    if scheme == "http":
        if _is_loopback(parts.hostname):
            return None
        return (
            f"plain http to {parts.hostname!r} is refused (the download could be altered on the way); "
            "use https://, a file:// mirror, or http:// on a loopback address (127.0.0.1, localhost)"
        )
    return f"the scheme {scheme or '(none)'!r} is not supported; use https://, file:// or a local directory"


def _resolve_base(base_url) -> tuple[str, str | None]:
    """``("upstream", None)``, ``("url", base)`` or ``("dir", path)`` from ``base_url`` / ``$XCOACT_MIRROR``."""
    what = "base_url"
    if base_url is None:
        base_url = os.environ.get(ENV_MIRROR, "").strip() or None
        what = f"${ENV_MIRROR}"
    if base_url is None:
        return "upstream", None
    if isinstance(base_url, os.PathLike):
        base_url = os.fspath(base_url)
    if not isinstance(base_url, str) or not base_url:
        raise ParameterError(
            f"{what}={base_url!r} is not valid; expected a URL (https://..., file://...) or a local directory."
        )
    if os.path.isdir(base_url):
        return "dir", os.path.abspath(base_url)
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme.lower() == "file":
        path = urllib.request.url2pathname(parts.path)
        if not os.path.isdir(path):
            raise ParameterError(f"{what}={base_url!r}: {path} is not a directory; a file:// mirror must name one.")
        return "dir", os.path.abspath(path)
    if not parts.scheme:
        raise ParameterError(
            f"{what}={base_url!r} is neither an existing directory nor a URL; expected https://..., file://... "
            "or the path of a local mirror."
        )
    problem = _url_problem(base_url)
    if problem:
        raise ParameterError(f"{what}={base_url!r}: {problem}.")
    return "url", base_url.rstrip("/")


def _source(base: tuple[str, str | None], dataset: str, version: int, entry: ManifestEntry) -> tuple[str, str]:
    """(kind, where) of one file, kind ``"url"`` or ``"file"``: the pinned upstream commit, or a mirror's
    ``<mirror>/<dataset>-v<version>/<file name>`` (the cache layout; locally also NiMARE's, :func:`_mirror_file`)."""
    kind, root = base
    if kind == "upstream":
        spec = _DATASETS[dataset]
        return "url", _UPSTREAM.format(repository=entry.repository, commit=spec["commit"], path=entry.path)
    assert root is not None  # only the upstream source has no root
    if kind == "dir":
        return "file", _mirror_file(root, dataset, version, entry.name)
    return "url", f"{root}/{dataset}-v{version}/{urllib.parse.quote(entry.name)}"


def _mirror_file(root: str, dataset: str, version: int, name: str) -> str:
    """Where a local mirror holds a file: xcoact's layout, else NiMARE's download folder (``<data_dir>/<dataset>/``,
    ``~/.nimare/neurosynth/`` by default) or its parent; the files are verified like any other."""
    layouts = (
        os.path.join(root, f"{dataset}-v{version}", name),
        os.path.join(root, dataset, name),
        os.path.join(root, name),
    )
    return next((p for p in layouts if os.path.isfile(p)), layouts[0])


# ----------------------------------------------------------------------------- checksums


def git_blob_sha1(path: str) -> str:
    """The git blob SHA-1 of a file: ``sha1(b"blob <size>\\0" + content)``, what ``git hash-object`` prints."""
    prefix = f"blob {os.path.getsize(path)}\0".encode()
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.sha1(prefix)).hexdigest()


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _verify(path: str, entry: ManifestEntry) -> tuple[bool, str]:
    """(matches, what the file is: ``"sha256:<hex> (<n> bytes)"``).

    An entry with no checksum (a NeuroStore studyset, which changes as it is edited) matches any file.
    """
    size = os.path.getsize(path)
    if entry.sha256 is None and entry.git_blob_sha1 is None:
        return True, f"sha256:{_sha256(path)} ({size:,} bytes)"
    got = f"sha256:{_sha256(path)}" if entry.sha256 else f"git-blob-sha1:{git_blob_sha1(path)}"
    ok = got == entry.checksum and (entry.size is None or entry.size == size)
    return ok, f"{got} ({size:,} bytes)"


def _expected(entry: ManifestEntry) -> str:
    return entry.checksum + (f" ({entry.size:,} bytes)" if entry.size is not None else "")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


# ----------------------------------------------------------------------------- transfer


class _Retry(Exception):
    """A transient failure: the connection dropped, timed out, or the server answered 5xx."""


class _RangeRefused(_Retry):
    """HTTP 416: the ``.part`` is not a prefix the server can continue; start again from zero."""


class _CheckedRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to URLs the first request could have used."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        problem = _url_problem(newurl)
        if problem:
            raise DownloadError(f"{req.full_url}: redirected to {newurl}, which is refused: {problem}.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": f"xcoact/{__version__} (+fetch)", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    # never send loopback traffic (tests, a local mirror) through a proxy from the environment
    proxies = urllib.request.ProxyHandler({} if _is_loopback(urllib.parse.urlsplit(url).hostname) else None)
    opener = urllib.request.build_opener(proxies, _CheckedRedirect)
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code in _RETRY_STATUS:
            raise _Retry(f"HTTP {err.code} {err.reason}") from err
        if err.code == 416:
            raise _RangeRefused("HTTP 416 Range Not Satisfiable (the partial download was discarded)") from err
        hint = (
            " (the file is not at this address; a mirror must hold <mirror>/<dataset>-v<version>/<file name>)"
            if err.code == 404
            else ""
        )
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}{hint}.") from err
    except DownloadError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise _Retry(f"{type(reason).__name__}: {reason}") from err


def _cap(entry: ManifestEntry, total: int, part: str, url: str) -> None:
    """Stop a transfer that grows past the pinned size (a wrong or hostile file)."""
    if entry.size is not None and total > entry.size:
        _remove(part)
        raise ChecksumError(
            f"{entry.name}: {url} sent more than the expected {entry.size:,} bytes (expected {_expected(entry)}); "
            "the download was discarded and nothing was cached. The server serves another file."
        )


def _transfer_http(url: str, part: str, entry: ManifestEntry, timeout: float, bar=None) -> bool:
    """Bring ``part`` to the whole file (resuming when possible); True if earlier bytes were kept."""
    start = os.path.getsize(part) if os.path.exists(part) else 0
    if entry.size is not None and start > entry.size:
        _remove(part)
        start = 0
    if entry.size is not None and start == entry.size and start:
        return True  # complete already; the checksum decides
    try:
        resp = _open(url, start, timeout)
    except _RangeRefused:
        _remove(part)
        raise
    with resp:
        status = resp.status
        if status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != start:
                _remove(part)
                raise _Retry(f"the server answered 'Range: bytes={start}-' with {resp.headers.get('Content-Range')!r}")
            mode = "ab"
        elif status == 200:
            mode, start = "wb", 0  # no Range support (or no partial file): from the start
        else:
            raise DownloadError(f"{url}: unexpected HTTP status {status}; expected 200 or 206.")
        length = resp.headers.get("Content-Length")
        expected_body = int(length) if length and length.isdigit() else None
        with open(part, mode) as fh:

            def read() -> bytes:
                try:
                    return resp.read(_CHUNK)
                except (http.client.HTTPException, OSError) as err:
                    raise _Retry(f"connection lost after {fh.tell():,} bytes ({type(err).__name__}: {err})") from err

            received = _copy(read, fh, start, entry, part, url, bar)
        if expected_body is not None and received < expected_body:
            raise _Retry(f"connection closed after {start + received:,} bytes, {expected_body - received:,} short")
    return status == 206


def _transfer_file(src: str, part: str, entry: ManifestEntry, bar=None) -> bool:
    """Copy a mirror's file to ``part`` (no resume: local copies are fast)."""
    if not os.path.isfile(src):
        raise DownloadError(
            f"{src}: no such file in the mirror; expected <mirror>/<dataset>-v<version>/{entry.name} (or, in a NiMARE "
            f"download folder, <data_dir>/<dataset>/{entry.name})."
        )
    with open(src, "rb") as fin, open(part, "wb") as fout:
        _copy(lambda: fin.read(_CHUNK), fout, 0, entry, part, src, bar)
    return False


def _copy(read, fh, start: int, entry: ManifestEntry, part: str, where: str, bar) -> int:
    """Write ``read()``'s blocks to ``fh`` until it gives none; the bytes received (cut off past the pinned size)."""
    received = 0
    for block in iter(read, b""):
        received += len(block)
        if entry.size is not None and start + received > entry.size:
            fh.close()
            _cap(entry, start + received, part, where)
        fh.write(block)
        if bar is not None:
            bar.update(len(block))
    return received


def _download(
    kind: str,
    where: str,
    target: str,
    entry: ManifestEntry,
    *,
    retries: int,
    timeout: float,
    progress: bool | None = False,
) -> None:
    """Fetch one file to ``target`` through ``target.part``; rename only once its checksum matches."""
    from ..progress import byte_bar

    part = target + ".part"
    failures = 0
    restarted = False
    while True:
        logger.info("xcoact: fetching %s", where)
        try:
            start = os.path.getsize(part) if kind != "file" and os.path.exists(part) else 0
            with byte_bar(progress, entry.size, entry.name, initial=start) as bar:
                resumed = (
                    _transfer_file(where, part, entry, bar)
                    if kind == "file"
                    else _transfer_http(where, part, entry, timeout, bar)
                )
        except _Retry as err:
            failures += 1
            if failures > retries:
                kept = os.path.getsize(part) if os.path.exists(part) else 0
                raise DownloadError(
                    f"{where}: the download failed {failures} time(s), the last with: {err}. "
                    f"{kept:,} byte(s) are kept in "
                    f"{part}, which the next call resumes. Check the connection, "
                    f"or set ${ENV_MIRROR} (or base_url) to a "
                    "mirror or a local copy of the release."
                ) from err
            wait = min(_BACKOFF_S * 2 ** (failures - 1), _BACKOFF_MAX_S)
            logger.warning("xcoact: %s (%s); retrying in %.1f s", where, err, wait)
            time.sleep(wait)
            continue
        ok, got = _verify(part, entry)
        if ok:
            os.replace(part, target)
            logger.info("xcoact: %s verified (%s bytes) -> %s", entry.name, f"{os.path.getsize(target):,}", target)
            return
        _remove(part)
        if resumed and not restarted:  # the bytes kept from before may be the bad ones: once more from scratch
            restarted = True
            continue
        raise ChecksumError(
            f"{entry.name}: checksum mismatch for {where}: expected {_expected(entry)}, got {got}. The download was "
            "discarded and nothing was cached. The server or mirror serves a different file; if it is the upstream "
            "repository, report it."
        )


@contextlib.contextmanager
def _locked(directory: str):
    """Hold an exclusive lock on the release directory, so two processes never write the same ``.part``.

    The ``.lock`` file is removed while still held; a waiter that then holds a removed file locks the path afresh.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent fetches into one cache are not supported there
        yield
        return
    path = os.path.join(directory, ".lock")
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)  # the holder before us removed it: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ----------------------------------------------------------------------------- conversion


def _stamp(fmt: str, files: Mapping[str, ManifestEntry]) -> str:
    """What the converted table was made from; any change rebuilds it."""
    return json.dumps(
        {
            "cache_format": CACHE_FORMAT,
            "xcoact": __version__,
            "reader": fmt,
            "files": {files[r].name: files[r].checksum for r in ("coordinates", "metadata")},
        },
        sort_keys=True,
    )


def _table_is_current(path: str, stamp: str) -> bool:
    if not os.path.isfile(path):
        return False
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            return nc.getncattr("xcoact_cache") == stamp if "xcoact_cache" in nc.ncattrs() else False
    except OSError:  # truncated or foreign file: rebuild it
        return False


def _convert(coordinates: str, fmt: str, path: str, stamp: str) -> None:
    """Read the coordinates once and store the table as netCDF at ``path`` (atomically): space labels as integer
    codes, numbers zlib-compressed, the reader's warnings in the attrs so :meth:`Release.table` repeats them."""
    from ..errors import XcoactWarning
    from ..readers import read_database
    from ..writers import write_atomically

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_database(coordinates, format=cast("Format", fmt))  # a format name of _DATASETS
    records = [[w.category.__name__, str(w.message)] for w in caught if issubclass(w.category, XcoactWarning)]
    for w in caught:  # anything else (a library's deprecation, ...) is passed on now, not stored
        if not issubclass(w.category, XcoactWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    labels, codes = np.unique(np.asarray(table["space"].values), return_inverse=True)
    ds = table.drop_vars("space")
    ds["space_code"] = ("peak", codes.ravel().astype(np.int8 if len(labels) < 128 else np.int32))
    ds.attrs.update(
        xcoact_cache=stamp,
        xcoact_space_labels=json.dumps([str(lab) for lab in labels]),
        xcoact_read_warnings=json.dumps(records),
        xcoact_variables=json.dumps(list(table.data_vars)),
    )
    encoding = {
        name: {"zlib": True, "complevel": 1, "shuffle": True}
        for name, var in ds.data_vars.items()
        if var.dtype.kind in "iuf"
    }
    write_atomically({path: lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)})


def _load_table(path: str):
    """The coordinate table stored by :func:`_convert`, as :func:`xcoact.read_database` returned it."""
    import xarray as xr

    from .. import errors as xwarnings

    with xr.open_dataset(path, engine="netcdf4") as raw:
        ds = raw.load()
    attrs = dict(ds.attrs)
    labels = np.asarray(json.loads(attrs.pop("xcoact_space_labels")), dtype=str)
    records = json.loads(attrs.pop("xcoact_read_warnings"))
    order = json.loads(attrs.pop("xcoact_variables"))
    attrs.pop("xcoact_cache", None)
    for key in ("n_peaks", "n_studies"):
        attrs[key] = int(attrs[key])
    variables = {}
    for name in order:
        if name == "space":
            variables[name] = ("peak", labels[ds["space_code"].values])
            continue
        var = ds[name].variable
        var.encoding = {}
        if var.dtype == object:  # text ids come back as Python strings
            var = var.copy(data=var.values.astype(str))
        variables[name] = var
    table = xr.Dataset(variables, attrs=attrs)
    for category, message in records:
        cls = getattr(xwarnings, category, None)
        if not (isinstance(cls, type) and issubclass(cls, Warning)):
            cls = xwarnings.XcoactWarning
        warnings.warn(message, cls, stacklevel=3)
    return table


# ----------------------------------------------------------------------------- API


@dataclasses.dataclass(frozen=True)
class Release:
    """A downloaded, verified release in the cache.

    ``dataset`` is ``"neurosynth"`` or ``"neuroquery"``; ``directory`` the
    cache directory of this release (``<data_dir>/<dataset>-v<version>``).
    ``files`` maps each role to its path: ``coordinates``, ``metadata`` and,
    with a vocabulary, ``features`` (a SciPy sparse ``.npz``, studies x terms,
    rows in metadata order), ``vocabulary`` (one term per line) and, for topic
    models (``LDA50`` ...), ``keys`` (each topic's top words).
    ``table_path`` is the converted coordinate table (netCDF), made on first
    use, and ``format`` the reader used for the coordinates
    (``read_database(..., format=)``).
    """

    dataset: str
    version: int
    directory: str
    files: Mapping[str, str]
    table_path: str
    format: str
    _stamp: str = dataclasses.field(repr=False, compare=False)

    @property
    def coordinates(self) -> str:
        """Path of the coordinates ``.tsv.gz``."""
        return self.files["coordinates"]

    @property
    def metadata(self) -> str:
        """Path of the metadata ``.tsv.gz`` (Neurosynth: id, doi, space, title, ...; NeuroQuery: id, title)."""
        return self.files["metadata"]

    @property
    def features(self) -> str | None:
        """Path of the features ``.npz`` (``scipy.sparse.load_npz``), or None when fetched with ``vocab=None``."""
        return self.files.get("features")

    @property
    def vocabulary(self) -> str | None:
        """Path of the vocabulary ``.txt`` (one term per line, the feature columns), or None."""
        return self.files.get("vocabulary")

    def table(self):
        """The coordinate table, from the netCDF cache (converted first if it is missing or stale).

        Gives what ``xcoact.read_database(release.coordinates)`` gives (the
        same variables, values, dtypes and attrs, and the same warnings),
        without parsing the text: about 0.1 s instead of about 1.5 s for
        Neurosynth v7.

        Returns
        -------
        xarray.Dataset
            The coordinate table (see :mod:`xcoact.table`), in memory.
        """
        if not _table_is_current(self.table_path, self._stamp):
            with _locked(self.directory):
                if not _table_is_current(self.table_path, self._stamp):
                    _convert(self.coordinates, self.format, self.table_path, self._stamp)
        return _load_table(self.table_path)


def _check_timeout(timeout) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ParameterError(f"timeout={timeout!r} is not valid; expected a number of seconds > 0.")


def _make_cache_dir(directory: str) -> str:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"{directory}: cannot create the cache directory ({type(err).__name__}: {err}); pass data_dir= or set "
            f"${ENV_DATA} to a writable directory."
        ) from err
    return directory


def _fetch(
    dataset, version, data_dir, *, vocab, source, base_url, manifest, convert, retries, timeout, progress=None
) -> Release:
    version = validate.integer(version, "version", 1)
    retries = validate.integer(retries, "retries", 0)
    _check_timeout(timeout)
    if vocab is not None and not isinstance(vocab, str):
        raise ParameterError(f"vocab={vocab!r} is not valid; expected a vocabulary name (a str) or None.")
    if not isinstance(source, str):
        raise ParameterError(f"source={source!r} is not valid; expected a str such as 'abstract'.")
    if not isinstance(convert, bool):
        raise ParameterError(f"convert={convert!r} is not valid; expected True or False.")
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ParameterError(
            f"data_dir={data_dir!r} is not valid; expected a directory path (or None for {default_data_dir()})."
        )
    entries = _release_entries(dataset, version, vocab, source, manifest)
    base = _resolve_base(base_url)
    root = default_data_dir() if data_dir is None else os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    directory = _make_cache_dir(os.path.join(root, f"{dataset}-v{version}"))
    if not os.access(directory, os.W_OK):
        raise OutputError(f"{directory}: the cache directory is not writable; pass data_dir= or set ${ENV_DATA}.")
    fmt = _DATASETS[dataset]["format"]
    paths = {}
    with _locked(directory):
        for role, entry in entries.items():
            target = os.path.join(directory, entry.name)
            paths[role] = target
            if os.path.isfile(target):
                ok, got = _verify(target, entry)
                if ok:
                    continue
                logger.warning(
                    "xcoact: %s in the cache is %s, expected %s; fetching it again", target, got, _expected(entry)
                )
                _remove(target)
            kind, where = _source(base, dataset, version, entry)
            _download(kind, where, target, entry, retries=retries, timeout=float(timeout), progress=progress)
        stamp = _stamp(fmt, entries)
        table_path = os.path.join(directory, f"data-{dataset}_version-{version}_coordinates.xcoact.nc")
        if convert and not _table_is_current(table_path, stamp):
            _convert(paths["coordinates"], fmt, table_path, stamp)
    return Release(dataset, version, directory, MappingProxyType(paths), table_path, fmt, stamp)


_COMMON_DOC = """
    data_dir : str or path-like, optional
        Cache root; the files go to ``<data_dir>/{dataset}-v<version>/``.  Default:
        ``$XCOACT_DATA``, else ``$XDG_CACHE_HOME/xcoact``, else ``~/.cache/xcoact``.
    vocab : str or None, default {vocab!r}
        Which features to fetch with the coordinates; None fetches only the
        coordinates and metadata (all a coactivation map needs).
    source : str, default "abstract"
        The text the features were computed from{sources}.
    base_url : str or path-like, optional
        A mirror holding ``<base_url>/{dataset}-v<version>/<file name>``: an
        ``https://`` URL, ``http://`` on a loopback host, a ``file://`` URL or
        a local directory.  A NiMARE download folder works too (the
        ``data_dir`` of ``nimare.extract.fetch_{dataset}``, holding
        ``{dataset}/<file name>``, or that ``{dataset}`` folder itself).  Default: ``$XCOACT_MIRROR``, else the upstream
        repository ``{repository}`` at commit ``{commit}``.  Every file is
        checksum-verified whatever its source.
    manifest : str or path-like, optional
        A checksum manifest to use instead of the bundled
        ``xcoact/datasets/data/releases.tsv`` (same columns; see :func:`read_manifest`).
    convert : bool, default True
        Also store the coordinate table as netCDF now (once; reused later).
    retries : int, default 3
        How many times a dropped connection, timeout or 5xx answer is retried
        (waiting 1, 2, 4, ... s, at most 30 s) before giving up.
    timeout : float, default 60
        Seconds without data after which a connection counts as dropped.
    progress : bool, optional
        A progress bar per downloaded file (with the optional ``tqdm``; see
        :mod:`xcoact.progress`); by default in a notebook or on a terminal.
        Every download is also logged on the ``xcoact.datasets.fetch`` logger (INFO:
        the URL fetched, then the size and path once verified).

    Returns
    -------
    Release
        The paths (``.coordinates``, ``.metadata``, ``.features``,
        ``.vocabulary``, all in ``.files``), the netCDF table
        (``.table_path``) and ``.table()``, which opens it.

    Raises
    ------
    ParameterError
        An unknown version, vocabulary or source (the message lists what
        exists), a refused URL (plain http to a remote host, another scheme), a
        malformed manifest.
    DownloadError
        A file is not on the server (HTTP 404 or another 4xx; the message
        names the URL), or the connection failed ``retries + 1`` times (what
        was received stays in ``<file>.part`` and the next call resumes it).
    ChecksumError
        A downloaded file does not match its pinned size or checksum; it was
        removed and nothing was cached.
    OutputError
        The cache directory cannot be created or written.
    DatabaseError
        The release cannot be read (only with ``convert=True``).
"""


def fetch_neurosynth(
    version: int = 7,
    data_dir: str | os.PathLike | None = None,
    *,
    vocab: NeurosynthVocab | None = "terms",
    source: NeurosynthSource = "abstract",
    base_url: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    convert: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> Release:
    """Download (once) and verify a Neurosynth release; convert its coordinates to netCDF (once).

    The files are those of ``neurosynth/neurosynth-data`` (version 7: 14,371
    studies, 507,891 peaks, 4.8 MB of coordinates and metadata; the term
    tf-idf features add the largest file).  Read them with
    ``release.table()`` (the coordinate table, from netCDF) or
    ``xcoact.read_database(release.coordinates)``.  The data are under the
    ODbL licence; cite Yarkoni et al. (2011), Nature Methods 8:665-670.

    Parameters
    ----------
    version : int, default 7
        3 to 7.
    """
    return _fetch(
        "neurosynth",
        version,
        data_dir,
        vocab=vocab,
        source=source,
        base_url=base_url,
        manifest=manifest,
        convert=convert,
        retries=retries,
        timeout=timeout,
        progress=progress,
    )


def fetch_neuroquery(
    version: int = 1,
    data_dir: str | os.PathLike | None = None,
    *,
    vocab: NeuroqueryVocab | None = "neuroquery7547",
    source: NeuroquerySource = "abstract",
    base_url: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    convert: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> Release:
    """Download (once) and verify the NeuroQuery release; convert its coordinates to netCDF (once).

    The files are those of ``neuroquery/neuroquery_data`` (version 1: 13,459
    studies, 469,260 peaks, all MNI; 3.3 MB of coordinates and metadata).
    The coordinates are read by the ``"neuroquery"`` reader (every peak
    ``MNI``).  The data are under the BSD-3-Clause licence; cite Dockès et
    al. (2020), eLife 9:e53385.

    Parameters
    ----------
    version : int, default 1
        The only NeuroQuery release.
    """
    return _fetch(
        "neuroquery",
        version,
        data_dir,
        vocab=vocab,
        source=source,
        base_url=base_url,
        manifest=manifest,
        convert=convert,
        retries=retries,
        timeout=timeout,
        progress=progress,
    )


def _fill(func, dataset: str, vocab: str, sources: str) -> None:
    if func.__doc__ is None:  # python -OO
        return
    spec = _DATASETS[dataset]
    common = _COMMON_DOC.format(
        dataset=dataset, vocab=vocab, sources=sources, repository=spec["repository"], commit=spec["commit"][:7]
    )
    func.__doc__ = func.__doc__.rstrip() + "\n" + common.strip("\n") + "\n"


_fill(
    fetch_neurosynth,
    "neurosynth",
    "terms",
    " (Neurosynth has only 'abstract'); vocabularies: 'terms' "
    "(tf-idf), 'LDA50', 'LDA100', 'LDA200', 'LDA400' (topic weights)",
)
_fill(
    fetch_neuroquery,
    "neuroquery",
    "neuroquery7547",
    ": 'abstract', 'body', 'keywords', 'title' (word counts; "
    "vocabularies 'neuroquery7547' and 'neuroquery156521'), or 'combined' (tf-idf, vocabulary 'neuroquery6308')",
)
