"""`route: rm_rl` on a tiny lab: a reward model per arm (RewardTrainer), the policy trained online
against it (GRPO), judged as the DPO arms are, with each RM's accuracy on judge-labelled pairs."""

import json

import numpy as np
import pandas as pd

from prefsift.pipeline import RunConfig, run_pipeline
from tests.tiny import QUIET, TINY_RUN

RM_RL = {**TINY_RUN, "route": "rm_rl", "arms": ["full", "lossdiff_irm"],
         "warmup": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
         "final": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
         "rl": {"prompts_per_step": 8, "num_generations": 2, "max_completion_length": 8,
                "learning_rate": 1e-4, "beta": 0.04}}


import pytest


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm_rl") / "run"
    return out, run_pipeline(RunConfig(out=str(out), **RM_RL), progress=False, log=QUIET)


def test_rm_rl_route_runs_every_stage_and_reports_rm_accuracy(finished):
    out, evaluation = finished
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
    html = (out / "report.html").read_text()
    assert "Online RL per arm" in html  # the RL curves are drawn
    # A rerun reuses every stage and gives the same table.
    again = run_pipeline(RunConfig(out=str(out), **RM_RL), progress=False, log=QUIET)
    pd.testing.assert_frame_equal(evaluation, again)


def test_a_run_killed_during_an_rl_arm_resumes_to_the_same_tables(finished, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import yaml

    out, _ = finished
    cfg = tmp_path / "rm_rl.yaml"
    cfg.write_text(yaml.safe_dump({**RM_RL, "out": str(tmp_path / "killed")}))
    cmd = [sys.executable, "-m", "prefsift", "run", str(cfg), "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                            env={**env, "PREFSIFT_KILL_AT": "train:rl-lossdiff_irm:3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "killed" / "eval.csv").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for name in ("score/scores.parquet", "selection.parquet", "eval.csv"):
        assert (out / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name
