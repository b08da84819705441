"""`run_pipeline`: the stages of `prefsift run` in order, over one locked run directory."""

from __future__ import annotations

import contextlib
import time

import pandas as pd
import yaml

from ..core import artifacts
from ..core.errors import ConfigError
from ..core.quiet import quiet_libraries
from ..eval.judges import make_judge
from ..eval.tables import format_arms
from ..models.loading import load_model
from ..runtime.devices import machine_line, model_precision, placement
from ..runtime.distributed import barrier, world
from ..runtime.sharding import use_shard
from ..scoring.logprobs import model_fingerprint
from ..selection.kinds import ArmContext
from ..train.dpo import per_process_batch
from .calibrate import calibration_stage
from .config import RunConfig
from .inputs import check_run_inputs, read_test_prompts
from .judge_cost import (
    check_budget_before_work,
    check_judge_budget,
    judge_cost,
    judge_tokenizer,
)
from .judging import calls_line, judge_context
from .probed_arms import AUTO, probed_arms
from .probes import ProbeJudge
from .probes import (
    probe_judge as probe_judge_for,  # (run.py names its ProbeJudge probe_judge)
)
from .recommend import recommendation_stage
from .rm_route import rm_arm_stage, rm_scores_stage, rm_warmup_stage
from .rundir import Manifest, RunDir
from .stages import (
    Answers,
    Run,
    arm_stage,
    data_stage,
    evaluation_stage,
    load_inputs,
    report_stage,
    results_stage,
    scores_stage,
    selections_stage,
    warmup_stage,
)


def run_pipeline(cfg: RunConfig, progress: bool = True, log=print) -> pd.DataFrame:
    """The whole protocol over the run directory `cfg.out`; returns the evaluation table (one row
    per arm and seed). Every input is checked before the directory is made or a model loaded; one
    process at a time may write a run directory; a finished stage with an unchanged key is
    reused."""
    here = world()
    use_shard(cfg.shard, here, log)
    try:
        cfg.load_plugins()  # the plugins' rules and judges, before any name is looked up
        read = check_run_inputs(cfg)
        check_budget_before_work(cfg)
        check_run_sharding(cfg, here.size)
    except ConfigError as e:
        raise cfg.locate(e) from None
    # under a launcher: every rank trains and scores its share, rank 0 speaks and judges
    if not here.is_main:
        progress, log = False, (lambda *a, **k: None)
    with artifacts.RunLock(cfg.out, log) if here.is_main else contextlib.nullcontext():
        barrier(here)  # the others start once rank 0 holds the run directory
        return _run(cfg, progress, log, read)


def check_run_sharding(cfg: RunConfig, processes: int) -> None:
    """What `processes` processes need of a run's settings: every training batch shared evenly."""
    if processes > 1 and cfg.route == "rm_rl":
        raise ConfigError(key="route", problem="rm_rl runs in one process for now: drop "
                                               "--processes (or the launcher)")
    calibrated = probed_arms(cfg.arms, ArmContext.of(cfg))
    if processes > 1 and calibrated:
        raise ConfigError(key="arms", problem=f"lists arms chosen by probes {calibrated}, which "
                                              "run in one process for now: drop --processes (or "
                                              "the launcher), or those arms")
    if processes > 1:
        per_process_batch(cfg.warmup.batch_size, processes, key="warmup.batch_size")
        per_process_batch(cfg.final.batch_size, processes, key="final.batch_size")
        if "lossdiff" in [x.strip() for x in cfg.scores.scores.split(",")]:
            per_process_batch(cfg.scores.val_batch_size, processes, key="scores.val_batch_size")


