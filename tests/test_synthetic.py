"""xcoact.datasets.synthetic: contract, determinism, the peak-count distribution, the pool and the mask.

Voxels are checked against the brain mask and affine loaded independently
(conftest's ``mni_mask`` and ``affine_mni``), not through ``Grid``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import data_file
from scipy.spatial import cKDTree

import xcoact
from xcoact.datasets import SYNTHETIC_NB_SHAPE, synthetic
from xcoact.errors import ParameterError, SpaceWarning, XcoactWarning
from xcoact.table import make_table

V7 = data_file("data-neurosynth_version-7_coordinates.tsv.gz")


@functools.cache
def _synthetic(n_studies: int, seed: int = 0, **kwargs) -> xr.Dataset:
    return synthetic(n_studies, seed=seed, **kwargs)


@functools.cache
def _v7_table() -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.read_database(V7)


def _xyz(table) -> np.ndarray:
    return np.column_stack([table[c].values for c in "xyz"])


def _counts(table) -> np.ndarray:
    """Peaks per study, in study order."""
    _, counts = np.unique(table["study_id"].values, return_counts=True)
    return counts


def _voxels_in_mask(xyz, mask, affine) -> np.ndarray:
    """Whether each peak's voxel (round half to even, as Neurosynth) is in the box and the mask."""
    ijk = np.round((xyz - affine[:3, 3]) / np.diag(affine)[:3]).astype(int)
    inside = np.all((ijk >= 0) & (ijk < mask.shape), axis=1)
    inside[inside] = mask[tuple(ijk[inside].T)]
    return inside


def _point_pool(x, y, z) -> xr.Dataset:
    return make_table([1], [x], [y], [z], ["MNI"], database="one point", fmt="test")


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def test_meets_the_table_contract():
    table = _synthetic(300, seed=4)
    n = table.sizes["peak"]
    assert tuple(table.dims) == ("peak",)
    assert set(table.data_vars) == {"study_id", "x", "y", "z", "space", "line"}
    assert all(table[v].dims == ("peak",) for v in table.data_vars)
    assert table["study_id"].dtype == np.int64
    for c in "xyz":
        assert table[c].dtype == np.float64
        assert np.isfinite(table[c].values).all()
        assert table[c].attrs["units"] == "mm"
    assert table["space"].dtype.kind == "U"
    assert (table["space"].values == "MNI").all()
    assert table["line"].dtype == np.int64
    assert (table["line"].values == 0).all()
    assert table.attrs == {
        "database": "synthetic(n_studies=300, seed=4)",
        "format": "synthetic",
        "n_peaks": n,
        "n_studies": 300,
    }
    # ids 1..n_studies, each study's rows together, in increasing order
    ids = table["study_id"].values
    assert ids[0] == 1 and ids[-1] == 300
    assert np.all(np.diff(ids) >= 0) and set(np.diff(ids).tolist()) <= {0, 1}


@pytest.mark.filterwarnings("ignore::xcoact.errors.SpaceWarning")
def test_database_name_records_non_default_arguments():
    table = synthetic(3, pool=V7, seed=2, mean_peaks=5, jitter=2.5)
    assert table.attrs["database"] == f"synthetic(n_studies=3, seed=2, pool={V7!r}, mean_peaks=5, jitter=2.5)"


@pytest.mark.filterwarnings("ignore::xcoact.errors.SpaceWarning")
def test_same_arguments_give_an_identical_table():
    xr.testing.assert_identical(synthetic(250, seed=7), synthetic(250, seed=7))
    xr.testing.assert_identical(synthetic(40, pool=V7, seed=1, jitter=3), synthetic(40, pool=V7, seed=1, jitter=3))


def test_a_different_seed_gives_a_different_table():
    a, b = _synthetic(250, seed=0), synthetic(250, seed=1)
    assert not _counts(a).tolist() == _counts(b).tolist()
    n = min(a.sizes["peak"], b.sizes["peak"])
    assert not np.array_equal(a["x"].values[:n], b["x"].values[:n])


