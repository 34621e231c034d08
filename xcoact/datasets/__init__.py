"""Data that ships with xcoact (the bundled real sample and ROIs, see ``data/README.md``), synthetic databases
resampled from real peaks, and the download entry points of :mod:`.fetch` and :mod:`.neurostore`.
"""

from __future__ import annotations

import functools
import os
import warnings
from importlib import resources

import numpy as np
import xarray as xr

from .. import validate
from ..errors import ParameterError, caller_stacklevel
from ..space import Grid, mni152_2mm
from ..table import make_table

__all__ = [
    "data_path",
    "sample_database_path",
    "amygdala_roi_path",
    "sgacc_roi_path",
    "template_path",
    "synthetic",
    "fetch_neurosynth",
    "fetch_neuroquery",
    "fetch_neurostore",
]

#: Re-exported from :mod:`xcoact.datasets.fetch`, imported on first use (keeps ``import xcoact`` free of urllib/ssl).
_FETCHERS = ("fetch_neurosynth", "fetch_neuroquery")


def __getattr__(name: str):
    if name in _FETCHERS:
        from . import fetch

        return getattr(fetch, name)
    if name == "fetch_neurostore":
        from .neurostore import fetch_neurostore

        return fetch_neurostore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_path(name: str) -> str:
    """Absolute path of a bundled data file."""
    path = resources.files("xcoact.datasets") / "data" / name
    if not path.is_file():
        available = sorted(
            p.name for p in (resources.files("xcoact.datasets") / "data").iterdir() if p.name != "README.md"
        )
        raise FileNotFoundError(f"no bundled data file {name!r}; available: {available}")
    return str(path)


def sample_database_path() -> str:
    """Neurosynth's real 100-study sample (2,695 peaks; ``database.txt`` format)."""
    return data_path("neurosynth_sample_database.txt")


def amygdala_roi_path() -> str:
    """An amygdala ROI on the 2 mm grid (366 voxels; from NiMARE's tests)."""
    return data_path("amygdala_roi.nii.gz")


def sgacc_roi_path() -> str:
    """A subgenual ACC ROI on the 2 mm grid (1,142 voxels; from Neurosynth's tests)."""
    return data_path("sgacc_mask.nii.gz")


def template_path() -> str:
    """The MNI152 2 mm template whose voxels > 0 are the brain mask."""
    return data_path("MNI152_T1_2mm_brain.nii.gz")


#: Shape (dispersion) ``r`` of the negative binomial behind :func:`synthetic`'s
#: per-study peak counts.
SYNTHETIC_NB_SHAPE = 1.5

#: Rows per block when testing peaks against the brain mask (bounds memory).
_MASK_BLOCK = 1_000_000

#: Re-jitter rounds after which :func:`synthetic` gives up (never reached with
#: jitters of a few cm; each round keeps a peak with probability >~ 0.1).
_MAX_ROUNDS = 1000


def _in_mask(grid: Grid, xyz: np.ndarray) -> np.ndarray:
    """Whether each (n, 3) mm row rounds to a voxel inside ``grid``'s box and brain mask."""
    out = np.empty(len(xyz), dtype=bool)
    mask = grid.mask.ravel()
    for start in range(0, len(xyz), _MASK_BLOCK):
        ijk = grid.xyz_to_ijk(xyz[start : start + _MASK_BLOCK])
        ok = grid.in_box(ijk)
        ok[ok] = mask[np.ravel_multi_index(tuple(ijk[ok].T), grid.shape)]
        out[start : start + len(ok)] = ok
    return out


