"""The reward-model route's building blocks: a RewardTrainer stage, the BT margins against the ones
RewardTrainer computes for the same pairs, and IF against central finite differences in float64."""

import numpy as np
import pytest
import torch

from prefsift.data.tokenization import tokenize_pairs
from prefsift.scoring.rewards import bt_losses, pair_rewards, reward_influence
from prefsift.train.dpo import StageSettings
from prefsift.train.reward import reward_model_from, train_reward_stage
from tests.float64 import true_float64
from tests.tiny import REWARD_RECORDS, save_word_model


@pytest.fixture
def start(word_tokenizer, tmp_path):
    return save_word_model(word_tokenizer, tmp_path / "pi_ref", seed=0)


def _toks(tok, records):
    return tokenize_pairs(tok, [r["prompt"] for r in records], [r["chosen"] for r in records],
                          [r["rejected"] for r in records], "standard")


def test_bt_margins_equal_reward_trainers(word_tokenizer, start, tmp_path):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    tok = word_tokenizer
    rm = reward_model_from(start, tok, seed=3)
    args = RewardConfig(output_dir=str(tmp_path / "t"), bf16=False, use_cpu=True, report_to=[],
                        max_length=None, per_device_train_batch_size=8)
    trainer = RewardTrainer(model=rm, args=args, train_dataset=Dataset.from_list(REWARD_RECORDS),
                            processing_class=tok)
    ds = trainer.train_dataset
    ours = _toks(tok, REWARD_RECORDS)
    # The same token ids: prompt + response as one text, EOS appended, BOS from the tokenizer.
    assert ([list(t.prompt_ids) + list(t.chosen_ids) for t in ours]
            == [list(x) for x in ds["chosen_ids"]])
    assert ([list(t.prompt_ids) + list(t.rejected_ids) for t in ours]
            == [list(x) for x in ds["rejected_ids"]])
    batch = trainer.data_collator([ds[i] for i in range(len(ds))])
    rm.eval()
    with torch.no_grad():
        _, out = trainer.compute_loss(rm, batch, return_outputs=True)
    theirs_c, theirs_r = torch.chunk(out.logits.squeeze(-1), 2)
    rc, rr = pair_rewards(rm, ours, tok.pad_token_id, max_length=None, token_budget=64)
    np.testing.assert_allclose(rc - rr, (theirs_c - theirs_r).double().numpy(), atol=1e-5)
    np.testing.assert_allclose(rc, theirs_c.double().numpy(), atol=1e-5)


def test_reward_stage_moves_every_weight_and_is_reused(word_tokenizer, start, tmp_path):
    tok = word_tokenizer
    rm = reward_model_from(start, tok, seed=0)
    before = {n: p.detach().clone() for n, p in rm.named_parameters()}
    settings = StageSettings(epochs=1, learning_rate=1e-2, batch_size=8)
    trained, info = train_reward_stage(rm, tok, REWARD_RECORDS, settings, tmp_path / "rm",
                                       start_key="s", data_key="d", log=lambda *a: None)
    after = dict(trained.named_parameters())
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n].detach())]
    assert not unchanged, unchanged[:5]
    assert info["steps"] == 3 and np.isfinite(info["train_loss"])
    again, info2 = train_reward_stage(rm, tok, REWARD_RECORDS, settings, tmp_path / "rm",
                                      start_key="s", data_key="d", log=lambda *a: None)
    assert info2["seconds"] == info["seconds"]
    ours = _toks(tok, REWARD_RECORDS)
    np.testing.assert_allclose(pair_rewards(again, ours, 0)[0], pair_rewards(trained, ours, 0)[0],
                               atol=1e-6)
    # Trained on these pairs, the RM prefers the chosen side more often than not.
    rc, rr = pair_rewards(trained, ours, 0)
    assert (rc > rr).mean() > 0.5


