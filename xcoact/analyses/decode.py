"""Term meta-analysis (:func:`term`), decoding (:func:`decode`) and functional profiles (:func:`profile`).

Neurosynth 0.3.8's ``meta.analyze_features`` and ``decode.Decoder``; a study carries a term when its summed
weight is >= the threshold (:ref:`semantics-terms`).
"""

from __future__ import annotations

import difflib
import functools
import glob
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import dask
import dask.array
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize

from .. import validate
from ..errors import DegenerateSeedWarning, ParameterError, SelectionError
from ..options import get_options
from ..stats.neurosynth import map_names
from . import meta as _meta
from . import pipeline as _pipeline

__all__ = [
    "DEFAULT_THRESHOLD",
    "TOPIC_THRESHOLD",
    "feature_threshold",
    "DEFAULT_MAP",
    "TermMapCache",
    "term_map_cache",
    "expand_terms",
    "term_ids",
    "term",
    "decode",
    "profile",
]

#: Neurosynth 0.3.8's default feature (frequency) threshold.
DEFAULT_THRESHOLD = 0.001
#: :func:`decode`'s default cut-off for topic loadings (LDA): they sum to 1 per study, so nearly all exceed 0.001.
TOPIC_THRESHOLD = 0.05


def feature_threshold(features) -> float:
    """The default cut-off for a feature type: 0.05 for topic loadings (LDA), else 0.001 (tf-idf, counts).

    Parameters
    ----------
    features : xarray.DataArray
        Topics are told by the file name (``vocab-LDA<n>``, ``type-weight``) or ``attrs["feature_type"]``.

    Returns
    -------
    float

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([[0.5]], dims=("study", "term"))
    >>> feature_threshold(
    ...     f.assign_attrs(features="data-neurosynth_version-7_vocab-LDA50_source-abstract_type-weight_features.npz"))
    0.05
    >>> feature_threshold(
    ...     f.assign_attrs(features="data-neurosynth_version-7_vocab-terms_source-abstract_type-tfidf_features.npz"))
    0.001
    """
    attrs = getattr(features, "attrs", {}) or {}
    name = os.path.basename(str(attrs.get("features", "")))
    topic = attrs.get("feature_type") == "topic" or re.search(r"(^|_)vocab-LDA\d*(_|$)|(^|_)type-weight(_|$)", name)
    return TOPIC_THRESHOLD if topic else DEFAULT_THRESHOLD


#: The map Neurosynth's Decoder correlates by default (``image_type``).
DEFAULT_MAP = "association-test_z"

_NEUROSYNTH_SELECTION = "term weight >= threshold (Neurosynth 0.3.8 get_studies(features=..., frequency_threshold=...))"


class TermMapCache:
    """A thread-safe LRU store of term maps (float64 in-mask vectors, 1.8 MB on the 2 mm grid), bounded in bytes.

    Parameters
    ----------
    max_bytes : int, optional
        The budget; by default the ``term_map_cache_bytes`` setting (:func:`xcoact.set_options`); 0 keeps nothing.
    owner : str
        The token of the cube the maps were computed from.
    """

    def __init__(self, max_bytes: int | None = None, *, owner: str = ""):
        self._max_bytes = None if max_bytes is None else int(max_bytes)
        self.owner = owner
        self._maps: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def max_bytes(self) -> int:
        """The budget in bytes."""
        return get_options()["term_map_cache_bytes"] if self._max_bytes is None else self._max_bytes

    def get(self, key):
        """The kept map for ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._maps.get(key)
            if value is None:
                self.misses += 1
                return None
            self._maps.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value: np.ndarray) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used maps beyond the budget."""
        value = np.asarray(value)
        value.setflags(write=False)  # shared between callers: nobody may edit it in place
        budget = self.max_bytes
        with self._lock:
            if key in self._maps:
                self._bytes -= self._maps.pop(key).nbytes
            if value.nbytes > budget:
                return
            self._maps[key] = value
            self._bytes += value.nbytes
            while self._bytes > budget:
                _, old = self._maps.popitem(last=False)
                self._bytes -= old.nbytes

    def clear(self) -> None:
        """Drop every map and reset the hit and miss counters."""
        with self._lock:
            self._maps.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def info(self) -> dict:
        """``{"maps", "bytes", "max_bytes", "hits", "misses"}``."""
        with self._lock:
            return dict(
                maps=len(self._maps), bytes=self._bytes, max_bytes=self.max_bytes, hits=self.hits, misses=self.misses
            )

    def __len__(self) -> int:
        return len(self._maps)

    # a copied or pickled cube (``act.copy(deep=True)``, sent to another process) starts with no maps
    def __getstate__(self) -> dict:
        return {"max_bytes": self._max_bytes, "owner": self.owner}

    def __setstate__(self, state: dict) -> None:
        TermMapCache.__init__(self, state["max_bytes"], owner=state["owner"])

    def __deepcopy__(self, memo) -> TermMapCache:
        return TermMapCache(self._max_bytes, owner=self.owner)


