"""Coordinate table -> study activation maps (binary spheres), dense or sparse.

A study's map is the union of binary spheres of radius ``r`` mm around its
peaks' voxels, restricted to the brain mask (SPEC section 3).  This module
holds the array core (numpy functions, arrays in and arrays out) and
:class:`ActivationSource`, the seed-independent description of a database on
a grid from which both the lazy dense cube and the sparse per-study index are
produced.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np

from .errors import ParameterError
from .space import Grid
from .table import study_index

__all__ = ["sphere_offsets", "dense_block", "sparse_rows", "roi_overlap", "ActivationSource", "check_radius"]


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

    This is the true sphere for every ``r`` (SPEC section 3): 123 offsets at
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


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, stop)`` for each pair, without a Python loop."""
    lens = stops - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return np.arange(total, dtype=np.int64) + shift


def _transpose(rows: tuple[np.ndarray, np.ndarray], n_studies: int, n_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (study -> voxels) to CSC (voxel -> studies), study rows as uint16 (chunks <= 65,536 studies)."""
    from scipy import sparse

    indptr, indices = rows
    mat = sparse.csr_matrix((np.ones(indices.size, dtype=np.int8), indices, indptr), shape=(n_studies, n_voxels)).tocsc()
    return mat.indptr.astype(np.int64), mat.indices.astype(np.uint16)


#: Studies per scratch bitmap in :func:`sparse_rows` (128 x 228,453 voxels = 29 MB).
_BITMAP_STUDIES = 128


def sparse_rows(ijk, codes, n_studies: int, offsets, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per-study sorted in-mask voxel indices (CSR layout) for a group of studies.

    Parameters
    ----------
    ijk : (n_peaks, 3) int array
        Peak voxels, grouped by study (``codes`` non-decreasing).
    codes : (n_peaks,) int array
        Row of each peak's study, ``0 <= codes < n_studies``, non-decreasing.
    n_studies : int
    offsets : (n_offsets, 3) int array
    grid : Grid

    Returns
    -------
    indptr : (n_studies + 1,) int64 array
    indices : (nnz,) int32 array
        ``indices[indptr[s]:indptr[s + 1]]`` are the in-mask voxel numbers
        (positions in ``grid.mask_flat``) active in study ``s``, ascending.
    """
    m = grid.n_mask
    codes = np.asarray(codes, dtype=np.int64)
    counts = np.zeros(n_studies, dtype=np.int64)
    pieces = []
    # Union of spheres by scattering into a small study x voxel bitmap: one pass
    # over the sphere voxels and one scan of the bitmap, no sort of the 100k-s of keys.
    bitmap = np.zeros(min(_BITMAP_STUDIES, max(n_studies, 1)) * m, dtype=bool)
    for s0 in range(0, n_studies, _BITMAP_STUDIES):
        s1 = min(s0 + _BITMAP_STUDIES, n_studies)
        p0, p1 = np.searchsorted(codes, [s0, s1])
        if p1 == p0:
            continue
        vox = (ijk[p0:p1, None, :] + offsets[None, :, :]).reshape(-1, 3)
        rows = np.repeat(codes[p0:p1] - s0, len(offsets))
        inside = grid.in_box(vox)
        flat = np.ravel_multi_index(tuple(vox[inside].T), grid.shape)
        in_mask = grid.mask_index[flat]
        keep = in_mask >= 0
        used = bitmap[: (s1 - s0) * m]
        used[rows[inside][keep] * m + in_mask[keep]] = True
        key = np.flatnonzero(used)
        used[key] = False  # reset only what was set
        study = key // m
        pieces.append((key - study * m).astype(np.int32))
        counts[s0:s1] = np.bincount(study, minlength=s1 - s0)
    indptr = np.zeros(n_studies + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    return indptr, indices


#: Live sources by the Dask name of the cube they built; lets the accessor
#: take the sparse fast path for an untouched cube (see ``ActivationSource.lookup``).
_REGISTRY: "weakref.WeakValueDictionary[str, ActivationSource]" = weakref.WeakValueDictionary()


class ActivationSource:
    """A database's peaks on a grid, with the kernel radius: everything the cube needs.

    Peaks are sorted by study so that a block of studies is a contiguous run
    of peaks.  The sparse per-study index (:meth:`rows`) is built on first
    use, once per study chunk, and kept while it fits
    ``xcoact.config["index_cache_bytes"]``: it is the seed-independent work
    every further seed reuses (in this process; Dask workers of another
    process rebuild it).

    Parameters
    ----------
    table : xarray.Dataset
        The coordinate table (see :mod:`xcoact.table`).
    grid : Grid
    r : float
        Kernel radius in mm.
    study_chunk : int
        Studies per chunk.
    peak_transform : callable, optional
        ``f(xyz, space) -> xyz``: moves each peak's table mm (and ``space``
        label) to the mm a preset uses before the peaks go on voxels
        (:attr:`xcoact.presets.Preset.peak_transform`); ``xyz`` then holds the result.
    """

    def __init__(self, table, grid: Grid, r: float, study_chunk: int, peak_transform=None):
        self.r = check_radius(r)
        self.grid = grid
        self.database = table.attrs.get("database", "<table>")
        self.offsets = sphere_offsets(self.r, grid.voxel_size)
        studies, codes = study_index(table["study_id"].values)
        order = np.argsort(codes, kind="stable")
        self.studies = studies
        self.codes = codes[order]
        # MNI mm per peak, sorted by study (the distance and nearest selection rules need mm, not voxels)
        self.xyz = np.column_stack([table[c].values for c in ("x", "y", "z")])[order].astype(np.float64)
        if peak_transform is not None:
            space = table["space"].values[order] if "space" in table else np.full(len(order), "MNI")
            self.xyz = np.asarray(peak_transform(self.xyz, space), dtype=np.float64)
        self.ijk = grid.xyz_to_ijk(self.xyz)
        self.peak_ptr = np.searchsorted(self.codes, np.arange(len(studies) + 1))
        self.study_chunk = int(study_chunk)
        bounds = list(range(0, len(studies), self.study_chunk)) + [len(studies)]
        self.chunk_bounds = list(zip(bounds[:-1], bounds[1:]))
        from dask.base import tokenize

        self.token = tokenize(self.ijk, self.codes, self.r, grid.token, self.study_chunk)
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # the same index by voxel (CSC, uint16 study rows), for fast overlaps once it is cached
        self._cols: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self._totals = None
        self._by_i = None

    def __dask_tokenize__(self):
        # a cheap, stable identity for Dask's task names (hashing the peaks on every task is slow)
        return ("xcoact-source", self.token)

    # pickling (Dask ships the source to distributed workers): leave caches and the lock behind
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_rows"] = {}
        state["_cols"] = {}
        state["_totals"] = None
        state["_by_i"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def n_studies(self) -> int:
        return len(self.studies)

    def peaks_of(self, s0: int, s1: int) -> tuple[np.ndarray, np.ndarray]:
        """Peak voxels and block-local study rows of studies ``[s0, s1)``."""
        p0, p1 = self.peak_ptr[s0], self.peak_ptr[s1]
        return self.ijk[p0:p1], self.codes[p0:p1] - s0

    def dense(self, s0: int, s1: int, lo, hi) -> np.ndarray:
        """Dense activations of studies ``[s0, s1)`` inside the box ``[lo, hi)``."""
        ijk, codes = self.peaks_of(s0, s1)
        mask_block = self.grid.mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        return dense_block(ijk, codes, s1 - s0, self.offsets, lo, hi, mask_block)

    def rows(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """Sparse rows (CSR) of one study chunk; cached when the index fits the cache budget."""
        got = self._rows.get(chunk)
        if got is None:
            s0, s1 = self.chunk_bounds[chunk]
            ijk, codes = self.peaks_of(s0, s1)
            got = sparse_rows(ijk, codes, s1 - s0, self.offsets, self.grid)
            if self.caches_index:
                cols = _transpose(got, s1 - s0, self.grid.n_mask)
                with self._lock:
                    self._rows[chunk] = got
                    self._cols[chunk] = cols
        return got

    @property
    def index_bytes_estimate(self) -> int:
        """About how much memory the whole sparse index takes (int32 voxel numbers)."""
        # each peak's sphere, about 70 % of it new after the union with the study's other spheres
        return int(len(self.ijk) * len(self.offsets) * 0.7 * 4)

    @property
    def caches_index(self) -> bool:
        """Whether the sparse index is kept in memory (see ``xcoact.config['index_cache_bytes']``)."""
        from .config import config

        return self.index_bytes_estimate <= config["index_cache_bytes"]

    def has_index(self) -> bool:
        """Whether every chunk of the sparse index is already built and cached."""
        return self.caches_index and len(self._rows) == len(self.chunk_bounds)

    def overlap(self, roi: np.ndarray) -> np.ndarray:
        """ROI voxels active in each study (see :func:`roi_overlap`).

        With the index cached, the ROI's voxels are looked up in the
        by-voxel index (a gather of the studies active at each ROI voxel);
        otherwise the peaks that can reach the ROI are expanded.
        """
        if self.has_index() and len(self._cols) == len(self.chunk_bounds):
            voxels = self.grid.mask_index[np.flatnonzero(roi)]
            voxels = voxels[voxels >= 0]
            parts = []
            for chunk, (s0, s1) in enumerate(self.chunk_bounds):
                colptr, study = self._cols[chunk]
                picked = study[_ranges(colptr[voxels], colptr[voxels + 1])]
                parts.append(np.bincount(picked, minlength=s1 - s0))
            return np.concatenate(parts).astype(np.int64)
        if self._by_i is None:
            self._by_i = np.argsort(self.ijk[:, 0], kind="stable")
        return roi_overlap(self.ijk, self.codes, self.n_studies, self.offsets, roi, self._by_i)

    def overlaps(self, rois: list[np.ndarray]) -> np.ndarray:
        """ROI voxels active in each study, for many ROIs at once, from the sparse index.

        One sparse product per study chunk, (studies x voxels) @ (voxels x ROIs):
        for hundreds of ROIs this beats expanding the peaks near each ROI.

        Parameters
        ----------
        rois : list of 1-D int arrays
            Each ROI's in-mask voxels as flat (C-order) grid indices.

        Returns
        -------
        (n_rois, n_studies) int32 array
        """
        from scipy import sparse

        m = self.grid.n_mask
        cols = [self.grid.mask_index[v] for v in rois]
        roi_of = np.repeat(np.arange(len(rois)), [len(c) for c in cols])
        r_mat = sparse.csr_matrix(
            (np.ones(roi_of.size, dtype=np.int32), (np.concatenate(cols) if cols else np.zeros(0, int), roi_of)),
            shape=(m, len(rois)),
        )
        out = np.zeros((len(rois), self.n_studies), dtype=np.int32)
        for chunk, (s0, s1) in enumerate(self.chunk_bounds):
            indptr, indices = self.rows(chunk)
            s_mat = sparse.csr_matrix((np.ones(indices.size, dtype=np.int32), indices, indptr), shape=(s1 - s0, m))
            out[:, s0:s1] = (s_mat @ r_mat).toarray().T
        return out

    def totals_of(self, chunk: int) -> np.ndarray:
        """Active-study count per in-mask voxel over one study chunk."""
        _, indices = self.rows(chunk)
        return np.bincount(indices, minlength=self.grid.n_mask).astype(np.int64)

    def register(self, name: str) -> None:
        _REGISTRY[name] = self

    @staticmethod
    def lookup(data) -> "ActivationSource | None":
        """The source of an untouched cube's Dask array, else None."""
        name = getattr(data, "name", None)
        return _REGISTRY.get(name) if isinstance(name, str) else None

    @classmethod
    def of_cube(cls, cube) -> "ActivationSource | None":
        """The source behind a cube DataArray, if the cube is untouched.

        Untouched means the same Dask array *and* the same labels and
        dimension order: ``assign_coords`` or ``transpose`` keep the Dask name
        but change what the array means, so those take the general route.
        """
        source = cls.lookup(cube.data)
        if source is None or cube.dims != ("study", "x", "y", "z"):
            return None
        same = np.array_equal(cube["study"].values, source.studies) and all(
            np.array_equal(cube[d].values, getattr(source.grid, d)) for d in "xyz"
        )
        return source if same else None
