"""The cube's blocks: sparse study activations that Dask and xarray handle like arrays.

Each Dask block of a cube built by :func:`xcoact.activations` is an
:class:`ActivationBlock`: a view (which studies, which voxels along x, y and
z, in which axis order) onto a :class:`StudyChunk`, the peaks of a run of
studies with their sparse voxel rows.  A block costs a few kilobytes until its
rows are needed; the rows of a chunk are built from the peaks once and then
kept by the chunk (2 bytes per active study-voxel pair, about 91 MB for all of
Neurosynth v7 at r = 6 mm).

The block is a duck array: indexing with slices or integer arrays along any
axis, ``transpose`` and concatenation (what ``isel``, ``sel``, ``sortby``,
``transpose``, ``chunk`` and ``persist`` do to a Dask array) return another
view in O(1) of the index arrays, never touching the rows.  Anything else
(ufuncs, reductions, ``np.asarray``) sees the dense boolean block, so every
xarray and Dask operation gives the numbers a plain boolean array would.

The analyses (:mod:`xcoact.counts`) recognise a cube made of these blocks by
its Dask ``meta`` and reduce the blocks directly: the grouped counts of a seed
gather only its selected studies' rows.  This is state *in the data*: a
persisted cube holds its blocks (and, once built, their rows) wherever Dask
keeps them, on a ``dask.distributed`` worker too.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np

from .space import Grid

__all__ = ["StudyChunk", "ActivationBlock", "is_block_cube", "sparse_rows", "unpack_rows", "ranges"]

#: Studies per scratch bitmap in :func:`sparse_rows` (16 x 228,453 voxels = 3.7 MB, one per chunk being built;
#: 64 took 15 MB and was no faster).
_BITMAP_STUDIES = 16


def ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, stop)`` for each pair, without a Python loop."""
    lens = stops - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return np.arange(total, dtype=np.int64) + shift


