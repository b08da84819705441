"""What the careful validation pairs give (scoring/careful.py): the teacher θ_c, DPO from π_ref on
its share of the validation pairs alone, whose margin on each training pair is TRL's; the flip rate
by length group against its closed form and against a simulated biased rater; the probes' pairs
never the teacher's."""

import json

import numpy as np
import pytest

import prefsift
from prefsift.core.errors import ConfigError
from prefsift.scoring.careful import (
    group_flip_rates,
    length_direction,
    one_way_rates,
    teacher_prompts,
)
from tests.tiny import save_word_model, trl_margins

WORDS = ["good", "bad", "answer", "yes", "no", "long", "w", "x", "p"]


def _pairs(n, seed, prefix="Q"):
    rng = np.random.default_rng(seed)
    return [{"prompt": f"{prefix}? {WORDS[i % 9]} {i}",
             "chosen": " " + " ".join(rng.choice(WORDS, 2)),
             "rejected": " " + " ".join(rng.choice(WORDS, 1 + i % 3))} for i in range(n)]


def _cfg(holdout: float):
    """What the split functions read of a run config: its scores (the teacher among them) and
    holdout."""
    from types import SimpleNamespace

    return SimpleNamespace(calibration=SimpleNamespace(holdout=holdout),
                           scores=SimpleNamespace(scores="irm,teacher", teacher_share=0.5))


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_the_teacher_is_dpo_from_the_reference_on_the_last_share_of_the_validation_prompts(
        word_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from prefsift.models.objectives import PairwiseObjective
    from prefsift.train.dpo import StageSettings
    from prefsift.train.stage import TrainingStage

    tok = word_tokenizer
    train, val = _pairs(10, 3), _pairs(8, 4, prefix="V")
    ref = save_word_model(tok, tmp_path / "ref", seed=0)
    theta = save_word_model(tok, tmp_path / "theta", seed=1)
    settings = dict(scores="irm,teacher", teacher_share=0.5, teacher_epochs=2.0, warmup_lr=5e-2,
                    warmup_batch_size=2)
    table = prefsift.score(str(theta), str(ref), _write(tmp_path / "t.jsonl", train),
                           validation=_write(tmp_path / "v.jsonl", val), out=str(tmp_path / "s"),
                           **settings)
    folder = tmp_path / "s" / "teacher"
    info = json.loads((folder / "stage.json").read_text())
    assert info["steps"] == 4  # the last 4 of 8 prompts, 2 per step, 2 epochs
    teacher = AutoModelForCausalLM.from_pretrained(folder / "model")
    ref_model = AutoModelForCausalLM.from_pretrained(ref)
    np.testing.assert_allclose(table["teacher"].to_numpy(),
                               trl_margins(teacher, ref_model, tok, train), atol=1e-4, rtol=0)
    # θ_c by hand: DPO from π_ref (not θ) on validation pairs 4..7, in file order.
    by_hand, _ = TrainingStage(ref, ref_model, tok, val[4:], PairwiseObjective("dpo", 0.1),
                             StageSettings(epochs=2.0, learning_rate=5e-2, batch_size=2),
                             tmp_path / "by_hand",
                             start_key="r", data_key="d", name="by_hand", progress=False).run()
    for (name, a), b in zip(by_hand.named_parameters(), teacher.parameters()):
        assert np.allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6), name
    kept = prefsift.select(table, "top_teacher", 0.5)
    assert set(np.flatnonzero(kept)) == set(table["teacher"].nlargest(5).index)
    agree = prefsift.select(table, "teacher_agree", 0.5)
    assert agree.tolist() == (table["teacher"] > 0).tolist()


def test_teacher_prompts_are_the_last_share_and_never_all():
    prompts = ["a", "b", "a", "c", "d"]  # 4 distinct, in file order a b c d
    assert teacher_prompts(prompts, 0.5) == {"c", "d"}
    assert teacher_prompts(prompts, 0.1) == {"d"}
    assert teacher_prompts(prompts, 0.99) == {"b", "c", "d"}  # one left to judge the probes
    with pytest.raises(ConfigError, match="at least 2 prompts"):
        teacher_prompts(["a", "a"], 0.5)


def test_one_way_flip_rates_are_the_closed_form():
    assert one_way_rates(0.5, 0.8) == pytest.approx((0.375, 0.0))  # (s − p)/s
    assert one_way_rates(0.6, 0.3) == pytest.approx((0.0, 3 / 7))  # (p − s)/(1 − s)
    assert one_way_rates(0.5, 0.5) == (0.0, 0.0)
    assert length_direction("a b c", "a b") == 1 and length_direction("a", "a b") == -1
    assert length_direction("a b", "c d") == 0


