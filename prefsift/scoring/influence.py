"""Influence of each training pair on the validation loss, first order (TracIn-style):

    IF(d) = ⟨∇θ L_val(θ), ∇θ ℓ(θ; d)⟩,   L_val = mean of ℓ over the validation pairs.

Positive IF: a gradient step on d lowers the validation loss. The parameter set is a choice (LoRA
adapters, named layers, or all); IF is reported in total and per layer group (the total is the sum
of the groups). Options:
- random projection of each per-pair gradient to k dimensions (a seeded sparse sign sketch, the
  CountSketch form of Johnson–Lindenstrauss): ⟨S g_val, S g_d⟩ is an unbiased estimate of IF and a
  pair's gradient costs O(k) memory to keep;
- diagonal preconditioning: ⟨g_val, (F + λ)⁻¹ g_d⟩ with F the mean squared per-pair gradient over
  the training pairs (empirical Fisher diagonal), λ = damping · mean(F). Costs a second pass.

Per-pair gradients come from `torch.func.vmap` over the pairs for small parameter sets and from a
loop of backward passes otherwise."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core import artifacts, faults
from ..core.errors import ConfigError
from ..models.objectives import PairwiseObjective
from ..runtime.devices import accumulation_dtype
from ..runtime.distributed import barrier, every_rank, merge_arrays, mine, world
from ..runtime.sharding import is_sharded
from . import gradients

# IF's building blocks, re-exported
from .gradients import pair_inputs, pair_losses, validation_gradient  # noqa: F401
from .influence_jvp import jvp_influence, tangent_bytes


@dataclass(frozen=True)
class InfluenceSettings:
    # "all", "lora", or comma-separated regular expressions over parameter names
    params: str = "all"
    projection_dim: int | None = None  # k; None = exact inner products
    projection_seed: int = 0
    precondition: str = "none"  # "none" | "diag"
    damping: float = 0.1  # λ as a fraction of the mean Fisher diagonal
    # "vmap" | "loop" | "jvp" (forward mode, influence_jvp.py) | "auto" (vmap or loop)
    method: str = "auto"
    vmap_batch: int = 16
    max_length: int | None = 1024
    # Forward mode: IF per layer group costs one tangent per group; None = per group when every
    # group's tangent fits in one vmapped pass within `group_memory_gb`, else the total only.
    jvp_groups: bool | None = None
    group_memory_gb: float = 2.0
    jvp_token_budget: int = 1024  # padded tokens per forward-mode batch
    head_chunk: int = 1024  # completion positions per output-head matmul of the jvp route


def select_parameters(model, spec: str = "all") -> "OrderedDict[str, torch.nn.Parameter]":
    named = list(model.named_parameters())
    if spec == "all":
        chosen = [(n, p) for n, p in named if p.requires_grad]
    elif spec == "lora":
        chosen = [(n, p) for n, p in named if "lora_" in n]
        if not chosen:
            raise ConfigError(key="if_params", problem="is 'lora' but the model has no LoRA "
                                                       "adapters; train with LoRA or use 'all'")
    else:
        patterns = [re.compile(s.strip()) for s in spec.split(",") if s.strip()]
        chosen = [(n, p) for n, p in named if any(pt.search(n) for pt in patterns)]
        if not chosen:
            raise ConfigError(key="if_params",
                              problem=f"{spec!r} matches no parameter name; names look like "
                                      f"{named[0][0]!r}")
    return OrderedDict(chosen)


_LAYER = re.compile(r"(?:layers|h|blocks|layer)\.(\d+)\.")


def layer_group(name: str) -> str:
    """A parameter's layer group: `layer.03`, `embeddings`, or `head` (final norm and output
    head)."""
    m = _LAYER.search(name)
    if m:
        return f"layer.{int(m.group(1)):02d}"
    if "embed" in name or "wte" in name or "wpe" in name:
        return "embeddings"
    return "head"


# `method="auto"` takes the vmap route up to these sizes (selected parameters, whole model), else
# the loop.
VMAP_MAX_SELECTED = 5_000_000
VMAP_MAX_MODEL = 20_000_000


class SignSketch:
    """Seeded sparse sign projection R^D → R^k: coordinate i goes to bucket h(i) with sign s(i)."""

    def __init__(self, sizes: Sequence[int], k: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.k = k
        self.buckets = [torch.randint(0, k, (n,), generator=gen) for n in sizes]
        self.signs = [torch.randint(0, 2, (n,), generator=gen).to(torch.float32) * 2 - 1
                      for n in sizes]

    def project(self, idx: Sequence[int], flats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sketch of the parameters `idx` (their flat (..., n_j) gradients in `flats`) → (...,
        k)."""
        lead = flats[0].shape[:-1]
        acc = accumulation_dtype(flats[0])  # bf16 gradients are summed into buckets in fp32
        out = flats[0].new_zeros(*lead, self.k, dtype=acc)
        for j, f in zip(idx, flats):
            out.index_add_(out.dim() - 1, self.buckets[j].to(f.device),
                           f.to(acc) * self.signs[j].to(f.device, acc))
        return out


