"""Seeds (NIfTI paths, nibabel images, DataArrays, nilearn atlases, MNI coordinates grown into spheres) ->
boolean ROI masks on the cube's x/y/z labels.  Images align by coordinate label (mm at voxel centres); another
grid is resampled by nearest neighbour, with a warning.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from typing import TYPE_CHECKING, NamedTuple, Union

import numpy as np
import xarray as xr

from .errors import (
    DatabaseFileNotFoundError,
    LargeRoiWarning,
    ParameterError,
    ResampleWarning,
    RoiError,
    caller_stacklevel,
    quote,
)
from .kernels import check_radius, sphere_offsets
from .space import LABEL_ATOL, Grid, affine_from_coords, axis_labels, axis_permutation, check_finite_affine

if TYPE_CHECKING:
    import nibabel.spatialimages

__all__ = [
    "roi_mask",
    "seed_set",
    "is_batch",
    "is_atlas",
    "SeedROI",
    "image_to_dataarray",
    "grid_of",
    "Seed",
    "describe_seed",
]

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
        raise DatabaseFileNotFoundError(
            f"{path}: no such ROI image. Pass a NIfTI file (.nii or .nii.gz), e.g. 'my_roi_mask.nii.gz'."
        )
    try:
        img = nib.load(path)
        img.get_fdata  # noqa: B018  (proxies load lazily; touch the header now)
    except Exception as err:  # nibabel raises many kinds for bad files
        raise RoiError(
            f"{path}: could not be read as a NIfTI image ({type(err).__name__}: {_one_line(err)}). "
            "Expected a NIfTI-1 or "
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
        dims ``(x, y, z)``, coordinates in mm.  Values keep the image's own
        dtype (a uint8 mask stays 1 byte per voxel, not 8 as float64) unless
        the header scales them, when nibabel gives floats.  An image stored
        with permuted axes (e.g. LIA) is transposed to x, y, z order.
    """
    try:
        data = np.asarray(img.dataobj)
    except Exception as err:
        raise RoiError(
            f"{name}: the image data could not be read ({type(err).__name__}: {_one_line(err)}); "
            "the file may be truncated. "
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
    if data.dtype.names is not None or data.dtype.kind not in "biuf":
        kind = "RGB" if data.dtype.names and set(data.dtype.names) >= {"R", "G", "B"} else "multi-field"
        raise RoiError(
            f"{name}: image holds {kind} voxels (dtype {data.dtype}); expected one real value per voxel "
            "(voxels > 0 form the ROI). Save one channel, or a greyscale or 0/1 mask, as the ROI."
        )
    affine = np.asarray(img.affine, dtype=float)
    try:
        check_finite_affine(affine)
        perm = axis_permutation(affine)
        if perm is not None and perm != (0, 1, 2):
            # stored with permuted axes (e.g. LIA): a transposed view runs along x, y, z
            data = data.transpose(perm)
            affine = affine.copy()
            affine[:3, :3] = affine[:3, :3][:, list(perm)]
        x, y, z = axis_labels(affine, data.shape)
    except RoiError as err:
        raise RoiError(f"{name}: {err}") from None
    return xr.DataArray(data, dims=("x", "y", "z"), coords={"x": x, "y": y, "z": z}, name=name)


def _on_lattice(labels: np.ndarray, axis: int, grid: Grid) -> bool:
    """Whether labels are voxel centres of the grid's lattice along an axis (the grid, a crop of it, or a larger
    field of view on the same centres): those align by label, with no resampling."""
    step = float(grid.voxel_size[axis])
    if labels.size > 1 and not np.allclose(np.abs(np.diff(labels)), step, atol=LABEL_ATOL, rtol=0):
        return False
    k = (labels - grid.affine[axis, 3]) / step
    return bool(np.allclose(k, np.round(k), atol=LABEL_ATOL / step, rtol=0))


def _align(values: xr.DataArray, grid: Grid, name: str) -> np.ndarray:
    """Bring an (x, y, z) DataArray onto the grid by label (nearest neighbour if the grids differ), keeping its
    dtype; cube voxels the image does not cover are 0 / False."""
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
        stacklevel=caller_stacklevel(),
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
    mask = np.zeros(grid.shape, dtype=bool)
    mask.ravel()[_coords_flat(coords, r, grid)] = True
    return mask


def _coords_flat(coords, r, grid: Grid, offsets=None) -> np.ndarray:
    """Flat grid indices of the spheres around MNI coordinates (repeats possible); ``offsets`` of radius ``r``."""
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
    offsets = sphere_offsets(r, grid.voxel_size) if offsets is None else offsets
    vox = (ijk[:, None, :] + offsets[None]).reshape(-1, 3)
    vox = vox[grid.in_box(vox)]
    return np.ravel_multi_index(tuple(vox.T), grid.shape)


def is_coords(seed) -> bool:
    """Whether a seed is MNI coordinates ``[x, y, z]`` or ``[[x, y, z], ...]``."""
    if isinstance(seed, (list, tuple, np.ndarray)) and not isinstance(seed, xr.DataArray):
        try:
            arr = np.asarray(seed, dtype=float)
        except (TypeError, ValueError):
            return False
        return arr.ndim in (1, 2) and arr.shape[-1] == 3
    return False


def is_atlas(seed) -> bool:
    """Whether a seed is a nilearn atlas: a Bunch (a dict with attribute access) holding ``maps``.

    nilearn's fetchers return ``Bunch(maps=<image or path>, labels=[...], lut=<DataFrame>, ...)``.
    """
    return isinstance(seed, dict) and "maps" in seed and not isinstance(seed, xr.Dataset)


def _atlas_image(atlas):
    """The label image of a nilearn atlas (deterministic: one 3-D image of integer labels)."""
    maps = atlas["maps"]
    if isinstance(maps, (list, tuple)):
        raise RoiError(
            f"nilearn atlas: 'maps' is a list of {len(maps)} images (a probabilistic or surface atlas); expected one "
            "3-D label image (a deterministic atlas). Pass one map as the seed, e.g. nilearn.image.index_img(maps, k)."
        )
    return maps


def _lut_from_names(names, present=None) -> dict[int, str]:
    """A nilearn ``labels`` list as ``{value: name}``: entry ``i`` names value ``i`` after a first "Background";
    without it the names go, in order, to the image's positive label values (``present``, as many)."""
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if names and names[0].strip().lower() == "background":
        return {i: n for i, n in enumerate(names) if i > 0}
    if present is None or len(present) != len(names):
        found = (
            "the image's label values are unknown here"
            if present is None
            else f"the image has {len(present)} positive label value(s)"
        )
        raise ParameterError(
            f"labels: a list of {len(names)} name(s) whose first entry is not 'Background'; {found}. "
            "Expected nilearn's "
            "layout (labels[0] == 'Background', labels[i] names value i), one name per positive label value in "
            "ascending order, or a look-up table (a DataFrame with 'index' and 'name' columns, or {value: name})."
        )
    return {int(v): n for v, n in zip(present, names)}


def _lut_from_frame(frame) -> dict[int, str]:
    """A BIDS / nilearn look-up table (a DataFrame with ``index`` and ``name`` columns) as ``{value: name}``."""
    cols = [str(c).lower() for c in frame.columns]
    if "index" not in cols or "name" not in cols:
        raise ParameterError(
            f"labels: a DataFrame with columns {list(frame.columns)}; expected a look-up table with 'index' (label "
            "value) and 'name' columns, as nilearn's atlas.lut."
        )
    index = frame.iloc[:, cols.index("index")].to_numpy()
    names = frame.iloc[:, cols.index("name")].astype(str).to_numpy()
    try:
        values = [int(round(float(v))) for v in index]
    except (TypeError, ValueError):
        raise ParameterError(
            f"labels: the look-up table's 'index' column holds non-numbers ({index[:5].tolist()}); "
            "expected the integer label values."
        ) from None
    return dict(zip(values, names))


def describe_seed(seed, r=None) -> str:
    """A short JSON-able description of a seed for provenance."""
    if is_coords(seed):
        # a numpy scalar radius (np.float32(10), np.int64(10)) as the Python number JSON knows
        radius = r.item() if isinstance(r, np.generic) else r
        return json.dumps({"coordinates": np.atleast_2d(np.asarray(seed, dtype=float)).tolist(), "r": radius})
    if isinstance(seed, (str, os.PathLike)):
        return os.fspath(seed)
    if isinstance(seed, xr.DataArray):
        return f"DataArray {seed.name!r}"
    if is_atlas(seed):
        maps = seed["maps"]
        where = os.fspath(maps) if isinstance(maps, (str, os.PathLike)) else type(maps).__name__
        return f"nilearn atlas ({where})"
    return type(seed).__name__


def _image_values(seed) -> tuple[xr.DataArray, str]:
    """An image-like seed as a real-valued (x, y, z) DataArray with mm labels, and its name."""
    if is_atlas(seed):
        values, name = _image_values(_atlas_image(seed))
        return values, f"nilearn atlas {name}"
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
            "a DataArray with x/y/z dims, a nilearn atlas (with by_label=True for one seed per label), or "
            "coordinates [[x, y, z], ...] with r."
        )
    if np.iscomplexobj(values.values):
        raise RoiError(
            f"{name}: values are complex ({values.dtype}); expected real values (voxels > 0 form the ROI). "
            "Take their magnitude or real part first."
        )
    return values, name


