"""The named analyses: a seed's coactivation maps, composed from the stages.

cube -> ROI mask -> overlap -> selection -> grouped counts -> statistics ->
an :class:`xarray.Dataset` with provenance in ``attrs``.
"""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ._version import __version__
from .counts import overlap_counts, selected_counts
from .errors import ParameterError
from .kernels import ActivationSource
from .roi import Seed, describe_seed, grid_of, roi_mask
from .select import check_threshold, select_studies, threshold_kind
from .space import Grid
from .stats import coactivation_maps, map_names

__all__ = ["seed", "coactivation", "REFERENCE"]

REFERENCE = "Neurosynth 0.3.8 network.coactivation / MetaAnalysis (Yarkoni et al. 2011)"


def _check_cube(act) -> None:
    if not isinstance(act, xr.DataArray):
        raise ParameterError(f"act must be the activation cube DataArray from xcoact.activations, got {type(act).__name__}.")
    if set(act.dims) != {"study", "x", "y", "z"}:
        raise ParameterError(f"act has dims {act.dims}; expected ('study', 'x', 'y', 'z') as built by xcoact.activations.")
    if act.dtype != bool:
        raise ParameterError(f"act has dtype {act.dtype}; expected bool (study active at voxel).")


def _check_unit_interval(value, name: str, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < float(value) < 1:
        raise ParameterError(f"{name}={value!r} is not valid; expected a number strictly between 0 and 1 (e.g. {name}={example}).")
    return float(value)


def _maps_block(a: np.ndarray, total: np.ndarray, n_sel: int, n_uns: int, q: float, prior: float, grid: Grid) -> np.ndarray:
    maps = coactivation_maps(a, total - a, n_sel, n_uns, q=q, prior=prior)
    out = np.zeros((len(maps), int(np.prod(grid.shape))), dtype=np.float64)
    for i, values in enumerate(maps.values()):
        out[i, grid.mask_flat] = values
    return out.reshape(len(maps), *grid.shape)


def _grid(act: xr.DataArray) -> Grid:
    source = ActivationSource.lookup(act.data)
    return source.grid if source is not None else grid_of(act)


def seed(
    act: xr.DataArray,
    seed: Seed,
    threshold: float | int = 0.0,
    *,
    r: float = 6.0,
    q: float = 0.01,
    prior: float = 0.5,
) -> xr.Dataset:
    """Coactivation maps of a seed: selected studies vs all other studies.

    Matches Neurosynth 0.3.8 ``network.coactivation`` (seed selection by ROI
    coverage, SPEC section 5) followed by ``MetaAnalysis`` (SPEC section 6).

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    seed : str, path-like, nibabel image, xarray.DataArray, or (n, 3) array-like
        An ROI image (voxels > 0, several labels lumped into one ROI) or MNI
        coordinates ``[[x, y, z], ...]`` grown into spheres of radius ``r``
        (all of them one ROI, as in Neurosynth).
    threshold : float or int, default 0.0
        A study is selected when it covers *more than* this proportion (float,
        in [0, 1]) or this number of voxels (int) of the ROI.  Neurosynth's
        default is 0.0; its seed example uses 0.1.
    r : float, default 6
        Sphere radius in mm for coordinate seeds (ignored for images).
    q : float, default 0.01
        False discovery rate of the two ``*_FDR_{q}`` maps.
    prior : float, default 0.5
        Uniform prior P(selected) of the two ``*_given_pF`` maps.

    Returns
    -------
    xarray.Dataset
        The nine maps (float64, dims ``x, y, z``, lazy: Dask), named as in
        Neurosynth (see :func:`xcoact.stats.map_names`); ``roi`` (the seed
        mask), ``overlap (study)`` and ``selected_id (selected)``.  ``attrs``
        hold the provenance: database, r, seed, seed_r, threshold,
        threshold_kind, q, prior, min_studies, n_studies, n_selected,
        n_unselected, n_roi, reference and xcoact_version.

    Notes
    -----
    Cost: this call computes the study selection right away (the ROI overlap
    of every study), so that ``attrs`` can state it and a degenerate
    selection fails here, with its numbers.  The first seed on a cube also
    builds the sparse per-study voxel index, the seed-independent work that
    every later seed reuses.  The maps stay lazy until ``.compute()``,
    ``.load()`` or a writer; the FDR maps need every voxel of their map at
    once (one family), which is small (one volume).

    Raises
    ------
    RoiError
        The ROI has no voxel in the brain mask or the image is unusable.
    SelectionError
        No study, or every study, is selected.
    ParameterError
        A bad threshold, radius, q or prior.

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.warnings.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> maps = act.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    >>> maps.attrs["n_roi"], maps.attrs["n_selected"]
    (366, 9)
    >>> float(maps["pFgA"].max()) <= 1.0
    True
    """
    _check_cube(act)
    threshold = check_threshold(threshold)
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    grid = _grid(act)
    roi = roi_mask(seed, grid, r)
    n_roi = roi.attrs["n_roi"]
    overlap = overlap_counts(act, roi, grid)
    selected = select_studies(overlap, n_roi, threshold, seed_name=roi.attrs["seed"])
    n_sel = int(selected.sum())
    n_uns = int(selected.size - n_sel)

    a, total = selected_counts(act, selected, grid)
    names = map_names(q, prior)
    block = dask.delayed(_maps_block, pure=True)(a, total, n_sel, n_uns, q, prior, grid)
    stack = da.from_delayed(block, (len(names), *grid.shape), dtype=np.float64)
    coords = {
        "x": act["x"].values,
        "y": act["y"].values,
        "z": act["z"].values,
        "study": act["study"].values,
    }
    study_ids = act["study"].values
    ds = xr.Dataset(
        {name: (("x", "y", "z"), stack[i]) for i, name in enumerate(names)},
        coords=coords,
    )
    for name in names:
        ds[name].attrs["long_name"] = name
    ds["brain_mask"] = (("x", "y", "z"), grid.mask)
    ds = ds.set_coords("brain_mask")
    ds["roi"] = roi.variable
    ds["overlap"] = ("study", overlap)
    ds["overlap"].attrs["long_name"] = "ROI voxels active in each study"
    ds["selected_id"] = ("selected", study_ids[selected])
    ds["selected_id"].attrs["long_name"] = "ids of the selected studies"
    for c in "xyz":
        ds[c].attrs["units"] = "mm"
    ds.attrs = {
        "title": "xcoact coactivation maps",
        "analysis": "seed coactivation",
        "database": str(act.attrs.get("database", "")),
        "r": float(act.attrs.get("r", np.nan)),
        "seed": describe_seed(seed, r),
        "seed_r": float(r),
        "threshold": threshold,
        "threshold_kind": threshold_kind(threshold),
        "selection": "ROI coverage > threshold (Neurosynth)",
        "q": q,
        "prior": prior,
        "min_studies": 1,
        "n_studies": int(selected.size),
        "n_selected": n_sel,
        "n_unselected": n_uns,
        "n_roi": int(n_roi),
        "max_overlap": int(overlap.max()),
        "maps": ", ".join(names),
        "reference": REFERENCE,
        "xcoact_version": __version__,
    }
    return ds


_seed = seed  # coactivation()'s own ``seed`` argument shadows the function


def coactivation(
    act: xr.DataArray,
    seed: Seed,
    threshold: float | int = 0.0,
    *,
    outroot: str | os.PathLike,
    r: float = 6.0,
    q: float = 0.01,
    prior: float = 0.5,
    overwrite: bool = False,
) -> xr.Dataset:
    """Neurosynth's ``network.coactivation`` in one call: maps computed and written.

    Runs :func:`seed` and writes each map to ``{outroot}_{name}.nii.gz``
    (see :func:`xcoact.export.to_nifti`).  Parameters as in :func:`seed`.

    Returns
    -------
    xarray.Dataset
        The computed maps; ``attrs["files"]`` lists what was written.
    """
    from .export import to_nifti

    ds = _seed(act, seed, threshold, r=r, q=q, prior=prior).compute()
    files = to_nifti(ds, outroot, overwrite=overwrite)
    ds.attrs["files"] = [os.fspath(f) for f in files]
    return ds
