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
from .counts import overlap_counts, ranges, roi_overlaps, selected_counts
from .errors import ParameterError
from .kernels import ActivationSource
from .roi import Seed, describe_seed, grid_of, is_batch, is_coords, roi_mask, seed_set, uses_coords
from .select import check_threshold, degenerate_reason, overlap_rule, select_studies, threshold_kind, warn_degenerate
from .space import Grid
from .stats import coactivation_maps, map_names

__all__ = ["seed", "seed_batch", "coactivation", "REFERENCE"]

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


def _maps_block(a: np.ndarray, total: np.ndarray, n_sel: int, n_uns: int, q: float, prior: float, grid: Grid,
                dtype=np.float64, layout: str = "volume") -> np.ndarray:
    maps = coactivation_maps(a, total - a, n_sel, n_uns, q=q, prior=prior)
    if layout == "voxel":
        return np.stack(list(maps.values())).astype(dtype, copy=False)
    out = np.zeros((len(maps), int(np.prod(grid.shape))), dtype=dtype)
    for i, values in enumerate(maps.values()):
        out[i, grid.mask_flat] = values
    return out.reshape(len(maps), *grid.shape)


def _check_dtype(dtype) -> np.dtype:
    if np.dtype(dtype) not in (np.dtype("float32"), np.dtype("float64")):
        raise ParameterError(f"dtype={dtype!r} is not supported; expected 'float64' (default) or 'float32'.")
    return np.dtype(dtype)


def _counts_block(counts: np.ndarray, n_sel: int, n_uns: int, q: float, prior: float, grid: Grid, dtype) -> np.ndarray:
    return _maps_block(counts[0], counts[1], n_sel, n_uns, q, prior, grid, dtype)


def _counts_block_layout(counts, n_sel, n_uns, q, prior, grid, dtype, layout) -> np.ndarray:
    return _maps_block(counts[0], counts[1], n_sel, n_uns, q, prior, grid, dtype, layout)


def _grid(act: xr.DataArray) -> Grid:
    source = ActivationSource.of_cube(act)
    return source.grid if source is not None else grid_of(act)


