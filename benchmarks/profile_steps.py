#!/usr/bin/env python3
"""Where the time of a warm seed and of a seed batch goes (companion of benchmarks/run.py).

    python3 benchmarks/profile_steps.py [--db v7|FACTOR] [--batch-seeds 100] [--top 25]

On one database (Neurosynth v7 by default; a number is a synthetic database of
that multiple of v7's study count, generated in memory) this builds the cube,
computes one map (so the sparse index and totals exist), then reports:

1. a manual split of one warm seed and of one batch seed into its stages
   (selection, gathering the counts, the statistics, building the 3-D volumes,
   the Zarr write), each timed directly on the library's own functions;
2. wall time with Dask's synchronous scheduler vs the threaded one (2 workers)
   for warm seeds and for a batch written to Zarr;
3. cProfile, top functions by tottime, of the warm seeds and of the batch,
   run on the synchronous scheduler so that the work done in Dask's worker
   threads is seen by the profiler.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.dont_write_bytecode = True  # importing run.py below leaves no __pycache__ in benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the benchmark's constants and helpers)

import dask  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import xcoact  # noqa: E402
from xcoact.coact import _maps_block  # noqa: E402
from xcoact.counts import ranges  # noqa: E402
from xcoact.kernels import ActivationSource  # noqa: E402
from xcoact.roi import roi_mask  # noqa: E402
from xcoact.select import overlap_rule, select_studies  # noqa: E402
from xcoact.stats import coactivation_maps, map_names  # noqa: E402


def timed(fn, *a, repeat=1, **kw):
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        best.append(time.perf_counter() - t0)
    return out, statistics.median(best)


def gather(source: ActivationSource, selected: np.ndarray) -> np.ndarray:
    """Selected studies active per voxel, exactly as the library's per-seed task does it."""
    a = np.zeros(source.grid.n_mask, dtype=np.int64)
    for chunk, (s0, s1) in enumerate(source.chunk_bounds):
        indptr, indices = source.rows(chunk)
        picked = np.flatnonzero(selected[s0:s1])
        a += np.bincount(indices[ranges(indptr[picked], indptr[picked + 1])], minlength=source.grid.n_mask)
    return a


def volumes(maps: dict, grid, dtype) -> np.ndarray:
    out = np.zeros((len(maps), int(np.prod(grid.shape))), dtype=dtype)
    for i, v in enumerate(maps.values()):
        out[i, grid.mask_flat] = v
    return out.reshape(len(maps), *grid.shape)


