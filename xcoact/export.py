"""Result Datasets -> NIfTI and netCDF files, atomically.

Every writer writes to a temporary file beside the target and renames it
into place, so a failure leaves no partial file.  A single result's maps
replace earlier files only when all of them are written (earlier files are
restored if a rename fails); a batch written to NIfTI removes the files it
had written when it fails part-way (with ``overwrite=True`` the earlier
versions of those files are then gone).
"""

from __future__ import annotations

import functools
import os
import shutil
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
        raise OutputError(f"{folder}: output directory is not writable; choose another outroot.")
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


def write_atomically(writers: dict, suffix: str = ".part") -> list[str]:
    """Write a set of files so that either all of them land or none does.

    ``writers`` maps each target path to ``write(tmp_path)``.  Every file is
    written to a temporary name beside its target, and the temporary files are
    renamed into place only when all are complete.  On any error nothing new
    remains and the files already replaced are restored from copies (the last
    target needs none: if its rename fails it was not replaced).

    Returns
    -------
    list of str
        The targets, in order.

    Raises
    ------
    OutputError
        Writing failed with an ``OSError``; the message names the file.
    """
    paths = list(writers)
    temps: dict[str, str] = {}
    backups: dict[str, str] = {}
    placed: list[str] = []
    current = paths[0]
    try:
        for current in paths:
            temps[current] = atomic_path(current, suffix=suffix)
            writers[current](temps[current])
        for current in paths[:-1]:
            if os.path.exists(current):
                backups[current] = atomic_path(current, suffix=".bak")
                shutil.copy2(current, backups[current])
        for current in paths:
            os.replace(temps[current], current)
            del temps[current]
            placed.append(current)
    except BaseException as err:
        for path in reversed(placed):
            if path in backups:
                os.replace(backups.pop(path), path)
            elif os.path.exists(path):
                os.remove(path)
        for tmp in [*temps.values(), *backups.values()]:
            if os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{current}: writing failed ({type(err).__name__}: {err}); nothing was written.") from err
        raise
    for bak in backups.values():
        os.remove(bak)
    return paths


def _save_nifti(tmp: str, volume: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), affine)
    img.header.set_data_dtype(np.float32)
    img.header.set_xyzt_units("mm")
    # code 4: the affine maps to MNI space, as in the template Neurosynth writes with
    img.set_sform(affine, code=4)
    img.set_qform(affine, code=4)
    nib.save(img, tmp)


def _write_niftis(volumes: dict[str, np.ndarray], paths: dict[str, str], affine: np.ndarray) -> list[str]:
    # the temporary suffix tells nibabel to gzip
    writers = {paths[name]: functools.partial(_save_nifti, volume=vol, affine=affine) for name, vol in volumes.items()}
    return write_atomically(writers, suffix=".part.nii.gz")


def to_nifti(
    ds: xr.Dataset,
    outroot: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    compute: bool = True,
    seeds_per_pass: int = 4,
):
    """Write each map to ``{outroot}_{name}.nii.gz`` (float32, the grid's affine).

    A batch result (with a ``seed`` dimension) writes one file per seed and
    map, ``{outroot}_{seed}_{name}.nii.gz``.

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

    Returns
    -------
    list of str
        The files written (or a Delayed producing it).

    Notes
    -----
    Cost: computes the requested maps (one volume each) in one Dask pass, then
    writes them.  All maps of a seed are written to temporary files first and
    renamed only when every one succeeded; if a batch fails part-way, the
    files it had already written are removed.
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
    plan = [nifti_paths(root if s is None else f"{root}_{s}", names) for s in seeds]
    _check_target_dir(next(iter(plan[0].values())))
    existing = [p for paths in plan for p in paths.values() if os.path.exists(p)]
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
        task = dask.delayed(_write_stack)(stacked, names, plan[0], affine)
        return task.compute() if compute else task
    if compute:
        return _write_batch(maps, names, plan, affine, max(1, int(seeds_per_pass)))
    # a partial hides the lazy Dataset from Dask, which would otherwise compute it whole first
    return dask.delayed(functools.partial(_write_batch, maps, names, plan, affine, max(1, int(seeds_per_pass))))()


def _write_stack(stacked: np.ndarray, names: list[str], paths: dict[str, str], affine: np.ndarray) -> list[str]:
    return _write_niftis(dict(zip(names, stacked)), paths, affine)


def _write_batch(maps: xr.Dataset, names: list[str], plan: list[dict], affine: np.ndarray, per_pass: int) -> list[str]:
    written: list[str] = []
    try:
        for start in range(0, len(plan), per_pass):
            part = maps.isel(seed=slice(start, start + per_pass))
            values = dask.compute(*[da.asarray(part[n].data) for n in names])
            for j, paths in enumerate(plan[start:start + per_pass]):
                written += _write_niftis({n: v[j] for n, v in zip(names, values)}, paths, affine)
    except BaseException:
        for path in written:
            if os.path.exists(path):
                os.remove(path)
        raise
    return written


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
    zlib_level: int = 0,
) -> str:
    """Write the Dataset to netCDF-4 atomically; ``xr.open_dataset`` reads it back.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
    overwrite : bool, default False
    dtype : {None, "float32", "float64"}
        Storage type of the maps; None keeps theirs (float64, exact).
    zlib_level : int, default 0
        zlib compression of the maps, 0 (none, fastest) to 9.

    Returns
    -------
    str
        The path written.

    Notes
    -----
    Cost: a lazy Dataset is computed chunk by chunk while it is written (for
    a batch, seed by seed), so every seed's maps are never in memory at once.
    """
    path = os.fspath(path)
    _check_dtype(dtype)
    _check_target_dir(path)
    if os.path.exists(path) and not overwrite:
        raise OutputError(f"{path} already exists; pass overwrite=True to replace it, or choose another path.")
    if isinstance(zlib_level, bool) or not isinstance(zlib_level, (int, np.integer)) or not 0 <= zlib_level <= 9:
        raise OutputError(f"zlib_level={zlib_level!r} is not valid; expected an int from 0 (no compression) to 9.")
    extra = {"zlib": True, "complevel": int(zlib_level), "shuffle": True} if zlib_level else {}
    tmp = atomic_path(path)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=_map_encoding(ds, dtype, extra))
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{path}: writing netCDF failed ({err}); nothing was written.") from err
        raise
    return path


def to_zarr(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dtype=None,
    compressor: str = "lz4",
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

    Returns
    -------
    str
        The store written.

    Notes
    -----
    Cost: computed and written chunk by chunk (one seed per chunk for a
    batch), in parallel on the current Dask scheduler.  The store is built
    under a temporary name beside ``path`` and renamed into place.
    """
    import shutil

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
    tmp = atomic_path(path, suffix=".part.zarr")
    os.remove(tmp)  # zarr creates the directory
    backup = None
    try:
        extra = {"compressors": (codecs[compressor],) if codecs[compressor] else None}
        ds.to_zarr(tmp, mode="w-", encoding=_map_encoding(ds, dtype, extra), consolidated=True, zarr_format=2)
        if os.path.exists(path):
            backup = atomic_path(path, suffix=".old")
            os.remove(backup)
            os.replace(path, backup)
        os.replace(tmp, path)
    except BaseException as err:
        if backup is not None and os.path.exists(backup) and not os.path.exists(path):
            os.replace(backup, path)
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{path}: writing Zarr failed ({err}); nothing was written.") from err
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    return path
