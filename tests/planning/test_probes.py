"""The planner's counts against what the engine and TRL actually do, and `score --plan` / `plan`
end to end (the predictions' accuracy is measured in benchmarks/planner.py, not in a timed test)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from prefsift.data.tokenization import TokenizedPair
from prefsift.planning.probes import engine_tokens, trl_steps
from prefsift.scoring.logprobs import EngineStats, LogprobSettings, compute_pair_logps
from tests.tiny import TINY_RUN


def test_engine_tokens_are_the_tokens_the_engine_processes():
    from tests.tiny import tiny_model

    rng = np.random.default_rng(0)
    pairs = [TokenizedPair(list(rng.integers(3, 60, rng.integers(1, 9))),
                           list(rng.integers(3, 60, rng.integers(1, 14))),
                           list(rng.integers(3, 60, rng.integers(1, 14)))) for _ in range(57)]
    model = tiny_model(64, seed=0)
    for budget, max_length in ((64, None), (200, 12), (1024, None)):
        stats = EngineStats()
        compute_pair_logps(model, pairs, 0,
                           LogprobSettings(max_length=max_length, token_budget=budget), False,
                           stats=stats)
        assert engine_tokens(pairs, max_length, budget) == stats.processed_tokens


def test_trl_steps_count_the_steps_trl_takes_and_pad_each_to_its_longest():
    lengths = [5, 9, 3, 12, 7, 7, 2, 11, 4, 6]
    for batch, epochs in ((4, 1.0), (3, 2.0), (8, 1.5)):
        steps = trl_steps(lengths, batch, epochs, seed=1)
        assert len(steps) == math.ceil(math.ceil(len(lengths) / batch) * epochs)
        # every step holds whole pairs, each of its 2 x (pairs) sequences padded to one longest
        # length
        for s in steps:
            assert any(s == 2 * k * m for k in range(1, batch + 1) for m in set(lengths))
        # pairs of one length L: an epoch's steps hold every pair once, 2 x n x L tokens in all
        assert sum(trl_steps([6] * len(lengths), batch, 1.0, seed=1)) == 2 * len(lengths) * 6
    # padded to the longest: never fewer tokens than the pairs' own, never more than all padded to
    # the max
    one = trl_steps(lengths, 4, 1.0)
    assert 2 * sum(lengths) <= sum(one) <= 2 * len(lengths) * max(lengths)


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_plan_then_run_prints_predicted_against_actual(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    # A calibrated arm and the auto arm too: their probes are a stage of the plan of their own.
    cfg.write_text(yaml.safe_dump({**TINY_RUN, "out": str(tmp_path / "run"),
                                   "arms": TINY_RUN["arms"] + ["calibrated_lossdiff_irm", "auto"],
                                   "calibration": {"splits": [0.5, 1.0], "prompts": 8, "answers": 1,
                                                   "by": "judge",
                                                   "candidates": ["full", "lossdiff_irm"]}}))
    r = subprocess.run([sys.executable, "-m", "prefsift", "plan", str(cfg)], capture_output=True,
                       text=True, env=_env(), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    stages = {s["stage"]: s for s in plan["stages"]}
    assert {"warmup", "scores", "arms", "evaluation", "calibration"} <= set(stages)
    # 2 windows, 2 candidates
    assert stages["calibration"]["basis"].startswith("4 probes of 0.25 epoch")
    assert all(s["seconds"] > 0 for k, s in stages.items() if k != "data (ran)")
    assert stages["warmup"]["flops"] > 0 and "steps" in stages["warmup"]["basis"]
    r = subprocess.run([sys.executable, "-m", "prefsift", "run", str(cfg), "--quiet"],
                       capture_output=True, text=True, env=_env(), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    table = r.stdout[r.stdout.index("predicted (plan.json) vs actual"):]
    for stage in ("warmup", "scores", "arms", "evaluation", "calibration"):
        assert stage in table


def test_the_plan_shows_selective_dpos_fold_models_and_the_treatment_arms(tmp_path):
    from prefsift.pipeline import RunConfig
    from prefsift.planning.run import plan_run

    cfg = RunConfig.from_dict({**TINY_RUN, "out": str(tmp_path / "run"),
                               "arms": ["full", "cdpo", "selective_dpo", "soft_tif"],
                               "scores": {"scores": "irm,lossdiff,if,heldout", "folds": 3}})
    plan = plan_run(cfg, log=lambda *a, **k: None)
    stages = {s.stage: s for s in plan.stages}
    folds = stages["selective folds"]
    assert (folds.basis.startswith("3 warm-up trainings on 2/3 of the pairs") and folds.seconds > 0
            and folds.flops > 0)
    # three trainings on 2/3 of the pairs each: about twice the warm-up's training FLOPs (padding
    # varies with the pairs drawn), plus one forward pass over the pairs (a quarter of a training's
    # 8 per weight and token)
    assert 1.7 * stages["warmup"].flops <= folds.flops <= 2.6 * stages["warmup"].flops
    assert ("cdpo twice" in stages["arms"].basis
            and "one pair per forward pass" in stages["arms"].basis)


def test_the_plan_shows_the_teacher_trained_on_its_share_of_the_validation_pairs(tmp_path):
    from prefsift.pipeline import RunConfig
    from prefsift.planning.run import plan_run

    cfg = RunConfig.from_dict({**TINY_RUN, "out": str(tmp_path / "run"),
                               "arms": ["full", "top_teacher", "group_cdpo"],
                               "scores": {"scores": "irm,lossdiff,if,teacher,group_noise",
                                          "teacher_epochs": 4}})
    plan = plan_run(cfg, log=lambda *a, **k: None)
    stages = {s.stage: s for s in plan.stages}
    teacher = stages["teacher"]
    val = [json.loads(line) for line in open(tmp_path / "run" / "lab" / "validation.jsonl")]
    prompts = list(dict.fromkeys(v["prompt"] for v in val))
    # the last half of the prompts, rounded up
    theirs = set(prompts[len(prompts) - -(-len(prompts) // 2):])
    n = sum(v["prompt"] in theirs for v in val)
    assert (teacher.basis.startswith(f"4 epochs on {n} validation pairs") and teacher.seconds > 0
            and teacher.flops > 0)
    assert "cdpo twice" in stages["arms"].basis
