"""Grouped counts over ``study``: the one reduction every analysis is made of.

A group of studies is a row of weights over the cube's studies (a seed's
selection, a contrast's side, every study, a permutation, a term's weights).
:func:`grouped_counts` sums, per in-mask voxel, the weights of the studies
active there - for many groups at once - as a Dask reduction over the cube's
own blocks: each study block gives its partial counts, and a sum tree adds
them.  Per-study scores (a seed's ROI overlap, the peaks in an ROI, the
distance to a seed) are the transposed reduction, over voxels for each study
(:func:`study_scores`).

The same functions serve every cube.  On a cube made of
:class:`~xcoact.blocks.ActivationBlock` s (what :func:`xcoact.activations`
returns, also after ``isel``, ``sel``, ``transpose``, ``chunk`` or
``persist``) a block's counts gather only its selected studies' sparse rows;
on any other boolean cube (a computed or hand-made array, ``act & mask``) a
block is a dense boolean array and its counts are a matrix product.  The
integers are the same.

A cube with values (``xcoact.activations(db, kernel="kda")``, ALE's modelled
activation) reduces through the same task structure with ``op=``: ``"sum"``
(the weighted sum of the values: a group's KDA density), ``"log1m_sum"`` (the
weighted sum of ``log1p(-value)``: ALE = ``1 - exp(.)``), or ``"count"`` (the
weighted count of studies whose value is not zero: the binary route).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import dask.array as da
import numpy as np
import xarray as xr

from .blocks import ActivationBlock, _count_dtype, is_block_cube, pieces_of, ranges
from .choices import CountOp
from .errors import ParameterError
from .space import Grid

__all__ = [
    "grouped_counts",
    "OPS",
    "selected_counts",
    "study_scores",
    "cube_peaks",
    "overlap_counts",
    "roi_overlaps",
    "ranges",
    "view_to_grid_flat",
]


def canonical(act: xr.DataArray) -> da.Array:
    """The cube's Dask array in ``(study, x, y, z)`` order, one block along each spatial axis.

    For a cube of :class:`~xcoact.blocks.ActivationBlock` s both steps are
    views (no rows are touched); a dense Dask cube keeps its spatial chunks.
    """
    act = act.transpose("study", "x", "y", "z")
    data = act.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(max(1, min(1024, act.sizes["study"])), -1, -1, -1))
    if is_block_cube(data) and any(len(c) > 1 for c in data.chunks[1:]):
        data = data.rechunk({1: -1, 2: -1, 3: -1})
    return data


def view_to_grid_flat(block: ActivationBlock, flat: np.ndarray) -> np.ndarray:
    """Flat indices in a canonical block's view -> flat indices in the full grid."""
    if block.is_full_view():
        return flat
    shape = [len(p) for p in block.pos]
    i, j, k = np.unravel_index(flat, shape)
    full = block.chunk.grid.shape
    return (block.pos[0][i] * full[1] + block.pos[1][j]) * full[2] + block.pos[2][k]


def _in_mask_of_view(block: ActivationBlock) -> np.ndarray | None:
    """In-mask voxel numbers of the full grid at the view's in-mask voxels (C order of the view)."""
    if block.is_full_view():
        return None  # the identity: the view's in-mask order is the grid's
    voxels = block.view_mask_voxels()
    return voxels[voxels >= 0]


def _block_counts(block, weights: np.ndarray, mask_flat: np.ndarray) -> np.ndarray:
    """Counts of one study block for each group: ``(1, n_groups, n_mask_view)``.

    ``weights`` is ``(n_groups, n_block_studies)``; ``mask_flat`` the view's
    in-mask voxels as flat indices of the block's spatial box (dense blocks).
    """
    n_groups = weights.shape[0]
    if isinstance(block, ActivationBlock):
        out = None
        start = 0
        for piece in pieces_of(block):
            n = len(piece.rows)
            w = weights[:, start : start + n]
            start += n
            part = _piece_counts(piece, w)
            out = part if out is None else out + part
        if out is None:
            out = np.zeros((n_groups, len(mask_flat)), dtype=np.int32)
        return out[None]
    dense = np.asarray(block).reshape(block.shape[0], -1)[:, mask_flat]
    dtype = np.int32 if np.issubdtype(weights.dtype, np.integer) or weights.dtype == bool else np.float64
    return (weights.astype(dtype) @ dense.astype(dtype))[None]


