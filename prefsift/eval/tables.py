"""The printed tables of a run: each selection's size and overlap with TIF, and the arms'
WinRate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.windows import overlap_coefficient
from .paired import headroom_share, paired_difference, per_prompt


def format_selections(table: pd.DataFrame, masks: dict) -> str:
    """Each selection's size, its overlap coefficient with the TIF set, and (when the data carries
    true pair types, as the lab does) the share of each type it kept."""
    lines = [f"[selections] {int(table['valid'].sum())} scored pairs of {len(table)}"]
    tif = masks.get("tif")
    w = max([14] + [len(a) + 1 for a in masks])
    head = f"  {'arm':<{w}}{'pairs':>6}" + (f"{'overlap with TIF':>18}" if tif is not None else "")
    types = sorted(table["pair_type"].dropna().unique()) if "pair_type" in table else []
    head += "".join(f"{t[:12]:>14}" for t in types)
    lines.append(head + ("   (share of each true pair type kept)" if types else ""))
    for arm, m in masks.items():
        row = f"  {arm:<{w}}{int(m.sum()):>6}"
        if tif is not None:
            row += f"{overlap_coefficient(m, tif):>18.3f}"
        for t in types:
            of_type = (table["pair_type"] == t).to_numpy()
            row += f"{m[of_type].mean():>14.2f}"
        lines.append(row)
    return "\n".join(lines)


def summarize_arms(evaluation: pd.DataFrame, paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per arm: the mean over seeds, and (given `paired_columns`' frame) the paired
    differences against the random and full arms."""
    g = evaluation.groupby("arm", sort=False)
    out = pd.DataFrame({
        "n_pairs": g["n_pairs"].first(), "win_rate": g["win_rate"].mean(),
        "seed_sd": g["win_rate"].std(ddof=1),
        "low": g["low"].mean(), "high": g["high"].mean(), "score": g["score"].mean(),
        "vs_full": g["head_to_head"].mean(), "seeds": g["seed"].count(),
    })
    if "rm_accuracy" in evaluation:  # route rm_rl
        out["rm_accuracy"] = g["rm_accuracy"].mean()
    out = out.reset_index()
    if paired is not None and len(paired):
        out = out.merge(paired, on="arm", how="left")
    return out


BASELINES = ("random", "full")


def paired_columns(evaluations: list[dict], n_prompts: int, baselines=BASELINES) -> pd.DataFrame:
    """Per arm, its paired difference from each baseline arm on the seeds both were trained with:
    WinRate (``d_wr_<base>``, percentage points as a fraction) and mean single score
    (``d_score_<base>``), each with ``_low``/``_high`` from the two-way bootstrap over seeds and
    prompts."""
    by = {(r["arm"], r["seed"]): r for r in evaluations}
    arms = list(dict.fromkeys(r["arm"] for r in evaluations))
    rows = []
    for arm in arms:
        row = {"arm": arm}
        for base in baselines:
            seeds = sorted(s for (a, s) in by if a == arm and (base, s) in by)
            if base not in arms or not seeds:
                continue
            for name, field in (("wr", "prefs"), ("score", "scores")):
                if not all(field in by[(x, s)] for x in (arm, base) for s in seeds):
                    continue  # an evaluation written before per-answer scores were kept
                a = [per_prompt(by[(arm, s)][field], n_prompts) for s in seeds]
                b = [per_prompt(by[(base, s)][field], n_prompts) for s in seeds]
                d = paired_difference(a, b, seed=len(seeds))
                row.update({f"d_{name}_{base}": d.mean, f"d_{name}_{base}_low": d.low,
                            f"d_{name}_{base}_high": d.high})
        oracle = best_oracle(by, arms)
        share = (_headroom_share(by, arm, oracle, n_prompts) if oracle and arm not in ORACLES
                 else None)
        if share is not None:
            row.update({"headroom_share": share.mean, "headroom_share_low": share.low,
                        "headroom_share_high": share.high, "headroom_oracle": oracle})
        rows.append(row)
    return pd.DataFrame(rows)


ORACLE = "clean"  # the lab's first oracle arm (the clean pairs whose label is right)
# The lab's oracle arms (each needs the lab's truth): `clean` drops the wrong labels and every
# near-tie, near-duplicate and easy pair; `drop_wrong` only the wrong labels; `oracle_relabel` keeps
# every pair with the oracle's label. The headroom is the best of those a run has, named wherever it
# is used, so no contestant passes it by keeping a pair type one oracle drops.
ORACLES = ("clean", "drop_wrong", "oracle_relabel")


