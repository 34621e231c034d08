"""Term features, meta-analysis of a study list, term maps, decoding and functional profiles.

The oracles are independent of the package: pandas and scipy read the
feature files directly, the loop transcription in tests/reference.py gives
the maps of an id list, ``np.corrcoef`` gives Pearson r, and the
hypergeometric tail is summed from binomial coefficients.
"""

from __future__ import annotations

import gzip
import math
import os
import warnings

import dask.array
import numpy as np
import pandas as pd
import pytest
import reference
import scipy.sparse as sp
import xarray as xr
from conftest import _mni_mask, _oracle_study_maps, data_file

import xcoact
from xcoact import features as xfeatures
from xcoact.analyses import decode as xdecode
from xcoact.analyses.decode import TermMapCache, decode, expand_terms, profile, term_ids
from xcoact.analyses.meta import meta
from xcoact.features import read_features

PROB_TOL = 1e-9
Z_TOL = 1e-6

FEATURES_TXT = data_file("neurosynth_sample_features.txt")
V7_NPZ = data_file("data-neurosynth_version-7_vocab-terms_source-abstract_type-tfidf_features.npz")
V7_META = data_file("data-neurosynth_version-7_metadata.tsv.gz")
V7_VOCAB = data_file("data-neurosynth_version-7_vocab-terms_vocabulary.txt")
LDA_DIR = data_file("lda50")
LDA_NPZ = os.path.join(LDA_DIR, "data-neurosynth_version-7_vocab-LDA50_source-abstract_type-weight_features.npz")
LDA_META = os.path.join(LDA_DIR, "data-neurosynth_version-7_metadata.tsv.gz")
LDA_VOCAB = os.path.join(LDA_DIR, "data-neurosynth_version-7_vocab-LDA50_vocabulary.txt")


@pytest.fixture(autouse=True)
def _fresh_cache(sample_cube):
    xdecode.term_map_cache(sample_cube).clear()
    yield
    xdecode.term_map_cache(sample_cube).clear()


@pytest.fixture(scope="module")
def features_txt():
    return read_features(FEATURES_TXT)


@pytest.fixture(scope="module")
def frame_txt():
    """The sample features.txt read by pandas alone (the independent view)."""
    return pd.read_csv(FEATURES_TXT, sep="\t", index_col=0)


def _oracle_meta(ids, universe=None):
    """Maps of the loop oracle for an explicit selection (optionally within a universe of studies)."""
    maps = _oracle_study_maps()
    if universe is not None:
        maps = {k: v for k, v in maps.items() if k in set(universe)}
    return reference.coactivation_maps(maps, list(ids), _mni_mask())


def _assert_maps_match(ds, expected):
    assert ds.coact.maps == list(expected)
    for name, ref in expected.items():
        got = ds[name].transpose("x", "y", "z").values
        tol = Z_TOL if "_z" in name else PROB_TOL
        diff = np.abs(got - ref).max()
        assert diff <= tol, f"{name}: max abs diff {diff}"


def _in_mask(ds, name):
    return ds[name].transpose("x", "y", "z").values[_mni_mask()]


# --------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------


def test_features_txt_matches_pandas(features_txt, frame_txt):
    f = features_txt
    assert f.dims == ("study", "term") and f.dtype == np.float64
    assert isinstance(f.data, dask.array.Array), "the features view is lazy"
    assert f["study"].dtype == np.int64
    assert f["study"].values.tolist() == frame_txt.index.tolist()
    assert f["term"].values.tolist() == ["emotion", "working memory", "pain"] == frame_txt.columns.tolist()
    np.testing.assert_array_equal(f.values, frame_txt.to_numpy())
    assert f.attrs["format"] == "neurosynth" and f.attrs["n_studies"] == 100 and f.attrs["n_terms"] == 3
    assert f.attrs["nnz"] == int((frame_txt.to_numpy() != 0).sum())


def test_bundled_features_are_the_sample_file(features_txt):
    bundled = read_features(xcoact.datasets.data_path("neurosynth_sample_features.txt"))
    xr.testing.assert_equal(bundled, features_txt)


