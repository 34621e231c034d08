"""A self-contained HTML report of a result: ``xcoact/templates/report.html`` filled with the parameters,
provenance, counts, selected studies, the figure (an embedded PNG), the cluster table and a methods paragraph,
all from the result's ``attrs``.  Every text from the user or a file is HTML-escaped; the report holds no script.
"""

from __future__ import annotations

import base64
import datetime
import functools
import html
import numbers
import os
import string
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np
import pandas as pd
import xarray as xr

from . import validate
from ._version import __version__
from .errors import DatabaseError, DatabaseFileError, DatabaseFileNotFoundError, OutputError, ParameterError
from .plot import MAX_SEEDS, default_threshold, plot, png_bytes, seed_label, selection_text, threshold_text
from .stats.clusters import clusters as _clusters
from .stats.clusters import pick_map
from .writers import write_atomically

__all__ = [
    "report",
    "report_html",
    "read_metadata",
    "methods_text",
    "parcellation_methods_text",
    "is_parcellation",
    "REFERENCES",
]

#: The works the methods paragraph cites, by key, in citation order.
REFERENCES = {
    "neurosynth": (
        "Yarkoni T, Poldrack RA, Nichols TE, Van Essen DC, Wager TD (2011). Large-scale automated synthesis "
        "of human functional neuroimaging data. Nature Methods 8(8):665-670.",
        "10.1038/nmeth.1635",
    ),
    "nimare": (
        "Salo T, Yarkoni T, Nichols TE, Poline J-B, Bilgel M, Bottenhorn KL, et al. (2023). NiMARE: Neuroimaging "
        "Meta-Analysis Research Environment. Aperture Neuro 3.",
        "10.52294/001c.87681",
    ),
    "mkda": (
        "Wager TD, Lindquist M, Kaplan L (2007). Meta-analysis of functional neuroimaging data: current and "
        "future directions. Social Cognitive and Affective Neuroscience 2(2):150-158.",
        "10.1093/scan/nsm015",
    ),
    "talairach": (
        "Lancaster JL, Tordesillas-Gutierrez D, Martinez M, Salinas F, Evans A, Zilles K, Mazziotta JC, Fox PT "
        "(2007). Bias between MNI and Talairach coordinates analyzed using the ICBM-152 brain template. "
        "Human Brain Mapping 28(11):1194-1205.",
        "10.1002/hbm.20345",
    ),
    "fdr": (
        "Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate: a practical and powerful approach "
        "to multiple testing. Journal of the Royal Statistical Society, Series B 57(1):289-300.",
        "10.1111/j.2517-6161.1995.tb02031.x",
    ),
    "bzdok2013": (
        "Bzdok D, Laird AR, Zilles K, Fox PT, Eickhoff SB (2013). An investigation of the structural, connectional, "
        "and functional subspecialization in the human amygdala. Human Brain Mapping 34(12):3247-3266.",
        "10.1002/hbm.22138",
    ),
    "clos2013": (
        "Clos M, Amunts K, Laird AR, Fox PT, Eickhoff SB (2013). Tackling the multifunctional nature of Broca's "
        "region meta-analytically: co-activation-based parcellation of area 44. NeuroImage 83:174-188.",
        "10.1016/j.neuroimage.2013.06.041",
    ),
    "eickhoff2015": (
        "Eickhoff SB, Thirion B, Varoquaux G, Bzdok D (2015). Connectivity-based parcellation: critique and "
        "implications. Human Brain Mapping 36(12):4771-4792.",
        "10.1002/hbm.22933",
    ),
    "chase2020": (
        "Chase HW, Grace AA, Fox PT, Phillips ML, Eickhoff SB (2020). Functional differentiation in the human "
        "ventromedial frontal lobe: a data-driven parcellation. Human Brain Mapping 41(12):3266-3283.",
        "10.1002/hbm.25014",
    ),
    "meila2007": (
        "Meila M (2007). Comparing clusterings - an information based distance. Journal of Multivariate Analysis "
        "98(5):873-895.",
        "10.1016/j.jmva.2006.11.013",
    ),
    "xarray": (
        "Hoyer S, Hamman J (2017). xarray: N-D labeled arrays and datasets in Python. "
        "Journal of Open Research Software 5(1):10.",
        "10.5334/jors.148",
    ),
}


def _e(value) -> str:
    """HTML-escaped text of any value (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _num(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return _e(value)


def _plain(value) -> str:
    """A number as short text (6.0 -> "6"); anything else as is."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return f"{float(value):g}"
    return str(value)


