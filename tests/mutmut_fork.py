"""pytest plugin for ``tox -e mutation`` (``-p tests.mutmut_fork``): Dask's thread pool survives a fork.

mutmut runs the selected tests once, then forks one child per mutant from that
process.  A forked child keeps Dask's default thread pool object but none of
its threads, so its first ``compute()`` would wait forever.  After a fork the
child drops the pools and Dask makes new ones.
"""

from __future__ import annotations

import os


def _fresh_dask_pools() -> None:
    import sys

    threaded = sys.modules.get("dask.threaded")
    if threaded is not None:
        threaded.default_pool = None
        threaded.pools.clear()


os.register_at_fork(after_in_child=_fresh_dask_pools)
