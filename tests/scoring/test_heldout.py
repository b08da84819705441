"""Selective DPO's held-out loss (score `heldout`) against TRL: each pair's DPO loss under the fold
model that did not train on it, as TRL's DPOTrainer computes it for that pair; the fold models are
stages (reused on a rerun); `selective_dpo` keeps the smallest losses and a run trains them in
order."""

import json

import numpy as np
import pandas as pd
import pytest

import prefsift
from prefsift.core.errors import UserError
from tests.tiny import save_word_model, trl_margins

WORDS = ["good", "bad", "answer", "yes", "no", "long", "w", "x", "p"]


def _pairs(n=12):
    rng = np.random.default_rng(3)
    return [{"prompt": f"Q? {WORDS[i % 9]}", "chosen": " " + " ".join(rng.choice(WORDS, 2)),
             "rejected": " " + " ".join(rng.choice(WORDS, 1 + i % 3))} for i in range(n)]


def test_heldout_loss_is_trls_loss_under_the_fold_model_that_did_not_see_the_pair(word_tokenizer,
        tmp_path):
    from transformers import AutoModelForCausalLM

    tok = word_tokenizer
    records = _pairs()
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    ref = save_word_model(tok, tmp_path / "ref", seed=0)
    theta = save_word_model(tok, tmp_path / "theta", seed=1)
    settings = dict(scores="irm,heldout", folds=2, warmup_lr=5e-2, warmup_batch_size=2,
                    warmup_epochs=1.0)
    table = prefsift.score(str(theta), str(ref), str(path), out=str(tmp_path / "s"), **settings)
    fold = table["heldout_fold"].to_numpy()
    assert sorted(np.bincount(fold.astype(int))) == [6, 6]
    ref_model = AutoModelForCausalLM.from_pretrained(ref)
    for k in (0, 1):
        folder = tmp_path / "s" / "selective" / f"fold{k}"
        model = AutoModelForCausalLM.from_pretrained(folder / "model")
        info = json.loads((folder / "stage.json").read_text())
        assert info["steps"] == 3  # 6 pairs seen (the other fold), 2 per step
        held = np.flatnonzero(fold == k)
        expected = np.logaddexp(0.0, -trl_margins(model, ref_model, tok,
                                                  [records[i] for i in held]))
        np.testing.assert_allclose(table["heldout"].to_numpy()[held], expected, atol=1e-4, rtol=0)
    # Fold 0's model is the warm-up's training on exactly the other fold's pairs, in file order.
    from prefsift.models.objectives import PairwiseObjective
    from prefsift.train.dpo import StageSettings
    from prefsift.train.stage import TrainingStage

    by_hand, _ = TrainingStage(ref, ref_model, tok, [records[i] for i in np.flatnonzero(fold == 1)],
                             PairwiseObjective("dpo", 0.1),
                             StageSettings(epochs=1.0, learning_rate=5e-2, batch_size=2),
                             tmp_path / "by_hand", start_key="r", data_key="d", name="by_hand",
                             progress=False).run()
    fold0 = AutoModelForCausalLM.from_pretrained(tmp_path / "s" / "selective" / "fold0" / "model")
    for (name, a), b in zip(by_hand.named_parameters(), fold0.parameters()):
        assert np.allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6), name
    # Under π_ref itself every loss would be log 2: the fold models moved.
    assert np.abs(table["heldout"].to_numpy() - np.log(2)).max() > 1e-3
    # A rerun reuses the fold models (their stage.json is not rewritten).
    before = (tmp_path / "s" / "selective" / "fold0" / "stage.json").read_text()
    again = prefsift.score(str(theta), str(ref), str(path), out=str(tmp_path / "s"), **settings)
    assert (tmp_path / "s" / "selective" / "fold0" / "stage.json").read_text() == before
    pd.testing.assert_series_equal(again["heldout"], table["heldout"])
    # selective_dpo keeps the smallest held-out losses.
    kept = prefsift.select(table, "selective_dpo", 0.5)
    assert set(np.flatnonzero(kept)) == set(table["heldout"].nsmallest(6).index)


def test_too_few_pairs_for_the_folds_is_one_error(word_tokenizer, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _pairs(5)))
    ref = save_word_model(word_tokenizer, tmp_path / "ref", seed=0)
    theta = save_word_model(word_tokenizer, tmp_path / "theta", seed=1)
    with pytest.raises(UserError, match="3 folds need at least 6 usable pairs; there are 5"):
        prefsift.score(str(theta), str(ref), str(path), out=str(tmp_path / "s"),
                       scores="irm,heldout", folds=3)


def test_the_heldout_score_under_two_processes_matches_one(word_tokenizer, tmp_path):
    """`prefsift score --processes 2`: the fold models train under DDP (one pair of each step's two
    per process) and their log-prob passes are sharded; the held-out losses equal one process's up
    to the order of the gradient sums (the tolerance of the other sharded tests)."""
    import os
    import subprocess
    import sys

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _pairs()))
    ref = save_word_model(word_tokenizer, tmp_path / "ref", seed=0)
    theta = save_word_model(word_tokenizer, tmp_path / "theta", seed=1)
    settings = dict(scores="irm,heldout", folds=2, warmup_lr=5e-2, warmup_batch_size=2)
    one = prefsift.score(str(theta), str(ref), str(path), out=str(tmp_path / "one"), **settings)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "prefsift", "score", "--policy", str(theta),
                        "--reference", str(ref), "--train", str(path), "--out",
                        str(tmp_path / "two"), "--processes", "2", "--scores", "irm,heldout",
                        "--folds", "2", "--warmup-lr", "5e-2", "--warmup-batch-size", "2"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    two = pd.read_parquet(tmp_path / "two" / "scores.parquet")
    assert two["heldout_fold"].equals(one["heldout_fold"])
    x, y = one["heldout"].to_numpy(), two["heldout"].to_numpy()
    assert np.abs(x - y).max() <= 1e-3 * np.abs(x).max()
    stage = json.loads((tmp_path / "two" / "selective" / "fold0" / "stage.json").read_text())
    assert stage["processes"] == 2
