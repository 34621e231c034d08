"""The lazy activation cube: a Dask-backed boolean DataArray ``(study, x, y, z)``.

Nothing is computed when the cube is built.  Each Dask block is produced
straight from the peaks of its studies that can reach its box, so indexing a
region (an ROI's bounding box, a slice) computes only the blocks that region
touches, and each of those only from the peaks near it.
"""

from __future__ import annotations

import os
import warnings
import weakref

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from .errors import ParameterError
from .kernels import _REGISTRY, ActivationSource, check_radius
from .presets import Preset, get_preset, warn_mixed_spaces
from .space import Grid
from .warnings import OutOfBoxWarning

__all__ = ["activations", "DEFAULT_CHUNKS"]

#: Default chunking: 1,024 studies by blocks of about 23 x 28 x 23 voxels
#: (a dense bool block of at most 15 MB; 64 spatial blocks on the 2 mm grid).
DEFAULT_CHUNKS = {"study": 1024, "x": 23, "y": 28, "z": 23}


def _axis_chunks(n: int, size: int) -> tuple[int, ...]:
    return tuple(min(size, n - s) for s in range(0, n, size))


def _block(source: ActivationSource, block_info=None) -> np.ndarray:
    (s0, s1), *box = block_info[None]["array-location"]
    lo = [b[0] for b in box]
    hi = [b[1] for b in box]
    return source.dense(s0, s1, lo, hi)


def activations(
    db,
    r: float | None = None,
    *,
    preset: str | Preset = "neurosynth",
    grid: Grid | None = None,
    chunks: dict | None = None,
) -> xr.DataArray:
    """The lazy study x voxel activation cube of a coordinate database.

    ``A[study, x, y, z]`` is True where the union of the study's binary
    spheres (radius ``r`` mm around each peak's voxel, SPEC section 3) covers
    an in-mask voxel.  Matches Neurosynth 0.3.8's ``ImageTable`` for even ``r``
    (``preset="neurosynth"``), or NiMARE 0.22.1's ``MKDAKernel`` modeled
    activation maps (``preset="nimare"``).

    Parameters
    ----------
    db : xarray.Dataset or str or path-like
        A coordinate table from :func:`xcoact.read_database`, or a path to read.
    r : float, optional
        Kernel radius in mm; the preset's by default (6 for Neurosynth, 10 for NiMARE).
    preset : {"neurosynth", "nimare"} or Preset
        The reference to reproduce (:mod:`xcoact.presets`): it supplies ``r``
        and ``grid`` unless they are given, and how peaks reach their voxels
        (NiMARE moves Talairach peaks with another affine than Neurosynth).
    grid : Grid, optional
        The voxel grid and brain mask; the preset's by default (MNI152 2 mm
        with Neurosynth's mask; NiMARE's 228,483-voxel mask for ``"nimare"``).
    chunks : dict, optional
        Block sizes for ``study``, ``x``, ``y``, ``z``; see :data:`DEFAULT_CHUNKS`.

    Returns
    -------
    xarray.DataArray
        Boolean, dims ``(study, x, y, z)``, Dask-backed.  Coordinates: the
        study ids, x/y/z in mm at voxel centres (x descending on the default
        LAS grid), and ``brain_mask (x, y, z)``.  Cost: building it computes
        nothing (it sorts the peaks, O(n_peaks)); computing a region computes
        only the blocks it touches.

    Warns
    -----
    OutOfBoxWarning
        Some peaks lie outside the grid's box; they still contribute the
        part of their sphere inside it, as in Neurosynth.

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.warnings.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> dict(act.sizes)
    {'study': 100, 'x': 91, 'y': 109, 'z': 91}
    >>> type(act.data).__name__
    'Array'
    """
    if isinstance(db, (str, os.PathLike)):
        from .readers import read_database

        db = read_database(db)
    if not isinstance(db, xr.Dataset) or "study_id" not in db:
        raise ParameterError(
            f"db must be a coordinate table from xcoact.read_database (or a path to a database), got {type(db).__name__}."
        )
    _check_coordinates(db)
    preset = get_preset(preset)
    r = check_radius(preset.kernel_r if r is None else r)
    grid = grid or preset.grid()
    chunks = {**DEFAULT_CHUNKS, **(chunks or {})}
    for dim, size in chunks.items():
        if dim not in DEFAULT_CHUNKS or isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ParameterError(f"chunks[{dim!r}]={size!r}: expected a positive int for each of {list(DEFAULT_CHUNKS)}.")
    if chunks["study"] > 65536:
        raise ParameterError(f"chunks['study']={chunks['study']} is too large; expected at most 65,536 studies per chunk.")
    warn_mixed_spaces(db, preset)  # a study mixing spaces: NiMARE's conversion would move all its peaks alike
    source = ActivationSource(db, grid, r, chunks["study"], peak_transform=preset.peak_transform)

    outside = ~grid.in_box(source.ijk)
    if outside.any():
        n_st = len(np.unique(source.codes[outside]))
        warnings.warn(
            f"{source.database}: {int(outside.sum())} peak(s) in {n_st} stud(y/ies) lie outside the "
            f"{'x'.join(map(str, grid.shape))} grid box; they contribute only the part of their sphere "
            "inside it (as in Neurosynth).",
            OutOfBoxWarning,
            stacklevel=2,
        )

    n = source.n_studies
    all_chunks = (
        tuple(b - a for a, b in source.chunk_bounds),
        *(_axis_chunks(grid.shape[a], chunks[d]) for a, d in enumerate("xyz")),
    )
    # the mm coordinates and ids are part of the name: selection rules read them from the source
    name = "activations-" + tokenize(source.ijk, source.codes, source.xyz, source.studies, r, grid.token, all_chunks)
    # the registry holds sources weakly: a live cube of the same name (the same peaks, ids, radius,
    # grid and chunks) lends its source, so deleting either cube never unregisters the other
    shared = _REGISTRY.get(name, source)
    data = da.map_blocks(
        _block,
        _delayed_source(shared, name),
        chunks=all_chunks,
        dtype=bool,
        meta=np.empty((0, 0, 0, 0), dtype=bool),
        name=name,
    )
    shared.register(data.name)
    cube = xr.DataArray(
        data,
        dims=("study", "x", "y", "z"),
        coords={
            "study": source.studies,
            **{k: (k, v, {"units": "mm"}) for k, v in grid.coords().items()},
            "brain_mask": (("x", "y", "z"), grid.mask),
        },
        name="activations",
        attrs={
            "long_name": "study activation (binary sphere kernel)",
            "r": r,
            "kernel": "binary sphere",
            "database": source.database,
            "n_studies": n,
            "n_peaks": int(len(source.ijk)),
            "grid": grid.name,
            "preset": preset.name,
        },
    )
    if db.attrs.get("features"):
        cube.attrs["features"] = str(db.attrs["features"])  # a release's term features (xcoact.decode.features_for)
    _CUBES[name] = cube
    return cube


