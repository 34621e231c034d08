"""tests/mutation_report.py: the score `tox -e mutation` writes into docs/mutation.md."""

from __future__ import annotations

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mutation_report.py")
_spec = importlib.util.spec_from_file_location("mutation_report", _PATH)
mutation_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutation_report)

RESULTS = """\
    xcoact.stats.neurosynth.x_p_to_z__mutmut_1: killed
    xcoact.stats.neurosynth.x_p_to_z__mutmut_2: survived
    xcoact.stats.neurosynth.x_p_to_z__mutmut_3: survived
    xcoact.stats.neurosynth.x_fdr_threshold__mutmut_1: timeout
    xcoact.stats.neurosynth.x_fdr_threshold__mutmut_2: killed
    xcoact.select.xǁSelectionRuleǁapply__mutmut_4: survived
    xcoact.select.x_peak_voxels__mutmut_1: no tests
    xcoact.counts.x_grouped_counts__mutmut_1: not checked
"""

PAGE = f"""\
# Mutation testing

{mutation_report.BEGIN}

old text naming `xcoact.stats.neurosynth.x_p_to_z__mutmut_3` (generated, not a verdict)

{mutation_report.END}

| mutant | the change | why |
|---|---|---|
| `xcoact.stats.neurosynth.x_p_to_z__mutmut_2`; `xcoact.select.xǁSelectionRuleǁapply__mutmut_4` | a change | a reason |

Prose naming `xcoact.stats.neurosynth.x_p_to_z__mutmut_3` is not a verdict.
"""


def test_summary_counts_each_status_per_module():
    counts, survivors = mutation_report.summary(RESULTS)
    assert dict(counts["stats.neurosynth"]) == {"killed": 2, "survived": 2, "timeout": 1}
    assert dict(counts["select"]) == {"survived": 1, "no tests": 1}
    assert dict(counts["counts"]) == {"not checked": 1}
    assert survivors == [
        "xcoact.stats.neurosynth.x_p_to_z__mutmut_2",
        "xcoact.stats.neurosynth.x_p_to_z__mutmut_3",
        "xcoact.select.xǁSelectionRuleǁapply__mutmut_4",
    ]


def test_verdicts_are_names_in_table_rows_outside_the_generated_part():
    assert mutation_report.explained(PAGE) == {
        "xcoact.stats.neurosynth.x_p_to_z__mutmut_2",
        "xcoact.select.xǁSelectionRuleǁapply__mutmut_4",
    }


def test_report_scores_and_lists_the_survivors_without_a_verdict():
    counts, survivors = mutation_report.summary(RESULTS)
    text = mutation_report.report(counts, survivors, mutation_report.explained(PAGE))
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in text.splitlines()
        if line.startswith("| `")
    }
    # stats: 5 checked, 1 equivalent, 3 dead -> 3 / 4; select: 2 checked, 1 equivalent, 0 dead -> 0 / 1
    assert rows["`xcoact/stats/neurosynth.py`"] == ["5", "2", "1", "2", "1", "0", "0", "75.0 %"]
    assert rows["`xcoact/select.py`"] == ["2", "0", "0", "1", "1", "1", "0", "0.0 %"]
    assert rows["`xcoact/counts.py`"] == ["1", "0", "0", "0", "0", "0", "1", "-"]
    assert text.endswith(
        "1 survivor(s) without a verdict below (`mutmut show NAME` for the diff):\n\n"
        "- `xcoact.stats.neurosynth.x_p_to_z__mutmut_3`"
    )
    assert mutation_report.report(counts, survivors[:1], {survivors[0]}).endswith("Every survivor has a verdict below.")


def test_write_replaces_only_the_generated_part(tmp_path):
    page = tmp_path / "mutation.md"
    page.write_text(PAGE, encoding="utf-8")
    mutation_report.write(str(page), "NEW SCORE")
    text = page.read_text(encoding="utf-8")
    assert text == PAGE.replace(
        "old text naming `xcoact.stats.neurosynth.x_p_to_z__mutmut_3` (generated, not a verdict)", "NEW SCORE"
    )
    mutation_report.write(str(page), "AGAIN")
    assert page.read_text(encoding="utf-8") == text.replace("NEW SCORE", "AGAIN")
    (tmp_path / "plain.md").write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"no .* markers"):
        mutation_report.write(str(tmp_path / "plain.md"), "X")
    assert (tmp_path / "plain.md").read_text(encoding="utf-8") == "# no markers\n"
