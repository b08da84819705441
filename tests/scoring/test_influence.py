"""IF against finite differences of the validation loss, projection against exact IF."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from prefsift.data.tokenization import TokenizedPair
from prefsift.models.objectives import PairwiseObjective
from prefsift.scoring.gradients import pair_inputs as _pair_inputs
from prefsift.scoring.gradients import pair_losses
from prefsift.scoring.influence import InfluenceSettings, compute_influence, layer_group
from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps
from tests.float64 import true_float64
from tests.tiny import llama, tiny_model

VOCAB, PAD = 40, 0


def _random_pairs(n, seed):
    g = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = [1] + g.integers(3, VOCAB, g.integers(2, 6)).tolist()
        c = g.integers(3, VOCAB, g.integers(2, 7)).tolist() + [2]
        r = g.integers(3, VOCAB, g.integers(2, 7)).tolist() + [2]
        out.append(TokenizedPair(p, c, r))
    return out


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    # Really float64 (norms, rotary angles and softmax too), so that the comparisons below at 1e-8
    # hold on every CPU: see tests/float64.py.
    ref = true_float64(tiny_model(VOCAB, seed=0))
    policy = true_float64(tiny_model(VOCAB, seed=0))
    with torch.no_grad():  # θ: the reference moved a little, as after a warm-up
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    train, val = _random_pairs(40, 1), _random_pairs(24, 2)
    s = LogprobSettings(max_length=None)
    rt = compute_pair_logps(ref, train, PAD, s, progress=False)
    rv = compute_pair_logps(ref, val, PAD, s, progress=False)
    return policy, train, val, (rt.chosen, rt.rejected), (rv.chosen, rv.rejected)


def _val_loss(model, val, ref_val, obj):
    with torch.no_grad():
        return pair_losses(model, _pair_inputs(val, None), *ref_val, obj, PAD).mean().item()


@pytest.mark.parametrize("objective", ["dpo", "ipo", "hinge"])
def test_if_matches_central_finite_differences(setup, objective):
    policy, train, val, ref_train, ref_val = setup
    obj = PairwiseObjective(objective, beta=0.5)
    res = compute_influence(policy, train, ref_train, val, ref_val, obj, PAD,
                            InfluenceSettings(max_length=None), progress=False)
    params = list(policy.parameters())
    fd = []
    for i in range(len(train)):
        loss = pair_losses(policy, _pair_inputs(train[i:i + 1], None), ref_train[0][i:i + 1],
                           ref_train[1][i:i + 1], obj, PAD)[0]
        g = torch.autograd.grad(loss, params)
        eps = 1e-4 / max(torch.sqrt(sum((x ** 2).sum() for x in g)).item(), 1e-12)
        vals = []
        for sign in (1, -1):
            with torch.no_grad():
                for p, gi in zip(params, g):
                    p.add_(sign * eps * gi)
            vals.append(_val_loss(policy, val, ref_val, obj))
            with torch.no_grad():
                for p, gi in zip(params, g):
                    p.sub_(sign * eps * gi)
        # L(θ + εg) − L(θ − εg) = 2ε⟨∇L_val, g⟩ + O(ε³); IF = ⟨∇L_val, g⟩.
        fd.append((vals[0] - vals[1]) / (2 * eps))
    fd = np.array(fd)
    rel = np.abs(res.total - fd) / np.maximum(np.abs(fd), 1e-12)
    assert len(train) >= 32
    assert np.mean(rel <= 0.02) >= 0.95, (rel.max(), res.total[:5], fd[:5])
    assert np.std(fd) > 0  # not all zero


def test_vmap_and_loop_agree_and_groups_sum_to_total(setup):
    policy, train, val, ref_train, ref_val = setup
    obj = PairwiseObjective("dpo", 0.5)
    a = compute_influence(policy, train, ref_train, val, ref_val, obj, PAD,
                          InfluenceSettings(method="vmap", max_length=None), progress=False)
    b = compute_influence(policy, train, ref_train, val, ref_val, obj, PAD,
                          InfluenceSettings(method="loop", max_length=None), progress=False)
    np.testing.assert_allclose(a.total, b.total, rtol=1e-8, atol=1e-12)
    assert set(a.groups) == {"embeddings", "layer.00", "layer.01", "head"}
    np.testing.assert_allclose(sum(a.groups.values()), a.total, rtol=1e-12)


def test_projection_k2048_ranks_like_exact(setup):
    policy, train, val, ref_train, ref_val = setup
    obj = PairwiseObjective("dpo", 0.5)
    exact = compute_influence(policy, train, ref_train, val, ref_val, obj, PAD,
                              InfluenceSettings(max_length=None), progress=False)
    proj = compute_influence(policy, train, ref_train, val, ref_val, obj, PAD,
                             InfluenceSettings(max_length=None, projection_dim=2048,
                                               projection_seed=3),
                             progress=False)
    rho = spearmanr(exact.total, proj.total)[0]
    print(f"Spearman(exact IF, projected IF k=2048) = {rho:.4f}")
    assert rho >= 0.95


def test_diag_preconditioning_against_explicit_formula(setup):
    policy, train, val, ref_train, ref_val = setup
    obj = PairwiseObjective("dpo", 0.5)
    damping = 0.1
    res = compute_influence(policy, train, ref_train, val, ref_val, obj, PAD,
                            InfluenceSettings(max_length=None, precondition="diag",
                                              damping=damping), progress=False)
    params = list(policy.parameters())
    flat = lambda gs: torch.cat([x.reshape(-1) for x in gs])
    G = torch.stack([flat(torch.autograd.grad(pair_losses(policy,
                                                          _pair_inputs(train[i:i + 1], None),
                                                          ref_train[0][i:i + 1],
                                                          ref_train[1][i:i + 1], obj, PAD)[0],
                                              params)) for i in range(len(train))])
    gval = flat(torch.autograd.grad(pair_losses(policy, _pair_inputs(val, None), *ref_val, obj,
                                                PAD).mean(), params))
    fisher = (G ** 2).mean(0)
    expected = G @ (gval / (fisher + damping * fisher.mean()))
    np.testing.assert_allclose(res.total, expected.numpy(), rtol=1e-8, atol=1e-12)


def test_layer_groups():
    assert layer_group("model.layers.3.self_attn.q_proj.weight") == "layer.03"
    assert (layer_group("base_model.model.model.layers.12.mlp.up_proj.lora_A.default.weight")
            == "layer.12")
    assert layer_group("model.embed_tokens.weight") == "embeddings"
    assert layer_group("model.norm.weight") == "head"


def test_auto_takes_the_loop_for_a_few_parameters_of_a_large_model():
    """LoRA-sized parameter sets of a large model: vmap would hold every pair's activations of the
    whole model, so `auto` takes the loop; on a small model it takes vmap. Both give the same IF."""
    import torch

    from prefsift.models.objectives import PairwiseObjective
    from prefsift.scoring import influence as inf

    # transformers' own defaults for the position count and the attention, not the tiny ones
    big = llama(32000, seed=0, hidden_size=320, num_hidden_layers=1, tie_word_embeddings=False,
                max_position_embeddings=2048, attn_implementation=None).eval()
    assert sum(p.numel() for p in big.parameters()) > inf.VMAP_MAX_MODEL
    gen = torch.Generator().manual_seed(1)
    pairs = [TokenizedPair(prompt_ids=torch.randint(3, 32000, (5,), generator=gen).tolist(),
                           chosen_ids=torch.randint(3, 32000, (4,), generator=gen).tolist(),
                           rejected_ids=torch.randint(3, 32000, (3,), generator=gen).tolist())
             for _ in range(4)]
    ref = compute_pair_logps(big, pairs, 0, LogprobSettings(), progress=False)
    obj = PairwiseObjective("dpo", 0.5)
    settings = dict(params=r"layers\.0\.self_attn\.q_proj")  # 0.1 M selected parameters
    args = (big, pairs[:2], (ref.chosen[:2], ref.rejected[:2]), pairs[2:],
            (ref.chosen[2:], ref.rejected[2:]), obj, 0)
    auto = compute_influence(*args, InfluenceSettings(method="auto", **settings), progress=False)
    vmap = compute_influence(*args, InfluenceSettings(method="vmap", **settings), progress=False)
    assert auto.method == "loop" and vmap.method == "vmap"
    np.testing.assert_allclose(auto.total, vmap.total, rtol=1e-4, atol=1e-9)
