"""Result Datasets -> NIfTI, netCDF and Zarr outputs, all or nothing and without clobbering.

Every output of a call is checked first, written under a temporary name beside its target and renamed into
place only when all are written (docs/reliability.md, "Atomic outputs" and "Outputs are never clobbered").
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, get_args

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .choices import Compressor, MapDtype, Naming
from .errors import OutputError
from .space import affine_from_coords
from .validate import float_dtype

__all__ = [
    "to_nifti",
    "to_netcdf",
    "to_zarr",
    "write_outputs",
    "check_outputs",
    "to_volumes",
    "nifti_paths",
    "map_variables",
    "atomic_path",
]


def map_variables(ds: xr.Dataset) -> list[str]:
    """The map variables of a result Dataset (the float (x, y, z) or (seed, x, y, z) ones), in order."""
    return [
        str(n)
        for n, v in ds.data_vars.items()
        if set(v.dims) in ({"x", "y", "z"}, {"seed", "x", "y", "z"}, {"seed", "voxel"}) and v.dtype.kind == "f"
    ]


def _scatter(block: np.ndarray, flat: np.ndarray, shape: tuple, fill) -> np.ndarray:
    out = np.full((block.shape[0], int(np.prod(shape))), fill, dtype=block.dtype)
    out[:, flat] = block
    return out.reshape(block.shape[0], *shape)


def to_volumes(ds: xr.Dataset) -> xr.Dataset:
    """A ``layout="voxel"`` batch with its ``(seed, voxel)`` variables as ``(seed, x, y, z)`` (lazy).

    Each seed chunk is scattered into the grid on demand (0 / False outside
    the brain mask); a Dataset without a ``voxel`` dimension is returned as is.
    """
    if "voxel" not in ds.dims:
        return ds
    shape = tuple(ds.sizes[d] for d in "xyz")
    flat = ds["voxel"].values
    out = ds.drop_vars([n for n, v in ds.data_vars.items() if "voxel" in v.dims] + ["voxel"])
    for name, var in ds.data_vars.items():
        if "voxel" not in var.dims:
            continue
        data = da.asarray(var.transpose("seed", "voxel").data)
        data = data.rechunk({1: -1})
        fill = False if var.dtype == bool else 0
        vol = data.map_blocks(
            _scatter,
            flat,
            shape,
            fill,
            chunks=(data.chunks[0], *[(n,) for n in shape]),
            new_axis=[2, 3],
            dtype=var.dtype,
        )
        out[name] = (("seed", "x", "y", "z"), vol, var.attrs)
    out.attrs = {**ds.attrs, "layout": "volume"}
    return out


#: Maps whose file name is not their variable name: ALE's z map (NiMARE's "z") cannot be a variable "z" beside
#: the z coordinate, so it is "z_map" in a Dataset and "{outroot}_z.nii.gz" on disk.
FILE_NAMES = {"z_map": "z"}


def nifti_paths(outroot, names: Sequence[str]) -> dict[str, str]:
    """``{name: f"{outroot}_{name}.nii.gz"}``, Neurosynth's file naming (see :data:`FILE_NAMES`)."""
    root = os.fspath(outroot)
    return {n: f"{root}_{FILE_NAMES.get(n, n)}.nii.gz" for n in names}


def _check_target_dir(path: str, *, command_line: bool = False) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        if os.path.lexists(folder):
            raise OutputError(
                f"{folder}: is not a directory (a file or a broken link has that name); choose an "
                "output path inside a directory."
            )
        hint = f"mkdir -p {shlex.quote(folder)}" if command_line else f"e.g. os.makedirs({folder!r})"
        raise OutputError(f"{folder}: output directory does not exist; create it first ({hint}).")
    if not os.access(folder, os.W_OK):
        raise OutputError(
            f"{folder}: output directory is not writable; choose another outroot, or give yourself write access to it."
        )
    return folder


def _probe_writable(folder: str) -> None:
    """Create and remove a file in ``folder``: the kernel's answer, where ``os.access`` can be wrong
    (a read-only bind mount seen through some file systems, an immutable directory, network ACLs)."""
    probe = os.path.join(folder, f".xcoact-probe.{uuid.uuid4().hex[:12]}")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as err:
        raise OutputError(
            f"{folder}: output directory is not writable ({err.strerror}); choose another outroot, or give "
            "yourself write access to it."
        ) from err
    os.remove(probe)


def _check_folders(paths: Sequence[str], *, command_line: bool = False) -> None:
    """The folder of every path exists and takes a new file (each folder probed once)."""
    folders: dict[str, None] = {}
    for path in paths:
        folders.setdefault(_check_target_dir(path, command_line=command_line))
    for folder in folders:
        _probe_writable(folder)


#: what a Zarr store (format 2 or 3) holds at its top; a directory without any of them is no store
_ZARR_MARKERS = (".zgroup", ".zarray", ".zmetadata", "zarr.json")


def _is_zarr_store(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m)) for m in _ZARR_MARKERS)


def _describe_existing(path: str) -> str:
    """``path``, with what is there when that is not a plain file or directory (for messages)."""
    if os.path.islink(path) and not os.path.exists(path):
        return f"{path} (a broken symbolic link to {os.readlink(path)!r})"
    return path