def _load_chunks(ckpt: Path, arrays: dict, done: np.ndarray, log) -> None:
    """Fill `arrays` (column → values over all pairs) and `done` from the verified chunks saved in
    `ckpt`; a chunk that does not verify is discarded (and recomputed by the caller)."""
    ckpt.mkdir(parents=True, exist_ok=True)
    for f in sorted(ckpt.glob("chunk-*.npz")):
        if not artifacts.trusted(f, "a chunk of IF", log):
            continue
        with np.load(f) as z:
            s0, s1 = int(z["start"]), int(z["stop"])
            for c in arrays:
                arrays[c][s0:s1] = z[c]
        done[s0:s1] = True


def _batch(settings: InfluenceSettings, use_vmap: bool) -> int:
    return settings.vmap_batch if use_vmap else 1


def _owned(seqs, chunk: int, everyone: bool = False) -> np.ndarray:
    """Per pair, whether its chunk of `chunk` pairs is this rank's (all of them in one process, and
    under FSDP, `everyone`, where each rank computes its shard's part of every pair); chunks go to
    ranks balanced by their tokens."""
    if everyone:
        return np.ones(len(seqs), dtype=bool)
    starts = range(0, len(seqs), chunk)
    ours = mine([seqs.tokens(s, s + chunk) for s in starts])
    owned = np.zeros(len(seqs), dtype=bool)
    for s, own in zip(starts, ours):
        owned[s:s + chunk] = own
    return owned


def _merged(columns: dict, owned: np.ndarray) -> "OrderedDict[str, np.ndarray]":
    """Each rank's columns over its own chunks (zero elsewhere, whatever chunk files it read),
    summed over the ranks: the whole columns, on every rank."""
    # (a per-rank test such as owned.all() would let one rank skip the collective)
    if not world().sharded:
        return OrderedDict(columns)
    return OrderedDict(merge_arrays({c: np.where(owned, v, 0.0) for c, v in columns.items()}))


def _forward_mode(model, params, g_val, groups, train_pairs, ref_train, objective, pad_id, settings,
                  progress,
                  checkpoint_dir, checkpoint_every, log, t0, extra=None) -> "InfluenceResult":
    """IF by forward mode (influence_jvp.py) in checkpointed chunks of pairs."""
    group_names = list(OrderedDict.fromkeys(groups))
    per_group = settings.jvp_groups
    if per_group is None:  # per group when all groups' tangents fit in one pass

        need = len(group_names) * tangent_bytes(model, params, settings.jvp_token_budget, 1024)
        per_group = need <= settings.group_memory_gb * 2**30
        if not per_group:
            log(f"note: IF by forward mode in total only: {len(group_names)} layer groups would "
                f"need about {need / 2**30:.1f} GB of tangents in one pass; set if_groups yes to "
                f"compute them in several")
    extra = extra or {}
    columns = (group_names if per_group else ["total"]) + [f"val:{k}" for k in extra]
    n = len(train_pairs)
    values = {c: np.zeros(n) for c in columns + ["logp_chosen", "logp_rejected"]}
    done = np.zeros(n, dtype=bool)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None:
        _load_chunks(ckpt, values, done, log)
        barrier()  # every rank has read the shared chunk folder before any rank writes to it
    sharded = world().sharded
    step = checkpoint_every if ckpt is not None or sharded else n
    owned = _owned(pair_inputs(train_pairs, settings.max_length), step)
    for c0 in range(0, n, step):
        c1 = min(c0 + step, n)
        if done[c0:c1].all() or not owned[c0]:
            continue
        got, lc, lr = jvp_influence(model, params, g_val, train_pairs[c0:c1], ref_train[0][c0:c1],
                                    ref_train[1][c0:c1], objective, pad_id, groups=groups,
                                    per_group=per_group, group_memory_gb=settings.group_memory_gb,
                                    max_length=settings.max_length,
                                    token_budget=settings.jvp_token_budget,
                                    head_chunk=settings.head_chunk, progress=progress,
                                    extra_tangents={f"val:{k}": t for k, t in extra.items()},
                                    desc=f"IF: forward mode, pairs {c0}-{c1} of {n}" if step < n
                                    else "IF: forward mode")
        for c in columns:
            values[c][c0:c1] = got[c]
        values["logp_chosen"][c0:c1], values["logp_rejected"][c0:c1] = lc, lr
        if ckpt is not None:
            artifacts.atomic_write(ckpt / f"chunk-{c0:08d}.npz", lambda tmp: np.savez(
                tmp, start=c0, stop=c1, **{c: values[c][c0:c1] for c in values}))
    values = _merged(values, owned)
    per = OrderedDict((g, values[g]) for g in group_names) if per_group else OrderedDict()
    total = sum(per.values()) if per_group else values["total"]
    return InfluenceResult(total, per, time.perf_counter() - t0, "jvp", values["logp_chosen"],
                           values["logp_rejected"],
                           OrderedDict((k, values[f"val:{k}"]) for k in extra))


