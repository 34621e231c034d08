"""Summarise the last ``mutmut run`` (the second step of ``tox -e mutation``) and record it in docs/mutation.md.

Prints, per mutated module, how many mutants were killed, timed out or
survived, how many survivors docs/mutation.md explains as equivalent, and the
mutation score ``(killed + timeout) / (checked - equivalent)``, then every
survivor docs/mutation.md does not explain (``mutmut show NAME`` prints its
diff).  With ``--write docs/mutation.md`` the same text, with the date, the
commit and the command, replaces the part of that page between its
``mutation-report`` markers.

A survivor is *explained* when its full name (``xcoact.stats.neurosynth.x_p_to_z__mutmut_19``)
appears in backticks in a table row of docs/mutation.md outside the markers:
the verdicts are written there by hand, one line each, and a renumbered or
new mutant shows up here as unexplained until someone looks at it.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import subprocess
import sys

# the module is the dotted path before the mutated function (``x_name`` or ``xǁClassǁmethod``): ``stats.neurosynth``
_LINE = re.compile(r"^\s+(?P<name>xcoact\.(?P<module>[\w.]+?)\.x[_ǁ]\S+): (?P<status>.+)$")
_NAME = re.compile(r"`(xcoact\.[\w.]+?\.x[_ǁ]\S+?__mutmut_\d+)`")
BEGIN = "<!-- mutation-report:begin (written by tests/mutation_report.py --write) -->"
END = "<!-- mutation-report:end -->"


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


def explained(page: str) -> set[str]:
    """Mutant names given a verdict in a table row of ``page``, outside the generated part."""
    if BEGIN in page and END in page:
        page = page[: page.index(BEGIN)] + page[page.index(END) + len(END) :]
    return {name for line in page.splitlines() if line.startswith("|") for name in _NAME.findall(line)}


def report(counts: dict[str, collections.Counter], survivors: list[str], equivalent: set[str]) -> str:
    """The score table and the unexplained survivors, as Markdown."""
    lines = [
        "| module | mutants | killed | timeout | survived | of which equivalent | no tests | not checked | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for module, c in sorted(counts.items()):
        total = sum(c.values())
        checked = total - c["not checked"]
        dead = c["killed"] + c["timeout"]
        eq = sum(1 for name in survivors if name.startswith(f"xcoact.{module}.") and name in equivalent)
        denominator = checked - eq
        score = f"{100 * dead / denominator:.1f} %" if denominator else "-"
        lines.append(
            f"| `xcoact/{module.replace('.', '/')}.py` | {total} | {c['killed']} | {c['timeout']} | {c['survived']} | {eq} "
            f"| {c['no tests']} | {c['not checked']} | {score} |"
        )
    other = {s for c in counts.values() for s in c} - {"killed", "timeout", "survived", "no tests", "not checked"}
    if other:
        lines.append("")
        lines.append(
            "Other statuses: " + ", ".join(f"{s} {sum(c[s] for c in counts.values())}" for s in sorted(other)) + "."
        )
    unexplained = [name for name in survivors if name not in equivalent]
    lines.append("")
    lines.append('Score: (killed + timeout) / (checked - equivalent); a mutant is checked unless "not checked".')
    lines.append("")
    if unexplained:
        lines.append(f"{len(unexplained)} survivor(s) without a verdict below (`mutmut show NAME` for the diff):")
        lines.append("")
        lines.extend(f"- `{name}`" for name in unexplained)
    else:
        lines.append("Every survivor has a verdict below.")
    return "\n".join(lines)


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "xcoact", "tests", "pyproject.toml")
    return head + (" with uncommitted changes to xcoact/, tests/ or pyproject.toml" if dirty else "")


def write(path: str, text: str) -> None:
    """Replace the generated part of ``path`` (between the markers) with ``text``, atomically."""
    with open(path, encoding="utf-8") as fh:
        page = fh.read()
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{path}: no '{BEGIN}' ... '{END}' markers to write the report between")
    new = page[: page.index(BEGIN) + len(BEGIN)] + "\n\n" + text + "\n\n" + page[page.index(END) :]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(new)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="docs/mutation.md", help="the page whose tables hold the verdicts")
    parser.add_argument("--write", action="store_true", help="also write the report into the page's marked part")
    parser.add_argument("--command", default="mutmut run", help="the command the results came from (recorded)")
    args = parser.parse_args(argv)
    proc = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    counts, survivors = summary(proc.stdout)
    with open(args.docs, encoding="utf-8") as fh:
        equivalent = explained(fh.read())
    header = (
        f"`{args.command}` then `python tests/mutation_report.py`, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {_commit()}:"
    )
    text = header + "\n\n" + report(counts, survivors, equivalent)
    # the survivors of tests/mutmut_fast.py stay "not checked" until `mutmut run` checks them against the whole subset
    waiting = [
        m["name"]
        for m in map(_LINE.match, proc.stdout.splitlines())
        if m is not None and m["status"] == "not checked" and m["name"] in equivalent
    ]
    if waiting:
        text += (
            f"\n\n{len(waiting)} mutant(s) not checked by `mutmut run` yet have a verdict below (they survived "
            "tests/mutmut_fast.py's first pass): " + ", ".join(f"`{name}`" for name in waiting) + "."
        )
    print(text)
    if args.write:
        write(args.docs, text)
        print(f"\n(written to {args.docs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
