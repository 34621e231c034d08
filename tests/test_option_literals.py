"""Every option parameter of the public API is typed with a ``Literal`` of :mod:`xcoact.choices`.

A public parameter whose default is a string either names one of the fixed sets of values (its
annotation then names the matching ``Literal``, and the default is one of its values) or is free text
(listed in ``FREE_TEXT``).  Each ``Literal`` holds exactly the values its run-time check accepts.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import typing
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xcoact
from xcoact import choices, counts, features, kernels, readers, writers
from xcoact import plot as xplot
from xcoact.accessors import CoactDataArrayAccessor, CoactDatasetAccessor
from xcoact.analyses import batch, contrast, parcellate, seed
from xcoact.datasets import fetch
from xcoact.errors import OutputError, ParameterError, XcoactWarning
from xcoact.roi import grid_of
from xcoact.space import mni152_2mm
from xcoact.stats import ale, ale_null

# the Literal aliases of the package: those of xcoact.choices, and the two formats kept beside their readers
ALIASES = {name: typing.get_args(getattr(choices, name)) for name in choices.__all__}
ALIASES |= {"Format": typing.get_args(readers.Format), "FeatureFormat": typing.get_args(features.FeatureFormat)}

# public parameters with a string default that are free text, not a choice among fixed values
FREE_TEXT = {
    ("TermMapCache.__init__", "owner"),
    ("check_radius", "name"),
    ("FocusKernel.__init__", "name"),
    ("Grid.__init__", "name"),
    ("image_to_dataarray", "name"),
    ("SelectionRule.select", "seed_name"),
    ("select_studies", "seed_name"),
    ("atlas_labels", "column"),
    ("atomic_path", "suffix"),
    ("coordinates_table", "database"),
    ("check_rule", "select"),  # select.py is frozen for its mutation score; its RULES equal SelectRule (test_choices)
}

# option parameters whose default is None or that have none: (function, parameter, alias)
OPTIONS_WITHOUT_STRING_DEFAULT = [
    (seed.seed, "select", "SelectRule"),
    (seed.seed, "preset", "PresetName"),
    (seed.seed, "null", "NullMethod"),
    (seed.seed, "fwe", "FweMethod"),
    (batch.seed_batch, "select", "SelectRule"),
    (batch.seed_batch, "preset", "PresetName"),
    (contrast.contrast, "select", "SelectRule"),
    (contrast.contrast, "preset", "PresetName"),
    (seed.coactivation, "select", "SelectRule"),
    (CoactDataArrayAccessor.seed, "null", "NullMethod"),
    (CoactDataArrayAccessor.seed, "fwe", "FweMethod"),
    (CoactDatasetAccessor.fwe, "n_iter", "FweMethod"),
    (xcoact.fwe, "n_iter", "FweMethod"),
    (ale.seed, "select", "SelectRule"),
    (ale.seed, "preset", "PresetName"),
    (ale.contrast, "select", "SelectRule"),
    (ale.contrast, "preset", "PresetName"),
    (counts.grouped_counts, "op", "CountOp"),
    (kernels.pattern_chunk_maps, "how", "Combine"),
]


def _public_functions():
    """(qualified name, function) of every function and method the modules' ``__all__`` export."""
    modules = [xcoact] + [importlib.import_module(m.name) for m in pkgutil.walk_packages(xcoact.__path__, "xcoact.")]
    seen = set()
    for module in modules:
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj):
                members = [(f"{name}.{k}", v) for k, v in vars(obj).items() if inspect.isfunction(v)]
                yield from ((q, f) for q, f in members if not q.split(".")[-1].startswith("_") or "__init__" in q)
            elif inspect.isfunction(obj) and obj not in seen:
                seen.add(obj)
                yield name, obj


def _aliases_in(annotation) -> list[str]:
    return [a for a in ALIASES if re.search(rf"\b{a}\b", str(annotation))]


