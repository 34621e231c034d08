"""Fuzzing the readers: generated and mutated files never escape as anything but xcoact's own errors.

For each reader (Neurosynth ``database.txt``, the Neurosynth v7 split
coordinates + metadata, Sleuth, NiMARE JSON) and for ``read_database``'s
format sniffing, hypothesis writes files two ways:

* from a grammar of valid-ish content: the format's layout with cells,
  headers, delimiters, line breaks, blank lines, byte-order marks and gzip
  drawn from lists that mix good values with bad ones;
* by byte-level mutation (deletions, insertions of tokens or random bytes,
  overwrites, duplications, truncation) of the real sample files in
  ``tests/data``, plain or gzip-compressed.

Every file is read through ``read_database``'s sniffing, and with its own
reader too when sniffing picks another format (NeuroQuery's reader, which the
sniffing may pick, gets a light pass as well).  The properties:
an exception that escapes is an :class:`xcoact.XcoactError` that is also the
builtin it mirrors (``ValueError``/``OSError``...) and names the file; every
warning is an :class:`xcoact.errors.XcoactWarning`; a successful read meets
the table contract of :mod:`xcoact.table`.  Files that are valid by
construction must also read back exactly as generated, study ids as written
(``17.1`` and ``17.10``, ``0012`` and ``12`` stay apart); every well-formed
grammar file must read; each property must read at least a set share of its
files (a reader refusing everything fails); repeated Sleuth experiment names
and NiMARE contrast ids made twice are drawn and must be refused; and a
table written by each of the five writers reads back exactly (ids as text,
spaces, coordinates), unless the writer refuses it up front.

``derandomize=True`` makes every run draw the same examples, and the budgets
below bound the run: 1,300-1,650 files per reader, 6,400 in all, in under a
minute on the 2-core CI machine (measured in docs/reliability.md).
"""

from __future__ import annotations

import collections
import functools
import gzip
import json
import os
import re
import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import data_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xcoact
from xcoact.errors import XcoactWarning
from xcoact.readers import read_database, sniff_format
from xcoact.table import tal_to_mni

#: Multiplies every budget: ``XCOACT_FUZZ_SCALE=20 pytest tests/test_fuzz_readers.py`` fuzzes
#: twenty times harder (and longer) for a one-off search; CI runs the budgets as written.
SCALE = int(os.environ.get("XCOACT_FUZZ_SCALE", "1"))


def fuzz(max_examples: int):
    """Reproducible, bounded hypothesis settings: the same examples every run, no example database."""
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


def one_in(draw, k: int) -> bool:
    """True about once in ``k`` draws.

    Hypothesis favours the ends of a range (it draws 0 far more often than
    1/k), so the rare branch is a middle value.
    """
    return draw(st.integers(0, k - 1)) == k // 2


TABLE_VARIABLES = {"study_id", "x", "y", "z", "space", "line"}


# --------------------------------------------------------------------------------------
# The properties
# --------------------------------------------------------------------------------------


def assert_contract(table, path: str, fmt: str) -> None:
    """The coordinate-table contract of xcoact.table's docstring."""
    assert isinstance(table, xr.Dataset)
    assert tuple(table.dims) == ("peak",)
    assert set(table.data_vars) - {"sample_size"} == TABLE_VARIABLES  # sample_size: optional (xcoact.table)
    for name in TABLE_VARIABLES:
        assert table[name].dims == ("peak",), name
    if "sample_size" in table:
        sizes = table["sample_size"].values
        assert sizes.dtype == np.float64 and table["sample_size"].dims == ("peak",)
        assert (np.isnan(sizes) | (sizes > 0)).all() and not np.isnan(sizes).all()
    n = table.sizes["peak"]
    assert n > 0
    sid = table["study_id"].values
    assert sid.dtype == np.int64 or sid.dtype.kind == "U", sid.dtype
    for c in "xyz":
        assert table[c].dtype == np.float64
        assert np.isfinite(table[c].values).all()
    assert table["space"].dtype.kind == "U"
    lines = table["line"].values
    assert lines.dtype == np.int64
    if fmt == "nimare-json":
        assert (lines == 0).all()
    else:
        # 1-based source lines, in file order
        assert lines.min() >= 1 and (np.diff(lines) > 0).all()
    assert table.attrs["database"] == path
    assert table.attrs["format"] == fmt
    assert table.attrs["n_peaks"] == n
    assert table.attrs["n_studies"] == len(set(sid.tolist()))


