"""Sleuth / GingerALE text files.

Layout::

    // Reference = MNI            (or Talairach; applies to the lines below it)
    // Study1: Experiment A       (one or more name lines open an experiment)
    // Subjects = 20              (optional)
    -16  -58  -22                 (x y z, whitespace-separated)
                                  (a blank line closes the experiment)

Each experiment is one study; when several name lines open the same block of
coordinates (GingerALE's way of giving one experiment several labels) they
form one study whose id joins the names with ``"; "``.  Two blocks with the
same id are two experiments (two samples) that would merge into one study:
they are an error naming both blocks' lines and sample sizes.  An experiment whose
name is followed by a blank line and then another name (or the end of the
file) has no coordinates: it is left out with an
:class:`~xcoact.errors.EmptyStudyWarning`.  A bare ``//`` line is a comment.

An experiment's ``// Subjects = N`` (the last such line above its first
coordinate line, as NiMARE reads it) becomes the ``sample_size`` of each of its
peaks, NaN for an experiment without one; the table has ``sample_size`` when
any experiment states it.  N must be a number > 0.

:func:`write_sleuth` writes a table whose peaks are all MNI or all Talairach
back in this layout, with each study's ``// Subjects = N`` when its sample
size is known.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from ..errors import DatabaseError, EmptyStudyWarning, ParameterError, caller_stacklevel, first_few, quote
from ..table import MNI_LABELS, TAL_LABELS, make_table
from ._text import (
    check_table,
    check_text_ids,
    format_floats,
    group_by_study,
    id_text,
    read_text,
    row_chunks,
    source_xyz,
    space_labels,
    split_lines,
    study_sample_sizes,
    write_files,
)
from .nimads import _number

_REFERENCE = re.compile(r"^//\s*reference\s*=\s*(\S+)", re.IGNORECASE)
_SUBJECTS = re.compile(r"^//\s*subjects\s*=", re.IGNORECASE)
_SPACES = {"MNI": "MNI", "TALAIRACH": "TAL", "TAL": "TAL"}


def read_sleuth(path: str):
    """Read a Sleuth text file (see the module docstring for the layout)."""
    text = read_text(path)
    space = None
    ids, xs, ys, zs, lines, spaces, sizes = [], [], [], [], [], [], []
    first_unreferenced = None  # first coordinate line above every Reference line
    names: list[tuple[int, str]] = []  # (line, name) of the experiment being read
    in_coords = False
    closed = False  # a blank line followed names that have no coordinates yet
    empty: list[tuple[int, str]] = []  # experiments without coordinates: (first name line, id)
    bad: list[str] = []
    subjects: str | None = None  # the '// Subjects = N' value of the experiment being read
    size = float("nan")  # that value as a number (NaN: none)
    block_size = size  # the sample size of the experiment whose coordinates are being read
    blocks: dict[str, tuple[int, str | None]] = {}  # id -> (first name line, Subjects) of its block
    repeated: list[tuple[str, tuple[int, str | None], tuple[int, str | None]]] = []

    def drop_empty():
        if names and not in_coords:
            empty.append((names[0][0], "; ".join(n for _, n in names)))

    for lineno, raw in enumerate(split_lines(text), start=1):
        line = raw.strip()
        if not line:
            if in_coords:
                names, in_coords, subjects, size = [], False, None, float("nan")
            elif names:
                closed = True
            continue
        if line.startswith("//"):
            m = _REFERENCE.match(line)
            if m:
                label = m.group(1).upper()
                if label not in _SPACES:
                    raise DatabaseError(
                        f"{path}, line {lineno}: unknown reference space {quote(m.group(1))}; "
                        "expected '// Reference = MNI' or '// Reference = Talairach'."
                    )
                space = _SPACES[label]
            elif _SUBJECTS.match(line):
                subjects = line.split("=", 1)[1].strip()
                number = _number(subjects) if subjects else None
                if number is None:
                    raise DatabaseError(
                        f"{path}, line {lineno}: {quote(line)} does not state a sample size; expected "
                        "'// Subjects = N' with N the number of subjects (> 0), e.g. '// Subjects = 20', "
                        "or no Subjects line."
                    )
                size = number
            elif not line[2:].strip():
                pass
            else:
                if in_coords:  # a new name right after coordinates starts a new experiment
                    names, in_coords, subjects, size = [], False, None, float("nan")
                elif closed:  # names, a blank line, a new name: the earlier experiment had no coordinates
                    drop_empty()
                    names, subjects, size = [], None, float("nan")
                closed = False
                names.append((lineno, line[2:].strip()))
            continue
        parts = re.split(r"[\s,;]+", line)
        if not names:
            raise DatabaseError(
                f"{path}, line {lineno}: coordinates before any '// Study: Experiment' line; "
                "each experiment must be named first."
            )
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) != 3 or not np.all(np.isfinite(vals)):
            bad.append(f"line {lineno}: {quote(line)}")
            continue
        sid = "; ".join(n for _, n in names)
        if not in_coords:  # the first coordinate line of an experiment: is its name new?
            if sid in blocks:
                repeated.append((sid, blocks[sid], (names[0][0], subjects)))
            else:
                blocks[sid] = (names[0][0], subjects)
            block_size = size
        in_coords, closed = True, False
        if space is None and first_unreferenced is None:
            first_unreferenced = lineno
        spaces.append(space)
        ids.append(sid)
        xs.append(vals[0])
        ys.append(vals[1])
        zs.append(vals[2])
        lines.append(lineno)
        sizes.append(block_size)
    drop_empty()  # names at the end of the file
    if bad:
        raise DatabaseError(
            f"{path}: {len(bad)} coordinate line(s) are not three finite numbers ({'; '.join(bad[:10])}); "
            "each coordinate line must be 'x y z' in mm."
        )
    if repeated:

        def block(where):
            n = where[1]
            return f"line {where[0]}" + ("" if n is None else f" (Subjects = {n if n.isdigit() else quote(n)})")

        shown = first_few([f"{quote(sid)} at {block(a)} and {block(b)}" for sid, a, b in repeated])
        raise DatabaseError(
            f"{path}: {len(repeated)} experiment name(s) open more than one block of coordinates - {shown}. "
            "Each block is one experiment (its own sample), and blocks with one name would merge into one study; "
            "give each block a distinct name (e.g. add ' (2)' to the second)."
        )
    if space is None:
        raise DatabaseError(
            f"{path}, line 1: no '// Reference = MNI' (or '// Reference = Talairach') line; a Sleuth file must "
            "state its space. Add the right one as the first line."
        )
    if first_unreferenced is not None:
        raise DatabaseError(
            f"{path}, line {first_unreferenced}: coordinates before the first '// Reference = ...' line, so their "
            "space is unknown. Move the Reference line to the top of the file."
        )
    listed = "; ".join(f"line {ln}: {quote(sid)}" for ln, sid in empty[:5])
    listed += f"; and {len(empty) - 5} more" if len(empty) > 5 else ""
    if not ids:
        found = f" Found {len(empty)} experiment name(s) without coordinates ({listed})." if empty else ""
        raise DatabaseError(
            f"{path}: a Sleuth header but no coordinates; expected 'x y z' lines after each experiment name.{found}"
        )
    if empty:
        warnings.warn(
            f"{path}: {len(empty)} experiment(s) without coordinates were left out ({listed}); each experiment "
            "needs its 'x y z' lines below its name. Add them, or delete those names.",
            EmptyStudyWarning,
            stacklevel=caller_stacklevel(),
        )
    known = not np.isnan(sizes).all()
    return make_table(
        ids, xs, ys, zs, spaces, database=path, fmt="sleuth", lines=lines, sample_size=sizes if known else None
    )


def write_sleuth(table, path, *, overwrite: bool = False) -> str:
    """Write a coordinate table as a Sleuth text file that :func:`read_sleuth` reads back.

    The layout is one ``// Reference = MNI`` (or ``// Reference = Talairach``)
    line, then per study a ``// <study id>`` name line, a ``// Subjects = N``
    line when the table's ``sample_size`` of the study is known (N as an
    integer when whole, else ``repr(float)``; it reads back exactly), its
    ``x y z`` lines (tab-separated, ``repr(float)``, exact) and a blank line.
    A study's peaks are written together, in table order; studies in order of
    first appearance.

    A Sleuth file states one space, so every row's label must be an MNI label
    (``MNI``, ``MNI152``, ``ICBM``, ``ICBM152``) or every one a Talairach label
    (``TAL``, ``T88``, ``Talairach``); they read back as ``MNI`` or ``TAL``.
    Talairach coordinates are moved back from MNI as in
    :func:`~xcoact.readers.neurosynth.write_neurosynth`.  Gzip-compressed when
    ``path`` ends in ``.gz``; written atomically.

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
        The table mixes spaces (or uses one Sleuth cannot state), a study id
        contains a line break or would read as a ``Reference``/``Subjects`` line,
        or a study's peaks carry different sample sizes.
    """
    path = os.fspath(path)
    n = check_table(table, "Sleuth")
    labels, counts = np.unique(space_labels(table), return_counts=True)
    upper = {str(lab).upper() for lab in labels}
    if upper <= MNI_LABELS:
        reference = "MNI"
    elif upper <= TAL_LABELS:
        reference = "Talairach"
    else:
        found = ", ".join(f"{quote(str(lab))}: {int(c)} row(s)" for lab, c in zip(labels, counts))
        raise ParameterError(
            f"table: a Sleuth file states one space, but the table's space labels are {found}; expected all MNI "
            "(MNI, MNI152, ICBM, ICBM152) or all Talairach (TAL, T88, Talairach). Select one space first "
            "(e.g. table.isel(peak=table.space == 'MNI')), or write the 'neurosynth' format."
        )
    studies, order, bounds = group_by_study(table)
    check_text_ids(studies, "Sleuth", "\n\r")
    names = [f"// {s}\n" for s in id_text(studies)]
    sizes = study_sample_sizes(table, order, bounds, studies, "Sleuth")
    clash = [s for s in names if _REFERENCE.match(s) or _SUBJECTS.match(s)]
    if clash:
        raise ParameterError(
            f"table: study id {quote(clash[0][3:].strip())} would read back as a Sleuth "
            f"{'Reference' if _REFERENCE.match(clash[0]) else 'Subjects'} line; rename it first."
        )
    if sizes is not None:
        names = [name + (f"// Subjects = {_size_text(v)}\n" if np.isfinite(v) else "") for name, v in zip(names, sizes)]
    xyz = source_xyz(table)[order]
    starts = np.zeros(n, dtype=bool)
    starts[bounds[:-1]] = True
    study_of = np.repeat(np.arange(len(studies)), np.diff(bounds))

    def write(fh):
        fh.write(f"// Reference = {reference}\n")
        for sl in row_chunks(n):
            parts = []
            cols = (range(sl.start, sl.stop), *(format_floats(xyz[sl, a]) for a in range(3)))
            for pos, x, y, z in zip(*cols):
                if starts[pos]:
                    parts.append(("\n" if pos else "") + names[study_of[pos]])
                parts.append(f"{x}\t{y}\t{z}\n")
            fh.write("".join(parts))

    write_files({path: write}, overwrite=overwrite)
    return path


def _size_text(value: float) -> str:
    """A sample size as Sleuth text: ``20`` for a whole number, else the float's repr (exact either way)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
