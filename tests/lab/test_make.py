"""The lab: oracle, tokenizer, SFT, pairs and `make_lab`, checked against hand computations and
TRL's own tokenization helpers."""

from __future__ import annotations

import json
import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest
import torch

from prefsift.lab import (
    PAIR_TYPES,
    LabConfig,
    PromptGenerator,
    best_response,
    build_lab_tokenizer,
    format_summary,
    make_lab,
    oracle_reward,
    random_response,
    sample_responses,
    train_sft,
    type_counts,
)
from prefsift.lab.sft import demonstration, sft_batch
from prefsift.lab.task import DIGITS, FLAWS, flawed_words, parse_prompt, words_to_response

SMALL = dict(seed=3, preset="tiny", n_train=120, n_validation=40, n_test_prompts=30, sft_steps=15,
             sft_warmup_steps=5, threads=1, progress=False, share_sft=False)


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    summary = make_lab(LabConfig(**SMALL), out)
    return summary, out


# ---------------------------------------------------------------- oracle


def test_flaws_by_hand_and_their_rewards():
    items = ("3", "1", "4", "1")
    assert flawed_words("sort", items, "extra_item") == ["1", "1", "3", "4", "4"]
    assert flawed_words("sort", items, "drop_item") == ["1", "1", "3"]
    assert flawed_words("sort", items, "copy_input") == ["3", "1", "4", "1"]
    assert flawed_words("increment", items, "copy_input") == ["3", "1", "4", "1"]
    # copy's echo is right, so it gets the extra item instead; an echo equal to the answer too
    assert flawed_words("copy", items, "copy_input") == ["3", "1", "4", "1", "1"]
    assert flawed_words("sort", ("1", "2", "3"), "copy_input") == ["1", "2", "3", "3"]
    # rewards by the oracle formula: 4 of 5 positions right, length 1 - 1/4
    assert oracle_reward("sort : 3 1 4 1 =", " 1 1 3 4 4") == pytest.approx(0.8 * 1.75 / 2)
    assert oracle_reward("sort : 3 1 4 1 =", " 1 1 3") == pytest.approx(0.75 * 1.75 / 2)
    with pytest.raises(ValueError, match="unknown flaw"):
        flawed_words("sort", items, "typo")


def test_demonstrations_carry_flaws_at_the_rate_asked():
    rng = random.Random(0)
    prompts = [p.text for p in PromptGenerator(1).draw(4000)]
    flawed = sum(demonstration(p, rng, 0.3) != best_response(p) for p in prompts) / len(prompts)
    assert abs(flawed - 0.3) < 0.025
    assert all(demonstration(p, rng, 0.0) == best_response(p) for p in prompts[:200])


def test_oracle_best_and_garbage():
    prompts = [p.text for p in PromptGenerator(11).draw(200)]
    assert all(oracle_reward(p, best_response(p)) == 1.0 for p in prompts)
    # Hand-written best responses of each task, including the increment wrap-around.
    assert best_response("sort : 7 3 9 1 =") == " 1 3 7 9"
    assert best_response("reverse : 1 2 3 4 =") == " 4 3 2 1"
    assert best_response("copy : 5 0 5 =") == " 5 0 5"
    assert best_response("increment : 9 0 5 =") == " 0 1 6"
    # Garbage: no position right, whatever the length.
    assert oracle_reward("copy : 1 2 3 =", " 9 8 7") == 0.0
    assert oracle_reward("copy : 1 2 3 =", " sort : = copy") == 0.0
    rng = random.Random(0)
    assert sum(oracle_reward(p, random_response(rng)) for p in prompts) / len(prompts) < 0.08


