"""Length: is the chosen answer systematically the longer one?

Among the pairs whose answers differ in length, p_t is the share whose chosen is the longer. Alone
it cannot separate a rater that prefers longer answers from data where the better answer is longer.
A careful validation set can: with p_v its share, a rater that decides a share b of the pairs by
length (the longer is chosen) and labels the rest as the careful set would gives

    p_t = b + (1 − b)·p_v,   so   b̂ = (p_t − p_v) / (1 − p_v)

(docs/method.md, "The audit's length-decided share"). Random label flips at a rate f instead give
p_t = p_v + f·(1 − 2·p_v): they pull p_t toward ½, never past it, so a shift that stays between p_v
and ½ cannot tell a length bias from random noise, and the audit says so instead of reporting a
bias.

Intervals: a share of 0/1 outcomes resampled with replacement has a binomial count, so the bootstrap
of each file is exactly `Binomial(n, p̂)/n`; both files are resampled independently."""

from __future__ import annotations

import numpy as np

from .finding import Finding, rows_finding
from .texts import AuditTexts

BOOTSTRAP = 10_000


def _shares(t: AuditTexts, mask=None) -> dict:
    use = t.usable if mask is None else t.usable & mask
    lc, lr = t.len_chosen[use], t.len_rejected[use]
    differ = lc != lr
    n_diff, n_longer = int(differ.sum()), int((lc > lr).sum())
    mean_c, mean_r = (float(lc.mean()), float(lr.mean())) if len(lc) else (np.nan, np.nan)
    return {
        "pairs": int(use.sum()),
        "differ_in_length": n_diff,
        "chosen_longer": n_longer,
        "share_chosen_longer": n_longer / n_diff if n_diff else None,
        "mean_length_chosen": mean_c,
        "mean_length_rejected": mean_r,
        "length_ratio": mean_c / mean_r if len(lc) and mean_r > 0 else None,
    }


def _interval(x: np.ndarray) -> list[float] | None:
    x = x[np.isfinite(x)]
    if len(x) < BOOTSTRAP // 2:  # most resamples undefined: no honest interval
        return None
    return [float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))]


def compare(train: dict, val: dict, rng: np.random.Generator) -> dict:
    """p_t against p_v: the difference and b̂, each with its bootstrap interval; or why not."""
    n_t, n_v = train["differ_in_length"], val["differ_in_length"]
    if not n_t:
        return {"cannot_tell": "no training pair has answers of different lengths"}
    if not n_v:
        return {
            "cannot_tell": "no validation pair has answers of different lengths, so there is no "
            "careful "
            "share to compare with"
        }
    p_t, p_v = train["share_chosen_longer"], val["share_chosen_longer"]
    bt = rng.binomial(n_t, p_t, BOOTSTRAP) / n_t
    bv = rng.binomial(n_v, p_v, BOOTSTRAP) / n_v
    out = {
        "validation_share_chosen_longer": p_v,
        "difference": p_t - p_v,
        "difference_interval": _interval(bt - bv),
    }
    if p_v < 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.where(bv < 1, (bt - bv) / (1 - bv), np.nan)
        out["length_decided_share"] = (p_t - p_v) / (1 - p_v)
        out["length_decided_interval"] = _interval(b)
    else:
        out["length_decided_share"] = None
        out["length_decided_note"] = "every validation pair's chosen is the longer: b̂ is undefined"
    if p_v != 0.5 and min(p_v, 0.5) <= p_t <= max(p_v, 0.5):  # where random flips alone can put p_t
        out["random_flip_rate"] = (p_t - p_v) / (1 - 2 * p_v)
    return out


def _alone_interval(stats: dict, rng) -> list[float] | None:
    n, p = stats["differ_in_length"], stats["share_chosen_longer"]
    return _interval(rng.binomial(n, p, BOOTSTRAP) / n) if n else None


def _verdict(stats: dict, cmp: dict | None, th) -> tuple[bool, str | None]:
    """(reported, why it is not a bias though it shifted): the threshold of docs/guide.md."""
    if cmp is not None and "cannot_tell" not in cmp:
        ci = cmp["difference_interval"]
        beyond = (
            ci is not None
            and (ci[0] > 0 or ci[1] < 0)
            and abs(cmp["difference"]) >= th.length_min_difference
        )
        if beyond and "random_flip_rate" in cmp:
            return False, (
                f"the share moved toward ½ from the careful set's, as random label flips at a "
                "rate of "
                f"{cmp['random_flip_rate']:.2f} would move it: not told apart from a length bias"
            )
        return beyond, None
    ci = stats.get("share_interval")
    lo, hi = th.length_share_band
    return ci is not None and (ci[0] > hi or ci[1] < lo), None


