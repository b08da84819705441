"""IRM (the implicit reward margin) equals the reward margin TRL's DPOTrainer computes, pair by
pair."""

import copy
import json

import numpy as np
import pytest

from prefsift.data import load_pairs
from prefsift.data.tokenization import tokenize_pairs
from prefsift.models.objectives import PairwiseObjective
from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps
from tests.tiny import CHAT_TEMPLATE, trl_margins, word_model

BETA = 0.1


@pytest.mark.parametrize("layout,max_length",
                         [("standard_explicit", None), ("conversational_explicit", None),
                          ("standard_implicit", 7)])
def test_irm_equals_trl_reward_margin(data_dir, word_tokenizer, layout, max_length):
    tok = copy.deepcopy(word_tokenizer)
    tok.chat_template = CHAT_TEMPLATE
    path = data_dir / "good" / f"{layout}.jsonl"
    records = [{k: v for k, v in json.loads(l).items() if k in ("prompt", "chosen", "rejected")}
               for l in path.read_text().splitlines()]
    ref = word_model(tok, seed=0)
    policy = word_model(tok, seed=1)

    pairs = load_pairs(path)
    toks = tokenize_pairs(tok, [r.prompt for r in pairs.rows], [r.chosen for r in pairs.rows],
                          [r.rejected for r in pairs.rows], pairs.kind)
    settings = LogprobSettings(max_length=max_length, token_budget=64)
    pol = compute_pair_logps(policy, toks, tok.pad_token_id, settings, progress=False)
    rf = compute_pair_logps(ref, toks, tok.pad_token_id, settings, progress=False)
    irm = PairwiseObjective("dpo", BETA).margin(pol.chosen, pol.rejected, rf.chosen, rf.rejected)

    expected = trl_margins(policy, ref, tok, records, max_length=max_length, beta=BETA)
    assert np.abs(irm).max() > 1e-3  # the two models differ: a real margin, not 0 = 0
    np.testing.assert_allclose(irm, expected, atol=1e-4, rtol=0)
