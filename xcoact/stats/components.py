"""Connected components of voxel sets: the one labeller of cluster tables and cluster-level FWE.

Neighbours share a face (``connectivity=6``), an edge too (18) or a corner too (26); :func:`label` equals
``ndimage.label(binary, structure(connectivity))``, numbering included.  A compiled union-find over the set's
runs along the last axis costs what the set holds, not the volume: what a permutation null needs.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["CONNECTIVITY", "Labeller", "VoxelLabeller", "label", "structure"]

#: Largest number of non-zero coordinates of a neighbour offset (``ndimage.generate_binary_structure`` rank).
CONNECTIVITY = {6: 1, 18: 2, 26: 3}


def structure(connectivity: int = 26) -> np.ndarray:
    """The 3 x 3 x 3 neighbourhood of a connectivity (for :mod:`scipy.ndimage` filters)."""
    from scipy import ndimage

    return ndimage.generate_binary_structure(3, CONNECTIVITY[connectivity])


def _union_find(pos, row_offsets, reach, scratch):  # compiled on first use; plain Python here so that import is cheap
    """Component (0..n-1, in order of first voxel) of each voxel at the sorted padded positions ``pos``.

    A run along the last axis joins the runs of the forward rows ``pos + row_offsets[k]`` within ``reach[k]``;
    roots are the smallest run numbers, hence C order.  ``scratch`` is -1 on entry and left so.
    """
    n = pos.size
    run_of = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    n_runs = 0
    for i in range(n):
        if i == 0 or pos[i] != pos[i - 1] + 1:
            first[n_runs] = i
            n_runs += 1
        run_of[i] = n_runs - 1
        scratch[pos[i]] = n_runs - 1
    parent = np.arange(n_runs)
    for r in range(n_runs):
        lo = pos[first[r]]
        hi = pos[first[r + 1] - 1] if r + 1 < n_runs else pos[n - 1]
        for k in range(row_offsets.size):
            seen = -1
            for q in range(lo + row_offsets[k] - reach[k], hi + row_offsets[k] + reach[k] + 1):
                j = scratch[q]
                if j < 0 or j == seen:
                    continue
                seen = j
                ri = r
                while parent[ri] != ri:
                    parent[ri] = parent[parent[ri]]
                    ri = parent[ri]
                rj = j
                while parent[rj] != rj:
                    parent[rj] = parent[parent[rj]]
                    rj = parent[rj]
                if ri < rj:
                    parent[rj] = ri
                elif rj < ri:
                    parent[ri] = rj
    for i in range(n):
        scratch[pos[i]] = -1
    run_label = np.empty(n_runs, dtype=np.int64)
    count = 0
    for r in range(n_runs):
        root = r
        while parent[root] != root:
            root = parent[root]
        if root == r:
            run_label[r] = count
            count += 1
        else:
            run_label[r] = run_label[root]
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        labels[i] = run_label[run_of[i]]
    return count, labels


@functools.cache
def compiled(func):
    """``func`` compiled by numba (no GIL held), once, cached on disk; numba imported on first use (0.3 s, 60 MB)."""
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(func)
    except RuntimeError:  # no writable cache directory: compile in memory, per process
        return numba.njit(nogil=True)(func)


class Labeller:
    """Connected components of voxel sets on one grid, for repeated calls.

    Parameters
    ----------
    shape : tuple of three ints
        The grid.
    connectivity : {6, 18, 26}, default 26

    Notes
    -----
    Sets are sorted positions in the grid padded by one voxel (:meth:`positions`: no offset wraps an edge);
    one :meth:`scratch` volume serves any number of calls, one thread at a time.
    """

    def __init__(self, shape, connectivity: int = 26):
        if connectivity not in CONNECTIVITY:
            raise ValueError(f"connectivity={connectivity!r}; expected 6, 18 or 26")
        self.shape = tuple(int(s) for s in shape)
        self.connectivity = int(connectivity)
        padded = np.array(self.shape) + 2
        self.size = int(np.prod(padded))
        steps = np.array([padded[1] * padded[2], padded[2], 1], dtype=np.int64)
        self._steps = steps
        # the forward neighbouring rows (each pair seen once) and how far along the last axis a neighbour lies
        rank = CONNECTIVITY[connectivity]
        rows, reach = [], []
        for di, dj in ((0, 1), (1, -1), (1, 0), (1, 1)):
            left = rank - abs(di) - abs(dj)
            if left >= 0:
                rows.append(di * steps[0] + dj * steps[1])
                reach.append(min(left, 1))
        self.row_offsets = np.array(rows, dtype=np.int64)
        self.reach = np.array(reach, dtype=np.int64)

    def positions(self, flat: np.ndarray) -> np.ndarray:
        """Padded positions (int64) of C-order flat indices of the grid; the order is kept."""
        ijk = np.unravel_index(np.asarray(flat, dtype=np.int64), self.shape)
        return sum((c.astype(np.int64) + 1) * s for c, s in zip(ijk, self._steps))

    def scratch(self) -> np.ndarray:
        """A scratch volume for :meth:`label` (all -1)."""
        return np.full(self.size, -1, dtype=np.int32)

    def label(self, positions: np.ndarray, scratch: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """Number of components and the component (0..n-1) of each voxel.

        Parameters
        ----------
        positions : (n,) int64 array
            Sorted ascending padded positions (:meth:`positions` of C-order indices).
        scratch : int32 array, optional
            From :meth:`scratch`; a new one when not given.
        """
        positions = np.ascontiguousarray(positions, dtype=np.int64)
        if positions.size == 0:
            return 0, np.zeros(0, dtype=np.int64)
        scratch = self.scratch() if scratch is None else scratch
        count, labels = compiled(_union_find)(positions, self.row_offsets, self.reach, scratch)
        return int(count), labels


def label(binary: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Components of a 3-D boolean volume: ``(labels, n)``, labels 1..n and 0 outside, as ``ndimage.label``.

    Examples
    --------
    >>> vol = np.zeros((4, 4, 4), dtype=bool); vol[0, 0, 0] = vol[1, 1, 1] = vol[3, 3, 3] = True
    >>> label(vol)[1], label(vol, connectivity=6)[1]      # (0,0,0) and (1,1,1) touch at a corner
    (2, 3)
    """
    binary = np.asarray(binary, dtype=bool)
    flat = np.flatnonzero(binary)
    labeller = Labeller(binary.shape, connectivity)
    n, lab = labeller.label(labeller.positions(flat))
    out = np.zeros(binary.shape, dtype=np.int32)
    out.ravel()[flat] = lab + 1
    return out, n


class VoxelLabeller(Labeller):
    """A :class:`Labeller` of subsets of one fixed list of voxels (a brain mask's), named by their place in it.

    Parameters
    ----------
    shape : tuple of three ints
    voxels : (n,) int array
        C-order flat indices of the grid, ascending (``Grid.mask_flat``).
    connectivity : {6, 18, 26}, default 26
    """

    def __init__(self, shape, voxels: np.ndarray, connectivity: int = 26):
        super().__init__(shape, connectivity)
        self.voxel_positions = self.positions(voxels)

    def label_voxels(self, numbers: np.ndarray, scratch: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """:meth:`Labeller.label` of the voxels ``voxels[numbers]`` (``numbers`` ascending)."""
        return self.label(self.voxel_positions[numbers], scratch)