@dataclass
class InfluenceResult:
    total: np.ndarray  # IF per training pair
    groups: "OrderedDict[str, np.ndarray]"  # IF per layer group; sums to total
    seconds: float
    method: str
    # The policy's log-probs from the same pass (forward mode only), for IRM at no extra cost.
    logp_chosen: np.ndarray | None = None
    logp_rejected: np.ndarray | None = None
    # IF against further validation sets (forward mode: one more tangent each), by set name.
    extra: "OrderedDict[str, np.ndarray] | None" = None

    def group_frame(self, ids=None):
        df = pd.DataFrame({f"if_{g}": v for g, v in self.groups.items()})
        if ids is not None:
            df.insert(0, "id", list(ids))
        return df


def compute_influence(model, train_pairs, ref_train, val_pairs, ref_val,
                      objective: PairwiseObjective, pad_id: int,
                      settings: InfluenceSettings = InfluenceSettings(), progress: bool = True,
                      checkpoint_dir=None, checkpoint_every: int = 64, log=print,
                      extra_validation: dict | None = None) -> InfluenceResult:
    """IF of every training pair. `ref_train`/`ref_val` are (chosen, rejected) reference log-prob
    arrays.

    With `checkpoint_dir`, results are saved every `checkpoint_every` pairs and a rerun skips the
    chunks already saved (the caller keys the folder by model, data and settings).

    `extra_validation` ({name: (pairs, (ref_chosen, ref_rejected))}, method "jvp" only) adds one IF
    column per further validation set (`InfluenceResult.extra`), as more tangents of the same
    pass."""
    t0 = time.perf_counter()
    params = select_parameters(model, settings.params)
    names = list(params)
    groups = [layer_group(n) for n in names]
    group_names = list(OrderedDict.fromkeys(groups))
    n_params = sum(p.numel() for p in params.values())
    # vmap keeps every per-pair gradient of a batch in memory, and every pair's activations of the
    # whole model: worth it for small models only. A few LoRA parameters on a large model are no
    # exception (LoRA on SmolLM2-135M by vmap needed over 15 GB), so `auto` looks at both sizes.
    # It runs without an attention mask (right padding), which works with eager and sdpa attention.
    n_model = sum(p.numel() for p in model.parameters())
    use_vmap = settings.method == "vmap" or (settings.method == "auto"
                                             and n_params <= VMAP_MAX_SELECTED
                                             and n_model <= VMAP_MAX_MODEL)
    if settings.method == "jvp" and settings.projection_dim:
        raise ValueError("IF by forward mode (method 'jvp') is exact: it takes no projection")
    sharded = is_sharded(model)
    if sharded:
        # torch.func cannot differentiate through FSDP2's DTensor weights (forward mode fails on an
        # operator DTensor has no rule for), and vmap needs whole weights: the loop of backward
        # passes.
        if settings.method in ("jvp", "vmap"):
            raise ValueError(f"IF by {settings.method} needs whole weights; an FSDP model takes "
                             f"method 'loop' (or auto)")
        if settings.projection_dim:
            raise ValueError("IF with a projection needs whole per-pair gradients; with FSDP use "
                             "exact IF (projection_dim 0) or shard ddp")
        use_vmap = False
    if extra_validation and settings.method != "jvp":
        raise ValueError("several validation sets are several tangents of one forward-mode pass: "
                         "use method 'jvp'")
    was_training = model.training
    model.eval()  # no dropout: IF is a property of θ, not of a random mask

    g_val = [g.detach() for g in validation_gradient(model, params, val_pairs, ref_val[0],
                                                     ref_val[1], objective,
                                                     pad_id, settings.max_length)]
    if settings.method == "jvp":
        extra = {name: [g.detach() for g in validation_gradient(model, params, pairs, ref[0],
                                                                ref[1], objective,
                                                                pad_id, settings.max_length)]
                 for name, (pairs, ref) in (extra_validation or {}).items()}
        try:
            if settings.precondition == "diag":
                # The preconditioner applies to the tangent: IF = d/dε ℓ(θ + ε (F + λ)⁻¹ ∇L_val). F
                # itself needs the per-pair gradients once (the default route's first pass).
                inv = gradients.inverse_fisher(model, params, pair_inputs(train_pairs,
                                                                          settings.max_length),
                                               ref_train, objective, pad_id, settings.damping,
                                               _batch(settings, use_vmap), use_vmap, progress)
                g_val = [g * h for g, h in zip(g_val, inv)]
                extra = {k: [g * h for g, h in zip(t, inv)] for k, t in extra.items()}
            return _forward_mode(model, params, g_val, groups, train_pairs, ref_train, objective,
                                 pad_id, settings,
                                 progress, checkpoint_dir, checkpoint_every, log, t0, extra)
        finally:
            model.train(was_training)
    seqs = pair_inputs(train_pairs, settings.max_length)
    batch = _batch(settings, use_vmap)

    inv_fisher = None
    if settings.precondition == "diag":
        inv_fisher = gradients.inverse_fisher(model, params, seqs, ref_train, objective, pad_id,
                                             settings.damping, batch, use_vmap, progress)
    elif settings.precondition != "none":
        raise ValueError(f"unknown preconditioner {settings.precondition!r}; choose none or diag")

    val_vec = g_val if inv_fisher is None else [g * h for g, h in zip(g_val, inv_fisher)]
    members = {gname: [j for j, gg in enumerate(groups) if gg == gname] for gname in group_names}
    sketch = None
    if settings.projection_dim:
        # Each layer group is sketched on its own, so the group IFs sum to the projected total.
        sketch = SignSketch([p.numel() for p in params.values()], settings.projection_dim,
                            settings.projection_seed)
        val_proj = {gname: sketch.project(idx, [val_vec[j].reshape(-1) for j in idx])
                    for gname, idx in members.items()}

    per_group = {g: np.zeros(len(seqs)) for g in group_names}
    done = np.zeros(len(seqs), dtype=bool)
    ckpt = None
    if checkpoint_dir is not None:
        # (FSDP: each rank's partial products are its own; a chunk counts as done when every rank
        # has it)
        ckpt = Path(checkpoint_dir) / world().tag() if sharded else Path(checkpoint_dir)
        _load_chunks(ckpt, per_group, done, log)
        if sharded:
            done = every_rank(done)
            for v in per_group.values():
                v[~done] = 0.0  # recomputed (the loop adds to it)
        barrier()  # every rank has read the shared chunk folder before any rank writes to it
    # Chunks are whole batches, so a resumed run (or a rank of a sharded one) computes exactly the
    # same batches as one uninterrupted process.
    checkpoint_every = max(batch, checkpoint_every // batch * batch)
    owned = _owned(seqs, checkpoint_every, everyone=sharded)
    bar = tqdm(total=int(owned.sum()), desc="IF: per-pair gradients", unit="pair",
               disable=not progress, initial=int((done & owned).sum()))

    def batches():
        for s in range(0, len(seqs), batch):
            if done[s:s + batch].all() or not owned[s]:
                continue
            yield s, gradients.per_pair_grads(model, params, seqs[s:s + batch],
                                              ref_train[0][s:s + batch],
                                     ref_train[1][s:s + batch], objective, pad_id, use_vmap)

    for s, gs in batches():
        gs = [g.detach() for g in gs]
        b = gs[0].shape[0]
        if sketch is None:
            for name_g, g, v in zip(groups, gs, val_vec):
                per_group[name_g][s:s + b] += (g.reshape(b, -1).to(v.dtype)
                                               @ v.reshape(-1)).double().cpu().numpy()
        else:
            for gname, idx in members.items():
                proj = sketch.project(idx, [gs[j].reshape(b, -1) for j in idx])
                per_group[gname][s:s + b] += (proj @ val_proj[gname]).double().cpu().numpy()
        bar.update(b)
        done[s:s + b] = True
        c0 = s // checkpoint_every * checkpoint_every
        c1 = min(c0 + checkpoint_every, len(seqs))
        if ckpt is not None and (s + b == c1) and done[c0:c1].all():
            artifacts.atomic_write(ckpt / f"chunk-{c0:08d}.npz", lambda tmp: np.savez(
                tmp, start=c0, stop=c1, **{g: per_group[g][c0:c1] for g in group_names}))
        faults.point("influence")
    bar.close()
    model.train(was_training)
    per_group = _merged(per_group, owned)
    total = sum(per_group.values())
    return InfluenceResult(total, OrderedDict(per_group), time.perf_counter() - t0,
                           "vmap" if use_vmap else "loop")