def test_v7_rows_follow_the_metadata_ids():
    f = read_features(V7_NPZ)
    matrix = sp.load_npz(V7_NPZ)
    meta_ids = pd.read_csv(V7_META, sep="\t", usecols=["id"])["id"].tolist()
    vocab = open(V7_VOCAB, encoding="utf-8").read().split("\n")
    assert f.sizes == {"study": 20, "term": 100} == {"study": matrix.shape[0], "term": matrix.shape[1]}
    assert f["study"].values.tolist() == meta_ids
    assert f["term"].values.tolist() == [v for v in vocab if v]
    np.testing.assert_array_equal(f.values, matrix.toarray())
    assert f.attrs["format"] == "neurosynth-v7"
    assert f.attrs["metadata"] == V7_META and f.attrs["vocabulary"] == V7_VOCAB
    # explicit companions and ids give the same array
    g = read_features(V7_NPZ, vocabulary=V7_VOCAB, ids=meta_ids)
    np.testing.assert_array_equal(g.values, f.values)
    assert g["study"].values.tolist() == meta_ids


def test_lda50_fixture_is_real_and_aligned():
    f = read_features(LDA_NPZ)
    matrix = sp.load_npz(LDA_NPZ)
    ids = pd.read_csv(LDA_META, sep="\t", usecols=["id"])["id"].tolist()
    assert f.sizes == {"study": 95, "term": 50}
    assert f["study"].values.tolist() == ids
    assert f["term"].values[0] == "0_network_state_resting"
    np.testing.assert_array_equal(f.values, matrix.toarray())
    # LDA topic weights of one abstract sum to about one
    assert np.allclose(f.sum("term").values, 1.0, atol=1e-3)


def test_one_term_densifies_one_block(monkeypatch):
    calls = []
    real = xfeatures._dense_block

    def spy(matrix, block_info=None):
        calls.append(tuple(block_info[None]["array-location"][1]))
        return real(matrix, block_info=block_info)

    monkeypatch.setattr(xfeatures, "BLOCK_BYTES", 95 * 8 * 5)  # 5 terms per block
    monkeypatch.setattr(xfeatures, "_dense_block", spy)
    f = read_features(LDA_NPZ)
    assert f.data.numblocks == (1, 10)
    calls.clear()  # dask may call the block function once on empty input to learn its type
    w = f.isel(term=7).values
    assert calls == [(5, 10)], f"only the block of terms 5-9 should be built, got {calls}"
    np.testing.assert_array_equal(w, sp.load_npz(LDA_NPZ).toarray()[:, 7])


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "text, needles",
    [
        (
            "pmid\tpain\temotion\n1\t0.1\t0.0\n2\tabc\t0.0\n3\t0.2\tnan\n",
            ["line 3, column 'pain': 'abc'", "line 4, column 'emotion'", "2 malformed row(s)"],
        ),
        ("pmid\tpain\n1\t0.1\n2\t0.1\t0.3\n", ["line 3: 3 fields, the header has 2"]),
        ("pmid\tpain\n1\t0.1\n2\t0.0\n1\t0.3\n", ["rows share a study id", "'1' (line 2)", "'1' (line 4)"]),
        ("pmid\tpain\tpain\n1\t0.1\t0.2\n", ["line 1, column 3: term 'pain' repeats line 1, column 2"]),
        ("pmid\n1\n", ["line 1: the header has 1 tab-separated column"]),
        ("pmid\tpain\n", ["no study row follows"]),
        ("", ["the file is empty"]),
    ],
)
def test_features_txt_errors_name_file_and_line(tmp_path, text, needles):
    path = _write(tmp_path / "features.txt", text)
    with pytest.raises(xcoact.DatabaseError) as info:
        read_features(path)
    msg = str(info.value)
    assert path in msg
    for needle in needles:
        assert needle in msg, msg