def _positive(values: xr.DataArray) -> xr.DataArray:
    """The ROI of an image as bool: voxels > 0 (NaN > 0 is False), one byte a voxel, no other copy."""
    return values if values.dtype == bool else values > 0


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
    seed : str, path-like, nibabel image, xarray.DataArray, nilearn atlas, or (n, 3) array-like
        An ROI image (voxels > 0; several labels form one ROI, NaN ignored;
        a nilearn atlas stands for its ``maps`` image), or MNI coordinates
        ``[[x, y, z], ...]`` grown into spheres of radius ``r``.
    grid : Grid
        The cube's grid; the ROI is restricted to its brain mask.
    r : float, optional
        Sphere radius (mm) for coordinate seeds; required for them.
    restrict : bool, default True
        Keep only the voxels inside the brain mask (:ref:`semantics-roi`).  False
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
        voxels = np.unique(_coords_flat(seed, r, grid))  # the spheres' voxels only, not the whole grid
        name = f"seed {np.atleast_2d(np.asarray(seed, dtype=float)).tolist()} (r={r} mm)"
    else:
        values, name = _image_values(seed)
        voxels = np.flatnonzero(_align(_positive(values), grid, name))
    inside = voxels[grid.mask_index[voxels] >= 0]
    if restrict or inside.size == 0:
        voxels = inside
    _warn_if_large(name, inside.size, grid.n_mask, spheres=values is None)
    if voxels.size == 0:
        raise RoiError(
            f"{name}: the ROI has no voxel inside the brain mask (voxels > 0 that fall in the "
            f"{grid.n_mask}-voxel mask); check its values, its space (MNI) and its affine. "
            f"Found: {_why_empty(values)}."
        )
    mask = np.zeros(grid.shape, dtype=bool)
    mask.ravel()[voxels] = True
    return xr.DataArray(
        mask, dims=("x", "y", "z"), coords=grid.coords(), name="roi", attrs={"n_roi": voxels.size, "seed": name}
    )


