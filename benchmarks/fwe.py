#!/usr/bin/env python3
"""Benchmark of family-wise error control: xcoact's permutation FWE, and NiMARE's side by side.

One command::

    python3 benchmarks/fwe.py                      # 10,000 permutations on Neurosynth v7 + the 1/4-scale comparison
    python3 benchmarks/fwe.py --n-iter 2000        # a shorter run

Two parts, each in its own subprocess (so peak memory is the part's own):

1. ``full``: the real Neurosynth v7 release (14,371 studies), the benchmark
   seed of ``benchmarks/run.py`` ([[0, 20, 28]], r = 10 mm, threshold 0.1, which
   selects 1,435 studies), ``maps.coact.fwe(n_iter=N, seed=0)``: voxel- and
   cluster-level (size and mass) FWE for the uniformity and association tests.
   Reported: wall time of the FWE call (index included: a fresh cube), time per
   permutation, the process's CPU time per permutation (what a shared machine
   does not inflate), peak RSS (VmHWM) of the process, and the load average
   before and after (the machine is shared: at load > 2 the wall time is
   the CPU time spread over fewer than 2 cores).
2. ``quarter``: the first quarter of v7's studies (3,593, in file order),
   the same seed.  xcoact: ``fwe(n_iter=--quarter-iter)``; NiMARE 0.22.1:
   ``MKDAChi2(kernel__r=6)`` fitted on the same two groups, then
   ``FWECorrector(method="montecarlo", n_iters=--nimare-iter, n_cores=1)``
   (its default null, random foci).  Reported: seconds per permutation for
   each and their ratio, and NiMARE's peak RSS.  The kernel radius is xcoact's
   default (6 mm) on both sides, so the per-permutation work is comparable.

Requires NiMARE 0.22.1 for part 2 (``pip install -e ".[test]"`` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = [[0, 20, 28]]
MARK = "@@fwe "


def _peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _release_path(arg: str | None) -> str:
    """The v7 coordinates as benchmarks/run.py finds them: --release, $XCOACT_NEUROSYNTH_V7, else
    ``xcoact.datasets.fetch_neurosynth`` (checksum-verified, cached; from a local mirror when one is there)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import resolve_release

    return resolve_release(arg)


def _emit(**fields) -> None:
    print(MARK + json.dumps(fields), flush=True)


def child_full(args) -> None:
    import xcoact

    warnings.simplefilter("ignore")
    db = xcoact.read_database(_release_path(args.release))
    act = xcoact.activations(db, r=6)
    maps = act.coact.seed(SEED, r=10, threshold=0.1)
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    out = maps.coact.fwe(n_iter=args.n_iter, seed=0, batch_size=args.batch_size)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    _emit(
        part="full",
        studies=int(act.sizes["study"]),
        selected=int(maps.attrs["n_selected"]),
        n_iter=args.n_iter,
        seconds=seconds,
        ms_per_perm=1000 * seconds / (args.n_iter - 1),
        cpu_ms_per_perm=1000 * cpu / (args.n_iter - 1),
        load=[load, os.getloadavg()[0]],
        peak_mb=_peak_mb(),
        min_p=out.attrs["fwe_min_p"],
        significant_voxels={k: int((out[k] <= 0.05).sum()) for k in out.data_vars if "_p_FWE" in k},
    )