def test_v7_errors(tmp_path):
    with pytest.raises(xcoact.DatabaseFileNotFoundError, match="no such term features file"):
        read_features(tmp_path / "missing_features.npz")
    bad = tmp_path / "x_vocab-terms_source-a_type-b_features.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(xcoact.DatabaseError, match="not a scipy sparse matrix archive"):
        read_features(bad)
    # a vocabulary of the wrong length
    npz = tmp_path / "r_vocab-terms_source-abstract_type-tfidf_features.npz"
    npz.write_bytes(open(V7_NPZ, "rb").read())
    (tmp_path / "r_vocab-terms_vocabulary.txt").write_text("a\nb\nc\n")
    (tmp_path / "r_metadata.tsv.gz").write_bytes(open(V7_META, "rb").read())
    with pytest.raises(xcoact.DatabaseError, match=r"3 term\(s\), but .* has 100 column\(s\)"):
        read_features(npz)
    (tmp_path / "r_vocab-terms_vocabulary.txt").write_text(open(V7_VOCAB).read())
    # metadata of another size
    with gzip.open(tmp_path / "r_metadata.tsv.gz", "wt") as fh:
        fh.write("id\tspace\n1\tMNI\n2\tMNI\n")
    with pytest.raises(xcoact.DatabaseError, match=r"2 stud\(y/ies\), but .* has 20 row\(s\)"):
        read_features(npz)
    with gzip.open(tmp_path / "r_metadata.tsv.gz", "wt") as fh:
        fh.write("pmid\tspace\n1\tMNI\n")
    with pytest.raises(xcoact.DatabaseError, match="line 1: no 'id' column"):
        read_features(npz)
    os.remove(tmp_path / "r_metadata.tsv.gz")
    with pytest.raises(xcoact.ParameterError, match="no metadata file beside it"):
        read_features(npz)
    with pytest.raises(xcoact.ParameterError, match="ids has 2 entries"):
        read_features(npz, ids=[1, 2])
    odd = tmp_path / "weights.npz"
    odd.write_bytes(open(V7_NPZ, "rb").read())
    with pytest.raises(xcoact.ParameterError, match="pass vocabulary="):
        read_features(odd)
    with pytest.raises(xcoact.ParameterError, match=r"apply to the v7 '.npz' features only"):
        read_features(FEATURES_TXT, vocabulary=V7_VOCAB)
    with pytest.raises(xcoact.ParameterError, match="not a known features format"):
        read_features(FEATURES_TXT, format="csv")


# --------------------------------------------------------------------------
# meta: an explicit id list
# --------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["sparse", "dense"])
def test_meta_of_a_real_id_list_equals_the_loop_oracle(sample_cube, frame_txt, route):
    # a real list: the studies Neurosynth's sample features tag with "working memory"
    ids = frame_txt.index[frame_txt["working memory"] >= 0.001].tolist()
    assert len(ids) == 7
    act = sample_cube if route == "sparse" else sample_cube.chunk({"study": 32})
    ds = act.coact.meta(ids).compute()
    assert sorted(ds["selected_id"].values.tolist()) == sorted(ids)
    assert ds.attrs["analysis"] == "meta-analysis"
    assert (ds.attrs["n_selected"], ds.attrs["n_unselected"], ds.attrs["n_studies"]) == (7, 93, 100)
    assert ds.attrs["selection"] == "explicit study ids" and "MetaAnalysis" in ds.attrs["reference"]
    _assert_maps_match(ds, _oracle_meta(ids))


def test_meta_contrast_with_ids2_equals_the_oracle_on_the_union(sample_cube):
    study = sample_cube["study"].values.tolist()
    ids, ids2 = study[0:12], study[40:70]
    ds = sample_cube.coact.meta(ids, ids2=ids2).compute()
    assert ds.attrs["analysis"] == "meta-analysis contrast"
    assert (ds.attrs["n_selected"], ds.attrs["n_unselected"], ds.attrs["n_studies"]) == (12, 30, 42)
    assert ds["contrast_id"].values.tolist() == ids2
    _assert_maps_match(ds, _oracle_meta(ids, universe=ids + ids2))


def test_meta_is_the_same_as_a_seed_with_the_same_selection(sample_cube):
    seed = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    m = sample_cube.coact.meta(seed["selected_id"].values)
    for name in seed.coact.maps:
        np.testing.assert_array_equal(m[name].values, seed[name].values)


def test_meta_accepts_ids_as_text_and_repeats(sample_cube):
    study = sample_cube["study"].values
    a = meta(sample_cube, [str(s) for s in study[:5]] + [int(study[0])])
    b = sample_cube.coact.meta(study[:5])
    assert a["selected_id"].values.tolist() == b["selected_id"].values.tolist() == study[:5].tolist()
    np.testing.assert_array_equal(a["pFgA"].values, b["pFgA"].values)


