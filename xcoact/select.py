"""ROI overlap -> the selected studies (:ref:`semantics-selection`)."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np

from .errors import ParameterError, SelectionError

__all__ = [
    "RULES",
    "SelectionRule",
    "check_rule",
    "check_threshold",
    "overlap_rule",
    "select_studies",
    "threshold_kind",
    "degenerate_reason",
    "warn_degenerate",
    "focus_counts",
    "min_distances",
]

#: The named study-selection rules (``"overlap"``, the default: docs/semantics.md, 'Selecting studies').
RULES = ("overlap", "focus", "distance", "nearest")


def threshold_kind(threshold) -> Literal["proportion", "count"]:
    """``"count"`` for an int threshold (voxels), ``"proportion"`` for a float."""
    return "count" if isinstance(threshold, (int, np.integer)) else "proportion"


def check_threshold(threshold) -> float | int:
    """Validate a selection threshold.

    A float is a proportion of the ROI's voxels, in [0, 1]; an int is a voxel
    count >= 0 (Neurosynth 0.3.8 distinguishes the two by type).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        kind = (
            " (a bool, which would silently count as 0 or 1 voxel)" if isinstance(threshold, (bool, np.bool_)) else ""
        )
        raise ParameterError(
            f"threshold={threshold!r} is not a number{kind}; expected a proportion of ROI voxels in [0, 1] "
            "(a float, e.g. 0.1) or a voxel count >= 0 (an int, e.g. 5)."
        )
    if isinstance(threshold, (int, np.integer)):
        if threshold < 0:
            raise ParameterError(
                f"threshold={threshold!r} is a negative voxel count; expected an int >= 0 "
                "(or a float proportion in [0, 1])."
            )
        return int(threshold)
    t = float(threshold)
    if not math.isfinite(t) or t < 0 or t > 1:
        what = "is NaN or infinite, not a number in" if not math.isfinite(t) else "is outside"
        raise ParameterError(
            f"threshold={threshold!r} {what} [0, 1]; a float threshold is the proportion of ROI voxels a study "
            "must cover (e.g. 0.1). For an absolute voxel count pass an int (e.g. threshold=5)."
        )
    return t


def overlap_rule(overlap: np.ndarray, n_roi: int | None, threshold: float | int) -> np.ndarray:
    """:ref:`semantics-selection`: ``overlap > t`` for an int, ``overlap / n_roi > t`` for a float (strict)."""
    overlap = np.asarray(overlap)
    if isinstance(threshold, (int, np.integer)):
        return overlap > threshold
    assert n_roi is not None  # a proportion of the ROI needs its size
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
            f"Lower the threshold below {best if isinstance(threshold, int) else round(best / n_roi, 6)} "
            "or use a larger ROI."
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


def warn_degenerate(problems: list[str], n_total: int, consequence: str, advice: str) -> None:
    """One warning listing the degenerate seeds or ROIs of a batch (the first 20 of them)."""
    import warnings

    from .errors import DegenerateSeedWarning, caller_stacklevel

    if problems:
        warnings.warn(
            f"{len(problems)} of {n_total} {consequence}: "
            + "; ".join(problems[:20])
            + ("; ..." if len(problems) > 20 else "")
            + f". {advice}",
            DegenerateSeedWarning,
            stacklevel=caller_stacklevel(),
        )


# --- the named rules -------------------------------------------------------------------------------


