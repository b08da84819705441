"""Arms that change *how* the pairs are trained on, not only which: per-pair weights (soft
selection), swapped labels (label correction) and noise-robust losses on all the data. Registered
by name like the selection rules, and named the same way under a run config's `arms`.

A treatment reads the scores table and returns an `ArmData`: the pairs in the training data (a
mask, as a rule's), the pairs whose chosen and rejected are swapped, a weight per pair, and the
loss (TRL's loss type and its ε). The formulas and sources are in docs/method.md, "Beyond
selection".

What the scores call a *wrong label* is the paper's own reading of IRM (docs/method.md §6): the
pairs below LossDiff-IRM's IRM window at the run's kept fraction (θ prefers the rejected answer more
than the window allows); `lossdiff_irm_relabel` swaps them. The robust losses need a noise *rate*
instead, which that window cannot give (its tail is (1 − width)/2 of the pairs whatever the data):
ε = `label_noise`, or estimated as the share of pairs whose IRM is negative."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.registry import Registry
from ..core.windows import (  # noqa: F401
    _scored,
    lossdiff_irm,
    mean_rank,
    middle_window,
    percentile_rank,
    top_fraction,
)


@dataclass(frozen=True)
class ArmData:
    """What one arm trains on: ``mask`` (the pairs in its data), ``flip`` (of those, the ones whose
    chosen and rejected are swapped), ``weight`` (a weight per pair, ≥ 0), and its loss: TRL's
    ``loss_type`` (None: the run's objective) and ``epsilon`` (rDPO's flip rate, or cDPO's with
    ``conservative``). Arrays are over every row of the scores table."""

    mask: np.ndarray
    flip: np.ndarray | None = None
    weight: np.ndarray | None = None
    loss_type: str | None = None
    epsilon: float = 0.0
    conservative: bool = False
    # train the pairs in this value's ascending order (a curriculum), not shuffled
    order: np.ndarray | None = None
    # with ``conservative``: each pair's own ε (cDPO by group), not ``epsilon``
    epsilons: np.ndarray | None = None
    note: str = ""  # one line for the run's log: what was estimated, how many flipped


@dataclass(frozen=True)
class Treatment:
    name: str
    needs: tuple[str, ...]
    make: Callable  # (table, keep, label_noise: float | None) -> ArmData
    help: str = ""
    objectives: tuple[str, ...] = ("dpo", "ipo", "hinge")  # the run objectives it can train
    # What it costs to train, for the planner: on every scored pair (else about `keep` of them), in
    # how many batched passes per step (cDPO: 2), and one pair per forward pass (weighted arms).
    every_pair: bool = False
    passes: int = 1
    per_pair: bool = False
    missing: str | None = None  # what the data must carry (not a score), as a rule's `missing`


TREATMENTS: Registry[Treatment] = Registry("treatment", key="arms")


def register_treatment(name: str, needs=(), help: str = "", objectives=("dpo", "ipo", "hinge"),
                       every_pair: bool = False, passes: int = 1, per_pair: bool = False,
                       missing: str | None = None, replace: bool = False):
    """Register a treatment; use as a decorator over ``make(table, keep, label_noise) -> ArmData``.

    ``needs``: the scores-table columns it reads; ``objectives``: the run objectives it can train;
    ``every_pair``, ``passes``, ``per_pair``: what its training costs the planner (on every scored
    pair, batched passes per step, one pair per forward pass); ``missing``: what the data must carry
    when that is not a score (an oracle's truth). The name can then be listed under a run config's
    `arms` (with the module under `plugins`) and among `calibration.candidates`."""
    return TREATMENTS.decorator(name, lambda make: Treatment(name, tuple(needs), make, help,
                                                             tuple(objectives),
                                                             every_pair, passes, per_pair, missing),
                                replace=replace)

# One-sided orders over the scores (docs/method.md, "One-sided rules"): a pair ranks high when θ's
# own scores say the careful set agrees with its label. Each is a drop rule `NAME` (keep the top
# `keep`, prefsift.selection.rules) and a relabel treatment `NAME_relabel` (the same top as
# labelled, the rest swapped).
ONE_SIDED: dict[str, tuple[tuple[str, ...], Callable, str]] = {
    "top_if": (("if",), lambda t: _column(t, "if"), "the largest IF"),
    "top_lossdiff": (("lossdiff",), lambda t: _column(t, "lossdiff"), "the largest LossDiff"),
    "top_irm": (("irm",), lambda t: _column(t, "irm"), "the largest IRM"),
    "top_if_lossdiff": (("if", "lossdiff"),
                        lambda t: mean_rank(_column(t, "if"), _column(t, "lossdiff")),
                        "the largest mean of IF's and LossDiff's percentile ranks"),
    "top_teacher": (("teacher",), lambda t: _column(t, "teacher"),
                    "the largest margin of θ_c, the teacher trained on the careful pairs alone"),
}


def _column(table, c) -> np.ndarray:
    return table[c].to_numpy(dtype=float)

SOFTNESS = 0.05  # the smooth window's edge width, in percentile rank (5 points)
# a pair weighted below this is left out (it would cost a forward pass for nothing)
MIN_WEIGHT = 1e-3


def flagged_wrong(table, keep: float) -> np.ndarray:
    """The pairs LossDiff-IRM at ``keep`` cuts from IRM's bottom tail: below its IRM window (the
    likely wrong labels). Over every row; False where a score is missing; none at keep 1."""
    ld, irm = table["lossdiff"].to_numpy(dtype=float), table["irm"].to_numpy(dtype=float)
    both = _scored(ld) & _scored(irm)
    _, width = lossdiff_irm(ld, irm, keep=keep)
    ir = np.where(both, irm, np.nan)
    below_middle = both & (ir <= np.nanmedian(ir)) if both.any() else both
    return below_middle & ~middle_window(ir, width)


def estimated_noise(table) -> float:
    """ε̂: the share of the scored pairs whose implicit margin is negative at θ (θ, warmed up on all
    the pairs, still prefers the rejected answer). An upper-biased estimate: hard pairs with a right
    label count too; measured against the lab's true rate in docs/results.md."""
    irm = table["irm"].to_numpy(dtype=float)
    ok = _scored(irm)
    return float((irm[ok] < 0).sum() / max(int(ok.sum()), 1))


