"""Many seeds at once (``seed_batch``): maps with a ``seed`` dimension, a chunk of seeds per task."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import xarray as xr

from ..blocks import is_block_cube, release_freed
from ..choices import Layout, MapDtype, PresetName, SelectRule
from ..counts import _summed_counts, canonical, grouped_counts
from ..errors import ParameterError
from ..presets import get_preset
from ..result import _provenance, _result
from ..roi import SeedROI, seed_set, uses_coords
from ..select import check_rule, warn_degenerate
from ..space import Grid
from ..stats.neurosynth import pair_maps
from .pipeline import (
    _check_cube,
    _check_dtype,
    _check_unit_interval,
    _flat_keys,
    _grid,
    _local_scheduler,
    _preset_of,
    _scores,
)

if TYPE_CHECKING:
    from dask.typing import Key

__all__ = ["seed_batch"]


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
    w = picks.toarray()
    return _summed_counts(blocks, [w[:, a:b] for a, b in itertools.pairwise(bounds)], np.zeros(0, np.int64))


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
    release_freed()  # the selection's per-chunk temporaries (overlaps of every ROI) go back to the system
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
