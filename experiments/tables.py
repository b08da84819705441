"""Markdown tables for docs/results.md, read from finished runs (nothing is recomputed).

    python experiments/tables.py runs/e4_keep050 runs/e4_keep064      # WinRate table of each run
    python experiments/tables.py --noise runs/e5_noise00 runs/e5_noise10 runs/e5_noise20 runs/e5_noise40

The WinRate table is the run's eval.json (mean over seeds, the mean of the per-seed 95 % intervals,
the sd over seeds, head-to-head against the full arm). `--noise` adds, per run, the share of the
deliberately flipped pairs and of all wrong-label pairs each selection drops (lab runs only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def winrate_table(run: Path) -> str:
    ev = json.loads((run / "eval.json").read_text())
    lines = [f"`{run}` ({ev['judge']}; seeds: {sorted({r['seed'] for r in ev['runs']})})", "",
             "| arm | pairs | WinRate vs π_ref | 95 % CI (mean over seeds) | sd over seeds | score | vs full |",
             "|---|---|---|---|---|---|---|"]
    for a in ev["arms"]:
        sd = "–" if a["seed_sd"] != a["seed_sd"] else f"{100 * a['seed_sd']:.1f}"
        vs = "–" if a["vs_full"] != a["vs_full"] else f"{100 * a['vs_full']:.1f} %"
        lines.append(f"| {a['arm']} | {a['n_pairs']} | {100 * a['win_rate']:.1f} % | [{100 * a['low']:.1f}, "
                     f"{100 * a['high']:.1f}] | {sd} | {a['score']:.3f} | {vs} |")
    return "\n".join(lines)


def dropped_table(run: Path) -> str:
    scores = pd.read_parquet(run / "score" / "scores.parquet")
    if not {"pair_type", "label_correct"} <= set(scores.columns):
        raise SystemExit(f"{run}: --noise needs the lab's true pair types (pair_type, label_correct columns)")
    sel = pd.read_parquet(run / "selection.parquet")
    flipped = (scores["pair_type"] == "flipped").to_numpy()
    wrong = ~scores["label_correct"].fillna(True).to_numpy(dtype=bool)
    lines = [f"`{run}`: {int(flipped.sum())} flipped pairs, {int(wrong.sum())} wrong-label pairs in all", "",
             "| selection | flipped dropped | all wrong-label dropped |", "|---|---|---|"]
    for arm in sel.columns.drop(["id", "valid", "reason", "full"], errors="ignore"):
        kept = sel[arm].to_numpy(dtype=bool)
        f = f"{1 - kept[flipped].mean():.2f}" if flipped.any() else "–"
        w = f"{1 - kept[wrong].mean():.2f}" if wrong.any() else "–"
        lines.append(f"| {arm} | {f} | {w} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="finished run directories")
    ap.add_argument("--noise", action="store_true", help="also the shares of wrong-label pairs dropped")
    args = ap.parse_args()
    for r in map(Path, args.runs):
        if not (r / "eval.json").exists():
            raise SystemExit(f"{r}: no eval.json; finish the run first (prefsift run {r}/config.yaml)")
        print(winrate_table(r), end="\n\n")
        if args.noise:
            print(dropped_table(r), end="\n\n")


if __name__ == "__main__":
    main()
