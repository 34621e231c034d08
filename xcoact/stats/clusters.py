"""Cluster tables: the connected suprathreshold regions of a map, with their peaks.

Positive (``value > threshold``) and negative (``value < -threshold``) clusters are labelled separately, by
26-connectivity by default (SPM's and FSL's; 18 and 6 too), with :mod:`xcoact.stats.components`, the labeller
of cluster-level FWE.  :func:`cluster_table` is the array core, :func:`clusters` the layer on result Datasets,
:func:`pick_map` the map that plots, tables and reports show.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .. import validate
from ..errors import ParameterError
from ..writers import map_variables, to_volumes
from .components import CONNECTIVITY, structure
from .components import label as label_components

__all__ = [
    "clusters",
    "cluster_table",
    "atlas_labels",
    "pick_map",
    "map_volume",
    "peak_index",
    "COLUMNS",
    "CONNECTIVITY",
]


#: Columns of a cluster table, in order (a batch's table starts with ``seed``; ``subpeaks`` adds ``peak``
#: after ``cluster``, an atlas adds ``atlas_label`` at the end).
COLUMNS = ["cluster", "sign", "size_voxels", "size_mm3", "peak_x", "peak_y", "peak_z", "peak_value"]


def pick_map(ds: xr.Dataset, name: str | None = None) -> str:
    """The map to show: ``name`` if given, else the corrected association z map.

    Without ``name``, the first map whose name has the words ``association``, ``z`` and ``FWE``; else
    ``association``, ``z`` and ``FDR``; else ``association`` and ``z``; else ``z``; else the first map (words
    split at any character but a letter or digit, case ignored).

    Parameters
    ----------
    ds : xarray.Dataset
    name : str, optional

    Returns
    -------
    str

    Raises
    ------
    ParameterError
        ``name`` is not a map of ``ds``, or ``ds`` holds no map.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({n: (("x", "y", "z"), np.zeros((2, 2, 2))) for n in ["pA", "association-test_z_FDR_0.05"]})
    >>> pick_map(ds)
    'association-test_z_FDR_0.05'
    """
    names = map_variables(ds)
    if name is not None:
        if name not in names:
            raise ParameterError(f"name={name!r} is not a map of the Dataset; available maps: {names}.")
        return name
    if not names:
        raise ParameterError(
            f"the Dataset holds no map (a float variable over (x, y, z), (seed, x, y, z) or (seed, voxel)); "
            f"its variables are {list(ds.data_vars)}."
        )
    words = {n: set(re.split(r"[^0-9a-z]+", n.lower())) for n in names}
    for wanted in ({"association", "z", "fwe"}, {"association", "z", "fdr"}, {"association", "z"}, {"z"}):
        for n in names:
            if wanted <= words[n]:
                return n
    return names[0]


def peak_index(volume: np.ndarray) -> tuple[int, int, int] | None:
    """Index of the largest value; among tied voxels, the one nearest the ties' centre of mass.

    Capped z maps can hold hundreds of tied maxima; the first in array order if two are equally near.

    Parameters
    ----------
    volume : (nx, ny, nz) array

    Returns
    -------
    tuple of three ints, or None when no value is finite

    Examples
    --------
    >>> vol = np.zeros((5, 1, 1)); vol[[0, 1, 2, 3], 0, 0] = 7.0
    >>> peak_index(vol)        # ties at 0..3: centre 1.5, nearest tied voxels 1 and 2, the first is kept
    (1, 0, 0)
    """
    values = np.where(np.isfinite(volume), volume, -np.inf)
    top = values.max() if values.size else -np.inf
    if not np.isfinite(top):
        return None
    tied = np.argwhere(values == top)
    best = tied[0] if len(tied) == 1 else tied[int(np.argmin(((tied - tied.mean(axis=0)) ** 2).sum(axis=1)))]
    i, j, k = (int(v) for v in best)
    return i, j, k


def _tied_peaks(signed: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Per cluster (labels 1..n), the :func:`peak_index` of its voxels: (n, 3) indices."""
    from scipy import ndimage

    index = np.arange(1, n + 1)
    maxima = np.asarray(ndimage.maximum(signed, labels, index), dtype=np.float64)
    top = np.zeros(signed.shape, dtype=bool)
    inside = labels > 0
    top[inside] = signed[inside] == maxima[labels[inside] - 1]
    centres = np.asarray(ndimage.center_of_mass(top, labels, index), dtype=np.float64).reshape(n, 3)
    where = np.argwhere(top)  # array order
    owner = labels[top] - 1
    distance = ((where - centres[owner]) ** 2).sum(axis=1)
    order = np.lexsort((distance, owner))
    first = np.ones(order.size, dtype=bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    out = np.zeros((n, 3), dtype=np.int64)
    out[owner[order][first]] = where[order][first]
    return out


def _check_threshold(threshold) -> float:
    meaning = " (clusters are the voxels with value > threshold, and separately those with value < -threshold)"
    return validate.finite(threshold, "threshold", meaning, minimum=0)


def _check_connectivity(connectivity) -> int:
    if isinstance(connectivity, bool) or connectivity not in CONNECTIVITY:
        raise ParameterError(
            f"connectivity={connectivity!r} is not valid; expected 26 (faces, edges and corners), "
            "18 (faces and edges) or 6 (faces)."
        )
    return int(connectivity)


def cluster_table(
    volume: np.ndarray,
    coords: Sequence[np.ndarray],
    threshold: float = 0.0,
    *,
    connectivity: int = 26,
    min_size: int = 1,
    subpeaks: int = 0,
    min_distance: float = 8.0,
) -> pd.DataFrame:
    """Clusters of a 3-D volume: connected components above ``threshold`` and below ``-threshold``.

    Parameters
    ----------
    volume : (nx, ny, nz) array
        The map; NaN voxels belong to no cluster.
    coords : sequence of three 1-D arrays
        The mm coordinate of each index along x, y and z (ascending or descending).
    threshold : float, default 0
        Positive clusters hold ``value > threshold``, negative ones ``value < -threshold`` (strict: 0 keeps
        every non-zero voxel of an FDR-thresholded map).
    connectivity : {26, 18, 6}, default 26
        Which neighbours connect: 26 shares a face, edge or corner.
    min_size : int, default 1
        Smaller clusters are left out.
    subpeaks : int, default 0
        Also list up to this many local maxima per cluster, strongest first, each ``min_distance`` mm from
        the peaks kept before (FSL's and nilearn's rule): rows after their cluster's, a ``peak`` column
        (1 the main peak, 2, 3, ...) and no size.
    min_distance : float, default 8
        Minimum distance in mm between the peaks of one cluster (subpeaks only).

    Returns
    -------
    pandas.DataFrame
        One row per cluster: :data:`COLUMNS` (the peak by :func:`peak_index`, the most negative voxel for a
        negative cluster), sorted by size, largest first, then ``|peak_value|``, then positive first.

    Raises
    ------
    ParameterError
        A volume that is not 3-D, ``coords`` not matching it, or a bad option.

    Examples
    --------
    >>> vol = np.zeros((4, 4, 4)); vol[0, 0, 0] = 3.0; vol[1, 1, 1] = 2.0; vol[3, 3, 3] = -4.0
    >>> axes = [np.arange(4) * 2.0] * 3
    >>> table = cluster_table(vol, axes)          # (0,0,0) and (1,1,1) touch at a corner
    >>> table["size_voxels"].tolist(), table["peak_value"].tolist(), table["peak_x"].tolist()
    ([2, 1], [3.0, -4.0], [0.0, 6.0])
    """
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise ParameterError(f"the volume has shape {volume.shape}; expected three dimensions (x, y, z).")
    coords = [np.asarray(c, dtype=np.float64) for c in coords]
    if len(coords) != 3 or any(c.shape != (n,) for c, n in zip(coords, volume.shape)):
        raise ParameterError(
            f"coords must be three 1-D arrays matching the volume's shape {volume.shape}; got shapes "
            f"{[np.shape(c) for c in coords]}."
        )
    threshold = _check_threshold(threshold)
    connectivity = _check_connectivity(connectivity)
    if isinstance(min_size, bool) or not isinstance(min_size, numbers.Integral) or min_size < 1:
        raise ParameterError(f"min_size={min_size!r} is not valid; expected an integer >= 1 (voxels).")
    subpeaks, min_distance = _check_subpeaks(subpeaks, min_distance)
    steps = [abs(c[1] - c[0]) if c.size > 1 else 1.0 for c in coords]
    voxel_mm3 = float(np.prod(steps))
    finite = np.where(np.isfinite(volume), volume, 0.0)
    rows = []
    for sign in (1, -1):
        signed = sign * finite  # negative clusters made positive: one code path for both
        labels, n = label_components(signed > threshold, connectivity)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        peaks = _tied_peaks(signed, labels, n)
        local = _local_maxima(signed, labels, structure(connectivity)) if subpeaks else None
        for label, (size, peak) in enumerate(zip(sizes, peaks), start=1):
            if size < min_size:
                continue
            i, j, k = (int(p) for p in peak)
            extra = _subpeaks(signed, labels, label, peak, local, coords, subpeaks, min_distance) if subpeaks else []
            rows.append(
                {
                    "sign": sign,
                    "size_voxels": int(size),
                    "size_mm3": float(size) * voxel_mm3,
                    "peak_x": float(coords[0][i]),
                    "peak_y": float(coords[1][j]),
                    "peak_z": float(coords[2][k]),
                    "peak_value": float(volume[i, j, k]),
                    "_sub": [
                        (float(coords[0][a]), float(coords[1][b]), float(coords[2][c]), float(volume[a, b, c]))
                        for a, b, c in extra
                    ],
                }
            )
    table = pd.DataFrame(rows, columns=[*COLUMNS[1:], "_sub"])
    table = table.astype(dict.fromkeys(COLUMNS[1:3], np.int64) | dict.fromkeys(COLUMNS[3:], np.float64))
    if len(table):
        order = np.lexsort(
            (-table["sign"].to_numpy(), -table["peak_value"].abs().to_numpy(), -table["size_voxels"].to_numpy())
        )
        table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "cluster", np.arange(1, len(table) + 1, dtype=np.int64))
    if not subpeaks:
        return table.drop(columns="_sub")
    return _with_subpeak_rows(table)


