"""Shared text handling for the readers and writers: opening, decoding, tab-separated tables, atomic writes."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gzip
import io
import os
import re
import stat
import zlib

import numpy as np
import pandas as pd

from ..errors import DatabaseError, DatabaseFileError, DatabaseFileNotFoundError, OutputError, ParameterError, quote
from ..table import ICBM_SPM2TAL, TAL_LABELS

#: What gzip.decompress raises for truncated or corrupt data: BadGzipFile
#: (an OSError) for a bad header, EOFError when truncated, zlib.error for a
#: corrupt deflate stream.
GZIP_ERRORS = (OSError, EOFError, zlib.error)

_BINARY_CHARS = set(range(0, 9)) | {11, 12} | set(range(14, 32))

#: The line breaks pandas' parser knows; str.splitlines() also splits on \v, \f,
#: \x1c-\x1e, \x85 and U+2028/9, which would shift line numbers away from the file's.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str, maxsplit: int = 0) -> list[str]:
    """Split text at ``\\r\\n``, ``\\r`` or ``\\n`` only, so line numbers match an editor's (and pandas')."""
    return _LINE_BREAK.split(text, maxsplit=maxsplit)


def check_file(path) -> str:
    """Return the path as str, or raise a clear error if it cannot be read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatabaseFileNotFoundError(
            f"{path}: no such file. Pass the path of a Neurosynth database.txt, a Neurosynth v7 "
            "coordinates .tsv.gz, a Sleuth text file or a NiMARE dataset .json."
        )
    if os.path.isdir(path):
        raise DatabaseFileError(
            f"{path}: is a directory; expected a database file, e.g. {os.path.join(path, 'database.txt')!r}."
        )
    if not os.access(path, os.R_OK):
        raise DatabaseFileError(
            f"{path}: not readable (permission denied); give yourself read access (chmod u+r) or copy the file."
        )
    return path


#: Bytes of (decompressed) text looked at before anything else is read: binary data is refused
#: after these, so a gzip of zeros or /dev/zero is not decompressed or read whole first.
HEAD_BYTES = 4096
#: Bytes read per step after the head; each step is checked for NUL bytes (binary data further on).
READ_CHUNK = 1 << 20

#: The whole content of a file that can be read only once (a pipe, ``<(cat db)``, a FIFO, a
#: device), read by :func:`read_database` before sniffing so the reader sees its first bytes too.
_PRELOADED: contextvars.ContextVar[tuple[str, bytes | bytearray] | None] = contextvars.ContextVar(
    "xcoact_preloaded", default=None
)


