"""The warm seed's selection: ROI overlaps from the peaks near the ROI, and the sphere ROI mask, equal the dense truth.

``kernels.roi_overlap_compiled`` visits only the peaks a binary search in the chunk's (x, y) order finds near
the ROI's box; a wrong bound, a wrong reach or a study counted twice changes these counts.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xcoact
from xcoact import kernels
from xcoact.counts import cube_peaks, overlap_counts
from xcoact.errors import XcoactWarning


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    grid = xcoact.mni152_2mm()
    return act, grid, cube_peaks(act), act.values.reshape(act.sizes["study"], -1)


def _random_rois(grid, n: int, seed: int) -> list[np.ndarray]:
    """Spheres anywhere in the box (edges and corners included, radius 2-40 mm), blobs and scattered voxels."""
    rng = np.random.default_rng(seed)
    rois = []
    for _ in range(n):
        ijk = np.array([rng.integers(0, s) for s in grid.shape])
        if rng.random() < 0.3:  # on a face of the box
            axis = rng.integers(3)
            ijk[axis] = rng.choice([0, grid.shape[axis] - 1])
        r = float(rng.choice([2, 4, 6, 10, 14, 25, 40]))
        flat = np.ravel_multi_index(tuple((ijk + kernels.sphere_offsets(r)).T), grid.shape, mode="clip")
        rois.append(np.unique(flat))
    rois.append(rng.choice(grid.mask_flat, 500, replace=False))  # scattered over the brain
    rois.append(np.unique(rng.choice(grid.mask_flat, 40)[:, None] + np.arange(30)))  # runs along z
    rois.append(np.zeros(0, dtype=np.int64))
    return rois


def test_compiled_overlap_equals_the_dense_cube_on_random_rois(sample):
    _, grid, src, dense = sample
    active = 0
    for flat in _random_rois(grid, 150, seed=1):
        inside = flat[grid.mask_index[flat] >= 0]
        got = kernels.roi_overlap_compiled(src.ijk, src.codes, src.n_studies, src.offsets, inside, grid)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, dense[:, inside].sum(axis=1))
        active += int(got.sum() > 0)
    assert active > 30  # many ROIs (those in or near the brain) meet some study


def test_any_peak_order_and_integer_width_give_the_same_counts(sample):
    _, grid, src, dense = sample
    rng = np.random.default_rng(2)
    perm = rng.permutation(len(src.codes))  # peaks no longer grouped by study
    ijk, codes = src.ijk[perm], src.codes[perm]
    for flat in _random_rois(grid, 30, seed=3):
        inside = flat[grid.mask_index[flat] >= 0]
        expected = dense[:, inside].sum(axis=1)
        for narrow in (np.int16, np.int32):
            got = kernels.roi_overlap_compiled(
                ijk.astype(narrow), codes.astype(narrow), src.n_studies, src.offsets, inside, grid
            )
            np.testing.assert_array_equal(got, expected)


def test_peak_keys_are_the_peaks_sorted_by_position_then_study(sample):
    _, grid, src, _ = sample
    keys, fields = kernels.peak_keys(src.ijk, src.codes, src.n_studies, src.offsets, grid.shape)
    assert keys.dtype == np.int32 and np.all(np.diff(keys) >= 0)  # 7 + 7 + 7 bits of position, 9 of study
    margin, (by, bz, bc) = fields[:3], fields[3:]
    parts = [keys >> (by + bz + bc), (keys >> (bz + bc)) & ((1 << by) - 1), (keys >> bc) & ((1 << bz) - 1)]
    ijk = np.column_stack(parts) - margin
    clipped = np.clip(src.ijk, -margin, np.array(grid.shape) + margin - 1)
    expected = sorted(zip(*clipped.T.tolist(), src.codes.tolist()))
    assert sorted(zip(*ijk.T.tolist(), (keys & ((1 << bc) - 1)).tolist())) == expected


def test_peaks_outside_the_grid_count_where_their_spheres_reach_in(sample):
    # peaks just outside each face (within and beyond the sphere's reach) and far away: the sort route is the truth
    _, grid, src, _ = sample
    rng = np.random.default_rng(5)
    shape = np.array(grid.shape)
    ijk = rng.integers(0, shape, size=(4000, 3))
    axis = rng.integers(3, size=4000)
    side = rng.choice([-300, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 300], size=4000)
    ijk[np.arange(4000), axis] = np.where(side < 0, side + 1, shape[axis] - 1 + side)
    codes = np.sort(rng.integers(0, 64, size=4000))
    hits = 0
    for inside in _random_rois(grid, 60, seed=6)[:-1]:  # the kernel itself does not look at the brain mask
        ijk_roi = np.column_stack(np.unravel_index(inside, grid.shape))
        lo = ijk_roi.min(axis=0)
        box = np.zeros(ijk_roi.max(axis=0) + 1 - lo, dtype=bool)
        box[tuple((ijk_roi - lo).T)] = True
        expected = kernels.roi_overlap(ijk - lo, codes, 64, src.offsets, box)
        np.testing.assert_array_equal(kernels.roi_overlap_compiled(ijk, codes, 64, src.offsets, inside, grid), expected)
        hits += int(expected.sum() > 0)
    assert hits > 20


def test_unsorted_keys_give_wrong_counts(sample):
    # the kernel trusts the keys' order: reversed, its binary search finds other peaks (so this test can fail)
    _, grid, src, dense = sample
    flat = np.flatnonzero(xcoact.roi_mask([[0, 20, 28]], grid, 10).values)
    keys, fields = kernels.peak_keys(src.ijk, src.codes, src.n_studies, src.offsets, grid.shape)
    got = kernels.roi_overlap_compiled(src.ijk, src.codes, src.n_studies, src.offsets, flat, grid, (keys, fields))
    wrong = kernels.roi_overlap_compiled(
        src.ijk, src.codes, src.n_studies, src.offsets, flat, grid, (keys[::-1].copy(), fields)
    )
    assert np.array_equal(got, dense[:, flat].sum(axis=1)) and got.sum() > 0
    assert not np.array_equal(wrong, got)


def test_warm_overlaps_of_the_cube_equal_the_dense_cube_on_every_chunking(sample):
    act, grid, _, dense = sample
    for cube in (act, act.chunk({"study": 37}), act.transpose("z", "study", "y", "x")):
        for flat in [f for f in _random_rois(grid, 16, seed=4) if (grid.mask_index[f] >= 0).any()]:
            mask = np.zeros(grid.shape, dtype=bool)
            mask.ravel()[flat] = True
            roi = xcoact.roi_mask(xr_mask(mask, grid), grid)  # an image seed: any shape
            expected = dense[:, np.flatnonzero(roi.values)].sum(axis=1)
            for _ in range(3):  # the first overlap of a chunk is the uncompiled route, the later ones the kernel
                np.testing.assert_array_equal(overlap_counts(cube, roi, grid), expected)


def xr_mask(mask: np.ndarray, grid):
    import xarray as xr

    return xr.DataArray(mask.astype(np.uint8), dims=("x", "y", "z"), coords=grid.coords())


def test_sphere_roi_masks_are_the_spheres_inside_the_brain_mask():
    from xcoact.roi import _coords_seed

    grid = xcoact.mni152_2mm()
    rng = np.random.default_rng(8)
    for _ in range(40):
        xyz = rng.uniform([-90, -126, -72], [90, 90, 108], size=(int(rng.integers(1, 3)), 3))
        r = float(rng.choice([2, 6, 10, 20]))
        full = _coords_seed(xyz, r, grid)
        if not (full & grid.mask).any():
            with pytest.raises(xcoact.errors.RoiError, match="no voxel inside the brain mask"):
                xcoact.roi_mask(xyz, grid, r)
            continue
        for restrict, expected in ((True, full & grid.mask), (False, full)):
            roi = xcoact.roi_mask(xyz, grid, r, restrict=restrict)
            assert roi.dtype == bool and np.array_equal(roi.values, expected)
            assert roi.attrs["n_roi"] == int(expected.sum())


@pytest.mark.parametrize("shape", [(91, 109, 91), (3, 3, 3), (4, 4, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_map_volume_is_its_values_at_the_mask_and_zeros_elsewhere(shape, dtype):
    from xcoact.mapchunk import InMaskMap

    rng = np.random.default_rng(9)
    mask = rng.random(shape) < 0.4
    mask.flat[-1] = True  # the last voxel, in the last (partial) byte of the bits
    values = rng.random(50).astype(dtype) + 1
    pairs = rng.integers(0, 50, int(mask.sum())).astype(np.uint16)
    expected = np.zeros(shape, dtype=dtype)
    expected[mask] = values[pairs]
    for got in (
        InMaskMap(values, pairs, np.packbits(mask.ravel()), shape),
        InMaskMap(values[pairs], None, np.packbits(mask.ravel()), shape),
    ):
        volume = np.asarray(got)
        assert volume.dtype == dtype and volume.shape == shape
        np.testing.assert_array_equal(volume, expected)


def test_a_persisted_seed_is_ten_tasks_and_the_same_maps(sample):
    act, _, _, _ = sample
    seed = [[0, 20, 28]]
    fresh = act.coact.seed(seed, r=10, threshold=0.1).compute()
    held = act.chunk({"study": 40}).persist()
    lazy = held.coact.seed(seed, r=10, threshold=0.1)
    assert len(dict(lazy["pFgA"].data.__dask_graph__())) == 10  # the statistics task and the nine maps
    again = lazy.compute()
    for name in fresh.coact.maps:
        np.testing.assert_array_equal(again[name].values, fresh[name].values)