# --------------------------------------------------------------------------------------
# Peaks per study
# --------------------------------------------------------------------------------------


def test_peak_counts_mean_35_skewed_minimum_1():
    counts = _counts(_synthetic(20_000))
    assert counts.size == 20_000
    assert abs(counts.mean() - 35) < 2
    assert counts.min() == 1
    assert np.median(counts) < counts.mean() - 3  # right-skewed
    skew = np.mean((counts - counts.mean()) ** 3) / counts.std() ** 3
    assert skew > 1
    # 1 + negative binomial(r, p): variance m + m**2 / r with m = mean - 1
    m = 34.0
    assert counts.var() == pytest.approx(m + m**2 / SYNTHETIC_NB_SHAPE, rel=0.1)


@pytest.mark.parametrize("mean_peaks", [1.0, 5.0, 80.0])
def test_mean_peaks_sets_the_mean(mean_peaks):
    counts = _counts(synthetic(4000, mean_peaks=mean_peaks, seed=5))
    assert counts.min() >= 1
    assert counts.mean() == pytest.approx(mean_peaks, rel=0.05)
    if mean_peaks == 1.0:
        assert (counts == 1).all()


def test_143710_studies():
    """The size of the issue: Neurosynth v7 x 10 studies, about 5 million peaks.

    Its time is a benchmark's business (benchmarks/run.py prepares this database), not a test's.
    """
    table = synthetic(143_710)
    assert table.attrs["n_studies"] == 143_710
    assert 4_700_000 < table.attrs["n_peaks"] < 5_300_000


# --------------------------------------------------------------------------------------
# Where the peaks are
# --------------------------------------------------------------------------------------


def test_every_peak_voxel_is_in_the_brain_mask(mni_mask, affine_mni):
    table = _synthetic(20_000)
    assert _voxels_in_mask(_xyz(table), mni_mask, affine_mni).all()


def test_bundled_pool_has_peaks_outside_the_mask_that_are_never_copied(mni_mask, affine_mni, sample_table):
    """With no jitter every peak is a pool peak, and never one of those outside the mask."""
    pool = _xyz(sample_table)
    inside = _voxels_in_mask(pool, mni_mask, affine_mni)
    assert (~inside).sum() == 97
    table = synthetic(2000, jitter=0, seed=3)
    dist, idx = cKDTree(pool).query(_xyz(table))
    assert (dist == 0).all()
    # ~69,000 uniform draws from 2,598 rows hit every one: the distinct peaks are exactly the in-mask pool's
    assert set(map(tuple, _xyz(table))) == set(map(tuple, pool[inside]))
    assert not set(map(tuple, _xyz(table))) & (set(map(tuple, pool[~inside])) - set(map(tuple, pool[inside])))


def test_jitter_is_isotropic_gaussian_with_sd_jitter():
    """One deep pool point: the peaks scatter around it with sd ``jitter`` on each axis."""
    centre = np.array([0.0, -20.0, 10.0])
    table = synthetic(3000, pool=_point_pool(*centre), jitter=8.0, seed=0)
    offsets = _xyz(table) - centre
    assert np.abs(offsets.mean(axis=0)).max() < 0.2
    np.testing.assert_allclose(offsets.std(axis=0), 8.0, rtol=0.05)
    assert np.corrcoef(offsets.T)[np.triu_indices(3, 1)].max() < 0.05
    # a smaller jitter scales the scatter
    small = synthetic(3000, pool=_point_pool(*centre), jitter=2.0, seed=0)
    np.testing.assert_allclose((_xyz(small) - centre).std(axis=0), 2.0, rtol=0.05)


@pytest.mark.parametrize("jitter", [8.0, 2.0])
def test_each_peak_is_within_6_sd_of_a_pool_peak(jitter, sample_table):
    table = synthetic(3000, jitter=jitter, seed=1)
    dist, _ = cKDTree(_xyz(sample_table)).query(_xyz(table))
    assert dist.max() < 6 * jitter