def assert_our_error(err: BaseException, paths: list[str]) -> None:
    """An XcoactError that also subclasses a builtin error, naming one of the files."""
    assert isinstance(err, xcoact.XcoactError), f"escaped: {type(err).__name__}: {err}"
    builtins = [
        b for b in type(err).__mro__ if b.__module__ == "builtins" and b not in (Exception, BaseException, object)
    ]
    assert builtins, type(err).__mro__
    assert isinstance(err, (ValueError, OSError)), type(err).__mro__
    msg = str(err)
    assert any(p in msg for p in paths), msg


def read_checked(path: str, fmt: str | None, expected_fmt: str | None, paths: list[str]):
    """read_database under the properties; the table, or None if it raised (xcoact's own error)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            table = read_database(path, format=fmt)
        except xcoact.XcoactError as err:
            assert_our_error(err, paths)
            table = None
    for w in record:
        assert issubclass(w.category, XcoactWarning), f"{w.category.__name__}: {w.message}"
    if table is not None:
        assert_contract(table, path, expected_fmt or table.attrs["format"])
    return table


#: Outcomes of the format reader in the property running now: "read" or "refused".
TALLY: collections.Counter = collections.Counter()


def min_share_read(share: float):
    """Fail a property whose files were read successfully less often than ``share`` of the time.

    The properties accept any XcoactError, so without this a reader that
    refused every file would pass them.  Each share is about half of what the
    readers reach on the same (derandomized) examples, noted beside each
    test (``XCOACT_FUZZ_REPORT=1 pytest -s`` prints them).
    """

    def wrap(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            TALLY.clear()
            test(*args, **kwargs)
            n = TALLY["read"] + TALLY["refused"]
            assert n, "no file was read"
            got = TALLY["read"] / n
            if os.environ.get("XCOACT_FUZZ_REPORT"):  # for measuring the shares quoted in the docstrings
                print(f"\n{test.__name__}: {TALLY['read']} of {n} files read ({got:.1%})")
            assert got >= share, f"only {TALLY['read']} of {n} files read ({got:.0%}); expected at least {share:.0%}"

        return run

    return wrap


def read_both_ways(path: str, fmt: str, paths: list[str] | None = None):
    """Read with sniffing and, when sniffing picks another format, with the format's reader too.

    Returns the format reader's table (or None when it raised), and tallies it.
    """
    paths = paths or [path]
    try:
        sniffed_fmt = sniff_format(path)
    except xcoact.XcoactError as err:  # e.g. an unreadable file
        assert_our_error(err, paths)
        sniffed_fmt = None
    table = read_checked(path, None, sniffed_fmt, paths)
    if sniffed_fmt != fmt:
        table = read_checked(path, fmt, fmt, paths)
    TALLY["read" if table is not None else "refused"] += 1
    return table


@pytest.fixture(scope="module", autouse=True)
def same_examples_everywhere():
    """Keep hypothesis from mixing constants of the imported local modules into its draws.

    Since 6.131 hypothesis sometimes draws constants it finds in the source of
    the local modules imported so far (xcoact's, when installed editable), so
    ``derandomize=True`` alone would draw other examples after any edit to
    xcoact, or when other test files are collected alongside this one.  With
    the pool emptied, a run draws the same files on every machine; the
    grammars above carry the format's own vocabulary instead.  If hypothesis
    moves this internal hook, the tests still run, only less reproducibly.
    """
    try:
        from hypothesis.internal.conjecture import providers

        original, cache = providers._get_local_constants, providers.CONSTANTS_CACHE.cache
        empty = providers.Constants()
    except (ImportError, AttributeError):  # another hypothesis layout: nothing to switch off
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for the whole module: each example overwrites the same few files."""
    return tmp_path_factory.mktemp("fuzz")


def put(folder, name: str, data: bytes, gz: bool = False) -> str:
    path = os.path.join(folder, name + (".gz" if gz else ""))
    with open(path, "wb") as fh:
        fh.write(gzip.compress(data, mtime=0) if gz else data)
    return path


def clear(folder) -> None:
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))


# --------------------------------------------------------------------------------------
# Byte-level mutation
# --------------------------------------------------------------------------------------

TOKENS = [
    b"\t",
    b"\n",
    b"\r",
    b"\r\n",
    b" ",
    b",",
    b";",
    b"nan",
    b"NaN",
    b"inf",
    b"-inf",
    b"1e999",
    b"-",
    b"",
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xc3",
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"true",
    b"//",
    b"// Reference = Talairach",
    b"// Reference = XYZ",
    b"TAL",
    b"UNKNOWN",
    b"900",
    b"id",
    b"space",
    b"x",
]


