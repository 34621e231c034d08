"""A fast first pass before ``mutmut run`` on a busy machine: the cheap kills, in one process.

``mutmut run`` forks a child per mutant, and each child collects every test
file whose tests reach the mutated function: for ``stats.pair_maps`` or
``select.select_studies`` that is most of the test selection, tens of
seconds of CPU per mutant before its first (fast) test fails.  This script
collects a few targeted test files once and runs, in that one pytest session,
each mutant not yet checked against their tests in order, up to the first
failure (as ``pytest -x``), and records the mutants
they kill as killed in mutmut's own cache (``mutants/xcoact/*.meta``, exit
code 1, as ``mutmut run`` records a kill).  Every other mutant is left "not
checked": ``mutmut run`` then checks it against the whole selection.  A kill
here is a kill by a test of that selection (the files given must be in
``pytest_add_cli_args_test_selection``), so the cache ends up where
``mutmut run`` alone would have put it, minus the forks.

Usage, from the checkout root, after a ``mutmut run`` has created ``mutants/``
(stop any ``mutmut run`` first: both write the cache)::

    nice -n 15 python tests/mutmut_fast.py "xcoact.stats.neurosynth*" -- tests/test_mutants_stats.py tests/test_mutants.py
    nice -n 15 mutmut run --max-children 2 "xcoact.stats.neurosynth*"   # the survivors of the pass, fully

(``mutmut run`` with globs re-checks every matching mutant; give it the names
the pass printed as surviving to check only those.)
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import sys
import time


def _pending(patterns: list[str], recheck: bool) -> list[tuple[str, str]]:
    out = []
    for root, _, files in os.walk(os.path.join("mutants", "xcoact")):
        for name in sorted(files):
            if not name.endswith(".py.meta"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as fh:
                meta = json.load(fh)
            for key, code in meta["exit_code_by_key"].items():
                if (code is None or recheck) and any(fnmatch.fnmatch(key, p) for p in patterns):
                    out.append((path, key))
    return out


def _record(path: str, key: str, code: int) -> None:
    with open(path, encoding="utf-8") as fh:
        meta = json.load(fh)
    meta["exit_code_by_key"][key] = code
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=4)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__)
        return 2
    split = argv.index("--")
    patterns, test_files = argv[:split], argv[split + 1 :]
    recheck = "--recheck" in patterns
    patterns = [p for p in patterns if p != "--recheck"]
    if not os.path.isdir("mutants"):
        print("no mutants/ here: run `mutmut run` once first (it generates the mutants)")
        return 2
    # the tests as they are now (mutmut copies them at the start of each run), run from mutants/ as mutmut does
    shutil.copytree("tests", os.path.join("mutants", "tests"), dirs_exist_ok=True)
    pending = _pending(patterns, recheck)
    os.chdir("mutants")
    sys.path.insert(0, os.getcwd())
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.getcwd())]
    import pytest
    from _pytest.runner import runtestprotocol

    survivors: list[str] = []

    class Loop:
        """One collection, then every mutant against the collected tests in order, stopping at a first failure."""

        def __init__(self) -> None:
            self.clean = True

        @staticmethod
        def fails(items) -> bool:
            for item in items:
                if any(report.failed for report in runtestprotocol(item, nextitem=None, log=False)):
                    return True
            return False

        def pytest_runtestloop(self, session):
            os.environ["MUTANT_UNDER_TEST"] = ""
            if self.fails(session.items):
                self.clean = False
                return True
            start = time.time()
            for n, (meta, key) in enumerate(pending, 1):
                os.environ["MUTANT_UNDER_TEST"] = key
                killed = self.fails(session.items)
                os.environ["MUTANT_UNDER_TEST"] = ""
                if killed:
                    _record(os.path.join("..", meta), key, 1)
                else:
                    survivors.append(key)
                print(
                    f"[{n}/{len(pending)}, {time.time() - start:.0f} s] {key}: {'killed' if killed else 'survived'}",
                    flush=True,
                )
            return True

    loop = Loop()
    pytest.main(
        [*test_files, "-q", "--no-header", "-p", "no:cacheprovider", "-p", "no:randomly", "--timeout=120"],
        plugins=[loop],
    )
    if not loop.clean:
        print("the test files fail without a mutant: fix them first")
        return 1
    print(f"\n{len(pending) - len(survivors)} killed, {len(survivors)} left for `mutmut run`:")
    print(" ".join(survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