def test_near_the_edge_peaks_are_re_jittered_into_the_mask(mni_mask, affine_mni):
    """A pool point on the brain's edge: about half the first draws fall outside, yet every peak is in."""
    edge = np.array([0.0, 66.0, 0.0])  # frontal pole: the mask ends at y = 68 on this line
    assert _voxels_in_mask(edge[None], mni_mask, affine_mni).all()
    assert not _voxels_in_mask(edge[None] + [0, 8, 0], mni_mask, affine_mni).any()
    table = synthetic(500, pool=_point_pool(*edge), jitter=8.0, seed=2)
    assert _voxels_in_mask(_xyz(table), mni_mask, affine_mni).all()
    # re-drawn, not clipped: no pile-up on the mask's edge, and the scatter is still wide
    y = table["y"].values
    assert np.unique(y).size == y.size
    assert y.std() > 3


def test_pool_v7_path(mni_mask, affine_mni):
    with pytest.warns(SpaceWarning, match="UNKNOWN") as caught:
        table = synthetic(500, pool=V7, seed=0)
    assert caught[0].filename == __file__  # the reader's warning points at this call
    assert table.attrs["n_studies"] == 500
    assert _voxels_in_mask(_xyz(table), mni_mask, affine_mni).all()
    pool = _xyz(_v7_table())
    dist, _ = cKDTree(pool).query(_xyz(table))
    assert dist.max() < 6 * 8.0
    # the v7 pool, not the bundled sample: with a small jitter the peaks hug the v7 peaks
    tight = synthetic(500, pool=_v7_table(), seed=0, jitter=0.5)
    near_v7, _ = cKDTree(pool).query(_xyz(tight))
    near_sample, _ = cKDTree(_xyz(_synthetic_sample_pool())).query(_xyz(tight))
    assert near_v7.max() < 3
    assert np.median(near_sample) > np.median(near_v7)


def _synthetic_sample_pool():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.read_database(xcoact.datasets.sample_database_path())


def test_pool_table_equals_pool_path():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        by_path = synthetic(60, pool=V7, seed=9)
    xr.testing.assert_identical(synthetic(60, pool=_v7_table(), seed=9), by_path)


def test_default_pool_is_the_bundled_sample(sample_table):
    default = _synthetic(100, seed=6)
    explicit = synthetic(100, pool=sample_table, seed=6)
    for v in ("study_id", "x", "y", "z", "space"):
        np.testing.assert_array_equal(default[v].values, explicit[v].values)
    assert "pool=" in explicit.attrs["database"] and "pool=" not in default.attrs["database"]


def test_custom_grid_mask_is_respected(mni_mask, affine_mni):
    upper = mni_mask.copy()
    upper[:, :, :50] = False  # keep z >= 28 mm only
    grid = xcoact.Grid(mni_mask.shape, affine_mni, upper, name="upper brain")
    table = synthetic(300, grid=grid, seed=0)
    assert table["z"].values.min() >= 27  # voxel centre 28, rounding half a voxel down
    assert _voxels_in_mask(_xyz(table), upper, affine_mni).all()
    assert table.attrs["database"].endswith("grid='upper brain')")


# --------------------------------------------------------------------------------------
# Downstream
# --------------------------------------------------------------------------------------


