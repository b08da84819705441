"""Runs: the whole protocol (`prefsift run`, `demo`), its plan, the embedded lab's data, and a
finished run directory reopened (`open_run`), kronfluence-style, without repeating its arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..core.errors import ConfigError, UserError
from ..core.quiet import quiet_libraries
from ..pipeline.inputs import check_run_inputs
from ..pipeline.judge_cost import JudgeCost, check_judge_budget
from .launch import launch
from .scores import load_scores
from .settings import checked_settings


def _config(config, overrides=(), out=None, settings=None):
    """A RunConfig from a path (with KEY=VALUE `overrides` and keyword `settings`), a RunConfig or a
    dict."""
    from ..pipeline import RunConfig

    settings = settings or {}
    if isinstance(config, (str, Path)):
        # JSON is YAML: each keyword setting is read back exactly as given.
        items = list(overrides) + [f"{k}={json.dumps(v)}" for k, v in settings.items()]
        return RunConfig.from_yaml(config, overrides=items,
                                   out=str(out) if out is not None else None)
    if overrides:
        raise ConfigError(key="overrides", problem="are KEY=VALUE texts for a config file; with a "
                                                   "RunConfig or a dict, pass keyword settings")
    base = config.to_dict() if isinstance(config, RunConfig) else dict(config or {})
    return RunConfig.from_dict({**base, **settings,
                                **({"out": str(out)} if out is not None else {})})


def run(config, *, overrides=(), out: str | Path | None = None, progress: bool = True, log=print,
        processes: int = 1, threads: int | None = None, **settings) -> pd.DataFrame:
    """The whole protocol (warm-up → scores → selections → arms → judging → report) from a
    `RunConfig`, a dict of its settings, or a YAML path (with `overrides`, "KEY=VALUE" texts);
    keyword `settings` set any field (`seeds=[0]`); `out` the run directory. With `processes` > 1
    the training and scoring are shared by that many local workers (torchrun). Returns the
    evaluation table (one row per arm and seed); `open_run(out)` reopens everything else."""
    from ..pipeline import run_pipeline
    from ..pipeline.rundir import RunDir
    from ..planning import actual_run_seconds, predicted_vs_actual
    from ..runtime.distributed import check_processes, world

    cfg = _config(config, overrides, out, settings)
    here = world()
    processes = check_processes(processes, here)
    if processes > 1 and not here.sharded:
        from ..pipeline.run import check_run_sharding

        try:  # here, once, before N processes start and load models
            cfg.load_plugins()
            check_run_sharding(cfg, processes)
            check_run_inputs(cfg)
        except ConfigError as e:
            raise cfg.locate(e) from None
        if not isinstance(config, (str, Path)):
            raise ConfigError(key="processes",
                              problem="starts workers on a config file: save the config as YAML "
                                      "(RunConfig.to_dict) and pass its path")
        launch(processes, ["run", str(config), *overrides,
                           *[f"{k}={json.dumps(v)}" for k, v in settings.items()],
                           "--out", str(cfg.out)], threads, progress)
        return pd.read_csv(RunDir(cfg.out).eval_csv)
    table = run_pipeline(cfg, progress=progress, log=log)
    if here.is_main:
        compared = predicted_vs_actual(Path(cfg.out),
                                       actual_run_seconds(RunDir(cfg.out), cfg.arms, cfg.seeds))
        if compared:
            log("\n" + compared)
    return table


def recommend(config, *, overrides=(), out: str | Path | None = None, progress: bool = True,
              log=print, threads: int | None = None, **settings) -> dict:
    """Which answer to train this model on: `run` with the one arm ``auto``
    (`pipeline/recommend.py`). Every candidate of `calibration.candidates` is probed briefly from θ
    and judged on validation data only; the best is chosen when its gain over all the data is clear,
    else all the data. The choice is trained for every seed and judged on the test prompts. Returns
    recommendation.json (every candidate's probe, the choice and why, the probes' cost), with
    "test": the trained choice's rows of the evaluation table."""
    from ..pipeline.recommend import read_recommendation
    from ..pipeline.rundir import RunDir

    cfg = _config(config, overrides, out, {**settings, "arms": ["auto"]})
    table = run(cfg, progress=progress, log=log, threads=threads)
    found = read_recommendation(RunDir(cfg.out))
    return {**found, "out": str(cfg.out), "test": table.to_dict("records")}


