#!/usr/bin/env python3
"""End-to-end benchmark of xcoact on Neurosynth v7 and on synthetic databases.

One command::

    python3 benchmarks/run.py

For each database (the real Neurosynth v7 release, and synthetic databases of
a multiple of its study count) a fresh subprocess times, and measures the peak
resident memory (VmHWM, reset before each step through /proc/self/clear_refs) of:

1. ``read``       xcoact.read_database(file)
2. ``build``      xcoact.activations(db, r=6)  (the lazy cube)
3. ``first map``  act.coact.seed([[0, 20, 28]], r=10, threshold=0.1) + .compute()
                  on a fresh cube: every seed-independent step (the sparse index,
                  the all-study totals) is included
   ``cold total`` read + build + first map
4. ``warm seed``  median of seed(...) + .compute() over --repeats other coordinate seeds
5. ``batch``      --batch-seeds coordinate seeds (separate 10 mm spheres, threshold 0.1,
                  float32), from the seed call until ds.coact.to_zarr(path, dtype="float32")
                  has written the store

The parent process only orchestrates: it asks a "prepare" subprocess to write
the synthetic databases (``xcoact.datasets.synthetic(n, pool=<v7 table>, seed=0)``
written with ``xcoact.readers.write_database(table, path, "neurosynth")``) into
the scratch directory, then runs one subprocess per database (``--only``),
collects the JSON lines they print, and prints one table per database.

The internal flags ``--only SIZE`` and ``--prepare SIZES`` run one piece; they
are what the parent calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_RELEASE = "XCOACT_NEUROSYNTH_V7"
#: The real releases, laid out as a mirror (<dataset>-v<version>/<file>) that fetch_neurosynth reads through file://.
DEFAULT_MIRROR = "../shared/data/releases"

#: Neurosynth v7: studies, and what the benchmark seed must select (sanity check).
V7_STUDIES = 14_371
V7_SELECTED = 1_435

BENCH_SEED = [[0, 20, 28]]
SEED_R = 10.0
KERNEL_R = 6.0
THRESHOLD = 0.1
#: Warm seeds: a fixed list; more repeats than this draw extra in-mask centres (rng seed 1).
WARM_SEEDS = [
    [[-40, 20, 28]],
    [[40, -60, 0]],
    [[0, -50, 20]],
    [[-30, -90, 0]],
    [[20, 10, -10]],
    [[-44, -60, 40]],
    [[0, 50, -10]],
    [[30, -20, 60]],
    [[-20, -4, -18]],
    [[50, 20, 0]],
]
#: A batch projected (warm-seed median x seeds) to take longer than this runs with FALLBACK_SEEDS.
BATCH_BUDGET_S = 20 * 60
FALLBACK_SEEDS = 100

MARK = "@@xcoact-bench "


# --------------------------------------------------------------------------- helpers


def emit(kind: str, **fields) -> None:
    """One JSON line for the parent (children only)."""
    print(MARK + json.dumps({"kind": kind, **fields}), flush=True)


def reset_peak() -> bool:
    """Reset the kernel's resident-set high-water mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MB
    return float("nan")


def peak_mb() -> float:
    return _status("VmHWM")


def rss_mb() -> float:
    return _status("VmRSS")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    t = os.times()
    return t.user + t.system


def source_digest() -> str:
    """SHA-1 (12 hex digits) of the xcoact package's .py files: which code was measured."""
    import hashlib

    import xcoact

    pkg = Path(xcoact.__file__).resolve().parent
    h = hashlib.sha1()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def dir_size(path: str) -> tuple[int, int]:
    """(bytes on disk, apparent bytes) of a directory tree."""
    disk = apparent = 0
    for folder, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(folder, f))
            disk += st.st_blocks * 512
            apparent += st.st_size
    return disk, apparent


def parse_sizes(text: str) -> list[str]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower() == "v7":
            out.append("v7")
            continue
        try:
            factor = float(item)
        except ValueError:
            raise SystemExit(
                f"--sizes: {item!r} is neither 'v7' nor a number (a multiple of v7's study count)"
            ) from None
        if not factor > 0:
            raise SystemExit(f"--sizes: {item!r} must be > 0")
        out.append(f"{factor:g}")
    if not out:
        raise SystemExit("--sizes: nothing to run")
    return out


