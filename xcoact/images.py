"""Result maps <-> in-memory nibabel images (the one NIfTI header every output carries), and nilearn drawing."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ._version import __version__
from .errors import ParameterError, RoiError
from .space import affine_from_coords

if TYPE_CHECKING:
    import nibabel

__all__ = ["nifti_image", "map_intent", "to_nibabel", "from_nibabel", "plot_nilearn", "view", "ENGINES"]

#: NIfTI intent names by the kind of map: a map named with the word ``z`` holds z-scores, one
#: with the word ``p`` p-values (words split at any character other than a letter or digit).
_INTENTS = {"z": "NIFTI_INTENT_ZSCORE", "p": "NIFTI_INTENT_PVAL"}
#: The ``descrip`` field of a NIfTI-1 header holds 80 bytes, NUL-terminated.
_DESCRIP_BYTES = 79

ENGINES = ("matplotlib", "nilearn")


def map_intent(name: str | None) -> str | None:
    """The NIfTI intent of a map by its name.

    ``NIFTI_INTENT_ZSCORE``, ``NIFTI_INTENT_PVAL`` or None (probabilities, counts).

    Examples
    --------
    >>> [map_intent(n) for n in ["association-test_z_FDR_0.01", "association-test_p_FWE-voxel", "pFgA",
    ...                          "z_desc-association", "prob_desc-A"]]
    ['NIFTI_INTENT_ZSCORE', 'NIFTI_INTENT_PVAL', None, 'NIFTI_INTENT_ZSCORE', None]
    """
    words = set(re.split(r"[^0-9a-z]+", str(name or "").lower()))
    for word, intent in _INTENTS.items():
        if word in words:
            return intent
    return None


def _descrip(text: str) -> bytes:
    raw = text.encode("ascii", errors="replace")
    return raw if len(raw) <= _DESCRIP_BYTES else raw[: _DESCRIP_BYTES - 3] + b"..."


def nifti_image(
    volume: np.ndarray, affine: np.ndarray, *, name: str | None = None, descrip: str | None = None
) -> nibabel.Nifti1Image:
    """A float32 NIfTI-1 image of a map, with xcoact's header.

    Parameters
    ----------
    volume : (nx, ny, nz) or (nx, ny, nz, n) array
        The map (a 4-D array stacks several, e.g. one per seed).
    affine : (4, 4) array
        Voxel indices -> MNI mm (voxel centres).
    name : str, optional
        The map's name: sets the intent code (:func:`map_intent`: z maps
        ``NIFTI_INTENT_ZSCORE``, p maps ``NIFTI_INTENT_PVAL``, others none)
        and the intent name.
    descrip : str, optional
        The header's description (at most 79 ASCII bytes are kept); by
        default ``"xcoact <version> <name>"``.

    Returns
    -------
    nibabel.Nifti1Image
        sform and qform code 4 (MNI), units mm.
    """
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), np.asarray(affine, dtype=float))
    hdr = img.header
    hdr.set_data_dtype(np.float32)
    hdr.set_xyzt_units("mm")
    # code 4: the affine maps to MNI space, as in the template Neurosynth writes with
    img.set_sform(affine, code=4)
    img.set_qform(affine, code=4)
    intent = map_intent(name)
    if intent is not None:
        hdr.set_intent(intent, (), name=str(name)[:15])
    hdr["descrip"] = _descrip(descrip if descrip is not None else f"xcoact {__version__} {name or 'map'}")
    return img


def _result(ds: xr.Dataset) -> xr.Dataset:
    from .writers import to_volumes

    if not isinstance(ds, xr.Dataset):
        raise ParameterError(f"expected a result Dataset of xcoact.seed (or a batch), got {type(ds).__name__}.")
    return to_volumes(ds)


def to_nibabel(ds: xr.Dataset, name: str | None = None, seed: str | None = None) -> nibabel.Nifti1Image:
    """One map of a result as an in-memory ``nibabel.Nifti1Image`` (Niimg-like for nilearn).

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`xcoact.seed` (one seed, or a batch in either layout).
    name : str, optional
        The map; by default the FDR-thresholded association z map
        (:func:`xcoact.stats.clusters.pick_map`).
    seed : str, optional
        For a batch: the seed whose map to return (a 3-D image).  Without it
        a batch gives a 4-D image, one volume per seed in the order of
        ``ds["seed"]``.

    Returns
    -------
    nibabel.Nifti1Image
        float32, the grid's affine (MNI sform/qform), the intent code of the
        map's kind and a ``descrip`` naming xcoact's version, the map and the
        seed; the same header :func:`xcoact.to_nifti` writes.

    Notes
    -----
    Cost: computes the one map (for a batch without ``seed``, every seed's).

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> img = act.coact.seed([[0, 20, 28]], r=10, threshold=0.1).coact.to_nibabel("association-test_z")
    >>> img.shape, img.header.get_intent()[0]
    ((91, 109, 91), 'z score')
    """
    from .stats.clusters import pick_map

    ds = _result(ds)
    name = pick_map(ds, name)
    var = ds[name]
    label = name
    if "seed" in var.dims:
        seeds = [str(s) for s in ds["seed"].values]
        if seed is not None:
            if str(seed) not in seeds:
                raise ParameterError(
                    f"seed={seed!r} is not a seed of this batch; its seeds: {seeds[:10]}"
                    f"{' ...' if len(seeds) > 10 else ''}."
                )
            var = var.isel(seed=seeds.index(str(seed)))
            label = f"{name} seed {seed}"
        else:
            var = var.transpose("x", "y", "z", "seed")
            label = f"{name} ({len(seeds)} seeds)"
    elif seed is not None:
        raise ParameterError(f"seed={seed!r} applies to a batch; this result has one seed (pass seed=None).")
    affine = affine_from_coords(ds["x"].values, ds["y"].values, ds["z"].values)
    data = np.asarray(var.transpose("x", "y", "z", *(["seed"] if "seed" in var.dims else [])).values)
    return nifti_image(data, affine, name=name, descrip=f"xcoact {__version__} {label}")


def from_nibabel(img, like=None, *, name: str | None = None) -> xr.DataArray:
    """A NIfTI image (3-D or 4-D) as a DataArray on a cube's x/y/z coordinate labels.

    Parameters
    ----------
    img : nibabel image or str or path-like
        Any nibabel spatial image (nilearn's outputs are nibabel images), or a
        NIfTI file.
    like : xarray.DataArray, xarray.Dataset or Grid, optional
        The cube or result whose grid to use; the MNI152 2 mm grid by default.
    name : str, optional
        The DataArray's name; the file name or the header's intent name by default.

    Returns
    -------
    xarray.DataArray
        float64, dims ``(x, y, z)`` (or ``(volume, x, y, z)`` for a 4-D image)
        with the grid's labels.  An image on the same voxel centres is aligned
        by label (0 where it has no voxel); one on another grid is resampled by
        nearest neighbour, with a :class:`~xcoact.errors.ResampleWarning`.
        attrs: ``intent`` (nibabel's name of the header's intent, e.g.
        ``"z score"``) and ``descrip``.

    Raises
    ------
    RoiError
        The image is not 3-D or 4-D, is complex, or its affine is oblique.
    """
    from .roi import _align, _load_image, grid_of, image_to_dataarray
    from .space import Grid, mni152_2mm

    if isinstance(img, (str, os.PathLike)):
        img, where = _load_image(img)
        default = os.path.basename(where).split(".nii")[0]
    else:
        where = getattr(img, "get_filename", lambda: None)() or type(img).__name__
        default = None
    if not (hasattr(img, "affine") and hasattr(img, "dataobj")):
        raise ParameterError(
            f"img of type {type(img).__name__} is not an image; expected a nibabel image or a NIfTI path."
        )
    grid = like if isinstance(like, Grid) else mni152_2mm() if like is None else grid_of(like)
    header: Any = getattr(img, "header", None)
    # NIfTI headers carry an intent and a description; other formats (Analyze, MGH) do not
    intent = header.get_intent() if hasattr(header, "get_intent") else ("none", (), "")
    try:
        descrip = header["descrip"].item().decode("ascii", errors="replace")
    except (KeyError, TypeError, ValueError, AttributeError):
        descrip = ""
    name = name or default or (intent[2] or None) or "image"
    shape = img.shape
    if len(shape) == 4 and shape[3] > 1:
        import nibabel as nib

        vols = [
            image_to_dataarray(nib.Nifti1Image(np.asarray(img.dataobj[..., k]), img.affine), f"{where} volume {k}")
            for k in range(shape[3])
        ]
        data = np.stack([_align(v, grid, where) for v in vols])
        dims: tuple[str, ...] = ("volume", "x", "y", "z")
    elif len(shape) in (3, 4):
        data = _align(image_to_dataarray(img, where), grid, where)
        dims = ("x", "y", "z")
    else:
        raise RoiError(f"{where}: image has shape {shape}; expected a 3-D map or a 4-D stack of maps.")
    coords = {k: (k, v, {"units": "mm"}) for k, v in grid.coords().items()}
    return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs={"intent": intent[0], "descrip": descrip})


def _nilearn_plotting():
    try:
        from nilearn import plotting
    except ImportError as err:  # pragma: no cover - nilearn is in the test extra
        raise ImportError(
            "engine='nilearn' and view() need nilearn: pip install 'xcoact[nilearn]' (or pip install nilearn)."
        ) from err
    return plotting


def plot_nilearn(
    ds: xr.Dataset,
    name: str | None = None,
    *,
    seed: str | None = None,
    threshold: float | None = None,
    cut=None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    **kwargs,
):
    """Draw a map with nilearn: a stat map (orthogonal slices) above a glass brain.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`xcoact.seed`.
    name, seed
        As :func:`to_nibabel` (a batch needs ``seed``).
    threshold : float, optional
        Values with ``|v| <= threshold`` are not drawn; nilearn's default
        hides only zeros (what the thresholded maps hold outside their clusters).
    cut : (x, y, z) in mm, optional
        Where the slices cut; nilearn's choice by default.
    title : str, optional
        By default the map's name (and seed).
    figsize : (width, height) in inches, optional
    **kwargs
        Passed to ``nilearn.plotting.plot_stat_map`` and ``plot_glass_brain``
        (``cmap``, ``vmax``, ...).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    plotting = _nilearn_plotting()
    img = to_nibabel(ds, name, seed)
    if img.ndim != 3:
        seeds = [str(s) for s in ds["seed"].values]
        raise ParameterError(
            f"a batch holds {len(seeds)} seeds; pass seed= (one of {seeds[:5]}) to draw one with nilearn."
        )
    label = title if title is not None else img.header["descrip"].item().decode("ascii").split(" ", 2)[-1]
    extra = {} if threshold is None else {"threshold": threshold}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=figsize or (9, 7))
    plotting.plot_stat_map(img, axes=top, cut_coords=cut, title=label, figure=fig, **extra, **kwargs)
    plotting.plot_glass_brain(img, axes=bottom, plot_abs=False, colorbar=True, figure=fig, **extra, **kwargs)
    return fig


def view(
    ds: xr.Dataset, name: str | None = None, *, seed: str | None = None, threshold: float | str | None = None, **kwargs
):
    """nilearn's interactive viewer (``nilearn.plotting.view_img``) on a map, for notebooks.

    Parameters
    ----------
    ds : xarray.Dataset
    name, seed
        As :func:`to_nibabel` (a batch needs ``seed``).
    threshold : float or str, optional
        Passed to ``view_img`` (e.g. ``3.1`` or ``"90%"``); its default otherwise.
    **kwargs
        Passed to ``view_img``.

    Returns
    -------
    nilearn.plotting.html_stat_map.StatMapView
        Shows itself in a notebook; ``.save_as_html(path)`` writes it out.
    """
    plotting = _nilearn_plotting()
    img = to_nibabel(ds, name, seed)
    if img.ndim != 3:
        raise ParameterError("a batch holds several seeds; pass seed= to view one.")
    extra = {} if threshold is None else {"threshold": threshold}
    kwargs.setdefault("title", img.header["descrip"].item().decode("ascii").split(" ", 2)[-1])
    return plotting.view_img(img, **extra, **kwargs)
