"""Presets: the numbers of a reference implementation, held as data.

A preset fixes everything that decides the numbers of an analysis besides the
database and the seed: the kernel radius, the grid and its brain mask, how
Talairach peaks reach MNI, how a peak's mm become a voxel, how studies are
selected, and which maps are computed from the counts.

``"neurosynth"`` (the default) is Neurosynth 0.3.8, as docs/semantics.md describes it.
``"nimare"`` is NiMARE 0.22.1's ``MKDAChi2`` coactivation (MACM) analysis:

============== ============================== =========================================
               neurosynth                     nimare
============== ============================== =========================================
kernel         binary sphere, r = 6 mm        binary sphere (``MKDAKernel``), r = 10 mm
grid           MNI152 2 mm, LAS, 228,453 vox  MNI152NLin6Asym 2 mm, RAS, 228,483 vox
TAL -> MNI     ``inv(icbm_spm2tal)``          ``inv(icbm_other2tal)``, ``TAL`` labels only
peak -> voxel  round half to even             round half to even (``utils.mm2vox``)
selection      ROI overlap >= threshold       a focus in the ROI (``get_studies_by_mask``)
min_studies    1 (dead voxels are 0)          none
z              from p, floored at 1e-240      ``sign * sqrt(chi2)``, p in log space
FDR            z where p <= BH threshold      BH-adjusted p, z and -log10 p maps
============== ============================== =========================================

NiMARE's mask holds every voxel of Neurosynth's and 30 more, all in the
bottom slice (z = -72 mm).
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

    The mask is the bundled ``nimare_mni152_2mm_mask.nii.gz``, a copy of
    NiMARE 0.22.1's ``resources/templates/tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz``
    (what ``nimare.utils.get_template("mni152_2mm", mask="brain")`` loads):
    228,483 voxels, on a RAS affine (x ascending from -90 mm), so the in-mask
    voxels come in the order of NiMARE's masked arrays.

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
    # q has no role: NiMARE's FDR maps are adjusted p-values
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
        The ``space`` labels that affine applies to: compared in upper case by
        Neurosynth's rule (``TAL``, ``T88``, ``TALAIRACH``), exactly by NiMARE's
        (``TAL``, ``Talairach``; any other label is used as it is).
    select : {"overlap", "focus"}
        ``"overlap"``: a study is selected when its activation covers at least
        ``threshold`` of the ROI (Neurosynth); ``"focus"``: when one of its
        peaks lies in the ROI (NiMARE's ``get_studies_by_mask``; no threshold).
    min_studies : int
        Voxels active in fewer studies are 0 in every map (0: no masking).
    maps : callable
        ``maps(a, total, n_sel, n_uns, grid, *, q, prior) -> dict[name, (n_mask,) float64]``.
    map_names : callable
        ``map_names(q, prior) -> list[str]``, the keys of ``maps`` in order.
    reference : str
        What the preset reproduces.
    peak_transform : callable or None
        ``f(xyz, space) -> xyz``: moves the coordinate table's (MNI) mm to the
        mm the reference uses, before the peaks are put on voxels.
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
        peak_transform=None,
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

    Each peak's voxel is its rounded voxel on the source's grid
    (``source.ijk``), clipped into the grid's box as NiMARE clips it (a peak
    beyond the box counts at the nearest edge voxel); a study is selected when
    any of its peaks' voxels is in the ROI.

    Parameters
    ----------
    source : xcoact.blocks.StudyChunk
        A run of studies' peaks on the grid: a block's chunk, or the cube's peaks
        (:func:`xcoact.counts.cube_peaks`).
    roi : (n,) int array or bool array of ``source.grid.shape``
        The ROI's voxels as flat C-order indices on the grid (or as a mask).
        For NiMARE's numbers pass every voxel > 0 of the ROI image, not only
        those inside the brain mask: NiMARE does not restrict the ROI to it.

    Returns
    -------
    (n_studies,) bool array, in ``source.studies`` order.

    Notes
    -----
    NiMARE rounds each focus on the ROI image's own affine; on the same voxel
    lattice (the bundled ROIs, LAS or RAS) numpy's half-to-even rounding lands
    on the same voxel centre either way, so the selection is the same.
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

    Under ``preset="nimare"`` xcoact moves each peak by its own ``space``
    label (``TAL``/``Talairach`` with NiMARE's ``tal2mni``, other labels as
    they are).  NiMARE's Neurosynth conversion
    (``convert_neurosynth_to_dataset``/``_studyset``) takes one space per
    study from the metadata file and moves all of the study's peaks by it, so
    for a study with rows of both kinds the two place some peaks differently.
    Presets without a peak transform of their own (Neurosynth) return at once:
    the reader's :class:`~xcoact.errors.MixedSpaceWarning` covers them.

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
        parts.append(
            f"{sid!r} ("
            + ", ".join(f"{str(lab)!r}: {int(c)} peak{'s' * (int(c) != 1)}" for lab, c in zip(labels, counts))
            + ")"
        )
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
