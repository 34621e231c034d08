"""Run every Python block of ``docs/*.md`` and check what it prints.

The site is built with ``nb_execution_mode = "off"`` (tests/test_docs.py), so
nothing else runs these blocks.  Here each page's ```` ```python ```` blocks
run in order in one namespace, as a reader pasting them into one session
would, with ``__name__ == "__main__"`` so that guarded blocks (a
LocalCluster) would run too, in a temporary working and temporary-file
directory.  One test per block: a block passes when it
raises nothing and every line :data:`EXPECTED` lists for it was printed.

Nothing is skipped by omission: :data:`PAGES` must name every page that has
Python blocks, :data:`NO_PYTHON` every page that has none, and every block
that prints must have an entry in :data:`EXPECTED`.  A block known to fail
is listed in :data:`KNOWN_FAILING` and marked ``xfail(strict=True)``, so it
turns red as soon as it passes (remove it from the list then).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import traceback
import warnings

import pytest

from xcoact.errors import DownloadError, ParameterError

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs")

#: Pages whose Python blocks run here, each in its own namespace.
PAGES = ["index", "semantics", "neurosynth", "nimare", "design", "interop", "sharing", "parcellation", "ale"]
#: Pages with no Python block (their code is shell commands or directives).
NO_PYTHON = ["api", "performance", "reliability", "mutation"]

#: Blocks that fail today: (page, block number) -> why.  Strict xfail: a fix makes the test fail until removed here.
KNOWN_FAILING: dict[tuple[str, int], str] = {}

#: Blocks that need what CI does not have (the network, data downloaded beforehand): (page, block) ->
#: (why, the exceptions they may raise without it).  Marked xfail(strict=False) for exactly those exceptions:
#: any other error still fails, and on a machine that has the data they run and pass.
NEEDS_OUTSIDE_DATA = {
    ("index", 5): ("a local mirror folder of the release (/data/mirror)", (ParameterError, DownloadError)),
    ("interop", 2): ("nilearn to download the Harvard-Oxford atlas", (OSError,)),
    ("interop", 4): ("NiMARE's example files in the working folder", (FileNotFoundError,)),
    ("interop", 5): ("a NeuroStore download", (DownloadError,)),
    ("interop", 6): ("a NiMARE download folder (~/.nimare) holding the release", (ParameterError, DownloadError)),
}

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _any(pattern: str) -> re.Pattern:
    """An expected line given as a regular expression (for printed temporary paths and the like)."""
    return re.compile(pattern)


#: (page, block number) -> the lines the block must print (a str: that exact line; a pattern: a full match).
EXPECTED: dict[tuple[str, int], list] = {
    # index.md
    ("index", 0): [
        "4 of 100 studies selected",
        "['pA', 'pAgF', 'pFgA', 'pA_given_pF=0.50', 'pFgA_given_pF=0.50', 'uniformity-test_z', "
        "'association-test_z', 'uniformity-test_z_FDR_0.01', 'association-test_z_FDR_0.01']",
        "9 NIfTI files written",
    ],
    ("index", 1): [
        "366 ROI voxels, 9 studies selected",
        "[ 9185551  9412517  9620699  9988836 10197540 10234026 10594068 10632617",
        " 10792453]",
    ],
    ("index", 2): [_any(r".*/coactivation_from_image_pA\.nii\.gz")],
    ("index", 3): ["['amygdala_roi' 'sgacc_mask' '0_20_28'] [9 1 4]"],
    ("index", 4): [
        "[[9 0 1]",
        " [0 1 0]",
        " [1 0 4]]",
        "[[ 1.    -0.032  0.114]",
        " [-0.032  1.    -0.021]",
        " [ 0.114 -0.021  1.   ]]",
    ],
    # semantics.md
    ("semantics", 1): ["[[ 1.039  1.458 -4.748]]", "[10.         12.17687559] [20.    25.883]"],
    ("semantics", 2): ["[[44, 63, 36], [44, 63, 36], [45, 73, 50]]"],
    ("semantics", 3): ["123 515 81"],
    ("semantics", 4): ["1"],
    ("semantics", 5): [
        "[True, False] [4, 0]",
        "True",
        "1 of 2 seeds give NaN maps: '20_-90_-30' (no study selected; largest overlap 15 of 318 voxels). "
        "Check their ROI or lower the threshold.",
    ],
    ("semantics", 6): ["hand-checked values agree"],
    ("semantics", 7): ["['0_0_0', '4_4_4'] [[2, 0], [0, 1]]"],
    ("semantics", 8): ["[2] [0, 1, 0]", "[2.0, 2.0, 6.0] [1, 2]", "[1]"],
    ("semantics", 9): ["[1, 2, 0] 1"],
    ("semantics", 10): ["1832 0.04"],
    # neurosynth.md
    ("neurosynth", 0): [
        _any(r".*amygdala_roi\.nii\.gz -> 9 studies"),
        '{"coordinates": [[0.0, 20.0, 28.0]], "r": 10} -> 4 studies',
        '{"coordinates": [[0.0, 20.0, 28.0], [-40.0, 20.0, 28.0]], "r": 10} -> 6 studies',
        "['coactivation_from_coords_association-test_z.nii.gz', "
        "'coactivation_from_coords_association-test_z_FDR_0.01.nii.gz', 'coactivation_from_coords_pA.nii.gz']",
    ],
    ("neurosynth", 1): ["['image', 'dacc', 'two_regions'] [9, 4, 6]"],
    ("neurosynth", 2): [
        "distance: at least one reported peak within 10 mm (inclusive) of a seed coordinate (Neurosynth "
        "0.3.8 get_studies(peaks=...), NiMARE get_studies_by_coordinate) 4",
        "in common: 3",
    ],
    # nimare.md
    ("nimare", 0): ["coverage > 0: 12 studies", "a focus in the ROI: 6 studies", "in both: 6"],
    ("nimare", 1): ["focus 8 ['z_desc-uniformity', 'z_desc-association']"],
    ("nimare", 2): [
        _any(
            r".*database\.txt: 1 stud\(y/ies\) list peaks in more than one space under preset='nimare': "
            r"1 \('MNI': 1 peak, 'TAL': 1 peak\)"
        )
    ],
    # design.md
    ("design", 0): ["(1, 1, 1, 1)", "True", "False"],
    ("design", 1): ["4 Array", "True"],
    ("design", 2): ["True"],
    # sharing.md
    ("sharing", 1): [_any(r"Z 4 \[9106283, 9620699, 10349031\] [0-9a-f]{12}")],
    ("sharing", 2): ["dacc_stat-z_desc-associationFDR001_statmap.nii.gz"],
    ("sharing", 3): ["4 MB"],
    ("sharing", 4): ["INSTALLED VERSIONS", _any(r"xcoact: +\S+")],
    ("sharing", 6): ["[5 rows x 10 columns]"],
    # parcellation.md
    ("parcellation", 0): [
        "366 ROI voxels, 5 filter sizes, 68 pooled studies",
        "suggested K: 3",
        "3 [1.0, 3.0, 2.0, 1.0]",
    ],
    ("parcellation", 1): ["ale ALEKernel sample_size=20 41"],
    ("parcellation", 2): ["['cluster_1', 'cluster_2'] True ['r', 'n_studies']"],
    # ale.md
    ("ale", 0): ["float32 ale 9.24"],
    ("ale", 1): [
        "8 of 100 studies selected",
        "['stat', 'p', 'z_map']",
        "['amygdala_ale_p.nii.gz', 'amygdala_ale_stat.nii.gz', 'amygdala_ale_z.nii.gz']",
    ],
    ("ale", 2): ["100 0.0722"],
    ("ale", 3): ["True True 8 2"],
}


def _blocks(page: str) -> list[str]:
    with open(os.path.join(DOCS, f"{page}.md"), encoding="utf-8") as f:
        return _BLOCK.findall(f.read())


def _all_blocks() -> list[tuple[str, int]]:
    return [(page, i) for page in PAGES for i in range(len(_blocks(page)))]


class _Page:
    """A page's blocks run in order in one namespace; each block's stdout, or its exception, is kept."""

    def __init__(self, page: str, workdir: str):
        self.page = page
        self.blocks = _blocks(page)
        self.workdir = workdir
        self.namespace = {"__name__": "__main__"}
        self.results: list[tuple[str, BaseException | None]] = []

    def run_through(self, n: int) -> tuple[str, BaseException | None]:
        """Run blocks up to number ``n`` (those not yet run); return block n's (stdout, exception)."""
        while len(self.results) <= n:
            i = len(self.results)
            out = io.StringIO()
            error = None
            with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(), contextlib.redirect_stdout(out):
                # the blocks' tempfile.mkdtemp() and relative paths land in the test's own directory
                mp.setattr(tempfile, "tempdir", os.path.join(self.workdir, "tmp"))
                mp.chdir(self.workdir)
                try:
                    exec(compile(self.blocks[i], f"docs/{self.page}.md, python block {i}", "exec"), self.namespace)
                except Exception as err:
                    error = err
            self.results.append((out.getvalue(), error))
        return self.results[n]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """``pages(name) -> _Page``, one per page for the whole module."""
    cache: dict[str, _Page] = {}

    def get(page: str) -> _Page:
        if page not in cache:
            work = tmp_path_factory.mktemp(f"docs_{page}")
            (work / "tmp").mkdir()
            cache[page] = _Page(page, str(work))
        return cache[page]

    return get


