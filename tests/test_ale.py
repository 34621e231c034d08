"""ALE against NiMARE 0.22.1 (issue 13, points 2-3): kernel, per-study MA, stat/p/z.

xcoact reads the files with its own readers and puts the foci on voxels with
its own grid (:meth:`xcoact.space.Grid.xyz_to_ijk`; under the NiMARE preset,
Talairach foci through ``stats_nimare._nimare_peak_xyz``); NiMARE reads them
with ``convert_sleuth_to_dataset`` / ``Dataset`` and fits ``ALE()`` on the
studies its ``get_studies_by_mask`` selects.  The grid is NiMARE's: the
Sleuth datasets' GingerALE mask, the MNI152 mask for the bundled sample.
"""

from __future__ import annotations

import os
import warnings

import nibabel as nib
import numpy as np
import pytest
from nimare.dataset import Dataset
from nimare.io import convert_sleuth_to_dataset
from nimare.meta.cbma.ale import ALE
from nimare.meta.kernel import ALEKernel
from nimare.meta.utils import compute_ale_ma, get_ale_kernel
from nimare.utils import get_template
from nimare_support import NIMARE_MARKS, grid_of, quiet_nimare  # noqa: F401 (an autouse fixture)

import xcoact
from xcoact.errors import ParameterError, XcoactWarning
from xcoact.presets import nimare_mni152_2mm
from xcoact.readers import read_database
from xcoact.space import Grid
from xcoact.stats import ale
from xcoact.stats.nimare import _nimare_peak_xyz
from xcoact.table import study_index

TOL = 1e-5
DATA = os.path.join(os.path.dirname(__file__), "data")
SLEUTH_FILES = {
    "sleuth_example": os.path.join(DATA, "sleuth_example.txt"),
    "talairach": os.path.join(DATA, "sleuth_talairach_example.txt"),
    "semantic": os.path.join(DATA, "semantic_knowledge_children.txt"),
}

pytestmark = NIMARE_MARKS


# -- the kernel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 20, 100])
def test_kernel_is_nimares_array(n):
    sigma, theirs = get_ale_kernel(get_template("ale_2mm", mask="brain"), sample_size=n)
    fwhm, ours = ale.ale_kernel(n)
    assert ours.dtype == np.float64 and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)
    # sigma in voxels from the FWHM in mm: NiMARE divides by sqrt(2 * 2 * 2), not by the 2 mm edge
    assert fwhm / np.sqrt(8) * np.sqrt(2) / (np.sqrt(2 * np.log(2)) * 2) == pytest.approx(sigma, rel=1e-7)


@pytest.mark.parametrize("fwhm", [8, 10.5, 15.0])
def test_kernel_from_a_fixed_fwhm_is_nimares_array(fwhm):
    _, theirs = get_ale_kernel(get_template("mni152_2mm", mask="brain"), fwhm=fwhm)
    got_fwhm, ours = ale.ale_kernel(fwhm=fwhm)
    assert got_fwhm == fwhm and np.array_equal(ours, theirs)


def test_fwhm_formula_eickhoff_2009():
    """Template and subject terms (5.7 mm, 11.6 mm / sqrt(N) as mean distances) in quadrature."""
    c = np.sqrt(8 * np.log(2)) / (2 * np.sqrt(2 / np.pi))
    for n in (1, 5, 20, 100, 12.5):
        assert ale.ale_fwhm(n) == pytest.approx(np.hypot(5.7 * c, 11.6 * c / np.sqrt(n)), rel=1e-14)
    assert ale.ale_fwhm(5) > ale.ale_fwhm(20) > ale.ale_fwhm(100) > 5.7 * c


