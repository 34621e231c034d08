"""Each ``.coact`` accessor method has the signature of the function it calls (names, kinds, defaults).

The accessor is a one-line door onto a public function with the array
filled in; a parameter added to (or a default changed in) the function but not
the accessor would silently give the accessor's caller other numbers.
"""

from __future__ import annotations

import inspect

import pytest

import xcoact
from xcoact import accessors, images, report
from xcoact import writers as export
from xcoact.analyses import contrast, decode, meta, parcellate
from xcoact.analyses import seed as coact_seed
from xcoact.analyses.matrix import matrix as matrix_function
from xcoact.plot import plot as plot_function
from xcoact.stats.clusters import clusters as clusters_function
from xcoact.stats.fwe import fwe as fwe_function

DataArrayCoact = accessors.CoactDataArrayAccessor
DatasetCoact = accessors.CoactDatasetAccessor

# accessor method -> the function it delegates to (its first parameter is the array the accessor holds)
TARGETS = [
    (DataArrayCoact.seed, coact_seed.seed),
    (DataArrayCoact.contrast, contrast.contrast),
    (DataArrayCoact.coactivation, coact_seed.coactivation),
    (DataArrayCoact.matrix, matrix_function),
    (DataArrayCoact.meta, meta.meta),
    (DataArrayCoact.term, decode.term),
    (DataArrayCoact.profile, decode.profile),
    (DatasetCoact.fwe, fwe_function),
    (DatasetCoact.volumes, export.to_volumes),
    (DatasetCoact.to_nifti, export.to_nifti),
    (DatasetCoact.to_netcdf, export.to_netcdf),
    (DatasetCoact.to_zarr, export.to_zarr),
    (DatasetCoact.decode, decode.decode),
    (DatasetCoact.to_nibabel, images.to_nibabel),
    (DataArrayCoact.parcellate, parcellate.parcellate),
    (DatasetCoact.clusters_of, parcellate.clusters_of),
    (DatasetCoact.load, parcellate.load),
]
# parameters the function requires and the accessor fills in by default (decode: the result's own cube,
# the database's own features)
FILLED = {"decode": {"features", "act"}}
# methods that pass **kwargs on: their own named parameters must match, the rest reach the function
FORWARDING = [
    (DatasetCoact.plot, plot_function, {"engine"}),  # engine picks plot or images.plot_nilearn
    (DatasetCoact.view, images.view, set()),
    (DatasetCoact.clusters, clusters_function, set()),
    (DatasetCoact.report, report.report, set()),
]


def _params(func, drop_first: bool):
    params = list(inspect.signature(func).parameters.values())
    return params[1:] if drop_first else params


def _shape(p: inspect.Parameter):
    return p.name, p.kind, p.default


@pytest.mark.parametrize("method, function", TARGETS, ids=[m.__name__ for m, _ in TARGETS])
def test_accessor_signature_matches_the_function(method, function):
    filled = FILLED.get(method.__name__, set())
    ours = [_shape(p) for p in _params(method, drop_first=True)]  # self
    theirs = [_shape(p) for p in _params(function, drop_first=True)]  # the cube or the maps
    for i, (name, kind, default) in enumerate(theirs):
        if name in filled:
            assert default is inspect.Parameter.empty and ours[i][2] is None, name
            theirs[i] = (name, kind, None)
    assert ours == theirs


@pytest.mark.parametrize("method, function, own", FORWARDING, ids=[m.__name__ for m, _, _ in FORWARDING])
def test_forwarding_accessor_passes_the_rest_on(method, function, own):
    ours = {p.name: p for p in _params(method, drop_first=True)}
    theirs = {p.name: p for p in _params(function, drop_first=True)}
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ours.values())
    for name, p in ours.items():
        if p.kind is inspect.Parameter.VAR_KEYWORD or name in own:
            continue
        assert name in theirs and p.default == theirs[name].default, name
    assert not own & set(theirs)


def test_every_accessor_method_is_checked():
    checked = {m.__name__ for m, _ in TARGETS} | {m.__name__ for m, _, _ in FORWARDING}
    for cls in (DataArrayCoact, DatasetCoact):
        public = {n for n, v in vars(cls).items() if not n.startswith("_") and inspect.isfunction(v)}
        assert public <= checked, public - checked


def test_the_check_would_catch_a_changed_default():
    def seed(self, seed, threshold=None, *, r=8.0):  # r's default differs
        pass

    def target(act, seed, threshold=None, *, r=6.0):
        pass

    assert [_shape(p) for p in _params(seed, True)] != [_shape(p) for p in _params(target, True)]
    assert xcoact.seed is coact_seed.seed
