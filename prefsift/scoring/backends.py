"""What differs between the model kinds prefsift scores, behind one small interface.

A backend holds θ (and what it needs besides: π_ref for a causal LM, nothing for a reward model)
and answers, for the scored (valid) pairs in order:

    base_columns()     the per-pair quantities behind the margin (log-probs, or rewards)
    margin()           m_θ(d): the objective's margin (IRM)        loss() = ℓ(θ; d) of it
    theta_val_losses() (ℓ(θ; d), ℓ(θ_val; d)), θ_val = θ trained on the validation pairs from θ
    influence()        (IF total, {layer group: IF}, {validation set: IF})

`PolicyBackend`: a causal LM under a pairwise objective (dpo, ipo, hinge) against π_ref.
`RewardBackend`: a Bradley–Terry reward model (objective bt): m = r(x, y_w) − r(x, y_l).
The scores (`scoring.kinds`) are computed from these answers and assembled into one table in one
place (`scoring.table`), whatever the backend."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ConfigError, UserError
from ..data import DataError, check_lengths, load_pairs
from ..models.loading import load_model, load_tokenizer, resolve_model_path
from ..models.objectives import PairwiseObjective
from ..runtime.devices import model_device, model_precision, placement
from ..runtime.sharding import fsdp_on, shard_for_scoring
from ..train.dpo import StageSettings
from ..train.reward import load_reward_model, train_reward_stage
from ..train.stage import TrainingStage, without_patched_forward
from .columns import tokenized
from .from_reference import folder_of as _folder_of
from .from_reference import heldout_losses, teacher_margin
from .influence import (
    InfluenceSettings,
    compute_influence,
    layer_group,
    select_parameters,
)
from .logprobs import (
    EngineStats,
    LogprobSettings,
    PairLogps,
    cached_pair_logps,
    data_fingerprint,
    model_fingerprint,
)
from .rewards import pair_rewards, reward_influence, reward_influence_jvp


def is_reward_model(spec) -> bool:
    """Whether a model folder holds a sequence classifier (a reward model), from its config.json."""
    archs = json.loads((Path(resolve_model_path(spec))
                        / "config.json").read_text()).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


def fitted(pairs, tok, cfg, what: str):
    """`pairs` with over-length rows marked (or dropped) for `cfg.max_length`; a validation set with
    no pair left is an error."""
    out = check_lengths(pairs, tok, cfg.max_length, cfg.overlength, cfg.strict)
    if what != "train" and not out.valid_rows:
        raise DataError(f"{pairs.raw.path}: no {what} pair fits max_length {cfg.max_length}; raise "
                        f"max_length or give shorter {what} pairs")
    return out


class PolicyBackend:
    """A causal LM θ and its reference π_ref under a pairwise objective; log-probs from the engine
    (length-bucketed, cached in `out/cache`), IF by `scoring.influence`."""

    kind = "policy"

    def __init__(self, cfg, train_pairs, val_pairs, out: Path, progress: bool, log, models=None,
                 timings=None, warmup=None):
        # (StageSettings, LoraSettings | None) of the warm-up, which Selective DPO's fold models
        # repeat; None: `prefsift score`'s own warm-up settings (warmup_epochs, warmup_lr,
        # warmup_batch_size)
        self.warmup = warmup

        self.cfg, self.out, self.progress, self.log = cfg, out, progress, log
        self.cache = out / "cache"
        self.timings = timings if timings is not None else {}
        self.objective = PairwiseObjective(cfg.objective, cfg.beta)
        self.settings = LogprobSettings(max_length=cfg.max_length, token_budget=cfg.batch_tokens,
                                        head_chunk=cfg.head_chunk)
        self.stats = EngineStats()
        t = time.perf_counter()
        self._load = lambda spec: load_model(spec, **placement(cfg.device, cfg.dtype))
        self.tok = models[0] if models else load_tokenizer(cfg.policy)
        self.train = fitted(train_pairs, self.tok, cfg, "train")
        self.val = fitted(val_pairs, self.tok, cfg, "validation") if val_pairs is not None else None
        log(self.train.summary())
        self.tr_tok = tokenized(self.train, self.tok)
        if "heldout" in cfg.wanted and len(self.tr_tok) < 2 * cfg.folds:  # before any model runs

            raise UserError(f"Selective DPO's {cfg.folds} folds need at least {2 * cfg.folds} "
                            f"usable pairs; there are {len(self.tr_tok)}: lower folds (--folds) or "
                            f"give more pairs")
        self.va_tok = tokenized(self.val, self.tok) if self.val is not None else None
        self.extra_tok = {}
        for name, path in cfg.validation_set_paths.items():
            extra = check_lengths(load_pairs(path, strict=cfg.strict), self.tok, cfg.max_length,
                                  cfg.overlength, cfg.strict)
            if not extra.valid_rows:
                raise DataError(f"{path}: no usable pair in validation set {name!r}")
            self.extra_tok[name] = tokenized(extra, self.tok)
        self.timings["load"] = time.perf_counter() - t
        self._models = models
        self._influence = None
        self.fsdp = fsdp_on()
        # FSDP has no forward mode (torch.func cannot differentiate through its sharded weights)
        # and no vmap over whole weights: its exact IF is the loop of backward passes.
        self.if_method = ("loop" if self.fsdp and cfg.if_method in ("jvp", "vmap", "auto")
                          else cfg.if_method)
        if self.fsdp and "if" in cfg.wanted and cfg.if_method in ("jvp", "vmap"):
            log(f"note: IF by {cfg.if_method} needs whole weights; under shard fsdp it is computed "
                "by the loop of backward passes (the same numbers, up to summation order)")
        self._reference()
        self._policy_pass()

    def _sharded(self, model, given: bool = False):
        """Under `shard fsdp`, `model` sharded over the processes (a model the caller gave is left
        whole: its copy is sharded); else `model`. Take its fingerprint first."""
        if not self.fsdp:
            return model
        if given:

            model = copy.deepcopy(without_patched_forward(model))
        return shard_for_scoring(model)

    def _logps(self, model, pairs, key, what, stats=None) -> PairLogps:
        return cached_pair_logps(model, pairs, self.tok.pad_token_id, self.cache, self.settings,
                                 key, self.progress, what, stats, log=self.log)

    def _reference(self) -> None:
        t = time.perf_counter()
        self.ref = self._models[1] if self._models else self._load(self.cfg.reference)
        self.ref_key = model_fingerprint(self.ref)
        self.ref = self._sharded(self.ref, given=bool(self._models))
        self.ref_tr = self._logps(self.ref, self.tr_tok, self.ref_key, "reference log-probs",
                                  self.stats)
        self.ref_va = (self._logps(self.ref, self.va_tok, self.ref_key, "reference log-probs (val)",
                                   self.stats)
                       if self.va_tok else None)
        self.extra_val = {name: (t_, self._pair(self._logps(self.ref, t_, self.ref_key,
                                                            f"reference log-probs (validation set "
                                                            f"{name})", self.stats)))
                          for name, t_ in self.extra_tok.items()}
        self._ref_seconds = time.perf_counter() - t

    def _policy_pass(self) -> None:
        cfg, wanted = self.cfg, self.cfg.wanted
        t = time.perf_counter()
        self.policy = self._models[2] if self._models else self._load(cfg.policy)
        self.pol_key = model_fingerprint(self.policy)
        if self.pol_key == self.ref_key and "irm" in wanted:
            raise ConfigError(key="policy", problem="has the reference's own weights, so IRM would "
                                                    "be 0 for every pair: score θ, the warmed-up "
                                                    "model (`prefsift warmup` makes it, or "
                                                    "`prefsift score --warmup`)")
        self.policy = self._sharded(self.policy, given=bool(self._models))
        if "if" in wanted and self.if_method == "jvp" and "lossdiff" not in wanted:
            # Forward mode gives IF and the policy's log-probs in one pass: no separate policy pass.
            # (With LossDiff, ℓ(θ) and ℓ(θ_val) both come from the engine, so that their small
            # difference is not a difference of two batchings.)
            self.timings["logprobs"] = self._ref_seconds + time.perf_counter() - t
            self.influence()
            res = self._influence
            self.pol_tr = PairLogps(res.logp_chosen, res.logp_rejected, self.ref_tr.chosen_tokens,
                                    self.ref_tr.rejected_tokens)
        else:
            self.pol_tr = self._logps(self.policy, self.tr_tok, self.pol_key, "policy log-probs",
                                      self.stats)
            self.timings["logprobs"] = self._ref_seconds + time.perf_counter() - t
        if self.stats.sequences:
            self.log(f"log-prob engine: {self.stats.describe()}")

    @staticmethod
    def _pair(logps: PairLogps):
        return logps.chosen, logps.rejected

    def _margin_of(self, policy: PairLogps, rows=None) -> torch.Tensor:
        """The objective's margin of `policy`'s log-probs against π_ref's, over every scored pair or
        (``rows``: indices of the scored pairs) over those the log-probs were taken on."""
        t, ref = torch.tensor, self.ref_tr
        rows = slice(None) if rows is None else rows
        return self.objective.margin(t(policy.chosen), t(policy.rejected), t(ref.chosen[rows]),
                                     t(ref.rejected[rows]),
                                     t(policy.chosen_tokens), t(policy.rejected_tokens))

    def base_columns(self) -> dict[str, np.ndarray]:
        return {"logp_chosen": self.pol_tr.chosen, "logp_rejected": self.pol_tr.rejected,
                "ref_logp_chosen": self.ref_tr.chosen, "ref_logp_rejected": self.ref_tr.rejected}

    def margin(self) -> np.ndarray:
        return self._margin_of(self.pol_tr).numpy()

    def loss(self) -> np.ndarray:
        return self.objective.loss(self._margin_of(self.pol_tr)).numpy()

    def theta_val_losses(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, policy = self.cfg, self.policy
        half = model_precision(policy) != "fp32"
        # θ_val starts from θ (not from π_ref): then ℓ(θ) − ℓ(θ_val) ≈ η·⟨∇ℓ(θ; d), ∇L_val(θ)⟩ to
        # first order for one SGD step, i.e. LossDiff is proportional to IF (with Adam, a
        # preconditioned IF). θ_val starts from θ's folder when θ has one (the stage loads its own
        # copy), else from θ in memory.
        start = _folder_of(cfg.policy) or policy
        # A half-precision θ in memory is the folder's weights rounded: the folder's fp32 weights
        # are another start, with another key.
        start_key = self.pol_key + (":folder-fp32" if half and isinstance(start, Path) else "")
        theta_val, info = TrainingStage(
            start, self.ref, self.tok, self.val.records(), self.objective,
            StageSettings(epochs=cfg.val_epochs, learning_rate=cfg.val_lr,
                          batch_size=cfg.val_batch_size,
                          max_length=cfg.max_length, seed=cfg.seed, optimizer=cfg.val_optimizer),
            self.out / "theta_val", start_key=start_key, data_key=data_fingerprint(self.va_tok),
            name="theta_val",
            log=self.log, hand_back_fp32=half, label="θ_val", progress=self.progress).run()
        theta_val = self._sharded(theta_val)
        tv = self._logps(theta_val, self.tr_tok, info["key"] + (":fp32" if half else ""),
                         "θ_val log-probs")
        loss_val = self.objective.loss(self._margin_of(tv)).numpy()
        loss_from = self.loss()
        if half:
            # θ_val's step from θ is far below bf16's resolution: ℓ(θ) and ℓ(θ_val) are both taken
            # with fp32 weights (θ upcast exactly), so their difference is the step and not
            # rounding. (From θ_val's own start, so that the difference is θ_val's step alone.)
            if isinstance(start, Path):
                theta32 = load_model(start, dtype="float32", device=model_device(policy))
            else:
                theta32 = copy.deepcopy(policy).float()
            key32 = model_fingerprint(theta32)
            p32 = self._logps(self._sharded(theta32), self.tr_tok, key32,
                              "policy log-probs (fp32, for LossDiff)", self.stats)
            loss_from = self.objective.loss(self._margin_of(p32)).numpy()
            del theta32
        del theta_val
        return loss_from, loss_val

    def heldout_losses(self) -> tuple[np.ndarray, np.ndarray]:
        """Selective DPO's held-out loss of each scored pair, and its fold (`from_reference.py`)."""
        return heldout_losses(self)

    def teacher_margin(self) -> tuple[np.ndarray, int]:
        """θ_c's margin on each scored pair, and its pairs' count (`from_reference.py`)."""
        return teacher_margin(self)

    def influence(self):
        """(total, groups, extra) of every scored pair, checkpointed in the cache under a key of
        everything it reads."""
        if self._influence is None:
            t = time.perf_counter()
            self._influence = self._compute_influence()
            self.timings["if"] = time.perf_counter() - t
        res = self._influence
        return res.total, res.groups, res.extra or {}

    def _compute_influence(self):
        cfg = self.cfg
        jvp = self.if_method == "jvp"
        settings = InfluenceSettings(params=cfg.if_params,
                                     projection_dim=cfg.projection_dim or None,
                                     projection_seed=cfg.seed, precondition=cfg.precondition,
                                     max_length=cfg.max_length, method=self.if_method,
                                     jvp_token_budget=cfg.batch_tokens, head_chunk=cfg.head_chunk,
                                     jvp_groups={"auto": None, "yes": True,
                                                 "no": False}[cfg.if_groups])
        s_key = asdict(settings)
        if not jvp:  # the forward-mode settings do not change the other routes' numbers
            for k in ("jvp_groups", "group_memory_gb", "jvp_token_budget"):
                s_key.pop(k)
        extra = self.extra_val
        key = json.dumps({"m": self.pol_key, "r": self.ref_key, "t": data_fingerprint(self.tr_tok),
                          "v": data_fingerprint(self.va_tok), "s": s_key,
                          "o": asdict(self.objective),
                          **({"x": {k: data_fingerprint(t) for k, (t, _) in extra.items()}} if extra
                             else {})},
                         sort_keys=True)
        ckpt = self.cache / f"if-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        return compute_influence(self.policy, self.tr_tok, self._pair(self.ref_tr), self.va_tok,
                                 self._pair(self.ref_va), self.objective, self.tok.pad_token_id,
                                 settings, self.progress, checkpoint_dir=ckpt, log=self.log,
                                 extra_validation=extra or None)