def test_oracle_hand_worked_partial():
    # target 4 3 2 1 (n=4), response 4 3 9 1 7 (m=5): matches 3, accuracy 3/5,
    # length 1 - 1/4 = 3/4, reward 3/5 * (1 + 3/4) / 2 = 0.525
    assert oracle_reward("reverse : 1 2 3 4 =", " 4 3 9 1 7") == pytest.approx(0.525, abs=1e-12)
    # target 1 2 3, response 1 2: accuracy 2/3, length 2/3, reward 2/3 * 5/3 / 2 = 5/9
    assert oracle_reward("sort : 3 1 2 =", " 1 2") == pytest.approx(5 / 9, abs=1e-12)
    # right length, half right: 0.5 * (1 + 1) / 2 = 0.5
    assert oracle_reward("increment : 1 1 1 1 =", " 2 2 5 5") == pytest.approx(0.5, abs=1e-12)


def test_oracle_graded_and_bounded():
    prompts = [p.text for p in PromptGenerator(12).draw(100)]
    rng = random.Random(1)
    for p in prompts:
        target = best_response(p).split()
        resp = [rng.choice(DIGITS) for _ in target]
        r = oracle_reward(p, " " + " ".join(resp))
        assert 0.0 <= r <= 1.0
        wrong = [i for i, (a, b) in enumerate(zip(resp, target)) if a != b]
        if wrong:  # fixing one wrong position strictly raises the reward
            resp[wrong[0]] = target[wrong[0]]
            assert oracle_reward(p, " " + " ".join(resp)) > r


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_special_ids_bos_and_decode():
    tok = build_lab_tokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.unk_token == "<unk>"
    text = "sort : 7 3 9 1 = 1 3 7 9"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text.split()) + 1
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_prompt_response_prefix_property_like_trl():
    from trl.data_utils import _tokenize, common_prefix_length

    tok = build_lab_tokenizer()
    vocab = tok.get_vocab()
    rng = random.Random(5)
    for p in PromptGenerator(13).draw(50):
        prompt = p.text
        response = random_response(rng)
        prompt_ids = _tokenize(tok, prompt)["input_ids"]
        full_ids = _tokenize(tok, prompt + response + tok.eos_token)["input_ids"]
        assert common_prefix_length(prompt_ids, full_ids) == len(prompt_ids)
        assert (full_ids[len(prompt_ids):]
                == [vocab[w] for w in response.split()] + [tok.eos_token_id])


def test_tokenizer_save_load_round_trip(tmp_path):
    from transformers import AutoTokenizer

    tok = build_lab_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.get_vocab() == tok.get_vocab()
    assert ((again.pad_token_id, again.bos_token_id, again.eos_token_id, again.unk_token_id)
            == (0, 1, 2, 3))
    texts = ["copy : 1 2 3 = 1 2 3<eos>", "sort : 9 9 0 =", "increment : 4 ="]
    assert again(texts)["input_ids"] == tok(texts)["input_ids"]


# ---------------------------------------------------------------- SFT pieces


def test_sft_batch_masks_prompt_hand_example():
    tok = build_lab_tokenizer()
    v = tok.get_vocab()
    batch = sft_batch(tok, ["copy : 1 2 3 =", "sort : 2 1 0 9 ="], [" 1 2 3", " 0 1 2 9"])
    ids0 = [1, v["copy"], v[":"], v["1"], v["2"], v["3"], v["="], v["1"], v["2"], v["3"], 2]
    assert batch["input_ids"][0, : len(ids0)].tolist() == ids0
    assert (batch["input_ids"][0, len(ids0):].tolist()
            == [0] * (batch["input_ids"].shape[1] - len(ids0)))
    assert batch["labels"][0].tolist()[: len(ids0)] == [-100] * 7 + [v["1"], v["2"], v["3"], 2]
    assert (batch["labels"][0, len(ids0):] == -100).all()
    assert batch["attention_mask"].sum(1).tolist() == [11, 13]


def test_sampling_is_seeded_and_never_empty():
    from prefsift.lab import build_lab_model

    tok = build_lab_tokenizer()
    model = build_lab_model(tok, "tiny", seed=0)
    prompts = [p.text for p in PromptGenerator(14).draw(20)]
    a = sample_responses(model, tok, prompts, 3, seed=9, max_new_tokens=6)
    b = sample_responses(model, tok, prompts, 3, seed=9, max_new_tokens=6)
    assert a == b
    for draws in a:
        for s in draws:
            assert s.startswith(" ") and s.split() and "<" not in s and len(s.split()) <= 6


