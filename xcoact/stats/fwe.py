"""Family-wise error control of coactivation maps: permutation (Monte Carlo) and Bonferroni.

Each permutation draws the selected studies anew (group sizes kept), counts them from the cube's rows kept as
runs (:class:`StudyRuns`), classifies the voxels by table (:class:`NullPlan`) and keeps, per test, the largest
chi-square, cluster size and cluster mass.  :ref:`semantics-fwe` states the null, the p-values, the
random streams and early stopping.
"""

from __future__ import annotations

import math
import time

import dask
import numpy as np
import xarray as xr

from ..blocks import ActivationBlock, pieces_of, ranges
from ..choices import FweMethod
from ..counts import canonical, dense_by_study, grouped_counts
from ..errors import ParameterError
from ..progress import progress_bar
from ..roi import grid_of
from . import neurosynth as _stats
from .components import CONNECTIVITY, VoxelLabeller, compiled

__all__ = ["fwe", "TESTS", "null_statistics", "observed_statistics", "cluster_labels", "NullPlan", "StudyRuns"]

#: The two tests of a coactivation analysis, in the order of the null arrays.
TESTS = ("uniformity", "association")

#: Null statistics per test, in the order of the last axis of the null arrays.
_STATS = ("max_chi2", "max_cluster_size", "max_cluster_mass")


def observed_statistics(a: np.ndarray, total: np.ndarray, n_selected: int, n_pool: int, tested: np.ndarray):
    """Chi-square and sign of both tests at every voxel (:func:`.neurosynth.chi2_and_sign`), 0 where not tested.

    Parameters
    ----------
    a : (n_voxels,) int array
        Selected studies active per voxel.
    total : (n_voxels,) int array
        Studies of the analysis (selected + unselected) active per voxel.
    n_selected, n_pool : int
        Selected studies, and all studies of the analysis.
    tested : (n_voxels,) bool array
        Voxels that enter the family (the others get chi-square 0).

    Returns
    -------
    chi2 : (2, n_voxels) float64 array
        Uniformity and association chi-square, those of the maps' z (:ref:`semantics-maps`).
    sign : (2, n_voxels) int8 array
    """
    a = np.asarray(a, dtype=np.int64)
    chi2, sign = _stats.chi2_and_sign(a, np.asarray(total, dtype=np.int64) - a, n_selected, n_pool - n_selected)
    chi2[:, ~tested] = 0.0
    sign[:, ~tested] = 0
    return chi2, sign


