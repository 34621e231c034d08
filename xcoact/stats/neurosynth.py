"""Counts -> the nine coactivation maps: chi-square tests, p -> z, FDR.

Everything here works on 1-D arrays over the in-mask voxels, in float64.
It transcribes Neurosynth 0.3.8's ``MetaAnalysis`` (:ref:`semantics-maps`); the
order of operations follows it where that could change the last digit.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = [
    "map_names",
    "coactivation_maps",
    "pair_maps",
    "one_way_p",
    "two_way_p",
    "p_to_z",
    "fdr_threshold",
    "P_FLOOR",
    "one_way_chi2",
    "two_way_chi2",
    "uniformity_sign",
    "association_sign",
    "chi2_and_sign",
]

#: Neurosynth's floor for p before p -> z (float64 cannot go much lower).
P_FLOOR = 1e-240


def map_names(q: float = 0.01, prior: float = 0.5) -> list[str]:
    """The nine map names of Neurosynth 0.3.8, in output order.

    Examples
    --------
    >>> map_names()[3:5]
    ['pA_given_pF=0.50', 'pFgA_given_pF=0.50']
    """
    return [
        "pA",
        "pAgF",
        "pFgA",
        f"pA_given_pF={prior:0.2f}",
        f"pFgA_given_pF={prior:0.2f}",
        "uniformity-test_z",
        "association-test_z",
        f"uniformity-test_z_FDR_{q}",
        f"association-test_z_FDR_{q}",
    ]


def chi2_sf_1dof(chi2: np.ndarray) -> np.ndarray:
    """Chi-square survival function with 1 degree of freedom, Neurosynth's ``chdtrc(1, chi2)``.

    Counts are integers, so a map holds few distinct chi-square values (tens
    of thousands at most); evaluating the incomplete gamma function once per
    distinct value gives bit-identical p an order of magnitude faster.
    """
    chi2 = np.asarray(chi2, dtype=np.float64)
    values, inverse = np.unique(chi2, return_inverse=True)
    return special.chdtrc(1, values)[inverse.reshape(chi2.shape)]


def one_way_p(a: np.ndarray, n_selected: int, e: float | np.floating | None = None) -> np.ndarray:
    """Uniformity test: one-way chi-square of each voxel's count against the map mean.

    Parameters
    ----------
    a : (n_voxels,) array
        Selected studies active per in-mask voxel.
    n_selected : int
    e : float, optional
        The expected count; by default the mean of ``a`` (Neurosynth: the mean
        over every in-mask voxel).

    Returns
    -------
    (n_voxels,) float64 array of p (1 dof).
    """
    a = a.astype(np.float64)
    e = np.mean(a) if e is None else e
    return chi2_sf_1dof(one_way_chi2(a, n_selected, e))


def two_way_p(
    a: np.ndarray, b: np.ndarray, n_selected: int, n_unselected: int, *, distinct: bool = False
) -> np.ndarray:
    """Association test: Pearson chi-square of the 2 x 2 table per voxel.

    The table is ``[[a, b], [n_F - a, n_U - b]]`` with no continuity
    correction; a cell whose expected count is 0 contributes 1.0, as in
    Neurosynth.

    Parameters
    ----------
    a, b : (n,) arrays
        Selected / unselected studies active per voxel.
    n_selected, n_unselected : int
    distinct : bool
        The (a, b) pairs are already distinct (skip the search for repeats).

    Returns
    -------
    (n_voxels,) float64 array of p (1 dof).
    """
    chi2 = two_way_chi2(a, b, n_selected, n_unselected)
    # distinct (a, b) pairs give (nearly) distinct chi-squares: no point looking for repeats
    return _chdtrc_1dof(chi2) if distinct else chi2_sf_1dof(chi2)


#: Fewest chi-square values per thread when :func:`_chdtrc_1dof` splits its work (each costs about 0.3 us).
_CHI2_PER_THREAD = 4096


def _chdtrc_1dof(chi2: np.ndarray) -> np.ndarray:
    """``special.chdtrc(1, chi2)``, value by value the same call, shared between a few threads for long arrays.

    The incomplete gamma function is most of a seed's statistics (tens of
    thousands of distinct count pairs); the ufunc releases the GIL.
    """
    from .._threads import split

    chi2 = np.ascontiguousarray(chi2, dtype=np.float64)
    out = np.empty_like(chi2)
    flat_in, flat_out = chi2.reshape(-1), out.reshape(-1)

    def part(lo, hi):
        special.chdtrc(1, flat_in[lo:hi], out=flat_out[lo:hi])

    split(part, flat_in.size, _CHI2_PER_THREAD)
    return out


def p_to_z(p: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Two-tailed p -> signed z, with Neurosynth's 1e-240 floor.

    ``z = |Phi^-1(p / 2)| * sign``, p and p / 2 clipped to >= 1e-240, an
    infinite z replaced by ``|Phi^-1(1e-240)|``.
    """
    p = np.maximum(np.asarray(p, dtype=np.float64), P_FLOOR)
    # scipy's norm.ppf is ndtri(q) * 1.0 + 0.0 on 0 < q < 1 (and +-inf at 0 and 1): the same bits after abs,
    # without the distribution machinery's argument checks
    z = np.abs(special.ndtri(np.maximum(p / 2, P_FLOOR)))
    z[np.isinf(z)] = np.abs(special.ndtri(P_FLOOR))
    return z * sign


