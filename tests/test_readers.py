"""The readers: one conformance test over every format, then exact content.

The contract (``xcoact.table``'s docstring) is checked once for all readers
(nibabel's ``ValidateAPI`` idea); the content checks parse the raw sample
files independently here, with the ``csv`` and ``json`` modules, and compare
row by row.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import data_file

import xcoact
from xcoact.errors import EmptyStudyWarning, SpaceWarning, XcoactWarning
from xcoact.readers import FORMATS, read_database, sniff_format

SAMPLE = xcoact.datasets.sample_database_path()
V7 = data_file("data-neurosynth_version-7_coordinates.tsv.gz")
V7_META = data_file("data-neurosynth_version-7_metadata.tsv.gz")
NEUROQUERY = data_file("releases/neuroquery-v1/data-neuroquery_version-1_coordinates.tsv.gz")
SLEUTH = data_file("sleuth_example.txt")
NIMARE = data_file("nimare_pain_dataset.json")

#: Lancaster et al. (2007) icbm_spm2tal (MNI -> Talairach), written out from SPEC section 1.
ICBM_SPM2TAL = np.array(
    [
        [0.9254, 0.0024, -0.0118, -1.0207],
        [-0.0048, 0.9316, -0.0871, -1.7667],
        [0.0152, 0.0883, 0.8924, 4.0926],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def tal2mni(xyz) -> np.ndarray:
    """``inv(M) @ [x, y, z, 1]`` row by row, the slow obvious way."""
    inv = np.linalg.inv(ICBM_SPM2TAL)
    return np.array([(inv @ np.array([x, y, z, 1.0]))[:3] for x, y, z in np.atleast_2d(xyz)])


def read_quiet(path, **kwargs) -> xr.Dataset:
    """read_database with xcoact's warnings silenced (they have their own tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return read_database(path, **kwargs)


