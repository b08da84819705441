"""The headroom split (issue "honest testbeds"): the two new oracle arms `drop_wrong` and
`oracle_relabel` on a hand-made table, the run's refusal to offer an oracle to the recommendation,
the share of the headroom taken against the best oracle arm (constant preferences, so every number
is exact by hand), and the lab's length-biased judge against hand-worked verdicts."""

import numpy as np
import pandas as pd
import pytest

from prefsift.core.errors import ConfigError
from prefsift.eval.tables import best_oracle, format_arms, paired_columns, summarize_arms
from prefsift.selection.arms import arm_data, check_candidates
from prefsift.selection.kinds import ArmContext
from prefsift.selection.rules import apply_rule
from prefsift.selection.treatments import treatment_data


def _truth_table():
    # 6 pairs: one not scored; two wrong labels (p1 clean, p4 near_tie); p5 a right easy pair
    return pd.DataFrame({
        "id": [f"p{i}" for i in range(6)],
        "valid": [True, True, True, False, True, True],
        "reason": ["", "", "", "too long", "", ""],
        "pair_type": ["clean", "clean", "near_tie", "clean", "near_tie", "easy"],
        "label_correct": [True, False, True, False, False, True],
        "irm": [0.1, -0.2, 0.3, np.nan, -0.4, 0.5],
    })


def test_drop_wrong_keeps_every_right_label_of_every_type():
    t = _truth_table()
    assert apply_rule(t, "drop_wrong", 0.64).tolist() == [True, False, True, False, False, True]
    # p2's truth unknown: kept, as
    unknown = t.assign(label_correct=[True, False, None, False, False, True])
    assert (apply_rule(unknown, "drop_wrong", 0.64).tolist()
            == [True, False, True, False, False, True])
    # oracle_relabel keeps it as labelled
    assert not treatment_data(unknown, "oracle_relabel", 0.64).flip[2]
    # `clean` drops the right near-tie and easy pairs as well
    assert apply_rule(t, "clean", 0.64).tolist() == [True, False, False, False, False, False]


def test_oracle_relabel_keeps_every_scored_pair_and_swaps_the_wrong_labels():
    d = treatment_data(_truth_table(), "oracle_relabel", 0.64)
    assert d.mask.tolist() == [True, True, True, False, True, True]
    assert d.flip.tolist() == [False, True, False, False, True, False]  # never the unscored p3
    assert d.weight is None and d.loss_type is None and not d.conservative


def test_oracle_arms_are_skipped_without_the_truth_and_never_recommended():
    class Cfg:
        imported, windows, keep, label_noise, objective = {}, {}, 0.64, None, "dpo"

    plain = _truth_table().drop(columns=["pair_type", "label_correct"])
    for arm in ("oracle_relabel", "drop_wrong", "clean"):
        why = arm_data(Cfg(), plain, arm)
        assert isinstance(why, str) and "which the data does not have" in why
    for arm in ("oracle_relabel", "drop_wrong"):
        with pytest.raises(ConfigError, match="calibration.candidates"):
            check_candidates(["full", arm], ArmContext(scores=("irm",)), user_list=True)


def _evaluations(values: dict, n: int = 10, seeds=(0, 1)) -> list[dict]:
    rows = []
    for arm, v in values.items():
        for s in seeds:
            rows.append({"arm": arm, "seed": s, "n_pairs": 100, "win_rate": v, "low": v, "high": v,
                         "score": v, "head_to_head": 0.5, "prefs": [v] * n, "scores": [v] * n})
    return rows


