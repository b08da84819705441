"""The scores table: one row per input pair, every score a column, computed stage by stage with
each stage's result kept in the run directory so that a killed run resumes where it stopped.

Stages: reference log-probs → policy log-probs → IRM → θ_val (θ + one epoch on the validation
pairs, through TRL) → LossDiff → IF (per layer group) → TIF and baseline columns."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import artifacts
from ..data import ColumnMap, DataError, PairSet, check_lengths, load_pairs
from .config import ScoreConfig  # noqa: F401  (the scores table's config, re-exported)
from .columns import spread as _spread, summarize, tokenized as _tokenized  # noqa: F401  (re-exported)
from .influence import InfluenceSettings, compute_influence
from .logprobs import (EngineStats, LogprobSettings, PairLogps, cached_pair_logps, data_fingerprint,
                       model_fingerprint)
from ..objectives import PairwiseObjective
from ..selection import keep_middle, window
from ..devices import model_device, model_precision, placement
from ..distributed import barrier, world
from ..errors import ConfigError, require_path
from ..train.dpo import StageSettings, per_process_batch, train_stage



def _margin(objective: PairwiseObjective, policy: PairLogps, ref: PairLogps) -> torch.Tensor:
    """The objective's margin of every pair from policy and reference log-probs."""
    t = torch.tensor
    return objective.margin(t(policy.chosen), t(policy.rejected), t(ref.chosen), t(ref.rejected),
                            t(policy.chosen_tokens), t(policy.rejected_tokens))


def check_score_inputs(cfg: ScoreConfig, columns: ColumnMap | None = None) -> tuple[PairSet, PairSet | None]:
    """What `compute_scores` checks before it makes a folder or loads a model: both models resolve
    to loadable folders, the pair files exist and parse, and each has a usable pair. Returns the (train, validation) pairs, lengths not yet checked.
    A problem is a `UserError` naming the setting (the CLI shows it as its flag)."""
    from ..models import ModelSourceError, resolve_model_path

    placement(cfg.device, cfg.dtype)  # a CUDA device asked for where there is none
    for key in ("policy", "reference"):
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
        raise DataError(f"{cfg.train}: no usable training pair; `prefsift data check {cfg.train}` lists why")
    val = None
    if cfg.validation:
        val = load_pairs(cfg.validation, columns=columns, strict=cfg.strict)
        if not val.valid_rows:
            raise DataError(f"{cfg.validation}: no usable validation pair; `prefsift data check {cfg.validation}` "
                            "lists why")
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
    # Rank 0 holds the run directory's lock for all the ranks of a sharded run; the others start
    # once it has it (if it cannot, it stops and the launcher stops them).
    with artifacts.RunLock(cfg.out, log) if here.is_main else contextlib.nullcontext():
        barrier(here)
        return score_pairs(cfg, train_pairs, val_pairs, progress, log)


