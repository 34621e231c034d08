"""The README's Python snippets run verbatim, in order, on the bundled sample.

Every ```` ```python ```` block of README.md runs in one namespace (as the
README says: one session), in a temporary working directory, so the files
the snippets write land there.  A ``print(...)`` line that ends in a comment
states what it prints: ``print(x)  # 366 9`` must print the line ``366 9``.
Those lines are checked block by block, in order.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import warnings

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
README = os.path.join(ROOT, "README.md")

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: ``print(...)  # what it prints``: the comment is the printed line.
_STATED = re.compile(r"^\s*print\(.*\)\s+#\s(.+?)\s*$")


def _blocks() -> list[str]:
    with open(README, encoding="utf-8") as fh:
        return _BLOCK.findall(fh.read())


def _stated(block: str) -> list[str]:
    return [m.group(1) for line in block.splitlines() if (m := _STATED.match(line))]


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Run every block in order; return ``[(block, stdout, exception or None)]``."""
    work = tmp_path_factory.mktemp("readme")
    namespace: dict = {"__name__": "__main__"}
    results = []
    failed = None
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.chdir(work)
        warnings.simplefilter("ignore")
        for i, block in enumerate(_blocks()):
            out = io.StringIO()
            error = None
            if failed is None:
                with contextlib.redirect_stdout(out):
                    try:
                        exec(compile(block, f"README.md, python block {i}", "exec"), namespace)
                    except Exception as err:  # reported by the test
                        error = failed = err
            results.append((block, out.getvalue(), error))
    return results, work


def test_readme_has_snippets_that_state_their_output():
    blocks = _blocks()
    assert len(blocks) >= 6
    # the README states numbers; a change that drops them must be deliberate
    assert sum(len(_stated(b)) for b in blocks) >= 8
    # nothing the sample does not have: the old first snippet opened a missing "database.txt"
    first = blocks[0]
    assert 'read_database("database.txt")' not in first and "sample_database_path()" in first


def test_readme_snippets_run_and_print_what_they_state(readme_run):
    results, work = readme_run
    for i, (block, printed, error) in enumerate(results):
        assert error is None, f"README.md python block {i} raised {error!r}; it printed:\n{printed}\n{block}"
        lines = printed.splitlines()
        pos = 0
        for want in _stated(block):
            assert want in lines[pos:], (
                f"README.md python block {i}: expected the printed line {want!r} (in order); it printed:\n{printed}"
            )
            pos = lines.index(want, pos) + 1
    # what the snippets say they write is there
    for name in ("coactivation_from_coords_pA.nii.gz", "coactivation_from_image_pA.nii.gz", "maps.zarr", "report.html"):
        assert (work / name).exists(), f"{name} was not written"


def test_readme_benchmark_commands_run_from_the_installed_environment():
    """The README's benchmark commands, as written after the install (``.venv/bin/python``), start."""
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    commands = re.findall(r"`\.venv/bin/python (benchmarks/\w+\.py)`", text)
    assert sorted(set(commands)) == ["benchmarks/fwe.py", "benchmarks/run.py"], commands
    for script in sorted(set(commands)):
        # --help parses the command line without touching the release: it proves the script and its imports
        # are found by the installed interpreter (here the one running the tests) from the repository root
        proc = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage:")
