"""The online-RL stage through TRL's GRPOTrainer and RLOOTrainer against a frozen reward model: the
reward function sees what RewardTrainer trained on, and every weight of the policy moves."""

import numpy as np
import pytest
import torch

from prefsift.data.tokenization import tokenize_pairs
from prefsift.scoring.rewards import pair_rewards
from prefsift.train.dpo import StageSettings
from prefsift.train.reward import reward_model_from, train_reward_stage
from prefsift.train.rl import RewardModelReward, RLSettings, train_rl_stage
from tests.tiny import REWARD_RECORDS, save_word_model


@pytest.fixture(scope="module")
def setup(word_tokenizer, tmp_path_factory):
    tok = word_tokenizer
    root = tmp_path_factory.mktemp("rl")
    save_word_model(tok, root / "pi_ref", seed=0)
    rm, _ = train_reward_stage(reward_model_from(root / "pi_ref", tok, seed=0), tok, REWARD_RECORDS,
                               StageSettings(batch_size=8, learning_rate=1e-2), root / "rm",
                               start_key="s", data_key="d", log=lambda *a: None)
    return tok, root, rm


def test_the_reward_function_scores_what_reward_trainer_trained_on(setup):
    tok, _, rm = setup
    toks = tokenize_pairs(tok, [r["prompt"] for r in REWARD_RECORDS],
                          [r["chosen"] for r in REWARD_RECORDS],
                          [r["rejected"] for r in REWARD_RECORDS], "standard")
    # RewardTrainer's ids (tests/scoring/test_rewards.py)
    chosen, _ = pair_rewards(rm, toks, tok.pad_token_id, max_length=None)
    fn = RewardModelReward(rm, tok)
    # As GRPO hands them over: the prompt's text and the generated ids (EOS included, or not yet).
    got = fn([r["prompt"] for r in REWARD_RECORDS], [r["chosen"] for r in REWARD_RECORDS],
             completion_ids=[list(t.chosen_ids)[:-1] if i % 2 else list(t.chosen_ids)
                             for i, t in enumerate(toks)])
    np.testing.assert_allclose(got, chosen, atol=1e-6)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_rl_stage_moves_every_weight_and_logs_reward_and_kl(setup, tmp_path, algorithm):
    from safetensors.torch import load_file

    tok, root, rm = setup
    prompts = [f"Q{i}?" for i in range(8)]
    settings = RLSettings(algorithm=algorithm, learning_rate=1e-2, prompts_per_step=4,
                          num_generations=2, beta=0.1, max_completion_length=4)
    model, info = train_rl_stage(root / "pi_ref", rm, tok, prompts, settings, tmp_path / "stage",
                                 start_key="p", reward_key="r", data_key="d", log=lambda *a: None)
    start = load_file(root / "pi_ref" / "model.safetensors")
    after = {n: p.detach() for n, p in model.named_parameters()}
    unchanged = [n for n, w in start.items() if n in after and torch.equal(w, after[n])]
    assert not unchanged, unchanged[:5]
    assert info["steps"] == 2
    logged = [e for e in info["log"] if "reward" in e]
    assert logged and all(np.isfinite(e["reward"]) for e in logged) and "kl" in logged[0]
    again, info2 = train_rl_stage(root / "pi_ref", rm, tok, prompts, settings, tmp_path / "stage",
                                  start_key="p", reward_key="r", data_key="d", log=lambda *a: None)
    assert info2["seconds"] == info["seconds"]  # reused, not trained again