def fdr_threshold(p: np.ndarray, q: float, counts: np.ndarray | None = None) -> float:
    """Benjamini-Hochberg threshold over the whole map (one family).

    Returns the largest sorted ``p_(k)`` with ``p_(k) <= k q / m``, or -1
    when none qualifies (so nothing survives ``p <= threshold``).

    Parameters
    ----------
    p : (n,) float array
        p-values; with ``counts``, the distinct values of the map.
    q : float
    counts : (n,) int array, optional
        How many voxels carry each value of ``p`` (``m = counts.sum()``).
        Within a run of equal p-values only the last rank can decide, so this
        gives exactly the per-voxel threshold.
    """
    p = np.asarray(p, dtype=np.float64)
    if counts is None:
        counts = np.ones(p.size, dtype=np.int64)
    # any sort will do: within a run of equal p the last rank is the run's total whatever the order, and only
    # a run's last rank can decide (an unstable sort is about 4x faster on a map's 30,000 distinct values)
    order = np.argsort(p)
    s = p[order]
    rank = np.cumsum(counts[order])
    m = int(rank[-1]) if rank.size else 0
    below = np.flatnonzero(s <= rank.astype(np.float64) * q / m)
    return float(s[below[-1]]) if below.size else -1.0


#: Largest (max total + 1) x (max a + 1) table :func:`count_pairs` builds; past it, it sorts.
_PAIR_TABLE_MAX = 1 << 23


