"""In-memory databases: NiMARE ``Dataset`` / ``Studyset`` objects, coordinate DataFrames, NIMADS dicts.

:func:`as_table` turns any of them into the coordinate table (see
:mod:`xcoact.table`), so :func:`xcoact.read_database` and
:func:`xcoact.activations` take them as they take a file.

NiMARE's ``Dataset.coordinates`` (and ``Studyset.coordinates``) hold
coordinates NiMARE has already moved to its target space, labelled with that
space (``"mni152_2mm"``); xcoact reads such labels as MNI and leaves the
coordinates as they are.  A ``Studyset`` is read from its NIMADS form
(``Studyset.to_dict()``), with each point's own space label, so Talairach
points are moved by xcoact's rule as when the JSON file is read.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ..choices import ObjectFormat
from ..errors import DatabaseError, EmptyStudyWarning, ParameterError, caller_stacklevel
from ..table import make_table
from .nimads import _number, nimads_table

__all__ = ["as_table", "coordinates_table", "is_database_object"]

_ACCEPTED = (
    "a path to a database file, a coordinate table (xarray.Dataset), a NiMARE Dataset or Studyset, a NIMADS "
    "studyset dict, or a coordinates DataFrame with columns id (or study_id), x, y, z, space"
)


def _is_nimare(obj, name: str) -> bool:
    return type(obj).__name__ == name and type(obj).__module__.split(".")[0] == "nimare"


def is_database_object(obj) -> bool:
    """Whether ``obj`` is an in-memory database :func:`as_table` converts (not a path or a table)."""
    return (
        isinstance(obj, pd.DataFrame)
        or (isinstance(obj, dict) and "studies" in obj)
        or _is_nimare(obj, "Dataset")
        or _is_nimare(obj, "Studyset")
    )


def _mean_size(value) -> float:
    """A NiMARE ``sample_sizes`` cell (a list, or one number) as its mean; NaN when missing."""
    if isinstance(value, (list, tuple, np.ndarray)):
        values = [_number(v) for v in value]
        if values and all(v is not None for v in values):
            return float(np.mean(np.asarray(values, dtype=np.float64)))
        return float("nan")
    one = _number(value)
    return float("nan") if one is None else one


def coordinates_table(
    coordinates: pd.DataFrame,
    metadata: pd.DataFrame | None = None,
    *,
    database: str = "coordinates DataFrame",
    fmt: ObjectFormat = "dataframe",
) -> xr.Dataset:
    """The coordinate table of a DataFrame of peaks, such as NiMARE's ``Dataset.coordinates``.

    Parameters
    ----------
    coordinates : pandas.DataFrame
        One row per peak, with the columns ``id`` (or ``study_id``), ``x``,
        ``y``, ``z`` (mm) and ``space`` (``"MNI"``, ``"TAL"``, or NiMARE's
        ``"mni152_2mm"``).  An optional ``sample_size`` column (a number) or
        ``sample_sizes`` column (a list, as NiMARE's metadata) gives each
        peak's sample size.
    metadata : pandas.DataFrame, optional
        One row per study with ``id`` and ``sample_sizes`` (NiMARE's
        ``Dataset.metadata``), used when ``coordinates`` has no sample sizes.
    database, fmt : str
        The table's ``database`` and ``format`` attrs.

    Returns
    -------
    xarray.Dataset
        The coordinate table, with ``sample_size`` (NaN where unknown; a
        list's mean) when any sample size is known.

    Raises
    ------
    DatabaseError
        A required column is missing, or a coordinate is not a finite number.
    """
    cols = list(coordinates.columns)
    id_col = "id" if "id" in cols else "study_id" if "study_id" in cols else None
    missing = ([] if id_col else ["id (or study_id)"]) + [c for c in ("x", "y", "z", "space") if c not in cols]
    if missing:
        hint = " (add df['space'] = 'MNI' if every peak is in MNI)" if missing == ["space"] else ""
        raise DatabaseError(
            f"{database}: no column(s) {missing}; expected one row per peak with the columns id (or study_id), "
            f"x, y, z (mm) and space{hint}. Found columns: {cols}."
        )
    try:
        xyz = [pd.to_numeric(coordinates[c], errors="raise").to_numpy(dtype=np.float64) for c in "xyz"]
    except (TypeError, ValueError) as err:
        raise DatabaseError(f"{database}: x, y and z must be numbers in mm ({err}).") from err
    # NiMARE keeps one all-NaN row for an experiment without coordinates: left out, as the JSON readers do
    empty = np.isnan(xyz[0]) & np.isnan(xyz[1]) & np.isnan(xyz[2])
    if empty.any():
        names = list(dict.fromkeys(str(i) for i in coordinates[id_col].to_numpy()[empty]))
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        warnings.warn(
            f"{database}: {int(empty.sum())} row(s) without coordinates (x, y and z all NaN) were left out, of "
            f"{names[:5]}{more}; NiMARE keeps such a row for an experiment that reports no peak.",
            EmptyStudyWarning,
            stacklevel=caller_stacklevel(),
        )
        coordinates = coordinates[~empty]
        xyz = [v[~empty] for v in xyz]
    ids = coordinates[id_col].to_numpy()
    space = coordinates["space"].astype(object).where(coordinates["space"].notna(), "UNKNOWN").astype(str).to_numpy()
    table = make_table(ids, xyz[0], xyz[1], xyz[2], space, database=database, fmt=fmt)
    sizes = None
    if "sample_size" in cols:
        sizes = np.array([_mean_size(v) for v in coordinates["sample_size"]], dtype=np.float64)
    elif "sample_sizes" in cols:
        sizes = np.array([_mean_size(v) for v in coordinates["sample_sizes"]], dtype=np.float64)
    elif metadata is not None and "sample_sizes" in metadata.columns and "id" in metadata.columns:
        by_id = {str(i): _mean_size(v) for i, v in zip(metadata["id"], metadata["sample_sizes"])}
        sizes = np.array([by_id.get(str(i), np.nan) for i in ids], dtype=np.float64)
    if sizes is not None:
        table["sample_size"] = ("peak", sizes, {"long_name": "sample size of the analysis"})
    return table


def as_table(db) -> xr.Dataset:
    """Any database xcoact reads, as the coordinate table.

    Parameters
    ----------
    db : str, path-like, xarray.Dataset, pandas.DataFrame, dict, nimare Dataset or nimare Studyset
        A path is read with :func:`xcoact.read_database`; a coordinate table
        is returned as it is; a DataFrame goes through
        :func:`coordinates_table`; a NiMARE ``Dataset`` through its
        ``coordinates`` and ``metadata`` (ids ``"{study}-{contrast}"``, its
        spaces and sample sizes kept); a NiMARE ``Studyset`` or a NIMADS
        dict through :func:`xcoact.readers.nimads.nimads_table`.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ParameterError
        ``db`` is none of these.
    """
    if isinstance(db, xr.Dataset):
        return db
    if isinstance(db, (str, os.PathLike)):
        from . import read_database

        return read_database(db)
    if isinstance(db, pd.DataFrame):
        return coordinates_table(db)
    if isinstance(db, dict) and "studies" in db:
        return nimads_table(db, database=f"NIMADS studyset {db.get('id')!r}", fmt="nimads")
    if _is_nimare(db, "Studyset"):
        return nimads_table(db.to_dict(), database=f"NiMARE Studyset {db.id!r}", fmt="nimare-studyset")
    if _is_nimare(db, "Dataset"):
        return coordinates_table(
            db.coordinates, db.metadata, database=f"NiMARE Dataset ({len(db.ids)} experiments)", fmt="nimare-dataset"
        )
    raise ParameterError(f"a database of type {type(db).__name__} is not understood; expected {_ACCEPTED}.")
