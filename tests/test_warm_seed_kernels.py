"""The warm seed's kernels: the compiled row count, the thread split, the p-values and the maps' gather.

Each is checked against plain numpy (a gathered ``bincount``, a dense
``weights @ cube`` product, ``scipy.special.chdtrc`` on the whole array, a
scatter into zeros), and the grouped counts under every cube idiom (many
chunks, a study subset, a transpose, persist, spatial crops) and on the
weighted KDA cube.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from scipy import special

import xcoact
from xcoact import _threads
from xcoact.analyses.batch import _gather_maps
from xcoact.counts import count_rows, grouped_counts, row_counts
from xcoact.kernels import sphere_offsets
from xcoact.roi import grid_of
from xcoact.space import Grid
from xcoact.stats.neurosynth import pair_maps, two_way_chi2, two_way_p

pytestmark = pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")


def _csr(rng, n_rows: int, m: int, max_len: int):
    lens = rng.integers(0, max_len, n_rows)
    rows = [np.sort(rng.choice(m, size=k, replace=False)) for k in lens]
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return indptr, np.concatenate(rows).astype(np.int32)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_count_rows_adds_to_what_is_there(dtype):
    rng = np.random.default_rng(5)
    m = 3_000
    indptr, indices = _csr(rng, 200, m, 300)
    rows = rng.choice(200, size=90, replace=False)  # any order
    out = np.full(m, 7, dtype=dtype)
    got = count_rows(indptr, indices, rows, out)
    assert got is out and got.dtype == dtype
    expected = 7 + np.bincount(np.concatenate([indices[indptr[r] : indptr[r + 1]] for r in rows]), minlength=m)
    assert np.array_equal(got, expected)
    # a row given twice counts twice (the caller's rows are a multiset)
    again = count_rows(indptr, indices, np.array([rows[0], rows[0]]), np.zeros(m, dtype=dtype))
    assert np.array_equal(again, 2 * np.bincount(indices[indptr[rows[0]] : indptr[rows[0] + 1]], minlength=m))


def test_row_counts_is_16_bit_up_to_65535_rows():
    indptr = np.arange(65_536 + 1, dtype=np.int64)
    indices = np.zeros(65_536, dtype=np.int32)
    assert row_counts(indptr, indices, np.arange(65_535), 2).dtype == np.uint16
    got = row_counts(indptr, indices, np.arange(65_536), 2)
    assert got.dtype == np.int32 and got[0] == 65_536


def test_split_covers_the_range_once_in_order_and_runs_inline_in_its_own_threads(monkeypatch):
    monkeypatch.setattr(_threads, "n_workers", lambda: 3)
    seen = []
    got = _threads.split(lambda lo, hi: seen.append((lo, hi)) or (lo, hi, threading.current_thread().name), 10, 2)
    assert [g[:2] for g in got] == [(0, 3), (3, 6), (6, 10)]
    assert sorted(seen) == [(0, 3), (3, 6), (6, 10)]
    assert got[0][2] == threading.current_thread().name and got[1][2].startswith("xcoact-split")
    # too little work for more than one part
    assert _threads.split(lambda lo, hi: (lo, hi), 10, 8) == [(0, 10)]
    # a split inside a split runs inline (the pool never waits on itself)
    nested = _threads.split(lambda lo, hi: _threads.split(lambda a, b: (a, b), 10, 1), 9, 1)
    assert nested[1] == [(0, 10)]


def test_two_way_p_of_distinct_pairs_is_chdtrc_bit_for_bit_when_split():
    rng = np.random.default_rng(2)
    n_sel, n_uns = 700, 13_000
    a = rng.integers(0, 400, 60_000)
    b = rng.integers(0, 3_000, 60_000)
    keys = np.unique(a * 10_000 + b)
    a, b = keys // 10_000, keys % 10_000  # distinct pairs, more than one thread's share
    expected = special.chdtrc(1, two_way_chi2(a, b, n_sel, n_uns))
    got = two_way_p(a, b, n_sel, n_uns, distinct=True)
    assert got.dtype == np.float64 and np.array_equal(got, expected)
    assert np.array_equal(two_way_p(a, b, n_sel, n_uns), expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gather_maps_equal_a_scatter_into_zeros(dtype):
    rng = np.random.default_rng(3)
    shape = (9, 8, 7)
    grid = Grid(shape, np.eye(4), rng.random(shape) < 0.4, name="gather")
    a = rng.integers(0, 6, grid.n_mask)
    b = rng.integers(0, 40, grid.n_mask)
    table, inverse = pair_maps(a, b, 30, 300)
    table = table.astype(dtype)
    voxel = _gather_maps(table, inverse, grid, "voxel")
    assert voxel.dtype == dtype and np.array_equal(voxel, table[:, inverse])
    volume = _gather_maps(table, inverse, grid, "volume")
    expected = np.zeros((len(table), int(np.prod(shape))), dtype=dtype)
    expected[:, grid.mask_flat] = table[:, inverse]
    assert volume.dtype == dtype and np.array_equal(volume, expected.reshape(len(table), *shape))


def _dense_counts(cube, weights) -> np.ndarray:
    """``weights @ cube`` over the cube's in-mask voxels, from the dense array (the oracle)."""
    grid = grid_of(cube)
    dense = np.asarray(cube.transpose("study", "x", "y", "z").values).reshape(cube.sizes["study"], -1)
    dense = dense[:, grid.mask_flat].astype(np.float64)
    return np.asarray(weights, dtype=np.float64) @ dense


