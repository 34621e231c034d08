"""The bad-input catalogue (docs/reliability.md): the cases not already pinned elsewhere.

Each test feeds one kind of bad input through the public entry point and pins
what xcoact says: the error class (an ``XcoactError`` that is also the builtin
a caller would catch) or the warning category, and the message, which names
the file and line (or argument), what was found, what was expected and how to
fix it.  Cases pinned in ``test_error_messages.py``, ``test_readers.py``,
``test_roi.py``, ``test_export.py`` and ``test_writers.py`` are listed in the
catalogue table, not repeated here.
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
    EmptyStudyWarning,
    MixedSpaceWarning,
    OutOfBoxWarning,
    OutsideBrainWarning,
    RoiError,
    XcoactWarning,
)
from xcoact.readers import read_database
from xcoact.table import tal_to_mni

HEADER = "id\tx\ty\tz\tspace\n"
V7_HEADER = "id\ttable_id\ttable_num\tpeak_id\tx\ty\tz\n"
SHAPE = (91, 109, 91)


@contextlib.contextmanager
def raises(cls, builtin, match):
    """pytest.raises that also checks the XcoactError + builtin pairing."""
    with pytest.raises(cls, match=match) as info:
        yield info
    assert isinstance(info.value, xcoact.XcoactError), type(info.value).__mro__
    assert isinstance(info.value, builtin), type(info.value).__mro__


def write(tmp_path, name, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return str(path)


def caught(category, fn, *args, **kwargs):
    """Call fn, return (result, [messages of warnings of exactly `category`]); other xcoact warnings are allowed."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    msgs = [str(w.message) for w in record if w.category is category]
    # every warning on the way is xcoact's own, and points at this file (the caller), not inside xcoact
    for w in record:
        assert issubclass(w.category, XcoactWarning), (w.category, str(w.message))
        assert w.filename == __file__, (w.category, w.filename)
    return out, msgs


def xyz(table) -> np.ndarray:
    return np.column_stack([table[c].values for c in "xyz"])


# --------------------------------------------------------------------------------------
# Coordinates far outside any brain: a warning naming the worst lines, the rows kept
# --------------------------------------------------------------------------------------


def test_far_outside_any_brain_warns_with_the_worst_lines_first(tmp_path):
    rows = [
        "1\t0\t20\t28\tMNI",  # line 2: fine
        "1\t900\t0\t0\tMNI",  # line 3: 810 mm past x = 90
        "2\t100\t0\t0\tMNI",  # line 4: 10 mm past the box: not far (only the cube's box warning)
        "2\t0\t-300\t0\tMNI",  # line 5: 174 mm past y = -126
        "3\t0\t0\t-1000\tMNI",  # line 6: 928 mm past z = -72
    ]
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    table, msgs = caught(OutsideBrainWarning, read_database, path)
    assert msgs == [
        f"{path}: 3 peak(s) in 3 stud(y/ies) lie far outside any brain (more than 20 mm outside the MNI152 box "
        "x in [-90, 90], y in [-126, 90], z in [-72, 108] mm), farthest first: "
        "line 6 (study 3, MNI x=0, y=0, z=-1000); line 3 (study 1, MNI x=900, y=0, z=0); "
        "line 5 (study 2, MNI x=0, y=-300, z=0). They were kept (as in Neurosynth they add only what of their "
        "sphere falls inside the grid, usually nothing); check those rows for a mistyped coordinate or a wrong "
        "space label."
    ]
    # a warning, not an error: every row is still in the table, unchanged
    assert table.sizes["peak"] == 5
    assert xyz(table)[[1, 3, 4]].tolist() == [[900, 0, 0], [0, -300, 0], [0, 0, -1000]]
    assert issubclass(OutsideBrainWarning, OutOfBoxWarning)  # filtering the box warning filters this one too


def test_far_outside_shows_five_and_counts_the_rest(tmp_path):
    rows = [f"{i}\t{200 + i}\t0\t0\tMNI" for i in range(8)]  # lines 2..9, farthest last
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    _, msgs = caught(OutsideBrainWarning, read_database, path)
    assert len(msgs) == 1
    assert "8 peak(s) in 8 stud(y/ies)" in msgs[0]
    assert "farthest first: line 9 (study 7, MNI x=207, y=0, z=0); line 8 " in msgs[0]
    assert "line 5 (study 3, MNI x=203, y=0, z=0); and 3 more. They were kept" in msgs[0]


