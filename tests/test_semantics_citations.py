"""The package cites docs/semantics.md by sections that exist, never the "SPEC" that is not in the repository.

Docstrings link to its sections (``:ref:`semantics-maps```, rendered in the API reference); comments, messages
(the printed selection rule) and the command line's help name them (``docs/semantics.md, 'Selecting studies'``).
Each cited label, title or number must be one of that page's.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest

from xcoact import cli

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
PACKAGE = os.path.join(ROOT, "xcoact")
SEMANTICS = os.path.join(ROOT, "docs", "semantics.md")

#: ``docs/semantics.md, 'Title'``, ``docs/semantics.md ("Title")`` or ``docs/semantics.md, section 9``.
_CITATION = re.compile(r"""docs/semantics\.md(?:,\s*|\s*\()(?:(['"])(?P<title>[^'"]+)\1|section (?P<number>\d+))""")


def _sources() -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as fh:
                    out[os.path.relpath(path, ROOT)] = fh.read()
    return out


def _cli_help() -> str:
    def help_of(argv: list[str]) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            cli.main(argv)
        return out.getvalue()

    top = help_of(["--help"])
    commands = re.search(r"\{([\w,-]+)\}", top)
    assert commands, top
    return top + "".join(help_of([c, "--help"]) for c in commands.group(1).split(","))


def _sections() -> tuple[set[str], set[str], set[str]]:
    """The page's section numbers, titles and labels (``(semantics-maps)=``)."""
    with open(SEMANTICS, encoding="utf-8") as fh:
        text = fh.read()
    headings = re.findall(r"^##\s+(\d+)\.\s+(.+?)\s*$", text, re.MULTILINE)
    labels = set(re.findall(r"^\((semantics-[\w-]+)\)=$", text, re.MULTILINE))
    return {n for n, _ in headings}, {t for _, t in headings}, labels


def test_no_spec_section_in_the_package_or_the_cli_help():
    texts = {**_sources(), "xcoact --help (every command)": _cli_help()}
    cited = [
        f"{where}: {line.strip()}" for where, text in texts.items() for line in text.splitlines() if "SPEC" in line
    ]
    assert not cited, "cite docs/semantics.md sections instead of SPEC:\n" + "\n".join(cited)


def test_every_cited_semantics_section_exists():
    numbers, titles, labels = _sections()
    assert len(numbers) >= 12 and "Selecting studies" in titles and "semantics-maps" in labels
    texts = {**_sources(), "xcoact --help (every command)": _cli_help()}
    found, bad = 0, []
    for where, text in texts.items():
        for m in _CITATION.finditer(re.sub(r"\s+", " ", text)):
            found += 1
            if (m["title"] or m["number"]) not in (titles if m["title"] else numbers):
                bad.append(f"{where}: {m.group(0)}")
        for label in re.findall(r":ref:`(semantics-[\w-]+)`", text):
            found += 1
            if label not in labels:
                bad.append(f"{where}: :ref:`{label}`")
    assert found >= 15, found  # the package does cite the page (a broken pattern would find nothing)
    assert not bad, (
        f"no such section in docs/semantics.md (headings {sorted(titles)}, labels {sorted(labels)}):\n" + "\n".join(bad)
    )
