"""Pictures of result maps with matplotlib: orthogonal slices, a glass brain, small multiples.

Figures are built on :class:`matplotlib.figure.Figure`, never through ``pyplot`` (the user's backend is left
alone, no window opens).  Axes are in MNI mm, left hemisphere on the left, ticks on voxel centres.
"""

from __future__ import annotations

import functools
import io
import json
import math
import numbers
import os
import re
import typing
from collections.abc import Sequence

import numpy as np
import xarray as xr

from . import validate
from .choices import PlotKind, PlotView
from .errors import OutputError, ParameterError
from .roi import image_stem
from .stats.clusters import map_volume, peak_index, pick_map
from .writers import write_atomically

__all__ = [
    "plot",
    "to_png",
    "png_bytes",
    "seed_label",
    "threshold_text",
    "selection_text",
    "default_threshold",
    "display_threshold",
    "MAX_SHOWN_FRACTION",
]

_KINDS = typing.get_args(PlotKind)
_VIEWS = {"x": "sagittal", "y": "coronal", "z": "axial"}
#: Seeds drawn by default for a batch: enough for an overview, few enough to stay legible.
MAX_SEEDS = 48
#: Seeds computed together while drawing small multiples (bounds memory: each is one volume).
_SEEDS_PER_PASS = 8
#: The largest share of the brain mask a default display (and cluster table) covers; when more voxels
#: pass the map's own threshold, the display threshold is raised until at most this share is shown.
MAX_SHOWN_FRACTION = 0.10


def _mpl_text(text: str) -> str:
    # a pair of "$" would start matplotlib's mathtext: user strings must be literal
    return str(text).replace("$", r"\$")


def seed_label(seed) -> str:
    """A short label for a result's ``attrs["seed"]``: an image's file stem, or the coordinates and radius.

    Examples
    --------
    >>> seed_label('{"coordinates": [[0.0, 20.0, 28.0]], "r": 10}')
    '(0, 20, 28), r = 10 mm'
    >>> seed_label("/data/rois/amygdala_roi.nii.gz")
    'amygdala_roi'
    """
    text = str(seed)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "coordinates" in parsed:
        coords = " + ".join("(" + ", ".join(f"{float(v):g}" for v in xyz) + ")" for xyz in parsed["coordinates"])
        r = parsed.get("r")
        return f"{coords}, r = {float(r):g} mm" if isinstance(r, (int, float)) else coords
    return image_stem(text.rstrip("/\\")) or text


def _fdr_q(name: str, attrs: dict) -> str | None:
    if "FDR" not in name:
        return None
    # Neurosynth's names end in the rate (..._FDR_0.01); others (NiMARE's) leave it to attrs["q"]
    tail = name.rsplit("FDR_", 1)[-1]
    try:
        float(tail)
    except ValueError:
        return str(attrs.get("q", "?"))
    return tail


def _words(name: str) -> set[str]:
    return set(re.split(r"[^0-9a-z]+", name.lower()))


def adjusted_z_map(name: str) -> bool:
    """True for a map of z scores of FDR-*adjusted* p values (NiMARE's ``z_..._corr-FDR_...``).

    Such a map is not thresholded.
    """
    return {"z", "corr", "fdr"} <= _words(name)


def default_threshold(ds: xr.Dataset, name: str) -> float:
    """The display (and cluster) threshold used when none is given.

    0 (every non-zero voxel) for Neurosynth's ``*_FDR_{q}`` maps, which hold
    0 where the FDR test fails, and for unthresholded maps; for a z map of
    BH-adjusted p values (NiMARE's naming, two-tailed) the z of ``q``,
    ``|z| > Phi^-1(1 - q / 2)``, so that what is shown is what passes FDR.

    Examples
    --------
    >>> import xarray as xr
    >>> round(default_threshold(xr.Dataset(attrs={"q": 0.05}),
    ...                         "z_desc-association_level-voxel_corr-FDR_method-indep"), 3)
    1.96
    """
    if not adjusted_z_map(name):
        return 0.0
    from scipy import special

    q = float(ds.attrs.get("q", 0.01)) if isinstance(ds, (xr.Dataset, xr.DataArray)) else 0.01
    return float(-special.ndtri(q / 2))


