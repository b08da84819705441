"""Preference pairs from the SFT model's own samples, with controlled, tagged imperfections.

Every pair is built for one prompt from that prompt's samples, as an oracle-ordered couple
(better, worse); a labeller then decides which one is ``chosen``. Pair types (column ``pair_type``):

- ``clean``: two responses with a clear oracle gap (>= ``clean_min_gap``), Bradley–Terry labelled;
- ``flipped``: built like ``clean``, then the label is deliberately swapped (chosen is worse);
- ``near_tie``: two different responses whose oracle rewards differ by <= ``tie_max_gap``;
- ``near_duplicate``: two responses that differ in exactly one token, which changes the reward;
- ``easy``: a good response (oracle >= ``easy_min_reward``) against trivial garbage (no digits).

All but ``flipped`` are labelled by the same Bradley–Terry labeller,
``P(label correct) = sigmoid((r_better - r_worse) / bt_temperature)``, so some labels flip by noise
(column ``label_correct``: chosen's oracle reward >= rejected's). Pairs come from distinct samples
when the samples allow it; otherwise a sample is edited (or, when no sample is good enough, the
oracle's best response is used), and the columns ``origin_chosen`` / ``origin_rejected`` say which:
``sample``, ``edit``, ``reference`` or ``garbage``. A noisy external rater (``score_*`` = oracle +
Gaussian noise, an UltraFeedback-style rating) is recorded for score-gap baselines.

``rater_bias`` = b: a rater with a systematic bias labels a share b of the pairs whose answers
differ in length, drawn at random: the longer answer is chosen, whatever the oracle says (column
``biased``). Where the longer answer is the worse one, the label is wrong, and wrong the same way
every time: the lab's SFT habits (an extra item, the input echoed) make answers longer and worse,
so a model that learns the rater learns the habits. Deliberate flips are built as clean pairs too.

``ratings`` says who gives the ratings ``score_*``. ``rater`` (the default): the rater who labelled,
as in UltraFeedback, where the label is the argmax of the ratings: its noisy ratings are put in the
order of its label, so a wrong label (flipped on purpose, by the labeller's noise, or by the length
bias) comes with ratings that agree with it and a rating gap never points against the label; the
ratings keep the size of the gap. ``independent``: each answer keeps its own rating (the oracle's
reward plus noise) whatever the label says. That was the lab before 2026-12-07: a rating gap then
points to the truth on about 96 % of the wrong labels of a flip lab, so rules that read ratings
read a near-oracle (a leak no team has); kept only to reproduce earlier runs. Only the two rating
columns differ between the two settings: prompts, answers and labels are the same, draw for draw.

``labels_from_ratings``: the label is the rater's instead, as in UltraFeedback-binarized: the rater
scores both answers and the higher-rated one is ``chosen``, so a wrong label is exactly a rating
error (and a rating-gap filter cannot see it). No pair is flipped on purpose then: the ``flipped``
share is built as clean pairs. The rater's noise is solved so that it agrees with the oracle's
preference on a fraction ``rater_agreement`` of the split's non-tied pairs.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from .task import (
    DIGITS,
    END,
    SEPARATOR,
    TASKS,
    parse_prompt,
    score_words,
    solve,
    words_to_response,
)

PAIR_TYPES: tuple[str, ...] = ("clean", "flipped", "near_tie", "near_duplicate", "easy")


@dataclass
class PairConfig:
    """How pairs are picked, labelled and rated."""

    bt_temperature: float = field(default=0.1, metadata={"help": "Bradley–Terry labeller "
            "temperature: P(correct) = sigmoid(gap / T)"})
    clean_min_gap: float = field(default=0.2,
                                 metadata={"help": "minimum oracle gap of clean and flipped pairs"})
    tie_max_gap: float = field(default=0.02,
                               metadata={"help": "maximum oracle gap of near_tie pairs"})
    easy_min_reward: float = field(default=0.5, metadata={"help": "an easy pair's good side scores "
                                                                  "at least this"})
    rater_noise: float = field(default=0.1, metadata={"help": "std of the Gaussian noise of the "
                                                              "external rater's scores"})
    labels_from_ratings: bool = field(default=False, metadata={"help": "label every pair by the "
                                                               "rater (chosen = higher rated)"})
    rater_agreement: float = field(default=0.85, metadata={"help": "with labels_from_ratings: the "
            "rater's agreement with the oracle's preference on non-tied pairs"})
    rater_bias: float = field(default=0.0, metadata={"help": "share of the pairs (of those whose "
            "answers differ in length) that a length-biased rater labels: the longer answer is "
            "chosen, right or wrong"})
    ratings: str = field(default="rater", metadata={"help": "rater: the rater who labelled gives "
            "the ratings, in its label's order; independent: each answer's own noisy rating, "
            "whatever the label (leaks the truth)"})


def type_counts(n: int, proportions: dict[str, float]) -> dict[str, int]:
    """Exact per-type counts summing to ``n`` (largest remainder; ties broken by type order)."""
    unknown = set(proportions) - set(PAIR_TYPES)
    if unknown:
        raise ValueError(f"unknown pair types {sorted(unknown)}; choose from {PAIR_TYPES}")
    if any(p < 0 for p in proportions.values()) or sum(proportions.values()) <= 0:
        raise ValueError("pair type proportions must be >= 0 and not all 0")
    total = sum(proportions.values())
    exact = {t: n * proportions.get(t, 0.0) / total for t in PAIR_TYPES}
    counts = {t: int(math.floor(v)) for t, v in exact.items()}
    order = sorted(PAIR_TYPES, key=lambda t: (-(exact[t] - counts[t]), PAIR_TYPES.index(t)))
    for t in order[: n - sum(counts.values())]:
        counts[t] += 1
    return counts


class _PromptPairs:
    """Constructors of each pair type for one prompt; each returns ``(better, worse)`` as
    ``(words, origin)`` tuples with ``score(better) >= score(worse)`` and different words."""

    def __init__(self, prompt: str, samples: list[str], cfg: PairConfig, rng: random.Random):
        self.target = solve(*_task_items(prompt))
        self.cfg, self.rng = cfg, rng
        seen, pool = set(), []
        for s in samples:
            words = tuple(s.split())
            if words and words not in seen:
                seen.add(words)
                pool.append(words)
        self.pool = pool

    def score(self, words) -> float:
        return score_words(self.target, list(words))

    def _ordered(self, a, b):
        return (a, b) if self.score(a[0]) >= self.score(b[0]) else (b, a)

    def _pick(self, accept):
        """A random ordered pair of distinct pool samples for which ``accept(gap, a, b)``."""
        cands = [(a, b) for a, b in itertools.combinations(self.pool, 2)
                 if accept(abs(self.score(a) - self.score(b)), a, b)]
        if not cands:
            return None
        a, b = self.rng.choice(cands)
        return self._ordered((a, "sample"), (b, "sample"))

    def _wrong_digit(self, i: int, avoid=()) -> str:
        bad = {self.target[i]} if i < len(self.target) else set()
        return self.rng.choice([d for d in DIGITS if d not in bad and d not in avoid])

    def _best(self):
        """The best sample if good enough, else the oracle's best response."""
        best = max(self.pool, key=self.score, default=None)
        if best is not None and self.score(best) >= self.cfg.easy_min_reward:
            return best, "sample"
        return tuple(self.target), "reference"

    def clean(self):
        got = self._pick(lambda gap, a, b: gap >= self.cfg.clean_min_gap)
        if got:
            return got
        good, origin = self._best()
        if self.score(good) < self.cfg.clean_min_gap:
            good, origin = tuple(self.target), "reference"
        worse = list(good)
        right = [i for i in range(min(len(good), len(self.target))) if good[i] == self.target[i]]
        self.rng.shuffle(right)
        for i in right:  # break correct positions until the gap is clear
            worse[i] = self._wrong_digit(i)
            if self.score(good) - self.score(worse) >= self.cfg.clean_min_gap:
                break
        return (good, origin), (tuple(worse), "edit")

    def near_tie(self):
        got = self._pick(lambda gap, a, b: gap <= self.cfg.tie_max_gap)
        if got:
            return got
        n = len(self.target)
        with_wrong = [s for s in self.pool
                      if len(s) > n or any(a != b for a, b in zip(s, self.target))]
        if with_wrong:
            base, origin = self.rng.choice(with_wrong), "sample"
        else:  # every sample is perfect: spoil one position of the reference first
            spoilt = list(self.target)
            j = self.rng.randrange(n)
            spoilt[j] = self._wrong_digit(j)
            base, origin = tuple(spoilt), "edit"
        wrong = [i for i in range(len(base)) if i >= n or base[i] != self.target[i]]
        i = self.rng.choice(wrong)
        other = list(base)
        other[i] = self._wrong_digit(i, avoid={base[i]})  # wrong -> another wrong: same reward
        return self._ordered((base, origin), (tuple(other), "edit"))

    def near_duplicate(self):
        def one_token_apart(gap, a, b):
            return gap > 0 and len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1

        got = self._pick(one_token_apart)
        if got:
            return got
        base = self.rng.choice(self.pool) if self.pool else tuple(self.target)
        origin = "sample" if self.pool else "reference"
        i = self.rng.randrange(min(len(base), len(self.target)))
        other = list(base)
        other[i] = self._wrong_digit(i) if base[i] == self.target[i] else self.target[i]
        return self._ordered((base, origin), (tuple(other), "edit"))

    def easy(self):
        good, origin = self._best()
        junk_words = [SEPARATOR, END, *TASKS]
        junk = tuple(self.rng.choice(junk_words) for _ in range(self.rng.randint(1, 3)))
        return (good, origin), (junk, "garbage")


