"""Permission errors from the file system itself, not from a patched ``os.access``.

Tests (and CI) run as root, whom file modes do not stop.  So the files are
made here, with modes that stop every other user (0o000 files, 0o555
directories), and the call that must fail runs in a forked child process
that first drops to the unprivileged user ``nobody`` (uid 65534) with
``os.setuid`` (as any other user the child keeps its user: those modes stop
it as well).  Forking, not starting a new interpreter: ``nobody`` may not
enter the interpreter's own directory here (/root).  The child first proves
the denial is real - a plain ``os.open`` gets ``EACCES`` - then reports the
exception xcoact raised, which the test pins; the same call run as root
beforehand succeeds (and imports everything the child needs).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile

import dask
import pytest

import xcoact

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
NOBODY = 65534


def _denied(path: str, flags: int) -> int | None:
    """The errno a plain ``os.open`` gets (None if it succeeds)."""
    try:
        os.close(os.open(path, flags, 0o644))
    except PermissionError as err:
        return err.errno
    return None


def _as_nobody(call, probe: str, flags: int) -> dict:
    """Run ``call()`` in a forked child that is not root; return what it raised and what ``os.open(probe)`` got."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 0
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            out = {"uid": os.geteuid(), "errno": _denied(probe, flags), "raised": None}
            try:
                with dask.config.set(scheduler="synchronous"):  # a forked child has none of the parent's threads
                    call()
            except Exception as err:
                out.update(raised=type(err).__name__, message=str(err), mro=[c.__name__ for c in type(err).__mro__])
            os.write(write_end, json.dumps(out).encode())
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the unprivileged child failed"
    result = json.loads(data)
    assert result["uid"] != 0, "the child still runs as root: file modes would not stop it"
    return result


@pytest.fixture
def workdir():
    """A directory the unprivileged child can enter (pytest's own tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="xcoact-permissions-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def maps():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    return act.coact.seed([[0, 20, 28]], r=10, threshold=0.1)


def _unreadable_copy(source: str, path: str) -> str:
    shutil.copyfile(source, path)
    os.chmod(path, 0o000)
    return path


def test_database_without_read_permission(workdir):
    path = _unreadable_copy(xcoact.datasets.sample_database_path(), os.path.join(workdir, "database.txt"))
    with pytest.warns(xcoact.errors.SpaceWarning):
        assert xcoact.read_database(path).attrs["n_studies"] == 100  # root reads it
    got = _as_nobody(lambda: xcoact.read_database(path), path, os.O_RDONLY)
    assert got["errno"] == errno.EACCES
    assert got["raised"] == "DatabaseFileError" and {"OSError", "ValueError", "XcoactError"} <= set(got["mro"])
    assert (
        got["message"]
        == f"{path}: not readable (permission denied); give yourself read access (chmod u+r) or copy the file."
    )


def test_features_without_read_permission(workdir):
    path = _unreadable_copy(
        os.path.join(ROOT, "tests", "data", "neurosynth_sample_features.txt"), os.path.join(workdir, "features.txt")
    )
    assert xcoact.read_features(path).sizes["term"] == 3
    got = _as_nobody(lambda: xcoact.read_features(path), path, os.O_RDONLY)
    assert got["errno"] == errno.EACCES
    assert got["raised"] == "DatabaseFileError" and "OSError" in got["mro"]
    assert got["message"] == f"{path}: not readable (permission denied); give yourself read access (chmod u+r)."


def _read_only_dir(workdir: str, name: str) -> str:
    folder = os.path.join(workdir, name)
    os.mkdir(folder)
    os.chmod(folder, 0o555)
    return folder


def test_database_output_directory_without_write_permission(workdir):
    table = xcoact.datasets.synthetic(3, seed=0)
    xcoact.write_database(table, os.path.join(workdir, "as_root.txt"))  # root writes here
    folder = _read_only_dir(workdir, "out")
    got = _as_nobody(
        lambda: xcoact.write_database(table, os.path.join(folder, "database.txt")),
        os.path.join(folder, "probe"),
        os.O_WRONLY | os.O_CREAT,
    )
    assert got["errno"] == errno.EACCES
    assert got["raised"] == "OutputError" and "OSError" in got["mro"]
    assert (
        got["message"]
        == f"{folder}: output directory is not writable; choose another outroot, or give yourself write access to it."
    )
    assert os.listdir(folder) == []


def test_nifti_maps_into_a_directory_without_write_permission(workdir, maps):
    assert len(maps.coact.to_nifti(os.path.join(workdir, "as_root"), names=["pFgA"])) == 1
    folder = _read_only_dir(workdir, "maps")
    got = _as_nobody(
        lambda: maps.coact.to_nifti(os.path.join(folder, "dacc"), names=["pFgA"]),
        os.path.join(folder, "probe"),
        os.O_WRONLY | os.O_CREAT,
    )
    assert got["errno"] == errno.EACCES
    assert got["raised"] == "OutputError", got
    assert got["message"].startswith(f"{folder}: output directory is not writable"), got["message"]
    assert os.listdir(folder) == []