def display_threshold(
    ds: xr.Dataset, name: str, values: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, str]:
    """The default display and cluster-forming threshold of a computed map, and why (``""`` if not raised).

    Start from :func:`default_threshold` (what passes the map's correction);
    if more than :data:`MAX_SHOWN_FRACTION` (10 %) of the brain mask's
    voxels pass it, raise it to the smallest value that leaves at most that
    share: on a large database (Neurosynth v7: 14,371 studies) nearly half
    the brain passes FDR, and a map or cluster table of half the brain tells
    the reader nothing.  The returned note states the raise and how many
    voxels passed, for titles and reports.

    Parameters
    ----------
    ds : xarray.Dataset
        The result (its attrs give ``q`` for NiMARE-style maps).
    name : str
        The map's name.
    values : (nx, ny, nz) array
        The computed map.
    mask : (nx, ny, nz) bool array, optional
        The brain mask; the finite voxels by default.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> vol = np.arange(1000, dtype=float).reshape(10, 10, 10)   # every voxel but one is non-zero
    >>> threshold, note = display_threshold(xr.Dataset(), "association-test_z_FDR_0.01", vol)
    >>> threshold, int((vol > threshold).sum())
    (899.0, 100)
    >>> note.split("; ")[0]
    'raised from 0 so that at most 10% of the brain (100 of 1,000 voxels) is shown'
    >>> note.split("; ")[1]
    "999 voxels pass the map's own threshold"
    """
    base = default_threshold(ds, name)
    values = np.asarray(values, dtype=np.float64)
    inside = np.isfinite(values) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(values))
    magnitude = np.abs(values[inside])
    passing = int((magnitude > base).sum())
    limit = int(MAX_SHOWN_FRACTION * int(inside.sum()))
    if passing <= limit or limit < 1:
        return base, ""
    # the (limit + 1)-th largest |value|: strictly above it lie at most `limit` voxels
    raised = float(-np.partition(-magnitude, limit)[limit])
    note = (
        f"raised from {base:.4g} so that at most {MAX_SHOWN_FRACTION:.0%} of the brain ({limit:,} of "
        f"{int(inside.sum()):,} voxels) is shown; {passing:,} voxels pass the map's own threshold"
    )
    return max(raised, base), note


def threshold_text(ds: xr.Dataset, name: str, threshold: float = 0.0) -> str:
    """The thresholds behind a map, in words: the voxel threshold, what is shown, and the study selection.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(attrs={"threshold": 0.1, "threshold_kind": "proportion"})
    >>> threshold_text(ds, "association-test_z_FDR_0.01")
    'threshold: FDR q = 0.01, shown: every non-zero voxel; studies selected: overlap > 0.1 of the ROI'
    """
    attrs = ds.attrs if isinstance(ds, (xr.Dataset, xr.DataArray)) else {}
    q = _fdr_q(name, attrs)
    voxel = f"FDR q = {q}" if q is not None else "none (unthresholded map)"
    if q is not None and adjusted_z_map(name):
        voxel += " (z of BH-adjusted p)"
    shown = f"|value| > {threshold:.4g}" if threshold > 0 else "every non-zero voxel"
    parts = f"threshold: {voxel}, shown: {shown}"
    rule = selection_text(attrs)
    return f"{parts}; studies selected: {rule}" if rule else parts


def selection_text(attrs) -> str:
    """The study-selection rule of a result's ``attrs`` in a few words ("" when not recorded).

    Examples
    --------
    >>> selection_text({"select": "overlap", "threshold": 5, "threshold_kind": "count"})
    'overlap > 5 ROI voxels'
    >>> selection_text({"select": "distance", "select_r": 10.0})
    'a peak within 10 mm of the seed'
    """
    rule = attrs.get("select", "overlap" if "threshold" in attrs else None)
    if rule == "overlap" and "threshold" in attrs:
        unit = "of the ROI" if attrs.get("threshold_kind", "proportion") == "proportion" else "ROI voxels"
        return f"overlap > {attrs['threshold']} {unit}"
    if rule == "focus":
        return "a peak inside the ROI"
    if rule == "distance" and "select_r" in attrs:
        return f"a peak within {float(attrs['select_r']):g} mm of the seed"
    if rule == "nearest" and "select_k" in attrs:
        return f"the {attrs['select_k']} studies with the nearest peaks"
    return str(attrs.get("selection", rule or ""))