#: Where a cube keeps its term maps: its ``encoding`` (in memory only; never written to a file).
_TERM_MAPS = "xcoact_term_maps"


def term_map_cache(act: xr.DataArray) -> TermMapCache:
    """The term maps ``act`` keeps for :func:`decode` (made empty on first use; a derived cube keeps its own).

    Parameters
    ----------
    act : xarray.DataArray

    Returns
    -------
    TermMapCache

    Examples
    --------
    >>> import warnings, xcoact
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)
    >>> term_map_cache(act).info()["maps"]
    0
    """
    owner = _identity(act)
    store = act.encoding.get(_TERM_MAPS)
    # a derived cube holds a copy of its parent's encoding, hence its store: it starts its own
    if not isinstance(store, TermMapCache) or store.owner != owner:
        store = TermMapCache(owner=owner)
        act.encoding[_TERM_MAPS] = store
    return store


def _check_features(features) -> xr.DataArray:
    if not isinstance(features, xr.DataArray) or set(features.dims) != {"study", "term"}:
        what = (
            f"a DataArray with dims {features.dims}" if isinstance(features, xr.DataArray) else type(features).__name__
        )
        raise ParameterError(
            f"features must be the (study, term) DataArray from xcoact.features.read_features, got {what}."
        )
    if features.dtype.kind not in "fiu":
        raise ParameterError(f"features has dtype {features.dtype}; expected numeric term weights.")
    return features.transpose("study", "term")


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime: float) -> xr.DataArray:
    from ..features import read_features

    return read_features(path)


def _features_beside(database: str) -> str | None:
    """A term-features file that belongs with a database file, by the releases' naming."""
    from .. import datasets

    if not database:
        return None
    path = os.path.abspath(database)
    if path == os.path.abspath(datasets.sample_database_path()):
        return datasets.data_path("neurosynth_sample_features.txt")
    folder, name = os.path.split(path)
    m = re.match(r"(data-\w+_version-\d+)_coordinates", name)
    patterns = [f"{m.group(1)}_vocab-terms_*features.npz", f"{m.group(1)}_vocab-*_features.npz"] if m else []
    for pattern in [*patterns, "features.txt"]:
        found = sorted(glob.glob(os.path.join(folder, pattern)))
        if found:
            return found[0]
    return None


def features_for(act: xr.DataArray) -> xr.DataArray:
    """The term features of a cube's database, when xcoact can find them.

    The cube's ``attrs["features"]``; the bundled sample's; beside the database file, the release's
    ``*_vocab-terms_*features.npz`` (else another vocabulary) or a ``features.txt``.  Read once per file.

    Parameters
    ----------
    act : xarray.DataArray

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    ParameterError
        None found: pass ``features=xcoact.read_features(path)``.
    """
    path = act.attrs.get("features") or _features_beside(str(act.attrs.get("database", "")))
    if not path or not os.path.exists(path):
        raise ParameterError(
            f"no term features are known for this cube's database ({act.attrs.get('database', '?')}): none in its "
            "attrs and none beside the file; pass features=xcoact.read_features('features.txt' or the release's "
            "*_features.npz)."
        )
    return _read_cached(os.path.abspath(path), os.path.getmtime(path))


