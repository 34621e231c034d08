#!/usr/bin/env python3
"""Benchmark of the ALE MACM through the engine, and of the ALE of a whole database (issue 13, speed).

Two commands (run under ``nice -n 5`` on a shared machine; the load average is printed)::

    python3 benchmarks/ale_macm.py macm    # an ALE MACM map warm, ~150 selected studies, against NiMARE
    python3 benchmarks/ale_macm.py v7      # ALE of all of Neurosynth v7, fixed sample size, cold
    python3 benchmarks/ale_macm.py v7 --null   # the same with p and z (the approximate null of every study)

``macm``: the NeuroStore n-back/flanker collection bundled for the tests
(``tests/data/nback_flanker_*.tsv.gz``, 320 studies), every study with
``--sample-size`` subjects.  The cube is
``xcoact.activations(table, preset="nimare", kernel="ale", sample_size=N)``;
the seed a sphere (default 13 mm around pre-SMA, (0, 16, 46) mm), studies with
a focus in it.  Timed, best of ``--repeat``, after one run that builds the
cube's rows (warm): ``act.coact.seed(roi).compute()`` (selection, ALE, null,
p, z); the process's CPU time of the same runs is printed beside the wall
time (on a shared machine the CPU time is the steadier number).  NiMARE's
``ALE(kernel__sample_size=N).fit(dset.slice(ids))`` on the
same studies is timed once after a warm-up; the largest |difference| of stat,
p and z is printed.

``v7``: :func:`xcoact.stats.ale.database_ale` of the v7 coordinates
(``--v7``, default ``/tmp/xcoact-bench-data/neurosynth-v7/...``), every study
with ``--sample-size`` subjects, from reading the file to the computed map, in
a fresh process (cold: numba's compiled functions come from its disk cache);
``--null`` adds ``p`` and ``z`` (``database_ale(null=True)``: every study's MA
histogram folded into the approximate null, sorted-id order, as NiMARE).
Wall and CPU time; peak memory is the process's maximum resident set size.
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
V7 = "/tmp/xcoact-bench-data/neurosynth-v7/data-neurosynth_version-7_coordinates.tsv.gz"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def macm(args) -> None:
    import nibabel as nib
    from nimare.io import convert_neurosynth_to_dataset
    from nimare.meta.cbma.ale import ALE

    import xcoact
    from xcoact.presets import nimare_mni152_2mm

    coords = str(DATA / "nback_flanker_coordinates.tsv.gz")
    grid = nimare_mni152_2mm()
    centres = nib.affines.apply_affine(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
    inside = (np.linalg.norm(centres - np.asarray(args.center), axis=1) <= args.r).reshape(grid.shape)
    roi = nib.Nifti1Image(inside.astype(np.uint8), grid.affine)

    table = xcoact.read_database(coords, format="neurosynth-v7")
    act = xcoact.activations(table, preset="nimare", kernel="ale", sample_size=args.sample_size)
    t0 = time.perf_counter()
    ds = act.coact.seed(roi).compute()
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        ds = act.coact.seed(roi).compute()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    n_sel = ds.attrs["n_selected"]

    dset = convert_neurosynth_to_dataset(coords, str(DATA / "nback_flanker_metadata.tsv.gz"))
    ids = sorted(dset.get_studies_by_mask(roi))
    sub = dset.slice(ids)
    ALE(kernel__sample_size=args.sample_size).fit(sub)  # warm-up (numba)
    t0 = time.perf_counter()
    result = ALE(kernel__sample_size=args.sample_size).fit(sub)
    theirs = time.perf_counter() - t0
    mask = ds["brain_mask"].values
    diff = max(
        float(np.abs(ds[o].values[mask] - result.get_map(t, return_type="array")).max())
        for o, t in (("stat", "stat"), ("p", "p"), ("z_map", "z"))
    )
    print(f"ALE MACM, {n_sel} of {ds.attrs['n_studies']} studies selected (NiMARE: {len(ids)})")
    print(f"xcoact first seed (builds the cube's rows): {first:.3f} s")
    print(
        f"xcoact warm seed, best of {args.repeat}: {min(times):.3f} s (all: {', '.join(f'{t:.3f}' for t in times)}); "
        f"CPU {min(cpu):.3f} s"
    )
    print(f"NiMARE ALE().fit: {theirs:.3f} s; ratio {theirs / min(times):.1f}x")
    print(f"max |xcoact - NiMARE| of stat, p, z: {diff:.2g}")
    print(f"peak RSS: {_peak_mb():.0f} MB; load average: {os.getloadavg()}")


def v7(args) -> None:
    import xcoact
    from xcoact.stats import ale

    t0, c0 = time.perf_counter(), time.process_time()
    table = xcoact.read_database(args.v7, format="neurosynth-v7")
    t_read, c_read = time.perf_counter() - t0, time.process_time() - c0
    out = ale.database_ale(table, sample_size=args.sample_size, null=args.null).compute()
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    values = (out["stat"] if args.null else out).values
    print(
        f"ALE of all of Neurosynth v7: {table.attrs['n_studies']} studies, {table.attrs['n_peaks']} foci, "
        f"sample size {args.sample_size:g}, maps: {'stat, p, z' if args.null else 'stat'}"
    )
    print(
        f"cold: {total:.1f} s (read {t_read:.1f} s, ALE {total - t_read:.1f} s); CPU {cpu:.1f} s (read {c_read:.1f} "
        "s); "
        f"max ALE {values.max():.4f}" + (f", max z {float(out['z_map'].max()):.2f}" if args.null else "")
    )
    print(f"peak RSS: {_peak_mb():.0f} MB; load average: {os.getloadavg()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("macm", "v7"))
    parser.add_argument("--center", type=float, nargs=3, default=(0.0, 16.0, 46.0), help="seed centre (mm)")
    parser.add_argument("--r", type=float, default=13.0, help="seed radius (mm)")
    parser.add_argument("--sample-size", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--v7", default=V7, help="Neurosynth v7 coordinates file")
    parser.add_argument("--null", action="store_true", help="v7: p and z too (the approximate null of every study)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    {"macm": macm, "v7": v7}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
