"""The shared argument checks (xcoact/validate.py): what they accept, and their messages, pinned."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xcoact import validate
from xcoact.errors import OutputError, ParameterError


def _raises(cls, message):
    return pytest.raises(cls, match="^" + re.escape(message) + "$")


def test_integer():
    assert validate.integer(np.int64(3), "n", 1) == 3 and type(validate.integer(np.int64(3), "n", 1)) is int
    assert validate.integer(None, "n", 1, allow_none=True) is None
    for bad in (0, True, 2.0, "3", None):
        with _raises(ParameterError, f"n={bad!r} is not valid; expected an integer >= 1."):
            validate.integer(bad, "n", 1)
    with _raises(ParameterError, "n=0 is not valid; expected an integer >= 1 or None."):
        validate.integer(0, "n", 1, allow_none=True)


def test_real_and_finite():
    assert validate.real(2, "jitter", 0.0, "sd in mm") == 2.0
    for bad in (-1, float("nan"), float("inf"), True, "1"):
        with _raises(ParameterError, f"jitter={bad!r} is not valid; expected a finite number >= 0 (sd in mm)."):
            validate.real(bad, "jitter", 0.0, "sd in mm")
    assert validate.finite(-2.5, "t", ": why") == -2.5
    with _raises(ParameterError, "t=nan is not valid; expected a finite number: why."):
        validate.finite(float("nan"), "t", ": why")
    with _raises(ParameterError, "t=-1 is not valid; expected a finite number >= 0 (why)."):
        validate.finite(-1, "t", " (why)", minimum=0)
    with _raises(ParameterError, "t=True is not valid; expected a finite number: why."):
        validate.finite(True, "t", ": why")


def test_unit_interval():
    assert validate.unit_interval(np.float32(0.25), "q", "0.01") == 0.25
    for bad in (0, 1, 1.5, True, "0.1"):
        with _raises(
            ParameterError, f"q={bad!r} is not valid; expected a number strictly between 0 and 1 (e.g. q=0.01)."
        ):
            validate.unit_interval(bad, "q", "0.01")


def test_float_dtype():
    assert validate.float_dtype("float32") == np.dtype("float32") and validate.float_dtype(np.float64) == np.dtype(
        "float64"
    )
    assert validate.float_dtype(None, keep=True) is None and validate.float_dtype(None) == np.dtype("float64")
    for bad in ("int8", "no such type"):
        with _raises(ParameterError, f"dtype={bad!r} is not supported; expected 'float64' (default) or 'float32'."):
            validate.float_dtype(bad)
    with _raises(OutputError, "dtype='int8' is not supported for maps; expected None (keep), 'float32' or 'float64'."):
        validate.float_dtype("int8", keep=True, error=OutputError)
