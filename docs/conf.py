"""Sphinx configuration of the xcoact documentation site.

The pages stay Markdown (read by MyST through myst-nb), the API reference is
generated from the numpydoc docstrings, and the example notebooks are shown
as committed, without outputs: nothing is executed at build time and nothing
is fetched, so the site builds offline. Build it with ``tox -e docs`` or::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import re
import sys

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
    "sphinx.ext.napoleon",
]

root_doc = "index"
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
# docs/examples is a symbolic link to ../examples, so the notebooks the test
# suite executes are the ones the site shows.
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# MyST: GitHub-style anchors for headings, so the pages' links such as
# ``api.md#seed-batches-seed_batch`` resolve both on GitHub and here.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# Notebooks: rendered as committed (the tests execute them, the build does not).
nb_execution_mode = "off"
nb_merge_streams = True

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


def setup(app):
    app.connect("source-read", _site_links)
    return {"parallel_read_safe": True}


# The API reference lists functions, not Class.method paths, in the sidebar.
toc_object_entries_show_parents = "hide"

html_theme = "alabaster"  # ships with Sphinx: nothing more to install, nothing fetched
# Wider than alabaster's 940 px, for the pages' tables and code.
html_theme_options = {"page_width": "1240px", "sidebar_width": "250px", "body_max_width": "none"}
html_title = f"xcoact {release}"
html_static_path: list[str] = []