def test_meta_errors(sample_cube):
    study = sample_cube["study"].values
    with pytest.raises(xcoact.ParameterError) as info:
        sample_cube.coact.meta([int(study[0]), 123, 456, "abc"])
    msg = str(info.value)
    assert (
        "3 of 4 id(s) are not studies of the cube" in msg and "123" in msg and "'abc'" in msg and str(study[0]) in msg
    )
    with pytest.raises(xcoact.SelectionError, match="ids is empty"):
        sample_cube.coact.meta([])
    with pytest.raises(xcoact.SelectionError, match="every one of the 100 studies"):
        sample_cube.coact.meta(study)
    with pytest.raises(xcoact.ParameterError, match=r"ids and ids2 share 2 stud\(y/ies\)"):
        sample_cube.coact.meta(study[:5], ids2=study[3:10])
    with pytest.raises(xcoact.ParameterError, match="q=2"):
        sample_cube.coact.meta(study[:5], q=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        nimare_cube = xcoact.activations(xcoact.datasets.sample_database_path(), preset="nimare")
    with pytest.raises(xcoact.ParameterError, match="built with preset='nimare'"):
        nimare_cube.coact.meta(study[:5])


# --------------------------------------------------------------------------
# term selection and term maps
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pain", "emotion", "working memory"])
def test_term_selection_is_weight_at_least_threshold(sample_cube, features_txt, frame_txt, name):
    expected = frame_txt.index[frame_txt[name] >= 0.001].tolist()
    ds = sample_cube.coact.term(name, features_txt)
    assert ds["selected_id"].values.tolist() == expected
    assert term_ids(features_txt, name).tolist() == expected
    assert ds.attrs["analysis"] == "term meta-analysis" and ds.attrs["term"] == name
    assert ds.attrs["feature_threshold"] == 0.001 and ds.attrs["features"] == FEATURES_TXT
    np.testing.assert_array_equal(ds["term_weight"].values, frame_txt[name].reindex(ds["study"].values).to_numpy())


def test_threshold_is_inclusive(sample_cube, features_txt, frame_txt):
    w = frame_txt["working memory"]
    t = float(np.sort(w[w > 0].to_numpy())[2])  # a weight that exists: >= keeps its study
    ds = sample_cube.coact.term("working memory", features_txt, threshold=t)
    assert ds["selected_id"].values.tolist() == w.index[w >= t].tolist()
    assert int((w == t).sum()) >= 1 and ds.attrs["n_selected"] == int((w >= t).sum())


def test_term_maps_equal_meta_maps_and_the_oracle(sample_cube, features_txt, frame_txt):
    ids = frame_txt.index[frame_txt["emotion"] >= 0.001].tolist()
    t = sample_cube.coact.term("emotion", features_txt).compute()
    m = sample_cube.coact.meta(ids).compute()
    for name in m.coact.maps:
        np.testing.assert_array_equal(t[name].values, m[name].values)
    _assert_maps_match(t, _oracle_meta(ids))


def test_wildcards_and_several_terms_sum_their_weights(sample_cube, features_txt, frame_txt):
    assert expand_terms(features_txt, "work*") == ["working memory"]
    assert expand_terms(features_txt, "*") == ["emotion", "working memory", "pain"]
    total = frame_txt["emotion"] + frame_txt["pain"]
    ds = sample_cube.coact.term(["emotion", "pain"], features_txt)
    assert ds["selected_id"].values.tolist() == total.index[total >= 0.001].tolist()
    assert ds.attrs["terms"] == "emotion, pain"


def test_term_on_v7_topics_ignores_studies_without_features(sample_cube):
    lda = read_features(LDA_NPZ)
    topic = str(lda["term"].values[4])
    weights = pd.Series(sp.load_npz(LDA_NPZ).toarray()[:, 4], index=lda["study"].values)
    in_cube = weights[weights.index.isin(sample_cube["study"].values)]
    expected = [s for s in sample_cube["study"].values if s in set(in_cube.index[in_cube >= 0.05])]
    ds = sample_cube.coact.term(topic, lda, threshold=0.05)
    assert ds["selected_id"].values.tolist() == expected
    assert ds.attrs["n_feature_studies"] == 87  # 13 sample studies are not in Neurosynth v7
    assert ds["term_weight"].sel(study=9106283).item() == (in_cube.get(9106283, 0.0))


def test_term_errors(sample_cube, features_txt):
    with pytest.raises(
        xcoact.ParameterError, match=r"term 'pian' is not in the features \(close matches: \['pain'\]\)"
    ):
        sample_cube.coact.term("pian", features_txt)
    with pytest.raises(xcoact.SelectionError, match=r"no study selected for term 'pain'.*largest weight 0\.676519"):
        sample_cube.coact.term("pain", features_txt, threshold=0.7)
    with pytest.raises(xcoact.SelectionError, match="every one of the 100 studies of the cube carries term"):
        sample_cube.coact.term("pain", features_txt, threshold=-1.0)
    with pytest.raises(xcoact.ParameterError, match="threshold=True is not valid"):
        sample_cube.coact.term("pain", features_txt, threshold=True)
    with pytest.raises(xcoact.ParameterError, match=r"features must be the \(study, term\) DataArray"):
        sample_cube.coact.term("pain", features_txt.rename(term="word"))
    other = features_txt.assign_coords(study=features_txt["study"].values + 10**9)
    with pytest.raises(xcoact.ParameterError, match="none of the 100 studies of the cube is in the features"):
        sample_cube.coact.term("pain", other)


# --------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------


def _term_map(act, features, name, map_name="association-test_z"):
    return _in_mask(act.coact.term(name, features).compute(), map_name)


def test_decoding_a_term_map_ranks_that_term_first(sample_cube, features_txt):
    pain = sample_cube.coact.term("pain", features_txt)
    table = pain.coact.decode(features_txt, act=sample_cube)
    assert table.index[0] == "pain"
    assert table.loc["pain", "r"] == pytest.approx(1.0, abs=1e-12)
    assert table.index.name == "term" and list(table.columns) == ["r", "n_studies"]
    assert table["n_studies"].to_dict() == {"pain": 1, "emotion": 2, "working memory": 7}
    assert list(table["r"]) == sorted(table["r"], reverse=True)


@pytest.mark.parametrize("map_name", ["association-test_z", "pFgA"])
def test_decode_r_equals_np_corrcoef(sample_cube, features_txt, map_name):
    seed = sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    table = decode(seed, features_txt, sample_cube, map=map_name)
    y = _in_mask(seed.compute(), map_name)
    for name in ["emotion", "working memory", "pain"]:
        expected = np.corrcoef(y, _term_map(sample_cube, features_txt, name, map_name))[0, 1]
        assert table.loc[name, "r"] == pytest.approx(expected, abs=1e-12), name
    assert table.attrs["map"] == map_name and table.attrs["method"] == "pearson"
    assert table.attrs["n_voxels"] == 228453 and table.attrs["threshold"] == 0.001


def test_each_term_map_is_computed_once(sample_cube, features_txt, monkeypatch):
    calls = []
    real = xdecode._compute_term_map

    def spy(act, features, terms, *args, **kwargs):
        calls.append(tuple(terms))
        return real(act, features, terms, *args, **kwargs)

    monkeypatch.setattr(xdecode, "_compute_term_map", spy)
    seed = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    first = seed.coact.decode(features_txt, act=sample_cube)
    assert sorted(calls) == [("emotion",), ("pain",), ("working memory",)]
    # another map to decode, same cube, features and threshold: no new term map
    other = sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    other.coact.decode(features_txt, act=sample_cube)
    again = seed.coact.decode(features_txt, act=sample_cube)
    assert len(calls) == 3
    pd.testing.assert_frame_equal(first, again)
    info = xdecode.term_map_cache(sample_cube).info()
    assert (info["maps"], info["hits"], info["misses"]) == (3, 6, 3)
    # a new key (map name, threshold, a rebuilt-but-different cube) computes again
    seed.coact.decode(features_txt, act=sample_cube, map="pFgA")
    assert len(calls) == 6
    seed.coact.decode(features_txt, act=sample_cube, threshold=0.1, terms=["working memory"])
    assert len(calls) == 7


def test_cache_is_bounded_and_least_recently_used():
    cache = TermMapCache(max_bytes=3 * 800)
    for k in "abc":
        cache.put(k, np.zeros(100))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", np.zeros(100))
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.info()["bytes"] == 2400 and len(cache) == 3
    with pytest.raises(ValueError):
        cache.get("a")[0] = 1.0  # cached maps are read-only
    cache.put("huge", np.zeros(1000))
    assert cache.get("huge") is None and len(cache) == 3
    cache.clear()
    assert cache.info() == {"maps": 0, "bytes": 0, "max_bytes": 2400, "hits": 0, "misses": 0}


def test_decode_warns_for_terms_without_a_map(sample_cube, features_txt):
    seed = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    # at 0.3 only one study carries 'pain' (0.677) and one 'working memory' (0.315); none 'emotion' (max 0.254)
    with pytest.warns(
        xcoact.errors.DegenerateSeedWarning, match=r"1 of 3 terms give no map, r = NaN: 'emotion' \(no study"
    ):
        table = seed.coact.decode(features_txt, act=sample_cube, threshold=0.3)
    assert table.index[-1] == "emotion" and np.isnan(table.loc["emotion", "r"])
    assert np.isfinite(table["r"].iloc[:2]).all() and table["n_studies"].to_dict() == {
        "pain": 1,
        "working memory": 1,
        "emotion": 0,
    }


def test_decode_a_dataarray_and_on_v7_topics(sample_cube):
    lda = read_features(LDA_NPZ)
    topics = ["5_*", "12_*", "20_*"]
    names = expand_terms(lda, topics)
    seed = sample_cube.coact.seed(xcoact.datasets.sgacc_roi_path(), threshold=0.05)
    table = decode(seed["association-test_z"], lda, sample_cube, terms=topics, threshold=0.05)
    assert sorted(table.index) == sorted(names)
    y = _in_mask(seed.compute(), "association-test_z")
    for name in names:
        m = _in_mask(sample_cube.coact.term(name, lda, threshold=0.05).compute(), "association-test_z")
        assert table.loc[name, "r"] == pytest.approx(np.corrcoef(y, m)[0, 1], abs=1e-12)


def test_decode_errors(sample_cube, features_txt):
    seed = sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    orphan = seed.copy()
    orphan.encoding.clear()  # as maps read back from a file: they no longer carry their cube
    with pytest.raises(
        xcoact.ParameterError,
        match=r"no longer carries the one it came from .*pass it: maps\.coact\.decode\(features, act=act\)",
    ):
        orphan.coact.decode(features_txt)
    batch = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1, separate=True)
    with pytest.raises(xcoact.ParameterError, match=r"Pick one first, e.g. .isel\(seed=0\)"):
        batch.coact.decode(features_txt, act=sample_cube)
    with pytest.raises(xcoact.ParameterError, match="map='pAgU' is not a variable"):
        seed.coact.decode(features_txt, act=sample_cube, map="pAgU")
    shifted = seed["pFgA"].assign_coords(x=seed["x"].values + 2)
    with pytest.raises(xcoact.ParameterError, match="x labels are not those of the cube"):
        decode(shifted, features_txt, sample_cube, map="pFgA")
    with pytest.raises(xcoact.ParameterError, match="constant over the in-mask voxels"):
        decode(xr.zeros_like(seed["pFgA"]), features_txt, sample_cube)
    with pytest.raises(xcoact.ParameterError, match="term 'nope' is not in the features"):
        decode(seed, features_txt, sample_cube, terms=["nope"])


