"""`prefsift run` on a tiny lab: every artifact is written, and a run killed during the arms
finishes with the same results as an uninterrupted one."""

import json
import os

import pandas as pd
import pytest

from prefsift import pipeline
from prefsift.pipeline import RunConfig, run_pipeline
from tests.tiny import QUIET, TINY_RUN

COLS = ["arm", "seed", "n_pairs", "win_rate", "low", "high", "score", "head_to_head"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted run of the tiny lab, shared by the tests below: (run directory, eval
    table)."""
    root = tmp_path_factory.mktemp("run")
    return (root / "a",
            run_pipeline(RunConfig(out=str(root / "a"), **TINY_RUN), progress=False, log=QUIET))


def test_run_writes_every_artifact(finished):
    a, full = finished
    for name in ("config.yaml", "manifest.json", "selection.parquet", "eval.json", "eval.csv",
                 "report.html", "score/scores.parquet", "warmup/model/model.safetensors"):
        assert (a / name).exists(), name
    man = json.loads((a / "manifest.json").read_text())
    assert ({"data", "warmup", "scores", "eval/full/0"} <= set(man["stages"])
            and man["versions"]["trl"])
    # the machine a run's numbers came from: its CPU and the kernels torch dispatched to
    import torch

    assert man["versions"]["host"]["torch_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert json.loads((a / "eval.json").read_text())["machine"]["cores"] == os.cpu_count()
    assert sorted(full["arm"]) == ["full", "lossdiff_irm", "random"]
    assert ((full["low"] <= full["win_rate"]) & (full["win_rate"] <= full["high"])).all()
    assert full.loc[full.arm == "full", "head_to_head"].item() == 0.5  # an arm against itself
    # config.yaml is a config: read back, it is the run's own
    again = RunConfig.from_yaml(a / "config.yaml")
    assert again.to_dict() == RunConfig(out=str(a), **TINY_RUN).to_dict()


def test_paired_differences_and_per_seed_random(finished):
    """eval.json's paired difference of an arm against `random` is the mean over prompts of the two
    arms' per-prompt WinRates (each the mean over its answers), recomputed from their eval files."""
    import numpy as np

    a, _ = finished
    ev = json.loads((a / "eval.json").read_text())
    k, n = ev["answers_per_prompt"], ev["prompts"]
    assert k == 4 and n == 24
    runs = {arm: json.loads((a / "arms" / f"{arm}-seed0" / "eval.json").read_text())
            for arm in ("lossdiff_irm", "random")}
    prefs = {arm: np.array(r["prefs"]).reshape(k, n).mean(axis=0) for arm, r in runs.items()}
    row = next(r for r in ev["arms"] if r["arm"] == "lossdiff_irm")
    assert (row["d_wr_random"]
            == pytest.approx((prefs["lossdiff_irm"] - prefs["random"]).mean(), abs=1e-12))
    assert row["d_wr_random_low"] <= row["d_wr_random"] <= row["d_wr_random_high"]
    scores = {arm: np.array(r["scores"]).mean() for arm, r in runs.items()}
    assert row["d_score_full"] == row["d_score_full"] and row["d_score_random"] == pytest.approx(
        scores["lossdiff_irm"] - scores["random"], abs=1e-12)
    sel = pd.read_parquet(a / "selection.parquet")
    assert (sel["random@seed0"] == sel["random"]).all()
    assert "Paired differences against random and full" in (a / "report.html").read_text()


class _DiesOnCall:
    """An answer sampler for the lab's models that raises on its n-th call (a run killed while it
    evaluates), registered over the lab's own and delegating to it otherwise."""

    def __init__(self, n):
        from prefsift.eval.answers import SAMPLERS

        self.n, self.calls, self.real = n, 0, SAMPLERS.get("lab-sampler")

    def __call__(self, *args, **kw):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("killed")
        return self.real.answer(*args, **kw)


def test_a_run_killed_while_it_evaluates_resumes_to_the_same_table(finished, tmp_path):
    from prefsift.eval.answers import SAMPLERS, Sampler

    _, full = finished
    dies = _DiesOnCall(3)  # π_ref's answers, the first arm's, then the second arm's: killed there
    SAMPLERS.register("dies", Sampler("lab-sampler", dies, dies.real.matches))
    try:
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(RunConfig(out=str(tmp_path / "b"), **TINY_RUN), progress=False, log=QUIET)
    finally:
        SAMPLERS.unregister("dies")
    assert dies.calls == 3
    resumed = run_pipeline(RunConfig(out=str(tmp_path / "b"), **TINY_RUN), progress=False,
                           log=QUIET)
    pd.testing.assert_frame_equal(resumed[COLS], full[COLS])
    # A rerun with nothing changed redoes nothing: the stage keys in the manifest stay as they were.
    before = json.loads((tmp_path / "b" / "manifest.json").read_text())["stages"]
    run_pipeline(RunConfig(out=str(tmp_path / "b"), **TINY_RUN), progress=False, log=QUIET)
    after = json.loads((tmp_path / "b" / "manifest.json").read_text())["stages"]
    assert {k: v["key"] for k, v in after.items()} == {k: v["key"] for k, v in before.items()}


def test_an_arm_imported_from_another_run_trains_on_the_same_pairs(finished, tmp_path):
    """Run b trains an arm on run a's LossDiff-IRM set, read from a's selection.parquet: the same
    pairs, so the same model and the same WinRate as a's own lossdiff_irm arm."""
    a, full = finished
    imported = run_pipeline(RunConfig(out=str(tmp_path / "b"), **{
        **TINY_RUN, "arms": ["a_ldi"],
        "imported": {"a_ldi": f"{a / 'selection.parquet'}:lossdiff_irm"}}),
        progress=False, log=QUIET)
    sel_a, sel_b = (pd.read_parquet(a / "selection.parquet"),
                    pd.read_parquet(tmp_path / "b" / "selection.parquet"))
    assert sel_b["a_ldi"].tolist() == sel_a["lossdiff_irm"].tolist()
    own = full.set_index("arm").loc["lossdiff_irm"]
    assert (imported["n_pairs"].item() == own["n_pairs"]
            and imported["win_rate"].item() == own["win_rate"])


def test_the_lab_given_as_files_gives_the_lab_runs_numbers(finished, tmp_path):
    """lab: null with the lab's files: a lab model is still answered by the lab's sampler, so every
    stage and every WinRate matches the lab run's."""
    a, full = finished
    files = {k: str(a / "lab" / f) for k, f in (("train", "train.jsonl"),
                                                  ("validation", "validation.jsonl"),
                                                ("test_prompts", "test_prompts.jsonl"),
                                                ("reference", "sft_model"))}
    from_files = run_pipeline(RunConfig(out=str(tmp_path / "c"), **{**TINY_RUN, "lab": None,
                                                                    "preset": "lab",
                                                                 "arms": ["full"], **files}),
                              progress=False, log=QUIET)
    assert from_files["win_rate"].item() == full.set_index("arm").loc["full", "win_rate"]


def test_a_registered_rule_is_an_arm_named_in_a_config(finished, tmp_path):
    """A plugin module registers a rule; the config names the module under `plugins` and the rule
    under `arms`; the arm trains on exactly the pairs the rule picks (here: the lab's clean pairs,
    which the built-in `clean` rule also picks, so both arms hold the same pairs)."""
    a, _ = finished
    plugin = tmp_path / "my_rules.py"
    plugin.write_text(
        "import prefsift\n"
        "@prefsift.register_rule('clean_again', needs=('pair_type', 'label_correct'), help='clean, "
        "by a plugin')\n"
        "def clean_again(table, keep, seed):\n"
        "    return (table['valid'] & (table['pair_type'] == 'clean') & "
        "table['label_correct'].fillna(False)).to_numpy()\n")
    import shutil

    # a copy of the finished run: its warm-up and scores are reused
    shutil.copytree(a, tmp_path / "p")
    cfg = RunConfig.from_dict({**TINY_RUN, "out": str(tmp_path / "p"), "plugins": [str(plugin)],
                               "arms": ["clean_again"], "seeds": []})
    run_pipeline(cfg, progress=False, log=QUIET)
    sel = pd.read_parquet(tmp_path / "p" / "selection.parquet")
    table = pd.read_parquet(a / "score" / "scores.parquet")
    expected = (table["valid"] & (table["pair_type"] == "clean")
                & table["label_correct"].fillna(False).astype(bool))
    assert sel["clean_again"].tolist() == expected.tolist() and sel["clean_again"].any()
    from prefsift.selection.rules import RULES

    RULES.unregister("clean_again")


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
    other.assign(score=[0.1, float("nan"), 0.0, 2.0]).to_parquet(tmp_path / "scores.parquet",
                                                                 index=False)
    with pytest.raises(ValueError, match="'score' of .* is float64, not a selection"):
        pipeline.imported_selection(table, "a", f"{tmp_path / 'scores.parquet'}:score")


def test_imported_arms_are_validated():
    with pytest.raises(ValueError, match="clashes with a built-in arm"):
        RunConfig(imported={"tif": "x/selection.parquet:tif"})
    with pytest.raises(ValueError, match="expected 'RUN/selection.parquet:COLUMN'"):
        RunConfig(imported={"a_tif": "x/selection.parquet"})
    with pytest.raises(ValueError, match="define them under `imported`/`windows`"):
        RunConfig(arms=["full", "a_tif"])
    with pytest.raises(ValueError, match="clashes with .* selection.parquet column"):
        RunConfig(imported={"valid": "x/selection.parquet:tif"})
    with pytest.raises(ValueError, match="names a folder"):
        RunConfig(imported={"../a": "x/selection.parquet:tif"})
    with pytest.raises(ValueError, match="expected 'RUN/selection.parquet:COLUMN'"):
        RunConfig(imported={"a_tif": ":tif"})
    assert RunConfig(imported=None).imported == {}
    assert (RunConfig(arms=["full", "a_tif"], imported={"a_tif": "x/selection.parquet:tif"}).arms[1]
            == "a_tif")


def test_a_run_under_two_processes_matches_one(finished, tmp_path):
    """`prefsift run CONFIG --processes 2`: two torchrun workers (gloo) train every stage under DDP,
    shard the scores and judge on rank 0. Same global batches, so the same run up to the order of
    the gradient sums: the same pairs scored, nearly the same scores, the same selections' sizes."""
    import os
    import subprocess
    import sys

    import numpy as np
    import yaml

    a, one = finished
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY_RUN, "out": str(tmp_path / "two")}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "prefsift", "run", str(cfg), "--processes", "2",
                        "--quiet"],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("WinRate against π_ref") == 1  # rank 0 speaks
    two = pd.read_csv(tmp_path / "two" / "eval.csv")
    assert sorted(two["arm"]) == sorted(one["arm"])
    s1, s2 = (pd.read_parquet(a / "score" / "scores.parquet"),
              pd.read_parquet(tmp_path / "two" / "score" / "scores.parquet"))
    assert list(s1["id"]) == list(s2["id"]) and s1["valid"].equals(s2["valid"])
    for col in ("irm", "lossdiff", "if"):
        x, y = s1[col].to_numpy(), s2[col].to_numpy()
        ok = np.isfinite(x)
        assert np.abs(x[ok] - y[ok]).max() <= 1e-3 * np.abs(x[ok]).max(), col
    merged = one.merge(two, on=["arm", "seed"], suffixes=("_1", "_2"))
    assert (merged["n_pairs_1"] == merged["n_pairs_2"]).all()
    stage = json.loads((tmp_path / "two" / "warmup" / "stage.json").read_text())
    assert stage["processes"] == 2