def raw_tsv(path) -> list[dict]:
    """A (possibly gzipped) TSV as a list of dicts, each with its 1-based source line."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [dict(row, _line=reader.line_num) for row in reader]


def raw_sleuth(path) -> list[tuple[str, int, tuple[float, float, float]]]:
    """(study id, line, xyz) for each coordinate line of a Sleuth file, parsed by blocks."""
    out, names, after_coords = [], [], False
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                names, after_coords = ([] if after_coords else names), False
            elif line.startswith("//"):
                body = line[2:].strip()
                if body.lower().startswith(("reference", "subjects")):
                    continue
                if after_coords:
                    names, after_coords = [], False
                names.append(body)
            else:
                out.append(("; ".join(names), lineno, tuple(float(v) for v in line.split())))
                after_coords = True
    return out


# --------------------------------------------------------------------------------------
# 1. One contract, every reader
# --------------------------------------------------------------------------------------

#: (format, path, n_peaks, n_studies) for each bundled real sample.
READERS = [
    pytest.param("neurosynth", SAMPLE, 2695, 100, id="neurosynth"),
    pytest.param("neurosynth-v7", V7, 1420, 20, id="neurosynth-v7"),
    pytest.param("sleuth", SLEUTH, 7, 3, id="sleuth"),
    pytest.param("nimare-json", NIMARE, 267, 21, id="nimare-json"),
    pytest.param("neuroquery", NEUROQUERY, 439, 6, id="neuroquery"),
    pytest.param("nimads", data_file("nimads_pain_studyset.json"), 267, 21, id="nimads"),
]

#: Optional per-peak variables of the contract (xcoact.table), by the formats that carry them.
EXTRA_VARIABLES = {
    "nimads": {"sample_size", "analysis_name"},
    "sleuth": {"sample_size"},
    "nimare-json": {"sample_size"},
}


def test_every_format_is_covered_by_the_conformance_test():
    assert sorted(p.values[0] for p in READERS) == sorted(FORMATS)


@pytest.mark.parametrize("fmt, path, n_peaks, n_studies", READERS)
def test_reader_meets_the_table_contract(fmt, path, n_peaks, n_studies):
    """Every reader returns the coordinate table documented in xcoact.table."""
    assert sniff_format(path) == fmt
    table = read_quiet(path)

    assert isinstance(table, xr.Dataset)
    assert tuple(table.dims) == ("peak",)
    assert table.sizes["peak"] == n_peaks
    assert set(table.data_vars) == {"study_id", "x", "y", "z", "space", "line"} | EXTRA_VARIABLES.get(fmt, set())
    for name in table.data_vars:
        assert table[name].dims == ("peak",), name

    sid = table["study_id"].values
    assert (sid.dtype == np.int64) or sid.dtype.kind == "U", sid.dtype
    for c in "xyz":
        assert table[c].dtype == np.float64
        assert np.isfinite(table[c].values).all()
        assert table[c].attrs["units"] == "mm"
    assert table["space"].dtype.kind == "U"
    assert table["line"].dtype == np.int64
    if fmt in ("nimare-json", "nimads"):
        assert (table["line"].values == 0).all()  # JSON has no lines
    else:
        lines = table["line"].values
        assert lines.min() >= 1 and (np.diff(lines) > 0).all()

    assert table.attrs["database"] == path
    assert table.attrs["format"] == fmt
    assert table.attrs["n_peaks"] == n_peaks == table.sizes["peak"]
    assert table.attrs["n_studies"] == n_studies == len(set(sid.tolist()))

    # studies ordered by first appearance, each study's rows contiguous in the samples
    first_seen = list(dict.fromkeys(sid.tolist()))
    uniq, codes = xcoact.table.study_index(sid)
    assert uniq.tolist() == first_seen
    assert (uniq[codes] == sid).all()

    forced = read_quiet(path, format=fmt)
    xr.testing.assert_identical(forced, table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        xr.testing.assert_identical(FORMATS[fmt](path), table)  # the reader itself, no dispatch


@pytest.mark.parametrize("fmt, path, n_peaks, n_studies", READERS)
def test_table_feeds_the_cube(fmt, path, n_peaks, n_studies):
    """What a reader returns is accepted by xcoact.activations as is, study order kept."""
    table = read_quiet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        act = xcoact.activations(table, r=6)
    assert act.sizes["study"] == n_studies
    assert act["study"].values.tolist() == list(dict.fromkeys(table["study_id"].values.tolist()))


# --------------------------------------------------------------------------------------
# 2. Exact content against the raw files
# --------------------------------------------------------------------------------------


def _check_spaces(table, raw_xyz, labels):
    """MNI and unknown rows unchanged, TAL rows moved with inv(icbm_spm2tal)."""
    got = np.column_stack([table[c].values for c in "xyz"])
    labels = np.asarray(labels)
    assert table["space"].values.tolist() == labels.tolist()
    keep = labels != "TAL"
    np.testing.assert_array_equal(got[keep], raw_xyz[keep])
    tal = labels == "TAL"
    assert tal.any()
    np.testing.assert_allclose(got[tal], tal2mni(raw_xyz[tal]), rtol=0, atol=1e-9)
    # and the move is not a no-op
    assert np.abs(got[tal] - raw_xyz[tal]).max() > 1


def test_neurosynth_sample_content():
    raw = raw_tsv(SAMPLE)
    table = read_quiet(SAMPLE)
    assert len(raw) == table.sizes["peak"] == 2695
    assert table["study_id"].values.tolist() == [int(r["id"]) for r in raw]
    assert len({r["id"] for r in raw}) == 100
    assert table["line"].values.tolist() == [r["_line"] for r in raw] == list(range(2, 2697))

    labels = [r["space"] for r in raw]
    assert {s: labels.count(s) for s in set(labels)} == {"MNI": 1248, "TAL": 1237, "UNKNOWN": 210}
    raw_xyz = np.array([[float(r[c]) for c in "xyz"] for r in raw])
    _check_spaces(table, raw_xyz, labels)

    # first and last rows, by hand from the file
    assert raw[0]["id"] == "9106283" and labels[0] == "MNI"
    assert (table["study_id"].values[0], table["x"].values[0], table["y"].values[0], table["z"].values[0]) == (
        9106283,
        -2.0,
        -98.0,
        -8.0,
    )
    assert table["study_id"].values[-1] == 10865107
    assert [table[c].values[-1] for c in "xyz"] == [-48.0, -20.0, 4.0]


def test_tal_to_mni_matches_lancaster_by_hand():
    """A TAL row of the sample, moved by the matrix written out in this test."""
    table = read_quiet(SAMPLE)
    raw = raw_tsv(SAMPLE)
    i = next(k for k, r in enumerate(raw) if r["space"] == "TAL")
    x, y, z = (float(raw[i][c]) for c in "xyz")
    # solve M @ [mni, 1] = [tal, 1] instead of inverting: an independent route
    mni = np.linalg.solve(ICBM_SPM2TAL[:3, :3], np.array([x, y, z]) - ICBM_SPM2TAL[:3, 3])
    np.testing.assert_allclose([table[c].values[i] for c in "xyz"], mni, atol=1e-9)
    # the origin, worked by hand: M[:3, :3] @ mni = -M[:3, 3]
    np.testing.assert_allclose(xcoact.table.tal_to_mni([[0.0, 0.0, 0.0]]), [[1.03866, 1.45785, -4.74800]], atol=1e-5)


def test_neurosynth_v7_content_space_from_metadata():
    raw = raw_tsv(V7)
    meta = {r["id"]: r["space"] for r in raw_tsv(V7_META)}
    table = read_quiet(V7)
    assert len(raw) == table.sizes["peak"] == 1420
    assert len({r["id"] for r in raw}) == 20 == table.attrs["n_studies"]
    assert table["study_id"].values.tolist() == [int(r["id"]) for r in raw]
    assert table["line"].values.tolist() == [r["_line"] for r in raw]

    labels = [meta[r["id"]] for r in raw]  # the coordinates file has no space column
    assert "space" not in raw[0]
    assert {s: labels.count(s) for s in set(labels)} == {"MNI": 744, "TAL": 407, "UNKNOWN": 269}
    raw_xyz = np.array([[float(r[c]) for c in "xyz"] for r in raw])
    _check_spaces(table, raw_xyz, labels)
    assert [table[c].values[0] for c in "xyz"] == [38.0, -48.0, 49.0]  # first row, an MNI study


def test_neurosynth_v7_metadata_as_plain_tsv(tmp_path):
    """The metadata beside the coordinates may be uncompressed."""
    coords = tmp_path / "data-neurosynth_version-7_coordinates.tsv.gz"
    shutil.copy(V7, coords)
    with gzip.open(V7_META, "rb") as src:
        (tmp_path / "data-neurosynth_version-7_metadata.tsv").write_bytes(src.read())
    got = read_quiet(coords)
    xr.testing.assert_equal(got, read_quiet(V7))


def test_neurosynth_v7_without_metadata_warns_and_keeps_mni(tmp_path):
    coords = tmp_path / "data-neurosynth_version-7_coordinates.tsv.gz"
    shutil.copy(V7, coords)
    with pytest.warns(SpaceWarning, match=r"no metadata file beside it .*every peak is taken as MNI"):
        table = read_database(coords)
    assert set(table["space"].values.tolist()) == {"MNI"}
    raw = raw_tsv(V7)
    np.testing.assert_array_equal(table["x"].values, [float(r["x"]) for r in raw])


def test_nimare_content_ids_are_study_dash_contrast():
    with open(NIMARE, encoding="utf-8") as fh:
        data = json.load(fh)
    ids, xyz, spaces = [], [], []
    for study, body in data.items():
        for contrast, cbody in body["contrasts"].items():
            c = cbody["coords"]
            ids += [f"{study}-{contrast}"] * len(c["x"])
            xyz += list(zip(c["x"], c["y"], c["z"]))
            spaces += [c["space"]] * len(c["x"])
    table = read_quiet(NIMARE)
    assert table.sizes["peak"] == len(ids) == 267
    assert table["study_id"].values.tolist() == ids
    assert table.attrs["n_studies"] == len(set(ids)) == 21
    assert ids[0] == "pain_01.nidm-1"
    assert set(spaces) == {"MNI"}
    np.testing.assert_array_equal(np.column_stack([table[c].values for c in "xyz"]), np.array(xyz))
    assert [table[c].values[0] for c in "xyz"] == [48.0, -38.0, -24.0]


def test_nimare_tal_contrast_and_empty_contrast(tmp_path):
    data = {
        "s1": {
            "contrasts": {"a": {"coords": {"space": "TAL", "x": [10.0, -20.0], "y": [0.0, 30.0], "z": [5.0, -5.0]}}}
        },
        "s2": {
            "contrasts": {
                "b": {"coords": {"space": "MNI", "x": [], "y": [], "z": []}},
                "c": {"metadata": {"sample_sizes": [12]}},
                "d": {"coords": {"space": "MNI", "x": [1.0], "y": [2.0], "z": [3.0]}},
            }
        },
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    with pytest.warns(
        EmptyStudyWarning, match=r"2 contrast\(s\) without coordinates were left out: \['s2-b', 's2-c'\]"
    ):
        table = read_database(path)
    assert table["study_id"].values.tolist() == ["s1-a", "s1-a", "s2-d"]
    np.testing.assert_allclose(
        np.column_stack([table[c].values for c in "xyz"])[:2], tal2mni([[10, 0, 5], [-20, 30, -5]]), atol=1e-9
    )
    assert [table[c].values[2] for c in "xyz"] == [1.0, 2.0, 3.0]


def test_sleuth_content_ids_grouping_and_lines():
    raw = raw_sleuth(SLEUTH)
    table = read_quiet(SLEUTH)
    assert table["study_id"].values.tolist() == [sid for sid, _, _ in raw]
    assert table["line"].values.tolist() == [ln for _, ln, _ in raw] == [4, 5, 6, 7, 11, 12, 18]
    assert list(dict.fromkeys(table["study_id"].values.tolist())) == [
        "StudyName: ExperimentName",
        "StudyName2: ExperimentName",
        # several name lines over one block of coordinates form one experiment
        "StudyName3: ExperimentName; StudyName3: ExperimentName2; StudyName3: ExperimentName3",
    ]
    assert table["space"].values.tolist() == ["MNI"] * 7
    np.testing.assert_array_equal(np.column_stack([table[c].values for c in "xyz"]), [xyz for _, _, xyz in raw])


@pytest.mark.parametrize("reference", ["// Reference = Talairach", "//Reference=talairach", "// Reference = TAL"])
def test_sleuth_talairach_reference_moves_to_mni(tmp_path, reference):
    path = tmp_path / "tal.txt"
    path.write_text(
        f"{reference}\n// Smith 2001: pain\n// Subjects = 12\n10 -20 30\n-4\t8\t12\n\n// Jones 2003: heat\n0 0 0\n"
    )
    table = read_quiet(path)
    assert sniff_format(path) == "sleuth"
    assert table["study_id"].values.tolist() == ["Smith 2001: pain"] * 2 + ["Jones 2003: heat"]
    assert table["space"].values.tolist() == ["TAL"] * 3
    np.testing.assert_allclose(
        np.column_stack([table[c].values for c in "xyz"]), tal2mni([[10, -20, 30], [-4, 8, 12], [0, 0, 0]]), atol=1e-9
    )


def test_sleuth_mni_reference_is_kept_and_name_after_coords_starts_new_experiment(tmp_path):
    path = tmp_path / "mni.txt"
    path.write_text("// Reference = MNI\n// A: one\n1 2 3\n// B: two\n4,5,6\n")
    table = read_quiet(path)
    assert table["study_id"].values.tolist() == ["A: one", "B: two"]
    assert table.attrs["n_studies"] == 2
    np.testing.assert_array_equal(np.column_stack([table[c].values for c in "xyz"]), [[1, 2, 3], [4, 5, 6]])
    assert table["line"].values.tolist() == [3, 5]


def test_sleuth_reference_applies_to_the_lines_below_it(tmp_path):
    """A second Reference line changes the space of what follows, not of what came before."""
    path = tmp_path / "two_refs.txt"
    path.write_text("// Reference = MNI\n// A: e\n1 2 3\n\n// Reference = Talairach\n// B: e\n0 0 0\n")
    table = read_quiet(path)
    assert table["space"].values.tolist() == ["MNI", "TAL"]
    assert [table[c].values[0] for c in "xyz"] == [1.0, 2.0, 3.0]
    np.testing.assert_allclose([table[c].values[1] for c in "xyz"], tal2mni([0, 0, 0])[0], atol=1e-9)


def test_neurosynth_header_any_case_extra_columns_blank_lines_crlf_bom(tmp_path):
    text = (
        "\ufeffDOI\tID\tX\tY\tZ\tSpace\tpeak_note\r\n"
        "10.1/a\t17\t-2\t4\t6\tmni\tfirst\r\n"
        "\r\n"
        "10.1/b\t18\t0\t0\t0\tTalairach\tsecond\r\n"
        "10.1/c\tabc-1\t1.5\t2.5\t3.5\tT88\tthird\r\n"
    )
    path = tmp_path / "database.txt"
    path.write_text(text, encoding="utf-8", newline="")
    table = read_quiet(path)
    assert table.attrs["format"] == "neurosynth"
    # one non-integer id: every id is kept as a string
    assert table["study_id"].values.tolist() == ["17", "18", "abc-1"]
    assert table["line"].values.tolist() == [2, 4, 5]  # the blank line is skipped, not renumbered
    assert table["space"].values.tolist() == ["mni", "Talairach", "T88"]
    got = np.column_stack([table[c].values for c in "xyz"])
    np.testing.assert_array_equal(got[0], [-2, 4, 6])
    np.testing.assert_allclose(got[1:], tal2mni([[0, 0, 0], [1.5, 2.5, 3.5]]), atol=1e-9)


# --------------------------------------------------------------------------------------
# 3. Unknown spaces warn; gzip is transparent
# --------------------------------------------------------------------------------------


def test_unknown_space_warns_with_label_and_row_count():
    with pytest.warns(SpaceWarning) as record:
        read_database(SAMPLE)
    msgs = [str(w.message) for w in record if issubclass(w.category, SpaceWarning)]
    assert len(msgs) == 1
    assert msgs[0].startswith(f"{SAMPLE}: unknown space label(s) 'UNKNOWN': 210 row(s); ")
    assert "used as they are" in msgs[0] and "TAL/T88/Talairach (moved to MNI)" in msgs[0]
    # the warning points at the caller's line, not inside xcoact
    assert record[0].filename == __file__


def test_unknown_space_warning_v7_counts_rows_not_studies():
    with pytest.warns(SpaceWarning, match=r"unknown space label\(s\) 'UNKNOWN': 269 row\(s\);"):
        read_database(V7)


def test_every_unknown_label_is_named_with_its_count(tmp_path):
    path = tmp_path / "database.txt"
    path.write_text("id\tx\ty\tz\tspace\n1\t0\t0\t0\tICBM452\n1\t1\t1\t1\tfoo\n2\t2\t2\t2\tfoo\n3\t3\t3\t3\tMNI\n")
    with pytest.warns(SpaceWarning, match=r"'ICBM452': 1 row\(s\), 'foo': 2 row\(s\);"):
        table = read_database(path)
    np.testing.assert_array_equal(table["x"].values, [0, 1, 2, 3])  # untouched


@pytest.mark.parametrize("path", [SLEUTH, NIMARE], ids=["sleuth", "nimare-json"])
def test_known_spaces_do_not_warn(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", XcoactWarning)
        read_database(path)


@pytest.mark.parametrize(
    "fmt, path",
    [("neurosynth", SAMPLE), ("sleuth", SLEUTH), ("nimare-json", NIMARE)],
    ids=["neurosynth", "sleuth", "nimare-json"],
)
def test_gzip_is_transparent(tmp_path, fmt, path):
    gz = tmp_path / "copy.gz"
    with open(path, "rb") as src:
        gz.write_bytes(gzip.compress(src.read()))
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert sniff_format(gz) == fmt
    plain, zipped = read_quiet(path), read_quiet(gz)
    xr.testing.assert_equal(zipped, plain)
    assert zipped.attrs == {**plain.attrs, "database": str(gz)}
    assert (zipped["line"].values == plain["line"].values).all()


def test_v7_uncompressed_reads_the_same(tmp_path):
    plain = tmp_path / "data-neurosynth_version-7_coordinates.tsv"
    with gzip.open(V7, "rb") as src:
        plain.write_bytes(src.read())
    shutil.copy(V7_META, tmp_path / "data-neurosynth_version-7_metadata.tsv.gz")
    assert sniff_format(plain) == "neurosynth-v7"
    xr.testing.assert_equal(read_quiet(plain), read_quiet(V7))


def test_raw_tsv_helper_sees_what_pandas_sees():
    """Guard for the independent parser: csv and pandas agree on the sample."""
    import pandas as pd

    with open(SAMPLE, encoding="utf-8") as fh:
        frame = pd.read_csv(io.StringIO(fh.read()), sep="\t", dtype=str)
    assert frame["id"].tolist() == [r["id"] for r in raw_tsv(SAMPLE)]