def _check_threshold(threshold) -> float:
    return validate.finite(
        threshold,
        "threshold",
        f": a study carries a term when its weight is >= threshold (Neurosynth's default is {DEFAULT_THRESHOLD})",
    )


def expand_terms(features: xr.DataArray, term: str | Sequence[str]) -> list[str]:
    """The feature names a term query names, with ``*`` as a wildcard (Neurosynth's rule).

    Parameters
    ----------
    features : xarray.DataArray
        The ``(study, term)`` features.
    term : str or sequence of str
        Names; ``*`` matches any run of characters (``"emo*"``), and a name
        must match whole, case-sensitively.

    Returns
    -------
    list of str
        The matching names in the features' order, each once.

    Raises
    ------
    ParameterError
        A name (or pattern) matches no term; the message suggests close ones.
    """
    features = _check_features(features)
    names = [str(t) for t in features["term"].values]
    queries = [term] if isinstance(term, str) else list(term)
    if not queries or not all(isinstance(q, str) and q for q in queries):
        raise ParameterError(f"term={term!r} is not valid; expected a term name or a list of names (e.g. 'pain').")
    found: set[str] = set()
    for query in queries:
        pattern = re.compile(".*".join(re.escape(part) for part in query.split("*")))
        hits = [n for n in names if pattern.fullmatch(n)]
        if not hits:
            close = difflib.get_close_matches(query, names, n=5, cutoff=0.6)
            hint = f"close matches: {close}" if close else f"the features have {len(names)} terms, e.g. {names[:5]}"
            raise ParameterError(f"term {query!r} is not in the features ({hint}). Use '*' as a wildcard, e.g. 'emo*'.")
        found.update(hits)
    return [n for n in names if n in found]


def _weights(features: xr.DataArray, terms: list[str]) -> np.ndarray:
    """Summed weight of ``terms`` per feature study (computes only the blocks holding them)."""
    return np.asarray(features.sel(term=terms).sum("term").values, dtype=np.float64)


