"""Kernels: how a study's peaks become its map (numpy functions, arrays in and arrays out).

By default a study's map is the union of binary spheres of radius ``r`` mm
around its peaks' voxels, restricted to the brain mask (:ref:`semantics-kernel`).  The
sparse rows the cube is made of are built in :mod:`xcoact.blocks`.

Kernels with values (:class:`Kernel`: ``"kda"``, the per-study maximum of
Gaussians of ALE) go through the same cube: each one turns one study's peaks
into its in-mask voxels and their values (:meth:`Kernel.study_map`, the
extension point), and the cube's chunks keep those values beside their rows.
"""

from __future__ import annotations

import functools
import math
from typing import get_args

import numpy as np

from .choices import Combine
from .errors import ParameterError
from .space import Grid

__all__ = [
    "sphere_offsets",
    "dense_block",
    "roi_overlap",
    "roi_overlap_compiled",
    "check_radius",
    "Kernel",
    "SphereKernel",
    "KDAKernel",
    "FocusKernel",
    "KERNELS",
    "get_kernel",
    "combine_foci",
    "focus_voxels",
    "pattern_chunk_maps",
]


def check_radius(r, name: str = "r") -> float:
    """Validate a sphere radius in mm (finite, > 0)."""
    if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name}={r!r} is not a number; expected a radius in mm > 0, e.g. {name}=6.")
    if not math.isfinite(float(r)) or float(r) <= 0:
        raise ParameterError(f"{name}={r!r} is not a valid radius; expected a finite number of mm > 0, e.g. {name}=6.")
    return float(r)


#: The largest sphere :func:`sphere_offsets` builds, in voxels along any axis: 170 voxels is
#: 340 mm on a 2 mm grid, past the diagonal of the whole MNI152 box (334 mm), so any sphere
#: that can matter fits; its 20.6 million offsets take 490 MB.  Beyond it r is an error,
#: not an allocation of terabytes.
MAX_SPHERE_VOXELS = 170


def sphere_offsets(r: float, voxel_size=(2.0, 2.0, 2.0)) -> np.ndarray:
    """Voxel offsets whose centres lie within ``r`` mm of the centre voxel.

    This is the true sphere for every ``r`` (:ref:`semantics-kernel`): 123 offsets at
    r = 6 mm and 515 at r = 10 mm on a 2 mm grid, identical to Neurosynth's
    for even ``r``.  Built one x slice at a time, so memory is that of the
    offsets themselves, not of the (2r/v + 1)^3 box around them.

    Parameters
    ----------
    r : float
        Radius in mm, > 0, at most :data:`MAX_SPHERE_VOXELS` voxels along any axis.
    voxel_size : (3,) array-like of float
        Voxel edge lengths in mm.

    Returns
    -------
    (n_offsets, 3) int64 array
        In lexicographic (i, j, k) order.

    Raises
    ------
    ParameterError
        ``r`` is not a valid radius, or reaches past :data:`MAX_SPHERE_VOXELS` voxels.

    Examples
    --------
    >>> len(sphere_offsets(6)), len(sphere_offsets(10))
    (123, 515)
    """
    r = check_radius(r)
    vs = np.asarray(voxel_size, dtype=float)
    reach_vox = r / vs
    if not (reach_vox <= MAX_SPHERE_VOXELS).all():
        raise ParameterError(
            f"r={r:g} mm reaches {float(reach_vox.max()):,.0f} voxels of {float(vs[np.argmax(reach_vox)]):g} mm; "
            "spheres "
            f"are limited to {MAX_SPHERE_VOXELS} voxels along any axis (340 mm at 2 mm, more than the MNI152 box's "
            "diagonal), so memory stays bounded. Pass a smaller r."
        )
    reach = [int(math.floor(v)) for v in reach_vox]
    j = np.arange(-reach[1], reach[1] + 1)
    k = np.arange(-reach[2], reach[2] + 1)
    y2 = (j * vs[1]) ** 2
    z2 = (k * vs[2]) ** 2
    parts = []
    for i in range(-reach[0], reach[0] + 1):
        # (x^2 + y^2) + z^2 in the order numpy sums a row of three: the voxels of the whole-box formula
        inside = np.sqrt(((i * vs[0]) ** 2 + y2)[:, None] + z2[None, :]) <= r
        jj, kk = np.nonzero(inside)
        part = np.empty((jj.size, 3), dtype=np.int16)  # |offset| <= MAX_SPHERE_VOXELS fits int16
        part[:, 0], part[:, 1], part[:, 2] = i, j[jj], k[kk]
        parts.append(part)
    return np.concatenate(parts).astype(np.int64)


