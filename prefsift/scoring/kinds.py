"""The scores prefsift computes, as a registry: each score declares its name, what it measures,
whether it needs validation pairs, the columns of the scores table it fills, and how it computes
them from a scoring backend (`scoring.backends`). A new score is one `register_score` call; the
table is assembled from the registered scores in one place (`scoring.table.assemble_table`).

    @register_score("margin_rank", help="rank of the implicit margin", columns=("margin_rank",))
    def margin_rank(ctx):
        m = ctx.backend.margin()
        return {"margin_rank": ctx.spread(m.argsort().argsort() / (len(m) - 1))}

`ctx` (a `ScoreContext`) holds the backend, the config, the pairs and the columns made so far;
`ctx.spread(values over the scored pairs)` gives a column over every input row (NaN where a row was
not scored). A compute function returns {column: array over every input row}."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..core.registry import Registry
from ..core.windows import keep_middle, window
from .careful import group_noise


@dataclass
class ScoreContext:
    """What a score's compute function may read: the backend (θ and its kind), the config, the
    scored pairs, the columns made so far, and the stage timings (seconds by name)."""

    backend: object
    cfg: object
    pairs: object  # PairSet (over-length rows marked)
    columns: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def spread(self, values) -> np.ndarray:
        """Values over the scored pairs → an array over all rows, NaN where a row was not scored."""
        out = np.full(len(self.pairs), np.nan)
        out[[r.index for r in self.pairs.valid_rows]] = values
        return out


@dataclass(frozen=True)
class ScoreKind:
    name: str
    help: str
    needs_validation: bool
    columns: tuple[str, ...]
    compute: Callable[[ScoreContext], dict] | None = None
    # Why the score may come out constant, and the fix: said when it does (no rule can rank the
    # pairs then).
    when_constant: str = "check the models and the data it is computed from"


SCORES: Registry[ScoreKind] = Registry("score", key="scores")


def register_score(name: str, help: str = "", needs_validation: bool = False, columns=(),
                   replace: bool = False, when_constant: str = ScoreKind.when_constant):
    """Register a score; use as a decorator over ``compute(ctx) -> {column: array over all rows}``.
    Its name can then be asked for (`scores=`, `--scores`), and rules can name its columns. The
    first column is the score itself: a table where it is constant is refused, with
    `when_constant`."""
    return SCORES.decorator(name, lambda fn: ScoreKind(name, help, needs_validation,
                                                       tuple(columns) or (name,), fn,
                                                       when_constant), replace=replace)


def constant_problem(values) -> str | None:
    """Why a score cannot rank pairs (every scored pair has the same value, to float precision),
    else None."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return None
    spread = float(v.max() - v.min())
    if spread > 1e-7 * max(1.0, float(np.abs(v).max())):
        return None
    return f"is {float(v[0]):.6g} for all {len(v)} scored pairs (spread {spread:.2g})"


@register_score("irm", "implicit reward margin m_θ(d) (the objective's margin at θ)",
                columns=("irm", "abs_irm"), when_constant="θ gives every pair the same margin; IRM "
                              "is 0 for all pairs when θ is the reference itself: score the "
                              "warmed-up model (`prefsift warmup`, or `prefsift score --warmup`)")
def _irm(ctx: ScoreContext) -> dict:
    irm = ctx.spread(ctx.backend.margin())
    return {"irm": irm, "abs_irm": np.abs(irm)}


@register_score("lossdiff", "ℓ(θ; d) − ℓ(θ_val; d), θ_val = θ trained on the validation pairs",
                needs_validation=True, columns=("lossdiff", "loss_theta_val"),
                when_constant="θ_val did not move from θ: raise val_lr or val_epochs")
def _lossdiff(ctx: ScoreContext) -> dict:
    t = time.perf_counter()
    loss_from, loss_val = ctx.backend.theta_val_losses()
    ctx.timings["lossdiff"] = time.perf_counter() - t
    return {"loss_theta_val": ctx.spread(loss_val), "lossdiff": ctx.spread(loss_from - loss_val)}


@register_score("if",
                "⟨∇L_val(θ), ∇ℓ(θ; d)⟩ in total and per layer group, and TIF, its middle window",
                needs_validation=True, columns=("if", "tif"),
                when_constant="the validation gradient is zero over the chosen parameters: check "
                              "if_params and the validation pairs")
def _influence(ctx: ScoreContext) -> dict:
    total, groups, extra = ctx.backend.influence()
    out = {"if": ctx.spread(total)}
    for g, v in groups.items():
        out[f"if_{g}"] = ctx.spread(v)
    for name, v in extra.items():
        out[f"if_val_{name}"] = ctx.spread(v)
    cfg = ctx.cfg
    if cfg.tif_low >= 0 and cfg.tif_high > 0:
        out["tif"] = window(out["if"], cfg.tif_low, cfg.tif_high)
    else:
        out["tif"] = keep_middle(out["if"], cfg.keep)
    return out


@register_score("heldout", "Selective DPO's held-out loss: each pair's loss under a reference "
                "model trained from π_ref on the other folds of the pairs (cross-fitted)",
                columns=("heldout", "heldout_fold"), when_constant="the fold models give every "
                "pair the same loss: check the warm-up settings they train with")
def _heldout(ctx: ScoreContext) -> dict:
    t = time.perf_counter()
    loss, fold = ctx.backend.heldout_losses()
    ctx.timings["heldout"] = time.perf_counter() - t
    return {"heldout": ctx.spread(loss), "heldout_fold": ctx.spread(fold)}


@register_score("teacher", "θ_c's implicit margin: θ_c = DPO from π_ref on the careful validation "
                "pairs' teacher share alone (the probes are valued on the other share)",
                needs_validation=True, columns=("teacher",), when_constant="θ_c did not move from "
                "π_ref: raise teacher_epochs or give more validation pairs")
def _teacher(ctx: ScoreContext) -> dict:
    margin, _ = ctx.backend.teacher_margin()
    return {"teacher": ctx.spread(margin)}


@register_score("group_noise", "the flip rate ε_g of each pair's group (its chosen answer longer, "
                "shorter or as long as the rejected, within each group_by stratum), estimated from "
                "the validation pairs' labels and the training labels (scoring/careful.py)",
                needs_validation=True, columns=("group_noise", "length_direction"),
                when_constant="the training labels favour longer answers as often as the "
                              "validation labels do: no group has a flip rate to correct (train "
                              "all the data, or cDPO)")
def _group_noise(ctx: ScoreContext) -> dict:
    val = getattr(ctx.backend, "val", None)
    columns = [c.strip() for c in ctx.cfg.group_by.split(",") if c.strip()]
    eps, direction, rates = group_noise(ctx.pairs, val, columns)
    ctx.timings["group_noise"] = 0.0
    return {"group_noise": ctx.spread(eps), "length_direction": ctx.spread(direction)}
