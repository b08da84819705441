"""`run_pipeline`: the stages of `prefsift run` in order, over one locked run directory."""

from __future__ import annotations

import time

import pandas as pd
import yaml

from .. import artifacts
from ..devices import placement
from ..errors import ConfigError
from .config import RunConfig
from .inputs import check_run_inputs, read_test_prompts
from .rundir import Manifest, RunDir
from .stages import (Answers, Run, arm_stage, data_stage, evaluation_stage, load_inputs, report_stage, results_stage,
                     scores_stage, selections_stage, warmup_stage)


def run_pipeline(cfg: RunConfig, progress: bool = True, log=print) -> pd.DataFrame:
    """The whole protocol over the run directory `cfg.out`; returns the evaluation table (one row per
    arm and seed). Every input is checked before the directory is made or a model loaded; one
    process at a time may write a run directory; a finished stage with an unchanged key is reused."""
    try:
        read = check_run_inputs(cfg)
    except ConfigError as e:
        raise cfg.locate(e) from None
    with artifacts.RunLock(cfg.out, log):
        return _run(cfg, progress, log, read)


def _run(cfg: RunConfig, progress: bool, log, read: dict) -> pd.DataFrame:
    from ..eval.judges import make_judge
    from ..eval.tables import format_arms, summarize_arms
    from ..models import load_model
    from ..quiet import quiet_libraries
    from ..scoring.logprobs import model_fingerprint

    quiet_libraries()
    rd = RunDir(cfg.out)
    rd.root.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(rd.config, yaml.safe_dump(cfg.to_dict(), sort_keys=False), seal=False)
    run = Run(cfg, rd, Manifest(rd, cfg.to_dict(), log), log, progress)
    clock = _Clock()

    data = data_stage(run)
    inp = load_inputs(run, data, read)
    warmup_key, warmup_info = warmup_stage(run, inp)
    theta = load_model(rd.warmup_model, **placement(cfg.device, cfg.dtype))  # θ, loaded once: scored, then every arm's start
    log(f"[scores] IRM, LossDiff, IF, TIF ({clock.eta(0.15)})")
    table = scores_stage(run, inp, theta, warmup_key, warmup_info)
    masks = selections_stage(run, table)

    theta_key = model_fingerprint(theta)
    judge = make_judge(cfg.judge)
    answers = Answers(run, inp, read_test_prompts(data.test_prompts, cfg.eval_prompts))
    # `full` is always a selection (every scored pair) but is trained only when listed in `arms`.
    empty = [a for a in masks if a in cfg.arms and not masks[a].any()]
    for a in empty:
        log(f"  {a} arm skipped: its selection holds no pair (is its score column empty?)")
    jobs = [(a, s) for s in cfg.seeds for a in masks if a in cfg.arms and a not in empty]
    evaluations, curves = [], {}
    for n, (arm, seed) in enumerate(jobs):
        n_pairs = int(masks[arm].sum())
        log(f"[arm {n + 1}/{len(jobs)}] {arm}, seed {seed}: {n_pairs} pairs ({clock.eta(0.2 + 0.8 * n / len(jobs))})")
        ids = table.loc[masks[arm], "id"].tolist()
        model, info = arm_stage(run, inp, theta, theta_key, arm, seed, masks[arm], ids)
        curves[f"{arm}/seed{seed}"] = info["log"]
        evaluations.append(evaluation_stage(run, answers, judge, arm, seed, n_pairs, model, info))

    evaluation = results_stage(run, judge, answers.prompts, evaluations)
    report_stage(run, table, masks, evaluation, curves)
    if len(evaluation):
        log(f"\nWinRate against π_ref ({judge.name}, {len(answers.prompts)} held-out prompts, mean over seeds "
            f"{cfg.seeds}):\n{format_arms(summarize_arms(evaluation))}")
    else:
        log("\nno arm trained (`arms` lists none of the selections)")
    log(f"total {time.time() - clock.start:.0f} s")
    return evaluation


class _Clock:
    def __init__(self):
        self.start = time.time()

    def eta(self, done_frac: float) -> str:
        spent = time.time() - self.start
        return f"{spent:.0f} s so far" + (f", about {spent / done_frac - spent:.0f} s left" if done_frac > 0.05 else "")