class RewardBackend:
    """A Bradley–Terry reward model θ (`objective: bt`, `policy` a one-label sequence classifier):
    m = r(x, y_w) − r(x, y_l), ℓ = softplus(−m); θ_val by TRL's RewardTrainer; IF exact, one
    backward pass per pair or (`if_method: jvp`) one forward-mode pass per batch and layer group."""

    kind = "reward"

    def __init__(self, cfg, train_pairs, val_pairs, out: Path, progress: bool, log, timings=None):
        if not is_reward_model(cfg.policy):
            raise ConfigError(key="policy", problem=f"is {cfg.policy!r}, a causal LM: objective bt "
                                                    "scores a reward model (a one-label sequence "
                                                    "classifier, e.g. a reward stage's model/ "
                                                    "folder)")
        self.cfg, self.out, self.progress, self.log = cfg, out, progress, log
        self.timings = timings if timings is not None else {}
        t = time.perf_counter()
        self.tok = load_tokenizer(cfg.policy)
        self.train = fitted(train_pairs, self.tok, cfg, "train")
        self.val = fitted(val_pairs, self.tok, cfg, "validation") if val_pairs is not None else None
        log(self.train.summary())
        self.tr = tokenized(self.train, self.tok)
        self.va = tokenized(self.val, self.tok) if self.val is not None else None
        self.rm = load_reward_model(cfg.policy)
        self.timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        self.rc, self.rr = pair_rewards(self.rm, self.tr, self.tok.pad_token_id, cfg.max_length,
                                        cfg.batch_tokens)
        self.timings["rewards"] = time.perf_counter() - t

    def base_columns(self) -> dict[str, np.ndarray]:
        return {"reward_chosen": self.rc, "reward_rejected": self.rr}

    def margin(self) -> np.ndarray:
        return self.rc - self.rr

    def loss(self) -> np.ndarray:
        return np.logaddexp(0.0, -self.margin())  # softplus(−m), stable

    def theta_val_losses(self) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        settings = StageSettings(epochs=cfg.val_epochs, learning_rate=cfg.val_lr,
                                 batch_size=cfg.val_batch_size, max_length=cfg.max_length,
                                 seed=cfg.seed, optimizer=cfg.val_optimizer)
        rm_val, _ = train_reward_stage(self.rm, self.tok, self.val.records(), settings,
                                       self.out / "theta_val", start_key=model_fingerprint(self.rm),
                                       data_key=data_fingerprint(self.va),
                                       name="rm_val", log=self.log, label="θ_val (reward model)",
                                       progress=self.progress)
        vc, vr = pair_rewards(rm_val, self.tr, self.tok.pad_token_id, cfg.max_length,
                              cfg.batch_tokens)
        del rm_val
        return self.loss(), np.logaddexp(0.0, -(vc - vr))

    def heldout_losses(self):
        raise ConfigError(key="scores", problem="asks for heldout, Selective DPO's cross-fitted "
                                                "DPO loss, which a reward model (objective bt) has "
                                                "no route to yet; drop it")

    def teacher_margin(self):
        raise ConfigError(key="scores", problem="asks for teacher, a DPO model trained from π_ref "
                                                "on the careful pairs, which a reward model "
                                                "(objective bt) has no route to yet; drop it")

    def influence(self):
        t = time.perf_counter()
        cfg = self.cfg
        params = select_parameters(self.rm, cfg.if_params)
        # (vmap: the loop, for RMs)
        route = reward_influence_jvp if cfg.if_method == "jvp" else reward_influence
        total, groups = route(self.rm, params, self.tr, self.va, self.tok.pad_token_id,
                              cfg.max_length,
                              groups=[layer_group(n) for n in params], progress=self.progress)
        self.timings["if"] = time.perf_counter() - t
        return total, groups, {}
