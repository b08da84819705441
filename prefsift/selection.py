"""Selection rules over a scores table: percentile windows, the LossDiff-IRM intersection, target
kept fractions, the baselines' orderings, and the overlap coefficient.

Every function takes an array with NaN for pairs that have no score (invalid rows) and returns a
boolean mask over all pairs; a NaN is never kept. Percentiles are over the scored pairs only."""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, did_you_mean


def _scored(values) -> np.ndarray:
    return np.isfinite(np.asarray(values, dtype=float))


def window(values, low_pct: float, high_pct: float) -> np.ndarray:
    """Keep d with P_low < v(d) < P_high (strict, as the TIF indicator); percentiles in [0, 100]."""
    if not 0 <= low_pct < high_pct <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got ({low_pct}, {high_pct})")
    v = np.asarray(values, dtype=float)
    ok = _scored(v)
    if not ok.any():
        return np.zeros(len(v), dtype=bool)
    lo, hi = np.percentile(v[ok], [low_pct, high_pct])
    # The extreme percentiles themselves are kept when the window reaches 0 or 100.
    above = v >= lo if low_pct == 0 else v > lo
    below = v <= hi if high_pct == 100 else v < hi
    return ok & above & below


def middle_window(values, width: float) -> np.ndarray:
    """The symmetric middle window holding a fraction `width` of the scored pairs' percentile range."""
    if not 0 < width <= 1:
        raise ValueError(f"window width must be in (0, 1], got {width}")
    tail = (1 - width) / 2 * 100
    return window(values, tail, 100 - tail)


def solve_width(mask_of_width, target: float, n_scored: int, tol: float = 1e-4) -> tuple[float, np.ndarray]:
    """Bisect the window width so the kept fraction of the scored pairs is as close as possible to
    `target` (the kept fraction grows with the width)."""
    lo, hi = 0.0, 1.0
    best_w, best_mask = 1.0, mask_of_width(1.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid <= 0:
            break
        mask = mask_of_width(mid)
        frac = mask.sum() / max(n_scored, 1)
        if abs(frac - target) < abs(best_mask.sum() / max(n_scored, 1) - target):
            best_w, best_mask = mid, mask
        if frac < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return best_w, best_mask


def keep_middle(values, keep: float) -> np.ndarray:
    """Middle window of one score that keeps a fraction `keep` of the scored pairs (e.g. TIF, LossDiff)."""
    n = int(_scored(values).sum())
    return solve_width(lambda w: middle_window(values, w), keep, n)[1]


def lossdiff_irm(lossdiff, irm, keep: float | None = None, width: float | None = None):
    """Keep d iff LossDiff(d) and IRM(d) both lie in their middle windows of one width.

    Give `width` directly, or `keep` (e.g. 0.64) and the width is solved so that the intersection
    keeps that fraction of the pairs scored by both. Returns (mask, width)."""
    both = _scored(lossdiff) & _scored(irm)
    ld = np.where(both, lossdiff, np.nan)
    ir = np.where(both, irm, np.nan)

    def mask_of(w):
        return middle_window(ld, w) & middle_window(ir, w)

    if width is not None:
        return mask_of(width), width
    if keep is None:
        raise ValueError("give keep or width")
    w, mask = solve_width(mask_of, keep, int(both.sum()))
    return mask, w


def top_fraction(values, keep: float, largest: bool = True) -> np.ndarray:
    """The `keep` fraction of scored pairs with the largest (or smallest) values; ties by position."""
    v = np.asarray(values, dtype=float)
    ok = np.flatnonzero(_scored(v))
    k = int(round(keep * len(ok)))
    order = ok[np.argsort(-v[ok] if largest else v[ok], kind="stable")]
    mask = np.zeros(len(v), dtype=bool)
    mask[order[:k]] = True
    return mask


def random_fraction(n_or_valid, keep: float, seed: int = 0) -> np.ndarray:
    valid = np.ones(n_or_valid, dtype=bool) if np.isscalar(n_or_valid) else np.asarray(n_or_valid, dtype=bool)
    idx = np.flatnonzero(valid)
    k = int(round(keep * len(idx)))
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(valid), dtype=bool)
    mask[rng.choice(idx, size=k, replace=False)] = True
    return mask


def overlap_coefficient(a, b) -> float:
    """|A ∩ B| / min(|A|, |B|) for two boolean masks (or id collections)."""
    if isinstance(a, np.ndarray) and a.dtype == bool:
        inter, na, nb = int((a & b).sum()), int(a.sum()), int(b.sum())
    else:
        sa, sb = set(a), set(b)
        inter, na, nb = len(sa & sb), len(sa), len(sb)
    if min(na, nb) == 0:
        return float("nan")
    return inter / min(na, nb)


