"""Treatment arms (prefsift/selection/treatments.py) against hand computations: percentile ranks
against scipy's average ranks, the smooth window against its formula and its hard limit, the flagged
wrong labels and ε counted by hand on small tables, and each treatment's data."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from prefsift.selection.treatments import (
    TREATMENTS,
    estimated_noise,
    flagged_wrong,
    percentile_rank,
    soft_window,
    treatment_data,
)

NAN = float("nan")


def _table(lossdiff, irm, valid=None, if_=None):
    n = len(irm)
    valid = [True] * n if valid is None else valid
    t = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "valid": valid,
                      "reason": ["" if v else "x" for v in valid],
                      "lossdiff": lossdiff, "irm": irm})
    if if_ is not None:
        t["if"] = if_
    return t


def test_percentile_rank_is_scipys_average_rank_scaled():
    v = np.array([3.0, 1.0, NAN, 3.0, 7.0, 2.0, 3.0])
    ok = np.isfinite(v)
    expected = (rankdata(v[ok], method="average") - 1) / (ok.sum() - 1)
    got = percentile_rank(v)
    assert np.allclose(got[ok], expected) and np.isnan(got[2])
    # by hand: sorted 1, 2, 3, 3, 3, 7 → ranks 0, 1, 3 (mid of 2..4), 5, over 5
    assert np.allclose(got[[1, 5, 0, 4]], [0.0, 0.2, 0.6, 1.0])


def test_soft_window_is_its_formula_and_tends_to_the_hard_window():
    v = np.arange(101, dtype=float)  # percentile rank u = v / 100
    w = soft_window(v, 0.5, softness=0.05)
    u = v / 100
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert np.allclose(w, sig((u - 0.25) / 0.05) * sig((0.75 - u) / 0.05))
    assert (w[50] == pytest.approx(sig(5.0) ** 2) and w[25] == pytest.approx(0.5 * sig(0.5 / 0.05))
            and w[0] < 0.01)
    hard = (u > 0.25) & (u < 0.75)
    sharp = soft_window(v, 0.5, softness=1e-4)
    assert ((sharp > 0.5) == hard).all()
    assert soft_window(np.array([1.0, NAN, 2.0]), 0.5)[1] == 0.0


def test_flagged_wrong_labels_and_their_share_by_hand():
    # 10 pairs scored by both; LossDiff constant-free and independent of IRM's order.
    irm = np.array([-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    ld = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    t = _table(ld, irm)
    from prefsift.core.windows import lossdiff_irm

    mask, width = lossdiff_irm(ld, irm, keep=0.6)
    lower = np.percentile(irm, (1 - width) / 2 * 100)
    by_hand = irm <= lower
    assert (flagged_wrong(t, 0.6) == by_hand).all() and by_hand.any() and not (by_hand & mask).any()
    assert estimated_noise(t) == pytest.approx(3 / 10)  # three negative IRMs of ten
    # keep 1: LossDiff-IRM drops nothing, so nothing is flagged
    assert not flagged_wrong(t, 1.0).any()
    # The flagged pairs are the lowest IRMs: a prefix of IRM's order.
    k = int(by_hand.sum())
    assert set(np.flatnonzero(by_hand)) == set(np.argsort(irm)[:k])


def test_a_pair_without_a_score_is_never_flagged_or_counted():
    irm = np.array([-3.0, NAN, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0])
    ld = np.array([0.5, 0.1, 0.9, 0.3, 0.7, NAN, 0.8, 0.4])
    t = _table(ld, irm, valid=[True, False, True, True, True, True, True, True])
    f = flagged_wrong(t, 0.5)
    assert not f[1] and not f[5] and f[0]
    assert estimated_noise(t) == pytest.approx(2 / 7)  # IRM scored for 7 pairs, 2 of them negative


def test_each_treatments_data():
    rng = np.random.default_rng(0)
    n = 40
    t = _table(rng.normal(size=n), rng.normal(size=n), if_=rng.normal(size=n))
    t.loc[3, "valid"] = False
    t.loc[3, ["lossdiff", "irm", "if"]] = NAN
    relabel = treatment_data(t, "lossdiff_irm_relabel", 0.6)
    from prefsift.core.windows import lossdiff_irm

    kept, _ = lossdiff_irm(t["lossdiff"].to_numpy(), t["irm"].to_numpy(), keep=0.6)
    assert (relabel.mask == (kept | relabel.flip)).all() and not (kept & relabel.flip).any()
    assert (relabel.flip == flagged_wrong(t, 0.6)).all() and relabel.weight is None
    soft = treatment_data(t, "soft_lossdiff_irm", 0.6)
    assert not soft.mask[3] and soft.weight[3] == 0 and (soft.weight[soft.mask] >= 1e-3).all()
    # heavier inside the hard window than outside it, on average
    assert soft.weight[kept].mean() > 2 * soft.weight[~kept & t["valid"].to_numpy()].mean()
    tif = treatment_data(t, "soft_tif", 0.5)
    u = (rankdata(t["if"].to_numpy()[t["valid"]]) - 1) / (n - 2)
    expected = 1 / (1 + np.exp(-(u - 0.25) / 0.05)) / (1 + np.exp(-(0.75 - u) / 0.05))
    expected = np.where(expected >= 1e-3, expected, 0.0)
    assert np.allclose(tif.weight[t["valid"].to_numpy()], expected)
    robust = treatment_data(t, "robust_dpo", 0.6)
    irm = t["irm"].to_numpy()
    ok = np.isfinite(irm)
    assert robust.loss_type == "robust" and robust.epsilon == pytest.approx((irm[ok] < 0).mean())
    assert robust.mask.sum() == n - 1 and not robust.mask[3]
    given = treatment_data(t, "cdpo", 0.6, label_noise=0.1)
    assert given.conservative and given.epsilon == 0.1 and given.loss_type is None
    assert (set(TREATMENTS.names())
            >= {"soft_lossdiff_irm", "soft_tif", "lossdiff_irm_relabel", "robust_dpo", "cdpo"})
