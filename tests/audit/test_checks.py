"""The other checks on tiny files whose answers are known: Monroe et al.'s z computed here from its
formula, planted style habits, duplicates, TRL's truncation counted by hand with a word tokenizer,
the ratings' scale, and the scores' findings (an AUC counted by hand)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import prefsift
from prefsift.audit.style import log_odds


def _write(path, rows):
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    return path


def test_log_odds_by_hand():
    """y_c = 30, y_r = 0 of n = 1000 words a side; prior α_w = 0.1·30 = 3, α_0 = 0.1·2000 = 200."""
    delta, z = log_odds(np.array([30]), np.array([0]), 1000, 1000)
    d = math.log(33 / (1000 + 200 - 30 - 3)) - math.log(3 / (1000 + 200 - 0 - 3))
    assert delta[0] == pytest.approx(d) and z[0] == pytest.approx(d / math.sqrt(1 / 33 + 1 / 3))
    delta, z = log_odds(np.array([7]), np.array([7]), 500, 500)
    assert delta[0] == pytest.approx(0) and z[0] == pytest.approx(0)


def test_planted_style_habits_and_nothing_else(tmp_path):
    """Chosen answers: 'Sure!' openings and list markup in 50 of 200; rejected: 'As an AI' in 40.
    The filler is the same words on both sides, in random order."""
    rng = np.random.default_rng(0)
    words = [f"v{i}" for i in range(80)]
    rows = []
    for i in range(200):
        c, r = " ".join(rng.choice(words, 30)), " ".join(rng.choice(words, 30))
        if i < 50:
            c = "Sure! Here it is:\n- " + c + "\n- done"
        if 100 <= i < 140:
            r = "As an AI I cannot say. " + r
        rows.append({"prompt": f"question {i}", "chosen": c, "rejected": r})
    rep = prefsift.audit(_write(tmp_path / "t.jsonl", rows))
    chosen = {s["feature"] for s in rep.get("style.chosen_habits").stats["features"]}
    rejected = {s["feature"] for s in rep.get("style.rejected_habits").stats["features"]}
    assert {"sure", "(opens with) sure !", "<list item>"} <= chosen
    assert "(opens with) as an ai" in rejected and "ai" in rejected  # (15 features shown at most)
    planted = {"sure", "!", "here", "it", "is", ":", "-", "done", "<list item>"}
    assert all(
        set(f.replace("(opens with) ", "").split()) <= planted | {"<list", "item>"} for f in chosen
    )
    assert all(
        set(f.replace("(opens with) ", "").split()) <= {"as", "an", "ai", "i", "cannot", "say", "."}
        for f in rejected
    )
    assert rep.get("style.chosen_habits").rows.tolist() == list(range(50))
    assert rep.get("style.rejected_habits").rows.tolist() == list(range(100, 140))


def test_duplicates_and_leaks(tmp_path):
    base = [
        {
            "id": f"r{i}",
            "prompt": f"Prompt number {i}",
            "chosen": f"a long answer {i} " * 8,
            "rejected": f"another reply {i} " * 8,
        }
        for i in range(100)
    ]
    base[1] = dict(base[0], id="r1")  # the same pair under another id
    base[2]["rejected"] = base[2]["chosen"]  # the data layer's `identical`
    base[3]["rejected"] = base[3]["chosen"].upper() + "  "  # the same up to case and spacing
    base[4]["rejected"] = base[4]["chosen"][:-3] + "x  "  # one character changed: near-identical
    base[5]["prompt"] = "A validation prompt"
    base[6]["prompt"] = "  a TEST prompt "
    _write(
        tmp_path / "v.jsonl", [{"prompt": "a validation prompt", "chosen": "x", "rejected": "y"}]
    )
    rep = prefsift.audit(
        _write(tmp_path / "t.jsonl", base),
        validation=tmp_path / "v.jsonl",
        test_prompts=["A test prompt", "never seen"],
    )
    assert rep.get("duplicates.identical_pairs").rows.tolist() == [0, 1]
    assert rep.get("duplicates.chosen_equals_rejected").rows.tolist() == [2, 3]
    assert rep.get("duplicates.near_identical_answers").rows.tolist() == [4]
    assert rep.get("duplicates.near_identical_answers").reported  # 1 % of the pairs
    assert rep.get("duplicates.prompt_leak.validation").rows.tolist() == [5]
    assert rep.get("duplicates.prompt_leak.test").rows.tolist() == [6]


def test_truncation_in_words_and_in_tokens(tmp_path, word_tokenizer):
    """Row 0: prompt 3 words, chosen 2, rejected 4. Row 1: prompt 6 words. Row 2: all short.
    At max_length 6, in words: row 0 is cut on its rejected side only (3 + 4 > 6, 3 + 2 <= 6), row 1
    dropped (its prompt alone is 6 >= 6). In tokens (conftest's tokenizer: BOS, then one id a word;
    TRL appends EOS to each answer): row 0's prompt is 4, chosen 3, rejected 5, so both sides are
    cut and 4 + 5 = 9 keeps it whole; row 1's prompt is 7: dropped; row 2 (3 + 2) is whole."""
    assert word_tokenizer(" p p p")["input_ids"][0] == word_tokenizer.bos_token_id
    rows = [
        {"prompt": "p p p", "chosen": " good good", "rejected": " bad bad bad bad"},
        {"prompt": "p p p p p p", "chosen": " good", "rejected": " bad"},
        {"prompt": "p p", "chosen": " yes", "rejected": " no"},
    ]
    path = _write(tmp_path / "t.jsonl", rows)
    words = prefsift.audit(path, max_length=6)
    assert words.get("truncation.dropped").rows.tolist() == [1]
    cut = words.get("truncation.cut")
    assert (
        cut.rows.tolist() == [0]
        and cut.stats["cut_rejected_only"] == 1
        and cut.stats["cut_both"] == 0
    )
    toks = prefsift.audit(path, max_length=6, tokenizer=word_tokenizer)
    assert toks.texts.len_prompt.tolist() == [4, 7, 3] and toks.texts.len_chosen.tolist() == [
        3,
        2,
        2,
    ]
    assert toks.texts.len_rejected.tolist() == [5, 2, 2] and toks.texts.unit == "tokens"
    cut = toks.get("truncation.cut")
    assert cut.rows.tolist() == [0] and cut.stats["cut_both"] == 1
    assert toks.get("truncation.dropped").rows.tolist() == [1]
    assert "max_length 9 keeps every answer whole" in cut.try_