def dense_block(ijk, codes, n_studies: int, offsets, lo, hi, mask_block) -> np.ndarray:
    """Dense activation block for a box of the grid.

    Parameters
    ----------
    ijk : (n_peaks, 3) int array
        Peak voxels (may lie outside the grid).
    codes : (n_peaks,) int array
        Row of each peak's study in the block, ``0 <= codes < n_studies``.
    n_studies : int
    offsets : (n_offsets, 3) int array
        Sphere offsets, see :func:`sphere_offsets`.
    lo, hi : (3,) int
        The box ``[lo, hi)`` in voxel indices.
    mask_block : (hi - lo) bool array
        The brain mask inside the box.

    Returns
    -------
    (n_studies, *(hi - lo)) bool array
        True where a study's sphere union covers an in-mask voxel.
    """
    lo = np.asarray(lo)
    hi = np.asarray(hi)
    out = np.zeros((n_studies, *(hi - lo)), dtype=bool)
    if len(ijk) == 0:
        return out
    reach = np.abs(offsets).max(axis=0)
    near = np.all((ijk >= lo - reach) & (ijk < hi + reach), axis=1)
    ijk, codes = ijk[near], codes[near]
    if len(ijk) == 0:
        return out
    vox = (ijk[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    rows = np.repeat(codes, len(offsets))
    inside = np.all((vox >= lo) & (vox < hi), axis=1)
    vox = vox[inside] - lo
    out[rows[inside], vox[:, 0], vox[:, 1], vox[:, 2]] = True
    out &= mask_block[None]
    return out


def roi_overlap(ijk, codes, n_studies: int, offsets, roi) -> np.ndarray:
    """ROI voxels covered by each study's sphere union, straight from the peaks.

    Only peaks whose sphere can reach the ROI's bounding box are expanded, so
    the cost follows the ROI, not the database.

    Parameters
    ----------
    ijk : (n_peaks, 3) int array
    codes : (n_peaks,) int array
        Study row of each peak, ``0 <= codes < n_studies``.
    n_studies : int
    offsets : (n_offsets, 3) int array
    roi : 3-D bool array
        The ROI on the grid (already restricted to the brain mask).

    Returns
    -------
    (n_studies,) int64 array
    """
    where = np.nonzero(roi)
    if where[0].size == 0:
        return np.zeros(n_studies, dtype=np.int64)
    lo = np.array([w.min() for w in where])
    hi = np.array([w.max() + 1 for w in where])
    reach = np.abs(offsets).max(axis=0)
    near = np.flatnonzero(np.all((ijk >= lo - reach) & (ijk < hi + reach), axis=1))
    if near.size == 0:
        return np.zeros(n_studies, dtype=np.int64)
    # Work on flat indices of a grid padded by two sphere reaches: a near peak's
    # sphere then never wraps around an edge, so no 3-D bounds test is needed.
    pad = 2 * reach
    padded = np.zeros(np.asarray(roi.shape) + 2 * pad, dtype=bool)
    padded[pad[0] : pad[0] + roi.shape[0], pad[1] : pad[1] + roi.shape[1], pad[2] : pad[2] + roi.shape[2]] = roi
    strides = np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1])
    centre = (ijk[near] + pad) @ strides
    fv = centre[:, None] + (offsets @ strides)[None, :]
    hit = padded.ravel()[fv]
    peak_row, _ = np.nonzero(hit)
    pairs = np.asarray(codes)[near][peak_row].astype(np.int64) * padded.size + fv[hit]
    pairs.sort()
    first = np.ones(pairs.size, dtype=bool)
    first[1:] = pairs[1:] != pairs[:-1]  # one count per (study, voxel)
    return np.bincount(pairs[first] // padded.size, minlength=n_studies).astype(np.int64)


def _peaks_overlap(keys, fields, lo, hi, reach, ptr, members, n_studies, n_roi):
    """Compiled core of :func:`roi_overlap_compiled` (numba, on first use)."""
    mx, my, mz, by, bz, bc = fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]
    sy, sz = hi[1] - lo[1] + 2 * reach[1], hi[2] - lo[2] + 2 * reach[2]
    span = (hi[0] - lo[0] + 2 * reach[0]) * sy * sz
    near = np.empty(keys.size, dtype=np.int64)  # (study, position near the ROI) of the peaks that can reach it
    n = 0
    for i in range(lo[0] - reach[0], hi[0] + reach[0]):
        ends = np.zeros(2, dtype=np.int64)
        for e in range(2):  # per x plane, a binary search of each end of the y range
            j = lo[1] - reach[1] if e == 0 else hi[1] + reach[1]
            first = (((i + mx) << by | (j + my)) << bz) << bc
            a, b = 0, keys.size
            while a < b:
                if keys[(a + b) // 2] < first:
                    a = (a + b) // 2 + 1
                else:
                    b = (a + b) // 2
            ends[e] = a
        for q in range(ends[0], ends[1]):
            z = ((keys[q] >> bc) & ((1 << bz) - 1)) - mz
            if lo[2] - reach[2] <= z < hi[2] + reach[2]:
                y = ((keys[q] >> (bc + bz)) & ((1 << by) - 1)) - my
                c = ((i - lo[0] + reach[0]) * sy + y - lo[1] + reach[1]) * sz + z - lo[2] + reach[2]
                near[n] = (keys[q] & ((1 << bc) - 1)) * span + c
                n += 1
    out = np.zeros(n_studies, dtype=np.int64)
    last = np.full(n_roi, -1, dtype=np.int64)  # the study that last covered each ROI voxel
    for key in np.sort(near[:n]):  # study by study
        s, c = key // span, key % span
        for t in range(ptr[c], ptr[c + 1]):
            if last[members[t]] != s:
                last[members[t]] = s
                out[s] += 1
    return out


def _reach_plan(roi_ijk, offsets, reach, span):
    """For each voxel of the ROI's box widened by ``reach`` (C order), the ROI voxels a sphere there covers (CSR)."""
    n_off = offsets.shape[0]
    at = np.empty(roi_ijk.shape[0] * n_off, dtype=np.int64)
    ptr = np.zeros(span[0] * span[1] * span[2] + 1, dtype=np.int64)
    for v in range(roi_ijk.shape[0]):
        for o in range(n_off):
            x, y, z = roi_ijk[v, 0] - offsets[o, 0], roi_ijk[v, 1] - offsets[o, 1], roi_ijk[v, 2] - offsets[o, 2]
            at[v * n_off + o] = ((x + reach[0]) * span[1] + y + reach[1]) * span[2] + z + reach[2]
            ptr[at[v * n_off + o] + 1] += 1
    ptr = np.cumsum(ptr)
    fill = ptr[:-1].copy()
    members = np.empty(at.size, dtype=np.int32)
    for t in range(at.size):
        members[fill[at[t]]] = t // n_off
        fill[at[t]] += 1
    return ptr, members


@functools.cache
def _compiled(name: str):
    from .stats.components import compiled

    return compiled(globals()[name])


def peak_keys(ijk, codes, n_studies: int, offsets, shape) -> tuple | None:
    """The peaks as sorted integers ``(x, y, z, study)``, bit fields, and the fields' layout; None if over 63 bits.

    How :func:`roi_overlap_compiled` finds the peaks near an ROI: a binary
    search per x plane, then a scan of memory in order.  Coordinates are
    clipped to one voxel beyond the offsets' reach around the grid (a peak
    there reaches no grid voxel, like any farther one).
    """
    reach = np.abs(offsets).max(axis=0) if len(offsets) else np.zeros(3, dtype=np.int64)
    margin = reach.astype(np.int64) + 1
    bits = [int(s + 2 * m - 1).bit_length() for s, m in zip(shape, margin)] + [int(n_studies - 1).bit_length()]
    if sum(bits) > 63:
        return None
    key = np.zeros(len(ijk), dtype=np.int64)
    for a in range(3):
        key = (key << bits[a]) | (np.clip(ijk[:, a], -margin[a], shape[a] + margin[a] - 1) + margin[a])
    key = np.sort((key << bits[3]) | codes)
    return key.astype(np.int32 if sum(bits) <= 31 else np.int64), np.array([*margin, *bits[1:]], dtype=np.int64)


def roi_plan(roi_flat, offsets, grid: Grid) -> tuple | None:
    """What :func:`roi_overlap_compiled` needs of a non-empty ROI, made once for any number of chunks.

    None above :data:`COMPILED_OVERLAP_PAIRS` (ROI voxels x offsets).
    """
    roi_flat = np.asarray(roi_flat, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if roi_flat.size * len(offsets) > COMPILED_OVERLAP_PAIRS:
        return None
    ijk_roi = np.column_stack(np.unravel_index(roi_flat, grid.shape))
    lo, hi = ijk_roi.min(axis=0), ijk_roi.max(axis=0) + 1
    reach = np.abs(offsets).max(axis=0) if len(offsets) else np.zeros(3, dtype=np.int64)
    return lo, hi, reach, *_compiled("_reach_plan")(ijk_roi - lo, offsets, reach, hi - lo + 2 * reach)


#: Above this many (ROI voxel, offset) pairs, :func:`roi_overlap_compiled` hands over to :func:`roi_overlap`.
COMPILED_OVERLAP_PAIRS = 1 << 23


def roi_overlap_compiled(ijk, codes, n_studies: int, offsets, roi_flat, grid: Grid, keys=None, plan=None):
    """:func:`roi_overlap` (the same counts) compiled: only the peaks near the ROI are visited.

    The peaks whose sphere can reach the ROI's bounding box are found by
    binary search in their :func:`peak_keys` (per x plane, the y range); study by study,
    each adds the ROI voxels its sphere covers (:func:`roi_plan`: for each
    voxel near the ROI, those voxels) not yet covered by that study.  Cost:
    those peaks, not the database; memory: the plan, ``n_roi x n_offsets``
    int32 at most (larger ROIs go to :func:`roi_overlap`).

    Parameters
    ----------
    ijk : (n_peaks, 3) int array
        Peak voxels (may lie outside the grid).
    codes : (n_peaks,) int array
        Row of each peak's study, ``0 <= codes < n_studies``.
    n_studies : int
    offsets : (n_offsets, 3) int array
    roi_flat : (n_roi,) int array
        The ROI's voxels as flat indices of ``grid``, inside its brain mask.
    grid : Grid
    keys : tuple, optional
        :func:`peak_keys` of the peaks (a chunk keeps them); made here if not given.
    plan : tuple, optional
        :func:`roi_plan` of ``roi_flat`` (shared by the chunks of a cube); made here if not given.

    Returns
    -------
    (n_studies,) int64 array
    """
    roi_flat = np.asarray(roi_flat, dtype=np.int64)
    if roi_flat.size == 0 or len(ijk) == 0:
        return np.zeros(n_studies, dtype=np.int64)
    plan = roi_plan(roi_flat, offsets, grid) if plan is None else plan
    if keys is None:
        keys = peak_keys(np.asarray(ijk), np.asarray(codes), n_studies, np.asarray(offsets), grid.shape)
    if plan is None or keys is None:
        return box_overlap(ijk, codes, n_studies, offsets, roi_flat, grid)
    return _compiled("_peaks_overlap")(*keys, *plan, int(n_studies), roi_flat.size)


def box_overlap(ijk, codes, n_studies: int, offsets, roi_flat, grid: Grid) -> np.ndarray:
    """:func:`roi_overlap` of an ROI given as flat indices of ``grid``: on its bounding box, the peaks shifted to it."""
    if len(roi_flat) == 0:
        return np.zeros(n_studies, dtype=np.int64)
    ijk_roi = np.column_stack(np.unravel_index(roi_flat, grid.shape))
    lo = ijk_roi.min(axis=0)
    box = np.zeros(ijk_roi.max(axis=0) + 1 - lo, dtype=bool)
    box[tuple((ijk_roi - lo).T)] = True
    return roi_overlap(np.asarray(ijk) - lo, codes, n_studies, np.asarray(offsets, dtype=np.int64), box)


# -- kernels with values: the extension point of the weighted route ----------------------------------


def focus_voxels(ijk, offsets, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The in-mask voxels each focus reaches through ``offsets``.

    Parameters
    ----------
    ijk : (n_peaks, 3) int array
        Foci on ``grid`` (may lie outside the box: only the part of their
        reach inside it counts, as NiMARE's and Neurosynth's kernels do).
    offsets : (n_offsets, 3) int array
    grid : Grid

    Returns
    -------
    peak : (n,) int64 array
        The focus of each hit (row of ``ijk``).
    offset : (n,) int64 array
        The offset of each hit (row of ``offsets``).
    voxel : (n,) int64 array
        The in-mask voxel number (position in ``grid.mask_flat``) of each hit.
    """
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 3)
    flat = np.zeros((len(ijk), len(offsets)), dtype=np.int64)
    inside = np.ones(flat.shape, dtype=bool)
    for a in range(3):
        v = ijk[:, a, None] + offsets[None, :, a]
        inside &= (v >= 0) & (v < grid.shape[a])
        flat = flat * grid.shape[a] + v
    peak, offset = np.nonzero(inside)
    voxel = grid.mask_index[flat[peak, offset]]
    keep = voxel >= 0
    return peak[keep], offset[keep], voxel[keep]


def combine_foci(ijk, offsets, values, grid: Grid, how: Combine = "max") -> tuple[np.ndarray, np.ndarray]:
    """One study's map from a kernel placed at each of its foci, the foci combined by ``how``.

    Parameters
    ----------
    ijk : (n_peaks, 3) int array
        The study's foci on ``grid``.
    offsets : (n_offsets, 3) int array
        Where a focus's kernel has values, relative to the focus's voxel.
    values : (n_offsets,) or (n_peaks, n_offsets) array
        The kernel's values at ``offsets`` (one row per focus for kernels that differ by focus).
    grid : Grid
    how : {"max", "sum"}
        ``"max"``: the voxel-wise maximum over foci (ALE's modelled activation);
        ``"sum"``: the sum over foci (KDA).

    Returns
    -------
    voxels : (n,) int64 array
        In-mask voxel numbers, ascending, each once.
    values : (n,) array
        The combined values (``values``' dtype), zeros dropped.
    """
    if how not in get_args(Combine):
        raise ParameterError(f"how={how!r} is not known; expected 'max' or 'sum'.")
    values = np.asarray(values)
    peak, offset, voxel = focus_voxels(ijk, offsets, grid)
    v = values[offset] if values.ndim == 1 else values[peak, offset]
    if voxel.size == 0:
        return voxel, v
    order = np.argsort(voxel, kind="stable")
    voxel, v = voxel[order], v[order]
    starts = np.flatnonzero(np.r_[True, voxel[1:] != voxel[:-1]])
    combined = (np.maximum if how == "max" else np.add).reduceat(v, starts)
    keep = combined != 0
    return voxel[starts][keep], combined[keep]


#: Focus-offset pairs expanded at once when a chunk's maps are built from one pattern (about 100 MB of work arrays).
BATCH_VOXELS = 2_000_000


def pattern_chunk_maps(ijk, codes, n_studies: int, grid: Grid, offsets, values, how: Combine):
    """A run of studies' maps when every focus carries one pattern: CSR ``(indptr, indices, values)``.

    What :func:`combine_foci` gives study by study, for all studies at once:
    the (study, voxel) keys of every focus's pattern are sorted and combined
    by ``how`` (``"max"`` or ``"sum"``), whole studies at a time, about
    :data:`BATCH_VOXELS` keys per batch.  Zeros are dropped.
    """
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values)
    ptr = np.searchsorted(codes, np.arange(n_studies + 1))
    m = grid.n_mask
    per_batch = max(1, BATCH_VOXELS // max(1, len(offsets)))
    reduce = np.maximum if how == "max" else np.add
    per_study = np.zeros(n_studies, dtype=np.int64)
    idx_parts, val_parts = [], []
    s0 = 0
    while s0 < n_studies:
        s1 = min(n_studies, max(s0 + 1, int(np.searchsorted(ptr, ptr[s0] + per_batch, side="right")) - 1))
        p0, p1 = ptr[s0], ptr[s1]
        peak, offset, voxel = focus_voxels(ijk[p0:p1], offsets, grid)
        keys = (codes[p0:p1][peak] - s0) * m + voxel
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else np.zeros(0, np.int64)
        combined = reduce.reduceat(values[offset[order]], starts) if keys.size else values[:0]
        keep = combined != 0
        keys = keys[starts][keep]
        study = keys // m
        idx_parts.append((keys - study * m).astype(np.int32))
        val_parts.append(combined[keep])
        per_study[s0:s1] = np.bincount(study, minlength=s1 - s0)
        s0 = s1
    indptr = np.zeros(n_studies + 1, dtype=np.int64)
    np.cumsum(per_study, out=indptr[1:])
    indices = np.concatenate(idx_parts) if idx_parts else np.zeros(0, dtype=np.int32)
    out = np.concatenate(val_parts) if val_parts else np.zeros(0, dtype=values.dtype)
    return indptr, indices, out


class Kernel:
    """How one study's peaks become its modelled-activation map: the extension point of the weighted route.

    A kernel maps the foci of **one study** (voxel indices on the cube's grid)
    to that study's map as sparse in-mask values: :meth:`study_map`.  The cube
    (:func:`xcoact.activations` with ``kernel=``) calls it for every study of a
    chunk, once, when the chunk's rows are built; the chunk then keeps the
    voxels (its rows, the study's *support*) and the values beside them.
    Everything downstream - slicing, transposing, rechunking, ``persist``,
    ``dask.distributed``, dense values, :func:`xcoact.counts.grouped_counts` -
    is the engine's.

    A subclass sets the class attributes and implements :meth:`study_map`; it
    must pickle (Dask ships a chunk's peaks and its kernel to the workers).

    Attributes
    ----------
    name : str
        Recorded as the cube's ``attrs["kernel"]``.
    dtype : numpy.dtype
        The values' type: the cube's dtype.
    combine : str
        How a study's foci combine, for the record (``"max"``, ``"sum"``, ``"union"``).
    offsets : (n_offsets, 3) int64 array
        The voxels around a focus its values can reach (for memory estimates;
        and, with ``exact_support``, for ROI overlaps straight from the peaks).
    exact_support : bool
        True when a study's non-zero voxels are exactly the in-mask voxels of
        ``offsets`` around its foci (a sphere kernel); otherwise overlaps are
        read from the built rows.
    """

    name = "kernel"
    dtype: np.dtype = np.dtype(np.float64)
    combine = "max"
    offsets = np.zeros((1, 3), dtype=np.int64)
    exact_support = False

    def bind(self, table) -> Kernel:
        """The kernel for one coordinate table (e.g. reading per-study sample sizes); this one by default.

        Called by :func:`xcoact.activations` before any map is made, so a
        kernel that needs per-study data can read it from the table (and fail
        there, with a clear message, if it is missing).
        """
        return self

    def study_map(self, ijk: np.ndarray, grid: Grid, study=None) -> tuple[np.ndarray, np.ndarray | None]:
        """One study's map: **the function a kernel implements**.

        Parameters
        ----------
        ijk : (n_peaks, 3) int64 array
            The study's foci as voxel indices on ``grid`` (the preset's
            rounding; a focus may lie outside the box).
        grid : Grid
            The full grid and brain mask the cube is built on.
        study : str or int, optional
            The study's id (for kernels with per-study parameters, e.g. ALE's
            sample size, kept by :meth:`bind`).

        Returns
        -------
        voxels : (n,) int array
            In-mask voxel numbers (positions in ``grid.mask_flat``, i.e.
            ``grid.mask_index`` of the flat C-order grid index), each once.
        values : (n,) array or None
            The map's value at each of ``voxels`` (cast to :attr:`dtype`);
            None for a binary kernel (every voxel 1).  Zeros are dropped: the
            voxels left are the study's support.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement study_map(ijk, grid, study)")

    def chunk_maps(self, ijk, codes, n_studies: int, grid: Grid, studies=None):
        """A run of studies' maps as CSR: ``(indptr, indices, values)`` (values None if every study's were).

        By default :meth:`study_map` per study; a kernel may override this
        with a vectorised equivalent (same result).  ``codes`` (study row of
        each peak, non-decreasing) and ``studies`` (ids) as in
        :class:`~xcoact.blocks.StudyChunk`.
        """
        ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
        ptr = np.searchsorted(np.asarray(codes, dtype=np.int64), np.arange(n_studies + 1))
        indptr = np.zeros(n_studies + 1, dtype=np.int64)
        idx_parts, val_parts, valued = [], [], False
        for s in range(n_studies):
            voxels, values = self.study_map(ijk[ptr[s] : ptr[s + 1]], grid, None if studies is None else studies[s])
            voxels, values = self._checked(voxels, values, grid, None if studies is None else studies[s])
            valued |= values is not None
            idx_parts.append(voxels)
            val_parts.append(values if values is not None else np.ones(voxels.size, dtype=self.dtype))
            indptr[s + 1] = indptr[s] + voxels.size
        indices = np.concatenate(idx_parts).astype(np.int32) if idx_parts else np.zeros(0, dtype=np.int32)
        values = np.concatenate(val_parts).astype(self.dtype) if valued else None
        return indptr, indices, values

    def _checked(self, voxels, values, grid: Grid, study):
        """A study map sorted by voxel, zeros dropped; a clear error for a map that is not one."""
        voxels = np.asarray(voxels)
        study = study.item() if isinstance(study, np.generic) else study
        where = f"kernel {self.name!r}: study {study!r}: study_map"
        if voxels.ndim != 1 or (voxels.size and not np.issubdtype(voxels.dtype, np.integer)):
            raise ParameterError(
                f"{where} returned voxels of dtype {voxels.dtype}, shape {voxels.shape}; expected a 1-D "
                "int array of in-mask voxel numbers."
            )
        voxels = voxels.astype(np.int64)
        if voxels.size and (voxels.min() < 0 or voxels.max() >= grid.n_mask):
            raise ParameterError(
                f"{where} returned voxel numbers outside 0..{grid.n_mask - 1} (the grid's in-mask voxels)."
            )
        order = np.argsort(voxels, kind="stable")
        voxels = voxels[order]
        if voxels.size > 1 and np.any(voxels[1:] == voxels[:-1]):
            raise ParameterError(f"{where} returned a voxel more than once; combine the foci first (see combine_foci).")
        if values is None:
            return voxels, None
        values = np.asarray(values)
        if values.shape != (len(order),):
            raise ParameterError(
                f"{where} returned {values.shape} values for {len(order)} voxels; expected one per voxel."
            )
        values = values[order].astype(self.dtype)
        keep = values != 0
        return voxels[keep], values[keep]

    def attrs(self) -> dict:
        """What the cube records about the kernel (``kernel``, ``long_name``, parameters)."""
        return {
            "kernel": self.name,
            "long_name": f"study modelled activation ({self.name} kernel, foci combined by {self.combine})",
        }

    def __dask_tokenize__(self):
        from dask.base import tokenize

        params = dict(sorted(vars(self).items()))
        return ("xcoact-kernel", type(self).__module__, type(self).__qualname__, tokenize(params))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class SphereKernel(Kernel):
    """The binary sphere (MKDA; Neurosynth's and NiMARE's ``MKDAKernel``): the union of spheres of radius ``r`` mm.

    The default kernel.  :func:`xcoact.activations` builds its cube through the
    boolean route (no values are stored); this class states the same map in
    the :class:`Kernel` interface.
    """

    name = "mkda"
    dtype = np.dtype(bool)
    combine = "union"
    exact_support = True

    def __init__(self, r: float, voxel_size=(2.0, 2.0, 2.0)):
        self.r = check_radius(r)
        self.offsets = sphere_offsets(self.r, voxel_size)

    def study_map(self, ijk, grid, study=None):
        _, _, voxel = focus_voxels(ijk, self.offsets, grid)
        return np.unique(voxel), None


class KDAKernel(SphereKernel):
    """Kernel density analysis (KDA): per voxel, the number of the study's foci within ``r`` mm.

    Every focus is a binary sphere of radius ``r`` mm with value 1 and a
    study's spheres are summed, as NiMARE 0.22.1's
    ``KDAKernel(r=r).transform(dataset, return_type="array")``
    (``compute_kda_ma(..., sum_overlap=True)``); two foci at one voxel count
    twice.  Values are int32.
    """

    name = "kda"
    dtype = np.dtype(np.int32)
    combine = "sum"

    def study_map(self, ijk, grid, study=None):
        _, _, voxel = focus_voxels(ijk, self.offsets, grid)
        voxels, counts = np.unique(voxel, return_counts=True)
        return voxels, counts.astype(self.dtype)

    def chunk_maps(self, ijk, codes, n_studies: int, grid: Grid, studies=None):
        """All studies of a chunk at once (:func:`pattern_chunk_maps` with a pattern of ones, summed)."""
        return pattern_chunk_maps(
            ijk, codes, n_studies, grid, self.offsets, np.ones(len(self.offsets), self.dtype), "sum"
        )

    def attrs(self) -> dict:
        return {
            "kernel": self.name,
            "long_name": "study modelled activation (KDA: foci within r mm of the voxel)",
            "r": self.r,
        }


class FocusKernel(Kernel):
    """One value pattern placed at every focus, a study's foci combined by ``"max"`` or ``"sum"``.

    An ALE kernel of one fixed FWHM is such a kernel (the Gaussian's values
    around a focus, combined by the maximum); a kernel whose pattern depends on
    the study (ALE's sample sizes) implements :meth:`Kernel.study_map` itself
    and can still combine with :func:`combine_foci`.

    Parameters
    ----------
    offsets : (n_offsets, 3) int array
        Where a focus's pattern has values, relative to the focus's voxel.
    values : (n_offsets,) array of float
        The pattern (non-negative: the support is where the combined value is not 0).
    combine : {"max", "sum"}
    name : str
        The cube's ``attrs["kernel"]``.
    """

    combine: Combine

    def __init__(self, offsets, values, combine: Combine = "max", name: str = "focus"):
        self.offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 3)
        values = np.asarray(values)
        if values.shape != (len(self.offsets),) or not np.issubdtype(values.dtype, np.number):
            raise ParameterError(
                f"values has shape {values.shape} ({values.dtype}); expected one number per offset "
                f"({len(self.offsets)})."
            )
        if combine not in get_args(Combine):
            raise ParameterError(f"combine={combine!r} is not known; expected 'max' or 'sum'.")
        self.values = values
        self.dtype = values.dtype
        self.combine = combine
        self.name = str(name)

    def study_map(self, ijk, grid, study=None):
        return combine_foci(ijk, self.offsets, self.values, grid, how=self.combine)

    def chunk_maps(self, ijk, codes, n_studies: int, grid: Grid, studies=None):
        return pattern_chunk_maps(ijk, codes, n_studies, grid, self.offsets, self.values, self.combine)


def _kda(r, preset, grid: Grid) -> KDAKernel:
    return KDAKernel(preset.kernel_r if r is None else r, grid.voxel_size)


def _ale(r, preset, grid: Grid) -> Kernel:
    from .stats.ale import ale_kernel_for

    return ale_kernel_for("ale", r, None, None, grid)  # sized by the table's sample sizes (bind)


#: Kernels by name for ``xcoact.activations(db, kernel=name)``: ``factory(r, preset, grid) -> Kernel``
#: (``r`` None: the kernel's or the preset's default).  ``"mkda"``
#: (the default, binary spheres) is not here: it is the boolean route itself.
KERNELS = {"kda": _kda, "ale": _ale}


def get_kernel(kernel, r, preset, grid: Grid) -> Kernel | None:
    """The kernel ``xcoact.activations`` builds with: None for binary spheres (the boolean route).

    Parameters
    ----------
    kernel : str or Kernel
        ``"mkda"`` (binary spheres of radius ``r``), a name in :data:`KERNELS`,
        or a :class:`Kernel` (which carries its own parameters: ``r`` must then be None).
    r : float or None
    preset : Preset
    grid : Grid
    """
    if isinstance(kernel, Kernel):
        if r is not None:
            raise ParameterError(
                f"r={r!r} was given with the kernel object {kernel!r}, which carries its own "
                "parameters; pass r to the kernel, or kernel by name (e.g. kernel='kda', r=10)."
            )
        return None if type(kernel) is SphereKernel else kernel
    if not isinstance(kernel, str) or (kernel.lower() != "mkda" and kernel.lower() not in KERNELS):
        raise ParameterError(
            f"kernel={kernel!r} is not known; expected one of {['mkda', *KERNELS]} or an xcoact.kernels.Kernel."
        )
    name = kernel.lower()
    return None if name == "mkda" else KERNELS[name](r, preset, grid)
