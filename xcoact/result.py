"""The result Dataset and its provenance; what goes beside a map when it is shared: descriptions, JSON
sidecars, BIDS-style names, CF attributes.

All of it is built from a result Dataset's provenance attrs, without computing any map.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import re

import numpy as np
import xarray as xr

from ._version import __version__
from .errors import OutputError
from .presets import Preset
from .select import SelectionRule
from .space import Grid

__all__ = [
    "describe_map",
    "sidecar",
    "kernel_parameters",
    "bids_name",
    "seed_entity",
    "with_cf_attributes",
    "CONVENTIONS",
    "REFERENCE",
]

#: The netCDF ``Conventions`` attribute written by :func:`xcoact.to_netcdf`.
CONVENTIONS = "CF-1.8"

_PROB = {
    "pA": "probability of activation at the voxel, P(A)",
    "pAgF": "probability of activation in the selected studies, P(A|F)",
    "pFgA": "probability that a study activating the voxel is selected, P(F|A)",
    "pAgU": "probability of activation in the unselected studies, P(A|U)",
}
_TESTS = {
    "uniformity": "uniformity test z (one-way chi-square: activation in the selected studies vs a uniform rate)",
    "association": "association test z (two-way chi-square: selection vs activation)",
    "group2": "uniformity test z of the unselected studies",
}
_KIND_UNITS = {"z": "1", "p": "1", "prob": "1", "chi2": "1", "logp": "1"}


def describe_map(name: str) -> dict[str, str]:
    """Long name, units and NeuroVault map type of a map name (Neurosynth's or NiMARE's).

    Parameters
    ----------
    name : str
        A map name such as ``"association-test_z_FDR_0.01"`` or ``"z_desc-association"``.

    Returns
    -------
    dict
        ``{"long_name": ..., "units": "1", "map_type": "Z" | "P" | "Other"}``.

    Examples
    --------
    >>> describe_map("association-test_z_FDR_0.01")["long_name"]
    'association test z (two-way chi-square: selection vs activation), FDR q = 0.01 (0 where not significant)'
    >>> describe_map("pFgA")["map_type"]
    'Other'
    """
    kind, test, qualifiers = _parse(name)
    if kind in ("z", "p", "chi2", "logp") and test in _TESTS:
        base = _TESTS[test]
        if kind != "z":
            base = base.replace(" test z ", f" test {kind} ")
    elif kind == "prob":
        key = test.split("_")[0]
        base = _PROB.get(key, _PROB.get("p" + key, name))
    else:
        base = name
    extra = []
    for q in qualifiers:
        m = re.fullmatch(r"FDR_([0-9.eE-]+)", q)
        fwe = re.fullmatch(r"FWE-([a-z-]+?)(?:_([0-9.eE-]+))?", q)
        if m:
            extra.append(f"FDR q = {m.group(1)} (0 where not significant)")
        elif fwe and fwe.group(2):
            extra.append(f"where the {fwe.group(1).replace('-', ' ')} FWE p <= {fwe.group(2)} (0 elsewhere)")
        elif fwe:
            extra.append(f"{fwe.group(1).replace('-', ' ')} FWE-corrected")
        elif q.startswith("given_pF="):
            extra.append(f"under a uniform prior P(F) = {q.split('=', 1)[1]}")
        else:
            extra.append(q.replace("_", " "))
    long_name = ", ".join([base, *extra])
    map_type = {"z": "Z", "p": "P"}.get(kind, "Other")
    return {"long_name": long_name, "units": _KIND_UNITS.get(kind, "1"), "map_type": map_type}


def _parse(name: str) -> tuple[str, str, list[str]]:
    """(kind, test or probability, qualifiers) of a map name."""
    m = re.fullmatch(r"(z|p|chi2|logp|prob)_desc-([^_]+)(?:_(.*))?", name)
    if m:  # NiMARE: kind_desc-label[_entities]
        rest = m.group(3)
        return m.group(1), m.group(2), [rest] if rest else []
    m = re.fullmatch(r"(uniformity|association)-test_(z|p)(?:_(.*))?", name)
    if m:  # Neurosynth test maps, with FDR / FWE qualifiers
        rest = m.group(3)
        return m.group(2), m.group(1), [rest] if rest else []
    m = re.fullmatch(r"(p[A-Za-z]+?)(?:_(given_pF=.*))?", name)
    if m:  # Neurosynth probabilities
        return "prob", m.group(1), [m.group(2)] if m.group(2) else []
    return "", name, []


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", text)


def _camel(tokens: list[str]) -> str:
    tokens = [_alnum(t) for t in tokens]
    tokens = [t for t in tokens if t]
    return tokens[0] + "".join(t[:1].upper() + t[1:] for t in tokens[1:]) if tokens else ""


def bids_name(name: str) -> str:
    """A file-name stem of BIDS-style entities for a map: ``stat-<kind>_desc-<label>_statmap``.

    Values hold only letters and digits (what BIDS and NeuroVault accept);
    NiMARE's own entities (``level-voxel_corr-FDR``) are kept.

    Examples
    --------
    >>> bids_name("association-test_z_FDR_0.01")
    'stat-z_desc-associationFDR001_statmap'
    >>> bids_name("pA_given_pF=0.50")
    'stat-prob_desc-pAGivenPF050_statmap'
    >>> bids_name("z_desc-association_level-voxel_corr-FDR_method-indep")
    'stat-z_desc-association_level-voxel_corr-FDR_method-indep_statmap'
    """
    m = re.fullmatch(r"(z|p|chi2|logp|prob)_desc-(.*)", name)
    if m:
        kind, rest = m.groups()
        tokens = rest.split("_")
        desc, entities = [tokens[0]], []
        for t in tokens[1:]:
            if "-" in t:
                key, value = t.split("-", 1)
                entities.append(f"{_alnum(key)}-{_alnum(value)}")
            else:
                desc.append(t)
        return "_".join([f"stat-{kind}", f"desc-{_camel(desc)}", *entities, "statmap"])
    kind, test, qualifiers = _parse(name)
    if kind in ("z", "p"):
        tokens = [test] + re.split(r"[_=\-]+", qualifiers[0]) if qualifiers else [test]
    else:
        kind = "prob" if kind == "prob" else "map"
        tokens = re.split(r"[_=\-]+", name)
    return f"stat-{kind}_desc-{_camel(tokens) or 'map'}_statmap"


def seed_entity(seed) -> str:
    """A seed label as a BIDS entity value: ``-`` -> ``m``, ``_``/``,`` -> ``x``, ``.`` -> ``p``, the rest dropped.

    Examples
    --------
    >>> seed_entity("-40_20_28"), seed_entity("Left Amygdala")
    ('m40x20x28', 'LeftAmygdala')
    """
    text = str(seed).replace("-", "m").replace("_", "x").replace(",", "x").replace(".", "p")
    return _alnum(text) or "seed"


def bids_paths(outroot, names, seed=None) -> dict[str, str]:
    """``{name: "{outroot}[_seed-<seed>]_<bids_name(name)>.nii.gz"}``; distinct names must give distinct files."""
    root = os.fspath(outroot)
    if seed is not None:
        root = f"{root}_seed-{seed_entity(seed)}"
    paths = {n: f"{root}_{bids_name(n)}.nii.gz" for n in names}
    seen: dict[str, str] = {}
    for n, p in paths.items():
        if p in seen:
            raise OutputError(
                f"maps {seen[p]!r} and {n!r} get the same BIDS file name {os.path.basename(p)}; "
                "write them with naming='neurosynth'."
            )
        seen[p] = n
    return paths


def sidecar_path(nifti_path: str) -> str:
    """``x.nii.gz`` / ``x.nii`` -> ``x.json``."""
    for ext in (".nii.gz", ".nii"):
        if nifti_path.endswith(ext):
            return nifti_path[: -len(ext)] + ".json"
    return nifti_path + ".json"


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is hashed again
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def database_checksum(path: str) -> str | None:
    """sha256 of the database file the result was computed from, or None when it is not a readable file."""
    try:
        st = os.stat(path)
        if not os.path.isfile(path):
            return None
        return _sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)
    except (OSError, TypeError, ValueError):
        return None


def _plain(value):
    """attrs values as JSON values (numpy scalars -> Python; JSON text stays structured)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


