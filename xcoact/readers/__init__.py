"""Readers: one module per database format, all returning the coordinate table.

The contract every reader meets is documented in :mod:`xcoact.table`.
"""

from __future__ import annotations

import gzip
import os
from typing import Literal

from ..errors import ParameterError
from ._text import GZIP_ERRORS, check_file
from .neurosynth import read_neurosynth, read_neurosynth_v7
from .nimare import read_nimare_json
from .sleuth import read_sleuth

__all__ = ["read_database", "sniff_format", "FORMATS"]

Format = Literal["neurosynth", "neurosynth-v7", "sleuth", "nimare-json"]

FORMATS = {
    "neurosynth": read_neurosynth,
    "neurosynth-v7": read_neurosynth_v7,
    "sleuth": read_sleuth,
    "nimare-json": read_nimare_json,
}


def _head(path: str, n: int = 2048) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(n)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                raw = fh.read(n)
        except GZIP_ERRORS:
            return raw  # the reader's read_text names the corrupt file
    return raw


def sniff_format(path) -> Format:
    """Guess a database file's format from its first bytes.

    JSON (an object, or a stray array whose reader then names the schema
    error) is a NiMARE dataset; a first line starting with ``//`` is
    Sleuth; a tab-separated header with ``table_id`` or ``peak_id`` is the v7
    split release; anything else is read as a Neurosynth ``database.txt``
    (whose reader then names what is missing).
    """
    path = check_file(path)
    head = _head(path).lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith((b"{", b"[")):
        return "nimare-json"
    if head.startswith(b"//"):
        return "sleuth"
    first = head.split(b"\n", 1)[0].lower()
    cols = [c.strip() for c in first.split(b"\t")]
    if b"table_id" in cols or b"peak_id" in cols:
        return "neurosynth-v7"
    return "neurosynth"


def read_database(path: str | os.PathLike, format: Format | None = None):
    """Read a coordinate database into the coordinate table.

    Parameters
    ----------
    path : str or path-like
        A Neurosynth ``database.txt``, a Neurosynth v7 coordinates file
        (``*_coordinates.tsv.gz``, with its ``*_metadata.tsv.gz`` beside it for
        the space), a Sleuth text file or a NiMARE dataset JSON.  Gzip is
        handled transparently.
    format : {"neurosynth", "neurosynth-v7", "sleuth", "nimare-json"}, optional
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
    path = check_file(path)
    if format is None:
        format = sniff_format(path)
    if format not in FORMATS:
        raise ParameterError(f"format={format!r} is not a known database format; expected one of {sorted(FORMATS)}.")
    return FORMATS[format](path)