def score_pairs(cfg: ScoreConfig, train_pairs: PairSet, val_pairs: PairSet | None, progress: bool = True, log=print,
                models=None) -> pd.DataFrame:
    """The scoring stages over pairs already read, in the run directory `cfg.out` (made by the
    caller, who holds its lock). `models` = (tokenizer, reference, policy) already in memory (the
    Python API's `prefsift.score`, a run's θ), else they are loaded from `cfg.reference` and `cfg.policy`."""
    from ..models import load_model, load_tokenizer

    if cfg.objective == "bt":  # a reward model's table
        from .reward_table import score_reward_pairs

        if models is not None or world().sharded:
            raise ConfigError(key="objective", problem="bt scores a reward model from its folder, in one process "
                                                       "(not sharded, not from a model object, yet)")
        return score_reward_pairs(cfg, train_pairs, val_pairs, progress, log)
    wanted = cfg.wanted  # ScoreConfig checked the names, and that lossdiff/if have validation pairs
    out = Path(cfg.out)
    cache = out / "cache"
    here = world()
    if here.sharded:
        # Every rank computes its share and receives the others'; rank 0 speaks and writes the table.
        if not here.is_main:
            progress, log = False, (lambda *a, **k: None)
        log(f"scoring sharded over {here.size} processes")
    if here.is_main:
        artifacts.write_json(out / "score_config.json", asdict(cfg), seal=False)
    timings: dict[str, float] = {}
    objective = PairwiseObjective(cfg.objective, cfg.beta)
    ls = LogprobSettings(max_length=cfg.max_length, token_budget=cfg.batch_tokens, head_chunk=cfg.head_chunk)

    t = time.perf_counter()
    place = placement(cfg.device, cfg.dtype)
    load = lambda spec: load_model(spec, **place)  # noqa: E731
    tok = models[0] if models else load_tokenizer(cfg.policy)
    train = check_lengths(train_pairs, tok, cfg.max_length, cfg.overlength, cfg.strict)
    val = None
    if val_pairs is not None:
        val = check_lengths(val_pairs, tok, cfg.max_length, cfg.overlength, cfg.strict)
        if not val.valid_rows:
            raise DataError(f"{cfg.validation}: no validation pair fits max_length {cfg.max_length}; raise "
                            "max_length or give shorter validation pairs")
    log(train.summary())
    tr_tok = _tokenized(train, tok)
    va_tok = _tokenized(val, tok) if val is not None else None
    extra_tok = {}
    for name, path in cfg.validation_set_paths.items():
        extra = check_lengths(load_pairs(path, strict=cfg.strict), tok, cfg.max_length, cfg.overlength, cfg.strict)
        if not extra.valid_rows:
            raise DataError(f"{path}: no usable pair in validation set {name!r}")
        extra_tok[name] = _tokenized(extra, tok)
    timings["load"] = time.perf_counter() - t

    stats = EngineStats()
    t = time.perf_counter()
    ref = models[1] if models else load(cfg.reference)
    ref_key = model_fingerprint(ref)
    ref_tr = cached_pair_logps(ref, tr_tok, tok.pad_token_id, cache, ls, ref_key, progress, "reference log-probs", stats,
                               log=log)
    ref_va = cached_pair_logps(ref, va_tok, tok.pad_token_id, cache, ls, ref_key, progress, "reference log-probs (val)",
                               stats, log=log) if va_tok else None
    extra_val = {name: (t, _pair(cached_pair_logps(ref, t, tok.pad_token_id, cache, ls, ref_key, progress,
                                                   f"reference log-probs (validation set {name})", stats, log=log)))
                 for name, t in extra_tok.items()}
    policy = models[2] if models else load(cfg.policy)
    pol_key = model_fingerprint(policy)
    res = None
    if "if" in wanted and cfg.if_method == "jvp" and "lossdiff" not in wanted:
        # Forward mode gives IF and the policy's log-probs in one pass: no separate policy pass. (With
        # LossDiff, ℓ(θ) and ℓ(θ_val) both come from the engine, so that their small difference is not
        # a difference of two batchings.)
        timings["logprobs"] = time.perf_counter() - t
        t = time.perf_counter()
        res = _influence(cfg, policy, pol_key, ref_key, tr_tok, va_tok, ref_tr, ref_va, objective, tok, cache,
                         progress, log, extra_val)
        timings["if"] = time.perf_counter() - t
        pol_tr = PairLogps(res.logp_chosen, res.logp_rejected, ref_tr.chosen_tokens, ref_tr.rejected_tokens)
    else:
        pol_tr = cached_pair_logps(policy, tr_tok, tok.pad_token_id, cache, ls, pol_key, progress, "policy log-probs",
                                   stats, log=log)
        timings["logprobs"] = time.perf_counter() - t
    if stats.sequences:
        log(f"log-prob engine: {stats.describe()}")

    table = train.to_frame()
    table["logp_chosen"] = _spread(train, pol_tr.chosen)
    table["logp_rejected"] = _spread(train, pol_tr.rejected)
    table["ref_logp_chosen"] = _spread(train, ref_tr.chosen)
    table["ref_logp_rejected"] = _spread(train, ref_tr.rejected)
    margin = _margin(objective, pol_tr, ref_tr)
    loss_theta = objective.loss(margin).numpy()
    if "irm" in wanted:
        table["irm"] = _spread(train, margin.numpy())
        table["abs_irm"] = np.abs(table["irm"])
    table["loss_theta"] = _spread(train, loss_theta)

    if "lossdiff" in wanted:
        t = time.perf_counter()
        half = model_precision(policy) != "fp32"
        # θ_val starts from θ (not from π_ref): then ℓ(θ) − ℓ(θ_val) ≈ η·⟨∇ℓ(θ; d), ∇L_val(θ)⟩ to first
        # order for one SGD step, i.e. LossDiff is proportional to IF (with Adam, a preconditioned IF).
        # θ_val starts from θ's folder when θ has one (the stage loads its own copy), else from θ in memory.
        start = _folder_of(cfg.policy) or policy
        # A half-precision θ in memory is the folder's weights rounded: the folder's fp32 weights are
        # another start, with another key.
        start_key = pol_key + (":folder-fp32" if half and isinstance(start, Path) else "")
        theta_val, info = train_stage(
            start, ref, tok, val.records(), objective,
            StageSettings(epochs=cfg.val_epochs, learning_rate=cfg.val_lr, batch_size=cfg.val_batch_size,
                          max_length=cfg.max_length, seed=cfg.seed, optimizer=cfg.val_optimizer),
            out / "theta_val", start_key=start_key, data_key=data_fingerprint(va_tok), name="theta_val", log=log,
            hand_back_fp32=half, label="θ_val", progress=progress)
        tv = cached_pair_logps(theta_val, tr_tok, tok.pad_token_id, cache, ls, info["key"] + (":fp32" if half else ""),
                               progress, "θ_val log-probs", log=log)
        m_val = _margin(objective, tv, ref_tr)
        loss_val = objective.loss(m_val).numpy()
        loss_from = loss_theta
        if half:
            # θ_val's step from θ is far below bf16's resolution: ℓ(θ) and ℓ(θ_val) are both taken with
            # fp32 weights (θ upcast exactly), so their difference is the step and not rounding.
            # (From θ_val's own start, so that the difference is θ_val's step alone.)
            if isinstance(start, Path):
                theta32 = load_model(start, dtype="float32", device=model_device(policy))
            else:
                import copy

                theta32 = copy.deepcopy(policy).float()
            p32 = cached_pair_logps(theta32, tr_tok, tok.pad_token_id, cache, ls, model_fingerprint(theta32), progress,
                                    "policy log-probs (fp32, for LossDiff)", stats, log=log)
            loss_from = objective.loss(_margin(objective, p32, ref_tr)).numpy()
            del theta32
        table["loss_theta_val"] = _spread(train, loss_val)
        table["lossdiff"] = _spread(train, loss_from - loss_val)
        timings["lossdiff"] = time.perf_counter() - t
        del theta_val

    if "if" in wanted:
        if res is None:
            t = time.perf_counter()
            res = _influence(cfg, policy, pol_key, ref_key, tr_tok, va_tok, ref_tr, ref_va, objective, tok, cache,
                             progress, log, extra_val)
            timings["if"] = time.perf_counter() - t
        table["if"] = _spread(train, res.total)
        for g, v in res.groups.items():
            table[f"if_{g}"] = _spread(train, v)
        for name, v in (res.extra or {}).items():
            table[f"if_val_{name}"] = _spread(train, v)
        if cfg.tif_low >= 0 and cfg.tif_high > 0:
            table["tif"] = window(table["if"].to_numpy(), cfg.tif_low, cfg.tif_high)
        else:
            table["tif"] = keep_middle(table["if"].to_numpy(), cfg.keep)

    if train.has_ratings:
        # NaN (never kept by the baseline) where a rating is not a number: see `rating_problem`.
        table["score_gap"] = train.rating_gaps()
    rng = np.random.default_rng(cfg.seed)
    table["random"] = np.where(table["valid"], rng.random(len(table)), np.nan)

    if here.is_main:
        artifacts.write_parquet(out / "scores.parquet", table)
        artifacts.write_json(out / "score_timings.json", timings, seal=False)
    barrier(here)  # no rank returns before the table is written
    log(summarize(table, timings))
    return table


