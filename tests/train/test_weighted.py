"""DPO with a weight per pair (train/weighted.py) against TRL's own DPOTrainer and a hand-written
DPO loss: every weight 1 gives TRL's loss and TRL's step; a weighted batch's loss is Σ w·ℓ / Σ w
with ℓ computed here from the model's log-probs; a pair at weight 0 changes nothing."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prefsift.train.weighted import EPSILON, WEIGHT, weighted_dpo_trainer_class
from tests.tiny import word_model

PAIRS = [{"prompt": "Q?", "chosen": " good answer", "rejected": " bad"},
         {"prompt": "Q? w", "chosen": " yes", "rejected": " no no x"},
         {"prompt": "p x", "chosen": " long answer good", "rejected": " bad answer"},
         {"prompt": "Q? p", "chosen": " yes good", "rejected": " no"}]
BETA = 0.1


def _trainer(cls, model, ref, tok, rows, tmp_path, **cfg):
    from datasets import Dataset
    from trl import DPOConfig

    args = DPOConfig(output_dir=str(tmp_path / "t"), beta=BETA,
                     per_device_train_batch_size=len(rows), max_steps=1, learning_rate=0.5,
                     optim="sgd", lr_scheduler_type="constant", bf16=False, fp16=False,
                     use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True, seed=0,
                     **cfg)
    return cls(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
               processing_class=tok)


def _first_batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


def _dpo_loss_by_hand(model, ref, batch, eps: float = 0.0):
    """Per-pair DPO loss −log σ(β((π_w − ref_w) − (π_l − ref_l))) from the models' log-probs of the
    completion tokens, computed here from the logits (no TRL code)."""
    ids, mask = batch["input_ids"], batch["completion_mask"]

    def logps(m):
        logits = m(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1]
        tok = torch.log_softmax(logits.double(), -1).gather(-1, ids[:, 1:, None])[..., 0]
        return (tok * mask[:, 1:]).sum(1)

    with torch.no_grad():
        pol, rf = logps(model), logps(ref)
    n = ids.shape[0] // 2
    delta = (pol[:n] - rf[:n]) - (pol[n:] - rf[n:])
    return -(1 - eps) * F.logsigmoid(BETA * delta) - eps * F.logsigmoid(-BETA * delta)


@pytest.fixture
def models(word_tokenizer):
    return word_model(word_tokenizer, seed=0), word_model(word_tokenizer, seed=1)


def test_weighted_loss_is_the_weighted_mean_of_hand_computed_dpo_losses(word_tokenizer, models,
                                                                        tmp_path):
    from trl import DPOTrainer

    model, ref = models
    weights = [0.5, 2.0, 1.0, 0.0]
    rows = [{**p, WEIGHT: w} for p, w in zip(PAIRS, weights)]
    weighted = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer, rows,
                        tmp_path / "w")
    weighted.model.train()
    batch = _first_batch(weighted)
    # the data order is the sampler's; the weights travel with their pairs
    got_w = batch[WEIGHT].tolist()
    by_hand = _dpo_loss_by_hand(weighted.model, ref, batch)
    expected = float((torch.tensor(got_w, dtype=torch.float64) * by_hand).sum() / sum(got_w))
    with torch.no_grad():
        loss = float(weighted.compute_loss(weighted.model, {k: v for k, v in batch.items()}))
    assert sorted(got_w) == sorted(weights)
    assert loss == pytest.approx(expected, rel=1e-5)
    # Every weight 1: TRL's own batch loss, and the hand-computed mean.
    ones = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer,
                    [{**p, WEIGHT: 1.0} for p in PAIRS], tmp_path / "1")
    plain = _trainer(DPOTrainer, model, ref, word_tokenizer, PAIRS, tmp_path / "p")
    b1, bp = _first_batch(ones), _first_batch(plain)
    with torch.no_grad():
        l1 = float(ones.compute_loss(ones.model, dict(b1)))
        lp = float(plain.compute_loss(plain.model, dict(bp)))
    assert l1 == pytest.approx(lp, rel=1e-6)
    assert l1 == pytest.approx(float(_dpo_loss_by_hand(ones.model, ref, b1).mean()), rel=1e-5)


def _one_step(cls, model, ref, tok, rows, tmp_path):
    trainer = _trainer(cls, copy.deepcopy(model), ref, tok, rows, tmp_path)
    trainer.train()
    return {n: p.detach() for n, p in trainer.model.named_parameters()}


def test_every_weight_one_takes_trls_step_and_a_zero_weight_pair_changes_nothing(word_tokenizer,
        models, tmp_path):
    from trl import DPOTrainer

    model, ref = models
    cls = weighted_dpo_trainer_class()
    trl_all = _one_step(DPOTrainer, model, ref, word_tokenizer, PAIRS, tmp_path / "a")
    ours_all = _one_step(cls, model, ref, word_tokenizer, [{**p, WEIGHT: 1.0} for p in PAIRS],
                         tmp_path / "b")
    trl_three = _one_step(DPOTrainer, model, ref, word_tokenizer, PAIRS[:2] + PAIRS[3:],
                          tmp_path / "c")
    ours_zero = _one_step(cls, model, ref, word_tokenizer,
                          [{**p, WEIGHT: 0.0 if i == 2 else 1.0} for i, p in enumerate(PAIRS)],
                          tmp_path / "d")
    start = dict(model.named_parameters())
    moved = [n for n in start if not torch.allclose(trl_all[n], start[n].detach(), atol=1e-7)]
    assert len(moved) > len(start) // 2  # the step is a real one
    for n in start:
        assert torch.allclose(ours_all[n], trl_all[n], rtol=1e-5, atol=1e-7), n
        assert torch.allclose(ours_zero[n], trl_three[n], rtol=1e-5, atol=1e-7), n
    # ... and the zero-weight pair's own step is not a no-op: without it the step differs.
    assert any(not torch.allclose(ours_zero[n], trl_all[n], atol=1e-7) for n in start)


def test_weights_are_normalized_over_the_whole_data_not_each_batch(word_tokenizer, models,
                                                                   tmp_path):
    """Two batches of two: a batch of low-weight pairs takes a small step. The loss of a batch is
    Σ w·ℓ / (|B|·w̄), w̄ the mean weight of all four pairs, by hand; and all-zero weights are
    refused."""
    model, ref = models
    weights = [0.1, 0.1, 1.9, 1.9]
    rows = [{**p, WEIGHT: w} for p, w in zip(PAIRS, weights)]
    trainer = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer, rows,
                       tmp_path / "n")
    trainer.model.train()
    assert trainer.mean_weight == pytest.approx(1.0)
    # TRL's own collator underneath
    from trl.trainer.dpo_trainer import DataCollatorForPreference  # noqa: F401

    low = trainer.data_collator([trainer.train_dataset[i] for i in (0, 1)])
    with torch.no_grad():
        loss = float(trainer.compute_loss(trainer.model, dict(low)))
        by_hand = float((0.1 * _dpo_loss_by_hand(trainer.model, ref, low)).sum() / (2 * 1.0))
    assert loss == pytest.approx(by_hand, rel=1e-5)
    with pytest.raises(ValueError, match="every training pair has weight 0"):
        _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer,
                 [{**p, WEIGHT: 0.0} for p in PAIRS], tmp_path / "z")


def test_conservative_dpo_is_the_label_smoothed_loss_by_hand(word_tokenizer, models, tmp_path):
    """cDPO with ε: −(1 − ε)·log σ(m) − ε·log σ(−m) per pair, the batch mean (weights all 1), and
    with weights their weighted mean; evaluation stays TRL's plain loss."""
    model, ref = models
    trainer = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer, PAIRS,
                       tmp_path / "c")
    trainer.conservative = 0.2
    trainer.model.train()
    batch = _first_batch(trainer)
    logged = len(trainer._metrics["train"]["rewards/margins"])
    with torch.no_grad():
        loss = float(trainer.compute_loss(trainer.model, dict(batch)))
        expected = float(_dpo_loss_by_hand(trainer.model, ref, batch, eps=0.2).mean())
        assert loss == pytest.approx(expected, rel=1e-5)
        # ε matters
        assert abs(expected - float(_dpo_loss_by_hand(trainer.model, ref, batch).mean())) > 1e-4
        # the swapped pass logs nothing: one entry, the batch's mean margin as labelled (ℓ =
        # softplus(−m))
        margins = trainer._metrics["train"]["rewards/margins"][logged:]
        clean = _dpo_loss_by_hand(trainer.model, ref, batch).numpy()
        assert (len(margins) == 1
                and margins[0] == pytest.approx(float(np.mean(-np.log(np.expm1(clean)))), rel=1e-4))
        trainer.model.eval()
        plain = float(trainer.compute_loss(trainer.model, dict(batch)))
        assert (plain
                == pytest.approx(float(_dpo_loss_by_hand(trainer.model, ref, batch).mean()),
                                 rel=1e-5))
    with pytest.raises(ValueError, match="conservative"):
        weighted_dpo_trainer_class()(model=model, conservative=0.5)


