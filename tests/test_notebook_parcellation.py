"""examples/parcellation_v7.ipynb: stored outputs of a real Neurosynth v7 run, checked; the code re-run on the sample.

The notebook parcellates the bundled amygdala ROI on Neurosynth v7. v7 is not in the
repository and CI has no network, so, unlike the other notebooks (committed without
outputs, see tests/test_notebook.py), this one is committed with the outputs of a real
v7 run, and the documentation shows them (myst-nb ``execution_mode: off`` in its
metadata). Two kinds of checks keep it honest:

- **the code runs**: the same notebook is executed on the bundled 100-study sample
  (``XCOACT_CBP_DATABASE=sample``) and what it prints is compared with the API's own
  result for the same call;
- **the stored outputs are consistent and current**: every code cell ran without error,
  in order; the v7 file's checksum is the one pinned in xcoact's release registry; the
  recorded version, parameters (K range, filter sizes, restarts) and K rule are the
  code's defaults as they are now; the suggested K and every vote follow from the stored
  criteria by the code's rule; the run's commit is in this checkout's history and the
  package had no uncommitted change when it ran.

When a change to the parcellation makes these fail, re-run the notebook on v7
(``jupyter execute --inplace examples/parcellation_v7.ipynb``) and commit it.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

import xcoact
from xcoact.analyses import parcellate as parc
from xcoact.datasets.fetch import read_manifest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
NOTEBOOK = os.path.join(ROOT, "examples", "parcellation_v7.ipynb")
V7 = "data-neurosynth_version-7_coordinates.tsv.gz"


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _stdout(nb) -> str:
    return "".join(
        o.get("text", "")
        for c in _code_cells(nb)
        for o in c.outputs
        if o.output_type == "stream" and o.name == "stdout"
    )


def _record(nb) -> dict:
    lines = [line for line in _stdout(nb).splitlines() if line.startswith("record: ")]
    assert len(lines) == 1, "the notebook printed no (or more than one) record line"
    return json.loads(lines[0][len("record: ") :])


def _criteria(record) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in record["criteria"]], dtype=np.float64)


def _check_rule(record) -> None:
    """The stored suggested K and votes are what the code's rule makes of the stored criteria."""
    assert record["criteria_names"] == list(parc.CRITERIA)
    crit = _criteria(record)
    assert crit.shape == (len(record["k"]), len(parc.CRITERIA))
    k, votes = parc.suggest_k(record["k"], crit)
    assert k == record["k_suggested"]
    assert votes.tolist() == crit[:, parc.CRITERIA.index("votes")].astype(int).tolist()


@pytest.fixture(scope="module")
def stored():
    return nbformat.read(NOTEBOOK, as_version=4)


# --- the stored outputs (the v7 run) ------------------------------------------------------------------


def test_docs_show_the_stored_outputs_not_a_rerun(stored):
    assert stored.metadata.get("mystnb", {}).get("execution_mode") == "off"


def test_every_cell_ran_in_order_without_error(stored):
    cells = _code_cells(stored)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "run the notebook top to bottom once"
    for i, cell in enumerate(cells):
        assert cell.outputs, f"code cell {i} has no stored output"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"code cell {i} stored an error"
    assert "Traceback" not in json.dumps(stored)


def test_the_run_was_on_the_pinned_v7_release(stored):
    rec = _record(stored)
    pinned = {e.name: e for e in read_manifest()}[V7]
    assert rec["database"] == V7
    assert rec["sha256"] == pinned.sha256
    assert rec["n_studies"] == 14371  # Neurosynth v7
    out = _stdout(stored)
    assert f"sha256: {pinned.sha256}" in out
    assert "pinned in xcoact's release registry: yes, identical" in out


def test_the_stored_run_used_the_code_defaults_of_today(stored):
    rec = _record(stored)
    defaults = inspect.signature(parc.parcellate).parameters
    assert rec["xcoact_version"] == xcoact.__version__
    assert rec["k"] == list(defaults["k"].default)
    assert rec["filters"] == list(parc.DEFAULT_FILTERS) == list(defaults["filters"].default)
    assert rec["n_init"] == parc.DEFAULT_N_INIT == defaults["n_init"].default
    assert rec["k_rule"] == parc._K_RULE
    assert rec["roi"] == os.path.basename(xcoact.datasets.amygdala_roi_path()) and rec["n_roi"] == 366


