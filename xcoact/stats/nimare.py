"""Counts -> NiMARE 0.22.1's ``MKDAChi2`` maps, with p in log space.

The ``preset="nimare"`` counterpart of :mod:`xcoact.stats.neurosynth`, on the same counts ``a`` (selected
studies active per in-mask voxel) and ``b`` (unselected).  NiMARE's formulas written out (xcoact never imports
NiMARE): no cap on z, no ``min_studies``, FDR as Benjamini-Hochberg adjusted p of the float32 maps NiMARE
stores; docs/nimare.md lists the differences from Neurosynth.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import ParameterError
from .neurosynth import count_pairs

__all__ = [
    "MAP_NAMES",
    "FDR_NAMES",
    "ALIASES",
    "ICBM_OTHER2TAL",
    "map_names",
    "chi2_logsf_1dof",
    "logp_to_z",
    "bh_adjust_logp",
    "nimare_stored_logp",
    "mkda_chi2_maps",
]

#: Lancaster et al. (2007), Hum Brain Mapp 28:1194-1205, ``icbm_other2tal``; NiMARE's ``utils.tal2mni`` moves
#: ``TAL`` coordinates to MNI with its inverse (Neurosynth: :data:`xcoact.table.TAL_TO_MNI`).
ICBM_OTHER2TAL = np.array(
    [
        [0.9357, 0.0029, -0.0072, -1.0423],
        [-0.0065, 0.9396, -0.0726, -1.3940],
        [0.0103, 0.0752, 0.8967, 3.6475],
        [0.0, 0.0, 0.0, 1.0],
    ]
)

#: The space labels NiMARE moves from Talairach to MNI (``utils._transform_coordinates_to_space``:
#: exact, case-sensitive matches).  Any other label, ``T88`` included, is used as it is.
NIMARE_TAL_LABELS = frozenset({"TAL", "Talairach"})

#: ``MKDAChi2`` maps (``prior=0.5``) in NiMARE's order, without its duplicate names (:data:`ALIASES`).
MAP_NAMES = (
    "z_desc-uniformity",
    "z_desc-association",
    "chi2_desc-uniformity",
    "chi2_desc-association",
    "p_desc-uniformity",
    "p_desc-association",
    "logp_desc-uniformity",
    "logp_desc-association",
    "prob_desc-A",
    "prob_desc-AgF",
    "prob_desc-AgU",
    "prob_desc-FgA",
    "chi2_desc-group2",
    "p_desc-group2",
    "z_desc-group2",
    "logp_desc-group2",
    "prob_desc-AgF_prior",
    "prob_desc-FgA_prior",
)

_FDR_SUFFIX = "_level-voxel_corr-FDR_method-indep"
#: ``FDRCorrector(method="indep")`` maps (``MKDAChi2.correct_fdr_indep``), without its duplicate names.
FDR_NAMES = tuple(
    f"{kind}_desc-{label}{_FDR_SUFFIX}"
    for label in ("uniformity", "group2", "association")
    for kind in ("p", "z", "logp")
)

#: NiMARE's duplicate names -> the map they copy: ``group1`` is the selected group (the
#: uniformity test, p(A|F)); ``prob_desc-group2`` is p(A|U).
ALIASES = {
    "prob_desc-group1": "prob_desc-AgF",
    "prob_desc-group2": "prob_desc-AgU",
    "chi2_desc-group1": "chi2_desc-uniformity",
    "p_desc-group1": "p_desc-uniformity",
    "z_desc-group1": "z_desc-uniformity",
    "logp_desc-group1": "logp_desc-uniformity",
    **{f"{kind}_desc-group1{_FDR_SUFFIX}": f"{kind}_desc-uniformity{_FDR_SUFFIX}" for kind in ("p", "z", "logp")},
}

_LN2 = np.log(2.0)
_LN10 = np.log(10.0)
_SQRT2 = np.sqrt(2.0)
#: NiMARE's p floor, the smallest positive float32 (1.4e-45, a denormal): its ``MetaResult``
#: clips every ``p_`` map to it before storing the map as float32.
P_FLOOR_F32 = float(np.nextafter(np.float32(0), np.float32(1)))


def map_names(q: float = 0.01, prior: float = 0.5, *, aliases: bool = False) -> list[str]:
    """The map names of the NiMARE preset, in output order.

    Parameters
    ----------
    q : float
        Ignored (NiMARE's FDR maps are adjusted p, not thresholded); as :func:`.neurosynth.map_names`.
    prior : float
        Ignored.
    aliases : bool
        Also NiMARE's duplicate names (:data:`ALIASES`).

    Returns
    -------
    list of str

    Examples
    --------
    >>> map_names()[:2]
    ['z_desc-uniformity', 'z_desc-association']
    >>> len(map_names()), len(map_names(aliases=True))
    (27, 36)
    """
    names = list(MAP_NAMES) + list(FDR_NAMES)
    if aliases:
        names += list(ALIASES)
    return names


def chi2_logsf_1dof(chi2: np.ndarray) -> np.ndarray:
    """Natural log of the chi-square (1 dof) upper tail, finite where p underflows.

    ``log erfc(sqrt(c / 2))``, and ``log 2 + log_ndtr(-sqrt(c))`` past about ``c = 1,290``; capped at 0.
    NiMARE's operations (``transforms.chi2_to_nlogp``) in its order: its float64 values bit for bit.

    Parameters
    ----------
    chi2 : (n,) array of float, >= 0

    Returns
    -------
    (n,) float64 array, ``log p <= 0``

    Examples
    --------
    >>> round(float(chi2_logsf_1dof(np.array([3000.0]))[0]), 3)     # p = 10**-653
    -1504.229
    """
    chi2 = np.asarray(chi2, dtype=np.float64)
    y = np.sqrt(chi2 / 2.0)
    tail = special.erfc(y)
    with np.errstate(divide="ignore"):
        out = np.log(tail)
    deep = tail < np.finfo(np.float64).tiny
    if deep.any():
        out[deep] = _LN2 + special.log_ndtr(-y[deep] * _SQRT2)
    return np.minimum(out, 0.0)


def logp_to_z(logp: np.ndarray) -> np.ndarray:
    """Two-tailed ``log p`` -> unsigned z, ``-ndtri_exp(log p - log 2)``: no underflow, no cap.

    Parameters
    ----------
    logp : (n,) array

    Returns
    -------
    (n,) float64 array

    Examples
    --------
    >>> float(logp_to_z(chi2_logsf_1dof(np.array([3000.0])))[0]) ** 2    # doctest: +ELLIPSIS
    3000.0...
    """
    return -special.ndtri_exp(np.asarray(logp, dtype=np.float64) - _LN2) + 0.0


def bh_adjust_logp(logp: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, in log space, over one family.

    ``log p_adj(k) = min_{j >= k} (log p_(j) - log(j / m))``, capped at 0
    (NiMARE's ``stats.nlogp_fdr(method="bh")``).

    Parameters
    ----------
    logp : (n,) float array
        ``log p`` of each test; with ``counts``, the distinct values of the map.
    counts : (n,) int array, optional
        How many tests carry each value (``m = counts.sum()``; ties take their run's last rank).

    Returns
    -------
    (n,) float64 array of adjusted ``log p``, aligned with ``logp``.

    Examples
    --------
    >>> np.exp(bh_adjust_logp(np.log([0.01, 0.04, 0.03, 0.5]))).round(4)
    array([0.04  , 0.0533, 0.0533, 0.5   ])
    """
    logp = np.asarray(logp, dtype=np.float64)
    if counts is None:
        counts = np.ones(logp.size, dtype=np.int64)
    order = np.argsort(logp, kind="stable")
    rank = np.cumsum(np.asarray(counts, dtype=np.int64)[order])
    m = int(rank[-1]) if rank.size else 0
    adjusted = logp[order] - np.log(rank / m)
    adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    out = np.empty_like(adjusted)
    out[order] = np.minimum(adjusted, 0.0)
    return out


def nimare_stored_logp(logp: np.ndarray) -> np.ndarray:
    """The ``log p`` NiMARE's ``MKDAChi2.correct_fdr_indep`` reads back from its float32 maps.

    The log of the stored float32 ``p_desc-*`` map, or at its floor ``-ln 10`` times the stored
    ``logp_desc-*`` map: float32's ties and rounding, which Benjamini-Hochberg then follows (docs/nimare.md).

    Parameters
    ----------
    logp : (n,) float array
        Natural ``log p`` (:func:`chi2_logsf_1dof`).

    Returns
    -------
    (n,) float64 array of ``log p``, as NiMARE's Benjamini-Hochberg step sees them.

    Examples
    --------
    >>> float(nimare_stored_logp(np.log([0.1]))[0]) == float(np.log(np.float64(np.float32(0.1))))
    True
    >>> x = nimare_stored_logp(np.array([-200.0, -2000.0]))     # at the floor: from the float32 -log10 p
    >>> bool(x[0] == -np.log(10.0) * np.float64(np.float32(200 / np.log(10.0))))
    True
    """
    logp = np.asarray(logp, dtype=np.float64)
    p32 = _p_map32(logp)
    with np.errstate(divide="ignore"):
        out = np.log(p32.astype(np.float64))
    floored = p32 <= np.float32(P_FLOOR_F32)
    if floored.any():
        logp10 = _logp10_map(logp[floored]).astype(np.float32)
        out[floored] = -_LN10 * logp10.astype(np.float64)
    return out


def _p_map32(logp: np.ndarray) -> np.ndarray:
    # the p map as NiMARE's MetaResult stores it: float32, floored at float32's smallest positive
    return np.clip(np.exp(logp).astype(np.float32), np.float32(P_FLOOR_F32), np.float32(1.0))


def _p_map(logp: np.ndarray) -> np.ndarray:
    # p itself, floored where NiMARE floors its (float32) p maps, so a float32 copy is NiMARE's map
    return np.clip(np.exp(logp), P_FLOOR_F32, 1.0)


def _logp10_map(logp: np.ndarray) -> np.ndarray:
    # NiMARE's "logp" maps hold -log10(p); "+ 0.0" turns the -0.0 of p == 1 into 0.0
    return np.clip(logp / -_LN10 + 0.0, 0.0, np.finfo(np.float64).max)


def _check_counts(a, b, n_selected, n_unselected) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ParameterError(f"a and b must be 1-D count arrays of one length; got shapes {a.shape} and {b.shape}.")
    for name, n in (("n_selected", n_selected), ("n_unselected", n_unselected)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"{name}={n!r} is not valid; expected a positive number of studies.")
    if a.size and (a.min() < 0 or b.min() < 0 or a.max() > n_selected or b.max() > n_unselected):
        raise ParameterError(
            f"counts out of range: a in [{a.min()}, {a.max()}], b in [{b.min()}, {b.max()}]; expected "
            f"0 <= a <= n_selected={n_selected} and 0 <= b <= n_unselected={n_unselected}."
        )
    return a.astype(np.int64), b.astype(np.int64)


def mkda_chi2_maps(
    a: np.ndarray, b: np.ndarray, n_selected: int, n_unselected: int, *, prior: float = 0.5, aliases: bool = False
) -> dict[str, np.ndarray]:
    """NiMARE 0.22.1's ``MKDAChi2`` maps and their ``FDRCorrector(method="indep")`` maps (to float32 rounding).

    Parameters
    ----------
    a : (n_voxels,) int array
        Selected studies active per in-mask voxel.
    b : (n_voxels,) int array
        Unselected studies active per in-mask voxel.
    n_selected, n_unselected : int
        Both >= 1.
    prior : float
        NiMARE's uniform prior for ``prob_desc-AgF_prior`` and ``prob_desc-FgA_prior``.
    aliases : bool
        Also return NiMARE's duplicate names (:data:`ALIASES`), as copies.

    Returns
    -------
    dict of name -> (n_voxels,) float64 array, in :func:`map_names` order.

    Raises
    ------
    ParameterError
        Counts of different shapes or out of range, or group sizes < 1.

    Notes
    -----
    The formulas are in docs/nimare.md; they run once per distinct ``(a, b)`` pair, with the operations they
    would apply per voxel.

    Examples
    --------
    >>> maps = mkda_chi2_maps(np.array([0, 1, 5, 2]), np.array([0, 3, 1, 2]), 5, 20)
    >>> maps["prob_desc-AgF"].tolist()
    [0.0, 0.2, 1.0, 0.4]
    >>> float(maps["chi2_desc-association"][0])    # no study active: NiMARE's 2
    2.0
    """
    a, b = _check_counts(a, b, n_selected, n_unselected)
    n_sel = int(n_selected)
    n_uns = int(n_unselected)
    n = n_sel + n_uns
    ua, ub, inverse, counts = count_pairs(a, b)
    fa = ua.astype(np.float64)
    fb = ub.astype(np.float64)
    # the map means are over every voxel, not over the distinct pairs
    mean_a = np.mean(a.astype(np.float64))
    mean_b = np.mean(b.astype(np.float64))

    pF = n_sel / n
    pA = (fa + fb) / n
    pAgF = fa / n_sel
    pAgU = fb / n_uns
    with np.errstate(divide="ignore", invalid="ignore"):
        pFgA = pAgF * pF / pA
        pAgF_prior = prior * pAgF + (1 - prior) * pAgU
        pFgA_prior = pAgF * prior / pAgF_prior

    tests = {}
    for label, counts_, mean, n_group in (("uniformity", fa, mean_a, n_sel), ("group2", fb, mean_b, n_uns)):
        denominator = mean * (n_group - mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            chi2 = (counts_ - mean) ** 2 * n_group / denominator
        chi2 = np.where(denominator == 0, 0.0, chi2)
        tests[label] = (chi2, np.sign(counts_ - mean))
    row0 = fa + fb
    row1 = n - row0
    with np.errstate(divide="ignore", invalid="ignore"):
        numerator = n * (fa * n_uns - fb * n_sel) ** 2
        denom = row0 * row1 * n_sel * n_uns
        assoc = numerator / denom
    assoc[denom == 0] = 2.0
    tests["association"] = (assoc, np.sign(pAgF - pAgU))

    values = {
        "prob_desc-A": pA,
        "prob_desc-AgF": pAgF,
        "prob_desc-AgU": pAgU,
        "prob_desc-FgA": pFgA,
        "prob_desc-AgF_prior": pAgF_prior,
        "prob_desc-FgA_prior": pFgA_prior,
    }
    for label, (chi2, sign) in tests.items():
        logp = chi2_logsf_1dof(chi2)
        z = np.sqrt(chi2) * sign
        values.update({f"z_desc-{label}": z, f"chi2_desc-{label}": chi2})
        values.update({f"p_desc-{label}": _p_map(logp), f"logp_desc-{label}": _logp10_map(logp)})
        # NiMARE adjusts the p it stored (float32), not the float64 p: same inputs, same ties and minima
        adjusted = bh_adjust_logp(nimare_stored_logp(logp), counts)
        values[f"p_desc-{label}{_FDR_SUFFIX}"] = _p_map(adjusted)
        values[f"z_desc-{label}{_FDR_SUFFIX}"] = logp_to_z(adjusted) * np.sign(z)  # signed as the stored z
        values[f"logp_desc-{label}{_FDR_SUFFIX}"] = _logp10_map(adjusted)
    out = {name: values[name][inverse] for name in map_names()}
    if aliases:
        for alias, name in ALIASES.items():
            out[alias] = out[name].copy()
    return out


def _nimare_peak_xyz(xyz: np.ndarray, space: np.ndarray) -> np.ndarray:
    """Peak mm as NiMARE places them, from the table's (MNI) ``xyz`` and its ``space`` labels.

    Talairach rows are taken back (``icbm_spm2tal @ mni``, a few ulps); NiMARE moves those labelled exactly
    ``TAL`` or ``Talairach`` with ``inv(icbm_other2tal)`` in its order, and keeps the others' original mm.
    """
    from ..table import ICBM_SPM2TAL, TAL_LABELS

    xyz = np.array(xyz, dtype=np.float64).reshape(-1, 3)
    space = np.asarray(space).astype(str)
    labels, label_of = np.unique(space, return_inverse=True)
    label_of = label_of.ravel()
    moved_by_xcoact = np.isin(np.char.upper(np.char.strip(labels)), list(TAL_LABELS))[label_of]
    moved_by_nimare = np.isin(labels, list(NIMARE_TAL_LABELS))[label_of]
    if not moved_by_xcoact.any():
        return xyz
    rows = np.flatnonzero(moved_by_xcoact)
    tal = (np.column_stack([xyz[rows], np.ones(rows.size)]) @ ICBM_SPM2TAL.T)[:, :3]
    xyz[rows] = tal
    nim = moved_by_nimare[rows]
    if nim.any():
        # NiMARE: coords (3, n) with a row of ones, left-multiplied by the inverted matrix
        homog = np.concatenate((tal[nim].T, np.ones((1, int(nim.sum())))))
        xyz[rows[nim]] = np.dot(np.linalg.inv(ICBM_OTHER2TAL), homog)[:3].T
    return xyz