@functools.lru_cache(maxsize=1)
def _template() -> xr.DataArray:
    import nibabel as nib

    from .datasets import template_path
    from .space import axis_labels

    img = nib.load(template_path())
    x, y, z = axis_labels(img.affine, img.shape)
    tpl = xr.DataArray(np.asarray(img.dataobj, dtype=np.float32), dims=("x", "y", "z"), coords={"x": x, "y": y, "z": z})
    return tpl.sortby(["x", "y", "z"])


def _background(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The MNI template on the given (ascending) labels, nearest voxel; NaN outside it."""
    step = max(float(np.max(np.abs(np.diff(c)))) if c.size > 1 else 1.0 for c in (x, y, z))
    tpl = _template().reindex(x=x, y=y, z=z, method="nearest", tolerance=step)
    return tpl.values


def _ascending(vol: xr.DataArray) -> xr.DataArray:
    return vol.sortby(["x", "y", "z"])


def _mask_of(ds, vol: xr.DataArray) -> np.ndarray:
    """The brain mask on the volume's (ascending) labels; the template > 0 when the result has none."""
    mask = None
    if "brain_mask" in vol.coords:
        mask = vol["brain_mask"]
    elif isinstance(ds, xr.Dataset) and "brain_mask" in ds.variables:
        mask = ds["brain_mask"]
    if mask is not None:
        return np.asarray(_ascending(mask.astype(bool)).transpose("x", "y", "z").values)
    bg = _background(vol["x"].values, vol["y"].values, vol["z"].values)
    return np.nan_to_num(bg) > 0


def _mm_ticks(labels: np.ndarray, most: int = 7) -> np.ndarray:
    """Round-numbered voxel centres along an axis, at most ``most`` of them."""
    labels = np.sort(np.asarray(labels, dtype=float))
    span = labels[-1] - labels[0]
    for step in (1, 2, 5, 10, 20, 25, 30, 40, 50, 100, 200, 500, 1000):
        on_step = labels[np.isclose(np.round(labels / step) * step, labels, atol=1e-6)]
        if 2 <= on_step.size <= most and on_step[-1] - on_step[0] >= span / 3:
            return on_step
    return labels[np.unique(np.linspace(0, labels.size - 1, min(most, labels.size)).round().astype(int))]


def _extent(h: np.ndarray, v: np.ndarray) -> tuple[float, float, float, float]:
    dh = (h[1] - h[0]) if h.size > 1 else 1.0
    dv = (v[1] - v[0]) if v.size > 1 else 1.0
    return (h[0] - dh / 2, h[-1] + dh / 2, v[0] - dv / 2, v[-1] + dv / 2)


def _style(ax, h: np.ndarray, v: np.ndarray, hname: str, vname: str, *, labels: bool = True, lr: bool = False):
    """Ticks on voxel centres labelled in mm, axis names, and the L / R sides."""
    xt, yt = _mm_ticks(h), _mm_ticks(v)
    ax.set_xticks(xt, [f"{t:g}" for t in xt])
    ax.set_yticks(yt, [f"{t:g}" for t in yt])
    ax.tick_params(labelsize=7, length=2)
    if labels:
        ax.set_xlabel(f"{hname} (mm)", fontsize=8)
        ax.set_ylabel(f"{vname} (mm)", fontsize=8)
    if lr:
        # neurological convention: negative x (left hemisphere) on the left
        ax.text(0.02, 0.02, "L", transform=ax.transAxes, fontsize=8, color="0.55", ha="left", va="bottom")
        ax.text(0.98, 0.02, "R", transform=ax.transAxes, fontsize=8, color="0.55", ha="right", va="bottom")


def _norm_and_cmap(values: list[np.ndarray], threshold: float, vmax, cmap):
    import matplotlib
    from matplotlib.colors import Normalize

    pieces = [v[np.isfinite(v)] for v in values]
    finite = np.concatenate(pieces) if pieces else np.zeros(0)
    negative = bool((finite < -threshold).any()) if finite.size else False
    top = float(np.max(np.abs(finite))) if finite.size else 0.0
    if vmax is None:
        vmax = top if top > 0 else 1.0
    if isinstance(vmax, bool) or not isinstance(vmax, numbers.Real) or not np.isfinite(float(vmax)) or vmax <= 0:
        raise ParameterError(f"vmax={vmax!r} is not valid; expected a finite number > 0 (the top of the colour scale).")
    vmax = float(vmax)
    if negative:
        norm = Normalize(-vmax, vmax)
        name = cmap or "RdBu_r"
    else:
        norm = Normalize(threshold if threshold < vmax else 0.0, vmax)
        name = cmap or "autumn"
    try:
        colormap = matplotlib.colormaps[name] if isinstance(name, str) else name
    except KeyError:
        raise ParameterError(
            f"cmap={name!r} is not a matplotlib colour map (e.g. 'RdBu_r', 'autumn', 'viridis')."
        ) from None
    return norm, colormap.with_extremes(bad=(0, 0, 0, 0))


def _shown(values: np.ndarray, threshold: float) -> np.ma.MaskedArray:
    keep = np.isfinite(values) & (np.abs(np.nan_to_num(values)) > threshold)
    return np.ma.masked_array(np.where(keep, values, 0.0), mask=~keep)


def _signed_mip(vol: np.ndarray, axis: int) -> np.ndarray:
    """Along ``axis``, the value of largest magnitude (with its sign); NaN where all are NaN."""
    filled = np.where(np.isfinite(vol), vol, 0.0)
    idx = np.expand_dims(np.argmax(np.abs(filled), axis=axis), axis)
    out = np.take_along_axis(filled, idx, axis=axis).squeeze(axis)
    return np.where(np.isfinite(vol).any(axis=axis), out, np.nan)


def _cut_indices(vol: np.ndarray, labels: list[np.ndarray], mask: np.ndarray, cut) -> tuple[int, int, int]:
    if cut is None:
        finite = np.where(np.isfinite(vol), np.abs(vol), 0.0)
        if finite.max() > 0:
            # ties at the top (a z cap) are broken by the ties' centre of mass, as the cluster table does
            top = peak_index(finite)
            assert top is not None  # the map has a finite maximum
            return top
        # an empty map: cut through the centre of the brain mask
        centre = np.argwhere(mask).mean(axis=0) if mask.any() else (np.array(vol.shape) - 1) / 2
        i, j, k = (int(round(c)) for c in centre)
        return i, j, k
    try:
        mm = [float(c) for c in cut]
    except (TypeError, ValueError):
        mm = []
    if len(mm) != 3 or not all(np.isfinite(mm)):
        raise ParameterError(f"cut={cut!r} is not valid; expected three MNI coordinates in mm, e.g. cut=(0, 20, 28).")
    out = []
    for c, lab, axis in zip(mm, labels, "xyz"):
        half = abs(lab[1] - lab[0]) / 2 if lab.size > 1 else 0.5
        if not lab.min() - half <= c <= lab.max() + half:
            raise ParameterError(
                f"cut={tuple(mm)}: {axis} = {c:g} mm lies outside the grid "
                f"({axis} from {lab.min():g} to {lab.max():g} mm)."
            )
        out.append(int(np.argmin(np.abs(lab - c))))
    return out[0], out[1], out[2]


def _draw_glass(ax, proj: np.ndarray, outline: np.ndarray, h, v, norm, cmap, threshold):
    # the outline of the brain mask's shadow on this plane, over a faint fill
    ax.imshow(
        np.where(outline, 1.0, np.nan).T,
        origin="lower",
        extent=_extent(h, v),
        cmap="Greys",
        vmin=0,
        vmax=12,
        interpolation="nearest",
    )
    if outline.any() and not outline.all():
        ax.contour(h, v, outline.T.astype(float), levels=[0.5], colors="0.35", linewidths=0.8)
    return ax.imshow(
        _shown(proj, threshold).T, origin="lower", extent=_extent(h, v), cmap=cmap, norm=norm, interpolation="nearest"
    )


def _mask_on(ds, vol: xr.DataArray) -> np.ndarray:
    """The brain mask in ``vol``'s own (x, y, z) order."""
    mask = (
        vol["brain_mask"]
        if "brain_mask" in vol.coords
        else (ds["brain_mask"] if "brain_mask" in ds.variables else None)
    )
    if mask is None:
        return np.isfinite(vol.values)
    return np.asarray(mask.astype(bool).transpose("x", "y", "z").sel(x=vol["x"], y=vol["y"], z=vol["z"]).values)


def _single_figure(
    ds,
    vol: xr.DataArray,
    name: str,
    seed_text: str | None,
    counts: str,
    *,
    cut,
    threshold,
    vmax,
    cmap,
    kind,
    title,
    dpi,
    figsize,
    note: str = "",
):
    from matplotlib.figure import Figure

    vol = _ascending(vol).transpose("x", "y", "z")
    x, y, z = (vol[c].values.astype(float) for c in "xyz")
    values = np.asarray(vol.values, dtype=np.float64)
    mask = _mask_of(ds, vol)
    i, j, k = _cut_indices(values, [x, y, z], mask, cut)
    planes = [  # (axis projected or cut, horizontal labels, vertical labels, names)
        (0, y, z, "y", "z"),
        (1, x, z, "x", "z"),
        (2, x, y, "x", "y"),
    ]
    rows = {"all": ["slices", "glass"], "slices": ["slices"], "glass": ["glass"]}[kind]
    if figsize is None:
        figsize = (13.0, 4.4 * len(rows) + 0.9)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    widths = [y.size, x.size, x.size]
    axes = fig.subplots(len(rows), 3, squeeze=False, gridspec_kw={"width_ratios": widths})
    slices = {"x": values[i, :, :], "y": values[:, j, :], "z": values[:, :, k]}
    projections = [_signed_mip(values, a) for a in range(3)]
    norm, colormap = _norm_and_cmap([values], threshold, vmax, cmap)
    image = None
    if "slices" in rows:
        bg = _background(x, y, z)
        bg_slices = {"x": bg[i, :, :], "y": bg[:, j, :], "z": bg[:, :, k]}
        finite_bg = bg[np.isfinite(bg) & (bg > 0)]
        top = float(np.percentile(finite_bg, 99.5)) if finite_bg.size else 1.0
        cuts = {"x": x[i], "y": y[j], "z": z[k]}
        for col, (axis, h, v, hn, vn) in enumerate(planes):
            ax = axes[rows.index("slices"), col]
            letter = "xyz"[axis]
            ax.set_facecolor("black")
            ax.imshow(
                bg_slices[letter].T,
                origin="lower",
                extent=_extent(h, v),
                cmap="gray",
                vmin=0,
                vmax=top,
                interpolation="nearest",
            )
            image = ax.imshow(
                _shown(slices[letter], threshold).T,
                origin="lower",
                extent=_extent(h, v),
                cmap=colormap,
                norm=norm,
                interpolation="nearest",
            )
            ax.axvline(cuts[hn], color="0.85", lw=0.6, alpha=0.7)
            ax.axhline(cuts[vn], color="0.85", lw=0.6, alpha=0.7)
            ax.set_title(f"{_VIEWS[letter]}, {letter} = {cuts[letter]:g} mm", fontsize=9)
            ax.set_label(f"slice {letter}")
            _style(ax, h, v, hn, vn, lr=letter != "x")
    if "glass" in rows:
        for col, (axis, h, v, hn, vn) in enumerate(planes):
            ax = axes[rows.index("glass"), col]
            letter = "xyz"[axis]
            image = _draw_glass(ax, projections[axis], np.asarray(mask.any(axis=axis)), h, v, norm, colormap, threshold)
            ax.set_title(f"maximum |value| projection, {_VIEWS[letter]}", fontsize=9)
            ax.set_label(f"glass {letter}")
            _style(ax, h, v, hn, vn, lr=letter != "x")
    assert image is not None  # at least one row of panels was drawn
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.75, pad=0.01)
    bar.set_label(_mpl_text(name), fontsize=9)
    head = title if title is not None else name + (f"  |  seed: {seed_text}" if seed_text is not None else "")
    empty = "" if _shown(values, threshold).count() else "; no voxel passes the threshold"
    lines = [head, f"{threshold_text(ds, name, threshold)}{counts}{empty}"] + (
        [f"display threshold {note}"] if note else []
    )
    fig.suptitle(_mpl_text(_wrap("\n".join(lines), figsize[0])), fontsize=10)
    return fig


