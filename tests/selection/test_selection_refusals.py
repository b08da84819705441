"""A score that cannot rank the pairs is refused, never used quietly: a constant score (θ = π_ref
makes IRM 0 for every pair) and a rule that cannot keep the asked fraction say what they kept and
why — `UserError` in the API, one `error:` line and exit 2 on the CLI, no selection written."""

import numpy as np
import pandas as pd
import pytest

import prefsift
from prefsift.core.errors import UserError
from prefsift.scoring.kinds import constant_problem


def _table(irm, lossdiff):
    n = len(irm)
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "valid": True, "reason": "",
                         "irm": np.asarray(irm, float), "abs_irm": np.abs(np.asarray(irm, float)),
                         "lossdiff": np.asarray(lossdiff, float), "random": np.linspace(0, 1, n)})


def test_a_constant_score_is_named_and_a_varying_one_is_not():
    assert constant_problem(np.zeros(50)) == "is 0 for all 50 scored pairs (spread 0)"
    # float noise on 120
    assert constant_problem(np.full(4, 120.0) + np.array([0, 1e-6, 0, 0])) is not None
    # a small warm-up's margins are real
    assert constant_problem(np.array([0.0, 1e-4, 2e-4])) is None
    # NaN rows are not scored
    assert constant_problem(np.array([np.nan, 1.0, 1.0, np.nan, 2.0])) is None


def test_lossdiff_irm_with_a_constant_irm_is_refused_with_the_cause():
    # By hand: every IRM window of any width either keeps all 50 pairs or none, so the width that
    # comes closest to 64 % keeps all 50: the rule cannot meet 32 pairs.
    table = _table(np.zeros(50), np.arange(50.0))
    with pytest.raises(UserError, match=r"kept 50 of 50 scored pairs \(100.0%\), not 64%.*irm has "
                                        r"1 distinct value.*θ is the reference itself"):
        prefsift.select(table, "lossdiff_irm", keep=0.64)


def test_distinct_scores_keep_the_fraction_to_the_pair():
    rng = np.random.default_rng(0)
    table = _table(rng.normal(size=50), rng.normal(size=50))
    for rule in ("lossdiff_irm", "irm", "lossdiff", "abs_irm_small", "random"):
        kept = int(prefsift.select(table, rule, keep=0.64).sum())
        # 0.64 x 50 = 32, within the stated tolerance of 2 pairs
        assert abs(kept - 32) <= 2, (rule, kept)


def test_heavy_ties_are_refused_with_the_largest_tie():
    # IRM takes two values, 25 pairs each: a middle window keeps 0, 25 or 50 pairs, never 32.
    table = _table(np.repeat([0.0, 1.0], 25), np.arange(50.0))
    with pytest.raises(UserError, match=r"irm at keep 0.64 kept (0|25|50) of 50.*irm has 2 "
                                        r"distinct value\(s\) over 50 scored pairs, the largest "
                                        r"tie 25 pairs"):
        prefsift.select(table, "irm", keep=0.64)


def test_the_cli_says_it_in_one_line_and_writes_nothing(tmp_path, capsys):
    from prefsift.cli import main

    path = tmp_path / "scores.parquet"
    _table(np.zeros(20), np.arange(20.0)).to_parquet(path, index=False)
    code = main(["select", "--scores", str(path), "--rule", "lossdiff_irm", "--out",
                 str(tmp_path / "sel")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert (code == 2 and len(err) == 1
            and err[0].startswith("error: select: lossdiff_irm at keep 0.64 kept 20 of 20"))
    assert not (tmp_path / "sel" / "selection.parquet").exists()
