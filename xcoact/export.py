"""Result Datasets -> NIfTI and netCDF files, atomically.

Every writer writes to a temporary file beside the target and renames it
into place, so a failure leaves no partial file and any earlier file intact.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence

import dask
import numpy as np
import xarray as xr

from .errors import OutputError
from .space import affine_from_coords

__all__ = ["to_nifti", "to_netcdf", "nifti_paths", "map_variables", "atomic_path"]


def map_variables(ds: xr.Dataset) -> list[str]:
    """The map variables of a result Dataset (the float (x, y, z) ones), in order."""
    return [n for n, v in ds.data_vars.items() if set(v.dims) == {"x", "y", "z"} and v.dtype.kind == "f"]


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


def _write_niftis(volumes: dict[str, np.ndarray], paths: dict[str, str], affine: np.ndarray) -> list[str]:
    import nibabel as nib

    temps: dict[str, str] = {}
    backups: dict[str, str] = {}
    placed: list[str] = []
    try:
        for name, vol in volumes.items():
            # the suffix tells nibabel to gzip
            tmp = atomic_path(paths[name], suffix=".part.nii.gz")
            temps[name] = tmp
            img = nib.Nifti1Image(np.asarray(vol, dtype=np.float32), affine)
            img.header.set_data_dtype(np.float32)
            img.header.set_xyzt_units("mm")
            # code 4: the affine maps to MNI space, as in the template Neurosynth writes with
            img.set_sform(affine, code=4)
            img.set_qform(affine, code=4)
            nib.save(img, tmp)
        # keep a copy of each file about to be replaced, so a failed rename rolls back
        for name in temps:
            if os.path.exists(paths[name]):
                backups[name] = atomic_path(paths[name], suffix=".bak")
                shutil.copy2(paths[name], backups[name])
        for name, tmp in temps.items():
            os.replace(tmp, paths[name])
            placed.append(name)
    except BaseException as err:
        for name in reversed(placed):
            if name in backups:
                os.replace(backups.pop(name), paths[name])
            elif os.path.exists(paths[name]):
                os.remove(paths[name])
        for tmp in [*temps.values(), *backups.values()]:
            if os.path.exists(tmp):
                os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"writing NIfTI maps failed ({err}); nothing was written.") from err
        raise
    for bak in backups.values():
        os.remove(bak)
    return [paths[n] for n in volumes]


def to_nifti(
    ds: xr.Dataset,
    outroot: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    compute: bool = True,
):
    """Write each map to ``{outroot}_{name}.nii.gz`` (float32, the grid's affine).

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

    Returns
    -------
    list of str
        The files written (or a Delayed producing it).

    Notes
    -----
    Cost: computes the requested maps (one volume each) in one Dask pass, then
    writes them.  All maps are written to temporary files first and renamed
    only when every one succeeded.
    """
    names = list(names) if names is not None else map_variables(ds)
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise OutputError(f"no map(s) {missing} in the Dataset; available: {map_variables(ds)}.")
    if not names:
        raise OutputError("the Dataset holds no (x, y, z) float maps to write.")
    paths = nifti_paths(outroot, names)
    _check_target_dir(next(iter(paths.values())))
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing and not overwrite:
        raise OutputError(
            f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); pass overwrite=True "
            "(--overwrite on the command line) to replace them, or choose another outroot."
        )
    affine = affine_from_coords(ds["x"].values, ds["y"].values, ds["z"].values)
    arrays = [ds[n].transpose("x", "y", "z").data for n in names]
    write = dask.delayed(lambda *vols: _write_niftis(dict(zip(names, vols)), paths, affine))
    task = write(*arrays)
    return task.compute() if compute else task


def to_netcdf(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Write the Dataset to netCDF-4 atomically; ``xr.open_dataset`` reads it back.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    _check_target_dir(path)
    if os.path.exists(path) and not overwrite:
        raise OutputError(f"{path} already exists; pass overwrite=True to replace it, or choose another path.")
    tmp = atomic_path(path)
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(f"{path}: writing netCDF failed ({err}); nothing was written.") from err
        raise
    return path