def _id_key(value) -> str:
    """A study id as text, so ``9065511``, ``9065511.0`` and ``"9065511"`` match."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))  # type: ignore[call-overload]  # typeshed: Real.__trunc__ is not typed as int
    return str(value).strip()


def read_metadata(metadata) -> dict[str, str]:
    """Study titles by id, from a DataFrame or a Neurosynth v7 ``metadata.tsv[.gz]``.

    Parameters
    ----------
    metadata : pandas.DataFrame, str or path-like
        A table with the columns ``id`` and ``title`` (others are ignored),
        or the path of a tab-separated file with them (gzip read transparently),
        such as Neurosynth v7's ``data-neurosynth_version-7_metadata.tsv.gz``.

    Returns
    -------
    dict
        ``{id as text: title}``; ids match a result's study ids whether they
        are numbers or text.

    Raises
    ------
    DatabaseFileNotFoundError
        The file does not exist.
    DatabaseFileError
        The file cannot be read (a directory, no permission, corrupt gzip).
    DatabaseError
        The table lacks an ``id`` or ``title`` column, or cannot be parsed.
    ParameterError
        ``metadata`` is neither a DataFrame nor a path.
    """
    source = "the metadata DataFrame"
    if isinstance(metadata, pd.DataFrame):
        table = metadata
    elif isinstance(metadata, (str, os.PathLike)):
        path = os.fspath(metadata)
        source = path
        if not os.path.exists(path):
            raise DatabaseFileNotFoundError(
                f"{path}: metadata file not found; expected a tab-separated file with 'id' and 'title' columns "
                "(e.g. Neurosynth v7's data-neurosynth_version-7_metadata.tsv.gz)."
            )
        try:
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, compression="infer")
        except (OSError, EOFError) as err:
            raise DatabaseFileError(f"{path}: the metadata file cannot be read ({type(err).__name__}: {err}).") from err
        except (ValueError, pd.errors.ParserError) as err:
            raise DatabaseError(f"{path}: the metadata file is not a readable tab-separated table ({err}).") from err
    else:
        raise ParameterError(
            f"metadata must be a pandas DataFrame or the path of a metadata.tsv(.gz) file with 'id' and 'title' "
            f"columns; got {type(metadata).__name__}."
        )
    missing = [c for c in ("id", "title") if c not in table.columns]
    if missing:
        raise DatabaseError(
            f"{source}: no column(s) {missing}; found columns {[str(c) for c in table.columns][:20]}; "
            "expected 'id' and 'title' (as in Neurosynth v7's metadata.tsv.gz)."
        )
    titles: dict = {}
    for sid, title in zip(table["id"].tolist(), table["title"].tolist()):
        if title is None or (isinstance(title, float) and np.isnan(title)):
            continue
        titles.setdefault(_id_key(sid), str(title))
    return titles


def _selection_sentence(attrs: Mapping) -> str:
    """How studies were selected, as the end of a sentence "A study was selected when ..."."""
    rule = attrs.get("select", "overlap")
    if rule == "overlap":
        return f"its activation covered {_threshold_rule(attrs)}"
    sentence = str(attrs.get("selection", rule))
    # the recorded sentence reads "rule: what it does (source)"
    return f"it met the {rule!r} rule ({sentence.split(': ', 1)[-1]})"


def _threshold_rule(attrs: Mapping) -> str:
    threshold = attrs.get("threshold", "?")
    if attrs.get("threshold_kind") == "count":
        return f"more than {threshold} of the seed's voxels"
    try:
        return f"more than a proportion {float(threshold):g} ({100 * float(threshold):g} %) of the seed's voxels"
    except (TypeError, ValueError):
        return f"more than {threshold} of the seed's voxels"


class _Citations:
    """Numbered citations ``[1]``, ``[2]``, ... in the order of first use; ``keys`` lists the cited references."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, key: str) -> str:
        if key not in self.keys:
            self.keys.append(key)
        return f"[{self.keys.index(key) + 1}]"


