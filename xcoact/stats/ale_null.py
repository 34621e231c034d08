"""Monte Carlo inference for ALE: FWE correction, subtraction and SCALE (NiMARE 0.22.1's procedures).

:func:`ale_fwe` (``ALE.correct_fwe_montecarlo``, from :func:`fwe_null` and :func:`fwe_maps`),
:func:`ale_subtraction` (``ALESubtraction``) and :func:`ale_scale` (``SCALE``) on numpy inputs.  Iteration ``i``
draws from its own generator, so a run split into ranges gives the same numbers.  The FWE null screens each
iteration with cut kernels and computes the exact ALE only where it can exceed the cluster-forming threshold;
docs/ale.md describes the procedures, the screening and their agreement with NiMARE.
"""

from __future__ import annotations

import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import get_args

import numpy as np
from scipy import special

from .._threads import usable_cores
from ..choices import AleEngine
from ..errors import ParameterError
from ..space import Grid
from . import ale, components

__all__ = [
    "ale_fwe",
    "ale_scale",
    "ale_subtraction",
    "cluster_threshold",
    "fwe_maps",
    "fwe_null",
    "permutation_p",
]


def _iteration_rng(seed: int, i: int) -> np.random.Generator:
    """Iteration ``i``'s own generator: independent of how iterations are split into runs."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(i),)))


class _ThreadScratch:
    """One set of scratch arrays per thread, made on its first iteration and kept for its next ones."""

    def __init__(self, make):
        self._make, self._local = make, threading.local()

    def get(self):
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = self._make()
        return buf


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed={seed!r}; expected an int >= 0 (the same seed gives the same Monte Carlo null).")
    return int(seed)


def _check_iterations(iterations, name: str = "n_iter") -> range:
    if isinstance(iterations, range):
        if iterations.step != 1 or iterations.start < 0 or len(iterations) < 1:
            raise ParameterError(f"{name}={iterations!r}; expected a non-empty range(start, stop) with start >= 0.")
        return iterations
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ParameterError(f"{name}={iterations!r}; expected an int >= 1 (the number of Monte Carlo iterations).")
    return range(int(iterations))


class _Foci:
    """Foci grouped by study, with each study's kernel, ready for placement."""

    def __init__(self, ijk, study, grid: Grid, sample_size, fwhm):
        ijk = ale._check_ijk(ijk)
        study = np.asarray(study)
        if study.shape != (len(ijk),) or (study.size and not np.issubdtype(study.dtype, np.integer)):
            raise ParameterError(
                f"study must hold one integer study code per focus ({len(ijk)}); got {study.dtype} of shape "
                f"{study.shape}."
            )
        if not len(ijk):
            raise ParameterError("ijk holds no focus; ALE needs at least one study's foci.")
        if study.min() < 0:
            raise ParameterError(
                f"study codes must be >= 0 (0..n_studies-1, the order studies are combined); got {study.min()}."
            )
        n_studies = int(study.max()) + 1
        present = np.bincount(study, minlength=n_studies) > 0
        if not present.all():
            raise ParameterError(
                f"study codes must run over 0..{n_studies - 1} without gaps; code {np.flatnonzero(~present)[0]} has no "
                "focus."
            )
        sizes = self._per_study(sample_size, "sample_size", n_studies)
        widths = self._per_study(fwhm, "fwhm", n_studies)
        if (sizes is None) == (widths is None):
            ale._resolve_fwhm(sample_size, fwhm)  # raises: give exactly one
        order = np.argsort(study, kind="stable")
        self.grid = grid
        self.ijk = ijk[order].astype(np.int64)
        self.study = study[order]
        self.n_studies = n_studies
        self.ptr = np.searchsorted(self.study, np.arange(n_studies + 1)).astype(np.int64)
        self.kwargs = (
            [{"sample_size": float(s)} for s in sizes] if widths is None else [{"fwhm": float(w)} for w in widths]
        )
        zoom = ale._zoom_root(grid.voxel_size)
        pairs = [ale._resolve_fwhm(kw.get("sample_size"), kw.get("fwhm")) for kw in self.kwargs]
        keys = list(dict.fromkeys(pairs))  # each distinct kernel once, in order of first use
        kernel_of = [keys.index(key) for key in pairs]
        self.padded = tuple(int(n) + 2 * ale._PAD for n in grid.shape)
        offsets, values, kptr, reach = [], [], [0], []
        for fwhm_mm, given in keys:
            kernel = ale._stored_kernel(fwhm_mm, zoom, given)
            offsets.append(ale._flat_offsets(kernel.shape[0], self.padded))
            values.append(kernel.reshape(-1))
            kptr.append(kptr[-1] + kernel.size)
            reach.append(kernel.shape[0] // 2)
        self.kernel_of = np.asarray(kernel_of, dtype=np.int64)
        self.offsets = np.concatenate(offsets).astype(np.int64)
        self.values = np.concatenate(values).astype(np.float32)
        self.logs = np.log1p(-self.values)  # float32, as ale._stat takes it
        self.kptr = np.asarray(kptr, dtype=np.int64)
        self.reach = np.asarray(reach, dtype=np.int64)[self.kernel_of][self.study]  # per focus
        self.strides = np.array([self.padded[1] * self.padded[2], self.padded[2], 1], dtype=np.int64)

    @staticmethod
    def _per_study(value, name: str, n_studies: int):
        if value is None:
            return None
        arr = np.asarray(value, dtype=np.float64) if not isinstance(value, str) else np.asarray([np.nan])
        if arr.ndim == 0:
            arr = np.full(n_studies, float(arr))
        if arr.shape != (n_studies,) or not np.isfinite(arr).all() or (arr <= 0).any():
            raise ParameterError(
                f"{name} must be a number > 0 or one per study ({n_studies}), all finite and > 0; got {value!r}."
            )
        return arr

    def centres(self, ijk: np.ndarray) -> np.ndarray:
        """Padded flat index of each focus voxel, -1 where its kernel cannot reach the grid."""
        near = np.all((ijk >= -self.reach[:, None]) & (ijk < np.asarray(self.grid.shape) + self.reach[:, None]), axis=1)
        return np.where(near, (ijk + ale._PAD) @ self.strides, -1)

    def ma(self, ijk: np.ndarray) -> list:
        """Each study's sparse MA with its foci at ``ijk`` (rows in this object's order)."""
        return [
            ale.study_ma(ijk[self.ptr[s] : self.ptr[s + 1]], self.grid, **self.kwargs[s]) for s in range(self.n_studies)
        ]


def _sums_of(
    centres, ptr, kernel_of, kptr, offsets, values, logs, support, ma, lg, sums, seen, scratch, touched
):  # compiled by _Engine
    """The ALE log-sums of one set of foci: each study's largest MA per voxel, its float32 log added."""
    n_all = 0
    for s in range(ptr.shape[0] - 1):
        k = kernel_of[s]
        n_s = 0
        for f in range(ptr[s], ptr[s + 1]):
            c = centres[f]
            if c < 0:
                continue
            for q in range(kptr[k], kptr[k + 1]):
                col = support[c + offsets[q]]
                if col >= 0:
                    v = values[q]
                    if ma[col] == 0:
                        scratch[n_s] = col
                        n_s += 1
                        ma[col] = v
                        lg[col] = logs[q]
                    elif v > ma[col]:
                        ma[col] = v
                        lg[col] = logs[q]
        for t in range(n_s):
            col = scratch[t]
            sums[col] += lg[col]  # numpy's float32 log1p(-MA), summed in float64, as ale._stat
            ma[col] = 0
            if not seen[col]:
                seen[col] = True
                touched[n_all] = col
                n_all += 1
    return n_all


#: Values per piece of a screening run (the last zero-padded): a constant trip count the compiler vectorises.
_RUN = 16


def _screen_sums(centres, kernel, rptr, row_off, row_logs, sums):  # compiled by _Engine.screen
    """Add every focus's cut-kernel ``log1p(-MA)`` into ``sums`` (float32): a lower bound of the ALE's log-sum."""
    for f in range(centres.size):
        c = centres[f]
        k = kernel[f]
        for r in range(rptr[k], rptr[k + 1]):
            base = c + row_off[r]
            at = r * _RUN
            for t in range(_RUN):
                sums[base + t] += row_logs[at + t]


def _screen_candidates(sums, mask_pos, cut, out):  # compiled by _Engine.screen
    """In-mask voxels whose screening log-sum is at most ``cut`` into ``out``; their count, the smallest's number."""
    n = 0
    low = 0
    for i in range(mask_pos.size):
        v = sums[mask_pos[i]]
        if v <= cut:
            out[n] = i
            n += 1
        if v < sums[mask_pos[low]]:
            low = i
    return n, low


def _exact_sums(cand, foci, ptr, kernel_of, kptr, width, logs, n0, n1):  # compiled by _Engine.screen
    """Exact ALE log-sums (float64) at the voxels ``cand`` (padded coordinates, C order): ale_stat's terms and order.

    ``first[i, j]``, the first candidate at or after ``(i, j)``, finds those a kernel reaches plane by plane.
    """
    n = cand.shape[0]
    first = np.empty((n0, n1 + 1), dtype=np.int64)
    t = 0
    for i in range(n0):
        for j in range(n1 + 1):
            while t < n and (cand[t, 0] < i or (cand[t, 0] == i and cand[t, 1] < j)):
                t += 1
            first[i, j] = t
    total = np.zeros(n)
    row = np.zeros(n, dtype=np.float32)
    touched = np.empty(n, dtype=np.int64)
    for s in range(ptr.size - 1):
        k = kernel_of[s]
        w = width[k]
        r = w // 2
        at = kptr[k]
        nt = 0
        for f in range(ptr[s], ptr[s + 1]):
            f0, f1, f2 = foci[f, 0], foci[f, 1], foci[f, 2]
            for a in range(w):
                i = f0 - r + a
                for u in range(first[i, f1 - r], first[i, f1 + r + 1]):
                    d2 = cand[u, 2] - f2
                    if d2 < -r or d2 > r:
                        continue
                    lg = logs[at + (a * w + (cand[u, 1] - f1 + r)) * w + (d2 + r)]
                    if lg < row[u]:
                        if row[u] == 0:
                            touched[nt] = u
                            nt += 1
                        row[u] = lg
        for i in range(nt):  # numpy's float32 log1p(-MA), summed in float64 study by study, as ale._stat
            u = touched[i]
            total[u] += row[u]
            row[u] = 0
    return total


#: Share of the threshold's log-sum the kernel cut may hide (more: a cheaper screen, more candidates).
_SHARE = 0.05


class _Engine:
    """The ALE of relocated foci, sparse: (in-mask indices, float32 ALE there)."""

    def __init__(self, foci: _Foci, engine: str):
        if engine not in get_args(AleEngine):
            raise ParameterError(f"engine={engine!r}; expected 'auto', 'numba' or 'numpy'.")
        self.foci = foci
        self.compiled = components.compiled(_sums_of) if engine in ("auto", "numba") else None
        self.support = ale._placement(foci.grid)
        self.screened = False

    def buffers(self):
        n = self.foci.grid.n_mask
        buf = [
            np.zeros(n, dtype=np.float32),
            np.zeros(n, dtype=np.float32),
            np.zeros(n),
            np.zeros(n, dtype=np.bool_),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64),
        ]
        if self.screened:  # the screening box (a run's padding may reach _RUN - 1 past its end), the labeller's
            buf += [np.zeros(int(np.prod(self.box)) + _RUN, dtype=np.float32), None, self.labeller.scratch()]
        return buf

    def stat(self, ijk: np.ndarray, buf) -> tuple[np.ndarray, np.ndarray]:
        f = self.foci
        if self.compiled is None:
            studies = [(i, v.astype(np.float32)) for i, v in f.ma(ijk)]
            dense = ale._stat(studies, f.grid.n_mask)
            idx = np.flatnonzero(dense)
            return idx, dense[idx]
        sums, seen, touched = buf[2], buf[3], buf[5]
        n = self.compiled(
            f.centres(ijk), f.ptr, f.kernel_of, f.kptr, f.offsets, f.values, f.logs, self.support, *buf[:6]
        )
        idx = touched[:n]  # in order of first touch; callers that need them sorted sort them
        stat = (1.0 - np.exp(sums[idx])).astype(np.float32)
        sums[idx] = 0.0
        seen[idx] = False
        keep = stat > 0
        return idx[keep], stat[keep]

    def screen(self, threshold: float):
        """Prepare :meth:`above`: kernels cut below ``delta``, small enough to hide no supra-threshold voxel.

        The cut raises a study's log-sum by at most ``-log1p(-delta)``, all studies by at most ``slack``
        (``_SHARE`` of the threshold's); docs/ale.md has the argument.
        """
        f = self.foci
        if self.compiled is None:
            return
        self.kernels = tuple(map(components.compiled, (_screen_sums, _screen_candidates, _exact_sums)))
        self.l_thr = math.log1p(-float(threshold))
        delta = np.float32(-math.expm1(_SHARE * self.l_thr / f.n_studies))
        self.slack = f.n_studies * -float(np.log1p(-delta)) * (1 + 1e-6)
        self.widths = np.asarray([int(round(n ** (1 / 3))) for n in np.diff(f.kptr)], dtype=np.int64)
        pad = int(self.widths.max() // 2)
        mask_ijk = np.column_stack(np.unravel_index(f.grid.mask_flat, f.grid.shape)).astype(np.int64)
        corner = mask_ijk.min(axis=0)  # the box spans the mask's bounding box (foci are drawn in the mask)
        self.box = tuple(int(n) + 2 * pad for n in mask_ijk.max(axis=0) - corner + 1)
        steps = np.array([self.box[1] * self.box[2], self.box[2], 1], dtype=np.int64)
        rptr, row_off, row_logs = [0], [], []
        for k, w in enumerate(self.widths):
            r = int(w // 2)
            values = f.values[f.kptr[k] : f.kptr[k + 1]].reshape(w, w, w)
            logs = f.logs[f.kptr[k] : f.kptr[k + 1]].reshape(w, w, w)
            for a in range(w):
                for b in range(w):
                    keep = np.flatnonzero(values[a, b] >= delta)
                    if keep.size:  # the first to the last kept value (more values only tighten the bound)
                        for lo in range(int(keep[0]), int(keep[-1]) + 1, _RUN):
                            piece = np.zeros(_RUN, dtype=np.float32)
                            hi = min(lo + _RUN, int(keep[-1]) + 1)
                            piece[: hi - lo] = logs[a, b, lo:hi]
                            row_off.append((a - r) * steps[0] + (b - r) * steps[1] + (lo - r))
                            row_logs.append(piece)
            rptr.append(len(row_off))
        self.rows = (np.asarray(rptr, dtype=np.int64), np.asarray(row_off, dtype=np.int64), np.concatenate(row_logs))
        self.focus_kernel = f.kernel_of[f.study]
        mask_ijk += pad - corner
        self.mask_box = mask_ijk  # in-mask voxels' coordinates in the padded box, C order
        self.mask_pos = mask_ijk @ steps
        self.labeller = _voxel_labeller(f.grid)
        self.screened = True

    def above(self, draw: np.ndarray, buf, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Exact ALE (float32) at in-mask voxels (ascending) holding every voxel above ``threshold`` and the maximum.

        ``draw``: each focus's in-mask voxel.  When no candidate exceeds the threshold, the candidates within
        the slack of the best exact log-sum are computed again (the maximum may lie there).
        """
        f = self.foci
        if not self.screened:
            return self.stat(self.mask_ijk(draw), buf)
        screen_sums, screen_candidates, exact_sums = self.kernels
        sums, out = buf[6], buf[4]
        pos = self.mask_pos[draw]
        order = np.argsort(pos)
        screen_sums(pos[order], self.focus_kernel[order], *self.rows, sums)
        n, low = screen_candidates(sums, self.mask_pos, self._widened(self.l_thr + self.slack), out)
        cand = out[:n].copy() if n else np.array([low], dtype=np.int64)
        foci = self.mask_box[draw]
        csum = exact_sums(self.mask_box[cand], foci, f.ptr, f.kernel_of, f.kptr, self.widths, f.logs, *self.box[:2])
        stat = (1.0 - np.exp(csum)).astype(np.float32)
        if not (stat > np.float64(threshold)).any():
            n, _ = screen_candidates(sums, self.mask_pos, self._widened(float(csum.min()) + self.slack), out)
            cand = out[:n].copy()
            csum = exact_sums(self.mask_box[cand], foci, f.ptr, f.kernel_of, f.kptr, self.widths, f.logs, *self.box[:2])
            stat = (1.0 - np.exp(csum)).astype(np.float32)
        sums[:] = 0
        return cand, stat

    def _widened(self, cut: float) -> float:
        """``cut`` widened by the float32 screening sums' worst rounding error (at most one term per focus)."""
        return cut + 1e-5 + len(self.foci.ijk) * 2.0**-24 * abs(cut)

    def mask_ijk(self, draw: np.ndarray) -> np.ndarray:
        grid = self.foci.grid
        return np.column_stack(np.unravel_index(grid.mask_flat[draw], grid.shape))


@functools.lru_cache(maxsize=4)
def _voxel_labeller(grid: Grid) -> components.VoxelLabeller:
    """Face-connected components of subsets of the grid's in-mask voxels (NiMARE's connectivity)."""
    return components.VoxelLabeller(grid.shape, grid.mask_flat, connectivity=6)


def _run(iterations: range, one, n_workers: int):
    """``one(i)`` for every iteration, in order, in ``n_workers`` threads (the compiled loops release the GIL)."""
    if n_workers <= 1 or len(iterations) < 2 * n_workers:
        return [one(i) for i in iterations]
    parts = np.array_split(np.asarray(iterations), n_workers)
    with ThreadPoolExecutor(n_workers) as pool:
        done = list(pool.map(lambda part: [one(int(i)) for i in part], parts))
    return [r for part in done for r in part]


def _check_workers(n_workers) -> int:
    if n_workers is None:
        return usable_cores()
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ParameterError(f"n_workers={n_workers!r}; expected an int >= 1 (threads running iterations).")
    return int(n_workers)


# -- FWE ------------------------------------------------------------------------------------------


def cluster_threshold(bins: np.ndarray, weights: np.ndarray, voxel_thresh: float = 0.001) -> float:
    """The cluster-forming ALE threshold: NiMARE's ``_p_to_summarystat`` on the approximate null.

    The bin before the first whose upper tail is at most ``voxel_thresh`` (erring conservative).

    Parameters
    ----------
    bins, weights : arrays
        The approximate null (:func:`xcoact.stats.ale.ale_null`).
    voxel_thresh : float
        Uncorrected voxel-level p, in (0, 1); NiMARE's default 0.001.

    Returns
    -------
    float
        An ALE value (a bin centre); voxels with ALE above it form clusters.

    Raises
    ------
    ParameterError
        ``voxel_thresh`` is not in (0, 1).
    """
    voxel_thresh = _check_p(voxel_thresh, "voxel_thresh")
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.sum() <= 0:
        return float(bins[0])
    tail = np.cumsum(weights[::-1])[::-1]
    tail /= tail[0]
    below = np.flatnonzero(tail <= voxel_thresh)
    if below.size == 0:
        return float(bins[-1])
    return float(bins[max(0, below[0] - 1)])


def _check_p(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < value < 1:
        raise ParameterError(f"{name}={value!r}; expected a p-value strictly between 0 and 1, e.g. {name}=0.001.")
    return float(value)


def _cluster_measures(idx: np.ndarray, stat: np.ndarray, threshold: float, grid: Grid, scratch=None):
    """Largest face-connected cluster's size and mass among in-mask voxels ``idx`` (any order) with ALE > threshold."""
    threshold = np.float64(threshold)  # compared in float64, as NiMARE's float64 bin centre
    above = stat > threshold
    if not above.any():
        return 0, 0.0
    numbers, values = idx[above], stat[above]
    if numbers.size > 1 and (np.diff(numbers) < 0).any():
        order = np.argsort(numbers)
        numbers, values = numbers[order], values[order]
    n, which = _voxel_labeller(grid).label_voxels(numbers, scratch)
    sizes = np.bincount(which, minlength=n)
    masses = np.bincount(which, weights=values.astype(np.float64) - threshold, minlength=n)
    return int(sizes.max()), float(masses.max())


def fwe_null(
    ijk,
    study,
    grid: Grid,
    *,
    sample_size=None,
    fwhm=None,
    threshold: float | None = None,
    n_iter: int | range = 5000,
    seed: int = 0,
    engine: AleEngine = "auto",
    n_workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Monte Carlo maxima of ALE under NiMARE's null: every focus moved to a random in-mask voxel.

    Parameters
    ----------
    ijk : (n_foci, 3) int array
        The foci as voxel indices on ``grid`` (only their count per study matters).
    study : (n_foci,) int array
        Each focus's study, codes ``0..n_studies-1`` in the order the studies are combined.
    grid : xcoact.space.Grid
        The voxels foci are drawn from and the ALE is over.
    sample_size, fwhm : float or (n_studies,) array
        The studies' kernels (:func:`xcoact.stats.ale.study_ma`); exactly one.
    threshold : float, optional
        Cluster-forming ALE (:func:`cluster_threshold`); None for the voxel-level maxima only.
    n_iter : int or range
        Iterations ``0..n_iter-1``, or the ``range`` of them to run (the same however a run is split).
    seed : int
        Seed of the iterations' generators.
    engine : {"auto", "numba", "numpy"}
        Compiled or numpy ALE (same results).
    n_workers : int, optional
        Threads running iterations (default: the usable cores; the results do not depend on it).

    Returns
    -------
    dict of (n,) float32 arrays, one entry per iteration
        ``"values_level-voxel"`` (largest ALE) and, with a ``threshold``, the largest cluster's
        ``"values_desc-size_level-cluster"`` and ``"values_desc-mass_level-cluster"`` (0 without one).

    Raises
    ------
    ParameterError
        Bad foci, study codes, kernels, ``n_iter``, ``seed``, ``engine`` or ``n_workers``.
    """
    foci = _Foci(ijk, study, grid, sample_size, fwhm)
    iterations = _check_iterations(n_iter)
    seed = _check_seed(seed)
    n_workers = _check_workers(n_workers)
    run = _Engine(foci, engine)
    if threshold is not None:
        run.screen(threshold)
    n_foci = len(foci.ijk)
    scratch = _ThreadScratch(run.buffers)

    def one(i):
        buf = scratch.get()
        draw = _iteration_rng(seed, i).integers(0, grid.n_mask, size=n_foci)
        if threshold is None:
            idx, stat = run.stat(run.mask_ijk(draw), buf)
            return (float(stat.max()) if stat.size else 0.0), 0, 0.0
        idx, stat = run.above(draw, buf, threshold)
        top = float(stat.max()) if stat.size else 0.0
        return (top, *_cluster_measures(idx, stat, threshold, grid, buf[8] if run.screened else None))

    rows = np.asarray(_run(iterations, one, n_workers), dtype=np.float64).reshape(-1, 3)
    out = {"values_level-voxel": rows[:, 0].astype(np.float32)}
    if threshold is not None:
        out["values_desc-size_level-cluster"] = rows[:, 1].astype(np.float32)
        out["values_desc-mass_level-cluster"] = rows[:, 2].astype(np.float32)
    return out


def permutation_p(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Upper-tail p of each value against a sample of a null (NiMARE's ``null_to_p(tail="upper")``).

    Parameters
    ----------
    values : array
    null : (n,) array

    Returns
    -------
    float64 array like ``values``
        ``1 - #(null < value) / n``, clipped to ``[1/n, 1 - 1/n]``.

    Raises
    ------
    ParameterError
        The null is empty.
    """
    null = np.sort(np.asarray(null))
    if null.size == 0:
        raise ParameterError("the null holds no value; run at least one iteration.")
    return _clip_p(1.0 - np.searchsorted(null, np.asarray(values), side="left") / null.size, null.size)


def _clip_p(p: np.ndarray, n: int) -> np.ndarray:
    """``p`` clipped to ``[1/n, 1 - 1/n]``, NiMARE's bounds of a p from ``n`` iterations."""
    smallest = 1.0 / n
    return np.maximum(smallest, np.minimum(p, 1.0 - smallest))


def _logp(p: np.ndarray) -> np.ndarray:
    """-log10 p in float32 (NiMARE's ``_p_to_logp_values``: p clipped to float32's positive range)."""
    p = np.clip(np.asarray(p, dtype=np.float32), np.nextafter(np.float32(0), np.float32(1)), np.float32(1))
    return -np.log10(p)


def _z_two(p: np.ndarray) -> np.ndarray:
    """Two-tailed z (unsigned) of p, through log p (NiMARE's ``p_to_z(tail="two")``)."""
    p = np.clip(np.asarray(p, dtype=np.float64), np.nextafter(0.0, 1.0), 1.0)
    return -special.ndtri_exp(np.log(p) - np.log(2.0)) + 0.0


def fwe_maps(stat: np.ndarray, grid: Grid, null: dict, threshold: float | None = None) -> dict[str, np.ndarray]:
    """Voxel- and cluster-level FWE-corrected maps of an ALE map, as NiMARE's ``correct_fwe_montecarlo``.

    Parameters
    ----------
    stat : (n_mask,) array
        The observed ALE over the in-mask voxels (:func:`xcoact.stats.ale.ale_maps`).
    grid : xcoact.space.Grid
    null : dict
        :func:`fwe_null`'s output (all iterations).
    threshold : float, optional
        The cluster-forming ALE the null's cluster maxima were taken at; needed
        for the cluster-level maps.

    Returns
    -------
    dict of (n_mask,) arrays
        ``logp_level-voxel``, ``z_level-voxel`` and, with a threshold, ``logp_`` and
        ``z_desc-{size,mass}_level-cluster`` (``logp`` -log10 p in float32, ``z`` one-tailed); voxels outside
        clusters get p = ``1 - 1/n``.

    Raises
    ------
    ParameterError
        ``stat`` is not one value per in-mask voxel, or the null lacks the cluster maxima a threshold needs.
    """
    stat = np.asarray(stat)
    if stat.shape != (grid.n_mask,):
        raise ParameterError(f"stat has shape {stat.shape}; expected ({grid.n_mask},), one value per in-mask voxel.")
    p_voxel = permutation_p(stat.astype(np.float32), null["values_level-voxel"])
    out = {"logp_level-voxel": _logp(p_voxel), "z_level-voxel": ale.p_to_z(p_voxel)}
    if threshold is None:
        return out
    if "values_desc-size_level-cluster" not in null:
        raise ParameterError("null has no cluster maxima; run fwe_null with the cluster-forming threshold.")
    threshold = np.float64(threshold)  # compared and subtracted in float64, as NiMARE's float64 bin centre
    volume = np.zeros(grid.shape, dtype=np.float32)
    volume.reshape(-1)[grid.mask_flat] = stat
    above = volume > threshold
    labels, n = components.label(above, connectivity=6)
    which = labels.reshape(-1)[grid.mask_flat]
    sizes = np.bincount(which, minlength=n + 1).astype(np.float64)
    masses = np.bincount(
        which, weights=np.where(which > 0, stat.astype(np.float32).astype(np.float64) - threshold, 0.0), minlength=n + 1
    )
    sizes[0] = masses[0] = 0.0  # outside clusters: the null's smallest maximum or less, p = 1 - 1/n
    for name, values in (("size", sizes), ("mass", masses)):
        p = permutation_p(values, null[f"values_desc-{name}_level-cluster"])[which]
        out[f"logp_desc-{name}_level-cluster"] = _logp(p)
        out[f"z_desc-{name}_level-cluster"] = ale.p_to_z(p)
    return out


def ale_fwe(
    ijk,
    study,
    grid: Grid,
    *,
    sample_size=None,
    fwhm=None,
    n_iter: int = 5000,
    seed: int = 0,
    voxel_thresh: float = 0.001,
    vfwe_only: bool = False,
    engine: AleEngine = "auto",
    n_workers: int | None = None,
) -> dict:
    """ALE with NiMARE's Monte Carlo FWE correction (``FWECorrector(method="montecarlo")``) in one call.

    Parameters
    ----------
    ijk, study, grid, sample_size, fwhm, n_iter, seed, engine, n_workers
        As :func:`fwe_null`.
    voxel_thresh : float
        The cluster-forming uncorrected p (NiMARE's default 0.001).
    vfwe_only : bool
        Skip the cluster level.

    Returns
    -------
    dict
        ``stat``, ``p``, ``z`` (:func:`xcoact.stats.ale.ale_maps`), :func:`fwe_maps`, :func:`fwe_null`'s arrays
        and ``threshold`` (the cluster-forming ALE, None with ``vfwe_only``).

    Raises
    ------
    ParameterError
        As :func:`fwe_null`, or ``voxel_thresh`` not in (0, 1).
    """
    foci = _Foci(ijk, study, grid, sample_size, fwhm)
    voxel_thresh = _check_p(voxel_thresh, "voxel_thresh")
    ma = foci.ma(foci.ijk)
    maps = ale.ale_maps(ma, grid.n_mask, engine=engine)
    threshold = None
    if not vfwe_only:
        bins, weights = ale.ale_null(ma, grid.n_mask, engine=engine)
        threshold = cluster_threshold(bins, weights, voxel_thresh)
    kernels = {"sample_size": sample_size} if fwhm is None else {"fwhm": fwhm}
    null = fwe_null(
        ijk, study, grid, **kernels, threshold=threshold, n_iter=n_iter, seed=seed, engine=engine, n_workers=n_workers
    )
    return {**maps, **fwe_maps(maps["stat"], grid, null, threshold), **null, "threshold": threshold}


def _log_terms(ma, n_mask: int):
    """Each study's (indices, float32 log1p(-MA)) for summing ALE."""
    return [(idx, np.log1p(-vals)) for idx, vals in ale._as_study_list(ma, n_mask)]


def _group_stat(terms, members, n_mask: int) -> np.ndarray:
    """A group's ALE in float64 (NiMARE keeps a relabelled group's ALE in float64, its observed one in float32)."""
    sums = np.zeros(n_mask)
    for s in members:
        idx, logs = terms[s]
        sums[idx] += logs
    return 1.0 - np.exp(sums)


def ale_subtraction(
    ma1, ma2, n_mask: int, *, n_iter: int = 5000, seed: int = 0, n_workers: int = 1
) -> dict[str, np.ndarray]:
    """ALE of group 1 minus group 2 against random relabellings: NiMARE's ``ALESubtraction`` (defaults).

    Parameters
    ----------
    ma1, ma2 : sequence of (index, values)
        Each group's studies' sparse MA (:func:`xcoact.stats.ale.study_ma`), in the order it is summed.
    n_mask : int
        Number of in-mask voxels.
    n_iter : int
        Relabellings of the pooled studies (the first ``len(ma1)`` of a shuffle are group 1).
    seed : int
        Seed of the iterations' generators.
    n_workers : int
        Threads running iterations.

    Returns
    -------
    dict
        ``stat_``, ``p_`` (two-sided), ``z_`` (signed) and ``logp_desc-group1MinusGroup2`` over the in-mask
        voxels, and ``values_level-voxel`` (each relabelling's largest ``|difference|``).

    Raises
    ------
    ParameterError
        A bad ``n_mask``, MA pair, ``n_iter``, ``seed`` or ``n_workers``.
    """
    terms = _log_terms(list(ma1), n_mask) + _log_terms(list(ma2), n_mask)
    n1 = len(list(ma1))
    iterations = _check_iterations(n_iter)
    seed = _check_seed(seed)
    n_workers = _check_workers(n_workers)
    n_total = len(terms)
    diff = _group_stat(terms, range(n1), n_mask).astype(np.float32) - _group_stat(
        terms, range(n1, n_total), n_mask
    ).astype(np.float32)

    def one(i):
        order = np.arange(n_total)
        _iteration_rng(seed, i).shuffle(order)
        # float64, compared with the float32 observed difference, as NiMARE
        return _group_stat(terms, order[:n1], n_mask) - _group_stat(terms, order[n1:], n_mask)

    upper = np.zeros(n_mask, dtype=np.uint32)
    lower = np.zeros(n_mask, dtype=np.uint32)
    top = np.empty(len(iterations), dtype=np.float32)
    block = max(1, 64 * n_workers)  # difference maps held at once
    for b in range(0, len(iterations), block):
        part = iterations[b : b + block]
        for j, it in enumerate(_run(part, one, n_workers)):
            upper += it >= diff
            lower += it <= diff
            top[b + j] = np.abs(it).max()
    n = len(iterations)
    p = _clip_p(2.0 * np.minimum(upper / n, lower / n), n).astype(np.float32)
    sign = np.sign(lower.astype(np.int64) - upper.astype(np.int64)).astype(np.float32)
    return {
        "stat_desc-group1MinusGroup2": diff,
        "p_desc-group1MinusGroup2": p,
        "z_desc-group1MinusGroup2": _z_two(p) * sign,
        "logp_desc-group1MinusGroup2": _logp(p),
        "values_level-voxel": top,
    }


def ale_scale(
    ijk,
    study,
    grid: Grid,
    base_ijk,
    *,
    sample_size=None,
    fwhm=None,
    n_iter: int = 5000,
    seed: int = 0,
    engine: AleEngine = "auto",
    n_workers: int = 1,
) -> dict[str, np.ndarray]:
    """Specific coactivation (SCALE): the ALE against the database's base rate, as NiMARE's ``SCALE``.

    Parameters
    ----------
    ijk, study, grid, sample_size, fwhm, engine, n_workers
        As :func:`fwe_null`: the selected studies' foci and kernels.
    base_ijk : (m, 3) int array
        Every focus of the database as a voxel (NiMARE's ``xyz``); each iteration redraws every focus from it.
    n_iter : int
        Iterations.
    seed : int
        Seed of the iterations' generators.

    Returns
    -------
    dict of (n_mask,) arrays
        ``stat``, ``p`` (the share of iterations at least as large, clipped), ``z``, ``logp``; and
        ``values_level-voxel`` (each iteration's largest ALE).

    Raises
    ------
    ParameterError
        As :func:`fwe_null`, or ``base_ijk`` not a non-empty (m, 3) integer array.
    """
    foci = _Foci(ijk, study, grid, sample_size, fwhm)
    base = np.asarray(base_ijk)
    if base.ndim != 2 or base.shape[1] != 3 or not len(base) or not np.issubdtype(base.dtype, np.integer):
        raise ParameterError(
            f"base_ijk must be a non-empty (m, 3) integer array of the database's foci as voxels; got {base.dtype} of "
            f"shape {base.shape}."
        )
    base = base.astype(np.int64)
    iterations = _check_iterations(n_iter)
    seed = _check_seed(seed)
    n_workers = _check_workers(n_workers)
    run = _Engine(foci, engine)
    stat = ale._stat([(i, v.astype(np.float32)) for i, v in foci.ma(foci.ijk)], grid.n_mask)
    n_foci = len(foci.ijk)
    scratch = _ThreadScratch(run.buffers)

    def one(i):
        buf = scratch.get()
        draw = _iteration_rng(seed, i).integers(0, len(base), size=n_foci)
        return run.stat(base[draw], buf)

    counts = np.zeros(grid.n_mask, dtype=np.uint32)
    top = np.empty(len(iterations), dtype=np.float32)
    block = max(1, 64 * n_workers)
    zero = stat == 0  # an iteration's ALE is 0 where it places nothing: >= the observed only there
    for b in range(0, len(iterations), block):
        for j, (idx, vals) in enumerate(_run(iterations[b : b + block], one, n_workers)):
            counts[idx] += vals >= stat[idx]
            counts[zero] += 1
            counts[idx[zero[idx]]] -= 1  # those voxels were counted by their own value above
            top[b + j] = vals.max() if vals.size else 0.0
    n = len(iterations)
    p = _clip_p(counts.astype(np.float32) / n, n).astype(np.float32)
    return {"stat": stat.astype(np.float64), "p": p, "z": ale.p_to_z(p), "logp": _logp(p), "values_level-voxel": top}