def check_outputs(
    outputs: Sequence[tuple[str, str, str]],
    *,
    overwrite: bool,
    command_line: bool = False,
    existing_message: str | None = None,
) -> None:
    """Check every output of a write before anything is computed or written.

    Parameters
    ----------
    outputs : sequence of (path, kind, label)
        ``kind`` is ``"file"`` or ``"zarr"`` (a store directory); ``label``
        names the output in messages (e.g. ``"--netcdf"`` or ``"map 'pA'"``).
    overwrite : bool
        Whether existing outputs may be replaced.
    command_line : bool, default False
        Phrase hints for a shell user (``mkdir -p``, ``--overwrite``) rather
        than a Python one (``os.makedirs``, ``overwrite=True``).
    existing_message : str, optional
        The message for outputs that exist (``{n}``, ``{path}`` are filled in);
        a standard one by default.

    Raises
    ------
    OutputError
        Two outputs share a path (or one lies inside a Zarr store of another);
        a directory is missing, not a directory or not writable; an output
        exists and ``overwrite`` is False (a broken symbolic link counts); or
        ``overwrite`` is True and what is there is not of the output's kind
        (a directory where a file goes, anything but a Zarr store where a
        store goes).  Checked in that order, so the first message is the
        first thing to fix.
    """
    seen: dict[str, str] = {}
    stores: dict[str, str] = {}
    keys = []
    real = functools.lru_cache(maxsize=None)(os.path.realpath)  # a batch has thousands of files in a few folders
    for path, kind, label in outputs:
        folder = os.path.dirname(os.path.abspath(path))
        # the same file reached through a symlinked directory is the same output
        key = os.path.join(real(folder), os.path.basename(os.path.abspath(path)))
        if key in seen:
            raise OutputError(
                f"{path}: the same path is given for two outputs ({seen[key]} and {label}); give each "
                "output its own path."
            )
        seen[key] = label
        keys.append(key)
        if kind == "zarr":
            stores[key] = label
    for key, (path, _kind, label) in zip(keys, outputs):
        inside = [s for s in stores if key.startswith(s + os.sep)]
        if inside:
            raise OutputError(
                f"{path} ({label}) lies inside the Zarr store of {stores[inside[0]]}; write it beside "
                "the store instead."
            )
    _check_folders([path for path, _, _ in outputs], command_line=command_line)
    flag = "--overwrite" if command_line else "overwrite=True (--overwrite on the command line)"
    existing = [path for path, _, _ in outputs if os.path.lexists(path)]
    if existing and not overwrite:
        if existing_message is None:
            existing_message = (
                "{path} already exists; pass " + flag + " to replace it, or choose another path."
                if len(outputs) == 1
                else "{n} output file(s) already exist (e.g. {path}); pass " + flag + " to replace them, or choose "
                "another path."
            )
        raise OutputError(existing_message.format(n=len(existing), path=_describe_existing(existing[0])))
    for path, kind, label in outputs:
        if not os.path.lexists(path) or (os.path.islink(path) and not os.path.exists(path)):
            continue  # nothing there, or a broken link: replacing the link loses nothing
        if kind == "file" and os.path.isdir(path):
            raise OutputError(
                f"{path}: is a directory, and {label} is a file; overwrite replaces only a file there. "
                "Remove the directory yourself, or choose another path."
            )
        if kind == "zarr" and not _is_zarr_store(path):
            what = "a directory that is not a Zarr store" if os.path.isdir(path) else "a file, not a Zarr store"
            raise OutputError(
                f"{path}: is {what}; overwrite replaces only an earlier Zarr store (a directory "
                f"with {' or '.join(_ZARR_MARKERS)}). Remove it yourself, or choose another path."
            )


def atomic_path(path: str, suffix: str = ".part") -> str:
    """A fresh temporary name in the target's directory (same filesystem, so rename is atomic).

    The file is created empty and exclusively, with mode ``0o666`` filtered by
    the umask (not :func:`tempfile.mkstemp`'s ``0o600``, which the renamed
    output would keep).
    """
    return _fresh_temp(
        path, suffix, "file", lambda tmp: os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    )


def _atomic_dir(path: str, suffix: str) -> str:
    """A fresh, empty directory beside ``path`` (same file system, so it can be renamed onto it)."""
    return _fresh_temp(path, suffix, "directory", os.mkdir)


def _fresh_temp(path: str, suffix: str, what: str, create) -> str:
    folder = _check_target_dir(path)
    prefix = os.path.join(folder, "." + os.path.basename(path) + ".")
    for _ in range(100):
        tmp = f"{prefix}{uuid.uuid4().hex[:12]}{suffix}"
        try:
            create(tmp)
        except FileExistsError:
            continue
        return tmp
    raise OutputError(f"{folder}: could not create a temporary {what} beside {os.path.basename(path)}.")


# --------------------------------------------------------------------------- placing without replacing

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
#: errnos that mean "this file system (or kernel) cannot do that", not "that failed"
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


