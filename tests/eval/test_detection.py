"""The detection AUC (eval/truth.py) against a brute-force count over every (right, wrong) pair."""

import numpy as np
import pandas as pd
import pytest

from prefsift.eval.truth import detection_auc, detection_table


def _brute(score, wrong):
    right, bad = score[~wrong], score[wrong]
    wins = (right[:, None] > bad[None, :]).sum() + 0.5 * (right[:, None] == bad[None, :]).sum()
    return wins / (len(right) * len(bad))


def test_the_auc_is_the_share_of_right_wrong_pairs_ordered_with_ties_halved():
    rng = np.random.default_rng(0)
    score = np.round(rng.normal(size=300), 1)  # many ties
    wrong = rng.random(300) < 0.2
    score[wrong] -= 0.5
    assert detection_auc(score, wrong) == pytest.approx(_brute(score, wrong), abs=1e-12)
    with_nan = np.append(score, np.nan)
    assert (detection_auc(with_nan, np.append(wrong, True))
            == pytest.approx(_brute(score, wrong), abs=1e-12))
    assert np.isnan(detection_auc(score, np.zeros(300, dtype=bool)))


def test_the_table_orients_each_score_and_splits_by_length_group():
    rng = np.random.default_rng(1)
    n = 400
    wrong = rng.random(n) < 0.25
    t = pd.DataFrame({"valid": True, "label_correct": ~wrong, "irm": rng.normal(size=n) - wrong,
                      "heldout": rng.normal(size=n) + wrong,
                      "length_direction": rng.choice([-1, 0, 1], size=n)})
    table = detection_table(t)
    assert table.loc["irm", "all pairs"] == pytest.approx(_brute(t["irm"].to_numpy(), wrong))
    assert (table.loc["heldout", "all pairs"]
            == pytest.approx(_brute(-t["heldout"].to_numpy(), wrong)))
    longer = t["length_direction"].to_numpy() == 1
    assert (table.loc["irm", "chosen longer"]
            == pytest.approx(_brute(t["irm"].to_numpy()[longer], wrong[longer])))
    assert table.loc["wrong labels", "chosen longer"] == (wrong & longer).sum()
    assert detection_table(t.drop(columns="label_correct")) is None
