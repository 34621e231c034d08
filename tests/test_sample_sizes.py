"""Sample sizes in the coordinate table (issue 13, point 1).

Sleuth keeps each experiment block's ``// Subjects = N``, NiMARE JSON its
``metadata.sample_sizes`` (the list's mean), and the Sleuth, NiMARE JSON and
NIMADS writers write them back.  NiMARE 0.22.1 itself reads the written files
with the same sample sizes.
"""

from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np
import pytest

from xcoact.errors import DatabaseError, ParameterError, XcoactWarning
from xcoact.readers import read_database, write_database
from xcoact.table import make_table, study_index

DATA = os.path.join(os.path.dirname(__file__), "data")
SLEUTH = os.path.join(DATA, "sleuth_example.txt")
SEMANTIC = os.path.join(DATA, "semantic_knowledge_children.txt")
PAIN = os.path.join(DATA, "nimare_pain_dataset.json")
NAMES = {"sleuth": "s.txt", "nimare-json": "d.json", "nimads": "studyset.json"}


def per_study(table) -> tuple[list, list]:
    """(study ids, sample size of each) in order of first appearance; checks a study's peaks agree."""
    studies, codes = study_index(table["study_id"].values)
    sizes = table["sample_size"].values
    out = []
    for s in range(len(studies)):
        own = sizes[codes == s]
        assert np.array_equal(own, np.full(own.size, own[0]), equal_nan=True), studies[s]
        out.append(float(own[0]))
    return studies.tolist(), out


def write(tmp_path, name, text) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_sleuth_keeps_each_blocks_subjects():
    table = read_database(SLEUTH)
    _, sizes = per_study(table)
    assert sizes == [50.0, 46.0, 20.0]
    assert table["sample_size"].dtype == np.float64
    assert table["sample_size"].values.tolist() == [50.0] * 4 + [46.0] * 2 + [20.0]


def test_sleuth_block_without_subjects_is_nan_and_does_not_inherit(tmp_path):
    path = write(
        tmp_path,
        "s.txt",
        "// Reference = MNI\n// A: one\n// Subjects = 12\n1 2 3\n4 5 6\n\n"
        "// B: two\n7 8 9\n\n// C: three\n//Subjects=7.5\n0 0 0\n",
    )
    ids, sizes = per_study(read_database(path))
    assert ids == ["A: one", "B: two", "C: three"]
    assert sizes[0] == 12.0 and np.isnan(sizes[1]) and sizes[2] == 7.5


def test_sleuth_without_any_subjects_has_no_sample_size(tmp_path):
    path = write(tmp_path, "s.txt", "// Reference = MNI\n// A\n1 2 3\n\n// B\n4 5 6\n")
    assert "sample_size" not in read_database(path)


@pytest.mark.parametrize("value", ["twenty", "0", "-5", "", "nan"])
def test_sleuth_bad_subjects_line_is_an_error_naming_the_line(tmp_path, value):
    path = write(tmp_path, "s.txt", f"// Reference = MNI\n// A: one\n// Subjects = {value}\n1 2 3\n")
    with pytest.raises(DatabaseError) as err:
        read_database(path)
    shown = f"// Subjects = {value}".strip()
    assert str(err.value) == (
        f"{path}, line 3: '{shown}' does not state a sample size; expected '// Subjects = N' with N the number of "
        "subjects (> 0), e.g. '// Subjects = 20', or no Subjects line."
    )


def test_nimare_json_sample_sizes_are_nimares(tmp_path):
    """Per study, the mean of metadata.sample_sizes: the value NiMARE's estimators put on each focus."""
    from nimare.dataset import Dataset

    table = read_database(PAIN)
    ids, sizes = per_study(table)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dset = Dataset(PAIN)
    finally:
        logging.disable(logging.NOTSET)
    theirs = {i: float(np.mean(v)) for i, v in zip(dset.metadata["id"], dset.metadata["sample_sizes"])}
    assert len(ids) == 21 and dict(zip(ids, sizes)) == theirs
    assert len(set(sizes)) > 1


def test_nimare_json_list_mean_scalar_fallback_and_missing(tmp_path):
    coords = {"space": "MNI", "x": [1.0], "y": [2.0], "z": [3.0]}
    doc = {
        "a": {"contrasts": {"1": {"coords": coords, "metadata": {"sample_sizes": [10, 21]}}}},
        "b": {"contrasts": {"1": {"coords": coords, "metadata": {"sample_size": 8}}}},
        "c": {"contrasts": {"1": {"coords": coords}}},
    }
    path = write(tmp_path, "d.json", json.dumps(doc))
    ids, sizes = per_study(read_database(path))
    assert ids == ["a-1", "b-1", "c-1"] and sizes[:2] == [15.5, 8.0] and np.isnan(sizes[2])


