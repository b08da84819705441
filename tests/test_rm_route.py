"""`route: rm_rl` on a tiny lab: a reward model per arm (RewardTrainer), the policy trained online
against it (GRPO), judged as the DPO arms are, with each RM's accuracy on judge-labelled pairs."""

import json

import numpy as np
import pandas as pd

from prefsift.pipeline import RunConfig, run_pipeline

from .test_pipeline import QUIET, TINY

RM_RL = {**TINY, "route": "rm_rl", "arms": ["full", "lossdiff_irm"],
         "warmup": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
         "final": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
         "rl": {"prompts_per_step": 8, "num_generations": 2, "max_completion_length": 8, "learning_rate": 1e-4,
                "beta": 0.04}}


def test_rm_rl_route_runs_every_stage_and_reports_rm_accuracy(tmp_path):
    out = tmp_path / "run"
    evaluation = run_pipeline(RunConfig(out=str(out), **RM_RL), progress=False, log=QUIET)
    assert sorted(evaluation["arm"]) == ["full", "lossdiff_irm"]
    assert evaluation["rm_accuracy"].between(0, 1).all()
    table = pd.read_parquet(out / "score" / "scores.parquet")
    ok = table[table["valid"]]
    # The scores are the warm-up RM's: IRM is its reward margin.
    np.testing.assert_allclose(ok["irm"], ok["reward_chosen"] - ok["reward_rejected"], rtol=1e-12)
    for arm in ("full", "lossdiff_irm"):
        stage = json.loads((out / "arms" / f"{arm}-seed0" / "stage.json").read_text())
        assert stage["trainer"] == "grpo" and any("kl" in e for e in stage["log"])
        assert (out / "arms" / f"{arm}-seed0" / "rm" / "stage.json").exists()
    # A rerun reuses every stage and gives the same table.
    again = run_pipeline(RunConfig(out=str(out), **RM_RL), progress=False, log=QUIET)
    pd.testing.assert_frame_equal(evaluation, again)
