"""The activation cube: labels, Dask backing, laziness, and region-only computation."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.kernels import ActivationSource


class ComputeCounter:
    """A Dask scheduler that counts calls and refuses to compute when max_computes is exceeded."""

    def __init__(self, max_computes: int = 0):
        self.total = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"Too many computes. Total: {self.total} > max: {self.max_computes}.")
        return dask.get(dsk, keys, **kwargs)


def raise_if_dask_computes(max_computes: int = 0):
    return dask.config.set(scheduler=ComputeCounter(max_computes))


@pytest.fixture
def recorded_blocks(monkeypatch):
    """Record every dense block the cube computes as (s0, s1, lo, hi)."""
    calls = []
    original = ActivationSource.dense

    def spy(self, s0, s1, lo, hi):
        calls.append((s0, s1, tuple(lo), tuple(hi)))
        return original(self, s0, s1, lo, hi)

    monkeypatch.setattr(ActivationSource, "dense", spy)
    return calls


def test_cube_dims_labels_and_backing(sample_cube, sample_table):
    act = sample_cube
    assert act.dims == ("study", "x", "y", "z")
    assert act.dtype == bool
    assert isinstance(act.data, da.Array)
    assert act.sizes == {"study": 100, "x": 91, "y": 109, "z": 91}
    # labels are mm at voxel centres: x = 90 - 2i, y = -126 + 2j, z = -72 + 2k
    np.testing.assert_array_equal(act.x.values, 90 - 2 * np.arange(91))
    np.testing.assert_array_equal(act.y.values, -126 + 2 * np.arange(109))
    np.testing.assert_array_equal(act.z.values, -72 + 2 * np.arange(91))
    assert int(act.brain_mask.sum()) == 228_453
    assert act.study.values[0] == sample_table.study_id.values[0]
    assert act.attrs["r"] == 6.0 and act.attrs["n_studies"] == 100


@pytest.mark.filterwarnings("ignore::xcoact.warnings.OutOfBoxWarning")
def test_building_and_selecting_compute_nothing(sample_table, recorded_blocks):
    with raise_if_dask_computes():
        act = xcoact.activations(sample_table, r=6)
        sub = act.sel(x=slice(10, -10), y=slice(0, 30), z=slice(-10, 20)).isel(study=slice(0, 50))
        total = sub.sum()
        assert isinstance(total.data, da.Array)
    assert recorded_blocks == []


def _blocks_touching(chunks, sl):
    edges = np.concatenate([[0], np.cumsum(chunks)])
    return sum(1 for a, b in zip(edges[:-1], edges[1:]) if a < sl.stop and b > sl.start)


def test_roi_bounding_box_computes_only_that_region(sample_cube, recorded_blocks):
    roi = xcoact.roi_mask(xcoact.datasets.amygdala_roi_path(), xcoact.mni152_2mm())
    where = np.nonzero(roi.values)
    box = {d: slice(int(w.min()), int(w.max()) + 1) for d, w in zip("xyz", where)}
    region = sample_cube.isel(box)
    values = region.values  # compute now
    expected_blocks = np.prod([_blocks_touching(c, box[d]) for c, d in zip(sample_cube.data.chunks[1:], "xyz")])
    expected_blocks *= len(sample_cube.data.chunks[0])
    total_blocks = np.prod([len(c) for c in sample_cube.data.chunks])
    assert 0 < len(recorded_blocks) == expected_blocks < total_blocks
    # every computed block intersects the bounding box
    for _, _, lo, hi in recorded_blocks:
        for a, d in enumerate("xyz"):
            assert lo[a] < box[d].stop and hi[a] > box[d].start
    computed_voxels = sum(np.prod(np.subtract(hi, lo)) for _, _, lo, hi in recorded_blocks)
    assert computed_voxels < 0.1 * 91 * 109 * 91
    # and the region is right: compare with a dense build of the same box
    src = ActivationSource.lookup(sample_cube.data)
    lo = [box[d].start for d in "xyz"]
    hi = [box[d].stop for d in "xyz"]
    direct = xcoact.kernels.dense_block(
        *src.peaks_of(0, 100), 100, src.offsets, lo, hi, src.grid.mask[box["x"], box["y"], box["z"]]
    )
    np.testing.assert_array_equal(values, direct)
    assert values.any()


def test_cube_matches_loop_oracle(sample_cube, sample_table, mni_mask):
    """Every study's map equals the loop transcription of SPEC section 3."""
    import reference

    peaks = list(zip(sample_table.study_id.values.tolist(), sample_table.x.values, sample_table.y.values, sample_table.z.values))
    expected = reference.study_maps(peaks, mni_mask, 6)
    dense = sample_cube.values
    for s, sid in enumerate(sample_cube.study.values.tolist()):
        got = set(map(tuple, np.argwhere(dense[s])))
        assert got == expected[sid], f"study {sid}"


