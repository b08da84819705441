"""Markdown tables for docs/results.md, read from finished runs (nothing is recomputed).

    python experiments/tables.py runs/e4_keep050 runs/e4_keep064    # WinRate table of each run
    python experiments/tables.py --noise runs/e5_noise00 runs/e5_noise10 runs/e5_noise20 \\
        runs/e5_noise40
    # rules no arm trained:
    python experiments/tables.py --noise --rules lossdiff_irm,tif,random runs/e7/ratings-lab0
    # two models, same pairs:
    python experiments/tables.py --compare runs/e2_scores_track_if runs/e3_model_b

The WinRate table is the run's eval.json (mean over seeds, the mean of the per-seed 95 % intervals,
the sd over seeds, head-to-head against the full arm). `--noise` adds, per run, the share of the
deliberately flipped pairs and of all wrong-label pairs each selection drops (lab runs only); with
`--rules`, also selections no arm of the run trained, made from its scores table at the run's `keep`
(the random rule with seed 0; a rule the run trained keeps the run's own column)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def winrate_table(run: Path) -> str:
    ev = json.loads((run / "eval.json").read_text())
    paired = [b for b in ("random", "full") if any(f"d_wr_{b}" in a for a in ev["arms"])]
    design = (f"; {ev['prompts']} prompts x {ev['answers_per_prompt']} answers" if "prompts" in ev
              else "")
    lines = [f"`{run}` ({ev['judge']}; seeds: {sorted({r['seed'] for r in ev['runs']})}{design})",
             "", "| arm | pairs | WinRate vs π_ref | 95 % CI (mean over seeds) | sd over seeds | "
                 "score | vs full |"
             + "".join(f" WinRate − {b} [95 % CI] |" for b in paired),
             "|---|---|---|---|---|---|---|" + "---|" * len(paired)]
    for a in ev["arms"]:
        sd = "–" if a["seed_sd"] != a["seed_sd"] else f"{100 * a['seed_sd']:.1f}"
        vs = "–" if a["vs_full"] != a["vs_full"] else f"{100 * a['vs_full']:.1f} %"
        cells = ""
        for b in paired:
            m = a.get(f"d_wr_{b}")
            cells += (" – |" if a["arm"] == b or m is None or m != m else
                      f" {100 * m:+.1f} [{100 * a[f'd_wr_{b}_low']:+.1f}, "
                      f"{100 * a[f'd_wr_{b}_high']:+.1f}] |")
        lines.append(f"| {a['arm']} | {a['n_pairs']} | {100 * a['win_rate']:.1f} % | "
                     f"[{100 * a['low']:.1f}, {100 * a['high']:.1f}] | {sd} | {a['score']:.3f} | "
                     f"{vs} |" + cells)
    return "\n".join(lines)


def dropped_table(run: Path, rules=()) -> str:
    scores = pd.read_parquet(run / "score" / "scores.parquet")
    if not {"pair_type", "label_correct"} <= set(scores.columns):
        raise SystemExit(f"{run}: --noise needs the lab's true pair types (pair_type, "
                         f"label_correct columns)")
    sel = pd.read_parquet(run / "selection.parquet")
    flipped = (scores["pair_type"] == "flipped").to_numpy()
    wrong = ~scores["label_correct"].fillna(True).to_numpy(dtype=bool)
    lines = [f"`{run}`: {int(flipped.sum())} flipped pairs, {int(wrong.sum())} wrong-label pairs "
             f"in all", "",
             "| selection | flipped dropped | all wrong-label dropped |", "|---|---|---|"]
    masks = {arm: sel[arm].to_numpy(dtype=bool)
             for arm in sel.columns.drop(["id", "valid", "reason", "full"],
                                         errors="ignore")}
    if not scores["id"].astype(str).equals(sel["id"].astype(str)):
        raise SystemExit(f"{run}: selection.parquet and scores.parquet list the pairs in another "
                         f"order")
    if rules:
        import yaml

        from prefsift.selection.rules import apply_rule

        keep = yaml.safe_load((run / "config.yaml").read_text())["keep"]
        for rule in rules:
            # an arm of the run keeps its own column (random: its first seed's draw)
            if rule not in masks:
                masks[rule] = apply_rule(scores, rule, keep, seed=0)
    for arm, kept in masks.items():
        f = f"{1 - kept[flipped].mean():.2f}" if flipped.any() else "–"
        w = f"{1 - kept[wrong].mean():.2f}" if wrong.any() else "–"
        lines.append(f"| {arm} | {f} | {w} |")
    return "\n".join(lines)


def compare_table(run_a: Path, run_b: Path) -> str:
    import numpy as np

    cols = ["id", "if", "lossdiff", "irm"]
    a, b = (pd.read_parquet(r / "score" / "scores.parquet") for r in (run_a, run_b))
    extra = ["pair_type"] if "pair_type" in a else []
    m = a[cols + extra].merge(b[cols], on="id",
                              suffixes=("_a", "_b")).dropna(subset=["if_a", "if_b"])
    if m.empty:
        raise SystemExit(f"{run_a} and {run_b} share no scored pair id")
    flip = np.sign(m["if_a"]) != np.sign(m["if_b"])
    by_type = ""
    if extra:
        by_type = ("; by type: "
                   + ", ".join(f"{t} {100 * g.mean():.0f} %"
                               for t, g in flip.groupby(m["pair_type"])))
    sel_a, sel_b = (pd.read_parquet(r / "selection.parquet").set_index("id")
                    for r in (run_a, run_b))

    def overlap(col):
        if col not in sel_a or col not in sel_b:
            return "–"
        x = sel_a[col].astype(bool)
        y = sel_b[col].reindex(x.index).fillna(False).astype(bool)
        return f"{(x & y).sum() / max(min(x.sum(), y.sum()), 1):.3f}"

    rho = lambda c: m[f"{c}_a"].corr(m[f"{c}_b"], method="spearman")
    return "\n".join([
        f"`{run_a}` (A) against `{run_b}` (B): {len(m)} pairs scored by both", "",
        "| | A against B |", "|---|---|",
        f"| Spearman ρ of IF between the models | {rho('if'):.3f} (Pearson "
        f"{m['if_a'].corr(m['if_b']):.3f}) |",
        f"| pairs whose IF changes sign | {100 * flip.mean():.1f} % ({int(flip.sum())} of "
        f"{len(m)}{by_type}) |",
        f"| Spearman ρ of LossDiff / IRM between the models | {rho('lossdiff'):.3f} / "
        f"{rho('irm'):.3f} |",
        f"| overlap of the two TIF sets / LossDiff-IRM sets | {overlap('tif')} / "
        f"{overlap('lossdiff_irm')} |",
        f"| B's own r(LossDiff, IF) / r(IRM, IF) | {m['lossdiff_b'].corr(m['if_b']):.3f} / "
        f"{m['irm_b'].corr(m['if_b']):.3f} |",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="finished run directories")
    ap.add_argument("--noise", action="store_true",
                    help="also the shares of wrong-label pairs dropped")
    ap.add_argument("--rules", default="",
                    help="with --noise: selections to add from the scores table at the "
                         "run's keep, comma-separated rules (e.g. lossdiff_irm,tif,random)")
    ap.add_argument("--compare", action="store_true",
                    help="compare the scores of two runs over the same pairs")
    args = ap.parse_args()
    if args.rules and not args.noise:
        raise SystemExit("--rules adds selections to the --noise table; give --noise too")
    if args.compare:
        if len(args.runs) != 2:
            raise SystemExit("--compare takes exactly two run directories")
        print(compare_table(*map(Path, args.runs)))
        return
    for r in map(Path, args.runs):
        if not (r / "eval.json").exists():
            raise SystemExit(f"{r}: no eval.json; finish the run first (prefsift run "
                             f"{r}/config.yaml)")
        print(winrate_table(r), end="\n\n")
        if args.noise:
            print(dropped_table(r, [x for x in args.rules.split(",") if x]), end="\n\n")


if __name__ == "__main__":
    main()
