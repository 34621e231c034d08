"""Family-wise error control of coactivation maps: permutation (Monte Carlo) and Bonferroni.

The permutation null keeps the group sizes and shuffles which studies are
selected: each iteration draws ``n_selected`` studies at random from the
studies of the analysis (every study for a seed; the studies of A and B for a
contrast), counts their active studies per voxel and recomputes both tests.
Iterations run in batches; a batch is one sparse product
``(batch x studies selection matrix) @ (studies x voxels activations)`` per
study chunk, and batches are Dask tasks (any scheduler).  Each batch draws
from its own random stream, derived from ``seed`` and the batch number, so a
result does not depend on the scheduler, the number of threads or on early
stopping.

Per iteration three maxima are kept per test, over every tested voxel:

* voxel level: the largest chi-square (equivalently the largest ``|z|``,
  uncapped, so the 1e-240 floor of Neurosynth's p-values creates no ties);
* cluster level: clusters are the connected sets of voxels with two-sided
  ``p < cluster_p`` (chi-square above ``chi2.isf(cluster_p, 1)``), positive
  and negative effects formed separately so they never merge; the largest
  cluster size (voxels) and the largest cluster mass (sum over the cluster of
  ``|z| - z_threshold``).

Corrected p-values count the observed labelling as one of the ``n_iter``
iterations (Phipson & Smyth 2010): ``p = (1 + #{null max >= observed}) /
n_iter``, so the smallest attainable p is ``1 / n_iter``.
"""

from __future__ import annotations

import math
import time

import dask
import numpy as np
import xarray as xr
from scipy import ndimage, sparse, stats as _sstats
from scipy.sparse import csgraph

from .errors import ParameterError
from .kernels import _REGISTRY, ActivationSource
from .progress import progress_bar

__all__ = ["fwe", "TESTS", "null_statistics", "test_statistics", "cluster_labels"]

#: The two tests of a coactivation analysis, in the order of the null arrays.
TESTS = ("uniformity", "association")

#: Null statistics per test, in the order of the last axis of the null arrays.
_STATS = ("max_chi2", "max_cluster_size", "max_cluster_mass")

#: Forward neighbour offsets (half of each connectivity's neighbourhood).
_CONNECTIVITY = {6: 1, 18: 2, 26: 3}


# --- statistics --------------------------------------------------------------------------------------

def test_statistics(a: np.ndarray, total: np.ndarray, n_selected: int, n_pool: int, tested: np.ndarray):
    """Chi-square and sign of both tests at every voxel, from the selected counts.

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
        Uniformity (one-way) and association (Pearson 2 x 2, no continuity
        correction) chi-square, SPEC section 6.
    sign : (2, n_voxels) int8 array
    """
    a = np.asarray(a, dtype=np.float64)
    t = np.asarray(total, dtype=np.float64)
    n_f, n = float(n_selected), float(n_pool)
    n_u = n - n_f
    chi2 = np.zeros((2, a.size))
    sign = np.zeros((2, a.size), dtype=np.int8)
    e = a.mean()  # over every in-mask voxel, as the uniformity map itself
    dev = a - e
    if 0 < e < n_f:
        chi2[0] = dev * dev * (n_f / (e * (n_f - e)))
    sign[0] = np.sign(dev)
    d = a * n - t * n_f  # a*n_u - b*n_f: the sign of pAgF - pAgU
    den = n_f * n_u * t * (n - t)
    ok = den > 0
    chi2[1, ok] = n * d[ok] * d[ok] / den[ok]
    sign[1] = np.sign(d)
    chi2[:, ~tested] = 0.0
    sign[:, ~tested] = 0
    return chi2, sign


