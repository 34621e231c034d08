"""The named analyses: a seed's coactivation maps, composed from the stages.

cube -> ROI mask -> overlap -> selection -> grouped counts -> statistics ->
an :class:`xarray.Dataset` with provenance in ``attrs``.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any, cast

import dask.array as da
import numpy as np
import xarray as xr

from .._version import __version__
from ..blocks import ActivationBlock, is_block_cube
from ..choices import BothRule, FweMethod, Layout, MapDtype, NullMethod, PresetName, SelectRule
from ..counts import canonical, grouped_counts, overlap_counts, roi_overlaps, study_scores, view_to_grid_flat
from ..errors import ParameterError, SelectionError
from ..mapchunk import OneChunk
from ..presets import Preset, focus_selected, get_preset
from ..roi import Seed, SeedROI, describe_seed, grid_of, is_batch, is_coords, roi_mask, seed_set, uses_coords
from ..select import SelectionRule, check_rule, focus_counts, min_distances, warn_degenerate
from ..space import Grid
from ..stats.neurosynth import map_names, pair_maps

if TYPE_CHECKING:
    from dask.typing import Key

__all__ = ["seed", "seed_batch", "coactivation", "contrast", "REFERENCE"]

REFERENCE = "Neurosynth 0.3.8 network.coactivation / MetaAnalysis (Yarkoni et al. 2011)"

#: Where a result keeps a reference to its cube: ``ds.encoding[CUBE_KEY]`` (see :func:`cube_of`).
CUBE_KEY = "xcoact_cube"


def _check_cube(act) -> None:
    if not isinstance(act, xr.DataArray):
        raise ParameterError(
            f"act must be the activation cube DataArray from xcoact.activations, got {type(act).__name__}."
        )
    if set(act.dims) != {"study", "x", "y", "z"}:
        raise ParameterError(
            f"act has dims {act.dims}; expected ('study', 'x', 'y', 'z') as built by xcoact.activations."
        )
    if act.dtype != bool and act.attrs.get("kernel", "binary sphere") != "binary sphere":
        kernel = act.attrs["kernel"]
        raise ParameterError(
            f"act holds the {kernel!r} kernel's values ({act.dtype}); the coactivation maps count the studies "
            "active at each voxel. Analyse the kernel's binary maps with act.astype(bool) (a study active where "
            f"its {kernel} value is not 0: for kernel='kda' the cube of kernel='mkda' with the same r), or build "
            "xcoact.activations(db) without kernel=."
        )
    if act.dtype != bool:
        raise ParameterError(f"act has dtype {act.dtype}; expected bool (study active at voxel).")
    study = act.indexes.get("study") if "study" in act.coords else None
    if study is not None and not study.is_unique:
        dup = study[study.duplicated()].unique()[:5].tolist()
        raise ParameterError(
            f"act has {int(study.duplicated().sum())} repeated study label(s) (e.g. {dup}); each study must appear "
            "once or it would be counted twice. Drop the repeats, "
            "e.g. act.isel(study=~act.indexes['study'].duplicated())."
        )


def cube_token(act: xr.DataArray) -> str:
    """What identifies a cube's content: its kernel, database, studies and voxels (not its chunks or order).

    Recorded as ``attrs["cube"]`` of every result, so that a step that needs
    the cube again (``fwe``, ``decode``) can check it was given the right one.
    """
    import pandas as pd
    from dask.base import tokenize

    keys = ("database", "r", "kernel", "preset", "grid", "n_peaks")
    # order-independent: a sum of per-label hashes (the same cube transposed or sorted keeps its token)
    labels = [
        (act.sizes[d], int(pd.util.hash_array(np.asarray(act[d].values)).sum(dtype=np.uint64)))
        for d in ("study", "x", "y", "z")
    ]
    return "cube-" + tokenize([str(act.attrs.get(k, "")) for k in keys], labels)


def _check_unit_interval(value, name: str, example: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0 < float(value) < 1
    ):
        raise ParameterError(
            f"{name}={value!r} is not valid; expected a number strictly between 0 and 1 (e.g. {name}={example})."
        )
    return float(value)


def _gather_maps(table: np.ndarray, inverse: np.ndarray | None, grid: Grid, layout: str, out=None) -> np.ndarray:
    """Each map's values per count pair (per voxel if ``inverse`` is None) placed at its voxels, into ``out``.

    ``out`` is ``(n_maps, n_mask)`` or ``(n_maps, x, y, z)`` (zeros), made if not given.
    """
    if out is None:
        out = np.zeros((len(table), *(grid.shape if layout == "volume" else (grid.n_mask,))), dtype=table.dtype)
    for row, place in zip(table, out):  # each place is one contiguous map
        if layout == "voxel" and inverse is not None:
            np.take(row, inverse, out=place, mode="clip")  # straight into place (the pairs are all valid)
        elif layout == "voxel":
            place[...] = row
        else:
            place.reshape(-1)[grid.mask_flat] = row if inverse is None else row.take(inverse)
    return out


def _check_dtype(dtype) -> np.dtype:
    if np.dtype(dtype) not in (np.dtype("float32"), np.dtype("float64")):
        raise ParameterError(f"dtype={dtype!r} is not supported; expected 'float64' (default) or 'float32'.")
    return np.dtype(dtype)


def _map_stack(
    act: xr.DataArray, grid: Grid, groups, n_sel: int, n_uns: int, q: float, prior: float, dtype, pre: Preset
) -> list[da.Array]:
    """The maps of one analysis, lazy, a ``(x, y, z)`` array each: grouped counts of two groups, then the statistics.

    ``groups`` is ``[selected, compared]``: the studies whose activation is
    tested, and all the studies of the comparison (selected ones included).
    """
    from dask.base import tokenize
    from dask.optimization import cull

    weights = np.stack([np.asarray(g, dtype=bool) for g in groups])
    names = pre.map_names(q, prior)
    if not _local_scheduler():  # a cluster: the workers return in-mask maps, the client expands them
        return _shipped_maps(grouped_counts(act, weights, grid), n_sel, n_uns, q, prior, grid, dtype, pre.name, names)
    args = (n_sel, n_uns, q, prior, grid, np.dtype(dtype), pre.name)
    data = canonical(act)
    if is_block_cube(data):
        # sparse blocks: one task from the cube's blocks to the nine maps (the counts never leave it) - a small
        # hand-made graph, cheaper to build and to schedule than a blockwise reduction, delayed and from_delayed
        keys = list(_flat_keys(data.__dask_keys__()))
        bounds = np.cumsum([0, *data.chunks[0]])
        parts = [weights[:, bounds[i] : bounds[i + 1]] for i in range(len(keys))]
        token = tokenize(data.name, weights, *args)
        task = f"summed_counts-maps-{token}"  # the grouped counts and the statistics, in one task
        # the cube's tasks these blocks need, culled here (one layer), so the maps can skip Dask's optimisation;
        # a persisted cube's blocks go into the task itself (fewer keys for the scheduler)
        cube, graph = f"cube-of-{task}", cull(dict(data.dask), keys)[0]
        held = all(isinstance(graph[k], ActivationBlock) for k in keys)
        layers = {cube: {} if held else graph}
        layers[task] = {task: (_blocks_maps, [graph[k] for k in keys] if held else keys, parts, *args, False)}
        deps = {cube: set(), task: {cube}}
        maps = _maps_of_table(layers, deps, task, names, token, grid, dtype)
        for m in maps:  # a hand-made graph of ten tasks: Dask's passes would cost more than the work they could save
            m.__dask_optimize__ = None
        return maps
    counts = grouped_counts(act, weights, grid)
    (key,) = list(_flat_keys(counts.__dask_keys__()))
    token = tokenize(counts.name, *args)
    task = f"coact-maps-{token}"
    layers = dict(counts.dask.layers)
    deps = dict(counts.dask.dependencies)
    layers[task] = {task: (_counts_in_mask, key, *args, False)}
    deps[task] = set(counts.__dask_layers__())
    return _maps_of_table(layers, deps, task, names, token, grid, dtype)


def _maps_of_table(layers: dict, deps: dict, table: str, names: list, token: str, grid: Grid, dtype) -> list[da.Array]:
    """The maps of the task ``table`` (a :func:`_counts_in_mask` result) as lazy volumes, one single-chunk array each.

    Each map's chunk is an :class:`~xcoact.mapchunk.InMaskMap`, whose volume is made once, where it is read (a
    volume made in the task would be copied again by Dask's finalize of a single-chunk result: 65 MB more per seed).
    """
    from dask.highlevelgraph import HighLevelGraph

    outs = [f"{name}-{token}" for name in names]
    for k, out in enumerate(outs):
        layers[out] = {(out,) + (0,) * len(grid.shape): (_one_map, table, k)}
        deps[out] = {table}
    graph = HighLevelGraph(layers, deps)
    meta = np.empty((0,) * len(grid.shape), dtype=dtype)
    return [da.Array(graph, out, chunks=tuple((n,) for n in grid.shape), meta=meta) for out in outs]


def _flat_keys(keys):
    if isinstance(keys, list):
        for k in keys:
            yield from _flat_keys(k)
    else:
        yield keys


def _blocks_maps(blocks: list, weights: list, *args) -> tuple:
    """:func:`_counts_in_mask` of the counts of a sparse cube's study blocks (``weights``: each block's columns)."""
    from .. import counts as _counts

    return _counts_in_mask(_counts._summed_counts(blocks, weights, np.zeros(0, dtype=np.int64)), *args)


def _shipped_maps(
    counts: da.Array, n_sel: int, n_uns: int, q: float, prior: float, grid: Grid, dtype, preset: str, names: list
) -> list[da.Array]:
    """:func:`_map_stack`'s maps when Dask computes elsewhere (a cluster): :class:`~xcoact.mapchunk.InMaskMap` chunks.

    The statistics run in the task that adds the counts, on the worker holding most of the cube's blocks,
    and give the maps per count pair with each in-mask voxel's pair; each map's task picks its row (under
    1 MB a map instead of a 7 MB float64 volume), which arrives as the volume where it is read.
    """
    from dask.base import tokenize

    (key,) = _flat_keys(counts.__dask_keys__())
    token = tokenize(counts.name, n_sel, n_uns, q, prior, grid, np.dtype(dtype), preset)
    table = f"in-mask-maps-{token}"
    layers, deps = dict(counts.dask.layers), dict(counts.dask.dependencies)
    # the statistics in the counts' task (on the worker holding most blocks, see counts.grouped_counts): one hop less
    layers[table] = {
        table: (_counts_in_mask, layers.pop(counts.name)[key], n_sel, n_uns, q, prior, grid, dtype, preset)
    }
    deps[table] = deps.pop(counts.name)
    maps = _maps_of_table(layers, deps, table, names, token, grid, dtype)
    return [OneChunk(m.dask, m.name, m.chunks, meta=m._meta) for m in maps]  # from the map tasks to the client


def _counts_in_mask(
    counts: np.ndarray,
    n_sel: int,
    n_uns: int,
    q: float,
    prior: float,
    grid: Grid,
    dtype,
    preset: str,
    narrow: bool = True,
) -> tuple:
    """One seed's maps from its counts, in-mask: ``(values, pairs, mask_bits, shape)``.

    The arithmetic is :func:`_group_maps`'s.

    ``values`` is ``(n_maps, n_pairs)`` with ``pairs`` each in-mask voxel's
    column (the narrowest integers if ``narrow``, for shipping; else int64,
    which gathers faster), or ``(n_maps, n_mask)`` with ``pairs=None``
    (presets whose statistics are per voxel).
    """
    from ..mapchunk import pair_numbers

    bits = np.packbits(grid.mask.ravel())
    a, total = counts[0], counts[1]
    if preset == "neurosynth":
        table, inverse = pair_maps(a, np.subtract(total, a, dtype=np.int64), n_sel, n_uns, q=q, prior=prior)
        table = table.astype(dtype, copy=False)
        return table, pair_numbers(inverse, table.shape[1]) if narrow else inverse, bits, grid.shape
    maps = get_preset(preset).maps(a, total, n_sel, n_uns, grid, q=q, prior=prior)
    return np.stack([np.asarray(v) for v in maps.values()]).astype(dtype, copy=False), None, bits, grid.shape


def _one_map(in_mask: tuple, k: int):
    """Map ``k`` of :func:`_counts_in_mask`'s result as an :class:`~xcoact.mapchunk.InMaskMap`."""
    from ..mapchunk import InMaskMap

    values, pairs, bits, shape = in_mask
    return InMaskMap(np.ascontiguousarray(values[k]), pairs, bits, shape)


