"""Term features: how strongly each study carries each term, as a lazy ``(study, term)`` DataArray.

Read from Neurosynth's ``features.txt`` or the v7 split release (a sparse ``*_features.npz``, its
``*_vocabulary.txt`` and the ``id`` column of ``*_metadata.tsv.gz``, row *i* the study on data row *i*, as
NiMARE pairs them; NeuroQuery v1 alike).  The weights are kept as one float64 CSC matrix (the v7 tf-idf
matrix would be 371 MB dense) behind dense Dask blocks of about :data:`BLOCK_BYTES`, exact as stored.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zipfile
import zlib
from collections.abc import Sequence
from typing import Literal

import dask
import dask.array as da
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from dask.base import tokenize

from .errors import DatabaseError, DatabaseFileError, DatabaseFileNotFoundError, ParameterError, quote
from .table import _normalise_ids

__all__ = ["read_features", "features_from_matrix", "companion_paths", "FEATURE_FORMATS", "BLOCK_BYTES"]

FeatureFormat = Literal["neurosynth", "neurosynth-v7"]
FEATURE_FORMATS = ("neurosynth", "neurosynth-v7")

#: Target size of one dense Dask block of the lazy features view (all studies x some terms).
BLOCK_BYTES = 8 * 2**20

#: Rows of features.txt parsed per pandas pass (bounds the dense intermediate).
_ROWS_PER_PASS = 4096

_V7_NAME = re.compile(r"^(?P<prefix>.+?)_vocab-(?P<vocab>[^_]+)_.*features\.npz$")


def _check_path(path, what: str, hint: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatabaseFileNotFoundError(f"{path}: no such {what} file. {hint}")
    if os.path.isdir(path):
        raise DatabaseFileError(f"{path}: is a directory; expected a {what} file. {hint}")
    if not os.access(path, os.R_OK):
        raise DatabaseFileError(f"{path}: not readable (permission denied); give yourself read access (chmod u+r).")
    return path


def _read_text(path: str) -> str:
    """The file as UTF-8 text, gunzipped transparently."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DatabaseFileError(
            f"{path}: could not be read or decompressed ({type(err).__name__}: {err}); "
            "the file may be truncated or corrupt."
        ) from err
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DatabaseError(
            f"{path}, line {line}: not valid UTF-8 text (byte 0x{raw[err.start]:02x}). Re-save the file as UTF-8."
        ) from err


def companion_paths(npz_path: str | os.PathLike) -> tuple[str | None, str | None]:
    """The vocabulary and metadata files that belong beside a v7 ``*_features.npz``.

    ``{prefix}_vocab-{vocab}_..._features.npz`` pairs with ``{prefix}_vocab-{vocab}_vocabulary.txt`` and
    ``{prefix}_metadata.tsv.gz`` (or ``.tsv``) in the same folder.

    Parameters
    ----------
    npz_path : str or path-like

    Returns
    -------
    vocabulary, metadata : str or None
        Both None when the name does not follow the release's pattern; the metadata None when absent.
    """
    path = os.fspath(npz_path)
    folder, name = os.path.split(path)
    m = _V7_NAME.match(name)
    if m is None:
        return None, None
    vocab = os.path.join(folder, f"{m['prefix']}_vocab-{m['vocab']}_vocabulary.txt")
    meta = None
    for suffix in (".tsv.gz", ".tsv"):
        cand = os.path.join(folder, f"{m['prefix']}_metadata{suffix}")
        if os.path.exists(cand):
            meta = cand
            break
    return vocab, meta


def _sniff(path: str) -> FeatureFormat:
    with open(path, "rb") as fh:
        head = fh.read(4)
    return "neurosynth-v7" if head.startswith(b"PK") or path.endswith(".npz") else "neurosynth"


