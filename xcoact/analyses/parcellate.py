"""Coactivation-based parcellation (CBP): split a region by the coactivation patterns of its voxels.

The meta-analytic procedure of Bzdok et al. (2013), Clos et al. (2013) and
the criteria reviewed by Eickhoff et al. (2015), on the batched engine:

1. **Pools.**  For each ROI voxel and each filter size ``N``, the ``N``
   studies whose nearest reported peak is closest to the voxel (the
   ``"nearest"`` rule of :mod:`xcoact.select`; ``select="distance"`` takes the
   studies with a peak within a radius instead).
2. **Profiles.**  The coactivation map of each pool over the whole brain
   mask: the MKDA density, the proportion of the pool's studies active at
   each voxel (Neurosynth's ``pAgF`` of the pool, from the engine's grouped
   counts).  ``profile="pFgA"`` divides by every study active at the voxel
   instead (Neurosynth's ``pFgA``), which down-weights voxels active in most
   studies; ``profile="ale"`` takes the ALE map of the pool's studies.
3. **Similarity.**  Pearson correlation between the profiles of every pair of
   ROI voxels; distance ``1 - r``.
4. **Clustering.**  k-means with the correlation distance (MATLAB's
   ``kmeans(..., 'Distance', 'correlation')``; the correlation distance is
   the published one, the k-means details are not verified in the papers) for
   each ``K``, with ``n_init`` seeded k-means++ restarts; the restart with the
   smallest summed distance wins.
5. **Consensus.**  For each ``K`` the solutions of the filter sizes are
   matched to each other (Hungarian matching of cluster labels,
   :func:`scipy.optimize.linear_sum_assignment`); the contiguous range of
   filter sizes with the fewest deviants (voxels labelled otherwise than the
   majority of filters) is kept, and each voxel takes its majority label over
   that range.
6. **Criteria** per ``K`` (see :data:`CRITERIA`) and the rule combining them
   into ``k_suggested`` (see :func:`suggest_k`).

How the profiles are computed
-----------------------------
An MKDA profile is a sum of its studies' activation rows, so the Pearson
correlations of the pools need only the Gram matrix of the pooled studies
(their sparse rows from :func:`xcoact.counts.grouped_counts`); an ALE
profile's ``log(1 - ALE)`` is such a sum, so the pools' ALE maps are formed a
slab of the grid at a time and only their cross products kept.  No task holds
every profile; the correlations equal :func:`numpy.corrcoef` of the explicit
profiles (:func:`pool_profiles`).  Details and costs: docs/parcellation.md.

References
----------
Bzdok D, Laird AR, Zilles K, Fox PT, Eickhoff SB (2013). An investigation of
the structural, connectional, and functional subspecialization in the human
amygdala. Hum Brain Mapp 34:3247-3266.

Clos M, Amunts K, Laird AR, Fox PT, Eickhoff SB (2013). Tackling the
multifunctional nature of Broca's region meta-analytically: co-activation-based
parcellation of area 44. NeuroImage 83:174-188.

Eickhoff SB, Thirion B, Varoquaux G, Bzdok D (2015). Connectivity-based
parcellation: critique and implications. Hum Brain Mapp 36:4771-4792.

Chase HW, Grace AA, Fox PT, Phillips ML, Eickhoff SB (2020). Functional
differentiation in the human ventromedial frontal lobe: a data-driven
parcellation. Hum Brain Mapp 41:3266-3283 (the wording of the filter-range
and K criteria, as NiMARE's unfinished CoordCBP quotes it).

Meila M (2007). Comparing clusterings - an information based distance.
J Multivar Anal 98:873-895 (variation of information).

The default values (filter sizes, restarts, K range) and the rule combining
the criteria are xcoact's reading, not verified against the papers' methods:
see docs/parcellation.md, "What the defaults rest on".
"""

from __future__ import annotations

from typing import get_args

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .._version import __version__
from ..choices import FilterRange, PoolProfile, PoolRule
from ..errors import ParameterError, SelectionError

__all__ = [
    "parcellate",
    "pool_ids",
    "pool_profiles",
    "clusters_of",
    "load",
    "kmeans_correlation",
    "variation_of_information",
    "silhouette",
    "hierarchy_index",
    "distance_ratio",
    "match_labels",
    "suggest_k",
    "CRITERIA",
    "DEFAULT_FILTERS",
    "DEFAULT_N_INIT",
    "PROFILES",
]

#: Filter sizes (studies per pool): 20 to 200 in steps of 5.  Our reading of the MACM-CBP papers
#: (Bzdok et al. 2013; Clos et al. 2013), not verified against their methods (docs/parcellation.md).
DEFAULT_FILTERS = tuple(range(20, 201, 5))

#: k-means restarts per (filter size, K): ours (the papers' number of restarts is not verified);
#: raise it for a final analysis, the cost is linear in it.
DEFAULT_N_INIT = 50

#: Coactivation profiles a pool can have (see :func:`parcellate`).
PROFILES = get_args(PoolProfile)

#: The criteria per K, in the ``criterion`` dimension of the result.
CRITERIA = (
    "deviants_pct",  # % of (voxel, filter) labels in the kept filter range that differ from the vote
    "vi_prev_bits",  # variation of information (bits) between the votes at K-1 and K
    "vi_next_bits",  # ... between K and K+1
    "silhouette",  # mean silhouette of the vote, distance 1 - r (r averaged over the kept filters)
    "hierarchy_pct",  # % of voxels not in the dominant K-1 parent cluster of their K cluster (NaN at K = 2)
    "distance_ratio",  # mean inter-cluster / mean intra-cluster distance
    "ratio_change_pct",  # % change of distance_ratio from K-1 to K
    "votes",  # how many criteria favour K (see suggest_k)
)

_REFERENCES = (
    "Bzdok et al. 2013 Hum Brain Mapp 34:3247; Clos et al. 2013 NeuroImage 83:174; "
    "Eickhoff et al. 2015 Hum Brain Mapp 36:4771; Chase et al. 2020 Hum Brain Mapp 41:3266; "
    "Meila 2007 J Multivar Anal 98:873"
)

_K_RULE = (
    "candidates are the K whose deviants_pct is at most that of K-1 and lower than that of K+1 (the last K computed "
    "is never one); each K gets a vote for being a candidate and one from each criterion where it is best among K-1 "
    "and K+1 (the neighbours computed): silhouette highest, hierarchy_pct lowest (not defined at K = 2, where it "
    "would be 0 by construction), ratio_change_pct highest, and vi_next_bits > vi_prev_bits; k_suggested is the "
    "candidate with the most votes, the smallest on a tie (with no candidate, the K with the most votes); xcoact's "
    "combination of the published criteria, not a published rule"
)


# --- validation ------------------------------------------------------------------------------------


def _check_ks(k) -> list[int]:
    values = [k] if isinstance(k, (int, np.integer)) else (list(k) if hasattr(k, "__iter__") else [k])
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2 for v in values):
        raise ParameterError(f"k={k!r} is not valid; expected an int >= 2 or several of them (e.g. k=range(2, 10)).")
    return sorted({int(v) for v in values})


def _check_filters(filters, select: str, n_studies: int) -> list:
    try:
        values = list(filters)
    except TypeError:
        values = [filters]
    if not values:
        raise ParameterError(
            "filters is empty; expected the pool sizes (studies) to use, e.g. filters=range(20, 201, 5)."
        )
    if select == "nearest":
        bad = [
            v for v in values if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v < n_studies
        ]
        if bad:
            raise ParameterError(
                f"filters={values!r}: {bad[:5]} are not valid pool sizes for select='nearest'; expected ints from 1 to "
                f"{n_studies - 1} (fewer than the cube's {n_studies} studies), e.g. filters=range(20, 201, 5)."
            )
        return sorted({int(v) for v in values})
    bad = [
        v
        for v in values
        if isinstance(v, bool)
        or not isinstance(v, (int, float, np.integer, np.floating))
        or not np.isfinite(v)
        or v <= 0
    ]
    if bad:
        raise ParameterError(
            f"filters={values!r}: {bad[:5]} are not valid radii for select='distance'; "
            "expected mm > 0, e.g. filters=[4, 6, 8]."
        )
    return sorted({float(v) for v in values})


def _check_cube(act, profile: str = "mkda") -> None:
    ok = isinstance(act, xr.DataArray) and set(act.dims) == {"study", "x", "y", "z"}
    if ok and act.attrs.get("kernel") == "ale" and profile != "ale":
        raise ParameterError(f"profile={profile!r} reads a boolean cube; the profile of an ALE cube is profile='ale'.")
    if not ok or (act.dtype != bool and act.attrs.get("kernel") != "ale"):
        raise ParameterError(
            "act must be the boolean activation cube (study, x, y, z) from xcoact.activations, or its ALE cube "
            f"(kernel='ale'); got {type(act).__name__}"
            f"{f' with dims {act.dims} of {act.dtype}' if isinstance(act, xr.DataArray) else ''}."
        )


