"""The coordinate table: one row per reported peak, in MNI millimetres.

Contract (every reader returns exactly this)
--------------------------------------------
An :class:`xarray.Dataset` with one dimension, ``peak``, and the variables

``study_id`` : (peak,) int64 or str
    The study (or experiment/contrast) the peak belongs to, as written in the
    source (stripped): int64 only when every id is the decimal form of an
    integer (PubMed ids), else text for all, so ``17.1`` and ``17.10``, or
    ``0012`` and ``12``, are different studies in every reader.
``x``, ``y``, ``z`` : (peak,) float64
    MNI coordinates in mm, after any Talairach -> MNI transform; finite.
``space`` : (peak,) str
    The space label as written in the source (``MNI``, ``TAL``, ``UNKNOWN``...).
``line`` : (peak,) int64
    1-based line of the source file the peak came from (0 when the format has
    no lines, e.g. JSON), so later errors can point back at the file.

and the attrs ``database`` (source path or name), ``format`` (reader name),
``n_studies`` and ``n_peaks``.  Studies are ordered by first appearance.

Sources that record more carry it in optional per-peak variables:

``sample_size`` : (peak,) float64
    The number of subjects of the peak's study (experiment), the same for all
    of a study's peaks, > 0, NaN where the source records none.  Read from
    Sleuth (``// Subjects = N``), NiMARE JSON (``metadata.sample_sizes``, the
    mean of the list), NIMADS and NiMARE objects; present only when the source
    records at least one.  ALE kernels are sized by it
    (:func:`xcoact.stats.ale.ale_fwhm`).
``analysis_name`` : (peak,) str
    The NIMADS analysis name (:mod:`xcoact.readers.nimads`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .errors import DatabaseError, MixedSpaceWarning, OutsideBrainWarning, SpaceWarning, caller_stacklevel, quote

__all__ = [
    "TAL_TO_MNI",
    "MNI_LABELS",
    "TAL_LABELS",
    "MNI_BOX",
    "FAR_MARGIN_MM",
    "MAX_ABS_MM",
    "make_table",
    "tal_to_mni",
    "study_index",
]

#: Lancaster et al. (2007), "Bias between MNI and Talairach coordinates analyzed
#: using the ICBM-152 brain template", Hum Brain Mapp 28:1194-1205: the
#: icbm_spm2tal matrix (MNI -> Talairach).  Its inverse moves TAL to MNI, as
#: Neurosynth 0.3.8 does (see docs/semantics.md, 'Talairach to MNI').
ICBM_SPM2TAL = np.array(
    [
        [0.9254, 0.0024, -0.0118, -1.0207],
        [-0.0048, 0.9316, -0.0871, -1.7667],
        [0.0152, 0.0883, 0.8924, 4.0926],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
TAL_TO_MNI = np.linalg.inv(ICBM_SPM2TAL)

#: MNI labels; NiMARE labels the coordinates it has moved to its template space with the template's name.
MNI_LABELS = frozenset({"MNI", "MNI152", "ICBM", "ICBM152", "MNI152_2MM", "MNI152_1MM", "ALE_2MM"})
TAL_LABELS = frozenset({"TAL", "T88", "TALAIRACH"})

#: The MNI152 2 mm grid's box, (min, max) mm of voxel centres along x, y, z
#: (see docs/semantics.md, 'The grid and the rounding of peaks').  It holds the whole head with a margin, so no brain
#: reaches past it.
MNI_BOX = ((-90.0, 90.0), (-126.0, 90.0), (-72.0, 108.0))
#: A peak more than this many mm outside :data:`MNI_BOX` lies far outside any
#: brain (a mistyped row, e.g. x = 900): it is kept, with a warning naming it.
FAR_MARGIN_MM = 20.0
#: Coordinates beyond this many mm (1 km) are no typo of a brain coordinate but
#: corrupt data (e.g. 1e308, which overflows when moved from Talairach): an error.
MAX_ABS_MM = 1e6
#: How many studies or peaks a warning names before it only counts the rest.
_SHOWN = 5


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


def make_table(ids, x, y, z, space, *, database: str, fmt: str, lines=None, sample_size=None) -> xr.Dataset:
    """Validate raw peak columns and build the coordinate table.

    Talairach rows (``TAL``, ``T88``, ``Talairach``; any case) are moved to
    MNI; MNI rows are kept; rows in any other space are kept untouched, as
    Neurosynth does, with a :class:`~xcoact.errors.SpaceWarning` naming each
    label, its row count and its first line.

    Two more problems warn rather than fail, because one bad row must not stop
    a 500,000-peak database (:ref:`semantics-kernel`): a study whose rows carry
    different space labels (:class:`~xcoact.errors.MixedSpaceWarning`; each
    row is still moved by its own label), and peaks more than
    :data:`FAR_MARGIN_MM` mm outside the MNI152 box, far outside any brain
    (:class:`~xcoact.errors.OutsideBrainWarning`, naming the lines of the
    farthest ones; they are kept, as Neurosynth keeps them).

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
    sample_size : (n,) array-like of float, optional
        Each row's study sample size (NaN where unknown); kept as the optional
        ``sample_size`` variable when given.

    Returns
    -------
    xarray.Dataset
        The coordinate table (see the module docstring).

    Raises
    ------
    DatabaseError
        A coordinate is NaN, infinite or beyond :data:`MAX_ABS_MM`, or the
        table is empty.

    Warns
    -----
    SpaceWarning
        Unknown space labels (coordinates used as they are).
    MixedSpaceWarning
        A study with rows in more than one space.
    OutsideBrainWarning
        Peaks far outside any brain.
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
        where = ", ".join(
            f"line {ln}" if ln else f"row {r}" for r, ln in zip(np.flatnonzero(bad)[:10], lines[bad][:10])
        )
        if bad.sum() > 10:
            where += f", and {int(bad.sum()) - 10} more"
        raise DatabaseError(
            f"{database}: {int(bad.sum())} peak(s) have a NaN or infinite coordinate ({where}); "
            "x, y and z must be finite numbers in mm. Fix or delete those rows."
        )
    huge = (np.abs(xyz) > MAX_ABS_MM).any(axis=1)
    if huge.any():
        rows = np.flatnonzero(huge)
        where = "; ".join(f"{_where(r, lines)}: ({', '.join(f'{v:g}' for v in xyz[r])})" for r in rows[:10]) + (
            f"; and {rows.size - 10} more" if rows.size > 10 else ""
        )
        raise DatabaseError(
            f"{database}: {rows.size} peak(s) have a coordinate beyond {MAX_ABS_MM:,.0f} mm in size ({where}); "
            "that is no brain coordinate in any unit but a corrupt or mis-scaled value (peaks far outside the brain "
            "but within that limit only warn). Fix or delete those rows."
        )
    # work once per distinct label (a database has a handful), not once per row
    if isinstance(space, pd.Categorical):
        labels, label_of = np.asarray(space.categories.astype(str)), space.codes
    else:
        labels, label_of = np.unique(np.asarray(space).astype(str), return_inverse=True)
    labels = labels_all = np.array([lab.strip() for lab in labels], dtype=object)
    space = labels[label_of.ravel()]
    upper = np.array([lab.upper() for lab in labels], dtype=object)[label_of.ravel()]
    is_tal = np.isin(upper, list(TAL_LABELS))
    if is_tal.any():
        xyz[is_tal] = tal_to_mni(xyz[is_tal])
    unknown = ~(is_tal | np.isin(upper, list(MNI_LABELS)))
    if unknown.any():
        labels, first, counts = np.unique(space[unknown].astype(str), return_index=True, return_counts=True)
        desc = ", ".join(f"{quote(str(lab))}: {int(c)} row(s)" for lab, c in zip(labels, counts))
        rows = np.flatnonzero(unknown)[first]
        where = ", ".join(f"{quote(str(lab))} at {_where(int(r), lines)}" for lab, r in zip(labels, rows))
        warnings.warn(
            f"{database}: unknown space label(s) {desc}; those coordinates were used as they are "
            "(as Neurosynth does). Known labels: MNI (kept) and TAL/T88/Talairach (moved to MNI). "
            f"First rows: {where}; relabel them in the file if you know their space.",
            SpaceWarning,
            stacklevel=caller_stacklevel(),
        )
    ids = _normalise_ids(ids)
    studies, codes = study_index(ids)
    # the space each distinct label stands for: MNI, TAL, or the unknown label itself (upper case)
    label_kind = [
        "TAL" if u in TAL_LABELS else "MNI" if u in MNI_LABELS else u for u in (lab.upper() for lab in labels_all)
    ]
    _, kind_of_label = np.unique(np.asarray(label_kind, dtype=str), return_inverse=True)
    _warn_mixed_spaces(database, studies, codes, kind_of_label.ravel()[label_of.ravel()], space, lines)
    _warn_far_peaks(database, xyz, ids, codes, lines)
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
            "n_studies": int(len(studies)),
        },
    )
    if sample_size is not None:
        table["sample_size"] = ("peak", checked_sample_sizes(sample_size, n, database), {"long_name": SAMPLE_SIZE_NAME})
    table["x"].attrs.update(units="mm", long_name="MNI x")
    table["y"].attrs.update(units="mm", long_name="MNI y")
    table["z"].attrs.update(units="mm", long_name="MNI z")
    return table