class SelectionRule(NamedTuple):
    """A study-selection rule and its parameters, validated.

    ``rule`` is one of :data:`RULES`; ``threshold`` applies to ``"overlap"``,
    ``r`` (mm) to ``"distance"``, ``k`` (studies) to ``"nearest"``.
    """

    rule: str
    threshold: float | int | None = None
    r: float | None = None
    k: int | None = None

    @property
    def score_name(self) -> str:
        """Name of the per-study quantity the rule thresholds."""
        return {"overlap": "overlap", "focus": "peaks_in_roi"}.get(self.rule, "distance")

    @property
    def score_long_name(self) -> str:
        return {
            "overlap": "ROI voxels active in each study",
            "focus": "reported peaks of each study inside the ROI",
        }.get(self.rule, "distance (mm) from each study's nearest peak to the nearest seed coordinate")

    def describe(self, n_roi: int | None = None) -> str:
        """One sentence stating the rule and its parameters (for attrs and the CLI)."""
        if self.rule == "overlap":
            t = self.threshold
            of = f" of the {n_roi} ROI voxels" if n_roi is not None else " of the ROI voxels"
            if threshold_kind(t) == "count":
                return (
                    f"overlap: a study's activation covers more than {t} voxels{of} "
                    "(Neurosynth; see docs/semantics.md, 'Selecting studies')"
                )
            return (
                f"overlap: a study's activation covers more than a proportion {t:g}{of} "
                "(Neurosynth; see docs/semantics.md, 'Selecting studies')"
            )
        if self.rule == "focus":
            of = f" {n_roi}-voxel" if n_roi is not None else ""
            return f"focus: at least one reported peak inside the{of} ROI (NiMARE get_studies_by_mask)"
        if self.rule == "distance":
            return (
                f"distance: at least one reported peak within {self.r:g} mm (inclusive) of a seed coordinate "
                "(Neurosynth 0.3.8 get_studies(peaks=...), NiMARE get_studies_by_coordinate)"
            )
        return (
            f"nearest: the {self.k} studies whose nearest reported peak is closest to a seed coordinate "
            "(ties broken by database order)"
        )

    def attrs(self, n_roi: int | None = None) -> dict:
        """Provenance attrs: ``select``, its parameters and ``selection`` (the sentence)."""
        out: dict = {"select": self.rule, "selection": self.describe(n_roi)}
        if self.rule == "overlap":
            out["threshold"] = self.threshold
            out["threshold_kind"] = threshold_kind(self.threshold)
        elif self.rule == "distance":
            assert self.r is not None  # set for this rule by check_rule
            out["select_r"] = float(self.r)
        elif self.rule == "nearest":
            assert self.k is not None  # set for this rule by check_rule
            out["select_k"] = int(self.k)
        return out

    def apply(self, score: np.ndarray, n_roi: int | None = None) -> np.ndarray:
        """Which studies the rule selects, given each study's score (bool per study)."""
        score = np.asarray(score)
        if self.rule == "overlap":
            assert self.threshold is not None  # set for this rule by check_rule
            return overlap_rule(score, n_roi, self.threshold)
        if self.rule == "focus":
            return score > 0
        if self.rule == "distance":
            return score <= self.r
        out = np.zeros(score.shape, dtype=bool)
        out[np.argsort(score, kind="stable")[: self.k]] = True
        return out

    def degenerate(self, score: np.ndarray, n_roi: int | None = None) -> str | None:
        """Why the selection is unusable (no study or every study), else None."""
        score = np.asarray(score)
        n_sel = int(self.apply(score, n_roi).sum())
        if 0 < n_sel < score.size:
            return None
        what = "no study selected" if n_sel == 0 else "every study selected"
        if self.rule == "overlap":
            return f"{what}; largest overlap {int(score.max())} of {n_roi} voxels"
        if self.rule == "focus":
            return f"{what}; {int((score > 0).sum())} of {score.size} studies have a peak in the ROI"
        if self.rule == "distance":
            return f"{what}; nearest peak {float(score.min()):.4g} mm, farthest study {float(score.max()):.4g} mm"
        return f"{what}; k={self.k} of {score.size} studies"

    def select(self, score: np.ndarray, n_roi: int | None = None, *, seed_name: str = "seed") -> np.ndarray:
        """:meth:`apply`, raising a :class:`SelectionError` that says how to fix a degenerate selection."""
        if self.rule == "overlap":
            assert n_roi is not None  # its messages name the ROI's size; the analyses always pass it
            return select_studies(score, n_roi, self.threshold, seed_name=seed_name)
        score = np.asarray(score)
        selected = self.apply(score, n_roi)
        n, k = score.size, int(selected.sum())
        if 0 < k < n:
            return selected
        if self.rule == "focus":
            if k == 0:
                raise SelectionError(
                    f"no study selected for {seed_name} with select='focus': none of the {n} studies reports a peak "
                    f"inside the {n_roi} ROI voxels. Use a larger ROI, or select='overlap' (sphere coverage)."
                )
            raise SelectionError(
                f"every one of the {n} studies reports a peak inside the ROI of {seed_name} (select='focus'), so "
                "there are no unselected studies to compare with. Use a smaller ROI."
            )
        if self.rule == "distance":
            if k == 0:
                raise SelectionError(
                    f"no study selected for {seed_name} with select='distance': the nearest reported peak of the {n} "
                    f"studies is {float(score.min()):.4g} mm from the seed, farther than r={self.r:g} mm. "
                    f"Raise r to at least {float(np.ceil(score.min() * 1000) / 1000):g}."
                )
            raise SelectionError(
                f"every one of the {n} studies has a peak within r={self.r:g} mm of {seed_name} (select='distance'), "
                f"so there are no unselected studies to compare with. Lower r below {float(score.max()):.4g} mm."
            )
        raise SelectionError(
            f"select='nearest' with k={self.k} selects every one of the {n} studies of {seed_name}, so there are no "
            f"unselected studies to compare with. Use k < {n}."
        )


