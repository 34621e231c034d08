"""Activation likelihood estimation (ALE): the kernel, modelled activation, the approximate null, p and z.

NiMARE 0.22.1's numbers (``get_ale_kernel``, ``compute_ale_ma``, ``ALE(null_method="approximate")``) on
numpy arrays, the ALE kernel of the cube (:class:`ALEKernel`), an ALE seed, a whole database's ALE, and the
doors onto :mod:`xcoact.stats.ale_null`.  docs/ale.md gives the formulas and NiMARE's details kept here.
"""

from __future__ import annotations

import functools
import math
import os
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast, get_args

import numpy as np
from scipy import ndimage, special

from ..choices import AleEngine, BothRule, PresetName, SelectRule
from ..errors import ParameterError, first_few, quote
from ..space import Grid
from .components import compiled

if TYPE_CHECKING:
    from ..presets import Preset

__all__ = [
    "HIST_STEPS",
    "ale_fwhm",
    "ale_kernel",
    "ale_maps",
    "ale_null",
    "ale_stat",
    "kernel_support",
    "null_to_p",
    "p_to_z",
    "study_ma",
    "study_sample_sizes",
]

#: Bins per unit of MA / ALE in the approximate null (bin width 1e-5), as NiMARE.
HIST_STEPS = 100000
#: 1 / (centres[1] - centres[0]) of every null's bins.
_INV_STEP = 1 / np.round(1 / HIST_STEPS, 5)
#: Side of the cube the kernel is built in (voxels), as NiMARE.
_CUBE = 31

#: Eickhoff et al. (2009): mean distance between templates (5.7 mm) and between subjects (11.6 mm).
_TEMPLATE_MM = 5.7
_SUBJECT_MM = 11.6


def _check_positive(value, name: str, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name}={value!r} is not a number; expected a finite number > 0, e.g. {example}.")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{name}={value!r} is not valid; expected a finite number > 0, e.g. {example}.")
    return value


def ale_fwhm(sample_size: float) -> float:
    """The ALE kernel's FWHM (mm) for a study of ``sample_size`` subjects (Eickhoff et al. 2009).

    Parameters
    ----------
    sample_size : float
        Number of subjects, > 0.

    Returns
    -------
    float
        ``sqrt(template**2 + subject**2)`` with ``template = 5.7 * c`` and
        ``subject = 11.6 * c / sqrt(N)``, ``c = sqrt(8 ln 2) / (2 sqrt(2 / pi))``.

    Examples
    --------
    >>> round(ale_fwhm(20), 4)
    9.2412
    """
    n = _check_positive(sample_size, "sample_size", "sample_size=20")
    # written in NiMARE's order of operations, so the float64 result is the same bits
    templates = _TEMPLATE_MM / (2.0 * np.sqrt(2.0 / np.pi)) * np.sqrt(8.0 * np.log(2.0))
    subjects = (_SUBJECT_MM / (2 * np.sqrt(2 / np.pi)) * np.sqrt(8 * np.log(2))) / np.sqrt(n)
    return float(np.sqrt(subjects**2 + templates**2))


def _resolve_fwhm(sample_size, fwhm) -> tuple[float, bool]:
    """The FWHM in mm, and whether it was given in mm (NiMARE then divides it by the float32 zoom in float32)."""
    if (sample_size is None) == (fwhm is None):
        raise ParameterError(
            f"sample_size={sample_size!r}, fwhm={fwhm!r}: give exactly one; the ALE kernel is sized either by a "
            "study's number of subjects (e.g. sample_size=20) or by a fixed width in mm (e.g. fwhm=10)."
        )
    if fwhm is None:
        return ale_fwhm(sample_size), False
    return _check_positive(fwhm, "fwhm", "fwhm=10"), True


def ale_kernel(
    sample_size: float | None = None, *, fwhm: float | None = None, voxel_size: Sequence[float] = (2.0, 2.0, 2.0)
) -> tuple[float, np.ndarray]:
    """The ALE kernel on the grid: NiMARE's ``get_ale_kernel`` array.

    Parameters
    ----------
    sample_size : float, optional
        Subjects of the study; the FWHM is :func:`ale_fwhm` of it.
    fwhm : float, optional
        A fixed FWHM in mm instead.  Exactly one of the two.
    voxel_size : (3,) float
        Voxel edges (mm); the width in voxels is ``fwhm / sqrt(dx dy dz)``
        (NiMARE's rule, computed in float32 as from a NIfTI header).

    Returns
    -------
    fwhm : float
        The FWHM in mm.
    kernel : (n, n, n) float64 array
        The cropped kernel, peak in the centre voxel ``n // 2`` (a copy).

    Raises
    ------
    ParameterError
        Neither or both of ``sample_size`` and ``fwhm``, or a value <= 0.

    Examples
    --------
    >>> fwhm, k = ale_kernel(20)
    >>> k.shape, round(float(k.sum()), 6)
    ((17, 17, 17), 1.0)
    """
    fwhm_mm, given = _resolve_fwhm(sample_size, fwhm)
    return fwhm_mm, _kernel(fwhm_mm, _zoom_root(voxel_size), given).copy()


def _zoom_root(voxel_size) -> float:
    """``sqrt(prod(zooms))`` in float32, as NiMARE takes it from a header's float32 zooms."""
    vs = np.abs(np.asarray(voxel_size, dtype=np.float64)).reshape(-1)
    if vs.size != 3 or not np.isfinite(vs).all() or (vs <= 0).any():
        raise ParameterError(f"voxel_size={list(voxel_size)!r}; expected three voxel edge lengths in mm > 0.")
    return float(np.sqrt(np.prod(vs.astype(np.float32))))


