"""Coactivation-based parcellation (xcoact.analyses.parcellate): each step against an independent computation.

Pools and profiles are checked against the single-seed route (``act.coact.seed``
with ``select="nearest"``), the correlations against ``numpy.corrcoef`` of the
explicit profiles, k-means / silhouette / VI against scikit-learn or hand
values, and the whole procedure on a planted structure: a synthetic database
where the two halves of an ROI coactivate with different regions.
"""

from __future__ import annotations

import inspect
import os
import warnings

import dask.array as da
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import loopback_cluster

import xcoact
from xcoact.analyses import parcellate as parc
from xcoact.errors import OutputError, ParameterError, SelectionError

# scikit-learn (the "test" extra; NiMARE needs it too) is the independent reference of k-means, VI and silhouette


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(xcoact.datasets.sample_database_path(), r=6)


def _box_roi(path, x, y, z) -> str:
    """A box ROI (voxel centres within the mm ranges) on the MNI152 2 mm grid, saved as a real NIfTI file."""
    grid = xcoact.mni152_2mm()
    gx, gy, gz = np.meshgrid(grid.x, grid.y, grid.z, indexing="ij")
    vol = ((gx >= x[0]) & (gx <= x[1]) & (gy >= y[0]) & (gy <= y[1]) & (gz >= z[0]) & (gz <= z[1])).astype(np.uint8)
    nib.save(nib.Nifti1Image(vol, grid.affine), path)
    return str(path)


def _planted_database(seed: int = 0) -> pd.DataFrame:
    """Two groups of 40 studies: one reports a peak in the ROI's right part (x 22..32 mm) and peaks at P, the
    other a peak in its left part (x 8..18 mm) and peaks at Q; 80 more studies report peaks far from the ROI."""
    rng = np.random.default_rng(seed)
    grid = xcoact.mni152_2mm()
    rows = []
    p_xyz, q_xyz = np.array([-40.0, -60.0, 40.0]), np.array([-40.0, 40.0, 0.0])
    for sid in range(1, 81):
        in_a = sid <= 40
        lo, hi = (22, 32) if in_a else (8, 18)
        rows.append((sid, rng.uniform(lo, hi), rng.uniform(-2, 2), rng.uniform(10, 14)))
        target = p_xyz if in_a else q_xyz
        for _ in range(3):
            rows.append((sid, *(target + rng.normal(0, 3, 3))))
    # background: in-mask voxel centres more than 40 mm from the ROI
    flat = grid.mask_flat
    i, j, k = np.unravel_index(flat, grid.shape)
    xyz = np.stack([grid.x[i], grid.y[j], grid.z[k]], axis=1)
    far = xyz[np.linalg.norm(xyz - [20, 0, 12], axis=1) > 40]
    for sid in range(81, 161):
        for c in far[rng.choice(len(far), 3, replace=False)]:
            rows.append((sid, *c))
    frame = pd.DataFrame(rows, columns=["id", "x", "y", "z"])
    frame["space"] = "MNI"
    return frame


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    roi = _box_roi(folder / "roi.nii.gz", (10, 30), (-2, 2), (10, 14))
    act = xcoact.activations(_planted_database(), r=6)
    return act, roi


# --- pools and profiles vs the single-seed route -----------------------------------------------------


def test_pools_are_the_studies_a_nearest_seed_selects(cube):
    """Each voxel's pool is what act.coact.seed([[x, y, z]], select="nearest", k=N) selects at its centre."""
    roi = xcoact.datasets.amygdala_roi_path()
    pools = parc.pool_ids(cube, roi, 20)
    grid, _, flat, xyz = parc._roi_voxels(cube, roi, 6.0)
    assert len(pools) == len(flat) == 366
    for v in (0, 150, 365):
        maps = cube.coact.seed([xyz[v].tolist()], select="nearest", k=20)
        assert sorted(pools[v].tolist()) == sorted(maps["selected_id"].values.tolist())
    # different voxels do get different pools (the test could not pass by accident)
    assert sorted(pools[0].tolist()) != sorted(pools[365].tolist())


