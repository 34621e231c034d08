"""The exception hierarchy of xcoact.

Every error xcoact raises on purpose derives from :class:`XcoactError` and
also from the builtin a caller would naturally catch (``ValueError`` for bad
values, ``FileNotFoundError`` for missing files, ...), so ``except ValueError``
keeps working while ``except xcoact.XcoactError`` catches everything of ours.
Messages say what was found, what was expected, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "XcoactError",
    "DatabaseError",
    "DatabaseFileNotFoundError",
    "DatabaseFileError",
    "RoiError",
    "ParameterError",
    "SelectionError",
    "OutputError",
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
