"""DPO with a weight per pair, conservative DPO, and a plain validation loss: a small extension of
TRL's DPOTrainer (soft selection and the noise-robust arms).

TRL 1.16 has no per-pair weight (huggingface/trl#5613 asked for one; the draft was closed). Here a
pair's weight w_d ≥ 0 rides along as a `pair_weight` column of the training data, and a batch B's
loss is

    L(B) = Σ_{d∈B} w_d · ℓ_TRL(d) / (|B| · w̄),   w̄ the mean weight over the whole training data,

where ℓ_TRL(d) is exactly what TRL's DPOTrainer computes for the batch that holds d alone (its
loss type, β, reference and metrics unchanged). The normalizer is one constant for the whole
stage, so a batch of low-weight pairs takes a small step (a per-batch Σ w would give every batch a
full one). With every weight 1 the loss is TRL's batch mean; when the data is one batch, a pair at
weight 0 leaves the step exactly as without it. Every pair of a batch is run (a weight 0 multiplies
its loss), so every process makes the same collective calls under DDP.

With ``conservative = ε > 0`` each pair's loss is conservative DPO's (cDPO, Mitchell 2023: the
label is wrong with probability ε),

    ℓ_ε(d) = (1 − ε)·ℓ_TRL(d) + ε·ℓ_TRL'(d with chosen and rejected swapped),

ℓ_TRL' without TRL's `sft` term (no SFT on a rejected answer); for the sigmoid loss
−(1 − ε)·log σ(m) − ε·log σ(−m). TRL 1.16 no longer applies `label_smoothing` to its sigmoid loss.
The swapped pass's metrics are not logged. With a `pair_epsilon` column each pair has its own ε
(cDPO by group): a batch's loss is Σ_ε (n_ε / n)·(its pairs at that ε, cDPO's loss), two batched
passes per distinct ε in the batch.

Evaluation (the validation curve) always uses the run objective's plain loss (``eval_loss_type``),
so that the curves of robust, conservative and weighted arms compare with the others'.

The price of weights is one forward and backward per pair instead of one per batch (the same
arithmetic, more kernel launches), and TRL's `sft` extra loss, when on, is averaged per pair, not
per token. cDPO without weights is two batched passes (its batch mean is linear in the two
losses)."""

from __future__ import annotations

import torch

WEIGHT = "pair_weight"  # the column of the training data that holds each pair's weight
EPSILON = "pair_epsilon"  # cDPO by group: the column that holds each pair's own ε


def weighted_dpo_trainer_class():
    """The DPOTrainer subclass (built on first use: importing TRL is slow)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _build()
    return _CLASS


_CLASS = None


def _build():
    from trl import DPOTrainer

    class WeightedDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer with per-pair weights, cDPO and a plain validation loss (module
        docstring)."""

        def __init__(self, *args, conservative: float = 0.0, eval_loss_type: str | None = None,
                     **kwargs):
            if not 0 <= conservative < 0.5:
                raise ValueError(f"conservative ε must be in [0, 0.5), got {conservative}")
            super().__init__(*args, **kwargs)
            self.conservative = float(conservative)
            self.eval_loss_type = eval_loss_type
            self.data_collator = _KeepWeights(self.data_collator)
            data = self.train_dataset
            self.mean_weight = (float(sum(data[WEIGHT]) / len(data))
                                if data is not None and len(data)
                                and WEIGHT in data.column_names else 1.0)
            if not self.mean_weight > 0:
                raise ValueError("every training pair has weight 0: there is nothing to train on")

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            extra = [c for c in (WEIGHT, EPSILON) if c not in self._signature_columns]
            self._signature_columns = list(self._signature_columns) + extra

        def _compute_loss(self, model, inputs, return_outputs):
            weights = inputs.pop(WEIGHT, None)
            epsilons = inputs.pop(EPSILON, None)
            # evaluation: the run objective's plain loss
            if return_outputs or not self.model.training:
                with _plain_loss(self, self.eval_loss_type):
                    return super()._compute_loss(model, inputs, return_outputs)
            eps = self.conservative
            n = inputs["input_ids"].shape[0] // 2
            if epsilons is not None and weights is None:
                # cDPO by group: the batch mean is the share-weighted sum of each ε's sub-batch
                # mean, so two batched passes per distinct ε in the batch are exact.
                loss = 0.0
                for value in torch.unique(epsilons).tolist():
                    rows = torch.nonzero(epsilons == value).flatten().tolist()
                    one = super()._compute_loss(model, _pairs(inputs, rows, n), False)
                    if value:
                        one = ((1 - value) * one
                               + value * self._swapped_loss(model, _pairs(inputs, rows, n, True)))
                    loss = loss + len(rows) / n * one
                return loss
            # cDPO on the whole batch: the mean is linear, so two batched passes are exact
            if weights is None:
                loss = super()._compute_loss(model, inputs, False)
                if eps:
                    n = inputs["input_ids"].shape[0] // 2
                    loss = ((1 - eps) * loss
                            + eps * self._swapped_loss(model, _pairs(inputs, range(n), n, True)))
                return loss
            w = [float(x) for x in weights.tolist()]
            loss = 0.0
            for i, wi in enumerate(w):
                one = super()._compute_loss(model, _pairs(inputs, [i], n), False)
                e = float(epsilons[i]) if epsilons is not None else eps
                if e:
                    one = ((1 - e) * one
                           + e * self._swapped_loss(model, _pairs(inputs, [i], n, True)))
                loss = loss + wi * one
            return loss / (n * self.mean_weight)

        def _swapped_loss(self, model, swapped: dict):
            """TRL's loss of pairs with chosen and rejected swapped: no `sft` term (it would train
            on the rejected answers), and no metrics logged (they are not the pairs' own)."""
            kept = {k: len(v) for k, v in self._metrics["train"].items()}
            with _plain_loss(self, None, sft=False):
                loss = super()._compute_loss(model, swapped, False)
            for k, length in kept.items():
                del self._metrics["train"][k][length:]
            return loss

    return WeightedDPOTrainer


