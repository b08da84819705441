"""The leaderboard of one testbed, read from finished runs (one lab each; nothing is retrained).

    python experiments/leaderboard.py runs/e12/bias-lab0 runs/e12/bias-lab1 runs/e12/bias-lab2

Prints, pooled over the labs (`labs.py`'s three-level bootstrap):
1. the headroom: each oracle arm the runs have (`clean`, `drop_wrong`, `oracle_relabel`) against all
   the data and random; shares are taken against the best of them (`--oracle` to name one);
2. every arm, best first: WinRate, its paired differences from random and from all the data, the
   smallest difference from all the data the design detects (80 % power), its share of the headroom
   ((arm − full) / (oracle − full), per lab with its interval), what it keeps of each true pair type
   and of the wrong labels, and its cost (its training seconds per seed over the full arm's; the
   scores it reads and their seconds);
3. where a run has the `auto` arm: what the recommendation chose in each lab, the test-best of its
   candidates there, its hit rate and its regret (the test-best's WinRate minus the choice's), and
   the choice against always using all the data."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from labs import _grid, _pct, arm_rows, lab_values  # noqa: E402

from prefsift.eval.paired import headroom_share, smallest_detectable  # noqa: E402
from prefsift.eval.tables import ORACLES  # noqa: E402
from prefsift.pipeline.recommend import read_recommendation  # noqa: E402
from prefsift.pipeline.rundir import RunDir  # noqa: E402
from prefsift.selection.arms import arm_needs  # noqa: E402
from prefsift.selection.kinds import ArmContext  # noqa: E402

# The score stages each score needs (score/score_timings.json's keys).
SCORE_STAGES = {"irm": ("logprobs",), "lossdiff": ("logprobs", "lossdiff"), "if": ("if",),
                "tif": ("if",), "heldout": ("heldout",), "score_gap": (), "teacher": ("teacher",),
                "group_noise": ("group_noise",)}


def shares(labs: list[dict], arm: str, oracle: str) -> list:
    """Each lab's share of the headroom of `arm` (a PairedDifference, or None where the lab's
    oracle does not clear all the data)."""
    out = []
    for lab in labs:
        v = lab["values"]
        common = sorted(set(v[arm]) & set(v["full"]) & set(v[oracle]))
        out.append(headroom_share(_grid(v[arm], common), _grid(v["full"], common),
                                  _grid(v[oracle], common))
                   if common else None)
    return out


def pick_oracle(by: dict, name: str) -> str:
    """``name``, or with "best" the oracle arm of `ORACLES` with the largest pooled gain over all
    the data; exits with a message when the runs have none."""
    have = [o for o in ORACLES if o in by and by[o].get("d_full") is not None]
    if name != "best":
        if name not in by:
            raise SystemExit(f"the runs have no arm {name!r} (oracle arms here: "
                             f"{', '.join(have) or 'none'})")
        return name
    if not have:
        raise SystemExit(f"the runs have none of the oracle arms {', '.join(ORACLES)} beside full")
    return max(have, key=lambda o: by[o]["d_full"].mean)


def kept_by_type(run: Path, arms: list[str]) -> tuple[list[str], dict]:
    """The share of each true pair type, and of the wrong labels, that each arm's data holds."""
    sel = pd.read_parquet(run / "selection.parquet")
    truth = pd.read_parquet(run / "score" / "scores.parquet")
    truth = truth[[c for c in ("id", "pair_type", "label_correct", "biased") if c in truth]]
    m = sel.merge(truth, on="id", how="left")
    groups = {t: (m["pair_type"] == t).to_numpy() for t in sorted(m["pair_type"].dropna().unique())}
    wrong = ~m["label_correct"].fillna(True).to_numpy(dtype=bool)
    groups["wrong labels"] = wrong
    # the bias testbed: the wrong labels the biased rater gave, and the labeller's own
    if "biased" in m:
        biased = m["biased"].fillna(False).to_numpy(dtype=bool)
        groups["wrong, by the bias"], groups["wrong, by chance"] = wrong & biased, wrong & ~biased
    out = {}
    for arm in arms:
        if arm not in m:
            continue
        mask = m[arm].to_numpy(dtype=bool)
        out[arm] = {g: float(mask[idx].mean()) if idx.any() else float("nan")
                    for g, idx in groups.items()}
    return list(groups), out


