"""ALE profiles of coactivation-based parcellation (issue 14, point 2: ``profile="ale"``).

A pool's ALE profile is checked against the ALE engine's MACM of the same
studies (``act.coact.seed`` on an ALE cube, ``select="nearest"``) and against
NiMARE 0.22.1's ``ALE`` on those studies; the correlations that
``parcellate`` accumulates slab by slab against ``numpy.corrcoef`` of the
explicit profiles; and the whole procedure on the planted database of
``test_parcellate.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import loopback_cluster, nimare_sample_dataset
from nimare_support import NIMARE_MARKS, quiet_nimare  # noqa: F401 (an autouse fixture)
from test_parcellate import _box_roi, _planted_database

import xcoact
from xcoact.analyses import parcellate as parc
from xcoact.errors import ParameterError
from xcoact.report import parcellation_methods_text

pytestmark = NIMARE_MARKS
FILTERS = [8, 12, 16]


@pytest.fixture(scope="module")
def cubes():
    """The bundled sample under NiMARE's preset: the boolean cube and the ALE cube (sample size 20)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = xcoact.datasets.sample_database_path()
        return xcoact.activations(path, preset="nimare"), xcoact.activations(
            path, preset="nimare", kernel="ale", sample_size=20
        )


@pytest.fixture(scope="module")
def roi(tmp_path_factory):
    """A 36-voxel box in the right amygdala, a real NIfTI file."""
    return _box_roi(tmp_path_factory.mktemp("roi") / "box.nii.gz", (20, 26), (-6, -2), (-20, -16))


def test_an_ale_profile_is_the_ale_macm_of_the_pool(cubes, roi):
    act, ale = cubes
    got = parc.pool_profiles(act, roi, 12, profile="ale", sample_size=20, voxels=[0, 17, 35])
    # the ALE cube's own kernel gives the same numbers as a boolean cube with the size given
    np.testing.assert_array_equal(
        parc.pool_profiles(ale, roi, 12, profile="ale", voxels=[0, 17, 35]).values, got.values
    )
    mask = ale["brain_mask"].values
    for row, flat in zip(got.values, got["voxel"].values):
        i, j, k = np.unravel_index(flat, mask.shape)  # the voxel's centre on the cube's own axes
        maps = ale.coact.seed([[ale["x"].values[i], ale["y"].values[j], ale["z"].values[k]]], select="nearest", k=12)
        stat = maps["stat"].transpose("x", "y", "z").values[mask]
        assert maps.attrs["n_selected"] == 12 and stat.max() > 0.02
        np.testing.assert_allclose(row, stat, rtol=1e-6, atol=1e-9)  # the engine rounds its stat to float32


def test_an_ale_profile_is_nimares_ale_of_the_pool(cubes, roi):
    from nimare.meta.cbma.ale import ALE

    act, _ = cubes
    ids = parc.pool_ids(act, roi, 12)[35]
    result = ALE(kernel__sample_size=20).fit(nimare_sample_dataset().slice([f"{s}-1" for s in ids]))
    want = result.get_map("stat", return_type="array").astype(np.float64)
    got = parc.pool_profiles(act, roi, 12, profile="ale", sample_size=20, voxels=[35]).values[0]
    assert want.max() > 0.02
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_correlations_of_parcellate_are_corrcoef_of_the_explicit_profiles(cubes, roi, monkeypatch):
    """What parcellate clusters: per filter, r of the slab-by-slab sums equals numpy.corrcoef of whole profiles."""
    act, _ = cubes
    seen = []
    real = parc._analyse
    monkeypatch.setattr(parc, "_analyse", lambda stats, *a: seen.append(stats) or real(stats, *a))
    parc.parcellate(act, roi, k=[2], filters=FILTERS, n_init=2, profile="ale", sample_size=20).load()
    cross, sums, n_vox, inverse = seen[0]
    assert n_vox == act["brain_mask"].values.sum()
    # pools shared by several voxels are formed once, and spread back to their voxels
    assert len(cross[0]) < len(inverse[0]) == 36
    vox = [0, 5, 17, 30, 35]
    for f, n in enumerate(FILTERS):
        r = parc._pearson(cross[f], sums[f], n_vox)[np.ix_(inverse[f], inverse[f])]
        prof = parc.pool_profiles(act, roi, n, profile="ale", sample_size=20, voxels=vox).values
        np.testing.assert_allclose(r[np.ix_(vox, vox)], np.corrcoef(prof), rtol=0, atol=1e-12)
        assert r[np.ix_(vox, vox)].min() < 0.99  # the pools differ: not a trivial all-ones matrix