def test_sparse_rows_agree_with_dense_cube(sample_cube):
    src = ActivationSource.lookup(sample_cube.data)
    dense = sample_cube.values.reshape(100, -1)[:, src.grid.mask_flat]
    for c, (s0, s1) in enumerate(src.chunk_bounds):
        indptr, indices = src.rows(c)
        for s in range(s1 - s0):
            np.testing.assert_array_equal(indices[indptr[s]:indptr[s + 1]], np.flatnonzero(dense[s0 + s]))


@pytest.mark.filterwarnings("ignore::xcoact.warnings.OutOfBoxWarning")
@pytest.mark.parametrize("chunks", [{"study": 7, "x": 10, "y": 50, "z": 91}, {"study": 100, "x": 91, "y": 109, "z": 91}])
def test_chunking_never_changes_the_cube(sample_table, sample_cube, chunks):
    other = xcoact.activations(sample_table, r=6, chunks=chunks)
    assert other.data.chunks[0][0] == chunks["study"]
    xr.testing.assert_identical(other.compute(), sample_cube.compute())


def test_kernel_radius_sizes():
    assert len(xcoact.kernels.sphere_offsets(6)) == 123
    assert len(xcoact.kernels.sphere_offsets(10)) == 515
    # the true sphere for odd r (SPEC section 3): 81 voxels at r = 5
    assert len(xcoact.kernels.sphere_offsets(5)) == 81


def test_seed_never_materialises_dense_blocks(sample_cube, recorded_blocks):
    maps = sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    assert all(isinstance(maps[n].data, da.Array) for n in maps.coact.maps)
    maps.compute()
    assert recorded_blocks == []


@pytest.mark.parametrize(
    "seed, r",
    [([[0, 20, 28]], 10), ([[-40, 20, 28], [40, -60, 0]], 12), ([[20, -60, -40]], 12), ([[0, -100, 0]], 20)],
)
def test_overlap_from_peaks_equals_dense_overlap(sample_cube, seed, r):
    """The peak-based overlap (no index) equals counting the dense cube, near box edges too."""
    grid = xcoact.mni152_2mm()
    roi = xcoact.roi_mask(seed, grid, r)
    src = ActivationSource.lookup(sample_cube.data)
    fast = src.overlap(roi.values)
    dense = (sample_cube & roi).sum(("x", "y", "z")).values
    np.testing.assert_array_equal(fast, dense)
    assert fast.sum() > 0


def test_streaming_index_gives_identical_maps(sample_table, monkeypatch):
    """Past the cache budget the index is rebuilt per computation, never kept; the maps do not change."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(sample_table, r=6)
    cached = act.coact.seed(xcoact.datasets.sgacc_roi_path(), threshold=0.1).compute()
    monkeypatch.setitem(xcoact.config, "index_cache_bytes", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = xcoact.activations(sample_table, r=6, chunks={"study": 16})
    src = ActivationSource.of_cube(fresh)
    assert not src.caches_index
    streamed = fresh.coact.seed(xcoact.datasets.sgacc_roi_path(), threshold=0.1).compute()
    assert src._rows == {}
    for name in cached.coact.maps:
        np.testing.assert_array_equal(streamed[name].values, cached[name].values)
    batch = fresh.coact.seed([xcoact.datasets.sgacc_roi_path(), xcoact.datasets.amygdala_roi_path()], threshold=0.1)
    np.testing.assert_array_equal(batch["pFgA"].sel(seed="sgacc_mask").values, cached["pFgA"].values)
    assert src._rows == {}


def test_overlap_by_voxel_index_equals_peaks_route(sample_table):
    """Once the index is cached, overlaps come from its by-voxel (CSC) copy: same numbers."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(sample_table, r=6, chunks={"study": 30})
    src = ActivationSource.of_cube(act)
    grid = xcoact.mni152_2mm()
    rois = [xcoact.roi_mask(s, grid, 10).values for s in ([[0, 20, 28]], [[-40, 20, 28], [40, -60, 0]], [[0, -100, 0]])]
    before = [src.overlap(r) for r in rois]
    assert not src.has_index()
    act.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()  # builds and caches the index
    assert src.has_index() and len(src._cols) == len(src.chunk_bounds)
    for roi, peaks_route in zip(rois, before):
        np.testing.assert_array_equal(src.overlap(roi), peaks_route)
        np.testing.assert_array_equal(src.overlap(roi), (act & roi).sum(("x", "y", "z")).values)


def test_first_map_builds_each_index_chunk_once(sample_table, monkeypatch):
    import warnings

    calls = []
    original = ActivationSource.rows
    monkeypatch.setattr(ActivationSource, "rows", lambda self, c: calls.append(c) or original(self, c))
    monkeypatch.setitem(xcoact.config, "index_cache_bytes", 0)  # nothing cached: every build is counted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(sample_table, r=6, chunks={"study": 20})
    act.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    assert sorted(calls) == list(range(5))
