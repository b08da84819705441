"""Percentile windows and orderings over one score: the arithmetic every selection rule and the
scores table's TIF column share (no registry, no table).

Every function takes an array with NaN for pairs that have no score (invalid rows) and returns a
boolean mask over all pairs; a NaN is never kept. Percentiles are over the scored pairs only."""

from __future__ import annotations

import numpy as np


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
    """The symmetric middle window holding a fraction `width` of the scored pairs' percentile
    range."""
    if not 0 < width <= 1:
        raise ValueError(f"window width must be in (0, 1], got {width}")
    tail = (1 - width) / 2 * 100
    return window(values, tail, 100 - tail)


def solve_width(mask_of_width, target: float, n_scored: int, tol: float = 1e-4) -> tuple[float,
        np.ndarray]:
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
    """Middle window of one score that keeps a fraction `keep` of the scored pairs (e.g. TIF,
    LossDiff)."""
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


def split_windows(columns, keep: float | None = None, split: float = 0.5,
                  width: float | None = None):
    """Windows of one width on every score in ``columns``, intersected over the pairs scored by all:
    each score's window cuts a share ``split`` of its dropped percentile range from the bottom tail
    and the rest from the top (0: only the top is cut, 1: only the bottom, 0.5: the middle window,
    so ``split_windows([ld, irm], keep)`` is the paper's LossDiff-IRM). Give ``width`` directly, or
    ``keep`` and the width is solved for that kept fraction. Returns (mask, width)."""
    if not 0 <= split <= 1:
        raise ValueError(f"split must be in [0, 1], got {split}")
    cols = [np.asarray(c, dtype=float) for c in columns]
    both = np.logical_and.reduce([_scored(c) for c in cols])
    cols = [np.where(both, c, np.nan) for c in cols]

    def mask_of(w):
        if not 0 < w <= 1:
            raise ValueError(f"window width must be in (0, 1], got {w}")
        lo, hi = (1 - w) * split * 100, 100 - (1 - w) * (1 - split) * 100
        return np.logical_and.reduce([window(c, lo, hi) for c in cols])

    if width is not None:
        return mask_of(width), width
    if keep is None:
        raise ValueError("give keep or width")
    w, mask = solve_width(mask_of, keep, int(both.sum()))
    return mask, w


def tail_grid(scores, tails) -> list[str]:
    """Window specs (`window_of`) cutting LOW % from the bottom and HIGH % from the top of every
    score in ``scores``, for each (LOW, HIGH) of ``tails`` x ``tails`` that leaves something."""
    return [",".join(f"{s}:{lo:g}:{100 - hi:g}" for s in scores)
            for lo in tails for hi in tails if lo + hi < 100]


def top_fraction(values, keep: float, largest: bool = True) -> np.ndarray:
    """The `keep` fraction of scored pairs with the largest (or smallest) values; ties by
    position."""
    v = np.asarray(values, dtype=float)
    ok = np.flatnonzero(_scored(v))
    k = int(round(keep * len(ok)))
    order = ok[np.argsort(-v[ok] if largest else v[ok], kind="stable")]
    mask = np.zeros(len(v), dtype=bool)
    mask[order[:k]] = True
    return mask


def random_fraction(n_or_valid, keep: float, seed: int = 0) -> np.ndarray:
    valid = (np.ones(n_or_valid, dtype=bool) if np.isscalar(n_or_valid)
             else np.asarray(n_or_valid, dtype=bool))
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


def percentile_rank(values) -> np.ndarray:
    """Each scored value's mid-rank percentile in [0, 1] among the scored values (ties share one);
    NaN where not scored."""
    v = np.asarray(values, dtype=float)
    ok = _scored(v)
    out = np.full(len(v), np.nan)
    x = v[ok]
    if len(x) == 1:
        out[ok] = 0.5
    elif len(x):
        below = np.searchsorted(np.sort(x), x, side="left")
        equal = np.searchsorted(np.sort(x), x, side="right") - below
        out[ok] = (below + (equal - 1) / 2) / (len(x) - 1)
    return out


def mean_rank(*columns) -> np.ndarray:
    """The mean of each column's `percentile_rank` over the pairs scored by every column (NaN
    elsewhere): two scores on one scale, whatever their units."""
    both = np.logical_and.reduce([_scored(c) for c in columns])
    ranks = [percentile_rank(np.where(both, np.asarray(c, dtype=float), np.nan)) for c in columns]
    return np.where(both, np.mean(ranks, axis=0), np.nan)
