"""Selection rules over a scores table, registered by name: each reads some columns of the table
and returns a boolean mask over its rows (a pair that was not scored is never kept). The window
arithmetic they share is in `prefsift.core.windows`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..core.checks import check_value
from ..core.errors import ConfigError, UserError, require_path
from ..core.registry import Registry
from ..core.windows import (  # noqa: F401
    _scored,
    keep_middle,
    lossdiff_irm,
    middle_window,
    overlap_coefficient,
    random_fraction,
    rank_third,
    solve_width,
    split_windows,
    tail_grid,
    top_fraction,
    window,
)
from ..scoring.kinds import SCORES
from .margins import alignment_potential, combined_margin
from .treatments import ONE_SIDED
from .treatments import _column as _col


@dataclass(frozen=True)
class Rule:
    """A selection rule: its name, the columns of the scores table it reads, and ``select(table,
    keep, seed) -> mask``. ``missing`` names what the data must carry for it (e.g. ratings) when
    that is not a score `prefsift score` makes: a run whose data lacks it skips the arm with a
    note."""

    name: str
    needs: tuple[str, ...]
    select: Callable
    help: str = ""
    missing: str | None = None
    # the selection depends on the seed: a run draws it anew for every training seed
    seeded: bool = False
    # the rule keeps `keep` of the scored pairs: one that cannot is refused, with why
    sized: bool = False
    # a column: a run trains the rule's pairs in its ascending order, not shuffled
    order: str | None = None


RULES: Registry[Rule] = Registry("rule", key="rule")


def register_rule(name: str, needs=(), help: str = "", missing: str | None = None,
                  replace: bool = False,
                  seeded: bool = False, sized: bool = False, order: str | None = None):
    """Register a selection rule; use as a decorator over ``fn(table, keep, seed) -> boolean mask``.

        @prefsift.register_rule("short_chosen", needs=("irm",), help="...")
        def short_chosen(table, keep, seed):
            ...

    The name can then be given to `prefsift.select`, `prefsift select --rule` (after importing the
    module) and a run config's `arms` (with the module under `plugins`). ``seeded=True``: the rule
    uses its seed, and a run draws its selection anew for every training seed. ``sized=True``: the
    rule keeps the fraction `keep` of the scored pairs, and a selection that misses it is refused
    with the reason (ties, a constant score) instead of being used. ``order="COLUMN"``: a run trains
    the rule's pairs in that column's ascending order (a curriculum), not shuffled."""
    return RULES.decorator(name, lambda fn: Rule(name, tuple(needs), fn, help, missing, seeded,
                                                 sized, order),
                           replace=replace)


def _builtin_rules() -> None:
    ratings = "ratings (score_chosen and score_rejected columns in the scored pairs)"
    truth = "the true pair types (pair_type and label_correct columns, as the lab writes)"

    def ld_irm(table, keep, seed):
        return lossdiff_irm(_col(table, "lossdiff"), _col(table, "irm"), keep=keep)[0]

    def ld_irm_complement(table, keep, seed):  # what LossDiff-IRM drops, among the pairs it scored
        ld, irm = _col(table, "lossdiff"), _col(table, "irm")
        return _scored(ld) & _scored(irm) & ~lossdiff_irm(ld, irm, keep=keep)[0]

    def clean(table, keep, seed):  # the lab's oracle arm: clean pairs whose label is right
        return (table["valid"].to_numpy(dtype=bool) & (table["pair_type"] == "clean").to_numpy()
                & table["label_correct"].fillna(False).to_numpy(dtype=bool))

    def third(which):  # IF thirds: `keep` does not apply
        return lambda table, keep, seed: rank_third(_col(table, "if"), which)

    def middle(column):
        return lambda table, keep, seed: keep_middle(_col(table, column), keep)

    def add(name, needs, fn, help, missing=None, seeded=False, sized=True):
        RULES.register(name, Rule(name, needs, fn, help, missing, seeded, sized))

    add("full", (), lambda table, keep, seed: table["valid"].to_numpy(dtype=bool),
        "every scored pair (keep does not "
        "apply)", sized=False)
    add("lossdiff_irm", ("lossdiff", "irm"), ld_irm,
        "LossDiff and IRM both in middle windows of one width, "
        "solved for keep (the paper's rule)")
    add("tif", ("if",), middle("if"), "truncated IF: the middle window of IF")
    add("lossdiff", ("lossdiff",), middle("lossdiff"), "the middle window of LossDiff")
    add("irm", ("irm",), middle("irm"), "the middle window of IRM")
    add("top_if", ("if",), lambda table, keep, seed: top_fraction(_col(table, "if"), keep,
                                                                  largest=True),
        "the largest IF (classic influence selection)")
    # One-sided rules: the top of each order in treatments.ONE_SIDED (top_if above is the first of
    # them).
    for name, (needs, order, what) in ONE_SIDED.items():
        if name != "top_if":
            add(name, needs, lambda table, keep, seed, order=order: top_fraction(order(table), keep,
                    largest=True),
                f"one-sided: {what}, the bottom dropped (see prefsift recommend: which rule wins "
                "depends on how the labels are wrong)")
    add("teacher_agree", ("teacher",), lambda table, keep, seed: _col(table, "teacher") > 0,
        "the pairs the teacher θ_c (trained on the careful pairs alone) agrees with: margin > 0 "
        "(keep does not apply)", sized=False)
    add("abs_irm_small", ("irm",), lambda table, keep, seed: top_fraction(np.abs(_col(table,
            "irm")), keep,
                                                                          largest=False),
        "the smallest |IRM|")
    add("score_gap", ("score_gap",),
        lambda table, keep, seed: top_fraction(_col(table, "score_gap"), keep,
                                               largest=True),
        "the largest rating gap (the data's own ratings)", missing=ratings)
    # The field's margin rules (prefsift/margins.py has each formula and its source).
    add("alignment_potential", ("score_gap", "irm"),
        lambda table, keep, seed: top_fraction(alignment_potential(_col(table, "score_gap"),
                                                                   _col(table, "irm")), keep),
        "M_AP (Huang et al., ICML 2025): z(rating gap) − z(|IRM|), the largest", missing=ratings)
    add("small_margin", ("irm",), lambda table, keep, seed: top_fraction(_col(table, "irm"), keep,
                                                                         largest=False),
        "the smallest implicit margin IRM, signed: the hardest pairs for θ (Qi et al. 2025; Yang "
        "et al. 2024)")
    add("large_margin", ("score_gap", "irm"),
        lambda table, keep, seed: top_fraction(combined_margin(_col(table, "score_gap"),
                                                               _col(table, "irm")), keep),
        "rating gap and IRM both large: their Bayesian aggregation (Deng et al. 2025)",
        missing=ratings)
    RULES.register("selective_dpo", Rule(
        "selective_dpo", ("heldout",),
        lambda table, keep, seed: top_fraction(_col(table, "heldout"), keep, largest=False),
        "Selective DPO (Gao et al., ICML 2025): the smallest held-out loss (score heldout), "
        "trained easy to hard",
        sized=True, order="heldout"))
    add("random", (), lambda table, keep, seed: random_fraction(table["valid"].to_numpy(dtype=bool),
                                                                keep, seed),
        "a seeded random subset (a run draws a new one for every training seed)", seeded=True)
    add("if_small", ("if",), third(0), "the smallest third of IF (keep does not apply)",
        sized=False)
    add("if_medium", ("if",), third(1), "the middle third of IF (keep does not apply)", sized=False)
    add("if_large", ("if",), third(2), "the largest third of IF (keep does not apply)", sized=False)
    add("lossdiff_irm_complement", ("lossdiff", "irm"), ld_irm_complement,
        "the scored pairs LossDiff-IRM drops", sized=False)
    add("clean", ("pair_type", "label_correct"), clean,
        "oracle arm: the clean pairs whose label is right "
        "(needs the lab's true pair types)", missing=truth, sized=False)
    # The headroom split (docs/method.md, "Headroom"): `clean` drops the wrong labels *and* every
    # near-tie, near-duplicate and easy pair; `drop_wrong` drops only the wrong labels;
    # `oracle_relabel` (a treatment) keeps every pair with the oracle's label.
    add("drop_wrong", ("label_correct",),
        # (a pair of unknown truth is kept, as
        lambda table, keep, seed: (table["valid"].to_numpy(dtype=bool)
                                   # oracle_relabel)
                                   & table["label_correct"].fillna(True).to_numpy(dtype=bool)),
        "oracle arm: every pair but those whose label is wrong, of every type (needs the lab's "
        "truth)",
        missing="the true labels (a label_correct column, as the lab writes)",
        sized=False)


_builtin_rules()


def check_rule(rule: str, key: str = "rule") -> str:
    """``rule`` if it names a rule, else a `ConfigError` listing them."""
    RULES.get(rule, key=key)
    return rule


def check_rule_columns(table, rule: str, key: str = "rule") -> None:
    """A `ConfigError` saying how to make the columns ``rule`` needs when ``table`` lacks them."""
    entry = RULES.get(rule, key=key)
    missing = [c for c in entry.needs if c not in table]
    if not missing:
        return
    if entry.missing is not None:
        problem = (f"{rule!r} needs {entry.missing}, which this table does not have; choose "
                   f"another rule")
    elif all(c in SCORES for c in missing):
        have = [c for c in SCORES if c in table]
        need = [c for c in SCORES if c in have or c in missing]
        problem = (f"{rule!r} needs the score(s) {missing}, which this table does not have: rerun "
                   f"`prefsift score` with --scores {','.join(need)} (lossdiff and if also need "
                   f"--validation)")
    else:
        problem = (f"{rule!r} needs the column(s) {missing}, which this table does not have; "
                   f"choose another rule")
    raise ConfigError(key=key, problem=problem)


def check_keep(keep, key: str = "keep") -> float:
    """``keep`` if it is a kept fraction in (0, 1], else a `ConfigError`."""
    if isinstance(keep, bool) or not isinstance(keep, (int, float, np.integer, np.floating)):
        raise ConfigError(key=key, problem=f"must be a number in (0, 1], got {keep!r}")
    return check_value(key, float(keep), "(0, 1]")


def apply_rule(table, rule: str, keep: float, seed: int = 0):
    """A selection mask over the rows of a scores table (pandas DataFrame) by a registered rule."""
    check_rule_columns(table, rule)
    check_keep(keep)
    entry = RULES.get(rule)
    mask = np.asarray(entry.select(table, keep, seed), dtype=bool)
    if mask.shape != (len(table),):
        raise ValueError(f"rule {rule!r} returned a mask of shape {mask.shape} for a table of "
                         f"{len(table)} rows")
    if entry.sized:
        check_kept_fraction(table, rule, entry.needs, mask, keep)
    return mask


def kept_fraction_tolerance(n_scored: int) -> int:
    """How many pairs a sized rule may keep off `keep` x n (percentile windows move in whole pairs,
    and LossDiff-IRM's two windows meet the target only to within a few pairs): 1 % of the pairs, or
    2 pairs on small tables."""
    return max(2, int(np.ceil(0.01 * n_scored)))


def check_kept_fraction(table, rule: str, needs, mask, keep: float) -> None:
    """A `UserError` when `rule` kept a fraction other than `keep` of the scored pairs, saying what
    it kept and why (a constant score, or ties that no window can split)."""
    valid = (table["valid"].to_numpy(dtype=bool) if "valid" in table
             else np.ones(len(table), dtype=bool))
    # The pairs the rule could keep: usable and with every score it reads (a pair without a rating
    # has no score_gap, and a rule keeps a fraction of the pairs it can rank).
    for c in needs:
        if c in table:
            valid = valid & np.isfinite(table[c].to_numpy(dtype=float))
    n = int(valid.sum())
    kept = int(mask.sum())
    if abs(kept - keep * n) <= kept_fraction_tolerance(n):
        return
    why = []
    for c in needs:
        if c not in table:
            continue
        v = table.loc[valid, c].to_numpy(dtype=float)
        if not len(v):
            continue
        _, counts = np.unique(v, return_counts=True)
        why.append(f"{c} has {len(counts)} distinct value(s) over {len(v)} scored pairs, the "
                   f"largest tie {int(counts.max())} pairs"
                   + (" (a constant IRM: θ is the reference itself; score the "
                      "warmed-up model)" if c in ("irm", "abs_irm") and len(counts) == 1
                      else ""))
    raise UserError(f"select: {rule} at keep {keep:g} kept {kept} of {n} scored pairs "
                    f"({kept / max(n, 1):.1%}), not {keep:.0%}: "
                    + ("; ".join(why) if why else "its scores cannot be cut at that fraction")
                    + ". Choose another rule or kept fraction, or rescore")


def parse_window(spec: str, key: str = "window") -> tuple[str, float, float]:
    """``"if:20:80"`` → ("if", 20.0, 80.0), or a `ConfigError`."""
    parts = spec.split(":")
    try:
        name, lo, hi = parts[0], float(parts[1]), float(parts[2])
        if len(parts) != 3 or not name:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(key=key, problem=f"must be SCORE:LOW:HIGH with percentiles, e.g. "
                                           f"if:20:80; got {spec!r}") \
            from None
    if not 0 <= lo < hi <= 100:
        raise ConfigError(key=key,
                          problem=f"needs percentiles 0 <= LOW < HIGH <= 100, got {spec!r}")
    return name, lo, hi


def window_of(table, spec: str, key: str = "window") -> tuple[np.ndarray, str]:
    """The mask of a percentile window ``SCORE:LOW:HIGH`` over a scores table, and its label.

    Several windows joined by commas (``lossdiff:10:90,irm:0:80``) are intersected, each one's
    percentiles taken over the pairs that have every named score (as `lossdiff_irm` does), so the
    two tails of each score can be cut separately: an asymmetric LossDiff-IRM."""
    parts = [parse_window(one.strip(), key) for one in str(spec).split(",")]
    for name, _, _ in parts:
        if name not in table:
            scores = [c for c in table.columns if c not in ("id", "valid", "reason") and
                      pd.api.types.is_numeric_dtype(table[c])]
            raise ConfigError(key=key, problem=f": no score {name!r} in the table; it has {scores}")
    both = np.logical_and.reduce([_scored(table[name].to_numpy(dtype=float))
                                  for name, _, _ in parts])
    mask = both.copy()
    for name, lo, hi in parts:
        mask &= window(np.where(both, table[name].to_numpy(dtype=float), np.nan), lo, hi)
    return mask, "window " + " and ".join(f"{name} ({lo:g}, {hi:g})" for name, lo, hi in parts)


def check_windows(spec: str, key: str = "window") -> str:
    """``spec`` if every comma-separated part is ``SCORE:LOW:HIGH``, else a `ConfigError`."""
    for one in str(spec).split(","):
        parse_window(one.strip(), key)
    return spec


def read_scores_table(path, key: str = "scores"):
    """A scores table written by `prefsift score` (id, valid, reason and the scores), or a
    `ConfigError`."""

    require_path(path, "scores table", key,
                 hint="give the scores.parquet that `prefsift score` wrote")
    try:
        table = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        raise ConfigError(key=key, problem=f": {str(path)!r} is not a readable Parquet file "
                                           f"({type(e).__name__}); "
                                           "give the scores.parquet that `prefsift score` "
                                           "wrote") from None
    lacking = [c for c in ("id", "valid", "reason") if c not in table]
    if lacking:
        raise ConfigError(key=key, problem=f": {str(path)!r} has no {lacking} column(s), so it is "
                                           "not a scores table; give the scores.parquet that "
                                           "`prefsift score` wrote")
    return table


def selection_frame(table, masks: dict):
    """The selection table: each pair's id, validity and reason, and one true/false column per
    selection (what selection.parquet holds, for `prefsift select` and for a run)."""
    sel = table[["id", "valid", "reason"]].copy()
    for name, mask in masks.items():
        sel[name] = mask
    return sel
