"""IF by forward mode (`method="jvp"`) against the per-pair gradient route, in true float64, and
against central finite differences; IRM's log-probs from the same pass against the log-prob
engine."""

import numpy as np
import pytest
import torch

from prefsift.data.tokenization import TokenizedPair
from prefsift.models.loading import LoraSettings, add_lora
from prefsift.models.objectives import PairwiseObjective
from prefsift.scoring.gradients import pair_inputs as _pair_inputs
from prefsift.scoring.gradients import pair_losses
from prefsift.scoring.influence import InfluenceSettings, compute_influence
from prefsift.scoring.logprobs import LogprobSettings, compute_pair_logps
from tests.float64 import true_float64
from tests.tiny import llama

VOCAB = 40
PAD = 2  # also the end-of-response token, and it occurs inside prompts: the padding row matters


def _pairs(n, seed):
    g = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = [1] + g.integers(3, VOCAB, g.integers(2, 6)).tolist()
        # a chat template's <|im_end|> inside the prompt
        p.insert(int(g.integers(1, len(p) + 1)), PAD)
        c = g.integers(3, VOCAB, g.integers(1, 7)).tolist() + [PAD]
        r = g.integers(3, VOCAB, g.integers(1, 7)).tolist() + [PAD]
        out.append(TokenizedPair(p, c, r))
    return out


def _model(tied: bool, seed: int, padding_idx: bool = True):
    return true_float64(llama(VOCAB, seed, pad_token_id=PAD if padding_idx else None,
                              tie_word_embeddings=tied))


@pytest.fixture(scope="module", params=[(True, True), (False, True), (True, False)],
                ids=["tied", "untied", "tied-no-padding-idx"])
def setup(request):
    tied, padding_idx = request.param
    ref, policy = _model(tied, 0, padding_idx), _model(tied, 0, padding_idx)
    assert policy.model.embed_tokens.padding_idx == (PAD if padding_idx else None)
    assert (policy.lm_head.weight is policy.model.embed_tokens.weight) == tied
    with torch.no_grad():  # θ: the reference moved a little, as after a warm-up
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    train, val = _pairs(24, 1), _pairs(12, 2)
    s = LogprobSettings(max_length=None)
    rt, rv = (compute_pair_logps(ref, train, 0, s, progress=False),
              compute_pair_logps(ref, val, 0, s, progress=False))
    return policy, train, val, (rt.chosen, rt.rejected), (rv.chosen, rv.rejected)


def _both(policy, setup, obj, **kw):
    _, train, val, ref_train, ref_val = setup
    run = lambda method: compute_influence(policy, train, ref_train, val, ref_val, obj, 0,
                                           InfluenceSettings(method=method, max_length=None, **kw),
                                           progress=False)
    return run("jvp"), run("loop")


@pytest.mark.parametrize("objective", ["dpo", "ipo", "hinge"])
def test_jvp_equals_per_pair_gradients(setup, objective):
    policy = setup[0]
    jvp, loop = _both(policy, setup, PairwiseObjective(objective, 0.5))
    assert jvp.method == "jvp" and loop.method == "loop"
    np.testing.assert_allclose(jvp.total, loop.total, rtol=1e-8, atol=1e-13)
    assert list(jvp.groups) == list(loop.groups) == ["embeddings", "layer.00", "layer.01", "head"]
    for g in loop.groups:  # per layer group too, and the groups sum to the total
        np.testing.assert_allclose(jvp.groups[g], loop.groups[g], rtol=1e-8, atol=1e-13)
    np.testing.assert_allclose(sum(jvp.groups.values()), jvp.total, rtol=1e-12)
    assert np.std(loop.total) > 0


def test_total_only_equals_sum_of_groups(setup):
    policy = setup[0]
    obj = PairwiseObjective("dpo", 0.5)
    _, train, val, ref_train, ref_val = setup
    total = compute_influence(policy, train, ref_train, val, ref_val, obj, 0,
                              InfluenceSettings(method="jvp", max_length=None, jvp_groups=False),
                              progress=False)
    loop = compute_influence(policy, train, ref_train, val, ref_val, obj, 0,
                             InfluenceSettings(method="loop", max_length=None), progress=False)
    assert not total.groups
    np.testing.assert_allclose(total.total, loop.total, rtol=1e-8, atol=1e-13)


def test_padding_row_follows_the_trainer(setup, monkeypatch):
    """Without the padding-row rule, forward mode would differ from backward (the trap it guards):
    with a tied head, ∇L_val's padding row holds the head's part, which the lookup must not see."""
    from prefsift.scoring import influence_jvp

    policy = setup[0]
    if not (_tied(policy) and policy.model.embed_tokens.padding_idx is not None):
        pytest.skip("the rule matters for a tied head over an embedding with a padding index")
    obj = PairwiseObjective("dpo", 0.5)
    jvp, loop = _both(policy, setup, obj)
    np.testing.assert_allclose(jvp.total, loop.total, rtol=1e-8, atol=1e-13)
    real = influence_jvp._aliases
    monkeypatch.setattr(influence_jvp, "_aliases",
                        lambda model, names: {n: (every, {})
                                              for n, (every, _) in real(model, names).items()})
    unguarded, _ = _both(policy, setup, obj)
    assert np.max(np.abs(unguarded.total - loop.total) / np.abs(loop.total)) > 1e-4


