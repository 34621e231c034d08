"""NiMARE dataset JSON: ``{study: {"contrasts": {contrast: {"coords": {...}}}}}``.

Each contrast is one study with id ``"{study}-{contrast}"`` (NiMARE's id);
``coords`` holds ``space`` and equal-length ``x``, ``y``, ``z`` lists.
A contrast's ``metadata.sample_sizes`` (a list; its mean, as NiMARE's
estimators take it) or ``metadata.sample_size`` becomes the ``sample_size`` of
its peaks (NaN where absent); the table has ``sample_size`` when any contrast
states one.  Contrasts without coordinates are left out with a warning.  Two contrasts
whose joined ids are the same (study ``s-1`` contrast ``1`` and study ``s``
contrast ``1-1`` are both ``s-1-1``) are an error naming both.

:func:`write_nimare_json` writes each study as one contrast ``"1"``, so a
round trip renames study ``s`` to ``"s-1"``; known sample sizes are written as
``metadata.sample_sizes``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

from ..errors import QUOTE_LIMIT, DatabaseError, EmptyStudyWarning, caller_stacklevel, first_few, quote
from ..table import make_table
from ._text import (
    check_table,
    check_text_ids,
    check_unpadded,
    id_text,
    read_text,
    source_xyz,
    studies_with_one_space,
    study_sample_sizes,
    write_files,
)
from .nimads import _sample_size

#: The largest int a float64 holds without overflow (JSON ints are unbounded).
_MAX_INT = int(sys.float_info.max)


def _fail(path: str, where: list[str], found: str, expected: str):
    loc = " -> ".join(w if len(w) <= QUOTE_LIMIT else quote(w) for w in where) if where else "top level"
    raise DatabaseError(f"{path}: at {loc}: found {found}; expected {expected} (NiMARE dataset JSON schema).")


def read_nimare_json(path: str):
    """Read a NiMARE dataset JSON file (see the module docstring)."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except RecursionError:
        raise DatabaseError(
            f"{path}: JSON nested too deeply to read (more than Python's recursion limit of "
            f"{sys.getrecursionlimit()} levels); a NiMARE dataset is 5 levels deep, "
            '{"study": {"contrasts": {"contrast": {"coords": {...}}}}}. Check that this is the right file.'
        ) from None
    except json.JSONDecodeError as err:
        raise DatabaseError(
            f"{path}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}); expected a NiMARE dataset "
            '{"study": {"contrasts": {"contrast": {"coords": {"space": ..., "x": [...], "y": [...], "z": [...]}}}}}. '
            "Fix the syntax there, or pass format= if this is not a JSON file."
        ) from err
    if not isinstance(data, dict):
        _fail(path, [], type(data).__name__, "an object mapping study ids to studies")
    ids, xs, ys, zs, spaces, sizes = [], [], [], [], [], []
    empty = []
    owner: dict[str, tuple[str, str]] = {}  # NiMARE id -> (study, contrast) it came from
    clashes: list[tuple[str, tuple[str, str], tuple[str, str]]] = []
    for study, body in data.items():
        if not isinstance(body, dict) or not isinstance(body.get("contrasts"), dict):
            _fail(path, [study], repr(body)[:60], 'an object with a "contrasts" object')
        for contrast, cbody in body["contrasts"].items():
            where = [study, "contrasts", contrast]
            nid = f"{study}-{contrast}"
            if nid in owner:  # e.g. study 's-1' contrast '1' and study 's' contrast '1-1'
                clashes.append((nid, owner[nid], (study, contrast)))
            else:
                owner[nid] = (study, contrast)
            if not isinstance(cbody, dict):
                _fail(path, where, repr(cbody)[:60], "an object")
            coords = cbody.get("coords")
            if coords is None:
                empty.append(f"{study}-{contrast}")
                continue
            if not isinstance(coords, dict):
                _fail(path, where + ["coords"], repr(coords)[:60], 'an object with "space", "x", "y", "z"')
            cols = []
            for axis in ("x", "y", "z"):
                vals = coords.get(axis)
                if not isinstance(vals, list):
                    _fail(path, where + ["coords", axis], repr(vals)[:60], "a list of numbers")
                # JSON numbers only: true/false would count as 1/0 and nested lists would be flattened
                if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vals):
                    _fail(path, where + ["coords", axis], repr(vals)[:60], "a list of numbers")
                if any(isinstance(v, int) and abs(v) > _MAX_INT for v in vals):
                    found = f"an integer too large for float64 in {repr(vals)[:60]}"
                    _fail(path, where + ["coords", axis], found, "a list of numbers")
                arr = np.array(vals, dtype=float)
                if not np.isfinite(arr).all():
                    _fail(path, where + ["coords", axis], "a NaN or infinite value", "finite numbers in mm")
                cols.append(arr)
            if not (len(cols[0]) == len(cols[1]) == len(cols[2])):
                _fail(path, where + ["coords"], f"x, y, z of lengths {[len(c) for c in cols]}", "lists of equal length")
            if len(cols[0]) == 0:
                empty.append(f"{study}-{contrast}")
                continue
            space = coords.get("space")
            if not isinstance(space, str):
                _fail(path, where + ["coords", "space"], quote(space), 'a space label such as "MNI" or "TAL"')
            ids += [f"{study}-{contrast}"] * len(cols[0])
            xs.append(cols[0])
            ys.append(cols[1])
            zs.append(cols[2])
            spaces += [space] * len(cols[0])
            sizes += [_sample_size(cbody.get("metadata"))] * len(cols[0])
    if clashes:

        def at(pair):
            return f"{quote(pair[0])} -> contrasts -> {quote(pair[1])}"

        shown = first_few([f"{quote(nid)} from {at(a)} and from {at(b)}" for nid, a, b in clashes])
        raise DatabaseError(
            f"{path}: {len(clashes)} contrast id(s) are made twice - {shown}. NiMARE names each contrast "
            "'{study}-{contrast}', so these different contrasts would merge into one study; rename one study or "
            "contrast so the joined ids differ."
        )
    if empty:
        shown_empty = [quote(e) for e in empty[:5]]
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        warnings.warn(
            f"{path}: {len(empty)} contrast(s) without coordinates were left out: [{', '.join(shown_empty)}]{more} (no "
            '"coords", '
            'or empty "x", "y", "z" lists). Add their coordinates, or ignore this if they report none.',
            EmptyStudyWarning,
            stacklevel=caller_stacklevel(),
        )
    if not ids:
        raise DatabaseError(f"{path}: no contrast has coordinates; expected at least one 'coords' with x, y, z lists.")
    known = not np.isnan(sizes).all()
    return make_table(
        ids,
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(zs),
        spaces,
        database=path,
        fmt="nimare-json",
        sample_size=sizes if known else None,
    )