def cluster_labels(
    chi2: np.ndarray,
    sign: np.ndarray,
    chi2_threshold: float,
    labeller: VoxelLabeller,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster number per voxel: positive clusters 1, 2, ...; negative -1, -2, ...; 0 below threshold."""
    out = np.zeros(chi2.size, dtype=np.int64)
    for s in (1, -1):
        vox = np.flatnonzero((chi2 > chi2_threshold) & (sign == s))
        _, lab = labeller.label_voxels(vox, scratch)
        out[vox] = s * (lab + 1)
    return out


def _extents(labeller: VoxelLabeller, vox: np.ndarray, weights: np.ndarray, scratch) -> tuple[np.ndarray, np.ndarray]:
    """Size (voxels) and mass (summed ``weights``, in voxel order) of each cluster of ``vox``."""
    n, lab = labeller.label_voxels(vox, scratch)
    return np.bincount(lab, minlength=n).astype(np.float64), np.bincount(lab, weights=weights, minlength=n)


def _count_runs(ptr, start, stop, picks, diff, out):  # compiled by StudyRuns.counts
    """Active picked studies per voxel: +1 at each run's start, -1 past its end, then a running sum."""
    for k in range(diff.size):
        diff[k] = 0
    for s in picks:
        for r in range(ptr[s], ptr[s + 1]):
            diff[start[r]] += 1
            diff[stop[r]] -= 1
    acc = 0
    for v in range(out.size):
        acc += diff[v]
        out[v] = acc


def _classify(a, tested, base, assoc_class, uni_class, uni_chi2, found, n_found):  # compiled by null_statistics
    """Suprathreshold voxels into ``found`` (rows: uniformity +, -, association +, -); the largest uniformity chi2."""
    best = 0.0
    n_found[:] = 0
    for v in range(a.size):
        av = a[v]
        if tested[v]:
            best = max(best, uni_chi2[av])
            if uni_class[av] != 0:
                row = 0 if uni_class[av] > 0 else 1
                found[row, n_found[row]] = v
                n_found[row] += 1
        s = assoc_class[base[v] + av]  # untested voxels point at a row of zeros
        if s != 0:
            row = 2 if s > 0 else 3
            found[row, n_found[row]] = v
            n_found[row] += 1
    return best


class StudyRuns:
    """Each study's active in-mask voxels as runs ``[start, stop)``, study ``s``'s at ``ptr[s]:ptr[s + 1]``.

    Sphere unions are short lines along z (4.5 voxels a run on Neurosynth v7 at r = 6 mm): a study is counted
    by +1 at each run's start and -1 past its end, half the work of one entry per voxel.
    """

    def __init__(self, ptr: np.ndarray, start: np.ndarray, stop: np.ndarray, n_voxels: int):
        self.ptr, self.start, self.stop, self.n_voxels = ptr, start, stop, int(n_voxels)

    @classmethod
    def from_rows(cls, lengths: np.ndarray, cols: np.ndarray, n_voxels: int) -> StudyRuns:
        """From CSR-like rows: ``lengths[s]`` voxels per study, ``cols`` sorted within each study."""
        n = cols.size
        first = np.ones(n, dtype=bool)
        np.not_equal(cols[1:], cols[:-1] + 1, out=first[1:])
        row_starts = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=row_starts[1:])
        first[row_starts[:-1][lengths > 0]] = True
        at = np.flatnonzero(first)
        del first
        last = np.append(at[1:] - 1, n - 1) if at.size else at  # a run ends before the next one starts
        ptr = np.searchsorted(at, row_starts).astype(np.int64)
        return cls(ptr, cols[at].astype(np.int32), (cols[last] + 1).astype(np.int32), n_voxels)

    @classmethod
    def concat(cls, parts: list[StudyRuns], n_voxels: int) -> StudyRuns:
        ptr = np.zeros(1 + sum(p.ptr.size - 1 for p in parts), dtype=np.int64)
        at, offset = 1, 0
        for p in parts:
            ptr[at : at + p.ptr.size - 1] = p.ptr[1:] + offset
            at += p.ptr.size - 1
            offset += int(p.ptr[-1])
        return cls(ptr, np.concatenate([p.start for p in parts]), np.concatenate([p.stop for p in parts]), n_voxels)

    def counts(self, picks: np.ndarray, diff: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Active studies per voxel among ``picks`` into ``out``; ``diff`` (``n_voxels + 1`` of its type): scratch."""
        compiled(_count_runs)(self.ptr, self.start, self.stop, picks, diff, out)
        return out


def _block_runs(block, mask_flat: np.ndarray) -> StudyRuns:
    """One study block's runs over the cube's in-mask voxels (C order of its x, y, z)."""
    if not isinstance(block, ActivationBlock):
        dense = np.asarray(block).reshape(block.shape[0], -1)[:, mask_flat]
        rows, cols = np.nonzero(dense)
        return StudyRuns.from_rows(np.bincount(rows, minlength=dense.shape[0]), cols, dense.shape[1])
    parts = []
    for piece in pieces_of(block):
        indptr, indices = piece.chunk.rows()
        rows = piece.rows
        lengths = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
        if np.array_equal(rows, np.arange(indptr.size - 1)):
            cols = indices  # the whole chunk in order: no copy
        else:
            cols = indices[ranges(indptr[rows], indptr[rows + 1])]
        n_cols = piece.chunk.grid.n_mask
        if not piece.is_full_view():
            # in-mask voxel of the full grid -> its place among the cube's in-mask voxels (-1: not shown)
            shown = piece.view_mask_voxels()
            shown = shown[shown >= 0]
            place = np.full(n_cols, -1, dtype=np.int64)
            place[shown] = np.arange(shown.size)
            row_of = np.repeat(np.arange(len(rows)), lengths)
            cols = place[cols.astype(np.int64)]
            keep = cols >= 0
            n_cols = shown.size
            key = np.sort(row_of[keep] * n_cols + cols[keep])  # a reordered view: sort again within studies
            row_of, cols = key // n_cols, key % n_cols
            lengths = np.bincount(row_of, minlength=len(rows))
        parts.append(StudyRuns.from_rows(lengths, cols, n_cols))
    return StudyRuns.concat(parts, parts[0].n_voxels)


def _study_runs(blocks: list, mask_flat: np.ndarray) -> StudyRuns:
    """The whole cube's :class:`StudyRuns` (built once per FWE run, block by block)."""
    parts = [_block_runs(b, mask_flat) for b in blocks]
    return StudyRuns.concat(parts, parts[0].n_voxels)


def _runs_node(act: xr.DataArray, grid):
    """A graph node that builds :func:`_study_runs` from the cube's own blocks (on a worker, under distributed)."""
    data = canonical(act)
    if not isinstance(data._meta, ActivationBlock):
        data = dense_by_study(data)
    blocks = list(data.to_delayed(optimize_graph=False).ravel())
    return dask.delayed(_study_runs, pure=True)(blocks, grid.mask_flat)


class NullPlan:
    """What every permutation of one FWE run shares: the analysis's counts, the association table, the labeller.

    A voxel's association chi-square depends only on ``(a, total)``, so its side of the cluster-forming
    threshold is tabulated once for every pair; the uniformity table moves with each permutation's mean.
    """

    def __init__(
        self,
        total: np.ndarray,
        tested: np.ndarray,
        n_selected: int,
        n_pool: int,
        chi2_threshold: float,
        labeller: VoxelLabeller,
    ):
        self.total = np.asarray(total, dtype=np.int32)
        self.tested = np.asarray(tested, dtype=bool)
        self.tested_idx = np.flatnonzero(self.tested)
        self.n_selected, self.n_pool = int(n_selected), int(n_pool)
        self.n_unselected = self.n_pool - self.n_selected
        self.chi2_threshold = float(chi2_threshold)
        self.z_threshold = math.sqrt(self.chi2_threshold)
        self.labeller = labeller
        self.base, self.assoc_class = self._association_table()

    def _association_table(self, pairs_per_step: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
        t_vals, inv = np.unique(self.total[self.tested].astype(np.int64), return_inverse=True)
        lo = np.maximum(0, t_vals - self.n_unselected)
        hi = np.minimum(t_vals, self.n_selected)
        lens = np.maximum(hi - lo + 1, 0)
        off = np.zeros(t_vals.size + 1, dtype=np.int64)
        np.cumsum(lens, out=off[1:])
        table = np.zeros(int(off[-1]) + self.n_selected + 1, dtype=np.int8)  # + a row of zeros for untested voxels
        r0 = 0
        while r0 < t_vals.size:  # a step of rows at a time: the float temporaries stay small
            r1 = int(np.searchsorted(off, off[r0] + pairs_per_step, side="right"))
            r1 = min(max(r1 - 1, r0 + 1), t_vals.size)
            a = ranges(lo[r0:r1], hi[r0:r1] + 1)
            b = np.repeat(t_vals[r0:r1], lens[r0:r1]) - a
            chi2 = _stats.two_way_chi2(a, b, self.n_selected, self.n_unselected)
            sign = _stats.association_sign(a, b, self.n_selected, self.n_unselected)
            table[off[r0] : off[r1]] = np.where(chi2 > self.chi2_threshold, sign, 0)
            r0 = r1
        base = np.full(self.total.size, off[-1], dtype=np.int64)
        base[self.tested] = off[:-1][inv] - lo[inv]
        return base, table


def null_statistics(runs: StudyRuns, plan: NullPlan, pool: np.ndarray, n_perm: int, seed_seq) -> np.ndarray:
    """One batch of permutations: ``(n_perm, 2 tests, 3 statistics)`` null maxima.

    Each permutation draws ``plan.n_selected`` of the ``pool``'s study numbers (the smaller group is counted);
    the statistics equal :func:`observed_statistics` and :func:`cluster_labels` of the draw, bit for bit.
    """
    classify = compiled(_classify)
    rng = np.random.default_rng(seed_seq)
    n_pool, n_sel, n_u = pool.size, plan.n_selected, plan.n_unselected
    small = min(n_sel, n_pool - n_sel)
    picks = np.empty((n_perm, small), dtype=np.int64)
    for i in range(n_perm):
        picks[i] = pool[rng.choice(n_pool, small, replace=False)]
    n_vox = plan.total.size
    total: np.ndarray = plan.total
    # 16-bit counts when the drawn group allows: the difference array stays in cache
    count_dtype = np.int16 if small < 2**15 else np.int32
    diff = np.zeros(n_vox + 1, dtype=count_dtype)
    drawn: np.ndarray = np.zeros(n_vox, dtype=count_dtype)
    found = np.zeros((4, n_vox), dtype=np.int64)
    n_found = np.zeros(4, dtype=np.int64)
    scratch = plan.labeller.scratch()
    thr, z_thr = plan.chi2_threshold, plan.z_threshold
    out = np.zeros((n_perm, len(TESTS), len(_STATS)))
    for i in range(n_perm):
        runs.counts(np.sort(picks[i]), diff, drawn)
        a = drawn if small == n_sel else total - drawn
        e = float(a.sum(dtype=np.int64)) / n_vox
        values = np.arange(int(a.max(initial=0)) + 1, dtype=np.float64)
        uni_chi2 = _stats.one_way_chi2(values, n_sel, e)
        uni_class = np.where(uni_chi2 > thr, _stats.uniformity_sign(values, e), 0).astype(np.int8)
        best_uni = classify(a, plan.tested, plan.base, plan.assoc_class, uni_class, uni_chi2, found, n_found)
        out[i, 0, 0] = best_uni
        uni_weight = np.sqrt(uni_chi2) - z_thr
        best_assoc = 0.0
        for row in range(4):
            vox = found[row, : n_found[row]]
            if vox.size == 0:
                continue
            if row < 2:
                weights = uni_weight[a[vox]]
            else:
                chi2 = _stats.two_way_chi2(a[vox], total[vox] - a[vox], n_sel, n_u)
                best_assoc = max(best_assoc, float(chi2.max()))
                weights = np.sqrt(chi2) - z_thr
            size, mass = _extents(plan.labeller, vox, weights, scratch)
            t = row // 2
            out[i, t, 1] = max(out[i, t, 1], float(size.max()))
            out[i, t, 2] = max(out[i, t, 2], float(mass.max()))
        if n_found[2] + n_found[3] == 0 and plan.tested_idx.size:  # nothing above: the maximum is elsewhere
            at = plan.tested_idx
            best_assoc = max(best_assoc, float(_stats.two_way_chi2(a[at], total[at] - a[at], n_sel, n_u).max()))
        out[i, 1, 0] = best_assoc
    return out


def _check_int(value, name: str, minimum: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name}={value!r} is not valid; expected an int >= {minimum} (e.g. {name}={example}).")
    return int(value)


def _check_p(value, name: str, example: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0 < float(value) < 1
    ):
        raise ParameterError(
            f"{name}={value!r} is not valid; expected a probability strictly between 0 and 1 (e.g. {name}={example})."
        )
    return float(value)


def _check_cube_of(maps: xr.Dataset, act) -> xr.DataArray:
    """The cube of an FWE run: given, and the one the maps were computed from."""
    from ..analyses.pipeline import _check_cube
    from ..result import cube_of, cube_token

    act = cube_of(maps) if act is None else act
    if act is None:
        raise ParameterError(
            "fwe needs the cube the maps were computed from, and these maps no longer carry it (they were read "
            "from a file or rebuilt); pass it: maps.coact.fwe(act=xcoact.activations(db, ...), n_iter=1000)."
        )
    _check_cube(act)
    want = maps.attrs.get("cube")
    if want is not None and str(want) != cube_token(act):
        raise ParameterError(
            "act is not the cube these maps were computed from (attrs['cube'] differs: another database, radius, "
            "preset, set of studies or grid); pass the cube the maps came from."
        )
    return act


def _aligned(maps: xr.Dataset, grid, act: xr.DataArray) -> xr.Dataset:
    """The maps on the cube's own voxel order (by coordinate labels), or a clear error."""
    for d in ("x", "y", "z"):
        mine, theirs = np.asarray(act[d].values), np.asarray(maps[d].values) if d in maps.coords else None
        if theirs is None or mine.size != theirs.size or not np.array_equal(np.sort(mine), np.sort(theirs)):
            raise ParameterError(
                f"the maps' {d} labels are not the cube's ({0 if theirs is None else theirs.size} vs {mine.size} "
                "values): FWE corrects maps over the cube's whole grid; pass uncropped maps of this cube."
            )
    return _in_order_of(maps, act)


def _in_order_of(ds: xr.Dataset, like) -> xr.Dataset:
    """``ds`` with its x, y, z in the order of ``like``'s labels (``isel``: coordinate attrs kept)."""
    where = {d: ds.indexes[d].get_indexer(np.asarray(like[d].values)) for d in ("x", "y", "z")}
    if all(np.array_equal(w, np.arange(ds.sizes[d])) for d, w in where.items()):
        return ds
    return ds.isel(where)


def _groups(maps: xr.Dataset, studies: np.ndarray) -> tuple[np.ndarray, int]:
    """Study numbers of the analysis (the pool) and how many of them are selected."""
    if "group" in maps:  # a contrast: 1 = A (selected), 2 = B, 0 = in neither / excluded
        group = np.asarray(maps["group"].values)
        if len(group) != len(studies) or not np.array_equal(np.asarray(maps["study"].values), studies):
            raise ParameterError(
                "the maps' studies differ from the cube's; pass the cube they were computed from as act=."
            )
        pool = np.flatnonzero(group > 0)
        return pool, int((group == 1).sum())
    if "selected_id" not in maps or "seed" in maps.dims:
        raise ParameterError(
            "fwe needs the result of one seed (act.coact.seed(...)) or one contrast (act.coact.contrast(...)); "
            "for a batch, run it per seed: maps.isel(seed=i)."
        )
    ids = np.asarray(maps["selected_id"].values)
    pos = {v: i for i, v in enumerate(studies.tolist())}
    try:
        chosen = np.array([pos[v] for v in ids.tolist()], dtype=np.int64)
    except KeyError as err:
        raise ParameterError(
            f"selected study {err.args[0]!r} is not in the cube; pass the cube the maps came from as act=."
        ) from None
    if "contrast_id" in maps:  # meta(ids, ids2=...): the studies of neither list are left out, as in the maps
        return np.flatnonzero(np.isin(studies, ids) | np.isin(studies, np.asarray(maps["contrast_id"].values))), int(
            chosen.size
        )
    return np.arange(len(studies)), int(chosen.size)


def _observed_counts(act: xr.DataArray, grid, maps: xr.Dataset, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selected and pool active counts per in-mask voxel for the observed labelling."""
    studies = np.asarray(act["study"].values)
    if "group" in maps:
        group = np.asarray(maps["group"].values)
        sel, in_pool = group == 1, group > 0
    else:
        sel = np.isin(studies, np.asarray(maps["selected_id"].values))
        in_pool = np.zeros(len(studies), dtype=bool)
        in_pool[pool] = True
    counts = np.asarray(grouped_counts(act, np.stack([sel, in_pool]), grid).compute(), dtype=np.int64)
    return counts[0], counts[1]


def _z_names(maps: xr.Dataset) -> dict[str, str]:
    """The observed z map of each test, by the preset's naming."""
    names = {}
    for test in TESTS:
        for cand in (f"{test}-test_z", f"z_desc-{test}"):
            if cand in maps:
                names[test] = cand
                break
        else:
            raise ParameterError(
                f"the maps have no z map of the {test} test ('{test}-test_z'); pass a seed or contrast result."
            )
    return names


def _exceedances(null_max: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Iterations whose maximum reaches each observed value, the observed labelling counted as one."""
    ranked = np.sort(null_max)
    return 1 + ranked.size - np.searchsorted(ranked, observed, side="left")


def _settled(null_max: np.ndarray, observed: np.ndarray, n_iter: int, alpha: float) -> bool:
    """Whether every observed value's decision at ``alpha`` is fixed whatever the remaining iterations give."""
    remaining = n_iter - (null_max.size + 1)  # + the observed labelling
    limit = alpha * n_iter
    exceed = _exceedances(null_max, observed)
    return bool(np.all((exceed > limit) | (exceed + remaining <= limit)))


def fwe(
    maps: xr.Dataset,
    act: xr.DataArray | None = None,
    *,
    n_iter: int | FweMethod = 1000,
    seed: int | None = None,
    alpha: float = 0.05,
    cluster_p: float = 0.001,
    connectivity: int = 26,
    early_stop: bool = False,
    batch_size: int = 50,
    progress: bool | None = None,
) -> xr.Dataset:
    """Family-wise error corrected maps of one seed or contrast.

    Parameters
    ----------
    maps : xarray.Dataset
        The result of :func:`xcoact.seed` (one seed) or :func:`xcoact.contrast`; an ALE seed's maps get
        NiMARE's Monte Carlo FWE instead (:func:`xcoact.stats.ale.fwe`: ``n_iter``, ``seed``, ``cluster_p``).
    act : xarray.DataArray, optional
        The cube the maps were computed from; found by itself while that cube is alive.
    n_iter : int or "bonferroni", default 1000
        Iterations, the observed labelling included (the smallest p is ``1 / n_iter``); ``"bonferroni"``:
        p-values times the number of tested voxels.
    seed : int, optional
        Seed of the random streams; None draws fresh entropy (recorded in ``attrs["fwe_seed"]``).
    alpha : float, default 0.05
        Level of the thresholded maps and of early stopping.
    cluster_p : float, default 0.001
        Cluster-forming threshold, a two-sided voxel p-value.
    connectivity : {6, 18, 26}, default 26
        Neighbours by a face (6), an edge (18) or a corner (26).
    early_stop : bool, default False
        Stop once no remaining iteration can change a decision at ``alpha`` (p from the iterations done).
    batch_size : int, default 50
        Permutations per Dask task.
    progress : bool, optional
        Show a progress bar (:mod:`xcoact.progress`); by default in a notebook or on a terminal.

    Returns
    -------
    xarray.Dataset
        ``maps`` with, per test and level (``voxel``, ``cluster-size``, ``cluster-mass``),
        ``{test}-test_p_FWE-{level}`` and ``{test}-test_z_FWE-{level}_{alpha}``, ``{test}-test_cluster``, the
        null maxima ``fwe_null`` and ``fwe_*`` attrs; with ``"bonferroni"`` ``{test}-test_p_bonferroni`` and
        ``{test}-test_z_bonferroni_{alpha}``.

    Raises
    ------
    ParameterError
        No cube, another cube, cropped or batch maps, or a bad argument.

    Notes
    -----
    Cost: computes now; about 9-13 ms of CPU per permutation on Neurosynth v7 (docs/performance.md).
    """
    if maps.attrs.get("kernel") == "ale":
        from .ale import fwe as ale_fwe

        mkda: dict = {"alpha": alpha, "connectivity": connectivity, "early_stop": early_stop, "batch_size": batch_size}
        return ale_fwe(maps, act, n_iter=n_iter, seed=seed, cluster_p=cluster_p, progress=progress, **mkda)
    act = _check_cube_of(maps, act)
    alpha = _check_p(alpha, "alpha", "0.05")
    grid = grid_of(act)
    original = maps
    maps = _aligned(maps, grid, act)
    z_names = _z_names(maps)
    pool, n_sel = _groups(maps, np.asarray(act["study"].values))
    a_obs, total = _observed_counts(act, grid, maps, pool)
    min_studies = int(maps.attrs.get("min_studies", 1))
    tested = total >= max(min_studies, 1) if min_studies else np.ones(total.size, dtype=bool)
    obs_chi2, obs_sign = observed_statistics(a_obs, total, n_sel, pool.size, tested)
    z_obs = {t: np.asarray(maps[z_names[t]].transpose("x", "y", "z").values)[grid.mask] for t in TESTS}
    out = maps.copy()
    if isinstance(n_iter, str):
        if n_iter != "bonferroni":
            raise ParameterError(
                f"n_iter={n_iter!r} is not known; expected a number of iterations (e.g. 1000) or 'bonferroni'."
            )
        return _in_order_of(_bonferroni(out, obs_chi2, tested, z_obs, alpha, grid), original)
    n_iter = _check_int(n_iter, "n_iter", 2, "1000")
    cluster_p = _check_p(cluster_p, "cluster_p", "0.001")
    batch_size = _check_int(batch_size, "batch_size", 1, "50")
    if connectivity not in CONNECTIVITY:
        raise ParameterError(
            f"connectivity={connectivity!r} is not valid; expected 6 (faces), 18 (edges) or 26 (corners)."
        )
    if seed is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)
        seed = entropy % (2**63)
    seed = _check_int(seed, "seed", 0, "0")
    from scipy import stats as _sstats  # here, not at import: scipy.stats costs ~40 MB of RSS to `import xcoact`

    chi2_threshold = float(_sstats.chi2.isf(cluster_p, 1))
    z_threshold = math.sqrt(chi2_threshold)
    labeller = VoxelLabeller(grid.shape, grid.mask_flat, connectivity)

    started = time.perf_counter()
    runs = _runs_node(act, grid)
    sizes = [min(batch_size, n_iter - 1 - start) for start in range(0, n_iter - 1, batch_size)]
    root = np.random.SeedSequence(seed)
    streams = root.spawn(len(sizes))
    round_size = 2 * max(1, dask.config.get("num_workers", None) or 2) if early_stop else len(sizes)
    if round_size < len(sizes):  # several rounds: the runs built once and kept
        (runs,) = dask.persist(runs)
    # shared inputs as single graph nodes: sent once, not once per task
    plan = dask.delayed(NullPlan(total, tested, n_sel, pool.size, chi2_threshold, labeller))
    shared_pool = dask.delayed(pool, pure=True)
    tasks = [
        dask.delayed(null_statistics, pure=True)(runs, plan, shared_pool, size, stream)
        for size, stream in zip(sizes, streams)
    ]
    scratch = labeller.scratch()
    obs_labels, obs_keys, observed = [], [], []  # per test: observed max chi2, cluster sizes, cluster masses
    for ti in range(len(TESTS)):
        lab = cluster_labels(obs_chi2[ti], obs_sign[ti], chi2_threshold, labeller, scratch)
        inside = np.flatnonzero(lab)
        keys, where = np.unique(lab[inside], return_inverse=True)
        # summed in voxel order, as null_statistics sums them
        size = np.bincount(where, minlength=keys.size).astype(np.float64)
        mass = np.bincount(where, weights=np.sqrt(obs_chi2[ti][inside]) - z_threshold, minlength=keys.size)
        obs_labels.append(lab)
        obs_keys.append(keys)
        observed.append((obs_chi2[ti][tested], size, mass))

    results = []
    stopped = False
    for start in range(0, len(tasks), max(round_size, 1)):
        with progress_bar(progress, desc="FWE permutations"):  # progress=None: in notebooks and on terminals
            results.extend(dask.compute(*tasks[start : start + round_size]))
        if early_stop and start + round_size < len(tasks):
            null = np.concatenate(results)
            if all(
                _settled(null[:, ti, k], obs, n_iter, alpha)
                for ti in range(len(TESTS))
                for k, obs in enumerate(observed[ti])
            ):
                stopped = True
                break
    null = np.concatenate(results) if results else np.zeros((0, len(TESTS), len(_STATS)))
    n_done = null.shape[0] + 1
    seconds = time.perf_counter() - started

    tag = f"{alpha:g}"
    for ti, test in enumerate(TESTS):
        lab = obs_labels[ti]
        inside = lab != 0
        where = np.searchsorted(obs_keys[ti], lab[inside])
        base = f"{test}-test"
        for k, level in enumerate(("voxel", "cluster-size", "cluster-mass")):
            p = np.ones(grid.n_mask)
            corrected = _exceedances(null[:, ti, k], observed[ti][k]) / n_done
            if k == 0:
                p[tested] = corrected
            elif where.size:
                p[inside] = corrected[where]
            what = level.replace("-", " ")
            _put(out, f"{base}_p_FWE-{level}", p, grid, 1.0, f"FWE-corrected p ({what}, {n_done} permutations)")
            z = np.where(p <= alpha, z_obs[test], 0.0)
            _put(out, f"{base}_z_FWE-{level}_{tag}", z, grid, 0.0, f"{z_names[test]} where the {what} FWE p <= {tag}")
        _put(
            out,
            f"{base}_cluster",
            lab.astype(np.float64),
            grid,
            0.0,
            f"clusters at two-sided p < {cluster_p:g} (positive 1, 2, ...; negative -1, -2, ...)",
        )
    out["fwe_null"] = (("fwe_test", "iteration", "fwe_statistic"), null.transpose(1, 0, 2))
    out = out.assign_coords(fwe_test=list(TESTS), fwe_statistic=list(_STATS))
    out["fwe_null"].attrs["long_name"] = "per-permutation maxima (the observed labelling not included)"
    out.attrs.update(
        {
            "fwe_method": "permutation (Monte Carlo label shuffle, group sizes kept)",
            "fwe_n_iter": n_iter,
            "fwe_n_done": n_done,
            "fwe_seed": seed,
            "fwe_alpha": alpha,
            "fwe_cluster_p": cluster_p,
            "fwe_cluster_z": z_threshold,
            "fwe_connectivity": connectivity,
            "fwe_min_p": 1.0 / n_done,
            "fwe_stopped_early": int(stopped),
            "fwe_seconds": round(seconds, 3),
            "fwe_n_tested_voxels": int(tested.sum()),
        }
    )
    return _in_order_of(out, original)  # the order the maps came in


def _put(ds: xr.Dataset, name: str, values: np.ndarray, grid, fill: float, long_name: str) -> None:
    """``ds[name]``: in-mask ``values`` as a volume, ``fill`` outside (1 for p maps, so never significant)."""
    vol = np.full(grid.shape, fill)
    vol[grid.mask] = values
    ds[name] = xr.DataArray(vol, dims=("x", "y", "z"), coords={d: ds[d] for d in "xyz"})
    ds[name].attrs["long_name"] = long_name


def _bonferroni(out: xr.Dataset, obs_chi2, tested, z_obs, alpha: float, grid) -> xr.Dataset:
    from scipy import stats as _sstats

    m = int(tested.sum())
    # log-space survival: exact where p underflows double precision
    log_p = _sstats.chi2.logsf(obs_chi2, 1)
    for ti, test in enumerate(TESTS):
        p = np.minimum(1.0, np.exp(np.minimum(log_p[ti] + math.log(m), 0.0)))
        p[~tested] = 1.0
        _put(out, f"{test}-test_p_bonferroni", p, grid, 1.0, f"Bonferroni-corrected p ({m} tested voxels)")
        z = np.where(p <= alpha, z_obs[test], 0.0)
        _put(out, f"{test}-test_z_bonferroni_{alpha:g}", z, grid, 0.0, f"z where the Bonferroni p <= {alpha:g}")
    out.attrs.update({"fwe_method": "bonferroni", "fwe_alpha": alpha, "fwe_n_tested_voxels": m})
    return out
