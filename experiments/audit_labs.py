"""The audit of lab testbeds: b̂ (the implied share of length-decided labels) with its interval
against the lab's truth (the share of the pairs whose answers differ in length that the biased rater
labelled, column `biased`; the lab's rater_bias is its expectation), and the style habits found.

    python experiments/audit_labs.py LAB_DIR [LAB_DIR ...]   # folders of `prefsift lab make`"""

from __future__ import annotations

import json
import sys

import prefsift


def main(labs: list[str]) -> None:
    for lab in labs:
        r = prefsift.audit(f"{lab}/train.jsonl", validation=f"{lab}/validation.jsonl",
                           test_prompts=f"{lab}/test_prompts.jsonl")
        f = r.get("length.chosen_longer")
        s = f.stats
        rows = [json.loads(line) for line in open(f"{lab}/train.jsonl", encoding="utf-8")]
        differ = [x for x in rows if len(x["chosen"].split()) != len(x["rejected"].split())]
        truth = sum(bool(x.get("biased", False)) for x in differ) / len(differ)
        ci, bi = s["difference_interval"], s["length_decided_interval"]
        print(f"{lab}: p_t {s['share_chosen_longer']:.3f} (n {s['differ_in_length']}), "
              f"p_v {s['validation_share_chosen_longer']:.3f} (n "
              f"{s['validation']['differ_in_length']}), difference {s['difference']:+.3f} "
              f"[{ci[0]:+.3f}, {ci[1]:+.3f}], b̂ {s['length_decided_share']:.3f} [{bi[0]:.3f}, "
              f"{bi[1]:.3f}], labelled by length: {truth:.3f} of the differing pairs, reported "
              f"{f.reported}")
        for key in ("style.chosen_habits", "style.rejected_habits"):
            print(f"    {key}: "
                  f"{[(x['feature'], round(x['z'], 1)) for x in r.get(key).stats['features']][:6]}")
        print(f"    reported: {[x.key for x in r.reported]}")


if __name__ == "__main__":
    main(sys.argv[1:])