#: A seed covering more than this share of the brain mask gets a :class:`~xcoact.errors.LargeRoiWarning`.
LARGE_ROI_FRACTION = 0.5


def _warn_if_large(name: str, n: int, total: int, spheres: bool = False) -> None:
    if total and n > LARGE_ROI_FRACTION * total:
        hint = (
            "A radius this large gives this; use a smaller r if you meant a region."
            if spheres
            else "A probabilistic map with a non-zero background (threshold it first, e.g. img > 0.5) or a T1 / "
            "brain image given as the seed gives this; pass the ROI itself."
        )
        warnings.warn(
            f"{name}: the ROI covers {n:,} of the {total:,} brain-mask voxels ({100 * n / total:.0f}%), so studies "
            f"are selected by activation almost anywhere. {hint}",
            LargeRoiWarning,
            stacklevel=caller_stacklevel(),
        )


class SeedROI(NamedTuple):
    """One seed of a batch: its name, its in-mask voxels and where it came from."""

    name: str
    voxels: np.ndarray  # flat (C-order) grid indices, ascending, inside the brain mask
    description: str
    xyz: np.ndarray | None = None  # (n, 3) MNI mm of a coordinate seed (the distance rules need them)


def _fmt_xyz(xyz) -> str:
    return "_".join(f"{float(v):g}" for v in xyz)


