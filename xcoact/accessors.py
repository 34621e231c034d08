"""The ``.coact`` accessor: a thin door onto the public functions.

``act.coact.seed(...)`` is :func:`xcoact.seed` with ``act`` filled in; each
method delegates in one line, so there is one code path to document and test.
"""

from __future__ import annotations

import os

import xarray as xr

from . import writers as _export
from .analyses import contrast as _contrast
from .analyses import meta as _meta
from .analyses import parcellate as _parcellate
from .analyses import seed as _seed
from .analyses.matrix import matrix as _matrix  # the function: xcoact.matrix is rebound to it
from .choices import (
    BothRule,
    Compressor,
    FilterRange,
    FweMethod,
    Layout,
    MapDtype,
    Naming,
    NullMethod,
    PlotEngine,
    PoolProfile,
    PoolRule,
    PresetName,
    SelectRule,
)
from .errors import ParameterError

__all__ = ["CoactDataArrayAccessor", "CoactDatasetAccessor"]


@xr.register_dataarray_accessor("coact")
class CoactDataArrayAccessor:
    """``.coact`` on the activation cube ``(study, x, y, z)``."""

    def __init__(self, obj: xr.DataArray):
        self._obj = obj

    def seed(
        self,
        seed,
        threshold: float | int | None = None,
        *,
        r: float = 6.0,
        select: SelectRule | None = None,
        k: int | None = None,
        q: float = 0.01,
        prior: float = 0.5,
        by_label: bool = False,
        labels=None,
        separate: bool = False,
        dtype: MapDtype = "float64",
        layout: Layout = "volume",
        preset: PresetName | None = None,
        fwe: int | FweMethod | None = None,
        fwe_seed: int | None = None,
        null: NullMethod | None = None,
        n_iter: int | None = None,
        null_seed: int | None = None,
    ) -> xr.Dataset:
        """Coactivation maps of a seed, or of many; see :func:`xcoact.seed`."""
        return _seed.seed(
            self._obj,
            seed,
            threshold,
            r=r,
            select=select,
            k=k,
            q=q,
            prior=prior,
            by_label=by_label,
            labels=labels,
            separate=separate,
            dtype=dtype,
            layout=layout,
            preset=preset,
            fwe=fwe,
            fwe_seed=fwe_seed,
            null=null,
            n_iter=n_iter,
            null_seed=null_seed,
        )

    def contrast(
        self,
        seed_a,
        seed_b,
        threshold: float | int | None = None,
        *,
        r: float = 6.0,
        select: SelectRule | None = None,
        k: int | None = None,
        both: BothRule = "exclude",
        q: float = 0.01,
        prior: float = 0.5,
        dtype: MapDtype = "float64",
        preset: PresetName | None = None,
        n_iter: int | None = None,
        seed: int | None = None,
    ) -> xr.Dataset:
        """Maps of the studies seed A selects vs those seed B selects; see :func:`xcoact.contrast`."""
        return _contrast.contrast(
            self._obj,
            seed_a,
            seed_b,
            threshold,
            r=r,
            select=select,
            k=k,
            both=both,
            q=q,
            prior=prior,
            dtype=dtype,
            preset=preset,
            n_iter=n_iter,
            seed=seed,
        )

    def coactivation(
        self,
        seed,
        threshold: float | int | None = None,
        *,
        outroot,
        r: float = 6.0,
        select: SelectRule | None = None,
        k: int | None = None,
        q: float = 0.01,
        prior: float = 0.5,
        overwrite: bool = False,
    ) -> xr.Dataset:
        """Compute and write a seed's maps; see :func:`xcoact.coactivation`."""
        return _seed.coactivation(
            self._obj, seed, threshold, outroot=outroot, r=r, select=select, k=k, q=q, prior=prior, overwrite=overwrite
        )

    def matrix(
        self,
        rois,
        threshold: float | int = 0.1,
        *,
        r: float = 6.0,
        by_label: bool = False,
        labels=None,
        separate: bool = False,
    ) -> xr.Dataset:
        """ROI x ROI coactivation matrix (n_both, phi, association z); see :func:`xcoact.matrix`."""
        return _matrix(self._obj, rois, threshold, r=r, by_label=by_label, labels=labels, separate=separate)

    def meta(self, ids, *, q: float = 0.01, prior: float = 0.5, ids2=None) -> xr.Dataset:
        """Meta-analysis maps of an explicit study selection; see :func:`xcoact.analyses.meta.meta`."""
        return _meta.meta(self._obj, ids, q=q, prior=prior, ids2=ids2)

    def term(
        self,
        term,
        features: xr.DataArray | None = None,
        threshold: float = 0.001,
        *,
        q: float = 0.01,
        prior: float = 0.5,
    ) -> xr.Dataset:
        """Meta-analysis maps of the studies carrying a term; see :func:`xcoact.analyses.decode.term`."""
        from .analyses import decode as _decode

        return _decode.term(self._obj, term, features, threshold, q=q, prior=prior)

    def parcellate(
        self,
        roi,
        k=range(2, 10),
        *,
        filters=_parcellate.DEFAULT_FILTERS,
        select: PoolRule = "nearest",
        profile: PoolProfile = "mkda",
        n_init: int = _parcellate.DEFAULT_N_INIT,
        seed: int = 0,
        filter_range: FilterRange = "stable",
        r: float = 6.0,
        max_iter: int = 300,
        compute: bool = False,
        sample_size: float | None = None,
        fwhm: float | None = None,
    ) -> xr.Dataset:
        """Coactivation-based parcellation of an ROI; see :func:`xcoact.analyses.parcellate.parcellate`."""
        return _parcellate.parcellate(
            self._obj,
            roi,
            k,
            filters=filters,
            select=select,
            profile=profile,
            n_init=n_init,
            seed=seed,
            filter_range=filter_range,
            r=r,
            max_iter=max_iter,
            compute=compute,
            sample_size=sample_size,
            fwhm=fwhm,
        )

    def profile(self, selection, features: xr.DataArray | None = None, threshold: float = 0.001, *, terms=None):
        """Functional profile (terms the selected studies carry vs chance).

        See :func:`xcoact.analyses.decode.profile`.
        """
        from .analyses import decode as _decode

        return _decode.profile(self._obj, selection, features, threshold, terms=terms)