def test_far_outside_in_json_names_the_row_and_study(tmp_path):
    data = {"s": {"contrasts": {"1": {"coords": {"space": "MNI", "x": [0, 0], "y": [0, 900], "z": [0, 0]}}}}}
    path = write(tmp_path, "dataset.json", json.dumps(data))
    _, msgs = caught(OutsideBrainWarning, read_database, path)
    assert len(msgs) == 1
    assert "farthest first: row 1 (study 's-1', MNI x=0, y=900, z=0)." in msgs[0]


def test_far_outside_is_judged_in_mni_after_the_talairach_move(tmp_path):
    # x = 105 TAL is 15 mm past the box as written, but 113.5 MNI: far
    path = write(tmp_path, "sleuth.txt", "// Reference = Talairach\n// A: e\n105 0 0\n")
    mni = tal_to_mni([[105, 0, 0]])[0]
    assert mni[0] > 110
    _, msgs = caught(OutsideBrainWarning, read_database, path)
    assert len(msgs) == 1 and f"line 3 (study 'A: e', MNI x={mni[0]:g}, " in msgs[0]


@pytest.mark.parametrize("space", ["TAL", "MNI"])
def test_coordinates_beyond_a_kilometre_are_an_error(tmp_path, space):
    """Found by the fuzzer: 1.6e308 is finite, but moving it from Talairach gave inf (and a RuntimeWarning)."""
    rows = ["1\t0\t0\t0\tMNI", f"2\t0\t0\t1.6e308\t{space}", f"3\t-2000000\t5\t0\t{space}"]
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning on the way
        with raises(
            DatabaseError,
            ValueError,
            "^"
            + re.escape(
                f"{path}: 2 peak(s) have a coordinate beyond 1,000,000 mm in size (line 3: (0, 0, 1.6e+308); line 4: "
                "(-2e+06, 5, 0)); that is no brain coordinate in any unit but a corrupt or mis-scaled value (peaks "
                "far outside the brain but within that limit only warn). Fix or delete those rows."
            )
            + "$",
        ):
            read_database(path)


def test_make_table_warnings_point_at_its_caller():
    """Called directly (not through a reader), the warnings still name the caller's line."""
    from xcoact.table import make_table

    table, msgs = caught(
        OutsideBrainWarning, make_table, [1, 1], [0, 0], [0, 500], [0, 0], ["MNI", "TAL"], database="tiny", fmt="test"
    )
    assert msgs == [
        "tiny: 1 peak(s) in 1 stud(y/ies) lie far outside any brain (more than 20 mm outside the MNI152 box x in "
        f"[-90, 90], y in [-126, 90], z in [-72, 108] mm), farthest first: row 1 (study 1, MNI x={table.x.values[1]:g}, "
        f"y={table.y.values[1]:g}, z={table.z.values[1]:g}). They were kept (as in Neurosynth they add only what of "
        "their sphere falls inside the grid, usually nothing); check those rows for a mistyped coordinate or a wrong "
        "space label."
    ]


def test_real_samples_have_no_far_peaks(sample_table):
    """The sample's two peaks just outside the box (x = 91, y = 96) are not 'far outside any brain'."""
    _, msgs = caught(OutsideBrainWarning, read_database, xcoact.datasets.sample_database_path())
    assert msgs == []
    box = (np.abs(sample_table.x) > 90) | (sample_table.y > 90)
    assert int(box.sum()) == 2


# --------------------------------------------------------------------------------------
# Unknown space labels: the first line of each label
# --------------------------------------------------------------------------------------


def test_unknown_space_names_the_first_line_of_each_label(tmp_path):
    path = write(
        tmp_path, "database.txt", HEADER + "1\t0\t0\t0\tMNI\n1\t1\t1\t1\tSPM\n2\t2\t2\t2\tfoo\n2\t3\t3\t3\tfoo\n"
    )
    table, msgs = caught(xcoact.errors.SpaceWarning, read_database, path)
    assert msgs == [
        f"{path}: unknown space label(s) 'SPM': 1 row(s), 'foo': 2 row(s); those coordinates were used as they are "
        "(as Neurosynth does). Known labels: MNI (kept) and TAL/T88/Talairach (moved to MNI). "
        "First rows: 'SPM' at line 3, 'foo' at line 4; relabel them in the file if you know their space."
    ]
    assert xyz(table).tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]