def rank_third(values, which: int) -> np.ndarray:
    """The scored pairs in the `which`-th third (0 smallest, 1 middle, 2 largest) of the values'
    ranks: the three masks partition the scored pairs into sizes that differ by at most one."""
    if which not in (0, 1, 2):
        raise ValueError("which must be 0, 1 or 2")
    v = np.asarray(values, dtype=float)
    ok = np.flatnonzero(_scored(v))
    order = ok[np.argsort(v[ok], kind="stable")]
    mask = np.zeros(len(v), dtype=bool)
    mask[np.array_split(order, 3)[which]] = True
    return mask


RULES = ("lossdiff_irm", "tif", "lossdiff", "irm", "top_if", "abs_irm_small", "score_gap", "random",
         "if_small", "if_medium", "if_large", "lossdiff_irm_complement", "clean")
# The columns of the scores table each rule reads.
RULE_NEEDS = {"lossdiff_irm": ("lossdiff", "irm"), "tif": ("if",), "lossdiff": ("lossdiff",), "irm": ("irm",),
              "top_if": ("if",), "abs_irm_small": ("irm",), "score_gap": ("score_gap",), "random": (),
              "if_small": ("if",), "if_medium": ("if",), "if_large": ("if",),
              "lossdiff_irm_complement": ("lossdiff", "irm"), "clean": ("pair_type", "label_correct")}
_SCORES = ("irm", "lossdiff", "if")  # the columns `prefsift score --scores` makes (scores.SCORES)


def check_rule(rule: str, key: str = "rule") -> str:
    """``rule`` if it names a rule, else a `ConfigError` listing them."""
    if rule not in RULE_NEEDS:
        raise ConfigError(key=key, problem=f"must name a rule: {', '.join(RULES)}; got {rule!r}"
                                           f"{did_you_mean(rule, RULES)}")
    return rule


def check_rule_columns(table, rule: str, key: str = "rule") -> None:
    """A `ConfigError` saying how to make the columns ``rule`` needs when ``table`` lacks them."""
    missing = [c for c in RULE_NEEDS[check_rule(rule, key)] if c not in table]
    if not missing:
        return
    if rule == "score_gap":
        problem = ("'score_gap' needs ratings (score_chosen and score_rejected columns in the scored pairs), "
                   "which this table does not have; choose another rule")
    elif rule == "clean":
        problem = ("'clean' needs the true pair types (pair_type and label_correct columns, as the lab writes), "
                   "which this table does not have; choose another rule")
    else:
        have = [c for c in _SCORES if c in table]
        need = [c for c in _SCORES if c in have or c in missing]
        problem = (f"{rule!r} needs the score(s) {missing}, which this table does not have: rerun `prefsift score` "
                   f"with --scores {','.join(need)} (lossdiff and if also need --validation)")
    raise ConfigError(key=key, problem=problem)


def check_keep(keep, key: str = "keep") -> float:
    """``keep`` if it is a kept fraction in (0, 1], else a `ConfigError`."""
    from .checks import check_value

    if isinstance(keep, bool) or not isinstance(keep, (int, float, np.integer, np.floating)):
        raise ConfigError(key=key, problem=f"must be a number in (0, 1], got {keep!r}")
    return check_value(key, float(keep), "(0, 1]")


def apply_rule(table, rule: str, keep: float, seed: int = 0):
    """A selection mask over the rows of a scores table (pandas DataFrame) by a named rule."""
    col = lambda c: table[c].to_numpy(dtype=float) if c in table else None
    check_rule_columns(table, rule)
    check_keep(keep)
    if rule == "lossdiff_irm":
        return lossdiff_irm(col("lossdiff"), col("irm"), keep=keep)[0]
    if rule == "lossdiff_irm_complement":  # what LossDiff-IRM drops, among the pairs it scored
        kept = lossdiff_irm(col("lossdiff"), col("irm"), keep=keep)[0]
        return _scored(col("lossdiff")) & _scored(col("irm")) & ~kept
    if rule == "clean":  # the lab's oracle arm: clean pairs whose label is right
        return (table["valid"].to_numpy(dtype=bool) & (table["pair_type"] == "clean").to_numpy()
                & table["label_correct"].fillna(False).to_numpy(dtype=bool))
    if rule in ("if_small", "if_medium", "if_large"):  # IF thirds: `keep` does not apply
        return rank_third(col("if"), ("if_small", "if_medium", "if_large").index(rule))
    if rule == "tif":
        return keep_middle(col("if"), keep)
    if rule in ("lossdiff", "irm"):
        return keep_middle(col(rule), keep)
    if rule == "top_if":
        return top_fraction(col("if"), keep, largest=True)
    if rule == "abs_irm_small":
        return top_fraction(np.abs(col("irm")), keep, largest=False)
    if rule == "score_gap":
        return top_fraction(col("score_gap"), keep, largest=True)
    return random_fraction(table["valid"].to_numpy(dtype=bool), keep, seed)