@st.composite
def mutated(draw, source: bytes) -> bytes:
    """``source`` after 1-6 random edits; sometimes gzip-compressed before or after editing."""
    data = bytearray(source)
    compress_first = one_in(draw, 10)
    if compress_first:  # edits inside the gzip stream: corrupt or truncated archives
        data = bytearray(gzip.compress(bytes(data), mtime=0))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "byte", "copy", "truncate", "swap-lines"]))
        pos = draw(st.integers(0, len(data)))
        if op == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6) if one_in(draw, 4) else st.sampled_from(TOKENS))
        elif op == "byte" and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "copy" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[pos:pos] = data[start : start + draw(st.integers(1, 200))]
        elif op == "truncate":
            del data[pos:]
        elif op == "swap-lines":
            lines = bytes(data).split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
    if not compress_first and one_in(draw, 5):
        return gzip.compress(bytes(data), mtime=0)
    return bytes(data)


def _head_lines(data: bytes, n: int) -> bytes:
    return b"".join(data.splitlines(keepends=True)[:n])


def _gunzip(path: str) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


# Real samples, cut to a few dozen rows so each read stays in the millisecond range.
NEUROSYNTH_SAMPLE = _head_lines(_gunzip(xcoact.datasets.sample_database_path()), 40)
V7_SAMPLE = _head_lines(_gunzip(data_file("data-neurosynth_version-7_coordinates.tsv.gz")), 40)
V7_META_SAMPLE = _gunzip(data_file("data-neurosynth_version-7_metadata.tsv.gz"))
SLEUTH_SAMPLE = _gunzip(data_file("sleuth_example.txt"))
with open(data_file("nimare_pain_dataset.json"), encoding="utf-8") as _fh:
    _pain = json.load(_fh)
NIMARE_SAMPLE = json.dumps({k: _pain[k] for k in list(_pain)[:2]}, indent=1).encode()
NEUROQUERY_SAMPLE = _head_lines(
    _gunzip(data_file("releases/neuroquery-v1/data-neuroquery_version-1_coordinates.tsv.gz")), 40
)


@min_share_read(0.06)  # 13.5% of the files read
@fuzz(800)
@given(data=mutated(NEUROSYNTH_SAMPLE))
def test_mutated_neurosynth(workdir, data):
    clear(workdir)
    read_both_ways(put(workdir, "database.txt", data), "neurosynth")


@min_share_read(0.06)  # 13.5% of the files read
@fuzz(800)
@given(coords=mutated(V7_SAMPLE), meta=st.one_of(st.none(), st.just(V7_META_SAMPLE), mutated(V7_META_SAMPLE)))
def test_mutated_neurosynth_v7(workdir, coords, meta):
    clear(workdir)
    path = put(workdir, "db_coordinates.tsv", coords)
    paths = [path]
    if meta is not None:
        paths.append(put(workdir, "db_metadata.tsv", meta))
    read_both_ways(path, "neurosynth-v7", paths)


@min_share_read(0.07)  # 15.4% of the files read
@fuzz(800)
@given(data=mutated(SLEUTH_SAMPLE))
def test_mutated_sleuth(workdir, data):
    clear(workdir)
    read_both_ways(put(workdir, "sleuth.txt", data), "sleuth")


@min_share_read(0.03)  # 6.0% of the files read
@fuzz(800)
@given(data=mutated(NIMARE_SAMPLE))
def test_mutated_nimare_json(workdir, data):
    clear(workdir)
    read_both_ways(put(workdir, "dataset.json", data), "nimare-json")


@min_share_read(0.04)  # 8.5% of the files read
@fuzz(400)
@given(data=mutated(NEUROQUERY_SAMPLE))
def test_mutated_neuroquery(workdir, data):
    """NeuroQuery's reader is sniffed from a header like v7's, so it is fuzzed here too (lightly)."""
    clear(workdir)
    read_both_ways(put(workdir, "db_coordinates.tsv", data), "neuroquery")


# --------------------------------------------------------------------------------------
# Grammars of valid-ish content
# --------------------------------------------------------------------------------------
#
# Each file draws a noise level: 0 gives a well-formed file, 1 a file whose
# cells are each bad with a small chance (one bad row among good ones, the
# common case in real databases), 2 a file of mostly bad cells.  Structure
# (headers, delimiters, blank lines, line breaks) is varied the same way.

