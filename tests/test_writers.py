"""The writers: every format round-trips through read_database; writes are atomic.

Round trips use three tables: the bundled real sample (MNI, TAL and UNKNOWN
rows), a synthetic table (MNI) and a synthetic-coordinate table with studies
in MNI, TAL and T88 at full float precision.  The files written are also
parsed here independently (csv, json, gzip) to check their layout.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import stat
import warnings

import numpy as np
import pytest
import xarray as xr

import xcoact
from xcoact.errors import OutputError, ParameterError, XcoactWarning
from xcoact.readers import FORMATS, WRITERS, read_database, write_database
from xcoact.table import make_table

#: Lancaster et al. (2007) icbm_spm2tal (MNI -> Talairach), written out from SPEC section 1.
ICBM_SPM2TAL = np.array(
    [
        [0.9254, 0.0024, -0.0118, -1.0207],
        [-0.0048, 0.9316, -0.0871, -1.7667],
        [0.0152, 0.0883, 0.8924, 4.0926],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
TAL_LABELS = {"TAL", "T88", "TALAIRACH"}

#: A file name each format can be written to.
NAMES = {
    "neurosynth": "database.txt",
    "neurosynth-v7": "db_coordinates.tsv",
    "sleuth": "sleuth.txt",
    "nimare-json": "dataset.json",
    "neuroquery": "nq_coordinates.tsv",
    "nimads": "studyset.json",
}


def read_quiet(path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return read_database(path)


def _sample():
    return read_quiet(xcoact.datasets.sample_database_path())


def _synthetic():
    return xcoact.datasets.synthetic(150, seed=2)


def _mixed():
    """Full-precision coordinates, studies in MNI, TAL and T88 (source coordinates, as a reader sees them)."""
    rng = np.random.default_rng(11)
    ids = np.repeat(np.arange(101, 131), rng.integers(1, 12, size=30))
    labels = np.array(["MNI", "TAL", "T88"])[(ids - 101) % 3]
    xyz = rng.normal(0, 30, size=(len(ids), 3))
    return make_table(ids, xyz[:, 0], xyz[:, 1], xyz[:, 2], labels, database="mixed", fmt="test")


def _only(table, labels):
    return table.isel(peak=np.isin(np.char.upper(table["space"].values.astype(str)), list(labels)))


TABLES = {
    "sample": _sample,
    "synthetic": _synthetic,
    "mixed": _mixed,
    # Sleuth states one space per file
    "sample-mni": lambda: _only(_sample(), {"MNI"}),
    "sample-tal": lambda: _only(_sample(), {"TAL"}),
    "mixed-tal": lambda: _only(_mixed(), TAL_LABELS),
}

ROUND_TRIPS = [
    (fmt, name)
    for fmt in FORMATS
    for name in (
        ["sample-mni", "sample-tal", "synthetic", "mixed-tal"]
        if fmt == "sleuth"
        else ["sample-mni", "sample-tal", "synthetic", "mixed"]
        if fmt == "neuroquery"  # MNI and Talairach rows only
        else ["sample", "synthetic", "mixed"]
    )
]


def _is_tal(table) -> np.ndarray:
    return np.isin(np.char.upper(table["space"].values.astype(str)), list(TAL_LABELS))


def assert_same_peaks(back, table, fmt):
    """Same coordinates (exact; Talairach rows to 1e-9 mm), ids (NiMARE: "{id}-1") and spaces."""
    assert back.sizes["peak"] == table.sizes["peak"]
    assert back.attrs["n_studies"] == len(set(table["study_id"].values.tolist()))
    assert back.attrs["format"] == fmt
    ids = table["study_id"].values
    if fmt in ("nimare-json", "nimads"):  # both name each contrast / analysis "{study}-{id}"
        np.testing.assert_array_equal(back["study_id"].values, np.array([f"{i}-1" for i in ids.tolist()]))
    else:
        assert back["study_id"].dtype == ids.dtype
        np.testing.assert_array_equal(back["study_id"].values, ids)
    spaces = table["space"].values.astype(str)
    if fmt == "sleuth":  # Sleuth reads its Reference line back as MNI or TAL
        spaces = np.where(_is_tal(table), "TAL", "MNI")
    if fmt == "neuroquery":  # all MNI: Talairach rows are written as their MNI values
        spaces = np.full(len(spaces), "MNI")
    np.testing.assert_array_equal(back["space"].values, spaces)
    tal = _is_tal(table)
    for c in "xyz":
        np.testing.assert_array_equal(back[c].values[~tal], table[c].values[~tal])
        np.testing.assert_allclose(back[c].values[tal], table[c].values[tal], rtol=0, atol=1e-9)


def _listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------


def test_every_format_has_a_writer():
    assert sorted(WRITERS) == sorted(FORMATS)
    assert xcoact.readers.write_database is write_database


@pytest.mark.parametrize("fmt, name", ROUND_TRIPS)
def test_round_trip(tmp_path, fmt, name):
    table = TABLES[name]()
    path = write_database(table, tmp_path / NAMES[fmt], fmt)
    assert path == str(tmp_path / NAMES[fmt])
    back = read_quiet(path)
    assert_same_peaks(back, table, fmt)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_round_trip_gzip(tmp_path, fmt):
    table = _mixed() if fmt != "sleuth" else _only(_mixed(), {"MNI"})
    path = write_database(table, tmp_path / (NAMES[fmt] + ".gz"), fmt)
    with open(path, "rb") as fh:
        raw = fh.read()
    assert raw[:2] == b"\x1f\x8b"
    # the header names the final file (not the temporary one) and carries no time stamp
    assert raw[3] & 0x08 and raw[10:].split(b"\0", 1)[0] == NAMES[fmt].encode()
    assert raw[4:8] == b"\0\0\0\0"
    assert_same_peaks(read_quiet(path), table, fmt)
    (tmp_path / "plain").mkdir()
    plain = write_database(table, tmp_path / "plain" / NAMES[fmt], fmt)
    with open(plain, "rb") as fh:
        assert gzip.decompress(raw) == fh.read()
    # the same table always gives the same bytes
    again = write_database(table, tmp_path / ("again-" + NAMES[fmt] + ".gz"), fmt)
    with open(again, "rb") as fh:
        assert gzip.decompress(fh.read()) == gzip.decompress(raw)


def test_sample_written_as_neurosynth_is_the_bundled_file_byte_for_byte(tmp_path):
    """MNI and UNKNOWN rows as read, TAL rows moved back to the file's Talairach values."""
    path = write_database(_sample(), tmp_path / "database.txt")
    with open(path, "rb") as ours, open(xcoact.datasets.sample_database_path(), "rb") as theirs:
        assert ours.read() == theirs.read()