def _local_scheduler() -> bool:
    from ..counts import _local_scheduler as local

    return local()


def _preset_of(act: xr.DataArray, preset) -> Preset:
    """The preset of an analysis: the cube's own, or the one asked for if it is the same."""
    built = get_preset(act.attrs.get("preset", "neurosynth"))
    if preset is None:
        return built
    asked = get_preset(preset)
    if asked.name != built.name:
        raise ParameterError(
            f"preset={asked.name!r} does not match the cube, built with preset={built.name!r} (its kernel, grid and "
            f"peak transform); build the cube with xcoact.activations(db, preset={asked.name!r})."
        )
    return asked


def _grid(act: xr.DataArray) -> Grid:
    grid = grid_of(act)
    # the grid the cube's blocks were built on, when the cube still shows it whole: its lookups (in-mask
    # index, token) are made once for the cube rather than once per analysis
    meta = getattr(act.data, "_meta", None)
    built = meta.chunk.grid if isinstance(meta, ActivationBlock) else None
    if (
        built is not None
        and built.shape == grid.shape
        and np.array_equal(built.affine, grid.affine)
        and np.array_equal(built.mask, grid.mask)
    ):
        return built
    return grid


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


def contrast_groups(act: xr.DataArray, seeds, pre, rule, grid, r, both: str):
    """The two groups of a contrast: ``(in_a, in_b, overlap, rois, scores)``.

    Each seed's selection by ``rule``; studies selected by both are an error
    (``both="error"``), left out (``"exclude"``) or counted in one group
    (``"a"``, ``"b"``); an empty group is an error.  The MKDA and the ALE
    contrasts both start here.
    """
    rois, picks, scores = [], [], []
    for s in seeds:
        roi = roi_mask(s, grid, r)
        score = _single_score(act, rule, pre, s, roi, r, grid)
        picks.append(rule.select(score, roi.attrs["n_roi"], seed_name=roi.attrs["seed"]))
        rois.append(roi)
        scores.append(score)
    in_a, in_b = picks
    overlap = in_a & in_b
    ids = np.asarray(act["study"].values)
    if overlap.any() and both == "error":
        raise SelectionError(
            f"{int(overlap.sum())} studies are selected by both seeds (e.g. {ids[overlap][:5].tolist()}); "
            "choose both='exclude' (leave them out), 'a' or 'b' (count them in one group)."
        )
    if both in ("exclude", "b"):
        in_a = in_a & ~overlap
    if both in ("exclude", "a"):
        in_b = in_b & ~overlap
    for label, group in (("A", in_a), ("B", in_b)):
        if not group.any():
            raise SelectionError(
                f"group {label} of the contrast is empty: every study seed {label} selects ({int(overlap.sum())}) is "
                f"also selected by the other seed and both={both!r} leaves it out. Use both='a' or 'b', or other seeds."
            )
    return in_a, in_b, overlap, rois, scores


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


