"""Result Datasets -> NIfTI and netCDF files, atomically.

Every writer writes to a temporary file beside the target and renames it
into place, so a failure leaves no partial file.  All the files of one
call (the nine maps of a seed, or every map of a batch) replace earlier
files only when all of them are written, and the files replaced are
restored if a rename fails.  A Zarr store (a directory) is built under a
temporary name and renamed; netCDF goes through a temporary file.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
import uuid
from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .errors import OutputError
from .space import affine_from_coords

__all__ = ["to_nifti", "to_netcdf", "to_zarr", "to_volumes", "nifti_paths", "map_variables", "atomic_path"]


def map_variables(ds: xr.Dataset) -> list[str]:
    """The map variables of a result Dataset (the float (x, y, z) or (seed, x, y, z) ones), in order."""
    return [
        n for n, v in ds.data_vars.items()
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
        vol = data.map_blocks(_scatter, flat, shape, fill, chunks=(data.chunks[0], *[(n,) for n in shape]),
                              new_axis=[2, 3], dtype=var.dtype)
        out[name] = (("seed", "x", "y", "z"), vol, var.attrs)
    out.attrs = {**ds.attrs, "layout": "volume"}
    return out


def nifti_paths(outroot, names: Sequence[str]) -> dict[str, str]:
    """``{name: f"{outroot}_{name}.nii.gz"}``, Neurosynth's file naming."""
    root = os.fspath(outroot)
    return {n: f"{root}_{n}.nii.gz" for n in names}


def _check_target_dir(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{folder}: output directory does not exist; create it first (e.g. os.makedirs({folder!r})).")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder}: output directory is not writable; choose another outroot, or give yourself write access to it.")
    return folder


def atomic_path(path: str, suffix: str = ".part") -> str:
    """A fresh temporary name in the target's directory (same filesystem, so rename is atomic).

    The file is created empty and exclusively, with mode ``0o666`` filtered by
    the umask (not :func:`tempfile.mkstemp`'s ``0o600``, which the renamed
    output would keep).
    """
    folder = _check_target_dir(path)
    prefix = os.path.join(folder, "." + os.path.basename(path) + ".")
    for _ in range(100):
        tmp = f"{prefix}{uuid.uuid4().hex[:12]}{suffix}"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise OutputError(f"{folder}: could not create a temporary file beside {os.path.basename(path)}.")


class _StagedFiles:
    """Files written under temporary names, then renamed into place all together.

    :meth:`write` puts each file under a fresh temporary name beside its
    target; :meth:`commit` renames them all, restoring the files it had
    replaced if a rename fails; :meth:`discard` removes whatever is still
    temporary.  ``current`` is the file being handled, for error messages.
    """

    def __init__(self) -> None:
        self.temps: dict[str, str] = {}
        self.current: str | None = None

    def write(self, path: str, write, suffix: str) -> None:
        self.current = path
        if path in self.temps:
            raise OutputError(f"{path}: the same file would be written twice; give each output its own name.")
        self.temps[path] = atomic_path(path, suffix=suffix)
        write(self.temps[path])

    def commit(self) -> list[str]:
        paths = list(self.temps)
        backups: dict[str, str] = {}
        placed: list[str] = []
        try:
            # the last target needs no backup: if its rename fails it was not replaced
            for self.current in paths[:-1]:
                if os.path.exists(self.current):
                    backups[self.current] = _backup(self.current)
            for self.current in paths:
                os.replace(self.temps[self.current], self.current)
                del self.temps[self.current]
                placed.append(self.current)
        except BaseException:
            for path in reversed(placed):
                if path in backups:
                    os.replace(backups.pop(path), path)
                elif os.path.exists(path):
                    os.remove(path)
            for bak in backups.values():
                _remove_quietly(bak)
            raise
        for bak in backups.values():
            _remove_quietly(bak)
        return paths

    def discard(self) -> None:
        for tmp in self.temps.values():
            _remove_quietly(tmp)
        self.temps.clear()


def _backup(path: str) -> str:
    """A second name for ``path``'s current content: a hard link (no copy, no space), else a copy."""
    bak = atomic_path(path, suffix=".bak")
    os.remove(bak)
    try:
        os.link(path, bak)
    except OSError:
        # file systems without hard links
        shutil.copy2(path, bak)
    return bak


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _output_error(err: BaseException, path: str | None, what: str = "writing") -> BaseException:
    """The error to raise for a failed write: OSErrors become an OutputError naming the file."""
    if isinstance(err, OSError) and not isinstance(err, OutputError):
        new = OutputError(f"{path}: {what} failed ({type(err).__name__}: {err}); nothing was written.")
        new.__cause__ = err
        return new
    return err


