"""Figures of result maps: real PNG files rendered headless and read back, axes in mm, batches."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

import xcoact
from xcoact.cli import main
from xcoact.errors import OutputError, ParameterError
from xcoact.plot import plot, to_png

FDR = "association-test_z_FDR_0.01"


def _cube():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(xcoact.datasets.sample_database_path(), r=6)


@pytest.fixture(scope="module")
def amygdala_maps():
    """The amygdala seed's computed maps on the bundled 100-study sample (threshold 0.1: 9 studies)."""
    return _cube().coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1).compute()


@pytest.fixture(scope="module")
def sphere_batch():
    """Three separate 10 mm spheres on the sample; the third lies outside the brain (a degenerate seed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _cube().coact.seed(
            {"dACC": [[0, 20, 28]], "l$dl$pfc": [[-40, 20, 28]], "outside": [[60, -100, 60]]}, r=10, threshold=0.1
        )


def _peak_mm(ds, name):
    values = ds[name].values
    i, j, k = np.unravel_index(np.nanargmax(np.abs(values)), values.shape)
    return float(ds["x"][i]), float(ds["y"][j]), float(ds["z"][k])


def _axes(fig, prefix):
    return [ax for ax in fig.axes if ax.get_label().startswith(prefix)]


def test_single_seed_png_headless_read_back(amygdala_maps, tmp_path):
    fig = plot(amygdala_maps, dpi=80)
    assert isinstance(fig, Figure)
    path = to_png(fig, tmp_path / "amygdala.png")
    assert path == str(tmp_path / "amygdala.png")
    assert os.listdir(tmp_path) == ["amygdala.png"]  # no temporary file left
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    w, h = fig.get_size_inches() * 80
    assert img.shape[:2] == (round(h), round(w))
    rgb = img[..., :3]
    assert (rgb < 0.95).any(axis=-1).mean() > 0.2  # not blank: template, outlines, text
    overlay = (rgb[..., 0] - rgb[..., 2]) > 0.5  # warm colours: only the map draws them
    assert overlay.sum() > 200


def test_never_imports_pyplot_or_switches_backend(amygdala_maps, tmp_path, monkeypatch):
    import matplotlib

    before = matplotlib.rcParams._get_backend_or_none()
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # importing pyplot now fails

    def refuse(*args, **kwargs):
        raise AssertionError("xcoact must not select a matplotlib backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    to_png(amygdala_maps, tmp_path / "m.png", kind="glass", dpi=40)
    assert matplotlib.image.imread(tmp_path / "m.png").shape[0] > 100
    assert matplotlib.rcParams._get_backend_or_none() == before


def test_axes_in_mm_on_grid_and_cut_through_peak(amygdala_maps):
    fig = plot(amygdala_maps)
    grid = {c: set(np.round(amygdala_maps[c].values, 6)) for c in "xyz"}
    slices = _axes(fig, "slice ")
    glass = _axes(fig, "glass ")
    assert len(slices) == 3 and len(glass) == 3
    px, py, pz = _peak_mm(amygdala_maps, FDR)
    titles = {ax.get_label(): ax.get_title() for ax in slices}
    assert titles["slice x"] == f"sagittal, x = {px:g} mm"
    assert titles["slice y"] == f"coronal, y = {py:g} mm"
    assert titles["slice z"] == f"axial, z = {pz:g} mm"
    planes = {"x": ("y", "z"), "y": ("x", "z"), "z": ("x", "y")}
    for ax in slices + glass:
        h, v = planes[ax.get_label()[-1]]
        assert ax.get_xlabel() == f"{h} (mm)" and ax.get_ylabel() == f"{v} (mm)"
        for axis_name, ticks, labels in (
            (h, ax.get_xticks(), ax.get_xticklabels()),
            (v, ax.get_yticks(), ax.get_yticklabels()),
        ):
            assert len(ticks) >= 2
            assert set(np.round(ticks, 6)) <= grid[axis_name]  # every tick on a voxel centre
            assert [float(t.get_text()) for t in labels] == pytest.approx(list(ticks))
        lab_h, lab_v = amygdala_maps[h].values, amygdala_maps[v].values
        extent = ax.images[-1].get_extent()  # voxel edges, in mm
        assert extent == pytest.approx([lab_h.min() - 1, lab_h.max() + 1, lab_v.min() - 1, lab_v.max() + 1])


def test_title_states_map_seed_and_thresholds(amygdala_maps):
    title = plot(amygdala_maps)._suptitle.get_text()
    assert FDR in title and "amygdala_roi" in title
    assert "FDR q = 0.01" in title and "overlap > 0.1 of the ROI" in title and "(9 of 100 studies)" in title
    title = plot(amygdala_maps, "association-test_z", threshold=3.5)._suptitle.get_text()
    assert "association-test_z " in title and "|value| > 3.5" in title and "unthresholded" in title


def test_colour_bar_matches_the_map(amygdala_maps):
    fig = plot(amygdala_maps, kind="glass")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    assert bars[0].get_ylabel() == FDR
    top = float(np.nanmax(np.abs(amygdala_maps[FDR].values)))
    assert bars[0].get_ylim() == pytest.approx((0.0, top))  # a positive map: 0 .. peak
    # a map with negative values gets a symmetric scale
    fig = plot(amygdala_maps, "association-test_z", threshold=1.0, kind="slices")
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    top = float(np.nanmax(np.abs(amygdala_maps["association-test_z"].values)))
    assert bar.get_ylim() == pytest.approx((-top, top))


def test_glass_brain_projects_signed_maximum(amygdala_maps):
    fig = plot(amygdala_maps, "association-test_z", threshold=1.0, kind="glass")
    axial = _axes(fig, "glass z")[0]
    shown = axial.images[-1].get_array()  # (y, x) image, ascending mm
    values = amygdala_maps["association-test_z"].sortby(["x", "y"]).transpose("y", "x", "z").values
    idx = np.argmax(np.abs(values), axis=2)
    expected = np.take_along_axis(values, idx[..., None], axis=2)[..., 0]
    keep = np.abs(expected) > 1.0
    assert np.array_equal(~shown.mask, keep)
    np.testing.assert_array_equal(shown.data[keep], expected[keep])
    assert (expected[keep] < 0).any()  # negative voxels are drawn with their sign


def test_cut_in_mm_and_errors(amygdala_maps):
    fig = plot(amygdala_maps, cut=(-23.2, 20.9, 27.1), kind="slices")  # the nearest voxel centres
    titles = sorted(ax.get_title() for ax in _axes(fig, "slice "))
    assert titles == ["axial, z = 28 mm", "coronal, y = 20 mm", "sagittal, x = -24 mm"]
    with pytest.raises(ParameterError, match=r"cut=.*x = 200 mm lies outside the grid \(x from -90 to 90 mm\)"):
        plot(amygdala_maps, cut=(200, 0, 0))
    with pytest.raises(ParameterError, match=r"name='nope' is not a map.*association-test_z_FDR_0.01"):
        plot(amygdala_maps, "nope")
    with pytest.raises(ParameterError, match=r"kind='3d'.*'all', 'slices', 'glass'"):
        plot(amygdala_maps, kind="3d")
    with pytest.raises(ParameterError, match="threshold=-1"):
        plot(amygdala_maps, threshold=-1)
    with pytest.raises(ParameterError, match="no seed dimension"):
        plot(amygdala_maps, seed="dACC")


def test_other_q_and_presets_pick_the_association_map(tmp_path):
    maps = _cube().coact.seed([[0, 20, 28]], r=10, threshold=0.1, q=0.05)
    title = plot(maps, kind="glass")._suptitle.get_text()
    assert "association-test_z_FDR_0.05" in title and "FDR q = 0.05" in title
    # NiMARE's names: the FDR-corrected association z map wins over p, logp and the uncorrected z
    nimare = "_desc-association_level-voxel_corr-FDR_method-indep"
    renamed = maps.rename(
        {
            "association-test_z": "z_desc-association",
            "pA": "p" + nimare,
            "association-test_z_FDR_0.05": "z" + nimare,
            "pAgF": "logp" + nimare,
        }
    )
    title = plot(renamed, kind="glass")._suptitle.get_text()
    assert title.startswith("z" + nimare) and "FDR q = 0.05 (z of BH-adjusted p)" in title
    # NiMARE's FDR z maps are not zeroed: by default only |z| above the two-tailed z of q is shown
    assert "shown: |value| > 1.96;" in title
    assert plot(renamed.drop_vars("z" + nimare), kind="glass")._suptitle.get_text().startswith("z_desc-association ")


def test_batch_small_multiples(sphere_batch, tmp_path):
    fig = plot(sphere_batch, dpi=60)
    cells = _axes(fig, "seed: ")
    assert [ax.get_label() for ax in cells] == ["seed: dACC", "seed: l$dl$pfc", "seed: outside"]
    assert "degenerate" in cells[2].get_title() and "dACC" in cells[0].get_title()
    assert "3 seeds" in fig._suptitle.get_text() and "FDR q = 0.01" in fig._suptitle.get_text()
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 1
    path = to_png(fig, tmp_path / "batch.png")  # a "$" in a seed name renders literally
    assert matplotlib.image.imread(path).shape[0] > 100
    assert len(_axes(plot(sphere_batch, seed=["outside", "dACC"]), "seed: ")) == 2
    fig = plot(sphere_batch, max_seeds=2)
    assert len(_axes(fig, "seed: ")) == 2 and "2 of 3 seeds" in fig._suptitle.get_text()
    # one seed of a batch is drawn like a single result
    single = plot(sphere_batch, seed="dACC")
    assert len(_axes(single, "slice ")) == 3 and "seed: dACC" in single._suptitle.get_text()
    with pytest.raises(ParameterError, match="not in the batch"):
        plot(sphere_batch, seed=["dACC", "nope"])


def test_batch_voxel_layout_draws_the_same(sphere_batch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        voxel = _cube().coact.seed(
            {"dACC": [[0, 20, 28]], "l$dl$pfc": [[-40, 20, 28]], "outside": [[60, -100, 60]]},
            r=10,
            threshold=0.1,
            layout="voxel",
        )
    a = [ax.images[-1].get_array() for ax in _axes(plot(sphere_batch, view="y"), "seed: ")]
    b = [ax.images[-1].get_array() for ax in _axes(plot(voxel, view="y"), "seed: ")]
    assert len(a) == len(b) == 3
    for one, two in zip(a, b):
        assert np.array_equal(one.mask, two.mask)
        np.testing.assert_array_equal(one.filled(0), two.filled(0))
    assert (~a[0].mask).sum() > 100


def test_accessor_plot_and_to_png_refuses_existing(amygdala_maps, tmp_path):
    fig = amygdala_maps.coact.plot(kind="glass", dpi=40)
    assert len(_axes(fig, "glass ")) == 3
    path = tmp_path / "out.png"
    path.write_bytes(b"earlier")
    with pytest.raises(OutputError, match="already exists; pass overwrite=True"):
        to_png(fig, path)
    assert path.read_bytes() == b"earlier"
    to_png(amygdala_maps, path, overwrite=True, kind="glass", dpi=40)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(OutputError, match="output directory does not exist"):
        to_png(fig, tmp_path / "missing" / "out.png")


@pytest.mark.parametrize("error", [OSError("disk full"), RuntimeError("renderer crashed")])
def test_failed_png_write_leaves_no_partial_file(amygdala_maps, tmp_path, monkeypatch, error):
    fig = plot(amygdala_maps, kind="glass", dpi=40)
    target = tmp_path / "map.png"
    target.write_bytes(b"the earlier figure")

    def half_written(self, fname, *args, **kwargs):
        with open(fname, "wb") as fh:  # some bytes reach the disk, then the save fails
            fh.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 1000)
        raise error

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OutputError if isinstance(error, OSError) else RuntimeError, match=str(error)):
        to_png(fig, target, overwrite=True)
    assert target.read_bytes() == b"the earlier figure"
    assert os.listdir(tmp_path) == ["map.png"]
    fresh = tmp_path / "fresh.png"
    with pytest.raises((OutputError, RuntimeError)):
        to_png(fig, fresh)
    assert not fresh.exists() and os.listdir(tmp_path) == ["map.png"]


def test_cli_plot_writes_png_beside_the_maps(tmp_path, capsys):
    out = tmp_path / "dacc"
    # headless, with an interactive backend configured that cannot start without a display
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xcoact.cli",
            "coactivation",
            "--seed",
            "0,20,28",
            "--r",
            "10",
            "--threshold",
            "0.1",
            "--outroot",
            str(out),
            "--plot",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "MPLBACKEND": "TkAgg"},
    )
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "dacc.png"
    assert f"  {png}" in proc.stdout and "files written (10)" in proc.stdout
    img = matplotlib.image.imread(png)
    assert img.shape[0] > 300 and (img[..., :3] < 0.95).any(axis=-1).mean() > 0.2
    assert len(list(tmp_path.glob("dacc_*.nii.gz"))) == 9
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # the picture is checked with the other outputs before anything is computed
    (tmp_path / "only.png").write_bytes(b"keep")
    status = main(
        [
            "coactivation",
            "--seed",
            "0,20,28",
            "--r",
            "10",
            "--threshold",
            "0.1",
            "--outroot",
            str(tmp_path / "only"),
            "--plot",
            "--no-nifti",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2 and "already exist" in err and "only.png" in err
    assert (tmp_path / "only.png").read_bytes() == b"keep"