def _scores(act: xr.DataArray, rule: SelectionRule, rois: list[SeedROI], grid: Grid) -> np.ndarray:
    """Each study's score under the rule, per ROI: (n_rois, n_studies) (computed now, cheap)."""
    if rule.rule == "overlap":
        return roi_overlaps(act, rois, grid, sparse=True)  # a batch: compact from each chunk on
    if rule.rule == "focus":

        def fn(chunk, block):
            return focus_counts(chunk, [_full_flat(block, roi.voxels) for roi in rois])
    else:
        # the callers refuse image seeds for the distance rules: every ROI has its coordinates
        seeds_xyz = cast("list[np.ndarray]", [roi.xyz for roi in rois])

        def fn(chunk, block):
            return min_distances(chunk, seeds_xyz)

    got = study_scores(act, fn, len(rois), np.int32 if rule.rule == "focus" else np.float64)
    if got is None:
        raise ParameterError(
            f"select={rule.rule!r} needs the database peaks, which this cube no longer carries (it was computed, "
            "combined with another array or loaded from a file); build it with xcoact.activations(db) and select on "
            "that cube (isel, sel, transpose, chunk and persist keep the peaks)."
        )
    return got


def _full_flat(block, flat: np.ndarray) -> np.ndarray:
    """Flat indices on the cube's own grid -> flat indices on the full grid its chunks were built on."""
    return view_to_grid_flat(block, np.asarray(flat, dtype=np.int64))