def methods_text(
    ds: xr.Dataset, name: str | None = None, threshold: float = 0.0, connectivity: int = 26
) -> tuple[str, list[str]]:
    """A methods paragraph for a result, generated from its ``attrs``, and the references it cites.

    Returns
    -------
    text : str
        Plain text (not escaped); citations appear as ``[1]``, ``[2]``, ...
    keys : list of str
        Keys of :data:`REFERENCES`, in citation order.
    """
    a = ds.attrs
    cite = _Citations()
    keys = cite.keys

    name = pick_map(ds, name) if name is None else name
    batch = "seed" in ds.dims
    version = a.get("xcoact_version", __version__)
    nimare = a.get("preset") == "nimare"
    if nimare:
        origin = (
            f"which reproduces the MKDA chi-square coactivation analysis of NiMARE 0.22.1 (Salo et al., 2023) "
            f"{cite('nimare')}, an implementation of the method of Neurosynth (Yarkoni et al., 2011) "
            f"{cite('neurosynth')}"
        )
    else:
        origin = (
            f"which reproduces the coactivation analysis of Neurosynth 0.3.8 (Yarkoni et al., 2011) "
            f"{cite('neurosynth')}"
        )
    parts = [
        f"Coactivation maps were computed with xcoact {version}, {origin}, with xarray {cite('xarray')} and Dask.",
        f"The coordinate database ({a.get('database', 'not recorded')}) held {a.get('n_studies', '?')} studies; "
        f"coordinates reported in Talairach space were moved to MNI space with the transform of Lancaster et al. "
        f"(2007) {cite('talairach')}.",
        f"Each study's peaks were replaced by binary spheres of radius {_plain(a.get('r', '?'))} mm on the MNI152 "
        f"2 mm grid (a binary kernel as in multilevel kernel density analysis {cite('mkda')}), and a study counted "
        "as active "
        "at a voxel of the brain mask when any of its spheres covered it.",
    ]
    rule = _selection_sentence(a)
    if batch:
        n_seeds, n_valid = a.get("n_seeds", ds.sizes["seed"]), a.get("n_valid_seeds", "?")
        parts.append(
            f"Each of {n_seeds} seed regions ({n_valid} with maps) was analysed separately: a study was selected "
            f"for a seed when {rule}, and the selected studies were compared, voxel by "
            "voxel, with all other studies."
        )
    else:
        parts.append(
            f"The seed region ({seed_label(a.get('seed', '?'))}) held {a.get('n_roi', '?')} voxels of the "
            f"brain mask. A study was selected when {rule}; "
            f"{a.get('n_selected', '?')} of {a.get('n_studies', '?')} studies were selected and compared, voxel by "
            f"voxel, with the other {a.get('n_unselected', '?')}."
        )
    if nimare:
        parts.append(
            "At every voxel two chi-square tests were computed, of uniformity (activation among the selected "
            "studies) and of association (selection by activation). Their p values were adjusted for the false "
            f"discovery rate over all voxels of the mask (Benjamini-Hochberg {cite('fdr')}) and converted to signed "
            f"z scores; voxels pass at an adjusted p < q = {a.get('q', '?')}."
        )
    else:
        parts.append(
            "At every voxel two chi-square tests were computed: a test of uniformity (one-way: is the voxel active "
            "in more selected studies than the average voxel?) and a test of association (Pearson's chi-square on "
            "the 2 x 2 table of selection by activation, without continuity correction). Their p values were "
            f"converted to signed z scores, and each z map was thresholded at a false discovery rate of "
            f"q = {a.get('q', '?')} over all voxels of the brain mask (Benjamini-Hochberg {cite('fdr')})."
        )
    parts.append(f"The posterior probability maps assume a uniform prior P(selected) = {a.get('prior', '?')}.")
    shown = f"|value| > {threshold:.4g}" if threshold > 0 else "non-zero values"
    parts.append(
        f"The figure and the cluster table show the map {name}; clusters are connected components "
        f"({connectivity}-connectivity) of the voxels with {shown}, positive and negative separately."
    )
    return " ".join(parts), keys