GOOD_NUMBERS = st.one_of(
    st.integers(-100, 100).map(str),
    st.floats(-100, 100, allow_nan=False).map(repr),
    st.floats(-100, 100, allow_nan=False).map(lambda v: f"{v:.2f}"),
)
BAD_NUMBERS = st.sampled_from(
    [
        "",
        " ",
        "nan",
        "NaN",
        "-inf",
        "Infinity",
        "1e999",
        "abc",
        "1,5",
        "0x10",
        "1_0",
        "--1",
        "\u2212" + "5",
        "\u0661\u0662",
        "1e-400",
        "900",
        "-1000",
        " 12 ",
        "+3",
        ".5",
        "5.",
        "1e300",
        "-2e6",
        "1.7e308",
    ]
)
WORD = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6)
ODD_TEXT = st.one_of(WORD, st.text(max_size=5))  # any unicode, control characters included
#: Ids that look like numbers but differ as text: each must stay its own study (issue 11).
NUMERIC_LOOKING_IDS = ["17.1", "17.10", "17.2", "0012", "12", "1e3", "1000", "+5", "5", "007", "7.0", "7", "-0", "0"]
NUMERIC_IDS = st.one_of(
    st.sampled_from(NUMERIC_LOOKING_IDS),
    st.floats(0, 1e4, allow_nan=False).map(repr),
    st.integers(0, 99).map(lambda i: f"{i:03d}"),
)
GOOD_IDS = st.one_of(
    st.integers(0, 10**12).map(str), st.integers(0, 5).map(str), st.sampled_from(["abc", "s-1", "0007"]), NUMERIC_IDS
)
BAD_IDS = st.one_of(st.sampled_from(["", " ", "-1", "1.0", " 7", "99999999999999999999"]), ODD_TEXT)
GOOD_SPACES = st.sampled_from(["MNI", "TAL", "T88", "Talairach", "mni152", "ICBM", "tal", " MNI "])
BAD_SPACES = st.one_of(st.sampled_from(["UNKNOWN", "", "SPM", "MNI305"]), ODD_TEXT)
BREAKS = st.sampled_from(["\n", "\n", "\r\n", "\r"])
NOISE = st.sampled_from([0, 0, 1, 1, 2])


def noisy(draw, noise: int, good, bad):
    """A good value, or (more often the noisier the file) a bad one."""
    if noise and one_in(draw, 20 if noise == 1 else 3):
        return draw(bad)
    return draw(good)


CELLS = {
    "id": (GOOD_IDS, BAD_IDS),
    "x": (GOOD_NUMBERS, BAD_NUMBERS),
    "y": (GOOD_NUMBERS, BAD_NUMBERS),
    "z": (GOOD_NUMBERS, BAD_NUMBERS),
    "space": (GOOD_SPACES, BAD_SPACES),
}


@st.composite
def tsv_text(draw, required: tuple[str, ...], cells: dict, noise: int) -> str:
    """A tab-separated table: the required columns in any order and case, extra columns, odd rows and delimiters."""
    extras = [c for c in ("doi", "table_id", "peak_id", "note", "title") if c not in required]
    cols = list(required) + draw(st.lists(st.sampled_from(extras), max_size=2, unique=True))
    cols = draw(st.permutations(cols))
    if noise and one_in(draw, 10):  # a column missing or repeated
        if draw(st.booleans()):
            cols.pop(draw(st.integers(0, len(cols) - 1)))
        else:
            cols.append(draw(st.sampled_from(cols)))
    header = [c.upper() if one_in(draw, 5) else c for c in cols]
    sep = "\t" if not noise or not one_in(draw, 10) else draw(st.sampled_from([",", " ", ";"]))
    newline = draw(BREAKS)
    lines = [sep.join(header)]
    for _ in range(draw(st.integers(0 if noise else 1, 10))):
        if one_in(draw, 13):
            lines.append(draw(st.sampled_from(["", " ", "\t"])))
            continue
        row = [noisy(draw, noise, *cells.get(c.lower(), (WORD, ODD_TEXT))) for c in cols]
        if noise and one_in(draw, 13):  # a short or long row
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(WORD, max_size=2))
        lines.append(sep.join(row))
    text = newline.join(lines) + draw(st.sampled_from([newline, ""]))
    return ("\ufeff" if one_in(draw, 10) else "") + text


def encode(draw, text: str, noise: int) -> tuple[bytes, bool]:
    """UTF-8 (in noisy files sometimes Latin-1) bytes, and whether to gzip them."""
    if noise and one_in(draw, 15):
        data = text.encode("latin-1", errors="replace")
    else:
        data = text.encode("utf-8")
    return data, one_in(draw, 5)


def has_rows(text: str) -> bool:
    """Whether a TSV text has a non-blank line below its header."""
    return any(line.strip() for line in text.replace("\r", "\n").split("\n")[1:])


@min_share_read(0.3)
@fuzz(600)
@given(st.data())
def test_grammar_neurosynth(workdir, data):
    """Reads 59.5% of the files; every well-formed one (noise 0) must read, numeric-looking ids apart."""
    clear(workdir)
    noise = data.draw(NOISE)
    text = data.draw(tsv_text(("id", "x", "y", "z", "space"), CELLS, noise))
    raw, gz = encode(data.draw, text, noise)
    table = read_both_ways(put(workdir, "database.txt", raw, gz), "neurosynth")
    if noise == 0 and has_rows(text):
        assert table is not None