def _seeds_with(by: dict, arms) -> list:
    return sorted(s for (a, s) in by
                  if a == arms[0] and all((x, s) in by and "prefs" in by[(x, s)] for x in arms))


def best_oracle(by: dict, arms: list) -> str | None:
    """The oracle arm of `ORACLES` in ``arms`` with the largest mean WinRate gain over `full`, on
    the seeds every such oracle shares with `full` (else each on its own; None without `full` or an
    oracle)."""
    if "full" not in arms:
        return None
    present = [x for x in ORACLES if x in arms and _seeds_with(by, (x, "full"))]
    shared = _seeds_with(by, ("full", *present)) if present else []
    gains = {}
    for o in present:  # compared on the seeds they all share with full, else each on its own
        seeds = shared or _seeds_with(by, (o, "full"))
        if seeds:
            gains[o] = float(np.mean([np.mean(by[(o, s)]["prefs"])
                                      - np.mean(by[("full", s)]["prefs"]) for s in seeds]))
    return max(gains, key=gains.get) if gains else None


def _headroom_share(by: dict, arm: str, oracle: str, n_prompts: int):
    """`paired.headroom_share` of an arm against ``oracle`` on the seeds it shares with both."""
    seeds = _seeds_with(by, (arm, "full", oracle))
    if not seeds:
        return None
    a, f, o = ([per_prompt(by[(x, s)]["prefs"], n_prompts) for s in seeds]
               for x in (arm, "full", oracle))
    return headroom_share(a, f, o, seed=len(seeds))


def format_arms(summary: pd.DataFrame) -> str:
    w = max([14] + [len(a) + 1 for a in summary["arm"]])
    rm = "rm_accuracy" in summary
    diffs = [b for b in BASELINES if f"d_wr_{b}" in summary]
    share = "headroom_share" in summary and summary["headroom_share"].notna().any()
    lines = [f"  {'arm':<{w}}{'pairs':>6}{'WinRate':>9}{'95% CI (mean)':>17}{'sd seeds':>10}"
             f"{'score':>8}{'vs full':>9}"
             + (f"{'RM acc.':>9}" if rm else "")
             + "".join(f"{'WinRate − ' + b + ' [95% CI]':>28}" for b in diffs)
             + (f"{'share of headroom [95% CI]':>30}" if share else "")]
    for _, r in summary.iterrows():
        sd = "" if np.isnan(r["seed_sd"]) else f"{100 * r['seed_sd']:.1f}"
        vs = "" if r["vs_full"] is None or np.isnan(r["vs_full"]) else f"{100 * r['vs_full']:.1f}%"
        line = (f"  {r['arm']:<{w}}{int(r['n_pairs']):>6}{100 * r['win_rate']:>8.1f}%"
                f"{f'[{100 * r.low:.1f}, {100 * r.high:.1f}]':>17}{sd:>10}{r['score']:>8.3f}{vs:>9}"
                + (f"{100 * r['rm_accuracy']:>8.1f}%" if rm else ""))
        for b in diffs:
            m, lo, hi = (r[f"d_wr_{b}{x}"] for x in ("", "_low", "_high"))
            cell = ("" if r["arm"] == b or m != m
                    else f"{100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
            line += f"{cell:>28}"
        if share:
            m, lo, hi = (r[f"headroom_share{x}"] for x in ("", "_low", "_high"))
            cell = ("" if r["arm"] == "full" or r["arm"] in ORACLES or m != m
                    else f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]")
            line += f"{cell:>30}"
        lines.append(line)
    oracles = [o for o in ORACLES if o in set(summary["arm"])]
    if oracles and "full" in set(summary["arm"]) and not share:
        lines.append(f"  (no share of headroom: the best oracle arm of {', '.join(oracles)} does "
                     "not beat all the data beyond its interval, so this testbed cannot rank the "
                     "arms)")
    elif share:
        best = summary["headroom_oracle"].dropna().iloc[0]
        lines.append(f"  share of headroom: (arm − full) / ({best} − full), against the best "
                     f"oracle arm of this run ({', '.join(oracles)})")
    return "\n".join(lines)