@pytest.mark.parametrize("reach", [("nearest", 5), ("nearest", 60), ("distance", 8.0)])
def test_pruned_distances_give_the_pools_of_all_distances(cube, reach):
    """Skipping the peaks no pool can reach changes no pool (and the distances of pooled studies are exact)."""
    _, _, _, xyz = parc._roi_voxels(cube, xcoact.datasets.amygdala_roi_path(), 6.0)
    full = parc._distances(cube, xyz)
    pruned = parc._distances(cube, xyz, reach)
    assert np.isinf(pruned).any() and np.isfinite(full).all()
    for f in [reach[1], max(1, reach[1] // 2)] if reach[0] == "nearest" else [reach[1], 4.0]:
        a, b = parc._pools_of(full, f, reach[0]), parc._pools_of(pruned, f, reach[0])
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert all(np.array_equal(full[v, p], pruned[v, p]) for v, p in enumerate(a))


@pytest.mark.parametrize("profile, name", [("mkda", "pAgF"), ("pFgA", "pFgA")])
def test_profiles_are_the_single_seed_maps(cube, profile, name):
    """A pool's 'mkda' profile is the seed's pAgF map, its 'pFgA' profile the seed's pFgA map."""
    roi = xcoact.datasets.amygdala_roi_path()
    voxels = [3, 200]
    prof = parc.pool_profiles(cube, roi, 25, profile=profile, voxels=voxels)
    assert isinstance(prof.data, da.Array)
    prof = prof.values
    _, _, flat, xyz = parc._roi_voxels(cube, roi, 6.0)
    grid = xcoact.mni152_2mm()
    for row, v in enumerate(voxels):
        maps = cube.coact.seed([xyz[v].tolist()], select="nearest", k=25)
        expected = maps[name].transpose("x", "y", "z").values[grid.mask]
        np.testing.assert_allclose(prof[row], expected, rtol=1e-12, atol=0)
        assert prof[row].max() > 0


@pytest.mark.parametrize("profile", ["mkda", "pFgA"])  # ALE profiles: tests/test_parcellate_ale.py
def test_gram_correlations_equal_corrcoef_of_the_profiles(cube, profile):
    """The correlations from the study Gram matrix are numpy.corrcoef of the explicit profiles."""
    roi = xcoact.datasets.amygdala_roi_path()
    voxels = np.arange(0, 366, 23)
    explicit = np.corrcoef(parc.pool_profiles(cube, roi, 60, profile=profile, voxels=voxels).values)
    grid, _, flat, xyz = parc._roi_voxels(cube, roi, 6.0)
    pools = parc._pools_of(parc._distances(cube, xyz[voxels]), 60, "nearest")
    union = np.unique(np.concatenate(pools))
    onehot = np.zeros((len(union), cube.sizes["study"]), dtype=bool)
    onehot[np.arange(len(union)), union] = True
    rows = xcoact.counts.grouped_counts(cube, onehot, grid).compute()
    # the rows packed 52 studies to a group (bits of the weights) decode to the studies' own rows
    packed = xcoact.counts.grouped_counts(cube, parc._packed_weights(union, cube.sizes["study"]), grid).compute()
    unpacked = parc._sparse_rows(packed, len(union))
    assert len(union) > 52 and np.array_equal(unpacked.toarray(), rows)
    total = xcoact.counts.grouped_counts(cube, np.ones((1, cube.sizes["study"]), bool), grid).compute()
    gram = parc._gram([unpacked], total, profile)
    got = parc._correlation(*gram, parc._pool_matrix(pools, union))
    np.testing.assert_allclose(got, explicit, rtol=0, atol=1e-12)
    assert np.ptp(got[np.triu_indices(len(got), 1)]) > 0.01  # not all alike


# --- clustering and criteria against scikit-learn and hand values --------------------------------------


def test_vi_of_the_issue_example_in_bits():
    assert parc.variation_of_information([1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 2, 2, 2]) == 0.9271749993818661
    assert parc.variation_of_information([0, 0, 1, 1], [5, 5, 7, 7]) == 0.0  # same partition, other names


def test_vi_matches_scikit_learn_entropies():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 4, 200), rng.integers(0, 6, 200)

    def h(x):
        p = np.bincount(x) / x.size
        p = p[p > 0]
        return -(p * np.log(p)).sum()

    nats = h(a) + h(b) - 2 * mutual_info_score(a, b)
    assert parc.variation_of_information(a, b) == pytest.approx(nats / np.log(2), rel=1e-12)


def test_silhouette_matches_scikit_learn():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(1)
    pts = rng.normal(size=(60, 5))
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    labels = rng.integers(0, 3, 60)
    labels[0] = 3  # a one-voxel cluster: silhouette 0 there, as in scikit-learn
    assert parc.silhouette(d, labels) == pytest.approx(silhouette_score(d, labels, metric="precomputed"), rel=1e-12)


def _blobs(n_per=30, k=3, dim=200, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    x = np.concatenate([c + 0.6 * rng.normal(size=(n_per, dim)) for c in centres])
    return x, np.repeat(np.arange(k), n_per)


def test_kmeans_finds_the_partition_scikit_learn_finds():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    x, truth = _blobs()
    r = np.corrcoef(x)
    labels, _ = parc.kmeans_correlation(r, 3, n_init=10, seed=0)
    z = x - x.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    theirs = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(z)
    assert adjusted_rand_score(labels, theirs) == 1.0
    assert adjusted_rand_score(labels, truth) == 1.0


def test_kmeans_cost_is_the_correlation_distance_to_explicit_centres():
    """The cost computed from R equals 1 - corr(profile, mean of the standardised members), summed."""
    x, _ = _blobs(n_per=20, k=4, dim=50, seed=4)
    x += np.random.default_rng(5).normal(scale=3.0, size=x.shape)  # overlapping: a real optimisation
    labels, cost = parc.kmeans_correlation(np.corrcoef(x), 4, n_init=5, seed=2)
    z = x - x.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    hand = 0.0
    for c in range(4):
        centre = z[labels == c].mean(axis=0)
        hand += (1 - np.array([np.corrcoef(row, centre)[0, 1] for row in z[labels == c]])).sum()
        # each voxel sits with its nearest centre (a fixed point of the Lloyd iteration)
    centres = np.stack([z[labels == c].mean(axis=0) for c in range(4)])
    sims = (z @ centres.T) / np.linalg.norm(centres, axis=1)
    assert np.array_equal(np.argmax(sims, axis=1), labels)
    assert cost == pytest.approx(hand, rel=1e-10)
    # seeded: the same seed gives the same labels
    assert np.array_equal(parc.kmeans_correlation(np.corrcoef(x), 4, n_init=5, seed=2)[0], labels)


def test_hungarian_matching_undoes_a_permutation():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 5, 100)
    perm = np.array([3, 0, 4, 1, 2])
    noisy = perm[ref]
    noisy[:7] = rng.integers(0, 5, 7)
    matched = parc.match_labels(noisy, ref, 5)
    assert (matched == ref).mean() >= 0.93
    assert np.array_equal(parc.match_labels(perm[ref], ref, 5), ref)


def test_hierarchy_index_and_distance_ratio_hand_values():
    parent = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    child = np.array([0, 0, 1, 1, 2, 2, 2, 1])  # cluster 1 holds two voxels of parent 0 and one of parent 1
    assert parc.hierarchy_index(child, parent) == pytest.approx(100 * 1 / 8)
    d = np.array([[0, 1, 4, 4], [1, 0, 4, 4], [4, 4, 0, 2], [4, 4, 2, 0]], dtype=float)
    assert parc.distance_ratio(d, [0, 0, 1, 1]) == pytest.approx(4 / 1.5)


def test_suggest_k_rule():
    crit = np.full((4, len(parc.CRITERIA)), np.nan)
    col = {n: i for i, n in enumerate(parc.CRITERIA)}
    crit[:, col["deviants_pct"]] = [5, 1, 8, 9]  # K=3 best
    crit[:, col["silhouette"]] = [0.2, 0.5, 0.3, 0.1]  # K=3 best
    crit[:, col["hierarchy_pct"]] = [0, 0, 9, 12]  # K=2 and K=3 (ties count)
    crit[:, col["ratio_change_pct"]] = [np.nan, 30, 5, 1]
    crit[:, col["vi_prev_bits"]] = [1.0, 0.2, 0.9, 0.9]
    crit[:, col["vi_next_bits"]] = [0.2, 0.9, 0.9, np.nan]
    k, votes = parc.suggest_k([2, 3, 4, 5], crit)
    assert k == 3
    assert votes.tolist() == [1, 5, 0, 0]


# --- the whole procedure -----------------------------------------------------------------------------


def test_planted_halves_are_recovered_at_k2_and_suggested(planted):
    act, roi = planted
    res = act.coact.parcellate(roi, k=range(2, 6), filters=[10, 15, 20, 25, 30], n_init=10)
    assert isinstance(res["labels"].data, da.Array) and isinstance(res["criteria"].data, da.Array)
    res = res.compute()
    assert int(res["k_suggested"]) == 2
    lab = res["labels"].sel(k=2)
    assert lab.dtype == np.int16
    roi_mask = res["roi"].values
    assert set(np.unique(lab.values[~roi_mask])) == {0}
    assert set(np.unique(lab.values[roi_mask])) == {1, 2}
    vx = res["voxel_x"].values
    at_k2 = res["labels"].sel(k=2).transpose("x", "y", "z").values.ravel()[res["voxel"].values]
    right, left = at_k2[vx >= 26], at_k2[vx <= 14]
    assert len(set(right)) == 1 and len(set(left)) == 1 and right[0] != left[0]
    # every K has labels 1..K inside the ROI
    for k in res["k"].values:
        assert set(np.unique(res["labels"].sel(k=k).values[roi_mask])) == set(range(1, int(k) + 1))
    crit = res["criteria"].to_pandas()
    assert crit.loc[2, "deviants_pct"] == crit["deviants_pct"].min()
    assert crit.loc[2, "silhouette"] == crit["silhouette"].max()
    assert res["filter_labels"].dims == ("k", "filter", "voxel") and res["in_range"].values.any()


def test_nothing_heavy_before_compute(planted, monkeypatch):
    """parcellate() builds a graph: no grouped count and no clustering run until .compute()."""
    act, roi = planted
    calls = {"counts": 0, "analyse": 0}
    real_counts, real_analyse = xcoact.counts._summed_counts, parc._analyse

    def counting_counts(*a, **kw):
        calls["counts"] += 1
        return real_counts(*a, **kw)

    def counting_analyse(*a, **kw):
        calls["analyse"] += 1
        return real_analyse(*a, **kw)

    monkeypatch.setattr(xcoact.counts, "_summed_counts", counting_counts)
    monkeypatch.setattr(parc, "_analyse", counting_analyse)
    res = parc.parcellate(act, roi, k=[2, 3], filters=[10, 20], n_init=3)
    assert calls == {"counts": 0, "analyse": 0}
    assert "k_suggested" not in res.attrs
    res.load()
    assert calls["counts"] > 0 and calls["analyse"] == 1


def test_compute_true_puts_k_suggested_in_attrs_and_is_reproducible(planted):
    act, roi = planted
    a = parc.parcellate(act, roi, k=[2, 3], filters=[10, 20, 30], n_init=4, seed=7, compute=True)
    b = parc.parcellate(act, roi, k=[2, 3], filters=[10, 20, 30], n_init=4, seed=7)
    assert a.attrs["k_suggested"] == int(a["k_suggested"]) == 2
    assert np.array_equal(a["labels"].values, b["labels"].values)
    assert a.attrs["vi_log_base"] == 2 and a.attrs["n_init"] == 4


def test_clusters_of_feed_a_seed_batch(planted):
    act, roi = planted
    res = act.coact.parcellate(roi, k=[2, 3], filters=[10, 20], n_init=3).compute()
    clusters = res.coact.clusters_of(2)
    assert list(clusters) == ["cluster_1", "cluster_2"]
    total = sum(int(m.sum()) for m in clusters.values())
    assert total == int(res["roi"].sum())
    maps = act.coact.seed(clusters, select="focus")
    assert list(maps["seed"].values) == ["cluster_1", "cluster_2"]
    assert maps["n_roi"].values.tolist() == [int(m.sum()) for m in clusters.values()]
    # the right part's MACM selects the studies with a peak there (group A: ids 1..40), the left part's group B
    sel = {s: set(maps["selected"].sel(seed=s).values.nonzero()[0] + 1) for s in maps["seed"].values}
    assert sel["cluster_1"] != sel["cluster_2"]
    with pytest.raises(ParameterError, match=r"k=4 is not one of the parcellation's numbers of clusters \[2, 3\]"):
        res.coact.clusters_of(4)


def test_accessor_signature_matches_the_function():
    func = inspect.signature(parc.parcellate)
    door = inspect.signature(xr.DataArray([]).coact.parcellate)
    assert list(door.parameters) == list(func.parameters)[1:]
    for name, p in door.parameters.items():
        assert p.default == func.parameters[name].default, name
        assert p.kind == func.parameters[name].kind, name


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"k": [1, 2]}, ParameterError, r"k=\[1, 2\] is not valid; expected an int >= 2"),
        ({"filters": [0, 10]}, ParameterError, r"\[0\] are not valid pool sizes for select='nearest'"),
        ({"filters": [100]}, ParameterError, r"fewer than the cube's 100 studies"),
        (
            {"profile": "gauss"},
            ParameterError,
            r"profile='gauss' is not known; expected one of 'mkda' .*'pFgA' .*'ale'",
        ),
        ({"select": "overlap"}, ParameterError, r"select='overlap' is not a pooling rule of parcellate"),
        ({"n_init": 0}, ParameterError, r"n_init=0 is not valid"),
        ({"filter_range": "best"}, ParameterError, r"filter_range='best' is not known"),
        (
            {"select": "distance", "filters": [0.5]},
            SelectionError,
            r"filter 0.5 mm pools no study at \d+ ROI voxel\(s\) \(select='distance'\), e.g. at \[.*\] mm, whose nearest "
            r"peak is [\d.]+ mm away. Use larger radii.",
        ),
    ],
)
def test_bad_arguments_are_named(cube, kwargs, error, message):
    with pytest.raises(error, match=message):
        parc.parcellate(cube, xcoact.datasets.amygdala_roi_path(), **{"k": [2], "filters": [10], **kwargs})


