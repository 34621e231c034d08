"""Seed A's studies against seed B's (``contrast``): Neurosynth's ``MetaAnalysis(ids, ids2)``, ids from seeds."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..choices import BothRule, MapDtype, PresetName, SelectRule
from ..errors import ParameterError, SelectionError
from ..result import _provenance, _result
from ..roi import Seed, describe_seed, is_batch, is_coords, roi_mask
from ..select import check_rule
from .pipeline import _check_cube, _check_dtype, _check_unit_interval, _grid, _map_stack, _preset_of
from .seed import _single_score

__all__ = ["contrast"]


def contrast_groups(act: xr.DataArray, seeds, pre, rule, grid, r, both: str):
    """The two groups of a contrast: ``(in_a, in_b, overlap, rois, scores)``.

    Each seed's selection by ``rule``; studies selected by both are an error
    (``both="error"``), left out (``"exclude"``) or counted in one group
    (``"a"``, ``"b"``); an empty group is an error.  The MKDA and the ALE
    contrasts both start here.
    """
    rois, picks, scores = [], [], []
    for s in seeds:
        roi = roi_mask(s, grid, r)
        score = _single_score(act, rule, pre, s, roi, r, grid)
        picks.append(rule.select(score, roi.attrs["n_roi"], seed_name=roi.attrs["seed"]))
        rois.append(roi)
        scores.append(score)
    in_a, in_b = picks
    overlap = in_a & in_b
    ids = np.asarray(act["study"].values)
    if overlap.any() and both == "error":
        raise SelectionError(
            f"{int(overlap.sum())} studies are selected by both seeds (e.g. {ids[overlap][:5].tolist()}); "
            "choose both='exclude' (leave them out), 'a' or 'b' (count them in one group)."
        )
    if both in ("exclude", "b"):
        in_a = in_a & ~overlap
    if both in ("exclude", "a"):
        in_b = in_b & ~overlap
    for label, group in (("A", in_a), ("B", in_b)):
        if not group.any():
            raise SelectionError(
                f"group {label} of the contrast is empty: every study seed {label} selects ({int(overlap.sum())}) is "
                f"also selected by the other seed and both={both!r} leaves it out. Use both='a' or 'b', or other seeds."
            )
    return in_a, in_b, overlap, rois, scores


#: What a contrast does with studies both seeds select (see :func:`contrast`).
BOTH_RULES = ("exclude", "a", "b", "error")


def contrast(
    act: xr.DataArray,
    seed_a: Seed,
    seed_b: Seed,
    threshold: float | int | None = None,
    *,
    r: float = 6.0,
    select: SelectRule | None = None,
    k: int | None = None,
    both: BothRule = "exclude",
    q: float = 0.01,
    prior: float = 0.5,
    dtype: MapDtype | np.dtype = "float64",
    preset: PresetName | None = None,
    n_iter: int | None = None,
    seed: int | None = None,
) -> xr.Dataset:
    """Coactivation maps of the studies seed A selects against those seed B selects.

    Neurosynth's ``MetaAnalysis(dataset, ids, ids2)``: the nine maps with F =
    the studies selected by A and U = the studies selected by B (instead of
    all other studies), :ref:`semantics-maps`.  Both seeds are selected by the same
    rule and parameters (see :func:`seed`).

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    seed_a, seed_b : seed
        Any single seed :func:`seed` takes (ROI image or coordinates).
    threshold, r, select, k, q, prior, dtype, preset
        As in :func:`seed`.
    both : {"exclude", "a", "b", "error"}, default "exclude"
        Studies selected by both seeds: left out of both groups (and listed
        in ``both_id``), counted in A only, in B only, or an error.  They are
        never counted twice: Neurosynth 0.3.8 counts them in both groups,
        which can give probabilities above 1 (its issue #85).
    n_iter, seed : int, optional
        ALE cubes only: the contrast is NiMARE's ``ALESubtraction``
        (:func:`xcoact.stats.ale.contrast`) with this many label permutations
        (default 5000) drawn from ``seed``.

    Returns
    -------
    xarray.Dataset
        The nine maps (lazy); ``roi_a``, ``roi_b``; the rule's score for each
        seed (``{score}_a``, ``{score}_b``, dim ``study``); ``group (study)``:
        1 in A, 2 in B, 0 in neither (or excluded); ``selected_id`` (group A),
        ``selected_b_id`` (group B) and ``both_id`` (selected by both).
        attrs: provenance as for :func:`seed`, with ``seed_a``, ``seed_b``,
        ``n_a``, ``n_b``, ``n_both``, ``both``; ``n_selected`` = n_a and
        ``n_unselected`` = n_b.

    Raises
    ------
    SelectionError
        A seed selects no study, or a group is empty after the studies both
        select are handled, or ``both="error"`` and some study is in both.

    Notes
    -----
    Cost: both selections are computed now (as for :func:`seed`); the maps
    are lazy and cost two gather-and-counts over the index plus the
    statistics.

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> c = act.coact.contrast(xcoact.datasets.amygdala_roi_path(), xcoact.datasets.sgacc_roi_path(), 0.05)
    >>> c.attrs["n_a"] + c.attrs["n_b"] + c.attrs["n_both"] <= 100
    True
    """
    if isinstance(act, xr.DataArray) and act.attrs.get("kernel") == "ale":  # NiMARE's ALESubtraction
        from ..stats.ale import contrast as ale_contrast

        return ale_contrast(
            act, seed_a, seed_b, threshold, r=r, select=select, k=k, both=both, preset=preset, n_iter=n_iter, seed=seed
        )
    if n_iter is not None or seed is not None:
        raise ParameterError(
            "n_iter= and seed= apply to ALE cubes' contrasts (ALESubtraction); the MKDA contrast "
            "needs none (for its FWE: maps.coact.fwe(n_iter=, seed=))."
        )
    _check_cube(act)
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    dtype = _check_dtype(dtype)
    if not isinstance(both, str) or both not in BOTH_RULES:
        raise ParameterError(f"both={both!r} is not known; expected one of {', '.join(map(repr, BOTH_RULES))}.")
    for name, s in (("seed_a", seed_a), ("seed_b", seed_b)):
        if is_batch(s):
            raise ParameterError(f"{name} is a list of seeds; a contrast takes one seed on each side.")
    pre = _preset_of(act, preset)
    rule = check_rule(
        pre.select if select is None else select, threshold, r=r, k=k, coords=is_coords(seed_a) and is_coords(seed_b)
    )
    grid = _grid(act)
    in_a, in_b, overlap, rois, scores = contrast_groups(act, (seed_a, seed_b), pre, rule, grid, r, both)
    ids = act["study"].values
    n_a, n_b = int(in_a.sum()), int(in_b.sum())
    names = pre.map_names(q, prior)
    # the maps take a and the total a + b over the two groups only
    stack = _map_stack(act, grid, [in_a, in_a | in_b], n_a, n_b, q, prior, dtype, pre)
    ds = _result(act, grid, names, {name: (("x", "y", "z"), stack[i]) for i, name in enumerate(names)})
    for side, roi, score in (("a", rois[0], scores[0]), ("b", rois[1], scores[1])):
        ds[f"roi_{side}"] = roi.variable
        ds[f"{rule.score_name}_{side}"] = ("study", score)
        ds[f"{rule.score_name}_{side}"].attrs["long_name"] = f"{rule.score_long_name} (seed {side.upper()})"
    group = np.where(in_a, 1, np.where(in_b, 2, 0)).astype(np.int8)
    ds["group"] = ("study", group, {"long_name": "1: group A (selected), 2: group B (compared with), 0: neither"})
    ds["selected_id"] = ("selected", ids[in_a], {"long_name": "ids of the group A studies"})
    ds["selected_b_id"] = ("selected_b", ids[in_b], {"long_name": "ids of the group B studies"})
    ds["both_id"] = ("both", ids[overlap], {"long_name": f"ids of the studies both seeds select (both={both!r})"})
    ds.attrs = {
        **_provenance(act, names, rule, r, q, prior, rois[0].attrs["n_roi"], pre),
        "analysis": "contrast (seed A vs seed B)",
        "seed_a": describe_seed(seed_a, r),
        "seed_b": describe_seed(seed_b, r),
        "n_roi_a": int(rois[0].attrs["n_roi"]),
        "n_roi_b": int(rois[1].attrs["n_roi"]),
        "n_a": n_a,
        "n_b": n_b,
        "n_both": int(overlap.sum()),
        "both": both,
        "n_selected": n_a,
        "n_unselected": n_b,
    }
    return ds
