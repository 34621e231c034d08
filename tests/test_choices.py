"""The ``Literal`` option types of the public API name exactly the values the code accepts."""

from __future__ import annotations

import inspect
import typing

import pytest
import xarray as xr

import xcoact
from xcoact import choices, images, presets, select
from xcoact import plot as xplot
from xcoact.accessors import CoactDataArrayAccessor, CoactDatasetAccessor
from xcoact.analyses import contrast as coact
from xcoact.errors import ParameterError


def test_literals_match_the_run_time_checks():
    assert typing.get_args(choices.SelectRule) == select.RULES
    assert typing.get_args(choices.BothRule) == coact.BOTH_RULES
    assert typing.get_args(choices.PlotEngine) == images.ENGINES
    assert set(typing.get_args(choices.PresetName)) == set(presets.PRESETS)


@pytest.mark.parametrize(
    ("func", "param", "literal"),
    [
        (CoactDataArrayAccessor.seed, "select", "SelectRule | None"),
        (CoactDataArrayAccessor.seed, "dtype", "MapDtype"),
        (CoactDataArrayAccessor.seed, "layout", "Layout"),
        (CoactDataArrayAccessor.seed, "preset", "PresetName | None"),
        (CoactDataArrayAccessor.contrast, "both", "BothRule"),
        (CoactDataArrayAccessor.coactivation, "select", "SelectRule | None"),
        (CoactDatasetAccessor.to_nifti, "naming", "Naming"),
        (CoactDatasetAccessor.to_zarr, "compressor", "Compressor"),
        (CoactDatasetAccessor.to_netcdf, "dtype", "MapDtype | None"),
        (CoactDatasetAccessor.plot, "engine", "PlotEngine"),
        (xcoact.to_nifti, "naming", "Naming"),
        (xcoact.to_zarr, "compressor", "Compressor"),
        (xcoact.to_zarr, "dtype", "MapDtype | None"),
        (xcoact.to_netcdf, "dtype", "MapDtype | None"),
        (xplot.plot, "kind", "PlotKind"),
        (xplot.plot, "view", "PlotView"),
    ],
)
def test_option_parameters_are_typed_with_the_literals(func, param, literal):
    hints = typing.get_type_hints(func)
    annotation = inspect.signature(func).parameters[param].annotation
    assert annotation == literal
    # the annotation resolves, and its values include the default
    default = inspect.signature(func).parameters[param].default
    values = {v for arg in typing.get_args(hints[param]) or (hints[param],) for v in typing.get_args(arg) or (arg,)}
    assert (type(None) if default is None else default) in values, (default, values)


def test_a_value_outside_the_literal_is_refused_naming_the_choices():
    ds = xr.Dataset({"pA": (("x", "y", "z"), [[[0.0]]])}, coords={"x": [0.0], "y": [0.0], "z": [0.0]})
    with pytest.raises(
        ParameterError, match=r"engine='seaborn' is not known; expected one of \['matplotlib', 'nilearn'\]"
    ):
        ds.coact.plot(engine="seaborn")
    with pytest.raises(ParameterError, match=r"kind='bars' is not known; expected one of \['all', 'slices', 'glass'\]"):
        xplot.plot(ds, "pA", kind="bars")