def n_studies_of(size: str) -> int:
    return V7_STUDIES if size == "v7" else int(round(float(size) * V7_STUDIES))


def label_of(size: str) -> str:
    return "Neurosynth v7" if size == "v7" else f"synthetic {size}x ({n_studies_of(size):,} studies)"


def synthetic_path(out: str, size: str) -> str:
    return os.path.join(out, f"synthetic-{size}x-database.txt")


def resolve_release(arg: str | None) -> str:
    if arg is not None:
        path = Path(arg)
        return str(path if path.is_absolute() else (Path.cwd() / path).resolve())
    if os.environ.get(ENV_RELEASE):
        return os.environ[ENV_RELEASE]
    return fetch_release()


def fetch_release() -> str:
    """The v7 coordinates through ``xcoact.datasets.fetch_neurosynth`` (checksum-verified, cached).

    From $XCOACT_MIRROR, else DEFAULT_MIRROR (relative to the repository root) as a file:// mirror, else the
    upstream repository; cached in $XCOACT_DATA, else in <tempdir>/xcoact-bench-data.  Not timed.
    """
    import xcoact

    local = (ROOT / DEFAULT_MIRROR).resolve()
    mirror = os.environ.get("XCOACT_MIRROR") or (local.as_uri() if local.is_dir() else None)
    cache = os.environ.get("XCOACT_DATA") or os.path.join(tempfile.gettempdir(), "xcoact-bench-data")
    release = xcoact.datasets.fetch_neurosynth(7, cache, vocab=None, base_url=mirror, convert=False)
    return release.coordinates


def batch_centres(n: int):
    """``n`` in-mask voxel centres (mm) of MNI152 2 mm, a deterministic sample (default_rng(0))."""
    import numpy as np

    import xcoact

    grid = xcoact.mni152_2mm()
    rng = np.random.default_rng(0)
    flat = grid.mask_flat[rng.choice(grid.mask_flat.size, size=n, replace=False)]
    ijk = np.column_stack(np.unravel_index(flat, grid.shape))
    xyz = ijk @ grid.affine[:3, :3].T + grid.affine[:3, 3]
    return xyz.tolist()


def _clear_transfer_log(dask_worker) -> None:
    dask_worker.transfer_outgoing_log.clear()


def _transfer_log_bytes(dask_worker) -> list[int]:
    """Bytes of each transfer out of a worker (to another worker or a client) since the log was cleared."""
    return [int(d["total"]) for d in dask_worker.transfer_outgoing_log]


def warm_seeds(k: int) -> list:
    seeds = list(WARM_SEEDS[:k])
    if k > len(seeds):
        import numpy as np

        import xcoact

        grid = xcoact.mni152_2mm()
        rng = np.random.default_rng(1)
        flat = grid.mask_flat[rng.choice(grid.mask_flat.size, size=k - len(seeds), replace=False)]
        ijk = np.column_stack(np.unravel_index(flat, grid.shape))
        seeds += [[c] for c in (ijk @ grid.affine[:3, :3].T + grid.affine[:3, 3]).tolist()]
    return seeds


def held_mib(act, db) -> dict:
    """MiB the cube's chunks hold (rows, totals, peaks: what they do not share with the table) and the table."""
    import numpy as np

    from xcoact.blocks import StudyChunk

    chunks = [v for v in dict(act.data.dask).values() if isinstance(v, StudyChunk)]
    table = [db[c].values for c in ("x", "y", "z")]
    rows = sum(a.nbytes for c in chunks for a in (c._rows or ()))
    totals = sum(c._totals.nbytes for c in chunks if c._totals is not None)
    shared = sum(c.xyz.nbytes for c in chunks if any(np.shares_memory(c.xyz, t) for t in table))
    peaks = sum(c.nbytes() for c in chunks) - rows - totals - shared
    return {k: v / 2**20 for k, v in dict(rows=rows, totals=totals, peaks=peaks, table=db.nbytes).items()}


