"""docs/design.md's module table names every module of the package (issue 16: design.md covers every module)."""

from __future__ import annotations

import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
PACKAGE = os.path.join(ROOT, "xcoact")


def _modules() -> set[str]:
    """Every ``.py`` and template file of the package, relative to it."""
    out = set()
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "data")]
        rel = os.path.relpath(folder, PACKAGE)
        for name in files:
            if name.endswith((".py", ".html")):
                out.add(name if rel == "." else f"{rel}/{name}")
    return out


def _table_entries() -> set[str]:
    """The files the rows of design.md's "Every module" table name (``sleuth.py`` after ``readers/...`` is in it)."""
    with open(os.path.join(ROOT, "docs", "design.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("## Every module", 1)[1].split("\n## ", 1)[0]
    out = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        prefix = ""
        for token in re.findall(r"`([\w/.]+\.(?:py|html))`", row.split(" | ")[0]):
            if "/" in token:
                prefix = token.rsplit("/", 1)[0] + "/"
                out.add(token)
            else:
                out.add(prefix + token)
    return out


def test_every_module_has_a_row_in_design_md():
    modules, described = _modules(), _table_entries()
    assert len(modules) > 40 and "blocks.py" in described
    # a subpackage's __init__.py may go without a row when its modules have theirs
    missing = sorted(m for m in modules - described if not m.endswith("/__init__.py"))
    assert not missing, f"docs/design.md, 'Every module': add a row for {missing}"
    gone = sorted(described - modules)
    assert not gone, f"docs/design.md, 'Every module' names files that are not in xcoact/: {gone}"