def _ale_kernel(act: xr.DataArray, sample_size, fwhm):
    """The ALE kernel of the profiles: the ALE cube's own, or one sized by ``sample_size`` / ``fwhm``."""
    from ..roi import grid_of
    from ..stats.ale import ALEKernel, _cube_kernel

    if act.attrs.get("kernel") == "ale":
        if sample_size is not None or fwhm is not None:
            raise ParameterError(
                "sample_size/fwhm size the ALE kernel of a binary cube; this ALE cube has its own: drop them."
            )
        return _cube_kernel(act)
    if sample_size is None and fwhm is None:
        raise ParameterError(
            "profile='ale' on a binary cube needs the ALE kernel's size: sample_size=N (subjects) or fwhm=MM for "
            "every study, e.g. sample_size=20; or pass the ALE cube, xcoact.activations(db, kernel='ale')."
        )
    return ALEKernel(sample_size, fwhm, grid_of(act).voxel_size)


# --- pools -----------------------------------------------------------------------------------------


def _roi_voxels(act: xr.DataArray, roi, r: float):
    """The ROI's mask, its in-mask voxels (flat grid indices, C order) and their centres in mm."""
    from ..roi import grid_of, roi_mask

    grid = grid_of(act)
    mask = roi_mask(roi, grid, r)
    flat = np.flatnonzero(mask.values)
    i, j, k = np.unravel_index(flat, grid.shape)
    xyz = np.stack([grid.x[i], grid.y[j], grid.z[k]], axis=1)
    return grid, mask, flat, xyz


def _distances(act: xr.DataArray, xyz: np.ndarray, reach=None) -> np.ndarray:
    """(n_roi, n_studies) mm from each ROI voxel centre to each study's nearest peak.

    The numbers of the ``"distance"`` and ``"nearest"`` selection rules
    (:func:`xcoact.select.min_distances`, the same floating-point operations),
    from each study chunk's peaks (:func:`xcoact.counts.study_scores`).
    ``reach`` (``("nearest", n)`` or ``("distance", mm)``) skips the peaks that
    cannot matter: a study farther than every pool can reach gets ``inf``.
    """
    from ..counts import study_scores

    lo, hi = xyz.min(axis=0), xyz.max(axis=0)

    def to_box(peaks):
        return np.sqrt((np.maximum(np.maximum(lo - peaks, peaks - hi), 0.0) ** 2).sum(axis=1))

    limit = np.inf
    if reach is not None and reach[0] == "distance":
        limit = float(reach[1])
    elif reach is not None:

        def box_score(chunk, block):
            out = np.full((1, chunk.n_studies), np.inf)
            np.minimum.at(out[0], chunk.codes, to_box(chunk.xyz))
            return out

        per_study = study_scores(act, box_score, 1, np.float64)
        if per_study is not None:
            n = min(int(reach[1]), per_study.shape[1])
            # a first bound: every voxel has n studies within the n-th smallest box distance plus the box's diagonal
            limit = float(np.sort(per_study[0])[n - 1] + np.linalg.norm(hi - lo))
            # a tighter one: the exact distances of the 2n studies nearest to the box; each voxel's n-th smallest
            # among them is at least its true n-th smallest, so no study beyond the largest of them is ever pooled
            near = set(act["study"].values[np.argsort(per_study[0], kind="stable")[: 2 * n]].tolist())

            def near_score(chunk, block):
                if chunk.studies is None:
                    return np.zeros((len(xyz), chunk.n_studies))  # no ids to pick by: keep the first bound
                wanted = np.array([v in near for v in chunk.studies.tolist()], dtype=bool)
                keep = wanted[chunk.codes]
                return _nearest_peaks(chunk.xyz[keep], chunk.codes[keep], chunk.n_studies, xyz)

            some = study_scores(act, near_score, len(xyz), np.float64)
            assert some is not None  # the cube gave per_study: it is made of sparse blocks
            if np.isfinite(some).sum(axis=1).min() >= n:
                limit = min(limit, float(np.sort(some, axis=1)[:, n - 1].max()))

    def score(chunk, block):
        peaks, codes = chunk.xyz, chunk.codes
        if np.isfinite(limit):
            keep = to_box(peaks) <= limit
            peaks, codes = peaks[keep], codes[keep]
        return _nearest_peaks(peaks, codes, chunk.n_studies, xyz)

    got = study_scores(act, score, len(xyz), np.float64)
    if got is None:
        raise ParameterError(
            "parcellate needs the database peaks to pool studies by distance, which this cube no longer carries (it "
            "was computed, combined with another array or loaded from a file); build it with xcoact.activations(db)."
        )
    return got