def _task_items(prompt: str):
    p = parse_prompt(prompt)
    return p.task, p.items


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def rater_noise_for(gaps, agreement: float) -> float:
    """The std σ of a rater adding N(0, σ²) to each side's reward that agrees with the sign of the
    oracle's gap with mean probability ``agreement`` over the non-zero ``gaps``:
    mean Φ(|gap| / (σ√2)) = agreement (solved by bisection)."""
    g = [abs(x) for x in gaps if x != 0]
    if not g or not 0.5 < agreement < 1:
        raise ValueError(f"need non-tied pairs and an agreement in (0.5, 1), got {len(g)} pairs "
                         f"and {agreement}")

    def agree(sigma):
        # Φ(x/(σ√2)) = ½(1+erf(x/2σ))
        return sum(0.5 * (1 + math.erf(x / (2 * sigma))) for x in g) / len(g)

    lo, hi = 1e-9, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if agree(mid) > agreement else (lo, mid)
    return (lo + hi) / 2


def build_pairs(
    prompts: list[str],
    samples: list[list[str]],
    proportions: dict[str, float],
    cfg: PairConfig,
    *,
    seed: int,
    split: str,
    oracle_labels: bool = False,
) -> list[dict]:
    """One pair per prompt, of exactly the per-type counts `type_counts` gives.

    ``oracle_labels=True`` replaces the Bradley–Terry labeller by the oracle (labels always right
    except for ``flipped`` pairs) — for a trustworthy validation set."""
    if len(prompts) != len(samples):
        raise ValueError("one list of samples per prompt is needed")
    rng = random.Random(f"{seed}-{split}-pairs")
    counts = type_counts(len(prompts), proportions)
    types = [t for t in PAIR_TYPES for _ in range(counts[t])]
    rng.shuffle(types)
    by_ratings = cfg.labels_from_ratings and not oracle_labels
    biased = cfg.rater_bias > 0 and not oracle_labels
    if by_ratings or biased:  # no deliberate flips: the rater's errors are the wrong labels
        types = ["clean" if t == "flipped" else t for t in types]
    if by_ratings:
        return _rated_pairs(prompts, samples, types, cfg, rng, split)
    rows = []
    for k, (prompt, pair_type, draws) in enumerate(zip(prompts, types, samples)):
        better, origin_b, r_b, worse, origin_w, r_w = _one_pair(prompt, pair_type, draws, cfg, rng)
        if pair_type == "flipped":
            swap = True
        elif oracle_labels:
            swap = False
        else:
            swap = rng.random() >= _sigmoid((r_b - r_w) / cfg.bt_temperature)
        noise_chosen, noise_rejected = (rng.gauss(0.0, cfg.rater_noise),
                                        rng.gauss(0.0, cfg.rater_noise))
        s_b, s_w = ((r_b + noise_rejected, r_w + noise_chosen) if swap
                    else (r_b + noise_chosen, r_w + noise_rejected))
        # (the draw only when there is a bias, so that the labs without one stay byte for byte as
        # they were)
        by_bias = biased and len(better) != len(worse) and rng.random() < cfg.rater_bias
        if by_bias:
            swap = len(worse) > len(better)  # the longer answer is chosen
        # The rater who labelled gives the ratings: it rates the answer it chose higher (else a
        # rating-based rule reads the truth the label hides). The biased rater always did; no draw,
        # so labels stay as they were.
        if (by_bias or cfg.ratings == "rater") and (s_w > s_b) != swap:
            s_b, s_w = s_w, s_b
        row = _row(split, k, prompt, pair_type, (better, origin_b, r_b, s_b),
                   (worse, origin_w, r_w, s_w), swap)
        if biased:
            row["biased"] = by_bias
        rows.append(row)
    return rows