# --------------------------------------------------------------------------------------
# Studies with no peaks: warn and leave them out, in every format
# --------------------------------------------------------------------------------------


def test_neurosynth_id_with_only_blank_coordinates_warns(tmp_path):
    rows = ["1\t0\t0\t0\tMNI", "2\t\t\t\tMNI", "1\t \t\t\tMNI", "3\t4\t5\t6\tTAL"]  # lines 2-5
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    table, msgs = caught(EmptyStudyWarning, read_database, path)
    assert msgs == [
        f"{path}: 2 row(s) name a study but have no x, y or z (line 3: study '2'; line 4: study '1'); they were "
        "left out, so 1 stud(y/ies) without any other peak are not in the table (e.g. ['2']). Fill in the "
        "coordinates or delete those rows."
    ]
    assert table["study_id"].values.tolist() == [1, 3]
    assert table["line"].values.tolist() == [2, 5]  # line numbers still those of the file
    np.testing.assert_allclose(xyz(table)[1], tal_to_mni([[4, 5, 6]])[0])


def test_neurosynth_v7_id_with_only_blank_coordinates_warns(tmp_path):
    coords = write(tmp_path, "x_coordinates.tsv", V7_HEADER + "1\t\t\t\t1\t2\t3\n2\t\t\t\t\t\t\n")
    write(tmp_path, "x_metadata.tsv", "id\tspace\n1\tMNI\n2\tMNI\n")
    table, msgs = caught(EmptyStudyWarning, read_database, coords)
    assert len(msgs) == 1 and msgs[0].startswith(
        f"{coords}: 1 row(s) name a study but have no x, y or z (line 3: study '2')"
    )
    assert table["study_id"].values.tolist() == [1]


def test_partly_blank_coordinates_stay_an_error(tmp_path):
    """Only a row with no coordinate at all is an empty study; x without y and z is a broken row."""
    path = write(tmp_path, "database.txt", HEADER + "1\t0\t0\t0\tMNI\n2\t5\t\t\tMNI\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}: 1 row(s) with a non-numeric, NaN or infinite coordinate - line 3 column y: empty; "
            "line 3 column z: empty."
        ),
    ):
        read_database(path)


def test_only_blank_coordinates_is_no_coordinates(tmp_path):
    path = write(tmp_path, "database.txt", HEADER + "1\t\t\t\tMNI\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyStudyWarning)
        with raises(
            DatabaseError, ValueError, re.escape(f"{path}: no coordinates found; expected at least one peak row")
        ):
            read_database(path)


def test_coordinates_without_a_study_id_is_an_error(tmp_path):
    path = write(tmp_path, "database.txt", HEADER + "1\t0\t0\t0\tMNI\n\t1\t1\t1\tMNI\n \t2\t2\t2\tMNI\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{path}: 2 row(s) have coordinates but an empty 'id' (line(s) 3, 4); every peak needs the id of its "
            "study. Fill in the ids or delete those rows."
        ),
    ):
        read_database(path)


def test_sleuth_experiment_without_coordinates_warns(tmp_path):
    text = (
        "// Reference = MNI\n"
        "// A: empty\n"  # line 2: no coordinates, closed by the blank line and the next name
        "// Subjects = 10\n"
        "\n"
        "// B: e\n"  # line 5
        "1 2 3\n"
        "\n"
        "// C: at the end\n"  # line 8: no coordinates before the end of the file
    )
    path = write(tmp_path, "sleuth.txt", text)
    table, msgs = caught(EmptyStudyWarning, read_database, path)
    assert msgs == [
        f"{path}: 2 experiment(s) without coordinates were left out (line 2: 'A: empty'; line 8: 'C: at the end'); "
        "each experiment needs its 'x y z' lines below its name. Add them, or delete those names."
    ]
    # before, 'A' and 'B' were merged into one study 'A: empty; B: e'
    assert table["study_id"].values.tolist() == ["B: e"]