def test_every_string_option_names_its_literal():
    checked, untyped = 0, []
    for qualname, func in _public_functions():
        for p in inspect.signature(func).parameters.values():
            if not isinstance(p.default, str) or (qualname, p.name) in FREE_TEXT:
                continue
            named = _aliases_in(p.annotation)
            if not named:
                untyped.append(f"{func.__module__}.{qualname}({p.name}: {p.annotation} = {p.default!r})")
                continue
            checked += 1
            assert any(p.default in ALIASES[a] for a in named), (qualname, p.name, p.default, named)
    assert not untyped, "option parameters typed without their Literal:\n" + "\n".join(untyped)
    assert checked >= 40, checked  # the walk reached the API (seed, parcellate, writers, ale, ...)


@pytest.mark.parametrize(("func", "param", "alias"), OPTIONS_WITHOUT_STRING_DEFAULT)
def test_options_without_a_string_default_name_their_literal(func, param, alias):
    annotation = inspect.signature(func).parameters[param].annotation
    assert alias in _aliases_in(annotation), annotation
    assert not re.search(r"\bstr\b", annotation), annotation  # no bare str beside the Literal


def test_free_text_parameters_are_still_there():
    # a stale entry (its parameter renamed or gone) would hide whatever takes its name later
    found = {(q, p) for q, f in _public_functions() for p in inspect.signature(f).parameters}
    assert FREE_TEXT <= found, FREE_TEXT - found


def test_literals_are_the_run_time_sets():
    assert set(ALIASES["KernelName"]) == {"mkda", *kernels.KERNELS}
    assert ALIASES["CountOp"] == tuple(counts.OPS)
    assert ALIASES["PoolProfile"] == parcellate.PROFILES
    assert set(ALIASES["Compressor"]) == set(writers._zarr_codecs())
    assert set(ALIASES["PlotView"]) == set(xplot._VIEWS)
    assert set(ALIASES["Format"]) == set(readers.FORMATS)
    assert ALIASES["FeatureFormat"] == features.FEATURE_FORMATS


def test_fetch_literals_are_the_bundled_manifests_features():
    pattern = re.compile(r".*vocab-(.+?)_source-(.+?)_type-.+_features\.npz")
    offered: dict[str, set] = {}
    for entry in fetch.read_manifest():
        if m := pattern.fullmatch(entry.name):
            dataset = "neurosynth" if "neurosynth" in entry.repository else "neuroquery"
            offered.setdefault(dataset, set()).add(m.groups())
    for dataset, vocab, source in (
        ("neurosynth", "NeurosynthVocab", "NeurosynthSource"),
        ("neuroquery", "NeuroqueryVocab", "NeuroquerySource"),
    ):
        assert {v for v, _ in offered[dataset]} == set(ALIASES[vocab]), dataset
        assert {s for _, s in offered[dataset]} == set(ALIASES[source]), dataset
        func = getattr(fetch, f"fetch_{dataset}")
        params = inspect.signature(func).parameters
        assert params["vocab"].annotation == f"{vocab} | None" and params["source"].annotation == source


def test_in_memory_tables_record_an_object_format():
    df = pd.DataFrame({"id": [1, 1], "x": [0.0, 2.0], "y": [0.0, 2.0], "z": [0.0, 2.0], "space": "MNI"})
    nimads = {
        "id": "s",
        "studies": [{"id": "a", "analyses": [{"id": "b", "points": [{"coordinates": [0, 0, 0], "space": "MNI"}]}]}],
    }
    for db in (df, nimads):
        assert xcoact.read_database(db).attrs["format"] in ALIASES["ObjectFormat"]
    source = inspect.getsource(readers.objects)
    assert set(re.findall(r'fmt="([a-z-]+)"', source)) <= set(ALIASES["ObjectFormat"])


def _quoted(values) -> str:
    return ".*".join(re.escape(repr(v)) for v in values)