def train_seconds(run: Path, arm: str) -> float:
    secs = [json.loads(p.read_text())["seconds"]
            for p in sorted((run / "arms").glob(f"{arm}-seed*/stage.json"))]
    return float(np.median(secs)) if secs else float("nan")


def score_cost(run: Path, arm: str, cfg: dict) -> str:
    timings = json.loads((run / "score" / "score_timings.json").read_text())
    needs = [n for n in arm_needs(arm, ArmContext(imported=cfg.get("imported") or {},
                                                  windows=cfg.get("windows") or {}))
             if n in SCORE_STAGES]
    stages = sorted({s for n in needs for s in SCORE_STAGES[n]})
    if not needs:
        return "–"
    return f"{'+'.join(needs)} ({sum(timings.get(s, 0.0) for s in stages):.0f} s)"


def _diff(d, n_labs: int) -> str:
    """mean [these labs' interval], and with several labs (across labs: the labs resampled)."""
    if d is None:
        return "–"
    within = f"{_pct(d.mean, True)} [{_pct(d.within_low, True)}, {_pct(d.within_high, True)}]"
    return (within
            + (f" (across labs [{_pct(d.low, True)}, {_pct(d.high, True)}])" if n_labs > 1 else ""))


def detectable(d) -> str:
    """The smallest true difference from all the data this design detects (80 % power, 5 % level),
    from the these-labs interval: what a "no difference" in that column can rule out."""
    if d is None:
        return "–"
    within = dataclasses.replace(d, low=d.within_low, high=d.within_high)
    return f"{100 * smallest_detectable(within):.1f}"