def test_talairach_rows_are_written_in_talairach(tmp_path):
    table = _mixed()
    path = write_database(table, tmp_path / "database.txt")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["id", "x", "y", "z", "space"]
    written = np.array([[float(r[c]) for c in "xyz"] for r in rows])
    mni = np.column_stack([table[c].values for c in "xyz"])
    tal = _is_tal(table)
    assert 0 < tal.sum() < len(tal)
    expected = (ICBM_SPM2TAL @ np.column_stack([mni, np.ones(len(mni))]).T).T[:, :3]
    np.testing.assert_allclose(written[tal], expected[tal], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(written[~tal], mni[~tal])
    assert np.abs(written[tal] - mni[tal]).max() > 1  # really moved
    assert [r["space"] for r in rows] == table["space"].values.tolist()
    assert [int(r["id"]) for r in rows] == table["study_id"].values.tolist()


def test_neurosynth_rows_keep_order_and_lines_number_them(tmp_path):
    table = _synthetic()
    back = read_quiet(write_database(table, tmp_path / "database.txt"))
    np.testing.assert_array_equal(back["line"].values, np.arange(2, table.sizes["peak"] + 2))


def test_string_ids_round_trip(tmp_path):
    ids = ["Smith 2001: faces", "Smith 2001: faces", "Doe (2003)", "007"]
    table = make_table(
        ids, [1.5, 2.0, -3.25, 4.0], [0.1, 0.2, 0.3, 0.4], [10.0, 20.0, 30.0, 40.0], ["MNI"] * 4, database="s", fmt="t"
    )
    assert table["study_id"].dtype.kind == "U"
    for fmt in FORMATS:
        back = read_quiet(write_database(table, tmp_path / NAMES[fmt], fmt))
        assert_same_peaks(back, table, fmt)


def test_sleuth_groups_a_studys_rows(tmp_path):
    """Studies whose rows are interleaved are written as one experiment each, in first-appearance order."""
    table = make_table(
        [5, 9, 5, 9, 3], [1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5, [0.0] * 5, ["MNI"] * 5, database="i", fmt="t"
    )
    back = read_quiet(write_database(table, tmp_path / "s.txt", "sleuth"))
    assert back["study_id"].values.tolist() == [5, 5, 9, 9, 3]
    assert back["x"].values.tolist() == [1.0, 3.0, 2.0, 4.0, 5.0]
    # the neurosynth format keeps the table's row order
    flat = read_quiet(write_database(table, tmp_path / "d.txt"))
    assert flat["study_id"].values.tolist() == [5, 9, 5, 9, 3]


# --------------------------------------------------------------------------------------
# Layout of each format
# --------------------------------------------------------------------------------------


def _tsv(path) -> list[list[str]]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="\t"))


