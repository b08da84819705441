"""How much each testbed's ratings say about the truth its labels hide, before and after the
ratings came from the rater who labelled (issue "honest testbeds").

    python experiments/rating_leak.py --seeds 0,1,2 --threads 1

For every testbed (flips 20 %, flips 10 %, the length-biased rater, labels from ratings) and lab
seed, builds the lab twice into a temporary folder, with `ratings: independent` (the lab before
2026-12-07) and `ratings: rater` (now), and prints, over the training pairs' wrong labels, the share
whose rating gap (score_chosen − score_rejected) points to the truth. The two builds share the SFT
model through the prefsift cache and differ only in the two rating columns."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prefsift.lab.make import LabConfig, make_lab  # noqa: E402

TESTBEDS = {"flips 20 %": {"frac_flipped": 0.2, "frac_clean": 0.5}, "flips 10 %": {},
            "bias (rater_bias 0.5)": {"rater_bias": 0.5},
            "ratings (85 % agreement)": {"labels_from_ratings": True}}


def leak(testbed: dict, seed: int, ratings: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        summary = make_lab(LabConfig(seed=seed, n_test_prompts=1000, ratings=ratings,
                                     threads=threads, progress=False, **testbed), d)
    return summary["splits"]["train"]["ratings"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="lab seeds, comma-separated (default 0,1,2)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (the lab depends on it; default 1)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| testbed | lab seed | wrong labels | rating gap points to the truth: independent "
          "(before) | rater (now) |\n|---|---|---|---|---|")
    for name, testbed in TESTBEDS.items():
        for seed in seeds:
            before, after = (leak(testbed, seed, r, args.threads) for r in ("independent", "rater"))
            assert before["wrong_labels"] == after["wrong_labels"]  # the same labels, draw for draw
            print(f"| {name} | {seed} | {after['wrong_labels']} | "
                  f"{100 * before['wrong_gap_points_to_truth']:.1f} % | "
                  f"{100 * after['wrong_gap_points_to_truth']:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