class _Neighbours:
    """Connected components of voxel sets on the grid (padded, so offsets never wrap).

    Small sets (the usual null map at p < 0.001) are joined through their
    neighbour pairs only; large ones (thousands of voxels) by a scan of the
    whole volume (:func:`scipy.ndimage.label`), which is then cheaper.  Both
    number the components in C order of their first voxel.
    """

    #: Above this many voxels a full-volume scan beats the neighbour-pair graph.
    DENSE_FROM = 3000

    def __init__(self, grid, connectivity: int):
        # the full-volume scan runs over the brain mask's bounding box only
        ijk = np.array(np.unravel_index(grid.mask_flat, grid.shape)).T
        lo = ijk.min(axis=0)
        self.box_shape = tuple(int(v) for v in ijk.max(axis=0) - lo + 1)
        self.flat = np.ravel_multi_index(tuple((ijk - lo).T), self.box_shape)
        self.structure = ndimage.generate_binary_structure(3, _CONNECTIVITY[connectivity])
        shape = np.array(grid.shape) + 2
        ijk = ijk + 1
        self.padded = np.ravel_multi_index(tuple(ijk.T), tuple(shape)).astype(np.int64)
        steps = np.array([1, shape[2], shape[1] * shape[2]])[::-1]  # strides of i, j, k
        offs = []
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                for dk in (-1, 0, 1):
                    nz = abs(di) + abs(dj) + abs(dk)
                    if 0 < nz <= _CONNECTIVITY[connectivity]:
                        o = di * steps[0] + dj * steps[1] + dk * steps[2]
                        if o > 0:
                            offs.append(o)
        self.offsets = np.array(offs, dtype=np.int64)
        self.size = int(np.prod(shape))

    def labels(self, voxels: np.ndarray, scratch: np.ndarray) -> tuple[int, np.ndarray]:
        """Component label (0..n-1) of each of ``voxels`` (in-mask voxel numbers)."""
        n = voxels.size
        if n == 0:
            return 0, np.zeros(0, dtype=np.int64)
        if n > self.DENSE_FROM:
            vol = np.zeros(self.box_shape, dtype=bool)
            vol.ravel()[self.flat[voxels]] = True
            lab, count = ndimage.label(vol, self.structure)
            return count, lab.ravel()[self.flat[voxels]].astype(np.int64) - 1
        pos = self.padded[voxels]
        scratch[pos] = np.arange(n)
        rows, cols = [], []
        for o in self.offsets:
            nb = scratch[pos + o]
            hit = nb >= 0
            if hit.any():
                rows.append(np.flatnonzero(hit))
                cols.append(nb[hit])
        scratch[pos] = -1
        if not rows:
            return n, np.arange(n)
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        graph = sparse.coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(n, n))
        return csgraph.connected_components(graph, directed=False)


def cluster_labels(chi2: np.ndarray, sign: np.ndarray, chi2_threshold: float, neighbours: _Neighbours,
                   scratch: np.ndarray) -> np.ndarray:
    """Cluster number per voxel: positive clusters 1, 2, ...; negative -1, -2, ...; 0 below threshold."""
    out = np.zeros(chi2.size, dtype=np.int64)
    for s in (1, -1):
        vox = np.flatnonzero((chi2 > chi2_threshold) & (sign == s))
        n, lab = neighbours.labels(vox, scratch)
        out[vox] = s * (lab + 1)
    return out


def _cluster_maxima(chi2, sign, chi2_threshold, z_threshold, neighbours, scratch) -> tuple[float, float]:
    """Largest cluster size and mass over positive and negative clusters (formed separately)."""
    best_size = best_mass = 0.0
    for s in (1, -1):
        vox = np.flatnonzero((chi2 > chi2_threshold) & (sign == s))
        if vox.size == 0:
            continue
        n, lab = neighbours.labels(vox, scratch)
        size = np.bincount(lab, minlength=n)
        mass = np.bincount(lab, weights=np.sqrt(chi2[vox]) - z_threshold, minlength=n)
        best_size = max(best_size, float(size.max()))
        best_mass = max(best_mass, float(mass.max()))
    return best_size, best_mass


# --- the permutation batches ----------------------------------------------------------------------