def _nearest_peaks(peaks: np.ndarray, codes: np.ndarray, n_studies: int, xyz: np.ndarray) -> np.ndarray:
    """(n_voxels, n_studies) distance to each study's nearest peak (peaks sorted by study; inf without a peak)."""
    out = np.full((len(xyz), n_studies), np.inf)
    if not len(peaks):
        return out
    studies, starts = np.unique(codes, return_index=True)
    step = max(1, (1 << 21) // len(peaks))  # voxels per pass: about 16 MB per temporary
    px, py, pz = (np.ascontiguousarray(peaks[:, a]) for a in range(3))
    for a in range(0, len(xyz), step):
        v = xyz[a : a + step]
        # (dx^2 + dy^2) + dz^2: the order in which min_distances' sum over the 3 axes adds them
        d2 = (px[None, :] - v[:, 0:1]) ** 2
        d2 += (py[None, :] - v[:, 1:2]) ** 2
        d2 += (pz[None, :] - v[:, 2:3]) ** 2
        out[a : a + step, studies] = np.sqrt(np.minimum.reduceat(d2, starts, axis=1))
    return out


def _pools_of(dist: np.ndarray, f, select: str) -> list[np.ndarray]:
    """Each voxel's pool (study rows, ascending) for one filter: the ``f`` nearest studies, or those within ``f`` mm."""
    if select == "nearest":
        # the "nearest" rule of xcoact.select: stable order, so ties go to the earlier study
        order = np.argsort(dist, axis=1, kind="stable")[:, :f]
        return [np.sort(row) for row in order]
    return [np.flatnonzero(row <= f) for row in dist]


def pool_ids(act: xr.DataArray, roi, n, *, select: PoolRule = "nearest", r: float = 6.0) -> list[np.ndarray]:
    """The pool of studies of each ROI voxel for one filter, as study ids.

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    roi : seed
        An ROI image (or coordinates grown by ``r``), as :func:`xcoact.seed` takes it.
    n : int or float
        Studies per pool (``select="nearest"``) or radius in mm (``"distance"``).
    select : {"nearest", "distance"}

    Returns
    -------
    list of arrays
        One per in-mask ROI voxel (C order of the grid), the ids of its
        studies in cube order: the same studies ``act.coact.seed([[x, y, z]],
        select="nearest", k=n)`` selects at that voxel's centre.
    """
    _check_cube(act, "ale")  # any cube with peaks
    _check_select(select)
    n = _check_filters([n], select, act.sizes["study"])[0]
    _, _, _, xyz = _roi_voxels(act, roi, r)
    ids = act["study"].values
    return [ids[p] for p in _pools_of(_distances(act, xyz, (select, n)), n, select)]


def _check_select(select) -> None:
    if select not in get_args(PoolRule):
        raise ParameterError(
            f"select={select!r} is not a pooling rule of parcellate; expected 'nearest' (the N studies with the "
            "nearest peak, the default) or 'distance' (the studies with a peak within a radius in mm)."
        )


def _check_profile(profile, sample_size=None, fwhm=None) -> None:
    if profile not in PROFILES:
        raise ParameterError(
            f"profile={profile!r} is not known; expected one of 'mkda' (proportion of the pool's studies active at "
            "each voxel, the default), 'pFgA' (pool studies active there / all studies active there) or 'ale' (the "
            "ALE map of the pool's studies)."
        )
    if profile != "ale" and (sample_size is not None or fwhm is not None):
        raise ParameterError(f"sample_size/fwhm size the ALE kernel of profile='ale'; profile={profile!r} has none.")


def pool_profiles(
    act: xr.DataArray,
    roi,
    n,
    *,
    select: PoolRule = "nearest",
    profile: PoolProfile = "mkda",
    r: float = 6.0,
    voxels=None,
    sample_size: float | None = None,
    fwhm: float | None = None,
) -> xr.DataArray:
    """The coactivation profiles of some ROI voxels' pools, as maps over the in-mask voxels (lazy).

    What :func:`parcellate` correlates, made explicit for a few voxels (for
    checks and pictures: :func:`parcellate` itself never holds them).

    Parameters
    ----------
    act, roi, n, select, r
        As in :func:`pool_ids`.
    profile, sample_size, fwhm : {"mkda", "pFgA", "ale"}, float, float
        See :func:`parcellate`.
    voxels : sequence of int, optional
        Positions in the ROI's voxel list (C order); all by default.

    Returns
    -------
    xarray.DataArray
        float64 ``(voxel, mask_voxel)``: ``voxel`` is the ROI voxel's flat
        grid index, ``mask_voxel`` the flat index of each in-mask voxel.
    """
    from ..counts import grouped_counts

    _check_cube(act, profile)
    _check_select(select)
    _check_profile(profile, sample_size, fwhm)
    n = _check_filters([n], select, act.sizes["study"])[0]
    grid, _, flat, xyz = _roi_voxels(act, roi, r)
    take = np.arange(len(flat)) if voxels is None else np.asarray(voxels, dtype=np.int64)
    pools = _pools_of(_distances(act, xyz[take], (select, n)), n, select)
    weights = np.zeros((len(take), act.sizes["study"]), dtype=bool)
    for i, p in enumerate(pools):
        weights[i, p] = True
    if profile == "ale":
        foci, ids, grid = _pooled_foci(act, np.arange(act.sizes["study"]))
        pooled = [[(foci[s], ids[s]) for s in p] for p in pools]
        task = dask.delayed(_ale_profiles)(pooled, _ale_kernel(act, sample_size, fwhm), grid)
        maps = da.from_delayed(task, (len(take), grid.n_mask), dtype=np.float64)
    elif profile == "mkda":
        maps = grouped_counts(act, weights, grid) / weights.sum(axis=1)[:, None]
    else:
        total = grouped_counts(act, np.ones((1, act.sizes["study"]), dtype=bool), grid)[0].astype(np.float64)
        maps = grouped_counts(act, weights, grid) / da.where(total > 0, total, 1.0)[None, :]
    return xr.DataArray(
        maps,
        dims=("voxel", "mask_voxel"),
        coords={"voxel": flat[take], "mask_voxel": grid.mask_flat},
        name="profile",
        attrs={"profile": profile, "filter": n, "select": select},
    )


# --- the study Gram matrix -------------------------------------------------------------------------

#: Studies packed into one group of the grouped counts, as the bits of a float64 weight (exact below 2**53).
_BITS = 52


def _packed_weights(union: np.ndarray, n_studies: int) -> np.ndarray:
    """Groups whose counts carry the activation rows of the studies ``union`` as bits.

    Group ``g`` weighs study ``union[g * 52 + j]`` by ``2**j``: its count at a
    voxel is the sum of the powers of the studies active there, a bit mask
    that float64 holds exactly.  52 studies per group instead of one keeps the
    engine's per-block dense counts 52 times smaller.
    """
    n_groups = -(-len(union) // _BITS)
    weights = np.zeros((max(1, n_groups), n_studies), dtype=np.float64)
    pos = np.arange(len(union))
    weights[pos // _BITS, union] = np.ldexp(1.0, pos % _BITS)
    return weights


def _sparse_rows(block: np.ndarray, n_rows: int | None = None):
    """The studies' activation rows (CSR, one row per study) from a chunk of packed counts ``(groups, n_mask)``."""
    from scipy import sparse

    block = np.asarray(block)
    n_rows = block.shape[0] * _BITS if n_rows is None else n_rows
    grp, vox = np.nonzero(block)
    bits = block[grp, vox].astype(np.uint64)
    rows_of_bit, cols_of_bit = [], []
    for j in range(_BITS):
        on = ((bits >> np.uint64(j)) & np.uint64(1)).astype(bool)
        rows_of_bit.append(grp[on] * _BITS + j)
        cols_of_bit.append(vox[on])
    rows, cols = np.concatenate(rows_of_bit), np.concatenate(cols_of_bit)
    keep = rows < n_rows
    return sparse.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n_rows, block.shape[1]))


def _gram(parts, total, weighting: str):
    """The pooled studies' Gram matrix ``X W X^T``, row sums ``X w`` and ``sum(w)`` over the brain mask.

    ``X`` is the studies' binary activation over the in-mask voxels; ``w`` the
    profile's per-voxel factor (1 for "mkda", 1 / studies active there for
    "pFgA"), ``W = diag(w**2)``.
    """
    from scipy import sparse

    x = sparse.vstack(list(parts), format="csr").astype(np.float64)
    if weighting == "mkda":
        xw = x
        n_vox = float(x.shape[1])
    else:
        total = np.asarray(total, dtype=np.float64).ravel()
        w = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0)
        xw = x @ sparse.diags(w)
        n_vox = float(x.shape[1])
    gram = np.asarray((xw @ xw.T).toarray(), dtype=np.float64)
    sums = np.asarray(xw.sum(axis=1)).ravel()
    return gram, sums, n_vox


def _correlation(gram: np.ndarray, sums: np.ndarray, n_vox: float, pools) -> np.ndarray:
    """Pearson r between the pools' profiles from the study Gram matrix: ``(n_roi, n_roi)``.

    ``pools`` is a sparse (n_roi x n_pooled) 0/1 matrix; a profile is
    ``pools @ X``, so its cross products are ``pools @ G @ pools.T``.
    """
    return _pearson(np.asarray(pools @ (pools @ gram).T), np.asarray(pools @ sums).ravel(), n_vox)


def _pearson(cross: np.ndarray, s: np.ndarray, n_vox: float) -> np.ndarray:
    """Pearson r of profiles from their cross products ``P P^T``, sums ``P 1`` and length ``n_vox``."""
    cov = n_vox * cross - np.outer(s, s)
    var = np.diag(cov).copy()
    scale = np.sqrt(np.where(var > 0, var, np.inf))
    r = cov / scale[:, None] / scale[None, :]
    np.fill_diagonal(r, 1.0)
    return np.clip(r, -1.0, 1.0)


# --- ALE profiles ----------------------------------------------------------------------------------

#: x-planes of the grid per task of the ALE profiles (each task places the pooled studies' kernels near its slab).
_SLAB = 4


def _pooled_foci(act: xr.DataArray, union: np.ndarray):
    """The foci (voxel indices) and ids of the studies ``union`` (cube rows), and the grid they lie on."""
    from ..counts import cube_peaks

    peaks = cube_peaks(act)
    assert peaks is not None  # the pools were drawn from the same peaks
    ptr, ijk = peaks.peak_ptr, peaks.ijk
    return [ijk[ptr[s] : ptr[s + 1]] for s in union], act["study"].values[union], peaks.grid


def _ale_logs(ijk, study, kernel, grid) -> tuple[np.ndarray, np.ndarray]:
    """A study's in-mask voxels and ``log1p(-MA)`` there (float32, as the ALE engine adds them)."""
    idx, ma = kernel.study_map(ijk, grid, study)
    return idx, np.log1p(-ma.astype(np.float32))


def _ale_profiles(pools, kernel, grid) -> np.ndarray:
    """The ALE map of each pool, ``1 - prod(1 - MA)``, from its studies' ``(foci, id)`` one by one."""
    out = np.zeros((len(pools), grid.n_mask))
    for row, pool in zip(out, pools):
        for ijk, study in pool:
            idx, logs = _ale_logs(ijk, study, kernel, grid)
            row[idx] += logs
    return -np.expm1(out)