def test_jvp_with_lora(setup):
    policy = setup[0]
    lora = add_lora(_model(_tied(policy), 0, policy.model.embed_tokens.padding_idx is not None),
                    LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj")))
    with torch.no_grad():
        lora.base_model.model.load_state_dict(policy.state_dict(), strict=False)
        for n, p in lora.named_parameters():
            if "lora_B" in n:  # peft starts B at zero; move it so the adapters matter
                p.add_(0.1 * torch.randn_like(p))
    jvp, loop = _both(lora, setup, PairwiseObjective("dpo", 0.5), params="lora")
    np.testing.assert_allclose(jvp.total, loop.total, rtol=1e-8, atol=1e-13)
    assert np.std(loop.total) > 0


def test_jvp_matches_central_finite_differences(setup):
    """IF(d) = d/dε ℓ(θ + ε·∇L_val; d). With untied embeddings backward leaves the padding row of
    ∇L_val at zero, so moving θ along it is the trainer's convention exactly. (With a tied head that
    row holds the head's part, which the lookup must not see; jvp == loop covers that case.)"""
    policy, train, val, ref_train, ref_val = setup
    if _tied(policy) and policy.model.embed_tokens.padding_idx is not None:
        pytest.skip("finite differences of a tied weight also move the lookup's padding row")
    obj = PairwiseObjective("dpo", 0.5)
    sub, refs = train[:8], (ref_train[0][:8], ref_train[1][:8])
    res = compute_influence(policy, sub, refs, val, ref_val, obj, 0,
                            InfluenceSettings(method="jvp", max_length=None), progress=False)
    params = list(policy.parameters())
    g = torch.autograd.grad(pair_losses(policy, _pair_inputs(val, None), *ref_val, obj, 0).mean(),
                            params)
    if policy.model.embed_tokens.padding_idx is not None:
        assert g[0][PAD].abs().max() == 0  # the embedding's padding row: backward never moves it
    eps = 1e-4 / torch.sqrt(sum((x ** 2).sum() for x in g)).item()

    def losses(sign):
        with torch.no_grad():
            for p, gi in zip(params, g):
                p.add_(sign * eps * gi)
            out = pair_losses(policy, _pair_inputs(sub, None), *refs, obj, 0)
            for p, gi in zip(params, g):
                p.sub_(sign * eps * gi)
        return out.numpy()

    fd = (losses(1) - losses(-1)) / (2 * eps)  # error O(ε²)
    np.testing.assert_allclose(res.total, fd, rtol=1e-6, atol=1e-12)


def _tied(model):
    return model.lm_head.weight is model.model.embed_tokens.weight


def test_logprobs_of_the_same_pass_equal_the_engine(setup):
    policy, train, val, ref_train, ref_val = setup
    res = compute_influence(policy, train, ref_train, val, ref_val, PairwiseObjective("dpo", 0.5),
                            0, InfluenceSettings(method="jvp", max_length=None), progress=False)
    engine = compute_pair_logps(policy, train, 0, LogprobSettings(max_length=None), progress=False)
    np.testing.assert_allclose(res.logp_chosen, engine.chosen, rtol=1e-12)
    np.testing.assert_allclose(res.logp_rejected, engine.rejected, rtol=1e-12)


def test_diag_preconditioned_jvp_equals_the_per_pair_route(setup):
    policy, train, val, ref_train, ref_val = setup
    obj = PairwiseObjective("dpo", 0.5)
    jvp, loop = _both(policy, setup, obj, precondition="diag", damping=0.1)
    np.testing.assert_allclose(jvp.total, loop.total, rtol=1e-8, atol=1e-13)
    plain = compute_influence(policy, train, ref_train, val, ref_val, obj, 0,
                              InfluenceSettings(method="jvp", max_length=None), progress=False)
    # it does precondition
    assert np.max(np.abs(plain.total - jvp.total)) > 1e-3 * np.max(np.abs(jvp.total))


def test_several_validation_sets_are_several_tangents_of_one_pass(setup):
    """One IF column per further validation set, each equal to the per-pair route run with that
    set."""
    policy, train, val, ref_train, ref_val = setup
    obj = PairwiseObjective("dpo", 0.5)
    halves = {"first": (val[:6], (ref_val[0][:6], ref_val[1][:6])),
              "second": (val[6:], (ref_val[0][6:], ref_val[1][6:]))}
    res = compute_influence(policy, train, ref_train, val, ref_val, obj, 0,
                            InfluenceSettings(method="jvp", max_length=None), progress=False,
                            extra_validation=halves)
    assert list(res.extra) == ["first", "second"]
    for name, (pairs, refs) in halves.items():
        alone = compute_influence(policy, train, ref_train, pairs, refs, obj, 0,
                                  InfluenceSettings(method="loop", max_length=None), progress=False)
        np.testing.assert_allclose(res.extra[name], alone.total, rtol=1e-8, atol=1e-13)
    # L_val is the mean over the pairs: the full set's IF is the size-weighted mean of the halves'.
    np.testing.assert_allclose(res.total, (6 * res.extra["first"] + 6 * res.extra["second"]) / 12,
                               rtol=1e-8)