def _read_lut(labels, present=None) -> dict[int, str]:
    """A label lookup table as ``{value: name}``, from any form :func:`seed_set`'s ``labels`` takes."""
    import pandas as pd

    if labels is None:
        return {}
    if is_atlas(labels):
        if labels.get("lut") is not None:
            return _lut_from_frame(labels["lut"])
        return _lut_from_names(labels["labels"], present) if labels.get("labels") is not None else {}
    if isinstance(labels, pd.DataFrame):
        return _lut_from_frame(labels)
    if isinstance(labels, (list, tuple, np.ndarray)):
        return _lut_from_names(list(labels), present)
    if isinstance(labels, dict):
        return {int(k): str(v) for k, v in labels.items()}
    if not isinstance(labels, (str, os.PathLike)):
        raise ParameterError(
            f"labels of type {type(labels).__name__} is not understood; expected {{value: name}}, a text file of "
            "'value name' lines, a list of names (nilearn's atlas.labels), a DataFrame with 'index' and 'name' "
            "(nilearn's atlas.lut) or a nilearn atlas."
        )
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
                raise ParameterError(
                    f"{path}, line {lineno}: {quote(parts[0])} is not a label value; expected 'value name'."
                ) from None
            lut[value] = parts[1].strip() if len(parts) > 1 else f"label_{value}"
    return lut


#: Characters a seed name cannot carry into a file name ({outroot}_{seed}_{map}.nii.gz): path
#: separators, NUL and the other control characters.
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")
#: Seed names are cut to this many UTF-8 bytes (a file name may hold 255, and the map name follows).
MAX_SEED_NAME = 100


def safe_name(name: str) -> str:
    """A seed name that can be part of a file name: separators and control characters as ``_``, cut at 100 bytes.

    Examples
    --------
    >>> safe_name("Left/Right Amygdala")
    'Left_Right Amygdala'
    """
    name = _UNSAFE_NAME.sub("_", str(name)).strip()
    # cut by UTF-8 bytes: a file name holds 255 bytes, not characters
    return name.encode("utf-8")[:MAX_SEED_NAME].decode("utf-8", "ignore") or "_"


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