@pytest.mark.parametrize("fmt", ["sleuth", "nimare-json", "nimads"])
def test_round_trip_keeps_sample_sizes(tmp_path, fmt):
    table = read_database(SEMANTIC)
    ids, sizes = per_study(table)
    assert len(ids) == 21 and all(s > 0 for s in sizes)
    back = read_database(write_database(table, tmp_path / NAMES[fmt], fmt))
    back_ids, back_sizes = per_study(back)
    assert back_sizes == sizes
    assert back_ids == (ids if fmt == "sleuth" else [f"{i}-1" for i in ids])
    np.testing.assert_array_equal(back["x"].values, table["x"].values)


@pytest.mark.parametrize("fmt", ["sleuth", "nimare-json", "nimads"])
def test_round_trip_keeps_unknown_and_fractional_sizes(tmp_path, fmt):
    sizes = np.array([12.0, 12.0, np.nan, 7.25, 1e-3 + 30])
    table = make_table(
        ["a", "a", "b", "c", "d"],
        [1.0, 2, 3, 4, 5],
        [0.0] * 5,
        [0.0] * 5,
        ["MNI"] * 5,
        database="t",
        fmt="test",
        sample_size=sizes,
    )
    back = read_database(write_database(table, tmp_path / NAMES[fmt], fmt))
    np.testing.assert_array_equal(back["sample_size"].values, sizes)


def test_sleuth_writer_layout_and_nimare_reads_it(tmp_path):
    """The written Subjects lines are GingerALE's layout: NiMARE's own Sleuth reader finds the same sizes."""
    from nimare.io import convert_sleuth_to_dict

    table = read_database(SEMANTIC)
    path = write_database(table, tmp_path / "s.txt", "sleuth")
    with open(path) as fh:
        lines = fh.read().split("\n")
    assert lines[1:4] == ["// arnoldussen2006nc", "// Subjects = 11", "13.807\t-46.707\t33.481"]
    theirs = convert_sleuth_to_dict(path)
    got = {
        study: float(body["contrasts"]["analysis_1"]["metadata"]["sample_sizes"][0]) for study, body in theirs.items()
    }
    ids, sizes = per_study(table)
    assert got == dict(zip(ids, sizes))


def test_writer_refuses_a_study_with_two_sample_sizes(tmp_path):
    table = make_table(
        ["a", "a"],
        [1.0, 2.0],
        [0.0, 0.0],
        [0.0, 0.0],
        ["MNI", "MNI"],
        database="t",
        fmt="test",
        sample_size=[10.0, 12.0],
    )
    for fmt, name in (("sleuth", "Sleuth"), ("nimare-json", "NiMARE JSON"), ("nimads", "NIMADS")):
        with pytest.raises(ParameterError) as err:
            write_database(table, tmp_path / NAMES[fmt], fmt)
        assert str(err.value) == (
            f"table: study 'a' has peaks with different sample sizes (10, 12); the {name} format keeps one sample "
            "size per study. Give all of a study's peaks its sample size."
        )
        assert not os.path.exists(tmp_path / NAMES[fmt])


@pytest.mark.parametrize(
    "sizes, message",
    [
        ([10.0], "t: 1 sample size(s) for 2 peak(s); expected one per peak (NaN where unknown)."),
        (
            [10.0, -1.0],
            (
                "t: sample size -1 (peak 1) is not a number of subjects; expected a finite number > 0, or NaN "
                "where unknown."
            ),
        ),
        (
            [np.inf, 3.0],
            (
                "t: sample size inf (peak 0) is not a number of subjects; expected a finite number > 0, or "
                "NaN where unknown."
            ),
        ),
    ],
)
def test_make_table_checks_sample_sizes(sizes, message):
    with pytest.raises(DatabaseError) as err:
        make_table(
            ["a", "b"], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0], ["MNI", "MNI"], database="t", fmt="test", sample_size=sizes
        )
    assert str(err.value) == message


def test_formats_without_sample_sizes_write_the_rest(tmp_path):
    """Neurosynth and NeuroQuery files have no place for sample sizes: the peaks are written, the sizes are not."""
    table = read_database(SLEUTH)
    for fmt, name in (("neurosynth", "db.txt"), ("neuroquery", "nq_coordinates.tsv")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", XcoactWarning)
            back = read_database(write_database(table, tmp_path / name, fmt))
        assert "sample_size" not in back and back.sizes["peak"] == 7