def test_group_flip_rates_recover_a_simulated_length_biased_rater():
    """Truth: the longer answer is better with probability 0.4; a rater labels a share b = 0.3 of
    the pairs "the longer is better" whatever the truth. The flip rate among pairs labelled longer
    is then (1 − p)·b / (p + (1 − p)·b) in closed form; the estimate from 4,000 careful and 20,000
    training pairs is within 4 standard errors of it, and the shorter group gets 0."""
    rng = np.random.default_rng(0)
    p, b = 0.4, 0.3
    longer_better = rng.random(20000) < p
    biased = rng.random(20000) < b
    labelled_longer = longer_better | biased
    train = [(1 if x else -1, ()) for x in labelled_longer]
    careful = [(1 if x else -1, ()) for x in rng.random(4000) < p]
    rates = group_flip_rates(train, careful)
    truth = (1 - p) * b / (p + (1 - p) * b)
    s = labelled_longer.mean()
    se = np.sqrt(p * (1 - p) / 4000) / s  # the careful share's error dominates
    assert abs(rates[((), 1)] - truth) < 4 * se
    assert rates[((), -1)] == 0.0 and rates[((), 0)] == 0.0
    # a stratum with too few careful pairs is one error naming it
    with pytest.raises(ConfigError, match="stratum \\('x',\\) with 3 validation pairs"):
        group_flip_rates([(1, ("x",))], [(1, ("x",))] * 3)


def test_a_teacher_candidate_is_compared_on_the_pairs_the_teacher_did_not_train_on(tmp_path):
    """The probes' values are over every validation pair; a candidate reading the teacher is
    compared with all the data on the others only: here it wins on the teacher's pairs alone, so it
    is not chosen."""
    from prefsift.data import load_pairs
    from prefsift.pipeline.probes import unseen_by_teacher
    from prefsift.pipeline.recommend import choose

    val = _pairs(40, 4, prefix="V")
    pairs = load_pairs(_write(tmp_path / "v.jsonl", val))

    Cfg = _cfg(holdout=0.0)

    unseen = unseen_by_teacher(Cfg, pairs, [r.prompt for r in pairs.valid_rows])
    assert unseen.tolist() == [True] * 20 + [False] * 20  # the last half of the prompts trained θ_c
    rng = np.random.default_rng(0)
    full = rng.normal(size=40)
    teacher = full + np.where(unseen, 0.0, 1.0)  # better only where θ_c was trained
    probes = {"full": {"value": full.mean(), "per_prompt": full.tolist()},
              "top_teacher": {"value": teacher.mean(), "per_prompt": teacher.tolist()}}
    assert choose(probes)[0] == "top_teacher"  # on every pair it would look better
    chosen, _, gains = choose(probes, only={"top_teacher": unseen})
    assert chosen == "full" and gains["top_teacher"].mean == pytest.approx(0.0)
    Cfg.scores.scores = "irm,lossdiff"
    assert unseen_by_teacher(Cfg, pairs, [r.prompt for r in pairs.valid_rows]) is None


def test_a_holdout_splits_the_validation_pairs_between_the_scores_and_the_probes(tmp_path):
    """`calibration.holdout`: the last share of the validation prompts values the probes alone; the
    scores (θ_val, IF, the teacher) read the others; each pair on exactly one side."""
    from prefsift.data import load_pairs
    from prefsift.pipeline.probes import probe_prompts, score_validation
    from prefsift.scoring.careful import prompt_key

    val = _pairs(10, 4, prefix="V")
    pairs = load_pairs(_write(tmp_path / "v.jsonl", val))

    Cfg = _cfg(holdout=0.3)

    held = probe_prompts(Cfg, pairs)
    assert held == {prompt_key(v["prompt"]) for v in val[7:]}  # the last 3 of 10 prompts
    scored = score_validation(Cfg, pairs)
    assert [r["prompt"] for r in scored.records()] == [v["prompt"] for v in val[:7]]
    assert len(pairs.records()) == 10  # the caller's pairs are left as they were
    from prefsift.pipeline.probes import unseen_by_teacher

    # the probes' pairs trained nothing
    assert unseen_by_teacher(Cfg, pairs, [v["prompt"] for v in val]) is None
    Cfg.calibration.holdout = 0.0
    assert probe_prompts(Cfg, pairs) is None and score_validation(Cfg, pairs) is pairs