def _run(cfg: RunConfig, progress: bool, log, read: dict) -> pd.DataFrame:
    quiet_libraries()
    rd = RunDir(cfg.out)
    here = world()
    rd.root.mkdir(parents=True, exist_ok=True)
    if here.is_main:
        artifacts.write_text(rd.config, yaml.safe_dump(cfg.to_dict(), sort_keys=False), seal=False)
    run = Run(cfg, rd, Manifest(rd, cfg.to_dict(), log), log, progress)
    clock = _Clock()

    data = data_stage(run)
    inp = load_inputs(run, data, read)
    judge = make_judge(cfg.judge, judge_context(cfg, rd.root / "judge", log))
    test_prompts = read_test_prompts(data.test_prompts, cfg.eval_prompts)
    # again, with the held-out prompts' tokens (the lab's exist only now)
    if cfg.judge_budget is not None:
        check_judge_budget(cfg, judge_cost(cfg, len(test_prompts), test_prompts,
                                           judge_tokenizer(cfg, lambda: inp.tokenizer)))
    if cfg.route == "rm_rl":
        warmup_key, warmup_info = rm_warmup_stage(run, inp)
        log(f"[scores] the reward model's IRM, LossDiff, IF, TIF ({clock.eta(0.15)})")
        table = rm_scores_stage(run, inp, warmup_key, warmup_info)
        train_arm = lambda arm, seed, mask, ids: rm_arm_stage(run, inp, warmup_info,  # noqa: E731
                                                              judge, arm, seed, mask, ids)
    else:
        warmup_key, warmup_info = warmup_stage(run, inp)
        theta = load_model(rd.warmup_model, **placement(cfg.device, cfg.dtype))  # θ, to score
        # The arms start from θ's folder in fp32; a half-precision θ in memory is that rounded.
        theta_key = (model_fingerprint(theta)
                     + ("" if model_precision(theta) == "fp32" else ":folder-fp32"))
        log(f"[scores] IRM, LossDiff, IF, TIF ({clock.eta(0.15)})")
        table = scores_stage(run, inp, theta, warmup_key, warmup_info)
        del theta  # every arm starts from θ's folder
        train_arm = lambda arm, seed, mask, ids: arm_stage(run, inp, theta_key, arm,  # noqa: E731
                                                           seed, mask, ids, treated.get(arm))
    choosers = {}  # kind of arm -> its choice by probes: a mask (calibrated) or an `ArmData` (auto)
    if cfg.route == "dpo" and probed_arms(cfg.arms, ArmContext.of(cfg)):
        probe_judge = ProbeJudge(run, inp, probe_judge_for(cfg, judge))
        choosers = {"calibrated": lambda arm: calibration_stage(run, inp, theta_key, table,
                                                                probe_judge, arm),
                    "auto": lambda arm: recommendation_stage(run, inp, theta_key, table,
                                                             probe_judge)}
    masks, seeded, treated = selections_stage(run, table, choosers)

    answers = Answers(run, inp, test_prompts)
    # `full` is always a selection (every scored pair) but is trained only when listed in `arms`.
    empty = [a for a in masks if a in cfg.arms and not masks[a].any()]
    for a in empty:
        log(f"  {a} arm skipped: its selection holds no pair (is its score column empty?)")
    # (auto last in each seed: its choice's own arm trains first, and auto's training is then a
    # copy)
    order = sorted((a for a in masks if a in cfg.arms and a not in empty), key=lambda a: a == AUTO)
    jobs = [(a, s) for s in cfg.seeds for a in order]
    evaluations, curves = [], {}
    for n, (arm, seed) in enumerate(jobs):
        mask = seeded.get((arm, int(seed)), masks[arm])
        n_pairs = int(mask.sum())
        log(f"[arm {n + 1}/{len(jobs)}] {arm}, seed {seed}: {n_pairs} pairs "
            f"({clock.eta(0.2 + 0.8 * n / len(jobs))})")
        ids = table.loc[mask, "id"].tolist()
        model, info = train_arm(arm, seed, mask, ids)
        curves[f"{arm}/seed{seed}"] = info["log"]
        if here.is_main:  # judged once; the other ranks go on to the next arm's training
            evaluations.append(evaluation_stage(run, answers, judge, arm, seed, n_pairs, model,
                                                info))
        del model

    if here.is_main:
        evaluation, summary = results_stage(run, judge, answers, evaluations)
        report_stage(run, table, masks, evaluation, curves, summary, pairs=inp.train, judge=judge)
    barrier(here)
    if not here.is_main:
        return pd.read_csv(rd.eval_csv)
    if len(evaluation):
        log(f"\nWinRate against π_ref ({judge.name}, {len(answers.prompts)} held-out prompts x "
            f"{answers.per_prompt} answers, mean over seeds {cfg.seeds}; differences paired on "
            f"prompts and seeds):\n{format_arms(summary)}\n"
            f"machine: {machine_line()} (another CPU builds another lab: compare labs, not single "
            f"runs)")
    else:
        log("\nno arm trained (`arms` lists none of the selections)")
    if getattr(judge, "paid", False):  # an API judge: what it paid for, and what its cache saved
        log(calls_line(judge.totals()))
    log(f"total {time.time() - clock.start:.0f} s")
    return evaluation


class _Clock:
    def __init__(self):
        self.start = time.time()

    def eta(self, done_frac: float) -> str:
        spent = time.time() - self.start
        return (f"{spent:.0f} s so far"
                + (f", about {spent / done_frac - spent:.0f} s left" if done_frac > 0.05 else ""))