def write_atomically(writers: dict, suffix: str = ".part") -> list[str]:
    """Write a set of files so that either all of them land or none does.

    ``writers`` maps each target path to ``write(tmp_path)``.  Every file is
    written to a temporary name beside its target, and the temporary files are
    renamed into place only when all are complete.  On any error nothing new
    remains and the files already replaced are restored (from hard links made
    before the renames, or copies where the file system has no hard links).

    Returns
    -------
    list of str
        The targets, in order.

    Raises
    ------
    OutputError
        Writing failed with an ``OSError``; the message names the file.
    """
    staged = _StagedFiles()
    try:
        for path, write in writers.items():
            staged.write(path, write, suffix)
        return staged.commit()
    except BaseException as err:
        staged.discard()
        new = _output_error(err, staged.current)
        if new is err:
            raise
        raise new from err


def _save_nifti(tmp: str, volume: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), affine)
    img.header.set_data_dtype(np.float32)
    img.header.set_xyzt_units("mm")
    # code 4: the affine maps to MNI space, as in the template Neurosynth writes with
    img.set_sform(affine, code=4)
    img.set_qform(affine, code=4)
    nib.save(img, tmp)


def _write_niftis(volumes: dict[str, np.ndarray], paths: dict[str, str], affine: np.ndarray,
                  sidecars: dict[str, dict] | None = None) -> list[str]:
    # the temporary suffix tells nibabel to gzip
    writers = {paths[name]: functools.partial(_save_nifti, volume=vol, affine=affine) for name, vol in volumes.items()}
    writers.update(_sidecar_writers(sidecars))
    return _maps_only(write_atomically(writers, suffix=".part.nii.gz"), sidecars)


def _maps_only(paths: list[str], sidecars: dict | None) -> list[str]:
    # the NIfTI files are what the caller asked for; each sidecar sits beside its map
    return [p for p in paths if p not in (sidecars or {})]


def _orphan_sidecars(plan: list[dict], sidecars: dict) -> list[str]:
    """Existing sidecars whose map does not exist (a map and its sidecar count as one output)."""
    from .provenance import sidecar_path

    maps = {sidecar_path(p): p for paths in plan for p in paths.values()}
    return [j for j in sidecars if os.path.exists(j) and not os.path.exists(maps[j])]


def _sidecar_writers(sidecars: dict[str, dict] | None) -> dict:
    """``{json path: write(tmp)}``: the sidecars join the maps' all-or-nothing write."""
    from .provenance import write_json

    return {path: functools.partial(write_json, content=content) for path, content in (sidecars or {}).items()}


def _plan(ds: xr.Dataset, root: str, seeds: list, names: list[str], naming: str, sidecar: bool):
    """The NIfTI paths per seed, and ``{json path: sidecar}`` (empty without sidecars)."""
    from .provenance import bids_paths, sidecar_path
    from .provenance import sidecar as _sidecar
    from .versions import versions

    if naming not in ("neurosynth", "bids"):
        raise OutputError(f"naming={naming!r} is not known; expected 'neurosynth' ({{outroot}}_{{name}}.nii.gz) or "
                          "'bids' (BIDS-style entities, NeuroVault-friendly).")
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
    return plan, sidecars