def plan(config, *, overrides=(), out: str | Path | None = None, processes: int = 1, log=print,
         **settings):
    """`prefsift plan`: each stage of `run(config)` with its predicted time, FLOPs and peak memory
    per process on this machine (from short probes of the real models on the real pairs), saved as
    OUT/plan.json. Returns the `Plan` (`.describe()`, `.saved_to`)."""
    from ..pipeline.run import check_run_sharding
    from ..planning import plan_run
    from ..planning.memory import check_fits
    from ..runtime.distributed import check_processes

    cfg = _config(config, overrides, out, settings)
    processes = check_processes(processes)
    try:
        cfg.load_plugins()
        check_run_sharding(cfg, processes)
        made = plan_run(cfg, processes, log=log)
    except ConfigError as e:
        raise cfg.locate(e) from None
    made.saved_to = made.save(Path(cfg.out))
    # a plan that cannot fit is an error, not a table
    check_fits(made, cfg.shard, lora=cfg.lora is not None)
    if made.judge:  # nor one whose judging costs more than its judge_budget

        try:
            check_judge_budget(cfg, JudgeCost(**made.judge))
        except ConfigError as e:
            raise UserError(f"{made.describe()}\n{cfg.locate(e)}") from None
    return made


# The demo: the regime where the choice matters (docs/results.md, "One-sided scores"). A rater
# labels half the pairs whose answers differ in length "the longer is better"; the arms are all the
# data, random, the oracle's labels, the paper's rule, the best one-sided rule there (top-IF, which
# loses badly under random flips) and `auto`, the recommendation among the default candidates valued
# on the careful pairs' loss, with no judge. Before 2026-12-07 (3) the demo was the 10 %-flip lab
# with DEFAULT_ARMS.
DEMO_LAB = {"rater_bias": 0.5}
DEMO_ARMS = ["full", "random", "oracle_relabel", "lossdiff_irm", "top_if", "auto"]
# every default candidate of `auto` can be given
DEMO_SCORES = "irm,lossdiff,if,teacher,group_noise"


def demo(out: str | Path = "runs/demo", *, keep: float = 0.64, device: str = "auto",
         dtype: str = "auto", progress: bool = True, log=print) -> pd.DataFrame:
    """`prefsift demo`: `run` on the embedded lab's length-biased testbed (`DEMO_LAB`) with the
    lab's own settings (its tuned β, learning rates and judge, `prefsift.lab.preset`) and
    `DEMO_ARMS`, into `out`."""
    from ..lab import LabConfig
    from ..pipeline import RunConfig, ScoreSettings, run_pipeline

    cfg = RunConfig(out=str(out), keep=keep, device=device, dtype=dtype, lab=LabConfig(**DEMO_LAB),
                    arms=list(DEMO_ARMS), scores=ScoreSettings(scores=DEMO_SCORES))
    log(f"prefsift demo: the whole protocol on the embedded lab -> {out}\n"
        f"  testbed: a rater labels {DEMO_LAB['rater_bias']:.0%} of the pairs whose answers differ "
        "in length 'the longer is better'; the validation pairs are careful\n"
        f"  arms {cfg.arms}, seeds {cfg.seeds}, kept fraction {cfg.keep}, judge {cfg.judge}")
    return run_pipeline(cfg, progress=progress, log=log)


class LabSummary(dict):
    """`make_lab`'s summary (a dict); `str()` is the table `prefsift lab make` prints."""

    def __str__(self) -> str:
        from ..lab import format_summary

        return format_summary(self)