def read_features(
    path: str | os.PathLike,
    *,
    vocabulary: str | os.PathLike | None = None,
    metadata: str | os.PathLike | None = None,
    ids: Sequence | None = None,
    format: FeatureFormat | None = None,
) -> xr.DataArray:
    """Read term features as a lazy ``(study, term)`` DataArray of weights.

    Parameters
    ----------
    path : str or path-like
        A Neurosynth ``features.txt`` (tab-separated, first column the study id; gzip read transparently) or
        a v7 ``*_features.npz`` sparse matrix.
    vocabulary : str or path-like, optional
        v7 only: the term names, one a line; by default the ``*_vocabulary.txt`` beside ``path``.
    metadata : str or path-like, optional
        v7 only: the TSV whose ``id`` column names each matrix row's study; by default the one beside ``path``.
    ids : sequence, optional
        v7 only: the study id of each matrix row, instead of ``metadata``.
    format : {"neurosynth", "neurosynth-v7"}, optional
        Skip the guess (a zip archive or a ``.npz`` name is v7, anything else ``features.txt``).

    Returns
    -------
    xarray.DataArray
        ``features (study, term)``, float64, Dask-backed; ``study`` the ids (int64 when all are whole
        numbers), ``term`` the names; ``attrs`` the files, ``format``, ``n_studies``, ``n_terms``, ``nnz``.

    Raises
    ------
    DatabaseFileNotFoundError
        A file does not exist.
    DatabaseError
        A file cannot be parsed, or the files disagree; the message names the file and line.
    ParameterError
        An unknown ``format``, or companion files that cannot be found.

    Notes
    -----
    Cost: the file is read now; the dense blocks are built only when computed.

    Examples
    --------
    >>> import xcoact
    >>> from xcoact.features import read_features
    >>> f = read_features(xcoact.datasets.data_path("neurosynth_sample_features.txt"))
    >>> dict(f.sizes), f["term"].values.tolist()
    ({'study': 100, 'term': 3}, ['emotion', 'working memory', 'pain'])
    """
    path = _check_path(path, "term features", "Pass a Neurosynth features.txt or a v7 '*_features.npz'.")
    if format is None:
        format = _sniff(path)
    if format not in FEATURE_FORMATS:
        raise ParameterError(
            f"format={format!r} is not a known features format; expected one of {list(FEATURE_FORMATS)}."
        )
    if format == "neurosynth":
        if vocabulary is not None or metadata is not None or ids is not None:
            raise ParameterError(
                f"{path}: vocabulary, metadata and ids apply to the v7 '.npz' features only; a features.txt "
                "names its terms in its header and its studies in its first column."
            )
        matrix, study, terms = _read_features_txt(path)
        attrs = {"features": path, "format": "neurosynth"}
    else:
        matrix, study, terms, attrs = _read_v7(path, vocabulary, metadata, ids)
    return features_from_matrix(matrix, study, terms, attrs=attrs)