@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz"])
def test_v7_writes_coordinates_and_metadata_beside_it(tmp_path, suffix):
    table = _sample()
    path = write_database(table, tmp_path / f"data-x_coordinates{suffix}", "neurosynth-v7")
    meta = str(tmp_path / f"data-x_metadata{suffix}")
    assert _listing(tmp_path) == sorted([os.path.basename(path), os.path.basename(meta)])
    for p in (path, meta):
        with open(p, "rb") as fh:
            assert (fh.read(2) == b"\x1f\x8b") == suffix.endswith(".gz")
    coords, metadata = _tsv(path), _tsv(meta)
    assert coords[0] == ["id", "table_id", "table_num", "peak_id", "x", "y", "z"]
    assert metadata[0] == ["id", "doi", "space", "title", "authors", "year", "journal"]
    assert [int(r[3]) for r in coords[1:]] == list(range(1, table.sizes["peak"] + 1))
    studies = list(dict.fromkeys(table["study_id"].values.tolist()))
    assert [int(r[0]) for r in metadata[1:]] == studies
    space_of = dict(zip(table["study_id"].values.tolist(), table["space"].values.tolist()))
    assert [r[2] for r in metadata[1:]] == [space_of[s] for s in studies]
    assert {len(r) for r in coords} == {7} and {len(r) for r in metadata} == {7}
    assert read_quiet(path).attrs["format"] == "neurosynth-v7"


def test_nimare_json_layout(tmp_path):
    table = _mixed()
    path = write_database(table, tmp_path / "dataset.json", "nimare-json")
    with open(path) as fh:
        data = json.load(fh)
    studies = list(dict.fromkeys(table["study_id"].values.tolist()))
    assert list(data) == [str(s) for s in studies]
    first = table.isel(peak=table["study_id"].values == studies[0])
    body = data[str(studies[0])]
    assert list(body) == ["contrasts"] and list(body["contrasts"]) == ["1"]
    coords = body["contrasts"]["1"]["coords"]
    assert coords["space"] == "MNI"
    assert coords["x"] == first["x"].values.tolist()  # MNI study: the float64 values exactly
    assert data[str(studies[1])]["contrasts"]["1"]["coords"]["space"] == "TAL"


