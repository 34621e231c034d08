"""The exception and warning classes of xcoact.

Every error xcoact raises on purpose derives from :class:`XcoactError` and
also from the builtin a caller would naturally catch (``ValueError`` for bad
values, ``FileNotFoundError`` for missing files, ...), so ``except ValueError``
keeps working while ``except xcoact.XcoactError`` catches everything of ours.
Messages say what was found, what was expected, and how to fix it.

The warnings derive from :class:`XcoactWarning` (a ``UserWarning``), so users can
filter xcoact's warnings precisely: ``warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)``.
"""

from __future__ import annotations

import os
import sys
import types

__all__ = [
    "XcoactError",
    "DatabaseError",
    "DatabaseFileNotFoundError",
    "DatabaseFileError",
    "RoiError",
    "ParameterError",
    "SelectionError",
    "OutputError",
    "DownloadError",
    "ChecksumError",
    "ArchiveError",
    "UnsafeArchiveError",
    "XcoactWarning",
    "SpaceWarning",
    "MixedSpaceWarning",
    "OutOfBoxWarning",
    "OutsideBrainWarning",
    "ResampleWarning",
    "EmptyStudyWarning",
    "DegenerateSeedWarning",
    "LargeRoiWarning",
    "caller_stacklevel",
]


class XcoactError(Exception):
    """Root of every error raised by xcoact on purpose."""


class DatabaseError(XcoactError, ValueError):
    """A coordinate database could not be read: bad format, column or value."""


class DatabaseFileNotFoundError(XcoactError, FileNotFoundError):
    """A database, ROI or other input file does not exist."""


class DatabaseFileError(DatabaseError, OSError):
    """A database file exists but cannot be read: a directory, no permission, corrupt gzip.

    Both a :class:`DatabaseError` (``ValueError``) and an ``OSError``, as
    ``open()`` itself would raise ``IsADirectoryError`` / ``PermissionError``.
    """


class RoiError(XcoactError, ValueError):
    """A seed region cannot be used: empty, wrong shape, wrong orientation."""


class ParameterError(XcoactError, ValueError):
    """An argument has a value outside its valid range or set of choices."""


class SelectionError(XcoactError, ValueError):
    """The study selection is degenerate (no study, or every study, selected)."""


class OutputError(XcoactError, OSError):
    """An output could not be written (nothing partial is left behind)."""


class DownloadError(XcoactError, OSError):
    """A release file could not be downloaded: not found (404), refused, or the connection kept failing.

    The message names the URL.  Only verified files ever enter the cache; an
    interrupted download stays as a ``.part`` file that the next call resumes.
    """


class ChecksumError(DownloadError):
    """A downloaded file does not match its pinned checksum (or size); it was discarded, nothing was cached."""


class ArchiveError(XcoactError, OSError):
    """An archive cannot be extracted.  No release is an archive, so nothing raises it; kept for callers' ``except``."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would land outside the target directory.  Nothing raises it (see :class:`ArchiveError`)."""


#: How many characters of a value from an input file a message quotes (a cell can be megabytes long).
QUOTE_LIMIT = 80


def quote(value, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters.

    A value read from a file (a cell, a line, a name) can be any length; a
    message quoting a 60 MB cell whole is unreadable.  Longer values keep
    their first ``limit`` characters and say how long they were.

    Examples
    --------
    >>> quote("abc")
    "'abc'"
    >>> quote("x" * 200, limit=10)
    "'xxxxxxxx... (202 characters)"
    """
    text = repr(value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}... ({len(text):,} characters)"


def first_few(parts: list[str], n: int = 5) -> str:
    """The first ``n`` parts joined with ``"; "``, and how many more there are.

    Examples
    --------
    >>> first_few(["a", "b", "c"], n=2)
    'a; b; and 1 more'
    """
    return "; ".join(parts[:n]) + (f"; and {len(parts) - n} more" if len(parts) > n else "")


# Warnings ---------------------------------------------------------------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside xcoact.

    Call it as ``warnings.warn(msg, category, stacklevel=caller_stacklevel())``
    from any depth (a reader, a helper of ``make_table``...): the warning then
    names the user's line, however xcoact's functions called each other.
    """
    frame: types.FrameType | None = sys._getframe(1)  # the function that is about to call warnings.warn
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


class XcoactWarning(UserWarning):
    """Root of xcoact's warnings."""


class SpaceWarning(XcoactWarning):
    """Coordinates in a space xcoact does not know were used untransformed."""


class MixedSpaceWarning(SpaceWarning):
    """One study reports its peaks in more than one space; each row kept its own label's transform."""


class OutOfBoxWarning(XcoactWarning):
    """Peaks or seed coordinates fall outside the grid's box."""


class OutsideBrainWarning(OutOfBoxWarning):
    """Peaks lie far outside any brain (more than 20 mm outside the MNI152 box): likely mistyped rows.

    Raised when the database is read, naming the file lines of the worst
    peaks; such peaks are kept (one bad row must not stop a large database).
    """


class ResampleWarning(XcoactWarning):
    """An ROI on another grid was resampled to the cube's grid."""


class EmptyStudyWarning(XcoactWarning):
    """A study or contrast without any coordinate was left out."""


class DegenerateSeedWarning(XcoactWarning):
    """A seed of a batch selected no study (or every study, or has no voxel); its maps are NaN."""


class LargeRoiWarning(XcoactWarning):
    """A seed covers most of the brain mask (a probabilistic map with a non-zero background, a T1 or brain image)."""
