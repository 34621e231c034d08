"""Interrupted writes leave no partial file and keep the earlier one (docs/reliability.md, "Atomic outputs").

Every writer - NIfTI (one seed, and a batch), netCDF, Zarr, the four database
writers, PNG and HTML - first writes an earlier version of its output.  Then a
new version is written over it (``overwrite=True``) and interrupted half-way.
Afterwards the directory must hold exactly the bytes it held before (no
partial output, no temporary file, the earlier version intact), and the error
must be an :class:`xcoact.OutputError` naming the file.

The interruptions, from the top of the stack down:

1. the writing library fails with ``EIO`` after part of the data is written
   (nibabel's array writer, xarray's netCDF4 variable write, the Zarr store's
   key write; for the text, PNG and HTML writers, the file object), and a
   ``KeyboardInterrupt`` at the same place, which must propagate unchanged;
2. a full disk simulated at Python's file layer: ``open()`` hands out files
   that share a byte budget (half the new output), then make short writes and
   raise ``ENOSPC`` as a full disk does.  netCDF is left out: its C library
   does its own writing;
3. the kernel refusing writes, in a child process: ``RLIMIT_FSIZE`` (``EFBIG``
   past half the largest new file; needs no privilege), and a real full tmpfs
   (``ENOSPC``) mounted in a private mount namespace with ``unshare``.  Both
   cover every writer, netCDF included.  The tmpfs test needs ``unshare`` and
   the right to mount (root, or unprivileged user namespaces).  Where that is
   missing it fails and says so rather than skipping;
4. a chunk write failing while other chunk tasks of the same Zarr or netCDF
   write are still running in Dask threads and write after the clean-up.
"""

from __future__ import annotations

import builtins
import errno
import functools
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import pytest

import xcoact
from xcoact.errors import OutputError

HERE = os.path.dirname(os.path.abspath(__file__))
AMYGDALA = "amygdala"
DACC = [[0, 20, 28]]


# --------------------------------------------------------------------------- the data written


