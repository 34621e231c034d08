#!/usr/bin/env python3
"""Benchmark of coactivation-based parcellation on Neurosynth v7.

One command::

    python3 benchmarks/parcellate.py [--database PATH] [--filters 20-200:20] [--k 2-9] [--n-init 50]
                                     [--profile ale --sample-size 20] [--distributed]

Parcellates the bundled amygdala ROI (``xcoact/datasets/data/amygdala_roi.nii.gz``, 366
voxels) with 10 filter sizes (20, 40, ..., 200 studies) and K = 2..9, and
prints, as one JSON line and a small table, the wall and CPU time and peak resident
memory (VmHWM of this process), and the 1-minute load average before and after
(the machine may be shared: say so with the numbers), of:

1. ``read + build``  xcoact.read_database + xcoact.activations (r = 6)
2. ``call``          act.coact.parcellate(...) (the pools: distance of every ROI voxel to every study)
3. ``compute``       .compute() (the pooled studies' rows, Gram matrix, k-means, vote, criteria)

``--distributed`` then runs the same parcellation on a 2-worker LocalCluster
and reports whether its labels are identical to the local ones.

The database defaults to ``$XCOACT_NEUROSYNTH_V7_COORDINATES`` or
``/tmp/xcoact-bench-data/neurosynth-v7/data-neurosynth_version-7_coordinates.tsv.gz``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = os.environ.get(
    "XCOACT_NEUROSYNTH_V7_COORDINATES",
    "/tmp/xcoact-bench-data/neurosynth-v7/data-neurosynth_version-7_coordinates.tsv.gz",
)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    import numpy as np

    import xcoact
    from xcoact.analyses.parcellate import _parse_range

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", default=DEFAULT_DB)
    p.add_argument("--filters", default="20-200:20", help="pool sizes (default 20-200:20: 10 sizes)")
    p.add_argument("--k", default="2-9")
    p.add_argument("--n-init", type=int, default=xcoact.analyses.parcellate.DEFAULT_N_INIT)
    p.add_argument("--profile", default="mkda", choices=xcoact.analyses.parcellate.PROFILES)
    p.add_argument("--sample-size", type=float, default=None, help="ALE kernel size for --profile ale (subjects)")
    p.add_argument("--distributed", action="store_true", help="also run on a 2-worker LocalCluster and compare labels")
    args = p.parse_args(argv)

    ks, filters = _parse_range(args.k, "--k"), _parse_range(args.filters, "--filters")
    roi = xcoact.datasets.amygdala_roi_path()
    out = {
        "database": args.database,
        "roi": "amygdala_roi.nii.gz",
        "filters": filters,
        "k": ks,
        "n_init": args.n_init,
        "profile": args.profile,
        "sample_size": args.sample_size,
        "cpus": os.cpu_count(),
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(xcoact.read_database(args.database), r=6)
    t1 = time.perf_counter()
    opts = {"k": ks, "filters": filters, "n_init": args.n_init, "profile": args.profile}
    if args.sample_size is not None:
        opts["sample_size"] = args.sample_size
    c1 = time.process_time()
    res = act.coact.parcellate(roi, **opts)
    t2 = time.perf_counter()
    res = res.compute()
    t3 = time.perf_counter()
    c3 = time.process_time()
    out.update(
        {
            "n_studies": int(act.sizes["study"]),
            "n_roi": res.attrs["n_roi"],
            "n_pooled_studies": res.attrs["n_pooled_studies"],
            "read_build_s": round(t1 - t0, 2),
            "call_s": round(t2 - t1, 2),
            "compute_s": round(t3 - t2, 2),
            "parcellate_total_s": round(t3 - t1, 2),
            "parcellate_cpu_s": round(c3 - c1, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "load_average_after_local": round(os.getloadavg()[0], 2),
            "k_suggested": int(res["k_suggested"]),
            "filters_voted": [int(f) for f in res["filter"].values[res["in_range"].values]],
        }
    )
    if args.distributed:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=40,
            ) as cluster,
            Client(cluster),
        ):
            t4 = time.perf_counter()
            other = act.coact.parcellate(roi, **opts).compute()
            out["distributed_s"] = round(time.perf_counter() - t4, 2)
            out["load_average_after_distributed"] = round(os.getloadavg()[0], 2)
        out["distributed_identical_labels"] = bool(
            np.array_equal(other["labels"].values, res["labels"].values)
            and np.array_equal(other["filter_labels"].values, res["filter_labels"].values)
        )
    print(json.dumps(out))
    crit = res["criteria"].to_pandas()
    print(crit.round(4).to_string())
    print(
        f"parcellate: call {out['call_s']} s + compute {out['compute_s']} s = {out['parcellate_total_s']} s; "
        f"peak RSS {out['peak_rss_mb']} MB; k_suggested {out['k_suggested']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