V7_IDS = (st.integers(0, 6).map(str), BAD_IDS)


@min_share_read(0.2)
@fuzz(500)
@given(st.data())
def test_grammar_neurosynth_v7(workdir, data):
    """Reads 46% of the files; every well-formed one (noise 0) must read."""
    clear(workdir)
    noise = data.draw(NOISE)
    coords = data.draw(
        tsv_text(("id", "table_id", "table_num", "peak_id", "x", "y", "z"), {**CELLS, "id": V7_IDS}, noise)
    )
    raw, gz = encode(data.draw, coords, noise)
    path = put(workdir, "db_coordinates.tsv", raw, gz)
    paths = [path]
    if not noise or not one_in(data.draw, 6):  # usually a metadata file beside it
        meta = data.draw(tsv_text(("id", "doi", "space"), {**CELLS, "id": V7_IDS}, noise))
        # a well-formed release lists every study id of its coordinates (in the header's column order)
        cols = [c.lower() for c in re.split(r"\r\n|\r|\n", meta.lstrip("\ufeff"), maxsplit=1)[0].split("\t")]
        row = "\t".join({"id": "{}", "space": "MNI"}.get(c, "n/a") for c in cols) + "\n"
        ids = "".join(row.format(i) for i in range(7)) if not noise else ""
        meta_raw, meta_gz = encode(data.draw, meta.rstrip("\r\n") + "\n" + ids, noise)
        paths.append(put(workdir, "db_metadata.tsv", meta_raw, meta_gz))
    table = read_both_ways(path, "neurosynth-v7", paths)
    if noise == 0 and has_rows(coords):
        assert table is not None


@st.composite
def sleuth_text(draw) -> tuple[int, str]:
    """Experiments (names, subjects, coordinate lines, a blank line) under Reference lines, with defects by noise."""
    noise = draw(NOISE)
    lines = []
    if not noise or not one_in(draw, 10):
        lines.append(
            draw(
                st.sampled_from(
                    ["// Reference = MNI", "// Reference = Talairach", "//Reference=TAL", "// reference = mni"]
                )
            )
        )

    def how_many(hi):  # at least one, except now and then in a noisy file
        return draw(st.integers(0, hi)) if noise and one_in(draw, 6) else draw(st.integers(1, hi))

    named: list[list[str]] = []  # the name lines of each experiment so far
    for e in range(how_many(5)):
        if noise and named and one_in(draw, 6):  # a block reusing an earlier experiment's name: an error
            lines += draw(st.sampled_from(named))
        else:
            names = []
            for _ in range(how_many(2)):
                if one_in(draw, 3):  # numeric-looking names, distinct as text (17.1 and 17.10)
                    names.append(f"// {NUMERIC_LOOKING_IDS[e]}" + "0" * len(names))
                else:
                    names.append(f"// Study {e}:" + draw(WORD if not noise else st.one_of(WORD, WORD, ODD_TEXT)))
            named.append(names)
            lines += names
        if draw(st.booleans()):
            lines.append(f"// Subjects = {draw(st.integers(1, 80))}")
        sep = draw(st.sampled_from(["\t", " ", ",", ", ", ";", "  "]))
        for _ in range(how_many(5)):
            n = 3 if not noise or not one_in(draw, 10) else draw(st.integers(1, 4))
            lines.append(sep.join(noisy(draw, noise, GOOD_NUMBERS, BAD_NUMBERS) for _ in range(n)))
        lines.append("")
        if noise and one_in(draw, 8):  # a stray line anywhere
            lines.insert(
                draw(st.integers(0, len(lines))),
                draw(
                    st.sampled_from(
                        [
                            "// Reference = SPM",
                            "// Reference =",
                            "//",
                            "//Subjects=x",
                            "   ",
                            "hello",
                            "// Reference = Talairach",
                        ]
                    )
                ),
            )
    return noise, draw(BREAKS).join(lines)


@min_share_read(0.25)
@fuzz(600)
@given(st.data())
def test_grammar_sleuth(workdir, data):
    """Reads 53% of the files; every well-formed one (noise 0) must read."""
    clear(workdir)
    noise, text = data.draw(sleuth_text())
    raw, gz = encode(data.draw, text, noise)
    table = read_both_ways(put(workdir, "sleuth.txt", raw, gz), "sleuth")
    if noise == 0:
        assert table is not None


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), WORD)
JSON_ANY = st.recursive(
    JSON_LEAF, lambda c: st.lists(c, max_size=3) | st.dictionaries(WORD, c, max_size=3), max_leaves=8
)
GOOD_JSON_NUMBERS = st.one_of(st.integers(-100, 100), st.floats(-100, 100))
BAD_JSON_NUMBERS = st.one_of(st.floats(), st.integers(), st.integers(-(10**400), 10**400), JSON_ANY)


