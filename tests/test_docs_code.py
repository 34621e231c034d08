"""Run every Python block of ``docs/*.md`` and check what it prints.

The site is built with ``nb_execution_mode = "off"`` (tests/test_docs.py), so
nothing else runs these blocks.  Here each page's ```` ```python ```` blocks
run in order in one namespace, as a reader pasting them into one session
would (api.md says so), with ``__name__ == "__main__"`` so that guarded
blocks (the LocalCluster of api.md) run too, in a temporary working and
temporary-file directory.  One test per block: a block passes when it
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
PAGES = ["index", "api", "semantics", "neurosynth", "nimare", "design", "interop", "sharing", "parcellation", "ale"]
#: Pages with no Python block (their code is shell commands or directives).
NO_PYTHON = ["performance", "reference", "reliability", "mutation"]

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
    ("index", 0): ["4 of 100 studies selected",
                   "['pA', 'pAgF', 'pFgA', 'pA_given_pF=0.50', 'pFgA_given_pF=0.50', 'uniformity-test_z', "
                   "'association-test_z', 'uniformity-test_z_FDR_0.01', 'association-test_z_FDR_0.01']",
                   "9 NIfTI files written"],
    ("index", 1): ["366 ROI voxels, 9 studies selected",
                   "[ 9185551  9412517  9620699  9988836 10197540 10234026 10594068 10632617",
                   " 10792453]"],
    ("index", 2): [_any(r".*/coactivation_from_image_pA\.nii\.gz")],
    ("index", 3): ["['amygdala_roi' 'sgacc_mask' '0_20_28'] [9 1 4]"],
    ("index", 4): ["[[9 0 1]", " [0 1 0]", " [1 0 4]]",
                   "[[ 1.    -0.032  0.114]", " [-0.032  1.    -0.021]", " [ 0.114 -0.021  1.   ]]"],
    # api.md
    ("api", 1): ["neurosynth 100 2695", "['SpaceWarning']"],
    ("api", 2): ["7\t10.0\t20.0\t30.0\tTAL", "True [7, 7, 8]", "['mydb_coordinates.tsv.gz', 'mydb_metadata.tsv.gz']",
                 "['7-1', '7-1', '8-1']"],
    ("api", 3): ["{'study': 100, 'x': 91, 'y': 109, 'z': 91} 1 blocks", "12 studies active in the box"],
    ("api", 4): ["<xcoact.Grid MNI152 2mm shape=(91, 109, 91) voxel=2x2x2 mm, 228453 in-mask voxels>",
                 "[[45, 73, 50], [44, 63, 36]]"],
    ("api", 5): ["1030", "True"],
    ("api", 6): ["4 proportion [ 9106283  9620699 10349031 10531451]", "Array", "count 4",
                 "no study selected for seed [[0.0, 20.0, 28.0]] (r=10 mm): the largest overlap any of the 100 studies "
                 "reached is 90 of 515 ROI voxels (0.1748), and threshold=0.5 needs more than that proportion. "
                 "Lower the threshold below 0.174757 or use a larger ROI."],
    ("api", 7): ["['amygdala_roi', 'sgacc_mask', '0_20_28']", "[366, 1142, 515] [9, 1, 4]",
                 "('seed', 'x', 'y', 'z') (1, 91, 109, 91)", "['0_20_28', '-40_20_28'] [4, 12]",
                 "['dACC', 'amygdala'] float32",
                 _any(r"\['amygdala', 'sgACC'\] \['.*/atlas\.nii\.gz label 1', '.*/atlas\.nii\.gz label 2'\]"),
                 "[True, False] True",
                 "1 of 2 seeds give NaN maps: '60_-100_60' (no voxel in the brain mask). Check their ROI or lower the "
                 "threshold."],
    ("api", 8): ["9 coactivation_from_image_pA.nii.gz"],
    ("api", 9): ["[9, 1, 4] [[9, 0, 1], [0, 1, 0], [1, 0, 4]]", "[1.0, -0.0316, 0.1141]", "True"],
    ("api", 10): ["['pA_given_pF=0.30', 'pFgA_given_pF=0.30', 'uniformity-test_z', 'association-test_z', "
                  "'uniformity-test_z_FDR_0.05', 'association-test_z_FDR_0.05']"],
    ("api", 11): ["['dacc_pFgA.nii.gz', 'dacc_association-test_z.nii.gz']", "9 files written when the Delayed ran",
                  "['spheres_0_20_28_pFgA.nii.gz', 'spheres_-40_20_28_pFgA.nii.gz']"],
    ("api", 12): ["float32 True ['0_20_28', '-40_20_28']"],
    ("api", 13): ["float32 (1, 91, 109, 91) 2"],
    ("api", 14): ["11 outputs placed together"],
    ("api", 16): ["synthetic(n_studies=1000, seed=1) 1000 True", "synthetic(n_studies=10, seed=1, mean_peaks=5, jitter=4)",
                  "True"],
    ("api", 17): ["(3, 91, 109, 91)"],
    ("api", 18): ["True", "cluster_batch.zarr"],
    ("api", 19): [_any(r"database: .*neurosynth_sample_database\.txt \(bundled sample\)"),
                  "studies in the database: 100 (2695 peaks, kernel r = 6 mm, preset neurosynth)",
                  "seeds: 2 (2 with maps)", "  amygdala: ROI voxels 366, studies selected 9",
                  "  sgACC: ROI voxels 1142, studies selected 1", "files written (19):", "exit status 0"],
    ("api", 20): ["threshold: FDR q = 0.01, shown: every non-zero voxel; studies selected: overlap > 0.1 of the ROI",
                  "['seed: amygdala_roi', 'seed: sgacc_mask', 'seed: 0_20_28']"],
    ("api", 21): ["   sign  size_voxels  peak_x  peak_y  peak_z  peak_value",
                  "0     1          625    -6.0    18.0    34.0    7.395833",
                  "1     1          465   -58.0     2.0     4.0    6.998542",
                  "2     1          440   -16.0     6.0     2.0    6.998542", "True"],
    ("api", 22): ["1 embedded figure; True"],
    ("api", 23): ["{'peak': 2695, 'study': 100, 'x': 91, 'y': 109, 'z': 91}", "4",
                  "['line', 'peak_x', 'peak_y', 'peak_z', 'space', 'study_id']"],
    ("api", 24): ["{'study': 100, 'term': 3} ['emotion', 'working memory', 'pain']"],
    ("api", 25): ["meta-analysis 10 90"],
    ("api", 26): ["7 [10601675]"],
    ("api", 27): [_any(r"working memory\s+0\.400\s+7"), _any(r"pain\s+-0\.055\s+1"), _any(r"emotion\s+-0\.075\s+2"),
                  "3"],
    ("api", 28): [_any(r"working memory\s+1\s+0\.28\s+0\.255402"), _any(r"emotion\s+0\s+0\.08\s+1\.000000"),
                  _any(r"pain\s+0\s+0\.04\s+1\.000000")],
    ("api", 29): ["focus: at least one reported peak inside the 366-voxel ROI (NiMARE get_studies_by_mask) 6",
                  "10.0 7.483314773547883", "12 12"],
    ("api", 30): ["7 7 11", "True"],
    ("api", 31): ["200 0.005", "True"],
    ("api", 32): ["ParameterError - threshold=1.5 is outside [0, 1]; a float threshold is the proportion of ROI voxels "
                  "a study must cover (e.g. 0.1). For an absolute voxel count pass an int (e.g. threshold=5).",
                  "ParameterError - q=0 is not valid; expected a number strictly between 0 and 1 (e.g. q=0.01).",
                  "DatabaseFileError True"],
    ("api", 33): ["refused: box; they contribute only the part of their sphere inside it (as in Neurosynth)."],
    # semantics.md
    ("semantics", 1): ["[[ 1.039  1.458 -4.748]]", "[10.         12.17687559] [20.    25.883]"],
    ("semantics", 2): ["[[44, 63, 36], [44, 63, 36], [45, 73, 50]]"],
    ("semantics", 3): ["123 515 81"],
    ("semantics", 4): ["1"],
    ("semantics", 5): ["[True, False] [4, 0]", "True",
                       "1 of 2 seeds give NaN maps: '20_-90_-30' (no study selected; largest overlap 15 of 318 voxels). "
                       "Check their ROI or lower the threshold."],
    ("semantics", 6): ["hand-checked values agree"],
    ("semantics", 7): ["['0_0_0', '4_4_4'] [[2, 0], [0, 1]]"],
    ("semantics", 8): ["[2] [0, 1, 0]", "[2.0, 2.0, 6.0] [1, 2]", "[1]"],
    ("semantics", 9): ["[1, 2, 0] 1"],
    ("semantics", 10): ["1832 0.04"],
    # neurosynth.md
    ("neurosynth", 0): [_any(r".*amygdala_roi\.nii\.gz -> 9 studies"),
                        '{"coordinates": [[0.0, 20.0, 28.0]], "r": 10} -> 4 studies',
                        '{"coordinates": [[0.0, 20.0, 28.0], [-40.0, 20.0, 28.0]], "r": 10} -> 6 studies',
                        "['coactivation_from_coords_association-test_z.nii.gz', "
                        "'coactivation_from_coords_association-test_z_FDR_0.01.nii.gz', 'coactivation_from_coords_pA.nii.gz']"],
    ("neurosynth", 1): ["['image', 'dacc', 'two_regions'] [9, 4, 6]"],
    ("neurosynth", 2): ["distance: at least one reported peak within 10 mm (inclusive) of a seed coordinate (Neurosynth "
                        "0.3.8 get_studies(peaks=...), NiMARE get_studies_by_coordinate) 4", "in common: 3"],
    # nimare.md
    ("nimare", 0): ["coverage > 0: 12 studies", "a focus in the ROI: 6 studies", "in both: 6"],
    ("nimare", 1): ["focus 8 ['z_desc-uniformity', 'z_desc-association']"],
    ("nimare", 2): [_any(r".*database\.txt: 1 stud\(y/ies\) list peaks in more than one space under preset='nimare': "
                         r"1 \('MNI': 1 peak, 'TAL': 1 peak\)")],
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
    ("parcellation", 0): ["366 ROI voxels, 5 filter sizes, 68 pooled studies", "suggested K: 3", "3 [2.0, 3.0, 2.0, 1.0]"],
    ("parcellation", 1): ["['cluster_1', 'cluster_2'] True ['r', 'n_studies']"],
    # ale.md
    ("ale", 0): ["float32 ale 9.24"],
    ("ale", 1): ["8 of 100 studies selected", "['stat', 'p', 'z_map']",
                 "['amygdala_ale_p.nii.gz', 'amygdala_ale_stat.nii.gz', 'amygdala_ale_z.nii.gz']"],
    ("ale", 2): ["100 0.0722"],
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
                except Exception as err:  # noqa: BLE001 - reported by the block's own test
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
    assert len(_all_blocks()) >= 61  # the 61 blocks issue 17 counted


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
