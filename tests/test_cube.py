"""The activation cube: labels, Dask backing, laziness, and region-only computation."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.blocks import ActivationBlock, is_block_cube
from xcoact.counts import cube_peaks


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
    """Record every sparse block made dense, as (n_studies, (lo, hi) per spatial axis in grid voxels)."""
    calls = []
    original = ActivationBlock.dense

    def spy(self):
        calls.append((len(self.rows), tuple((int(p.min()), int(p.max()) + 1) if p.size else (0, 0) for p in self.pos)))
        return original(self)

    monkeypatch.setattr(ActivationBlock, "dense", spy)
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


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_building_and_selecting_compute_nothing(sample_table, recorded_blocks):
    with raise_if_dask_computes():
        act = xcoact.activations(sample_table, r=6)
        sub = act.sel(x=slice(10, -10), y=slice(0, 30), z=slice(-10, 20)).isel(study=slice(0, 50))
        total = sub.sum()
        assert isinstance(total.data, da.Array)
    assert recorded_blocks == []


def test_roi_bounding_box_computes_only_that_region(sample_cube, recorded_blocks):
    roi = xcoact.roi_mask(xcoact.datasets.amygdala_roi_path(), xcoact.mni152_2mm())
    where = np.nonzero(roi.values)
    box = {d: slice(int(w.min()), int(w.max()) + 1) for d, w in zip("xyz", where)}
    region = sample_cube.isel(box)
    values = region.values  # compute now
    # only the box is ever made dense: indexing a block is a view of its sparse rows
    assert recorded_blocks, "the region was never made dense"
    for _, spans in recorded_blocks:
        for (lo, hi), d in zip(spans, "xyz"):
            assert box[d].start <= lo and hi <= box[d].stop
    computed_voxels = sum(np.prod([hi - lo for lo, hi in spans]) for _, spans in recorded_blocks)
    assert computed_voxels < 0.1 * 91 * 109 * 91
    # and the region is right: compare with a dense build of the same box straight from the peaks
    src = cube_peaks(sample_cube)
    lo = [box[d].start for d in "xyz"]
    hi = [box[d].stop for d in "xyz"]
    direct = xcoact.kernels.dense_block(
        src.ijk, src.codes, 100, src.offsets, lo, hi, src.grid.mask[box["x"], box["y"], box["z"]]
    )
    np.testing.assert_array_equal(values, direct)
    assert values.any()


def test_cube_matches_loop_oracle(sample_cube, sample_table, mni_mask):
    """Every study's map equals the loop transcription of SPEC section 3."""
    import reference

    peaks = list(
        zip(sample_table.study_id.values.tolist(), sample_table.x.values, sample_table.y.values, sample_table.z.values)
    )
    expected = reference.study_maps(peaks, mni_mask, 6)
    dense = sample_cube.values
    for s, sid in enumerate(sample_cube.study.values.tolist()):
        got = set(map(tuple, np.argwhere(dense[s])))
        assert got == expected[sid], f"study {sid}"


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_sparse_rows_agree_with_dense_cube(sample_table, sample_cube):
    """Each chunk's sparse rows are its studies' dense maps, in-mask voxel numbers ascending."""
    src = cube_peaks(sample_cube)
    dense = sample_cube.values.reshape(100, -1)[:, src.grid.mask_flat]
    small = xcoact.activations(sample_table, r=6, chunks={"study": 30})
    for c, block in enumerate(small.data.to_delayed().ravel()):
        chunk = block.compute().chunk
        s0 = 30 * c
        indptr, indices = chunk.rows()
        for s in range(chunk.n_studies):
            np.testing.assert_array_equal(indices[indptr[s] : indptr[s + 1]], np.flatnonzero(dense[s0 + s]))


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
@pytest.mark.parametrize(
    "chunks", [{"study": 7, "x": 10, "y": 50, "z": 91}, {"study": 100, "x": 91, "y": 109, "z": 91}]
)
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
    src = cube_peaks(sample_cube)
    assert not src.built
    fast = src.overlap(np.flatnonzero(roi.values))
    dense = (sample_cube & roi).sum(("x", "y", "z")).values
    np.testing.assert_array_equal(fast, dense)
    assert fast.sum() > 0


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_overlap_by_voxel_index_equals_peaks_route(sample_table):
    """From the second overlap on, a chunk counts compiled from its peaks (no by-voxel copy): same numbers."""
    src = cube_peaks(xcoact.activations(sample_table, r=6))
    grid = xcoact.mni152_2mm()
    rois = [
        np.flatnonzero(xcoact.roi_mask(s, grid, 10).values)
        for s in ([[0, 20, 28]], [[-40, 20, 28], [40, -60, 0]], [[0, -100, 0]])
    ]
    before = [src.overlap(r) for r in rois]
    src.rows()
    assert src.built
    for roi, peaks_route in zip(rois, before):
        np.testing.assert_array_equal(src.overlap(roi), peaks_route)


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_first_map_builds_each_chunk_once_and_later_seeds_reuse_it(sample_table, monkeypatch):
    """The rows are seed-independent state held by the cube's graph: built once per chunk."""
    from xcoact import blocks

    calls = []
    original = blocks.sparse_rows
    monkeypatch.setattr(blocks, "sparse_rows", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    act = xcoact.activations(sample_table, r=6, chunks={"study": 20})
    act.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    assert sorted(calls) == [20] * 5
    act.coact.seed([[-40, 20, 28]], r=10, threshold=0.1).compute()
    assert len(calls) == 5  # reused


@pytest.mark.filterwarnings("ignore::xcoact.errors.OutOfBoxWarning")
def test_persist_holds_sparse_blocks_not_dense_ones(sample_table):
    act = xcoact.activations(sample_table, r=6).persist()
    assert is_block_cube(act.data)
    (block,) = dask.compute(act.data.to_delayed().ravel()[0])
    assert isinstance(block, ActivationBlock)