def _result(act: xr.DataArray, grid: Grid, names: list[str], variables: dict, extra: dict | None = None) -> xr.Dataset:
    """A result Dataset: the map variables (then ``extra`` ones) on the cube's labels, with the brain mask."""
    # built in one go: every assignment to a Dataset is a merge, which costs more than the maps' graph
    data_vars = {
        name: (*variables[name], {"long_name": name}) if name in names else variables[name] for name in variables
    }
    data_vars.update(extra or {})
    ds = xr.Dataset(
        data_vars,
        coords={
            **{c: (c, act[c].values, {"units": "mm"}) for c in "xyz"},
            "study": act["study"].values,
            "brain_mask": (("x", "y", "z"), grid.mask),
        },
    )
    # the cube travels with its result, in memory only (writers never store a Dataset's encoding):
    # fwe and decode need it again, and find it here rather than in any registry
    ds.encoding[CUBE_KEY] = act
    return ds


def cube_of(result: xr.Dataset) -> xr.DataArray | None:
    """The cube a result was computed from, when the result still carries it (in memory; not after a file)."""
    act = result.encoding.get(CUBE_KEY)
    return act if isinstance(act, xr.DataArray) else None


def _provenance(
    act: xr.DataArray,
    names: list[str],
    rule: SelectionRule,
    r: float,
    q: float,
    prior: float,
    n_roi: int | None = None,
    pre: Preset | None = None,
) -> dict:
    """The attrs every result carries: parameters, database, counts, version."""
    return {
        "title": "xcoact coactivation maps",
        "database": str(act.attrs.get("database", "")),
        "cube": cube_token(act),  # lets maps.coact.fwe(act=...) check that it was given the maps' own cube
        "r": float(act.attrs.get("r", np.nan)),
        **rule.attrs(n_roi),
        "preset": pre.name if pre else "neurosynth",
        "q": q,
        "prior": prior,
        "min_studies": pre.min_studies if pre else 1,
        "n_studies": int(act.sizes["study"]),
        "maps": ", ".join(names),
        "reference": pre.reference if pre and pre.name != "neurosynth" else REFERENCE,
        "xcoact_version": __version__,
    }


def _group_maps(
    counts: np.ndarray,
    total: np.ndarray,
    n_sel,
    valid,
    n_studies: int,
    q: float,
    prior: float,
    grid: Grid,
    dtype,
    preset,
) -> list:
    """Each seed's maps of a chunk of seeds, in-mask: ``(values, pair of each voxel or None)``, None if not valid."""
    pre = get_preset(preset)
    out: list = []
    for a, n, ok in zip(counts, n_sel, valid):
        if not ok:
            out.append(None)
        elif preset == "neurosynth":  # the maps per distinct count pair (cast first: the same values)
            table, inverse = pair_maps(
                a, np.subtract(total[0], a, dtype=np.int64), int(n), n_studies - int(n), q=q, prior=prior
            )
            out.append((table.astype(dtype, copy=False), inverse))
        else:
            maps = pre.maps(a, total[0], int(n), n_studies - int(n), grid, q=q, prior=prior)
            out.append((np.stack(list(maps.values())).astype(dtype, copy=False), None))
    return out


def _group_map(tables: list, k: int, grid: Grid, layout: str, dtype) -> np.ndarray:
    """Map ``k`` of a chunk of seeds from :func:`_group_maps`: ``(n_seeds, *space)``, NaN where not valid."""
    space = grid.shape if layout == "volume" else (grid.n_mask,)
    out = (np.zeros if layout == "volume" else np.empty)((len(tables), *space), dtype=dtype)
    for place, table in zip(out, tables):
        if table is None:
            place[...] = np.nan
        else:
            _gather_maps(table[0][k : k + 1], table[1], grid, layout, place[None])
    return out


def _picked_counts(blocks: list, picks, bounds: np.ndarray) -> np.ndarray:
    """Counts of a chunk of seeds over the cube's sparse blocks, their weights made here from their selections."""
    from .. import counts as _counts

    w = picks.toarray()
    return _counts._summed_counts(blocks, [w[:, a:b] for a, b in itertools.pairwise(bounds)], np.zeros(0, np.int64))


