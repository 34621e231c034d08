"""The user-facing doors of ALE Monte Carlo inference (issue 13, points 4-5).

``maps.coact.fwe`` on an ALE seed, ``act.coact.contrast`` on an ALE cube and
``act.coact.seed(roi, null="scale")`` must give exactly what the
:mod:`xcoact.stats.ale_null` functions give on the same foci (the selected studies'
peaks in sorted-id order, each with its kernel) and the same seed.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import xcoact
from xcoact.counts import cube_peaks
from xcoact.errors import ParameterError, XcoactWarning
from xcoact.stats import ale, ale_null

AMYGDALA = xcoact.datasets.amygdala_roi_path()
SGACC = xcoact.datasets.sgacc_roi_path()
SEMANTIC = os.path.join(os.path.dirname(__file__), "data", "semantic_knowledge_children.txt")

pytestmark = pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")


@pytest.fixture(scope="module")
def act():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.activations(xcoact.datasets.sample_database_path(), preset="nimare", kernel="ale", sample_size=20)


@pytest.fixture(scope="module")
def maps(act):
    return act.coact.seed(AMYGDALA)


def foci(act, ids):
    """The peaks of the studies ``ids`` in sorted-id order: (ijk, study codes), read independently of the doors."""
    peaks = cube_peaks(act)
    where = {s: i for i, s in enumerate(act["study"].values)}
    ijk, study = [], []
    for code, sid in enumerate(sorted(ids, key=str)):
        s = where[sid]
        ijk.append(peaks.ijk[peaks.peak_ptr[s] : peaks.peak_ptr[s + 1]])
        study.append(np.full(len(ijk[-1]), code))
    return np.concatenate(ijk), np.concatenate(study), peaks


def in_mask(ds, name, grid):
    return np.asarray(ds[name].transpose("x", "y", "z").values).reshape(-1)[grid.mask_flat]


def test_fwe_on_an_ale_seed_is_ale_fwe_of_its_foci(act, maps):
    out = maps.coact.fwe(n_iter=12, seed=5)
    ijk, study, peaks = foci(act, list(maps["selected_id"].values))
    direct = ale_null.ale_fwe(ijk, study, peaks.grid, sample_size=20, n_iter=12, seed=5)
    grid = peaks.grid
    names = [k for k in direct if k.startswith(("logp_", "z_"))]
    assert len(names) == 6
    for name in names:
        np.testing.assert_array_equal(in_mask(out, name, grid), direct[name])
        assert out[name].dtype == direct[name].dtype
    for name in ("values_level-voxel", "values_desc-size_level-cluster", "values_desc-mass_level-cluster"):
        np.testing.assert_array_equal(out[name].values, direct[name])
    # the seed's own maps are the ALE of the same foci: stat equal to ale_fwe's
    np.testing.assert_array_equal(in_mask(out, "stat", grid), direct["stat"])
    assert "z" not in out.data_vars and "z_map" in out.data_vars
    assert out.attrs["fwe_n_iter"] == 12 and out.attrs["fwe_seed"] == 5
    assert out.attrs["fwe_threshold"] == pytest.approx(direct["threshold"])
    assert out["values_level-voxel"].max() > 0  # a real null, not zeros


def test_fwe_via_seed_and_a_recorded_fresh_seed(act, maps):
    via_seed = act.coact.seed(AMYGDALA, fwe=3, fwe_seed=2)
    again = maps.coact.fwe(n_iter=3, seed=2)
    np.testing.assert_array_equal(via_seed["values_level-voxel"].values, again["values_level-voxel"].values)
    fresh = maps.coact.fwe(n_iter=2, cluster_p=0.01)
    repeat = maps.coact.fwe(n_iter=2, seed=fresh.attrs["fwe_seed"], cluster_p=0.01)
    np.testing.assert_array_equal(fresh["values_level-voxel"].values, repeat["values_level-voxel"].values)
    assert fresh.attrs["fwe_cluster_p"] == 0.01


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0.01}, r"alpha=0.01 applies to the MKDA permutation test only; ALE FWE .* takes n_iter=, seed="),
        ({"connectivity": 6}, r"connectivity=6 applies to the MKDA permutation test only"),
        ({"early_stop": True}, r"early_stop=True applies to the MKDA"),
        ({"batch_size": 10}, r"batch_size=10 applies to the MKDA"),
        ({"n_iter": "bonferroni"}, r"n_iter='bonferroni' applies to the MKDA"),
        ({"n_iter": 0}, r"n_iter=0; expected an int >= 1"),
        ({"seed": -1}, r"seed=-1; expected an int >= 0"),
    ],
)
def test_fwe_refuses_mkda_only_parameters(maps, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        maps.coact.fwe(**{"n_iter": 2, "seed": 0, **kwargs})


def test_fwe_refuses_other_ale_results_and_lost_cubes(act, maps):
    c = act.coact.contrast(AMYGDALA, SGACC, n_iter=2, seed=0)
    with pytest.raises(ParameterError, match="applies to one ALE seed's maps"):
        c.coact.fwe(n_iter=2, seed=0)
    bare = maps.copy()
    bare.encoding.clear()
    with pytest.raises(ParameterError, match="no longer carry it"):
        bare.coact.fwe(n_iter=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        other = xcoact.activations(
            xcoact.datasets.sample_database_path(), preset="nimare", kernel="ale", sample_size=30
        )
    with pytest.raises(ParameterError, match=r"not the cube these ALE maps were computed from"):
        maps.coact.fwe(act=other, n_iter=2, seed=0)


def test_contrast_on_an_ale_cube_is_ale_subtraction(act):
    c = act.coact.contrast(AMYGDALA, SGACC, n_iter=16, seed=9)
    assert hasattr(c["p_desc-group1MinusGroup2"].data, "dask")  # lazy, as the MKDA contrast
    ma = []
    for name in ("selected_id", "selected_b_id"):
        ijk, study, peaks = foci(act, list(c[name].values))
        ma.append([ale.study_ma(ijk[study == s], peaks.grid, sample_size=20) for s in range(study.max() + 1)])
    direct = ale_null.ale_subtraction(ma[0], ma[1], peaks.grid.n_mask, n_iter=16, seed=9)
    for name in (
        "stat_desc-group1MinusGroup2",
        "p_desc-group1MinusGroup2",
        "z_desc-group1MinusGroup2",
        "logp_desc-group1MinusGroup2",
    ):
        values = in_mask(c, name, peaks.grid)
        np.testing.assert_array_equal(values, direct[name])
        assert c[name].dtype == direct[name].dtype
    assert np.abs(direct["stat_desc-group1MinusGroup2"]).max() > 0
    assert (c.attrs["n_iter"], c.attrs["null_seed"], c.attrs["n_a"], c.attrs["n_b"]) == (16, 9, 8, 2)
    assert not set(c["selected_id"].values) & set(c["selected_b_id"].values)


def test_contrast_errors(act):
    with pytest.raises(ParameterError, match=r"n_iter=0; expected an int >= 1"):
        act.coact.contrast(AMYGDALA, SGACC, n_iter=0)
    with pytest.raises(ParameterError, match=r"both='x' is not known"):
        act.coact.contrast(AMYGDALA, SGACC, both="x", n_iter=2, seed=0)
    mkda = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    with pytest.raises(ParameterError, match=r"n_iter= and seed= apply to ALE cubes' contrasts"):
        mkda.coact.contrast(AMYGDALA, SGACC, 0.05, n_iter=10)


def test_scale_seed_is_ale_scale_against_the_databases_foci(act, maps):
    s = act.coact.seed(AMYGDALA, null="scale", n_iter=8, null_seed=4)
    assert hasattr(s["p"].data, "dask")  # lazy, as the seed maps
    ijk, study, peaks = foci(act, list(s["selected_id"].values))
    direct = ale_null.ale_scale(ijk, study, peaks.grid, peaks.ijk, sample_size=20, n_iter=8, seed=4)
    for ours, theirs in (("stat", "stat"), ("p", "p"), ("z_map", "z"), ("logp", "logp")):
        np.testing.assert_array_equal(in_mask(s, ours, peaks.grid), direct[theirs])
        assert s[ours].dtype == direct[theirs].dtype
    np.testing.assert_array_equal(in_mask(s, "stat", peaks.grid), in_mask(maps, "stat", peaks.grid))
    assert len(peaks.ijk) > len(ijk)  # the base is every focus of the database, not the selection's
    assert (s.attrs["null_method"], s.attrs["n_iter"], s.attrs["null_seed"]) == ("scale", 8, 4)
    assert (direct["p"] < 1).any() and (direct["p"] > 1 / 8).any()


def test_scale_errors(act):
    with pytest.raises(ParameterError, match=r"null='perm' is not known; expected None .* or 'scale'"):
        act.coact.seed(AMYGDALA, null="perm")
    with pytest.raises(ParameterError, match=r"n_iter= and null_seed= apply with null='scale'"):
        act.coact.seed(AMYGDALA, n_iter=5)
    with pytest.raises(ParameterError, match=r"fwe= corrects the approximate-null ALE maps"):
        act.coact.seed(AMYGDALA, null="scale", n_iter=2, fwe=2)
    mkda = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    with pytest.raises(ParameterError, match=r"null=, n_iter= and null_seed= apply to ALE cubes"):
        mkda.coact.seed(AMYGDALA, 0.1, null="scale")


def test_fwe_with_each_studys_sample_size_from_a_sleuth_file():
    act = xcoact.activations(SEMANTIC, kernel="ale", preset="nimare")  # kernels from '// Subjects=N'
    maps = act.coact.seed((-40, 20, 30), r=20)
    out = maps.coact.fwe(n_iter=4, seed=7)
    ids = list(maps["selected_id"].values)
    ijk, study, peaks = foci(act, ids)
    sizes = dict(zip(maps["selected_id"].values, maps["sample_size"].values))
    n = np.array([sizes[s] for s in sorted(ids, key=str)])
    assert len(set(n)) > 1  # studies of different sizes: each keeps its own kernel
    direct = ale_null.ale_fwe(ijk, study, peaks.grid, sample_size=n, n_iter=4, seed=7)
    for name in ("z_level-voxel", "logp_desc-mass_level-cluster", "values_desc-size_level-cluster"):
        got = out[name].values if name.startswith("values") else in_mask(out, name, peaks.grid)
        np.testing.assert_array_equal(got, direct[name])
    np.testing.assert_array_equal(in_mask(out, "stat", peaks.grid), direct["stat"])