def test_robust_dpo_trains_trls_robust_loss_and_validates_with_the_plain_one(word_tokenizer, models,
                                                                             tmp_path):
    model, ref = models
    eps = 0.2
    trainer = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer, PAIRS,
                       tmp_path / "r", loss_type=["robust"], label_smoothing=eps)
    trainer.eval_loss_type = "sigmoid"
    batch = _first_batch(trainer)
    clean, flipped = (_dpo_loss_by_hand(trainer.model, ref, batch),
                      _dpo_loss_by_hand(trainer.model, ref, batch, eps=1.0))
    with torch.no_grad():
        trainer.model.train()
        train_loss = float(trainer.compute_loss(trainer.model, dict(batch)))
        trainer.model.eval()
        eval_loss = float(trainer.compute_loss(trainer.model, dict(batch)))
    # rDPO by hand: ((1 − ε)·ℓ(m) − ε·ℓ(−m)) / (1 − 2ε), ℓ(m) = −log σ(m)
    assert (train_loss
            == pytest.approx(float(((1 - eps) * clean - eps * flipped).mean() / (1 - 2 * eps)),
                             rel=1e-5))
    assert eval_loss == pytest.approx(float(clean.mean()), rel=1e-5)
    # restored after evaluation
    assert trainer.loss_types == ["robust"] and trainer.label_smoothing == eps


