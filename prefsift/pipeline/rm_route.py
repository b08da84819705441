"""The stages of route `rm_rl`: the pairs train a reward model, and each arm's policy is optimised
online against its own reward model.

    warm-up RM (π_ref's backbone, a fresh scalar head, `warmup` on all pairs) → scores of the RM
    (`objective: bt`) → selections → per arm and seed: the arm's RM (the warm-up RM + `final` on the
    selection) → RL (π_ref + `rl` on the training prompts against it, GRPO or RLOO) → evaluation

Each arm also reports its RM's accuracy on the validation pairs relabelled by the judge (the side
the judge scores higher is the preferred one; ties left out)."""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import asdict

import numpy as np
import pandas as pd

from ..scoring.columns import tokenized
from ..scoring.rewards import pair_rewards
from ..scoring.table import score_pairs
from ..train.reward import reward_model_from, train_reward_stage
from ..train.rl import train_rl_stage
from .rundir import stage_key
from .stages import Inputs, Run, reused_or_scored


def rm_warmup_stage(run: Run, inp: Inputs) -> tuple[str, dict]:
    """The warm-up reward model: π_ref's backbone with a fresh head, `warmup` of RewardTrainer on
    all pairs."""
    t = time.time()
    cfg = run.cfg
    key = stage_key(inp.data.key, "rm", asdict(cfg.warmup))
    run.log("[warm-up] reward model through TRL's RewardTrainer from π_ref's backbone on all "
            "training pairs")
    start = reward_model_from(inp.data.reference, inp.tokenizer, seed=cfg.warmup.seed)
    _, info = train_reward_stage(start, inp.tokenizer, inp.train.records(), cfg.warmup,
                                 run.dir.root / "rm_warmup", start_key=stage_key(inp.data.key,
            "rm-start", cfg.warmup.seed), data_key=inp.data.key,
                                 name="rm_warmup", eval_records=inp.validation.records(),
                                 eval_steps=cfg.eval_steps,
                                 log=run.log, label="warm-up (reward model)", progress=run.progress)
    run.manifest.record("warmup", key, time.time() - t, steps=info["steps"])
    return key, info


def rm_scores_stage(run: Run, inp: Inputs, warmup_key: str, warmup_info: dict) -> pd.DataFrame:
    """The reward model's scores table (`scoring.table` with the reward-model backend), in
    run/score/."""
    t = time.time()
    cfg, rd = run.cfg, run.dir
    model = str(rd.root / "rm_warmup" / "model")
    scfg = cfg.score_config(model, model, str(inp.data.train), str(inp.data.validation),
                            out=str(rd.score))
    return reused_or_scored(run, scfg, warmup_key, warmup_info, t, lambda: score_pairs(
        scfg, copy.deepcopy(inp.train), copy.deepcopy(inp.validation), progress=run.progress,
        log=run.log))


def rm_arm_stage(run: Run, inp: Inputs, warmup_info: dict, judge, arm: str, seed: int,
                 mask: np.ndarray, ids: list):
    """One arm of route rm_rl: its reward model, then the policy's RL against it. Returns (policy,
    stage info of the RL stage, with the RM's accuracy on judge-labelled validation pairs)."""
    cfg, rd = run.cfg, run.dir
    final = dataclasses.replace(cfg.final, seed=int(seed))
    rm, rm_info = train_reward_stage(rd.root / "rm_warmup" / "model", inp.tokenizer,
                                     inp.train.records(mask), final, rd.arm(arm, seed) / "rm",
                                     start_key=warmup_info["key"], data_key=stage_key(ids),
                                     name=f"rm-{arm}", log=run.log,
                                     label=f"arm {arm} seed {seed}: reward model",
                                     progress=run.progress)
    prompts = [r.prompt for r in inp.train.valid_rows]
    policy, info = train_rl_stage(inp.data.reference, rm, inp.tokenizer, prompts,
                                  dataclasses.replace(cfg.rl, seed=int(seed)), rd.arm(arm, seed),
                                  start_key=inp.data.key, reward_key=rm_info["key"],
                                  data_key=stage_key(prompts), name=f"rl-{arm}", log=run.log,
                                  label=f"arm {arm} seed {seed}: {cfg.rl.algorithm.upper()}",
                                  progress=run.progress)
    info = {**info, "rm_accuracy": judged_accuracy(rm, inp, judge),
            "rm_seconds": rm_info["seconds"]}
    return policy, info


def judged_accuracy(rm, inp: Inputs, judge) -> float:
    """How often the RM prefers the side of a validation pair that the judge scores higher."""
    rows = inp.validation.valid_rows
    prompts = [r.prompt for r in rows]
    js_c = np.asarray(judge.scores(prompts, [r.chosen for r in rows]), dtype=float)
    js_r = np.asarray(judge.scores(prompts, [r.rejected for r in rows]), dtype=float)
    rc, rr = pair_rewards(rm, tokenized(inp.validation, inp.tokenizer), inp.tokenizer.pad_token_id)
    decided = js_c != js_r
    if not decided.any():
        return float("nan")
    return float(((rc > rr) == (js_c > js_r))[decided].mean())