def test_the_stored_suggestion_follows_from_the_stored_criteria(stored):
    rec = _record(stored)
    _check_rule(rec)
    out = _stdout(stored)
    assert f"suggested K: {rec['k_suggested']}" in out
    # the table shown marks the same K, and lists every K of the record
    table = next(
        o.data["text/plain"]
        for c in _code_cells(stored)
        for o in c.outputs
        if o.output_type == "execute_result" and "deviants_pct" in o.data.get("text/plain", "")
    )
    marked = [int(m.group(1)) for m in re.finditer(r"^(\d+)\s+True\b", table, re.MULTILINE)]
    assert marked == [rec["k_suggested"]]
    listed = sorted({int(m.group(1)) for m in re.finditer(r"^(\d+)\s+(?:True|False)\b", table, re.MULTILINE)})
    assert listed == rec["k"]
    assert set(rec["filters_voted"]) <= set(rec["filters"]) and rec["filters_voted"]


def test_the_stored_figure_is_a_png(stored):
    pngs = [
        o.data["image/png"]
        for c in _code_cells(stored)
        for o in c.outputs
        if o.output_type == "display_data" and "image/png" in o.data
    ]
    assert len(pngs) == 1
    import base64

    png = base64.b64decode(pngs[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000


def test_the_run_is_from_a_commit_of_this_history_without_local_changes(stored):
    rec = _record(stored)
    assert re.fullmatch(r"[0-9a-f]{40}", rec["commit"] or ""), "the run recorded no commit"
    assert rec["package_modified_since_commit"] is False, "the run used uncommitted changes of the package"
    assert rec["parcellate_s"] > 0 and rec["peak_rss_mb"] > 0 and rec["cpus"] >= 1
    git = shutil.which("git")
    inside = (
        git
        and subprocess.run(
            [git, "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        == "true"
    )
    if not inside:  # an unpacked source archive: no history to look the commit up in
        return
    ancestor = subprocess.run(
        [git, "merge-base", "--is-ancestor", rec["commit"], "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    assert ancestor.returncode == 0, f"commit {rec['commit']} of the stored run is not in this checkout's history"


# --- the same code on the bundled sample -----------------------------------------------------------------


@pytest.fixture(scope="module")
def on_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("parcellation_nb")
    work, scratch = root / "run", root / "tmp"
    work.mkdir()
    scratch.mkdir()
    copy = work / "parcellation_v7.ipynb"
    shutil.copyfile(NOTEBOOK, copy)
    nb = nbformat.read(str(copy), as_version=4)
    for cell in _code_cells(nb):  # run from the sources alone
        cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(work)}}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(scratch))
        mp.setenv("XCOACT_CBP_DATABASE", "sample")
        client.execute()
    assert os.listdir(scratch) == [], "the notebook left temporary files behind"
    return nb


def test_on_the_sample_it_runs_and_prints_what_the_api_returns(on_sample):
    for i, cell in enumerate(_code_cells(on_sample)):
        assert not [o for o in cell.outputs if o.output_type == "error"], f"code cell {i} raised on the sample"
    rec = _record(on_sample)
    assert rec["database"] == "neurosynth_sample_database.txt" and rec["n_studies"] == 100
    assert "pinned in xcoact's release registry: no (not a release file)" in _stdout(on_sample)
    _check_rule(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(xcoact.datasets.sample_database_path(), r=6)
    res = act.coact.parcellate(
        xcoact.datasets.amygdala_roi_path(), k=rec["k"], filters=rec["filters"], n_init=rec["n_init"], compute=True
    )
    assert rec["k_suggested"] == res.attrs["k_suggested"]
    np.testing.assert_array_equal(_criteria(rec), res["criteria"].values)
    assert rec["filters_voted"] == [int(f) for f in res.attrs["filters_voted"]]
    # the follow-up cell: one line per cluster of the suggested K, its voxels and the studies its MACM selects
    k = rec["k_suggested"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # on the sample a cluster may select no study (a DegenerateSeedWarning)
        macms = act.coact.seed(res.coact.clusters_of(k), select="focus")
    for c in range(1, k + 1):
        voxels = int((res["labels"].sel(k=k) == c).sum())
        n = int(macms["n_selected"].sel(seed=f"cluster_{c}"))
        assert f"cluster_{c}: {voxels} voxels, {n:,} studies selected" in _stdout(on_sample)