def test_kernel_support_is_nimares_placement():
    offsets, values = ale.kernel_support(20)
    _, kernel = get_ale_kernel(get_template("mni152_2mm", mask="brain"), sample_size=20)
    assert values.dtype == np.float32 and offsets.shape == (values.size, 3)
    assert (offsets[np.argmax(values)] == 0).all() and values.max() == np.float32(kernel.max())
    assert np.abs(offsets).max() == kernel.shape[0] // 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {},
            (
                "sample_size=None, fwhm=None: give exactly one; the ALE kernel is sized either by a study's number of "
                "subjects (e.g. sample_size=20) or by a fixed width in mm (e.g. fwhm=10)."
            ),
        ),
        (
            {"sample_size": 20, "fwhm": 10},
            (
                "sample_size=20, fwhm=10: give exactly one; the ALE kernel is sized either "
                "by a study's number of subjects (e.g. sample_size=20) or by a fixed width in "
                "mm (e.g. fwhm=10)."
            ),
        ),
        ({"sample_size": 0}, "sample_size=0.0 is not valid; expected a finite number > 0, e.g. sample_size=20."),
        (
            {"sample_size": float("nan")},
            "sample_size=nan is not valid; expected a finite number > 0, e.g. sample_size=20.",
        ),
        ({"fwhm": "10"}, "fwhm='10' is not a number; expected a finite number > 0, e.g. fwhm=10."),
    ],
)
def test_kernel_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError) as err:
        ale.ale_kernel(**kwargs)
    assert str(err.value) == message
    with pytest.raises(ParameterError):
        ale.study_ma(np.zeros((1, 3), dtype=int), nimare_mni152_2mm(), **kwargs)


# -- per-study modelled activation ----------------------------------------------------------------


def nimare_rows(csr, row):
    lo, hi = csr.indptr[row], csr.indptr[row + 1]
    idx, vals = csr.indices[lo:hi], csr.data[lo:hi]
    return idx[vals > 0].astype(np.int64), vals[vals > 0].astype(np.float64)


def test_study_ma_is_nimares_alekernel_row():
    """Every study of a real 21-experiment Sleuth file, sample sizes from the file: MA voxel for voxel."""
    dset = convert_sleuth_to_dataset(SLEUTH_FILES["semantic"])
    csr = ALEKernel().transform(dset, return_type="sparse")
    grid = grid_of(dset.masker.mask_img)
    table = read_database(SLEUTH_FILES["semantic"])
    studies, codes = study_index(table["study_id"].values)
    xyz = np.column_stack([table[c].values for c in "xyz"])
    # NiMARE's rows are its ids sorted; its id is '<name>-analysis_1' for these files
    order = np.argsort([f"{s}-analysis_1" for s in studies])
    assert [f"{studies[s]}-analysis_1" for s in order] == sorted(dset.ids)
    for row, s in enumerate(order):
        rows = codes == s
        idx, vals = ale.study_ma(grid.xyz_to_ijk(xyz[rows]), grid, sample_size=table["sample_size"].values[rows][0])
        t_idx, t_vals = nimare_rows(csr, row)
        assert idx.dtype == np.int64 and vals.dtype == np.float64
        assert np.array_equal(idx, t_idx) and np.array_equal(vals, t_vals), studies[s]
        assert (np.diff(idx) > 0).all()


def test_study_ma_at_the_edges_and_outside_the_box():
    """Foci on the box's faces and beyond it, overlapping kernels: NiMARE's compute_ale_ma on the same voxels."""
    mask_img = get_template("mni152_2mm", mask="brain")
    grid = grid_of(mask_img)
    ijk = np.array([[0, 0, 0], [90, 108, 90], [-3, 50, 40], [45, 60, 95], [45, 60, 36], [46, 61, 36], [44, 54, 2]])
    csr, _, _ = compute_ale_ma(mask_img, ijk, sample_sizes=12)
    idx, vals = ale.study_ma(ijk, grid, sample_size=12)
    t_idx, t_vals = nimare_rows(csr, 0)
    assert np.array_equal(idx, t_idx) and np.array_equal(vals, t_vals)
    assert idx.size > 1000
    # a study whose only focus is far outside the box has no MA
    far = ale.study_ma(np.array([[400, 0, 0]]), grid, sample_size=12)
    assert far[0].size == 0 and far[1].size == 0
    with pytest.raises(ParameterError, match=r"ijk must be an \(n, 3\) integer array of voxel indices; got float64"):
        ale.study_ma(np.zeros((2, 3)), grid, fwhm=10)


def test_study_ma_is_the_voxelwise_maximum_over_foci():
    grid = nimare_mni152_2mm()
    a, b = np.array([[45, 60, 40]]), np.array([[47, 60, 40]])
    ia, va = ale.study_ma(a, grid, fwhm=10)
    ib, vb = ale.study_ma(b, grid, fwhm=10)
    iab, vab = ale.study_ma(np.vstack([a, b]), grid, fwhm=10)
    dense = np.zeros((2, grid.n_mask))
    dense[0, ia], dense[1, ib] = va, vb
    expected = dense.max(axis=0)
    assert np.array_equal(iab, np.flatnonzero(expected)) and np.array_equal(vab, expected[iab])
    assert (dense.sum(axis=0)[iab] > vab).any()  # overlapping kernels: a maximum, not a sum


