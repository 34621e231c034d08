"""Meta-analysis of an explicit study selection (``meta``): Neurosynth's ``MetaAnalysis(ids, ids2)``."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import ParameterError
from ..presets import get_preset
from ..result import _result, cube_token
from ..stats.neurosynth import map_names
from .pipeline import _check_cube, _check_unit_interval, _grid, _map_stack

__all__ = ["meta"]


def _study_mask(act: xr.DataArray, ids, name: str) -> np.ndarray:
    """Which studies of the cube ``ids`` names, as a bool mask; unknown ids are an error."""
    import pandas as pd

    from ..errors import SelectionError

    if isinstance(ids, (str, bytes, int, np.integer)):
        ids = [ids]
    values = np.asarray(ids.values if isinstance(ids, (xr.DataArray, pd.Index, pd.Series)) else list(ids), dtype=object)
    study = act["study"].values
    if values.size == 0:
        raise SelectionError(
            f"{name} is empty: no study selected, so there is nothing to compare. Pass at least one study id."
        )
    if study.dtype.kind in "iu":
        # int ids (PubMed ids): accept ints and their decimal strings alike
        def as_int(v):
            try:
                if isinstance(v, (bool, np.bool_)):
                    return None
                out = int(v) if isinstance(v, (int, np.integer)) else int(str(v).strip())
                return out if str(out) == str(v).strip() or isinstance(v, (int, np.integer)) else None
            except (TypeError, ValueError, OverflowError):
                return None

        keys = [as_int(v) for v in values]
        ok = np.array([k is not None for k in keys])
        wanted = np.array([k if k is not None else 0 for k in keys], dtype=np.int64)
    else:
        wanted = np.array([str(v) for v in values], dtype=object)
        study = study.astype(str).astype(object)
        ok = np.ones(len(wanted), dtype=bool)
    known = ok & np.isin(wanted, study)
    if not known.all():
        unknown = [values[i] for i in np.flatnonzero(~known)]
        raise ParameterError(
            f"{name}: {len(unknown)} of {len(values)} id(s) are not studies of the cube (e.g. "
            f"{', '.join(repr(u) for u in unknown[:5])}); the cube's {len(study)} study ids look like "
            f"{', '.join(repr(s) for s in study[:3].tolist())}. Pass ids from act['study'] (keep only the studies "
            "the database holds)."
        )
    return np.isin(study, wanted[known])


def meta(act: xr.DataArray, ids, *, q: float = 0.01, prior: float = 0.5, ids2=None) -> xr.Dataset:
    """Meta-analysis maps of an explicit study selection: those studies against the rest.

    Matches Neurosynth 0.3.8 ``meta.MetaAnalysis(dataset, ids, ids2=None,
    q=0.01, prior=0.5, min_studies=1)``: the same nine maps (:ref:`semantics-maps`)
    as :func:`seed`, with the selection given as study ids instead of drawn
    from a seed region.

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    ids : sequence of study ids
        The selected studies (``F``).  Ids are matched to ``act["study"]``;
        for integer ids (PubMed ids) their decimal strings work too.
        Repeats count once.
    q : float, default 0.01
        False discovery rate of the two ``*_FDR_{q}`` maps.
    prior : float, default 0.5
        Uniform prior P(selected) of the two ``*_given_pF`` maps.
    ids2 : sequence of study ids, optional
        A second list to contrast with (``U``): the studies in neither list
        are left out, as in Neurosynth's ``ids2`` (``N = n_F + n_U``).  The two
        lists must not share a study.

    Returns
    -------
    xarray.Dataset
        The nine maps (float64, dims ``x, y, z``, lazy), ``selected_id
        (selected)`` (the ids of ``F``, in cube order) and, with ``ids2``,
        ``contrast_id (contrast)``; ``attrs``: title, analysis
        (``"meta-analysis"``, or ``"meta-analysis contrast"`` with ``ids2``),
        database, r (kernel radius), selection, q, prior, min_studies,
        n_studies (the studies compared: the whole cube, or the two lists),
        n_selected, n_unselected, maps, preset, reference and xcoact_version.

    Raises
    ------
    ParameterError
        Ids that are not studies of the cube (a few are named), lists that
        overlap, a bad ``q`` or ``prior``, a cube built with another preset
        than ``"neurosynth"``.
    SelectionError
        No study selected, or every study (no study left to compare with).

    Notes
    -----
    Cost: the selection is checked now (a lookup of the ids); the maps are
    lazy, computed exactly like a seed's (one gather of the selected
    studies' index entries per computation once the cube's index is cached).

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> ds = act.coact.meta(act["study"].values[:10])
    >>> ds.attrs["analysis"], ds.attrs["n_selected"], ds.attrs["n_unselected"]
    ('meta-analysis', 10, 90)
    """
    from ..errors import SelectionError

    _check_cube(act)
    built = str(act.attrs.get("preset", "neurosynth"))
    if built != "neurosynth":
        # the maps below are Neurosynth's MetaAnalysis; another preset's statistics are not wired up here
        raise ParameterError(
            f"meta-analysis of a study list follows Neurosynth 0.3.8 MetaAnalysis, but the cube was built with "
            f"preset={built!r}; build it with xcoact.activations(db) (preset 'neurosynth') for meta, term and decode."
        )
    q = _check_unit_interval(q, "q", "0.01")
    prior = _check_unit_interval(prior, "prior", "0.5")
    selected = _study_mask(act, ids, "ids")
    n = int(selected.size)
    n_sel = int(selected.sum())
    grid = _grid(act)
    if ids2 is None:
        if n_sel == n:
            raise SelectionError(
                f"every one of the {n} studies of the cube is in ids, so there are no unselected studies to compare "
                "with. Select fewer studies, or pass ids2 (a second list) for a contrast."
            )
        other = None
        n_uns = n - n_sel
        groups = [selected, np.ones_like(selected)]
    else:
        other = _study_mask(act, ids2, "ids2")
        both = selected & other
        if both.any():
            shared = act["study"].values[both]
            raise ParameterError(
                f"ids and ids2 share {int(both.sum())} stud(y/ies) "
                f"(e.g. {', '.join(repr(s) for s in shared[:5].tolist())}); "
                "a contrast needs two disjoint lists. Remove them from one list."
            )
        n_uns = int(other.sum())
        # the maps take a and the total a + b over the two lists only
        groups = [selected, selected | other]
    names = map_names(q, prior)
    stack = _map_stack(act, grid, groups, n_sel, n_uns, q, prior, np.float64, get_preset("neurosynth"))
    ds = _result(act, grid, names, {name: (("x", "y", "z"), stack[i]) for i, name in enumerate(names)})
    ds["selected_id"] = ("selected", act["study"].values[selected])
    ds["selected_id"].attrs["long_name"] = "ids of the selected studies"
    if other is not None:
        ds["contrast_id"] = ("contrast", act["study"].values[other])
        ds["contrast_id"].attrs["long_name"] = "ids of the studies of ids2 (U)"
    # the keys _provenance gives a seed, minus the seed-selection ones (no threshold here)
    ds.attrs = {
        "title": "xcoact meta-analysis maps",
        "analysis": "meta-analysis" if other is None else "meta-analysis contrast",
        "database": str(act.attrs.get("database", "")),
        "cube": cube_token(act),
        "r": float(act.attrs.get("r", np.nan)),
        "selection": "explicit study ids"
        if other is None
        else "explicit study ids (ids) vs ids2; other studies left out",
        "q": q,
        "prior": prior,
        "min_studies": 1,
        "n_studies": n_sel + n_uns,  # the studies the maps compare (all of the cube without ids2)
        "n_selected": n_sel,
        "n_unselected": n_uns,
        "maps": ", ".join(names),
        "preset": "neurosynth",
        "reference": "Neurosynth 0.3.8 meta.MetaAnalysis (Yarkoni et al. 2011)",
        "xcoact_version": __version__,
    }
    return ds