def is_regular_file(path: str) -> bool:
    """Whether ``path`` is a regular file (which can be opened twice and seeked), not a pipe or device."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # let the reader's open() name the problem


@contextlib.contextmanager
def preloaded(path: str, data: bytes | bytearray):
    """Serve ``data`` as the (decompressed) content of ``path`` to :func:`read_bytes` inside the block."""
    token = _PRELOADED.set((path, data))
    try:
        yield
    finally:
        _PRELOADED.reset(token)


def _binary_error(path: str, where: str = "") -> DatabaseError:
    return DatabaseError(
        f"{path}: looks like binary data, not a text database{where}. Expected a tab-separated "
        "table, a Sleuth text file or JSON (plain or gzip-compressed)."
    )


def read_bytes(path: str, head_only: bool = False) -> bytes | bytearray:
    """The file's bytes, gunzipped transparently, refusing binary data as soon as it shows.

    The first :data:`HEAD_BYTES` decompressed bytes are checked before the
    rest is read (mostly control characters or a NUL: binary), and each later
    chunk is checked for NUL bytes, so neither a gzip bomb of zeros nor
    ``/dev/zero`` is read whole.  ``head_only`` returns just the head (for
    sniffing).  Inside :func:`preloaded` the preloaded content is served.
    """
    pre = _PRELOADED.get()
    if pre is not None and pre[0] == path:
        return pre[1][:HEAD_BYTES] if head_only else pre[1]
    try:
        with open(path, "rb") as raw:
            magic = raw.peek(2)[:2]
            src = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
            head = src.read(HEAD_BYTES)
            if head_only:
                return head
            if b"\x00" in head or sum(b in _BINARY_CHARS for b in head) > len(head) // 20:
                raise _binary_error(path)
            data = bytearray(head)
            while True:
                chunk = src.read(READ_CHUNK)
                if not chunk:
                    break
                nul = chunk.find(b"\x00")
                if nul >= 0:
                    raise _binary_error(path, f" (a NUL byte at byte {len(data) + nul:,} of the text)")
                data += chunk
    except GZIP_ERRORS as err:
        raise DatabaseFileError(
            f"{path}: could not be read or decompressed "
            f"({'zlib.error' if isinstance(err, zlib.error) else type(err).__name__}: "
            f"{err}); the file may be truncated "
            "or corrupt. Download it again, or check it with 'gzip -t'."
        ) from err
    return data


def read_text(path: str) -> str:
    """The whole file as text (gzip transparently), UTF-8 with a clear error otherwise."""
    raw = read_bytes(path)
    if not raw.strip():
        raise DatabaseError(
            f"{path}: the file is empty; expected a coordinate database (e.g. a tab-separated header "
            "'id x y z space' and one row per peak). Check that the download or export finished."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = len(re.findall(rb"\r\n|\r|\n", raw[: err.start])) + 1
        raise DatabaseError(
            f"{path}, line {line}: not valid UTF-8 text (byte 0x{raw[err.start]:02x}). Re-save the file as UTF-8."
        ) from err
    return text


def _shown_header(header: list[str], n: int = 20) -> str:
    """The header's column names for a message: each cut, at most ``n`` of them."""
    shown = ", ".join(quote(h.strip()) for h in header[:n])
    return f"[{shown}{f', ... ({len(header)} columns)' if len(header) > n else ''}]"


def check_header(
    path: str, header: list[str], required: tuple[str, ...], fmt: str, example: str = ""
) -> tuple[list[str], dict[str, int]]:
    """Lower-cased column names and their positions, refusing duplicated and missing required columns."""
    names = [h.strip().lower() for h in header]
    seen: dict[str, int] = {}
    for pos, name in enumerate(names):
        if name in seen:
            raise DatabaseError(
                f"{path}, line 1: duplicate column {quote(header[pos].strip())} (columns {seen[name] + 1} and "
                f"{pos + 1}); each column name must appear once. Rename or remove one of them."
            )
        seen[name] = pos
    missing = [c for c in required if c not in seen]
    if missing:
        hint = ""
        if len(header) == 1 and ("," in header[0] or ";" in header[0] or " " in header[0].strip()):
            hint = " The header has no tab: the file seems to use another delimiter; it must be tab-separated."
        raise DatabaseError(
            f"{path}, line 1: missing column(s) {', '.join(repr(m) for m in missing)} for the {fmt} format; "
            f"found {_shown_header(header)}, expected at least {list(required)} (any case){example}.{hint}"
        )
    return names, seen


