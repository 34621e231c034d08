"""NIMADS studyset JSON, the format of NeuroStore and of NiMARE's ``Studyset``.

A studyset is ``{"id", "name", "studies": [study, ...]}``; each study is
``{"id", "name", "metadata", "analyses": [analysis, ...]}`` and each analysis
``{"id", "name", "metadata", "points": [{"coordinates": [x, y, z], "space"}, ...]}``.
Extra keys (authors, images, values, ...) are ignored.

Each analysis with points becomes one study of the coordinate table, with
NiMARE's id ``"{study id}-{analysis id}"``.  A point's ``space`` is kept as
written (``"MNI"``, ``"TAL"``...; a missing space is ``"UNKNOWN"``, used as it
is, with a :class:`~xcoact.errors.SpaceWarning`).  Analyses without points
are left out with an :class:`~xcoact.errors.EmptyStudyWarning`.

Besides the table's usual variables the table holds, per peak,

``sample_size`` : (peak,) float64
    The analysis's sample size, NaN where none is recorded.  Found as NiMARE
    0.22.1 finds it (``nimare.io.convert_nimads_to_dataset``): the analysis
    metadata's ``sample_sizes`` (a list) or ``sample_size`` (a number), else
    the study metadata's; a list gives its mean, as
    ``Studyset.sample_sizes(reduce="mean")`` does.
``analysis_name`` : (peak,) str
    The analysis's ``name`` (its id when it has none).

and the attrs ``studyset_id`` and ``studyset_name``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings

import numpy as np

from ..choices import ObjectFormat
from ..errors import DatabaseError, EmptyStudyWarning, caller_stacklevel
from ..table import make_table
from ._text import (
    check_table,
    group_by_study,
    id_text,
    read_text,
    source_xyz,
    space_labels,
    study_sample_sizes,
    write_files,
)

__all__ = ["read_nimads", "nimads_table", "write_nimads"]

_SCHEMA = (
    '{"studies": [{"id": ..., "analyses": [{"id": ..., "points": [{"coordinates": [x, y, z], "space": "MNI"}]}]}]} '
    "(NIMADS studyset JSON)"
)


def _fail(source: str, where: list[str], found: str, expected: str):
    loc = " -> ".join(where) if where else "top level"
    raise DatabaseError(f"{source}: at {loc}: found {found}; expected {expected} (NIMADS studyset JSON).")


def _number(value) -> float | None:
    """A sample size as a positive float, or None (missing, zero or not a number, as NiMARE skips them)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out > 0 else None


def _sample_size(*metadata) -> float:
    """NiMARE's order: ``sample_sizes`` then ``sample_size``, analysis before study; NaN when none."""
    for meta in metadata:
        if not isinstance(meta, dict):
            continue
        sizes = meta.get("sample_sizes")
        if isinstance(sizes, (list, tuple)) and sizes:
            values = [_number(v) for v in sizes]
            if all(v is not None for v in values):
                return float(np.mean(np.asarray(values, dtype=np.float64)))
        one = _number(meta.get("sample_size"))
        if one is not None:
            return one
    return float("nan")


def _point_xyz(point, where: list[str], source: str) -> list[float]:
    if not isinstance(point, dict):
        _fail(source, where, repr(point)[:60], 'a point object {"coordinates": [x, y, z], "space": ...}')
    xyz = point.get("coordinates")
    if xyz is None and all(k in point for k in "xyz"):
        xyz = [point["x"], point["y"], point["z"]]  # NeuroStore's flat form
    if not isinstance(xyz, (list, tuple)) or len(xyz) != 3:
        _fail(source, where + ["coordinates"], repr(xyz)[:60], "a list of three numbers [x, y, z] in mm")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in xyz):
        _fail(source, where + ["coordinates"], repr(xyz)[:60], "a list of three numbers [x, y, z] in mm")
    out = [float(v) for v in xyz]
    if not all(math.isfinite(v) for v in out):
        _fail(source, where + ["coordinates"], repr(xyz)[:60], "finite numbers in mm")
    return out