def test_ale_cube_and_sized_boolean_cube_give_the_same_parcellation(cubes, roi):
    act, ale = cubes
    kw = dict(k=[2, 3], filters=FILTERS, n_init=3, profile="ale")
    a = parc.parcellate(ale, roi, **kw, compute=True)
    b = act.coact.parcellate(roi, **kw, sample_size=20, compute=True)
    for name in ("labels", "filter_labels", "criteria", "k_suggested"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a.attrs["profile"] == "ale" and a.attrs["profile_kernel"] == "ALEKernel sample_size=20"
    text = parcellation_methods_text(a)[0]
    assert (
        "(profile ale, ALEKernel sample_size=20)" in text and "peaks modelled by the ALEKernel sample_size=20)" in text
    )
    assert "peaks as spheres of radius 10 mm" in parcellation_methods_text(b)[0]  # NiMARE's MKDA cube
    mkda = act.coact.parcellate(roi, **{**kw, "profile": "mkda"}, compute=True)
    assert not np.array_equal(mkda["criteria"].values, a["criteria"].values)  # another profile, other numbers


def test_planted_halves_are_recovered_with_ale_profiles(tmp_path):
    roi = _box_roi(tmp_path / "roi.nii.gz", (10, 30), (-2, 2), (10, 14))
    act = xcoact.activations(_planted_database(), r=6)
    res = act.coact.parcellate(roi, k=[2, 3], filters=[10, 20], n_init=3, profile="ale", sample_size=20).load()
    at_k2 = res["labels"].sel(k=2).transpose("x", "y", "z").values.ravel()[res["voxel"].values]
    vx = res["voxel_x"].values
    right, left = at_k2[vx >= 26], at_k2[vx <= 14]
    assert len(set(right)) == 1 and len(set(left)) == 1 and right[0] != left[0]


@pytest.mark.parametrize(
    "which, kwargs, message",
    [
        (0, {"profile": "gauss"}, r"profile='gauss' is not known; expected one of 'mkda' .*, 'pFgA' .* or 'ale' "),
        (0, {"profile": "ale"}, r"profile='ale' on a binary cube needs the ALE kernel's size: sample_size=N"),
        (0, {"sample_size": 20}, r"sample_size/fwhm size the ALE kernel of profile='ale'; profile='mkda' has none"),
        (1, {}, r"profile='mkda' reads a boolean cube; the profile of an ALE cube is profile='ale'"),
        (1, {"profile": "ale", "fwhm": 8}, r"this ALE cube has its own: drop them"),
    ],
)
def test_bad_profile_arguments_are_named(cubes, roi, which, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        parc.parcellate(cubes[which], roi, k=[2], filters=[8], **kwargs)


def test_ale_labels_identical_on_a_two_worker_local_cluster(cubes, roi):
    """The ALE graph (a task per slab, then a sum) runs on dask.distributed with the threaded result."""
    distributed = pytest.importorskip("distributed")
    import dask

    act, _ = cubes
    kw = dict(k=[2, 3], filters=[8, 12], n_init=3, profile="ale", sample_size=20)
    with dask.config.set(scheduler="threads"):
        local = parc.parcellate(act, roi, **kw).compute()
    with loopback_cluster() as client:
        with distributed.get_task_stream(client) as stream:
            remote = parc.parcellate(act, roi, **kw).compute()
        ran = {t["worker"] for t in stream.data}
        slabs = {t["worker"] for t in stream.data if "_ale_slab" in str(t["key"])}
    assert len(ran) == 2 and slabs  # the slabs ran on the cluster's workers
    for name in ("labels", "filter_labels", "criteria", "k_suggested"):
        np.testing.assert_array_equal(remote[name].values, local[name].values)