def test_roi_smaller_than_k(cube, tmp_path):
    roi = _box_roi(tmp_path / "tiny.nii.gz", (20, 22), (0, 0), (12, 12))
    with pytest.raises(SelectionError, match=r"the ROI has 2 voxels in the brain mask, too few for k=3 clusters"):
        parc.parcellate(cube, roi, k=[2, 3], filters=[10])


# --- outputs and the command line --------------------------------------------------------------------


def test_cli_writes_label_images_criteria_and_figure(tmp_path, capsys):
    from xcoact.cli import main

    out = tmp_path / "amy"
    rc = main(
        [
            "parcellate",
            "--seed",
            xcoact.datasets.amygdala_roi_path(),
            "--k",
            "2-3",
            "--filters",
            "10,20,30",
            "--n-init",
            "3",
            "--outroot",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    names = sorted(os.listdir(tmp_path))
    assert names == ["amy_criteria.tsv", "amy_k2_labels.nii.gz", "amy_k3_labels.nii.gz", "amy_parcellation.png"]
    img = nib.load(tmp_path / "amy_k3_labels.nii.gz")
    data = np.asarray(img.dataobj)
    assert data.dtype == np.int16 and img.header.get_intent()[0] == "label"
    assert set(np.unique(data)) == {0, 1, 2, 3}
    ref = nib.load(xcoact.datasets.amygdala_roi_path())
    assert int((data > 0).sum()) == 366 and np.allclose(img.affine, xcoact.mni152_2mm().affine)
    assert ref.shape == data.shape
    table = pd.read_csv(tmp_path / "amy_criteria.tsv", sep="\t", index_col="k")
    assert list(table.index) == [2, 3] and table["suggested"].sum() == 1
    assert list(table.columns[1:]) == list(parc.CRITERIA)
    with open(tmp_path / "amy_parcellation.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_to_clobber_and_writes_nothing(tmp_path, capsys):
    from xcoact.cli import main

    out = tmp_path / "amy"
    (tmp_path / "amy_criteria.tsv").write_text("mine")
    rc = main(
        [
            "parcellate",
            "--seed",
            xcoact.datasets.amygdala_roi_path(),
            "--k",
            "2-3",
            "--filters",
            "10,20",
            "--n-init",
            "2",
            "--outroot",
            str(out),
        ]
    )
    assert rc == 2
    assert "amy_criteria.tsv" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["amy_criteria.tsv"]
    assert (tmp_path / "amy_criteria.tsv").read_text() == "mine"


def test_write_failure_leaves_nothing(cube, tmp_path, monkeypatch):
    """All outputs or none: a failure while writing the figure leaves no label image behind."""
    res = parc.parcellate(cube, xcoact.datasets.amygdala_roi_path(), k=[2], filters=[10, 20], n_init=2)

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(parc, "_write_bytes", broken)
    with pytest.raises(OutputError):
        parc.write(res, tmp_path / "x")
    assert os.listdir(tmp_path) == []


def test_cli_bad_range_is_named(capsys):
    from xcoact.cli import main

    rc = main(["parcellate", "--seed", xcoact.datasets.amygdala_roi_path(), "--k", "9-2", "--outroot", "/tmp/never"])
    assert rc == 2
    assert "--k '9-2' is not valid; expected a range like 2-9" in capsys.readouterr().err


def test_a_cube_of_many_study_chunks_gives_the_same_parcellation(planted):
    """Pools, counts and labels do not depend on how the cube's studies are chunked (several chunks here)."""
    act, roi = planted
    chunked = act.chunk({"study": 37})
    assert len(chunked.data.chunks[0]) > 1
    kw = dict(k=[2, 3], filters=[10, 20], n_init=3)
    assert all(np.array_equal(a, b) for a, b in zip(parc.pool_ids(chunked, roi, 20), parc.pool_ids(act, roi, 20)))
    one, many = parc.parcellate(act, roi, **kw).compute(), parc.parcellate(chunked, roi, **kw).compute()
    for name in ("labels", "filter_labels", "criteria"):
        np.testing.assert_array_equal(one[name].values, many[name].values)


def test_labels_identical_on_a_two_worker_local_cluster(planted):
    """The same parcellation on a dask.distributed LocalCluster (2 worker processes) as with threads."""
    distributed = pytest.importorskip("distributed")
    import dask

    act, roi = planted
    kw = dict(k=[2, 3], filters=[10, 20], n_init=3)
    with dask.config.set(scheduler="threads"):
        local = parc.parcellate(act, roi, **kw).compute()
    with loopback_cluster() as client:
        with distributed.get_task_stream(client) as stream:
            remote = parc.parcellate(act, roi, **kw).compute()
        ran = {t["worker"] for t in stream.data}
        known = set(client.scheduler_info()["workers"])
    assert ran and ran <= known  # the computation ran on the cluster's workers
    for name in ("labels", "filter_labels", "criteria", "k_suggested"):
        np.testing.assert_array_equal(remote[name].values, local[name].values)


def test_result_round_trips_through_netcdf(cube, tmp_path):
    """A computed parcellation written with xcoact.to_netcdf reads back whole; its clusters are still ROIs."""
    res = cube.coact.parcellate(xcoact.datasets.amygdala_roi_path(), k=[2, 3], filters=[10, 20], n_init=2, compute=True)
    path = xcoact.to_netcdf(res, tmp_path / "parc.nc")
    with xr.open_dataset(path) as back:
        assert back["labels"].dtype == np.int16
        np.testing.assert_array_equal(back["labels"].values, res["labels"].values)
        np.testing.assert_array_equal(back["criteria"].values, res["criteria"].values)
        assert back.attrs["k_suggested"] == res.attrs["k_suggested"]
        masks = back.coact.clusters_of(3)
        assert sum(int(m.sum()) for m in masks.values()) == 366