def to_nifti(
    ds: xr.Dataset,
    outroot: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    compute: bool = True,
    seeds_per_pass: int = 4,
    naming: str = "neurosynth",
    sidecar: bool = True,
    progress: bool | None = None,
):
    """Write each map to ``{outroot}_{name}.nii.gz`` (float32, the grid's affine), with a JSON sidecar.

    A batch result (with a ``seed`` dimension) writes one file per seed and
    map, ``{outroot}_{seed}_{name}.nii.gz``.  Beside each NIfTI file goes
    ``<same name>.json`` (:func:`xcoact.provenance.sidecar`): the map type,
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
        Replace existing files; otherwise existing maps are an error.
    compute : bool, default True
        If False, return a :class:`dask.delayed.Delayed` that writes when computed.
    seeds_per_pass : int, default 4
        For a batch: seeds computed together before their files are written,
        so only that many seeds' maps are ever in memory.
    naming : {"neurosynth", "bids"}, default "neurosynth"
        ``"bids"`` names the files with BIDS-style entities that NeuroVault
        and BIDS tools accept, ``{outroot}[_seed-<seed>]_stat-z_desc-associationFDR001_statmap.nii.gz``
        (:func:`xcoact.provenance.bids_name`).
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

    Notes
    -----
    Cost: computes the requested maps (one volume each) in one Dask pass, then
    writes them.  Every file is written to a temporary name first and all
    are renamed only when every one succeeded (for a batch, after its last
    pass: the temporary files need as much free disk as the outputs), so a
    failure part-way leaves the directory as it was, earlier files included.
    """
    ds = to_volumes(ds)
    names = list(names) if names is not None else map_variables(ds)
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise OutputError(f"no map(s) {missing} in the Dataset; available: {map_variables(ds)}.")
    if not names:
        raise OutputError("the Dataset holds no (x, y, z) float maps to write.")
    root = os.fspath(outroot)
    seeds = [str(s) for s in ds["seed"].values] if "seed" in ds.dims else [None]
    plan, sidecars = _plan(ds, root, seeds, names, naming, sidecar)
    _check_target_dir(next(iter(plan[0].values())))
    existing = [p for paths in plan for p in paths.values() if os.path.exists(p)]
    existing += _orphan_sidecars(plan, sidecars)
    if existing and not overwrite:
        raise OutputError(
            f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); pass overwrite=True "
            "(--overwrite on the command line) to replace them, or choose another outroot."
        )
    affine = affine_from_coords(ds["x"].values, ds["y"].values, ds["z"].values)
    maps = ds[names].transpose(*(["seed"] if seeds[0] is not None else []), "x", "y", "z")
    if seeds[0] is None:
        # one stacked array: the maps share their graph, so it is computed once
        stacked = da.stack([da.asarray(maps[n].data) for n in names])
        task = dask.delayed(_write_stack)(stacked, names, plan[0], affine, sidecars)
        return _computed(task, progress) if compute else task
    if compute:
        with _progress(progress, "writing NIfTI"):
            return _write_batch(maps, names, plan, affine, max(1, int(seeds_per_pass)), sidecars)
    # a partial hides the lazy Dataset from Dask, which would otherwise compute it whole first
    return dask.delayed(functools.partial(_write_batch, maps, names, plan, affine, max(1, int(seeds_per_pass)), sidecars))()


def _progress(progress, desc: str):
    from .progress import progress_bar

    return progress_bar(progress, desc=desc)


def _computed(task, progress):
    with _progress(progress, "writing NIfTI"):
        return task.compute()


def _write_stack(stacked: np.ndarray, names: list[str], paths: dict[str, str], affine: np.ndarray,
                 sidecars: dict[str, dict] | None = None) -> list[str]:
    return _write_niftis(dict(zip(names, stacked)), paths, affine, sidecars)


def _write_batch(maps: xr.Dataset, names: list[str], plan: list[dict], affine: np.ndarray, per_pass: int,
                 sidecars: dict[str, dict] | None = None) -> list[str]:
    # every file goes to a temporary name first and all are renamed at the end, so a batch
    # failing part-way leaves the directory as it was (earlier versions included)
    staged = _StagedFiles()
    try:
        for start in range(0, len(plan), per_pass):
            part = maps.isel(seed=slice(start, start + per_pass))
            values = dask.compute(*[da.asarray(part[n].data) for n in names])
            for j, paths in enumerate(plan[start:start + per_pass]):
                for n, v in zip(names, values):
                    staged.write(paths[n], functools.partial(_save_nifti, volume=v[j], affine=affine), ".part.nii.gz")
        for path, write in _sidecar_writers(sidecars).items():
            staged.write(path, write, ".part.json")
        return _maps_only(staged.commit(), sidecars)
    except BaseException as err:
        staged.discard()
        new = _output_error(err, staged.current)
        if new is err:
            raise
        raise new from err


def _map_encoding(ds: xr.Dataset, dtype, extra: dict) -> dict:
    enc = {}
    for name in map_variables(ds):
        e = dict(extra)
        if dtype is not None:
            e["dtype"] = np.dtype(dtype)
        enc[name] = e
    return enc


def _check_dtype(dtype):
    if dtype is not None and np.dtype(dtype) not in (np.dtype("float32"), np.dtype("float64")):
        raise OutputError(f"dtype={dtype!r} is not supported for maps; expected None (keep), 'float32' or 'float64'.")


