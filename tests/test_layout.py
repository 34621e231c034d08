"""The package layout: every module is reachable under its own name, and no name shadows a module.

``xcoact.fwe`` and ``xcoact.matrix`` are the public functions; their modules live in the
``stats`` and ``analyses`` packages, so ``import xcoact.x.y`` and ``xcoact.x.y`` always give the
same module. The warning classes live in ``xcoact.errors`` (a module named ``warnings`` read like the
standard library's).
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import sys
import types

import xcoact


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(xcoact.__path__, "xcoact.")]


def test_every_module_is_the_attribute_of_its_package():
    names = _modules()
    assert {"xcoact.stats.fwe", "xcoact.analyses.matrix", "xcoact.analyses.seed", "xcoact.errors"} <= set(names)
    shadowed = []
    for name in names:
        module = importlib.import_module(name)
        parent, leaf = name.rsplit(".", 1)
        if getattr(importlib.import_module(parent), leaf) is not module:
            shadowed.append(name)
    assert not shadowed, f"these modules are hidden by a name of their package: {shadowed}"


def _stdlib_imported_by_the_package() -> set[str]:
    """Top-level standard-library modules that xcoact's own files import (``import warnings``...)."""
    out = set()
    root = os.path.dirname(xcoact.__file__)
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    out.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    out.add(node.module.split(".")[0])
    return out & set(sys.stdlib_module_names)


def test_no_module_is_named_after_a_standard_library_module_the_package_imports():
    used = _stdlib_imported_by_the_package()
    assert {"warnings", "os", "json"} <= used
    leaves = {name.rsplit(".", 1)[1] for name in _modules()}
    assert not sorted(leaves & used)


def test_public_calls_are_functions_and_modules_are_modules():
    for verb in ("fwe", "matrix", "seed", "seed_batch", "contrast", "meta", "coactivation", "activations"):
        assert isinstance(getattr(xcoact, verb), types.FunctionType), verb
    for module in ("datasets", "errors", "readers", "stats", "analyses", "result"):
        assert isinstance(getattr(xcoact, module), types.ModuleType), module
    assert xcoact.fwe is xcoact.stats.fwe.fwe
    assert xcoact.matrix is xcoact.analyses.matrix.matrix
    assert issubclass(xcoact.errors.XcoactWarning, UserWarning)
    assert not hasattr(xcoact, "warnings")