def _wrap(text: str, width_in: float, fontsize: float = 10) -> str:
    """Wrap each line of a title to the figure's width (about 0.55 em per character), so none is cut off."""
    import textwrap

    chars = max(20, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in text.split("\n"))


def _batch_figure(
    ds,
    vols: xr.DataArray,
    name: str,
    seeds: list[str],
    *,
    threshold,
    vmax,
    cmap,
    view,
    ncols,
    title,
    dpi,
    figsize,
    total: int,
):
    from matplotlib.figure import Figure

    axis = "xyz".index(view)
    vols = _ascending(vols).transpose("seed", "x", "y", "z")
    x, y, z = (vols[c].values.astype(float) for c in "xyz")
    h, v = [c for a, c in enumerate((x, y, z)) if a != axis]
    hn, vn = [c for c in "xyz" if c != view]
    mask = _mask_of(ds, vols.isel(seed=0, drop=True))
    outline = np.asarray(mask.any(axis=axis))
    labels = [str(s) for s in vols["seed"].values]
    projections: dict[str, np.ndarray] = {}
    for start in range(0, len(seeds), _SEEDS_PER_PASS):
        part = seeds[start : start + _SEEDS_PER_PASS]
        block = np.asarray(vols.isel(seed=[labels.index(s) for s in part]).values, dtype=np.float64)
        for s, vol in zip(part, block):
            projections[s] = _signed_mip(vol, axis)
    n_selected = dict(zip(labels, ds["n_selected"].values)) if "n_selected" in ds else {}
    valid = dict(zip(labels, ds["valid"].values)) if "valid" in ds else {}
    norm, colormap = _norm_and_cmap(list(projections.values()), threshold, vmax, cmap)
    n = len(seeds)
    ncols = validate.integer(ncols or min(n, 6), "ncols", 1)
    nrows = math.ceil(n / ncols)
    cell = 2.3 * (v.size / h.size) if h.size else 2.3
    if figsize is None:
        figsize = (2.3 * ncols + 1.2, max(cell * nrows + 1.2, 3.4))
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    used = []
    image = None
    for idx, s in enumerate(seeds):
        ax = axes[idx // ncols, idx % ncols]
        image = _draw_glass(ax, projections[s], outline, h, v, norm, colormap, threshold)
        ok = bool(valid.get(s, True)) and np.isfinite(projections[s]).any()
        sub = f"{n_selected[s]} studies" if s in n_selected and ok else "no map (degenerate seed)"
        ax.set_title(_mpl_text(f"{s}\n{sub}"), fontsize=8)
        ax.set_label(f"seed: {s}")
        _style(ax, h, v, hn, vn, labels=False, lr=view != "x")
        used.append(ax)
    for ax in axes.ravel()[n:]:
        ax.remove()
    fig.supxlabel(f"{hn} (mm)", fontsize=9)
    fig.supylabel(f"{vn} (mm)", fontsize=9)
    assert image is not None  # at least one seed was drawn
    bar = fig.colorbar(image, ax=used, shrink=0.9, pad=0.01)
    bar.set_label(_mpl_text(name), fontsize=8)
    shown = f"{n} seeds" if n == total else f"{n} of {total} seeds"
    head = title if title is not None else f"{name}  |  {shown}, maximum |value| projection ({_VIEWS[view]})"
    # wrapped to the figure's width: a batch of two seeds is a narrow figure
    fig.suptitle(_mpl_text(_wrap(f"{head}\n{threshold_text(ds, name, threshold)}", figsize[0])), fontsize=10)
    return fig


def plot(
    ds: xr.Dataset,
    name: str | None = None,
    *,
    seed: str | Sequence[str] | None = None,
    cut: Sequence[float] | None = None,
    threshold: float | None = None,
    vmax: float | None = None,
    cmap=None,
    kind: PlotKind = "all",
    view: PlotView = "z",
    ncols: int | None = None,
    max_seeds: int = MAX_SEEDS,
    title: str | None = None,
    dpi: int = 100,
    figsize: tuple[float, float] | None = None,
):
    """Draw a result map: orthogonal slices and a glass brain, or a batch as small multiples.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`xcoact.seed` (one seed, or a batch in either layout).
    name : str, optional
        The map to draw; by default the FDR-thresholded association z map
        (:func:`xcoact.stats.clusters.pick_map`).
    seed : str or list of str, optional
        For a batch: one seed's name draws that seed like a single result; a
        list draws those seeds as small multiples.  By default the first
        ``max_seeds`` seeds are drawn as small multiples.
    cut : (x, y, z) in mm, optional
        Where the orthogonal slices cross (the nearest voxel centre); by
        default the voxel of largest ``|value|`` (the peak; among tied
        voxels, the one nearest their centre of mass, see
        :func:`xcoact.stats.clusters.peak_index`).
    threshold : float, optional
        Show only voxels with ``|value| > threshold``; by default, for one
        seed, :func:`display_threshold`: :func:`default_threshold` (every
        non-zero voxel of Neurosynth's FDR maps, which are already
        thresholded, or ``|z| > Phi^-1(1 - q/2)`` for a z map of FDR-adjusted
        p values), raised when more than 10 % of the brain would be shown
        (the title says so and by how much); for small multiples
        :func:`default_threshold`.
    vmax : float, optional
        Top of the colour scale; by default the largest ``|value|``.  Maps
        with negative values use a symmetric diverging scale.
    cmap : str or Colormap, optional
        ``"RdBu_r"`` for signed maps and ``"autumn"`` for positive ones by default.
    kind : {"all", "slices", "glass"}, default "all"
        For one seed: both rows, only the orthogonal slices over the MNI
        template, or only the glass brain (maximum ``|value|`` projections on
        three planes inside the outline of the brain mask).
    view : {"x", "y", "z"}, default "z"
        For small multiples: the projection drawn for each seed (``"z"``:
        axial, seen from above).
    ncols : int, optional
        Columns of small multiples (at most 6 by default).
    max_seeds : int, default 48
        Most seeds drawn when ``seed`` is not given (the title says how many
        of how many).
    title : str, optional
        Replaces the first title line (map and seed); the line stating the
        thresholds stays.
    dpi : int, default 100
    figsize : (width, height) in inches, optional

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot: save it with ``fig.savefig(path)`` or
        :func:`to_png`; a notebook displays it.  The title names the map and
        the seed and states the thresholds (FDR q, what is shown, the study
        selection rule); the colour bar is labelled with the map name.
        Each small multiple's axes has the label ``"seed: <name>"``.

    Notes
    -----
    Cost: computes the map: one volume for one seed; for small multiples,
    each drawn seed's volume, a few seeds at a time.
    """
    if kind not in _KINDS:
        raise ParameterError(f"kind={kind!r} is not known; expected one of {list(_KINDS)}.")
    if view not in _VIEWS:
        raise ParameterError(f"view={view!r} is not known; expected 'x' (sagittal), 'y' (coronal) or 'z' (axial).")
    validate.integer(max_seeds, "max_seeds", 1)
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "map").assign_attrs(ds.attrs)
    name = pick_map(ds, name)
    auto = threshold is None
    if threshold is None:
        threshold = default_threshold(ds, name)
    threshold = validate.finite(threshold, "threshold", " (voxels with |value| above it are shown)", minimum=0)
    batch = "seed" in ds.dims
    style = {"vmax": vmax, "cmap": cmap, "title": title, "dpi": dpi, "figsize": figsize}
    if not batch or isinstance(seed, str):
        vol = map_volume(ds, name, seed)  # refuses a seed of a single result
        note = ""
        if auto:
            vol = vol.compute()
            threshold, note = display_threshold(ds, name, vol.values, _mask_on(ds, vol))
        if batch:
            labels = [str(s) for s in ds["seed"].values]
            pos = labels.index(str(seed))
            seed_text: str | None = str(seed)
            counts = (
                f"; {int(ds['n_selected'].values[pos])} of {ds.attrs.get('n_studies', '?')} studies selected"
                if "n_selected" in ds
                else ""
            )
        else:
            seed_text = seed_label(ds.attrs["seed"]) if "seed" in ds.attrs else None
            counts = (
                f" ({ds.attrs['n_selected']} of {ds.attrs['n_studies']} studies)"
                if "n_selected" in ds.attrs and "n_studies" in ds.attrs
                else ""
            )
        return _single_figure(
            ds, vol, name, seed_text, counts, cut=cut, kind=kind, note=note, threshold=threshold, **style
        )
    labels = [str(s) for s in ds["seed"].values]
    if seed is None:
        seeds = labels[:max_seeds]
    else:
        seeds = [str(s) for s in seed]
        unknown = [s for s in seeds if s not in labels]
        if unknown or not seeds:
            shown = labels[:20] + (["..."] if len(labels) > 20 else [])
            raise ParameterError(
                f"seed={list(seed)!r}: {unknown or 'no seed'} not in the batch; its seeds are {shown}."
            )
    vols = map_volume(ds, name)
    return _batch_figure(ds, vols, name, seeds, view=view, ncols=ncols, total=len(labels), threshold=threshold, **style)