def _pairs(inputs: dict, which, n: int, swapped: bool = False) -> dict:
    """Pairs ``which`` of a batch of n as a batch of their own (chosen and rejected swapped with
    ``swapped``). TRL stacks the chosen sequences then the rejected ones (2n rows); precomputed
    reference log-probs are per pair (n rows each)."""
    which = list(which)
    rows = [n + i for i in which] + which if swapped else which + [n + i for i in which]
    out = {}
    for k, v in inputs.items():
        if not isinstance(v, torch.Tensor) or v.dim() == 0:
            out[k] = v
        elif v.shape[0] == 2 * n:
            out[k] = v[rows]
        elif v.shape[0] == n:
            out[k] = v[which]
        else:
            raise ValueError(f"batch entry {k!r} has {v.shape[0]} rows for {n} pairs")
    if swapped and "ref_chosen_logps" in out:
        out["ref_chosen_logps"], out["ref_rejected_logps"] = (out["ref_rejected_logps"],
                                                              out["ref_chosen_logps"])
    return out


class _plain_loss:
    """Within the block, TRL's loss is ``loss_type`` alone (None: the stage's own first loss type),
    without label smoothing, and with TRL's `sft` term kept only if ``sft``."""

    def __init__(self, trainer, loss_type: str | None, sft: bool = True):
        self.trainer, self.loss_type, self.sft = trainer, loss_type, sft

    def __enter__(self):
        t = self.trainer
        self.saved = (t.loss_types, t.loss_weights, t.label_smoothing)
        types = [self.loss_type or t.loss_types[0]]
        weights = [t.loss_weights[0]]
        if self.sft and "sft" in t.loss_types:
            types.append("sft")
            weights.append(t.loss_weights[t.loss_types.index("sft")])
        t.loss_types, t.loss_weights, t.label_smoothing = types, weights, 0.0
        return self

    def __exit__(self, *exc):
        t = self.trainer
        t.loss_types, t.loss_weights, t.label_smoothing = self.saved
        return False


class _KeepWeights:
    """TRL's collator drops columns it does not know: take the weights (and the ε) out first, put
    them back."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples):
        kept = {c: torch.tensor([float(e[c]) for e in examples],
                                dtype=torch.float32 if c == WEIGHT else torch.float64)
                for c in (WEIGHT, EPSILON) if examples and c in examples[0]}
        batch = self.collator([{k: v for k, v in e.items() if k not in kept} for e in examples])
        batch.update(kept)
        return batch
