"""xcoact's global settings: :func:`set_options` (validated, usable as a context manager) and :func:`get_options`."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from . import validate
from .errors import ParameterError

__all__ = ["set_options", "get_options"]

#: The settings and their current values (read through :func:`get_options`; changed only by :func:`set_options`).
_OPTIONS: dict[str, Any] = {
    # the bytes of term maps a cube keeps for decode (per cube; 0 keeps none)
    "term_map_cache_bytes": 512 * 2**20,
}

_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "term_map_cache_bytes": lambda v: validate.integer(v, "term_map_cache_bytes", 0),
}


class set_options:
    """Change xcoact's settings, for good or inside a ``with`` block.

    Parameters
    ----------
    term_map_cache_bytes : int, default 536870912 (512 MiB)
        How many bytes of term maps a cube keeps for :func:`xcoact.analyses.decode.decode`
        (in-mask float64 vectors, 1.8 MB each on the 2 mm grid, so 512 MiB is
        about 290 maps; decoding all 3,228 terms of Neurosynth v7 keeps every
        map only with about 5.9e9).  The least recently used maps go first;
        0 keeps none.

    Raises
    ------
    ParameterError
        An unknown setting (the message lists them) or a value it does not take;
        nothing is changed then.

    Examples
    --------
    >>> import xcoact
    >>> with xcoact.set_options(term_map_cache_bytes=0):
    ...     xcoact.get_options()["term_map_cache_bytes"]
    0
    >>> xcoact.get_options()["term_map_cache_bytes"]
    536870912
    """

    def __init__(self, **kwargs):
        new = {}
        for name, value in kwargs.items():
            if name not in _OPTIONS:
                raise ParameterError(f"{name!r} is not an xcoact setting; expected one of {sorted(_OPTIONS)}.")
            new[name] = _VALIDATORS[name](value)
        self._old = {name: _OPTIONS[name] for name in new}
        _OPTIONS.update(new)

    def __enter__(self) -> set_options:
        return self

    def __exit__(self, *exc) -> None:
        _OPTIONS.update(self._old)


def get_options() -> MappingProxyType:
    """The current settings, read-only (change them with :func:`set_options`)."""
    return MappingProxyType(_OPTIONS)