def test_feeds_activations_and_a_seed_gives_maps():
    table = _synthetic(200, seed=1)
    act = xcoact.activations(table, r=6)
    assert act.sizes["study"] == 200
    assert act["study"].values.tolist() == list(range(1, 201))
    maps = xcoact.seed(act, [[0, 20, 28]], threshold=0.1, r=10)
    assert 0 < maps.attrs["n_selected"] < 200
    assert maps.attrs["database"] == "synthetic(n_studies=200, seed=1)"
    p_a = maps[xcoact.map_names()[0]].values
    assert np.isfinite(p_a).sum() > 100_000
    assert np.nanmax(p_a) > 0


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_studies": 0}, r"n_studies=0 .*integer >= 1"),
        ({"n_studies": -5}, r"n_studies=-5 .*integer >= 1"),
        ({"n_studies": 2.5}, r"n_studies=2.5 .*integer >= 1"),
        ({"n_studies": True}, r"n_studies=True .*integer >= 1"),
        ({"n_studies": "10"}, r"n_studies='10' .*integer >= 1"),
        ({"seed": -1}, r"seed=-1 .*integer >= 0"),
        ({"seed": 1.0}, r"seed=1.0 .*integer >= 0"),
        ({"mean_peaks": 0.5}, r"mean_peaks=0.5 .*finite number >= 1"),
        ({"mean_peaks": float("nan")}, r"mean_peaks=nan .*finite number >= 1"),
        ({"mean_peaks": float("inf")}, r"mean_peaks=inf .*finite number >= 1"),
        ({"jitter": -1}, r"jitter=-1 .*finite number >= 0"),
        ({"jitter": float("nan")}, r"jitter=nan .*finite number >= 0"),
        ({"jitter": "8"}, r"jitter='8' .*finite number >= 0"),
        ({"pool": 42}, r"pool=int .*None .*path .*coordinate table"),
        ({"pool": xr.Dataset({"x": ("peak", [1.0])})}, r"pool: .*no variable\(s\) \['y', 'z'\]"),
        ({"grid": "mni"}, r"grid=str .*xcoact.Grid"),
    ],
)
def test_argument_errors_name_the_argument_and_range(kwargs, match):
    args = {"n_studies": 10, **kwargs}
    with pytest.raises(ParameterError, match=match):
        synthetic(**args)


def test_pool_entirely_outside_the_mask_is_an_error():
    with pytest.raises(ParameterError, match=r"pool: none of its 1 peak\(s\) falls inside the grid's brain mask"):
        synthetic(10, pool=_point_pool(0.0, 0.0, 200.0))


def test_pool_with_nan_or_no_peaks_is_an_error():
    nan_pool = xr.Dataset({c: ("peak", [0.0, np.nan if c == "y" else 0.0]) for c in "xyz"})
    with pytest.raises(ParameterError, match=r"pool: 1 peak\(s\) have a NaN or infinite coordinate"):
        synthetic(10, pool=nan_pool)
    with pytest.raises(ParameterError, match=r"pool: no peaks"):
        synthetic(10, pool=xr.Dataset({c: ("peak", np.zeros(0)) for c in "xyz"}))


def test_a_jitter_too_large_for_the_mask_is_an_error(affine_mni):
    """One in-mask voxel and a 1 m jitter: re-drawing cannot succeed, and says so instead of looping."""
    mask = np.zeros((91, 109, 91), dtype=bool)
    mask[45, 63, 36] = True  # the voxel of (0, 0, 0)
    grid = xcoact.Grid(mask.shape, affine_mni, mask, name="one voxel")
    with pytest.raises(ParameterError, match=r"jitter=1000 mm is too large for this grid: after 1000 re-draws"):
        synthetic(2, pool=_point_pool(0.0, 0.0, 0.0), jitter=1000.0, grid=grid)
    # with no jitter the same pool and grid work: every peak is the pool point
    table = synthetic(2, pool=_point_pool(0.0, 0.0, 0.0), jitter=0.0, grid=grid)
    assert (_xyz(table) == 0).all()


def test_missing_pool_file_is_the_readers_error(tmp_path):
    with pytest.raises(xcoact.DatabaseFileNotFoundError, match="no such file"):
        synthetic(10, pool=tmp_path / "nope.txt")


def test_numpy_integers_are_accepted():
    xr.testing.assert_identical(synthetic(np.int64(20), seed=np.uint8(3)), synthetic(20, seed=3))