def _lab_files(a):
    return {k: str(a / "lab" / f) for k, f in (("train", "train.jsonl"),
                                               ("validation", "validation.jsonl"), ("test_prompts",
            "test_prompts.jsonl"), ("reference", "sft_model"))}


def test_a_calibrated_arm_trains_on_its_best_probe_and_a_rerun_trains_no_probe(finished, tmp_path,
                                                                               monkeypatch):
    """calibrated_lossdiff_irm probes two windows at the run's keep (split 0.5 is the paper's rule,
    so its pairs are run a's lossdiff_irm arm's); the arm trains on the one whose probe won on the
    validation prompts; a rerun reuses both probes."""
    from prefsift.train import TrainingStage

    a, _ = finished
    cfg = {**TINY_RUN, "lab": None, "preset": "lab", **_lab_files(a),
           "arms": ["calibrated_lossdiff_irm"], "calibration": {"splits": [0.5, 1.0], "prompts": 16,
                                                                "answers": 2, "probe_epochs": 0.5,
                                                                "by": "judge"}}
    ev = run_pipeline(RunConfig(out=str(tmp_path / "b"), **cfg), progress=False, log=QUIET)
    cal = json.loads((tmp_path / "b" / "calibrate" / "calibrated_lossdiff_irm"
                      / "calibration.json").read_text())
    probes = cal["candidates"]
    sel_a = pd.read_parquet(a / "selection.parquet")
    assert probes[0]["split"] == 0.5 and probes[0]["n_pairs"] == int(sel_a["lossdiff_irm"].sum())
    assert all(1 <= p["steps"] <= -(-p["n_pairs"] // 16) for p in probes)  # a fraction of an epoch
    best = max(range(2), key=lambda i: probes[i]["win_rate"])
    assert cal["chosen"] == best and ev["n_pairs"].item() == probes[best]["n_pairs"]
    # models deleted
    assert not list((tmp_path / "b" / "calibrate" / "calibrated_lossdiff_irm").glob("probe*/"))
    assert "Calibrated arms: the probes" in (tmp_path / "b" / "report.html").read_text()
    calls = []
    real = TrainingStage.run
    monkeypatch.setattr(TrainingStage, "run", lambda stage: calls.append(stage.name) or real(stage))
    again = run_pipeline(RunConfig(out=str(tmp_path / "b"), **cfg), progress=False, log=QUIET)
    assert (not [c for c in calls if c.startswith("probe")]
            and again["win_rate"].item() == ev["win_rate"].item())


def test_probe_validation_loss_is_trls_eval_loss(finished):
    """With `by: loss` a probe is valued by the objective's loss on the validation pairs; for θ this
    is the eval_loss TRL logged at the warm-up's last step (same model, same pairs)."""
    from prefsift.models.loading import load_model
    from prefsift.pipeline.calibrate import ProbeJudge
    from prefsift.pipeline.stages import Run, data_stage, load_inputs

    a, _ = finished
    cfg = RunConfig(out=str(a), **{**TINY_RUN, "calibration": {"by": "loss"}})
    run = Run(cfg, pipeline.RunDir(cfg.out),
              pipeline.Manifest(pipeline.RunDir(cfg.out), cfg.to_dict(), QUIET), QUIET, False)
    inp = load_inputs(run, data_stage(run), {})
    theta = load_model(run.dir.warmup_model)
    got = ProbeJudge(run, inp, None).value(theta)
    log = json.loads((a / "warmup" / "stage.json").read_text())["log"]
    last = [r for r in log if "eval_loss" in r][-1]
    steps = json.loads((a / "warmup" / "stage.json").read_text())["steps"]
    assert last["step"] == steps  # TRL evaluated the final θ
    assert got["val_loss"] == pytest.approx(last["eval_loss"], abs=1e-5)
    assert got["val_margin"] == pytest.approx(last["eval_rewards/margins"], abs=1e-5)


def test_the_fields_margin_rules_are_arms_of_a_run(finished, tmp_path):
    """alignment_potential, small_margin and large_margin train as arms on the tiny lab (whose pairs
    carry ratings), each on the pairs its formula picks, recomputed here with pandas."""
    import shutil

    a, _ = finished
    shutil.copytree(a, tmp_path / "m")  # its warm-up and scores are reused
    arms = ["alignment_potential", "small_margin", "large_margin"]
    ev = run_pipeline(RunConfig.from_dict({**TINY_RUN, "out": str(tmp_path / "m"), "arms": arms}),
                      progress=False, log=QUIET)
    sel = pd.read_parquet(tmp_path / "m" / "selection.parquet").set_index("id")
    t = pd.read_parquet(a / "score" / "scores.parquet")
    t = t[t["valid"] & t["score_gap"].notna() & t["irm"].notna()].set_index("id")
    k = round(0.64 * len(t))
    z = lambda s: (s - s.mean()) / s.std(ddof=0)  # noqa: E731
    expected = {"alignment_potential": (z(t["score_gap"]) - z(t["irm"].abs())).nlargest(k).index,
                "small_margin": t["irm"].nsmallest(k).index,
                "large_margin": (t["score_gap"] / t["score_gap"].std(ddof=0)
                                 + t["irm"] / t["irm"].std(ddof=0))
                .nlargest(k).index}
    for arm in arms:
        assert set(sel.index[sel[arm]]) == set(expected[arm]), arm
        row = ev[(ev["arm"] == arm) & (ev["seed"] == 0)].iloc[0]
        assert row["n_pairs"] == k and 0 <= row["win_rate"] <= 100


def test_treatment_arms_train_with_their_weights_swaps_and_losses(finished, tmp_path):
    """soft_lossdiff_irm, soft_tif, lossdiff_irm_relabel, robust_dpo and cdpo train on the tiny lab;
    treatments.parquet holds each arm's weights and swaps, and each stage records its loss."""
    import shutil

    import numpy as np

    import prefsift

    a, _ = finished
    shutil.copytree(a, tmp_path / "t")
    arms = ["soft_lossdiff_irm", "soft_tif", "lossdiff_irm_relabel", "robust_dpo", "cdpo"]
    ev = run_pipeline(RunConfig.from_dict({**TINY_RUN, "out": str(tmp_path / "t"), "arms": arms}),
                      progress=False, log=QUIET)
    assert sorted(ev["arm"]) == sorted(arms)
    tr = pd.read_parquet(tmp_path / "t" / "treatments.parquet")
    eval_start = json.loads((a / "arms" / "full-seed0"
                             / "stage.json").read_text())["log"][0]["eval_loss"]
    table = pd.read_parquet(a / "score" / "scores.parquet")
    assert tr["id"].tolist() == table["id"].tolist()  # every input pair, in order
    ldi = prefsift.select(table, "lossdiff_irm", 0.64)
    swapped = tr["lossdiff_irm_relabel:swapped"].to_numpy()
    irm = table["irm"].to_numpy()
    # The swapped pairs are IRM's bottom tail: below every pair LossDiff-IRM keeps, and none of them
    # kept.
    assert swapped.any() and not (swapped & ldi).any() and irm[swapped].max() < irm[ldi].min()
    assert (tr["lossdiff_irm_relabel:weight"].to_numpy() > 0).sum() == ldi.sum() + swapped.sum()
    scored = table["irm"].dropna()
    for arm, loss in (("robust_dpo", "robust"), ("cdpo", None)):
        info = json.loads((tmp_path / "t" / "arms" / f"{arm}-seed0" / "stage.json").read_text())
        assert (info["variant"]["loss_type"] == loss
                and info["variant"]["conservative"] == (arm == "cdpo"))
        # ε̂: the share of IRM < 0
        assert info["variant"]["epsilon"] == pytest.approx(float((scored < 0).mean()))
        # the validation curve is the plain DPO loss for every arm: at step 0 the same θ gives the
        # same loss
        assert info["log"][0]["eval_loss"] == pytest.approx(eval_start, rel=1e-6)
    soft = tr["soft_lossdiff_irm:weight"].to_numpy()
    info = json.loads((tmp_path / "t" / "arms" / "soft_lossdiff_irm-seed0"
                       / "stage.json").read_text())
    assert (info["weighted_pairs"] == int((soft > 0).sum())
            and soft[ldi].mean() > 2 * soft[~ldi & (soft > 0)].mean())
    assert np.isfinite(ev["win_rate"]).all()


def test_treatment_arms_are_refused_where_they_cannot_train():
    from prefsift.core.errors import ConfigError

    with pytest.raises(ConfigError, match="robust_dpo.*not 'ipo'"):
        RunConfig.from_dict({**TINY_RUN, "arms": ["robust_dpo"], "objective": "ipo"})
    with pytest.raises(ConfigError, match="label_noise"):
        RunConfig.from_dict({**TINY_RUN, "arms": ["cdpo"], "label_noise": 0.5})


def test_selective_dpo_is_an_arm_trained_easy_to_hard(finished, tmp_path):
    """With the held-out score asked for, the run trains Selective DPO's fold models as stages,
    keeps the smallest held-out losses, and trains them in order (not shuffled)."""
    import shutil

    a, _ = finished
    # the warm-up is reused; the scores are recomputed (heldout is new)
    shutil.copytree(a, tmp_path / "s")
    cfg = {**TINY_RUN, "out": str(tmp_path / "s"), "arms": ["selective_dpo"],
           "scores": {"scores": "irm,lossdiff,if,heldout"}}
    ev = run_pipeline(RunConfig.from_dict(cfg), progress=False, log=QUIET)
    table = pd.read_parquet(tmp_path / "s" / "score" / "scores.parquet")
    assert (tmp_path / "s" / "score" / "selective" / "fold1" / "stage.json").exists()
    sel = pd.read_parquet(tmp_path / "s" / "selection.parquet")
    k = round(0.64 * int(table["valid"].sum()))
    assert (set(table.loc[sel["selective_dpo"], "id"])
            == set(table.loc[table["heldout"].nsmallest(k).index, "id"]))
    info = json.loads((tmp_path / "s" / "arms" / "selective_dpo-seed0" / "stage.json").read_text())
    assert info["variant"]["in_order"] and ev.iloc[0]["n_pairs"] == k
    with pytest.raises(Exception, match="heldout"):
        RunConfig.from_dict({**TINY_RUN, "arms": ["selective_dpo"]})