def test_sleuth_names_then_blank_then_coordinates_still_one_experiment(tmp_path):
    """A blank line between an experiment's name and its coordinates does not empty it."""
    path = write(tmp_path, "sleuth.txt", "// Reference = MNI\n// A: e\n// Subjects = 3\n\n1 2 3\n")
    table, msgs = caught(EmptyStudyWarning, read_database, path)
    assert msgs == [] and table["study_id"].values.tolist() == ["A: e"]


def test_sleuth_header_but_no_coordinates_names_the_experiments(tmp_path):
    path = write(
        tmp_path, "sleuth.txt", "// Reference = MNI\n// Smith 2001: pain\n// Subjects = 12\n\n// Jones: heat\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", XcoactWarning)  # the error says it all: no warning first
        with raises(
            DatabaseError,
            ValueError,
            "^"
            + re.escape(
                f"{path}: a Sleuth header but no coordinates; expected 'x y z' lines after each experiment name. "
                "Found 2 experiment name(s) without coordinates (line 2: 'Smith 2001: pain'; line 5: 'Jones: heat')."
            )
            + "$",
        ):
            read_database(path)


def test_sleuth_bare_comment_line_is_not_a_name(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// Reference = MNI\n//\n// A: e\n1 2 3\n")
    table, _ = caught(EmptyStudyWarning, read_database, path)
    assert table["study_id"].values.tolist() == ["A: e"]


def test_nimare_contrast_with_empty_coords_warns(tmp_path):
    data = {
        "s1": {
            "contrasts": {
                "a": {"coords": {"space": "MNI", "x": [], "y": [], "z": []}},
                "b": {"coords": {"space": "MNI", "x": [1], "y": [2], "z": [3]}},
            }
        }
    }
    path = write(tmp_path, "dataset.json", json.dumps(data))
    table, msgs = caught(EmptyStudyWarning, read_database, path)
    assert msgs == [
        f'{path}: 1 contrast(s) without coordinates were left out: [\'s1-a\'] (no "coords", or empty "x", "y", '
        '"z" lists). Add their coordinates, or ignore this if they report none.'
    ]
    assert table["study_id"].values.tolist() == ["s1-b"]


# --------------------------------------------------------------------------------------
# Conflicting spaces within one study: a warning; each row keeps its own transform
# --------------------------------------------------------------------------------------


def test_study_with_rows_in_two_spaces_warns_and_moves_each_row(tmp_path):
    rows = ["7\t10\t20\t30\tMNI", "7\t10\t20\t30\tTAL", "7\t1\t1\t1\tmni", "8\t0\t0\t0\tMNI", "8\t0\t0\t0\tMNI152"]
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    table, msgs = caught(MixedSpaceWarning, read_database, path)
    assert msgs == [
        f"{path}: 1 stud(y/ies) report peaks in more than one space - study 7: 'MNI' (1 row(s), first at line 2), "
        "'TAL' (1 row(s), first at line 3), 'mni' (1 row(s), first at line 4). Each row was moved by its own label "
        "(TAL/T88/Talairach to MNI, MNI kept, others as they are), as Neurosynth does; check those studies' labels, "
        "since one study's peaks normally share a space."
    ]  # study 8 mixes two spellings of MNI only: no warning for it
    got = xyz(table)
    np.testing.assert_array_equal(got[0], [10, 20, 30])
    np.testing.assert_allclose(got[1], tal_to_mni([[10, 20, 30]])[0], atol=1e-12)


def test_mixed_spaces_are_counted_past_five(tmp_path):
    rows = [f"{s}\t0\t0\t0\t{sp}" for s in range(7) for sp in ("MNI", "UNKNOWN")]
    path = write(tmp_path, "database.txt", HEADER + "\n".join(rows) + "\n")
    _, msgs = caught(MixedSpaceWarning, read_database, path)
    assert len(msgs) == 1 and msgs[0].startswith(
        f"{path}: 7 stud(y/ies) report peaks in more than one space - study 0:"
    )
    assert (
        "study 4: 'MNI' (1 row(s), first at line 10), 'UNKNOWN' (1 row(s), first at line 11); and 2 more. Each"
        in msgs[0]
    )


def test_sleuth_reference_changing_inside_an_experiment_warns(tmp_path):
    path = write(tmp_path, "sleuth.txt", "// Reference = MNI\n// A: e\n1 2 3\n// Reference = Talairach\n4 5 6\n")
    table, msgs = caught(MixedSpaceWarning, read_database, path)
    assert len(msgs) == 1
    assert "study 'A: e': 'MNI' (1 row(s), first at line 3), 'TAL' (1 row(s), first at line 5)." in msgs[0]
    np.testing.assert_allclose(xyz(table), [[1, 2, 3], tal_to_mni([[4, 5, 6]])[0]], atol=1e-12)


def test_v7_metadata_listing_a_study_twice_with_different_spaces_warns(tmp_path):
    coords = write(tmp_path, "x_coordinates.tsv", V7_HEADER + "1\t\t\t\t1\t2\t3\n2\t\t\t\t4\t5\t6\n")
    meta = write(tmp_path, "x_metadata.tsv", "id\tspace\n1\tTAL\n2\tMNI\n1\tMNI\n2\tMNI\n")
    table, msgs = caught(MixedSpaceWarning, read_database, coords)
    assert msgs == [
        f"{meta}: 1 study id(s) are listed more than once with different spaces (study '1': line 2 'TAL', "
        "line 4 'MNI'); the first row's space was used for all of the study's peaks. Keep one metadata row per study."
    ]
    assert table["space"].values.tolist() == ["TAL", "MNI"]


def test_v7_metadata_that_is_a_directory(tmp_path):
    coords = write(tmp_path, "x_coordinates.tsv", V7_HEADER + "1\t\t\t\t1\t2\t3\n")
    (tmp_path / "x_metadata.tsv").mkdir()
    with raises(
        DatabaseFileError,
        OSError,
        re.escape(f"{tmp_path / 'x_metadata.tsv'}: is a directory; expected a database file"),
    ):
        read_database(coords)


def test_v7_metadata_without_a_space_column(tmp_path):
    coords = write(tmp_path, "x_coordinates.tsv", V7_HEADER + "1\t\t\t\t1\t2\t3\n")
    meta = write(tmp_path, "x_metadata.tsv", "id\tdoi\n1\tn/a\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(
            f"{meta}, line 1: missing column(s) 'space' for the Neurosynth v7 metadata format; found ['id', 'doi']"
        ),
    ):
        read_database(coords)


