"""One seed's coactivation maps (``seed``, and ``coactivation``, which also writes them); its selection."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from ..choices import FweMethod, Layout, MapDtype, NullMethod, PresetName, SelectRule
from ..counts import overlap_counts, study_scores
from ..errors import ParameterError
from ..presets import Preset, focus_selected
from ..result import _provenance, _result
from ..roi import Seed, SeedROI, describe_seed, is_batch, is_coords, roi_mask
from ..select import SelectionRule, check_rule
from ..space import Grid
from .batch import seed_batch
from .pipeline import (
    _check_cube,
    _check_dtype,
    _check_unit_interval,
    _full_flat,
    _grid,
    _map_stack,
    _preset_of,
    _scores,
)

__all__ = ["seed", "coactivation"]


def seed(
    act: xr.DataArray,
    seed: Seed,
    threshold: float | int | None = None,
    *,
    r: float = 6.0,
    select: SelectRule | None = None,
    k: int | None = None,
    q: float = 0.01,
    prior: float = 0.5,
    by_label: bool = False,
    labels=None,
    separate: bool = False,
    dtype: MapDtype | np.dtype = "float64",
    layout: Layout = "volume",
    preset: PresetName | None = None,
    fwe: int | FweMethod | None = None,
    fwe_seed: int | None = None,
    null: NullMethod | None = None,
    n_iter: int | None = None,
    null_seed: int | None = None,
) -> xr.Dataset:
    """Coactivation maps of a seed (or of many): selected studies vs all other studies.

    Matches Neurosynth 0.3.8 ``network.coactivation`` (seed selection by ROI
    coverage, :ref:`semantics-selection`) followed by ``MetaAnalysis`` (:ref:`semantics-maps`).
    Several seeds - a list or dict of seeds, ``by_label=True`` or
    ``separate=True`` - give a Dataset with a ``seed`` dimension (see
    :func:`seed_batch`).

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    seed : str, path-like, nibabel image, xarray.DataArray, or (n, 3) array-like
        An ROI image (voxels > 0, several labels lumped into one ROI) or MNI
        coordinates ``[[x, y, z], ...]`` grown into spheres of radius ``r``
        (all of them one ROI, as in Neurosynth).
    threshold : float or int, optional
        For ``select="overlap"``: a study is selected when it covers *more
        than* this proportion (float, in [0, 1]) or this number of voxels
        (int) of the ROI.  Default 0.0, Neurosynth's; its seed example uses
        0.1.  Other rules take no threshold.
    r : float, default 6
        Sphere radius in mm for coordinate seeds (ignored for images); with
        ``select="distance"`` also the selection distance.
    select : {"overlap", "focus", "distance", "nearest"}, optional
        The study-selection rule (see :mod:`xcoact.select`); by default the
        preset's (``"overlap"`` for Neurosynth, ``"focus"`` for NiMARE):
        ``"overlap"`` - activation covers more than ``threshold`` of the ROI
        (:ref:`semantics-selection`, Neurosynth's ``network.coactivation``);
        ``"focus"`` - a reported peak inside the ROI (NiMARE's
        ``get_studies_by_mask``); ``"distance"`` - a reported peak within
        ``r`` mm (inclusive) of a seed coordinate (Neurosynth 0.3.8's
        ``get_studies(peaks=...)``, NiMARE's ``get_studies_by_coordinate``);
        ``"nearest"`` - the ``k`` studies whose nearest peak is closest to a
        seed coordinate (ties broken by database order).
    k : int, optional
        Number of studies for ``select="nearest"``.
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
    preset : {"neurosynth", "nimare"}, optional
        The reference whose numbers to reproduce (see :mod:`xcoact.presets`);
        it must be the cube's own (``xcoact.activations(db, preset=...)``,
        which fixes kernel, grid and peak transform), and by default it is.
        ``"nimare"`` gives NiMARE 0.22.1's MKDAChi2 maps under NiMARE's names.
    fwe : int or "bonferroni", optional
        Also compute family-wise error corrected maps now: this many
        permutation iterations, or Bonferroni (see :func:`xcoact.stats.fwe.fwe`;
        one seed only).
    fwe_seed : int, optional
        Seed of the permutations (reproducible runs).
    null : {"scale"}, optional
        ALE cubes only: ``"scale"`` gives NiMARE's SCALE maps (specific
        coactivation against the database's foci, :func:`xcoact.stats.ale.scale`)
        instead of the approximate-null ``p`` and ``z``.
    n_iter, null_seed : int, optional
        With ``null="scale"``: Monte Carlo iterations (default 5000) and their
        seed (``seed`` names the ROI here).

    Returns
    -------
    xarray.Dataset
        The nine maps (float64, dims ``x, y, z``, lazy: Dask), named as in
        Neurosynth (see :func:`xcoact.stats.neurosynth.map_names`); ``roi`` (the seed
        mask), the rule's per-study score (``overlap``, ``peaks_in_roi`` or
        ``distance``, dim ``study``) and ``selected_id (selected)``.
        ``attrs`` hold the provenance: title, analysis, database, r (kernel
        radius), seed, seed_r (coordinate seeds), select, selection (the rule
        in words), the rule's parameters (threshold and threshold_kind,
        select_r or select_k), q, prior, min_studies, n_studies, n_selected,
        n_unselected, n_roi, max_overlap (overlap rule), maps, reference
        and xcoact_version.

    Notes
    -----
    Cost: this call computes the study selection right away (the ROI overlap
    of every study, one small Dask task per study block), so that ``attrs``
    can state it and a degenerate selection fails here, with its numbers.
    The first computation on a cube makes its blocks, which build each study
    chunk's sparse rows and per-voxel totals (about 2 s for Neurosynth v7 on
    2 cores): the seed-independent work every later seed reuses, kept by the
    cube's graph in this process, or on the workers for a persisted cube
    (``act.persist()``) under ``dask.distributed``.  The maps stay lazy until
    ``.compute()``, ``.load()`` or a writer.  The FDR maps need every voxel of
    their map at once (one family), which is one volume.

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
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> maps = act.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    >>> maps.attrs["n_roi"], maps.attrs["n_selected"]
    (366, 9)
    >>> float(maps["pFgA"].max()) <= 1.0
    True
    """
    if isinstance(act, xr.DataArray) and act.attrs.get("kernel") == "ale":  # an ALE MACM (xcoact.stats.ale.seed)
        return _ale_seed(
            act,
            seed,
            threshold,
            r=r,
            select=select,
            k=k,
            preset=preset,
            by_label=by_label,
            separate=separate,
            fwe=fwe,
            fwe_seed=fwe_seed,
            null=null,
            n_iter=n_iter,
            null_seed=null_seed,
        )
    if null is not None or n_iter is not None or null_seed is not None:
        raise ParameterError(
            "null=, n_iter= and null_seed= apply to ALE cubes (xcoact.activations(db, kernel='ale')); "
            "for the MKDA maps' permutation null use fwe= and fwe_seed=."
        )
    _check_cube(act)
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    dtype = _check_dtype(dtype)
    if is_batch(seed, by_label=by_label, separate=separate):
        if fwe is not None:
            raise ParameterError(
                "fwe= applies to one seed at a time; run it per seed (maps.isel(seed=i) has no index)."
            )
        return seed_batch(
            act,
            seed,
            threshold,
            r=r,
            select=select,
            k=k,
            q=q,
            prior=prior,
            by_label=by_label,
            labels=labels,
            separate=separate,
            dtype=dtype,
            layout=layout,
            preset=preset,
        )
    if layout not in ("volume", "voxel"):
        raise ParameterError(
            f"layout={layout!r} is not known; expected 'volume' (maps over x, y, z) or 'voxel' (in-mask voxels)."
        )
    if layout == "voxel":
        raise ParameterError(
            "layout='voxel' applies to batches of seeds (separate=True, by_label=True or a list of seeds); "
            "one seed's maps are volumes (x, y, z)."
        )
    from ..counts import one_placement

    pre = _preset_of(act, preset)
    with one_placement():  # on a cluster: who holds the blocks, asked once for the selection and the counts
        rule, grid, roi, score, selected = select_for_seed(
            act, seed, pre, pre.select if select is None else select, threshold, r, k
        )
        n_sel = int(selected.sum())
        n_uns = int(selected.size - n_sel)
        stack = _map_stack(act, grid, [selected, np.ones_like(selected)], n_sel, n_uns, q, prior, dtype, pre)
    n_roi = roi.attrs["n_roi"]
    names = pre.map_names(q, prior)
    ds = _result(
        act,
        grid,
        names,
        {name: (("x", "y", "z"), stack[i]) for i, name in enumerate(names)},
        {
            "roi": roi.variable,
            rule.score_name: ("study", score, {"long_name": rule.score_long_name}),
            "selected_id": ("selected", act["study"].values[selected], {"long_name": "ids of the selected studies"}),
        },
    )
    ds.attrs = {
        **_provenance(act, names, rule, r, q, prior, n_roi, pre),
        "analysis": "seed coactivation",
        "seed": describe_seed(seed, r),
        **({"seed_r": float(r)} if is_coords(seed) else {}),
        "n_selected": n_sel,
        "n_unselected": n_uns,
        "n_roi": int(n_roi),
        **({"max_overlap": int(score.max())} if rule.rule == "overlap" else {}),
    }
    if fwe is not None:
        from ..stats.fwe import fwe as _fwe

        ds = _fwe(ds, act, n_iter=fwe, seed=fwe_seed)
    return ds


def select_for_seed(act: xr.DataArray, seed, pre, select: str, threshold, r, k):
    """One seed's selection on a cube: ``(rule, grid, roi, score, selected)``.

    The rule checked, the ROI aligned with the cube's grid, each study's
    score (from the cube's blocks) and the selected studies (bool per study);
    the MKDA and the ALE seeds both start here.
    """
    rule = check_rule(select, threshold, r=r, k=k, coords=is_coords(seed))
    grid = _grid(act)
    roi = roi_mask(seed, grid, r)
    score = _single_score(act, rule, pre, seed, roi, r, grid)
    selected = rule.select(score, roi.attrs["n_roi"], seed_name=roi.attrs["seed"])
    return rule, grid, roi, score, selected


def _ale_seed(
    act, seed, threshold, *, r, select, k, preset, by_label, separate, fwe, fwe_seed, null, n_iter, null_seed
) -> xr.Dataset:
    """``seed`` on an ALE cube: one seed, no chi-square options (see :func:`xcoact.stats.ale.seed`)."""
    from ..stats import ale
    from ..stats.ale import seed as ale_seed

    if by_label or separate or is_batch(seed):
        raise ParameterError(
            "an ALE cube's seed analysis takes one seed (one ROI); by_label=, separate= and lists of "
            "seeds apply to the MKDA maps. Run the seeds one by one."
        )
    if null not in (None, "scale"):
        raise ParameterError(f"null={null!r} is not known; expected None (the approximate null) or 'scale' (SCALE).")
    if null is None and (n_iter is not None or null_seed is not None):
        raise ParameterError(
            "n_iter= and null_seed= apply with null='scale'; for Monte Carlo FWE use fwe= and fwe_seed=."
        )
    if null is not None and fwe is not None:
        raise ParameterError(
            "fwe= corrects the approximate-null ALE maps; null='scale' gives its own Monte Carlo p. Use one."
        )
    ds = ale_seed(act, seed, threshold, r=r, select=select, k=k, preset=preset)
    if null == "scale":
        return ale.scale(ds, act, n_iter=n_iter, seed=null_seed)
    if fwe is not None:
        return ale.fwe(ds, act, n_iter=fwe, seed=fwe_seed)
    return ds


def _single_score(act, rule: SelectionRule, pre: Preset, seed, roi: xr.DataArray, r, grid: Grid) -> np.ndarray:
    """One seed's per-study score under the rule (the preset decides what "focus" means exactly)."""
    if rule.rule == "focus" and pre.name == "nimare":
        # NiMARE's get_studies_by_mask: every ROI voxel > 0 (not only those in the brain mask), and peaks
        # beyond the box clipped to its edge
        full = np.flatnonzero(roi_mask(seed, grid, r, restrict=False).values)
        got = study_scores(act, lambda chunk, block: focus_selected(chunk, _full_flat(block, full))[None], 1, np.int32)
        if got is not None:
            return got[0]
    if rule.rule == "overlap":
        return overlap_counts(act, roi, grid)
    one = SeedROI(
        "seed",
        np.flatnonzero(roi.values),
        "",
        np.atleast_2d(np.asarray(seed, dtype=float)) if is_coords(seed) else None,
    )
    return _scores(act, rule, [one], grid)[0]


_seed = seed  # coactivation()'s own ``seed`` argument shadows the function


def coactivation(
    act: xr.DataArray,
    seed: Seed,
    threshold: float | int | None = None,
    *,
    outroot: str | os.PathLike,
    r: float = 6.0,
    select: SelectRule | None = None,
    k: int | None = None,
    q: float = 0.01,
    prior: float = 0.5,
    overwrite: bool = False,
) -> xr.Dataset:
    """Neurosynth's ``network.coactivation`` in one call: maps computed and written.

    Runs :func:`seed` and writes each map to ``{outroot}_{name}.nii.gz``
    (see :func:`xcoact.writers.to_nifti`).  Parameters as in :func:`seed`.

    Returns
    -------
    xarray.Dataset
        The computed maps; ``attrs["files"]`` lists what was written.
    """
    from ..writers import to_nifti

    ds = _seed(act, seed, threshold, r=r, select=select, k=k, q=q, prior=prior).compute()
    files = to_nifti(ds, outroot, overwrite=overwrite)
    ds.attrs["files"] = [os.fspath(f) for f in files]
    return ds