def to_netcdf(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dtype=None,
    zlib_level: int = 1,
    progress: bool | None = None,
) -> str:
    """Write the Dataset to netCDF-4 atomically, compressed, with CF attributes; ``xr.open_dataset`` reads it back.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
    overwrite : bool, default False
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
    ``Conventions`` attribute (:func:`xcoact.provenance.with_cf_attributes`).

    Cost: a lazy Dataset is computed chunk by chunk while it is written (for
    a batch, seed by seed), so every seed's maps are never in memory at once.
    The file is written in a temporary directory beside ``path`` and renamed
    into place; on a failure the directory is removed, even while chunk tasks
    are still running.
    """
    path = os.fspath(path)
    _check_dtype(dtype)
    _check_target_dir(path)
    if os.path.exists(path) and not overwrite:
        raise OutputError(f"{path} already exists; pass overwrite=True to replace it, or choose another path.")
    if isinstance(zlib_level, bool) or not isinstance(zlib_level, (int, np.integer)) or not 0 <= zlib_level <= 9:
        raise OutputError(f"zlib_level={zlib_level!r} is not valid; expected an int from 0 (no compression) to 9.")
    extra = {"zlib": True, "complevel": int(zlib_level), "shuffle": True} if zlib_level else {}
    ds = _cf(ds)
    # the file is built inside a temporary directory: once that is removed, a chunk task still
    # running after a failure cannot re-create the file (netCDF4's append mode would)
    tmpdir = _atomic_dir(path, suffix=".part")
    tmp = os.path.join(tmpdir, os.path.basename(path))
    try:
        with _progress(progress, "writing netCDF"):
            ds.to_netcdf(tmp, engine="netcdf4", encoding=_map_encoding(ds, dtype, extra))
        os.replace(tmp, path)
        os.rmdir(tmpdir)
    except BaseException as err:
        free = _free_space(path)  # before the clean-up frees the space again
        _remove_tree(tmpdir)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{path}: writing netCDF failed ({err}); nothing was written.") from err
        if _is_netcdf_library_error(err):
            # HDF5 reports a full disk or a file size limit as a bare "HDF error", without errno
            raise OutputError(
                f"{path}: writing netCDF failed ({type(err).__name__}: {err}; {free} when it failed); nothing "
                "was written. A full disk or a file size limit gives this error."
            ) from err
        raise
    return path


def _cf(ds: xr.Dataset) -> xr.Dataset:
    from .provenance import with_cf_attributes

    return with_cf_attributes(ds)


def _is_netcdf_library_error(err: BaseException) -> bool:
    """netCDF4 raises ``RuntimeError("NetCDF: ...")`` for library errors that carry no errno."""
    return type(err) is RuntimeError and str(err).startswith("NetCDF:")


def _free_space(path: str) -> str:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return "free space unknown"
    return f"{st.f_bavail * st.f_frsize:,} bytes free on its file system"


