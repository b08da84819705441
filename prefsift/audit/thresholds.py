"""The audit's thresholds: a finding is reported (a terminal line, `reported: true` in audit.json)
when it reaches its threshold; below it, it is still in audit.json. Each default is documented in
docs/guide.md ("prefsift audit") with why."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Thresholds:
    length_min_difference: float = field(
        default=0.05,
        metadata={
            "help": "with a validation file: report a length bias when the 95 % interval of p_t − "
            "p_v excludes 0 and |p_t − p_v| is at least this (5 points: smaller shifts do not "
            "change what to train on)"
        },
    )
    length_share_band: tuple[float, float] = field(
        default=(0.4, 0.6),
        metadata={
            "help": "without a validation file: report when the share of chosen-longer pairs is, "
            "with its 95 % interval, outside this band"
        },
    )
    length_min_group: int = field(
        default=30,
        metadata={
            "help": "a group column's level is reported only with at least this many pairs whose "
            "lengths differ"
        },
    )
    style_min_z: float = field(
        default=4.0,
        metadata={
            "help": "a style feature's |z| (Monroe et al.'s log-odds): 4 keeps chance out over "
            "thousands of features (P(|z| > 4) ≈ 6e-5 each)"
        },
    )
    style_min_share: float = field(
        default=0.02,
        metadata={
            "help": "and it is in at least this share of the side's answers (a habit, not a rare "
            "word)"
        },
    )
    style_min_answers: int = field(
        default=10, metadata={"help": "and in at least this many answers"}
    )
    near_min_similarity: float = field(
        default=95.0,
        metadata={
            "help": "near-identical answers: rapidfuzz's fuzz.ratio of the two answers (0–100) at "
            "least this"
        },
    )
    near_min_share: float = field(
        default=0.01,
        metadata={
            "help": "near-identical answers are reported when at least this share of the pairs has "
            "them"
        },
    )
    strong_probability: float = field(
        default=0.1,
        metadata={"help": "θ holds a pair strongly the other way when σ(IRM) is at most this"},
    )
    strong_min_share: float = field(
        default=0.01,
        metadata={
            "help": "reported when at least this share of the scored pairs is held strongly the "
            "other way"
        },
    )
    score_min_auc_gap: float = field(
        default=0.1,
        metadata={
            "help": "a score sees length when its AUC (chosen-longer against rejected-longer "
            "pairs) is this far from 0.5"
        },
    )
