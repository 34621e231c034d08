"""Results a person can read (issue 15, point 9).

On a large database nearly half the brain passes FDR, z is capped on
hundreds of tied voxels and topic features are carried by every study; the
defaults must still give a readable figure, cluster table and decoding.
The sample maps are small, so these tests build the large-database
situations from real results (a map replaced by one covering half the brain,
a plateau of tied maxima) and check what the reader is shown and told.
"""

from __future__ import annotations

import os
import re
import warnings

import nibabel as nib
import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.analyses import decode as xdecode
from xcoact.errors import LargeRoiWarning
from xcoact.features import read_features
from xcoact.plot import MAX_SHOWN_FRACTION, display_threshold, plot, png_bytes
from xcoact.report import report_html
from xcoact.stats.clusters import cluster_table, clusters, peak_index, pick_map

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LDA_NPZ = os.path.join(
    HERE, "data", "lda50", "data-neurosynth_version-7_vocab-LDA50_source-abstract_type-weight_features.npz"
)
FDR = "association-test_z_FDR_0.01"


@pytest.fixture
def maps(sample_cube):
    return sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()


def _half_brain(maps: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """The result with its FDR map replaced by positive z in half of the brain mask (as on Neurosynth v7)."""
    rng = np.random.default_rng(seed)
    mask = maps["brain_mask"].values
    z = np.zeros(mask.shape)
    inside = np.flatnonzero(mask)
    chosen = rng.choice(inside, inside.size // 2, replace=False)
    z.flat[chosen] = rng.uniform(2.5, 12.0, chosen.size)
    out = maps.copy()
    out[FDR] = (("x", "y", "z"), z, maps[FDR].attrs)
    return out


# --------------------------------------------------------------------------- display / cluster-forming threshold


def test_half_the_brain_passing_raises_the_display_threshold_and_says_so(maps):
    big = _half_brain(maps)
    n_mask = int(maps["brain_mask"].sum())
    passing = int((big[FDR].values > 0).sum())
    title = plot(big)._suptitle.get_text()
    m = re.search(r"shown: \|value\| > ([0-9.]+)", title)
    assert m, title
    shown_threshold = float(m.group(1))
    assert shown_threshold > 2.5
    flat = title.replace("\n", " ")
    assert "raised from 0 so that at most 10% of the brain" in flat
    assert f"{passing:,} voxels pass the map's own threshold" in flat
    threshold, note = display_threshold(big, FDR, big[FDR].values, maps["brain_mask"].values)
    assert shown_threshold == pytest.approx(threshold, rel=1e-3)
    shown = int((big[FDR].values > threshold).sum())
    assert 0.09 * n_mask < shown <= MAX_SHOWN_FRACTION * n_mask
    # the report forms its clusters at the same threshold and states it
    html = report_html(big)
    assert "Display and cluster-forming threshold: |value| &gt; " in html
    table = clusters(big, threshold=threshold)
    assert table["size_voxels"].sum() == shown
    assert f"{int(table['size_voxels'].iloc[0]):,}" in html or str(int(table["size_voxels"].iloc[0])) in html


def test_a_small_map_keeps_every_significant_voxel(maps):
    threshold, note = display_threshold(maps, FDR, maps[FDR].values, maps["brain_mask"].values)
    assert threshold == 0.0 and note == ""
    title = plot(maps)._suptitle.get_text()
    assert "shown: every non-zero voxel" in title and "raised" not in title
    assert "Display and cluster-forming threshold: every non-zero voxel." in report_html(maps)


def test_an_explicit_threshold_is_used_as_given(maps):
    big = _half_brain(maps)
    title = plot(big, threshold=3.0)._suptitle.get_text()
    assert "|value| > 3" in title and "raised" not in title


# --------------------------------------------------------------------------- ties at the cap


def test_tied_maxima_are_broken_by_their_centre_of_mass():
    vol = np.zeros((9, 9, 9))
    vol[1:6, 4, 4] = 33.11  # five tied voxels in a row: the middle one, index 3
    vol[7, 7, 7] = 5.0
    assert peak_index(vol) == (3, 4, 4)
    table = cluster_table(vol, [np.arange(9) * 2.0] * 3)
    assert (table.loc[0, "peak_x"], table.loc[0, "peak_value"]) == (6.0, 33.11)
    # an L-shaped plateau: the centre of mass is off the voxels; the nearest tied voxel is taken
    vol = np.zeros((6, 6, 6))
    vol[0:4, 0, 0] = 9.0
    vol[0, 1:4, 0] = 9.0
    # centre (0.86, 0.86, 0): (1, 0, 0) and (0, 1, 0) are equally near; the first in array order is kept
    assert peak_index(vol) == (0, 1, 0)


def test_the_figure_cuts_through_the_tied_peak_the_table_reports(maps):
    capped = maps.copy()
    z = np.zeros(maps[FDR].shape)
    xs = maps["x"].values
    ix = [int(np.flatnonzero(xs == v)[0]) for v in (-8.0, -6.0, -4.0, -2.0, 0.0)]  # five tied voxels along x
    iy = int(np.flatnonzero(maps["y"].values == 20.0)[0])
    iz = int(np.flatnonzero(maps["z"].values == 28.0)[0])
    z[ix, iy, iz] = 33.11
    capped[FDR] = (("x", "y", "z"), z, maps[FDR].attrs)
    table = clusters(capped)
    assert (table.loc[0, "peak_x"], table.loc[0, "peak_y"], table.loc[0, "peak_z"]) == (-4.0, 20.0, 28.0)
    fig = plot(capped, kind="slices")
    titles = [ax.get_title() for ax in fig.axes if ax.get_label().startswith("slice ")]
    assert "sagittal, x = -4 mm" in titles and "coronal, y = 20 mm" in titles and "axial, z = 28 mm" in titles


# --------------------------------------------------------------------------- FWE shown when present, suggested when absent


def test_fwe_maps_are_shown_when_present_and_suggested_when_absent(maps, sample_cube):
    html = report_html(maps)
    assert "No family-wise error correction was run" in html and "maps.coact.fwe(act, n_iter=10000, seed=0)" in html
    corrected = maps.coact.fwe(sample_cube, n_iter=20, seed=0)
    assert pick_map(corrected) == "association-test_z_FWE-voxel_0.05"
    assert "association-test_z_FWE-voxel_0.05" in plot(corrected, kind="glass")._suptitle.get_text()
    html = report_html(corrected)
    assert "The map shown is family-wise error corrected." in html
    assert "Map shown: <code>association-test_z_FWE-voxel_0.05</code>" in html
    html = report_html(corrected, name=FDR)
    assert "Family-wise error corrected maps are in the result" in html


# --------------------------------------------------------------------------- the batch figure's title


def test_the_batch_title_fits_the_figure(sample_cube):
    batch = sample_cube.coact.seed([[0, 20, 28], [-40, 20, 28]], r=10, threshold=0.1, separate=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plot(batch)
    png_bytes(fig)  # lays the figure out and renders it
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig._suptitle.get_window_extent(renderer)
    assert box.x0 >= fig.bbox.x0 - 1 and box.x1 <= fig.bbox.x1 + 1
    assert box.y1 <= fig.bbox.y1 + 1
    # the same text on one line would not fit: the check above is not vacuous
    flat = fig.text(0.5, 0.5, fig._suptitle.get_text().replace("\n", " "), fontsize=10, ha="center")
    assert flat.get_window_extent(renderer).width > fig.bbox.width


# --------------------------------------------------------------------------- topic decoding


def test_topic_features_get_their_own_cut_off(sample_cube):
    lda = read_features(LDA_NPZ)
    assert xdecode.feature_threshold(lda) == 0.05
    assert (
        xdecode.feature_threshold(read_features(xcoact.datasets.data_path("neurosynth_sample_features.txt"))) == 0.001
    )
    seed = sample_cube.coact.seed(xcoact.datasets.sgacc_roi_path(), threshold=0.05)
    terms = ["5_*", "12_*", "20_*"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = seed.coact.decode(lda, act=sample_cube, terms=terms)
        explicit = xdecode.decode(seed, lda, sample_cube, terms=terms, threshold=0.05)
    assert default.attrs["threshold"] == 0.05
    np.testing.assert_array_equal(default["r"].values, explicit["r"].values)
    # with the tf-idf cut-off three of the 50 topics are carried by every study (no map, r = NaN); not with 0.05
    weights = lda.values
    assert int((weights >= 0.001).all(axis=0).sum()) == 3 and int((weights >= 0.05).all(axis=0).sum()) == 0


# --------------------------------------------------------------------------- an ROI covering most of the brain


def test_a_brain_sized_roi_warns_with_its_size(sample_cube, tmp_path):
    template = nib.load(xcoact.datasets.template_path())
    n_mask = int(sample_cube.coact.seed([[0, 20, 28]], r=10, threshold=0.1)["brain_mask"].sum())
    with pytest.warns(
        LargeRoiWarning, match=rf"the ROI covers {n_mask:,} of the {n_mask:,} brain-mask voxels \(100%\)"
    ):
        xcoact.roi_mask(template, xcoact.mni152_2mm())
    # a probabilistic map with a 0.5 background
    data = np.full(template.shape, 0.5, dtype=np.float32)
    path = tmp_path / "prob.nii.gz"
    nib.save(nib.Nifti1Image(data, template.affine), path)
    with pytest.warns(LargeRoiWarning, match=r"prob\.nii\.gz: the ROI covers .*threshold it first"):
        xcoact.roi_mask(str(path), xcoact.mni152_2mm())
    with warnings.catch_warnings():
        warnings.simplefilter("error", LargeRoiWarning)
        xcoact.roi_mask(xcoact.datasets.amygdala_roi_path(), xcoact.mni152_2mm())


# --------------------------------------------------------------------------- versions and the offline route


def test_report_lists_the_software_versions(maps):
    html = report_html(maps)
    assert "<h2>Software versions</h2>" in html
    assert f"<td>{np.__version__}</td>" in html and f"<td>{xcoact.__version__}</td>" in html


def test_index_page_documents_the_offline_route():
    with open(os.path.join(ROOT, "docs", "index.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text[text.index("## Real data offline") :]
    assert "XCOACT_MIRROR" in section and "base_url" in section and "xcoact fetch" in section


# --------------------------------------------------------------------------- 8. cluster tables people publish


def _local_max_brute(vol: np.ndarray, labels: np.ndarray, label: int, ijk) -> bool:
    """True when no 26-neighbour of the same cluster holds a larger value (plain loops)."""
    i, j, k = ijk
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            for dk in (-1, 0, 1):
                a, b, c = i + di, j + dj, k + dk
                if 0 <= a < vol.shape[0] and 0 <= b < vol.shape[1] and 0 <= c < vol.shape[2]:
                    if labels[a, b, c] == label and vol[a, b, c] > vol[i, j, k]:
                        return False
    return True


def test_subpeaks_are_separated_local_maxima_of_their_cluster(sample_cube):
    from scipy import ndimage

    maps = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1).compute()
    name = "association-test_z"
    plain = maps.coact.clusters(name, threshold=3.0)
    table = maps.coact.clusters(name, threshold=3.0, subpeaks=3, min_distance=8.0)
    assert list(table.columns) == [
        "cluster",
        "peak",
        "sign",
        "size_voxels",
        "size_mm3",
        "peak_x",
        "peak_y",
        "peak_z",
        "peak_value",
    ]
    main = table[table["peak"] == 1].drop(columns="peak").reset_index(drop=True)
    main["size_voxels"] = main["size_voxels"].astype(np.int64)
    assert main.equals(plain)  # the main rows are the table without subpeaks
    assert table["size_voxels"].sum() == plain["size_voxels"].sum()  # subpeak rows carry no size
    assert table["peak"].max() == 4 and (table["peak"] > 1).sum() >= 3
    vol = maps[name].values
    xs, ys, zs = (maps[c].values for c in "xyz")
    labels, _ = ndimage.label(vol > 3.0, structure=np.ones((3, 3, 3)))
    for _, group in table[table["sign"] == 1].groupby("cluster"):
        ijk = [
            (
                int(np.flatnonzero(xs == r.peak_x)[0]),
                int(np.flatnonzero(ys == r.peak_y)[0]),
                int(np.flatnonzero(zs == r.peak_z)[0]),
            )
            for r in group.itertuples()
        ]
        label = labels[ijk[0]]
        assert group["peak"].tolist() == list(range(1, len(group) + 1))
        values = group["peak_value"].tolist()
        assert values == sorted(values, reverse=True)
        mm = group[["peak_x", "peak_y", "peak_z"]].to_numpy()
        for n, point in enumerate(ijk[1:], start=1):
            assert labels[point] == label
            assert _local_max_brute(vol, labels, label, point)
            assert np.sqrt(((mm[:n] - mm[n]) ** 2).sum(axis=1)).min() >= 8.0
    # a larger minimum distance keeps fewer subpeaks
    sparse = maps.coact.clusters(name, threshold=3.0, subpeaks=3, min_distance=30.0)
    assert (sparse["peak"] > 1).sum() < (table["peak"] > 1).sum()


def _two_label_atlas(tmp_path):
    amy = nib.load(xcoact.datasets.amygdala_roi_path())
    sgacc = nib.load(xcoact.datasets.sgacc_roi_path())
    data = np.zeros(amy.shape, dtype=np.int16)
    data[np.asarray(amy.dataobj) > 0] = 1
    data[np.asarray(sgacc.dataobj) > 0] = 2
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(data, amy.affine), path)
    return str(path), data, amy.affine


def test_atlas_label_column_from_a_label_image_and_its_table(sample_cube, tmp_path):
    import pandas as pd

    atlas, data, affine = _two_label_atlas(tmp_path)
    maps = sample_cube.coact.seed(xcoact.datasets.amygdala_roi_path(), threshold=0.1).compute()
    lut = tmp_path / "atlas.txt"
    lut.write_text("1\tamygdala\n2\tsubgenual ACC\n")
    by_file = maps.coact.clusters("association-test_z", threshold=3.0, subpeaks=2, atlas=atlas, atlas_labels=str(lut))
    inverse = np.linalg.inv(affine)
    expected = []
    for r in by_file.itertuples():
        i, j, k = np.round(inverse @ [r.peak_x, r.peak_y, r.peak_z, 1.0])[:3].astype(int)
        expected.append({0: "", 1: "amygdala", 2: "subgenual ACC"}[int(data[i, j, k])])
    assert by_file["atlas_label"].tolist() == expected
    assert "amygdala" in expected and "" in expected
    # nilearn's two ways of naming labels: a list with "Background" first, and a lut table
    by_list = maps.coact.clusters(
        "association-test_z",
        threshold=3.0,
        subpeaks=2,
        atlas=nib.load(atlas),
        atlas_labels=["Background", "amygdala", "subgenual ACC"],
    )
    lut_frame = pd.DataFrame({"index": [0, 1, 2], "name": ["Background", "amygdala", "subgenual ACC"]})
    by_frame = maps.coact.clusters("association-test_z", threshold=3.0, subpeaks=2, atlas=atlas, atlas_labels=lut_frame)
    assert by_list["atlas_label"].tolist() == expected == by_frame["atlas_label"].tolist()
    # without names, the value is the label
    values = maps.coact.clusters("association-test_z", threshold=3.0, atlas=atlas)["atlas_label"].tolist()
    assert set(values) <= {"", "1", "2"} and "1" in values


def test_cluster_table_options_are_validated(maps, tmp_path):
    with pytest.raises(xcoact.ParameterError, match=r"subpeaks=-1 is not valid; expected an integer >= 0"):
        maps.coact.clusters(subpeaks=-1)
    with pytest.raises(xcoact.ParameterError, match=r"min_distance='8' is not valid; expected a distance in mm"):
        maps.coact.clusters(subpeaks=1, min_distance="8")
    with pytest.raises(
        xcoact.ParameterError, match=r"atlas_labels names the values of an atlas image; pass the image too"
    ):
        maps.coact.clusters(atlas_labels={1: "a"})
    prob = tmp_path / "prob.nii.gz"
    template = nib.load(xcoact.datasets.template_path())
    nib.save(nib.Nifti1Image(np.full(template.shape, 0.3, dtype=np.float32), template.affine), prob)
    with pytest.raises(xcoact.ParameterError, match=r"prob\.nii\.gz: an atlas needs integer label values"):
        maps.coact.clusters(atlas=str(prob))


def test_a_huge_sphere_warns_with_a_radius_hint():
    with pytest.warns(LargeRoiWarning, match=r"r=100 mm\): the ROI covers .* use a smaller r"):
        xcoact.roi_mask([[0, -20, 20]], xcoact.mni152_2mm(), r=100)