def count_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (a, b) count pairs of a map, which voxel has which, and how many voxels each.

    Returns
    -------
    ua, ub : (n_pairs,) int64 arrays
        The distinct pairs.
    inverse : (n_voxels,) int64 array
        ``(ua[inverse], ub[inverse]) == (a, b)``.
    counts : (n_pairs,) int64 array
        Voxels per pair.

    Notes
    -----
    Keyed by (a + b, a), whose range is small (at most the busiest voxel's
    study count times the selection size), so a lookup table replaces the
    sort of every voxel when it fits in ``_PAIR_TABLE_MAX`` entries.
    """
    t = a + b
    width = int(a.max(initial=0)) + 1
    size = (int(t.max(initial=0)) + 1) * width
    if size <= _PAIR_TABLE_MAX:
        key = t * width + a
        present = np.zeros(size, dtype=bool)
        present[key] = True
        keys = np.flatnonzero(present)
        lookup = np.empty(size, dtype=np.int64)
        lookup[keys] = np.arange(keys.size)
        inverse = lookup[key]
        counts = np.bincount(inverse, minlength=keys.size)
    else:
        keys, inverse, counts = np.unique(t * width + a, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(a.shape)
    ua = keys % width
    ub = keys // width - ua
    return ua, ub, inverse, counts


def coactivation_maps(
    a: np.ndarray, b: np.ndarray, n_selected: int, n_unselected: int, *, q: float = 0.01, prior: float = 0.5
) -> dict[str, np.ndarray]:
    """The nine maps of a study selection from its per-voxel counts.

    Matches Neurosynth 0.3.8 ``MetaAnalysis`` with ``min_studies=1`` (:ref:`semantics-maps`).

    Parameters
    ----------
    a : (n_voxels,) int array
        Selected studies active per in-mask voxel.
    b : (n_voxels,) int array
        Unselected studies active per in-mask voxel.
    n_selected, n_unselected : int
        Both > 0.
    q : float
        FDR rate.
    prior : float
        Uniform prior P(F) for the ``*_given_pF`` maps.

    Returns
    -------
    dict of name -> (n_voxels,) float64 array, in :func:`map_names` order.

    Notes
    -----
    Every map value is a function of the voxel's count pair ``(a, b)`` (and,
    for the uniformity test, of the map mean of ``a``).  The formulas are
    evaluated once per distinct pair, with the same floating-point operations
    as per voxel, and gathered back: identical numbers, several times faster.
    """
    table, inverse = pair_maps(a, b, n_selected, n_unselected, q=q, prior=prior)
    values = table.take(inverse, axis=1)
    return dict(zip(map_names(q, prior), values))


def pair_maps(
    a: np.ndarray, b: np.ndarray, n_selected: int, n_unselected: int, *, q: float = 0.01, prior: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The nine maps of :func:`coactivation_maps` per distinct count pair, and which pair each voxel has.

    Returns
    -------
    table : (9, n_pairs) float64 array
        The maps' values per distinct ``(a, b)`` pair, in :func:`map_names` order.
    inverse : (n_voxels,) int64 array
        The pair of each voxel: ``table[:, inverse]`` are the maps.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    n = n_selected + n_unselected
    e = np.mean(a.astype(np.float64))  # over every in-mask voxel, as Neurosynth
    ua, ub, inverse, counts = count_pairs(a.astype(np.int64, copy=False), b.astype(np.int64, copy=False))

    table = np.empty((9, ua.size), dtype=np.float64)
    a64 = ua.astype(np.float64)
    b64 = ub.astype(np.float64)
    pF = n_selected * 1.0 / n
    pA = np.add(a64, b64, out=table[0])
    pA /= n
    pAgF = np.divide(a64, n_selected, out=table[1])
    pAgU = b64 / n_unselected
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(pAgF * pF, pA, out=table[2])
        pAgF_prior = np.add(prior * pAgF, (1 - prior) * pAgU, out=table[3])
        np.divide(pAgF * prior, pAgF_prior, out=table[4])
    # the uniformity test depends on a alone: once per distinct a (a few hundred values), gathered to the pairs
    present = np.zeros(int(ua.max(initial=0)) + 1, dtype=bool)
    present[ua] = True
    av = np.flatnonzero(present)
    a_of_pair = (np.cumsum(present) - 1)[ua]
    av64 = av.astype(np.float64)
    p_uni_a = one_way_p(av, n_selected, e)
    z_uni_a = p_to_z(p_uni_a, uniformity_sign(av64, e))
    z_uni = np.take(z_uni_a, a_of_pair, out=table[5])
    p_assoc = two_way_p(ua, ub, n_selected, n_unselected, distinct=True)
    z_assoc = p_to_z(p_assoc, association_sign(a64, b64, n_selected, n_unselected))
    table[6] = z_assoc
    # FDR over the map: the distinct values with their voxel counts give the per-voxel threshold
    a_counts = np.bincount(a_of_pair, weights=counts, minlength=av.size).astype(np.int64)
    uni_keep = (p_uni_a <= fdr_threshold(p_uni_a, q, a_counts))[a_of_pair]
    table[7] = np.where(uni_keep, z_uni, 0.0)
    table[8] = np.where(p_assoc <= fdr_threshold(p_assoc, q, counts), z_assoc, 0.0)
    # min_studies = 1: voxels no study activates are 0 everywhere (pFgA is 0/0 there)
    table[:, (ua + ub) == 0] = 0.0
    return table, inverse


# --- the two tests' chi-square and sign: the one place their formulas live --------------------------
# one_way_p, two_way_p, coactivation_maps and the permutations of xcoact.fwe all call these.


def one_way_chi2(a: np.ndarray, n_selected: int, e: float | np.floating) -> np.ndarray:
    """Uniformity test's chi-square per voxel: observed ``(a, n_F - a)`` against expected ``(e, n_F - e)``.

    ``a`` is a float64 array; 0 where the statistic is not finite (``e`` is 0 or
    ``n_selected``: every voxel has that same count, so nothing deviates).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = (a - e) ** 2 / e + ((n_selected - a) - (n_selected - e)) ** 2 / (n_selected - e)
    return np.where(np.isfinite(chi2), chi2, 0.0)