def _folder_of(spec: str) -> Path | None:
    """The model folder a policy spec names, None for a model only in memory."""
    from ..models import ModelSourceError, resolve_model_path

    try:
        return Path(resolve_model_path(spec))
    except ModelSourceError:
        return None


def _pair(logps: PairLogps):
    return logps.chosen, logps.rejected


def _influence(cfg, policy, pol_key, ref_key, tr_tok, va_tok, ref_tr, ref_va, objective, tok, cache, progress, log,
               extra_val=None):
    """IF of every training pair, checkpointed in the cache under a key of everything it reads."""
    jvp = cfg.if_method == "jvp"
    settings = InfluenceSettings(params=cfg.if_params, projection_dim=cfg.projection_dim or None,
                                 projection_seed=cfg.seed, precondition=cfg.precondition, max_length=cfg.max_length,
                                 method=cfg.if_method, jvp_token_budget=cfg.batch_tokens, head_chunk=cfg.head_chunk,
                                 jvp_groups={"auto": None, "yes": True, "no": False}[cfg.if_groups])
    s_key = asdict(settings)
    if not jvp:  # the forward-mode settings do not change the other routes' numbers
        for k in ("jvp_groups", "group_memory_gb", "jvp_token_budget"):
            s_key.pop(k)
    key = json.dumps({"m": pol_key, "r": ref_key, "t": data_fingerprint(tr_tok), "v": data_fingerprint(va_tok),
                      "s": s_key, "o": asdict(objective),
                      **({"x": {k: data_fingerprint(t) for k, (t, _) in extra_val.items()}} if extra_val else {})},
                     sort_keys=True)
    ckpt = cache / f"if-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return compute_influence(policy, tr_tok, (ref_tr.chosen, ref_tr.rejected), va_tok, (ref_va.chosen, ref_va.rejected),
                             objective, tok.pad_token_id, settings, progress, checkpoint_dir=ckpt, log=log,
                             extra_validation=extra_val or None)
