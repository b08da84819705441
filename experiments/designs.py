"""What a validation design alone changes: the same labs, the same θ, the same test prompts and
sampling seeds, scored with two validation sets, so each arm is compared with itself paired.

    python experiments/designs.py \\
        careful=runs/e14/flips20-lab0,runs/e14/flips20-lab1,runs/e14/flips20-lab2 \\
        clean=runs/e14/flips20-clean-lab0,runs/e14/flips20-clean-lab1,runs/e14/flips20-clean-lab2

Two arguments NAME=RUN,RUN,... (one run directory per lab, the labs in the same order). For every
arm both have: its WinRate gain over all the data under each design (pooled over the labs,
these-labs interval), and the paired difference of the arm under the first design minus the arm
under the second (`paired_difference_over_labs`: prompts and seeds resampled in each lab; and across
labs). Nothing is retrained."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from labs import _grid, arm_rows, lab_values  # noqa: E402
from leaderboard import _diff  # noqa: E402

from prefsift.eval.paired import paired_difference_over_labs  # noqa: E402


def design_rows(first: list[Path], second: list[Path], n_boot: int = 2000) -> list[dict]:
    a_labs, b_labs = [lab_values(r) for r in first], [lab_values(r) for r in second]
    a_rows = {r["arm"]: r for r in arm_rows(a_labs, n_boot)}
    b_rows = {r["arm"]: r for r in arm_rows(b_labs, n_boot)}
    out = []
    for arm in (x for x in a_rows if x in b_rows):
        grids = []
        for a, b in zip(a_labs, b_labs):
            seeds = sorted(set(a["values"][arm]) & set(b["values"][arm]))
            grids.append((_grid(a["values"][arm], seeds), _grid(b["values"][arm], seeds)))
        out.append({"arm": arm, "first": a_rows[arm].get("d_full"),
                    "second": b_rows[arm].get("d_full"),
                    "change": paired_difference_over_labs(grids, n_boot=n_boot)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("designs", nargs=2, metavar="NAME=RUN,RUN,...")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap draws (default 2000)")
    args = ap.parse_args()
    (na, ra), (nb, rb) = (s.split("=", 1) for s in args.designs)
    first, second = [Path(p) for p in ra.split(",")], [Path(p) for p in rb.split(",")]
    if len(first) != len(second):
        raise SystemExit("give the same labs, in the same order, for both designs")
    n = len(first)
    print(f"| arm | − full, {na} | − full, {nb} | the arm, {na} − {nb} (paired) |\n"
          f"|---|---|---|---|")
    for r in design_rows(first, second, args.boot):
        print(f"| {r['arm']} | {_diff(r['first'], n)} | {_diff(r['second'], n)} | "
              f"{_diff(r['change'], n)} |")


if __name__ == "__main__":
    main()
