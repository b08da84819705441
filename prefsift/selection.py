"""Selection rules over a scores table: percentile windows, the LossDiff-IRM intersection, target
kept fractions, the baselines' orderings, and the overlap coefficient.

Every function takes an array with NaN for pairs that have no score (invalid rows) and returns a
boolean mask over all pairs; a NaN is never kept. Percentiles are over the scored pairs only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import ConfigError
from .registry import Registry
from .scoring.kinds import SCORES


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


def split_windows(columns, keep: float | None = None, split: float = 0.5, width: float | None = None):
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


@dataclass(frozen=True)
class Rule:
    """A selection rule: its name, the columns of the scores table it reads, and ``select(table,
    keep, seed) -> mask``. ``missing`` names what the data must carry for it (e.g. ratings) when that
    is not a score `prefsift score` makes: a run whose data lacks it skips the arm with a note."""

    name: str
    needs: tuple[str, ...]
    select: Callable
    help: str = ""
    missing: str | None = None
    seeded: bool = False  # the selection depends on the seed: a run draws it anew for every training seed


RULES: Registry[Rule] = Registry("rule", key="rule")


def register_rule(name: str, needs=(), help: str = "", missing: str | None = None, replace: bool = False,
                  seeded: bool = False):
    """Register a selection rule; use as a decorator over ``fn(table, keep, seed) -> boolean mask``.

        @prefsift.register_rule("short_chosen", needs=("irm",), help="...")
        def short_chosen(table, keep, seed):
            ...

    The name can then be given to `prefsift.select`, `prefsift select --rule` (after importing the
    module) and a run config's `arms` (with the module under `plugins`). ``seeded=True``: the rule
    uses its seed, and a run draws its selection anew for every training seed."""
    return RULES.decorator(name, lambda fn: Rule(name, tuple(needs), fn, help, missing, seeded), replace=replace)




def _col(table, c):
    return table[c].to_numpy(dtype=float)


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

    add = lambda name, needs, fn, help, missing=None, seeded=False: RULES.register(  # noqa: E731
        name, Rule(name, needs, fn, help, missing, seeded))
    add("full", (), lambda table, keep, seed: table["valid"].to_numpy(dtype=bool), "every scored pair (keep does not "
                                                                                  "apply)")
    add("lossdiff_irm", ("lossdiff", "irm"), ld_irm, "LossDiff and IRM both in middle windows of one width, "
                                                      "solved for keep (the paper's rule)")
    add("tif", ("if",), middle("if"), "truncated IF: the middle window of IF")
    add("lossdiff", ("lossdiff",), middle("lossdiff"), "the middle window of LossDiff")
    add("irm", ("irm",), middle("irm"), "the middle window of IRM")
    add("top_if", ("if",), lambda table, keep, seed: top_fraction(_col(table, "if"), keep, largest=True),
        "the largest IF (classic influence selection)")
    add("abs_irm_small", ("irm",), lambda table, keep, seed: top_fraction(np.abs(_col(table, "irm")), keep,
                                                                          largest=False), "the smallest |IRM|")
    add("score_gap", ("score_gap",), lambda table, keep, seed: top_fraction(_col(table, "score_gap"), keep,
                                                                            largest=True),
        "the largest rating gap (the data's own ratings)", missing=ratings)
    add("random", (), lambda table, keep, seed: random_fraction(table["valid"].to_numpy(dtype=bool), keep, seed),
        "a seeded random subset (a run draws a new one for every training seed)", seeded=True)
    add("if_small", ("if",), third(0), "the smallest third of IF (keep does not apply)")
    add("if_medium", ("if",), third(1), "the middle third of IF (keep does not apply)")
    add("if_large", ("if",), third(2), "the largest third of IF (keep does not apply)")
    add("lossdiff_irm_complement", ("lossdiff", "irm"), ld_irm_complement, "the scored pairs LossDiff-IRM drops")
    add("clean", ("pair_type", "label_correct"), clean, "oracle arm: the clean pairs whose label is right "
                                                        "(needs the lab's true pair types)", missing=truth)


_builtin_rules()


# Calibrated arms (`pipeline/calibrate.py`) choose a family's window by probe trainings; the scores
# each family's windows are taken on (several: intersected, as LossDiff-IRM).
FAMILIES = {"tif": ("if",), "lossdiff": ("lossdiff",), "lossdiff_irm": ("lossdiff", "irm")}
CALIBRATED_ARMS = tuple(f"calibrated_{f}{s}" for f in FAMILIES for s in ("", "_free"))


def calibrated_family(arm: str) -> tuple[str, bool] | None:
    """(family, free) of a calibrated arm's name, else None."""
    if arm not in CALIBRATED_ARMS:
        return None
    rest = arm[len("calibrated_"):]
    return (rest[: -len("_free")], True) if rest.endswith("_free") else (rest, False)


