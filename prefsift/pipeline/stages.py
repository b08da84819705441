"""The stages of `prefsift run`, one function each, with its key, its inputs and its artifacts.

    data → warm-up (θ) → scores → selections → arm (per rule and seed) → evaluation → results →
    report

A stage reads what the stages before it handed over (`Inputs`, θ, the scores table) and writes its
artifacts under the `RunDir`. Its key hashes its own settings and the keys of the stages it reads,
so a rerun redoes exactly the stages a changed setting affects."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..browser.report import report_extras
from ..core import artifacts, faults
from ..core.errors import ConfigError, UserError
from ..data import load_pairs
from ..eval.paired import per_prompt
from ..eval.tables import format_selections, paired_columns, summarize_arms
from ..eval.winrate import evaluate_answers, win_rate
from ..lab import make_lab
from ..lab.sentiment import make_sentiment_lab
from ..models.loading import load_model, load_tokenizer
from ..models.objectives import PairwiseObjective
from ..runtime.devices import machine, placement
from ..runtime.distributed import barrier, world
from ..scoring.table import score_pairs
from ..selection.kinds import ArmContext, is_plain, kind_of
from ..selection.rows import training_data, treatments_frame
from ..train import TrainingStage
from ..train.warmup import warm_up
from .answers import Answers  # noqa: F401  (re-exported)
from .calibrate import read_calibrations
from .config import RunConfig
from .judging import calls_html
from .probes import score_validation
from .recommend import read_recommendation
from .rundir import Manifest, RunDir, stage_key


@dataclass
class Run:
    """What every stage of one run shares: its config, directory, manifest and log."""

    cfg: RunConfig
    dir: RunDir
    manifest: Manifest
    log: object = print
    progress: bool = True


@dataclass
class Data:
    """The data stage's result: the pair files, the held-out prompts' file, π_ref's spec, its
    key."""

    train: Path
    validation: Path
    test_prompts: Path
    reference: str
    key: str
    is_lab: bool


def lab_key(lab_cfg) -> str:
    """The lab stage's key: only what changes the data (not progress bars, threads, or where the SFT
    model came from). `ratings: independent` is the lab as it was before the setting existed, so the
    runs made then keep their key."""
    return stage_key("lab", {k: v for k, v in asdict(lab_cfg).items()
                             if k not in ("progress", "threads", "resume", "share_sft")
                             and not (k == "ratings" and v == "independent")})


def data_stage(run: Run) -> Data:
    """The lab (built, or reused when unchanged), the sentiment pairs of a real model, or your
    files."""
    cfg, rd, log = run.cfg, run.dir, run.log
    t = time.time()
    if cfg.lab is not None:
        lab_cfg = dataclasses.replace(cfg.lab, progress=run.progress)
        # Only what changes the data: not progress bars, threads, or where the SFT model came from.
        key = lab_key(lab_cfg)
        log(f"[data] lab -> {rd.lab}")
        # resumes on its own (SFT stamp, deterministic files)
        _on_rank0(lambda: make_lab(lab_cfg, rd.lab))
        data = Data(rd.lab / "train.jsonl", rd.lab / "validation.jsonl",
                    rd.lab / "test_prompts.jsonl", str(rd.lab / "sft_model"), key, True)
    elif cfg.sentiment is not None:
        s_cfg, s_dir = cfg.sentiment, rd.sentiment
        key = stage_key("sentiment", asdict(s_cfg))
        data = Data(s_dir / "train.jsonl", s_dir / "validation.jsonl", s_dir / "test_prompts.jsonl",
                    cfg.reference or s_cfg.model, key, False)
        if run.manifest.done("data", key) and data.test_prompts.exists():
            log(f"[data] sentiment pairs already in {s_dir}")
        else:
            log(f"[data] sentiment pairs from {s_cfg.model}'s own samples, rated by VADER -> "
                f"{s_dir}")
            _on_rank0(lambda: make_sentiment_lab(s_cfg, s_dir, progress=run.progress))
    else:
        files = [Path(cfg.train), Path(cfg.validation), Path(cfg.test_prompts)]
        key = stage_key("files", [str(p) for p in files], cfg.reference,
                        [p.stat().st_mtime for p in files])
        data = Data(*files, cfg.reference, key, False)
    run.manifest.record("data", key, time.time() - t)
    return data


def _on_rank0(make) -> None:
    """Files made once: by rank 0, while the other ranks of a launcher wait for them."""
    if world().is_main:
        make()
    barrier()


@dataclass
class Inputs:
    """Loaded once and handed to every later stage: tokenizer, π_ref, the pairs, the objective."""

    data: Data
    tokenizer: object
    reference: object
    train: object  # PairSet
    validation: object  # PairSet
    objective: object  # PairwiseObjective
    lora: object  # LoraSettings | None


def load_inputs(run: Run, data: Data, read: dict) -> Inputs:
    """π_ref and its tokenizer, and the pairs (your files were already read by
    `check_run_inputs`)."""
    cfg = run.cfg
    strict = cfg.scores.strict
    train = read["train"] if "train" in read else load_pairs(data.train, strict=strict)
    val = read["validation"] if "validation" in read else load_pairs(data.validation, strict=strict)
    return Inputs(data, load_tokenizer(data.reference),
                  load_model(data.reference, **placement(cfg.device, cfg.dtype)),
                  train, val, PairwiseObjective(cfg.objective, cfg.beta), cfg.lora)


def warmup_stage(run: Run, inp: Inputs) -> tuple[str, dict]:
    """θ = π_ref + `warmup` of DPO on all training pairs, through TRL (`prefsift warmup`'s own
    stage, `train.warmup.warm_up`). Returns (key, stage info)."""
    t = time.time()
    cfg = run.cfg
    key = stage_key(inp.data.key, asdict(inp.objective), asdict(cfg.warmup),
                    asdict(cfg.lora) if cfg.lora else None)
    run.log("[warm-up] DPO through TRL from π_ref on all training pairs")
    # From π_ref's folder: the stage loads its own trainable copy; π_ref in memory is the shared
    # reference.
    _, info = warm_up(inp.data.reference, inp.reference, inp.tokenizer, inp.train.records(),
                      inp.objective, cfg.warmup,
                      run.dir.warmup, data_key=inp.data.key, eval_records=inp.validation.records(),
                      eval_steps=cfg.eval_steps, lora=inp.lora, log=run.log, progress=run.progress)
    run.manifest.record("warmup", key, time.time() - t, steps=info["steps"])
    return key, info


def scores_stage(run: Run, inp: Inputs, theta, warmup_key: str, warmup_info: dict) -> pd.DataFrame:
    """IRM, LossDiff, IF and TIF of every pair at θ (`scoring.table.score_pairs`), in run/score/."""
    t = time.time()
    cfg, rd = run.cfg, run.dir
    scfg = cfg.score_config(str(rd.warmup_model), inp.data.reference, str(inp.data.train),
                            str(inp.data.validation), out=str(rd.score))
    # Copies: scoring marks over-length rows in its pairs, and the arms must read the same pairs
    # whether the scores were computed now or reused.

    # (in the key only if set)
    holdout = {"holdout": cfg.calibration.holdout} if cfg.calibration.holdout else {}
    return reused_or_scored(run, scfg, warmup_key, warmup_info, t, lambda: score_pairs(
        scfg, copy.deepcopy(inp.train), copy.deepcopy(score_validation(cfg, inp.validation)),
        progress=run.progress, log=run.log, models=(inp.tokenizer, inp.reference, theta),
        # (folds: warm-up)
        warmup=(dataclasses.replace(cfg.warmup, seed=cfg.scores.seed), cfg.lora)), extra=holdout)


def reused_or_scored(run: Run, scfg, warmup_key: str, warmup_info: dict, t: float, score,
                     extra: dict | None = None) -> pd.DataFrame:
    """The scores stage around `score()` (either route's table): reused when its key is unchanged
    and its file intact, else computed into run/score/; recorded in the manifest."""
    rd = run.dir
    # Paths are not part of the key (the data's and the warm-up's keys stand for what they hold), so
    # a run directory that is moved or copied keeps its scores.
    # (`folds` only where the held-out score is asked for, so that other runs keep their keys; the
    # sharding changes no score beyond summation order)
    unused = ("folds",) if "heldout" not in scfg.wanted else ()
    unused += ("teacher_epochs", "teacher_share") if "teacher" not in scfg.wanted else ()
    unused += ("group_by",) if "group_noise" not in scfg.wanted else ()
    unused += ("shard",)
    key = stage_key(warmup_key, warmup_info["key"],
                    {k: v for k, v in asdict(scfg).items() if k not in (
        "policy", "reference", "train", "validation", "out", "warmup", "warmup_epochs", "warmup_lr",
        "warmup_batch_size")
        + unused}, *([extra] if extra else []))
    if (run.manifest.done("scores", key)
        and artifacts.trusted(rd.scores_table, "the scores table", run.log)):
        table = pd.read_parquet(rd.scores_table)
    else:
        rd.score.mkdir(parents=True, exist_ok=True)
        table = score()
    run.manifest.record("scores", key, time.time() - t)
    return table


def selections_stage(run: Run, table: pd.DataFrame, choosers: dict | None = None
                     ) -> tuple[dict[str, np.ndarray], dict, dict]:
    """Every arm's selection (`prefsift.selection.kinds`: a registered rule, a window, imported from
    another run, a treatment, or chosen by probes: ``choosers[kind](arm)`` returns a calibrated
    arm's mask, see `calibrate.py`, or the `auto` arm's `ArmData`, see `recommend.py`) →
    selection.parquet.

    Returns the masks by arm, and by (arm, seed) those of seeded rules (`random`), which are drawn
    anew for every training seed so that an arm's spread over seeds holds the draw of its subset;
    selection.parquet has a column ``ARM@seedS`` for each, and ``ARM`` is the first seed's. Third,
    the `ArmData` of the arms that train other than plainly (weights, swapped labels, a loss, an
    order), whose weights and swaps are written to treatments.parquet (the mask, its pairs, is in
    selection.parquet as any arm's)."""
    cfg, ctx = run.cfg, ArmContext.of(run.cfg)
    masks = {"full": table["valid"].to_numpy(dtype=bool)}
    seeded: dict[tuple[str, int], np.ndarray] = {}
    treated = {}
    for arm in cfg.arms:
        kind = kind_of(arm, ctx)
        if arm == "full":
            continue
        if kind.probed:
            if (chooser := (choosers or {}).get(kind.name)) is None:
                raise ConfigError(key="arms",
                                  problem=f"{arm!r} is chosen by probe trainings, which route "
                                          f"{cfg.route!r} does not run; drop it")
            data = chooser(arm)
            if isinstance(data, np.ndarray):
                masks[arm] = data
                continue
        elif kind.seeded(arm) and cfg.seeds:
            drawn = {int(s): kind.data(arm, table, ctx, seed=int(s)) for s in cfg.seeds}
            if not any(isinstance(d, str) for d in drawn.values()):
                seeded.update({(arm, s): d.mask for s, d in drawn.items()})
                masks[arm] = seeded[(arm, int(cfg.seeds[0]))]
                continue
            data = drawn[int(cfg.seeds[0])]
        else:
            data = kind.data(arm, table, ctx)
        if isinstance(data, str):
            run.log(f"  {arm} arm skipped: {data}")
            continue
        masks[arm] = data.mask
        if data.note:
            run.log(f"  {arm}: {data.note}")
        if kind.treats or not is_plain(data):
            treated[arm] = data
    sel = table[["id", "valid", "reason"]].copy()
    for a, m in masks.items():
        sel[a] = m
    for (a, s), m in seeded.items():
        sel[f"{a}@seed{s}"] = m
    if world().is_main:
        artifacts.write_parquet(run.dir.selection, sel)
        if treated:
            artifacts.write_parquet(run.dir.root / "treatments.parquet",
                                    treatments_frame(table, treated))
    run.log(format_selections(table, masks))
    return masks, seeded, treated


def arm_stage(run: Run, inp: Inputs, theta_key: str, arm: str, seed: int, mask: np.ndarray,
              ids: list, treated=None):
    """One arm: θ trained further (`final`) on its selection with ``seed``, from θ's folder (no copy
    of θ in memory); a treatment arm (``treated``, its `ArmData`) with its pairs' weights, swapped
    labels and loss. Returns (model, stage info)."""
    cfg = run.cfg
    settings = dataclasses.replace(cfg.final, seed=int(seed))
    records, data_key, variant = training_data(inp.train, mask, treated, ids, int(seed),
                                               cfg.final.batch_size)
    name, same_as = f"arm-{arm}", None
    # the chosen candidate's own training: copied when that arm of the run has it already
    if arm == "auto":
        chosen = read_recommendation(run.dir)["chosen"]
        name, same_as = f"arm-{chosen}", run.dir.arm(chosen, seed)
    return TrainingStage(run.dir.warmup_model, inp.reference, inp.tokenizer, records, inp.objective,
                       settings, run.dir.arm(arm, seed), start_key=theta_key, data_key=data_key,
                       name=name, same_as=same_as, eval_records=inp.validation.records(),
                       eval_steps=cfg.eval_steps, lora=inp.lora, log=run.log,
                       label=f"arm {arm} seed {seed}", progress=run.progress, variant=variant).run()


def evaluation_stage(run: Run, answers: Answers, judge, arm: str, seed: int, n_pairs: int, model,
                     arm_info: dict) -> dict:
    """The arm's answers judged against π_ref's on the same prompts and sampling seeds → its
    eval.json."""
    cfg, rd = run.cfg, run.dir
    t = time.time()
    # The prompts themselves are in the key: another test file with the same θ is another
    # evaluation.
    key = stage_key(arm_info["key"], cfg.judge, cfg.eval_prompts, cfg.temperature,
                    cfg.max_new_tokens, seed, answers.sampler.name, stage_key(answers.prompts),
                    *([cfg.answers_per_prompt] if cfg.answers_per_prompt != 1 else []),
                    # (an API judge's template, sampling)
                    *([judge.key] if getattr(judge, "paid", False) else []))
    path = rd.arm_eval(arm, seed)
    if run.manifest.done(f"eval/{arm}/{seed}", key) and artifacts.trusted(path, f"the evaluation "
                                                                          f"of {arm}, seed {seed}",
                                                                          run.log):
        ev = json.loads(path.read_text())
    else:
        reference = answers.reference(seed)
        aligned = answers.of(model, seed)
        before = judge.counts.as_dict() if getattr(judge, "paid", False) else None
        e = evaluate_answers(judge, answers.asked, aligned, reference, seed=seed,
                             n_prompts=len(answers.prompts))
        ev = {"arm": arm, "seed": seed, "n_pairs": n_pairs, **e.to_dict(), "answers": aligned,
              **({"rm_accuracy": arm_info["rm_accuracy"]} if "rm_accuracy" in arm_info else {}),
              **({"judge_calls": judge.counts.minus(before)} if before is not None else {})}
        faults.point("evaluate")
        artifacts.write_json(path, ev)
    run.manifest.record(f"eval/{arm}/{seed}", key, time.time() - t)
    return ev


EVAL_COLUMNS = ["arm", "seed", "n_pairs", "win_rate", "low", "high", "score", "score_reference",
                "head_to_head"]


def results_stage(run: Run, judge, answers: Answers, evaluations: list[dict]) -> tuple[pd.DataFrame,
        pd.DataFrame]:
    """One row per arm and seed, with the head-to-head against the full-data arm of the same seed
    (same sampling seeds, same prompts) → eval.csv; and one row per arm, the mean over seeds with
    the paired differences against `random` and `full` → eval.json. Returns both tables."""
    by = {(r["arm"], r["seed"]): r for r in evaluations}
    n_prompts = len(answers.prompts)
    rows = []
    for r in evaluations:
        full = by.get(("full", r["seed"]))
        h2h = None
        if full is not None:
            h2h = win_rate(per_prompt(judge.prefers(answers.asked, r["answers"], full["answers"]),
                                      n_prompts),
                           seed=r["seed"]).win_rate
        wr = r["win_rate"]
        rows.append({"arm": r["arm"], "seed": r["seed"], "n_pairs": r["n_pairs"],
                     "win_rate": wr["win_rate"],
                     "low": wr["low"], "high": wr["high"], "score": r["score_aligned"],
                     "score_reference": r["score_reference"], "head_to_head": h2h,
                     **({"rm_accuracy": r["rm_accuracy"]} if "rm_accuracy" in r else {})})
    # Route rm_rl adds each arm's reward-model accuracy on judge-labelled validation pairs.
    extra = ["rm_accuracy"] if any("rm_accuracy" in r for r in rows) else []
    evaluation = pd.DataFrame(rows, columns=EVAL_COLUMNS + extra)
    artifacts.atomic_write(run.dir.eval_csv, lambda tmp: evaluation.to_csv(tmp, index=False))
    summary = summarize_arms(evaluation, paired_columns(evaluations, n_prompts))
    artifacts.write_text(run.dir.eval_json, json.dumps({"arms": summary.to_dict("records"),
                                                        "runs": evaluation.to_dict("records"),
                                                        "judge": judge.name, "prompts": n_prompts,
                                                        "answers_per_prompt": answers.per_prompt,
                                                        "machine": machine(),
                                                        **({"judge_calls": judge.totals()}
                                                           if getattr(judge, "paid", False)
                                                           else {})},
                                                       indent=1, default=float))
    return evaluation, summary


def report_stage(run: Run, table: pd.DataFrame, masks: dict, evaluation: pd.DataFrame, curves: dict,
                 summary: pd.DataFrame | None = None, pairs=None, judge=None) -> None:
    """report.html: the scores, the selections, the training curves and the WinRate table, plotted,
    and the training pairs themselves (`pairs`, the PairSet scored): a browser and examples; an API
    `judge`'s calls under the WinRate table."""
    extras = None
    if pairs is not None:
        try:
            extras = report_extras(table, pairs, masks, keep=run.cfg.keep)
        except UserError as e:  # the report still has its plots
            run.log(f"report: no pairs browser ({e})")

    if getattr(judge, "paid", False):
        extras = {**(extras or {}), "winrate": calls_html(judge.totals())}
    # The calibrated arms' probes, with what their own training cost.
    calibrations = read_calibrations(run.dir, run.cfg.arms, run.cfg.seeds)
    try:
        from ..eval.report import write_report

        html = write_report(run.dir.root, table, selections=masks,
                            evaluation=evaluation if len(evaluation) else None, curves=curves,
                            title=f"prefsift run {run.dir.root.name}", paired=summary,
                            calibrations=calibrations, extras=extras)
        run.log(f"report: {html}")
    except ImportError:
        run.log("report: prefsift.eval.report is not available in this version")
