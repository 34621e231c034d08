"""NeuroQuery's coordinate release (``data-neuroquery_version-1_coordinates.tsv.gz``): read and write.

The NeuroQuery v1 release (neuroquery/neuroquery_data) splits its data like
Neurosynth v7, but its coordinates TSV has the columns
``id table_id table_name x y z`` and no space anywhere: every coordinate is
in MNI space (NeuroQuery moved Talairach reports to MNI before publishing),
and its metadata holds only ``id`` and ``title``.  Unlike Neurosynth's
files, a cell may be quoted and may hold a line break (``"Table\\n1"``, four
rows of the real release), so this reader parses CSV quoting.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pandas as pd

from ..errors import DatabaseError, ParameterError, quote
from ..table import MNI_LABELS, TAL_LABELS, make_table
from ._text import (
    check_header,
    check_table,
    check_text_ids,
    format_floats,
    id_array,
    id_text,
    malformed_row,
    parse_numbers,
    read_text,
    row_chunks,
    space_labels,
    write_files,
)

#: The header of NeuroQuery v1's coordinates file.
NEUROQUERY_HEADER = ("id", "table_id", "table_name", "x", "y", "z")
REQUIRED = ("id", "x", "y", "z")


def _header(path: str, text: str) -> list[str]:
    """Lower-cased column names of the (unquoted) header line, refusing duplicates and missing columns."""
    header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    example = f", as in {'  '.join(NEUROQUERY_HEADER)!r}"
    return check_header(path, header, REQUIRED, "NeuroQuery", example)[0]


def read_neuroquery(path: str):
    """Read a NeuroQuery coordinates TSV (``id table_id table_name x y z``; all MNI).

    Cells may be quoted (CSV rules, ``""`` for a quote) and a quoted cell may
    span lines; each row's ``line`` is the line it starts on.  Every peak is
    labelled ``MNI``.  Extra columns are ignored, as by the other readers.
    """
    text = read_text(path)
    names = _header(path, text)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep="\t",
            header=0,
            names=names,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            quoting=csv.QUOTE_MINIMAL,
            quotechar='"',
            doublequote=True,
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise malformed_row(path, err, " (a cell holding a tab, a line break or a quote must be quoted)") from err
    # a quoted cell holding line breaks shifts the lines of every later row
    breaks = np.zeros(len(frame), dtype=np.int64)
    for col in frame.columns:
        breaks += frame[col].str.count("\n").to_numpy(dtype=np.int64)
    lines = 2 + np.arange(len(frame), dtype=np.int64) + np.concatenate([[0], np.cumsum(breaks)[:-1]]).astype(np.int64)
    cols = {c: frame[c].str.strip().to_numpy(dtype=object) for c in REQUIRED}
    keep = ~np.logical_and.reduce([frame[c].str.strip().eq("").to_numpy() for c in frame.columns])  # blank lines
    cols = {c: v[keep] for c, v in cols.items()}
    lines = lines[keep]
    empty_id = np.flatnonzero(cols["id"] == "")
    if empty_id.size:
        shown = ", ".join(str(ln) for ln in lines[empty_id[:10]])
        raise DatabaseError(
            f"{path}: {empty_id.size} row(s) have an empty id (line(s) {shown}); every peak needs its study id."
        )
    x, y, z = parse_numbers(path, cols, ("x", "y", "z"), lines)
    space = pd.Categorical.from_codes(np.zeros(len(x), dtype=np.int8), categories=["MNI"])
    return make_table(cols["id"], x, y, z, space, database=path, fmt="neuroquery", lines=lines)


def write_neuroquery(table, path, *, overwrite: bool = False) -> str:
    """Write a coordinate table as a NeuroQuery coordinates TSV that :func:`read_neuroquery` reads back.

    The header is ``id table_id table_name x y z``; ``table_id`` and
    ``table_name``, which a coordinate table does not hold, are ``n/a``.
    The format has no space column (NeuroQuery is all MNI), so the table's
    MNI coordinates are written: rows labelled MNI or Talairach (already moved
    to MNI by the reader) are accepted and read back labelled ``MNI``; rows
    with any other label are refused, since the file would claim an MNI space
    they do not have.  Coordinates are written as ``repr(float)`` (exact).
    Gzip-compressed when ``path`` ends in ``.gz``; written atomically.

    Parameters
    ----------
    table : xarray.Dataset
        A coordinate table (see :mod:`xcoact.table`).
    path : str or path-like
    overwrite : bool, default False
        Replace an existing file; otherwise an existing file is an error.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    ParameterError
        A row's space label is neither MNI nor Talairach, or a study id holds a
        tab or a line break.
    OutputError
        The file exists and ``overwrite`` is False, or writing failed.
    """
    path = os.fspath(path)
    n = check_table(table, "NeuroQuery")
    labels, counts = np.unique(space_labels(table), return_counts=True)
    other = [
        (str(lab), int(c)) for lab, c in zip(labels, counts) if str(lab).strip().upper() not in MNI_LABELS | TAL_LABELS
    ]
    if other:
        desc = ", ".join(f"{quote(lab)}: {c} row(s)" for lab, c in other)
        raise ParameterError(
            f"table: space label(s) {desc} cannot be written as NeuroQuery, whose coordinates are all MNI. "
            "Write the 'neurosynth' or 'neurosynth-v7' format, which keep the labels, or drop those rows."
        )
    ids = id_array(table)
    check_text_ids(ids, "NeuroQuery", '\t\n\r"')  # a leading quote would start a quoted cell
    xyz = np.column_stack([np.asarray(table[v].values, dtype=np.float64) for v in ("x", "y", "z")])

    def write(fh):
        fh.write("\t".join(NEUROQUERY_HEADER) + "\n")
        for sl in row_chunks(n):
            cols = (id_text(ids[sl]), *(format_floats(xyz[sl, a]) for a in range(3)))
            fh.write("".join(f"{i}\tn/a\tn/a\t{x}\t{y}\t{z}\n" for i, x, y, z in zip(*cols)))

    write_files({path: write}, overwrite=overwrite)
    return path