def parse_tsv(
    path: str, text: str, required: tuple[str, ...], fmt: str, numeric: tuple[str, ...] = ()
) -> tuple[dict, np.ndarray]:
    """Parse a tab-separated table whose first line is a header.

    Column names are matched case-insensitively.  Returns the required
    columns and each row's 1-based source line.  Blank lines are skipped.

    Text columns come back as object arrays of stripped strings, exactly as
    written otherwise (``0012`` stays ``0012``, ``17.10`` stays ``17.10``).  With
    ``numeric``, a fast pass first parses those columns as float64 and the
    others as categoricals of those strings (a database repeats its ids and space labels), which
    keeps a 5-million-peak file to a fraction of the memory; if any numeric
    cell is not a finite number, the careful string pass below runs instead,
    so :func:`parse_numbers` can name every bad line.
    """
    names, seen = check_header(path, split_lines(text, maxsplit=1)[0].split("\t"), required, fmt)
    if numeric:
        fast = _parse_fast(text, required, numeric, names, seen)
        if fast is not None:
            return fast
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep="\t",
            header=0,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            usecols=[seen[c] for c in required],
            quoting=3,  # csv.QUOTE_NONE: quotes are data in these files
            # a first row longer than the header must not turn its leading cells into an index
            # (pandas then fails inside with "zip() argument 2 is shorter"); extra cells are ignored,
            # as in the fast pass
            index_col=False,
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise malformed_row(path, err) from err
    frame.columns = [names[i] for i in sorted(seen[c] for c in required)]
    cols = {c: frame[c].fillna("").str.strip() for c in required}
    lineno = np.arange(2, len(frame) + 2, dtype=np.int64)
    keep = ~np.logical_and.reduce([cols[c].eq("").to_numpy() for c in required])
    return {c: cols[c].to_numpy(dtype=object)[keep] for c in required}, lineno[keep]


def malformed_row(path: str, err: Exception, hint: str = "") -> DatabaseError:
    """The error for a row pandas could not parse, naming its line when pandas does."""
    m = re.search(r"line (\d+)", str(err))
    where = f", line {m.group(1)}" if m else ""
    return DatabaseError(
        f"{path}{where}: malformed row ({err}). Every row needs the header's columns, tab-separated{hint}."
    )


def _parse_fast(text: str, required, numeric, names, seen):
    """Typed parse; None when anything needs the careful pass (bad numbers, blank lines, ragged rows)."""
    usecols = sorted(seen[c] for c in required)
    try:
        frame = pd.read_csv(
            io.BytesIO(text.encode("utf-8")),  # bytes: StringIO would hold 4 bytes per character
            sep="\t",
            header=None,
            skiprows=1,
            encoding="utf-8",
            usecols=usecols,
            # text columns as object, never "category": pandas (>= 3) turns categories that look like
            # numbers into numbers, so ids 17.1 and 17.10 (or 0012 and 12) would become one study.
            # The C parser boxes each distinct string once, so this costs a pointer per row.
            dtype={i: (np.float64 if names[i] in numeric else object) for i in usecols},
            keep_default_na=False,
            na_values={i: [""] for i in usecols if names[i] in numeric},
            skip_blank_lines=False,
            quoting=3,
        )
    except (pd.errors.ParserError, ValueError, TypeError):
        return None
    frame.columns = [names[i] for i in usecols]
    for c in numeric:
        values = frame[c].to_numpy()
        if values.dtype != np.float64 or not np.isfinite(values).all():
            return None
    cols = {}
    for c in required:
        if c in numeric:
            cols[c] = frame[c].to_numpy(dtype=np.float64)
        else:
            codes, uniq = pd.factorize(frame[c].to_numpy(dtype=object), use_na_sentinel=True)
            if (codes < 0).any() or not all(isinstance(u, str) for u in uniq):
                return None
            cats = pd.Index(np.asarray(uniq, dtype=object), dtype=object).str.strip()
            if (cats == "").any() or cats.has_duplicates:
                return None  # blank or space-padded cells: the careful pass handles them
            cols[c] = pd.Categorical.from_codes(codes, categories=cats)
    return cols, np.arange(2, len(frame) + 2, dtype=np.int64)