# ---------------------------------------------------------------- pairs and make_lab


def test_type_counts_exact_by_hand():
    props = LabConfig().proportions()
    assert (type_counts(120, props)
            == {"clean": 72, "flipped": 12, "near_tie": 12, "near_duplicate": 12, "easy": 12})
    # 7 pairs: exact shares 4.2, 0.7 x 4 -> floors 4, 0, 0, 0, 0; three largest remainders get +1
    assert (type_counts(7, props)
            == {"clean": 4, "flipped": 1, "near_tie": 1, "near_duplicate": 1, "easy": 0})


def test_small_lab_files_and_proportions(small_lab):
    summary, out = small_lab
    train = _read_jsonl(out / "train.jsonl")
    val = _read_jsonl(out / "validation.jsonl")
    test = _read_jsonl(out / "test_prompts.jsonl")
    assert (len(train), len(val), len(test)) == (120, 40, 30)
    counts = {t: sum(r["pair_type"] == t for r in train) for t in PAIR_TYPES}
    assert counts == {"clean": 72, "flipped": 12, "near_tie": 12, "near_duplicate": 12, "easy": 12}
    assert summary["splits"]["train"]["by_type"] == counts
    # Default validation (careful): the training mix (flips built as clean pairs), every label the
    # oracle's.
    assert {t: sum(r["pair_type"] == t for r in val) for t in PAIR_TYPES} == {
        # 40 × (0.7, 0, 0.1 × 3)
        "clean": 28, "flipped": 0, "near_tie": 4, "near_duplicate": 4, "easy": 4}
    assert all(r["label_correct"] for r in val)
    # The ratings are the labeller's: none points against its label; the summary says so.
    assert all(r["score_chosen"] >= r["score_rejected"] for r in train + val)
    leak = summary["splits"]["train"]["ratings"]
    assert leak["wrong_labels"] == sum(not r["label_correct"] for r in train) > 0
    assert (leak["wrong_gap_points_to_truth"] == 0.0
            and "points to the truth for 0.0 %" in format_summary(summary))
    assert len({r["id"] for r in train + val}) == 160
    assert train[5]["id"] == "lab-train-000005" and test[0]["id"] == "lab-test-000000"
    text = format_summary(summary)
    assert "near_duplicate" in text and "random tokens" in text


def test_small_lab_pair_invariants(small_lab):
    _, out = small_lab
    cfg = LabConfig(**SMALL)
    rows = _read_jsonl(out / "train.jsonl") + _read_jsonl(out / "validation.jsonl")
    for r in rows:
        for side in ("chosen", "rejected"):
            s = r[side]
            assert s.strip() and s.startswith(" ") and "<eos>" not in s
            assert r[f"oracle_{side}"] == pytest.approx(oracle_reward(r["prompt"], s), abs=1e-6)
        assert r["chosen"] != r["rejected"]
        assert r["task"] == r["prompt"].split()[0]
        gap = r["oracle_chosen"] - r["oracle_rejected"]
        assert r["label_correct"] == (gap >= 0)
        c, j = r["chosen"].split(), r["rejected"].split()
        if r["pair_type"] in ("clean", "flipped"):
            assert abs(gap) >= cfg.clean_min_gap - 1e-9
        if r["pair_type"] == "flipped":
            assert not r["label_correct"]
        if r["pair_type"] == "near_tie":
            assert abs(gap) <= cfg.tie_max_gap + 1e-9
        if r["pair_type"] == "near_duplicate":
            assert len(c) == len(j) and sum(a != b for a, b in zip(c, j)) == 1 and gap != 0
        if r["pair_type"] == "easy":
            good, bad = (c, j) if r["label_correct"] else (j, c)
            assert not any(w in DIGITS for w in bad)
            assert max(r["oracle_chosen"], r["oracle_rejected"]) >= cfg.easy_min_reward
        assert isinstance(r["score_chosen"], float) and isinstance(r["score_rejected"], float)