def profile_top(fn, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(top)
    text = buf.getvalue()
    # keep the table, drop pstats' preamble about the file order
    start = text.find("   ncalls")
    total = st.total_tt
    return f"total profiled time {total:.2f} s\n" + text[start:].rstrip()


def first_map(act, db, args) -> None:
    """The cold first map: wall and CPU time, peak RSS and what the memory holds."""
    import gc

    gc.collect()
    base = bench.rss_mb()
    print(f"\n== cold first map (scheduler {args.scheduler}{', under cProfile' if args.cprofile else ''}) ==")
    print(f"RSS before: {base:,.0f} MB (interpreter, libraries, coordinate table "
          f"{db.nbytes / 1e6:,.0f} MB, cube source)")
    source = ActivationSource.of_cube(act)
    print(f"  source: peaks ijk + codes {(source.ijk.nbytes + source.codes.nbytes) / 1e6:,.0f} MB")
    prof = cProfile.Profile() if args.cprofile else None
    with dask.config.set(scheduler=args.scheduler, num_workers=2):
        bench.reset_peak()
        cpu0 = bench.cpu_seconds()
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        ds = act.coact.seed(bench.BENCH_SEED, r=bench.SEED_R, threshold=bench.THRESHOLD)
        t1 = time.perf_counter()
        ds = ds.compute()
        if prof:
            prof.disable()
        t2 = time.perf_counter()
        cpu = bench.cpu_seconds() - cpu0
        peak = bench.peak_mb()
    index_mb = sum(ip.nbytes + ix.nbytes for ip, ix in source._rows.values()) / 1e6
    nnz = sum(ix.size for _, ix in source._rows.values())
    print(f"  seed() {t1 - t0:.2f} s + compute {t2 - t1:.2f} s = {t2 - t0:.2f} s wall, {cpu:.2f} s CPU; "
          f"n_selected {ds.attrs['n_selected']:,}")
    print(f"  peak RSS {peak:,.0f} MB = {base:,.0f} MB before + {peak - base:,.0f} MB; after: {bench.rss_mb():,.0f} MB")
    print(f"  sparse index kept: {len(source._rows)} chunks, {nnz:,} int32 entries, {index_mb:,.0f} MB "
          f"({nnz / source.n_studies:,.0f} voxels per study)" + (
              "" if len(source._rows) else f" (not kept: estimate {source.index_bytes_estimate / 1e6:,.0f} MB > "
              f"index_cache_bytes {xcoact.config['index_cache_bytes'] / 1e6:,.0f} MB)"))
    cols = getattr(source, "_cols", {})
    if cols:
        print(f"  by-voxel (transposed) index kept: {len(cols)} chunks, "
              f"{sum(a.nbytes + b.nbytes for a, b in cols.values()) / 1e6:,.0f} MB")
    chunk = max(source.chunk_bounds, key=lambda b: source.peak_ptr[b[1]] - source.peak_ptr[b[0]])
    n_pk = int(source.peak_ptr[chunk[1]] - source.peak_ptr[chunk[0]])
    print(f"  largest chunk: {chunk[1] - chunk[0]} studies, {n_pk:,} peaks -> {n_pk * len(source.offsets):,} sphere "
          f"voxels before the union (int64 (n, 3) offsets array alone: {n_pk * len(source.offsets) * 24 / 1e6:,.0f} MB)")
    if prof:
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("tottime").print_stats(args.top)
        text = buf.getvalue()
        print(f"total profiled time {st.total_tt:.2f} s\n" + text[text.find("   ncalls"):].rstrip())


def profile_read(release: str, out: str, args) -> int:
    """read_database of the benchmark's file for --db: wall time, peak RSS, then cProfile."""
    size = bench.parse_sizes(args.db)[0]
    path = release
    if size != "v7":
        from xcoact.readers import write_database

        path = bench.synthetic_path(out, size)
        write_database(xcoact.datasets.synthetic(bench.n_studies_of(size), pool=xcoact.read_database(release), seed=0),
                       path, "neurosynth")
    import gc

    gc.collect()
    base = bench.rss_mb()
    bench.reset_peak()
    t0 = time.perf_counter()
    db = xcoact.read_database(path)
    t = time.perf_counter() - t0
    peak = bench.peak_mb()
    print(f"== read_database: {bench.label_of(size)}, {os.path.getsize(path) / 1e6:,.0f} MB file ==")
    print(f"  {t:.2f} s; peak RSS {peak:,.0f} MB = {base:,.0f} MB before + {peak - base:,.0f} MB; "
          f"the table it returns: {db.nbytes / 1e6:,.0f} MB ({', '.join(f'{k} {v.dtype}' for k, v in db.variables.items())})")
    del db
    gc.collect()
    print(profile_top(lambda: xcoact.read_database(path), args.top))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="v7", help="'v7' or a multiple of v7's study count (synthetic, in memory)")
    p.add_argument("--release", default=None, help="Neurosynth v7 coordinates (as in run.py)")
    p.add_argument("--batch-seeds", type=int, default=100, help="seeds of the profiled batch (default 100)")
    p.add_argument("--split-seeds", type=int, default=20, help="batch seeds timed stage by stage (default 20)")
    p.add_argument("--top", type=int, default=25, help="functions listed per profile")
    p.add_argument("--warm-passes", type=int, default=4, help="passes over the 5 warm seeds in the spread test")
    p.add_argument("--what", default="warm,batch",
                   help="comma-separated: 'read' (read_database: time, peak RSS, cProfile; alone); 'first' (the cold first map: time, peak RSS, memory accounting); 'warm' or "
                        "'batch' (either runs the stage split, the scheduler comparison and the cProfile of warm "
                        "seeds and of the batch); default warm,batch")
    p.add_argument("--scheduler", default="threads", choices=["threads", "synchronous"],
                   help="Dask scheduler of the cold first map (--what first)")
    p.add_argument("--cprofile", action="store_true", help="cProfile the cold first map (--what first)")
    p.add_argument("--index-cache-bytes", type=float, default=None, help="set xcoact.config['index_cache_bytes']")
    args = p.parse_args()
    args.what = [w.strip() for w in args.what.split(",") if w.strip()]
    release = bench.resolve_release(args.release)
    warnings.simplefilter("ignore", xcoact.warnings.XcoactWarning)
    if args.index_cache_bytes is not None:
        xcoact.config["index_cache_bytes"] = int(args.index_cache_bytes)
    out = tempfile.mkdtemp(prefix="xcoact-profile-")
    print(f"xcoact sources sha1 {bench.source_digest()}; load average {os.getloadavg()[0]:.2f}")
    try:
        if "read" in args.what:
            return profile_read(release, out, args)
        db = xcoact.read_database(release)
        size = bench.parse_sizes(args.db)[0]
        if size != "v7":
            db = xcoact.datasets.synthetic(bench.n_studies_of(size), pool=db, seed=0)
        act = xcoact.activations(db, r=bench.KERNEL_R)
        grid = xcoact.mni152_2mm()
        print(f"database: {bench.label_of(size)}: {db.attrs['n_studies']:,} studies, {db.attrs['n_peaks']:,} peaks")
        print(f"machine: nproc {os.cpu_count()}, numpy {np.__version__}, dask {dask.__version__}, xarray {xr.__version__}")
        if "first" in args.what:
            first_map(act, db, args)
        else:
            act.coact.seed(bench.BENCH_SEED, r=bench.SEED_R, threshold=bench.THRESHOLD).compute()
        if not {"warm", "batch"} & set(args.what):
            return 0
        source = ActivationSource.of_cube(act)
        index_mb = sum(ip.nbytes + ix.nbytes for ip, ix in source._rows.values()) / 1e6
        nnz = sum(ix.size for _, ix in source._rows.values())
        print(f"sparse index: {len(source._rows)} chunks, {nnz:,} entries, {index_mb:,.0f} MB; "
              f"peaks table in the source {(source.ijk.nbytes + source.codes.nbytes) / 1e6:.0f} MB")
        total = source._totals
        names = map_names()

        # ---------------------------------------------------------------- 1. manual split
        print("\n== 1. stage split (median over seeds; direct calls, one thread) ==")
        rows = []
        for s in bench.warm_seeds(5):
            _, t_full = timed(lambda: act.coact.seed(s, r=bench.SEED_R, threshold=bench.THRESHOLD).compute(), repeat=3)
            roi, t_roi = timed(roi_mask, s, grid, bench.SEED_R, repeat=3)
            ov, t_ov = timed(source.overlap, roi.values, repeat=3)
            sel, t_sel = timed(select_studies, ov, roi.attrs["n_roi"], bench.THRESHOLD, repeat=3)
            a, t_gather = timed(gather, source, sel, repeat=3)
            n_sel = int(sel.sum())
            maps, t_stats = timed(coactivation_maps, a, total - a, n_sel, sel.size - n_sel, repeat=3)
            _, t_vol64 = timed(volumes, maps, grid, np.float64, repeat=3)
            rows.append((t_roi, t_ov, t_sel, t_gather, t_stats, t_vol64, t_full))
        med = [statistics.median(c) for c in zip(*rows)]
        parts = ["ROI sphere (roi_mask)", "overlap from peaks near ROI", "selection", "gather counts (bincount)",
                 "statistics (coactivation_maps)", "3-D volumes, float64 (9 x 902,629)"]
        print("warm seed (act.coact.seed(...).compute(), threaded scheduler; each stage median of 3 calls):")
        for name, v in zip(parts, med):
            print(f"  {name:<40} {v * 1000:8.1f} ms")
        print(f"  {'sum of the stages':<40} {sum(med[:6]) * 1000:8.1f} ms")
        print(f"  {'measured seed(...).compute()':<40} {med[6] * 1000:8.1f} ms  "
              f"(rest = Dataset assembly, Dask graph and scheduling: {(med[6] - sum(med[:6])) * 1000:.1f} ms)")

        centres = bench.batch_centres(args.split_seeds)
        rois = xcoact.roi.seed_set(centres, grid, bench.SEED_R, separate=True)
        _, t_ovs = timed(source.overlaps, [r.voxels for r in rois])
        ovs = source.overlaps([r.voxels for r in rois])
        bt = []
        vols = []
        for i, r in enumerate(rois):
            sel = overlap_rule(ovs[i], r.voxels.size, bench.THRESHOLD)
            n_sel = int(sel.sum())
            if n_sel in (0, sel.size):
                continue
            a, t_g = timed(gather, source, sel, repeat=3)
            maps, t_s = timed(coactivation_maps, a, total - a, n_sel, sel.size - n_sel, repeat=3)
            _, t_v = timed(volumes, maps, grid, np.float32, repeat=3)
            vols.append(volumes(maps, grid, np.float32))
            bt.append((t_g, t_s, t_v))
        stack = np.stack(vols, axis=1)  # (map, seed, x, y, z)
        ds = xr.Dataset({n: (("seed", "x", "y", "z"), stack[k]) for k, n in enumerate(names)},
                        coords={"seed": np.arange(len(vols)), **grid.coords()})
        store = os.path.join(out, "split.zarr")
        _, t_w = timed(xcoact.to_zarr, ds, store, dtype="float32")
        disk, _ = bench.dir_size(store)
        shutil.rmtree(store)
        del ds, stack, vols
        bmed = [statistics.median(c) for c in zip(*bt)]
        n_ok = len(bt)
        print(f"batch seed ({n_ok} of {args.split_seeds} batch centres, float32):")
        print(f"  {'overlaps, one sparse product (per seed)':<40} {t_ovs / len(rois) * 1000:8.1f} ms")
        for name, v in zip(["gather counts (bincount)", "statistics (coactivation_maps)", "3-D volumes, float32"], bmed):
            print(f"  {name:<40} {v * 1000:8.1f} ms")
        print(f"  {'Zarr write, lz4 (numpy maps, per seed)':<40} {t_w / n_ok * 1000:8.1f} ms  "
              f"({disk / n_ok / 1e6:.1f} MB per seed on disk)")
        per = t_ovs / len(rois) + sum(bmed) + t_w / n_ok
        print(f"  {'sum per seed':<40} {per * 1000:8.1f} ms  -> {1000 * per:.0f} s per 1,000 seeds on one thread")

        # ---------------------------------------------------------------- 2. threads
        print("\n== 2. synchronous vs threaded (2 workers) scheduler ==")
        centres = bench.batch_centres(args.batch_seeds)
        for sched in ("synchronous", "threads"):
            with dask.config.set(scheduler=sched, num_workers=2):
                ts = []
                for s in bench.warm_seeds(5):
                    t0 = time.perf_counter()
                    act.coact.seed(s, r=bench.SEED_R, threshold=bench.THRESHOLD).compute()
                    ts.append(time.perf_counter() - t0)
                store = os.path.join(out, f"{sched}.zarr")
                t0 = time.perf_counter()
                b = act.coact.seed(centres, r=bench.SEED_R, threshold=bench.THRESHOLD, separate=True, dtype="float32")
                b.coact.to_zarr(store, dtype="float32")
                tb = time.perf_counter() - t0
                shutil.rmtree(store)
            print(f"  {sched:<12} warm seed median {statistics.median(ts):.3f} s; batch of {args.batch_seeds} "
                  f"to Zarr {tb:.2f} s ({args.batch_seeds / tb:.1f} seeds/s)")

        print(f"\n== 2b. warm-seed spread: {args.warm_passes} passes over the 5 warm seeds ==")
        import gc

        for label, sched, gc_on in (("threads, gc on", "threads", True), ("threads, gc off", "threads", False),
                                    ("synchronous, gc on", "synchronous", True)):
            if not gc_on:
                gc.disable()
            with dask.config.set(scheduler=sched, num_workers=2):
                ts = []
                for _ in range(args.warm_passes):
                    for s in bench.warm_seeds(5):
                        t0 = time.perf_counter()
                        act.coact.seed(s, r=bench.SEED_R, threshold=bench.THRESHOLD).compute()
                        ts.append(time.perf_counter() - t0)
            gc.enable()
            print(f"  {label:<20} median {statistics.median(ts):.3f} s, min {min(ts):.3f}, max {max(ts):.3f}, "
                  f"{sum(t > 0.1 for t in ts)}/{len(ts)} above 0.1 s, {sum(t > 0.15 for t in ts)}/{len(ts)} above 0.15 s")
        try:
            import ctypes

            before = bench.rss_mb()
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            print(f"  RSS now {before:,.0f} MB; after glibc malloc_trim(0) {bench.rss_mb():,.0f} MB "
                  "(the difference is freed heap the allocator had kept)")
        except OSError:
            pass

        # ---------------------------------------------------------------- 3. cProfile
        with dask.config.set(scheduler="synchronous"):
            print("\n== 3a. cProfile: 5 warm seeds, seed(...).compute(), synchronous scheduler ==")

            def warm():
                for s in bench.warm_seeds(5):
                    act.coact.seed(s, r=bench.SEED_R, threshold=bench.THRESHOLD).compute()

            print(profile_top(warm, args.top))
            print(f"\n== 3b. cProfile: batch of {args.batch_seeds} seeds written to Zarr, synchronous scheduler ==")
            store = os.path.join(out, "profile.zarr")

            def batch():
                b = act.coact.seed(centres, r=bench.SEED_R, threshold=bench.THRESHOLD, separate=True, dtype="float32")
                b.coact.to_zarr(store, dtype="float32")

            print(profile_top(batch, args.top))
            shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