def soft_window(values, width: float, softness: float = SOFTNESS) -> np.ndarray:
    """A smooth version of the middle window holding ``width`` of the pairs: with u a pair's
    percentile rank, w(u) = σ((u − a)/s)·σ((b − u)/s), a = (1 − width)/2, b = (1 + width)/2, s the
    softness. 0 where the score is missing."""
    u = percentile_rank(values)
    a, b = (1 - width) / 2, (1 + width) / 2
    with np.errstate(over="ignore"):
        w = 1 / (1 + np.exp(-(u - a) / softness)) / (1 + np.exp(-(b - u) / softness))
    return np.where(np.isfinite(u), w, 0.0)


def _weights_arm(weight: np.ndarray) -> ArmData:
    weight = np.where(weight >= MIN_WEIGHT, weight, 0.0)
    return ArmData(mask=weight > 0, weight=weight,
                   note=f"{int((weight > 0).sum())} pairs weighted, total weight "
                        f"{weight.sum():.1f}")


def _noise(table, label_noise: float | None) -> tuple[float, str]:
    if label_noise is not None:
        return float(label_noise), f"ε {label_noise:g} (label_noise)"
    eps = min(estimated_noise(table), 0.49)
    return (eps,
            f"ε {eps:.3f}, estimated: the share of pairs with a negative IRM (set label_noise to "
            f"choose it)")


# The built-in treatments' data (each registered in `_builtin` below).


def soft_lossdiff_irm(table, keep, label_noise):
    """Soft selection: w = soft_window(LossDiff, W)·soft_window(IRM, W), W the width LossDiff-IRM
    solves for `keep`; loss Σ w·ℓ / Σ w (train/weighted.py)."""
    ld, irm = table["lossdiff"].to_numpy(dtype=float), table["irm"].to_numpy(dtype=float)
    _, width = lossdiff_irm(ld, irm, keep=keep)
    return _weights_arm(soft_window(ld, width) * soft_window(irm, width))



def soft_tif(table, keep, label_noise):
    """Soft selection: w = soft_window(IF, keep), the smooth middle window of IF holding `keep`."""
    return _weights_arm(soft_window(table["if"].to_numpy(dtype=float), keep))



def relabel(table, keep, label_noise):
    """Label correction (tested against removal, as PrefCleanBench, NeurIPS 2025, did on human
    data): LossDiff-IRM's pairs as labelled, and the `flagged_wrong` pairs with y_w and y_l
    swapped."""
    ld, irm = table["lossdiff"].to_numpy(dtype=float), table["irm"].to_numpy(dtype=float)
    kept, _ = lossdiff_irm(ld, irm, keep=keep)
    flip = flagged_wrong(table, keep)
    return ArmData(mask=kept | flip, flip=flip, note=f"{int(kept.sum())} pairs kept as labelled, "
                                                      f"{int(flip.sum())} with chosen and rejected "
                                                      f"swapped")



def robust(table, keep, label_noise):
    """rDPO (Chowdhury et al., "Provably Robust DPO", ICML 2024), TRL's loss_type "robust":
    ℓ = ((1 − ε)·(−log σ(m)) − ε·(−log σ(−m))) / (1 − 2ε) on every pair."""
    eps, how = _noise(table, label_noise)
    return ArmData(mask=table["valid"].to_numpy(dtype=bool), loss_type="robust", epsilon=eps,
                   note=how)



def conservative(table, keep, label_noise):
    """cDPO (Mitchell, "A note on DPO with noisy preferences", 2023): ℓ = (1 − ε)·ℓ(d) + ε·ℓ(d
    swapped) on every pair; for DPO −(1 − ε)·log σ(m) − ε·log σ(−m)."""
    eps, how = _noise(table, label_noise)
    return ArmData(mask=table["valid"].to_numpy(dtype=bool), epsilon=eps, conservative=True,
                   note=how)



