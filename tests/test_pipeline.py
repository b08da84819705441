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

    # Run b trains an arm on run a's LossDiff-IRM set, read from a's selection.parquet: the same
    # pairs, so the same model and the same WinRate as a's own lossdiff_irm arm.
    imported = run_pipeline(RunConfig(out=str(tmp_path / "b"), **{
        **TINY, "arms": ["a_ldi"], "imported": {"a_ldi": f"{a / 'selection.parquet'}:lossdiff_irm"}}),
        progress=False, log=quiet)
    sel_a, sel_b = pd.read_parquet(a / "selection.parquet"), pd.read_parquet(tmp_path / "b" / "selection.parquet")
    assert sel_b["a_ldi"].tolist() == sel_a["lossdiff_irm"].tolist()
    own = full.set_index("arm").loc["lossdiff_irm"]
    assert imported["n_pairs"].item() == own["n_pairs"] and imported["win_rate"].item() == own["win_rate"]

    # The same lab given as files (lab: null): a lab model is still answered by the lab's sampler,
    # so every stage and every WinRate matches the lab run's.
    files = {k: str(a / "lab" / f) for k, f in (("train", "train.jsonl"), ("validation", "validation.jsonl"),
                                                  ("test_prompts", "test_prompts.jsonl"), ("reference", "sft_model"))}
    from_files = run_pipeline(RunConfig(out=str(tmp_path / "c"), **{**TINY, "lab": None, "arms": ["full"], **files}),
                              progress=False, log=quiet)
    assert from_files["win_rate"].item() == full.set_index("arm").loc["full", "win_rate"]


def test_imported_arm_matches_by_id_and_never_keeps_invalid_pairs(tmp_path):
    other = pd.DataFrame({"id": ["p3", "p1", "p2", "p0"], "valid": True, "reason": "",
                          "tif": [True, False, True, True]})
    other.to_parquet(tmp_path / "selection.parquet", index=False)
    # this run lists the same pairs in another order, and p0 is invalid here
    table = pd.DataFrame({"id": ["p0", "p1", "p2", "p3"], "valid": [False, True, True, True]})
    mask = pipeline.imported_selection(table, "a_tif", f"{tmp_path / 'selection.parquet'}:tif")
    assert mask.tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="no column 'lossdiff'.*tif"):
        pipeline.imported_selection(table, "a", f"{tmp_path / 'selection.parquet'}:lossdiff")
    more = pd.concat([table, pd.DataFrame({"id": ["p9"], "valid": [True]})])
    with pytest.raises(ValueError, match="1 of this run's 5 pair ids are not in"):
        pipeline.imported_selection(more, "a", f"{tmp_path / 'selection.parquet'}:tif")
    with pytest.raises(FileNotFoundError, match="run the other config first"):
        pipeline.imported_selection(table, "a", f"{tmp_path / 'nope.parquet'}:tif")
    other.assign(score=[0.1, float("nan"), 0.0, 2.0]).to_parquet(tmp_path / "scores.parquet", index=False)
    with pytest.raises(ValueError, match="'score' of .* is float64, not a selection"):
        pipeline.imported_selection(table, "a", f"{tmp_path / 'scores.parquet'}:score")


def test_imported_arms_are_validated():
    with pytest.raises(ValueError, match="clashes with a built-in arm"):
        RunConfig(imported={"tif": "x/selection.parquet:tif"})
    with pytest.raises(ValueError, match="expected 'RUN/selection.parquet:COLUMN'"):
        RunConfig(imported={"a_tif": "x/selection.parquet"})
    with pytest.raises(ValueError, match="define them under `imported`"):
        RunConfig(arms=["full", "a_tif"])
    with pytest.raises(ValueError, match="clashes with .* selection.parquet column"):
        RunConfig(imported={"valid": "x/selection.parquet:tif"})
    with pytest.raises(ValueError, match="names a folder"):
        RunConfig(imported={"../a": "x/selection.parquet:tif"})
    with pytest.raises(ValueError, match="expected 'RUN/selection.parquet:COLUMN'"):
        RunConfig(imported={"a_tif": ":tif"})
    assert RunConfig(imported=None).imported == {}
    assert RunConfig(arms=["full", "a_tif"], imported={"a_tif": "x/selection.parquet:tif"}).arms[1] == "a_tif"