# --------------------------------------------------------------------------------------
# NiMARE JSON: schema errors the fuzzer found (they used to escape as builtins or pass silently)
# --------------------------------------------------------------------------------------


def _nimare(x) -> dict:
    return {"s": {"contrasts": {"c": {"coords": {"space": "MNI", "x": x, "y": [1], "z": [1]}}}}}


@pytest.mark.parametrize(
    "text, found",
    [
        # RecursionError used to escape from json.loads
        ("[" * 100_000 + "]" * 100_000, None),
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, None),
        # OverflowError used to escape from np.array(dtype=float)
        (json.dumps(_nimare([10**400])), "found an integer too large for float64 in [1000000000"),
        # IndexError used to escape: [[]] became a (1, 0) array
        (json.dumps(_nimare([[]])), "found [[]]; expected a list of numbers"),
        # read silently as x = 1 (the first of [1, 2]) and x = 1.0 (true)
        (json.dumps(_nimare([[1, 2]])), "found [[1, 2]]; expected a list of numbers"),
        (json.dumps(_nimare([True])), "found [True]; expected a list of numbers"),
        # ValueError escaped: null was taken for "no odd value found" and '' reached np.array
        (json.dumps(_nimare([None, ""])), "found [None, '']; expected a list of numbers"),
    ],
    ids=["deep-array", "deep-object", "huge-int", "empty-nested", "nested", "bool", "null-then-string"],
)
def test_nimare_hostile_json(tmp_path, text, found):
    path = write(tmp_path, "dataset.json", text)
    if found is None:
        msg = (
            re.escape(f"{path}: JSON nested too deeply to read (more than Python's recursion limit of ")
            + r"\d+"
            + re.escape(
                ' levels); a NiMARE dataset is 5 levels deep, {"study": {"contrasts": {"contrast": {"coords": {...}}}}}. '
                "Check that this is the right file."
            )
        )
    else:
        msg = re.escape(f"{path}: at s -> contrasts -> c -> coords -> x: {found}")
    with raises(DatabaseError, ValueError, msg):
        read_database(path)