@st.composite
def nimare_doc(draw):
    """A NiMARE dataset: studies -> contrasts -> coords {space, x, y, z}; by noise, odd values anywhere."""
    noise = draw(NOISE)

    def maybe(value):  # in noisy files, any JSON value sometimes stands where the schema wants another
        return draw(JSON_ANY) if noise and one_in(draw, 15 if noise == 1 else 4) else value

    doc = {}
    for s in range(draw(st.integers(0 if noise else 1, 4))):
        contrasts = {}
        for _ in range(draw(st.integers(0 if noise else 1, 3))):
            n = draw(st.integers(0 if noise else 1, 5))
            coords = {}
            for axis in "xyz":
                m = n if not noise or not one_in(draw, 10) else draw(st.integers(0, 5))  # unequal lengths
                coords[axis] = maybe([noisy(draw, noise, GOOD_JSON_NUMBERS, BAD_JSON_NUMBERS) for _ in range(m)])
            if not noise or not one_in(draw, 10):
                coords["space"] = maybe(noisy(draw, noise, GOOD_SPACES, BAD_SPACES))
            contrast = {"coords": maybe(coords)} if not noise or not one_in(draw, 10) else {}
            if draw(st.booleans()):
                contrast["metadata"] = {"sample_sizes": [draw(st.integers(1, 80))]}
            contrasts[draw(WORD)] = maybe(contrast)
        doc[draw(WORD) + str(s)] = maybe({"contrasts": maybe(contrasts)})
    if noise and one_in(draw, 6):  # two contrasts whose NiMARE ids are one ('k-1' '1' and 'k' '1-1'): an error
        key = draw(st.sampled_from(["k", "s", "12", "0012"]))
        one = {"coords": {"space": "MNI", "x": [1.0], "y": [2.0], "z": [3.0]}}
        doc[f"{key}-1"] = {"contrasts": {"1": one}}
        doc[key] = {"contrasts": {"1-1": one}}
    ids = [f"{k}-{c}" for k, v in doc.items() for c in v["contrasts"]] if not noise else []
    return noise, maybe(doc), noise == 0 and len(set(ids)) == len(ids)


@min_share_read(0.2)
@fuzz(600)
@given(st.data())
def test_grammar_nimare_json(workdir, data):
    """Reads 47% of the files; every well-formed one (noise 0, no id made twice) must read."""
    clear(workdir)
    noise, doc, clean = data.draw(nimare_doc())
    text = json.dumps(doc, indent=data.draw(st.sampled_from([None, 1])))  # NaN and Infinity too, as json allows
    raw, gz = encode(data.draw, text, noise)
    table = read_both_ways(put(workdir, "dataset.json", raw, gz), "nimare-json")
    if clean:
        assert table is not None


# --------------------------------------------------------------------------------------
# Files valid by construction read back exactly
# --------------------------------------------------------------------------------------

COORD = st.integers(-80, 80).map(float) | st.floats(-80, 80, allow_nan=False, allow_subnormal=False)
#: Study ids of valid files: small integers and ids that look like numbers but differ as text.
VALID_IDS = st.one_of(st.integers(1, 6).map(str), st.sampled_from(NUMERIC_LOOKING_IDS))
PEAKS = st.lists(
    st.tuples(VALID_IDS, COORD, COORD, COORD, st.sampled_from(["MNI", "TAL", "T88", "mni"])), min_size=1, max_size=15
)


def expected_xyz(peaks) -> np.ndarray:
    xyz = np.array([p[1:4] for p in peaks], dtype=float)
    tal = np.array([p[4].upper() in ("TAL", "T88") for p in peaks])
    if tal.any():
        xyz[tal] = tal_to_mni(xyz[tal])
    return xyz


@fuzz(250)
@given(peaks=PEAKS, newline=BREAKS, gz=st.booleans())
def test_valid_neurosynth_reads_back_exactly(workdir, peaks, newline, gz):
    clear(workdir)
    text = (
        newline.join(["id\tx\ty\tz\tspace"] + [f"{i}\t{x!r}\t{y!r}\t{z!r}\t{s}" for i, x, y, z, s in peaks]) + newline
    )
    table = read_both_ways(put(workdir, "database.txt", text.encode(), gz), "neurosynth")
    assert table is not None
    assert [str(i) for i in table["study_id"].values.tolist()] == [p[0] for p in peaks]  # as written: 17.1 != 17.10
    assert table.attrs["n_studies"] == len({p[0] for p in peaks})
    assert table["line"].values.tolist() == list(range(2, len(peaks) + 2))
    assert table["space"].values.tolist() == [p[4] for p in peaks]
    np.testing.assert_allclose(
        np.column_stack([table[c].values for c in "xyz"]), expected_xyz(peaks), rtol=0, atol=1e-9
    )