@functools.cache
def _renameat2():
    """libc's ``renameat2`` (Linux 3.15+, glibc 2.28+), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _renameat2_noreplace(src: str, dst: str) -> bool:
    """Rename with ``RENAME_NOREPLACE``; False if the kernel or file system cannot (the caller falls back)."""
    fn = _renameat2()
    if fn is None:
        return False
    import ctypes

    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED and code != errno.EXDEV:
        return False
    raise OSError(code, os.strerror(code), src, None, dst)  # FileExistsError for EEXIST


def _place_noreplace(src: str, dst: str) -> None:
    """Give ``src`` the name ``dst`` unless anything (a broken link too) has that name: FileExistsError then.

    Check and rename are one step (a hard link, ``RENAME_NOREPLACE``, or a name claimed with ``O_EXCL`` /
    ``mkdir`` first), so a file that appears after any earlier check is never replaced.
    """
    if os.path.isdir(src) and not os.path.islink(src):
        if _renameat2_noreplace(src, dst):
            return
        os.mkdir(dst)
        try:
            os.rename(src, dst)
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.rmdir(dst)  # only while still empty, i.e. still our claim
            if isinstance(err, OSError) and err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                # someone put files into the claimed directory meanwhile: theirs now
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from err
            raise
        return
    try:
        os.link(src, dst)  # src is our own temporary file; link() never follows or replaces dst
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in _UNSUPPORTED:
            raise
        if _renameat2_noreplace(src, dst):
            return
        os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        claim = _identity(dst)
        try:
            os.replace(src, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                if _identity(dst) == claim:
                    os.remove(dst)
            raise
        return
    os.remove(src)


def _identity(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


def _appeared_error(path: str, err: BaseException) -> OutputError:
    new = OutputError(
        f"{_describe_existing(path)} appeared while the outputs were being computed or written (another run or "
        "program created it after the check); it was kept, and nothing was written. Pass overwrite=True "
        "(--overwrite on the command line) to replace it, or choose another path."
    )
    new.__cause__ = err
    return new


class _Entry:
    """One staged output: ``source`` (a temporary file or store) to be renamed to ``target``."""

    __slots__ = ("backup", "container", "is_dir", "placed", "source", "target")

    def __init__(self, target: str, source: str, is_dir: bool, container: str | None):
        self.target, self.source, self.is_dir, self.container = target, source, is_dir, container
        self.backup: str | None = None
        self.placed: tuple[int, int] | None = None


class _OutputGroup:
    """Outputs written under temporary names beside their targets, then placed all together or not at all.

    With ``overwrite`` earlier outputs are set aside first and restored if a later rename fails; leaving the
    context on an error discards every temporary output.
    """

    def __init__(self, *, overwrite: bool = False):
        self.overwrite = bool(overwrite)
        self.entries: list[_Entry] = []
        self.current: str | None = None

    def __enter__(self) -> _OutputGroup:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()

    def _check_new(self, path: str) -> None:
        self.current = path
        if any(e.target == path for e in self.entries):
            raise OutputError(f"{path}: the same file would be written twice; give each output its own name.")

    def add_file(self, path: str, write, suffix: str = ".part") -> None:
        """Write a file through ``write(tmp_path)``, to be placed at ``path``."""
        self._check_new(path)
        tmp = atomic_path(path, suffix=suffix)
        self.entries.append(_Entry(path, tmp, False, None))
        try:
            write(tmp)
        except BaseException as err:
            raise _reraise(err, path)

    def add_tree(self, path: str, source: str, container: str | None = None) -> None:
        """Adopt a temporary output already written (a store directory, or a file inside ``container``)."""
        self._check_new(path)
        self.entries.append(_Entry(path, source, os.path.isdir(source), container))

    def commit(self) -> list[str]:
        """Place every output; on any failure the directory is as it was and the error is raised."""
        try:
            for e in self.entries:
                self.current = e.target
                if self.overwrite:
                    self._set_aside(e)
                    if e.is_dir:
                        _place_noreplace(e.source, e.target)  # the old store is out of the way
                    else:
                        os.replace(e.source, e.target)
                else:
                    _place_noreplace(e.source, e.target)
                e.placed = _identity(e.target)
        except BaseException as err:
            self._roll_back()
            self.discard()
            # (current is set: the error came from placing an entry)
            if isinstance(err, FileExistsError) and not self.overwrite and self.current is not None:
                raise _appeared_error(self.current, err)
            raise _reraise(err, self.current)
        for e in self.entries:
            if e.backup is not None:
                _remove_tree(e.backup)
            if e.container is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(e.container)
        paths = [e.target for e in self.entries]
        self.entries.clear()
        return paths

    def _set_aside(self, e: _Entry) -> None:
        if not os.path.lexists(e.target):
            return
        # checked before computing, but it may have appeared since: never move a user's directory away
        if e.is_dir and os.path.exists(e.target) and not _is_zarr_store(e.target):
            raise OutputError(
                f"{e.target}: is not a Zarr store (it appeared after the check); overwrite replaces "
                "only an earlier Zarr store. Remove it yourself, or choose another path."
            )
        if not e.is_dir and os.path.isdir(e.target):
            raise OutputError(
                f"{e.target}: is a directory (it appeared after the check); overwrite replaces only a "
                "file there. Remove the directory yourself, or choose another path."
            )
        if e.is_dir:
            e.backup = _fresh_name(e.target, ".old")
            os.rename(e.target, e.backup)  # a store, or a link (the link moves, not what it points to)
        else:
            # a second name for the file: it stays in place until the new one replaces it in one step
            e.backup = _fresh_name(e.target, ".bak")
            try:
                if os.path.islink(e.target):
                    # the link itself, not what it points to (linkat without AT_SYMLINK_FOLLOW)
                    os.link(e.target, e.backup, follow_symlinks=False)
                else:
                    os.link(e.target, e.backup)
            except (OSError, NotImplementedError):
                shutil.copy2(e.target, e.backup, follow_symlinks=False)  # file systems without hard links

    def _roll_back(self) -> None:
        """Take back what :meth:`commit` placed and put every earlier output back where it was."""
        for e in reversed(self.entries):
            try:
                if e.placed is not None and os.path.lexists(e.target) and _identity(e.target) == e.placed:
                    if e.backup is not None and not e.is_dir:
                        os.replace(e.backup, e.target)  # the earlier file is back in one step
                        e.backup = None
                    else:
                        os.rename(e.target, e.source)  # ours again under its temporary name, for discard()
                if e.backup is not None and not os.path.lexists(e.target):
                    os.rename(e.backup, e.target)  # the store (or link) moved aside
                    e.backup = None
                if e.backup is not None and not e.is_dir:
                    _remove_tree(e.backup)  # a second name of a file that never left its place
                    e.backup = None
            except OSError:  # pragma: no cover - best effort: a backup that could not go back stays, hidden
                pass
            e.placed = None

    def discard(self) -> None:
        """Remove every temporary output still staged."""
        for e in self.entries:
            _remove_tree(e.container if e.container is not None else e.source)
        self.entries.clear()


def _fresh_name(path: str, suffix: str) -> str:
    """An unused hidden name beside ``path`` (nothing is created)."""
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        name = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}{suffix}")
        if not os.path.lexists(name):
            return name


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _reraise(err: BaseException, path: str | None) -> BaseException:
    """The error to raise for a failed write: OSErrors become an OutputError naming the file."""
    if isinstance(err, OSError) and not isinstance(err, OutputError):
        new = OutputError(f"{path}: writing failed ({type(err).__name__}: {err}); nothing was written.")
        new.__cause__ = err
        return new
    return err


def write_atomically(writers: dict, suffix: str = ".part", *, overwrite: bool = True) -> list[str]:
    """Write a set of files so that either all of them land or none does.

    ``writers`` maps each target path to ``write(tmp_path)``.  Every file is
    written to a temporary name beside its target, and the temporary files are
    renamed into place only when all are complete.  On any error nothing new
    remains and the files already replaced are restored (from hard links made
    before the renames, or copies where the file system has no hard links).

    Parameters
    ----------
    writers : dict
        ``{target: write(tmp_path)}``.
    suffix : str, default ".part"
        Ending of the temporary names (e.g. ``".part.nii.gz"`` for nibabel).
    overwrite : bool, default True
        If False, the final renames refuse to replace a file that exists
        (one that appeared after the caller's own check): the files already
        placed are taken back and an :class:`OutputError` names it.

    Returns
    -------
    list of str
        The targets, in order.

    Raises
    ------
    OutputError
        Writing failed with an ``OSError`` (the message names the file), or
        ``overwrite`` is False and a target appeared meanwhile.
    """
    with _OutputGroup(overwrite=overwrite) as group:
        for path, write in writers.items():
            group.add_file(path, write, suffix)
        return group.commit()


def _save_nifti(tmp: str, volume: np.ndarray, affine: np.ndarray, name: str | None = None) -> None:
    import nibabel as nib

    from .images import nifti_image  # the header (intent code, description) shared with to_nibabel

    nib.save(nifti_image(volume, affine, name=name), tmp)


def _write_group(overwrite: bool, stage) -> list[str]:
    """Run ``stage(group)`` on a fresh :class:`_OutputGroup`, then place its outputs; all or nothing."""
    with _OutputGroup(overwrite=overwrite) as group:
        try:
            stage(group)
        except BaseException as err:
            raise _reraise(err, group.current)
        return group.commit()


#: the message for existing NIfTI maps (``check_outputs`` fills in the count and the first path)
_NIFTI_EXISTING = (
    "{n} output file(s) already exist (e.g. {path}); pass overwrite=True (--overwrite on the command "
    "line) to replace them, or choose another outroot."
)


def _nifti_outputs(plan: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(path, "file", f"the NIfTI map {name!r}") for paths in plan for name, path in paths.items()]


def _stage_volumes(
    group: _OutputGroup,
    volumes: dict[str, np.ndarray],
    paths: dict[str, str],
    affine,
    sidecars: dict[str, dict] | None = None,
) -> None:
    from .result import sidecar_path, write_json

    # the temporary suffix tells nibabel to gzip
    for name, volume in volumes.items():
        group.add_file(
            paths[name], functools.partial(_save_nifti, volume=volume, affine=affine, name=name), ".part.nii.gz"
        )
    # each map's sidecar joins the same all-or-nothing group
    for name in volumes:
        json_path = sidecar_path(paths[name])
        if sidecars and json_path in sidecars:
            group.add_file(json_path, functools.partial(write_json, content=sidecars[json_path]), ".part.json")


def _stage_nifti_batch(
    group: _OutputGroup,
    maps: xr.Dataset,
    names: list[str],
    plan: list[dict],
    affine,
    per_pass: int,
    sidecars: dict | None = None,
) -> None:
    # every file goes to a temporary name first and all are placed at the end, so a batch
    # failing part-way leaves the directory as it was (earlier versions included)
    for start in range(0, len(plan), per_pass):
        part = maps.isel(seed=slice(start, start + per_pass))
        values = dask.compute(*[da.asarray(part[n].data) for n in names])
        for j, paths in enumerate(plan[start : start + per_pass]):
            _stage_volumes(group, {n: v[j] for n, v in zip(names, values)}, paths, affine, sidecars)


def _nifti_stager(ds: xr.Dataset, names: list[str], plan: list[dict], per_pass: int, sidecars: dict | None = None):
    """``stage(group)`` writing the maps of ``plan`` (``ds`` in the volume layout)."""
    affine = affine_from_coords(ds["x"].values, ds["y"].values, ds["z"].values)
    batch = "seed" in ds.dims
    maps = ds[names].transpose(*(["seed"] if batch else []), "x", "y", "z")
    if batch:
        return functools.partial(
            _stage_nifti_batch,
            maps=maps,
            names=names,
            plan=plan,
            affine=affine,
            per_pass=max(1, int(per_pass)),
            sidecars=sidecars,
        )

    def stage(group: _OutputGroup) -> None:
        (stacked,) = dask.compute(da.stack([da.asarray(maps[n].data) for n in names]))
        _stage_volumes(group, dict(zip(names, stacked)), plan[0], affine, sidecars)

    return stage


def _maps_only(paths: list[str], sidecars: dict | None) -> list[str]:
    # the NIfTI files are what the caller asked for; each sidecar sits beside its map
    return [p for p in paths if p not in (sidecars or {})]


def _orphan_sidecars(plan: list[dict], sidecars: dict) -> list[str]:
    """Existing sidecars whose map does not exist (a map and its sidecar count as one output)."""
    from .result import sidecar_path

    maps = {sidecar_path(p): p for paths in plan for p in paths.values()}
    return [j for j in sidecars if os.path.exists(j) and not os.path.exists(maps[j])]


def _plan(
    ds: xr.Dataset, outroot, names: Sequence[str] | None, naming: str = "neurosynth", sidecar: bool = False
) -> tuple[list[str], list[dict[str, str]], dict[str, dict]]:
    """The maps to write, per seed (one entry for a single seed) ``{name: path}``, and ``{json path: sidecar}``."""
    from .result import bids_paths, sidecar_path
    from .result import sidecar as _sidecar
    from .versions import versions

    names = list(names) if names is not None else map_variables(ds)
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise OutputError(f"no map(s) {missing} in the Dataset; available: {map_variables(ds)}.")
    if not names:
        raise OutputError("the Dataset holds no (x, y, z) float maps to write.")
    if naming not in get_args(Naming):
        raise OutputError(
            f"naming={naming!r} is not known; expected 'neurosynth' ({{outroot}}_{{name}}.nii.gz) or "
            "'bids' (BIDS-style entities, NeuroVault-friendly)."
        )
    root = os.fspath(outroot)
    seeds = [str(s) for s in ds["seed"].values] if "seed" in ds.dims else [None]
    if naming == "bids":
        plan = [bids_paths(root, names, s) for s in seeds]
    else:
        plan = [nifti_paths(root if s is None else f"{root}_{s}", names) for s in seeds]
    sidecars: dict[str, dict] = {}
    if sidecar:
        software = versions()
        for s, paths in zip(seeds, plan):
            for n, path in paths.items():
                sidecars[sidecar_path(path)] = _sidecar(ds, n, s, software=software)
    return names, plan, sidecars


def to_nifti(
    ds: xr.Dataset,
    outroot: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    compute: bool = True,
    seeds_per_pass: int = 4,
    naming: Naming = "neurosynth",
    sidecar: bool = True,
    progress: bool | None = None,
):
    """Write each map to ``{outroot}_{name}.nii.gz`` (float32, the grid's affine), with a JSON sidecar.

    A batch result (with a ``seed`` dimension) writes one file per seed and
    map, ``{outroot}_{seed}_{name}.nii.gz``.  Beside each NIfTI file goes
    ``<same name>.json`` (:func:`xcoact.result.sidecar`): the map type,
    database and its sha256, parameters, counts, selected study ids, the
    versions of everything, and the command line when run from the CLI.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`xcoact.seed`.
    outroot : str or path-like
        Prefix of the files, e.g. ``"out/coactivation_from_image"``.
    names : sequence of str, optional
        Maps to write; all by default.
    overwrite : bool, default False
        Replace existing files; otherwise existing maps are an error, when
        this is called and again when the files are placed (see Notes).
    compute : bool, default True
        If False, return a :class:`dask.delayed.Delayed` that writes when computed.
    seeds_per_pass : int, default 4
        For a batch: seeds computed together before their files are written,
        so only that many seeds' maps are ever in memory.
    naming : {"neurosynth", "bids"}, default "neurosynth"
        ``"bids"`` names the files with BIDS-style entities that NeuroVault
        and BIDS tools accept, ``{outroot}[_seed-<seed>]_stat-z_desc-associationFDR001_statmap.nii.gz``
        (:func:`xcoact.result.bids_name`).
    sidecar : bool, default True
        Write the JSON sidecars (in the same all-or-nothing step as the maps).
    progress : bool, optional
        Show the progress of the computation (:mod:`xcoact.progress`); by
        default in a notebook or on a terminal.

    Returns
    -------
    list of str
        The NIfTI files written (or a Delayed producing it); each one's
        sidecar is the same path ending in ``.json``.

    Raises
    ------
    OutputError
        An output exists (and ``overwrite`` is False), or is a directory; the
        directory is missing or not writable; two maps would share a file;
        writing failed; or, with ``overwrite`` False, a file appeared at one
        of the paths while the maps were computed (it is kept, and none of the
        files is written).

    Notes
    -----
    Cost: computes the requested maps (one volume each) in one Dask pass, then
    writes them.  Every file is written to a temporary name first and all
    are renamed only when every one succeeded (for a batch, after its last
    pass: the temporary files need as much free disk as the outputs), so a
    failure part-way leaves the directory as it was, earlier files included.
    Without ``overwrite`` each rename refuses to replace a file (a hard link
    or ``RENAME_NOREPLACE``: the check and the rename are one step), so two
    runs writing to one outroot never silently replace each other's files.
    """
    ds = to_volumes(ds)
    names, plan, sidecars = _plan(ds, outroot, names, naming, sidecar)
    # a map and its sidecar count as one output: a leftover sidecar without its map blocks the write too
    outputs = _nifti_outputs(plan) + [(j, "file", "a map's JSON sidecar") for j in _orphan_sidecars(plan, sidecars)]
    check_outputs(outputs, overwrite=overwrite, existing_message=_NIFTI_EXISTING)
    if "seed" not in ds.dims:
        # one stacked array: the maps share their graph, so it is computed once; one task writes them
        affine = affine_from_coords(ds["x"].values, ds["y"].values, ds["z"].values)
        stacked = da.stack([da.asarray(ds[n].transpose("x", "y", "z").data) for n in names])
        task = dask.delayed(_write_stack)(stacked, names, plan[0], affine, overwrite, sidecars)
        if not compute:
            return task
        with _progress(progress, "writing NIfTI"):
            return task.compute()
    stage = _nifti_stager(ds, names, plan, seeds_per_pass, sidecars)
    if compute:
        with _progress(progress, "writing NIfTI"):
            return _maps_only(_write_group(overwrite, stage), sidecars)
    # a partial hides the lazy Dataset from Dask, which would otherwise compute it whole first
    return dask.delayed(functools.partial(_write_nifti_group, overwrite, stage, sidecars))()


def _write_nifti_group(overwrite: bool, stage, sidecars) -> list[str]:
    return _maps_only(_write_group(overwrite, stage), sidecars)


def _progress(progress, desc: str):
    from .progress import progress_bar

    return progress_bar(progress, desc=desc)


def _write_stack(stacked: np.ndarray, names: list[str], paths: dict, affine, overwrite: bool, sidecars) -> list[str]:
    volumes = dict(zip(names, stacked))
    stage = functools.partial(_stage_volumes, volumes=volumes, paths=paths, affine=affine, sidecars=sidecars)
    return _write_nifti_group(overwrite, stage, sidecars)


def _map_encoding(ds: xr.Dataset, dtype, extra: dict) -> dict:
    enc = {}
    for name in map_variables(ds):
        e = dict(extra)
        if dtype is not None:
            e["dtype"] = np.dtype(dtype)
        enc[name] = e
    return enc


def _check_zlib(zlib_level) -> None:
    if isinstance(zlib_level, bool) or not isinstance(zlib_level, (int, np.integer)) or not 0 <= zlib_level <= 9:
        raise OutputError(f"zlib_level={zlib_level!r} is not valid; expected an int from 0 (no compression) to 9.")


_INT64_RANGE = (-(2**63), 2**63 - 1)
#: array attribute types both netCDF-4 and Zarr store as they are
_ATTR_ARRAY_KINDS = {np.dtype(t) for t in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8")}


def _storable(value):
    """An attribute value as netCDF-4 and Zarr can both store it: bools as 0 / 1, integers beyond int64 as
    decimal text, lists of mixed items as JSON text, anything else that is not a number or a str as its ``str``."""
    if isinstance(value, np.ndarray) and value.dtype in _ATTR_ARRAY_KINDS and value.ndim == 1 and value.size:
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if _INT64_RANGE[0] <= value <= _INT64_RANGE[1] else str(value)
    if isinstance(value, (float, str)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [_storable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
        numbers = all(isinstance(v, (int, float)) for v in items)
        if items and (numbers or all(isinstance(v, str) for v in items)):
            return items
        return json.dumps(items)
    return str(value)


def _with_storable_attrs(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` whose attrs (its own and its variables') are all :func:`_storable`."""
    out = ds.copy(deep=False)
    out.attrs = {k: _storable(v) for k, v in ds.attrs.items()}
    for var in out.variables.values():
        var.attrs = {k: _storable(v) for k, v in var.attrs.items()}
    return out


def to_netcdf(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dtype: MapDtype | None = None,
    zlib_level: int = 1,
    progress: bool | None = None,
) -> str:
    """Write the Dataset to netCDF-4 atomically, compressed, with CF attributes; ``xr.open_dataset`` reads it back.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
    overwrite : bool, default False
        Replace an existing file (never a directory); otherwise an existing
        ``path`` is an error, when called and again when the file is placed.
    dtype : {None, "float32", "float64"}
        Storage type of the maps; None keeps theirs (float64, exact).
    zlib_level : int, default 1
        zlib compression (with byte shuffling) of the maps, 0 (none, fastest)
        to 9.  Level 1 makes one seed's maps about 15 times smaller (67 MB
        -> 4.3 MB on the bundled sample) for about 0.4 s more.
    progress : bool, optional
        Show the progress of the computation; by default in a notebook or on a terminal.

    Returns
    -------
    str
        The path written.

    Notes
    -----
    Every map and coordinate gets ``long_name`` and ``units`` and the file a
    ``Conventions`` attribute (:func:`xcoact.result.with_cf_attributes`).

    Cost: a lazy Dataset is computed chunk by chunk while it is written (for
    a batch, seed by seed), so every seed's maps are never in memory at once.
    The file is written in a temporary directory beside ``path`` and renamed
    into place; on a failure the directory is removed, even while chunk tasks
    are still running.  Attributes netCDF cannot hold are stored as
    :func:`_storable` says (e.g. an integer beyond int64 as its decimal text).
    """
    path = os.fspath(path)
    float_dtype(dtype, keep=True, error=OutputError)
    _check_zlib(zlib_level)
    check_outputs([(path, "file", "the netCDF file")], overwrite=overwrite)
    return _write_group(
        overwrite,
        functools.partial(_stage_netcdf, ds=ds, path=path, dtype=dtype, progress=progress, zlib_level=zlib_level),
    )[0]


def _stage_netcdf(
    group: _OutputGroup, ds: xr.Dataset, path: str, dtype=None, zlib_level: int = 0, progress: bool | None = None
) -> None:
    from .result import with_cf_attributes

    group.current = path
    extra = {"zlib": True, "complevel": int(zlib_level), "shuffle": True} if zlib_level else {}
    ds = with_cf_attributes(ds)
    # the file is built inside a temporary directory: once that is removed, a chunk task still
    # running after a failure cannot re-create the file (netCDF4's append mode would)
    tmpdir = _atomic_dir(path, suffix=".part")
    tmp = os.path.join(tmpdir, os.path.basename(path))
    try:
        with _progress(progress, "writing netCDF"):
            _with_storable_attrs(ds).to_netcdf(tmp, engine="netcdf4", encoding=_map_encoding(ds, dtype, extra))
    except BaseException as err:
        free = _free_space(path)  # before the clean-up frees the space again
        _remove_tree(tmpdir)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{path}: writing netCDF failed ({err}); nothing was written.") from err
        if type(err) is RuntimeError and str(err).startswith("NetCDF:"):
            # netCDF4's library errors carry no errno: HDF5 reports a full disk or a file size limit as "HDF error"
            raise OutputError(
                f"{path}: writing netCDF failed ({type(err).__name__}: {err}; {free} when it failed); nothing "
                "was written. A full disk or a file size limit gives this error."
            ) from err
        raise
    group.add_tree(path, tmp, container=tmpdir)


def _free_space(path: str) -> str:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return "free space unknown"
    return f"{st.f_bavail * st.f_frsize:,} bytes free on its file system"


def _zarr_codecs() -> dict:
    try:
        from numcodecs import Blosc
    except ImportError as err:  # pragma: no cover - zarr (and numcodecs) are dependencies
        raise OutputError("to_zarr needs the zarr package (pip install zarr).") from err
    return {
        "auto": "auto",  # chosen per map (see _auto_codec)
        "lz4": Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE),
        "zstd": Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE),
        "none": None,
    }


