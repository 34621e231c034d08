"""The lazy activation cube: a Dask-backed DataArray ``(study, x, y, z)``, boolean by default.

Nothing is computed when the cube is built.  Its graph holds one
:class:`~xcoact.blocks.StudyChunk` per run of studies (their peaks) and one
task per block that makes an :class:`~xcoact.blocks.ActivationBlock` view of
a chunk: a sparse block that indexes, transposes, rechunks and persists as
itself, and reads as the dense block anywhere else.  With ``kernel="kda"`` (or
any :class:`~xcoact.kernels.Kernel`) the chunks keep the kernel's values
beside their rows and the cube holds those values.
"""

from __future__ import annotations

import os
import warnings

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from .blocks import ActivationBlock, StudyChunk, empty_block, narrow_ints, release_freed
from .choices import KernelName, PresetName
from .errors import OutOfBoxWarning, ParameterError, caller_stacklevel
from .kernels import Kernel, SphereKernel, check_radius, get_kernel, sphere_offsets
from .presets import Preset, get_preset, warn_mixed_spaces
from .space import Grid
from .table import study_index

__all__ = ["activations", "DEFAULT_CHUNKS"]

#: Default chunking: 1,024 studies by the whole grid (a sparse block of about 12 MB of rows on
#: Neurosynth v7 at r = 6; the dense bool equivalent would be 924 MB).
DEFAULT_CHUNKS = {"study": 1024, "x": -1, "y": -1, "z": -1}


def _axis_chunks(n: int, size: int) -> tuple[int, ...]:
    size = n if size == -1 else size
    return tuple(min(size, n - s) for s in range(0, n, size))


def _view(chunk: StudyChunk, lo, hi) -> ActivationBlock:
    """One block of the cube: every study of ``chunk`` over the box ``[lo, hi)``, its rows built.

    The rows are built here, once per chunk in a process (the chunk keeps
    them), so a persisted block holds them wherever Dask keeps it.
    """
    chunk.paged()
    chunk.totals()  # every analysis's "all studies" group: built here too, one chunk per task, in parallel
    return ActivationBlock(chunk, None, tuple(np.arange(a, b) for a, b in zip(lo, hi)))


class DatabasePeaks:
    """A database's peaks on a grid, sorted by study: what the cube's chunks are cut from."""

    def __init__(self, table, grid: Grid, r: float | None, peak_transform=None, kernel: Kernel | None = None):
        self.r = check_radius(r) if kernel is None else r
        self.grid = grid
        if kernel is None:
            offsets = sphere_offsets(check_radius(r), grid.voxel_size)
        else:
            offsets = np.asarray(kernel.offsets, np.int64)
        self.database = table.attrs.get("database", "<table>")
        self.kernel = kernel
        self.offsets = offsets
        studies, codes = study_index(table["study_id"].values)
        order = np.argsort(codes, kind="stable")
        self.studies = studies
        self.codes = codes[order]
        # MNI mm per peak, sorted by study (the distance and nearest selection rules need mm, not voxels)
        self.xyz = _table_xyz(table)
        if np.any(order[1:] < order[:-1]):
            self.xyz = self.xyz[order]
        if peak_transform is not None:
            space = table["space"].values[order] if "space" in table else np.full(len(order), "MNI")
            self.xyz = np.asarray(peak_transform(self.xyz, space), dtype=np.float64)
        self.ijk = narrow_ints(grid.xyz_to_ijk(self.xyz))
        self.peak_ptr = np.searchsorted(self.codes, np.arange(len(studies) + 1))

    @property
    def n_studies(self) -> int:
        return len(self.studies)

    def chunk(self, s0: int, s1: int) -> StudyChunk:
        """Studies ``[s0, s1)`` as a :class:`StudyChunk`."""
        p0, p1 = self.peak_ptr[s0], self.peak_ptr[s1]
        return StudyChunk(
            self.ijk[p0:p1],
            self.xyz[p0:p1],
            self.codes[p0:p1] - s0,
            s1 - s0,
            self.offsets,
            self.grid,
            studies=self.studies[s0:s1],
            kernel=self.kernel,
        )


def _table_xyz(table) -> np.ndarray:
    """The table's x, y, z as one (n, 3) float64 array: a read-only view when they are one such array's columns.

    The readers' tables are (:func:`xcoact.table.make_table`), so a cube shares the mm with its table
    instead of holding a copy (24 bytes a peak).
    """
    x, y, z = (np.asarray(table[c].values) for c in ("x", "y", "z"))
    if all(
        c.dtype == np.float64 and c.strides == (24,) and c.base is not None and c.base is x.base for c in (x, y, z)
    ) and (y.ctypes.data - x.ctypes.data, z.ctypes.data - x.ctypes.data) == (8, 16):
        return np.lib.stride_tricks.as_strided(x, shape=(len(x), 3), strides=(24, 8), writeable=False)
    return np.column_stack([x, y, z]).astype(np.float64)


