"""Judges and WinRate: exact values for degenerate judges, the oracle by hand, the interval by a
normal approximation."""

import numpy as np
import pytest

from prefsift.eval.judges import ConstantJudge, FirstPositionJudge, Judge, Swapped
from prefsift.eval.winrate import evaluate_answers, win_rate
from prefsift.lab import OracleJudge

PROMPTS = ["sort : 3 1 2 =", "reverse : 1 2 3 =", "copy : 4 5 =", "increment : 9 1 ="] * 5


def test_constant_judge_gives_exactly_half():
    ev = evaluate_answers(ConstantJudge(), PROMPTS, [" 1"] * 20, [" 2"] * 20)
    assert ev.win_rate.win_rate == 0.5 and ev.win_rate.low == 0.5 and ev.win_rate.high == 0.5


def test_order_swapping_cancels_position_bias():
    biased = FirstPositionJudge()
    one_order = evaluate_answers(biased, PROMPTS, [" 1"] * 20, [" 2"] * 20, both_orders=False)
    assert one_order.win_rate.win_rate == 1.0
    both = evaluate_answers(biased, PROMPTS, [" 1"] * 20, [" 2"] * 20)
    assert both.win_rate.win_rate == 0.5
    assert Swapped(biased).prefer("q", "x", "y") == 0.5


def test_oracle_judge_by_hand():
    j = OracleJudge()
    best = [" 1 2 3", " 3 2 1", " 4 5", " 0 2"]
    assert [j.score(p, a) for p, a in zip(PROMPTS[:4], best)] == [1.0] * 4
    ev = evaluate_answers(j, PROMPTS[:4], best, [" 7 7 7", " 1 2 3", " 4 5", " 9 9"])
    # sort: 1 vs 0 -> 1; reverse: 1 vs partial -> 1; copy: tie -> 0.5; increment: 1 vs 0 -> 1
    assert ev.prefs == [1.0, 1.0, 0.5, 1.0]
    assert ev.win_rate.win_rate == pytest.approx(3.5 / 4)


def test_bootstrap_interval_matches_normal_approximation():
    rng = np.random.default_rng(0)
    prefs = rng.choice([0.0, 0.5, 1.0], size=400, p=[0.3, 0.1, 0.6])
    wr = win_rate(prefs, n_boot=4000, seed=1)
    half = 1.96 * prefs.std(ddof=1) / np.sqrt(len(prefs))
    assert wr.low < wr.win_rate < wr.high
    assert (wr.high - wr.low) / 2 == pytest.approx(half, rel=0.1)


def test_custom_judge_protocol():
    class Longer(Judge):
        name = "longer"

        def score(self, prompt, answer):
            return len(answer)

    ev = evaluate_answers(Longer(), ["p", "q"], ["aaa", "a"], ["a", "aaa"])
    assert ev.win_rate.win_rate == 0.5 and ev.score_aligned == ev.score_reference == 2.0


def test_lexicon_judge_follows_vader():
    pytest.importorskip("vaderSentiment", reason="pip install vaderSentiment (in the dev extra)")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from prefsift.eval.judges import LexiconJudge

    j, vader = LexiconJudge(), SentimentIntensityAnalyzer()
    happy, sad = "What a wonderful, lovely day!", "This is a terrible, sad mess."
    assert j.score("p", happy) == vader.polarity_scores(happy)["compound"] > 0.5
    assert j.score("p", sad) == vader.polarity_scores(sad)["compound"] < -0.5
    ev = evaluate_answers(j, ["p", "q"], [happy, sad], [sad, sad])
    assert ev.prefs == [1.0, 0.5] and ev.win_rate.win_rate == 0.75
