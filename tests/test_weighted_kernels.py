"""Kernels with values through the same engine: KDA (NiMARE-exact), a max-combined float kernel, their reductions.

A cube of ``xcoact.activations(db, kernel=...)`` keeps each study's values
beside its sparse rows.  Checked here against plain numpy built voxel by voxel
from the peaks (a small grid, so the dense oracle is cheap), against NiMARE
0.22.1's ``KDAKernel`` on the bundled sample and a real NeuroStore collection,
under every idiom (chunk, transpose, subset, crop, persist) and on a
``dask.distributed`` cluster.  The binary cube is untouched: no values, the
same blocks.
"""

from __future__ import annotations

import logging
import pickle
import sys
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xcoact
from xcoact.blocks import ActivationBlock, StackedBlocks, is_block_cube, pieces_of
from xcoact.counts import OPS, grouped_counts, overlap_counts
from xcoact.errors import XcoactWarning
from xcoact.kernels import FocusKernel, KDAKernel, Kernel, combine_foci, sphere_offsets
from xcoact.roi import grid_of
from xcoact.space import Grid

pytestmark = pytest.mark.filterwarnings("ignore::xcoact.errors.XcoactWarning")

SHAPE = (12, 14, 10)
AFFINE = np.array([[-2.0, 0, 0, 11], [0, 2.0, 0, -13], [0, 0, 2.0, -9], [0, 0, 0, 1]])
N_STUDIES = 24


# -- a kernel of the tests' own: Gaussian-like values, a study's foci combined by the maximum -------------


def _bump(sigma_vox: float = 1.2, reach: int = 2):
    """Offsets of a (2 reach + 1)^3 box and exp(-d^2 / 2 sigma^2) / 2 at each: values in (0, 0.5]."""
    g = np.arange(-reach, reach + 1)
    offsets = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    values = 0.5 * np.exp(-(offsets**2).sum(1) / (2 * sigma_vox**2))
    return offsets, values


class MaxBumpKernel(Kernel):
    """The extension point as ALE uses it: study_map returns one study's voxels and max-combined float values."""

    name = "maxbump"
    dtype = np.dtype(np.float64)
    combine = "max"

    def __init__(self):
        self.offsets, self.values = _bump()

    def study_map(self, ijk, grid, study=None):
        return combine_foci(ijk, self.offsets, self.values, grid, how="max")


def _naive_dense(table, grid: Grid, offsets, values, how: str) -> np.ndarray:
    """(n_studies, *grid.shape) float64, focus by focus and offset by offset (the oracle)."""
    ids = table["study_id"].values
    studies = np.unique(ids)
    ijk = grid.xyz_to_ijk(np.column_stack([table[c].values for c in "xyz"]))
    out = np.zeros((len(studies), *grid.shape))
    for row, sid in enumerate(studies):
        vol = out[row]
        for p in ijk[ids == sid]:
            for o, v in zip(offsets, values):
                i, j, k = p + o
                if 0 <= i < grid.shape[0] and 0 <= j < grid.shape[1] and 0 <= k < grid.shape[2]:
                    vol[i, j, k] = max(vol[i, j, k], v) if how == "max" else vol[i, j, k] + v
        vol *= grid.mask
    return out


@pytest.fixture(scope="module")
def small():
    """A random 24-study database on a small masked grid, some peaks beyond the box; its two dense oracles."""
    rng = np.random.default_rng(7)
    mask = rng.random(SHAPE) < 0.8
    grid = Grid(SHAPE, AFFINE, mask, name="small")
    n_peaks = rng.integers(1, 6, N_STUDIES)
    ids = np.repeat(np.arange(N_STUDIES), n_peaks)
    ijk = np.column_stack([rng.integers(-2, s + 2, ids.size) for s in SHAPE])  # some beyond the box
    ijk[:3] = ijk[3]  # three foci of one study at one voxel: KDA counts each
    ids[:4] = ids[0]
    ids = np.sort(ids)
    xyz = ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]
    table = xcoact.table.make_table(ids, *xyz.T, ["MNI"] * ids.size, database="small", fmt="test")
    r = 4.0
    sphere = sphere_offsets(r, grid.voxel_size)
    kda_dense = _naive_dense(table, grid, sphere, np.ones(len(sphere)), "sum")
    offsets, values = _bump()
    max_dense = _naive_dense(table, grid, offsets, values, "max")
    return table, grid, r, kda_dense, max_dense