@functools.lru_cache(maxsize=256)
def _kernel(fwhm_mm: float, zoom_root: float, given: bool) -> np.ndarray:
    # NiMARE divides a FWHM from a sample size in float64, one given in mm in float32 (numpy's promotion)
    fwhm_vox = (np.float32(fwhm_mm) if given else np.float64(fwhm_mm)) / np.float32(zoom_root)
    sigma = fwhm_vox * np.sqrt(2.0) / (np.sqrt(2.0 * np.log(2.0)) * 2.0)
    delta = np.zeros((_CUBE,) * 3)
    delta[(_CUBE // 2,) * 3] = 1.0
    smooth = ndimage.gaussian_filter(delta, sigma, mode="constant")
    # crop every axis to where the first axis exceeds epsilon (the kernel is symmetric)
    above = np.nonzero(smooth > np.spacing(1))[0]
    lo, hi = int(above.min()), int(above.max()) + 1
    out = smooth[lo:hi, lo:hi, lo:hi].copy()
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=256)
def _stored_kernel(fwhm_mm: float, zoom_root: float, given: bool) -> np.ndarray:
    """The kernel with its values as NiMARE stores them (float32)."""
    out = _kernel(fwhm_mm, zoom_root, given).astype(np.float32)
    out.setflags(write=False)
    return out


def kernel_support(
    sample_size: float | None = None, *, fwhm: float | None = None, voxel_size: Sequence[float] = (2.0, 2.0, 2.0)
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel as offsets from the focus voxel and float32 values, as NiMARE places it.

    Returns
    -------
    offsets : (m, 3) int64 array
        Offsets of the kernel's voxels with a value > 0, from ``shape // 2``.
    values : (m,) float32 array
    """
    fwhm_mm, given = _resolve_fwhm(sample_size, fwhm)
    kernel = _kernel(fwhm_mm, _zoom_root(voxel_size), given)
    where = np.nonzero(kernel > 0)
    offsets = np.column_stack(where).astype(np.int64) - np.asarray(kernel.shape) // 2
    return offsets, kernel[where].astype(np.float32)


def study_sample_sizes(table) -> tuple[np.ndarray, np.ndarray]:
    """Each study's sample size from a coordinate table, for sizing its ALE kernel.

    Parameters
    ----------
    table : xarray.Dataset
        A coordinate table (:mod:`xcoact.table`) with ``sample_size``.

    Returns
    -------
    studies : (n_studies,) array
        Study ids in order of first appearance (:func:`xcoact.table.study_index`).
    sizes : (n_studies,) float64 array

    Raises
    ------
    ParameterError
        The table has no sample sizes (Neurosynth and NeuroQuery files record
        none), or some studies lack one, or a study's peaks disagree; the
        message names the studies and says to pass a fixed ``sample_size=``
        or ``fwhm=`` instead.
    """
    from ..table import study_index

    name = table.attrs.get("database", "the coordinate table")
    fixed = "pass a fixed kernel for every study instead (sample_size=N subjects, or fwhm=MM)"
    studies, codes = study_index(table["study_id"].values)
    if "sample_size" not in table.variables:
        raise ParameterError(
            f"{name}: no sample sizes (the table has no 'sample_size'; Neurosynth and NeuroQuery files record none), "
            f"so the ALE kernel of its {len(studies)} studies cannot be sized by them; {fixed}."
        )
    per_peak = np.asarray(table["sample_size"].values, dtype=np.float64)
    _, first = np.unique(codes, return_index=True)
    sizes = per_peak[first]  # each study's first peak (codes run over 0..n_studies-1)
    differ = np.flatnonzero(~np.isclose(per_peak, sizes[codes], rtol=0, atol=0, equal_nan=True))
    if differ.size:
        s = codes[differ[0]]
        raise ParameterError(
            f"{name}: study {quote(_plain(studies[s]))} has peaks with different sample sizes; a study has one sample "
            f"size. Fix the table, or {fixed}."
        )
    missing = np.flatnonzero(np.isnan(sizes))
    if missing.size:
        shown = first_few([quote(_plain(studies[s])) for s in missing])
        raise ParameterError(
            f"{name}: {missing.size} of {len(studies)} studies have no sample size ({shown}), so their ALE kernel "
            f"cannot be sized by it; add them to the source (e.g. '// Subjects = N' in a Sleuth file) or {fixed}."
        )
    return studies, sizes


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def study_ma(
    ijk, grid: Grid, *, sample_size: float | None = None, fwhm: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One study's modelled activation (MA): the voxel-wise maximum of its foci's kernels, in the mask.

    NiMARE's ``ALEKernel`` row of the study; foci outside the box add what of their kernel reaches into it.

    Parameters
    ----------
    ijk : (n_foci, 3) int array
        The study's foci as voxel indices on ``grid`` (``grid.xyz_to_ijk(xyz)``).
    grid : xcoact.space.Grid
    sample_size : float, optional
        The study's subjects (kernel width by :func:`ale_fwhm`).
    fwhm : float, optional
        A fixed width in mm instead.  Exactly one of the two.

    Returns
    -------
    index : (k,) int64 array
        In-mask voxel indices (positions in ``grid.mask_flat``), ascending.
    values : (k,) float64 array
        The MA there, > 0 (exactly float32 values).

    Raises
    ------
    ParameterError
        Neither or both of ``sample_size`` and ``fwhm``, a value <= 0, or ``ijk`` not (n, 3) integers.
    """
    ijk = _check_ijk(ijk)
    fwhm_mm, given = _resolve_fwhm(sample_size, fwhm)
    kernel = _stored_kernel(fwhm_mm, _zoom_root(grid.voxel_size), given)
    if not len(ijk):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    reach = kernel.shape[0] // 2
    padded = tuple(int(n) + 2 * _PAD for n in grid.shape)
    support = _placement(grid)
    offsets = _flat_offsets(kernel.shape[0], padded)
    values = kernel.reshape(-1)
    # foci whose kernel reaches the grid: inside the box padded by the kernel's reach
    near = np.all((ijk >= -reach) & (ijk < np.asarray(grid.shape) + reach), axis=1)
    if not near.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    centres = (ijk[near] + _PAD) @ np.array([padded[1] * padded[2], padded[2], 1])
    ma = np.zeros(grid.n_mask, dtype=np.float32)
    place = _numba_place()
    if place is not None:
        place(ma, support, centres, offsets, values)
    else:
        for centre in centres:
            cols = support[centre + offsets]  # -1 outside the mask or box
            keep = cols >= 0
            ma[cols[keep]] = np.maximum(ma[cols[keep]], values[keep])
    index = np.flatnonzero(ma)
    return index, ma[index].astype(np.float64)


def _check_ijk(ijk) -> np.ndarray:
    """Foci as an (n, 3) integer array of voxel indices, or the error saying what they are."""
    ijk = np.asarray(ijk)
    if ijk.ndim != 2 or ijk.shape[1] != 3 or (ijk.size and not np.issubdtype(ijk.dtype, np.integer)):
        raise ParameterError(
            f"ijk must be an (n, 3) integer array of voxel indices; got {ijk.dtype} of shape {ijk.shape}."
        )
    return ijk


#: Padding of the placement lookup: twice the largest kernel's reach (the 31-voxel cube's 15).
_PAD = 2 * (_CUBE // 2)


@functools.lru_cache(maxsize=4)
def _placement(grid: Grid) -> np.ndarray:
    """The grid's in-mask index (-1 outside) in its box padded by :data:`_PAD` voxels, flat.

    Kernels are placed without bounds checks: what falls off the grid reads -1.
    """
    out = np.full(tuple(np.asarray(grid.shape) + 2 * _PAD), -1, dtype=np.int32)
    out[tuple(slice(_PAD, _PAD + n) for n in grid.shape)] = grid.mask_index.reshape(grid.shape)
    out = out.reshape(-1)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _flat_offsets(width: int, padded_shape: tuple) -> np.ndarray:
    """Flat offsets (C order, in the padded box) of a width^3 kernel's voxels from its centre voxel."""
    rel = np.indices((width,) * 3).reshape(3, -1).T - width // 2
    out = rel @ np.array([padded_shape[1] * padded_shape[2], padded_shape[2], 1])
    out.setflags(write=False)
    return out


def _as_study_list(ma, n_mask: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(n_mask, bool) or not isinstance(n_mask, (int, np.integer)) or n_mask < 1:
        raise ParameterError(f"n_mask={n_mask!r}; expected the number of in-mask voxels, an int >= 1.")
    if isinstance(ma, tuple) and len(ma) == 2 and isinstance(ma[0], np.ndarray) and ma[0].ndim == 1:
        raise ParameterError("ma must be a list of (index, values) pairs, one per study; got a single pair.")
    out = []
    for s, pair in enumerate(ma):
        try:
            idx, vals = pair
        except (TypeError, ValueError):
            raise ParameterError(
                f"ma[{s}] is not an (index, values) pair; expected one per study, as study_ma returns."
            ) from None
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        vals = np.asarray(vals, dtype=np.float64).reshape(-1)
        if idx.shape != vals.shape:
            raise ParameterError(f"ma[{s}]: {idx.size} indices but {vals.size} values; expected one value per index.")
        if idx.size and (idx.min() < 0 or idx.max() >= n_mask):
            raise ParameterError(
                f"ma[{s}]: voxel indices must lie in [0, {n_mask}) (the in-mask voxels); got {idx.min()}..{idx.max()}."
            )
        if idx.size > 1 and not (np.diff(idx) > 0).all() and np.unique(idx).size < idx.size:
            raise ParameterError(
                f"ma[{s}]: voxel indices repeat; expected each voxel once per study "
                "(its MA, the maximum over its foci)."
            )
        if vals.size and not ((vals >= 0) & (vals < 1)).all():
            raise ParameterError(f"ma[{s}]: MA values must lie in [0, 1); got {vals.min():g}..{vals.max():g}.")
        out.append((idx, vals.astype(np.float32)))
    if not out:
        raise ParameterError("ma holds no study; ALE needs at least one study's modelled activation.")
    return out


def ale_stat(ma, n_mask: int) -> np.ndarray:
    """``ALE = 1 - prod(1 - MA)`` over the studies, per in-mask voxel.

    Parameters
    ----------
    ma : sequence of (index, values)
        Each study's sparse MA (:func:`study_ma`).
    n_mask : int
        Number of in-mask voxels.

    Returns
    -------
    (n_mask,) float64 array
        Float32 values (NiMARE's): ``log1p(-MA)`` in float32, summed per voxel
        in float64 in study order, ``1 - exp(sum)`` cast to float32.
    """
    studies = _as_study_list(ma, n_mask)
    return _stat(studies, n_mask).astype(np.float64)


def _stat(studies, n_mask: int) -> np.ndarray:
    sums = np.zeros(n_mask)
    for idx, values in studies:
        sums[idx] += np.log1p(-values)  # float32 log1p, float64 sums in study order: NiMARE's
    return (1.0 - np.exp(sums)).astype(np.float32)


def _bins(study_max: np.ndarray) -> np.ndarray:
    """NiMARE's bin centres: 0 to the largest attainable ALE (each study's max rounded up to a bin), step 1e-5."""
    step = 1 / HIST_STEPS
    top = np.ceil(study_max.astype(np.float32) * HIST_STEPS) / HIST_STEPS  # float32, as NiMARE
    max_ale = 1.0 - np.prod(1.0 - top, axis=0)
    return np.round(np.arange(0, max_ale + (1.5 * step), step), 5)


def _nearest(scaled: np.ndarray, n_bins: int) -> np.ndarray:
    """Nearest bin of ``value * inv_step`` (ties upward), clipped to the grid."""
    floor = np.floor(scaled)
    idx = floor.astype(np.int64) + (scaled - floor >= 0.5)
    return np.clip(idx, 0, n_bins - 1)


def _study_hist(values: np.ndarray, n_mask: int, inv_step: float, n_bins: int) -> np.ndarray:
    hist = np.bincount(_nearest(values.astype(np.float64) * inv_step, n_bins), minlength=n_bins).astype(np.float64)
    hist[0] += n_mask - values.size
    hist *= 1.0 / n_mask
    return hist


def _combine_numpy(ale_idx, ale_p, exp_idx, exp_p, centres, inv_step, n_bins, upto) -> np.ndarray:
    """One study's histogram folded into the running null: every bin pair, in NiMARE's order.

    Returns bins ``0..upto`` and, last, the mass of the pairs landing above ``upto``.
    """
    out = np.zeros(upto + 2)
    one_minus_ale = 1.0 - centres[ale_idx]
    chunk = max(1, 4_000_000 // max(1, ale_idx.size))
    for start in range(0, exp_idx.size, chunk):
        e = slice(start, start + chunk)
        score = 1.0 - (1.0 - centres[exp_idx[e]])[:, None] * one_minus_ale[None, :]
        target = np.minimum(_nearest(score * inv_step, n_bins), upto + 1)
        # bincount adds in NiMARE's loop order within a chunk; the chunks' partial sums are then added
        out += np.bincount(target.ravel(), weights=(exp_p[e][:, None] * ale_p[None, :]).ravel(), minlength=upto + 2)
    return out


def _step_numpy(null, lo, hi, exp_idx, exp_p, centres, inv_step, n_bins, upto, out) -> tuple[int, int]:
    """:func:`_combine_numpy` of the running null's nonzero bins into ``out`` (zero on entry); the new nonzero range."""
    a = lo + np.flatnonzero(null[lo : hi + 1])
    if a.size:
        out += _combine_numpy(a, null[a], exp_idx, exp_p, centres, inv_step, n_bins, upto)
    return _nonzero_range(out[: upto + 1])


@functools.lru_cache(maxsize=1)
def _numba_combine():
    """The compiled bin combination of :func:`_step_numba` (None without numba)."""
    try:
        import numba
    except ImportError:  # numba is optional: the numpy path gives the same numbers, slower
        return None

    @numba.njit(cache=True, nogil=True)
    def combine(
        dense, lo, hi, exp_idx, exp_p, centres, inv_step, n_bins, upto, out, t_min, t_max, window
    ):  # pragma: no cover - compiled
        # dense: the running null over 0..upto (nonzero within lo..hi; its empty bins add 0.0, which changes no
        # sum); out: receives the pairs whose bin (0..upto, or upto + 1 for those landing above upto) lies in
        # [t_min, t_max], each bin's in NiMARE's order, so that disjoint windows can run at once
        def target(a, keep, centres, inv_step, n_bins, upto):
            # the bin of the pair (exp bin with 1 - centre = keep, running-null bin a): NiMARE's arithmetic, clipped and
            # lumped as _combine_numpy
            scaled = (1.0 - keep * (1.0 - centres[a])) * inv_step
            floor = np.floor(scaled)
            t = int(floor) + (1 if scaled - floor >= 0.5 else 0)
            if t < 0:
                t = 0
            elif t >= n_bins:
                t = n_bins - 1
            if t > upto:
                t = upto + 1
            return t

        top = min(upto + 1, n_bins - 1)  # the largest target: the lumped bin, or the last bin
        if lo > hi or t_min > t_max:
            return
        n_e = exp_idx.shape[0]
        # per study bin: the next running-null bin to add, and the last one (the target is non-decreasing in a,
        # so the bins sending pairs into [t_min, t_max] are a range; its ends found by bisection)
        nxt = np.empty(n_e, dtype=np.int64)
        last = np.empty(n_e, dtype=np.int64)
        for i in range(n_e):
            keep = 1.0 - centres[exp_idx[i]]
            first, final = lo, hi
            if (
                target(hi, keep, centres, inv_step, n_bins, upto) < t_min
                or target(lo, keep, centres, inv_step, n_bins, upto) > t_max
            ):
                first, final = hi + 1, hi
            else:
                if target(lo, keep, centres, inv_step, n_bins, upto) < t_min:
                    good, bad = lo, hi  # target(good) < t_min <= target(bad)
                    while bad - good > 1:
                        mid = (good + bad) // 2
                        if target(mid, keep, centres, inv_step, n_bins, upto) < t_min:
                            good = mid
                        else:
                            bad = mid
                    first = bad
                if target(hi, keep, centres, inv_step, n_bins, upto) > t_max:
                    good, bad = lo, hi  # target(good) <= t_max < target(bad)
                    while bad - good > 1:
                        mid = (good + bad) // 2
                        if target(mid, keep, centres, inv_step, n_bins, upto) <= t_max:
                            good = mid
                        else:
                            bad = mid
                    final = good
            nxt[i], last[i] = first, final
        # target windows of _WINDOW bins, one after the other: a window's bins and the running-null bins sending
        # pairs there stay in the core's cache while every study bin adds its pairs (a bin lies in one window, so
        # it still receives its pairs study bin by study bin, each in a ascending: NiMARE's order)
        w0 = t_min
        while w0 <= t_max:
            w1 = min(t_max, w0 + window - 1)
            for i in range(n_e):
                c_e = centres[exp_idx[i]]
                keep = 1.0 - c_e
                pe = exp_p[i]
                a = nxt[i]
                end = last[i]
                while a <= end:
                    t_a = target(a, keep, centres, inv_step, n_bins, upto)
                    if t_a > w1:
                        break
                    if t_a == top:  # every later bin lands on top too
                        for b in range(a, end + 1):
                            out[top] += pe * dense[b]
                        a = end + 1
                        break
                    # a run of one shift (the target is a + shift; the shift steps down by one every 1 / c_e bins and
                    # never up, as keep < 1), cut at the window's end: a contiguous axpy
                    shift = t_a - a
                    stop = min(end, w1 - shift)
                    if c_e > 0.0:
                        # predicted end of the run (exact: shift = round(c_e * inv_step - c_e * a)), then checked
                        guess = int(np.floor((c_e * inv_step - shift + 0.5) / c_e))
                        guess = max(a, min(stop, guess))
                    else:
                        guess = stop
                    if target(guess, keep, centres, inv_step, n_bins, upto) - guess == shift:
                        good, bad = guess, stop + 1
                        if (
                            guess < stop
                            and target(guess + 1, keep, centres, inv_step, n_bins, upto) - guess - 1 != shift
                        ):
                            bad = guess + 1
                    else:
                        good, bad = a, guess
                    while bad - good > 1:
                        mid = (good + bad) // 2
                        if target(mid, keep, centres, inv_step, n_bins, upto) - mid == shift:
                            good = mid
                        else:
                            bad = mid
                    # views indexed from 0: the compiler can drop negative-index checks and vectorise the loop
                    dst = out[a + shift : good + 1 + shift]
                    src = dense[a : good + 1]
                    for k in range(src.shape[0]):
                        dst[k] += pe * src[k]
                    a = good + 1
                nxt[i] = a
            w0 = w1 + 1

    return combine


#: Target bins per window of the compiled step (its bins and their sources, 2 x 8 x 4096 bytes, stay in cache).
_WINDOW = 4096
#: Pairs of bins of one step above which the compiled step splits its bins between two threads.
_SPLIT_PAIRS = 2_000_000


@functools.lru_cache(maxsize=1)
def _split_pool():
    """One helper thread for the second half of a large step (the caller's thread runs the first)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="xcoact-ale-null")


def _step_numba(null, lo, hi, exp_idx, exp_p, centres, inv_step, n_bins, upto, out) -> tuple[int, int]:
    """The compiled step of :func:`_fold`; a large step's target bins are split between two threads (same bits)."""
    combine = _numba_combine()
    top = min(upto + 1, n_bins - 1)
    reach = min(top, hi + int(exp_idx.max()))  # a pair lands at most its study bin above its running-null bin
    if (hi - lo + 1) * exp_idx.size >= _SPLIT_PAIRS and (os.cpu_count() or 1) > 1 and reach > lo:
        mid = (lo + reach) // 2
        second = _split_pool().submit(
            combine, null, lo, hi, exp_idx, exp_p, centres, inv_step, n_bins, upto, out, mid + 1, upto + 1, _WINDOW
        )
        combine(null, lo, hi, exp_idx, exp_p, centres, inv_step, n_bins, upto, out, 0, mid, _WINDOW)
        second.result()
    else:
        combine(null, lo, hi, exp_idx, exp_p, centres, inv_step, n_bins, upto, out, 0, upto + 1, _WINDOW)
    return compiled(_bounds)(out, lo, reach, upto)


def _bounds(out, lo, reach, upto):  # compiled by _step_numba()
    """Compiled: the first and last nonzero of ``out[lo..min(reach, upto)]`` (bins below lo receive nothing)."""
    new_lo = lo
    while new_lo <= upto and out[new_lo] == 0.0:
        new_lo += 1
    new_hi = min(upto, reach)
    while new_hi >= new_lo and out[new_hi] == 0.0:
        new_hi -= 1
    return new_lo, new_hi


def _place(ma, support, centres, offsets, values):  # compiled by _numba_place()
    """The kernel placement of :func:`study_ma`: the largest kernel value at each in-mask voxel."""
    for c in range(centres.shape[0]):
        for k in range(offsets.shape[0]):
            col = support[centres[c] + offsets[k]]
            if col >= 0 and values[k] > ma[col]:
                ma[col] = values[k]


@functools.cache
def _numba_place():
    return compiled(_place)


def ale_null(ma, n_mask: int, *, engine: AleEngine = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The approximate null distribution of ALE over the mask (Eickhoff et al. 2012), as NiMARE builds it.

    Parameters
    ----------
    ma : sequence of (index, values)
        Each study's sparse MA, in the order the histograms are combined.
    n_mask : int
        Number of in-mask voxels (the voxels each study's histogram is over).
    engine : {"auto", "numba", "numpy"}
        How bin pairs are combined: compiled ("auto") or numpy (its sums may differ in the last bits).

    Returns
    -------
    bins : (n_bins,) float64 array
        Bin centres ``0, 1e-5, ...`` up to the largest attainable ALE.
    weights : (n_bins,) float64 array
        Probability of each bin under the null (sums to 1).
    """
    studies = _as_study_list(ma, n_mask)
    bins, weights = _null(studies, n_mask, engine)
    return bins, weights[:-1]


def _combiner(engine: str):
    """The fold step of ``engine`` (see :func:`_fold`)."""
    if engine not in get_args(AleEngine):
        raise ParameterError(f"engine={engine!r}; expected 'auto', 'numba' or 'numpy'.")
    if engine in ("auto", "numba") and _numba_combine() is not None:
        return _step_numba
    if engine == "numba":
        raise ParameterError("engine='numba' but numba is not installed; install numba or use engine='numpy'.")
    return _step_numpy


def _null(studies, n_mask: int, engine: str, upto: int | None = None):
    """Bin centres and the null's ``upto + 2`` weights, the last the mass above bin ``upto`` (lumped).

    Exact below: a pair of bins lands at or above both, so mass above ``upto`` never comes back.
    """
    study_max = np.array([v.max() if v.size else 0.0 for _, v in studies], dtype=np.float32)

    def hists(inv_step, n_bins):
        for _, values in studies:
            hist = _study_hist(values, n_mask, inv_step, n_bins)
            nz = np.flatnonzero(hist)
            yield nz, hist[nz], hist.sum()

    return _fold(hists, study_max, engine, upto)


def _fold(hists, study_max: np.ndarray, engine: str, upto: int | None):
    """The null from the sparse histograms ``(bins, probabilities, total)`` that ``hists(inv_step, n_bins)`` yields.

    The running null is dense over ``0..upto``, nonzero in ``lo..hi``: a step costs the study's bins times that.
    """
    centres = _bins(study_max).astype(np.float64)
    n_bins = centres.size
    inv_step = 1 / (centres[1] - centres[0])
    upto = n_bins - 1 if upto is None else min(int(upto), n_bins - 1)
    step = _combiner(engine)
    null = spare = None
    lo = hi = spare_lo = spare_hi = 0
    for e_idx, e_p, total in hists(inv_step, n_bins):
        if null is None:
            null = np.zeros(upto + 2)
            spare = np.zeros(upto + 2)
            below = e_idx <= upto
            null[e_idx[below]] = e_p[below]
            null[-1] = e_p[~below].sum()
            lo, hi = _nonzero_range(null[: upto + 1])
            continue
        assert spare is not None
        above = null[-1]
        spare[spare_lo : spare_hi + 1] = 0.0
        spare[-1] = 0.0
        new_lo, new_hi = step(null, lo, hi, e_idx, e_p, centres, inv_step, n_bins, upto, spare)
        spare[-1] += above * total
        null, spare = spare, null
        spare_lo, spare_hi, lo, hi = lo, hi, new_lo, new_hi
    return centres, null


def _nonzero_range(values: np.ndarray) -> tuple[int, int]:
    """First and last index of a nonzero value (``(n, n - 1)`` when there is none)."""
    nz = np.flatnonzero(values)
    return (int(nz[0]), int(nz[-1])) if nz.size else (values.size, values.size - 1)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (NiMARE's ``_round2``)."""
    y = np.round(np.abs(x))
    ties = np.abs(np.abs(x) - y) == 0.5
    y[ties] = np.ceil(np.abs(x)[ties])
    return (y * np.sign(x)).astype(np.int64)


def null_to_p(stat: np.ndarray, bins: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Upper-tail p of each statistic against a null histogram (NiMARE's ``nullhist_to_p``).

    The tail at the statistic's nearest bin (halves up), floored at the smallest non-zero tail; 1 where it is 0.

    Parameters
    ----------
    stat : array
    bins, weights : (n_bins,) arrays
        The null (:func:`ale_null`).

    Returns
    -------
    float64 array like ``stat``.

    Raises
    ------
    ParameterError
        ``weights`` and ``bins`` differ in length, or a statistic lies past the null's bins.
    """
    stat = np.asarray(stat)
    if len(weights) != len(bins):
        raise ParameterError(f"weights has {len(weights)} entries for {len(bins)} bins; expected one per bin.")
    return _tail_p(stat, np.asarray(weights, dtype=np.float64), bins)


def _tail_p(stat: np.ndarray, weights: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """:func:`null_to_p` on weights that may end in a lumped entry (``_null(upto=...)``, bins past the stat)."""
    weights = weights[:, None]  # a column, as NiMARE sums it
    inv_step = 1 / (bins[1] - bins[0])
    tail = weights / np.sum(weights, axis=0)
    tail = np.cumsum(tail[::-1, :], axis=0)[::-1, :]
    tail /= np.max(tail, axis=0)
    tail = np.squeeze(tail, axis=1)
    smallest = np.min(tail[tail != 0])
    p = np.ones(stat.shape)
    pos = np.flatnonzero(stat > 0)
    which = _round_half_up(stat[pos] * inv_step)
    which[which >= bins.size] = bins.size - 1
    if which.size and which.max() >= tail.size:
        raise ParameterError(f"a statistic falls in bin {which.max()}, past the {tail.size} bins of the null given.")
    p[pos] = tail[which]
    return np.maximum(smallest, np.minimum(p, 1.0))


def p_to_z(p: np.ndarray) -> np.ndarray:
    """One-tailed z of p (>= 0), through ``log p``; p clipped to the smallest positive float64 first."""
    p = np.clip(np.asarray(p, dtype=np.float64), np.nextafter(0.0, 1.0), 1.0)
    return np.maximum(-special.ndtri_exp(np.log(p)), 0.0)


def ale_maps(ma, n_mask: int, *, engine: AleEngine = "auto") -> dict[str, np.ndarray]:
    """ALE, p and z over the in-mask voxels: NiMARE's ``ALE(null_method="approximate").fit`` on these studies.

    Parameters
    ----------
    ma : sequence of (index, values)
        Each selected study's sparse MA (:func:`study_ma`), in NiMARE's order (sorted study ids).
    n_mask : int
        Number of in-mask voxels.
    engine : {"auto", "numba", "numpy"}
        See :func:`ale_null`.

    Returns
    -------
    dict
        ``stat``, ``p``, ``z``: (n_mask,) float64 arrays (``stat`` holds NiMARE's float32 values).

    Raises
    ------
    ParameterError
        ``n_mask`` is not an int >= 1, or ``ma`` is not one valid ``(index, values)`` pair per study.
    """
    studies = _as_study_list(ma, n_mask)
    stat, p, z = _stat_p_z(_stat(studies, n_mask), lambda upto: _null(studies, n_mask, engine, upto))
    return {"stat": stat, "p": p, "z": z}


def _stat_p_z(stat: np.ndarray, fold) -> np.ndarray:
    """``(3, n)``: stat, p, z; ``fold(upto)`` is the null, exact up to the largest ALE's bin (+ 1 for rounding)."""
    top = int(_round_half_up(np.array([float(stat.max()) * HIST_STEPS]))[0])
    bins, weights = fold(top + 1)
    p = _tail_p(stat, weights, bins)
    return np.stack([stat.astype(np.float64), p, p_to_z(p)])


# -- the ALE kernel of the cube, and the ALE of a seed's studies ------------------------------------

from ..kernels import Kernel  # noqa: E402  (the kernel interface; kernels.py reaches this module lazily)


class ALEKernel(Kernel):
    """The ALE kernel of :func:`xcoact.activations` (``kernel="ale"``): each study's :func:`study_ma`.

    Sized by a fixed ``sample_size`` or ``fwhm``, or, neither given, by each study's sample size in the
    coordinate table (:meth:`bind`).

    Parameters
    ----------
    sample_size : float, optional
        Subjects of every study (the FWHM is :func:`ale_fwhm` of it).
    fwhm : float, optional
        A fixed FWHM in mm for every study.
    voxel_size : (3,) float
        The grid's voxel edges (mm).
    """

    name = "ale"
    dtype = np.dtype(np.float32)
    combine = "max"
    exact_support = False

    def __init__(
        self,
        sample_size: float | None = None,
        fwhm: float | None = None,
        voxel_size: Sequence[float] | np.ndarray = (2.0, 2.0, 2.0),
    ):
        if sample_size is not None and fwhm is not None:
            _resolve_fwhm(sample_size, fwhm)  # raises
        self.sample_size = (
            None if sample_size is None else _check_positive(sample_size, "sample_size", "sample_size=20")
        )
        self.fwhm = None if fwhm is None else _check_positive(fwhm, "fwhm", "fwhm=10")
        self.voxel_size = tuple(float(v) for v in np.abs(np.asarray(voxel_size, dtype=np.float64)).reshape(-1))
        _zoom_root(self.voxel_size)
        self.sizes: dict[object, float] | None = None  # {study id: sample size}, set by bind() when sized by the table
        if self.sample_size is not None or self.fwhm is not None:
            self.offsets = kernel_support(self.sample_size, fwhm=self.fwhm, voxel_size=self.voxel_size)[0]
        else:
            self.offsets = np.zeros((1, 3), dtype=np.int64)

    @property
    def fixed(self) -> bool:
        """Whether every study has the same kernel (a fixed sample size or FWHM)."""
        return self.sample_size is not None or self.fwhm is not None

    def bind(self, table) -> ALEKernel:
        """The kernel with each study's sample size from ``table`` (:func:`study_sample_sizes`; itself if fixed)."""
        if self.fixed:
            return self
        studies, sizes = study_sample_sizes(table)
        bound = ALEKernel(voxel_size=self.voxel_size)
        bound.sizes = {_plain(s): float(n) for s, n in zip(studies, sizes)}
        # the widest kernel (the smallest study) bounds where any study's values can reach
        bound.offsets = (
            kernel_support(float(sizes.min()), voxel_size=self.voxel_size)[0] if len(sizes) else self.offsets
        )
        return bound

    def size_of(self, study) -> float | None:
        """The sample size the kernel uses for ``study`` (None when sized by a fixed FWHM)."""
        if self.fixed:
            return self.sample_size
        if self.sizes is None:
            raise ParameterError(
                "this ALE kernel is sized by the coordinate table's sample sizes and was never bound "
                "to a table; build the cube with xcoact.activations(db, kernel='ale')."
            )
        return self.sizes[_plain(study)]

    def study_map(self, ijk, grid: Grid, study=None):
        if self.fwhm is not None:
            return study_ma(ijk, grid, fwhm=self.fwhm)
        return study_ma(ijk, grid, sample_size=self.size_of(study))

    def attrs(self) -> dict:
        sizing: dict[str, object]
        if self.fwhm is not None:
            sizing = {"fwhm": self.fwhm}
        elif self.sample_size is not None:
            sizing = {"sample_size": self.sample_size, "fwhm": ale_fwhm(self.sample_size)}
        else:
            sizing = {"sample_size": "per study (the table's sample_size)"}
        return {
            "kernel": self.name,
            "long_name": "study modelled activation (ALE: the voxel-wise maximum of its foci's Gaussians)",
            **sizing,
        }

    def __repr__(self) -> str:
        how = (
            f"fwhm={self.fwhm:g}"
            if self.fwhm is not None
            else (f"sample_size={self.sample_size:g}" if self.sample_size is not None else "sample sizes per study")
        )
        return f"<ALEKernel {how}>"


def ale_kernel_for(kernel, r, sample_size, fwhm, grid: Grid) -> ALEKernel:
    """The kernel of ``xcoact.activations(db, kernel="ale", sample_size=..., fwhm=...)``; refuses ``r``."""
    if not (isinstance(kernel, str) and kernel.lower() == "ale"):
        raise ParameterError(
            f"sample_size={sample_size!r}, fwhm={fwhm!r} size the ALE kernel, but kernel={kernel!r}; "
            "pass kernel='ale' with them, or drop them."
        )
    if r is not None:
        raise ParameterError(
            f"r={r!r} is a sphere radius; the ALE kernel has none (its width comes from sample_size= "
            "or fwhm=, or from each study's sample size in the table). Drop r."
        )
    return ALEKernel(sample_size, fwhm, grid.voxel_size)


def _block_parts(block, selected: np.ndarray) -> tuple:
    """A block's share of a seed's ALE: the selected studies' summed ``log1p(-MA)`` (or None) and histograms."""
    from ..blocks import pieces_of

    sums = None
    hists = []
    scatter = _numba_scatter_add()
    start = 0
    for piece in pieces_of(block):
        n = len(piece.rows)
        rows = piece.rows[np.asarray(selected[start : start + n], dtype=bool)]
        start += n
        if rows.size == 0:
            continue
        chunk = piece.chunk
        indptr, indices = chunk.rows()
        values = chunk.values()
        assert values is not None
        table = _chunk_hists(chunk)
        if sums is None:
            sums = np.zeros(chunk.grid.n_mask)
        buf = np.empty(int(np.diff(indptr)[rows].max()), dtype=np.float32)
        for row in rows:
            lo, hi = indptr[row], indptr[row + 1]
            logs = buf[: hi - lo]
            np.negative(values[lo:hi], out=logs, dtype=np.float32)
            np.log1p(logs, out=logs)  # log1p in float32, added in float64: NiMARE's ALE
            if scatter is None:
                sums[indices[lo:hi]] += logs  # a study's voxels are distinct
            else:
                scatter(sums, indices[lo:hi], logs)
            hists.append(table[row])
    return sums, hists


#: Each chunk's per-study MA histograms (:func:`_chunk_hists`), made on first use and dropped with the chunk.
_HISTS: weakref.WeakKeyDictionary[object, list] = weakref.WeakKeyDictionary()


def _chunk_hists(chunk) -> list:
    """Per study of an ALE chunk, its :func:`_hist`; made once, kept."""
    got = _HISTS.get(chunk)
    if got is not None:
        return got
    indptr, _ = chunk.rows()
    values = chunk.values()
    count = _numba_count_bins()
    scratch = np.zeros(HIST_STEPS + 2, dtype=np.int64)  # MA < 1: its nearest bin is at most HIST_STEPS
    got = [_hist(values[indptr[r] : indptr[r + 1]], count, scratch) for r in range(indptr.size - 1)]
    return _HISTS.setdefault(chunk, got)


_NO_HIST = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0, np.float32(0))


def _hist(values: np.ndarray, count=None, scratch=None) -> tuple:
    """``(bins, counts, n_values, max)`` of a study's nonzero MA values (float32) by nearest bin."""
    v = values.astype(np.float32, copy=False)
    if not v.size:
        return _NO_HIST
    if count is None:
        counts = np.bincount(_nearest(v.astype(np.float64) * _INV_STEP, np.iinfo(np.int64).max))
    else:
        counts = scratch[: count(v, _INV_STEP, scratch) + 1]
    bins = np.flatnonzero(counts)
    out = (bins, counts[bins].copy(), int(v.size), np.float32(v.max()))
    counts[:] = 0
    return out


def _count(values, inv_step, scratch):  # compiled by _numba_count_bins()
    """Compiled: a study's MA values counted into ``scratch`` by nearest bin (:func:`_nearest`); returns the top bin."""
    top = 0
    for k in range(values.shape[0]):
        scaled = np.float64(values[k]) * inv_step
        floor = np.floor(scaled)
        t = int(floor) + (1 if scaled - floor >= 0.5 else 0)
        scratch[t] += 1
        if t > top:
            top = t
    return top


@functools.cache
def _numba_count_bins():
    return compiled(_count)


def _scatter(sums, index, values):  # compiled by _numba_scatter_add()
    """Compiled ``sums[index] += values`` (float32 values added in float64; the index has no repeats)."""
    for k in range(index.shape[0]):
        sums[index[k]] += np.float64(values[k])


@functools.cache
def _numba_scatter_add():
    return compiled(_scatter)


def _seed_maps(parts, order: np.ndarray, n_mask: int, engine: str) -> np.ndarray:
    """``(3, n_mask)``: ALE ``stat``, ``p``, ``z`` of the selected studies from the blocks' parts."""
    sums = np.zeros(n_mask)
    hists = []
    for part_sums, part_hists in parts:
        if part_sums is not None:
            sums += part_sums
        hists.extend(part_hists)
    hists = [hists[i] for i in order]  # NiMARE's order: sorted ids
    stat = (1.0 - np.exp(sums)).astype(np.float32)
    study_max = np.array([h[3] for h in hists], dtype=np.float32)
    recip = 1.0 / n_mask

    def sparse(inv_step, n_bins):
        for bins, counts, n_values, _ in hists:
            # the mask's zeros and the values nearest bin 0 share bin 0
            counts = counts.astype(np.float64)
            if bins.size and bins[0] == 0:
                counts[0] += n_mask - n_values
            else:
                bins, counts = np.r_[0, bins], np.r_[float(n_mask - n_values), counts]
            if bins[-1] >= n_bins:  # never for a study's own bins (n_bins reaches its maximum); clipped as NiMARE
                merged = np.bincount(np.minimum(bins, n_bins - 1), weights=counts)
                bins = np.flatnonzero(merged)
                counts = merged[bins]
            keep = counts > 0
            p = counts[keep] * recip
            yield bins[keep], p, p.sum()

    return _stat_p_z(stat, lambda upto: _fold(sparse, study_max, engine, upto))


def _volume(values: np.ndarray, mask_flat: np.ndarray, shape: tuple) -> np.ndarray:
    """In-mask values (along the last axis) as volumes of their own dtype, 0 outside the mask."""
    out = np.zeros((*values.shape[:-1], int(np.prod(shape))), dtype=values.dtype)
    out[..., mask_flat] = values
    return out.reshape(*values.shape[:-1], *shape)


#: Selected studies read per task by :func:`seed_stats` (their MA values, log sums and histograms).
STUDIES_PER_TASK = 32


def seed_stats(act, selected: np.ndarray, *, engine: AleEngine = "auto"):
    """The ALE ``stat``, ``p`` and ``z`` of a cube's selected studies, lazy: a ``(3, x, y, z)`` Dask array.

    A task per :data:`STUDIES_PER_TASK` selected studies of a block sums their ``log1p(-MA)`` and collects
    their histograms; a last task folds these, in sorted-id order, into the null.

    Parameters
    ----------
    act : xarray.DataArray
        An ALE cube (``xcoact.activations(db, kernel="ale")``) over its whole grid.
    selected : (n_studies,) bool array
        The studies whose ALE to compute (at least one).
    engine : {"auto", "numba", "numpy"}
        See :func:`ale_null`.

    Returns
    -------
    dask.array.Array
        ``(3, x, y, z)`` float64: stat, p, z (0 outside the mask).

    Raises
    ------
    ParameterError
        ``act`` is not an ALE cube, or no study is selected.
    """
    import dask

    from ..blocks import is_block_cube
    from ..counts import canonical
    from ..roi import grid_of

    selected = np.asarray(selected, dtype=bool)
    data = canonical(act)
    grid = grid_of(act)
    if not is_block_cube(data) or act.attrs.get("kernel") != "ale":
        raise ParameterError(
            "the ALE of a seed needs the ALE cube as built by xcoact.activations(db, kernel='ale') "
            "(its blocks keep each study's modelled activation); this cube is not one."
        )
    if not selected.any():
        raise ParameterError("no study selected: the ALE of a seed needs at least one study.")
    full = data.to_delayed(optimize_graph=False).ravel()
    bounds = np.concatenate([[0], np.cumsum(data.chunks[0])])
    parts = []
    for b, block in enumerate(full):
        sel = selected[bounds[b] : bounds[b + 1]]
        where = np.flatnonzero(sel)
        for start in range(0, where.size, STUDIES_PER_TASK):
            part = np.zeros_like(sel)
            part[where[start : start + STUDIES_PER_TASK]] = True
            parts.append(dask.delayed(_block_parts, pure=True)(block, part))
    ids = [str(_plain(s)) for s in act["study"].values[selected]]
    order = np.argsort(np.array(ids, dtype=object), kind="stable")
    return _lazy_volume(dask.delayed(_seed_maps, pure=True)(parts, order, grid.n_mask, engine), (3,), np.float64, grid)


#: ALE's maps: NiMARE 0.22.1's ``stat``, ``p`` and ``z`` (``ALE().fit(...).maps``); ``z`` is ``z_map`` in the
#: Dataset (a variable cannot share the z coordinate's name) and written as ``{outroot}_z.nii.gz``.
MAP_NAMES = ("stat", "p", "z_map")
MAP_LONG_NAMES = {
    "stat": "activation likelihood estimate of the selected studies, 1 - prod(1 - MA)",
    "p": "p of the ALE under the approximate null (Eickhoff et al. 2012)",
    "z_map": "one-tailed z of p (NiMARE's z map)",
}
REFERENCE = "NiMARE 0.22.1 ALE (null_method='approximate') on the studies get_studies_by_mask selects"


def seed(
    act,
    seed,
    threshold=None,
    *,
    r: float = 6.0,
    select: SelectRule | None = None,
    k: int | None = None,
    preset: PresetName | None = None,
    engine: AleEngine = "auto",
):
    """``act.coact.seed(roi)`` on an ALE cube (an ALE MACM): NiMARE's ``ALE().fit`` on the selected studies.

    The rule is ``"focus"`` by default (NiMARE's ``get_studies_by_mask``); the result holds ``stat``, ``p``,
    ``z_map`` (lazy), ``roi``, the rule's score, ``selected_id`` and ``sample_size`` (docs/ale.md).
    """
    from .._version import __version__
    from ..analyses.pipeline import _preset_of
    from ..analyses.seed import select_for_seed
    from ..result import _result, cube_token
    from ..roi import describe_seed, is_batch, is_coords

    if is_batch(seed):
        raise ParameterError(
            "the ALE of a seed takes one seed (an ROI image or coordinates forming one ROI); run a "
            "list of seeds one by one."
        )
    kernel = _cube_kernel(act)
    pre = _preset_of(act, preset)
    rule, grid, roi, score, selected = select_for_seed(
        act, seed, pre, "focus" if select is None else select, threshold, r, k
    )
    n_roi = roi.attrs["n_roi"]
    n_sel = int(selected.sum())
    stack = seed_stats(act, selected, engine=engine)
    ds = _result(act, grid, list(MAP_NAMES), {n: (("x", "y", "z"), stack[i]) for i, n in enumerate(MAP_NAMES)})
    for name in MAP_NAMES:
        ds[name].attrs["long_name"] = MAP_LONG_NAMES[name]
    ids = act["study"].values[selected]
    ds["roi"] = roi.variable
    ds[rule.score_name] = ("study", score, {"long_name": rule.score_long_name})
    ds["selected_id"] = ("selected", ids, {"long_name": "ids of the selected studies"})
    sizes = np.array([np.nan if kernel is None or kernel.size_of(s) is None else kernel.size_of(s) for s in ids])
    ds["sample_size"] = ("selected", sizes, {"long_name": "subjects of each selected study (its ALE kernel's width)"})
    ds.attrs = {
        "title": "xcoact ALE coactivation maps (MACM)",
        "analysis": "ALE seed coactivation",
        "database": str(act.attrs.get("database", "")),
        "cube": cube_token(act),
        "kernel": "ale",
        **{k: v for k, v in act.attrs.items() if k in ("sample_size", "fwhm")},
        **rule.attrs(n_roi),
        "preset": pre.name,
        "null_method": "approximate",
        "n_studies": int(act.sizes["study"]),
        "n_selected": n_sel,
        "n_unselected": int(selected.size - n_sel),
        "n_roi": int(n_roi),
        "seed": describe_seed(seed, r),
        **({"seed_r": float(r)} if is_coords(seed) else {}),
        "maps": ", ".join(MAP_NAMES),
        "reference": REFERENCE,
        "xcoact_version": __version__,
    }
    return ds


def _cube_kernel(act) -> ALEKernel | None:
    """The ALE kernel of a cube, from its first chunk (None when the cube no longer carries chunks)."""
    from ..blocks import ActivationBlock, is_block_cube, pieces_of
    from ..counts import canonical

    data = canonical(act)
    if not is_block_cube(data):
        return None
    meta = data._meta
    if isinstance(meta, ActivationBlock):
        for piece in pieces_of(meta):
            if isinstance(piece.chunk.kernel, ALEKernel):
                return piece.chunk.kernel
    return None


@functools.lru_cache(maxsize=4)
def _mask_runs(grid: Grid) -> tuple:
    """The brain mask as runs along z: runs ``run_ptr[r]:run_ptr[r + 1]`` of grid row ``r = i * ny + j``.

    A run covers voxels ``k0..k1`` (inclusive), in-mask indices ``base..base + k1 - k0``.
    """
    nx, ny, nz = (int(n) for n in grid.shape)
    rows = grid.mask.reshape(nx * ny, nz)
    padded = np.zeros((nx * ny, nz + 2), dtype=np.int8)
    padded[:, 1:-1] = rows
    step = np.diff(padded, axis=1)
    row_of, start = np.nonzero(step == 1)
    _, stop = np.nonzero(step == -1)  # both in row order, then k order: the runs pair up
    k0, k1 = start.astype(np.int64), stop.astype(np.int64) - 1
    # in-mask index of a run's first voxel: voxels of the mask before it, in C order
    before = np.concatenate([[0], np.cumsum(rows.sum(axis=1))])[row_of]
    within = np.cumsum(k1 - k0 + 1) - (k1 - k0 + 1)
    first_run = np.searchsorted(row_of, row_of)
    base = before + within - within[first_run]
    run_ptr = np.searchsorted(row_of, np.arange(nx * ny + 1))
    out = (run_ptr.astype(np.int64), k0, k1, base.astype(np.int64))
    for a in out:
        a.setflags(write=False)
    return out


def _study_logs(
    best, winner, run_ptr, run_k0, run_k1, run_base, nx, ny, foci, width, values, logs, touched, sums, used
):  # compiled by _numba_study_logs()
    """Compiled: one study's MA placed run by run, its ``log1p(-MA)`` added, its voxels counted per kernel entry."""
    # best[col]: the largest kernel value placed at col so far (0: none), winner[col] its kernel entry; only a
    # larger value replaces one, so best is study_ma's maximum over the foci
    reach = width // 2
    n = 0
    for c in range(foci.shape[0]):
        fi, fj, fk = foci[c, 0], foci[c, 1], foci[c, 2]
        for di in range(width):
            i = fi + di - reach
            if i < 0 or i >= nx:
                continue
            for dj in range(width):
                j = fj + dj - reach
                if j < 0 or j >= ny:
                    continue
                r = i * ny + j
                entry = (di * width + dj) * width - (fk - reach)  # the kernel entry of voxel k is entry + k
                for q in range(run_ptr[r], run_ptr[r + 1]):
                    lo = max(run_k0[q], fk - reach)
                    hi = min(run_k1[q], fk + reach)
                    shift = run_base[q] - run_k0[q]  # the in-mask index of voxel k is shift + k
                    for k in range(lo, hi + 1):
                        v = values[entry + k]
                        col = shift + k
                        if v > best[col]:
                            if best[col] == 0:
                                touched[n] = col
                                n += 1
                            best[col] = v
                            winner[col] = entry + k
    for t in range(n):
        col = touched[t]
        e = winner[col]
        sums[col] += np.float64(logs[e])  # the entry's float32 log1p(-value), added in float64: NiMARE's ALE
        used[e] += 1  # voxels whose MA is this entry's value (binned per study afterwards)
        best[col] = 0
    return n


@functools.cache
def _numba_study_logs():
    return compiled(_study_logs)


@functools.lru_cache(maxsize=256)
def _pattern_tables(fwhm_mm: float, zoom_root: float, given: bool) -> tuple:
    """A kernel's width and its entries (C order): float32 values, their float32 ``log1p(-value)`` and nearest bins."""
    kernel = _stored_kernel(fwhm_mm, zoom_root, given)
    values = np.ascontiguousarray(kernel.reshape(-1), dtype=np.float32)
    logs = np.log1p(-values)
    bins = _nearest(values.astype(np.float64) * _INV_STEP, np.iinfo(np.int64).max)
    for a in (values, logs, bins):
        a.setflags(write=False)
    return kernel.shape[0], values, logs, bins


def _chunk_parts(chunk) -> tuple:
    """A chunk's share of a database's ALE, as :func:`_block_parts`; each study's MA made and dropped at once."""
    grid, kernel, ijk = chunk.grid, chunk.kernel, chunk.ijk
    sums = np.zeros(grid.n_mask)
    hists = []
    study_logs = _numba_study_logs()
    if study_logs is None:
        for s in range(chunk.n_studies):
            lo, hi = chunk.peak_ptr[s], chunk.peak_ptr[s + 1]
            idx, values = kernel.study_map(ijk[lo:hi], grid, None if chunk.studies is None else chunk.studies[s])
            v = values.astype(np.float32)
            sums[idx] += np.log1p(-v)  # float32 log1p, float64 sum: NiMARE's ALE
            hists.append(_hist(v))
        return sums, hists
    best = np.zeros(grid.n_mask, dtype=np.float32)
    winner = np.zeros(grid.n_mask, dtype=np.int32)
    touched = np.zeros(grid.n_mask, dtype=np.int32)
    run_ptr, run_k0, run_k1, run_base = _mask_runs(grid)
    nx, ny = int(grid.shape[0]), int(grid.shape[1])
    zoom = _zoom_root(grid.voxel_size)
    used = np.zeros(_CUBE**3, dtype=np.int64)
    for s in range(chunk.n_studies):
        foci = ijk[chunk.peak_ptr[s] : chunk.peak_ptr[s + 1]]
        if kernel.fwhm is not None:
            width, values, logs, bins = _pattern_tables(kernel.fwhm, zoom, True)
        else:
            size = kernel.size_of(None if chunk.studies is None else chunk.studies[s])
            width, values, logs, bins = _pattern_tables(ale_fwhm(size), zoom, False)
        n = study_logs(
            best, winner, run_ptr, run_k0, run_k1, run_base, nx, ny, foci, width, values, logs, touched, sums, used
        )
        entries = np.flatnonzero(used[: values.size])
        if not entries.size:
            hists.append(_NO_HIST)
            continue
        counts = np.bincount(bins[entries], weights=used[entries]).astype(np.int64)
        where = np.flatnonzero(counts)
        hists.append((where, counts[where], int(n), np.float32(values[entries].max())))
        used[entries] = 0
    return sums, hists


def _database_maps(parts, order: np.ndarray, n_mask: int, null: bool, engine: str) -> np.ndarray:
    """``(1 or 3, n_mask)``: the ALE ``stat`` of all studies (and ``p``, ``z`` from the null, sorted-id order)."""
    if null:
        return _seed_maps(parts, order, n_mask, engine)
    sums = sum((part_sums for part_sums, _ in parts), np.zeros(n_mask))
    return (1.0 - np.exp(sums)).astype(np.float32).astype(np.float64)[None]


def database_ale(
    db,
    *,
    sample_size: float | None = None,
    fwhm: float | None = None,
    preset: PresetName | Preset = "nimare",
    grid: Grid | None = None,
    studies_per_task: int = 256,
    null: bool = False,
    engine: AleEngine = "auto",
):
    """The ALE of every study of a database (NiMARE's ``ALE().fit``), streamed: each study's MA made, added, dropped.

    No cube is kept (an ALE cube of Neurosynth v7 would take several GB).  ``null=True`` also folds the
    studies' histograms into the approximate null (costly for thousands of studies: docs/ale.md).

    Parameters
    ----------
    db : xarray.Dataset or path
        A coordinate table or a database path (:func:`xcoact.read_database`).
    sample_size, fwhm : float, optional
        The kernel's size for every study; neither: each study's sample size from the table.
    preset : {"nimare", "neurosynth"} or Preset
        Grid, mask and peak transform (NiMARE's by default).
    grid : Grid, optional
        Another grid and mask.
    studies_per_task : int
        Studies per task (memory per task: one study's MA at a time, plus the sums).
    null : bool
        Also ``p`` and ``z`` from the approximate null.
    engine : {"auto", "numba", "numpy"}
        The null's bin combination (see :func:`ale_null`).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        ``stat`` over ``(x, y, z)`` (0 outside the mask), lazy; with ``null=True`` a Dataset of ``stat``,
        ``p`` and ``z_map``.

    Raises
    ------
    ParameterError
        A bad ``studies_per_task``, ``null`` or ``engine``, or a kernel that cannot be sized.
    """
    import dask
    import xarray as xr

    from ..cube import DatabasePeaks
    from ..presets import get_preset

    if isinstance(db, (str, bytes)) or hasattr(db, "__fspath__"):
        from ..readers import read_database

        db = read_database(db)
    pre = get_preset(preset)
    grid = grid or pre.grid()
    if (
        isinstance(studies_per_task, bool)
        or not isinstance(studies_per_task, (int, np.integer))
        or studies_per_task < 1
    ):
        raise ParameterError(f"studies_per_task={studies_per_task!r}; expected an int >= 1, e.g. 256.")
    if not isinstance(null, (bool, np.bool_)):
        raise ParameterError(f"null={null!r}; expected True (stat, p and z) or False (stat only).")
    _combiner(engine)  # a bad engine fails here, not in the task
    kernel = ALEKernel(sample_size, fwhm, grid.voxel_size).bind(db)
    peaks = DatabasePeaks(db, grid, cast(float, None), peak_transform=pre.peak_transform, kernel=kernel)
    n = peaks.n_studies
    parts = [
        dask.delayed(_chunk_parts, pure=True)(peaks.chunk(s0, min(n, s0 + studies_per_task)))
        for s0 in range(0, n, studies_per_task)
    ]
    order = np.argsort(np.array([str(_plain(s)) for s in peaks.studies], dtype=object), kind="stable")
    names = ("stat", "p", "z_map") if null else ("stat",)
    maps = dask.delayed(_database_maps, pure=True)(parts, order, grid.n_mask, bool(null), engine)
    stack = _lazy_volume(maps, (len(names),), np.float64, grid)
    coords = {k: (k, v, {"units": "mm"}) for k, v in grid.coords().items()}
    attrs = {
        "kernel": "ale",
        "database": str(db.attrs.get("database", "")),
        "n_studies": n,
        **{k: v for k, v in kernel.attrs().items() if k in ("sample_size", "fwhm")},
    }
    stat = xr.DataArray(
        stack[0],
        dims=("x", "y", "z"),
        coords=coords,
        name="stat",
        attrs={"long_name": "ALE of every study of the database", **attrs},
    )
    if not null:
        return stat
    ds = xr.Dataset(
        {"stat": stat},
        attrs={
            "analysis": "ALE of every study of the database",
            **attrs,
            "null_method": "approximate",
            "maps": ", ".join(MAP_NAMES),
            "reference": "NiMARE 0.22.1 ALE (null_method='approximate') on every study",
        },
    )
    for i, name in enumerate(MAP_NAMES[1:], start=1):
        ds[name] = (("x", "y", "z"), stack[i], {"long_name": MAP_LONG_NAMES[name]})
    return ds


def _foci_of(act, selected: np.ndarray):
    """``(ijk, study, sizing, peaks)`` of the selected studies with foci, in sorted-id order, for :mod:`.ale_null`.

    ``sizing`` is ``{"fwhm": w}`` or ``{"sample_size": per-study array}``; ``peaks`` every peak of the cube.
    """
    from ..counts import cube_peaks

    kernel = _cube_kernel(act)
    peaks = cube_peaks(act)
    if kernel is None or peaks is None:
        raise ParameterError(
            "ALE Monte Carlo inference needs the ALE cube as built by xcoact.activations(db, kernel='ale') "
            "(it reads the studies' foci and kernels from it); this cube is not one."
        )
    ids = np.asarray(act["study"].values)
    where = np.flatnonzero(np.asarray(selected, dtype=bool))
    where = where[np.argsort(np.array([str(_plain(s)) for s in ids[where]], dtype=object), kind="stable")]
    counts = np.diff(peaks.peak_ptr)
    where = where[counts[where] > 0]
    if not where.size:
        raise ParameterError("no selected study has a focus: ALE Monte Carlo inference needs at least one.")
    all_ijk = peaks.ijk
    ijk = np.concatenate([all_ijk[peaks.peak_ptr[s] : peaks.peak_ptr[s + 1]] for s in where])
    study = np.repeat(np.arange(where.size), counts[where])
    sizing: dict[str, float | np.ndarray]
    if kernel.fwhm is not None:
        sizing = {"fwhm": kernel.fwhm}
    else:
        sizing = {"sample_size": np.array([kernel.size_of(ids[s]) for s in where], dtype=np.float64)}
    return ijk, study, sizing, peaks


def _lazy_volume(value, lead: tuple, dtype, grid: Grid):
    """A delayed ``(*lead, n_mask)`` in-mask array as a lazy ``(*lead, x, y, z)`` volume, 0 outside the mask."""
    import dask.array as da

    flat = da.from_delayed(value, shape=(*lead, grid.n_mask), dtype=dtype)
    chunks = tuple((n,) for n in (*lead, *grid.shape))
    return flat.map_blocks(_volume, grid.mask_flat, grid.shape, chunks=chunks, dtype=dtype)


def _lazy_maps(result, names: dict, grid: Grid) -> dict:
    """Lazy volumes of a delayed dict's in-mask maps (``names``: key -> dtype), computed together."""
    return {key: _lazy_volume(result[key], (), dtype, grid) for key, dtype in names.items()}


def _check_mc(n_iter, seed) -> tuple[int, int]:
    """``n_iter`` (default NiMARE's 5000) and ``seed`` (None: fresh entropy, recorded) of a Monte Carlo door."""
    from . import ale_null

    n_iter = 5000 if n_iter is None else n_iter
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ParameterError(f"n_iter={n_iter!r}; expected an int >= 1 (Monte Carlo iterations, e.g. 5000).")
    if seed is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)
        seed = int(entropy % (2**63))
    return int(n_iter), ale_null._check_seed(seed)


def _selection(act, maps) -> np.ndarray:
    """The studies of an ALE seed result, as a mask over the cube's studies."""
    ids = np.asarray(act["study"].values)
    selected = np.isin(ids, np.asarray(maps["selected_id"].values))
    if int(selected.sum()) != maps.sizes["selected"]:
        raise ParameterError("the maps' selected studies are not all in this cube; pass the cube the maps came from.")
    return selected


def _cube_of(maps, act):
    """The ALE cube of a result: given, or the one it carries; the one it was computed from."""
    from ..result import cube_of, cube_token

    act = cube_of(maps) if act is None else act
    if act is None:
        raise ParameterError(
            "ALE FWE needs the cube the maps were computed from, and these maps no longer carry it "
            "(read from a file?); pass it: maps.coact.fwe(act=xcoact.activations(db, kernel='ale'), n_iter=1000)."
        )
    # the cube token does not tell kernel sizes apart
    sizing = [(str(maps.attrs.get(k)), str(act.attrs.get(k))) for k in ("sample_size", "fwhm")]
    if (maps.attrs.get("cube") is not None and str(maps.attrs["cube"]) != cube_token(act)) or any(
        a != b for a, b in sizing
    ):
        raise ParameterError(
            "act is not the cube these ALE maps were computed from (attrs['cube'] differs); pass that cube."
        )
    return act


#: ``maps.coact.fwe`` parameters of the MKDA permutation test only, with their defaults.
_MKDA_ONLY = {"alpha": 0.05, "connectivity": 26, "early_stop": False, "batch_size": 50}


def fwe(maps, act=None, *, n_iter=1000, seed=None, cluster_p: float = 0.001, engine: AleEngine = "auto", **mkda):
    """``maps.coact.fwe`` on an ALE seed: NiMARE's Monte Carlo FWE (:func:`.ale_null.ale_fwe`), computed now.

    ``cluster_p`` is ``ale_fwe``'s ``voxel_thresh``; the maps and attrs added are listed in docs/ale.md.
    """
    from ..roi import grid_of
    from . import ale_null

    if maps.attrs.get("analysis") != "ALE seed coactivation" or maps.attrs.get("null_method") != "approximate":
        raise ParameterError(
            "fwe on ALE maps applies to one ALE seed's maps (act.coact.seed(roi) on an ALE cube); "
            "an ALE contrast or SCALE result carries its own permutation p."
        )
    given = {k: v for k, v in mkda.items() if (k == "progress" and v) or (k != "progress" and v != _MKDA_ONLY[k])}
    if given or isinstance(n_iter, str):
        what = ", ".join(f"{k}={v!r}" for k, v in given.items()) or f"n_iter={n_iter!r}"
        raise ParameterError(
            f"{what} applies to the MKDA permutation test only; ALE FWE (NiMARE's Monte Carlo, face "
            "connectivity) takes n_iter=, seed= and cluster_p= (the cluster-forming p)."
        )
    act = _cube_of(maps, act)
    n_iter, seed = _check_mc(n_iter, seed)
    ijk, study, sizing, peaks = _foci_of(act, _selection(act, maps))
    grid = grid_of(act)
    out = ale_null.ale_fwe(
        ijk, study, peaks.grid, **sizing, n_iter=n_iter, seed=seed, voxel_thresh=cluster_p, engine=engine
    )
    ds = maps.copy()
    for key, values in out.items():
        if key.startswith(("logp_", "z_")):
            ds[key] = (
                ("x", "y", "z"),
                _volume(values, grid.mask_flat, grid.shape),
                {"long_name": f"{key} (NiMARE's Monte Carlo FWE)"},
            )
        elif key.startswith("values_"):
            ds[key] = ("iteration", values, {"long_name": f"null maximum per iteration ({key})"})
    ds.attrs.update(
        {
            "fwe_method": "montecarlo (NiMARE 0.22.1 ALE.correct_fwe_montecarlo)",
            "fwe_n_iter": n_iter,
            "fwe_seed": seed,
            "fwe_cluster_p": float(cluster_p),
            "fwe_threshold": float("nan") if out["threshold"] is None else float(out["threshold"]),
        }
    )
    return ds


#: ALESubtraction's maps as ale_null returns them, and their dtypes.
SUBTRACTION_MAPS = {
    "stat_desc-group1MinusGroup2": np.float32,
    "p_desc-group1MinusGroup2": np.float32,
    "z_desc-group1MinusGroup2": np.float64,
    "logp_desc-group1MinusGroup2": np.float32,
}


def _ma_of(group: tuple, grid: Grid) -> list:
    """Each study's sparse MA (:func:`study_ma`) of a group's ``(ijk, study, sizing)``, in code order."""
    ijk, study, sizing = group
    ptr = np.searchsorted(study, np.arange(int(study.max()) + 2))
    out = []
    for s in range(ptr.size - 1):
        size = {k: (v[s] if np.ndim(v) else v) for k, v in sizing.items()}
        out.append(study_ma(ijk[ptr[s] : ptr[s + 1]], grid, **{k: float(v) for k, v in size.items()}))
    return out


def _subtraction(a, b, grid: Grid, n_iter: int, seed: int) -> dict:
    """ALESubtraction of two groups, each ``(ijk, study, sizing)``."""
    from . import ale_null

    return ale_null.ale_subtraction(_ma_of(a, grid), _ma_of(b, grid), grid.n_mask, n_iter=n_iter, seed=seed)


def contrast(
    act,
    seed_a,
    seed_b,
    threshold=None,
    *,
    r: float = 6.0,
    select: SelectRule | None = None,
    k: int | None = None,
    both: BothRule = "exclude",
    preset: PresetName | None = None,
    n_iter: int | None = None,
    seed: int | None = None,
):
    """``act.coact.contrast(a, b)`` on an ALE cube: NiMARE's ``ALESubtraction`` (:func:`.ale_null.ale_subtraction`).

    Selections as :func:`seed`, ``both`` as :func:`xcoact.contrast`; ``n_iter`` relabellings (default 5000)
    from ``seed`` (None: fresh entropy, recorded).  Selections now; the maps lazy, one task.
    """
    import dask

    from ..analyses.contrast import BOTH_RULES, contrast_groups
    from ..analyses.pipeline import _grid, _preset_of
    from ..result import _result, cube_token
    from ..roi import describe_seed, is_batch, is_coords
    from ..select import check_rule

    if not isinstance(both, str) or both not in BOTH_RULES:
        raise ParameterError(f"both={both!r} is not known; expected one of {', '.join(map(repr, BOTH_RULES))}.")
    for name, s in (("seed_a", seed_a), ("seed_b", seed_b)):
        if is_batch(s):
            raise ParameterError(f"{name} is a list of seeds; a contrast takes one seed on each side.")
    n_iter, seed = _check_mc(n_iter, seed)
    pre = _preset_of(act, preset)
    rule = check_rule(
        "focus" if select is None else select, threshold, r=r, k=k, coords=is_coords(seed_a) and is_coords(seed_b)
    )
    grid = _grid(act)
    in_a, in_b, overlap, rois, _ = contrast_groups(act, (seed_a, seed_b), pre, rule, grid, r, both)
    ids = np.asarray(act["study"].values)
    n_rois = [int(roi.attrs["n_roi"]) for roi in rois]
    a, b = _foci_of(act, in_a), _foci_of(act, in_b)
    peaks_grid = a[3].grid
    result = dask.delayed(_subtraction, pure=True)(a[:3], b[:3], peaks_grid, n_iter, seed)
    lazy = _lazy_maps(result, SUBTRACTION_MAPS, grid)
    ds = _result(act, grid, list(lazy), {n: (("x", "y", "z"), v) for n, v in lazy.items()})
    ds["group"] = (
        "study",
        np.where(in_a, 1, np.where(in_b, 2, 0)).astype(np.int8),
        {"long_name": "1: group A, 2: group B, 0: neither (or excluded)"},
    )
    ds["selected_id"] = ("selected", ids[in_a], {"long_name": "ids of the group A studies"})
    ds["selected_b_id"] = ("selected_b", ids[in_b], {"long_name": "ids of the group B studies"})
    ds.attrs = {
        "title": "xcoact ALE subtraction (NiMARE's ALESubtraction)",
        "analysis": "ALE contrast (seed A minus seed B)",
        "database": str(act.attrs.get("database", "")),
        "cube": cube_token(act),
        "kernel": "ale",
        **{k: v for k, v in act.attrs.items() if k in ("sample_size", "fwhm")},
        **rule.attrs(n_rois[0]),
        "n_roi_a": n_rois[0],
        "n_roi_b": n_rois[1],
        "preset": pre.name,
        "seed_a": describe_seed(seed_a, r),
        "seed_b": describe_seed(seed_b, r),
        "n_a": int(in_a.sum()),
        "n_b": int(in_b.sum()),
        "n_both": int(overlap.sum()),
        "both": both,
        "null_method": "label permutation",
        "n_iter": n_iter,
        "null_seed": seed,
        "maps": ", ".join(lazy),
        "reference": "NiMARE 0.22.1 ALESubtraction (defaults) of the two selections",
    }
    return ds


#: SCALE's maps as ale_null returns them (``z`` as ``z_map``: a variable cannot share the z coordinate's name).
SCALE_MAPS = {"stat": np.float64, "p": np.float32, "z": np.float64, "logp": np.float32}


def scale(maps, act, *, n_iter: int | None = None, seed: int | None = None):
    """``act.coact.seed(roi, null="scale")``: an ALE seed's maps replaced by SCALE's (:func:`.ale_null.ale_scale`).

    Against ``n_iter`` draws (default 5000) from every focus of the cube, from ``seed`` (None: fresh
    entropy, recorded); lazy, one task.
    """
    import dask

    from ..roi import grid_of
    from . import ale_null

    n_iter, seed = _check_mc(n_iter, seed)
    ijk, study, sizing, peaks = _foci_of(act, _selection(act, maps))
    grid = grid_of(act)
    result = dask.delayed(ale_null.ale_scale, pure=True)(
        ijk, study, peaks.grid, peaks.ijk, **sizing, n_iter=n_iter, seed=seed
    )

    lazy = _lazy_maps(result, SCALE_MAPS, grid)
    ds = maps.copy()
    for key, values in lazy.items():
        name = "z_map" if key == "z" else key
        ds[name] = (
            ("x", "y", "z"),
            values,
            {"long_name": f"SCALE {key} (specific coactivation vs the database's foci)"},
        )
    ds.attrs.update(
        {
            "analysis": "ALE seed coactivation (SCALE)",
            "null_method": "scale",
            "n_iter": n_iter,
            "null_seed": seed,
            "maps": "stat, p, z_map, logp",
            "reference": "NiMARE 0.22.1 SCALE(xyz=every focus of the database) on the studies "
            "get_studies_by_mask selects",
        }
    )
    return ds