def _lazy_rows(rows, dtype) -> da.Array:
    """A CSR ``(seed, study)`` matrix as a Dask array of chunks of seeds (up to 4 MB each), the matrix one key."""
    import uuid

    from dask.highlevelgraph import HighLevelGraph

    n, n_cols = rows.shape
    per = max(1, (1 << 22) // max(1, n_cols * np.dtype(dtype).itemsize))
    name = f"seed-study-{uuid.uuid4().hex}"
    graph: dict = {f"{name}-rows": rows}
    graph.update(
        {(name, i, 0): (_dense_rows, f"{name}-rows", lo, lo + per, dtype) for i, lo in enumerate(range(0, n, per))}
    )
    chunks = (tuple(min(per, n - lo) for lo in range(0, n, per)), (n_cols,))
    return da.Array(HighLevelGraph.from_collections(name, graph, ()), name, chunks, meta=np.empty((0, 0), dtype))


def _dense_rows(rows, lo: int, hi: int, dtype) -> np.ndarray:
    return rows[lo:hi].toarray().astype(dtype, copy=False)


#: Seeds per Dask chunk in the voxel layout (a map's chunk 4 x 228,453 float32 = 3.7 MB): few enough chunk writes.
_VOXEL_SEEDS_PER_CHUNK = 4


def _roi_block(voxels: list[np.ndarray], grid: Grid, layout: str = "volume") -> np.ndarray:
    """The ROI masks of a chunk of seeds: ``(n_seeds, *space)`` bool."""
    size = grid.n_mask if layout == "voxel" else int(np.prod(grid.shape))
    out = np.zeros((len(voxels), size), dtype=bool)
    for i, v in enumerate(voxels):
        out[i, grid.mask_index[v] if layout == "voxel" else v] = True
    return out if layout == "voxel" else out.reshape(len(voxels), *grid.shape)


def _roi_stack(rois: list[SeedROI], grid: Grid, layout: str, per: int, space: tuple) -> da.Array:
    """The batch's ROI masks, lazy: one task (and one stored chunk) per ``per`` seeds, as the maps."""
    import uuid

    from dask.highlevelgraph import HighLevelGraph

    if not rois:
        return da.zeros((0, *space), dtype=bool)
    # the graph written out: a thousand seeds are 250 tasks, with no tokenising of the voxel lists
    name = f"roi-masks-{uuid.uuid4().hex}"
    parts = [rois[i : i + per] for i in range(0, len(rois), per)]
    zeros = (0,) * len(space)
    graph: dict[Key, Any] = {
        (name, i, *zeros): (_roi_block, [roi.voxels for roi in part], grid, layout) for i, part in enumerate(parts)
    }
    chunks = (tuple(len(p) for p in parts), *((n,) for n in space))
    meta = np.empty((0,) * (1 + len(space)), dtype=bool)
    return da.Array(HighLevelGraph.from_collections(name, graph, dependencies=()), name, chunks, dtype=bool, meta=meta)


def _batch_maps(act, grid: Grid, selected, valid, per: int, names: list, q, prior, dtype, layout, pre) -> list:
    """The batch's maps, lazy, ``(seed, *space)`` each: per chunk of ``per`` seeds one task with their counts and
    statistics (in-mask tables, a few MB), then one task per map that gathers its chunk (no block of all nine)."""
    import uuid

    from dask.highlevelgraph import HighLevelGraph

    n, n_studies = len(valid), act.sizes["study"]
    starts = range(0, n, per)
    total = grouped_counts(act, np.ones((1, n_studies), dtype=bool), grid)
    layers, deps = dict(total.dask.layers), dict(total.dask.dependencies)
    data = canonical(act)
    if _local_scheduler() and is_block_cube(data):  # each task makes its seeds' weights (no matrix of them all)
        keys, bounds = list(_flat_keys(data.__dask_keys__())), np.cumsum([0, *data.chunks[0]])
        counts: list = [(_picked_counts, keys, selected[lo : lo + per], bounds) for lo in starts]
    else:
        data = grouped_counts(act, selected.toarray(), grid, groups_per_chunk=per)
        counts = list(_flat_keys(data.__dask_keys__()))
    layers.update(data.dask.layers)
    deps.update(data.dask.dependencies)
    token = uuid.uuid4().hex
    tables = f"seed-tables-{token}"
    n_sel = np.diff(selected.indptr)
    stats = (n_studies, q, prior, grid, dtype, pre.name)
    layers[tables] = {
        (tables, i): (_group_maps, c, (total.name, 0, 0), n_sel[lo : lo + per], valid[lo : lo + per], *stats)
        for i, (lo, c) in enumerate(zip(starts, counts))
    }
    deps[tables] = {*data.__dask_layers__(), *total.__dask_layers__()}
    space = grid.shape if layout == "volume" else (grid.n_mask,)
    zeros = (0,) * len(space)
    outs = [f"{name}-{token}" for name in names]
    for k, out in enumerate(outs):
        layers[out] = {(out, i, *zeros): (_group_map, (tables, i), k, grid, layout, dtype) for i in range(len(starts))}
        deps[out] = {tables}
    graph = HighLevelGraph(layers, deps)
    chunks = (tuple(min(per, n - lo) for lo in starts), *((m,) for m in space))
    meta = np.empty((0,) * (1 + len(space)), dtype=dtype)
    return [da.Array(graph, out, chunks, meta=meta) for out in outs]


def seed_batch(
    act: xr.DataArray,
    seeds,
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
        ``n_selected (seed)``, ``valid (seed)``, ``selected (seed, study)`` and
        ``overlap (seed, study)`` (lazy, over sparse rows kept in the graph),
        ``description (seed)``; provenance attrs
        as for one seed plus n_seeds, n_valid_seeds, by_label and separate.
        A seed that selects no study (or every study, or has no voxel in the
        brain mask) gets NaN maps and a
        :class:`~xcoact.errors.DegenerateSeedWarning` naming it.

    Notes
    -----
    Cost: the selections are computed now: from the peaks near each ROI (a
    few ms per seed) for fewer than 16 seeds, else by one sparse product per
    study chunk over the index, which this call then builds (seconds, once).
    Computing maps builds the per-study index once (the
    seed-independent step) and then costs one gather-and-count plus the
    statistics per seed; writers compute a few seeds at a time, so every
    seed's maps are never in memory together.
    """
    _check_cube(act)
    pre = _preset_of(act, preset)
    rule = check_rule(
        pre.select if select is None else select, threshold, r=r, k=k, coords=separate or uses_coords(seeds, separate)
    )
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    dtype = _check_dtype(dtype)
    if layout not in ("volume", "voxel"):
        raise ParameterError(
            f"layout={layout!r} is not known; expected 'volume' (maps over x, y, z) or 'voxel' (in-mask voxels)."
        )
    grid = _grid(act)
    rois = seed_set(seeds, grid, r, by_label=by_label, labels=labels, separate=separate)
    n_studies = act.sizes["study"]
    if rule.rule in ("distance", "nearest") and any(roi.xyz is None for roi in rois):
        images = [roi.name for roi in rois if roi.xyz is None]
        raise ParameterError(
            f"select={rule.rule!r} measures millimetres from seed coordinates, but seeds {images[:5]} are images; "
            "pass coordinates, or use select='focus' or 'overlap'."
        )
    from scipy import sparse

    got = _scores(act, rule, rois, grid)
    # overlaps and peak counts, mostly 0, kept compact (distances stay dense)
    score: Any = sparse.csr_matrix(got) if got.dtype.kind in "iu" else got
    if sparse.issparse(score):
        score.data = score.data.astype(np.min_scalar_type(int(score.data.max(initial=0))))  # counts: >= 0
    picks = []
    valid = np.zeros(len(rois), dtype=bool)
    problems = []
    for i, roi in enumerate(rois):
        row = score[i].toarray()[0].astype(np.int32) if sparse.issparse(score) else score[i]  # as the dense scores
        picks.append(np.zeros(0, dtype=np.int64))
        if roi.voxels.size == 0 and rule.rule in ("overlap", "focus"):
            problems.append(f"{roi.name!r} (no voxel in the brain mask)")
            continue
        reason = rule.degenerate(row, roi.voxels.size)
        if reason is None:
            picks[i] = np.flatnonzero(rule.apply(row, roi.voxels.size))
            valid[i] = True
        else:
            problems.append(f"{roi.name!r} ({reason})")
    advice = (
        "Check their ROI or lower the threshold."
        if rule.rule == "overlap"
        else "Check their ROI or the rule's parameters."
    )
    warn_degenerate(problems, len(rois), "seeds give NaN maps", advice)
    n_sel = np.array([p.size for p in picks], dtype=np.int64)
    cols = np.concatenate(picks).astype(np.int32)
    selected = sparse.csr_matrix((np.ones(cols.size, bool), cols, np.cumsum([0, *n_sel])), (len(rois), n_studies))

    names = pre.map_names(q, prior)
    space = grid.shape if layout == "volume" else (grid.n_mask,)
    space_dims = ("x", "y", "z") if layout == "volume" else ("voxel",)
    # seeds per task: a volume seed's maps are large already; in-mask maps are grouped so that writers make
    # fewer (costly) chunk writes
    per = _VOXEL_SEEDS_PER_CHUNK if layout == "voxel" else 1
    maps = _batch_maps(act, grid, selected, valid, per, names, q, prior, dtype, layout, pre)
    ds = _result(act, grid, names, {name: (("seed", *space_dims), m) for name, m in zip(names, maps)})
    ds = ds.assign_coords(seed=[roi.name for roi in rois])
    if layout == "voxel":
        ds = ds.assign_coords(
            voxel=(
                "voxel",
                grid.mask_flat,
                {
                    "long_name": "flat (C-order) index of the in-mask voxel in the (x, y, z) grid",
                    "note": "ds.coact.volumes() turns (seed, voxel) maps into (seed, x, y, z)",
                },
            )
        )
    ds["roi"] = (("seed", *space_dims), _roi_stack(rois, grid, layout, per, space))
    ds["n_roi"] = ("seed", np.array([roi.voxels.size for roi in rois], dtype=np.int64))
    ds["n_selected"] = ("seed", n_sel)
    ds["valid"] = ("seed", valid)
    # the selections and scores as lazy arrays over their compact rows (1,000 seeds of v7: 10 MB, not 71 MB)
    ds["selected"] = (("seed", "study"), _lazy_rows(selected, bool))
    ds[rule.score_name] = (("seed", "study"), _lazy_rows(score, np.int32) if sparse.issparse(score) else score)
    ds[rule.score_name].attrs["long_name"] = rule.score_long_name
    ds["description"] = ("seed", np.array([roi.description for roi in rois], dtype=str))
    ds["n_selected"].attrs["long_name"] = "studies selected by each seed"
    ds["valid"].attrs["long_name"] = "False where the seed's maps are NaN (degenerate selection or empty ROI)"
    ds.attrs = {
        **_provenance(act, names, rule, r, q, prior, None, pre),
        "analysis": "seed coactivation, batch",
        **({"seed_r": float(r)} if uses_coords(seeds, separate) else {}),
        "n_seeds": len(rois),
        "n_valid_seeds": int(valid.sum()),
        "by_label": int(by_label),
        "separate": int(separate),
        "layout": layout,
    }
    return ds


#: What a contrast does with studies both seeds select (see :func:`contrast`).
BOTH_RULES = ("exclude", "a", "b", "error")


def contrast(
    act: xr.DataArray,
    seed_a: Seed,
    seed_b: Seed,
    threshold: float | int | None = None,
    *,
    r: float = 6.0,
    select: SelectRule | None = None,
    k: int | None = None,
    both: BothRule = "exclude",
    q: float = 0.01,
    prior: float = 0.5,
    dtype: MapDtype | np.dtype = "float64",
    preset: PresetName | None = None,
    n_iter: int | None = None,
    seed: int | None = None,
) -> xr.Dataset:
    """Coactivation maps of the studies seed A selects against those seed B selects.

    Neurosynth's ``MetaAnalysis(dataset, ids, ids2)``: the nine maps with F =
    the studies selected by A and U = the studies selected by B (instead of
    all other studies), :ref:`semantics-maps`.  Both seeds are selected by the same
    rule and parameters (see :func:`seed`).

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    seed_a, seed_b : seed
        Any single seed :func:`seed` takes (ROI image or coordinates).
    threshold, r, select, k, q, prior, dtype, preset
        As in :func:`seed`.
    both : {"exclude", "a", "b", "error"}, default "exclude"
        Studies selected by both seeds: left out of both groups (and listed
        in ``both_id``), counted in A only, in B only, or an error.  They are
        never counted twice: Neurosynth 0.3.8 counts them in both groups,
        which can give probabilities above 1 (its issue #85).
    n_iter, seed : int, optional
        ALE cubes only: the contrast is NiMARE's ``ALESubtraction``
        (:func:`xcoact.stats.ale.contrast`) with this many label permutations
        (default 5000) drawn from ``seed``.

    Returns
    -------
    xarray.Dataset
        The nine maps (lazy); ``roi_a``, ``roi_b``; the rule's score for each
        seed (``{score}_a``, ``{score}_b``, dim ``study``); ``group (study)``:
        1 in A, 2 in B, 0 in neither (or excluded); ``selected_id`` (group A),
        ``selected_b_id`` (group B) and ``both_id`` (selected by both).
        attrs: provenance as for :func:`seed`, with ``seed_a``, ``seed_b``,
        ``n_a``, ``n_b``, ``n_both``, ``both``; ``n_selected`` = n_a and
        ``n_unselected`` = n_b.

    Raises
    ------
    SelectionError
        A seed selects no study, or a group is empty after the studies both
        select are handled, or ``both="error"`` and some study is in both.

    Notes
    -----
    Cost: both selections are computed now (as for :func:`seed`); the maps
    are lazy and cost two gather-and-counts over the index plus the
    statistics.

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> c = act.coact.contrast(xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path(), 0.05)
    >>> c.attrs["n_a"] + c.attrs["n_b"] + c.attrs["n_both"] <= 100
    True
    """
    if isinstance(act, xr.DataArray) and act.attrs.get("kernel") == "ale":  # NiMARE's ALESubtraction
        from ..stats.ale import contrast as ale_contrast

        return ale_contrast(
            act, seed_a, seed_b, threshold, r=r, select=select, k=k, both=both, preset=preset, n_iter=n_iter, seed=seed
        )
    if n_iter is not None or seed is not None:
        raise ParameterError(
            "n_iter= and seed= apply to ALE cubes' contrasts (ALESubtraction); the MKDA contrast "
            "needs none (for its FWE: maps.coact.fwe(n_iter=, seed=))."
        )
    _check_cube(act)
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    dtype = _check_dtype(dtype)
    if not isinstance(both, str) or both not in BOTH_RULES:
        raise ParameterError(f"both={both!r} is not known; expected one of {', '.join(map(repr, BOTH_RULES))}.")
    for name, s in (("seed_a", seed_a), ("seed_b", seed_b)):
        if is_batch(s):
            raise ParameterError(f"{name} is a list of seeds; a contrast takes one seed on each side.")
    pre = _preset_of(act, preset)
    rule = check_rule(
        pre.select if select is None else select, threshold, r=r, k=k, coords=is_coords(seed_a) and is_coords(seed_b)
    )
    grid = _grid(act)
    in_a, in_b, overlap, rois, scores = contrast_groups(act, (seed_a, seed_b), pre, rule, grid, r, both)
    ids = act["study"].values
    n_a, n_b = int(in_a.sum()), int(in_b.sum())
    names = pre.map_names(q, prior)
    # the maps take a and the total a + b over the two groups only
    stack = _map_stack(act, grid, [in_a, in_a | in_b], n_a, n_b, q, prior, dtype, pre)
    ds = _result(act, grid, names, {name: (("x", "y", "z"), stack[i]) for i, name in enumerate(names)})
    for side, roi, score in (("a", rois[0], scores[0]), ("b", rois[1], scores[1])):
        ds[f"roi_{side}"] = roi.variable
        ds[f"{rule.score_name}_{side}"] = ("study", score)
        ds[f"{rule.score_name}_{side}"].attrs["long_name"] = f"{rule.score_long_name} (seed {side.upper()})"
    group = np.where(in_a, 1, np.where(in_b, 2, 0)).astype(np.int8)
    ds["group"] = ("study", group, {"long_name": "1: group A (selected), 2: group B (compared with), 0: neither"})
    ds["selected_id"] = ("selected", ids[in_a], {"long_name": "ids of the group A studies"})
    ds["selected_b_id"] = ("selected_b", ids[in_b], {"long_name": "ids of the group B studies"})
    ds["both_id"] = ("both", ids[overlap], {"long_name": f"ids of the studies both seeds select (both={both!r})"})
    ds.attrs = {
        **_provenance(act, names, rule, r, q, prior, rois[0].attrs["n_roi"], pre),
        "analysis": "contrast (seed A vs seed B)",
        "seed_a": describe_seed(seed_a, r),
        "seed_b": describe_seed(seed_b, r),
        "n_roi_a": int(rois[0].attrs["n_roi"]),
        "n_roi_b": int(rois[1].attrs["n_roi"]),
        "n_a": n_a,
        "n_b": n_b,
        "n_both": int(overlap.sum()),
        "both": both,
        "n_selected": n_a,
        "n_unselected": n_b,
    }
    return ds


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


def _study_mask(act: xr.DataArray, ids, name: str) -> np.ndarray:
    """Which studies of the cube ``ids`` names, as a bool mask; unknown ids are an error."""
    import pandas as pd

    from ..errors import SelectionError

    if isinstance(ids, (str, bytes, int, np.integer)):
        ids = [ids]
    values = np.asarray(ids.values if isinstance(ids, (xr.DataArray, pd.Index, pd.Series)) else list(ids), dtype=object)
    study = act["study"].values
    if values.size == 0:
        raise SelectionError(
            f"{name} is empty: no study selected, so there is nothing to compare. Pass at least one study id."
        )
    if study.dtype.kind in "iu":
        # int ids (PubMed ids): accept ints and their decimal strings alike
        def as_int(v):
            try:
                if isinstance(v, (bool, np.bool_)):
                    return None
                out = int(v) if isinstance(v, (int, np.integer)) else int(str(v).strip())
                return out if str(out) == str(v).strip() or isinstance(v, (int, np.integer)) else None
            except (TypeError, ValueError, OverflowError):
                return None

        keys = [as_int(v) for v in values]
        ok = np.array([k is not None for k in keys])
        wanted = np.array([k if k is not None else 0 for k in keys], dtype=np.int64)
    else:
        wanted = np.array([str(v) for v in values], dtype=object)
        study = study.astype(str).astype(object)
        ok = np.ones(len(wanted), dtype=bool)
    known = ok & np.isin(wanted, study)
    if not known.all():
        unknown = [values[i] for i in np.flatnonzero(~known)]
        raise ParameterError(
            f"{name}: {len(unknown)} of {len(values)} id(s) are not studies of the cube (e.g. "
            f"{', '.join(repr(u) for u in unknown[:5])}); the cube's {len(study)} study ids look like "
            f"{', '.join(repr(s) for s in study[:3].tolist())}. Pass ids from act['study'] (keep only the studies "
            "the database holds)."
        )
    return np.isin(study, wanted[known])


def meta(act: xr.DataArray, ids, *, q: float = 0.01, prior: float = 0.5, ids2=None) -> xr.Dataset:
    """Meta-analysis maps of an explicit study selection: those studies against the rest.

    Matches Neurosynth 0.3.8 ``meta.MetaAnalysis(dataset, ids, ids2=None,
    q=0.01, prior=0.5, min_studies=1)``: the same nine maps (:ref:`semantics-maps`)
    as :func:`seed`, with the selection given as study ids instead of drawn
    from a seed region.

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    ids : sequence of study ids
        The selected studies (``F``).  Ids are matched to ``act["study"]``;
        for integer ids (PubMed ids) their decimal strings work too.
        Repeats count once.
    q : float, default 0.01
        False discovery rate of the two ``*_FDR_{q}`` maps.
    prior : float, default 0.5
        Uniform prior P(selected) of the two ``*_given_pF`` maps.
    ids2 : sequence of study ids, optional
        A second list to contrast with (``U``): the studies in neither list
        are left out, as in Neurosynth's ``ids2`` (``N = n_F + n_U``).  The two
        lists must not share a study.

    Returns
    -------
    xarray.Dataset
        The nine maps (float64, dims ``x, y, z``, lazy), ``selected_id
        (selected)`` (the ids of ``F``, in cube order) and, with ``ids2``,
        ``contrast_id (contrast)``; ``attrs``: title, analysis
        (``"meta-analysis"``, or ``"meta-analysis contrast"`` with ``ids2``),
        database, r (kernel radius), selection, q, prior, min_studies,
        n_studies (the studies compared: the whole cube, or the two lists),
        n_selected, n_unselected, maps, preset, reference and xcoact_version.

    Raises
    ------
    ParameterError
        Ids that are not studies of the cube (a few are named), lists that
        overlap, a bad ``q`` or ``prior``, a cube built with another preset
        than ``"neurosynth"``.
    SelectionError
        No study selected, or every study (no study left to compare with).

    Notes
    -----
    Cost: the selection is checked now (a lookup of the ids); the maps are
    lazy, computed exactly like a seed's (one gather of the selected
    studies' index entries per computation once the cube's index is cached).

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> ds = act.coact.meta(act["study"].values[:10])
    >>> ds.attrs["analysis"], ds.attrs["n_selected"], ds.attrs["n_unselected"]
    ('meta-analysis', 10, 90)
    """
    from ..errors import SelectionError

    _check_cube(act)
    built = str(act.attrs.get("preset", "neurosynth"))
    if built != "neurosynth":
        # the maps below are Neurosynth's MetaAnalysis; another preset's statistics are not wired up here
        raise ParameterError(
            f"meta-analysis of a study list follows Neurosynth 0.3.8 MetaAnalysis, but the cube was built with "
            f"preset={built!r}; build it with xcoact.activations(db) (preset 'neurosynth') for meta, term and decode."
        )
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    selected = _study_mask(act, ids, "ids")
    n = int(selected.size)
    n_sel = int(selected.sum())
    grid = _grid(act)
    if ids2 is None:
        if n_sel == n:
            raise SelectionError(
                f"every one of the {n} studies of the cube is in ids, so there are no unselected studies to compare "
                "with. Select fewer studies, or pass ids2 (a second list) for a contrast."
            )
        other = None
        n_uns = n - n_sel
        groups = [selected, np.ones_like(selected)]
    else:
        other = _study_mask(act, ids2, "ids2")
        both = selected & other
        if both.any():
            shared = act["study"].values[both]
            raise ParameterError(
                f"ids and ids2 share {int(both.sum())} stud(y/ies) "
                f"(e.g. {', '.join(repr(s) for s in shared[:5].tolist())}); "
                "a contrast needs two disjoint lists. Remove them from one list."
            )
        n_uns = int(other.sum())
        # the maps take a and the total a + b over the two lists only
        groups = [selected, selected | other]
    names = map_names(q, prior)
    stack = _map_stack(act, grid, groups, n_sel, n_uns, q, prior, np.float64, get_preset("neurosynth"))
    ds = _result(act, grid, names, {name: (("x", "y", "z"), stack[i]) for i, name in enumerate(names)})
    ds["selected_id"] = ("selected", act["study"].values[selected])
    ds["selected_id"].attrs["long_name"] = "ids of the selected studies"
    if other is not None:
        ds["contrast_id"] = ("contrast", act["study"].values[other])
        ds["contrast_id"].attrs["long_name"] = "ids of the studies of ids2 (U)"
    # the keys _provenance gives a seed, minus the seed-selection ones (no threshold here)
    ds.attrs = {
        "title": "xcoact meta-analysis maps",
        "analysis": "meta-analysis" if other is None else "meta-analysis contrast",
        "database": str(act.attrs.get("database", "")),
        "cube": cube_token(act),
        "r": float(act.attrs.get("r", np.nan)),
        "selection": "explicit study ids"
        if other is None
        else "explicit study ids (ids) vs ids2; other studies left out",
        "q": q,
        "prior": prior,
        "min_studies": 1,
        "n_studies": n_sel + n_uns,  # the studies the maps compare (all of the cube without ids2)
        "n_selected": n_sel,
        "n_unselected": n_uns,
        "maps": ", ".join(names),
        "preset": "neurosynth",
        "reference": "Neurosynth 0.3.8 meta.MetaAnalysis (Yarkoni et al. 2011)",
        "xcoact_version": __version__,
    }
    return ds


__all__.append("meta")
