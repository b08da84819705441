"""Ratings, where the file has them (`score_chosen`, `score_rejected`, as UltraFeedback): chosen
rated below rejected (the label contradicts the file's own ratings), ties (a label with no rating
behind it), values outside the scale, and ratings that are not numbers (from the data layer).

The scale: the one given, else the smallest of the usual rating scales (0–1, 1–5, 0–5, 1–7, 1–10,
0–10, 0–100, 1–100) that holds 98 % of the ratings (its 1st to 99th percentile); when none does, the
1st–99th percentile range widened by half its width on each side. A typo (50 on a 1–10 scale) or a
sentinel (−1 for "no rating") falls outside it."""

from __future__ import annotations

import numpy as np

from ..data.pairs import RATING_FIELDS, _rating_value
from .finding import Finding, rows_finding

SCALES = ((0, 1), (1, 5), (0, 5), (1, 7), (1, 10), (0, 10), (0, 100), (1, 100))


def infer_scale(values: np.ndarray) -> tuple[float, float, str]:
    """(low, high, how it was found) of the rating scale from the ratings seen."""
    lo, hi = np.percentile(values, [1, 99])
    for a, b in SCALES:
        if a <= lo and hi <= b:
            return (
                float(a),
                float(b),
                f"the usual scale {a}–{b}, which holds the 1st–99th percentile of the ratings",
            )
    w = hi - lo
    return (
        float(lo - w / 2),
        float(hi + w / 2),
        "the 1st–99th percentile of the ratings, widened by half its width",
    )


def rating_findings(pairs, scale: tuple[float, float] | None = None) -> list[Finding]:
    if not pairs.has_ratings:
        return []
    from_csv = pairs.raw.file_format == "csv"
    n = len(pairs)
    sc, sr = np.full(n, np.nan), np.full(n, np.nan)
    for i, (row, raw) in enumerate(zip(pairs.rows, pairs.raw.rows)):
        if row.valid and raw.record is not None and not row.rating_problem:
            sc[i] = _rating_value(raw.record.get(RATING_FIELDS[0]), from_csv)[0]
            sr[i] = _rating_value(raw.record.get(RATING_FIELDS[1]), from_csv)[0]
    rated = np.isfinite(sc) & np.isfinite(sr)
    n_rated = int(rated.sum())
    bad = [i for i, r in enumerate(pairs.rows) if r.valid and r.rating_problem]
    out = [
        rows_finding(
            pairs,
            "ratings.not_numbers",
            "ratings",
            "ratings that are not numbers",
            bad,
            int(sum(r.valid for r in pairs.rows)),
            summary="a rating is missing, text or not finite (see `prefsift data check`)",
            try_="fix or fill them; the score_gap and alignment-potential rules leave these pairs "
            "out",
        )
    ]
    if not n_rated:
        f = rows_finding(
            pairs, "ratings.chosen_below", "ratings", "chosen rated below rejected", [], 0
        )
        f.cannot_tell = "no usable pair has two numeric ratings"
        return out + [f]
    values = np.concatenate([sc[rated], sr[rated]])
    if scale is None:
        lo, hi, how = infer_scale(values)
    else:
        lo, hi, how = float(scale[0]), float(scale[1]), "as given"
    below = np.flatnonzero(rated & (sc < sr))
    ties = np.flatnonzero(rated & (sc == sr))
    outside = np.flatnonzero(rated & ((sc < lo) | (sc > hi) | (sr < lo) | (sr > hi)))
    seen = values[(values < lo) | (values > hi)]
    out += [
        rows_finding(
            pairs,
            "ratings.chosen_below",
            "ratings",
            "chosen rated below rejected",
            below,
            n_rated,
            summary="the label contradicts the file's own ratings",
            try_="check the binarisation (chosen = the higher rating); swap or drop them "
            "(prefsift's lossdiff_irm_relabel arm swaps the pairs θ flags)",
            stats={"mean_gap": float(np.mean(sc[below] - sr[below])) if len(below) else None},
        ),
        rows_finding(
            pairs,
            "ratings.ties",
            "ratings",
            "ratings tied",
            ties,
            n_rated,
            summary="chosen and rejected have the same rating: the label has no rating behind it",
            try_="drop them, or keep them only with a careful label; score_gap ranks them last",
        ),
        rows_finding(
            pairs,
            "ratings.out_of_scale",
            "ratings",
            "ratings outside the scale",
            outside,
            n_rated,
            summary=f"scale {lo:g}–{hi:g} ({how}); values outside: "
            + ", ".join(f"{v:g}" for v in sorted(set(seen.tolist()))[:8]),
            try_="fix the values (a typo, a sentinel such as -1 for 'none'), or give the scale "
            "with "
            "--rating-scale LOW:HIGH",
            stats={"scale": [lo, hi], "how": how},
        ),
    ]
    return out