def make_lab(out: str | Path, **settings) -> LabSummary:
    """`prefsift lab make`: the embedded lab (task, tokenizer, SFT model, pairs with their true
    types, test prompts) built into `out`; `settings`: any `prefsift.lab.LabConfig` field."""
    from ..lab import LabConfig
    from ..lab import make_lab as build

    _check_folder(out)
    return LabSummary(build(LabConfig(**checked_settings(LabConfig, settings, "make_lab")), out))


def make_sentiment_lab(out: str | Path, *, progress: bool = True, **settings) -> dict:
    """`prefsift lab sentiment`: pairs from a real model's own samples rated by VADER, into `out`
    (train.jsonl, validation.jsonl, test_prompts.jsonl); `settings`: any `SentimentConfig` field."""
    from ..lab.sentiment import SentimentConfig
    from ..lab.sentiment import make_sentiment_lab as build

    quiet_libraries()
    _check_folder(out)
    return build(SentimentConfig(**checked_settings(SentimentConfig, settings,
                                                    "make_sentiment_lab")), out,
                 progress=progress)


def _check_folder(path) -> None:
    """An output folder that exists as a file is refused before any work."""
    if path and Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(key="out", problem=f": {str(path)!r} is a file; give a folder")


@dataclass
class RunResult:
    """A finished run directory, reopened: `prefsift score` / `warmup` / `select` outputs, or a
    whole `prefsift run`. Every attribute is read from the folder (None or empty when absent)."""

    folder: Path
    config: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)

    @property
    def scores(self) -> pd.DataFrame | None:
        """The scores table (one row per input pair), checked against its checksum."""
        try:
            return load_scores(self.folder)
        except ConfigError:
            return None

    @property
    def selections(self) -> dict[str, pd.DataFrame]:
        """{name: selection table}: a run's selection.parquet (a column per arm) as "run", and each
        `prefsift select --out` folder inside the run directory by its folder name."""
        out = {}
        if (self.folder / "selection.parquet").is_file():
            out["run"] = pd.read_parquet(self.folder / "selection.parquet")
        for path in sorted(self.folder.glob("*/selection.parquet")):
            out[path.parent.name] = pd.read_parquet(path)
        return out

    @property
    def evaluation(self) -> pd.DataFrame | None:
        """A run's evaluation table (eval.csv: WinRate per arm and seed)."""
        path = self.folder / "eval.csv"
        return pd.read_csv(path) if path.is_file() else None

    def __repr__(self) -> str:
        table = self.scores
        parts = [f"RunResult({str(self.folder)!r}"]
        if table is not None:
            parts.append(f"scores: {len(table)} pairs, {int(table['valid'].sum())} scored")
        parts.append(f"models: {', '.join(self.models) or 'none'}")
        if self.selections:
            parts.append(f"selections: {', '.join(self.selections)}")
        return "; ".join(parts) + ")"


def open_run(folder: str | Path) -> RunResult:
    """A finished run directory (of `prefsift warmup`, `score`, `select` or `run`) reopened: its
    `scores`, `selections`, `evaluation`, `config` and `models` (name → folder: warmup, theta_val,
    and a run's arms as ARM-seedS)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(key="folder", problem=f": {str(root)!r} is not a folder; give the --out "
                                                f"of a prefsift command")
    config = {}
    for name in ("config.yaml", "score_config.json", "score/score_config.json"):
        path = root / name
        if path.is_file():
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            break
    models = {}
    for name, path in (("warmup", root / "warmup" / "model"),
                       ("theta_val", root / "theta_val" / "model"),
                       ("theta_val", root / "score" / "theta_val" / "model")):
        if (path / "config.json").is_file():
            models[name] = path
    for path in sorted((root / "arms").glob("*/model")):
        models[path.parent.name] = path
    return RunResult(root, config, models)
