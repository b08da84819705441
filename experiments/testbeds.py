"""The headroom of every testbed, its best and worst contestant, and the recommendation's hit rate
over all of them, read from finished runs (nothing is retrained).

    python experiments/testbeds.py bias=runs/e12/bias-lab0,runs/e12/bias-lab1 \\
        flips20=runs/e13/flips20-lab0,runs/e13/flips20-lab1 flips10=runs/e13/flips10-lab0

Each argument is NAME=RUN,RUN,... (one finished run directory per lab of that testbed). For each
testbed it prints, pooled over its labs (`labs.py`'s three-level bootstrap):
- the headroom: each oracle arm (`clean`: only clean pairs with a right label; `drop_wrong`: every
  pair but the wrong labels; `oracle_relabel`: every pair, labelled by the oracle) against all the
  data, with the interval over these labs (seeds and prompts resampled in each) and, with several
  labs, across labs; the best of them (largest pooled gain) is the headroom shares are taken of;
- whether the testbed can rank: the best oracle's gain over all the data has an interval above
  zero in every lab and pooled. A testbed that cannot rank gets no best contestant;
- the best contestant (highest WinRate other than the oracle), its gain over all the data and its
  share of the headroom (pooled gain over pooled headroom, and the labs' own shares);
- every contestant whose interval against all the data lies below zero: the answers that lose.
Then the recommendation (the `auto` arm) over every lab of every testbed: hit rate and regret.
`leaderboard.py` prints one testbed's whole table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labs import _pct, arm_rows, lab_values  # noqa: E402
from leaderboard import _diff, pick_oracle, recommendation_rows, shares  # noqa: E402

from prefsift.eval.tables import ORACLES  # noqa: E402

BASELINES = ("full", "random")


def testbed_row(name: str, runs: list[Path], oracle: str, n_boot: int) -> tuple[dict, list[dict]]:
    labs = [lab_values(r) for r in runs]
    rows = {r["arm"]: r for r in arm_rows(labs, n_boot)}
    if "full" not in rows:
        raise SystemExit(f"{name}: every lab needs the arm full (have {sorted(rows)})")
    oracle = pick_oracle(rows, oracle)
    o = rows[oracle]
    # pooled and in every lab (its own paired interval), the oracle clears all the data
    can_rank = o["d_full"].within_low > 0 and all(lab.low > 0 for lab in o["d_full"].per_lab)
    contestants = [r for a, r in rows.items()
                   if a not in (*ORACLES, *BASELINES) and a != "auto" and "d_full" in r]
    best = max(contestants, key=lambda r: r["win_rate"]) if contestants else None
    out = {"name": name, "labs": len(runs), "seeds": [len(lab["values"][oracle]) for lab in labs],
           "oracle": oracle, "oracles": {x: rows[x]["d_full"] for x in ORACLES
                                         if x in rows and rows[x].get("d_full") is not None},
           "oracle_full": o["d_full"], "oracle_random": o.get("d_random"),
           "full_random": rows["full"].get("d_random"),
           "can_rank": can_rank, "contestants": len(contestants),
           "losers": sorted((r for r in contestants if r["d_full"].within_high < 0),
                            key=lambda r: r["d_full"].mean)}
    if best is not None:
        out["best"] = best["arm"]
        out["best_full"] = best["d_full"]
        out["best_share"] = (best["d_full"].mean / o["d_full"].mean if o["d_full"].mean > 0
                             else float("nan"))
        out["best_lab_shares"] = shares(labs, best["arm"], oracle)
    return out, recommendation_rows(runs, labs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("testbeds", nargs="+", metavar="NAME=RUN,RUN,...",
                    help="a testbed and its labs' run directories")
    ap.add_argument("--oracle", default="best",
                    help="the oracle arm shares are taken against (default: best, "
                         "the oracle arm of largest pooled gain over all the data)")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap draws (default 2000)")
    args = ap.parse_args()
    results, recs = [], []
    for spec in args.testbeds:
        name, sep, paths = spec.partition("=")
        if not sep or not paths:
            raise SystemExit(f"{spec!r}: write NAME=RUN,RUN,... (a testbed's name, then its run "
                             f"directories)")
        runs = [Path(p) for p in paths.split(",")]
        missing = [str(r) for r in runs if not (r / "config.yaml").exists()]
        if missing:
            raise SystemExit(f"{name}: not a run directory: {', '.join(missing)}")
        row, rec = testbed_row(name, runs, args.oracle, args.boot)
        results.append(row)
        recs += [{**x, "testbed": name} for x in rec]
    n = lambda r: r["labs"]  # noqa: E731
    print("| testbed | labs × seeds (per lab) | " + " | ".join(f"{x} − full" for x in ORACLES)
          + " | the headroom: best oracle − random | full − random | "
          "can rank? | best contestant | its − full | its share of the best oracle's headroom: "
          "pooled (per lab) | contestants below full (− full) |")
    print("|---|---|" + "---|" * len(ORACLES) + "---|---|---|---|---|---|---|")
    for r in results:
        seeds = "/".join(map(str, r["seeds"]))  # the oracle's seeds in each lab
        best = share = best_full = "–"
        if r["can_rank"] and "best" in r:
            best, best_full = r["best"], _diff(r["best_full"], n(r))
            share = f"{r['best_share']:+.2f} (" + " / ".join(
                "–" if s is None else f"{s.mean:+.2f} [{s.low:+.2f}, {s.high:+.2f}]"
                    for s in r["best_lab_shares"]) + ")"
        losers = (", ".join(f"{x['arm']} {_pct(x['d_full'].mean, True)}" for x in r["losers"])
                  or "none")
        heads = " | ".join(_diff(r["oracles"].get(x), n(r)) + (" ←" if x == r["oracle"] else "")
                           for x in ORACLES)
        print(f"| {r['name']} | {r['labs']} × {seeds} | {heads} | {r['oracle']} "
              f"{_diff(r['oracle_random'], n(r))} | {_diff(r['full_random'], n(r))} | "
              f"{'yes' if r['can_rank'] else 'no: the headroom is inside its interval'} | {best} | "
              f"{best_full} | {share} | {losers} ({r['contestants']} contestants) |")
    if recs:
        print(f"\nThe recommendation over {len(recs)} labs of {len({x['testbed'] for x in recs})} "
              f"testbed(s):")
        for x in recs:
            print(f"  {x['testbed']:<10} {x['lab']:<16} chose {x['chosen']:<22} test-best "
                  f"{x['best']:<22} regret {100 * x['regret']:4.1f}  − full "
                  f"{100 * x['vs_full']:+5.1f}  probes {x['probe_seconds']:.0f} s")
        print(f"Hit rate {sum(x['hit'] for x in recs)}/{len(recs)} labs, "
              f"{sum(x['seed_hits'] for x in recs)}/{sum(x['seeds'] for x in recs)} lab-seeds; "
              f"mean regret {100 * np.mean([x['regret'] for x in recs]):.1f} points against the "
              f"test-best, {100 * np.mean([x['vs_full'] for x in recs]):+.1f} points against "
              f"always using all the data.")


if __name__ == "__main__":
    main()