def _cube(small, which: str, **kwargs) -> xr.DataArray:
    table, grid, r, _, _ = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        if which == "kda":
            return xcoact.activations(table, r=r, grid=grid, kernel="kda", **kwargs)
        if which == "max":
            return xcoact.activations(table, grid=grid, kernel=MaxBumpKernel(), **kwargs)
        return xcoact.activations(table, r=r, grid=grid, **kwargs)


def _oracle(small, which: str) -> np.ndarray:
    return small[3] if which == "kda" else small[4]


# -- the representation --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["kda", "max"])
def test_dense_values_equal_the_oracle_under_every_idiom(small, which):
    act = _cube(small, which, chunks={"study": 5})
    want = _oracle(small, which)
    assert act.dtype == (np.int32 if which == "kda" else np.float64)
    assert act.attrs["kernel"] == ("kda" if which == "kda" else "maxbump")
    np.testing.assert_array_equal(act.values, want)
    assert (want > 0).sum() > 500 and (which == "max" or want.max() >= 3)
    view = act.chunk({"study": 11, "x": 5}).transpose("y", "study", "z", "x").isel(study=[20, 3, 7, 8], x=slice(2, 9))
    assert is_block_cube(view.data)
    np.testing.assert_array_equal(view.values, want[[20, 3, 7, 8]][:, 2:9].transpose(2, 0, 3, 1))
    held = act.chunk({"study": 12}).persist()  # coarser than the chunks: stacked blocks
    blocks = dask.compute(*held.data.to_delayed().ravel())
    assert any(isinstance(b, StackedBlocks) for b in blocks)
    assert all(p.chunk.values() is not None and p.chunk._values is not None for b in blocks for p in pieces_of(b))
    np.testing.assert_array_equal(held.values, want)


def test_a_block_travels_with_its_values_and_is_not_rebuilt(small, monkeypatch):
    act = _cube(small, "kda", chunks={"study": 10})
    block = act.data.blocks[1].compute()
    assert isinstance(block, ActivationBlock) and block.chunk._values is not None
    moved = pickle.loads(pickle.dumps(block))  # how Dask moves a persisted block between workers
    monkeypatch.setattr(KDAKernel, "chunk_maps", lambda *a, **k: pytest.fail("the values were rebuilt"))
    np.testing.assert_array_equal(np.asarray(moved), np.asarray(block))
    assert moved.dtype == np.int32
    # a chunk alone (part of a graph) travels as peaks and its kernel, and builds its values where it lands
    bare = pickle.loads(pickle.dumps(block.chunk))
    assert bare._values is None and bare._rows is None and isinstance(bare.kernel, KDAKernel)


def test_binary_cube_is_unchanged_no_values_no_extra_memory(small):
    act = _cube(small, "mkda", chunks={"study": 10})
    assert act.dtype == bool and act.attrs["kernel"] == "binary sphere"
    block = act.data.blocks[0].compute()
    assert block.chunk.kernel is None and block.chunk.values() is None and block.chunk._values is None
    assert len(block.__reduce__()[1]) == 5  # rows only, as before
    kda = _cube(small, "kda", chunks={"study": 10})
    np.testing.assert_array_equal(act.values, small[3] > 0)
    # the binary maps of the KDA cube are the sphere cube, as a sparse boolean view of the same rows
    support = kda.astype(bool)
    assert support.dtype == bool and is_block_cube(support.data)
    np.testing.assert_array_equal(support.values, act.values)
    kblock = kda.data.blocks[0].compute()
    sblock = kblock.astype(bool)
    assert sblock.chunk.rows()[1] is kblock.chunk.rows()[1], "the support view copied the rows"