def test_the_share_of_the_headroom_is_taken_against_the_best_oracle():
    # constant preferences: every paired difference is exact; drop_wrong is the best oracle (+0.20)
    ev = _evaluations({"full": 0.50, "random": 0.45, "clean": 0.60, "drop_wrong": 0.70,
                       "oracle_relabel": 0.65, "rule_a": 0.62})
    by = {(r["arm"], r["seed"]): r for r in ev}
    assert best_oracle(by, ["full", "clean", "drop_wrong", "oracle_relabel"]) == "drop_wrong"
    assert best_oracle(by, ["full", "clean"]) == "clean" and best_oracle(by, ["clean"]) is None
    summary = summarize_arms(pd.DataFrame(ev).drop(columns=["prefs", "scores"]),
                             paired_columns(ev, 10))
    row = summary.set_index("arm").loc["rule_a"]
    # 0.6, not 1.2 against clean
    assert row["headroom_share"] == pytest.approx((0.62 - 0.50) / (0.70 - 0.50))
    assert row["headroom_oracle"] == "drop_wrong"
    # an oracle has no share
    assert np.isnan(summary.set_index("arm").loc["clean", "headroom_share"])
    assert "(drop_wrong − full)" in format_arms(summary)


def test_the_length_biased_judge_by_hand():
    from prefsift.eval.judges import Swapped, make_judge
    from prefsift.lab.task import best_response

    prompt = "sort : 0 4 8 7 6 4 ="
    good = best_response(prompt)  # " 0 4 4 6 7 8"
    longer = good + " 9"  # an extra item: longer and worse
    oracle = make_judge("oracle")
    assert oracle.score(prompt, good) > oracle.score(prompt, longer)
    assert make_judge("biased:0").prefer(prompt, longer, good) == 0.0  # share 0: the oracle
    always = make_judge("biased:1")
    assert always.prefer(prompt, longer, good) == 1.0 and always.prefer(prompt, good, longer) == 0.0
    assert Swapped(always).prefer(prompt, good, longer) == 0.0  # the same verdict in both orders
    assert (always.prefer(prompt, good, good) == 0.5
            and always.score(prompt, longer) == oracle.score(prompt, longer))
    # share 0.5: about half of many length-differing comparisons are decided by length
    half = make_judge("biased:0.5")
    # distinct texts, same words
    flips = [half.prefer(prompt, longer + " " * k, good) for k in range(400)]
    assert np.mean(flips) == pytest.approx(0.5, abs=4 * (0.25 / 400) ** 0.5)
    with pytest.raises(ConfigError, match="biased:2"):
        from prefsift.eval.judges import check_judge

        check_judge("biased:2")


def test_a_lab_pinned_to_the_old_ratings_keeps_the_key_its_runs_were_made_under():
    """The key the lab stage had before `ratings` existed: every other field but the four that do
    not change the data. A run directory made then is reused, not rebuilt."""
    import dataclasses

    from prefsift.lab.make import LabConfig
    from prefsift.pipeline.rundir import stage_key
    from prefsift.pipeline.stages import lab_key

    old = LabConfig(validation_mix="clean", ratings="independent")
    fields = {f.name: getattr(old, f.name) for f in dataclasses.fields(old)
              if f.name not in ("progress", "threads", "resume", "share_sft", "ratings")}
    assert lab_key(old) == stage_key("lab", fields)
    # the rater's ratings: another lab
    assert lab_key(LabConfig(validation_mix="clean")) != lab_key(old)


def test_calibration_judge_needs_by_judge():
    from prefsift.pipeline import RunConfig

    with pytest.raises(ConfigError, match="calibration.judge is set, but by is loss"):
        RunConfig(arms=["full", "auto"], calibration={"judge": "biased:0.5"})
    assert RunConfig(arms=["full", "auto"],
                     calibration={"judge": "biased:0.5", "by": "judge"}).calibration.by == "judge"


def test_the_best_oracle_is_compared_on_the_seeds_the_oracles_share():
    # clean on seeds 0-2, drop_wrong on seed 2 only (a lucky seed): on the shared seed 2 clean is
    # better
    by = {}
    for arm, vals in {"full": [0.5, 0.5, 0.5], "clean": [0.6, 0.6, 0.7],
                      "drop_wrong": [None, None, 0.65]}.items():
        for s, v in enumerate(vals):
            if v is not None:
                by[(arm, s)] = {"prefs": [v] * 4}
    assert best_oracle(by, ["full", "clean", "drop_wrong"]) == "clean"