# -- stat, p, z -----------------------------------------------------------------------------------


def assert_maps_match(ours: dict, result, where: str) -> dict:
    diffs = {}
    for name in ("stat", "p", "z"):
        theirs = result.get_map(name, return_type="array")
        got = ours[name]
        assert got.dtype == np.float64 and got.shape == theirs.shape, name
        diff = np.abs(got - theirs.astype(np.float64))
        assert diff.max() <= TOL, f"{where} {name}: max |xcoact - NiMARE| = {diff.max():.3g}"
        diffs[name] = float(diff.max())
    # the stat is NiMARE's float32 value exactly, and so are p and z once stored as NiMARE stores them
    assert np.array_equal(ours["stat"].astype(np.float32), result.get_map("stat", return_type="array"))
    assert np.array_equal(ours["p"].astype(np.float32), result.get_map("p", return_type="array"))
    return diffs


def sphere_roi(grid: Grid, center_mm, r_mm: float):
    xyz = nib.affines.apply_affine(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
    inside = (np.linalg.norm(xyz - np.asarray(center_mm, dtype=float), axis=1) <= r_mm).reshape(grid.shape)
    return nib.Nifti1Image(inside.astype(np.uint8), grid.affine)


def xcoact_ale(table, grid, nimare_id, *, roi=None, sample_size=None):
    """ALE of the studies with a focus in the ROI (all when None), studies in NiMARE's (sorted-id) order."""
    studies, codes = study_index(table["study_id"].values)
    xyz = _nimare_peak_xyz(np.column_stack([table[c].values for c in "xyz"]), table["space"].values)
    ijk = grid.xyz_to_ijk(xyz)
    if roi is None:
        chosen = np.arange(len(studies))
    else:
        inside = np.asarray(roi.dataobj) > 0
        at = np.clip(ijk, 0, np.asarray(grid.shape) - 1)
        chosen = np.unique(codes[inside[tuple(at.T)]])
    chosen = sorted(chosen, key=lambda s: nimare_id(studies[s]))
    ma = []
    for s in chosen:
        rows = codes == s
        n = table["sample_size"].values[rows][0] if sample_size is None else sample_size
        ma.append(ale.study_ma(ijk[rows], grid, sample_size=n))
    return ale.ale_maps(ma, grid.n_mask), [nimare_id(studies[s]) for s in chosen]


def sleuth_id(name: str) -> str:
    """NiMARE's id of these files' experiments ('Study: Experiment' -> 'Study-Experiment')."""
    left, sep, _ = name.split("; ")[0].partition(":")
    if sep:  # NiMARE joins a block's name lines with spaces before splitting at the first ':'
        return f"{left.strip()}-{name.replace('; ', ' ').partition(':')[2].strip()}"
    return f"{name}-analysis_1"


@pytest.mark.parametrize(
    "name, roi",
    [
        ("sleuth_example", None),
        ("talairach", None),
        ("semantic", None),
        ("semantic", ((-40, 20, 30), 20.0)),  # left inferior frontal: a MACM-style selection
    ],
)
def test_ale_maps_match_nimare_on_its_sleuth_files(name, roi):
    path = SLEUTH_FILES[name]
    dset = convert_sleuth_to_dataset(path)
    grid = grid_of(dset.masker.mask_img)
    table = read_database(path)
    roi_img = None if roi is None else sphere_roi(grid, *roi)
    ids = list(dset.ids) if roi is None else list(dset.get_studies_by_mask(roi_img))
    ours, our_ids = xcoact_ale(table, grid, sleuth_id, roi=roi_img)
    assert our_ids == sorted(ids) and (roi is None or 2 < len(ids) < len(dset.ids))
    result = ALE().fit(dset.slice(ids))
    assert_maps_match(ours, result, name)
    assert ours["z"].max() > 3  # the maps hold real signal, not only the p = 1 floor


def test_ale_maps_match_nimare_on_the_bundled_sample_with_a_fixed_sample_size():
    """The bundled Neurosynth sample (no sample sizes): ALE(kernel__sample_size=20) on an amygdala MACM selection."""
    import pandas as pd

    path = xcoact.datasets.sample_database_path()
    df = pd.read_table(path)
    data = {}
    for sid, rows in df.groupby("id", sort=False):
        coords = {"space": rows["space"].iloc[0], **{c: rows[c].tolist() for c in "xyz"}}
        data[str(sid)] = {"contrasts": {"1": {"coords": coords}}}
    dset = Dataset(data)
    roi = nib.load(xcoact.datasets.amygdala_roi_path())
    ids = list(dset.get_studies_by_mask(roi))
    result = ALE(kernel__sample_size=20).fit(dset.slice(ids))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        table = read_database(path)
    grid = nimare_mni152_2mm()
    wanted = {int(i[:-2]) for i in ids}
    keep = np.isin(table["study_id"].values, list(wanted))
    ours, our_ids = xcoact_ale(table.isel(peak=keep), grid, lambda s: f"{s}-1", sample_size=20)
    assert our_ids == sorted(ids) and len(ids) > 5
    assert_maps_match(ours, result, "bundled sample")


def test_ale_stat_is_one_minus_the_product():
    grid = nimare_mni152_2mm()
    ma = [
        ale.study_ma(np.array(f), grid, sample_size=n)
        for f, n in (([[45, 60, 40], [30, 60, 40]], 10), ([[46, 60, 41]], 25), ([[20, 40, 30]], 15))
    ]
    dense = np.zeros((3, grid.n_mask))
    for row, (i, v) in enumerate(ma):
        dense[row, i] = v
    expected = 1 - np.prod(1 - dense, axis=0)
    np.testing.assert_allclose(ale.ale_stat(ma, grid.n_mask), expected, rtol=1e-6, atol=1e-9)


def test_null_is_a_distribution_and_p_is_monotone():
    grid = nimare_mni152_2mm()
    ma = [ale.study_ma(np.array([[45 + s, 60, 40]]), grid, sample_size=10 + s) for s in range(6)]
    bins, weights = ale.ale_null(ma, grid.n_mask)
    assert bins[0] == 0 and np.allclose(np.diff(bins), 1e-5) and weights.sum() == pytest.approx(1.0, abs=1e-12)
    maps = ale.ale_maps(ma, grid.n_mask)
    order = np.argsort(maps["stat"])
    assert (np.diff(maps["p"][order]) <= 0).all() and (np.diff(maps["z"][order]) >= 0).all()
    assert (maps["p"][maps["stat"] == 0] == 1).all() and (maps["z"][maps["stat"] == 0] == 0).all()


def test_numpy_and_numba_engines_agree():
    pytest.importorskip("numba")
    grid = nimare_mni152_2mm()
    rng = np.random.default_rng(7)
    ma = [
        ale.study_ma(
            rng.integers([30, 40, 30], [60, 80, 60], size=(rng.integers(1, 6), 3)),
            grid,
            sample_size=int(rng.integers(8, 40)),
        )
        for _ in range(8)
    ]
    a = ale.ale_maps(ma, grid.n_mask, engine="numba")
    b = ale.ale_maps(ma, grid.n_mask, engine="numpy")
    for name in ("stat", "p", "z"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.parametrize(
    "ma, n_mask, message",
    [
        ([], 10, "ma holds no study; ALE needs at least one study's modelled activation."),
        (
            [(np.array([0, 11]), np.array([0.1, 0.2]))],
            10,
            "ma[0]: voxel indices must lie in [0, 10) (the in-mask voxels); got 0..11.",
        ),
        ([(np.array([0, 1]), np.array([0.1]))], 10, "ma[0]: 2 indices but 1 values; expected one value per index."),
        ([(np.array([0]), np.array([1.5]))], 10, "ma[0]: MA values must lie in [0, 1); got 1.5..1.5."),
        ([(np.array([0]), np.array([0.5]))], 0, "n_mask=0; expected the number of in-mask voxels, an int >= 1."),
        (
            [(np.array([3, 1, 3]), np.array([0.1, 0.2, 0.3]))],
            10,
            "ma[0]: voxel indices repeat; expected each voxel once per study (its MA, the maximum over its foci).",
        ),
        (
            (np.array([0, 1]), np.array([0.1, 0.2])),
            10,
            "ma must be a list of (index, values) pairs, one per study; got a single pair.",
        ),
    ],
)
def test_ale_maps_inputs_are_checked(ma, n_mask, message):
    with pytest.raises(ParameterError) as err:
        ale.ale_maps(ma, n_mask)
    assert str(err.value) == message


def test_null_cut_at_the_largest_statistic_keeps_the_bins_below_bit_for_bit():
    """ale_maps keeps the null's bins one by one only up to the largest ALE: those bins are the full null's."""
    grid = nimare_mni152_2mm()
    rng = np.random.default_rng(3)
    ma = [ale.study_ma(rng.integers([35, 50, 30], [55, 70, 50], size=(4, 3)), grid, sample_size=15) for _ in range(12)]
    studies = ale._as_study_list(ma, grid.n_mask)
    bins, full = ale._null(studies, grid.n_mask, "auto")
    assert full[-1] == 0 and full.size == bins.size + 1
    top = 900
    assert 0 < top < bins.size - 1000 and full[top + 1 :].sum() > 0
    _, cut = ale._null(studies, grid.n_mask, "auto", upto=top)
    assert cut.size == top + 2
    assert np.array_equal(cut[: top + 1], full[: top + 1])
    assert cut[-1] == pytest.approx(full[top + 1 :].sum(), rel=1e-12)
    stat = np.linspace(0, top * 1e-5, 500).astype(np.float32)
    np.testing.assert_allclose(ale._tail_p(stat, cut, bins), ale.null_to_p(stat, bins, full[:-1]), rtol=1e-12)


def test_study_sample_sizes_from_the_table_and_the_errors_without_them(tmp_path):
    from xcoact.table import make_table

    studies, sizes = ale.study_sample_sizes(read_database(SLEUTH_FILES["sleuth_example"]))
    assert sizes.tolist() == [50.0, 46.0, 20.0] and len(studies) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        sample = read_database(xcoact.datasets.sample_database_path())
    with pytest.raises(ParameterError) as err:
        ale.study_sample_sizes(sample)
    assert str(err.value) == (
        f"{sample.attrs['database']}: no sample sizes (the table has no 'sample_size'; Neurosynth and NeuroQuery "
        "files record none), so the ALE kernel of its 100 studies cannot be sized by them; pass a fixed kernel for "
        "every study instead (sample_size=N subjects, or fwhm=MM)."
    )
    partial = make_table(
        ["a", "b", "b", "c"],
        [1.0] * 4,
        [0.0] * 4,
        [0.0] * 4,
        ["MNI"] * 4,
        database="db.txt",
        fmt="test",
        sample_size=[10.0, np.nan, np.nan, 12.0],
    )
    with pytest.raises(ParameterError) as err:
        ale.study_sample_sizes(partial)
    assert str(err.value) == (
        "db.txt: 1 of 3 studies have no sample size ('b'), so their ALE kernel cannot be sized by it; add them to "
        "the source (e.g. '// Subjects = N' in a Sleuth file) or pass a fixed kernel for every study instead "
        "(sample_size=N subjects, or fwhm=MM)."
    )
    mixed = make_table(
        ["a", "a"],
        [1.0, 2.0],
        [0.0] * 2,
        [0.0] * 2,
        ["MNI"] * 2,
        database="db.txt",
        fmt="test",
        sample_size=[10.0, 11.0],
    )
    with pytest.raises(ParameterError, match="study 'a' has peaks with different sample sizes"):
        ale.study_sample_sizes(mixed)


def test_study_ma_without_numba_is_the_same(monkeypatch):
    """The numpy placement (numba not installed) gives the compiled one's MA exactly, foci off the grid included."""
    grid = nimare_mni152_2mm()
    ijk = np.array([[45, 60, 40], [46, 62, 40], [-5, 50, 40], [88, 100, 85], [0, 0, 0]])
    compiled = ale.study_ma(ijk, grid, sample_size=8)
    monkeypatch.setattr(ale, "_numba_place", lambda: None)
    plain = ale.study_ma(ijk, grid, sample_size=8)
    assert np.array_equal(compiled[0], plain[0]) and np.array_equal(compiled[1], plain[1])
    assert compiled[0].size > 5000