class Step:
    """Time a step and measure its peak RSS (high-water mark reset at the start)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.rss_before = rss_mb()
        self.reset = reset_peak()
        self.cpu0 = cpu_seconds()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = cpu_seconds() - self.cpu0
        self.peak = peak_mb()
        self.load = os.getloadavg()[0]
        return False

    def record(self, **extra) -> dict:
        return {
            "step": self.name,
            "seconds": self.seconds,
            "peak_rss_mb": self.peak,
            "cpu_seconds": self.cpu,
            "loadavg_1min": self.load,
            "rss_before_mb": self.rss_before,
            "hwm_reset": self.reset,
            **extra,
        }


# --------------------------------------------------------------------------- children


def child_prepare(args) -> int:
    """Write the synthetic databases (``--prepare``): one read of v7 as the pool."""
    import xcoact
    from xcoact.readers import write_database

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        pool = xcoact.read_database(args.release)
    for size in parse_sizes(args.prepare):
        n = n_studies_of(size)
        path = synthetic_path(args.out, size)
        t0 = time.perf_counter()
        table = xcoact.datasets.synthetic(n, pool=pool, seed=0)
        t1 = time.perf_counter()
        write_database(table, path, "neurosynth", overwrite=True)
        t2 = time.perf_counter()
        emit(
            "prepared",
            size=size,
            path=path,
            n_studies=int(table.attrs["n_studies"]),
            n_peaks=int(table.attrs["n_peaks"]),
            bytes=os.path.getsize(path),
            synth_seconds=t1 - t0,
            write_seconds=t2 - t1,
        )
        del table
    return 0


def child_run(args) -> int:
    """Benchmark one database (``--only``) and print JSON lines."""
    t_import = time.perf_counter()
    import dask
    import numpy as np  # noqa: F401  (its import time is part of t_import)

    import xcoact

    t_import = time.perf_counter() - t_import

    size = args.only
    path = args.release if size == "v7" else synthetic_path(args.out, size)
    fmt = "neurosynth-v7 (coordinates + metadata .tsv.gz)" if size == "v7" else "neurosynth database.txt (uncompressed)"
    file_bytes = os.path.getsize(path)
    if size == "v7":
        meta = Path(path.replace("_coordinates.tsv", "_metadata.tsv"))
        if meta.exists():
            file_bytes += meta.stat().st_size
    emit(
        "start",
        size=size,
        path=path,
        format=fmt,
        file_bytes=file_bytes,
        import_seconds=t_import,
        xcoact_source=source_digest(),
        rss_after_import_mb=rss_mb(),
        scheduler=str(dask.config.get("scheduler", "threads (default)")),
    )
    warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    # 1. read
    with Step("read") as st:
        db = xcoact.read_database(path)
    emit("step", **st.record(n_studies=int(db.attrs["n_studies"]), n_peaks=int(db.attrs["n_peaks"])))
    read_s, read_peak, read_cpu = st.seconds, st.peak, st.cpu

    # 2. build
    with Step("build") as st:
        act = xcoact.activations(db, r=KERNEL_R)
    emit("step", **st.record(numblocks=list(act.data.numblocks)))
    build_s, build_peak, build_cpu = st.seconds, st.peak, st.cpu

    # 3. first map, cold
    with Step("first map") as st:
        t0 = time.perf_counter()
        ds = act.coact.seed(BENCH_SEED, r=SEED_R, threshold=THRESHOLD)
        t_call = time.perf_counter() - t0
        ds = ds.compute()
    n_sel = int(ds.attrs["n_selected"])
    emit(
        "step",
        **st.record(
            seed_call_seconds=t_call,
            compute_seconds=st.seconds - t_call,
            n_selected=n_sel,
            n_roi=int(ds.attrs["n_roi"]),
            held_mib=held_mib(act, db),
        ),
    )
    if size == "v7" and n_sel != V7_SELECTED:
        emit(
            "error",
            message=f"sanity check failed: the benchmark seed selected {n_sel} studies on v7, expected {V7_SELECTED}",
        )
        return 2
    emit(
        "step",
        step="cold total",
        seconds=read_s + build_s + st.seconds,
        peak_rss_mb=max(read_peak, build_peak, st.peak),
        cpu_seconds=read_cpu + build_cpu + st.cpu,
    )
    del ds

    # 4. warm seeds
    times, calls, sels = [], [], []
    with Step("warm seed") as st:
        for s in warm_seeds(args.repeats):
            t0 = time.perf_counter()
            ds = act.coact.seed(s, r=SEED_R, threshold=THRESHOLD)
            t1 = time.perf_counter()
            ds = ds.compute()
            t2 = time.perf_counter()
            times.append(t2 - t0)
            calls.append(t1 - t0)
            sels.append(int(ds.attrs["n_selected"]))
            del ds
    warm = statistics.median(times)
    emit(
        "step",
        step="warm seed",
        seconds=warm,
        peak_rss_mb=st.peak,
        rss_before_mb=st.rss_before,
        hwm_reset=st.reset,
        cpu_seconds=st.cpu / len(times),
        loadavg_1min=st.load,
        all_seconds=times,
        seed_call_seconds=calls,
        n_selected=sels,
        seeds=warm_seeds(args.repeats),
    )

    # 4b. the persisted cube: its blocks (and their rows, built by the first seed) held in memory
    with Step("persist") as st:
        held = act.persist()
    emit("step", **st.record())
    held.coact.seed(BENCH_SEED, r=SEED_R, threshold=THRESHOLD).compute()
    p_times = []
    with Step("warm seed, persisted") as st:
        for s in warm_seeds(args.repeats):
            t0 = time.perf_counter()
            held.coact.seed(s, r=SEED_R, threshold=THRESHOLD).compute()
            p_times.append(time.perf_counter() - t0)
    local_warm = statistics.median(p_times)
    emit(
        "step",
        step="warm seed, persisted",
        seconds=local_warm,
        peak_rss_mb=st.peak,
        all_seconds=p_times,
        cpu_seconds=st.cpu / len(p_times),
    )
    del held

    # 4c. a 2-worker LocalCluster (--cluster-memory each, 2 GB by default), the cube persisted on it
    if args.cluster:
        # the local route's maps of the benchmark seed and the first warm seed (computed here, before the client
        # exists): the cluster's must equal them
        args.reference_maps = {
            json.dumps(s): act.coact.seed(s, r=SEED_R, threshold=THRESHOLD).compute()
            for s in (BENCH_SEED, warm_seeds(1)[0])
        }
        cluster_step(act, args, local_warm)
        del args.reference_maps

    # 5. batch
    n_batch = args.batch_seeds
    projected = warm * n_batch
    reduced = False
    if projected > args.batch_budget and n_batch > FALLBACK_SEEDS:
        reduced = True
        n_batch = FALLBACK_SEEDS
    centres = batch_centres(n_batch)
    store = os.path.join(args.out, f"batch-{size}.zarr")
    shutil.rmtree(store, ignore_errors=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", xcoact.errors.DegenerateSeedWarning)
        with Step("batch") as st:
            t0 = time.perf_counter()
            extra = {} if args.layout == "volume" else {"layout": args.layout}
            ds = act.coact.seed(centres, r=SEED_R, threshold=THRESHOLD, separate=True, dtype="float32", **extra)
            t_call = time.perf_counter() - t0
            ds.coact.to_zarr(store, dtype="float32")
    n_valid = int(ds.attrs["n_valid_seeds"])
    del ds
    disk, apparent = dir_size(store)
    emit(
        "step",
        **st.record(
            seed_call_seconds=t_call,
            write_seconds=st.seconds - t_call,
            n_seeds=n_batch,
            requested_seeds=args.batch_seeds,
            reduced=reduced,
            projected_seconds=projected,
            seeds_per_second=n_batch / st.seconds,
            store_disk_bytes=disk,
            store_apparent_bytes=apparent,
            n_valid_seeds=n_valid,
            degenerate_warnings=sum(issubclass(w.category, xcoact.errors.DegenerateSeedWarning) for w in caught),
        ),
    )
    shutil.rmtree(store, ignore_errors=True)
    emit("done", size=size)
    return 0


def _worker_events(client) -> dict:
    """Per worker, the memory events of its log and its nanny's: pauses, spills, restarts, kills."""
    patterns = {
        "paused": "Pausing worker",
        "spilled": "Unmanaged memory use is high",
        "restarted": "Restarting worker",
        "killed": "exceeded 95% memory budget",
    }
    logs = {**client.get_worker_logs(), **{f"nanny {k}": v for k, v in client.get_worker_logs(nanny=True).items()}}
    return {key: sum(any(pat in msg for _, msg in lines) for lines in logs.values()) for key, pat in patterns.items()}


