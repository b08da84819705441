"""Paired differences between two arms judged on the same prompts and sampling seeds.

Every arm's answers are sampled with the same seeds on the same held-out prompts, so two arms can
be compared prompt by prompt: the difference of their per-prompt values (WinRate against π_ref, or
the single score) cancels what the prompts themselves contribute, and its interval is much
narrower than the two arms' own intervals side by side.

The 95 % interval resamples what varies between replications of the experiment together: the
training seeds (an arm's seed sets its training order and, for `random`, its subset) and the
prompts, each with replacement, and takes the mean difference over the resampled grid
(a two-way bootstrap; percentile interval)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairedDifference:
    mean: float
    low: float
    high: float
    seeds: int
    prompts: int

    def __str__(self):
        return f"{100 * self.mean:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def paired_difference(a, b, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> PairedDifference:
    """Mean of ``a − b`` and its two-way bootstrap interval.

    ``a`` and ``b``: arrays of shape (seeds, prompts), the two arms' per-prompt values for the same
    seeds (rows) and prompts (columns)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"need two (seeds, prompts) arrays of one shape, got {a.shape} and "
                         f"{b.shape}")
    d = a - b
    n_s, n_p = d.shape
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for k in range(n_boot):
        s = rng.integers(0, n_s, size=n_s)
        p = rng.integers(0, n_p, size=n_p)
        # mean over the resampled grid = mean over resampled seeds of each seed's mean over the
        # prompts drawn
        boots[k] = d[np.ix_(s, p)].mean()
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return PairedDifference(float(d.mean()), float(lo), float(hi), n_s, n_p)


@dataclass
class LabsDifference:
    """A paired difference pooled over independently built labs (each lab weighs the same)."""

    mean: float
    # across labs: the labs resampled (each lab's mean carries its own seeds' and prompts' noise)
    low: float
    high: float
    within_low: float  # these labs: each lab's seeds and prompts resampled, the labs held fixed
    within_high: float
    per_lab: list  # each lab's own PairedDifference
    between_labs_sd: float  # sd of the labs' mean differences (0 with one lab)

    def __str__(self):
        return f"{100 * self.mean:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def paired_difference_over_labs(labs, n_boot: int = 2000, seed: int = 0,
                                level: float = 0.95) -> LabsDifference:
    """Mean over labs of each lab's mean ``a − b``, with two bootstrap intervals.

    ``labs``: one (a, b) per lab, each a pair of (seeds, prompts) arrays as `paired_difference`
    takes (labs may differ in seeds and prompts). A lab is a replication of the whole experiment
    (another SFT model, other pairs, other prompts).

    * ``low, high`` (across labs) resample the labs with replacement and average their means: a
      lab's mean already holds the noise of its seeds and prompts, so resampling inside it again
      would count that noise twice. With few labs this interval is coarse: with three it is the
      range of the labs' means.
    * ``within_low, within_high`` (these labs) hold the labs fixed and resample each lab's seeds and
      prompts (`paired_difference`'s two-way bootstrap inside every lab): is the mean over *these*
      labs distinguishable from zero."""
    diffs = []
    for a, b in labs:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.shape != b.shape or a.ndim != 2 or a.size == 0:
            raise ValueError(f"need two (seeds, prompts) arrays of one shape per lab, got "
                             f"{a.shape} and {b.shape}")
        diffs.append(a - b)
    if not diffs:
        raise ValueError("no labs to pool")
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    rng = np.random.default_rng(seed)
    means = np.array([d.mean() for d in diffs])
    across = means[rng.integers(0, len(means), size=(n_boot, len(means)))].mean(axis=1)
    within = np.zeros(n_boot)
    for d in diffs:
        for k in range(n_boot):
            within[k] += d[np.ix_(rng.integers(0, d.shape[0], size=d.shape[0]),
                                  rng.integers(0, d.shape[1], size=d.shape[1]))].mean()
    within /= len(diffs)
    lo, hi = np.quantile(across, q)
    w_lo, w_hi = np.quantile(within, q)
    per_lab = [paired_difference(d, np.zeros_like(d), n_boot=n_boot, seed=seed) for d in diffs]
    return LabsDifference(float(means.mean()), float(lo), float(hi), float(w_lo), float(w_hi),
                          per_lab, float(means.std(ddof=1)) if len(means) > 1 else 0.0)


def headroom_share(arm, full, oracle, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """The share of the oracle's headroom an arm captures, (arm − full) / (oracle − full), with the
    same two-way bootstrap as `paired_difference` (seeds and prompts resampled together for all
    three arms; the ratio of the resampled mean differences). 1: all of it; 0: no better than all
    the data; negative: worse. None when the testbed has no headroom to share: the oracle's mean
    gain over the full data is not positive, or its interval reaches zero (a testbed that cannot
    rank).

    Each argument: a (seeds, prompts) array of per-prompt values, the same seeds and prompts."""
    a, f, o = (np.asarray(x, dtype=float) for x in (arm, full, oracle))
    if not a.shape == f.shape == o.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"need three (seeds, prompts) arrays of one shape, got {a.shape}, "
                         f"{f.shape}, {o.shape}")
    gain, room = a - f, o - f
    if paired_difference(o, f, n_boot=n_boot, seed=seed, level=level).low <= 0:
        return None
    n_s, n_p = gain.shape
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for k in range(n_boot):
        cells = np.ix_(rng.integers(0, n_s, size=n_s), rng.integers(0, n_p, size=n_p))
        boots[k] = gain[cells].mean() / room[cells].mean() if room[cells].mean() > 0 else np.nan
    lo, hi = np.nanquantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return PairedDifference(float(gain.mean() / room.mean()), float(lo), float(hi), n_s, n_p)


def per_prompt(values, n_prompts: int) -> np.ndarray:
    """Per-answer values, ordered answer-major (all prompts' first answer, then their second, ...),
    averaged over each prompt's answers."""
    v = np.asarray(values, dtype=float)
    if n_prompts <= 0 or len(v) % n_prompts:
        raise ValueError(f"{len(v)} values do not split into {n_prompts} prompts' answers")
    return v.reshape(-1, n_prompts).mean(axis=0)


def smallest_detectable(d: PairedDifference, z_power: float = 0.84) -> float:
    """The smallest true difference this design detects with 80 % power at the interval's level:
    (z_α/2 + z_power) · SE, with the SE read off the interval's half-width (half-width = 1.96
    SE)."""
    se = (d.high - d.low) / (2 * 1.96)
    return float((1.96 + z_power) * se)
