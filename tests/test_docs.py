"""Build the documentation site exactly as ``tox -e docs`` does, warnings as errors.

The build runs ``sphinx-build -W --keep-going -b html`` on ``docs/`` in a
subprocess, writing into a temporary directory, and then looks at what came
out: every page and every example notebook is there, the API reference was
really generated from the docstrings, the notebooks were executed at build
time and are shown with their outputs, and the Markdown's links to the
notebooks point at the site's own notebook pages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# The build executes the example notebooks (about 1 min on an idle 2-core machine, 3-4 min on a busy one).
pytestmark = pytest.mark.timeout(900)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
DOCS = os.path.join(ROOT, "docs")
EXAMPLES = os.path.join(ROOT, "examples")

#: The hand-written pages (docs/NAME.md) the site must contain.
PAGES = [
    "index",
    "api",
    "sharing",
    "semantics",
    "neurosynth",
    "nimare",
    "ale",
    "interop",
    "parcellation",
    "design",
    "performance",
    "reliability",
    "mutation",
]
#: The public API the generated reference must document (anchor ids Sphinx gives them).
DOCUMENTED = [
    "xcoact.read_database",
    "xcoact.write_database",
    "xcoact.activations",
    "xcoact.seed",
    "xcoact.seed_batch",
    "xcoact.coactivation",
    "xcoact.matrix",
    "xcoact.roi_mask",
    "xcoact.to_nifti",
    "xcoact.to_netcdf",
    "xcoact.to_zarr",
    "xcoact.Grid",
    "xcoact.accessors.CoactDataArrayAccessor.seed",
    "xcoact.accessors.CoactDatasetAccessor.to_nifti",
    "xcoact.writers.write_atomically",
    "xcoact.datasets.sample_database_path",
    "xcoact.datasets.synthetic",
    "xcoact.errors.XcoactError",
    "xcoact.errors.XcoactWarning",
]


def _notebooks() -> list[str]:
    return sorted(f[: -len(".ipynb")] for f in os.listdir(EXAMPLES) if f.endswith(".ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site once; return the HTML output directory."""
    out = tmp_path_factory.mktemp("docs") / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", DOCS, str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"sphinx-build failed (exit {proc.returncode}); warnings are errors.\n"
        f"stderr:\n{proc.stderr[-6000:]}\nstdout:\n{proc.stdout[-2000:]}"
    )
    return out


def _read(site, page: str) -> str:
    path = site / f"{page}.html"
    assert path.is_file(), f"{page}.html is missing from the built site"
    return path.read_text(encoding="utf-8")


def test_examples_link_is_present():
    # The site reads the notebooks through docs/examples -> ../examples.
    link = os.path.join(DOCS, "examples")
    assert os.path.isdir(link), "docs/examples (a link to ../examples) is missing"
    assert os.path.samefile(link, EXAMPLES)


@pytest.mark.parametrize("page", PAGES)
def test_page_built(site, page):
    html = _read(site, page)
    assert "<h1>" in html, f"{page}.html has no title"


def test_every_notebook_is_a_page_with_its_outputs(site):
    names = _notebooks()
    assert {"seed_coactivation", "many_seeds_and_matrix", "distributed"} <= set(names)
    index = _read(site, "index")
    for name in names:
        html = _read(site, f"examples/{name}")
        assert 'class="cell_input' in html, f"examples/{name}.html shows no code cell"
        # Committed without outputs (tests/test_notebook.py), executed at build time.
        assert 'class="cell_output' in html, f"examples/{name}.html shows no output: was it executed?"
        assert "Traceback" not in html and 'class="output traceback' not in html, f"examples/{name}.html shows an error"
        assert f'href="examples/{name}.html"' in index, f"index.html does not link to examples/{name}.html"


def test_reference_generated_from_docstrings(site):
    api = _read(site, "api")
    ids = set()
    for name in DOCUMENTED:
        assert f'href="generated/{name}.html' in api, f"api.html does not link to the page of {name}"
        html = _read(site, f"generated/{name}")
        ids |= set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', html))
    missing = [name for name in DOCUMENTED if name not in ids]
    assert not missing, f"the generated pages do not document {missing}"
    html = _read(site, "generated/xcoact.seed")
    # numpydoc sections were turned into fields, not left as text.
    assert "Parameters" in html and "Returns" in html
    assert ":param" not in html and ".. py:function::" not in html


def test_markdown_cross_references_resolve(site):
    index = _read(site, "index")
    for page in ("api", "semantics", "neurosynth", "design", "performance"):
        assert f'href="{page}.html"' in index, f"index.html does not link to {page}.html"
    # A heading anchor used across pages exists on its target page.
    assert 'href="api.html#command-line"' in index
    assert 'id="command-line"' in _read(site, "api")