@fuzz(250)
@given(
    experiments=st.lists(st.lists(st.tuples(COORD, COORD, COORD), min_size=1, max_size=5), min_size=1, max_size=5),
    reference=st.sampled_from(["MNI", "Talairach"]),
    sep=st.sampled_from(["\t", " ", ","]),
)
def test_valid_sleuth_reads_back_exactly(workdir, experiments, reference, sep):
    clear(workdir)
    lines, ids, xyz, numbers = [f"// Reference = {reference}"], [], [], []
    for e, peaks in enumerate(experiments):
        lines += [f"// Study {e}: experiment", f"// Subjects = {10 + e}"]
        for p in peaks:
            lines.append(sep.join(repr(v) for v in p))
            ids.append(f"Study {e}: experiment")
            xyz.append(p)
            numbers.append(len(lines))
        lines.append("")
    table = read_both_ways(put(workdir, "sleuth.txt", "\n".join(lines).encode()), "sleuth")
    assert table is not None
    assert table["study_id"].values.tolist() == ids
    assert table["line"].values.tolist() == numbers
    want = np.array(xyz, dtype=float)
    if reference == "Talairach":
        want = tal_to_mni(want)
    np.testing.assert_allclose(np.column_stack([table[c].values for c in "xyz"]), want, rtol=0, atol=1e-9)


EXPERIMENT_NAMES = st.one_of(
    st.sampled_from(NUMERIC_LOOKING_IDS),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8),
)


@fuzz(150)
@given(names=st.lists(EXPERIMENT_NAMES, min_size=1, max_size=5, unique=True), data=st.data())
def test_sleuth_repeated_experiment_name_is_refused_naming_both(workdir, names, data):
    """Distinct names (17.1 and 17.10 too) read as that many studies; a block repeating a name is an error."""
    clear(workdir)
    repeat = data.draw(st.none() | st.integers(0, len(names) - 1))
    order = names + ([names[repeat]] if repeat is not None else [])
    lines, starts = ["// Reference = MNI"], []
    for e, name in enumerate(order):
        starts.append(len(lines) + 1)
        lines += [f"// {name}", f"// Subjects = {10 + e}", f"{e} 1 2", ""]
    path = put(workdir, "sleuth.txt", "\n".join(lines).encode())
    if repeat is None:
        table = read_both_ways(path, "sleuth")
        assert table is not None and [str(i) for i in table["study_id"].values.tolist()] == names
        return
    with pytest.raises(xcoact.DatabaseError) as err:
        read_database(path)
    assert (
        f"at line {starts[repeat]} (Subjects = {10 + repeat}) and line {starts[-1]} (Subjects = {10 + len(names)})"
        in str(err.value)
    )


@fuzz(150)
@given(
    studies=st.lists(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=4),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    data=st.data(),
)
def test_nimare_contrast_id_made_twice_is_refused_naming_both(workdir, studies, data):
    """Study 'k-1' contrast '1' and study 'k' contrast '1-1' are both 'k-1-1': an error naming both places."""
    clear(workdir)
    one = {"coords": {"space": "MNI", "x": [1.0], "y": [2.0], "z": [3.0]}}
    doc = {k: {"contrasts": {"1": one}} for k in studies}
    clash = data.draw(st.booleans())
    key = data.draw(st.sampled_from(studies))
    if clash and key + "-1" not in doc:
        doc[key + "-1"] = {"contrasts": {"1": one}}  # 'key-1' + '1' ...
        doc[key]["contrasts"]["1-1"] = one  # ... and 'key' + '1-1'
    ids = [f"{k}-{c}" for k, v in doc.items() for c in v["contrasts"]]
    path = put(workdir, "dataset.json", json.dumps(doc).encode())
    if len(set(ids)) == len(ids):
        table = read_both_ways(path, "nimare-json")
        assert table is not None and table.attrs["n_studies"] == len(ids)
        return
    with pytest.raises(xcoact.DatabaseError, match="contrast id\\(s\\) are made twice") as err:
        read_database(path)
    assert "contrasts" in str(err.value) and "'1-1'" in str(err.value)


# --------------------------------------------------------------------------------------
# Every writer: what it writes reads back exactly
# --------------------------------------------------------------------------------------

