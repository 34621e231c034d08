"""Neurosynth databases: the classic ``database.txt`` and the v7 split release."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import DatabaseError
from ..table import make_table
from ..warnings import SpaceWarning
from ._text import parse_numbers, parse_tsv, read_text

CLASSIC_COLUMNS = ("id", "x", "y", "z", "space")
V7_COLUMNS = ("id", "x", "y", "z")


def read_neurosynth(path: str):
    """Read a Neurosynth ``database.txt`` (TSV: ``id x y z space``, any case, extra columns ignored).

    Matches the table Neurosynth 0.3.8's ``Dataset`` builds from the same file.
    """
    cols, lines = parse_tsv(path, read_text(path), CLASSIC_COLUMNS, "Neurosynth database.txt")
    x, y, z = parse_numbers(path, cols, ("x", "y", "z"), lines)
    return make_table(cols["id"], x, y, z, cols["space"], database=path, fmt="neurosynth", lines=lines)


def metadata_path(coordinates_path: str) -> str | None:
    """The v7 metadata file that sits beside a coordinates file, if any."""
    base = os.path.basename(coordinates_path)
    for suffix in (".tsv.gz", ".tsv"):
        cand = base.replace("_coordinates" + suffix, "_metadata" + suffix)
        if cand != base:
            for ext in (".tsv.gz", ".tsv"):
                full = os.path.join(os.path.dirname(coordinates_path), cand[: -len(suffix)] + ext)
                if os.path.exists(full):
                    return full
    return None


def read_neurosynth_v7(path: str, metadata: str | None = None):
    """Read the Neurosynth v7 (or NeuroQuery) split release.

    The coordinates TSV (``id table_id table_num peak_id x y z``) carries no
    space; it comes from the metadata TSV beside it (``id doi space ...``).
    Without a metadata file every peak is taken as MNI, with a warning.
    """
    cols, lines = parse_tsv(path, read_text(path), V7_COLUMNS, "Neurosynth v7 coordinates")
    x, y, z = parse_numbers(path, cols, ("x", "y", "z"), lines)
    metadata = metadata or metadata_path(path)
    if metadata is None:
        warnings.warn(
            f"{path}: no metadata file beside it (expected '*_metadata.tsv.gz' with an 'id' and a "
            "'space' column); every peak is taken as MNI.",
            SpaceWarning,
            stacklevel=3,
        )
        space = np.full(len(x), "MNI", dtype=object)
    else:
        meta, meta_lines = parse_tsv(metadata, read_text(metadata), ("id", "space"), "Neurosynth v7 metadata")
        lookup = dict(zip(meta["id"], meta["space"]))
        missing = sorted({i for i in np.unique(cols["id"]) if i not in lookup})
        if missing:
            raise DatabaseError(
                f"{metadata}: {len(missing)} study id(s) of {path} have no metadata row (e.g. {missing[:5]}); "
                "each study needs its space. Use the metadata file of the same release."
            )
        space = np.array([lookup[i] for i in cols["id"]], dtype=object)
    return make_table(cols["id"], x, y, z, space, database=path, fmt="neurosynth-v7", lines=lines)