def _one_pair(prompt, pair_type, draws, cfg, rng):
    maker = _PromptPairs(prompt, draws, cfg, rng)
    build = maker.clean if pair_type == "flipped" else getattr(maker, pair_type)
    (better, origin_b), (worse, origin_w) = build()
    r_b, r_w = maker.score(better), maker.score(worse)
    if better == worse or not better or not worse or r_b < r_w:
        raise AssertionError(f"bad {pair_type} pair for {prompt!r}: {better} / {worse}")
    return better, origin_b, r_b, worse, origin_w, r_w


def _rated_pairs(prompts, samples, types, cfg, rng, split) -> list[dict]:
    """Pairs labelled by the rater, its noise solved for `rater_agreement` on this split's gaps."""
    built = [_one_pair(p, t, d, cfg, rng) for p, t, d in zip(prompts, types, samples)]
    sigma = rater_noise_for([b[2] - b[5] for b in built], cfg.rater_agreement)
    rows = []
    for k, (prompt, pair_type, (better, origin_b, r_b, worse, origin_w, r_w)) in enumerate(zip(
            prompts, types, built)):
        s_b, s_w = r_b + rng.gauss(0.0, sigma), r_w + rng.gauss(0.0, sigma)
        rows.append(_row(split, k, prompt, pair_type, (better, origin_b, r_b, s_b),
                         (worse, origin_w, r_w, s_w), swap=s_w > s_b))
    return rows


def _row(split, k, prompt, pair_type, better, worse, swap) -> dict:
    """A pair's record: the two sides (words, origin, oracle reward, rating), ``worse`` chosen when
    swapped."""
    (c, oc, rc, sc), (r, orj, rr, sr) = (worse, better) if swap else (better, worse)
    return {
        "id": f"lab-{split}-{k:06d}",
        "prompt": prompt,
        "chosen": words_to_response(c),
        "rejected": words_to_response(r),
        "pair_type": pair_type,
        "task": parse_prompt(prompt).task,
        "label_correct": bool(rc >= rr),
        "oracle_chosen": round(rc, 6),
        "oracle_rejected": round(rr, 6),
        "score_chosen": round(sc, 6),
        "score_rejected": round(sr, 6),
        "origin_chosen": oc,
        "origin_rejected": orj,
    }
