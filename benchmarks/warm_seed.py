"""Where a warm seed's milliseconds go, on real Neurosynth v7 (the "warm seed" rows of ``run.py``, taken apart).

Runs ``act.coact.seed(s, r=10, threshold=0.1).compute()`` for run.py's warm
seeds on a persisted cube (``--fresh``: the cube as built) after a first seed,
and reports per seed: wall and CPU time (all threads) of the ``seed()`` call
and of ``.compute()``, and the CPU time of each step inside them (the steps
are wrapped, so each is timed where it runs).  CPU time is the measure to
compare on a busy machine; wall time counts the split over the cores.

``--batch N`` takes run.py's batch step apart instead: N separate seeds
(float32, voxel layout) computed without writing (each chunk handed to a
target that drops it), then the same written by ``to_zarr``: wall and CPU
seconds of each, so writing costs the difference.

    PYTHONPATH=$PWD python benchmarks/warm_seed.py [--release PATH] [--repeats 3] [--fresh] [--batch N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--release",
        default=os.environ.get(
            "XCOACT_NEUROSYNTH_V7", "/tmp/xcoact-bench-data/neurosynth-v7/data-neurosynth_version-7_coordinates.tsv.gz"
        ),
    )
    p.add_argument("--repeats", type=int, default=3, help="passes over the warm seeds (default 3)")
    p.add_argument("--fresh", action="store_true", help="the cube as built (not persisted)")
    p.add_argument("--batch", type=int, default=0, metavar="N", help="take the batch of N seeds apart instead")
    args = p.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from run import BENCH_SEED, KERNEL_R, SEED_R, THRESHOLD, batch_centres, warm_seeds

    import xcoact
    from xcoact import counts, roi
    from xcoact.analyses import pipeline
    from xcoact.analyses import seed as coact
    from xcoact.mapchunk import InMaskMap
    from xcoact.stats import neurosynth as stats

    warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    act = xcoact.activations(xcoact.read_database(args.release), r=KERNEL_R)
    if not args.fresh:
        act = act.persist()
    act.coact.seed(BENCH_SEED, r=SEED_R, threshold=THRESHOLD).compute()
    if args.batch:
        return batch(act, batch_centres(args.batch), SEED_R, THRESHOLD)
    seeds = warm_seeds(7)
    for s in seeds[:2]:
        act.coact.seed(s, r=SEED_R, threshold=THRESHOLD).compute()

    steps: dict[str, list[float]] = {}

    def wrap(mod, name: str, label: str) -> None:
        f = getattr(mod, name)

        def timed(*a, **k):
            c0 = time.process_time()
            try:
                return f(*a, **k)
            finally:
                steps.setdefault(label, []).append(time.process_time() - c0)

        setattr(mod, name, timed)

    # (module, function, label): the seed() call, then the compute task's parts
    for mod, name, label in [
        (coact, "select_for_seed", "seed(): selection"),
        (roi, "roi_mask", "  ROI mask"),
        (counts, "study_scores", "  per-study overlaps"),
        (coact, "_map_stack", "seed(): the maps' graph"),
        (coact, "_result", "seed(): the Dataset"),
        (counts, "_summed_counts", "compute: counts (2 groups)"),
        (stats, "count_pairs", "  stats: distinct count pairs"),
        (stats, "two_way_p", "  stats: association p (chdtrc)"),
        (stats, "fdr_threshold", "  stats: FDR thresholds (2)"),
        (stats, "p_to_z", "  stats: p -> z (2)"),
        (stats, "pair_maps", "compute: statistics per pair"),
        (InMaskMap, "volume", "compute: the 9 volumes (as xarray reads)"),
    ]:
        wrap(mod, name, label)
    pipeline.pair_maps = stats.pair_maps  # the wrapped one
    coact.roi_mask = roi.roi_mask
    counts.overlap_counts.__globals__["study_scores"] = counts.study_scores

    call_w, call_c, comp_w, comp_c = [], [], [], []
    for _ in range(args.repeats):
        for s in seeds:
            t0, c0 = time.perf_counter(), time.process_time()
            ds = act.coact.seed(s, r=SEED_R, threshold=THRESHOLD)
            t1, c1 = time.perf_counter(), time.process_time()
            ds.compute()
            call_w.append(t1 - t0)
            call_c.append(c1 - c0)
            comp_w.append(time.perf_counter() - t1)
            comp_c.append(time.process_time() - c1)
    n = len(call_w)
    ms = lambda v: statistics.median(v) * 1e3  # noqa: E731
    print(f"{n} warm seeds ({'fresh' if args.fresh else 'persisted'} cube); load {os.getloadavg()[0]:.1f}")
    print(f"{'':40s} {'wall ms':>8s} {'CPU ms':>8s}   (medians)")
    print(
        f"{'seed() + compute()':40s} {ms([a + b for a, b in zip(call_w, comp_w)]):8.1f} "
        f"{ms([a + b for a, b in zip(call_c, comp_c)]):8.1f}"
    )
    print(f"{'seed() call':40s} {ms(call_w):8.1f} {ms(call_c):8.1f}")
    print(f"{'.compute()':40s} {ms(comp_w):8.1f} {ms(comp_c):8.1f}")
    for label, v in steps.items():
        per_seed = sum(v) / n  # a step that runs k times per seed counts k times
        print(f"  {label:38s} {'':8s} {per_seed * 1e3:8.2f}")
    return 0


def batch(act, centres: list, r: float, threshold: float) -> int:
    """The batch step computed without writing, then written to Zarr: wall and CPU seconds of each."""
    import resource
    import shutil
    import tempfile

    import dask.array as da

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    class Dropped:  # a store target that drops each chunk
        def __setitem__(self, key, value) -> None:
            pass

    out = tempfile.mkdtemp(prefix="xcoact-warm-seed-")
    try:
        for step in ("computed, not written", "computed and written (to_zarr)"):
            t0, c0 = time.perf_counter(), cpu()
            ds = act.coact.seed(centres, r=r, threshold=threshold, separate=True, dtype="float32", layout="voxel")
            if step.endswith("(to_zarr)"):
                ds.coact.to_zarr(os.path.join(out, "batch.zarr"), dtype="float32")
            else:
                names = [*ds.coact.maps, "roi"]
                da.store([ds[k].data for k in names], [Dropped() for _ in names], lock=False)
            wall, used = time.perf_counter() - t0, cpu() - c0
            print(
                f"{len(centres)} seeds {step:32s} wall {wall:7.2f} s  CPU {used:7.2f} s  "
                f"({used / len(centres) * 1e3:.1f} ms a seed)  load {os.getloadavg()[0]:.1f}"
            )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
