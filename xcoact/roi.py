"""Seeds -> boolean ROI masks on the cube's x/y/z coordinate labels.

A seed may be a NIfTI path, a nibabel image, a DataArray with ``x, y, z``
dims, or MNI coordinates grown into spheres.  Images are aligned to the cube
by coordinate *labels* (mm at voxel centres), so an ROI stored RAS (x
ascending) and the same ROI stored LAS give the same mask.  An image on
another grid is resampled by nearest neighbour (with a warning).  The ROI is
every voxel with value > 0 (NaN ignored), restricted to the brain mask.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import NamedTuple, Union

import numpy as np
import xarray as xr

from .errors import DatabaseFileNotFoundError, ParameterError, RoiError
from .kernels import check_radius, sphere_offsets
from .space import LABEL_ATOL, Grid, affine_from_coords, axis_labels
from .warnings import ResampleWarning

__all__ = ["roi_mask", "seed_set", "is_batch", "SeedROI", "image_to_dataarray", "grid_of", "Seed", "describe_seed"]

Seed = Union[str, os.PathLike, "nibabel.spatialimages.SpatialImage", xr.DataArray, list, tuple, np.ndarray]


def grid_of(cube: xr.DataArray) -> Grid:
    """The grid (affine from the x/y/z labels, and the brain mask) of a cube."""
    affine = affine_from_coords(cube["x"].values, cube["y"].values, cube["z"].values)
    shape = (cube.sizes["x"], cube.sizes["y"], cube.sizes["z"])
    mask = cube["brain_mask"].transpose("x", "y", "z").values if "brain_mask" in cube.coords else None
    return Grid(shape, affine, mask)


def _one_line(err: BaseException) -> str:
    """A library's error text on one line (nibabel's span several), for our message."""
    return " ".join(str(err).split())


def _load_image(path):
    import nibabel as nib

    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatabaseFileNotFoundError(f"{path}: no such ROI image. Pass a NIfTI file (.nii or .nii.gz), e.g. 'my_roi_mask.nii.gz'.")
    try:
        img = nib.load(path)
        img.get_fdata  # noqa: B018  (proxies load lazily; touch the header now)
    except Exception as err:  # nibabel raises many kinds for bad files
        raise RoiError(
            f"{path}: could not be read as a NIfTI image ({type(err).__name__}: {_one_line(err)}). Expected a NIfTI-1 or "
            "NIfTI-2 file (.nii or .nii.gz); if this is one, it is truncated or corrupt: save or download it "
            "again ('gzip -t' checks a .nii.gz)."
        ) from err
    return img, path


def image_to_dataarray(img, name: str = "image") -> xr.DataArray:
    """A 3-D nibabel image as a DataArray with x, y, z labels from its affine.

    Parameters
    ----------
    img : nibabel SpatialImage
        3-D (trailing singleton dimensions are dropped), real-valued.
    name : str
        Used in messages.

    Returns
    -------
    xarray.DataArray
        dims ``(x, y, z)``, float64 values, coordinates in mm.
    """
    try:
        data = np.asarray(img.dataobj)
    except Exception as err:
        raise RoiError(
            f"{name}: the image data could not be read ({type(err).__name__}: {_one_line(err)}); the file may be truncated. "
            "Save or download it again ('gzip -t' checks a .nii.gz)."
        ) from err
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise RoiError(
            f"{name}: image has shape {data.shape}; expected a 3-D ROI (one volume). Select one volume first "
            "(e.g. img.slicer[..., 0] in nibabel)."
        )
    if np.iscomplexobj(data):
        raise RoiError(
            f"{name}: image is complex-valued ({data.dtype}); expected real values (voxels > 0 form the ROI). "
            "Take its magnitude or real part first."
        )
    try:
        x, y, z = axis_labels(img.affine, data.shape)
    except RoiError as err:
        raise RoiError(f"{name}: {err}") from None
    return xr.DataArray(data.astype(np.float64), dims=("x", "y", "z"), coords={"x": x, "y": y, "z": z}, name=name)


def _on_lattice(labels: np.ndarray, axis: int, grid: Grid) -> bool:
    """Whether labels are voxel centres of the grid's lattice along an axis, at its spacing.

    True for the grid itself, for a crop of it and for a larger field of view
    on the same voxel centres: those align by label, with no resampling.
    """
    step = float(grid.voxel_size[axis])
    if labels.size > 1 and not np.allclose(np.abs(np.diff(labels)), step, atol=LABEL_ATOL, rtol=0):
        return False
    k = (labels - grid.affine[axis, 3]) / step
    return bool(np.allclose(k, np.round(k), atol=LABEL_ATOL / step, rtol=0))


def _align(values: xr.DataArray, grid: Grid, name: str) -> np.ndarray:
    """Bring an (x, y, z) DataArray onto the grid by label; nearest neighbour if the grids differ.

    Values keep their dtype (bool masks or integer atlas labels); cube voxels
    the image does not cover are 0 / False.
    """
    zero = values.dtype.type(0)
    target = grid.coords()
    if all(_on_lattice(values[d].values, a, grid) for a, d in enumerate("xyz")):
        # same voxel centres (maybe another field of view): match labels, False where the ROI has none
        out = values.sortby(["x", "y", "z"]).reindex(
            {d: target[d] for d in "xyz"}, method="nearest", tolerance=LABEL_ATOL, fill_value=zero
        )
        return out.transpose("x", "y", "z").values.astype(values.dtype)
    steps = {d: float(np.abs(np.diff(values[d].values)).min()) if values.sizes[d] > 1 else np.inf for d in "xyz"}
    warnings.warn(
        f"{name}: ROI is on another grid (voxel {tuple(round(steps[d], 3) for d in 'xyz')} mm, shape "
        f"{tuple(values.sizes[d] for d in 'xyz')}); resampled to the cube's {grid.shape} grid by nearest neighbour.",
        ResampleWarning,
        stacklevel=4,
    )
    values = values.sortby(["x", "y", "z"])
    # nearest neighbour along each axis, then blank cube voxels beyond the ROI's own extent
    out = values.reindex({d: target[d] for d in "xyz"}, method="nearest")
    vals = out.transpose("x", "y", "z").values.astype(values.dtype)
    for a, d in enumerate("xyz"):
        src = values[d].values
        half = steps[d] / 2 if np.isfinite(steps[d]) else 0.5
        outside = (target[d] < src.min() - half) | (target[d] > src.max() + half)
        idx = [slice(None)] * 3
        idx[a] = outside
        vals[tuple(idx)] = zero
    return vals


def _coords_seed(coords, r, grid: Grid) -> np.ndarray:
    xyz = np.asarray(coords, dtype=float)
    if xyz.ndim == 1:
        xyz = xyz[None]
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0:
        raise ParameterError(f"seed coordinates have shape {np.shape(coords)}; expected [[x, y, z], ...] in MNI mm.")
    if not np.isfinite(xyz).all():
        raise ParameterError(f"seed coordinates {xyz.tolist()} contain NaN or infinity; expected finite MNI mm.")
    r = check_radius(r)
    ijk = grid.xyz_to_ijk(xyz)
    outside = ~grid.in_box(ijk)
    if outside.any():
        lo = [float(min(c[0], c[-1])) for c in (grid.x, grid.y, grid.z)]
        hi = [float(max(c[0], c[-1])) for c in (grid.x, grid.y, grid.z)]
        raise ParameterError(
            f"seed coordinate(s) {xyz[outside].tolist()} lie outside the grid; expected x in [{lo[0]}, {hi[0]}], "
            f"y in [{lo[1]}, {hi[1]}], z in [{lo[2]}, {hi[2]}] mm (MNI)."
        )
    vox = (ijk[:, None, :] + sphere_offsets(r, grid.voxel_size)[None]).reshape(-1, 3)
    vox = vox[grid.in_box(vox)]
    mask = np.zeros(grid.shape, dtype=bool)
    mask[vox[:, 0], vox[:, 1], vox[:, 2]] = True
    return mask


def is_coords(seed) -> bool:
    """Whether a seed is MNI coordinates ``[x, y, z]`` or ``[[x, y, z], ...]``."""
    if isinstance(seed, (list, tuple, np.ndarray)) and not isinstance(seed, xr.DataArray):
        try:
            arr = np.asarray(seed, dtype=float)
        except (TypeError, ValueError):
            return False
        return arr.ndim in (1, 2) and arr.shape[-1] == 3
    return False


def describe_seed(seed, r=None) -> str:
    """A short JSON-able description of a seed for provenance."""
    if is_coords(seed):
        return json.dumps({"coordinates": np.atleast_2d(np.asarray(seed, dtype=float)).tolist(), "r": r})
    if isinstance(seed, (str, os.PathLike)):
        return os.fspath(seed)
    if isinstance(seed, xr.DataArray):
        return f"DataArray {seed.name!r}"
    return type(seed).__name__


def _image_values(seed) -> tuple[xr.DataArray, str]:
    """An image-like seed as a real-valued (x, y, z) DataArray with mm labels, and its name."""
    if isinstance(seed, (str, os.PathLike)):
        img, name = _load_image(seed)
        values = image_to_dataarray(img, name)
    elif isinstance(seed, xr.DataArray):
        name = f"DataArray {seed.name!r}" if seed.name is not None else "seed DataArray"
        missing = {"x", "y", "z"} - set(seed.dims)
        if missing or seed.ndim != 3:
            raise RoiError(f"{name}: dims {seed.dims}; expected exactly ('x', 'y', 'z') with mm coordinate labels.")
        values = seed
    elif hasattr(seed, "affine") and hasattr(seed, "dataobj"):
        name = f"image {getattr(seed, 'get_filename', lambda: None)() or type(seed).__name__}"
        values = image_to_dataarray(seed, name)
    else:
        raise ParameterError(
            f"seed of type {type(seed).__name__} is not understood; expected a NIfTI path, a nibabel image, "
            "a DataArray with x/y/z dims, or coordinates [[x, y, z], ...] with r."
        )
    if np.iscomplexobj(values.values):
        raise RoiError(
            f"{name}: values are complex ({values.dtype}); expected real values (voxels > 0 form the ROI). "
            "Take their magnitude or real part first."
        )
    return values, name


def _why_empty(values: xr.DataArray | None) -> str:
    """What an ROI with no in-mask voxel holds, for the error message."""
    if values is None:
        return "the sphere(s) fall outside the brain mask"
    data = np.asarray(values.values)
    if data.dtype == bool:
        n_pos = int(data.sum())
        return "every value is False" if not n_pos else f"{n_pos} True voxel(s), none inside the brain mask"
    finite = data[np.isfinite(data)]
    if not finite.size:
        return f"every one of its {data.size} values is NaN or infinite"
    n_pos = int((finite > 0).sum())
    if not n_pos:
        return f"no value > 0 (values from {finite.min():g} to {finite.max():g})"
    return f"{n_pos} voxel(s) > 0, none inside the brain mask of the cube's grid"


def roi_mask(seed: Seed, grid: Grid, r: float | None = None, *, restrict: bool = True) -> xr.DataArray:
    """A seed as a boolean mask on the grid's x/y/z labels.

    Parameters
    ----------
    seed : str, path-like, nibabel image, xarray.DataArray, or (n, 3) array-like
        An ROI image (voxels > 0; several labels form one ROI, NaN ignored),
        or MNI coordinates ``[[x, y, z], ...]`` grown into spheres of radius ``r``.
    grid : Grid
        The cube's grid; the ROI is restricted to its brain mask.
    r : float, optional
        Sphere radius (mm) for coordinate seeds; required for them.
    restrict : bool, default True
        Keep only the voxels inside the brain mask (SPEC section 4).  False
        keeps every ROI voxel in the box (NiMARE selects studies by the whole
        ROI image); the ROI must still touch the brain mask.

    Returns
    -------
    xarray.DataArray
        bool, dims ``(x, y, z)`` with the grid's labels; attrs ``n_roi``.

    Raises
    ------
    RoiError
        The ROI has no voxel inside the brain mask, or the image is unusable
        (not 3-D, complex, oblique, unreadable).
    ParameterError
        Bad coordinates or radius.
    """
    values = None
    if is_coords(seed):
        if r is None:
            raise ParameterError("coordinate seeds need a radius: pass r=<mm>, e.g. r=10.")
        mask = _coords_seed(seed, r, grid)
        name = f"seed {np.atleast_2d(np.asarray(seed, dtype=float)).tolist()} (r={r} mm)"
    else:
        values, name = _image_values(seed)
        positive = values > 0 if values.dtype != bool else values
        mask = _align(positive.fillna(False).astype(bool), grid, name)
    in_mask = mask & grid.mask
    if not in_mask.any():
        mask = in_mask  # the error below
    elif restrict:
        mask = in_mask
    n_roi = int(mask.sum())
    _warn_if_large(name, int(in_mask.sum()), grid.n_mask, spheres=values is None)
    if n_roi == 0:
        raise RoiError(
            f"{name}: the ROI has no voxel inside the brain mask (voxels > 0 that fall in the "
            f"{grid.n_mask}-voxel mask); check its values, its space (MNI) and its affine. "
            f"Found: {_why_empty(values)}."
        )
    return xr.DataArray(
        mask, dims=("x", "y", "z"), coords=grid.coords(), name="roi", attrs={"n_roi": n_roi, "seed": name}
    )


#: A seed covering more than this share of the brain mask gets a :class:`~xcoact.warnings.LargeRoiWarning`.
LARGE_ROI_FRACTION = 0.5


def _warn_if_large(name: str, n: int, total: int, spheres: bool = False) -> None:
    if total and n > LARGE_ROI_FRACTION * total:
        import warnings

        from .warnings import LargeRoiWarning, caller_stacklevel

        hint = ("A radius this large gives this; use a smaller r if you meant a region." if spheres else
                "A probabilistic map with a non-zero background (threshold it first, e.g. img > 0.5) or a T1 / "
                "brain image given as the seed gives this; pass the ROI itself.")
        warnings.warn(
            f"{name}: the ROI covers {n:,} of the {total:,} brain-mask voxels ({100 * n / total:.0f}%), so studies "
            f"are selected by activation almost anywhere. {hint}",
            LargeRoiWarning, stacklevel=caller_stacklevel(),
        )


class SeedROI(NamedTuple):
    """One seed of a batch: its name, its in-mask voxels and where it came from."""

    name: str
    voxels: np.ndarray  # flat (C-order) grid indices, ascending, inside the brain mask
    description: str
    xyz: np.ndarray | None = None  # (n, 3) MNI mm of a coordinate seed (the distance rules need them)


def _fmt_xyz(xyz) -> str:
    return "_".join(f"{float(v):g}" for v in xyz)


def _read_lut(labels) -> dict[int, str]:
    """A label lookup table: a mapping, or a text file of ``value name`` lines."""
    if labels is None:
        return {}
    if isinstance(labels, dict):
        return {int(k): str(v) for k, v in labels.items()}
    path = os.fspath(labels)
    if not os.path.exists(path):
        raise DatabaseFileNotFoundError(f"{path}: no such label table; expected lines 'value<TAB>name' or a dict.")
    lut: dict[int, str] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.strip().split(None, 1) if "\t" not in line else line.strip().split("\t", 1)
            if not parts or parts[0].startswith("#"):
                continue
            try:
                value = int(float(parts[0]))
            except ValueError:
                if lineno == 1:
                    continue  # a header line
                raise ParameterError(f"{path}, line {lineno}: {parts[0]!r} is not a label value; expected 'value name'.") from None
            lut[value] = parts[1].strip() if len(parts) > 1 else f"label_{value}"
    return lut


def _unique_names(names: list[str]) -> list[str]:
    """Make seed names unique by suffixing ``_1``, ``_2``... (skipping names already taken)."""
    taken = set()
    out = []
    for n in names:
        candidate, k = n, 0
        while candidate in taken:
            k += 1
            candidate = f"{n}_{k}"
        taken.add(candidate)
        out.append(candidate)
    return out


def _default_name(seed, i: int) -> str:
    if is_coords(seed):
        return "+".join(_fmt_xyz(c) for c in np.atleast_2d(np.asarray(seed, dtype=float)))
    if isinstance(seed, (str, os.PathLike)):
        base = os.path.basename(os.fspath(seed))
        for ext in (".nii.gz", ".nii", ".img", ".hdr"):
            if base.endswith(ext):
                return base[: -len(ext)]
        return base
    if isinstance(seed, xr.DataArray) and seed.name is not None:
        return str(seed.name)
    return f"seed{i}"


def uses_coords(seeds, separate: bool = False) -> bool:
    """Whether any seed of a (batch) argument is grown from coordinates (so a radius applies)."""
    if separate or is_coords(seeds):
        return True
    items = seeds.values() if isinstance(seeds, dict) else seeds if isinstance(seeds, (list, tuple)) else []
    return any(is_coords(v) for v in items)


def is_batch(seed, *, by_label: bool = False, separate: bool = False) -> bool:
    """Whether a seed argument asks for several seeds (a ``seed`` dimension)."""
    if by_label or separate or isinstance(seed, dict):
        return True
    if isinstance(seed, (list, tuple)) and not is_coords(seed):
        return True
    return False


def seed_set(seed, grid: Grid, r: float = 6.0, *, by_label: bool = False, labels=None, separate: bool = False) -> list[SeedROI]:
    """Expand a seed argument into named ROIs (the ``seed`` dimension of a batch).

    Parameters
    ----------
    seed : list, tuple or dict of seeds, an atlas image, or coordinates
        * a list/tuple of seeds (each as :func:`roi_mask` takes them), or a
          dict ``{name: seed}``: one ROI each;
        * an image with ``by_label=True``: one ROI per positive label value;
        * coordinates ``[[x, y, z], ...]`` with ``separate=True``: one sphere each
          (Neurosynth lumps them into one ROI, as :func:`roi_mask` does).
    grid : Grid
    r : float
        Sphere radius (mm) for coordinate seeds.
    by_label : bool
    labels : dict or path, optional
        Names of atlas labels: ``{value: name}`` or a text file of ``value name`` lines.
    separate : bool

    Returns
    -------
    list of SeedROI
        An ROI with no in-mask voxel is kept (with no voxels); the analysis
        reports it with a warning and NaN maps rather than failing the batch.
    """
    out: list[SeedROI] = []
    if by_label:
        values, name = _image_values(seed)
        data = values.fillna(0)
        if not np.allclose(data.values, np.round(data.values)):
            raise RoiError(f"{name}: by_label=True needs an atlas of integer labels; found non-integer values.")
        aligned = _align(data.round().astype(np.int64), grid, name)
        aligned[~grid.mask] = 0
        lut = _read_lut(labels)
        present = np.unique(np.round(values.values[np.isfinite(values.values)]).astype(np.int64))
        present = present[present > 0]
        flat = aligned.ravel()
        order = np.argsort(flat, kind="stable")
        sorted_vals = flat[order]
        for v in present:
            lo, hi = np.searchsorted(sorted_vals, [v, v + 1])
            out.append(SeedROI(lut.get(int(v), f"label_{int(v)}"), np.sort(order[lo:hi]), f"{name} label {int(v)}"))
        if not out:
            raise RoiError(f"{name}: by_label=True but the atlas has no positive label value.")
    elif separate:
        if not is_coords(seed):
            raise ParameterError("separate=True applies to coordinates [[x, y, z], ...]; pass a list of seeds for other kinds.")
        for xyz in np.atleast_2d(np.asarray(seed, dtype=float)):
            mask = _coords_seed([xyz], r, grid) & grid.mask
            out.append(SeedROI(_fmt_xyz(xyz), np.flatnonzero(mask), describe_seed([xyz.tolist()], r), xyz[None]))
    else:
        items = list(seed.items()) if isinstance(seed, dict) else [(None, s) for s in (seed if is_batch(seed) else [seed])]
        if not items:
            raise ParameterError("the list of seeds is empty; pass at least one seed.")
        for i, (key, one) in enumerate(items):
            if is_coords(one):
                mask = _coords_seed(one, r, grid)
            else:
                values, name = _image_values(one)
                positive = values > 0 if values.dtype != bool else values
                mask = _align(positive.fillna(False).astype(bool), grid, name)
            mask &= grid.mask
            xyz = np.atleast_2d(np.asarray(one, dtype=float)) if is_coords(one) else None
            out.append(SeedROI(str(key) if key is not None else _default_name(one, i), np.flatnonzero(mask),
                               describe_seed(one, r), xyz))
    names = _unique_names([s.name for s in out])
    return [s._replace(name=n) for s, n in zip(out, names)]
