#!/usr/bin/env python3
"""Benchmark of ALE Monte Carlo FWE (voxel + cluster level): xcoact.stats.ale_null against NiMARE 0.22.1.

One command::

    python3 benchmarks/ale_fwe.py                      # ~150 studies, 5,000 xcoact iterations, 20 NiMARE ones
    python3 benchmarks/ale_fwe.py --iter 500           # fewer xcoact iterations (the time per iteration is printed)
    python3 benchmarks/ale_fwe.py --compare 2000       # also: 2,000 iterations on both sides, nulls compared (KS)
    python3 benchmarks/ale_fwe.py --compare 2000 --nulls-dir /tmp/xcoact-ks --nimare-nulls-only
                                                       # NiMARE's 2,000-iteration nulls only, saved (slow: run early)
    python3 benchmarks/ale_fwe.py --compare 2000 --nulls-dir /tmp/xcoact-ks
                                                       # the KS comparison against those saved nulls

Data: the n-back/flanker collection bundled for the tests
(``tests/data/nback_flanker_*.tsv.gz``), the studies with a focus in a
sphere (default 13 mm around pre-SMA, (0, 16, 46) mm; NiMARE's
``get_studies_by_mask``), every study with sample size ``--sample-size``
(default 20; the collection records none), on NiMARE's MNI152 2 mm mask.

Timed (wall clock and this process's CPU time; the machine is shared, so the
load average is printed with them):

- NiMARE: ``FWECorrector(method="montecarlo", n_iters=K, voxel_thresh=0.001)``
  on ``ALE(kernel__sample_size=N).fit(...)``, one core (its default), per
  iteration over ``--nimare-iter`` iterations.
- xcoact: :func:`xcoact.stats.ale_null.fwe_null` (voxel maxima and cluster size /
  mass maxima at NiMARE's cluster-forming threshold), ``--workers`` threads,
  ``--iter`` iterations; plus the threshold (approximate null) and the
  corrected maps, timed apart.

Printed: per-iteration times, the ratio, the projected time of 5,000
iterations, the peak resident memory of the xcoact run (measured before
NiMARE runs in this process), and with ``--compare K`` the two-sample KS
statistic and p of each null (xcoact's K iterations from seed + 1 against
NiMARE's) and the FWE thresholds (95th percentiles) with distribution-free
95 % bands.  NiMARE's K iterations run in chunks of 100, each from its own
``random_state`` and, with ``--nulls-dir``, saved there as it finishes and
loaded by later runs: ``--nimare-nulls-only`` (in the background, niced)
computes them, ``--nimare-saved-only`` compares against those saved so far.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"
NULLS = ("values_level-voxel", "values_desc-size_level-cluster", "values_desc-mass_level-cluster")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--center", type=float, nargs=3, default=(0.0, 16.0, 46.0), help="seed centre (mm)")
    parser.add_argument("--r", type=float, default=13.0, help="seed radius (mm)")
    parser.add_argument("--sample-size", type=int, default=20)
    parser.add_argument("--iter", type=int, default=5000, help="xcoact iterations")
    parser.add_argument("--nimare-iter", type=int, default=20, help="NiMARE iterations timed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", choices=("auto", "numba", "numpy"), default="auto")
    parser.add_argument("--compare", type=int, default=0, help="iterations of a KS comparison of the nulls (0: none)")
    parser.add_argument(
        "--ours-runs",
        type=int,
        default=1,
        help="independent xcoact nulls (seeds seed+1, seed+2, ...) each compared with NiMARE's",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--nulls-dir",
        default=None,
        help="directory of NiMARE's --compare null arrays: loaded from there when an earlier run with "
        "the same seed ROI, sample size, iterations and seed saved them, else computed and saved",
    )
    parser.add_argument(
        "--nimare-nulls-only",
        action="store_true",
        help="only compute (and with --nulls-dir save) NiMARE's --compare nulls; no timing",
    )
    parser.add_argument(
        "--nimare-saved-only",
        action="store_true",
        help="compare against the NiMARE chunks saved in --nulls-dir only, running none",
    )
    args = parser.parse_args(argv)
    if args.nimare_nulls_only and not (args.compare and args.nulls_dir):
        parser.error("--nimare-nulls-only needs --compare K and --nulls-dir DIR (where the nulls are saved)")

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import nibabel as nib

    import xcoact
    from xcoact.presets import nimare_mni152_2mm
    from xcoact.stats import ale, ale_null
    from xcoact.stats.nimare import _nimare_peak_xyz
    from xcoact.table import study_index

    coords = str(DATA / "nback_flanker_coordinates.tsv.gz")
    table = xcoact.read_database(coords, format="neurosynth-v7")
    grid = nimare_mni152_2mm()
    centres = nib.affines.apply_affine(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
    inside = (np.linalg.norm(centres - np.asarray(args.center), axis=1) <= args.r).reshape(grid.shape)
    studies, codes = study_index(table["study_id"].values)
    ijk_all = grid.xyz_to_ijk(
        _nimare_peak_xyz(np.column_stack([table[c].values for c in "xyz"]), table["space"].values)
    )
    at = np.clip(ijk_all, 0, np.asarray(grid.shape) - 1)
    chosen = sorted(np.unique(codes[inside[tuple(at.T)]]), key=lambda s: f"{studies[s]}-1")  # NiMARE's order
    keep = np.isin(codes, chosen)
    rank = {s: r for r, s in enumerate(chosen)}
    ijk = ijk_all[keep]
    study = np.array([rank[c] for c in codes[keep]])
    n = args.sample_size
    load = os.getloadavg()
    print(
        f"studies selected: {len(chosen)} of {len(studies)} ({len(ijk)} foci), sample size {n}, seed "
        f"{tuple(args.center)} r = {args.r:g} mm, grid {grid.n_mask} in-mask voxels; cores {os.cpu_count()}, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )

    # -- xcoact -------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    ma = [ale.study_ma(ijk[study == s], grid, sample_size=n) for s in range(len(chosen))]
    maps = ale.ale_maps(ma, grid.n_mask)
    bins, weights = ale.ale_null(ma, grid.n_mask)
    threshold = ale_null.cluster_threshold(bins, weights, 0.001)
    t_fit = time.perf_counter() - t0
    if not args.nimare_nulls_only:
        ale_null.fwe_null(ijk, study, grid, sample_size=n, threshold=threshold, n_iter=2, seed=args.seed)  # compile
        t0, c0 = time.perf_counter(), time.process_time()
        null = ale_null.fwe_null(
            ijk,
            study,
            grid,
            sample_size=n,
            threshold=threshold,
            n_iter=args.iter,
            seed=args.seed,
            engine=args.engine,
            n_workers=args.workers,
        )
        t_null, c_null = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        ale_null.fwe_maps(maps["stat"], grid, null, threshold)
        t_maps = time.perf_counter() - t0
        rss = _rss_mb()
        per_ours = t_null / args.iter
        print(f"xcoact  map + threshold       : {t_fit:8.2f} s   (stat/p/z and the full approximate null)")
        print(
            f"xcoact  fwe_null {args.iter:5d} iter   : {t_null:8.2f} s wall, {c_null:8.2f} s CPU, "
            f"{args.workers} threads -> {1e3 * per_ours:7.1f} ms/iteration; corrected maps {t_maps:.2f} s"
        )
        print(f"xcoact  peak RSS (process)    : {rss:8.0f} MB   load average now {os.getloadavg()[0]:.1f}")

    # -- NiMARE -------------------------------------------------------------------------------------
    from nimare.correct import FWECorrector
    from nimare.io import convert_neurosynth_to_dataset
    from nimare.meta.cbma.ale import ALE

    dset = convert_neurosynth_to_dataset(coords, str(DATA / "nback_flanker_metadata.tsv.gz"))
    ids = sorted(dset.get_studies_by_mask(nib.Nifti1Image(inside.astype(np.uint8), grid.affine)))
    assert ids == [f"{studies[s]}-1" for s in chosen], "xcoact and NiMARE selected different studies"
    sub = dset.slice(ids)
    est = ALE(kernel__sample_size=n, random_state=args.seed)
    result = est.fit(sub)
    assert float(est._p_to_summarystat(0.001)) == threshold, "cluster-forming thresholds differ"
    if not args.nimare_nulls_only:
        FWECorrector(method="montecarlo", n_iters=2, voxel_thresh=0.001).transform(result)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        FWECorrector(method="montecarlo", n_iters=args.nimare_iter, voxel_thresh=0.001).transform(result)
        t_nim, c_nim = time.perf_counter() - t0, time.process_time() - c0
        per_nim = t_nim / args.nimare_iter
        print(
            f"NiMARE  FWE {args.nimare_iter:5d} iter        : {t_nim:8.2f} s wall, {c_nim:8.2f} s CPU, 1 core "
            f"-> {1e3 * per_nim:7.1f} ms/iteration"
        )
        print(
            f"ratio NiMARE / xcoact per iteration (wall): {per_nim / per_ours:6.1f}x; "
            f"per CPU-second: {(c_nim / args.nimare_iter) / (c_null / args.iter):6.1f}x"
        )
        print(
            f"5,000 iterations projected   : xcoact {5000 * per_ours:7.0f} s, NiMARE {5000 * per_nim:7.0f} s; "
            f"load average now {os.getloadavg()[0]:.1f}"
        )

    if args.compare:
        k = args.compare
        theirs = _nimare_nulls(args, k, len(chosen), threshold, est, result)
        if args.nimare_nulls_only:
            return 0
        # one comparison per xcoact seed, all against the same NiMARE null: with equal distributions the p values
        # of independent runs spread evenly over (0, 1), so one small p among several is expected, a run of them not
        for ours_seed in range(args.seed + 1, args.seed + 1 + args.ours_runs):
            t0 = time.perf_counter()
            ours = ale_null.fwe_null(
                ijk, study, grid, sample_size=n, threshold=threshold, n_iter=k, seed=ours_seed, n_workers=args.workers
            )
            print(f"xcoact  fwe_null {k:5d} iter   : {time.perf_counter() - t0:8.2f} s wall (seed {ours_seed})")
            _compare(ours, theirs, k)
    return 0


def _compare(ours: dict, theirs: dict, k: int) -> None:
    """KS statistic and p of each null, and the FWE thresholds (95th percentiles) with their Monte Carlo bands."""
    from scipy import stats

    def band(values):
        # a distribution-free 95 % band of the 95th percentile: order statistics m 0.95 -+ 1.96 sqrt(m 0.95 0.05)
        v = np.sort(values)
        m = v.size
        half = 1.96 * np.sqrt(m * 0.95 * 0.05)
        lo, hi = max(0, int(np.floor(m * 0.95 - half)) - 1), min(m - 1, int(np.ceil(m * 0.95 + half)) - 1)
        return f"{np.quantile(v, 0.95):.6g} [{v[lo]:.6g}, {v[hi]:.6g}]"

    for name in NULLS:
        ks = stats.ks_2samp(ours[name], theirs[name])
        print(
            f"{len(ours[name])} / {len(theirs[name])} iterations, {name:32s}: KS D = {ks.statistic:.4f}, "
            f"p = {ks.pvalue:.3f}; FWE threshold (95th percentile, 95 % band) xcoact {band(ours[name])}, "
            f"NiMARE {band(theirs[name])}"
        )


#: NiMARE's --compare iterations are run and saved in chunks of this many, each from its own seed, so that an
#: interrupted run keeps what it finished and a later one carries on.
CHUNK = 100


def _nimare_nulls(args, k: int, n_studies: int, threshold: float, estimator, result) -> dict:
    """NiMARE's k-iteration null arrays, in chunks: each loaded from ``--nulls-dir`` when saved there, else computed.

    Chunk ``c`` (iterations ``c * CHUNK`` onwards) runs NiMARE's
    ``FWECorrector(method="montecarlo")`` with the estimator's
    ``random_state = 1_000_000 * seed + c`` (NiMARE builds a fresh generator from
    it on each call): draws independent of other chunks', the same ones
    whatever the order the chunks run in.  With ``--nimare-nulls-only`` a run
    stops after the chunks it was asked for; otherwise the comparison uses
    every chunk there is (so fewer than ``k`` when some are missing and
    NiMARE is not run: the count is printed).
    """
    from nimare.correct import FWECorrector

    folder = Path(args.nulls_dir) if args.nulls_dir else None
    tag = f"seed{args.seed}_n{args.sample_size}_c{'_'.join(f'{c:g}' for c in args.center)}_r{args.r:g}"
    parts = {name: [np.zeros(0, dtype=np.float32)] for name in NULLS}
    spent = [0.0, 0.0, 0]
    for c in range(-(-k // CHUNK)):
        size = min(CHUNK, k - c * CHUNK)
        path = folder / f"nimare-fwe-nulls_{tag}_chunk{c:03d}_k{size}.npz" if folder else None
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as saved:
                if int(saved["n_studies"]) != n_studies or float(saved["threshold"]) != threshold:
                    raise SystemExit(
                        f"{path} was saved for {int(saved['n_studies'])} studies at threshold "
                        f"{float(saved['threshold'])}, not {n_studies} at {threshold}; remove it"
                    )
                for name in NULLS:
                    parts[name].append(saved[name])
            continue
        if args.nimare_saved_only:
            continue
        estimator.random_state = result.estimator.random_state = 1_000_000 * args.seed + c
        t0, c0 = time.perf_counter(), time.process_time()
        null = FWECorrector(method="montecarlo", n_iters=size, voxel_thresh=0.001).transform(result)
        null = null.estimator.null_distributions_
        t, cpu = time.perf_counter() - t0, time.process_time() - c0
        spent[0] += t
        spent[1] += cpu
        spent[2] += size
        chunk = {name: np.asarray(null[f"{name}_corr-fwe_method-montecarlo"]) for name in NULLS}
        for name in NULLS:
            parts[name].append(chunk[name])
        if path is not None:
            folder.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(".part.npz")
            np.savez(
                part,
                **chunk,
                n_studies=n_studies,
                threshold=threshold,
                wall_s=t,
                cpu_s=cpu,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            )
            os.replace(part, path)  # never a half-written file under the name a later run loads
            print(f"NiMARE  chunk {c} ({size} iterations): {t:.1f} s wall, {cpu:.1f} s CPU -> {path.name}", flush=True)
    if spent[2]:
        print(
            f"NiMARE  FWE {spent[2]:5d} iter (nulls) : {spent[0]:8.2f} s wall, {spent[1]:8.2f} s CPU -> "
            f"{1e3 * spent[0] / spent[2]:7.1f} ms/iteration wall, {1e3 * spent[1] / spent[2]:7.1f} ms CPU"
        )
    nulls = {name: np.concatenate(parts[name]) for name in NULLS}
    have = len(nulls[NULLS[0]])
    print(f"NiMARE  {have} iterations' nulls ({have - spent[2]} loaded from {folder}, {spent[2]} run now)")
    return nulls


if __name__ == "__main__":
    sys.exit(main())