def _ale_slab(data, kernel, grid, x0: int, x1: int):
    """A slab's share (grid planes ``x0 <= i < x1``) of each filter's ALE profile sums and cross products.

    ``data``: the pooled studies' foci and ids; per filter, the studies it adds to the previous filter's pools
    (pools nest as the filters grow) and the rows of its distinct pools (only those profiles are formed).
    """
    from ..space import Grid

    foci, ids, steps, firsts = data
    # the slab as a grid of its own: its in-mask voxels are the grid's, in the same order, and a study's MA there
    # (foci beyond the slab add what of their kernel reaches into it) costs the slab's voxels, not the grid's
    sub = Grid((x1 - x0, *grid.shape[1:]), grid.affine, grid.mask[x0:x1])
    logs = (_ale_logs(ijk - [x0, 0, 0], study, kernel, sub) for ijk, study in zip(foci, ids))
    rows = [(i.astype(np.int32), v) for i, v in logs]  # int32 voxels, float32 logs: 8 bytes an entry
    cross = [np.zeros((len(f), len(f))) for f in firsts]
    sums = [np.zeros(len(f)) for f in firsts]
    width = max(256, min(4096, (1 << 23) // max(1, len(foci))))  # voxels per dense block of study logs (<= 64 MB)
    for a in range(0, sub.n_mask, width):
        block = np.zeros((len(rows), min(width, sub.n_mask - a)))
        for row, (idx, values) in zip(block, rows):
            lo, hi = np.searchsorted(idx, [a, a + width])
            row[idx[lo:hi] - a] = values[lo:hi]
        pooled = np.zeros((steps[0].shape[0], block.shape[1]))
        for f, (step, first) in enumerate(zip(steps, firsts)):
            pooled += step @ block
            prof = -np.expm1(pooled[first])  # 1 - exp(sum log(1 - MA)): the distinct pools' ALE on this block
            sums[f] += prof.sum(axis=1)
            cross[f] += prof @ prof.T
    return cross, sums


def _ale_stats(act: xr.DataArray, kernel, pools_by_filter, union: np.ndarray):
    """Lazy ``(cross, sums, n_vox, inverse)`` of the pools' ALE profiles per filter: a task per slab, then a sum.

    ``cross`` and ``sums`` are over each filter's distinct pools; ``inverse`` maps every ROI voxel to its pool.
    """
    foci, ids, grid = _pooled_foci(act, union)
    mats = [_pool_matrix(p, union) for p in pools_by_filter]
    steps = [m - prev for m, prev in zip(mats, [0 * mats[0], *mats[:-1]])]
    distinct = [np.unique(m.toarray() > 0, axis=0, return_index=True, return_inverse=True)[1:] for m in mats]
    data = dask.delayed((foci, ids, steps, [d[0] for d in distinct]), pure=True, traverse=False)
    nx = int(grid.shape[0])
    parts = [
        dask.delayed(_ale_slab, pure=True)(data, kernel, grid, x0, min(x0 + _SLAB, nx)) for x0 in range(0, nx, _SLAB)
    ]
    return dask.delayed(_ale_total, pure=True)(parts, grid.n_mask, [d[1].ravel() for d in distinct])


def _ale_total(parts, n_vox: int, inverse):
    cross, sums = ([sum(p[i][f] for p in parts) for f in range(len(inverse))] for i in (0, 1))
    return cross, sums, float(n_vox), inverse


# --- k-means with the correlation distance ---------------------------------------------------------


def _kpp(r: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ centres (voxel indices) under the distance ``1 - r``."""
    n = r.shape[0]
    centres = [int(rng.integers(n))]
    d = 1.0 - r[centres[0]]
    for _ in range(1, k):
        p = np.clip(d, 0, None) ** 2
        total = p.sum()
        nxt = int(rng.choice(n, p=p / total)) if total > 0 else int(rng.integers(n))
        centres.append(nxt)
        d = np.minimum(d, 1.0 - r[nxt])
    return np.asarray(centres)


def kmeans_correlation(
    r: np.ndarray, k: int, *, n_init: int = DEFAULT_N_INIT, seed=0, max_iter: int = 300
) -> tuple[np.ndarray, float]:
    """k-means with the correlation distance, from the correlation matrix alone.

    Each profile is centred and scaled to unit norm; a cluster's centre is
    the mean of its members (MATLAB's ``kmeans(X, k, 'Distance',
    'correlation')``), and a point's distance to it is ``1 - r`` with the
    centre.  In terms of ``R`` (the profiles' Pearson correlations) the
    similarity of voxel ``i`` to cluster ``c`` is ``sum_{j in c} R_ij /
    sqrt(sum_{j, l in c} R_jl)``, so the profiles are never needed.

    Parameters
    ----------
    r : (n, n) array
        Pearson correlations (symmetric, ones on the diagonal).
    k : int
        Number of clusters, ``2 <= k <= n``.
    n_init : int
        k-means++ restarts (run together, as one batch of matrix products).
    seed : int or sequence of int
        Seed of :func:`numpy.random.default_rng`.
    max_iter : int
        Lloyd iterations at most.

    Returns
    -------
    labels : (n,) int64 array, 0..k-1
    cost : float
        Summed distance ``1 - r`` of the voxels to their cluster centre.
    """
    r = np.asarray(r, dtype=np.float64)
    n = r.shape[0]
    if not 2 <= k <= n:
        raise ParameterError(f"k={k} clusters cannot be formed from {n} voxels; expected 2 <= k <= {n}.")
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ParameterError(f"n_init={n_init!r} is not valid; expected an int >= 1 (k-means restarts, e.g. 50).")
    rng = np.random.default_rng(seed)
    labels = np.stack([np.argmax(r[:, _kpp(r, k, rng)], axis=1) for _ in range(n_init)])  # (B, n)
    labels = _lloyd(r, labels, k, max_iter)
    sim = _similarity(r, labels, k)  # recomputed from scratch: the cost does not carry the updates' rounding
    cost = (1.0 - np.take_along_axis(sim, labels[:, :, None], axis=2)[..., 0]).sum(axis=1)
    best = int(np.argmin(cost))  # the first of equal costs
    return labels[best].astype(np.int64), float(cost[best])


def _lloyd(r: np.ndarray, labels: np.ndarray, k: int, max_iter: int) -> np.ndarray:
    """Lloyd iterations of all restarts at once; the cluster sums are updated by the voxels that moved."""
    b, n = labels.shape
    sums = _cluster_sums(r, labels, k)  # (B, n, k): sum of R over each cluster's members
    offsets = (np.arange(b) * k)[:, None]
    for _ in range(max_iter):
        own = np.take_along_axis(sums, labels[:, :, None], axis=2)[..., 0]
        within = np.bincount((labels + offsets).ravel(), weights=own.ravel(), minlength=b * k).reshape(b, k)
        sim = sums / np.sqrt(np.where(within > 0, within, np.inf))[:, None, :]
        new = _fill_empty(np.argmax(sim, axis=2), sim, k)
        mb, mi = np.nonzero(new != labels)
        if mb.size == 0:
            break
        if mb.size > b * n // 8:
            sums = _cluster_sums(r, new, k)
        else:
            cols = r[:, mi].T  # (moved, n); R is symmetric
            view = sums.transpose(0, 2, 1)  # (B, k, n), a view: the updates land in sums
            np.subtract.at(view, (mb, labels[mb, mi]), cols)
            np.add.at(view, (mb, new[mb, mi]), cols)
        labels = new
    return labels


def _cluster_sums(r: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(B, n, k): for each restart, the sum of each voxel's correlations with each cluster's members."""
    b, n = labels.shape
    onehot = np.zeros((b, n, k))
    onehot[np.arange(b)[:, None], np.arange(n)[None, :], labels] = 1.0
    return (r @ onehot.transpose(1, 0, 2).reshape(n, b * k)).reshape(n, b, k).transpose(1, 0, 2)


def _similarity(r: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(B, n, k) correlation of each voxel with each cluster centre, for each restart."""
    sums = _cluster_sums(r, labels, k)
    b = labels.shape[0]
    own = np.take_along_axis(sums, labels[:, :, None], axis=2)[..., 0]
    within = np.bincount((labels + (np.arange(b) * k)[:, None]).ravel(), weights=own.ravel(), minlength=b * k)
    return sums / np.sqrt(np.where(within > 0, within, np.inf)).reshape(b, 1, k)


def _fill_empty(labels: np.ndarray, sim: np.ndarray, k: int) -> np.ndarray:
    """Give an empty cluster the voxel farthest from its own centre (as MATLAB's 'singleton' action)."""
    out = labels.copy()
    n = labels.shape[1]
    sizes = (labels[:, :, None] == np.arange(k)).sum(axis=1)
    for b in np.flatnonzero((sizes == 0).any(axis=1)):
        for c in range(k):
            if not np.any(out[b] == c):
                own = sim[b, np.arange(n), out[b]]
                sizes = np.bincount(out[b], minlength=k)
                own = np.where(sizes[out[b]] > 1, own, np.inf)  # never empty another cluster
                out[b, int(np.argmin(own))] = c
    return out


# --- labels across filters -------------------------------------------------------------------------


def match_labels(labels: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Relabel ``labels`` (0..k-1) to agree best with ``reference`` (Hungarian matching on their overlap)."""
    from scipy.optimize import linear_sum_assignment

    overlap = np.zeros((k, k), dtype=np.int64)
    np.add.at(overlap, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.empty(k, dtype=np.int64)
    mapping[rows] = cols
    return mapping[labels]


def _vote(labels: np.ndarray, k: int) -> np.ndarray:
    """Per voxel, the most frequent label over the rows (the smallest label on a tie)."""
    counts = np.zeros((k, labels.shape[1]), dtype=np.int64)
    for row in labels:
        counts[row, np.arange(labels.shape[1])] += 1
    return np.argmax(counts, axis=0)


def _consensus(labels: np.ndarray, k: int, rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Match every filter's labels to the majority and vote again until stable: (matched, vote)."""
    ref = labels[len(labels) // 2]
    matched = np.stack([match_labels(row, ref, k) for row in labels])
    vote = _vote(matched, k)
    for _ in range(rounds):
        again = np.stack([match_labels(row, vote, k) for row in labels])
        new = _vote(again, k)
        matched = again
        if np.array_equal(new, vote):
            break
        vote = new
    return matched, vote


def _stable_range(dev: np.ndarray) -> np.ndarray:
    """The longest contiguous run of filters whose deviants are at most the median (fewest deviants on a tie)."""
    ok = dev <= np.median(dev)
    best, best_key = None, None
    start = None
    for i in range(len(dev) + 1):
        if i < len(dev) and ok[i]:
            start = i if start is None else start
            continue
        if start is not None:
            key = (i - start, -float(dev[start:i].mean()))
            if best_key is None or key > best_key:
                best, best_key = (start, i), key
            start = None
    assert best is not None  # dev is finite and not empty: some filter is at most the median
    keep = np.zeros(len(dev), dtype=bool)
    keep[best[0] : best[1]] = True
    return keep


def _canonical(vote: np.ndarray, k: int) -> np.ndarray:
    """Renumber clusters by their first voxel (C order of the grid), so labels do not depend on the seed."""
    first = np.array([np.flatnonzero(vote == c)[0] if np.any(vote == c) else len(vote) + c for c in range(k)])
    mapping = np.empty(k, dtype=np.int64)
    mapping[np.argsort(first, kind="stable")] = np.arange(k)
    return mapping


# --- criteria --------------------------------------------------------------------------------------


def variation_of_information(a, b) -> float:
    """Variation of information between two partitions, in bits (log base 2; Meila 2007).

    ``VI = H(A) + H(B) - 2 I(A; B)``.

    Examples
    --------
    >>> variation_of_information([1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 2, 2, 2])
    0.9271749993818661
    """
    a = np.unique(np.asarray(a), return_inverse=True)[1].ravel()
    b = np.unique(np.asarray(b), return_inverse=True)[1].ravel()
    if a.size != b.size or a.size == 0:
        raise ParameterError(
            f"variation_of_information needs two labelings of the same voxels; got {a.size} and {b.size} labels."
        )
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    p = joint / a.size
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mutual = float((p[nz] * np.log2(p[nz] / np.outer(pa, pb)[nz])).sum())
    return float(-(pa * np.log2(pa)).sum() - (pb * np.log2(pb)).sum() - 2.0 * mutual)


def silhouette(distance: np.ndarray, labels) -> float:
    """Mean silhouette of a partition from a distance matrix (Rousseeuw 1987; 0 for a one-voxel cluster)."""
    d = np.asarray(distance, dtype=np.float64)
    labels = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
    k = labels.max() + 1
    onehot = np.zeros((len(labels), k))
    onehot[np.arange(len(labels)), labels] = 1.0
    sizes = onehot.sum(axis=0)
    sums = d @ onehot  # (n, k): summed distance to each cluster
    own = sizes[labels]
    a = np.where(own > 1, sums[np.arange(len(labels)), labels] / np.maximum(own - 1, 1), 0.0)
    other = sums / sizes[None, :]
    other[np.arange(len(labels)), labels] = np.inf
    b = other.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), np.finfo(float).tiny), 0.0)
    return float(s.mean())


def hierarchy_index(labels, parent) -> float:
    """% of voxels not in the dominant parent cluster (at K-1) of their cluster at K."""
    labels = np.asarray(labels)
    parent = np.asarray(parent)
    off = 0
    for c in np.unique(labels):
        members = parent[labels == c]
        off += members.size - np.bincount(members).max()
    return 100.0 * off / labels.size


def distance_ratio(distance: np.ndarray, labels) -> float:
    """Mean distance between voxels of different clusters over the mean distance within clusters."""
    d = np.asarray(distance, dtype=np.float64)
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(labels), dtype=bool)
    within = d[same & off_diag]
    between = d[~same]
    if within.size == 0 or between.size == 0 or within.mean() <= 0:
        return float("nan")
    return float(between.mean() / within.mean())


def _best_among_neighbours(values: np.ndarray, higher: bool) -> np.ndarray:
    out = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if not np.isfinite(v):
            continue
        near = [values[j] for j in (i - 1, i + 1) if 0 <= j < len(values) and np.isfinite(values[j])]
        out[i] = all(v >= w for w in near) if higher else all(v <= w for w in near)
    return out


def _stable(deviants: np.ndarray) -> np.ndarray:
    """Where the deviants criterion holds: no more deviants than at K-1, and more at K+1
    (the next split is less stable)."""
    out = np.zeros(len(deviants), dtype=bool)
    for i, v in enumerate(deviants):
        if not np.isfinite(v) or i + 1 >= len(deviants) or not np.isfinite(deviants[i + 1]):
            continue  # the last K of the table (or one next to a missing value): whether K+1 gets worse is unknown
        before = i == 0 or not np.isfinite(deviants[i - 1]) or v <= deviants[i - 1]
        out[i] = before and deviants[i + 1] > v
    return out


def suggest_k(ks, criteria: np.ndarray) -> tuple[int, np.ndarray]:
    """The suggested K and each K's votes, from the criteria table ``(len(ks), len(CRITERIA))``.

    ``ks`` are consecutive numbers of clusters (the table's rows); K-1 and
    K+1 are the neighbouring rows.

    1. **Stability gate** (the deviants criterion as Chase et al. 2020
       describe it: not more deviants than K-1, more at K+1; without their
       significance test): the candidates are the K where ``deviants_pct``
       is at most its value at K-1 (when computed) and lower than at K+1.
       The last K of the table is never a candidate (K+1 is unknown).
    2. **Votes**: one for being a candidate, and one from each of the other
       criteria where K is at least as good as its computed neighbours: the
       highest ``silhouette``, the lowest ``hierarchy_pct`` (not defined at
       K = 2), the highest ``ratio_change_pct``, and ``vi_next_bits >
       vi_prev_bits`` (going on to K+1 changes the partition more than
       reaching K did).  A NaN gives no vote and is left out of its
       neighbours' comparisons.
    3. ``k_suggested``: the candidate with the most votes, the smallest on
       a tie (parsimony); with no candidate, the K with the most votes.

    This combination is xcoact's, not a published rule: the published
    description we could check (Chase et al. 2020, as NiMARE's unfinished
    ``CoordCBP`` quotes it) states each criterion's condition but no way of
    combining them (see docs/parcellation.md).
    """
    ks = list(ks)
    col = {name: i for i, name in enumerate(CRITERIA)}
    c = np.asarray(criteria, dtype=np.float64)
    stable = _stable(c[:, col["deviants_pct"]])
    votes = (
        stable.astype(int)
        + _best_among_neighbours(c[:, col["silhouette"]], higher=True)
        + _best_among_neighbours(c[:, col["hierarchy_pct"]], higher=False)
        + _best_among_neighbours(c[:, col["ratio_change_pct"]], higher=True)
        + np.nan_to_num(c[:, col["vi_next_bits"]] > c[:, col["vi_prev_bits"]]).astype(int)
    )
    pool = np.flatnonzero(stable) if stable.any() else np.arange(len(ks))
    return ks[int(pool[np.argmax(votes[pool])])], votes


# --- the analysis task -----------------------------------------------------------------------------


def _pool_matrix(pools: list[np.ndarray], union: np.ndarray):
    from scipy import sparse

    lens = np.array([len(p) for p in pools])
    cols = np.searchsorted(union, np.concatenate(pools)) if len(pools) else np.zeros(0, np.int64)
    indptr = np.concatenate([[0], np.cumsum(lens)])
    return sparse.csr_matrix((np.ones(cols.size), cols, indptr), shape=(len(pools), len(union)))


def _analyse(stats, pools_by_filter, union, ks, n_init, seed, filter_range, max_iter):
    """Everything after the counts, in one task: clustering, matching, vote, criteria (``stats``: :func:`_gram`
    or :func:`_ale_stats`)."""
    cross, sums, n_vox = stats[:3]
    n_f = len(pools_by_filter)
    mats = [_pool_matrix(p, union) for p in pools_by_filter]
    n_roi = mats[0].shape[0]

    def corr(f):
        if len(stats) == 4:  # ALE: the distinct pools' correlations, spread to the voxels
            return _pearson(cross[f], sums[f], n_vox)[np.ix_(stats[3][f], stats[3][f])]
        return _correlation(cross, sums, n_vox, mats[f])

    raw = np.zeros((len(ks), n_f, n_roi), dtype=np.int64)
    for f in range(n_f):
        r = corr(f)
        for ik, k in enumerate(ks):
            raw[ik, f] = kmeans_correlation(r, k, n_init=n_init, seed=[int(seed), f, k], max_iter=max_iter)[0]
    # deviants of each filter against the vote of all filters, averaged over K: which filters to keep
    dev_all = np.zeros((len(ks), n_f))
    for ik, k in enumerate(ks):
        matched, vote = _consensus(raw[ik], k)
        dev_all[ik] = 100.0 * (matched != vote[None, :]).mean(axis=1)
    keep = _stable_range(dev_all.mean(axis=0)) if filter_range == "stable" else np.ones(n_f, dtype=bool)
    votes = np.zeros((len(ks), n_roi), dtype=np.int64)
    per_filter = np.zeros((len(ks), n_f, n_roi), dtype=np.int16)
    deviants = np.zeros(len(ks))
    for ik, k in enumerate(ks):
        _, vote = _consensus(raw[ik][keep], k)
        order = _canonical(vote, k)
        votes[ik] = order[vote] + 1
        per_filter[ik] = np.stack([order[match_labels(row, vote, k)] + 1 for row in raw[ik]])
        deviants[ik] = 100.0 * (per_filter[ik][keep] != votes[ik][None, :]).mean()
    # the distance for silhouette and ratio: 1 - r with r averaged over the kept filters
    rbar = np.mean([corr(f) for f in np.flatnonzero(keep)], axis=0)
    dist = 1.0 - rbar
    crit = np.full((len(ks), len(CRITERIA)), np.nan)
    col = {name: i for i, name in enumerate(CRITERIA)}
    by_k = dict(zip(ks, votes))
    ratio = {k: distance_ratio(dist, by_k[k]) for k in ks}
    for ik, k in enumerate(ks):
        crit[ik, col["deviants_pct"]] = deviants[ik]
        crit[ik, col["silhouette"]] = silhouette(dist, by_k[k])
        crit[ik, col["distance_ratio"]] = ratio[k]
        prev = by_k.get(k - 1, np.ones(n_roi, dtype=np.int64) if k == 2 else None)
        if prev is not None:
            crit[ik, col["vi_prev_bits"]] = variation_of_information(prev, by_k[k])
            if k > 2:
                # under the one-cluster "parent" of K = 2 every voxel is in its parent: 0 by construction, which
                # would hand K = 2 a vote it did not earn (the hierarchy criterion compares two real solutions)
                crit[ik, col["hierarchy_pct"]] = hierarchy_index(by_k[k], prev)
        if k + 1 in by_k:
            crit[ik, col["vi_next_bits"]] = variation_of_information(by_k[k], by_k[k + 1])
        if k - 1 in ratio and np.isfinite(ratio[k - 1]) and ratio[k - 1] > 0:
            crit[ik, col["ratio_change_pct"]] = 100.0 * (ratio[k] - ratio[k - 1]) / ratio[k - 1]
    k_best, n_votes = suggest_k(ks, crit)
    crit[:, col["votes"]] = n_votes
    return {
        "labels": votes.astype(np.int16),
        "filter_labels": per_filter,
        "criteria": crit,
        "in_range": keep,
        "k_suggested": np.int64(k_best),
        "deviants_by_filter": dev_all,
    }


def _volumes(labels: np.ndarray, flat: np.ndarray, shape) -> np.ndarray:
    out = np.zeros((labels.shape[0], int(np.prod(shape))), dtype=np.int16)
    out[:, flat] = labels
    return out.reshape(labels.shape[0], *shape)


def parcellate(
    act: xr.DataArray,
    roi,
    k=range(2, 10),
    *,
    filters=DEFAULT_FILTERS,
    select: PoolRule = "nearest",
    profile: PoolProfile = "mkda",
    n_init: int = DEFAULT_N_INIT,
    seed: int = 0,
    filter_range: FilterRange = "stable",
    r: float = 6.0,
    max_iter: int = 300,
    compute: bool = False,
    sample_size: float | None = None,
    fwhm: float | None = None,
) -> xr.Dataset:
    """Coactivation-based parcellation of an ROI (Bzdok et al. 2013; Clos et al. 2013).

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations` (with its peaks:
        the pools are drawn by distance to them).
    roi : seed
        The region to parcellate: an ROI image (voxels > 0) or coordinates
        grown into spheres of radius ``r``; its in-mask voxels are clustered.
    k : int or iterable of int, default range(2, 10)
        Numbers of clusters, each >= 2.
    filters : iterable, default :data:`DEFAULT_FILTERS` (20, 25, ..., 200)
        Pool sizes in studies (``select="nearest"``, our reading of the papers: 20 to 200
        in steps of 5), or radii in mm (``select="distance"``).
    select : {"nearest", "distance"}, default "nearest"
        How a voxel's pool is drawn: the N studies whose nearest peak is
        closest to the voxel centre (ties to the earlier study, as
        ``act.coact.seed(..., select="nearest", k=N)``), or every study with a
        peak within the radius.
    profile : {"mkda", "pFgA", "ale"}, default "mkda"
        The coactivation profile of a pool over the brain mask.  ``"mkda"``:
        the proportion of the pool's studies active at each voxel (the MKDA
        density, Neurosynth's ``pAgF``); the default: it needs no sample
        sizes and is the cheapest (an exact study Gram matrix; see the Notes).
        ``"pFgA"``: pool studies active there / all studies active there.
        ``"ale"``: the ALE map of the pool's studies, ``1 - prod(1 - MA)``
        (:mod:`xcoact.stats.ale`), the profile of the CBP papers; on an ALE
        cube (``kernel="ale"``) with its kernel, on a boolean cube with
        ``sample_size`` or ``fwhm``.
    n_init : int, default :data:`DEFAULT_N_INIT`
        k-means++ restarts per filter size and K.
    seed : int, default 0
        Seed of the restarts; the result is reproducible and does not depend
        on the scheduler.
    filter_range : {"stable", "all"}, default "stable"
        ``"stable"``: keep the longest contiguous run of filter sizes whose
        deviants (averaged over K) are at most their median (our reading of
        Clos et al. 2013's "filter range with the fewest deviants"); ``"all"``:
        vote over every filter size.
    r : float, default 6
        Sphere radius for a coordinate ROI.
    max_iter : int, default 300
        k-means iterations at most.
    compute : bool, default False
        Compute now (:func:`load`): the result then also holds
        ``attrs["k_suggested"]`` and ``attrs["filters_voted"]``.
    sample_size, fwhm : float, optional
        ``profile="ale"`` on a boolean cube: the ALE kernel's size for every
        study (subjects, or mm), as ``xcoact.activations(..., kernel="ale")``.

    Returns
    -------
    xarray.Dataset
        ``labels (k, x, y, z)`` int16, 0 outside the ROI and 1..k inside
        (clusters numbered by their first voxel in the grid's C order);
        ``criteria (k, criterion)`` (see :data:`CRITERIA`);
        ``filter_labels (k, filter, voxel)``: each filter's labels matched to
        the vote, before the vote; ``in_range (filter)``: the filters voted;
        ``deviants_by_filter (k, filter)``: % of voxels each filter labels
        otherwise than the vote of all filters; ``k_suggested ()``;
        ``pool_size (filter, voxel)``; ``roi (x, y, z)``; attrs with the
        provenance (procedure, parameters, the K rule, references).
        ``labels``, ``criteria``, ``filter_labels``, ``in_range`` and
        ``k_suggested`` are lazy (one Dask graph) unless ``compute=True``;
        ``attrs["k_suggested"]`` exists only once computed by :func:`load`
        (``compute=True``, ``res.coact.load()``, :func:`write`).

    Raises
    ------
    ParameterError
        A bad ``k``, ``filters``, ``select``, ``profile``, ``n_init`` or
        ``filter_range``, or a cube without its peaks.
    RoiError
        The ROI has no voxel in the brain mask.
    SelectionError
        The ROI has fewer voxels than the largest K, or a radius pools no study.

    Notes
    -----
    Cost: this call computes the pools: the distance from each ROI voxel to
    each study's nearest peak, over the peaks a pool can reach (as
    ``seed()`` computes its selection at once; on a fresh cube this is the
    first computation, which makes the cube's blocks and so builds each study
    chunk's sparse rows, the engine's one-off step that the computation
    below reuses).  The computation then
    counts the activation rows of the studies in any pool (one grouped count
    over the cube, a group per study), builds their sparse Gram matrix, and
    per filter size forms the ``n_roi x n_roi`` correlations and runs the
    k-means restarts (``n_filters x len(k) x n_init`` of them, batched).
    Memory: the pooled studies' sparse rows, their Gram matrix (pooled
    studies squared) and a few ``n_roi x n_roi`` matrices; no per-voxel map.
    ``profile="ale"`` replaces the rows and Gram matrix by a task per slab of
    the grid (the pooled studies' MA there, the pools' cross products).
    """
    from ..counts import grouped_counts
    from ..result import cube_token
    from ..roi import describe_seed

    _check_cube(act, profile)
    _check_select(select)
    _check_profile(profile, sample_size, fwhm)
    kernel = _ale_kernel(act, sample_size, fwhm) if profile == "ale" else None
    ks = _check_ks(k)
    n_studies = act.sizes["study"]
    filters = _check_filters(filters, select, n_studies)
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ParameterError(f"n_init={n_init!r} is not valid; expected an int >= 1 (k-means restarts, e.g. 50).")
    if filter_range not in get_args(FilterRange):
        raise ParameterError(
            f"filter_range={filter_range!r} is not known; expected 'stable' (fewest deviants) or 'all'."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed={seed!r} is not valid; expected an int >= 0.")
    grid, mask, flat, xyz = _roi_voxels(act, roi, r)
    if len(flat) < max(ks):
        raise SelectionError(
            f"the ROI has {len(flat)} voxels in the brain mask, too few for k={max(ks)} clusters; use k <= {len(flat)}."
        )
    dist = _distances(act, xyz, (select, max(filters)))
    pools = [_pools_of(dist, f, select) for f in filters]
    sizes = np.array([[len(p) for p in by_f] for by_f in pools], dtype=np.int64)
    if (sizes == 0).any():
        fi, vi = (int(v[0]) for v in np.nonzero(sizes == 0))
        nearest = float(_distances(act, xyz[vi : vi + 1]).min())
        raise SelectionError(
            f"filter {filters[fi]:g} mm pools no study at {int((sizes[fi] == 0).sum())} ROI voxel(s) "
            f"(select='distance'), e.g. at {xyz[vi].tolist()} mm, whose nearest peak is {nearest:.4g} mm away. "
            "Use larger radii."
        )
    union = np.unique(np.concatenate([np.concatenate(p) for p in pools]))

    if profile == "ale":
        stats = _ale_stats(act, kernel, pools, union)
    else:
        # the pooled studies' activation rows through the engine, 52 studies to a group (as bits of the weights)
        per = 8  # groups (of 52 studies) per task
        rows = grouped_counts(act, _packed_weights(union, n_studies), grid, groups_per_chunk=per)
        parts = [
            dask.delayed(_sparse_rows, pure=True)(b, min(per * _BITS, len(union) - i * per * _BITS))
            for i, b in enumerate(rows.to_delayed().ravel())
        ]
        total = grouped_counts(act, np.ones((1, n_studies), dtype=bool), grid) if profile == "pFgA" else None
        stats = dask.delayed(_gram, pure=True)(parts, total, profile)
    out = dask.delayed(_analyse, pure=True)(
        stats, pools, union, ks, int(n_init), int(seed), filter_range, int(max_iter)
    )

    def lazy(key, shape, dtype):
        return da.from_delayed(out[key], shape, dtype=dtype)

    n_k, n_f, n_roi = len(ks), len(filters), len(flat)
    volumes = da.from_delayed(
        dask.delayed(_volumes, pure=True)(out["labels"], flat, grid.shape), (n_k, *grid.shape), np.int16
    )
    i, j, kk = np.unravel_index(flat, grid.shape)
    ds = xr.Dataset(
        {
            "labels": (("k", "x", "y", "z"), volumes),
            "criteria": (("k", "criterion"), lazy("criteria", (n_k, len(CRITERIA)), np.float64)),
            "filter_labels": (("k", "filter", "voxel"), lazy("filter_labels", (n_k, n_f, n_roi), np.int16)),
            "in_range": ("filter", lazy("in_range", (n_f,), bool)),
            "deviants_by_filter": (("k", "filter"), lazy("deviants_by_filter", (n_k, n_f), np.float64)),
            "k_suggested": ((), lazy("k_suggested", (), np.int64)),
            "pool_size": (("filter", "voxel"), sizes),
            "roi": (("x", "y", "z"), mask.values),
        },
        coords={
            "k": np.asarray(ks, dtype=np.int64),
            "criterion": list(CRITERIA),
            "filter": np.asarray(filters),
            "voxel": flat,
            "voxel_x": ("voxel", grid.x[i]),
            "voxel_y": ("voxel", grid.y[j]),
            "voxel_z": ("voxel", grid.z[kk]),
            "x": act["x"].values,
            "y": act["y"].values,
            "z": act["z"].values,
        },
    )
    for c in "xyz":
        ds[c].attrs["units"] = "mm"
    ds["labels"].attrs["long_name"] = "cluster of each ROI voxel (majority vote over the kept filter sizes); 0 outside"
    ds["filter_labels"].attrs["long_name"] = "cluster of each ROI voxel per filter size, matched to the vote (1..k)"
    ds["voxel"].attrs["long_name"] = "flat (C-order) grid index of the ROI voxel"
    ds["filter"].attrs["long_name"] = "studies per pool" if select == "nearest" else "pool radius (mm)"
    ds["in_range"].attrs["long_name"] = "filter sizes whose labels were voted (the range with the fewest deviants)"
    ds["pool_size"].attrs["long_name"] = "studies in each voxel's pool"
    ds.attrs = {
        "title": "xcoact coactivation-based parcellation",
        "analysis": "coactivation-based parcellation",
        "database": str(act.attrs.get("database", "")),
        "cube": cube_token(act),
        "r": float(act.attrs.get("r", np.nan)),
        "preset": str(act.attrs.get("preset", "neurosynth")),
        "roi": describe_seed(roi, r),
        "n_roi": int(len(flat)),
        "n_studies": int(n_studies),
        "n_pooled_studies": int(len(union)),
        "select": select,
        "pooling": (
            "the N studies whose nearest peak is closest to the voxel centre"
            if select == "nearest"
            else "the studies with a peak within the radius of the voxel centre"
        ),
        "filters": np.asarray(filters),
        "profile": profile,
        **({"profile_kernel": repr(kernel).strip("<>")} if kernel is not None else {}),
        "similarity": "Pearson correlation of the pools' profiles over the brain mask; distance 1 - r",
        "clustering": "k-means with the correlation distance (centre: mean of the standardised profiles), "
        "k-means++ starts",
        "n_init": int(n_init),
        "seed": int(seed),
        "filter_range": filter_range,
        "matching": "Hungarian matching of labels across filter sizes, then majority vote",
        "vi_log_base": 2,
        "k_rule": _K_RULE,
        "reference": _REFERENCES,
        "xcoact_version": __version__,
    }
    return load(ds) if compute else ds


def load(result: xr.Dataset) -> xr.Dataset:
    """Compute a parcellation in place (``result.load()``) and record ``k_suggested`` and ``filters_voted``
    in its ``attrs``; returns it.  What ``res.coact.load()`` does.

    A lazy result holds the suggested K as the 0-d variable ``k_suggested``
    only: its ``attrs`` cannot hold a value not computed yet, and xarray's
    own ``compute()`` / ``load()`` leave ``attrs`` as they are.
    """
    result.load()
    if "k_suggested" in result and "in_range" in result:
        result.attrs["k_suggested"] = int(result["k_suggested"])
        result.attrs["filters_voted"] = np.asarray(result["filter"].values[result["in_range"].values])
    return result


def clusters_of(result: xr.Dataset, k: int) -> dict[str, xr.DataArray]:
    """The clusters of the K-cluster solution as ROIs: ``{"cluster_1": mask, ...}``.

    Pass the dict to ``act.coact.seed(...)`` (a batch with a ``seed``
    dimension, one MACM per cluster), or two of its masks to
    ``act.coact.contrast(...)``.
    """
    if "labels" not in result or "k" not in result.dims:
        raise ParameterError(
            "clusters_of takes the Dataset that xcoact.analyses.parcellate.parcellate returns "
            "(with labels (k, x, y, z))."
        )
    ks = [int(v) for v in result["k"].values]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) not in ks:
        raise ParameterError(f"k={k!r} is not one of the parcellation's numbers of clusters {ks}.")
    labels = result["labels"].sel(k=int(k)).load()
    out = {}
    for c in range(1, int(k) + 1):
        mask = (labels == c).drop_vars("k")
        mask.name = f"cluster_{c}"
        out[f"cluster_{c}"] = mask
    return out


# --- outputs: label images, criteria table, figure --------------------------------------------------


def output_paths(result: xr.Dataset, outroot) -> dict[str, str]:
    """What :func:`write` writes: ``{outroot}_k{K}_labels.nii.gz`` per K, the criteria TSV and the PNG figure."""
    import os

    root = os.fspath(outroot)
    paths = {f"k{int(k)}": f"{root}_k{int(k)}_labels.nii.gz" for k in result["k"].values}
    paths["criteria"] = f"{root}_criteria.tsv"
    paths["figure"] = f"{root}_parcellation.png"
    return paths


def criteria_table(result: xr.Dataset):
    """The criteria as a pandas DataFrame (one row per K), with the suggested K marked."""
    frame = result["criteria"].load().to_pandas()
    frame.columns.name = None
    frame.insert(0, "suggested", frame.index == int(result["k_suggested"].values))
    return frame


def _label_image(volume: np.ndarray, affine: np.ndarray, k: int):
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume, dtype=np.int16), affine)
    img.header.set_intent("label")
    img.header["descrip"] = f"xcoact CBP K={k}".encode()[:79]
    img.header.set_xyzt_units("mm")
    return img


def write(result: xr.Dataset, outroot, *, overwrite: bool = False, dpi: int = 100) -> list[str]:
    """Compute a parcellation and write its outputs, all of them or none.

    Writes one label image per K (``{outroot}_k{K}_labels.nii.gz``, int16,
    NIfTI intent "label": 0 outside the ROI, 1..K), the criteria table
    (``{outroot}_criteria.tsv``) and a figure (``{outroot}_parcellation.png``,
    :func:`figure`).  Every path is checked before anything is computed, and
    the files are placed together (:func:`xcoact.writers.write_atomically`).
    ``result`` is computed in place (:func:`load`), ``attrs["k_suggested"]`` included.

    Returns
    -------
    list of str
        The paths written.

    Raises
    ------
    OutputError
        An output exists (without ``overwrite``), its folder is missing or
        not writable, or writing fails (nothing is left behind).
    """
    import nibabel as nib

    from ..plot import png_bytes
    from ..space import affine_from_coords
    from ..writers import check_outputs, write_atomically

    paths = output_paths(result, outroot)
    check_outputs([(p, "file", name) for name, p in paths.items()], overwrite=overwrite)
    load(result)
    affine = affine_from_coords(result["x"].values, result["y"].values, result["z"].values)
    writers: dict = {}
    for k in result["k"].values:
        img = _label_image(result["labels"].sel(k=k).transpose("x", "y", "z").values, affine, int(k))
        writers[paths[f"k{int(k)}"]] = lambda tmp, img=img: nib.save(img, tmp)
    table = criteria_table(result).to_csv(sep="\t", index_label="k", float_format="%.6g").encode()
    writers[paths["criteria"]] = lambda tmp: _write_bytes(tmp, table)
    png = png_bytes(figure(result), dpi=dpi)
    writers[paths["figure"]] = lambda tmp: _write_bytes(tmp, png)
    # nibabel picks the compression from the name, so every temporary name ends in ".nii.gz" (the table's and
    # the figure's writers write bytes whatever their temporary name)
    return write_atomically(writers, ".part.nii.gz", overwrite=overwrite)


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def figure(result: xr.Dataset, *, cut: float | None = None):
    """The label maps per K (a coronal and an axial slice through the ROI) and the criteria against K.

    A :class:`matplotlib.figure.Figure` (no pyplot), as :mod:`xcoact.plot` draws.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    res = result.compute() if any(isinstance(v.data, da.Array) for v in result.data_vars.values()) else result
    ks = [int(v) for v in res["k"].values]
    vx, vy, vz = (res[f"voxel_{a}"].values for a in "xyz")
    # the slices through the ROI's centre of mass (nearest voxel centres)
    cy = float(res["y"].values[np.argmin(np.abs(res["y"].values - (np.mean(vy) if cut is None else cut)))])
    cz = float(res["z"].values[np.argmin(np.abs(res["z"].values - np.mean(vz)))])
    pad = 6.0
    xs = (vx.min() - pad, vx.max() + pad)
    ys = (vy.min() - pad, vy.max() + pad)
    zs = (vz.min() - pad, vz.max() + pad)
    ncol = len(ks)
    fig = Figure(figsize=(max(6.0, 1.6 * ncol), 6.6))
    grid = fig.add_gridspec(3, max(ncol, 3), height_ratios=[1, 1, 1.3], hspace=0.45, wspace=0.3)
    cmap = colormaps["tab10"] if max(ks) <= 10 else colormaps["tab20"]
    suggested = int(res["k_suggested"].values)
    for i, k in enumerate(ks):
        lab = res["labels"].sel(k=k).transpose("x", "y", "z")
        for row, (fixed, value, h, v, hl, vl) in enumerate((("y", cy, "x", "z", xs, zs), ("z", cz, "x", "y", xs, ys))):
            ax = fig.add_subplot(grid[row, i])
            sl = lab.sel({fixed: value}).sortby(h).sortby(v)
            data = np.ma.masked_equal(sl.transpose(v, h).values, 0)
            hv, vv = sl[h].values, sl[v].values
            ax.imshow(
                data,
                origin="lower",
                cmap=cmap,
                vmin=1,
                vmax=cmap.N,
                interpolation="nearest",
                extent=(hv[0] - 1, hv[-1] + 1, vv[0] - 1, vv[-1] + 1),
            )
            ax.set_xlim(*hl)
            ax.set_ylim(*vl)
            ax.tick_params(labelsize=6)
            if row == 0:
                ax.set_title(
                    f"K = {k}" + (" *" if k == suggested else ""),
                    fontsize=9,
                    fontweight="bold" if k == suggested else "normal",
                )
            if i == 0:
                ax.set_ylabel(f"{fixed} = {value:g} mm\n{v} (mm)", fontsize=7)
    show = [("deviants_pct", "deviants (%)"), ("silhouette", "silhouette"), ("vi_next_bits", "VI K->K+1 (bits)")]
    col = list(res["criterion"].values)
    for j, (name, label) in enumerate(show):
        ax = fig.add_subplot(grid[2, j])
        ax.plot(ks, res["criteria"].values[:, col.index(name)], "o-", color="0.2", ms=3)
        ax.axvline(suggested, color="tab:red", lw=0.8, ls="--")
        ax.set_xlabel("K", fontsize=8)
        ax.set_title(label, fontsize=8)
        ax.set_xticks(ks)
        ax.tick_params(labelsize=7)
    from ..plot import seed_label

    # the ROI's short label (an image's file stem), not the path of the machine that computed it
    fig.suptitle(
        f"Coactivation-based parcellation of {seed_label(res.attrs.get('roi', 'the ROI'))} "
        f"({res.attrs.get('n_roi')} voxels); suggested K = {suggested}",
        fontsize=9,
    )
    return fig


# --- command line (wired into xcoact.cli) -----------------------------------------------------------


def _parse_range(text: str, what: str) -> list[int]:
    """``2-9``, ``2,3,5`` or ``20-200:5`` -> ints."""
    import re

    t = text.strip()
    m = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?", t)
    if m:
        lo, hi, step = int(m[1]), int(m[2]), int(m[3] or 1)
        if hi >= lo and step >= 1:
            return list(range(lo, hi + 1, step))
    elif re.fullmatch(r"\d+(,\d+)*", t):
        return [int(v) for v in t.split(",")]
    raise ParameterError(
        f"{what} {text!r} is not valid; expected a range like 2-9, a step range like 20-200:5 or a list like 2,3,5."
    )


def add_cli(sub) -> None:
    """The ``xcoact parcellate`` subcommand."""
    p = sub.add_parser(
        "parcellate",
        help="coactivation-based parcellation of an ROI: label images per K, criteria, figure",
        description="Cluster the voxels of an ROI by the coactivation profiles of the studies nearest to each voxel "
        "(Bzdok et al. 2013; Clos et al. 2013), for several numbers of clusters K; writes "
        "{outroot}_k{K}_labels.nii.gz, {outroot}_criteria.tsv and {outroot}_parcellation.png.",
    )
    p.add_argument("--seed", required=True, metavar="ROI.nii.gz", help="the ROI image to parcellate")
    p.add_argument("--k", default="2-9", help="numbers of clusters: a range 2-9 (default) or a list 2,3,5")
    p.add_argument(
        "--filters",
        default=None,
        help="pool sizes in studies: a step range 20-200:5 or a list; default: 20-200:5 (our reading of the papers' "
        "range), the sizes below the database's number of studies",
    )
    p.add_argument("--profile", choices=PROFILES, default="mkda", help="coactivation profile of a pool (default mkda)")
    p.add_argument("--sample-size", type=float, default=None, help="--profile ale: subjects of every study")
    p.add_argument("--fwhm", type=float, default=None, help="--profile ale: kernel FWHM in mm for every study")
    p.add_argument("--n-init", type=int, default=DEFAULT_N_INIT, help=f"k-means restarts (default {DEFAULT_N_INIT})")
    p.add_argument("--random-seed", type=int, default=0, help="seed of the k-means restarts (default 0)")
    p.add_argument(
        "--filter-range",
        choices=get_args(FilterRange),
        default="stable",
        help="vote over the filter range with the fewest deviants (default) or over all filters",
    )
    p.add_argument("--outroot", required=True, help="output prefix")
    p.add_argument("--database", default=None, help="coordinate database; the bundled 100-study sample if omitted")
    p.add_argument("--kernel-r", type=float, default=None, help="radius in mm of each peak's sphere (default 6)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run_cli(args) -> int:
    """Run ``xcoact parcellate``; returns the exit status."""
    import sys
    import time
    import warnings

    from .. import activations, datasets, read_database

    t0 = time.perf_counter()
    database = args.database or datasets.sample_database_path()
    ks = _parse_range(args.k, "--k")
    filters = None if args.filters is None else _parse_range(args.filters, "--filters")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        act = activations(read_database(database), r=args.kernel_r)
        filters = filters or [f for f in DEFAULT_FILTERS if f < act.sizes["study"]]
        res = parcellate(
            act,
            args.seed,
            ks,
            filters=filters,
            profile=args.profile,
            n_init=args.n_init,
            seed=args.random_seed,
            filter_range=args.filter_range,
            sample_size=args.sample_size,
            fwhm=args.fwhm,
        )
        res.attrs["command"] = getattr(args, "command_line", "")
        files = write(res, args.outroot, overwrite=args.overwrite)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"database: {database}{' (bundled sample)' if args.database is None else ''}")
    print(f"ROI: {args.seed} ({res.attrs['n_roi']} voxels); pooled studies: {res.attrs['n_pooled_studies']}")
    print(f"filter sizes: {list(filters)}{' (the defaults below the database size)' if args.filters is None else ''}")
    print(f"suggested K: {res.attrs['k_suggested']} (filter sizes voted: {res.attrs['filters_voted'].tolist()})")
    print("written:")
    for f in files:
        print(f"  {f}")
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0