def sparse_rows(ijk, codes, n_studies: int, offsets, grid: Grid, packed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-study sorted in-mask voxel numbers (CSR layout) of a run of studies' sphere unions.

    Parameters
    ----------
    ijk : (n_peaks, 3) int array
        Peak voxels, grouped by study (``codes`` non-decreasing).
    codes : (n_peaks,) int array
        Row of each peak's study, ``0 <= codes < n_studies``, non-decreasing.
    n_studies : int
    offsets : (n_offsets, 3) int array
    grid : Grid
    packed : bool
        As a binary chunk keeps them: row ``s * P + p`` (``P = n_pages(n_mask)``) holds study ``s``'s
        voxels ``v`` with ``v >> 16 == p`` as ``v & 0xFFFF`` (uint16), the entries in the same order.

    Returns
    -------
    indptr : (n_studies + 1,) int64 array
    indices : (nnz,) int32 array
        ``indices[indptr[s]:indptr[s + 1]]`` are the in-mask voxel numbers
        (positions in ``grid.mask_flat``) active in study ``s``, ascending.
    """
    m = grid.n_mask
    codes = np.asarray(codes, dtype=np.int64)
    ijk = np.asarray(ijk, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    pages = n_pages(m) if packed else 1
    counts = np.zeros(n_studies * pages, dtype=np.int64)
    # Flat indices on the grid padded by the sphere's reach: a peak's sphere voxels are then one add away
    # (no 3-D bounds test per voxel), and padding voxels map to -1 like voxels outside the mask.
    reach = np.abs(offsets).max(axis=0) if len(offsets) else np.zeros(3, dtype=np.int64)
    # two reaches: a kept peak lies up to one reach outside the grid, its sphere one more
    pad = 2 * reach
    # int32 (in-mask numbers fit): half the memory of int64 while two chunks build at once
    pshape = np.asarray(grid.shape) + 2 * pad
    padded = np.full(pshape, -1, dtype=np.int32)
    padded[tuple(slice(int(p), int(p) + n) for p, n in zip(pad, grid.shape))] = grid.mask_index.reshape(grid.shape)
    padded = padded.ravel()
    strides = np.array([pshape[1] * pshape[2], pshape[2], 1], dtype=np.int64)
    off_flat = offsets @ strides
    # a peak farther out than the reach touches no voxel of the grid
    near = np.all((ijk >= -reach) & (ijk < np.asarray(grid.shape) + reach), axis=1)
    centre = np.where(near, (ijk + pad) @ strides, -1)
    # Union of spheres by scattering into a small study x voxel bitmap: one pass
    # over the sphere voxels and one scan of the bitmap, no sort of the keys.
    bitmap = np.zeros(min(_BITMAP_STUDIES, max(n_studies, 1)) * m, dtype=bool)
    # the entries go straight into one buffer of every sphere voxel that may count, shrunk in place at the end
    # (pieces and their concatenation would hold the rows twice)
    indices = np.empty(int(near.sum()) * len(offsets), dtype=np.uint16 if packed else np.int32)
    n_done = 0
    for s0 in range(0, n_studies, _BITMAP_STUDIES):
        s1 = min(s0 + _BITMAP_STUDIES, n_studies)
        p0, p1 = np.searchsorted(codes, [s0, s1])
        keep_peak = near[p0:p1]
        if not keep_peak.any():
            continue
        in_mask = padded[centre[p0:p1][keep_peak, None] + off_flat[None, :]]
        rows = np.broadcast_to((codes[p0:p1][keep_peak] - s0)[:, None], in_mask.shape)
        keep = in_mask >= 0
        used = bitmap[: (s1 - s0) * m]
        used[rows[keep] * m + in_mask[keep]] = True
        key = np.flatnonzero(used)
        used[key] = False  # reset only what was set
        study = key // m
        voxel = key - study * m
        indices[n_done : n_done + voxel.size] = voxel
        n_done += voxel.size
        sub = study * pages + (voxel >> 16) if packed else study
        counts[s0 * pages : s1 * pages] = np.bincount(sub, minlength=(s1 - s0) * pages)
    indptr = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices.resize(n_done, refcheck=False)  # realloc: the unused tail is given back, the entries not copied
    return indptr, indices


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # not glibc: nothing to do
        return lambda pad: 0


def release_freed() -> None:
    """Hand free pages back to the system (glibc's ``malloc_trim``): rows built on Dask's threads leave their
    temporaries' pages resident in those threads' arenas, between the kept rows (57 MiB at 10x Neurosynth)."""
    _malloc_trim()(0)


def narrow_ints(a) -> np.ndarray:
    """An integer array in the narrowest of int16, int32 and int64 that holds its values (itself if already so)."""
    a = np.asarray(a)
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for t in (np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t, copy=False)
    return a.astype(np.int64, copy=False)


def _count_dtype(n: int) -> np.dtype:
    """The narrowest type for a count of at most ``n``: uint16, or int32."""
    return np.dtype(np.uint16 if n <= np.iinfo(np.uint16).max else np.int32)


def n_pages(n_mask: int) -> int:
    """Pages of 65,536 voxels that hold ``n_mask`` in-mask voxel numbers (at least one)."""
    return max(1, -(-int(n_mask) // 65536))


def unpack_rows(ptr: np.ndarray, low: np.ndarray, pages: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of :func:`sparse_rows` ``(packed=True)`` as ``(indptr, indices)``, int32 (as they are if not packed)."""
    if low.dtype != np.uint16:
        return ptr, low
    indices = low.astype(np.int32)
    if pages > 1:
        indices += np.repeat(np.tile(np.arange(pages, dtype=np.int32) << 16, (ptr.size - 1) // pages), np.diff(ptr))
    return ptr[::pages], indices


class StudyChunk:
    """The peaks of a run of studies on a grid, and their sparse voxel rows (built once, on first use).

    Everything here is seed-independent.  The peaks are a few hundred kB per
    thousand studies; :meth:`rows` (the union of each study's spheres as
    sorted in-mask voxel numbers) is built from them the first time any
    computation needs it and kept by this object, so a cube held in memory
    (``act.persist()``, or the cube's own graph in this process) builds it once.
    Pickling (how Dask ships a chunk to another process) carries the peaks
    only; the receiving process builds the rows when it needs them.

    Attributes
    ----------
    ijk : (n_peaks, 3) int64
        Peak voxels on ``grid`` (may lie outside the box), sorted by study; made from the int16 ones kept.
    xyz : (n_peaks, 3) float64
        The same peaks in mm (after the preset's transform): the table's own when it can be shared.
    codes : (n_peaks,) int64
        Study row of each peak, ``0 <= codes < n_studies``; made from ``peak_ptr``.
    peak_ptr : (n_studies + 1,) int64
        ``peak_ptr[s]:peak_ptr[s + 1]`` are study ``s``'s peaks.
    offsets : (n_offsets, 3) int64
        Sphere offsets of the kernel.
    grid : Grid
        The full grid and brain mask the cube was built on.
    studies : (n_studies,) array or None
        The studies' ids.
    kernel : xcoact.kernels.Kernel or None
        None for binary spheres (the boolean route); else the kernel whose
        maps the rows hold, with their values kept beside them (:meth:`values`).
    """

    def __init__(self, ijk, xyz, codes, n_studies: int, offsets, grid: Grid, studies=None, kernel=None):
        self._ijk = narrow_ints(ijk)  # 6 bytes a peak on any real grid, not 24
        self.xyz = np.asarray(xyz, dtype=np.float64)
        self.n_studies = int(n_studies)
        self.peak_ptr = np.searchsorted(np.asarray(codes), np.arange(self.n_studies + 1))
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.grid = grid
        self.studies = None if studies is None else np.asarray(studies)
        self._lock = threading.Lock()
        self._rows: tuple[np.ndarray, np.ndarray] | None = None  # (indptr, indices), see sparse_rows
        self._cols: tuple[np.ndarray, np.ndarray] | None = None  # (colptr, study rows), see cols()
        self._totals: np.ndarray | None = None
        self._keys: tuple | None = None  # the peaks sorted by position (kernels.peak_keys)
        self._overlaps = 0
        # kernels with values (see xcoact.kernels.Kernel): the values beside the rows, their per-voxel sums, and
        # the chunk's boolean support (a chunk sharing these rows, see support())
        self.kernel = kernel
        self._values: np.ndarray | None = None
        self._vtotals: np.ndarray | None = None
        self._support: StudyChunk | None = None
        self._support_of: StudyChunk | None = None

    @property
    def ijk(self) -> np.ndarray:  # a copy each time: take it once, not per study
        return self._ijk.astype(np.int64)

    @property
    def codes(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_studies, dtype=np.int64), np.diff(self.peak_ptr))

    def __getstate__(self):
        # the peaks only: a chunk travels as part of a graph, and the receiving process builds its rows
        # (a block carries its chunk's rows itself, see ActivationBlock.__reduce__)
        state = self.__dict__.copy()
        for key in ("_rows", "_cols", "_totals", "_keys", "_values", "_vtotals", "_support"):
            state[key] = None
        del state["_lock"]
        return state

    def with_rows(self, rows, values=None) -> StudyChunk:
        """This chunk, its rows (and values) set (how a block that travelled between processes gets its rows back)."""
        if rows is not None and self._rows is None:
            if values is not None:
                self._values = values
            self._rows = rows
        return self

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __dask_tokenize__(self):
        from dask.base import tokenize

        if self._support_of is not None:
            return ("xcoact-study-chunk-support", tokenize(self._support_of))
        if self.kernel is not None:
            return (
                "xcoact-study-chunk",
                tokenize(self._ijk, self.peak_ptr, self.offsets, self.grid.token, self.kernel, self.studies),
            )
        return ("xcoact-study-chunk", tokenize(self._ijk, self.peak_ptr, self.offsets, self.grid.token))

    def paged(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The kept rows, built on first use: :func:`sparse_rows` ``(packed=True)`` and its pages (valued: int32, 1)."""
        got = self._rows
        if got is None:
            with self._lock:
                if self._rows is None and self._support_of is not None:
                    self._rows = self._support_of.paged()[:2]  # the support of a valued chunk: its rows
                elif self._rows is None and self.kernel is not None:
                    indptr, indices, values = self.kernel.chunk_maps(
                        self.ijk, self.codes, self.n_studies, self.grid, self.studies
                    )
                    self._values = values  # before the rows: whoever sees the rows sees the values
                    self._rows = (indptr, indices)
                elif self._rows is None:
                    self._rows = sparse_rows(
                        self._ijk, self.codes, self.n_studies, self.offsets, self.grid, packed=True
                    )
                    release_freed()
                got = self._rows
            assert got is not None  # one of the branches above set the rows
        return got[0], got[1], n_pages(self.grid.n_mask) if got[1].dtype == np.uint16 else 1

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR rows of the chunk (see :func:`sparse_rows`), int32: decoded from :meth:`paged` (a copy if packed)."""
        return unpack_rows(*self.paged())

    @property
    def dtype(self) -> np.dtype:
        """bool for binary maps (spheres, or a kernel's support); the kernel's value type otherwise."""
        if self.kernel is None or self._support_of is not None:
            return np.dtype(bool)
        return np.dtype(self.kernel.dtype)

    def values(self) -> np.ndarray | None:
        """The kernel's value at each entry of the rows' ``indices`` (None for binary maps); built with the rows."""
        if self.kernel is None or self._support_of is not None:
            return None
        self.paged()
        return self._values

    def value_totals(self) -> np.ndarray:
        """Per in-mask voxel, the sum of the chunk's studies' values (float64), kept; :meth:`totals` if binary."""
        got = self._vtotals
        if got is None:
            values = self.values()
            if values is None:
                return self.totals()
            _, indices = self.rows()
            got = np.bincount(indices, weights=values, minlength=self.grid.n_mask)
            with self._lock:
                self._vtotals = got
        return got

    def support(self) -> StudyChunk:
        """The chunk's binary maps (value != 0) as a boolean chunk sharing these rows; itself if binary."""
        if self.dtype == bool:
            return self
        got = self._support
        if got is None:
            got = StudyChunk(
                self._ijk,
                self.xyz,
                self.codes,
                self.n_studies,
                self.offsets,
                self.grid,
                self.studies,
                kernel=self.kernel,
            )
            got._support_of = self
            with self._lock:
                if self._support is None:
                    self._support = got
                got = self._support
            assert got is not None  # set just above, or by another thread before
        return got

    @property
    def built(self) -> bool:
        """Whether the rows are built (later computations reuse them)."""
        return self._rows is not None

    def cols(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows by voxel (CSC: ``colptr``, int32 unless the entries need int64; study rows).

        ROI overlaps read them as a gather.
        """
        got = self._cols
        if got is None:
            from scipy import sparse

            indptr, indices = self.rows()
            mat = sparse.csr_matrix(
                (np.ones(indices.size, dtype=np.int8), indices, indptr), shape=(self.n_studies, self.grid.n_mask)
            ).tocsc()
            # study rows as uint16 when they fit (half the memory of int32; chunks are 1,024 studies by default)
            rows_dtype = np.uint16 if self.n_studies <= np.iinfo(np.uint16).max + 1 else np.int32
            # and the column pointers as int32 while the entries fit (a chunk's are 1.8 MB so on v7's mask, not 3.7 MB)
            ptr_dtype = np.int32 if indices.size <= np.iinfo(np.int32).max else np.int64
            got = (mat.indptr.astype(ptr_dtype), mat.indices.astype(rows_dtype))
            with self._lock:
                self._cols = got
        return got

    def totals(self) -> np.ndarray:
        """Active studies of the chunk per in-mask voxel (uint16 up to 65,535 studies, else int32), kept."""
        got = self._totals
        if got is None:
            from .counts import _count_kernel

            ptr, low, pages = self.paged()
            got = np.zeros(self.grid.n_mask, dtype=_count_dtype(self.n_studies))
            _count_kernel()(np.asarray(ptr, np.int64), low, np.arange(self.n_studies, dtype=np.int64), pages, got)
            with self._lock:
                self._totals = got
        return got

    def rows_bytes_estimate(self) -> int:
        """About what the rows will take once built (each sphere about 70 % new after the union, 16 bits)."""
        per_entry = 2 if self.kernel is None else 4 + (0 if self.dtype == bool else self.dtype.itemsize)
        return int(self.peak_ptr[-1] * len(self.offsets) * 0.7 * per_entry)

    def nbytes(self) -> int:
        """Memory held now: peaks, plus the rows once built."""
        n = self._ijk.nbytes + self.xyz.nbytes + self.peak_ptr.nbytes
        for part in (self._rows, self._cols):
            if part is not None:
                n += sum(a.nbytes for a in part)
        for extra in (self._values, self._vtotals):
            n += extra.nbytes if extra is not None and self._support_of is None else 0
        return n + (self._totals.nbytes if self._totals is not None else 0)

    def overlap(self, roi_flat: np.ndarray, plans: dict | None = None) -> np.ndarray:
        """ROI voxels active in each study of the chunk, (n_studies,) int64.

        ``roi_flat`` holds the ROI's voxels as flat indices of the full grid;
        ``plans`` keeps the ROI's :func:`~xcoact.kernels.roi_plan` for the other chunks of a call.
        From the second call on, compiled from the peaks near the ROI, found in
        the chunk's peaks sorted by position (made then, and kept;
        :func:`~xcoact.kernels.roi_overlap_compiled`); the first call, from those
        peaks' spheres (:func:`~xcoact.kernels.roi_overlap`, nothing compiled).
        A kernel whose support is not its offsets around the peaks reads the
        rows by voxel (:meth:`cols`, built once and kept).
        """
        from .kernels import box_overlap, peak_keys, roi_overlap_compiled, roi_plan

        self._overlaps += 1
        # a study's map is inside the brain mask: ROI voxels outside it are never active (both routes agree)
        roi_flat = roi_flat[self.grid.mask_index[roi_flat] >= 0]
        # a kernel whose support is not its offsets around the peaks: the rows say where a study is active
        if self.kernel is not None and not self.kernel.exact_support:
            voxels = self.grid.mask_index[roi_flat]
            colptr, study = self.cols()
            return np.bincount(study[ranges(colptr[voxels], colptr[voxels + 1])], minlength=self.n_studies)
        if self._overlaps == 1 or roi_flat.size == 0:  # the first seed: compiling would cost more than it saves
            return box_overlap(self.ijk, self.codes, self.n_studies, self.offsets, roi_flat, self.grid)
        if self._keys is None:
            self._keys = peak_keys(self.ijk, self.codes, self.n_studies, self.offsets, self.grid.shape)
        plans = {} if plans is None else plans
        key = (roi_flat.tobytes(), self.offsets.tobytes(), self.grid.token)
        if key not in plans:
            plans[key] = roi_plan(roi_flat, self.offsets, self.grid)
        args = (self.ijk, self.codes, self.n_studies, self.offsets, roi_flat, self.grid)
        return roi_overlap_compiled(*args, self._keys, plans[key])


def _index_key(key, ndim: int) -> list:
    """A basic/integer-array index as a list of ``ndim`` per-axis indices (None for a new axis)."""
    if not isinstance(key, tuple):
        key = (key,)
    n_ell = sum(k is Ellipsis for k in key)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(k is not None and k is not Ellipsis for k in key)
    out = []
    for k in key:
        if k is Ellipsis:
            out.extend([slice(None)] * (ndim - used))
        else:
            out.append(k)
    if n_ell == 0:
        out.extend([slice(None)] * (ndim - used))
    return out


class ActivationBlock:
    """A boolean ``(study, x, y, z)`` block (or any transpose of it) backed by a :class:`StudyChunk`.

    Of the kernel's dtype when the chunk holds a kernel's values (``kernel="kda"``, ...); ``astype(bool)``
    is then the boolean view of the same rows (where the value is not 0).

    Parameters
    ----------
    chunk : StudyChunk
    rows : (n,) int array
        The chunk's study rows in this block, in order.
    pos : tuple of three int arrays
        The full grid's voxel indices along x, y and z shown by this block.
    perm : tuple of four ints
        Axis ``i`` of the block is canonical axis ``perm[i]`` (0 study, 1 x, 2 y, 3 z).
    """

    __array_priority__ = 20

    def __init__(self, chunk: StudyChunk, rows=None, pos=None, perm=(0, 1, 2, 3)):
        self.chunk = chunk
        self.rows = np.arange(chunk.n_studies) if rows is None else np.asarray(rows, dtype=np.int64)
        self.pos = (
            tuple(np.arange(n) for n in chunk.grid.shape)
            if pos is None
            else tuple(np.asarray(p, dtype=np.int64) for p in pos)
        )
        self.perm = tuple(int(p) for p in perm)

    def __reduce__(self):
        # a block is data: it carries its chunk's rows when it moves (a persisted block sent to another
        # worker must not rebuild them), while the chunk alone travels as peaks
        if self.chunk._values is not None:  # a kernel's values travel with the rows
            return (_rebuild_block, (self.chunk, self.chunk._rows, self.rows, self.pos, self.perm, self.chunk._values))
        return (_rebuild_block, (self.chunk, self.chunk._rows, self.rows, self.pos, self.perm))

    # -- array protocol -------------------------------------------------------------------------------
    ndim = 4

    @property
    def dtype(self) -> np.dtype:
        """bool (binary spheres), or the kernel's value type (``kernel="kda"``, ...)."""
        return self.chunk.dtype

    @property
    def canonical_shape(self) -> tuple[int, int, int, int]:
        pos_x, pos_y, pos_z = self.pos
        return (len(self.rows), len(pos_x), len(pos_y), len(pos_z))

    @property
    def shape(self) -> tuple[int, ...]:
        cs = self.canonical_shape
        return tuple(cs[p] for p in self.perm)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        # what the block holds (its index arrays; the chunk's rows are shared by every view of it)
        return self.rows.nbytes + sum(p.nbytes for p in self.pos)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        state = "rows built" if self.chunk.built else "peaks only"
        return f"<ActivationBlock shape={self.shape} ({state}, {self.chunk.peak_ptr[-1]} peaks)>"

    def _repr_inline_(self, max_width: int) -> str:
        return f"sparse activations, {len(self.rows)} studies"

    @property
    def is_canonical(self) -> bool:
        """Study rows first and x, y, z in order (the layout the analyses reduce)."""
        return self.perm == (0, 1, 2, 3)

    def is_full_view(self) -> bool:
        """Every voxel of the full grid, in the grid's order (no spatial crop or reorder)."""
        full = self.__dict__.get("_full_view")
        if full is None:  # asked per ROI and per block: worked out once (a view's voxels never change)
            full = self.__dict__["_full_view"] = all(
                len(p) == n and (n == 0 or (p[0] == 0 and np.all(np.diff(p) == 1)))
                for p, n in zip(self.pos, self.chunk.grid.shape)
            )
        return full

    def view_mask_voxels(self) -> np.ndarray:
        """In-mask voxel numbers (of the full grid) at each view voxel, C order over the canonical view.

        -1 outside the mask.
        """
        shape = self.chunk.grid.shape
        flat = (
            self.pos[0][:, None, None] * (shape[1] * shape[2])
            + self.pos[1][None, :, None] * shape[2]
            + self.pos[2][None, None, :]
        )
        return self.chunk.grid.mask_index[flat.reshape(-1)]

    def __array__(self, dtype=None, copy=None):
        out = as_dense(self)
        return out if dtype is None else out.astype(dtype)

    def dense(self) -> np.ndarray:
        """The block as a numpy array of :attr:`shape` (bool, or the kernel's values with zeros elsewhere)."""
        n_rows = len(self.rows)
        lens = [len(p) for p in self.pos]
        out = np.zeros((n_rows, *lens), dtype=self.dtype)
        if out.size:
            inv = self.view_mask_voxels()
            # voxel number -> view position(s): views can repeat a voxel, so go through a sort
            order = np.argsort(inv, kind="stable")
            keys = inv[order]
            indptr, indices = self.chunk.rows()
            take = ranges(indptr[self.rows], indptr[self.rows + 1])
            sel = indices[take]
            row_of = np.repeat(np.arange(n_rows), indptr[self.rows + 1] - indptr[self.rows])
            lo = np.searchsorted(keys, sel, side="left")
            hi = np.searchsorted(keys, sel, side="right")
            hits = ranges(lo, hi)
            flat = out.reshape(n_rows, -1)
            values = self.chunk.values()
            flat[np.repeat(row_of, hi - lo), order[hits]] = True if values is None else np.repeat(values[take], hi - lo)
        return np.transpose(out, self.perm)

    def astype(self, dtype, copy: bool = True, **kwargs):
        if np.dtype(dtype) == self.dtype:
            return self
        if np.dtype(dtype) == bool:
            return self.support()  # a kernel's values as binary maps: the same rows, still sparse
        return as_dense(self).astype(dtype)

    def support(self) -> ActivationBlock:
        """The block's binary maps (value != 0), a boolean view sharing the chunk's rows; itself if boolean."""
        if self.dtype == bool:
            return self
        return ActivationBlock(self.chunk.support(), self.rows, self.pos, self.perm)

    def _indexed(self, key):
        """``(rows, pos)`` of the view ``self[key]`` selects, or None when the result is no such view."""
        idx = _index_key(key, self.ndim)
        if len(idx) != self.ndim or any(k is None or _is_scalar_index(k) for k in idx):
            return None  # a dropped or new axis is no longer a (study, x, y, z) block
        canon = [slice(None)] * 4
        for axis, k in enumerate(idx):
            canon[self.perm[axis]] = k
        try:
            rows = self.rows[_as_index(canon[0], len(self.rows))]
            pos = tuple(p[_as_index(k, len(p))] for p, k in zip(self.pos, canon[1:]))
        except (IndexError, TypeError):
            return None
        return rows, pos

    def __getitem__(self, key):
        got = self._indexed(key)
        if got is None:
            return as_dense(self)[key]
        return ActivationBlock(self.chunk, got[0], got[1], self.perm)

    def transpose(self, *axes):
        order: tuple | list | None = axes
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            order = axes[0]  # transpose((1, 0, 2, 3)) as numpy's, besides transpose(1, 0, 2, 3)
        if not order:
            order = tuple(reversed(range(self.ndim)))
        return ActivationBlock(self.chunk, self.rows, self.pos, tuple(self.perm[a % self.ndim] for a in order))

    @property
    def T(self):
        return self.transpose()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(np.asarray(x) if isinstance(x, ActivationBlock) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, ActivationBlock) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.transpose:
            axes = kwargs.get("axes", args[1] if len(args) > 1 else None)
            return args[0].transpose(axes)
        if func is np.concatenate:
            seq = args[0]
            axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
            joined = concatenate_blocks(list(seq), axis)
            if joined is not None:
                return joined
        return func(*_densify(args), **_densify(kwargs))

    # operators go through the ufuncs (dense)
    def __and__(self, other):
        return np.logical_and(self, other)

    def __or__(self, other):
        return np.logical_or(self, other)

    def __invert__(self):
        return np.logical_not(self)

    # elementwise, as numpy's: so a block is unhashable (defining __eq__ sets __hash__ to None)
    def __eq__(self, other):
        return np.equal(self, other)


def as_dense(block: ActivationBlock) -> np.ndarray:
    """The block as numpy; an empty one (Dask's ``meta``) without touching any rows."""
    if block.size == 0:
        return np.zeros(block.shape, dtype=block.dtype)
    return block.dense()


def _is_scalar_index(k) -> bool:
    return isinstance(k, (int, np.integer)) or (isinstance(k, np.ndarray) and k.ndim == 0)


def _as_index(k, n: int):
    """A slice, int list/array or bool array along one axis, as something numpy can index with."""
    if isinstance(k, slice):
        return k
    arr = np.asarray(k)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean index of shape {arr.shape} for an axis of {n}")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError("only 1-D integer or boolean index arrays keep a block sparse")
    return arr


def _densify(obj):
    if isinstance(obj, ActivationBlock):
        return as_dense(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_densify(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _densify(v) for k, v in obj.items()}
    return obj


def concatenate_blocks(blocks: list, axis: int = 0):
    """Join blocks along an axis as one view when they can share one; else None.

    Along the study axis, blocks of the same chunk with the same voxels join
    (a rechunk of one chunk's pieces).  Along a spatial axis, blocks showing
    the same studies of the same chunk join (a spatial rechunk).  Blocks of
    different chunks along ``study`` become a :class:`numpy.ndarray` only
    through :func:`join_chunks`' caller (see ``concatenate_lookup`` below).
    """
    if not blocks or not all(isinstance(b, ActivationBlock) for b in blocks):
        return None
    first = blocks[0]
    if any(b.perm != first.perm for b in blocks):
        return None
    canon_axis = first.perm[axis % first.ndim]
    if any(isinstance(b, StackedBlocks) for b in blocks):
        # a stack spans several chunks (its .chunk is only its first part's): stacks join along study, and along
        # space part by part (stacks of the same studies, as a spatial rechunk gives)
        if canon_axis == 0:
            return StackedBlocks.join(blocks)
        parts = [pieces_of(b) for b in blocks]
        if any(len(p) != len(parts[0]) for p in parts):
            return None
        joined = [concatenate_blocks([p[i] for p in parts], axis) for i in range(len(parts[0]))]
        if any(j is None for j in joined):
            return None
        return joined[0] if len(joined) == 1 else StackedBlocks(joined)
    if any(b.chunk is not first.chunk for b in blocks):
        if canon_axis == 0:
            return StackedBlocks.join(blocks)
        return None
    if canon_axis == 0:
        if any(not all(np.array_equal(p, q) for p, q in zip(b.pos, first.pos)) for b in blocks):
            return None
        return ActivationBlock(first.chunk, np.concatenate([b.rows for b in blocks]), first.pos, first.perm)
    if any(not np.array_equal(b.rows, first.rows) for b in blocks):
        return None
    pos = list(first.pos)
    pos[canon_axis - 1] = np.concatenate([b.pos[canon_axis - 1] for b in blocks])
    return ActivationBlock(first.chunk, first.rows, tuple(pos), first.perm)


def _rebuild_block(chunk: StudyChunk, chunk_rows, rows, pos, perm, chunk_values=None) -> ActivationBlock:
    return ActivationBlock(chunk.with_rows(chunk_rows, chunk_values), rows, pos, perm)


class StackedBlocks(ActivationBlock):
    """Blocks of several chunks joined along ``study`` (a coarser study rechunk): parts kept as they are."""

    def __init__(self, parts: list[ActivationBlock]):
        self.parts = list(parts)
        first = self.parts[0]
        self.chunk = first.chunk
        self.rows = np.arange(sum(len(p.rows) for p in self.parts))
        self.pos = first.pos
        self.perm = first.perm

    @classmethod
    def join(cls, blocks):
        parts: list = []
        for b in blocks:
            parts.extend(b.parts if isinstance(b, StackedBlocks) else [b])
        first = parts[0]
        if any(not all(np.array_equal(p, q) for p, q in zip(b.pos, first.pos)) for b in parts):
            return None
        return cls(parts)

    def __reduce__(self):
        return (StackedBlocks, (self.parts,))

    def __repr__(self) -> str:
        return f"<StackedBlocks shape={self.shape} ({len(self.parts)} chunks)>"

    def dense(self) -> np.ndarray:
        axis = self.perm.index(0)
        return np.concatenate([p.dense() for p in self.parts], axis=axis)

    def _split(self, rows: np.ndarray):
        """The parts' pieces for a selection of this block's rows (in order)."""
        bounds = np.cumsum([0] + [len(p.rows) for p in self.parts])
        out = []
        part_of = np.searchsorted(bounds, rows, side="right") - 1
        # consecutive runs of one part keep the order of ``rows``
        starts = np.flatnonzero(np.r_[True, part_of[1:] != part_of[:-1]]) if rows.size else np.zeros(0, int)
        for s, e in zip(starts, np.r_[starts[1:], rows.size]):
            i = part_of[s]
            out.append(
                ActivationBlock(self.parts[i].chunk, self.parts[i].rows[rows[s:e] - bounds[i]], self.pos, self.perm)
            )
        return out

    def __getitem__(self, key):
        got = self._indexed(key)
        if got is None:
            return as_dense(self)[key]
        rows, pos = got
        pieces = [ActivationBlock(p.chunk, p.rows, pos, p.perm) for p in self._split(rows)]
        if not pieces:
            return ActivationBlock(self.parts[0].chunk, np.zeros(0, np.int64), pos, self.perm)
        return pieces[0] if len(pieces) == 1 else StackedBlocks(pieces)

    def transpose(self, *axes):
        order: tuple | list | None = axes
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            order = axes[0]  # transpose((1, 0, 2, 3)) as numpy's, besides transpose(1, 0, 2, 3)
        if not order:
            order = tuple(reversed(range(self.ndim)))
        return StackedBlocks([p.transpose(order) for p in self.parts])

    def pieces(self) -> list[ActivationBlock]:
        return list(self.parts)

    def support(self) -> StackedBlocks:
        if self.dtype == bool:
            return self
        return StackedBlocks([p.support() for p in self.parts])


def pieces_of(block: ActivationBlock) -> list[ActivationBlock]:
    """The single-chunk blocks a block is made of (itself, unless stacked)."""
    return block.pieces() if isinstance(block, StackedBlocks) else [block]


def is_block_cube(data) -> bool:
    """Whether a Dask array is made of :class:`ActivationBlock` s (the sparse route applies)."""
    return isinstance(getattr(data, "_meta", None), ActivationBlock)


def empty_block(chunk: StudyChunk) -> ActivationBlock:
    """A zero-size block, for Dask's ``meta``."""
    return ActivationBlock(chunk, np.zeros(0, np.int64), tuple(np.zeros(0, np.int64) for _ in range(3)))


def _register_with_dask() -> None:
    from dask.array.dispatch import concatenate_lookup, take_lookup
    from dask.sizeof import sizeof

    @take_lookup.register(ActivationBlock)
    def _take(block, indices, axis=0):
        # how Dask reorders a block after taking studies from several chunks (isel with an unsorted index): a view
        key = [slice(None)] * block.ndim
        key[axis] = np.asarray(indices)
        return block[tuple(key)]

    @sizeof.register(ActivationBlock)
    def _sizeof(block):
        # what holding the block costs once its rows are built: Dask's scheduler then keeps work next to
        # a persisted block instead of moving it (a moved block arrives without its rows and rebuilds them)
        return block.nbytes + sum(max(p.chunk.nbytes(), p.chunk.rows_bytes_estimate()) for p in pieces_of(block))

    @concatenate_lookup.register(ActivationBlock)
    def _concatenate(arrays, axis=0):
        arrays = list(arrays)
        joined = concatenate_blocks(arrays, axis)
        if joined is not None:
            return joined
        return np.concatenate([np.asarray(a) for a in arrays], axis=axis)


_register_with_dask()
