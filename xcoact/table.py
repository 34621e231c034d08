"""The coordinate table: one row per reported peak, in MNI millimetres.

Contract (every reader returns exactly this)
--------------------------------------------
An :class:`xarray.Dataset` with one dimension, ``peak``, and the variables

``study_id`` : (peak,) int64 or str
    The study (or experiment/contrast) the peak belongs to.
``x``, ``y``, ``z`` : (peak,) float64
    MNI coordinates in mm, after any Talairach -> MNI transform; finite.
``space`` : (peak,) str
    The space label as written in the source (``MNI``, ``TAL``, ``UNKNOWN``...).
``line`` : (peak,) int64
    1-based line of the source file the peak came from (0 when the format has
    no lines, e.g. JSON), so later errors can point back at the file.

and the attrs ``database`` (source path or name), ``format`` (reader name),
``n_studies`` and ``n_peaks``.  Studies are ordered by first appearance.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .errors import DatabaseError
from .warnings import SpaceWarning

__all__ = ["TAL_TO_MNI", "MNI_LABELS", "TAL_LABELS", "make_table", "tal_to_mni", "study_index"]

#: Lancaster et al. (2007), "Bias between MNI and Talairach coordinates analyzed
#: using the ICBM-152 brain template", Hum Brain Mapp 28:1194-1205: the
#: icbm_spm2tal matrix (MNI -> Talairach).  Its inverse moves TAL to MNI, as
#: Neurosynth 0.3.8 does (SPEC section 1).
ICBM_SPM2TAL = np.array(
    [
        [0.9254, 0.0024, -0.0118, -1.0207],
        [-0.0048, 0.9316, -0.0871, -1.7667],
        [0.0152, 0.0883, 0.8924, 4.0926],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
TAL_TO_MNI = np.linalg.inv(ICBM_SPM2TAL)

MNI_LABELS = frozenset({"MNI", "MNI152", "ICBM", "ICBM152"})
TAL_LABELS = frozenset({"TAL", "T88", "TALAIRACH"})


def tal_to_mni(xyz) -> np.ndarray:
    """Move Talairach coordinates to MNI with the inverse of icbm_spm2tal.

    Parameters
    ----------
    xyz : (n, 3) array-like of float
        Talairach coordinates (mm).

    Returns
    -------
    (n, 3) float64 array
        ``inv(M) @ [x, y, z, 1]`` for each row (Lancaster et al. 2007).

    Examples
    --------
    >>> tal_to_mni([[0.0, 0.0, 0.0]]).round(3)
    array([[ 1.039,  1.458, -4.748]])
    """
    xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
    homog = np.column_stack([xyz, np.ones(len(xyz))])
    return (homog @ TAL_TO_MNI.T)[:, :3]


def _normalise_ids(ids: np.ndarray) -> np.ndarray:
    """Integer ids when every id is a whole number (PubMed ids), else strings."""
    if isinstance(ids, pd.Categorical):
        return _normalise_unique(np.asarray(ids.categories.astype(str)))[ids.codes]
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    # decide per distinct id (a few per hundred rows), then map back to the rows
    uniq, inverse = np.unique(ids.astype(str), return_inverse=True)
    norm = _normalise_unique(uniq)
    return norm[inverse.ravel()]


def _normalise_unique(ids: np.ndarray) -> np.ndarray:
    as_str = np.array([str(i).strip() for i in ids], dtype=object)
    try:
        ints = np.array([int(s) for s in as_str], dtype=np.int64)
    except (ValueError, OverflowError):
        return as_str.astype(str)
    if all(str(i) == s for i, s in zip(ints, as_str)):
        return ints
    return as_str.astype(str)


def make_table(ids, x, y, z, space, *, database: str, fmt: str, lines=None) -> xr.Dataset:
    """Validate raw peak columns and build the coordinate table.

    Talairach rows (``TAL``, ``T88``, ``Talairach``; any case) are moved to
    MNI; MNI rows are kept; rows in any other space are kept untouched, as
    Neurosynth does, with a :class:`~xcoact.warnings.SpaceWarning` naming each
    label and its row count.

    Parameters
    ----------
    ids : (n,) array-like
    x, y, z : (n,) array-like of float
    space : (n,) array-like of str
    database : str
        Source name for messages and provenance.
    fmt : str
        Reader name.
    lines : (n,) array-like of int, optional
        Source line of each row.

    Returns
    -------
    xarray.Dataset
        The coordinate table (see the module docstring).

    Raises
    ------
    DatabaseError
        A coordinate is NaN or infinite, or the table is empty.
    """
    columns = {"ids": ids, "x": x, "y": y, "z": z, "space": space}
    if lines is not None:
        columns["lines"] = lines
    lengths = {k: len(v) if hasattr(v, "__len__") and not isinstance(v, str) else 1 for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DatabaseError(
            f"{database}: columns of different lengths {lengths}; expected one value per peak in each of them."
        )
    try:
        xyz = np.column_stack([np.atleast_1d(np.asarray(c, dtype=float)) for c in (x, y, z)])
    except (TypeError, ValueError) as err:
        raise DatabaseError(f"{database}: x, y and z must be numbers in mm ({err}).") from err
    n = len(xyz)
    lines = np.zeros(n, dtype=np.int64) if lines is None else np.asarray(lines, dtype=np.int64)
    if n == 0:
        raise DatabaseError(
            f"{database}: no coordinates found; expected at least one peak row "
            f"(format {fmt}). Check that this is the right file."
        )
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        where = ", ".join(f"line {ln}" if ln else f"row {r}" for r, ln in zip(np.flatnonzero(bad)[:10], lines[bad][:10]))
        if bad.sum() > 10:
            where += f", and {int(bad.sum()) - 10} more"
        raise DatabaseError(
            f"{database}: {int(bad.sum())} peak(s) have a NaN or infinite coordinate ({where}); "
            "x, y and z must be finite numbers in mm. Fix or delete those rows."
        )
    # work once per distinct label (a database has a handful), not once per row
    if isinstance(space, pd.Categorical):
        labels, label_of = np.asarray(space.categories.astype(str)), space.codes
    else:
        labels, label_of = np.unique(np.asarray(space).astype(str), return_inverse=True)
    labels = np.array([lab.strip() for lab in labels], dtype=object)
    space = labels[label_of.ravel()]
    upper = np.array([lab.upper() for lab in labels], dtype=object)[label_of.ravel()]
    is_tal = np.isin(upper, list(TAL_LABELS))
    if is_tal.any():
        xyz[is_tal] = tal_to_mni(xyz[is_tal])
    unknown = ~(is_tal | np.isin(upper, list(MNI_LABELS)))
    if unknown.any():
        labels, counts = np.unique(space[unknown].astype(str), return_counts=True)
        desc = ", ".join(f"{str(lab)!r}: {int(c)} row(s)" for lab, c in zip(labels, counts))
        warnings.warn(
            f"{database}: unknown space label(s) {desc}; those coordinates were used as they are "
            "(as Neurosynth does). Known labels: MNI (kept) and TAL/T88/Talairach (moved to MNI).",
            SpaceWarning,
            stacklevel=4,  # make_table <- reader <- read_database <- the caller
        )
    ids = _normalise_ids(ids)
    table = xr.Dataset(
        {
            "study_id": ("peak", ids),
            "x": ("peak", xyz[:, 0]),
            "y": ("peak", xyz[:, 1]),
            "z": ("peak", xyz[:, 2]),
            "space": ("peak", space.astype(str)),
            "line": ("peak", lines),
        },
        attrs={
            "database": str(database),
            "format": fmt,
            "n_peaks": int(n),
            "n_studies": int(len(study_index(ids)[0])),
        },
    )
    table["x"].attrs.update(units="mm", long_name="MNI x")
    table["y"].attrs.update(units="mm", long_name="MNI y")
    table["z"].attrs.update(units="mm", long_name="MNI z")
    return table


def study_index(ids) -> tuple[np.ndarray, np.ndarray]:
    """Unique study ids in order of first appearance, and each row's position.

    Parameters
    ----------
    ids : (n,) array-like

    Returns
    -------
    studies : (n_studies,) array
    codes : (n,) int64 array
        ``studies[codes] == ids``.
    """
    ids = np.asarray(ids)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inverse.ravel()].astype(np.int64)


def database_name(path) -> str:
    """The name a database carries in messages and provenance: its path."""
    return os.fspath(path)