def seed(
    act: xr.DataArray,
    seed: Seed,
    threshold: float | int = 0.0,
    *,
    r: float = 6.0,
    q: float = 0.01,
    prior: float = 0.5,
    by_label: bool = False,
    labels=None,
    separate: bool = False,
    dtype="float64",
    layout: str = "volume",
) -> xr.Dataset:
    """Coactivation maps of a seed (or of many): selected studies vs all other studies.

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
    by_label : bool, default False
        Treat an image seed as an atlas: one seed per positive label value
        (a plain image stays one lumped ROI, as in Neurosynth).
    labels : dict or path, optional
        Names of atlas labels (``{value: name}`` or a ``value name`` text file).
    separate : bool, default False
        Grow each coordinate into its own seed instead of one lumped ROI.
    dtype : {"float64", "float32"}, default "float64"
        Storage of the maps (always computed in float64); float32 is the
        precision of the NIfTI files and halves memory for large batches.
    layout : {"volume", "voxel"}, default "volume"
        For a batch: maps over ``(seed, x, y, z)``, or over the in-mask
        voxels only, ``(seed, voxel)`` (see :func:`seed_batch`).

    Several seeds - a list or dict of seeds, ``by_label=True`` or
    ``separate=True`` - give a Dataset with a ``seed`` dimension (see
    :func:`seed_batch`).

    Returns
    -------
    xarray.Dataset
        The nine maps (float64, dims ``x, y, z``, lazy: Dask), named as in
        Neurosynth (see :func:`xcoact.stats.map_names`); ``roi`` (the seed
        mask), ``overlap (study)`` and ``selected_id (selected)``.  ``attrs``
        hold the provenance: title, analysis, database, r (kernel radius),
        seed, seed_r (coordinate seeds), threshold, threshold_kind,
        selection, q, prior, min_studies, n_studies, n_selected,
        n_unselected, n_roi, max_overlap, maps, reference and xcoact_version.

    Notes
    -----
    Cost: this call computes the study selection right away (the ROI overlap
    of every study, from the database peaks that can reach the ROI: a few
    ms, no index), so that ``attrs`` can state it and a degenerate selection
    fails here, with its numbers.  The maps stay lazy until ``.compute()``,
    ``.load()`` or a writer.  The first computation on a cube builds the
    sparse per-study voxel index and the per-voxel totals, the
    seed-independent work later seeds reuse (kept while the index fits
    ``xcoact.config["index_cache_bytes"]``, and only in this process: under
    ``dask.distributed`` the workers rebuild it per computation).  The FDR
    maps need every voxel of their map at once (one family), which is one
    volume.

    Raises
    ------
    DatabaseFileNotFoundError
        An ROI image path does not exist.
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
    dtype = _check_dtype(dtype)
    if is_batch(seed, by_label=by_label, separate=separate):
        return seed_batch(act, seed, threshold, r=r, q=q, prior=prior, by_label=by_label, labels=labels,
                          separate=separate, dtype=dtype, layout=layout)
    grid = _grid(act)
    roi = roi_mask(seed, grid, r)
    n_roi = roi.attrs["n_roi"]
    overlap = overlap_counts(act, roi, grid)
    selected = select_studies(overlap, n_roi, threshold, seed_name=roi.attrs["seed"])
    n_sel = int(selected.sum())
    n_uns = int(selected.size - n_sel)

    a, total = selected_counts(act, selected, grid)
    names = map_names(q, prior)
    # one array argument: two slices of one graph passed separately would each be computed
    counts = da.stack([da.asarray(a), da.asarray(total)])
    block = dask.delayed(_counts_block, pure=True)(counts, n_sel, n_uns, q, prior, grid, dtype)
    stack = da.from_delayed(block, (len(names), *grid.shape), dtype=dtype)
    ds = _result(act, grid, names, {name: (("x", "y", "z"), stack[i]) for i, name in enumerate(names)})
    ds["roi"] = roi.variable
    ds["overlap"] = ("study", overlap)
    ds["overlap"].attrs["long_name"] = "ROI voxels active in each study"
    ds["selected_id"] = ("selected", act["study"].values[selected])
    ds["selected_id"].attrs["long_name"] = "ids of the selected studies"
    ds.attrs = {
        **_provenance(act, names, threshold, r, q, prior),
        "analysis": "seed coactivation",
        "seed": describe_seed(seed, r),
        **({"seed_r": float(r)} if is_coords(seed) else {}),
        "n_selected": n_sel,
        "n_unselected": n_uns,
        "n_roi": int(n_roi),
        "max_overlap": int(overlap.max()),
    }
    return ds


def _result(act: xr.DataArray, grid: Grid, names: list[str], variables: dict) -> xr.Dataset:
    """A result Dataset: the map variables on the cube's labels, with the brain mask."""
    ds = xr.Dataset(
        variables,
        coords={"x": act["x"].values, "y": act["y"].values, "z": act["z"].values, "study": act["study"].values},
    )
    for name in names:
        ds[name].attrs["long_name"] = name
    ds["brain_mask"] = (("x", "y", "z"), grid.mask)
    ds = ds.set_coords("brain_mask")
    for c in "xyz":
        ds[c].attrs["units"] = "mm"
    return ds


def _provenance(act: xr.DataArray, names: list[str], threshold, r: float, q: float, prior: float) -> dict:
    """The attrs every result carries: parameters, database, counts, version."""
    return {
        "title": "xcoact coactivation maps",
        "database": str(act.attrs.get("database", "")),
        "r": float(act.attrs.get("r", np.nan)),
        "threshold": threshold,
        "threshold_kind": threshold_kind(threshold),
        "selection": "ROI coverage > threshold (Neurosynth)",
        "q": q,
        "prior": prior,
        "min_studies": 1,
        "n_studies": int(act.sizes["study"]),
        "maps": ", ".join(names),
        "reference": REFERENCE,
        "xcoact_version": __version__,
    }


def _rows_task(source: ActivationSource, chunk: int):
    return source.rows(chunk)


def _totals_task(source: ActivationSource, *rows) -> np.ndarray:
    if source._totals is None:
        total = np.zeros(source.grid.n_mask, dtype=np.int64)
        for _, indices in rows:
            total += np.bincount(indices, minlength=source.grid.n_mask)
        source._totals = total
    return source._totals