#: compressor="auto" (see to_zarr): maps of few distinct values, Blosc-LZ4 without shuffle (with it: 35-83%)
_FEW_VALUES = ("pAgF", "uniformity-test_z", "uniformity-test_z_FDR_", "association-test_z_FDR_")
#: compressor="auto": maps of nearly as many values as voxels, stored as they are (measured on Neurosynth v7)
_MANY_VALUES = ("pA", "pFgA", "association-test_z", "pA_given_pF=", "pFgA_given_pF=")


def _auto_codec(name: str):
    """The ``compressor="auto"`` codec of a map variable (lossless, a standard Zarr v2 codec or none)."""
    from numcodecs import Blosc

    def known(prefixes):
        return any(name == p or (p.endswith(("_", "=")) and name.startswith(p)) for p in prefixes)

    if known(_FEW_VALUES):
        return Blosc(cname="lz4", clevel=5, shuffle=Blosc.NOSHUFFLE)
    if known(_MANY_VALUES):
        return None
    return _zarr_codecs()["lz4"]  # any other map (other presets, ALE): as compressor="lz4"


def to_zarr(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dtype: MapDtype | None = None,
    compressor: Compressor = "auto",
    progress: bool | None = None,
) -> str:
    """Write the Dataset to a Zarr store atomically; ``xr.open_zarr`` reads it back.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
        The store directory to create.
    overwrite : bool, default False
        Replace an earlier Zarr store; a file, or a directory that is no Zarr
        store, is never replaced.  Without it an existing ``path`` is an
        error, when called and again when the store is placed.
    dtype : {None, "float32", "float64"}
        Storage type of the maps; None keeps theirs.
    compressor : {"auto", "lz4", "zstd", "none"}, default "auto"
        ``"auto"``: per map, what writes it fastest for its size: Blosc-LZ4
        without byte shuffle for the Neurosynth maps of few distinct values
        (``pAgF``, the uniformity z, both FDR maps: 17-46% of their bytes),
        no compression for the maps of nearly as many values as voxels
        (``pA``, ``pFgA``, their ``given_pF`` forms, the association z, which
        LZ4 keeps at 79-86%), Blosc-LZ4 as ``"lz4"`` for any other variable.
        ``"lz4"``: Blosc-LZ4 with byte shuffle for every map; ``"zstd"``:
        Blosc-Zstd (smaller, slower); ``"none"``.  All are lossless standard
        Zarr v2 codecs: plain ``zarr`` and ``xarray`` read every store.
    progress : bool, optional
        Show the progress of the computation; by default in a notebook or on a terminal.

    Returns
    -------
    str
        The store written.

    Notes
    -----
    Cost: computed and written chunk by chunk (one seed per chunk for a
    batch), in parallel on the current Dask scheduler; each task encodes and
    writes its chunk's file itself (Zarr v2's bytes).  The store is built
    under a temporary name beside ``path`` and renamed into place; if a chunk
    fails, the temporary store is removed even while other chunk tasks are
    still running (they cannot re-create it).  Without ``overwrite`` the
    rename refuses to replace anything (``RENAME_NOREPLACE``), so a store
    that appeared meanwhile is kept.
    """
    float_dtype(dtype, keep=True, error=OutputError)
    codecs = _zarr_codecs()
    if compressor not in codecs:
        raise OutputError(f"compressor={compressor!r} is not known; expected one of {sorted(codecs)}.")
    path = os.fspath(path).rstrip(os.sep)
    check_outputs([(path, "zarr", "the Zarr store")], overwrite=overwrite)
    return _write_group(
        overwrite,
        functools.partial(_stage_zarr, ds=ds, path=path, dtype=dtype, progress=progress, compressor=compressor),
    )[0]


