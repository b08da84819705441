"""The log-prob engine (plain and shared-prompt routes) against a naive one-sequence-at-a-time
computation with the model's own full logits."""

import numpy as np
import pytest
import torch

from prefsift.data.tokenization import TokenizedPair
from prefsift.scoring.logprobs import (
    LogprobSettings,
    cached_pair_logps,
    compute_pair_logps,
    plan_batches,
)
from tests.tiny import tiny_model

VOCAB, PAD = 50, 0


def _pairs(n, seed):
    g = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = g.integers(3, VOCAB, g.integers(1, 30)).tolist() if i % 7 else []  # some empty prompts
        c = g.integers(3, VOCAB, g.integers(1, 25)).tolist()
        r = g.integers(3, VOCAB, g.integers(1, 25)).tolist()
        out.append(TokenizedPair(p, c, r))
    return out


def _naive(model, pairs, max_length):
    res = []
    with torch.no_grad():
        for tp in pairs:
            row = []
            for resp in (tp.chosen_ids, tp.rejected_ids):
                ids = (tp.prompt_ids + resp)[:max_length] if max_length else tp.prompt_ids + resp
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
                start = max(len(tp.prompt_ids), 1)  # token 0 is never scored
                row.append(sum(logp[t - 1, ids[t]].item() for t in range(start, len(ids))))
            res.append(row)
    return np.array(res)


@pytest.mark.parametrize("arch", ["tiny", "lab-b"])
@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("max_length", [None, 30])
def test_engine_equals_naive(arch, share, max_length):
    model = tiny_model(VOCAB, seed=1, preset=arch, attn_implementation="sdpa").eval()
    pairs = _pairs(40, 0)
    # head_chunk 7: the output head sees a few positions at a time, its logits block bounded by the
    # setting.
    got = compute_pair_logps(model, pairs, PAD,
                             LogprobSettings(max_length=max_length, token_budget=300,
                                             share_prompt=share, head_chunk=7), progress=False)
    want = _naive(model, pairs, max_length)
    np.testing.assert_allclose(got.chosen, want[:, 0], atol=2e-4, rtol=0)
    np.testing.assert_allclose(got.rejected, want[:, 1], atol=2e-4, rtol=0)


def test_cache_skips_the_forward_pass(tmp_path):
    model = tiny_model(VOCAB, seed=2)
    pairs = _pairs(10, 1)
    a = cached_pair_logps(model, pairs, PAD, tmp_path, progress=False)
    assert len(list(tmp_path.glob("logps-*.npz"))) == 1
    calls = {"n": 0}
    hook = model.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    b = cached_pair_logps(model, pairs, PAD, tmp_path, progress=False)
    hook.remove()
    assert calls["n"] == 0 and np.array_equal(a.chosen, b.chosen)
    with torch.no_grad():  # other weights, other key
        next(model.parameters()).add_(0.1)
    cached_pair_logps(model, pairs, PAD, tmp_path, progress=False)
    assert len(list(tmp_path.glob("logps-*.npz"))) == 2


def test_batches_respect_the_token_budget():
    lengths = [5, 50, 7, 48, 20, 21, 3]
    batches = plan_batches(lengths, token_budget=100, max_batch=4)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert all(max(lengths[i] for i in b) * len(b) <= 100 or len(b) == 1 for b in batches)