#: The ``long_name`` of the ``sample_size`` variable.
SAMPLE_SIZE_NAME = "sample size of the analysis"


def checked_sample_sizes(values, n: int, database: str) -> np.ndarray:
    """Per-peak sample sizes as float64, checked: ``n`` of them, each > 0 or NaN (unknown).

    Raises
    ------
    DatabaseError
        A wrong length, or a value that is not a positive finite number nor NaN.
    """
    try:
        sizes = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DatabaseError(
            f"{database}: sample sizes must be numbers ({err}); expected a number of subjects > 0 per peak, NaN where "
            "unknown."
        ) from err
    if sizes.size != n:
        raise DatabaseError(
            f"{database}: {sizes.size} sample size(s) for {n} peak(s); expected one per peak (NaN where unknown)."
        )
    bad = ~np.isnan(sizes) & ~(np.isfinite(sizes) & (sizes > 0))
    if bad.any():
        raise DatabaseError(
            f"{database}: sample size {sizes[bad][0]:g} (peak {int(np.flatnonzero(bad)[0])}) is not a number of "
            "subjects; "
            "expected a finite number > 0, or NaN where unknown."
        )
    return sizes


def _where(row: int, lines: np.ndarray) -> str:
    """``line N`` when the format has lines, else ``row N`` (0-based position in the table)."""
    return f"line {int(lines[row])}" if lines[row] else f"row {int(row)}"


