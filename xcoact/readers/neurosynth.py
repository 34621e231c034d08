"""Neurosynth databases: the classic ``database.txt`` and the v7 split release (read and write)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

from ..errors import (
    DatabaseError,
    EmptyStudyWarning,
    MixedSpaceWarning,
    OutputError,
    ParameterError,
    SpaceWarning,
    caller_stacklevel,
    quote,
)
from ..table import make_table
from ._text import (
    check_cells,
    check_file,
    check_table,
    check_text_ids,
    check_unpadded,
    format_floats,
    id_array,
    id_text,
    parse_numbers,
    parse_tsv,
    read_text,
    row_chunks,
    source_xyz,
    space_labels,
    studies_with_one_space,
    write_files,
)

CLASSIC_COLUMNS = ("id", "x", "y", "z", "space")
V7_COLUMNS = ("id", "x", "y", "z")


def read_neurosynth(path: str):
    """Read a Neurosynth ``database.txt`` (TSV: ``id x y z space``, any case, extra columns ignored).

    Matches the table Neurosynth 0.3.8's ``Dataset`` builds from the same file.
    """
    cols, lines = parse_tsv(path, read_text(path), CLASSIC_COLUMNS, "Neurosynth database.txt", numeric=("x", "y", "z"))
    cols, lines = _drop_rows_without_peaks(path, cols, lines)
    x, y, z = parse_numbers(path, cols, ("x", "y", "z"), lines)
    return make_table(cols["id"], x, y, z, cols["space"], database=path, fmt="neurosynth", lines=lines)


def metadata_path(coordinates_path: str) -> str | None:
    """The v7 metadata file that sits beside a coordinates file, if any."""
    base = os.path.basename(coordinates_path)
    for suffix in (".tsv.gz", ".tsv"):
        cand = base.replace("_coordinates" + suffix, "_metadata" + suffix)
        if cand != base:
            for ext in (".tsv.gz", ".tsv"):
                full = os.path.join(os.path.dirname(coordinates_path), cand[: -len(suffix)] + ext)
                if os.path.exists(full):
                    return full
    return None


def read_neurosynth_v7(path: str, metadata: str | None = None):
    """Read the Neurosynth v7 (or NeuroQuery) split release.

    The coordinates TSV (``id table_id table_num peak_id x y z``) carries no
    space; it comes from the metadata TSV beside it (``id doi space ...``).
    Without a metadata file every peak is taken as MNI, with a warning.
    """
    cols, lines = parse_tsv(path, read_text(path), V7_COLUMNS, "Neurosynth v7 coordinates", numeric=("x", "y", "z"))
    cols, lines = _drop_rows_without_peaks(path, cols, lines)
    x, y, z = parse_numbers(path, cols, ("x", "y", "z"), lines)
    metadata = metadata or metadata_path(path)
    if metadata is None:
        warnings.warn(
            f"{path}: no metadata file beside it (expected '*_metadata.tsv.gz' with an 'id' and a "
            "'space' column); every peak is taken as MNI.",
            SpaceWarning,
            stacklevel=caller_stacklevel(),
        )
        space = np.full(len(x), "MNI", dtype=object)
    else:
        metadata = check_file(metadata)
        meta, meta_lines = parse_tsv(metadata, read_text(metadata), ("id", "space"), "Neurosynth v7 metadata")
        lookup = _space_lookup(metadata, meta, meta_lines)
        ids = pd.Categorical(cols["id"])  # one lookup per study, not per peak
        missing = sorted(i for i in ids.categories if i not in lookup)
        if missing:
            raise DatabaseError(
                f"{metadata}: {len(missing)} study id(s) of {path} have no metadata row (e.g. "
                f"[{', '.join(quote(m) for m in missing[:5])}]); "
                "each study needs its space. Use the metadata file of the same release."
            )
        space = np.asarray([lookup[i] for i in ids.categories], dtype=object)[ids.codes]
    return make_table(cols["id"], x, y, z, space, database=path, fmt="neurosynth-v7", lines=lines)


def _drop_rows_without_peaks(path: str, cols: dict, lines: np.ndarray) -> tuple[dict, np.ndarray]:
    """Leave out, with an EmptyStudyWarning, rows that name a study but give no x, y and z at all; a row with
    coordinates but no study id is an error (one with only some coordinates is :func:`parse_numbers`'s)."""
    if all(isinstance(cols[c], np.ndarray) and cols[c].dtype == np.float64 for c in "xyz"):
        return cols, lines  # the fast pass parsed every coordinate: none is blank
    blank = np.logical_and.reduce([np.asarray(cols[c], dtype=object) == "" for c in "xyz"])
    ids = np.asarray(cols["id"], dtype=object)
    no_id = np.flatnonzero((ids == "") & ~blank)
    if no_id.size:
        shown = ", ".join(str(int(ln)) for ln in lines[no_id[:10]])
        more = f" and {no_id.size - 10} more" if no_id.size > 10 else ""
        raise DatabaseError(
            f"{path}: {no_id.size} row(s) have coordinates but an empty 'id' (line(s) {shown}{more}); every peak "
            "needs the id of its study. Fill in the ids or delete those rows."
        )
    if not blank.any():
        return cols, lines
    rows = np.flatnonzero(blank)
    kept_ids = set(ids[~blank].tolist())
    lonely = list(dict.fromkeys(i for i in ids[rows].tolist() if i not in kept_ids))
    shown = "; ".join(f"line {int(lines[r])}: study {quote(ids[r])}" for r in rows[:5])
    more = f"; and {rows.size - 5} more" if rows.size > 5 else ""
    eg = f" (e.g. [{', '.join(quote(i) for i in lonely[:5])}])" if lonely else ""
    warnings.warn(
        f"{path}: {rows.size} row(s) name a study but have no x, y or z ({shown}{more}); they were left out, "
        f"so {len(lonely)} stud(y/ies) without any other peak are not in the table{eg}. "
        "Fill in the coordinates or delete those rows.",
        EmptyStudyWarning,
        stacklevel=caller_stacklevel(),
    )
    keep = ~blank
    return {c: np.asarray(v, dtype=object)[keep] for c, v in cols.items()}, lines[keep]


def _space_lookup(metadata: str, meta: dict, meta_lines: np.ndarray) -> dict:
    """Each study id's space from the v7 metadata; the first row wins (a MixedSpaceWarning when they differ)."""
    lookup: dict = {}
    first_line: dict = {}
    conflicts: dict = {}
    for sid, space, ln in zip(meta["id"].tolist(), meta["space"].tolist(), meta_lines.tolist()):
        if sid not in lookup:
            lookup[sid], first_line[sid] = space, ln
        elif space != lookup[sid]:
            conflicts.setdefault(sid, [(first_line[sid], lookup[sid])]).append((ln, space))
    if conflicts:
        shown = "; ".join(
            f"study {quote(sid)}: " + ", ".join(f"line {ln} {quote(sp)}" for ln, sp in rows)
            for sid, rows in list(conflicts.items())[:5]
        )
        more = f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        warnings.warn(
            f"{metadata}: {len(conflicts)} study id(s) are listed more than once with different spaces "
            f"({shown}{more}); the first row's space was used for all of the study's peaks. Keep one "
            "metadata row per study.",
            MixedSpaceWarning,
            stacklevel=caller_stacklevel(),
        )
    return lookup


_TSV_FORBIDDEN = "\t\n\r"


def _checked_columns(table, fmt: str):
    n = check_table(table, fmt)
    ids = id_array(table)
    check_text_ids(ids, fmt, _TSV_FORBIDDEN)
    labels = space_labels(table)
    check_cells(np.unique(labels).tolist(), "space label", fmt, _TSV_FORBIDDEN)
    check_unpadded(np.unique(labels).tolist(), "space label", fmt)
    return n, ids, labels


def write_neurosynth(table, path, *, overwrite: bool = False) -> str:
    """Write a coordinate table as a Neurosynth ``database.txt`` (TSV ``id x y z space``).

    Rows keep the table's order; coordinates are written as ``repr(float)``
    (exact), Talairach rows moved back to Talairach (see
    :func:`~xcoact.readers._text.source_xyz`), so :func:`read_neurosynth` gives
    the table's ids, spaces and coordinates back (Talairach rows to < 1e-9 mm).
    Gzip-compressed when ``path`` ends in ``.gz``.  Written atomically.

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
    """
    path = os.fspath(path)
    n, ids, labels = _checked_columns(table, "Neurosynth database.txt")
    xyz = source_xyz(table)

    def write(fh):
        fh.write("id\tx\ty\tz\tspace\n")
        for sl in row_chunks(n):
            cols = (id_text(ids[sl]), *(format_floats(xyz[sl, a]) for a in range(3)), labels[sl].tolist())
            fh.write("".join(f"{i}\t{x}\t{y}\t{z}\t{sp}\n" for i, x, y, z, sp in zip(*cols)))

    write_files({path: write}, overwrite=overwrite)
    return path


V7_COORDINATE_HEADER = ("id", "table_id", "table_num", "peak_id", "x", "y", "z")
V7_METADATA_HEADER = ("id", "doi", "space", "title", "authors", "year", "journal")


def v7_metadata_path(coordinates_path: str) -> str:
    """The metadata file written beside a v7 coordinates file (``*_coordinates.tsv[.gz]``)."""
    path = os.fspath(coordinates_path)
    for suffix in ("_coordinates.tsv.gz", "_coordinates.tsv"):
        if os.path.basename(path).endswith(suffix):
            return path[: -len(suffix)] + suffix.replace("_coordinates", "_metadata")
    raise ParameterError(
        f"path={path!r} is not a Neurosynth v7 coordinates file name; it must end with '_coordinates.tsv' or "
        "'_coordinates.tsv.gz' (the metadata is written beside it as '*_metadata.tsv[.gz]'), e.g. "
        "'mydb_coordinates.tsv.gz'."
    )


def write_neurosynth_v7(table, path, *, overwrite: bool = False) -> str:
    """Write a coordinate table as a Neurosynth v7 split release: coordinates and metadata TSVs.

    ``path`` must end with ``_coordinates.tsv`` or ``_coordinates.tsv.gz``
    (gzip-compressed when it ends in ``.gz``); the metadata file
    (``id doi space title authors year journal``, one row per study) is
    written beside it as ``*_metadata.tsv[.gz]``, where
    :func:`read_neurosynth_v7` looks for it.  The coordinates file
    (``id table_id table_num peak_id x y z``) keeps the table's row order;
    ``peak_id`` numbers the rows from 1, and ``table_id``, ``table_num``,
    ``doi``, ``title``, ``authors``, ``year`` and ``journal``, which a
    coordinate table does not hold, are ``n/a``.  Coordinates are written as
    in :func:`write_neurosynth`.  Both files are written atomically: on an
    error neither is left behind (or both are restored).

    Parameters
    ----------
    table : xarray.Dataset
        A coordinate table whose studies each have one space label.
    path : str or path-like
    overwrite : bool, default False
        Replace existing files; otherwise an existing coordinates or metadata file is an error.

    Returns
    -------
    str
        The coordinates path written.

    Raises
    ------
    ParameterError
        The path does not end in ``_coordinates.tsv[.gz]``, or a study has
        peaks in several spaces (v7 states the space per study).
    OutputError
        A file exists and ``overwrite`` is False, or writing failed.
    """
    path = os.fspath(path)
    meta = v7_metadata_path(path)
    if not meta.endswith(".gz") and os.path.exists(meta + ".gz"):
        raise OutputError(
            f"{meta}.gz exists beside {path}; read_database would take the spaces from it instead of the "
            f"{os.path.basename(meta)} written here. Remove it, or write '*_coordinates.tsv.gz' instead."
        )
    fmt = "Neurosynth v7"
    n, ids, _ = _checked_columns(table, fmt)
    studies, _, _, study_space = studies_with_one_space(table, fmt)
    xyz = source_xyz(table)

    def write_metadata(fh):
        fh.write("\t".join(V7_METADATA_HEADER) + "\n")
        fh.write(
            "".join(f"{i}\tn/a\t{sp}\tn/a\tn/a\tn/a\tn/a\n" for i, sp in zip(id_text(studies), study_space.tolist()))
        )

    def write_coordinates(fh):
        fh.write("\t".join(V7_COORDINATE_HEADER) + "\n")
        for sl in row_chunks(n):
            cols = (id_text(ids[sl]), range(sl.start + 1, sl.stop + 1), *(format_floats(xyz[sl, a]) for a in range(3)))
            fh.write("".join(f"{i}\tn/a\tn/a\t{p}\t{x}\t{y}\t{z}\n" for i, p, x, y, z in zip(*cols)))

    # the coordinates file goes in last, so a reader never finds it without its metadata
    write_files({meta: write_metadata, path: write_coordinates}, overwrite=overwrite)
    return path