def _piece_counts(piece: ActivationBlock, w: np.ndarray, crop: bool = True) -> np.ndarray:
    chunk = piece.chunk
    m = chunk.grid.n_mask
    decoded = None  # the int32 rows, decoded only for weights other than 0/1
    integer = np.issubdtype(w.dtype, np.integer) or w.dtype == bool
    rows_all = piece.rows
    full_chunk = len(rows_all) == chunk.n_studies and np.array_equal(rows_all, np.arange(chunk.n_studies))
    out = np.zeros((w.shape[0], m), dtype=np.int32 if integer else np.float64)
    for g in range(w.shape[0]):
        wg = w[g]
        nz = np.flatnonzero(wg)
        if nz.size == 0:
            continue
        if integer and full_chunk and nz.size == wg.size and np.all(wg == 1):
            out[g] = chunk.totals()  # every study of the chunk: kept once built
            continue
        rows = rows_all[nz]
        if integer and np.all(wg[nz] == 1):
            ptr, low, pages = chunk.paged()
            out[g] = row_counts(ptr, low, rows, m, pages)
        else:
            indptr, indices = decoded = decoded or chunk.rows()
            picked = indices[ranges(indptr[rows], indptr[rows + 1])]
            lens = indptr[rows + 1] - indptr[rows]
            out[g] += np.bincount(picked, weights=np.repeat(wg[nz].astype(np.float64), lens), minlength=m).astype(
                out.dtype
            )
    voxels = _in_mask_of_view(piece) if crop else None
    return out if voxels is None else out[:, voxels]


def row_counts(ptr: np.ndarray, low: np.ndarray, rows: np.ndarray, m: int, pages: int = 1) -> np.ndarray:
    """Per voxel, how many of the ``rows`` are active there: ``(m,)``, uint16 (or int32 past 65,535 rows).

    The rows as :func:`count_rows` reads them.  A count never exceeds the
    number of rows summed, so it fits this type.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros(m, dtype=_count_dtype(rows.size))
    count_rows(ptr, low, rows, out, pages)
    return out


def count_rows(ptr: np.ndarray, low: np.ndarray, rows: np.ndarray, out: np.ndarray, pages: int = 1) -> np.ndarray:
    """Add 1 to ``out`` at each voxel of each of the ``rows`` (in place; ``out`` is returned).

    The rows are CSR (``pages=1``) or a binary chunk's 16-bit pages
    (:meth:`xcoact.blocks.StudyChunk.paged`).  A compiled loop: no gathered
    copy of the entries, no widening to 64 bits (``np.bincount``), and a
    narrow ``out`` (uint16 for up to 65,535 rows) stays in cache.  The caller
    sizes ``out`` so that no count overflows.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.size:
        _count_kernel()(np.ascontiguousarray(ptr, dtype=np.int64), low, rows, int(pages), out)
    return out


# compiled by _count_kernel() (plain Python so that import is cheap); not mutated: numba cannot compile mutmut's wrapper
def _count_rows(ptr, low, rows, pages, out):  # pragma: no mutate block
    for i in range(rows.size):
        r = rows[i] * pages
        for p in range(pages):
            for k in range(ptr[r + p], ptr[r + p + 1]):
                out[(p << 16) + low[k]] += 1


@functools.cache
def _count_kernel():
    from .stats.components import compiled

    return compiled(_count_rows)


