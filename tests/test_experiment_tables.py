"""experiments/tables.py: the numbers docs/results.md quotes, read back from run folders."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

spec = importlib.util.spec_from_file_location("tables", Path(__file__).parents[1] / "experiments" / "tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def _run(folder: Path, ids, if_, lossdiff, irm, tif, pair_type=None):
    (folder / "score").mkdir(parents=True)
    scores = pd.DataFrame({"id": ids, "if": if_, "lossdiff": lossdiff, "irm": irm})
    if pair_type is not None:
        scores["pair_type"] = pair_type
    scores.to_parquet(folder / "score" / "scores.parquet", index=False)
    pd.DataFrame({"id": ids, "valid": True, "reason": "", "tif": tif}).to_parquet(folder / "selection.parquet",
                                                                                 index=False)


def test_compare_two_models_matches_an_independent_computation(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(40)]
    if_a, if_b = rng.normal(size=40), rng.normal(size=40)
    ld_a, ld_b, irm = rng.normal(size=40), rng.normal(size=40), rng.normal(size=40)
    tif_a, tif_b = np.arange(40) < 20, np.arange(40) >= 10  # 10 shared of 20 and 30
    types = np.where(np.arange(40) % 2 == 0, "clean", "flipped")
    _run(tmp_path / "a", ids, if_a, ld_a, irm, tif_a, types)
    order = rng.permutation(40)  # B lists the pairs in another order: matching is by id
    _run(tmp_path / "b", [ids[i] for i in order], if_b[order], ld_b[order], irm[order], tif_b[order])
    out = tables.compare_table(tmp_path / "a", tmp_path / "b")
    flips = np.sign(if_a) != np.sign(if_b)
    assert f"| Spearman ρ of IF between the models | {spearmanr(if_a, if_b)[0]:.3f}" in out
    assert f"{100 * flips.mean():.1f} % ({flips.sum()} of 40; by type: clean {100 * flips[::2].mean():.0f} %" in out
    assert "| overlap of the two TIF sets / LossDiff-IRM sets | 0.500 / – |" in out
    assert f"| B's own r(LossDiff, IF) / r(IRM, IF) | {np.corrcoef(ld_b, if_b)[0, 1]:.3f}" in out