@pytest.mark.parametrize("subset, reference", [("sample-mni", "MNI"), ("mixed-tal", "Talairach")])
def test_sleuth_layout(tmp_path, subset, reference):
    table = TABLES[subset]()
    path = write_database(table, tmp_path / "s.txt", "sleuth")
    with open(path) as fh:
        lines = fh.read().split("\n")
    assert lines[0] == f"// Reference = {reference}"
    names = [ln for ln in lines[1:] if ln.startswith("//")]
    assert names == [f"// {s}" for s in dict.fromkeys(table["study_id"].values.tolist())]
    assert not any("Subjects" in ln for ln in lines)
    n_studies = len(names)
    assert lines.count("") == n_studies  # a blank line after each experiment but the last, plus the final newline
    assert all(lines[i + 1].startswith("// ") for i, ln in enumerate(lines[:-1]) if ln == "")
    coords = [ln for ln in lines[1:] if ln and not ln.startswith("//")]
    assert len(coords) == table.sizes["peak"] and all(len(ln.split("\t")) == 3 for ln in coords)


def test_written_files_get_the_umask_mode(tmp_path):
    """Not the 0o600 of a temporary file."""
    umask = os.umask(0)
    os.umask(umask)
    path = write_database(_synthetic(), tmp_path / "database.txt")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


def _fail_replace(monkeypatch, fail_on_call: int = 1):
    """Make the fail_on_call-th placing of a file raise OSError (earlier ones go through).

    A file is placed by os.replace with overwrite, and by a hard link without (a link refuses to
    replace a file that appeared meanwhile); the hard links that back up earlier files ('.bak') do
    not count.
    """
    calls = []

    def failing(real):
        def place(src, dst, *args, **kwargs):
            if real is not os.replace and os.fspath(dst).endswith(".bak"):
                return real(src, dst, *args, **kwargs)
            calls.append(dst)
            if len(calls) == fail_on_call:
                raise OSError(28, "No space left on device")
            return real(src, dst, *args, **kwargs)

        return place

    monkeypatch.setattr(os, "replace", failing(os.replace))
    monkeypatch.setattr(os, "link", failing(os.link))
    return calls


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_failed_rename_leaves_nothing(tmp_path, monkeypatch, fmt):
    table = _synthetic()
    target = tmp_path / NAMES[fmt]
    calls = _fail_replace(monkeypatch)
    with pytest.raises(OutputError, match=r"writing failed \(OSError: .*No space left.*nothing was written"):
        write_database(table, target, fmt)
    assert calls  # the failure was really injected
    assert _listing(tmp_path) == []


@pytest.mark.parametrize(
    "fmt, module, function",
    [
        ("neurosynth", "neurosynth", "format_floats"),
        ("neurosynth-v7", "neurosynth", "format_floats"),
        ("sleuth", "sleuth", "format_floats"),
        ("nimare-json", None, None),
    ],
)
def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, fmt, module, function):
    """An error half-way through the rows: the temporary file existed, and is gone afterwards."""
    import xcoact.readers._text as text

    monkeypatch.setattr(text, "WRITE_CHUNK", 50)
    seen = []

    def failing(real):
        def wrapped(*args, **kwargs):
            seen.append(_listing(tmp_path))
            if len(seen) == 4:
                raise RuntimeError("injected failure")
            return real(*args, **kwargs)

        return wrapped

    if module is None:
        import xcoact.readers.nimare as nimare

        monkeypatch.setattr(nimare.json, "dumps", failing(json.dumps))
    else:
        mod = getattr(xcoact.readers, module)
        monkeypatch.setattr(mod, function, failing(getattr(mod, function)))
    with pytest.raises(RuntimeError, match="injected failure"):
        write_database(_synthetic(), tmp_path / NAMES[fmt], fmt)
    assert len(seen) == 4
    assert any(name.endswith(".part") for name in seen[-1])  # written to a temporary file...
    assert _listing(tmp_path) == []  # ...which is gone


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch, fmt):
    table = _synthetic()
    path = write_database(table, tmp_path / NAMES[fmt], fmt)
    before = {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)}
    _fail_replace(monkeypatch, fail_on_call=len(before))  # v7: the second file fails after the first was placed
    with pytest.raises(OutputError):
        write_database(xcoact.datasets.synthetic(20, seed=9), path, fmt, overwrite=True)
    assert {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)} == before


