"""What the lab's truth columns (`label_correct`) say about a run's data that a team could not see:
how much the data's ratings leak the truth its labels hide."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def gap_below_zero(gap, among) -> tuple[float, int] | None:
    """(the share of the finite rating gaps (chosen − rejected) below zero among the rows ``among``,
    their count), or None when there are none."""
    g = np.asarray(gap, dtype=float)[np.asarray(among, dtype=bool)]
    g = g[np.isfinite(g)]
    return (float((g < 0).mean()), int(len(g))) if len(g) else None


def rating_leak_share(scores) -> tuple[float, int] | None:
    """(the share of the scored wrong labels whose rating gap points to the truth, their count),
    from a scores table with the lab's truth and the data's ratings; None without them or wrong
    labels. 0 where the rater who labelled gave the ratings (its gap never points against its
    label)."""
    if not {"label_correct", "score_gap", "valid"} <= set(scores.columns):
        return None
    wrong = scores["valid"].astype(bool) & ~scores["label_correct"].fillna(True).astype(bool)
    return gap_below_zero(scores["score_gap"], wrong)


# Each score's direction: +1 where a larger value means the label is more likely right (the rules
# keep the top), −1 where smaller does (Selective DPO keeps the smallest held-out loss; a larger
# group ε).
SCORE_DIRECTION = {"irm": 1, "lossdiff": 1, "if": 1, "tif": 1, "teacher": 1, "heldout": -1,
                   "group_noise": -1, "score_gap": 1}
LENGTH_GROUPS = {1: "chosen longer", -1: "chosen shorter", 0: "as long"}


def detection_auc(score, wrong) -> float:
    """The AUC of finding a wrong label by a low score: P(score of a right label > score of a wrong
    one) + ½·P(tie), over the pairs with a finite score (the Mann–Whitney U statistic over their
    mid-ranks). NaN without a right and a wrong label among them."""
    s, w = np.asarray(score, dtype=float), np.asarray(wrong, dtype=bool)
    ok = np.isfinite(s)
    s, w = s[ok], w[ok]
    n_wrong, n_right = int(w.sum()), int((~w).sum())
    if not n_wrong or not n_right:
        return float("nan")
    ranks = rankdata(s)  # mid-ranks: ties share the mean of their positions (1-based)
    u_right = ranks[~w].sum() - n_right * (n_right + 1) / 2
    return float(u_right / (n_right * n_wrong))


def detection_table(scores):
    """Per score of a scores table with the lab's truth: its detection AUC over every scored pair
    and within each length group (where the table has `length_direction`), the wrong labels' count
    in each; None without the truth or any wrong label."""
    if "label_correct" not in scores or "valid" not in scores:
        return None
    valid = scores["valid"].astype(bool).to_numpy()
    wrong = ~scores["label_correct"].fillna(True).astype(bool).to_numpy()
    if not (valid & wrong).any():
        return None
    groups = {"all pairs": valid}
    if "length_direction" in scores:
        d = scores["length_direction"].to_numpy(dtype=float)
        groups.update({name: valid & (d == k) for k, name in LENGTH_GROUPS.items()
                       if (valid & (d == k)).any()})
    rows = {}
    for name, sign in SCORE_DIRECTION.items():
        if name in scores:
            v = sign * scores[name].to_numpy(dtype=float)
            rows[name] = {g: detection_auc(v[m], wrong[m]) for g, m in groups.items()}
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "score"
    table.loc["wrong labels"] = [int((m & wrong).sum()) for m in groups.values()]
    return table
