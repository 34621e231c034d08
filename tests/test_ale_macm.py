"""ALE cube and ALE MACM against NiMARE 0.22.1 (issue 13, points 2-3 and the command line).

Public API only on xcoact's side: ``xcoact.activations(db, kernel="ale")``,
``act.coact.seed(roi)``, ``xcoact coactivation --kernel ale``.  NiMARE reads
the same files with its own readers; its ``ALEKernel`` gives the dense cube
and ``ALE().fit(dset.slice(ids))`` after ``get_studies_by_mask`` the maps.
"""

from __future__ import annotations

import json
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import nimare_sample_dataset
from nimare.dataset import Dataset
from nimare.io import convert_sleuth_to_dataset
from nimare.meta.cbma.ale import ALE
from nimare.meta.kernel import ALEKernel
from nimare_support import NIMARE_MARKS, grid_of, quiet_nimare  # noqa: F401 (an autouse fixture)

import xcoact
from xcoact.cli import main
from xcoact.errors import ParameterError, XcoactWarning
from xcoact.space import Grid

TOL = 1e-5
DATA = os.path.join(os.path.dirname(__file__), "data")
SEMANTIC = os.path.join(DATA, "semantic_knowledge_children.txt")

pytestmark = NIMARE_MARKS


def sample_dataset() -> Dataset:
    """The bundled Neurosynth sample as a NiMARE Dataset (ids '<pmid>-1')."""
    return nimare_sample_dataset()


def sleuth_id(name: str) -> str:
    """NiMARE's id of a Sleuth experiment ('Study: Experiment' -> 'Study-Experiment', else '<name>-analysis_1')."""
    left, sep, _ = name.split("; ")[0].partition(":")
    if sep:
        return f"{left.strip()}-{name.replace('; ', ' ').partition(':')[2].strip()}"
    return f"{name}-analysis_1"


