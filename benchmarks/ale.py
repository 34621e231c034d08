#!/usr/bin/env python3
"""Benchmark of an ALE map (stat, p, z; approximate null): xcoact.stats.ale against NiMARE 0.22.1 on the same studies.

One command::

    python3 benchmarks/ale.py                  # the bundled n-back/flanker collection, ~150 selected studies
    python3 benchmarks/ale.py --r 20           # a larger seed (more studies)
    python3 benchmarks/ale.py --engine numpy   # xcoact without numba

Data: the NeuroStore n-back/flanker collection bundled for the tests
(``tests/data/nback_flanker_*.tsv.gz``, 320 studies, 9,492 foci), read by
NiMARE's ``convert_neurosynth_to_dataset`` and by xcoact's v7 reader.  The
studies are those with a focus in a sphere (default: 13 mm around pre-SMA,
(0, 16, 46) mm; NiMARE's ``get_studies_by_mask``), every study with the same
sample size (``--sample-size``, default 20; the collection has none).

Timed, best of ``--repeat`` runs after one warm-up run (numba's compiled
functions cached on both sides):

- NiMARE: ``ALE(kernel__sample_size=N).fit(dset.slice(ids))`` (kernel, MA maps,
  stat, approximate null, p, z).
- xcoact: from the studies' voxel foci, :func:`xcoact.stats.ale.study_ma` per study
  and :func:`xcoact.stats.ale.ale_maps`.  Reading the file and putting the foci on
  voxels are not timed (the engine does them once per database).

Printed: both times, their ratio, and the largest |xcoact - NiMARE| of stat,
p and z (they must be below 1e-5).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--center", type=float, nargs=3, default=(0.0, 16.0, 46.0), help="seed centre (mm)")
    parser.add_argument("--r", type=float, default=13.0, help="seed radius (mm)")
    parser.add_argument("--sample-size", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", choices=("auto", "numba", "numpy"), default="auto")
    args = parser.parse_args(argv)

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    import nibabel as nib
    from nimare.io import convert_neurosynth_to_dataset
    from nimare.meta.cbma.ale import ALE

    import xcoact
    from xcoact.presets import nimare_mni152_2mm
    from xcoact.stats import ale
    from xcoact.stats.nimare import _nimare_peak_xyz
    from xcoact.table import study_index

    coords = str(DATA / "nback_flanker_coordinates.tsv.gz")
    dset = convert_neurosynth_to_dataset(coords, str(DATA / "nback_flanker_metadata.tsv.gz"))
    table = xcoact.read_database(coords, format="neurosynth-v7")
    grid = nimare_mni152_2mm()
    centres = nib.affines.apply_affine(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
    inside = (np.linalg.norm(centres - np.asarray(args.center), axis=1) <= args.r).reshape(grid.shape)
    ids = sorted(dset.get_studies_by_mask(nib.Nifti1Image(inside.astype(np.uint8), grid.affine)))
    sub = dset.slice(ids)

    studies, codes = study_index(table["study_id"].values)
    ijk = grid.xyz_to_ijk(_nimare_peak_xyz(np.column_stack([table[c].values for c in "xyz"]), table["space"].values))
    at = np.clip(ijk, 0, np.asarray(grid.shape) - 1)
    chosen = np.unique(codes[inside[tuple(at.T)]])
    chosen = sorted(chosen, key=lambda s: f"{studies[s]}-1")  # NiMARE combines studies in sorted-id order
    assert [f"{studies[s]}-1" for s in chosen] == ids, "xcoact and NiMARE selected different studies"
    foci = [ijk[codes == s] for s in chosen]
    n_foci = sum(len(f) for f in foci)

    def run_xcoact():
        ma = [ale.study_ma(f, grid, sample_size=args.sample_size) for f in foci]
        return ale.ale_maps(ma, grid.n_mask, engine=args.engine)

    def run_nimare():
        return ALE(kernel__sample_size=args.sample_size).fit(sub)

    def best(fn):
        t0 = time.perf_counter()
        out = fn()
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return out, first, min(times)

    ours, ours_first, ours_t = best(run_xcoact)
    theirs, theirs_first, theirs_t = best(run_nimare)
    diffs = {k: float(np.abs(ours[k] - theirs.get_map(k, return_type="array")).max()) for k in ("stat", "p", "z")}

    print(
        f"studies selected: {len(ids)} of {len(dset.ids)} ({n_foci} foci), sample size {args.sample_size}, "
        f"seed {tuple(args.center)} r = {args.r:g} mm, grid {grid.n_mask} in-mask voxels"
    )
    print(f"NiMARE 0.22.1 ALE().fit     : {theirs_t:7.3f} s  (first run {theirs_first:.3f} s)")
    print(f"xcoact.stats.ale ({args.engine:5s}) maps : {ours_t:7.3f} s  (first run {ours_first:.3f} s)")
    print(f"ratio NiMARE / xcoact       : {theirs_t / ours_t:7.2f}x")
    print("max |xcoact - NiMARE|       : " + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()))
    return 0 if max(diffs.values()) <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
