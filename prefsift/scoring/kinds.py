"""The scores prefsift computes, named once: what each measures, whether it needs validation pairs,
and the columns of the scores table it fills. (Not a plug-in point: a new score needs its own
stage in `scoring.table`; a new *selection* over the scores is `prefsift.register_rule`.)"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class ScoreKind:
    name: str
    help: str
    needs_validation: bool
    columns: tuple[str, ...]


SCORES: Registry[ScoreKind] = Registry("score", key="scores")
for _s in (
    ScoreKind("irm", "implicit reward margin m_θ(d) (the objective's margin at θ)", False, ("irm", "abs_irm")),
    ScoreKind("lossdiff", "ℓ(θ; d) − ℓ(θ_val; d), θ_val = θ trained on the validation pairs", True,
              ("lossdiff", "loss_theta_val")),
    ScoreKind("if", "⟨∇L_val(θ), ∇ℓ(θ; d)⟩ in total and per layer group, and TIF, its middle window", True,
              ("if", "tif")),
):
    SCORES.register(_s.name, _s)