def image_stem(path: str) -> str:
    """A path's file name without its image extension (``.nii.gz``, ``.nii``, ``.img``, ``.hdr``)."""
    base = os.path.basename(path)
    for ext in (".nii.gz", ".nii", ".img", ".hdr"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def _default_name(seed, i: int) -> str:
    if is_coords(seed):
        return "+".join(_fmt_xyz(c) for c in np.atleast_2d(np.asarray(seed, dtype=float)))
    if isinstance(seed, (str, os.PathLike)):
        return image_stem(os.fspath(seed))
    if isinstance(seed, xr.DataArray) and seed.name is not None:
        return str(seed.name)
    return f"seed{i}"


def uses_coords(seeds, separate: bool = False) -> bool:
    """Whether any seed of a (batch) argument is grown from coordinates (so a radius applies)."""
    if separate or is_coords(seeds):
        return True
    items = (
        seeds.values()
        if isinstance(seeds, dict) and not is_atlas(seeds)
        else seeds
        if isinstance(seeds, (list, tuple))
        else []
    )
    return any(is_coords(v) for v in items)


def is_batch(seed, *, by_label: bool = False, separate: bool = False) -> bool:
    """Whether a seed argument asks for several seeds (a ``seed`` dimension)."""
    if by_label or separate or (isinstance(seed, dict) and not is_atlas(seed)):
        return True
    if isinstance(seed, (list, tuple)) and not is_coords(seed):
        return True
    return False


def seed_set(
    seed, grid: Grid, r: float = 6.0, *, by_label: bool = False, labels=None, separate: bool = False
) -> list[SeedROI]:
    """Expand a seed argument into named ROIs (the ``seed`` dimension of a batch).

    Parameters
    ----------
    seed : list, tuple or dict of seeds, an atlas image, or coordinates
        * a list/tuple of seeds (each as :func:`roi_mask` takes them), or a
          dict ``{name: seed}``: one ROI each;
        * an image or a nilearn atlas with ``by_label=True``: one ROI per
          positive label value;
        * coordinates ``[[x, y, z], ...]`` with ``separate=True``: one sphere each
          (Neurosynth lumps them into one ROI, as :func:`roi_mask` does).
    grid : Grid
    r : float
        Sphere radius (mm) for coordinate seeds.
    by_label : bool
    labels : dict, path, list, DataFrame or nilearn atlas, optional
        Names of atlas labels: ``{value: name}``, a text file of ``value name``
        lines, nilearn's ``atlas.labels`` list (``"Background"`` first) or
        ``atlas.lut`` DataFrame (``index``, ``name``).  A nilearn atlas given as
        the seed names its own labels.
    separate : bool

    Returns
    -------
    list of SeedROI
        Names are made safe for file names (``/``, ``\\`` and control
        characters become ``_``, at most 100 UTF-8 bytes) and unique
        (``_1``, ``_2``... appended).  An ROI with no in-mask voxel is kept (with no voxels); the analysis
        reports it with a warning and NaN maps rather than failing the batch.
    """
    out: list[SeedROI] = []
    if by_label:
        if labels is None and is_atlas(seed):
            labels = seed  # a nilearn atlas names its own labels
        values, name = _image_values(seed)
        raw = values.values
        if raw.dtype.kind in "biu":  # integer labels as stored: no 8-byte copy of the whole atlas
            atlas = values
            present = np.unique(raw).astype(np.int64)
        else:
            data = values.fillna(0)
            if not np.allclose(data.values, np.round(data.values)):
                raise RoiError(f"{name}: by_label=True needs an atlas of integer labels; found non-integer values.")
            atlas = data.round().astype(np.int64)
            present = np.unique(np.round(raw[np.isfinite(raw)]).astype(np.int64))
        aligned = _align(atlas, grid, name).astype(np.int64)  # grid-sized from here on
        aligned[~grid.mask] = 0
        present = present[present > 0]
        lut = _read_lut(labels, present)
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
            raise ParameterError(
                "separate=True applies to coordinates [[x, y, z], ...]; pass a list of seeds for other kinds."
            )
        # one sphere's voxels each, no grid-sized mask per seed (a batch has thousands)
        offsets = sphere_offsets(check_radius(r), grid.voxel_size)
        in_mask = grid.mask.ravel()
        for xyz in np.atleast_2d(np.asarray(seed, dtype=float)):
            flat = np.unique(_coords_flat([xyz], r, grid, offsets))
            out.append(SeedROI(_fmt_xyz(xyz), flat[in_mask[flat]], describe_seed([xyz.tolist()], r), xyz[None]))
    else:
        items = (
            list(seed.items())
            if isinstance(seed, dict) and not is_atlas(seed)
            else [(None, s) for s in (seed if is_batch(seed) else [seed])]
        )
        if not items:
            raise ParameterError("the list of seeds is empty; pass at least one seed.")
        for i, (key, one) in enumerate(items):
            xyz = np.atleast_2d(np.asarray(one, dtype=float)) if is_coords(one) else None
            if xyz is not None:
                mask = _coords_seed(one, r, grid)
            else:
                values, name = _image_values(one)
                mask = _align(_positive(values), grid, name)
            label = str(key) if key is not None else _default_name(one, i)
            out.append(SeedROI(label, np.flatnonzero(mask & grid.mask), describe_seed(one, r), xyz))
    # names become file names ({outroot}_{name}_{map}.nii.gz): a '/' from an atlas's label table
    # would point into a folder that does not exist
    names = _unique_names([safe_name(s.name) for s in out])
    return [s._replace(name=n) for s, n in zip(out, names)]