def two_way_chi2(a: np.ndarray, b: np.ndarray, n_selected: int, n_unselected: int) -> np.ndarray:
    """Association test's Pearson chi-square of ``[[a, b], [n_F - a, n_U - b]]`` per voxel (float64).

    No continuity correction; a cell whose expected count is 0 contributes
    1.0, as in Neurosynth 0.3.8 (so a voxel no study, or every study,
    activates gets 2.0).
    """
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    cells = [[a, b], [n_selected - a, n_unselected - b]]
    total = float(n_selected + n_unselected)
    row = [a + b, (n_selected - a) + (n_unselected - b)]
    col = [a + (n_selected - a), b + (n_unselected - b)]
    terms: list[list[np.ndarray]] = [[], []]  # terms[i][j], filled in that order
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(2):
            for j in range(2):
                exp = row[i] * col[j] / total
                terms[i].append(np.where(exp == 0, 1.0, (cells[i][j] - exp) ** 2 / exp))
    # Neurosynth's summation order (its table is the transpose of this one): the last bit of chi2 as in 0.3.8
    return (terms[0][0] + terms[0][1]) + (terms[1][0] + terms[1][1])


def uniformity_sign(a: np.ndarray, e: float | np.floating) -> np.ndarray:
    """Sign of the uniformity z: +1 where a voxel's count is above the expected ``e``."""
    return np.sign(np.asarray(a, dtype=np.float64) - e)


def association_sign(a: np.ndarray, b: np.ndarray, n_selected: int, n_unselected: int) -> np.ndarray:
    """Sign of the association z: +1 where ``P(A|F) > P(A|~F)``, i.e. ``a / n_F > b / n_U``."""
    return np.sign(np.asarray(a, dtype=np.float64) / n_selected - np.asarray(b, dtype=np.float64) / n_unselected)


def chi2_and_sign(
    a: np.ndarray, b: np.ndarray, n_selected: int, n_unselected: int, e: float | np.floating | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square and sign of both tests at every voxel, from the counts.

    Parameters
    ----------
    a, b : (n_voxels,) int arrays
        Selected / unselected studies active per voxel.
    n_selected, n_unselected : int
    e : float, optional
        The uniformity test's expected count; by default the mean of ``a``
        (over every voxel given, as :func:`coactivation_maps`).

    Returns
    -------
    chi2 : (2, n_voxels) float64 array
        Uniformity (:func:`one_way_chi2`) and association (:func:`two_way_chi2`);
        ``chi2_sf_1dof(chi2)`` are the p-values of :func:`one_way_p` and
        :func:`two_way_p`, bit for bit.
    sign : (2, n_voxels) int8 array
        The signs of the z maps (:func:`uniformity_sign`, :func:`association_sign`).

    Examples
    --------
    >>> chi2, sign = chi2_and_sign(np.array([0, 5]), np.array([10, 5]), 10, 90)
    >>> sign.tolist(), bool(chi2[1, 1] > chi2[1, 0])
    ([[-1, 1], [-1, 1]], True)
    """
    a64 = np.asarray(a).astype(np.float64)
    e = np.mean(a64) if e is None else e
    chi2 = np.stack(
        [one_way_chi2(a64, n_selected, e), two_way_chi2(np.asarray(a), np.asarray(b), n_selected, n_unselected)]
    )
    sign = np.stack([uniformity_sign(a64, e), association_sign(a, b, n_selected, n_unselected)]).astype(np.int8)
    return chi2, sign
