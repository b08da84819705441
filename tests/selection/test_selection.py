"""Selection rules against hand computations."""

import numpy as np
import pandas as pd
import pytest

from prefsift.selection.rules import (
    apply_rule,
    keep_middle,
    lossdiff_irm,
    middle_window,
    overlap_coefficient,
    random_fraction,
    top_fraction,
    window,
)


def test_window_by_hand():
    v = np.arange(1, 101, dtype=float)
    # P10 of 1..100 (linear interpolation) = 10.9, P90 = 90.1: strictly inside are 11..90.
    assert np.flatnonzero(window(v, 10, 90)).tolist() == list(range(10, 90))
    assert window(v, 0, 100).all()
    v[3] = np.nan
    assert not window(v, 0, 100)[3]


def test_keep_fraction_is_met_within_one_percent():
    rng = np.random.default_rng(0)
    n = 2000
    ld, irm = rng.normal(size=n), 0.6 * rng.normal(size=n) + rng.standard_t(3, size=n)
    ld[:37] = np.nan  # unscored rows are never kept and do not count
    for keep in (0.5, 0.64, 0.8):
        mask, width = lossdiff_irm(ld, irm, keep=keep)
        frac = mask.sum() / np.isfinite(ld).sum()
        assert abs(frac - keep) <= 0.01, (keep, frac)
        assert width > keep  # an intersection of two windows needs wider windows
        assert not mask[:37].any()
        # the solved width reproduces the mask by the definition
        assert (mask == (middle_window(np.where(np.isfinite(ld), ld, np.nan), width)
                         & middle_window(np.where(np.isfinite(ld), irm, np.nan), width))).all()
        assert abs(keep_middle(irm, keep).mean() - keep) <= 0.01


def test_overlap_coefficient_by_hand():
    a = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    b = np.array([0, 0, 1, 1, 1, 0], dtype=bool)
    assert overlap_coefficient(a, b) == pytest.approx(2 / 3)
    assert overlap_coefficient(["x", "y", "z"], ["y", "q"]) == pytest.approx(1 / 2)
    assert np.isnan(overlap_coefficient(a, np.zeros(6, dtype=bool)))


def test_orderings_and_rules():
    v = np.array([5.0, -1.0, 3.0, np.nan, 0.5, 2.0])
    assert np.flatnonzero(top_fraction(v, 0.4)).tolist() == [0, 2]
    assert np.flatnonzero(top_fraction(np.abs(v), 0.4, largest=False)).tolist() == [1, 4]
    m = random_fraction(np.isfinite(v), 0.6, seed=1)
    assert m.sum() == 3 and not m[3]
    table = pd.DataFrame({"valid": np.isfinite(v), "if": v, "irm": v, "lossdiff": v,
                          "score_gap": v})
    for rule in ("lossdiff_irm", "tif", "lossdiff", "irm", "top_if", "abs_irm_small", "score_gap",
                 "random"):
        assert not apply_rule(table, rule, 0.6)[3]
    with pytest.raises(ValueError, match="needs the score"):
        apply_rule(table.drop(columns=["if"]), "tif", 0.6)


def test_if_thirds_partition_by_hand_and_complement_is_what_lossdiff_irm_drops():
    v = np.array([5.0, np.nan, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0])  # 7 scored pairs
    table = pd.DataFrame({"if": v, "lossdiff": v, "irm": -v, "valid": np.isfinite(v)})
    small, medium, large = (apply_rule(table, r, 0.5)
                            for r in ("if_small", "if_medium", "if_large"))
    # ranks: 1.0, 2.0, 3.0 | 5.0, 7.0 | 8.0, 9.0 (np.array_split gives sizes 3, 2, 2)
    assert v[small].tolist() == [1.0, 3.0, 2.0]
    assert v[medium].tolist() == [5.0, 7.0]
    assert v[large].tolist() == [9.0, 8.0]
    assert not (small & medium).any() and not (medium & large).any() and not small[1]
    kept = apply_rule(table, "lossdiff_irm", 0.5)
    drop = apply_rule(table, "lossdiff_irm_complement", 0.5)
    assert not (kept & drop).any() and ((kept | drop) == np.isfinite(v)).all()