def activations(
    db,
    r: float | None = None,
    *,
    preset: PresetName | Preset = "neurosynth",
    grid: Grid | None = None,
    chunks: dict | None = None,
    kernel: KernelName | Kernel = "mkda",
    sample_size: float | None = None,
    fwhm: float | None = None,
) -> xr.DataArray:
    """The lazy study x voxel activation cube of a coordinate database.

    ``A[study, x, y, z]`` is True where the union of the study's binary
    spheres (radius ``r`` mm around each peak's voxel, :ref:`semantics-kernel`) covers
    an in-mask voxel.  Matches Neurosynth 0.3.8's ``ImageTable`` for even ``r``
    (``preset="neurosynth"``), or NiMARE 0.22.1's ``MKDAKernel`` modeled
    activation maps (``preset="nimare"``).  With ``kernel="kda"`` it holds the
    number of the study's foci within ``r`` mm of each in-mask voxel (int32),
    as NiMARE 0.22.1's ``KDAKernel(r=r)``.

    Parameters
    ----------
    db : xarray.Dataset or str or path-like or in-memory database
        A coordinate table from :func:`xcoact.read_database`, a path to read, or
        an in-memory database :func:`xcoact.read_database` takes (a NiMARE
        ``Dataset`` or ``Studyset``, a coordinates ``DataFrame``, a NIMADS dict).
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
    kernel : {"mkda", "kda"} or xcoact.kernels.Kernel
        How a study's peaks become its map: ``"mkda"`` (default) binary
        spheres; ``"kda"`` the count of foci within ``r``; or a
        :class:`~xcoact.kernels.Kernel` (it carries its parameters; ``r`` is
        then not given).  A kernel with values gives a cube of its dtype;
        the coactivation analyses read binary maps (``act.astype(bool)``).
        ``"ale"``: each study's ALE modelled activation (float32, NiMARE
        0.22.1's ``ALEKernel``), sized by the table's per-study sample sizes
        unless ``sample_size`` or ``fwhm`` is given (see :mod:`xcoact.stats.ale`).
    sample_size, fwhm : float, optional
        For ``kernel="ale"`` only: one sample size (subjects) or one FWHM (mm)
        for every study, e.g. for Neurosynth, whose files record no sizes.

    Returns
    -------
    xarray.DataArray
        Boolean (or the kernel's values), dims ``(study, x, y, z)``, Dask-backed.  Coordinates: the
        study ids, x/y/z in mm at voxel centres (x descending on the default
        LAS grid), and ``brain_mask (x, y, z)``.  Cost: building it computes
        nothing (it sorts the peaks, O(n_peaks)); computing a region computes
        only the blocks it touches.  Like :func:`dask.array.from_array`, the
        cube shares memory with its input: it reads the table's x, y and z
        (mm) without copying them, so edit a copy of the table, not the
        table, once a cube is built from it.

    Warns
    -----
    OutOfBoxWarning
        Some peaks lie outside the grid's box; they still contribute the
        part of their sphere inside it, as in Neurosynth.

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> dict(act.sizes)
    {'study': 100, 'x': 91, 'y': 109, 'z': 91}
    >>> type(act.data).__name__
    'Array'
    """
    if isinstance(db, (str, os.PathLike)):
        from .readers import read_database

        db = read_database(db)
    else:
        from .readers.objects import as_table, is_database_object

        if is_database_object(db):  # a NiMARE Dataset or Studyset, a coordinates DataFrame, a NIMADS dict
            db = as_table(db)
    if not isinstance(db, xr.Dataset) or "study_id" not in db:
        raise ParameterError(
            "db must be a coordinate table from xcoact.read_database (or a path to a database), got "
            f"{type(db).__name__}."
        )
    _check_coordinates(db)
    preset = get_preset(preset)
    grid = grid or preset.grid()
    if sample_size is not None or fwhm is not None:
        from .stats.ale import ale_kernel_for

        kernel = ale_kernel_for(kernel, r, sample_size, fwhm, grid)
    kern = get_kernel(kernel, r, preset, grid)
    if type(kernel) is SphereKernel:
        r = kernel.r  # the binary sphere as an object: the boolean route with its radius
    if kern is not None:
        kern = kern.bind(db)
    r = check_radius(preset.kernel_r if r is None else r) if kern is None else getattr(kern, "r", None)
    chunks = {**DEFAULT_CHUNKS, **(chunks or {})}
    for dim, size in chunks.items():
        if (
            dim not in DEFAULT_CHUNKS
            or isinstance(size, bool)
            or not isinstance(size, (int, np.integer))
            or (size < 1 and not (size == -1 and dim != "study"))
        ):
            raise ParameterError(
                f"chunks[{dim!r}]={size!r}: expected a positive int for each of {list(DEFAULT_CHUNKS)} "
                "(-1 for a whole spatial axis)."
            )
    warn_mixed_spaces(db, preset)  # a study mixing spaces: NiMARE's conversion would move all its peaks alike
    peaks = DatabasePeaks(db, grid, r, peak_transform=preset.peak_transform, kernel=kern)

    outside = ~grid.in_box(peaks.ijk)
    if outside.any():
        n_st = len(np.unique(peaks.codes[outside]))
        warnings.warn(
            f"{peaks.database}: {int(outside.sum())} peak(s) in {n_st} stud(y/ies) lie outside the "
            f"{'x'.join(map(str, grid.shape))} grid box; they contribute only the part of their sphere "
            "inside it (as in Neurosynth).",
            OutOfBoxWarning,
            stacklevel=caller_stacklevel(),
        )

    n = peaks.n_studies
    study_chunks = _axis_chunks(n, int(chunks["study"])) if n else (0,)
    space_chunks = [_axis_chunks(grid.shape[a], int(chunks[d])) for a, d in enumerate("xyz")]
    all_chunks = (study_chunks, *space_chunks)
    # the mm coordinates and ids are part of the name: selection rules read them from the blocks
    name = "activations-" + tokenize(
        peaks.ijk, peaks.codes, peaks.xyz, peaks.studies, r, grid.token, all_chunks, *(() if kern is None else (kern,))
    )
    data = _cube_array(peaks, name, all_chunks)
    cube = xr.DataArray(
        data,
        dims=("study", "x", "y", "z"),
        coords={
            "study": peaks.studies,
            **{k: (k, v, {"units": "mm"}) for k, v in grid.coords().items()},
            "brain_mask": (("x", "y", "z"), grid.mask),
        },
        name="activations",
        attrs={
            "long_name": "study activation (binary sphere kernel)",
            "r": r,
            "kernel": "binary sphere",
            "database": peaks.database,
            "n_studies": n,
            "n_peaks": int(len(peaks.ijk)),
            "grid": grid.name,
            "preset": preset.name,
        },
    )
    if kern is not None:
        cube.attrs.update(kern.attrs())
        if cube.attrs.get("r") is None:
            del cube.attrs["r"]  # a kernel without a radius (e.g. Gaussians)
    if db.attrs.get("features"):
        cube.attrs["features"] = str(
            db.attrs["features"]
        )  # a release's term features (xcoact.analyses.decode.features_for)
    return cube