def test_kernel_as_object_and_the_sphere_kernel_is_the_boolean_route(small):
    table, grid, r, kda_dense, _ = small
    by_object = xcoact.activations(table, grid=grid, kernel=KDAKernel(r, grid.voxel_size))
    np.testing.assert_array_equal(by_object.values, kda_dense)
    sphere = xcoact.activations(table, grid=grid, kernel=xcoact.kernels.SphereKernel(r))
    assert sphere.dtype == bool and sphere.attrs["r"] == r
    np.testing.assert_array_equal(sphere.values, kda_dense > 0)

    # the extension point's default chunk_maps (a loop over study_map) equals KDA's vectorised one
    class Looped(KDAKernel):
        chunk_maps = Kernel.chunk_maps

    looped = xcoact.activations(table, grid=grid, kernel=Looped(r, grid.voxel_size))
    np.testing.assert_array_equal(looped.values, kda_dense)


# -- the reductions ------------------------------------------------------------------------------------


def _dense_reduction(dense: np.ndarray, weights: np.ndarray, op: str) -> np.ndarray:
    out = np.zeros((weights.shape[0], dense.shape[1]))
    for g, w in enumerate(weights):
        for s in np.flatnonzero(w):
            v = dense[s]
            term = v if op == "sum" else (v != 0).astype(float) if op == "count" else np.log1p(-v)
            out[g] += float(w[s]) * term
    return out


def _check(got: np.ndarray, want: np.ndarray, exact: bool) -> None:
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "which,op", [("kda", "sum"), ("kda", "count"), ("max", "sum"), ("max", "count"), ("max", "log1m_sum")]
)
@pytest.mark.parametrize("weights_kind", ["bool", "int", "float"])
def test_grouped_reductions_equal_numpy_on_sparse_and_dense_cubes(small, which, op, weights_kind):
    act = _cube(small, which, chunks={"study": 7})
    grid = grid_of(act)
    dense = _oracle(small, which).reshape(N_STUDIES, -1)[:, grid.mask_flat]
    rng = np.random.default_rng(3)
    weights = {
        "bool": rng.random((4, N_STUDIES)) < 0.5,
        "int": rng.integers(0, 4, (4, N_STUDIES)),
        "float": rng.random((4, N_STUDIES)) * (rng.random((4, N_STUDIES)) < 0.7),
    }[weights_kind]
    weights[3] = 1  # every study: the chunks' kept value totals
    want = _dense_reduction(dense, np.asarray(weights), op)
    exact = which == "kda" or op == "count"
    sparse_got = grouped_counts(act, weights, grid, op=op).compute()
    _check(sparse_got, want, exact and weights_kind != "float")
    assert sparse_got.dtype == (np.int32 if op == "count" and weights_kind != "float" else np.float64)
    plain = xr.DataArray(act.values, dims=act.dims, coords=act.coords)  # the general (dense) route
    assert not is_block_cube(plain.chunk().data)
    _check(grouped_counts(plain, weights, grid, op=op).compute(), want, exact and weights_kind != "float")
    if op == "log1m_sum" and weights_kind == "bool":  # ALE of each group, as issue 13 finalises it: 1 - prod(1 - MA)
        want_ale = [1 - np.prod(1 - dense[np.asarray(w, bool)], axis=0) for w in weights]
        np.testing.assert_allclose(1 - np.exp(sparse_got), want_ale, rtol=0, atol=1e-12)


