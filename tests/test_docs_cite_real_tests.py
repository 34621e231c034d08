"""The documentation names tests that exist.

docs/reliability.md pins each guarantee to a test, and the other pages cite the tests that show a claim or
bound a number; a renamed or removed test must not leave a page pointing at nothing.
"""

from __future__ import annotations

import ast
import functools
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
TESTS = os.path.join(ROOT, "tests")
PAGES = sorted(f[: -len(".md")] for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))


@functools.cache
def _test_functions() -> dict[str, set[str]]:
    """``{file name: names of its test functions}`` for every tests/test_*.py."""
    out = {}
    for name in sorted(os.listdir(TESTS)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(TESTS, name), encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            out[name] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test")}
    return out


@pytest.mark.parametrize("page", PAGES)
def test_cited_test_files_and_functions_exist(page):
    with open(os.path.join(ROOT, "docs", f"{page}.md"), encoding="utf-8") as fh:
        text = fh.read()
    functions = _test_functions()
    everywhere = set().union(*functions.values())
    bad = []
    for m in re.finditer(r"tests/(test_\w+\.py)(?:::(test_\w+))?", text):
        if m[1] not in functions:
            bad.append(f"tests/{m[1]}: no such file")
        elif m[2] and m[2] not in functions[m[1]]:
            bad.append(f"{m[0]}: no such test in that file")
    # a bare test name in backticks, as the tables cite them (a name ending in "_" or "..." is a prefix)
    names = re.findall(r"`(test_\w+?)(?:\[[^\]`]*\])?`", text)
    bad += [f"{n}: no test of that name in tests/" for n in names if not n.endswith("_") and n not in everywhere]
    assert not bad, f"docs/{page}.md cites tests that do not exist:\n" + "\n".join(bad)


def test_the_check_finds_the_citations():
    with open(os.path.join(ROOT, "docs", "reliability.md"), encoding="utf-8") as fh:
        text = fh.read()
    assert len(re.findall(r"`(test_\w+?)(?:\[[^\]`]*\])?`", text)) > 100