def check_rule(rule: str, key: str = "rule") -> str:
    """``rule`` if it names a rule, else a `ConfigError` listing them."""
    if rule in CALIBRATED_ARMS:
        raise ConfigError(key=key, problem=f"{rule!r} is not a rule over a scores table: its window is chosen by short "
                                           "probe trainings judged on validation prompts, which only `prefsift run` "
                                           f"makes; list it under a run config's `arms`, or give a window here "
                                           "(--window SCORE:LOW:HIGH)")
    RULES.get(rule, key=key)
    return rule


def check_rule_columns(table, rule: str, key: str = "rule") -> None:
    """A `ConfigError` saying how to make the columns ``rule`` needs when ``table`` lacks them."""
    entry = RULES.get(rule, key=key)
    missing = [c for c in entry.needs if c not in table]
    if not missing:
        return
    if entry.missing is not None:
        problem = f"{rule!r} needs {entry.missing}, which this table does not have; choose another rule"
    elif all(c in SCORES for c in missing):
        have = [c for c in SCORES if c in table]
        need = [c for c in SCORES if c in have or c in missing]
        problem = (f"{rule!r} needs the score(s) {missing}, which this table does not have: rerun `prefsift score` "
                   f"with --scores {','.join(need)} (lossdiff and if also need --validation)")
    else:
        problem = f"{rule!r} needs the column(s) {missing}, which this table does not have; choose another rule"
    raise ConfigError(key=key, problem=problem)


def check_keep(keep, key: str = "keep") -> float:
    """``keep`` if it is a kept fraction in (0, 1], else a `ConfigError`."""
    from .checks import check_value

    if isinstance(keep, bool) or not isinstance(keep, (int, float, np.integer, np.floating)):
        raise ConfigError(key=key, problem=f"must be a number in (0, 1], got {keep!r}")
    return check_value(key, float(keep), "(0, 1]")


def apply_rule(table, rule: str, keep: float, seed: int = 0):
    """A selection mask over the rows of a scores table (pandas DataFrame) by a registered rule."""
    check_rule_columns(table, rule)
    check_keep(keep)
    mask = np.asarray(RULES.get(rule).select(table, keep, seed), dtype=bool)
    if mask.shape != (len(table),):
        raise ValueError(f"rule {rule!r} returned a mask of shape {mask.shape} for a table of {len(table)} rows")
    return mask


def parse_window(spec: str, key: str = "window") -> tuple[str, float, float]:
    """``"if:20:80"`` → ("if", 20.0, 80.0), or a `ConfigError`."""
    parts = spec.split(":")
    try:
        name, lo, hi = parts[0], float(parts[1]), float(parts[2])
        if len(parts) != 3 or not name:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(key=key, problem=f"must be SCORE:LOW:HIGH with percentiles, e.g. if:20:80; got {spec!r}") \
            from None
    if not 0 <= lo < hi <= 100:
        raise ConfigError(key=key, problem=f"needs percentiles 0 <= LOW < HIGH <= 100, got {spec!r}")
    return name, lo, hi


def window_of(table, spec: str, key: str = "window") -> tuple[np.ndarray, str]:
    """The mask of a percentile window ``SCORE:LOW:HIGH`` over a scores table, and its label.

    Several windows joined by commas (``lossdiff:10:90,irm:0:80``) are intersected, each one's
    percentiles taken over the pairs that have every named score (as `lossdiff_irm` does), so the
    two tails of each score can be cut separately: an asymmetric LossDiff-IRM."""
    import pandas as pd

    parts = [parse_window(one.strip(), key) for one in str(spec).split(",")]
    for name, _, _ in parts:
        if name not in table:
            scores = [c for c in table.columns if c not in ("id", "valid", "reason") and
                      pd.api.types.is_numeric_dtype(table[c])]
            raise ConfigError(key=key, problem=f": no score {name!r} in the table; it has {scores}")
    both = np.logical_and.reduce([_scored(table[name].to_numpy(dtype=float)) for name, _, _ in parts])
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
    """A scores table written by `prefsift score` (id, valid, reason and the scores), or a `ConfigError`."""
    import pandas as pd

    from .errors import require_path

    require_path(path, "scores table", key, hint="give the scores.parquet that `prefsift score` wrote")
    try:
        table = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        raise ConfigError(key=key, problem=f": {str(path)!r} is not a readable Parquet file ({type(e).__name__}); "
                                           "give the scores.parquet that `prefsift score` wrote") from None
    lacking = [c for c in ("id", "valid", "reason") if c not in table]
    if lacking:
        raise ConfigError(key=key, problem=f": {str(path)!r} has no {lacking} column(s), so it is not a scores "
                                           "table; give the scores.parquet that `prefsift score` wrote")
    return table


def selection_frame(table, masks: dict):
    """The selection table: each pair's id, validity and reason, and one true/false column per
    selection (what selection.parquet holds, for `prefsift select` and for a run)."""
    sel = table[["id", "valid", "reason"]].copy()
    for name, mask in masks.items():
        sel[name] = mask
    return sel
