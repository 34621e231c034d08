"""Grouped counts over ``study``: ROI overlap per study, active studies per voxel.

Two routes give identical integers:

* the sparse route, for an untouched cube built by :func:`xcoact.activations`:
  per study chunk, the sorted in-mask voxel numbers of each study (CSR); a
  count is a ``bincount`` per chunk, summed over chunks (a sum tree in Dask);
* the dense route, for any boolean ``(study, x, y, z)`` DataArray: xarray
  reductions chunk by chunk.

The per-voxel totals over all studies do not depend on the seed; the sparse
route computes them once per cube and reuses them.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .kernels import ActivationSource
from .kernels import _ranges as ranges
from .space import Grid

__all__ = ["overlap_counts", "roi_overlaps", "selected_counts", "study_rows", "ranges"]


def study_rows(indptr: np.ndarray) -> np.ndarray:
    """Row number of each stored entry of a CSR matrix."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _chunk_selected(source: ActivationSource, chunk: int, selected: np.ndarray) -> np.ndarray:
    indptr, indices = source.rows(chunk)
    s0, s1 = source.chunk_bounds[chunk]
    rows = np.flatnonzero(selected[s0:s1])
    # gather only the selected studies' entries (a few % of the index)
    return np.bincount(indices[ranges(indptr[rows], indptr[rows + 1])], minlength=source.grid.n_mask)


def _all_selected(source: ActivationSource, selected: np.ndarray) -> np.ndarray:
    return _sum([_chunk_selected(source, c, selected) for c in range(len(source.chunk_bounds))])


def _chunk_both(source: ActivationSource, chunk: int, selected: np.ndarray) -> np.ndarray:
    """(selected, all) active-study counts per in-mask voxel over one chunk, from one index pass."""
    indptr, indices = source.rows(chunk)
    s0, s1 = source.chunk_bounds[chunk]
    rows = np.flatnonzero(selected[s0:s1])
    m = source.grid.n_mask
    return np.stack([
        np.bincount(indices[ranges(indptr[rows], indptr[rows + 1])], minlength=m),
        np.bincount(indices, minlength=m),
    ])


def _sum(parts):
    out = parts[0].astype(np.int64)
    for p in parts[1:]:
        out = out + p
    return out


def _store_totals(source: ActivationSource, both: np.ndarray) -> np.ndarray:
    source._totals = both[1]  # seed-independent: every later seed reuses it
    return both


def overlap_counts(act: xr.DataArray, roi: xr.DataArray, grid: Grid) -> np.ndarray:
    """ROI voxels active in each study (computed now; cheap).

    Parameters
    ----------
    act : xarray.DataArray
        The cube ``(study, x, y, z)``.
    roi : xarray.DataArray
        bool ``(x, y, z)`` on the cube's labels.
    grid : Grid

    Returns
    -------
    (n_studies,) int64 array
    """
    source = ActivationSource.of_cube(act)
    if source is not None:
        # from the peaks that can reach the ROI: no index, no dense block needed
        return source.overlap(roi.transpose("x", "y", "z").values)
    # Dense route: only the ROI's bounding box of the cube is computed.
    roi = roi.transpose("x", "y", "z")
    where = np.nonzero(roi.values)
    box = {d: slice(int(w.min()), int(w.max()) + 1) for d, w in zip("xyz", where)}
    # label-aligned (xarray broadcasting by name), whatever the cube's dimension order
    sub = act.isel(box) & roi.isel(box)
    return np.asarray(sub.sum(("x", "y", "z")).values, dtype=np.int64)


#: From this many ROIs on, overlaps come from the sparse index (one product per chunk).
MANY_ROIS = 16


def roi_overlaps(act: xr.DataArray, rois, grid: Grid) -> np.ndarray:
    """ROI voxels active in each study, for each of several ROIs (computed now).

    A few ROIs on an untouched cube: from the peaks near each ROI (no index
    needed).  Many ROIs, or an index already built: one sparse product per
    study chunk (builds the index if needed).  Any other cube: the dense
    route, each ROI's bounding box only.

    Parameters
    ----------
    act : xarray.DataArray
    rois : sequence of SeedROI
        From :func:`xcoact.roi.seed_set`; an ROI without voxels gets zeros.
    grid : Grid

    Returns
    -------
    (n_rois, n_studies) int32 array
    """
    source = ActivationSource.of_cube(act)
    out = np.zeros((len(rois), act.sizes["study"]), dtype=np.int32)
    if source is not None and (len(rois) >= MANY_ROIS or source.has_index()):
        out[:] = source.overlaps([roi.voxels for roi in rois])
        return out
    for i, roi in enumerate(rois):
        if roi.voxels.size == 0:
            continue
        mask = np.zeros(int(np.prod(grid.shape)), dtype=bool)
        mask[roi.voxels] = True
        mask = mask.reshape(grid.shape)
        if source is not None:
            out[i] = source.overlap(mask)
        else:
            out[i] = overlap_counts(act, xr.DataArray(mask, dims=("x", "y", "z"), coords=grid.coords()), grid)
    return out


def source_node(source: ActivationSource, act: xr.DataArray):
    """The source as a single Dask graph node (the key the cube's own blocks use)."""
    return dask.delayed(source, pure=True, name="source-" + str(act.data.name))


def selected_counts(act: xr.DataArray, selected: np.ndarray, grid: Grid) -> tuple[da.Array, da.Array]:
    """Lazy per-voxel counts of active selected studies and of all studies.

    Parameters
    ----------
    act : xarray.DataArray
    selected : (n_studies,) bool array
    grid : Grid

    Returns
    -------
    a, total : (n_mask,) int64 dask arrays over the in-mask voxels
    """
    m = grid.n_mask
    source = ActivationSource.of_cube(act)
    if source is not None:
        chunks = range(len(source.chunk_bounds))
        # one graph key holds the source (the peaks, tens of MB), so it is stored, and shipped to each
        # worker, once rather than once per task
        src = source_node(source, act)
        if source._totals is not None and source.has_index():
            # warm: one small task over the cached index (scheduling many would cost more than the work)
            a = dask.delayed(_all_selected)(src, selected)
            return da.from_delayed(a, (m,), dtype=np.int64), source._totals
        if source._totals is not None:
            a = dask.delayed(_sum)([dask.delayed(_chunk_selected)(src, c, selected) for c in chunks])
            return da.from_delayed(a, (m,), dtype=np.int64), source._totals
        # one pass over each chunk's index gives both counts (the index may not be kept)
        both = dask.delayed(_sum)([dask.delayed(_chunk_both)(src, c, selected) for c in chunks])
        both = dask.delayed(_store_totals)(src, both)
        stacked = da.from_delayed(both, (2, m), dtype=np.int64)
        return stacked[0], stacked[1]
    act = act.transpose("study", "x", "y", "z")
    if not isinstance(act.data, da.Array):
        act = act.chunk()
    sel = np.flatnonzero(np.asarray(selected, dtype=bool))
    # Sum over studies block by block; only the (x, y, z) result is ever whole.
    a = act.isel(study=sel).astype(np.int64).sum("study").data
    total = act.astype(np.int64).sum("study").data
    return a.reshape(-1)[grid.mask_flat], total.reshape(-1)[grid.mask_flat]