def test_each_check_refuses_a_value_outside_its_literal_naming_the_literal():
    grid = mni152_2mm()
    ijk = np.array([[40, 50, 40]])
    with pytest.raises(ParameterError, match=f"how='mean' is not known; expected {_quoted(ALIASES['Combine'])}"):
        kernels.combine_foci(ijk, np.zeros((1, 3), dtype=np.int64), np.ones(1), grid, how="mean")
    with pytest.raises(ParameterError, match=f"combine='mean' is not known; expected {_quoted(ALIASES['Combine'])}"):
        kernels.FocusKernel(np.zeros((1, 3)), np.ones(1), combine="mean")
    for how in ALIASES["Combine"]:
        voxels, values = kernels.combine_foci(ijk, np.zeros((1, 3), dtype=np.int64), np.ones(1), grid, how=how)
        assert values.tolist() == [1.0]
    with pytest.raises(ParameterError, match=f"engine='cuda'; expected {_quoted(ALIASES['AleEngine'])}"):
        ale.ale_null([(np.array([0]), np.array([0.5]))], 10, engine="cuda")
    for engine in ALIASES["AleEngine"]:
        bins, weights = ale.ale_null([(np.array([0]), np.array([0.5]))], 10, engine=engine)
        assert weights.sum() == pytest.approx(1.0)
    with pytest.raises(ParameterError, match=f"engine='cuda'; expected {_quoted(ALIASES['AleEngine'])}"):
        ale_null.fwe_null(ijk, np.zeros(1, dtype=np.int64), grid, sample_size=20, n_iter=2, engine="cuda")
    ds = xr.Dataset({"m": (("x", "y", "z"), np.zeros((2, 2, 2)))}, coords={"x": [0.0, 2], "y": [0.0, 2], "z": [0.0, 2]})
    with pytest.raises(OutputError, match=f"naming='nipype' is not known; expected {_quoted(ALIASES['Naming'])}"):
        xcoact.to_nifti(ds, "/nonexistent/out", naming="nipype")


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)  # the sample's unknown spaces, a peak out of the box
        db = xcoact.read_database(xcoact.datasets.sample_database_path())
        return db, xcoact.activations(db)


def test_analyses_refuse_a_value_outside_the_literal(sample):
    db, act = sample
    with pytest.raises(ParameterError, match=f"layout='flat' is not known; expected {_quoted(ALIASES['Layout'])}"):
        act.coact.seed([[0, 20, 28], [40, 20, 28]], 0.1, separate=True, layout="flat")
    with pytest.raises(ParameterError, match=f"select='overlap' is not a pooling rule.*{_quoted(ALIASES['PoolRule'])}"):
        act.coact.parcellate([[0, 20, 28]], select="overlap")
    with pytest.raises(ParameterError, match=f"profile='kda' is not known.*{_quoted(ALIASES['PoolProfile'])}"):
        act.coact.parcellate([[0, 20, 28]], profile="kda")
    with pytest.raises(ParameterError, match=f"filter_range='some'.*{_quoted(ALIASES['FilterRange'])}"):
        act.coact.parcellate([[0, 20, 28]], filters=(20, 30), filter_range="some")
    with pytest.raises(
        ParameterError, match=re.escape(f"op='max' is not known; expected one of {list(ALIASES['CountOp'])}")
    ):
        counts.grouped_counts(act, np.ones((1, act.sizes["study"]), dtype=bool), grid_of(act), op="max")
    with pytest.raises(
        ParameterError, match=re.escape(f"kernel='gauss' is not known; expected one of {list(ALIASES['KernelName'])}")
    ):
        xcoact.activations(db, kernel="gauss")
    maps = act.coact.seed([[0, 20, 28]], 0.1)
    with pytest.raises(ParameterError, match=f"n_iter='holm' is not known; expected .*{_quoted(ALIASES['FweMethod'])}"):
        maps.coact.fwe(act=act, n_iter="holm")