def test_v7_failure_on_the_second_file_removes_the_first(tmp_path, monkeypatch):
    calls = _fail_replace(monkeypatch, fail_on_call=2)
    with pytest.raises(OutputError, match=r"db_coordinates.tsv: writing failed"):
        write_database(_synthetic(), tmp_path / "db_coordinates.tsv", "neurosynth-v7")
    assert [os.path.basename(c) for c in calls] == ["db_metadata.tsv", "db_coordinates.tsv"]
    assert _listing(tmp_path) == []


# --------------------------------------------------------------------------------------
# Overwriting
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_existing_file_is_refused_unless_overwrite(tmp_path, fmt):
    target = tmp_path / NAMES[fmt]
    target.write_text("keep me\n")
    with pytest.raises(OutputError, match=rf"{target} already exists; pass overwrite=True"):
        write_database(_synthetic(), target, fmt)
    assert target.read_text() == "keep me\n"
    write_database(_synthetic(), target, fmt, overwrite=True)
    assert_same_peaks(read_quiet(target), _synthetic(), fmt)


def test_v7_existing_metadata_alone_is_refused(tmp_path):
    meta = tmp_path / "db_metadata.tsv.gz"
    meta.write_bytes(b"old")
    with pytest.raises(OutputError, match=rf"{meta} already exists"):
        write_database(_synthetic(), tmp_path / "db_coordinates.tsv.gz", "neurosynth-v7")
    assert _listing(tmp_path) == ["db_metadata.tsv.gz"] and meta.read_bytes() == b"old"


def test_v7_plain_metadata_beside_a_gz_one_is_refused(tmp_path):
    """read_database prefers *_metadata.tsv.gz, so a stale one would shadow the plain file written."""
    stale = tmp_path / "db_metadata.tsv.gz"
    stale.write_bytes(b"stale")
    with pytest.raises(OutputError, match=r"db_metadata.tsv.gz exists beside .*Remove it"):
        write_database(_synthetic(), tmp_path / "db_coordinates.tsv", "neurosynth-v7")
    assert _listing(tmp_path) == ["db_metadata.tsv.gz"]


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_unknown_format(tmp_path):
    with pytest.raises(
        ParameterError,
        match=r"format='csv' is not a known database format; expected one of \['neuroquery', 'neurosynth'",
    ):
        write_database(_synthetic(), tmp_path / "x.csv", "csv")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("name", ["db.tsv", "db_coordinates.txt", "db_coordinates.tsv.bz2", "coordinates.tsv.gz"])
def test_v7_path_must_end_in_coordinates_tsv(tmp_path, name):
    with pytest.raises(ParameterError, match=r"must end with '_coordinates.tsv' or\s+'_coordinates.tsv.gz'"):
        write_database(_synthetic(), tmp_path / name, "neurosynth-v7")
    assert _listing(tmp_path) == []


def test_sleuth_refuses_mixed_spaces_and_names_them(tmp_path):
    with pytest.raises(
        ParameterError, match=r"one space, but .*'MNI': 1248 row\(s\), 'TAL': 1237 row\(s\), 'UNKNOWN': 210 row\(s\)"
    ):
        write_database(_sample(), tmp_path / "s.txt", "sleuth")
    unknown = _only(_sample(), {"UNKNOWN"})
    with pytest.raises(ParameterError, match=r"'UNKNOWN': 210 row\(s\); expected all MNI"):
        write_database(unknown, tmp_path / "s.txt", "sleuth")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("fmt", ["neurosynth-v7", "nimare-json"])