# --------------------------------------------------------------------------
# functional profile
# --------------------------------------------------------------------------


def _hypergeom_tail(k, n_total, big_k, n):
    """P(X >= k) for X ~ Hypergeometric(N, K, n), summed from binomial coefficients."""
    denom = math.comb(n_total, n)
    return sum(math.comb(big_k, j) * math.comb(n_total - big_k, n - j) for j in range(k, min(big_k, n) + 1)) / denom


def test_profile_counts_equal_an_independent_count(sample_cube, features_txt, frame_txt):
    seed = sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    chosen = set(seed["selected_id"].values.tolist())
    table = sample_cube.coact.profile(seed, features_txt)
    n_total, n = 100, len(chosen)
    assert table.attrs["n_selected"] == n and table.attrs["n_studies"] == n_total
    for name in frame_txt.columns:
        carriers = set(frame_txt.index[frame_txt[name] >= 0.001])
        k, big_k = len(carriers & chosen), len(carriers)
        row = table.loc[name]
        assert (row["selected_with"], row["all_with"]) == (k, big_k), name
        assert row["expected"] == pytest.approx(n * big_k / n_total)
        assert row["fraction"] == pytest.approx(k / n)
        assert row["p"] == pytest.approx(_hypergeom_tail(k, n_total, big_k, n), rel=1e-9)
    assert list(table["p"]) == sorted(table["p"])
    by_ids = profile(sample_cube, sorted(chosen), features_txt)
    pd.testing.assert_frame_equal(by_ids, table)


