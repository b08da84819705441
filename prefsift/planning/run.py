"""The plan of `prefsift run`: the warm-up, the scores, every arm, the evaluation.

The data stage runs first when its files do not exist yet (the lab is built, or the sentiment
pairs sampled): the plan needs the pairs and π_ref. θ does not exist before the warm-up, so the
scores are probed on π_ref, which has θ's architecture and therefore its cost."""

from __future__ import annotations

import copy
import dataclasses
import json
import time

import numpy as np

from ..core import artifacts
from ..core.errors import ConfigError
from ..eval.judges import make_judge
from ..models.loading import add_lora, resolve_model_path
from ..pipeline.calibrate import read_calibrations, validation_prompts
from ..pipeline.inputs import check_run_inputs, read_test_prompts
from ..pipeline.judge_cost import judge_cost, judge_tokenizer
from ..pipeline.judging import judge_context
from ..pipeline.probed_arms import probe_plan
from ..pipeline.probes import probe_judge, score_validation
from ..pipeline.recommend import read_recommendation
from ..pipeline.rundir import Manifest, RunDir
from ..pipeline.stages import Answers, Run, data_stage, load_inputs
from ..scoring.careful import teacher_rows
from ..scoring.table import _tokenized
from ..selection.kinds import ArmContext, kind_of
from .memory import Shape
from .plan import GIB, Plan, StagePlan
from .probes import (
    _timed,
    engine_tokens,
    pair_lengths,
    probe_engine,
    probe_training,
    training_stage,
    weight_bytes,
    weights,
)
from .scores import plan_scores


def plan_run(cfg, processes: int = 1, log=print) -> Plan:
    """Each stage of `prefsift run` with `cfg` (a RunConfig) over `processes` processes."""
    if cfg.route != "dpo":
        raise ConfigError(key="route", problem=f"is {cfg.route!r}: the planner knows the dpo "
                                               "route's stages only so far (reward-model and RL "
                                               "stages are not probed yet)")
    read = check_run_inputs(cfg)
    rd = RunDir(cfg.out)
    rd.root.mkdir(parents=True, exist_ok=True)
    with artifacts.RunLock(cfg.out, log):
        return RunPlanner(cfg, processes, log, rd).plan(read)