@functools.cache
def _data() -> dict:
    """Two versions ("old", "new") of everything a writer writes, computed once per process."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = xcoact.read_database(xcoact.datasets.sample_database_path())
        act = xcoact.activations(table, r=6)
        amygdala = xcoact.datasets.amygdala_roi_path()
        maps = {
            "old": act.coact.seed(amygdala, threshold=0.1).compute(),
            "new": act.coact.seed(DACC, r=10, threshold=0.1).compute(),
        }
        # the same two seed names in both versions, so the new files replace the old ones
        batches = {
            v: act.coact.seed([amygdala, DACC], r=10, threshold=t, dtype="float32").compute()
            for v, t in (("old", 0.05), ("new", 0.1))
        }
        tables = {"old": xcoact.datasets.synthetic(150, seed=2), "new": xcoact.datasets.synthetic(150, seed=3)}
    figures = {}
    for v, k in (("old", 1), ("new", 2)):
        fig = Figure(figsize=(4, 3))
        fig.add_subplot().imshow(np.random.default_rng(k).random((64, 64)))
        figures[v] = fig
    # The HTML writer's text, made here instead of by report_html (about 3 s per call):
    # what is under test is how report() writes, not what it writes.
    html = {
        v: "<html><body>\n" + f"<p>{v} {json.dumps(maps[v].attrs['seed'])}</p>\n" * 4000 + "</body></html>\n"
        for v in ("old", "new")
    }
    return {"maps": maps, "batch": batches, "table": tables, "figure": figures, "html": html}


def _write_html(version: str, folder: str) -> list[str]:
    import xcoact.report

    d = _data()
    real = xcoact.report.report_html
    xcoact.report.report_html = lambda ds, **kw: d["html"][version]
    try:
        return [xcoact.report.report(d["maps"][version], os.path.join(folder, "report.html"), overwrite=True)]
    finally:
        xcoact.report.report_html = real


def _write_png(version: str, folder: str) -> list[str]:
    import xcoact.plot

    return [xcoact.plot.to_png(_data()["figure"][version], os.path.join(folder, "maps.png"), overwrite=True)]


def _write_db(fmt: str, name: str):
    def write(version: str, folder: str) -> list[str]:
        return [xcoact.write_database(_data()["table"][version], os.path.join(folder, name), fmt, overwrite=True)]

    return write


#: writer name -> write(version, folder) -> the files written
WRITERS = {
    "nifti": lambda v, f: _data()["maps"][v].coact.to_nifti(os.path.join(f, "c"), overwrite=True),
    "nifti-batch": lambda v, f: _data()["batch"][v].coact.to_nifti(
        os.path.join(f, "b"), overwrite=True, seeds_per_pass=1
    ),
    "netcdf": lambda v, f: [_data()["maps"][v].coact.to_netcdf(os.path.join(f, "maps.nc"), overwrite=True)],
    "zarr": lambda v, f: [_data()["maps"][v].coact.to_zarr(os.path.join(f, "maps.zarr"), overwrite=True)],
    "neurosynth": _write_db("neurosynth", "database.txt.gz"),
    "neurosynth-v7": _write_db("neurosynth-v7", "db_coordinates.tsv"),
    "nimare-json": _write_db("nimare-json", "dataset.json"),
    "sleuth": _write_db("sleuth", "sleuth.txt"),
    "png": _write_png,
    "html": _write_html,
}

#: writers whose bytes go through Python file objects (netCDF's C library writes by itself)
PYTHON_FILE_WRITERS = [w for w in WRITERS if w != "netcdf"]


def _snapshot(folder: str) -> dict[str, bytes | None]:
    """Every file and directory below ``folder`` (hidden ones too): relative path -> bytes (None for a directory)."""
    out: dict[str, bytes | None] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


def _size(path: str) -> int:
    # other threads may still be renaming their temporary chunk files: one that is gone counts 0 bytes
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _sizes(folder: str) -> dict[str, int]:
    """Top-level entries of ``folder`` -> bytes (a directory: the sum of its files)."""
    out = {}
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            out[name] = sum(_size(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
        else:
            out[name] = _size(path)
    return out


def _errno_of(err: BaseException | None) -> int | None:
    """The errno of the first OSError in an exception's cause/context chain (below the OutputError)."""
    seen = 0
    err = err.__cause__ or err.__context__ if err is not None else None
    while err is not None and seen < 20:
        if isinstance(err, OSError) and err.errno is not None:
            return err.errno
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def _interrupt(writer: str, folder: str, fault) -> dict:
    """Write the old version, snapshot, write the new one under ``fault`` (a context manager factory)."""
    WRITERS[writer]("old", folder)
    before = _snapshot(folder)
    error = None
    with fault(folder):
        try:
            WRITERS[writer]("new", folder)
        except BaseException as err:
            error = err
    after = _snapshot(folder)
    return {
        "error": error,
        "error_type": type(error).__name__ if error is not None else None,
        "output_error": isinstance(error, OutputError),
        "oserror": isinstance(error, OSError),
        "message": str(error) if error is not None else "",
        "cause_errno": _errno_of(error),
        "unchanged": before == after,
        "outputs": sorted(os.path.join(folder, n) for n in before if os.sep not in n),
        "hidden_after": sorted(n for n in after if n.startswith(".")),
        "changed": sorted(set(before) ^ set(after) | {k for k in before if k in after and before[k] != after[k]})[:10],
    }


def _check(result: dict, *, expect=OutputError) -> None:
    """The assertions every interrupted write must pass."""
    assert result["error_type"] is not None, "the write did not fail: no fault fired"
    assert result["unchanged"], f"the directory changed: {result['changed']} (hidden: {result['hidden_after']})"
    assert result["hidden_after"] == [], f"temporary files left: {result['hidden_after']}"
    if expect is OutputError:
        assert result["output_error"] and result["oserror"], f"{result['error_type']}: {result['message']}"
        named = [p for p in result["outputs"] if p in result["message"]]
        assert named, f"the message names none of the outputs {result['outputs']}: {result['message']}"
        assert "nothing was written" in result["message"]
    else:
        assert result["error_type"] == expect.__name__, f"{result['error_type']}: {result['message']}"


# --------------------------------------------------------------------------- 1. the library fails part-way