#: Text ids a writer must keep: no white space or control characters, no quote (NeuroQuery refuses those).
TEXT_IDS = st.text(
    st.characters(
        min_codepoint=33,
        max_codepoint=0x2FFF,
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
        blacklist_characters='"',
    ),
    min_size=1,
    max_size=8,
)
WRITE_IDS = st.one_of(st.integers(0, 10**9).map(str), NUMERIC_IDS, TEXT_IDS)
MNI_NAMES = ["MNI", "mni", "MNI152", "ICBM"]
TAL_NAMES = ["TAL", "T88", "Talairach", "tal"]
WRITE_FILES = {
    "neurosynth": "database.txt",
    "neurosynth-v7": "db_coordinates.tsv",
    "sleuth": "sleuth.txt",
    "nimare-json": "dataset.json",
    "neuroquery": "nq_coordinates.tsv",
}


@st.composite
def written_tables(draw):
    """A coordinate table: 1-5 studies (one space label each), 1-15 peaks in any study order."""
    ids = draw(st.lists(WRITE_IDS, min_size=1, max_size=5, unique=True))
    family = draw(st.sampled_from(["MNI", "TAL", "mixed"]))
    names = {"MNI": MNI_NAMES, "TAL": TAL_NAMES, "mixed": MNI_NAMES + TAL_NAMES + ["UNKNOWN", "SPM"]}[family]
    label = {sid: draw(st.sampled_from(names)) for sid in ids}
    peaks = draw(st.lists(st.tuples(st.sampled_from(ids), COORD, COORD, COORD), min_size=1, max_size=15))
    rows = np.array([p[0] for p in peaks], dtype=object)
    xyz = np.array([p[1:] for p in peaks], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.table.make_table(
            rows, xyz[:, 0], xyz[:, 1], xyz[:, 2], [label[i] for i in rows], database="drawn", fmt="test"
        )


def expected_back(table, fmt: str) -> dict:
    """What reading ``fmt``'s file gives back: ids as text, spaces, MNI coordinates, in the format's row order."""
    ids = [str(i) for i in table["study_id"].values.tolist()]
    order = np.arange(len(ids))
    if fmt in ("sleuth", "nimare-json"):  # one block per study, studies in order of first appearance
        first = {}
        for i in ids:
            first.setdefault(i, len(first))
        order = np.argsort([first[i] for i in ids], kind="stable")
    space = np.asarray(table["space"].values).astype(str)
    tal = np.isin(np.char.upper(space), ["TAL", "T88", "TALAIRACH"])
    if fmt == "sleuth":
        space = np.where(tal, "TAL", "MNI")
    elif fmt == "neuroquery":
        space = np.full(len(ids), "MNI")
    return {
        "ids": [ids[r] + "-1" if fmt == "nimare-json" else ids[r] for r in order],
        "space": space[order].tolist(),
        "xyz": np.column_stack([table[c].values for c in "xyz"])[order],
        # Talairach rows go back to Talairach in the file (rounded to 1e-10 mm) and come back to MNI
        "tal": tal[order] & (fmt != "neuroquery"),
    }


@min_share_read(0.6)
@fuzz(300)
@given(table=written_tables(), gz=st.booleans())
def test_every_writer_round_trips_exactly(tmp_path_factory, table, gz):
    """Each writer's file reads back as the table (ids as written, spaces, coordinates), or the writer refuses.

    The writers refuse what their format cannot hold (a Sleuth or NeuroQuery
    file of mixed or unknown spaces, ids that would not come back as they
    are) with a ParameterError, before writing anything; 94% of the writes
    are accepted.
    """
    folder = tmp_path_factory.mktemp("round-trip")
    for fmt, name in WRITE_FILES.items():
        # v7 needs its '_coordinates.tsv' ending; the others get the format in front
        path = os.path.join(folder, name if fmt == "neurosynth-v7" else f"{fmt}_{name}") + (".gz" if gz else "")
        try:
            xcoact.write_database(table, path, format=fmt, overwrite=True)
        except xcoact.ParameterError as err:
            assert_our_error(err, ["table"])
            assert not os.path.exists(path)
            TALLY["refused"] += 1
            continue
        TALLY["read"] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", XcoactWarning)
            back = read_database(path, format=fmt)
        want = expected_back(table, fmt)
        assert [str(i) for i in back["study_id"].values.tolist()] == want["ids"], fmt
        assert back["space"].values.tolist() == want["space"], fmt
        got = np.column_stack([back[c].values for c in "xyz"])
        np.testing.assert_array_equal(got[~want["tal"]], want["xyz"][~want["tal"]], err_msg=fmt)
        np.testing.assert_allclose(got[want["tal"]], want["xyz"][want["tal"]], rtol=0, atol=1e-9, err_msg=fmt)
        assert back.attrs["n_studies"] == table.attrs["n_studies"], fmt
