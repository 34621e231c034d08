"""Summarise the last ``mutmut run`` (the second step of ``tox -e mutation``).

Prints, per mutated module, how many mutants were killed, timed out or
survived, and the mutation score ``(killed + timeout) / (mutants checked)``,
then every surviving mutant's name (``mutmut show NAME`` prints its diff).
docs/mutation.md records these numbers for each run.
"""

from __future__ import annotations

import collections
import datetime
import re
import subprocess
import sys

_LINE = re.compile(r"^\s+(?P<name>xcoact\.(?P<module>\w+)\.\S+): (?P<status>.+)$")


def summary(results_text: str) -> tuple[dict[str, collections.Counter], list[str]]:
    """Status counts per module and the survivors' names, from ``mutmut results --all true``."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    survivors = []
    for line in results_text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        counts[m["module"]][m["status"]] += 1
        if m["status"] == "survived":
            survivors.append(m["name"])
    return dict(counts), survivors


def main() -> int:
    proc = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                          capture_output=True, text=True, check=True)
    counts, survivors = summary(proc.stdout)
    print(f"mutmut results of {datetime.date.today().isoformat()}")
    print("| module | mutants | killed | timeout | survived | other | score |")
    print("|---|---|---|---|---|---|---|")
    for module, c in sorted(counts.items()):
        checked = sum(n for status, n in c.items() if status != "not checked")
        if not checked:
            continue
        dead = c["killed"] + c["timeout"]
        other = checked - dead - c["survived"]
        print(f"| xcoact/{module}.py | {checked} | {c['killed']} | {c['timeout']} | {c['survived']} | {other} "
              f"| {100 * dead / checked:.1f} % |")
    print(f"\n{len(survivors)} surviving mutant(s) (mutmut show NAME for the diff):")
    for name in survivors:
        print("   ", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
