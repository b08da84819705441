"""experiments/tables.py: the numbers docs/results.md quotes, read back from run folders."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

spec = importlib.util.spec_from_file_location("tables",
                                              Path(__file__).parents[1] / "experiments"
                                              / "tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def _run(folder: Path, ids, if_, lossdiff, irm, tif, pair_type=None):
    (folder / "score").mkdir(parents=True)
    scores = pd.DataFrame({"id": ids, "if": if_, "lossdiff": lossdiff, "irm": irm})
    if pair_type is not None:
        scores["pair_type"] = pair_type
    scores.to_parquet(folder / "score" / "scores.parquet", index=False)
    pd.DataFrame({"id": ids, "valid": True, "reason": "", "tif": tif}).to_parquet(folder
            / "selection.parquet",
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
    _run(tmp_path / "b", [ids[i] for i in order], if_b[order], ld_b[order], irm[order],
         tif_b[order])
    out = tables.compare_table(tmp_path / "a", tmp_path / "b")
    flips = np.sign(if_a) != np.sign(if_b)
    assert f"| Spearman ρ of IF between the models | {spearmanr(if_a, if_b)[0]:.3f}" in out
    assert (f"{100 * flips.mean():.1f} % ({flips.sum()} of 40; by type: clean "
            f"{100 * flips[::2].mean():.0f} %" in out)
    assert "| overlap of the two TIF sets / LossDiff-IRM sets | 0.500 / – |" in out
    assert f"| B's own r(LossDiff, IF) / r(IRM, IF) | {np.corrcoef(ld_b, if_b)[0, 1]:.3f}" in out


spec_labs = importlib.util.spec_from_file_location("labs",
                                                   Path(__file__).parents[1] / "experiments"
                                                   / "labs.py")
labs = importlib.util.module_from_spec(spec_labs)
spec_labs.loader.exec_module(labs)


def _lab_run(folder: Path, prefs: dict, n_prompts: int, answers: int):
    """A finished run's files as `prefsift run` writes them: config.yaml and each arm's
    eval.json."""
    import json

    import yaml

    folder.mkdir(parents=True)
    arms = sorted({a for a, _ in prefs})
    seeds = sorted({s for _, s in prefs})
    (folder / "config.yaml").write_text(yaml.safe_dump({"arms": arms, "seeds": seeds,
                                                        "eval_prompts": n_prompts,
                                                        "answers_per_prompt": answers,
                                                        "keep": 0.64}))
    (folder / "manifest.json").write_text(json.dumps({"stages": {f"eval/{a}/{s}": {}
                                                                 for a, s in prefs}}))
    # an evaluation the manifest does not record: left out
    (folder / "arms" / "x-seed9").mkdir(parents=True)
    (folder / "arms" / "x-seed9" / "eval.json").write_text(json.dumps({"prefs": [1.0] * answers
                                                                        * n_prompts, "n_pairs": 10,
                                                                       "win_rate": {
                                                                           "n": n_prompts}}))
    for (arm, seed), p in prefs.items():
        (folder / "arms" / f"{arm}-seed{seed}").mkdir(parents=True)
        (folder / "arms" / f"{arm}-seed{seed}" / "eval.json").write_text(json.dumps(
            {"prefs": list(map(float, p)), "n_pairs": 10, "win_rate": {"n": n_prompts}}))


def test_labs_pool_paired_differences_by_hand(tmp_path):
    rng = np.random.default_rng(5)
    truth = {}
    for lab, (n_p, seeds) in enumerate([(6, [0, 1]), (4, [0, 1, 2])]):
        prefs = {(arm, s): rng.choice([0.0, 0.5, 1.0], size=2 * n_p)
                 for arm in ("full", "random", "x") for s in seeds}
        # the baseline misses a seed: x is compared on the seeds both have
        del prefs[("random", seeds[-1])]
        _lab_run(tmp_path / f"lab{lab}", prefs, n_p, 2)
        common = seeds[:-1]
        # by hand: a prompt's value is the mean of its two answers (answer-major), then the mean
        # over seeds
        per_prompt = lambda arm, s: prefs[(arm, s)].reshape(2, n_p).mean(axis=0)  # noqa: E731
        truth[lab] = np.mean([per_prompt("x", s) - per_prompt("random", s) for s in common])
    rows = {r["arm"]: r for r in labs.arm_rows([labs.lab_values(tmp_path / f"lab{i}")
                                                for i in range(2)], n_boot=300)}
    d = rows["x"]["d_random"]
    assert d.mean == pytest.approx((truth[0] + truth[1]) / 2, abs=1e-12)
    assert [x.mean for x in d.per_lab] == pytest.approx([truth[0], truth[1]], abs=1e-12)
    assert d.low <= d.mean <= d.high and "d_random" not in rows["random"]
    out = labs.labs_table([tmp_path / "lab0", tmp_path / "lab1"], n_boot=300)
    assert "| x (2/3 seeds) |" in out and "machine:" in out and "Smallest difference" in out
    assert d.low <= d.mean <= d.high and d.within_low <= d.mean <= d.within_high
    only = labs.labs_table([tmp_path / "lab0", tmp_path / "lab1"], n_boot=300,
                           baselines=("random",), arms={"x", "random"})
    assert "| x (2/3 seeds) |" in only and "| full (2/3 seeds) |" in out and "| full" not in only


def test_calibration_table_reads_the_choice_and_the_arm_cost(tmp_path):
    import json

    run = tmp_path / "lab0"
    _lab_run(run, {("calibrated_lossdiff_irm", s): np.ones(4) for s in (0, 1)}, 2, 2)
    cands = [{"window": "lossdiff:0:64", "split": 0.0, "n_pairs": 64, "win_rate": 0.61},
             {"window": "lossdiff:18:82", "split": 0.5, "n_pairs": 64, "win_rate": 0.55}]
    folder = run / "calibrate" / "calibrated_lossdiff_irm"
    folder.mkdir(parents=True)
    (folder / "calibration.json").write_text(json.dumps({
        "arm": "calibrated_lossdiff_irm", "candidates": cands, "chosen": 0, "probe_seconds": 12.4,
        "probe_steps": 30}))
    for s, sec in ((0, 40.2), (1, 41.9)):  # the arm's own training, one stage.json per seed
        (run / "arms" / f"calibrated_lossdiff_irm-seed{s}"
         / "stage.json").write_text(json.dumps({"seconds": sec}))
    row = labs.calibration_table([run]).splitlines()[2]
    assert row == ("| `lab0` | calibrated_lossdiff_irm | 2 | lossdiff:0:64 | 64 | 61.0 % / 55.0 % "
                   "| 12 s (30 steps) | 82 s (2 seeds) |")


def test_curves_table_reads_each_seeds_validation_curve(tmp_path):
    import json

    # (arm, seed): [(step, eval_loss, eval margin)], written out of step order on purpose
    curves = {
        ("if_small", 0): [(10, 0.61, 0.5), (0, 0.475, 0.77), (20, 0.99, 0.21)],
        ("if_small", 1): [(0, 0.475, 0.77), (10, 0.58, 0.4), (20, 1.01, 0.27)],
        ("if_medium", 0): [(0, 0.475, 0.77), (10, 0.41, 1.2), (20, 0.388, 1.6)],
        ("if_medium", 1): [(0, 0.475, 0.77), (10, 0.406, 1.3), (20, 0.411, 1.67)],
    }
    for lab in ("lab0", "lab1"):
        for (arm, seed), pts in curves.items():
            folder = tmp_path / lab / "arms" / f"{arm}-seed{seed}"
            folder.mkdir(parents=True)
            log = [{"loss": 0.7, "step": 5}] + [{"eval_loss": lo, "eval_rewards/margins": m,
                                                 "step": st}
                                                # training entries carry no eval_loss
                                                for st, lo, m in pts]
            (folder / "stage.json").write_text(json.dumps({"log": log}))
        # a training the run never judged (killed, or left from another pass): not counted
        stray = tmp_path / lab / "arms" / "if_small-seed7"
        stray.mkdir()
        (stray / "stage.json").write_text(json.dumps({"log": [{"eval_loss": 0.1, "step": 0}]}))
        (tmp_path / lab / "manifest.json").write_text(json.dumps({"stages": {f"eval/{a}/{sd}": {}
                                                                             for a, sd in curves}}))
    rows = labs.curves_table([tmp_path / "lab0", tmp_path / "lab1"]).splitlines()
    by_arm = {r.split(" | ")[0].lstrip("| "): r for r in rows[2:]}
    # by hand: small never goes below its start (lowest = step 0), medium's lowest at step 20 / 10
    assert "| 0.475 → 0.475 (0) → 0.990–1.010; 0.77 → 0.21–0.27 (2 seeds) |" in by_arm["if_small"]
    assert ("| 0.475 → 0.388–0.406 (10–20) → 0.388–0.411; 0.77 → 1.60–1.67 (2 seeds) |"
            in by_arm["if_medium"])


def test_noise_table_adds_rules_no_arm_trained(tmp_path):
    import yaml

    ids = [f"p{i}" for i in range(10)]
    run = tmp_path / "run"
    _run(run, ids, np.zeros(10), np.zeros(10), np.arange(10.0), np.ones(10, bool),
         pair_type=["clean", "flipped", "clean", "clean", "flipped"] + ["clean"] * 5)
    scores = pd.read_parquet(run / "score" / "scores.parquet")
    scores["label_correct"] = [i not in (0, 5, 9) for i in range(10)]
    scores.to_parquet(run / "score" / "scores.parquet", index=False)
    (run / "config.yaml").write_text(yaml.safe_dump({"keep": 0.6}))
    out = tables.dropped_table(run, ["irm"])
    # by hand: IRM = 0..9, its middle 60 % keeps IRM 2..7, so it drops pairs 0, 1, 8, 9: flipped {1,
    # 4} -> 1 of 2; wrong labels {0, 5, 9} -> 2 of 3. The run's own TIF column (every pair kept)
    # drops none.
    assert "| irm | 0.50 | 0.67 |" in out and "| tif | 0.00 | 0.00 |" in out
    assert "2 flipped pairs, 3 wrong-label pairs in all" in out


def _experiment(name: str):
    """experiments/NAME.py as a module (its own imports of the sibling scripts resolve)."""
    import sys

    folder = Path(__file__).parents[1] / "experiments"
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recommendations_hit_rate_and_regret_by_hand(tmp_path):
    """experiments/leaderboard.py: per lab, the test-best candidate (mean WinRate over seeds),
    whether the recommendation is it, the regret and the gain over all the data; and seed by
    seed."""
    import json

    lb = _experiment("leaderboard")
    n_p = 5
    # Constant preferences: an arm's per-prompt value is its constant, so every mean is known
    # exactly.
    wr = {0: {"full": [0.50, 0.50], "a": [0.60, 0.40], "b": [0.55, 0.56], "random": [0.5, 0.5]},
          1: {"full": [0.45, 0.47], "a": [0.50, 0.52], "b": [0.40, 0.60], "random": [0.5, 0.5]}}
    chosen = {0: "a", 1: "a"}
    for lab, arms in wr.items():
        prefs = {(arm, s): np.full(2 * n_p, v[s]) for arm, v in arms.items() for s in (0, 1)}
        _lab_run(tmp_path / f"lab{lab}", prefs, n_p, 2)
        (tmp_path / f"lab{lab}" / "recommend").mkdir()
        (tmp_path / f"lab{lab}" / "recommend" / "recommendation.json").write_text(json.dumps({
            "chosen": chosen[lab], "why": "", "probe_seconds": 7.0,
            "candidates": [{"candidate": c} for c in ("full", "a", "b", "gone")]}))
    runs = [tmp_path / "lab0", tmp_path / "lab1"]
    rows = lb.recommendation_rows(runs, [labs.lab_values(r) for r in runs])
    # lab 0: means full 0.50, a 0.50, b 0.555 → best b; a's regret 0.055, a − full 0.
    # Seed 0's best is a (0.60), seed 1's is b (0.56): one seed of two, regret (0 + 0.16) / 2.
    assert rows[0]["best"] == "b" and not rows[0]["hit"]
    assert rows[0]["regret"] == pytest.approx(0.055) and rows[0]["vs_full"] == pytest.approx(0.0)
    assert rows[0]["seed_hits"] == 1 and rows[0]["seed_regret"] == pytest.approx(0.08)
    # lab 1: full 0.46, a 0.51, b 0.50 → best a, the choice: a hit, no regret, +0.05 over all the
    # data.
    assert rows[1]["best"] == "a" and rows[1]["hit"] and rows[1]["regret"] == pytest.approx(0.0)
    assert rows[1]["vs_full"] == pytest.approx(0.05) and rows[1]["seed_hits"] == 1  # seed 1: b 0.60
    assert rows[1]["candidates"] == 3  # "gone" has no evaluation


def test_testbeds_headroom_best_share_and_losers_by_hand(tmp_path):
    """experiments/testbeds.py: per testbed, the oracle's gain over all the data, whether it can
    rank, the best contestant's gain and share of the headroom, and the contestants below all the
    data."""
    tb = _experiment("testbeds")
    n_p = 4
    # Constant preferences: every interval collapses to its mean, so each verdict is exact.
    room = {"full": 0.50, "random": 0.48, "clean": 0.60, "a": 0.56, "b": 0.45, "c": 0.52}
    flat = {**room, "clean": 0.50}  # the oracle wins nothing: this testbed cannot rank
    for name, arms in (("room", room), ("flat", flat)):
        for lab in (0, 1):
            shift = 0.02 * lab  # the second lab is easier for every arm: differences unchanged
            _lab_run(tmp_path / f"{name}{lab}",
                     {(a, s): np.full(2 * n_p, v + shift) for a, v in arms.items()
                      for s in (0, 1)}, n_p, 2)
    row, recs = tb.testbed_row("room", [tmp_path / "room0", tmp_path / "room1"], "clean", 200)
    assert row["can_rank"] and row["best"] == "a" and not recs
    assert (row["oracle_full"].mean == pytest.approx(0.10)
            and row["oracle_random"].mean == pytest.approx(0.12))
    assert row["best_full"].mean == pytest.approx(0.06) and row["best_share"] == pytest.approx(0.6)
    assert [s.mean for s in row["best_lab_shares"]] == pytest.approx([0.6, 0.6])
    assert ([x["arm"] for x in row["losers"]] == ["b"]
            and row["losers"][0]["d_full"].mean == pytest.approx(-0.05))
    flat_row, _ = tb.testbed_row("flat", [tmp_path / "flat0", tmp_path / "flat1"], "clean", 200)
    assert not flat_row["can_rank"] and flat_row["oracle_full"].mean == pytest.approx(0.0)


def test_testbeds_take_the_share_against_the_best_of_three_oracles(tmp_path):
    """With the three oracle arms, the headroom is the best one's (drop_wrong here, +0.14), every
    oracle's gain is reported, and no oracle is a contestant."""
    tb = _experiment("testbeds")
    arms = {"full": 0.50, "random": 0.48, "clean": 0.60, "drop_wrong": 0.64, "oracle_relabel": 0.62,
            "a": 0.57}
    for lab in (0, 1):
        _lab_run(tmp_path / f"lab{lab}",
                 {(a, s): np.full(8, v) for a, v in arms.items() for s in (0, 1)}, 4, 2)
    row, _ = tb.testbed_row("t", [tmp_path / "lab0", tmp_path / "lab1"], "best", 200)
    assert row["oracle"] == "drop_wrong" and row["oracle_full"].mean == pytest.approx(0.14)
    assert {k: round(v.mean, 6) for k, v in row["oracles"].items()} == {"clean": 0.1,
                                                                        "drop_wrong": 0.14,
                                                                        "oracle_relabel": 0.12}
    # 0.5, not 0.7 against clean
    assert row["best"] == "a" and row["best_share"] == pytest.approx(0.07 / 0.14)
    assert row["contestants"] == 1
    named, _ = tb.testbed_row("t", [tmp_path / "lab0", tmp_path / "lab1"], "clean", 200)
    assert named["oracle"] == "clean" and named["best_share"] == pytest.approx(0.7)


