"""No output is replaced without ``overwrite``, and one run's outputs land together or not at all (issue 11).

docs/reliability.md, "Outputs are never clobbered". Every situation here is a
real one: a file written by another process (or another thread) between the
call and the final rename, a second CLI run on the same outroot, a folder
that a real kernel refuses to write (a read-only tmpfs mounted in a private
mount namespace), a file-size limit (``RLIMIT_FSIZE``) hit half-way, a
broken symbolic link at the target.  The messages are pinned here.

The moment "between the check and the final rename" is reached with Dask's
own scheduler callbacks (``dask.callbacks.Callback``): the other writer runs
when the maps start being computed, after every check has passed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings

import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

import xcoact
import xcoact.writers as export
from xcoact.errors import OutputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(xcoact.__file__)))
SEED = [[0, 20, 28]]
CLI_SEED = ["coactivation", "--seed", "0,20,28", "--r", "10", "--threshold", "0.1"]


def appeared(path) -> str:
    """The pinned message for an output that appeared between the check and the final rename, as a regex."""
    return re.escape(appeared_text(path))


def appeared_text(path) -> str:
    return (
        f"{path} appeared while the outputs were being computed or written (another run or program created it "
        "after the check); it was kept, and nothing was written. Pass overwrite=True (--overwrite on the command "
        "line) to replace it, or choose another path."
    )


@pytest.fixture
def maps(sample_cube):
    """The dACC seed's maps, lazy: writing them computes them."""
    return sample_cube.coact.seed(SEED, r=10, threshold=0.1)


@pytest.fixture(scope="module")
def other():
    """Another seed's maps, computed: what a second run writes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)
        return act.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1).compute()


def _tree(root) -> dict[str, str]:
    """Every path under ``root`` (relative) -> what it is: a file's bytes' sha256, 'dir', or 'link -> target'."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "link -> " + os.readlink(path)
            elif os.path.isdir(path):
                out[rel] = "dir"
            else:
                with open(path, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _sha(data: bytes) -> str:
    """How :func:`_tree` shows a file holding ``data``."""
    return hashlib.sha256(data).hexdigest()


def _hidden(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))  # temporary outputs sit beside their targets


class _Once:
    """A Dask callback that runs ``action`` once, when the ``at``-th computation of maps starts (after every check)."""

    def __init__(self, action, at: int = 1):
        self.action, self.at, self.fired, self.starts = action, at, 0, 0

    def __call__(self, dsk):
        if any(part in str(key) for key in dsk for part in ("_block_scores", "_all_scores", "seed-study")):
            return  # the seed's selection (per-study scores, computed at the call; a batch's rows), not the maps
        self.starts += 1
        if self.starts == self.at:
            self.fired += 1
            self.action()

    def callback(self):
        return Callback(start=self)