def _check_subpeaks(subpeaks, min_distance) -> tuple[int, float]:
    if isinstance(subpeaks, bool) or not isinstance(subpeaks, numbers.Integral) or subpeaks < 0:
        raise ParameterError(
            f"subpeaks={subpeaks!r} is not valid; expected an integer >= 0 (secondary peaks per cluster)."
        )
    if (
        isinstance(min_distance, bool)
        or not isinstance(min_distance, numbers.Real)
        or not np.isfinite(float(min_distance))
        or min_distance < 0
    ):
        raise ParameterError(f"min_distance={min_distance!r} is not valid; expected a distance in mm >= 0 (e.g. 8).")
    return int(subpeaks), float(min_distance)


def _local_maxima(signed: np.ndarray, labels: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Voxels of a cluster that no neighbour of the same cluster exceeds."""
    from scipy import ndimage

    inside = np.where(labels > 0, signed, -np.inf)
    return (labels > 0) & (inside >= ndimage.maximum_filter(inside, footprint=footprint, mode="constant", cval=-np.inf))


def _subpeaks(signed, labels, label, peak, local, coords, n: int, min_distance: float) -> list[tuple[int, int, int]]:
    """Up to ``n`` local maxima of one cluster, strongest first, ``min_distance`` mm from each other and the peak."""
    where = np.argwhere(local & (labels == label))
    if len(where) <= 1:
        return []
    values = signed[tuple(where.T)]
    where = where[np.argsort(-values, kind="stable")]
    mm = np.column_stack([coords[a][where[:, a]] for a in range(3)])
    kept = [np.array([coords[a][int(peak[a])] for a in range(3)])]
    out: list[tuple[int, int, int]] = []
    for idx, point in zip(where, mm):
        if len(out) == n:
            break
        if all(np.sqrt(((point - k) ** 2).sum()) >= min_distance for k in kept):
            kept.append(point)
            vi, vj, vk = (int(v) for v in idx)
            out.append((vi, vj, vk))
    return out


def _with_subpeak_rows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per peak: each cluster's row (peak 1), then its subpeaks (no size)."""
    rows = []
    for rec in table.to_dict("records"):
        sub = rec.pop("_sub")
        rows.append({**rec, "peak": 1})
        for p, peak in enumerate(sub, start=2):
            rows.append({**rec, "peak": p, "size_voxels": pd.NA, "size_mm3": np.nan, **dict(zip(COLUMNS[4:], peak))})
    out = pd.DataFrame(rows, columns=["cluster", "peak", *COLUMNS[1:]])
    return out.astype({"cluster": np.int64, "peak": np.int64, "sign": np.int64, "size_voxels": "Int64"})


def atlas_labels(table: pd.DataFrame, atlas, labels=None, *, column: str = "atlas_label") -> pd.DataFrame:
    """Add the atlas label at each peak of a cluster table.

    Parameters
    ----------
    table : pandas.DataFrame
        A cluster table (``peak_x``, ``peak_y``, ``peak_z`` in MNI mm).
    atlas : str, path-like, nibabel image or xarray.DataArray
        A label image in MNI space (integer values, 0 background), on any grid: a peak reads its nearest voxel.
    labels : dict, str or path-like, list or pandas.DataFrame, optional
        The values' names: ``{value: name}``, a file of ``value name`` lines, a list indexed by value
        (nilearn's ``labels``) or a table with ``index`` and ``name`` (nilearn's ``lut``); default the value.
    column : str, default "atlas_label"
        The new column's name.

    Returns
    -------
    pandas.DataFrame
        A copy with ``column`` added: the label at the peak, ``""`` for the background and outside the image.

    Raises
    ------
    ParameterError
        An atlas with non-integer values, or labels that name no values.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> atlas = xr.DataArray(np.array([[[0, 1], [2, 2]]]), dims=("x", "y", "z"),
    ...                      coords={"x": [0.0], "y": [0.0, 2.0], "z": [0.0, 2.0]})
    >>> t = pd.DataFrame({"peak_x": [0.0, 0.0, 50.0], "peak_y": [0.0, 2.0, 0.0], "peak_z": [2.0, 0.0, 0.0]})
    >>> atlas_labels(t, atlas, ["Background", "left", "right"])["atlas_label"].tolist()
    ['left', 'right', '']
    """
    from ..roi import _image_values

    values, name = _image_values(atlas)
    data = np.asarray(values.transpose("x", "y", "z").values)
    finite = data[np.isfinite(data)]
    if finite.size and not np.allclose(finite, np.round(finite)):
        raise ParameterError(
            f"{name}: an atlas needs integer label values; found non-integer values "
            "(a probabilistic map? pick its label image instead)."
        )
    lut = _label_names(labels)
    axes = [np.asarray(values[c].values, dtype=np.float64) for c in "xyz"]
    out = []
    for x, y, z in zip(table["peak_x"], table["peak_y"], table["peak_z"]):
        idx = []
        for lab, v in zip(axes, (x, y, z)):
            i = int(np.argmin(np.abs(lab - v)))
            half = abs(lab[1] - lab[0]) / 2 if lab.size > 1 else 0.5
            idx.append(i if abs(lab[i] - v) <= half + 1e-6 else None)
        value = data[tuple(idx)] if None not in idx else np.nan
        key = int(round(float(value))) if np.isfinite(value) else 0
        out.append("" if key == 0 else lut.get(key, str(key)))
    result = table.copy()
    result[column] = out
    return result


def _label_names(labels) -> dict[int, str]:
    """``{value: name}`` from a dict, a ``value name`` file, a list (position = value) or a DataFrame."""
    from ..roi import _read_lut

    if labels is None:
        return {}
    if isinstance(labels, pd.DataFrame):
        cols = {str(c).lower(): c for c in labels.columns}
        if "index" in cols and "name" in cols:
            return {int(k): str(v) for k, v in zip(labels[cols["index"]], labels[cols["name"]])}
        if labels.shape[1] >= 2:
            return {int(k): str(v) for k, v in zip(labels.iloc[:, 0], labels.iloc[:, 1])}
        raise ParameterError(f"labels has columns {list(labels.columns)}; expected 'index' and 'name' (nilearn's lut).")
    if isinstance(labels, (list, tuple, np.ndarray)):
        return {i: str(v) for i, v in enumerate(labels)}
    return _read_lut(labels)


def map_volume(ds: xr.Dataset | xr.DataArray, name: str | None = None, seed=None) -> xr.DataArray:
    """One map as an ``(x, y, z)`` DataArray (still lazy), from a result or a batch.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
    name : str, optional
        The map (:func:`pick_map`).
    seed : optional
        The seed of a batch; without it a batch gives ``(seed, x, y, z)``.

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    ParameterError
        ``seed`` is not one of the batch, or given for one seed, or the map is not over ``(x, y, z)``.
    """
    if isinstance(ds, xr.DataArray):
        da3 = ds
    else:
        da3 = to_volumes(ds)[pick_map(ds, name)]
    if seed is not None:
        if "seed" not in da3.dims:
            raise ParameterError(f"seed={seed!r} was given, but the result has no seed dimension (it is one seed).")
        known = [str(s) for s in da3["seed"].values]
        if str(seed) not in known:
            shown = known[:20] + (["..."] if len(known) > 20 else [])
            raise ParameterError(f"seed={seed!r} is not a seed of the batch; its seeds are {shown}.")
        da3 = da3.isel(seed=known.index(str(seed)))
    expected = {"x", "y", "z"} | ({"seed"} if "seed" in da3.dims else set())
    if set(da3.dims) != expected:
        raise ParameterError(f"the map has dims {da3.dims}; expected ('x', 'y', 'z'), or with 'seed' for a batch.")
    return da3.transpose(*(["seed"] if "seed" in da3.dims else []), "x", "y", "z")


def clusters(
    ds: xr.Dataset | xr.DataArray,
    name: str | None = None,
    *,
    threshold: float = 0.0,
    seed=None,
    connectivity: int = 26,
    min_size: int = 1,
    subpeaks: int = 0,
    min_distance: float = 8.0,
    atlas=None,
    atlas_labels=None,
) -> pd.DataFrame:
    """The cluster table of a result map (see :func:`cluster_table`).

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A result of :func:`xcoact.seed` (one seed or a batch), or one map over ``(x, y, z)``.
    name : str, optional
        The map; by default the corrected association z map (:func:`pick_map`).
    threshold : float, default 0
        See :func:`cluster_table`.
    seed : str, optional
        For a batch, the seed whose table to make; by default every seed's, with a first column ``seed``.
    connectivity : {26, 18, 6}, default 26
        Voxels sharing a face, edge or corner (26) are connected.
    min_size : int, default 1
        Leave out clusters of fewer voxels.
    subpeaks : int, default 0
        Secondary peaks per cluster (see :func:`cluster_table`).
    min_distance : float, default 8
        Minimum distance in mm between the peaks of one cluster.
    atlas : str, path-like, nibabel image or DataArray, optional
        A label image: adds ``atlas_label``, the label at each peak (:func:`atlas_labels`).
    atlas_labels : dict, path, list or DataFrame, optional
        The names of the atlas's values.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS` (``seed`` first for a batch, ``peak`` with subpeaks, ``atlas_label`` with an atlas).

    Raises
    ------
    ParameterError
        A bad option, or ``atlas_labels`` without ``atlas``.

    Notes
    -----
    Cost: computes the chosen map (one volume; for a batch, one seed at a time).
    """
    threshold = _check_threshold(threshold)
    if atlas is None and atlas_labels is not None:
        raise ParameterError("atlas_labels names the values of an atlas image; pass the image too: atlas=...")
    vol = map_volume(ds, name, seed)
    coords = [vol[c].values for c in "xyz"]
    opts: dict[str, Any] = dict(
        connectivity=connectivity, min_size=min_size, subpeaks=subpeaks, min_distance=min_distance
    )
    if "seed" not in vol.dims:
        table = cluster_table(vol.values, coords, threshold, **opts)
    else:
        tables = []
        for label in vol["seed"].values:
            one = cluster_table(vol.sel(seed=label).values, coords, threshold, **opts)
            one.insert(0, "seed", str(label))
            tables.append(one)
        table = pd.concat(tables, ignore_index=True)
    if atlas is not None:
        table = _add_atlas(table, atlas, atlas_labels)
    return table


def _add_atlas(table: pd.DataFrame, atlas, labels) -> pd.DataFrame:
    # the parameter of clusters() shadows the function's name there
    return atlas_labels(table, atlas, labels)