@xr.register_dataset_accessor("coact")
class CoactDatasetAccessor:
    """``.coact`` on a result Dataset of coactivation maps."""

    def __init__(self, obj: xr.Dataset):
        self._obj = obj

    def fwe(
        self,
        act: xr.DataArray | None = None,
        *,
        n_iter: int | FweMethod = 1000,
        seed: int | None = None,
        alpha: float = 0.05,
        cluster_p: float = 0.001,
        connectivity: int = 26,
        early_stop: bool = False,
        batch_size: int = 50,
        progress: bool | None = None,
    ) -> xr.Dataset:
        """Family-wise error corrected maps (permutation or Bonferroni); see :func:`xcoact.stats.fwe.fwe`."""
        from .stats.fwe import fwe as _fwe

        return _fwe(
            self._obj,
            act,
            n_iter=n_iter,
            seed=seed,
            alpha=alpha,
            cluster_p=cluster_p,
            connectivity=connectivity,
            early_stop=early_stop,
            batch_size=batch_size,
            progress=progress,
        )

    def volumes(self) -> xr.Dataset:
        """A ``layout="voxel"`` batch as ``(seed, x, y, z)`` maps, lazily; see :func:`xcoact.writers.to_volumes`."""
        return _export.to_volumes(self._obj)

    @property
    def maps(self) -> list[str]:
        """Names of the map variables."""
        return _export.map_variables(self._obj)

    def to_nifti(
        self,
        outroot: str | os.PathLike,
        *,
        names=None,
        overwrite: bool = False,
        compute: bool = True,
        seeds_per_pass: int = 4,
        naming: Naming = "neurosynth",
        sidecar: bool = True,
        progress: bool | None = None,
    ):
        """Write ``{outroot}_{name}.nii.gz`` and a JSON sidecar per map (per seed and map for a batch).

        See :func:`xcoact.to_nifti`.
        """
        return _export.to_nifti(
            self._obj,
            outroot,
            names=names,
            overwrite=overwrite,
            compute=compute,
            seeds_per_pass=seeds_per_pass,
            naming=naming,
            sidecar=sidecar,
            progress=progress,
        )

    def to_netcdf(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        dtype: MapDtype | None = None,
        zlib_level: int = 1,
        progress: bool | None = None,
    ) -> str:
        """Write the whole Dataset to netCDF atomically; see :func:`xcoact.to_netcdf`."""
        return _export.to_netcdf(
            self._obj, path, overwrite=overwrite, dtype=dtype, zlib_level=zlib_level, progress=progress
        )

    def to_zarr(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        dtype: MapDtype | None = None,
        compressor: Compressor = "auto",
        progress: bool | None = None,
    ) -> str:
        """Write the whole Dataset to a Zarr store atomically; see :func:`xcoact.to_zarr`."""
        return _export.to_zarr(
            self._obj, path, overwrite=overwrite, dtype=dtype, compressor=compressor, progress=progress
        )

    def decode(
        self,
        features: xr.DataArray | None = None,
        act: xr.DataArray | None = None,
        *,
        terms=None,
        threshold: float | None = None,
        map: str | None = None,
        q: float | None = None,
        prior: float | None = None,
    ):
        """Rank terms by the Pearson r of their maps with this result's map; see :func:`xcoact.analyses.decode.decode`.

        ``act`` is the activation cube the term maps are computed from; by
        default the cube the result came from, which a result carries in
        memory (not after it was written to and read from a file).
        ``features`` defaults to the database's own
        (:func:`xcoact.analyses.decode.features_for`).
        """
        from .analyses import decode as _decode
        from .result import cube_of

        act = cube_of(self._obj) if act is None else act
        if act is None:
            raise _decode.ParameterError(
                "decode needs the activation cube to compute the term maps from, and this result no longer carries "
                "the one it came from (read from a file, or rebuilt); pass it: maps.coact.decode(features, act=act)."
            )
        return _decode.decode(self._obj, features, act, terms=terms, threshold=threshold, map=map, q=q, prior=prior)

    def plot(self, name: str | None = None, *, engine: PlotEngine = "matplotlib", **kwargs):
        """Draw a map (slices and glass brain, or a batch as small multiples); see :func:`xcoact.plot.plot`.

        ``engine="nilearn"`` draws with nilearn instead (:func:`xcoact.images.plot_nilearn`).
        """
        from .images import ENGINES, plot_nilearn
        from .plot import plot

        if engine not in ENGINES:
            raise ParameterError(f"engine={engine!r} is not known; expected one of {list(ENGINES)}.")
        return plot_nilearn(self._obj, name, **kwargs) if engine == "nilearn" else plot(self._obj, name, **kwargs)

    def to_nibabel(self, name: str | None = None, seed: str | None = None):
        """One map as an in-memory ``nibabel.Nifti1Image`` (a batch: 4-D, or one seed's).

        See :func:`xcoact.to_nibabel`.
        """
        from .images import to_nibabel

        return to_nibabel(self._obj, name, seed)

    def view(self, name: str | None = None, **kwargs):
        """nilearn's interactive viewer on a map, for notebooks; see :func:`xcoact.images.view`."""
        from .images import view

        return view(self._obj, name, **kwargs)

    def clusters(self, name: str | None = None, **kwargs):
        """The cluster table of a map (pandas DataFrame); see :func:`xcoact.stats.clusters.clusters`."""
        from .stats.clusters import clusters

        return clusters(self._obj, name, **kwargs)

    def load(self) -> xr.Dataset:
        """Compute in place; a parcellation also gets ``attrs["k_suggested"]`` (see ``parcellate.load``)."""
        return _parcellate.load(self._obj)

    def clusters_of(self, k: int) -> dict:
        """A parcellation's K clusters as ROIs ``{"cluster_1": mask, ...}`` for ``act.coact.seed``.

        See :func:`xcoact.analyses.parcellate.clusters_of`.
        """
        from .analyses.parcellate import clusters_of

        return clusters_of(self._obj, k)

    def report(self, path: str | os.PathLike, **kwargs) -> str:
        """Write a self-contained HTML report atomically; see :func:`xcoact.report.report`."""
        from .report import report

        return report(self._obj, path, **kwargs)