def _matrix(source: ActivationSource, count_dtype: str) -> sparse.csr_matrix:
    """The whole study x voxel activation matrix as one CSR matrix (built once per FWE run).

    One matrix, not one per study chunk: a product per chunk would produce
    (and add up) a dense-ish batch x voxels result per chunk.
    """
    parts = [source.rows(c) for c in range(len(source.chunk_bounds))]
    starts = np.cumsum([0] + [int(p[0][-1]) for p in parts[:-1]])
    indptr = np.concatenate([[0]] + [p[0][1:] + s for p, s in zip(parts, starts)])
    indices = np.concatenate([p[1] for p in parts])
    del parts
    return sparse.csr_matrix(
        (np.ones(indices.size, dtype=count_dtype), indices, indptr), shape=(source.n_studies, source.grid.n_mask)
    )


def _batch_counts(mat: sparse.csr_matrix, picks: np.ndarray, count_dtype: str) -> np.ndarray:
    """Active picked studies per voxel for each row of ``picks`` (study numbers): one sparse product."""
    b, k = picks.shape
    picks = np.sort(picks, axis=1)
    select = sparse.csr_matrix(
        (np.ones(b * k, dtype=count_dtype), picks.ravel(), np.arange(0, b * k + 1, k)), shape=(b, mat.shape[0])
    )
    return (select @ mat).toarray()


def null_statistics(mat, pool: np.ndarray, n_selected: int, total: np.ndarray, tested: np.ndarray,
                    n_perm: int, seed_seq, chi2_threshold: float, neighbours: _Neighbours,
                    count_dtype: str = "int32") -> np.ndarray:
    """One batch of permutations: ``(n_perm, 2 tests, 3 statistics)`` null maxima.

    ``pool`` holds the study numbers of the analysis; each permutation picks
    ``n_selected`` of them at random (the smaller group is drawn and counted,
    the other follows from the totals).
    """
    rng = np.random.default_rng(seed_seq)
    n_pool = pool.size
    small = min(n_selected, n_pool - n_selected)
    picks = np.empty((n_perm, small), dtype=np.int64)
    for i in range(n_perm):
        picks[i] = pool[rng.choice(n_pool, small, replace=False)]
    counts = _batch_counts(mat, picks, count_dtype)
    if small != n_selected:
        counts = total[None, :] - counts
    z_threshold = math.sqrt(chi2_threshold)
    scratch = np.full(neighbours.size, -1, dtype=np.int64)
    out = np.zeros((n_perm, len(TESTS), len(_STATS)))
    for i in range(n_perm):
        chi2, sign = test_statistics(counts[i], total, n_selected, n_pool, tested)
        for t in range(len(TESTS)):
            out[i, t, 0] = chi2[t].max()
            out[i, t, 1:] = _cluster_maxima(chi2[t], sign[t], chi2_threshold, z_threshold, neighbours, scratch)
    return out


# --- the public call --------------------------------------------------------------------------------

def _check_int(value, name: str, minimum: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name}={value!r} is not valid; expected an int >= {minimum} (e.g. {name}={example}).")
    return int(value)