def nimads_table(data, database: str, fmt: ObjectFormat = "nimads"):
    """The coordinate table of a NIMADS studyset already parsed into Python objects.

    Parameters
    ----------
    data : dict
        The studyset (see the module docstring), e.g. ``json.load`` of a
        NeuroStore download or ``nimare.nimads.Studyset.to_dict()``.
    database : str
        Its name in messages and provenance.
    fmt : str
        The ``format`` attr of the table.

    Returns
    -------
    xarray.Dataset
        The coordinate table with ``sample_size`` and ``analysis_name``.

    Raises
    ------
    DatabaseError
        The structure is not a NIMADS studyset; the message names the study,
        analysis and point.
    """
    if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
        found = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(data)[:8]}"
        _fail(database, [], found, f'an object with a "studies" list, {_SCHEMA[: -len(" (NIMADS studyset JSON)")]}')
    ids, xyz, spaces, sizes, names = [], [], [], [], []
    empty = []
    for i, study in enumerate(data["studies"]):
        where = [f"studies[{i}]"]
        if not isinstance(study, dict) or "id" not in study:
            _fail(database, where, repr(study)[:60], 'a study object with an "id"')
        where = [f"studies[{i}] (id {study['id']!r})"]
        analyses = study.get("analyses") or []
        if not isinstance(analyses, list):
            _fail(database, where + ["analyses"], repr(analyses)[:60], "a list of analyses")
        for j, analysis in enumerate(analyses):
            awhere = where + [f"analyses[{j}]"]
            if not isinstance(analysis, dict) or "id" not in analysis:
                _fail(database, awhere, repr(analysis)[:60], 'an analysis object with an "id"')
            awhere = where + [f"analyses[{j}] (id {analysis['id']!r})"]
            key = f"{study['id']}-{analysis['id']}"
            points = analysis.get("points") or []
            if not isinstance(points, list):
                _fail(database, awhere + ["points"], repr(points)[:60], "a list of points")
            if not points:
                empty.append(key)
                continue
            size = _sample_size(analysis.get("metadata"), study.get("metadata"))
            name = analysis.get("name")
            name = str(analysis["id"]) if name is None or not str(name).strip() else str(name)
            for k, point in enumerate(points):
                xyz.append(_point_xyz(point, awhere + [f"points[{k}]"], database))
                space = point.get("space")
                spaces.append("UNKNOWN" if space is None or not str(space).strip() else str(space))
            ids += [key] * len(points)
            sizes += [size] * len(points)
            names += [name] * len(points)
    if empty:
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        warnings.warn(
            f"{database}: {len(empty)} analys(is/es) without points were left out: {empty[:5]}{more}. "
            "Add their coordinates in NeuroStore, or ignore this if they report none.",
            EmptyStudyWarning,
            stacklevel=caller_stacklevel(),
        )
    if not ids:
        raise DatabaseError(f"{database}: no analysis has points; expected at least one analysis with coordinates.")
    points = np.asarray(xyz, dtype=np.float64)
    table = make_table(
        np.asarray(ids, dtype=object),
        points[:, 0],
        points[:, 1],
        points[:, 2],
        np.asarray(spaces, dtype=object),
        database=database,
        fmt=fmt,
    )
    table["sample_size"] = ("peak", np.asarray(sizes, dtype=np.float64), {"long_name": "sample size of the analysis"})
    table["analysis_name"] = ("peak", np.asarray(names, dtype=str), {"long_name": "name of the analysis"})
    table.attrs["studyset_id"] = str(data.get("id") or "")
    table.attrs["studyset_name"] = str(data.get("name") or "")
    return table


def read_nimads(path: str):
    """Read a NIMADS studyset JSON file (see the module docstring)."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except RecursionError:
        raise DatabaseError(
            f"{path}: JSON nested too deeply to read (more than Python's recursion limit of "
            f"{sys.getrecursionlimit()} levels); a NIMADS studyset is a few levels deep. Check that this is the right "
            "file."
        ) from None
    except json.JSONDecodeError as err:
        raise DatabaseError(
            f"{path}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}); expected {_SCHEMA}. "
            "Fix the syntax there, or download the studyset again."
        ) from err
    return nimads_table(data, database=path)


def write_nimads(table, path, *, overwrite: bool = False) -> str:
    """Write a coordinate table as a NIMADS studyset JSON file.

    Each study of the table becomes one NIMADS study with one analysis
    (id ``"1"``) holding its peaks, each with its own ``space`` (NIMADS keeps
    a space per point), in order of first appearance.  Coordinates are JSON
    numbers (exact), Talairach rows moved back from MNI as in
    :func:`~xcoact.readers.neurosynth.write_neurosynth`.  A ``sample_size``
    variable, where present, becomes each analysis's
    ``metadata.sample_size``.

    Study ids change on a round trip as with NiMARE JSON:
    :func:`read_nimads` names each analysis ``"{study}-{analysis}"``, so
    study ``9106283`` reads back as ``"9106283-1"``.  Gzip-compressed when
    ``path`` ends in ``.gz``; written atomically.

    Parameters
    ----------
    table : xarray.Dataset
    path : str or path-like
    overwrite : bool, default False
        Replace an existing file; otherwise an existing file is an error.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    check_table(table, "NIMADS")
    studies, order, bounds = group_by_study(table)
    xyz = source_xyz(table)[order]
    spaces = space_labels(table)[order].tolist()
    sizes = study_sample_sizes(table, order, bounds, studies, "NIMADS")
    keys = id_text(studies)

    def write(fh):
        name = str(table.attrs.get("studyset_name", table.attrs.get("database", "")))
        fh.write(
            "{" + f'"id": {json.dumps(str(table.attrs.get("studyset_id", "xcoact")))}, "name": {json.dumps(name)}, '
            '"studies": ['
        )
        for s, key in enumerate(keys):
            lo, hi = bounds[s], bounds[s + 1]
            points = [{"coordinates": xyz[p].tolist(), "space": spaces[p]} for p in range(lo, hi)]
            analysis: dict[str, object] = {"id": "1", "name": "1", "points": points}
            if sizes is not None and math.isfinite(sizes[s]):
                analysis["metadata"] = {"sample_size": float(sizes[s])}
            fh.write(("," if s else "") + "\n" + json.dumps({"id": key, "name": key, "analyses": [analysis]}))
        fh.write("\n]}\n")

    write_files({path: write}, overwrite=overwrite)
    return path
