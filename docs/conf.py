"""Sphinx configuration of the xcoact documentation site.

The pages stay Markdown (read by MyST through myst-nb), the API reference
(api.md) is generated from the numpydoc docstrings by autosummary, the
command line's options from its own ``--help``, and the example notebooks are
executed at build time on the bundled sample, so the site shows their
outputs. Nothing is fetched: the site builds offline. Build it with
``tox -e docs`` or::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys

from docutils import nodes
from docutils.parsers.rst import Directive

HERE = os.path.dirname(os.path.abspath(__file__))
# Document the checkout being built, even when another xcoact is installed.
sys.path.insert(0, os.path.dirname(HERE))

import xcoact  # noqa: E402

project = "xcoact"
author = "xcoact developers"
copyright = "xcoact developers, MIT licence"
release = xcoact.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # Markdown pages (it loads myst_parser) and .ipynb notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]

root_doc = "index"
# .rst first: autosummary writes its pages for api.md in reStructuredText, with the first suffix
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
# docs/examples is a symbolic link to ../examples, so the notebooks the test
# suite executes are the ones the site shows.
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# MyST: GitHub-style anchors for headings, so the pages' links such as
# ``api.md#seed-batches-seed_batch`` resolve both on GitHub and here.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# Notebooks: committed without outputs (tests/test_notebook.py keeps them so)
# and executed here, on the bundled sample, so the site shows what they print
# and draw. "force": every build runs them, nothing is cached between builds.
# A cell that raises fails the build (warnings are errors).
# One exception: examples/parcellation_v7.ipynb is committed with the outputs of a
# Neurosynth v7 run (not in the repository; no network here) and sets
# {"mystnb": {"execution_mode": "off"}} in its metadata, so it is shown as stored
# (tests/test_notebook_parcellation.py re-runs it on the sample and checks them).
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# api.md: one page per public name, written by autosummary into docs/generated
# (rebuilt from scratch at each build, so a renamed function leaves no page).
autosummary_generate = True
autosummary_imported_members = True
GENERATED = os.path.join(HERE, "generated")

# numpydoc docstrings through napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# "Attributes" sections as fields: as attribute entries they would clash with
# the dataclass fields autodoc documents itself (Preset, Release).
napoleon_use_ivar = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# The pages link to the notebooks as ``../examples/NAME.ipynb``, the path that
# works when the Markdown is read in the repository. On the site the same
# notebooks are the documents ``examples/NAME`` (through the symbolic link), so
# the links are handed to Sphinx as document names; a file path would be
# resolved through the link to outside the source directory.
_EXAMPLES_LINK = re.compile(r"\]\(\.\./examples/([^)#\s]+)\.ipynb\)")


def _site_links(app, docname: str, source: list[str]) -> None:
    """Point links at ``../examples/*.ipynb`` to the notebook documents of the site."""
    source[0] = _EXAMPLES_LINK.sub(r"](examples/\1)", source[0])


def _clear_generated(app) -> None:
    """Remove the autosummary pages of an earlier build before autosummary writes them."""
    shutil.rmtree(GENERATED, ignore_errors=True)


class XcoactHelp(Directive):
    """``xcoact-help [SUBCOMMAND]``: the command's ``--help``, as a literal block."""

    optional_arguments = 1

    def run(self):
        from xcoact.cli import main

        argv = [*self.arguments, "--help"]
        out = io.StringIO()
        width = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width: fix it for the page
        try:
            with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
                main(argv)
        finally:
            if width is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = width
        text = out.getvalue().rstrip()
        if not text.startswith("usage: xcoact"):
            raise self.error(f"xcoact {' '.join(argv)} printed no usage text: {text[:200]!r}")
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        command = nodes.paragraph()
        command += nodes.literal(text=f"$ xcoact {' '.join(argv)}")
        return [command, block]


def setup(app):
    app.connect("source-read", _site_links)
    # before autosummary's own builder-inited handler (priority 500)
    app.connect("builder-inited", _clear_generated, priority=400)
    app.add_directive("xcoact-help", XcoactHelp)
    return {"parallel_read_safe": True}


# The API reference lists functions, not Class.method paths, in the sidebar.
toc_object_entries_show_parents = "hide"

html_theme = "alabaster"  # ships with Sphinx: nothing more to install, nothing fetched
# Wider than alabaster's 940 px, for the pages' tables and code.
html_theme_options = {"page_width": "1240px", "sidebar_width": "250px", "body_max_width": "none"}
html_title = f"xcoact {release}"
html_static_path: list[str] = []
