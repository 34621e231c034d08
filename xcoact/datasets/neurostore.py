"""Download NeuroStore studysets (NIMADS JSON), cache them, and keep a checksum on record.

Studysets are edited in place, so no checksum can be pinned in advance: :func:`fetch_neurostore` records the
sha256 of what it downloaded beside the file (``studyset-<id>.record.json``), checks the cached file against
that record on every later call, and downloads through the transfer of :mod:`xcoact.datasets.fetch`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import re
import urllib.parse

from .. import validate
from .._version import __version__
from ..errors import DownloadError, ParameterError
from . import fetch as _fetch

__all__ = ["fetch_neurostore", "NeurostoreStudyset", "NEUROSTORE_API"]

logger = logging.getLogger(__name__)

#: NeuroStore's API root; a studyset is at ``<root>/studysets/<id>?nested=true``.
NEUROSTORE_API = "https://neurostore.org/api"

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RECORD_KEYS = ("studyset_id", "url", "sha256", "size", "retrieved", "xcoact")


@dataclasses.dataclass(frozen=True)
class NeurostoreStudyset:
    """A downloaded NeuroStore studyset in the cache.

    ``file`` is the NIMADS JSON; ``record`` the JSON record beside it (its
    ``sha256``, ``size``, ``url`` and ``retrieved`` time, UTC), whose values
    are also attributes here.
    """

    studyset_id: str
    file: str
    record: str
    sha256: str
    size: int
    url: str
    retrieved: str

    def table(self):
        """The coordinate table of the studyset (:func:`xcoact.read_database` with ``format="nimads"``)."""
        from ..readers import read_database

        return read_database(self.file, format="nimads")


def _read_record(path: str) -> dict | None:
    """The record beside a cached studyset; None when it is missing or unreadable (then the file is fetched again)."""
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(k not in record for k in _RECORD_KEYS):
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", str(record["sha256"])):
        return None
    return record


def _check_pin(sha256) -> str | None:
    if sha256 is None:
        return None
    text = str(sha256).lower()
    text = text[len("sha256:") :] if text.startswith("sha256:") else text
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ParameterError(
            f"sha256={sha256!r} is not valid; expected 64 hex digits (optionally prefixed 'sha256:') or None."
        )
    return text


def _studyset_url(base, studyset_id: str) -> tuple[str, str]:
    """(kind, where): ``("url", <root>/studysets/<id>?nested=true)`` or ``("file", <dir>/studysets/<id>.json)``."""
    if base is None:
        return "url", f"{NEUROSTORE_API}/studysets/{urllib.parse.quote(studyset_id)}?nested=true"
    kind, root = _fetch._resolve_base(base)
    assert root is not None  # a base was given, so it has a root
    if kind == "dir":
        return "file", os.path.join(root, "studysets", f"{studyset_id}.json")
    return "url", f"{root}/studysets/{urllib.parse.quote(studyset_id)}?nested=true"


def _check_studyset(path: str, where: str) -> None:
    """Refuse a download that is not a NIMADS studyset (an error page served with status 200, ...)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        raise DownloadError(
            f"{where}: the answer is not JSON ({type(err).__name__}: {err}); expected a NIMADS "
            "studyset. Nothing was cached."
        ) from err
    if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
        found = f"keys {sorted(data)[:8]}" if isinstance(data, dict) else type(data).__name__
        raise DownloadError(
            f"{where}: the answer is JSON with {found}, not a NIMADS studyset (no 'studies' list). "
            "Check the studyset id and base_url. Nothing was cached."
        )