def cluster_step(act, args, local_warm: float) -> None:
    """Persist the cube on a 2-worker LocalCluster (``--cluster-memory`` each), run a first and further seeds.

    Checks and prints: every seed completes, the workers are the ones started (none restarted), none paused
    or was killed (their logs), the maps equal the local route's (computed before the cluster started), and
    the larger worker's peak RSS against its memory limit.
    """
    import distributed
    import numpy as np
    from distributed import Client, LocalCluster

    limit = args.cluster_memory
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=limit,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        workers = sorted(client.scheduler_info()["workers"])
        limit_bytes = max(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
        t0 = time.perf_counter()
        on_cluster = act.persist()
        distributed.wait(on_cluster.data)
        persist_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        first_maps = on_cluster.coact.seed(BENCH_SEED, r=SEED_R, threshold=THRESHOLD).compute()
        first = time.perf_counter() - t1
        c_times, equal, max_diff = [], True, 0.0
        client.run(_clear_transfer_log)  # bytes the workers send (to each other and to this client) in warm seeds
        for s in warm_seeds(args.repeats):
            t0 = time.perf_counter()
            maps = on_cluster.coact.seed(s, r=SEED_R, threshold=THRESHOLD).compute()
            c_times.append(time.perf_counter() - t0)
            ref = args.reference_maps.get(json.dumps(s))
            if ref is not None:
                for name in ref.coact.maps:
                    a, b = np.asarray(maps[name].values), np.asarray(ref[name].values)
                    equal &= bool(np.array_equal(a, b, equal_nan=True))
                    max_diff = max(max_diff, float(np.nanmax(np.abs(a - b))) if a.size else 0.0)
        sent = sum(sum(v) for v in client.run(_transfer_log_bytes).values())
        ref = args.reference_maps[json.dumps(BENCH_SEED)]
        for name in ref.coact.maps:
            a, b = np.asarray(first_maps[name].values), np.asarray(ref[name].values)
            equal &= bool(np.array_equal(a, b, equal_nan=True))
            max_diff = max(max_diff, float(np.nanmax(np.abs(a - b))))
        peaks = client.run(lambda: _status("VmHWM"))
        rss_now = client.run(lambda: _status("VmRSS"))
        statuses = client.run(lambda dask_worker: str(dask_worker.status))
        same_workers = sorted(client.scheduler_info()["workers"]) == workers
        events = _worker_events(client)
        del on_cluster
    warm_c = statistics.median(c_times)
    emit(
        "step",
        step="warm seed, 2-worker cluster",
        seconds=warm_c,
        peak_rss_mb=max(peaks.values()),
        all_seconds=c_times,
        persist_and_first_seconds=persist_s + first,
        persist_seconds=persist_s,
        first_seed_seconds=first,
        ratio_to_persisted_local=warm_c / local_warm,
        memory_limit=limit,
        memory_limit_mb=limit_bytes / 2**20,
        worker_peak_rss_mb=sorted(peaks.values()),
        worker_rss_end_mb=sorted(rss_now.values()),
        worker_status=sorted(statuses.values()),
        same_workers=same_workers,
        events=events,
        maps_equal_local=equal,
        max_abs_diff=max_diff,
        bytes_sent_per_seed=sent / len(c_times),
        ok=bool(same_workers and equal and not any(events.values())),
    )


# --------------------------------------------------------------------------- parent


def machine() -> dict:
    import dask
    import numpy
    import scipy
    import xarray
    import zarr

    import xcoact

    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
            mem = f"{kb / 1024**2:.1f} GB"
    except (OSError, StopIteration):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "dask": dask.__version__,
        "xarray": xarray.__version__,
        "scipy": scipy.__version__,
        "zarr": zarr.__version__,
        "xcoact": xcoact.__version__,
        "xcoact_source_sha1": source_digest(),
    }


