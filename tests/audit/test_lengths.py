"""The length finding against hand computations: the share and ratio of a tiny file, b̂ by its
closed form, the bootstrap intervals against the normal approximation, a simulated length-biased
rater whose b the interval must hold, random flips that must not read as a bias, and the
degenerate inputs (no validation pair differing in length, an empty file)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import prefsift
from prefsift.core.errors import UserError


def _write(path, pairs):
    """pairs: (chosen words, rejected words) per row; each answer is that many copies of a word."""
    rows = [
        {"prompt": f"q{i}", "chosen": " ".join(["a"] * c), "rejected": " ".join(["b"] * r)}
        for i, (c, r) in enumerate(pairs)
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    return path


def test_share_ratio_and_b_on_a_tiny_file(tmp_path):
    train = [(5, 2), (4, 3), (6, 1), (3, 2), (7, 6), (9, 8), (2, 5), (1, 4), (3, 3), (2, 2)]
    val = [(3, 1), (1, 3), (4, 2), (2, 4), (5, 5)]
    r = prefsift.audit(
        _write(tmp_path / "t.jsonl", train), validation=_write(tmp_path / "v.jsonl", val)
    )
    s = r.get("length.chosen_longer").stats
    assert s["differ_in_length"] == 8 and s["chosen_longer"] == 6
    assert s["share_chosen_longer"] == 6 / 8
    assert s["length_ratio"] == pytest.approx(
        (5 + 4 + 6 + 3 + 7 + 9 + 2 + 1 + 3 + 2) / (2 + 3 + 1 + 2 + 6 + 8 + 5 + 4 + 3 + 2)
    )
    assert s["validation_share_chosen_longer"] == 2 / 4
    assert s["length_decided_share"] == pytest.approx((0.75 - 0.5) / (1 - 0.5))
    assert r.get("length.chosen_longer").rows.tolist() == [0, 1, 2, 3, 4, 5]


def test_the_intervals_match_the_normal_approximation(tmp_path):
    """n_t = 2000 pairs with p_t = 0.7, n_v = 1000 with p_v = 0.4: the bootstrap's 95 % intervals of
    the difference and of b̂ against ±1.96 standard errors (the delta method for b̂)."""
    train = [(2, 1)] * 1400 + [(1, 2)] * 600
    val = [(2, 1)] * 400 + [(1, 2)] * 600
    r = prefsift.audit(
        _write(tmp_path / "t.jsonl", train), validation=_write(tmp_path / "v.jsonl", val)
    )
    s = r.get("length.chosen_longer").stats
    pt, pv, nt, nv = 0.7, 0.4, 2000, 1000
    se = math.sqrt(pt * (1 - pt) / nt + pv * (1 - pv) / nv)
    lo, hi = s["difference_interval"]
    assert lo == pytest.approx(0.3 - 1.96 * se, abs=0.004) and hi == pytest.approx(
        0.3 + 1.96 * se, abs=0.004
    )
    db_dpt, db_dpv = 1 / (1 - pv), (pt - 1) / (1 - pv) ** 2
    se_b = math.sqrt(db_dpt**2 * pt * (1 - pt) / nt + db_dpv**2 * pv * (1 - pv) / nv)
    lo, hi = s["length_decided_interval"]
    assert s["length_decided_share"] == pytest.approx(0.5)
    assert lo == pytest.approx(0.5 - 1.96 * se_b, abs=0.008) and hi == pytest.approx(
        0.5 + 1.96 * se_b, abs=0.008
    )
    assert r.get("length.chosen_longer").reported


@pytest.mark.parametrize("b", [0.0, 0.3])
def test_a_simulated_length_biased_rater(tmp_path, b):
    """Careful labels: the longer answer is better with probability 0.4. The rater labels a share b
    of the pairs 'longer is better' and the rest as the careful set would. Its b̂ interval holds b,
    and the finding is reported exactly when there is a bias."""
    rng = np.random.default_rng(1)

    def pairs(n, bias):
        out = []
        for _ in range(n):
            longer_better = rng.random() < 0.4
            if rng.random() < bias:
                longer_better = True
            out.append((3, 2) if longer_better else (2, 3))
        return out

    r = prefsift.audit(
        _write(tmp_path / "t.jsonl", pairs(4000, b)),
        validation=_write(tmp_path / "v.jsonl", pairs(2000, 0.0)),
    )
    f = r.get("length.chosen_longer")
    lo, hi = f.stats["length_decided_interval"]
    assert lo <= b <= hi and hi - lo < 0.1
    assert f.reported == (b > 0)


def test_random_flips_are_not_a_length_bias(tmp_path):
    """p_v = 0.2; flipping 40 % of the labels at random gives p_t = 0.2 + 0.4·(1 − 0.4) = 0.44: a
    shift toward ½ that a length bias could also make. Not reported; the line says why."""
    train = [(2, 1)] * 440 + [(1, 2)] * 560
    val = [(2, 1)] * 200 + [(1, 2)] * 800
    r = prefsift.audit(
        _write(tmp_path / "t.jsonl", train), validation=_write(tmp_path / "v.jsonl", val)
    )
    f = r.get("length.chosen_longer")
    assert not f.reported and "random label flips" in f.summary
    assert f.stats["random_flip_rate"] == pytest.approx((0.44 - 0.2) / (1 - 2 * 0.2))


def test_without_validation_the_share_band(tmp_path):
    r = prefsift.audit(_write(tmp_path / "t.jsonl", [(2, 1)] * 80 + [(1, 2)] * 20))
    assert r.get("length.chosen_longer").reported  # 0.8, interval above 0.6
    r = prefsift.audit(_write(tmp_path / "u.jsonl", [(2, 1)] * 55 + [(1, 2)] * 45))
    assert not r.get("length.chosen_longer").reported


def test_by_group_flags_the_biased_source_only(tmp_path):
    rows = [
        {
            "prompt": f"q{i}",
            "chosen": "a a a" if (i % 2 == 0 or i < 100) else "a",
            "rejected": "b b",
            "source": "x" if i < 100 else "y",
        }
        for i in range(200)
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    f = prefsift.audit(path).get("length.chosen_longer.by.source")
    assert f.stats["flagged"] == ["x"] and f.stats["levels"]["y"]["share_chosen_longer"] == 0.5
    assert f.rows.tolist() == list(range(100))


def test_degenerate_inputs_say_cannot_tell_or_fail_clearly(tmp_path):
    r = prefsift.audit(
        _write(tmp_path / "t.jsonl", [(2, 1), (1, 2)]),
        validation=_write(tmp_path / "v.jsonl", [(1, 1)]),
    )
    f = r.get("length.chosen_longer")
    assert not f.reported and "no validation pair has answers of different lengths" in f.cannot_tell
    assert any(
        line.startswith("[length] chosen is the longer answer: cannot tell") for line in r.lines()
    )
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="no rows"):
        prefsift.audit(tmp_path / "empty.jsonl")