def test_judges_table_reads_each_judges_choice_against_the_same_arms(tmp_path):
    import json

    jd = _experiment("judges")
    # one lab, two copies probed by two judges: the oracle chose a (the test-best), the loss chose
    # full
    values = {"full": 0.50, "a": 0.56, "b": 0.53}
    for copy, chosen in (("oracle", "a"), ("loss", "full")):
        _lab_run(tmp_path / copy, {(x, 0): np.full(8, v) for x, v in values.items()}, 4, 2)
        (tmp_path / copy / "recommend").mkdir()
        (tmp_path / copy / "recommend" / "recommendation.json").write_text(json.dumps({
            "chosen": chosen, "why": "", "probe_seconds": 1.0,
            "candidates": [{"candidate": c} for c in values]}))
    rows = {j: jd.summary(jd.judge_rows([tmp_path / j])) for j in ("oracle", "loss")}
    assert rows["oracle"] == {"labs": 1, "hits": 1, "regret": pytest.approx(0.0),
                              "vs_full": pytest.approx(0.06), "below_full": 0}
    assert rows["loss"]["hits"] == 0 and rows["loss"]["regret"] == pytest.approx(0.06)
    assert rows["loss"]["vs_full"] == pytest.approx(0.0)


def test_designs_compare_each_arm_with_itself_paired(tmp_path):
    """experiments/designs.py: the same arm under two validation designs, paired: constant
    preferences make every number exact (x gains 0.04 over full with one design, 0.01 with the
    other)."""
    ds = _experiment("designs")
    for design, x in (("a", 0.54), ("b", 0.51)):
        for lab in (0, 1):
            _lab_run(tmp_path / f"{design}{lab}", {(arm, 0): np.full(8, v) for arm, v in
                                                   (("full", 0.50), ("random", 0.49), ("x", x))}, 4,
                     2)
    rows = {r["arm"]: r for r in ds.design_rows([tmp_path / "a0", tmp_path / "a1"],
                                               [tmp_path / "b0", tmp_path / "b1"], 200)}
    assert (rows["x"]["first"].mean == pytest.approx(0.04)
            and rows["x"]["second"].mean == pytest.approx(0.01))
    assert (rows["x"]["change"].mean == pytest.approx(0.03)
            and rows["full"]["change"].mean == pytest.approx(0.0))
