"""An xarray backend: ``xr.open_dataset(path, engine="xcoact")`` opens a coordinate database.

The Dataset holds the coordinate table (dimension ``peak``) and the lazy activation cube
``activations (study, x, y, z)``; every format :func:`xcoact.read_database` reads is accepted::

    ds = xr.open_dataset("database.txt", engine="xcoact", r=6)
    maps = ds["activations"].coact.seed([[0, 20, 28]], r=10, threshold=0.1)
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import xarray as xr
from xarray.backends import BackendEntrypoint

from .choices import PresetName
from .cube import activations
from .errors import ParameterError
from .kernels import check_radius
from .readers import Format, _head, read_database, sniff_format
from .space import Grid

__all__ = ["XcoactBackendEntrypoint", "open_database", "to_table", "TABLE_VARIABLES", "OPTIONAL_TABLE_VARIABLES"]

#: Coordinate-table variable -> its name in the opened Dataset.  The table's
#: peak coordinates are renamed because ``x``, ``y``, ``z`` are the cube's
#: voxel-centre coordinates.
TABLE_VARIABLES = {
    "study_id": "study_id",
    "x": "peak_x",
    "y": "peak_y",
    "z": "peak_z",
    "space": "space",
    "line": "line",
}
#: The table's optional per-peak variables (xcoact.table), kept under their own names when the source has them.
OPTIONAL_TABLE_VARIABLES = ("sample_size", "analysis_name")


def open_database(
    path: str | os.PathLike,
    *,
    r: float | None = None,
    preset: PresetName = "neurosynth",
    format: Format | None = None,
    grid: Grid | None = None,
    cube_chunks: dict | None = None,
    drop_variables: str | Iterable[str] | None = None,
) -> xr.Dataset:
    """The coordinate table and the lazy activation cube of a database, in one Dataset.

    This is what ``xr.open_dataset(path, engine="xcoact", ...)`` returns
    (xarray then wraps each variable for copy-on-write).

    Parameters
    ----------
    path : str or path-like
        A database file in any format :func:`xcoact.read_database` reads.
    r : float, optional
        Kernel radius in mm of the cube (as in :func:`xcoact.activations`);
        the preset's by default (6 mm for Neurosynth).
    preset : {"neurosynth", "nimare"}, default "neurosynth"
        The reference the cube reproduces (as in :func:`xcoact.activations`).
    format : {"neurosynth", "neurosynth-v7", "sleuth", "nimare-json"}, optional
        Skip the guess from the file's first bytes.
    grid : Grid, optional
        The cube's voxel grid and brain mask; MNI152 2 mm by default.
    cube_chunks : dict, optional
        The cube's block sizes, ``{"study": ..., "x": ..., "y": ..., "z": ...}``
        (see :data:`xcoact.cube.DEFAULT_CHUNKS`).  Named so because
        ``xr.open_dataset`` has its own ``chunks``, which would re-wrap the cube.
    drop_variables : str or iterable of str, optional
        Variables to leave out (names of the returned Dataset; unknown names
        are ignored, as by xarray's other backends).  Dropping
        ``"activations"`` skips building the cube.

    Returns
    -------
    xarray.Dataset
        ``study_id``, ``peak_x``, ``peak_y``, ``peak_z`` (MNI mm, Talairach
        already moved), ``space`` and ``line`` along ``peak`` (the table of
        :func:`xcoact.read_database`, its ``x``/``y``/``z`` renamed), and
        ``activations (study, x, y, z)``, the lazy bool cube of
        :func:`xcoact.activations` with its coordinates ``study``, ``x``,
        ``y``, ``z`` and ``brain_mask``.  ``attrs``: the table's (database,
        format, n_studies, n_peaks) plus the cube's r, kernel, grid and preset.

    Notes
    -----
    Cost: the file is read now (as by ``read_database``); the cube is lazy.
    ``ds["activations"]`` is the very Dask array ``xcoact.activations``
    returns, so the analyses take their fast route (peaks and sparse index)
    on it.  Do not ``.load()`` or ``.compute()`` the whole Dataset of a large
    database: that builds the dense cube (13 GB for Neurosynth v7).

    Examples
    --------
    >>> import warnings, xcoact
    >>> from xcoact.backend import open_database
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> ds = open_database(xcoact.datasets.sample_database_path())
    >>> dict(ds.sizes)
    {'peak': 2695, 'study': 100, 'x': 91, 'y': 109, 'z': 91}
    """
    drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
    if r is not None:
        r = check_radius(r)
    table = read_database(path, format=format)
    ds = xr.Dataset(
        {new: table[old].variable for old, new in TABLE_VARIABLES.items() if new not in drop},
        attrs=dict(table.attrs),
    )
    for name in OPTIONAL_TABLE_VARIABLES:
        if name in table and name not in drop:
            ds[name] = table[name].variable
    if "activations" not in drop:
        cube = activations(table, r=r, preset=preset, grid=grid, chunks=cube_chunks)
        if "brain_mask" in drop:
            cube = cube.drop_vars("brain_mask")
        ds["activations"] = cube
        ds.attrs.update({k: cube.attrs[k] for k in ("r", "kernel", "grid", "preset") if k in cube.attrs})
    return ds


def to_table(ds: xr.Dataset) -> xr.Dataset:
    """The coordinate table (as :func:`xcoact.read_database` returns it) of an opened Dataset.

    Renames ``peak_x``, ``peak_y``, ``peak_z`` back to ``x``, ``y``, ``z`` and
    keeps only the table's variables (the optional ``sample_size`` and
    ``analysis_name`` too, when present) and attrs.
    """
    missing = [new for new in TABLE_VARIABLES.values() if new not in ds]
    if missing:
        raise ParameterError(
            f"the Dataset lacks the table variable(s) {missing}; open it with engine='xcoact' without dropping them."
        )
    table = xr.Dataset({old: ds[new].variable for old, new in TABLE_VARIABLES.items()})
    for name in OPTIONAL_TABLE_VARIABLES:
        if name in ds:
            table[name] = ds[name].variable
    table.attrs = {k: ds.attrs[k] for k in ("database", "format", "n_peaks", "n_studies") if k in ds.attrs}
    return table


def _can_open(path: str) -> bool:
    """True for files whose first bytes are a database xcoact reads (not just anything read as database.txt)."""
    fmt = sniff_format(path)
    raw = _head(path, 4096)
    # (a gzip stream the reader could not open is no database)
    head = b"" if raw[:2] == b"\x1f\x8b" else raw.lstrip(b"\xef\xbb\xbf").lstrip()
    first = head.split(b"\n", 1)[0].rstrip(b"\r").lower()
    if fmt == "nimare-json":
        name = path.lower()
        return name.endswith((".json", ".json.gz")) and b'"contrasts"' in head
    if fmt == "sleuth":
        return b"reference" in first
    cols = {c.strip() for c in first.split(b"\t")}
    if fmt == "neurosynth-v7":
        return {b"id", b"x", b"y", b"z"} <= cols
    return {b"id", b"x", b"y", b"z", b"space"} <= cols


class XcoactBackendEntrypoint(BackendEntrypoint):
    """Open a coordinate database as the coordinate table plus the lazy activation cube.

    ``xr.open_dataset(path, engine="xcoact", r=None, preset="neurosynth",
    format=None, grid=None, cube_chunks=None, drop_variables=None)``; see :func:`open_database` for
    the parameters and the Dataset.  Leave ``xr.open_dataset``'s own
    ``chunks`` unset: xarray would re-wrap the cube in a new Dask array,
    which the analyses can only treat as an arbitrary boolean array (same
    results, slower).
    """

    description = (
        "Coordinate-based meta-analysis databases (Neurosynth, Neurosynth v7, Sleuth, NiMARE JSON) with xcoact"
    )
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "r", "preset", "format", "grid", "cube_chunks")

    def open_dataset(
        self,
        filename_or_obj,
        *,
        drop_variables: str | Iterable[str] | None = None,
        r: float | None = None,
        preset: PresetName = "neurosynth",
        format: Format | None = None,
        grid: Grid | None = None,
        cube_chunks: dict | None = None,
    ) -> xr.Dataset:
        try:
            path = os.fspath(filename_or_obj)
        except TypeError:
            raise ParameterError(
                f"the xcoact engine opens database files by path; got {type(filename_or_obj).__name__}. "
                "Pass the path of a database.txt, a v7 coordinates .tsv.gz, a Sleuth .txt or a NiMARE .json."
            ) from None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return open_database(
            path, r=r, preset=preset, format=format, grid=grid, cube_chunks=cube_chunks, drop_variables=drop_variables
        )

    def guess_can_open(self, filename_or_obj) -> bool:
        try:
            path = os.fspath(filename_or_obj)
        except TypeError:
            return False
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not os.path.isfile(path):
            return False
        try:
            return _can_open(path)
        except (OSError, ValueError):
            return False
