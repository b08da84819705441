"""Scores and selections: the scores table of every pair (`prefsift score`), its plan, a selection
mask by a registered rule, and a selection written out (`prefsift select`)."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..core import artifacts
from ..core.errors import ConfigError, UserError
from ..data import ColumnMap
from ..selection.arms import check_selectable
from ..selection.rules import apply_rule, read_scores_table
from .launch import column_flags, config_flags, launch
from .pairs import load_pairs
from .settings import checked_settings

_OWN = ("policy", "reference", "train", "validation", "out", "scores", "objective", "beta")


def _model_and_tokenizer(model: Any, tokenizer, role: str):
    """(tokenizer or None, model object or None, spec or None) for a model argument."""
    if model is None or isinstance(model, (str, Path)):
        return tokenizer, None, (str(model) if model is not None else None)
    if isinstance(model, tuple) and len(model) == 2:
        model, tokenizer = model
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ConfigError(key=role,
                          problem=f"must be a model object, a (model, tokenizer) pair, a folder or "
                                  f"`smollm2`; got a {type(model).__name__}")
    return tokenizer, model, None


def _score_config(policy, reference, train, validation, out, scores, objective, beta, settings):
    from ..scoring.config import ScoreConfig

    return ScoreConfig(policy=policy, reference=reference, train=train, validation=validation,
                       out=str(out), scores=scores, objective=objective, beta=beta, **settings)


def score(policy, reference, pairs, validation=None, *,
          scores: Iterable[str] = ("irm", "lossdiff", "if"),
          objective: str = "dpo", beta: float = 0.1, tokenizer=None, out: str | Path | None = None,
          columns: ColumnMap | None = None, progress: bool = True, log=print, processes: int = 1,
          threads: int | None = None, **settings) -> pd.DataFrame:
    """Score every pair: one row per input pair (as `prefsift score`'s scores.parquet), NaN and a
    reason where a pair could not be scored.

    Args:
        policy: θ, the model being aligned (the reference after the warm-up, `prefsift.warmup`): a
            causal LM object, a `(model, tokenizer)` pair, a local Hugging Face folder, or
            `smollm2`; None with ``warmup=True`` makes it first, in OUT/warmup/model.
        reference: π_ref, the reference (SFT) model, in the same forms.
        pairs: the training pairs to score: a `PairSet`, a path, or a list of pair dicts.
        validation: validation pairs (same forms), needed by `lossdiff` and `if`.
        scores: registered scores (`prefsift.scoring.kinds.SCORES`): "irm", "lossdiff", "if", or
        yours. objective: the pairwise objective: "dpo", "ipo" or "hinge" ("bt": `policy` a reward
        model). beta: β of the objective.
        tokenizer: the tokenizer, when `policy` is a model object (both models must share it).
        out: the run directory for caches and scores.parquet (a rerun reuses them); default: a
            temporary directory, removed when the table is returned.
        columns: which columns hold prompt/chosen/rejected/id (`prefsift.data.ColumnMap`).
        progress: progress bars. log: where progress lines go (print by default).
        processes: local worker processes to shard the pairs over (torchrun; files and folders
        only). threads: CPU threads of each worker process.
        **settings: any other `prefsift.scoring.config.ScoreConfig` field (val_lr, if_method,
        if_params,
            max_length, keep, seed, device, dtype, warmup, ...); `prefsift score --help` explains
            each. A model given by name is loaded on `device` in `dtype`; a model object is used
            where it is.
    """
    from ..runtime.distributed import barrier, world
    from ..scoring.table import (
        check_score_inputs,
        check_sharding,
        compute_scores,
        score_pairs,
    )

    settings = checked_settings(_config_class(), settings, "score", taken=_OWN)
    tok_p, pol_obj, pol_spec = _model_and_tokenizer(policy, tokenizer, "policy")
    tok_r, ref_obj, ref_spec = _model_and_tokenizer(reference, tokenizer, "reference")
    in_memory = pol_obj is not None or ref_obj is not None
    scores = scores if isinstance(scores, str) else ",".join(scores)
    here = world()
    if out is None and here.sharded:
        raise ConfigError(key="out", problem="is needed under a launcher: every process must write "
                                             "to one run directory")
    with _run_directory(out) as folder:
        files = (isinstance(pairs, (str, Path))
                 and (validation is None or isinstance(validation, (str, Path))))
        if files and not in_memory:  # everything by name: the CLI's own path
            cfg = _score_config(pol_spec, ref_spec, str(pairs),
                                str(validation) if validation is not None else None,
                                folder, scores, objective, beta, settings)
            if processes > 1 and not here.sharded:
                from ..runtime.distributed import check_processes

                check_processes(processes, here)
                check_sharding(cfg, processes)
                # here, once, before N processes start and load models
                check_score_inputs(cfg, columns)
                launch(processes, ["score", *config_flags(cfg), *column_flags(columns)], threads,
                       progress)
                return pd.read_parquet(Path(folder) / "scores.parquet")
            table = compute_scores(cfg, columns=columns, progress=progress, log=log)
            if here.is_main and out is not None:
                _say_where(Path(folder), log)
            return table
        if processes > 1:
            raise ConfigError(key="processes", problem="shards only models and pairs given by name "
                                                       "(folders, files): save them, or use "
                                                       "processes=1")
        models = _in_memory_models(tok_p or tok_r, ref_obj, ref_spec, pol_obj, pol_spec, settings)
        train = load_pairs(pairs, columns=columns)
        val = load_pairs(validation, columns=columns) if validation is not None else None
        for name, ps in (("pairs", train), ("validation", val)):
            if ps is not None and not ps.valid_rows:
                raise UserError(f"{name}: no usable pair in {ps.raw.path}; `prefsift data check` "
                                f"lists why")
        if settings.get("warmup"):
            raise ConfigError(key="warmup", problem="makes θ from a reference given by name; with "
                                                    "models in memory, pass θ itself")
        cfg = _score_config(pol_spec or "<in memory>", ref_spec or "<in memory>",
                            str(train.raw.path), str(val.raw.path) if val is not None else None,
                            folder, scores, objective, beta, settings)
        with artifacts.RunLock(folder, log) if here.is_main else contextlib.nullcontext():
            barrier(here)  # under a launcher, rank 0 holds the folder's lock for every rank
            return score_pairs(cfg, train, val, progress, log, models=models)


def _say_where(folder: Path, log) -> None:
    """The table's path, and predicted against actual seconds when the folder holds a plan."""
    from ..planning import predicted_vs_actual

    log(f"\nscores table: {folder / 'scores.parquet'}")
    timings = folder / "score_timings.json"
    compared = predicted_vs_actual(folder,
                                   json.loads(timings.read_text()) if timings.exists() else {})
    if compared:
        log("\n" + compared)


def _config_class():
    from ..scoring.config import ScoreConfig

    return ScoreConfig


@contextlib.contextmanager
def _run_directory(out):
    """`out`, or a temporary run directory removed afterwards."""
    if out is not None:
        yield Path(out)
        return
    folder = Path(tempfile.mkdtemp(prefix="prefsift-score-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _in_memory_models(tok, ref_obj, ref_spec, pol_obj, pol_spec, settings):
    """(tokenizer, reference, policy), loading the ones given by name."""
    from ..models.loading import load_model, load_tokenizer
    from ..runtime.devices import placement

    tok = tok or (load_tokenizer(pol_spec) if pol_spec else None)
    if tok is None:
        raise ConfigError(key="tokenizer",
                          problem="is needed with a model object: pass tokenizer=..., or "
                                  "policy=(model, tokenizer)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    place = placement(settings.get("device", "auto"), settings.get("dtype", "auto"))
    return (tok, ref_obj if ref_obj is not None else load_model(ref_spec, **place),
            pol_obj if pol_obj is not None else load_model(pol_spec, **place))


def plan_scores(policy, reference, pairs, validation=None, *, out: str | Path = "runs/score",
                processes: int = 1, scores="irm,lossdiff,if", objective: str = "dpo",
                beta: float = 0.1, log=print, **settings):
    """`prefsift score --plan`: each scoring stage's predicted time, FLOPs and peak memory per
    process (from short probes of the models on these pairs), saved as OUT/plan.json (a later
    `score` into OUT prints predicted vs actual). Returns the `Plan` (`.describe()`)."""
    from ..planning import plan_scores as make_plan
    from ..planning.memory import check_fits
    from ..runtime.distributed import check_processes, world

    settings = checked_settings(_config_class(), settings, "plan_scores", taken=_OWN)
    if world().sharded:
        raise ConfigError(key="plan",
                          problem="runs its probes in one process: run `prefsift score ... --plan "
                                  f"--processes {world().size}` without the launcher")
    processes = check_processes(processes)
    cfg = _score_config(str(policy) if policy is not None else None, str(reference), str(pairs),
                        str(validation) if validation is not None else None, out,
                        scores if isinstance(scores, str) else ",".join(scores), objective, beta,
                        settings)
    plan = make_plan(cfg, processes=processes, log=log)
    plan.saved_to = plan.save(Path(cfg.out))
    check_fits(plan, cfg.shard, lora=False)  # a plan that cannot fit is an error, not a table
    return plan


def load_scores(run_dir: str | Path) -> pd.DataFrame:
    """The scores table of a finished `prefsift score` (RUN/scores.parquet) or `prefsift run`
    (RUN/score/scores.parquet), checked against its checksum."""
    run_dir = Path(run_dir)
    for path in (run_dir / "scores.parquet", run_dir / "score" / "scores.parquet", run_dir):
        if path.is_file():
            return read_scores_table(path)
    raise ConfigError(key="run_dir", problem=f": {str(run_dir)!r} holds no scores.parquet (nor "
                                             "score/scores.parquet); give the --out of `prefsift "
                                             "score` or `prefsift run`")


def select(table, rule: str = "lossdiff_irm", keep: float = 0.64, *, seed: int = 0) -> np.ndarray:
    """A boolean mask over the rows of a scores table (one entry per input pair; a pair that was not
    scored is never selected) by a rule of the registry `prefsift.selection.rules.RULES`
    (lossdiff_irm is the paper's; `prefsift select --help` lists and describes every one), or one of
    your own (`register_rule`).
    `keep` is the kept fraction of the scored pairs; `seed` seeds the random rule. A rule that
    cannot keep that fraction (a constant score, heavy ties) is refused with what it kept and
    why."""
    check_selectable(rule)
    return np.asarray(apply_rule(table, rule, keep, seed=seed), dtype=bool)