def run_child(cmd: list[str], tag: str) -> tuple[list[dict], int]:
    """Run a child, echo its records as progress, return (records, exit code)."""
    records = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith(MARK):
            sys.stdout.write(line)
            continue
        rec = json.loads(line[len(MARK) :])
        records.append(rec)
        if rec["kind"] == "step":
            print(
                f"  [{tag}] {rec['step']:<11} {rec['seconds']:9.3f} s  peak RSS {rec['peak_rss_mb']:8.0f} MB",
                flush=True,
            )
        elif rec["kind"] == "prepared":
            print(
                f"  [{tag}] wrote {rec['path']} ({rec['n_studies']:,} studies, {rec['n_peaks']:,} peaks, "
                f"{rec['bytes'] / 1e6:.0f} MB) in {rec['synth_seconds'] + rec['write_seconds']:.1f} s",
                flush=True,
            )
        elif rec["kind"] == "error":
            print(f"  [{tag}] ERROR: {rec['message']}", flush=True)
    return records, proc.wait()


def fmt_table(size: str, recs: list[dict], args) -> str:
    start = next((r for r in recs if r["kind"] == "start"), {})
    steps = {r["step"]: r for r in recs if r["kind"] == "step"}
    lines = [f"== {label_of(size)} =="]
    if "read" in steps:
        rd = steps["read"]
        lines.append(
            f"file: {start.get('path')} [{start.get('format')}, {start.get('file_bytes', 0) / 1e6:.1f} MB]; "
            f"{rd['n_studies']:,} studies, {rd['n_peaks']:,} peaks"
        )
    rows = [("step", "seconds", "peak RSS MB", "RSS at start MB", "CPU s", "load", "notes")]
    for name in (
        "read",
        "build",
        "first map",
        "cold total",
        "warm seed",
        "persist",
        "warm seed, persisted",
        "warm seed, 2-worker cluster",
        "batch",
    ):
        if name not in steps:
            continue
        s = steps[name]
        note = ""
        if name == "first map":
            note = (
                f"seed() {s['seed_call_seconds']:.3f} s + compute {s['compute_seconds']:.3f} s; "
                f"n_selected {s['n_selected']:,}, n_roi {s['n_roi']}"
            )
            if "held_mib" in s:
                note += "; held MiB: " + ", ".join(f"{k} {v:,.0f}" for k, v in s["held_mib"].items())
        elif name == "cold total":
            note = "read + build + first map; peak = max of the three"
        elif name == "warm seed":
            ts = s["all_seconds"]
            note = (
                f"median of {len(ts)} (min {min(ts):.3f}, max {max(ts):.3f}); "
                f"seed() median {statistics.median(s['seed_call_seconds']):.3f} s"
            )
        elif name == "warm seed, 2-worker cluster":
            note = (
                f"median of {len(s['all_seconds'])}; {s['ratio_to_persisted_local']:.2f}x the persisted local cube; "
                f"persist + first seed {s['persist_and_first_seconds']:.1f} s; peak = the larger worker's"
            )
            if "memory_limit" in s:
                ev = s["events"]
                note += (
                    f"; memory_limit {s['memory_limit']} ({s['memory_limit_mb']:.0f} MB) per worker: persist "
                    f"{s['persist_seconds']:.1f} s, first seed {s['first_seed_seconds']:.1f} s; worker peak RSS "
                    f"{', '.join(f'{v:.0f}' for v in s['worker_peak_rss_mb'])} MB; status "
                    f"{'/'.join(s['worker_status'])}; "
                    f"restarted {'no' if s['same_workers'] and not ev['restarted'] else 'YES'}, paused "
                    f"{ev['paused']}, spill warnings {ev['spilled']}, killed {ev['killed']}; maps equal to the "
                    f"local route: {'yes' if s['maps_equal_local'] else 'NO'} (max abs diff {s['max_abs_diff']:g}); "
                    f"{'OK' if s['ok'] else 'FAILED'}"
                )
            if "bytes_sent_per_seed" in s:
                note += f"; workers sent {s['bytes_sent_per_seed'] / 1e6:.1f} MB a seed"
        elif name == "batch":
            note = (
                f"{s['n_seeds']} seeds: {s['seeds_per_second']:.1f} seeds/s; "
                f"store {s['store_disk_bytes'] / 1e6:,.0f} MB "
                f"on disk; seed() {s['seed_call_seconds']:.2f} s + compute/write {s['write_seconds']:.2f} s; "
                f"{s['n_valid_seeds']} valid"
            )
            if s["reduced"]:
                note += (
                    f"; REDUCED from {s['requested_seeds']} seeds: projected {s['projected_seconds']:.0f} s "
                    f"(warm median x {s['requested_seeds']}) > {args.batch_budget:.0f} s budget"
                )
        start_rss = f"{s['rss_before_mb']:.0f}" if "rss_before_mb" in s else "-"
        cpu = f"{s['cpu_seconds']:.3f}" if "cpu_seconds" in s else "-"
        load = f"{s['loadavg_1min']:.1f}" if "loadavg_1min" in s else "-"
        rows.append((name, f"{s['seconds']:.3f}", f"{s['peak_rss_mb']:.0f}", start_rss, cpu, load, note))
    w = [max(len(r[i]) for r in rows) for i in range(6)]
    for i, r in enumerate(rows):
        lines.append(f"  {r[0]:<{w[0]}}  " + "  ".join(f"{r[k]:>{w[k]}}" for k in range(1, 6)) + f"  {r[6]}")
        if i == 0:
            lines.append("  " + "-" * (sum(w) + 12 + max(len(x[6]) for x in rows)))
    for r in recs:
        if r["kind"] == "error":
            lines.append(f"  ERROR: {r['message']}")
    if "first map" in steps:
        fm = steps["first map"]
        check = " (sanity check: expected 1,435 - OK)" if size == "v7" and fm["n_selected"] == V7_SELECTED else ""
        lines.append(f"benchmark seed [[0, 20, 28]] r=10 threshold=0.1: n_selected = {fm['n_selected']:,}{check}")
    return "\n".join(lines)


