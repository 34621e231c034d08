"""ROI overlap -> the selected studies (SPEC section 5)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .errors import ParameterError, SelectionError

__all__ = ["check_threshold", "overlap_rule", "select_studies", "threshold_kind", "degenerate_reason", "warn_degenerate"]


def threshold_kind(threshold) -> Literal["proportion", "count"]:
    """``"count"`` for an int threshold (voxels), ``"proportion"`` for a float."""
    return "count" if isinstance(threshold, (int, np.integer)) else "proportion"


def check_threshold(threshold) -> float | int:
    """Validate a selection threshold.

    A float is a proportion of the ROI's voxels, in [0, 1]; an int is a voxel
    count >= 0 (Neurosynth 0.3.8 distinguishes the two by type).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        kind = " (a bool, which would silently count as 0 or 1 voxel)" if isinstance(threshold, (bool, np.bool_)) else ""
        raise ParameterError(
            f"threshold={threshold!r} is not a number{kind}; expected a proportion of ROI voxels in [0, 1] "
            "(a float, e.g. 0.1) or a voxel count >= 0 (an int, e.g. 5)."
        )
    if isinstance(threshold, (int, np.integer)):
        if threshold < 0:
            raise ParameterError(f"threshold={threshold!r} is a negative voxel count; expected an int >= 0 (or a float proportion in [0, 1]).")
        return int(threshold)
    t = float(threshold)
    if not math.isfinite(t) or t < 0 or t > 1:
        what = "is NaN or infinite, not a number in" if not math.isfinite(t) else "is outside"
        raise ParameterError(
            f"threshold={threshold!r} {what} [0, 1]; a float threshold is the proportion of ROI voxels a study "
            "must cover (e.g. 0.1). For an absolute voxel count pass an int (e.g. threshold=5)."
        )
    return t


def overlap_rule(overlap: np.ndarray, n_roi: int, threshold: float | int) -> np.ndarray:
    """SPEC section 5: ``overlap > t`` for an int, ``overlap / n_roi > t`` for a float (strict)."""
    overlap = np.asarray(overlap)
    if isinstance(threshold, (int, np.integer)):
        return overlap > threshold
    return overlap.astype(np.float64) / n_roi > threshold


def select_studies(overlap: np.ndarray, n_roi: int, threshold, *, seed_name: str = "seed") -> np.ndarray:
    """Which studies cover more than ``threshold`` of the ROI (strictly).

    Parameters
    ----------
    overlap : (n_studies,) int array
        ROI voxels active in each study.
    n_roi : int
        ROI size in voxels.
    threshold : float or int
        Proportion (float) or voxel count (int); see :func:`check_threshold`.
    seed_name : str
        Used in error messages.

    Returns
    -------
    (n_studies,) bool array

    Raises
    ------
    SelectionError
        No study, or every study, is selected: the maps would be undefined.
    """
    threshold = check_threshold(threshold)
    overlap = np.asarray(overlap)
    selected = overlap_rule(overlap, n_roi, threshold)
    n = overlap.size
    k = int(selected.sum())
    if k == 0:
        best = int(overlap.max()) if n else 0
        if best == 0:
            raise SelectionError(
                f"no study selected for {seed_name}: none of the {n} studies has an active voxel in its {n_roi} ROI "
                f"voxels (largest overlap 0), so no threshold can select one. Use a larger or different ROI."
            )
        raise SelectionError(
            f"no study selected for {seed_name}: the largest overlap any of the {n} studies reached is "
            f"{best} of {n_roi} ROI voxels ({best / n_roi:.4g}), and threshold={threshold!r} needs more than "
            f"{'that many voxels' if isinstance(threshold, int) else 'that proportion'}. "
            f"Lower the threshold below {best if isinstance(threshold, int) else round(best / n_roi, 6)} or use a larger ROI."
        )
    if k == n:
        worst = int(overlap.min())
        if worst == int(overlap.max()):
            raise SelectionError(
                f"every one of the {n} studies was selected for {seed_name}: each covers the same {worst} of "
                f"{n_roi} ROI voxels, so no threshold can separate selected from unselected studies. Use a "
                "different ROI, or a database whose studies differ there."
            )
        raise SelectionError(
            f"every one of the {n} studies was selected for {seed_name} (the smallest overlap is {worst} of "
            f"{n_roi} ROI voxels), so there are no unselected studies to compare with. Raise the threshold "
            f"above {worst if isinstance(threshold, int) else round(worst / n_roi, 6)}."
        )
    return selected


def degenerate_reason(overlap: np.ndarray, n_roi: int, threshold) -> str | None:
    """Why a selection is unusable (no study or every study), with its largest overlap; None if usable."""
    k = int(overlap_rule(overlap, n_roi, threshold).sum())
    if 0 < k < np.asarray(overlap).size:
        return None
    what = "no study selected" if k == 0 else "every study selected"
    return f"{what}; largest overlap {int(np.max(overlap))} of {n_roi} voxels"


def warn_degenerate(problems: list[str], n_total: int, consequence: str, advice: str, stacklevel: int = 3) -> None:
    """One warning listing the degenerate seeds or ROIs of a batch (the first 20 of them)."""
    import warnings

    from .warnings import DegenerateSeedWarning

    if problems:
        warnings.warn(
            f"{len(problems)} of {n_total} {consequence}: " + "; ".join(problems[:20])
            + ("; ..." if len(problems) > 20 else "") + f". {advice}",
            DegenerateSeedWarning,
            stacklevel=stacklevel + 1,
        )