def test_every_page_is_listed():
    on_disk = sorted(f[: -len(".md")] for f in os.listdir(DOCS) if f.endswith(".md"))
    assert sorted(PAGES + NO_PYTHON) == on_disk, "list each docs/*.md page in PAGES or NO_PYTHON"
    with_code = {page for page in on_disk if _blocks(page)}
    assert with_code == set(PAGES), f"pages with Python blocks {sorted(with_code)} != PAGES"
    # issue 17 counted 61 blocks; 34 of them were api.md's, which is now generated from the docstrings
    # (the docstrings' examples run as doctests: pytest --doctest-modules)
    assert len(_all_blocks()) >= 40


def test_every_printing_block_has_its_output_listed():
    missing = [key for key in _all_blocks() if "print(" in _blocks(key[0])[key[1]] and key not in EXPECTED]
    assert not missing, f"blocks that print but whose output is not checked: {missing}"
    stale = sorted(set(EXPECTED) - set(_all_blocks()))
    assert not stale, f"EXPECTED lists blocks that do not exist: {stale}"
    assert set(KNOWN_FAILING) <= set(_all_blocks()) and set(NEEDS_OUTSIDE_DATA) <= set(_all_blocks())


def _params():
    out = []
    for page, i in _all_blocks():
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_FAILING[page, i])] if (page, i) in KNOWN_FAILING else []
        if (page, i) in NEEDS_OUTSIDE_DATA:
            why, errors = NEEDS_OUTSIDE_DATA[page, i]
            marks.append(pytest.mark.xfail(strict=False, raises=errors, reason=f"needs {why}"))
        out.append(pytest.param(page, i, id=f"{page}-{i}", marks=marks))
    return out


@pytest.mark.parametrize(("page", "block"), _params())
def test_block_runs_and_prints_what_the_page_says(pages, page, block):
    printed, error = pages(page).run_through(block)
    if error is not None:
        if (page, block) in NEEDS_OUTSIDE_DATA and isinstance(error, NEEDS_OUTSIDE_DATA[page, block][1]):
            raise error  # the expected failure without that data (any other error fails below)
        where = "".join(traceback.format_exception(error)[-6:])
        pytest.fail(f"docs/{page}.md python block {block} raised:\n{where}\nit printed:\n{printed}")
    lines = printed.splitlines()
    for want in EXPECTED.get((page, block), []):
        if isinstance(want, re.Pattern):
            ok = any(want.fullmatch(line) for line in lines)
        else:
            ok = want in lines
        assert ok, f"docs/{page}.md python block {block}: expected the line {want!r}; it printed:\n{printed}"