def _check_p(value, name: str, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < float(value) < 1:
        raise ParameterError(f"{name}={value!r} is not valid; expected a probability strictly between 0 and 1 (e.g. {name}={example}).")
    return float(value)


def _source_of(maps: xr.Dataset, act) -> ActivationSource:
    if act is not None:
        source = ActivationSource.of_cube(act)
        if source is None:
            raise ParameterError(
                "act is not an untouched cube from xcoact.activations (it was indexed, transformed or loaded); "
                "FWE needs the sparse index of the cube the maps were computed from."
            )
        return source
    source = _REGISTRY.get(maps.attrs.get("cube", ""))
    if source is None:
        raise ParameterError(
            "the cube these maps were computed from is not in this session (maps read from a file, or the cube "
            "was deleted); pass it: maps.coact.fwe(act=xcoact.activations(db, ...), ...)."
        )
    return source


def _groups(maps: xr.Dataset, source: ActivationSource) -> tuple[np.ndarray, int]:
    """Study numbers of the analysis (the pool) and how many of them are selected."""
    studies = source.studies
    if "group" in maps:  # a contrast: 1 = A (selected), 2 = B, 0 = in neither / excluded
        group = np.asarray(maps["group"].values)
        if len(group) != len(studies) or not np.array_equal(np.asarray(maps["study"].values), studies):
            raise ParameterError("the maps' studies differ from the cube's; pass the cube they were computed from as act=.")
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
        raise ParameterError(f"selected study {err.args[0]!r} is not in the cube; pass the cube the maps came from as act=.") from None
    if "contrast_id" in maps:  # meta(ids, ids2=...): the studies of neither list are left out, as in the maps
        return np.flatnonzero(np.isin(studies, ids) | np.isin(studies, np.asarray(maps["contrast_id"].values))), int(chosen.size)
    return np.arange(len(studies)), int(chosen.size)


def _observed_counts(source: ActivationSource, maps: xr.Dataset, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selected and pool active counts per in-mask voxel for the observed labelling."""
    from .counts import ranges

    studies = source.studies
    if "group" in maps:
        group = np.asarray(maps["group"].values)
        sel, in_pool = group == 1, group > 0
    else:
        sel = np.isin(studies, np.asarray(maps["selected_id"].values))
        in_pool = np.zeros(len(studies), dtype=bool)
        in_pool[pool] = True
    m = source.grid.n_mask
    a = np.zeros(m, dtype=np.int64)
    t = np.zeros(m, dtype=np.int64)
    for c, (s0, s1) in enumerate(source.chunk_bounds):
        indptr, indices = source.rows(c)
        for flags, acc in ((sel, a), (in_pool, t)):
            rows = np.flatnonzero(flags[s0:s1])
            acc += np.bincount(indices[ranges(indptr[rows], indptr[rows + 1])], minlength=m)
    return a, t


def _z_names(maps: xr.Dataset) -> dict[str, str]:
    """The observed z map of each test, by the preset's naming."""
    names = {}
    for test in TESTS:
        for cand in (f"{test}-test_z", f"z_desc-{test}"):
            if cand in maps:
                names[test] = cand
                break
        else:
            raise ParameterError(f"the maps have no z map of the {test} test ('{test}-test_z'); pass a seed or contrast result.")
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
    n_iter: int | str = 1000,
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
        The result of :func:`xcoact.seed` (one seed) or :func:`xcoact.contrast`.
    act : xarray.DataArray, optional
        The cube the maps were computed from; found by itself while that cube
        is alive in this session.
    n_iter : int or "bonferroni", default 1000
        Iterations of the permutation null, the observed labelling included
        (so ``n_iter - 1`` random ones; the smallest attainable p is
        ``1 / n_iter``).  ``"bonferroni"``: no permutations; p-values times
        the number of tested voxels.
    seed : int, optional
        Seed of the random streams; the same seed gives the same null.  None
        draws fresh entropy (recorded in ``attrs["fwe_seed"]`` so the run can
        be repeated).
    alpha : float, default 0.05
        Level of the thresholded maps and of early stopping.
    cluster_p : float, default 0.001
        Cluster-forming threshold, a two-sided voxel p-value.
    connectivity : {6, 18, 26}, default 26
        Voxels touching by a face (6), an edge (18) or a corner (26) are neighbours.
    early_stop : bool, default False
        Stop once no remaining iteration can change any decision at ``alpha``
        (voxel and cluster level, both tests); the decisions then equal those
        of the full run, and the p-values are computed from the iterations done.
    batch_size : int, default 50
        Permutations per Dask task (one sparse product each).
    progress : bool, optional
        Show a progress bar of the permutations (:mod:`xcoact.progress`);
        by default in a notebook or on a terminal.

    Returns
    -------
    xarray.Dataset
        ``maps`` with, per test (``uniformity``, ``association``), a p map and a
        thresholded z map per level: ``{test}-test_p_FWE-voxel``,
        ``{test}-test_z_FWE-voxel_{alpha}``, ``{test}-test_p_FWE-cluster-size``,
        ``{test}-test_z_FWE-cluster-size_{alpha}``,
        ``{test}-test_p_FWE-cluster-mass``, ``{test}-test_z_FWE-cluster-mass_{alpha}``
        and ``{test}-test_cluster`` (cluster numbers, positive 1, 2, ...,
        negative -1, -2, ...); the null maxima ``fwe_null (fwe_test,
        iteration, fwe_statistic)``; attrs ``fwe_*`` (method, n_iter, n_done,
        seed, alpha, cluster_p, cluster_z, connectivity, min_p, stopped_early,
        seconds).  With ``"bonferroni"``: ``{test}-test_p_bonferroni`` and
        ``{test}-test_z_bonferroni_{alpha}``.

    Notes
    -----
    Cost: computes now.  The sparse index is built (or reused) once; each
    permutation is one gather-and-count over the drawn studies (a share of one
    sparse product per batch) plus both tests and the clustering over the
    in-mask voxels: about 20 ms per permutation on the Neurosynth v7 release
    (14,371 studies) on 2 cores; see docs/performance.md.
    """
    source = _source_of(maps, act)
    alpha = _check_p(alpha, "alpha", "0.05")
    z_names = _z_names(maps)
    grid = source.grid
    pool, n_sel = _groups(maps, source)
    a_obs, total = _observed_counts(source, maps, pool)
    min_studies = int(maps.attrs.get("min_studies", 1))
    tested = total >= max(min_studies, 1) if min_studies else np.ones(total.size, dtype=bool)
    obs_chi2, obs_sign = test_statistics(a_obs, total, n_sel, pool.size, tested)
    z_obs = {t: np.asarray(maps[z_names[t]].values)[grid.mask] for t in TESTS}
    out = maps.copy()
    if isinstance(n_iter, str):
        if n_iter != "bonferroni":
            raise ParameterError(f"n_iter={n_iter!r} is not known; expected a number of iterations (e.g. 1000) or 'bonferroni'.")
        return _bonferroni(out, obs_chi2, tested, z_obs, alpha, grid)
    n_iter = _check_int(n_iter, "n_iter", 2, "1000")
    cluster_p = _check_p(cluster_p, "cluster_p", "0.001")
    batch_size = _check_int(batch_size, "batch_size", 1, "50")
    if connectivity not in _CONNECTIVITY:
        raise ParameterError(f"connectivity={connectivity!r} is not valid; expected 6 (faces), 18 (edges) or 26 (corners).")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    seed = _check_int(seed, "seed", 0, "0")
    chi2_threshold = float(_sstats.chi2.isf(cluster_p, 1))
    z_threshold = math.sqrt(chi2_threshold)
    neighbours = _Neighbours(grid, connectivity)
    count_dtype = "int16" if min(n_sel, pool.size - n_sel) < 2**15 else "int32"

    started = time.perf_counter()
    mat = dask.delayed(_matrix, pure=True)(source, count_dtype)
    sizes = [batch_size] * ((n_iter - 1) // batch_size) + ([(n_iter - 1) % batch_size] if (n_iter - 1) % batch_size else [])
    root = np.random.SeedSequence(seed)
    streams = root.spawn(len(sizes))
    # shared inputs as single graph nodes: stored (or sent to workers) once, not once per task
    shared = [dask.delayed(v, pure=True) for v in (pool, total, tested, neighbours)]
    tasks = [
        dask.delayed(null_statistics, pure=True)(mat, shared[0], n_sel, shared[1], shared[2], size, stream,
                                                 chi2_threshold, shared[3], count_dtype)
        for size, stream in zip(sizes, streams)
    ]
    # observed clusters (the statistics early stopping must settle)
    scratch = np.full(neighbours.size, -1, dtype=np.int64)
    obs_labels = {}
    obs_cluster = {}
    for ti, test in enumerate(TESTS):
        lab = cluster_labels(obs_chi2[ti], obs_sign[ti], chi2_threshold, neighbours, scratch)
        obs_labels[test] = lab
        keys = np.unique(lab[lab != 0])
        size = np.array([(lab == k).sum() for k in keys], dtype=np.float64)
        mass = np.array([(np.sqrt(obs_chi2[ti][lab == k]) - z_threshold).sum() for k in keys])
        obs_cluster[test] = (keys, size, mass)

    round_size = 2 * max(1, dask.config.get("num_workers", None) or 2) if early_stop else len(tasks)
    results = []
    stopped = False
    for start in range(0, len(tasks), max(round_size, 1)):
        with progress_bar(progress, desc="FWE permutations"):  # progress=None: in notebooks and on terminals
            results.extend(dask.compute(*tasks[start:start + round_size]))
        if early_stop and start + round_size < len(tasks):
            null = np.concatenate(results)
            if all(
                _settled(null[:, ti, 0], obs_chi2[ti][tested], n_iter, alpha)
                and _settled(null[:, ti, 1], obs_cluster[test][1], n_iter, alpha)
                and _settled(null[:, ti, 2], obs_cluster[test][2], n_iter, alpha)
                for ti, test in enumerate(TESTS)
            ):
                stopped = True
                break
    null = np.concatenate(results) if results else np.zeros((0, len(TESTS), len(_STATS)))
    n_done = null.shape[0] + 1
    seconds = time.perf_counter() - started

    def corrected(null_values: np.ndarray, observed: np.ndarray) -> np.ndarray:
        return _exceedances(null_values, observed) / n_done

    tag = f"{alpha:g}"
    for ti, test in enumerate(TESTS):
        p_vox = np.ones(grid.n_mask)
        p_vox[tested] = corrected(null[:, ti, 0], obs_chi2[ti][tested])
        keys, size, mass = obs_cluster[test]
        lab = obs_labels[test]
        p_size = np.ones(grid.n_mask)
        p_mass = np.ones(grid.n_mask)
        if keys.size:
            ps, pm = corrected(null[:, ti, 1], size), corrected(null[:, ti, 2], mass)
            where = np.searchsorted(keys, lab[lab != 0])
            p_size[lab != 0] = ps[where]
            p_mass[lab != 0] = pm[where]
        base = f"{test}-test"
        for level, p in (("voxel", p_vox), ("cluster-size", p_size), ("cluster-mass", p_mass)):
            _put(out, f"{base}_p_FWE-{level}", p, grid, 1.0,
                 f"FWE-corrected p ({level.replace('-', ' ')}, {n_done} permutations)")
            _put(out, f"{base}_z_FWE-{level}_{tag}", np.where(p <= alpha, z_obs[test], 0.0), grid, 0.0,
                 f"{z_names[test]} where the {level.replace('-', ' ')} FWE p <= {tag}")
        _put(out, f"{base}_cluster", lab.astype(np.float64), grid, 0.0,
             f"clusters at two-sided p < {cluster_p:g} (positive 1, 2, ...; negative -1, -2, ...)")
    out["fwe_null"] = (("fwe_test", "iteration", "fwe_statistic"), null.transpose(1, 0, 2))
    out = out.assign_coords(fwe_test=list(TESTS), fwe_statistic=list(_STATS))
    out["fwe_null"].attrs["long_name"] = "per-permutation maxima (the observed labelling not included)"
    out.attrs.update({
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
    })
    return out


def _put(ds: xr.Dataset, name: str, values: np.ndarray, grid, fill: float, long_name: str) -> None:
    # p maps are 1 outside the brain mask (0 would read as significant), other maps 0
    vol = np.full(grid.shape, fill)
    vol[grid.mask] = values
    ds[name] = (("x", "y", "z"), vol)
    ds[name].attrs["long_name"] = long_name


def _bonferroni(out: xr.Dataset, obs_chi2, tested, z_obs, alpha: float, grid) -> xr.Dataset:
    m = int(tested.sum())
    # log-space survival: exact where p underflows double precision
    log_p = _sstats.chi2.logsf(obs_chi2, 1)
    for ti, test in enumerate(TESTS):
        p = np.minimum(1.0, np.exp(np.minimum(log_p[ti] + math.log(m), 0.0)))
        p[~tested] = 1.0
        _put(out, f"{test}-test_p_bonferroni", p, grid, 1.0, f"Bonferroni-corrected p ({m} tested voxels)")
        _put(out, f"{test}-test_z_bonferroni_{alpha:g}", np.where(p <= alpha, z_obs[test], 0.0), grid, 0.0,
             f"z where the Bonferroni p <= {alpha:g}")
    out.attrs.update({"fwe_method": "bonferroni", "fwe_alpha": alpha, "fwe_n_tested_voxels": m})
    return out
