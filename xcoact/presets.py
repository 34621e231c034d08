"""Presets: the numbers of a reference implementation, held as data.

A preset fixes what decides an analysis's numbers besides the database and the seed: the kernel radius, the
grid and mask, Talairach -> MNI, peak rounding, study selection and the maps.  ``"neurosynth"`` (the default)
is Neurosynth 0.3.8 (docs/semantics.md); ``"nimare"`` NiMARE 0.22.1's ``MKDAChi2`` MACM (docs/nimare.md lists
every difference).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np

from .errors import MixedSpaceWarning, ParameterError, caller_stacklevel
from .space import Grid, mni152_2mm
from .stats import neurosynth as stats
from .stats import nimare as stats_nimare
from .table import TAL_LABELS

__all__ = [
    "Preset",
    "PRESETS",
    "get_preset",
    "nimare_mni152_2mm",
    "focus_selected",
    "mixed_space_studies",
    "warn_mixed_spaces",
]

#: How many mixed-space studies a warning describes one by one (the rest are counted).
_SHOWN = 5


@functools.lru_cache(maxsize=1)
def nimare_mni152_2mm() -> Grid:
    """NiMARE's default grid: MNI152NLin6Asym 2 mm, 91 x 109 x 91, its brain mask.

    The bundled copy of NiMARE 0.22.1's ``tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz``: 228,483 voxels,
    RAS (x ascending), so the in-mask voxels come in the order of NiMARE's masked arrays.

    Returns
    -------
    xcoact.space.Grid

    Examples
    --------
    >>> nimare_mni152_2mm().n_mask
    228483
    """
    import nibabel as nib

    path = resources.files("xcoact.datasets") / "data" / "nimare_mni152_2mm_mask.nii.gz"
    with resources.as_file(path) as p:
        img = nib.load(str(p))
        data = np.asarray(img.dataobj)
        return Grid(img.shape, img.affine, data > 0, name="NiMARE MNI152NLin6Asym 2mm")


def _neurosynth_maps(a, total, n_sel, n_uns, grid=None, *, q=0.01, prior=0.5) -> dict[str, np.ndarray]:
    return stats.coactivation_maps(np.asarray(a), np.asarray(total) - np.asarray(a), n_sel, n_uns, q=q, prior=prior)


def _nimare_maps(a, total, n_sel, n_uns, grid=None, *, q=0.01, prior=0.5) -> dict[str, np.ndarray]:
    return stats_nimare.mkda_chi2_maps(np.asarray(a), np.asarray(total) - np.asarray(a), n_sel, n_uns, prior=prior)


@dataclass(frozen=True)
class Preset:
    """What makes an analysis reproduce one reference implementation.

    Attributes
    ----------
    name : str
    kernel_r : float
        Sphere radius (mm) used when ``activations`` is given no ``r``.
    grid : callable () -> Grid
        The grid and brain mask used when ``activations`` is given no ``grid``.
    tal_labels : frozenset of str
        The Talairach ``space`` labels (Neurosynth's compared in upper case, NiMARE's exactly).
    select : {"overlap", "focus"}
        The default selection rule: ROI coverage (Neurosynth) or a focus in the ROI (NiMARE).
    min_studies : int
        Voxels active in fewer studies are 0 in every map (0: no masking).
    maps : callable
        ``maps(a, total, n_sel, n_uns, grid, *, q, prior) -> dict[name, (n_mask,) float64]``.
    map_names : callable
        ``map_names(q, prior) -> list[str]``, the keys of ``maps`` in order.
    reference : str
        What the preset reproduces.
    peak_transform : callable or None
        ``f(xyz, space) -> xyz``: the table's (MNI) mm to the reference's, before peaks are put on voxels.
    """

    name: str
    kernel_r: float
    grid: Callable[[], Grid]
    tal_labels: frozenset
    select: Literal["overlap", "focus"]
    min_studies: int
    maps: Callable[..., dict]
    map_names: Callable[..., list]
    reference: str
    peak_transform: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


PRESETS: dict[str, Preset] = {
    "neurosynth": Preset(
        name="neurosynth",
        kernel_r=6.0,
        grid=mni152_2mm,
        tal_labels=TAL_LABELS,
        select="overlap",
        min_studies=1,
        maps=_neurosynth_maps,
        map_names=stats.map_names,
        reference="Neurosynth 0.3.8 network.coactivation (MetaAnalysis, min_studies=1)",
    ),
    "nimare": Preset(
        name="nimare",
        kernel_r=10.0,
        grid=nimare_mni152_2mm,
        tal_labels=stats_nimare.NIMARE_TAL_LABELS,
        select="focus",
        min_studies=0,
        maps=_nimare_maps,
        map_names=stats_nimare.map_names,
        reference="NiMARE 0.22.1 MKDAChi2(kernel__r=10) + FDRCorrector(method='indep'), "
        "studies selected by Dataset.get_studies_by_mask",
        peak_transform=stats_nimare._nimare_peak_xyz,
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """The :class:`Preset` of a name (a Preset is returned as it is).

    Parameters
    ----------
    preset : str or Preset

    Returns
    -------
    Preset

    Raises
    ------
    ParameterError
        Unknown name; the message lists the valid ones.

    Examples
    --------
    >>> get_preset("nimare").kernel_r
    10.0
    """
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    raise ParameterError(f"preset={preset!r} is not a known preset; expected one of {sorted(PRESETS)}.")


def focus_selected(source, roi) -> np.ndarray:
    """Studies with at least one peak inside an ROI: NiMARE's ``Dataset.get_studies_by_mask``.

    A peak beyond the grid's box counts at the nearest edge voxel, as NiMARE clips it.

    Parameters
    ----------
    source : xcoact.blocks.StudyChunk
        A run of studies' peaks on the grid: a block's chunk, or :func:`xcoact.counts.cube_peaks`.
    roi : (n,) int array or bool array of ``source.grid.shape``
        The ROI's voxels as flat C-order indices, or a mask; for NiMARE's numbers every voxel > 0 of the
        ROI image, the brain mask's or not.

    Returns
    -------
    (n_studies,) bool array, in ``source.studies`` order.

    Raises
    ------
    ParameterError
        ``roi`` is neither flat indices on the grid nor a mask of its shape.
    """
    grid = source.grid
    size = int(np.prod(grid.shape))
    roi = np.asarray(roi)
    lookup = np.zeros(size, dtype=bool)
    if roi.dtype == bool:
        if roi.shape != grid.shape:
            raise ParameterError(f"roi mask has shape {roi.shape}; expected the grid's {grid.shape}.")
        lookup = roi.reshape(-1)
    else:
        if (
            roi.ndim != 1
            or not np.issubdtype(roi.dtype, np.integer)
            or (roi.size and (roi.min() < 0 or roi.max() >= size))
        ):
            raise ParameterError(
                f"roi must be flat voxel indices in [0, {size}) or a bool mask of shape {grid.shape}; "
                f"got a {roi.dtype} array of shape {roi.shape}."
            )
        lookup[roi] = True
    ijk = np.clip(source.ijk, 0, np.asarray(grid.shape) - 1)
    hit = lookup[np.ravel_multi_index(tuple(ijk.T), grid.shape)]
    selected = np.zeros(source.n_studies, dtype=bool)
    selected[source.codes[hit]] = True
    return selected


def mixed_space_studies(study_id, space, moved_labels) -> np.ndarray:
    """Studies whose peaks a preset moves by two rules: some rows' labels are moved, others are not.

    Parameters
    ----------
    study_id : (n,) array
        Each peak's study.
    space : (n,) array of str
        Each peak's space label, as the table holds it.
    moved_labels : collection of str
        The labels the preset moves from Talairach (compared exactly, as
        NiMARE compares them: :attr:`Preset.tal_labels` of ``"nimare"``).

    Returns
    -------
    (k,) array of the mixing studies' ids, sorted.

    Examples
    --------
    >>> spaces = ["MNI", "TAL", "TAL", "Talairach", "UNKNOWN"]
    >>> mixed_space_studies([1, 1, 2, 2, 3], spaces, {"TAL", "Talairach"}).tolist()
    [1]
    """
    study_id = np.asarray(study_id)
    if study_id.size == 0:
        return study_id[:0]
    labels, label_of = np.unique(np.asarray(space).astype(str), return_inverse=True)
    moved = np.isin(labels, list(moved_labels))[label_of.ravel()]
    studies, codes = np.unique(study_id, return_inverse=True)
    codes = codes.ravel()
    n_moved = np.bincount(codes, weights=moved, minlength=len(studies))
    n_rows = np.bincount(codes, minlength=len(studies))
    return studies[(n_moved > 0) & (n_moved < n_rows)]


def warn_mixed_spaces(table, preset: Preset) -> np.ndarray:
    """Warn once, naming them, about studies a preset's per-row peak transform treats as mixing spaces.

    xcoact moves each peak by its own label; NiMARE's Neurosynth conversion by one space per study.  Presets
    without a peak transform (Neurosynth) return at once: the reader's warning covers them.

    Parameters
    ----------
    table : xarray.Dataset
        The coordinate table (``study_id`` and ``space`` over ``peak``).
    preset : Preset

    Returns
    -------
    (k,) array of the mixing studies' ids (empty: no warning).

    Warns
    -----
    MixedSpaceWarning
        One warning for all such studies, the first five described by label and row count.
    """
    if preset.peak_transform is None or "space" not in table:
        return np.asarray([])
    study_id = table["study_id"].values
    space = table["space"].values.astype(str)
    mixed = mixed_space_studies(study_id, space, preset.tal_labels)
    if not mixed.size:
        return mixed
    parts = []
    for sid in mixed[:_SHOWN]:
        labels, counts = np.unique(space[study_id == sid], return_counts=True)
        sid = sid.item() if isinstance(sid, np.generic) else sid
        rows = ", ".join(f"{str(lab)!r}: {int(c)} peak{'s' * (int(c) != 1)}" for lab, c in zip(labels, counts))
        parts.append(f"{sid!r} ({rows})")
    more = f"; and {mixed.size - _SHOWN} more" if mixed.size > _SHOWN else ""
    moved = "/".join(sorted(preset.tal_labels))
    warnings.warn(
        f"{table.attrs.get('database', '<table>')}: {mixed.size} stud(y/ies) list peaks in more than one space "
        f"under preset={preset.name!r}: {'; '.join(parts)}{more}. xcoact moves each peak by its own label "
        f"({moved} to MNI, other labels as they are); NiMARE's Neurosynth conversion takes one space per study "
        "from the metadata file and moves all of the study's peaks by it, so these studies' spheres, and the "
        "maps, can differ from NiMARE's. To match such a NiMARE run, give each study one space (e.g. read the "
        "v7 coordinates file with its metadata).",
        MixedSpaceWarning,
        stacklevel=caller_stacklevel(),
    )
    return mixed
