"""The fast approximate null of ALE (issue 13, speed) against NiMARE 0.22.1's own building blocks.

The compiled bin combination adds each study's pairs of bins as runs of one
shift (contiguous slices) instead of pair by pair; the per-study histograms are
made once per cube chunk from its sparse MA values.  Both must give NiMARE's
numbers bit for bit: ``nimare.meta.cbma.null_utils._update_ale_histogram`` and
``_study_ma_histogram`` are the references.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from nimare.meta.cbma.null_utils import _study_ma_histogram, _update_ale_histogram
from nimare_support import NIMARE_MARKS, quiet_nimare  # noqa: F401 (an autouse fixture)
from test_ale_macm import sample_dataset

import xcoact
from xcoact.errors import ParameterError, XcoactWarning
from xcoact.presets import nimare_mni152_2mm
from xcoact.stats import ale

pytestmark = NIMARE_MARKS


def _centres(n_bins: int) -> np.ndarray:
    return np.round(np.arange(n_bins) * 1e-5, 5)


def _nimare(ale_idx, ale_p, exp_idx, exp_p, centres):
    out = np.zeros(centres.size)
    inv_step = 1 / (centres[1] - centres[0])
    return _update_ale_histogram(ale_idx, ale_p, exp_idx, exp_p, centres, inv_step, centres.size, out)


def _compiled(a_idx, a_p, e_idx, e_p, centres, upto):
    """The compiled step on a running null given sparse: its output (bins 0..upto, then the lumped mass)."""
    dense = np.zeros(upto + 2)
    dense[a_idx] = a_p
    out = np.zeros(upto + 2)
    lo, hi = (int(a_idx[0]), int(a_idx[-1])) if a_idx.size else (upto + 1, upto)
    new_lo, new_hi = ale._step_numba(
        dense, lo, hi, e_idx, e_p, centres, 1 / (centres[1] - centres[0]), centres.size, upto, out
    )
    nz = np.flatnonzero(out[: upto + 1])
    assert (new_lo, new_hi) == (nz[0], nz[-1]) if nz.size else new_lo > new_hi
    return out


@pytest.fixture(params=["one thread", "split", "small windows"])
def split(request, monkeypatch):
    """Every step in one call, split between two threads by target bin, or also cut into 5-bin target windows."""
    monkeypatch.setattr(ale, "_SPLIT_PAIRS", 10**18 if request.param == "one thread" else 0)
    if request.param == "small windows":
        monkeypatch.setattr(ale, "_WINDOW", 5)
    return request.param


def _random_hist(rng, n_bins: int, top: int, n_nonzero: int, zeros: bool = True) -> tuple[np.ndarray, np.ndarray]:
    idx = np.unique(rng.integers(1, top, size=n_nonzero))
    if zeros:
        idx = np.r_[0, idx]
    p = rng.random(idx.size)
    return idx.astype(np.int64), p / p.sum()


@pytest.mark.parametrize("seed", range(6))
def test_compiled_combination_is_nimares_update_bit_for_bit(seed, split):
    """Every bin (no cut): NiMARE's pair-by-pair update, the same bits, on sparse and gapped histograms."""
    rng = np.random.default_rng(seed)
    n_bins = int(rng.integers(3000, 9000))
    centres = _centres(n_bins)
    a_idx, a_p = _random_hist(rng, n_bins, n_bins // 2, int(rng.integers(5, 2000)), zeros=bool(seed % 2))
    e_idx, e_p = _random_hist(rng, n_bins, int(rng.integers(50, 2500)), int(rng.integers(1, 60)))
    ours = _compiled(a_idx, a_p, e_idx, e_p, centres, n_bins - 1)
    assert ours[-1] == 0.0 and ours.size == n_bins + 1
    assert np.array_equal(ours[:-1], _nimare(a_idx, a_p, e_idx, e_p, centres))


@pytest.mark.parametrize("upto", [0, 1, 700, 1500, 2999])
def test_compiled_combination_cut_keeps_the_bins_below_and_lumps_the_rest(upto, split):
    rng = np.random.default_rng(upto)
    centres = _centres(3000)
    a_idx, a_p = _random_hist(rng, 3000, 1400, 900)
    e_idx, e_p = _random_hist(rng, 3000, 1500, 40)
    keep = a_idx <= upto
    full = _nimare(a_idx[keep], a_p[keep], e_idx, e_p, centres)
    ours = _compiled(a_idx[keep], a_p[keep], e_idx, e_p, centres, upto)
    assert ours.size == upto + 2
    assert np.array_equal(ours[: upto + 1], full[: upto + 1])
    assert ours[-1] == pytest.approx(full[upto + 1 :].sum(), rel=1e-12, abs=1e-300)


def _sample_cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.activations(xcoact.datasets.sample_database_path(), preset="nimare", kernel="ale", sample_size=12)


def test_the_null_of_real_studies_is_nimares_fold_bit_for_bit(split):
    """Real MA histograms (the bundled sample), folded study by study: NiMARE's loop over its update, same bits."""
    grid = nimare_mni152_2mm()
    table = xcoact.read_database(xcoact.datasets.sample_database_path())
    from xcoact.stats.nimare import _nimare_peak_xyz
    from xcoact.table import study_index

    _, codes = study_index(table["study_id"].values)
    ijk = grid.xyz_to_ijk(_nimare_peak_xyz(np.column_stack([table[c].values for c in "xyz"]), table["space"].values))
    ma = [ale.study_ma(ijk[codes == s], grid, sample_size=8 + s % 30) for s in range(40)]
    studies = ale._as_study_list(ma, grid.n_mask)
    bins, ours = ale._null(studies, grid.n_mask, "numba")
    study_max = np.array([v.max() for _, v in studies], dtype=np.float32)
    centres = ale._bins(study_max)
    inv_step = 1 / (centres[1] - centres[0])
    want = None
    for _, values in studies:
        hist = _study_ma_histogram(values, grid.n_mask - values.size, 1.0 / grid.n_mask, inv_step, centres.size)
        if want is None:
            want = hist
            continue
        a, e = np.flatnonzero(want > 0), np.flatnonzero(hist > 0)
        want = _update_ale_histogram(a, want[a], e, hist[e], centres, inv_step, centres.size, np.zeros(centres.size))
    assert np.array_equal(bins, centres) and ours[-1] == 0
    assert np.array_equal(ours[:-1], want)


def test_chunk_histograms_are_nimares_study_histograms_and_made_once():
    act = _sample_cube()
    from xcoact.blocks import pieces_of
    from xcoact.counts import canonical

    block = canonical(act).to_delayed(optimize_graph=False).ravel()[0].compute()
    chunk = next(iter(pieces_of(block))).chunk
    got = ale._chunk_hists(chunk)
    assert ale._chunk_hists(chunk) is got  # kept beside the chunk
    indptr, _ = chunk.rows()
    values = chunk.values()
    n_mask, n_bins = chunk.grid.n_mask, 2000
    inv_step = 1 / np.round(1e-5, 5)
    assert len(got) == chunk.n_studies
    for row, (bins, counts, n_values, top) in enumerate(got):
        v = values[indptr[row] : indptr[row + 1]]
        assert n_values == v.size and top == (v.max() if v.size else 0) and top.dtype == np.float32
        dense = np.zeros(n_bins)
        dense[bins] = counts
        dense[0] += n_mask - n_values
        dense *= 1.0 / n_mask
        want = _study_ma_histogram(v.astype(np.float32), n_mask - v.size, 1.0 / n_mask, inv_step, n_bins)
        assert np.array_equal(dense, want), row


def test_seed_maps_without_the_compiled_helpers_are_the_same(monkeypatch):
    """The numpy fallbacks (no numba) of the histograms and the log sums give the same maps."""
    act = _sample_cube()
    roi = xcoact.datasets.amygdala_roi_path()
    fast = act.coact.seed(roi).compute()
    slow_act = _sample_cube()  # fresh chunks: their histograms made again, by numpy
    monkeypatch.setattr(ale, "_numba_count_bins", lambda: None)
    monkeypatch.setattr(ale, "_numba_scatter_add", lambda: None)
    slow = slow_act.coact.seed(roi).compute()
    for name in ("stat", "p", "z_map"):
        assert np.array_equal(fast[name].values, slow[name].values), name
    assert fast["z_map"].values.max() > 3


def test_database_ale_with_the_null_is_nimares_ale_of_every_study():
    """database_ale(null=True): stat, p and z of all studies, NiMARE's ALE().fit on the whole sample."""
    from nimare.meta.cbma.ale import ALE

    result = ALE(kernel__sample_size=20).fit(sample_dataset())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        ds = ale.database_ale(xcoact.datasets.sample_database_path(), sample_size=20, studies_per_task=30, null=True)
    assert list(ds.data_vars) == ["stat", "p", "z_map"] and ds.attrs["n_studies"] == 100
    assert ds.attrs["null_method"] == "approximate" and type(ds["p"].data).__name__ == "Array"
    mask = nimare_mni152_2mm().mask
    got = ds.compute()
    for ours, theirs in (("stat", "stat"), ("p", "p"), ("z_map", "z")):
        want = result.get_map(theirs, return_type="array").astype(np.float64)
        assert np.abs(got[ours].values[mask] - want).max() <= 1e-5, theirs
    assert got["z_map"].values[mask].max() > 3
    assert np.array_equal(got["stat"].values[mask].astype(np.float32), result.get_map("stat", return_type="array"))


def test_database_parts_without_numba_are_the_same(monkeypatch):
    """The compiled placement along the mask's runs: the same log sums and histograms as study_ma's maps."""
    from xcoact.cube import DatabasePeaks
    from xcoact.presets import get_preset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        table = xcoact.read_database(xcoact.datasets.sample_database_path())
    pre = get_preset("nimare")
    grid = pre.grid()
    sizes = {s: 6.0 + (i % 5) * 9 for i, s in enumerate(np.unique(table["study_id"].values))}
    kernel = ale.ALEKernel(voxel_size=grid.voxel_size)
    kernel.sizes = sizes  # each study its own kernel width
    peaks = DatabasePeaks(table, grid, None, peak_transform=pre.peak_transform, kernel=kernel)
    chunk = peaks.chunk(0, peaks.n_studies)
    fast = ale._chunk_parts(chunk)
    monkeypatch.setattr(ale, "_numba_study_logs", lambda: None)
    slow = ale._chunk_parts(chunk)
    assert np.array_equal(fast[0], slow[0]) and len(fast[1]) == len(slow[1]) == peaks.n_studies
    for a, b in zip(fast[1], slow[1], strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    assert sum(h[2] for h in fast[1]) > 1000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"null": "yes"}, "null='yes'; expected True (stat, p and z) or False (stat only)."),
        ({"null": True, "engine": "fast"}, "engine='fast'; expected 'auto', 'numba' or 'numpy'."),
    ],
)
def test_database_ale_checks_its_null_options(kwargs, message):
    with pytest.raises(ParameterError) as err:
        ale.database_ale(xcoact.datasets.sample_database_path(), fwhm=10, **kwargs)
    assert str(err.value) == message