def test_test_prompts_held_out(small_lab):
    _, out = small_lab
    train = {r["prompt"] for r in _read_jsonl(out / "train.jsonl")}
    val = {r["prompt"] for r in _read_jsonl(out / "validation.jsonl")}
    test = _read_jsonl(out / "test_prompts.jsonl")
    prompts = {r["prompt"] for r in test}
    assert len(prompts) == len(test)
    assert not prompts & (train | val) and not train & val
    for r in test:
        assert (oracle_reward(r["prompt"], r["reference"]) == 1.0
                and r["task"] == r["prompt"].split()[0])


def test_sft_model_loads_with_auto_classes(small_lab):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, out = small_lab
    model = AutoModelForCausalLM.from_pretrained(out / "sft_model")
    tok = AutoTokenizer.from_pretrained(out / "sft_model")
    assert model.config.vocab_size == len(tok) and model.dtype == torch.float32
    assert (out / "sft_model" / "model.safetensors").exists()


def test_make_lab_is_deterministic_and_resumes(small_lab, tmp_path):
    _, first = small_lab
    summary = make_lab(LabConfig(**SMALL), tmp_path)
    names = ["train.jsonl", "validation.jsonl", "test_prompts.jsonl", "sft_model/model.safetensors"]
    for name in names:
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes(), name
    assert not summary["sft"]["resumed"]
    again = make_lab(LabConfig(**SMALL), tmp_path)
    assert again["sft"]["resumed"]
    for name in names:
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes(), name
    other = make_lab(LabConfig(**{**SMALL, "seed": 4}), tmp_path)
    assert not other["sft"]["resumed"]
    assert (tmp_path / "train.jsonl").read_bytes() != (first / "train.jsonl").read_bytes()


@pytest.mark.slow
def test_default_sft_is_good_but_has_habits():
    """The real default SFT (lab-a, default steps, lr, batch, habit rate): temperature-1 samples are
    far better than random tokens, often perfect, and a clear share of them shows one of the habits
    taught by the flawed demonstrations — the behaviour preference data should train away."""
    cfg = LabConfig()
    tok = build_lab_tokenizer()
    model, log = train_sft(tok, cfg.sft_config(), progress=False)
    prompts = [p.text for p in PromptGenerator(99).draw(300)]
    with torch.no_grad():
        draws = sample_responses(model, tok, prompts, 2, seed=0)
    pairs = [(p, s) for p, ds in zip(prompts, draws) for s in ds]
    sft = sum(oracle_reward(p, s) for p, s in pairs) / len(pairs)
    perfect = sum(s == best_response(p) for p, s in pairs) / len(pairs)

    def habit(p, s):
        lp = parse_prompt(p)
        return any(s == words_to_response(flawed_words(lp.task, lp.items, f)) for f in FLAWS)

    habits = sum(habit(p, s) for p, s in pairs) / len(pairs)
    rng = random.Random(0)
    rand = sum(oracle_reward(p, random_response(rng)) for p in prompts) / len(prompts)
    print(f"default SFT: mean reward {sft:.3f}, perfect {perfect:.2f}, habits {habits:.2f}, "
          f"random tokens {rand:.3f}, final loss {log['final_loss']:.3f}")
    assert rand < 0.08
    assert sft > rand + 0.5, (sft, rand)
    assert 0.3 < perfect < 0.9, perfect
    assert 0.1 < habits < 0.5, habits


def test_sft_model_is_shared_through_the_cache(tmp_path, monkeypatch):
    """A second lab folder with the same SFT settings copies the SFT model from the prefsift cache
    instead of training it, and its files are byte-identical to the first folder's."""
    monkeypatch.setenv("PREFSIFT_CACHE", str(tmp_path / "cache"))
    cfg = {**SMALL, "share_sft": True, "n_train": 20, "n_validation": 10, "n_test_prompts": 10}
    first = make_lab(LabConfig(**cfg), tmp_path / "a")
    second = make_lab(LabConfig(**{**cfg, "n_train": 30}), tmp_path / "b")
    assert not first["sft"]["from_cache"] and second["sft"]["from_cache"]
    weights = "sft_model/model.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() == (tmp_path / "b" / weights).read_bytes()
    assert len(_read_jsonl(tmp_path / "b" / "train.jsonl")) == 30