def _quarter_table(release: str, out_dir: str) -> tuple[str, list]:
    """The first quarter of v7's studies as a Neurosynth database.txt (MNI: v7 is in MNI)."""
    import numpy as np

    import xcoact

    warnings.simplefilter("ignore")
    db = xcoact.read_database(release)
    ids = db["study_id"].values
    first = list(dict.fromkeys(ids.tolist()))[: len(set(ids.tolist())) // 4]
    keep = np.isin(ids, first)
    path = os.path.join(out_dir, "quarter_database.txt")
    xcoact.write_database(db.isel(peak=np.flatnonzero(keep)), path, "neurosynth")
    return path, first


def child_quarter_xcoact(args) -> None:
    import xcoact

    warnings.simplefilter("ignore")
    db = xcoact.read_database(args.quarter)
    act = xcoact.activations(db, r=6)
    maps = act.coact.seed(SEED, r=10, threshold=0.1)
    act.coact.seed([[0, 0, 0]], r=10).compute()  # the index: the seed-independent part, as NiMARE's fit below
    t0 = time.perf_counter()
    maps.coact.fwe(n_iter=args.quarter_iter, seed=0, batch_size=args.batch_size)
    seconds = time.perf_counter() - t0
    _emit(
        part="quarter-xcoact",
        studies=int(act.sizes["study"]),
        selected=int(maps.attrs["n_selected"]),
        n_iter=args.quarter_iter,
        s_per_perm=seconds / (args.quarter_iter - 1),
        peak_mb=_peak_mb(),
        selected_ids=[str(v) for v in maps["selected_id"].values],
    )


def child_quarter_nimare(args) -> None:
    import logging

    import pandas as pd

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    from nimare.correct import FWECorrector
    from nimare.dataset import Dataset
    from nimare.meta.cbma.mkda import MKDAChi2

    df = pd.read_table(args.quarter)
    data = {}
    for sid, rows in df.groupby("id", sort=False):
        coords = {"space": "MNI", **{c: rows[c].tolist() for c in "xyz"}}
        data[str(sid)] = {"contrasts": {"1": {"coords": coords}}}
    dset = Dataset(data)
    selected = [f"{s}-1" for s in json.loads(args.selected)]
    rest = sorted(set(dset.ids) - set(selected))
    t0 = time.perf_counter()
    result = MKDAChi2(kernel__r=6).fit(dset.slice(selected), dset.slice(rest))
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    FWECorrector(method="montecarlo", n_iters=args.nimare_iter, n_cores=1).transform(result)
    seconds = time.perf_counter() - t0
    _emit(
        part="quarter-nimare",
        n_iter=args.nimare_iter,
        fit_seconds=fit,
        s_per_perm=seconds / args.nimare_iter,
        peak_mb=_peak_mb(),
    )


def _run(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    lines = [ln[len(MARK) :] for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"benchmark part {argv[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def parent(args) -> int:
    import xcoact

    release = _release_path(args.release)
    common = ["--batch-size", str(args.batch_size), "--release", release]
    print(f"xcoact {xcoact.__version__}; {os.cpu_count()} cores; release {release}")
    if not args.skip_full:
        full = _run(["--part", "full", "--n-iter", str(args.n_iter), *common])
        print(
            f"\nNeurosynth v7, {full['studies']:,} studies, seed {SEED} r=10 threshold 0.1 "
            f"-> {full['selected']:,} selected"
        )
        print(
            f"  {full['n_iter']:,} permutations (voxel + cluster size/mass FWE, both tests): {full['seconds']:.1f} s "
            f"({full['ms_per_perm']:.1f} ms per permutation; CPU {full['cpu_ms_per_perm']:.1f} ms per permutation), "
            f"peak RSS {full['peak_mb']:.0f} MB, smallest p {full['min_p']:.2g}, "
            f"load average {full['load'][0]:.1f} -> {full['load'][1]:.1f}"
        )
        for k, v in full["significant_voxels"].items():
            print(f"    {k}: {v:,} voxels with p <= 0.05")
    if args.skip_quarter:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        quarter, _ = _quarter_table(release, tmp)
        ours = _run(
            ["--part", "quarter-xcoact", "--quarter", quarter, "--quarter-iter", str(args.quarter_iter), *common]
        )
        theirs = _run(
            [
                "--part",
                "quarter-nimare",
                "--quarter",
                quarter,
                "--nimare-iter",
                str(args.nimare_iter),
                "--selected",
                json.dumps(ours["selected_ids"]),
                *common,
            ]
        )
    ratio = theirs["s_per_perm"] / ours["s_per_perm"]
    print(
        f"\n1/4 scale: first {ours['studies']:,} studies of v7, {ours['selected']} selected, "
        "kernel r = 6 mm on both sides"
    )
    print(
        f"  xcoact:        {1000 * ours['s_per_perm']:.1f} ms per permutation ({ours['n_iter']} iterations), "
        f"peak RSS {ours['peak_mb']:.0f} MB"
    )
    print(
        f"  NiMARE 0.22.1: {1000 * theirs['s_per_perm']:.0f} ms per permutation ({theirs['n_iter']} iterations, "
        f"montecarlo, n_cores=1; fit {theirs['fit_seconds']:.1f} s), peak RSS {theirs['peak_mb']:.0f} MB"
    )
    print(f"  ratio NiMARE / xcoact per permutation: {ratio:.0f}x")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-iter", type=int, default=10_000)
    ap.add_argument("--quarter-iter", type=int, default=1000)
    ap.add_argument("--nimare-iter", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--release", default=None, help="path of data-neurosynth_version-7_coordinates.tsv.gz")
    ap.add_argument("--skip-full", action="store_true", help="only the 1/4-scale comparison")
    ap.add_argument("--skip-quarter", action="store_true", help="only the full v7 run")
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quarter", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--selected", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part == "full":
        child_full(args)
    elif args.part == "quarter-xcoact":
        child_quarter_xcoact(args)
    elif args.part == "quarter-nimare":
        child_quarter_nimare(args)
    else:
        return parent(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
