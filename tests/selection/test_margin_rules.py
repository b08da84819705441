"""The field's margin rules (alignment_potential, small_margin, large_margin) against hand
computations on small tables: written out number by number, with ties, missing ratings, rows that
were not scored, and kept fractions that cannot be met exactly."""

import math

import numpy as np
import pandas as pd
import pytest

import prefsift
from prefsift.core.errors import ConfigError, UserError
from prefsift.selection.margins import alignment_potential, combined_margin

NAN = float("nan")


def _table(score_gap, irm, valid=None):
    n = len(irm)
    valid = [True] * n if valid is None else valid
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "valid": valid,
                         "reason": ["" if v else "too long" for v in valid],
                         "score_gap": score_gap, "irm": irm, "abs_irm": np.abs(irm)})


def _kept(table, rule, keep):
    return [f"p{i}" for i in np.flatnonzero(prefsift.select(table, rule, keep))]


def _z(xs):
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
    return [(x - mean) / sd for x in xs]


def test_alignment_potential_by_hand():
    gap = [4.0, 1.0, 3.0, 2.0, 5.0]
    irm = [0.5, -0.1, 0.0, 2.0, -3.0]
    # M_AP = z(gap) − z(|irm|), written out: gap mean 3, sd √2; |irm| = .5 .1 0 2 3, mean 1.12.
    sd_abs = math.sqrt(sum((a - 1.12) ** 2 for a in (0.5, 0.1, 0.0, 2.0, 3.0)) / 5)
    m_ap = [(g - 3) / math.sqrt(2) - (a - 1.12) / sd_abs
            for g, a in zip(gap, (0.5, 0.1, 0.0, 2.0, 3.0))]
    assert np.allclose(alignment_potential(gap, irm), m_ap)
    assert np.allclose(m_ap, np.array(_z(gap)) - np.array(_z([0.5, 0.1, 0.0, 2.0, 3.0])))
    # By hand: z(gap) = [.707, -1.414, 0, -.707, 1.414], z(|irm|) = [-.524, -.863, -.947, .744,
    # 1.590], so m_ap ≈ [1.232, -.551, .947, -1.452, -.176]: keep 0.4 of 5 → the 2 largest, p0 then
    # p2.
    order = sorted(range(5), key=lambda i: -m_ap[i])
    assert order[:3] == [0, 2, 4]
    assert np.allclose(m_ap, [1.2316, -0.5514, 0.9474, -1.4515, -0.1760], atol=1e-4)
    assert _kept(_table(gap, irm), "alignment_potential", 0.4) == ["p0", "p2"]
    assert _kept(_table(gap, irm), "alignment_potential", 0.6) == sorted(f"p{i}" for i in order[:3])


def test_alignment_potential_uses_only_pairs_with_both_margins():
    # p1 has no rating, p3 was not scored: z-scores over p0, p2, p4 only, and neither is ever kept.
    gap = [4.0, NAN, 3.0, 9.0, 5.0]
    irm = [0.5, 0.2, 0.0, NAN, -3.0]
    table = _table(gap, irm, valid=[True, True, True, False, True])
    have = [0, 2, 4]
    m_ap = np.array(_z([4.0, 3.0, 5.0])) - np.array(_z([0.5, 0.0, 3.0]))
    got = alignment_potential(gap, irm)
    assert np.allclose(got[have], m_ap) and np.isnan(got[[1, 3]]).all()
    # By hand: z(gap) = [0, -1.225, 1.225], z(|irm|) = [-.508, -.889, 1.397], so m_ap over p0, p2,
    # p4 ≈ [.508, -.336, -.172]: keep 2/3 of the 3 rankable pairs → 2 pairs, p0 and p4.
    assert np.allclose(m_ap, [0.5080, -0.3357, -0.1723], atol=1e-4)
    assert _kept(table, "alignment_potential", 2 / 3) == ["p0", "p4"]