def to_zarr(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dtype=None,
    compressor: str = "lz4",
    progress: bool | None = None,
) -> str:
    """Write the Dataset to a Zarr store atomically; ``xr.open_zarr`` reads it back.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
        The store directory to create.
    overwrite : bool, default False
    dtype : {None, "float32", "float64"}
        Storage type of the maps; None keeps theirs.
    compressor : {"lz4", "zstd", "none"}, default "lz4"
        Blosc-LZ4 (fast, multi-threaded), Blosc-Zstd (smaller), or none.
    progress : bool, optional
        Show the progress of the computation; by default in a notebook or on a terminal.

    Returns
    -------
    str
        The store written.

    Notes
    -----
    Cost: computed and written chunk by chunk (one seed per chunk for a
    batch), in parallel on the current Dask scheduler.  The store is built
    under a temporary name beside ``path`` and renamed into place; if a chunk
    fails, the temporary store is removed even while other chunk tasks are
    still running (they cannot re-create it).
    """
    try:
        from numcodecs import Blosc
    except ImportError as err:  # pragma: no cover - zarr (and numcodecs) are dependencies
        raise OutputError("to_zarr needs the zarr package (pip install zarr).") from err
    _check_dtype(dtype)
    # Zarr format 2: its string types and consolidated metadata are part of the spec
    codecs = {
        "lz4": Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE),
        "zstd": Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE),
        "none": None,
    }
    if compressor not in codecs:
        raise OutputError(f"compressor={compressor!r} is not known; expected one of {sorted(codecs)}.")
    path = os.fspath(path).rstrip(os.sep)
    _check_target_dir(path)
    if os.path.exists(path) and not overwrite:
        raise OutputError(f"{path} already exists; pass overwrite=True to replace it, or choose another path.")
    tmp = _atomic_dir(path, suffix=".part.zarr")
    backup = None
    try:
        extra = {"compressors": (codecs[compressor],) if codecs[compressor] else None}
        store = _fenced_store_class()(tmp)
        with _progress(progress, "writing Zarr"):
            ds.to_zarr(store, mode="w-", encoding=_map_encoding(ds, dtype, extra), consolidated=True, zarr_format=2)
        # temporary chunk files of writers that died (a killed worker whose task ran again elsewhere)
        _sweep_partials(tmp)
        if os.path.exists(path):
            backup = _atomic_dir(path, suffix=".old")
            os.rmdir(backup)
            os.replace(path, backup)
        os.replace(tmp, path)
    except BaseException as err:
        if backup is not None and os.path.exists(backup) and not os.path.exists(path):
            os.replace(backup, path)
        _remove_tree(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{path}: writing Zarr failed ({err}); nothing was written.") from err
        raise
    if backup is not None:
        _remove_tree(backup)
    return path


def _atomic_dir(path: str, suffix: str) -> str:
    """A fresh, empty directory beside ``path`` (same file system, so it can be renamed onto it)."""
    folder = _check_target_dir(path)
    prefix = os.path.join(folder, "." + os.path.basename(path) + ".")
    for _ in range(100):
        tmp = f"{prefix}{uuid.uuid4().hex[:12]}{suffix}"
        try:
            os.mkdir(tmp)
        except FileExistsError:
            continue
        return tmp
    raise OutputError(f"{folder}: could not create a temporary directory beside {os.path.basename(path)}.")


_PARTIAL = ".xcoact-partial"


def _remove_tree(root: str) -> None:
    """Remove a temporary directory for good, although writers may still be running.

    When a chunk write fails, Dask raises at once while other chunk tasks are
    still running (in threads here, or on workers).  They write below
    ``root`` without ever creating it (Zarr through :class:`_FencedLocalStore`;
    netCDF opens a file inside it, and the library creates no directories):
    once ``root`` is renamed away they fail instead of re-creating it.  The
    renamed tree may still get a file from a write already under way, so
    removal is retried until the tree is gone.
    """
    if not os.path.lexists(root):
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
    data = value.as_buffer_like() if hasattr(value, "as_buffer_like") else value.to_bytes()
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


@functools.lru_cache(maxsize=None)
def _fenced_store_class():
    """zarr's LocalStore, writing through :func:`_fenced_put` (built on first use: zarr is imported lazily)."""
    import asyncio

    from zarr.abc.store import Store
    from zarr.storage import LocalStore

    class _FencedLocalStore(LocalStore):
        """A LocalStore over an existing root that it never creates (so an abandoned write cannot revive it)."""

        async def _open(self, *, mode=None) -> None:
            if not self.root.is_dir():
                raise FileNotFoundError(f"{self.root}: the temporary Zarr store is gone (the write was abandoned)")
            await Store._open(self)

        def _ensure_open_sync(self) -> None:
            if not self._is_open:
                if not self.root.is_dir():
                    raise FileNotFoundError(f"{self.root}: the temporary Zarr store is gone (the write was abandoned)")
                self._is_open = True

        async def set(self, key: str, value) -> None:
            await self._ensure_open()
            self._check_writable()
            await asyncio.to_thread(_fenced_put, os.fspath(self.root), key, value)

        async def _set(self, key: str, value, exclusive: bool = False) -> None:
            await self._ensure_open()
            self._check_writable()
            await asyncio.to_thread(_fenced_put, os.fspath(self.root), key, value, exclusive)

        async def set_if_not_exists(self, key: str, value) -> None:
            try:
                await self._set(key, value, exclusive=True)
            except FileExistsError:
                pass

        def set_sync(self, key: str, value) -> None:
            self._ensure_open_sync()
            self._check_writable()
            _fenced_put(os.fspath(self.root), key, value)

    _FencedLocalStore.__module__ = __name__
    _FencedLocalStore.__qualname__ = "_FencedLocalStore"
    return _FencedLocalStore


def __getattr__(name: str):
    # pickle finds the store class by name on dask.distributed workers
    if name == "_FencedLocalStore":
        return _fenced_store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
