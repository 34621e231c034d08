"""What every analysis shares: the cube's checks, per-study scores, and the maps' graph (grouped counts of
two groups -> the statistics -> lazy volumes, on the local schedulers or a cluster).
"""

from __future__ import annotations

from typing import cast

import dask.array as da
import numpy as np
import xarray as xr

from ..blocks import ActivationBlock, is_block_cube
from ..counts import canonical, grouped_counts, roi_overlaps, study_scores, view_to_grid_flat
from ..errors import ParameterError
from ..mapchunk import OneChunk
from ..presets import Preset, get_preset
from ..roi import SeedROI, grid_of
from ..select import SelectionRule, focus_counts, min_distances
from ..space import Grid
from ..stats.neurosynth import pair_maps


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
