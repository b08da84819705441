"""Rankings of pairs by reward margins, from the field's answers to "which pairs should this model
train on" (the selection rules `alignment_potential`, `small_margin` and `large_margin` apply them).

Two margins of a pair d = (x, y_w, y_l) are in play (docs/method.md, "The field's rules"):

* the **implicit** margin m_θ(d) = β·Δ_θ(d), IRM: how strongly θ already prefers y_w over y_l;
* an **external** margin e(d): the data's own rating gap, score(y_w) − score(y_l) (`score_gap`),
  or a reward model's r(x, y_w) − r(x, y_l).

The sources disagree on which pairs to keep. Huang et al. (ICML 2025) keep the pairs whose external
margin is large but whose implicit margin is still small (room to learn); Qi et al. (2025) and
Yang et al. (2024) keep the smallest implicit margins (the hard pairs); Deng et al. (2025) keep the
pairs where both margins are large (the labels every source agrees on). Each function here returns
the ranked quantity over every row (NaN where a margin is missing); `windows.top_fraction` keeps
its top or bottom fraction."""

from __future__ import annotations

import numpy as np

from ..core.errors import UserError
from ..core.windows import _scored


def _both(external, implicit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = np.asarray(external, dtype=float)
    m = np.asarray(implicit, dtype=float)
    if e.shape != m.shape:
        raise ValueError(f"the margins have different shapes: {e.shape} and {m.shape}")
    return e, m, _scored(e) & _scored(m)


def _check_spread(values: np.ndarray, ok: np.ndarray, what: str) -> float:
    """The standard deviation of ``values`` over the rows ``ok``; a constant margin cannot be
    standardized, and is a `UserError` naming it."""
    v = values[ok]
    if len(v) < 2:
        return 1.0  # one pair (or none) has nothing to rank against
    sd = float(v.std())
    if not sd > 1e-12 * max(1.0, float(np.abs(v).max())):
        raise UserError(f"{what} is {float(v[0]):.6g} for all {len(v)} pairs that have both "
                        "margins, so it cannot rank them; check the ratings (or reward model) and "
                        "θ, or choose another rule")
    return sd


def alignment_potential(external, implicit) -> np.ndarray:
    """M_AP (Huang et al., "Larger or Smaller Reward Margins to Select Preferences for Alignment?",
    ICML 2025): how far θ's implicit margin still is from the target the external margin sets,

        M_AP(d) = z(e(d)) − z(|m_θ(d)|),

    z the z-score over the pairs that have both margins (the paper subtracts the two margins; they
    are in different units here, a rating gap and β·Δ, so each is standardized first). Large M_AP:
    the raters see a clear preference that θ has not learned yet. Keep the largest."""
    e, m, ok = _both(external, implicit)
    a = np.abs(m)
    sd_e = _check_spread(e, ok, "the external margin (score_gap)")
    sd_a = _check_spread(a, ok, "|IRM|")
    out = np.full(len(e), np.nan)
    if ok.any():
        out[ok] = (e[ok] - e[ok].mean()) / sd_e - (a[ok] - a[ok].mean()) / sd_a
    return out


def combined_margin(external, implicit) -> np.ndarray:
    """The large-margin rule of Deng et al. ("Less is More: Improving LLM Alignment via Preference
    Data Selection", arXiv 2502.14560): each margin source gives a preference probability σ(·), and
    their Bayesian aggregation P = Π p_i / (Π p_i + Π (1 − p_i)) has logit Σ logit p_i, so ranking
    by P is ranking by the sum of the margins,

        c(d) = e(d)/sd(e) + m_θ(d)/sd(m_θ),

    each margin divided by its standard deviation over the pairs that have both (a rating gap is not
    a Bradley–Terry logit; it is scaled, not centred, so a negative margin still votes against the
    label). Large c: every source agrees with the label, strongly. Keep the largest."""
    e, m, ok = _both(external, implicit)
    sd_e = _check_spread(e, ok, "the external margin (score_gap)")
    sd_m = _check_spread(m, ok, "IRM")
    out = np.full(len(e), np.nan)
    if ok.any():
        out[ok] = e[ok] / sd_e + m[ok] / sd_m
    return out
