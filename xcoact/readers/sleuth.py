"""Sleuth / GingerALE text files.

Layout::

    // Reference = MNI            (or Talairach; applies to the lines below it)
    // Study1: Experiment A       (one or more name lines open an experiment)
    // Subjects = 20              (optional)
    -16  -58  -22                 (x y z, whitespace-separated)
                                  (a blank line closes the experiment)

Each experiment is one study; when several name lines open the same block of
coordinates (GingerALE's way of giving one experiment several labels) they
form one study whose id joins the names with ``"; "``.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import DatabaseError
from ..table import make_table
from ._text import read_text

_REFERENCE = re.compile(r"^//\s*reference\s*=\s*(\S+)", re.IGNORECASE)
_SUBJECTS = re.compile(r"^//\s*subjects\s*=", re.IGNORECASE)
_SPACES = {"MNI": "MNI", "TALAIRACH": "TAL", "TAL": "TAL"}


def read_sleuth(path: str):
    """Read a Sleuth text file (see the module docstring for the layout)."""
    text = read_text(path)
    space = None
    ids, xs, ys, zs, lines, spaces = [], [], [], [], [], []
    first_unreferenced = None  # first coordinate line above every Reference line
    names: list[str] = []
    in_coords = False
    bad: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            if in_coords:
                names, in_coords = [], False
            continue
        if line.startswith("//"):
            m = _REFERENCE.match(line)
            if m:
                label = m.group(1).upper()
                if label not in _SPACES:
                    raise DatabaseError(
                        f"{path}, line {lineno}: unknown reference space {m.group(1)!r}; "
                        "expected '// Reference = MNI' or '// Reference = Talairach'."
                    )
                space = _SPACES[label]
            elif _SUBJECTS.match(line):
                pass
            else:
                if in_coords:  # a new name right after coordinates starts a new experiment
                    names, in_coords = [], False
                names.append(line[2:].strip())
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
            bad.append(f"line {lineno}: {line!r}")
            continue
        in_coords = True
        if space is None and first_unreferenced is None:
            first_unreferenced = lineno
        spaces.append(space)
        ids.append("; ".join(names))
        xs.append(vals[0])
        ys.append(vals[1])
        zs.append(vals[2])
        lines.append(lineno)
    if bad:
        raise DatabaseError(
            f"{path}: {len(bad)} coordinate line(s) are not three finite numbers ({'; '.join(bad[:10])}); "
            "each coordinate line must be 'x y z' in mm."
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
    if not ids:
        raise DatabaseError(f"{path}: a Sleuth header but no coordinates; expected 'x y z' lines after each experiment name.")
    return make_table(ids, xs, ys, zs, spaces, database=path, fmt="sleuth", lines=lines)