def _sparse_seed_block(source: ActivationSource, total, selected, q, prior, dtype, layout, *rows) -> np.ndarray:
    """The nine maps of one seed of a batch, from the cached per-chunk index."""
    grid = source.grid
    a = np.zeros(grid.n_mask, dtype=np.int64)
    for chunk, (indptr, indices) in enumerate(rows):
        s0, s1 = source.chunk_bounds[chunk]
        picked = np.flatnonzero(selected[s0:s1])
        a += np.bincount(indices[ranges(indptr[picked], indptr[picked + 1])], minlength=grid.n_mask)
    n_sel = int(selected.sum())
    return _maps_block(a, total, n_sel, selected.size - n_sel, q, prior, grid, dtype, layout)


#: Seeds per Dask chunk in the voxel layout (4 x 9 maps x 228,453 float32 = 33 MB): few enough
#: chunk writes, small enough that the blocks in flight stay within v7's 1 GB budget.
_VOXEL_SEEDS_PER_CHUNK = 4


def _roi_block(voxels: np.ndarray, grid: Grid, layout: str = "volume") -> np.ndarray:
    if layout == "voxel":
        out = np.zeros(grid.n_mask, dtype=bool)
        out[grid.mask_index[voxels]] = True
        return out
    out = np.zeros(int(np.prod(grid.shape)), dtype=bool)
    out[voxels] = True
    return out.reshape(grid.shape)