def test_ratings_scale_below_ties(tmp_path):
    rows = [
        {
            "prompt": f"q{i}",
            "chosen": "a b",
            "rejected": "c d",
            "score_chosen": 4,
            "score_rejected": 2,
        }
        for i in range(200)
    ]
    rows[0]["score_chosen"] = 1  # below
    rows[1]["score_rejected"] = 4  # tie
    rows[2]["score_chosen"] = 9  # outside 1–5
    rows[3]["score_rejected"] = None  # not a number
    rep = prefsift.audit(_write(tmp_path / "t.jsonl", rows))
    assert rep.get("ratings.chosen_below").rows.tolist() == [0]
    assert rep.get("ratings.ties").rows.tolist() == [1]
    assert rep.get("ratings.out_of_scale").rows.tolist() == [2]
    assert rep.get("ratings.out_of_scale").stats["scale"] == [1.0, 5.0]
    assert rep.get("ratings.not_numbers").rows.tolist() == [3]
    given = prefsift.audit(tmp_path / "t.jsonl", rating_scale="0:10")
    assert not given.get("ratings.out_of_scale").reported


def test_scores_theta_disagrees_and_auc_by_length(tmp_path):
    """IRM −3 and −2.5 are at or below −log 9 ≈ −2.197 (θ gives the label ≤ 10 %), −2 is not. By
    length, IF of the chosen-longer pairs (rows 0, 1: 3, 1) against the rejected-longer (rows 2, 3:
    2, 0): 3 > 2, 3 > 0, 1 < 2, 1 > 0, so AUC = 3/4."""
    rows = [
        {"id": f"r{i}", "prompt": f"q{i}", "chosen": c, "rejected": r}
        for i, (c, r) in enumerate(
            [("a a", "b"), ("a a a", "b"), ("a", "b b"), ("a", "b b b"), ("a", "b")]
        )
    ]
    path = _write(tmp_path / "t.jsonl", rows)
    table = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(5)],
            "valid": True,
            "reason": "",
            "irm": [-3.0, -2.5, -2.0, 1.0, 0.5],
            "if": [3.0, 1.0, 2.0, 0.0, 5.0],
        }
    )
    table.to_parquet(tmp_path / "s.parquet")
    rep = prefsift.audit(path, scores=tmp_path / "s.parquet")
    f = rep.get("scores.theta_disagrees")
    assert f.rows.tolist() == [0, 1] and f.reported
    by = rep.get("scores.by_length")
    assert by.stats["by_score"]["if"]["auc_chosen_longer_vs_rejected_longer"] == 0.75
    assert by.stats["by_score"]["irm"]["auc_chosen_longer_vs_rejected_longer"] == 0.0
    assert by.stats["by_score"]["if"]["chosen longer"]["median"] == 2.0
    other = table.iloc[::-1]
    other.to_parquet(tmp_path / "o.parquet")
    with pytest.raises(prefsift.core.errors.ConfigError, match="scores"):
        prefsift.audit(path, scores=tmp_path / "o.parquet")