def check_rule(select="overlap", threshold=None, *, r=None, k=None, coords: bool = True) -> SelectionRule:
    """Validate a selection rule and its parameters.

    Parameters
    ----------
    select : {"overlap", "focus", "distance", "nearest"}
    threshold : float or int, optional
        For ``"overlap"`` only (default 0.0, Neurosynth's); an error with any other rule.
    r : float, optional
        The distance in mm for ``"distance"`` (the seed's sphere radius).
    k : int, optional
        Number of studies for ``"nearest"`` (required there, an error elsewhere).
    coords : bool
        Whether the seed is coordinates: ``"distance"`` and ``"nearest"`` need them.

    Returns
    -------
    SelectionRule

    Raises
    ------
    ParameterError
        An unknown rule, or a parameter that does not apply to the rule or is out of range.
    """
    if not isinstance(select, str) or select not in RULES:
        raise ParameterError(f"select={select!r} is not a known rule; expected one of {', '.join(map(repr, RULES))}.")
    if select != "overlap" and threshold is not None:
        raise ParameterError(
            f"threshold={threshold!r} applies to select='overlap' only; select={select!r} "
            + {
                "focus": "selects every study with a peak inside the ROI.",
                "distance": "uses r (mm) instead.",
                "nearest": "uses k (studies) instead.",
            }[select]
        )
    if select != "nearest" and k is not None:
        raise ParameterError(f"k={k!r} applies to select='nearest' only (the number of studies to select).")
    if select in ("distance", "nearest") and not coords:
        raise ParameterError(
            f"select={select!r} measures millimetres from seed coordinates, but this seed is an image; pass "
            "coordinates [[x, y, z], ...], or use select='focus' (a peak inside the ROI) or 'overlap'."
        )
    if select == "overlap":
        return SelectionRule("overlap", check_threshold(0.0 if threshold is None else threshold))
    if select == "focus":
        return SelectionRule("focus")
    if select == "distance":
        if (
            isinstance(r, bool)
            or not isinstance(r, (int, float, np.integer, np.floating))
            or not (math.isfinite(r) and r > 0)
        ):
            raise ParameterError(
                f"r={r!r} is not a valid distance for select='distance'; expected a number of mm > 0 (e.g. r=10)."
            )
        return SelectionRule("distance", r=float(r))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(
            f"k={k!r} is not valid for select='nearest'; expected the number of studies to select, "
            "an int >= 1 (e.g. k=100)."
        )
    return SelectionRule("nearest", k=int(k))


def peak_voxels(source) -> np.ndarray:
    """Flat grid index of each peak's voxel (-1 outside the box), peaks in the source's (study) order."""
    ijk = source.ijk
    inside = source.grid.in_box(ijk)
    flat = np.full(len(ijk), -1, dtype=np.int64)
    flat[inside] = np.ravel_multi_index(tuple(ijk[inside].T), source.grid.shape)
    return flat


def focus_counts(source, rois: list[np.ndarray]) -> np.ndarray:
    """Reported peaks of each study inside each ROI (the ``"focus"`` rule's score).

    A peak is inside an ROI when its voxel (the cube's own mm -> voxel rounding)
    is one of the ROI's voxels.  One sparse product: (studies x voxels of
    peaks) @ (voxels x ROIs), so thousands of ROIs cost about one.

    Parameters
    ----------
    source : xcoact.blocks.StudyChunk
    rois : list of 1-D int arrays
        Each ROI's voxels as flat (C-order) grid indices.

    Returns
    -------
    (n_rois, n_studies) int32 array
    """
    from scipy import sparse

    flat = peak_voxels(source)
    keep = flat >= 0
    n_vox = int(np.prod(source.grid.shape))
    peaks = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int32), (source.codes[keep], flat[keep])), shape=(source.n_studies, n_vox)
    )
    roi_of = np.repeat(np.arange(len(rois)), [len(v) for v in rois])
    cols = np.concatenate([np.asarray(v, dtype=np.int64) for v in rois]) if rois else np.zeros(0, np.int64)
    member = sparse.csr_matrix((np.ones(cols.size, dtype=np.int32), (cols, roi_of)), shape=(n_vox, len(rois)))
    return np.asarray((peaks @ member).toarray().T, dtype=np.int32)


def min_distances(source, seeds_xyz: list[np.ndarray]) -> np.ndarray:
    """Distance in mm from each study's nearest peak to the nearest coordinate of each seed.

    Parameters
    ----------
    source : xcoact.blocks.StudyChunk
        Peaks in MNI mm (``source.xyz``), sorted by study.
    seeds_xyz : list of (n, 3) float arrays
        The coordinates of each seed.

    Returns
    -------
    (n_seeds, n_studies) float64 array
    """
    xyz = source.xyz
    starts = source.peak_ptr[:-1]
    out = np.empty((len(seeds_xyz), source.n_studies), dtype=np.float64)
    for i, coords in enumerate(seeds_xyz):
        coords = np.atleast_2d(np.asarray(coords, dtype=np.float64))
        d2 = np.full(len(xyz), np.inf)
        for c in coords:
            np.minimum(d2, ((xyz - c) ** 2).sum(axis=1), out=d2)
        # every study has at least one peak (studies come from the peaks), so reduceat is safe
        out[i] = np.sqrt(np.minimum.reduceat(d2, starts))
    return out