def _prompts_and_samples(n, seed):
    gen = PromptGenerator(seed)
    rng = random.Random(seed)
    prompts = [gen.draw_one().text for _ in range(n)]
    return prompts, [[random_response(rng) for _ in range(6)] for _ in prompts]


def test_rater_noise_solves_the_agreement_in_closed_form():
    from scipy.stats import norm

    from prefsift.lab.pairs import rater_noise_for

    # one gap g: P(g + e1 - e2 > 0) = Φ(g / (σ√2)) = a  ⇒  σ = g / (√2 Φ⁻¹(a))
    assert (rater_noise_for([0.3, -0.3, 0.0], 0.85)
            == pytest.approx(0.3 / (2 ** 0.5 * norm.ppf(0.85)), rel=1e-9))


def test_labels_from_ratings_are_the_raters_errors():
    from prefsift.lab.pairs import PairConfig, build_pairs

    prompts, samples = _prompts_and_samples(3000, 5)
    rows = build_pairs(prompts, samples, LabConfig().proportions(),
                       PairConfig(labels_from_ratings=True), seed=5, split="train")
    assert all(r["score_chosen"] >= r["score_rejected"] for r in rows)  # chosen = the higher rated
    assert not any(r["pair_type"] == "flipped" for r in rows)
    non_tied = [r for r in rows if r["oracle_chosen"] != r["oracle_rejected"]]
    agree = sum(r["oracle_chosen"] > r["oracle_rejected"] for r in non_tied) / len(non_tied)
    assert agree == pytest.approx(0.85, abs=0.02)  # binomial sd at n≈2,900 is 0.007
    # The injected-flip lab's files are unchanged by the new mode's existence: a wrong label there
    # is either a deliberate flip or a Bradley–Terry draw, never the rating.
    plain = build_pairs(prompts[:300], samples[:300], LabConfig().proportions(),
                        PairConfig(ratings="independent"), seed=5, split="train")
    assert any(r["score_chosen"] < r["score_rejected"] for r in plain)


def test_a_length_biased_rater_labels_its_share_by_length_and_nothing_else_changes():
    from prefsift.lab.pairs import PairConfig, build_pairs

    prompts, samples = _prompts_and_samples(3000, 5)
    props = LabConfig().proportions()
    plain = build_pairs(prompts, samples, props, PairConfig(), seed=5, split="train")
    assert all("biased" not in r for r in plain)  # a lab without the bias is as it was
    rows = build_pairs(prompts, samples, props, PairConfig(rater_bias=0.4), seed=5, split="train")
    assert not any(r["pair_type"] == "flipped" for r in rows)
    # a lab response: words after a space each
    length = lambda r, side: len(r[side].split())  # noqa: E731
    differ = [r for r in rows if length(r, "chosen") != length(r, "rejected")]
    by_bias = [r for r in differ if r["biased"]]
    assert not any(r["biased"] for r in rows if r not in differ)  # only where the lengths differ
    # Its share of those pairs, drawn independently per pair: binomial sd at n ≈ 1,000 is about
    # 0.015.
    assert len(by_bias) / len(differ) == pytest.approx(0.4, abs=0.05)
    # the longer one, right or wrong
    assert all(length(r, "chosen") > length(r, "rejected") for r in by_bias)
    # A biased label is wrong exactly where the longer answer is the worse one.
    assert all(r["label_correct"] == (r["oracle_chosen"] >= r["oracle_rejected"]) for r in rows)
    assert any(not r["label_correct"] for r in by_bias) and any(r["label_correct"] for r in by_bias)
    # The same rater rates: where it labelled by length, it rated its chosen answer at least as
    # high, so a rating gap never shows a wrong biased label, even with `ratings: independent`,
    # where the unbiased pairs keep ratings that can disagree with their label.
    # the default: the rater's ratings
    assert all(r["score_chosen"] >= r["score_rejected"] for r in rows)
    ind = build_pairs(prompts, samples, props, PairConfig(rater_bias=0.4, ratings="independent"),
                      seed=5, split="train")
    assert all(r["score_chosen"] >= r["score_rejected"] for r in ind if r["biased"])
    assert any(r["score_chosen"] < r["score_rejected"] for r in ind if not r["biased"])


