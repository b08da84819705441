"""The recommendation as a team would run it: what `auto` chose with each probe judge, on every lab,
against the test-best of its candidates and against all the data, read from finished runs.

    python experiments/judges.py flips20 oracle=runs/e14/flips20-lab0,runs/e14/flips20-lab1 \\
        loss=runs/e14/flips20-lab0-loss,runs/e14/flips20-lab1-loss \\
        biased=runs/e14/flips20-lab0-biased,runs/e14/flips20-lab1-biased

The first argument names the testbed; each other is JUDGE=RUN,RUN,... : the run directories (one per
lab, in the same lab order for every judge) whose `auto` arm was probed with that judge (the lab's
oracle, `calibration.by: loss`, `calibration.judge: biased:S`). A copy of a run directory rerun with
another probe judge reuses every arm, so every judge's choice is looked up in the same test
evaluations. Prints, per judge: each lab's choice, the test-best candidate, the regret (the
test-best's WinRate minus the choice's, points), the choice against all the data, the hit rate and
the mean regret. Nothing is retrained."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labs import lab_values  # noqa: E402
from leaderboard import recommendation_rows  # noqa: E402


def judge_rows(runs: list[Path], seeds=None) -> list[dict]:
    return recommendation_rows(runs, [lab_values(r, seeds) for r in runs])


def summary(rows: list[dict]) -> dict:
    return {"labs": len(rows), "hits": sum(r["hit"] for r in rows),
            "regret": float(np.mean([r["regret"] for r in rows])) if rows else float("nan"),
            "vs_full": float(np.mean([r["vs_full"] for r in rows])) if rows else float("nan"),
            "below_full": sum(r["vs_full"] < 0 for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("testbed", help="the testbed's name, for the table")
    ap.add_argument("judges", nargs="+", metavar="JUDGE=RUN,RUN,...")
    ap.add_argument("--seeds", help="only these training seeds, comma-separated (default: every "
                                    "finished one; give the seeds every judge's runs have, so that "
                                    "the judges are compared alike)")
    args = ap.parse_args()
    print("| testbed | probe judge | lab: chose / test-best / regret / − full | hit rate | mean "
          "regret | mean − full | labs below full |\n|---|---|---|---|---|---|---|")
    for spec in args.judges:
        name, sep, paths = spec.partition("=")
        if not sep or not paths:
            raise SystemExit(f"{spec!r}: write JUDGE=RUN,RUN,...")
        runs = [Path(p) for p in paths.split(",")]
        missing = [str(r) for r in runs if not (r / "manifest.json").exists()]
        if missing:
            raise SystemExit(f"{name}: not a finished run directory: {', '.join(missing)}")
        rows = judge_rows(runs, None if args.seeds is None
                          else [int(x) for x in args.seeds.split(",")])
        s = summary(rows)
        labs = "; ".join(f"{r['lab']}: {r['chosen']} / {r['best']} / {100 * r['regret']:.1f} / "
                         f"{100 * r['vs_full']:+.1f}" for r in rows)
        print(f"| {args.testbed} | {name} | {labs} | {s['hits']}/{s['labs']} | "
              f"{100 * s['regret']:.1f} | {100 * s['vs_full']:+.1f} | {s['below_full']} |")


if __name__ == "__main__":
    main()