def test_an_ordered_stage_is_fed_in_the_order_given(word_tokenizer, models, tmp_path):
    """Selective DPO's curriculum: with `in_order` the trainer's sampler walks the data as given,
    and without it the pairs are shuffled (transformers' own samplers)."""
    from datasets import Dataset
    from torch.utils.data import RandomSampler, SequentialSampler
    from trl import DPOTrainer

    from prefsift.models.objectives import PairwiseObjective
    from prefsift.train.dpo import LossVariant, StageSettings, trl_config

    model, ref = models
    for variant, sampler in ((LossVariant(in_order=True), SequentialSampler),
                             (None, RandomSampler)):
        args = trl_config(PairwiseObjective("dpo", BETA), StageSettings(batch_size=2),
                           tmp_path / str(sampler.__name__), variant=variant)
        trainer = DPOTrainer(model=model, ref_model=ref, args=args,
                             train_dataset=Dataset.from_list(PAIRS),
                             processing_class=word_tokenizer)
        assert isinstance(trainer._get_train_sampler(), sampler)
    order = [int(b["input_ids"].shape[0]) for b in trainer.get_train_dataloader()]
    assert sum(order) == 2 * len(PAIRS)


def test_conservative_dpo_with_weights_is_the_weighted_mean_of_cdpo_losses(word_tokenizer, models,
                                                                           tmp_path):
    model, ref = models
    rows = [{**p, WEIGHT: w} for p, w in zip(PAIRS, [0.5, 2.0, 1.0, 0.5])]
    trainer = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer, rows,
                       tmp_path / "cw")
    trainer.conservative = 0.3
    trainer.model.train()
    batch = _first_batch(trainer)
    w = torch.tensor(batch[WEIGHT].tolist(), dtype=torch.float64)
    with torch.no_grad():
        loss = float(trainer.compute_loss(trainer.model, dict(batch)))
        by_hand = _dpo_loss_by_hand(trainer.model, ref, batch, eps=0.3)
    assert loss == pytest.approx(float((w * by_hand).sum() / w.sum()), rel=1e-5)


def test_cdpo_by_group_gives_each_pair_its_own_epsilon(word_tokenizer, models, tmp_path):
    """cDPO by group (`pair_epsilon`): the batch loss is the mean of −(1 − ε_d)·log σ(m) − ε_d·log
    σ(−m) with each pair's own ε_d (two values and a zero here), batched or with weights."""
    model, ref = models
    eps = [0.3, 0.0, 0.1, 0.3]
    rows = [{**p, EPSILON: e} for p, e in zip(PAIRS, eps)]
    trainer = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer, rows,
                       tmp_path / "g")
    trainer.model.train()
    batch = _first_batch(trainer)
    e = torch.tensor(batch[EPSILON].tolist(), dtype=torch.float64)
    with torch.no_grad():
        loss = float(trainer.compute_loss(trainer.model, dict(batch)))
        clean = _dpo_loss_by_hand(trainer.model, ref, batch)
        swapped = _dpo_loss_by_hand(trainer.model, ref, batch, eps=1.0)
    assert sorted(e.tolist()) == sorted(eps)
    assert loss == pytest.approx(float(((1 - e) * clean + e * swapped).mean()), rel=1e-5)
    assert abs(loss - float(clean.mean())) > 1e-4  # the ε matter
    weighted = [{**r, WEIGHT: w} for r, w in zip(rows, [0.5, 2.0, 1.0, 0.5])]
    trainer = _trainer(weighted_dpo_trainer_class(), model, ref, word_tokenizer, weighted,
                       tmp_path / "gw")
    trainer.model.train()
    batch = _first_batch(trainer)
    e = torch.tensor(batch[EPSILON].tolist(), dtype=torch.float64)
    w = torch.tensor(batch[WEIGHT].tolist(), dtype=torch.float64)
    with torch.no_grad():
        loss = float(trainer.compute_loss(trainer.model, dict(batch)))
        by_hand = ((1 - e) * _dpo_loss_by_hand(trainer.model, ref, batch)
                   + e * _dpo_loss_by_hand(trainer.model, ref, batch, eps=1.0))
    assert loss == pytest.approx(float((w * by_hand).sum() / w.sum()), rel=1e-5)
