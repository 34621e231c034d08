"""The K-selection rule of xcoact.analyses.parcellate: the stability gate, and no hierarchy value (or vote) at K = 2.

At K = 2 the "parent" solution is the one-cluster partition, in which every voxel is
in its dominant parent cluster: the hierarchy index would be 0 by construction and
the rule would give K = 2 a vote from a criterion that compared nothing.  These
tests check the criterion is NaN there, is the hand-recomputed index of the labels
everywhere else, and that the rule gives no vote for a NaN; and that the suggested K is
a candidate of the deviants criterion (no more deviants than at K-1, more at K+1).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_parcellate import _box_roi, _planted_database

import xcoact
from xcoact.analyses import parcellate as parc


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    roi = _box_roi(tmp_path_factory.mktemp("krule") / "roi.nii.gz", (10, 30), (-2, 2), (10, 14))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = xcoact.activations(_planted_database(), r=6)
    return act.coact.parcellate(roi, k=range(2, 6), filters=[10, 20, 30], n_init=5).compute()


def _voxel_labels(res, k):
    return res["labels"].sel(k=k).transpose("x", "y", "z").values.ravel()[res["voxel"].values]


def test_hierarchy_is_nan_at_k2_and_the_index_of_the_labels_above(result):
    crit = result["criteria"].to_pandas()
    assert np.isnan(crit.loc[2, "hierarchy_pct"])
    for k in (3, 4, 5):
        want = parc.hierarchy_index(_voxel_labels(result, k), _voxel_labels(result, k - 1))
        assert crit.loc[k, "hierarchy_pct"] == pytest.approx(want, abs=1e-12)
    # VI against the one-cluster partition stays: it is the entropy of the K = 2 vote, a real comparison
    assert crit.loc[2, "vi_prev_bits"] == pytest.approx(
        parc.variation_of_information(np.ones(result.sizes["voxel"]), _voxel_labels(result, 2))
    )
    assert "not defined at K = 2" in result.attrs["k_rule"]


def test_votes_are_the_rule_applied_to_the_table(result):
    crit = result["criteria"].values
    k, votes = parc.suggest_k(result["k"].values, crit)
    assert k == int(result["k_suggested"])
    assert votes.tolist() == crit[:, list(parc.CRITERIA).index("votes")].astype(int).tolist()


def test_a_nan_criterion_gives_no_vote_and_is_not_a_neighbour():
    col = {n: i for i, n in enumerate(parc.CRITERIA)}
    crit = np.full((3, len(parc.CRITERIA)), np.nan)
    crit[:, col["hierarchy_pct"]] = [np.nan, 4.0, 9.0]
    _, votes = parc.suggest_k([2, 3, 4], crit)
    assert votes.tolist() == [0, 1, 0]  # K = 3 is the lowest of the defined values; K = 2 gets nothing
    # with the old 0 at K = 2, K = 2 would have taken that vote: the defect the NaN removes
    crit[0, col["hierarchy_pct"]] = 0.0
    assert parc.suggest_k([2, 3, 4], crit)[1].tolist() == [1, 0, 0]


def test_stability_gate_hand_values():
    dev = np.array([1.0, 3.0, 2.0, 2.0, 5.0, 4.0, 4.5])  # K = 2..8
    # K=2: nothing before, more at K=3 -> candidate; K=3: more than K=2 -> no; K=4: <= K=3 but K=5 equal -> no
    # (K+1 must be worse); K=5: <= K=4 and K=6 worse -> candidate; K=6: more than K=5 -> no; K=7: <= K=6 and
    # K=8 worse -> candidate; K=8: the last -> never
    assert parc._stable(dev).tolist() == [True, False, False, True, False, True, False]
    assert parc._stable(np.array([np.nan, 1.0, 2.0])).tolist() == [False, True, False]


def test_suggested_k_is_the_candidate_with_most_votes_not_the_overall_winner():
    col = {n: i for i, n in enumerate(parc.CRITERIA)}
    crit = np.full((4, len(parc.CRITERIA)), np.nan)
    crit[:, col["deviants_pct"]] = [1.0, 2.0, 3.0, 4.0]  # rising: only K=2 is a candidate
    crit[:, col["silhouette"]] = [0.5, 0.4, 0.6, 0.3]  # K=2 and K=4
    crit[:, col["hierarchy_pct"]] = [np.nan, 8.0, 1.0, 9.0]  # K=4
    crit[:, col["ratio_change_pct"]] = [np.nan, 3.0, 20.0, 2.0]  # K=4
    k, votes = parc.suggest_k([2, 3, 4, 5], crit)
    assert votes.tolist() == [2, 0, 3, 0]
    assert k == 2  # K=4 has more votes but more deviants than K=3: the next split is not the stable one
    # without any candidate the rule falls back to the most votes
    crit[:, col["deviants_pct"]] = [4.0, 3.0, 2.0, 1.0]
    assert parc.suggest_k([2, 3, 4, 5], crit)[0] == 4


def test_the_rule_text_in_attrs_is_the_code_rule(result):
    assert result.attrs["k_rule"] == parc._K_RULE
    assert "candidate" in parc._K_RULE and "not a published rule" in parc._K_RULE


def test_methods_text_cites_the_source_of_the_criteria_wording(result):
    from xcoact import report as report_module

    text, keys = report_module.parcellation_methods_text(result)
    assert {"bzdok2013", "clos2013", "eickhoff2015", "chase2020", "meila2007"} <= set(keys)
    assert report_module.REFERENCES["chase2020"][1] == "10.1002/hbm.25014"
    assert "Chase et al., 2020" in text and parc._K_RULE in text


def test_figure_title_names_the_roi_not_its_path(result):
    fig = parc.figure(result)
    title = fig._suptitle.get_text()
    assert "Coactivation-based parcellation of roi (" in title and "/" not in title.split(";")[0]
