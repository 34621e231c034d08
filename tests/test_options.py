"""xcoact.set_options: validated settings, as a context manager; decode's term maps kept by the cube, not the module."""

from __future__ import annotations

import gc
import pickle
import re
import weakref
from unittest import mock

import pytest

import xcoact
import xcoact.analyses.decode as xdecode
from xcoact.features import read_features


@pytest.fixture(scope="module")
def features():
    return read_features(xcoact.datasets.sample_database_path().replace("database", "features"))


def test_set_options_is_validated_and_restores_on_exit():
    before = xcoact.get_options()["term_map_cache_bytes"]
    with xcoact.set_options(term_map_cache_bytes=1000):
        assert xcoact.get_options()["term_map_cache_bytes"] == 1000
    assert xcoact.get_options()["term_map_cache_bytes"] == before
    with pytest.raises(
        xcoact.ParameterError,
        match=re.escape("'term_map_bytes' is not an xcoact setting; expected one of ['term_map_cache_bytes']."),
    ):
        xcoact.set_options(term_map_bytes=0)
    for bad in (-1, 1.5, True, "1GB"):
        with pytest.raises(
            xcoact.ParameterError,
            match=re.escape(f"term_map_cache_bytes={bad!r} is not valid; expected an integer >= 0."),
        ):
            xcoact.set_options(term_map_cache_bytes=bad)
    assert xcoact.get_options()["term_map_cache_bytes"] == before  # a refused call changes nothing
    with pytest.raises(TypeError):
        xcoact.get_options()["term_map_cache_bytes"] = 0  # read-only view


def test_set_options_without_with_lasts_until_changed_back():
    before = xcoact.get_options()["term_map_cache_bytes"]
    try:
        xcoact.set_options(term_map_cache_bytes=7)
        assert xcoact.get_options()["term_map_cache_bytes"] == 7
    finally:
        xcoact.set_options(term_map_cache_bytes=before)


def _spy(monkeypatch) -> mock.Mock:
    """Counts the term maps computed (each call computes one)."""
    spy = mock.Mock(wraps=xdecode._compute_term_map)
    monkeypatch.setattr(xdecode, "_compute_term_map", spy)
    return spy


@pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")
def test_term_maps_live_with_the_cube_and_follow_the_budget(sample_cube, features, monkeypatch):
    spy = _spy(monkeypatch)
    maps = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    first = maps.coact.decode(features, act=sample_cube)
    assert spy.call_count == 3 and xdecode.term_map_cache(sample_cube).info()["maps"] == 3
    # the maps are the cube's: no module-level store holds them
    assert not any(isinstance(v, xdecode.TermMapCache) for v in vars(xdecode).values())
    # a cube derived from it (here: the same studies, rechunked) starts its own
    other = sample_cube.chunk({"study": 50})
    assert xdecode.term_map_cache(other).info()["maps"] == 0
    again = maps.coact.decode(features, act=other)
    assert spy.call_count == 6
    assert (first["r"] - again["r"]).abs().max() < 1e-12
    # with a budget of 0 nothing is kept, so each decode computes its maps
    with xcoact.set_options(term_map_cache_bytes=0):
        fresh = xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)
        maps.coact.decode(features, act=fresh)
        maps.coact.decode(features, act=fresh)
        assert spy.call_count == 12 and xdecode.term_map_cache(fresh).info()["maps"] == 0


@pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")
def test_the_maps_go_when_the_cube_goes(sample_table, features):
    act = xcoact.activations(sample_table, r=6)
    maps = act.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1).compute()
    maps.encoding.clear()  # the result would otherwise keep its cube
    maps.coact.decode(features, act=act)
    store = weakref.ref(xdecode.term_map_cache(act))
    del act
    gc.collect()
    assert store() is None


@pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")
def test_a_cube_with_term_maps_still_copies_and_pickles(sample_table, features):
    act = xcoact.activations(sample_table, r=6)
    maps = act.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1)
    maps.coact.decode(features, act=act)
    assert xdecode.term_map_cache(act).info()["maps"] == 3
    for other in (act.copy(deep=True), pickle.loads(pickle.dumps(act))):
        assert xdecode.term_map_cache(other).info()["maps"] == 0  # the copy computes its own
        assert xdecode.term_map_cache(act).info()["maps"] == 3
