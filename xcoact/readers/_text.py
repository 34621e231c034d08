"""Shared text handling for the readers: opening, decoding, tab-separated tables."""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib

import numpy as np
import pandas as pd

from ..errors import DatabaseError, DatabaseFileError, DatabaseFileNotFoundError

#: What gzip.decompress raises for truncated or corrupt data: BadGzipFile
#: (an OSError) for a bad header, EOFError when truncated, zlib.error for a
#: corrupt deflate stream.
GZIP_ERRORS = (OSError, EOFError, zlib.error)

_BINARY_CHARS = set(range(0, 9)) | {11, 12} | set(range(14, 32))


def check_file(path) -> str:
    """Return the path as str, or raise a clear error if it cannot be read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatabaseFileNotFoundError(
            f"{path}: no such file. Pass the path of a Neurosynth database.txt, a Neurosynth v7 "
            "coordinates .tsv.gz, a Sleuth text file or a NiMARE dataset .json."
        )
    if os.path.isdir(path):
        raise DatabaseFileError(f"{path}: is a directory; expected a database file, e.g. {os.path.join(path, 'database.txt')!r}.")
    if not os.access(path, os.R_OK):
        raise DatabaseFileError(f"{path}: not readable (permission denied); give yourself read access (chmod u+r) or copy the file.")
    return path


def read_text(path: str) -> str:
    """The whole file as text (gzip transparently), UTF-8 with a clear error otherwise."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except GZIP_ERRORS as err:
        raise DatabaseFileError(
            f"{path}: could not be read or decompressed ({'zlib.error' if isinstance(err, zlib.error) else type(err).__name__}: "
            f"{err}); the file may be truncated "
            "or corrupt. Download it again, or check it with 'gzip -t'."
        ) from err
    if not raw.strip():
        raise DatabaseError(
            f"{path}: the file is empty; expected a coordinate database (e.g. a tab-separated header "
            "'id x y z space' and one row per peak). Check that the download or export finished."
        )
    head = raw[:4096]
    if b"\x00" in head or sum(b in _BINARY_CHARS for b in head) > len(head) // 20:
        raise DatabaseError(
            f"{path}: looks like binary data, not a text database. Expected a tab-separated "
            "table, a Sleuth text file or JSON (plain or gzip-compressed)."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DatabaseError(
            f"{path}, line {line}: not valid UTF-8 text (byte 0x{raw[err.start]:02x}). "
            "Re-save the file as UTF-8."
        ) from err
    return text


def parse_tsv(path: str, text: str, required: tuple[str, ...], fmt: str) -> tuple[dict, np.ndarray]:
    """Parse a tab-separated table whose first line is a header.

    Column names are matched case-insensitively.  Returns the required
    columns (as object arrays of stripped strings) and each row's 1-based
    source line.  Blank lines are skipped.
    """
    lines = text.splitlines()
    header = lines[0].split("\t")
    names = [h.strip().lower() for h in header]
    seen: dict[str, int] = {}
    for pos, name in enumerate(names):
        if name in seen:
            raise DatabaseError(
                f"{path}, line 1: duplicate column {header[pos].strip()!r} (columns {seen[name] + 1} and "
                f"{pos + 1}); each column name must appear once. Rename or remove one of them."
            )
        seen[name] = pos
    missing = [c for c in required if c not in seen]
    if missing:
        hint = ""
        if len(header) == 1 and ("," in header[0] or ";" in header[0] or " " in header[0].strip()):
            hint = " The header has no tab: the file seems to use another delimiter; it must be tab-separated."
        raise DatabaseError(
            f"{path}, line 1: missing column(s) {', '.join(repr(m) for m in missing)} for the {fmt} format; "
            f"found {[h.strip() for h in header]}, expected at least {list(required)} (any case).{hint}"
        )
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep="\t",
            header=0,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            usecols=[seen[c] for c in required],
            quoting=3,  # csv.QUOTE_NONE: quotes are data in these files
        )
    except (pd.errors.ParserError, ValueError) as err:
        msg = str(err)
        m = re.search(r"line (\d+)", msg)
        where = f", line {m.group(1)}" if m else ""
        raise DatabaseError(f"{path}{where}: malformed row ({msg}). Every row needs the header's columns, tab-separated.") from err
    frame.columns = [names[i] for i in sorted(seen[c] for c in required)]
    cols = {c: frame[c].fillna("").str.strip() for c in required}
    lineno = np.arange(2, len(frame) + 2, dtype=np.int64)
    keep = ~np.logical_and.reduce([cols[c].eq("").to_numpy() for c in required])
    return {c: cols[c].to_numpy(dtype=object)[keep] for c in required}, lineno[keep]


def parse_numbers(path: str, cols: dict, names: tuple[str, ...], lines: np.ndarray) -> list[np.ndarray]:
    """Convert columns to float64, reporting every non-numeric or non-finite cell at once.

    The message counts every bad row and value and names the first ten by
    line and column.
    """
    out = []
    problems = []
    n_values = 0
    bad_rows = np.zeros(len(lines), dtype=bool)
    for name in names:
        values = pd.to_numeric(pd.Series(cols[name]), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        n_values += int(bad.sum())
        bad_rows |= bad
        for row in np.flatnonzero(bad)[:10]:
            problems.append((int(lines[row]), names.index(name), name, cols[name][row]))
        out.append(values)
    if problems:
        problems.sort()
        n_rows = int(bad_rows.sum())
        shown = "; ".join(f"line {ln} column {c}: {v!r}" if v else f"line {ln} column {c}: empty" for ln, _, c, v in problems[:10])
        more = f"; and {n_values - 10} more value(s) not shown" if n_values > 10 else ""
        raise DatabaseError(
            f"{path}: {n_rows} row(s) with a non-numeric, NaN or infinite coordinate - {shown}{more}. "
            "x, y and z must be finite numbers in mm; fix or delete those rows."
        )
    return out
