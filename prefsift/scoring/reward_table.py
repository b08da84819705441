"""The scores table of a reward model (`objective: bt`, `--policy` a sequence-classification
folder): the same columns as the policy's table, with the RM's Bradley–Terry margin as IRM.

    irm = r(x, y_w) − r(x, y_l)      loss_theta = softplus(−irm)
    lossdiff = ℓ(RM) − ℓ(RM_val),   RM_val = the RM + `val_epochs` of RewardTrainer on the validation pairs
    if = ⟨∇L_val(RM), ∇ℓ(RM; d)⟩, per layer group, exact: one backward pass per pair, or with
         `if_method: jvp` one forward-mode pass per batch and layer group

TIF, the rating gap and the random baseline follow as in the policy's table; every input row is a
row, NaN with its reason where it was not scored."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import artifacts
from ..data import DataError, check_lengths
from ..errors import ConfigError
from ..selection import keep_middle, window
from .config import ScoreConfig


def is_reward_model(spec) -> bool:
    """Whether a model folder holds a sequence classifier (a reward model), from its config.json."""
    import json

    from ..models import resolve_model_path

    archs = json.loads((Path(resolve_model_path(spec)) / "config.json").read_text()).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


def score_reward_pairs(cfg: ScoreConfig, train_pairs, val_pairs, progress: bool = True, log=print) -> pd.DataFrame:
    """Score every pair with the reward model `cfg.policy` into `cfg.out/scores.parquet`."""
    from ..models import load_tokenizer
    from ..train.dpo import StageSettings
    from ..train.reward import load_reward_model, train_reward_stage
    from .influence import layer_group, select_parameters
    from .logprobs import data_fingerprint, model_fingerprint
    from .rewards import pair_rewards, reward_influence, reward_influence_jvp
    from .columns import spread as _spread, summarize, tokenized as _tokenized

    if not is_reward_model(cfg.policy):
        raise ConfigError(key="policy", problem=f"is {cfg.policy!r}, a causal LM: objective bt scores a reward model "
                                                "(a one-label sequence classifier, e.g. a reward stage's model/ folder)")
    wanted, out = cfg.wanted, Path(cfg.out)
    artifacts.write_json(out / "score_config.json", asdict(cfg), seal=False)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    tok = load_tokenizer(cfg.policy)
    train = check_lengths(train_pairs, tok, cfg.max_length, cfg.overlength, cfg.strict)
    val = check_lengths(val_pairs, tok, cfg.max_length, cfg.overlength, cfg.strict) if val_pairs is not None else None
    if val is not None and not val.valid_rows:
        raise DataError(f"{cfg.validation}: no validation pair fits max_length {cfg.max_length}")
    log(train.summary())
    tr, va = _tokenized(train, tok), (_tokenized(val, tok) if val is not None else None)
    rm = load_reward_model(cfg.policy)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    rc, rr = pair_rewards(rm, tr, tok.pad_token_id, cfg.max_length, cfg.batch_tokens)
    margin = rc - rr
    loss = np.logaddexp(0.0, -margin)  # softplus(−m), stable
    table = train.to_frame()
    table["reward_chosen"], table["reward_rejected"] = _spread(train, rc), _spread(train, rr)
    if "irm" in wanted:
        table["irm"] = _spread(train, margin)
        table["abs_irm"] = np.abs(table["irm"])
    table["loss_theta"] = _spread(train, loss)
    timings["rewards"] = time.perf_counter() - t

    if "lossdiff" in wanted:
        t = time.perf_counter()
        settings = StageSettings(epochs=cfg.val_epochs, learning_rate=cfg.val_lr, batch_size=cfg.val_batch_size,
                                 max_length=cfg.max_length, seed=cfg.seed, optimizer=cfg.val_optimizer)
        rm_val, _ = train_reward_stage(rm, tok, val.records(), settings, out / "theta_val",
                                       start_key=model_fingerprint(rm), data_key=data_fingerprint(va),
                                       name="rm_val", log=log, label="θ_val (reward model)", progress=progress)
        vc, vr = pair_rewards(rm_val, tr, tok.pad_token_id, cfg.max_length, cfg.batch_tokens)
        loss_val = np.logaddexp(0.0, -(vc - vr))
        table["loss_theta_val"] = _spread(train, loss_val)
        table["lossdiff"] = _spread(train, loss - loss_val)
        timings["lossdiff"] = time.perf_counter() - t
        del rm_val

    if "if" in wanted:
        t = time.perf_counter()
        params = select_parameters(rm, cfg.if_params)
        route = reward_influence_jvp if cfg.if_method == "jvp" else reward_influence  # (vmap: the loop, for RMs)
        total, groups = route(rm, params, tr, va, tok.pad_token_id, cfg.max_length,
                              groups=[layer_group(n) for n in params], progress=progress)
        table["if"] = _spread(train, total)
        for g, v in groups.items():
            table[f"if_{g}"] = _spread(train, v)
        if cfg.tif_low >= 0 and cfg.tif_high > 0:
            table["tif"] = window(table["if"].to_numpy(), cfg.tif_low, cfg.tif_high)
        else:
            table["tif"] = keep_middle(table["if"].to_numpy(), cfg.keep)
        timings["if"] = time.perf_counter() - t

    if train.has_ratings:
        table["score_gap"] = train.rating_gaps()
    rng = np.random.default_rng(cfg.seed)
    table["random"] = np.where(table["valid"], rng.random(len(table)), np.nan)
    artifacts.write_parquet(out / "scores.parquet", table)
    artifacts.write_json(out / "score_timings.json", timings, seal=False)
    log(summarize(table, timings))
    return table