def fetch_neurostore(
    studyset_id: str,
    data_dir: str | os.PathLike | None = None,
    *,
    base_url: str | os.PathLike | None = None,
    sha256: str | None = None,
    refresh: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
) -> NeurostoreStudyset:
    """Download (once) a NeuroStore studyset as NIMADS JSON and record its checksum.

    Parameters
    ----------
    studyset_id : str
        The studyset's NeuroStore id (letters, digits, ``_`` and ``-``), as in
        ``https://neurostore.org/api/studysets/<id>``.
    data_dir : str or path-like, optional
        Cache root; the files go to ``<data_dir>/neurostore/``.  Default:
        ``$XCOACT_DATA``, else ``$XDG_CACHE_HOME/xcoact``, else ``~/.cache/xcoact``.
    base_url : str or path-like, optional
        Another API root serving ``<base_url>/studysets/<id>?nested=true`` (an
        ``https://`` URL, or ``http://`` on a loopback host), or a local
        directory holding ``studysets/<id>.json``.  Default: NeuroStore's
        ``https://neurostore.org/api``.
    sha256 : str, optional
        The content to expect (64 hex digits): a download that differs is an
        error and nothing is cached.
    refresh : bool, default False
        Download again even when the cached copy matches its record (the
        studyset may have been edited since).  The cached copy is replaced
        only by a complete, valid download.
    retries : int, default 3
        Retries of a dropped connection, timeout or 5xx answer (waiting 1, 2,
        4, ... s).
    timeout : float, default 60
        Seconds without data after which a connection counts as dropped.

    Returns
    -------
    NeurostoreStudyset
        ``.file`` (the JSON), ``.sha256``, ``.url``, ``.retrieved`` and
        ``.table()``, the coordinate table.

    Raises
    ------
    ParameterError
        A bad id, checksum or argument, or a refused URL.
    DownloadError
        Not found (HTTP 404; the message names the URL), the connection kept
        failing, or the answer is not a NIMADS studyset.
    ChecksumError
        The download does not match ``sha256``.
    OutputError
        The cache directory cannot be created or written.

    Examples
    --------
    >>> import xcoact
    >>> studyset = xcoact.datasets.fetch_neurostore("Cv2LLUqG76W9")  # doctest: +SKIP
    >>> db = studyset.table()                                        # doctest: +SKIP
    """
    if not isinstance(studyset_id, str) or not _ID.fullmatch(studyset_id):
        raise ParameterError(
            f"studyset_id={studyset_id!r} is not valid; expected a NeuroStore id of letters, digits, '_' and '-' "
            "(e.g. 'Cv2LLUqG76W9')."
        )
    pin = _check_pin(sha256)
    retries = validate.integer(retries, "retries", 0)
    _fetch._check_timeout(timeout)
    if not isinstance(refresh, bool):
        raise ParameterError(f"refresh={refresh!r} is not valid; expected True or False.")
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ParameterError(f"data_dir={data_dir!r} is not valid; expected a directory path (or None).")
    kind, where = _studyset_url(base_url, studyset_id)
    root = _fetch.default_data_dir() if data_dir is None else os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    directory = _fetch._make_cache_dir(os.path.join(root, "neurostore"))
    path = os.path.join(directory, f"studyset-{studyset_id}.json")
    record_path = os.path.join(directory, f"studyset-{studyset_id}.record.json")
    with _fetch._locked(directory):
        record = _read_record(record_path)
        if record is not None and os.path.isfile(path) and not refresh:
            got = _fetch._sha256(path)
            if got == record["sha256"] and (pin is None or got == pin):
                return _studyset(studyset_id, path, record_path, record)
            if got != record["sha256"]:
                logger.warning(
                    "xcoact: %s is sha256:%s, but its record says sha256:%s; fetching it again",
                    path,
                    got,
                    record["sha256"],
                )
        staged = path + ".new"
        entry = _fetch.ManifestEntry("neurostore", f"studysets/{studyset_id}", None, None, pin)
        try:
            _fetch._download(kind, where, staged, entry, retries=retries, timeout=float(timeout))
            _check_studyset(staged, where)
        except BaseException:
            _fetch._remove(staged)
            raise
        record = {
            "studyset_id": studyset_id,
            "url": where,
            "sha256": _fetch._sha256(staged),
            "size": os.path.getsize(staged),
            "retrieved": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "xcoact": __version__,
        }
        from ..writers import write_atomically

        # the record goes first: a crash between the two renames leaves a file that fails its record (fetched again)
        write_atomically({record_path: lambda tmp: _write_json(tmp, record)})
        os.replace(staged, path)
    return _studyset(studyset_id, path, record_path, record)


def _write_json(path: str, record: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
        fh.write("\n")


def _studyset(studyset_id: str, path: str, record_path: str, record: dict) -> NeurostoreStudyset:
    return NeurostoreStudyset(
        studyset_id,
        path,
        record_path,
        str(record["sha256"]),
        int(record["size"]),
        str(record["url"]),
        str(record["retrieved"]),
    )
