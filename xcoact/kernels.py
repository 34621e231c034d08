"""Binary sphere kernels: the array core (numpy functions, arrays in and arrays out).

A study's map is the union of binary spheres of radius ``r`` mm around its
peaks' voxels, restricted to the brain mask (:ref:`semantics-kernel`).  The sparse
rows the cube is made of are built in :mod:`xcoact.blocks`.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ParameterError
from .space import Grid

__all__ = ["sphere_offsets", "dense_block", "roi_overlap", "check_radius"]


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
            f"r={r:g} mm reaches {float(reach_vox.max()):,.0f} voxels of {float(vs[np.argmax(reach_vox)]):g} mm; spheres "
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


def roi_overlap(ijk, codes, n_studies: int, offsets, roi, by_i=None) -> np.ndarray:
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
    by_i : (n_peaks,) int array, optional
        The peaks ordered by their first index ``i``; lets the search for
        near peaks skip all but a slab of the database.

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
    if by_i is not None:
        first, last = np.searchsorted(ijk[by_i, 0], [lo[0] - reach[0], hi[0] + reach[0]])
        slab = by_i[first:last]
        near = slab[np.all((ijk[slab] >= lo - reach) & (ijk[slab] < hi + reach), axis=1)]
    else:
        near = np.flatnonzero(np.all((ijk >= lo - reach) & (ijk < hi + reach), axis=1))
    if near.size == 0:
        return np.zeros(n_studies, dtype=np.int64)
    # Work on flat indices of a grid padded by two sphere reaches: a near peak's
    # sphere then never wraps around an edge, so no 3-D bounds test is needed.
    pad = 2 * reach
    padded = np.zeros(np.asarray(roi.shape) + 2 * pad, dtype=bool)
    padded[pad[0]:pad[0] + roi.shape[0], pad[1]:pad[1] + roi.shape[1], pad[2]:pad[2] + roi.shape[2]] = roi
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
