"""What both scores tables (a policy's, a reward model's) share: the pairs tokenized, per-pair
values spread over every input row, and the printed summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import PairSet
from ..data.tokenization import tokenize_pairs


def tokenized(pairs: PairSet, tok):
    rows = pairs.valid_rows
    return tokenize_pairs(tok, [r.prompt for r in rows], [r.chosen for r in rows],
                          [r.rejected for r in rows], pairs.kind)


def spread(pairs: PairSet, values) -> np.ndarray:
    """Values over the valid rows → an array over all rows, NaN where a row was not scored."""
    out = np.full(len(pairs), np.nan)
    out[[r.index for r in pairs.valid_rows]] = values
    return out


def _correlations(x, y):
    """(Pearson r, Spearman ρ) over the pairs where both are finite; None when undefined there."""
    from scipy.stats import pearsonr, spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    good = np.isfinite(x) & np.isfinite(y)
    if good.sum() < 3 or np.std(x[good]) == 0 or np.std(y[good]) == 0:
        return None
    return pearsonr(x[good], y[good])[0], spearmanr(x[good], y[good])[0]


def summarize(table: pd.DataFrame, timings: dict[str, float] | None = None) -> str:
    n, ok = len(table), int(table["valid"].sum())
    lines = [f"scores: {n} pairs in, {ok} scored, {n - ok} not scored (reason in the table)"]
    cols = [c for c in ("if", "lossdiff", "irm", "abs_irm", "score_gap") if c in table]
    sub = table.loc[table["valid"], cols].astype(float)
    if len(cols) >= 2 and len(sub) >= 3:
        lines.append("correlations (Pearson r / Spearman ρ):")
        for i, a in enumerate(cols):
            for b in cols[i + 1:]:
                rr = _correlations(sub[a], sub[b])
                if rr is not None:
                    lines.append(f"  {a:>9} ~ {b:<9} r = {rr[0]:+.3f}   ρ = {rr[1]:+.3f}")
    groups = [c for c in table.columns if c.startswith("if_")]
    cheap = [c for c in ("lossdiff", "irm") if c in table]
    if groups and cheap and len(sub) >= 3:
        lines.append("by layer group, Pearson r of each cheap score with that group's IF:")
        lines.append("  " + f"{'group':<16}" + "".join(f"{c:>10}" for c in cheap))
        valid = table.loc[table["valid"]]
        for g in groups:
            cells = []
            for c in cheap:
                rr = _correlations(valid[c], valid[g])
                cells.append(f"{rr[0]:>+10.3f}" if rr is not None else f"{'-':>10}")
            lines.append(f"  {g[3:]:<16}" + "".join(cells))
    if "tif" in table:
        lines.append(f"TIF keeps {int(table['tif'].sum())} of {ok} scored pairs")
    if timings:
        lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return "\n".join(lines)