# --------------------------------------------------------------------------------------
# Text edge cases
# --------------------------------------------------------------------------------------


def test_line_numbers_count_only_real_line_breaks(tmp_path):
    """U+2028, \\x85 and \\f inside a line do not shift the line numbers of a Sleuth file (str.splitlines would)."""
    path = write(tmp_path, "sleuth.txt", "// Reference = MNI\n// A:\u2028e\x85\n1 2 3\f\n1 2 x\n")
    with raises(
        DatabaseError,
        ValueError,
        re.escape(f"{path}: 1 coordinate line(s) are not three finite numbers (line 4: '1 2 x')"),
    ):
        read_database(path)


def test_non_utf8_line_number_with_cr_line_breaks(tmp_path):
    path = write(
        tmp_path,
        "database.txt",
        (HEADER.replace("\n", "\r") + "1\t0\t0\t0\tMNI\r2\t0\t0\t0\tcaf\xe9\r").encode("latin-1"),
    )
    with raises(
        DatabaseError,
        ValueError,
        re.escape(f"{path}, line 3: not valid UTF-8 text (byte 0xe9). Re-save the file as UTF-8."),
    ):
        read_database(path)


def test_first_row_longer_than_the_header(tmp_path):
    """Found by the fuzzer: pandas took the extra leading cells for an index and failed inside
    ("zip() argument 2 is shorter than argument 1"); extra cells are now ignored on every row, as the
    fast pass always did, and a bad cell is reported by line."""
    path = write(tmp_path, "database.txt", HEADER + "1\t10\t20\t30\tMNI\textra\textra\n2\tx\t21\t31\tMNI\n")
    with raises(
        DatabaseError,
        ValueError,
        "^"
        + re.escape(
            f"{path}: 1 row(s) with a non-numeric, NaN or infinite coordinate - line 3 column x: 'x'. x, y and z "
            "must be finite numbers in mm; fix or delete those rows."
        )
        + "$",
    ):
        read_database(path)
    good = write(tmp_path, "good.txt", HEADER + "1\t10\t20\t30\tMNI\textra\textra\n2\t11\t21\t31\tMNI\n3\t\t\t\tMNI\n")
    table, _ = caught(EmptyStudyWarning, read_database, good)  # the blank row sends it down the careful pass
    assert table["study_id"].values.tolist() == [1, 2]
    assert xyz(table).tolist() == [[10, 20, 30], [11, 21, 31]]