def _in_another_process(code: str, *args: str) -> None:
    """Run Python ``code`` in a new process (sys.argv[1:] = args) and wait for it."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0, proc.stderr


_WRITE_BYTES = "import sys; open(sys.argv[1], 'xb').write(sys.argv[2].encode())"


# --------------------------------------------------------------------------- item 6: the final rename never replaces


def test_nifti_compute_false_keeps_a_file_another_process_wrote_before_compute(maps, tmp_path):
    root = tmp_path / "c"
    task = maps.coact.to_nifti(root, compute=False)  # every check passes now
    target = f"{root}_pFgA.nii.gz"
    _in_another_process(_WRITE_BYTES, target, "another run's map")
    with pytest.raises(OutputError, match="^" + appeared(target) + "$") as info:
        task.compute()
    assert isinstance(info.value.__cause__, FileExistsError)
    # that file is untouched, and none of the nine maps landed (no temporary file either)
    assert _tree(tmp_path) == {"c_pFgA.nii.gz": _sha(b"another run's map")}


def test_batch_nifti_keeps_a_file_written_while_the_seeds_are_computed(sample_cube, tmp_path):
    batch = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1, separate=True, dtype="float32")
    target = f"{tmp_path / 'b'}_-40_20_28_pA.nii.gz"
    hook = _Once(lambda: _in_another_process(_WRITE_BYTES, target, "theirs"))
    with hook.callback(), pytest.raises(OutputError, match="^" + appeared(target) + "$"):
        batch.coact.to_nifti(tmp_path / "b", seeds_per_pass=1)
    assert hook.fired
    assert _tree(tmp_path) == {os.path.basename(target): _sha(b"theirs")}


def test_netcdf_keeps_a_file_written_while_the_maps_are_computed(maps, tmp_path):
    path = tmp_path / "maps.nc"
    hook = _Once(lambda: _in_another_process(_WRITE_BYTES, str(path), "not netCDF, and not ours to replace"))
    with hook.callback(), pytest.raises(OutputError, match="^" + appeared(path) + "$"):
        maps.coact.to_netcdf(path)
    assert hook.fired
    assert _tree(tmp_path) == {"maps.nc": _sha(b"not netCDF, and not ours to replace")}


def test_zarr_keeps_a_store_another_thread_wrote_meanwhile(maps, other, tmp_path):
    path = tmp_path / "maps.zarr"

    def write_theirs():
        # a real second writer in another thread, finishing before ours places its store
        t = threading.Thread(target=lambda: other.coact.to_zarr(path))
        t.start()
        t.join()

    hook = _Once(write_theirs)
    with hook.callback(), pytest.raises(OutputError, match="^" + appeared(path) + "$"):
        maps.coact.to_zarr(path)
    assert hook.fired
    assert sorted(os.listdir(tmp_path)) == ["maps.zarr"]  # no temporary store, no moved-aside copy
    with xr.open_zarr(path) as back:
        assert back.attrs["seed"] == other.attrs["seed"]  # theirs, intact


@pytest.mark.parametrize("what", ["empty directory", "file", "broken link"])
@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "fallback"])
def test_zarr_never_renames_onto_what_appeared(what, renameat2, maps, tmp_path, monkeypatch):
    """POSIX rename() onto an *empty* directory succeeds: the store must not land there either."""
    if not renameat2:
        monkeypatch.setattr(export, "_renameat2", lambda: None)  # as on a kernel or libc without it
    path = tmp_path / "maps.zarr"
    make = {
        "empty directory": os.mkdir,
        "file": lambda p: open(p, "x").close(),
        "broken link": lambda p: os.symlink("nowhere", p),
    }[what]
    hook = _Once(lambda: make(path))
    shown = f"{path} (a broken symbolic link to 'nowhere')" if what == "broken link" else path
    with hook.callback(), pytest.raises(OutputError, match="^" + appeared(shown) + "$"):
        maps.coact.to_zarr(path)
    expected = {"empty directory": "dir", "file": _sha(b""), "broken link": "link -> nowhere"}[what]
    assert _tree(tmp_path) == {"maps.zarr": expected}


@pytest.mark.parametrize("no_link", ["renameat2", "claim"])
def test_files_are_not_replaced_on_file_systems_without_hard_links(no_link, maps, tmp_path, monkeypatch):
    import errno

    def link(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted (a file system without hard links)")

    monkeypatch.setattr(os, "link", link)
    if no_link == "claim":
        monkeypatch.setattr(export, "_renameat2", lambda: None)
    task = maps.coact.to_nifti(tmp_path / "c", compute=False)
    target = f"{tmp_path / 'c'}_pA.nii.gz"
    _in_another_process(_WRITE_BYTES, target, "first")
    with pytest.raises(OutputError, match="^" + appeared(target) + "$"):
        task.compute()
    assert _tree(tmp_path) == {"c_pA.nii.gz": _sha(b"first")}
    os.remove(target)
    files = maps.coact.to_nifti(tmp_path / "c")  # and without a race the fallback writes every map
    expected = sorted(n for f in files for n in (os.path.basename(f), os.path.basename(f)[: -len(".nii.gz")] + ".json"))
    assert sorted(os.listdir(tmp_path)) == expected and len(files) == 9  # each map with its JSON sidecar


def test_write_atomically_without_overwrite_keeps_a_file_that_appeared(tmp_path):
    target = tmp_path / "table.txt"

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write("ours")
        _in_another_process(_WRITE_BYTES, str(target), "theirs")  # while ours is still under its temporary name

    with pytest.raises(OutputError, match="^" + appeared(target) + "$"):
        export.write_atomically({str(target): write}, overwrite=False)
    assert _tree(tmp_path) == {"table.txt": _sha(b"theirs")}


@pytest.mark.parametrize("writer", ["nifti", "netcdf", "zarr", "database", "png", "html"])
def test_a_broken_symbolic_link_is_an_existing_output(writer, maps, tmp_path):
    name = {
        "nifti": "c_pA.nii.gz",
        "netcdf": "maps.nc",
        "zarr": "maps.zarr",
        "database": "db.txt",
        "png": "maps.png",
        "html": "report.html",
    }[writer]
    os.symlink(tmp_path / "elsewhere", tmp_path / name)
    write = {
        "nifti": lambda: maps.coact.to_nifti(tmp_path / "c"),
        "netcdf": lambda: maps.coact.to_netcdf(tmp_path / name),
        "zarr": lambda: maps.coact.to_zarr(tmp_path / name),
        "database": lambda: xcoact.write_database(xcoact.datasets.synthetic(5, seed=1), tmp_path / name),
        "png": lambda: _to_png(_figure(), tmp_path / name),
        "html": lambda: _report(maps, tmp_path / name),
    }[writer]
    with pytest.raises(OutputError, match="already exist") as info:
        write()
    assert str(tmp_path / name) in str(info.value)
    if writer in ("nifti", "netcdf", "zarr"):
        assert f"(a broken symbolic link to '{tmp_path / 'elsewhere'}')" in str(info.value)
    assert _tree(tmp_path) == {
        name: f"link -> {tmp_path / 'elsewhere'}"
    }  # the link is kept, nothing written through it


def _report(ds, path):
    from xcoact.report import report

    return report(ds, path)


def _to_png(fig, path):
    from xcoact.plot import to_png

    return to_png(fig, path)


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1])
    return fig


# --------------------------------------------------------------------------- item 6 and 7: the command line


def _cli(*args: str, cwd=None, prefix: list[str] | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    """``xcoact`` in a new process (optionally under ``prefix``, e.g. unshare, or as a ``-c`` script)."""
    cmd = [sys.executable, "-m", "xcoact.cli", *args] if code is None else [sys.executable, "-c", code, *args]
    return subprocess.run(
        [*(prefix or []), *cmd],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": ROOT},
    )


def test_two_cli_runs_on_one_outroot_the_second_fails_and_replaces_nothing(tmp_path, capsys):
    from xcoact.cli import main

    root = tmp_path / "run"
    args = [
        *CLI_SEED,
        "--outroot",
        str(root),
        "--netcdf",
        str(tmp_path / "run.nc"),
        "--zarr",
        str(tmp_path / "run.zarr"),
    ]
    second: dict = {}

    def run_the_other():
        # the other run starts after this run's last check and finishes before this run places anything
        proc = _cli(*args, "--threshold", "0.05")
        second["code"], second["err"], second["tree"] = proc.returncode, proc.stderr, _tree(tmp_path)

    # the 1st computation is of the maps; the 2nd stacks them for the NIfTI files, after every check
    hook = _Once(run_the_other, at=2)
    with hook.callback():
        code = main(args)
    assert second["code"] == 0, second["err"]
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "xcoact: error: " + appeared_text(f"{root}_pA.nii.gz")
    # every output of the other run is as it wrote it, and this run left nothing, not even a temporary file
    assert _tree(tmp_path) == second["tree"]
    assert len([n for n in second["tree"] if n.endswith(".nii.gz")]) == 9
    with xr.open_dataset(tmp_path / "run.nc") as nc, xr.open_zarr(tmp_path / "run.zarr") as store:
        assert nc.attrs["threshold"] == store.attrs["threshold"] == 0.05


@pytest.mark.parametrize(
    "clash, message",
    [
        (
            ["--netcdf", "{root}_pFgA.nii.gz"],
            "{root}_pFgA.nii.gz: the same path is given for two outputs (the NIfTI map 'pFgA' and --netcdf); give each "
            "output its own path.",
        ),
        (
            ["--netcdf", "{tmp}/maps", "--zarr", "{tmp}/maps"],
            "{tmp}/maps: the same path is given for two outputs (--netcdf and --zarr); give each output its own path.",
        ),
        (
            ["--zarr", "{root}.png", "--plot"],
            "{root}.png: the same path is given for two outputs (--zarr and --plot's PNG); give each output its own path.",
        ),
        (
            ["--zarr", "{tmp}/maps.zarr", "--netcdf", "{tmp}/maps.zarr/x.nc"],
            "{tmp}/maps.zarr/x.nc (--netcdf) lies inside the Zarr store of --zarr; write it beside the store instead.",
        ),
        (
            ["--netcdf", "{tmp}/missing/deeper/x.nc"],
            "{tmp}/missing/deeper: output directory does not exist; create it first (mkdir -p {tmp}/missing/deeper).",
        ),
        (
            ["--zarr", "{tmp}/nodir/x.zarr"],
            "{tmp}/nodir: output directory does not exist; create it first (mkdir -p {tmp}/nodir).",
        ),
        (
            ["--outroot", "{tmp}/no dir/x"],
            "{tmp}/no dir: output directory does not exist; create it first (mkdir -p '{tmp}/no dir').",
        ),
    ],
)
def test_cli_checks_every_output_before_computing(clash, message, tmp_path, capsys):
    from xcoact.cli import main

    root = tmp_path / "run"
    fill = {"root": str(root), "tmp": str(tmp_path)}
    args = [*CLI_SEED, "--outroot", str(root), *[a.format(**fill) for a in clash]]
    hook = _Once(lambda: None)
    with hook.callback():
        assert main(args) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"xcoact: error: {message.format(**fill)}"
    assert hook.starts == 0, "the maps were computed before the error"
    assert os.listdir(tmp_path) == []


def test_cli_checks_the_fwe_maps_before_the_permutations_run(tmp_path, capsys):
    from xcoact.cli import main

    root = tmp_path / "f"
    taken = f"{root}_association-test_z_FWE-cluster-mass_0.05.nii.gz"
    open(taken, "x").close()
    assert main([*CLI_SEED, "--outroot", str(root), "--fwe", "20", "--fwe-seed", "1"]) == 2
    out, err = capsys.readouterr()
    assert "FWE:" not in out  # refused before the permutations ran
    assert err.splitlines()[-1] == (
        f"xcoact: error: 1 output file(s) already exist (e.g. {taken}); pass --overwrite "
        "to replace them, or choose another path."
    )
    os.remove(taken)
    # the names checked are the names written
    assert main([*CLI_SEED, "--outroot", str(root), "--fwe", "20", "--fwe-seed", "1"]) == 0
    written = set(os.listdir(tmp_path))
    from xcoact.cli import _fwe_map_names

    expected = {f"f_{n}{ext}" for n in xcoact.map_names() + _fwe_map_names(20) for ext in (".nii.gz", ".json")}
    assert written == expected  # each map with its JSON sidecar


#: limit the child's file size (the netCDF file is 67 MB, each NIfTI map about 140 kB), then run the CLI
_FSIZE = (
    "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000)); "
    "from xcoact.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("earlier", [False, True], ids=["fresh", "overwrite"])
def test_cli_outputs_land_together_or_not_at_all_on_a_file_size_limit(earlier, other, tmp_path):
    """The kernel refuses the netCDF file half-way: the NIfTI maps, written and complete, must not land alone,
    and with --overwrite every earlier output stays as it was."""
    if earlier:
        export.write_outputs(other, nifti=tmp_path / "run", netcdf=tmp_path / "run.nc")
    before = _tree(tmp_path)
    args = [*CLI_SEED, "--outroot", str(tmp_path / "run"), "--netcdf", str(tmp_path / "run.nc")]
    proc = _cli(*args, *(["--overwrite"] if earlier else []), code=_FSIZE)
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr.splitlines()[-1]
    assert error.startswith(f"xcoact: error: {tmp_path / 'run.nc'}: writing netCDF failed"), proc.stderr
    assert "nothing was written" in error
    assert _tree(tmp_path) == before
    assert len(before) == (19 if earlier else 0)  # 9 maps, their 9 sidecars and the netCDF file


#: mount a read-only tmpfs on $1 in the child's own mount namespace, then run the CLI there
_READ_ONLY = 'ro="$1"; py="$2"; shift 2; mount -t tmpfs -o ro,size=1m xcoact-ro "$ro" && exec "$py" -m xcoact.cli "$@"'
_NAMESPACES = (
    ["unshare", "--mount", "--propagation", "private"],
    ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"],
)


def _read_only_command(ro: str) -> list[str]:
    """The command prefix that runs ``xcoact.cli`` with ``ro`` refused by the kernel.

    Not root: ``chmod 555`` is enough.  Root writes through any mode, so the
    folder becomes a read-only tmpfs in the child's private mount namespace
    (``EROFS`` even for root).  Neither possible: the test fails and says why.
    """
    if os.geteuid() != 0:
        os.chmod(ro, 0o555)
        return [sys.executable, "-m", "xcoact.cli"]
    why = []
    if shutil.which("unshare") is None:
        why.append("the unshare program (util-linux) is not installed")
    else:
        for prefix in _NAMESPACES:
            proc = subprocess.run(
                [*prefix, "sh", "-c", 'mount -t tmpfs -o ro,size=1m xcoact-probe "$1"', "sh", ro],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                return [*prefix, "sh", "-c", _READ_ONLY, "sh", ro, sys.executable]
            why.append(f"{' '.join(prefix)}: {proc.stderr.strip() or proc.returncode}")
    pytest.fail(
        "running as root, and cannot mount a read-only tmpfs in a private mount namespace, so a folder the "
        f"kernel refuses to write cannot be made ({'; '.join(why)}). It needs `unshare` and the right to "
        "mount; chmod is no test under root, who writes anyway.",
        pytrace=False,
    )


def test_cli_zarr_in_a_read_only_folder_is_refused_before_anything_is_written(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    args = [*CLI_SEED, "--outroot", str(out / "run"), "--zarr", str(ro / "run.zarr")]
    try:
        proc = subprocess.run(
            [*_read_only_command(str(ro)), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
    finally:
        os.chmod(ro, 0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"xcoact: error: {ro}: output directory is not writable; choose another outroot, or give "
        "yourself write access to it.\n"
    )
    assert "studies in the database" not in proc.stdout  # found before the database was even read
    assert _tree(tmp_path) == {"ro": "dir", "out": "dir"}


# --------------------------------------------------------------------------- item 7: the API


def test_write_outputs_checks_every_output_first_with_a_python_hint(maps, tmp_path):
    hook = _Once(lambda: None)
    with hook.callback(), pytest.raises(OutputError) as info:
        export.write_outputs(maps, nifti=tmp_path / "c", netcdf=tmp_path / "nodir" / "c.nc")
    assert str(info.value) == (
        f"{tmp_path / 'nodir'}: output directory does not exist; create it first "
        f"(e.g. os.makedirs({str(tmp_path / 'nodir')!r}))."
    )
    assert hook.starts == 0 and os.listdir(tmp_path) == []
    with pytest.raises(
        OutputError,
        match=re.escape(
            f"{tmp_path / 'c.zarr'}: the same path is given for two outputs (the netCDF file and the Zarr store)"
        ),
    ):
        export.write_outputs(maps, netcdf=tmp_path / "c.zarr", zarr=tmp_path / "c.zarr")


def test_write_outputs_takes_back_what_it_placed_when_a_later_output_appeared(maps, other, tmp_path):
    store = tmp_path / "c.zarr"
    hook = _Once(lambda: os.mkdir(store))
    with hook.callback(), pytest.raises(OutputError, match="^" + appeared(store) + "$"):
        export.write_outputs(maps, nifti=tmp_path / "c", netcdf=tmp_path / "c.nc", zarr=store)
    # the nine maps and the netCDF file were placed before the store's rename was refused: all taken back
    assert _tree(tmp_path) == {"c.zarr": "dir"}
    os.rmdir(store)
    files = export.write_outputs(maps, nifti=tmp_path / "c", netcdf=tmp_path / "c.nc", zarr=store)
    assert len(files) == 11 and _hidden(tmp_path) == []


def test_write_outputs_with_overwrite_restores_every_earlier_output(maps, other, tmp_path):
    export.write_outputs(other, nifti=tmp_path / "c", netcdf=tmp_path / "c.nc", zarr=tmp_path / "c.zarr")
    state: dict = {}

    def swap_store():
        # after the checks, the store is replaced by a directory that is no Zarr store
        shutil.rmtree(tmp_path / "c.zarr")
        os.mkdir(tmp_path / "c.zarr")
        (tmp_path / "c.zarr" / "notes.txt").write_text("mine")
        state.update(_tree(tmp_path))

    hook = _Once(swap_store)
    with (
        hook.callback(),
        pytest.raises(
            OutputError,
            match="^"
            + re.escape(
                f"{tmp_path / 'c.zarr'}: is not a Zarr store (it appeared after the check); overwrite replaces only an "
                "earlier Zarr store. Remove it yourself, or choose another path."
            )
            + "$",
        ),
    ):
        export.write_outputs(
            maps, nifti=tmp_path / "c", netcdf=tmp_path / "c.nc", zarr=tmp_path / "c.zarr", overwrite=True
        )
    assert len([n for n in state if n.endswith(".nii.gz")]) == 9
    # the nine maps and the netCDF file had been replaced when the store was refused: all are restored
    assert _tree(tmp_path) == state


def test_zarr_overwrite_refuses_what_is_not_a_zarr_store(maps, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(
        OutputError,
        match="^"
        + re.escape(
            f"{folder}: is a directory that is not a Zarr store; overwrite replaces only an earlier Zarr store (a "
            "directory with .zgroup or .zarray or .zmetadata or zarr.json). Remove it yourself, or choose another "
            "path."
        )
        + "$",
    ):
        maps.coact.to_zarr(folder, overwrite=True)
    (tmp_path / "f.zarr").write_text("a file")
    with pytest.raises(OutputError, match=re.escape(f"{tmp_path / 'f.zarr'}: is a file, not a Zarr store;")):
        maps.coact.to_zarr(tmp_path / "f.zarr", overwrite=True)
    assert _tree(tmp_path) == {
        "results": "dir",
        os.path.join("results", "thesis.tex"): _sha(b"years of work"),
        "f.zarr": _sha(b"a file"),
    }


def test_netcdf_and_nifti_overwrite_refuse_a_directory(maps, tmp_path):
    (tmp_path / "maps.nc").mkdir()
    with pytest.raises(
        OutputError,
        match="^"
        + re.escape(
            f"{tmp_path / 'maps.nc'}: is a directory, and the netCDF file is a file; overwrite replaces only a file "
            "there. Remove the directory yourself, or choose another path."
        )
        + "$",
    ):
        maps.coact.to_netcdf(tmp_path / "maps.nc", overwrite=True)
    (tmp_path / "c_pA.nii.gz").mkdir()
    with pytest.raises(OutputError, match=re.escape("c_pA.nii.gz: is a directory, and the NIfTI map 'pA' is a file")):
        maps.coact.to_nifti(tmp_path / "c", overwrite=True)
    assert _tree(tmp_path) == {"maps.nc": "dir", "c_pA.nii.gz": "dir"}


@pytest.mark.parametrize("earlier", ["store", "link to a store"])
def test_zarr_overwrite_leaves_no_trash(earlier, maps, other, tmp_path):
    path = tmp_path / "maps.zarr"
    if earlier == "store":
        other.coact.to_zarr(path)
    else:
        other.coact.to_zarr(tmp_path / "kept.zarr")
        os.symlink(tmp_path / "kept.zarr", path)
    maps.coact.to_zarr(path, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == (["maps.zarr"] if earlier == "store" else ["kept.zarr", "maps.zarr"])
    assert not os.path.islink(path)
    with xr.open_zarr(path) as back:
        assert back.attrs["seed"] == maps.attrs["seed"]
    if earlier != "store":
        with xr.open_zarr(tmp_path / "kept.zarr") as kept:  # replacing the link left what it pointed to alone
            assert kept.attrs["seed"] == other.attrs["seed"]


def test_overwrite_true_replaces_a_broken_link_not_its_target(maps, tmp_path):
    os.symlink(tmp_path / "elsewhere.nc", tmp_path / "maps.nc")
    maps.coact.to_netcdf(tmp_path / "maps.nc", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["maps.nc"] and not os.path.islink(tmp_path / "maps.nc")


# --------------------------------------------------------------------------- item 8: attributes of any valid parameter


def test_batch_with_a_threshold_beyond_int64_writes_netcdf_and_zarr(sample_cube, tmp_path):
    batch = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=10**30, separate=True, dtype="float32")
    assert batch.attrs["threshold"] == 10**30
    nc = batch.coact.to_netcdf(tmp_path / "b.nc")
    store = batch.coact.to_zarr(tmp_path / "b.zarr")
    with xr.open_dataset(nc) as a, xr.open_zarr(store) as b:
        # beyond int64: its exact decimal text, the same in both formats
        assert a.attrs["threshold"] == b.attrs["threshold"] == "1000000000000000000000000000000"
        assert a.attrs["n_seeds"] == b.attrs["n_seeds"] == 2
    assert batch.attrs["threshold"] == 10**30  # the caller's Dataset is unchanged


def test_numpy_scalars_and_other_attribute_values_are_stored(maps, tmp_path):
    ds = maps[["pA"]].compute()
    ds.attrs = {
        "f32": np.float32(1.5),
        "i64": np.int64(-3),
        "u64": np.uint64(2**64 - 1),
        "flag": np.bool_(True),
        "yes": True,
        "none": None,
        "huge": -(10**40),
        "ints": [1, 2, 3],
        "mixed": [1, "a", None],
        "arr": np.array([0.5, 1.5], dtype=np.float32),
        "nested": {"a": 1},
        "name": np.str_("x"),
    }
    ds["pA"].attrs["scale"] = np.float64(2.0)
    ds["pA"].attrs["huge"] = 2**70
    expected = {
        "f32": 1.5,
        "i64": -3,
        "u64": "18446744073709551615",
        "flag": 1,
        "yes": 1,
        "none": "None",
        "huge": "-10000000000000000000000000000000000000000",
        "ints": [1, 2, 3],
        "mixed": '[1, "a", "None"]',
        "arr": [0.5, 1.5],
        "nested": "{'a': 1}",
        "name": "x",
    }
    nc = ds.coact.to_netcdf(tmp_path / "a.nc")
    store = ds.coact.to_zarr(tmp_path / "a.zarr")
    with xr.open_dataset(nc) as a, xr.open_zarr(store) as b:
        for back in (a, b):
            got = {
                k: (np.asarray(v).tolist() if isinstance(v, (np.ndarray, list)) else v) for k, v in back.attrs.items()
            }
            assert got.pop("Conventions", "CF-1.8") == "CF-1.8"  # the netCDF writer adds CF's marker
            assert got == expected
            assert back["pA"].attrs["scale"] == 2.0 and back["pA"].attrs["huge"] == str(2**70)
    assert isinstance(ds.attrs["u64"], np.uint64)  # the caller's attrs are left as they were


def test_ordinary_results_keep_their_attributes_exactly(maps, sample_cube):
    batch = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1, separate=True)
    for ds in (maps, batch):
        stored = export._with_storable_attrs(ds)
        assert stored.attrs == ds.attrs
        for name, var in ds.variables.items():
            assert stored[name].attrs == var.attrs


def test_written_maps_are_the_computed_ones(maps, tmp_path):
    """The refactored writers still write the right numbers (one seed, every format at once)."""
    export.write_outputs(maps, nifti=tmp_path / "c", netcdf=tmp_path / "c.nc", zarr=tmp_path / "c.zarr")
    computed = maps.compute()
    for name in xcoact.map_names():
        got = np.asarray(nib.load(f"{tmp_path / 'c'}_{name}.nii.gz").dataobj)
        np.testing.assert_array_equal(got, computed[name].transpose("x", "y", "z").values.astype(np.float32))
    with xr.open_dataset(tmp_path / "c.nc") as a, xr.open_zarr(tmp_path / "c.zarr") as b:
        for name in xcoact.map_names():
            np.testing.assert_array_equal(a[name].values, computed[name].values)
            np.testing.assert_array_equal(b[name].values, computed[name].values)