class RunPlanner:
    """The plan of one run, stage by stage, from probes of π_ref on the run's own pairs: the data
    stage runs (the plan needs the pairs and π_ref), then each step below adds its stages. The
    random subsets that stand for the arms are drawn from one generator, in the stages' order."""

    def __init__(self, cfg, processes: int, log, rd):
        self.cfg, self.processes, self.log, self.rd = cfg, processes, log, rd
        self.rng = np.random.default_rng(0)
        self.ctx = ArmContext.of(cfg)

    def plan(self, read: dict) -> Plan:
        cfg = self.cfg
        t0 = time.perf_counter()
        self.run = Run(cfg, self.rd, Manifest(self.rd, cfg.to_dict(), self.log), self.log,
                       progress=False)
        self.data = data_stage(self.run)
        data_seconds = time.perf_counter() - t0
        t_probe = time.perf_counter()
        self._probe_models(read)
        device = str(next(self.ref.parameters()).device)
        plan = Plan(f"prefsift run {cfg.out} ({len(self.train)} pairs, arms {cfg.arms}, seeds "
                    f"{cfg.seeds})",
                    self.processes, device, activations_counted=device.startswith("cuda"))
        plan.stages.append(StagePlan("data (ran)", data_seconds, 0.0, 0.0,
                                     "run now: the plan needs the pairs and π_ref"))
        plan.stages += ([self._warmup(), self._scores()] + self._score_models()
                        + [self._arms(), self._evaluation(plan)])
        plan.stages += self._calibration()
        plan.probe_seconds = time.perf_counter() - t_probe
        return plan

    def _probe_models(self, read: dict) -> None:
        """π_ref and the pairs loaded; the engine's rate, the pairs' lengths, the memory
        settings."""
        cfg = self.cfg
        self.inp = load_inputs(self.run, self.data, read)
        self.tok, self.ref = self.inp.tokenizer, self.inp.reference
        self.n_w, self.w_bytes = weights(self.ref), weight_bytes(self.ref)
        # (memory under FSDP: sharded over the processes, the largest unit gathered;
        # planning/memory.py)
        self.mem = dict(largest_unit=Shape.of(self.ref).largest_unit,
                        fsdp=cfg.shard == "fsdp" and self.processes > 1, lora=cfg.lora is not None)
        self.train = _tokenized(self.inp.train, self.tok)
        val = _tokenized(self.inp.validation, self.tok)
        max_len = cfg.warmup.max_length
        self.rate = probe_engine(self.ref, self.train, self.tok.pad_token_id, max_len,
                                 cfg.scores.batch_tokens, cfg.scores.head_chunk)
        self.val_tokens = engine_tokens(val, max_len, cfg.scores.batch_tokens)
        self.lengths = pair_lengths(self.train, max_len)
        # an arm's pairs at the kept fraction
        self.kept = max(1, round(cfg.keep * len(self.lengths)))
        self.start = str(resolve_model_path(self.data.reference))

    def _training(self, name: str, probe, lengths: list, settings, **kw) -> StagePlan:
        return training_stage(name, probe, self.rate, lengths, settings, self.processes, self.n_w,
                              self.w_bytes, **kw, trainable=self.trainable, **self.mem)

    def _warmup(self) -> StagePlan:
        cfg = self.cfg
        self.warm = probe_training(self.start, self.ref, self.tok, self.inp.train.records(),
                                   self.inp.objective, cfg.warmup, self.processes, lora=cfg.lora)
        self.trainable = _lora_weights(self.ref, cfg.lora)
        return self._training("warmup", self.warm, self.lengths, cfg.warmup,
                              eval_tokens=self.val_tokens,
                              eval_steps=cfg.eval_steps, reference=cfg.lora is None)

    def _scores(self) -> StagePlan:
        self.scfg = self.cfg.score_config(self.start, self.start, str(self.data.train),
                                          str(self.data.validation), out=str(self.rd.score))
        scores = plan_scores(self.scfg, self.processes, models=(self.tok, self.ref, self.ref),
                             log=self.log)
        return StagePlan("scores", scores.seconds, sum(s.flops for s in scores.stages),
                         max(s.peak_gib for s in scores.stages),
                         "the score plan (" + ", ".join(f"{s.stage} {s.seconds:.0f} s"
                                                        for s in scores.stages) + ")")

    def _score_models(self) -> list[StagePlan]:
        """The models some scores train: Selective DPO's fold models, the teacher θ_c."""
        cfg, stages = self.cfg, []
        args = (self.warm, self.rate, self.lengths, self.train, cfg, self.processes, self.n_w,
                self.w_bytes, self.trainable, self.rng, self.mem)
        if "heldout" in self.scfg.wanted:
            stages.append(_folds_stage(cfg.scores.folds, *args))
        # θ_c: DPO from π_ref on the teacher's share of the validation pairs
        if "teacher" in self.scfg.wanted:
            stages.append(_teacher_stage(self.inp, *args))
        return stages

    def _arms(self) -> StagePlan:
        """Every arm x seed: a training on a subset of its size, times its passes (each kind's
        cost)."""
        cfg = self.cfg
        same = (dataclasses.replace(cfg.final, epochs=1.0)
                == dataclasses.replace(cfg.warmup, epochs=1.0))
        self.final = self.warm if same else probe_training(self.start, self.ref, self.tok,
                                                           self.inp.train.records(),
                                                           self.inp.objective, cfg.final,
                                                           self.processes, lora=cfg.lora)
        arms = list(cfg.arms)
        self.jobs = [(a, s) for s in cfg.seeds for a in arms]
        total = StagePlan("arms", 0.0, 0.0, 0.0, "")
        costs = {a: kind_of(a, self.ctx).cost(a) for a in arms}  # what each arm's training costs
        for arm, seed in self.jobs:
            c = costs[arm]
            subset = _sized_like(self.lengths, len(self.lengths) if c.every_pair else self.kept,
                                 self.rng)
            one = self._training(arm, self.final, subset, dataclasses.replace(cfg.final, seed=seed),
                                 eval_tokens=self.val_tokens, eval_steps=cfg.eval_steps)
            # (cDPO: TRL's loss of each batch both ways round)
            total.seconds += c.passes * one.seconds
            total.flops += c.passes * one.flops
            total.peak_gib = max(total.peak_gib, one.peak_gib)
        total.basis = (f"{len(self.jobs)} arm stages ({len(arms)} arms x {len(cfg.seeds)} seeds), "
                       f"{cfg.keep:.0%} of "
                       "the pairs each (full and the every-pair treatments: all; cdpo twice); TRL "
                       "probe")
        if any(c.per_pair for c in costs.values()):
            total.basis += ("; the weighted arms run one pair per forward pass, which the batched "
                            "probe does not time")
        return total

    def _evaluation(self, plan: Plan) -> StagePlan:
        """Every arm's answers and judging, and π_ref's once per seed: one whole answering call
        probed."""
        cfg = self.cfg
        prompts = read_test_prompts(self.data.test_prompts, cfg.eval_prompts)
        self.device = next(self.ref.parameters()).device
        self.judge = make_judge(cfg.judge, judge_context(cfg))
        # an API judge is not asked while planning: its calls are counted
        paid = getattr(self.judge, "paid", False)
        plan.judge = dataclasses.asdict(judge_cost(cfg, len(prompts), prompts,
                                                   judge_tokenizer(cfg, lambda: self.tok)))

        # seconds to answer k prompts in one call, and to judge them
        def cost(k: int) -> tuple[float, float]:
            few = Answers(self.run, self.inp, prompts[:k])
            t_answer, got = _timed(self.device, lambda: few.of(self.ref, 1))
            t_judge, _ = ((0.0, None) if paid
                          else _timed(self.device, lambda: self.judge.prefers(few.asked, got, got)))
            return t_answer, t_judge

        cost(4)  # warm-up
        # One call answers every held-out prompt in batches, so its cost is not linear in the
        # prompts: the probe is one whole call (π_ref's answers, as the run's first evaluation makes
        # them).
        per_call, per_judging = cost(len(prompts))
        calls = len(self.jobs) + len(cfg.seeds)  # every arm, and π_ref once per seed
        answering, judging = calls * per_call, len(self.jobs) * per_judging
        return StagePlan("evaluation", answering + judging,
                         2 * self.n_w * calls * len(prompts) * cfg.answers_per_prompt
                         * cfg.max_new_tokens, self.w_bytes * 2 / GIB,
                         f"{calls} answering calls of {len(prompts)} prompts x "
                         f"{cfg.answers_per_prompt} answers, {len(self.jobs)} judgings; "
                         + ("probe: one whole call (the API judge's time is not probed: "
                            "see its calls)" if paid else
                            "probe: one whole call and its judging"))

    def _calibration(self) -> list[StagePlan]:
        """The probes of the arms chosen by probes: short trainings, valued on the validation
        data."""
        cfg, st = self.cfg, self.cfg.calibration
        n_probes, whole = probe_plan(cfg.arms, st, self.ctx)
        if not n_probes:
            return []
        # in probes of the kept size: a probe that trains on every pair is len/kept of them
        trainings = n_probes - whole + whole * len(self.lengths) / self.kept
        subset = _sized_like(self.lengths, self.kept, self.rng)
        one = self._training("probe", self.final, subset,
                             dataclasses.replace(cfg.final, epochs=st.probe_epochs),
                             eval_tokens=0, eval_steps=None)
        asked = validation_prompts(self.inp.validation, st.prompts)
        t_answer = t_judge = 0.0
        if st.by == "judge" and asked:
            few = Answers(self.run, self.inp, asked, per_prompt=st.answers)
            t_answer, got = _timed(self.device, lambda: few.of(self.ref, 1))
            valuer = probe_judge(cfg, self.judge)
            t_judge, _ = _timed(self.device, lambda: valuer.prefers(few.asked, got, got))
        how = (f"each judged on {len(asked)} validation prompts x {st.answers} answers"
               if st.by == "judge" else "each scored by its validation loss")
        return [StagePlan("calibration",
                          trainings * one.seconds + n_probes * (t_answer + t_judge) + t_answer,
                          trainings * one.flops, one.peak_gib,
                          f"{n_probes} probes of {st.probe_epochs:g} epoch on about {self.kept} "
                          f"pairs, {how}")]


