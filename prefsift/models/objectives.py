"""Pairwise objectives: a margin of the pair and a loss of the margin.

Every score in prefsift (IRM, LossDiff, IF) is written over an objective, so it works for DPO and
its relatives alike. Margins follow TRL 1.16's DPOTrainer so a number means the same in both tools:

- dpo (TRL "sigmoid"): m = β·Δ,   ℓ = softplus(−m) = −log σ(m)
- hinge (SLiC):        m = β·Δ,   ℓ = max(0, 1 − m)
- ipo:                 m = Δ̄,     ℓ = (m − 1/(2β))²
                       (Δ̄: log-ratios averaged per completion token, as TRL does)
- bt (reward model):   m = r(x, y_w) − r(x, y_l),  ℓ = softplus(−m)

with Δ = (log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x)).
IRM is the margin m itself; the loss ℓ is what LossDiff and IF differentiate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..core.registry import Registry


@dataclass(frozen=True)
class Objective:
    """One pairwise objective: how its margin is made from log-probs (``margin``: "ratio" β·Δ,
    "mean_ratio" Δ̄ per completion token, "reward" r_w − r_l), its loss of the margin, and the
    `loss_type` of TRL's DPOTrainer that trains it (None: not a DPOTrainer objective)."""

    name: str
    margin: str
    loss: Callable  # (margin tensor, beta) -> per-pair loss
    trl_loss: str | None
    help: str = ""


OBJECTIVES: Registry[Objective] = Registry("objective", key="objective")
for _o in (
    Objective("dpo", "ratio", lambda m, beta: F.softplus(-m), "sigmoid", "DPO: softplus(−β·Δ)"),
    Objective("ipo", "mean_ratio", lambda m, beta: (m - 1 / (2 * beta)) ** 2, "ipo",
              "IPO: (Δ̄ − 1/(2β))²"),
    Objective("hinge", "ratio", lambda m, beta: torch.relu(1 - m), "hinge",
              "SLiC/hinge: max(0, 1 − β·Δ)"),
    Objective("bt", "reward", lambda m, beta: F.softplus(-m), None,
              "Bradley–Terry reward model: softplus(−(r_w − r_l))"),
):
    OBJECTIVES.register(_o.name, _o)


def trainable_with_dpo() -> tuple[str, ...]:
    """The objectives TRL's DPOTrainer trains (the `objective` choices of a DPO-route run)."""
    return tuple(name for name, o in OBJECTIVES.items() if o.trl_loss is not None)


@dataclass(frozen=True)
class PairwiseObjective:
    name: str = "dpo"
    beta: float = 0.1

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.name!r}; choose one of {OBJECTIVES.names()}")
        if self.name != "bt" and not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")

    @property
    def kind(self) -> Objective:
        return OBJECTIVES.get(self.name)

    def margin(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
               chosen_lengths=None, rejected_lengths=None):
        """The margin from summed response log-probs (policy and reference), or from rewards for
        `bt` (pass r(x, y_w) as chosen_logps and r(x, y_l) as rejected_logps)."""
        how = self.kind.margin
        if how == "reward":
            return chosen_logps - rejected_logps
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError(f"the {self.name} margin needs reference log-probs")
        chosen_ratio = chosen_logps - ref_chosen_logps
        rejected_ratio = rejected_logps - ref_rejected_logps
        if how == "mean_ratio":
            if chosen_lengths is None or rejected_lengths is None:
                raise ValueError(f"the {self.name} margin averages per completion token: pass the "
                                 f"completion lengths")
            return (chosen_ratio / _clamp1(chosen_lengths)
                    - rejected_ratio / _clamp1(rejected_lengths))
        return self.beta * (chosen_ratio - rejected_ratio)

    def loss(self, margin):
        """Per-pair loss of the margin (a tensor in, a tensor out; no reduction)."""
        return self.kind.loss(margin, self.beta)


def _clamp1(lengths):
    if isinstance(lengths, torch.Tensor):
        return lengths.clamp(min=1)

    return np.maximum(np.asarray(lengths), 1)
