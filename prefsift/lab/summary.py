"""What a built lab holds, in numbers: the pair types, the labels' accuracy, the ratings' leak, the
SFT model's training; `format_summary` prints it."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import asdict

import numpy as np

from ..eval.truth import gap_below_zero
from .pairs import PAIR_TYPES
from .task import best_response, oracle_reward, parse_prompt, random_response


def _mean(xs) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def _summarise(cfg, prompts, samples, test, test_samples, train_rows, val_rows, sft_log, resumed,
               timings, from_cache=False) -> dict:
    by_task: dict[str, list[float]] = defaultdict(list)
    for p, draws in zip(prompts, samples):
        task = parse_prompt(p).task
        by_task[task].extend(oracle_reward(p, s) for s in draws)
    rng = random.Random(f"{cfg.seed}-random-baseline")

    def split_stats(rows):
        kinds = Counter(r["pair_type"] for r in rows)
        correct = defaultdict(list)
        for r in rows:
            correct[r["pair_type"]].append(r["label_correct"])
        return {
            "pairs": len(rows),
            "by_type": {t: kinds.get(t, 0) for t in PAIR_TYPES},
            "label_correct_rate": _mean(r["label_correct"] for r in rows),
            "label_correct_by_type": {t: _mean(v) for t, v in correct.items()},
            "both_sides_sampled": _mean(r["origin_chosen"] == r["origin_rejected"] == "sample"
                                        for r in rows),
            "ratings": rating_leak(rows),
        }

    return {
        "config": asdict(cfg),
        "splits": {"train": split_stats(train_rows), "validation": split_stats(val_rows),
                   "test_prompts": len(test)},
        "rewards": {
            "sft_samples": _mean(x for v in by_task.values() for x in v),
            "sft_samples_by_task": {t: _mean(v) for t, v in sorted(by_task.items())},
            "sft_test": _mean(oracle_reward(p, s[0]) for p, s in zip(test, test_samples)),
            "random_tokens": _mean(oracle_reward(p, random_response(rng)) for p in prompts),
            "best": _mean(oracle_reward(p, best_response(p)) for p in prompts),
        },
        "sft": {"preset": cfg.preset, "steps": cfg.sft_steps,
                "final_loss": sft_log.get("final_loss"),
                "resumed": resumed and not from_cache, "from_cache": from_cache},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def rating_leak(rows) -> dict:
    """How much the ratings say about the truth the labels hide: over the wrong labels, the share
    whose rating gap (score_chosen − score_rejected) points to the truth (< 0: the rejected answer
    rated higher); over the right labels, the share whose gap points against the label. With
    ``ratings: rater`` both are 0 by construction; with ``independent`` the first is near 1."""
    right = np.array([bool(r["label_correct"]) for r in rows], dtype=bool)
    gap = np.array([r["score_chosen"] - r["score_rejected"] for r in rows], dtype=float)
    share = lambda among: (gap_below_zero(gap, among) or (None,))[0]  # noqa: E731
    return {"wrong_labels": int((~right).sum()), "wrong_gap_points_to_truth": share(~right),
            "right_gap_points_against_label": share(right)}


def _fmt(x, width: int = 8, digits: int = 3) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.{digits}f}"


def format_summary(summary: dict) -> str:
    """A readable multi-line table of a `make_lab` summary, for a CLI to print."""
    lines = []
    rw = summary["rewards"]
    lines.append(f"prefsift lab  ->  {summary.get('out_dir', '')}")
    lines.append("")
    lines.append("mean oracle reward (temperature "
                 "{:.1f})".format(summary["config"]["sample_temperature"]))
    lines.append(f"  {'random tokens':<24}{_fmt(rw['random_tokens'])}")
    lines.append(f"  {'SFT samples (pairs)':<24}{_fmt(rw['sft_samples'])}")
    lines.append(f"  {'SFT samples (test)':<24}{_fmt(rw['sft_test'])}")
    lines.append(f"  {'best response':<24}{_fmt(rw['best'])}")
    for task, v in rw["sft_samples_by_task"].items():
        lines.append(f"    SFT on {task:<17}{_fmt(v)}")
    lines.append("")
    tr, va = summary["splits"]["train"], summary["splits"]["validation"]
    lines.append(
            f"  {'pair type':<18}{'train':>8}{'labels ok':>11}{'validation':>12}{'labels ok':>11}")
    for t in PAIR_TYPES:
        a, b = tr["by_type"][t], va["by_type"][t]
        ca = tr["label_correct_by_type"].get(t)
        cb = va["label_correct_by_type"].get(t)
        fa, fb = _fmt(ca, 11, 2), _fmt(cb, 11, 2)
        lines.append(f"  {t:<18}{a:>8}{fa}{b:>12}{fb}")
    lines.append(f"  {'total':<18}{tr['pairs']:>8}{_fmt(tr['label_correct_rate'], 11, 2)}"
                 f"{va['pairs']:>12}{_fmt(va['label_correct_rate'], 11, 2)}")
    lines.append(f"  test prompts: {summary['splits']['test_prompts']}   pairs with both sides "
                 f"sampled: train {_fmt(tr['both_sides_sampled'], 0, 2)}, "
                 f"validation {_fmt(va['both_sides_sampled'], 0, 2)}")
    leak = tr.get("ratings") or {}
    if leak.get("wrong_labels"):
        lines.append(f"  ratings ({summary['config'].get('ratings', 'rater')}): on the "
                     f"{leak['wrong_labels']} wrong labels the rating gap points to the truth for "
                     f"{100 * leak['wrong_gap_points_to_truth']:.1f} %"
                     + (" (a leak: rules that read ratings see what a team cannot)"
                        if leak["wrong_gap_points_to_truth"] > 0 else ""))
    lines.append("")
    sft = summary["sft"]
    state = ("from the prefsift cache" if sft.get("from_cache")
             else ("reused" if sft["resumed"] else "trained"))
    lines.append(f"SFT model: {sft['preset']}, {sft['steps']} steps, final loss "
                 f"{sft['final_loss']:.3f} ({state})")
    lines.append("wall time: " + ", ".join(f"{k} {v:.1f}s"
                                           for k, v in summary["timings_s"].items()))
    return "\n".join(lines)
