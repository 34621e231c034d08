"""Every message xcoact gives for bad input, pinned (after xarray's test_error_messages.py).

Each message names the argument or the file (and the line, where there is
one), says what was found and what would be valid.  Each error is an
``xcoact.XcoactError`` *and* the builtin a caller would naturally catch.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import warnings

import nibabel as nib
import numpy as np
import pytest

import xcoact
from xcoact.errors import (
    DatabaseError,
    DatabaseFileError,
    DatabaseFileNotFoundError,
    ParameterError,
    RoiError,
    SelectionError,
    XcoactWarning,
)
from xcoact.readers import read_database, sniff_format
from xcoact.select import check_threshold
from xcoact.table import make_table

AFFINE_MNI = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
HEADER = "id\tx\ty\tz\tspace\n"


@contextlib.contextmanager
def raises(cls, builtin, match):
    """pytest.raises(cls, match=...) that also checks the XcoactError + builtin pairing."""
    with pytest.raises(cls, match=match) as info:
        yield info
    assert isinstance(info.value, xcoact.XcoactError), type(info.value).__mro__
    assert isinstance(info.value, builtin), type(info.value).__mro__


def write(tmp_path, name, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def quiet_read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return read_database(path, **kwargs)


# --------------------------------------------------------------------------------------
# Files that cannot be read at all
# --------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = str(tmp_path / "database.txt")
    msg = re.escape(
        f"{path}: no such file. Pass the path of a Neurosynth database.txt, a Neurosynth v7 "
        "coordinates .tsv.gz, a Sleuth text file or a NiMARE dataset .json."
    )
    with raises(DatabaseFileNotFoundError, FileNotFoundError, msg):
        read_database(path)
    with raises(DatabaseFileNotFoundError, FileNotFoundError, msg):
        sniff_format(path)
    with raises(DatabaseFileNotFoundError, FileNotFoundError, msg):
        xcoact.activations(path)  # a path given straight to the cube is read the same way


def test_directory_is_not_a_database(tmp_path):
    with raises(
        DatabaseFileError, OSError, re.escape(f"{tmp_path}: is a directory; expected a database file, e.g. ")
    ) as info:
        read_database(tmp_path)
    assert isinstance(info.value, ValueError)  # still a DatabaseError for older callers
    assert isinstance(info.value, DatabaseError)


# A database without read permission: tests/test_permissions.py (a real EACCES, as an unprivileged user).


@pytest.mark.parametrize("content", ["", "\n\n  \t\n", gzip.compress(b"")], ids=["empty", "blank", "empty-gzip"])
def test_empty_file(tmp_path, content):
    path = write(tmp_path, "database.txt", content)
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}: the file is empty; expected a coordinate database (e.g. a tab-separated header "
            "'id x y z space' and one row per peak)."
        ),
    ):
        read_database(path)


def test_binary_garbage(tmp_path):
    path = write(tmp_path, "database.txt", bytes(range(256)) * 8)
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}: looks like binary data, not a text database. Expected a tab-separated table, a Sleuth "
            "text file or JSON (plain or gzip-compressed)."
        ),
    ):
        read_database(path, format="neurosynth")


@pytest.mark.parametrize(
    "content, found",
    [
        # a gzip header followed by a corrupt deflate stream (zlib.error used to escape unwrapped)
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"garbage!" * 40, "zlib.error"),
        (gzip.compress((HEADER + "1\t0\t0\t0\tMNI\n").encode())[:-8], "EOFError"),  # trailer cut off
    ],
    ids=["corrupt-gzip", "truncated-gzip"],
)
def test_corrupt_gzip(tmp_path, content, found):
    path = write(tmp_path, "database.txt.gz", content)
    msg = (
        re.escape(f"{path}: could not be read or decompressed ({found}: ")
        + r".*"
        + re.escape("the file may be truncated or corrupt. Download it again, or check it with 'gzip -t'.")
    )
    assert sniff_format(path) == "neurosynth"  # sniffing does not choke on it
    with raises(DatabaseFileError, OSError, msg):
        read_database(path)


def test_non_utf8_text_names_the_line(tmp_path):
    text = (HEADER + "1\t0\t0\t0\tMNI\n2\t1\t1\t1\tMNI caf\xe9\n").encode("latin-1")
    path = write(tmp_path, "database.txt", text)
    msg = re.escape(f"{path}, line 3: not valid UTF-8 text (byte 0xe9). Re-save the file as UTF-8.")
    with raises(DatabaseError, ValueError, msg):
        read_database(path)
    gz = write(tmp_path, "database.txt.gz", gzip.compress(text))
    with raises(DatabaseError, ValueError, re.escape(f"{gz}, line 3: not valid UTF-8")):
        read_database(gz)


# --------------------------------------------------------------------------------------
# Tab-separated tables: header and rows
# --------------------------------------------------------------------------------------


def test_missing_column_names_found_and_expected(tmp_path):
    path = write(tmp_path, "database.txt", "id\tx\ty\tspace\n1\t0\t0\tMNI\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 1: missing column(s) 'z' for the Neurosynth database.txt format; found "
            "['id', 'x', 'y', 'space'], expected at least ['id', 'x', 'y', 'z', 'space'] (any case)."
        ),
    ) as info:
        read_database(path)
    assert "delimiter" not in str(info.value)  # the hint is for one-column headers only


def test_missing_column_v7(tmp_path):
    path = write(tmp_path, "coords.tsv", "id\ttable_id\tx\ty\n1\t2\t0\t0\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 1: missing column(s) 'z' for the Neurosynth v7 coordinates format; found "
            "['id', 'table_id', 'x', 'y'], expected at least ['id', 'x', 'y', 'z'] (any case)."
        ),
    ):
        quiet_read(path)


@pytest.mark.parametrize("sep", [",", ";"], ids=["comma", "semicolon"])
def test_wrong_delimiter_hint(tmp_path, sep):
    path = write(
        tmp_path, "database.csv", sep.join("id x y z space".split()) + "\n" + sep.join("1 0 0 0 MNI".split()) + "\n"
    )
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 1: missing column(s) 'id', 'x', 'y', 'z', 'space' for the Neurosynth database.txt format; "
            f"found ['id{sep}x{sep}y{sep}z{sep}space']"
        )
        + r".*"
        + re.escape("The header has no tab: the file seems to use another delimiter; it must be tab-separated."),
    ):
        read_database(path)


def test_duplicate_header_column(tmp_path):
    path = write(tmp_path, "database.txt", "id\tx\ty\tz\tspace\tX\n1\t0\t0\t0\tMNI\t5\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 1: duplicate column 'X' (columns 2 and 6); each column name must appear once. "
            "Rename or remove one of them."
        ),
    ):
        read_database(path)


def test_header_without_rows(tmp_path):
    path = write(tmp_path, "database.txt", HEADER)
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}: no coordinates found; expected at least one peak row (format neurosynth). "
            "Check that this is the right file."
        ),
    ):
        read_database(path)


def test_bad_coordinates_every_row_reported(tmp_path):
    rows = [
        "1\t0\tabc\t0\tMNI",  # line 2: non-numeric
        "1\t2\t2\t2\tMNI",  # line 3: fine
        "2\tNaN\t2\t2\tMNI",  # line 4: NaN
        "2\t3\t3\t3\tMNI",  # line 5: fine
        "3\t1\t2\tinf\tTAL",  # line 6: infinite
        "3\t1\t",  # line 7: short row, y and z empty
    ]
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}: 4 row(s) with a non-numeric, NaN or infinite coordinate - line 2 column y: 'abc'; "
            "line 4 column x: 'NaN'; line 6 column z: 'inf'; line 7 column y: empty; line 7 column z: empty. "
            "x, y and z must be finite numbers in mm; fix or delete those rows."
        ),
    ):
        read_database(path)


def test_many_bad_coordinates_are_counted(tmp_path):
    rows = [f"{i}\tnan\t0\t0\tMNI" for i in range(25)]
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(f"{path}: 25 row(s) with a non-numeric")
        + r".*"
        + re.escape("line 11 column x: 'nan'; and 15 more value(s) not shown."),
    ) as info:
        read_database(path)
    assert "line 12 " not in str(info.value)


def test_nan_coordinate_v7_names_file_and_line(tmp_path):
    path = write(
        tmp_path, "data-x_coordinates.tsv", "id\ttable_id\tpeak_id\tx\ty\tz\n1\t1\t1\t0\t0\t0\n1\t1\t2\t0\tNaN\t0\n"
    )
    with raises(
        DatabaseError,
        ValueError,
        re.escape(f"{path}: 1 row(s) with a non-numeric, NaN or infinite coordinate - line 3 column y: 'NaN'."),
    ):
        quiet_read(path)


def test_v7_metadata_without_the_study(tmp_path):
    coords = write(
        tmp_path, "data-x_coordinates.tsv", "id\ttable_id\tpeak_id\tx\ty\tz\n1\t1\t1\t0\t0\t0\n2\t1\t1\t0\t0\t0\n"
    )
    meta = write(tmp_path, "data-x_metadata.tsv", "id\tdoi\tspace\n1\tn/a\tMNI\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{meta}: 1 study id(s) of {coords} have no metadata row (e.g. ['2']); each study needs its space. "
            "Use the metadata file of the same release."
        ),
    ):
        read_database(coords)


def test_unknown_format_lists_the_valid_ones(tmp_path):
    path = write(tmp_path, "database.txt", HEADER + "1\t0\t0\t0\tMNI\n")
    with raises(
        ParameterError,
        ValueError,
        re.escape(
            "format='csv' is not a known database format; expected one of "
            "['neuroquery', 'neurosynth', 'neurosynth-v7', 'nimads', 'nimare-json', 'sleuth']."
        ),
    ):
        read_database(path, format="csv")


def test_make_table_columns_of_different_lengths():
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            "tiny: columns of different lengths {'ids': 2, 'x': 2, 'y': 1, 'z': 2, 'space': 2}; "
            "expected one value per peak in each of them."
        ),
    ):
        make_table([1, 2], [0, 0], [0], [0, 0], ["MNI", "MNI"], database="tiny", fmt="test")


def test_make_table_nan_names_the_row():
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            "tiny: 1 peak(s) have a NaN or infinite coordinate (row 1); x, y and z must be finite numbers in mm."
        ),
    ):
        make_table([1, 2], [0, np.nan], [0, 0], [0, 0], ["MNI", "MNI"], database="tiny", fmt="test")


# --------------------------------------------------------------------------------------
# NiMARE JSON
# --------------------------------------------------------------------------------------


def test_nimare_invalid_json_names_line_and_column(tmp_path):
    path = write(tmp_path, "dataset.json", '{"s1": {"contrasts": {}},\n "s2": [1, 2,}\n')
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 2, column 14: not valid JSON (Expecting value); "
            'expected a NiMARE dataset {"study": {"contrasts": '
        )
        + r".*"
        + re.escape("Fix the syntax there, or pass format= if this is not a JSON file."),
    ):
        read_database(path)


@pytest.mark.parametrize(
    "data, where_found_expected",
    [
        ([1, 2, 3], "at top level: found list; expected an object mapping study ids to studies"),
        ({"s1": {"nocontrasts": 1}}, "at s1: found {'nocontrasts': 1}; expected an object with a \"contrasts\" object"),
        ({"s1": {"contrasts": {"c1": 5}}}, "at s1 -> contrasts -> c1: found 5; expected an object"),
        (
            {"s1": {"contrasts": {"c1": {"coords": [1]}}}},
            'at s1 -> contrasts -> c1 -> coords: found [1]; expected an object with "space", "x", "y", "z"',
        ),
        (
            {"s1": {"contrasts": {"c1": {"coords": {"space": "MNI", "x": 1, "y": [1], "z": [1]}}}}},
            "at s1 -> contrasts -> c1 -> coords -> x: found 1; expected a list of numbers",
        ),
        (
            {"s1": {"contrasts": {"c1": {"coords": {"space": "MNI", "x": [1], "y": ["a"], "z": [1]}}}}},
            "at s1 -> contrasts -> c1 -> coords -> y: found ['a']; expected a list of numbers",
        ),
        (
            {"s1": {"contrasts": {"c1": {"coords": {"space": "MNI", "x": [1, 2], "y": [1], "z": [1, 2]}}}}},
            "at s1 -> contrasts -> c1 -> coords: found x, y, z of lengths [2, 1, 2]; expected lists of equal length",
        ),
        (
            {"s1": {"contrasts": {"c1": {"coords": {"x": [1], "y": [1], "z": [1]}}}}},
            'at s1 -> contrasts -> c1 -> coords -> space: found None; expected a space label such as "MNI" or "TAL"',
        ),
        (
            {"s1": {"contrasts": {"c1": {"coords": {"space": "MNI", "x": [1], "y": [1], "z": [float("nan")]}}}}},
            "at s1 -> contrasts -> c1 -> coords -> z: found a NaN or infinite value; expected finite numbers in mm",
        ),
    ],
    ids=[
        "top-list",
        "no-contrasts",
        "contrast-not-object",
        "coords-not-object",
        "x-not-list",
        "y-not-numbers",
        "unequal-lengths",
        "no-space",
        "nan",
    ],
)
def test_nimare_wrong_schema_names_the_path(tmp_path, data, where_found_expected):
    path = write(tmp_path, "dataset.json", json.dumps(data))
    with raises(
        DatabaseError,
        ValueError,
        "^" + re.escape(f"{path}: {where_found_expected} (NiMARE dataset JSON schema).") + "$",
    ):
        read_database(path)


def test_nimare_without_any_coordinates(tmp_path):
    path = write(tmp_path, "dataset.json", json.dumps({"s1": {"contrasts": {"c1": {"metadata": {}}}}}))
    with raises(
        DatabaseError,
        ValueError,
        re.escape(f"{path}: no contrast has coordinates; expected at least one 'coords' with x, y, z lists."),
    ):
        quiet_read(path)


# --------------------------------------------------------------------------------------
# Sleuth
# --------------------------------------------------------------------------------------


def test_sleuth_header_but_no_coordinates(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// Reference = MNI\n// Smith 2001: pain\n// Subjects = 12\n\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(f"{path}: a Sleuth header but no coordinates; expected 'x y z' lines after each experiment name."),
    ):
        read_database(path)


def test_sleuth_without_reference(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// Smith 2001: pain\n// Subjects = 12\n10 20 30\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 1: no '// Reference = MNI' (or '// Reference = Talairach') line; a Sleuth file must "
            "state its space. Add the right one as the first line."
        ),
    ):
        read_database(path)


def test_sleuth_coordinates_above_the_reference(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// A: e\n1 2 3\n\n// Reference = MNI\n// B: e\n4 5 6\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 2: coordinates before the first '// Reference = ...' line, so their space is unknown. "
            "Move the Reference line to the top of the file."
        ),
    ):
        read_database(path)


def test_sleuth_unknown_reference(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// Smith: e\n// Reference = SPM\n1 2 3\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 2: unknown reference space 'SPM'; expected '// Reference = MNI' or "
            "'// Reference = Talairach'."
        ),
    ):
        read_database(path)


def test_sleuth_bad_coordinate_lines_all_reported(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// Reference = MNI\n// A: e\n1 2\n4 5 6\n1 2 x\n7 8 nan\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}: 3 coordinate line(s) are not three finite numbers (line 3: '1 2'; line 5: '1 2 x'; "
            "line 6: '7 8 nan'); each coordinate line must be 'x y z' in mm."
        ),
    ):
        read_database(path)


def test_sleuth_coordinates_before_any_experiment(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// Reference = MNI\n\n1 2 3\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}, line 3: coordinates before any '// Study: Experiment' line; each experiment must be named first."
        ),
    ):
        read_database(path)


# --------------------------------------------------------------------------------------
# Analysis arguments: threshold, radius, seeds, selection
# --------------------------------------------------------------------------------------

BAD_THRESHOLDS = [
    pytest.param(
        -1,
        re.escape("threshold=-1 is a negative voxel count; expected an int >= 0 (or a float proportion in [0, 1])."),
        id="negative-int",
    ),
    pytest.param(
        1.5,
        re.escape(
            "threshold=1.5 is outside [0, 1]; a float threshold is the proportion of ROI voxels a "
            "study must cover (e.g. 0.1). For an absolute voxel count pass an int (e.g. threshold=5)."
        ),
        id="float>1",
    ),
    pytest.param(-0.1, re.escape("threshold=-0.1 is outside [0, 1];"), id="negative-float"),
    pytest.param(
        float("nan"),
        re.escape(
            "threshold=nan is NaN or infinite, not a number in [0, 1]; a float threshold "
            "is the proportion of ROI voxels"
        ),
        id="nan",
    ),
    pytest.param(
        True,
        re.escape(
            "threshold=True is not a number (a bool, which would silently count as 0 or 1 voxel); "
            "expected a proportion of ROI voxels in [0, 1] (a float, e.g. 0.1) or a voxel count "
            ">= 0 (an int, e.g. 5)."
        ),
        id="bool",
    ),
    pytest.param(
        "0.1",
        re.escape(
            "threshold='0.1' is not a number; expected a proportion of ROI voxels in [0, 1] "
            "(a float, e.g. 0.1) or a voxel count >= 0 (an int, e.g. 5)."
        ),
        id="string",
    ),
]


@pytest.mark.parametrize("threshold, msg", BAD_THRESHOLDS)
def test_bad_threshold(threshold, msg):
    with raises(ParameterError, ValueError, msg):
        check_threshold(threshold)


@pytest.mark.parametrize("threshold, msg", BAD_THRESHOLDS)
def test_bad_threshold_via_seed(sample_cube, threshold, msg):
    with raises(ParameterError, ValueError, msg):
        sample_cube.coact.seed([[0, 20, 28]], threshold=threshold, r=10)


@pytest.mark.parametrize("threshold", [0, 5, 0.0, 0.1, 1.0, np.float32(0.5), np.int64(3)])
def test_good_thresholds_pass_unchanged(threshold):
    out = check_threshold(threshold)
    assert out == threshold
    assert isinstance(out, int) == isinstance(threshold, (int, np.integer))


BAD_RADII = [
    pytest.param(0, re.escape("r=0 is not a valid radius; expected a finite number of mm > 0, e.g. r=6."), id="zero"),
    pytest.param(
        -4, re.escape("r=-4 is not a valid radius; expected a finite number of mm > 0, e.g. r=6."), id="negative"
    ),
    pytest.param(
        float("nan"), re.escape("r=nan is not a valid radius; expected a finite number of mm > 0, e.g. r=6."), id="nan"
    ),
    pytest.param("6", re.escape("r='6' is not a number; expected a radius in mm > 0, e.g. r=6."), id="string"),
]


@pytest.mark.parametrize("r, msg", BAD_RADII)
def test_bad_kernel_radius(sample_table, r, msg):
    with raises(ParameterError, ValueError, "^" + msg + "$"):
        xcoact.activations(sample_table, r=r)


@pytest.mark.parametrize("r, msg", BAD_RADII)
def test_bad_seed_radius(sample_cube, r, msg):
    with raises(ParameterError, ValueError, "^" + msg + "$"):
        sample_cube.coact.seed([[0, 20, 28]], r=r)


def test_empty_roi_image(sample_cube, tmp_path):
    path = str(tmp_path / "zeros.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((91, 109, 91), dtype=np.uint8), AFFINE_MNI), path)
    with raises(
        RoiError,
        ValueError,
        re.escape(
            f"{path}: the ROI has no voxel inside the brain mask (voxels > 0 that fall in the 228453-voxel mask); "
            "check its values, its space (MNI) and its affine."
        ),
    ):
        sample_cube.coact.seed(path, threshold=0.1)


def test_roi_outside_the_brain_mask(sample_cube, tmp_path):
    data = np.zeros((91, 109, 91), dtype=np.uint8)
    data[0, 0, 0] = 1  # a corner of the box, outside the brain
    path = str(tmp_path / "corner.nii.gz")
    nib.save(nib.Nifti1Image(data, AFFINE_MNI), path)
    with raises(RoiError, ValueError, re.escape(f"{path}: the ROI has no voxel inside the brain mask")):
        sample_cube.coact.seed(path)


def test_missing_roi_image(sample_cube, tmp_path):
    path = str(tmp_path / "roi.nii.gz")
    with raises(
        DatabaseFileNotFoundError,
        FileNotFoundError,
        re.escape(f"{path}: no such ROI image. Pass a NIfTI file (.nii or .nii.gz), e.g. 'my_roi_mask.nii.gz'."),
    ):
        sample_cube.coact.seed(path)


def test_seed_coordinate_outside_the_grid(sample_cube):
    with raises(
        ParameterError,
        ValueError,
        re.escape(
            "seed coordinate(s) [[900.0, 0.0, 0.0]] lie outside the grid; expected x in [-90.0, 90.0], "
            "y in [-126.0, 90.0], z in [-72.0, 108.0] mm (MNI)."
        ),
    ):
        sample_cube.coact.seed([[0, 20, 28], [900, 0, 0]], r=6)


def test_no_study_selected_states_the_largest_overlap(sample_cube):
    path = xcoact.datasets.amygdala_roi_path()
    roi = xcoact.roi_mask(path, xcoact.mni152_2mm())
    n_roi = roi.attrs["n_roi"]
    best = int((sample_cube & roi).sum(("x", "y", "z")).max().compute())
    assert n_roi == 366 and 0 < best < n_roi
    with raises(
        SelectionError,
        ValueError,
        re.escape(
            f"no study selected for {path}: the largest overlap any of the 100 studies reached is {best} of "
            f"{n_roi} ROI voxels ({best / n_roi:.4g}), and threshold=1.0 needs more than that proportion. "
            f"Lower the threshold below {round(best / n_roi, 6)} or use a larger ROI."
        ),
    ):
        sample_cube.coact.seed(path, threshold=1.0)
    # the same as a voxel count
    with raises(
        SelectionError,
        ValueError,
        re.escape(
            f"threshold={best} needs more than that many voxels. Lower the threshold below {best} or use a larger ROI."
        ),
    ):
        sample_cube.coact.seed(path, threshold=best)


def _tiny_cube(xs):
    """Three one-peak studies at (x, 20, 28) for each x in xs."""
    table = make_table([1, 2, 3], xs, [20] * 3, [28] * 3, ["MNI"] * 3, database="tiny", fmt="test")
    return xcoact.activations(table, r=6)


def test_every_study_selected_equal_overlap():
    act = _tiny_cube([0, 0, 0])
    with raises(
        SelectionError,
        ValueError,
        re.escape(
            "every one of the 3 studies was selected for seed [[0.0, 20.0, 28.0]] (r=6 mm): each covers the same "
            "123 of 123 ROI voxels, so no threshold can separate selected from unselected studies."
        ),
    ):
        act.coact.seed([[0, 20, 28]], r=6, threshold=0.0)


def test_every_study_selected_says_how_far_to_raise():
    act = _tiny_cube([0, 0, 4])  # the third study's sphere is 4 mm off: a partial overlap
    roi = xcoact.roi_mask([[0, 20, 28]], xcoact.mni152_2mm(), r=6)
    worst = int((act & roi).sum(("x", "y", "z")).min().compute())
    assert 0 < worst < 123
    with raises(
        SelectionError,
        ValueError,
        re.escape(
            f"every one of the 3 studies was selected for seed [[0.0, 20.0, 28.0]] (r=6 mm) (the smallest overlap is "
            f"{worst} of 123 ROI voxels), so there are no unselected studies to compare with. Raise the threshold "
            f"above {round(worst / 123, 6)}."
        ),
    ):
        act.coact.seed([[0, 20, 28]], r=6, threshold=0.0)
    act.coact.seed([[0, 20, 28]], r=6, threshold=worst / 123)  # and that threshold works


def test_no_study_touches_the_roi():
    act = _tiny_cube([0, 0, 0])
    with raises(
        SelectionError,
        ValueError,
        re.escape(
            "no study selected for seed [[40.0, -60.0, 0.0]] (r=6 mm): none of the 3 studies has an active voxel "
            "in its 123 ROI voxels (largest overlap 0), so no threshold can select one. Use a larger or different ROI."
        ),
    ):
        act.coact.seed([[40, -60, 0]], r=6, threshold=0.0)
