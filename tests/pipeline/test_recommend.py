"""The `auto` arm and `prefsift recommend`: candidates probed on validation data, the choice made
by the paired rule, the choice trained; bad candidate lists refused before any work."""

import json

import numpy as np
import pandas as pd
import pytest

from prefsift.core.errors import ConfigError
from prefsift.pipeline import RunConfig
from prefsift.pipeline.recommend import choose
from tests.tiny import QUIET, TINY_RUN


def _row(per_prompt):
    per_prompt = np.asarray(per_prompt, dtype=float)
    return {"value": float(per_prompt.mean()), "per_prompt": per_prompt.tolist()}


def _normal_interval(a, b):
    """The paired mean difference and its normal 95 % interval, mean ± 1.96 sd/√n (independent of
    the bootstrap the rule uses)."""
    d = np.asarray(a) - np.asarray(b)
    se = d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - 1.96 * se, d.mean() + 1.96 * se


def test_the_rule_takes_the_best_clear_gain_and_otherwise_all_the_data():
    rng = np.random.default_rng(0)
    n = 400
    full = rng.random(n)
    clear = full + 0.10 + rng.normal(0, 0.05, n)  # +0.10, se 0.0025: far above zero
    # a larger mean gain, but se 0.15: its interval holds zero
    noisy = full + 0.25 + 3.0 * (-1.0) ** np.arange(n)
    m_clear, lo_clear, hi_clear = _normal_interval(clear, full)
    m_noisy, lo_noisy, _ = _normal_interval(noisy, full)
    assert m_noisy > m_clear and lo_noisy < 0 < lo_clear  # the data are what the test says they are
    probes = {"full": _row(full), "clear": _row(clear), "noisy": _row(noisy)}
    chosen, why, gains = choose(probes)
    assert chosen == "clear" and "beats all the data" in why
    # The bootstrap interval is the normal one to within a fifth of a standard error at n = 400.
    se = (hi_clear - lo_clear) / (2 * 1.96)
    assert gains["clear"].mean == pytest.approx(m_clear, abs=1e-12)
    assert gains["clear"].low == pytest.approx(lo_clear, abs=0.2 * se)
    assert gains["noisy"].low < 0

    # Nothing clearly better: all the data, and the reason says the probes cannot tell.
    tiny = full + rng.normal(0.0, 0.01, n)
    chosen, why, _ = choose({"full": _row(full), "noisy": _row(noisy), "tiny": _row(tiny)})
    assert chosen == "full" and "cannot tell" in why

    # A clearly worse candidate is not chosen, nor a diverged one (its value is not finite).
    worse = full - 0.2
    diverged = {"value": float("-inf"), "per_prompt": [float("nan")] * n}
    chosen, _, gains = choose({"full": _row(full), "worse": _row(worse), "diverged": diverged})
    assert chosen == "full" and gains["worse"].high < 0 and "diverged" not in gains


def _config(**over):
    return RunConfig(**{**TINY_RUN, **over})