def parent(args) -> int:
    sizes = parse_sizes(args.sizes)
    if not os.path.exists(args.release):
        raise SystemExit(
            f"{args.release}: Neurosynth v7 coordinates not found; pass --release PATH or set ${ENV_RELEASE}."
        )
    made_out = args.out is None
    out = tempfile.mkdtemp(prefix="xcoact-bench-") if made_out else os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    me = [
        sys.executable,
        os.path.abspath(__file__),
        "--release",
        args.release,
        "--out",
        out,
        "--batch-seeds",
        str(args.batch_seeds),
        "--repeats",
        str(args.repeats),
        "--batch-budget",
        str(args.batch_budget),
        "--layout",
        args.layout,
        *(["--cluster", "--cluster-memory", args.cluster_memory] if args.cluster else []),
    ]
    info = machine()
    print("xcoact benchmark: " + " ".join(["python3", "benchmarks/run.py", *sys.argv[1:]]))
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"release: {args.release}\nscratch: {out}", flush=True)
    results: dict[str, list[dict]] = {}
    failed = []
    created = []
    t_all = time.perf_counter()
    try:
        synth = [s for s in sizes if s != "v7"]
        if synth:
            print(f"preparing synthetic databases {', '.join(s + 'x' for s in synth)} (not timed) ...", flush=True)
            recs, rc = run_child([*me, "--prepare", ",".join(synth)], "prepare")
            created += [r["path"] for r in recs if r["kind"] == "prepared"]
            results["prepare"] = recs
            if rc != 0:
                raise SystemExit(f"preparing the synthetic databases failed (exit code {rc})")
        for size in sizes:
            print(f"running {label_of(size)} in a subprocess ...", flush=True)
            recs, rc = run_child([*me, "--only", size], size)
            results[size] = recs
            if rc != 0 or not any(r["kind"] == "done" for r in recs):
                failed.append(size)
                print(f"  [{size}] FAILED (exit code {rc})", flush=True)
    finally:
        if made_out:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for p in created:
                if os.path.exists(p):
                    os.remove(p)
            for size in sizes:
                shutil.rmtree(os.path.join(out, f"batch-{size}.zarr"), ignore_errors=True)
    print()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        "settings: kernel r=6 mm; seeds: 10 mm spheres, threshold 0.1; "
        f"warm seed = median over {args.repeats} seeds; batch = {args.batch_seeds} separate seeds, float32 Zarr "
        "(to_zarr's "
        f"default compressor), "
        f"layout {args.layout}"
    )
    print(
        "peak RSS MB = VmHWM / 1024 (MiB) of the benchmark subprocess, reset at the start of each step (includes the "
        "interpreter, libraries and data already held); CPU s = user + system CPU time of the step "
        "(all threads; per seed for the warm seed); load = 1-minute load average at the end of the step"
    )
    for size in sizes:
        print()
        print(fmt_table(size, results.get(size, []), args))
    digests = {r["xcoact_source"] for recs in results.values() for r in recs if r["kind"] == "start"}
    digests.add(source_digest())
    if len(digests) > 1:
        print(
            f"\nWARNING: the xcoact sources changed during the run (digests {sorted(digests)}); "
            "the databases were not all measured on the same code."
        )
    print(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"machine": info, "argv": sys.argv[1:], "release": args.release, "results": results}, fh, indent=1
            )
        print(f"results written to {args.json}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--release",
        default=None,
        help=f"Neurosynth v7 coordinates file (default: ${ENV_RELEASE}, else fetched with "
        f"xcoact.datasets.fetch_neurosynth from $XCOACT_MIRROR or {DEFAULT_MIRROR} relative to the "
        "repository root)",
    )
    p.add_argument(
        "--sizes",
        default="v7,0.25,10",
        help="comma-separated databases: 'v7' and/or multiples of v7's study count (default: v7,0.25,10)",
    )
    p.add_argument("--batch-seeds", type=int, default=1000, help="seeds in the batch step (default 1000)")
    p.add_argument("--repeats", type=int, default=5, help="warm seeds whose median is reported (default 5)")
    p.add_argument(
        "--out", default=None, help="scratch directory (default: a fresh temporary directory, deleted at the end)"
    )
    p.add_argument(
        "--batch-budget",
        type=float,
        default=BATCH_BUDGET_S,
        help=f"if warm median x batch seeds exceeds this many seconds, the batch runs {FALLBACK_SEEDS} seeds "
        f"(default {BATCH_BUDGET_S})",
    )
    p.add_argument(
        "--layout",
        default="volume",
        choices=["volume", "voxel"],
        help="layout of the batch maps: 'volume' (x, y, z; the default of seed()) or 'voxel' (in-mask "
        "voxels only, if this xcoact has it)",
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="also time warm seeds on a persisted cube on a 2-worker LocalCluster (2 GB each)",
    )
    p.add_argument(
        "--cluster-memory",
        default=None,
        metavar="LIMIT",
        help="like --cluster, with this memory_limit per worker (e.g. 2GB; default 2GB): also checks that "
        "no worker restarted, paused or was killed and that the maps equal the local route's",
    )
    p.add_argument("--json", default=None, help="also write every record to this JSON file")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)
    p.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_seeds < 1 or args.repeats < 1:
        p.error("--batch-seeds and --repeats must be >= 1")
    if args.cluster_memory is not None:
        args.cluster = True
    args.cluster_memory = args.cluster_memory or "2GB"
    args.release = resolve_release(args.release)
    if args.prepare is not None:
        return child_prepare(args)
    if args.only is not None:
        args.only = parse_sizes(args.only)[0]
        return child_run(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
