"""The one-sided rules and their relabel variants (issue: the paper's scores one-sided), by hand:
each keeps the top `keep` of its order (the bottom dropped, or swapped), the mean-rank order is
scipy's average ranks averaged, the teacher's relabel swaps its negative margins, cDPO by group
carries each pair's group ε; and the calibrated windows' one-sided split is the same selection."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

import prefsift
from prefsift.core.windows import split_windows
from prefsift.selection.rows import training_data
from prefsift.selection.treatments import treatment_data


def _table(n=50, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "valid": True, "reason": ""})
    for c in ("if", "lossdiff", "irm", "teacher"):
        t[c] = rng.normal(size=n)
    t["group_noise"] = np.where(rng.random(n) < 0.5, 0.25, 0.0)
    t.loc[3, "valid"] = False
    t.loc[3, ["if", "lossdiff", "irm", "teacher", "group_noise"]] = np.nan
    return t


def _top(values, ok, k):
    v = np.where(ok, values, -np.inf)
    return set(np.argsort(-v, kind="stable")[:k])


@pytest.mark.parametrize("rule,column", [("top_lossdiff", "lossdiff"), ("top_irm", "irm"),
                                         ("top_teacher", "teacher"), ("top_if", "if")])
def test_a_one_sided_rule_keeps_the_largest_values(rule, column):
    t = _table()
    ok = t["valid"].to_numpy()
    kept = prefsift.select(t, rule, 0.6)
    assert set(np.flatnonzero(kept)) == _top(t[column].to_numpy(), ok, round(0.6 * 49))


def test_the_mean_rank_rule_averages_scipys_ranks():
    t = _table()
    ok = t["valid"].to_numpy()
    score = np.full(len(t), -np.inf)
    r_if = rankdata(t.loc[ok, "if"]) - 1
    r_ld = rankdata(t.loc[ok, "lossdiff"]) - 1
    score[ok] = (r_if + r_ld) / 2
    kept = prefsift.select(t, "top_if_lossdiff", 0.5)
    assert set(np.flatnonzero(kept)) == _top(score, ok, round(0.5 * 49))


@pytest.mark.parametrize("name", ["top_if_relabel", "top_lossdiff_relabel", "top_irm_relabel",
                                  "top_if_lossdiff_relabel", "top_teacher_relabel"])
def test_a_relabel_variant_swaps_what_its_rule_drops(name):
    t = _table()
    data = treatment_data(t, name, 0.6)
    dropped = prefsift.select(t, name[: -len("_relabel")], 0.6)
    ok = t["valid"].to_numpy()
    assert data.mask.tolist() == ok.tolist()  # every scored pair trains
    assert data.flip.tolist() == (ok & ~dropped).tolist()


def test_teacher_relabel_swaps_the_pairs_the_teacher_disagrees_with():
    t = _table()
    data = treatment_data(t, "teacher_relabel", 0.6)
    ok = t["valid"].to_numpy()
    assert data.flip.tolist() == (ok & (t["teacher"].fillna(0) < 0)).tolist()
    assert data.mask.tolist() == ok.tolist()


def test_group_cdpo_trains_every_pair_with_its_groups_epsilon():
    from prefsift.train.weighted import EPSILON

    t = _table(8)

    class Pairs:  # what training_data reads of a PairSet: its rows and records
        rows = [type("R", (), {"valid": bool(v)})() for v in t["valid"]]

        @staticmethod
        def records(mask):
            return [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i, m in enumerate(mask)
                    if m and t["valid"][i]]

    data = treatment_data(t, "group_cdpo", 0.6)
    ids = t.loc[data.mask, "id"].tolist()
    records, key, variant = training_data(Pairs, data.mask, data, ids, seed=0, batch_size=2)
    assert [r[EPSILON] for r in records] == t.loc[data.mask, "group_noise"].tolist()
    assert variant.conservative and variant.epsilon == 0.0
    other = treatment_data(t.assign(group_noise=t["group_noise"] / 2), "group_cdpo", 0.6)
    # ε in the data's key
    assert training_data(Pairs, other.mask, other, ids, seed=0, batch_size=2)[1] != key


@pytest.mark.parametrize("rule,column", [("top_if", "if"), ("top_lossdiff", "lossdiff")])
def test_the_calibrated_grids_one_sided_split_is_the_one_sided_rule(rule, column):
    """calibrated_<family> at split 1 (the whole cut from the bottom tail) keeps what the rule
    keeps, up to the pairs a percentile window cannot split (ties at the edge: none here)."""
    t = _table(200, seed=1)
    mask, _ = split_windows([t[column].to_numpy()], keep=0.6, split=1.0)
    kept = prefsift.select(t, rule, 0.6)
    assert abs(int(mask.sum()) - int(kept.sum())) <= 1
    assert (mask & ~kept).sum() <= 1
