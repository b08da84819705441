"""`prefsift run` on a tiny lab: every artifact is written, and a run killed during the arms
finishes with the same results as an uninterrupted one."""

import json

import pandas as pd
import pytest

from prefsift import pipeline
from prefsift.pipeline import RunConfig, run_pipeline

TINY = dict(lab={"seed": 2, "preset": "tiny", "n_train": 96, "n_validation": 32, "n_test_prompts": 24,
                 "sft_steps": 30, "sft_warmup_steps": 5, "threads": 1, "share_sft": False},
            warmup={"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
            final={"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
            arms=["full", "random", "lossdiff_irm"], seeds=[0], eval_prompts=24, eval_steps=3)


def test_run_writes_every_artifact_and_resumes_identically(tmp_path, monkeypatch):
    quiet = lambda *a, **k: None
    full = run_pipeline(RunConfig(out=str(tmp_path / "a"), **TINY), progress=False, log=quiet)
    a = tmp_path / "a"
    for name in ("config.yaml", "manifest.json", "selection.parquet", "eval.json", "eval.csv", "report.html",
                 "score/scores.parquet", "warmup/model/model.safetensors"):
        assert (a / name).exists(), name
    man = json.loads((a / "manifest.json").read_text())
    assert {"data", "warmup", "scores", "eval/full/0"} <= set(man["stages"]) and man["versions"]["trl"]
    assert sorted(full["arm"]) == ["full", "lossdiff_irm", "random"]
    assert ((full["low"] <= full["win_rate"]) & (full["win_rate"] <= full["high"])).all()
    assert full.loc[full.arm == "full", "head_to_head"].item() == 0.5  # an arm against itself

    # Kill the second run while it evaluates its second arm, then start it again.
    real = pipeline._answers
    calls = {"n": 0}

    def dies(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kw)

    monkeypatch.setattr(pipeline, "_answers", dies)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(RunConfig(out=str(tmp_path / "b"), **TINY), progress=False, log=quiet)
    monkeypatch.setattr(pipeline, "_answers", real)
    resumed = run_pipeline(RunConfig(out=str(tmp_path / "b"), **TINY), progress=False, log=quiet)
    cols = ["arm", "seed", "n_pairs", "win_rate", "low", "high", "score", "head_to_head"]
    pd.testing.assert_frame_equal(resumed[cols], full[cols])
    # A rerun with nothing changed redoes nothing: the stage times in the manifest stay as they were.
    before = json.loads((tmp_path / "b" / "manifest.json").read_text())["stages"]["warmup"]
    run_pipeline(RunConfig(out=str(tmp_path / "b"), **TINY), progress=False, log=quiet)
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["stages"]["warmup"]["key"] == before["key"]