def test_the_readme_plugin_rule_is_named_in_a_config_and_selects(tmp_path, monkeypatch):
    """docs/guide.md's `my_rules.py` and its YAML lines, as written: the config loads with the rule
    as an arm, and the rule keeps the pairs with the smallest IRM (checked against a sort)."""
    import re
    from pathlib import Path

    import pandas as pd

    import prefsift
    from prefsift.pipeline import RunConfig
    from prefsift.selection.rules import RULES

    text = (Path(__file__).resolve().parents[2] / "docs" / "guide.md").read_text(encoding="utf-8")
    section = text[text.index("### Your own rules and judges"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    config = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_rules.py").write_text(code)
    (tmp_path / "run.yaml").write_text(config)
    try:
        cfg = RunConfig.from_yaml(tmp_path / "run.yaml")
        # building a config runs no code
        assert "low_margin" in cfg.arms and "low_margin" not in RULES
        cfg.load_plugins()  # a run does this when it starts
        assert "low_margin" in RULES
        irm = np.array([0.3, np.nan, -1.0, 2.0, 0.1, -0.5])
        table = pd.DataFrame({"id": list("abcdef"), "valid": ~np.isnan(irm), "reason": "",
                              "irm": irm})
        mask = prefsift.select(table, "low_margin", keep=0.4)  # 2 of the 5 scored pairs
        assert table.loc[mask, "id"].tolist() == ["c", "f"]
        with pytest.raises(ValueError, match="needs the score"):
            prefsift.select(table.drop(columns="irm"), "low_margin", keep=0.4)
    finally:
        RULES.unregister("low_margin") if "low_margin" in RULES else None


def test_a_plugin_that_fails_half_way_registers_nothing(tmp_path):
    """A plugin registers a rule, then raises: the error names the plugin, the rule is gone again,
    and the corrected file registers cleanly (no "registered already")."""
    from prefsift.core.errors import ConfigError
    from prefsift.core.registry import import_plugins
    from prefsift.selection.rules import RULES

    plugin = tmp_path / "half.py"
    body = ("import prefsift\n"
            "@prefsift.register_rule('half_rule', help='x')\n"
            "def half_rule(table, keep, seed):\n"
            "    return table['valid'].to_numpy()\n")
    plugin.write_text(body + "raise RuntimeError('broken on purpose')\n")
    with pytest.raises(ConfigError, match="plugins\\[0\\].*broken on purpose"):
        import_plugins([str(plugin)])
    assert "half_rule" not in RULES
    plugin.write_text(body)
    try:
        import_plugins([str(plugin)])
        assert "half_rule" in RULES
    finally:
        RULES.unregister("half_rule")


def test_intersected_asymmetric_windows_by_hand():
    import numpy as np
    import pandas as pd

    from prefsift.core.errors import ConfigError
    from prefsift.selection.rules import window_of

    # 11 pairs; pair 10 has no IRM, so both scores' percentiles are over pairs 0-9 only.
    ld = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100], dtype=float)
    irm = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, np.nan])
    table = pd.DataFrame({"id": range(11), "valid": True, "reason": "", "lossdiff": ld, "irm": irm})
    mask, label = window_of(table, "lossdiff:10:90, irm:0:50")
    # lossdiff over pairs 0-9: P10 = 0.9, P90 = 8.1 → keeps 1..8; irm: P0 = 0 (kept), P50 = 4.5 →
    # keeps irm < 4.5, i.e. pairs 5..9; together pairs 5..8.
    assert np.flatnonzero(mask).tolist() == [5, 6, 7, 8]
    assert label == "window lossdiff (10, 90) and irm (0, 50)"
    with pytest.raises(ConfigError, match="no score 'if'"):
        window_of(table, "lossdiff:10:90,if:0:50")