def _savefig_defaults():
    """Matplotlib's own savefig settings for our files, whatever another library set globally
    (e.g. ``savefig.bbox = "tight"`` or a ``savefig.dpi``, which change the PNG's size)."""
    import matplotlib

    return matplotlib.rc_context({k: v for k, v in matplotlib.rcParamsDefault.items() if k.startswith("savefig.")})


def png_bytes(fig, *, dpi: int | None = None) -> bytes:
    """The figure rendered as PNG bytes (Agg), e.g. to embed in HTML."""
    buf = io.BytesIO()
    _save_png(buf, fig, dpi)
    return buf.getvalue()


def _save_png(tmp: str | io.BytesIO, fig, dpi) -> None:
    with _savefig_defaults():
        fig.savefig(tmp, format="png", dpi="figure" if dpi is None else dpi)


def to_png(obj, path: str | os.PathLike, *, overwrite: bool = False, dpi: int | None = None, **plot_kwargs) -> str:
    """Write a figure, or a result's :func:`plot`, to a PNG file atomically.

    Parameters
    ----------
    obj : matplotlib.figure.Figure or xarray.Dataset
        A figure, or a result Dataset drawn with ``plot(obj, **plot_kwargs)``.
    path : str or path-like
    overwrite : bool, default False
        Replace an existing file; otherwise an existing ``path`` is an error.
    dpi : int, optional
        Resolution of the file; the figure's own by default.
    **plot_kwargs
        Passed to :func:`plot` when ``obj`` is a Dataset.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    OutputError
        ``path`` exists and ``overwrite`` is False, its directory is missing
        or read-only, or writing failed (nothing is left behind; an earlier
        file at ``path`` is kept).
    """
    from matplotlib.figure import Figure

    path = os.fspath(path)
    if os.path.lexists(path) and not overwrite:
        raise OutputError(
            f"{path} already exists; pass overwrite=True (--overwrite on the command line) to replace it."
        )
    if isinstance(obj, Figure):
        if plot_kwargs:
            raise ParameterError(f"plot options {sorted(plot_kwargs)} apply to a Dataset, not to a finished Figure.")
        fig = obj
    else:
        fig = plot(obj, **plot_kwargs)
    # the temporary name ends in .png, so no tool guesses another format from it
    write_atomically({path: functools.partial(_save_png, fig=fig, dpi=dpi)}, suffix=".part.png", overwrite=overwrite)
    return path
