"""Argument checks shared by the public calls: each returns the value as a plain Python type or raises.

Every message names the argument, repeats the value given and says what
would be valid (the messages are pinned by the tests, so callers share these
rather than writing their own).
"""

from __future__ import annotations

import numbers
from typing import Literal, overload

import numpy as np

from .errors import ParameterError

__all__ = ["integer", "real", "unit_interval", "finite", "float_dtype"]


def _is_number(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)


@overload
def integer(value, name: str, minimum: int, *, allow_none: Literal[False] = ...) -> int: ...
@overload
def integer(value, name: str, minimum: int, *, allow_none: bool) -> int | None: ...
def integer(value, name: str, minimum: int, *, allow_none: bool = False) -> int | None:
    """``value`` as an int >= ``minimum`` (None passes when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ParameterError(
            f"{name}={value!r} is not valid; expected an integer >= {minimum}{' or None' if allow_none else ''}."
        )
    return int(value)


def real(value, name: str, minimum: float, example: str) -> float:
    """``value`` as a finite float >= ``minimum``; ``example`` says what the number means."""
    if not _is_number(value) or not np.isfinite(value) or value < minimum:
        raise ParameterError(f"{name}={value!r} is not valid; expected a finite number >= {minimum:g} ({example}).")
    return float(value)


def unit_interval(value, name: str, example: str) -> float:
    """``value`` as a float strictly between 0 and 1 (a rate such as ``q`` or a ``prior``)."""
    if not _is_number(value) or not 0 < float(value) < 1:
        raise ParameterError(
            f"{name}={value!r} is not valid; expected a number strictly between 0 and 1 (e.g. {name}={example})."
        )
    return float(value)


def finite(value, name: str, meaning: str, *, minimum: float | None = None) -> float:
    """``value`` as a finite float (>= ``minimum`` when given); ``meaning`` ends the message (what it does)."""
    if not _is_number(value) or not np.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ParameterError(f"{name}={value!r} is not valid; expected a finite number{bound}{meaning}.")
    return float(value)


def float_dtype(dtype, *, keep: bool = False, error: type[Exception] = ParameterError) -> np.dtype | None:
    """``dtype`` as ``float32`` or ``float64`` (None: float64).

    With ``keep``, None (keep the maps' own) passes as None.
    """
    if keep and dtype is None:
        return None
    try:
        dt = np.dtype(dtype)  # None is numpy's default, float64
    except TypeError:
        dt = None
    if dt is not None and dt in (np.dtype("float32"), np.dtype("float64")):
        return dt
    if keep:
        raise error(f"dtype={dtype!r} is not supported for maps; expected None (keep), 'float32' or 'float64'.")
    raise error(f"dtype={dtype!r} is not supported; expected 'float64' (default) or 'float32'.")