def _folds_stage(k: int, warm, rate: float, lengths: list, train, cfg, processes: int, n_w: int,
                 w_bytes: int, trainable, rng, mem: dict) -> StagePlan:
    """Selective DPO's fold models: K warm-up trainings on (K-1)/K of the pairs each, and one
    log-prob pass over the pairs (each fold model over its held-out share)."""
    folds = StagePlan("selective folds", 0.0, 0.0, 0.0, "")
    for i in range(k):
        seen = _sized_like(lengths, len(lengths) * (k - 1) // k, rng)
        one = training_stage(f"fold{i}", warm, rate, seen, cfg.warmup, processes, n_w, w_bytes,
                             trainable=trainable, reference=cfg.lora is None, **mem)
        folds.seconds += one.seconds
        folds.flops += one.flops
        folds.peak_gib = max(folds.peak_gib, one.peak_gib)
    _add_logprob_pass(folds, train, cfg, rate, processes, n_w)
    folds.basis = (f"{k} warm-up trainings on {k - 1}/{k} of the pairs (TRL probe), and one "
                   "log-prob pass over the pairs, each fold model on its held-out share")
    return folds


def _teacher_stage(inp, warm, rate: float, lengths: list, train, cfg, processes: int, n_w: int,
                   w_bytes: int, trainable, rng, mem: dict) -> StagePlan:
    """The teacher θ_c: a training of `teacher_epochs` on its share of the validation pairs (sized
    like training pairs), and one log-prob pass over the training pairs."""
    n = len(teacher_rows(score_validation(cfg, inp.validation), cfg.scores.teacher_share))
    settings = dataclasses.replace(cfg.warmup, epochs=cfg.scores.teacher_epochs)
    one = training_stage("teacher", warm, rate, _sized_like(lengths, min(n, len(lengths)), rng),
                         settings, processes,
                         n_w, w_bytes, trainable=trainable, reference=cfg.lora is None, **mem)
    _add_logprob_pass(one, train, cfg, rate, processes, n_w)
    one.basis = (f"{cfg.scores.teacher_epochs:g} epochs on {n} validation pairs (TRL probe, pairs "
                 "sized like the training pairs), and one log-prob pass over the training pairs")
    return one


def _add_logprob_pass(stage: StagePlan, train, cfg, rate: float, processes: int, n_w: int) -> None:
    """Add one log-prob pass over the training pairs to ``stage`` (a model trained from π_ref scores
    them)."""
    tokens = engine_tokens(train, cfg.warmup.max_length, cfg.scores.batch_tokens)
    stage.seconds += rate * tokens / processes
    stage.flops += 2 * n_w * tokens


def _sized_like(lengths: list, n: int, rng) -> list:
    """A random `n` of the pairs' lengths, in order: an arm of that size, as far as its cost
    goes."""
    return [lengths[i] for i in np.sort(rng.choice(len(lengths), size=n, replace=False))]


def _lora_weights(model, lora) -> int | None:
    """How many weights LoRA adapters add to `model` (None without LoRA: every weight trains)."""
    if lora is None:
        return None


    adapted = add_lora(copy.deepcopy(model), lora)  # a copy: adapters are injected in place
    return sum(p.numel() for p in adapted.parameters() if p.requires_grad)


def actual_run_seconds(rd, arms: list, seeds: list) -> dict[str, float]:
    """A finished run's seconds per planned stage, from its manifest and the stage files of its own
    arms and seeds (not those an earlier config of the same folder left)."""
    man = json.loads(rd.manifest.read_text())["stages"]
    out = {k: man[k]["seconds"] for k in ("data", "warmup", "scores") if k in man}
    jobs = [(a, s) for s in seeds for a in arms]
    stages = [rd.arm(a, s) / "stage.json" for a, s in jobs if not _copied(rd, a, s)]
    done = [p for p in stages if p.exists()]  # (an arm without data is skipped)
    if done:
        out["arms"] = float(sum(json.loads(p.read_text()).get("seconds", 0.0) for p in done))
    evals = [man[f"eval/{a}/{s}"]["seconds"] for a, s in jobs if f"eval/{a}/{s}" in man]
    if evals:
        out["evaluation"] = float(sum(evals))


    cals = read_calibrations(rd, arms)
    probes = [c["probe_seconds"] for c in cals.values()]
    if "auto" in arms and (rec := read_recommendation(rd)) is not None:
        probes.append(rec["probe_seconds"])
    if probes:
        out["calibration"] = float(sum(probes))
    return out


def _copied(rd, arm: str, seed) -> bool:
    """Whether an arm's stage is a copy of another arm's (the auto arm's choice, trained by that
    arm)."""
    if arm != "auto" or not (rd.arm(arm, seed) / "stage.json").exists():
        return False

    rec = read_recommendation(rd)
    own = rd.arm(rec["chosen"], seed) / "stage.json" if rec else None
    return bool(own and own.exists() and json.loads(own.read_text())["key"]
                == json.loads((rd.arm(arm, seed) / "stage.json").read_text())["key"])