_PARAMETERS = tuple(
    "r seed_r select selection threshold threshold_kind preset q prior min_studies k layout by_label separate".split()
)
_KERNEL_SIZES = ("r", "sample_size", "fwhm")
_COUNTS = ("n_studies", "n_selected", "n_unselected", "n_roi", "max_overlap", "n_seeds", "n_valid_seeds")


def kernel_parameters(attrs: dict, ds: xr.Dataset | None = None) -> dict:
    """The kernel a result's maps were made with, and its sizes, from the result's attrs.

    A result without a ``kernel`` attr (or with ``"binary sphere"``) was made
    with the binary spheres of radius ``r``: ``{"kernel": "mkda", "r": r}``.
    Another kernel keeps its name and whichever of ``r``, ``sample_size``
    and ``fwhm`` it records (ALE: the fixed sample size and its FWHM, or
    ``"per study ..."``, with ``sample_sizes`` of the selected studies taken
    from ``ds["sample_size"]``).  A result with neither a kernel nor ``r``
    gives ``{}``.

    Examples
    --------
    >>> kernel_parameters({"r": 6.0, "preset": "neurosynth"})
    {'kernel': 'mkda', 'r': 6.0}
    >>> kernel_parameters({"kernel": "ale", "sample_size": 20.0, "fwhm": 9.24})
    {'kernel': 'ale', 'sample_size': 20.0, 'fwhm': 9.24}
    """
    kernel = attrs.get("kernel")
    if kernel in (None, "binary sphere"):
        if attrs.get("r") is None:
            return {}
        kernel = "mkda"  # the binary sphere kernel is MKDA's (xcoact.kernels.MKDAKernel)
    out = {"kernel": kernel, **{k: attrs[k] for k in _KERNEL_SIZES if attrs.get(k) is not None}}
    per_study = isinstance(out.get("sample_size"), str)
    if per_study and ds is not None and "sample_size" in ds and ds["sample_size"].dims == ("selected",):
        out["sample_sizes"] = [_plain(v) for v in ds["sample_size"].values.tolist()]  # in selected_ids' order
    return out


