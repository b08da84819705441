"""Pairwise objectives: a margin of the pair and a loss of the margin.

Every score in prefsift (IRM, LossDiff, IF) is written over an objective, so it works for DPO and
its relatives alike. Margins follow TRL 1.16's DPOTrainer so a number means the same in both tools:

- dpo (TRL "sigmoid"): m = β·Δ,   ℓ = softplus(−m) = −log σ(m)
- hinge (SLiC):        m = β·Δ,   ℓ = max(0, 1 − m)
- ipo:                 m = Δ̄,     ℓ = (m − 1/(2β))²   (Δ̄: log-ratios averaged per completion token,
                                                         as TRL does)
- bt (reward model):   m = r(x, y_w) − r(x, y_l),  ℓ = softplus(−m)

with Δ = (log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x)).
IRM is the margin m itself; the loss ℓ is what LossDiff and IF differentiate."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

OBJECTIVES = ("dpo", "ipo", "hinge", "bt")


@dataclass(frozen=True)
class PairwiseObjective:
    name: str = "dpo"
    beta: float = 0.1

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.name!r}; choose one of {OBJECTIVES}")
        if self.name != "bt" and not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")

    def margin(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
               chosen_lengths=None, rejected_lengths=None):
        """The margin from summed response log-probs (policy and reference), or from rewards for `bt`
        (pass r(x, y_w) as chosen_logps and r(x, y_l) as rejected_logps)."""
        if self.name == "bt":
            return chosen_logps - rejected_logps
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError(f"the {self.name} margin needs reference log-probs")
        chosen_ratio = chosen_logps - ref_chosen_logps
        rejected_ratio = rejected_logps - ref_rejected_logps
        if self.name == "ipo":
            if chosen_lengths is None or rejected_lengths is None:
                raise ValueError("the ipo margin averages per completion token: pass the completion lengths")
            return chosen_ratio / _clamp1(chosen_lengths) - rejected_ratio / _clamp1(rejected_lengths)
        return self.beta * (chosen_ratio - rejected_ratio)

    def loss(self, margin):
        """Per-pair loss of the margin (a tensor in, a tensor out; no reduction)."""
        if self.name in ("dpo", "bt"):
            return F.softplus(-margin)
        if self.name == "hinge":
            return torch.relu(1 - margin)
        return (margin - 1 / (2 * self.beta)) ** 2  # ipo


def _clamp1(lengths):
    if isinstance(lengths, torch.Tensor):
        return lengths.clamp(min=1)
    import numpy as np

    return np.maximum(np.asarray(lengths), 1)
