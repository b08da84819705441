"""The scores table: one row per input pair, every asked-for score a column, for any model kind.

    pairs (checked, read) → a backend (`scoring.backends`: a causal LM against π_ref, or a reward
    model) → each registered score (`scoring.kinds`) computed from the backend → `assemble_table`
    → scores.parquet

Each stage's result is kept in the run directory (log-probs and IF in cache/, θ_val in theta_val/)
so that a killed run resumes where it stopped."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import artifacts
from ..core.errors import ConfigError, UserError, require_path
from ..data import ColumnMap, DataError, PairSet, load_pairs
from ..models.loading import ModelSourceError, resolve_model_path
from ..runtime.devices import placement
from ..runtime.distributed import barrier, world
from ..runtime.sharding import use_shard
from ..train.dpo import per_process_batch
from ..train.warmup import WarmupConfig, warmup_from_files
from .backends import PolicyBackend, RewardBackend
from .columns import spread as _spread  # noqa: F401  (re-exported)
from .columns import summarize
from .columns import tokenized as _tokenized  # noqa: F401  (re-exported)
from .config import ScoreConfig  # noqa: F401  (the scores table's config, re-exported)
from .kinds import SCORES, ScoreContext, constant_problem


def check_score_inputs(cfg: ScoreConfig, columns: ColumnMap | None = None) -> tuple[PairSet,
        PairSet | None]:
    """What `compute_scores` checks before it makes a folder or loads a model: both models resolve
    to loadable folders, the pair files exist and parse, and each has a usable pair. Returns the
    (train, validation) pairs, lengths not yet checked. A problem is a `UserError` naming the
    setting (the CLI shows it as its flag)."""
    placement(cfg.device, cfg.dtype)  # a CUDA device asked for where there is none
    for key in ("policy", "reference"):
        if getattr(cfg, key) is None:  # θ made by the warm-up
            continue
        try:
            resolve_model_path(getattr(cfg, key))
        except ModelSourceError as e:
            raise ConfigError(key=key, problem=f": {e}") from None
    require_path(cfg.train, "training pairs", "train", kind="any")
    if cfg.validation:
        require_path(cfg.validation, "validation pairs", "validation", kind="any")
    for name, path in cfg.validation_set_paths.items():
        require_path(path, f"validation set {name!r}", "validation_sets", kind="any")
    train = load_pairs(cfg.train, columns=columns, strict=cfg.strict)
    if not train.valid_rows:
        raise DataError(f"{cfg.train}: no usable training pair; `prefsift data check {cfg.train}` "
                        f"lists why")
    val = None
    if cfg.validation:
        val = load_pairs(cfg.validation, columns=columns, strict=cfg.strict)
        if not val.valid_rows:
            raise DataError(f"{cfg.validation}: no usable validation pair; `prefsift data check "
                            f"{cfg.validation}` "
                            "lists why")
    # A policy's IRM is its log-ratio over the reference (0 when they are one model); a reward
    # model's is its own reward margin and needs no second model.
    if cfg.policy is not None and cfg.objective != "bt" and "irm" in cfg.wanted and \
            Path(resolve_model_path(cfg.policy)).resolve() == Path(resolve_model_path(
                cfg.reference)).resolve():
        raise ConfigError(key="policy", problem="is the reference itself, so IRM would be 0 for "
                                                "every pair: score θ, the warmed-up model "
                                                "(`prefsift warmup` makes it, or `prefsift score "
                                                "--warmup`)")
    return train, val


def check_sharding(cfg: ScoreConfig, processes: int) -> None:
    """What `processes` processes need of the settings: θ_val's batch shared evenly among them."""
    if processes > 1 and "lossdiff" in cfg.wanted:
        per_process_batch(cfg.val_batch_size, processes, key="val_batch_size")


def compute_scores(cfg: ScoreConfig, columns: ColumnMap | None = None, progress: bool = True,
                   log=print) -> pd.DataFrame:
    """Score every pair of `cfg.train` and write `cfg.out/scores.parquet` (one row per input row).

    Each stage's result is kept in the run directory (checksummed), so a killed run resumes where it
    stopped and gives the same table; one process at a time may write a run directory."""
    # Every input checked and read before any folder is made or any model loaded.
    train_pairs, val_pairs = check_score_inputs(cfg, columns)
    here = world()
    check_sharding(cfg, here.size)
    if cfg.warmup:
        cfg = with_warmup(cfg, (train_pairs, val_pairs), log)
    # Rank 0 holds the run directory's lock for all the ranks of a sharded run; the others start
    # once it has it (if it cannot, it stops and the launcher stops them).
    with artifacts.RunLock(cfg.out, log) if here.is_main else contextlib.nullcontext():
        barrier(here)
        return score_pairs(cfg, train_pairs, val_pairs, progress, log)