def sidecar(ds: xr.Dataset, name: str, seed=None, *, software: dict | None = None) -> dict:
    """The JSON sidecar of one map of a result (one seed's, for a batch).

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`xcoact.seed` (its provenance attrs are read; no map is computed).
    name : str
        The map.
    seed : optional
        For a batch, the seed label (a value of ``ds["seed"]``).
    software : dict, optional
        :func:`xcoact.versions.versions` computed once for many files.

    Returns
    -------
    dict
        JSON-ready: ``map``, ``map_type`` (NeuroVault's ``"Z"``, ``"P"`` or
        ``"Other"``), ``description``, ``units``, ``analysis``,
        ``analysis_level`` (``"meta-analysis"``), ``seed``, ``database`` and
        ``database_sha256``, ``parameters`` (the kernel and its sizes, see
        :func:`kernel_parameters`, then the analysis's options), ``counts``, ``selected_ids``,
        ``fwe`` (when corrected), ``command`` (when run from the command
        line), ``software`` (every version), ``created`` (UTC), ``provenance``
        (every attr of the Dataset).
    """
    from .versions import versions

    attrs = {k: _plain(v) for k, v in ds.attrs.items()}
    desc = describe_map(name)
    counts = {k: attrs[k] for k in _COUNTS if k in attrs}
    seed_info = attrs.get("seed")
    if seed is not None:
        i = int(np.flatnonzero(ds["seed"].values == seed)[0])
        for var in ("n_roi", "n_selected"):
            if var in ds and ds[var].dims == ("seed",):
                counts[var] = int(ds[var].values[i])
        if "n_selected" in counts and "n_studies" in counts:
            counts["n_unselected"] = counts["n_studies"] - counts["n_selected"]
        selected = ds["selected"].isel(seed=i).values if "selected" in ds else None
        ids = ds["study"].values[np.asarray(selected, dtype=bool)] if selected is not None else None
        if "description" in ds:
            seed_info = _plain(str(ds["description"].values[i]))
        seed_info = {"label": str(seed), "seed": seed_info}
    else:
        ids = ds["selected_id"].values if "selected_id" in ds else None
    database = attrs.get("database") or None
    out = {
        "map": name,
        "map_type": desc["map_type"],
        "description": desc["long_name"],
        "units": desc["units"],
        "analysis": attrs.get("analysis"),
        "analysis_level": "meta-analysis",
        "template": "MNI152 2 mm",
        "seed": seed_info,
        "database": database,
        "database_sha256": database_checksum(database) if database else None,
        "parameters": {**kernel_parameters(attrs, ds), **{k: attrs[k] for k in _PARAMETERS if k in attrs}},
        "counts": counts,
        "selected_ids": None if ids is None else [_plain(v) for v in np.asarray(ids).tolist()],
        "reference": attrs.get("reference"),
        "software": software if software is not None else versions(),
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "provenance": attrs,
    }
    fwe = {k: v for k, v in attrs.items() if k.startswith("fwe_")}
    if fwe:
        out["fwe"] = fwe
    if attrs.get("command"):
        out["command"] = attrs["command"]
    return out


def write_json(tmp: str, content: dict) -> None:
    """Write ``content`` as indented UTF-8 JSON to ``tmp`` (a temporary name from the atomic writer)."""
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(content, fh, indent=2, allow_nan=False, default=_json_default)
        fh.write("\n")


def _json_default(value):
    plain = _plain(value)
    if plain is value:
        return str(value)
    return plain