def sample_cube(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.activations(xcoact.datasets.sample_database_path(), preset="nimare", kernel="ale", **kw)


def sphere_roi(grid: Grid, center_mm, r_mm: float):
    xyz = nib.affines.apply_affine(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
    inside = (np.linalg.norm(xyz - np.asarray(center_mm, dtype=float), axis=1) <= r_mm).reshape(grid.shape)
    return nib.Nifti1Image(inside.astype(np.uint8), grid.affine)


def dense_in_mask(act) -> np.ndarray:
    """The cube's values over its in-mask voxels, ``(study, voxel)`` float64."""
    mask = act["brain_mask"].values
    return act.transpose("study", "x", "y", "z").values[:, mask].astype(np.float64)


def assert_maps_match(ds, result, where: str) -> None:
    mask = ds["brain_mask"].values
    for ours, theirs in (("stat", "stat"), ("p", "p"), ("z_map", "z")):
        got = ds[ours].values[mask]
        want = result.get_map(theirs, return_type="array").astype(np.float64)
        diff = np.abs(got - want)
        assert diff.max() <= TOL, f"{where} {theirs}: max |xcoact - NiMARE| = {diff.max():.3g}"
    assert ds["z_map"].values[mask].max() > 3  # real signal, not only the p = 1 floor


# -- the cube -------------------------------------------------------------------------------------


def test_ale_cube_is_nimares_alekernel_on_a_sleuth_file_with_sample_sizes():
    dset = convert_sleuth_to_dataset(SEMANTIC)
    theirs = ALEKernel().transform(dset, return_type="array")  # rows: NiMARE's sorted ids
    grid = grid_of(dset.masker.mask_img)
    act = xcoact.activations(SEMANTIC, kernel="ale", grid=grid, preset="nimare")
    assert act.dtype == np.float32 and act.attrs["kernel"] == "ale"
    assert act.attrs["sample_size"] == "per study (the table's sample_size)"
    assert type(act.data).__name__ == "Array"  # lazy
    ours = dense_in_mask(act)
    order = np.argsort([sleuth_id(s) for s in act["study"].values])
    assert [sleuth_id(act["study"].values[i]) for i in order] == sorted(dset.ids)
    assert ours.shape == theirs.shape == (21, grid.n_mask)
    assert np.array_equal(ours[order], theirs.astype(np.float64))


def test_ale_cube_is_nimares_alekernel_on_the_sample_with_a_fixed_sample_size():
    dset = sample_dataset()
    theirs = ALEKernel(sample_size=20).transform(dset, return_type="array")
    act = sample_cube(sample_size=20)
    assert act.attrs["sample_size"] == 20.0 and act.attrs["fwhm"] == pytest.approx(9.2412, abs=1e-4)
    ours = dense_in_mask(act)
    order = np.argsort([f"{s}-1" for s in act["study"].values])
    assert np.array_equal(ours[order], theirs.astype(np.float64))


def test_ale_cube_with_a_fixed_fwhm_and_its_errors():
    act = sample_cube(fwhm=10)
    assert act.attrs["fwhm"] == 10.0 and "sample_size" not in act.attrs
    with pytest.raises(ParameterError) as err:
        sample_cube()
    msg = str(err.value)
    assert "neurosynth_sample_database.txt: no sample sizes" in msg
    assert "sample_size=N subjects, or fwhm=MM" in msg
    with pytest.raises(ParameterError, match=r"sample_size=20, fwhm=None size the ALE kernel, but kernel='kda'"):
        xcoact.activations(xcoact.datasets.sample_database_path(), kernel="kda", sample_size=20)
    with pytest.raises(ParameterError, match=r"r=6 is a sphere radius; the ALE kernel has none"):
        sample_cube(r=6, sample_size=20)
    with pytest.raises(ParameterError, match="give exactly one"):
        sample_cube(sample_size=20, fwhm=10)


# -- the seed -------------------------------------------------------------------------------------


def test_ale_seed_is_nimares_ale_on_a_sleuth_file():
    dset = convert_sleuth_to_dataset(SEMANTIC)
    grid = grid_of(dset.masker.mask_img)
    roi = sphere_roi(grid, (-40, 20, 30), 20.0)  # left inferior frontal: a MACM-style selection
    ids = list(dset.get_studies_by_mask(roi))
    result = ALE().fit(dset.slice(ids))
    act = xcoact.activations(SEMANTIC, kernel="ale", grid=grid, preset="nimare")
    ds = act.coact.seed(roi)
    assert type(ds["stat"].data).__name__ == "Array"  # lazy until computed
    assert sorted(sleuth_id(s) for s in ds["selected_id"].values) == sorted(ids)
    assert 2 < ds.attrs["n_selected"] == len(ids) < ds.attrs["n_studies"] == 21
    assert ds.attrs["select"] == "focus" and ds.attrs["kernel"] == "ale" and ds.attrs["maps"] == "stat, p, z_map"
    sizes = dict(zip(act["study"].values, xcoact.read_database(SEMANTIC).pipe(_sizes)))
    assert np.array_equal(ds["sample_size"].values, [sizes[s] for s in ds["selected_id"].values])
    assert_maps_match(ds.compute(), result, "semantic")


def _sizes(table):
    from xcoact.stats.ale import study_sample_sizes

    return study_sample_sizes(table)[1]


def test_ale_seed_is_nimares_ale_on_the_sample_with_a_fixed_sample_size():
    dset = sample_dataset()
    roi = nib.load(xcoact.datasets.amygdala_roi_path())
    ids = list(dset.get_studies_by_mask(roi))
    result = ALE(kernel__sample_size=20).fit(dset.slice(ids))
    ds = sample_cube(sample_size=20).coact.seed(xcoact.datasets.amygdala_roi_path())
    assert sorted(f"{s}-1" for s in ds["selected_id"].values) == sorted(ids) and len(ids) > 5
    assert ds.attrs["sample_size"] == 20.0 and (ds["sample_size"].values == 20).all()
    assert_maps_match(ds.compute(), result, "bundled sample")


def test_ale_seed_refuses_chi_square_options():
    act = sample_cube(sample_size=20)
    roi = xcoact.datasets.amygdala_roi_path()
    with pytest.raises(ParameterError, match="an ALE cube's seed analysis takes one seed"):
        act.coact.seed(roi, separate=True)
    with pytest.raises(ParameterError, match="n_iter='bonferroni' applies to the MKDA permutation test only"):
        act.coact.seed(roi, fwe="bonferroni")  # fwe=N runs NiMARE's Monte Carlo FWE (tests/test_ale_doors.py)


# -- the command line -----------------------------------------------------------------------------


def test_cli_writes_the_three_ale_maps_and_prints_the_selection(tmp_path, capsys):
    out = tmp_path / "amy"
    code = main(
        [
            "coactivation",
            "--kernel",
            "ale",
            "--preset",
            "nimare",
            "--sample-size",
            "20",
            "--seed",
            xcoact.datasets.amygdala_roi_path(),
            "--outroot",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "kernel ALE (sample size 20 for every study), preset nimare" in text
    assert "studies selected: 8 of 100" in text
    for name in ("stat", "p", "z"):
        img = nib.load(f"{out}_{name}.nii.gz")
        assert img.shape == (91, 109, 91) and np.asarray(img.dataobj).max() > 0
    ds = sample_cube(sample_size=20).coact.seed(xcoact.datasets.amygdala_roi_path()).compute()
    assert np.array_equal(np.asarray(nib.load(f"{out}_z.nii.gz").dataobj), ds["z_map"].values.astype(np.float32))
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"amy_{n}{ext}" for n in ("stat", "p", "z") for ext in (".nii.gz", ".json")
    )
    side = json.loads((tmp_path / "amy_z.json").read_text())
    assert "ALE" in json.dumps(side) and "9185551" in json.dumps(side)  # the analysis and the selected ids


def test_cli_ale_needs_a_size_for_a_database_without_one(tmp_path, capsys):
    code = main(
        [
            "coactivation",
            "--kernel",
            "ale",
            "--seed",
            xcoact.datasets.amygdala_roi_path(),
            "--outroot",
            str(tmp_path / "x"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "no sample sizes" in err and "sample_size=N subjects, or fwhm=MM" in err
    assert os.listdir(tmp_path) == []
    code = main(
        [
            "coactivation",
            "--sample-size",
            "20",
            "--seed",
            xcoact.datasets.amygdala_roi_path(),
            "--outroot",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2 and "--sample-size and --fwhm size the ALE kernel; add --kernel ale" in capsys.readouterr().err


def test_database_ale_streams_nimares_stat_of_all_studies():
    """xcoact.stats.ale.database_ale (no cube kept): NiMARE's ALE stat of every study, float32 for float32."""
    from xcoact.presets import nimare_mni152_2mm
    from xcoact.stats.ale import database_ale

    result = ALE(kernel__sample_size=20).fit(sample_dataset())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        stat = database_ale(xcoact.datasets.sample_database_path(), sample_size=20, studies_per_task=30)
    assert type(stat.data).__name__ == "Array" and stat.attrs["n_studies"] == 100 and stat.attrs["sample_size"] == 20
    got = stat.values[nimare_mni152_2mm().mask]
    assert np.array_equal(got.astype(np.float32), result.get_map("stat", return_type="array"))
    with pytest.raises(ParameterError, match="no sample sizes"):
        database_ale(xcoact.datasets.sample_database_path())
    with pytest.raises(ParameterError, match=r"studies_per_task=0; expected an int >= 1"):
        database_ale(xcoact.datasets.sample_database_path(), fwhm=10, studies_per_task=0)
