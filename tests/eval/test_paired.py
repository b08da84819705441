"""Paired differences and their two-way bootstrap, against closed forms."""

import numpy as np
import pytest

from prefsift.eval.paired import paired_difference, per_prompt, smallest_detectable


def test_mean_is_the_mean_difference_and_an_arm_against_itself_is_zero():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 50)), rng.random((3, 50))
    d = paired_difference(a, b)
    assert d.mean == pytest.approx((a - b).mean(), abs=1e-12) and d.low <= d.mean <= d.high
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)


def test_one_seed_interval_matches_the_normal_closed_form():
    # One seed: the bootstrap over prompts of a mean has SE sd/sqrt(n); its 95 % half-width ≈ 1.96
    # SE.
    rng = np.random.default_rng(1)
    n = 2000
    a, b = rng.normal(0.6, 0.3, (1, n)), rng.normal(0.5, 0.3, (1, n))
    d = paired_difference(a, b, n_boot=4000)
    half = 1.96 * (a - b).std(ddof=1) / np.sqrt(n)
    assert (d.high - d.low) / 2 == pytest.approx(half, rel=0.08)
    assert smallest_detectable(d) == pytest.approx(2.80 * half / 1.96, rel=0.08)


def test_the_seeds_spread_enters_the_interval():
    # A difference constant over prompts but varying over seeds: only resampling seeds can see it,
    # and the half-width is that of a mean over the seeds (closed form 1.96 sd/sqrt(S)).
    rng = np.random.default_rng(2)
    s = 400
    per_seed = rng.normal(0.02, 0.05, s)
    a = np.repeat(per_seed[:, None], 30, axis=1)
    d = paired_difference(a, np.zeros_like(a), n_boot=4000)
    assert (d.high - d.low) / 2 == pytest.approx(1.96 * per_seed.std(ddof=1) / np.sqrt(s), rel=0.1)


def test_per_prompt_averages_answer_major_values():
    # two answers for three prompts: answer 0 of prompts 0, 1, 2, then answer 1 of each
    assert per_prompt([1, 0, 0.5, 0, 0, 0.5], 3).tolist() == [0.5, 0.0, 0.5]
    with pytest.raises(ValueError, match="do not split"):
        per_prompt([1, 0, 1], 2)


def test_over_labs_the_mean_weighs_labs_equally_and_both_intervals_match_closed_forms():
    from prefsift.eval.paired import paired_difference_over_labs

    rng = np.random.default_rng(4)
    # Labs of different sizes: the point estimate is the mean of the labs' means, not of all cells.
    a1, a2 = rng.random((2, 30)), rng.random((5, 10))
    d = paired_difference_over_labs([(a1, np.zeros_like(a1)), (a2, np.zeros_like(a2))], n_boot=200)
    assert d.mean == pytest.approx((a1.mean() + a2.mean()) / 2, abs=1e-12)
    assert d.between_labs_sd == pytest.approx(np.std([a1.mean(), a2.mean()], ddof=1), abs=1e-12)
    # Three labs: resampling labs can only reach the range of their means (each drawn three times
    # has chance 1/27 > 2.5 %), so the across-labs interval is exactly that range.
    three = [np.full((2, 5), m) for m in (0.1, -0.05, 0.3)]
    d = paired_difference_over_labs([(x, np.zeros_like(x)) for x in three], n_boot=2000)
    assert (d.low, d.high) == pytest.approx((-0.05, 0.3), abs=1e-12)
    # A difference constant within each lab, varying between 400 labs: the across-labs half-width is
    # that of a mean over labs, 1.96 sd/sqrt(L); the within interval, which holds the labs, is
    # empty.
    per_lab = rng.normal(0.01, 0.04, 400)
    labs = [(np.full((2, 3), m), np.zeros((2, 3))) for m in per_lab]
    d = paired_difference_over_labs(labs, n_boot=400)
    assert ((d.high - d.low) / 2
            == pytest.approx(1.96 * per_lab.std(ddof=1) / np.sqrt(400), rel=0.12))
    assert d.within_high - d.within_low == pytest.approx(0, abs=1e-12)
    # Four labs of one seed and 1,000 prompts each: the within half-width is 1.96 SE of the mean of
    # four independent means, SE = sqrt(sum of var_i / n) / 4.
    n = 1000
    labs = [rng.normal(0.1, sd, (1, n)) for sd in (0.2, 0.3, 0.4, 0.5)]
    d = paired_difference_over_labs([(x, np.zeros_like(x)) for x in labs], n_boot=1000)
    se = np.sqrt(sum(x.var(ddof=1) / n for x in labs)) / 4
    assert (d.within_high - d.within_low) / 2 == pytest.approx(1.96 * se, rel=0.1)


def test_headroom_share_against_closed_forms():
    """(arm − full)/(oracle − full): an arm that gains exactly half the oracle's gain on every
    prompt has share 0.5 and a zero-width interval; the full arm 0 and the oracle 1; with noise, the
    ratio of the mean gains and (one seed, many prompts) the delta method's half-width; no headroom:
    None."""
    from prefsift.eval.paired import headroom_share

    rng = np.random.default_rng(3)
    full = rng.random((3, 200))
    oracle = full + rng.uniform(0.05, 0.15, (3, 200))
    half = full + 0.5 * (oracle - full)
    s = headroom_share(half, full, oracle)
    assert (s.mean, s.low, s.high) == pytest.approx((0.5, 0.5, 0.5))
    assert (headroom_share(full, full, oracle).mean == 0.0
            and headroom_share(oracle, full, oracle).mean == 1.0)
    # Noise: point estimate = ratio of mean gains; one seed, n prompts: delta-method SE of a ratio
    # of means.
    n = 4000
    f = rng.normal(0.5, 0.2, (1, n))
    o = f + rng.normal(0.10, 0.05, (1, n))
    a = f + rng.normal(0.04, 0.05, (1, n))
    s = headroom_share(a, f, o, n_boot=3000)
    g, r = (a - f)[0], (o - f)[0]
    ratio = g.mean() / r.mean()
    assert s.mean == pytest.approx(ratio, abs=1e-12)
    se = np.sqrt(np.var(g - ratio * r, ddof=1) / n) / r.mean()
    assert (s.high - s.low) / 2 == pytest.approx(1.96 * se, rel=0.1)
    # An oracle no better than all the data (its interval reaches zero): the testbed cannot rank.
    flat = f + rng.normal(0.0, 0.05, (1, n))
    assert headroom_share(a, f, flat) is None