def seed_batch(
    act: xr.DataArray,
    seeds,
    threshold: float | int = 0.0,
    *,
    r: float = 6.0,
    q: float = 0.01,
    prior: float = 0.5,
    by_label: bool = False,
    labels=None,
    separate: bool = False,
    dtype="float64",
    layout: str = "volume",
) -> xr.Dataset:
    """Coactivation maps of many seeds at once: a Dataset with a ``seed`` dimension.

    Each seed is analysed exactly as :func:`seed` analyses one; see there and
    :func:`xcoact.roi.seed_set` for how ``seeds``, ``by_label``, ``labels`` and
    ``separate`` name and expand them.  ``dtype="float32"`` stores the maps
    (computed in float64) at the precision of the NIfTI files, halving memory
    and disk for large batches.  ``layout="voxel"`` keeps only the in-mask
    voxels: maps ``(seed, voxel)`` (a quarter of the volume; the fastest to
    compute and write, 4 seeds per Dask chunk), turned back into
    ``(seed, x, y, z)`` lazily by ``ds.coact.volumes()`` (``to_nifti`` does it
    by itself).

    Returns
    -------
    xarray.Dataset
        The nine maps with dims ``(seed, x, y, z)``, lazy, one Dask chunk per
        seed; ``roi (seed, x, y, z)`` (lazy), ``n_roi (seed)``,
        ``n_selected (seed)``, ``valid (seed)``, ``selected (seed, study)``,
        ``overlap (seed, study)`` and ``description (seed)``; provenance attrs
        as for one seed plus n_seeds, n_valid_seeds, by_label and separate.  A seed that selects no study (or every study, or has
        no voxel in the brain mask) gets NaN maps and a
        :class:`~xcoact.warnings.DegenerateSeedWarning` naming it.

    Notes
    -----
    Cost: the selections are computed now: from the peaks near each ROI (a
    few ms per seed) for fewer than 16 seeds, else by one sparse product per
    study chunk over the index, which this call then builds (seconds, once).  Computing maps builds the per-study index once (the
    seed-independent step) and then costs one gather-and-count plus the
    statistics per seed; writers compute a few seeds at a time, so every
    seed's maps are never in memory together.
    """
    _check_cube(act)
    threshold = check_threshold(threshold)
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    dtype = _check_dtype(dtype)
    if layout not in ("volume", "voxel"):
        raise ParameterError(f"layout={layout!r} is not known; expected 'volume' (maps over x, y, z) or 'voxel' (in-mask voxels).")
    grid = _grid(act)
    rois = seed_set(seeds, grid, r, by_label=by_label, labels=labels, separate=separate)
    source = ActivationSource.of_cube(act)
    n_studies = act.sizes["study"]
    overlap = roi_overlaps(act, rois, grid)
    selected = np.zeros((len(rois), n_studies), dtype=bool)
    valid = np.zeros(len(rois), dtype=bool)
    problems = []
    for i, roi in enumerate(rois):
        if roi.voxels.size == 0:
            problems.append(f"{roi.name!r} (no voxel in the brain mask)")
            continue
        reason = degenerate_reason(overlap[i], roi.voxels.size, threshold)
        if reason is None:
            selected[i] = overlap_rule(overlap[i], roi.voxels.size, threshold)
            valid[i] = True
        else:
            problems.append(f"{roi.name!r} ({reason})")
    warn_degenerate(problems, len(rois), "seeds give NaN maps", "Check their ROI or lower the threshold.", stacklevel=3)

    names = map_names(q, prior)
    space = grid.shape if layout == "volume" else (grid.n_mask,)
    space_dims = ("x", "y", "z") if layout == "volume" else ("voxel",)
    shape = (len(names), *space)
    blocks = []
    if source is not None and valid.any():
        token = f"{act.data.name}-rows"
        rows = [dask.delayed(_rows_task, pure=True)(source, c, dask_key_name=f"{token}-{c}") for c in range(len(source.chunk_bounds))]
        total = dask.delayed(_totals_task, pure=True)(source, *rows, dask_key_name=f"{token}-totals")
    for i in range(len(rois)):
        if not valid[i]:
            blocks.append(da.full(shape, np.nan, dtype=dtype, chunks=shape))
            continue
        if source is not None:
            block = dask.delayed(_sparse_seed_block, pure=True)(source, total, selected[i], q, prior, dtype, layout, *rows)
        else:
            a, tot = selected_counts(act, selected[i], grid)
            n_sel = int(selected[i].sum())
            both = da.stack([da.asarray(a), da.asarray(tot)])
            block = dask.delayed(_counts_block_layout, pure=True)(both, n_sel, n_studies - n_sel, q, prior, grid, dtype, layout)
        blocks.append(da.from_delayed(block, shape, dtype=dtype))
    stack = da.stack(blocks, axis=1)  # (map, seed, *space)
    if layout == "voxel":
        # small per-seed blocks: group them so writers make a tenth as many (costly) chunk writes
        stack = stack.rechunk({1: _VOXEL_SEEDS_PER_CHUNK})
    ds = _result(act, grid, names, {name: (("seed", *space_dims), stack[k]) for k, name in enumerate(names)})
    ds = ds.assign_coords(seed=[roi.name for roi in rois])
    if layout == "voxel":
        ds = ds.assign_coords(voxel=("voxel", grid.mask_flat, {
            "long_name": "flat (C-order) index of the in-mask voxel in the (x, y, z) grid",
            "note": "ds.coact.volumes() turns (seed, voxel) maps into (seed, x, y, z)",
        }))
    roi_stack = da.stack(
        [da.from_delayed(dask.delayed(_roi_block)(roi.voxels, grid, layout), space, dtype=bool) for roi in rois]
    )
    ds["roi"] = (("seed", *space_dims), roi_stack)
    ds["n_roi"] = ("seed", np.array([roi.voxels.size for roi in rois], dtype=np.int64))
    ds["n_selected"] = ("seed", np.where(valid, selected.sum(axis=1), 0).astype(np.int64))
    ds["valid"] = ("seed", valid)
    ds["selected"] = (("seed", "study"), selected)
    ds["overlap"] = (("seed", "study"), overlap)
    ds["description"] = ("seed", np.array([roi.description for roi in rois], dtype=str))
    ds["n_selected"].attrs["long_name"] = "studies selected by each seed"
    ds["valid"].attrs["long_name"] = "False where the seed's maps are NaN (degenerate selection or empty ROI)"
    ds.attrs = {
        **_provenance(act, names, threshold, r, q, prior),
        "analysis": "seed coactivation, batch",
        **({"seed_r": float(r)} if uses_coords(seeds, separate) else {}),
        "n_seeds": len(rois),
        "n_valid_seeds": int(valid.sum()),
        "by_label": int(by_label),
        "separate": int(separate),
        "layout": layout,
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
