"""Security: xcoact never deserialises data with pickle or runs text as code.

Every ``.py`` file under ``xcoact/`` is parsed with :mod:`ast` (not grepped,
so comments and strings do not count) and refused if it

* imports ``pickle`` (or ``_pickle``, ``cPickle``, ``dill``, ``cloudpickle``,
  ``joblib``), ``marshal`` or ``shelve``, or touches an attribute of them;
* calls or names ``eval``, ``exec`` or the builtin ``compile``;
* calls ``yaml.load``/``yaml.load_all`` without a safe loader, or
  ``yaml.unsafe_load``/``yaml.full_load``;
* passes ``allow_pickle`` anything but ``False`` (``np.load(..., allow_pickle=True)``);
* calls ``read_pickle``/``to_pickle`` (pandas) or ``torch.load``.

Defining ``__getstate__``/``__setstate__``/``__reduce__`` is allowed: that is
how Dask ships xcoact's own objects to its workers (Dask pickles them; xcoact
never unpickles a file).  The rules are checked against snippets first, so
the scan is known to catch what it claims.
"""

from __future__ import annotations

import ast
import os

import pytest

import xcoact

PACKAGE = os.path.dirname(os.path.abspath(xcoact.__file__))

#: Modules whose only job is (de)serialising arbitrary Python objects.
PICKLE_MODULES = frozenset({"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"})
CODE_BUILTINS = frozenset({"eval", "exec", "compile"})
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_false(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def scan_source(source: str, filename: str = "<snippet>") -> list[str]:
    """Every forbidden construct in one module's source, as ``file:line: what`` strings."""
    tree = ast.parse(source, filename=filename)
    found = []

    def report(node, what):
        found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PICKLE_MODULES:
                    report(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.module.split(".")[0] in PICKLE_MODULES:
                report(node, f"from {node.module} import ...")
            for alias in node.names:
                if alias.name in CODE_BUILTINS or alias.name in ("read_pickle", "unsafe_load", "full_load"):
                    report(node, f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute):
            chain = _dotted(node).split(".")
            root = chain[0]
            if PICKLE_MODULES.intersection(chain[:-1]) or (
                node.attr in PICKLE_MODULES and isinstance(node.ctx, ast.Load)
            ):
                report(node, f"{_dotted(node) or '.' + node.attr}")
            elif node.attr in ("read_pickle", "to_pickle"):
                report(node, f".{node.attr}")
            elif node.attr in ("eval", "exec") and root == "builtins":
                report(node, f"builtins.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in CODE_BUILTINS and isinstance(node.ctx, ast.Load):
            report(node, f"{node.id}")
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not _is_false(kw.value):
                    report(node, f"{name or 'a call'}(..., allow_pickle={ast.unparse(kw.value)})")
            if name in (
                "yaml.unsafe_load",
                "yaml.full_load",
                "yaml.unsafe_load_all",
                "yaml.full_load_all",
                "torch.load",
            ):
                report(node, f"{name}(...)")
            elif name in ("yaml.load", "yaml.load_all"):
                loader = [kw.value for kw in node.keywords if kw.arg == "Loader"] + node.args[1:2]
                if not loader or _dotted(loader[0]).split(".")[-1] not in SAFE_YAML_LOADERS:
                    report(node, f"{name}(...) without a safe Loader")
    return found


def package_files() -> list[str]:
    out = []
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    return sorted(out)


# --------------------------------------------------------------------------------------
# The scanner catches what it claims (and nothing else)
# --------------------------------------------------------------------------------------

FORBIDDEN = [
    "import pickle",
    "import pickle as pk",
    "import _pickle",
    "from pickle import loads",
    "import cloudpickle",
    "import marshal",
    "import shelve",
    "from joblib import load",
    "x = obj.pickle.loads(b)",
    "pickle.loads(data)",
    "eval('1 + 1')",
    "exec(code)",
    "f = eval",
    "builtins.eval('1')",
    "code = compile(src, 'f', 'exec')",
    "from builtins import eval",
    "yaml.load(fh)",
    "yaml.load(fh, Loader=yaml.Loader)",
    "yaml.load(fh, yaml.FullLoader)",
    "yaml.unsafe_load(fh)",
    "yaml.full_load(fh)",
    "np.load(path, allow_pickle=True)",
    "numpy.load(path, allow_pickle=flag)",
    "load(path, mmap_mode='r', allow_pickle=1)",
    "pd.read_pickle(path)",
    "frame.to_pickle(path)",
    "from pandas import read_pickle",
    "torch.load(path)",
]

ALLOWED = [
    "import re\npattern = re.compile('a+')",
    "np.load(path)",
    "np.load(path, allow_pickle=False)",
    "scipy.sparse.load_npz(path)",
    "yaml.load(fh, Loader=yaml.SafeLoader)",
    "yaml.load(fh, Loader=CSafeLoader)",
    "yaml.safe_load(fh)",
    "json.loads(text)",
    "class A:\n    def __getstate__(self):\n        return {}\n    def __setstate__(self, s):\n        pass",
    "class B:\n    def __reduce__(self):\n        return (B, ())",
    "# pickle.loads(x) and eval(y) in a comment",
    "msg = 'no eval( or pickle. in strings'",
    "df.eval_something()",
    "evaluate(x)",
]


@pytest.mark.parametrize("source", FORBIDDEN)
def test_scanner_catches(source):
    found = scan_source(source)
    assert found, source
    assert found[0].startswith("<snippet>:1: ")


@pytest.mark.parametrize("source", ALLOWED)
def test_scanner_allows(source):
    assert scan_source(source) == []


# --------------------------------------------------------------------------------------
# The package itself
# --------------------------------------------------------------------------------------


def test_package_has_no_pickle_or_eval():
    files = package_files()
    # the scan sees the whole package, readers included
    names = {os.path.relpath(f, PACKAGE) for f in files}
    assert {
        "__init__.py",
        "table.py",
        os.path.join("readers", "nimare.py"),
        os.path.join("readers", "_text.py"),
    } <= names
    problems = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            problems += scan_source(fh.read(), os.path.relpath(path, os.path.dirname(PACKAGE)))
    assert problems == [], "xcoact must not unpickle data or run text as code:\n" + "\n".join(problems)


def test_grid_state_for_dask_is_plain_data():
    """Grid's __getstate__/__setstate__ (for Dask's workers) hold a shape, arrays and a name: data, not code."""
    import numpy as np

    from xcoact.space import Grid

    grid = xcoact.mni152_2mm()
    state = grid.__getstate__()
    assert set(state) == {"shape", "affine", "mask", "name"}
    assert all(isinstance(v, (tuple, np.ndarray, str, type(None))) for v in state.values())
    clone = Grid.__new__(Grid)
    clone.__setstate__(state)
    assert clone == grid and (clone.mask == grid.mask).all()