def test_one_space_per_study_formats_refuse_a_mixed_study(tmp_path, fmt):
    table = make_table([1, 1, 2], [0.0] * 3, [0.0] * 3, [0.0] * 3, ["MNI", "TAL", "MNI"], database="m", fmt="t")
    with pytest.raises(ParameterError, match=r"1 study\(ies\) have peaks in more than one space \(e.g. study 1\)"):
        write_database(table, tmp_path / NAMES[fmt], fmt)
    # the neurosynth format holds a space per peak
    assert_same_peaks(read_quiet(write_database(table, tmp_path / "d.txt")), table, "neurosynth")


def test_not_a_table(tmp_path):
    with pytest.raises(ParameterError, match=r"table=DataFrame cannot be written as .*expected a coordinate table"):
        import pandas as pd

        write_database(pd.DataFrame({"x": [1.0]}), tmp_path / "d.txt")
    with pytest.raises(ParameterError, match=r"no variable\(s\) \['space'\]"):
        write_database(_synthetic().drop_vars("space"), tmp_path / "d.txt")
    with pytest.raises(ParameterError, match="no peaks"):
        write_database(_synthetic().isel(peak=slice(0, 0)), tmp_path / "d.txt")
    assert _listing(tmp_path) == []


def test_nan_coordinate(tmp_path):
    table = _synthetic().copy(deep=True)
    table["y"].values[3] = np.nan
    with pytest.raises(ParameterError, match=r"1 peak\(s\) have a NaN or infinite coordinate \(e.g. peak 3\)"):
        write_database(table, tmp_path / "d.txt")


@pytest.mark.parametrize("fmt", ["neurosynth", "neurosynth-v7"])
def test_tsv_refuses_tabs_and_line_breaks(tmp_path, fmt):
    tab_id = make_table(["a\tb", "c"], [0.0, 1.0], [0.0] * 2, [0.0] * 2, ["MNI"] * 2, database="t", fmt="t")
    with pytest.raises(ParameterError, match=r"1 study id\(s\) contain a tab or line feed or carriage return.*'a\\tb'"):
        write_database(tab_id, tmp_path / NAMES[fmt], fmt)
    odd_space = _synthetic().assign(space=("peak", np.full(_synthetic().sizes["peak"], "MNI\n152")))
    with pytest.raises(ParameterError, match=r"space label\(s\) contain"):
        write_database(odd_space, tmp_path / NAMES[fmt], fmt)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize(
    "study, match",
    [
        ("Reference = TAL", "would read back as a Sleuth Reference line"),
        ("subjects = 12", "would read back as a Sleuth Subjects line"),
        ("two\nlines", r"contain a line feed or carriage return"),
    ],
)
def test_sleuth_refuses_ids_it_cannot_write(tmp_path, study, match):
    table = make_table([study, "ok"], [0.0, 1.0], [0.0] * 2, [0.0] * 2, ["MNI"] * 2, database="t", fmt="t")
    with pytest.raises(ParameterError, match=match):
        write_database(table, tmp_path / "s.txt", "sleuth")
    assert _listing(tmp_path) == []


def test_missing_directory_and_directory_target(tmp_path):
    with pytest.raises(OutputError, match=r"output directory does not exist"):
        write_database(_synthetic(), tmp_path / "nope" / "d.txt")
    with pytest.raises(OutputError, match=r"is a directory; expected a file name"):
        write_database(_synthetic(), tmp_path)
    assert _listing(tmp_path) == []


def test_csv_parses_what_we_write_like_pandas(tmp_path):
    """The independent csv parsing used above sees the same cells as the reader's pandas."""
    import pandas as pd

    path = write_database(_mixed(), tmp_path / "d.txt")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert frame.values.tolist() == _tsv(path)[1:]
    with open(path) as fh:
        assert sum(1 for _ in io.StringIO(fh.read())) == _mixed().sizes["peak"] + 1