def oracle_relabel(table, keep, label_noise):
    """The oracle's labels on every pair: the pairs whose label is wrong (column label_correct,
    the lab's truth) trained with chosen and rejected swapped."""
    valid = table["valid"].to_numpy(dtype=bool)
    flip = valid & ~table["label_correct"].fillna(True).to_numpy(dtype=bool)
    return ArmData(mask=valid, flip=flip,
                   note=f"{int(flip.sum())} wrong labels swapped by the oracle")



def one_sided_relabel(order):
    def make(table, keep, label_noise):
        """The top `keep` by the order as labelled, every other scored pair with y_w and y_l
        swapped."""
        values = order(table)
        top = top_fraction(values, keep, largest=True)
        flip = _scored(values) & ~top & table["valid"].to_numpy(dtype=bool)
        return ArmData(mask=top | flip, flip=flip, note=f"{int(top.sum())} pairs kept as labelled, "
                                                        f"{int(flip.sum())} with chosen and "
                                                        f"rejected swapped")
    return make



def teacher_relabel(table, keep, label_noise):
    """PerpCorrect-style correction from a teacher (Kong et al., NeurIPS 2024, from a few clean
    pairs): every pair, swapped where θ_c prefers the rejected answer (teacher margin < 0)."""
    m = _column(table, "teacher")
    flip = _scored(m) & (m < 0) & table["valid"].to_numpy(dtype=bool)
    return ArmData(mask=_scored(m) & table["valid"].to_numpy(dtype=bool), flip=flip,
                   note=f"{int(flip.sum())} pairs the teacher disagrees with swapped")



def group_conservative(table, keep, label_noise):
    """cDPO with a flip rate per group (loss correction, Hendrycks et al. 2018):
    ℓ = −(1 − ε_g)·log σ(m) − ε_g·log σ(−m), ε_g the pair's `group_noise`."""
    eps = _column(table, "group_noise")
    ok = _scored(eps) & table["valid"].to_numpy(dtype=bool)
    rates = sorted({round(float(e), 4) for e in eps[ok]})
    return ArmData(mask=ok, epsilons=np.where(ok, eps, 0.0), conservative=True,
                   note=f"ε by group: {', '.join(f'{r:g}' for r in rates)} (score group_noise)")


def _builtin() -> None:
    def add(name, needs, make, help, objectives=("dpo", "ipo", "hinge"), **cost):
        TREATMENTS.register(name, Treatment(name, needs, make, help, objectives, **cost))

    add("oracle_relabel", ("label_correct",), oracle_relabel,
        "oracle arm: every pair, each label set by the oracle (the wrong ones swapped; needs the "
        "lab's truth)",
        every_pair=True, missing="the true labels (a label_correct column, as the lab writes)")
    add("soft_lossdiff_irm", ("lossdiff", "irm"), soft_lossdiff_irm,
        "every pair, weighted by a smooth LossDiff-IRM window (its width solved for keep)",
        every_pair=True, per_pair=True)
    add("soft_tif", ("if",), soft_tif,
        "every pair, weighted by a smooth middle window of IF holding keep",
        every_pair=True, per_pair=True)
    add("lossdiff_irm_relabel", ("lossdiff", "irm"), relabel,
        "LossDiff-IRM's pairs, plus those below its IRM window with chosen and rejected swapped "
        "(label correction)")
    add("robust_dpo", ("irm",), robust,
        "every pair, TRL's robust DPO loss (rDPO) with ε = label_noise, or the share of pairs with "
        "IRM < 0",
        objectives=("dpo",), every_pair=True)
    add("cdpo", ("irm",), conservative,
        "every pair, conservative DPO (cDPO, label smoothing ε) with ε = label_noise, or the share "
        "of pairs with IRM < 0", every_pair=True, passes=2)

    for name, (needs, order, what) in ONE_SIDED.items():
        add(f"{name}_relabel", needs, one_sided_relabel(order),
            f"every scored pair: {what} (keep of them) as labelled, the rest with chosen and "
            f"rejected swapped",
            every_pair=True)

    add("teacher_relabel", ("teacher",), teacher_relabel,
        "every pair, swapped where the teacher θ_c (trained on the careful pairs alone) prefers "
        "the rejected answer",
        every_pair=True)
    add("group_cdpo", ("group_noise",), group_conservative,
        "every pair, cDPO with the flip rate of its length group (score group_noise) instead of "
        "one ε",
        every_pair=True, passes=2)


_builtin()


def treatment_data(table, name: str, keep: float, label_noise: float | None = None) -> ArmData:
    """The `ArmData` of treatment ``name`` on a scores table, checked."""
    t = TREATMENTS.get(name)
    data = t.make(table, keep, label_noise)
    valid = table["valid"].to_numpy(dtype=bool)
    if (data.mask & ~valid).any():
        raise ValueError(f"treatment {name!r} put a pair that was not scored in its data")
    if (data.weight is not None
        and not (np.isfinite(data.weight).all() and (data.weight >= 0).all())):
        raise ValueError(f"treatment {name!r} gave a weight that is negative or not a number")
    return data