def dense_by_study(data: da.Array, itemsize: int | None = None) -> da.Array:
    """A dense cube rechunked to whole volumes, a few dozen studies per block (about 64 MB each).

    A reduction over a dense cube reads every voxel of a study at once;
    ``itemsize`` defaults to the cube's own.
    """
    volume = int(np.prod(data.shape[1:])) * (data.dtype.itemsize if itemsize is None else itemsize)
    return data.rechunk({0: max(1, (1 << 26) // max(1, volume)), 1: -1, 2: -1, 3: -1})


def grouped_counts(
    act: xr.DataArray, weights, grid: Grid, *, groups_per_chunk: int | None = None, op: CountOp | None = None
) -> da.Array:
    """Per in-mask voxel, the summed weights of the active studies of each group (lazy).

    On a cube with values the weights multiply each study's value (``op``).

    Parameters
    ----------
    act : xarray.DataArray
        A boolean cube ``(study, x, y, z)`` (any dimension order).
    weights : (n_groups, n_studies) array-like of bool or int (or float)
        One row per group of studies, in the cube's study order.
    grid : Grid
        The cube's grid (:func:`xcoact.roi.grid_of`); its mask says which
        voxels are counted, in C order over the cube's ``x, y, z``.
    groups_per_chunk : int, optional
        Groups per chunk of the result (all in one by default); a task counts
        one study block for one chunk of groups.
    op : {"sum", "count", "log1m_sum"}, optional
        What is summed per group and voxel, over the studies ``s`` with weight
        ``w_s`` and value ``v_s`` there (see :data:`OPS`): ``"sum"``
        ``w_s * v_s`` (the default; on a boolean cube the count itself);
        ``"count"`` ``w_s`` where ``v_s != 0`` (binary maps of any cube);
        ``"log1m_sum"`` ``w_s * log1p(-v_s)``, values in ``[0, 1)`` (ALE of
        the group = ``1 - exp(result)``).

    Returns
    -------
    (n_groups, n_mask) dask array
        int32 for integer or boolean weights on a boolean cube (or with
        ``"count"``), float64 otherwise.

    Notes
    -----
    Cost: one task per study block plus a sum tree.  A sparse block gathers
    the rows of its studies with non-zero weight (a row of all ones uses the
    chunk's kept totals); a dense block is a ``(groups x studies) @
    (studies x voxels)`` product.
    """
    weights = np.atleast_2d(np.asarray(weights))
    data = canonical(act)
    if op is not None and op not in OPS:
        raise ParameterError(f"op={op!r} is not known; expected one of {list(OPS)}.")
    if not (op in (None, "sum", "count") and data.dtype == bool) and not (op == "count" and is_block_cube(data)):
        return _grouped_values(data, weights, grid, op or "sum", groups_per_chunk)
    n_groups = weights.shape[0]
    m = grid.n_mask
    # bool weights stay bool (a 1,000-seed batch's groups are 14 MB so, 57 MB as int32)
    integer = np.issubdtype(weights.dtype, np.integer) or weights.dtype == bool
    dtype = np.int32 if integer else np.float64
    mask_flat = np.zeros(0, dtype=np.int64)
    if not is_block_cube(data):
        data = dense_by_study(data)
        mask_flat = grid.mask_flat
    per = n_groups if not groups_per_chunk else int(groups_per_chunk)
    if not _local_scheduler():
        return _placed_counts(data, weights, mask_flat, max(1, per), m, dtype)
    w = da.from_array(weights, chunks=(max(1, per), data.chunks[0]), name=False)
    # one task per chunk of groups sums over every study block: no per-block partial results wait in
    # memory for a sum tree (a 1,000-seed batch would hold thousands of them)
    return da.blockwise(
        _summed_counts,
        "gm",
        data,
        "bxyz",
        w,
        "gb",
        mask_flat,
        None,
        new_axes={"m": m},
        concatenate=False,
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )


#: Inside :func:`one_placement`: each cube's :func:`_by_worker`, asked of the scheduler once.
_PLACEMENT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("xcoact_placement", default=None)


@contextlib.contextmanager
def one_placement():
    """Within this block a cube's placement on a cluster is asked once (a seed's selection, then its counts)."""
    token = _PLACEMENT.set({})
    try:
        yield
    finally:
        _PLACEMENT.reset(token)


def _by_worker(data: da.Array) -> tuple[list[list[int]], int, list | None]:
    """The study blocks grouped by the worker holding them (alone where none does), the largest group held, and
    each block's future if every block is one (a cube persisted on this client), else None."""
    memo = _PLACEMENT.get()
    if memo is not None and data.name in memo:
        return memo[data.name]
    from dask.base import get_scheduler
    from dask.core import flatten

    client = getattr(get_scheduler(), "__self__", None)  # a dask.distributed Client computes through its .get
    where: dict = {}
    futures: dict = {}
    if client is not None and hasattr(client, "who_has"):
        from distributed import futures_of

        futures = {f.key: f for f in futures_of(data)}  # a persisted cube's blocks
        where = client.who_has(list(futures.values())) if futures else {}
    groups: dict = {}
    keys = list(flatten(data.__dask_keys__()))
    for i, key in enumerate(keys):
        holders = sorted(where.get(key) or ())
        groups.setdefault(holders[0] if holders else i, []).append(i)
    held = [len(g) if isinstance(w, str) else 0 for w, g in groups.items()]
    blocks = [futures.get(k) for k in keys]
    placed = list(groups.values()), int(np.argmax(held)), blocks if all(f is not None for f in blocks) else None
    if memo is not None:
        memo[data.name] = placed
    return placed


def _placed_counts(data: da.Array, weights: np.ndarray, mask_flat: np.ndarray, per: int, m: int, dtype) -> da.Array:
    """:func:`grouped_counts` on a cluster: per chunk of groups one task per worker over the blocks it keeps (no
    block moves); the one holding most blocks adds the others' counts (Dask runs a task where its inputs' bytes are)."""
    from dask.base import tokenize
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph

    keys = list(flatten(data.__dask_keys__()))  # one spatial block per study block (canonical)
    groups, home, _ = _by_worker(data)
    bounds = np.cumsum([0, *data.chunks[0]])
    token = tokenize(data.name, weights, mask_flat, per)
    part, name = f"worker-counts-{token}", f"grouped-counts-{token}"
    parts: dict = {}
    added: dict = {}

    def task(g0: int, group: list[int]) -> tuple:
        return [keys[b] for b in group], [weights[g0 : g0 + per, bounds[b] : bounds[b + 1]] for b in group], mask_flat

    for i, g0 in enumerate(range(0, weights.shape[0], per)):
        others = [(part, i, j) for j in range(len(groups)) if j != home]
        parts.update({key: (_worker_counts, *task(g0, groups[key[2]])) for key in others})
        added[(name, i, 0)] = (_home_counts, *task(g0, groups[home]), others, np.dtype(dtype))
    layers, deps = dict(data.dask.layers), dict(data.dask.dependencies)
    layers[name], deps[name] = added, set(data.__dask_layers__())
    if parts:
        layers[part], deps[part] = parts, set(data.__dask_layers__())
        deps[name].add(part)
    sizes = tuple(min(per, weights.shape[0] - g0) for g0 in range(0, weights.shape[0], per))
    return da.Array(HighLevelGraph(layers, deps), name, chunks=(sizes, (m,)), meta=np.empty((0, 0), dtype=dtype))


def _worker_counts(blocks, weights, mask_flat: np.ndarray) -> np.ndarray:
    out = _summed_counts(blocks, weights, mask_flat)  # sent to the home worker's task: 16-bit where the counts fit
    return out.astype(np.uint16) if out.dtype.kind in "iu" and out.size and 0 <= out.min() <= out.max() < 65536 else out


def _home_counts(blocks, weights, mask_flat: np.ndarray, parts: list, dtype) -> np.ndarray:
    return sum(parts, _summed_counts(blocks, weights, mask_flat).astype(dtype))  # its own blocks' and the others'


def _summed_counts(blocks, weights, mask_flat: np.ndarray) -> np.ndarray:
    """Counts of one chunk of groups over all study blocks (nested lists from ``blockwise``)."""
    flat = []
    for block, w in zip(blocks, weights):
        while isinstance(block, list):  # the single spatial block of each study block
            block = block[0]
        flat.append((block, w))
    if flat and all(isinstance(b, ActivationBlock) for b, _ in flat):
        got = _sparse_summed(flat)
        if got is not None:
            return got
    total = None
    for block, w in flat:
        part = _block_counts(block, w, mask_flat)[0]
        if total is None:
            total = part
        elif total.dtype == part.dtype:
            total += part
        else:
            total = total + part
    assert total is not None  # a chunk of groups spans one study block at least
    return total


def _sparse_summed(flat: list) -> np.ndarray | None:
    """:func:`_summed_counts` of sparse blocks that show the same voxels: each group counted over all blocks at once.

    A group of 0/1 weights is one accumulator for the whole cube, in 16 bits
    while its studies number at most 65,535 (a count never exceeds them), that
    a compiled loop increments at each selected row's voxels; a chunk whose
    every study is in the group adds its kept totals instead.  Other weights
    take the per-block route.  None when the blocks show different voxels.
    """
    pieces = []
    for block, w in flat:
        start = 0
        for piece in pieces_of(block):
            n = len(piece.rows)
            pieces.append((piece, w[:, start : start + n]))
            start += n
    if not pieces:
        return None
    first = pieces[0][0]
    if any(
        p.pos is not first.pos and not all(np.array_equal(a, b) for a, b in zip(p.pos, first.pos))
        for p, _ in pieces[1:]
    ):
        return None
    n_groups = pieces[0][1].shape[0]
    integer = all(np.issubdtype(w.dtype, np.integer) or w.dtype == bool for _, w in pieces)
    m = first.chunk.grid.n_mask
    out = np.zeros((n_groups, m), dtype=np.int32 if integer else np.float64)
    for g in range(n_groups):
        rows_of = [(piece, np.flatnonzero(w[g])) for piece, w in pieces]
        binary = integer and all(np.all(w[g, nz] == 1) for (_, w), (_, nz) in zip(pieces, rows_of))
        if not binary:
            for piece, w in pieces:
                out[g] += _piece_counts(piece, w[g : g + 1], crop=False)[0]
            continue
        jobs = []
        for piece, nz in rows_of:
            if nz.size == 0:
                continue
            chunk = piece.chunk
            if nz.size == chunk.n_studies and _is_whole_chunk(piece):
                out[g] += chunk.totals()  # every study of the chunk: kept once built
            else:
                jobs.append((*chunk.paged(), piece.rows[nz]))
        for narrow in _count_jobs(jobs, m):
            out[g] += narrow
    voxels = _in_mask_of_view(first)
    return out if voxels is None else out[:, voxels]


#: Fewest selected rows per thread when a group's count is split over threads (see xcoact._threads).
_ROWS_PER_THREAD = 256


def _count_jobs(jobs: list, m: int) -> list[np.ndarray]:
    """The rows of ``jobs`` (``(ptr, low, pages, rows)``, see :func:`count_rows`) counted in a few threads.

    Each thread takes the same share of every job's rows and counts them into
    its own accumulator (uint16 while the group has at most 65,535 rows); the
    partial counts sum to the group's count.
    """
    from ._threads import split

    n_rows = sum(job[-1].size for job in jobs)
    dtype = _count_dtype(n_rows)

    def part(lo: int, hi: int) -> np.ndarray:
        acc = np.zeros(m, dtype=dtype)
        for ptr, low, pages, rows in jobs:
            count_rows(ptr, low, rows[rows.size * lo // n_rows : rows.size * hi // n_rows], acc, pages)
        return acc

    if n_rows == 0:
        return []
    return split(part, n_rows, _ROWS_PER_THREAD)


def _is_whole_chunk(piece: ActivationBlock) -> bool:
    rows = piece.rows
    n = piece.chunk.n_studies
    return len(rows) == n and (n == 0 or (rows[0] == 0 and rows[-1] == n - 1 and bool(np.all(np.diff(rows) == 1))))


#: The reductions of :func:`grouped_counts`: what one study with weight ``w`` and value ``v`` adds at a voxel.
OPS = {
    "sum": "w * v",
    "count": "w where v != 0",
    "log1m_sum": "w * log1p(-v)",
}


def _op_terms(values: np.ndarray, op: str) -> np.ndarray:
    """What each study's value adds (before its weight), float64."""
    values = np.asarray(values, dtype=np.float64)
    if op == "sum":
        return values
    if op == "count":
        return (values != 0).astype(np.float64)
    with np.errstate(divide="ignore"):  # a value of 1 is certain activation: log1p(-1) = -inf, ALE 1
        return np.log1p(-values)


def _grouped_values(data: da.Array, weights: np.ndarray, grid: Grid, op: str, groups_per_chunk) -> da.Array:
    """:func:`grouped_counts` with an ``op`` over a cube's values: the same one-task-per-chunk-of-groups graph."""
    if op == "log1m_sum" and not np.issubdtype(data.dtype, np.floating):
        raise ParameterError(
            f"op='log1m_sum' sums log1p(-value) over probabilities in [0, 1) (ALE's modelled activation); this cube "
            f"holds {data.dtype} values. Use op='sum' or op='count', or a cube of a kernel with probabilities."
        )
    integer = op == "count" and (np.issubdtype(weights.dtype, np.integer) or weights.dtype == bool)
    dtype = np.int32 if integer else np.float64
    mask_flat = np.zeros(0, dtype=np.int64)
    if not is_block_cube(data):
        data = dense_by_study(data, itemsize=8)  # the values are read as float64
        mask_flat = grid.mask_flat
    per = weights.shape[0] if not groups_per_chunk else int(groups_per_chunk)
    w = da.from_array(weights, chunks=(max(1, per), data.chunks[0]), name=False)
    return da.blockwise(
        _summed_values,
        "gm",
        data,
        "bxyz",
        w,
        "gb",
        mask_flat,
        None,
        op,
        None,
        new_axes={"m": grid.n_mask},
        concatenate=False,
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )


def _summed_values(blocks, weights, mask_flat: np.ndarray, op: str) -> np.ndarray:
    """One chunk of groups over all study blocks (nested lists from ``blockwise``), float64 or int32 (counts)."""
    total = None
    for block, w in zip(blocks, weights):
        while isinstance(block, list):
            block = block[0]
        part = _block_values(block, w, mask_flat, op)
        total = part if total is None else total + part
    assert total is not None  # a chunk of groups spans one study block at least
    if op == "count" and np.issubdtype(weights[0].dtype, np.integer):
        return total.astype(np.int32)
    return total


def _block_values(block, weights: np.ndarray, mask_flat: np.ndarray, op: str) -> np.ndarray:
    """``(n_groups, n_mask_view)`` float64 of one study block: only studies with non-zero weight are read."""
    n_groups = weights.shape[0]
    if not isinstance(block, ActivationBlock):
        dense = np.asarray(block).reshape(block.shape[0], -1)[:, mask_flat]
        out = np.zeros((n_groups, dense.shape[1]), dtype=np.float64)
        for g in range(n_groups):
            nz = np.flatnonzero(weights[g])
            if nz.size:  # 0 * log1p(-1) would be NaN: studies out of the group are not read
                out[g] = weights[g, nz].astype(np.float64) @ _op_terms(dense[nz], op)
        return out
    total = None
    start = 0
    for piece in pieces_of(block):
        n = len(piece.rows)
        part = _piece_values(piece, weights[:, start : start + n], op)
        start += n
        total = part if total is None else total + part
    return np.zeros((n_groups, len(mask_flat)), dtype=np.float64) if total is None else total


def _piece_values(piece: ActivationBlock, w: np.ndarray, op: str) -> np.ndarray:
    chunk = piece.chunk
    m = chunk.grid.n_mask
    indptr, indices = chunk.rows()
    values = chunk.values()
    full_chunk = len(piece.rows) == chunk.n_studies and np.array_equal(piece.rows, np.arange(chunk.n_studies))
    out = np.zeros((w.shape[0], m), dtype=np.float64)
    for g in range(w.shape[0]):
        wg = w[g]
        nz = np.flatnonzero(wg)
        if nz.size == 0:
            continue
        if op == "sum" and full_chunk and nz.size == wg.size and np.all(wg == 1):
            out[g] = chunk.value_totals()  # every study of the chunk: kept once built
            continue
        rows = piece.rows[nz]
        take = ranges(indptr[rows], indptr[rows + 1])
        lens = indptr[rows + 1] - indptr[rows]
        terms = _op_terms(np.ones(take.size) if values is None else values[take], op)
        out[g] = np.bincount(indices[take], weights=np.repeat(wg[nz].astype(np.float64), lens) * terms, minlength=m)
    voxels = _in_mask_of_view(piece)
    return out if voxels is None else out[:, voxels]


def selected_counts(act: xr.DataArray, selected: np.ndarray, grid: Grid) -> tuple[da.Array, da.Array]:
    """Lazy per-voxel counts of active selected studies and of all studies, ``(n_mask,)`` each."""
    selected = np.asarray(selected, dtype=bool)
    both = grouped_counts(act, np.stack([selected, np.ones_like(selected)]), grid)
    return both[0], both[1]


def _block_scores(block, fn, n_out: int, dtype) -> np.ndarray:
    """``fn(chunk, view_block) -> (n_out, n_chunk_studies)`` per piece, on the block's rows: ``(n_out, n_rows)``."""
    parts = [_columns(fn(piece.chunk, piece), piece.rows) for piece in pieces_of(block)]
    return _joined(parts, n_out, dtype)


def _columns(scores, cols):
    """Columns ``cols`` of a chunk's scores, dense or sparse (a scipy CSC matrix: many ROIs' overlaps)."""
    return scores[:, cols] if hasattr(scores, "tocsc") else np.asarray(scores)[:, cols]


def _joined(parts: list, n_out: int, dtype):
    """Per-study scores joined along ``study``; sparse parts give one CSC matrix."""
    if parts and hasattr(parts[0], "tocsc"):
        from scipy import sparse

        return sparse.hstack(parts, format="csc", dtype=dtype)
    return np.concatenate(parts, axis=1).astype(dtype, copy=False) if parts else np.zeros((n_out, 0), dtype=dtype)


def study_scores(act: xr.DataArray, fn, n_out: int, dtype=np.int64) -> np.ndarray | None:
    """A per-study score from the sparse blocks' chunks, computed now: ``(n_out, n_studies)``.

    ``fn(chunk, block)`` returns ``(n_out, chunk.n_studies)`` for a
    :class:`~xcoact.blocks.StudyChunk` (its peaks; its rows once built) and
    the canonical view ``block`` showing part of it.  None for a cube that is
    not made of sparse blocks (it carries no peaks).
    """
    import dask

    data = canonical(act)
    if not is_block_cube(data):
        return None
    # the graph is tiny, so skip Dask's optimisation passes (they cost more)
    # pure=False: a key per call without hashing the arguments (the score function is a closure)
    if _local_scheduler():
        from dask.core import flatten
        from dask.local import get_sync
        from dask.optimization import cull

        keys = list(flatten(data.__dask_keys__()))
        graph, _ = cull(dict(data.__dask_graph__()), keys)
        if _blocks_ready(graph):
            # in this process a score is well under a millisecond per block, and the chunks hold their rows: the
            # blocks are taken (persisted) or made as views by running the cube's own graph here, in this thread,
            # and scored in one go - a tiny graph, for which Dask's collection machinery costs several times the work
            blocks = [graph[k] for k in keys]  # a persisted cube's graph holds its blocks
            if not all(isinstance(b, ActivationBlock) for b in blocks):
                blocks = get_sync(graph, keys)
            return _all_scores(blocks, fn, n_out, dtype)
    # elsewhere (a cluster): one task per worker over the blocks it keeps (a single task over all blocks
    # would pull every block, rows and all, onto one worker); only the scores travel
    groups, _, held = _by_worker(data)
    if held:  # persisted here: the tasks straight from the blocks' futures, no collection to optimise
        task = functools.partial(_all_scores, fn=fn, n_out=n_out, dtype=dtype)
        scored = held[0].client.gather(held[0].client.map(task, [[held[i] for i in g] for g in groups], pure=False))
    else:
        blocks = list(data.to_delayed(optimize_graph=False).ravel())
        parts = [dask.delayed(_all_scores, pure=False)([blocks[i] for i in g], fn, n_out, dtype) for g in groups]
        scored = dask.compute(*parts, optimize_graph=False)
    per_block: dict = {}
    for group, got in zip(groups, scored):
        cuts = np.cumsum([0, *(data.chunks[0][i] for i in group)])
        per_block.update((i, got[:, a:b]) for i, a, b in zip(group, cuts[:-1], cuts[1:]))
    return _joined([per_block[i] for i in sorted(per_block)], n_out, dtype)


def _blocks_ready(graph: dict) -> bool:
    """Whether making a cube's blocks from its graph is cheap: every chunk in it already holds its rows and totals.

    A cube's first computation builds each chunk's rows as it makes the
    chunk's block (one task per chunk, in parallel on Dask's threads); that
    must not happen one chunk after another in a single thread.
    """
    from .blocks import StudyChunk

    seen = False
    for value in graph.values():
        if isinstance(value, StudyChunk):
            chunks = [value]
        elif isinstance(value, ActivationBlock):
            chunks = [piece.chunk for piece in pieces_of(value)]
        else:
            continue
        seen = True
        if not all(c.built and c._totals is not None for c in chunks):
            return False
    return seen


def _all_scores(blocks: list, fn, n_out: int, dtype) -> np.ndarray:
    """:func:`_block_scores` of every block, joined along ``study``; the blocks split over the cores when each
    block's scores are many (a batch's ROIs: the compiled loops hold no GIL), in this thread otherwise."""
    from ._threads import split

    def part(a: int, b: int) -> list:
        return [_block_scores(x, fn, n_out, dtype) for x in blocks[a:b]]

    parts = split(part, len(blocks), 1 if n_out >= MANY_ROIS else max(1, len(blocks)))
    return _joined([s for got in parts for s in got], n_out, dtype)


def _local_scheduler() -> bool:
    """Whether Dask computes in this process (threads or synchronous), not on a cluster or in other processes."""
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler

    return get_scheduler() in (None, dask.threaded.get, dask.local.get_sync)


def _overlap_fn(roi_view_flat: np.ndarray):
    plans: dict = {}  # the ROI's plan, made once for the chunks of this call

    def fn(chunk, block):
        return chunk.overlap(view_to_grid_flat(block, roi_view_flat), plans)[None]

    return fn


def overlap_counts(act: xr.DataArray, roi: xr.DataArray, grid: Grid) -> np.ndarray:
    """ROI voxels active in each study (computed now; cheap).

    Parameters
    ----------
    act : xarray.DataArray
        The cube ``(study, x, y, z)``.
    roi : xarray.DataArray
        bool ``(x, y, z)`` on the cube's labels.
    grid : Grid

    Returns
    -------
    (n_studies,) int64 array

    Notes
    -----
    Sparse blocks: from the peaks whose sphere can reach the ROI (compiled
    from a chunk's second overlap on; see :meth:`~xcoact.blocks.StudyChunk.overlap`).  Dense cubes: only
    the ROI's bounding box of the cube is computed.
    """
    if roi.dims != ("x", "y", "z"):
        roi = roi.transpose("x", "y", "z")
    flat = np.flatnonzero(roi.values)
    got = study_scores(act, _overlap_fn(flat), 1)
    if got is not None:
        return got[0].astype(np.int64)
    where = np.nonzero(roi.values)
    if where[0].size == 0:
        return np.zeros(act.sizes["study"], dtype=np.int64)
    box = {d: slice(int(w.min()), int(w.max()) + 1) for d, w in zip("xyz", where)}
    # label-aligned (xarray broadcasting by name), whatever the cube's dimension order
    sub = act.isel(box) & roi.isel(box)
    return np.asarray(sub.sum(("x", "y", "z")).values, dtype=np.int64)


def roi_overlaps(act: xr.DataArray, rois, grid: Grid, *, sparse: bool = False):
    """ROI voxels active in each study, for each of several ROIs (computed now).

    Parameters
    ----------
    act : xarray.DataArray
    rois : sequence of SeedROI
        From :func:`xcoact.roi.seed_set` (voxels as flat indices of the
        cube's grid); an ROI without voxels gets zeros.
    grid : Grid
    sparse : bool, default False
        Return a scipy CSC matrix when the cube's blocks give one (16 ROIs or
        more): a batch's overlaps without the mostly-zero dense matrix.

    Returns
    -------
    (n_rois, n_studies) int32 array (or scipy sparse matrix)
    """
    if not len(rois):
        return np.zeros((0, act.sizes["study"]), dtype=np.int32)
    data = canonical(act)
    if is_block_cube(data):
        voxel_lists = [np.asarray(roi.voxels, dtype=np.int64) for roi in rois]

        def fn(chunk, block):
            flats = [view_to_grid_flat(block, v) for v in voxel_lists]
            if len(voxel_lists) >= MANY_ROIS:
                return _many_overlaps(chunk, flats, sparse)
            res = np.zeros((len(voxel_lists), chunk.n_studies), dtype=np.int32)
            for i, v in enumerate(flats):
                if v.size:
                    res[i] = chunk.overlap(v)
            return res

        # int32 all the way (dense, a batch of 1,000 seeds over v7 is 57 MB of scores; sparse, about 17 MB)
        scores = study_scores(act, fn, len(rois), np.int32)
        assert scores is not None  # a cube of sparse blocks has scores
        return scores
    out = np.zeros((len(rois), act.sizes["study"]), dtype=np.int32)
    for i, roi in enumerate(rois):
        if roi.voxels.size == 0:
            continue
        mask = np.zeros(int(np.prod(grid.shape)), dtype=bool)
        mask[roi.voxels] = True
        out[i] = overlap_counts(
            act, xr.DataArray(mask.reshape(grid.shape), dims=("x", "y", "z"), coords=grid.coords()), grid
        )
    return out


#: From this many ROIs on, a chunk's overlaps are one sparse product over its rows.
MANY_ROIS = 16


def _many_overlaps(chunk, rois: list[np.ndarray], compact: bool = False):
    """(n_rois, n_studies) overlaps of one chunk (CSC if ``compact``): each study's kept row looked up in an index of
    the ROIs by voxel, by a compiled loop (no int32 copy of the rows, no dense product)."""
    from scipy import sparse

    cols = [chunk.grid.mask_index[v] for v in rois]
    cols = [c[c >= 0] for c in cols]
    flat = np.concatenate([np.zeros(0, np.int64), *cols])
    vptr = np.zeros(chunk.grid.n_mask + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat, minlength=chunk.grid.n_mask), out=vptr[1:])
    vroi = np.repeat(np.arange(len(rois), dtype=np.int32), [len(c) for c in cols])[np.argsort(flat, kind="stable")]
    args = (*chunk.paged(), vptr, vroi, chunk.n_studies, np.zeros(len(rois), np.int32), np.empty(len(rois), np.int32))
    nnz = np.zeros(chunk.n_studies + 1, dtype=np.int64)
    hit = np.empty(_overlap_kernel()(*args, nnz[1:], vroi[:0], vroi[:0], False), dtype=np.int32)
    count = np.empty(hit.size, dtype=np.int32)
    _overlap_kernel()(*args, nnz[1:], hit, count, True)
    by_study = sparse.csr_matrix((count, hit, np.cumsum(nnz)), shape=(chunk.n_studies, len(rois)))
    return by_study.T if compact else by_study.toarray().T


# compiled by _overlap_kernel(); not mutated: numba cannot compile mutmut's wrapper
def _roi_hits(ptr, low, pages, vptr, vroi, n, acc, seen, nnz, hit, count, fill):  # pragma: no mutate block
    k = 0
    for s in range(n):
        t = 0
        for p in range(pages):
            for e in range(ptr[s * pages + p], ptr[s * pages + p + 1]):
                v = (p << 16) + low[e]
                for j in range(vptr[v], vptr[v + 1]):
                    if acc[vroi[j]] == 0:
                        seen[t] = vroi[j]
                        t += 1
                    acc[vroi[j]] += 1
        if fill:
            seen[:t].sort()
            for i in range(t):
                hit[k + i] = seen[i]
                count[k + i] = acc[seen[i]]
        for i in range(t):
            acc[seen[i]] = 0
        nnz[s] = t
        k += t
    return k


@functools.cache
def _overlap_kernel():
    from .stats.components import compiled

    return compiled(_roi_hits)


def _block_peaks(block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ijk, xyz and study row (in the block's row order) of every peak of a block's studies."""
    out = []
    start = 0
    for piece in pieces_of(block):
        ptr = piece.chunk.peak_ptr
        rows = piece.rows
        take = ranges(ptr[rows], ptr[rows + 1])
        lens = ptr[rows + 1] - ptr[rows]
        out.append((piece.chunk.ijk[take], piece.chunk.xyz[take], np.repeat(np.arange(len(rows)) + start, lens)))
        start += len(rows)
    if not out:
        return np.zeros((0, 3), np.int64), np.zeros((0, 3)), np.zeros(0, np.int64)
    ijk, xyz, row = zip(*out)
    return np.concatenate(ijk), np.concatenate(xyz), np.concatenate(row)


def cube_peaks(act: xr.DataArray):
    """The peaks of a cube's studies as one :class:`~xcoact.blocks.StudyChunk`, in the cube's study order.

    Computed now (the peaks only: no rows are built).  None for a cube that
    is not made of sparse blocks.  The chunk's ``grid`` is the full grid the
    cube was built on (a cropped cube's peaks keep their voxels on it).
    """
    import dask

    from .blocks import StudyChunk

    data = canonical(act)
    if not is_block_cube(data):
        return None
    blocks = data.to_delayed(optimize_graph=False).ravel()
    parts = dask.compute(*[dask.delayed(_block_peaks)(b) for b in blocks])
    meta = data._meta.chunk
    ijk = np.concatenate([p[0] for p in parts])
    xyz = np.concatenate([p[1] for p in parts])
    starts = np.cumsum([0, *data.chunks[0][:-1]])
    codes = np.concatenate([p[2] + s for p, s in zip(parts, starts)])
    return StudyChunk(ijk, xyz, codes, act.sizes["study"], meta.offsets, meta.grid, studies=act["study"].values)