def length_findings(
    pairs, train: AuditTexts, validation: AuditTexts | None, groups: list[str], th, seed: int = 0
) -> list[Finding]:
    """The length finding over the whole file, and one over the levels of each group column."""
    rng = np.random.default_rng(seed)
    stats = _shares(train)
    stats["unit"] = train.unit
    stats["share_interval"] = _alone_interval(stats, rng)
    cmp = None
    if validation is not None:
        vstats = _shares(validation)
        stats["validation"] = vstats
        cmp = compare(stats, vstats, rng)
        stats.update({k: v for k, v in cmp.items() if k != "cannot_tell"})
    longer = np.flatnonzero(train.usable & (train.len_chosen > train.len_rejected))
    try_ = (
        "a length bias: the careful set decides. Offer `prefsift recommend` (calibration.by: loss, "
        "the careful pairs) the one-sided top_if, cdpo and lossdiff_irm beside all the data: on "
        "the bias testbed top_if took most of the oracle's headroom and lossdiff_irm lost "
        "(docs/results.md)"
    )
    f = rows_finding(
        pairs,
        "length.chosen_longer",
        "length",
        "chosen is the longer answer",
        longer,
        stats["differ_in_length"],
        stats=stats,
        try_=try_,
    )
    f.reported, noise = _verdict(stats, cmp, th)
    f.threshold = (
        f"95 % interval of p_t − p_v excludes 0 and |p_t − p_v| >= {th.length_min_difference}, "
        "unless random flips explain it"
        if validation is not None
        else f"95 % interval of the share lies outside [{th.length_share_band[0]}, "
        f"{th.length_share_band[1]}] "
        "(no validation set: a careful one tells bias from quality)"
    )
    f.summary = _summary(stats, cmp, train.unit)
    if noise:
        f.summary += f"; {noise}"
    if stats["differ_in_length"] == 0:
        f.cannot_tell = "no usable pair has answers of different lengths"
    elif cmp is not None and "cannot_tell" in cmp:
        f.cannot_tell = cmp["cannot_tell"]
    out = [f]
    for col in groups:
        out.append(_by_group(pairs, train, validation, col, th, rng, try_))
    return out


def _summary(stats: dict, cmp: dict | None, unit: str) -> str:
    p = stats["share_chosen_longer"]
    if p is None:
        return ""
    ratio = stats["length_ratio"]
    text = f"chosen longer in {100 * p:.1f} % of the pairs whose lengths differ"
    if ratio is not None:
        text += f", mean length ratio chosen/rejected {ratio:.2f} ({unit})"
    if cmp is not None and "difference" in cmp:
        ci = cmp["difference_interval"]
        text += (
            f"; careful validation {100 * cmp['validation_share_chosen_longer']:.1f} %, difference "
            f"{100 * cmp['difference']:+.1f} pts"
            + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")
        )
        b, bi = cmp.get("length_decided_share"), cmp.get("length_decided_interval")
        if b is not None:
            text += f"; implied length-decided share b = {b:.2f}" + (
                f" [{bi[0]:.2f}, {bi[1]:.2f}]" if bi else ""
            )
    return text


def _by_group(
    pairs, train: AuditTexts, validation: AuditTexts | None, col: str, th, rng, try_
) -> Finding:
    """Each level of a group column alone (against the same level of the validation file when it has
    the column, else against the whole validation file); reported for the levels over threshold with
    at least `th.length_min_group` pairs whose lengths differ."""
    levels = _column(pairs, col)
    vlevels = _column(validation.pairs, col) if validation is not None else None
    by, flagged = {}, []
    for level in sorted({v for v, u in zip(levels, train.usable) if u}, key=str):
        mask = np.array([v == level for v in levels])
        s = _shares(train, mask)
        s["share_interval"] = _alone_interval(s, rng)
        cmp = None
        if validation is not None:
            vmask = (
                np.array([v == level for v in vlevels])
                if vlevels is not None and any(v == level for v in vlevels)
                else None
            )
            vs = _shares(validation, vmask)
            s["compared_with"] = (
                "the same level of the validation file" if vmask is not None else "all validation"
            )
            cmp = compare(s, vs, rng)
            s.update({k: v for k, v in cmp.items()})
        reported, _ = _verdict(s, cmp, th)
        s["reported"] = bool(reported and s["differ_in_length"] >= th.length_min_group)
        by[str(level)] = s
        if s["reported"]:
            flagged.append(str(level))
            flagged_rows = mask & train.usable & (train.len_chosen > train.len_rejected)
            s["_rows"] = np.flatnonzero(flagged_rows)
    rows = np.concatenate([by[lv].pop("_rows") for lv in flagged]) if flagged else []
    denom = (
        int(sum(by[lv]["differ_in_length"] for lv in flagged))
        if flagged
        else int((train.usable & (train.len_chosen != train.len_rejected)).sum())
    )
    f = rows_finding(
        pairs,
        f"length.chosen_longer.by.{col}",
        "length",
        f"chosen is the longer answer, by {col}",
        rows,
        denom,
        stats={"column": col, "levels": by, "flagged": flagged},
        try_=try_,
    )
    f.reported = bool(flagged)
    f.threshold = (
        f"a level passes the length threshold with >= {th.length_min_group} pairs whose "
        "lengths differ"
    )
    parts = [
        f"{lv}: {100 * by[lv]['share_chosen_longer']:.1f} %"
        for lv in by
        if by[lv]["share_chosen_longer"] is not None
    ]
    f.summary = (
        (f"flagged {', '.join(flagged)}; " if flagged else "")
        + "chosen longer by level: "
        + ", ".join(parts[:12])
    )
    return f


def _column(pairs, col: str) -> list:
    """The values of an extra column of the file, one per row (None where absent)."""
    return [raw.record.get(col) if raw.record is not None else None for raw in pairs.raw.rows]