def write_nimare_json(table, path, *, overwrite: bool = False) -> str:
    """Write a coordinate table as a NiMARE dataset JSON file.

    Each study becomes ``{"<id>": {"contrasts": {"1": {"coords": {"space": ...,
    "x": [...], "y": [...], "z": [...]}}}}}``, in order of first appearance,
    its peaks in table order.  Coordinates are JSON numbers (``repr(float)``,
    exact), Talairach rows moved back from MNI as in
    :func:`~xcoact.readers.neurosynth.write_neurosynth`.

    Study ids change on a round trip: :func:`read_nimare_json` names each
    contrast ``"{study}-{contrast}"``, so study ``9106283`` reads back as the
    string ``"9106283-1"``.  Coordinates, spaces and the order of studies and
    peaks come back unchanged, and so do known sample sizes (each study's
    ``sample_size`` as the contrast's ``metadata.sample_sizes`` list of one).
    Gzip-compressed when ``path`` ends in ``.gz``; written atomically.

    Parameters
    ----------
    table : xarray.Dataset
        A coordinate table whose studies each have one space label.
    path : str or path-like
    overwrite : bool, default False
        Replace an existing file; otherwise an existing file is an error.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    check_table(table, "NiMARE JSON")
    studies, order, bounds, study_space = studies_with_one_space(table, "NiMARE JSON")
    check_text_ids(studies, "NiMARE JSON", "")
    check_unpadded(np.unique(study_space).tolist(), "space label", "NiMARE JSON")
    xyz = source_xyz(table)[order]
    keys = id_text(studies)
    spaces = study_space.tolist()
    sizes = study_sample_sizes(table, order, bounds, studies, "NiMARE JSON")

    def write(fh):
        fh.write("{")
        for s, key in enumerate(keys):
            block = xyz[bounds[s] : bounds[s + 1]]
            coords = {
                "space": spaces[s],
                "x": block[:, 0].tolist(),
                "y": block[:, 1].tolist(),
                "z": block[:, 2].tolist(),
            }
            contrast = {"coords": coords}
            if sizes is not None and np.isfinite(sizes[s]):
                contrast["metadata"] = {"sample_sizes": [_json_number(sizes[s])]}
            fh.write(("," if s else "") + "\n" + json.dumps(key) + ": " + json.dumps({"contrasts": {"1": contrast}}))
        fh.write("\n}\n")

    write_files({path: write}, overwrite=overwrite)
    return path


def _json_number(value: float):
    """A sample size as JSON: an int when whole (as NiMARE's files hold them), else the float."""
    return int(value) if float(value).is_integer() else float(value)