def _stage_zarr(
    group: _OutputGroup, ds: xr.Dataset, path: str, dtype=None, compressor: str = "auto", progress: bool | None = None
) -> None:
    group.current = path
    codec = _zarr_codecs()[compressor]
    tmp = _atomic_dir(path, suffix=".part.zarr")
    try:
        # Zarr format 2: its string types and consolidated metadata are part of the spec
        extra = {"compressors": (codec,) if codec else None}
        encoding = _map_encoding(ds, dtype, extra)
        if codec == "auto":
            for name, enc in encoding.items():
                chosen = _auto_codec(str(name))
                enc["compressors"] = (chosen,) if chosen else None
        from ._zarr_store import FencedStore  # zarr is imported when a store is written

        store = FencedStore.at(tmp)
        with _progress(progress, "writing Zarr"):
            # write_empty_chunks: every chunk is stored (no comparison of each chunk with the fill value first,
            # 2 ms a batch chunk; a chunk of NaN seeds is written as NaN, as it reads anyway)
            writes = _with_storable_attrs(ds).to_zarr(
                store,
                mode="w-",
                encoding=encoding,
                consolidated=True,
                zarr_format=2,
                write_empty_chunks=True,
                compute=False,
            )
            direct = _chunk_files(ds, store, tmp)
            if direct is None:
                writes.compute()
            else:
                del writes  # zarr's own graph of the writes, not run
                da.store(*direct, lock=False)
        # temporary chunk files of writers that died (a killed worker whose task ran again elsewhere)
        _sweep_partials(tmp)
    except BaseException as err:
        _remove_tree(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{path}: writing Zarr failed ({err}); nothing was written.") from err
        raise
    group.add_tree(path, tmp)


class _ChunkFiles:
    """The chunk files of one Zarr v2 array, each encoded here and written whole by :func:`_fenced_put`.

    ``da.store`` sets one region per chunk; the bytes are those zarr writes (the
    array's dtype, C order, its compressor, edge chunks padded with the fill value).
    """

    def __init__(self, root: str, name: str, array):
        meta = array.metadata
        self.root, self.name, self.dtype, self.codec = root, name, array.dtype, meta.compressor
        self.chunks, self.sep, self.fill = meta.chunks, meta.dimension_separator, meta.fill_value

    def __setitem__(self, region: tuple, value) -> None:
        value = np.asarray(value)
        key = self.sep.join(str(r.start // c) for r, c in zip(region, self.chunks)) or "0"
        if value.shape == self.chunks:
            data = np.ascontiguousarray(value, dtype=self.dtype)
        else:
            data = np.full(self.chunks, 0 if self.fill is None else self.fill, dtype=self.dtype)
            data[tuple(slice(0, n) for n in value.shape)] = value
        _fenced_put(self.root, f"{self.name}/{key}", data if self.codec is None else self.codec.encode(data))


def _chunk_files(ds: xr.Dataset, store, root: str) -> tuple[list, list] | None:
    """The Dask variables of ``ds`` and the :class:`_ChunkFiles` of their arrays in ``store`` (metadata written), or
    None where zarr must write them itself: a filter, F order, a dtype other than bool and numbers, unaligned chunks.

    Zarr's own writes cost about 2 ms of CPU a chunk (its event loop and threads): a 1,000-seed batch writes 2,500.
    """
    import zarr

    group = zarr.open_group(store, mode="r", zarr_format=2)
    sources, targets = [], []
    for name, var in ds.variables.items():
        if not isinstance(var.data, da.Array):
            continue
        array: Any = group[str(name)]
        meta = array.metadata
        aligned = all(all(n == c for n in sizes[:-1]) for sizes, c in zip(var.data.chunks, meta.chunks))
        same = var.dtype.kind in "biu" and array.dtype.kind in "biu" and var.dtype.itemsize == array.dtype.itemsize
        cast = var.dtype.kind == "f" and array.dtype.kind == "f"  # float64 maps stored as float32: numpy's cast
        coded = {"scale_factor", "add_offset"} & {*var.encoding, *var.attrs}
        if meta.filters or meta.order != "C" or not aligned or not (same or cast) or coded:
            return None
        sources.append(var.data)
        targets.append(_ChunkFiles(root, str(name), array))
    return sources, targets


def _planned_outputs(
    ds: xr.Dataset,
    *,
    nifti=None,
    netcdf=None,
    zarr=None,
    png=None,
    names: Sequence[str] | None = None,
    command_line: bool = False,
) -> list[tuple[str, str, str]]:
    """Every output :func:`write_outputs` would write, as ``(path, kind, label)`` for :func:`check_outputs`."""
    out = []
    if nifti is not None:
        out += _nifti_outputs(_plan(to_volumes(ds), nifti, names)[1])
    for path, kind, label, option in (
        (netcdf, "file", "the netCDF file", "--netcdf"),
        (zarr, "zarr", "the Zarr store", "--zarr"),
        (png, "file", "the PNG figure", "--plot's PNG"),
    ):
        if path is not None:
            path = os.fspath(path).rstrip(os.sep) if kind == "zarr" else os.fspath(path)
            out.append((path, kind, option if command_line else label))
    return out


def write_outputs(
    ds: xr.Dataset,
    *,
    nifti: str | os.PathLike | None = None,
    netcdf: str | os.PathLike | None = None,
    zarr: str | os.PathLike | None = None,
    png: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    seeds_per_pass: int = 4,
) -> list[str]:
    """Write a result to several formats at once: every file lands, or none does.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`xcoact.seed` (one seed or a batch).
    nifti : str or path-like, optional
        An outroot: the maps go to ``{nifti}_{name}.nii.gz`` as in :func:`to_nifti`.
    netcdf, zarr, png : str or path-like, optional
        A netCDF file (:func:`to_netcdf`), a Zarr store (:func:`to_zarr`),
        the figure of :func:`xcoact.plot.plot` as PNG.
    names : sequence of str, optional
        The maps to write as NIfTI; all by default.
    overwrite : bool, default False
        Replace earlier outputs (files by files, a Zarr store by a store).
    seeds_per_pass : int, default 4
        For a batch's NIfTI files, as in :func:`to_nifti`.

    Returns
    -------
    list of str
        Every file (and the store) written, NIfTI first.

    Raises
    ------
    OutputError
        Every output is checked before anything is computed (clashing paths,
        missing or read-only directories, existing outputs without
        ``overwrite``); a write that fails, or an output that appears while
        the others are computed, leaves the directory as it was.

    Notes
    -----
    Cost: a single seed's maps are computed once for every format; a batch
    is computed seed chunk by seed chunk for each format.  All outputs are
    written under temporary names first, so the disk must hold them all
    before any is placed.
    """
    planned = _planned_outputs(ds, nifti=nifti, netcdf=netcdf, zarr=zarr, png=png, names=names)
    if not planned:
        raise OutputError("write_outputs was given no output; pass nifti=, netcdf=, zarr= or png=.")
    check_outputs(planned, overwrite=overwrite)
    if "seed" not in ds.dims:
        ds = ds.compute()  # once, for every format

    sidecars: dict = {}

    def stage(group: _OutputGroup) -> None:
        if nifti is not None:
            vol = to_volumes(ds)
            map_names, plan, found = _plan(vol, nifti, names, sidecar=True)
            sidecars.update(found)
            _nifti_stager(vol, map_names, plan, seeds_per_pass, sidecars)(group)
        if netcdf is not None:
            _stage_netcdf(group, ds, os.fspath(netcdf))
        if zarr is not None:
            _stage_zarr(group, ds, os.fspath(zarr).rstrip(os.sep))
        if png is not None:
            from .plot import _save_png, plot

            fig = plot(ds)
            group.add_file(os.fspath(png), functools.partial(_save_png, fig=fig, dpi=None), ".part.png")

    return _maps_only(_write_group(overwrite, stage), sidecars)


_PARTIAL = ".xcoact-partial"


def _remove_tree(root: str) -> None:
    """Remove a temporary directory for good, although chunk writers may still be running after a failure.

    They never create ``root`` (see :func:`_fenced_put`), so once it is renamed away they fail; a write already
    under way may still add a file, so removal is retried until the tree is gone.
    """
    if not os.path.lexists(root):
        return
    if os.path.islink(root) or not os.path.isdir(root):
        _remove_quietly(root)  # a file, or a link (never what it points to)
        return
    trash = f"{root}.trash"
    try:
        os.replace(root, trash)
    except OSError:
        trash = root
    for _ in range(200):
        shutil.rmtree(trash, ignore_errors=True)
        if not os.path.lexists(trash):
            return
        time.sleep(0.01)


def _sweep_partials(root: str) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(_PARTIAL):
                _remove_quietly(os.path.join(folder, name))


def _fenced_put(root: str, key: str, value, exclusive: bool = False) -> int:
    """Write one store key below ``root`` without ever creating ``root`` itself (see :func:`_remove_tree`)."""
    parts = key.split("/")
    folder = root
    for part in parts[:-1]:
        folder = os.path.join(folder, part)
        try:
            os.mkdir(folder)  # FileNotFoundError once the root is gone
        except FileExistsError:
            pass
    path = os.path.join(folder, parts[-1])
    tmp = f"{path}.{uuid.uuid4().hex[:8]}{_PARTIAL}"
    data = value.as_buffer_like() if hasattr(value, "as_buffer_like") else getattr(value, "to_bytes", lambda: value)()
    try:
        with open(tmp, "xb") as fh:
            n = fh.write(data)
        if exclusive:
            try:
                os.link(tmp, path)  # FileExistsError if the key exists
            except FileExistsError:
                raise
            except OSError:
                # no hard links on this file system: claim the name, then move the data onto it
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                os.replace(tmp, path)
            else:
                os.remove(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return n