def test_bad_candidate_lists_are_refused_before_any_work():
    with pytest.raises(ConfigError, match="must include 'full'"):
        _config(arms=["auto"], calibration={"candidates": ["lossdiff_irm", "tif"]})
    with pytest.raises(ConfigError, match="a baseline"):
        _config(arms=["auto"], calibration={"candidates": ["full", "random"]})
    with pytest.raises(ConfigError, match="a baseline"):
        _config(arms=["auto"], calibration={"candidates": ["full", "clean"]})
    for oracle in ("drop_wrong", "oracle_relabel"):
        with pytest.raises(ConfigError, match="calibration.candidates lists"):
            _config(arms=["auto"], calibration={"candidates": ["full", oracle]})
    # what a team has: its careful validation pairs
    assert _config(arms=["auto"]).calibration.by == "loss"
    with pytest.raises(ConfigError, match="calibration.judge must be"):
        _config(arms=["auto"], calibration={"judge": "orcale", "by": "judge"})
    with pytest.raises(ConfigError, match="calibration.judge.*biased:SHARE"):
        _config(arms=["auto"], calibration={"judge": "biased", "by": "judge"})
    with pytest.raises(ConfigError, match="itself chosen by probes"):
        _config(arms=["auto"], calibration={"candidates": ["full", "calibrated_tif"]})
    with pytest.raises(ConfigError, match="unknown arm 'lossdif_irm'"):
        _config(arms=["auto"], calibration={"candidates": ["full", "lossdif_irm"]})
    with pytest.raises(ConfigError, match="needs the heldout score"):
        _config(arms=["auto"], calibration={"candidates": ["full", "selective_dpo"]})
    with pytest.raises(ConfigError, match="distinct arm names"):
        _config(arms=["auto"], calibration={"candidates": ["full", "full"]})
    with pytest.raises(ConfigError, match="route 'rm_rl'"):
        _config(arms=["auto"], route="rm_rl")
    with pytest.raises(ConfigError, match="does not train objective 'ipo'"):
        _config(arms=["auto"], objective="ipo", calibration={"candidates": ["full", "robust_dpo"]})
    # The default list leaves out what the run cannot give (selective_dpo without `heldout`, robust
    # DPO under IPO) at run time, each with its reason: no error here.
    _config(arms=["auto"])
    _config(arms=["auto"], objective="ipo")


def test_a_default_candidate_the_run_cannot_give_is_left_out_with_its_reason():
    from prefsift.selection.arms import arm_data

    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "valid": True, "irm": [0.1, -0.2, 0.3, 0.4]})
    cfg = _config(arms=["auto"], objective="ipo")
    assert "not this run's objective ipo" in arm_data(cfg, table, "robust_dpo", candidate=True)
    assert "heldout" in arm_data(cfg, table, "selective_dpo", candidate=True)
    assert "teacher" in arm_data(cfg, table, "top_teacher", candidate=True)
    assert "ratings" in arm_data(cfg, table, "alignment_potential", candidate=True) or \
        "does not have" in arm_data(cfg, table, "alignment_potential", candidate=True)
    assert arm_data(cfg, table, "full", candidate=True).mask.all()


