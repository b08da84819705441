"""The plan of `prefsift score`: load, log-probs, LossDiff (θ_val and its pass), IF."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..data import check_lengths, load_pairs
from ..models.loading import load_model, load_tokenizer
from ..models.objectives import PairwiseObjective
from ..runtime.devices import model_device, model_precision, placement
from ..scoring.gradients import validation_gradient
from ..scoring.influence import (
    VMAP_MAX_MODEL,
    VMAP_MAX_SELECTED,
    InfluenceSettings,
    compute_influence,
    select_parameters,
)
from ..scoring.table import _tokenized, check_score_inputs
from ..train.dpo import StageSettings
from .memory import Shape, scoring_bytes
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


def plan_scores(cfg, processes: int = 1, models=None, log=print) -> Plan:
    """Each stage of `prefsift score` with `cfg` (a ScoreConfig) over `processes` processes."""
    t_probe = time.perf_counter()
    train, val = check_score_inputs(cfg) if models is None else (load_pairs(cfg.train),
                                                                 load_pairs(cfg.validation)
                                                                  if cfg.validation else None)
    place = placement(cfg.device, cfg.dtype)
    t = time.perf_counter()
    tok = models[0] if models else load_tokenizer(cfg.policy)
    train = check_lengths(train, tok, cfg.max_length, cfg.overlength, cfg.strict)
    tr = _tokenized(train, tok)
    va = (_tokenized(check_lengths(val, tok, cfg.max_length, cfg.overlength, cfg.strict), tok)
          if val else [])
    # the length check and the tokenization: the run's "load"
    load_seconds = time.perf_counter() - t
    t = time.perf_counter()
    ref = models[1] if models else load_model(cfg.reference, **place)
    policy = models[2] if models else load_model(cfg.policy, **place)
    model_seconds = time.perf_counter() - t  # in the run's "logprobs", which loads them
    device = model_device(policy)
    n_w, w_bytes = weights(policy), weight_bytes(policy)
    rate = probe_engine(policy, tr, tok.pad_token_id, cfg.max_length, cfg.batch_tokens,
                        cfg.head_chunk)
    tr_tokens = engine_tokens(tr, cfg.max_length, cfg.batch_tokens)
    va_tokens = engine_tokens(va, cfg.max_length, cfg.batch_tokens) if va else 0
    wanted = cfg.wanted
    jvp_only = "if" in wanted and cfg.if_method == "jvp" and "lossdiff" not in wanted
    passes = ([("reference", tr_tokens), ("reference (val)", va_tokens)]
              + ([] if jvp_only else [("policy", tr_tokens)]))
    lp_tokens = sum(n for _, n in passes)
    plan = Plan(f"prefsift score ({len(tr)} pairs, {len(va)} validation pairs)", processes,
                str(device), activations_counted=device.type == "cuda")
    # Memory: planning/memory.py (under FSDP sharded over the processes, the largest unit gathered).
    fsdp = cfg.shard == "fsdp" and processes > 1
    shape = Shape.of(policy)
    per_weight = round(w_bytes / max(n_w, 1))
    resident = scoring_bytes(shape, models=2, processes=processes, fsdp=fsdp,
                             weight_bytes=per_weight) / GIB
    plan.stages.append(StagePlan("load", load_seconds, 0.0, 0.0,
                                 "the planner's own length check and tokenization"))
    plan.stages.append(StagePlan("logprobs", model_seconds + lp_tokens * rate / processes,
                                 2 * n_w * lp_tokens, resident, f"loading the models; "
                                 f"{len(passes)} engine passes, {lp_tokens:,} padded tokens; "
                                 "engine probe"))
    if "lossdiff" in wanted:
        objective = PairwiseObjective(cfg.objective, cfg.beta)
        settings = StageSettings(epochs=cfg.val_epochs, learning_rate=cfg.val_lr,
                                 batch_size=cfg.val_batch_size, max_length=cfg.max_length,
                                 seed=cfg.seed, optimizer=cfg.val_optimizer)
        probe = probe_training(policy, ref, tok, val.records(), objective, settings, processes,
                               seed=cfg.seed)
        stage = training_stage("lossdiff", probe, rate, pair_lengths(va, cfg.max_length), settings,
                               processes, n_w, w_bytes, save_seconds=model_seconds / 2,
                               largest_unit=shape.largest_unit, fsdp=fsdp)
        # θ_val's pass (and θ's in fp32)
        extra = tr_tokens * (2 if model_precision(policy) != "fp32" else 1)
        stage.seconds += extra * rate / processes
        stage.flops += 2 * n_w * extra
        stage.basis += f"; then {extra:,} padded tokens of θ_val's pass"
        plan.stages.append(stage)
    if "if" in wanted:
        plan.stages.append(_influence_stage(cfg, policy, tok, tr, va, processes, n_w, shape,
                                            per_weight, fsdp))
    plan.probe_seconds = time.perf_counter() - t_probe
    return plan


def _influence_stage(cfg, policy, tok, tr, va, processes: int, n_weights: int, shape,
                     per_weight: int, fsdp: bool = False) -> StagePlan:
    """IF's time from one probe of its route on a few pairs, and of the validation gradient. Under
    FSDP the route is the loop, and every process runs every pair (each for its shard)."""
    device = next(policy.parameters()).device
    objective = PairwiseObjective(cfg.objective, cfg.beta)
    settings = InfluenceSettings(params=cfg.if_params, projection_dim=cfg.projection_dim or None,
                                 precondition=cfg.precondition, max_length=cfg.max_length,
                                 method=cfg.if_method,
                                 jvp_token_budget=cfg.batch_tokens, head_chunk=cfg.head_chunk)
    params = select_parameters(policy, cfg.if_params)

    n_sel = sum(p.numel() for p in params.values())
    vmap = not fsdp and (cfg.if_method == "vmap"
                         or (cfg.if_method == "auto" and n_sel <= VMAP_MAX_SELECTED
                             and n_weights <= VMAP_MAX_MODEL))
    if fsdp:
        settings = replace(settings, method="loop")
    # A whole batch of the route: vmap's cost per batch hardly depends on how full it is.
    k = settings.vmap_batch if vmap else (16 if cfg.if_method == "jvp" else 4)
    sample, val1 = tr[:k], va[:1]
    # reference log-probs: the cost does not depend on them
    zeros = lambda n: (np.zeros(n), np.zeros(n))  # noqa: E731
    tokens = lambda ps: sum(len(p.prompt_ids) * 2 + len(p.chosen_ids)  # noqa: E731
                            + len(p.rejected_ids) for p in ps)
    run = lambda ps: compute_influence(policy, ps, zeros(len(ps)), val1, zeros(1),  # noqa: E731
                                       objective, tok.pad_token_id, settings, progress=False,
                                       log=lambda *a: None)
    run(tr[:1])  # warm-up
    seconds, _ = _timed(device, lambda: run(sample))
    val_seconds, _ = _timed(device, lambda: validation_gradient(policy, params, va[:4],
                                                                *zeros(len(va[:4])), objective,
                                                                tok.pad_token_id, cfg.max_length))
    val_rate = val_seconds / tokens(va[:4])
    rate = max(seconds - val_rate * tokens(val1), 0.0) / tokens(sample)
    share = 1 if fsdp else processes
    total = tokens(tr) * rate / share + tokens(va) * val_rate / share
    route = "vmap" if vmap else ("jvp" if settings.method == "jvp" else "loop")
    flops = (6 if route != "jvp" else 4) * n_weights * tokens(tr) + 6 * n_weights * tokens(va)
    peak = scoring_bytes(shape, models=2, processes=processes, fsdp=fsdp, weight_bytes=per_weight,
                         influence=n_sel)
    return StagePlan("if", total, flops, peak / GIB,
                     f"{tokens(tr):,} tokens by the {route} route, {tokens(va):,} of ∇L_val; IF "
                     f"probe on {len(sample)} pairs")
