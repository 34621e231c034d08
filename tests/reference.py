"""Loop-based reference transcription of SPEC sections 2-6 (test oracle).

This module is deliberately simple: plain Python loops over peaks, sphere
offsets, studies and voxels, with the counting, the chi-square tests and the
Benjamini-Hochberg procedure written out by hand.  It exists only to check
the vectorised xcoact implementation number for number; it is not fast and
is not meant to be.

Only numpy, scipy.stats (chi2, norm) and the standard library are used.

Run ``python3 tests/reference.py`` for a self-check (offset counts, a
hand-computed three-study example and, when nibabel is available, a timing
run on the real 100-study sample).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from scipy.stats import chi2 as _chi2_dist
from scipy.stats import norm as _norm_dist

Voxel = tuple[int, int, int]

#: Default grid of SPEC section 2 (MNI152, 2 mm).
GRID_SHAPE: tuple[int, int, int] = (91, 109, 91)
VOXEL_SIZE_MM: float = 2.0

#: Smallest p-value used when converting p to z (SPEC section 6).
P_FLOOR: float = 1e-240

MAP_NAMES_TEMPLATE = (
    "pA",
    "pAgF",
    "pFgA",
    "pA_given_pF=%0.2f",
    "pFgA_given_pF=%0.2f",
    "uniformity-test_z",
    "association-test_z",
    "uniformity-test_z_FDR_%s",
    "association-test_z_FDR_%s",
)


# --------------------------------------------------------------------------
# Section 2: peak -> voxel
# --------------------------------------------------------------------------


def peak_to_voxel(x: float, y: float, z: float) -> Voxel:
    """Voxel indices of an MNI mm coordinate on the default 2 mm grid.

    SPEC section 2: i = round(-x/2 + 45), j = round(y/2 + 63),
    k = round(z/2 + 36), rounding half to even (numpy's round), so that
    x = 1 mm gives i = 44.  The result may lie outside the grid box.
    """
    i = int(np.round(-float(x) / 2.0 + 45.0))
    j = int(np.round(float(y) / 2.0 + 63.0))
    k = int(np.round(float(z) / 2.0 + 36.0))
    return (i, j, k)


# --------------------------------------------------------------------------
# Section 3: the sphere kernel and the per-study maps
# --------------------------------------------------------------------------


def sphere_offsets(r: float) -> list[Voxel]:
    """Integer voxel offsets of the 'true sphere' of radius r mm (SPEC 3).

    Every (di, dj, dk) with sqrt((2di)^2 + (2dj)^2 + (2dk)^2) <= r.
    r = 6 gives 123 offsets, r = 10 gives 515.  Returned sorted.
    """
    r = float(r)
    if not (r >= 0.0) or math.isinf(r):
        raise ValueError(f"radius must be a finite number >= 0, got {r!r}")
    # No offset with |d| > r/2 can qualify; search one step further to be safe.
    reach = int(math.floor(r / VOXEL_SIZE_MM)) + 1
    offsets: list[Voxel] = []
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            for dk in range(-reach, reach + 1):
                dist = math.sqrt((VOXEL_SIZE_MM * di) ** 2 + (VOXEL_SIZE_MM * dj) ** 2 + (VOXEL_SIZE_MM * dk) ** 2)
                if dist <= r:
                    offsets.append((di, dj, dk))
    offsets.sort()
    return offsets


def _in_box(v: Voxel, shape: Sequence[int] = GRID_SHAPE) -> bool:
    return (0 <= v[0] < shape[0]) and (0 <= v[1] < shape[1]) and (0 <= v[2] < shape[2])


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != GRID_SHAPE:
        raise ValueError(f"mask must have shape {GRID_SHAPE}, got {mask.shape}")
    return mask.astype(bool)


def _sphere_voxels(centre: Voxel, offsets: list[Voxel]) -> set[Voxel]:
    """Sphere around a voxel, keeping only the part inside the grid box."""
    out: set[Voxel] = set()
    ci, cj, ck = centre
    for di, dj, dk in offsets:
        v = (ci + di, cj + dj, ck + dk)
        if _in_box(v):
            out.add(v)
    return out


def _restrict_to_mask(voxels: Iterable[Voxel], mask: np.ndarray) -> set[Voxel]:
    kept: set[Voxel] = set()
    for v in voxels:
        if mask[v]:
            kept.add(v)
    return kept


def study_maps(
    peaks: Iterable[tuple[Hashable, float, float, float]], mask: np.ndarray, r: float
) -> dict[Hashable, set[Voxel]]:
    """Binary activation map of every study, as a set of voxels (SPEC 3).

    ``peaks``: iterable of (study_id, x, y, z) in MNI mm.  Each study's map
    is the union of the radius-r spheres around its peaks' voxels, with
    voxels outside the 91x109x91 box dropped (a peak outside the box still
    contributes its in-box part), then restricted to ``mask``.  Every study
    id seen in ``peaks`` is a key (in order of first appearance), even when
    its set ends up empty.
    """
    mask = _check_mask(mask)
    offsets = sphere_offsets(r)
    union: dict[Hashable, set[Voxel]] = {}
    for study_id, x, y, z in peaks:
        if study_id not in union:
            union[study_id] = set()
        centre = peak_to_voxel(x, y, z)
        union[study_id] |= _sphere_voxels(centre, offsets)
    maps: dict[Hashable, set[Voxel]] = {}
    for study_id, voxels in union.items():
        maps[study_id] = _restrict_to_mask(voxels, mask)
    return maps


# --------------------------------------------------------------------------
# Section 4: the seed ROI
# --------------------------------------------------------------------------


def roi_from_coords(coords: Iterable[Sequence[float]], r: float, mask: np.ndarray) -> set[Voxel]:
    """ROI grown from [x, y, z] mm coordinates (SPEC 4).

    Union of radius-r spheres (same rule as section 3) around the
    coordinates' voxels, restricted to ``mask``.  An ROI with no in-mask
    voxel raises ValueError.
    """
    mask = _check_mask(mask)
    offsets = sphere_offsets(r)
    voxels: set[Voxel] = set()
    for c in coords:
        x, y, z = c
        voxels |= _sphere_voxels(peak_to_voxel(x, y, z), offsets)
    roi = _restrict_to_mask(voxels, mask)
    if not roi:
        raise ValueError("ROI has no voxel inside the brain mask")
    return roi


def roi_from_image(data: np.ndarray, mask: np.ndarray) -> set[Voxel]:
    """ROI from an image already on the grid: voxels with data > 0 (SPEC 4).

    NaN voxels are ignored (never part of the ROI); the result is
    restricted to ``mask``.  An ROI with no in-mask voxel raises ValueError.
    """
    mask = _check_mask(mask)
    data = np.asarray(data, dtype=np.float64)
    if data.shape != GRID_SHAPE:
        raise ValueError(f"image must have shape {GRID_SHAPE}, got {data.shape}")
    # Trivial elementwise part done with numpy; NaN > 0 is False anyway,
    # but make the rule explicit.
    positive = np.zeros(GRID_SHAPE, dtype=bool)
    finite = ~np.isnan(data)
    positive[finite] = data[finite] > 0
    roi: set[Voxel] = set()
    for i, j, k in np.argwhere(positive & mask):
        roi.add((int(i), int(j), int(k)))
    if not roi:
        raise ValueError("ROI has no voxel inside the brain mask")
    return roi


# --------------------------------------------------------------------------
# Section 5: study selection
# --------------------------------------------------------------------------


def select(maps: dict[Hashable, set[Voxel]], roi: set[Voxel], threshold: float | int) -> list[Hashable]:
    """Studies whose map overlaps the ROI enough (SPEC 5), in ``maps`` order.

    overlap = |map & roi|.  Float threshold t: selected when
    overlap / len(roi) > t.  Integer threshold (int / numpy integer, but
    not bool): selected when overlap > t.
    """
    if isinstance(threshold, (bool, np.bool_)):
        raise TypeError("threshold must be a float (proportion) or an int (voxel count), not bool")
    n_roi = len(roi)
    if n_roi == 0:
        raise ValueError("empty ROI")
    is_count = isinstance(threshold, numbers.Integral)
    selected: list[Hashable] = []
    for study_id, voxels in maps.items():
        overlap = 0
        for v in roi:
            if v in voxels:
                overlap += 1
        if is_count:
            if overlap > int(threshold):
                selected.append(study_id)
        else:
            if overlap / n_roi > float(threshold):
                selected.append(study_id)
    return selected


# --------------------------------------------------------------------------
# Section 6: the maps
# --------------------------------------------------------------------------


def _sign(value: float) -> float:
    if value > 0:
        return 1.0
    if value < 0:
        return -1.0
    return 0.0


def _uniformity_chi2(a: int, n_f: int, e: float) -> float:
    """One-way chi-square, SPEC 6: observed (a, nF-a) vs expected (e, nF-e).

    A term whose expected count is 0 is taken as 0 (its observed count is
    then necessarily equal to the expected one: e = 0 means a = 0 at every
    voxel, e = nF means a = nF at every voxel).  SPEC leaves this case
    open; Neurosynth would produce NaN there.
    """
    chi2 = 0.0
    if e != 0.0:
        chi2 += (a - e) ** 2 / e
    if (n_f - e) != 0.0:
        chi2 += ((n_f - a) - (n_f - e)) ** 2 / (n_f - e)
    return chi2


def _association_chi2(a: int, b: int, n_f: int, n_u: int) -> float:
    """Pearson chi-square of [[a, b], [nF-a, nU-b]], SPEC 6.

    No continuity correction.  A cell whose expected count
    (row total * column total / N) is 0 contributes exactly 1.0.
    """
    table = [[a, b], [n_f - a, n_u - b]]
    total = n_f + n_u
    row_totals = [table[0][0] + table[0][1], table[1][0] + table[1][1]]
    col_totals = [table[0][0] + table[1][0], table[0][1] + table[1][1]]
    chi2 = 0.0
    for i in range(2):
        for j in range(2):
            expected = row_totals[i] * col_totals[j] / total
            if expected == 0:
                chi2 += 1.0
            else:
                chi2 += (table[i][j] - expected) ** 2 / expected
    return chi2


def _p_from_chi2(chi2: float) -> float:
    """Survival function of chi-square with 1 degree of freedom."""
    return float(_chi2_dist.sf(chi2, 1))


def _z_from_p(p: float, sign: float) -> float:
    """SPEC 6 p -> z: clip p, halve, clip again, |Phi^-1| * sign, cap inf."""
    if p < P_FLOOR:
        p = P_FLOOR
    half = p / 2.0
    if half < P_FLOOR:
        half = P_FLOOR
    z = abs(float(_norm_dist.ppf(half)))
    if math.isinf(z):
        z = abs(float(_norm_dist.ppf(P_FLOOR)))
    return z * sign


def _bh_threshold(p_values: list[float], q: float) -> float | None:
    """Benjamini-Hochberg cut-off over all m values (SPEC 6).

    Largest p_(k) (ascending order, k from 1) with p_(k) <= k * q / m;
    None when no p qualifies.
    """
    m = len(p_values)
    ordered = sorted(p_values)
    threshold = None
    for idx in range(m):
        k = idx + 1
        if ordered[idx] <= k * q / m:
            threshold = ordered[idx]
    return threshold


def map_names(q: float = 0.01, prior: float = 0.5) -> list[str]:
    """The 9 output names of SPEC 6 for the given q and prior."""
    names = []
    for template in MAP_NAMES_TEMPLATE:
        if "%0.2f" in template:
            names.append(template % prior)
        elif "%s" in template:
            names.append(template % (q,))
        else:
            names.append(template)
    return names


def coactivation_maps(
    maps: dict[Hashable, set[Voxel]],
    selected: Iterable[Hashable],
    mask: np.ndarray,
    q: float = 0.01,
    prior: float = 0.5,
) -> dict[str, np.ndarray]:
    """The 9 coactivation maps of SPEC 6, as float64 arrays on the grid.

    N = number of studies in ``maps``; F = ``selected``; U = the others.
    Per in-mask voxel: a, b (counts of active selected / unselected
    studies), pA, pAgF, pFgA, the prior-weighted maps, the uniformity and
    association z maps and their BH-FDR (level q) thresholded versions.
    Voxels where no study is active (a + b == 0) and voxels outside the
    mask are 0 in every map.  Raises ValueError when there is no study,
    no in-mask voxel, no selected study, every study selected, or a
    selected id that is not in ``maps``.
    """
    mask = _check_mask(mask)
    study_ids = list(maps.keys())
    n_total = len(study_ids)
    if n_total == 0:
        raise ValueError("no study")
    selected_set = set(selected)
    unknown = [s for s in selected_set if s not in maps]
    if unknown:
        raise ValueError(f"selected ids not in maps: {sorted(map(str, unknown))[:5]!r}")
    n_f = 0
    for s in study_ids:
        if s in selected_set:
            n_f += 1
    n_u = n_total - n_f
    if n_f == 0:
        raise ValueError("no study selected")
    if n_u == 0:
        raise ValueError("every study is selected: nothing to compare with")

    # In-mask voxels, in C order.
    voxels: list[Voxel] = [(int(i), int(j), int(k)) for i, j, k in np.argwhere(mask)]
    m = len(voxels)
    if m == 0:
        raise ValueError("empty mask")

    # ---- counting: a_v, b_v -------------------------------------------
    a_count = np.zeros(GRID_SHAPE, dtype=np.int64)
    b_count = np.zeros(GRID_SHAPE, dtype=np.int64)
    for s in study_ids:
        target = a_count if s in selected_set else b_count
        for v in maps[s]:
            if mask[v]:  # maps should already be in-mask; be safe
                target[v] += 1

    # ---- uniformity expected count: mean of a over all in-mask voxels --
    sum_a = 0
    for v in voxels:
        sum_a += int(a_count[v])
    e = sum_a / m

    names = map_names(q, prior)
    (n_pA, n_pAgF, n_pFgA, n_pAprior, n_pFgAprior, n_uz, n_az, n_uz_fdr, n_az_fdr) = names
    out: dict[str, np.ndarray] = {name: np.zeros(GRID_SHAPE, dtype=np.float64) for name in names}

    pF = n_f / n_total
    # Scipy calls are memoised by (a, b): the values only depend on the
    # counts, and scalar scipy calls per voxel would be slow.
    uni_cache: dict[int, tuple[float, float]] = {}
    assoc_cache: dict[tuple[int, int], tuple[float, float]] = {}
    uni_p: list[float] = []
    assoc_p: list[float] = []
    uni_z_list: list[float] = []
    assoc_z_list: list[float] = []
    active: list[bool] = []

    for v in voxels:
        a = int(a_count[v])
        b = int(b_count[v])

        pA = (a + b) / n_total
        pAgF = a / n_f
        pAgU = b / n_u
        pA_given_pF = prior * pAgF + (1 - prior) * pAgU

        # Uniformity test.
        if a not in uni_cache:
            chi2_u = _uniformity_chi2(a, n_f, e)
            p_u = _p_from_chi2(chi2_u)
            z_u = _z_from_p(p_u, _sign(a - e))
            uni_cache[a] = (p_u, z_u)
        p_u, z_u = uni_cache[a]

        # Association test.
        key = (a, b)
        if key not in assoc_cache:
            chi2_a = _association_chi2(a, b, n_f, n_u)
            p_a = _p_from_chi2(chi2_a)
            z_a = _z_from_p(p_a, _sign(pAgF - pAgU))
            assoc_cache[key] = (p_a, z_a)
        p_a, z_a = assoc_cache[key]

        uni_p.append(p_u)
        assoc_p.append(p_a)
        uni_z_list.append(z_u)
        assoc_z_list.append(z_a)

        # min_studies = 1: voxels with no active study stay 0 everywhere.
        is_active = (a + b) >= 1
        active.append(is_active)
        if not is_active:
            continue
        pFgA = pAgF * pF / pA
        if pA_given_pF != 0.0:
            pFgA_given_pF = pAgF * prior / pA_given_pF
        else:  # only possible for prior in {0, 1}; no NaN in the output
            pFgA_given_pF = 0.0
        out[n_pA][v] = pA
        out[n_pAgF][v] = pAgF
        out[n_pFgA][v] = pFgA
        out[n_pAprior][v] = pA_given_pF
        out[n_pFgAprior][v] = pFgA_given_pF
        out[n_uz][v] = z_u
        out[n_az][v] = z_a

    # ---- FDR over all m in-mask voxels (inactive ones included) --------
    uni_thr = _bh_threshold(uni_p, q)
    assoc_thr = _bh_threshold(assoc_p, q)
    for idx in range(m):
        if not active[idx]:
            continue
        v = voxels[idx]
        if uni_thr is not None and uni_p[idx] <= uni_thr:
            out[n_uz_fdr][v] = uni_z_list[idx]
        if assoc_thr is not None and assoc_p[idx] <= assoc_thr:
            out[n_az_fdr][v] = assoc_z_list[idx]

    return out


# --------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------


def _voxel_to_mm(v: Voxel) -> tuple[float, float, float]:
    """Centre of voxel (i, j, k) in mm (SPEC 2)."""
    return (90.0 - 2 * v[0], -126.0 + 2 * v[1], -72.0 + 2 * v[2])


def _self_check_small() -> None:
    # Offsets.
    assert len(sphere_offsets(6)) == 123, len(sphere_offsets(6))
    assert len(sphere_offsets(10)) == 515, len(sphere_offsets(10))
    assert len(sphere_offsets(2)) == 7
    assert len(sphere_offsets(0)) == 1
    assert len(sphere_offsets(5)) == 81  # true sphere, SPEC 3
    # Rounding half to even.
    assert peak_to_voxel(1.0, 0.0, 0.0) == (44, 63, 36)
    assert peak_to_voxel(-1.0, 0.0, 0.0) == (46, 63, 36)
    assert peak_to_voxel(0.0, 0.0, 0.0) == (45, 63, 36)
    assert peak_to_voxel(90.0, -126.0, -72.0) == (0, 0, 0)

    # Small box mask: i 40..50, j 55..65, k 30..40 -> 11^3 = 1331 voxels.
    mask = np.zeros(GRID_SHAPE, dtype=bool)
    mask[40:51, 55:66, 30:41] = True
    m = int(mask.sum())
    assert m == 1331

    c = (45, 60, 35)  # centre voxel
    c_right = (46, 60, 35)  # one voxel along +i
    x1, y1, z1 = _voxel_to_mm(c)
    x3, y3, z3 = _voxel_to_mm(c_right)
    peaks = [
        ("S1", x1, y1, z1),
        ("S2", x1, y1, z1),
        ("S3", x3, y3, z3),
        ("S4", 500.0, 0.0, 0.0),
    ]  # far outside the box: empty map
    maps = study_maps(peaks, mask, 2)
    assert list(maps) == ["S1", "S2", "S3", "S4"]
    assert len(maps["S1"]) == 7 and len(maps["S3"]) == 7 and maps["S4"] == set()
    # Drop S4 for the hand computation (N = 3).
    del maps["S4"]

    # Seed: one voxel at (44, 60, 35) (r = 0) -> overlaps S1 and S2.
    roi = roi_from_coords([list(_voxel_to_mm((44, 60, 35)))], 0, mask)
    assert roi == {(44, 60, 35)}
    assert select(maps, roi, 0) == ["S1", "S2"]
    assert select(maps, roi, 0.5) == ["S1", "S2"]
    assert select(maps, roi, 1) == []
    assert select(maps, roi, 1.0) == []
    # Image ROI with NaN and negative values.
    img = np.zeros(GRID_SHAPE)
    img[44, 60, 35] = 3.0
    img[45, 60, 35] = -1.0
    img[46, 60, 35] = np.nan
    img[0, 0, 0] = 1.0  # outside the mask
    assert roi_from_image(img, mask) == {(44, 60, 35)}

    # F = {S1}; U = {S2, S3}.  N = 3, nF = 1, nU = 2.
    res = coactivation_maps(maps, ["S1"], mask, q=0.01, prior=0.5)
    assert sorted(res) == sorted(
        [
            "pA",
            "pAgF",
            "pFgA",
            "pA_given_pF=0.50",
            "pFgA_given_pF=0.50",
            "uniformity-test_z",
            "association-test_z",
            "uniformity-test_z_FDR_0.01",
            "association-test_z_FDR_0.01",
        ]
    )
    for name, arr in res.items():
        assert arr.shape == GRID_SHAPE and arr.dtype == np.float64
        assert not np.isnan(arr).any(), name
        assert not arr[~mask].any(), name

    e = 7 / 1331  # S1's 7 voxels, all in the mask
    tol = 1e-12

    def show(v: Voxel) -> None:
        print(f"  voxel {v}:", ", ".join(f"{k}={res[k][v]:.6g}" for k in res))

    # Voxel L = (44,60,35): S1 yes, S2 yes (neighbour of c), S3 no
    # (2 voxels = 4 mm from c_right).  a = 1, b = 1.
    L = (44, 60, 35)
    show(L)
    assert abs(res["pA"][L] - 2 / 3) < tol
    assert abs(res["pAgF"][L] - 1.0) < tol
    # pFgA = pAgF * pF / pA = 1 * (1/3) / (2/3)
    assert abs(res["pFgA"][L] - 0.5) < tol
    # pA_given_pF = 0.5 * 1 + 0.5 * 0.5 = 0.75; pFgA_given_pF = 0.5 / 0.75
    assert abs(res["pA_given_pF=0.50"][L] - 0.75) < tol
    assert abs(res["pFgA_given_pF=0.50"][L] - 2 / 3) < tol
    # Association table [[1,1],[0,1]]: rows 2,1; cols 1,2; N = 3.
    # expected [[2/3,4/3],[1/3,2/3]]; every |obs-exp| = 1/3
    # chi2 = (1/9)(3/2 + 3/4 + 3 + 3/2) = 0.75.  With 1 dof the two-sided
    # z is sqrt(chi2); sign(pAgF - pAgU) = sign(1 - 0.5) = +.
    assert abs(_association_chi2(1, 1, 1, 2) - 0.75) < tol
    assert abs(res["association-test_z"][L] - math.sqrt(0.75)) < 1e-9
    # Uniformity: a = 1, chi2 = (1-e)^2/e + (1-e) = (1-e)/e = 1324/7.
    assert abs(_uniformity_chi2(1, 1, e) - 1324 / 7) < 1e-9
    assert abs(res["uniformity-test_z"][L] - math.sqrt(1324 / 7)) < 1e-6

    # Voxel C = centre: a = 1, b = 2 (S2 and S3).  pAgF = pAgU = 1.
    C = c
    show(C)
    assert abs(res["pA"][C] - 1.0) < tol
    assert abs(res["pFgA"][C] - 1 / 3) < tol
    # Table [[1,2],[0,0]]: row 1 expected 0 -> two cells of 1.0; row 0 exact.
    assert abs(_association_chi2(1, 2, 1, 2) - 2.0) < tol
    assert res["association-test_z"][C] == 0.0  # sign(1 - 1) = 0

    # Voxel R = (47,60,35): only S3.  a = 0, b = 1.
    R = (47, 60, 35)
    show(R)
    assert abs(res["pA"][R] - 1 / 3) < tol
    assert res["pAgF"][R] == 0.0 and res["pFgA"][R] == 0.0
    assert abs(res["pA_given_pF=0.50"][R] - 0.25) < tol
    # Table [[0,1],[1,1]]: same |obs-exp| = 1/3 pattern -> chi2 = 0.75, sign -.
    assert abs(res["association-test_z"][R] + math.sqrt(0.75)) < 1e-9
    # Uniformity: a = 0, chi2 = e + e^2/(1-e) = e/(1-e) = 7/1324, sign -.
    assert abs(res["uniformity-test_z"][R] + math.sqrt(7 / 1324)) < 1e-6

    # Voxel Z = (40,55,30): in the mask, no study active -> all zero,
    # even though its association chi2 (= 2.0) is defined.
    Z = (40, 55, 30)
    show(Z)
    for name in res:
        assert res[name][Z] == 0.0, name

    # FDR: uniformity p at S1's 7 voxels ~ 1e-42, the rest ~0.94 -> exactly
    # those 7 survive.  Association p >= sf(2.0) = 0.157 > q: none survive.
    uni_fdr = res["uniformity-test_z_FDR_0.01"]
    assert set(map(tuple, np.argwhere(uni_fdr != 0).tolist())) == maps["S1"]
    for v in maps["S1"]:
        assert uni_fdr[v] == res["uniformity-test_z"][v]
    assert not res["association-test_z_FDR_0.01"].any()

    # BH by hand on a toy list: m = 5, q = 0.1 -> k*q/m = .02 .04 .06 .08 .1
    assert _bh_threshold([0.01, 0.05, 0.03, 0.5, 0.07], 0.1) == 0.07
    assert _bh_threshold([0.5, 0.6], 0.01) is None

    # Pearson chi-square cross-check against scipy on non-degenerate tables.
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(0)
    for _ in range(200):
        n_f_, n_u_ = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        a_, b_ = int(rng.integers(0, n_f_ + 1)), int(rng.integers(0, n_u_ + 1))
        if a_ + b_ in (0, n_f_ + n_u_):
            continue
        ref = chi2_contingency([[a_, b_], [n_f_ - a_, n_u_ - b_]], correction=False)[0]
        assert abs(_association_chi2(a_, b_, n_f_, n_u_) - ref) < 1e-9 * max(1.0, ref)

    # Degenerate selections.
    for bad in ([], ["S1", "S2", "S3"]):
        try:
            coactivation_maps(maps, bad, mask)
        except ValueError:
            pass
        else:
            raise AssertionError(f"expected ValueError for selection {bad!r}")
    try:
        roi_from_coords([[500.0, 0.0, 0.0]], 2, mask)
    except ValueError:
        pass
    else:
        raise AssertionError("expected ValueError for empty ROI")

    # z cap: p = 0 -> |Phi^-1(1e-240)|
    assert _z_from_p(0.0, 1.0) == abs(float(_norm_dist.ppf(1e-240)))
    print("small self-check OK")


_TAL_TO_MNI_M = np.array(
    [
        [0.9254, 0.0024, -0.0118, -1.0207],
        [-0.0048, 0.9316, -0.0871, -1.7667],
        [0.0152, 0.0883, 0.8924, 4.0926],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _timing_on_sample() -> None:
    import csv
    import os
    import time

    db = "/work/shared/data/neurosynth_sample_database.txt"
    template = "/work/shared/data/MNI152_T1_2mm_brain.nii.gz"
    if not (os.path.exists(db) and os.path.exists(template)):
        print("sample data not found; timing skipped")
        return
    nib = None
    for attempt in range(6):
        try:
            import nibabel as nib

            break
        except ImportError:
            if attempt == 5:
                break
            print("nibabel not importable yet; retrying in 60 s")
            time.sleep(60)
    if nib is None:
        print("nibabel missing; timing skipped")
        return

    inv_m = np.linalg.inv(_TAL_TO_MNI_M)
    peaks = []
    with open(db, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = [h.strip().lower() for h in next(reader)]
        col = {h: n for n, h in enumerate(header)}
        for row in reader:
            if not row:
                continue
            x, y, z = (float(row[col["x"]]), float(row[col["y"]]), float(row[col["z"]]))
            if row[col["space"]].strip().upper() == "TAL":
                x, y, z = (inv_m @ np.array([x, y, z, 1.0]))[:3]
            peaks.append((row[col["id"]], float(x), float(y), float(z)))

    mask = np.asarray(nib.load(template).get_fdata()) > 0
    print(f"peaks: {len(peaks)}, mask voxels: {int(mask.sum())}")

    t0 = time.perf_counter()
    maps = study_maps(peaks, mask, 6)
    t1 = time.perf_counter()
    roi = roi_from_coords([[0, 20, 28]], 10, mask)
    chosen = select(maps, roi, 0.1)
    t2 = time.perf_counter()
    res = coactivation_maps(maps, chosen, mask, q=0.01, prior=0.5)
    t3 = time.perf_counter()
    print(f"studies: {len(maps)}, roi voxels: {len(roi)}, selected: {len(chosen)}")
    print(
        f"time: study_maps {t1 - t0:.2f} s, roi+select {t2 - t1:.2f} s, "
        f"coactivation_maps {t3 - t2:.2f} s, total {t3 - t0:.2f} s"
    )
    for name, arr in res.items():
        print(f"  {name:<28s} nonzero={int(np.count_nonzero(arr)):7d}  min={arr.min(): .4f}  max={arr.max(): .4f}")


if __name__ == "__main__":
    _self_check_small()
    _timing_on_sample()