def parse_numbers(path: str, cols: dict, names: tuple[str, ...], lines: np.ndarray) -> list[np.ndarray]:
    """Convert columns to float64, reporting every non-numeric or non-finite cell at once.

    The message counts every bad row and value and names the first ten by
    line and column.
    """
    if all(isinstance(cols[n], np.ndarray) and cols[n].dtype == np.float64 for n in names):
        return [cols[n] for n in names]  # the fast pass already checked them
    out = []
    problems = []
    n_values = 0
    bad_rows = np.zeros(len(lines), dtype=bool)
    for name in names:
        values = pd.to_numeric(pd.Series(cols[name]), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        n_values += int(bad.sum())
        bad_rows |= bad
        for row in np.flatnonzero(bad)[:10]:
            problems.append((int(lines[row]), names.index(name), name, cols[name][row]))
        out.append(values)
    if problems:
        problems.sort()
        n_rows = int(bad_rows.sum())
        shown = "; ".join(
            f"line {ln} column {c}: {quote(v)}" if v else f"line {ln} column {c}: empty"
            for ln, _, c, v in problems[:10]
        )
        more = f"; and {n_values - 10} more value(s) not shown" if n_values > 10 else ""
        raise DatabaseError(
            f"{path}: {n_rows} row(s) with a non-numeric, NaN or infinite coordinate - {shown}{more}. "
            "x, y and z must be finite numbers in mm; fix or delete those rows."
        )
    return out


# ---------------------------------------------------------------------------
# Writing: the helpers the writers share (the inverse of the reading above).
# ---------------------------------------------------------------------------

#: Rows formatted and written per step, so writing 5 million peaks stays small in memory.
WRITE_CHUNK = 100_000

_TABLE_VARIABLES = ("study_id", "x", "y", "z", "space")

#: Decimals (mm) Talairach coordinates are rounded to when written: 1e-10 mm
#: undoes the float error of the MNI round trip yet moves the MNI value read
#: back by < 1e-9 mm.
TAL_DECIMALS = 10


def row_chunks(n: int):
    """Slices of ``range(n)`` of :data:`WRITE_CHUNK` rows."""
    for start in range(0, n, WRITE_CHUNK):
        yield slice(start, min(n, start + WRITE_CHUNK))


def format_floats(values) -> list[str]:
    """Each value as ``repr(float)``: the shortest text that reads back to the same float64."""
    return list(map(float.__repr__, np.asarray(values, dtype=np.float64).tolist()))


def check_table(table, fmt: str) -> int:
    """Check that ``table`` is a coordinate table that can be written; return its number of peaks."""
    import xarray as xr

    if not isinstance(table, xr.Dataset):
        raise ParameterError(
            f"table={type(table).__name__} cannot be written as {fmt}; expected a coordinate table "
            "(an xarray.Dataset from xcoact.read_database or xcoact.datasets.synthetic)."
        )
    missing = [v for v in _TABLE_VARIABLES if v not in table.variables]
    if missing:
        raise ParameterError(
            f"table: no variable(s) {missing}; a coordinate table has {list(_TABLE_VARIABLES)} along 'peak' "
            "(see xcoact.table)."
        )
    wrong = [v for v in _TABLE_VARIABLES if table[v].dims != ("peak",)]
    if wrong:
        raise ParameterError(f"table: variable(s) {wrong} are not 1-D along 'peak'; see xcoact.table for the layout.")
    n = table.sizes["peak"]
    if n == 0:
        raise ParameterError(f"table: no peaks; a {fmt} file needs at least one.")
    xyz = np.column_stack([np.asarray(table[v].values, dtype=np.float64) for v in ("x", "y", "z")])
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ParameterError(
            f"table: {int(bad.sum())} peak(s) have a NaN or infinite coordinate (e.g. peak "
            f"{int(np.flatnonzero(bad)[0])}); "
            "every x, y, z must be finite to be written. Drop those peaks first."
        )
    return int(n)


def space_labels(table) -> np.ndarray:
    """The ``space`` column as a str array."""
    return np.asarray(table["space"].values).astype(str)


def source_xyz(table) -> np.ndarray:
    """The coordinates as the source file states them: Talairach rows moved back from MNI.

    The table holds MNI for Talairach rows (``inv(M) @ tal``, see
    :func:`xcoact.table.tal_to_mni`); writing ``M @ mni`` (``M`` =
    :data:`xcoact.table.ICBM_SPM2TAL`) rounded to :data:`TAL_DECIMALS`
    decimals gives the source's Talairach values back (``17.0``, not
    ``16.999999999999996``) and makes reading give the same MNI values back to
    < 1e-9 mm.  Rows in other spaces are written as they are.
    """
    xyz = np.column_stack([np.asarray(table[v].values, dtype=np.float64) for v in ("x", "y", "z")])
    labels = space_labels(table)
    uniq, inverse = np.unique(labels, return_inverse=True)
    is_tal = np.isin(np.char.upper(uniq), list(TAL_LABELS))[inverse.ravel()]
    if is_tal.any():
        homog = np.column_stack([xyz[is_tal], np.ones(int(is_tal.sum()))])
        # + 0.0 turns the -0.0 that rounding leaves of tiny negatives into 0.0
        xyz[is_tal] = np.round((homog @ ICBM_SPM2TAL.T)[:, :3], TAL_DECIMALS) + 0.0
    return xyz


def id_array(table) -> np.ndarray:
    """The ``study_id`` column as a numpy array."""
    return np.asarray(table["study_id"].values)


def id_text(ids: np.ndarray) -> list[str]:
    """Study ids as text, one per element."""
    return [str(i) for i in ids.tolist()]


def check_text_ids(ids: np.ndarray, fmt: str, forbidden: str) -> None:
    """Refuse study ids the format cannot carry or the readers would not give back as written.

    Integers always pass.  Text ids must not hold the ``forbidden``
    characters, be empty, or start or end with white space (the readers
    strip cells, so ``' 12'`` would come back as ``'12'``).
    """
    if ids.dtype.kind not in "iu":
        uniq = id_text(np.unique(ids.astype(str)))
        check_cells(uniq, "study id", fmt, forbidden)
        check_unpadded(uniq, "study id", fmt)


def check_unpadded(values, what: str, fmt: str) -> None:
    """Refuse empty text cells and cells with leading or trailing white space (a reader strips them)."""
    bad = sorted({v for v in values if not v or v != v.strip()})
    if bad:
        raise ParameterError(
            f"table: {len(bad)} {what}(s) are empty or start or end with white space (e.g. {quote(bad[0])}); "
            f"a {fmt} file would not give them back as they are (cells are read stripped). Strip or rename them first."
        )


def check_cells(values, what: str, fmt: str, forbidden: str) -> None:
    """Refuse text cells holding characters the format cannot carry (tabs, line breaks)."""
    bad = sorted({v for v in values if any(c in v for c in forbidden)})
    if bad:
        names = {"\t": "tab", "\n": "line feed", "\r": "carriage return"}
        chars = " or ".join(names.get(c, repr(c)) for c in forbidden)
        raise ParameterError(
            f"table: {len(bad)} {what}(s) contain a {chars}, which the {fmt} format cannot hold "
            f"(e.g. {quote(bad[0])}). Rename them first, or write the 'nimare-json' format."
        )


def group_by_study(table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by study, for formats that write each study as one block.

    Returns
    -------
    studies : (n_studies,) array
        Study ids in order of first appearance.
    order : (n_peaks,) int64 array
        Row numbers grouped by study (stable: a study's rows keep their order;
        the identity when each study's rows are already contiguous).
    bounds : (n_studies + 1,) int64 array
        Study ``s`` owns ``order[bounds[s]:bounds[s + 1]]``.
    """
    from ..table import study_index

    studies, codes = study_index(id_array(table))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(studies) + 1))
    return studies, order, bounds


def studies_with_one_space(table, fmt: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`group_by_study` plus each study's space label, refusing studies with several.

    Returns ``studies, order, bounds, study_space``.
    """
    studies, order, bounds = group_by_study(table)
    labels = space_labels(table)[order]
    first = bounds[:-1]
    # a label change between two neighbouring rows of the same study
    same_study = np.ones(len(order), dtype=bool)
    same_study[first] = False
    change = np.flatnonzero(same_study[1:] & (labels[1:] != labels[:-1])) + 1
    if change.size:
        owner = np.searchsorted(bounds, change, side="right") - 1
        mixed = list(dict.fromkeys(studies[owner].tolist()))
        raise ParameterError(
            f"table: {len(mixed)} study(ies) have peaks in more than one space (e.g. study {quote(mixed[0])}); the "
            f"{fmt} format states one space per study. Write the 'neurosynth' format, or split those studies."
        )
    return studies, order, bounds, labels[first]


def study_sample_sizes(table, order, bounds, studies, fmt: str) -> np.ndarray | None:
    """Each study's sample size for a writer (NaN: unknown), or None when the table has no ``sample_size``.

    ``order``, ``bounds`` and ``studies`` are :func:`group_by_study`'s.  A
    study's peaks must agree (NaN counts as one value).
    """
    if "sample_size" not in table.variables:
        return None
    sizes = np.asarray(table["sample_size"].values, dtype=np.float64)[order]
    if not sizes.size:
        return np.zeros(0)
    first = sizes[bounds[:-1]]
    same = (sizes == np.repeat(first, np.diff(bounds))) | (
        np.isnan(sizes) & np.isnan(np.repeat(first, np.diff(bounds)))
    )
    if not same.all():
        s = int(np.searchsorted(bounds, np.flatnonzero(~same)[0], side="right") - 1)
        found = sorted({("unknown" if np.isnan(v) else f"{v:g}") for v in sizes[bounds[s] : bounds[s + 1]]})
        raise ParameterError(
            f"table: study {quote(studies[s].item() if isinstance(studies[s], np.generic) else studies[s])} has peaks "
            f"with different sample sizes ({', '.join(found)}); the {fmt} format keeps one sample size per study. "
            "Give all of a study's peaks its sample size."
        )
    return first


def _write_one(tmp: str, final: str, write) -> None:
    """Run ``write(handle)`` on ``tmp`` as UTF-8 text, gzip-compressed when ``final`` ends in ``.gz``."""
    with open(tmp, "wb") as raw:
        if final.lower().endswith(".gz"):
            # mtime=0 and the final name in the header: the same table always gives the same bytes
            with gzip.GzipFile(filename=final, mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz:
                with io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as fh:
                    write(fh)
        else:
            with io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as fh:
                write(fh)


def write_files(writers: dict, *, overwrite: bool) -> list[str]:
    """Write one or more text files atomically.

    ``writers`` maps each target path to a function writing its text to a
    handle.  Each file is written to a temporary file beside its target
    (gzip-compressed when the target ends in ``.gz``) and renamed into place
    only when every file is complete; on any error nothing new remains and
    files that were replaced are restored.

    Raises
    ------
    OutputError
        A target exists and ``overwrite`` is False, its directory is missing or
        read-only, or writing failed (an ``OSError``; the message names the file).
    """
    from ..writers import _check_target_dir, write_atomically

    paths = list(writers)
    for path in paths:
        _check_target_dir(path)
        if os.path.isdir(path):
            raise OutputError(
                f"{path}: is a directory; expected a file name, e.g. {os.path.join(path, 'database.txt')!r}."
            )
    existing = [p for p in paths if os.path.lexists(p)]  # a broken link too
    if existing and not overwrite:
        raise OutputError(
            f"{existing[0]} already exists; pass overwrite=True to replace it, or choose another path."
            + (f" ({len(existing)} of the {len(paths)} files exist.)" if len(paths) > 1 else "")
        )
    # overwrite also decides the final renames: a file that appears meanwhile is not replaced
    return write_atomically(
        {p: functools.partial(_write_one, final=p, write=writers[p]) for p in paths}, overwrite=overwrite
    )