@pytest.mark.parametrize("fmt", [None, "neurosynth", "neurosynth-v7", "sleuth", "nimare-json"])
def test_binary_garbage_through_every_reader(tmp_path, fmt):
    rng = np.random.default_rng(0)
    path = write(tmp_path, "x_coordinates.tsv", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with raises(DatabaseError, ValueError, re.escape(f"{path}: looks like binary data, not a text database.")):
        read_database(path, format=fmt)


# --------------------------------------------------------------------------------------
# ROI images
# --------------------------------------------------------------------------------------


@pytest.fixture
def roi_image(affine_mni):
    data = np.zeros(SHAPE, dtype=np.float32)
    data[40:50, 50:60, 40:50] = 1
    return nib.Nifti1Image(data, affine_mni)


def test_roi_all_nan(grid_2mm, affine_mni, tmp_path):
    path = str(tmp_path / "nan.nii.gz")
    nib.save(nib.Nifti1Image(np.full(SHAPE, np.nan, dtype=np.float32), affine_mni), path)
    with raises(
        RoiError,
        ValueError,
        "^"
        + re.escape(
            f"{path}: the ROI has no voxel inside the brain mask (voxels > 0 that fall in the 228453-voxel mask); "
            f"check its values, its space (MNI) and its affine. Found: every one of its {np.prod(SHAPE)} values is "
            "NaN or infinite."
        )
        + "$",
    ):
        xcoact.roi_mask(path, grid_2mm)


@pytest.mark.parametrize(
    "fill, found",
    [(0.0, "no value > 0 (values from 0 to 0)"), (-2.5, "no value > 0 (values from -2.5 to -2.5)")],
    ids=["zeros", "negative"],
)
def test_roi_without_positive_values(grid_2mm, affine_mni, tmp_path, fill, found):
    path = str(tmp_path / "roi.nii.gz")
    nib.save(nib.Nifti1Image(np.full(SHAPE, fill, dtype=np.float32), affine_mni), path)
    with raises(RoiError, ValueError, re.escape(f"affine. Found: {found}.") + "$"):
        xcoact.roi_mask(path, grid_2mm)


def test_roi_outside_the_brain_says_how_many_voxels(grid_2mm, affine_mni, tmp_path):
    data = np.zeros(SHAPE, dtype=np.uint8)
    data[:3, :3, :3] = 1
    path = str(tmp_path / "corner.nii.gz")
    nib.save(nib.Nifti1Image(data, affine_mni), path)
    with raises(
        RoiError, ValueError, re.escape("Found: 27 voxel(s) > 0, none inside the brain mask of the cube's grid.")
    ):
        xcoact.roi_mask(path, grid_2mm)


def test_roi_4d_names_shape_and_fix(grid_2mm, affine_mni, tmp_path):
    path = str(tmp_path / "4d.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((*SHAPE, 3), dtype=np.float32), affine_mni), path)
    with raises(
        RoiError,
        ValueError,
        "^"
        + re.escape(
            f"{path}: image has shape (91, 109, 91, 3); expected a 3-D ROI (one volume). Select one volume first "
            "(e.g. img.slicer[..., 0] in nibabel)."
        )
        + "$",
    ):
        xcoact.roi_mask(path, grid_2mm)


def test_roi_complex_names_dtype_and_fix(grid_2mm, affine_mni, tmp_path):
    path = str(tmp_path / "complex.nii.gz")
    nib.save(nib.Nifti1Image(np.ones(SHAPE, dtype=np.complex64), affine_mni), path)
    with raises(
        RoiError,
        ValueError,
        "^"
        + re.escape(
            f"{path}: image is complex-valued (complex64); expected real values (voxels > 0 form the ROI). "
            "Take its magnitude or real part first."
        )
        + "$",
    ):
        xcoact.roi_mask(path, grid_2mm)


@pytest.mark.parametrize("cut", ["compressed", "data"])
def test_truncated_nii_gz(grid_2mm, roi_image, tmp_path, cut):
    good = tmp_path / "good.nii.gz"
    nib.save(roi_image, good)
    raw = good.read_bytes()
    path = tmp_path / "roi.nii.gz"
    # cut the gzip stream in half, or a complete gzip stream of half the image
    path.write_bytes(raw[: len(raw) // 2] if cut == "compressed" else gzip.compress(gzip.decompress(raw)[:2_000_000]))
    with raises(
        RoiError,
        ValueError,
        re.escape(f"{path}: the image data could not be read (")
        + r".*"
        + re.escape("); the file may be truncated. Save or download it again ('gzip -t' checks a .nii.gz)."),
    ):
        xcoact.roi_mask(str(path), grid_2mm)


def test_nii_gz_with_a_broken_header(grid_2mm, tmp_path):
    path = tmp_path / "roi.nii.gz"
    path.write_bytes(gzip.compress(b"\x5c\x01" + bytes(98)))  # 100 bytes of a 348-byte NIfTI-1 header
    with raises(
        RoiError,
        ValueError,
        re.escape(f"{path}: could not be read as a NIfTI image (")
        + r".*"
        + re.escape(
            "Expected a NIfTI-1 or NIfTI-2 file (.nii or .nii.gz); if this is one, it is truncated or corrupt: save "
            "or download it again ('gzip -t' checks a .nii.gz)."
        ),
    ):
        xcoact.roi_mask(str(path), grid_2mm)


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------


# An output directory without write permission: tests/test_permissions.py (a real EACCES, as an unprivileged user).


@pytest.fixture(scope="module")
def grid_2mm():
    return xcoact.mni152_2mm()
