"""Connected components of voxel sets: the one labeller of cluster tables and cluster-level FWE.

Two voxels are neighbours when they share a face (``connectivity=6``), a face
or an edge (18), or a face, an edge or a corner (26: the whole 3 x 3 x 3 block,
the convention of SPM and FSL's ``cluster``).  Components are numbered in C
order of their first voxel, as :func:`scipy.ndimage.label` numbers them, so
:func:`label` returns exactly ``ndimage.label(binary, structure(connectivity))``.

The work is a union-find over the set's own voxels (each voxel looks at its
forward neighbours in a padded copy of the grid), compiled with numba: its
cost follows the number of voxels in the set, not the size of the volume,
which is what a permutation null needs (thousands of sets per run).
:class:`Labeller` keeps what one grid needs (the neighbour offsets and a
scratch volume) for repeated calls; :func:`label` is the one-volume form.
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


def _union_find(pos, offsets, scratch):  # compiled by _kernel(); plain Python here so that import is cheap
    """Component (0..n-1, in order of first voxel) of each voxel at the sorted padded positions ``pos``.

    ``scratch`` is -1 everywhere on entry and is left so.  Every root is the
    smallest voxel number of its component, so the first voxel of a component
    in ascending order is its root and numbering in that order is C order.
    """
    n = pos.size
    parent = np.arange(n)
    for i in range(n):
        scratch[pos[i]] = i
    for i in range(n):
        p = pos[i]
        for o in offsets:
            j = scratch[p + o]
            if j < 0:
                continue
            ri = i
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
    labels = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        if r == i:
            labels[i] = count
            count += 1
        else:
            labels[i] = labels[r]
    return count, labels


@functools.cache
def _kernel():
    # numba is imported on the first labelling, not with xcoact (its import costs about 0.3 s and 60 MB);
    # cache=True keeps the compiled code on disk for the next process
    import numba

    return numba.njit(cache=True, nogil=True)(_union_find)


class Labeller:
    """Connected components of voxel sets on one grid, for repeated calls.

    Parameters
    ----------
    shape : tuple of three ints
        The grid.
    connectivity : {6, 18, 26}, default 26

    Notes
    -----
    A set is given as sorted positions in the grid padded by one voxel on
    every side (:meth:`positions`), so that a neighbour offset never wraps
    around an edge.  One scratch volume (:meth:`scratch`, int32 over the
    padded grid) serves any number of calls, one thread at a time.
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
        offs = []
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                for dk in (-1, 0, 1):
                    nz = abs(di) + abs(dj) + abs(dk)
                    o = di * steps[0] + dj * steps[1] + dk * steps[2]
                    if 0 < nz <= CONNECTIVITY[connectivity] and o > 0:  # forward half: each pair is seen once
                        offs.append(o)
        self.offsets = np.array(offs, dtype=np.int64)

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
        count, labels = _kernel()(positions, self.offsets, self.scratch() if scratch is None else scratch)
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