def test_small_margin_keeps_the_smallest_signed_margins():
    irm = [0.3, -1.0, 0.05, 2.0, -0.2, 0.0]
    table = _table([1.0] * 6, irm)
    # Signed, not |IRM|: −1.0 (p1) and −0.2 (p4) are the smallest, then 0.0 (p5).
    assert _kept(table, "small_margin", 0.5) == ["p1", "p4", "p5"]
    # abs_irm_small keeps 0.0, 0.05, −0.2 instead: the two rules disagree on the negative margins.
    assert _kept(table, "abs_irm_small", 0.5) == ["p2", "p4", "p5"]


def test_small_margin_ties_break_by_position_and_meet_the_fraction():
    irm = [0.1, 0.1, 0.1, 0.5, 0.5, 0.9]
    # keep 0.5 of 6 = 3: exactly the three tied 0.1 pairs; keep 1/3 = 2: the first two of the tie.
    assert _kept(_table([1.0] * 6, irm), "small_margin", 0.5) == ["p0", "p1", "p2"]
    assert _kept(_table([1.0] * 6, irm), "small_margin", 1 / 3) == ["p0", "p1"]


def test_large_margin_by_hand():
    gap = [1.0, 3.0, 2.0, 0.0]
    irm = [2.0, -1.0, 0.5, 1.0]
    # Each margin over its standard deviation, not centred: sd(gap) = √1.25, sd(irm) by hand.
    m_mean = 0.625
    sd_m = math.sqrt(sum((m - m_mean) ** 2 for m in irm) / 4)
    c = [g / math.sqrt(1.25) + m / sd_m for g, m in zip(gap, irm)]
    assert np.allclose(combined_margin(gap, irm), c)
    # Bayesian aggregation of σ(a) and σ(b) has logit a + b: the same order as c.
    a, b = np.array(gap) / math.sqrt(1.25), np.array(irm) / sd_m
    p = (1 / (1 + np.exp(-a))) * (1 / (1 + np.exp(-b)))
    q = (1 / (1 + np.exp(a))) * (1 / (1 + np.exp(b)))
    assert list(np.argsort(-(p / (p + q)))) == list(np.argsort(-np.array(c)))
    # By hand: gap/sd = [.894, 2.683, 1.789, 0], irm/sd = [1.848, -.924, .462, .924], so
    # c ≈ [2.742, 1.759, 2.251, .924]: keep 0.5 → p0 and p2; p1's large gap is outvoted by θ's −1.
    assert np.allclose(c, [2.7419, 1.7595, 2.2507, 0.9238], atol=1e-4)
    assert _kept(_table(gap, irm), "large_margin", 0.5) == ["p0", "p2"]


def test_a_constant_margin_is_refused_with_its_name():
    with pytest.raises(UserError, match=r"external margin \(score_gap\) is 2 for all 4"):
        prefsift.select(_table([2.0] * 4, [0.1, 0.2, 0.3, 0.4]), "alignment_potential", 0.5)
    with pytest.raises(UserError, match=r"IRM is 0 for all 4"):
        prefsift.select(_table([1.0, 2.0, 3.0, 4.0], [0.0] * 4), "large_margin", 0.5)


def test_rules_that_need_ratings_say_so():
    table = _table([1.0] * 4, [0.1, 0.2, 0.3, 0.4]).drop(columns=["score_gap"])
    for rule in ("alignment_potential", "large_margin"):
        with pytest.raises(ConfigError, match="needs ratings"):
            prefsift.select(table, rule, 0.5)
    assert _kept(table, "small_margin", 0.5) == ["p0", "p1"]


def test_a_fraction_that_rounds_keeps_the_nearest_whole_pair():
    # 7 rankable pairs at keep 0.5 → round(3.5) = 4 pairs (numpy rounds half to even: 4).
    gap = [float(i) for i in range(7)]
    irm = [0.1 * ((-1) ** i) * i for i in range(7)]
    kept = prefsift.select(_table(gap, irm), "large_margin", 0.5)
    assert kept.sum() == 4