def _pool_xyz(pool) -> tuple[np.ndarray, str | None]:
    """The pool's MNI peaks as an (n, 3) array, and its name for provenance."""
    from ..readers import read_database

    if pool is None:
        return _sample_pool_xyz(), None
    if isinstance(pool, xr.Dataset):
        missing = [v for v in ("x", "y", "z") if v not in pool.variables]
        if missing:
            raise ParameterError(
                f"pool: the Dataset has no variable(s) {missing}; expected a coordinate table from "
                "xcoact.read_database (or None, or a database path)."
            )
        table = pool
        name = str(pool.attrs.get("database", "<coordinate table>"))
    elif isinstance(pool, (str, os.PathLike)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = read_database(pool)
        for w in caught:  # point the reader's warnings at the caller of synthetic()
            warnings.warn(w.message, w.category, stacklevel=caller_stacklevel())
        name = os.fspath(pool)
    else:
        raise ParameterError(
            f"pool={type(pool).__name__} is not valid; expected None (the bundled sample), a database path "
            "or a coordinate table (xarray.Dataset from xcoact.read_database)."
        )
    xyz = np.column_stack([np.asarray(table[v].values, dtype=np.float64).ravel() for v in ("x", "y", "z")])
    if len(xyz) == 0:
        raise ParameterError("pool: no peaks; expected a database with at least one MNI peak.")
    if not np.isfinite(xyz).all():
        raise ParameterError(
            f"pool: {int((~np.isfinite(xyz).all(axis=1)).sum())} peak(s) have a NaN or infinite coordinate; "
            "expected finite MNI coordinates in mm. Drop those peaks first."
        )
    return xyz, name


@functools.lru_cache(maxsize=1)
def _sample_pool_xyz() -> np.ndarray:
    """The bundled sample's peaks (read once, its space warnings silenced), read-only."""
    from ..errors import XcoactWarning
    from ..readers import read_database

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        table = read_database(sample_database_path())
    xyz = np.column_stack([table[v].values for v in ("x", "y", "z")]).astype(np.float64)
    xyz.setflags(write=False)
    return xyz


def synthetic(
    n_studies: int,
    pool=None,
    seed: int = 0,
    *,
    mean_peaks: float = 35.0,
    jitter: float = 8.0,
    grid: Grid | None = None,
) -> xr.Dataset:
    """A deterministic synthetic coordinate database of any size, resampled from real peaks.

    Per-study peak counts are ``1 + NegativeBinomial(r, p)`` with shape
    ``r = 1.5`` (:data:`SYNTHETIC_NB_SHAPE`) and ``p = r / (r + mean_peaks - 1)``,
    so the mean is ``mean_peaks``, the minimum 1 and the variance
    ``m + m**2 / r`` with ``m = mean_peaks - 1``: right-skewed like real
    databases (for the default mean 35: sd ~28, median 28, mode ~12; Neurosynth
    v7 has 507,891 peaks in 14,371 studies, a mean of 35.3).

    Each peak is a row drawn uniformly (with replacement) from the pool's MNI
    coordinates plus isotropic Gaussian jitter of sd ``jitter`` mm.  A peak
    whose voxel (``grid.xyz_to_ijk``) falls outside the grid's box or brain
    mask is jittered again from the same pool row until it is inside, so every
    peak's voxel is in the mask.  Pool rows whose own voxel is outside the mask
    are left out of the pool first (97 of the bundled sample's 2,695), which
    guarantees this terminates.

    Parameters
    ----------
    n_studies : int
        Number of studies, >= 1.  Their ids are the integers ``1..n_studies``.
    pool : None, str, path-like or xarray.Dataset, optional
        Where the peaks come from: the bundled 100-study sample (default; read
        with its space warnings silenced), a database path (read with
        :func:`xcoact.read_database`, e.g. Neurosynth v7) or a coordinate table.
        Its coordinates are used as the table holds them (already MNI).
    seed : int, default 0
        Seed of :func:`numpy.random.default_rng`, >= 0; the same arguments
        give an identical table.
    mean_peaks : float, default 35.0
        Mean peaks per study, >= 1 (1 gives one peak per study).
    jitter : float, default 8.0
        Standard deviation of the jitter in mm, >= 0.
    grid : Grid, optional
        Grid and brain mask the peaks must fall in; MNI152 2 mm by default.

    Returns
    -------
    xarray.Dataset
        A coordinate table (see :mod:`xcoact.table`): ``study_id`` int64,
        space ``"MNI"`` and line 0 on every row; format ``"synthetic"`` and
        database ``"synthetic(n_studies=..., seed=...)"``, followed by the
        other arguments when they are not the defaults.

    Raises
    ------
    ParameterError
        An argument is out of range, or no pool peak lies in the brain mask.

    Notes
    -----
    Cost: vectorised (the re-jitter loop runs over the still-outside subset,
    a handful of rounds).  143,710 studies (about 5 million peaks) take about
    4 s with a peak of about 1.5 GB, of which :func:`xcoact.table.make_table`'s
    per-row handling of the space labels is about 2 s and 0.8 GB; the table
    itself is about 0.3 GB.

    Examples
    --------
    >>> import xcoact
    >>> db = xcoact.datasets.synthetic(1000, seed=1)
    >>> db.attrs["database"], db.attrs["n_studies"]
    ('synthetic(n_studies=1000, seed=1)', 1000)
    >>> 30 < db.attrs["n_peaks"] / 1000 < 40
    True
    """
    n_studies = validate.integer(n_studies, "n_studies", 1)
    seed = validate.integer(seed, "seed", 0)
    mean_peaks = validate.real(mean_peaks, "mean_peaks", 1.0, "mean peaks per study; 35 is Neurosynth's")
    jitter = validate.real(jitter, "jitter", 0.0, "sd in mm; 8 by default")
    if grid is None:
        grid = mni152_2mm()
    elif not isinstance(grid, Grid):
        raise ParameterError(
            f"grid={type(grid).__name__} is not valid; expected an xcoact.Grid (or None for MNI152 2 mm)."
        )
    pool_xyz, pool_name = _pool_xyz(pool)
    keep = _in_mask(grid, pool_xyz)
    if not keep.any():
        raise ParameterError(
            f"pool: none of its {len(pool_xyz)} peak(s) falls inside the grid's brain mask; expected MNI "
            "coordinates in mm on the same grid. Pass a pool in MNI space (or the grid it belongs to)."
        )
    pool_xyz = np.ascontiguousarray(pool_xyz[keep])

    rng = np.random.default_rng(seed)
    m = mean_peaks - 1.0
    r = SYNTHETIC_NB_SHAPE
    counts = 1 + rng.negative_binomial(r, r / (r + m), size=n_studies).astype(np.int64)
    n_peaks = int(counts.sum())
    row = rng.integers(0, len(pool_xyz), size=n_peaks)
    xyz = pool_xyz[row]
    noise = rng.standard_normal(size=(n_peaks, 3))
    noise *= jitter
    xyz += noise
    del noise
    todo = np.flatnonzero(~_in_mask(grid, xyz))
    rounds = 0
    while todo.size:
        rounds += 1
        if rounds > _MAX_ROUNDS:
            raise ParameterError(
                f"jitter={jitter:g} mm is too large for this grid: after {_MAX_ROUNDS} re-draws {todo.size} "
                "peak(s) are still outside the brain mask. Use a smaller jitter (a few mm to a few cm)."
            )
        xyz[todo] = pool_xyz[row[todo]] + jitter * rng.standard_normal(size=(todo.size, 3))
        todo = todo[~_in_mask(grid, xyz[todo])]
    del row

    name = f"synthetic(n_studies={n_studies}, seed={seed}"
    if pool_name is not None:
        name += f", pool={pool_name!r}"
    if mean_peaks != 35.0:
        name += f", mean_peaks={mean_peaks:g}"
    if jitter != 8.0:
        name += f", jitter={jitter:g}"
    if grid != mni152_2mm():
        name += f", grid={grid.name!r}"
    name += ")"
    ids = np.repeat(np.arange(1, n_studies + 1, dtype=np.int64), counts)
    # one shared str object for every row: make_table's per-row label loop then allocates nothing
    space = np.full(n_peaks, "MNI", dtype=object)
    return make_table(ids, xyz[:, 0], xyz[:, 1], xyz[:, 2], space, database=name, fmt="synthetic")