class _Fired:
    """An injected fault: fires once, and records what the directory held then (proof it was half-way).

    ``fire(exc)`` raises ``exc``, except for a ``KeyboardInterrupt``: then it
    sends the main thread a real SIGINT, as Ctrl-C does.  Python raises the
    KeyboardInterrupt in the main thread: right there if the fault fired in
    the main thread, else wherever the main thread waits, while this thread
    is held until :meth:`release` and then goes on writing (a write running in
    another thread is not cancelled by Ctrl-C).
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.calls = 0
        self._calls_lock = threading.Lock()
        self.at_fault: dict[str, int] | None = None
        self.in_thread = False
        self.released = threading.Event()
        self.done = threading.Event()

    def count(self) -> int:
        """One more call of the patched write; its number (writers call from several threads at once)."""
        with self._calls_lock:
            self.calls += 1
            return self.calls

    def snapshot(self) -> bool:
        """Record what the directory holds now, once; True if this call took the record."""
        if self.at_fault is not None:
            return False
        self.at_fault = _sizes(self.folder)
        return True

    def fire(self, exc: BaseException) -> None:
        self.snapshot()  # a caller holding other writers back may have taken it already
        if not isinstance(exc, KeyboardInterrupt):
            raise exc
        self.in_thread = threading.current_thread() is not threading.main_thread()
        # to the main thread, as a terminal's Ctrl-C reaches a Python program: its blocking wait is interrupted
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        if not self.in_thread:
            raise AssertionError("SIGINT did not interrupt the main thread")
        assert self.released.wait(30), "the test never released the interrupted thread"

    def call(self, exc: BaseException, real, *args, **kwargs):
        """Fire, then (for a thread that goes on after a Ctrl-C) make the real call."""
        try:
            self.fire(exc)
            return real(*args, **kwargs)
        finally:
            self.done.set()

    def release(self) -> None:
        self.released.set()
        if self.in_thread:
            assert self.done.wait(30), "the interrupted thread did not finish its write"

    def check_half_way(self):
        assert self.at_fault is not None, "the fault never fired"
        temps = {n: s for n, s in self.at_fault.items() if n.startswith(".")}
        assert temps, f"no temporary output existed when the fault fired: {self.at_fault}"
        assert sum(temps.values()) > 0, f"the temporary outputs were empty when the fault fired: {temps}"


def _library_fault(writer: str, monkeypatch, exc: BaseException, fired: list):
    """A context manager factory: the writer's own low-level write raises ``exc`` after some data is written."""
    import contextlib

    @contextlib.contextmanager
    def fault(folder):
        state = _Fired(folder)
        fired.append(state)
        with monkeypatch.context() as m:
            if writer in ("nifti", "nifti-batch"):
                import nibabel.arraywriters as aw

                real = aw.array_to_file
                fail_at = 5 if writer == "nifti" else 9 + 5  # the 5th map; for the batch, in its second pass

                def array_to_file(data, fileobj, *args, **kwargs):
                    if state.count() == fail_at:
                        if not isinstance(exc, KeyboardInterrupt):
                            flat = np.asarray(data).reshape(-1, order="F")
                            real(flat[: flat.size // 2], fileobj, *args, **kwargs)  # half the voxels first
                            getattr(fileobj, "fobj", fileobj).flush()  # nibabel's opener holds a GzipFile
                        return state.call(exc, real, data, fileobj, *args, **kwargs)
                    return real(data, fileobj, *args, **kwargs)

                m.setattr(aw, "array_to_file", array_to_file)
            elif writer == "netcdf":
                from xarray.backends import netCDF4_

                real = netCDF4_.BaseNetCDF4Array.__setitem__

                def setitem(self, key, value):
                    if state.count() == 4:  # three variables are in the file
                        self.datastore.sync()
                        return state.call(exc, real, self, key, value)
                    return real(self, key, value)

                m.setattr(netCDF4_.BaseNetCDF4Array, "__setitem__", setitem)
            elif writer == "zarr":
                import xcoact.writers as export

                real = export._fenced_put

                def put(root, key, value, exclusive=False):
                    if state.count() == 6:  # metadata and some chunks are in the store
                        return state.call(exc, real, root, key, value, exclusive)
                    return real(root, key, value, exclusive)

                m.setattr(export, "_fenced_put", put)
            else:
                # the text, PNG and HTML writers: their file objects fail after half the bytes
                m.setattr(builtins, "open", _budget_open(folder, _new_bytes(writer) // 2, exc, state))
            yield

    return fault


@functools.cache
def _new_bytes(writer: str) -> int:
    """Bytes of the new version of a writer's output (written once to a scratch directory)."""
    scratch = tempfile.mkdtemp(prefix="xcoact-size-")
    try:
        WRITERS[writer]("new", scratch)
        return sum(_sizes(scratch).values())
    finally:
        shutil.rmtree(scratch)


class _BudgetFile(io.FileIO):
    """A real file whose writes draw on a shared byte budget; when it is spent, short writes, then an error."""

    budget: dict

    def write(self, b):
        view = memoryview(b).cast("B")
        budget = self.budget
        # zarr writes chunks from several threads at once: each write claims its bytes and writes them
        # under one lock, so the budget never goes below zero, the fault fires exactly once, and every
        # byte claimed before it is on disk when the snapshot is taken
        with budget["lock"]:
            allowed = min(len(view), budget["left"])
            if allowed:
                n = super().write(view[:allowed])
                budget["left"] -= n
                return n
            # what the disk holds now, before any other writer sees the full disk and cleans up
            first = budget["state"].snapshot()
        if first:
            budget["state"].fire(budget["exc"])  # returns only for a Ctrl-C in another thread
        elif not isinstance(budget["exc"], KeyboardInterrupt):
            raise budget["exc"]  # the disk stays full for every later write
        return super().write(view)  # after a Ctrl-C, writes already under way go on


def _budget_open(folder: str, nbytes: int, exc: BaseException, state: _Fired):
    """``open`` that hands out :class:`_BudgetFile` objects for writes below ``folder``."""
    real_open = builtins.open
    folder = os.path.abspath(folder)
    budget = {"left": max(1, nbytes), "exc": exc, "state": state, "lock": threading.Lock()}

    def fake_open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None, closefd=True, opener=None):
        writing = isinstance(mode, str) and any(c in mode for c in "wxa+")
        if (
            writing
            and isinstance(file, (str, os.PathLike))
            and os.path.abspath(os.fspath(file)).startswith(folder + os.sep)
        ):
            state.count()
            raw = _BudgetFile(os.fspath(file), mode.replace("b", "").replace("t", ""))
            raw.budget = budget
            buffered = io.BufferedRandom(raw) if "+" in mode else io.BufferedWriter(raw)
            if "b" in mode:
                return buffered
            return io.TextIOWrapper(buffered, encoding=encoding or "utf-8", errors=errors, newline=newline)
        return real_open(file, mode, buffering, encoding, errors, newline, closefd, opener)

    return fake_open


@pytest.mark.parametrize("writer", list(WRITERS))
def test_library_error_half_way_leaves_the_earlier_output(writer, tmp_path, monkeypatch):
    fired: list[_Fired] = []
    fault = _library_fault(writer, monkeypatch, OSError(errno.EIO, "Input/output error (injected)"), fired)
    result = _interrupt(writer, str(tmp_path), fault)
    fired[0].check_half_way()
    _check(result)
    assert result["cause_errno"] == errno.EIO
    # the same write without the fault does replace the earlier output, so the check above is not vacuous
    before = _snapshot(str(tmp_path))
    WRITERS[writer]("new", str(tmp_path))
    after = _snapshot(str(tmp_path))
    assert [n for n in after if n.startswith(".")] == []
    assert after != before


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as in a terminal, even where the test runner was started with it ignored
    (a shell's background job ignores SIGINT, and Python then keeps it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("writer", list(WRITERS))
def test_ctrl_c_half_way_leaves_the_old_or_the_whole_new_output(writer, tmp_path, monkeypatch, ctrl_c_raises):
    """A real SIGINT half-way: KeyboardInterrupt propagates, and the directory holds one complete version."""
    folder = str(tmp_path)
    fired: list[_Fired] = []
    fault = _library_fault(writer, monkeypatch, KeyboardInterrupt(), fired)
    WRITERS[writer]("old", folder)
    before = _snapshot(folder)
    # a pool of our own, so that leaving the block waits for every Dask task still running
    with ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool):
        with fault(folder), pytest.raises(KeyboardInterrupt):
            WRITERS[writer]("new", folder)
        fired[0].release()
    fired[0].check_half_way()
    after = _snapshot(folder)
    assert [n for n in after if n.startswith(".")] == [], "temporary files left"
    if writer == "nifti":
        # one seed's maps are written by one Dask task, in a pool thread that Ctrl-C does not stop:
        # it finishes, and all nine new files replace the old ones together
        assert fired[0].in_thread
        assert after.keys() == before.keys() and after != before
        new = _data()["maps"]["new"]
        import nibabel as nib

        for name in xcoact.map_names():
            got = np.asarray(nib.load(os.path.join(folder, f"c_{name}.nii.gz")).dataobj)
            np.testing.assert_array_equal(got, new[name].transpose("x", "y", "z").values.astype(np.float32))
    else:
        assert after == before
        if writer == "zarr":
            # the chunk write held in zarr's I/O thread ran after the clean-up, and could not revive the store
            assert fired[0].in_thread


@pytest.mark.parametrize("writer", ["nifti", "nifti-batch", "zarr", "neurosynth-v7"])
def test_library_error_on_a_fresh_target_leaves_an_empty_directory(writer, tmp_path, monkeypatch):
    fired: list[_Fired] = []
    fault = _library_fault(writer, monkeypatch, OSError(errno.EIO, "Input/output error (injected)"), fired)
    with pytest.raises(OutputError, match="Input/output error"):
        with fault(str(tmp_path)):
            WRITERS[writer]("new", str(tmp_path))
    fired[0].check_half_way()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- 2. a full disk at Python's file layer


@pytest.mark.parametrize("writer", PYTHON_FILE_WRITERS)
def test_disk_full_at_the_file_layer_leaves_the_earlier_output(writer, tmp_path, monkeypatch):
    import contextlib

    fired: list[_Fired] = []
    exc = OSError(errno.ENOSPC, "No space left on device (simulated)")

    @contextlib.contextmanager
    def disk_full(folder):
        state = _Fired(folder)
        fired.append(state)
        with monkeypatch.context() as m:
            m.setattr(builtins, "open", _budget_open(folder, _new_bytes(writer) // 2, exc, state))
            yield

    result = _interrupt(writer, str(tmp_path), disk_full)
    fired[0].check_half_way()
    _check(result)
    assert result["cause_errno"] == errno.ENOSPC


# --------------------------------------------------------------------------- 3. the kernel refuses (child processes)


def _child_main(argv: list[str]) -> None:
    """Run in a child process: interrupt every writer under ``mode``, results as JSON to ``out``.

    ``fsize``: ``RLIMIT_FSIZE`` at half the largest new file (``EFBIG``).
    ``tmpfs``: ``folder`` is a fresh tmpfs; a ballast file leaves half the new output's bytes free (``ENOSPC``).
    """
    import contextlib
    import resource

    mode, root, out = argv
    results = {}
    for writer in WRITERS:
        base = os.path.join(root, writer)
        folder, scratch = os.path.join(base, "out"), os.path.join(base, "scratch")
        os.makedirs(folder)
        os.makedirs(scratch)
        WRITERS[writer]("new", scratch)
        files = [os.path.join(r, f) for r, _, fs in os.walk(scratch) for f in fs]
        total = sum(os.path.getsize(f) for f in files)
        largest = max(os.path.getsize(f) for f in files)
        shutil.rmtree(scratch)
        info: dict = {}

        if mode == "fsize":

            @contextlib.contextmanager
            def fault(_folder, limit=largest // 2):
                info["limit"] = limit  # noqa: B023  (defined and used in this iteration)
                old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
                soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
                try:
                    yield
                finally:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                    signal.signal(signal.SIGXFSZ, old_handler)
        else:

            @contextlib.contextmanager
            def fault(_folder, leave=max(4096, total // 2)):
                ballast = os.path.join(root, "ballast")
                st = os.statvfs(root)
                fill = st.f_bavail * st.f_frsize - leave
                with open(ballast, "wb") as fh:
                    block = b"\0" * (1 << 20)
                    while fill > 0:
                        fill -= fh.write(block[: min(len(block), fill)])
                st = os.statvfs(root)
                info["free"] = st.f_bavail * st.f_frsize  # noqa: B023  (defined and used in this iteration)
                try:
                    yield
                finally:
                    os.remove(ballast)

        result = _interrupt(writer, folder, fault)
        result.pop("error")
        result.update(info, total=total, largest=largest)
        results[writer] = result
        shutil.rmtree(base)
    with open(out, "w") as fh:
        json.dump(results, fh)


def _run_child(mode: str, root: str, tmp_path, prefix: list[str] | None = None, shell: str | None = None) -> dict:
    out = os.path.join(str(tmp_path), f"{mode}.json")
    code = f"import sys; sys.path.insert(0, {HERE!r}); import test_atomic_writes as t; t._child_main(sys.argv[1:])"
    if shell is None:
        cmd = [sys.executable, "-c", code, mode, root, out]
    else:
        cmd = [*prefix, "sh", "-c", shell, "sh", root, sys.executable, code, mode, out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    with open(out) as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def fsize_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsize")
    root = tmp / "root"
    root.mkdir()
    return _run_child("fsize", str(root), tmp)


#: mount a 256 MiB tmpfs on $1 and run the child there; the mount dies with the namespace
_MOUNT = 'mount -t tmpfs -o size=256m xcoact-test "$1" && exec "$2" -c "$3" "$4" "$1" "$5"'
_NAMESPACES = (
    ["unshare", "--mount", "--propagation", "private"],
    ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"],
)


def _tmpfs_prefix(probe_dir: str) -> tuple[list[str] | None, str]:
    """The first ``unshare`` invocation that can mount a tmpfs here, and what failed otherwise."""
    why = []
    if shutil.which("unshare") is None:
        return None, "the unshare program (util-linux) is not installed"
    for prefix in _NAMESPACES:
        probe = subprocess.run(
            [*prefix, "sh", "-c", 'mount -t tmpfs -o size=1m xcoact-probe "$1"', "sh", probe_dir],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return prefix, ""
        why.append(f"{' '.join(prefix)}: {probe.stderr.strip() or probe.returncode}")
    return None, "; ".join(why)


@pytest.fixture(scope="module")
def tmpfs_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tmpfs")
    mountpoint = tmp / "mnt"
    mountpoint.mkdir()
    prefix, why = _tmpfs_prefix(str(mountpoint))
    if prefix is None:
        pytest.fail(
            "cannot mount a tmpfs in a private mount namespace, so the real full-disk test cannot run "
            f"({why}). It needs `unshare` and root, or unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1). The RLIMIT_FSIZE and file-layer ENOSPC tests "
            "in this file do not need privileges.",
            pytrace=False,
        )
    results = _run_child("tmpfs", str(mountpoint), tmp, prefix=prefix, shell=_MOUNT)
    assert os.listdir(mountpoint) == [], "the tmpfs was mounted outside the child's namespace"
    return results


@pytest.mark.parametrize("writer", list(WRITERS))
def test_file_size_limit_half_way_leaves_the_earlier_output(writer, fsize_results):
    result = fsize_results[writer]
    assert 0 < result["limit"] < result["largest"]
    _check(result)
    if writer == "netcdf":
        # HDF5 reports no errno; the message carries the library's words and the free space
        assert "NetCDF: HDF error" in result["message"] and "bytes free on its file system" in result["message"]
    else:
        assert result["cause_errno"] == errno.EFBIG, result["message"]


@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_tmpfs_half_way_leaves_the_earlier_output(writer, tmpfs_results):
    result = tmpfs_results[writer]
    assert 0 < result["free"] < result["total"], "the disk left room for the whole output: no fault"
    _check(result)
    if writer == "netcdf":
        assert "NetCDF: HDF error" in result["message"]
        free = re.search(r"; ([\d,]+) bytes free on its file system when it failed", result["message"])
        assert free and int(free.group(1).replace(",", "")) < result["free"], result["message"]
    else:
        assert result["cause_errno"] == errno.ENOSPC, result["message"]


# --------------------------------------------------------------------------- 4. writes still running after the failure


@pytest.fixture(scope="module")
def lazy_batch():
    """Four seeds' maps, lazy: each Zarr / netCDF chunk is computed and written by its own Dask task."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)
        return act.coact.seed(
            [[0, 20, 28], [-40, 20, 28], [40, -60, 0], [0, -50, 20]],
            r=10,
            threshold=0.1,
            separate=True,
            dtype="float32",
        )


class _LateWriter:
    """Holds the first chunk write until a second one has failed and the writer has cleaned up, then lets it run."""

    def __init__(self, folder: str):
        self.folder = folder
        self.lock = threading.Lock()
        self.n = 0
        self.failed = threading.Event()
        self.cleaned = threading.Event()
        self.late_error: BaseException | None = None
        self.late_ran = False

    def __call__(self, real, *args):
        with self.lock:
            self.n += 1
            n = self.n
        if n == 1:
            assert self.failed.wait(30), "the second chunk write never came"
            assert self.cleaned.wait(30), "the writer did not clean up"
            self.late_ran = True
            try:
                return real(*args)
            except BaseException as err:
                self.late_error = err
                raise
        if n == 2:
            self.failed.set()
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real(*args)


def _is_map_chunk(key: str) -> bool:
    # a chunk of a (seed, x, y, z) variable, e.g. "pA/0.0.0.0" (Zarr format 2)
    name, _, chunk = key.rpartition("/")
    return bool(name) and chunk.count(".") == 3 and chunk.replace(".", "").isdigit()


def _run_late(write, folder: str, late: _LateWriter) -> BaseException:
    """Run ``write`` on two Dask threads; return its error once every task has finished."""
    before = _snapshot(folder)
    with ThreadPoolExecutor(2) as pool, dask.config.set(scheduler="threads", pool=pool):
        with pytest.raises(OutputError) as info:
            write()
        # the writer has returned: whatever it left now is what a caller would see
        late.cleaned.set()
    # the pool has shut down: the held write has run
    assert late.late_ran
    assert _snapshot(folder) == before
    return info.value


def test_zarr_chunk_writes_still_running_after_a_failure_leave_nothing(lazy_batch, tmp_path, monkeypatch):
    import xcoact.writers as export

    folder = str(tmp_path)
    lazy_batch.isel(seed=[0]).coact.to_zarr(tmp_path / "b.zarr")  # the earlier version
    late = _LateWriter(folder)
    real = export._fenced_put

    def put(root, key, value, exclusive=False):
        if _is_map_chunk(key):
            return late(real, root, key, value, exclusive)
        return real(root, key, value, exclusive)

    monkeypatch.setattr(export, "_fenced_put", put)
    err = _run_late(lambda: lazy_batch.coact.to_zarr(tmp_path / "b.zarr", overwrite=True), folder, late)
    assert str(tmp_path / "b.zarr") in str(err) and "No space left" in str(err)
    # the late write found its store gone instead of creating it again
    assert isinstance(late.late_error, FileNotFoundError), late.late_error


def test_netcdf_chunk_writes_still_running_after_a_failure_leave_nothing(lazy_batch, tmp_path, monkeypatch):
    from xarray.backends import netCDF4_

    folder = str(tmp_path)
    lazy_batch.isel(seed=[0]).coact.to_netcdf(tmp_path / "b.nc")  # the earlier version
    late = _LateWriter(folder)
    real = netCDF4_.BaseNetCDF4Array.__setitem__

    def setitem(self, key, value):
        if np.ndim(value) == 4:  # a (seed, x, y, z) chunk
            return late(real, self, key, value)
        return real(self, key, value)

    monkeypatch.setattr(netCDF4_.BaseNetCDF4Array, "__setitem__", setitem)
    err = _run_late(lambda: lazy_batch.coact.to_netcdf(tmp_path / "b.nc", overwrite=True), folder, late)
    assert str(tmp_path / "b.nc") in str(err) and "No space left" in str(err)
    assert late.late_error is not None  # it could not write into the removed file