def _check_coordinates(db: xr.Dataset) -> None:
    """A hand-made table gets the readers' coordinate checks (finite, within MAX_ABS_MM of the origin)."""
    from .table import MAX_ABS_MM

    missing = [c for c in ("x", "y", "z") if c not in db]
    if missing:
        raise ParameterError(f"db has no {', '.join(missing)} variable(s); a coordinate table has study_id, x, y, z (mm).")
    xyz = np.column_stack([np.asarray(db[c].values, dtype=np.float64) for c in ("x", "y", "z")])
    bad = ~np.isfinite(xyz).all(axis=1) | (np.abs(xyz) > MAX_ABS_MM).any(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ParameterError(
            f"{db.attrs.get('database', 'db')}: {int(bad.sum())} peak(s) have a NaN, infinite or absurd coordinate "
            f"(beyond {MAX_ABS_MM:g} mm; first rows {rows}); fix or drop them (xcoact.read_database checks files this way)."
        )


#: Live cubes by the name of their Dask array, so that a result (whose ``attrs["cube"]`` holds that
#: name) can find the cube it came from in this session (``maps.coact.decode()``, ``maps.coact.fwe()``).
_CUBES: "weakref.WeakValueDictionary[str, xr.DataArray]" = weakref.WeakValueDictionary()


def cube_of(result: xr.Dataset) -> xr.DataArray | None:
    """The cube a result was computed from, if it is still alive in this session."""
    return _CUBES.get(str(result.attrs.get("cube", "")))


def _delayed_source(source: ActivationSource, name: str):
    from dask import delayed

    # One graph key holds the source, so Dask ships it once per worker, not once per block.
    return delayed(source, pure=True, name="source-" + name)