def test_default_op_sums_values_and_the_boolean_cube_keeps_its_integers(small):
    kda = _cube(small, "kda")
    grid = grid_of(kda)
    sel = np.zeros(N_STUDIES, dtype=bool)
    sel[::3] = True
    density = grouped_counts(kda, sel, grid).compute()
    np.testing.assert_array_equal(density[0], small[3][sel].sum(0).reshape(-1)[grid.mask_flat])
    binary = grouped_counts(_cube(small, "mkda"), sel, grid).compute()
    assert binary.dtype == np.int32
    np.testing.assert_array_equal(binary, grouped_counts(kda, sel, grid, op="count").compute())
    assert list(OPS) == ["sum", "count", "log1m_sum"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.sampled_from(["kda", "max"]),
    op=st.sampled_from(["sum", "count", "log1m_sum"]),
    study_chunk=st.integers(1, N_STUDIES),
    x_chunk=st.sampled_from([-1, 4, 7]),
    order=st.permutations(["study", "x", "y", "z"]),
    subset=st.one_of(st.none(), st.lists(st.integers(0, N_STUDIES - 1), min_size=1, max_size=N_STUDIES, unique=True)),
    crop=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_chunking_transposing_subsetting_and_cropping_never_change_a_reduction(
    small, which, op, study_chunk, x_chunk, order, subset, crop, seed
):
    """Hypothesis: any chunking along study or space, dimension order, study subset (in any order) or box."""
    if which == "kda" and op == "log1m_sum":
        op = "sum"
    act = _cube(small, which, chunks={"study": 5})
    dense = _oracle(small, which)
    if subset is not None:
        act, dense = act.isel(study=subset), dense[subset]
    if crop:
        act, dense = act.isel(x=slice(2, 10), z=slice(1, 8)), dense[:, 2:10, :, 1:8]
    act = act.chunk({"study": study_chunk, "x": x_chunk}).transpose(*order)
    assert is_block_cube(act.data)
    grid = grid_of(act)
    weights = np.random.default_rng(seed).integers(0, 3, (3, act.sizes["study"]))
    want = _dense_reduction(dense.reshape(len(dense), -1)[:, grid.mask_flat], weights, op)
    _check(grouped_counts(act, weights, grid, op=op).compute(), want, which == "kda" or op == "count")


def test_the_reductions_run_under_the_local_schedulers(small):
    """Threads and sync here; separate processes on the dask.distributed cluster below."""
    act = _cube(small, "max", chunks={"study": 6})
    grid = grid_of(act)
    weights = np.random.default_rng(1).random((2, N_STUDIES)) < 0.5
    want = grouped_counts(act, weights, grid, op="log1m_sum").compute(scheduler="sync")
    for scheduler in ("threads",):
        np.testing.assert_array_equal(
            grouped_counts(act, weights, grid, op="log1m_sum").compute(scheduler=scheduler), want, err_msg=scheduler
        )


def test_studies_from_several_chunks_stay_sparse_in_any_order_and_keep_their_values(small):
    """A coarser study rechunk, a spatial one on top, and an unsorted isel across chunks (Dask's take): views."""
    for which in ("mkda", "kda"):
        act = _cube(small, which, chunks={"study": 5})
        want = _oracle(small, "kda")
        want = want > 0 if which == "mkda" else want
        for idiom, index in [
            (lambda a: a.chunk({"study": 3}), slice(None)),
            (lambda a: a.isel(study=slice(2, 20)).chunk({"study": 12}), slice(2, 20)),
            (lambda a: a.chunk({"study": 12, "x": 5}).chunk({"x": -1}), slice(None)),
            (lambda a: a.isel(study=[17, 3, 9, 4, 22]), [17, 3, 9, 4, 22]),
        ]:
            other = idiom(act)
            blocks = dask.compute(*other.data.to_delayed().ravel())
            assert all(isinstance(b, ActivationBlock) for b in blocks), [type(b).__name__ for b in blocks]
            np.testing.assert_array_equal(other.values, want[index])


# -- selection and the coactivation maps on a cube with values ------------------------------------------


def test_selection_reads_the_binary_coverage_of_the_seed(small):
    for which in ("kda", "max"):
        act = _cube(small, which, chunks={"study": 9})
        grid = grid_of(act)
        roi = np.zeros(SHAPE, dtype=bool)
        roi[4:8, 5:9, 3:6] = True
        roi &= grid.mask
        got = overlap_counts(act, xr.DataArray(roi, dims=("x", "y", "z"), coords=grid.coords()), grid)
        np.testing.assert_array_equal(got, ((_oracle(small, which) != 0) & roi).sum((1, 2, 3)), err_msg=which)
        # twice: the second seed reads the chunk's rows by voxel
        np.testing.assert_array_equal(
            overlap_counts(act, xr.DataArray(roi, dims=("x", "y", "z"), coords=grid.coords()), grid), got
        )


def test_seed_on_a_kda_cube_names_the_kernel_and_what_works(sample_table):
    kda = xcoact.activations(sample_table, r=6, kernel="kda")
    with pytest.raises(
        xcoact.ParameterError,
        match=(
            r"^act holds the 'kda' kernel's values \(int32\); the coactivation maps count the studies active at each "
            r"voxel\. Analyse the kernel's binary maps with act\.astype\(bool\) \(a study active where its kda value is "
            r"not 0: for kernel='kda' the cube of kernel='mkda' with the same r\), or build xcoact\.activations\(db\) "
            r"without kernel=\.$"
        ),
    ):
        kda.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
    # what the message says works: the binary maps give the MKDA maps, number for number, on the sparse route
    got = kda.astype(bool).coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    want = xcoact.activations(sample_table, r=6).coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    assert got["selected_id"].values.tolist() == want["selected_id"].values.tolist()
    for name in want.coact.maps:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


def test_bad_kernels_and_ops_are_refused_with_the_fix(small):
    table, grid, *_ = small
    with pytest.raises(
        xcoact.ParameterError,
        match=r"^kernel='gauss' is not known; expected one of \['mkda', 'kda', 'ale'\] "
        r"or an xcoact\.kernels\.Kernel\.$",
    ):
        xcoact.activations(table, grid=grid, kernel="gauss")
    with pytest.raises(
        xcoact.ParameterError,
        match=r"^r=6 was given with the kernel object <MaxBumpKernel 'maxbump'>, "
        r"which carries its own parameters; pass r to the kernel",
    ):
        xcoact.activations(table, r=6, grid=grid, kernel=MaxBumpKernel())
    kda = _cube(small, "kda")
    with pytest.raises(
        xcoact.ParameterError,
        match=r"^op='mean' is not known; expected one of \['sum', 'count', "
        r"'log1m_sum'\]\.$",
    ):
        grouped_counts(kda, np.ones(N_STUDIES, bool), grid, op="mean")
    with pytest.raises(
        xcoact.ParameterError,
        match=r"^op='log1m_sum' sums log1p\(-value\) over probabilities in "
        r"\[0, 1\) \(ALE's modelled activation\); this cube holds int32 values\.",
    ):
        grouped_counts(kda, np.ones(N_STUDIES, bool), grid, op="log1m_sum")

    class Twice(MaxBumpKernel):
        def study_map(self, ijk, grid, study=None):
            voxels, values = super().study_map(ijk, grid, study)
            return np.r_[voxels, voxels[:1]], np.r_[values, values[:1]]

    act = xcoact.activations(table, grid=grid, kernel=Twice())  # lazy: the kernel runs when a block is made
    with pytest.raises(
        xcoact.ParameterError,
        match=r"^kernel 'maxbump': study 0: study_map returned a voxel more than "
        r"once; combine the foci first \(see combine_foci\)\.$",
    ):
        act.compute()
    with pytest.raises(
        xcoact.ParameterError,
        match=r"^values has shape \(2,\) \(float64\); expected one number per "
        r"offset \(1\)\.$",
    ):
        FocusKernel([[0, 0, 0]], [1.0, 2.0])


@pytest.mark.parametrize("batch", [2_000_000, 300])
def test_focus_kernel_is_the_max_kernel(small, monkeypatch, batch):
    """The library's one-pattern kernel (an ALE of one FWHM), all studies of a chunk at once, in one or many batches."""
    monkeypatch.setattr(xcoact.kernels, "BATCH_VOXELS", batch)
    table, grid, _, kda_dense, max_dense = small
    offsets, values = _bump()
    act = xcoact.activations(table, grid=grid, kernel=FocusKernel(offsets, values, combine="max", name="bump"))
    assert act.attrs["kernel"] == "bump" and "r" not in act.attrs
    np.testing.assert_array_equal(act.values, max_dense)
    summed = xcoact.activations(table, grid=grid, kernel=FocusKernel(offsets, values, combine="sum"))
    np.testing.assert_allclose(summed.values, _naive_dense(table, grid, offsets, values, "sum"), rtol=1e-14, atol=0)
    np.testing.assert_array_equal(_cube(small, "kda").values, kda_dense)


# -- NiMARE 0.22.1's KDAKernel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nimare_sample():
    pytest.importorskip("nimare")
    from nimare.dataset import Dataset

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from test_nimare_preset import _nimare_dict

    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield Dataset(_nimare_dict(xcoact.datasets.sample_database_path()))
    finally:
        logging.disable(logging.NOTSET)


def _assert_kda_is_nimares(dset, act, r) -> None:
    from nimare.meta.kernel import KDAKernel as NiMAREKDA

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ma = NiMAREKDA(r=r).transform(dset, return_type="array")
    grid = grid_of(act)
    row = {sid: i for i, sid in enumerate(dset.ids)}
    order = [row[f"{s}-1"] for s in act["study"].values]
    n = act.sizes["study"]
    step = 25  # a quarter of the dense int32 cube at a time
    ours = np.concatenate(
        [
            act.isel(study=slice(i, i + step)).values.reshape(-1, int(np.prod(grid.shape)))[:, grid.mask_flat]
            for i in range(0, n, step)
        ]
    )
    assert ma.dtype == np.float32 and ours.dtype == np.int32
    np.testing.assert_array_equal(ours, ma[order])  # exactly: every count of every study at every voxel
    assert ma.max() > 10 and (ma > 1).sum() > 10_000  # overlapping foci really are summed


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("r", [10, 7])
def test_kda_cube_is_nimares_kdakernel_on_the_sample(nimare_sample, sample_table, r):
    act = xcoact.activations(sample_table, preset="nimare", kernel="kda", r=r)
    assert act.attrs["r"] == r and act.attrs["preset"] == "nimare"
    _assert_kda_is_nimares(nimare_sample, act, r)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_kda_default_radius_is_the_presets_and_nimares(nimare_sample, sample_table):
    act = xcoact.activations(sample_table, preset="nimare", kernel="kda")
    assert act.attrs["r"] == 10.0  # KDAKernel's default r, and the preset's


# -- a dask.distributed cluster (loopback) -------------------------------------------------------------


def _valued_blocks(dask_worker) -> int:
    """Cube blocks this worker holds whose chunks keep their values."""
    return sum(
        1
        for v in dask_worker.data.values()
        if isinstance(v, ActivationBlock) and all(p.chunk._values is not None for p in pieces_of(v))
    )


def test_persisted_valued_cubes_reduce_on_a_cluster_as_locally(small):
    distributed = pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    table, grid, r, kda_dense, max_dense = small
    offsets, values = _bump()
    cases = [
        ("kda", {"r": r, "kernel": "kda"}, "sum", kda_dense),
        ("max", {"kernel": FocusKernel(offsets, values, combine="max")}, "log1m_sum", max_dense),
    ]
    weights = np.random.default_rng(5).random((3, N_STUDIES)) < 0.4
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        for name, kwargs, op, dense in cases:
            local = xcoact.activations(table, grid=grid, chunks={"study": 6}, **kwargs)
            want = grouped_counts(local, weights, grid, op=op).compute(scheduler="threads")
            held = local.persist()  # with a client active: the blocks, rows and values go to the workers
            distributed.wait(held.data)
            assert sum(client.run(_valued_blocks).values()) >= 4, name
            got = grouped_counts(held, weights, grid, op=op).compute()
            np.testing.assert_array_equal(got, want, err_msg=name)
            np.testing.assert_array_equal(held.isel(study=slice(3, 15)).values, dense[3:15], err_msg=name)
