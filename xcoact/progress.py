"""Progress feedback for the long calls: downloads, FWE permutations, batch writes.

``progress=None`` (the default of every call that takes it) shows progress
in a Jupyter notebook and when stderr is a terminal, and stays silent
otherwise (scripts writing to a log, tests, pipes); ``True`` and ``False``
force it.  With the optional `tqdm <https://tqdm.github.io>`_ package
(``pip install xcoact[progress]``) the bars are ``tqdm.auto`` bars, widgets
in a notebook; without it Dask's own text bar
(:class:`dask.diagnostics.ProgressBar`) is used for computations and the
downloads are only logged.

Dask's local callbacks do not see work done on a ``dask.distributed``
cluster; there, watch the dashboard or use ``distributed.progress``.

>>> from xcoact.progress import progress_bar
>>> import dask.array as da
>>> with progress_bar(False):           # silent
...     int(da.ones(10, chunks=5).sum().compute())
10
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["progress_bar", "byte_bar", "show_progress"]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:  # pragma: no cover - a stub module
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def show_progress(progress: bool | None) -> bool:
    """Whether to show progress: ``progress`` itself, or for None, in a notebook or on a terminal."""
    if progress is not None:
        if not isinstance(progress, bool):
            from .errors import ParameterError

            raise ParameterError(f"progress={progress!r} is not valid; expected True, False or None (automatic).")
        return progress
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or _in_notebook()


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _on_distributed() -> bool:
    try:
        from distributed import default_client
    except ImportError:
        return False
    try:
        default_client()
    except ValueError:
        return False
    return True


def _bar_active() -> bool:
    """A progress bar already follows the computations (an outer call's, or the command line's)."""
    from dask.callbacks import Callback
    from dask.diagnostics import ProgressBar

    try:
        from tqdm.dask import TqdmCallback
    except ImportError:
        TqdmCallback = ProgressBar
    # Callback.active holds each active callback's tuple of bound methods
    owners = {getattr(f, "__self__", None) for cb in Callback.active for f in (cb if isinstance(cb, tuple) else (cb,))}
    return any(isinstance(o, (ProgressBar, TqdmCallback)) for o in owners)


@contextlib.contextmanager
def progress_bar(progress: bool | None = None, *, desc: str | None = None, minimum: float = 0.5):
    """Show the progress of the Dask computations run inside the block.

    Parameters
    ----------
    progress : bool or None
        None: in a notebook or on a terminal only.
    desc : str, optional
        The bar's label (tqdm only).
    minimum : float, default 0.5
        Dask's text bar appears only for computations longer than this (s).
    """
    if not show_progress(progress) or _on_distributed() or _bar_active():
        yield
        return
    tqdm = _tqdm()
    if tqdm is not None:
        from tqdm.dask import TqdmCallback

        bar = TqdmCallback(tqdm_class=tqdm, desc=desc, file=sys.stderr)
    else:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar(minimum=minimum, out=sys.stderr)
    with bar:
        yield


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def byte_bar(progress: bool | None, total: int | None, desc: str, initial: int = 0):
    """A bar counting bytes (downloads); a no-op without tqdm or when progress is off."""
    tqdm = _tqdm() if show_progress(progress) else None
    if tqdm is None:
        yield _NoBar()
        return
    bar = tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        leave=False,
    )
    try:
        yield bar
    finally:
        bar.close()
