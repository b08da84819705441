"""What the careful validation pairs tell about the training labels beyond LossDiff and IF.

* The **teacher's share** (`teacher_prompts`): the validation pairs that train θ_c, a model trained
  by DPO from π_ref on them alone (score ``teacher``: θ_c's implicit margin on each training pair).
  It is the last `teacher_share` of the distinct validation prompts, in file order. The probes of a
  run that computes the teacher are valued on the other prompts only (`pipeline/probes.py`): a
  teacher judged on the pairs that trained it would always look right. Held out rather than
  cross-fitted because a training pair's teacher score is one number from one θ_c: folds would
  give K teachers, each of which has seen most of the pairs that judge it.
* The **flip rate by group** (`group_flip_rates`, score ``group_noise``): a rater biased toward
  longer (or shorter) answers shifts the share of training pairs whose chosen answer is the longer
  one away from the share among careful pairs. With p that share among the careful pairs (labels
  right) and s among the training pairs, and flips assumed to go one way only (the fewest flips
  that explain the shift), the flip rate of the group that gained pairs is

      ε_longer  = (s − p) / s        when s > p  (and ε_shorter = 0),
      ε_shorter = (p − s) / (1 − s)  when s < p  (and ε_longer = 0),

  over the pairs whose answers differ in length (in words); pairs of equal length get 0. With
  `group_by` columns the pairs are first split by those columns' values, each stratum estimated on
  its own. Symmetric noise (a rater's slips in both directions) does not shift s, so it is not in
  ε: the estimate is the length bias's part of the flip rate, a lower bound on the whole."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..core.errors import ConfigError

MIN_CAREFUL = 20  # careful pairs of differing lengths a stratum needs for its p (SE ≲ 0.11)


def last_share(prompts: list, share: float, key: str = "teacher_share") -> set[str]:
    """The last ``share`` of the distinct ``prompts`` (every validation row's, in file order), as
    `prompt_key` gives them: at least one, and at least one left; a `ConfigError` keyed ``key``
    with fewer than 2 prompts."""
    distinct = list(dict.fromkeys(prompt_key(p) for p in prompts))
    if len(distinct) < 2:
        raise ConfigError(key=key, problem=f"needs validation pairs of at least 2 prompts (one "
                                           f"share for each side of the split); there are "
                                           f"{len(distinct)}")
    n_last = min(len(distinct) - 1, max(1, math.ceil(share * len(distinct))))
    return set(distinct[len(distinct) - n_last:])


def teacher_prompts(prompts: list, share: float) -> set[str]:
    """The prompts whose validation pairs train the teacher: the last ``share`` of them
    (`last_share`)."""
    return last_share(prompts, share, "teacher_share")


def only_prompts(pairs, keep):
    """A copy of the `PairSet` ``pairs`` holding only its rows of a prompt ``keep(prompt_key)``
    accepts (the rows themselves shared, unchanged; each keeps its index into the file)."""
    return dataclasses.replace(pairs, rows=[r for r in pairs.rows if keep(prompt_key(r.prompt))])


def teacher_rows(pairs, share: float) -> list[int]:
    """Positions among ``pairs.valid_rows`` (a validation `PairSet`) of the pairs that train the
    teacher."""
    theirs = teacher_prompts([r.prompt for r in pairs.rows], share)
    rows = [i for i, r in enumerate(pairs.valid_rows) if prompt_key(r.prompt) in theirs]
    if not rows:
        raise ConfigError(key="teacher_share",
                          problem="leaves the teacher no usable validation pair: raise it")
    return rows


def prompt_key(prompt) -> str:
    # (a conversational prompt: its messages)
    return prompt if isinstance(prompt, str) else repr(prompt)


def _text(answer) -> str:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, list):  # conversational: the messages' contents
        return " ".join(str(m.get("content", "")) if isinstance(m, dict) else str(m)
                        for m in answer)
    return str(answer)


def length_direction(chosen, rejected) -> int:
    """+1 when the chosen answer has more words than the rejected one, −1 when fewer, 0 when as
    many."""
    a, b = len(_text(chosen).split()), len(_text(rejected).split())
    return (a > b) - (a < b)


def one_way_rates(p: float, s: float) -> tuple[float, float]:
    """(ε_longer, ε_shorter) from the careful share p and the training share s of chosen-longer
    pairs (module docstring), each clipped below 0.5."""
    eps_long = (s - p) / s if s > p else 0.0
    eps_short = (p - s) / (1 - s) if s < p else 0.0
    return min(eps_long, 0.49), min(eps_short, 0.49)


def group_flip_rates(train: list[tuple[int, tuple]], careful: list[tuple[int, tuple]]) -> dict:
    """{(stratum, direction): ε} from (direction, stratum) per training pair and per careful pair;
    direction 0 gets ε 0. A stratum of the training pairs with fewer than `MIN_CAREFUL` careful
    pairs of differing lengths is a `ConfigError` naming it."""
    rates = {}
    for stratum in dict.fromkeys(s for _, s in train):
        tr = [d for d, s in train if s == stratum and d]
        ca = [d for d, s in careful if s == stratum and d]
        if tr and len(ca) < MIN_CAREFUL:
            raise ConfigError(key="group_by", problem=f"leaves stratum {stratum!r} with {len(ca)} "
                                                      f"validation pairs of differing lengths; its "
                                                      f"flip rate needs at least {MIN_CAREFUL}: "
                                                      "group by fewer columns, or give more "
                                                      "validation pairs")
        p = sum(d > 0 for d in ca) / len(ca) if ca else 0.0
        s = sum(d > 0 for d in tr) / len(tr) if tr else 0.0
        eps_long, eps_short = one_way_rates(p, s) if tr else (0.0, 0.0)
        rates[(stratum, 1)], rates[(stratum, -1)], rates[(stratum, 0)] = eps_long, eps_short, 0.0
    return rates


def group_noise(train_pairs, careful_pairs, columns: list[str]) -> tuple[np.ndarray, np.ndarray,
                                                                         dict]:
    """(ε per valid training pair, its length direction, the rates by group) over the valid rows
    of two `PairSet`s; ``columns`` name the input fields that split the pairs into strata."""
    def described(pairs, what):
        out = []
        for r in pairs.valid_rows:
            rec = pairs.raw.rows[r.index].record or {}
            missing = [c for c in columns if c not in rec]
            if missing:
                raise ConfigError(key="group_by",
                                  problem=f"names {missing}, which {what} {r.where} does not have; "
                                          "name fields every training and validation pair carries")
            out.append((length_direction(r.chosen, r.rejected),
                        tuple(str(rec[c]) for c in columns)))
        return out

    train, careful = (described(train_pairs, "training pair"),
                      described(careful_pairs, "validation pair"))
    rates = group_flip_rates(train, careful)
    return (np.array([rates[(s, d)] for d, s in train], dtype=float),
            np.array([d for d, _ in train], dtype=float), rates)