def with_warmup(cfg: ScoreConfig, pairs, log=print) -> ScoreConfig:
    """`cfg` with θ = the warm-up of its reference on its training pairs (made in OUT/warmup, or
    reused there), by `prefsift warmup`'s own function with the score's objective, β and lengths."""
    wcfg = WarmupConfig(reference=cfg.reference, train=cfg.train, out=cfg.out,
                        objective=cfg.objective,
                        beta=cfg.beta, epochs=cfg.warmup_epochs, learning_rate=cfg.warmup_lr,
                        batch_size=cfg.warmup_batch_size, max_length=cfg.max_length, seed=cfg.seed,
                        device=cfg.device, dtype=cfg.dtype, shard=cfg.shard, strict=cfg.strict)
    # (a copy: the warm-up marks over-length rows in its own pairs; scoring marks them by its own
    # policy)
    folder = warmup_from_files(wcfg, log=log, pairs=(copy.deepcopy(pairs[0]), None))
    return dataclasses.replace(cfg, policy=str(folder), warmup=False)


def score_pairs(cfg: ScoreConfig, train_pairs: PairSet, val_pairs: PairSet | None,
                progress: bool = True, log=print, models=None, warmup=None) -> pd.DataFrame:
    """The scoring stages over pairs already read, in the run directory `cfg.out` (made by the
    caller, who holds its lock). `models` = (tokenizer, reference, policy) already in memory (the
    Python API's `prefsift.score`, a run's θ), else they are loaded from `cfg.reference` and
    `cfg.policy`."""
    here = world()
    use_shard(cfg.shard, here, log)
    out = Path(cfg.out)
    timings: dict[str, float] = {}
    if cfg.objective == "bt":  # a reward model's table
        if models is not None or here.sharded:
            raise ConfigError(key="objective",
                              problem="bt scores a reward model from its folder, in one process "
                                      "(not sharded, not from a model object, yet)")
        backend = RewardBackend(cfg, train_pairs, val_pairs, out, progress, log, timings=timings)
        artifacts.write_json(out / "score_config.json", asdict(cfg), seal=False)
    else:
        if here.sharded:
            # Every rank computes its share and receives the others'; rank 0 speaks and writes the
            # table.
            if not here.is_main:
                progress, log = False, (lambda *a, **k: None)
            log(f"scoring sharded over {here.size} processes")
        if here.is_main:
            artifacts.write_json(out / "score_config.json", asdict(cfg), seal=False)
        backend = PolicyBackend(cfg, train_pairs, val_pairs, out, progress, log, models=models,
                                timings=timings, warmup=warmup)
    table = assemble_table(backend, cfg, timings)
    if here.is_main:
        artifacts.write_parquet(out / "scores.parquet", table)
        artifacts.write_json(out / "score_timings.json", timings, seal=False)
    barrier(here)  # no rank returns before the table is written
    log(summarize(table, timings))
    return table


# The columns every table has, after the input's own and the backend's: the margin's two columns
# (when irm is asked for) come before ℓ(θ), so that tables keep the order they always had.
_MARGIN_FIRST = ("irm", "abs_irm")


def assemble_table(backend, cfg: ScoreConfig, timings: dict) -> pd.DataFrame:
    """The scores table of any backend: one row per input pair (the input's columns, `valid`,
    `reason`), the backend's per-pair quantities, ℓ(θ), every asked-for registered score's columns,
    and the baselines' columns (the rating gap where the data has ratings, a seeded random draw)."""
    train = backend.train
    ctx = ScoreContext(backend, cfg, train, timings=timings)
    table = train.to_frame()
    for name, values in backend.base_columns().items():
        table[name] = ctx.spread(values)
    made: dict[str, np.ndarray] = {}
    for name in SCORES:  # in registration order
        if name in cfg.wanted:
            kind = SCORES.get(name)
            made.update(kind.compute(ctx))
            ctx.columns = made
            problem = constant_problem(made[kind.columns[0]])
            if problem:
                raise UserError(f"scores: {name} {problem}, so no rule can rank the pairs by it: "
                                f"{kind.when_constant}")
    for c in _MARGIN_FIRST:
        if c in made:
            table[c] = made.pop(c)
    table["loss_theta"] = ctx.spread(backend.loss())
    for c, v in made.items():
        table[c] = v
    if train.has_ratings:
        # NaN (never kept by the baseline) where a rating is not a number: see `rating_problem`.
        table["score_gap"] = train.rating_gaps()
    rng = np.random.default_rng(cfg.seed)
    table["random"] = np.where(table["valid"], rng.random(len(table)), np.nan)
    return table