def _kv_table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_num(v) if not isinstance(v, str) else _e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _frame_table(frame: pd.DataFrame, headers: dict[str, str] | None = None) -> str:
    headers = headers or {}
    head = "".join(f"<th>{_e(headers.get(c, c))}</th>" for c in frame.columns)
    rows = []
    for rec in frame.itertuples(index=False):
        cells = []
        for value in rec:
            numeric = isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))
            cells.append(f'<td class="num">{_num(value)}</td>' if numeric else f"<td>{_e(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _studies_table(ids, titles: dict[str, str] | None, max_studies: int | None) -> str:
    ids = list(ids)
    shown = ids if max_studies is None else ids[:max_studies]
    frame = pd.DataFrame({"id": [_id_key(i) for i in shown]})
    if titles is not None:
        frame["title"] = [titles.get(key, "(not in the metadata)") for key in frame["id"]]
    note = ""
    if len(shown) < len(ids):
        note = f'<p class="note">The first {len(shown):,} of {len(ids):,} studies (max_studies={max_studies}).</p>'
    if titles is not None:
        found = sum(_id_key(i) in titles for i in ids)
        note += f'<p class="note">Titles from the metadata for {found:,} of {len(ids):,} studies.</p>'
    return _frame_table(frame) + note


#: the cluster table's column headers, where they are not the column's name
_CLUSTER_HEADERS = {
    "size_voxels": "size (voxels)",
    "size_mm3": "size (mm³)",
    "peak_x": "peak x (mm)",
    "peak_y": "peak y (mm)",
    "peak_z": "peak z (mm)",
    "peak_value": "peak value",
    "atlas_label": "atlas label",
}


def _clusters_section(table: pd.DataFrame, name: str, max_clusters: int) -> str:
    if table.empty:
        return f'<p class="note">No voxel of {_e(name)} passes the threshold: no cluster.</p>'
    headers = dict(_CLUSTER_HEADERS)
    if "_z" in name:
        headers["peak_value"] = "peak z"
    shown = table.head(max_clusters).copy()
    shown["sign"] = np.where(shown["sign"] > 0, "+", "-")
    note = ""
    if len(shown) < len(table):
        note = (
            f'<p class="note">The {len(shown):,} largest of {len(table):,} clusters (max_clusters={max_clusters}).</p>'
        )
    return _frame_table(shown, headers) + note


#: How a cluster threshold is used (the end of the message for a bad one, as
#: :func:`xcoact.stats.clusters.clusters` words it).
_CLUSTER_THRESHOLD = " (clusters are the voxels with value > threshold, and separately those with value < -threshold)"


def report_html(
    ds: xr.Dataset,
    *,
    name: str | None = None,
    metadata=None,
    seed: str | None = None,
    threshold: float | None = None,
    title: str | None = None,
    max_studies: int | None = None,
    max_clusters: int = 100,
    connectivity: int = 26,
    min_size: int = 1,
    dpi: int = 100,
    plot_kwargs: dict | None = None,
    cluster_options: dict | None = None,
) -> str:
    """The report of :func:`report` as an HTML string (nothing is written).

    Parameters as in :func:`report`.
    """
    max_clusters = validate.integer(max_clusters, "max_clusters", 1)
    max_studies = validate.integer(max_studies, "max_studies", 1, allow_none=True)
    if isinstance(ds, xr.DataArray) or not isinstance(ds, xr.Dataset):
        raise ParameterError(f"report needs a result Dataset of xcoact.seed (with its attrs); got {type(ds).__name__}.")
    if is_parcellation(ds):
        return _parcellation_html(
            ds,
            title=title,
            dpi=dpi,
            plot_kwargs=plot_kwargs,
            given={
                "name": name,
                "metadata": metadata,
                "seed": seed,
                "threshold": threshold,
                "max_studies": max_studies,
                "max_clusters": max_clusters,
                "connectivity": connectivity,
                "min_size": min_size,
                "cluster_options": cluster_options,
            },
        )
    name = pick_map(ds, name)
    auto = threshold is None
    threshold = (
        default_threshold(ds, name)
        if threshold is None
        else validate.finite(threshold, "threshold", _CLUSTER_THRESHOLD, minimum=0)
    )
    titles = read_metadata(metadata) if metadata is not None else None
    a = ds.attrs
    batch = "seed" in ds.dims
    labels = [str(s) for s in ds["seed"].values] if batch else []
    if seed is not None and not batch:
        raise ParameterError(f"seed={seed!r} was given, but the result has no seed dimension (it is one seed).")
    if seed is not None and str(seed) not in labels:
        raise ParameterError(f"seed={seed!r} is not a seed of the batch; its seeds are {labels[:20]}.")
    shown_seeds = [str(seed)] if seed is not None else labels[:MAX_SEEDS]
    one = not batch or seed is not None
    raised = ""
    if auto and one:
        threshold, raised = _chosen_threshold(ds, name, seed)

    fig = plot(ds, name, seed=seed, threshold=threshold, dpi=dpi, **(plot_kwargs or {}))
    options = {"threshold": threshold, "connectivity": connectivity, "min_size": min_size, **(cluster_options or {})}
    if one:
        table = _clusters(ds, name, seed=seed, **options)
    else:
        table = pd.concat(
            [_clusters(ds, name, seed=s, **options).assign(seed=s) for s in shown_seeds], ignore_index=True
        )
        table = table[["seed", *[c for c in table.columns if c != "seed"]]]

    label = (seed if seed is not None else f"{len(labels)} seeds") if batch else seed_label(a.get("seed", "?"))
    heading = title if title is not None else f"Coactivation report: {label}"
    text, keys = methods_text(ds, name, threshold, connectivity)
    clusters_html = _clusters_section(table, name, max_clusters)
    if batch and seed is None and len(shown_seeds) < len(labels):
        clusters_html = (
            f'<p class="note">The first {len(shown_seeds)} of {len(labels)} seeds; pass seed=... for '
            f"another.</p>\n{clusters_html}"
        )
    fields = {
        "heading": heading,
        "version": __version__,
        "made": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "map_name": name,
        "threshold_text": threshold_text(ds, name, threshold),
        "notes": _readable_notes(ds, name, threshold, raised),
        "figure_alt": f"{name}, seed {label}" if one else f"{name}, {label}",
        "connectivity": connectivity,
        "shown": f"|value| > {threshold:.4g}" if threshold > 0 else "non-zero values",
        "min_size": "" if min_size == 1 else f"; at least {min_size} voxels",
        "methods": text,
    }
    # every text field is escaped here; the fragments below are HTML built from escaped parts
    page = {k: _e(v) for k, v in fields.items()}
    page.update(
        image=base64.b64encode(png_bytes(fig)).decode("ascii"),
        counts=_counts_section(ds, table, name, labels),
        clusters=clusters_html,
        studies=_selected_section(ds, titles, max_studies, labels, shown_seeds, seed, one),
        references=_references_html(keys),
        provenance=_provenance_html(a),
        versions=_versions_table(),
    )
    return _template().substitute(page)


@functools.lru_cache(maxsize=2)
def _template(page: str = "report.html") -> string.Template:
    """A page of ``xcoact/templates/`` (the CSS and the sections, with ``$`` fields)."""
    return string.Template((resources.files("xcoact") / "templates" / page).read_text(encoding="utf-8"))


# --- the report of a coactivation-based parcellation ---------------------------------------------------

#: What a parcellation report cannot show: the options of the coactivation report and their defaults.
_NOT_FOR_PARCELLATION = {
    "name": None,
    "metadata": None,
    "seed": None,
    "threshold": None,
    "max_studies": None,
    "max_clusters": 100,
    "connectivity": 26,
    "min_size": 1,
    "cluster_options": None,
}


def is_parcellation(ds) -> bool:
    """Whether ``ds`` is a result of :func:`xcoact.analyses.parcellate.parcellate` (labels per K and the criteria)."""
    return (
        isinstance(ds, xr.Dataset)
        and "k" in ds.dims
        and "labels" in ds
        and "criteria" in ds
        and "k_suggested" in ds
        and set(ds["labels"].dims) == {"k", "x", "y", "z"}
    )


def parcellation_methods_text(ds: xr.Dataset) -> tuple[str, list[str]]:
    """A methods paragraph for a parcellation, generated from its ``attrs``, and the references it cites.

    Returns
    -------
    text : str
        Plain text (not escaped); citations appear as ``[1]``, ``[2]``, ...
    keys : list of str
        Keys of :data:`REFERENCES`, in citation order.
    """
    a = ds.attrs
    cite = _Citations()
    keys = cite.keys

    filters = ", ".join(_plain(f) for f in np.atleast_1d(ds["filter"].values)) if "filter" in ds.coords else "?"
    unit = "studies" if a.get("select", "nearest") == "nearest" else "mm"
    ks = ", ".join(str(int(k)) for k in ds["k"].values)
    text = " ".join(
        [
            f"The region ({seed_label(a.get('roi', '?'))}, {a.get('n_roi', '?')} voxels) was parcellated by "
            f"meta-analytic coactivation-based parcellation (Bzdok et al., 2013 {cite('bzdok2013')}; Clos et al., 2013 "
            f"{cite('clos2013')}) with xcoact {a.get('xcoact_version', __version__)}, with xarray {cite('xarray')} and "
            f"Dask, on the coordinate database {a.get('database', 'not recorded')} ({a.get('n_studies', '?')} studies; "
            + (
                f"peaks as spheres of radius {_plain(a.get('r', '?'))} mm, the MKDA kernel {cite('mkda')})."
                if np.isfinite(a.get("r", 0.0))
                else f"peaks modelled by the {a.get('profile_kernel', 'ALE kernel')})."  # an ALE cube has no radius
            ),
            f"For each voxel of the region, a pool of studies was formed: {a.get('pooling', '?')}, for the filter "
            f"sizes {filters} ({unit}); {a.get('n_pooled_studies', '?')} studies entered at least one pool.",
            f"Each pool's coactivation profile over the brain (profile {a.get('profile', '?')!s}"
            f"{', ' + str(a['profile_kernel']) if 'profile_kernel' in a else ''}) was compared between "
            f"voxels by {a.get('similarity', '?')}.",
            f"The voxels were clustered by {a.get('clustering', '?')}, with {a.get('n_init', '?')} restarts "
            f"(random seed {a.get('seed', '?')}), for K = {ks}.",
            f"Solutions were combined across filter sizes by {a.get('matching', '?')}, over the contiguous range of "
            f"filter sizes with the fewest deviants (filter_range={a.get('filter_range', '?')!s}).",
            f"The number of clusters was chosen from the criteria of the CBP literature (Eickhoff et al., 2015 "
            f"{cite('eickhoff2015')}; Chase et al., 2020 {cite('chase2020')}): the percentage of deviant voxels, the "
            f"variation of information between neighbouring K (log base {a.get('vi_log_base', 2)}, Meila 2007 "
            f"{cite('meila2007')}), the mean silhouette, the hierarchy index and the change of the inter/intra-cluster "
            f"distance ratio; {a.get('k_rule', '?')}.",
        ]
    )
    return text, keys


def _parcellation_html(ds: xr.Dataset, *, title, dpi, plot_kwargs, given: dict) -> str:
    """The report of a parcellation result (see :func:`report`)."""
    from .analyses.parcellate import criteria_table, figure

    refused = [k for k, v in given.items() if v is not None and v != _NOT_FOR_PARCELLATION[k]]
    extra = sorted(set(plot_kwargs or {}) - {"cut"})
    if refused or extra:
        raise ParameterError(
            f"{', '.join(refused + [f'plot_kwargs[{k!r}]' for k in extra])}: not options of a parcellation report "
            "(it shows the label maps per K, the criteria table and the methods; it has no map, threshold, cluster "
            "table or selected studies). Leave them out; plot_kwargs may hold 'cut' (the coronal slice, mm)."
        )
    dpi = validate.integer(dpi, "dpi", 1)
    ds = ds.compute()
    ks = [int(k) for k in ds["k"].values]
    missing = [n for n in ("voxel_x", "voxel_y", "voxel_z") if n not in ds.coords]
    if missing or not ks:
        raise ParameterError(
            f"the parcellation result lacks {missing or ['any K']}; report the Dataset that "
            "xcoact.analyses.parcellate.parcellate returns (or its netCDF file), not a selection of it."
        )
    a = ds.attrs
    suggested = int(ds["k_suggested"].values)
    table = criteria_table(ds)
    table.insert(0, "K", [f"{k} (suggested)" if k == suggested else str(k) for k in table.index])
    # a criterion that needs K-1 or K+1 has no value at the ends of the K range, the hierarchy index none at K = 2
    table = table.drop(columns="suggested")
    table = table.astype(object).where(table.notna(), "n/a (not defined at this K)")
    voted = (
        ds["filter"].values[np.asarray(ds["in_range"].values, dtype=bool)]
        if "in_range" in ds and "filter" in ds.coords
        else a.get("filters_voted", [])
    )
    text, keys = parcellation_methods_text(ds)
    roi = seed_label(a.get("roi", "?"))
    fields = {
        "heading": title if title is not None else f"Parcellation report: {roi}",
        "version": __version__,
        "made": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "k_suggested": suggested,
        "k_rule": a.get("k_rule", "not recorded"),
        "figure_alt": f"labels per K and criteria against K, {roi}",
        "methods": text,
    }
    page = {k: _e(v) for k, v in fields.items()}
    page.update(
        style=_style(),
        image=base64.b64encode(png_bytes(figure(ds, **(plot_kwargs or {})), dpi=dpi)).decode("ascii"),
        summary=_kv_table(
            [
                ("database", str(a.get("database", "not recorded"))),
                ("studies in the database", a.get("n_studies", "?")),
                ("region", str(a.get("roi", "?"))),
                ("region voxels", a.get("n_roi", "?")),
                ("studies in any pool", a.get("n_pooled_studies", "?")),
                ("K computed", ", ".join(map(str, ks))),
                ("suggested K", suggested),
                ("filter sizes voted", ", ".join(_plain(v) for v in np.atleast_1d(voted)) or "not recorded"),
            ]
        ),
        criteria=_frame_table(table),
        references=_references_html(keys),
        provenance=_provenance_html(a),
        versions=_versions_table(),
    )
    return _template("parcellation.html").substitute(page)


def _references_html(keys: list[str]) -> str:
    return "\n".join(
        f'<li>{_e(REFERENCES[k][0])} doi:<a href="https://doi.org/{_e(REFERENCES[k][1])}">'
        f"{_e(REFERENCES[k][1])}</a></li>"
        for k in keys
    )


def _provenance_html(a: Mapping) -> str:
    return _kv_table(
        [(str(k), v if isinstance(v, (numbers.Number, str)) else str(v)) for k, v in a.items()]
        + [("report made with xcoact", __version__)]
    )


def _style() -> str:
    """The ``<style>`` element of the coactivation report's page, so both reports look alike."""
    text = _template().template
    return text[text.index("<style>") : text.index("</style>") + len("</style>")]


def _counts_section(ds: xr.Dataset, table: pd.DataFrame, name: str, labels: list[str]) -> str:
    a = ds.attrs
    if "seed" not in ds.dims:
        n_vox = int(((table["size_voxels"]).sum()) if not table.empty else 0)
        return _kv_table(
            [
                ("database", str(a.get("database", "not recorded"))),
                ("studies in the database", a.get("n_studies", "?")),
                ("seed", str(a.get("seed", "?"))),
                ("seed voxels in the brain mask", a.get("n_roi", "?")),
                ("studies selected", a.get("n_selected", "?")),
                ("studies not selected", a.get("n_unselected", "?")),
                ("study selection", str(a.get("selection", selection_text(a)))),
                *([("largest overlap with the seed (voxels)", a["max_overlap"])] if "max_overlap" in a else []),
                (f"voxels shown in {name}", n_vox),
                (
                    "clusters (positive / negative)",
                    f"{len(table)} ({int((table['sign'] > 0).sum())} / {int((table['sign'] < 0).sum())})",
                ),
            ]
        )
    summary = _kv_table(
        [
            ("database", str(a.get("database", "not recorded"))),
            ("studies in the database", a.get("n_studies", "?")),
            ("seeds", a.get("n_seeds", len(labels))),
            ("seeds with maps", a.get("n_valid_seeds", "?")),
            ("study selection", str(a.get("selection", selection_text(a)))),
        ]
    )
    per_seed = pd.DataFrame(
        {
            "seed": labels,
            "description": [str(d) for d in ds["description"].values] if "description" in ds else [""] * len(labels),
            "seed voxels": [int(v) for v in ds["n_roi"].values] if "n_roi" in ds else [0] * len(labels),
            "studies selected": [int(v) for v in ds["n_selected"].values] if "n_selected" in ds else [0] * len(labels),
            "maps": ["yes" if v else "no (degenerate)" for v in ds["valid"].values]
            if "valid" in ds
            else [""] * len(labels),
        }
    )
    return summary + "\n" + _frame_table(per_seed)


def _selected_section(
    ds: xr.Dataset, titles, max_studies, labels: list[str], shown_seeds: list[str], seed, one: bool
) -> str:
    if one:
        if "seed" not in ds.dims:
            ids: np.ndarray | list = ds["selected_id"].values if "selected_id" in ds else []
        else:
            ids = ds["study"].values[np.asarray(ds["selected"].sel(seed=ds["seed"].values[labels.index(str(seed))]))]
        return f"<p>{len(ids):,} studies selected.</p>\n{_studies_table(ids, titles, max_studies)}"
    parts = []
    for s in shown_seeds:
        ids = ds["study"].values[np.asarray(ds["selected"].values[labels.index(s)])]
        parts.append(
            f"<details><summary>{_e(s)}: {len(ids):,} studies</summary>"
            f"{_studies_table(ids, titles, max_studies)}</details>"
        )
    if len(shown_seeds) < len(labels):
        parts.append(f'<p class="note">The first {len(shown_seeds)} of {len(labels)} seeds.</p>')
    return "\n".join(parts)


def _chosen_threshold(ds: xr.Dataset, name: str, seed) -> tuple[float, str]:
    """The display and cluster-forming threshold of one seed's map (see :func:`xcoact.plot.display_threshold`)."""
    from .plot import _mask_on, display_threshold
    from .stats.clusters import map_volume

    vol = map_volume(ds, name, seed).compute()
    return display_threshold(ds, name, vol.values, _mask_on(ds, vol))


def _readable_notes(ds: xr.Dataset, name: str, threshold: float, raised: str) -> str:
    """The thresholds chosen, in words, and whether the map is FWE-corrected (or how to make it so)."""
    shown = f"|value| > {threshold:.4g}" if threshold > 0 else "every non-zero voxel"
    lines = [f"Display and cluster-forming threshold: {shown}" + (f" ({raised})" if raised else "") + "."]
    has_fwe = any("FWE" in str(n) for n in ds.data_vars)
    if "FWE" in name:
        lines.append("The map shown is family-wise error corrected.")
    elif has_fwe:
        lines.append("Family-wise error corrected maps are in the result; pass name=... to show one.")
    else:
        lines.append(
            "No family-wise error correction was run: the map is FDR-corrected voxel by voxel. For a "
            "publication, add FWE-corrected maps with maps.coact.fwe(act, n_iter=10000, seed=0) "
            "(or --fwe 10000 on the command line); the report then shows them."
        )
    return " ".join(lines)


def _versions_table() -> str:
    from .versions import versions

    return _kv_table([(k, v if v is not None else "not installed") for k, v in versions().items()])


def _write_html(tmp: str, text: str) -> None:
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def report(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    metadata=None,
    seed: str | None = None,
    threshold: float | None = None,
    overwrite: bool = False,
    title: str | None = None,
    max_studies: int | None = None,
    max_clusters: int = 100,
    connectivity: int = 26,
    min_size: int = 1,
    dpi: int = 100,
    plot_kwargs: dict | None = None,
    cluster_options: dict | None = None,
) -> str:
    """Write a self-contained HTML report of a result, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`xcoact.seed` (one seed or a batch).
    path : str or path-like
        The HTML file to write.
    name : str, optional
        The map of the figure and the cluster table; by default the
        FDR-thresholded association z map (:func:`xcoact.stats.clusters.pick_map`).
    metadata : pandas.DataFrame or path, optional
        Study titles: a table with ``id`` and ``title`` columns, or a Neurosynth
        v7 ``metadata.tsv[.gz]`` (see :func:`read_metadata`).
    seed : str, optional
        For a batch: report on this seed alone.  Otherwise a batch report
        covers its first 48 seeds (figure, clusters, selected studies) and
        lists every seed's counts.
    threshold : float, optional
        Figure and clusters use the voxels with ``|value| > threshold``; by
        default, for one seed, :func:`xcoact.plot.display_threshold` (raised
        when more than 10 % of the brain would be shown, and stated), else
        :func:`xcoact.plot.default_threshold` (every non-zero voxel
        of Neurosynth's FDR maps).
    overwrite : bool, default False
        Replace an existing file.
    title : str, optional
        The report's heading.
    max_studies : int, optional
        List at most this many selected studies (per seed); all by default.
    max_clusters : int, default 100
        Rows of the cluster table (per report), largest clusters first.
    connectivity : {26, 18, 6}, default 26
        Cluster connectivity (see :mod:`xcoact.stats.clusters`).
    min_size : int, default 1
        Leave out clusters of fewer voxels.
    dpi : int, default 100
        Resolution of the embedded figure.
    plot_kwargs : dict, optional
        More options for :func:`xcoact.plot.plot` (``cut``, ``vmax``,
        ``cmap``, ``kind``, ``view``).
    cluster_options : dict, optional
        More options for the cluster table (:func:`xcoact.stats.clusters.clusters`):
        ``subpeaks``, ``min_distance``, ``atlas``, ``atlas_labels``.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    OutputError
        ``path`` exists and ``overwrite`` is False, its directory is missing or
        read-only, or writing failed (nothing is left behind; an earlier file
        at ``path`` is kept).
    ParameterError, DatabaseError, DatabaseFileNotFoundError
        A bad argument or metadata file.

    Notes
    -----
    Cost: computes the map shown (one volume; for a batch, each reported
    seed's) and renders the figure; the HTML is a few hundred kB.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{folder}: output directory does not exist; create it first (e.g. os.makedirs({folder!r})).")
    if os.path.lexists(path) and not overwrite:
        raise OutputError(f"{path} already exists; pass overwrite=True to replace it, or choose another path.")
    text = report_html(
        ds,
        name=name,
        metadata=metadata,
        seed=seed,
        threshold=threshold,
        title=title,
        max_studies=max_studies,
        max_clusters=max_clusters,
        connectivity=connectivity,
        min_size=min_size,
        dpi=dpi,
        plot_kwargs=plot_kwargs,
        cluster_options=cluster_options,
    )
    write_atomically({path: functools.partial(_write_html, text=text)}, suffix=".part.html", overwrite=overwrite)
    return path
