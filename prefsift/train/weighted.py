"""DPO with a weight per pair: a small extension of TRL's DPOTrainer (soft selection).

TRL 1.16 has no per-pair weight (huggingface/trl#5613 asked for one; the draft was closed). Here a
pair's weight w_d ≥ 0 rides along as a `pair_weight` column of the training data, and each batch's
loss is the weighted mean of TRL's own per-pair losses,

    L(batch) = Σ_d w_d · ℓ_TRL(d) / Σ_d w_d,

where ℓ_TRL(d) is exactly what TRL's DPOTrainer computes for the batch that holds d alone (its
loss type, β, label smoothing, reference and metrics unchanged). With ``conservative = ε > 0`` each
pair's loss is conservative DPO's (cDPO, Mitchell 2023: the label is wrong with probability ε),

    ℓ_ε(d) = (1 − ε)·ℓ_TRL(d) + ε·ℓ_TRL(d with chosen and rejected swapped),

which for TRL's sigmoid loss is −(1 − ε)·log σ(m) − ε·log σ(−m). (TRL 1.16 dropped cDPO's
`label_smoothing` from its sigmoid loss; it keeps the robust loss, rDPO, which prefsift uses as is.) So with every weight 1 the loss
equals TRL's batch mean, and a pair at weight 0 is never run through the model: the step is the
step on the batch without it. The normalization is per batch and process (as TRL's mean is);
a batch whose weights are all 0 contributes a zero gradient.

The price is one forward and backward per pair instead of one per batch (same arithmetic, more
kernel launches). TRL's `sft` extra loss, when on, is averaged per pair, not per token of the batch."""

from __future__ import annotations

import torch

WEIGHT = "pair_weight"  # the column of the training data that holds each pair's weight


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
        """TRL's DPOTrainer, each batch's loss the `pair_weight`-weighted mean of its pairs' losses."""

        def __init__(self, *args, conservative: float = 0.0, **kwargs):
            if not 0 <= conservative < 0.5:
                raise ValueError(f"conservative ε must be in [0, 0.5), got {conservative}")
            super().__init__(*args, **kwargs)
            self.conservative = float(conservative)
            self.data_collator = _KeepWeights(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if WEIGHT not in self._signature_columns:
                self._signature_columns = list(self._signature_columns) + [WEIGHT]

        def _compute_loss(self, model, inputs, return_outputs):
            weights = inputs.pop(WEIGHT, None)
            if return_outputs or (weights is None and not self.conservative) or not self.model.training:
                # evaluation: TRL's own loss on the data as given (validation pairs carry no weights)
                return super()._compute_loss(model, inputs, return_outputs)
            n = inputs["input_ids"].shape[0] // 2
            w = [1.0] * n if weights is None else [float(x) for x in weights.tolist()]
            total = sum(w)
            if not total > 0:  # nothing to learn from this batch; keep the graph for DDP's all-reduce
                return super()._compute_loss(model, inputs, False) * 0.0
            loss = 0.0
            eps = self.conservative
            for i, wi in enumerate(w):
                if wi > 0:
                    one = super()._compute_loss(model, _pair(inputs, i, n), False)
                    if eps:
                        one = (1 - eps) * one + eps * super()._compute_loss(model, _pair(inputs, i, n, True), False)
                    loss = loss + wi * one
            return loss / total

    return WeightedDPOTrainer


def _pair(inputs: dict, i: int, n: int, swapped: bool = False) -> dict:
    """Pair i of a batch as a batch of its own (chosen and rejected swapped with ``swapped``).
    TRL stacks the chosen sequences then the rejected ones (2n rows); precomputed reference
    log-probs are per pair (n rows each)."""
    one = {}
    for k, v in inputs.items():
        if not isinstance(v, torch.Tensor) or v.dim() == 0:
            one[k] = v
        elif v.shape[0] == 2 * n:
            one[k] = v[[n + i, i] if swapped else [i, n + i]]
        elif v.shape[0] == n:
            one[k] = v[i:i + 1]
        else:
            raise ValueError(f"batch entry {k!r} has {v.shape[0]} rows for {n} pairs")
    if swapped and "ref_chosen_logps" in one:
        one["ref_chosen_logps"], one["ref_rejected_logps"] = one["ref_rejected_logps"], one["ref_chosen_logps"]
    return one


class _KeepWeights:
    """TRL's collator drops columns it does not know: take the weights out first, put them back."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples):
        weights = [float(e[WEIGHT]) for e in examples] if examples and WEIGHT in examples[0] else None
        batch = self.collator([{k: v for k, v in e.items() if k != WEIGHT} for e in examples])
        if weights is not None:
            batch[WEIGHT] = torch.tensor(weights, dtype=torch.float32)
        return batch