def _py(value):
    """A numpy scalar as the Python value (so messages show 12, not np.int64(12))."""
    return value.item() if isinstance(value, np.generic) else value


def _warn_mixed_spaces(database, studies, codes, kind, space, lines) -> None:
    """Warn about studies whose rows carry labels of different spaces (each row keeps its own transform).

    ``kind`` holds each row's space as a small int code (same code, same space).
    """
    n_kinds_total = int(kind.max()) + 1 if kind.size else 0
    if n_kinds_total < 2:
        return
    pairs = np.unique(codes * n_kinds_total + kind)
    n_kinds = np.bincount(pairs // n_kinds_total, minlength=len(studies))
    mixed = np.flatnonzero(n_kinds > 1)
    if not mixed.size:
        return
    parts = []
    for s in mixed[:_SHOWN]:
        rows = np.flatnonzero(codes == s)
        labels, first, counts = np.unique(space[rows].astype(str), return_index=True, return_counts=True)
        order = np.argsort(first)
        desc = ", ".join(
            f"{quote(str(labels[i]))} ({int(counts[i])} row(s), first at {_where(rows[first[i]], lines)})"
            for i in order
        )
        parts.append(f"study {quote(_py(studies[s]))}: {desc}")
    more = f"; and {mixed.size - _SHOWN} more" if mixed.size > _SHOWN else ""
    warnings.warn(
        f"{database}: {mixed.size} stud(y/ies) report peaks in more than one space - {'; '.join(parts)}{more}. "
        "Each row was moved by its own label (TAL/T88/Talairach to MNI, MNI kept, others as they are), as "
        "Neurosynth does; check those studies' labels, since one study's peaks normally share a space.",
        MixedSpaceWarning,
        stacklevel=caller_stacklevel(),
    )


def _warn_far_peaks(database, xyz, ids, codes, lines) -> None:
    """Warn about peaks far outside any brain, naming the farthest by line (they are kept)."""
    lo = np.array([b[0] for b in MNI_BOX])
    hi = np.array([b[1] for b in MNI_BOX])
    # mm beyond the box along the worst axis (0 inside it)
    beyond = np.maximum(lo - xyz, xyz - hi).clip(min=0).max(axis=1)
    far = np.flatnonzero(beyond > FAR_MARGIN_MM)
    if not far.size:
        return
    worst = far[np.argsort(-beyond[far], kind="stable")[:_SHOWN]]
    shown = "; ".join(
        f"{_where(r, lines)} (study {quote(_py(ids[r]))}, MNI x={xyz[r, 0]:g}, y={xyz[r, 1]:g}, z={xyz[r, 2]:g})"
        for r in worst
    )
    more = f"; and {far.size - _SHOWN} more" if far.size > _SHOWN else ""
    box = ", ".join(f"{a} in [{b[0]:g}, {b[1]:g}]" for a, b in zip("xyz", MNI_BOX))
    warnings.warn(
        f"{database}: {far.size} peak(s) in {len(np.unique(codes[far]))} stud(y/ies) lie far outside any brain "
        f"(more than {FAR_MARGIN_MM:g} mm outside the MNI152 box {box} mm), farthest first: {shown}{more}. "
        "They were kept (as in Neurosynth they add only what of their sphere falls inside the grid, usually "
        "nothing); check those rows for a mistyped coordinate or a wrong space label.",
        OutsideBrainWarning,
        stacklevel=caller_stacklevel(),
    )


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
    codes, studies = pd.factorize(ids.ravel(), use_na_sentinel=False)
    # pandas hands text back as objects: keep the ids' own dtype
    return np.asarray(studies).astype(ids.dtype, copy=False), codes.astype(np.int64, copy=False)
