"""Readers (and writers): one module per database format, all returning the coordinate table.

The contract every reader meets is documented in :mod:`xcoact.table`.
:func:`write_database` writes a table back in any of the formats.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from ..errors import DatabaseError, ParameterError
from ._text import check_file, is_regular_file, preloaded, read_bytes
from .neuroquery import read_neuroquery, write_neuroquery
from .neurosynth import read_neurosynth, read_neurosynth_v7, write_neurosynth, write_neurosynth_v7
from .nimads import read_nimads, write_nimads
from .nimare import read_nimare_json, write_nimare_json
from .objects import as_table
from .sleuth import read_sleuth, write_sleuth

__all__ = ["read_database", "sniff_format", "write_database", "as_table", "FORMATS", "WRITERS"]

Format = Literal["neurosynth", "neurosynth-v7", "sleuth", "nimare-json", "neuroquery", "nimads"]

FORMATS = {
    "neurosynth": read_neurosynth,
    "neurosynth-v7": read_neurosynth_v7,
    "sleuth": read_sleuth,
    "nimare-json": read_nimare_json,
    "neuroquery": read_neuroquery,
    "nimads": read_nimads,
}

WRITERS = {
    "neurosynth": write_neurosynth,
    "neurosynth-v7": write_neurosynth_v7,
    "sleuth": write_sleuth,
    "nimare-json": write_nimare_json,
    "neuroquery": write_neuroquery,
    "nimads": write_nimads,
}


def _head(path: str, n: int = 2048) -> bytes:
    """The first ``n`` (decompressed) bytes; the raw bytes when the gzip stream is corrupt."""
    try:
        return bytes(read_bytes(path, head_only=True)[:n])
    except DatabaseError:  # corrupt gzip: the reader's read_text names it
        with open(path, "rb") as fh:
            return fh.read(n)


#: The first key of a JSON object.
_FIRST_JSON_KEY = re.compile(rb'\{\s*"((?:[^"\\]|\\.)*)"\s*:')
#: Top-level keys of a NIMADS studyset (NeuroStore writes "id" first); a NiMARE dataset's keys are study ids.
_NIMADS_KEYS = frozenset(
    b"id name studies description user publication doi pmid created_at updated_at authors metadata source "
    b"source_id".split()
)


def sniff_format(path) -> Format:
    """Guess a database file's format from its first bytes.

    A JSON object whose first key is one of a NIMADS studyset's (``"id"``,
    ``"name"``, ``"studies"``...) is a NIMADS studyset; other JSON (an object
    of study objects, or a stray array whose reader then names the schema
    error) is a NiMARE dataset; a first line starting with ``//`` is
    Sleuth; a tab-separated header with ``table_name`` and no ``peak_id`` is
    NeuroQuery; one with ``table_id`` or ``peak_id`` is the v7
    split release; anything else is read as a Neurosynth ``database.txt``
    (whose reader then names what is missing).

    A pipe or FIFO is consumed by sniffing; :func:`read_database` reads such
    a file once and sniffs and parses that content.
    """
    path = check_file(path)
    head = _head(path).lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith((b"{", b"[")):
        first = _FIRST_JSON_KEY.match(head)
        if first is not None and first.group(1) in _NIMADS_KEYS:
            return "nimads"
        return "nimare-json"
    if head.startswith(b"//"):
        return "sleuth"
    header = head.split(b"\n", 1)[0].lower()
    cols = [c.strip() for c in header.split(b"\t")]
    if b"table_name" in cols and b"peak_id" not in cols:
        return "neuroquery"
    if b"table_id" in cols or b"peak_id" in cols:
        return "neurosynth-v7"
    return "neurosynth"


def read_database(path, format: Format | None = None):
    """Read a coordinate database into the coordinate table.

    Parameters
    ----------
    path : str, path-like, or an in-memory database
        A Neurosynth ``database.txt``, a Neurosynth v7 coordinates file
        (``*_coordinates.tsv.gz``, with its ``*_metadata.tsv.gz`` beside it for
        the space), a NeuroQuery coordinates file (all MNI), a Sleuth text
        file, a NiMARE dataset JSON or a NIMADS studyset JSON (NeuroStore).
        Gzip is handled transparently.  A pipe or FIFO (``<(zcat db.gz)``) is
        read once, whole, then sniffed and parsed; binary data is refused after
        its first 4 kB.  Or an object already in memory: a NiMARE ``Dataset``
        or ``Studyset``, a coordinates ``pandas.DataFrame`` (NiMARE's
        ``dset.coordinates``) or a NIMADS dict; see
        :func:`xcoact.readers.objects.as_table` (``format`` does not apply to them).
    format : {"neurosynth", "neurosynth-v7", "sleuth", "nimare-json", "neuroquery", "nimads"}, optional
        Skip sniffing and use this reader.

    Returns
    -------
    xarray.Dataset
        The coordinate table (dimension ``peak``; see :mod:`xcoact.table`).
        Talairach coordinates are already moved to MNI.  Reading is eager: the
        whole file is parsed (about 2 s for Neurosynth v7's 507,891 peaks).

    Raises
    ------
    DatabaseFileNotFoundError
        The file does not exist.
    DatabaseError
        The file cannot be parsed; the message names the file, the line and
        what would be valid.

    Examples
    --------
    >>> import warnings, xcoact
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     db = xcoact.read_database(xcoact.datasets.sample_database_path())
    >>> db.attrs["n_studies"], db.attrs["n_peaks"]
    (100, 2695)
    >>> str(caught[0].message).split(": ", 1)[1].split(";")[0]
    "unknown space label(s) 'UNKNOWN': 210 row(s)"
    """
    if not isinstance(path, (str, os.PathLike)):
        if format is not None:
            raise ParameterError(
                f"format={format!r} applies to files; a {type(path).__name__} is read as it is (pass format=None)."
            )
        return as_table(path)
    path = check_file(path)
    if format is not None and format not in FORMATS:
        raise ParameterError(f"format={format!r} is not a known database format; expected one of {sorted(FORMATS)}.")
    if is_regular_file(path):
        return FORMATS[format or sniff_format(path)](path)
    # a pipe, FIFO or device can be read once: read it whole (binary data is refused after its
    # first bytes), then sniff and parse that content, so no byte is lost to the sniffing
    with preloaded(path, read_bytes(path)):
        return FORMATS[format or sniff_format(path)](path)


def write_database(table, path: str | os.PathLike, format: Format = "neurosynth", *, overwrite: bool = False) -> str:
    """Write a coordinate table in one of the formats :func:`read_database` reads.

    Parameters
    ----------
    table : xarray.Dataset
        A coordinate table (see :mod:`xcoact.table`), e.g. from
        :func:`read_database` or :func:`xcoact.datasets.synthetic`.
    path : str or path-like
        The file to write; gzip-compressed when it ends in ``.gz``.  For
        ``"neurosynth-v7"`` it must end in ``_coordinates.tsv[.gz]`` and the
        metadata is written beside it.
    format : {"neurosynth", "neurosynth-v7", "sleuth", "nimare-json", "neuroquery"}, default "neurosynth"
        ``neurosynth``: TSV ``id x y z space``.  ``neurosynth-v7``: coordinates
        TSV ``id table_id table_num peak_id x y z`` plus a metadata TSV
        ``id doi space title authors year journal``.  ``sleuth``: Sleuth text,
        for tables that are all MNI or all Talairach.  ``nimare-json``: NiMARE
        dataset JSON, one contrast ``"1"`` per study.  ``neuroquery``: TSV
        ``id table_id table_name x y z`` in MNI, for tables whose rows are MNI
        or Talairach (read back as ``MNI``).
    overwrite : bool, default False
        Replace existing files; otherwise an existing file is an error.

    Returns
    -------
    str
        The path written.

    Notes
    -----
    Reading the file back gives the same coordinates (exactly: they are
    written as ``repr(float)``; Talairach rows, moved back to Talairach for
    the file and rounded to 1e-10 mm, to < 1e-9 mm), study ids and space labels, except that NiMARE
    JSON renames study ``s`` to ``"s-1"`` and Sleuth reads labels back as
    ``MNI``/``TAL``.  Each file is written to a temporary file beside it and
    renamed into place, so an error leaves no partial file.

    Raises
    ------
    ParameterError
        Unknown format, a table that is not a coordinate table, or one the
        format cannot hold (see each writer), including study ids or space
        labels that are empty or start or end with white space (readers
        strip cells, so they would not come back as they are).
    OutputError
        The file exists and ``overwrite`` is False, or writing failed.

    Examples
    --------
    >>> import os, tempfile, xcoact
    >>> from xcoact.readers import read_database, write_database
    >>> db = xcoact.datasets.synthetic(5, seed=1)
    >>> path = write_database(db, os.path.join(tempfile.mkdtemp(), "database.txt"))
    >>> back = read_database(path)
    >>> bool((back.x == db.x).all()), back.attrs["n_studies"]
    (True, 5)
    """
    if format not in WRITERS:
        raise ParameterError(f"format={format!r} is not a known database format; expected one of {sorted(WRITERS)}.")
    return WRITERS[format](table, path, overwrite=overwrite)