def _idioms(cube):
    n = cube.sizes["study"]
    rng = np.random.default_rng(11)
    subset = np.sort(rng.choice(n, size=n // 2, replace=False))
    return {
        "default": cube,
        "many chunks": cube.chunk({"study": 7}),
        "subset": cube.isel(study=subset),
        "unsorted subset": cube.isel(study=subset[::-1]),
        "transposed": cube.transpose("z", "study", "x", "y"),
        "persisted": cube.chunk({"study": 13}).persist(),
        "cropped": cube.isel(x=slice(10, 60), z=slice(5, 70)),
        "spatial chunks": cube.chunk({"x": 30, "y": 50}),
    }


@pytest.mark.parametrize(
    "idiom",
    ["default", "many chunks", "subset", "unsorted subset", "transposed", "persisted", "cropped", "spatial chunks"],
)
def test_grouped_counts_of_selections_equal_the_dense_product(sample_table, idiom, monkeypatch):
    import xcoact.counts

    counted = []
    original = xcoact.counts.count_rows
    monkeypatch.setattr(xcoact.counts, "count_rows", lambda *a: counted.append(1) or original(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = _idioms(xcoact.activations(sample_table, r=6))[idiom]
    n = cube.sizes["study"]
    rng = np.random.default_rng(1)
    weights = np.stack(
        [
            rng.random(n) < 0.3,  # a seed's selection
            np.ones(n, dtype=bool),  # every study (the chunks' kept totals)
            np.zeros(n, dtype=bool),  # nobody
            np.arange(n) < n // 3,  # whole leading chunks and part of one
        ]
    )
    got = grouped_counts(cube, weights, grid_of(cube)).compute()
    assert got.dtype == np.int32
    assert np.array_equal(got, _dense_counts(cube, weights))
    assert counted  # the selections went through the compiled count, whatever the idiom
    # integer weights other than 0/1 and float weights take the weighted route: the same numbers
    ints = rng.integers(0, 4, (2, n))
    assert np.array_equal(grouped_counts(cube, ints, grid_of(cube)).compute(), _dense_counts(cube, ints))
    floats = rng.random((1, n))
    assert np.allclose(grouped_counts(cube, floats, grid_of(cube)).compute(), _dense_counts(cube, floats))


def test_grouped_counts_of_the_kda_cube_count_its_support():
    rng = np.random.default_rng(4)
    shape = (12, 14, 10)
    affine = np.array([[-2.0, 0, 0, 11], [0, 2.0, 0, -13], [0, 0, 2.0, -9], [0, 0, 0, 1]])
    grid = Grid(shape, affine, rng.random(shape) < 0.8, name="kda-small")
    ids = np.sort(rng.integers(0, 30, 120))
    ijk = np.column_stack([rng.integers(0, s, ids.size) for s in shape])
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    table = xcoact.table.make_table(ids, *xyz.T, ["MNI"] * ids.size, database="kda-small", fmt="test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kda = xcoact.activations(table, r=4.0, grid=grid, kernel="kda", chunks={"study": 4})
    assert len(sphere_offsets(4.0, grid.voxel_size)) > 1
    n = kda.sizes["study"]
    weights = np.stack([rng.random(n) < 0.5, np.ones(n, dtype=bool)])
    dense = np.asarray(kda.transpose("study", "x", "y", "z").values).reshape(n, -1)[:, grid.mask_flat]
    got = grouped_counts(kda, weights, grid, op="count").compute()
    assert np.array_equal(got, weights.astype(np.int64) @ (dense != 0).astype(np.int64))
    # and the values themselves, summed with the weights (the weighted reduction, untouched)
    assert np.allclose(grouped_counts(kda, weights, grid, op="sum").compute(), weights.astype(float) @ dense)


def test_seed_maps_are_the_same_under_every_idiom_and_dtype(sample_table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = xcoact.activations(sample_table, r=6)
        seed = [[24, -4, -18]]
        ref = cube.coact.seed(seed, r=10).compute()
        names = list(ref.data_vars)[:9]
        assert ref.attrs["n_selected"] > 0 and float(np.abs(ref[names[6]]).max()) > 0
        for idiom, other in _idioms(cube).items():
            if idiom in ("subset", "unsorted subset", "cropped"):
                continue  # other databases / boxes: other maps (covered by test_engine_idioms)
            got = other.coact.seed(seed, r=10).compute()
            for name in names:
                assert np.array_equal(got[name].values, ref[name].values), (idiom, name)
        f32 = cube.coact.seed(seed, r=10, dtype="float32").compute()
        for name in names:
            assert f32[name].dtype == np.float32
            assert np.array_equal(f32[name].values, ref[name].values.astype(np.float32))


def test_grouped_counts_of_stacked_chunks_equal_the_dense_product(sample_table):
    from xcoact.blocks import StackedBlocks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = xcoact.activations(sample_table, r=6, chunks={"study": 10}).chunk({"study": 45})
    assert isinstance(cube.data.blocks[0].compute(), StackedBlocks)  # several study chunks in one block
    n = cube.sizes["study"]
    weights = np.stack([np.random.default_rng(9).random(n) < 0.4, np.ones(n, dtype=bool)])
    assert np.array_equal(grouped_counts(cube, weights, grid_of(cube)).compute(), _dense_counts(cube, weights))


def test_fdr_threshold_does_not_depend_on_the_order_of_equal_p_values():
    """The sort need not be stable: the threshold is the one a stable sort gives, ties or not."""
    from xcoact.stats.neurosynth import fdr_threshold

    def stable(p, q, counts):
        order = np.argsort(p, kind="stable")
        s, rank = p[order], np.cumsum(counts[order])
        below = np.flatnonzero(s <= rank.astype(np.float64) * q / rank[-1])
        return float(s[below[-1]]) if below.size else -1.0

    rng = np.random.default_rng(0)
    decided = 0
    for _ in range(500):
        n = int(rng.integers(1, 300))
        p = rng.choice(rng.random(int(rng.integers(1, 20))) ** int(rng.integers(1, 8)), n)  # many ties
        counts = rng.integers(1, 5, n)
        q = float(rng.choice([0.01, 0.05, 0.2, 0.5]))
        expected = stable(p, q, counts)
        decided += expected > 0
        assert fdr_threshold(p, q, counts) == expected
        assert fdr_threshold(p, q) == stable(p, q, np.ones(n, dtype=np.int64))
    assert 50 < decided < 500  # both outcomes occur


def test_a_first_selection_builds_the_rows_in_dask_tasks_and_later_ones_in_this_thread(sample_table, monkeypatch):
    """Rows are built once per chunk by the cube's own tasks (in parallel); once built, scores skip Dask's machinery."""
    import dask.local

    import xcoact.counts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = xcoact.activations(sample_table, r=6, chunks={"study": 25})
    graph = dict(xcoact.counts.canonical(cube).__dask_graph__())
    assert not xcoact.counts._blocks_ready(graph)  # nothing built yet
    synced = []
    original = dask.local.get_sync
    monkeypatch.setattr(dask.local, "get_sync", lambda *a, **k: synced.append(1) or original(*a, **k))
    first = xcoact.counts.overlap_counts(cube, _roi(cube), grid_of(cube))
    assert not synced and xcoact.counts._blocks_ready(graph)  # the blocks' tasks built every chunk's rows
    again = xcoact.counts.overlap_counts(cube, _roi(cube), grid_of(cube))
    assert synced and np.array_equal(first, again)
    held = cube.persist()
    assert xcoact.counts._blocks_ready(dict(xcoact.counts.canonical(held).__dask_graph__()))
    assert np.array_equal(xcoact.counts.overlap_counts(held, _roi(held), grid_of(held)), first)


def _roi(cube):
    from xcoact.roi import roi_mask

    return roi_mask([[24, -4, -18]], grid_of(cube), 10)
