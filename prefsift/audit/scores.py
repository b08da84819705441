"""With a scores table (`prefsift score`): the pairs θ holds strongly the other way, and where each
score puts the pairs by length group (chosen longer / same length / rejected longer), which is where
a length-biased rater's labels sit.

"Strongly the other way": θ's implicit reward margin IRM = m_θ(d) is a Bradley–Terry logit, so σ(m)
is the probability θ gives the label; m <= −log(9) means θ gives it at most 10 %.

By length group, each score's separation of the chosen-longer pairs from the rejected-longer ones is
the AUC P(score of a chosen-longer pair > score of a rejected-longer pair) (ties count ½); 0.5 means
the score does not see length. An AUC far from 0.5 says which end of the score the suspect labels
sit at, and so which one-sided rule drops them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .finding import Finding, rows_finding
from .texts import AuditTexts

SKIP = {"row", "valid", "n_tokens"}


def auc(x: np.ndarray, y: np.ndarray) -> float | None:
    """P(X > Y) + ½·P(X = Y) by ranks (the Mann–Whitney statistic over |x|·|y|)."""
    if not len(x) or not len(y):
        return None
    r = rankdata(np.concatenate([x, y]))
    return float((r[: len(x)].sum() - len(x) * (len(x) + 1) / 2) / (len(x) * len(y)))


def score_findings(pairs, t: AuditTexts, table: pd.DataFrame, th) -> list[Finding]:
    out = []
    if "irm" in table:
        m = table["irm"].to_numpy(dtype=float)
        ok = np.isfinite(m)
        cut = -math.log(1 / th.strong_probability - 1)
        rows = np.flatnonzero(ok & (m <= cut))
        out.append(
            rows_finding(
                pairs,
                "scores.theta_disagrees",
                "scores",
                "pairs θ holds strongly the other way",
                rows,
                int(ok.sum()),
                threshold_share=th.strong_min_share,
                summary=f"IRM <= {cut:.2f}: θ gives the label at most "
                f"{100 * th.strong_probability:g} %",
                try_="swap or drop them if the careful set agrees with θ: lossdiff_irm_relabel "
                "swaps, "
                "small_margin keeps the hardest, robust_dpo and cdpo soften them",
                stats={"irm_cut": cut, "scored": int(ok.sum())},
            )
        )
    groups = {
        "chosen longer": t.usable & (t.len_chosen > t.len_rejected),
        "same length": t.usable & (t.len_chosen == t.len_rejected),
        "rejected longer": t.usable & (t.len_chosen < t.len_rejected),
    }
    by_score, flagged = {}, []
    for c in table.columns:
        if (
            c in SKIP
            or not pd.api.types.is_numeric_dtype(table[c])
            or pd.api.types.is_bool_dtype(table[c])
        ):
            continue
        v = table[c].to_numpy(dtype=float)
        entry = {}
        for name, mask in groups.items():
            x = v[mask & np.isfinite(v)]
            entry[name] = (
                {
                    "n": int(len(x)),
                    "median": float(np.median(x)),
                    "q25": float(np.percentile(x, 25)),
                    "q75": float(np.percentile(x, 75)),
                }
                if len(x)
                else {"n": 0}
            )
        a = auc(
            v[groups["chosen longer"] & np.isfinite(v)],
            v[groups["rejected longer"] & np.isfinite(v)],
        )
        entry["auc_chosen_longer_vs_rejected_longer"] = a
        by_score[c] = entry
        if a is not None and abs(a - 0.5) >= th.score_min_auc_gap:
            flagged.append(c)
    denom = int((groups["chosen longer"] | groups["rejected longer"]).sum())
    f = rows_finding(
        pairs,
        "scores.by_length",
        "scores",
        "scores that see length",
        np.flatnonzero(groups["chosen longer"]) if flagged else [],
        denom,
        stats={"by_score": by_score, "flagged": flagged},
        try_="the chosen-longer pairs sit at one end of these scores: a one-sided rule there "
        "(top_if keeps the top of "
        "IF) drops most of them, where a middle window keeps them",
    )
    f.reported = bool(flagged)
    f.threshold = (
        f"|AUC − 0.5| >= {th.score_min_auc_gap} (chosen-longer against rejected-longer pairs)"
    )
    f.summary = ", ".join(
        f"{c}: AUC {by_score[c]['auc_chosen_longer_vs_rejected_longer']:.2f}"
        for c in by_score
        if by_score[c]["auc_chosen_longer_vs_rejected_longer"] is not None
    )
    out.append(f)
    return out
