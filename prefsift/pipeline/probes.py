"""Probes: θ trained a little further on one candidate's data, then valued on validation data only.

The calibrated arms (`calibrate.py`) probe percentile windows of a score; the `auto` arm
(`recommend.py`) probes whole answers (all the data, a rule, a robust loss). Both value a probe
with `ProbeJudge`: its WinRate against π_ref on the validation prompts (answers sampled as the
test evaluation samples them), or with ``by: loss`` the objective's loss on the validation pairs.
Each value comes with its per-prompt (or per-pair) values, so two probes can be compared paired.
The test prompts are never looked at."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ConfigError
from ..eval.judges import make_judge
from ..eval.paired import per_prompt
from ..eval.winrate import evaluate_answers
from ..scoring.careful import last_share, only_prompts, prompt_key, teacher_prompts
from ..scoring.columns import tokenized
from ..scoring.logprobs import LogprobSettings, compute_pair_logps
from ..train import TrainingStage
from .answers import Answers
from .judging import judge_context
from .rundir import stage_key


def validation_prompts(pairs, n: int) -> list[str]:
    """The first `n` distinct prompts of the validation ``pairs``, in file order: what probes are
    judged on."""
    return list(dict.fromkeys(r["prompt"] for r in pairs.records()))[:n]


def probe_prompts(cfg, validation) -> set | None:
    """The validation prompts held out from the scores for the probes (`calibration.holdout`: the
    last share of the prompts, in file order), or None when the scores and the probes share them
    all."""
    h = cfg.calibration.holdout
    return last_share([r.prompt for r in validation.rows], h, "calibration.holdout") if h else None


def score_validation(cfg, validation):
    """The validation pairs the scores read (θ_val, IF's gradient, the teacher): all of them, or
    with `calibration.holdout` those of the prompts the probes are not valued on."""
    held = probe_prompts(cfg, validation)
    return validation if held is None else only_prompts(validation, lambda p: p not in held)


def probe_validation(cfg, validation):
    """The validation pairs the probes are valued on: all of them, or with `calibration.holdout`
    those of the held-out prompts alone."""
    held = probe_prompts(cfg, validation)
    return validation if held is None else only_prompts(validation, lambda p: p in held)


def unseen_by_teacher(cfg, validation, prompts: list) -> np.ndarray | None:
    """Over the probes' values (one per validation prompt or pair, of these ``prompts``): whether it
    is free of the teacher, i.e. its prompt did not train θ_c (scoring/careful.py). None when the
    run computes no `teacher` score. A candidate that reads the teacher is compared with all the
    data on these alone (`recommend.choose`): θ_c would look right on the pairs that trained it."""
    if ("teacher" not in [s.strip() for s in cfg.scores.scores.split(",")]
        or cfg.calibration.holdout):
        return None  # (with a holdout the probes' pairs trained no score, the teacher's none)
    # (as θ_c's stage)
    theirs = teacher_prompts([r.prompt for r in validation.rows], cfg.scores.teacher_share)
    return np.array([prompt_key(p) not in theirs for p in prompts], dtype=bool)


def probe_judge(cfg, judge):
    """The judge that values the probes: `calibration.judge` with `by: judge` when it names another
    judge than the run's, else the run's ``judge`` (already made)."""

    st = cfg.calibration
    if st.by == "judge" and st.judge and st.judge != cfg.judge:
        return make_judge(st.judge, judge_context(cfg, Path(cfg.out) / "judge"))
    return judge


class ProbeJudge:
    """How a probe is valued on validation data (`settings`: a `CalibrationSettings`, by default
    the run's `calibration:` section): WinRate against π_ref on the validation prompts, or the
    objective's validation loss."""

    def __init__(self, run, inp, judge, settings=None):
        self.run, self.inp, self.judge = run, inp, judge
        st = run.cfg.calibration if settings is None else settings
        self.by = st.by
        # the judge that values the probes
        self.spec = (st.judge or run.cfg.judge) if st.by == "judge" else None
        self.seed = int(run.cfg.seeds[0])
        # (calibration.holdout: the probes' own share)
        validation = probe_validation(run.cfg, inp.validation)
        if self.by == "judge":
            prompts = validation_prompts(validation, st.prompts)
            if not prompts:
                raise ConfigError(key="validation",
                                  problem="holds no pairs, so the probes have no prompts to be "
                                          "judged on: give validation pairs")
            self.answers = Answers(run, inp, prompts, per_prompt=st.answers)
            self.unseen = unseen_by_teacher(run.cfg, validation, prompts)
            # What the test evaluation's key holds: the judge as configured, the sampler, the
            # sampling.
            self.key = stage_key("judge", self.spec, judge.name, self.answers.sampler.name,
                                 stage_key(prompts),
                                 st.answers, run.cfg.temperature, run.cfg.max_new_tokens, self.seed,
                                 # (an API judge's settings)
                                 *([judge.key] if getattr(judge, "paid", False) else []))
        else:
            self.pairs = tokenized(validation, inp.tokenizer)
            self.unseen = unseen_by_teacher(run.cfg, validation,
                                            [r.prompt for r in validation.valid_rows])
            if not self.pairs:
                raise ConfigError(key="validation",
                                  problem="holds no usable pairs, so `calibration.by: loss` has "
                                          "nothing to value the probes on: give validation pairs")
            self._ref = None
            # TRL's max_length: the loss is over the tokens the probe trained on (as TRL's eval_loss
            # is).
            self.max_length = run.cfg.final.max_length
            self.key = stage_key("loss", self.max_length,
                                 stage_key([r["prompt"] + r["chosen"] + r["rejected"]
                                            for r in validation.records()]))

    def describe(self, settings) -> str:
        return (f"WinRate vs π_ref on {len(self.answers.prompts)} validation prompts x "
                f"{settings.answers} answers (judge {self.spec})" if self.by == "judge"
                else "the validation loss on the validation pairs (no judge)")

    def _logps(self, model):
        pad = self.inp.tokenizer.pad_token_id
        return compute_pair_logps(model, self.pairs, pad if pad is not None else 0,
                                  LogprobSettings(max_length=self.max_length), progress=False)

    def value(self, model) -> dict:
        """The probe's metrics. "value" is the one candidates are compared on (higher is better);
        "per_prompt" its value per validation prompt (WinRate) or per validation pair (−loss), whose
        mean it is, for paired comparisons."""
        if self.by == "judge":
            a = self.answers
            e = evaluate_answers(self.judge, a.asked, a.of(model, self.seed),
                                 a.reference(self.seed), seed=self.seed, n_prompts=len(a.prompts))
            return {"value": e.win_rate.win_rate, "win_rate": e.win_rate.win_rate,
                    "wr_low": e.win_rate.low, "wr_high": e.win_rate.high, "score": e.score_aligned,
                    "per_prompt": [round(float(v), 6) for v in per_prompt(e.prefs, len(a.prompts))]}

        if self._ref is None:
            self._ref = self._logps(self.inp.reference)
        p, r = self._logps(model), self._ref
        obj = self.inp.objective
        t = torch.as_tensor
        margin = obj.margin(t(p.chosen), t(p.rejected), t(r.chosen), t(r.rejected),
                            t(p.chosen_tokens), t(p.rejected_tokens))
        losses = obj.loss(margin)  # the preference loss only (no sft_weight term)
        loss = float(losses.mean())
        return {"value": -loss if np.isfinite(loss) else float("-inf"), "val_loss": loss,
                "val_margin": float(margin.mean()),
                "per_prompt": [round(-float(v), 8) for v in losses]}


def run_probe(run, inp, theta_key: str, records: list[dict], data_key: str, settings, folder,
              name: str, label: str, probe_judge: ProbeJudge, variant=None) -> dict:
    """θ trained by `settings` on `records` into `folder`, valued by `probe_judge`, the model folder
    then deleted (its result is all a rerun needs). Returns the probe's row: its metrics, steps and
    the seconds of training and judging."""
    t = time.time()
    model, info = TrainingStage(run.dir.warmup_model, inp.reference, inp.tokenizer, records,
                              inp.objective, settings, folder, start_key=theta_key,
                              data_key=data_key, name=name, lora=inp.lora, log=lambda *a, **k: None,
                              label=label, progress=run.progress, variant=variant).run()
    t_train = time.time() - t
    t = time.time()
    row = {**probe_judge.value(model), "steps": info["steps"], "train_seconds": t_train,
           "judge_seconds": time.time() - t}
    del model
    shutil.rmtree(folder, ignore_errors=True)
    return row


def reusable_probe(path, key: str) -> dict | None:
    """A probe's result written under `key` at `path`, or None (none yet, another key,
    unreadable)."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("key") == key else None
