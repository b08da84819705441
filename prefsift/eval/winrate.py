"""WinRate and single scores of an aligned model's answers against the reference's.

WinRate = mean over prompts of P(aligned ≻ reference) by the judge (a tie counts ½), with a
percentile-bootstrap 95 % interval over prompts (seeded). With several answers per prompt, a
prompt's value is the mean over its answers, and the bootstrap resamples prompts (their answers
are not independent draws of the experiment)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from .judges import Judge, Swapped
from .paired import per_prompt


@dataclass
class WinRate:
    win_rate: float
    low: float
    high: float
    n: int

    def __str__(self):
        return (f"{100 * self.win_rate:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] "
                f"(n={self.n})")


def win_rate(prefs: Sequence[float], n_boot: int = 2000, seed: int = 0,
             level: float = 0.95) -> WinRate:
    p = np.asarray(prefs, dtype=float)
    if len(p) == 0:
        raise ValueError("no comparisons to average")
    rng = np.random.default_rng(seed)
    boots = p[rng.integers(0, len(p), size=(n_boot, len(p)))].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return WinRate(float(p.mean()), float(lo), float(hi), len(p))


@dataclass
class Evaluation:
    judge: str
    win_rate: WinRate  # aligned vs reference
    score_aligned: float  # mean single score
    score_reference: float
    prefs: list[float]  # one per answer, answer-major (see `paired.per_prompt`)
    scores: list[float]  # the aligned answers' single scores, in the same order

    def to_dict(self):
        d = asdict(self)
        d["win_rate"] = asdict(self.win_rate)
        return d


def evaluate_answers(judge: Judge, prompts: Sequence[str], aligned: Sequence[str],
                     reference: Sequence[str], both_orders: bool = True, seed: int = 0,
                     n_prompts: int | None = None) -> Evaluation:
    """Judge aligned against reference answers, answer by answer (in both orders by default).

    ``prompts`` holds each answer's prompt; with several answers per prompt, give ``n_prompts``
    (answers ordered answer-major) and the interval resamples prompts."""
    if not (len(prompts) == len(aligned) == len(reference)):
        raise ValueError("prompts, aligned and reference answers must have one entry per prompt")
    # (a judge that asks both orders itself, as the API judge does with its cache, is not wrapped)
    j = Swapped(judge) if both_orders and not getattr(judge, "asks_both_orders", False) else judge
    prefs = list(map(float, j.prefers(prompts, aligned, reference)))
    scores = list(map(float, judge.scores(prompts, aligned)))
    sr = float(np.mean(judge.scores(prompts, reference)))
    wr = win_rate(per_prompt(prefs, n_prompts or len(prefs)), seed=seed)
    return Evaluation(j.name, wr, float(np.mean(scores)), sr, prefs, scores)
