"""The warm seed's long loops split over this machine's cores (counting the selected rows, the chi-square p).

A seed's maps are one Dask task (their FDR needs every voxel at once), so on
its own it would use one core.  Two of its loops that cost milliseconds
release the GIL (a compiled loop, a scipy ufunc), and :func:`split` runs one
in a few threads of a small pool.  Calls from the pool's own threads run
inline (no pool thread ever waits on the pool).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["split", "n_workers", "usable_cores"]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_INSIDE = threading.local()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def n_workers() -> int:
    """Threads :func:`split` uses: :func:`usable_cores`, at most 4."""
    return min(usable_cores(), 4)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(
                    max(1, n_workers() - 1), thread_name_prefix="xcoact-split", initializer=_mark_inside
                )
    return _POOL


def _mark_inside() -> None:
    _INSIDE.flag = True


def split(fn, n: int, min_size: int) -> list:
    """``[fn(start, stop) for each part]`` over ``range(n)`` cut into equal parts, run at once.

    Parts number :func:`n_workers` (fewer when a part would have fewer than
    ``min_size`` items); the first part runs in the calling thread.  The
    results come back in the parts' order.
    """
    k = max(1, min(n_workers(), n // max(1, min_size)))
    if k == 1 or getattr(_INSIDE, "flag", False):
        return [fn(0, n)]
    bounds = [n * i // k for i in range(k + 1)]
    futures = [_pool().submit(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    first = fn(bounds[0], bounds[1])
    return [first, *(f.result() for f in futures)]