def test_the_auto_arm_trains_its_recommendation_and_a_rerun_probes_nothing(tmp_path, monkeypatch):
    """On the tiny lab: the default candidates are probed on the validation prompts (the teacher's
    and group_cdpo left out, with the reason: the run asks no `teacher` or `group_noise` score),
    each on its own data; the auto arm
    trains on the chosen candidate's pairs; `prefsift recommend` on the same folder trains
    nothing."""
    from prefsift import api
    from prefsift.pipeline.probes import ProbeJudge
    from prefsift.train import TrainingStage

    seen = []
    real_init = ProbeJudge.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        seen.extend(self.answers.prompts)

    monkeypatch.setattr(ProbeJudge, "__init__", spy)
    out = tmp_path / "r"
    # (auto trains last all the same)
    cfg = {**TINY_RUN, "arms": ["full", "auto", "lossdiff_irm", "cdpo"],
           "calibration": {"prompts": 16, "answers": 2, "probe_epochs": 0.5, "by": "judge"}}
    ev = api.run(cfg, out=out, progress=False, log=QUIET)
    rec = json.loads((out / "recommend" / "recommendation.json").read_text())
    probed = {r["candidate"]: r for r in rec["candidates"]}
    # who chose is written down
    assert rec["probe_judge"] == "oracle" and "(judge oracle)" in rec["judged_by"]
    assert set(probed) == {"full", "lossdiff_irm", "tif", "top_if", "top_lossdiff", "top_irm",
                           "top_if_lossdiff", "top_if_relabel", "top_lossdiff_relabel", "cdpo"}
    assert all("teacher" in rec["left_out"][c] for c in ("top_teacher", "teacher_relabel"))
    assert "group_noise" in rec["left_out"]["group_cdpo"]
    # The probes were judged on validation prompts, never on the test prompts.
    val = [json.loads(x)["prompt"] for x in (out / "lab"
                                             / "validation.jsonl").read_text().splitlines()]
    test = [json.loads(x)["prompt"] for x in (out / "lab"
                                              / "test_prompts.jsonl").read_text().splitlines()]
    assert seen and set(seen) <= set(val) and not set(seen) & set(test)
    # Each probe trained on its candidate's own data, half an epoch of it.
    sel = pd.read_parquet(out / "selection.parquet")
    n_valid = int(sel["valid"].sum())
    assert probed["full"]["n_pairs"] == probed["cdpo"]["n_pairs"] == n_valid
    assert probed["lossdiff_irm"]["n_pairs"] == int(sel["lossdiff_irm"].sum())
    assert all(1 <= r["steps"] <= -(-r["n_pairs"] // 16) for r in rec["candidates"])
    assert not list((out / "recommend").glob("probe-*/"))  # the probes' models are deleted
    # The auto arm is the chosen candidate's data, trained for every seed.
    chosen = rec["chosen"]
    assert (chosen in probed
            and ev.loc[ev.arm == "auto", "n_pairs"].item() == probed[chosen]["n_pairs"])
    if chosen != "full":
        assert ((sel["auto"] == sel[chosen]).all() if chosen in sel
                else sel["auto"].sum() == probed[chosen]["n_pairs"])
    # The choice is the rule applied to the probes that were written.
    probes = {n: json.loads((out / "recommend" / f"probe-{n}.json").read_text()) for n in probed}
    assert choose(probes)[0] == chosen
    assert (rec["probe_seconds"]
            == pytest.approx(sum(r["train_seconds"] + r["judge_seconds"] for r in probes.values())))

    # `prefsift recommend` on the same folder, among two candidates that are also arms of the run,
    # the choice forced to the treatment (a loss variant in its stage key): both probes are reused,
    # and auto's training is cdpo's own, copied, not redone, so its answers are cdpo's.
    from prefsift.pipeline import recommend as rec_module

    treated = pd.read_parquet(out / "treatments.parquet")
    calls, trained = [], []  # the stages started, and those of them that trained
    real_run, real_train = TrainingStage.run, TrainingStage._train
    monkeypatch.setattr(TrainingStage, "run",
                        lambda stage: calls.append(stage.name) or real_run(stage))
    monkeypatch.setattr(TrainingStage, "_train",
                        lambda stage, *a: trained.append(stage.name) or real_train(stage, *a))
    monkeypatch.setattr(rec_module, "choose",
                        lambda probes, only=None: ("cdpo", "forced by the test", {}))
    again = api.recommend({**cfg, "calibration": {**cfg["calibration"],
                                                  "candidates": ["full", "cdpo"]}},
                          out=out, progress=False, log=QUIET)
    # no probe again; the warm-up reused; auto's stage is cdpo's, copied: nothing trains
    assert calls == ["warmup", "arm-cdpo"] and trained == []
    assert again["chosen"] == "cdpo" and [r["arm"] for r in again["test"]] == ["auto"]
    copied, own = (json.loads((out / "arms" / f"{a}-seed0" / "stage.json").read_text())
                   for a in ("auto", "cdpo"))
    assert copied == own  # the very stage, its training seconds included
    assert again["test"][0]["win_rate"] == ev.loc[ev.arm == "cdpo", "win_rate"].item()
    now = pd.read_parquet(out / "treatments.parquet")
    assert (now["auto:weight"] == treated["cdpo:weight"]).all()
    assert (now["auto:swapped"] == treated["cdpo:swapped"]).all()
    from prefsift.pipeline.rundir import RunDir
    from prefsift.planning.run import actual_run_seconds

    secs = actual_run_seconds(RunDir(out), ["auto"], [0])
    # a copy: no time
    assert "arms" not in secs and secs["calibration"] == pytest.approx(again["probe_seconds"])