def test_reward_if_equals_central_finite_differences(word_tokenizer, start):
    from prefsift.scoring.influence import layer_group, select_parameters

    tok = word_tokenizer
    rm = true_float64(reward_model_from(start, tok, seed=1, attn_implementation="eager"))
    train, val = _toks(tok, REWARD_RECORDS[:6]), _toks(tok, REWARD_RECORDS[10:16])
    params = select_parameters(rm, "all")
    total, groups = reward_influence(rm, params, train, val, tok.pad_token_id, max_length=None,
                                     groups=[layer_group(n) for n in params], val_batch=4)
    np.testing.assert_allclose(sum(groups.values()), total, rtol=1e-12)

    def loss(pairs):
        with torch.no_grad():
            return bt_losses(rm, pairs, tok.pad_token_id, None).double()

    # ∇L_val by its own finite differences along a random direction u, then IF(d) as the derivative
    # of ℓ(d) along ∇L_val (L_val's gradient taken by autograd here, independently of the code).
    g_val = torch.autograd.grad(bt_losses(rm, val, tok.pad_token_id, None).mean(),
                                list(params.values()))
    eps = 1e-5
    gen = torch.Generator().manual_seed(0)
    u = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params.values()]
    norm = torch.sqrt(sum((x ** 2).sum() for x in u))
    u = [x / norm for x in u]  # a unit direction: the difference quotient's error grows with |u|^3

    def along(direction, pairs):
        vals = []
        for sign in (1, -1):
            with torch.no_grad():
                for p, d in zip(params.values(), direction):
                    p.add_(sign * eps * d)
            vals.append(loss(pairs))
            with torch.no_grad():
                for p, d in zip(params.values(), direction):
                    p.sub_(sign * eps * d)
        return (vals[0] - vals[1]) / (2 * eps)

    fd_u = float(along(u, val).mean())
    np.testing.assert_allclose(fd_u, sum(float((g * d).sum()) for g, d in zip(g_val, u)), rtol=1e-7,
                               atol=1e-12)
    fd = along([g.detach() for g in g_val], train).numpy()
    np.testing.assert_allclose(total, fd, rtol=1e-6, atol=1e-10)


def test_score_with_a_reward_model_lossdiff_is_the_sgd_step_times_if(word_tokenizer, start,
                                                                     tmp_path):
    """`prefsift score --objective bt` on a reward model: every input row is in the table, and with
    one SGD step of size η on all the validation pairs, LossDiff = η·IF to first order."""
    import json

    from scipy.stats import pearsonr

    from prefsift.scoring.table import ScoreConfig, compute_scores

    tok = word_tokenizer
    rm, _ = train_reward_stage(reward_model_from(start, tok, seed=0), tok, REWARD_RECORDS,
                               StageSettings(batch_size=8),
                               tmp_path / "rm", start_key="s", data_key="d", log=lambda *a: None)
    train = tmp_path / "train.jsonl"
    rows = [json.dumps(r) for r in REWARD_RECORDS[:16]]
    # no rejected: kept as a row, with its reason
    rows.insert(3, json.dumps({"prompt": "Q1?", "chosen": " yes"}))
    train.write_text("\n".join(rows) + "\n")
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps(r) + "\n" for r in REWARD_RECORDS[16:]))
    eta = 1e-3
    cfg = ScoreConfig(policy=str(tmp_path / "rm" / "model"),
                      reference=str(tmp_path / "rm" / "model"), train=str(train),
                      validation=str(val), out=str(tmp_path / "out"), objective="bt", val_lr=eta,
                      val_batch_size=8, val_optimizer="sgd")
    table = compute_scores(cfg, progress=False, log=lambda *a: None)
    assert len(table) == 17 and table["valid"].sum() == 16
    assert table.loc[~table["valid"], "reason_code"].item() == "missing_field"
    ok = table[table["valid"]]
    np.testing.assert_allclose(ok["irm"], ok["reward_chosen"] - ok["reward_rejected"], rtol=1e-12)
    assert pearsonr(ok["lossdiff"], ok["if"])[0] > 0.99
    # The step is TRL's: η times ∇L_val clipped to norm 1 (the trainer's max_grad_norm), ∇L_val by
    # autograd here.
    g = torch.autograd.grad(bt_losses(rm, _toks(tok, REWARD_RECORDS[16:]), tok.pad_token_id,
                                      1024).mean(),
                            [p for p in rm.parameters() if p.requires_grad])
    norm = float(torch.sqrt(sum((x.double() ** 2).sum() for x in g)))
    step = eta * min(1.0, 1.0 / norm)
    np.testing.assert_allclose(ok["lossdiff"], step * ok["if"], rtol=0.05,
                               atol=1e-3 * step * ok["if"].abs().max())
    assert ok["tif"].sum() == round(0.64 * 16)


def test_reward_if_by_forward_mode_equals_the_per_pair_route(word_tokenizer, start):
    from prefsift.scoring.influence import layer_group, select_parameters
    from prefsift.scoring.rewards import reward_influence_jvp

    tok = word_tokenizer
    rm = true_float64(reward_model_from(start, tok, seed=2, attn_implementation="eager"))
    # 7 pairs: a last batch of 3 (batch 4)
    train, val = _toks(tok, REWARD_RECORDS[:7]), _toks(tok, REWARD_RECORDS[10:16])
    params = select_parameters(rm, "all")
    groups = [layer_group(n) for n in params]
    total, per = reward_influence(rm, params, train, val, tok.pad_token_id, max_length=None,
                                  groups=groups)
    total_j, per_j = reward_influence_jvp(rm, params, train, val, tok.pad_token_id, max_length=None,
                                          groups=groups, batch=4)
    scale = np.abs(total).max()
    np.testing.assert_allclose(total_j, total, rtol=1e-8, atol=1e-10 * scale)
    for g in per:
        np.testing.assert_allclose(per_j[g], per[g], rtol=1e-7, atol=1e-10 * scale)
