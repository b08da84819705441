"""RunConfig's composition: every setting in one group of `prefsift run --help`, the placement
settings spelled once for warmup, score and run, and the scores stage's ScoreConfig built in one
place, equal to one assembled field by field from the run's settings."""

from dataclasses import asdict, fields

from prefsift.pipeline.config import GROUPS, RunConfig
from prefsift.runtime.placement import PlacementSettings
from prefsift.scoring.config import ScoreConfig
from prefsift.train.warmup import WarmupConfig


def test_every_run_setting_is_in_exactly_one_group():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(f.name for f in fields(RunConfig))
    assert len(grouped) == len(set(grouped))
    for group in GROUPS:
        assert group.split(",")[0] in RunConfig.__doc__  # the docstring describes each group


def test_placement_is_spelled_once_for_warmup_score_and_run():
    shared = {f.name: f for f in fields(PlacementSettings)}
    assert set(shared) == {"device", "dtype", "shard"}
    for cls in (RunConfig, ScoreConfig, WarmupConfig):
        mine = {f.name: f for f in fields(cls) if f.name in shared}
        assert ({n: f.metadata for n, f in mine.items()}
                == {n: f.metadata for n, f in shared.items()})


def test_the_scores_stage_config_is_the_runs_settings_and_its_scores_section():
    cfg = RunConfig(objective="ipo", beta=0.3, keep=0.5, device="cpu", dtype="fp32",
                    arms=["full", "random"], scores={"scores": "irm,lossdiff", "val_lr": 0.01})
    got = cfg.score_config("theta", "ref", "train.jsonl", "val.jsonl", out="o")
    by_hand = dict(policy="theta", reference="ref", train="train.jsonl", validation="val.jsonl",
                   out="o",
                   objective="ipo", beta=0.3, keep=0.5, device="cpu", dtype="fp32", shard="ddp")
    for name, value in by_hand.items():
        assert getattr(got, name) == value, name
    for name, value in asdict(cfg.scores).items():
        assert getattr(got, name) == value, name
    assert got.val_lr == 0.01 and got.wanted == ["irm", "lossdiff"]
    # route rm_rl scores a reward model: the Bradley-Terry objective
    assert RunConfig(route="rm_rl", lora=None).score_config().objective == "bt"
