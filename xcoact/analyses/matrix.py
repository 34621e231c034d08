"""ROI x ROI coactivation matrix: each entry from the 2 x 2 table of the studies active in two ROIs.

A study is *active in* an ROI when :ref:`semantics-selection` selects it for that ROI.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._version import __version__
from ..counts import roi_overlaps
from ..kernels import check_radius
from ..roi import seed_set, uses_coords
from ..select import check_threshold, degenerate_reason, overlap_rule, threshold_kind, warn_degenerate
from ..stats.neurosynth import p_to_z, two_way_p
from .pipeline import _check_cube, _grid

__all__ = ["matrix", "REFERENCE"]

REFERENCE = (
    "phi coefficient (Pearson correlation of two binary study vectors; Yule 1912, Cramer 1946); "
    "association z: Pearson chi-square of the 2 x 2 table as in Neurosynth 0.3.8 MetaAnalysis "
    "(Yarkoni et al. 2011); see docs/semantics.md, 'The nine maps'"
)


def _phi(n11: np.ndarray, n_i: np.ndarray, n_j: np.ndarray, n: int) -> np.ndarray:
    """Phi of the 2 x 2 tables ``[[n11, n10], [n01, n00]]``; NaN where a margin is 0."""
    n11 = n11.astype(np.float64)
    n_i = n_i.astype(np.float64)
    n_j = n_j.astype(np.float64)
    n10 = n_i - n11
    n01 = n_j - n11
    n00 = n - n_i - n_j + n11
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = (n11 * n00 - n10 * n01) / np.sqrt((n_i * (n - n_i)) * (n_j * (n - n_j)))
    defined = (n_i > 0) & (n_i < n) & (n_j > 0) & (n_j < n)
    return np.where(defined, np.clip(phi, -1.0, 1.0), np.nan)


def _association_z(n_both: np.ndarray, n_active: np.ndarray, n: int) -> np.ndarray:
    """The association z of :ref:`semantics-maps`, row i: F = active in ROI i, A = active in ROI j."""
    z = np.full(n_both.shape, np.nan)
    for i, n_f in enumerate(int(k) for k in n_active):
        n_u = n - n_f
        if n_f == 0 or n_u == 0:
            continue  # no selected or no unselected study: undefined
        a = n_both[i].astype(np.int64)
        b = n_active.astype(np.int64) - a
        p = two_way_p(a, b, n_f, n_u)
        z[i] = p_to_z(p, np.sign(a / n_f - b / n_u))
    return z


def matrix(
    act: xr.DataArray,
    rois,
    threshold: float | int = 0.1,
    *,
    r: float = 6.0,
    by_label: bool = False,
    labels=None,
    separate: bool = False,
) -> xr.Dataset:
    """ROI x ROI coactivation matrix of a set of ROIs (:ref:`semantics-matrix`).

    A study is active in ROI ``i`` when it covers *more than* ``threshold`` of it (the rule of
    :func:`xcoact.seed`); each pair of ROIs gives the 2 x 2 table ``[[n11, n10], [n01, n00]]`` of studies.

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    rois : list, tuple or dict of seeds, an atlas image, or coordinates
        The ROIs, as :func:`xcoact.roi.seed_set` expands them (an atlas with ``by_label=True``, coordinates
        with ``separate=True``); a single seed gives a 1 x 1 matrix.
    threshold : float or int, default 0.1
        Proportion (float in [0, 1]) or number (int) of the ROI's voxels a study must cover, strictly.
    r : float, default 6
        Sphere radius in mm for coordinate seeds.
    by_label : bool, default False
        Treat an image as an atlas: one ROI per positive label value.
    labels : dict or path, optional
        Names of atlas labels (``{value: name}`` or a ``value name`` text file).
    separate : bool, default False
        Grow each coordinate into its own ROI.

    Returns
    -------
    xarray.Dataset
        dims ``("roi", "roi_other")``, both labelled by the ROI names:

        * ``n_both`` (int64): studies active in both ROIs (``S @ S.T``); the diagonal is ``n_active``;
        * ``phi`` (float64): the phi coefficient of the two binary study vectors; NaN where a margin is 0;
        * ``z`` (float64): the association z of :ref:`semantics-maps` with F = active in ``roi`` and A =
          active in ``roi_other`` (``z = sqrt(N) * phi`` where phi is defined, up to the p floor); NaN in
          the row of an ROI active in no study or in every study;
        * ``n_active (roi)`` and ``n_roi_voxels (roi)``;

        a ``description (roi)`` coordinate and the provenance in ``attrs``.

    Notes
    -----
    Cost: eager and small (``n_roi x n_studies`` booleans); the dense cube is never materialised.  A
    degenerate ROI gets a :class:`~xcoact.errors.DegenerateSeedWarning` and NaN ``phi`` and ``z`` row.

    Raises
    ------
    ParameterError
        A bad threshold, radius, or ROI argument.
    RoiError
        An unusable ROI image.

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> m = act.coact.matrix([xcoact.datasets.amygdala_roi_path(), [[0, 20, 28]]], r=10)
    >>> m["roi"].values.tolist(), m["n_active"].values.tolist(), int(m["n_both"][0, 1])
    (['amygdala_roi', '0_20_28'], [9, 4], 1)
    >>> round(float(m["phi"][0, 1]), 4), round(float(m["z"][0, 1]), 4)  # z = sqrt(100) * phi
    (0.1141, 1.1412)
    """
    _check_cube(act)
    threshold = check_threshold(threshold)
    r = check_radius(r)
    grid = _grid(act)
    found = seed_set(rois, grid, r, by_label=by_label, labels=labels, separate=separate)
    n_studies = int(act.sizes["study"])
    n_voxels = np.array([roi.voxels.size for roi in found], dtype=np.int64)
    overlaps = roi_overlaps(act, found, grid)

    active = np.zeros((len(found), n_studies), dtype=bool)
    problems = []
    for i, roi in enumerate(found):
        if roi.voxels.size == 0:
            problems.append(f"{roi.name!r} (no voxel in the brain mask)")
            continue
        active[i] = overlap_rule(overlaps[i], roi.voxels.size, threshold)
        reason = degenerate_reason(overlaps[i], roi.voxels.size, threshold)
        if reason is not None:
            what = "active in no study" if not active[i].any() else "active in every study"
            problems.append(f"{roi.name!r} ({what}; {reason.split('; ', 1)[1]})")
    warn_degenerate(problems, len(found), "ROIs give NaN phi and z", "Check their ROI or change the threshold.")

    s = active.astype(np.int64)
    n_both = s @ s.T
    n_active = np.diag(n_both).copy()
    phi = _phi(n_both, n_active[:, None], n_active[None, :], n_studies)
    z = _association_z(n_both, n_active, n_studies)

    names = [roi.name for roi in found]
    dims = ("roi", "roi_other")
    ds = xr.Dataset(
        {
            "n_both": (dims, n_both, {"long_name": "studies active in both ROIs"}),
            "phi": (dims, phi, {"long_name": "phi coefficient of the two ROIs' study vectors"}),
            "z": (dims, z, {"long_name": "association z: studies active in roi (F) vs active in roi_other (A)"}),
            "n_active": ("roi", n_active, {"long_name": "studies active in each ROI (selected by the overlap rule)"}),
            "n_roi_voxels": ("roi", n_voxels, {"long_name": "in-mask voxels of each ROI"}),
        },
        coords={
            "roi": names,
            "roi_other": names,
            "description": ("roi", np.array([roi.description for roi in found], dtype=str)),
        },
    )
    ds.attrs = {
        "title": "xcoact ROI coactivation matrix",
        "analysis": "ROI x ROI coactivation matrix",
        "database": str(act.attrs.get("database", "")),
        "r": float(act.attrs.get("r", np.nan)),
        **({"seed_r": float(r)} if uses_coords(rois, separate) else {}),
        "threshold": threshold,
        "threshold_kind": threshold_kind(threshold),
        "selection": "ROI coverage > threshold (Neurosynth)",
        "n_studies": n_studies,
        "n_rois": len(found),
        "by_label": int(by_label),
        "separate": int(separate),
        "reference": REFERENCE,
        "xcoact_version": __version__,
    }
    return ds
