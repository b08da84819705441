"""The sentiment pair builder, checked by hand; VADER's own scores decide chosen and rejected."""

import pytest

from prefsift.lab.sentiment import SentimentConfig, build_sentiment_pairs, sentiment_prompts


def test_pairs_take_the_most_and_least_positive_answers_and_flag_ties():
    prompts = ["p1", "p2", "p3"]
    answers = [["fine", "awful", "wonderful", "ok"], ["a", "b", "c", "d"], ["x", "x", "y", "z"]]
    ratings = [[0.2, -0.6, 0.9, 0.1], [0.30, 0.31, 0.29, 0.30], [0.5, 0.5, -0.2, 0.1]]
    rows = build_sentiment_pairs(prompts, answers, ratings, split="t", flip_rate=0.0,
                                 tie_max_gap=0.1, rater_noise=0.0, seed=0)
    assert [r["pair_type"] for r in rows] == ["clean", "near_tie", "clean"]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "wonderful"}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "awful"}]
    assert rows[0]["prompt"] == [{"role": "user", "content": "p1"}]
    assert (rows[0]["oracle_chosen"], rows[0]["oracle_rejected"]) == (0.9, -0.6)
    assert rows[1]["chosen"][0]["content"] == "b" and rows[1]["rejected"][0]["content"] == "c"
    assert rows[2]["chosen"][0]["content"] == "x" and rows[2]["rejected"][0]["content"] == "y"
    assert all(r["label_correct"] for r in rows)
    assert rows[0]["score_chosen"] == 0.9  # no rater noise asked


def test_prompts_without_two_different_answers_give_no_pair():
    rows = build_sentiment_pairs(["a", "b", "c", "d"],
                                 [["", "", "bad"], ["same", "same", ""], ["", ""], ["x", "", "y"]],
                                 [[0.9, 0.8, -0.5], [0.1, 0.2, 0.9], [0.0, 0.0], [0.5, 0.9, -0.5]],
                                 split="t", flip_rate=0.0, tie_max_gap=0.1, rater_noise=0.0, seed=0)
    assert [r["prompt"][0]["content"] for r in rows] == ["d"]
    assert rows[0]["chosen"][0]["content"] == "x" and rows[0]["rejected"][0]["content"] == "y"


def test_flips_swap_labels_at_the_rate_asked():
    n = 2000
    rows = build_sentiment_pairs([f"p{i}" for i in range(n)], [["good", "bad"]] * n,
                                 [[0.8, -0.8]] * n, split="t", flip_rate=0.25, tie_max_gap=0.1,
                                 rater_noise=0.1, seed=1)
    flipped = [r for r in rows if r["pair_type"] == "flipped"]
    assert abs(len(flipped) / n - 0.25) < 0.03
    assert all(not r["label_correct"] and r["chosen"][0]["content"] == "bad" for r in flipped)


def test_prompts_are_distinct_and_sizes_checked():
    prompts = sentiment_prompts(0)
    assert len(set(prompts)) == len(prompts) and prompts != sentiment_prompts(1)
    with pytest.raises(ValueError, match="at most"):
        SentimentConfig(n_train=len(prompts))
