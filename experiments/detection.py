"""How well each score finds the wrong labels (issue "the paper's scores one-sided"): per run
directory (one lab each), the AUC of "a low score, a wrong label" of every score in its scores table
(IRM, LossDiff, IF, TIF, the teacher's margin, the group flip rate, the held-out loss, the rating
gap where present), over all pairs and within each length group, from the lab's truth
(`label_correct`).

    python experiments/detection.py runs/e16/bias-lab0 runs/e16/bias-lab1 runs/e16/bias-lab2

Prints one markdown table: a row per score, a column per lab and group, and the mean over the labs.
0.5 is chance; a score's direction is the one its rules keep (eval/truth.py, SCORE_DIRECTION)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prefsift.eval.truth import detection_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories, each with score/scores.parquet")
    ap.add_argument("--group", default="all pairs",
                    help="the column of each lab's table to print per lab "
                         "(default: all pairs); the mean over labs is given for every group")
    args = ap.parse_args()
    tables = {}
    for run in args.runs:
        path = Path(run) / "score" / "scores.parquet"
        if not path.exists():
            sys.exit(f"error: {path} does not exist: give run directories that `prefsift run` "
                     f"scored")
        table = detection_table(pd.read_parquet(path))
        if table is None:
            sys.exit(f"error: {path} has no lab truth (label_correct) or no wrong label")
        tables[Path(run).name] = table
    per_lab = pd.DataFrame({lab: t[args.group] for lab, t in tables.items()})
    mean = sum(t for t in tables.values()) / len(tables)
    out = per_lab.join(mean.add_prefix("mean: "))
    print("| score | " + " | ".join(out.columns) + " |\n|---|" + "---|" * len(out.columns))
    for name, row in out.iterrows():
        cells = [f"{v:.0f}" if name == "wrong labels" else f"{v:.3f}" for v in row]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