def _cube_array(peaks: DatabasePeaks, name: str, all_chunks) -> da.Array:
    """The Dask array of the cube: a StudyChunk per run of studies, an ActivationBlock view per block."""
    from dask.highlevelgraph import HighLevelGraph

    study_chunks, *space_chunks = all_chunks
    layer: dict = {}  # chunk keys (str) and block keys (tuples)
    bounds = np.concatenate([[0], np.cumsum(study_chunks)])
    space_bounds = [np.concatenate([[0], np.cumsum(c)]) for c in space_chunks]
    for c in range(len(study_chunks)):
        chunk = peaks.chunk(int(bounds[c]), int(bounds[c + 1]))
        # one graph key holds a chunk's peaks (and, once built, its rows): every block of it
        # depends on that key, so the rows are built once and shipped to a worker once
        key = f"chunk-{name}-{c}"
        layer[key] = chunk
        for i in range(len(space_chunks[0])):
            for j in range(len(space_chunks[1])):
                for k in range(len(space_chunks[2])):
                    lo = (space_bounds[0][i], space_bounds[1][j], space_bounds[2][k])
                    hi = (space_bounds[0][i + 1], space_bounds[1][j + 1], space_bounds[2][k + 1])
                    layer[(name, c, i, j, k)] = (_view, key, tuple(map(int, lo)), tuple(map(int, hi)))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=())
    meta = empty_block(peaks.chunk(0, 0))  # no peaks: meta travels with every graph
    release_freed()  # the temporaries of sorting, rounding and cutting the peaks (31 MiB resident at 10x Neurosynth)
    return da.Array(graph, name, chunks=all_chunks, meta=meta)


def _check_coordinates(db: xr.Dataset) -> None:
    """A hand-made table gets the readers' coordinate checks (finite, within MAX_ABS_MM of the origin)."""
    from .table import MAX_ABS_MM

    missing = [c for c in ("x", "y", "z") if c not in db]
    if missing:
        raise ParameterError(
            f"db has no {', '.join(missing)} variable(s); a coordinate table has study_id, x, y, z (mm)."
        )
    xyz = np.column_stack([np.asarray(db[c].values, dtype=np.float64) for c in ("x", "y", "z")])
    bad = ~np.isfinite(xyz).all(axis=1) | (np.abs(xyz) > MAX_ABS_MM).any(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ParameterError(
            f"{db.attrs.get('database', 'db')}: {int(bad.sum())} peak(s) have a NaN, infinite or absurd coordinate "
            f"(beyond {MAX_ABS_MM:g} mm; first rows {rows}); fix or drop them (xcoact.read_database checks files this "
            "way)."
        )
