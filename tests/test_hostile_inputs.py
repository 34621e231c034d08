"""Hostile inputs of issue 11: study ids, merged experiments, raw crashes, unbounded memory, odd files.

Each test pins a class of input that on the earlier main gave wrong numbers
silently, escaped as a raw Python exception (a traceback in the CLI) or took
memory out of all proportion; docs/reliability.md ("Hostile inputs") lists
them with their messages.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import tracemalloc
import warnings

import nibabel as nib
import numpy as np
import pytest

import xcoact
from xcoact.cli import main
from xcoact.errors import XcoactWarning
from xcoact.kernels import MAX_SPHERE_VOXELS, sphere_offsets

MNI_AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
SHAPE = (91, 109, 91)


def write(path, text: str) -> str:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return str(path)


def quiet_read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.read_database(path, **kw)


def ids_of(table) -> list[str]:
    return [str(i) for i in table["study_id"].values.tolist()]


# ---------------------------------------------------------------------------------------------
# 1. Study ids are strings exactly as written, in every reader, every pass and every writer
# ---------------------------------------------------------------------------------------------

NUMERIC_LOOKING = ["17.1", "17.10", "17.2", "0012", "12", "1e3", "1000", "+5", "5"]


def neurosynth_text(ids, blank_last_line: bool = False) -> str:
    rows = "".join(f"{sid}\t{i}\t{-i}\t{i % 7}\tMNI\n" for i, sid in enumerate(ids))
    return "id\tx\ty\tz\tspace\n" + rows + ("\n" if blank_last_line else "")


@pytest.mark.parametrize("blank_last_line", [False, True], ids=["fast-pass", "careful-pass"])
def test_numeric_looking_ids_stay_apart_in_both_passes(tmp_path, blank_last_line):
    """17.1 and 17.10, 0012 and 12 are different studies, whichever pass parses the file."""
    path = write(tmp_path / "database.txt", neurosynth_text(NUMERIC_LOOKING, blank_last_line))
    table = quiet_read(path)
    assert ids_of(table) == NUMERIC_LOOKING
    assert table.attrs["n_studies"] == len(NUMERIC_LOOKING)


def test_numeric_looking_space_labels_are_kept_as_written(tmp_path):
    text = "id\tx\ty\tz\tspace\n1\t0\t0\t0\t1.0\n2\t0\t0\t0\t1\n"
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        table = xcoact.read_database(write(tmp_path / "database.txt", text))
    assert table["space"].values.tolist() == ["1.0", "1"]


def test_v7_ids_join_their_own_metadata_rows(tmp_path):
    """The v7 space join matches ids as text: 0012 (Talairach) and 12 (MNI) keep their own spaces."""
    coords = "id\ttable_id\ttable_num\tpeak_id\tx\ty\tz\n0012\tt\t1\t1\t10\t20\t30\n12\tt\t1\t2\t10\t20\t30\n17.10\tt\t1\t3\t1\t2\t3\n"
    meta = "id\tdoi\tspace\n12\tn/a\tMNI\n0012\tn/a\tTAL\n17.10\tn/a\tMNI\n"
    path = write(tmp_path / "db_coordinates.tsv", coords)
    write(tmp_path / "db_metadata.tsv", meta)
    table = quiet_read(path)
    assert ids_of(table) == ["0012", "12", "17.10"]
    assert table["space"].values.tolist() == ["TAL", "MNI", "MNI"]
    assert table["x"].values[0] != table["x"].values[1]  # the Talairach row was moved to MNI, the other not


def test_neuroquery_and_sleuth_keep_ids_as_written(tmp_path):
    nq = "id\ttable_id\ttable_name\tx\ty\tz\n" + "".join(
        f"{s}\tt\tn\t1\t2\t3\n" for s in ("17.1", "17.10", "0012", "12")
    )
    assert ids_of(quiet_read(write(tmp_path / "nq_coordinates.tsv", nq), format="neuroquery")) == [
        "17.1",
        "17.10",
        "0012",
        "12",
    ]
    sleuth = "// Reference = MNI\n// 17.1\n1 2 3\n\n// 17.10\n4 5 6\n\n// 0012\n1 1 1\n\n// 12\n2 2 2\n"
    assert ids_of(quiet_read(write(tmp_path / "s.txt", sleuth))) == ["17.1", "17.10", "0012", "12"]


WRITER_FILES = {
    "neurosynth": "database.txt",
    "neurosynth-v7": "db_coordinates.tsv.gz",
    "sleuth": "sleuth.txt",
    "nimare-json": "dataset.json",
    "neuroquery": "nq_coordinates.tsv",
}


@pytest.mark.parametrize("fmt", sorted(WRITER_FILES))
def test_every_writer_round_trips_numeric_looking_ids(tmp_path, fmt):
    ids = ["17.1", "17.10", "0012", "12", "007", "7"]
    table = xcoact.table.make_table(
        np.array(ids, dtype=object), np.arange(6.0), np.zeros(6), np.ones(6), ["MNI"] * 6, database="ids", fmt="test"
    )
    assert ids_of(table) == ids
    path = xcoact.write_database(table, tmp_path / WRITER_FILES[fmt], format=fmt)
    back = quiet_read(path, format=fmt)
    want = [f"{i}-1" for i in ids] if fmt == "nimare-json" else ids  # NiMARE names each contrast
    assert ids_of(back) == want
    np.testing.assert_array_equal(back["x"].values, table["x"].values)


@pytest.mark.parametrize("bad", [" 12", "12 ", ""])
def test_writers_refuse_ids_that_would_not_read_back_as_written(tmp_path, bad):
    table = xcoact.table.make_table(
        np.array(["a", "b"], dtype=object), [0.0, 1], [0.0, 1], [0.0, 1], ["MNI"] * 2, database="t", fmt="test"
    )
    table = table.assign(study_id=("peak", np.array(["a", bad], dtype=str)))
    for fmt in WRITER_FILES:
        with pytest.raises(xcoact.ParameterError, match=r"are empty or start or end with white space"):
            xcoact.write_database(table, tmp_path / WRITER_FILES[fmt], format=fmt)
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------------------------
# 4. Merged experiments
# ---------------------------------------------------------------------------------------------


def test_sleuth_blocks_with_one_name_are_refused_naming_both(tmp_path):
    text = (
        "// Reference = MNI\n// Smith 2001: pain\n// Subjects = 10\n1 2 3\n4 5 6\n\n"
        "// Jones: heat\n7 8 9\n\n// Smith 2001: pain\n// Subjects = 12\n10 11 12\n"
    )
    path = write(tmp_path / "sleuth.txt", text)
    with pytest.raises(xcoact.DatabaseError) as err:
        xcoact.read_database(path)
    assert str(err.value) == (
        f"{path}: 1 experiment name(s) open more than one block of coordinates - 'Smith 2001: pain' at line 2 "
        "(Subjects = 10) and line 10 (Subjects = 12). Each block is one experiment (its own sample), and blocks "
        "with one name would merge into one study; give each block a distinct name (e.g. add ' (2)' to the second)."
    )


def test_sleuth_joined_names_clash_with_a_single_name(tmp_path):
    """Two name lines join as 'A; B': a later block named 'A; B' would merge with it."""
    text = "// Reference = MNI\n// A\n// B\n1 2 3\n\n// A; B\n4 5 6\n"
    with pytest.raises(xcoact.DatabaseError, match=r"'A; B' at line 2 and line 6"):
        xcoact.read_database(write(tmp_path / "sleuth.txt", text))


def test_sleuth_distinct_names_and_one_block_still_read(tmp_path):
    text = "// Reference = MNI\n// Smith 2001: pain\n// Subjects = 10\n1 2 3\n\n// Smith 2001: pain (2)\n4 5 6\n"
    table = quiet_read(write(tmp_path / "sleuth.txt", text))
    assert ids_of(table) == ["Smith 2001: pain", "Smith 2001: pain (2)"]


def test_nimare_contrast_ids_that_collide_are_refused_naming_both(tmp_path):
    coords = {"space": "MNI", "x": [1], "y": [2], "z": [3]}
    doc = {"s-1": {"contrasts": {"1": {"coords": coords}}}, "s": {"contrasts": {"1-1": {"coords": coords}}}}
    path = write(tmp_path / "dataset.json", json.dumps(doc))
    with pytest.raises(xcoact.DatabaseError) as err:
        xcoact.read_database(path)
    assert str(err.value) == (
        f"{path}: 1 contrast id(s) are made twice - 's-1-1' from 's-1' -> contrasts -> '1' and from 's' -> "
        "contrasts -> '1-1'. NiMARE names each contrast '{study}-{contrast}', so these different contrasts would "
        "merge into one study; rename one study or contrast so the joined ids differ."
    )


# ---------------------------------------------------------------------------------------------
# 8. Raw exceptions become xcoact errors; numpy scalars simply work
# ---------------------------------------------------------------------------------------------


def roi_data(dtype=np.uint8) -> np.ndarray:
    data = np.zeros(SHAPE, dtype=dtype)
    data[40:50, 60:70, 50:60] = 1
    return data


def test_roi_affine_with_nan_is_an_roi_error(tmp_path):
    affine = MNI_AFFINE.copy()
    affine[0, 3] = np.nan
    path = str(tmp_path / "nan.nii.gz")
    nib.save(nib.Nifti1Image(roi_data(), affine), path)
    with pytest.raises(
        xcoact.RoiError,
        match=r"nan\.nii\.gz: the affine \[\[ -2\., 0\., 0\., nan\], .* holds NaN or infinite "
        r"values .*Save the image again with a valid affine",
    ):
        xcoact.roi_mask(path, xcoact.mni152_2mm())


def test_rgb_roi_is_an_roi_error(tmp_path):
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"][40:50, 60:70, 50:60] = 255
    path = str(tmp_path / "rgb.nii.gz")
    nib.save(nib.Nifti1Image(rgb, MNI_AFFINE), path)
    with pytest.raises(
        xcoact.RoiError,
        match=r"rgb\.nii\.gz: image holds RGB voxels \(dtype .*\); expected one real "
        r"value per voxel",
    ):
        xcoact.roi_mask(path, xcoact.mni152_2mm())


def test_huge_radius_is_a_parameter_error_not_a_memory_error(sample_table):
    message = r"r=1e\+06 mm reaches 500,000 voxels of 2 mm; spheres are limited to 170 voxels along any axis"
    with pytest.raises(xcoact.ParameterError, match=message):
        xcoact.roi_mask([[0, 0, 0]], xcoact.mni152_2mm(), r=1e6)
    with pytest.raises(xcoact.ParameterError, match=message):
        xcoact.activations(sample_table, r=1e6)


@pytest.mark.parametrize("radius", [np.float32(10), np.int64(10), np.int32(10)], ids=["float32", "int64", "int32"])
def test_numpy_scalar_radius_simply_works(sample_cube, tmp_path, radius):
    got = sample_cube.coact.seed([[0, 20, 28]], 0.1, r=radius).compute()
    want = sample_cube.coact.seed([[0, 20, 28]], 0.1, r=10).compute()
    assert got.attrs["n_roi"] == want.attrs["n_roi"] == 515
    for name in want.data_vars:
        np.testing.assert_array_equal(got[name].values, want[name].values)
    assert json.loads(got.attrs["seed"])["r"] == 10
    xcoact.to_netcdf(got, str(tmp_path / "maps.nc"))


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["coactivation", *args])
    return code, capsys.readouterr().err


def test_cli_reports_hostile_inputs_without_a_traceback(tmp_path, capsys):
    out = str(tmp_path / "out")
    code, err = run_cli(capsys, "--seed", "0,20,28", "--database", "/dev/zero", "--outroot", out)
    # a data error: exit status 1 (usage errors are 2)
    assert code == 1 and err.startswith("xcoact: error: /dev/zero: looks like binary data") and "Traceback" not in err
    code, err = run_cli(capsys, "--seed", "0,20,28", "--r", "1e6", "--outroot", out)
    assert code == 2 and "spheres are limited to 170 voxels" in err
    affine = MNI_AFFINE.copy()
    affine[1, 3] = np.nan
    nib.save(nib.Nifti1Image(roi_data(), affine), str(tmp_path / "nan.nii.gz"))
    code, err = run_cli(capsys, "--seed", str(tmp_path / "nan.nii.gz"), "--outroot", out)
    assert code == 2 and "holds NaN or infinite values" in err
    assert not [f for f in os.listdir(tmp_path) if f.startswith("out")]


# ---------------------------------------------------------------------------------------------
# 9. Memory bounded by the input, not by what it decompresses or converts to
# ---------------------------------------------------------------------------------------------


def traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        try:
            fn()
        except xcoact.XcoactError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_of_zeros_is_refused_from_its_first_bytes(tmp_path):
    """64 MB of zeros in a 64 kB gzip: refused after 4 kB, not decompressed whole first."""
    path = tmp_path / "database.txt.gz"
    with gzip.open(path, "wb") as fh:
        for _ in range(64):
            fh.write(bytes(1 << 20))
    with pytest.raises(xcoact.DatabaseError, match=r"database\.txt\.gz: looks like binary data, not a text database\."):
        xcoact.read_database(path)
    assert traced_peak(lambda: xcoact.read_database(path)) < 4 << 20


def test_binary_data_after_a_text_head_is_refused_naming_the_byte(tmp_path):
    text = neurosynth_text([str(i) for i in range(300)]).encode()
    path = tmp_path / "database.txt.gz"
    path.write_bytes(gzip.compress(text + bytes(3 << 20)))
    with pytest.raises(
        xcoact.DatabaseError,
        match=rf"looks like binary data, not a text database \(a NUL byte at "
        rf"byte {len(text):,} of the text\)",
    ):
        xcoact.read_database(path)


def test_uint8_roi_is_not_converted_to_float64(tmp_path):
    """A 1-byte mask must not be copied to 8 bytes a voxel: peak memory stays within 3.5x the image (main: 12x)."""
    shape = (300, 300, 300)  # the MNI lattice, a wider field of view (27 MB as uint8, 216 MB as float64)
    affine = MNI_AFFINE.copy()
    affine[:3, 3] = [90 + 2 * 100, -126 - 2 * 90, -72 - 2 * 100]
    data = np.zeros(shape, dtype=np.uint8)
    data[140:150, 150:160, 150:160] = 1
    path = str(tmp_path / "big.nii")
    nib.save(nib.Nifti1Image(data, affine), path)
    del data
    grid = xcoact.mni152_2mm()
    mask = xcoact.roi_mask(path, grid)
    assert int(mask.sum()) == 1000
    assert traced_peak(lambda: xcoact.roi_mask(path, grid)) < 3.5 * 27_000_000


def brute_force_ball(r: float, voxel_size) -> np.ndarray:
    """The whole-box definition (SPEC section 3) the slice-by-slice sphere must match exactly."""
    vs = np.asarray(voxel_size, dtype=float)
    reach = [int(np.floor(r / v)) for v in vs]
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij")
    off = np.stack([g.ravel() for g in grids], axis=1)
    return off[np.sqrt(((off * vs) ** 2).sum(axis=1)) <= r]


@pytest.mark.parametrize("voxel_size", [(2, 2, 2), (1, 1, 1), (3, 2, 1.5), (1.2, 2.7, 0.9)])
def test_sphere_by_slices_matches_the_whole_box(voxel_size):
    for r in [0.5, 1, 2, 2.5, 3.9, 6, 7.3, 10, 12, 15.5, 20]:
        np.testing.assert_array_equal(sphere_offsets(r, voxel_size), brute_force_ball(r, voxel_size))


def test_large_sphere_memory_is_that_of_its_offsets():
    r = 150  # 75 voxels: 1.77 million offsets (42 MB as int64); the whole box would be 81 MB per array
    peak = traced_peak(lambda: sphere_offsets(r))
    n = len(sphere_offsets(r))
    assert n == 1_767_063
    assert peak < 2 * n * 3 * 8  # the whole box took 10x that
    with pytest.raises(xcoact.ParameterError, match=rf"limited to {MAX_SPHERE_VOXELS} voxels"):
        sphere_offsets(2 * MAX_SPHERE_VOXELS + 2)


# ---------------------------------------------------------------------------------------------
# 10. Permuted axes, unsafe label names, long cells, pipes, seed numbers
# ---------------------------------------------------------------------------------------------


def test_permuted_axis_roi_gives_the_same_mask(tmp_path):
    """An LIA image (voxel axes j and k swapped) is reordered, not refused as oblique."""
    data = roi_data()
    data[45, 62, 55] = 0  # an asymmetric hole, so a wrong order would show
    las = str(tmp_path / "las.nii.gz")
    nib.save(nib.Nifti1Image(data, MNI_AFFINE), las)
    lia_affine = np.array([[-2.0, 0, 0, 90], [0, 0, 2, -126], [0, -2, 0, 108], [0, 0, 0, 1]])
    # voxel (i, j', k') of the LIA image is (i, k', 90 - j') of the LAS one
    lia_data = np.ascontiguousarray(data[:, :, ::-1].transpose(0, 2, 1))
    lia = str(tmp_path / "lia.nii.gz")
    nib.save(nib.Nifti1Image(lia_data, lia_affine), lia)
    grid = xcoact.mni152_2mm()
    want = xcoact.roi_mask(las, grid)
    got = xcoact.roi_mask(lia, grid)
    assert int(want.sum()) == 999
    np.testing.assert_array_equal(got.values, want.values)


def test_oblique_affine_is_still_refused_as_oblique(tmp_path):
    affine = MNI_AFFINE.copy()
    affine[0, 1] = 0.5
    path = str(tmp_path / "oblique.nii.gz")
    nib.save(nib.Nifti1Image(roi_data(), affine), path)
    with pytest.raises(xcoact.RoiError, match=r"is oblique \(it rotates or shears the voxel axes\)"):
        xcoact.roi_mask(path, xcoact.mni152_2mm())


def test_label_names_with_slashes_make_files_that_can_be_written(sample_cube, tmp_path):
    atlas = np.zeros(SHAPE, dtype=np.int16)
    atlas[40:50, 60:70, 50:60] = 1
    atlas[30:40, 60:70, 50:60] = 2
    atlas[50:60, 60:70, 50:60] = 3
    path = str(tmp_path / "atlas.nii.gz")
    nib.save(nib.Nifti1Image(atlas, MNI_AFFINE), path)
    lut = write(tmp_path / "lut.txt", "1\tLeft/Right Amygdala\n2\t../../escape\n3\t" + "n" * 300 + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        maps = sample_cube.coact.seed(path, 0.0, by_label=True, labels=lut).compute()
    assert maps["seed"].values.tolist() == ["Left_Right Amygdala", ".._.._escape", "n" * 100]
    outroot = str(tmp_path / "out" / "maps")
    os.makedirs(os.path.dirname(outroot))
    files = xcoact.to_nifti(maps, outroot)
    assert files and all(os.path.dirname(f) == os.path.dirname(outroot) for f in files)
    assert all(os.path.exists(f) for f in files)


def test_a_long_cell_is_quoted_cut_to_80_characters(tmp_path):
    cell = "9" * 50_000 + "x"
    path = write(tmp_path / "database.txt", f"id\tx\ty\tz\tspace\n1\t{cell}\t0\t0\tMNI\n")
    with pytest.raises(xcoact.DatabaseError) as err:
        xcoact.read_database(path)
    msg = str(err.value)
    assert f"line 2 column x: '{'9' * 78}... (50,003 characters)" in msg
    assert len(msg) < 400


@pytest.mark.parametrize(
    "text, where",
    [
        ("// Reference = MNI\n// a\n1 2 " + "3" * 10_000 + "x\n", "line 3: '1 2 333"),
        ("id\tx\ty\tz\tspace\n1\t0\t0\t0\t" + "M" * 10_000 + "\n", "unknown space label(s) 'MMM"),
        ("id\t" + "q" * 10_000 + "\ty\tz\tspace\n1\t0\t0\t0\tMNI\n", "found ['id', 'qqq"),
    ],
)
def test_long_lines_labels_and_headers_are_cut_too(tmp_path, text, where):
    path = write(tmp_path / ("s.txt" if text.startswith("//") else "database.txt"), text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            xcoact.read_database(path)
            msg = str(caught[0].message)
        except xcoact.DatabaseError as err:
            msg = str(err)
    assert where in msg and "(10,0" in msg and len(msg) < 700


def serve_fifo(path: str, data: bytes) -> threading.Thread:
    os.mkfifo(path)

    def feed():
        with open(path, "wb") as fh:
            fh.write(data)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_piped_database_keeps_its_first_bytes(tmp_path):
    with open(xcoact.datasets.sample_database_path(), "rb") as fh:
        raw = fh.read()
    fifo = str(tmp_path / "pipe")
    feeder = serve_fifo(fifo, raw)
    table = quiet_read(fifo)
    feeder.join(5)
    assert table.attrs["n_studies"] == 100 and table.attrs["n_peaks"] == 2695


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_piped_database_error_names_the_right_line(tmp_path):
    rows = "".join(f"{i}\t1\t2\t3\tMNI\n" for i in range(200)) + "7\tabc\t2\t3\tMNI\n"  # > 2 kB before the bad row
    fifo = str(tmp_path / "pipe")
    feeder = serve_fifo(fifo, ("id\tx\ty\tz\tspace\n" + rows).encode())
    with pytest.raises(xcoact.DatabaseError, match=r"1 row\(s\) with a non-numeric.* - line 202 column x: 'abc'"):
        xcoact.read_database(fifo)
    feeder.join(5)


@pytest.mark.parametrize("coords", ["1e1,20,28", "-4e1,20,28", "+10,.5e1,28.", "1E1 , 20 , 28"])
def test_cli_seed_numbers_in_any_float_notation(tmp_path, capsys, coords):
    out = str(tmp_path / "m")
    code = main(
        ["coactivation", "--seed", coords, "--r", "10", "--threshold", "0.1", "--outroot", out, "--no-progress"]
    )
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert "ROI voxels (in the brain mask): " in stdout
    assert os.path.exists(out + "_association-test_z.nii.gz")