def with_cf_attributes(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` with ``long_name`` and ``units`` on every map and coordinate, and ``Conventions``.

    An informative ``long_name`` already there is kept; one that only
    repeats the variable's name is replaced by :func:`describe_map`'s.  No
    data is touched (lazy variables stay lazy).
    """
    from .writers import map_variables

    out = ds.copy(deep=False)
    for name in map_variables(ds):
        attrs = dict(out[name].attrs)
        desc = describe_map(name)
        if attrs.get("long_name", name) == name:
            attrs["long_name"] = desc["long_name"]
        attrs.setdefault("units", desc["units"])
        out[name].attrs = attrs
    for c, axis in (
        ("x", "left (-) to right (+)"),
        ("y", "posterior (-) to anterior (+)"),
        ("z", "inferior (-) to superior (+)"),
    ):
        if c in out.coords:
            attrs = dict(out[c].attrs)
            attrs.setdefault("long_name", f"MNI {c} of the voxel centre, {axis}")
            attrs.setdefault("units", "mm")
            out[c].attrs = attrs
    if "study" in out.coords:
        out["study"].attrs = {"long_name": "study id (PubMed id for Neurosynth)", **out["study"].attrs}
    for key, var in out.data_vars.items():
        if key not in map_variables(ds) and "long_name" not in var.attrs:
            out[key].attrs = {**var.attrs, "long_name": str(key).replace("_", " ")}
    out.attrs = {**out.attrs, "Conventions": out.attrs.get("Conventions", CONVENTIONS)}
    return out


REFERENCE = "Neurosynth 0.3.8 network.coactivation / MetaAnalysis (Yarkoni et al. 2011)"


#: Where a result keeps a reference to its cube: ``ds.encoding[CUBE_KEY]`` (see :func:`cube_of`).
CUBE_KEY = "xcoact_cube"


def cube_token(act: xr.DataArray) -> str:
    """What identifies a cube's content: its kernel, database, studies and voxels (not its chunks or order).

    Recorded as ``attrs["cube"]`` of every result, so that a step that needs
    the cube again (``fwe``, ``decode``) can check it was given the right one.
    """
    import pandas as pd
    from dask.base import tokenize

    keys = ("database", "r", "kernel", "preset", "grid", "n_peaks")
    # order-independent: a sum of per-label hashes (the same cube transposed or sorted keeps its token)
    labels = [
        (act.sizes[d], int(pd.util.hash_array(np.asarray(act[d].values)).sum(dtype=np.uint64)))
        for d in ("study", "x", "y", "z")
    ]
    return "cube-" + tokenize([str(act.attrs.get(k, "")) for k in keys], labels)


def _result(act: xr.DataArray, grid: Grid, names: list[str], variables: dict, extra: dict | None = None) -> xr.Dataset:
    """A result Dataset: the map variables (then ``extra`` ones) on the cube's labels, with the brain mask."""
    # built in one go: every assignment to a Dataset is a merge, which costs more than the maps' graph
    data_vars = {
        name: (*variables[name], {"long_name": name}) if name in names else variables[name] for name in variables
    }
    data_vars.update(extra or {})
    ds = xr.Dataset(
        data_vars,
        coords={
            **{c: (c, act[c].values, {"units": "mm"}) for c in "xyz"},
            "study": act["study"].values,
            "brain_mask": (("x", "y", "z"), grid.mask),
        },
    )
    # the cube travels with its result, in memory only (writers never store a Dataset's encoding):
    # fwe and decode need it again, and find it here rather than in any registry
    ds.encoding[CUBE_KEY] = act
    return ds


def cube_of(result: xr.Dataset) -> xr.DataArray | None:
    """The cube a result was computed from, when the result still carries it (in memory; not after a file)."""
    act = result.encoding.get(CUBE_KEY)
    return act if isinstance(act, xr.DataArray) else None


def _provenance(
    act: xr.DataArray,
    names: list[str],
    rule: SelectionRule,
    r: float,
    q: float,
    prior: float,
    n_roi: int | None = None,
    pre: Preset | None = None,
) -> dict:
    """The attrs every result carries: parameters, database, counts, version."""
    return {
        "title": "xcoact coactivation maps",
        "database": str(act.attrs.get("database", "")),
        "cube": cube_token(act),  # lets maps.coact.fwe(act=...) check that it was given the maps' own cube
        "r": float(act.attrs.get("r", np.nan)),
        **rule.attrs(n_roi),
        "preset": pre.name if pre else "neurosynth",
        "q": q,
        "prior": prior,
        "min_studies": pre.min_studies if pre else 1,
        "n_studies": int(act.sizes["study"]),
        "maps": ", ".join(names),
        "reference": pre.reference if pre and pre.name != "neurosynth" else REFERENCE,
        "xcoact_version": __version__,
    }