def features_from_matrix(
    matrix, study: Sequence | np.ndarray, terms: Sequence[str] | np.ndarray, *, attrs: dict | None = None
) -> xr.DataArray:
    """Wrap a studies x terms matrix (scipy sparse or dense) as the lazy features DataArray.

    Parameters
    ----------
    matrix : (n_studies, n_terms) scipy sparse matrix or array-like
        Term weights; stored as a float64 CSC matrix.
    study : (n_studies,) sequence
        Study ids, unique (normalised like the coordinate table's ids).
    terms : (n_terms,) sequence of str
        Term names, unique.
    attrs : dict, optional
        Provenance to keep in ``attrs``.

    Returns
    -------
    xarray.DataArray
        As :func:`read_features`.

    Raises
    ------
    ParameterError
        Ids or terms not matching the matrix, an empty matrix, or non-finite weights.
    """
    matrix = sp.csc_matrix(matrix, dtype=np.float64)
    n, t = matrix.shape
    study = _normalise_ids(np.asarray(study))
    terms = np.asarray([str(x) for x in terms], dtype=str)
    if len(study) != n or len(terms) != t:
        raise ParameterError(
            f"a {n} x {t} features matrix needs {n} study ids and {t} terms; got {len(study)} and {len(terms)}."
        )
    if t == 0 or n == 0:
        raise ParameterError(f"the features matrix is empty ({n} studies x {t} terms); expected at least one of each.")
    if not np.isfinite(matrix.data).all():
        raise ParameterError("the features matrix holds NaN or infinite weights; expected finite numbers.")
    step = max(1, min(t, BLOCK_BYTES // (8 * n)))
    term_chunks = tuple(min(step, t - s) for s in range(0, t, step))
    token = tokenize(matrix.indptr, matrix.indices, matrix.data, (n, t), study, terms)
    name = "features-" + token
    # One graph key holds the matrix, so Dask ships it once, not once per block.
    held = dask.delayed(matrix, pure=True, name="features-matrix-" + token)
    data = da.map_blocks(
        _dense_block,
        held,
        chunks=((n,), term_chunks),
        dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64),
        name=name,
    )
    return xr.DataArray(
        data,
        dims=("study", "term"),
        coords={"study": study, "term": terms},
        name="features",
        attrs={
            "long_name": "term weight of each study",
            **(attrs or {}),
            "n_studies": int(n),
            "n_terms": int(t),
            "nnz": int(matrix.nnz),
        },
    )


def _dense_block(matrix: sp.csc_matrix, block_info=None) -> np.ndarray:
    (_, _), (t0, t1) = block_info[None]["array-location"]
    return matrix[:, t0:t1].toarray()


def _read_features_txt(path: str) -> tuple[sp.csc_matrix, np.ndarray, list[str]]:
    text = _read_text(path)
    if not text.strip():
        raise DatabaseError(
            f"{path}: the file is empty; expected a tab-separated header 'pmid<TAB>term1<TAB>term2...' "
            "and one row of weights per study."
        )
    if "\x00" in text[:4096]:
        raise DatabaseError(
            f"{path}: looks like binary data, not a features.txt. For the v7 '.npz' features pass "
            "format='neurosynth-v7'."
        )
    header_line, _, body = text.partition("\n")
    header = [h.strip() for h in header_line.rstrip("\r").split("\t")]
    if len(header) < 2:
        raise DatabaseError(
            f"{path}, line 1: the header has {len(header)} tab-separated column(s) "
            f"({header_line[:80]!r}); expected the id column ('pmid') and at least one term."
        )
    terms = header[1:]
    _check_names(path, terms, lambda i: f"line 1, column {i + 2}")
    n_cols = len(header)
    if not body.strip():
        raise DatabaseError(
            f"{path}: the header names {len(terms)} term(s) but no study row follows; expected one row "
            "of weights per study."
        )
    try:
        blocks, ids = [], []
        reader = pd.read_csv(
            io.StringIO(body),
            sep="\t",
            header=None,
            names=range(n_cols),
            dtype={0: str},
            keep_default_na=False,
            na_values={j: [""] for j in range(1, n_cols)},
            quoting=3,
            chunksize=_ROWS_PER_PASS,
            engine="c",
        )
        for frame in reader:
            values = frame.iloc[:, 1:].to_numpy()
            first = frame[0].fillna("").str.strip()
            if values.dtype != np.float64 or not np.isfinite(values).all() or first.eq("").any():
                raise ValueError("needs the careful pass")
            ids.append(first.to_numpy(dtype=object))
            blocks.append(sp.csr_matrix(values))
    except (ValueError, TypeError, pd.errors.ParserError):
        _report_bad_rows(path, body, n_cols, terms)
        raise  # unreachable: the careful pass raises
    study = np.concatenate(ids)
    _check_unique_ids(path, study, np.arange(len(study)) + 2)
    return sp.vstack(blocks).tocsc(), study, terms


def _report_bad_rows(path: str, body: str, n_cols: int, terms: list[str]) -> None:
    """Name the malformed rows of a features.txt (up to ten), then raise."""
    problems: list[str] = []
    n_bad = 0
    for offset, line in enumerate(body.split("\n")):
        lineno = offset + 2
        line = line.rstrip("\r")
        if not line.strip():
            continue  # pandas skips blank lines too
        cells = line.split("\t")
        issue = None
        if len(cells) != n_cols:
            issue = f"line {lineno}: {len(cells)} fields, the header has {n_cols}"
        elif not cells[0].strip():
            issue = f"line {lineno}: empty study id"
        else:
            for j, cell in enumerate(cells[1:]):
                try:
                    value = float(cell)
                except ValueError:
                    issue = f"line {lineno}, column {quote(terms[j])}: {quote(cell)} is not a number"
                    break
                if not np.isfinite(value):
                    issue = f"line {lineno}, column {quote(terms[j])}: {quote(cell)} is not finite"
                    break
        if issue:
            n_bad += 1
            if len(problems) < 10:
                problems.append(issue)
    if not problems:  # pandas failed for a reason the scan did not see
        raise DatabaseError(f"{path}: could not be parsed as a tab-separated features table.")
    more = f"; and {n_bad - 10} more" if n_bad > 10 else ""
    raise DatabaseError(
        f"{path}: {n_bad} malformed row(s) - "
        + "; ".join(problems)
        + more
        + ". Each row must hold a study id and one finite weight per term, tab-separated (no blank lines)."
    )


def _check_names(path: str, names: list[str], where) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            raise DatabaseError(f"{path}, {where(i)}: empty term name; every term needs a name.")
        if name in seen:
            raise DatabaseError(
                f"{path}, {where(i)}: term {quote(name)} repeats {where(seen[name])}; each term must appear once."
            )
        seen[name] = i


def _check_unique_ids(path: str, study: np.ndarray, lines: np.ndarray) -> None:
    """Refuse repeated study ids, naming them and their ``lines``."""
    as_str = pd.Series(study.astype(str))
    dup = as_str.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        shown = ", ".join(f"{quote(as_str[r])} (line {lines[r]})" for r in rows[:10])
        raise DatabaseError(f"{path}: {len(rows)} rows share a study id - {shown}. Each study must have one row.")


def _read_v7(path: str, vocabulary, metadata, ids) -> tuple[sp.csc_matrix, np.ndarray, list[str], dict]:
    try:
        matrix = sp.load_npz(path)  # np.load with allow_pickle=False inside
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as err:
        raise DatabaseError(
            f"{path}: not a scipy sparse matrix archive ({type(err).__name__}: {err}); expected a v7 "
            "'*_features.npz' as written by scipy.sparse.save_npz. For a features.txt pass format='neurosynth'."
        ) from err
    if matrix.ndim != 2:
        raise DatabaseError(f"{path}: holds a {matrix.ndim}-d array; expected a 2-d studies x terms matrix.")
    n, t = matrix.shape
    default_vocab, default_meta = companion_paths(path)
    if vocabulary is None:
        if default_vocab is None:
            raise ParameterError(
                f"{path}: cannot tell its vocabulary file from the name (expected "
                "'{prefix}_vocab-{name}_source-..._features.npz'); pass vocabulary='..._vocabulary.txt'."
            )
        vocabulary = default_vocab
    vocabulary = _check_path(
        vocabulary,
        "vocabulary",
        f"The terms of {os.path.basename(path)} are in its '*_vocabulary.txt', one a line; pass vocabulary=...",
    )
    terms = _read_vocabulary(vocabulary)
    if len(terms) != t:
        raise DatabaseError(
            f"{vocabulary}: {len(terms)} term(s), but {path} has {t} column(s); use the vocabulary "
            "of the same release and vocabulary name."
        )
    attrs = {"features": path, "format": "neurosynth-v7", "vocabulary": vocabulary}
    if ids is not None:
        if metadata is not None:
            raise ParameterError("pass either metadata (a file) or ids (a sequence), not both.")
        study = np.asarray(list(ids), dtype=object)
        if len(study) != n:
            raise ParameterError(f"ids has {len(study)} entries, but {path} has {n} row(s) (one per study).")
        _check_unique_ids("ids", study, np.arange(len(study)))
    else:
        if metadata is None:
            if default_meta is None:
                raise ParameterError(
                    f"{path}: no metadata file beside it (expected '{{prefix}}_metadata.tsv.gz', whose 'id' column "
                    "names the study of each row); pass metadata=... or ids=[...]."
                )
            metadata = default_meta
        metadata = _check_path(metadata, "metadata", "Pass the '*_metadata.tsv.gz' of the same release.")
        study = _read_metadata_ids(metadata)
        if len(study) != n:
            raise DatabaseError(
                f"{metadata}: {len(study)} stud(y/ies), but {path} has {n} row(s); row i of the "
                "matrix is the study on data row i of the metadata, so both must come from the same release."
            )
        attrs["metadata"] = metadata
    return sp.csc_matrix(matrix), study, terms, attrs


def _read_vocabulary(path: str) -> list[str]:
    text = _read_text(path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    terms = [line.strip() for line in lines]
    _check_names(path, terms, lambda i: f"line {i + 1}")
    if not terms:
        raise DatabaseError(f"{path}: the vocabulary is empty; expected one term a line.")
    return terms


def _read_metadata_ids(path: str) -> np.ndarray:
    text = _read_text(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DatabaseError(f"{path}: the metadata file is empty; expected a tab-separated header with an 'id' column.")
    header = [h.strip().lower() for h in lines[0].split("\t")]
    if "id" not in header:
        raise DatabaseError(
            f"{path}, line 1: no 'id' column (found {header[:8]}); the v7 metadata starts 'id<TAB>doi<TAB>space...'."
        )
    col = header.index("id")
    ids, where = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        value = cells[col].strip() if col < len(cells) else ""
        if not value:
            raise DatabaseError(f"{path}, line {lineno}: empty study id; every metadata row needs its 'id'.")
        ids.append(value)
        where.append(lineno)
    study = np.asarray(ids, dtype=object)
    _check_unique_ids(path, study, np.asarray(where))
    return study