def recommendation_rows(runs: list[Path], labs: list[dict]) -> list[dict]:
    rows = []
    for run, lab in zip(runs, labs):
        rec = read_recommendation(RunDir(run))
        if rec is None:
            continue
        cands = [c["candidate"] for c in rec["candidates"] if c["candidate"] in lab["values"]]
        if rec["chosen"] not in cands or "full" not in cands:
            print(f"note: {run} is left out of the hit rate: its recommendation ({rec['chosen']}) "
                  "or all the data was not trained as an arm of its own, so the test-best "
                  "candidate is unknown", file=sys.stderr)
            continue
        # over the seeds every candidate has, and seed by seed: the test-best of each seed's
        # trainings
        seeds = sorted(set.intersection(*(set(lab["values"][c]) for c in cands)))
        per_seed = [{c: float(lab["values"][c][s].mean()) for c in cands} for s in seeds]
        mean = {c: float(np.mean([v[c] for v in per_seed])) for c in cands}
        best = max(mean, key=mean.get)
        chosen = rec["chosen"]
        rows.append({"lab": run.name, "chosen": chosen, "best": best, "hit": chosen == best,
                     "regret": mean[best] - mean[chosen], "vs_full": mean[chosen] - mean["full"],
                     "seed_hits": sum(max(v, key=v.get) == chosen for v in per_seed),
                     "seeds": len(seeds),
                     "seed_regret": float(np.mean([max(v.values()) - v[chosen] for v in per_seed])),
                     "candidates": len(cands), "probe_seconds": rec["probe_seconds"],
                     "why": rec["why"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="finished run directories of one testbed, one lab each")
    ap.add_argument("--oracle", default="best",
                    help="the oracle arm shares are taken against (default: best, "
                         "the oracle arm of largest pooled gain over all the data)")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap draws (default 2000)")
    ap.add_argument("--seeds",
                    help="only these training seeds, comma-separated (default: every finished one)")
    ap.add_argument("--config-arms", action="store_true",
                    help="only the arms the runs' config.yaml lists (default: "
                         "every arm judged in the folders, earlier passes' too)")
    args = ap.parse_args()
    runs = [Path(r) for r in args.runs]
    labs = [lab_values(r, None if args.seeds is None else [int(x) for x in args.seeds.split(",")])
            for r in runs]
    if args.config_arms:
        for lab in labs:
            lab["values"] = {a: v for a, v in lab["values"].items() if a in lab["config"]["arms"]}
    rows = sorted(arm_rows(labs, args.boot), key=lambda r: -r["win_rate"])
    by = {r["arm"]: r for r in rows}
    args.oracle = pick_oracle(by, args.oracle)
    print(f"{len(runs)} lab(s): {', '.join(r.name for r in runs)}\n\n"
          f"Headroom (shares against {args.oracle}):")
    for name in (x for x in ORACLES if x in by):
        o = by[name]
        print(f"  {name:<15} − full {_diff(o['d_full'], len(labs))}, − random "
              f"{_diff(o.get('d_random'), len(labs))}")
    print()
    types, kept = kept_by_type(runs[0], [r["arm"] for r in rows])
    cfg = labs[0]["config"]
    full_s = train_seconds(runs[0], "full")
    print("| arm | pairs | WinRate | − random [95 % CI] | − full [95 % CI] | detects (points) | "
          "share of headroom (per lab) | "
          + " | ".join(f"keeps {t}" for t in types)
          + " | train s/seed ÷ full | scores read (this run's seconds) |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(types) + "---|---|")
    for r in rows:
        arm = r["arm"]
        share = "–" if arm == "full" or arm in ORACLES else " / ".join(
            "no headroom" if s is None else f"{s.mean:+.2f} [{s.low:+.2f}, {s.high:+.2f}]"
            for s in shares(labs, arm, args.oracle))
        d = lambda b: _diff(r.get(f"d_{b}"), len(labs))  # noqa: E731
        k = kept.get(arm, {})
        seeds = "" if len(set(r["seeds"])) == 1 else f" ({'/'.join(map(str, r['seeds']))} seeds)"
        print(f"| {arm}{seeds} | {r['pairs']:.0f} | {_pct(r['win_rate'])} % | {d('random')} | "
              f"{d('full')} | {detectable(r.get('d_full'))} | {share} | "
              + " | ".join(f"{100 * k.get(t, float('nan')):.0f} %" for t in types)
              + f" | {train_seconds(runs[0], arm) / full_s:.2f} | {score_cost(runs[0], arm, cfg)} "
                f"|")
    recs = recommendation_rows(runs, labs)
    if recs:
        print("\n| lab | recommended | test-best of its candidates (mean over the seeds all have) "
              "| hit | regret (points) | − full (points) | seeds whose test-best it is | regret "
              "per seed (points) | probes' seconds |\n"
              "|---|---|---|---|---|---|---|---|---|")
        for x in recs:
            print(f"| {x['lab']} | {x['chosen']} | {x['best']} | {'yes' if x['hit'] else 'no'} | "
                  f"{100 * x['regret']:.1f} | {100 * x['vs_full']:+.1f} | "
                  f"{x['seed_hits']}/{x['seeds']} | {100 * x['seed_regret']:.1f} | "
                  f"{x['probe_seconds']:.0f} |")
        print(f"\nHit rate {sum(x['hit'] for x in recs)}/{len(recs)} labs, "
              f"{sum(x['seed_hits'] for x in recs)}/{sum(x['seeds'] for x in recs)} lab-seeds; "
              f"mean regret {100 * np.mean([x['regret'] for x in recs]):.1f} points; mean gain "
              f"over all the data {100 * np.mean([x['vs_full'] for x in recs]):+.1f} points.")


if __name__ == "__main__":
    main()