def test_run_config_takes_window_arms_and_names_a_bad_one():
    from prefsift.core.errors import ConfigError
    from prefsift.pipeline import RunConfig

    cfg = RunConfig(windows={"ld_asym": "lossdiff:10:90,irm:0:80"}, arms=["full", "ld_asym"])
    assert cfg.windows == {"ld_asym": "lossdiff:10:90,irm:0:80"}
    with pytest.raises(ConfigError, match=r"windows\.ld_asym.*SCORE:LOW:HIGH"):
        RunConfig(windows={"ld_asym": "lossdiff:10"}, arms=["ld_asym"])
    with pytest.raises(ConfigError, match=r"windows\.tif.*names a rule"):
        RunConfig(windows={"tif": "if:5:95"}, arms=["tif"])


def test_split_windows_by_hand_and_at_one_half_the_papers_rule():
    from prefsift.selection.rules import split_windows

    rng = np.random.default_rng(3)
    v = rng.permutation(100).astype(float)  # distinct values 0..99
    # split 0: only the top is cut, so the 64 smallest are kept; split 1: only the bottom, the 64
    # largest.
    low_only = split_windows([v], keep=0.64, split=0.0)[0]
    assert set(v[low_only]) == set(range(64))
    high_only = split_windows([v], keep=0.64, split=1.0)[0]
    assert set(v[high_only]) == set(range(36, 100))
    # split 0.25 with width 0.6: cut 10 % below and 30 % above → the values with P10 < v < P70.
    lo, hi = np.percentile(v, [10, 70])
    assert (split_windows([v], split=0.25, width=0.6)[0] == ((v > lo) & (v < hi))).all()
    ld, irm = rng.normal(size=300), rng.normal(size=300)
    ld[7], irm[11] = np.nan, np.nan
    paper, w = lossdiff_irm(ld, irm, keep=0.64)
    mine, w2 = split_windows([ld, irm], keep=0.64, split=0.5)
    assert (paper == mine).all() and w == w2


def test_tail_grid_cuts_each_tail_on_every_score():
    from prefsift.selection.rules import tail_grid

    grid = tail_grid(("lossdiff", "irm"), [0, 50])
    assert (grid
            == ["lossdiff:0:100,irm:0:100", "lossdiff:0:50,irm:0:50", "lossdiff:50:100,irm:50:100"])


def test_calibrated_arms_candidates_and_settings():
    from prefsift.core.errors import ConfigError
    from prefsift.pipeline import RunConfig
    from prefsift.pipeline.calibrate import CalibrationSettings, candidates
    from prefsift.selection.rules import window_of

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"id": range(200), "valid": True, "reason": "",
                          "lossdiff": rng.normal(size=200),
                          "irm": rng.normal(size=200), "if": rng.normal(size=200)})
    st = CalibrationSettings(splits=[0.5, 1.0], tails=[0, 20])
    at_keep = candidates(table, "calibrated_lossdiff_irm", 0.64, st)
    assert [d["split"] for d, _ in at_keep] == [0.5, 1.0]
    assert (at_keep[0][1] == lossdiff_irm(table["lossdiff"], table["irm"], keep=0.64)[0]).all()
    for desc, mask in at_keep:  # the description is the window itself
        assert (abs(mask.mean() - 0.64) <= 0.0125
                and (window_of(table, desc["window"])[0] == mask).all())
    free = candidates(table, "calibrated_tif_free", 0.64, st)
    assert [(d["low"], d["high"]) for d, _ in free] == [(0, 0), (0, 20), (20, 0), (20, 20)]
    assert free[3][1].sum() == 120  # 60 % of 200 distinct values strictly inside (P20, P80)
    cfg = RunConfig(arms=["full", "calibrated_lossdiff_irm_free"], calibration={"tails": [0, 15]})
    assert cfg.calibration.tails == [0, 15]
    with pytest.raises(ConfigError, match=r"calibration\.splits"):
        RunConfig(calibration={"splits": [1.5]})
    with pytest.raises(ConfigError, match=r"arms.*calibrated.*route 'rm_rl'"):
        RunConfig(route="rm_rl", arms=["calibrated_tif"])
    with pytest.raises(ConfigError, match=r"needs the if score"):
        RunConfig(arms=["calibrated_tif"], scores={"scores": "irm,lossdiff"})
