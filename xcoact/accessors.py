"""The ``.coact`` accessor: a thin door onto the public functions.

``act.coact.seed(...)`` is :func:`xcoact.seed` with ``act`` filled in; each
method delegates in one line, so there is one code path to document and test.
"""

from __future__ import annotations

import os

import xarray as xr

from . import coact as _coact
from . import export as _export
from .matrix import matrix as _matrix  # the function: xcoact.matrix is rebound to it

__all__ = ["CoactDataArrayAccessor", "CoactDatasetAccessor"]


@xr.register_dataarray_accessor("coact")
class CoactDataArrayAccessor:
    """``.coact`` on the activation cube ``(study, x, y, z)``."""

    def __init__(self, obj: xr.DataArray):
        self._obj = obj

    def seed(self, seed, threshold: float | int = 0.0, *, r: float = 6.0, q: float = 0.01, prior: float = 0.5,
             by_label: bool = False, labels=None, separate: bool = False, dtype="float64",
             layout: str = "volume") -> xr.Dataset:
        """Coactivation maps of a seed, or of many; see :func:`xcoact.seed`."""
        return _coact.seed(self._obj, seed, threshold, r=r, q=q, prior=prior, by_label=by_label, labels=labels,
                           separate=separate, dtype=dtype, layout=layout)

    def coactivation(self, seed, threshold: float | int = 0.0, *, outroot, r: float = 6.0, q: float = 0.01,
                     prior: float = 0.5, overwrite: bool = False) -> xr.Dataset:
        """Compute and write a seed's maps; see :func:`xcoact.coactivation`."""
        return _coact.coactivation(self._obj, seed, threshold, outroot=outroot, r=r, q=q, prior=prior, overwrite=overwrite)

    def matrix(self, rois, threshold: float | int = 0.1, *, r: float = 6.0, by_label: bool = False, labels=None,
               separate: bool = False) -> xr.Dataset:
        """ROI x ROI coactivation matrix (n_both, phi, association z); see :func:`xcoact.matrix`."""
        return _matrix(self._obj, rois, threshold, r=r, by_label=by_label, labels=labels, separate=separate)


@xr.register_dataset_accessor("coact")
class CoactDatasetAccessor:
    """``.coact`` on a result Dataset of coactivation maps."""

    def __init__(self, obj: xr.Dataset):
        self._obj = obj

    def volumes(self) -> xr.Dataset:
        """A ``layout="voxel"`` batch as ``(seed, x, y, z)`` maps, lazily; see :func:`xcoact.export.to_volumes`."""
        return _export.to_volumes(self._obj)

    @property
    def maps(self) -> list[str]:
        """Names of the map variables."""
        return _export.map_variables(self._obj)

    def to_nifti(self, outroot: str | os.PathLike, *, names=None, overwrite: bool = False, compute: bool = True,
                 seeds_per_pass: int = 4):
        """Write ``{outroot}_{name}.nii.gz`` per map (per seed and map for a batch); see :func:`xcoact.to_nifti`."""
        return _export.to_nifti(self._obj, outroot, names=names, overwrite=overwrite, compute=compute,
                                seeds_per_pass=seeds_per_pass)

    def to_netcdf(self, path: str | os.PathLike, *, overwrite: bool = False, dtype=None, zlib_level: int = 0) -> str:
        """Write the whole Dataset to netCDF atomically; see :func:`xcoact.to_netcdf`."""
        return _export.to_netcdf(self._obj, path, overwrite=overwrite, dtype=dtype, zlib_level=zlib_level)

    def to_zarr(self, path: str | os.PathLike, *, overwrite: bool = False, dtype=None, compressor: str = "lz4") -> str:
        """Write the whole Dataset to a Zarr store atomically; see :func:`xcoact.to_zarr`."""
        return _export.to_zarr(self._obj, path, overwrite=overwrite, dtype=dtype, compressor=compressor)