def term_ids(features: xr.DataArray, term: str | Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Ids of the studies of ``features`` that carry a term: summed weight >= ``threshold``.

    Neurosynth 0.3.8's ``Dataset.get_studies(features=term, frequency_threshold=threshold)``.

    Parameters
    ----------
    features : xarray.DataArray
    term : str or sequence of str
        As :func:`expand_terms`.
    threshold : float, default 0.001

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ParameterError
        Bad features or threshold, or an unknown term.

    Examples
    --------
    >>> import xcoact
    >>> from xcoact.features import read_features
    >>> from xcoact.analyses.decode import term_ids
    >>> f = read_features(xcoact.datasets.data_path("neurosynth_sample_features.txt"))
    >>> term_ids(f, "pain").tolist()
    [10601675]
    """
    features = _check_features(features)
    threshold = _check_threshold(threshold)
    terms = expand_terms(features, term)
    return features["study"].values[_weights(features, terms) >= threshold]


def _align(act: xr.DataArray, features: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """For each cube study, its row in ``features`` (or -1), and whether it has one."""
    study = act["study"].values
    fstudy = features["study"].values
    if study.dtype.kind in "iu" and fstudy.dtype.kind in "iu":
        rows = pd.Index(fstudy).get_indexer(study)
    else:  # one side has non-numeric ids: compare the ids as text
        rows = pd.Index(np.asarray(fstudy).astype(str)).get_indexer(np.asarray(study).astype(str))
    has = rows >= 0
    if not has.any():
        raise ParameterError(
            f"none of the {len(study)} studies of the cube is in the features ({len(fstudy)} studies, e.g. "
            f"{fstudy[:3].tolist()}; cube ids e.g. {study[:3].tolist()}). Use the features of the same database "
            "(Neurosynth ids are PubMed ids)."
        )
    return rows, has


def _term_selection(
    act, features, terms: list[str], threshold: float, label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, has = _align(act, features)
    weights = np.zeros(len(rows), dtype=np.float64)  # 0 where the features do not list the study
    weights[has] = _weights(features, terms)[rows[has]]
    selected = weights >= threshold
    n, k = selected.size, int(selected.sum())
    if k == 0:
        raise SelectionError(
            f"no study selected for term {label}: none of the {n} studies of the cube has a weight >= {threshold:g} "
            f"(largest weight {weights.max():.6g}; {int(has.sum())} of the studies are in the features). "
            f"Lower the threshold below {weights.max():.6g} or choose another term."
        )
    if k == n:
        raise SelectionError(
            f"every one of the {n} studies of the cube carries term {label} with a weight >= {threshold:g} "
            f"(smallest weight {weights.min():.6g}), so there are no studies to compare with. Raise the threshold "
            f"above {weights.min():.6g}."
        )
    return selected, weights, has


def term(
    act: xr.DataArray,
    term: str | Sequence[str],
    features: xr.DataArray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    q: float = 0.01,
    prior: float = 0.5,
) -> xr.Dataset:
    """Meta-analysis maps of a term: the studies that carry it against all the others.

    Neurosynth 0.3.8's ``meta.analyze_features`` for one feature: :func:`xcoact.analyses.meta.meta`
    of :func:`term_ids` (restricted to the cube's studies).

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube from :func:`xcoact.activations`.
    term : str or sequence of str
        A term of ``features``; ``*`` is a wildcard, and several names (or a
        wildcard matching several) sum their weights per study.
    features : xarray.DataArray, optional
        The ``(study, term)`` weights from :func:`xcoact.features.read_features`;
        by default the database's own (see :func:`features_for`).
    threshold : float, default 0.001
        A study carries the term when its (summed) weight is >= threshold.
    q, prior : float
        As for :func:`xcoact.seed`.

    Returns
    -------
    xarray.Dataset
        As :func:`xcoact.analyses.meta.meta`, plus ``term_weight (study)`` and attrs ``term``,
        ``terms`` (the names matched), ``feature_threshold``, ``features`` and ``n_feature_studies``.

    Raises
    ------
    ParameterError
        An unknown term (close matches suggested), bad features or threshold, no study shared with the cube.
    SelectionError
        No study, or every study, carries the term.

    Examples
    --------
    >>> import warnings, xcoact
    >>> from xcoact.features import read_features
    >>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
    >>> act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    >>> f = read_features(xcoact.datasets.data_path("neurosynth_sample_features.txt"))
    >>> ds = act.coact.term("working memory", f)
    >>> ds.attrs["n_selected"], ds.attrs["feature_threshold"]
    (7, 0.001)
    """
    features = _check_features(features_for(act) if features is None else features)
    threshold = _check_threshold(threshold)
    terms = expand_terms(features, term)
    label = repr(term) if isinstance(term, str) and [term] == terms else f"{term!r} ({', '.join(terms)})"
    selected, weights, has = _term_selection(act, features, terms, threshold, label)
    ds = _meta.meta(act, act["study"].values[selected], q=q, prior=prior)
    ds["term_weight"] = ("study", weights)
    ds["term_weight"].attrs["long_name"] = (
        f"summed weight of {', '.join(terms)} (0 where the features do not list the study)"
    )
    ds.attrs.update(
        title="xcoact term meta-analysis maps",
        analysis="term meta-analysis",
        term=term if isinstance(term, str) else ", ".join(term),
        terms=", ".join(terms),
        feature_threshold=threshold,
        feature_selection=_NEUROSYNTH_SELECTION,
        selection=f"studies whose summed weight of the term is >= {threshold:g}",
        features=str(features.attrs.get("features", "")),
        n_feature_studies=int(has.sum()),
        reference="Neurosynth 0.3.8 meta.analyze_features / MetaAnalysis (Yarkoni et al. 2011)",
    )
    return ds


def _compute_term_map(
    act, features, terms: list[str], threshold: float, map_name: str, q: float, prior: float, mask_flat: np.ndarray
) -> np.ndarray:
    """One term's map over the in-mask voxels; an empty array when no map exists (degenerate selection)."""
    try:
        selected, _, _ = _term_selection(act, features, terms, threshold, repr(terms))
    except SelectionError:
        return np.empty(0, dtype=np.float64)
    ds = _meta.meta(act, act["study"].values[selected], q=q, prior=prior)
    volume = ds[map_name].transpose("x", "y", "z").values
    return np.ascontiguousarray(volume.reshape(-1)[mask_flat], dtype=np.float64)


def _pick_map(image, map_name, q, prior) -> tuple[xr.DataArray, str, float, float]:
    """The map to decode, its name, ``q`` and ``prior`` (a Dataset's own by default)."""
    from ..writers import map_variables

    map_name = DEFAULT_MAP if map_name is None else map_name
    if isinstance(image, xr.Dataset):
        q = image.attrs.get("q", 0.01) if q is None else q
        prior = image.attrs.get("prior", 0.5) if prior is None else prior
        if map_name not in image.data_vars:
            raise ParameterError(
                f"map={map_name!r} is not a variable of the result; expected one of {list(map_variables(image))}."
            )
        image = image[map_name]
    elif isinstance(image, xr.DataArray):
        q = 0.01 if q is None else q
        prior = 0.5 if prior is None else prior
    else:
        raise ParameterError(
            f"the map to decode must be a result Dataset (e.g. from act.coact.seed) or an (x, y, z) DataArray, "
            f"got {type(image).__name__}."
        )
    if set(image.dims) != {"x", "y", "z"}:
        extra = sorted(set(image.dims) - {"x", "y", "z"})
        hint = f" Pick one first, e.g. .isel({extra[0]}=0)." if extra else ""
        raise ParameterError(f"the map to decode has dims {image.dims}; expected ('x', 'y', 'z').{hint}")
    names = map_names(q, prior)
    if map_name not in names:
        raise ParameterError(
            f"map={map_name!r} is not one of the nine maps for q={q}, prior={prior}; expected one of {names}."
        )
    return image, map_name, q, prior


def decode(
    image: xr.Dataset | xr.DataArray,
    features: xr.DataArray | None,
    act: xr.DataArray,
    *,
    terms: Sequence[str] | None = None,
    threshold: float | None = None,
    map: str | None = None,
    q: float | None = None,
    prior: float | None = None,
) -> pd.DataFrame:
    """Rank terms by how well their meta-analysis maps match a result map.

    Neurosynth 0.3.8's ``decode.Decoder(method="pearson", image_type="association-test_z",
    threshold=0.001).decode(image)``: the Pearson r over every in-mask voxel between the map and each term's.

    Parameters
    ----------
    image : xarray.Dataset or xarray.DataArray
        A result Dataset, whose variable ``map`` is decoded, or one ``(x, y, z)`` map on the cube's grid.
    features : xarray.DataArray
        The ``(study, term)`` weights from :func:`xcoact.features.read_features`.
    act : xarray.DataArray
        The activation cube the term maps are computed from (the result's).
    terms : sequence of str, optional
        The terms to rank (``*`` wildcards allowed); all terms by default.
    threshold : float, optional
        A study carries a term when its weight is >= threshold; by default :func:`feature_threshold`.
    map : str, optional
        Which of the nine maps to compare; ``"association-test_z"`` (Neurosynth's default) unless given.
    q, prior : float, optional
        Of the term maps; by default ``image``'s attrs, else 0.01 and 0.5.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``term``, sorted by ``r`` (terms without a map last): ``r``, ``n_studies`` (cube studies
        carrying the term); ``DataFrame.attrs`` the provenance.

    Warns
    -----
    DegenerateSeedWarning
        Some terms are carried by no study of the cube (or by all): no map, ``r = NaN``.

    Raises
    ------
    ParameterError
        Bad features, threshold, map name or terms; a map not on the cube's grid, or constant over the mask.

    Notes
    -----
    Cost: eager; each term map (one seed's cost) is computed once per inputs and kept by the cube
    (:func:`term_map_cache`, 512 MiB by default: ``xcoact.set_options(term_map_cache_bytes=...)``).
    """
    features = _check_features(features_for(act) if features is None else features)
    threshold = _check_threshold(feature_threshold(features) if threshold is None else threshold)
    _pipeline._check_cube(act)
    image, map_name, q, prior = _pick_map(image, map, q, prior)
    q = validate.unit_interval(q, "q", "0.01")
    prior = validate.unit_interval(prior, "prior", "0.5")
    for d in "xyz":
        if image.sizes[d] != act.sizes[d] or not np.array_equal(image[d].values, act[d].values):
            raise ParameterError(
                f"the map's {d} labels are not those of the cube ({image.sizes[d]} vs {act.sizes[d]} values); "
                "decode a map computed on the same grid as act."
            )
    grid = _pipeline._grid(act)
    mask_flat = grid.mask_flat
    y = np.asarray(image.transpose("x", "y", "z").values, dtype=np.float64).reshape(-1)[mask_flat]
    if not np.isfinite(y).all():
        raise ParameterError("the map to decode has NaN or infinite values inside the brain mask; r is undefined.")
    yc = y - y.mean()
    ynorm = float(np.sqrt(yc @ yc))
    if ynorm == 0.0:
        raise ParameterError("the map to decode is constant over the in-mask voxels, so Pearson r is undefined.")
    names = expand_terms(features, list(terms)) if terms is not None else [str(t) for t in features["term"].values]
    store = term_map_cache(act)
    base = (_identity(features), threshold, map_name, q, prior)
    r = np.full(len(names), np.nan)
    n_with = _carriers(act, features, names, threshold)
    degenerate = []
    for i, name in enumerate(names):
        key = (*base, name)
        m = store.get(key)
        if m is None:
            m = _compute_term_map(act, features, [name], threshold, map_name, q, prior, mask_flat)
            store.put(key, m)
        if m.size == 0:
            degenerate.append(
                f"{name!r} ({'no study' if n_with[i] == 0 else 'every study'} with weight >= {threshold:g})"
            )
            continue
        mc = m - m.mean()
        mnorm = float(np.sqrt(mc @ mc))
        r[i] = float(yc @ mc) / (ynorm * mnorm) if mnorm > 0 else np.nan
    if degenerate:
        warnings.warn(
            f"{len(degenerate)} of {len(names)} terms give no map, r = NaN: "
            + "; ".join(degenerate[:20])
            + ("; ..." if len(degenerate) > 20 else "")
            + ". Change the threshold to include them.",
            DegenerateSeedWarning,
            stacklevel=2,
        )
    out = pd.DataFrame({"r": r, "n_studies": n_with}, index=pd.Index(names, name="term"))
    out = out.sort_values("r", ascending=False, na_position="last", kind="stable")
    out.attrs = {
        "analysis": "decoding",
        "method": "pearson",
        "map": map_name,
        "threshold": threshold,
        "feature_selection": _NEUROSYNTH_SELECTION,
        "q": q,
        "prior": prior,
        "features": str(features.attrs.get("features", "")),
        "database": str(act.attrs.get("database", "")),
        "n_voxels": int(mask_flat.size),
        "n_terms": len(names),
        "reference": (
            "Neurosynth 0.3.8 decode.Decoder(method='pearson', image_type='association-test_z', threshold=0.001)"
        ),
    }
    return out


def _identity(obj: xr.DataArray) -> str:
    """A cache key for a DataArray: its Dask name (never the cube's contents) or values, its dims and labels."""
    data = obj.data
    ident = data.name if isinstance(data, dask.array.Array) else tokenize(np.asarray(data))
    return tokenize(ident, obj.dims, *((name, obj[name].values) for name in sorted(obj.coords, key=str)))


def _carriers(act: xr.DataArray, features: xr.DataArray, names: list[str], threshold: float) -> np.ndarray:
    """Cube studies carrying each of ``names`` (weight >= threshold), streaming the features' blocks."""
    rows, has = _align(act, features)
    f = features.sel(term=names)
    counts = np.asarray((f.isel(study=rows[has]) >= threshold).sum("study").values, dtype=np.int64)
    if 0.0 >= threshold:  # cube studies without features have weight 0, which then counts as carrying
        counts = counts + int((~has).sum())
    return counts


def _selection_mask(act: xr.DataArray, selection) -> np.ndarray:
    if isinstance(selection, xr.Dataset):
        if "seed" in selection.dims:
            raise ParameterError(
                "profile takes one selection; this result is a batch of seeds. Pick one, e.g. "
                f"maps.sel(seed={str(selection['seed'].values[0])!r}), or pass its ids."
            )
        if "selected_id" in selection:
            return _meta._study_mask(act, selection["selected_id"].values, "selected_id")
        if "selected" in selection and selection["selected"].dims == ("study",):
            ids = selection["study"].values[np.asarray(selection["selected"].values, dtype=bool)]
            return _meta._study_mask(act, ids, "selected")
        raise ParameterError(
            "the result has no 'selected_id' variable to take the selection from; pass the study ids instead."
        )
    return _meta._study_mask(act, selection, "ids")


def profile(
    act: xr.DataArray,
    selection,
    features: xr.DataArray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    terms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Functional profile of a study selection: which terms its studies carry, against chance.

    Per term, ``k`` of the ``n`` selected studies carry it and ``K`` of the cube's ``N``: expected by chance
    ``n * K / N``, and ``p`` the one-sided hypergeometric P(X >= k) (not corrected for the number of terms).

    Parameters
    ----------
    act : xarray.DataArray
        The activation cube: its studies are the population ``N``.
    selection : xarray.Dataset or sequence of ids
        A result with ``selected_id`` (one seed of a batch via ``.sel(seed=...)``), or study ids.
    features : xarray.DataArray
        The ``(study, term)`` weights (cube studies they do not list carry no term).
    threshold : float, default 0.001
        A study carries a term when its weight is >= threshold.
    terms : sequence of str, optional
        Restrict the table to these terms (``*`` wildcards allowed).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``term``, sorted by ``p`` then ``ratio``: ``selected_with``, ``fraction``, ``expected``,
        ``ratio``, ``all_with`` and ``p``; ``DataFrame.attrs`` the provenance.

    Raises
    ------
    ParameterError
        Bad features, threshold, selection or terms.

    Notes
    -----
    Cost: eager; one pass over the features' blocks.
    """
    from scipy.stats import hypergeom

    features = _check_features(features_for(act) if features is None else features)
    threshold = _check_threshold(threshold)
    _pipeline._check_cube(act)
    selected = _selection_mask(act, selection)
    rows, has = _align(act, features)
    names = expand_terms(features, list(terms)) if terms is not None else [str(t) for t in features["term"].values]
    f = features.sel(term=names) if terms is not None else features
    carry = f.isel(study=rows[has]) >= threshold
    sel_rows = selected[has]
    k_feat, big_k_feat = dask.compute(
        carry.isel(study=np.flatnonzero(sel_rows)).sum("study").data, carry.sum("study").data
    )
    k = np.asarray(k_feat, dtype=np.int64)
    big_k = np.asarray(big_k_feat, dtype=np.int64)
    if 0.0 >= threshold:  # studies without features have weight 0, which then counts as carrying
        k = k + int((selected & ~has).sum())
        big_k = big_k + int((~has).sum())
    n_total = int(selected.size)
    n = int(selected.sum())
    expected = n * big_k / n_total
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, k / np.where(expected > 0, expected, 1), np.nan)
    p = hypergeom.sf(k - 1, n_total, big_k, n)
    out = pd.DataFrame(
        {"selected_with": k, "fraction": k / n, "expected": expected, "ratio": ratio, "all_with": big_k, "p": p},
        index=pd.Index(names, name="term"),
    )
    out = out.sort_values(["p", "ratio"], ascending=[True, False], na_position="last", kind="stable")
    out.attrs = {
        "analysis": "functional profile",
        "threshold": threshold,
        "feature_selection": _NEUROSYNTH_SELECTION,
        "n_selected": n,
        "n_studies": n_total,
        "n_feature_studies": int(has.sum()),
        "features": str(features.attrs.get("features", "")),
        "database": str(act.attrs.get("database", "")),
        "test": "one-sided hypergeometric P(X >= selected_with), uncorrected",
    }
    return out
