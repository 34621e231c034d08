"""The voxel grid: shape, affine, brain mask and coordinate labels.

A :class:`Grid` ties array indices to millimetres.  Affines point at voxel
*centres* (NIfTI convention, no half-voxel shift), so voxel ``(i, j, k)`` of the
default MNI152 2 mm grid has its centre at ``x = 90 - 2i, y = -126 + 2j,
z = -72 + 2k`` (:ref:`semantics-grid`).  In DataArrays those centres are the ``x``,
``y`` and ``z`` coordinate labels, which is what lets two grids with flipped
axes align by label.
"""

from __future__ import annotations

import functools
import hashlib
import weakref
from importlib import resources

import numpy as np

from .errors import ParameterError, RoiError

__all__ = ["Grid", "mni152_2mm", "affine_from_coords", "axis_labels", "axis_permutation"]

#: Tolerance (mm) under which two coordinate labels count as the same centre.
LABEL_ATOL = 1e-4


def axis_labels(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates (mm) along each axis of an axis-aligned affine.

    Parameters
    ----------
    affine : (4, 4) array
        Voxel-to-world affine; must not rotate or shear the axes.
    shape : (3,) tuple of int

    Returns
    -------
    x, y, z : tuple of 1-D float64 arrays
    """
    affine = np.asarray(affine, dtype=float)
    check_finite_affine(affine)
    lin = affine[:3, :3]
    if not np.allclose(lin, np.diag(np.diag(lin)), atol=1e-6) or np.any(np.diag(lin) == 0):
        if axis_permutation(affine) is not None:
            raise RoiError(
                f"the affine {_affine_text(affine)} permutes the voxel axes "
                "(voxel axis i does not run along x, j along y, k along z); reorder the array's axes first "
                "(xcoact's ROI readers do this themselves), e.g. nibabel.as_closest_canonical(img)."
            )
        raise RoiError(
            f"the affine {_affine_text(affine)} is oblique "
            "(it rotates or shears the voxel axes); xcoact aligns images by x/y/z labels and "
            "needs an axis-aligned affine. Reslice the image to the MNI152 grid first "
            "(e.g. nilearn.image.resample_to_img)."
        )
    return tuple(affine[a, a] * np.arange(shape[a]) + affine[a, 3] for a in range(3))


def _affine_text(affine: np.ndarray) -> str:
    """An affine on one line for a message."""
    return " ".join(np.array2string(np.asarray(affine, dtype=float), precision=4, separator=", ").split())


def check_finite_affine(affine: np.ndarray) -> None:
    """Refuse an affine holding NaN or infinite values (no voxel would have a place in mm)."""
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise RoiError(
            f"the affine {_affine_text(affine)} holds NaN or infinite values "
            "(or is not 4 x 4), so its voxels have no position in mm; the header is broken. Save the image again "
            "with a valid affine (e.g. copy the affine of the template it was made on)."
        )


def axis_permutation(affine: np.ndarray) -> tuple[int, int, int] | None:
    """For an affine that only permutes (and scales or flips) the axes, the voxel axis along x, y and z.

    Returns ``None`` when the affine rotates or shears (an oblique image);
    ``(0, 1, 2)`` for an axis-aligned one.  With the result ``p``,
    ``data.transpose(p)`` has voxel axis ``a`` along world axis ``a``, and
    ``affine[:3, :3][:, p]`` is its (diagonal) affine.

    Examples
    --------
    >>> lia = [[-2, 0, 0, 90], [0, 0, 2, -126], [0, -2, 0, 108], [0, 0, 0, 1]]
    >>> axis_permutation(lia)
    (0, 2, 1)
    """
    lin = np.asarray(affine, dtype=float)[:3, :3]
    big = np.abs(lin) > 1e-6 * max(float(np.abs(lin).max()), 1e-300)
    if not np.isfinite(lin).all() or not (big.sum(axis=0) == 1).all() or not (big.sum(axis=1) == 1).all():
        return None
    # row a (world axis) has its one entry in column perm[a] (voxel axis)
    i, j, k = (int(np.flatnonzero(big[a])[0]) for a in range(3))
    return i, j, k


def affine_from_coords(x, y, z) -> np.ndarray:
    """The axis-aligned affine whose voxel centres are the given labels.

    Parameters
    ----------
    x, y, z : 1-D array-like
        Evenly spaced voxel-centre coordinates (mm), ascending or descending.

    Returns
    -------
    (4, 4) float64 array
    """
    affine = np.eye(4)
    for a, (name, lab) in enumerate(zip("xyz", (x, y, z))):
        lab = np.asarray(lab, dtype=float)
        step = lab[1] - lab[0] if lab.size > 1 else 1.0
        if lab.size > 1 and not np.allclose(np.diff(lab), step, atol=LABEL_ATOL):
            raise ParameterError(
                f"coordinate {name!r} is not evenly spaced (steps {np.unique(np.diff(lab))[:5]}); "
                "a NIfTI image needs a regular grid. Select a contiguous block of the grid."
            )
        affine[a, a] = step
        affine[a, 3] = lab[0]
    return affine


class Grid:
    """A 3-D voxel grid with an axis-aligned affine and a brain mask.

    Parameters
    ----------
    shape : (3,) tuple of int
    affine : (4, 4) array
        Voxel-to-MNI-mm affine pointing at voxel centres.
    mask : (shape) bool array, optional
        Brain mask; every voxel when omitted.
    name : str
        A short label used in provenance.
    """

    def __init__(self, shape, affine, mask=None, name: str = "custom"):
        self.shape = tuple(int(s) for s in shape)
        self.affine = np.array(affine, dtype=float)
        self.x, self.y, self.z = axis_labels(self.affine, self.shape)
        if mask is None:
            mask = np.ones(self.shape, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.shape:
            raise ParameterError(f"grid mask has shape {mask.shape}, expected {self.shape}")
        self.mask = mask
        self.mask.setflags(write=False)
        self.name = name

    @functools.cached_property
    def voxel_size(self) -> np.ndarray:
        """Absolute voxel edge lengths (mm) along x, y, z."""
        return np.abs(np.diag(self.affine)[:3])

    @functools.cached_property
    def n_mask(self) -> int:
        """Number of in-mask voxels."""
        return int(self.mask.sum())

    @functools.cached_property
    def mask_index(self) -> np.ndarray:
        """Lookup from flat (C-order) grid index to in-mask index, -1 outside the mask."""
        lookup = np.full(int(np.prod(self.shape)), -1, dtype=np.int64)
        flat = np.flatnonzero(self.mask)
        lookup[flat] = np.arange(flat.size)
        return lookup

    @functools.cached_property
    def mask_flat(self) -> np.ndarray:
        """Flat (C-order) grid indices of the in-mask voxels, ascending."""
        return np.flatnonzero(self.mask)

    @functools.cached_property
    def token(self) -> str:
        """A content hash, used to name Dask tasks deterministically."""
        h = hashlib.sha1()
        h.update(repr(self.shape).encode())
        h.update(self.affine.tobytes())
        h.update(np.packbits(self.mask).tobytes())
        return h.hexdigest()[:16]

    def xyz_to_ijk(self, xyz) -> np.ndarray:
        """Round mm coordinates to voxel indices (half to even, as numpy's ``round``).

        Parameters
        ----------
        xyz : (n, 3) array-like of float

        Returns
        -------
        (n, 3) int64 array
            Indices may fall outside the grid; callers decide what that means.
        """
        xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
        inv = np.linalg.inv(self.affine)
        # Per axis, because the affine is diagonal: i = x / dx - x0 / dx, exactly
        # i = round(-x/2 + 45) for the MNI152 2 mm grid (see docs/semantics.md, 'The grid and the rounding of peaks').
        ijk = np.empty(xyz.shape, dtype=float)
        for a in range(3):
            ijk[:, a] = xyz[:, a] * inv[a, a] + inv[a, 3]
        return np.round(ijk).astype(np.int64)

    def in_box(self, ijk: np.ndarray) -> np.ndarray:
        """Whether each (i, j, k) row lies inside the grid's box."""
        ijk = np.asarray(ijk)
        return np.all((ijk >= 0) & (ijk < np.asarray(self.shape)), axis=-1)

    def coords(self) -> dict[str, np.ndarray]:
        """The x, y, z coordinate labels (mm at voxel centres)."""
        return {"x": self.x, "y": self.y, "z": self.z}

    def __dask_tokenize__(self):
        return ("xcoact-grid", self.token)

    # Shipped to Dask workers: send the definition, not the cached lookups (they rebuild on demand). Each task's
    # blocks arrive pickled on their own, so the grid is rebuilt once per process (_shared_grid), not once per
    # block: a worker holding 70 study blocks of one cube would otherwise hold 70 copies of the mask and its
    # 7 MB lookup.
    def __reduce__(self):
        return (_shared_grid, (self.__getstate__(),))

    def __getstate__(self):
        return {"shape": self.shape, "affine": self.affine, "mask": np.packbits(self.mask), "name": self.name}

    def __setstate__(self, state):
        mask = np.unpackbits(state["mask"], count=int(np.prod(state["shape"]))).reshape(state["shape"]).astype(bool)
        Grid.__init__(self, state["shape"], state["affine"], mask, state["name"])

    def __eq__(self, other) -> bool:
        return isinstance(other, Grid) and self.token == other.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __repr__(self) -> str:
        voxel = "x".join(f"{v:g}" for v in self.voxel_size)
        return f"<xcoact.Grid {self.name} shape={self.shape} voxel={voxel} mm, {self.n_mask} in-mask voxels>"


#: Grids rebuilt from their definition in this process, by content and name (values, not identities: a grid is
#: immutable); weak, so a grid no cube uses any more is freed.
_SHARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _shared_grid(state: dict) -> Grid:
    """The grid of a pickled definition; one object per process for equal definitions (see ``Grid.__reduce__``)."""
    grid = Grid.__new__(Grid)
    grid.__setstate__(state)
    return _SHARED.setdefault((grid.token, grid.name), grid)


@functools.lru_cache(maxsize=1)
def mni152_2mm() -> Grid:
    """The default grid: MNI152 2 mm, 91 x 109 x 91, Neurosynth's brain mask.

    The mask is every voxel > 0 of the bundled ``MNI152_T1_2mm_brain.nii.gz``
    (228,453 voxels), the template Neurosynth 0.3.8 ships.
    """
    import nibabel as nib

    path = resources.files("xcoact.datasets") / "data" / "MNI152_T1_2mm_brain.nii.gz"
    with resources.as_file(path) as p:
        img = nib.load(str(p))
        data = np.asarray(img.dataobj)
        return Grid(img.shape, img.affine, data > 0, name="MNI152 2mm")
