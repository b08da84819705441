"""What the lab's truth columns (`label_correct`) say about a run's data that a team could not see:
how much the data's ratings leak the truth its labels hide."""

from __future__ import annotations

import numpy as np


def gap_below_zero(gap, among) -> tuple[float, int] | None:
    """(the share of the finite rating gaps (chosen − rejected) below zero among the rows ``among``,
    their count), or None when there are none."""
    g = np.asarray(gap, dtype=float)[np.asarray(among, dtype=bool)]
    g = g[np.isfinite(g)]
    return (float((g < 0).mean()), int(len(g))) if len(g) else None


def rating_leak_share(scores) -> tuple[float, int] | None:
    """(the share of the scored wrong labels whose rating gap points to the truth, their count), from
    a scores table with the lab's truth and the data's ratings; None without them or wrong labels.
    0 where the rater who labelled gave the ratings (its gap never points against its label)."""
    if not {"label_correct", "score_gap", "valid"} <= set(scores.columns):
        return None
    wrong = scores["valid"].astype(bool) & ~scores["label_correct"].fillna(True).astype(bool)
    return gap_below_zero(scores["score_gap"], wrong)