def test_profile_on_v7_topics_of_a_term_selection(sample_cube, features_txt):
    lda = read_features(LDA_NPZ)
    wm = sample_cube.coact.term("working memory", features_txt)
    table = sample_cube.coact.profile(wm, lda, threshold=0.05)
    assert len(table) == 50 and table.attrs["n_feature_studies"] == 87
    dense = pd.DataFrame(sp.load_npz(LDA_NPZ).toarray(), index=lda["study"].values, columns=lda["term"].values)
    dense = dense.reindex(sample_cube["study"].values).fillna(0.0)
    chosen = wm["selected_id"].values
    k = (dense.loc[chosen] >= 0.05).sum()
    big_k = (dense >= 0.05).sum()
    pd.testing.assert_series_equal(
        table["selected_with"].sort_index(),
        k.sort_index().rename("selected_with").rename_axis("term"),
        check_dtype=False,
    )
    pd.testing.assert_series_equal(
        table["all_with"].sort_index(), big_k.sort_index().rename("all_with").rename_axis("term"), check_dtype=False
    )


def test_profile_errors(sample_cube, features_txt):
    batch = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1, separate=True)
    with pytest.raises(xcoact.ParameterError, match="this result is a batch of seeds"):
        sample_cube.coact.profile(batch, features_txt)
    with pytest.raises(xcoact.ParameterError, match="not studies of the cube"):
        sample_cube.coact.profile([1, 2], features_txt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = sample_cube.coact.profile(batch.isel(seed=0), features_txt)
    assert one.attrs["n_selected"] == int(batch["n_selected"].values[0])


# -- the database's own features, found by xcoact (issue: act.coact.term("pain", threshold=0.001)) --------


def test_term_and_decode_find_the_databases_own_features(sample_cube, features_txt):
    from xcoact.analyses.decode import features_for

    found = features_for(sample_cube)
    assert list(found["term"].values) == list(features_txt["term"].values)
    implicit = sample_cube.coact.term("pain", threshold=0.001)
    explicit = sample_cube.coact.term("pain", features_txt, threshold=0.001)
    assert list(implicit["selected_id"].values) == list(explicit["selected_id"].values)
    xr.testing.assert_identical(implicit.compute().drop_attrs(), explicit.compute().drop_attrs())

    maps = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    by_itself = maps.coact.decode()  # the cube and the features found from the result
    given = maps.coact.decode(features_txt, act=sample_cube)
    pd.testing.assert_frame_equal(by_itself, given)


def test_v7_release_features_are_found_beside_the_coordinates(tmp_path):
    from xcoact.analyses.decode import _features_beside

    coords = tmp_path / "data-neurosynth_version-7_coordinates.tsv.gz"
    coords.write_bytes(b"")
    assert _features_beside(str(coords)) is None
    npz = tmp_path / "data-neurosynth_version-7_vocab-terms_source-abstract_type-tfidf_features.npz"
    lda = tmp_path / "data-neurosynth_version-7_vocab-LDA50_source-abstract_type-weight_features.npz"
    lda.write_bytes(b"")
    assert _features_beside(str(coords)) == str(lda)
    npz.write_bytes(b"")
    assert _features_beside(str(coords)) == str(npz), "the terms vocabulary comes first"


def test_no_features_known_says_how_to_pass_them(tmp_path):
    import shutil

    db = tmp_path / "database.txt"
    shutil.copy(xcoact.datasets.sample_database_path(), db)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
        act = xcoact.activations(str(db), r=6)
    with pytest.raises(
        xcoact.ParameterError,
        match=r"no term features are known for this cube's database .*database\.txt.*"
        r"pass features=xcoact\.read_features",
    ):
        act.coact.term("pain")