@pytest.mark.parametrize("testbed", [{"frac_flipped": 0.2, "frac_clean": 0.5}, {"rater_bias": 0.5},
                                     {"labels_from_ratings": True}])
def test_the_rater_who_labelled_gives_the_ratings_in_every_testbed(testbed):
    """On every testbed a wrong label comes with ratings that agree with it. The bound: the rater's
    label is the argmax of its own ratings (as in UltraFeedback-binarized), so the rating gap agrees
    with the label on every pair, 100 %, whatever its noise. `ratings: independent` (the lab before)
    gives the same prompts, answers and labels draw for draw, with each answer's own rating: there a
    wrong label's gap points to the truth with probability Φ(gap / (σ√2)) per pair, σ the rater's
    noise."""
    from scipy.stats import norm

    from prefsift.lab.pairs import PairConfig, build_pairs
    from prefsift.lab.summary import rating_leak

    prompts, samples = _prompts_and_samples(2000, 7)
    props = LabConfig(**{k: v for k, v in testbed.items() if k.startswith("frac_")}).proportions()
    extra = {k: v for k, v in testbed.items() if not k.startswith("frac_")}
    rows = build_pairs(prompts, samples, props, PairConfig(**extra), seed=7, split="train")
    ind = build_pairs(prompts, samples, props, PairConfig(**extra, ratings="independent"), seed=7,
                      split="train")
    wrong = [r for r in rows if not r["label_correct"]]
    assert len(wrong) > 50  # every testbed has wrong labels to hide
    assert all(r["score_chosen"] >= r["score_rejected"] for r in rows)
    assert rating_leak(rows)["wrong_gap_points_to_truth"] == 0.0
    same = ("id", "prompt", "chosen", "rejected", "label_correct", "oracle_chosen",
            "oracle_rejected", "pair_type")
    assert [[r[k] for k in same] for r in rows] == [[r[k] for k in same] for r in ind]
    # only the order of the two ratings differs
    assert all(sorted((a["score_chosen"], a["score_rejected"]))
               == sorted((b["score_chosen"], b["score_rejected"])) for a, b in zip(rows, ind))
    # the leak the rater's ratings remove: Φ(gap / (σ√2)) on each flip
    if testbed.get("frac_flipped"):
        flips = [r for r in ind if r["pair_type"] == "flipped"]
        expected = np.mean([norm.cdf((r["oracle_rejected"] - r["oracle_chosen"]) / (0.1 * 2 ** 0.5))
                            for r in flips])
        seen = np.mean([r["score_chosen"] < r["score_rejected"] for r in flips])
        assert (expected > 0.9
                and seen == pytest.approx(expected,
                                          abs=4 * (expected * (1 - expected) / len(flips)) ** 0.5))
        leak = rating_leak(ind)
        wrong_ind = [r for r in ind if not r["label_correct"]]
        assert leak["wrong_gap_points_to_truth"] == pytest.approx(
            sum(r["score_chosen"] < r["score_rejected"] for r in wrong_ind) / len(wrong_ind))


def test_a_careful_validation_set_has_the_training_mix_and_only_right_labels():
    from prefsift.lab.pairs import PAIR_TYPES, PairConfig, build_pairs, type_counts

    prompts, samples = _prompts_and_samples(400, 5)
    props = LabConfig().proportions()
    careful = {**props, "clean": props["clean"] + props["flipped"], "flipped": 0.0}
    rows = build_pairs(prompts, samples, careful, PairConfig(rater_bias=0.5), seed=5,
                       split="validation", oracle_labels=True)
    want = type_counts(400, careful)
    assert {t: sum(r["pair_type"] == t for r in rows) for t in PAIR_TYPES} == want
    assert all(r["label_correct"] for r in rows) and all("biased" not in r for r in rows)
